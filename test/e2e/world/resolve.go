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

package world

import (
	"fmt"
	"runtime"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Resolve asks server for name and qtype over network ("udp" or "tcp") from inside
// the network namespace netns, as a pod's resolver does.
func Resolve(netns, server, network, name string, qtype uint16) (*mdns.Msg, error) {
	type result struct {
		msg *mdns.Msg
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread enters the pod's namespace and is never unlocked: it ends
		// with this goroutine rather than serve others from the wrong namespace.
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("entering %s: %w", netns, err)}
			return
		}
		m := new(mdns.Msg)
		m.SetQuestion(name, qtype)
		m.RecursionDesired = true
		c := &mdns.Client{Net: network, Timeout: 2 * time.Second}
		resp, _, err := c.Exchange(m, server)
		done <- result{resp, err}
	}()
	r := <-done
	return r.msg, r.err
}
