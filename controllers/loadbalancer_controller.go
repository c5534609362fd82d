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
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
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
	"k8s.io/client-go/util/workqueue"
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
	"sigs.k8s.io/controller-runtime/pkg/source"

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

// The retry delays of kube's service controller: a provider error is retried after
// 5 s, doubling up to 5 min.
const (
	defaultMinRetryDelay = 5 * time.Second
	defaultMaxRetryDelay = 5 * time.Minute
)

// LoadBalancerReconciler gives LoadBalancer Services an external load balancer from
// the provider its Registry routes them to, as kube's service controller does for a
// cloud provider: finalizer first, then EnsureLoadBalancer (or UpdateLoadBalancer
// when only the eligible nodes changed), status.loadBalancer and the
// LoadBalancerReady condition written once and only when they change; and on deletion
// or when the Service stops being a LoadBalancer, EnsureLoadBalancerDeleted, status
// cleared, finalizer removed. Provider errors back off per Service.
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

	mu       sync.Mutex
	services map[types.NamespacedName]*lbState
	queue    workqueue.TypedRateLimitingInterface[reconcile.Request]

	restoreMu sync.Mutex
	restored  bool
}

// lbState is what the reconciler remembers of one Service between passes. It only
// saves provider calls: after a restart every Service is ensured again, as kube does.
type lbState struct {
	uid types.UID
	// provider served the Service last; cleanup goes to it.
	provider string

	// synced is true after a successful ensure for inputs (a fingerprint of what
	// the provider sees of the Service) and nodes (loadbalancer.NodeSetKey); status
	// is what the provider reported.
	synced bool
	inputs uint64
	nodes  string
	status corev1.LoadBalancerStatus

	// failures counts consecutive failed calls; retryAt is when the call that
	// failed (op, with retryInputs and retryNodes) may be made again.
	failures    int
	retryAt     time.Time
	retryOp     lbOp
	retryInputs uint64
	retryNodes  string
	// cond is the LoadBalancerReady condition while the Service waits for a retry.
	cond metav1.Condition
}

type lbOp int

const (
	opNone lbOp = iota
	opEnsure
	opUpdate
	opDelete
)

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
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	ours := controllerutil.ContainsFinalizer(svc, v1alpha1.FinalizerLoadBalancerCleanup)
	name, provider, routed := r.Providers.ForClass(svc.Spec.LoadBalancerClass)
	if !svc.DeletionTimestamp.IsZero() || svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		if !ours {
			r.forget(req.NamespacedName)
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
	return r.ensure(ctx, svc, name, provider, ours)
}

// ensure creates or updates the Service's load balancer.
func (r *LoadBalancerReconciler) ensure(ctx context.Context, svc *v1alpha1.Service, name string, provider loadbalancer.Provider, ours bool) (ctrl.Result, error) {
	log := logf.FromContext(ctx).WithValues("provider", name)
	key := client.ObjectKeyFromObject(svc)

	alloc := meta.FindStatusCondition(svc.Status.Conditions, ConditionAllocated)
	if alloc == nil || alloc.ObservedGeneration != svc.Generation {
		// The allocation reconciler has not seen this spec yet; its status write
		// brings the Service back here.
		return ctrl.Result{}, nil
	}
	if alloc.Status != metav1.ConditionTrue {
		// Providers need the cluster IPs and node ports, as kube's service
		// controller always has them.
		return ctrl.Result{}, r.patchStatus(ctx, svc, svc.Status.LoadBalancer, &metav1.Condition{
			Status: metav1.ConditionFalse, Reason: ReasonPending,
			Message: "waiting for the Service's cluster IPs and node ports to be allocated: " + alloc.Message,
		})
	}

	nodeList := &corev1.NodeList{}
	if err := r.List(ctx, nodeList); err != nil {
		return ctrl.Result{}, err
	}
	nodes := loadbalancer.EligibleNodes(nodeList.Items)
	nodeSet := loadbalancer.NodeSetKey(nodes)
	inputs := fingerprint(svc)
	st := r.state(key, svc.UID)

	op := opEnsure
	if ours && st.synced && st.provider == name && st.inputs == inputs {
		op = opNone
		if st.nodes != nodeSet {
			op = opUpdate
		}
	}
	if op == opNone {
		return ctrl.Result{}, r.patchStatus(ctx, svc, st.status, readyCondition())
	}
	if wait := time.Until(st.retryAt); wait > 0 && st.retryOp == op && st.retryInputs == inputs && st.retryNodes == nodeSet {
		// Nothing changed since the failed call: keep to its backoff.
		return ctrl.Result{RequeueAfter: wait}, r.patchStatus(ctx, svc, r.lastStatus(svc, st), &st.cond)
	}
	if !ours {
		// Before the provider creates anything, so that nothing can outlive the
		// Service unnoticed.
		if err := r.patchFinalizer(ctx, svc, true); err != nil {
			return ctrl.Result{}, err
		}
	}

	if op == opUpdate {
		err := provider.UpdateLoadBalancer(ctx, svc.DeepCopy(), nodes)
		if err == nil {
			r.succeeded(key, svc.UID, name, inputs, nodeSet, st.status)
			if len(nodes) == 0 {
				r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonUnAvailableLoadBalancer, "UpdateLoadBalancer", "There are no available nodes for LoadBalancer")
			} else {
				r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonUpdatedLoadBalancer, "UpdateLoadBalancer", "Updated load balancer with new hosts")
			}
			return ctrl.Result{}, r.patchStatus(ctx, svc, st.status, readyCondition())
		}
		// As kube: an update only fails if the load balancer still exists; if it
		// is gone, ensure it afresh.
		if _, exists, gerr := provider.GetLoadBalancer(ctx, svc.DeepCopy()); gerr != nil || exists {
			return r.failed(ctx, svc, st, op, inputs, nodeSet, ReasonUpdateLoadBalancerFailed,
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
		return r.syncFailed(ctx, svc, st, opEnsure, inputs, nodeSet, fmt.Errorf("failed to ensure load balancer: %w", err))
	}
	lb = defaultIPMode(lb)
	r.succeeded(key, svc.UID, name, inputs, nodeSet, *lb)
	log.V(1).Info("ensured load balancer", "loadBalancer", provider.GetLoadBalancerName(svc), "ingress", lb.Ingress)
	r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonEnsuredLoadBalancer, "EnsureLoadBalancer", "Ensured load balancer")
	if len(nodes) == 0 {
		r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonUnAvailableLoadBalancer, "EnsureLoadBalancer", "There are no available nodes for LoadBalancer")
	}
	return ctrl.Result{}, r.patchStatus(ctx, svc, *lb, readyCondition())
}

// cleanup deletes the load balancer of a Service that is being deleted or is no
// longer a LoadBalancer, clears its status and then removes the finalizer.
func (r *LoadBalancerReconciler) cleanup(ctx context.Context, svc *v1alpha1.Service, routedName string, routed bool) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(svc)
	inputs := fingerprint(svc)
	st := r.state(key, svc.UID)
	if wait := time.Until(st.retryAt); wait > 0 && st.retryOp == opDelete && st.retryInputs == inputs {
		return ctrl.Result{RequeueAfter: wait}, r.patchStatus(ctx, svc, svc.Status.LoadBalancer, &st.cond)
	}

	// The provider that served the Service, else the one its class routes to. When
	// neither is known (its class was cleared while the manager was down, or its
	// provider is no longer the default), every registered provider is asked:
	// EnsureLoadBalancerDeleted is idempotent and a no-op for a stranger.
	names := r.Providers.Names()
	if _, ok := r.Providers.Get(st.provider); ok {
		names = []string{st.provider}
	} else if routed {
		names = []string{routedName}
	}
	for _, name := range names {
		provider, _ := r.Providers.Get(name)
		_, exists, err := provider.GetLoadBalancer(ctx, svc.DeepCopy())
		if err != nil {
			return r.syncFailed(ctx, svc, st, opDelete, inputs, "", fmt.Errorf("failed to check if load balancer exists before cleanup: %w", err))
		}
		if !exists {
			continue
		}
		r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonDeletingLoadBalancer, "DeleteLoadBalancer", "Deleting load balancer")
		if err := provider.EnsureLoadBalancerDeleted(ctx, svc.DeepCopy()); err != nil {
			return r.syncFailed(ctx, svc, st, opDelete, inputs, "", fmt.Errorf("failed to delete load balancer: %w", err))
		}
	}

	if err := r.patchStatus(ctx, svc, corev1.LoadBalancerStatus{}, nil); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if err := r.patchFinalizer(ctx, svc, false); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonDeletedLoadBalancer, "DeleteLoadBalancer", "Deleted load balancer")
	r.forget(key)
	return ctrl.Result{}, nil
}

// syncFailed is failed for ensure and delete, with kube's SyncLoadBalancerFailed
// event.
func (r *LoadBalancerReconciler) syncFailed(ctx context.Context, svc *v1alpha1.Service, st lbState, op lbOp, inputs uint64, nodeSet string, err error) (ctrl.Result, error) {
	return r.failed(ctx, svc, st, op, inputs, nodeSet, ReasonSyncLoadBalancerFailed, err, "Error syncing load balancer: "+err.Error())
}

// failed records a failed provider call and schedules the next one: after the
// delay a loadbalancer.RetryError asks for, without an event, else after the
// Service's backoff, with a Warning event (reason, note) as kube records it. err
// becomes the condition's message.
func (r *LoadBalancerReconciler) failed(ctx context.Context, svc *v1alpha1.Service, st lbState, op lbOp, inputs uint64, nodeSet, reason string, err error, note string) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	key := client.ObjectKeyFromObject(svc)
	cond := metav1.Condition{Status: metav1.ConditionFalse, Reason: reason, Message: err.Error()}
	var delay time.Duration
	if retry, ok := errors.AsType[*loadbalancer.RetryError](err); ok {
		delay = retry.Delay
		cond.Reason, cond.Message = ReasonPending, retry.Err.Error()
		log.Info("load balancer provider asked to be called again later", "after", delay, "reason", retry.Err.Error())
	} else {
		delay = r.backoff(st.failures + 1)
		r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, reason, actionOf(op), "%s", note)
		log.Error(err, "load balancer provider failed; backing off", "retryAfter", delay, "failures", st.failures+1)
	}

	r.mu.Lock()
	s := r.entry(key, svc.UID)
	if cond.Reason != ReasonPending {
		s.failures++
	}
	s.retryAt, s.retryOp, s.retryInputs, s.retryNodes, s.cond = time.Now().Add(delay), op, inputs, nodeSet, cond
	r.mu.Unlock()

	// Whatever the Service had stays: status keeps its ingress, and the finalizer
	// stays until a delete succeeds.
	return ctrl.Result{RequeueAfter: delay}, r.patchStatus(ctx, svc, r.lastStatus(svc, st), &cond)
}

// backoff returns the delay after the n-th consecutive failure: MinRetryDelay
// doubled n-1 times, at most MaxRetryDelay.
func (r *LoadBalancerReconciler) backoff(n int) time.Duration {
	lo, hi := cmp.Or(r.MinRetryDelay, defaultMinRetryDelay), cmp.Or(r.MaxRetryDelay, defaultMaxRetryDelay)
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// lastStatus is the load balancer status to keep while a call fails: what the
// provider last reported in this process, else what the Service already shows.
func (r *LoadBalancerReconciler) lastStatus(svc *v1alpha1.Service, st lbState) corev1.LoadBalancerStatus {
	if st.synced {
		return st.status
	}
	return svc.Status.LoadBalancer
}

// patchStatus writes status.loadBalancer and the LoadBalancerReady condition (nil
// removes it) in one patch, if they changed. The patch carries the resourceVersion,
// so a concurrent write by the allocation reconciler fails it rather than being
// overwritten.
func (r *LoadBalancerReconciler) patchStatus(ctx context.Context, svc *v1alpha1.Service, lb corev1.LoadBalancerStatus, cond *metav1.Condition) error {
	status := svc.Status.DeepCopy()
	status.LoadBalancer = lb
	if cond == nil {
		meta.RemoveStatusCondition(&status.Conditions, ConditionLoadBalancerReady)
	} else {
		c := *cond
		c.Type, c.ObservedGeneration = ConditionLoadBalancerReady, svc.Generation
		meta.SetStatusCondition(&status.Conditions, c)
	}
	if equality.Semantic.DeepEqual(status, &svc.Status) {
		return nil
	}
	updated := svc.DeepCopy()
	updated.Status = *status
	if err := r.Status().Patch(ctx, updated, client.MergeFromWithOptions(svc, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	*svc = *updated
	return nil
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

func readyCondition() *metav1.Condition {
	return &metav1.Condition{Status: metav1.ConditionTrue, Reason: ReasonEnsuredLoadBalancer, Message: "Ensured load balancer"}
}

func actionOf(op lbOp) string {
	switch op {
	case opUpdate:
		return "UpdateLoadBalancer"
	case opDelete:
		return "DeleteLoadBalancer"
	}
	return "EnsureLoadBalancer"
}

// defaultIPMode returns a copy of lb in which every ingress with an IP and no ipMode
// has VIP, as kube-apiserver defaults it for core Services.
func defaultIPMode(lb *corev1.LoadBalancerStatus) *corev1.LoadBalancerStatus {
	out := lb.DeepCopy()
	for i := range out.Ingress {
		if in := &out.Ingress[i]; in.IP != "" && in.IPMode == nil {
			vip := corev1.LoadBalancerIPModeVIP
			in.IPMode = &vip
		}
	}
	return out
}

// fingerprint hashes everything of the Service a provider may act on, except what
// this reconciler writes itself (finalizers, status.loadBalancer, conditions), so
// that any change to it, and nothing else, calls EnsureLoadBalancer again.
// Annotations are included, as kube's service controller includes them: providers
// are configured through them.
func fingerprint(svc *v1alpha1.Service) uint64 {
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

func nodeNames(nodes []*corev1.Node) []string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	return names
}

// state returns a copy of what is remembered of the Service; nothing is remembered
// of another Service of the same name (another UID).
func (r *LoadBalancerReconciler) state(key types.NamespacedName, uid types.UID) lbState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.services[key]; ok && s.uid == uid {
		return *s
	}
	return lbState{uid: uid}
}

// entry returns the Service's state for changing; the caller holds r.mu.
func (r *LoadBalancerReconciler) entry(key types.NamespacedName, uid types.UID) *lbState {
	s, ok := r.services[key]
	if !ok || s.uid != uid {
		s = &lbState{uid: uid}
		r.services[key] = s
	}
	return s
}

func (r *LoadBalancerReconciler) succeeded(key types.NamespacedName, uid types.UID, provider string, inputs uint64, nodeSet string, lb corev1.LoadBalancerStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.entry(key, uid) = lbState{uid: uid, provider: provider, synced: true, inputs: inputs, nodes: nodeSet, status: lb}
}

func (r *LoadBalancerReconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.services, key)
}

// Resync has the Services ensured again soon, whatever they were synced with or
// how long their backoff is. Providers reach it through loadbalancer.Resyncer.
func (r *LoadBalancerReconciler) Resync(keys ...types.NamespacedName) {
	r.mu.Lock()
	for _, key := range keys {
		if s, ok := r.services[key]; ok {
			s.synced, s.retryAt = false, time.Time{}
		}
	}
	queue := r.queue
	r.mu.Unlock()
	if queue == nil {
		// Not started: every Service is reconciled, and ensured, when it starts.
		return
	}
	for _, key := range keys {
		queue.Add(reconcile.Request{NamespacedName: key})
	}
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

// SetupWithManager registers the reconciler with the manager. It watches Services
// and the eligibility of Nodes, and hands itself to every provider that resyncs.
func (r *LoadBalancerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Providers == nil {
		return errors.New("LoadBalancerReconciler needs a provider registry")
	}
	r.services = map[types.NamespacedName]*lbState{}
	for _, name := range r.Providers.Names() {
		provider, _ := r.Providers.Get(name)
		if rs, ok := provider.(loadbalancer.Resyncer); ok {
			rs.SetResync(r.Resync)
		}
	}
	// Restore as soon as this replica leads, not at the first Service event: pool
	// usage is only written once the provider knows what is held, and there may be
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
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.queue = q
			return nil
		})).
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
