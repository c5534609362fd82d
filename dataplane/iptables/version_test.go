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
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Addresses as in the shared fixtures (cluster IPs 10.96.0.0/12, pods 10.244.0.0/16).

// versionedFake is the Fake with table versions (the hash of each table's text,
// which changes exactly when the table does), counting the chain listings.
type versionedFake struct {
	*Fake
	lists int
}

var _ TableVersioner = &versionedFake{}

func (v *versionedFake) TableVersion(ctx context.Context, family model.Family, table Table) (string, error) {
	saved, err := v.Save(ctx, family, table)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", sha256.Sum256(saved)), nil
}

func (v *versionedFake) ListRules(ctx context.Context, family model.Family, table Table, chain string) ([]string, bool, error) {
	v.lists++
	return v.Fake.ListRules(ctx, family, table, chain)
}

// TestVersionsStandForListings checks that with an Executor that tells table
// versions, neither the periodic check nor a partial sync lists anything while the
// tables are as the last sync left them; that a rule added by someone else makes
// the next check list that table once; and that flushes are still caught.
func TestVersionsStandForListings(t *testing.T) {
	ctx, _ := logSink()
	fake := NewFake()
	exec := &versionedFake{Fake: fake}
	b, err := New(Options{Executor: exec, Families: []model.Family{model.IPv4}})
	if err != nil {
		t.Fatal(err)
	}
	st := func(ep string) *model.State { return state(svcPort("a", "10.96.0.1", eps(ep))) }
	if err := b.Sync(ctx, st("10.244.2.1")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if tampered, err := b.Tampered(ctx); tampered || err != nil {
			t.Fatalf("check %d: Tampered = %v, %v with the rules in place", i, tampered, err)
		}
	}
	// Two partial syncs in a row, no check in between.
	for _, ep := range []string{"10.244.2.2", "10.244.2.3"} {
		if err := b.Sync(ctx, st(ep)); err != nil {
			t.Fatal(err)
		}
		if b.LastSync(model.IPv4).Full {
			t.Errorf("the sync to %s was full", ep)
		}
	}
	if exec.lists != 0 {
		t.Errorf("checks and partial syncs over unchanged tables listed %d chains, want 0", exec.lists)
	}

	// Someone else's rule in filter: one listing of that table, nothing wrong.
	if err := fake.Restore(ctx, model.IPv4, []byte("*filter\n-A INPUT -s 192.0.2.1/32 -j DROP\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if tampered, err := b.Tampered(ctx); tampered || err != nil {
			t.Fatalf("check %d after a foreign rule: Tampered = %v, %v", i, tampered, err)
		}
	}
	if exec.lists != 1 {
		t.Errorf("two checks after a foreign filter rule listed %d chains, want 1 (the filter canary, once)", exec.lists)
	}

	for _, flush := range []struct {
		name string
		do   func()
	}{
		{"iptables -t nat -F " + chainServices, func() {
			if err := fake.Restore(ctx, model.IPv4, []byte("*nat\n-F "+chainServices+"\nCOMMIT\n")); err != nil {
				t.Fatal(err)
			}
		}},
		{"iptables -t filter -F", func() { flushTable(t, fake, model.IPv4, TableFilter, false) }},
		{"iptables -t nat -F -X", func() { flushTable(t, fake, model.IPv4, TableNAT, true) }},
	} {
		flush.do()
		if tampered, err := b.Tampered(ctx); !tampered || err != nil {
			t.Errorf("after %s: Tampered = %v, %v; want true", flush.name, tampered, err)
		}
		if err := b.Sync(ctx, st("10.244.2.3")); err != nil {
			t.Fatal(err)
		}
		if !b.LastSync(model.IPv4).Full {
			t.Errorf("the sync after %s was not full", flush.name)
		}
	}
}
