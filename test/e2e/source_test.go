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

// Addresses as in e2e_test.go. A pod's server answers world.ClientIPPath with the
// source address it saw. Masquerading rewrites the source to the address of the
// node's interface the packet leaves by: towards a pod, that is the pod gateway
// 10.244.1.1 (world.PodGateway), the node's address on every pod link.

import (
	"context"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcplane/svcplane/test/e2e/world"
)

// sourceRequests is how many requests each case sends: enough to reach every pod,
// so that no endpoint's rules go unchecked (see expectAllPodsAnswer).
const sourceRequests = 30

// TestSourceAddressThroughNodePort checks what a pod sees of an outside client:
// with externalTrafficPolicy Local the client's own address, since the traffic
// stays on this node; with Cluster the node's, since the endpoint could be on
// another node and its reply must come back through this one to be un-DNATed.
func TestSourceAddressThroughNodePort(t *testing.T) {
	requireWorld(t)
	local := webService("source-local")
	local.Spec.Type = corev1.ServiceTypeNodePort
	local.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	local = create(t, local)
	cluster := webService("source-cluster")
	cluster.Spec.Type = corev1.ServiceTypeNodePort
	cluster.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	cluster = create(t, cluster)

	fromClient := fromNetns(w.Client)
	for _, c := range []struct {
		policy string
		url    string
		want   netip.Addr
	}{
		{"Local", clientIPURL(nodePortURL(local)), world.ClientIP},
		{"Cluster", clientIPURL(nodePortURL(cluster)), world.PodGateway},
	} {
		waitServing(t, fromClient, c.url)
		expectSource(t, fromClient, "the client", c.url, c.want)
	}
}

// TestSourceAddressOfPodToService checks the two paths from a pod to a cluster IP:
// another pod's request keeps its address, and a pod reaching itself through its
// own Service (hairpin) is masqueraded, or it would answer itself from its own
// address instead of the cluster IP's and drop the reply.
func TestSourceAddressOfPodToService(t *testing.T) {
	requireWorld(t)
	// The Service selects pod-a alone, so that every request lands on it.
	const label = "e2e.svcplane.io/source"
	labelPod(t, "pod-a", label)
	svc := webService("source-pod-a")
	svc.Spec.Selector = map[string]string{label: "true"}
	svc = create(t, svc)
	url := clusterURL(svc)

	podA, podB := podNetns(t, "pod-a"), podNetns(t, "pod-b")
	podBIP := mustPod(t, "pod-b").IP
	for _, c := range []struct {
		from, netns string
		want        netip.Addr
	}{
		{"pod-a (hairpin)", podA, world.PodGateway},
		{"pod-b", podB, podBIP},
	} {
		get := fromNetns(c.netns)
		waitServing(t, get, url)
		answers, err := get(t.Context(), url, 5)
		if err != nil {
			t.Fatal(err)
		}
		if got := answerers(answers); len(got) != 1 || got[0] != "pod-a" {
			t.Errorf("requests from %s to %s were answered by %v, want pod-a alone", c.from, url, got)
		}
		expectSource(t, get, c.from, clientIPURL(url), c.want)
	}
}

// expectSource sends sourceRequests requests to url, which must be a
// world.ClientIPPath, through get, and checks that every pod that answered saw
// them come from want.
func expectSource(t *testing.T, get func(context.Context, string, int) ([]string, error), from, url string, want netip.Addr) {
	t.Helper()
	answers, err := get(t.Context(), url, sourceRequests)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range answerers(answers) {
		if a != want.String() {
			t.Errorf("%d requests from %s to %s were seen coming from %v, want %s alone", len(answers), from, url, answerers(answers), want)
			return
		}
	}
}
