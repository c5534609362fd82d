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
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/internal/endpoints"
)

// zoneLabel is the well-known label that names a Node's zone.
const zoneLabel = corev1.LabelTopologyZone

// EndpointSliceReconciler maintains the EndpointSlices of every svcplane Service with
// a selector. The decisions are endpoints.Compute's; this is the glue that lists what
// it needs from the cache, applies the plan, and guards against acting on a cache that
// has not yet seen its own last writes.
type EndpointSliceReconciler struct {
	client.Client
	// MaxEndpointsPerSlice bounds a slice (kube's --max-endpoints-per-slice).
	MaxEndpointsPerSlice int
	// BatchPeriod delays the processing of pod changes so that a burst of them
	// collapses into one write (kube's --endpointslice-updates-batch-period).
	BatchPeriod time.Duration
	// MaxConcurrentReconciles bounds parallel reconciles.
	MaxConcurrentReconciles int
	// Recorder receives the Warning events of failed writes; required.
	Recorder events.EventRecorder

	expectations sliceExpectations
	triggers     endpoints.TriggerTimes
}

// ReasonFailedToUpdateEndpointSlices is the reason of the Warning event of a Service
// whose slices could not be written, kube's.
const ReasonFailedToUpdateEndpointSlices = "FailedToUpdateEndpointSlices"

// cacheLagRetry is how soon a sync that lost a race with the cache (a conflict, a
// slice name already taken) runs again: the watch events that settle it usually
// arrive within milliseconds, and a second lost race simply waits again.
const cacheLagRetry = 100 * time.Millisecond

// +kubebuilder:rbac:groups=networking.svcplane.io,resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch;create;update;patch;delete;deletecollection

// Reconcile makes one Service's managed EndpointSlices list exactly the pods it
// selects.
func (r *EndpointSliceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	key := req.String()

	existing, err := r.managedSlices(ctx, req.Namespace, req.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	svc := &v1alpha1.Service{}
	if err := r.Get(ctx, req.NamespacedName, svc); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// No garbage collector may be running (a bare API server): the slices of a
		// Service that is gone are deleted here, whatever their owner references say.
		for _, s := range existing {
			if err := client.IgnoreNotFound(r.Delete(ctx, s)); err != nil {
				return ctrl.Result{}, err
			}
		}
		r.expectations.forget(key)
		r.triggers.Forget(key)
		return ctrl.Result{}, nil
	}
	if !svc.DeletionTimestamp.IsZero() {
		// Endpoints stay while a finalizer (a load balancer being torn down) runs.
		return ctrl.Result{}, nil
	}
	if !r.expectations.satisfied(key, existing) {
		// The cache has not caught up with this controller's own last writes; acting
		// now could duplicate a slice. The slice events that catch it up requeue the
		// Service; this requeue is only a backstop.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}

	var pods []*corev1.Pod
	zones := map[string]string{}
	if endpoints.Selects(svc) {
		// The index narrows the candidates to the pods that carry one of the
		// selector's labels, instead of matching every pod in the namespace.
		list := &corev1.PodList{}
		if err := r.List(ctx, list, client.InNamespace(svc.Namespace),
			client.MatchingFields{podLabelIndex: selectorIndexKey(svc.Spec.Selector)},
			client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(svc.Spec.Selector)}); err != nil {
			return ctrl.Result{}, err
		}
		for i := range list.Items {
			pod := &list.Items[i]
			pods = append(pods, pod)
			if name := pod.Spec.NodeName; name != "" {
				if _, seen := zones[name]; !seen {
					if zone, ok, err := r.nodeZone(ctx, name); err != nil {
						return ctrl.Result{}, err
					} else if ok {
						zones[name] = zone
					}
				}
			}
		}
	}

	trigger, commit := r.triggers.Next(key, svc, pods)
	plan := endpoints.Compute(endpoints.Input{
		Service:              svc,
		Pods:                 pods,
		NodeZones:            zones,
		Existing:             existing,
		MaxEndpointsPerSlice: r.MaxEndpointsPerSlice,
		TriggerTime:          trigger,
	})
	if plan.Writes() == 0 {
		commit()
		return ctrl.Result{}, nil
	}
	log.V(1).Info("writing EndpointSlices", "create", len(plan.Create), "update", len(plan.Update), "delete", len(plan.Delete))
	if err := r.apply(ctx, key, plan); err != nil {
		// A conflict or a name taken means the cache was behind: the retry, with
		// the events that catch the cache up, settles it without alarming anyone,
		// so it is logged at debug level rather than returned as a reconciler error.
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			log.V(1).Info("EndpointSlices changed since the cache saw them; retrying", "error", err.Error())
			return ctrl.Result{RequeueAfter: cacheLagRetry}, nil
		}
		r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonFailedToUpdateEndpointSlices, "UpdateEndpointSlices",
			"Error updating Endpoint Slices for Service %s: %v", key, err)
		return ctrl.Result{}, err
	}
	commit()
	return ctrl.Result{}, nil
}

// apply makes the plan's writes, creates and updates before deletes so that a
// Service never shows fewer endpoints than it has while its slices are being
// rearranged, and expects each write to show up in the cache.
func (r *EndpointSliceReconciler) apply(ctx context.Context, key string, plan endpoints.Plan) error {
	for _, s := range plan.Create {
		if err := r.Create(ctx, s); err != nil {
			return fmt.Errorf("creating EndpointSlice: %w", err)
		}
		r.expectations.expect(key, s.Name, s.Generation)
	}
	for _, s := range plan.Update {
		if err := r.Update(ctx, s); err != nil {
			return fmt.Errorf("updating EndpointSlice %s: %w", s.Name, err)
		}
		r.expectations.expect(key, s.Name, s.Generation)
	}
	for _, s := range plan.Delete {
		if err := client.IgnoreNotFound(r.Delete(ctx, s)); err != nil {
			return fmt.Errorf("deleting EndpointSlice %s: %w", s.Name, err)
		}
		r.expectations.expect(key, s.Name, deletedGeneration)
	}
	return nil
}

// managedSlices lists the slices svcplane manages for one Service.
func (r *EndpointSliceReconciler) managedSlices(ctx context.Context, namespace, name string) ([]*discoveryv1.EndpointSlice, error) {
	list := &discoveryv1.EndpointSliceList{}
	if err := r.List(ctx, list, client.InNamespace(namespace), client.MatchingFields{sliceServiceIndex: name}, client.MatchingLabels{
		v1alpha1.LabelServiceName: name,
		v1alpha1.LabelManagedBy:   v1alpha1.ManagedByValue,
	}); err != nil {
		return nil, err
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}

func (r *EndpointSliceReconciler) nodeZone(ctx context.Context, name string) (string, bool, error) {
	node := &corev1.Node{}
	if err := r.Get(ctx, types.NamespacedName{Name: name}, node); err != nil {
		if apierrors.IsNotFound(err) {
			return "", false, nil
		}
		return "", false, err
	}
	return node.Labels[zoneLabel], true, nil
}

// Cache indexes of the reconciler: every reconcile lists one Service's pods and
// slices, and every pod event looks for the Services selecting the pod; matching
// each pod, slice or Service of the namespace instead made most of the manager's
// CPU time under pod churn.
const (
	// podLabelIndex indexes pods by each of their labels, as "key=value".
	podLabelIndex = "endpointslice.svcplane.io/pod-label"
	// serviceSelectorIndex indexes the Services with endpoints by each label of
	// their selector, as "key=value", to find the Services a pod change concerns.
	serviceSelectorIndex = "endpointslice.svcplane.io/selector-label"
	// sliceServiceIndex indexes the slices svcplane manages by their Service's name.
	sliceServiceIndex = "endpointslice.svcplane.io/service-name"
)

func podLabelPairs(obj client.Object) []string {
	l := obj.GetLabels()
	out := make([]string, 0, len(l))
	for k, v := range l {
		out = append(out, k+"="+v)
	}
	return out
}

// selectorIndexKey is the podLabelIndex key of one of selector's labels, the same one
// every time: the pods it finds are a superset of those the selector matches.
func selectorIndexKey(selector map[string]string) string {
	key := ""
	for k := range selector {
		if key == "" || k < key {
			key = k
		}
	}
	return key + "=" + selector[key]
}

// selectorPairs are the serviceSelectorIndex keys of a Service with endpoints.
func selectorPairs(obj client.Object) []string {
	svc := obj.(*v1alpha1.Service)
	if !endpoints.Selects(svc) {
		return nil
	}
	out := make([]string, 0, len(svc.Spec.Selector))
	for k, v := range svc.Spec.Selector {
		out = append(out, k+"="+v)
	}
	return out
}

// selectsLabels reports whether a non-empty selector matches a label set.
func selectsLabels(selector, set map[string]string) bool {
	for k, v := range selector {
		if got, ok := set[k]; !ok || got != v {
			return false
		}
	}
	return len(selector) > 0
}

func managedSliceService(obj client.Object) []string {
	l := obj.GetLabels()
	if l[v1alpha1.LabelManagedBy] != v1alpha1.ManagedByValue || l[v1alpha1.LabelServiceName] == "" {
		return nil
	}
	return []string{l[v1alpha1.LabelServiceName]}
}

// SetupWithManager registers the reconciler, its cache indexes and its watches with
// the manager.
func (r *EndpointSliceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.expectations = sliceExpectations{byService: map[string]map[string]expectation{}}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, podLabelIndex, podLabelPairs); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Service{}, serviceSelectorIndex, selectorPairs); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &discoveryv1.EndpointSlice{}, sliceServiceIndex, managedSliceService); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Service{}).
		Watches(&corev1.Pod{}, r.podHandler(), builder.WithPredicates(podChanged())).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(sliceToService)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.allSelectingServices), builder.WithPredicates(zoneChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Named("endpointslice").
		Complete(r)
}

// podHandler queues the Services that select a pod, before and after a change, after
// BatchPeriod.
func (r *EndpointSliceReconciler) podHandler() handler.EventHandler {
	enqueue := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], pods ...client.Object) {
		queued := map[string]bool{}
		for _, pod := range pods {
			// Only Services whose selector has one of the pod's labels can select
			// it; the index finds them without looking at every Service.
			for _, pair := range podLabelPairs(pod) {
				services := &v1alpha1.ServiceList{}
				// Read-only: the cache's own objects, not copies.
				if err := r.List(ctx, services, client.InNamespace(pod.GetNamespace()),
					client.MatchingFields{serviceSelectorIndex: pair}, client.UnsafeDisableDeepCopy); err != nil {
					logf.FromContext(ctx).Error(err, "listing Services for a pod change")
					return
				}
				for i := range services.Items {
					svc := &services.Items[i]
					if queued[svc.Name] || !selectsLabels(svc.Spec.Selector, pod.GetLabels()) {
						continue
					}
					queued[svc.Name] = true
					req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(svc)}
					if r.BatchPeriod > 0 {
						q.AddAfter(req, r.BatchPeriod)
					} else {
						q.Add(req)
					}
				}
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object)
		},
	}
}

// podChanged passes pod updates that can change an endpoint: labels, addresses,
// readiness, phase, deletion, node, hostname.
func podChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*corev1.Pod)
		cur, okNew := e.ObjectNew.(*corev1.Pod)
		if !okOld || !okNew {
			return true
		}
		return !labels.Equals(old.Labels, cur.Labels) ||
			old.Status.PodIP != cur.Status.PodIP || len(old.Status.PodIPs) != len(cur.Status.PodIPs) ||
			podReady(old) != podReady(cur) ||
			old.Status.Phase != cur.Status.Phase ||
			(old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) ||
			old.Spec.NodeName != cur.Spec.NodeName ||
			old.Spec.Hostname != cur.Spec.Hostname || old.Spec.Subdomain != cur.Spec.Subdomain
	}}
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// zoneChanged passes Node creations, deletions and zone label changes; a Node's
// frequent status updates are dropped.
func zoneChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetLabels()[zoneLabel] != e.ObjectNew.GetLabels()[zoneLabel]
	}}
}

func sliceToService(_ context.Context, obj client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, name := range managedSliceService(obj) {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: name}})
	}
	return out
}

// allSelectingServices queues every Service with a selector: a Node's zone changed
// or a Node came or went, which is rare.
func (r *EndpointSliceReconciler) allSelectingServices(ctx context.Context, _ client.Object) []reconcile.Request {
	services := &v1alpha1.ServiceList{}
	if err := r.List(ctx, services, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "listing Services for a Node change")
		return nil
	}
	var out []reconcile.Request
	for i := range services.Items {
		if endpoints.Selects(&services.Items[i]) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&services.Items[i])})
		}
	}
	return out
}

// deletedGeneration marks the expectation that a slice is gone.
const deletedGeneration = -1

// expectationTTL bounds how long an unmet expectation holds a Service back: a slice
// that someone else deleted or rewrote meanwhile must not block it forever.
const expectationTTL = 10 * time.Second

type expectation struct {
	generation int64
	at         time.Time
}

// sliceExpectations remembers this controller's own recent writes per Service, so
// that a reconcile can tell when the cache has not caught up with them yet (kube's
// EndpointSlice tracker does the same with generations).
type sliceExpectations struct {
	mu        sync.Mutex
	byService map[string]map[string]expectation
}

func (e *sliceExpectations) expect(key, slice string, generation int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byService[key] == nil {
		e.byService[key] = map[string]expectation{}
	}
	e.byService[key][slice] = expectation{generation: generation, at: time.Now()}
}

func (e *sliceExpectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.byService, key)
}

// satisfied reports whether the cached slices reflect every recent write for the
// Service, dropping the expectations that are met or expired.
func (e *sliceExpectations) satisfied(key string, cached []*discoveryv1.EndpointSlice) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	pending := e.byService[key]
	if len(pending) == 0 {
		return true
	}
	generations := make(map[string]int64, len(cached))
	for _, s := range cached {
		generations[s.Name] = s.Generation
	}
	for name, want := range pending {
		got, present := generations[name]
		met := (want.generation == deletedGeneration && !present) ||
			(want.generation != deletedGeneration && present && got >= want.generation)
		if met || time.Since(want.at) > expectationTTL {
			delete(pending, name)
		}
	}
	if len(pending) == 0 {
		delete(e.byService, key)
		return true
	}
	return false
}
