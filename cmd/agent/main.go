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

// Command agent programs one node's dataplane for svcplane Services: it watches
// Services, their EndpointSlices and its own Node and keeps the node's iptables
// rules, health check node ports and /healthz up to date (package
// internal/agent). Run one per node, as config/agent's DaemonSet does. With
// --cleanup it removes everything any agent installed on the node and exits.
package main

import (
	"flag"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/ipvs"
	"github.com/svcplane/svcplane/internal/agent"
)

func main() {
	var (
		opts              agent.Options
		backendOpts       agent.BackendOptions
		clusterCIDRs      string
		nodePortAddresses string
		cleanup           bool
	)
	flag.StringVar(&opts.NodeName, "node-name", os.Getenv("NODE_NAME"), "The name of the Node this agent runs on (default $NODE_NAME).")
	flag.StringVar(&backendOpts.Mode, "mode", agent.ModeIPTables, "Which backend programs the node: iptables, nftables or ipvs. --cleanup cleans every mode whatever this says.")
	flag.StringVar(&backendOpts.IPTablesVariant, "iptables-variant", agent.VariantAuto, "Which iptables tools the iptables mode runs: auto (the variant kubelet's and the node's other rules are in), system (whatever iptables points to), nft or legacy.")
	flag.StringVar(&backendOpts.IPVS.Scheduler, "ipvs-scheduler", ipvs.DefaultScheduler, "The IPVS scheduler of the ipvs mode: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh or twos, as far as the kernel has the module (ip_vs_<name>).")
	flag.BoolVar(&backendOpts.IPVS.StrictARP, "ipvs-strict-arp", false, "In ipvs mode, answer ARP only for addresses of the interface asked (arp_ignore=1, arp_announce=2), as MetalLB's layer 2 mode needs.")
	flag.DurationVar(&backendOpts.IPVS.TCPTimeout, "ipvs-tcp-timeout", 0, "In ipvs mode, the idle timeout of established TCP connections (e.g. 900s); 0 keeps the kernel's.")
	flag.DurationVar(&backendOpts.IPVS.TCPFinTimeout, "ipvs-tcpfin-timeout", 0, "In ipvs mode, the timeout of TCP connections after a FIN (e.g. 120s); 0 keeps the kernel's.")
	flag.DurationVar(&backendOpts.IPVS.UDPTimeout, "ipvs-udp-timeout", 0, "In ipvs mode, the idle timeout of UDP flows (e.g. 300s); 0 keeps the kernel's.")
	flag.StringVar(&clusterCIDRs, "cluster-cidr", "", "The pod network, one CIDR per family, comma-separated. Traffic to a cluster IP from outside it is masqueraded.")
	flag.StringVar(&nodePortAddresses, "nodeport-addresses", "", "Node ports answer only on the node's addresses inside these CIDRs, comma-separated (e.g. 10.0.0.0/8,fd00::/64), or, with \"primary\", on the node's primary address of each family; a family with no CIDR, or with 0.0.0.0/0 or ::/0, answers on every local address. Empty: every address.")
	flag.BoolVar(&opts.Config.MasqueradeAll, "masquerade-all", false, "Masquerade all traffic sent to cluster IPs.")
	flag.DurationVar(&opts.Runner.MinSyncPeriod, "min-sync-period", dataplane.DefaultMinSyncPeriod, "The least time between two syncs; changes arriving faster are applied together.")
	flag.DurationVar(&opts.Runner.SyncPeriod, "sync-period", dataplane.DefaultSyncPeriod, "The most time between two syncs, even when nothing changed.")
	// kube-proxy's choice: a full resync rewrites every rule, seconds to minutes on a
	// node with thousands of service ports, and the tamper check repairs a flush
	// within seconds without one.
	flag.DurationVar(&opts.Runner.FullSyncPeriod, "full-sync-period", time.Hour, "The most time between two full resyncs, which rewrite every rule and repair rules changed by others; 0 means --sync-period. A flushed chain is repaired sooner, by the tamper check.")
	// kube-proxy's ports (10249, 10256) plus 100, so that both can run on one node.
	flag.StringVar(&opts.MetricsBindAddress, "metrics-bind-address", "127.0.0.1:10349", "The address /metrics is served on (plain HTTP); 0 disables it.")
	flag.StringVar(&opts.HealthzBindAddress, "healthz-bind-address", "0.0.0.0:10356", "The address /healthz is served on; 0 disables it.")
	flag.BoolVar(&cleanup, "cleanup", false, "Remove every rule and chain any svcplane agent installed on this node, and exit.")
	zopts := zap.Options{Development: true}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	log := ctrl.Log.WithName("agent")
	ctx := ctrl.LoggerInto(ctrl.SetupSignalHandler(), log)

	if cleanup {
		if err := agent.Cleanup(ctx, backendOpts); err != nil {
			log.Error(err, "cleanup failed")
			os.Exit(1)
		}
		log.Info("removed everything svcplane installed", "mode", backendOpts.Mode)
		return
	}
	backend, err := agent.NewBackendWith(ctx, backendOpts)
	if err != nil {
		log.Error(err, "unable to set up the backend")
		os.Exit(1)
	}

	if opts.Config.ClusterCIDRs, err = agent.ParseClusterCIDRs(clusterCIDRs); err != nil {
		log.Error(err, "invalid flags")
		os.Exit(1)
	}
	if opts.Config.NodePortAddresses, opts.Config.NodePortAddressesPrimary, err = agent.ParseNodePortAddresses(nodePortAddresses); err != nil {
		log.Error(err, "invalid flags")
		os.Exit(1)
	}
	if len(opts.Config.ClusterCIDRs) == 0 && !opts.Config.MasqueradeAll {
		log.Info("neither --cluster-cidr nor --masquerade-all is set: traffic to cluster IPs from outside the pod network is not masqueraded")
	}
	opts.Backend = backend
	opts.Registry = ctrlmetrics.Registry
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "unable to load a kubeconfig")
		os.Exit(1)
	}
	a, err := agent.New(restCfg, opts)
	if err != nil {
		log.Error(err, "unable to set up the agent")
		os.Exit(1)
	}
	log.Info("starting agent", "node", opts.NodeName, "mode", backendOpts.Mode, "clusterCIDRs", clusterCIDRs,
		"nodePortAddresses", nodePortAddresses)
	if err := a.Run(ctx); err != nil {
		log.Error(err, "agent stopped with an error")
		os.Exit(1)
	}
}
