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

package agent

import (
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/svcplane/svcplane/dataplane/model"
)

// handler returns the event handler of the informer of kind's objects. Handlers
// only record that something changed, and when, and ask the Runner for a sync.
func (a *Agent) handler(kind client.Object) toolscache.ResourceEventHandler {
	_, isNode := kind.(*corev1.Node)
	return toolscache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, isInInitialList bool) {
			if isInInitialList {
				// The cache holds it before the first sync starts (Run syncs only
				// once every informer has listed what exists), so it needs no
				// sync of its own: handlers see the initial list after the cache
				// has it, and asking again would run a no-op sync right after
				// the first (seconds at 10,000 service ports).
				return
			}
			a.changed(obj, !isNode, false)
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, oerr := meta.Accessor(oldObj)
			n, nerr := meta.Accessor(newObj)
			if oerr == nil && nerr == nil && o.GetResourceVersion() == n.GetResourceVersion() {
				return // a periodic resync of the informer: nothing changed
			}
			if isNode && !nodeChanged(oldObj, newObj) {
				return // kubelet's status updates; only the addresses matter here
			}
			a.changed(newObj, !isNode, false)
		},
		DeleteFunc: func(obj any) {
			if tombstone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = tombstone.Obj
			}
			a.changed(obj, !isNode, true)
		},
	}
}

// changed records a change of obj and asks for a sync.
func (a *Agent) changed(obj any, measure, deleted bool) {
	a.events.Add(1)
	a.health.QueuedUpdate()
	if measure {
		a.changes.add(changeTime(obj, deleted, a.now()))
	}
	a.runner.Run()
}

// nodeChanged reports whether the Node change matters to the dataplane.
func nodeChanged(oldObj, newObj any) bool {
	o, ok1 := oldObj.(*corev1.Node)
	n, ok2 := newObj.(*corev1.Node)
	if !ok1 || !ok2 {
		return true
	}
	oi, ni := model.NodeInfoFromNode(o), model.NodeInfoFromNode(n)
	return oi.Name != ni.Name || !slices.Equal(oi.Addresses, ni.Addresses)
}

// changeTime returns when obj was last changed, as far as the agent can tell:
//
//   - the endpoints.kubernetes.io/last-change-trigger-time annotation, when a
//     controller sets it (kube's EndpointSlice controller does, with the time of
//     the pod or Service change that made it write the slice);
//   - otherwise the newest time in its managedFields, which the API server sets on
//     every write (whoever wrote it, spec or status), or its creation time;
//   - for a deletion, its deletionTimestamp, or now when it was deleted at once.
//
// managedFields times have a resolution of one second, so latencies measured from
// them can be up to a second too long.
func changeTime(obj any, deleted bool, now time.Time) time.Time {
	m, err := meta.Accessor(obj)
	if err != nil {
		return now
	}
	if deleted {
		if ts := m.GetDeletionTimestamp(); ts != nil {
			return ts.Time
		}
		return now
	}
	if v, ok := m.GetAnnotations()[corev1.EndpointsLastChangeTriggerTime]; ok {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t
		}
	}
	t := m.GetCreationTimestamp().Time
	for _, mf := range m.GetManagedFields() {
		if mf.Time != nil && mf.Time.After(t) {
			t = mf.Time.Time
		}
	}
	if t.IsZero() {
		return now
	}
	return t
}

// maxPendingChanges bounds the change times kept between syncs. A burst larger
// than this (a whole namespace deleted) is measured by its first changes only;
// the histogram loses samples, not accuracy.
const maxPendingChanges = 1024

// changeLog holds the times of the changes no sync has applied yet.
type changeLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (l *changeLog) add(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.times) < maxPendingChanges {
		l.times = append(l.times, t)
	}
}

// take returns and forgets the pending change times.
func (l *changeLog) take() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.times
	l.times = nil
	return ts
}

// putBack returns change times a failed sync took.
func (l *changeLog) putBack(ts []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	room := maxPendingChanges - len(l.times)
	l.times = append(l.times, ts[:min(len(ts), room)]...)
}
