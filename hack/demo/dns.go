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

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/svcplane/svcplane/internal/dns"
	"github.com/svcplane/svcplane/internal/dns/watch"
	"github.com/svcplane/svcplane/test/e2e/cluster"
	"github.com/svcplane/svcplane/test/e2e/world"
)

// dnsTour starts svcplane's DNS server in the node's namespace, on the pods'
// gateway, and resolves a few sample Services from pod netns, then connects to
// the ClusterIP Service by the address its name resolved to. The server has
// no upstream: the demo's traffic stays in its namespaces.
func dnsTour(ctx context.Context, cl *cluster.Cluster, netns string, get getter) error {
	heading("svcplane's DNS server (cmd/dns) on the pods' gateway " + world.PodGateway.String() + ":53")
	server := net.JoinHostPort(world.PodGateway.String(), "53")
	zone := dns.NewZone("cluster.local", 30)
	wt, err := watch.New(cl.Config, zone)
	if err != nil {
		return err
	}
	metrics, err := dns.NewMetrics(prometheus.NewRegistry(), zone)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- wt.Run(ctx) }()
	go func() {
		errc <- dns.Serve(ctx, dns.NewHandler(zone, nil, metrics, logr.Discard()), dns.ServerOptions{Addr: server}, logr.Discard())
	}()
	for deadline := time.Now().Add(30 * time.Second); !wt.Synced(); {
		select {
		case err := <-errc:
			return fmt.Errorf("the DNS server stopped: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("the DNS server's caches did not sync within 30s")
		}
	}
	fmt.Printf("Ready: it holds %d Services, from its informers.\n", zone.Sizes().Services)

	var clusterIP string
	for _, q := range []struct {
		name  string
		qtype uint16
		note  string
	}{
		{"clusterip.default.svc.cluster.local.", mdns.TypeA, "its cluster IP"},
		{"_http._tcp.clusterip.default.svc.cluster.local.", mdns.TypeSRV, "its named port"},
		{"externalname.default.svc.cluster.local.", mdns.TypeCNAME, "an ExternalName Service: a CNAME"},
		{"headless.default.svc.cluster.local.", mdns.TypeA, "headless, selecting app=db, which no pod has: NXDOMAIN"},
	} {
		fmt.Printf("\n$ dig @%s %s %s    # from %s: %s\n", world.PodGateway, q.name, mdns.TypeToString[q.qtype], netns, q.note)
		resp, err := world.Resolve(netns, server, "udp", q.name, q.qtype)
		if err != nil {
			return err
		}
		fmt.Printf(";; status: %s\n", mdns.RcodeToString[resp.Rcode])
		for _, rr := range resp.Answer {
			fmt.Println(strings.Join(strings.Fields(rr.String()), " "))
			if a, ok := rr.(*mdns.A); ok && q.qtype == mdns.TypeA && clusterIP == "" {
				clusterIP = a.A.String()
			}
		}
	}
	if clusterIP == "" {
		return errors.New("clusterip.default.svc.cluster.local did not resolve")
	}
	url := "http://" + net.JoinHostPort(clusterIP, strconv.Itoa(80)) + "/"
	if err := request(ctx, "From "+netns+" to the address clusterip.default.svc.cluster.local resolved to", url, get, 3); err != nil {
		return err
	}
	cancel()
	for range 2 {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}
