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
	"fmt"
	"os/exec"
	"strings"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// The iptables variants --iptables-variant accepts.
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

// IPTablesVariants lists every variant --iptables-variant accepts.
var IPTablesVariants = []string{VariantAuto, VariantSystem, VariantNFT, VariantLegacy}

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
		return "", fmt.Errorf("unknown --iptables-variant %q; one of %s", want, strings.Join(IPTablesVariants, ", "))
	}
	log := logf.FromContext(ctx)
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
	out, err := exec.CommandContext(ctx, name).Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}
