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
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	mdns "github.com/miekg/dns"
)

// maxQuerySize is the largest UDP query the server reads whole; a longer one
// is cut short, which leaves it unparsable (FORMERR). No real query comes near.
const maxQuerySize = 4096

// ServerOptions configures Serve.
type ServerOptions struct {
	// Addr is where DNS is served, UDP and TCP: ":53" for every address.
	Addr string
	// HealthAddr serves /healthz and /readyz, MetricsAddr /metrics (Metrics
	// being its handler); "" or "0" serves nothing. They may be equal.
	HealthAddr, MetricsAddr string
	Metrics                 http.Handler
	// Ready reports whether the zone holds everything that exists: /readyz
	// fails until it does.
	Ready func() bool
	// Started, when set, is called with the addresses once every listener is
	// open (useful with port 0).
	Started func(Addrs)
}

// Addrs are the addresses a server listens on; nil for what it does not serve.
type Addrs struct {
	// DNS is the UDP address; TCP is served on the same port.
	DNS             net.Addr
	Health, Metrics net.Addr
}

// Serve answers DNS queries with h on UDP and TCP until ctx is done, and serves
// the probes and metrics. It returns an error when a listener cannot be
// opened or a server fails.
func Serve(ctx context.Context, h mdns.Handler, opts ServerOptions, log logr.Logger) error {
	pc, ln, err := listen(opts.Addr)
	if err != nil {
		return err
	}
	servers := []*mdns.Server{
		// The read buffer of each UDP query. Queries are a question and an
		// OPT record, well under 4 KiB even with EDNS options; a buffer of
		// 64 KiB per packet in flight costs clearing and collecting for nothing.
		{PacketConn: pc, Handler: h, MsgAcceptFunc: accept, UDPSize: maxQuerySize},
		{Listener: ln, Handler: h, MsgAcceptFunc: accept},
	}
	if ic, ok := h.(InvalidCounter); ok {
		for _, s := range servers {
			s.MsgInvalidFunc = ic.Invalid
		}
	}
	httpServers, err := httpServers(opts, log)
	if err != nil {
		pc.Close()
		ln.Close()
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(servers)+len(httpServers))
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() {
			if err := s.ActivateAndServe(); err != nil && ctx.Err() == nil {
				errc <- err
			}
		})
	}
	for _, hs := range httpServers {
		wg.Go(func() {
			if err := hs.srv.Serve(hs.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		})
	}
	log.Info("serving DNS", "udp", pc.LocalAddr().String(), "tcp", ln.Addr().String())
	if opts.Started != nil {
		addrs := Addrs{DNS: pc.LocalAddr()}
		for _, hs := range httpServers {
			if hs.addr == opts.HealthAddr {
				addrs.Health = hs.ln.Addr()
			}
			if hs.addr == opts.MetricsAddr {
				addrs.Metrics = hs.ln.Addr()
			}
		}
		opts.Started(addrs)
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	for _, s := range servers {
		_ = s.ShutdownContext(shutdown)
	}
	for _, hs := range httpServers {
		_ = hs.srv.Shutdown(shutdown)
	}
	wg.Wait()
	return err
}

// listen opens the UDP and TCP listeners of addr, on one port even when addr
// asks for any (port 0).
func listen(addr string) (net.PacketConn, net.Listener, error) {
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("serving DNS over UDP: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		// The port the kernel chose for UDP may be taken for TCP: choose again.
		if _, port, _ := net.SplitHostPort(addr); port != "0" || attempt == 10 {
			return nil, nil, fmt.Errorf("serving DNS over TCP: %w", err)
		}
	}
}

type httpServer struct {
	addr string // as configured
	srv  *http.Server
	ln   net.Listener
}

// httpServers opens the listeners of /healthz, /readyz and /metrics.
func httpServers(opts ServerOptions, log logr.Logger) ([]httpServer, error) {
	muxes := map[string]*http.ServeMux{}
	var order []string
	add := func(addr, path string, h http.Handler) {
		if addr == "" || addr == "0" || h == nil {
			return
		}
		if muxes[addr] == nil {
			muxes[addr] = http.NewServeMux()
			order = append(order, addr)
		}
		muxes[addr].Handle(path, h)
	}
	add(opts.HealthAddr, "/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	}))
	add(opts.HealthAddr, "/readyz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if opts.Ready != nil && !opts.Ready() {
			http.Error(w, "caches not synced yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	add(opts.MetricsAddr, "/metrics", opts.Metrics)
	var out []httpServer
	for _, addr := range order {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, s := range out {
				s.ln.Close()
			}
			return nil, fmt.Errorf("serving HTTP on %s: %w", addr, err)
		}
		log.Info("serving HTTP", "address", ln.Addr().String())
		out = append(out, httpServer{addr: addr, srv: &http.Server{Handler: muxes[addr], ReadHeaderTimeout: 5 * time.Second}, ln: ln})
	}
	return out, nil
}

// accept is the servers' MsgAcceptFunc. It lets every query through to the
// Handler, which answers what it does not implement with NOTIMP and what is
// malformed with FORMERR, and counts them; only answers are dropped, since
// answering one could start a loop between two servers.
func accept(dh mdns.Header) mdns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return mdns.MsgIgnore
	}
	return mdns.MsgAccept
}

// InvalidCounter is implemented by a handler that counts the messages the
// server could not parse (and answered FORMERR, if their header could be read).
type InvalidCounter interface {
	Invalid(m []byte, err error)
}
