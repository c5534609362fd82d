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

package controllers

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/internal/ledger"
	"github.com/svcplane/svcplane/test/controlplane"
)

// The suite runs the real reconcilers against a real kube-apiserver and etcd (built
// into bin/k8s by `make controlplane`). Each container works in its own namespace.
// Address conventions: the suite's manager allocates from 10.96.0.0/12 and
// fd00:10:96::/108 (dual-stack) and node ports 30000-32767; the exhaustion tests swap
// in a manager with a tiny range.
const (
	suiteServiceCIDRs = "10.96.0.0/12,fd00:10:96::/108"
	suiteNodePorts    = "30000-32767"
)

var (
	cfg       *rest.Config
	k8sClient client.Client // non-cached, for assertions
	testEnv   *envtest.Environment
	scheme    = runtime.NewScheme()
	suiteCtx  context.Context
	cancel    context.CancelFunc
	current   *runningManager
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

// assetsDir finds the control plane binaries: KUBEBUILDER_ASSETS, else bin/k8s.
// Without them the suite is skipped, except on CI (CI=true), where that is a failure.
func assetsDir() string {
	dir, err := controlplane.Assets()
	if err != nil {
		if os.Getenv("CI") == "true" {
			Fail(err.Error())
		}
		Skip(err.Error())
	}
	return dir
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	suiteCtx, cancel = context.WithCancel(context.Background())
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assetsDir(),
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	current = startManager(suiteServiceCIDRs, suiteNodePorts)
})

var _ = AfterSuite(func() {
	if current != nil {
		current.stop()
	}
	if cancel != nil {
		cancel()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// runningManager is a manager started by the suite, with the Book it allocates from.
type runningManager struct {
	book   *ledger.Book
	cancel context.CancelFunc
	done   chan struct{}
}

// startManager starts a manager running the reconcilers through Setup, as
// controllers/manager wires them, with its own fresh Book over the given ranges.
func startManager(serviceCIDRs, nodePorts string, tune ...func(*AllocationReconciler)) *runningManager {
	GinkgoHelper()
	cidrs, err := ledger.ParseServiceCIDRs(serviceCIDRs)
	Expect(err).NotTo(HaveOccurred())
	book, err := ledger.NewBook(cidrs, nodePorts)
	Expect(err).NotTo(HaveOccurred())

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// The suite starts managers one after another in one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	allocation := &AllocationReconciler{
		Book:                    book,
		RepairInterval:          2 * time.Second,
		MaxConcurrentReconciles: DefaultConcurrentServiceSyncs,
	}
	for _, t := range tune {
		t(allocation)
	}
	pool, lb := suiteLoadBalancing()
	// controllers.Setup is the wiring controllers/manager ships; only the
	// configuration (ranges, periods, the fake provider) is the suite's.
	Expect(Setup(mgr, Reconcilers{
		Allocation: allocation,
		EndpointSlice: &EndpointSliceReconciler{
			MaxEndpointsPerSlice:    100,
			MaxConcurrentReconciles: 4,
		},
		Pool:         pool,
		LoadBalancer: lb,
	})).To(Succeed())

	ctx, stop := context.WithCancel(suiteCtx)
	rm := &runningManager{book: book, cancel: stop, done: make(chan struct{})}
	go func() {
		defer GinkgoRecover()
		defer close(rm.done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	return rm
}

// stop stops the manager and waits until it has.
func (m *runningManager) stop() {
	m.cancel()
	Eventually(m.done, 30*time.Second).Should(BeClosed())
}

// swapManager stops the running manager and starts one over other ranges.
func swapManager(serviceCIDRs, nodePorts string, tune ...func(*AllocationReconciler)) {
	GinkgoHelper()
	current.stop()
	current = startManager(serviceCIDRs, nodePorts, tune...)
}
