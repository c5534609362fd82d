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

// Command podsim is a kubelet stand-in for a control plane with no nodes, such as the
// one `make run` starts (hack/devcluster). It is NOT a kubelet: it runs no containers.
// It registers one Ready Node, binds every pod that has no node to it (there is no
// scheduler either), and reports each of that Node's pods Running and Ready with an
// address from a documentation range, so that svcplane's EndpointSlices have
// something to list. A pod annotated podsim.svcplane.io/ready: "false" stays Running
// but not Ready; a pod being deleted is removed at once, as a kubelet does once its
// containers have stopped.
package main

import (
	"flag"
	"net/netip"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

func main() {
	var (
		nodeName string
		nodeIP   string
		podCIDR  string
	)
	flag.StringVar(&nodeName, "node-name", "podsim-node", "The name of the Node podsim registers and binds pods to.")
	flag.StringVar(&nodeIP, "node-ip", "203.0.113.1", "The Node's InternalIP (default: in the documentation range 203.0.113.0/24).")
	flag.StringVar(&podCIDR, "pod-cidr", "203.0.113.0/24", "The range pod addresses come from, starting at its 10th address; a documentation range, so nothing real is ever reached.")
	zopts := zap.Options{Development: true}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	log := ctrl.Log.WithName("podsim")

	prefix, err := netip.ParsePrefix(podCIDR)
	if err != nil {
		log.Error(err, "invalid --pod-cidr")
		os.Exit(1)
	}
	hostIP, err := netip.ParseAddr(nodeIP)
	if err != nil {
		log.Error(err, "invalid --node-ip")
		os.Exit(1)
	}
	addresses, err := newAddressPool(prefix.Masked(), hostIP)
	if err != nil {
		log.Error(err, "invalid --pod-cidr")
		os.Exit(1)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		log.Error(err, "unable to build the scheme")
		os.Exit(1)
	}
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "unable to load a kubeconfig")
		os.Exit(1)
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		log.Error(err, "unable to create the manager")
		os.Exit(1)
	}
	kubelet := &Kubelet{Client: mgr.GetClient(), NodeName: nodeName, NodeIP: hostIP, Addresses: addresses}
	if err := kubelet.SetupWithManager(mgr); err != nil {
		log.Error(err, "unable to set up the pod reconciler")
		os.Exit(1)
	}
	log.Info("starting the kubelet stand-in", "node", nodeName, "nodeIP", hostIP, "podCIDR", prefix)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "podsim stopped with an error")
		os.Exit(1)
	}
}
