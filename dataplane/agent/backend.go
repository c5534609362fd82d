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
	"bytes"
	"context"
	"errors"
	"fmt"
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

// BackendOptions chooses the backend NewBackendWith builds.
type BackendOptions struct {
	// Mode is one of Modes.
	Mode string
	// IPTablesVariant is one of IPTablesVariants: which iptables tools the
	// iptables mode runs. Empty is VariantAuto.
	IPTablesVariant string
}

// NewBackend returns the backend of mode with the iptables variant detected, as
// NewBackendWith does.
func NewBackend(ctx context.Context, mode string) (dataplane.Backend, error) {
	return NewBackendWith(ctx, BackendOptions{Mode: mode})
}

// NewBackendWith returns the backend opts ask for, programming the IP families the
// node supports: IPv4, and IPv6 when ip6tables can read its nat table, and clearing
// stale UDP conntrack entries after each sync (see withConntrack). The agent and
// `agent --cleanup` build their backend here, so both handle the same families and
// the same iptables variant.
func NewBackendWith(ctx context.Context, opts BackendOptions) (dataplane.Backend, error) {
	switch opts.Mode {
	case ModeIPTables:
		variant, err := chooseVariant(ctx, opts.IPTablesVariant, runVariantSave)
		if err != nil {
			return nil, err
		}
		exec := &iptables.Exec{Variant: variant}
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
		return nil, fmt.Errorf("--mode=%s is not implemented yet; use --mode=%s", opts.Mode, ModeIPTables)
	}
	return nil, fmt.Errorf("unknown --mode %q; one of %s", opts.Mode, strings.Join(Modes, ", "))
}

// Cleanup removes everything svcplane's agents installed with the backend opts
// ask for. With the iptables variant left to VariantAuto it cleans each variant
// that holds svcplane's chains, since an agent may have written to either before
// the node's rules moved: `agent --cleanup` leaves nothing behind. A variant
// without them is not touched, not even read table by table, which with the
// legacy tools would load kernel modules the node does not use.
func Cleanup(ctx context.Context, opts BackendOptions) error {
	if opts.Mode != ModeIPTables || (opts.IPTablesVariant != "" && opts.IPTablesVariant != VariantAuto) {
		b, err := NewBackendWith(ctx, opts)
		if err != nil {
			return err
		}
		return b.Cleanup(ctx)
	}
	log := logf.FromContext(ctx)
	var errs []error
	worked := false
	for _, variant := range []string{VariantNFT, VariantLegacy} {
		ours, err := holdsOurChains(ctx, variant)
		if err != nil {
			log.Info("nothing to clean with iptables-"+variant+": its tools do not work", "error", err.Error())
			continue
		}
		worked = true
		if !ours {
			continue
		}
		b, err := NewBackendWith(ctx, BackendOptions{Mode: opts.Mode, IPTablesVariant: variant})
		if err == nil {
			err = b.Cleanup(ctx)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("iptables-%s: %w", variant, err))
		}
	}
	if !worked {
		// Neither named variant runs: the system's tools are all there is.
		b, err := NewBackendWith(ctx, BackendOptions{Mode: opts.Mode, IPTablesVariant: VariantSystem})
		if err != nil {
			return err
		}
		return b.Cleanup(ctx)
	}
	return errors.Join(errs...)
}

// holdsOurChains reports whether the rules of variant hold a chain of svcplane's,
// in either family. It fails when variant's IPv4 tools do not work.
func holdsOurChains(ctx context.Context, variant string) (bool, error) {
	saved, err := runVariantSave(ctx, variant)
	if err != nil {
		return false, err
	}
	if bytes.Contains(saved, []byte(":"+iptables.ChainPrefix)) {
		return true, nil
	}
	saved6, err := runSave(ctx, "ip6tables-"+variant+"-save")
	return err == nil && bytes.Contains(saved6, []byte(":"+iptables.ChainPrefix)), nil
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
