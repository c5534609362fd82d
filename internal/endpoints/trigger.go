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

package endpoints

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// TriggerTimes tracks, per Service, the change times it has already reported, so that
// each write of a Service's slices can carry the time of the oldest change it is the
// first to reflect in the endpoints.kubernetes.io/last-change-trigger-time annotation.
// Node agents measure network programming latency from it.
//
// As in kube's EndpointSlice controller, a pod's change time is the last transition
// of its Ready condition and the Service's is its creation time. Those are the
// changes that add, remove or flip endpoints; both have a resolution of one second,
// so a latency measured from them can be up to a second too long.
//
// It is safe for concurrent use; the zero value is ready.
type TriggerTimes struct {
	mu       sync.Mutex
	services map[string]*triggerState
}

type triggerState struct {
	service time.Time
	pods    map[string]time.Time
}

// Next returns the trigger time of the next write of the slices of the Service
// known under key, given the pods it selects now: the oldest change not reported by
// a committed write, or the zero time when there is none. Calling commit once the
// writes succeeded records these changes as reported; a failed write does not, so
// that its retry reports them again. Calls for one key must not overlap.
func (t *TriggerTimes) Next(key string, svc *v1alpha1.Service, pods []*corev1.Pod) (trigger time.Time, commit func()) {
	t.mu.Lock()
	last := t.services[key]
	t.mu.Unlock()
	if last == nil {
		last = &triggerState{}
	}
	next := &triggerState{service: svc.CreationTimestamp.Time, pods: make(map[string]time.Time, len(pods))}

	var oldest time.Time
	earlier := func(ts time.Time) {
		if oldest.IsZero() || ts.Before(oldest) {
			oldest = ts
		}
	}
	for _, pod := range pods {
		ts := podTriggerTime(pod)
		if ts.IsZero() {
			continue
		}
		next.pods[pod.Name] = ts
		if ts.After(last.pods[pod.Name]) {
			earlier(ts)
		}
	}
	if next.service.After(last.service) {
		earlier(next.service)
	}
	return oldest, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.services == nil {
			t.services = map[string]*triggerState{}
		}
		t.services[key] = next
	}
}

// Forget drops what is known of a Service that is gone.
func (t *TriggerTimes) Forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.services, key)
}

// podTriggerTime is when the pod's Ready condition last changed; zero when the pod
// has none yet.
func podTriggerTime(pod *corev1.Pod) time.Time {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}
