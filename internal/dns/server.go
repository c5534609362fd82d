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
	// Started, when set, is called with the DNS address once both listeners
	// are open (useful with port 0).
	Started func(udp, tcp net.Addr)
}

// Serve answers DNS queries with h on UDP and TCP until ctx is done, and serves
// the probes and metrics. It returns an error when a listener cannot be
// opened or a server fails.
func Serve(ctx context.Context, h mdns.Handler, opts ServerOptions, log logr.Logger) error {
	pc, err := net.ListenPacket("udp", opts.Addr)
	if err != nil {
		return fmt.Errorf("serving DNS over UDP: %w", err)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("serving DNS over TCP: %w", err)
	}
	servers := []*mdns.Server{
		{PacketConn: pc, Handler: h, MsgAcceptFunc: accept, UDPSize: mdns.MaxMsgSize},
		{Listener: ln, Handler: h, MsgAcceptFunc: accept},
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
		opts.Started(pc.LocalAddr(), ln.Addr())
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

type httpServer struct {
	srv *http.Server
	ln  net.Listener
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
		out = append(out, httpServer{srv: &http.Server{Handler: muxes[addr], ReadHeaderTimeout: 5 * time.Second}, ln: ln})
	}
	return out, nil
}

// accept is the servers' MsgAcceptFunc: mdns's default, except that every
// opcode but QUERY (NOTIFY, UPDATE, ...) is answered NOTIMP, since the zone
// is read-only and has no secondaries.
func accept(dh mdns.Header) mdns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return mdns.MsgIgnore // an answer: never answer one
	}
	if opcode := int(dh.Bits>>11) & 0xF; opcode != mdns.OpcodeQuery {
		return mdns.MsgRejectNotImplemented
	}
	return mdns.DefaultMsgAcceptFunc(dh)
}
