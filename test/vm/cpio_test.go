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
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
)

func TestReadConsole(t *testing.T) {
	for _, tc := range []struct {
		name    string
		console string
		started bool
		exit    int
		emitted []string
	}{
		{
			name:    "passing tests",
			console: "[    0.1] kernel line\r\nsvcplane-vm: running\r\n=== RUN   TestA\r\n--- PASS: TestA\r\nsvcplane-vm: exit status 0\r\nreboot: Power down\r\n",
			started: true, exit: 0, emitted: []string{"=== RUN   TestA", "--- PASS: TestA"},
		},
		{
			name:    "failing tests",
			console: "svcplane-vm: running\nFAIL\nsvcplane-vm: exit status 1\n",
			started: true, exit: 1, emitted: []string{"FAIL"},
		},
		{
			name:    "no boot",
			console: "Kernel panic - not syncing: No working init found\n",
			started: false, exit: -1,
		},
		{
			name:    "killed mid-test",
			console: "svcplane-vm: running\n=== RUN   TestA\n",
			started: true, exit: -1, emitted: []string{"=== RUN   TestA"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var emitted []string
			res := readConsole(strings.NewReader(tc.console), func(l string) { emitted = append(emitted, l) })
			if res.started != tc.started || res.exit != tc.exit {
				t.Errorf("started, exit = %v, %d; want %v, %d", res.started, res.exit, tc.started, tc.exit)
			}
			if strings.Join(emitted, "|") != strings.Join(tc.emitted, "|") {
				t.Errorf("emitted %q, want %q", emitted, tc.emitted)
			}
			if got, want := res.console.String(), strings.ReplaceAll(tc.console, "\r", ""); got != want {
				t.Errorf("console = %q, want %q", got, want)
			}
		})
	}
}

// TestCPIO reads the archive back as the kernel's initramfs unpacker does.
func TestCPIO(t *testing.T) {
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	w.file("a/b/c.txt", 0o644, []byte("hello"))
	w.charDevice("dev/console", 5, 1)
	w.file("a/d", 0o755, []byte("1234"))
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		name       string
		mode       uint64
		data       string
		rmaj, rmin uint64
	}
	var got []entry
	b := buf.Bytes()
	for off := 0; ; {
		if off%4 != 0 || len(b) < off+110 || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d: %q", off, b[off:min(len(b), off+16)])
		}
		field := func(i int) uint64 {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		mode, size, rmaj, rmin, namesize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+int(namesize)-1])
		off = (off + 110 + int(namesize) + 3) &^ 3
		data := string(b[off : off+int(size)])
		off = (off + int(size) + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			break
		}
		got = append(got, entry{name, mode, data, rmaj, rmin})
	}
	want := []entry{
		{"a", 0o040755, "", 0, 0},
		{"a/b", 0o040755, "", 0, 0},
		{"a/b/c.txt", 0o100644, "hello", 0, 0},
		{"dev", 0o040755, "", 0, 0},
		{"dev/console", 0o020600, "", 5, 1},
		{"a/d", 0o100755, "1234", 0, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("entries %+v\nwant %+v\n%s", got, want, hex.Dump(b))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
