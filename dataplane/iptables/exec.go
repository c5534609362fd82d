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

package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	utilexec "k8s.io/utils/exec"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Exec is the Executor that runs iptables, iptables-save and iptables-restore (or
// their ip6tables twins for IPv6) from PATH.
type Exec struct {
	// Variant picks the tools: "" runs iptables-restore and friends, whichever
	// implementation the system's alternatives point to; "nft" and "legacy" run
	// iptables-nft-restore or iptables-legacy-restore and friends. The agent must
	// use the variant the node's other rules (kubelet, CNI) are in: the two keep
	// separate rule sets in the kernel.
	Variant string
	// Prefix runs every command through another one, such as
	// []string{"ip", "netns", "exec", "test"} to reach a network namespace other
	// than the agent's.
	Prefix []string
	// Runner runs the commands; k8s.io/utils/exec's os/exec when nil.
	Runner utilexec.Interface
}

var _ Executor = &Exec{}

// ReadsWholeTable reports whether listing one chain reads the whole table, as
// iptables-legacy does: its kernel interface hands a table out only whole.
func (e *Exec) ReadsWholeTable() bool { return e.Variant == "legacy" }

// Restore runs iptables-restore --noflush, waiting for the xtables lock.
func (e *Exec) Restore(ctx context.Context, family model.Family, payload []byte) error {
	cmd := e.command(ctx, e.tool(family, "-restore"), "--noflush", "--wait")
	cmd.SetStdin(bytes.NewReader(payload))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return restoreError(e.tool(family, "-restore"), err, out, payload)
	}
	return nil
}

// Save runs iptables-save for one table.
func (e *Exec) Save(ctx context.Context, family model.Family, table Table) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := e.command(ctx, e.tool(family, "-save"), "-t", string(table))
	cmd.SetStderr(&stderr)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s -t %s: %w: %s", e.tool(family, "-save"), table, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// EnsureJump checks for j with iptables -C and inserts it with -I when missing.
func (e *Exec) EnsureJump(ctx context.Context, family model.Family, j Jump) error {
	present, err := e.check(ctx, family, j)
	if err != nil || present {
		return err
	}
	return e.run(ctx, family, append([]string{"-t", string(j.Table), "-I", j.Chain, "1"}, j.Args()...))
}

// DeleteJump checks for j with iptables -C and deletes it with -D when present.
func (e *Exec) DeleteJump(ctx context.Context, family model.Family, j Jump) error {
	present, err := e.check(ctx, family, j)
	if err != nil || !present {
		return err
	}
	return e.run(ctx, family, append([]string{"-t", string(j.Table), "-D", j.Chain}, j.Args()...))
}

// missingTarget is how iptables -C says that the rule's target chain does not
// exist: "Chain 'X' does not exist" (nft) or "Couldn't load target `X'" (legacy).
var missingTarget = regexp.MustCompile(`does not exist|Couldn't load target`)

// check reports whether j exists. iptables -C exits 1 when the rule is missing and
// 2 when its target chain is, which also means there is no such rule.
func (e *Exec) check(ctx context.Context, family model.Family, j Jump) (bool, error) {
	args := append([]string{"-t", string(j.Table), "-C", j.Chain}, j.Args()...)
	out, err := e.command(ctx, e.tool(family, ""), append([]string{"--wait"}, args...)...).CombinedOutput()
	var exit utilexec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exit) && exit.ExitStatus() == 1:
		return false, nil
	case errors.As(err, &exit) && missingTarget.Match(out):
		return false, nil
	}
	return false, fmt.Errorf("%s %s: %w: %s", e.tool(family, ""), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
}

// ListRules runs iptables -S for one chain, which reads only that chain with
// iptables-nft but the whole table with iptables-legacy. iptables exits 1 when the
// chain does not exist ("No chain/target/match by that name" from legacy, "chain
// ... is incompatible" from nft), as it does when iptables -C finds no rule.
func (e *Exec) ListRules(ctx context.Context, family model.Family, table Table, chain string) ([]string, bool, error) {
	args := []string{"-t", string(table), "-S", chain}
	var stderr bytes.Buffer
	cmd := e.command(ctx, e.tool(family, ""), append([]string{"--wait"}, args...)...)
	cmd.SetStderr(&stderr)
	out, err := cmd.Output()
	var exit utilexec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitStatus() == 1:
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("%s %s: %w: %s", e.tool(family, ""), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	var rules []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "-A ") {
			rules = append(rules, line)
		}
	}
	return rules, true, nil
}

func (e *Exec) run(ctx context.Context, family model.Family, args []string) error {
	cmd := e.command(ctx, e.tool(family, ""), append([]string{"--wait"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", e.tool(family, ""), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (e *Exec) command(ctx context.Context, name string, args ...string) utilexec.Cmd {
	if len(e.Prefix) > 0 {
		args = append(append(slices.Clone(e.Prefix[1:]), name), args...)
		name = e.Prefix[0]
	}
	runner := e.Runner
	if runner == nil {
		runner = utilexec.New()
	}
	return runner.CommandContext(ctx, name, args...)
}

// tool returns the family's binary with suffix: iptables-restore, ip6tables-save...
func tool(family model.Family, suffix string) string {
	if family == model.IPv6 {
		return "ip6tables" + suffix
	}
	return "iptables" + suffix
}

// tool returns the binary of e's variant: iptables-nft-restore for "nft" and
// "-restore", for instance.
func (e *Exec) tool(family model.Family, suffix string) string {
	if e.Variant == "" {
		return tool(family, suffix)
	}
	return tool(family, "-"+e.Variant+suffix)
}

// failedLine finds the line iptables-restore reports as failing: "line N failed"
// from the legacy tools, "Error occurred at line: N" from the nf_tables ones (which
// may name the COMMIT line, as they check a table when committing it).
var failedLine = regexp.MustCompile(`line (\d+) failed|Error occurred at line: (\d+)`)

// restoreError describes a failed iptables-restore run, quoting the payload around
// the line it complains about: the whole payload can be megabytes.
func restoreError(name string, err error, out, payload []byte) error {
	msg := strings.TrimSpace(string(out))
	if m := failedLine.FindSubmatch(out); m != nil {
		if n, perr := strconv.Atoi(string(m[1]) + string(m[2])); perr == nil {
			msg += "\n" + payloadContext(payload, n, 3)
		}
	}
	return fmt.Errorf("%s: %w: %s", name, err, msg)
}

// payloadContext returns the lines of payload within around of line (1-based),
// numbered, with the line itself marked.
func payloadContext(payload []byte, line, around int) string {
	lines := strings.Split(string(payload), "\n")
	var b strings.Builder
	for i := max(line-around, 1); i <= min(line+around, len(lines)); i++ {
		mark := "  "
		if i == line {
			mark = "> "
		}
		fmt.Fprintf(&b, "%s%d: %s\n", mark, i, lines[i-1])
	}
	return strings.TrimSuffix(b.String(), "\n")
}
