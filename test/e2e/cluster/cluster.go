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

package cluster

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/svcplane/svcplane/api/v1alpha1"
	"github.com/svcplane/svcplane/controllers/manager"
	"github.com/svcplane/svcplane/dataplane"
	"github.com/svcplane/svcplane/dataplane/model"
	"github.com/svcplane/svcplane/internal/agent"
	"github.com/svcplane/svcplane/test/controlplane"
	"github.com/svcplane/svcplane/test/e2e/world"
)

// Defaults of Options.
const (
	DefaultNodeName  = "node-1"
	DefaultNamespace = "default"
	// agentUser is the identity the agent reaches the API server with, bound to
	// config/agent's ClusterRole, so that a permission missing there fails here.
	agentUser = "svcplane-agent"
)

// ServiceCIDRs is the manager's default --service-cluster-ip-range: dual-stack,
// IPv4 primary, as the world is. A /112 holds 2^16 IPv6 cluster IPs, well
// within the allocator's 2^20.
const ServiceCIDRs = "10.96.0.0/12,fd00:10:96::/112"

// DefaultPodLabels are the labels of the world's pods: what config/samples' web
// Services select.
var DefaultPodLabels = map[string]string{"app": "web"}

// Options configures a Cluster. Zero fields take their defaults.
type Options struct {
	// Root is the repository's root directory: where config/ and bin/k8s are.
	Root string
	// NodeName is the name of the world's node; DefaultNodeName when empty.
	NodeName string
	// Namespace holds the pods; DefaultNamespace when empty.
	Namespace string
	// PodLabels label every pod; DefaultPodLabels when nil.
	PodLabels map[string]string
	// ManagerArgs are extra flags of the manager, after
	// --service-cluster-ip-range=ServiceCIDRs, which they may override (e.g.
	// with 10.96.0.0/12 for a single-stack cluster).
	ManagerArgs []string
	// Runner configures the agent's Runner: kube-proxy's periods by default.
	Runner dataplane.RunnerConfig
	// HealthzBindAddress and MetricsBindAddress are the agent's; nothing is
	// served when empty.
	HealthzBindAddress, MetricsBindAddress string
	// Mode is the agent's --mode; agent.ModeIPTables when empty.
	Mode string
}

// Cluster is svcplane running on a world.
type Cluster struct {
	World *world.World
	// Config reaches the API server as an administrator; Client is a non-caching
	// client with it.
	Config    *rest.Config
	Client    client.Client
	NodeName  string
	Namespace string

	env     *envtest.Environment
	kubecfg []byte
	stops   []func() error // in the order to call them
	agent   *running
	// agentUser reaches the API server with the agent's permissions; opts are
	// the options the cluster started with, which StartAgent reuses.
	agentUser *envtest.AuthenticatedUser
	opts      Options
	mode      string
}

// running is a component running in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(ctx context.Context, run func(context.Context) error) *running {
	ctx, cancel := context.WithCancel(ctx)
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx) }()
	return r
}

func (r *running) stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("did not stop within 30s")
	}
}

// AssetsDir returns the directory holding kube-apiserver and etcd:
// KUBEBUILDER_ASSETS, else root/bin/k8s (`make controlplane`).
func AssetsDir(root string) (string, error) {
	return controlplane.AssetsUnder(root)
}

// Start starts the control plane, the manager and the agent, and registers the
// world's node and pods, every pod ready. The agent programs the current network
// namespace, which must be the world's node's. On error, what was started is
// stopped again.
func Start(ctx context.Context, w *world.World, opts Options) (c *Cluster, err error) {
	if opts.NodeName == "" {
		opts.NodeName = DefaultNodeName
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.PodLabels == nil {
		opts.PodLabels = DefaultPodLabels
	}
	assets, err := AssetsDir(opts.Root)
	if err != nil {
		return nil, err
	}
	if opts.Mode == "" {
		opts.Mode = agent.ModeIPTables
	}
	c = &Cluster{World: w, NodeName: opts.NodeName, Namespace: opts.Namespace, opts: opts}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Stop())
		}
	}()

	c.env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(opts.Root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	// Start leaves etcd and kube-apiserver running when a later step fails.
	c.stops = append(c.stops, c.env.Stop)
	if c.Config, err = c.env.Start(); err != nil {
		return c, fmt.Errorf("starting the control plane: %w", err)
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	if c.Client, err = client.New(c.Config, client.Options{Scheme: scheme}); err != nil {
		return c, err
	}
	admin, err := c.env.AddUser(envtest.User{Name: "svcplane-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return c, err
	}
	if c.kubecfg, err = admin.KubeConfig(); err != nil {
		return c, err
	}

	if err := c.startManager(ctx, opts.ManagerArgs); err != nil {
		return c, err
	}
	if err := c.registerNode(ctx); err != nil {
		return c, err
	}
	for _, p := range w.Pods {
		if err := c.registerPod(ctx, p, opts.PodLabels); err != nil {
			return c, err
		}
	}
	if err := c.grantAgent(ctx, opts); err != nil {
		return c, err
	}
	c.stops = append([]func() error{c.StopAgent}, c.stops...)
	if err := c.StartAgent(ctx, opts.Mode); err != nil {
		return c, err
	}
	return c, nil
}

// startManager runs the manager as cmd/manager does, flags and all.
func (c *Cluster) startManager(ctx context.Context, args []string) error {
	var cfg manager.Config
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	cfg.BindFlags(fs, manager.Options{})
	defaults := []string{"--metrics-bind-address=0", "--health-probe-bind-address=0", "--service-cluster-ip-range=" + ServiceCIDRs}
	if err := fs.Parse(append(defaults, args...)); err != nil {
		return err
	}
	mgr, err := manager.NewManager(c.Config, cfg, manager.Options{})
	if err != nil {
		return err
	}
	r := start(logf.IntoContext(ctx, logf.FromContext(ctx).WithName("manager")), mgr.Start)
	c.stops = append([]func() error{r.stop}, c.stops...)
	return nil
}

// grantAgent creates the agent's user with config/agent's permissions.
func (c *Cluster) grantAgent(ctx context.Context, opts Options) error {
	raw, err := os.ReadFile(filepath.Join(opts.Root, "config", "agent", "role.yaml"))
	if err != nil {
		return err
	}
	var role rbacv1.ClusterRole
	if err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), len(raw)).Decode(&role); err != nil {
		return fmt.Errorf("config/agent/role.yaml: %w", err)
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: agentUser}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: agentUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: agentUser},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: agentUser}},
	}
	for _, obj := range []client.Object{&role, binding} {
		if err := c.Client.Create(ctx, obj); err != nil {
			return err
		}
	}
	user, err := c.env.AddUser(envtest.User{Name: agentUser}, nil)
	if err != nil {
		return err
	}
	c.agentUser = user
	return nil
}

// Mode returns the mode the agent runs (or last ran) in.
func (c *Cluster) Mode() string { return c.mode }

// StartAgent starts the agent in mode (agent --mode), with the options the cluster
// started with. The agent must not be running.
func (c *Cluster) StartAgent(ctx context.Context, mode string) error {
	if c.agent != nil {
		return errors.New("the agent is running already")
	}
	opts := c.opts
	backend, err := agent.NewBackend(ctx, mode)
	if err != nil {
		return err
	}
	a, err := agent.New(c.agentUser.Config(), agent.Options{
		NodeName:           c.NodeName,
		Config:             model.Config{ClusterCIDRs: []netip.Prefix{world.ClusterCIDR, world.ClusterCIDRv6}},
		Backend:            backend,
		Runner:             opts.Runner,
		HealthzBindAddress: opts.HealthzBindAddress,
		MetricsBindAddress: opts.MetricsBindAddress,
		Registry:           prometheus.NewRegistry(),
	})
	if err != nil {
		return err
	}
	c.agent = start(logf.IntoContext(ctx, logf.FromContext(ctx).WithName("agent")), a.Run)
	c.mode = mode
	return nil
}

// StopAgent stops the agent, leaving its rules in place. Stopping it again does
// nothing.
func (c *Cluster) StopAgent() error {
	if c.agent == nil {
		return nil
	}
	err := c.agent.stop()
	c.agent = nil
	return err
}

// Stop stops the agent, the manager and the control plane.
func (c *Cluster) Stop() error {
	var errs []error
	for _, stop := range c.stops {
		errs = append(errs, stop())
	}
	c.stops = nil
	return errors.Join(errs...)
}

// Kubeconfig returns an administrator's kubeconfig for the control plane.
func (c *Cluster) Kubeconfig() []byte { return c.kubecfg }

// registerNode creates the world's Node, with the node's addresses: IPv4 first,
// its primary family, as a kubelet given --node-ip=<v4>,<v6> reports them.
func (c *Cluster) registerNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: c.NodeName}}
	if err := c.Client.Create(ctx, node); err != nil {
		return err
	}
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: world.NodeIP.String()},
		{Type: corev1.NodeInternalIP, Address: world.NodeIPv6.String()},
		{Type: corev1.NodeHostName, Address: c.NodeName},
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}}
	return c.Client.Status().Update(ctx, node)
}

// registerPod creates the Pod of p on the node, running and ready, with both its
// addresses (IPv4 first), as a kubelet would report it.
func (c *Cluster) registerPod(ctx context.Context, p world.Pod, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.Namespace}}
	if err := c.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: c.Namespace, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName: c.NodeName,
			Containers: []corev1.Container{{
				Name: "server",
				// Never pulled: no kubelet runs. The world's server plays the
				// container, answering with the pod's name.
				Image: "svcplane.io/e2e/name-server",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: world.ServerPort, Protocol: corev1.ProtocolTCP}},
			}},
		},
	}
	if err := c.Client.Create(ctx, pod); err != nil {
		return err
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{
		Phase:     corev1.PodRunning,
		PodIP:     p.IP.String(),
		PodIPs:    []corev1.PodIP{{IP: p.IP.String()}, {IP: p.IPv6.String()}},
		HostIP:    world.NodeIP.String(),
		HostIPs:   []corev1.HostIP{{IP: world.NodeIP.String()}, {IP: world.NodeIPv6.String()}},
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name:    pod.Spec.Containers[0].Name,
			Image:   pod.Spec.Containers[0].Image,
			Ready:   true,
			Started: ptr.To(true),
			State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		}},
	}
	return c.Client.Status().Update(ctx, pod)
}

// SetPodReady sets the Ready condition of the pod named name, as a kubelet does
// when its readiness probe starts or stops failing.
func (c *Cluster) SetPodReady(ctx context.Context, name string, ready bool) error {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var pod corev1.Pod
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: name}, &pod); err != nil {
			return err
		}
		for i := range pod.Status.Conditions {
			cond := &pod.Status.Conditions[i]
			if cond.Type == corev1.PodReady || cond.Type == corev1.ContainersReady {
				if cond.Status != status {
					cond.Status, cond.LastTransitionTime = status, metav1.Now()
				}
			}
		}
		for i := range pod.Status.ContainerStatuses {
			pod.Status.ContainerStatuses[i].Ready = ready
		}
		return c.Client.Status().Update(ctx, &pod)
	})
}
