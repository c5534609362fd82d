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

package manager

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

type monitorLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *monitorLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *monitorLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAPIMonitor drives the API server monitor through an outage against a stand-in
// /readyz: not ready before the first probe and while the API server fails, one WARN
// line when it goes and one when it is back, and the recovery hook run once, on
// return.
func TestAPIMonitor(t *testing.T) {
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || !healthy.Load() {
			http.Error(w, "etcd not ready", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()

	var logs monitorLog
	processLogger = zap.New(zap.WriteTo(&logs))
	defer func() { processLogger = processLogger.WithSink(nil) }()
	log := processLogger.WithName("apiserver")

	recovered := 0
	m, err := newAPIMonitor(&rest.Config{Host: srv.URL}, func(context.Context) error { recovered++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(nil); err == nil {
		t.Errorf("ready before the first probe")
	}
	ctx := context.Background()

	healthy.Store(true)
	m.probe(ctx, log)
	if err := m.Check(nil); err != nil || !m.Reachable() {
		t.Errorf("not ready with the API server up: %v", err)
	}

	healthy.Store(false)
	for range 3 {
		m.probe(ctx, log)
	}
	if err := m.Check(nil); err == nil || m.Reachable() {
		t.Errorf("ready while the API server fails")
	}
	healthy.Store(true)
	for range 3 {
		m.probe(ctx, log)
	}
	if err := m.Check(nil); err != nil {
		t.Errorf("not ready after the API server came back: %v", err)
	}

	out := logs.String()
	if n := strings.Count(out, "the API server cannot be reached"); n != 1 {
		t.Errorf("%d 'cannot be reached' lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "the API server is reachable again"); n != 1 {
		t.Errorf("%d 'reachable again' lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, `"level":"warn"`); n != 2 {
		t.Errorf("%d WARN lines, want 2:\n%s", n, out)
	}
	if recovered != 1 {
		t.Errorf("the recovery hook ran %d times, want 1", recovered)
	}
}
