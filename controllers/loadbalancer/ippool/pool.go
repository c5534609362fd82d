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

package ippool

import (
	"fmt"
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/allocator"
)

// Reasons of a pool's Valid condition.
const (
	ReasonValid                  = "Valid"
	ReasonInvalidRange           = "InvalidRange"
	ReasonRangeTooLarge          = "RangeTooLarge"
	ReasonInvalidServiceSelector = "InvalidServiceSelector"
)

// pool is a LoadBalancerIPPool as the provider uses it: its usable ranges and the
// rules that say which Services may use it.
type pool struct {
	name       string
	generation int64
	spec       *v1alpha1.LoadBalancerIPPoolSpec
	ranges     []*allocator.IPRange
	// indexes holds the spec.addresses index of each range.
	indexes    []int
	autoAssign bool
	// namespaces is nil when every namespace may use the pool.
	namespaces map[string]bool
	// selector is nil when every Service may use the pool; labels.Nothing() when
	// the selector is invalid, so a typo never opens a pool to everyone.
	selector labels.Selector

	// validReason and problems explain entries that are ignored or cut short.
	validReason string
	problems    []string
}

// newPool builds a pool from its object. Entries that do not parse, or that overlap
// an earlier entry of the same pool (which would count addresses twice), are left out
// and reported; the others serve.
func newPool(obj *v1alpha1.LoadBalancerIPPool) *pool {
	p := &pool{
		name:        obj.Name,
		generation:  obj.Generation,
		spec:        obj.Spec.DeepCopy(),
		autoAssign:  obj.Spec.AutoAssign == nil || *obj.Spec.AutoAssign,
		validReason: ReasonValid,
	}
	path := field.NewPath("spec", "addresses")
	for i, text := range obj.Spec.Addresses {
		r, err := allocator.ParseIPRange(text)
		if err != nil {
			p.invalid(ReasonInvalidRange, field.Invalid(path.Index(i), text, err.Error()).Error())
			continue
		}
		if j := p.overlapping(r); j >= 0 {
			p.invalid(ReasonInvalidRange, field.Invalid(path.Index(i), text, fmt.Sprintf("overlaps %s (%s)", path.Index(j), obj.Spec.Addresses[j])).Error())
			continue
		}
		if r.Truncated() {
			p.invalid(ReasonRangeTooLarge, field.Invalid(path.Index(i), text,
				fmt.Sprintf("holds %s addresses; only the first %d (2^%d) are used, up to %s", r.Total(), allocator.MaxIPRangeSize, allocator.MaxIPRangeBits, r.Last())).Error())
		}
		p.ranges = append(p.ranges, r)
		p.indexes = append(p.indexes, i)
	}
	if sa := obj.Spec.ServiceAllocation; sa != nil {
		if len(sa.Namespaces) > 0 {
			p.namespaces = map[string]bool{}
			for _, ns := range sa.Namespaces {
				p.namespaces[ns] = true
			}
		}
		if sa.ServiceSelector != nil {
			sel, err := metav1.LabelSelectorAsSelector(sa.ServiceSelector)
			if err != nil {
				sel = labels.Nothing()
				p.invalid(ReasonInvalidServiceSelector, field.Invalid(field.NewPath("spec", "serviceAllocation", "serviceSelector"), sa.ServiceSelector.String(), err.Error()).Error()+"; the pool serves no Service")
			}
			p.selector = sel
		}
	}
	return p
}

// invalid records a problem; InvalidRange and InvalidServiceSelector outrank
// RangeTooLarge as the condition's reason, since they mean part of the spec is
// ignored rather than only cut short.
func (p *pool) invalid(reason, msg string) {
	if p.validReason == ReasonValid || p.validReason == ReasonRangeTooLarge {
		p.validReason = reason
	}
	p.problems = append(p.problems, msg)
}

// overlapping returns the index of the pool's first range that overlaps r, or -1.
// The index is that of spec.addresses, which includes the entries left out.
func (p *pool) overlapping(r *allocator.IPRange) int {
	for i, o := range p.ranges {
		if o.Overlaps(r) {
			return p.indexes[i]
		}
	}
	return -1
}

// allows returns "" when svc may use the pool, else why not.
func (p *pool) allows(svc *v1alpha1.Service) string {
	if p.namespaces != nil && !p.namespaces[svc.Namespace] {
		return fmt.Sprintf("LoadBalancerIPPool %q does not allow Services in namespace %q", p.name, svc.Namespace)
	}
	if p.selector != nil && !p.selector.Matches(labels.Set(svc.Labels)) {
		return fmt.Sprintf("LoadBalancerIPPool %q does not select this Service's labels", p.name)
	}
	return ""
}

// rangeOf returns the range that holds ip, or nil.
func (p *pool) rangeOf(ip netip.Addr) *allocator.IPRange {
	for _, r := range p.ranges {
		if r.Contains(ip) {
			return r
		}
	}
	return nil
}

// has reports whether the pool has ranges of the family.
func (p *pool) has(is6 bool) bool {
	for _, r := range p.ranges {
		if r.IsIPv6() == is6 {
			return true
		}
	}
	return false
}

// overlaps reports whether the two pools share an address.
func (p *pool) overlaps(o *pool) bool {
	for _, a := range p.ranges {
		for _, b := range o.ranges {
			if a.Overlaps(b) {
				return true
			}
		}
	}
	return false
}

// usage sums the pool's ranges.
func (p *pool) usage() (used, free int64) {
	for _, r := range p.ranges {
		used += int64(r.Used())
		free += int64(r.Free())
	}
	return used, free
}
