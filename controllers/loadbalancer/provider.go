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
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// Provider gives LoadBalancer Services an external load balancer. It is the
// k8s.io/cloud-provider LoadBalancer contract without the cluster name: the
// reconciler calls it, one Service at a time per Service but for many Services in
// parallel, so an implementation must be safe for concurrent use.
//
// Every method gets a deep copy of the Service, which it may keep or modify; spec
// is what the user asked for, and status holds what svcplane allocated (clusterIPs,
// ipFamilies, ports[].nodePort, healthCheckNodePort). The reconciler only calls
// EnsureLoadBalancer and UpdateLoadBalancer once those are allocated for the current
// spec. Nodes are the eligible nodes (see EligibleNodes), sorted by name.
//
// Errors: any error means "not done; call again". The reconciler retries with a
// per-Service exponential backoff from 5 s to 5 min, records a SyncLoadBalancerFailed
// Warning event and keeps whatever the Service had (its status, its finalizer), so a
// method must leave things so that a later call can finish the job: never half-create
// something it cannot find again, never forget something it created. Wrap an error
// in RetryAfter to have the call repeated after exactly that delay instead, without a
// failure event (for "still provisioning", rate limits, a dependency not ready yet).
type Provider interface {
	// GetLoadBalancer returns the load balancer's current status and whether it
	// exists. It must not create or change anything. An error means the provider
	// could not tell; exists is then ignored.
	GetLoadBalancer(ctx context.Context, svc *v1alpha1.Service) (status *corev1.LoadBalancerStatus, exists bool, err error)

	// GetLoadBalancerName returns the name of the Service's load balancer in the
	// provider's own terms. It must be stable for the life of the Service (the same
	// for every call with the same UID), may not depend on anything the user can
	// change, and is used in logs and events. DefaultName is a good choice.
	GetLoadBalancerName(svc *v1alpha1.Service) string

	// EnsureLoadBalancer creates the load balancer, or brings an existing one in
	// line with the Service and nodes, and returns its status. It is called when the
	// Service is new to this process (after every restart, too), and whenever the
	// Service changed; it must be idempotent. The returned status is written to
	// status.loadBalancer as is (an ingress with an IP and no ipMode gets VIP, as
	// kube-apiserver defaults it); it must not be nil when err is nil. On error
	// nothing the Service already had may be lost: its status keeps the previous
	// ingress.
	EnsureLoadBalancer(ctx context.Context, svc *v1alpha1.Service, nodes []*corev1.Node) (*corev1.LoadBalancerStatus, error)

	// UpdateLoadBalancer points an existing load balancer at a new set of nodes. It is
	// called instead of EnsureLoadBalancer when only the eligible nodes changed since
	// the last successful call, and must not change the load balancer's address. A
	// provider whose load balancers do not depend on nodes returns nil.
	UpdateLoadBalancer(ctx context.Context, svc *v1alpha1.Service, nodes []*corev1.Node) error

	// EnsureLoadBalancerDeleted deletes the load balancer and everything the provider
	// holds for it, and returns nil once it is gone. It must be idempotent: it returns
	// nil for a load balancer that does not exist or was never created, because it is
	// called again after a failure, after a restart, and possibly for a Service the
	// provider never served. The finalizer that keeps the Service from going away is
	// only removed after it returned nil.
	EnsureLoadBalancerDeleted(ctx context.Context, svc *v1alpha1.Service) error
}

// Restorer is implemented by providers that keep state in memory (an address
// allocator) and rebuild it from the Services' status when the manager starts.
// Restore is called once, before any other method, with every Service that carries
// the cleanup finalizer and that the registry routes to the provider (plus, for the
// default provider, Services that stopped being LoadBalancers while the manager was
// down), oldest first. It returns one Problem per Service whose status it could not
// take over (an address an older Service already holds); that Service gets something
// else at its next EnsureLoadBalancer.
type Restorer interface {
	Restore(services []*v1alpha1.Service) []Problem
}

// Problem is something a provider found wrong with a Service while restoring. The
// reconciler records it as a Warning event on the Service.
type Problem struct {
	Service types.NamespacedName
	// Reason is a CamelCase reason for the event.
	Reason string
	// Message says what is wrong, in kube's words where kube has them.
	Message string
}

// Resyncer is implemented by providers that learn, outside a call for a Service,
// that the Service's load balancer should be ensured again: an address was freed
// for a Service waiting for one, or the provider's configuration changed. The
// reconciler calls SetResync once, before any other method. The provider then calls
// resync with the Services concerned, from any goroutine and without holding its own
// locks; resync does not block, and each Service gets a fresh EnsureLoadBalancer soon
// after, whatever its backoff.
type Resyncer interface {
	SetResync(resync func(services ...types.NamespacedName))
}

// RetryError asks the reconciler to call the provider again after Delay, without
// counting a failure. Create it with RetryAfter.
type RetryError struct {
	// Delay is how long to wait before the next call.
	Delay time.Duration
	// Err says what is pending; it is logged and shown in the LoadBalancerReady
	// condition with reason Pending.
	Err error
}

// defaultRetryAfter replaces a delay that is not positive, so that a provider
// cannot spin the reconciler: once a second per Service is plenty for anything that
// is still in progress.
const defaultRetryAfter = time.Second

// RetryAfter returns an error that has the reconciler call the provider again after
// exactly delay (one second if delay is not positive) instead of backing off, and
// without a SyncLoadBalancerFailed event. Use it for work that is in progress or
// waits on something outside the Service. err says what is pending.
func RetryAfter(delay time.Duration, err error) error {
	if err == nil {
		err = errors.New("load balancer is not ready yet")
	}
	if delay <= 0 {
		delay = defaultRetryAfter
	}
	return &RetryError{Delay: delay, Err: err}
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("%v (retrying in %s)", e.Err, e.Delay)
}

func (e *RetryError) Unwrap() error { return e.Err }
