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

// Command demo shows svcplane working on one machine, for a person: it builds a
// node, three pods and a client out of network namespaces (package
// test/e2e/world), runs the control plane, the manager and the agent inside
// the node's namespace (package test/e2e/cluster), applies config/samples,
// prints what kubectl shows, what a few requests through ClusterIPs and
// NodePorts answer and what svcplane's DNS server answers a pod, and removes
// everything on exit, Ctrl-C included. `make demo` runs it; it needs root.
// With --hold it keeps the world up until Ctrl-C and says how to look around.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/internal/agent"
	"github.com/svcplane/svcplane/test/e2e/cluster"
	"github.com/svcplane/svcplane/test/e2e/world"
)

const (
	netnsPrefix = "svcp-demo"
	envInner    = "SVCPLANE_DEMO_INNER"
)

var pods = []string{"web-1", "web-2", "web-3"}

// mode is the agent's mode (--mode).
var mode string

func main() {
	world.Main()
	hold := flag.Bool("hold", false, "keep the world up after the tour, until Ctrl-C")
	logFile := flag.String("log-file", "bin/demo.log", "where the control plane, manager and agent log")
	flag.StringVar(&mode, "mode", agent.ModeIPTables, "the agent's --mode: iptables or nftables")
	flag.Parse()
	if os.Getenv(envInner) != "" {
		os.Exit(inner(*hold, *logFile))
	}
	os.Exit(outer())
}

// outer builds the world, runs the tour inside its node and removes the world.
func outer() (code int) {
	if reason := world.Unsupported(); reason != "" {
		fmt.Fprintf(os.Stderr, "make demo %s: try `sudo make demo`\n", reason)
		return 1
	}
	if _, err := cluster.AssetsDir("."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		fmt.Fprintln(os.Stderr, "make demo needs kubectl on PATH")
		return 1
	}
	if err := world.SweepLeftovers(netnsPrefix); err != nil {
		fmt.Fprintln(os.Stderr, "removing what earlier demos left:", err)
	}

	w, err := world.Create(netnsPrefix, pods...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the world:", err)
		return 1
	}
	defer func() {
		heading("Tearing down: stopping the servers, deleting the namespaces")
		if err := w.Destroy(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = max(code, 1)
			return
		}
		fmt.Println("Done; nothing of the demo is left.")
	}()
	heading("A world of network namespaces")
	fmt.Printf("node    %-28s %s (towards the client), %s (gateway of its pods)\n", w.Node, world.NodeIP, world.PodGateway)
	for _, p := range w.Pods {
		fmt.Printf("pod     %-28s %s, answers on :%d with %q\n", p.Netns, p.IP, world.ServerPort, p.Name)
	}
	fmt.Printf("client  %-28s %s, outside the cluster: it reaches only the node\n", w.Client, world.ClientIP)
	if err := w.StartServers(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd, err := w.Command(w.Node, []string{envInner + "=1", w.Env()}, os.Args[1:]...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return world.Supervise(cmd)
}

// inner runs in the node's namespace.
func inner(hold bool, logFile string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	w, err := world.FromEnv()
	if err != nil || w == nil {
		fmt.Fprintln(os.Stderr, "no world handed down:", err)
		return 1
	}
	if err := tour(ctx, w, hold, logFile); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	return 0
}

func tour(ctx context.Context, w *world.World, hold bool, logFile string) (err error) {
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		return err
	}
	logs, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer logs.Close()
	logf.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(true)))

	heading("Starting kube-apiserver, etcd, the svcplane manager and the agent on the node's loopback")
	start := time.Now()
	cl, err := cluster.Start(ctx, w, cluster.Options{
		Root: ".",
		// The agent's defaults, on the node namespace's loopback.
		HealthzBindAddress: "127.0.0.1:10356",
		MetricsBindAddress: "127.0.0.1:10349",
		Mode:               mode,
	})
	if err != nil {
		return fmt.Errorf("%w (logs in %s)", err, logFile)
	}
	defer func() {
		heading("Stopping the agent, the manager and the control plane")
		err = errors.Join(err, cl.Stop())
	}()
	fmt.Printf("Up in %v; their logs go to %s.\n", time.Since(start).Round(100*time.Millisecond), logFile)
	kubeconfig, err := os.CreateTemp("", "svcplane-demo-kubeconfig-*")
	if err != nil {
		return err
	}
	defer os.Remove(kubeconfig.Name())
	if _, err := kubeconfig.Write(cl.Kubeconfig()); err != nil {
		return err
	}
	kubeconfig.Close()
	kubectl := func(args ...string) error {
		return show(ctx, "kubectl", append([]string{"--kubeconfig", kubeconfig.Name()}, args...)...)
	}

	if err := kubectl("get", "nodes,pods", "-o", "wide"); err != nil {
		return err
	}
	if err := kubectl("apply", "-k", "config/samples"); err != nil {
		return err
	}
	svcs, err := waitAllocated(ctx, cl)
	if err != nil {
		return err
	}
	if err := kubectl("get", "svcp", "-o", "wide"); err != nil {
		return err
	}
	if err := kubectl("get", "endpointslices", "-l", "networking.svcplane.io/service-name", "-o", "wide"); err != nil {
		return err
	}

	web1, _ := w.Pod("web-1")
	client := func(netns string) getter {
		return func(ctx context.Context, url string, n int) ([]string, error) { return w.Get(ctx, netns, url, n) }
	}
	fromNode := getter(world.Fetch)
	clusterIP := func(name string) string {
		svc := svcs[name]
		return fmt.Sprintf("http://%s:%d/", svc.Status.ClusterIP, svc.Spec.Ports[0].Port)
	}
	nodePort := func(name string) string {
		return fmt.Sprintf("http://%s:%d/", world.NodeIP, svcs[name].Status.Ports[0].NodePort)
	}
	for _, r := range []struct {
		what, url string
		get       getter
		n         int
	}{
		{"From the node to the ClusterIP of clusterip: any of the three pods", clusterIP("clusterip"), fromNode, 6},
		{"From pod web-1 to clusterip-requested (targetPort by name, http): web-1 too, through the node", clusterIP("clusterip-requested"), client(web1.Netns), 6},
		{"From the client to the NodePort of nodeport, on the node's address", nodePort("nodeport"), client(w.Client), 6},
		{"From the node to session-affinity (ClientIP): always the same pod", clusterIP("session-affinity"), fromNode, 6},
		{"From the client to nodeport-requested's 30080: it selects app=dns, which no pod has", nodePort("nodeport-requested"), client(w.Client), 1},
	} {
		if err := request(ctx, r.what, r.url, r.get, r.n); err != nil {
			return err
		}
	}
	if lb := svcs["loadbalancer"]; lb.Status.HealthCheckNodePort != 0 {
		url := fmt.Sprintf("http://%s:%d/", world.NodeIP, lb.Status.HealthCheckNodePort)
		if err := request(ctx, "From the client to the health check node port of loadbalancer (externalTrafficPolicy: Local), as a cloud load balancer probes it", url, client(w.Client), 1); err != nil {
			return err
		}
	}
	if err := dnsTour(ctx, cl, web1.Netns, client(web1.Netns)); err != nil {
		return err
	}
	if mode == agent.ModeNFTables {
		if err := show(ctx, "nft", "list", "chain", "ip", "svcplane", "services"); err != nil {
			return err
		}
		if err := show(ctx, "nft", "list", "map", "ip", "svcplane", "service-ips"); err != nil {
			return err
		}
	} else if err := show(ctx, "iptables", "-t", "nat", "-S", "SVCP-SERVICES"); err != nil {
		return err
	}

	if hold {
		heading("The world stays up until Ctrl-C. In another shell, as root:")
		fmt.Printf("  ip netns exec %s kubectl --kubeconfig %s get svcp\n", w.Node, kubeconfig.Name())
		if mode == agent.ModeNFTables {
			fmt.Printf("  ip netns exec %s nft list table ip svcplane\n", w.Node)
		} else {
			fmt.Printf("  ip netns exec %s iptables-save | grep SVCP\n", w.Node)
		}
		fmt.Printf("  ip netns exec %s curl -s http://127.0.0.1:10349/metrics | grep svcplane_agent\n", w.Node)
		fmt.Printf("  ip netns exec %s curl -s %s\n", w.Client, nodePort("nodeport"))
		fmt.Printf("  ip netns exec %s curl -s %s\n", web1.Netns, clusterIP("clusterip"))
		<-ctx.Done()
	}
	return nil
}

// getter sends n requests to url and returns the answers.
type getter func(ctx context.Context, url string, n int) ([]string, error)

// waitAllocated waits until svcplane has handled every sample Service and the
// agent answers on the ones the tour uses, and returns the Services by name.
func waitAllocated(ctx context.Context, cl *cluster.Cluster) (map[string]*v1alpha1.Service, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var list v1alpha1.ServiceList
		if err := cl.Client.List(ctx, &list, client.InNamespace(cl.Namespace)); err != nil {
			return nil, err
		}
		svcs := map[string]*v1alpha1.Service{}
		pending := []string{}
		for i := range list.Items {
			svc := &list.Items[i]
			svcs[svc.Name] = svc
			if svc.Status.ObservedGeneration != svc.Generation {
				pending = append(pending, svc.Name)
			}
		}
		for _, name := range []string{"clusterip", "clusterip-requested", "nodeport", "nodeport-requested", "session-affinity", "loadbalancer"} {
			svc := svcs[name]
			if svc == nil || svc.Status.ClusterIP == "" || (svc.Spec.Type != corev1.ServiceTypeClusterIP && len(svc.Status.Ports) > 0 && svc.Status.Ports[0].NodePort == 0) {
				pending = append(pending, name)
			}
		}
		if len(pending) == 0 {
			// Let the agent's next sync (at most --min-sync-period away) catch up.
			if err := waitServing(ctx, fmt.Sprintf("http://%s:%d/", svcs["clusterip"].Status.ClusterIP, svcs["clusterip"].Spec.Ports[0].Port)); err != nil {
				return nil, err
			}
			return svcs, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("svcplane has not handled %v after 30s", pending)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waitServing(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := world.Fetch(ctx, url, 1)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// request prints what n requests to url answer.
func request(ctx context.Context, what, url string, get getter, n int) error {
	heading(what)
	times := "once"
	if n > 1 {
		times = fmt.Sprintf("%d times, a new connection each", n)
	}
	fmt.Printf("$ curl %s    # %s\n", url, times)
	answers, err := get(ctx, url, n)
	for _, a := range answers {
		fmt.Println(indentJSON(a))
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A refusal is what a Service without endpoints answers.
		if errors.Is(err, world.ErrRefused) || errors.Is(err, syscall.ECONNREFUSED) {
			fmt.Println("connection refused (the agent's REJECT rule: no endpoints)")
			return nil
		}
		return err
	}
	return nil
}

func indentJSON(s string) string {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// show prints a command and runs it, its output going to ours.
func show(ctx context.Context, name string, args ...string) error {
	shown := args
	if len(shown) >= 2 && shown[0] == "--kubeconfig" {
		shown = shown[2:]
	}
	heading(name + " " + strings.Join(shown, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func heading(s string) {
	if bold {
		fmt.Printf("\n\033[1m==> %s\033[0m\n", s)
		return
	}
	fmt.Printf("\n==> %s\n", s)
}

// bold tells whether stdout is a terminal, which shows headings in bold.
var bold = func() bool {
	fi, err := os.Stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}()
