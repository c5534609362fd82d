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
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/procfs"
	"github.com/vishvananda/netns"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// controlPlane starts kube-apiserver and etcd from assets with serviceCIDR as the core
// Service range, and the svcplane CRDs.
func controlPlane(root, assets, serviceCIDR string) (*envtest.Environment, []byte, error) {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", serviceCIDR)
	if _, err := env.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting the control plane: %w", err)
	}
	admin, err := env.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = env.Stop()
		return nil, nil, err
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		_ = env.Stop()
		return nil, nil, err
	}
	return env, kubeconfig, nil
}

// process is one component under measurement, running as its own process (optionally in
// a network namespace) so that /proc tells its CPU time and peak memory alone.
type process struct {
	name  string
	netns string // "" is the harness's own
	cmd   *exec.Cmd
	log   *os.File
	done  chan struct{}
	err   error
	fs    procfs.FS
}

// startProcess runs bin with args, in netns when it is not empty (ip netns exec execs
// the binary in place, so the PID is the component's), logging to dir/name.log.
func startProcess(dir, name, netnsName string, env []string, bin string, args ...string) (*process, error) {
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	argv := append([]string{bin}, args...)
	if netnsName != "" {
		argv = append([]string{"ip", "netns", "exec", netnsName}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: a Ctrl-C of the harness reaches the harness, which stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, err
	}
	p := &process{name: name, netns: netnsName, cmd: cmd, log: log, done: make(chan struct{}), fs: fs}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// usage is the process's CPU seconds and peak RSS so far.
func (p *process) usage() (procUsage, error) {
	select {
	case <-p.done:
		return procUsage{}, fmt.Errorf("%s exited: %v (log %s)", p.name, p.err, p.log.Name())
	default:
	}
	return usageOf(p.fs, p.cmd.Process.Pid)
}

// alive returns an error when the process has exited.
func (p *process) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v (log %s)", p.name, p.err, p.log.Name())
	default:
		return nil
	}
}

// stop sends SIGTERM, then SIGKILL after 20 s.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.log.Close()
}

// netnsHandle is a network namespace that the harness created and removes.
type netnsHandle struct {
	name string
	ns   netns.NsHandle
}

// createNetns adds a named network namespace with its loopback up.
func createNetns(name string) (*netnsHandle, error) {
	_ = exec.Command("ip", "netns", "del", name).Run() // a leftover of a crashed run
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		_ = exec.Command("ip", "netns", "del", name).Run()
		return nil, fmt.Errorf("ip -n %s link set lo up: %v: %s", name, err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		_ = exec.Command("ip", "netns", "del", name).Run()
		return nil, err
	}
	return &netnsHandle{name: name, ns: h}, nil
}

func (n *netnsHandle) remove() error {
	n.ns.Close()
	if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %v: %s", n.name, err, out)
	}
	return nil
}

// inNetns runs f on a thread switched into ns, so that the sockets f opens belong to ns
// (a socket keeps the namespace it was created in).
func inNetns(ns netns.NsHandle, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// The thread is in the wrong namespace: never let it run anything else.
		panic(fmt.Sprintf("returning to the harness's network namespace: %v", err))
	}
	return ferr
}

// forwardAPIServer listens on 127.0.0.1 inside ns and forwards every connection to the
// API server's address on the harness's loopback, so that a component in ns reaches the
// API server at the same 127.0.0.1 address its serving certificate names, and nothing
// leaves loopback. It returns the port it listens on.
func forwardAPIServer(ctx context.Context, ns netns.NsHandle, apiAddr string) (int, error) {
	var l net.Listener
	if err := inNetns(ns, func() (err error) {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		return 0, err
	}
	go func() { <-ctx.Done(); l.Close() }()
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", apiAddr)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in); _ = out.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// metricsClient returns an HTTP client whose connections are opened inside ns, for the
// components' metrics endpoints on ns's loopback.
func metricsClient(ns netns.NsHandle) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(ns, func() (err error) {
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

// scrape fetches and parses url's metrics with c.
func scrape(ctx context.Context, c *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

var errTimeout = errors.New("timed out")

// waitUntil polls cond every interval until it returns true, an error, or limit passes.
func waitUntil(ctx context.Context, limit, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s", errTimeout, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// follow calls handle with every event of a watch on list's kind in ns until ctx ends,
// watching again from the last resource version seen whenever the API server ends a
// watch (timeouts, restarts), so that no write goes unseen.
func follow(ctx context.Context, c client.WithWatch, list client.ObjectList, ns string, handle func(watch.Event)) error {
	rv := ""
	start := func() (watch.Interface, error) {
		opts := []client.ListOption{client.InNamespace(ns)}
		if rv != "" {
			opts = append(opts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
		}
		return c.Watch(ctx, list.DeepCopyObject().(client.ObjectList), opts...)
	}
	w, err := start()
	if err != nil {
		return err
	}
	go func() {
		for {
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					continue // the watch ends after it; watched again below
				}
				if m, err := meta.Accessor(ev.Object); err == nil {
					rv = m.GetResourceVersion()
				}
				handle(ev)
			}
			for {
				if ctx.Err() != nil {
					return
				}
				if w, err = start(); err == nil {
					break
				}
				rv = "" // too old: start over (a few events may repeat, none is lost)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	return nil
}
