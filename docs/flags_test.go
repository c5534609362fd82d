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

// Package docs_test keeps docs/flags.md from drifting from the binaries: it builds
// cmd/manager and cmd/agent, reads their --help, and checks that every flag is on the
// page and every flag in the page's tables exists with the default written there.
package docs_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// helpFlag matches a flag's first line in the flag package's --help output
// ("  -name type"); helpDefault the "(default X)" ending its description.
var (
	helpFlag    = regexp.MustCompile(`^  -([a-z0-9-]+)`)
	helpDefault = regexp.MustCompile(`.*\(default ([^()]*)\)$`)
	// tableRow matches a row of a flag table: | `--name` | `default` or nothing | ... |
	tableRow = regexp.MustCompile("^\\| `--([a-z0-9-]+)` \\| ([^|]*) \\|")
	mention  = regexp.MustCompile("`--([a-z0-9-]+)")
)

func TestFlagsPage(t *testing.T) {
	page, err := os.ReadFile("flags.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := splitSections(string(page))
	for _, bin := range []struct{ section, pkg string }{
		{"Manager", "./cmd/manager"},
		{"Agent", "./cmd/agent"},
	} {
		t.Run(bin.section, func(t *testing.T) {
			help := helpOf(t, bin.pkg)
			rows, ok := sections[bin.section]
			if !ok {
				t.Fatalf("flags.md has no section %q", "## "+bin.section)
			}
			documented := map[string]string{}
			for _, line := range strings.Split(rows, "\n") {
				if m := tableRow.FindStringSubmatch(line); m != nil {
					documented[m[1]] = strings.Trim(strings.TrimSpace(m[2]), "`")
				}
			}
			mentioned := map[string]bool{}
			for _, m := range mention.FindAllStringSubmatch(string(page), -1) {
				mentioned[m[1]] = true
			}
			for name, def := range help {
				if !mentioned[name] {
					t.Errorf("%s has --%s (default %q), which flags.md does not mention", bin.pkg, name, def)
					continue
				}
				if doc, ok := documented[name]; ok && normal(doc) != normal(def) {
					t.Errorf("flags.md gives --%s the default %q; %s --help says %q", name, doc, bin.pkg, def)
				}
			}
			for name := range documented {
				if _, ok := help[name]; !ok {
					t.Errorf("flags.md's %s table has --%s, which %s does not have", bin.section, name, bin.pkg)
				}
			}
		})
	}
}

// helpOf builds pkg and returns its flags and their defaults as --help prints them
// ("" for a zero value, which the flag package does not print).
func helpOf(t *testing.T, pkg string) map[string]string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), filepath.Base(pkg))
	build := exec.Command("go", "build", "-o", exe, pkg)
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	help := exec.Command(exe, "--help")
	// The agent's --node-name defaults to $NODE_NAME: let it say so.
	help.Env = append(os.Environ(), "NODE_NAME=$NODE_NAME")
	out, _ := help.CombinedOutput() // --help exits 0 or 2 depending on the flag package's mood
	flags := map[string]string{}
	var name string
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		line := s.Text()
		if m := helpFlag.FindStringSubmatch(line); m != nil {
			name = m[1]
			flags[name] = ""
			continue
		}
		if m := helpDefault.FindStringSubmatch(strings.TrimSpace(line)); m != nil && name != "" {
			flags[name] = strings.Trim(m[1], `"`)
		}
	}
	if len(flags) == 0 {
		t.Fatalf("%s --help listed no flags:\n%s", pkg, out)
	}
	return flags
}

// splitSections maps each "## Title" of the page to its text.
func splitSections(page string) map[string]string {
	sections := map[string]string{}
	var title string
	for _, line := range strings.Split(page, "\n") {
		if t, ok := strings.CutPrefix(line, "## "); ok {
			title = strings.TrimSpace(t)
			continue
		}
		if title != "" {
			sections[title] += line + "\n"
		}
	}
	return sections
}

// normal makes a zero default and its spelled-out forms equal: the flag package
// prints nothing for "", false, 0 and 0s.
func normal(def string) string {
	switch def {
	case "", "false", "0", "0s":
		return ""
	}
	return def
}
