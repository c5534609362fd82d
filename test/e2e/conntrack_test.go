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

// Addresses as in e2e_test.go. The UDP Service, dual-stack, selects pod-a and
// pod-b (labelled for it by the test); the client is this process, in the node's
// namespace, sending to the Service's cluster IP of one family, then the other.

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/internal/conntrack"
	"github.com/svcplane/svcplane/test/e2e/world"
)

// udpLabel marks the pods the UDP Service selects.
const udpLabel = "e2e.svcplane.io/udp"

// TestUDPFlowLeavesUnreadyPod is the DNS resolver's case: one socket keeps sending
// to a UDP Service from the same port, so conntrack keeps the first DNAT decision
// for as long as it sends. When the pod it reaches turns unready, the agent must
// delete that entry, or the client keeps talking to the pod the rules no longer
// choose. It runs once per family of a dual-stack Service, on its cluster IP of
// that family.
func TestUDPFlowLeavesUnreadyPod(t *testing.T) {
	requireWorld(t)
	udpPods := []string{"pod-a", "pod-b"}
	for _, name := range udpPods {
		labelPod(t, name, udpLabel)
	}
	svc := dualStackService("udp-echo")
	svc.Spec.Selector = map[string]string{udpLabel: "true"}
	svc.Spec.Ports = []v1alpha1.ServicePort{{
		Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(world.ServerPort),
	}}
	svc = create(t, svc)
	for _, family := range families {
		t.Run(string(family), func(t *testing.T) {
			expectUDPFlowLeavesUnreadyPod(t, svc, family, udpPods)
		})
	}
}

// expectUDPFlowLeavesUnreadyPod checks, from the node, that one socket sending to
// the cluster IP of family of svc, a UDP Service on port 53 selecting udpPods
// (two of them), stays on the pod it first reached, moves to the other within
// unreadyWithin of that pod turning unready, leaving no conntrack entry to it, and
// that the pod gets new flows once ready again.
func expectUDPFlowLeavesUnreadyPod(t *testing.T, svc *v1alpha1.Service, family corev1.IPFamily, udpPods []string) {
	t.Helper()
	ctx := t.Context()
	network := udpNetwork(family)
	clusterIP := clusterIPOf(t, svc, family)
	addr := net.JoinHostPort(clusterIP, "53")

	// Until the rules are in place, datagrams go wherever the routing table sends
	// them, and each makes a conntrack entry: wait with a new socket each time.
	eventually(t, programmed, func() error {
		_, err := askOnce(network, addr)
		return err
	})

	conn, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first, err := ask(conn)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(udpPods, first) {
		t.Fatalf("%s answered from %s, want one of %v", first, addr, udpPods)
	}
	other := udpPods[0]
	if other == first {
		other = udpPods[1]
	}
	// The socket stays on its pod: conntrack keeps the flow's DNAT.
	for range 10 {
		if got, err := ask(conn); err != nil || got != first {
			t.Fatalf("the same socket was answered by %q (%v) after %s", got, err, first)
		}
	}
	firstIP := podIPOf(t, first, family).String()
	if n := udpEntries(t, family, clusterIP, firstIP); n == 0 {
		t.Fatalf("no conntrack entry from %s to %s", addr, first)
	}

	setPodReady(t, first, false)
	turned := time.Now()
	eventually(t, unreadyWithin, func() error {
		got, err := ask(conn)
		if err != nil {
			return err
		}
		if got != other {
			return fmt.Errorf("the socket is still answered by %s", got)
		}
		return nil
	})
	t.Logf("the socket's flow left %s %v after it turned unready", first, time.Since(turned).Round(10*time.Millisecond))
	for range 10 {
		if got, err := ask(conn); err != nil || got != other {
			t.Fatalf("after moving to %s, the socket was answered by %q (%v)", other, got, err)
		}
	}
	if n := udpEntries(t, family, clusterIP, firstIP); n != 0 {
		t.Errorf("%d conntrack entries from %s to %s remain", n, addr, first)
	}

	// Ready again, the pod gets new flows again (and the next tests find every
	// pod ready).
	if err := cl.SetPodReady(ctx, first, true); err != nil {
		t.Fatal(err)
	}
	eventually(t, unreadyWithin, func() error {
		for range 30 {
			if got, err := askOnce(network, addr); err == nil && got == first {
				return nil
			}
		}
		return fmt.Errorf("%s gets no new flows", first)
	})
}

// udpNetwork returns the network net.Dial takes for UDP over family.
func udpNetwork(family corev1.IPFamily) string {
	if family == corev1.IPv6Protocol {
		return "udp6"
	}
	return "udp4"
}

// askTimeout bounds the wait for each answer.
const askTimeout = 500 * time.Millisecond

// ask sends a datagram on conn and returns the answer: the name of the pod that
// got it.
func ask(conn net.Conn) (string, error) {
	if err := conn.SetDeadline(time.Now().Add(askTimeout)); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte("who")); err != nil {
		return "", err
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// askOnce asks addr over network (udp4 or udp6) from a new socket: a new flow, a
// new choice of endpoint.
func askOnce(network, addr string) (string, error) {
	conn, err := net.Dial(network, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return ask(conn)
}

// udpEntries returns how many conntrack entries of family in this (the node's)
// namespace go from anywhere to clusterIP:53 and were DNATed to endpoint: their
// reply comes from it. It reads the table over netlink, as the agent does; the
// test process runs in the node's namespace, whose table that is.
func udpEntries(t *testing.T, family corev1.IPFamily, clusterIP, endpoint string) int {
	t.Helper()
	ct, err := conntrack.NewNetlink()
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	fam := model.IPv4
	if family == corev1.IPv6Protocol {
		fam = model.IPv6
	}
	entries, err := ct.List(t.Context(), fam, model.UDP)
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.AddrPortFrom(netip.MustParseAddr(clusterIP), 53)
	to := netip.MustParseAddr(endpoint)
	n := 0
	for _, e := range entries {
		if e.Dst == dst && e.DNAT.Addr() == to {
			n++
		}
	}
	return n
}
