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

package nftables

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Options configures a Backend.
type Options struct {
	// Interfaces reach the kernel, one per family the backend programs, each
	// bound to that family's TableName table (knftables.New(knftables.IPv4Family,
	// TableName), or a knftables.Fake in tests); at least one is required.
	Interfaces map[model.Family]knftables.Interface
	// MasqueradeBit is the packet mark bit asking for masquerade, 0 to 31;
	// DefaultMasqueradeBit when nil.
	MasqueradeBit *int
	// Clock is the clock of SyncStats; the real one when nil.
	Clock clock.PassiveClock
	// TableIntact reports whether family's table still holds its nat-prerouting
	// rule, the check every partial sync starts with; nil lists the chain's rules
	// through the Interface. NewForNode asks the kernel over netlink instead:
	// nft reads much of a large table even to list one chain.
	TableIntact func(ctx context.Context, family model.Family) (bool, error)
}

// SyncStats describes one family's last Sync, for logs, metrics and benchmarks.
type SyncStats struct {
	// Full reports whether it was a full sync; Tampered whether it became one
	// because the table was flushed or deleted by someone else.
	Full, Tampered bool
	// Start is when it started; Check how long looking for tampering took (a
	// partial sync does it first), List how long a full sync's listing of the
	// table took, Render how long building the transaction took and Apply how
	// long nft took to run it.
	Start                      time.Time
	Check, List, Render, Apply time.Duration
	// Operations is the number of operations in the transaction.
	Operations int
	// ServicePorts is the number of service ports in the family; Chains the
	// number of per-service-port chains written, Deleted the objects deleted
	// and Elements the map and set elements added or deleted.
	ServicePorts, Chains, Deleted, Elements int
	// Conflicts counts service addresses claimed by more than one service port;
	// only the first (in name order) gets them.
	Conflicts int
	// Err is the sync's error, nil when it succeeded.
	Err error

	bytes int
}

// Bytes returns the size of the transaction's nft text.
func (s SyncStats) Bytes() int { return s.bytes }

// Backend is the nftables backend: a dataplane.Backend, dataplane.FullSyncer,
// dataplane.WriteReporter and dataplane.TamperChecker. It is safe for concurrent use; syncs are serialised.
type Backend struct {
	families []model.Family
	nft      map[model.Family]knftables.Interface
	now      func() time.Time
	intact   func(ctx context.Context, family model.Family) (bool, error)

	mu    sync.Mutex
	state map[model.Family]*familyState
}

// familyState is what the backend knows about one family's table.
type familyState struct {
	renderer *renderer
	// applied is what the last successful sync left in the table; nil when that
	// is unknown (at start, after a failure, after Cleanup).
	applied  *record
	needFull bool
	last     SyncStats
}

// record is what a successful sync applied.
type record struct {
	fixedHash uint64
	// ports are the renders of the service ports applied.
	ports map[model.ServicePortName]*portRender
	// chains and sets are every per-service-port chain (with its rules' hash)
	// and affinity set in the table.
	chains map[string]uint64
	sets   map[string]bool
	// claims are the elements of the fixed maps: container → key → the service
	// port that holds it and its value. A key two service ports ask for (two
	// Services on one external address and port) goes to the first in name
	// order on a full sync, and stays with its holder on partial ones.
	claims map[string]map[string]claim
	// nodePortIPs and healthChecks are the elements of the fixed sets.
	nodePortIPs, healthChecks map[string]element
	// hairpins counts, per element of the hairpin set, the service ports that
	// ask for it: the element goes when the last of them lets it go.
	hairpins map[string]int
}

// claim is a map element held by a service port.
type claim struct {
	owner model.ServicePortName
	value string
}

// New returns a Backend. Its first Sync is a full one.
func New(opts Options) (*Backend, error) {
	if len(opts.Interfaces) == 0 {
		return nil, errors.New("nftables backend: at least one nftables interface is required")
	}
	bit := DefaultMasqueradeBit
	if opts.MasqueradeBit != nil {
		bit = *opts.MasqueradeBit
	}
	if bit < 0 || bit > 31 {
		return nil, fmt.Errorf("nftables backend: masquerade bit %d is not in [0, 31]", bit)
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	b := &Backend{nft: opts.Interfaces, now: clk.Now, intact: opts.TableIntact, state: map[model.Family]*familyState{}}
	if b.intact == nil {
		b.intact = b.listIntact
	}
	for _, f := range model.Families {
		if nft, ok := opts.Interfaces[f]; ok && nft != nil {
			b.families = append(b.families, f)
			b.state[f] = &familyState{renderer: newRenderer(f, bit), needFull: true}
		}
	}
	if len(b.families) != len(opts.Interfaces) {
		return nil, errors.New("nftables backend: interfaces given for unknown families or nil")
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

// Tampered implements dataplane.TamperChecker with the check partial syncs start
// with (Options.TableIntact): a family whose table was deleted or flushed since
// its last successful sync gets a full sync next. Families whose next sync is
// full anyway are not checked.
func (b *Backend) Tampered(ctx context.Context) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tampered := false
	var errs []error
	for _, f := range b.families {
		fs := b.state[f]
		if fs.needFull || fs.applied == nil {
			continue
		}
		intact, err := b.intact(ctx, f)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
		case !intact:
			logr.FromContextOrDiscard(ctx).Info("the table was flushed or deleted by something else; resyncing fully",
				"family", f.String(), "table", TableName)
		default:
			continue
		}
		fs.needFull, tampered = true, true
	}
	return tampered, errors.Join(errs...)
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

// BytesWritten implements dataplane.WriteReporter: the size of the nft text of the
// last sync of family.
func (b *Backend) BytesWritten(family model.Family, since time.Time) (int, bool) {
	st := b.LastSync(family)
	if st.Start.IsZero() || st.Start.Before(since) || st.Err != nil {
		return 0, false
	}
	return st.Bytes(), true
}

// Sync implements dataplane.Backend, with one nft transaction per family. A
// partial sync first checks that the table still holds its nat-prerouting rule
// (one `nft list chain`, the same cost at any size): a deleted table or a flushed
// one (nft flush ruleset, nft flush table) makes it a full sync, which puts
// everything back.
func (b *Backend) Sync(ctx context.Context, desired *model.State) error {
	if desired == nil {
		// Level-triggered, a nil state would mean "no services" and wipe the
		// node; it can only be a bug in the caller.
		return errors.New("nftables backend: nil desired state")
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
	fs, nft := b.state[f], b.nft[f]
	log := logr.FromContextOrDiscard(ctx).WithValues("family", f.String())
	full := fs.needFull || fs.applied == nil
	stats := SyncStats{Start: b.now(), ServicePorts: len(v.ServicePorts)}
	if !full {
		intact, err := b.intact(ctx, f)
		stats.Check = b.now().Sub(stats.Start)
		switch {
		case err != nil:
			log.Error(err, "cannot tell whether the table is still in place; resyncing fully")
			full = true
		case !intact:
			log.Info("the table was flushed or deleted by something else; resyncing fully", "table", TableName)
			full, stats.Tampered = true, true
		}
	}
	stats.Full = full
	defer func() {
		stats.Err = err
		fs.last = stats
		if err != nil {
			// The transaction failed as a whole, so the table holds what it
			// held; but a failure may come from a table changed behind our
			// back, which only a full sync repairs.
			fs.applied, fs.needFull = nil, true
		}
	}()

	var existing *listing
	if full {
		listStart := b.now()
		existing, err = list(ctx, nft)
		if err != nil {
			return fmt.Errorf("listing the table: %w", err)
		}
		stats.List = b.now().Sub(listStart)
	}

	renderStart := b.now()
	d := fs.renderer.render(v)
	tx := nft.NewTransaction()
	prev := fs.applied
	if full {
		prev = nil
	}
	rec, n := write(tx, f, d, prev, existing)
	applyStart := b.now()
	stats.Render = applyStart.Sub(renderStart)
	stats.Chains, stats.Deleted, stats.Elements, stats.Conflicts = n.chains, n.deleted, n.elements, n.conflicts
	stats.Operations = tx.NumOperations()
	// The size of the text (13 MB on a first sync at 5,000 service ports, 0.1 s
	// to build again) is measured while nft runs, in another process: the agent
	// asks for it after every sync, and building it then cost the agent CPU
	// after the sync, and kept the transaction alive until the next one.
	size := make(chan int, 1)
	go func() { size <- len(tx.String()) }()
	err = nft.Run(ctx, tx)
	stats.bytes = <-size
	if err != nil {
		return err
	}
	stats.Apply = b.now().Sub(applyStart)
	fs.applied, fs.needFull = rec, false
	return nil
}

// listIntact is the TableIntact check through the Interface: nat-prerouting has
// a rule. A missing table or chain is not intact.
func (b *Backend) listIntact(ctx context.Context, f model.Family) (bool, error) {
	rules, err := b.nft[f].ListRules(ctx, chainNATPrerouting)
	if knftables.IsNotFound(err) {
		return false, nil
	}
	return len(rules) > 0, err
}

// listing is what a full sync finds in the kernel's table.
type listing struct {
	chains, sets, maps []string
}

// list lists the table's chains, sets and maps: names only, not rules. A missing
// table is an empty listing.
func list(ctx context.Context, nft knftables.Interface) (*listing, error) {
	var l listing
	var err error
	if l.chains, err = nft.List(ctx, "chain"); err != nil && !knftables.IsNotFound(err) {
		return nil, err
	}
	for _, what := range []struct {
		kind string
		into *[]string
	}{{"set", &l.sets}, {"map", &l.maps}} {
		names, err := nft.List(ctx, what.kind)
		switch {
		case err == nil:
			// Anonymous sets and maps (__set0, __map0: a rule's { ... }, a
			// numgen vmap) belong to their rules and go with them; netlink
			// lists them, nft does not.
			*what.into = slices.DeleteFunc(names, func(n string) bool { return strings.HasPrefix(n, "__") })
		case knftables.IsNotFound(err):
		case len(l.chains) == 0:
			// Over netlink (knftables.UseNetlink) a missing table is an
			// error that does not say so; listing chains, which lists the
			// whole family, succeeded and found none of the table's. A table
			// without chains holds nothing a full sync needs to remove.
		default:
			return nil, err
		}
	}
	return &l, nil
}

// written counts what write put in a transaction.
type written struct {
	chains, deleted, elements, conflicts int
}

// write fills tx with what takes the table from prev (nil on a full sync, where
// existing is what the kernel holds instead) to d, and returns the record of the
// table once tx is applied. It reuses prev for that record: the caller drops prev
// either way, for the new record when tx succeeds or for a full sync when it
// fails.
func write(tx *knftables.Transaction, f model.Family, d *desired, prev *record, existing *listing) (*record, written) {
	var n written
	full := prev == nil
	rec := prev
	if full {
		rec = &record{
			ports:  make(map[model.ServicePortName]*portRender, len(d.ports)),
			chains: map[string]uint64{},
			sets:   map[string]bool{},
			claims: map[string]map[string]claim{},
		}
	}
	// A full sync flushes a chain only when the listing found it: flushing a
	// chain the same transaction creates is a no-op that nft still parses and
	// sends, one command per chain (11,000 at 1,000 service ports).
	var listed map[string]bool
	if full {
		listed = make(map[string]bool, len(existing.chains))
		for _, c := range existing.chains {
			listed[c] = true
		}
	}
	flush := func(c *knftables.Chain) {
		if !full || listed[c.Name] {
			tx.Flush(c)
		}
	}
	fixedMaps, fixedSets := fixedContainers(f)
	for _, m := range fixedMaps {
		if rec.claims[m.Name] == nil {
			rec.claims[m.Name] = map[string]claim{}
		}
	}
	if full {
		// A partial sync leaves them out: the table check found the table
		// in place, and declaring them makes nft read the maps' elements.
		tx.Add(&knftables.Table{Comment: knftables.PtrTo(tableComment)})
		for _, m := range fixedMaps {
			tx.Add(m)
		}
		for _, s := range fixedSets {
			tx.Add(s)
		}
	}

	// Which service ports changed, and which went away.
	current := make(map[model.ServicePortName]bool, len(d.names))
	var changed []int
	for i, name := range d.names {
		current[name] = true
		if full || rec.ports[name] != d.ports[i] {
			changed = append(changed, i)
		}
	}
	var gone []model.ServicePortName
	if !full {
		for name := range rec.ports {
			if !current[name] {
				gone = append(gone, name)
			}
		}
		slices.SortFunc(gone, func(a, b model.ServicePortName) int { return a.Compare(b) })
	}

	// Sets before the rules that use them, chains before the rules and
	// elements that go to them.
	for _, i := range changed {
		for _, s := range d.ports[i].sets {
			if full || !rec.sets[s.Name] {
				tx.Add(s)
			}
		}
	}
	fixedChanged := full || rec.fixedHash != d.fixedHash
	if fixedChanged {
		for _, c := range d.fixed {
			tx.Add(c.chain)
		}
	}
	var write []renderedChain
	for _, i := range changed {
		for _, c := range d.ports[i].chains {
			if h, ok := rec.chains[c.name]; full || !ok || h != c.hash {
				write = append(write, c)
				tx.Add(&knftables.Chain{Name: c.name})
			}
		}
	}
	if fixedChanged {
		for _, c := range d.fixed {
			flush(c.chain)
			for _, r := range c.rules {
				tx.Add(&knftables.Rule{Chain: c.chain.Name, Rule: r})
			}
		}
	}
	for _, c := range write {
		flush(&knftables.Chain{Name: c.name})
		for _, r := range c.rules {
			tx.Add(&knftables.Rule{Chain: c.name, Rule: r})
		}
	}
	n.chains = len(write)

	// Map elements: a full sync rewrites the maps whole; a partial one deletes
	// the elements of changed and removed service ports that went or changed,
	// then adds the ones that came or changed.
	isMap := func(c string) bool { return c != setNodePortIPs && c != setHealthCheckPorts }
	elem := func(c string, e element) *knftables.Element {
		if isMap(c) {
			return &knftables.Element{Map: c, Key: e.key, Value: []string{e.value}}
		}
		return &knftables.Element{Set: c, Key: e.key}
	}
	if full {
		for _, m := range fixedMaps {
			tx.Flush(m)
		}
		for _, s := range fixedSets {
			tx.Flush(s)
		}
	} else {
		release := func(name model.ServicePortName, old, cur *portRender) {
			want := map[string]string{}
			if cur != nil {
				for _, e := range cur.elems {
					want[e.container+" "+e.key] = e.e.value
				}
			}
			for _, e := range old.elems {
				c, ok := rec.claims[e.container][e.key]
				if !ok || c.owner != name {
					continue
				}
				if v, ok := want[e.container+" "+e.key]; ok && v == c.value {
					continue
				}
				tx.Delete(elem(e.container, e.e))
				delete(rec.claims[e.container], e.key)
				n.elements++
			}
		}
		for _, i := range changed {
			if old := rec.ports[d.names[i]]; old != nil {
				release(d.names[i], old, d.ports[i])
			}
		}
		for _, name := range gone {
			release(name, rec.ports[name], nil)
		}
	}
	for _, i := range changed {
		name := d.names[i]
		for _, e := range d.ports[i].elems {
			c, ok := rec.claims[e.container][e.key]
			switch {
			case ok && c.owner != name:
				n.conflicts++
				continue
			case ok && c.value == e.e.value:
				continue
			}
			tx.Add(elem(e.container, e.e))
			rec.claims[e.container][e.key] = claim{owner: name, value: e.e.value}
			n.elements++
		}
	}
	for _, set := range []struct {
		name      string
		want, had map[string]element
	}{{setNodePortIPs, d.nodePortIPs, rec.nodePortIPs}, {setHealthCheckPorts, d.healthChecks, rec.healthChecks}} {
		for _, k := range sortedKeys(set.had) {
			if _, ok := set.want[k]; !ok && !full {
				tx.Delete(elem(set.name, set.had[k]))
				n.elements++
			}
		}
		for _, k := range sortedKeys(set.want) {
			if _, ok := set.had[k]; !ok || full {
				tx.Add(elem(set.name, set.want[k]))
				n.elements++
			}
		}
	}
	rec.nodePortIPs, rec.healthChecks = d.nodePortIPs, d.healthChecks
	n.elements += writeHairpins(tx, d, rec, changed, gone, full)

	// Stale objects: chains are flushed before any is deleted, since they may
	// jump to each other; sets go after the chains that used them.
	var staleChains, staleSets, staleMaps []string
	if full {
		for _, pr := range d.ports {
			for _, c := range pr.chains {
				rec.chains[c.name] = c.hash
			}
			for _, s := range pr.sets {
				rec.sets[s.Name] = true
			}
		}
		fixed := map[string]bool{}
		for _, c := range d.fixed {
			fixed[c.chain.Name] = true
		}
		for _, c := range existing.chains {
			if _, ok := rec.chains[c]; !ok && !fixed[c] {
				staleChains = append(staleChains, c)
			}
		}
		for _, s := range existing.sets {
			if !rec.sets[s] && !slices.ContainsFunc(fixedSets, func(f *knftables.Set) bool { return f.Name == s }) {
				staleSets = append(staleSets, s)
			}
		}
		for _, m := range existing.maps {
			if !slices.ContainsFunc(fixedMaps, func(f *knftables.Map) bool { return f.Name == m }) {
				staleMaps = append(staleMaps, m)
			}
		}
	} else {
		drop := func(old, cur *portRender) {
			keepChains, keepSets := map[string]bool{}, map[string]bool{}
			if cur != nil {
				for _, c := range cur.chains {
					keepChains[c.name] = true
				}
				for _, s := range cur.sets {
					keepSets[s.Name] = true
				}
			}
			for _, c := range old.chains {
				if !keepChains[c.name] {
					staleChains = append(staleChains, c.name)
					delete(rec.chains, c.name)
				}
			}
			for _, s := range old.sets {
				if !keepSets[s.Name] {
					staleSets = append(staleSets, s.Name)
					delete(rec.sets, s.Name)
				}
			}
		}
		for _, i := range changed {
			if old := rec.ports[d.names[i]]; old != nil {
				drop(old, d.ports[i])
			}
		}
		for _, name := range gone {
			drop(rec.ports[name], nil)
			delete(rec.ports, name)
		}
		for _, i := range changed {
			for _, c := range d.ports[i].chains {
				rec.chains[c.name] = c.hash
			}
			for _, s := range d.ports[i].sets {
				rec.sets[s.Name] = true
			}
		}
	}
	for _, i := range changed {
		rec.ports[d.names[i]] = d.ports[i]
	}
	rec.fixedHash = d.fixedHash
	sort.Strings(staleChains)
	sort.Strings(staleSets)
	for _, c := range staleChains {
		tx.Flush(&knftables.Chain{Name: c})
	}
	for _, c := range staleChains {
		tx.Delete(&knftables.Chain{Name: c})
	}
	for _, s := range staleSets {
		tx.Delete(&knftables.Set{Name: s})
	}
	for _, m := range staleMaps {
		tx.Delete(&knftables.Map{Name: m})
	}
	n.deleted = len(staleChains) + len(staleSets) + len(staleMaps)
	return rec, n
}

// writeHairpins adds and deletes the hairpin set's elements that the changed and
// gone service ports make come or go, counting in rec who asks for each: a full
// sync (whose set was flushed) adds every element once. It runs before rec.ports
// holds the changed ports' new renders, and returns the elements written.
func writeHairpins(tx *knftables.Transaction, d *desired, rec *record, changed []int, gone []model.ServicePortName, full bool) int {
	written := 0
	if full {
		rec.hairpins = map[string]int{}
		for _, i := range changed {
			for _, h := range d.ports[i].hairpins {
				if rec.hairpins[h.key] == 0 {
					tx.Add(&knftables.Element{Set: setHairpin, Key: h.e.key})
					written++
				}
				rec.hairpins[h.key]++
			}
		}
		return written
	}
	delta, elems := map[string]int{}, map[string]element{}
	count := func(pr *portRender, by int) {
		for _, h := range pr.hairpins {
			delta[h.key] += by
			elems[h.key] = h.e
		}
	}
	for _, i := range changed {
		if old := rec.ports[d.names[i]]; old != nil {
			count(old, -1)
		}
		count(d.ports[i], 1)
	}
	for _, name := range gone {
		count(rec.ports[name], -1)
	}
	for _, k := range sortedKeys(delta) {
		before := rec.hairpins[k]
		after := before + delta[k]
		switch {
		case after <= 0:
			delete(rec.hairpins, k)
			if before > 0 {
				tx.Delete(&knftables.Element{Set: setHairpin, Key: elems[k].key})
				written++
			}
		default:
			rec.hairpins[k] = after
			if before == 0 {
				tx.Add(&knftables.Element{Set: setHairpin, Key: elems[k].key})
				written++
			}
		}
	}
	return written
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// Cleanup implements dataplane.Backend: it deletes the table of every family,
// which takes every chain, map, set and hook with it. A missing table is fine.
func (b *Backend) Cleanup(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, f := range b.families {
		fs := b.state[f]
		fs.applied, fs.needFull = nil, true
		if err := deleteTable(ctx, b.nft[f]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
		}
	}
	return errors.Join(errs...)
}

// deleteTable deletes nft's table, whether or not it exists: adding it first
// makes the delete always find it, in one transaction.
func deleteTable(ctx context.Context, nft knftables.Interface) error {
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("deleting table %s: %w", TableName, err)
	}
	return nil
}
