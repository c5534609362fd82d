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

package nftables

// The fixtures follow dataplanetest's IP conventions.

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/model"
	dt "github.com/svcplane/svcplane/internal/dataplanetest"
)

func threeServices(bEndpoints ...string) *model.State {
	return dt.State(
		dt.SvcPort("a", "10.96.0.1", dt.Eps("10.244.2.1", "10.244.2.2")),
		dt.SvcPort("b", "10.96.0.2", dt.Eps(bEndpoints...), dt.NodePort(30002)),
		dt.SvcPort("c", "10.96.0.3", dt.Eps("10.244.2.5"), dt.LoadBalancer("192.0.2.3")),
	)
}

// sortedDump returns the Fake's dump with its lines sorted: element order
// depends on the order they were added in, which partial syncs change.
func sortedDump(f *Fake) string {
	lines := strings.Split(strings.TrimSpace(f.Dump()), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// fullSyncDump returns the sorted dump after one full sync of st on a clean node:
// what any sequence of syncs ending with st must leave.
func fullSyncDump(t *testing.T, st *model.State) string {
	t.Helper()
	b, fakes := newFakeBackend(t, model.IPv4)
	if err := b.Sync(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	return sortedDump(fakes[model.IPv4])
}

// lastTx returns the text of the last transaction the Fake ran.
func lastTx(f *Fake) string {
	inner := f.Inner()
	inner.RLock()
	defer inner.RUnlock()
	if inner.LastTransaction == nil {
		return ""
	}
	return inner.LastTransaction.String()
}

func TestPartialSyncWritesOnlyTheChangedService(t *testing.T) {
	ctx := context.Background()
	b, fakes := newFakeBackend(t, model.IPv4)
	fake := fakes[model.IPv4]
	if err := b.Sync(ctx, threeServices("10.244.2.3", "10.244.2.4")); err != nil {
		t.Fatal(err)
	}
	if st := b.LastSync(model.IPv4); !st.Full || st.ServicePorts != 3 {
		t.Fatalf("first sync: %+v, want a full one", st)
	}

	next := threeServices("10.244.2.3", "10.244.2.14") // one endpoint of b replaced
	if err := b.Sync(ctx, next); err != nil {
		t.Fatal(err)
	}
	bName := next.IPv4.ServicePorts[1].Name
	tx := lastTx(fake)
	onlyB(t, tx)
	// Without affinity the endpoints are DNATs in b's cluster chain; the hairpin
	// set loses the old endpoint and gains the new one.
	for _, want := range []string{
		"flush chain ip svcplane " + namesFor(bName).cluster,
		"add rule ip svcplane " + namesFor(bName).cluster + " meta l4proto tcp dnat to 10.244.2.14:8080",
		"delete element ip svcplane hairpin-endpoints { 10.244.2.4 . 10.244.2.4 . tcp . 8080 }",
		"add element ip svcplane hairpin-endpoints { 10.244.2.14 . 10.244.2.14 . tcp . 8080 }",
	} {
		if !strings.Contains(tx, want+"\n") {
			t.Errorf("the partial transaction lacks %q:\n%s", want, tx)
		}
	}
	if strings.Contains(tx, "10.244.2.3 . 10.244.2.3") {
		t.Errorf("the partial transaction rewrote the unchanged endpoint's hairpin element:\n%s", tx)
	}
	if st := b.LastSync(model.IPv4); st.Full || st.Chains != 1 || st.Deleted != 0 || st.Elements != 2 {
		t.Errorf("partial sync stats: %+v, want 1 chain written (b's cluster chain), 2 elements", st)
	}
	if got, want := sortedDump(fake), fullSyncDump(t, next); got != want {
		t.Errorf("a partial sync left a different table than a full sync:\ngot\n%s\nwant\n%s", got, want)
	}

	// Nothing new: no chain, rule or element is written.
	if err := b.Sync(ctx, next); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(lastTx(fake), "\n") {
		if strings.Contains(line, " chain ") || strings.Contains(line, " rule ") || strings.Contains(line, " element ") {
			t.Errorf("a sync with nothing new wrote %q", line)
		}
	}
}

// onlyB fails the test when tx writes a chain or rule that is not service b's.
func onlyB(t *testing.T, tx string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(tx), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 || (fields[1] != "chain" && fields[1] != "rule") {
			continue
		}
		if chain := fields[4]; !strings.Contains(chain, "/b/") {
			t.Errorf("the partial transaction touches %s, which is not b's:\n%s", chain, line)
		}
	}
}

func TestPartialSyncWithAffinityWritesOnlyTheChangedEndpointChains(t *testing.T) {
	ctx := context.Background()
	b, fakes := newFakeBackend(t, model.IPv4)
	fake := fakes[model.IPv4]
	sticky := func(eps ...string) *model.State {
		return dt.State(
			dt.SvcPort("a", "10.96.0.1", dt.Eps("10.244.2.1", "10.244.2.2")),
			dt.SvcPort("b", "10.96.0.2", dt.Eps(eps...), dt.Affinity(60)),
		)
	}
	if err := b.Sync(ctx, sticky("10.244.2.3", "10.244.2.4")); err != nil {
		t.Fatal(err)
	}
	next := sticky("10.244.2.3", "10.244.2.14") // one endpoint of b replaced
	if err := b.Sync(ctx, next); err != nil {
		t.Fatal(err)
	}
	bName := next.IPv4.ServicePorts[1].Name
	kept := endpointChain(bName, netip.MustParseAddrPort("10.244.2.3:8080"))
	added := endpointChain(bName, netip.MustParseAddrPort("10.244.2.14:8080"))
	removed := endpointChain(bName, netip.MustParseAddrPort("10.244.2.4:8080"))
	tx := lastTx(fake)
	onlyB(t, tx)
	for _, want := range []string{"add chain ip svcplane " + added, "flush chain ip svcplane " + removed, "delete chain ip svcplane " + removed, "flush chain ip svcplane " + namesFor(bName).cluster} {
		if !strings.Contains(tx, want+"\n") {
			t.Errorf("the partial transaction lacks %q:\n%s", want, tx)
		}
	}
	if strings.Contains(tx, "chain ip svcplane "+kept+"\n") {
		t.Errorf("the partial transaction rewrote the unchanged %s:\n%s", kept, tx)
	}
	if st := b.LastSync(model.IPv4); st.Full || st.Chains != 2 || st.Deleted != 2 {
		t.Errorf("partial sync stats: %+v, want 2 chains written (b's cluster chain and the new endpoint's), 2 deleted (the old endpoint's chain and affinity set)", st)
	}
	if got, want := sortedDump(fake), fullSyncDump(t, next); got != want {
		t.Errorf("a partial sync left a different table than a full sync:\ngot\n%s\nwant\n%s", got, want)
	}
}

// TestHairpinElementsAreShared checks that two service ports with the same
// endpoint share its hairpin element: it stays while either still has the
// endpoint, and goes with the last.
func TestHairpinElementsAreShared(t *testing.T) {
	ctx := context.Background()
	b, fakes := newFakeBackend(t, model.IPv4)
	fake := fakes[model.IPv4]
	const elem = "add element ip svcplane hairpin-endpoints { 10.244.2.3 . 10.244.2.3 . tcp . 8080 }"
	steps := []struct {
		name     string
		a, b     []string
		hairpins bool
	}{
		{"both have it", []string{"10.244.2.3"}, []string{"10.244.2.3", "10.244.2.4"}, true},
		{"a lets it go", []string{"10.244.2.5"}, []string{"10.244.2.3", "10.244.2.4"}, true},
		{"b lets it go too", []string{"10.244.2.5"}, []string{"10.244.2.4"}, false},
		{"b takes it back", []string{"10.244.2.5"}, []string{"10.244.2.3"}, true},
		{"both let it go", []string{"10.244.2.5"}, nil, false},
	}
	for _, s := range steps {
		st := dt.State(
			dt.SvcPort("a", "10.96.0.1", dt.Eps(s.a...)),
			dt.SvcPort("b", "10.96.0.2", dt.Eps(s.b...)),
		)
		if err := b.Sync(ctx, st); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := strings.Contains(fake.Dump(), elem+"\n"); got != s.hairpins {
			t.Errorf("%s: the hairpin element is there: %v, want %v:\n%s", s.name, got, s.hairpins, fake.Dump())
		}
		if got, want := sortedDump(fake), fullSyncDump(t, st); got != want {
			t.Errorf("%s: a partial sync left a different table than a full sync:\ngot\n%s\nwant\n%s", s.name, got, want)
		}
	}
}

func TestPartialSyncRemovesServicesAndChangesMaps(t *testing.T) {
	ctx := context.Background()
	b, fakes := newFakeBackend(t, model.IPv4)
	first := threeServices("10.244.2.3", "10.244.2.4")
	if err := b.Sync(ctx, first); err != nil {
		t.Fatal(err)
	}
	steps := []*model.State{
		dt.State(first.IPv4.ServicePorts[0], first.IPv4.ServicePorts[2]), // b is gone
		threeServices(), // b is back, without endpoints: rejected
		threeServices("10.244.2.3/notready/notserving"),                                                                 // still none
		dt.State(dt.SvcPort("b", "10.96.0.2", dt.Eps("10.244.1.3/local"), dt.NodePort(30002), dt.ExternalLocal(32002))), // a and c gone, b Local
		dt.State(dt.SvcPort("b", "10.96.0.2", dt.Eps("10.244.2.3"), dt.NodePort(30002), dt.ExternalLocal(32002), dt.Affinity(60))),
		dt.State(dt.SvcPort("b", "10.96.0.2", dt.Eps("10.244.2.3"), dt.NodePort(30002), dt.ExternalLocal(32002), dt.Affinity(120))),
		func() *model.State { // a node-wide setting changes every port's rules
			st := dt.State(dt.SvcPort("b", "10.96.0.2", dt.Eps("10.244.2.3"), dt.NodePort(30002), dt.ExternalLocal(32002), dt.Affinity(120)))
			st.IPv4.MasqueradeAll = true
			st.IPv4.NodePortsOnAllAddresses = false
			st.IPv4.NodePortAddresses = []netip.Addr{dt.NodeIPv4}
			return st
		}(),
		dt.State(),
	}
	for i, st := range steps {
		if err := b.Sync(ctx, st); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if s := b.LastSync(model.IPv4); s.Full {
			t.Errorf("step %d was a full sync", i)
		}
		if got, want := sortedDump(fakes[model.IPv4]), fullSyncDump(t, st); got != want {
			t.Errorf("step %d: a partial sync left a different table than a full sync:\ngot\n%s\nwant\n%s", i, got, want)
		}
	}
}

func TestFailedTransactionKeepsTheTableAndForcesAFullSync(t *testing.T) {
	ctx := context.Background()
	b, fakes := newFakeBackend(t, model.IPv4)
	fake := fakes[model.IPv4]
	first := threeServices("10.244.2.3")
	if err := b.Sync(ctx, first); err != nil {
		t.Fatal(err)
	}
	before := fake.Dump()
	fake.FailNext = errors.New("nft: Could not process rule: Device or resource busy")
	if err := b.Sync(ctx, threeServices("10.244.2.4")); err == nil || !strings.Contains(err.Error(), "resource busy") {
		t.Fatalf("Sync error %v, want the transaction's", err)
	}
	if fake.Dump() != before {
		t.Error("a failed transaction changed the table")
	}
	next := threeServices("10.244.2.4")
	if err := b.Sync(ctx, next); err != nil {
		t.Fatal(err)
	}
	if st := b.LastSync(model.IPv4); !st.Full {
		t.Errorf("the sync after a failure: %+v, want a full one", st)
	}
	if got, want := sortedDump(fake), fullSyncDump(t, next); got != want {
		t.Errorf("after the failure and a full sync:\ngot\n%s\nwant\n%s", got, want)
	}
}

func TestTamperingForcesAFullSync(t *testing.T) {
	ctx := context.Background()
	st := threeServices("10.244.2.3")
	for name, tamper := range map[string]func(tx *knftables.Transaction){
		"table deleted (nft flush ruleset)": func(tx *knftables.Transaction) { tx.Delete(&knftables.Table{}) },
		"nat-prerouting flushed":            func(tx *knftables.Transaction) { tx.Flush(&knftables.Chain{Name: chainNATPrerouting}) },
	} {
		t.Run(name, func(t *testing.T) {
			b, fakes := newFakeBackend(t, model.IPv4)
			fake := fakes[model.IPv4]
			if err := b.Sync(ctx, st); err != nil {
				t.Fatal(err)
			}
			tx := fake.NewTransaction()
			tamper(tx)
			if err := fake.Run(ctx, tx); err != nil {
				t.Fatal(err)
			}
			if err := b.Sync(ctx, st); err != nil {
				t.Fatal(err)
			}
			if s := b.LastSync(model.IPv4); !s.Full || !s.Tampered {
				t.Errorf("sync after tampering: %+v, want a full one, tampering noticed", s)
			}
			if got, want := sortedDump(fake), fullSyncDump(t, st); got != want {
				t.Errorf("after tampering and a sync:\ngot\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestTamperedBetweenSyncs(t *testing.T) {
	ctx := context.Background()
	st := threeServices("10.244.2.3")
	b, fakes := newFakeBackend(t, model.IPv4)
	fake := fakes[model.IPv4]
	var _ dataplane.TamperChecker = b
	if tampered, err := b.Tampered(ctx); err != nil || tampered {
		t.Fatalf("before any sync: %v, %v; want nothing to check", tampered, err)
	}
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if tampered, err := b.Tampered(ctx); err != nil || tampered {
		t.Fatalf("untouched table: %v, %v", tampered, err)
	}
	tx := fake.NewTransaction()
	tx.Delete(&knftables.Table{})
	if err := fake.Run(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if tampered, err := b.Tampered(ctx); err != nil || !tampered {
		t.Fatalf("deleted table: %v, %v; want tampering", tampered, err)
	}
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if s := b.LastSync(model.IPv4); !s.Full {
		t.Errorf("the sync after tampering was seen: %+v, want a full one", s)
	}
	if got, want := sortedDump(fake), fullSyncDump(t, st); got != want {
		t.Errorf("after tampering and a sync:\ngot\n%s\nwant\n%s", got, want)
	}
}

func TestFullSyncRemovesWhatItDoesNotNeed(t *testing.T) {
	ctx := context.Background()
	b, fakes := newFakeBackend(t, model.IPv4)
	fake := fakes[model.IPv4]
	// An older agent's table: a service chain, an endpoint chain it jumps to, a
	// set and a map this version does not write.
	tx := fake.NewTransaction()
	tx.Add(&knftables.Table{Comment: knftables.PtrTo(tableComment)})
	tx.Add(&knftables.Chain{Name: "endpoint-OLD"})
	tx.Add(&knftables.Chain{Name: "cluster-OLD"})
	tx.Add(&knftables.Rule{Chain: "cluster-OLD", Rule: "goto endpoint-OLD"})
	tx.Add(&knftables.Set{Name: "affinity-OLD", Type: "ipv4_addr"})
	tx.Add(&knftables.Map{Name: "old-map", Type: "inet_service : verdict"})
	if err := fake.Run(ctx, tx); err != nil {
		t.Fatal(err)
	}
	st := threeServices("10.244.2.3")
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got, want := sortedDump(fake), fullSyncDump(t, st); got != want {
		t.Errorf("a full sync kept what it does not need:\ngot\n%s\nwant\n%s", got, want)
	}
}

func TestStrictFakeRefusesDanglingReferences(t *testing.T) {
	ctx := context.Background()
	fake := NewFake(model.IPv4)
	tx := fake.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Add(&knftables.Chain{Name: "a"})
	tx.Add(&knftables.Chain{Name: "b"})
	tx.Add(&knftables.Rule{Chain: "a", Rule: "goto b"})
	if err := fake.Run(ctx, tx); err != nil {
		t.Fatal(err)
	}
	before := fake.Dump()
	tx = fake.NewTransaction()
	tx.Delete(&knftables.Chain{Name: "b"})
	if err := fake.Run(ctx, tx); err == nil || !strings.Contains(err.Error(), `chain "b"`) {
		t.Errorf("deleting a chain in use: error %v, want a refusal", err)
	}
	if fake.Dump() != before {
		t.Error("a refused transaction changed the table")
	}
}

func TestCleanup(t *testing.T) {
	ctx := context.Background()
	b, fakes := newFakeBackend(t)
	if err := b.Sync(ctx, dt.BehaviourState); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // a second Cleanup finds nothing and succeeds
		if err := b.Cleanup(ctx); err != nil {
			t.Fatalf("Cleanup %d: %v", i, err)
		}
		if got := dump(fakes); got != "" {
			t.Fatalf("after Cleanup %d:\n%s", i, got)
		}
	}
	if err := b.Sync(ctx, dt.BehaviourState); err != nil {
		t.Fatal(err)
	}
	if st := b.LastSync(model.IPv4); !st.Full {
		t.Errorf("the sync after Cleanup: %+v, want a full one", st)
	}
}
