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

package endpoints

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// group is the desired endpoints of one address family that share one set of
// resolved ports: they can live in the same slices.
type group struct {
	addressType discoveryv1.AddressType
	ports       []discoveryv1.EndpointPort
	key         string
	endpoints   map[types.UID]discoveryv1.Endpoint
	order       []types.UID
}

// AddressTypes returns the address types the Service's slices use: one per IP family
// in status (what svcplane decided), else in spec. Nil means the families are not
// known yet and nothing should be changed.
func AddressTypes(svc *v1alpha1.Service) []discoveryv1.AddressType {
	families := svc.Status.IPFamilies
	if len(families) == 0 {
		families = svc.Spec.IPFamilies
	}
	var out []discoveryv1.AddressType
	for _, fam := range families {
		switch fam {
		case corev1.IPv4Protocol:
			out = append(out, discoveryv1.AddressTypeIPv4)
		case corev1.IPv6Protocol:
			out = append(out, discoveryv1.AddressTypeIPv6)
		}
	}
	return out
}

// Selects reports whether the Service has managed endpoints at all: it has a selector
// and is not an ExternalName Service.
func Selects(svc *v1alpha1.Service) bool {
	return len(svc.Spec.Selector) > 0 && svc.Spec.Type != corev1.ServiceTypeExternalName
}

// desiredGroups returns the desired endpoints of the Service, grouped by address type
// and resolved ports, sorted by key.
func desiredGroups(svc *v1alpha1.Service, pods []*corev1.Pod, zones map[string]string, addressTypes []discoveryv1.AddressType) []*group {
	selector := labels.SelectorFromSet(svc.Spec.Selector)
	pods = slices.Clone(pods)
	slices.SortFunc(pods, func(a, b *corev1.Pod) int { return cmp.Compare(a.Name, b.Name) })

	groups := map[string]*group{}
	for _, pod := range pods {
		if pod.Namespace != svc.Namespace || !selector.Matches(labels.Set(pod.Labels)) || !routable(pod) {
			continue
		}
		ports := portsFor(svc, pod)
		portsKey := keyOfPorts(ports)
		for _, at := range addressTypes {
			addr := podAddress(pod, at)
			if addr == "" {
				continue
			}
			key := string(at) + "|" + portsKey
			g := groups[key]
			if g == nil {
				g = &group{addressType: at, ports: ports, key: key, endpoints: map[types.UID]discoveryv1.Endpoint{}}
				groups[key] = g
			}
			if _, dup := g.endpoints[pod.UID]; dup {
				continue
			}
			g.endpoints[pod.UID] = endpointFor(svc, pod, addr, zones)
			g.order = append(g.order, pod.UID)
		}
	}
	out := make([]*group, 0, len(groups))
	for _, g := range groups {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *group) int { return cmp.Compare(a.key, b.key) })
	return out
}

// routable reports whether a pod can be an endpoint at all: it has an address and has
// not finished.
func routable(pod *corev1.Pod) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	return pod.Status.PodIP != "" || len(pod.Status.PodIPs) > 0
}

// podAddress returns the pod's address of the slice's address type, or "".
func podAddress(pod *corev1.Pod, at discoveryv1.AddressType) string {
	candidates := []string{pod.Status.PodIP}
	for _, ip := range pod.Status.PodIPs {
		candidates = append(candidates, ip.IP)
	}
	for _, s := range candidates {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		if (at == discoveryv1.AddressTypeIPv4) == ip.Is4() {
			return ip.String()
		}
	}
	return ""
}

// portsFor resolves the Service's ports against one pod. A targetPort given by name is
// looked up among the pod's container ports of the same protocol (sidecar init
// containers included); a pod without it is left out for that port.
func portsFor(svc *v1alpha1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	ports := make([]discoveryv1.EndpointPort, 0, len(svc.Spec.Ports))
	for _, sp := range svc.Spec.Ports {
		proto := cmp.Or(sp.Protocol, corev1.ProtocolTCP)
		var number int32
		if sp.TargetPort.Type == intstr.String {
			n, ok := namedPort(pod, sp.TargetPort.StrVal, proto)
			if !ok {
				continue
			}
			number = n
		} else {
			number = cmp.Or(sp.TargetPort.IntVal, sp.Port)
		}
		ports = append(ports, discoveryv1.EndpointPort{
			Name:        ptr.To(sp.Name),
			Protocol:    ptr.To(proto),
			Port:        ptr.To(number),
			AppProtocol: sp.AppProtocol,
		})
	}
	return ports
}

func namedPort(pod *corev1.Pod, name string, proto corev1.Protocol) (int32, bool) {
	containers := pod.Spec.Containers
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			containers = append(slices.Clip(containers), c)
		}
	}
	for _, c := range containers {
		for _, p := range c.Ports {
			if p.Name == name && cmp.Or(p.Protocol, corev1.ProtocolTCP) == proto {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

// endpointFor builds the endpoint of one pod address, with the conditions as
// Kubernetes defines them: serving is readiness, terminating is deletion, ready is
// serving and not terminating — or all-ready with publishNotReadyAddresses.
func endpointFor(svc *v1alpha1.Service, pod *corev1.Pod, addr string, zones map[string]string) discoveryv1.Endpoint {
	terminating := pod.DeletionTimestamp != nil
	serving := podReady(pod) || svc.Spec.PublishNotReadyAddresses
	ready := (serving && !terminating) || svc.Spec.PublishNotReadyAddresses
	ep := discoveryv1.Endpoint{
		Addresses:  []string{addr},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(serving), Terminating: ptr.To(terminating)},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}
	if pod.Spec.NodeName != "" {
		ep.NodeName = ptr.To(pod.Spec.NodeName)
		if zone, ok := zones[pod.Spec.NodeName]; ok && zone != "" {
			ep.Zone = ptr.To(zone)
		}
	}
	if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name {
		ep.Hostname = ptr.To(pod.Spec.Hostname)
	}
	return ep
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// keyOfPorts is an order-independent key of a port set.
func keyOfPorts(ports []discoveryv1.EndpointPort) string {
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		parts = append(parts, fmt.Sprintf("%s/%s/%d/%s", deref(p.Name), deref(p.Protocol), deref(p.Port), deref(p.AppProtocol)))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
