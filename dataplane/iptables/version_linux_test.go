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
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/svcplane/svcplane/dataplane/model"
)

// TestRealTableVersions checks Exec.TableVersion against the real kernel, in a
// network namespace this test's thread enters (TableVersion asks the kernel of the
// caller's namespace, as the agent does of its node's): the version stays while
// nothing changes, and moves when a rule is added, when a chain is flushed, and
// when a chain is deleted, in each family. The tools run from the same thread, so
// they act on the same namespace.
func TestRealTableVersions(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to create a network namespace")
	}
	for _, variant := range []string{VariantLegacy, VariantNFT, ""} {
		t.Run("variant="+variant, func(t *testing.T) {
			e := &Exec{Variant: variant}
			for _, f := range model.Families {
				if _, err := exec.LookPath(e.tool(f, "-restore")); err != nil {
					skipOrFail(t, "needs "+e.tool(f, "-restore"))
				}
			}
			runtime.LockOSThread()
			orig, err := netns.Get()
			if err != nil {
				t.Fatal(err)
			}
			ns, err := netns.New() // enters it
			if err != nil {
				runtime.UnlockOSThread()
				skipOrFail(t, "cannot create a network namespace: "+err.Error())
			}
			defer func() {
				if err := netns.Set(orig); err != nil {
					// The thread stays locked, and dies with this goroutine.
					t.Errorf("back to the original namespace: %v", err)
					return
				}
				runtime.UnlockOSThread()
				_ = ns.Close()
				_ = orig.Close()
			}()

			ctx := context.Background()
			for _, f := range model.Families {
				for _, table := range []Table{TableFilter, TableNAT} {
					version := func() string {
						t.Helper()
						v, err := e.TableVersion(ctx, f, table)
						if err != nil {
							t.Fatalf("%s %s: %v", f, table, err)
						}
						return v
					}
					restore := func(payload string) {
						t.Helper()
						if err := e.Restore(ctx, f, []byte("*"+string(table)+"\n"+payload+"COMMIT\n")); err != nil {
							t.Fatal(err)
						}
					}
					restore(":SVCP-TEST - [0:0]\n")
					v0 := version()
					if again := version(); again != v0 {
						t.Errorf("%s %s: the version moved from %q to %q with nothing changed", f, table, v0, again)
					}
					for _, step := range []struct{ what, payload string }{
						{"a rule added", "-A SVCP-TEST -j RETURN\n"},
						{"a chain flushed", "-F SVCP-TEST\n"},
						{"a chain deleted", "-X SVCP-TEST\n"},
					} {
						restore(step.payload)
						if v := version(); v == v0 {
							t.Errorf("%s %s: the version stayed %q with %s", f, table, v, step.what)
						} else {
							v0 = v
						}
					}
				}
			}
		})
	}
	if _, err := (&Exec{Prefix: []string{"ip", "netns", "exec", "x"}, Variant: VariantLegacy}).TableVersion(context.Background(), model.IPv4, TableNAT); !errors.Is(err, ErrNoVersion) {
		t.Errorf("an Exec reaching another namespace: TableVersion error %v, want ErrNoVersion", err)
	}
	if _, err := (&Exec{}).TableVersion(context.Background(), model.IPv4, TableNAT); systemVariant() == "" && !errors.Is(err, ErrNoVersion) {
		t.Errorf("the system's tools, of no known variant: TableVersion error %v, want ErrNoVersion", err)
	}
}
