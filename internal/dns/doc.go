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

// Package dns answers DNS queries for svcplane Services as the Kubernetes
// DNS-Based Service Discovery specification (kubernetes/dns,
// docs/specification.md, schema 1.0.1) says cluster DNS answers for core
// Services, and forwards every other name to upstream resolvers.
//
// Zone holds the records, built from Services and EndpointSlices that a watch
// (package internal/dns/watch) hands it; a lookup never reaches the API server.
// Handler turns a query into an answer with Zone and the upstreams; Server serves
// it over UDP and TCP with /healthz, /readyz and /metrics beside it. Nothing here
// imports controller-runtime.
//
// Names, with <zone> the cluster domain (cluster.local by default):
//
//	<service>.<ns>.svc.<zone>              A/AAAA: status.clusterIPs; headless: the
//	                                       ready endpoints; ExternalName: CNAME
//	<hostname>.<service>.<ns>.svc.<zone>   A/AAAA of a headless Service's endpoint
//	_<port>._<proto>.<service>.<ns>.svc.<zone>  SRV per named port
//	<reversed address>.in-addr.arpa / ip6.arpa  PTR of cluster IPs and headless endpoints
//	<a>-<b>-<c>-<d>.<ns>.pod.<zone>        A (the specification's deprecated pod records)
//	dns-version.<zone>                     TXT "1.0.1"
package dns
