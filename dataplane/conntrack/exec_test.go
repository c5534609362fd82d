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

// Addresses as in stale_test.go. The real-kernel test works in a network namespace
// of its own, svcp-ct-<pid>, whose conntrack table it fills with conntrack -I.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// scriptedRunner records command lines and answers each with the next reply.
type scriptedRunner struct {
	lines   []string
	replies []reply
}

type reply struct {
	out  string
	code int
	err  error
}

func (r *scriptedRunner) run(_ context.Context, name string, args ...string) ([]byte, int, error) {
	r.lines = append(r.lines, strings.Join(append([]string{name}, args...), " "))
	if len(r.replies) == 0 {
		return nil, 0, errors.New("no reply scripted")
	}
	rep := r.replies[0]
	r.replies = r.replies[1:]
	return []byte(rep.out), rep.code, rep.err
}

var (
	deleted2 = reply{out: "udp 17 ...\nconntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.\n"}
	deleted0 = reply{out: "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n", code: 1}
)

func TestExecDelete(t *testing.T) {
	v4DNAT := Filter{Family: model.IPv4, Protocol: model.UDP, Dst: netip.MustParseAddr("10.96.0.10"), Port: 53, DNAT: netip.MustParseAddr("10.244.1.10")}
	v6NodePort := Filter{Family: model.IPv6, Protocol: model.UDP, Port: 30053}
	v6DNAT := Filter{Family: model.IPv6, Protocol: model.UDP, Dst: netip.MustParseAddr("fd00:96::10"), Port: 53, DNAT: netip.MustParseAddr("fd00:244:1::10")}

	for _, tc := range []struct {
		name    string
		prefix  []string
		filter  Filter
		reply   reply
		line    string
		n       int
		wantErr string
	}{{
		name:   "IPv4, DNATed to an endpoint",
		filter: v4DNAT,
		reply:  deleted2,
		line:   "conntrack -D -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.1.10",
		n:      2,
	}, {
		name:   "IPv6 node port on any address",
		filter: v6NodePort,
		reply:  deleted2,
		line:   "conntrack -D -f ipv6 -p udp --orig-port-dst 30053",
		n:      2,
	}, {
		name:   "IPv6, DNATed to an endpoint",
		filter: v6DNAT,
		reply:  deleted2,
		line:   "conntrack -D -f ipv6 -p udp --orig-dst fd00:96::10 --orig-port-dst 53 --reply-src fd00:244:1::10",
		n:      2,
	}, {
		name:   "in a network namespace",
		prefix: []string{"ip", "netns", "exec", "test"},
		filter: v4DNAT,
		reply:  deleted2,
		line:   "ip netns exec test conntrack -D -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.1.10",
		n:      2,
	}, {
		name:   "nothing to delete: exit 1 is success",
		filter: v4DNAT,
		reply:  deleted0,
		line:   "conntrack -D -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.1.10",
	}, {
		name:    "exit 1 for another reason",
		filter:  v4DNAT,
		reply:   reply{out: "conntrack v1.4.7 (conntrack-tools): Operation failed: Operation not permitted\n", code: 1},
		line:    "conntrack -D -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.1.10",
		wantErr: "exit status 1: conntrack v1.4.7 (conntrack-tools): Operation failed: Operation not permitted",
	}, {
		name:    "refused options",
		filter:  v4DNAT,
		reply:   reply{out: "conntrack v1.4.7 (conntrack-tools): mismatched address family\n", code: 2},
		line:    "conntrack -D -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.1.10",
		wantErr: "exit status 2: conntrack v1.4.7 (conntrack-tools): mismatched address family",
	}, {
		name:    "not installed",
		filter:  v4DNAT,
		reply:   reply{err: exec.ErrNotFound},
		line:    "conntrack -D -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.1.10",
		wantErr: "executable file not found",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := &scriptedRunner{replies: []reply{tc.reply}}
			e := &Exec{Prefix: tc.prefix, Run: r.run}
			n, err := e.Delete(t.Context(), tc.filter)
			if got := strings.Join(r.lines, "\n"); got != tc.line {
				t.Errorf("ran %q, want %q", got, tc.line)
			}
			if n != tc.n {
				t.Errorf("deleted %d, want %d", n, tc.n)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestExecVersion(t *testing.T) {
	r := &scriptedRunner{replies: []reply{{out: "conntrack v1.4.7 (conntrack-tools)\n"}, {out: "exec of \"conntrack\" failed: No such file or directory\n", code: 255}}}
	e := &Exec{Prefix: []string{"ip", "netns", "exec", "test"}, Run: r.run}
	if v, err := e.Version(t.Context()); err != nil || v != "conntrack v1.4.7 (conntrack-tools)" {
		t.Errorf("Version() = %q, %v", v, err)
	}
	if _, err := e.Version(t.Context()); err == nil || !strings.Contains(err.Error(), "No such file") {
		t.Errorf("Version() without conntrack: %v, want an error", err)
	}
	if want := "ip netns exec test conntrack --version"; r.lines[0] != want {
		t.Errorf("ran %q, want %q", r.lines[0], want)
	}
}

func TestFakeRefusesWhatConntrackRefuses(t *testing.T) {
	fake := NewFake()
	for _, f := range []Filter{
		{Family: model.IPv4, Protocol: model.UDP, Dst: netip.MustParseAddr("fd00:96::10"), Port: 53},
		{Family: model.IPv6, Protocol: model.UDP, Port: 53, DNAT: netip.MustParseAddr("10.244.1.10")},
		{Family: model.IPv4, Protocol: "ICMP", Port: 53},
	} {
		if _, err := fake.Delete(t.Context(), f); err == nil {
			t.Errorf("Delete(%v) succeeded", f)
		}
	}
}

// TestExecAgainstKernel deletes entries from a real conntrack table, in a network
// namespace of its own, and checks that the filters select what the Fake selects.
func TestExecAgainstKernel(t *testing.T) {
	if reason := kernelUnsupported(); reason != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(reason)
		}
		t.Skip(reason)
	}
	ns := fmt.Sprintf("svcp-ct-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	prefix := []string{"ip", "netns", "exec", ns}
	conntrack := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append(append(prefix[1:], "conntrack"), args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("conntrack %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// The entries, with their DNAT, as the agent's rules would create them.
	entries := []Entry{
		{Family: model.IPv4, Protocol: model.UDP, Src: ap("10.244.2.5:40000"), Dst: ap("10.96.0.10:53"), DNAT: ap("10.244.1.10:5353")},
		{Family: model.IPv4, Protocol: model.UDP, Src: ap("10.244.2.5:40001"), Dst: ap("10.96.0.10:53"), DNAT: ap("10.244.1.11:5353")},
		{Family: model.IPv4, Protocol: model.UDP, Src: ap("198.51.100.1:40000"), Dst: ap("192.0.2.10:30053"), DNAT: ap("10.244.1.10:5353")},
		{Family: model.IPv4, Protocol: model.TCP, Src: ap("10.244.2.5:40002"), Dst: ap("10.96.0.10:53"), DNAT: ap("10.244.1.10:5353")},
		{Family: model.IPv6, Protocol: model.UDP, Src: ap("[fd00:244:2::5]:40000"), Dst: ap("[fd00:96::10]:53"), DNAT: ap("[fd00:244:1::10]:5353")},
		{Family: model.IPv6, Protocol: model.UDP, Src: ap("[fd00:244:2::5]:40001"), Dst: ap("[fd00:96::10]:53")},
		{Family: model.IPv6, Protocol: model.UDP, Src: ap("[fd00:244:2::5]:40002"), Dst: ap("[fd00:96::10]:53"), DNAT: ap("[fd00:244:1::11]:5353")},
	}
	for _, e := range entries {
		args := []string{"-I", "-p", strings.ToLower(string(e.Protocol)),
			"-s", e.Src.Addr().String(), "-d", e.Dst.Addr().String(),
			"--sport", fmt.Sprint(e.Src.Port()), "--dport", fmt.Sprint(e.Dst.Port()), "--timeout", "120"}
		if e.Protocol == model.TCP {
			args = append(args, "--state", "ESTABLISHED")
		}
		if e.DNAT.IsValid() {
			args = append(args, "--dst-nat", e.DNAT.String())
		}
		conntrack(args...)
	}

	// The kernel lists what the Fake holds, DNAT included.
	fake := NewFake(entries...)
	e := &Exec{Prefix: prefix}
	for _, family := range model.Families {
		for _, proto := range []model.Protocol{model.UDP, model.TCP} {
			got, err := e.List(t.Context(), family, proto)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := fake.List(t.Context(), family, proto)
			sortEntries := func(es []Entry) {
				slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.String(), b.String()) })
			}
			sortEntries(got)
			sortEntries(want)
			if !slices.Equal(got, want) {
				t.Errorf("List(%v, %s) =\n%v\nwant\n%v", family, proto, got, want)
			}
		}
	}

	filters := []Filter{
		// One flow, by its source: the IPv4 one to 10.96.0.10:53 from port 40001.
		{Family: model.IPv4, Protocol: model.UDP, Dst: netip.MustParseAddr("10.96.0.10"), Port: 53, Src: ap("10.244.2.5:40001")},
		{Family: model.IPv4, Protocol: model.UDP, Dst: netip.MustParseAddr("10.96.0.10"), Port: 53, DNAT: netip.MustParseAddr("10.244.1.10")},
		{Family: model.IPv4, Protocol: model.UDP, Port: 30053, DNAT: netip.MustParseAddr("10.244.1.10")},
		// One endpoint's IPv6 flows, not the other's: conntrack-tools 1.4.7's
		// --dst-nat would take both.
		{Family: model.IPv6, Protocol: model.UDP, Dst: netip.MustParseAddr("fd00:96::10"), Port: 53, DNAT: netip.MustParseAddr("fd00:244:1::10")},
		{Family: model.IPv6, Protocol: model.UDP, Dst: netip.MustParseAddr("fd00:96::10"), Port: 53},
		{Family: model.IPv6, Protocol: model.UDP, Port: 30053}, // matches nothing
	}
	for _, f := range filters {
		want, err := fake.Delete(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		n, err := e.Delete(t.Context(), f)
		if err != nil {
			t.Fatalf("Delete(%v): %v", f, err)
		}
		if n != want {
			t.Errorf("Delete(%v) deleted %d entries, the Fake %d", f, n, want)
		}
	}

	var left []string
	for _, family := range []string{"ipv4", "ipv6"} {
		for _, line := range strings.Split(conntrack("-L", "-f", family), "\n") {
			if f := strings.Fields(line); len(f) > 0 && (f[0] == "udp" || f[0] == "tcp") {
				left = append(left, line)
			}
		}
	}
	var want []string
	for _, e := range fake.Entries() {
		want = append(want, e.String())
	}
	if len(left) != len(want) {
		t.Fatalf("the kernel holds\n%s\nthe Fake\n%s", strings.Join(left, "\n"), fake.Dump())
	}
	for _, w := range want {
		// The original tuple, "src=... dst=... sport=... dport=...", after the
		// protocol's name and number.
		orig := strings.Join(strings.Fields(w)[2:6], " ")
		if !slices.ContainsFunc(left, func(l string) bool { return strings.Contains(l, orig) }) {
			t.Errorf("the kernel lost %s; it holds\n%s", orig, strings.Join(left, "\n"))
		}
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// kernelUnsupported says why TestExecAgainstKernel cannot run here, or "".
func kernelUnsupported() string {
	if os.Geteuid() != 0 {
		return "needs root to create a network namespace"
	}
	for _, tool := range []string{"ip", "conntrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "needs " + tool + " on PATH (conntrack: apt-get install conntrack)"
		}
	}
	return ""
}
