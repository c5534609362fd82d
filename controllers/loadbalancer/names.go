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
	"errors"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// DefaultName is a load balancer name derived from the Service's UID: "a" followed
// by the UID without dashes, cut to 32 characters, which fits the name limits of
// most load balancer APIs. It is k8s.io/cloud-provider's DefaultLoadBalancerName, so
// a provider ported from a cloud provider keeps the names it already created.
func DefaultName(svc *v1alpha1.Service) string {
	name := "a" + strings.ReplaceAll(string(svc.UID), "-", "")
	return name[:min(len(name), 32)]
}

// RequestedIPs returns the external addresses the Service asks for, in the order
// written: the v1alpha1.AnnotationLoadBalancerIPs list, else spec.loadBalancerIP, else none.
// It fails, with kube's field wording, for an entry that is not an IP address, for
// two addresses of one family, and when spec.loadBalancerIP names an address that
// the annotation does not list.
func RequestedIPs(svc *v1alpha1.Service) ([]netip.Addr, error) {
	annotation := field.NewPath("metadata", "annotations").Key(v1alpha1.AnnotationLoadBalancerIPs)
	var out []netip.Addr
	if text, ok := svc.Annotations[v1alpha1.AnnotationLoadBalancerIPs]; ok && strings.TrimSpace(text) != "" {
		for entry := range strings.SplitSeq(text, ",") {
			ip, err := parseIP(strings.TrimSpace(entry))
			if err != nil {
				return nil, field.Invalid(annotation, text, "must be a comma-separated list of IP addresses (e.g. 192.0.2.10,2001:db8::10)")
			}
			for _, prev := range out {
				if prev.Is4() == ip.Is4() {
					return nil, field.Invalid(annotation, text, "may specify no more than one IP for each IP family")
				}
			}
			out = append(out, ip)
		}
	}
	if svc.Spec.LoadBalancerIP == "" {
		return out, nil
	}
	legacy := field.NewPath("spec", "loadBalancerIP")
	ip, err := parseIP(svc.Spec.LoadBalancerIP)
	if err != nil {
		return nil, field.Invalid(legacy, svc.Spec.LoadBalancerIP, "must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)")
	}
	if len(out) == 0 {
		return []netip.Addr{ip}, nil
	}
	for _, want := range out {
		if want == ip {
			return out, nil
		}
	}
	return nil, field.Invalid(legacy, svc.Spec.LoadBalancerIP, "must be one of the addresses of the "+v1alpha1.AnnotationLoadBalancerIPs+" annotation when both are set")
}

// parseIP parses an address as kube does for Service fields: no zone, and an
// IPv4-mapped IPv6 address is its IPv4 address.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if ip.Zone() != "" {
		return netip.Addr{}, errors.New("an IP address with a zone is not allowed")
	}
	return ip.Unmap(), nil
}
