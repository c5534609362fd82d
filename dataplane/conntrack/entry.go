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
	"strconv"
	"strings"

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

// parseEntries reads the entries of conntrack -L output of family, skipping
// lines it cannot read (the CLI's summary line, protocols without ports).
func parseEntries(family model.Family, out []byte) []Entry {
	var entries []Entry
	for _, line := range strings.Split(string(out), "\n") {
		if e, ok := parseEntry(family, line); ok {
			entries = append(entries, e)
		}
	}
	return entries
}

// parseEntry reads one line of conntrack -L: "udp 17 29 src=A dst=B sport=1
// dport=2 [UNREPLIED] src=C dst=A sport=3 dport=1 mark=0 use=1". The first
// src/dst/sport/dport are the original direction, the second the reply expected;
// a reply from elsewhere than the original destination means it was DNATed.
func parseEntry(family model.Family, line string) (Entry, bool) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return Entry{}, false
	}
	e := Entry{Family: family}
	switch fields[0] {
	case "tcp":
		e.Protocol = model.TCP
	case "udp":
		e.Protocol = model.UDP
	case "sctp":
		e.Protocol = model.SCTP
	default:
		return Entry{}, false
	}
	// tuples[0] is the original direction, tuples[1] the reply.
	var tuples [2]struct {
		src, dst     netip.Addr
		sport, dport uint16
	}
	seen := map[string]int{}
	for _, f := range fields[1:] {
		key, value, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		i := seen[key]
		if i > 1 {
			continue
		}
		seen[key]++
		var err error
		switch key {
		case "src", "dst":
			var a netip.Addr
			if a, err = netip.ParseAddr(value); err == nil {
				if key == "src" {
					tuples[i].src = a
				} else {
					tuples[i].dst = a
				}
			}
		case "sport", "dport":
			var n uint64
			if n, err = strconv.ParseUint(value, 10, 16); err == nil {
				if key == "sport" {
					tuples[i].sport = uint16(n)
				} else {
					tuples[i].dport = uint16(n)
				}
			}
		}
		if err != nil {
			return Entry{}, false
		}
	}
	orig, reply := tuples[0], tuples[1]
	if !orig.src.IsValid() || !orig.dst.IsValid() || !reply.src.IsValid() || model.FamilyOf(orig.dst) != family {
		return Entry{}, false
	}
	e.Src = netip.AddrPortFrom(orig.src, orig.sport)
	e.Dst = netip.AddrPortFrom(orig.dst, orig.dport)
	if from := netip.AddrPortFrom(reply.src, reply.sport); from != e.Dst {
		e.DNAT = from
	}
	return e, true
}
