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
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-logr/logr"
	utilexec "k8s.io/utils/exec"

	"github.com/svcplane/svcplane/dataplane/model"
)

// The iptables variants NodeOptions.Variant (the agent's --iptables-variant) accepts.
const (
	// VariantAuto picks the variant the node's other rules are in (see
	// chooseVariant).
	VariantAuto = "auto"
	// VariantSystem runs iptables-restore and friends, whichever implementation
	// the system's alternatives point to.
	VariantSystem = "system"
	// VariantNFT runs iptables-nft-restore and friends: rules in nf_tables.
	VariantNFT = "nft"
	// VariantLegacy runs iptables-legacy-restore and friends: rules in the
	// kernel's x_tables.
	VariantLegacy = "legacy"
)

// Variants lists every variant NodeOptions.Variant accepts.
var Variants = []string{VariantAuto, VariantSystem, VariantNFT, VariantLegacy}

// saveFunc returns what iptables-<variant>-save prints for IPv4, every table.
type saveFunc func(ctx context.Context, variant string) ([]byte, error)

// chooseVariant returns the iptables.Exec Variant for the flag value want: "" for
// the system's tools, "nft" or "legacy".
//
// A node has two rule sets that do not see each other, the legacy one and the
// nf_tables one, and both take effect; the agent's rules must go where kubelet's
// and the CNI plugin's are, or a firewall or a cleanup run with the other tools
// never sees them. So VariantAuto, the default, looks at both, as the
// iptables-wrapper script of kube-proxy's image does:
//
//  1. the variant holding kubelet's KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY
//     chain (kubelet creates them with the tools it uses) wins;
//  2. else the variant already holding svcplane's chains, so that a restarted
//     agent stays where it was;
//  3. else the variant with more rules;
//  4. a tie, which includes an empty node, or a node where only one variant's
//     tools run, keeps the system's tools, or the one variant that works.
func chooseVariant(ctx context.Context, want string, save saveFunc) (string, error) {
	switch want {
	case VariantSystem:
		return "", nil
	case VariantNFT, VariantLegacy:
		return want, nil
	case "", VariantAuto:
	default:
		return "", fmt.Errorf("unknown --iptables-variant %q; one of %s", want, strings.Join(Variants, ", "))
	}
	log := logr.FromContextOrDiscard(ctx)
	nft, nftErr := save(ctx, VariantNFT)
	legacy, legacyErr := save(ctx, VariantLegacy)
	switch {
	case nftErr != nil && legacyErr != nil:
		log.Info("cannot tell which iptables variant the node uses; using the system's iptables",
			"nftError", nftErr.Error(), "legacyError", legacyErr.Error())
		return "", nil
	case nftErr != nil:
		log.Info("using iptables-legacy: iptables-nft does not work here", "error", nftErr.Error())
		return VariantLegacy, nil
	case legacyErr != nil:
		log.Info("using iptables-nft: iptables-legacy does not work here", "error", legacyErr.Error())
		return VariantNFT, nil
	}

	pick := func(variant, why string) (string, error) {
		log.Info("chose the iptables variant the node's rules are in", "variant", variant, "because", why)
		return variant, nil
	}
	for _, marker := range []struct{ what, chain string }{
		{"kubelet's chains are there", ":KUBE-IPTABLES-HINT "},
		{"kubelet's chains are there", ":KUBE-KUBELET-CANARY "},
		{"svcplane's chains are there", ":SVCP-"},
	} {
		inNFT, inLegacy := bytes.Contains(nft, []byte(marker.chain)), bytes.Contains(legacy, []byte(marker.chain))
		switch {
		case inNFT && !inLegacy:
			return pick(VariantNFT, marker.what)
		case inLegacy && !inNFT:
			return pick(VariantLegacy, marker.what)
		}
	}
	nftRules, legacyRules := countRules(nft), countRules(legacy)
	switch {
	case nftRules > legacyRules:
		return pick(VariantNFT, fmt.Sprintf("it has more rules (%d against %d)", nftRules, legacyRules))
	case legacyRules > nftRules:
		return pick(VariantLegacy, fmt.Sprintf("it has more rules (%d against %d)", legacyRules, nftRules))
	}
	log.Info("the node's rules do not tell which iptables variant it uses; using the system's iptables")
	return "", nil
}

// countRules counts the rules in iptables-save output.
func countRules(saved []byte) int {
	return bytes.Count(saved, []byte("\n-A "))
}

// runVariantSave is the saveFunc that runs iptables-<variant>-save from PATH. It
// reads what the kernel holds and creates nothing.
func runVariantSave(ctx context.Context, variant string) ([]byte, error) {
	return runSave(ctx, "iptables-"+variant+"-save")
}

// runSave runs the save tool name, every table, and returns what it prints.
func runSave(ctx context.Context, name string) ([]byte, error) {
	out, err := utilexec.New().CommandContext(ctx, name).Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// NodeOptions configures the Backend NewForNode builds for the node it runs on.
type NodeOptions struct {
	// Variant is one of Variants; empty is VariantAuto.
	Variant string
}

// NewForNode returns a Backend over the node's own iptables tools: the variant opts
// ask for (VariantAuto looks at the node's rules, see chooseVariant), programming
// IPv4, and IPv6 when ip6tables can read its nat table. It fails when iptables does
// not work at all.
func NewForNode(ctx context.Context, opts NodeOptions) (*Backend, error) {
	variant, err := chooseVariant(ctx, opts.Variant, runVariantSave)
	if err != nil {
		return nil, err
	}
	exec := &Exec{Variant: variant}
	families, err := nodeFamilies(ctx, exec)
	if err != nil {
		return nil, err
	}
	return New(Options{Executor: exec, Families: families})
}

// CleanupNode removes everything svcplane's agents installed with iptables on the
// node. With variant left to VariantAuto (or empty) it cleans each variant that
// holds svcplane's chains, since an agent may have written to either before the
// node's rules moved. A variant without them is not touched, not even read table
// by table, which with the legacy tools would load kernel modules the node does
// not use. A node where no iptables tool works has nothing of ours to clean: that
// is logged, not an error, so that cleaning every mode works on an
// nftables-only node.
func CleanupNode(ctx context.Context, variant string) error {
	if variant != "" && variant != VariantAuto {
		b, err := NewForNode(ctx, NodeOptions{Variant: variant})
		if err != nil {
			return err
		}
		return b.Cleanup(ctx)
	}
	log := logr.FromContextOrDiscard(ctx)
	var errs []error
	worked := false
	for _, v := range []string{VariantNFT, VariantLegacy} {
		ours, err := holdsOurChains(ctx, v)
		if err != nil {
			log.Info("nothing to clean with iptables-"+v+": its tools do not work", "error", err.Error())
			continue
		}
		worked = true
		if !ours {
			continue
		}
		b, err := NewForNode(ctx, NodeOptions{Variant: v})
		if err == nil {
			err = b.Cleanup(ctx)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("iptables-%s: %w", v, err))
		}
	}
	if !worked {
		// Neither named variant runs: the system's tools are all there is.
		if _, err := runSave(ctx, "iptables-save"); err != nil {
			log.Info("nothing to clean with iptables: its tools do not work", "error", err.Error())
			return nil
		}
		b, err := NewForNode(ctx, NodeOptions{Variant: VariantSystem})
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
	if bytes.Contains(saved, []byte(":"+ChainPrefix)) {
		return true, nil
	}
	saved6, err := runSave(ctx, "ip6tables-"+variant+"-save")
	return err == nil && bytes.Contains(saved6, []byte(":"+ChainPrefix)), nil
}

// nodeFamilies returns the families whose iptables tools work. IPv4 must: a node
// without it has nothing for the agent to do. IPv6 is left out, with a log line, on
// nodes without ip6tables or with IPv6 disabled.
func nodeFamilies(ctx context.Context, exec Executor) ([]model.Family, error) {
	if _, err := exec.Save(ctx, model.IPv4, TableNAT); err != nil {
		return nil, fmt.Errorf("iptables does not work on this node: %w", err)
	}
	families := []model.Family{model.IPv4}
	if _, err := exec.Save(ctx, model.IPv6, TableNAT); err != nil {
		logr.FromContextOrDiscard(ctx).Info("IPv6 is not programmed: ip6tables does not work on this node", "error", err.Error())
	} else {
		families = append(families, model.IPv6)
	}
	return families, nil
}
