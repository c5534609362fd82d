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

package ipvs

// The world inside the VM. IP conventions: the client is 192.168.100.2 on a link
// whose node side, 192.168.100.1, is the node's address (node ports answer on it);
// pod i (1..3) is 10.244.i.2 behind node-side 10.244.i.1 and serves on 8080;
// cluster IPs are in 10.96.0.0/16. Everything lives inside the VM.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var (
	nodeAddr   = netip.MustParseAddr("192.168.100.1")
	clientAddr = netip.MustParseAddr("192.168.100.2")
)

const serverPort = 8080

// world is the node's neighbours: a client and three pods, each in its own
// network namespace.
type world struct {
	client netns.NsHandle
	pods   []*pod
}

// pod is a namespace running a TCP server that greets every connection with its
// name and then echoes lines back until the client closes.
type pod struct {
	name string
	addr netip.Addr
	ns   netns.NsHandle
	ln   net.Listener
}

// inNS runs f on a thread inside ns.
func inNS(ns netns.NsHandle, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return err
	}
	defer netns.Set(orig) //nolint:errcheck // the thread is locked and dies with the test binary
	return f()
}

// newNS returns a new network namespace, leaving the caller's thread where it was.
func newNS() (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return 0, err
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		return 0, err
	}
	return ns, netns.Set(orig)
}

// link joins ns to the node with a veth pair: the node side named nodeSide with
// gw/24, the namespace side with addr/24 and a default route through gw.
func link(ns netns.NsHandle, nodeSide string, gw, addr netip.Addr) error {
	peer := nodeSide + "p"
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nodeSide}, PeerName: peer}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s: %w", nodeSide, err)
	}
	p, err := netlink.LinkByName(peer)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetNsFd(p, int(ns)); err != nil {
		return err
	}
	if err := netlink.AddrAdd(veth, &netlink.Addr{IPNet: prefix(gw)}); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return err
	}
	return inNS(ns, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		p, err := netlink.LinkByName(peer)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(p, &netlink.Addr{IPNet: prefix(addr)}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(p); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: p.Attrs().Index, Gw: gw.AsSlice()})
	})
}

func prefix(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(24, 32)}
}

// buildWorld makes the client and three pods, and turns on forwarding on the node,
// as a node's network plugin would.
func buildWorld() (*world, error) {
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return nil, err
	}
	w := &world{}
	var err error
	if w.client, err = newNS(); err != nil {
		return nil, err
	}
	if err := link(w.client, "vclient", nodeAddr, clientAddr); err != nil {
		return nil, err
	}
	for i := 1; i <= 3; i++ {
		p := &pod{name: fmt.Sprintf("pod-%d", i), addr: netip.AddrFrom4([4]byte{10, 244, byte(i), 2})}
		if p.ns, err = newNS(); err != nil {
			return nil, err
		}
		gw := netip.AddrFrom4([4]byte{10, 244, byte(i), 1})
		if err := link(p.ns, fmt.Sprintf("vpod%d", i), gw, p.addr); err != nil {
			return nil, err
		}
		if err := inNS(p.ns, func() error {
			p.ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", serverPort))
			return err
		}); err != nil {
			return nil, err
		}
		go p.serve()
		w.pods = append(w.pods, p)
	}
	return w, nil
}

func (p *pod) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			// The greeting says who answers and whom it sees, so that tests can
			// tell a masqueraded connection.
			fmt.Fprintln(c, p.name, c.RemoteAddr().(*net.TCPAddr).IP)
			_, _ = io.Copy(c, c)
		}()
	}
}

// conn is a client connection to a Service, greeted by the pod that serves it.
type conn struct {
	net.Conn
	r   *bufio.Reader
	Pod string
	// Source is the client address the pod saw.
	Source netip.Addr
}

// dial connects from the client namespace to addr and reads the greeting.
func (w *world) dial(addr netip.AddrPort) (*conn, error) {
	return w.dialTimeout(addr, 3*time.Second)
}

// dialTimeout is dial with a connect timeout: a dropped SYN is retried by the
// kernel, so a short timeout tells "dropped" from "refused" quickly.
func (w *world) dialTimeout(addr netip.AddrPort, timeout time.Duration) (*conn, error) {
	return dialFrom(w.client, addr, timeout)
}

// dialFrom connects from namespace ns (the node's own is netns.None() here, since
// the tests run in it) and reads the greeting.
func dialFrom(ns netns.NsHandle, addr netip.AddrPort, timeout time.Duration) (*conn, error) {
	var c net.Conn
	dial := func() error {
		var err error
		c, err = (&net.Dialer{Timeout: timeout}).DialContext(context.Background(), "tcp4", addr.String())
		return err
	}
	var err error
	if ns == netns.None() {
		err = dial()
	} else {
		err = inNS(ns, dial)
	}
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	name, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("read the greeting of %s: %w", addr, err)
	}
	pod, src, _ := strings.Cut(strings.TrimSpace(name), " ")
	source, err := netip.ParseAddr(src)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting %q of %s: %w", name, addr, err)
	}
	return &conn{Conn: c, r: r, Pod: pod, Source: source.Unmap()}, nil
}

// echo sends s and reads it back.
func (c *conn) echo(s string) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, s); err != nil {
		return err
	}
	got, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != s {
		return fmt.Errorf("echo %q came back as %q", s, got)
	}
	return nil
}

// reset closes c with a TCP RST, so that IPVS forgets the connection after its
// short CLOSE timeout rather than TIME_WAIT's two minutes.
func (c *conn) reset() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// hits makes n connections to addr and counts the pods that served them.
func (w *world) hits(addr netip.AddrPort, n int) (map[string]int, error) {
	out := map[string]int{}
	for range n {
		c, err := w.dial(addr)
		if err != nil {
			return out, err
		}
		out[c.Pod]++
		c.reset()
	}
	return out, nil
}

func (w *world) close() {
	var errs []error
	for _, p := range w.pods {
		p.ln.Close()
		p.ns.Close()
	}
	w.client.Close()
	for _, name := range []string{"vclient", "vpod1", "vpod2", "vpod3"} {
		if l, err := netlink.LinkByName(name); err == nil {
			errs = append(errs, netlink.LinkDel(l))
		}
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "world cleanup:", err)
	}
}
