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
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
)

// cpioWriter writes the "newc" cpio format, the only one the kernel unpacks as an
// initramfs: a 110-byte ASCII header of thirteen 8-digit hex fields, the name with
// its NUL, padding to 4 bytes, the data, padding to 4 bytes; "TRAILER!!!" ends it.
type cpioWriter struct {
	w   *bufio.Writer
	ino uint32
	err error
	// dirs are the directories written so far, so that every parent is created
	// before what it holds and none twice.
	dirs map[string]bool
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), dirs: map[string]bool{".": true, "/": true, "": true}}
}

func (c *cpioWriter) header(name string, mode uint32, size int, rdevMajor, rdevMinor uint32) {
	if c.err != nil {
		return
	}
	c.ino++
	_, c.err = fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	if c.err == nil {
		_, c.err = io.WriteString(c.w, name+"\x00")
	}
	c.pad(110 + len(name) + 1)
}

func (c *cpioWriter) pad(n int) {
	if c.err == nil && n%4 != 0 {
		_, c.err = c.w.Write(make([]byte, 4-n%4))
	}
}

// mkdirAll writes name and its missing parents as directories.
func (c *cpioWriter) mkdirAll(name string) {
	if c.dirs[name] {
		return
	}
	c.mkdirAll(path.Dir(name))
	c.dirs[name] = true
	c.header(name, 0o040755, 0, 0, 0)
}

// file writes a regular file with data at name (relative, no leading slash).
func (c *cpioWriter) file(name string, perm fs.FileMode, data []byte) {
	c.mkdirAll(path.Dir(name))
	c.header(name, 0o100000|uint32(perm.Perm()), len(data), 0, 0)
	if c.err == nil {
		_, c.err = c.w.Write(data)
	}
	c.pad(len(data))
}

// copyFile writes the host file src at name, keeping its permission bits.
func (c *cpioWriter) copyFile(name, src string) {
	if c.err != nil {
		return
	}
	data, err := os.ReadFile(src)
	if err != nil {
		c.err = err
		return
	}
	st, err := os.Stat(src)
	if err != nil {
		c.err = err
		return
	}
	c.file(name, st.Mode(), data)
}

// charDevice writes a character device node. The kernel opens /dev/console before
// it runs /init, and only the initramfs can provide it then; without it init has
// no stdout and the console stays silent.
func (c *cpioWriter) charDevice(name string, major, minor uint32) {
	c.mkdirAll(path.Dir(name))
	c.header(name, 0o020600, 0, major, minor)
}

// close writes the trailer and flushes.
func (c *cpioWriter) close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}

// sortedKeys returns the keys of m in order, so that an initramfs is the same
// bytes for the same inputs.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
