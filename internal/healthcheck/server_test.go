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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// The listeners bind 127.0.0.1 on ports the kernel just handed out as free.

func freePort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// get requests the port and returns the status code and decoded body.
func get(t *testing.T, port uint16) (int, response, error) {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return 0, response{}, err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body response
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	return resp.StatusCode, body, nil
}

func TestServerAnswersWithLocalEndpointCount(t *testing.T) {
	s := NewServer("127.0.0.1", logr.Discard())
	defer s.Close()
	webPort, dbPort := freePort(t), freePort(t)
	web := ServiceName{Namespace: "ns", Name: "web"}
	db := ServiceName{Namespace: "ns", Name: "db"}

	if err := s.Sync([]Service{{Name: web, NodePort: webPort, LocalEndpoints: 2}, {Name: db, NodePort: dbPort}}); err != nil {
		t.Fatal(err)
	}
	code, body, err := get(t, webPort)
	if err != nil {
		t.Fatal(err)
	}
	if want := (response{Service: web, LocalEndpoints: 2}); code != http.StatusOK || body != want {
		t.Errorf("web: got %d %+v, want 200 %+v", code, body, want)
	}
	code, body, err = get(t, dbPort)
	if err != nil {
		t.Fatal(err)
	}
	if want := (response{Service: db}); code != http.StatusServiceUnavailable || body != want {
		t.Errorf("db: got %d %+v, want 503 %+v", code, body, want)
	}

	// The count changes on the same listener.
	if err := s.Sync([]Service{{Name: web, NodePort: webPort}, {Name: db, NodePort: dbPort, LocalEndpoints: 1}}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(t, webPort); code != http.StatusServiceUnavailable {
		t.Errorf("web after losing its endpoints: got %d, want 503", code)
	}
	if code, _, _ := get(t, dbPort); code != http.StatusOK {
		t.Errorf("db after gaining one: got %d, want 200", code)
	}
}

func TestServerClosesRemovedPorts(t *testing.T) {
	s := NewServer("127.0.0.1", logr.Discard())
	defer s.Close()
	port := freePort(t)
	svc := Service{Name: ServiceName{Namespace: "ns", Name: "web"}, NodePort: port, LocalEndpoints: 1}
	if err := s.Sync([]Service{svc}); err != nil {
		t.Fatal(err)
	}
	if code, _, err := get(t, port); err != nil || code != http.StatusOK {
		t.Fatalf("got %d, %v; want 200", code, err)
	}
	if err := s.Sync(nil); err != nil {
		t.Fatal(err)
	}
	if len(s.Ports()) != 0 {
		t.Errorf("Ports() = %v after removing every Service", s.Ports())
	}
	if _, _, err := get(t, port); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("removed port: got %v, want connection refused", err)
	}
	// And it can be opened again.
	if err := s.Sync([]Service{svc}); err != nil {
		t.Fatal(err)
	}
	if code, _, err := get(t, port); err != nil || code != http.StatusOK {
		t.Errorf("reopened port: got %d, %v; want 200", code, err)
	}
}

func TestServerPortInUse(t *testing.T) {
	s := NewServer("127.0.0.1", logr.Discard())
	defer s.Close()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	busyPort := uint16(busy.Addr().(*net.TCPAddr).Port)
	okPort := freePort(t)
	svcs := []Service{
		{Name: ServiceName{Namespace: "ns", Name: "a"}, NodePort: busyPort, LocalEndpoints: 1},
		{Name: ServiceName{Namespace: "ns", Name: "b"}, NodePort: okPort, LocalEndpoints: 1},
	}

	err = s.Sync(svcs)
	if err == nil || !strings.Contains(err.Error(), "ns/a") {
		t.Fatalf("Sync with a busy port: got %v, want an error naming ns/a", err)
	}
	if code, _, err := get(t, okPort); err != nil || code != http.StatusOK {
		t.Errorf("the free port: got %d, %v; want 200", code, err)
	}

	// Once the port is free the next Sync opens it.
	busy.Close()
	if err := s.Sync(svcs); err != nil {
		t.Fatal(err)
	}
	ports := s.Ports()
	slices.Sort(ports)
	if want := []uint16{min(busyPort, okPort), max(busyPort, okPort)}; !slices.Equal(ports, want) {
		t.Errorf("Ports() = %v, want %v", ports, want)
	}
}

func TestServerRejectsSharedPort(t *testing.T) {
	s := NewServer("127.0.0.1", logr.Discard())
	defer s.Close()
	port := freePort(t)
	first := ServiceName{Namespace: "ns", Name: "first"}
	err := s.Sync([]Service{
		{Name: first, NodePort: port, LocalEndpoints: 1},
		{Name: ServiceName{Namespace: "ns", Name: "second"}, NodePort: port, LocalEndpoints: 1},
	})
	if err == nil || !strings.Contains(err.Error(), "already used by ns/first") {
		t.Errorf("Sync: got %v, want a shared-port error", err)
	}
	if _, body, err := get(t, port); err != nil || body.Service != first {
		t.Errorf("got %+v, %v; want the first Service's answer", body, err)
	}
}
