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

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/dataplane/nftables"
	"github.com/svcplane/svcplane/internal/agent"
)

const (
	// envMode carries the agent's mode from the outer run to the inner one.
	envMode = "SVCPLANE_E2E_MODE"
	// envModes lists the modes the outer run runs every test in, comma
	// separated; every mode the agent implements but ipvs (which needs a kernel
	// with IPVS, see the VM harness) by default.
	envModes = "SVCPLANE_E2E_MODES"
)

// testedModes returns the modes to run the tests in.
func testedModes() []string {
	if s := os.Getenv(envModes); s != "" {
		return strings.Split(s, ",")
	}
	return []string{agent.ModeIPTables, agent.ModeNFTables}
}

// agentMode returns the mode of this inner run.
func agentMode() string {
	if m := os.Getenv(envMode); m != "" {
		return m
	}
	return agent.ModeIPTables
}

// iptablesTool returns the save tool of family.
func iptablesTool(f model.Family) string {
	if f == model.IPv6 {
		return "ip6tables-save"
	}
	return "iptables-save"
}

// nftFamily returns the nftables family of f.
func nftFamily(f model.Family) knftables.Family {
	if f == model.IPv6 {
		return knftables.IPv6Family
	}
	return knftables.IPv4Family
}

// nftTable returns an interface to the agent's nftables table of family.
func nftTable(f model.Family) (knftables.Interface, error) {
	return knftables.New(nftFamily(f), nftables.TableName)
}

// nftChains returns the chains of the agent's table of family; none when the
// table does not exist.
func nftChains(ctx context.Context, f model.Family) ([]string, error) {
	nft, err := nftTable(f)
	if err != nil {
		return nil, err
	}
	chains, err := nft.List(ctx, "chain")
	if knftables.IsNotFound(err) {
		return nil, nil
	}
	return chains, err
}

// serviceChains returns the kernel objects of mode that belong to svc in family:
// in iptables mode the rules naming it (their comments do), in nftables mode the
// chains named after it.
func serviceChains(ctx context.Context, mode string, f model.Family, svc *v1alpha1.Service) ([]string, error) {
	switch mode {
	case agent.ModeNFTables:
		chains, err := nftChains(ctx, f)
		if err != nil {
			return nil, err
		}
		return slices.DeleteFunc(chains, func(c string) bool { return !strings.Contains(c, "-"+svc.Namespace+"/"+svc.Name+"/") }), nil
	default:
		saved, err := saveRules(iptablesTool(f))
		if err != nil {
			return nil, err
		}
		var out []string
		for _, line := range strings.Split(saved, "\n") {
			if strings.Contains(line, svc.Namespace+"/"+svc.Name+":") {
				out = append(out, line)
			}
		}
		return out, nil
	}
}

// refusesWithoutEndpoints reports whether the agent's rules of family reject
// traffic to svc's cluster IP clusterIP, port 80, for having no endpoints.
func refusesWithoutEndpoints(ctx context.Context, f model.Family, svc *v1alpha1.Service, clusterIP string) (bool, error) {
	switch agentMode() {
	case agent.ModeNFTables:
		nft, err := nftTable(f)
		if err != nil {
			return false, err
		}
		elems, err := nft.ListElements(ctx, "map", "no-endpoint-services")
		if err != nil {
			return false, err
		}
		for _, e := range elems {
			if slices.Equal(e.Key, []string{clusterIP, "tcp", "80"}) && slices.Equal(e.Value, []string{"goto reject-chain"}) {
				return true, nil
			}
		}
		return false, nil
	default:
		saved, err := saveRules(iptablesTool(f))
		if err != nil {
			return false, err
		}
		return strings.Contains(saved, fmt.Sprintf("%s/%s:http has no endpoints", svc.Namespace, svc.Name)), nil
	}
}

// leftovers returns what is left of svcplane's objects in the kernel: chains of
// iptables (nf_tables and legacy, both families) and the nftables tables.
func leftovers(ctx context.Context) (iptables, nft []string, err error) {
	var errs []error
	for _, tool := range []string{"iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"} {
		saved, err := saveRules(tool)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if strings.Contains(saved, "SVCP") || strings.Contains(saved, "svcplane") {
			iptables = append(iptables, tool+":\n"+saved)
		}
	}
	for _, f := range model.Families {
		chains, err := nftChains(ctx, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(chains) > 0 {
			nft = append(nft, fmt.Sprintf("table %s %s: %d chains", nftFamily(f), nftables.TableName, len(chains)))
		}
	}
	return iptables, nft, errors.Join(errs...)
}

// servedInMode waits until svc is served from the node in both families by the
// agent's mode, and its objects are in that mode's kernel interface only.
func servedInMode(ctx context.Context, svc *v1alpha1.Service, mode string) error {
	return poll(programmed, func() error {
		if err := cl.Client.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return err
		}
		if len(svc.Status.ClusterIPs) != 2 {
			return fmt.Errorf("cluster IPs %v, want one of each family", svc.Status.ClusterIPs)
		}
		for _, ip := range svc.Status.ClusterIPs {
			if _, err := fromNode(ctx, hostURL(ip, svc.Spec.Ports[0].Port), 1); err != nil {
				return err
			}
		}
		for _, f := range model.Families {
			objs, err := serviceChains(ctx, mode, f, svc)
			if err != nil {
				return err
			}
			if len(objs) == 0 {
				return fmt.Errorf("%s mode shows nothing of %s/%s in %s", mode, svc.Namespace, svc.Name, f)
			}
		}
		return nil
	})
}

// checkModeSwitch switches the node from the mode of this run to the other one
// (stop the agent, start it in the new mode) and back (stop it, `agent --cleanup`,
// start it in the old mode), and checks that each switch leaves nothing of the old
// mode behind and that Services are served in the new one. It ends with the agent
// running in the run's mode again.
func checkModeSwitch(ctx context.Context) error {
	from := agentMode()
	to := agent.ModeNFTables
	if from == agent.ModeNFTables {
		to = agent.ModeIPTables
	}
	svc := dualStackService("mode-switch")
	if err := cl.Client.Create(ctx, svc); err != nil {
		return err
	}
	defer cl.Client.Delete(ctx, svc)
	if err := servedInMode(ctx, svc, from); err != nil {
		return fmt.Errorf("before the switch, in %s mode: %w", from, err)
	}
	// The first switch only restarts the agent in the new mode, which removes
	// what the other modes left when it starts; the second runs `agent
	// --cleanup` in between, as an operator would.
	for i, next := range []string{to, from} {
		prev := cl.Mode()
		if err := cl.StopAgent(); err != nil {
			return fmt.Errorf("stopping the agent: %w", err)
		}
		if i == 1 {
			if err := agent.Cleanup(ctx, agent.BackendOptions{Mode: next}); err != nil {
				return fmt.Errorf("cleanup before starting %s mode: %w", next, err)
			}
			if ipt, nft, err := leftovers(ctx); err != nil || len(ipt)+len(nft) > 0 {
				return fmt.Errorf("after the cleanup of %s mode, left: %q %q (%v)", prev, ipt, nft, err)
			}
		}
		if err := cl.StartAgent(ctx, next); err != nil {
			return fmt.Errorf("starting %s mode: %w", next, err)
		}
		if err := servedInMode(ctx, svc, next); err != nil {
			return fmt.Errorf("after switching from %s to %s mode: %w", prev, next, err)
		}
		ipt, nft, err := leftovers(ctx)
		if err != nil {
			return err
		}
		if next == agent.ModeNFTables && len(ipt) > 0 {
			return fmt.Errorf("in nftables mode, iptables holds svcplane's rules: %q", ipt)
		}
		if next == agent.ModeIPTables && len(nft) > 0 {
			return fmt.Errorf("in iptables mode, nftables holds svcplane's table: %q", nft)
		}
	}
	return nil
}
