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
	"fmt"
	"strings"
	"sync"

	"sigs.k8s.io/knftables"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Fake is a knftables.Fake for one family's svcplane table that also refuses what
// the kernel refuses at the end of a transaction and knftables.Fake lets through:
// a rule or a verdict-map element left pointing at a chain, set or map the
// transaction deleted. A refused transaction changes nothing, as in the kernel.
type Fake struct {
	family knftables.Family

	mu sync.Mutex
	// cur is the table's current state. Each Run works on a copy, kept only
	// when it succeeds.
	cur *knftables.Fake
	// Runs counts the transactions run, failed ones included.
	Runs int
	// FailNext, when set, makes the next Run fail with it and change nothing.
	FailNext error
}

var _ knftables.Interface = &Fake{}

// NewFake returns an empty Fake for family's TableName table.
func NewFake(f model.Family) *Fake {
	fam := familyOf(f)
	return &Fake{family: fam, cur: knftables.NewFake(fam, TableName)}
}

// Inner returns the current knftables.Fake, for reading its Table.
func (f *Fake) Inner() *knftables.Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

// Dump returns the table as nft commands, as knftables.Fake.Dump does.
func (f *Fake) Dump() string { return f.Inner().Dump() }

// NewTransaction implements knftables.Interface.
func (f *Fake) NewTransaction() *knftables.Transaction { return f.Inner().NewTransaction() }

// Run implements knftables.Interface.
func (f *Fake) Run(ctx context.Context, tx *knftables.Transaction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Runs++
	if err := f.FailNext; err != nil {
		f.FailNext = nil
		return err
	}
	next := knftables.NewFake(f.family, TableName)
	if err := next.ParseDump(f.cur.Dump()); err != nil {
		return fmt.Errorf("fake: copying the table: %w", err)
	}
	if err := next.Run(ctx, tx); err != nil {
		return err
	}
	if err := checkReferences(next); err != nil {
		return err
	}
	f.cur = next
	return nil
}

// Check implements knftables.Interface.
func (f *Fake) Check(ctx context.Context, tx *knftables.Transaction) error {
	return f.Inner().Check(ctx, tx)
}

// ListAll implements knftables.Interface.
func (f *Fake) ListAll(ctx context.Context) (map[string][]string, error) {
	return f.Inner().ListAll(ctx)
}

// List implements knftables.Interface.
func (f *Fake) List(ctx context.Context, objectType string) ([]string, error) {
	return f.Inner().List(ctx, objectType)
}

// ListRules implements knftables.Interface.
func (f *Fake) ListRules(ctx context.Context, chain string) ([]*knftables.Rule, error) {
	return f.Inner().ListRules(ctx, chain)
}

// ListElements implements knftables.Interface.
func (f *Fake) ListElements(ctx context.Context, objectType, name string) ([]*knftables.Element, error) {
	return f.Inner().ListElements(ctx, objectType, name)
}

// ListCounters implements knftables.Interface.
func (f *Fake) ListCounters(ctx context.Context) ([]*knftables.Counter, error) {
	return f.Inner().ListCounters(ctx)
}

// checkReferences fails when a rule or map element of fake's table refers to a
// chain, set or map the table does not have.
func checkReferences(fake *knftables.Fake) error {
	t := fake.Table
	if t == nil {
		return nil
	}
	chain := func(name, where string) error {
		if t.Chains[name] == nil {
			return fmt.Errorf("fake: %s refers to chain %q, which does not exist (the kernel refuses to delete a chain in use)", where, name)
		}
		return nil
	}
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			words := strings.Fields(r.Rule)
			for i, w := range words {
				where := fmt.Sprintf("rule %q of chain %s", r.Rule, c.Name)
				switch {
				case (w == "goto" || w == "jump") && i+1 < len(words):
					if err := chain(strings.TrimRight(words[i+1], ",}"), where); err != nil {
						return err
					}
				case strings.HasPrefix(w, "@"):
					name := w[1:]
					if t.Sets[name] == nil && t.Maps[name] == nil {
						return fmt.Errorf("fake: %s refers to set or map %q, which does not exist", where, name)
					}
				}
			}
		}
	}
	for _, m := range t.Maps {
		for _, e := range m.Elements {
			if len(e.Value) != 1 {
				continue
			}
			if target, ok := strings.CutPrefix(e.Value[0], "goto "); ok {
				if err := chain(target, "element "+strings.Join(e.Key, " . ")+" of map "+m.Name); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
