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
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/svcplane/svcplane/dataplane/agent"
)

// checkCleanup checks what `agent --cleanup` does on a node the agent has
// programmed: with a dual-stack Service's rules in place in both iptables and
// ip6tables, it stops the agent and runs the cleanup, which must leave no rule of
// svcplane's in iptables or ip6tables, nf_tables or legacy, and then runs it
// again, which must find nothing to do.
//
// It stops the agent, so TestMain calls it once m.Run has run every test, rather
// than it being a test itself: Go runs tests in the order of their files' names
// and of their source, and -count or -shuffle change even that.
func checkCleanup(ctx context.Context) error {
	svc := dualStackService("cleanup")
	if err := cl.Client.Create(ctx, svc); err != nil {
		return err
	}
	err := poll(programmed, func() error {
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
		return nil
	})
	if err != nil {
		return fmt.Errorf("service %s/%s is not served before the cleanup: %w", svc.Namespace, svc.Name, err)
	}
	// Both families' rules must be there, or the checks below prove nothing for
	// the one that is missing.
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		saved, err := saveRules(tool)
		if err != nil {
			return err
		}
		if !strings.Contains(saved, ":SVCP-SVC-") || !strings.Contains(saved, svc.Namespace+"/"+svc.Name+":http") {
			return fmt.Errorf("before the cleanup, %s shows no SVCP-SVC- chain or no rule of %s/%s:\n%s", tool, svc.Namespace, svc.Name, saved)
		}
	}

	if err := cl.StopAgent(); err != nil {
		return fmt.Errorf("stopping the agent: %w", err)
	}
	// What `agent --cleanup` runs, with its default --iptables-variant=auto.
	opts := agent.BackendOptions{Mode: agent.ModeIPTables, IPTablesVariant: agent.VariantAuto}
	if err := agent.Cleanup(ctx, opts); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	var errs []error
	for _, tool := range []string{"iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"} {
		saved, err := saveRules(tool)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if strings.Contains(saved, "SVCP") || strings.Contains(saved, "svcplane") {
			errs = append(errs, fmt.Errorf("%s after cleanup still shows svcplane's rules:\n%s", tool, saved))
		}
	}
	if err := agent.Cleanup(ctx, opts); err != nil {
		errs = append(errs, fmt.Errorf("second cleanup: %w", err))
	}
	return errors.Join(errs...)
}
