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

package controllers

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// A second manager running without leader election (`make run` against a cluster
// whose Deployment already runs) keeps a Book of its own. The guard keeps the two
// from fighting over status: each manager remembers the allocation it last saw in
// or wrote to every Service's status; a newer status showing another allocation was
// written by someone else. The manager then adopts it when it can (its Book follows
// status instead of overwriting it), says so once (an ERROR line and an event), and
// the younger of the two managers stands by, writing nothing, while the older one
// keeps allocating. Before handing out a value it does not see in the Service's own
// status, a manager also checks that no other Service shows it.

// allocatorFieldManagerPrefix starts the field manager name of every allocator's status
// writes; the rest is the instance identity.
const allocatorFieldManagerPrefix = "svcplane-allocator/"

// standbyPeriod is how long a manager that saw an older one writing stands by; every
// further foreign write extends it.
const standbyPeriod = 2 * time.Minute

// foreignLogPeriod rate-limits the ERROR line and the event about another allocator.
const foreignLogPeriod = time.Minute

// ReasonOtherAllocator is the reason of the event sent when another allocator wrote a
// Service's allocation.
const ReasonOtherAllocator = "OtherAllocatorDetected"

// allocatedIndex indexes Services by the values their status shows ("ip:10.96.0.1",
// "port:30080").
const allocatedIndex = "status.allocated"

// seen is the allocation a manager last saw in, or wrote to, a Service's status.
type seen struct {
	uid   types.UID
	rv    uint64
	alloc string
}

// newIdentity names this manager instance: host and start time, so that of two
// managers the older can be told.
func newIdentity() string {
	host, _ := os.Hostname()
	if len(host) > 60 {
		host = host[:60]
	}
	return fmt.Sprintf("%s%s/%d", allocatorFieldManagerPrefix, host, time.Now().UnixNano())
}

// identityStart returns the start time in an identity, and whether it has one.
func identityStart(identity string) (int64, bool) {
	i := strings.LastIndexByte(identity, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(identity[i+1:], 10, 64)
	return n, err == nil
}

// allocationText is a canonical text of the values status shows; "" when none.
func allocationText(status *v1alpha1.ServiceStatus) string {
	values := allocatedValues(status)
	slices.Sort(values)
	return strings.Join(values, ",")
}

// allocatedValues lists the cluster IPs and node ports status shows, as index keys.
func allocatedValues(status *v1alpha1.ServiceStatus) []string {
	var out []string
	for _, ip := range status.ClusterIPs {
		if ip != "" && ip != v1alpha1.ClusterIPNone {
			out = append(out, "ip:"+ip)
		}
	}
	for _, p := range status.Ports {
		if p.NodePort != 0 {
			out = append(out, "port:"+strconv.Itoa(int(p.NodePort)))
		}
	}
	if status.HealthCheckNodePort != 0 {
		out = append(out, "port:"+strconv.Itoa(int(status.HealthCheckNodePort)))
	}
	return slices.Compact(slices.Sorted(slices.Values(out)))
}

func resourceVersion(obj client.Object) uint64 {
	n, _ := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	return n
}

// remember records what svc's status shows as seen by this manager. It never goes
// back to an older object: a cache lagging behind this manager's own write must not
// make that write look like someone else's when the cache catches up.
func (r *AllocationReconciler) remember(key string, svc *v1alpha1.Service) {
	r.guardMu.Lock()
	defer r.guardMu.Unlock()
	rv := resourceVersion(svc)
	if s, ok := r.seen[key]; ok && s.uid == svc.UID && rv < s.rv {
		return
	}
	r.seen[key] = seen{uid: svc.UID, rv: rv, alloc: allocationText(&svc.Status)}
}

func (r *AllocationReconciler) forget(key string) {
	r.guardMu.Lock()
	defer r.guardMu.Unlock()
	delete(r.seen, key)
}

// writtenByOther reports whether svc's status shows an allocation that this manager
// neither wrote nor saw before: a newer object whose allocation differs from the
// one remembered, or a Service never seen with an empty status that already shows
// one. An older object (a cache lagging behind a write) never counts.
func (r *AllocationReconciler) writtenByOther(key string, svc *v1alpha1.Service) bool {
	current := allocationText(&svc.Status)
	if current == "" {
		return false
	}
	r.guardMu.Lock()
	defer r.guardMu.Unlock()
	s, ok := r.seen[key]
	if !ok || s.uid != svc.UID {
		return true
	}
	return resourceVersion(svc) > s.rv && current != s.alloc
}

// standingBy reports whether this manager leaves allocation to an older one.
func (r *AllocationReconciler) standingBy() (bool, time.Duration) {
	r.guardMu.Lock()
	defer r.guardMu.Unlock()
	left := time.Until(r.standbyUntil)
	return left > 0, left
}

// otherAllocator handles a Service whose allocation someone else wrote: it finds the
// other writer in the object's managed fields, stands by if that writer is an older
// manager, and tells the user (at most once a minute).
func (r *AllocationReconciler) otherAllocator(ctx context.Context, svc *v1alpha1.Service) {
	log := logf.FromContext(ctx)
	other := ""
	live := &v1alpha1.Service{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(svc), live); err == nil {
		// Managed fields keep time to the second: of writers in the same second,
		// this manager counts as the last, so that its own write seen late is
		// never reported.
		var latest time.Time
		for _, mf := range live.ManagedFields {
			switch {
			case mf.Subresource != "status" || mf.Time == nil || mf.Time.Before(&metav1.Time{Time: latest}):
			case mf.Time.After(latest) || mf.Manager == r.identity:
				latest, other = mf.Time.Time, mf.Manager
			case other != r.identity:
				other = mf.Manager
			}
		}
	}
	if other == r.identity {
		// The last status write was this manager's own, seen late.
		return
	}
	mine, _ := identityStart(r.identity)
	theirs, known := identityStart(other)
	olderOther := strings.HasPrefix(other, allocatorFieldManagerPrefix) && known && theirs < mine

	r.guardMu.Lock()
	if olderOther {
		r.standbyUntil = time.Now().Add(standbyPeriod)
	}
	logNow := time.Since(r.lastForeignLog) >= foreignLogPeriod
	if logNow {
		r.lastForeignLog = time.Now()
	}
	r.guardMu.Unlock()

	what := "this manager keeps allocating, as the older one"
	if olderOther {
		what = "this manager stands by and follows the older one's decisions"
	}
	if other == "" {
		other = "an unknown writer"
	}
	if !logNow {
		// Once a minute is enough to tell; an event per Service of a burst would
		// be hundreds of writes saying the same.
		return
	}
	log.Error(fmt.Errorf("another allocator wrote a Service's allocation"),
		"two svcplane managers are allocating at once; run one, or all with --leader-elect",
		"other", other, "self", r.identity, "decision", what, "service", client.ObjectKeyFromObject(svc).String())
	r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonOtherAllocator, "AllocateServiceAddresses",
		"The allocation in status was written by %s, not by this manager (%s): is a second svcplane manager running without --leader-elect? %s", other, r.identity, what)
}

// heldElsewhere returns another Service whose status shows one of values, according to
// the cache, or nil.
func (r *AllocationReconciler) heldElsewhere(ctx context.Context, key string, values []string) (*v1alpha1.Service, error) {
	for _, v := range values {
		list := &v1alpha1.ServiceList{}
		if err := r.List(ctx, list, client.MatchingFields{allocatedIndex: v}); err != nil {
			return nil, err
		}
		for i := range list.Items {
			if client.ObjectKeyFromObject(&list.Items[i]).String() != key {
				return &list.Items[i], nil
			}
		}
	}
	return nil, nil
}

// newValues returns the values of next that current does not show.
func newValues(current, next *v1alpha1.ServiceStatus) []string {
	have := allocatedValues(current)
	var out []string
	for _, v := range allocatedValues(next) {
		if !slices.Contains(have, v) {
			out = append(out, v)
		}
	}
	return out
}
