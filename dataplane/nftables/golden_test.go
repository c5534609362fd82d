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

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/internal/dataplanetest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the tables rendered now")

// newFakeBackend returns a Backend over a fresh strict Fake per family.
func newFakeBackend(t testing.TB, families ...model.Family) (*Backend, map[model.Family]*Fake) {
	t.Helper()
	if len(families) == 0 {
		families = model.Families
	}
	fakes := map[model.Family]*Fake{}
	ifaces := map[model.Family]knftables.Interface{}
	for _, f := range families {
		fakes[f] = NewFake(f)
		ifaces[f] = fakes[f]
	}
	b, err := New(Options{Interfaces: ifaces})
	if err != nil {
		t.Fatal(err)
	}
	return b, fakes
}

// dump returns the fakes' tables, IPv4 first.
func dump(fakes map[model.Family]*Fake) string {
	var b strings.Builder
	for _, f := range model.Families {
		if fake, ok := fakes[f]; ok {
			b.WriteString(fake.Dump())
		}
	}
	return b.String()
}

// TestGolden keeps the tables the shared golden fixtures render to in
// testdata/<name>.golden, as knftables.Fake dumps them after one sync on a clean
// node: nft commands that recreate the table.
func TestGolden(t *testing.T) {
	for name, st := range dataplanetest.GoldenCases() {
		t.Run(name, func(t *testing.T) {
			b, fakes := newFakeBackend(t, dataplanetest.Families(st)...)
			if err := b.Sync(context.Background(), st); err != nil {
				t.Fatal(err)
			}
			got := dump(fakes)
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("table differs from %s (run go test -update if the change is intended):\ngot:\n%s", path, got)
			}
		})
	}
}
