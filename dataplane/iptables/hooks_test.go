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
	"context"
	"strings"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// jumpCounter is the Fake, counting the hooks ensured one command at a time
// (iptables -C, then -I when missing), per table.
type jumpCounter struct {
	*Fake
	ensured map[Table]int
}

func (j *jumpCounter) EnsureJump(ctx context.Context, family model.Family, jump Jump) error {
	j.ensured[jump.Table]++
	return j.Fake.EnsureJump(ctx, family, jump)
}

// TestHooksFromTheListing checks that full syncs put the hooks in without one
// command each (with iptables-legacy each reads, and -I rewrites, the whole table,
// and each is one more run of iptables): in the restore when the table's listing
// lacks them, not at all when it has them, and with iptables -C only when a rule
// jumps to the same chain but reads differently (an older agent's hook). Every time
// each hook ends up once, on top. Addresses as in the shared fixtures (cluster IPs
// 10.96.0.0/12, pods 10.244.0.0/16).
func TestHooksFromTheListing(t *testing.T) {
	ctx := context.Background()
	st := state(svcPort("a", "10.96.0.1", eps("10.244.2.1")))
	natHooks, filterHooks := 0, 0
	for _, j := range hooks {
		if j.Table == TableNAT {
			natHooks++
		} else {
			filterHooks++
		}
	}
	want := fullSyncDump(t, st, model.IPv4)

	fake := NewFake()
	exec := &jumpCounter{Fake: fake, ensured: map[Table]int{}}
	b, err := New(Options{Executor: exec, Families: []model.Family{model.IPv4}})
	if err != nil {
		t.Fatal(err)
	}
	// A clean node, then a node with every hook in place.
	for _, round := range []string{"clean node", "hooks in place"} {
		exec.ensured = map[Table]int{}
		b.RequestFullSync()
		if err := b.Sync(ctx, st); err != nil {
			t.Fatal(err)
		}
		if n := exec.ensured[TableNAT]; n != 0 {
			t.Errorf("%s: %d nat hooks ensured one by one, want 0", round, n)
		}
		if n := exec.ensured[TableFilter]; n != 0 {
			t.Errorf("%s: %d filter hooks ensured one by one, want 0", round, n)
		}
		if got := fake.Dump(); got != want {
			t.Errorf("%s: the node holds:\n%s\nwant:\n%s", round, got, want)
		}
	}

	// Our PREROUTING and filter FORWARD-to-SVCP-FORWARD hooks gone, an older
	// agent's without a comment in their place: iptables -C decides, and ours go on
	// top of them. The filter OUTPUT hooks gone: back in the restore.
	old := "*filter\n-F FORWARD\n-F OUTPUT\n-I FORWARD 1 -j SVCP-FORWARD\nCOMMIT\n*nat\n-F PREROUTING\n-I PREROUTING 1 -j SVCP-SERVICES\nCOMMIT\n"
	if err := fake.Restore(ctx, model.IPv4, []byte(old)); err != nil {
		t.Fatal(err)
	}
	exec.ensured = map[Table]int{}
	b.RequestFullSync()
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if n := exec.ensured[TableNAT]; n != 1 {
		t.Errorf("with a differently written hook: %d nat hooks ensured one by one, want 1", n)
	}
	// FORWARD's other hooks jump to other chains: missing, so in the restore.
	if n := exec.ensured[TableFilter]; n != 1 {
		t.Errorf("with a differently written hook: %d filter hooks ensured one by one, want 1", n)
	}
	dump := fake.Dump()
	for _, c := range []struct{ ours, old string }{
		{`-A PREROUTING -m comment --comment "` + commentServicePortals + `" -j SVCP-SERVICES`, "-A PREROUTING -j SVCP-SERVICES"},
		{`-A FORWARD -m comment --comment "` + commentForward + `" -j SVCP-FORWARD`, "-A FORWARD -j SVCP-FORWARD"},
	} {
		if strings.Count(dump, c.ours) != 1 || strings.Index(dump, c.ours) > strings.Index(dump, c.old) {
			t.Errorf("want %q once, above %q:\n%s", c.ours, c.old, dump)
		}
	}
	for _, j := range hooks {
		if j.Table == TableFilter && j.Chain == "OUTPUT" {
			rule := strings.Join(append([]string{"-A", j.Chain}, j.Match...), " ") + " -m comment --comment " + saveString(j.Comment) + " -j " + j.Target + "\n"
			if n := strings.Count(dump, rule); n != 1 {
				t.Errorf("filter hook %q is there %d times, want once:\n%s", rule, n, dump)
			}
		}
	}
	if natHooks != 3 || filterHooks != 9 {
		t.Errorf("%d nat and %d filter hooks; this test assumes PREROUTING, OUTPUT and POSTROUTING, and nine in filter", natHooks, filterHooks)
	}
}
