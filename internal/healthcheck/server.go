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

package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// readHeaderTimeout bounds how long a client may take to send its request
// headers, so that idle connections cannot pile up on a node port.
const readHeaderTimeout = 10 * time.Second

// Server serves the health check node ports: one HTTP listener per port, opened
// and closed by Sync. It is safe for concurrent use.
type Server struct {
	bindAddress string
	log         logr.Logger

	mu        sync.Mutex
	listeners map[uint16]*listener
}

// listener is one health check node port and the Service it reports on.
type listener struct {
	srv  *http.Server
	done chan struct{}

	mu    sync.Mutex
	name  ServiceName
	count int
}

// NewServer returns a Server whose listeners bind bindAddress (an IP address;
// every address of the node when empty). log receives errors of the listeners.
func NewServer(bindAddress string, log logr.Logger) *Server {
	return &Server{bindAddress: bindAddress, log: log, listeners: map[uint16]*listener{}}
}

// Sync makes the server listen on exactly the node ports of services, each
// answering with its Service's local endpoint count. A port already open keeps its
// listener. A port that cannot be opened (another process holds it) is reported in
// the joined error and tried again on the next Sync; the other ports are served
// anyway. Two Services claiming one port is an error too; the first, in the order
// given, gets it.
func (s *Server) Sync(services []Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	var errs []error
	want := make(map[uint16]Service, len(services))
	for _, svc := range services {
		if svc.NodePort == 0 {
			continue
		}
		if other, dup := want[svc.NodePort]; dup {
			errs = append(errs, fmt.Errorf("health check node port %d of %s is already used by %s", svc.NodePort, svc.Name, other.Name))
			continue
		}
		want[svc.NodePort] = svc
	}

	for port, l := range s.listeners {
		if _, ok := want[port]; !ok {
			l.close()
			delete(s.listeners, port)
		}
	}
	for port, svc := range want {
		if l := s.listeners[port]; l != nil {
			l.set(svc)
			continue
		}
		l, err := s.open(port, svc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.listeners[port] = l
	}
	return errors.Join(errs...)
}

// Ports returns the ports the server listens on, in no particular order.
func (s *Server) Ports() []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uint16, 0, len(s.listeners))
	for port := range s.listeners {
		out = append(out, port)
	}
	return out
}

// Close closes every listener.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for port, l := range s.listeners {
		l.close()
		delete(s.listeners, port)
	}
}

func (s *Server) open(port uint16, svc Service) (*listener, error) {
	addr := net.JoinHostPort(s.bindAddress, strconv.Itoa(int(port)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health check node port of %s: %w", svc.Name, err)
	}
	l := &listener{done: make(chan struct{})}
	l.set(svc)
	l.srv = &http.Server{Handler: l, ReadHeaderTimeout: readHeaderTimeout}
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error(err, "health check node port stopped serving", "service", svc.Name.String(), "port", port)
		}
	}()
	return l, nil
}

func (l *listener) set(svc Service) {
	l.mu.Lock()
	l.name, l.count = svc.Name, svc.LocalEndpoints
	l.mu.Unlock()
}

func (l *listener) close() {
	_ = l.srv.Close()
	<-l.done
}

// response is the body of a health check node port answer, kube-proxy's.
type response struct {
	Service        ServiceName `json:"service"`
	LocalEndpoints int         `json:"localEndpoints"`
}

// ServeHTTP answers any request: 200 when the node has ready local endpoints of the
// Service, 503 when it has none, with the count in a JSON body either way.
func (l *listener) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	l.mu.Lock()
	body := response{Service: l.name, LocalEndpoints: l.count}
	l.mu.Unlock()
	code := http.StatusOK
	if body.LocalEndpoints == 0 {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// ServeListener serves handler on ln until ctx is done, then shuts it down. It
// returns the error that stopped it, nil after ctx ended it.
func ServeListener(ctx context.Context, ln net.Listener, handler http.Handler) error {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: readHeaderTimeout}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		// ctx is done; the shutdown gets its values but a deadline of its own.
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
		// Serve returns http.ErrServerClosed once Shutdown has begun.
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
