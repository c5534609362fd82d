/*
Copyright 2026 The svcplane Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package conntrack

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Executor deletes conntrack entries.
type Executor interface {
	// Delete deletes the entries f selects and returns how many it deleted.
	// Finding none is not an error. An error means the kernel's table could not
	// be searched or changed; some entries may have been deleted.
	Delete(ctx context.Context, f Filter) (int, error)
	// List returns the entries of one family and protocol.
	List(ctx context.Context, family model.Family, protocol model.Protocol) ([]Entry, error)
}

// Runner runs the command name with args and returns its combined output and exit
// code. err is for a command that could not be run or did not exit by itself (not
// found, killed when ctx was done); one that exited non-zero is not an error here.
type Runner func(ctx context.Context, name string, args ...string) (out []byte, code int, err error)

// Exec is the Executor that runs the conntrack CLI (conntrack-tools) from PATH.
type Exec struct {
	// Prefix runs every command through another one, such as
	// []string{"ip", "netns", "exec", "test"} to reach a network namespace other
	// than the agent's: each namespace has its own conntrack table.
	Prefix []string
	// Run runs the commands; os/exec when nil. Tests replace it.
	Run Runner
}

var _ Executor = &Exec{}

// deletedCount is how conntrack -D reports its work, on stderr: "conntrack v1.4.7
// (conntrack-tools): 2 flow entries have been deleted."
var deletedCount = regexp.MustCompile(`(\d+) flow entries have been deleted`)

// Delete runs conntrack -D with f's options. conntrack exits 1 when nothing
// matched, saying "0 flow entries have been deleted": that is success.
func (e *Exec) Delete(ctx context.Context, f Filter) (int, error) {
	args := append([]string{"-D"}, f.Args()...)
	out, code, err := e.run(ctx, args...)
	if err != nil {
		return 0, fmt.Errorf("conntrack %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	n := -1
	if m := deletedCount.FindSubmatch(out); m != nil {
		n, _ = strconv.Atoi(string(m[1]))
	}
	switch {
	case code == 0:
		return max(n, 0), nil
	case code == 1 && n == 0:
		return 0, nil
	}
	return max(n, 0), fmt.Errorf("conntrack %s: exit status %d: %s", strings.Join(args, " "), code, strings.TrimSpace(string(out)))
}

// List runs conntrack -L for family and protocol and reads its output.
func (e *Exec) List(ctx context.Context, family model.Family, protocol model.Protocol) ([]Entry, error) {
	args := []string{"-L", "-f", "ipv4", "-p", strings.ToLower(string(protocol))}
	if family == model.IPv6 {
		args[2] = "ipv6"
	}
	out, code, err := e.run(ctx, args...)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit status %d", code)
	}
	if err != nil {
		return nil, fmt.Errorf("conntrack %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return parseEntries(family, out), nil
}

// Version runs conntrack --version and returns what it prints: it fails when the
// CLI is not installed or cannot run.
func (e *Exec) Version(ctx context.Context) (string, error) {
	out, code, err := e.run(ctx, "--version")
	if err == nil && code != 0 {
		err = fmt.Errorf("exit status %d", code)
	}
	if err != nil {
		return "", fmt.Errorf("conntrack --version: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

func (e *Exec) run(ctx context.Context, args ...string) ([]byte, int, error) {
	name := "conntrack"
	if len(e.Prefix) > 0 {
		args = append(append(slices.Clone(e.Prefix[1:]), name), args...)
		name = e.Prefix[0]
	}
	run := e.Run
	if run == nil {
		run = runCommand
	}
	return run(ctx, name, args...)
}

// runCommand is the Runner of os/exec.
func runCommand(ctx context.Context, name string, args ...string) ([]byte, int, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() >= 0 {
		return out, exit.ExitCode(), nil
	}
	if err != nil {
		return out, -1, err
	}
	return out, 0, nil
}
