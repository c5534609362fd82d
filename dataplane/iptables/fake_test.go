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
	"slices"
	"strings"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

func TestFakeRejectsWhatIptablesRejects(t *testing.T) {
	base := "*nat\n:SVCP-A - [0:0]\n:SVCP-B - [0:0]\n-A SVCP-A -j SVCP-B\nCOMMIT\n"
	tests := []struct {
		name, payload, want string
	}{
		{"unknown table", "*natt\nCOMMIT\n", `table "natt" does not exist`},
		{"missing COMMIT", "*nat\n:SVCP-X - [0:0]\n", "COMMIT expected"},
		{"rule outside a table", "-A SVCP-A -j RETURN\n", "no table selected"},
		{"jump to a missing chain", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -j SVCP-NOPE\nCOMMIT\n", `couldn't load target "SVCP-NOPE"`},
		{"jump to a chain declared later", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -j SVCP-Y\n:SVCP-Y - [0:0]\nCOMMIT\n", "couldn't load target"},
		{"append to a missing chain", "*nat\n-A SVCP-NOPE -j RETURN\nCOMMIT\n", "chain SVCP-NOPE does not exist"},
		{"a 29-character chain name", "*nat\n:SVCP-SVC-ABCDEFGHIJKLMNOPQRST - [0:0]\nCOMMIT\n", "longer than 28"},
		{"DROP in nat", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -j DROP\nCOMMIT\n", "not intended for filtering"},
		{"DNAT in filter", "*filter\n:SVCP-X - [0:0]\n-A SVCP-X -p tcp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n", "only valid in the nat table"},
		{"REJECT in nat", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -j REJECT\nCOMMIT\n", "only valid in the filter table"},
		{"DNAT to a port without a protocol", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n", "port specification"},
		{"an IPv6 address in iptables", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -d fd00::1/128 -j RETURN\nCOMMIT\n", "not IPv4"},
		{"an IPv6 reject type in iptables", "*filter\n:SVCP-X - [0:0]\n-A SVCP-X -j REJECT --reject-with icmp6-port-unreachable\nCOMMIT\n", "unsupported reject type"},
		{"--dport without a protocol", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X --dport 80 -j RETURN\nCOMMIT\n", "needs -p"},
		{"a tcp match on udp", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -p udp -m tcp --dport 80 -j RETURN\nCOMMIT\n", "only valid for protocol tcp"},
		{"an option without its module", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X --comment x -j RETURN\nCOMMIT\n", "needs -m comment"},
		{"an unknown match", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -m bpf -j RETURN\nCOMMIT\n", "couldn't load match"},
		{"an unknown option", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X --frobnicate -j RETURN\nCOMMIT\n", "unknown option"},
		{"a bad probability", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -m statistic --mode random --probability 1.5 -j RETURN\nCOMMIT\n", "bad probability"},
		{"recent without a command", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -m recent --name SVCP-X --rsource -j RETURN\nCOMMIT\n", "exactly one of --set, --rcheck or --update"},
		{"recent with two commands", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -m recent --name SVCP-X --set --rcheck --rsource -j RETURN\nCOMMIT\n", "exactly one of --set, --rcheck or --update"},
		{"recent --set with --seconds", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -m recent --name SVCP-X --set --seconds 10 --rsource -j RETURN\nCOMMIT\n", "only go with --rcheck or --update"},
		{"recent --reap without --seconds", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -m recent --name SVCP-X --rcheck --reap --rsource -j RETURN\nCOMMIT\n", "--reap needs --seconds"},
		{"deleting a referenced chain", base + "*nat\n-X SVCP-B\nCOMMIT\n", "still referenced from SVCP-A"},
		{"DNAT reached from nat INPUT", "*nat\n:SVCP-X - [0:0]\n:SVCP-Y - [0:0]\n-A SVCP-X -j SVCP-Y\n-A SVCP-Y -p tcp -j DNAT --to-destination 10.0.0.1:80\n-A INPUT -j SVCP-X\nCOMMIT\n", "DNAT in SVCP-Y is reached from INPUT"},
		{"MASQUERADE reached from nat OUTPUT", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -j MASQUERADE\n-A OUTPUT -j SVCP-X\nCOMMIT\n", "MASQUERADE in SVCP-X is reached from OUTPUT"},
		{"deleting a chain with rules", base + "*nat\n-X SVCP-A\nCOMMIT\n", "not empty"},
		{"deleting a built-in chain", "*nat\n-X PREROUTING\nCOMMIT\n", "built-in"},
		{"a policy on a user chain", "*nat\n:SVCP-X ACCEPT [0:0]\nCOMMIT\n", "cannot have policy"},
		{"an unterminated quote", "*nat\n:SVCP-X - [0:0]\n-A SVCP-X -m comment --comment \"oops -j RETURN\nCOMMIT\n", "unterminated quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := NewFake()
			ctx := context.Background()
			payload := tt.payload
			if strings.HasPrefix(payload, base) {
				if err := fake.Restore(ctx, model.IPv4, []byte(base)); err != nil {
					t.Fatal(err)
				}
				payload = strings.TrimPrefix(payload, base)
			}
			before := fake.Dump()
			err := fake.Restore(ctx, model.IPv4, []byte(payload))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Restore = %v, want an error containing %q", err, tt.want)
			}
			if after := fake.Dump(); after != before {
				t.Errorf("a refused payload changed the state:\n%s", lineDiff(before, after))
			}
		})
	}
}

func TestFakeNoflushSemantics(t *testing.T) {
	ctx := context.Background()
	fake := NewFake()
	first := "*nat\n:SVCP-A - [0:0]\n:SVCP-B - [0:0]\n-A SVCP-A -j SVCP-B\n-A SVCP-B -j RETURN\nCOMMIT\n"
	if err := fake.Restore(ctx, model.IPv4, []byte(first)); err != nil {
		t.Fatal(err)
	}
	// Declaring SVCP-A flushes it; SVCP-B is not declared and keeps its rule, so it
	// can be jumped to. Deleting the now unreferenced, flushed chain works.
	second := "*nat\n:SVCP-A - [0:0]\n:SVCP-C - [0:0]\n:SVCP-SVC-ABCDEFGHIJKLMNOPQRS - [0:0]\n-X SVCP-SVC-ABCDEFGHIJKLMNOPQRS\n-A SVCP-A -m comment --comment \"a \\\"quoted\\\" word\" -j SVCP-B\n-X SVCP-C\nCOMMIT\n"
	if err := fake.Restore(ctx, model.IPv4, []byte(second)); err != nil {
		t.Fatal(err)
	}
	want := `# IPv4
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SVCP-A - [0:0]
:SVCP-B - [0:0]
-A SVCP-A -m comment --comment "a \"quoted\" word" -j SVCP-B
-A SVCP-B -j RETURN
COMMIT
`
	if got := fake.Dump(); got != want {
		t.Errorf("Dump:\n%s\nwant:\n%s", got, want)
	}
	saved, err := fake.Save(ctx, model.IPv4, TableNAT)
	if err != nil {
		t.Fatal(err)
	}
	if got := "# IPv4\n" + string(saved); got != want {
		t.Errorf("Save differs from Dump:\n%s", got)
	}
	if saved, err := fake.Save(ctx, model.IPv4, TableFilter); err != nil || len(saved) != 0 {
		t.Errorf("Save of an unused table = %q, %v", saved, err)
	}
	if len(fake.Restores(model.IPv4)) != 2 || string(fake.LastRestore(model.IPv4)) != second {
		t.Errorf("Restores are not recorded")
	}
}

func TestFakeJumps(t *testing.T) {
	ctx := context.Background()
	fake := NewFake()
	j := hooks[len(hooks)-1] // nat POSTROUTING -> SVCP-POSTROUTING
	if err := fake.EnsureJump(ctx, model.IPv4, j); err == nil {
		t.Fatalf("EnsureJump to a missing chain succeeded")
	}
	if err := fake.Restore(ctx, model.IPv4, []byte("*nat\n:SVCP-POSTROUTING - [0:0]\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := fake.EnsureJump(ctx, model.IPv4, j); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(fake.Dump(), "-A POSTROUTING"); n != 1 {
		t.Errorf("EnsureJump twice left %d rules", n)
	}
	if err := fake.Restore(ctx, model.IPv4, []byte("*nat\n-X SVCP-POSTROUTING\nCOMMIT\n")); err == nil {
		t.Errorf("deleting a hooked chain succeeded")
	}
	for range 2 {
		if err := fake.DeleteJump(ctx, model.IPv4, j); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(fake.Dump(), "-A POSTROUTING") {
		t.Errorf("DeleteJump left the rule")
	}
	if err := fake.DeleteJump(ctx, model.IPv6, j); err != nil {
		t.Errorf("DeleteJump in an empty family: %v", err)
	}
}

func TestSaveString(t *testing.T) {
	for in, want := range map[string]string{
		"simple":       "simple",
		"with_under-1": "with_under-1",
		"ns/svc:http":  `"ns/svc:http"`,
		"two words":    `"two words"`,
		`say "hi"`:     `"say \"hi\""`,
		"":             `""`,
	} {
		if got := saveString(in); got != want {
			t.Errorf("saveString(%q) = %s, want %s", in, got, want)
		}
		if in != "" {
			if args, err := tokenize("--comment " + saveString(in)); err != nil || len(args) != 2 || args[1] != in {
				t.Errorf("tokenize does not undo saveString(%q): %q, %v", in, args, err)
			}
		}
	}
}

func TestFakeListRules(t *testing.T) {
	ctx := context.Background()
	fake := NewFake()
	// A built-in chain of a table nothing has used exists, empty; a user chain
	// does not.
	if rules, exists, err := fake.ListRules(ctx, model.IPv4, TableNAT, "PREROUTING"); err != nil || !exists || len(rules) != 0 {
		t.Errorf("ListRules of a built-in chain of an unused table = %q, %v, %v", rules, exists, err)
	}
	if rules, exists, err := fake.ListRules(ctx, model.IPv4, TableNAT, "SVCP-A"); err != nil || exists || rules != nil {
		t.Errorf("ListRules of a missing chain = %q, %v, %v", rules, exists, err)
	}
	if _, _, err := fake.ListRules(ctx, model.IPv4, "natt", "SVCP-A"); err == nil {
		t.Errorf("ListRules in an unknown table succeeded")
	}

	payload := "*nat\n:SVCP-A - [0:0]\n:SVCP-B - [0:0]\n-A SVCP-A -m comment --comment \"a b\" -j SVCP-B\n-A SVCP-A -j RETURN\n-A PREROUTING -j SVCP-A\nCOMMIT\n"
	if err := fake.Restore(ctx, model.IPv4, []byte(payload)); err != nil {
		t.Fatal(err)
	}
	for chain, want := range map[string][]string{
		"SVCP-A":     {`-A SVCP-A -m comment --comment "a b" -j SVCP-B`, "-A SVCP-A -j RETURN"},
		"SVCP-B":     nil,
		"PREROUTING": {"-A PREROUTING -j SVCP-A"},
	} {
		rules, exists, err := fake.ListRules(ctx, model.IPv4, TableNAT, chain)
		if err != nil || !exists || !slices.Equal(rules, want) {
			t.Errorf("ListRules(%s) = %q, %v, %v; want %q", chain, rules, exists, err, want)
		}
	}
	if _, exists, _ := fake.ListRules(ctx, model.IPv6, TableNAT, "SVCP-A"); exists {
		t.Errorf("the IPv4 chain is listed in IPv6")
	}
}
