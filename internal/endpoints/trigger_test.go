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
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

// readySince sets the pod's Ready condition, last changed at ts.
func readySince(ready bool, ts time.Time) podOpt {
	return func(p *corev1.Pod) {
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.NewTime(ts)}}
	}
}

func TestTriggerTimes(t *testing.T) {
	svc := newSvc()
	svc.CreationTimestamp = metav1.NewTime(t0.Add(5 * time.Second))
	const key = "ns/web"
	pods := []*corev1.Pod{
		numberedPod(1, readySince(true, t0.Add(2*time.Second))),
		numberedPod(2, readySince(true, t0.Add(9*time.Second))),
		numberedPod(3, noConditions()),
	}
	var tt TriggerTimes

	got, commit := tt.Next(key, svc, pods)
	if want := t0.Add(2 * time.Second); !got.Equal(want) {
		t.Errorf("first write: trigger %v, want the oldest change %v", got, want)
	}
	// A failed write commits nothing: its retry reports the same changes.
	if again, _ := tt.Next(key, svc, pods); !again.Equal(got) {
		t.Errorf("retry of a failed write: trigger %v, want %v again", again, got)
	}
	commit()
	if got, commit := tt.Next(key, svc, pods); !got.IsZero() {
		t.Errorf("nothing changed since the last write: trigger %v, want zero", got)
	} else {
		commit()
	}

	// pod-002 turns unready at t0+20s, pod-003 gets its first condition at t0+15s.
	pods = []*corev1.Pod{
		pods[0],
		numberedPod(2, readySince(false, t0.Add(20*time.Second))),
		numberedPod(3, readySince(true, t0.Add(15*time.Second))),
	}
	got, commit = tt.Next(key, svc, pods)
	if want := t0.Add(15 * time.Second); !got.Equal(want) {
		t.Errorf("two pods changed: trigger %v, want the older change %v", got, want)
	}
	commit()

	// Forgetting the Service (it was deleted) reports everything again for a new
	// Service of the same name.
	tt.Forget(key)
	if got, _ := tt.Next(key, svc, pods); !got.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("after Forget: trigger %v, want %v", got, t0.Add(2*time.Second))
	}

	// A Service with no pods reports its own creation once.
	var empty TriggerTimes
	got, commit = empty.Next(key, svc, nil)
	if !got.Equal(svc.CreationTimestamp.Time) {
		t.Errorf("no pods: trigger %v, want the Service's creation %v", got, svc.CreationTimestamp.Time)
	}
	commit()
	if got, _ := empty.Next(key, svc, nil); !got.IsZero() {
		t.Errorf("no pods, nothing changed: trigger %v, want zero", got)
	}
}

func TestTriggerTimeAnnotation(t *testing.T) {
	annotation := func(t *testing.T, api *fakeAPI) []string {
		t.Helper()
		var out []string
		for _, s := range api.list() {
			out = append(out, s.Annotations[corev1.EndpointsLastChangeTriggerTime])
		}
		return out
	}
	in := Input{Service: newSvc(), Pods: numberedPods(1, 150)}
	in.TriggerTime = t0.Add(1500 * time.Millisecond)
	api := newFakeAPI()
	step(t, api, in)
	for i, v := range annotation(t, api) {
		if v != "2026-11-22T08:00:01.5Z" {
			t.Errorf("created slice %d: %s = %q, want the trigger time in RFC 3339 with nanoseconds, UTC", i, corev1.EndpointsLastChangeTriggerTime, v)
		}
	}

	// The trigger time alone never causes a write.
	in.TriggerTime = t0.Add(time.Minute)
	in.Existing = api.list()
	if p := Compute(in); p.Writes() != 0 {
		t.Errorf("a new trigger time with no endpoint change: %d writes, want none", p.Writes())
	}

	// One pod turns unready: only its slice is written, with the new trigger time.
	in.Pods = replacingPod(in.Pods, numberedPod(7, ready(false)))
	in.TriggerTime = t0.Add(2 * time.Minute).In(time.FixedZone("CET", 3600))
	plan := step(t, api, in)
	if len(plan.Update) != 1 || plan.Writes() != 1 {
		t.Fatalf("one pod changed: plan %s, want one update", describePlan(plan))
	}
	written := api.get(plan.Update[0].Name)
	if v := written.Annotations[corev1.EndpointsLastChangeTriggerTime]; v != "2026-11-22T08:02:00Z" {
		t.Errorf("updated slice: annotation %q, want 2026-11-22T08:02:00Z", v)
	}
	for _, s := range api.list() {
		if s.Name != written.Name && s.Annotations[corev1.EndpointsLastChangeTriggerTime] != "2026-11-22T08:00:01.5Z" {
			t.Errorf("untouched slice %s: annotation %q changed", s.Name, s.Annotations[corev1.EndpointsLastChangeTriggerTime])
		}
	}

	// A write with no trigger time (a hand edit put back) drops the annotation
	// rather than repeat a stale time; other annotations stay.
	api.edit(t, written.Name, func(s *discoveryv1.EndpointSlice) {
		s.Annotations["example.com/note"] = "kept"
		s.Labels["app"] = "edited"
	})
	in.TriggerTime = time.Time{}
	plan = step(t, api, in)
	if plan.Writes() != 1 {
		t.Fatalf("hand-edited labels: plan %s, want one update", describePlan(plan))
	}
	repaired := api.get(written.Name)
	if v, ok := repaired.Annotations[corev1.EndpointsLastChangeTriggerTime]; ok {
		t.Errorf("write without a trigger time kept annotation %q", v)
	}
	if repaired.Annotations["example.com/note"] != "kept" {
		t.Errorf("other annotations lost: %v", repaired.Annotations)
	}
}
