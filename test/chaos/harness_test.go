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

package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/test/controlplane"
)

// The harness: one envtest control plane (kube-apiserver and etcd from bin/k8s) for
// the whole package, whose API server can be stopped and started again on the same
// etcd data and the same certificates and port, and the shipped manager built with
// `go build` and run as real processes that the tests SIGKILL.
//
// Addresses: the managers allocate from 10.96.0.0/16 and node ports 30000-32767.

const (
	serviceCIDR = "10.96.0.0/16"
	nodePorts   = "30000-32767"
)

var (
	env        *envtest.Environment
	cfg        *rest.Config
	k8s        client.Client
	kubeconfig string
	managerBin string
	scheme     = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	assets, err := controlplane.Assets()
	if err != nil {
		msg := err.Error()
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "FAIL:", msg)
			return 1
		}
		fmt.Fprintln(os.Stderr, "SKIP:", msg)
		return 0
	}
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	work, err := os.MkdirTemp("", "svcplane-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)

	managerBin = filepath.Join(work, "manager")
	build := exec.Command("go", "build", "-o", managerBin, "github.com/svcplane/svcplane/cmd/manager")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the manager:", err)
		return 1
	}

	certDir := filepath.Join(work, "apiserver")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	// A fixed certificate directory keeps the serving certificates (and the port)
	// across a stop and start of the API server, so clients keep working.
	env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir}
	apiServerCertDir = certDir
	if cfg, err = env.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting the control plane:", err)
		return 1
	}
	defer env.Stop() //nolint:errcheck // best effort at exit

	admin, err := env.AddUser(envtest.User{Name: "chaos-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubeconfig = filepath.Join(work, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logf.SetLogger(logr.Discard())
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// apiServerCertDir is the API server's fixed certificate directory; its path names
// the API server process on the command line.
var apiServerCertDir string

// killAPIServer SIGKILLs the API server, as a crash or a lost node would stop it
// (a graceful stop waits for open watches), and lets envtest see it gone. etcd
// keeps running; startAPIServer brings the API server back on the same data.
func killAPIServer(t *testing.T) {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if !strings.HasSuffix(args[0], "kube-apiserver") || !strings.Contains(string(cmdline), apiServerCertDir) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(p, "/proc/%d/cmdline", &pid); err != nil {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			killed++
		}
	}
	if killed != 1 {
		t.Fatalf("killed %d kube-apiserver processes, want 1", killed)
	}
	if err := env.ControlPlane.APIServer.Stop(); err != nil {
		t.Fatal(err)
	}
}

// manager is a manager process.
type manager struct {
	t     *testing.T
	name  string
	args  []string
	probe string

	mu   sync.Mutex
	log  bytes.Buffer
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startManager starts the shipped manager binary with the harness's kubeconfig and
// ranges, plus args; it is SIGKILLed when the test ends.
func startManager(t *testing.T, name string, args ...string) *manager {
	t.Helper()
	m := &manager{t: t, name: name, args: args, probe: freeAddr(t)}
	m.start()
	t.Cleanup(func() {
		m.kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", m.name, tail(m.Log(), 60))
		}
	})
	return m
}

func (m *manager) start() {
	m.t.Helper()
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--health-probe-bind-address=" + m.probe,
		"--metrics-bind-address=0",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--service-node-port-range=" + nodePorts,
		"--load-balancer-provider=none",
	}, m.args...)
	cmd := exec.Command(managerBin, args...)
	cmd.Stdout, cmd.Stderr = (*lockedWriter)(m), (*lockedWriter)(m)
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	done := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	go func() {
		err := cmd.Wait()
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
		close(done)
	}()
}

// kill SIGKILLs the process and waits for it.
func (m *manager) kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// restart SIGKILLs the process and starts a new one with the same arguments.
func (m *manager) restart() {
	m.kill()
	m.start()
}

// exited reports whether the process has ended, and how.
func (m *manager) exited() (bool, error) {
	select {
	case <-m.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		return true, m.err
	default:
		return false, nil
	}
}

// ready reports whether the manager's readiness probe answers 200.
func (m *manager) ready() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + m.probe + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Log returns everything the process wrote.
func (m *manager) Log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log.String()
}

// count returns how many lines of the log contain all of words.
func (m *manager) count(words ...string) int {
	n := 0
	for _, line := range strings.Split(m.Log(), "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			n++
		}
	}
	return n
}

type lockedWriter manager

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.Write(p)
}

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func namespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// service returns Service i of a burst: every third a NodePort Service, so that
// node ports are exercised too.
func service(ns string, i int) *v1alpha1.Service {
	svc := &v1alpha1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("svc-%04d", i)},
		Spec: v1alpha1.ServiceSpec{
			Selector: map[string]string{"app": "x"},
			Ports:    []v1alpha1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if i%3 == 0 {
		svc.Spec.Type = corev1.ServiceTypeNodePort
	}
	return svc
}

// createBurst creates n Services from 8 goroutines, retrying while the API server
// refuses connections.
func createBurst(ns string, from, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int, n)
	for i := from; i < from+n; i++ {
		next <- i
	}
	close(next)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				for {
					err := k8s.Create(context.Background(), service(ns, i))
					if err == nil {
						break
					}
					if !strings.Contains(err.Error(), "connection refused") {
						errs <- err
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// allocated reports whether svc's Allocated condition is True for its generation.
func allocated(svc *v1alpha1.Service) bool {
	c := meta.FindStatusCondition(svc.Status.Conditions, "Allocated")
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == svc.Generation
}

// waitAllAllocated waits until every Service in ns is allocated.
func waitAllAllocated(t *testing.T, ns string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		list := &v1alpha1.ServiceList{}
		if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err == nil {
			n := 0
			for i := range list.Items {
				if allocated(&list.Items[i]) {
					n++
				}
			}
			if n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d Services allocated after %v", n, want, timeout)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// duplicates lists the cluster IPs and node ports that more than one Service shows
// in status, across every namespace.
func duplicates(list *v1alpha1.ServiceList) []string {
	owner := map[string]string{}
	var dups []string
	for i := range list.Items {
		svc := &list.Items[i]
		key := svc.Namespace + "/" + svc.Name
		var values []string
		for _, ip := range svc.Status.ClusterIPs {
			if ip != "" && ip != v1alpha1.ClusterIPNone {
				values = append(values, "ip "+ip)
			}
		}
		for _, p := range svc.Status.Ports {
			if p.NodePort != 0 {
				values = append(values, fmt.Sprintf("port %d", p.NodePort))
			}
		}
		for _, v := range values {
			if other, ok := owner[v]; ok && other != key {
				dups = append(dups, fmt.Sprintf("%s held by %s and %s", v, other, key))
			}
			owner[v] = key
		}
	}
	return dups
}

// sampler lists every Service every interval until stopped and records the
// duplicates it sees in any sample.
type sampler struct {
	stop    chan struct{}
	done    chan struct{}
	samples int
	seen    map[string]bool
}

func sample(interval time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]bool{}}
	go func() {
		defer close(s.done)
		for {
			list := &v1alpha1.ServiceList{}
			if err := k8s.List(context.Background(), list); err == nil {
				s.samples++
				for _, d := range duplicates(list) {
					s.seen[d] = true
				}
			}
			select {
			case <-s.stop:
				return
			case <-time.After(interval):
			}
		}
	}()
	return s
}

// finish stops sampling and returns the number of samples and the duplicates seen.
func (s *sampler) finish() (int, []string) {
	close(s.stop)
	<-s.done
	var out []string
	for d := range s.seen {
		out = append(out, d)
	}
	return s.samples, out
}
