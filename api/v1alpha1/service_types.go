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
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ClusterIPNone is the clusterIP value that asks for a headless Service.
const ClusterIPNone = "None"

// DefaultClientIPTimeoutSeconds is the session affinity timeout used when ClientIP
// affinity is asked for without a timeout: three hours, as in core Services.
const DefaultClientIPTimeoutSeconds int32 = 10800

// ServiceSpec is what the user asks of a Service. It keeps the field names, types,
// defaults and meaning of the core v1.ServiceSpec, so a core manifest works here after
// changing only its apiVersion. Rules that depend on more than one field are CEL rules
// below, worded like kube-apiserver's own validation.
//
// +kubebuilder:validation:XValidation:rule="self.type != 'ExternalName' || (has(self.externalName) && size(self.externalName) > 0)",message="must be specified when `type` is 'ExternalName'",fieldPath=".externalName",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.type == 'ExternalName' || !has(self.externalName) || size(self.externalName) == 0",message="may only be set when `type` is 'ExternalName'",fieldPath=".externalName",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="self.type != 'ExternalName' || ((!has(self.clusterIP) || size(self.clusterIP) == 0) && (!has(self.clusterIPs) || size(self.clusterIPs) == 0))",message="may not be set for ExternalName services",fieldPath=".clusterIP",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="self.type == 'ClusterIP' || self.type == 'ExternalName' || ((!has(self.clusterIP) || self.clusterIP != 'None') && (!has(self.clusterIPs) || !('None' in self.clusterIPs)))",messageExpression="\"may not be set to 'None' for \" + self.type + \" services\"",fieldPath=".clusterIP"
// +kubebuilder:validation:XValidation:rule="!has(self.clusterIP) || size(self.clusterIP) == 0 || !has(self.clusterIPs) || size(self.clusterIPs) == 0 || self.clusterIPs[0] == self.clusterIP",message="must match `clusterIP` when both are specified",fieldPath=".clusterIPs"
// +kubebuilder:validation:XValidation:rule="self.type == 'ExternalName' || (has(self.clusterIP) && self.clusterIP == 'None') || (has(self.clusterIPs) && size(self.clusterIPs) > 0 && self.clusterIPs[0] == 'None') || (has(self.ports) && size(self.ports) > 0)",message="at least one port is required unless the service is headless or of type ExternalName",fieldPath=".ports",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.type == 'NodePort' || self.type == 'LoadBalancer' || !has(self.ports) || self.ports.all(p, !has(p.nodePort) || p.nodePort == 0)",messageExpression="\"nodePort may not be used when `type` is '\" + self.type + \"'\"",fieldPath=".ports",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.ipFamilyPolicy) || self.ipFamilyPolicy != 'SingleStack' || ((!has(self.ipFamilies) || size(self.ipFamilies) < 2) && (!has(self.clusterIPs) || size(self.clusterIPs) < 2))",message="must be 'RequireDualStack' or 'PreferDualStack' when multiple `ipFamilies` or `clusterIPs` are specified",fieldPath=".ipFamilyPolicy"
// +kubebuilder:validation:XValidation:rule="!has(self.clusterIPs) || !has(self.ipFamilies) || ((size(self.clusterIPs) < 1 || size(self.ipFamilies) < 1 || !isIP(self.clusterIPs[0]) || (ip(self.clusterIPs[0]).family() == 4) == (self.ipFamilies[0] == 'IPv4')) && (size(self.clusterIPs) < 2 || size(self.ipFamilies) < 2 || !isIP(self.clusterIPs[1]) || (ip(self.clusterIPs[1]).family() == 4) == (self.ipFamilies[1] == 'IPv4')))",message="each address must belong to the family at the same index of `ipFamilies`",fieldPath=".clusterIPs"
// +kubebuilder:validation:XValidation:rule="!has(self.externalTrafficPolicy) || self.type == 'NodePort' || self.type == 'LoadBalancer' || (self.type == 'ClusterIP' && has(self.externalIPs) && size(self.externalIPs) > 0)",message="may only be set for externally-accessible services",fieldPath=".externalTrafficPolicy",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.healthCheckNodePort) || self.healthCheckNodePort == 0 || (self.type == 'LoadBalancer' && has(self.externalTrafficPolicy) && self.externalTrafficPolicy == 'Local')",message="may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",fieldPath=".healthCheckNodePort",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.sessionAffinityConfig) || self.sessionAffinity == 'ClientIP'",message="must not be set when `sessionAffinity` is None",fieldPath=".sessionAffinityConfig",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.allocateLoadBalancerNodePorts) || self.type == 'LoadBalancer'",message="may only be used when `type` is 'LoadBalancer'",fieldPath=".allocateLoadBalancerNodePorts",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.loadBalancerClass) || self.type == 'LoadBalancer'",message="may only be used when `type` is 'LoadBalancer'",fieldPath=".loadBalancerClass",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.loadBalancerSourceRanges) || size(self.loadBalancerSourceRanges) == 0 || self.type == 'LoadBalancer'",message="may only be used when `type` is 'LoadBalancer'",fieldPath=".loadBalancerSourceRanges",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.loadBalancerIP) || size(self.loadBalancerIP) == 0 || self.type == 'LoadBalancer'",message="may only be used when `type` is 'LoadBalancer'",fieldPath=".loadBalancerIP",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="self.type != 'ExternalName' || !has(self.internalTrafficPolicy)",message="may not be set for ExternalName services",fieldPath=".internalTrafficPolicy",reason=FieldValueForbidden
type ServiceSpec struct {
	// Type is how the Service is exposed: ClusterIP (the default) allocates a
	// cluster-internal address; NodePort adds a port on every node; LoadBalancer adds an
	// external load balancer on top of node ports; ExternalName is a DNS alias with no
	// address or proxying.
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer;ExternalName
	// +kubebuilder:default=ClusterIP
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`

	// Ports lists the ports the Service exposes. The pair (port, protocol) is unique;
	// when there is more than one port, every port has a unique name.
	// +listType=map
	// +listMapKey=port
	// +listMapKey=protocol
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:XValidation:rule="size(self) <= 1 || self.all(p, has(p.name) && size(p.name) > 0)",message="a name is required for every port when more than one port is defined",reason=FieldValueRequired
	// +kubebuilder:validation:XValidation:rule="self.all(p, !has(p.name) || size(p.name) == 0 || self.exists_one(q, has(q.name) && q.name == p.name))",message="port names must be unique"
	// +kubebuilder:validation:XValidation:rule="self.all(p, !has(p.nodePort) || p.nodePort == 0 || self.exists_one(q, has(q.nodePort) && q.nodePort == p.nodePort && q.protocol == p.protocol))",message="a nodePort may be used by at most one port per protocol"
	// +optional
	Ports []ServicePort `json:"ports,omitempty"`

	// Selector routes traffic to pods whose labels match it. A Service without a
	// selector gets no managed endpoints; its EndpointSlices are made by someone else.
	// Every key must be a valid label key and every value a valid label value, as
	// kube-apiserver's ValidateLabels demands. The schema checks the keys and the
	// values' length; the allocation controller refuses a value with other
	// characters (a regular expression over every value is beyond the CRD's CEL
	// cost budget, as the values' length is unbounded there).
	// +mapType=atomic
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$') && k.indexOf('/') <= 253 && size(k) - k.indexOf('/') <= 64)",messageExpression="\"key \\\"\" + self.filter(k, !(k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$') && k.indexOf('/') <= 253 && size(k) - k.indexOf('/') <= 64))[0] + \"\\\": a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName'), at most 63 characters after the prefix\""
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 63)",messageExpression="\"value \\\"\" + self.filter(k, size(self[k]) > 63).map(k, self[k])[0] + \"\\\": must be no more than 63 bytes\""
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Selector map[string]string `json:"selector,omitempty"`

	// ClusterIP is the requested primary cluster address: empty to have one allocated,
	// "None" for a headless Service, or an address inside the service CIDR.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="size(self) == 0 || self == 'None' || isIP(self)",message="must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff) or 'None'"
	// +optional
	ClusterIP string `json:"clusterIP,omitempty"`

	// ClusterIPs are the requested cluster addresses, one per IP family, primary
	// first. Its first entry, when given, equals ClusterIP.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="self.all(a, a == 'None' || isIP(a))",message="each entry must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff) or 'None'"
	// +kubebuilder:validation:XValidation:rule="!('None' in self) || size(self) == 1",message="'None' must be the only entry"
	// +kubebuilder:validation:XValidation:rule="size(self) < 2 || !isIP(self[0]) || !isIP(self[1]) || ip(self[0]).family() != ip(self[1]).family()",message="may specify no more than one IP for each IP family"
	// +optional
	ClusterIPs []string `json:"clusterIPs,omitempty"`

	// IPFamilies are the requested IP families, primary first. Left empty, the
	// families follow ClusterIPs, else the cluster's primary family.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:Enum=IPv4;IPv6
	// +kubebuilder:validation:XValidation:rule="size(self) < 2 || self[0] != self[1]",message="may not contain the same IP family twice"
	// +optional
	IPFamilies []corev1.IPFamily `json:"ipFamilies,omitempty"`

	// IPFamilyPolicy is SingleStack (the default), PreferDualStack (two families
	// when the cluster has them) or RequireDualStack (two families or an error).
	// +kubebuilder:validation:Enum=SingleStack;PreferDualStack;RequireDualStack
	// +optional
	IPFamilyPolicy *corev1.IPFamilyPolicy `json:"ipFamilyPolicy,omitempty"`

	// ExternalIPs are addresses outside the cluster for which nodes accept traffic
	// to this Service. They are not managed by svcplane.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="self.all(a, isIP(a))",message="each entry must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)"
	// +kubebuilder:validation:items:XValidation:rule="!isIP(self) || !ip(self).isUnspecified()",messageExpression="\"may not be unspecified (\" + self + \")\""
	// +kubebuilder:validation:items:XValidation:rule="!isIP(self) || !ip(self).isLoopback()",message="may not be in the loopback range (127.0.0.0/8, ::1/128)"
	// +kubebuilder:validation:items:XValidation:rule="!isIP(self) || !ip(self).isLinkLocalUnicast()",message="may not be in the link-local range (169.254.0.0/16, fe80::/10)"
	// +kubebuilder:validation:items:XValidation:rule="!isIP(self) || !ip(self).isLinkLocalMulticast()",message="may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
	// +kubebuilder:validation:items:XValidation:rule="!isIP(self) || ip(self).isLinkLocalMulticast() || !(ip(self).family() == 4 ? cidr('224.0.0.0/4').containsIP(ip(self)) : cidr('ff00::/8').containsIP(ip(self)))",message="may not be a multicast address (224.0.0.0/4, ff00::/8)"
	// +optional
	ExternalIPs []string `json:"externalIPs,omitempty"`

	// SessionAffinity is None (the default) or ClientIP, which sends a client's
	// connections to the same endpoint for SessionAffinityConfig's timeout.
	// +kubebuilder:validation:Enum=None;ClientIP
	// +kubebuilder:default=None
	// +optional
	SessionAffinity corev1.ServiceAffinity `json:"sessionAffinity,omitempty"`

	// SessionAffinityConfig holds the settings of ClientIP session affinity.
	// +optional
	SessionAffinityConfig *SessionAffinityConfig `json:"sessionAffinityConfig,omitempty"`

	// LoadBalancerIP asks a LoadBalancer provider for a specific address. It is
	// deprecated in core Services and kept here for compatibility; providers may
	// ignore it.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="size(self) == 0 || isIP(self)",message="must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)"
	// +optional
	LoadBalancerIP string `json:"loadBalancerIP,omitempty"`

	// LoadBalancerSourceRanges restricts the clients a LoadBalancer accepts, as CIDRs.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c) || isIP(c))",message="each entry must be a valid CIDR (e.g. 192.0.2.0/24 or 2001:db8::/64)"
	// +optional
	LoadBalancerSourceRanges []string `json:"loadBalancerSourceRanges,omitempty"`

	// ExternalName is the DNS name an ExternalName Service aliases.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\.?$`
	// +optional
	ExternalName string `json:"externalName,omitempty"`

	// ExternalTrafficPolicy is Cluster (the default for externally-accessible
	// Services) or Local, which keeps the client's source address and only uses
	// endpoints on the node the traffic arrived at.
	// +kubebuilder:validation:Enum=Cluster;Local
	// +optional
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`

	// HealthCheckNodePort is the requested node port on which nodes report whether
	// they have local endpoints, for LoadBalancer Services with
	// externalTrafficPolicy Local. Zero has one allocated.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	HealthCheckNodePort int32 `json:"healthCheckNodePort,omitempty"`

	// PublishNotReadyAddresses marks every endpoint ready, whatever its pod's
	// readiness.
	// +optional
	PublishNotReadyAddresses bool `json:"publishNotReadyAddresses,omitempty"`

	// AllocateLoadBalancerNodePorts, when false, keeps a LoadBalancer Service from
	// getting node ports it did not ask for. It defaults to true.
	// +optional
	AllocateLoadBalancerNodePorts *bool `json:"allocateLoadBalancerNodePorts,omitempty"`

	// LoadBalancerClass picks the provider of a LoadBalancer Service. Unset, the
	// default provider serves it; a class no provider here registered is left to
	// another controller.
	// +kubebuilder:validation:MaxLength=316
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="field is immutable"
	// +optional
	LoadBalancerClass *string `json:"loadBalancerClass,omitempty"`

	// InternalTrafficPolicy is Cluster (the default) or Local, which sends traffic
	// that starts inside the cluster only to endpoints on the same node.
	// +kubebuilder:validation:Enum=Cluster;Local
	// +optional
	InternalTrafficPolicy *corev1.ServiceInternalTrafficPolicy `json:"internalTrafficPolicy,omitempty"`
}

// ServicePort is one port a Service exposes.
type ServicePort struct {
	// Name tells ports apart; it is required when the Service has more than one.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Name string `json:"name,omitempty"`

	// Protocol is TCP (the default), UDP or SCTP.
	// +kubebuilder:validation:Enum=TCP;UDP;SCTP
	// +kubebuilder:default=TCP
	// +optional
	Protocol corev1.Protocol `json:"protocol,omitempty"`

	// AppProtocol is the application protocol of this port, as a hint to
	// implementations (IANA service names, or domain-prefixed names).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	AppProtocol *string `json:"appProtocol,omitempty"`

	// Port is the port the Service listens on.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// TargetPort is the port on the pods, by number or by the name of a container
	// port. Unset or 0, it is the same as Port (a Go client sends 0 for unset,
	// because an IntOrString is never omitted as empty).
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 0 && self <= 65535) : (size(self) <= 15 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && self.matches('[a-z]') && !self.contains('--'))",message="must be a port number between 1 and 65535 or an IANA service name (at most 15 lower-case letters, digits and '-', with at least one letter)"
	// +optional
	TargetPort intstr.IntOrString `json:"targetPort,omitempty"`

	// NodePort is the requested port on every node for NodePort and LoadBalancer
	// Services. Zero has one allocated from the node port range.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	NodePort int32 `json:"nodePort,omitempty"`
}

// SessionAffinityConfig holds the settings of session affinity.
type SessionAffinityConfig struct {
	// ClientIP holds the settings of ClientIP affinity.
	// +optional
	ClientIP *ClientIPConfig `json:"clientIP,omitempty"`
}

// ClientIPConfig holds the settings of ClientIP session affinity.
type ClientIPConfig struct {
	// TimeoutSeconds is how long a client sticks to its endpoint after its last
	// packet: more than 0 and at most 86400 (one day); 10800 (three hours) by default.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	// +kubebuilder:default=10800
	// +optional
	TimeoutSeconds *int32 `json:"timeoutSeconds,omitempty"`
}

// ServiceStatus is what svcplane decided for a Service.
type ServiceStatus struct {
	// ClusterIP is the primary cluster address: an allocated address, "None" for a
	// headless Service, or empty while nothing is allocated or for ExternalName.
	// +optional
	ClusterIP string `json:"clusterIP,omitempty"`

	// ClusterIPs are the cluster addresses, one per IP family, primary first.
	// +listType=atomic
	// +optional
	ClusterIPs []string `json:"clusterIPs,omitempty"`

	// IPFamilies are the IP families the Service uses, primary first, for headless
	// Services too.
	// +listType=atomic
	// +optional
	IPFamilies []corev1.IPFamily `json:"ipFamilies,omitempty"`

	// Ports are the Service's ports with the node ports allocated for them.
	// +listType=atomic
	// +optional
	Ports []ServicePortStatus `json:"ports,omitempty"`

	// HealthCheckNodePort is the node port on which nodes report local endpoints,
	// for LoadBalancer Services with externalTrafficPolicy Local.
	// +optional
	HealthCheckNodePort int32 `json:"healthCheckNodePort,omitempty"`

	// LoadBalancer is the load balancer's status, as its provider reported it.
	// +optional
	LoadBalancer corev1.LoadBalancerStatus `json:"loadBalancer,omitempty"`

	// Conditions are the latest observations of the Service's state: Allocated,
	// LoadBalancerReady.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the spec generation the allocation reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Display holds `kubectl get` column text in the format `kubectl get svc` prints,
	// because printer columns can only show a single field.
	// +optional
	Display ServiceDisplay `json:"display,omitempty"`
}

// ServicePortStatus is one port of a Service as allocated.
type ServicePortStatus struct {
	// Name is the port's name from spec.
	// +optional
	Name string `json:"name,omitempty"`
	// Protocol is the port's protocol from spec.
	Protocol corev1.Protocol `json:"protocol"`
	// Port is the Service port from spec.
	Port int32 `json:"port"`
	// NodePort is the port allocated on every node, or 0 when none applies.
	// +optional
	NodePort int32 `json:"nodePort,omitempty"`
}

// ServiceDisplay is pre-formatted text for `kubectl get` columns.
type ServiceDisplay struct {
	// ExternalIP is the EXTERNAL-IP column: load balancer ingress, external IPs,
	// the external name, "<pending>" or "<none>".
	// +optional
	ExternalIP string `json:"externalIP,omitempty"`
	// Ports is the PORT(S) column, e.g. "80:30080/TCP,53/UDP".
	// +optional
	Ports string `json:"ports,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// The name is a DNS-1035 label of at most 63 characters, as a core Service's: it
// becomes a DNS label and the value of the EndpointSlices' service-name label.
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",messageExpression="\"name \\\"\" + self.metadata.name + \"\\\": must be no more than 63 characters\"",fieldPath=".metadata"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",messageExpression="\"name \\\"\" + self.metadata.name + \"\\\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')\"",fieldPath=".metadata"
// +kubebuilder:resource:shortName=svcp,categories=svcplane
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Cluster-IP",type=string,JSONPath=`.status.clusterIP`
// +kubebuilder:printcolumn:name="External-IP",type=string,JSONPath=`.status.display.externalIP`
// +kubebuilder:printcolumn:name="Port(s)",type=string,JSONPath=`.status.display.ports`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Allocated")].reason`,description="The Allocated condition's reason: Allocated, or why the Service has no address or node port (ClusterIPAlreadyAllocated, NodePortRangeFull, ...)"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Selector",type=string,JSONPath=`.spec.selector`,priority=1

// Service is a named abstraction of software service: a stable address, ports and a
// set of endpoints, like a core Service but served by svcplane.
type Service struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the user asks for; it is required, as a core Service needs ports.
	// +required
	Spec ServiceSpec `json:"spec"`
	// +optional
	Status ServiceStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ServiceList is a list of Services.
type ServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Service `json:"items"`
}
