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
	"errors"
	"fmt"
	"slices"
	"strings"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/iptables"
	"github.com/svcplane/svcplane/dataplane/ipvs"
	"github.com/svcplane/svcplane/dataplane/nftables"
	"github.com/svcplane/svcplane/internal/conntrack"
)

// Modes of the agent: the backends it can program the node with.
const (
	ModeIPTables = "iptables"
	ModeIPVS     = "ipvs"
	ModeNFTables = "nftables"
)

// The iptables variants --iptables-variant accepts; see iptables.Variants.
const (
	VariantAuto   = iptables.VariantAuto
	VariantSystem = iptables.VariantSystem
	VariantNFT    = iptables.VariantNFT
	VariantLegacy = iptables.VariantLegacy
)

// IPTablesVariants lists every variant --iptables-variant accepts.
var IPTablesVariants = iptables.Variants

// Mode is how the agent builds and cleans up one backend. Each backend package
// owns its construction, the detection of what the node supports (families,
// tools) and its cleanup; an entry only adapts them to BackendOptions.
type Mode struct {
	// New returns the mode's backend for the node the agent runs on.
	New func(ctx context.Context, opts BackendOptions) (dataplane.Backend, error)
	// Cleanup removes everything the mode's backends ever installed on the node.
	// It must succeed on a node the mode never ran on, including one where its
	// kernel interface or tools are missing: `agent --cleanup` runs every mode's.
	Cleanup func(ctx context.Context, opts BackendOptions) error
}

// modes is the table --mode picks from. A new backend adds one entry.
var modes = map[string]Mode{
	ModeIPTables: {
		New: func(ctx context.Context, opts BackendOptions) (dataplane.Backend, error) {
			return iptables.NewForNode(ctx, iptables.NodeOptions{Variant: opts.IPTablesVariant})
		},
		Cleanup: func(ctx context.Context, opts BackendOptions) error {
			return iptables.CleanupNode(ctx, opts.IPTablesVariant)
		},
	},
	ModeIPVS: {
		New: func(ctx context.Context, opts BackendOptions) (dataplane.Backend, error) {
			return ipvs.NewForNode(ctx, opts.IPVS)
		},
		Cleanup: func(ctx context.Context, _ BackendOptions) error {
			return ipvs.CleanupNode(ctx)
		},
	},
	ModeNFTables: {
		New: func(ctx context.Context, _ BackendOptions) (dataplane.Backend, error) {
			return nftables.NewForNode(ctx)
		},
		Cleanup: func(ctx context.Context, _ BackendOptions) error {
			return nftables.CleanupNode(ctx)
		},
	},
}

// Modes lists every mode --mode accepts, implemented or not.
var Modes = []string{ModeIPTables, ModeIPVS, ModeNFTables}

// BackendOptions chooses the backend NewBackendWith builds.
type BackendOptions struct {
	// Mode is one of Modes.
	Mode string
	// IPTablesVariant is one of IPTablesVariants: which iptables tools the
	// iptables mode runs. Empty is VariantAuto.
	IPTablesVariant string
	// IPVS are the --ipvs-* flags of the IPVS mode.
	IPVS ipvs.NodeOptions
}

// NewBackend returns the backend of mode with the iptables variant detected, as
// NewBackendWith does.
func NewBackend(ctx context.Context, mode string) (dataplane.Backend, error) {
	return NewBackendWith(ctx, BackendOptions{Mode: mode})
}

// NewBackendWith returns the backend opts ask for, from the mode table, after
// removing what the other modes left on the node (cleanupOtherModes), clearing
// stale UDP conntrack entries after each sync (see withConntrack).
func NewBackendWith(ctx context.Context, opts BackendOptions) (dataplane.Backend, error) {
	m, err := lookupMode(opts.Mode)
	if err != nil {
		return nil, err
	}
	b, err := m.New(ctx, opts)
	if err != nil {
		return nil, err
	}
	cleanupOtherModes(ctx, opts.Mode)
	return withConntrack(b)
}

// cleanupOtherModes removes what the implemented modes other than mode left on the
// node, as kube-proxy cleans up its other modes when it starts: a node switched
// from one mode to another keeps nothing of the old one even when nobody ran
// `agent --cleanup` in between, and the old mode's rules cannot shadow the new
// one's. Each mode's objects are its own (SVCP- iptables chains, the nftables
// svcplane table, the IPVS mode's), so this never touches mode's. Failures are
// logged: the agent programs the node anyway.
func cleanupOtherModes(ctx context.Context, mode string) {
	log := logf.FromContext(ctx)
	for _, name := range implementedModes() {
		if name == mode {
			continue
		}
		if err := modes[name].Cleanup(ctx, BackendOptions{Mode: name}); err != nil {
			log.Error(err, "cannot remove what another mode left on the node", "mode", name)
		}
	}
}

func lookupMode(mode string) (Mode, error) {
	if m, ok := modes[mode]; ok {
		return m, nil
	}
	if slices.Contains(Modes, mode) {
		return Mode{}, fmt.Errorf("--mode=%s is not implemented yet; use one of %s", mode, strings.Join(implementedModes(), ", "))
	}
	return Mode{}, fmt.Errorf("unknown --mode %q; one of %s", mode, strings.Join(Modes, ", "))
}

// implementedModes returns the modes of the table, sorted.
func implementedModes() []string {
	var out []string
	for m := range modes {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// Cleanup removes everything svcplane's agents installed on the node, in every
// implemented mode and not only opts.Mode: a node switched from one mode to another
// must keep nothing of the old one, as kube-proxy --cleanup does. opts.Mode must
// still name a mode, so that a typo is not a silent no-op. Errors are joined and do
// not stop the other modes' cleanup.
func Cleanup(ctx context.Context, opts BackendOptions) error {
	if _, err := lookupMode(opts.Mode); err != nil && !slices.Contains(Modes, opts.Mode) {
		return err
	}
	var errs []error
	for _, name := range implementedModes() {
		if err := modes[name].Cleanup(ctx, opts); err != nil {
			errs = append(errs, fmt.Errorf("%s mode: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// withConntrack wraps b so that the conntrack entries of UDP flows to endpoints
// that went away are cleared after each sync, as kube-proxy clears them; there is
// no flag to turn that off, as kube-proxy has none. The entries are cleared over
// netlink in the agent's network namespace; a kernel that offers no netfilter
// netlink socket is an error, not a node whose stale flows silently last until
// they expire.
func withConntrack(b dataplane.Backend) (dataplane.Backend, error) {
	ct, err := conntrack.NewNetlink()
	if err != nil {
		return nil, fmt.Errorf("clearing stale UDP conntrack entries: %w", err)
	}
	return conntrack.NewBackend(b, ct), nil
}
