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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// wakeupBuffer is how many wake-ups may wait before a sender spills into a
// goroutine; far more than a burst of resyncs needs.
const wakeupBuffer = 4096

// wakeups queues reconciles of objects for reasons a watch cannot see (a provider
// freed an address a waiting Service needs). It is a source.Channel of
// GenericEvents, the one way the reconcilers here wake objects from outside
// their watches.
type wakeups struct {
	ch chan event.GenericEvent
}

func newWakeups() *wakeups {
	return &wakeups{ch: make(chan event.GenericEvent, wakeupBuffer)}
}

// source is the controller's source of the wake-ups.
func (w *wakeups) source() source.Source {
	return source.Channel(w.ch, &handler.EnqueueRequestForObject{})
}

// wake queues a reconcile of each object. It never blocks: should the buffer be
// full, the rest is sent from a goroutine once the controller drains it.
func (w *wakeups) wake(objs ...client.Object) {
	for i, obj := range objs {
		select {
		case w.ch <- event.GenericEvent{Object: obj}:
		default:
			rest := objs[i:]
			go func() {
				for _, obj := range rest {
					w.ch <- event.GenericEvent{Object: obj}
				}
			}()
			return
		}
	}
}
