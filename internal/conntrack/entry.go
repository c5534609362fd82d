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

import (
	"fmt"
	"net/netip"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Entry is one conntrack entry: as much of one as a Filter can select.
type Entry struct {
	Family   model.Family
	Protocol model.Protocol
	// Src and Dst are the original direction's source and destination.
	Src, Dst netip.AddrPort
	// DNAT is where the destination was rewritten to; the zero AddrPort when it
	// was not.
	DNAT netip.AddrPort
}

// replySource returns where the reply comes from: the DNAT target, or the
// original destination when the entry was not DNATed.
func (e Entry) replySource() netip.Addr {
	if e.DNAT.IsValid() {
		return e.DNAT.Addr()
	}
	return e.Dst.Addr()
}

// String returns the entry in conntrack -L's syntax, without timeout, state and
// mark: "udp 17 src=... dst=... sport=... dport=... src=... dst=... sport=...
// dport=...", the second tuple being the expected reply.
func (e Entry) String() string {
	reply := e.Dst
	if e.DNAT.IsValid() {
		reply = e.DNAT
	}
	proto := map[model.Protocol]string{model.TCP: "tcp      6", model.UDP: "udp      17", model.SCTP: "sctp     132"}[e.Protocol]
	return fmt.Sprintf("%s src=%s dst=%s sport=%d dport=%d src=%s dst=%s sport=%d dport=%d", proto,
		e.Src.Addr(), e.Dst.Addr(), e.Src.Port(), e.Dst.Port(),
		reply.Addr(), e.Src.Addr(), reply.Port(), e.Src.Port())
}
