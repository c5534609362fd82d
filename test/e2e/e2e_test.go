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

package e2e

// Addresses: see package world. The world is dual-stack, IPv4 primary. Pods are
// 10.244.1.10-12 and fd00:10:244:1::a-c (pod-a, pod-b, pod-c) on node 203.0.113.1
// (TEST-NET-3) and 2001:db8:1::1 (documentation), the client is 203.0.113.2 and
// 2001:db8:1::2; svcplane allocates cluster IPs from 10.96.0.0/12 and
// fd00:10:96::/112 (cluster.ServiceCIDRs) and node ports from 30000-32767. The
// tests in this file send IPv4 traffic, those in dualstack_test.go IPv6, and
// those with a subtest per family (IPv4, IPv6) both, to a dual-stack Service:
// session affinity, health check node ports and, in conntrack_test.go, the UDP
// conntrack cleanup. Every request stays inside the world's namespaces.
//
// TestMain runs twice. The first run (root, in the caller's namespace) builds the
// world, starts the pods' servers and re-executes the test binary inside the node's
// namespace; whatever happens, it then removes the world. The second run starts
// the control plane, the manager and the agent there, runs the tests and then
// checks the agent's cleanup (checkCleanup), which stops the agent and so must
// come after every test, whatever their order.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/test/e2e/cluster"
	"github.com/svcplane/svcplane/test/e2e/world"
)

const (
	// netnsPrefix names the test's namespaces: svcp-e2e-<pid>-node and so on.
	netnsPrefix = "svcp-e2e"
	// envInner marks the run inside the node's namespace.
	envInner = "SVCPLANE_E2E_INNER"
	repoRoot = "../.."

	// The agent's endpoints, on the node namespace's loopback.
	healthzAddr = "127.0.0.1:10356"
	metricsAddr = "127.0.0.1:10349"

	// programmed bounds how long a change takes to reach the kernel: allocation,
	// EndpointSlices, the agent's watch and its sync.
	programmed = 30 * time.Second
	// unreadyWithin is how soon a pod that turns unready must stop receiving new
	// connections.
	unreadyWithin = 5 * time.Second
)

var (
	// skipReason says why the tests cannot run here.
	skipReason string
	w          *world.World
	cl         *cluster.Cluster
	allPods    = []string{"pod-a", "pod-b", "pod-c"}
)

func TestMain(m *testing.M) {
	world.Main()
	flag.Parse()
	if os.Getenv(envInner) != "" {
		os.Exit(inner(m))
	}
	os.Exit(outer(m))
}

// outer builds the world and runs the tests inside its node.
func outer(m *testing.M) (code int) {
	if skipReason = world.Unsupported(); skipReason != "" {
		return m.Run()
	}
	if _, err := cluster.AssetsDir(repoRoot); err != nil {
		skipReason = err.Error()
		return m.Run()
	}
	if err := world.SweepLeftovers(netnsPrefix); err != nil {
		fmt.Fprintln(os.Stderr, "removing what earlier runs left:", err)
	}
	var err error
	w, err = world.Create(netnsPrefix, allPods...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the world:", err)
		return 1
	}
	defer func() {
		if err := w.Destroy(); err != nil {
			fmt.Fprintln(os.Stderr, "removing the world:", err)
			code = max(code, 1)
		}
	}()
	if err := w.StartServers(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Every test runs once per mode, each run with its own control plane and
	// agent on the same world, and each ends with the cleanup check, so the
	// next run starts on a clean node.
	for _, mode := range testedModes() {
		fmt.Printf("=== the tests in %s mode\n", mode)
		cmd, err := w.Command(w.Node, []string{envInner + "=1", envMode + "=" + mode, w.Env()}, os.Args[1:]...)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if c := world.Supervise(cmd); c != 0 {
			fmt.Fprintf(os.Stderr, "the tests in %s mode failed\n", mode)
			code = max(code, c)
		}
	}
	return code
}

// inner runs in the node's namespace: svcplane up, the tests, svcplane down.
func inner(m *testing.M) int {
	var err error
	if w, err = world.FromEnv(); err != nil || w == nil {
		fmt.Fprintln(os.Stderr, "no world handed down:", err)
		return 1
	}
	// The control plane, manager and agent log a lot: into a file, whose end is
	// printed if something fails.
	logs, err := os.CreateTemp("", "svcplane-e2e-*.log")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer logs.Close()
	logf.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(true)))

	ctx := context.Background()
	start := time.Now()
	cl, err = cluster.Start(ctx, w, cluster.Options{
		Root:               repoRoot,
		HealthzBindAddress: healthzAddr,
		MetricsBindAddress: metricsAddr,
		Mode:               agentMode(),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting svcplane: %v (logs in %s)\n", err, logs.Name())
		return 1
	}
	fmt.Printf("svcplane up in the node namespace in %v, the agent in %s mode\n", time.Since(start).Round(time.Millisecond), agentMode())
	code := m.Run()
	// Last, once every test is done with the agent (and not when -list only
	// listed the tests).
	if list := flag.Lookup("test.list"); list == nil || list.Value.String() == "" {
		if err := checkModeSwitch(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "mode switch check after the tests: FAIL: %v\n", err)
			code = max(code, 1)
		} else {
			fmt.Printf("mode switch check after the tests: ok, %s mode and back left nothing behind\n", agentMode())
		}
		if err := checkCleanup(ctx); err != nil {
			// Not "--- FAIL:", which go test -json would take for a test's.
			fmt.Fprintf(os.Stderr, "cleanup check after the tests: FAIL: %v\n", err)
			code = max(code, 1)
		} else {
			fmt.Println("cleanup check after the tests: ok, the agent's cleanup removed every rule")
		}
	}
	if err := cl.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping svcplane:", err)
		code = max(code, 1)
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "\nthe last lines of the manager's and agent's logs (all of them in %s):\n%s\n", logs.Name(), tail(logs.Name(), 150))
	} else {
		os.Remove(logs.Name())
	}
	return code
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// requireWorld skips the test where no world could be built, and fails it on CI.
func requireWorld(t *testing.T) {
	t.Helper()
	if skipReason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(skipReason)
	}
	t.Skip(skipReason)
}

// webService returns a Service selecting every pod, port 80 to the servers' 8080.
func webService(name string) *v1alpha1.Service {
	return &v1alpha1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cl.Namespace},
		Spec: v1alpha1.ServiceSpec{
			Selector: cluster.DefaultPodLabels,
			Ports:    []v1alpha1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(world.ServerPort)}},
		},
	}
}

// create creates svc, deletes it when the test ends, and returns it once svcplane
// has allocated its addresses: a cluster IP of each family it requires, and its
// node ports.
func create(t *testing.T, svc *v1alpha1.Service) *v1alpha1.Service {
	t.Helper()
	ctx := t.Context()
	if err := cl.Client.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cl.Client.Delete(context.Background(), svc); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	})
	eventually(t, programmed, func() error {
		if err := cl.Client.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return err
		}
		if svc.Status.ClusterIP == "" {
			return errors.New("no cluster IP yet")
		}
		if policy := svc.Spec.IPFamilyPolicy; policy != nil && *policy == corev1.IPFamilyPolicyRequireDualStack && len(svc.Status.ClusterIPs) != 2 {
			return fmt.Errorf("cluster IPs %v, want one of each family", svc.Status.ClusterIPs)
		}
		for _, p := range svc.Status.Ports {
			if svc.Spec.Type != "" && svc.Spec.Type != corev1.ServiceTypeClusterIP && p.NodePort == 0 {
				return errors.New("no node port yet")
			}
		}
		return nil
	})
	return svc
}

// clusterURL returns the URL of the first port of svc at its primary cluster IP.
func clusterURL(svc *v1alpha1.Service) string {
	return hostURL(svc.Status.ClusterIP, svc.Spec.Ports[0].Port)
}

// clusterURLOf returns the URL of the first port of svc at its cluster IP of
// family, failing the test when it has none.
func clusterURLOf(t *testing.T, svc *v1alpha1.Service, family corev1.IPFamily) string {
	t.Helper()
	return hostURL(clusterIPOf(t, svc, family), svc.Spec.Ports[0].Port)
}

// clusterIPOf returns the cluster IP of family of svc, failing the test when it
// has none.
func clusterIPOf(t *testing.T, svc *v1alpha1.Service, family corev1.IPFamily) string {
	t.Helper()
	for _, s := range svc.Status.ClusterIPs {
		if ip, err := netip.ParseAddr(s); err == nil && ipFamily(ip) == family {
			return s
		}
	}
	t.Fatalf("%s/%s has no %s cluster IP: %v", svc.Namespace, svc.Name, family, svc.Status.ClusterIPs)
	return ""
}

// nodePortURL returns the URL of the first node port of svc on the node's IPv4
// address.
func nodePortURL(svc *v1alpha1.Service) string {
	return nodePortURLAt(world.NodeIP, svc)
}

// nodePortURLAt returns the URL of the first node port of svc on node address
// addr.
func nodePortURLAt(addr netip.Addr, svc *v1alpha1.Service) string {
	return hostURL(addr.String(), svc.Status.Ports[0].NodePort)
}

// hostURL returns the root URL of host:port, host in brackets if IPv6.
func hostURL(host string, port int32) string {
	return "http://" + net.JoinHostPort(host, strconv.Itoa(int(port))) + "/"
}

// ipFamily returns the family of ip in the API's words.
func ipFamily(ip netip.Addr) corev1.IPFamily {
	if ip.Is4() {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}

// clientIPURL returns the URL on the same server as url (one of clusterURL or
// nodePortURL) that answers with the address the pod saw the request come from.
func clientIPURL(url string) string {
	return strings.TrimSuffix(url, "/") + world.ClientIPPath
}

// eventually calls f until it succeeds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	if err := poll(timeout, f); err != nil {
		t.Fatalf("still failing after %v: %v", timeout, err)
	}
}

// poll calls f until it succeeds and returns nil, or returns f's last error once
// timeout has passed.
func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getter sends n requests to a URL from somewhere and returns the answers: one of
// fromNode and fromNetns.
type getter = func(ctx context.Context, url string, n int) ([]string, error)

// fromNode sends n requests from the node, i.e. this process.
func fromNode(ctx context.Context, url string, n int) ([]string, error) {
	return world.Fetch(ctx, url, n)
}

// fromNetns sends n requests from the world's namespace netns.
func fromNetns(netns string) func(context.Context, string, int) ([]string, error) {
	return func(ctx context.Context, url string, n int) ([]string, error) {
		return w.Get(ctx, netns, url, n)
	}
}

func podNetns(t *testing.T, name string) string {
	t.Helper()
	return mustPod(t, name).Netns
}

func mustPod(t *testing.T, name string) world.Pod {
	t.Helper()
	p, ok := w.Pod(name)
	if !ok {
		t.Fatalf("no pod %s", name)
	}
	return p
}

// waitServing waits until url answers through get.
func waitServing(t *testing.T, get func(context.Context, string, int) ([]string, error), url string) {
	t.Helper()
	eventually(t, programmed, func() error {
		_, err := get(t.Context(), url, 1)
		return err
	})
}

// answerers returns the set of pods that answered.
func answerers(answers []string) []string {
	set := map[string]bool{}
	for _, a := range answers {
		set[a] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// expectAllPodsAnswer sends requests through get until every ready pod answered,
// 60 at most: with three pods the chance that one of them is never picked is
// 3*(2/3)^60, about 10^-10.
func expectAllPodsAnswer(t *testing.T, get func(context.Context, string, int) ([]string, error), url string) {
	t.Helper()
	answers, err := get(t.Context(), url, 60)
	if err != nil {
		t.Fatal(err)
	}
	if got := answerers(answers); !slices.Equal(got, allPods) {
		t.Errorf("%d requests to %s were answered by %v, want every pod %v", len(answers), url, got, allPods)
	}
}

// saveRules returns what tool (iptables-save or ip6tables-save) prints.
func saveRules(tool string) (string, error) {
	out, err := exec.Command(tool).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", tool, err, out)
	}
	return string(out), nil
}

// labelPod adds label (with the value "true") to the pod named name until the
// test ends, so that a Service selecting label selects it.
func labelPod(t *testing.T, name, label string) {
	t.Helper()
	set := func(ctx context.Context, on bool) error {
		var pod corev1.Pod
		if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: cl.Namespace, Name: name}, &pod); err != nil {
			return err
		}
		patch := client.MergeFrom(pod.DeepCopy())
		if on {
			pod.Labels[label] = "true"
		} else {
			delete(pod.Labels, label)
		}
		return cl.Client.Patch(ctx, &pod, patch)
	}
	if err := set(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := set(context.Background(), false); err != nil {
			t.Error(err)
		}
	})
}

// setPodReady sets the readiness of the pod named name until the test ends, when
// the pod turns ready again.
func setPodReady(t *testing.T, name string, ready bool) {
	t.Helper()
	if err := cl.SetPodReady(t.Context(), name, ready); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cl.SetPodReady(context.Background(), name, true); err != nil {
			t.Error(err)
		}
	})
}

func TestClusterIPFromNode(t *testing.T) {
	requireWorld(t)
	svc := create(t, webService("from-node"))
	waitServing(t, fromNode, clusterURL(svc))
	expectAllPodsAnswer(t, fromNode, clusterURL(svc))
}

func TestClusterIPFromPod(t *testing.T) {
	requireWorld(t)
	svc := create(t, webService("from-pod"))
	// Requests from pod-a that land on pod-a itself go out and back through the
	// node (hairpin), masqueraded.
	get := fromNetns(podNetns(t, "pod-a"))
	waitServing(t, get, clusterURL(svc))
	expectAllPodsAnswer(t, get, clusterURL(svc))
}

func TestNodePortFromClient(t *testing.T) {
	requireWorld(t)
	svc := webService("nodeport")
	svc.Spec.Type = corev1.ServiceTypeNodePort
	svc = create(t, svc)
	get := fromNetns(w.Client)
	waitServing(t, get, nodePortURL(svc))
	expectAllPodsAnswer(t, get, nodePortURL(svc))
}

// TestSessionAffinityClientIP checks that ClientIP affinity keeps each client on
// one pod, once per family of a dual-stack Service: to its cluster IP of the
// family from the node and from pod-b, and to its node port on the node's
// address of the family from the client. The IPv6 half exercises the -m recent
// rules the agent writes with ip6tables.
func TestSessionAffinityClientIP(t *testing.T) {
	requireWorld(t)
	svc := dualStackService("affinity")
	svc.Spec.Type = corev1.ServiceTypeNodePort
	svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	svc = create(t, svc)

	for _, family := range families {
		t.Run(string(family), func(t *testing.T) {
			clusterIP := clusterURLOf(t, svc, family)
			for _, c := range []struct {
				from, url string
				get       getter
			}{
				{"the node", clusterIP, fromNode},
				{"pod-b", clusterIP, fromNetns(podNetns(t, "pod-b"))},
				{"the client", nodePortURLAt(nodeIPOf(family), svc), fromNetns(w.Client)},
			} {
				waitServing(t, c.get, c.url)
				// Without affinity, 20 requests all land on one of three
				// pods with a chance of 3*(1/3)^20, about 10^-9.
				answers, err := c.get(t.Context(), c.url, 20)
				if err != nil {
					t.Fatal(err)
				}
				if got := answerers(answers); len(got) != 1 {
					t.Errorf("20 requests from %s to %s were answered by %v, want one pod", c.from, c.url, got)
				}
			}
		})
	}
}

func TestUnreadyPodStopsReceivingTraffic(t *testing.T) {
	requireWorld(t)
	svc := create(t, webService("unready"))
	expectUnreadyPodLeaves(t, clusterURL(svc))
}

// expectUnreadyPodLeaves checks, from the node, that every pod answers url, that
// pod-c stops answering within unreadyWithin of turning unready while the others
// go on, and that it answers again once ready.
func expectUnreadyPodLeaves(t *testing.T, url string) {
	t.Helper()
	waitServing(t, fromNode, url)
	expectAllPodsAnswer(t, fromNode, url)

	ctx := t.Context()
	setPodReady(t, "pod-c", false)
	turned := time.Now()
	// pod-c is out once 30 requests in a row miss it (chance of missing it by
	// luck while it is in: (2/3)^30, about 5*10^-6).
	eventually(t, unreadyWithin, func() error {
		answers, err := fromNode(ctx, url, 30)
		if err != nil {
			return err
		}
		if slices.Contains(answers, "pod-c") {
			return errors.New("pod-c still answers")
		}
		return nil
	})
	t.Logf("pod-c stopped receiving traffic to %s %v after turning unready", url, time.Since(turned).Round(10*time.Millisecond))
	answers, err := fromNode(ctx, url, 30)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := answerers(answers), []string{"pod-a", "pod-b"}; !slices.Equal(got, want) {
		t.Errorf("with pod-c unready, %s was answered by %v, want %v", url, got, want)
	}

	if err := cl.SetPodReady(ctx, "pod-c", true); err != nil {
		t.Fatal(err)
	}
	eventually(t, unreadyWithin, func() error {
		answers, err := fromNode(ctx, url, 30)
		if err != nil {
			return err
		}
		if !slices.Contains(answers, "pod-c") {
			return errors.New("pod-c does not answer again")
		}
		return nil
	})
}

func TestServiceWithoutEndpointsRefuses(t *testing.T) {
	requireWorld(t)
	svc := webService("no-endpoints")
	svc.Spec.Type = corev1.ServiceTypeNodePort
	svc.Spec.Selector = map[string]string{"app": "nothing"}
	svc = create(t, svc)
	expectRefused(t, svc, model.IPv4, clusterURL(svc), nodePortURL(svc), time.Second)
}

// expectRefused waits for the agent's rule of family rejecting svc's cluster IP for
// having no endpoints, then checks that connections to clusterURL from the node and from
// pod-b, and to nodePortURL from the client, are refused, each within within.
func expectRefused(t *testing.T, svc *v1alpha1.Service, family model.Family, clusterURL, nodePortURL string, within time.Duration) {
	t.Helper()
	clusterIP := svc.Status.ClusterIP
	for _, ip := range svc.Status.ClusterIPs {
		if a, err := netip.ParseAddr(ip); err == nil && model.FamilyOf(a) == family {
			clusterIP = ip
		}
	}
	eventually(t, programmed, func() error {
		ok, err := refusesWithoutEndpoints(t.Context(), family, svc, clusterIP)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no %s rule rejecting %s yet (%s mode)", family, clusterIP, agentMode())
		}
		return nil
	})

	// Without the rule a packet to the cluster IP would be routed to the client,
	// which drops it: its refusal can only come from the agent's REJECT. The
	// node port would be refused even without it, nothing listening there, so a
	// listener is put there: without the rule it would take the connection.
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(int(svc.Status.Ports[0].NodePort)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, c := range []struct {
		from, url string
		get       getter
	}{
		{"the node", clusterURL, fromNode},
		{"pod-b", clusterURL, fromNetns(podNetns(t, "pod-b"))},
		{"the client", nodePortURL, fromNetns(w.Client)},
	} {
		start := time.Now()
		_, err := c.get(t.Context(), c.url, 1)
		took := time.Since(start)
		if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, world.ErrRefused) {
			t.Errorf("from %s to %s: got %v, want connection refused", c.from, c.url, err)
			continue
		}
		if took > within {
			t.Errorf("from %s to %s: the refusal took %v, want at most %v", c.from, c.url, took.Round(time.Millisecond), within)
		}
	}
}

// TestHealthCheckNodePortAndAgentEndpoints checks, once per family of a
// dual-stack externalTrafficPolicy Local Service, that its health check node port
// answers the client on the node's address of the family with every pod local,
// and that its node port there reaches every pod; then the agent's /healthz and
// /metrics.
func TestHealthCheckNodePortAndAgentEndpoints(t *testing.T) {
	requireWorld(t)
	svc := dualStackService("local")
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	svc = create(t, svc)
	for _, family := range families {
		t.Run(string(family), func(t *testing.T) {
			nodeIP := nodeIPOf(family)
			expectHealthCheck(t, svc, nodeIP, http.StatusOK, len(allPods))
			// externalTrafficPolicy Local keeps the client's address: every
			// pod is local, so every pod answers.
			expectAllPodsAnswer(t, fromNetns(w.Client), nodePortURLAt(nodeIP, svc))
		})
	}

	resp, err := http.Get("http://" + healthzAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %s", resp.Status)
	}
	resp, err = http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{
		"svcplane_agent_sync_duration_seconds_count",
		"svcplane_agent_last_sync_timestamp_seconds",
		`svcplane_agent_rules_written_bytes_total{family="IPv4"}`,
		`svcplane_agent_rules_written_bytes_total{family="IPv6"}`,
		"svcplane_agent_network_programming_latency_seconds_count",
	} {
		if !strings.Contains(string(metrics), name) {
			t.Errorf("/metrics has no %s", name)
		}
	}
}

// TestHealthCheckNodePortWithoutLocalEndpoints is a load balancer's view of a node
// with no ready endpoint of an externalTrafficPolicy Local Service: the health
// check node port answers 503, so that the load balancer sends nothing there, until
// a pod matches and is ready. It probes the node over each family in turn, each
// subtest starting from no matching pod.
func TestHealthCheckNodePortWithoutLocalEndpoints(t *testing.T) {
	requireWorld(t)
	// The Service selects the pods carrying label: none at first.
	const label = "e2e.svcplane.io/health"
	svc := dualStackService("local-none")
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	svc.Spec.Selector = map[string]string{label: "true"}
	svc = create(t, svc)

	for _, family := range families {
		t.Run(string(family), func(t *testing.T) {
			nodeIP := nodeIPOf(family)
			expectHealthCheck(t, svc, nodeIP, http.StatusServiceUnavailable, 0)

			labelPod(t, "pod-b", label)
			expectHealthCheck(t, svc, nodeIP, http.StatusOK, 1)

			setPodReady(t, "pod-b", false)
			expectHealthCheck(t, svc, nodeIP, http.StatusServiceUnavailable, 0)

			if err := cl.SetPodReady(t.Context(), "pod-b", true); err != nil {
				t.Fatal(err)
			}
			expectHealthCheck(t, svc, nodeIP, http.StatusOK, 1)
		})
	}
}

// expectHealthCheck waits until the health check node port of svc, probed from
// the client on the node's address nodeIP as a load balancer probes the node from
// outside, answers status and reports localEndpoints.
func expectHealthCheck(t *testing.T, svc *v1alpha1.Service, nodeIP netip.Addr, status, localEndpoints int) {
	t.Helper()
	ctx := t.Context()
	eventually(t, programmed, func() error {
		if err := cl.Client.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return err
		}
		if svc.Status.HealthCheckNodePort == 0 {
			return errors.New("no health check node port yet")
		}
		return nil
	})
	url := hostURL(nodeIP.String(), svc.Status.HealthCheckNodePort)
	eventually(t, programmed, func() error {
		resp, err := w.Probe(ctx, w.Client, url)
		if err != nil {
			return err
		}
		var body struct {
			Service struct {
				Namespace string `json:"namespace"`
				Name      string `json:"name"`
			} `json:"service"`
			LocalEndpoints int `json:"localEndpoints"`
		}
		if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
			return fmt.Errorf("%s answered %d %q: %w", url, resp.Status, resp.Body, err)
		}
		if resp.Status != status || body.Service.Namespace != svc.Namespace || body.Service.Name != svc.Name || body.LocalEndpoints != localEndpoints {
			return fmt.Errorf("%s answered %d %s, want %d for %s/%s with %d local endpoints",
				url, resp.Status, resp.Body, status, svc.Namespace, svc.Name, localEndpoints)
		}
		return nil
	})
}

func TestDeletingServiceRemovesItsRules(t *testing.T) {
	requireWorld(t)
	svc := create(t, webService("deleted"))
	waitServing(t, fromNode, clusterURL(svc))

	var objs []string
	eventually(t, programmed, func() (err error) {
		objs, err = serviceChains(t.Context(), agentMode(), model.IPv4, svc)
		if err == nil && len(objs) == 0 {
			err = fmt.Errorf("nothing of %s/%s in the kernel (%s mode)", svc.Namespace, svc.Name, agentMode())
		}
		return err
	})

	if err := cl.Client.Delete(t.Context(), svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, programmed, func() error {
		left, err := serviceChains(t.Context(), agentMode(), model.IPv4, svc)
		if err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("%d of the %d objects of %s/%s are still there: %q", len(left), len(objs), svc.Namespace, svc.Name, left)
		}
		return nil
	})
}
