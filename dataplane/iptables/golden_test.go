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
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/svcplane/svcplane/internal/dataplanetest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the rules rendered now")

// goldenCases are the states whose rules are kept in testdata/<name>.golden, as
// Fake.Dump prints them after one sync on a clean node: iptables-save's text.
var goldenCases = dataplanetest.GoldenCases()

func TestGolden(t *testing.T) {
	for name, st := range goldenCases {
		t.Run(name, func(t *testing.T) {
			fake := NewFake()
			b, err := New(Options{Executor: fake, Families: familiesOf(st)})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Sync(context.Background(), st); err != nil {
				t.Fatal(err)
			}
			got := fake.Dump()
			path := filepath.Join("testdata", name+".golden")
			if *update {
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
				t.Errorf("rules differ from %s (run go test -update if the change is intended):\n%s", path, lineDiff(string(want), got))
			}
		})
	}
}
