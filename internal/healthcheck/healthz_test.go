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
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func newClock() *clocktesting.FakeClock {
	return clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

func healthy(t *testing.T, h *Health) bool { t.Helper(); ok, _ := h.Healthy(); return ok }
func wantHealth(t *testing.T, h *Health, want bool, when string) {
	t.Helper()
	if got := healthy(t, h); got != want {
		t.Errorf("%s: healthy = %v, want %v", when, got, want)
	}
}

func TestHealth(t *testing.T) {
	c := newClock()
	h := NewHealth(10*time.Second, c)
	wantHealth(t, h, true, "idle at start")

	h.QueuedUpdate()
	c.Step(5 * time.Second)
	h.QueuedUpdate() // does not reset the age of the oldest change
	c.Step(6 * time.Second)
	wantHealth(t, h, false, "a change waiting 11s")

	h.SyncStarted()
	wantHealth(t, h, false, "while the late sync runs")
	c.Step(time.Second)
	h.QueuedUpdate() // arrives during the sync
	h.SyncEnded(nil)
	wantHealth(t, h, true, "after the sync")
	c.Step(11 * time.Second)
	wantHealth(t, h, false, "the change that arrived during the sync waited 11s")

	h.SyncStarted()
	h.SyncEnded(nil)
	c.Step(time.Hour)
	wantHealth(t, h, true, "idle for an hour")

	h.QueuedUpdate()
	h.SyncStarted()
	c.Step(time.Second)
	h.SyncEnded(errors.New("iptables-restore failed"))
	c.Step(9 * time.Second)
	wantHealth(t, h, true, "a failed change 10s old")
	c.Step(time.Second)
	wantHealth(t, h, false, "a failed change 11s old")
}

func TestHealthServeHTTP(t *testing.T) {
	c := newClock()
	h := NewHealth(time.Second, c)
	h.SyncStarted()
	h.SyncEnded(nil)
	synced := c.Now()
	c.Step(time.Minute)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("idle: code %d, want 200", rec.Code)
	}
	var body healthzResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if !body.LastUpdated.Equal(synced) || !body.CurrentTime.Equal(c.Now()) {
		t.Errorf("body %+v, want lastUpdated %v and currentTime %v", body, synced, c.Now())
	}

	h.QueuedUpdate()
	c.Step(2 * time.Second)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("stale: code %d, want 503", rec.Code)
	}
}
