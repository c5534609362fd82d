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

package controlplane

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRootSkipsOtherModules(t *testing.T) {
	want, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	// hack/k8s has a go.mod of another module: Root must walk past it.
	t.Chdir(filepath.Join(want, "hack", "k8s"))
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	if root != want {
		t.Fatalf("Root() from hack/k8s = %s, want the repository's root %s", root, want)
	}
}

func TestAssets(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(AssetsEnv, dir)
	_, err := Assets()
	if err == nil || !strings.Contains(err.Error(), "make controlplane") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Assets() with an empty %s: error %v, want one naming %s and `make controlplane`", AssetsEnv, err, dir)
	}
	for _, bin := range binaries {
		if err := os.WriteFile(filepath.Join(dir, bin), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Assets()
	if err != nil || got != dir {
		t.Fatalf("Assets() = %q, %v; want %q", got, err, dir)
	}

	// Unset, it is bin/k8s in the root, wherever the test runs.
	t.Setenv(AssetsEnv, "")
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	got, err = Assets()
	want := filepath.Join(root, "bin", "k8s")
	if err == nil && got != want {
		t.Fatalf("Assets() = %q, want %q", got, want)
	}
	if err != nil && !strings.Contains(err.Error(), want) {
		t.Fatalf("Assets() error %v does not name %s", err, want)
	}
}
