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

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/svcplane/svcplane/dataplane/model"
)

// procIPVS exists while the ip_vs module is loaded (or built in).
const procIPVS = "/proc/net/ip_vs"

// NodeOptions are the agent's --ipvs-* flags.
type NodeOptions struct {
	// Scheduler is --ipvs-scheduler; DefaultScheduler when empty.
	Scheduler string
	// StrictARP is --ipvs-strict-arp.
	StrictARP bool
	// TCPTimeout, TCPFinTimeout and UDPTimeout are --ipvs-tcp-timeout,
	// --ipvs-tcpfin-timeout and --ipvs-udp-timeout; zero keeps the kernel's.
	TCPTimeout, TCPFinTimeout, UDPTimeout time.Duration
}

// NewForNode returns the IPVS backend of the node the agent runs on: IPv4, and
// IPv6 unless the kernel has it disabled. It fails, saying what to do, when the
// kernel has no IPVS.
func NewForNode(ctx context.Context, opts NodeOptions) (*Backend, error) {
	kernel := &Netlink{}
	if _, err := kernel.VirtualServers(); err != nil {
		return nil, fmt.Errorf("IPVS does not work on this node (load the ip_vs module, and ip_vs_%s for the scheduler): %w",
			schedulerOrDefault(opts.Scheduler), err)
	}
	families := []model.Family{model.IPv4}
	if _, err := os.Stat("/proc/net/if_inet6"); err == nil {
		families = append(families, model.IPv6)
	} else {
		logr.FromContextOrDiscard(ctx).Info("IPv6 is not programmed: it is disabled in this kernel")
	}
	return New(Options{
		Interface: kernel, Families: families,
		Scheduler: opts.Scheduler, StrictARP: opts.StrictARP,
		TCPTimeout: opts.TCPTimeout, TCPFinTimeout: opts.TCPFinTimeout, UDPTimeout: opts.UDPTimeout,
	})
}

func schedulerOrDefault(s string) string {
	if s == "" {
		return DefaultScheduler
	}
	return s
}

// CleanupNode removes what svcplane's IPVS mode installed on the node: its virtual
// servers and the dummy interface. On a node where IPVS is not loaded it does not
// load it (opening the IPVS netlink family would): there are no virtual servers
// then, only the interface to remove if an agent left it.
func CleanupNode(ctx context.Context) error {
	kernel := &Netlink{}
	defer kernel.Close()
	if _, err := os.Stat(procIPVS); err != nil {
		logr.FromContextOrDiscard(ctx).V(1).Info("IPVS is not loaded: no virtual servers to clean")
		err := kernel.DeleteDummy(DummyInterface)
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil
		}
		return err
	}
	b, err := New(Options{Interface: kernel})
	if err != nil {
		return err
	}
	return b.Cleanup(ctx)
}
