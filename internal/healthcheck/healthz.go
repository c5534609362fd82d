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

package healthcheck

import (
	"net/http"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Health is the agent's own health, served on /healthz as kube-proxy serves its
// own: healthy unless a change has been waiting longer than the timeout for a sync
// to apply it. An idle agent with nothing to apply is healthy however long ago it
// last synced. Syncs must not overlap; the Runner guarantees that.
type Health struct {
	timeout time.Duration
	clock   clock.PassiveClock

	mu sync.Mutex
	// lastUpdated is when the last successful sync ended.
	lastUpdated time.Time
	// oldestQueued is when the oldest change not yet taken by a sync arrived;
	// zero when there is none.
	oldestQueued time.Time
	// inSync is the oldest change the running sync took; zero when none runs.
	inSync time.Time
}

// NewHealth returns a Health that turns unhealthy once a change waits longer than
// timeout; clk is its clock, the real one when nil.
func NewHealth(timeout time.Duration, clk clock.PassiveClock) *Health {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Health{timeout: timeout, clock: clk}
}

// QueuedUpdate records that a change is waiting for a sync.
func (h *Health) QueuedUpdate() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.oldestQueued.IsZero() {
		h.oldestQueued = h.clock.Now()
	}
}

// SyncStarted records that a sync starts: it takes every change queued so far.
// Changes queued while it runs wait for the next one.
func (h *Health) SyncStarted() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inSync, h.oldestQueued = h.oldestQueued, time.Time{}
}

// SyncEnded records the end of the sync SyncStarted announced. A failed sync
// leaves the changes it took waiting, with their original age.
func (h *Health) SyncEnded(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		if !h.inSync.IsZero() && (h.oldestQueued.IsZero() || h.inSync.Before(h.oldestQueued)) {
			h.oldestQueued = h.inSync
		}
	} else {
		h.lastUpdated = h.clock.Now()
	}
	h.inSync = time.Time{}
}

// Healthy reports whether no change has waited longer than the timeout, and when
// the last successful sync ended.
func (h *Health) Healthy() (bool, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	oldest := h.oldestQueued
	if !h.inSync.IsZero() && (oldest.IsZero() || h.inSync.Before(oldest)) {
		oldest = h.inSync
	}
	return oldest.IsZero() || now.Sub(oldest) <= h.timeout, h.lastUpdated
}

// healthzResponse is the body of /healthz, kube-proxy's fields.
type healthzResponse struct {
	LastUpdated time.Time `json:"lastUpdated"`
	CurrentTime time.Time `json:"currentTime"`
}

// ServeHTTP serves /healthz: 200 when healthy, 503 when not, with the time of the
// last successful sync.
func (h *Health) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	healthy, last := h.Healthy()
	code := http.StatusOK
	if !healthy {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, healthzResponse{LastUpdated: last, CurrentTime: h.clock.Now()})
}
