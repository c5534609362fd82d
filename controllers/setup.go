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

	ctrl "sigs.k8s.io/controller-runtime"
)

// Reconcilers are svcplane's four reconcilers, configured (ranges, providers,
// periods, concurrency) but not yet wired to a manager.
type Reconcilers struct {
	Allocation    *AllocationReconciler
	EndpointSlice *EndpointSliceReconciler
	Pool          *LoadBalancerIPPoolReconciler
	LoadBalancer  *LoadBalancerReconciler
}

// Setup wires r into mgr the way the shipped manager runs them: each reconciler
// gets mgr's client, API reader and an event recorder under its own component
// name, the load balancer reconciler restores providers only after the pool
// reconciler loaded the pools, and all four are registered with mgr. It is the one
// place that wiring lives, so that controllers/manager and the envtest suite run
// the same thing. It fails when a reconciler cannot be registered.
func Setup(mgr ctrl.Manager, r Reconcilers) error {
	a := r.Allocation
	a.Client, a.APIReader, a.Recorder = mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("svcplane-allocator")
	if err := a.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("unable to create the allocation controller: %w", err)
	}
	e := r.EndpointSlice
	e.Client, e.Recorder = mgr.GetClient(), mgr.GetEventRecorder("svcplane-endpointslice")
	if err := e.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("unable to create the endpointslice controller: %w", err)
	}
	p := r.Pool
	p.Client, p.APIReader = mgr.GetClient(), mgr.GetAPIReader()
	if err := p.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("unable to create the loadbalancerippool controller: %w", err)
	}
	lb := r.LoadBalancer
	lb.Client, lb.APIReader, lb.Recorder = mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("svcplane-loadbalancer")
	lb.Preload = append([]func(context.Context) error{p.Load}, lb.Preload...)
	if err := lb.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("unable to create the loadbalancer controller: %w", err)
	}
	return nil
}
