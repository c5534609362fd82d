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
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// The address conventions of these tests are stated at the top of book_test.go.

func TestParseServiceCIDRs(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		// wantErr lists substrings the error must contain; nil means success.
		wantErr []string
	}{
		{name: "single IPv4", in: "10.96.0.0/24", want: []string{"10.96.0.0/24"}},
		{name: "single IPv6", in: "fd00:10:96::/120", want: []string{"fd00:10:96::/120"}},
		{name: "dual-stack IPv4 first", in: "10.96.0.0/24,fd00:10:96::/120", want: []string{"10.96.0.0/24", "fd00:10:96::/120"}},
		{name: "dual-stack IPv6 first", in: "fd00:10:96::/120,10.96.0.0/24", want: []string{"fd00:10:96::/120", "10.96.0.0/24"}},
		{name: "spaces around entries", in: " 10.96.0.0/24 , fd00:10:96::/120 ", want: []string{"10.96.0.0/24", "fd00:10:96::/120"}},
		{name: "large but valid", in: "10.96.0.0/12", want: []string{"10.96.0.0/12"}},
		{
			name:    "two IPv4",
			in:      "10.96.0.0/24,10.97.0.0/24",
			wantErr: []string{`"10.96.0.0/24,10.97.0.0/24"`, "dual-stack needs one IPv4 and one IPv6 CIDR"},
		},
		{
			name:    "two IPv6",
			in:      "fd00:10:96::/120,fd00:10:97::/120",
			wantErr: []string{"dual-stack needs one IPv4 and one IPv6 CIDR"},
		},
		{
			name:    "the same CIDR twice",
			in:      "10.96.0.0/24,10.96.0.0/24",
			wantErr: []string{"dual-stack needs one IPv4 and one IPv6 CIDR"},
		},
		{
			name:    "three CIDRs",
			in:      "10.96.0.0/24,fd00:10:96::/120,10.97.0.0/24",
			wantErr: []string{"at most two CIDRs"},
		},
		{
			name:    "unmasked IPv4",
			in:      "10.96.0.1/12",
			wantErr: []string{"10.96.0.1/12 is not a network address", "did you mean 10.96.0.0/12?"},
		},
		{
			name:    "unmasked IPv6 in second place",
			in:      "10.96.0.0/24,fd00:10:96::1/120",
			wantErr: []string{"fd00:10:96::1/120 is not a network address", "did you mean fd00:10:96::/120?"},
		},
		{name: "empty", in: "", wantErr: []string{"--service-cluster-ip-range"}},
		{name: "garbage", in: "not-a-cidr", wantErr: []string{`--service-cluster-ip-range "not-a-cidr"`}},
		{name: "address without prefix length", in: "10.96.0.0", wantErr: []string{"--service-cluster-ip-range"}},
		{name: "prefix length too long", in: "10.96.0.0/33", wantErr: []string{"--service-cluster-ip-range"}},
		{name: "trailing comma", in: "10.96.0.0/24,", wantErr: []string{"--service-cluster-ip-range"}},
		{name: "leading comma", in: ",10.96.0.0/24", wantErr: []string{"--service-cluster-ip-range"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseServiceCIDRs(tc.in)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("ParseServiceCIDRs(%q) = %v, want an error", tc.in, got)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("ParseServiceCIDRs(%q) error %q does not contain %q", tc.in, err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseServiceCIDRs(%q): %v", tc.in, err)
			}
			var want []netip.Prefix
			for _, s := range tc.want {
				want = append(want, netip.MustParsePrefix(s))
			}
			if !slices.Equal(got, want) {
				t.Errorf("ParseServiceCIDRs(%q) = %v, want %v", tc.in, got, want)
			}
		})
	}
}

// TestParseServiceCIDRsFeedsNewBook checks that whatever ParseServiceCIDRs accepts,
// NewBook accepts too, and that the Book's families follow the order given.
func TestParseServiceCIDRsFeedsNewBook(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fams string
	}{
		{"10.96.0.0/24", "IPv4"},
		{"fd00:10:96::/120", "IPv6"},
		{"10.96.0.0/24,fd00:10:96::/120", "IPv4,IPv6"},
		{"fd00:10:96::/120,10.96.0.0/24", "IPv6,IPv4"},
	} {
		cidrs, err := ParseServiceCIDRs(tc.in)
		if err != nil {
			t.Fatalf("ParseServiceCIDRs(%q): %v", tc.in, err)
		}
		b, err := NewBook(cidrs, testNodePorts)
		if err != nil {
			t.Fatalf("NewBook(%q): %v", tc.in, err)
		}
		var fams []string
		for _, f := range b.Families() {
			fams = append(fams, string(f))
		}
		if got := strings.Join(fams, ","); got != tc.fams {
			t.Errorf("NewBook(%q).Families() = %s, want %s", tc.in, got, tc.fams)
		}
	}
}
