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

package ledger

import (
	"slices"
	"strconv"
	"testing"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// Addresses: tinyCIDR (10.0.0.0/29) and node ports 30000-30009; 192.0.2.1 is outside.

// TestAdopt covers a Book following a status another manager wrote: it adopts values
// that are free or the Service's own, and refuses (changing nothing) values another
// Service holds or that are out of range, or an empty status.
func TestAdopt(t *testing.T) {
	status := func(ips []string, nodePorts ...int32) *v1alpha1.ServiceStatus {
		s := &v1alpha1.ServiceStatus{ClusterIPs: ips}
		for i, p := range nodePorts {
			s.Ports = append(s.Ports, v1alpha1.ServicePortStatus{Name: "p" + string(rune('a'+i)), Protocol: "TCP", Port: 80 + int32(i), NodePort: p})
		}
		return s
	}
	tests := []struct {
		name         string
		setup        func(testing.TB, *Book)
		status       *v1alpha1.ServiceStatus
		wantAdopted  bool
		wantConflict string
		// wantHeld is what ns/svc holds afterwards (nil: nothing).
		wantHeld []string
	}{{
		name:        "free values are adopted by a Service the Book does not know",
		status:      status([]string{"10.0.0.3"}, 30004),
		wantAdopted: true,
		wantHeld:    []string{"ip:10.0.0.3", "port:30004"},
	}, {
		name: "the Service's own choice is replaced by the one in status",
		setup: func(t testing.TB, b *Book) {
			ensure(t, b, "ns/svc", withIPs(clusterIPSvc(tcp("http", 80)), "10.0.0.2"))
		},
		status:      status([]string{"10.0.0.5"}),
		wantAdopted: true,
		wantHeld:    []string{"ip:10.0.0.5"},
	}, {
		name: "a value another Service holds is a conflict, and nothing changes",
		setup: func(t testing.TB, b *Book) {
			ensure(t, b, "ns/other", withIPs(clusterIPSvc(tcp("http", 80)), "10.0.0.5"))
			ensure(t, b, "ns/svc", withIPs(clusterIPSvc(tcp("http", 80)), "10.0.0.2"))
		},
		status:       status([]string{"10.0.0.5"}),
		wantConflict: "ns/other",
		wantHeld:     []string{"ip:10.0.0.2"},
	}, {
		name: "a node port another Service holds is a conflict",
		setup: func(t testing.TB, b *Book) {
			ensure(t, b, "ns/other", nodePortSvc(np(tcp("http", 80), 30007)))
		},
		status:       status([]string{"10.0.0.4"}, 30007),
		wantConflict: "ns/other",
	}, {
		name:   "an address outside the range is not adopted",
		status: status([]string{outsideIP}),
	}, {
		name: "an empty status (a write that was lost) leaves the Book's record",
		setup: func(t testing.TB, b *Book) {
			ensure(t, b, "ns/svc", withIPs(clusterIPSvc(tcp("http", 80)), "10.0.0.2"))
		},
		status:   status(nil),
		wantHeld: []string{"ip:10.0.0.2"},
	}, {
		name: "a status already in sync is left alone",
		setup: func(t testing.TB, b *Book) {
			ensure(t, b, "ns/svc", withIPs(clusterIPSvc(tcp("http", 80)), "10.0.0.2"))
		},
		status:   status([]string{"10.0.0.2"}),
		wantHeld: []string{"ip:10.0.0.2"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBook(t, tinyCIDR)
			if tc.setup != nil {
				tc.setup(t, b)
			}
			adopted, conflict := b.Adopt("ns/svc", uidOf("ns/svc"), tc.status)
			if adopted != tc.wantAdopted || conflict != tc.wantConflict {
				t.Fatalf("Adopt = (%v, %q), want (%v, %q)", adopted, conflict, tc.wantAdopted, tc.wantConflict)
			}
			var held []string
			b.mu.Lock()
			if h := b.holders["ns/svc"]; h != nil {
				for _, ip := range h.ips {
					held = append(held, "ip:"+ip.String())
				}
				for _, p := range h.ports {
					if p.NodePort != 0 {
						held = append(held, "port:"+itoa(p.NodePort))
					}
				}
			}
			b.mu.Unlock()
			slices.Sort(held)
			if !slices.Equal(held, tc.wantHeld) {
				t.Errorf("ns/svc holds %v, want %v", held, tc.wantHeld)
			}
			if tc.wantAdopted && !b.InSync("ns/svc", uidOf("ns/svc"), tc.status) {
				t.Errorf("after Adopt the Book is not in sync with the status")
			}
			// What was adopted is no longer free: an automatic allocation never
			// hands it out again.
			for range 8 {
				a, _, err := b.Ensure("ns/next", uidOf("ns/next"), clusterIPSvc(tcp("http", 80)))
				if err != nil {
					break
				}
				for _, ip := range a.ClusterIPs {
					if slices.Contains(held, "ip:"+ip) {
						t.Fatalf("%s was handed out again", ip)
					}
				}
				b.Release("ns/next")
				b.Ensure("ns/filler-"+itoa(int32(len(b.holders))), uidOf("f"), clusterIPSvc(tcp("http", 80)))
			}
		})
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
