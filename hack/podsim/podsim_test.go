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

package main

// IP conventions: pods in 203.0.113.0/24 (TEST-NET-3), the Node at 203.0.113.1.

import (
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAddressPool(t *testing.T) {
	node := netip.MustParseAddr("203.0.113.1")
	p, err := newAddressPool(netip.MustParsePrefix("203.0.113.0/24"), node)
	if err != nil {
		t.Fatal(err)
	}
	get := func(pod string) netip.Addr {
		t.Helper()
		addr, err := p.Get(pod)
		if err != nil {
			t.Fatalf("Get(%s): %v", pod, err)
		}
		return addr
	}
	if a := get("default/a"); a != netip.MustParseAddr("203.0.113.10") {
		t.Errorf("first address = %s, want 203.0.113.10", a)
	}
	if a := get("default/a"); a != netip.MustParseAddr("203.0.113.10") {
		t.Errorf("a pod keeps its address, got %s", a)
	}
	// An address the API server reports for another pod is never handed out again.
	if !p.Adopt("default/b", netip.MustParseAddr("203.0.113.11")) {
		t.Fatal("Adopt of a free address refused")
	}
	if p.Adopt("default/c", netip.MustParseAddr("203.0.113.11")) {
		t.Error("Adopt of b's address for c accepted")
	}
	if p.Adopt("default/c", netip.MustParseAddr("198.51.100.1")) {
		t.Error("Adopt of an address outside the range accepted")
	}
	if p.Adopt("default/c", node) {
		t.Error("Adopt of the Node's address accepted")
	}
	if a := get("default/c"); a != netip.MustParseAddr("203.0.113.12") {
		t.Errorf("c = %s, want 203.0.113.12 (10 and 11 are held)", a)
	}
	p.Release("default/a")
	if a := get("default/d"); a != netip.MustParseAddr("203.0.113.10") {
		t.Errorf("d = %s, want a's released 203.0.113.10", a)
	}
}

func TestAddressPoolFull(t *testing.T) {
	// A /28 has 16 addresses; pods start at the 10th: 6 pods fit.
	p, err := newAddressPool(netip.MustParsePrefix("203.0.113.0/28"), netip.MustParseAddr("203.0.113.1"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := p.Get(string(rune('a' + i))); err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
	}
	if a, err := p.Get("g"); err == nil {
		t.Fatalf("7th pod got %s from a full /28", a)
	}
	if _, err := newAddressPool(netip.MustParsePrefix("203.0.113.0/29"), netip.Addr{}); err == nil {
		t.Error("a /29 (8 addresses) has no room from the 10th address on, but was accepted")
	}
}

func TestRunningStatus(t *testing.T) {
	start := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	later := metav1.NewTime(start.Add(time.Minute))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "u1"},
		Spec:       corev1.PodSpec{NodeName: "podsim-node", Containers: []corev1.Container{{Name: "web", Image: "agnhost"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodPending},
	}
	addr, host := netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.1")

	status := runningStatus(pod, addr, host, true, start)
	if status.Phase != corev1.PodRunning || status.PodIP != "203.0.113.10" || status.HostIP != "203.0.113.1" {
		t.Fatalf("phase %s, podIP %s, hostIP %s; want Running at 203.0.113.10 on 203.0.113.1", status.Phase, status.PodIP, status.HostIP)
	}
	if got := condition(status, corev1.PodReady); got != corev1.ConditionTrue {
		t.Errorf("Ready = %s, want True", got)
	}
	if len(status.ContainerStatuses) != 1 || !status.ContainerStatuses[0].Ready || status.ContainerStatuses[0].State.Running == nil {
		t.Errorf("container statuses = %+v, want one running and ready", status.ContainerStatuses)
	}

	// Reported once, the same status comes back a minute later: no write.
	pod.Status = *status
	if again := runningStatus(pod, addr, host, true, later); !equality.Semantic.DeepEqual(again, status) {
		t.Errorf("second pass changed the status:\n%+v\nwant\n%+v", again, status)
	}

	// Unready: Ready and ContainersReady flip with a new transition time; the start stays.
	unready := runningStatus(pod, addr, host, false, later)
	for _, c := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
		if got := condition(unready, c); got != corev1.ConditionFalse {
			t.Errorf("%s = %s, want False", c, got)
		}
	}
	if unready.ContainerStatuses[0].Ready || !unready.StartTime.Equal(&start) {
		t.Errorf("unready container ready=%v, start %v; want false and %v", unready.ContainerStatuses[0].Ready, unready.StartTime, start)
	}
	for _, c := range unready.Conditions {
		want := start
		if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
			want = later
		}
		if !c.LastTransitionTime.Equal(&want) {
			t.Errorf("%s transition time %v, want %v", c.Type, c.LastTransitionTime, want)
		}
	}
}

func TestHostNetworkPodGetsTheNodeAddress(t *testing.T) {
	node := netip.MustParseAddr("203.0.113.1")
	pool, err := newAddressPool(netip.MustParsePrefix("203.0.113.0/24"), node)
	if err != nil {
		t.Fatal(err)
	}
	k := &Kubelet{NodeName: "podsim-node", NodeIP: node, Addresses: pool}
	pod := &corev1.Pod{Spec: corev1.PodSpec{HostNetwork: true}}
	if addr, err := k.address("kube-system/agent", pod); err != nil || addr != node {
		t.Errorf("host network pod: %s, %v; want the Node's %s", addr, err, node)
	}
	pod.Spec.HostNetwork = false
	if addr, err := k.address("default/web", pod); err != nil || addr != netip.MustParseAddr("203.0.113.10") {
		t.Errorf("pod: %s, %v; want 203.0.113.10 (the Node's address took none of the pool)", addr, err)
	}
}

func condition(status *corev1.PodStatus, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}
