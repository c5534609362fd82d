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

// Command devcluster runs a throwaway Kubernetes control plane (etcd and kube-apiserver
// from bin/k8s, started through envtest) with the svcplane CRDs installed, writes an
// admin kubeconfig for it and serves until SIGINT or SIGTERM. `make run` uses it when no
// cluster is reachable. There is no scheduler, kubelet, kube-controller-manager or
// kube-proxy: svcplane's manager does the Service work itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/svcplane/svcplane/test/controlplane"
)

func main() {
	assets := flag.String("assets", "", "directory holding the kube-apiserver and etcd binaries (default: $KUBEBUILDER_ASSETS, else bin/k8s in the repository)")
	crds := flag.String("crds", "config/crd/bases", "directory of CRD manifests to install")
	kubeconfig := flag.String("write-kubeconfig", "bin/dev-kubeconfig", "where to write the admin kubeconfig (the --kubeconfig flag belongs to controller-runtime and names a cluster to read)")
	attach := flag.Bool("attach-output", false, "copy etcd and kube-apiserver output to this process's stdout and stderr")
	opts := zap.Options{Development: true}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	logf.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *assets == "" {
		dir, err := controlplane.Assets()
		if err != nil {
			fmt.Fprintln(os.Stderr, "devcluster:", err)
			os.Exit(1)
		}
		*assets = dir
	}
	if err := run(ctx, *assets, *crds, *kubeconfig, *attach); err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
}

// run starts the control plane, publishes its kubeconfig and stops everything again, removing
// the kubeconfig and the control plane's temporary directories, once ctx is done.
func run(ctx context.Context, assets, crds, kubeconfig string, attach bool) (err error) {
	kubeconfig, err = filepath.Abs(kubeconfig)
	if err != nil {
		return err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{crds},
		ErrorIfCRDPathMissing:    true,
		AttachControlPlaneOutput: attach,
	}
	if _, err := env.Start(); err != nil {
		// Start leaves etcd and kube-apiserver running when a later step, such as
		// installing the CRDs, fails.
		return errors.Join(fmt.Errorf("starting the control plane: %w", err), env.Stop())
	}
	defer func() {
		if stopErr := env.Stop(); stopErr != nil && err == nil {
			err = fmt.Errorf("stopping the control plane: %w", stopErr)
		}
	}()

	user, err := env.AddUser(envtest.User{Name: "svcplane-dev", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding user svcplane-dev: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("rendering the kubeconfig: %w", err)
	}
	if err := writeFileAtomic(kubeconfig, data); err != nil {
		return err
	}
	defer os.Remove(kubeconfig) // the file is useless once the control plane is gone

	fmt.Printf("Control plane is up at %s with the svcplane CRDs from %s.\n", user.Config().Host, crds)
	fmt.Printf("To use it:\n\n    export KUBECONFIG=%s\n\nPress Ctrl-C to stop it.\n", kubeconfig)
	<-ctx.Done()
	fmt.Println("Stopping the control plane...")
	return nil
}

// writeFileAtomic writes data to path through a rename, so that whoever waits for the file
// to appear (hack/run.sh) never reads it half-written.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kubeconfig-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
