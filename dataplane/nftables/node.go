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
	"context"
	"fmt"

	"github.com/go-logr/logr"
	gnftables "github.com/google/nftables"
	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane/model"
)

// NewForNode returns a Backend over the node's nft, programming IPv4, and IPv6 when
// nft can use an ip6 table here. It fails when nft does not work at all (not
// installed, older than 1.0.1, or no permission). Transactions go through nft;
// the names a full sync lists come over netlink (knftables.UseNetlink), since
// `nft --json list table` of a table with 100,000 chains takes seconds.
func NewForNode(ctx context.Context) (*Backend, error) {
	ifaces := map[model.Family]knftables.Interface{}
	for _, f := range model.Families {
		nft, err := knftables.New(familyOf(f), TableName, knftables.UseNetlink)
		if err != nil {
			if f == model.IPv4 {
				return nil, fmt.Errorf("nftables does not work on this node: %w", err)
			}
			logr.FromContextOrDiscard(ctx).Info("IPv6 is not programmed: nft cannot use an ip6 table on this node", "error", err.Error())
			continue
		}
		ifaces[f] = nft
	}
	return New(Options{Interfaces: ifaces, TableIntact: NetlinkIntact})
}

// NetlinkIntact is the Options.TableIntact check over netlink: one dump of
// nat-prerouting's rules, whatever the table's size. Any error, a missing table or
// chain among them (which the library does not tell apart), is "not intact",
// which makes the sync a full one.
func NetlinkIntact(_ context.Context, f model.Family) (bool, error) {
	c, err := gnftables.New()
	if err != nil {
		return false, err
	}
	family := gnftables.TableFamilyIPv4
	if f == model.IPv6 {
		family = gnftables.TableFamilyIPv6
	}
	rules, err := c.GetRules(&gnftables.Table{Name: TableName, Family: family}, &gnftables.Chain{Name: chainNATPrerouting})
	if err != nil {
		//nolint:nilerr // a missing table or chain and a failed dump look alike here; both mean "sync fully", which is the answer
		return false, nil
	}
	return len(rules) > 0, nil
}

// CleanupNode deletes svcplane's table in both families. A node where nft does not
// work has no table of ours to delete (only nft creates one): that is logged, not
// an error, so that cleaning every mode works on an iptables-only node.
func CleanupNode(ctx context.Context) error {
	ifaces := map[model.Family]knftables.Interface{}
	for _, f := range model.Families {
		nft, err := knftables.New(familyOf(f), TableName)
		if err != nil {
			logr.FromContextOrDiscard(ctx).Info("nothing to clean with nftables: nft does not work here", "family", f.String(), "error", err.Error())
			continue
		}
		ifaces[f] = nft
	}
	if len(ifaces) == 0 {
		return nil
	}
	b, err := New(Options{Interfaces: ifaces})
	if err != nil {
		return err
	}
	return b.Cleanup(ctx)
}
