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
	"fmt"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Defaults of the agent's --min-sync-period and --sync-period, kube-proxy's.
const (
	DefaultMinSyncPeriod = time.Second
	DefaultSyncPeriod    = 30 * time.Second
)

// MinimumPeriod is the least sync and check period a Runner accepts: below it a
// typo (--sync-period=1ns) would turn the loop into a busy one.
const MinimumPeriod = 100 * time.Millisecond

// DefaultCheckPeriod is how often a RunnerConfig.Check runs by default: a flushed
// table is noticed within five seconds, for the price of listing two small chains.
const DefaultCheckPeriod = 5 * time.Second

// CheckFunc reports whether the kernel objects were tampered with since the last
// sync (see TamperChecker); an error counts as tampering.
type CheckFunc func(ctx context.Context) (bool, error)

// SyncFunc applies the current desired state. full asks for a full resync rather
// than only what changed; see FullSyncer.
type SyncFunc func(ctx context.Context, full bool) error

// RunnerConfig configures a Runner. Zero fields take their defaults.
type RunnerConfig struct {
	// MinSyncPeriod is the least time between the starts of two syncs
	// (--min-sync-period): events arriving faster are coalesced into one sync.
	MinSyncPeriod time.Duration
	// SyncPeriod is the most time between two syncs, even when nothing changed
	// (--sync-period), and the longest a failing sync is retried after.
	SyncPeriod time.Duration
	// FullSyncPeriod is the most time between two full resyncs; SyncPeriod when
	// zero. kube-proxy resyncs every sync period but fully only every hour,
	// because a full iptables-restore of a large node can take longer than a sync
	// period (minutes for 100,000 chains with iptables-nft).
	FullSyncPeriod time.Duration
	// Check, when set, runs every CheckPeriod between syncs, also when nothing
	// changes; when it reports tampering (or fails) a full sync follows at once.
	Check CheckFunc
	// CheckPeriod is the period of Check; DefaultCheckPeriod when zero.
	CheckPeriod time.Duration
	// Clock is the time source; the real clock when nil. Tests give it
	// k8s.io/utils/clock/testing's FakeClock.
	Clock clock.Clock
}

// RunnerStatus is what a Runner has done so far, for health checks and metrics.
type RunnerStatus struct {
	// LastAttempt, LastSuccess and LastFullSync are when the last sync, the last
	// successful one and the last successful full one started; zero until then.
	LastAttempt  time.Time
	LastSuccess  time.Time
	LastFullSync time.Time
	// Failures counts the syncs that failed since the last success.
	Failures int
	// Pending reports whether a change is waiting for a sync.
	Pending bool
}

// Runner calls a SyncFunc when asked to, as kube-proxy's BoundedFrequencyRunner
// does: a burst of Run calls becomes one sync, syncs start at most once per
// MinSyncPeriod, a sync happens at least once per SyncPeriod and a full resync at
// least once per FullSyncPeriod, and a failed sync is retried (after
// MinSyncPeriod, doubling up to SyncPeriod) as a full one, because a backend that
// failed half-way no longer knows what the kernel holds.
//
// Nothing runs before the first Run call. The agent makes that call once its
// informer caches have synced, so that a periodic resync can never apply the empty
// state of a cache still filling up and wipe the node's rules.
type Runner struct {
	fn    SyncFunc
	check CheckFunc
	clock clock.Clock
	kick  chan struct{}

	mu    sync.Mutex
	sched schedule
}

// NewRunner returns a Runner calling fn; Loop starts it.
func NewRunner(fn SyncFunc, cfg RunnerConfig) (*Runner, error) {
	if cfg.MinSyncPeriod == 0 {
		cfg.MinSyncPeriod = DefaultMinSyncPeriod
	}
	if cfg.SyncPeriod == 0 {
		cfg.SyncPeriod = DefaultSyncPeriod
	}
	if cfg.FullSyncPeriod == 0 {
		cfg.FullSyncPeriod = cfg.SyncPeriod
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.CheckPeriod == 0 {
		cfg.CheckPeriod = DefaultCheckPeriod
	}
	var errs []error
	if cfg.MinSyncPeriod < 0 {
		errs = append(errs, fmt.Errorf("min sync period %v must not be negative", cfg.MinSyncPeriod))
	}
	if cfg.SyncPeriod < MinimumPeriod {
		errs = append(errs, fmt.Errorf("sync period %v must be at least %v", cfg.SyncPeriod, MinimumPeriod))
	}
	if cfg.SyncPeriod < cfg.MinSyncPeriod {
		errs = append(errs, fmt.Errorf("sync period %v must not be shorter than min sync period %v", cfg.SyncPeriod, cfg.MinSyncPeriod))
	}
	if cfg.FullSyncPeriod < cfg.SyncPeriod {
		errs = append(errs, fmt.Errorf("full sync period %v must not be shorter than sync period %v", cfg.FullSyncPeriod, cfg.SyncPeriod))
	}
	if cfg.CheckPeriod < MinimumPeriod {
		errs = append(errs, fmt.Errorf("check period %v must be at least %v", cfg.CheckPeriod, MinimumPeriod))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sched := schedule{minSyncPeriod: cfg.MinSyncPeriod, syncPeriod: cfg.SyncPeriod, fullSyncPeriod: cfg.FullSyncPeriod, needFull: true}
	if cfg.Check != nil {
		sched.checkPeriod = cfg.CheckPeriod
	}
	return &Runner{
		fn:    fn,
		check: cfg.Check,
		clock: cfg.Clock,
		kick:  make(chan struct{}, 1),
		sched: sched,
	}, nil
}

// Run asks for a sync as soon as MinSyncPeriod allows. It never blocks, so event
// handlers may call it freely.
func (r *Runner) Run() {
	r.mu.Lock()
	r.sched.started = true
	r.sched.dirty = true
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default: // a wake-up is already pending; it will see dirty.
	}
}

// Status returns what the Runner has done so far.
func (r *Runner) Status() RunnerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sched
	return RunnerStatus{
		LastAttempt:  s.lastAttempt,
		LastSuccess:  s.lastSuccess,
		LastFullSync: s.lastFull,
		Failures:     s.failures,
		Pending:      s.dirty || s.failures > 0,
	}
}

// Loop runs syncs until ctx is done. A sync in progress when ctx is cancelled is
// given the cancelled ctx and Loop returns after it.
func (r *Runner) Loop(ctx context.Context) {
	for ctx.Err() == nil {
		r.mu.Lock()
		at, ok := r.sched.next()
		checkAt, checkOK := r.sched.nextCheck()
		r.mu.Unlock()

		now := r.clock.Now()
		if ok && !at.After(now) {
			r.runOnce(ctx, now)
			continue
		}
		if checkOK && !checkAt.After(now) {
			r.checkOnce(ctx, now)
			continue
		}
		if checkOK && (!ok || checkAt.Before(at)) {
			at, ok = checkAt, true
		}
		var fire <-chan time.Time
		var timer clock.Timer
		if ok {
			timer = r.clock.NewTimer(at.Sub(now))
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-r.kick:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

func (r *Runner) runOnce(ctx context.Context, now time.Time) {
	r.mu.Lock()
	full := r.sched.begin(now)
	r.mu.Unlock()

	err := r.fn(ctx, full)

	r.mu.Lock()
	r.sched.end(now, full, err)
	r.mu.Unlock()
}

// checkOnce runs the tamper check and, when it finds tampering, asks for a full sync.
func (r *Runner) checkOnce(ctx context.Context, now time.Time) {
	r.mu.Lock()
	r.sched.lastCheck = now
	r.mu.Unlock()

	tampered, err := r.check(ctx)
	if ctx.Err() != nil || (!tampered && err == nil) {
		return
	}
	r.mu.Lock()
	r.sched.dirty, r.sched.needFull = true, true
	r.mu.Unlock()
}

// schedule is the Runner's decision logic, kept apart from goroutines and timers so
// that it can be tested with plain times.
type schedule struct {
	minSyncPeriod, syncPeriod, fullSyncPeriod time.Duration

	started  bool // Run has been called
	dirty    bool // a change arrived since the last sync started
	needFull bool // the next sync must be full: the first, or the one after a failure

	lastAttempt time.Time
	lastSuccess time.Time
	lastFull    time.Time // last successful full sync
	failures    int       // consecutive failed syncs
	retryAt     time.Time // when to retry the last failed sync

	checkPeriod time.Duration // 0: no tamper check
	lastCheck   time.Time
}

// nextCheck returns when the next tamper check is due: CheckPeriod after the last
// check or sync, once a full sync has succeeded and while nothing is pending (a
// pending sync looks for itself).
func (s *schedule) nextCheck() (time.Time, bool) {
	if s.checkPeriod == 0 || !s.started || s.lastFull.IsZero() || s.dirty || s.failures > 0 || s.needFull {
		return time.Time{}, false
	}
	last := s.lastCheck
	if s.lastAttempt.After(last) {
		last = s.lastAttempt
	}
	return last.Add(s.checkPeriod), true
}

// next returns when the next sync should start; false means not until Run is
// called.
func (s *schedule) next() (time.Time, bool) {
	if !s.started {
		return time.Time{}, false
	}
	var at time.Time
	have := false
	consider := func(t time.Time) {
		if !have || t.Before(at) {
			at, have = t, true
		}
	}
	if s.dirty {
		consider(time.Time{}) // now, or as soon as MinSyncPeriod allows
	}
	switch {
	case s.failures > 0:
		// Retries are full syncs already, and their backoff never exceeds
		// SyncPeriod; the periodic resync would only cut the backoff short.
		consider(s.retryAt)
	case !s.lastFull.IsZero():
		consider(s.lastAttempt.Add(s.syncPeriod))
		consider(s.lastFull.Add(s.fullSyncPeriod))
	}
	if !have {
		return time.Time{}, false
	}
	if !s.lastAttempt.IsZero() {
		if earliest := s.lastAttempt.Add(s.minSyncPeriod); at.Before(earliest) {
			at = earliest
		}
	}
	return at, true
}

// begin records that a sync starts at now and returns whether it must be full.
func (s *schedule) begin(now time.Time) bool {
	full := s.needFull || !now.Before(s.lastFull.Add(s.fullSyncPeriod))
	s.dirty = false
	s.lastAttempt = now
	return full
}

// end records the result of the sync that started at start.
func (s *schedule) end(start time.Time, full bool, err error) {
	if err != nil {
		s.needFull = true
		s.failures++
		s.retryAt = start.Add(s.backoff())
		return
	}
	s.failures = 0
	s.retryAt = time.Time{}
	s.lastSuccess = start
	if full {
		s.needFull = false
		s.lastFull = start
	}
}

// backoff is the wait before retrying after s.failures consecutive failures:
// MinSyncPeriod (at least a second, so that a zero MinSyncPeriod does not spin on
// a broken kernel interface), doubling up to SyncPeriod.
func (s *schedule) backoff() time.Duration {
	d := max(s.minSyncPeriod, time.Second)
	for i := 1; i < s.failures && d < s.syncPeriod; i++ {
		d *= 2
	}
	return min(d, s.syncPeriod)
}
