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

// Addresses as in stale_test.go.

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/model"
)

// recordingBackend is the wrapped backend: it remembers what it applied and fails
// when told to.
type recordingBackend struct {
	applied  *model.State
	fail     error
	full     int
	cleanups int
}

var (
	_ dataplane.Backend    = &recordingBackend{}
	_ dataplane.FullSyncer = &recordingBackend{}
)

func (r *recordingBackend) Sync(_ context.Context, desired *model.State) error {
	if r.fail != nil {
		return r.fail
	}
	r.applied = desired
	return nil
}

func (r *recordingBackend) Cleanup(context.Context) error {
	r.cleanups++
	r.applied = nil
	return r.fail
}

func (r *recordingBackend) RequestFullSync() { r.full++ }

// flows returns a UDP flow from a client to 10.96.0.10:53 DNATed to each of eps.
func flows(eps ...model.Endpoint) []Entry {
	var out []Entry
	for i, e := range eps {
		out = append(out, Entry{
			Family: model.IPv4, Protocol: model.UDP,
			Src:  netip.AddrPortFrom(netip.MustParseAddr("10.244.2.5"), uint16(40000+i)),
			Dst:  netip.MustParseAddrPort("10.96.0.10:53"),
			DNAT: e.AddrPort(),
		})
	}
	return out
}

func TestBackendClearsAfterSuccessfulSyncs(t *testing.T) {
	a, b, c := ep("10.244.1.10", 5353), ep("10.244.1.11", 5353), ep("10.244.1.12", 5353)
	inner := &recordingBackend{}
	fake := NewFake(flows(a, b, c)...)
	backend := NewBackend(inner, fake)
	ctx := t.Context()

	// The first sync has nothing to compare with: it lists the table and clears
	// the flow to c, which is no endpoint of the port any more, and the flow
	// that was never DNATed (sent before any rule existed). a's and b's stay.
	unNATed := Entry{Family: model.IPv4, Protocol: model.UDP,
		Src: netip.MustParseAddrPort("10.244.2.9:41000"), Dst: netip.MustParseAddrPort("10.96.0.10:53")}
	fake.Add(unNATed)
	s1 := v4(port("10.96.0.10", []model.Endpoint{a, b}))
	if err := backend.Sync(ctx, s1); err != nil {
		t.Fatal(err)
	}
	if inner.applied != s1 {
		t.Error("the wrapped backend did not apply the first state")
	}
	if got, want := fake.Entries(), flows(a, b, c); !slices.Equal(got, want[:2]) {
		t.Errorf("after the first sync, the table holds\n%s", fake.Dump())
	}
	if fake.Lists() != 1 {
		t.Errorf("the first sync listed the table %d times, want 1", fake.Lists())
	}

	// b goes: its flow goes, a's stays, and nothing is listed again.
	if err := backend.Sync(ctx, v4(port("10.96.0.10", []model.Endpoint{a}))); err != nil {
		t.Fatal(err)
	}
	if got, want := fake.Entries(), flows(a, b, c); !slices.Equal(got, want[:1]) {
		t.Errorf("after b went, the table holds\n%s", fake.Dump())
	}
	if got := counter(t, backend, "svcplane_agent_conntrack_entries_deleted_total"); got != 3 {
		t.Errorf("deleted counter %v, want 3", got)
	}
	if fake.Lists() != 1 {
		t.Errorf("later syncs listed the table: %d lists in all, want 1", fake.Lists())
	}

	// The same state again clears nothing.
	before := len(fake.Calls())
	if err := backend.Sync(ctx, v4(port("10.96.0.10", []model.Endpoint{a}))); err != nil {
		t.Fatal(err)
	}
	if calls := fake.Calls()[before:]; len(calls) != 0 {
		t.Errorf("an unchanged state cleared %v", calls)
	}
}

func TestBackendFailedSync(t *testing.T) {
	a, b, c := ep("10.244.1.10", 5353), ep("10.244.1.11", 5353), ep("10.244.1.12", 5353)
	inner := &recordingBackend{}
	fake := NewFake()
	backend := NewBackend(inner, fake)
	ctx := t.Context()
	if err := backend.Sync(ctx, v4(port("10.96.0.10", []model.Endpoint{a, b}))); err != nil {
		t.Fatal(err)
	}

	// A failed sync returns the wrapped backend's error and clears nothing,
	// although b is gone from it.
	inner.fail = errors.New("iptables-restore: exit status 1")
	if err := backend.Sync(ctx, v4(port("10.96.0.10", []model.Endpoint{a, c}))); !errors.Is(err, inner.fail) {
		t.Fatalf("Sync() = %v, want the wrapped backend's error", err)
	}
	if calls := fake.Calls(); len(calls) != 0 {
		t.Errorf("a failed sync cleared %v", calls)
	}

	// It may still have reached the kernel for one family, and a client c.
	fake.Add(flows(a, b, c)...)
	inner.fail = nil
	if err := backend.Sync(ctx, v4(port("10.96.0.10", []model.Endpoint{a}))); err != nil {
		t.Fatal(err)
	}
	if got := fake.Entries(); !slices.Equal(got, flows(a)) {
		t.Errorf("after a sync that dropped b and c, the table holds\n%s", fake.Dump())
	}
}

func TestBackendConntrackErrorsDoNotFailSync(t *testing.T) {
	a, b := ep("10.244.1.10", 5353), ep("10.244.1.11", 5353)
	inner := &recordingBackend{}
	fake := NewFake(flows(a, b)...)
	fake.Err = errors.New("conntrack: Operation not permitted")
	backend := NewBackend(inner, fake)
	ctx := t.Context()
	if err := backend.Sync(ctx, v4(port("10.96.0.10", []model.Endpoint{a, b}, withNodePort))); err != nil {
		t.Fatal(err)
	}
	s2 := v4(port("10.96.0.10", []model.Endpoint{a}, withNodePort))
	if err := backend.Sync(ctx, s2); err != nil {
		t.Fatalf("Sync() = %v; conntrack errors must not fail it", err)
	}
	if inner.applied != s2 {
		t.Error("the wrapped backend did not apply the state")
	}
	// The first sync's listing, then the deletions of the cluster IP's and the
	// node port's flows.
	if got := counter(t, backend, "svcplane_agent_conntrack_cleanup_failures_total"); got != 3 {
		t.Errorf("failures counter %v, want 3", got)
	}
}

func TestBackendForwards(t *testing.T) {
	a := ep("10.244.1.10", 5353)
	inner := &recordingBackend{}
	fake := NewFake()
	backend := NewBackend(inner, fake)
	ctx := t.Context()

	var b dataplane.Backend = backend
	fs, ok := b.(dataplane.FullSyncer)
	if !ok {
		t.Fatal("the Backend is not a FullSyncer")
	}
	fs.RequestFullSync()
	if inner.full != 1 {
		t.Errorf("RequestFullSync reached the wrapped backend %d times, want 1", inner.full)
	}
	if n, ok := backend.BytesWritten(model.IPv4, time.Time{}); ok {
		t.Errorf("BytesWritten = %d for a wrapped backend that does not report writes", n)
	}

	if err := backend.Sync(ctx, v4(port("10.96.0.10", []model.Endpoint{a}))); err != nil {
		t.Fatal(err)
	}
	if err := backend.Cleanup(ctx); err != nil || inner.cleanups != 1 {
		t.Fatalf("Cleanup() = %v, %d cleanups of the wrapped backend", err, inner.cleanups)
	}
	// Packets sent while the node had no rules were not DNATed: the next sync
	// clears every flow to the service.
	if err := backend.Sync(ctx, v4(port("10.96.0.10", []model.Endpoint{a}))); err != nil {
		t.Fatal(err)
	}
	want := []Filter{{Family: model.IPv4, Protocol: model.UDP, Dst: netip.MustParseAddr("10.96.0.10"), Port: 53}}
	if got := fake.Calls(); !slices.Equal(got, want) {
		t.Errorf("after Cleanup, the next sync cleared %v, want %v", got, want)
	}
}

// counter returns the value of the counter name that b collects.
func counter(t *testing.T, b *Backend, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(b); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("the backend collects no counter %s", name)
	return 0
}
