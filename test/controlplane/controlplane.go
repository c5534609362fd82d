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

// Package controlplane finds the kube-apiserver and etcd binaries that `make
// controlplane` builds from hack/k8s, for every envtest suite, test harness and tool
// in the repository: one place that knows where they live and what to say when they
// are missing.
package controlplane

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// AssetsEnv names the variable that overrides bin/k8s, as envtest itself reads it.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// module is the repository's Go module; Root looks for its go.mod. hack/k8s has a
// go.mod of its own, which Root must walk past.
const module = "github.com/svcplane/svcplane"

// binaries are what envtest starts.
var binaries = []string{"kube-apiserver", "etcd"}

// Root returns the repository's root: the nearest directory at or above the working
// directory whose go.mod declares module github.com/svcplane/svcplane. Tests run in
// their package's directory, tools wherever they are started inside the checkout.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isRoot(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s at or above the working directory", module)
		}
		dir = parent
	}
}

// isRoot reports whether the go.mod at path declares the repository's module.
func isRoot(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if name, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(name), `"`) == module
		}
	}
	return false
}

// Assets returns the absolute directory holding kube-apiserver and etcd:
// $KUBEBUILDER_ASSETS when it is set, else bin/k8s in the repository's root. The
// error says where it looked and how to get the binaries.
func Assets() (string, error) {
	if os.Getenv(AssetsEnv) != "" {
		return AssetsUnder("")
	}
	root, err := Root()
	if err != nil {
		return "", fmt.Errorf("finding bin/k8s: %w; set %s", err, AssetsEnv)
	}
	return AssetsUnder(root)
}

// AssetsUnder is Assets for a caller that knows the repository's root:
// $KUBEBUILDER_ASSETS when it is set, else root/bin/k8s.
func AssetsUnder(root string) (string, error) {
	dir := os.Getenv(AssetsEnv)
	if dir == "" {
		dir = filepath.Join(root, "bin", "k8s")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	var missing []error
	for _, bin := range binaries {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			missing = append(missing, err)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("no control plane binaries in %s: run `make controlplane` or set %s: %w", dir, AssetsEnv, errors.Join(missing...))
	}
	return dir, nil
}

// CRDs returns the directory of the svcplane CRDs, config/crd/bases in the
// repository's root.
func CRDs() (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "config", "crd", "bases"), nil
}

// Require returns Assets for a test. Without the binaries it skips t, or fails it
// when CI=true, so that a CI run never passes by skipping.
func Require(t testing.TB) string {
	t.Helper()
	dir, err := Assets()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return dir
}
