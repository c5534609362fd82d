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

package manager

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// +kubebuilder:rbac:groups="",resources=services,verbs=get
// +kubebuilder:rbac:groups=networking.k8s.io,resources=servicecidrs,verbs=list

// coreRangeCheckTimeout bounds the start-up check, so that a slow API server delays
// nothing but the warning.
const coreRangeCheckTimeout = 30 * time.Second

// coreRangeCheck warns once, at start, when --service-cluster-ip-range overlaps the
// range of the cluster's core Services, as far as the manager can see it: the
// ServiceCIDR objects of networking.k8s.io/v1 where they are served, else the
// ClusterIPs of the default/kubernetes Service (the first address of the core range).
// svcplane's addresses would then shadow, or be shadowed by, core Services on the
// nodes. What it cannot read (no such API, no permission) it skips without a word at
// the default log level: the check is advice, never a reason not to start.
type coreRangeCheck struct {
	reader client.Reader
	ours   []netip.Prefix
}

// NeedLeaderElection is false: every replica checks its own flags.
func (c *coreRangeCheck) NeedLeaderElection() bool { return false }

// Start runs the check once and returns.
func (c *coreRangeCheck) Start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, coreRangeCheckTimeout)
	defer cancel()
	log := logf.FromContext(ctx).WithName("service-range-check")
	found, err := c.overlaps(ctx)
	if err != nil {
		log.V(1).Info("cannot see the core Services' range; not checking it for overlap", "error", err.Error())
		return nil
	}
	if found != "" {
		log.Info("WARNING: --service-cluster-ip-range overlaps the cluster's core Service range; pick a range that does not, or svcplane and core Services may get the same addresses",
			"serviceClusterIPRange", prefixesString(c.ours), "overlap", found)
	}
	return nil
}

// overlaps describes the first overlap it finds, or returns "" when there is none.
func (c *coreRangeCheck) overlaps(ctx context.Context) (string, error) {
	var cidrs networkingv1.ServiceCIDRList
	cidrErr := c.reader.List(ctx, &cidrs)
	if cidrErr == nil && len(cidrs.Items) > 0 {
		for _, sc := range cidrs.Items {
			if found := overlapping(c.ours, sc.Spec.CIDRs, true); found != "" {
				return fmt.Sprintf("ServiceCIDR %s: %s", sc.Name, found), nil
			}
		}
		return "", nil
	}
	// Without ServiceCIDRs (an older API server, or no permission), the kubernetes
	// Service's address is the one thing every cluster shows of its range.
	svc := &corev1.Service{}
	if err := c.reader.Get(ctx, types.NamespacedName{Namespace: "default", Name: "kubernetes"}, svc); err != nil {
		if cidrErr != nil {
			return "", fmt.Errorf("listing ServiceCIDRs: %w; getting Service default/kubernetes: %w", cidrErr, err)
		}
		return "", err
	}
	if found := overlapping(c.ours, svc.Spec.ClusterIPs, false); found != "" {
		return "Service default/kubernetes: " + found, nil
	}
	return "", nil
}

// overlapping returns the first of theirs (CIDRs when prefixes, else addresses) that
// shares an address with one of ours, as "theirs overlaps ours"; values that do not
// parse are skipped.
func overlapping(ours []netip.Prefix, theirs []string, prefixes bool) string {
	for _, s := range theirs {
		var p netip.Prefix
		if prefixes {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				continue
			}
			p = p.Masked()
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil {
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		for _, o := range ours {
			if o.Overlaps(p) {
				return fmt.Sprintf("%s overlaps %s", s, o)
			}
		}
	}
	return ""
}

func prefixesString(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
