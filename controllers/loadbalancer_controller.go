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
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/loadbalancer"
)

// ConditionLoadBalancerReady is True when the Service's provider ensured its load
// balancer for the current spec and nodes, and status.loadBalancer shows it.
const ConditionLoadBalancerReady = "LoadBalancerReady"

// Reasons of the LoadBalancerReady condition and of load balancer events: the
// event reasons of kube's service controller, plus Pending.
const (
	ReasonEnsuringLoadBalancer     = "EnsuringLoadBalancer"
	ReasonEnsuredLoadBalancer      = "EnsuredLoadBalancer"
	ReasonUpdatedLoadBalancer      = "UpdatedLoadBalancer"
	ReasonUpdateLoadBalancerFailed = "UpdateLoadBalancerFailed"
	ReasonSyncLoadBalancerFailed   = "SyncLoadBalancerFailed"
	ReasonDeletingLoadBalancer     = "DeletingLoadBalancer"
	ReasonDeletedLoadBalancer      = "DeletedLoadBalancer"
	ReasonUnAvailableLoadBalancer  = "UnAvailableLoadBalancer"
	// ReasonPending: the Service waits for its allocation, or its provider asked to
	// be called again later (loadbalancer.RetryAfter).
	ReasonPending = "Pending"
)

// conflictRetry is when a pass whose write lost an optimistic-lock race runs again
// (the newer version's own event usually brings it back sooner).
const conflictRetry = time.Second

// LoadBalancerReconciler gives LoadBalancer Services an external load balancer from
// the provider its Registry routes them to, as kube's service controller does for a
// cloud provider. A pass fetches the Service, asks a loadbalancer.Tracker which call
// it needs (EnsureLoadBalancer, UpdateLoadBalancer when only the eligible nodes
// changed, nothing, or a wait while a failed call backs off), makes that call, and
// writes status.loadBalancer, the LoadBalancerReady condition and the EXTERNAL-IP
// column in one patch, only if they changed. The finalizer goes on before the
// provider creates anything; on deletion, or when the Service stops being a
// LoadBalancer, EnsureLoadBalancerDeleted, status cleared, finalizer removed.
type LoadBalancerReconciler struct {
	client.Client
	// APIReader reads straight from the API server for the restore listing.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Providers *loadbalancer.Registry
	// Preload runs once, before the providers restore their state, to feed them
	// configuration that lives in the API (the ippool provider's pools).
	Preload []func(context.Context) error
	// MinRetryDelay and MaxRetryDelay bound the per-Service exponential backoff
	// after a provider error; zero means kube's 5 s and 5 min.
	MinRetryDelay, MaxRetryDelay time.Duration
	// MaxConcurrentReconciles bounds parallel provider calls.
	MaxConcurrentReconciles int
	// Clock times the backoff; nil is the real clock.
	Clock clock.PassiveClock

	tracker *loadbalancer.Tracker
	wake    *wakeups

	restoreMu sync.Mutex
	restored  bool
}

// lbOutcome is what a pass decided to show and when to come back.
type lbOutcome struct {
	lb corev1.LoadBalancerStatus
	// cond is the LoadBalancerReady condition; nil removes it.
	cond         *metav1.Condition
	requeueAfter time.Duration
}

// +kubebuilder:rbac:groups=networking.svcplane.io,resources=services,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=networking.svcplane.io,resources=services/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=networking.svcplane.io,resources=services/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch;update

// Reconcile brings one Service's load balancer in line with its spec and the
// eligible nodes.
func (r *LoadBalancerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if err := r.restore(ctx); err != nil {
		return ctrl.Result{}, err
	}
	svc := &v1alpha1.Service{}
	if err := r.Get(ctx, req.NamespacedName, svc); err != nil {
		if apierrors.IsNotFound(err) {
			r.tracker.Forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}

	ours := controllerutil.ContainsFinalizer(svc, v1alpha1.FinalizerLoadBalancerCleanup)
	name, provider, routed := r.Providers.ForClass(svc.Spec.LoadBalancerClass)
	if !svc.DeletionTimestamp.IsZero() || svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		if !ours {
			r.tracker.Forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return r.cleanup(ctx, svc, name, routed)
	}
	if !routed {
		// Another controller's class, or no default provider: not ours to touch. A
		// Service that carries our finalizer is cleaned up when it is deleted or
		// stops being a LoadBalancer, not because the configuration changed.
		return ctrl.Result{}, nil
	}

	alloc := meta.FindStatusCondition(svc.Status.Conditions, ConditionAllocated)
	if alloc == nil || alloc.ObservedGeneration != svc.Generation {
		// The allocation reconciler has not seen this spec yet; its status write
		// brings the Service back here.
		return ctrl.Result{}, nil
	}
	if alloc.Status != metav1.ConditionTrue {
		// Providers need the cluster IPs and node ports, as kube's service
		// controller always has them.
		return r.finish(ctx, svc, lbOutcome{lb: svc.Status.LoadBalancer, cond: &metav1.Condition{
			Status: metav1.ConditionFalse, Reason: ReasonPending,
			Message: "waiting for the Service's cluster IPs and node ports to be allocated: " + alloc.Message,
		}})
	}

	nodeList := &corev1.NodeList{}
	if err := r.List(ctx, nodeList); err != nil {
		return ctrl.Result{}, err
	}
	nodes := loadbalancer.EligibleNodes(nodeList.Items)
	want := loadbalancer.Want{
		UID: svc.UID, Provider: name, Finalized: ours,
		Inputs: loadbalancer.Fingerprint(svc), Nodes: loadbalancer.NodeSetKey(nodes),
	}
	d := r.tracker.Decide(req.NamespacedName, want)
	last := lastStatus(svc, d)
	switch {
	case d.Wait > 0:
		// Nothing changed since the failed call: keep to its backoff.
		return r.finish(ctx, svc, lbOutcome{lb: last, cond: failureCondition(d.Failure), requeueAfter: d.Wait})
	case d.Op == loadbalancer.OpNone:
		return r.finish(ctx, svc, lbOutcome{lb: d.Status, cond: readyCondition()})
	}
	if !ours {
		// Before the provider creates anything, so that nothing can outlive the
		// Service unnoticed.
		if err := r.patchFinalizer(ctx, svc, true); err != nil {
			return r.writeFailed(ctx, err)
		}
	}
	return r.finish(ctx, svc, r.sync(ctx, svc, name, provider, d.Op, want, nodes, last))
}

// sync makes the ensure or update call the tracker asked for, and records its
// outcome there.
func (r *LoadBalancerReconciler) sync(ctx context.Context, svc *v1alpha1.Service, name string, provider loadbalancer.Provider, op loadbalancer.Op, want loadbalancer.Want, nodes []*corev1.Node, last corev1.LoadBalancerStatus) lbOutcome {
	log := logf.FromContext(ctx).WithValues("provider", name)
	key := client.ObjectKeyFromObject(svc)

	if op == loadbalancer.OpUpdate {
		err := provider.UpdateLoadBalancer(ctx, svc.DeepCopy(), nodes)
		if err == nil {
			r.tracker.Succeeded(key, want, last)
			if len(nodes) == 0 {
				r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonUnAvailableLoadBalancer, "UpdateLoadBalancer", "There are no available nodes for LoadBalancer")
			} else {
				r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonUpdatedLoadBalancer, "UpdateLoadBalancer", "Updated load balancer with new hosts")
			}
			return lbOutcome{lb: last, cond: readyCondition()}
		}
		// As kube: an update only fails if the load balancer still exists; if it
		// is gone, ensure it afresh.
		if _, exists, gerr := provider.GetLoadBalancer(ctx, svc.DeepCopy()); gerr != nil || exists {
			return r.failed(ctx, svc, want, op, last, ReasonUpdateLoadBalancerFailed,
				fmt.Errorf("failed to update load balancer with new hosts %v: %w", nodeNames(nodes), err),
				fmt.Sprintf("Error updating load balancer with new hosts %v: %v", nodeNames(nodes), err))
		}
		log.Info("load balancer vanished; ensuring it again", "error", err.Error())
	}

	r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonEnsuringLoadBalancer, "EnsureLoadBalancer", "Ensuring load balancer")
	lb, err := provider.EnsureLoadBalancer(ctx, svc.DeepCopy(), nodes)
	if err == nil && lb == nil {
		err = errors.New("service status returned by EnsureLoadBalancer is nil")
	}
	if err != nil {
		err = fmt.Errorf("failed to ensure load balancer: %w", err)
		return r.failed(ctx, svc, want, loadbalancer.OpEnsure, last, ReasonSyncLoadBalancerFailed, err, "Error syncing load balancer: "+err.Error())
	}
	lb = loadbalancer.DefaultIPMode(lb)
	r.tracker.Succeeded(key, want, *lb)
	log.V(1).Info("ensured load balancer", "loadBalancer", provider.GetLoadBalancerName(svc), "ingress", lb.Ingress)
	r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonEnsuredLoadBalancer, "EnsureLoadBalancer", "Ensured load balancer")
	if len(nodes) == 0 {
		r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonUnAvailableLoadBalancer, "EnsureLoadBalancer", "There are no available nodes for LoadBalancer")
	}
	return lbOutcome{lb: *lb, cond: readyCondition()}
}

// cleanup deletes the load balancer of a Service that is being deleted or is no
// longer a LoadBalancer, clears its status and then removes the finalizer.
func (r *LoadBalancerReconciler) cleanup(ctx context.Context, svc *v1alpha1.Service, routedName string, routed bool) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(svc)
	want := loadbalancer.Want{UID: svc.UID, Inputs: loadbalancer.Fingerprint(svc), Delete: true}
	d := r.tracker.Decide(key, want)
	last := lastStatus(svc, d)
	if d.Wait > 0 {
		return r.finish(ctx, svc, lbOutcome{lb: last, cond: failureCondition(d.Failure), requeueAfter: d.Wait})
	}

	// The provider that served the Service, else the one its class routes to. When
	// neither is known (its class was cleared while the manager was down, or its
	// provider is no longer the default), every registered provider is asked:
	// EnsureLoadBalancerDeleted is idempotent and a no-op for a stranger.
	names := r.Providers.Names()
	if _, ok := r.Providers.Get(d.Provider); ok {
		names = []string{d.Provider}
	} else if routed {
		names = []string{routedName}
	}
	for _, name := range names {
		provider, _ := r.Providers.Get(name)
		_, exists, err := provider.GetLoadBalancer(ctx, svc.DeepCopy())
		if err != nil {
			err = fmt.Errorf("failed to check if load balancer exists before cleanup: %w", err)
			return r.finish(ctx, svc, r.failed(ctx, svc, want, loadbalancer.OpDelete, last, ReasonSyncLoadBalancerFailed, err, "Error syncing load balancer: "+err.Error()))
		}
		if !exists {
			continue
		}
		r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonDeletingLoadBalancer, "DeleteLoadBalancer", "Deleting load balancer")
		if err := provider.EnsureLoadBalancerDeleted(ctx, svc.DeepCopy()); err != nil {
			err = fmt.Errorf("failed to delete load balancer: %w", err)
			return r.finish(ctx, svc, r.failed(ctx, svc, want, loadbalancer.OpDelete, last, ReasonSyncLoadBalancerFailed, err, "Error syncing load balancer: "+err.Error()))
		}
	}

	// Status first, then the finalizer: nothing may show an address once the
	// Service can go.
	if res, err := r.finish(ctx, svc, lbOutcome{}); err != nil || !res.IsZero() {
		return res, client.IgnoreNotFound(err)
	}
	if err := r.patchFinalizer(ctx, svc, false); err != nil {
		return r.writeFailed(ctx, client.IgnoreNotFound(err))
	}
	r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonDeletedLoadBalancer, "DeleteLoadBalancer", "Deleted load balancer")
	r.tracker.Forget(key)
	return ctrl.Result{}, nil
}

// failed records a failed provider call and returns what to show until the next
// one: after the delay a loadbalancer.RetryError asks for, without an event, else
// after the Service's backoff, with a Warning event (reason, note) as kube records
// it. err becomes the condition's message. Whatever the Service had stays: status
// keeps its ingress (last), and the finalizer stays until a delete succeeds.
func (r *LoadBalancerReconciler) failed(ctx context.Context, svc *v1alpha1.Service, want loadbalancer.Want, op loadbalancer.Op, last corev1.LoadBalancerStatus, reason string, err error, note string) lbOutcome {
	log := logf.FromContext(ctx)
	key := client.ObjectKeyFromObject(svc)
	failure := loadbalancer.Failure{Reason: reason, Message: err.Error()}
	var retryAfter time.Duration
	retry, isRetry := errors.AsType[*loadbalancer.RetryError](err)
	if isRetry {
		retryAfter = retry.Delay
		failure = loadbalancer.Failure{Reason: ReasonPending, Message: retry.Err.Error()}
	} else {
		r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, reason, op.Action(), "%s", note)
	}
	delay := r.tracker.Failed(key, want, op, failure, retryAfter)
	if isRetry {
		log.Info("load balancer provider asked to be called again later", "after", delay, "reason", failure.Message)
	} else {
		// The event and the condition tell the user; the log says when the
		// next call is made.
		log.Info("load balancer provider failed; backing off", "error", err.Error(), "retryAfter", delay, "failures", r.tracker.Failures(key, want.UID))
	}
	return lbOutcome{lb: last, cond: failureCondition(failure), requeueAfter: delay}
}

// finish writes the outcome, status.loadBalancer with the LoadBalancerReady
// condition and the EXTERNAL-IP column that shows it, in one patch and only if
// something changed, and asks to come back when the outcome says. The patch carries
// the resourceVersion, so a concurrent write by the allocation reconciler fails it
// rather than being overwritten.
func (r *LoadBalancerReconciler) finish(ctx context.Context, svc *v1alpha1.Service, o lbOutcome) (ctrl.Result, error) {
	status := svc.Status.DeepCopy()
	status.LoadBalancer = o.lb
	if o.cond == nil {
		meta.RemoveStatusCondition(&status.Conditions, ConditionLoadBalancerReady)
	} else {
		c := *o.cond
		c.Type, c.ObservedGeneration = ConditionLoadBalancerReady, svc.Generation
		meta.SetStatusCondition(&status.Conditions, c)
	}
	status.Display = display(&svc.Spec, status)
	result := ctrl.Result{RequeueAfter: o.requeueAfter}
	if equality.Semantic.DeepEqual(status, &svc.Status) {
		return result, nil
	}
	updated := svc.DeepCopy()
	updated.Status = *status
	if err := r.Status().Patch(ctx, updated, client.MergeFromWithOptions(svc, client.MergeFromWithOptimisticLock{})); err != nil {
		return r.writeFailed(ctx, err)
	}
	*svc = *updated
	return result, nil
}

// writeFailed handles a failed write: a lost optimistic-lock race is expected (the
// allocation reconciler writes the same status) and retried quietly, on the
// tracker's memory of what the provider did; anything else is an error.
func (r *LoadBalancerReconciler) writeFailed(ctx context.Context, err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		logf.FromContext(ctx).V(1).Info("the Service changed during this pass; retrying", "error", err.Error())
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return ctrl.Result{}, err
}

// patchFinalizer adds or removes the cleanup finalizer.
func (r *LoadBalancerReconciler) patchFinalizer(ctx context.Context, svc *v1alpha1.Service, add bool) error {
	updated := svc.DeepCopy()
	if add {
		controllerutil.AddFinalizer(updated, v1alpha1.FinalizerLoadBalancerCleanup)
	} else {
		controllerutil.RemoveFinalizer(updated, v1alpha1.FinalizerLoadBalancerCleanup)
	}
	if err := r.Patch(ctx, updated, client.MergeFromWithOptions(svc, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	*svc = *updated
	return nil
}

// lastStatus is the load balancer status to keep while a call fails or waits: what
// the provider last reported in this process, else what the Service already shows.
func lastStatus(svc *v1alpha1.Service, d loadbalancer.Decision) corev1.LoadBalancerStatus {
	if d.Known {
		return d.Status
	}
	return svc.Status.LoadBalancer
}

func readyCondition() *metav1.Condition {
	return &metav1.Condition{Status: metav1.ConditionTrue, Reason: ReasonEnsuredLoadBalancer, Message: "Ensured load balancer"}
}

func failureCondition(f loadbalancer.Failure) *metav1.Condition {
	return &metav1.Condition{Status: metav1.ConditionFalse, Reason: f.Reason, Message: f.Message}
}

func nodeNames(nodes []*corev1.Node) []string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	return names
}

// resync has the Services ensured again soon, whatever they were synced with or
// how long their backoff is. Providers reach it through loadbalancer.Resyncer.
func (r *LoadBalancerReconciler) resync(keys ...types.NamespacedName) {
	r.tracker.Invalidate(keys...)
	objs := make([]client.Object, len(keys))
	for i, key := range keys {
		objs[i] = &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	}
	r.wake.wake(objs...)
}

// restore lets every provider that keeps state rebuild it from the Services it
// served, once, before the first provider call: it runs when this replica starts to
// lead, and every pass waits for it. Services are restored oldest first so that, of
// two claiming the same address, the older keeps it.
func (r *LoadBalancerReconciler) restore(ctx context.Context) error {
	r.restoreMu.Lock()
	defer r.restoreMu.Unlock()
	if r.restored {
		return nil
	}
	for _, load := range r.Preload {
		if err := load(ctx); err != nil {
			return err
		}
	}
	list := &v1alpha1.ServiceList{}
	if err := r.APIReader.List(ctx, list); err != nil {
		return fmt.Errorf("listing Services to restore load balancers: %w", err)
	}
	slices.SortFunc(list.Items, func(a, b v1alpha1.Service) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	byProvider := map[string][]*v1alpha1.Service{}
	byKey := map[types.NamespacedName]*v1alpha1.Service{}
	for i := range list.Items {
		svc := &list.Items[i]
		if !controllerutil.ContainsFinalizer(svc, v1alpha1.FinalizerLoadBalancerCleanup) {
			continue
		}
		if name, _, ok := r.Providers.ForClass(svc.Spec.LoadBalancerClass); ok {
			byProvider[name] = append(byProvider[name], svc.DeepCopy())
			byKey[client.ObjectKeyFromObject(svc)] = svc
		}
	}
	for _, name := range r.Providers.Names() {
		provider, _ := r.Providers.Get(name)
		restorer, ok := provider.(loadbalancer.Restorer)
		if !ok {
			continue
		}
		for _, p := range restorer.Restore(byProvider[name]) {
			if svc, ok := byKey[p.Service]; ok {
				r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, p.Reason, "RestoreLoadBalancer", "%s", p.Message)
			}
		}
		logf.FromContext(ctx).Info("restored load balancer provider state", "provider", name, "services", len(byProvider[name]))
	}
	r.restored = true
	return nil
}

// SetupWithManager registers the reconciler with the manager. It watches Services,
// the eligibility of Nodes and the wake-ups of providers that resync.
func (r *LoadBalancerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Providers == nil {
		return errors.New("LoadBalancerReconciler needs a provider registry")
	}
	r.tracker = loadbalancer.NewTracker(r.MinRetryDelay, r.MaxRetryDelay, r.Clock)
	r.wake = newWakeups()
	for _, name := range r.Providers.Names() {
		provider, _ := r.Providers.Get(name)
		if rs, ok := provider.(loadbalancer.Resyncer); ok {
			rs.SetResync(r.resync)
		}
	}
	// Restore as soon as this replica leads, not at the first Service event: pool
	// usage is only known once the provider knows what is held, and there may be
	// no LoadBalancer Service to reconcile for a long time.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		_ = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
			if err := r.restore(ctx); err != nil {
				logf.FromContext(ctx).Error(err, "restoring load balancer provider state; will retry")
				return false, nil
			}
			return true, nil
		})
		return nil
	})); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Service{}, builder.WithPredicates(predicate.NewPredicateFuncs(isLoadBalancerOrOurs))).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.servicesOfNodes), builder.WithPredicates(nodeSetChanged)).
		WatchesRawSource(r.wake.source()).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Named("loadbalancer").
		Complete(r)
}

// isLoadBalancerOrOurs filters the Service events worth a pass: LoadBalancers, and
// Services that still carry the finalizer.
func isLoadBalancerOrOurs(obj client.Object) bool {
	svc, ok := obj.(*v1alpha1.Service)
	return ok && (svc.Spec.Type == corev1.ServiceTypeLoadBalancer || controllerutil.ContainsFinalizer(svc, v1alpha1.FinalizerLoadBalancerCleanup))
}

// nodeSetChanged passes the Node events that can change the set of eligible nodes,
// and not the status updates every kubelet sends every few seconds.
var nodeSetChanged = predicate.Funcs{
	CreateFunc: func(e event.CreateEvent) bool { return eligibleNode(e.Object) },
	DeleteFunc: func(e event.DeleteEvent) bool { return eligibleNode(e.Object) },
	UpdateFunc: func(e event.UpdateEvent) bool {
		return eligibleNode(e.ObjectOld) != eligibleNode(e.ObjectNew)
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}

func eligibleNode(obj client.Object) bool {
	node, ok := obj.(*corev1.Node)
	return ok && loadbalancer.Eligible(node)
}

// servicesOfNodes queues every Service this reconciler serves, for a change in the
// node set: each compares the new set with the one its load balancer has.
func (r *LoadBalancerReconciler) servicesOfNodes(ctx context.Context, _ client.Object) []reconcile.Request {
	list := &v1alpha1.ServiceList{}
	if err := r.List(ctx, list); err != nil {
		logf.FromContext(ctx).Error(err, "listing Services for a node change")
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		svc := &list.Items[i]
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && controllerutil.ContainsFinalizer(svc, v1alpha1.FinalizerLoadBalancerCleanup) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(svc)})
		}
	}
	return out
}

var _ reconcile.Reconciler = &LoadBalancerReconciler{}
