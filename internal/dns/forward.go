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

package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	mdns "github.com/miekg/dns"
)

// Forwarder is an Upstream that asks resolvers in order, as a resolv.conf
// stub resolver does, until one answers.
type Forwarder struct {
	servers []string // host:port
	udp     *mdns.Client
	tcp     *mdns.Client
}

var _ Upstream = &Forwarder{}

// perServerTimeout bounds one exchange with one upstream.
const perServerTimeout = 2 * time.Second

// NewForwarder returns a Forwarder asking servers ("host" or "host:port"; port
// 53 when none) in order.
func NewForwarder(servers []string) (*Forwarder, error) {
	if len(servers) == 0 {
		return nil, errors.New("no upstream servers")
	}
	f := &Forwarder{
		udp: &mdns.Client{Net: "udp", Timeout: perServerTimeout, UDPSize: mdns.MaxMsgSize},
		tcp: &mdns.Client{Net: "tcp", Timeout: perServerTimeout},
	}
	for _, s := range servers {
		hostPort, err := withPort(s)
		if err != nil {
			return nil, err
		}
		f.servers = append(f.servers, hostPort)
	}
	return f, nil
}

// Servers returns the upstreams, host:port, in the order they are asked.
func (f *Forwarder) Servers() []string { return f.servers }

// UpstreamsFromResolvConf returns the nameservers of a resolv.conf file.
func UpstreamsFromResolvConf(path string) ([]string, error) {
	cfg, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(cfg.Servers))
	for i, s := range cfg.Servers {
		out[i] = net.JoinHostPort(s, cfg.Port)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s names no nameserver", path)
	}
	return out, nil
}

func withPort(s string) (string, error) {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s, nil
	}
	if net.ParseIP(s) == nil {
		return "", fmt.Errorf("upstream %q: want an IP address, optionally with a port", s)
	}
	return net.JoinHostPort(s, strconv.Itoa(53)), nil
}

// Exchange implements Upstream. An answer that is SERVFAIL or REFUSED makes it
// try the next server; if every server answers so, that answer is returned. A
// truncated UDP answer is retried over TCP when the client came over TCP, and
// passed on otherwise, so that the client retries over TCP itself.
func (f *Forwarder) Exchange(ctx context.Context, req *mdns.Msg, network string) (*mdns.Msg, error) {
	var errs []error
	var last *mdns.Msg
	for _, server := range f.servers {
		if ctx.Err() != nil {
			break
		}
		c := f.udp
		if network == "tcp" {
			c = f.tcp
		}
		resp, _, err := c.ExchangeContext(ctx, req, server)
		if err == nil && resp.Truncated && network == "tcp" {
			resp, _, err = f.tcp.ExchangeContext(ctx, req, server)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", server, err))
			continue
		}
		if resp.Rcode == mdns.RcodeServerFailure || resp.Rcode == mdns.RcodeRefused {
			last = resp
			continue
		}
		return resp, nil
	}
	if last != nil {
		return last, nil
	}
	if len(errs) == 0 {
		errs = append(errs, ctx.Err())
	}
	return nil, errors.Join(errs...)
}
