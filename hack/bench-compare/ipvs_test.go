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

package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestIPVSLine: the guest's result line, as the console carries it (the kernel may
// put a prefix before it), comes back as the guest printed it; anything else on the
// console is not a result, and a garbled result line is an error, not a zero.
func TestIPVSLine(t *testing.T) {
	want := ipvsSideResult{Side: sideKube, VirtualServers: 1001, RealServers: 10010,
		Result: &proxySide{FirstSync: 1500 * time.Millisecond, EndpointSync: 20 * time.Millisecond, EndpointSyncs: 1, PeakRSS: 90e6, IdleCPU: 0.25}}
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{ipvsMarker + string(data), "[   12.345678] x " + ipvsMarker + string(data)} {
		got, ok, err := parseIPVSLine(line)
		if err != nil || !ok {
			t.Fatalf("parseIPVSLine(%q) = %v, %v", line, ok, err)
		}
		if got.Side != want.Side || got.VirtualServers != 1001 || got.RealServers != 10010 || *got.Result != *want.Result {
			t.Errorf("parseIPVSLine = %+v %+v, want %+v %+v", got, got.Result, want, want.Result)
		}
	}
	if _, ok, err := parseIPVSLine("agent: first sync 1.2 s, idle for 40s"); ok || err != nil {
		t.Errorf("a progress line is a result: %v, %v", ok, err)
	}
	for _, bad := range []string{
		ipvsMarker + `{"Side":"svcplane","Result":`,     // cut
		ipvsMarker + `{"Side":"userspace","Error":"x"}`, // unknown side
		ipvsMarker + `{"Side":"svcplane"}`,              // neither numbers nor error
	} {
		if _, ok, err := parseIPVSLine(bad); !ok || err == nil {
			t.Errorf("parseIPVSLine(%q) = %v, %v; want an error", bad, ok, err)
		}
	}
	if r, _, err := parseIPVSLine(ipvsMarker + `{"Side":"svcplane","Error":"waiting for its first sync: agent exited"}`); err != nil || !strings.Contains(r.Error, "agent exited") {
		t.Errorf("a failed side = %+v, %v", r, err)
	}
}
