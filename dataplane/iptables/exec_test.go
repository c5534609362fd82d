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
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// variants are the iptables implementations the real-kernel tests run against:
// the system default and, where installed, each of nft and legacy explicitly.
var variants = []string{"", "nft", "legacy"}

// testNetns creates a network namespace for the test and returns an Exec that runs
// the variant's iptables tools inside it. The test is skipped where it cannot be
// done: not root, or no ip or iptables tools of that variant; on CI (CI=true),
// where .ci/run installs all of them and runs as root, it fails instead.
func testNetns(t testing.TB, variant string) *Exec {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to create a network namespace")
	}
	e := &Exec{Variant: variant}
	tools := []string{"ip"}
	for _, f := range model.Families {
		tools = append(tools, e.tool(f, ""), e.tool(f, "-save"), e.tool(f, "-restore"))
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, fmt.Sprintf("needs %s: %v", tool, err))
		}
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := "svcp-test-" + hex.EncodeToString(suffix[:])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		skipOrFail(t, fmt.Sprintf("cannot create a network namespace: %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("deleting network namespace %s: %v: %s", name, err, out)
		}
	})
	e.Prefix = []string{"ip", "netns", "exec", name}
	return e
}

// skipOrFail skips the test, or fails it on CI, where nothing may be skipped.
func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

var saveNoise = regexp.MustCompile(`(?m)^#.*\n|\[\d+:\d+\]`)

// realDump returns what iptables-save prints for the filter and nat tables of both
// families, without comments and counters, in Fake.Dump's layout.
func realDump(t *testing.T, e *Exec) string {
	t.Helper()
	var b strings.Builder
	for _, f := range model.Families {
		var tables strings.Builder
		for _, table := range []Table{TableFilter, TableNAT} {
			out, err := e.Save(context.Background(), f, table)
			if err != nil {
				t.Fatal(err)
			}
			tables.WriteString(saveNoise.ReplaceAllStringFunc(string(out), func(s string) string {
				if strings.HasPrefix(s, "[") {
					return "[0:0]"
				}
				return ""
			}))
		}
		if tables.Len() > 0 {
			b.WriteString("# " + f.String() + "\n" + tables.String())
		}
	}
	return b.String()
}

// TestRealIptablesMatchesFake applies the same syncs with the real tools, in a
// network namespace, and with the Fake, and expects iptables-save to print exactly
// what Fake.Dump prints. That proves the rules are accepted by the kernel, that
// they are written in iptables-save's canonical form, and that the Fake's
// --noflush, chain deletion and hook semantics are the real ones.
func TestRealIptablesMatchesFake(t *testing.T) {
	for _, variant := range variants {
		t.Run("variant="+variant, func(t *testing.T) { testRealIptablesMatchesFake(t, variant) })
	}
}

func testRealIptablesMatchesFake(t *testing.T, variant string) {
	real := testNetns(t, variant)
	fake := NewFake()
	ctx := context.Background()
	realBackend, err := New(Options{Executor: real})
	if err != nil {
		t.Fatal(err)
	}
	fakeBackend, err := New(Options{Executor: fake})
	if err != nil {
		t.Fatal(err)
	}

	web := func(endpoints ...string) *model.ServicePort {
		return svcPort("web", "10.96.0.10", eps(endpoints...), nodePort(30080), loadBalancer("192.0.2.10"),
			sourceRanges("203.0.113.0/24", "192.168.0.0/24"), affinity(10800))
	}
	first := state(
		web("10.244.1.5/local", "10.244.2.6", "10.244.2.7"),
		svcPort("local", "10.96.0.11", eps("10.244.2.6"), nodePort(30081), externalLocal(32000)),
		svcPort("none", "10.96.0.12", nil, nodePort(30082), externalIPs("198.51.100.20")),
		svcPort("itp", "10.96.0.13", eps("10.244.2.8"), internalLocal),
		svcPort("dns", "10.96.0.14", eps("10.244.2.9"), protocol(model.UDP, 53)),
		svcPort("sctp", "10.96.0.15", eps("10.244.1.9/local/notready/terminating"), protocol(model.SCTP, 9000), externalIPs("198.51.100.21")),
		svcPort("web6", "fd00:10:96::10", eps("fd00:10:244:1::5/local", "fd00:10:244:2::6"), nodePort(30083),
			loadBalancer("2001:db8:2::10"), sourceRanges("2001:db8:113::/64"), affinity(60)),
		svcPort("none6", "fd00:10:96::11", nil, externalLocal(0), nodePort(30084)),
	)
	second := state( // one endpoint changed, one service gone, one new
		web("10.244.1.5/local", "10.244.2.6", "10.244.2.17"),
		svcPort("local", "10.96.0.11", eps("10.244.2.6"), nodePort(30081), externalLocal(32000)),
		svcPort("itp", "10.96.0.13", eps("10.244.2.8"), internalLocal),
		svcPort("dns", "10.96.0.14", eps("10.244.2.9"), protocol(model.UDP, 53)),
		svcPort("new", "10.96.0.16", eps("10.244.2.10")),
		svcPort("web6", "fd00:10:96::10", eps("fd00:10:244:1::5/local"), nodePort(30083),
			loadBalancer("2001:db8:2::10"), sourceRanges("2001:db8:113::/64"), affinity(60)),
	)

	for i, st := range []*model.State{first, second, first} {
		for _, b := range []*Backend{realBackend, fakeBackend} {
			if err := b.Sync(ctx, st); err != nil {
				t.Fatalf("sync %d: %v", i, err)
			}
		}
		if got, want := realDump(t, real), fake.Dump(); got != want {
			t.Fatalf("after sync %d, iptables-save and the Fake differ:\n%s", i, lineDiff(want, got))
		}
		compareListRules(t, real, fake)
	}
	if st := realBackend.LastSync(model.IPv4); st.Full || st.Written == 0 || st.DeletedChains == 0 {
		t.Errorf("the last sync was not a partial one that wrote and deleted chains: %+v", st)
	}

	for _, b := range []*Backend{realBackend, fakeBackend} {
		if err := b.Cleanup(ctx); err != nil {
			t.Fatalf("cleanup: %v", err)
		}
	}
	got, want := realDump(t, real), fake.Dump()
	if got != want {
		t.Fatalf("after cleanup, iptables-save and the Fake differ:\n%s", lineDiff(want, got))
	}
	if strings.Contains(got, ChainPrefix) {
		t.Errorf("cleanup left %s chains or jumps:\n%s", ChainPrefix, got)
	}
	compareListRules(t, real, fake)
	// Cleaning a clean node is not an error.
	if err := realBackend.Cleanup(ctx); err != nil {
		t.Errorf("second cleanup: %v", err)
	}
}

// compareListRules expects ListRules to say the same of a few chains, present or
// not, from the real tools and from the Fake.
func compareListRules(t *testing.T, real *Exec, fake *Fake) {
	t.Helper()
	ctx := context.Background()
	for _, f := range model.Families {
		for _, c := range []struct {
			table Table
			chain string
		}{
			{TableFilter, chainCanary}, {TableNAT, chainCanary}, {TableNAT, "PREROUTING"}, {TableFilter, "FORWARD"}, {TableNAT, "SVCP-NOPE"},
		} {
			realRules, realExists, err := real.ListRules(ctx, f, c.table, c.chain)
			if err != nil {
				t.Fatal(err)
			}
			fakeRules, fakeExists, err := fake.ListRules(ctx, f, c.table, c.chain)
			if err != nil {
				t.Fatal(err)
			}
			if realExists != fakeExists || !slices.Equal(realRules, fakeRules) {
				t.Errorf("%s ListRules(%s, %s): iptables says %v %q, the Fake %v %q", f, c.table, c.chain, realExists, realRules, fakeExists, fakeRules)
			}
		}
	}
}

// iptablesIn runs the family's iptables in e's namespace, as an administrator or
// a firewall would.
func iptablesIn(t *testing.T, e *Exec, family model.Family, args ...string) {
	t.Helper()
	if err := e.run(context.Background(), family, args); err != nil {
		t.Fatal(err)
	}
}

// TestRealFlushIsRepaired flushes the tables of a network namespace with the real
// tools between two syncs, and expects the next sync to notice and put everything
// back: what one full sync on a clean node leaves.
func TestRealFlushIsRepaired(t *testing.T) {
	for _, variant := range variants {
		t.Run("variant="+variant, func(t *testing.T) { testRealFlushIsRepaired(t, variant) })
	}
}

func testRealFlushIsRepaired(t *testing.T, variant string) {
	real := testNetns(t, variant)
	ctx := context.Background()
	b, err := New(Options{Executor: real})
	if err != nil {
		t.Fatal(err)
	}
	st := state(
		svcPort("web", "10.96.0.10", eps("10.244.1.5/local", "10.244.2.6"), nodePort(30080), loadBalancer("192.0.2.10")),
		svcPort("none", "10.96.0.12", nil, externalIPs("198.51.100.20")),
		svcPort("web6", "fd00:10:96::10", eps("fd00:10:244:2::6"), nodePort(30083)),
	)
	want := fullSyncDump(t, st)
	for _, tt := range []struct {
		name    string
		flush   map[model.Family][][]string
		flushed map[model.Family][]Table
	}{
		{
			name:    "iptables -t nat -F",
			flush:   map[model.Family][][]string{model.IPv4: {{"-t", "nat", "-F"}}},
			flushed: map[model.Family][]Table{model.IPv4: {TableNAT}},
		},
		{
			name: "iptables -t nat -F -X, ip6tables -F -X",
			flush: map[model.Family][][]string{
				model.IPv4: {{"-t", "nat", "-F"}, {"-t", "nat", "-X"}},
				model.IPv6: {{"-F"}, {"-X"}},
			},
			flushed: map[model.Family][]Table{model.IPv4: {TableNAT}, model.IPv6: {TableFilter}},
		},
		{
			name: "firewall reload",
			flush: map[model.Family][][]string{
				model.IPv4: {{"-F"}, {"-X"}, {"-t", "nat", "-F"}, {"-t", "nat", "-X"}},
				model.IPv6: {{"-F"}, {"-X"}, {"-t", "nat", "-F"}, {"-t", "nat", "-X"}},
			},
			flushed: map[model.Family][]Table{model.IPv4: {TableFilter, TableNAT}, model.IPv6: {TableFilter, TableNAT}},
		},
	} {
		// A full sync then a partial one, as on a node that has run for a while.
		for range 2 {
			if err := b.Sync(ctx, st); err != nil {
				t.Fatal(err)
			}
		}
		for f, cmds := range tt.flush {
			for _, args := range cmds {
				iptablesIn(t, real, f, args...)
			}
		}
		if err := b.Sync(ctx, st); err != nil {
			t.Fatalf("%s: the sync after it: %v", tt.name, err)
		}
		for _, f := range model.Families {
			if got := b.LastSync(f); got.Full != (len(tt.flushed[f]) > 0) || !slices.Equal(got.Flushed, tt.flushed[f]) {
				t.Errorf("%s: %s sync after it: Full %v, Flushed %v; want Flushed %v", tt.name, f, got.Full, got.Flushed, tt.flushed[f])
			}
		}
		if got := realDump(t, real); got != want {
			t.Errorf("%s: the sync after it left a different state than a full sync on a clean node:\n%s", tt.name, lineDiff(want, got))
		}
	}
}

// TestRealStrayJumpsAreDeleted adds rules that jump into service chains from
// chains no sync rewrites, then syncs a new backend that no longer needs those
// chains: the real tools must accept the rules' deletion as the Fake does.
func TestRealStrayJumpsAreDeleted(t *testing.T) {
	for _, variant := range variants {
		t.Run("variant="+variant, func(t *testing.T) { testRealStrayJumpsAreDeleted(t, variant) })
	}
}

func testRealStrayJumpsAreDeleted(t *testing.T, variant string) {
	real := testNetns(t, variant)
	fake := NewFake()
	ctx := context.Background()
	first := threeServices("10.244.2.3", "10.244.2.4")
	next := state(first.IPv4.ServicePorts[0], first.IPv4.ServicePorts[2])
	for _, e := range []Executor{real, fake} {
		b, err := New(Options{Executor: e})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Sync(ctx, first); err != nil {
			t.Fatal(err)
		}
		if err := e.Restore(ctx, model.IPv4, []byte(strayJumps(first))); err != nil {
			t.Fatal(err)
		}
		restarted, err := New(Options{Executor: e})
		if err != nil {
			t.Fatal(err)
		}
		if err := restarted.Sync(ctx, next); err != nil {
			t.Fatalf("%T: the first sync of a new backend: %v", e, err)
		}
		if got := restarted.LastSync(model.IPv4); got.DeletedChains != 4 {
			t.Errorf("%T: deleted %d chains, want b's 4", e, got.DeletedChains)
		}
	}
	got := realDump(t, real)
	if want := fake.Dump(); got != want {
		t.Errorf("iptables-save and the Fake differ:\n%s", lineDiff(want, got))
	}
	if gone := chainsFor(first.IPv4.ServicePorts[1].Name).cluster; strings.Contains(got, gone) {
		t.Errorf("%s or a jump to it survived:\n%s", gone, got)
	}
}

func TestExecReportsTheFailingLine(t *testing.T) {
	for _, variant := range variants {
		t.Run("variant="+variant, func(t *testing.T) { testExecReportsTheFailingLine(t, variant) })
	}
}

func testExecReportsTheFailingLine(t *testing.T, variant string) {
	real := testNetns(t, variant)
	payload := "*nat\n:SVCP-A - [0:0]\n-A SVCP-A -j SVCP-MISSING\nCOMMIT\n"
	err := real.Restore(context.Background(), model.IPv4, []byte(payload))
	// Legacy iptables-restore blames line 3, the nf_tables one the COMMIT on line 4;
	// either way the offending rule is quoted.
	if err == nil || !strings.Contains(err.Error(), "3: -A SVCP-A -j SVCP-MISSING") || !regexp.MustCompile(`> [34]: `).MatchString(err.Error()) {
		t.Logf("output: %v", err)
		t.Errorf("Restore of a jump to a missing chain: %v", err)
	}
	if err := real.DeleteJump(context.Background(), model.IPv4, hooks[0]); err != nil {
		t.Errorf("DeleteJump of a missing hook: %v", err)
	}
	if err := real.EnsureJump(context.Background(), model.IPv4, hooks[0]); err == nil {
		t.Errorf("EnsureJump to a missing chain succeeded")
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	count := map[string]int{}
	for _, l := range strings.Split(got, "\n") {
		count[l]++
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if count[l] > 0 {
			count[l]--
			continue
		}
		b.WriteString("- " + l + "\n")
	}
	for _, l := range strings.Split(got, "\n") {
		if count[l] > 0 {
			count[l]--
			b.WriteString("+ " + l + "\n")
		}
	}
	if b.Len() == 0 {
		return "(same lines, different order)\n--- want\n" + want + "--- got\n" + got
	}
	return b.String()
}
