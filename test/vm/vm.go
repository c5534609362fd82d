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
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GuestEnv is set to "1" in the environment of the test binary inside the VM.
const GuestEnv = "SVCPLANE_VM_GUEST"

// Console markers the guest's init prints around the test binary's run.
const (
	markerRunning = "svcplane-vm: running"
	markerExit    = "svcplane-vm: exit status "
)

// Options configure RunTests.
type Options struct {
	// Modules are loaded with modprobe, in order, before the tests start; their
	// dependencies come along. crc32c_generic goes first where a module needs
	// libcrc32c (ip_vs does): libcrc32c asks for the crc32c algorithm when it
	// loads, and the kernel cannot load it on demand that early.
	Modules []string
	// OnDemand are modules put in the initramfs but not loaded: the kernel loads
	// them when first used (IPVS schedulers), as on a real node.
	OnDemand []string
	// Binaries are host programs the guest needs (e.g. /usr/sbin/nft), copied to
	// the same paths with the shared libraries they load, read from their ELF
	// headers, and the dynamic loader.
	Binaries []string
	// Run is the -test.run pattern of the guest; empty runs every test.
	Run string
	// Bench is the -test.bench pattern of the guest; empty runs no benchmark.
	// Each benchmark runs BenchTime (-test.benchtime; default 1x: a TCG guest
	// is slow, and one run of a big sync is the number wanted).
	Bench, BenchTime string
	// Timeout bounds the whole boot; the default is 8 minutes or what remains of
	// the host test's deadline, whichever is less.
	Timeout time.Duration
	// MemoryMiB is the guest's memory; the initramfs (test binary included) lives
	// in it. Default 1024.
	MemoryMiB int
}

// InGuest reports whether the test binary runs inside the VM RunTests boots.
func InGuest() bool { return os.Getenv(GuestEnv) == "1" }

// RequireGuest skips t outside the VM: it is one of the tests RunTests runs there.
// This is not a missing prerequisite, so it skips on CI too: the package's
// RunTests caller is what fails on CI when the VM cannot boot.
func RequireGuest(t testing.TB) {
	t.Helper()
	if !InGuest() {
		t.Skip("runs inside the VM; the package's TestVM boots it and runs it there")
	}
}

// skipOrFail skips t when a prerequisite is missing, and fails it on CI
// (CI=true), where nothing may be skipped.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a missing prerequisite is a failure)")
	}
	t.Skip(msg)
}

// RunTests boots Debian's kernel in QEMU (TCG, no KVM needed) with an initramfs
// of busybox, the kernel modules opts names and a statically linked build of the
// calling test package, runs every test of that package inside the VM in that one
// boot, streams the guest's test output into t's log and fails t when the tests
// fail or the guest does not boot, showing its console. Inside the guest it does
// nothing. It skips, or fails on CI, without qemu-system-x86_64, busybox or the
// kernel package (hack/vm/kernel.sh fetches it).
func RunTests(t *testing.T, opts Options) {
	t.Helper()
	if InGuest() {
		t.Skip("already inside the VM")
	}
	if runtime.GOARCH != "amd64" || runtime.GOOS != "linux" {
		skipOrFail(t, "the VM tests boot an x86-64 Linux guest; this host is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		skipOrFail(t, "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86): %v", err)
	}
	busybox, err := findBusybox()
	if err != nil {
		skipOrFail(t, "%v", err)
	}
	kernelDir, err := fetchKernel()
	if err != nil {
		skipOrFail(t, "no kernel to boot: %v", err)
	}
	kernel, modRoot, err := kernelFiles(kernelDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, err := staticTestBinary(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initramfs.cpio")
	if err := writeInitramfs(initrd, initramfs{
		busybox: busybox, modRoot: modRoot, modules: opts.Modules, onDemand: opts.OnDemand, binaries: opts.Binaries,
		files:   map[string]string{"guest.test": bin},
		command: testCommand(opts, testing.Verbose()),
	}); err != nil {
		t.Fatal(err)
	}

	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 8 * time.Minute
	}
	if d, ok := t.Deadline(); ok && time.Until(d)-30*time.Second < timeout {
		timeout = time.Until(d) - 30*time.Second
	}
	mem := opts.MemoryMiB
	if mem == 0 {
		mem = 1024
	}
	start := time.Now()
	res, err := boot(context.Background(), qemu, kernel, initrd, mem, timeout, nil, func(line string) { t.Log("guest: " + line) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("VM ran for %s (booted in %s)", time.Since(start).Round(time.Second), res.bootTime.Round(time.Second))
	if msg := res.failure(); msg != "" {
		t.Fatal(msg)
	}
}

// boot runs qemu on kernel and initrd until the guest powers off, panics,
// timeout passes or ctx ends, passing the test output to emit; extra are more
// qemu arguments (a network). The error is for qemu that
// does not start; what the guest did is in the result.
func boot(ctx context.Context, qemu, kernel, initrd string, mem int, timeout time.Duration, extra []string, emit func(string)) (*consoleResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := append([]string{
		"-accel", "tcg", "-m", strconv.Itoa(mem), "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init"}, extra...)
	cmd := exec.CommandContext(ctx, qemu, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", qemu, err)
	}
	res := readConsole(stdout, emit)
	res.qemu = describeExit(ctx, cmd.Wait())
	res.stderr = stderr.String()
	return res, nil
}

// failure returns why the run failed, with the guest's console when it did not
// boot to its tests; "" when the tests passed.
func (res *consoleResult) failure() string {
	switch {
	case !res.started:
		return fmt.Sprintf("the guest did not boot to its tests (qemu: %s)\nguest console:\n%s\nqemu stderr:\n%s",
			res.qemu, res.console.String(), res.stderr)
	case res.exit < 0:
		return fmt.Sprintf("the guest's tests did not finish (qemu: %s)\nguest console from the start of the tests is above; qemu stderr:\n%s",
			res.qemu, res.stderr)
	case res.exit != 0:
		return fmt.Sprintf("the tests inside the VM failed: exit status %d (their output is above)", res.exit)
	}
	return ""
}

func describeExit(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "killed after the timeout"
	}
	if err == nil {
		return "exited"
	}
	return err.Error()
}

// consoleResult is what readConsole saw.
type consoleResult struct {
	console  bytes.Buffer // everything, for a guest that does not boot
	started  bool         // the init reached the test binary
	exit     int          // its exit status; -1 when it never finished
	bootTime time.Duration
	qemu     string // how qemu ended
	stderr   string // qemu's own messages
}

// readConsole reads the guest's serial console until EOF, passing each line after
// the running marker to emit (the test output, streamed as it comes) and keeping
// the whole console.
func readConsole(r io.Reader, emit func(string)) *consoleResult {
	res := &consoleResult{exit: -1}
	start := time.Now()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// The kernel's serial console turns each \n into \r\n.
		line := strings.TrimRight(sc.Text(), "\r")
		res.console.WriteString(line + "\n")
		switch {
		case !res.started && strings.HasSuffix(line, markerRunning):
			res.started = true
			res.bootTime = time.Since(start)
		case res.started && strings.HasPrefix(line, markerExit):
			if n, err := strconv.Atoi(strings.TrimPrefix(line, markerExit)); err == nil {
				res.exit = n
			}
		case res.started && res.exit < 0:
			emit(line)
		}
	}
	return res
}

// findBusybox returns a statically linked busybox: the guest has no libc.
func findBusybox() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		static, err := isStatic(p)
		if err != nil {
			return "", err
		}
		if static {
			return p, nil
		}
		return "", fmt.Errorf("%s is linked dynamically; install busybox-static", p)
	}
	return "", errors.New("busybox is not installed (apt-get install busybox-static)")
}

// isStatic reports whether the ELF file at p has no program interpreter.
func isStatic(p string) (bool, error) {
	f, err := elf.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// repoRoot returns the directory holding go.mod, above the test's working
// directory (its package directory).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// fetchKernel runs hack/vm/kernel.sh, which downloads and unpacks Debian's kernel
// package into bin/vm once, and returns the directory it printed. VM_KERNEL_DIR
// names an unpacked package to use instead.
func fetchKernel() (string, error) {
	if d := os.Getenv("VM_KERNEL_DIR"); d != "" {
		return d, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(root, "hack", "vm", "kernel.sh"))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/vm/kernel.sh: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// kernelFiles returns the kernel image and the lib/modules/<version> directory of
// an unpacked kernel package.
func kernelFiles(dir string) (kernel, modRoot string, err error) {
	images, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return "", "", fmt.Errorf("want one boot/vmlinuz-* in %s, found %d", dir, len(images))
	}
	version := strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")
	modRoot = filepath.Join(dir, "lib", "modules", version)
	if _, err := os.Stat(modRoot); err != nil {
		return "", "", fmt.Errorf("kernel %s has no modules: %w", version, err)
	}
	return images[0], modRoot, nil
}

// staticTestBinary returns a statically linked build of the running test binary's
// package: the binary itself when it already is static (CGO_ENABLED=0), otherwise
// `go test -c` of the package in the working directory with CGO_ENABLED=0.
func staticTestBinary(t *testing.T, dir string) (string, error) {
	if static, err := isStatic(os.Args[0]); err == nil && static {
		return os.Args[0], nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the test binary is linked dynamically and go is not on PATH to build a static one: %w", err)
	}
	out := filepath.Join(dir, "guest.test")
	cmd := exec.Command(goBin, "test", "-c", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	started := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build a static test binary: %v\n%s", err, b)
	}
	t.Logf("built a static test binary in %s", time.Since(started).Round(100*time.Millisecond))
	return out, nil
}

// initramfs is what writeInitramfs puts in the guest's root file system.
type initramfs struct {
	busybox, modRoot            string
	modules, onDemand, binaries []string
	// files are copied as they are: guest path (relative to /) to host path.
	files map[string]string
	// command is the shell command line init runs once the modules are loaded;
	// its exit status is printed after markerExit.
	command string
	// network brings eth0 up at guestAddr (QEMU's user network) before command.
	network bool
}

// testCommand is the init's command line that runs the test binary at /guest.test
// with opts' -test.run and -test.bench.
func testCommand(opts Options, verbose bool) string {
	args := []string{"-test.timeout=0"}
	if verbose {
		args = append(args, "-test.v")
	}
	if opts.Run != "" {
		args = append(args, "-test.run="+shellQuote(opts.Run))
	}
	if opts.Bench != "" {
		benchTime := opts.BenchTime
		if benchTime == "" {
			benchTime = "1x"
		}
		args = append(args, "-test.bench="+shellQuote(opts.Bench), "-test.benchtime="+shellQuote(benchTime), "-test.benchmem")
	}
	ci := os.Getenv("CI")
	if ci != "true" {
		ci = ""
	}
	return "env " + GuestEnv + "=1 CI=" + ci + " HOME=/tmp /guest.test " + strings.Join(args, " ")
}

// safeModule is the spelling a module name must have to go into the init script.
var safeModule = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// writeInitramfs writes the newc archive at path: /init (a busybox shell script),
// busybox, the test binary at /guest.test, /dev/console and the modules with a
// modules.dep.
func writeInitramfs(path string, fs initramfs) error {
	idx, err := indexModules(fs.modRoot)
	if err != nil {
		return err
	}
	for _, m := range append(append([]string{}, fs.modules...), fs.onDemand...) {
		if !safeModule.MatchString(m) {
			return fmt.Errorf("invalid module name %q", m)
		}
	}
	deps, err := idx.closure(append(append([]string{}, fs.modules...), fs.onDemand...))
	if err != nil {
		return err
	}
	version := filepath.Base(fs.modRoot)

	network := ""
	if fs.network {
		network = "ip addr add " + guestAddr + "/24 dev eth0 && ip link set eth0 up || echo \"svcplane-vm: eth0 is not up\"\n"
	}
	script := `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
ip link set lo up
for m in ` + strings.Join(fs.modules, " ") + `; do
	modprobe "$m" || echo "svcplane-vm: modprobe $m failed"
done
` + network + `echo "` + markerRunning + `"
cd /
` + fs.command + `
echo "` + markerExit + `$?"
poweroff -f
`
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := newCPIOWriter(f)
	w.file("init", 0o755, []byte(script))
	w.copyFile("bin/busybox", fs.busybox)
	for _, name := range sortedKeys(fs.files) {
		w.copyFile(name, fs.files[name])
	}
	w.charDevice("dev/console", 5, 1)
	for _, m := range sortedKeys(deps) {
		w.copyFile("lib/modules/"+version+"/"+idx.paths[m], filepath.Join(fs.modRoot, idx.paths[m]))
	}
	w.file("lib/modules/"+version+"/modules.dep", 0o644, idx.modulesDep(deps))
	files, err := withLibraries(fs.binaries)
	if err != nil {
		f.Close()
		return err
	}
	for _, p := range files {
		w.copyFile(strings.TrimPrefix(p, "/"), p)
	}
	if err := w.close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// shellQuote quotes s for the init script's shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// libraryDirs are where Debian's dynamic loader finds shared libraries.
var libraryDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// withLibraries returns bins, every shared library they need (DT_NEEDED,
// transitively, found in libraryDirs) and their program interpreter, sorted and
// unique: what the guest needs to run them.
func withLibraries(bins []string) ([]string, error) {
	seen := map[string]bool{}
	var visit func(p string) error
	visit = func(p string) error {
		if seen[p] {
			return nil
		}
		seen[p] = true
		f, err := elf.Open(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		defer f.Close()
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b := make([]byte, prog.Filesz)
				if _, err := prog.ReadAt(b, 0); err != nil {
					return err
				}
				seen[strings.TrimRight(string(b), "\x00")] = true
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			return err
		}
		for _, lib := range libs {
			found := ""
			for _, dir := range libraryDirs {
				if _, err := os.Stat(filepath.Join(dir, lib)); err == nil {
					found = filepath.Join(dir, lib)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, which is in none of %v", p, lib, libraryDirs)
			}
			if err := visit(found); err != nil {
				return err
			}
		}
		return nil
	}
	for _, b := range bins {
		if err := visit(b); err != nil {
			return nil, err
		}
	}
	return sortedKeys(seen), nil
}
