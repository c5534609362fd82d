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

package conntrack

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/model"
)

// maxAttempted bounds how many states of failed Syncs Backend keeps. A State can
// hold every service port of a large cluster, and kernels that half-apply a sync
// are rare: the last few attempts are enough.
const maxAttempted = 3

// Backend is a dataplane.Backend that clears stale conntrack entries (see Stale)
// after each successful Sync of the backend it wraps, as kube-proxy does after each
// successful iptables-restore. It is also a prometheus.Collector of its counts.
type Backend struct {
	inner dataplane.Backend
	exec  Executor

	mu sync.Mutex
	// applied is the state inner last applied; nil until a Sync succeeds. The
	// first Sync has nothing to compare with: the agent has just started, and
	// what the kernel holds came from an earlier process or from before any
	// rule existed. It lists the kernel's UDP entries instead and clears those
	// the new rules would not have made (Scan), as current kube-proxy does after
	// every sync; later Syncs clear only what their change made stale (Stale),
	// which needs no listing of a table that may hold a million entries.
	applied *model.State
	// attempted are the states of the Syncs that failed since applied, the most
	// recent last. A failed Sync leaves each family's rules either as they were or
	// as desired, so the kernel may hold any of them: stale entries are computed
	// against each.
	attempted []*model.State

	deleted  prometheus.Counter
	failures prometheus.Counter
}

var (
	_ dataplane.Backend       = &Backend{}
	_ dataplane.FullSyncer    = &Backend{}
	_ dataplane.WriteReporter = &Backend{}
	_ dataplane.TamperChecker = &Backend{}
	_ prometheus.Collector    = &Backend{}
)

// NewBackend returns a Backend applying rules with inner and clearing entries with
// exec.
func NewBackend(inner dataplane.Backend, exec Executor) *Backend {
	return &Backend{
		inner: inner,
		exec:  exec,
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "svcplane_agent_conntrack_entries_deleted_total",
			Help: "Stale UDP conntrack entries deleted after syncs: flows to endpoints that stopped serving, to services that got their first endpoint, to service addresses that went away.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "svcplane_agent_conntrack_cleanup_failures_total",
			Help: "conntrack deletions that failed; their entries stay until they expire or a later change clears them.",
		}),
	}
}

// Sync applies desired with the wrapped backend and, when that succeeds, deletes
// the conntrack entries the change made stale. It returns the wrapped backend's
// error only: a failed deletion is logged and counted but does not fail the sync.
// The rules are in place by then, and failing would make the Runner rewrite every
// rule again, which does not bring the deletion back: it is computed from the
// change, and the next sync sees none. kube-proxy, too, logs a failed cleanup and
// carries on.
func (b *Backend) Sync(ctx context.Context, desired *model.State) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.inner.Sync(ctx, desired); err != nil {
		b.attempt(desired)
		return err
	}
	filters := map[Filter]bool{}
	for _, prev := range append([]*model.State{b.applied}, b.attempted...) {
		for _, f := range Stale(prev, desired) {
			filters[f] = true
		}
	}
	if b.applied == nil {
		for _, f := range b.scan(ctx, desired) {
			filters[f] = true
		}
	}
	b.applied, b.attempted = desired, nil
	b.clear(ctx, slices.SortedFunc(maps.Keys(filters), Filter.Compare))
	return nil
}

// scan lists the kernel's UDP entries of each family with something to check and
// returns the filters of those desired's rules would not have made (Scan). A
// failed listing is logged and counted, and leaves that family's stale entries to
// expire.
func (b *Backend) scan(ctx context.Context, desired *model.State) []Filter {
	var out []Filter
	for _, family := range needsScan(desired) {
		entries, err := b.exec.List(ctx, family, model.UDP)
		if err != nil {
			b.failures.Add(1)
			logf.FromContext(ctx).Error(err, "listing conntrack entries to find those left stale while the agent was not running", "family", family.String())
			continue
		}
		out = append(out, Scan(desired, family, entries)...)
	}
	return out
}

// attempt remembers st as a state the kernel may hold, besides applied.
func (b *Backend) attempt(st *model.State) {
	b.attempted = append(b.attempted, st)
	if len(b.attempted) > maxAttempted {
		b.attempted = slices.Delete(b.attempted, 0, len(b.attempted)-maxAttempted)
	}
}

// clear deletes the entries of filters, one conntrack run each.
func (b *Backend) clear(ctx context.Context, filters []Filter) {
	log := logf.FromContext(ctx)
	for _, f := range filters {
		if ctx.Err() != nil {
			b.failures.Add(1)
			log.Error(context.Cause(ctx), "stale conntrack entries not cleared", "filter", f.String())
			continue
		}
		n, err := b.exec.Delete(ctx, f)
		b.deleted.Add(float64(n))
		if err != nil {
			b.failures.Add(1)
			log.Error(err, "clearing stale conntrack entries", "filter", f.String())
			continue
		}
		if n > 0 {
			log.V(1).Info("cleared stale conntrack entries", "filter", f.String(), "entries", n)
		}
	}
}

// Cleanup removes the wrapped backend's objects. The conntrack table is left
// alone, as kube-proxy's --cleanup leaves it: without rules, the entries' NAT is
// all that still reaches the endpoints. A Sync after a successful Cleanup starts
// from a node without rules: every UDP service port with endpoints counts as newly
// active then, because packets sent in between were routed without DNAT.
func (b *Backend) Cleanup(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.inner.Cleanup(ctx); err != nil {
		return err
	}
	if b.applied != nil {
		b.attempt(b.applied)
	}
	b.applied = &model.State{IPv4: model.View{Family: model.IPv4}, IPv6: model.View{Family: model.IPv6}}
	return nil
}

// RequestFullSync passes the request on to the wrapped backend, when it is a
// dataplane.FullSyncer.
func (b *Backend) RequestFullSync() {
	if fs, ok := b.inner.(dataplane.FullSyncer); ok {
		fs.RequestFullSync()
	}
}

// Tampered implements dataplane.TamperChecker for the wrapped backend, when it is
// one.
func (b *Backend) Tampered(ctx context.Context) (bool, error) {
	if tc, ok := b.inner.(dataplane.TamperChecker); ok {
		return tc.Tampered(ctx)
	}
	return false, nil
}

// Draining passes on the wrapped backend's Draining (the IPVS mode's real servers
// at weight 0, which only a sync removes), false when it has none.
func (b *Backend) Draining() bool {
	d, ok := b.inner.(interface{ Draining() bool })
	return ok && d.Draining()
}

// BytesWritten implements dataplane.WriteReporter for the wrapped backend, when it
// is one: clearing conntrack entries writes no rules.
func (b *Backend) BytesWritten(family model.Family, since time.Time) (int, bool) {
	if wr, ok := b.inner.(dataplane.WriteReporter); ok {
		return wr.BytesWritten(family, since)
	}
	return 0, false
}

// Describe implements prometheus.Collector.
func (b *Backend) Describe(ch chan<- *prometheus.Desc) {
	b.deleted.Describe(ch)
	b.failures.Describe(ch)
}

// Collect implements prometheus.Collector.
func (b *Backend) Collect(ch chan<- prometheus.Metric) {
	b.deleted.Collect(ch)
	b.failures.Collect(ch)
}
