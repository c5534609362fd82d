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
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// apiProbePeriod is how often the API server is probed. With a probe a second, work
// that waited for the API server is retried within about a second of its return,
// whatever backoff the informers are in (client-go's reflectors back off up to 30s).
const apiProbePeriod = time.Second

// apiProbeTimeout bounds one probe: an API server that does not answer /readyz in
// this time counts as unreachable.
const apiProbeTimeout = 2 * time.Second

// apiMonitor probes the API server's /readyz, reports it in the manager's readiness
// check, logs one warning when it becomes unreachable and one when it is back, and
// runs the recovery hooks when it is back.
type apiMonitor struct {
	client    rest.Interface
	onRecover []func(context.Context) error

	mu       sync.Mutex
	probed   bool
	lastErr  error
	downFrom time.Time
}

func newAPIMonitor(cfg *rest.Config, onRecover ...func(context.Context) error) (*apiMonitor, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = apiProbeTimeout
	// The probe must not queue behind the controllers' requests in the client's
	// rate limiter, nor be throttled itself: one request a second.
	cfg.RateLimiter = nil
	cfg.QPS, cfg.Burst = -1, 0
	cfg.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	client, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("unable to build the API server probe: %w", err)
	}
	return &apiMonitor{client: client, onRecover: onRecover}, nil
}

// NeedLeaderElection is false: a standby reports its readiness too.
func (m *apiMonitor) NeedLeaderElection() bool { return false }

// Start probes until ctx ends.
func (m *apiMonitor) Start(ctx context.Context) error {
	log := processLogger
	if log.GetSink() == nil {
		log = logf.FromContext(ctx)
	}
	log = log.WithName("apiserver")
	t := time.NewTicker(apiProbePeriod)
	defer t.Stop()
	for {
		m.probe(ctx, log)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (m *apiMonitor) probe(ctx context.Context, log logr.Logger) {
	pctx, cancel := context.WithTimeout(ctx, apiProbeTimeout)
	err := m.client.Get().AbsPath("/readyz").Do(pctx).Error()
	cancel()
	if ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	wasDown := m.probed && m.lastErr != nil
	m.probed, m.lastErr = true, err
	if err != nil && !wasDown {
		m.downFrom = time.Now()
	}
	downFrom := m.downFrom
	m.mu.Unlock()

	switch {
	case err != nil && !wasDown:
		warn(log, "the API server cannot be reached; decisions wait until it is back", "error", err.Error())
	case err == nil && wasDown:
		warn(log, "the API server is reachable again", "unreachableFor", time.Since(downFrom).Round(time.Millisecond).String())
		for _, hook := range m.onRecover {
			if err := hook(ctx); err != nil {
				log.Error(err, "recovery pass failed; the informers catch up by themselves")
			}
		}
	}
}

// Check is a readiness check: it fails until the API server has answered a probe,
// and while the last probe failed.
func (m *apiMonitor) Check(*http.Request) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case !m.probed:
		return errors.New("the API server has not been probed yet")
	case m.lastErr != nil:
		return fmt.Errorf("the API server cannot be reached: %w", m.lastErr)
	}
	return nil
}

// processLogger is the logger Run built, unwrapped: controller-runtime's own loggers
// delegate and hide the zap logger that can write a WARN line.
var processLogger logr.Logger

// Reachable reports whether the last probe reached the API server (true before the
// first probe: nothing says otherwise yet).
func (m *apiMonitor) Reachable() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr == nil
}

// warn logs at zap's WARN level when the logger is zap (the manager's), which logr
// cannot express; else at info.
func warn(log logr.Logger, msg string, kv ...any) {
	if u, ok := log.GetSink().(zapr.Underlier); ok {
		u.GetUnderlying().Sugar().Warnw(msg, kv...)
		return
	}
	log.Info(msg, kv...)
}
