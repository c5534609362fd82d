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

package agent

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/conntrack"
	"github.com/svcplane/svcplane/dataplane/iptables"
	"github.com/svcplane/svcplane/dataplane/model"
)

// Modes of the agent: the backends it can program the node with.
const (
	ModeIPTables = "iptables"
	ModeIPVS     = "ipvs"
	ModeNFTables = "nftables"
)

// Modes lists every mode --mode accepts.
var Modes = []string{ModeIPTables, ModeIPVS, ModeNFTables}

// NewBackend returns the backend of mode, programming the IP families the node
// supports: IPv4, and IPv6 when ip6tables can read its nat table, and clearing
// stale UDP conntrack entries after each sync (see withConntrack). The agent and
// `agent --cleanup` build their backend here, so both handle the same families.
func NewBackend(ctx context.Context, mode string) (dataplane.Backend, error) {
	switch mode {
	case ModeIPTables:
		exec := &iptables.Exec{}
		families, err := iptablesFamilies(ctx, exec)
		if err != nil {
			return nil, err
		}
		b, err := iptables.New(iptables.Options{Executor: exec, Families: families})
		if err != nil {
			return nil, err
		}
		return withConntrack(ctx, b), nil
	case ModeIPVS, ModeNFTables:
		return nil, fmt.Errorf("--mode=%s is not implemented yet; use --mode=%s", mode, ModeIPTables)
	}
	return nil, fmt.Errorf("unknown --mode %q; one of %s", mode, strings.Join(Modes, ", "))
}

// withConntrack wraps b so that the conntrack entries of UDP flows to endpoints
// that went away are cleared after each sync, as kube-proxy clears them; there is
// no flag to turn that off, as kube-proxy has none. A node without the conntrack
// CLI (conntrack-tools) is still programmed, with one log line: stale flows then
// last until they expire.
func withConntrack(ctx context.Context, b dataplane.Backend) dataplane.Backend {
	exec := &conntrack.Exec{}
	if _, err := exec.Version(ctx); err != nil {
		logf.FromContext(ctx).Info("stale UDP conntrack entries will not be cleared: the conntrack CLI does not work on this node; install conntrack-tools",
			"error", err.Error())
		return b
	}
	return conntrack.NewBackend(b, exec)
}

// iptablesFamilies returns the families whose iptables tools work. IPv4 must: a
// node without it has nothing for the agent to do. IPv6 is left out, with a log
// line, on nodes without ip6tables or with IPv6 disabled.
func iptablesFamilies(ctx context.Context, exec iptables.Executor) ([]model.Family, error) {
	if _, err := exec.Save(ctx, model.IPv4, iptables.TableNAT); err != nil {
		return nil, fmt.Errorf("iptables does not work on this node: %w", err)
	}
	families := []model.Family{model.IPv4}
	if _, err := exec.Save(ctx, model.IPv6, iptables.TableNAT); err != nil {
		logf.FromContext(ctx).Info("IPv6 is not programmed: ip6tables does not work on this node", "error", err.Error())
	} else {
		families = append(families, model.IPv6)
	}
	return families, nil
}

// ParseClusterCIDRs parses --cluster-cidr: comma-separated prefixes, at most one
// per family. Empty means none.
func ParseClusterCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("invalid --cluster-cidr %q: %w", part, err)
		}
		out = append(out, p.Masked())
	}
	if err := (model.Config{ClusterCIDRs: out}).Validate(); err != nil {
		return nil, fmt.Errorf("invalid --cluster-cidr: %w", err)
	}
	return out, nil
}
