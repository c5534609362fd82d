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

package dataplane

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newSchedule() *schedule {
	return &schedule{minSyncPeriod: time.Second, syncPeriod: 30 * time.Second, fullSyncPeriod: 30 * time.Second, needFull: true}
}

// syncAt runs one sync on s at now, failing with err, and returns whether it was
// full.
func syncAt(s *schedule, now time.Time, err error) bool {
	full := s.begin(now)
	s.end(now, full, err)
	return full
}

func wantNext(t *testing.T, s *schedule, want time.Time) {
	t.Helper()
	got, ok := s.next()
	if !ok || !got.Equal(want) {
		t.Fatalf("next() = %v, %v; want %v", got.Sub(t0), ok, want.Sub(t0))
	}
}

func TestScheduleWaitsForFirstRun(t *testing.T) {
	s := newSchedule()
	if at, ok := s.next(); ok {
		t.Fatalf("next() before Run = %v, want nothing", at)
	}
	s.started, s.dirty = true, true
	wantNext(t, s, time.Time{})
	if !syncAt(s, t0, nil) {
		t.Errorf("the first sync is not full")
	}
	// With nothing new, the next sync is the periodic full one.
	wantNext(t, s, t0.Add(30*time.Second))
}

func TestScheduleCoalescesBurstsWithinMinSyncPeriod(t *testing.T) {
	s := newSchedule()
	s.started, s.dirty = true, true
	syncAt(s, t0, nil)

	// Three events 100ms after a sync all wait for the same slot, one second after it.
	for range 3 {
		s.dirty = true
	}
	wantNext(t, s, t0.Add(time.Second))
	if syncAt(s, t0.Add(time.Second), nil) {
		t.Errorf("an event-driven sync within the sync period is full")
	}
	wantNext(t, s, t0.Add(30*time.Second))

	// An event is due MinSyncPeriod after the last sync: for an event arriving
	// later than that, a time already past, so Loop runs it at once.
	s.dirty = true
	wantNext(t, s, t0.Add(time.Second+time.Second))
}

func TestScheduleFullResyncEverySyncPeriod(t *testing.T) {
	s := newSchedule()
	s.started, s.dirty = true, true
	syncAt(s, t0, nil)

	// Partial syncs in between do not postpone the full one.
	for i := 1; i < 30; i += 5 {
		s.dirty = true
		if syncAt(s, t0.Add(time.Duration(i)*time.Second), nil) {
			t.Fatalf("sync at %ds is full", i)
		}
	}
	wantNext(t, s, t0.Add(30*time.Second))
	if !syncAt(s, t0.Add(30*time.Second), nil) {
		t.Errorf("the periodic sync is not full")
	}
	// An event-driven sync that falls after the period is full too.
	s.dirty = true
	if !syncAt(s, t0.Add(61*time.Second), nil) {
		t.Errorf("an event-driven sync a full period after the last full one is not full")
	}
}

func TestScheduleFullSyncPeriodLongerThanSyncPeriod(t *testing.T) {
	s := newSchedule()
	s.fullSyncPeriod = time.Hour
	s.started, s.dirty = true, true
	syncAt(s, t0, nil)

	// Quiet periods bring a sync every SyncPeriod, partial until an hour has passed.
	now := t0
	for range 119 {
		wantNext(t, s, now.Add(30*time.Second))
		now = now.Add(30 * time.Second)
		if syncAt(s, now, nil) {
			t.Fatalf("sync at %v is full", now.Sub(t0))
		}
	}
	wantNext(t, s, t0.Add(time.Hour))
	if !syncAt(s, t0.Add(time.Hour), nil) {
		t.Errorf("the hourly sync is not full")
	}
}

func TestScheduleRetriesFailuresAsFullSyncsWithBackoff(t *testing.T) {
	s := newSchedule()
	s.started, s.dirty = true, true
	syncAt(s, t0, nil)

	s.dirty = true
	now := t0.Add(5 * time.Second)
	if syncAt(s, now, errors.New("iptables-restore: exit status 1")) {
		t.Fatalf("the failing sync was full")
	}
	// Retries double from MinSyncPeriod up to SyncPeriod, every one of them full.
	for _, wait := range []time.Duration{1, 2, 4, 8, 16, 30, 30} {
		wantNext(t, s, now.Add(wait*time.Second))
		now = now.Add(wait * time.Second)
		if !syncAt(s, now, errors.New("still failing")) {
			t.Fatalf("retry at %v is not full", now.Sub(t0))
		}
	}
	if !syncAt(s, now.Add(30*time.Second), nil) {
		t.Fatalf("the successful retry is not full")
	}
	if s.failures != 0 {
		t.Errorf("failures = %d after a success", s.failures)
	}
	wantNext(t, s, now.Add(60*time.Second))
}

func TestScheduleMinSyncPeriodBoundsEverything(t *testing.T) {
	s := &schedule{minSyncPeriod: 10 * time.Second, syncPeriod: 10 * time.Second, fullSyncPeriod: 10 * time.Second, needFull: true, started: true, dirty: true}
	syncAt(s, t0, errors.New("boom"))
	s.dirty = true
	// The retry would be due after max(min sync period, 1s) = 10s; an event does not
	// bring it forward.
	wantNext(t, s, t0.Add(10*time.Second))
}

func TestNewRunnerValidates(t *testing.T) {
	if _, err := NewRunner(nil, RunnerConfig{MinSyncPeriod: time.Minute, SyncPeriod: time.Second}); err == nil {
		t.Errorf("NewRunner accepted a sync period shorter than the min sync period")
	}
	if _, err := NewRunner(nil, RunnerConfig{SyncPeriod: time.Minute, FullSyncPeriod: time.Second}); err == nil {
		t.Errorf("NewRunner accepted a full sync period shorter than the sync period")
	}
	if _, err := NewRunner(nil, RunnerConfig{SyncPeriod: time.Nanosecond}); err == nil || !strings.Contains(err.Error(), "sync period 1ns must be at least 100ms") {
		t.Errorf("NewRunner with a 1ns sync period: %v", err)
	}
	if _, err := NewRunner(nil, RunnerConfig{CheckPeriod: time.Nanosecond}); err == nil || !strings.Contains(err.Error(), "check period 1ns must be at least 100ms") {
		t.Errorf("NewRunner with a 1ns check period: %v", err)
	}
	r, err := NewRunner(nil, RunnerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if r.sched.minSyncPeriod != DefaultMinSyncPeriod || r.sched.syncPeriod != DefaultSyncPeriod || r.sched.fullSyncPeriod != DefaultSyncPeriod {
		t.Errorf("defaults: %v, %v, %v", r.sched.minSyncPeriod, r.sched.syncPeriod, r.sched.fullSyncPeriod)
	}
}

// fakeClock is k8s.io/utils' FakeClock, whose time only moves when the test steps
// it, and which announces every timer Loop starts on idle: Loop has nothing to do
// then until the clock moves or Run is called.
type fakeClock struct {
	*clocktesting.FakeClock
	idle chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{FakeClock: clocktesting.NewFakeClock(t0), idle: make(chan struct{}, 100)}
}

func (c *fakeClock) NewTimer(d time.Duration) clock.Timer {
	t := c.FakeClock.NewTimer(d)
	c.idle <- struct{}{}
	return t
}

func (c *fakeClock) drainIdle() {
	for {
		select {
		case <-c.idle:
		default:
			return
		}
	}
}

func TestRunnerLoop(t *testing.T) {
	clock := newFakeClock()
	syncs := make(chan bool)
	replies := make(chan error)
	r, err := NewRunner(func(_ context.Context, full bool) error {
		syncs <- full
		return <-replies
	}, RunnerConfig{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Loop(ctx)
		close(done)
	}()

	// expectSync waits for the next sync, checks whether it is full, answers it with
	// err and waits for Loop to go idle again.
	expectSync := func(wantFull bool, err error) {
		t.Helper()
		if full := <-syncs; full != wantFull {
			t.Fatalf("sync full = %v, want %v", full, wantFull)
		}
		clock.drainIdle() // Loop cannot start a timer while this sync is unanswered.
		replies <- err
		<-clock.idle
	}
	expectNoSync := func() {
		t.Helper()
		select {
		case full := <-syncs:
			t.Fatalf("unexpected sync (full = %v)", full)
		default:
		}
	}

	r.Run()
	expectSync(true, nil)

	// A burst right after a sync waits out MinSyncPeriod and becomes one sync.
	r.Run()
	r.Run()
	r.Run()
	<-clock.idle
	expectNoSync()
	clock.Step(time.Second)
	expectSync(false, nil)
	expectNoSync()

	// A failure is retried, as a full sync, without any new event.
	r.Run()
	clock.Step(time.Second)
	expectSync(false, errors.New("iptables-restore failed"))
	if st := r.Status(); st.Failures != 1 || !st.Pending {
		t.Errorf("status after a failure: %+v", st)
	}
	clock.Step(time.Second)
	expectSync(true, nil)
	if st := r.Status(); st.Failures != 0 || st.Pending || !st.LastFullSync.Equal(t0.Add(3*time.Second)) {
		t.Errorf("status after the retry: %+v", st)
	}

	// With nothing happening, the periodic full resync comes SyncPeriod later.
	clock.Step(29 * time.Second)
	expectNoSync()
	clock.Step(time.Second)
	expectSync(true, nil)

	cancel()
	<-done
}

func TestSyncBackend(t *testing.T) {
	b := &recordingBackend{}
	st := &model.State{}
	fn := SyncBackend(b, func() *model.State { return st })
	if err := fn(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if err := fn(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if b.syncs != 2 || b.fullRequests != 1 || b.last != st {
		t.Errorf("backend saw %d syncs, %d full sync requests, state %p (want 2, 1, %p)", b.syncs, b.fullRequests, b.last, st)
	}
}

type recordingBackend struct {
	syncs, fullRequests int
	last                *model.State
}

var (
	_ Backend    = &recordingBackend{}
	_ FullSyncer = &recordingBackend{}
)

func (b *recordingBackend) Sync(_ context.Context, desired *model.State) error {
	b.syncs++
	b.last = desired
	return nil
}
func (b *recordingBackend) Cleanup(context.Context) error { return nil }
func (b *recordingBackend) RequestFullSync()              { b.fullRequests++ }

// TestRunnerChecksForTampering runs the tamper check every CheckPeriod while nothing
// changes: a clean check leads to no sync, a tampered one to a full sync at once
// (not at the next periodic resync), and a failing check counts as tampering.
func TestRunnerChecksForTampering(t *testing.T) {
	clock := newFakeClock()
	syncs := make(chan bool, 1)
	checks := make(chan struct{})
	answers := make(chan error)
	tamper := make(chan bool)
	r, err := NewRunner(func(_ context.Context, full bool) error {
		syncs <- full
		return nil
	}, RunnerConfig{Clock: clock, Check: func(context.Context) (bool, error) {
		checks <- struct{}{}
		return <-tamper, <-answers
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Loop(ctx)
		close(done)
	}()
	check := func(tampered bool, err error) {
		t.Helper()
		<-checks
		clock.drainIdle()
		tamper <- tampered
		answers <- err
	}
	wantSync := func(wantFull bool) {
		t.Helper()
		if full := <-syncs; full != wantFull {
			t.Fatalf("sync full = %v, want %v", full, wantFull)
		}
	}

	// No check before the first (full) sync.
	r.Run()
	wantSync(true)
	<-clock.idle

	// A clean check every 5s, and no sync.
	clock.Step(DefaultCheckPeriod)
	check(false, nil)
	<-clock.idle
	select {
	case full := <-syncs:
		t.Fatalf("a clean check led to a sync (full = %v)", full)
	default:
	}
	// Tampering found: a full sync right away, 10s after the last one, not 30s.
	clock.Step(DefaultCheckPeriod)
	check(true, nil)
	wantSync(true)
	<-clock.idle
	// A check that cannot tell is treated as tampering.
	clock.Step(DefaultCheckPeriod)
	check(false, errors.New("iptables: Resource temporarily unavailable"))
	wantSync(true)

	cancel()
	<-done
}
