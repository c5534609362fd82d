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
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

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
	// Clock is the clock of SyncStats; the real one when nil.
	Clock clock.PassiveClock
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
	// Check is how long looking for the canaries took, which every sync that
	// would be partial does first. Flushed are the tables whose canary was gone,
	// which made the sync a full one (as does a failure to look).
	Check   time.Duration
	Flushed []Table
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
	// checked is set when Tampered found the family's rules in place since its
	// last Sync: the next partial sync need not list the canaries again.
	checked bool
	// natCheckedAt is when Tampered last listed the nat table.
	natCheckedAt time.Time
	// clean are the versions of the canary tables (TableVersioner) when they were
	// last known to hold our rules: right after a sync wrote them, or when a
	// listing found them in place. A table still at its version needs no listing.
	// Nil when the Executor has no versions or the kernel's state is unknown.
	clean map[Table]string
	// fixed is the hash of the fixed chains' rules the last successful sync
	// wrote (rendered.fixed), valid while applied is not nil.
	fixed uint64
}

// natCheckPeriod is how often Tampered lists the nat table when a listing reads the
// whole table (iptables-legacy): at 10,000 service ports each listing takes seconds,
// and the agent checks every few seconds. The filter table, small, is checked every
// time, which catches a firewall reload (it flushes every table) at once; a flush of
// the nat table alone is caught within natCheckPeriod, as kube-proxy checks its
// canary once a sync period.
const natCheckPeriod = time.Minute

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
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	b := &Backend{exec: opts.Executor, families: families, now: clk.Now, state: map[model.Family]*familyState{}}
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

// Tampered implements dataplane.TamperChecker: it lists the canary chains of every
// family synced since its last full sync, and SVCP-SERVICES when services are
// programmed; when a canary is gone (a firewall reload, iptables -F or -X) or
// SVCP-SERVICES is empty, it makes the next Sync a full one and reports true.
func (b *Backend) Tampered(ctx context.Context) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tampered := false
	var errs []error
	for _, f := range b.families {
		fs := b.state[f]
		if fs.needFull || fs.applied == nil {
			continue // the next sync is full anyway
		}
		fs.checked = false
		versions := b.versions(ctx, f)
		wholeTable := false
		if wt, ok := b.exec.(interface{ ReadsWholeTable() bool }); ok && wt.ReadsWholeTable() {
			wholeTable = true
		}
		var tables []Table
		checkNAT := false
		for _, t := range changedTables(fs.clean, versions) {
			if t == TableNAT && wholeTable && !fs.natCheckedAt.IsZero() && b.now().Sub(fs.natCheckedAt) < natCheckPeriod {
				continue
			}
			tables = append(tables, t)
			checkNAT = checkNAT || t == TableNAT
		}
		if checkNAT {
			fs.natCheckedAt = b.now()
		}
		flushed, err := b.flushedTables(ctx, f, tables)
		if err == nil && len(flushed) == 0 && len(fs.applied) > 0 && checkNAT {
			// The canary only tells a table flush; iptables -t nat -F SVCP-SERVICES
			// empties the one chain every service hangs from. One more short
			// listing catches that too.
			var rules []string
			if rules, _, err = b.exec.ListRules(ctx, f, TableNAT, chainServices); err == nil && len(rules) == 0 {
				flushed = []Table{TableNAT}
			}
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
		case len(flushed) > 0:
			logr.FromContextOrDiscard(ctx).Info("rules were removed by something else (a firewall reload, iptables -F or -X); resyncing fully",
				"family", f.String(), "tables", flushed, "canary", chainCanary, "chain", chainServices)
		default:
			fs.checked = true
			if versions != nil {
				if fs.clean == nil {
					fs.clean = map[Table]string{}
				}
				for _, t := range tables {
					fs.clean[t] = versions[t]
				}
			}
			continue
		}
		fs.needFull, tampered = true, true
	}
	return tampered, errors.Join(errs...)
}

// versions returns the version of each canary table of family, or nil when the
// Executor cannot tell them (it is not a TableVersioner, or reading failed: then
// the tables are listed, as without versions).
func (b *Backend) versions(ctx context.Context, f model.Family) map[Table]string {
	tv, ok := b.exec.(TableVersioner)
	if !ok {
		return nil
	}
	out := make(map[Table]string, len(canaryTables))
	for _, t := range canaryTables {
		v, err := tv.TableVersion(ctx, f, t)
		if err != nil {
			if !errors.Is(err, ErrNoVersion) {
				logr.FromContextOrDiscard(ctx).V(1).Info("cannot tell whether a table changed; listing it", "family", f.String(), "table", t, "error", err.Error())
			}
			return nil
		}
		out[t] = v
	}
	return out
}

// changedTables returns the canary tables whose version (in now) is not the one in
// clean: every one when either is nil.
func changedTables(clean, now map[Table]string) []Table {
	if clean == nil || now == nil {
		return canaryTables
	}
	var out []Table
	for _, t := range canaryTables {
		if v, ok := clean[t]; !ok || v != now[t] {
			out = append(out, t)
		}
	}
	return out
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

// BytesWritten implements dataplane.WriteReporter: the iptables-restore payload of
// the last sync of family.
func (b *Backend) BytesWritten(family model.Family, since time.Time) (int, bool) {
	st := b.LastSync(family)
	if st.Start.IsZero() || st.Start.Before(since) || st.Err != nil {
		return 0, false
	}
	return st.PayloadBytes, true
}

// Sync implements dataplane.Backend. Each family is written with one
// iptables-restore --noflush run holding the filter and nat tables. A full sync
// also removes service chains it finds in the kernel but does not need (left by a
// previous agent), with any rule elsewhere that still jumps into one, and writes
// the hooks and the canary chains. A partial one first lists the canaries
// (iptables -S, one run per table): when one is gone, something flushed the table
// since the last full sync (a firewall reload, iptables -F or -X) and the sync is
// a full one, which puts everything back. Otherwise it trusts its record of the
// last sync and writes only what changed.
//
// The hooks themselves are checked by full syncs only, as kube-proxy does: a
// flush takes the canary with the hooks, but a hook deleted on its own stays
// missing until the next full sync. Checking them on every partial sync would
// cost about as much as the sync (BenchmarkApply): an iptables -C per hook is a
// dozen more runs, each reading the whole table with iptables-legacy, and the same
// checks as -C lines in the payload make iptables-nft-restore read every rule of
// the nat table.
func (b *Backend) Sync(ctx context.Context, desired *model.State) error {
	if desired == nil {
		// Level-triggered, a nil state would mean "no services" and wipe the
		// node; it can only be a bug in the caller.
		return errors.New("iptables backend: nil desired state")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	released := false
	for _, f := range b.families {
		if err := b.syncFamily(ctx, f, desired.View(f)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
		}
		if st := b.state[f].last; st.Full && st.Err == nil && st.PayloadBytes > releaseAbove {
			b.state[f].renderer.release()
			released = true
		}
	}
	if released {
		// A full sync at scale builds tens of megabytes once (the payload, the
		// service chains' text), which partial syncs never need again until the
		// next full sync, an hour later: hand them back to the OS now, off the
		// sync's clock, so that the node's steady memory is the agent's live
		// set rather than its first sync's peak.
		go debug.FreeOSMemory()
	}
	return errors.Join(errs...)
}

// releaseAbove is the payload size above which a full sync lets its buffers go:
// about 1,500 service ports x 10 endpoints.
const releaseAbove = 4 << 20

func (b *Backend) syncFamily(ctx context.Context, f model.Family, v *model.View) (err error) {
	fs := b.state[f]
	log := logr.FromContextOrDiscard(ctx).WithValues("family", f.String())
	full := fs.needFull || fs.applied == nil
	stats := SyncStats{Start: b.now(), ServicePorts: len(v.ServicePorts)}
	// A Tampered check that found everything in place since the last sync (the
	// agent runs one every few seconds between syncs) stands for the canary
	// listing: with iptables-legacy each listing reads the whole nat table, about
	// half the cost of a partial sync at 10,000 service ports. A flush after that
	// check is caught by the next one, seconds later.
	checked := fs.checked
	fs.checked = false
	if !full && !checked {
		// Tables still at the version they had when last known to be in place
		// need no listing either.
		flushed, err := b.flushedTables(ctx, f, changedTables(fs.clean, b.versions(ctx, f)))
		stats.Check = b.now().Sub(stats.Start)
		switch {
		case err != nil && ctx.Err() != nil:
			// Stopped (agent shutdown): not a sign of tampering, and not an error
			// worth a stack trace; the next agent starts with a full sync anyway.
			return ctx.Err()
		case err != nil:
			log.Error(err, "cannot tell whether the rules are still in place; resyncing fully")
			full = true
		case len(flushed) > 0:
			log.Info("rules were removed by something else (a firewall reload, iptables -F or -X); resyncing fully",
				"tables", flushed, "canary", chainCanary)
			full = true
		}
		stats.Flushed = flushed
	}
	stats.Full = full
	defer func() {
		stats.Err = err
		fs.last = stats
		if err != nil {
			// The kernel may or may not hold what we tried to write: forget the
			// record so that the next sync rewrites everything.
			fs.applied, fs.needFull, fs.clean = nil, true, nil
		}
	}()

	var existing *savedNAT
	var filterHooks []savedJump
	if full {
		saved, err := b.exec.Save(ctx, f, TableNAT)
		if err != nil {
			return fmt.Errorf("listing existing chains: %w", err)
		}
		existing = parseSavedNAT(saved)
		// The filter table is small: one listing of it stands for an iptables -C
		// per filter hook (and an -I per missing one), nine runs a family.
		if saved, err = b.exec.Save(ctx, f, TableFilter); err != nil {
			return fmt.Errorf("listing existing hooks: %w", err)
		}
		filterHooks = savedHooks(TableFilter, saved)
	}

	renderStart := b.now()
	out := fs.renderer.render(v, fs.applied, full, existing)
	applyStart := b.now()
	stats.Render = applyStart.Sub(renderStart)
	stats.PayloadBytes, stats.Written, stats.DeletedChains = len(out.payload), out.written, out.deleted
	for _, rule := range out.unhooked {
		log.Info("deleting someone else's rule that jumps into a chain being removed", "table", TableNAT, "rule", "-A "+rule)
	}
	if !full && out.written == 0 && out.deleted == 0 && out.fixed == fs.fixed {
		// Nothing changed for this family (a Service without a cluster IP yet,
		// an event about another family, a field no rule uses): the kernel
		// holds the payload already, and with iptables-legacy restoring it
		// anyway would rewrite the whole table, a second at 5,000 service
		// ports.
		stats.PayloadBytes = 0
		fs.applied, fs.needFull = out.services, false
		return nil
	}

	payload := out.payload
	var states map[int]hookState
	if full && existing != nil {
		// The hooks the listings show missing go into the payload itself, and
		// the ones they show in place need no iptables -C: with iptables-legacy
		// each -C or -I reads (and -I rewrites) the whole table, seconds apiece
		// for nat at 10,000 service ports, where kube-proxy's jumps go in while
		// its table is still small; and each is one more run of iptables.
		states = hookStates(map[Table][]savedJump{TableNAT: existing.hooks, TableFilter: filterHooks})
		var missing []Jump
		for i, j := range hooks {
			if states[i] == hookMissing {
				missing = append(missing, j)
			}
		}
		var ok bool
		if payload, ok = withHooks(payload, missing); !ok {
			for i, s := range states {
				if s == hookMissing {
					states[i] = hookUnknown // EnsureJump, after the restore
				}
			}
		}
		stats.PayloadBytes = len(payload)
	}
	if err := b.exec.Restore(ctx, f, payload); err != nil {
		return err
	}
	if full {
		// The hooks a listing could not decide on go in after the restore, which
		// creates the chains they jump to. Installing them in reverse order at
		// the top of each built-in chain leaves them in the order of hooks.
		for i := len(hooks) - 1; i >= 0; i-- {
			if s, ok := states[i]; ok && s != hookUnknown {
				continue
			}
			if err := b.exec.EnsureJump(ctx, f, hooks[i]); err != nil {
				return fmt.Errorf("installing hook: %w", err)
			}
		}
	}
	stats.Apply = b.now().Sub(applyStart)
	fs.applied, fs.needFull, fs.fixed = out.services, false, out.fixed
	// The tables now hold what this sync wrote. Their versions, read right
	// after, stand for a listing until they move; a flush in the milliseconds
	// between the restore and this read would go unseen until the next full
	// sync, as one between kube-proxy's canary polls does.
	fs.clean = b.versions(ctx, f)
	return nil
}

// flushedTables returns the tables (of canaryTables) whose canary chain is missing
// or empty: something flushed them since the last full sync.
func (b *Backend) flushedTables(ctx context.Context, f model.Family, tables []Table) ([]Table, error) {
	var flushed []Table
	for _, t := range tables {
		// Any rule will do: comparing its text would tie the check to how one
		// iptables version prints it, and a mismatch would make every sync full.
		rules, exists, err := b.exec.ListRules(ctx, f, t, chainCanary)
		if err != nil {
			return nil, fmt.Errorf("listing %s %s: %w", t, chainCanary, err)
		}
		if !exists || len(rules) == 0 {
			flushed = append(flushed, t)
		}
	}
	return flushed, nil
}

// Cleanup implements dataplane.Backend: it removes the hooks, then every chain named
// with ChainPrefix in the filter and nat tables of every family, whoever created
// it, the canaries included.
func (b *Backend) Cleanup(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, f := range b.families {
		fs := b.state[f]
		fs.applied, fs.needFull, fs.clean = nil, true, nil
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
			for _, j := range foreignJumps(saved) {
				payload.WriteString("-D " + j.rule + "\n")
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

// parseSavedNAT reads iptables-save -t nat output for a full sync.
func parseSavedNAT(saved []byte) *savedNAT {
	// A full sync declares, and so flushes, every service chain it finds, the
	// fixed chains and the canary: rules in those cannot stop a deletion.
	rewritten := func(chain string) bool {
		return isServiceChain(chain) || chain == chainCanary || slices.Contains(fixedChains[TableNAT], chain)
	}
	return &savedNAT{
		chains: savedChains(saved),
		jumps:  savedJumps(saved, func(chain string) bool { return !rewritten(chain) }, isServiceChain),
		hooks:  savedHooks(TableNAT, saved),
	}
}

// savedHooks returns the rules of table's built-in chains, in its iptables-save
// output, that jump to one of our fixed chains: where the hooks are.
func savedHooks(table Table, saved []byte) []savedJump {
	builtin := func(chain string) bool { return slices.Contains(builtinChains[table], chain) }
	fixed := func(chain string) bool { return slices.Contains(fixedChains[table], chain) }
	return savedJumps(saved, builtin, fixed)
}

// hookState is what a full sync's listing of a table says of one hook.
type hookState int

const (
	// hookUnknown: a rule in the hook's chain jumps to its target but reads
	// differently (an older agent's hook, another iptables version's printing):
	// iptables -C decides, after the restore.
	hookUnknown hookState = iota
	// hookPresent: the listing has the hook, word for word.
	hookPresent
	// hookMissing: nothing in the hook's chain jumps to its target.
	hookMissing
)

// hookStates tells, for each hook (by its index in hooks), whether saved, the
// hooks found in each table's listing (savedHooks), hold it. Both tables have an
// OUTPUT chain jumping to SVCP-SERVICES, so each hook is looked up in its own
// table's only.
func hookStates(saved map[Table][]savedJump) map[int]hookState {
	out := map[int]hookState{}
	for i, j := range hooks {
		state := hookMissing
		want := append([]string{j.Chain}, j.Args()...)
		for _, h := range saved[j.Table] {
			chain, _, _ := strings.Cut(h.rule, " ")
			if chain != j.Chain || h.target != j.Target {
				continue
			}
			if args, err := tokenize(h.rule); err == nil && slices.Equal(args, want) {
				state = hookPresent
				break
			}
			state = hookUnknown
		}
		out[i] = state
	}
	return out
}

// withHooks returns payload (a filter section, then a nat section, each ending
// with COMMIT) with the missing hooks inserted at the top of their chains, in the
// order of hooks, inside the same transaction as the chains they jump to; false,
// with payload unchanged, when payload does not read so.
func withHooks(payload []byte, missing []Jump) ([]byte, bool) {
	if len(missing) == 0 {
		return payload, true
	}
	const commit = "\nCOMMIT\n"
	var b bytes.Buffer
	b.Grow(len(payload) + 128*len(missing))
	rest := payload
	for _, table := range []Table{TableFilter, TableNAT} {
		end := bytes.Index(rest, []byte(commit))
		if !bytes.HasPrefix(rest, []byte("*"+string(table)+"\n")) || end < 0 {
			return payload, false
		}
		b.Write(rest[:end+1])
		for i := len(missing) - 1; i >= 0; i-- {
			j := missing[i]
			if j.Table != table {
				continue
			}
			b.WriteString("-I " + j.Chain + " 1")
			for _, m := range j.Match {
				b.WriteString(" " + m)
			}
			b.WriteString(" -m comment --comment " + saveString(j.Comment) + " -j " + j.Target + "\n")
		}
		b.WriteString("COMMIT\n")
		rest = rest[end+len(commit):]
	}
	b.Write(rest)
	return b.Bytes(), true
}

// savedJump is one rule of iptables-save output that jumps to another chain.
type savedJump struct {
	// target is the chain the rule jumps (or goes) to.
	target string
	// rule is the rule as "CHAIN args...", the form -D takes.
	rule string
}

// foreignJumps returns the rules of iptables-save output that sit in chains not
// named with ChainPrefix and jump to one that is.
func foreignJumps(saved []byte) []savedJump {
	ours := func(chain string) bool { return strings.HasPrefix(chain, ChainPrefix) }
	return savedJumps(saved, func(chain string) bool { return !ours(chain) }, ours)
}

// savedJumps returns the rules of iptables-save output that sit in a chain from
// accepts and jump to a chain to accepts. Only the rules of chains from accepts
// are parsed: a large nat table has hundreds of thousands of rules of our own.
func savedJumps(saved []byte, from, to func(chain string) bool) []savedJump {
	var out []savedJump
	sc := bufio.NewScanner(bytes.NewReader(saved))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		rule, ok := bytes.CutPrefix(sc.Bytes(), []byte("-A "))
		if !ok {
			continue
		}
		if chain, _, _ := bytes.Cut(rule, []byte(" ")); !from(string(chain)) {
			continue
		}
		args, err := tokenize(string(rule))
		if err != nil {
			continue
		}
		if target, _ := ruleTarget(args); to(target) {
			out = append(out, savedJump{target: target, rule: string(rule)})
		}
	}
	return out
}
