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
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/model"
)

var (
	_ dataplane.Backend       = &Backend{}
	_ dataplane.FullSyncer    = &Backend{}
	_ dataplane.WriteReporter = &Backend{}
)

func newBackend(t *testing.T, fake *Fake, families ...model.Family) *Backend {
	t.Helper()
	b, err := New(Options{Executor: fake, Families: families})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fullSyncDump returns the Fake's dump after one full sync of st, for families, on
// a clean node: what any sequence of syncs ending with st must leave.
func fullSyncDump(t *testing.T, st *model.State, families ...model.Family) string {
	t.Helper()
	fake := NewFake()
	if err := newBackend(t, fake, families...).Sync(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	return fake.Dump()
}

var declared = regexp.MustCompile(`(?m)^:(\S+) `)

// declaredChains returns the chains a payload declares, i.e. writes or flushes.
func declaredChains(payload []byte) []string {
	var out []string
	for _, m := range declared.FindAllSubmatch(payload, -1) {
		out = append(out, string(m[1]))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func threeServices(bEndpoints ...string) *model.State {
	return state(
		svcPort("a", "10.96.0.1", eps("10.244.2.1", "10.244.2.2")),
		svcPort("b", "10.96.0.2", eps(bEndpoints...), nodePort(30002)),
		svcPort("c", "10.96.0.3", eps("10.244.2.5"), loadBalancer("192.0.2.3")),
	)
}

func TestPartialSyncWritesOnlyTheChangedService(t *testing.T) {
	ctx := context.Background()
	fake := NewFake()
	b := newBackend(t, fake, model.IPv4)
	if err := b.Sync(ctx, threeServices("10.244.2.3", "10.244.2.4")); err != nil {
		t.Fatal(err)
	}
	if st := b.LastSync(model.IPv4); !st.Full || st.Written != 3 {
		t.Fatalf("first sync: %+v, want a full sync writing 3 service ports", st)
	}

	// One endpoint of b is replaced.
	next := threeServices("10.244.2.3", "10.244.2.14")
	if err := b.Sync(ctx, next); err != nil {
		t.Fatal(err)
	}
	bName := next.IPv4.ServicePorts[1].Name
	bChains := chainsFor(bName)
	kept, added, removed := endpointChain(bName, "10.244.2.3:8080"), endpointChain(bName, "10.244.2.14:8080"), endpointChain(bName, "10.244.2.4:8080")

	payload := fake.LastRestore(model.IPv4)
	want := []string{chainExternalServices, chainFirewall, chainForward, chainMarkMasq, chainNodePorts, chainPostrouting, chainServices,
		bChains.external, kept, added, removed, bChains.cluster}
	slices.Sort(want)
	if got := declaredChains(payload); !slices.Equal(got, want) {
		t.Errorf("the partial payload declares\n%q\nwant the fixed chains and b's only:\n%q", got, want)
	}
	if !strings.Contains(string(payload), "\n-X "+removed+"\n") || strings.Count(string(payload), "-X ") != 1 {
		t.Errorf("the partial payload should delete exactly %s:\n%s", removed, payload)
	}
	if st := b.LastSync(model.IPv4); st.Full || st.Written != 1 || st.DeletedChains != 1 || st.ServicePorts != 3 {
		t.Errorf("partial sync stats: %+v", st)
	}
	if got, want := fake.Dump(), fullSyncDump(t, next, model.IPv4); got != want {
		t.Errorf("a partial sync left a different state than a full sync:\n%s", lineDiff(want, got))
	}

	// Nothing changed: nothing is written.
	restores := len(fake.restores[model.IPv4])
	if err := b.Sync(ctx, next); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.restores[model.IPv4]) - restores; n != 0 {
		t.Errorf("a sync with nothing new ran iptables-restore %d times, want 0", n)
	}
	if st := b.LastSync(model.IPv4); st.Full || st.Written != 0 || st.PayloadBytes != 0 {
		t.Errorf("a sync with nothing new: %+v", st)
	}

	// A change to the fixed chains alone (a node port, whose rule is in
	// SVCP-NODEPORTS) is written, with no service chain.
	withNodePort := threeServices("10.244.2.3", "10.244.2.14")
	nodePort(30123)(withNodePort.IPv4.ServicePorts[0])
	if err := b.Sync(ctx, withNodePort); err != nil {
		t.Fatal(err)
	}
	if got, want := fake.Dump(), fullSyncDump(t, withNodePort, model.IPv4); got != want {
		t.Errorf("a change of the fixed chains was not written:\n%s", lineDiff(want, got))
	}
}

func TestPartialSyncDeletesTheChainsOfRemovedServices(t *testing.T) {
	ctx := context.Background()
	fake := NewFake()
	b := newBackend(t, fake, model.IPv4)
	first := threeServices("10.244.2.3", "10.244.2.4")
	if err := b.Sync(ctx, first); err != nil {
		t.Fatal(err)
	}
	next := state(first.IPv4.ServicePorts[0], first.IPv4.ServicePorts[2]) // b is gone
	if err := b.Sync(ctx, next); err != nil {
		t.Fatal(err)
	}
	bName := first.IPv4.ServicePorts[1].Name
	var wantDeleted []string
	for _, c := range []string{chainsFor(bName).external, chainsFor(bName).cluster, endpointChain(bName, "10.244.2.3:8080"), endpointChain(bName, "10.244.2.4:8080")} {
		wantDeleted = append(wantDeleted, "-X "+c)
	}
	slices.Sort(wantDeleted)
	var gotDeleted []string
	for _, l := range strings.Split(string(fake.LastRestore(model.IPv4)), "\n") {
		if strings.HasPrefix(l, "-X ") {
			gotDeleted = append(gotDeleted, l)
		}
	}
	if !slices.Equal(gotDeleted, wantDeleted) {
		t.Errorf("deleted %q, want %q", gotDeleted, wantDeleted)
	}
	if got, want := fake.Dump(), fullSyncDump(t, next, model.IPv4); got != want {
		t.Errorf("a partial sync left a different state than a full sync:\n%s", lineDiff(want, got))
	}
}

// TestPartialSyncsConverge runs random sequences of states through partial syncs
// and checks each time that the kernel holds what one full sync would have left.
// Half the services stay as they were from one state to the next, as they mostly
// do on a node, so that partial renders reuse their cached text; pairs of services
// share a health check node port, whose rule the first of them that exists
// writes; and the view-wide settings change now and then, which makes every port
// render again.
func TestPartialSyncsConverge(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	last := map[int]*model.ServicePort{}
	randomState := func() *model.State {
		var ports []*model.ServicePort
		for i := range 6 {
			if rng.IntN(4) == 0 {
				delete(last, i)
				continue // the service is absent this time
			}
			if p, ok := last[i]; ok && rng.IntN(2) == 0 {
				cp := *p
				ports = append(ports, &cp)
				continue
			}
			var specs []string
			for e := range 4 {
				if rng.IntN(2) == 0 {
					continue
				}
				spec := fmt.Sprintf("10.244.%d.%d", 1+rng.IntN(2), 10*i+e)
				if spec[7] == '1' {
					spec += "/local"
				}
				if rng.IntN(4) == 0 {
					spec += "/notready/terminating"
				}
				specs = append(specs, spec)
			}
			var opts []func(*model.ServicePort)
			if rng.IntN(2) == 0 {
				opts = append(opts, nodePort(uint16(30000+i)))
			}
			if rng.IntN(3) == 0 {
				opts = append(opts, externalLocal(uint16(31000+i/2)))
			}
			if rng.IntN(3) == 0 {
				opts = append(opts, internalLocal)
			}
			if rng.IntN(3) == 0 {
				opts = append(opts, loadBalancer(fmt.Sprintf("192.0.2.%d", i)), sourceRanges("203.0.113.0/24"))
			}
			if rng.IntN(3) == 0 {
				opts = append(opts, affinity(60))
			}
			last[i] = svcPort(fmt.Sprintf("s%d", i), fmt.Sprintf("10.96.0.%d", i), eps(specs...), opts...)
			cp := *last[i]
			ports = append(ports, &cp)
		}
		st := state(ports...)
		switch rng.IntN(10) {
		case 0:
			st.IPv4.MasqueradeAll = true
		case 1:
			st.IPv4.ClusterCIDR = netip.Prefix{}
		}
		return st
	}

	fake := NewFake()
	b := newBackend(t, fake)
	for i := range 200 {
		st := randomState()
		if err := b.Sync(context.Background(), st); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
		if got, want := fake.Dump(), fullSyncDump(t, st); got != want {
			t.Fatalf("after sync %d the state differs from a full sync's:\n%s", i, lineDiff(want, got))
		}
	}
}

func TestFailedSyncForcesAFullSync(t *testing.T) {
	ctx := context.Background()
	fake := NewFake()
	b := newBackend(t, fake, model.IPv4)
	if err := b.Sync(ctx, threeServices("10.244.2.3")); err != nil {
		t.Fatal(err)
	}
	fake.FailNextRestore(errors.New("iptables-restore: line 7 failed"))
	next := threeServices("10.244.2.4")
	err := b.Sync(ctx, next)
	if err == nil || !strings.Contains(err.Error(), "IPv4: iptables-restore: line 7 failed") {
		t.Fatalf("Sync with a failing restore = %v", err)
	}
	if st := b.LastSync(model.IPv4); st.Err == nil || st.Full {
		t.Errorf("stats of the failed sync: %+v", st)
	}
	if err := b.Sync(ctx, next); err != nil {
		t.Fatal(err)
	}
	if st := b.LastSync(model.IPv4); !st.Full {
		t.Errorf("the sync after a failure was not full: %+v", st)
	}
	if got, want := fake.Dump(), fullSyncDump(t, next, model.IPv4); got != want {
		t.Errorf("state after recovery:\n%s", lineDiff(want, got))
	}
}

// TestTamperingIsRepaired removes a chain the backend relies on behind its back,
// leaving the canaries: the next partial sync fails, as iptables-restore would,
// and the full one after it puts everything back.
func TestTamperingIsRepaired(t *testing.T) {
	ctx := context.Background()
	fake := NewFake()
	b := newBackend(t, fake, model.IPv4)
	st := threeServices("10.244.2.3")
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	aChain := chainsFor(st.IPv4.ServicePorts[0].Name).cluster
	tamper := fmt.Sprintf("*nat\n:%s - [0:0]\n:%s - [0:0]\n-X %s\nCOMMIT\n", chainServices, aChain, aChain)
	if err := fake.Restore(ctx, model.IPv4, []byte(tamper)); err != nil {
		t.Fatal(err)
	}
	// A partial sync with something to write (a second endpoint for b).
	if err := b.Sync(ctx, threeServices("10.244.2.3", "10.244.2.9")); err == nil || !strings.Contains(err.Error(), "no such chain") {
		t.Fatalf("a partial sync over a missing chain = %v, want the restore to fail", err)
	}
	if got := b.LastSync(model.IPv4); got.Full || got.Flushed != nil {
		t.Errorf("the failed sync took the tampering for a flush: %+v", got)
	}
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got, want := fake.Dump(), fullSyncDump(t, st, model.IPv4); got != want {
		t.Errorf("the full sync did not repair the tampering:\n%s", lineDiff(want, got))
	}
}

func TestRequestFullSyncReinstallsHooks(t *testing.T) {
	ctx := context.Background()
	fake := NewFake()
	b := newBackend(t, fake, model.IPv4)
	st := threeServices("10.244.2.3")
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	for _, j := range hooks {
		if err := fake.DeleteJump(ctx, model.IPv4, j); err != nil {
			t.Fatal(err)
		}
	}
	b.RequestFullSync()
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got, want := fake.Dump(), fullSyncDump(t, st, model.IPv4); got != want {
		t.Errorf("hooks not reinstalled:\n%s", lineDiff(want, got))
	}
}

// TestFullSyncRemovesChainsOfAnEarlierAgent starts a new backend on a node where an
// earlier agent left chains for services that no longer exist.
func TestFullSyncRemovesChainsOfAnEarlierAgent(t *testing.T) {
	ctx := context.Background()
	fake := NewFake()
	if err := newBackend(t, fake).Sync(ctx, behaviourState); err != nil {
		t.Fatal(err)
	}
	st := threeServices("10.244.2.3")
	b := newBackend(t, fake)
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got, want := fake.Dump(), fullSyncDump(t, st); got != want {
		t.Errorf("stale chains survived the first sync:\n%s", lineDiff(want, got))
	}
	if st := b.LastSync(model.IPv4); st.DeletedChains == 0 {
		t.Errorf("no chains deleted: %+v", st)
	}
}

func TestCleanup(t *testing.T) {
	ctx := context.Background()
	fake := NewFake()
	b := newBackend(t, fake)
	// A rule of our own and one of someone else, to see that only ours goes.
	other := "*nat\n:OTHER - [0:0]\n-A PREROUTING -j OTHER\nCOMMIT\n"
	if err := fake.Restore(ctx, model.IPv4, []byte(other)); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx, behaviourState); err != nil {
		t.Fatal(err)
	}
	// An older agent's hook, with other words, still jumping into our chains.
	oldHook := Jump{Table: TableNAT, Chain: "OUTPUT", Target: chainServices, Comment: "old svcplane hook"}
	if err := fake.EnsureJump(ctx, model.IPv4, oldHook); err != nil {
		t.Fatal(err)
	}

	if err := b.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	dump := fake.Dump()
	if strings.Contains(dump, ChainPrefix) {
		t.Errorf("cleanup left %s chains or jumps:\n%s", ChainPrefix, dump)
	}
	if !strings.Contains(dump, "-A PREROUTING -j OTHER") {
		t.Errorf("cleanup removed someone else's rule:\n%s", dump)
	}
	if err := b.Cleanup(ctx); err != nil {
		t.Errorf("cleanup of a clean node: %v", err)
	}
	if err := newBackend(t, NewFake()).Cleanup(ctx); err != nil {
		t.Errorf("cleanup of a node never synced: %v", err)
	}

	// The sync after a cleanup is a full one and puts everything back.
	if err := b.Sync(ctx, behaviourState); err != nil {
		t.Fatal(err)
	}
	if st := b.LastSync(model.IPv4); !st.Full {
		t.Errorf("the sync after cleanup was not full: %+v", st)
	}
}

func TestFamiliesAreIndependent(t *testing.T) {
	ctx := context.Background()
	fake := NewFake()
	b := newBackend(t, fake, model.IPv4)
	if err := b.Sync(ctx, behaviourState); err != nil {
		t.Fatal(err)
	}
	if fake.Restores(model.IPv6) != nil || strings.Contains(fake.Dump(), "# IPv6") {
		t.Errorf("an IPv4-only backend touched IPv6")
	}

	// A failure in one family does not stop the other, and is reported with it.
	both := newBackend(t, NewFake())
	both.exec.(*Fake).FailNextRestore(errors.New("boom"))
	err := both.Sync(ctx, behaviourState)
	if err == nil || !strings.Contains(err.Error(), "IPv4: boom") {
		t.Fatalf("Sync = %v", err)
	}
	if st := both.LastSync(model.IPv6); st.Err != nil || st.Written == 0 {
		t.Errorf("IPv6 after an IPv4 failure: %+v", st)
	}
}

func TestNewValidates(t *testing.T) {
	bit := 32
	for _, opts := range []Options{
		{},
		{Executor: NewFake(), MasqueradeBit: &bit},
		{Executor: NewFake(), Families: []model.Family{5}},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("New(%+v) succeeded", opts)
		}
	}
	bit = 4
	fake := NewFake()
	b, err := New(Options{Executor: fake, MasqueradeBit: &bit, Families: []model.Family{model.IPv4}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(context.Background(), state()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fake.Dump(), "-j MARK --set-xmark 0x10/0x10") {
		t.Errorf("masquerade bit 4 not used:\n%s", fake.Dump())
	}
}

func TestChainNamesFitTheKernelLimit(t *testing.T) {
	long := model.ServicePortName{Namespace: strings.Repeat("n", 63), Name: strings.Repeat("s", 63), Port: strings.Repeat("p", 15), Protocol: model.SCTP}
	c := chainsFor(long)
	for _, name := range []string{c.cluster, c.local, c.external, c.firewall, endpointChain(long, "[fd00:10:244:ffff:ffff:ffff:ffff:ffff]:65535")} {
		if len(name) > maxChainName {
			t.Errorf("%s is %d characters, more than %d", name, len(name), maxChainName)
		}
	}
	for _, name := range slices.Concat(fixedChains[TableFilter], fixedChains[TableNAT]) {
		if len(name) > maxChainName || !strings.HasPrefix(name, ChainPrefix) {
			t.Errorf("fixed chain %s is not a valid name of ours", name)
		}
	}
	// Names depend on the protocol: TCP and UDP ports of the same name differ.
	tcp := model.ServicePortName{Namespace: "ns", Name: "dns", Port: "dns", Protocol: model.TCP}
	udp := tcp
	udp.Protocol = model.UDP
	if chainsFor(tcp) == chainsFor(udp) {
		t.Errorf("TCP and UDP ports share chain names")
	}
}

// flushTable does to the Fake what iptables -t table -F does, and -X as well when
// deleteChains is set: every chain of the table loses its rules, every user chain
// is deleted.
func flushTable(t *testing.T, fake *Fake, family model.Family, table Table, deleteChains bool) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%s\n", table)
	chains := fake.chainNames(family, table)
	for _, c := range chains {
		fmt.Fprintf(&b, "-F %s\n", c)
	}
	if deleteChains {
		for _, c := range chains[len(builtinChains[table]):] {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
	}
	b.WriteString("COMMIT\n")
	if err := fake.Restore(context.Background(), family, []byte(b.String())); err != nil {
		t.Fatal(err)
	}
}

// logSink returns a context whose logger writes into the returned builder.
func logSink() (context.Context, *strings.Builder) {
	var b strings.Builder
	log := funcr.New(func(prefix, args string) { b.WriteString(prefix + " " + args + "\n") }, funcr.Options{})
	return logr.NewContext(context.Background(), log), &b
}

// TestFlushIsNoticedByTheNextSync flushes tables behind the backend's back between
// two partial syncs: the next sync finds the canary gone and is a full one, which
// puts back every chain, rule and hook at once. Partial syncs alone could not:
// they trust their record, so after iptables -t nat -F they would succeed and
// leave every service chain empty and nothing hooked.
func TestFlushIsNoticedByTheNextSync(t *testing.T) {
	for _, tt := range []struct {
		name         string
		tables       []Table
		deleteChains bool
	}{
		{"iptables -t nat -F", []Table{TableNAT}, false},
		{"iptables -t nat -F -X", []Table{TableNAT}, true},
		{"iptables -F -X", []Table{TableFilter}, true},
		{"firewall reload", []Table{TableFilter, TableNAT}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, logs := logSink()
			fake := NewFake()
			b := newBackend(t, fake)
			st := state(
				svcPort("a", "10.96.0.1", eps("10.244.2.1", "10.244.2.2"), nodePort(30001)),
				svcPort("a6", "fd00:10:96::1", eps("fd00:10:244:2::1")),
			)
			// A full sync, then a partial one with something to write.
			before := state(
				svcPort("a", "10.96.0.1", eps("10.244.2.1"), nodePort(30001)),
				svcPort("a6", "fd00:10:96::1", eps("fd00:10:244:2::1")),
			)
			for _, st := range []*model.State{before, st} {
				if err := b.Sync(ctx, st); err != nil {
					t.Fatal(err)
				}
			}
			if st := b.LastSync(model.IPv4); st.Full || len(st.Flushed) != 0 {
				t.Fatalf("the second sync was not a plain partial one: %+v", st)
			}
			if payload := fake.LastRestore(model.IPv4); slices.Contains(declaredChains(payload), chainCanary) {
				t.Errorf("a partial sync rewrote the canary:\n%s", payload)
			}

			for _, table := range tt.tables {
				flushTable(t, fake, model.IPv4, table, tt.deleteChains)
			}
			if err := b.Sync(ctx, st); err != nil {
				t.Fatal(err)
			}
			if got := b.LastSync(model.IPv4); !got.Full || !slices.Equal(got.Flushed, tt.tables) {
				t.Errorf("the sync after the flush: Full %v, Flushed %v; want a full sync, Flushed %v", got.Full, got.Flushed, tt.tables)
			}
			if got := b.LastSync(model.IPv6); got.Full || len(got.Flushed) != 0 {
				t.Errorf("IPv6, which nothing flushed, was synced fully: %+v", got)
			}
			if got, want := fake.Dump(), fullSyncDump(t, st); got != want {
				t.Errorf("the sync after the flush did not restore everything:\n%s", lineDiff(want, got))
			}
			var quoted []string
			for _, table := range tt.tables {
				quoted = append(quoted, `"`+string(table)+`"`)
			}
			for _, want := range []string{"resyncing fully", `"family"="IPv4"`, `"tables"=[` + strings.Join(quoted, " ") + `]`} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the log does not say %q:\n%s", want, logs)
				}
			}

			if err := b.Sync(ctx, st); err != nil {
				t.Fatal(err)
			}
			if got := b.LastSync(model.IPv4); got.Full {
				t.Errorf("the sync after the repair was full again: %+v", got)
			}
		})
	}
}

// listFails is a Fake whose ListRules fails, as when iptables cannot be run.
type listFails struct{ *Fake }

func (listFails) ListRules(context.Context, model.Family, Table, string) ([]string, bool, error) {
	return nil, false, errors.New("iptables: Resource temporarily unavailable")
}

func TestCanaryCheckFailureForcesAFullSync(t *testing.T) {
	ctx, logs := logSink()
	b, err := New(Options{Executor: listFails{NewFake()}, Families: []model.Family{model.IPv4}})
	if err != nil {
		t.Fatal(err)
	}
	st := threeServices("10.244.2.3")
	for i := range 2 {
		if err := b.Sync(ctx, st); err != nil {
			t.Fatal(err)
		}
		if got := b.LastSync(model.IPv4); !got.Full {
			t.Errorf("sync %d was not full although the canaries could not be listed: %+v", i, got)
		}
	}
	if !strings.Contains(logs.String(), "Resource temporarily unavailable") {
		t.Errorf("the failed check was not logged:\n%s", logs)
	}
}

// TestDeletedHookWaitsForAFullSync deletes one hook and nothing else. The canaries
// do not notice, since nothing was flushed, and partial syncs do not check hooks
// (see Sync for why); the next full sync puts the hook back.
func TestDeletedHookWaitsForAFullSync(t *testing.T) {
	ctx := context.Background()
	fake := NewFake()
	b := newBackend(t, fake, model.IPv4)
	st := threeServices("10.244.2.3")
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	prerouting := hooks[slices.IndexFunc(hooks, func(j Jump) bool { return j.Table == TableNAT && j.Chain == "PREROUTING" })]
	if err := fake.DeleteJump(ctx, model.IPv4, prerouting); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got := b.LastSync(model.IPv4); got.Full || strings.Contains(fake.Dump(), "-A PREROUTING") {
		t.Errorf("a partial sync noticed the deleted hook (Full %v), so hooks are checked after all: update Sync's comment", got.Full)
	}
	b.RequestFullSync()
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got, want := fake.Dump(), fullSyncDump(t, st, model.IPv4); got != want {
		t.Errorf("the full sync did not put the hook back:\n%s", lineDiff(want, got))
	}
}

// strayJumps returns a payload adding rules that jump into the chains of st's
// service port "b" from chains no sync rewrites, as an older agent's hook or an
// administrator would, and one into the chain of "a", which stays. (Only
// PREROUTING and OUTPUT, and chains they do not reach, can jump into a service
// chain: the kernel refuses DNAT reached from nat INPUT or POSTROUTING.)
func strayJumps(st *model.State) string {
	a, b := st.IPv4.ServicePorts[0].Name, st.IPv4.ServicePorts[1].Name
	return "*nat\n:MINE - [0:0]\n" +
		"-A MINE -j " + endpointChain(b, "10.244.2.3:8080") + "\n" +
		"-A PREROUTING -m comment --comment \"old svcplane hook\" -j " + chainsFor(b).cluster + "\n" +
		"-A OUTPUT -p tcp -j " + chainsFor(b).external + "\n" +
		"-A OUTPUT -j " + chainsFor(a).cluster + "\n" +
		"COMMIT\n"
}

// TestStrayJumpsDoNotWedgeSyncs adds rules of someone else's that jump into
// service chains: deleting those chains must not fail every sync from then on.
func TestStrayJumpsDoNotWedgeSyncs(t *testing.T) {
	first := threeServices("10.244.2.3", "10.244.2.4")
	next := state(first.IPv4.ServicePorts[0], first.IPv4.ServicePorts[2]) // b is gone
	bName := first.IPv4.ServicePorts[1].Name
	check := func(t *testing.T, fake *Fake, b *Backend) {
		t.Helper()
		dump := fake.Dump()
		for _, gone := range []string{chainsFor(bName).cluster, chainsFor(bName).external, endpointChain(bName, "10.244.2.3:8080")} {
			if strings.Contains(dump, gone) {
				t.Errorf("%s or a jump to it survived:\n%s", gone, dump)
			}
		}
		// A jump into a chain that stays is left alone, as is the chain holding a
		// deleted rule.
		for _, kept := range []string{"-A OUTPUT -j " + chainsFor(first.IPv4.ServicePorts[0].Name).cluster, ":MINE - [0:0]"} {
			if !strings.Contains(dump, kept) {
				t.Errorf("%q was removed:\n%s", kept, dump)
			}
		}
		if got := b.LastSync(model.IPv4); !got.Full || got.DeletedChains != 4 {
			t.Errorf("want a full sync deleting b's 4 chains: %+v", got)
		}
	}

	t.Run("a restarted agent", func(t *testing.T) {
		ctx, logs := logSink()
		fake := NewFake()
		if err := newBackend(t, fake, model.IPv4).Sync(ctx, first); err != nil {
			t.Fatal(err)
		}
		if err := fake.Restore(ctx, model.IPv4, []byte(strayJumps(first))); err != nil {
			t.Fatal(err)
		}
		b := newBackend(t, fake, model.IPv4)
		if err := b.Sync(ctx, next); err != nil {
			t.Fatalf("the first sync of a new agent: %v", err)
		}
		check(t, fake, b)
		if n := strings.Count(logs.String(), "deleting someone else's rule that jumps into a chain being removed"); n != 3 {
			t.Errorf("logged %d deleted rules, want 3:\n%s", n, logs)
		}
	})

	t.Run("a running agent", func(t *testing.T) {
		// A partial sync cannot see the rules: it fails, as iptables-restore
		// would, and the full sync after it succeeds.
		ctx := context.Background()
		fake := NewFake()
		b := newBackend(t, fake, model.IPv4)
		if err := b.Sync(ctx, first); err != nil {
			t.Fatal(err)
		}
		if err := fake.Restore(ctx, model.IPv4, []byte(strayJumps(first))); err != nil {
			t.Fatal(err)
		}
		if err := b.Sync(ctx, next); err == nil || !strings.Contains(err.Error(), "still referenced") {
			t.Fatalf("the partial sync = %v, want the deletion refused", err)
		}
		if err := b.Sync(ctx, next); err != nil {
			t.Fatalf("the full sync after the failure: %v", err)
		}
		check(t, fake, b)
	})
}
