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

package dataplane

import (
	"context"
	"time"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Backend programs one kind of kernel object (iptables rules, IPVS virtual servers,
// an nftables table) from the desired state. Implementations are level-triggered:
// they keep no event history, only what they need to make the kernel match the
// latest State.
type Backend interface {
	// Sync makes the kernel objects the backend owns match desired, for every
	// family the backend was configured with. Calling it twice with the same State
	// changes nothing the second time. It never changes objects it does not own
	// beyond the hooks that send traffic into its own.
	//
	// A nil error means every family was applied. Each write is one transaction of
	// the kernel interface (an iptables-restore run, an nft batch), so on error
	// every table holds either its previous rules or the desired ones, never half
	// a service. The backend then no longer trusts its record of what it applied:
	// the next Sync rewrites everything, as if FullSyncer.RequestFullSync had been
	// called. Errors from several families are joined. A cancelled ctx makes Sync
	// fail.
	Sync(ctx context.Context, desired *model.State) error

	// Cleanup removes everything the backend has ever installed: its own objects,
	// including ones an earlier agent process left behind, and its hooks into the
	// system's. It succeeds when there is nothing to remove, so it may be run on a
	// clean node and run again after a partial failure; errors are joined and do
	// not stop the removal of the rest. The next Sync after Cleanup is a full one.
	Cleanup(ctx context.Context) error
}

// FullSyncer is implemented by backends whose Sync normally writes only what
// changed since their last successful Sync (the services whose rules differ), which
// trusts that nobody else touched their objects in between. RequestFullSync makes
// the next Sync rewrite everything the backend owns, remove stale objects it finds
// in the kernel and re-install its hooks, which repairs any such tampering.
type FullSyncer interface {
	RequestFullSync()
}

// WriteReporter is implemented by backends that can say how much a sync wrote to
// the kernel, for the agent's svcplane_agent_rules_written_bytes_total.
type WriteReporter interface {
	// BytesWritten returns the size of what the last sync of family wrote, when
	// that sync started at or after since and succeeded; ok is false otherwise.
	BytesWritten(family model.Family, since time.Time) (n int, ok bool)
}

// TamperChecker is implemented by backends that can tell cheaply, without a sync,
// whether something else removed what they installed (a firewall reload flushing
// the tables, iptables -F): kube-proxy's canary chains. The Runner calls it on a
// short timer of its own, so that such tampering is repaired within seconds even
// when nothing changes and no sync would otherwise look.
type TamperChecker interface {
	// Tampered reports whether the backend's kernel objects were removed since its
	// last successful sync; when true, the backend has already arranged for its
	// next Sync to be full. An error means it could not tell; the caller treats
	// that as tampering.
	Tampered(ctx context.Context) (bool, error)
}

// CheckBackend returns b's tamper check for RunnerConfig.Check, or nil when b is
// not a TamperChecker.
func CheckBackend(b Backend) CheckFunc {
	if tc, ok := b.(TamperChecker); ok {
		return tc.Tampered
	}
	return nil
}

// SyncBackend returns the SyncFunc that applies desired() with b, telling b first
// when the Runner asks for a full resync and b is a FullSyncer. desired is called
// on every sync, so that the state is built from the latest informer caches after a
// burst of events has been coalesced.
func SyncBackend(b Backend, desired func() *model.State) SyncFunc {
	return func(ctx context.Context, full bool) error {
		if fs, ok := b.(FullSyncer); ok && full {
			fs.RequestFullSync()
		}
		return b.Sync(ctx, desired())
	}
}
