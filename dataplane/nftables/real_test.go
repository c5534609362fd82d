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
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
	dt "github.com/svcplane/svcplane/internal/dataplanetest"
)

// skipOrFail skips the test, or fails it on CI, where nothing may be skipped.
func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

// testNetns returns a fresh network namespace, removed when the test ends.
func testNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to create a network namespace")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, fmt.Sprintf("needs %s: %v", tool, err))
		}
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := "svcp-nft-" + hex.EncodeToString(suffix[:])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		skipOrFail(t, fmt.Sprintf("cannot create a network namespace: %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("deleting network namespace %s: %v: %s", name, err, out)
		}
	})
	return name
}

// TestRealNftTakesTheGoldens loads every golden file, the Fake's dump of a sync,
// into the real kernel with nft in a network namespace: the rules the backend
// writes are ones the kernel takes, both families.
func TestRealNftTakesTheGoldens(t *testing.T) {
	ns := testNetns(t)
	files, err := filepath.Glob(filepath.Join("testdata", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-f", f).CombinedOutput(); err != nil {
				t.Fatalf("nft -f %s: %v\n%s", f, err, out)
			}
			if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "flush", "ruleset").CombinedOutput(); err != nil {
				t.Fatalf("nft flush ruleset: %v\n%s", err, out)
			}
		})
	}
}

const envInner = "SVCPLANE_NFT_TEST_NETNS"

// TestRealBackend runs the backend against the real kernel, in a network namespace
// of its own (the test binary runs itself again inside it, since nft programs the
// namespace it runs in): a full sync of every kind of Service, a partial one, the
// netlink table check before and after someone deletes the table, the repair, and
// Cleanup.
func TestRealBackend(t *testing.T) {
	if os.Getenv(envInner) == "" {
		ns := testNetns(t)
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run", "^TestRealBackend$", "-test.v")
		cmd.Env = append(os.Environ(), envInner+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("in %s: %v\n%s", ns, err, out)
		}
		t.Logf("in %s:\n%s", ns, out)
		return
	}
	ctx := t.Context()
	b, err := NewForNode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := dt.BehaviourState
	if err := b.Sync(ctx, st); err != nil {
		t.Fatalf("full sync: %v", err)
	}
	for _, f := range model.Families {
		if intact, err := NetlinkIntact(ctx, f); err != nil || !intact {
			t.Fatalf("%s table after a sync: intact %v, %v", f, intact, err)
		}
	}
	if tampered, err := b.Tampered(ctx); err != nil || tampered {
		t.Fatalf("Tampered after a sync: %v, %v", tampered, err)
	}
	next := dt.State(append(slices.Clone(st.IPv4.ServicePorts[1:]), st.IPv6.ServicePorts...)...)
	if err := b.Sync(ctx, next); err != nil {
		t.Fatalf("partial sync: %v", err)
	}
	if s := b.LastSync(model.IPv4); s.Full || s.Deleted == 0 {
		t.Errorf("partial sync removing a service: %+v, want a partial one deleting its chains", s)
	}

	if out, err := exec.Command("nft", "delete", "table", "ip", TableName).CombinedOutput(); err != nil {
		t.Fatalf("nft delete table: %v\n%s", err, out)
	}
	if intact, err := NetlinkIntact(ctx, model.IPv4); err != nil || intact {
		t.Fatalf("deleted table: intact %v, %v", intact, err)
	}
	if tampered, err := b.Tampered(ctx); err != nil || !tampered {
		t.Fatalf("Tampered after the table's deletion: %v, %v", tampered, err)
	}
	if err := b.Sync(ctx, next); err != nil {
		t.Fatalf("repair: %v", err)
	}
	if s := b.LastSync(model.IPv4); !s.Full {
		t.Errorf("the repair: %+v, want a full sync", s)
	}
	if intact, err := NetlinkIntact(ctx, model.IPv4); err != nil || !intact {
		t.Fatalf("repaired table: intact %v, %v", intact, err)
	}

	if err := CleanupNode(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil || strings.Contains(string(out), TableName) {
		t.Errorf("after cleanup, nft list tables: %v\n%s", err, out)
	}
	if err := CleanupNode(ctx); err != nil {
		t.Errorf("a second cleanup: %v", err)
	}
}
