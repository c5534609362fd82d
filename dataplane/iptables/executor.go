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
	"context"
	"errors"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Table is an iptables table.
type Table string

const (
	// TableNAT is the nat table, where services are DNATed and masqueraded.
	TableNAT Table = "nat"
	// TableFilter is the filter table, where traffic without endpoints is rejected.
	TableFilter Table = "filter"
)

// Jump is one rule in a built-in chain sending traffic into a chain this package
// owns: the only rules it writes outside its own chains.
type Jump struct {
	Table Table
	// Chain is the built-in chain holding the rule, e.g. PREROUTING.
	Chain string
	// Target is the chain jumped to, e.g. SVCP-SERVICES.
	Target string
	// Match are the rule's matches before its comment, e.g. "-m conntrack
	// --ctstate NEW".
	Match []string
	// Comment identifies the rule; together with the rest it is how the rule is
	// found again.
	Comment string
}

// Args returns the rule's arguments after the chain name, in the order
// iptables-save prints them, so that the same text checks for, deletes and dumps
// the rule.
func (j Jump) Args() []string {
	args := append([]string{}, j.Match...)
	return append(args, "-m", "comment", "--comment", j.Comment, "-j", j.Target)
}

// Executor is how the backend reaches the kernel's iptables, one family at a time.
// Exec is the real one, Fake the one tests use.
type Executor interface {
	// Restore applies payload, in iptables-restore syntax, as iptables-restore
	// --noflush does: a declared chain is created or flushed, chains the payload
	// does not declare keep their rules, and each table's changes are committed
	// atomically. An error means the payload was refused; tables it had not
	// committed are unchanged.
	Restore(ctx context.Context, family model.Family, payload []byte) error
	// Save returns table in iptables-save syntax.
	Save(ctx context.Context, family model.Family, table Table) ([]byte, error)
	// EnsureJump inserts j at the top of its chain unless an identical rule is
	// already there. It fails when j's target chain does not exist.
	EnsureJump(ctx context.Context, family model.Family, j Jump) error
	// DeleteJump removes j. A missing rule, or a missing target chain (so no rule
	// can jump to it), is not an error.
	DeleteJump(ctx context.Context, family model.Family, j Jump) error
	// ListRules returns the rules of one chain as iptables -S prints them, one
	// "-A CHAIN args..." line each. exists is false, with no error, when the
	// chain does not exist; an error means the chain could not be read.
	ListRules(ctx context.Context, family model.Family, table Table, chain string) (rules []string, exists bool, err error)
}

// TableVersioner is an Executor that can tell, without running a tool, whether a
// table changed: Backend.Tampered lists the canaries only of tables whose version
// moved since they were last found in place, so that an idle agent runs no
// iptables at all.
type TableVersioner interface {
	// TableVersion returns a value that changes whenever a rule or chain of table
	// changes (it may change for other reasons too). ErrNoVersion means the
	// Executor cannot tell; any other error, that it failed to.
	TableVersion(ctx context.Context, family model.Family, table Table) (string, error)
}

// ErrNoVersion is TableVersion's error when the Executor cannot tell a table's
// version at all.
var ErrNoVersion = errors.New("table versions are not available")

// conntrackNew restricts filter hooks to the first packet of a connection: once a
// connection is accepted or DNATed, conntrack carries the rest.
var conntrackNew = []string{"-m", "conntrack", "--ctstate", "NEW"}

// hooks are the jumps from built-in chains into this package's chains, in the order
// they end up in each built-in chain, as kube-proxy hooks its KUBE- chains.
var hooks = []Jump{
	{TableFilter, "INPUT", chainFirewall, conntrackNew, commentFirewall},
	{TableFilter, "INPUT", chainNodePorts, nil, commentHealthCheck},
	{TableFilter, "INPUT", chainExternalServices, conntrackNew, commentExternalPortals},
	{TableFilter, "FORWARD", chainFirewall, conntrackNew, commentFirewall},
	{TableFilter, "FORWARD", chainServices, conntrackNew, commentServicePortals},
	{TableFilter, "FORWARD", chainExternalServices, conntrackNew, commentExternalPortals},
	{TableFilter, "FORWARD", chainForward, nil, commentForward},
	{TableFilter, "OUTPUT", chainFirewall, conntrackNew, commentFirewall},
	{TableFilter, "OUTPUT", chainServices, conntrackNew, commentServicePortals},
	{TableNAT, "PREROUTING", chainServices, nil, commentServicePortals},
	{TableNAT, "OUTPUT", chainServices, nil, commentServicePortals},
	{TableNAT, "POSTROUTING", chainPostrouting, nil, commentPostrouting},
}

// canaryTables are the tables holding a chainCanary: every table this package
// writes. kube-proxy also keeps a canary in mangle and polls only that one in the
// background, because a nearly empty table is cheap to list and a firewall reload
// flushes every table at once. This package checks at the start of each partial
// sync instead, in each table it writes, which also catches a flush of one table
// (iptables -t nat -F); a mangle canary would add a check that tells nothing more,
// and a table the agent otherwise never touches.
var canaryTables = []Table{TableFilter, TableNAT}

// fixedChains are this package's chains that always exist, per table, rewritten on
// every sync.
var fixedChains = map[Table][]string{
	TableFilter: {chainServices, chainExternalServices, chainForward, chainNodePorts, chainFirewall},
	TableNAT:    {chainServices, chainNodePorts, chainPostrouting, chainMarkMasq},
}
