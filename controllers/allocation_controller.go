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
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/internal/ledger"
)

// ConditionAllocated is True when a Service holds every address and port its spec
// needs.
const ConditionAllocated = "Allocated"

// ReasonExternalIPsDenied is the Allocated reason of a Service with external IPs
// while the manager runs with --deny-external-ips.
const ReasonExternalIPsDenied = "ExternalIPsDenied"

// ReasonInvalidSelector is the Allocated reason of a Service whose selector is not a
// valid label set.
const ReasonInvalidSelector = "InvalidSelector"

// externalIPsDeniedMessage is kube-apiserver's DenyServiceExternalIPs rejection.
const externalIPsDeniedMessage = "spec.externalIPs: Forbidden: Use of external IPs is denied by admission control"

// waitingRetryPeriod is how often a Service waiting for a value held by another
// Service is retried even if no release was seen (a release is the usual trigger).
const waitingRetryPeriod = 30 * time.Second

// unreachableRetryPeriod is how often a pass is retried while the API server cannot
// be reached; the recovery pass retries everything once it is back.
const unreachableRetryPeriod = 5 * time.Second

// statusConflictRetry is how soon a pass that lost a status write to a concurrent
// change runs again: the change's own event usually arrives first.
const statusConflictRetry = 100 * time.Millisecond

// maxRetryDelay caps the workqueue's per-Service backoff (controller-runtime's default
// reaches 1000s), so that a Service that failed through an outage is retried
// within seconds of its end.
const maxRetryDelay = 5 * time.Second

// DefaultConcurrentServiceSyncs is the default of --concurrent-service-syncs, the
// AllocationReconciler's MaxConcurrentReconciles.
//
// Allocation itself is serialised by the Book and takes microseconds; a pass is
// one status write, and the API server is the bottleneck of a burst. Enough
// workers keep the manager's share of it close to that of the clients creating
// the Services, so that each is allocated soon after its create instead of
// behind all of them. Measured with 1,000 creates from 32 clients (quick
// bench-compare runs, 2 cores): create -> Allocated=True p50 2.55-2.71 s with 4
// workers, 1.24 s with 16, 0.83-1.99 s with 32, 0.65 s with 64, the whole burst
// allocated in 5.8-6.6 s with 4 and 4.2-6.3 s with 32 or 64.
const DefaultConcurrentServiceSyncs = 32

// AllocationReconciler gives Services their cluster IPs, node ports and health check
// node port from an ledger.Book, and records them in status. It rebuilds the Book
// from every Service's status before it hands out anything, and a repair pass checks
// the Book against the API every RepairInterval.
type AllocationReconciler struct {
	client.Client
	// APIReader reads straight from the API server, for the restore and repair
	// listings, which must not trust a cache that may lag behind.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Book      *ledger.Book
	// RepairInterval is the period of the repair pass; zero disables it.
	RepairInterval time.Duration
	// MaxConcurrentReconciles bounds parallel reconciles (the Book serialises the
	// allocation itself).
	MaxConcurrentReconciles int
	// DenyExternalIPs refuses every Service with external IPs, as kube-apiserver's
	// DenyServiceExternalIPs admission plugin does: such a Service holds nothing, so
	// no node programs it, and says why in its Allocated condition.
	DenyExternalIPs bool
	// APIReachable reports whether the API server answers; nil means always. While
	// it does not, failed passes are retried quietly instead of through the
	// workqueue's growing backoff.
	APIReachable func() bool

	restoreMu sync.Mutex
	restored  bool
	retry     chan event.GenericEvent

	// identity is this instance's field manager name for status writes.
	identity       string
	guardMu        sync.Mutex
	seen           map[string]seen
	standbyUntil   time.Time
	lastForeignLog time.Time
}

// +kubebuilder:rbac:groups=networking.svcplane.io,resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.svcplane.io,resources=services/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch;update

// Reconcile brings one Service's allocation in line with its spec.
func (r *AllocationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	if err := r.restore(ctx); err != nil {
		return r.retryOrFail(err)
	}
	key := req.String()

	svc, err := r.fetch(ctx, req.NamespacedName)
	if err != nil {
		return r.retryOrFail(err)
	}
	if svc == nil {
		if r.Book.Release(key) {
			log.V(1).Info("released the allocations of a deleted Service")
			r.kickWaiting(key)
		}
		r.forget(key)
		return ctrl.Result{}, nil
	}
	if !svc.DeletionTimestamp.IsZero() {
		// The Service keeps what it holds until it is gone: a finalizer (a load
		// balancer being torn down) may still rely on its node ports.
		return ctrl.Result{}, nil
	}

	// Someone else (another manager) wrote this allocation: follow it rather than
	// overwrite it, when the Book can.
	if r.writtenByOther(key, svc) {
		r.otherAllocator(ctx, svc)
	}
	if adopted, _ := r.Book.Adopt(key, svc.UID, &svc.Status); adopted {
		log.V(1).Info("adopted the allocation shown in status")
		r.kickWaiting(key)
	}
	r.remember(key, svc)
	if standby, left := r.standingBy(); standby {
		return ctrl.Result{RequeueAfter: left}, nil
	}

	status := svc.Status.DeepCopy()
	var failure *ledger.Error
	var alloc ledger.Allocation
	if failure = r.refusal(svc); failure != nil {
		// kube-apiserver would have refused the object: it holds nothing (so no
		// node programs it), and what it held goes back to the ranges.
		if r.Book.Release(key) {
			r.kickWaiting(key)
		}
		applyAllocation(status, ledger.Allocation{})
	} else {
		var freed bool
		var allocErr error
		alloc, freed, allocErr = r.Book.Ensure(key, svc.UID, &svc.Spec)
		if freed {
			r.kickWaiting(key)
		}
		if allocErr != nil && !errors.As(allocErr, &failure) {
			return ctrl.Result{}, allocErr
		}
	}

	cond := metav1.Condition{Type: ConditionAllocated, ObservedGeneration: svc.Generation}
	if failure == nil {
		applyAllocation(status, alloc)
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, ledger.ReasonAllocated, allocatedMessage(alloc)
	} else {
		// Keep what the Service already holds in status: the Book kept it too.
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, failure.Reason, failure.Message
	}
	previous := meta.FindStatusCondition(svc.Status.Conditions, ConditionAllocated)
	meta.SetStatusCondition(&status.Conditions, cond)
	status.ObservedGeneration = svc.Generation
	status.Display = display(&svc.Spec, status)

	if !equality.Semantic.DeepEqual(status, &svc.Status) {
		// A value this Service does not show yet must not show on any other
		// Service: one written by another manager that the Book has not seen.
		if other, err := r.heldElsewhere(ctx, key, newValues(&svc.Status, status)); err != nil {
			return ctrl.Result{}, err
		} else if other != nil {
			r.Book.Release(key)
			r.otherAllocator(ctx, other)
			r.Book.Adopt(client.ObjectKeyFromObject(other).String(), other.UID, &other.Status)
			r.remember(client.ObjectKeyFromObject(other).String(), other)
			return ctrl.Result{RequeueAfter: time.Millisecond}, nil
		}
		updated := svc.DeepCopy()
		updated.Status = *status
		if err := r.Status().Patch(ctx, updated, client.MergeFromWithOptions(svc, client.MergeFromWithOptimisticLock{}), client.FieldOwner(r.identity)); err != nil {
			if failure == nil {
				// What was allocated stays held; the next pass writes it.
				log.V(1).Info("status write failed; will retry", "error", err.Error())
			}
			return r.retryOrFail(err)
		}
		r.remember(key, updated)
	}

	if failure == nil {
		return ctrl.Result{}, nil
	}
	if previous == nil || previous.Reason != cond.Reason || previous.Message != cond.Message {
		r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, failure.Reason, "AllocateServiceAddresses", "%s", failure.Message)
	}
	if failure.Permanent {
		// Retrying cannot help until the spec changes, which triggers a new pass.
		log.Info("Service cannot be allocated until its spec changes", "reason", failure.Reason, "message", failure.Message)
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: waitingRetryPeriod}, nil
}

// refusal returns why kube-apiserver would refuse svc where the CRD schema cannot:
// external IPs under --deny-external-ips, and selector values with characters a
// label value may not have (a regular expression over the unbounded values is beyond
// the CRD's CEL cost budget, so the schema checks only their length). nil when
// nothing is refused.
func (r *AllocationReconciler) refusal(svc *v1alpha1.Service) *ledger.Error {
	if r.DenyExternalIPs && len(svc.Spec.ExternalIPs) > 0 {
		return &ledger.Error{Reason: ReasonExternalIPsDenied, Message: externalIPsDeniedMessage, Permanent: true}
	}
	if errs := metav1validation.ValidateLabels(svc.Spec.Selector, field.NewPath("spec", "selector")); len(errs) > 0 {
		return &ledger.Error{Reason: ReasonInvalidSelector, Message: errs.ToAggregate().Error(), Permanent: true}
	}
	return nil
}

// fetch reads the Service from the cache, and from the API server when the cache
// does not have it: after an outage the informers may still be backing off while
// the recovery pass already queued the Service. It returns nil when the Service is
// gone.
func (r *AllocationReconciler) fetch(ctx context.Context, name types.NamespacedName) (*v1alpha1.Service, error) {
	svc := &v1alpha1.Service{}
	err := r.Get(ctx, name, svc)
	if err == nil {
		return svc, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	if err := r.APIReader.Get(ctx, name, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	svc.ManagedFields = nil
	return svc, nil
}

// retryOrFail returns err for the workqueue's backoff, unless the API server is known
// to be unreachable: then the pass is retried quietly (the monitor has said it once)
// and the recovery pass requeues it as soon as the API server is back.
func (r *AllocationReconciler) retryOrFail(err error) (ctrl.Result, error) {
	// A lost optimistic-lock race on the status (the load balancer reconciler writes
	// it too) is expected: the caller has logged it at debug level, and a quick retry
	// on fresh data settles it without a reconciler error and its stack trace.
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: statusConflictRetry}, nil
	}
	if r.APIReachable != nil && !r.APIReachable() {
		return ctrl.Result{RequeueAfter: unreachableRetryPeriod}, nil
	}
	return ctrl.Result{}, err
}

// Resync queues every Service whose allocation is not settled (no Allocated condition
// for its current generation, or a status the Book disagrees with), oldest first,
// and every waiting Service. The manager calls it when the API server is back after
// an outage, so that work is picked up in about a second instead of after the
// informers' backoff.
func (r *AllocationReconciler) Resync(ctx context.Context) error {
	if err := r.restore(ctx); err != nil {
		return err
	}
	list := &v1alpha1.ServiceList{}
	if err := r.APIReader.List(ctx, list); err != nil {
		return fmt.Errorf("listing Services after the API server came back: %w", err)
	}
	slices.SortFunc(list.Items, olderFirst)
	queued := 0
	for i := range list.Items {
		svc := &list.Items[i]
		c := meta.FindStatusCondition(svc.Status.Conditions, ConditionAllocated)
		key := client.ObjectKeyFromObject(svc).String()
		if c == nil || c.ObservedGeneration != svc.Generation || !r.Book.InSync(key, svc.UID, &svc.Status) {
			r.enqueue(key)
			queued++
		}
	}
	r.kickWaiting("")
	logf.FromContext(ctx).Info("queued unsettled Services after the API server came back", "services", queued)
	return nil
}

func olderFirst(a, b v1alpha1.Service) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return cmp.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
}

// applyAllocation writes what the Service holds into its status.
func applyAllocation(status *v1alpha1.ServiceStatus, alloc ledger.Allocation) {
	status.ClusterIPs = alloc.ClusterIPs
	status.ClusterIP = ""
	if len(alloc.ClusterIPs) > 0 {
		status.ClusterIP = alloc.ClusterIPs[0]
	}
	status.IPFamilies = alloc.IPFamilies
	status.Ports = alloc.Ports
	status.HealthCheckNodePort = alloc.HealthCheckNodePort
}

func allocatedMessage(alloc ledger.Allocation) string {
	switch {
	case len(alloc.ClusterIPs) == 0:
		return "ExternalName services get no cluster IP and no node ports"
	case alloc.ClusterIPs[0] == v1alpha1.ClusterIPNone:
		return "headless service: no cluster IP"
	}
	return "cluster IPs and node ports are allocated"
}

// display renders the EXTERNAL-IP and PORT(S) columns as `kubectl get svc` does.
func display(spec *v1alpha1.ServiceSpec, status *v1alpha1.ServiceStatus) v1alpha1.ServiceDisplay {
	ports := make([]string, 0, len(spec.Ports))
	for _, p := range spec.Ports {
		proto := cmp.Or(p.Protocol, corev1.ProtocolTCP)
		nodePort := int32(0)
		for _, s := range status.Ports {
			if s.Port == p.Port && s.Protocol == proto {
				nodePort = s.NodePort
			}
		}
		if nodePort != 0 {
			ports = append(ports, fmt.Sprintf("%d:%d/%s", p.Port, nodePort, proto))
		} else {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port, proto))
		}
	}
	d := v1alpha1.ServiceDisplay{Ports: cmp.Or(strings.Join(ports, ","), "<none>")}

	switch spec.Type {
	case corev1.ServiceTypeExternalName:
		d.ExternalIP = spec.ExternalName
	case corev1.ServiceTypeLoadBalancer:
		var ingress []string
		for _, in := range status.LoadBalancer.Ingress {
			ingress = append(ingress, cmp.Or(in.IP, in.Hostname))
		}
		all := append(ingress, spec.ExternalIPs...)
		switch {
		case len(all) > 0:
			d.ExternalIP = strings.Join(all, ",")
		default:
			d.ExternalIP = "<pending>"
		}
	default:
		d.ExternalIP = cmp.Or(strings.Join(spec.ExternalIPs, ","), "<none>")
	}
	return d
}

// restore rebuilds the Book from every Service's status, once, before the first
// allocation. Services are restored oldest first so that, of two Services claiming
// the same value, the older keeps it, as kube's repair loop decides.
func (r *AllocationReconciler) restore(ctx context.Context) error {
	r.restoreMu.Lock()
	defer r.restoreMu.Unlock()
	if r.restored {
		return nil
	}
	list := &v1alpha1.ServiceList{}
	if err := r.APIReader.List(ctx, list); err != nil {
		return fmt.Errorf("listing Services to restore allocations: %w", err)
	}
	slices.SortFunc(list.Items, olderFirst)
	for i := range list.Items {
		svc := &list.Items[i]
		r.remember(client.ObjectKeyFromObject(svc).String(), svc)
		for _, p := range r.Book.Restore(client.ObjectKeyFromObject(svc).String(), svc.UID, &svc.Status) {
			r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, p.Reason, "RestoreServiceAddresses", "%s", p.Message)
		}
	}
	logf.FromContext(ctx).Info("restored allocations from existing Services", "services", len(list.Items))
	r.restored = true
	return nil
}

// repair compares the Book with every Service in the API: Services whose status
// disagrees with what they hold (a duplicate, an address outside the range, a lost
// write) are reported and queued, and what is held by Services that no longer exist
// is reclaimed.
func (r *AllocationReconciler) repair(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("repair")
	if r.APIReachable != nil && !r.APIReachable() {
		// Nothing can be listed; the monitor has said so once, and the recovery
		// pass catches up when the API server is back.
		return nil
	}
	if err := r.restore(ctx); err != nil {
		return err
	}
	listedAt := time.Now()
	list := &v1alpha1.ServiceList{}
	if err := r.APIReader.List(ctx, list); err != nil {
		return fmt.Errorf("listing Services to repair allocations: %w", err)
	}
	existing := make(map[string]types.UID, len(list.Items))
	for i := range list.Items {
		svc := &list.Items[i]
		key := client.ObjectKeyFromObject(svc).String()
		existing[key] = svc.UID
		if !svc.DeletionTimestamp.IsZero() || r.Book.InSync(key, svc.UID, &svc.Status) {
			continue
		}
		for _, p := range r.Book.Audit(key, svc.UID, &svc.Status) {
			r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, p.Reason, "RepairServiceAddresses", "%s", p.Message)
		}
		r.enqueue(key)
	}
	if leaked := r.Book.Reclaim(existing, listedAt); len(leaked) > 0 {
		log.Info("reclaimed allocations of Services that no longer exist", "services", leaked)
		r.kickWaiting("")
	}
	return nil
}

// kickWaiting queues every Service waiting for a value, because one was just freed.
func (r *AllocationReconciler) kickWaiting(except string) {
	for _, key := range r.Book.Waiting() {
		if key != except {
			r.enqueue(key)
		}
	}
}

func (r *AllocationReconciler) enqueue(key string) {
	namespace, name, _ := strings.Cut(key, "/")
	obj := &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	select {
	case r.retry <- event.GenericEvent{Object: obj}:
	default:
		// The queue of kicks is full; the waiting Service's own RequeueAfter
		// retries it anyway.
	}
}

// SetupWithManager registers the reconciler and its repair pass with the manager.
func (r *AllocationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.retry = make(chan event.GenericEvent, 4096)
	r.seen = map[string]seen{}
	if r.identity == "" {
		r.identity = newIdentity()
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Service{}, allocatedIndex, func(obj client.Object) []string {
		return allocatedValues(&obj.(*v1alpha1.Service).Status)
	}); err != nil {
		return err
	}
	if r.RepairInterval > 0 {
		if err := mgr.Add(&periodic{name: "allocation-repair", interval: r.RepairInterval, run: r.repair}); err != nil {
			return err
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Service{}).
		WatchesRawSource(source.Channel(r.retry, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles),
			RateLimiter: workqueue.NewTypedMaxOfRateLimiter(
				workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, maxRetryDelay),
				&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(10), 100)},
			),
		}).
		Named("allocation").
		Complete(r)
}

var _ reconcile.Reconciler = &AllocationReconciler{}
