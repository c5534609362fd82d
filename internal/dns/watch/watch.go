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

// Package watch fills a dns.Zone from the API server: informers on svcplane
// Services and on the EndpointSlices of svcplane Services hand every change to
// the zone, so that answering a query never calls the API server.
package watch

import (
	"context"
	"fmt"
	"sync/atomic"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/internal/dns"
)

// Watch keeps a Zone in line with the API server.
type Watch struct {
	zone   *dns.Zone
	cache  cache.Cache
	synced atomic.Bool
}

// New returns a Watch of the API server of cfg filling zone; Run starts it.
func New(cfg *rest.Config, zone *dns.Zone) (*Watch, error) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	// Every slice of a svcplane Service carries its name: the slices svcplane
	// manages, and those a person or controller writes for a Service without a
	// selector (which the agent routes to, so DNS answers with them too). Core
	// Services' slices never carry it.
	hasService, err := labels.NewRequirement(v1alpha1.LabelServiceName, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	c, err := cache.New(cfg, cache.Options{
		Scheme: scheme,
		ByObject: map[client.Object]cache.ByObject{
			&discoveryv1.EndpointSlice{}: {Label: labels.NewSelector().Add(*hasService)},
		},
		// The zone keeps what it needs; managed fields are most of an object's
		// bytes and none of its records.
		DefaultTransform: cache.TransformStripManagedFields(),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the cache: %w", err)
	}
	return &Watch{zone: zone, cache: c}, nil
}

// Synced reports whether the zone holds every Service and slice that existed
// when the watch started.
func (w *Watch) Synced() bool { return w.synced.Load() }

// Run watches until ctx is done. It returns an error when the watch cannot
// start or the caches never sync.
func (w *Watch) Run(ctx context.Context) error {
	log := logf.FromContext(ctx)
	svcInf, err := w.cache.GetInformer(ctx, &v1alpha1.Service{})
	if err != nil {
		return fmt.Errorf("watching Services: %w", err)
	}
	svcReg, err := svcInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.setService(obj) },
		UpdateFunc: func(_, obj any) { w.setService(obj) },
		DeleteFunc: func(obj any) {
			if svc, ok := unwrap(obj).(*v1alpha1.Service); ok {
				w.zone.DeleteService(svc.Namespace, svc.Name)
			}
		},
	})
	if err != nil {
		return err
	}
	sliceInf, err := w.cache.GetInformer(ctx, &discoveryv1.EndpointSlice{})
	if err != nil {
		return fmt.Errorf("watching EndpointSlices: %w", err)
	}
	sliceReg, err := sliceInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.setSlice(obj) },
		UpdateFunc: func(_, obj any) { w.setSlice(obj) },
		DeleteFunc: func(obj any) {
			if s, ok := unwrap(obj).(*discoveryv1.EndpointSlice); ok {
				w.zone.DeleteEndpointSlice(s.Namespace, s.Name)
			}
		},
	})
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- w.cache.Start(ctx) }()
	// The informers have listed what exists once the cache has synced, and the
	// zone holds it once the handlers have seen all of it.
	if !w.cache.WaitForCacheSync(ctx) || !toolscache.WaitForCacheSync(ctx.Done(), svcReg.HasSynced, sliceReg.HasSynced) {
		select {
		case err := <-errc:
			return fmt.Errorf("starting the cache: %w", err)
		default:
			return nil // stopped while starting
		}
	}
	w.synced.Store(true)
	sizes := w.zone.Sizes()
	log.Info("caches synced; answering for every Service", "services", sizes.Services, "endpointSlices", sizes.EndpointSlices)
	return <-errc
}

func (w *Watch) setService(obj any) {
	if svc, ok := obj.(*v1alpha1.Service); ok {
		w.zone.SetService(svc)
	}
}

func (w *Watch) setSlice(obj any) {
	if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
		w.zone.SetEndpointSlice(s)
	}
}

// unwrap returns the object a deletion's tombstone holds.
func unwrap(obj any) any {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}
