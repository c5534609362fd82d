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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Conditions of a LoadBalancerIPPool.
const (
	// PoolConditionValid is True when every entry of spec.addresses is used as
	// written. It is False, with reason InvalidRange or RangeTooLarge, when an entry is
	// ignored or only partly used; the other entries still serve.
	PoolConditionValid = "Valid"
	// PoolConditionOverlapping is True when the pool shares addresses with another
	// pool. Shared addresses are still handed out at most once.
	PoolConditionOverlapping = "Overlapping"
)

// LoadBalancerIPPoolSpec is a set of external addresses that the built-in ippool
// load balancer provider hands out to LoadBalancer Services.
type LoadBalancerIPPoolSpec struct {
	// Addresses are the pool's addresses: CIDRs (192.0.2.0/24, 2001:db8::/120) or
	// inclusive ranges of two addresses of one family (192.0.2.10-192.0.2.20). Every
	// address of an entry is handed out, network and broadcast addresses of a CIDR
	// included. An entry larger than 2^20 addresses only uses its first 2^20, and
	// the Valid condition says so. IPv4 and IPv6 entries may be mixed; a dual-stack
	// Service gets one address of each family.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=91
	// +kubebuilder:validation:XValidation:rule="self.all(a, isCIDR(a) || (size(a.split('-')) == 2 && isIP(a.split('-')[0]) && isIP(a.split('-')[1]) && ip(a.split('-')[0]).family() == ip(a.split('-')[1]).family()))",message="each entry must be a CIDR (e.g. 192.0.2.0/24 or 2001:db8::/120) or a range of two addresses of one family (e.g. 192.0.2.10-192.0.2.20)"
	Addresses []string `json:"addresses"`

	// AutoAssign lets the pool hand out addresses to Services that do not ask for it
	// by name. With false, only Services that name the pool in the
	// networking.svcplane.io/load-balancer-ip-pool annotation, or ask for one of its
	// addresses, get an address from it. It defaults to true.
	// +kubebuilder:default=true
	// +optional
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// ServiceAllocation restricts the Services that may use the pool. Unset, any
	// Service may.
	// +optional
	ServiceAllocation *LoadBalancerIPPoolServiceAllocation `json:"serviceAllocation,omitempty"`
}

// LoadBalancerIPPoolServiceAllocation says which Services may use a pool. A Service
// must match every field that is set.
type LoadBalancerIPPoolServiceAllocation struct {
	// Namespaces are the namespaces whose Services may use the pool; empty means
	// every namespace.
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// ServiceSelector selects, by their labels, the Services that may use the pool;
	// unset means every Service.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`
}

// LoadBalancerIPPoolStatus is the pool's use, as the ippool provider sees it.
type LoadBalancerIPPoolStatus struct {
	// Used is the number of the pool's addresses that Services hold, including
	// addresses handed out through another pool that shares them.
	// +optional
	Used int64 `json:"used"`

	// Free is the number of the pool's usable addresses that nobody holds.
	// +optional
	Free int64 `json:"free"`

	// Conditions are Valid and Overlapping.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the spec generation the status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=lbpool,categories=svcplane
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Auto-Assign",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="Used",type=integer,JSONPath=`.status.used`
// +kubebuilder:printcolumn:name="Free",type=integer,JSONPath=`.status.free`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// LoadBalancerIPPool is a cluster-wide pool of external addresses for LoadBalancer
// Services, served by the built-in ippool provider (bare metal, no cloud).
type LoadBalancerIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the pool's addresses and who may use them.
	// +required
	Spec LoadBalancerIPPoolSpec `json:"spec"`
	// +optional
	Status LoadBalancerIPPoolStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// LoadBalancerIPPoolList is a list of LoadBalancerIPPools.
type LoadBalancerIPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LoadBalancerIPPool `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(scheme *runtime.Scheme) error {
		scheme.AddKnownTypes(GroupVersion, &LoadBalancerIPPool{}, &LoadBalancerIPPoolList{})
		return nil
	})
}
