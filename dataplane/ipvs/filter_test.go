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

package ipvs

import (
	"context"
	"errors"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane/model"
)

// newFiltered returns a backend over fake with a knftables.Fake filter table
// per family.
func newFiltered(t *testing.T, fake *Fake, opts Options) (*Backend, map[model.Family]*knftables.Fake) {
	t.Helper()
	nfts := map[model.Family]*knftables.Fake{
		model.IPv4: knftables.NewFake(knftables.IPv4Family, FilterTable),
		model.IPv6: knftables.NewFake(knftables.IPv6Family, FilterTable),
	}
	opts.NFT = map[model.Family]knftables.Interface{}
	for f, n := range nfts {
		opts.NFT[f] = n
	}
	b, _ := newBackend(t, fake, opts)
	return b, nfts
}

func TestFilterGolden(t *testing.T) {
	fake := NewFake(nil, nodeIPv4, nodeIPv6)
	b, nfts := newFiltered(t, fake, Options{})
	syncOK(t, b, fixture())
	golden(t, "filter-ip", nfts[model.IPv4].Dump())
	golden(t, "filter-ip6", nfts[model.IPv6].Dump())

	// Nothing changed: no transaction at all.
	nfts[model.IPv4].LastTransaction = nil
	syncOK(t, b, fixture())
	if tx := nfts[model.IPv4].LastTransaction; tx != nil {
		t.Errorf("an unchanged state ran a transaction:\n%s", tx)
	}
}

// TestFilterPartialSync: one Service's change is a transaction of its elements.
func TestFilterPartialSync(t *testing.T) {
	fake := NewFake(nil, nodeIPv4, nodeIPv6)
	b, nfts := newFiltered(t, fake, Options{})
	syncOK(t, b, fixture())
	full := nfts[model.IPv4].Dump()

	// local-none gains a local endpoint: its node port and load-balancer IP leave
	// the drop set and, under eTP Local, are not masqueraded; the endpoint joins
	// the hairpin set.
	st := fixture()
	for _, p := range st.IPv4.ServicePorts {
		if p.Name.Name == "local-none" {
			p.Endpoints = append(p.Endpoints, eps("10.244.1.11/local")...)
		}
	}
	syncOK(t, b, st)
	want := "add element ip svcplane-ipvs hairpin { 10.244.1.11 . 10.244.1.11 }\n" +
		"delete element ip svcplane-ipvs no-local-endpoints { 192.0.2.12 . tcp . 80 }\n" +
		"delete element ip svcplane-ipvs no-local-endpoints { 192.168.0.10 . tcp . 30082 }\n"
	if got := nfts[model.IPv4].LastTransaction.String(); got != want {
		t.Errorf("transaction:\n%s\nwant:\n%s", got, want)
	}
	// And back: the table is the full sync's again.
	syncOK(t, b, fixture())
	if got := nfts[model.IPv4].Dump(); got != full {
		t.Errorf("after the change and back:\n%s\nwant:\n%s", got, full)
	}
}

// TestFilterRules: the masquerade rule follows --cluster-cidr and
// --masquerade-all; a change of either rewrites the table.
func TestFilterRules(t *testing.T) {
	fake := NewFake(nil, nodeIPv4, nodeIPv6)
	b, nfts := newFiltered(t, fake, Options{})
	st := fixture()
	syncOK(t, b, st)
	if d := nfts[model.IPv4].Dump(); !strings.Contains(d, "ip saddr != 10.244.0.0/16 ip daddr . meta l4proto . th dport @cluster-ips meta mark set meta mark | 0x4000") {
		t.Errorf("no cluster CIDR masquerade rule:\n%s", d)
	}
	st.IPv4.MasqueradeAll = true
	syncOK(t, b, st)
	d := nfts[model.IPv4].Dump()
	if !strings.Contains(d, "add rule ip svcplane-ipvs mark-masq ip daddr . meta l4proto . th dport @cluster-ips meta mark set meta mark | 0x4000") ||
		strings.Contains(d, "saddr != 10.244.0.0/16") {
		t.Errorf("masquerade-all not applied:\n%s", d)
	}
	st.IPv4.MasqueradeAll = false
	st.IPv4.ClusterCIDR = netipPrefix("")
	syncOK(t, b, st)
	if d := nfts[model.IPv4].Dump(); strings.Contains(d, "@cluster-ips meta mark") {
		t.Errorf("cluster IP traffic masqueraded without --cluster-cidr or --masquerade-all:\n%s", d)
	}
}

// TestFilterFailure: a failed transaction stops the sync before any virtual
// server is written, and the next sync rewrites the table whole.
func TestFilterFailure(t *testing.T) {
	fake := NewFake(nil, nodeIPv4, nodeIPv6)
	failing := &failingNFT{Interface: knftables.NewFake(knftables.IPv4Family, FilterTable), fail: true}
	b, _ := newBackend(t, fake, Options{Families: []model.Family{model.IPv4},
		NFT: map[model.Family]knftables.Interface{model.IPv4: failing}})
	if err := b.Sync(context.Background(), fixture()); err == nil || !strings.Contains(err.Error(), "nftables table ip svcplane-ipvs") {
		t.Fatalf("Sync = %v", err)
	}
	if strings.Contains(fake.Dump(), "TCP ") {
		t.Errorf("virtual servers written although the filter failed:\n%s", fake.Dump())
	}
	failing.fail = false
	syncOK(t, b, fixture())
	if !strings.Contains(failing.Interface.(*knftables.Fake).LastTransaction.String(), "flush table ip svcplane-ipvs") {
		t.Errorf("the sync after a failure did not rewrite the table")
	}
}

type failingNFT struct {
	knftables.Interface
	fail bool
}

func (f *failingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	if f.fail {
		return errors.New("nft: injected failure")
	}
	return f.Interface.Run(ctx, tx)
}

func TestFilterCleanup(t *testing.T) {
	fake := NewFake(nil, nodeIPv4, nodeIPv6)
	b, nfts := newFiltered(t, fake, Options{})
	if err := b.Cleanup(context.Background()); err != nil {
		t.Fatalf("Cleanup on a clean node: %v", err)
	}
	syncOK(t, b, fixture())
	if err := b.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	for f, n := range nfts {
		if d := n.Dump(); d != "" {
			t.Errorf("%v table left after Cleanup:\n%s", f, d)
		}
	}
}
