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
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// listCounter is the Fake, counting the chain listings (iptables -S) made.
type listCounter struct {
	*Fake
	lists int
}

func (l *listCounter) ListRules(ctx context.Context, family model.Family, table Table, chain string) ([]string, bool, error) {
	l.lists++
	return l.Fake.ListRules(ctx, family, table, chain)
}

// TestPartialSyncTrustsTamperCheck checks that a partial sync right after a Tampered
// check that found the rules in place lists no canary (with iptables-legacy each
// listing reads the whole nat table), that the one after it, with no check in
// between, lists them again, and that a flush the check found still makes the next
// sync full. Addresses as in the shared fixtures (cluster IPs 10.96.0.0/12, pods
// 10.244.0.0/16).
func TestPartialSyncTrustsTamperCheck(t *testing.T) {
	ctx, _ := logSink()
	fake := NewFake()
	exec := &listCounter{Fake: fake}
	b, err := New(Options{Executor: exec, Families: []model.Family{model.IPv4}})
	if err != nil {
		t.Fatal(err)
	}
	st := func(ep string) *model.State { return state(svcPort("a", "10.96.0.1", eps(ep))) }
	if err := b.Sync(ctx, st("10.244.2.1")); err != nil {
		t.Fatal(err)
	}
	if tampered, err := b.Tampered(ctx); tampered || err != nil {
		t.Fatalf("Tampered = %v, %v with the rules in place", tampered, err)
	}

	before := exec.lists
	if err := b.Sync(ctx, st("10.244.2.2")); err != nil {
		t.Fatal(err)
	}
	if n := exec.lists - before; n != 0 {
		t.Errorf("the partial sync after a clean check listed %d chains, want 0", n)
	}
	if got := b.LastSync(model.IPv4); got.Full {
		t.Error("the sync after a clean check was full")
	}

	before = exec.lists
	if err := b.Sync(ctx, st("10.244.2.3")); err != nil {
		t.Fatal(err)
	}
	if n := exec.lists - before; n != len(canaryTables) {
		t.Errorf("the next partial sync, with no check since the last sync, listed %d chains, want the %d canaries", n, len(canaryTables))
	}

	flushTable(t, fake, model.IPv4, TableNAT, true)
	if tampered, err := b.Tampered(ctx); !tampered || err != nil {
		t.Fatalf("Tampered = %v, %v after a flush, want true", tampered, err)
	}
	if err := b.Sync(ctx, st("10.244.2.3")); err != nil {
		t.Fatal(err)
	}
	if got := b.LastSync(model.IPv4); !got.Full {
		t.Error("the sync after a check that found a flush was not full")
	}
	if got, want := fake.Dump(), fullSyncDump(t, st("10.244.2.3"), model.IPv4); got != want {
		t.Errorf("after the repair the kernel holds:\n%s\nwant what a full sync writes:\n%s", got, want)
	}
}

// legacyLister is the Fake as iptables-legacy: each listing reads the whole table.
// It counts the listings per table.
type legacyLister struct {
	*Fake
	lists map[Table]int
}

func (l *legacyLister) ReadsWholeTable() bool { return true }

func (l *legacyLister) ListRules(ctx context.Context, family model.Family, table Table, chain string) ([]string, bool, error) {
	l.lists[table]++
	return l.Fake.ListRules(ctx, family, table, chain)
}

// TestTamperedListsNATOncePerPeriod checks that with iptables-legacy the periodic
// check lists the small filter table every time but the nat table (seconds at
// 10,000 service ports) once per natCheckPeriod, and that a flush of every table,
// as a firewall reload does, is still caught at once through the filter canary.
func TestTamperedListsNATOncePerPeriod(t *testing.T) {
	ctx, _ := logSink()
	fake := NewFake()
	exec := &legacyLister{Fake: fake, lists: map[Table]int{}}
	clk := clocktesting.NewFakePassiveClock(time.Unix(1_000_000, 0))
	b, err := New(Options{Executor: exec, Families: []model.Family{model.IPv4}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx, state(svcPort("a", "10.96.0.1", eps("10.244.2.1")))); err != nil {
		t.Fatal(err)
	}
	for i := range 12 { // a minute of checks every 5 s
		if tampered, err := b.Tampered(ctx); tampered || err != nil {
			t.Fatalf("check %d: Tampered = %v, %v with the rules in place", i, tampered, err)
		}
		clk.SetTime(clk.Now().Add(5 * time.Second))
	}
	if exec.lists[TableFilter] != 12 || exec.lists[TableNAT] != 2 {
		t.Errorf("12 checks over a minute listed filter %d times and nat %d times, want 12 and 2 (canary and %s, once)",
			exec.lists[TableFilter], exec.lists[TableNAT], chainServices)
	}
	clk.SetTime(clk.Now().Add(natCheckPeriod))
	exec.lists = map[Table]int{}
	if _, err := b.Tampered(ctx); err != nil {
		t.Fatal(err)
	}
	if exec.lists[TableNAT] == 0 {
		t.Errorf("a check %s after the last nat listing did not list nat", natCheckPeriod)
	}

	flushTable(t, fake, model.IPv4, TableFilter, true)
	flushTable(t, fake, model.IPv4, TableNAT, true)
	if tampered, err := b.Tampered(ctx); !tampered || err != nil {
		t.Errorf("after every table was flushed: Tampered = %v, %v; want true", tampered, err)
	}
}
