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
	"sigs.k8s.io/knftables"

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
	nfts := map[model.Family]knftables.Interface{}
	for _, f := range families {
		nft, err := knftables.New(nftFamily(f), FilterTable)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errNoFilter, err)
		}
		nfts[f] = nft
	}
	return New(Options{
		Interface: kernel, Families: families, NFT: nfts,
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
	log := logr.FromContextOrDiscard(ctx)
	kernel := &Netlink{}
	defer kernel.Close()
	var errs []error
	// The filter tables first: they exist only where nft does.
	for _, f := range model.Families {
		nft, err := knftables.New(nftFamily(f), FilterTable)
		if err != nil {
			log.V(1).Info("no nftables table to clean: nft does not work", "family", f, "error", err.Error())
			continue
		}
		ft := &filterTable{family: f, nft: nft}
		if err := ft.cleanup(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat(procIPVS); err != nil {
		log.V(1).Info("IPVS is not loaded: no virtual servers to clean")
		if err := kernel.DeleteDummy(DummyInterface); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	b, err := New(Options{Interface: kernel})
	if err == nil {
		err = b.Cleanup(ctx)
	}
	return errors.Join(append(errs, err)...)
}

// nftFamily returns the nftables family of f.
func nftFamily(f model.Family) knftables.Family {
	if f == model.IPv6 {
		return knftables.IPv6Family
	}
	return knftables.IPv4Family
}
