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

// Command dns-bench measures svcplane's DNS server on loopback: it fills a zone
// with --services Services (ClusterIP, two named ports, one EndpointSlice of
// --endpoints ready endpoints each, as the manager writes them), serves it with
// the real handler, server and metrics, and sends cached A, SRV and NXDOMAIN
// queries over UDP from --clients closed-loop clients for --duration each,
// reporting queries per second and latency percentiles. It also reports the
// heap each Service costs: the zone's records alone, and with the Service and
// slice objects an informer cache holds (managed fields stripped, as the
// server's cache does).
//
// The server runs in a child process (the same binary), the clients in the
// parent, on the same cores: the rates are for the machine answering itself.
// The server's CPU time per query (from /proc/<pid>/stat) says what it would
// answer with the cores to itself.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/internal/dns"
)

func main() {
	var (
		services, endpoints, clients int
		duration                     time.Duration
	)
	flag.IntVar(&services, "services", 10000, "Services in the zone.")
	flag.IntVar(&endpoints, "endpoints", 3, "Ready endpoints in each Service's EndpointSlice.")
	flag.IntVar(&clients, "clients", 8, "Concurrent clients, each with one query in flight over its own UDP socket.")
	flag.DurationVar(&duration, "duration", 10*time.Second, "How long each kind of query is sent.")
	cpuProfile := flag.String("cpuprofile", "", "Write a CPU profile of the server process to this file.")
	flag.Parse()
	if os.Getenv(envServe) != "" {
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				fmt.Fprintln(os.Stderr, "dns-bench:", err)
				os.Exit(1)
			}
			defer f.Close()
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		if err := serve(services, endpoints); err != nil {
			pprof.StopCPUProfile()
			fmt.Fprintln(os.Stderr, "dns-bench server:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(services, endpoints, clients, duration); err != nil {
		fmt.Fprintln(os.Stderr, "dns-bench:", err)
		os.Exit(1)
	}
}

// envServe makes the binary the server process of a run.
const envServe = "SVCPLANE_DNS_BENCH_SERVE"

// serve is the server process: it builds the zone, reports its memory, serves it
// on loopback, says where, and stops when its stdin closes.
func serve(services, endpoints int) error {
	// Memory: the heap before and after building what the server holds.
	before := heap()
	svcs, eps := objects(services, endpoints)
	withObjects := heap()
	zone := dns.NewZone("cluster.local", 30)
	for i := range svcs {
		zone.SetService(svcs[i])
		zone.SetEndpointSlice(eps[i])
	}
	withZone := heap()
	perZone := float64(withZone-withObjects) / float64(services)
	perObjects := float64(withObjects-before) / float64(services)
	fmt.Printf("memory per Service: %.0f B in the zone, %.0f B of objects in the informer caches, %.0f B together; heap %.1f MiB\n",
		perZone, perObjects, perZone+perObjects, float64(withZone)/(1<<20))

	reg := prometheus.NewRegistry()
	m, err := dns.NewMetrics(reg, zone)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	err = dns.Serve(ctx, dns.NewHandler(zone, nil, m, logr.Discard()), dns.ServerOptions{
		Addr:    "127.0.0.1:0",
		Started: func(a dns.Addrs) { fmt.Printf("%s %s\n", addrPrefix, a.DNS) },
	}, logr.Discard())
	// The objects stand for the informer caches: alive until the end.
	runtime.KeepAlive(svcs)
	runtime.KeepAlive(eps)
	return err
}

const addrPrefix = "serving on"

func run(services, endpoints, clients int, duration time.Duration) error {
	fmt.Printf("dns-bench: %d Services (%d endpoints each), %d clients, %v per query kind, GOMAXPROCS %d, %d CPUs\n",
		services, endpoints, clients, duration, runtime.GOMAXPROCS(0), runtime.NumCPU())

	// The server runs in a process of its own, so that its CPU time is its own.
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	srv := exec.Command(exe, os.Args[1:]...)
	srv.Env = append(os.Environ(), envServe+"=1")
	srv.Stderr = os.Stderr
	stdin, err := srv.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := srv.StdoutPipe()
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		stdin.Close()
		_ = srv.Wait()
	}()
	var addr string
	sc := bufio.NewScanner(stdout)
	for addr == "" && sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), addrPrefix+" "); ok {
			addr = a
		} else {
			fmt.Println(sc.Text())
		}
	}
	if addr == "" {
		return errors.New("the server process did not start")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	kinds := []struct {
		name  string
		qtype uint16
		rcode int
		qname func(i int) string
	}{
		{"A (cached)", mdns.TypeA, mdns.RcodeSuccess, func(i int) string { return fmt.Sprintf("svc-%d.ns-%d.svc.cluster.local.", i, i%100) }},
		{"SRV", mdns.TypeSRV, mdns.RcodeSuccess, func(i int) string { return fmt.Sprintf("_http._tcp.svc-%d.ns-%d.svc.cluster.local.", i, i%100) }},
		{"NXDOMAIN", mdns.TypeA, mdns.RcodeNameError, func(i int) string { return fmt.Sprintf("missing-%d.ns-%d.svc.cluster.local.", i, i%100) }},
	}
	fmt.Printf("%-12s %10s %10s %10s %10s %10s %14s %12s\n", "query", "qps", "p50", "p90", "p99", "p99.9", "server CPU/q", "server cores")
	for _, k := range kinds {
		// Prepacked queries, one per Service, so that the clients spend their
		// time on the wire rather than packing.
		queries := make([][]byte, services)
		for i := range queries {
			msg := new(mdns.Msg)
			msg.SetQuestion(k.qname(i), k.qtype)
			if queries[i], err = msg.Pack(); err != nil {
				return err
			}
		}
		cpu0, err := cpuTime(srv.Process.Pid)
		if err != nil {
			return err
		}
		res, err := load(addr, queries, k.rcode, clients, duration)
		if err != nil {
			return fmt.Errorf("%s: %w", k.name, err)
		}
		cpu1, err := cpuTime(srv.Process.Pid)
		if err != nil {
			return err
		}
		cpu := cpu1 - cpu0
		perQuery := time.Duration(float64(cpu) / float64(len(res.latencies)))
		fmt.Printf("%-12s %10.0f %10v %10v %10v %10v %14v %12.2f\n", k.name, res.qps, res.pct(50), res.pct(90), res.pct(99), res.pct(99.9),
			perQuery.Round(100*time.Nanosecond), cpu.Seconds()/res.elapsed.Seconds())
	}
	return nil
}

// clockTick is the unit of /proc/<pid>/stat's CPU times: USER_HZ, 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time (user and system) process pid has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may hold
	// spaces: state is the first, utime the 12th, stime the 13th.
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * clockTick, nil
}

type result struct {
	qps       float64
	elapsed   time.Duration
	latencies []time.Duration // sorted
}

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := min(len(r.latencies)-1, int(float64(len(r.latencies))*p/100))
	return r.latencies[i].Round(time.Microsecond)
}

// load runs clients closed-loop clients sending random queries for duration and
// checks every answer's ID and rcode.
func load(addr string, queries [][]byte, rcode, clients int, duration time.Duration) (result, error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		total    atomic.Int64
		firstErr error
	)
	deadline := time.Now().Add(duration)
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			lat, err := client(addr, queries, rcode, uint64(c), deadline)
			total.Add(int64(len(lat)))
			mu.Lock()
			defer mu.Unlock()
			all = append(all, lat...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return result{}, firstErr
	}
	slices.Sort(all)
	return result{qps: float64(total.Load()) / elapsed.Seconds(), elapsed: elapsed, latencies: all}, nil
}

// client sends one query at a time until deadline and returns each one's
// latency.
func client(addr string, queries [][]byte, rcode int, seed uint64, deadline time.Time) ([]time.Duration, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(seed, 42))
	buf := make([]byte, 4096)
	q := make([]byte, 512)
	lat := make([]time.Duration, 0, 1<<16)
	var id uint16
	var deadlineSet time.Time
	for time.Now().Before(deadline) {
		src := queries[rng.IntN(len(queries))]
		q = append(q[:0], src...)
		id++
		binary.BigEndian.PutUint16(q, id)
		t0 := time.Now()
		if _, err := conn.Write(q); err != nil {
			return lat, err
		}
		// Moving the deadline costs a timer update: once in a while is enough
		// to notice a lost answer.
		if t0.Sub(deadlineSet) > 100*time.Millisecond {
			_ = conn.SetReadDeadline(t0.Add(2 * time.Second))
			deadlineSet = t0
		}
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return lat, fmt.Errorf("query %d unanswered: %w", len(lat), err)
			}
			if n < 12 || binary.BigEndian.Uint16(buf) != id {
				continue // a late answer to an earlier query
			}
			if got := int(buf[3] & 0xF); got != rcode {
				return lat, fmt.Errorf("rcode %s, want %s", mdns.RcodeToString[got], mdns.RcodeToString[rcode])
			}
			if rcode == mdns.RcodeSuccess && binary.BigEndian.Uint16(buf[6:]) == 0 {
				return lat, errors.New("no answer records")
			}
			break
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

// objects returns the Services and EndpointSlices an informer would hold for n
// Services of the manager's making: svc-<i> in ns-<i%100>, a cluster IP from
// 10.96.0.0/12, ports http/80 and metrics/9090, one slice of endpoints ready
// pods from 10.244.0.0/16.
func objects(n, endpoints int) ([]*v1alpha1.Service, []*discoveryv1.EndpointSlice) {
	svcs := make([]*v1alpha1.Service, n)
	eps := make([]*discoveryv1.EndpointSlice, n)
	created := metav1.Now()
	for i := range n {
		name, ns := fmt.Sprintf("svc-%d", i), fmt.Sprintf("ns-%d", i%100)
		ip := fmt.Sprintf("10.96.%d.%d", (i+10)/256, (i+10)%256)
		s := &v1alpha1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i)),
				ResourceVersion: fmt.Sprint(1000 + i), Generation: 1, CreationTimestamp: created,
				Labels: map[string]string{"app": name}},
			Spec: v1alpha1.ServiceSpec{
				Type:     corev1.ServiceTypeClusterIP,
				Selector: map[string]string{"app": name},
				Ports: []v1alpha1.ServicePort{
					{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)},
					{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9090, TargetPort: intstr.FromInt32(9090)},
				},
				SessionAffinity: corev1.ServiceAffinityNone,
			},
			Status: v1alpha1.ServiceStatus{
				ClusterIP: ip, ClusterIPs: []string{ip}, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
				Ports: []v1alpha1.ServicePortStatus{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}, {Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9090}},
				Conditions: []metav1.Condition{{Type: "Allocated", Status: metav1.ConditionTrue, Reason: "Allocated",
					Message: "cluster IPs and node ports are allocated", LastTransitionTime: created, ObservedGeneration: 1}},
				ObservedGeneration: 1,
			},
		}
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-abcde", Namespace: ns, UID: types.UID(fmt.Sprintf("10000000-0000-0000-0000-%012d", i)),
				ResourceVersion: fmt.Sprint(100000 + i), Generation: 1, CreationTimestamp: created,
				Labels: map[string]string{v1alpha1.LabelServiceName: name, v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Service", Name: name,
					UID: s.UID, Controller: new(true), BlockOwnerDeletion: new(true)}}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports: []discoveryv1.EndpointPort{
				{Name: new("http"), Protocol: new(corev1.ProtocolTCP), Port: new(int32(8080))},
				{Name: new("metrics"), Protocol: new(corev1.ProtocolTCP), Port: new(int32(9090))},
			},
		}
		for j := range endpoints {
			pod := i*endpoints + j
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.244.%d.%d", pod/250, pod%250+1)},
				Conditions: discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true), Terminating: new(false)},
				NodeName:   new("node-1"),
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: fmt.Sprintf("%s-%d", name, j), UID: types.UID(fmt.Sprintf("20000000-0000-0000-0000-%012d", pod))},
			})
		}
		svcs[i], eps[i] = s, sl
	}
	return svcs, eps
}

// heap returns the bytes live on the heap after a full collection.
func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
