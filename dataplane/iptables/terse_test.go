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
	"math"
	"strings"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// TestEndpointCommentsDroppedAboveThreshold checks that endpoint rules lose their
// comments once the view has more than largeClusterEndpoints endpoints, as
// kube-proxy's do, that every other rule keeps its comment, and that the rules are
// otherwise the same. benchView uses 10.96.0.0/12 cluster IPs and 10.128.0.0/9 pods.
func TestEndpointCommentsDroppedAboveThreshold(t *testing.T) {
	isEndpointRule := func(line string) bool {
		return strings.HasPrefix(line, "-A "+prefixEndpoint) || strings.Contains(line, "-j "+prefixEndpoint)
	}
	stripComment := func(line string) string {
		if i := strings.Index(line, ` -m comment --comment "`); i >= 0 {
			j := strings.Index(line[i+len(` -m comment --comment "`):], `"`)
			return line[:i] + line[i+len(` -m comment --comment "`)+j+1:]
		}
		return line
	}
	lines := func(payload []byte) []string { return strings.Split(strings.TrimSuffix(string(payload), "\n"), "\n") }
	for _, tc := range []struct {
		services, endpoints int
		terse               bool
	}{
		{100, 10, false}, // exactly 1,000 endpoints: comments kept
		{101, 10, true},  // 1,010
	} {
		n := tc.services * tc.endpoints
		v := benchView(tc.services, tc.endpoints)
		// Affinity on one port: its recent-match jumps are endpoint rules too.
		v.ServicePorts[0].SessionAffinity = model.SessionAffinity{ClientIP: true, TimeoutSeconds: 10800}
		got := lines(newRenderer(model.IPv4, DefaultMasqueradeBit).render(v, nil, true, nil).payload)
		// The same view with the threshold out of reach: every rule commented.
		verbose := newRenderer(model.IPv4, DefaultMasqueradeBit)
		verbose.terseAbove = math.MaxInt
		want := lines(verbose.render(v, nil, true, nil).payload)
		if len(got) != len(want) {
			t.Fatalf("%d endpoints: %d lines, %d with every comment", n, len(got), len(want))
		}
		endpointRules := 0
		for i, line := range got {
			if !strings.HasPrefix(line, "-A ") || !isEndpointRule(line) {
				if line != want[i] {
					t.Errorf("%d endpoints: line %d is %q, want %q", n, i, line, want[i])
				}
				continue
			}
			endpointRules++
			if commented := strings.Contains(line, "-m comment"); commented == tc.terse {
				t.Errorf("%d endpoints: endpoint rule %q: commented=%v, want %v", n, line, commented, !tc.terse)
			}
			if stripComment(line) != stripComment(want[i]) {
				t.Errorf("%d endpoints: endpoint rule %q differs from %q in more than its comment", n, line, want[i])
			}
		}
		// 10 jumps and 10 endpoint chains of two rules per port, and the affinity checks.
		if wantRules := 3*n + tc.endpoints; endpointRules != wantRules {
			t.Errorf("%d endpoints: %d endpoint rules, want %d", n, endpointRules, wantRules)
		}
	}
}
