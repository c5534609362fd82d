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
	"cmp"
	"encoding/json"
	"hash/fnv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// Op is the provider call a Service needs next.
type Op int

// The provider calls, as kube's service controller makes them.
const (
	// OpNone: the load balancer is in line with the Service and nodes.
	OpNone Op = iota
	// OpEnsure: EnsureLoadBalancer, for a Service new to this process or changed.
	OpEnsure
	// OpUpdate: UpdateLoadBalancer, when only the eligible nodes changed.
	OpUpdate
	// OpDelete: GetLoadBalancer and EnsureLoadBalancerDeleted.
	OpDelete
)

// Action is the name of the call in kube's events ("EnsureLoadBalancer").
func (o Op) Action() string {
	switch o {
	case OpUpdate:
		return "UpdateLoadBalancer"
	case OpDelete:
		return "DeleteLoadBalancer"
	case OpNone:
		return "None"
	}
	return "EnsureLoadBalancer"
}

// The retry delays of kube's service controller: a provider error is retried after
// 5 s, doubling up to 5 min.
const (
	DefaultMinRetryDelay = 5 * time.Second
	DefaultMaxRetryDelay = 5 * time.Minute
)

// Want is what a Service needs of its load balancer right now.
type Want struct {
	UID types.UID
	// Provider is the name of the provider the Service is routed to.
	Provider string
	// Inputs is the Fingerprint of the Service, Nodes the NodeSetKey of the
	// eligible nodes; both are ignored when Delete is set.
	Inputs uint64
	Nodes  string
	// Finalized: the Service carries the cleanup finalizer. Without it nothing
	// is taken as synced, whatever was remembered.
	Finalized bool
	// Delete: the Service is being deleted or is no longer a LoadBalancer.
	Delete bool
}

// Failure is why the last call failed, as the LoadBalancerReady condition shows it.
type Failure struct {
	Reason, Message string
}

// Decision is what to do for a Service.
type Decision struct {
	// Op is the call to make now; OpNone when Wait is set.
	Op Op
	// Wait is how long to wait before the next call: the same call with the same
	// inputs failed and its backoff has not run out. Failure says why.
	Wait    time.Duration
	Failure Failure
	// Status is what the provider last reported, and Known whether it reported
	// anything in this process for the Service's current UID.
	Status corev1.LoadBalancerStatus
	Known  bool
	// Provider is the provider that served the Service last, if any.
	Provider string
}

// Tracker remembers, per Service, what the provider last did for it and how its
// failed calls back off, and decides from that which call a Service needs. It only
// saves provider calls: after a restart every Service is ensured again, as kube's
// service controller does. A Tracker is safe for concurrent use; the zero value is
// not, use NewTracker.
type Tracker struct {
	minRetry, maxRetry time.Duration
	clock              clock.PassiveClock

	mu       sync.Mutex
	services map[types.NamespacedName]*record
}

// record is what the Tracker knows of one Service (one UID).
type record struct {
	uid      types.UID
	provider string

	// synced is true after a successful ensure for inputs and nodes; status is
	// what the provider reported.
	synced bool
	inputs uint64
	nodes  string
	status corev1.LoadBalancerStatus

	// failures counts consecutive failed calls; retryAt is when the call that
	// failed (retryOp, with retryInputs and retryNodes) may be made again.
	failures    int
	retryAt     time.Time
	retryOp     Op
	retryInputs uint64
	retryNodes  string
	failure     Failure
}

// NewTracker returns a Tracker that backs off from minRetry, doubling, up to
// maxRetry (zero: kube's 5 s and 5 min), reading time from clk (nil: the real
// clock).
func NewTracker(minRetry, maxRetry time.Duration, clk clock.PassiveClock) *Tracker {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Tracker{
		minRetry: cmp.Or(minRetry, DefaultMinRetryDelay),
		maxRetry: cmp.Or(maxRetry, DefaultMaxRetryDelay),
		clock:    clk,
		services: map[types.NamespacedName]*record{},
	}
}

// Decide returns the call the Service needs: nothing when the provider last ensured
// it for the same inputs and nodes, UpdateLoadBalancer when only the nodes changed,
// EnsureLoadBalancer otherwise, the delete when asked for; and instead a wait while
// the same call with the same inputs is backing off.
func (t *Tracker) Decide(key types.NamespacedName, want Want) Decision {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.lookup(key, want.UID)
	d := Decision{Status: rec.status, Known: rec.synced, Provider: rec.provider}

	op := OpEnsure
	switch {
	case want.Delete:
		op = OpDelete
	case want.Finalized && rec.synced && rec.provider == want.Provider && rec.inputs == want.Inputs:
		op = OpNone
		if rec.nodes != want.Nodes {
			op = OpUpdate
		}
	}
	if op == OpNone {
		return d
	}
	wait := rec.retryAt.Sub(t.clock.Now())
	if wait > 0 && rec.retryOp == op && rec.retryInputs == want.Inputs && (op == OpDelete || rec.retryNodes == want.Nodes) {
		d.Wait, d.Failure = wait, rec.failure
		return d
	}
	d.Op = op
	return d
}

// Succeeded records a successful ensure or update: the provider now serves the
// Service for inputs and nodes with status, and its backoff is reset.
func (t *Tracker) Succeeded(key types.NamespacedName, want Want, status corev1.LoadBalancerStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.services[key] = &record{uid: want.UID, provider: want.Provider, synced: true, inputs: want.Inputs, nodes: want.Nodes, status: status}
}

// Failed records that op failed for want, and returns how long to wait before it
// is made again: retryAfter if positive (a provider's RetryAfter, which does not
// count as a failure), else the Service's backoff after one more failure.
func (t *Tracker) Failed(key types.NamespacedName, want Want, op Op, failure Failure, retryAfter time.Duration) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.lookup(key, want.UID)
	delay := retryAfter
	if delay <= 0 {
		rec.failures++
		delay = t.Backoff(rec.failures)
	}
	rec.retryAt, rec.retryOp, rec.retryInputs, rec.retryNodes, rec.failure = t.clock.Now().Add(delay), op, want.Inputs, want.Nodes, failure
	t.services[key] = rec
	return delay
}

// Failures returns how many calls in a row failed for the Service.
func (t *Tracker) Failures(key types.NamespacedName, uid types.UID) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lookup(key, uid).failures
}

// Backoff returns the delay after the n-th consecutive failure: the minimum
// doubled n-1 times, at most the maximum.
func (t *Tracker) Backoff(n int) time.Duration {
	d := t.minRetry
	for i := 1; i < n && d < t.maxRetry; i++ {
		d *= 2
	}
	return min(d, t.maxRetry)
}

// Forget drops what is known of the Service: it is gone, or no longer served.
func (t *Tracker) Forget(key types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.services, key)
}

// Invalidate has the Services ensured again at their next pass, whatever they were
// synced with or how long their backoff is (a provider's resync).
func (t *Tracker) Invalidate(keys ...types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, key := range keys {
		if rec, ok := t.services[key]; ok {
			rec.synced, rec.retryAt = false, time.Time{}
		}
	}
}

// lookup returns a copy of the Service's record; nothing is remembered of another
// Service of the same name (another UID). The caller holds t.mu.
func (t *Tracker) lookup(key types.NamespacedName, uid types.UID) *record {
	if rec, ok := t.services[key]; ok && rec.uid == uid {
		c := *rec
		return &c
	}
	return &record{uid: uid}
}

// Fingerprint hashes everything of the Service a provider may act on, except what
// the reconciler writes itself (finalizers, status.loadBalancer, conditions, the
// display columns), so that any change to it, and nothing else, calls
// EnsureLoadBalancer again. Annotations are included, as kube's service controller
// includes them: providers are configured through them.
func Fingerprint(svc *v1alpha1.Service) uint64 {
	h := fnv.New64a()
	// Encoding a struct of API types cannot fail, and map keys are sorted.
	_ = json.NewEncoder(h).Encode(struct {
		UID                 types.UID
		Labels, Annotations map[string]string
		Spec                v1alpha1.ServiceSpec
		ClusterIPs          []string
		IPFamilies          []corev1.IPFamily
		Ports               []v1alpha1.ServicePortStatus
		HealthCheckNodePort int32
	}{svc.UID, svc.Labels, svc.Annotations, svc.Spec, svc.Status.ClusterIPs, svc.Status.IPFamilies, svc.Status.Ports, svc.Status.HealthCheckNodePort})
	return h.Sum64()
}

// DefaultIPMode returns a copy of lb in which every ingress with an IP and no
// ipMode has VIP, as kube-apiserver defaults it for core Services.
func DefaultIPMode(lb *corev1.LoadBalancerStatus) *corev1.LoadBalancerStatus {
	out := lb.DeepCopy()
	for i := range out.Ingress {
		if in := &out.Ingress[i]; in.IP != "" && in.IPMode == nil {
			vip := corev1.LoadBalancerIPModeVIP
			in.IPMode = &vip
		}
	}
	return out
}
