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

package iptables

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Options configures a Backend.
type Options struct {
	// Executor reaches the kernel; required.
	Executor Executor
	// Families are the IP families the backend programs; both when empty. A node
	// without IPv6 (or without ip6tables) should list only IPv4.
	Families []model.Family
	// MasqueradeBit is the packet mark bit asking for masquerade, 0 to 31;
	// DefaultMasqueradeBit when nil.
	MasqueradeBit *int
	// Now is the clock of SyncStats; time.Now when nil.
	Now func() time.Time
}

// SyncStats describes one family's last Sync, for logs and metrics.
type SyncStats struct {
	// Full reports whether it was a full sync.
	Full bool
	// Start is when it started; Render and Apply are how long rendering and
	// writing (iptables-restore, and the hooks on a full sync) took. Listing the
	// kernel's chains before a full sync counts in neither.
	Start         time.Time
	Render, Apply time.Duration
	// PayloadBytes is the size of the iptables-restore payload.
	PayloadBytes int
	// ServicePorts is the number of service ports in the family; Written the
	// number whose chains were written; DeletedChains the chains removed.
	ServicePorts, Written, DeletedChains int
	// Err is the sync's error, nil when it succeeded.
	Err error
}

// Backend is the iptables backend: a dataplane.Backend and dataplane.FullSyncer.
// It is safe for concurrent use, though syncs are serialised.
type Backend struct {
	exec     Executor
	families []model.Family
	now      func() time.Time

	mu    sync.Mutex
	state map[model.Family]*familyState
}

// familyState is what the backend knows about one family's kernel state.
type familyState struct {
	renderer *renderer
	// applied is the record of every service port the last successful Sync
	// wrote; nil when the kernel's state is unknown (at start, after a failure,
	// after Cleanup).
	applied  map[model.ServicePortName]serviceRecord
	needFull bool
	last     SyncStats
}

// New returns a Backend. Its first Sync is a full one.
func New(opts Options) (*Backend, error) {
	if opts.Executor == nil {
		return nil, errors.New("iptables backend: an Executor is required")
	}
	bit := DefaultMasqueradeBit
	if opts.MasqueradeBit != nil {
		bit = *opts.MasqueradeBit
	}
	if bit < 0 || bit > 31 {
		return nil, fmt.Errorf("iptables backend: masquerade bit %d is not in [0, 31]", bit)
	}
	families := slices.Clone(opts.Families)
	if len(families) == 0 {
		families = slices.Clone(model.Families)
	}
	b := &Backend{exec: opts.Executor, families: families, now: opts.Now, state: map[model.Family]*familyState{}}
	if b.now == nil {
		b.now = time.Now
	}
	for _, f := range families {
		if f != model.IPv4 && f != model.IPv6 {
			return nil, fmt.Errorf("iptables backend: unknown family %v", f)
		}
		b.state[f] = &familyState{renderer: newRenderer(f, bit), needFull: true}
	}
	return b, nil
}

// RequestFullSync makes the next Sync a full one for every family.
func (b *Backend) RequestFullSync() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, fs := range b.state {
		fs.needFull = true
	}
}

// LastSync returns the statistics of family's last Sync.
func (b *Backend) LastSync(family model.Family) SyncStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	if fs := b.state[family]; fs != nil {
		return fs.last
	}
	return SyncStats{}
}

// Sync implements dataplane.Backend. Each family is written with one
// iptables-restore --noflush run holding the filter and nat tables. A full sync
// also removes service chains it finds in the kernel but does not need (left by a
// previous agent) and re-installs the hooks; a partial one trusts its record of
// the last sync and writes only what changed.
func (b *Backend) Sync(ctx context.Context, desired *model.State) error {
	if desired == nil {
		// Level-triggered, a nil state would mean "no services" and wipe the
		// node; it can only be a bug in the caller.
		return errors.New("iptables backend: nil desired state")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, f := range b.families {
		if err := b.syncFamily(ctx, f, desired.View(f)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
		}
	}
	return errors.Join(errs...)
}

func (b *Backend) syncFamily(ctx context.Context, f model.Family, v *model.View) (err error) {
	fs := b.state[f]
	full := fs.needFull || fs.applied == nil
	stats := SyncStats{Full: full, Start: b.now(), ServicePorts: len(v.ServicePorts)}
	defer func() {
		stats.Err = err
		fs.last = stats
		if err != nil {
			// The kernel may or may not hold what we tried to write: forget the
			// record so that the next sync rewrites everything.
			fs.applied, fs.needFull = nil, true
		}
	}()

	var existing []string
	if full {
		saved, err := b.exec.Save(ctx, f, TableNAT)
		if err != nil {
			return fmt.Errorf("listing existing chains: %w", err)
		}
		existing = savedChains(saved)
	}

	renderStart := b.now()
	out := fs.renderer.render(v, fs.applied, full, existing)
	applyStart := b.now()
	stats.Render = applyStart.Sub(renderStart)
	stats.PayloadBytes, stats.Written, stats.DeletedChains = len(out.payload), out.written, out.deleted

	if err := b.exec.Restore(ctx, f, out.payload); err != nil {
		return err
	}
	if full {
		// Hooks go in after the restore, which creates the chains they jump to.
		// Installing them in reverse order at the top of each built-in chain
		// leaves them in the order of hooks.
		for i := len(hooks) - 1; i >= 0; i-- {
			if err := b.exec.EnsureJump(ctx, f, hooks[i]); err != nil {
				return fmt.Errorf("installing hook: %w", err)
			}
		}
	}
	stats.Apply = b.now().Sub(applyStart)
	fs.applied, fs.needFull = out.services, false
	return nil
}

// Cleanup implements dataplane.Backend: it removes the hooks, then every chain named
// with ChainPrefix in the filter and nat tables of every family, whoever created
// it.
func (b *Backend) Cleanup(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, f := range b.families {
		fs := b.state[f]
		fs.applied, fs.needFull = nil, true
		for _, j := range hooks {
			if err := b.exec.DeleteJump(ctx, f, j); err != nil {
				errs = append(errs, fmt.Errorf("%s: removing hook from %s %s: %w", f, j.Table, j.Chain, err))
			}
		}
		var payload bytes.Buffer
		for _, table := range []Table{TableFilter, TableNAT} {
			saved, err := b.exec.Save(ctx, f, table)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: listing %s chains: %w", f, table, err))
				continue
			}
			var ours []string
			for _, c := range savedChains(saved) {
				if strings.HasPrefix(c, ChainPrefix) {
					ours = append(ours, c)
				}
			}
			if len(ours) == 0 {
				continue
			}
			// Flushing every chain of ours (by declaring it) and deleting any other
			// rule that still jumps into one (a hook some older agent installed
			// with other words) leaves nothing referencing them, so they can all
			// be deleted in any order.
			fmt.Fprintf(&payload, "*%s\n", table)
			for _, c := range ours {
				declareChain(&payload, c)
			}
			for _, rule := range foreignJumps(saved) {
				payload.WriteString("-D " + rule + "\n")
			}
			for _, c := range ours {
				fmt.Fprintf(&payload, "-X %s\n", c)
			}
			payload.WriteString("COMMIT\n")
		}
		if payload.Len() == 0 {
			continue
		}
		if err := b.exec.Restore(ctx, f, payload.Bytes()); err != nil {
			errs = append(errs, fmt.Errorf("%s: deleting chains: %w", f, err))
		}
	}
	return errors.Join(errs...)
}

// savedChains returns the chain names declared in iptables-save output.
func savedChains(saved []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(saved))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) < 2 || line[0] != ':' {
			continue
		}
		if name, _, ok := bytes.Cut(line[1:], []byte(" ")); ok {
			out = append(out, string(name))
		}
	}
	return out
}

// foreignJumps returns the rules of iptables-save output that sit in chains not
// named with ChainPrefix and jump to one that is, as "CHAIN args...".
func foreignJumps(saved []byte) []string {
	var out []string
	for _, line := range strings.Split(string(saved), "\n") {
		rule, ok := strings.CutPrefix(line, "-A ")
		if !ok || strings.HasPrefix(rule, ChainPrefix) {
			continue
		}
		if args, err := tokenize(rule); err == nil {
			if target, _ := ruleTarget(args); strings.HasPrefix(target, ChainPrefix) {
				out = append(out, rule)
			}
		}
	}
	return out
}
