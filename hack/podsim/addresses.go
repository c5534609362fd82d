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

package main

import (
	"fmt"
	"net/netip"
)

// firstPodOffset is where pod addresses start in the range: the addresses below it
// are left to the Node and the network, as a small node's pod range would be.
const firstPodOffset = 10

// addressPool hands out pod addresses from one prefix, lowest free first, and
// remembers which pod holds which, so that a pod keeps its address and two pods never
// share one. It is not safe for concurrent use: the reconciler runs one worker.
type addressPool struct {
	prefix netip.Prefix
	first  netip.Addr
	holder map[netip.Addr]string
	held   map[string]netip.Addr
}

// newAddressPool returns a pool over prefix that never hands out reserved, the Node's
// own address.
func newAddressPool(prefix netip.Prefix, reserved netip.Addr) (*addressPool, error) {
	first := prefix.Addr()
	for range firstPodOffset {
		first = first.Next()
	}
	if !first.IsValid() || !prefix.Contains(first) {
		return nil, fmt.Errorf("%s is too small: pod addresses start at its %dth address", prefix, firstPodOffset)
	}
	p := &addressPool{prefix: prefix, first: first, holder: map[netip.Addr]string{}, held: map[string]netip.Addr{}}
	p.holder[reserved] = ""
	return p, nil
}

// Adopt records that pod (namespace/name) holds addr, as the API server says; it
// reports false when addr is outside the pool or another pod holds it already.
func (p *addressPool) Adopt(pod string, addr netip.Addr) bool {
	if !p.prefix.Contains(addr) {
		return false
	}
	if other, taken := p.holder[addr]; taken && other != pod {
		return false
	}
	p.holder[addr] = pod
	p.held[pod] = addr
	return true
}

// Get returns pod's address, handing out the lowest free one the first time; an
// error means the pool is full.
func (p *addressPool) Get(pod string) (netip.Addr, error) {
	if addr, ok := p.held[pod]; ok {
		return addr, nil
	}
	for addr := p.first; addr.IsValid() && p.prefix.Contains(addr); addr = addr.Next() {
		if _, taken := p.holder[addr]; !taken {
			p.holder[addr] = pod
			p.held[pod] = addr
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free pod address left in %s", p.prefix)
}

// Release frees pod's address, if it has one.
func (p *addressPool) Release(pod string) {
	if addr, ok := p.held[pod]; ok {
		delete(p.held, pod)
		delete(p.holder, addr)
	}
}
