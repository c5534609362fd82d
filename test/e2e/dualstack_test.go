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

// Addresses as in e2e_test.go; these tests use the IPv6 half of the world: pods
// fd00:10:244:1::a-c behind the pod gateway fd00:10:244:1::1, the node's
// 2001:db8:1::1 towards the client's 2001:db8:1::2, and cluster IPs from
// fd00:10:96::/112. The agent writes IPv6 rules with ip6tables.

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/test/e2e/world"
)

// serviceCIDRv6 is the IPv6 half of cluster.ServiceCIDRs.
var serviceCIDRv6 = netip.MustParsePrefix("fd00:10:96::/112")

// dualStackService returns webService(name) requiring a cluster IP of each
// family.
func dualStackService(name string) *v1alpha1.Service {
	svc := webService(name)
	svc.Spec.IPFamilyPolicy = new(corev1.IPFamilyPolicyRequireDualStack)
	return svc
}

// ipv6Service returns webService(name) with one IPv6 cluster IP and none of the
// cluster's primary family, IPv4.
func ipv6Service(name string) *v1alpha1.Service {
	svc := webService(name)
	svc.Spec.IPFamilyPolicy = new(corev1.IPFamilyPolicySingleStack)
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	return svc
}

// families are the world's IP families, the cluster's primary one first: tests
// that run once per family make a subtest of each, named after it.
var families = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}

// nodeIPOf returns the node's address of family towards the client: where the
// client reaches node ports and health check node ports.
func nodeIPOf(family corev1.IPFamily) netip.Addr {
	if family == corev1.IPv6Protocol {
		return world.NodeIPv6
	}
	return world.NodeIP
}

// podIPOf returns the address of family of the pod named name.
func podIPOf(t *testing.T, name string, family corev1.IPFamily) netip.Addr {
	t.Helper()
	p := mustPod(t, name)
	if family == corev1.IPv6Protocol {
		return p.IPv6
	}
	return p.IP
}

// TestDualStackService reaches a RequireDualStack NodePort Service over IPv6 on
// every path the IPv4 tests cover: its IPv6 cluster IP from the node and from a
// pod (pod-a's requests that land on itself are hairpinned, and masqueraded), its
// node port on the node's IPv6 address from the client, masqueraded to the pod
// gateway's IPv6 address; and over IPv4 still.
func TestDualStackService(t *testing.T) {
	requireWorld(t)
	svc := dualStackService("dual-stack")
	svc.Spec.Type = corev1.ServiceTypeNodePort
	svc = create(t, svc)
	if want := []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}; !slices.Equal(svc.Status.IPFamilies, want) {
		t.Errorf("status.ipFamilies %v, want %v (the cluster's primary family first)", svc.Status.IPFamilies, want)
	}
	expectInServiceCIDRv6(t, svc, svc.Status.ClusterIPs[1])
	v6 := clusterURLOf(t, svc, corev1.IPv6Protocol)
	nodePort := nodePortURLAt(world.NodeIPv6, svc)
	fromClient := fromNetns(w.Client)

	for _, c := range []struct {
		name, url string
		get       getter
	}{
		{"IPv6 cluster IP from the node", v6, fromNode},
		{"IPv6 cluster IP from pod-a", v6, fromNetns(podNetns(t, "pod-a"))},
		{"IPv6 node port from the client", nodePort, fromClient},
		{"IPv4 cluster IP from the node", clusterURLOf(t, svc, corev1.IPv4Protocol), fromNode},
	} {
		t.Run(c.name, func(t *testing.T) {
			waitServing(t, c.get, c.url)
			expectAllPodsAnswer(t, c.get, c.url)
		})
	}
	t.Run("IPv6 node port masquerades", func(t *testing.T) {
		// externalTrafficPolicy Cluster: the reply must come back through the
		// node, so the pod sees the node's address on its link.
		waitServing(t, fromClient, nodePort)
		expectSource(t, fromClient, "the client", clientIPURL(nodePort), world.PodGatewayIPv6)
	})
}

// TestIPv6OnlyService checks a SingleStack IPv6 Service in a cluster whose primary
// family is IPv4: it gets one IPv6 cluster IP, answers on it from the node and
// from a pod, and writes no IPv4 rule.
func TestIPv6OnlyService(t *testing.T) {
	requireWorld(t)
	svc := create(t, ipv6Service("ipv6-only"))
	if len(svc.Status.ClusterIPs) != 1 || svc.Status.ClusterIPs[0] != svc.Status.ClusterIP {
		t.Fatalf("status.clusterIPs %v (clusterIP %s), want the one cluster IP", svc.Status.ClusterIPs, svc.Status.ClusterIP)
	}
	expectInServiceCIDRv6(t, svc, svc.Status.ClusterIP)
	url := clusterURL(svc)
	for _, get := range []getter{fromNode, fromNetns(podNetns(t, "pod-b"))} {
		waitServing(t, get, url)
		expectAllPodsAnswer(t, get, url)
	}
	if objs, err := serviceChains(t.Context(), agentMode(), model.IPv6, svc); err != nil || len(objs) == 0 {
		t.Errorf("no IPv6 rule of %s/%s (%s mode): %v", svc.Namespace, svc.Name, agentMode(), err)
	}
	if objs, err := serviceChains(t.Context(), agentMode(), model.IPv4, svc); err != nil || len(objs) > 0 {
		t.Errorf("IPv4 rules of the IPv6-only %s/%s (%s mode): %q %v", svc.Namespace, svc.Name, agentMode(), objs, err)
	}
}

func TestUnreadyPodStopsReceivingIPv6Traffic(t *testing.T) {
	requireWorld(t)
	svc := create(t, ipv6Service("unready-v6"))
	expectUnreadyPodLeaves(t, clusterURL(svc))
}

func TestIPv6ServiceWithoutEndpointsRefuses(t *testing.T) {
	requireWorld(t)
	svc := ipv6Service("no-endpoints-v6")
	svc.Spec.Type = corev1.ServiceTypeNodePort
	svc.Spec.Selector = map[string]string{"app": "nothing"}
	svc = create(t, svc)
	// IPv6 connections are refused only when their SYN is retransmitted, after
	// TCP's initial RTO of one second: in this world the ICMPv6 error for the
	// first SYN comes back (over veth, in the same softirq) while connect() still
	// holds the socket, and TCP drops it (nstat's TcpExtLockDroppedIcmps). A
	// plain ip6tables REJECT between two bare namespaces does the same; IPv4 is
	// refused at once, and so is IPv6 with --reject-with tcp-reset. The bound is
	// still below world.RequestTimeout, when a missing rule would show.
	expectRefused(t, svc, model.IPv6, clusterURL(svc), nodePortURLAt(world.NodeIPv6, svc), 1500*time.Millisecond)
}

// expectInServiceCIDRv6 checks that ip, a cluster IP of svc, is an IPv6 address
// from the manager's IPv6 range.
func expectInServiceCIDRv6(t *testing.T, svc *v1alpha1.Service, ip string) {
	t.Helper()
	addr, err := netip.ParseAddr(ip)
	if err != nil || !serviceCIDRv6.Contains(addr) {
		t.Errorf("%s/%s has cluster IP %q, want one from %s", svc.Namespace, svc.Name, ip, serviceCIDRv6)
	}
}
