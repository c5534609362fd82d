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
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Fake is an in-memory iptables for tests: a strict Executor that keeps state across
// calls, as the kernel does, and refuses what the real tools refuse.
//
// Restore parses iptables-restore syntax (*table, :CHAIN POLICY [0:0], -A, -I, -D,
// -F, -N, -X, COMMIT) with --noflush semantics: a declared user chain is created or
// flushed, undeclared chains keep their rules. It rejects unknown tables, options
// and targets, chain names over 28 characters, addresses of the wrong family, a
// jump to a chain that does not exist (yet, at that line), DROP in nat, DNAT or
// MASQUERADE outside nat, REJECT outside filter, a built-in chain reaching a target
// its hook does not allow (DNAT from nat INPUT), and deleting a chain that is built
// in, not empty or still jumped to. A refused payload changes nothing at all, as
// with the nf_tables-based iptables-restore, which applies a whole payload in one
// transaction.
//
// Rules are kept as written. The backend writes them in the canonical form
// iptables-save prints, so Dump output reads like iptables-save on a real node; a
// test against the real tools in a network namespace checks that claim.
type Fake struct {
	mu       sync.Mutex
	families map[model.Family]map[Table]*fakeTable
	restores map[model.Family][][]byte
	failNext error
}

var _ Executor = &Fake{}

type fakeTable struct {
	chains map[string]*fakeChain
}

type fakeChain struct {
	builtin bool
	policy  string
	rules   [][]string // each rule's arguments after "-A CHAIN"
}

// builtinChains are the built-in chains of each table the Fake knows, in the
// order iptables-save prints them.
var builtinChains = map[Table][]string{
	TableFilter: {"INPUT", "FORWARD", "OUTPUT"},
	TableNAT:    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle":    {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":       {"PREROUTING", "OUTPUT"},
}

// tableOrder is the order iptables-save prints tables in.
var tableOrder = []Table{TableFilter, "mangle", TableNAT, "raw"}

// NewFake returns a Fake with no tables loaded, like a new network namespace.
func NewFake() *Fake {
	return &Fake{families: map[model.Family]map[Table]*fakeTable{}, restores: map[model.Family][][]byte{}}
}

// FailNextRestore makes the next Restore return err without changing anything, as
// when iptables-restore loses a race or the kernel refuses a rule.
func (f *Fake) FailNextRestore(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = err
}

// Restores returns every payload Restore accepted for family, oldest first.
func (f *Fake) Restores(family model.Family) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.restores[family])
}

// LastRestore returns the last payload Restore accepted for family, or nil.
func (f *Fake) LastRestore(family model.Family) []byte {
	rs := f.Restores(family)
	if len(rs) == 0 {
		return nil
	}
	return rs[len(rs)-1]
}

// Restore implements Executor.
func (f *Fake) Restore(ctx context.Context, family model.Family, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	work := cloneTables(f.families[family])
	if err := restore(family, work, payload); err != nil {
		return fmt.Errorf("fake %s: %w", tool(family, "-restore"), err)
	}
	f.families[family] = work
	f.restores[family] = append(f.restores[family], bytes.Clone(payload))
	return nil
}

// Save implements Executor. An unloaded table saves as empty, as with iptables-save
// -t on a table nothing has used.
func (f *Fake) Save(ctx context.Context, family model.Family, table Table) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, ok := builtinChains[table]; !ok {
		return nil, fmt.Errorf("fake %s: table %q does not exist", tool(family, "-save"), table)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	if t := f.families[family][table]; t != nil {
		dumpTable(&b, table, t)
	}
	return []byte(b.String()), nil
}

// EnsureJump implements Executor.
func (f *Fake) EnsureJump(ctx context.Context, family model.Family, j Jump) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tables := f.families[family]
	if tables == nil {
		tables = map[Table]*fakeTable{}
		f.families[family] = tables
	}
	t, err := loadTable(tables, j.Table)
	if err != nil {
		return err
	}
	c := t.chains[j.Chain]
	if c == nil {
		return fmt.Errorf("fake %s -t %s -I %s: no such chain", tool(family, ""), j.Table, j.Chain)
	}
	args := j.Args()
	if err := checkRule(family, j.Table, t, args); err != nil {
		return fmt.Errorf("fake %s -t %s -I %s: %w", tool(family, ""), j.Table, j.Chain, err)
	}
	if slices.ContainsFunc(c.rules, func(r []string) bool { return slices.Equal(r, args) }) {
		return nil
	}
	c.rules = slices.Insert(c.rules, 0, args)
	if err := checkHooks(j.Table, t); err != nil {
		c.rules = c.rules[1:]
		return fmt.Errorf("fake %s -t %s -I %s: %w", tool(family, ""), j.Table, j.Chain, err)
	}
	return nil
}

// DeleteJump implements Executor.
func (f *Fake) DeleteJump(ctx context.Context, family model.Family, j Jump) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.families[family][j.Table]
	if t == nil || t.chains[j.Chain] == nil {
		return nil
	}
	c := t.chains[j.Chain]
	args := j.Args()
	if i := slices.IndexFunc(c.rules, func(r []string) bool { return slices.Equal(r, args) }); i >= 0 {
		c.rules = slices.Delete(c.rules, i, i+1)
	}
	return nil
}

// ListRules implements Executor. A built-in chain of a table nothing has used yet
// exists and is empty, as iptables -S shows it.
func (f *Fake) ListRules(ctx context.Context, family model.Family, table Table, chain string) ([]string, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	builtins, ok := builtinChains[table]
	if !ok {
		return nil, false, fmt.Errorf("fake %s -t %s -S %s: table %q does not exist", tool(family, ""), table, chain, table)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.families[family][table].lookup(chain)
	if c == nil {
		return nil, slices.Contains(builtins, chain), nil
	}
	var rules []string
	for _, rule := range c.rules {
		var b strings.Builder
		writeRule(&b, chain, rule)
		rules = append(rules, strings.TrimSuffix(b.String(), "\n"))
	}
	return rules, true, nil
}

// Dump returns every loaded table of every family in iptables-save syntax, without
// the counters and timestamps that would make it differ from run to run. Each
// family starts with a "# IPv4" or "# IPv6" line.
func (f *Fake) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, fam := range model.Families {
		tables := f.families[fam]
		if len(tables) == 0 {
			continue
		}
		fmt.Fprintf(&b, "# %s\n", fam)
		for _, name := range tableOrder {
			if t := tables[name]; t != nil {
				dumpTable(&b, name, t)
			}
		}
	}
	return b.String()
}

// chain returns a copy of one chain's rules and policy, for the packet tracer.
func (f *Fake) chain(family model.Family, table Table, name string) (rules [][]string, policy string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.families[family][table].lookup(name)
	if c == nil {
		return nil, "", false
	}
	return slices.Clone(c.rules), c.policy, true
}

// chainNames returns the names of a table's chains, built-in ones first.
func (f *Fake) chainNames(family model.Family, table Table) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.families[family][table]
	if t == nil {
		return nil
	}
	return t.order(table)
}

func (t *fakeTable) lookup(name string) *fakeChain {
	if t == nil {
		return nil
	}
	return t.chains[name]
}

// order returns the table's chain names in iptables-save's order: built-in chains
// in their fixed order, then user chains sorted by name.
func (t *fakeTable) order(table Table) []string {
	names := slices.Clone(builtinChains[table])
	var user []string
	for name, c := range t.chains {
		if !c.builtin {
			user = append(user, name)
		}
	}
	slices.Sort(user)
	return append(names, user...)
}

func dumpTable(b *strings.Builder, name Table, t *fakeTable) {
	fmt.Fprintf(b, "*%s\n", name)
	order := t.order(name)
	for _, chain := range order {
		fmt.Fprintf(b, ":%s %s [0:0]\n", chain, t.chains[chain].policy)
	}
	for _, chain := range order {
		for _, rule := range t.chains[chain].rules {
			writeRule(b, chain, rule)
		}
	}
	b.WriteString("COMMIT\n")
}

// writeRule writes one rule of chain as an "-A CHAIN args..." line, quoting its
// comment as iptables-save does.
func writeRule(b *strings.Builder, chain string, rule []string) {
	b.WriteString("-A ")
	b.WriteString(chain)
	for i, arg := range rule {
		b.WriteByte(' ')
		if i > 0 && rule[i-1] == "--comment" {
			arg = saveString(arg)
		}
		b.WriteString(arg)
	}
	b.WriteByte('\n')
}

func cloneTables(tables map[Table]*fakeTable) map[Table]*fakeTable {
	out := make(map[Table]*fakeTable, len(tables))
	for name, t := range tables {
		c := &fakeTable{chains: make(map[string]*fakeChain, len(t.chains))}
		for cn, ch := range t.chains {
			// Rules are never modified in place, so sharing their slices is safe.
			c.chains[cn] = &fakeChain{builtin: ch.builtin, policy: ch.policy, rules: slices.Clone(ch.rules)}
		}
		out[name] = c
	}
	return out
}

// loadTable returns the named table, loading it with its built-in chains the first
// time, as the kernel loads a table module on first use.
func loadTable(tables map[Table]*fakeTable, name Table) (*fakeTable, error) {
	builtins, ok := builtinChains[name]
	if !ok {
		return nil, fmt.Errorf("table %q does not exist", name)
	}
	if t := tables[name]; t != nil {
		return t, nil
	}
	t := &fakeTable{chains: map[string]*fakeChain{}}
	for _, c := range builtins {
		t.chains[c] = &fakeChain{builtin: true, policy: "ACCEPT"}
	}
	tables[name] = t
	return t, nil
}

// restore applies payload to tables, which the caller throws away on error.
func restore(family model.Family, tables map[Table]*fakeTable, payload []byte) error {
	var (
		table   *fakeTable
		tname   Table
		started bool
	)
	for i, raw := range strings.Split(string(payload), "\n") {
		n := i + 1
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d failed: %s: %q", n, fmt.Sprintf(format, args...), line)
		}
		switch {
		case strings.HasPrefix(line, "*"):
			if started {
				return fail("table %s was not committed", tname)
			}
			tname = Table(line[1:])
			t, err := loadTable(tables, tname)
			if err != nil {
				return fail("%v", err)
			}
			table, started = t, true
			continue
		case !started:
			return fail("no table selected")
		case line == "COMMIT":
			if err := checkHooks(tname, table); err != nil {
				return fail("%v", err)
			}
			started = false
			continue
		case strings.HasPrefix(line, ":"):
			if err := declare(table, line); err != nil {
				return fail("%v", err)
			}
			continue
		}
		args, err := tokenize(line)
		if err != nil {
			return fail("%v", err)
		}
		if err := command(family, tname, table, args); err != nil {
			return fail("%v", err)
		}
	}
	if started {
		return fmt.Errorf("COMMIT expected at end of input (table %s)", tname)
	}
	return nil
}

// declare handles ":CHAIN POLICY [packets:bytes]".
func declare(t *fakeTable, line string) error {
	fields := strings.Fields(line[1:])
	if len(fields) < 2 {
		return fmt.Errorf("bad chain declaration")
	}
	name, policy := fields[0], fields[1]
	if err := checkChainName(name); err != nil {
		return err
	}
	if c := t.chains[name]; c != nil && c.builtin {
		// A built-in chain keeps its rules; only its policy may change.
		if policy != "-" {
			if policy != "ACCEPT" && policy != "DROP" {
				return fmt.Errorf("bad policy %q for built-in chain %s", policy, name)
			}
			c.policy = policy
		}
		return nil
	}
	if policy != "-" {
		return fmt.Errorf("user chain %s cannot have policy %q", name, policy)
	}
	if c := t.chains[name]; c != nil {
		c.rules = nil // --noflush: declaring an existing chain flushes it
		return nil
	}
	t.chains[name] = &fakeChain{policy: "-"}
	return nil
}

// command handles one -A/-I/-D/-F/-N/-X line.
func command(family model.Family, tname Table, t *fakeTable, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("missing chain")
	}
	op, name, rest := args[0], args[1], args[2:]
	c := t.chains[name]
	if c == nil && op != "-N" {
		return fmt.Errorf("chain %s does not exist", name)
	}
	switch op {
	case "-A", "-I":
		pos := 0
		if op == "-I" && len(rest) > 0 {
			if p, err := strconv.Atoi(rest[0]); err == nil {
				if p < 1 || p > len(c.rules)+1 {
					return fmt.Errorf("index %d out of range", p)
				}
				pos, rest = p-1, rest[1:]
			}
		}
		if err := checkRule(family, tname, t, rest); err != nil {
			return err
		}
		if op == "-A" {
			pos = len(c.rules)
		}
		c.rules = slices.Insert(c.rules, pos, slices.Clone(rest))
	case "-D":
		i := slices.IndexFunc(c.rules, func(r []string) bool { return slices.Equal(r, rest) })
		if i < 0 {
			return fmt.Errorf("no matching rule in %s", name)
		}
		c.rules = slices.Delete(c.rules, i, i+1)
	case "-F":
		c.rules = nil
	case "-N":
		if c != nil {
			return fmt.Errorf("chain %s already exists", name)
		}
		if err := checkChainName(name); err != nil {
			return err
		}
		t.chains[name] = &fakeChain{policy: "-"}
	case "-X":
		switch {
		case c.builtin:
			return fmt.Errorf("cannot delete built-in chain %s", name)
		case len(c.rules) > 0:
			return fmt.Errorf("chain %s is not empty", name)
		}
		for other, oc := range t.chains {
			for _, r := range oc.rules {
				if target, _ := ruleTarget(r); target == name {
					return fmt.Errorf("chain %s is still referenced from %s", name, other)
				}
			}
		}
		delete(t.chains, name)
	default:
		return fmt.Errorf("unknown command %q", op)
	}
	return nil
}

func checkChainName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty chain name")
	case len(name) > maxChainName:
		return fmt.Errorf("chain name %q is longer than %d characters", name, maxChainName)
	case strings.HasPrefix(name, "-") || strings.HasPrefix(name, "!"):
		return fmt.Errorf("invalid chain name %q", name)
	}
	return nil
}

// hookTargets are the targets the kernel allows in only some built-in chains of a
// table, with those chains: addresses are translated at fixed points of a packet's
// path (xt_nat and xt_MASQUERADE register their hooks).
var hookTargets = map[Table]map[string][]string{
	TableNAT: {
		"DNAT":       {"PREROUTING", "OUTPUT"},
		"SNAT":       {"INPUT", "POSTROUTING"},
		"MASQUERADE": {"POSTROUTING"},
	},
}

// checkHooks refuses a table in which a built-in chain reaches one of hookTargets
// it may not use, directly or through user chains, as the kernel does when the
// table is committed: a jump from nat INPUT to a chain that DNATs is refused, a
// jump to it from a chain nothing jumps to is not.
func checkHooks(tname Table, t *fakeTable) error {
	limits := hookTargets[tname]
	if len(limits) == 0 {
		return nil
	}
	for _, builtin := range builtinChains[tname] {
		seen := map[string]bool{}
		var walk func(chain string) error
		walk = func(chain string) error {
			if seen[chain] {
				return nil
			}
			seen[chain] = true
			for _, rule := range t.lookup(chain).rules {
				target, _ := ruleTarget(rule)
				if allowed, limited := limits[target]; limited && !slices.Contains(allowed, builtin) {
					return fmt.Errorf("%s in %s is reached from %s, where it is not valid: Invalid argument", target, chain, builtin)
				}
				if c := t.chains[target]; c != nil && !c.builtin {
					if err := walk(target); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if err := walk(builtin); err != nil {
			return err
		}
	}
	return nil
}

// ruleTarget returns the chain or target a rule jumps to, and the target's options.
func ruleTarget(rule []string) (string, []string) {
	for i, a := range rule {
		if (a == "-j" || a == "-g") && i+1 < len(rule) {
			return rule[i+1], rule[i+2:]
		}
	}
	return "", nil
}

// matchOptions are the match options the Fake understands: the module providing
// each ("" for the protocol's own module) and how many values it takes.
var matchOptions = map[string]struct {
	module string
	values int
}{
	"--comment":     {"comment", 1},
	"--dport":       {"", 1},
	"--sport":       {"", 1},
	"--dst-type":    {"addrtype", 1},
	"--src-type":    {"addrtype", 1},
	"--mode":        {"statistic", 1},
	"--probability": {"statistic", 1},
	"--name":        {"recent", 1},
	"--set":         {"recent", 0},
	"--rcheck":      {"recent", 0},
	"--update":      {"recent", 0},
	"--seconds":     {"recent", 1},
	"--reap":        {"recent", 0},
	"--mask":        {"recent", 1},
	"--rsource":     {"recent", 0},
	"--mark":        {"mark", 1},
	"--ctstate":     {"conntrack", 1},
}

// targetOptions are the built-in targets the Fake understands, with their options
// and how many values each takes.
var targetOptions = map[string]map[string]int{
	"ACCEPT":     {},
	"DROP":       {},
	"RETURN":     {},
	"REJECT":     {"--reject-with": 1},
	"DNAT":       {"--to-destination": 1},
	"SNAT":       {"--to-source": 1},
	"MASQUERADE": {"--random-fully": 0, "--random": 0},
	"MARK":       {"--set-xmark": 1},
}

var protocols = []string{"tcp", "udp", "sctp", "icmp", "ipv6-icmp", "all"}

var addrTypes = []string{"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE", "UNREACHABLE", "PROHIBIT"}

// checkRule checks a rule's arguments the way iptables would when appending it to a
// chain of table t.
func checkRule(family model.Family, tname Table, t *fakeTable, args []string) error {
	var (
		proto   string
		modules []string
		negate  bool
		// recent are the -m recent options given, which the kernel checks
		// together when the rule is added.
		recent = map[string]bool{}
	)
	for i := 0; i < len(args); i++ {
		a := args[i]
		value := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		if a == "!" {
			if negate {
				return fmt.Errorf("double negation")
			}
			negate = true
			continue
		}
		wasNegated := negate
		negate = false
		switch a {
		case "-s", "-d":
			v, err := value()
			if err != nil {
				return err
			}
			if err := checkAddr(family, v); err != nil {
				return fmt.Errorf("%s: %w", a, err)
			}
		case "-p":
			v, err := value()
			if err != nil {
				return err
			}
			if !slices.Contains(protocols, v) {
				return fmt.Errorf("unknown protocol %q", v)
			}
			proto = v
		case "-i", "-o":
			if _, err := value(); err != nil {
				return err
			}
		case "-m":
			v, err := value()
			if err != nil {
				return err
			}
			switch v {
			case "tcp", "udp", "sctp":
				if proto != v {
					return fmt.Errorf("%s match: only valid for protocol %s, not %q", v, v, proto)
				}
			case "comment", "addrtype", "statistic", "recent", "mark", "conntrack":
			default:
				return fmt.Errorf("couldn't load match %q", v)
			}
			modules = append(modules, v)
		case "-j", "-g":
			v, err := value()
			if err != nil {
				return err
			}
			if wasNegated {
				return fmt.Errorf("cannot negate %s", a)
			}
			if err := checkRecent(modules, recent); err != nil {
				return err
			}
			return checkTarget(family, tname, t, proto, v, args[i+1:])
		default:
			opt, ok := matchOptions[a]
			if !ok {
				return fmt.Errorf("unknown option %q", a)
			}
			module := opt.module
			if module == "" {
				module = proto // --dport comes with -p tcp/udp/sctp
				if !slices.Contains([]string{"tcp", "udp", "sctp"}, proto) {
					return fmt.Errorf("%s needs -p tcp, udp or sctp", a)
				}
			} else if !slices.Contains(modules, module) {
				return fmt.Errorf("%s needs -m %s", a, module)
			}
			if module == "recent" {
				recent[a] = true
			}
			var v string
			if opt.values > 0 {
				var err error
				if v, err = value(); err != nil {
					return err
				}
			}
			if err := checkMatchValue(family, a, v); err != nil {
				return err
			}
		}
	}
	if negate {
		return errors.New("a negation (!) with nothing after it")
	}
	return checkRecent(modules, recent)
}

// checkRecent checks the options of a recent match as the kernel's xt_recent does:
// exactly one command (--set, --rcheck or --update); --seconds and --reap only
// with --rcheck or --update, and --reap only with --seconds.
func checkRecent(modules []string, opts map[string]bool) error {
	if !slices.Contains(modules, "recent") {
		return nil
	}
	commands := 0
	for _, c := range []string{"--set", "--rcheck", "--update"} {
		if opts[c] {
			commands++
		}
	}
	switch {
	case commands != 1:
		return fmt.Errorf("recent: exactly one of --set, --rcheck or --update is needed, got %d", commands)
	case opts["--set"] && (opts["--seconds"] || opts["--reap"]):
		return fmt.Errorf("recent: --seconds and --reap only go with --rcheck or --update")
	case opts["--reap"] && !opts["--seconds"]:
		return fmt.Errorf("recent: --reap needs --seconds")
	}
	return nil
}

func checkMatchValue(family model.Family, opt, v string) error {
	switch opt {
	case "--dport", "--sport":
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s %q is not a port", opt, v)
		}
	case "--dst-type", "--src-type":
		if !slices.Contains(addrTypes, v) {
			return fmt.Errorf("unknown address type %q", v)
		}
	case "--mode":
		if v != "random" && v != "nth" {
			return fmt.Errorf("unknown statistic mode %q", v)
		}
	case "--probability":
		if p, err := strconv.ParseFloat(v, 64); err != nil || p < 0 || p > 1 {
			return fmt.Errorf("bad probability %q", v)
		}
	case "--seconds":
		if n, err := strconv.Atoi(v); err != nil || n < 1 {
			return fmt.Errorf("bad seconds %q", v)
		}
	case "--mask":
		if a, err := netip.ParseAddr(v); err != nil || model.FamilyOf(a) != family {
			return fmt.Errorf("bad %s mask %q", family, v)
		}
	case "--mark":
		if _, _, err := parseMark(v); err != nil {
			return err
		}
	case "--name":
		if len(v) > 200 {
			return fmt.Errorf("recent list name %q is too long", v)
		}
	}
	return nil
}

func checkTarget(family model.Family, tname Table, t *fakeTable, proto, target string, opts []string) error {
	allowed, builtin := targetOptions[target]
	if !builtin {
		c := t.chains[target]
		switch {
		case c == nil:
			return fmt.Errorf("couldn't load target %q: no such chain", target)
		case c.builtin:
			return fmt.Errorf("cannot jump to built-in chain %s", target)
		case len(opts) > 0:
			return fmt.Errorf("unknown arguments after -j %s: %v", target, opts)
		}
		return nil
	}
	switch {
	case target == "DROP" && tname == TableNAT:
		return fmt.Errorf(`the "nat" table is not intended for filtering, the use of DROP is therefore inhibited`)
	case (target == "DNAT" || target == "SNAT" || target == "MASQUERADE") && tname != TableNAT:
		return fmt.Errorf("%s is only valid in the nat table", target)
	case target == "REJECT" && tname != TableFilter:
		return fmt.Errorf("REJECT is only valid in the filter table")
	}
	seen := map[string]string{}
	for i := 0; i < len(opts); i++ {
		n, ok := allowed[opts[i]]
		if !ok {
			return fmt.Errorf("unknown option %q for target %s", opts[i], target)
		}
		v := ""
		if n > 0 {
			if i+1 >= len(opts) {
				return fmt.Errorf("option %s needs a value", opts[i])
			}
			v = opts[i+1]
		}
		seen[opts[i]] = v
		i += n
	}
	switch target {
	case "DNAT":
		v, ok := seen["--to-destination"]
		if !ok {
			return fmt.Errorf("DNAT needs --to-destination")
		}
		if ap, err := netip.ParseAddrPort(v); err == nil {
			if model.FamilyOf(ap.Addr()) != family {
				return fmt.Errorf("--to-destination %q is not %s", v, family)
			}
			if !slices.Contains([]string{"tcp", "udp", "sctp"}, proto) {
				return fmt.Errorf("need TCP, UDP or SCTP with port specification")
			}
		} else if a, err := netip.ParseAddr(v); err != nil || model.FamilyOf(a) != family {
			return fmt.Errorf("bad --to-destination %q", v)
		}
	case "REJECT":
		want := "icmp-port-unreachable"
		if family == model.IPv6 {
			want = "icmp6-port-unreachable"
		}
		if v, ok := seen["--reject-with"]; ok && v != want {
			return fmt.Errorf("unsupported reject type %q for %s", v, family)
		}
	case "MARK":
		v, ok := seen["--set-xmark"]
		if !ok {
			return fmt.Errorf("MARK needs --set-xmark")
		}
		if _, _, err := parseMark(v); err != nil {
			return err
		}
	}
	return nil
}

func checkAddr(family model.Family, v string) error {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		a, aerr := netip.ParseAddr(v)
		if aerr != nil {
			return fmt.Errorf("bad address %q", v)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if model.FamilyOf(p.Addr()) != family {
		return fmt.Errorf("address %q is not %s", v, family)
	}
	return nil
}

// parseMark parses "value/mask" as the mark match and MARK target print it.
func parseMark(v string) (value, mask uint32, err error) {
	vs, ms, ok := strings.Cut(v, "/")
	if !ok {
		ms = "0xffffffff"
	}
	a, err1 := strconv.ParseUint(vs, 0, 32)
	b, err2 := strconv.ParseUint(ms, 0, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("bad mark %q", v)
	}
	return uint32(a), uint32(b), nil
}

// tokenize splits a rule line into arguments as a shell would: on spaces, with
// double quotes grouping and backslash escaping inside them.
func tokenize(line string) ([]string, error) {
	var (
		args   []string
		cur    strings.Builder
		inWord bool
		quoted bool
	)
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quoted && ch == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case ch == '"':
			quoted = !quoted
			inWord = true
		case !quoted && (ch == ' ' || ch == '\t'):
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote")
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// saveString quotes s the way iptables-save quotes strings (xtables_save_string):
// bare when it is only letters, digits, '_' and '-', else in double quotes with ",
// \ and ' escaped.
func saveString(s string) string {
	bare := s != ""
	for i := 0; i < len(s) && bare; i++ {
		c := s[i]
		bare = c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
	}
	if bare {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c == '\'' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
