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

	"github.com/svcplane/svcplane/internal/agent"
)

// checkCleanup checks what `agent --cleanup` does on a node the agent has
// programmed: with a dual-stack Service's rules in place in both families, in the
// run's mode, it stops the agent and runs the cleanup, which must leave no rule of
// svcplane's in iptables or ip6tables, nf_tables or legacy, and no nftables table
// of svcplane's, whatever the mode; and then runs it again, which must find
// nothing to do.
//
// It stops the agent, so TestMain calls it once m.Run has run every test, rather
// than it being a test itself: Go runs tests in the order of their files' names
// and of their source, and -count or -shuffle change even that.
func checkCleanup(ctx context.Context) error {
	svc := dualStackService("cleanup")
	if err := cl.Client.Create(ctx, svc); err != nil {
		return err
	}
	// Both families' rules must be there, or the checks below prove nothing for
	// the one that is missing.
	if err := servedInMode(ctx, svc, agentMode()); err != nil {
		return fmt.Errorf("service %s/%s is not served before the cleanup: %w", svc.Namespace, svc.Name, err)
	}

	if err := cl.StopAgent(); err != nil {
		return fmt.Errorf("stopping the agent: %w", err)
	}
	// What `agent --cleanup` runs, with its default --iptables-variant=auto.
	opts := agent.BackendOptions{Mode: agentMode(), IPTablesVariant: agent.VariantAuto}
	if err := agent.Cleanup(ctx, opts); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	var errs []error
	ipt, nft, err := leftovers(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, l := range append(ipt, nft...) {
		errs = append(errs, fmt.Errorf("after cleanup, svcplane's rules are still there: %s", l))
	}
	if err := agent.Cleanup(ctx, opts); err != nil {
		errs = append(errs, fmt.Errorf("second cleanup: %w", err))
	}
	return errors.Join(errs...)
}
