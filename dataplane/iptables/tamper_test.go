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

	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/model"
)

var _ dataplane.TamperChecker = &Backend{}

// TestTampered checks the canary check the agent runs between syncs: nothing to
// report while the rules are in place, a flushed nat table reported (and the next
// sync made a full one that puts everything back), and a failing check reported
// as an error.
func TestTampered(t *testing.T) {
	ctx, logs := logSink()
	fake := NewFake()
	b := newBackend(t, fake)
	st := state(svcPort("a", "10.96.0.1", eps("10.244.2.1"), nodePort(30001)))

	if tampered, err := b.Tampered(ctx); tampered || err != nil {
		t.Fatalf("before any sync: Tampered = %v, %v; want false, nil (the first sync is full anyway)", tampered, err)
	}
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if tampered, err := b.Tampered(ctx); tampered || err != nil {
		t.Fatalf("with the rules in place: Tampered = %v, %v", tampered, err)
	}

	flushTable(t, fake, model.IPv4, TableNAT, true)
	tampered, err := b.Tampered(ctx)
	if !tampered || err != nil {
		t.Fatalf("after iptables -t nat -F -X: Tampered = %v, %v; want true, nil", tampered, err)
	}
	if !strings.Contains(logs.String(), "resyncing fully") {
		t.Errorf("the log does not say the rules were removed:\n%s", logs)
	}
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got := b.LastSync(model.IPv4); !got.Full {
		t.Errorf("the sync after the check was not full: %+v", got)
	}
	if got, want := fake.Dump(), fullSyncDump(t, st); got != want {
		t.Errorf("the sync after the check did not restore everything:\n%s", lineDiff(want, got))
	}
	if tampered, err := b.Tampered(ctx); tampered || err != nil {
		t.Fatalf("after the repair: Tampered = %v, %v", tampered, err)
	}

	// Emptying the one chain every service hangs from leaves the canary alone.
	if err := fake.Restore(ctx, model.IPv4, []byte("*nat\n-F "+chainServices+"\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	if tampered, err := b.Tampered(ctx); !tampered || err != nil {
		t.Fatalf("after iptables -t nat -F %s: Tampered = %v, %v; want true, nil", chainServices, tampered, err)
	}
	if err := b.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got, want := fake.Dump(), fullSyncDump(t, st); got != want {
		t.Errorf("the sync after the check did not restore %s:\n%s", chainServices, lineDiff(want, got))
	}

	broken, err := New(Options{Executor: listFails{NewFake()}, Families: []model.Family{model.IPv4}})
	if err != nil {
		t.Fatal(err)
	}
	if err := broken.Sync(ctx, st); err != nil {
		t.Fatal(err)
	}
	if tampered, err := broken.Tampered(context.Background()); !tampered || err == nil {
		t.Errorf("a check that cannot list the canary: Tampered = %v, %v; want true and the error", tampered, err)
	}
}
