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
	"strings"
	"sync"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Fake is a conntrack table in memory. Its Delete selects entries as Netlink's
// does and refuses the filters Netlink refuses: an unknown protocol or family,
// addresses of another family than the filter's.
type Fake struct {
	mu      sync.Mutex
	entries []Entry
	calls   []Filter
	lists   int
	// Err, when set, makes every Delete and List fail, deleting nothing, like a
	// conntrack that cannot reach the kernel.
	Err error
}

var _ Executor = &Fake{}

// NewFake returns a Fake holding entries.
func NewFake(entries ...Entry) *Fake {
	return &Fake{entries: entries}
}

// Add adds entries to the table.
func (f *Fake) Add(entries ...Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, entries...)
}

// Delete deletes the entries flt selects.
func (f *Fake) Delete(_ context.Context, flt Filter) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, flt)
	if f.Err != nil {
		return 0, f.Err
	}
	if err := flt.validate(); err != nil {
		return 0, err
	}
	kept := f.entries[:0]
	n := 0
	for _, e := range f.entries {
		if matches(flt, e) {
			n++
			continue
		}
		kept = append(kept, e)
	}
	f.entries = kept
	return n, nil
}

// List returns the entries of family and protocol.
func (f *Fake) List(_ context.Context, family model.Family, protocol model.Protocol) ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.Err != nil {
		return nil, f.Err
	}
	var out []Entry
	for _, e := range f.entries {
		if e.Family == family && e.Protocol == protocol {
			out = append(out, e)
		}
	}
	return out, nil
}

// Lists returns how many times List was called.
func (f *Fake) Lists() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

func matches(flt Filter, e Entry) bool {
	switch {
	case e.Family != flt.Family, e.Protocol != flt.Protocol:
		return false
	case flt.Src.IsValid() && e.Src != flt.Src:
		return false
	case flt.Dst.IsValid() && e.Dst.Addr() != flt.Dst:
		return false
	case flt.Port != 0 && e.Dst.Port() != flt.Port:
		return false
	case flt.DNAT.IsValid() && e.replySource() != flt.DNAT:
		return false
	}
	return true
}

// Entries returns the entries left in the table.
func (f *Fake) Entries() []Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Entry(nil), f.entries...)
}

// Calls returns the filter of every Delete so far, in order, failed ones included.
func (f *Fake) Calls() []Filter {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Filter(nil), f.calls...)
}

// Dump returns the table in conntrack -L's syntax, one entry a line.
func (f *Fake) Dump() string {
	var b strings.Builder
	for _, e := range f.Entries() {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}
