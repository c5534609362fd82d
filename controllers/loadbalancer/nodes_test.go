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
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEligibleNodes(t *testing.T) {
	now := metav1.Now()
	node := func(name string, mutate ...func(*corev1.Node)) corev1.Node {
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		for _, m := range mutate {
			m(&n)
		}
		return n
	}
	tests := []struct {
		name  string
		nodes []corev1.Node
		want  []string
	}{
		{name: "none", nodes: nil, want: nil},
		{name: "sorted by name", nodes: []corev1.Node{node("b"), node("a"), node("c")}, want: []string{"a", "b", "c"}},
		{name: "being deleted", nodes: []corev1.Node{node("a"), node("b", func(n *corev1.Node) {
			n.DeletionTimestamp, n.Finalizers = &now, []string{"x"}
		})}, want: []string{"a"}},
		{name: "excluded, whatever the label's value", nodes: []corev1.Node{
			node("a", func(n *corev1.Node) { n.Labels = map[string]string{corev1.LabelNodeExcludeBalancers: ""} }),
			node("b", func(n *corev1.Node) { n.Labels = map[string]string{corev1.LabelNodeExcludeBalancers: "false"} }),
			node("c", func(n *corev1.Node) {
				n.Labels = map[string]string{"node.kubernetes.io/exclude-from-external-load-balancer": "true"}
			}),
		}, want: []string{"c"}},
		{name: "about to be removed by the cluster autoscaler", nodes: []corev1.Node{
			node("a", func(n *corev1.Node) {
				n.Spec.Taints = []corev1.Taint{{Key: ToBeDeletedTaint, Effect: corev1.TaintEffectNoSchedule}}
			}),
			node("b", func(n *corev1.Node) {
				n.Spec.Taints = []corev1.Taint{{Key: "other", Effect: corev1.TaintEffectNoSchedule}}
			}),
		}, want: []string{"b"}},
		{name: "readiness does not matter", nodes: []corev1.Node{
			node("a", func(n *corev1.Node) {
				n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}
			}),
			node("b", func(n *corev1.Node) { n.Spec.Unschedulable = true }),
		}, want: []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EligibleNodes(tt.nodes)
			var names []string
			for _, n := range got {
				names = append(names, n.Name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("EligibleNodes = %v, want %v", names, tt.want)
			}
			if len(got) > 0 && &tt.nodes[0] == got[0] {
				t.Error("EligibleNodes returned the caller's node, not a copy")
			}
			if key := NodeSetKey(got); key != strings.Join(tt.want, ",") {
				t.Errorf("NodeSetKey = %q", key)
			}
		})
	}
}

func TestNodeSetKeyIgnoresOrderAndContent(t *testing.T) {
	a := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"x": "1"}}}
	b := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b"}}
	a2 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"x": "2"}}}
	if NodeSetKey([]*corev1.Node{a, b}) != NodeSetKey([]*corev1.Node{b, a2}) {
		t.Error("the same names in another order, or with other labels, are the same set")
	}
	if NodeSetKey([]*corev1.Node{a}) == NodeSetKey([]*corev1.Node{a, b}) {
		t.Error("a node more is another set")
	}
}
