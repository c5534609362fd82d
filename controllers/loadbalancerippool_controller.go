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
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/loadbalancer/ippool"
)

// Reasons of a LoadBalancerIPPool's Overlapping condition.
const (
	ReasonOverlappingRanges = "OverlappingRanges"
	ReasonNoOverlap         = "NoOverlap"
)

// LoadBalancerIPPoolReconciler feeds LoadBalancerIPPools to the ippool provider and
// writes back what the provider makes of them: how many addresses are used and free,
// whether every entry is valid, and which other pools share addresses. The decisions
// are the provider's; this is glue.
type LoadBalancerIPPoolReconciler struct {
	client.Client
	// APIReader reads straight from the API server for Load, which runs before the
	// cache may have synced.
	APIReader client.Reader
	Pools     *ippool.Provider

	mu    sync.Mutex
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
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
		// Until the Services' addresses are restored the counts mean nothing; the
		// restore queues every pool again.
		return ctrl.Result{}, nil
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
	return ctrl.Result{}, r.Status().Patch(ctx, updated, client.MergeFromWithOptions(pool, client.MergeFromWithOptimisticLock{}))
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

// poolsChanged queues the pools whose use changed, for their status.
func (r *LoadBalancerIPPoolReconciler) poolsChanged(names ...string) {
	r.mu.Lock()
	queue := r.queue
	r.mu.Unlock()
	if queue == nil {
		// Not started: every pool is reconciled when it starts.
		return
	}
	for _, name := range names {
		queue.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
	}
}

// SetupWithManager registers the reconciler with the manager.
func (r *LoadBalancerIPPoolReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Pools == nil {
		return errors.New("LoadBalancerIPPoolReconciler needs the ippool provider")
	}
	r.Pools.SetPoolsChanged(r.poolsChanged)
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.LoadBalancerIPPool{}).
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.queue = q
			return nil
		})).
		Named("loadbalancerippool").
		Complete(r)
}

var _ reconcile.Reconciler = &LoadBalancerIPPoolReconciler{}
