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
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// Input is everything the computation needs about one Service.
type Input struct {
	// Service is the Service whose slices are computed.
	Service *v1alpha1.Service
	// Pods are candidate pods; those outside the Service's namespace or selector are
	// ignored.
	Pods []*corev1.Pod
	// NodeZones maps the name of every existing Node to its
	// topology.kubernetes.io/zone label.
	NodeZones map[string]string
	// Existing are the slices svcplane manages for this Service.
	Existing []*discoveryv1.EndpointSlice
	// MaxEndpointsPerSlice bounds a slice; zero means DefaultMaxEndpointsPerSlice.
	MaxEndpointsPerSlice int
	// TriggerTime is the oldest change the writes are the first to reflect (see
	// TriggerTimes). Every slice written carries it in the
	// endpoints.kubernetes.io/last-change-trigger-time annotation, or loses the
	// annotation when it is zero; it never causes a write of its own.
	TriggerTime time.Time
}

// Plan is the writes that bring a Service's slices to the desired state. Updates are
// copies of existing slices, carrying their resourceVersion; creates have only a
// generateName.
type Plan struct {
	Create, Update, Delete []*discoveryv1.EndpointSlice
}

// Writes is the number of API writes the plan takes.
func (p Plan) Writes() int { return len(p.Create) + len(p.Update) + len(p.Delete) }

// Compute returns the writes that make the Service's slices list exactly the pods it
// should route to, with as few writes as possible: endpoints stay in the slice they are
// in, new ones fill slices that are being written anyway, then one existing slice with
// room for all of them, and only then new slices. A Service without a selector (or an
// ExternalName Service) has all its managed slices deleted. While the Service's IP
// families are not known yet the plan is empty.
func Compute(in Input) Plan {
	svc := in.Service
	maxPerSlice := in.MaxEndpointsPerSlice
	if maxPerSlice <= 0 {
		maxPerSlice = DefaultMaxEndpointsPerSlice
	}
	existing := slices.Clone(in.Existing)
	slices.SortFunc(existing, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	if !Selects(svc) {
		return Plan{Delete: existing}
	}
	addressTypes := AddressTypes(svc)
	if len(addressTypes) == 0 {
		return Plan{}
	}

	p := &planner{svc: svc, max: maxPerSlice, labels: desiredLabels(svc), trigger: in.TriggerTime}
	byKey := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		// A slice controlled by something else (an earlier Service of the same name,
		// say) is not this Service's to rewrite: it is replaced.
		if ref := metav1.GetControllerOf(s); ref != nil && ref.UID != svc.UID {
			p.plan.Delete = append(p.plan.Delete, s)
			continue
		}
		if !slices.Contains(addressTypes, s.AddressType) {
			p.plan.Delete = append(p.plan.Delete, s)
			continue
		}
		key := string(s.AddressType) + "|" + keyOfPorts(s.Ports)
		byKey[key] = append(byKey[key], s)
	}

	hasEndpoints := map[discoveryv1.AddressType]bool{}
	for _, g := range desiredGroups(svc, in.Pods, in.NodeZones, addressTypes) {
		p.place(g, byKey[g.key])
		delete(byKey, g.key)
		hasEndpoints[g.addressType] = true
	}
	for _, at := range addressTypes {
		if !hasEndpoints[at] {
			p.placeholder(at, byKey)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		p.plan.Delete = append(p.plan.Delete, byKey[key]...)
	}
	p.reuseDeleted()
	return p.plan
}

// reuseDeleted turns a create and a delete of the same address type into one update
// of the slice that would be deleted, as kube does: one write instead of two, and no
// moment where the endpoints exist twice.
func (p *planner) reuseDeleted() {
	var creates []*discoveryv1.EndpointSlice
	for _, c := range p.plan.Create {
		i := slices.IndexFunc(p.plan.Delete, func(d *discoveryv1.EndpointSlice) bool { return d.AddressType == c.AddressType })
		if i < 0 {
			creates = append(creates, c)
			continue
		}
		d := p.plan.Delete[i]
		p.plan.Delete = slices.Delete(p.plan.Delete, i, i+1)
		p.update(d, c.Endpoints, c.Ports)
	}
	p.plan.Create = creates
}

type planner struct {
	svc     *v1alpha1.Service
	max     int
	labels  map[string]string
	trigger time.Time
	plan    Plan
}

// sliceState is an existing slice while its endpoints are being placed.
type sliceState struct {
	slice   *discoveryv1.EndpointSlice
	eps     []discoveryv1.Endpoint
	changed bool
}

// place distributes one group's desired endpoints over the group's existing slices.
func (p *planner) place(g *group, existing []*discoveryv1.EndpointSlice) {
	placed := map[types.UID]bool{}
	states := make([]*sliceState, 0, len(existing))
	for _, s := range existing {
		st := &sliceState{slice: s}
		for _, ep := range s.Endpoints {
			uid := types.UID("")
			if ep.TargetRef != nil {
				uid = ep.TargetRef.UID
			}
			want, ok := g.endpoints[uid]
			if !ok || placed[uid] || len(st.eps) == p.max {
				st.changed = true
				continue
			}
			if !equality.Semantic.DeepEqual(ep, want) {
				st.changed = true
			}
			st.eps = append(st.eps, want)
			placed[uid] = true
		}
		// A slice written anyway to fix its metadata or ports takes new endpoints
		// at no extra cost.
		if !p.metaCurrent(s) || !equality.Semantic.DeepEqual(s.Ports, g.ports) {
			st.changed = true
		}
		states = append(states, st)
	}
	var remaining []discoveryv1.Endpoint
	for _, uid := range g.order {
		if !placed[uid] {
			remaining = append(remaining, g.endpoints[uid])
		}
	}

	// Slices that are written anyway take new endpoints first: that costs no write.
	for _, st := range states {
		if !st.changed {
			continue
		}
		n := min(p.max-len(st.eps), len(remaining))
		st.eps = append(st.eps, remaining[:n]...)
		remaining = remaining[n:]
	}
	// Full slices' worth go into new slices; what is left goes into the untouched
	// slice with the least room that still fits it all, else into one more new slice.
	for len(remaining) >= p.max {
		p.create(g, remaining[:p.max])
		remaining = remaining[p.max:]
	}
	if len(remaining) > 0 {
		var best *sliceState
		for _, st := range states {
			room := p.max - len(st.eps)
			if !st.changed && room >= len(remaining) && (best == nil || room < p.max-len(best.eps)) {
				best = st
			}
		}
		if best != nil {
			best.eps = append(best.eps, remaining...)
			best.changed = true
		} else {
			p.create(g, remaining)
		}
	}

	for _, st := range states {
		switch {
		case len(st.eps) == 0:
			p.plan.Delete = append(p.plan.Delete, st.slice)
		case st.changed:
			p.update(st.slice, st.eps, g.ports)
		}
	}
}

// placeholder keeps one empty slice for an address type that has no endpoints, as
// kube does, so that consumers can tell "no endpoints" from "not processed yet".
func (p *planner) placeholder(at discoveryv1.AddressType, byKey map[string][]*discoveryv1.EndpointSlice) {
	key := string(at) + "|"
	for i, s := range byKey[key] {
		if len(s.Endpoints) == 0 {
			if !p.metaCurrent(s) {
				p.update(s, nil, []discoveryv1.EndpointPort{})
			}
			rest := slices.Delete(slices.Clone(byKey[key]), i, i+1)
			p.plan.Delete = append(p.plan.Delete, rest...)
			delete(byKey, key)
			return
		}
	}
	p.create(&group{addressType: at, ports: []discoveryv1.EndpointPort{}}, nil)
}

func (p *planner) create(g *group, eps []discoveryv1.Endpoint) {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    p.svc.Name + "-",
			Namespace:       p.svc.Namespace,
			Labels:          maps.Clone(p.labels),
			OwnerReferences: []metav1.OwnerReference{ownerRef(p.svc)},
		},
		AddressType: g.addressType,
		Endpoints:   slices.Clone(eps),
		Ports:       g.ports,
	}
	p.stamp(s)
	p.plan.Create = append(p.plan.Create, s)
}

// stamp sets or clears the trigger time annotation of a slice being written.
func (p *planner) stamp(s *discoveryv1.EndpointSlice) {
	if p.trigger.IsZero() {
		delete(s.Annotations, corev1.EndpointsLastChangeTriggerTime)
		return
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[corev1.EndpointsLastChangeTriggerTime] = p.trigger.UTC().Format(time.RFC3339Nano)
}

func (p *planner) update(s *discoveryv1.EndpointSlice, eps []discoveryv1.Endpoint, ports []discoveryv1.EndpointPort) {
	u := s.DeepCopy()
	u.Labels = maps.Clone(p.labels)
	if !metav1.IsControlledBy(u, p.svc) {
		// Drop any other controller and any non-controller reference to the
		// Service before adding the one controller reference.
		u.OwnerReferences = slices.DeleteFunc(u.OwnerReferences, func(r metav1.OwnerReference) bool {
			return r.UID == p.svc.UID || (r.Controller != nil && *r.Controller)
		})
		u.OwnerReferences = append(u.OwnerReferences, ownerRef(p.svc))
	}
	u.Endpoints = eps
	u.Ports = ports
	p.stamp(u)
	p.plan.Update = append(p.plan.Update, u)
}

// metaCurrent reports whether a slice carries exactly the desired labels and is
// controlled by the Service.
func (p *planner) metaCurrent(s *discoveryv1.EndpointSlice) bool {
	return maps.Equal(s.Labels, p.labels) && metav1.IsControlledBy(s, p.svc)
}

// desiredLabels are the Service's own labels (less the ones that would make a slice
// look like a core Service's or another manager's) plus svcplane's.
func desiredLabels(svc *v1alpha1.Service) map[string]string {
	out := map[string]string{}
	for k, v := range svc.Labels {
		if k == kubeServiceNameLabel || k == v1alpha1.LabelManagedBy || k == v1alpha1.LabelHeadless {
			continue
		}
		out[k] = v
	}
	out[v1alpha1.LabelServiceName] = svc.Name
	out[v1alpha1.LabelManagedBy] = v1alpha1.ManagedByValue
	if svc.Spec.ClusterIP == v1alpha1.ClusterIPNone || svc.Status.ClusterIP == v1alpha1.ClusterIPNone {
		out[v1alpha1.LabelHeadless] = ""
	}
	return out
}

func ownerRef(svc *v1alpha1.Service) metav1.OwnerReference {
	return *metav1.NewControllerRef(svc, v1alpha1.GroupVersion.WithKind("Service"))
}
