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

package loadbalancer

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ToBeDeletedTaint is the taint the cluster autoscaler puts on a node it is about to
// remove; such a node no longer takes load balancer traffic.
const ToBeDeletedTaint = "ToBeDeletedByClusterAutoscaler"

// Eligible reports whether node may receive load balancer traffic, by the rules of
// kube's service controller with its stable node set (StableLoadBalancerNodeSet, GA
// in 1.30): the node is not being deleted, is not labelled
// node.kubernetes.io/exclude-from-external-load-balancers (whatever the value), and
// is not tainted ToBeDeletedByClusterAutoscaler. Readiness is deliberately not a
// rule: a node that flaps must not make every load balancer reconfigure. kube also
// requires spec.providerID, which a cloud's node controller sets; bare-metal nodes
// have none, so that rule is left out.
func Eligible(node *corev1.Node) bool {
	if !node.DeletionTimestamp.IsZero() {
		return false
	}
	if _, excluded := node.Labels[corev1.LabelNodeExcludeBalancers]; excluded {
		return false
	}
	for _, t := range node.Spec.Taints {
		if t.Key == ToBeDeletedTaint {
			return false
		}
	}
	return true
}

// EligibleNodes returns deep copies of the eligible nodes, sorted by name, so that
// the same set always reads the same and providers may keep what they get.
func EligibleNodes(nodes []corev1.Node) []*corev1.Node {
	var out []*corev1.Node
	for i := range nodes {
		if Eligible(&nodes[i]) {
			out = append(out, nodes[i].DeepCopy())
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Node) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// NodeSetKey identifies a set of nodes by their names, so that a reconciler can tell
// whether the set changed since the last call to a provider. Like kube, it looks
// only at names: what else a node carries does not change the set.
func NodeSetKey(nodes []*corev1.Node) string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	slices.Sort(names)
	// Node names are DNS subdomains, which cannot contain a comma.
	return strings.Join(names, ",")
}
