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

package vm

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// moduleIndex maps module names (with '-' spelled '_', as the kernel does) to
// their paths relative to lib/modules/<version>/, for one unpacked kernel.
type moduleIndex struct {
	root  string // lib/modules/<version>
	paths map[string]string
}

func indexModules(root string) (*moduleIndex, error) {
	idx := &moduleIndex{root: root, paths: map[string]string{}}
	err := filepath.WalkDir(filepath.Join(root, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		idx.paths[moduleName(strings.TrimSuffix(d.Name(), ".ko"))] = filepath.ToSlash(rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index kernel modules: %w", err)
	}
	if len(idx.paths) == 0 {
		return nil, fmt.Errorf("no kernel modules under %s", root)
	}
	return idx, nil
}

func moduleName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// depends returns the modules m needs loaded first, from the "depends=" entry of
// the module's .modinfo ELF section (what depmod reads too).
func (idx *moduleIndex) depends(m string) ([]string, error) {
	f, err := elf.Open(filepath.Join(idx.root, idx.paths[m]))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s has no .modinfo section", m)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			var deps []string
			for _, d := range strings.Split(string(v), ",") {
				if d != "" {
					deps = append(deps, moduleName(d))
				}
			}
			return deps, nil
		}
	}
	return nil, nil
}

// closure returns the modules needed to load every module in want, each listed
// with all its transitive dependencies (the modules.dep a depmod would write), or
// an error naming a module the kernel does not ship.
func (idx *moduleIndex) closure(want []string) (map[string][]string, error) {
	deps := map[string][]string{}
	var visit func(m string, stack []string) ([]string, error)
	visit = func(m string, stack []string) ([]string, error) {
		if _, ok := idx.paths[m]; !ok {
			return nil, fmt.Errorf("kernel module %s not found under %s (needed by %v)", m, idx.root, stack)
		}
		if d, ok := deps[m]; ok {
			return d, nil
		}
		direct, err := idx.depends(m)
		if err != nil {
			return nil, err
		}
		var all []string
		seen := map[string]bool{}
		for _, d := range direct {
			sub, err := visit(d, append(stack, m))
			if err != nil {
				return nil, err
			}
			for _, x := range append([]string{d}, sub...) {
				if !seen[x] {
					seen[x] = true
					all = append(all, x)
				}
			}
		}
		deps[m] = all
		return all, nil
	}
	for _, m := range want {
		if _, err := visit(moduleName(m), nil); err != nil {
			return nil, err
		}
	}
	return deps, nil
}

// modulesDep renders deps in modules.dep syntax ("path: dep-path ..."), which
// busybox's modprobe reads, both at boot and when the kernel asks for a module
// (an IPVS scheduler loads on first use).
func (idx *moduleIndex) modulesDep(deps map[string][]string) []byte {
	var b bytes.Buffer
	for _, m := range sortedKeys(deps) {
		b.WriteString(idx.paths[m] + ":")
		for _, d := range deps[m] {
			b.WriteString(" " + idx.paths[d])
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}
