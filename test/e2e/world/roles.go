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

package world

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The environment that makes the harness binary play a part instead of running
// its tests.
const (
	envRole  = "SVCPLANE_WORLD_ROLE"
	envPod   = "SVCPLANE_WORLD_POD"
	envURL   = "SVCPLANE_WORLD_URL"
	envCount = "SVCPLANE_WORLD_COUNT"
	envWorld = "SVCPLANE_WORLD"

	roleServer = "server"
	roleGet    = "get"
	roleProbe  = "probe"

	serverReady = "ready"

	// exitRefused is the client's exit code for a refused connection (curl's 7).
	exitRefused = 7
)

// ErrRefused is returned by Get when the connection was refused.
var ErrRefused = errors.New("connection refused")

// RequestTimeout bounds each request of Fetch, Get and Probe.
const RequestTimeout = 2 * time.Second

// ClientIPPath is the path on which a pod's HTTP server answers with the address
// the request came from, as the pod saw it: the client's, or the one a rule
// masqueraded it to. Every other path answers with the pod's name.
const ClientIPPath = "/client-ip"

// Main plays the part the environment gives this process, a pod's server or a
// client, and exits; it returns at once when there is none. Call it first thing
// in TestMain or main.
func Main() {
	switch os.Getenv(envRole) {
	case "":
		return
	case roleServer:
		os.Exit(serve(os.Getenv(envPod)))
	case roleGet:
		n, _ := strconv.Atoi(os.Getenv(envCount))
		os.Exit(get(os.Getenv(envURL), max(n, 1)))
	case roleProbe:
		os.Exit(probe(os.Getenv(envURL)))
	}
	fmt.Fprintf(os.Stderr, "unknown %s %q\n", envRole, os.Getenv(envRole))
	os.Exit(2)
}

// serve answers every HTTP request and every UDP datagram with name, except
// requests for ClientIPPath, which it answers with their source address, on
// ServerPort (TCP and UDP) of every address of the pod, and says so on stdout once
// it listens.
func serve(name string) int {
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(ServerPort))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pc, err := net.ListenPacket("udp", ":"+strconv.Itoa(ServerPort))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go echoName(pc, name)
	fmt.Println(serverReady)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, name)
	})
	mux.HandleFunc(ClientIPPath, func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, host)
	})
	srv := &http.Server{ReadHeaderTimeout: RequestTimeout, Handler: mux}
	fmt.Fprintln(os.Stderr, srv.Serve(ln))
	return 1
}

// echoName answers every datagram pc receives with name, until pc fails.
func echoName(pc net.PacketConn, name string) {
	buf := make([]byte, 1500)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return
		}
		if _, err := pc.WriteTo([]byte(name), from); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

// get prints the answers of n requests to url, one a line, and stops at the
// first error.
func get(url string, n int) int {
	answers, err := Fetch(context.Background(), url, n)
	for _, a := range answers {
		fmt.Println(a)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return exitRefused
		}
		return 1
	}
	return 0
}

// Fetch sends n GET requests to url from this process's network namespace, each
// on a new connection (so each is a new choice of endpoint), and returns the
// answers, trimmed. It stops at the first error, which wraps syscall.ECONNREFUSED
// for a refused connection.
func Fetch(ctx context.Context, url string, n int) ([]string, error) {
	client := newHTTPClient()
	var answers []string
	for range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return answers, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return answers, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return answers, err
		}
		if resp.StatusCode != http.StatusOK {
			return answers, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
		}
		answers = append(answers, strings.TrimSpace(string(body)))
	}
	return answers, nil
}

// Get is Fetch run inside netns, by this binary in its client part. A refused
// connection is reported as ErrRefused.
func (w *World) Get(ctx context.Context, netns, url string, n int) ([]string, error) {
	cmd, err := w.Command(netns, []string{envRole + "=" + roleGet, envURL + "=" + url, envCount + "=" + strconv.Itoa(n)})
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The client gives up on each request after RequestTimeout; this only
	// catches a client that hangs.
	timer := time.AfterFunc(time.Duration(n+5)*RequestTimeout, func() { _ = cmd.Process.Kill() })
	err = cmd.Run()
	timer.Stop()
	var answers []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if line != "" {
			answers = append(answers, line)
		}
	}
	if err == nil {
		return answers, ctx.Err()
	}
	msg := strings.TrimSpace(stderr.String())
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == exitRefused {
		return answers, fmt.Errorf("GET %s from %s: %w: %s", url, netns, ErrRefused, msg)
	}
	return answers, fmt.Errorf("GET %s from %s: %w: %s", url, netns, err, msg)
}

// Response is the answer to one request, whatever its status.
type Response struct {
	// Status is the HTTP status code.
	Status int
	// Body is the body, trimmed.
	Body string
}

// newHTTPClient returns a client that opens a new connection for every request,
// straight to the address asked for.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout:   RequestTimeout,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
}

// Probe sends one GET request to url from this process's network namespace, as a
// load balancer's health check does, and returns the answer whatever its status:
// unlike Fetch, it is an error only when no answer came.
func Probe(ctx context.Context, url string) (Response, error) {
	client := newHTTPClient()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Response{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}, nil
}

// probe prints the status code of a request to url on one line and its body
// after it.
func probe(url string) int {
	resp, err := Probe(context.Background(), url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%d\n%s\n", resp.Status, resp.Body)
	return 0
}

// Probe is the package's Probe run inside netns, by this binary in its client
// part.
func (w *World) Probe(ctx context.Context, netns, url string) (Response, error) {
	cmd, err := w.Command(netns, []string{envRole + "=" + roleProbe, envURL + "=" + url})
	if err != nil {
		return Response{}, err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	timer := time.AfterFunc(5*RequestTimeout, func() { _ = cmd.Process.Kill() })
	err = cmd.Run()
	timer.Stop()
	if err != nil {
		return Response{}, fmt.Errorf("GET %s from %s: %w: %s", url, netns, err, strings.TrimSpace(stderr.String()))
	}
	code, body, _ := strings.Cut(stdout.String(), "\n")
	status, err := strconv.Atoi(code)
	if err != nil {
		return Response{}, fmt.Errorf("GET %s from %s: no status code in %q", url, netns, stdout.String())
	}
	return Response{Status: status, Body: strings.TrimSpace(body)}, ctx.Err()
}

// Supervise runs cmd, forwarding SIGINT, SIGTERM and SIGHUP to it rather than
// dying of them, so that the caller's deferred Destroy always runs, and returns
// its exit code.
func Supervise(cmd *exec.Cmd) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			var exit *exec.ExitError
			switch {
			case err == nil:
				return 0
			case errors.As(err, &exit) && exit.ExitCode() >= 0:
				return exit.ExitCode()
			}
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
}
