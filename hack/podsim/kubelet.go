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

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// AnnotationReady set to "false" keeps a pod Running but not Ready, to watch an
// endpoint go unready: kubectl annotate pod web-1 podsim.svcplane.io/ready=false.
const AnnotationReady = "podsim.svcplane.io/ready"

// Kubelet plays the kubelet (and the scheduler) for one Node: it binds pods without a
// node to it and reports the pods on it Running, with an address, and Ready.
type Kubelet struct {
	client.Client
	NodeName  string
	NodeIP    netip.Addr
	Addresses *addressPool

	// seeded is set once the address pool knows every address already handed out,
	// so that a restarted podsim never gives a second pod the same address.
	seeded bool
}

// SetupWithManager registers the Node and the pod reconciler with mgr.
func (k *Kubelet) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.Add(manager.RunnableFunc(k.registerNode)); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("podsim").For(&corev1.Pod{}).Complete(k)
}

// registerNode creates the Node, or takes over one left by an earlier run, and reports
// it Ready; it then waits for ctx, as a manager runnable must.
func (k *Kubelet) registerNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   k.NodeName,
		Labels: map[string]string{corev1.LabelHostname: k.NodeName, corev1.LabelOSStable: "linux"},
	}}
	if err := k.Create(ctx, node); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("registering Node %s: %w", k.NodeName, err)
	}
	if err := k.Get(ctx, client.ObjectKeyFromObject(node), node); err != nil {
		return err
	}
	now := metav1.Now()
	node.Status = nodeStatus(k.NodeName, k.NodeIP, now)
	if err := k.Status().Update(ctx, node); err != nil {
		return fmt.Errorf("reporting Node %s Ready: %w", k.NodeName, err)
	}
	logf.FromContext(ctx).Info("registered Node", "node", k.NodeName, "address", k.NodeIP)
	<-ctx.Done()
	return nil
}

// nodeStatus is the status of a Ready Node at addr.
func nodeStatus(name string, addr netip.Addr, now metav1.Time) corev1.NodeStatus {
	capacity := corev1.ResourceList{
		corev1.ResourcePods:   resource.MustParse("250"),
		corev1.ResourceCPU:    resource.MustParse("8"),
		corev1.ResourceMemory: resource.MustParse("32Gi"),
	}
	return corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message:           "podsim is a kubelet stand-in: it reports pods Ready and runs no containers",
			LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: addr.String()},
			{Type: corev1.NodeHostName, Address: name},
		},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "podsim", OperatingSystem: "linux", Architecture: "amd64"},
	}
}

// Reconcile binds, runs or removes one pod.
func (k *Kubelet) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := req.String()
	pod := &corev1.Pod{}
	if err := k.Get(ctx, req.NamespacedName, pod); err != nil {
		if apierrors.IsNotFound(err) {
			k.Addresses.Release(key)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	switch {
	case pod.Spec.NodeName == "":
		// The scheduler's job: bind it here. The update brings it back.
		binding := &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: k.NodeName},
		}
		if err := k.SubResource("binding").Create(ctx, pod, binding); err != nil && !apierrors.IsConflict(err) {
			return ctrl.Result{}, fmt.Errorf("binding pod %s to %s: %w", key, k.NodeName, err)
		}
		return ctrl.Result{}, nil
	case pod.Spec.NodeName != k.NodeName:
		return ctrl.Result{}, nil
	case pod.DeletionTimestamp != nil:
		// No containers to stop: confirm the deletion at once, as kubelet does
		// when they have stopped.
		k.Addresses.Release(key)
		err := k.Delete(ctx, pod, client.GracePeriodSeconds(0), client.Preconditions{UID: &pod.UID})
		return ctrl.Result{}, client.IgnoreNotFound(err)
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		k.Addresses.Release(key)
		return ctrl.Result{}, nil
	}

	if err := k.seed(ctx); err != nil {
		return ctrl.Result{}, err
	}
	addr, err := k.address(key, pod)
	if err != nil {
		// A full range waits for a pod to go; the pod stays Pending meanwhile.
		logf.FromContext(ctx).Error(err, "pod left Pending", "pod", key)
		return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
	}
	status := runningStatus(pod, addr, k.NodeIP, pod.Annotations[AnnotationReady] != "false", metav1.Now())
	if equality.Semantic.DeepEqual(status, &pod.Status) {
		return ctrl.Result{}, nil
	}
	updated := pod.DeepCopy()
	updated.Status = *status
	if err := k.Status().Patch(ctx, updated, client.MergeFromWithOptions(pod, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			// The cache was behind; the pod's own update event brings it back.
			logf.FromContext(ctx).V(1).Info("pod changed meanwhile; retrying", "pod", key)
			return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// seed adopts, once, the addresses of every pod already on the Node.
func (k *Kubelet) seed(ctx context.Context) error {
	if k.seeded {
		return nil
	}
	var pods corev1.PodList
	if err := k.List(ctx, &pods); err != nil {
		return err
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Spec.NodeName != k.NodeName || pod.Status.PodIP == "" {
			continue
		}
		if addr, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
			k.Addresses.Adopt(client.ObjectKeyFromObject(pod).String(), addr)
		}
	}
	k.seeded = true
	return nil
}

// address returns the pod's address: the Node's for a pod on the host's network, as
// kubelet reports it; else the one it reports if the pool agrees it is the pod's, a
// new one otherwise.
func (k *Kubelet) address(key string, pod *corev1.Pod) (netip.Addr, error) {
	if pod.Spec.HostNetwork {
		return k.NodeIP, nil
	}
	if addr, err := netip.ParseAddr(pod.Status.PodIP); err == nil && k.Addresses.Adopt(key, addr) {
		return addr, nil
	}
	return k.Addresses.Get(key)
}

// runningStatus is the status kubelet would report for pod once its containers run:
// Running at addr on a node at hostIP, Ready or not. Times already in the status are
// kept, so that a pod already reported this way gets an identical status back.
func runningStatus(pod *corev1.Pod, addr, hostIP netip.Addr, ready bool, now metav1.Time) *corev1.PodStatus {
	status := pod.Status.DeepCopy()
	status.Phase = corev1.PodRunning
	status.HostIP = hostIP.String()
	status.HostIPs = []corev1.HostIP{{IP: hostIP.String()}}
	status.PodIP = addr.String()
	status.PodIPs = []corev1.PodIP{{IP: addr.String()}}
	if status.StartTime == nil {
		status.StartTime = &now
	}
	readyStatus := corev1.ConditionFalse
	if ready {
		readyStatus = corev1.ConditionTrue
	}
	for _, c := range []struct {
		t corev1.PodConditionType
		s corev1.ConditionStatus
	}{
		{corev1.PodReadyToStartContainers, corev1.ConditionTrue},
		{corev1.PodInitialized, corev1.ConditionTrue},
		{corev1.PodScheduled, corev1.ConditionTrue},
		{corev1.ContainersReady, readyStatus},
		{corev1.PodReady, readyStatus},
	} {
		setCondition(status, c.t, c.s, now)
	}
	containers := make([]corev1.ContainerStatus, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{
			Name:        c.Name,
			Image:       c.Image,
			ImageID:     "podsim://" + c.Image,
			ContainerID: "podsim://" + string(pod.UID) + "/" + c.Name,
			Ready:       ready,
			Started:     ptr.To(true),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: *status.StartTime}},
		}
		for _, old := range pod.Status.ContainerStatuses {
			if old.Name == c.Name && old.State.Running != nil {
				cs.State.Running.StartedAt = old.State.Running.StartedAt
			}
		}
		containers = append(containers, cs)
	}
	status.ContainerStatuses = containers
	return status
}

// setCondition sets a pod condition, keeping its transition time when its status
// does not change.
func setCondition(status *corev1.PodStatus, t corev1.PodConditionType, s corev1.ConditionStatus, now metav1.Time) {
	for i := range status.Conditions {
		if status.Conditions[i].Type == t {
			if status.Conditions[i].Status != s {
				status.Conditions[i].Status = s
				status.Conditions[i].LastTransitionTime = now
			}
			return
		}
	}
	status.Conditions = append(status.Conditions, corev1.PodCondition{Type: t, Status: s, LastTransitionTime: now})
}
