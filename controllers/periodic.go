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

package controllers

import (
	"context"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// periodic is a manager runnable that calls run every interval while this replica
// is the leader.
type periodic struct {
	name     string
	interval time.Duration
	run      func(context.Context) error
}

// NeedLeaderElection makes only the leader run the pass.
func (p *periodic) NeedLeaderElection() bool { return true }

// Start runs the pass every interval until ctx ends. A failed pass is logged and tried
// again at the next tick.
func (p *periodic) Start(ctx context.Context) error {
	ctx = logf.IntoContext(ctx, logf.FromContext(ctx).WithName(p.name))
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := p.run(ctx); err != nil {
				logf.FromContext(ctx).Error(err, "periodic pass failed")
			}
		}
	}
}
