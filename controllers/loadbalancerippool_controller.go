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
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/loadbalancer/ippool"
)

// Reasons of a LoadBalancerIPPool's Overlapping condition.
const (
	ReasonOverlappingRanges = "OverlappingRanges"
	ReasonNoOverlap         = "NoOverlap"
)

// restoreWait is how often a pool's status is tried again while the load balancer
// reconciler has not yet restored which addresses Services hold.
const restoreWait = time.Second

// poolConflictRetry is how soon a pool status write that lost an optimistic-lock race
// is tried again; the pool's own update event usually comes first.
const poolConflictRetry = 100 * time.Millisecond

// LoadBalancerIPPoolReconciler feeds LoadBalancerIPPools to the ippool provider and
// writes back what the provider makes of them: how many addresses are used and free,
// whether every entry is valid, and which other pools share addresses. The decisions
// are the provider's; this is glue. A pool's use changes when a Service's
// status.loadBalancer takes or gives up one of its addresses, and its overlaps when
// another pool changes: both are watches, mapped to the pools concerned.
type LoadBalancerIPPoolReconciler struct {
	client.Client
	// APIReader reads straight from the API server for Load, which runs before the
	// cache may have synced.
	APIReader client.Reader
	Pools     *ippool.Provider
}

// +kubebuilder:rbac:groups=networking.svcplane.io,resources=loadbalancerippools,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.svcplane.io,resources=loadbalancerippools/status,verbs=get;update;patch

// Reconcile hands one pool to the provider and records its status.
func (r *LoadBalancerIPPoolReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pool := &v1alpha1.LoadBalancerIPPool{}
	if err := r.Get(ctx, req.NamespacedName, pool); err != nil {
		if apierrors.IsNotFound(err) {
			r.Pools.DeletePool(req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !pool.DeletionTimestamp.IsZero() {
		// Someone else's finalizer holds the object; for the provider it is gone.
		r.Pools.DeletePool(pool.Name)
		return ctrl.Result{}, nil
	}
	r.Pools.SetPool(pool)
	if !r.Pools.Restored() {
		// Until the Services' addresses are restored the counts mean nothing.
		return ctrl.Result{RequeueAfter: restoreWait}, nil
	}
	st, ok := r.Pools.Status(pool.Name)
	if !ok {
		return ctrl.Result{}, nil
	}

	status := pool.Status.DeepCopy()
	status.Used, status.Free = st.Used, st.Free
	status.ObservedGeneration = pool.Generation
	valid := metav1.Condition{Type: v1alpha1.PoolConditionValid, Status: metav1.ConditionTrue, Reason: st.ValidReason, ObservedGeneration: pool.Generation,
		Message: fmt.Sprintf("every entry is used as written: %d addresses", st.Used+st.Free)}
	if st.ValidReason != ippool.ReasonValid {
		valid.Status, valid.Message = metav1.ConditionFalse, strings.Join(st.Problems, "; ")
	}
	meta.SetStatusCondition(&status.Conditions, valid)
	overlap := metav1.Condition{Type: v1alpha1.PoolConditionOverlapping, Status: metav1.ConditionFalse, Reason: ReasonNoOverlap, ObservedGeneration: pool.Generation,
		Message: "shares no address with another LoadBalancerIPPool"}
	if len(st.Overlaps) > 0 {
		overlap.Status, overlap.Reason = metav1.ConditionTrue, ReasonOverlappingRanges
		noun := "LoadBalancerIPPool"
		if len(st.Overlaps) > 1 {
			noun += "s"
		}
		overlap.Message = fmt.Sprintf("shares addresses with %s %s; each address is still handed out at most once", noun, strings.Join(st.Overlaps, ", "))
	}
	meta.SetStatusCondition(&status.Conditions, overlap)

	if equality.Semantic.DeepEqual(status, &pool.Status) {
		return ctrl.Result{}, nil
	}
	updated := pool.DeepCopy()
	updated.Status = *status
	if err := r.Status().Patch(ctx, updated, client.MergeFromWithOptions(pool, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			// A pass on a stale copy (the cache had not seen the last status write
			// yet, or the pool was edited): expected, so retried quietly on fresh data
			// instead of returned as a reconciler error with a stack trace.
			logf.FromContext(ctx).V(1).Info("LoadBalancerIPPool changed during this pass; retrying", "error", err.Error())
			return ctrl.Result{RequeueAfter: poolConflictRetry}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// Load hands every pool to the provider, read from the API server, so that the
// provider knows all pools before the LoadBalancerReconciler first ensures a load
// balancer (wire it as one of its Preload functions).
func (r *LoadBalancerIPPoolReconciler) Load(ctx context.Context) error {
	list := &v1alpha1.LoadBalancerIPPoolList{}
	if err := r.APIReader.List(ctx, list); err != nil {
		return fmt.Errorf("listing LoadBalancerIPPools: %w", err)
	}
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp.IsZero() {
			r.Pools.SetPool(&list.Items[i])
		}
	}
	return nil
}

// SetupWithManager registers the reconciler with the manager.
func (r *LoadBalancerIPPoolReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Pools == nil {
		return errors.New("LoadBalancerIPPoolReconciler needs the ippool provider")
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.LoadBalancerIPPool{}).
		Watches(&v1alpha1.LoadBalancerIPPool{}, r.otherPools()).
		Watches(&v1alpha1.Service{}, r.poolsOfIngress()).
		Named("loadbalancerippool").
		Complete(r)
}

// otherPools queues every pool when one is created, changes its spec or is deleted,
// since their overlaps may change. The provider learns of the change first, here,
// so that those passes see it whatever order they run in.
func (r *LoadBalancerIPPoolReconciler) otherPools() handler.TypedEventHandler[client.Object, reconcile.Request] {
	queueAll := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		list := &v1alpha1.LoadBalancerIPPoolList{}
		if err := r.List(ctx, list); err != nil {
			logf.FromContext(ctx).Error(err, "listing LoadBalancerIPPools for a pool change")
			return
		}
		for i := range list.Items {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
		}
	}
	set := func(obj client.Object) {
		if pool, ok := obj.(*v1alpha1.LoadBalancerIPPool); ok {
			if pool.DeletionTimestamp.IsZero() {
				r.Pools.SetPool(pool)
			} else {
				r.Pools.DeletePool(pool.Name)
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			set(e.Object)
			queueAll(ctx, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() || e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero() {
				set(e.ObjectNew)
				queueAll(ctx, q)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.Pools.DeletePool(e.Object.GetName())
			queueAll(ctx, q)
		},
	}
}

// poolsOfIngress queues the pools that contain an address a Service's
// status.loadBalancer took or gave up: the provider changed their use before the
// load balancer reconciler wrote that status.
func (r *LoadBalancerIPPoolReconciler) poolsOfIngress() handler.TypedEventHandler[client.Object, reconcile.Request] {
	queue := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], statuses ...*corev1.LoadBalancerStatus) {
		var ips []netip.Addr
		for _, st := range statuses {
			for _, in := range st.Ingress {
				if ip, err := netip.ParseAddr(in.IP); err == nil {
					ips = append(ips, ip.Unmap())
				}
			}
		}
		if len(ips) == 0 {
			return
		}
		for _, name := range r.Pools.PoolsContaining(ips...) {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
		}
	}
	lbOf := func(obj client.Object) *corev1.LoadBalancerStatus {
		if svc, ok := obj.(*v1alpha1.Service); ok {
			return &svc.Status.LoadBalancer
		}
		return &corev1.LoadBalancerStatus{}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			queue(q, lbOf(e.Object))
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if old, cur := lbOf(e.ObjectOld), lbOf(e.ObjectNew); !equality.Semantic.DeepEqual(old, cur) {
				queue(q, old, cur)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			queue(q, lbOf(e.Object))
		},
	}
}

var _ reconcile.Reconciler = &LoadBalancerIPPoolReconciler{}
