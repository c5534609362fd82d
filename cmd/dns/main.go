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

// Command dns answers DNS queries for svcplane Services the way cluster DNS
// answers for core Services (<service>.<namespace>.svc.<cluster-domain>, per the
// Kubernetes DNS-Based Service Discovery specification) and forwards every other
// name upstream (package internal/dns). config/dns deploys it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/svcplane/svcplane/internal/dns"
	"github.com/svcplane/svcplane/internal/dns/watch"
)

func main() {
	if err := run(ctrl.SetupSignalHandler(), flag.CommandLine, os.Args[1:], ctrlmetrics.Registry); err != nil {
		os.Exit(1)
	}
}

// run parses args into fs, then serves until ctx is done; it logs why it
// stops early and returns that error.
func run(ctx context.Context, fs *flag.FlagSet, args []string, reg prometheus.Registerer) error {
	var (
		addr, healthAddr, metricsAddr string
		clusterDomain, upstream       string
		resolvConf                    string
		ttl                           uint
	)
	fs.StringVar(&addr, "dns-bind-address", ":53", "The address DNS is served on, UDP and TCP.")
	fs.StringVar(&healthAddr, "health-probe-bind-address", ":8081", "The address /healthz and /readyz are served on; 0 disables them.")
	fs.StringVar(&metricsAddr, "metrics-bind-address", ":9153", "The address /metrics is served on (plain HTTP); 0 disables it.")
	fs.StringVar(&clusterDomain, "cluster-domain", "cluster.local", "The cluster's DNS domain: Services are <service>.<namespace>.svc.<cluster-domain>.")
	fs.StringVar(&upstream, "upstream", "", "Resolvers for names outside the cluster domain, comma-separated IP[:port], asked in order (default: the nameservers of --resolv-conf). \"none\" forwards nothing: such names get SERVFAIL.")
	fs.StringVar(&resolvConf, "resolv-conf", "/etc/resolv.conf", "The file naming the upstream resolvers when --upstream is empty.")
	fs.UintVar(&ttl, "ttl", 30, "The TTL of the records, and of negative answers, in seconds.")
	config.RegisterFlags(fs) // --kubeconfig, unless controller-runtime registered it already
	zopts := zap.Options{Development: true}
	zopts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	log := ctrl.Log.WithName("dns")
	ctx = ctrl.LoggerInto(ctx, log)
	fail := func(err error, msg string) error {
		log.Error(err, msg)
		return fmt.Errorf("%s: %w", msg, err)
	}

	if errs := validation.IsDNS1123Subdomain(strings.TrimSuffix(clusterDomain, ".")); len(errs) > 0 {
		return fail(errors.New(strings.Join(errs, "; ")), "invalid --cluster-domain")
	}
	if ttl > 1<<31-1 {
		return fail(errors.New("RFC 2181 allows at most 2147483647"), "invalid --ttl")
	}
	zone := dns.NewZone(clusterDomain, uint32(ttl))
	var up dns.Upstream
	if upstream != "none" {
		servers := strings.Split(upstream, ",")
		if upstream == "" {
			var err error
			if servers, err = dns.UpstreamsFromResolvConf(resolvConf); err != nil {
				return fail(err, "no upstream resolvers; name them with --upstream, or --upstream=none")
			}
		}
		f, err := dns.NewForwarder(servers)
		if err != nil {
			return fail(err, "invalid --upstream")
		}
		log.Info("forwarding names outside the cluster domain", "upstreams", f.Servers())
		up = f
	}
	metrics, err := dns.NewMetrics(reg, zone)
	if err != nil {
		return fail(err, "registering metrics")
	}
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fail(err, "unable to load a kubeconfig")
	}
	w, err := watch.New(restCfg, zone)
	if err != nil {
		return fail(err, "unable to watch the API server")
	}
	// A watch that stops stops the server: answers from a stale zone would be
	// wrong without anyone noticing.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- w.Run(ctx)
		cancel()
	}()
	gatherer := prometheus.DefaultGatherer
	if g, ok := reg.(prometheus.Gatherer); ok {
		gatherer = g
	}
	h := dns.NewHandler(zone, up, metrics, log)
	h.SetReady(w.Synced)
	err = dns.Serve(ctx, h, dns.ServerOptions{
		Addr:        addr,
		HealthAddr:  healthAddr,
		MetricsAddr: metricsAddr,
		Metrics:     promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}),
		Ready:       w.Synced,
	}, log)
	cancel()
	if err != nil {
		return fail(err, "DNS server stopped")
	}
	if err := <-errc; err != nil {
		return fail(err, "watch stopped")
	}
	return nil
}
