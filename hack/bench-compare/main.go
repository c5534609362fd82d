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

// Command bench-compare runs svcplane and the Kubernetes components it replaces side by
// side, on one API server, on the same machine, in the same minutes, and writes the
// report docs/performance.md with its plots. `make bench-compare` runs it (root: the
// proxies run in network namespaces it creates and removes); -quick is a few-minute
// version of the same workloads at small sizes.
//
// Workloads:
//
//   - allocation: -alloc-services Services created by -clients parallel clients; for
//     svcplane the time from the create call to Allocated=True, for core Services the
//     create call (kube-apiserver allocates inside it);
//   - endpoints: svcplane's manager against kube-controller-manager running only its
//     EndpointSlice controller, on the same pods selected by a svcplane Service and a
//     core Service each, the same readiness flips at a fixed rate: latency from the
//     pod's status write to each side's slice showing it, slice writes per change, CPU
//     seconds and peak RSS of each process;
//   - dataplane: the agent against kube-proxy, each in a network namespace of its own,
//     in the same iptables variant (or both in nftables mode), fed the same Services ×
//     endpoints through the API: first sync, idle cost, one changed endpoint, one new
//     Service, rules written, memory.
//
// The components are the binaries of this tree (bin/manager, bin/agent, built first)
// and kube-controller-manager and kube-proxy from `make upstream` (bin/k8s).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// config is what the flags choose.
type config struct {
	Quick           bool
	AllocServices   int
	AllocFull       fullPoint // the allocation point at a 99 %-full range
	Clients         int
	EndpointsPoints []int // Services, each with PodsPerService pods
	PodsPerService  int
	Rate            float64
	FlipDuration    time.Duration
	DataplanePoints []int // service ports, each with EndpointsPer endpoints
	EndpointsPer    int
	Variants        []variant
	Idle            time.Duration
	Workloads       map[string]bool
	Out             string // the report; its plots go beside it
	Command         string // as the report quotes it
}

// configFor returns the sizes of a full or a -quick run.
func configFor(quick bool) config {
	if quick {
		return config{Quick: true, AllocServices: 1000, AllocFull: fullPoint{Bits: 20, Services: 300}, Clients: 32, EndpointsPoints: []int{300}, PodsPerService: 10,
			Rate: 20, FlipDuration: 20 * time.Second, DataplanePoints: []int{1000}, EndpointsPer: 10,
			Variants: []variant{variantLegacy, variantNFTables}, Idle: 40 * time.Second}
	}
	return config{AllocServices: 1000, AllocFull: fullPoint{Bits: 19, Services: 1000}, Clients: 32, EndpointsPoints: []int{1000, 5000}, PodsPerService: 10,
		Rate: 20, FlipDuration: 60 * time.Second, DataplanePoints: []int{1000, 5000, 10000}, EndpointsPer: 10,
		Variants: []variant{variantLegacy, variantNFTables}, Idle: 120 * time.Second}
}

// parseSizes reads a comma-separated list of positive sizes such as "1000,5000".
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("invalid size %q: want a positive integer", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no size given")
	}
	return out, nil
}

// parseVariants reads a comma-separated list of dataplane variants, each optionally
// followed by its own service-port counts: "iptables-legacy,iptables-nft:1000:5000".
func parseVariants(s string) ([]variant, error) {
	known := map[string]variant{variantLegacy.Name: variantLegacy, variantIPTablesNFT.Name: variantIPTablesNFT, variantNFTables.Name: variantNFTables,
		variantIPVS.Name: variantIPVS}
	var out []variant
	for _, f := range strings.Split(s, ",") {
		name, sizes, hasSizes := strings.Cut(strings.TrimSpace(f), ":")
		v, ok := known[name]
		if !ok {
			return nil, fmt.Errorf("unknown variant %q: want iptables-legacy, iptables-nft, nftables or ipvs", name)
		}
		if hasSizes {
			n, err := parseSizes(strings.ReplaceAll(sizes, ":", ","))
			if err != nil {
				return nil, fmt.Errorf("variant %s: %w", name, err)
			}
			v.Sizes = n
		}
		out = append(out, v)
	}
	return out, nil
}

// parseWorkloads reads a comma-separated subset of alloc,endpoints,dataplane.
func parseWorkloads(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		switch f = strings.TrimSpace(f); f {
		case "alloc", "endpoints", "dataplane":
			out[f] = true
		default:
			return nil, fmt.Errorf("unknown workload %q: want alloc, endpoints or dataplane", f)
		}
	}
	return out, nil
}

func main() {
	if job := os.Getenv(ipvsGuestEnv); job != "" {
		// The guest side of the IPVS point, inside the VM (ipvs_guest.go).
		if err := ipvsGuest(job); err != nil {
			fail(err)
		}
		return
	}
	// envtest logs through controller-runtime: errors only, so that the progress
	// lines stay readable (and without a logger it prints a stack trace saying so).
	ctrllog.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
	quick := flag.Bool("quick", false, "A few-minute run: 1,000 Services for allocation (300 into a /20 instead of 1,000 into a /19 at 99 % full), 300 x 10 for endpoints over 20 s, 1,000 x 10 for the dataplane.")
	endpoints := flag.String("endpoints-services", "", "Comma-separated Service counts of the endpoints workload (default 1000,5000; -quick 300).")
	dataplane := flag.String("dataplane-services", "", "Comma-separated service-port counts of the dataplane workload (default 1000,5000,10000; -quick 1000).")
	variants := flag.String("variants", "", "Comma-separated dataplane variants: iptables-legacy, iptables-nft, nftables, ipvs (in a VM; default iptables-legacy,nftables); a variant may name its own sizes, as in iptables-nft:1000:5000.")
	workloads := flag.String("workloads", "alloc,endpoints,dataplane", "Which workloads to run.")
	allocN := flag.Int("alloc-services", 0, "Services of the allocation workload (default 1000).")
	flips := flag.Duration("flip-duration", 0, "How long pods flip readiness in the endpoints workload (default 60s; -quick 20s).")
	idle := flag.Duration("idle", 0, "The dataplane's idle window (default 120s; -quick 40s).")
	out := flag.String("out", "docs/performance.md", "The report to write; plots go into its directory's images/ folder.")
	flag.Parse()

	cfg := configFor(*quick)
	var err error
	if *endpoints != "" {
		if cfg.EndpointsPoints, err = parseSizes(*endpoints); err != nil {
			fail(err)
		}
	}
	if *dataplane != "" {
		if cfg.DataplanePoints, err = parseSizes(*dataplane); err != nil {
			fail(err)
		}
	}
	if *variants != "" {
		if cfg.Variants, err = parseVariants(*variants); err != nil {
			fail(err)
		}
	}
	if cfg.Workloads, err = parseWorkloads(*workloads); err != nil {
		fail(err)
	}
	if *allocN > 0 {
		cfg.AllocServices = *allocN
	}
	if *flips > 0 {
		cfg.FlipDuration = *flips
	}
	if *idle > 0 {
		cfg.Idle = *idle
	}
	cfg.Out = *out
	cfg.Command = "make bench-compare"
	if *quick {
		cfg.Command = "make bench-compare QUICK=1"
	}
	if extra := os.Args[1:]; len(extra) > 0 && !(len(extra) == 1 && extra[0] == "-quick") {
		cfg.Command = "go run ./hack/bench-compare " + strings.Join(extra, " ")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench-compare:", err)
	os.Exit(1)
}

// bench is what every workload shares: the API server, a client, the binaries.
type bench struct {
	c              client.WithWatch
	kubeconfig     []byte
	kubeconfigPath string
	apiAddr        string // host:port of the API server on loopback
	dir            string // logs, kubeconfigs, tool links
	binDir, k8sDir string
	clients        int
}

func (b *bench) bin(name string) string {
	switch name {
	case "manager", "agent":
		return filepath.Join(b.binDir, name)
	}
	return filepath.Join(b.k8sDir, name)
}

// startManager runs svcplane's manager with its shipped defaults (all its controllers)
// apart from args.
func (b *bench) startManager(name string, args ...string) (*process, error) {
	return startProcess(b.dir, name, "", []string{"KUBECONFIG=" + b.kubeconfigPath}, b.bin("manager"),
		append([]string{"--health-probe-bind-address=0", "--metrics-bind-address=0"}, args...)...)
}

func run(ctx context.Context, cfg config) error {
	if os.Geteuid() != 0 && cfg.Workloads["dataplane"] {
		return errors.New("the dataplane workload needs root (network namespaces, iptables): run it as root or pass -workloads=alloc,endpoints")
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if err := os.Chdir(root); err != nil {
		return err
	}
	b := &bench{binDir: filepath.Join(root, "bin"), k8sDir: cmpOr(os.Getenv("KUBEBUILDER_ASSETS"), filepath.Join(root, "bin", "k8s")), clients: cfg.Clients}
	for _, name := range []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-proxy"} {
		if _, err := os.Stat(b.bin(name)); err != nil {
			return fmt.Errorf("%s is missing: run `make controlplane upstream` first (%w)", b.bin(name), err)
		}
	}
	fmt.Println("building bin/manager and bin/agent from this tree")
	for _, name := range []string{"manager", "agent"} {
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", b.bin(name), "./cmd/"+name).CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/%s: %v\n%s", name, err, out)
		}
	}
	if b.dir, err = os.MkdirTemp("", "bench-compare-"); err != nil {
		return err
	}
	fmt.Println("logs in", b.dir)

	// A /16 holds the 10,000 core Services of the largest dataplane point and more.
	env, kubeconfig, err := controlPlane(root, b.k8sDir, "10.0.0.0/16")
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	b.kubeconfig = kubeconfig
	b.kubeconfigPath = filepath.Join(b.dir, "kubeconfig")
	if err := os.WriteFile(b.kubeconfigPath, kubeconfig, 0o600); err != nil {
		return err
	}
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		return err
	}
	b.apiAddr = u.Host
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	restCfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = -1, 0 // the load generator is never the bottleneck
	if b.c, err = client.NewWithWatch(restCfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}

	rep := &report{Config: cfg, Started: time.Now()}
	rep.Machine, rep.Versions = machine(b)
	// Nodes first: kube-controller-manager skips pods whose Node it does not know, and
	// kube-proxy takes its node IP from its Node.
	if err := createNodes(ctx, b.c); err != nil {
		return err
	}
	if cfg.Workloads["alloc"] {
		if err := withManager(ctx, b, "manager-alloc", func() error {
			fmt.Printf("allocation: %d Services by %d clients\n", cfg.AllocServices, cfg.Clients)
			svcp, core, err := allocWorkload(ctx, b.c, cfg.AllocServices, cfg.Clients)
			if err != nil {
				return fmt.Errorf("allocation: %w", err)
			}
			rep.Alloc = &allocPair{Svcplane: svcp, Core: core, N: cfg.AllocServices}
			return nil
		}); err != nil {
			return err
		}
		if rep.AllocFull, err = allocFullPoint(ctx, b, cfg.AllocFull, cfg.Clients); err != nil {
			return fmt.Errorf("allocation at 99 %% full: %w", err)
		}
	}
	if cfg.Workloads["endpoints"] {
		for _, n := range cfg.EndpointsPoints {
			r, err := endpointsWorkload(ctx, b, n, cfg.PodsPerService, cfg.Rate, cfg.FlipDuration)
			if err != nil {
				return fmt.Errorf("endpoints %d x %d: %w", n, cfg.PodsPerService, err)
			}
			rep.Endpoints = append(rep.Endpoints, r)
		}
	}
	if cfg.Workloads["dataplane"] {
		// A manager allocates the svcplane Services the agent is fed.
		if err := withManager(ctx, b, "manager-dataplane", func() error {
			for _, v := range cfg.Variants {
				sizes := cfg.DataplanePoints
				if len(v.Sizes) > 0 {
					sizes = v.Sizes
				}
				for _, n := range sizes {
					pt, err := dataplaneWorkload(ctx, b, v, n, cfg.EndpointsPer, cfg.Idle)
					if err != nil {
						return fmt.Errorf("dataplane %s %d x %d: %w", v.Name, n, cfg.EndpointsPer, err)
					}
					rep.Dataplane = append(rep.Dataplane, pt)
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	rep.Finished = time.Now()
	if err := rep.write(cfg.Out); err != nil {
		return err
	}
	fmt.Println("wrote", cfg.Out)
	return nil
}

// withManager runs f while a manager runs; one manager at a time, so that two never
// write the same slices.
func withManager(ctx context.Context, b *bench, name string, f func() error) error {
	mgr, err := b.startManager(name)
	if err != nil {
		return err
	}
	defer mgr.stop()
	if err := warmUp(ctx, b.c, mgr); err != nil {
		return err
	}
	return f()
}

// warmUp waits until the manager allocates a first Service, so that no workload times
// its start.
func warmUp(ctx context.Context, c client.Client, mgr *process) error {
	ns, err := namespace(ctx, c, "warm-up-")
	if err != nil {
		return err
	}
	if err := c.Create(ctx, &v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "warm-up"},
		Spec: v1alpha1.ServiceSpec{Ports: []v1alpha1.ServicePort{{Name: "http", Port: 80}}}}); err != nil {
		return err
	}
	if err := waitAllocated(ctx, c, ns, 1); err != nil {
		return fmt.Errorf("waiting for the manager to allocate a first Service: %w (%v)", err, mgr.alive())
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// repoRoot is the nearest directory at or above the working directory with this
// module's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/svcplane/svcplane\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run bench-compare inside the svcplane repository")
		}
		dir = parent
	}
}
