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

import (
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svcplane/svcplane/dataplane/model"
)

// TestFakeRefuses: the fake refuses what the kernel refuses, with its errno.
func TestFakeRefuses(t *testing.T) {
	vs := &VirtualServer{Addr: netip.MustParseAddr("10.96.0.10"), Protocol: model.TCP, Port: 80, Scheduler: "rr"}
	rs := &RealServer{Addr: netip.MustParseAddr("10.244.2.6"), Port: 8080, Weight: 1}
	for _, tc := range []struct {
		name string
		op   func(f *Fake) error
		want error
	}{
		{"duplicate virtual server", func(f *Fake) error {
			must(t, f.AddVirtualServer(vs))
			return f.AddVirtualServer(vs)
		}, unix.EEXIST},
		{"real server on a missing virtual server", func(f *Fake) error { return f.AddRealServer(vs, rs) }, unix.ESRCH},
		{"unknown scheduler", func(f *Fake) error {
			bad := *vs
			bad.Scheduler = "mh"
			return f.AddVirtualServer(&bad)
		}, unix.ENOENT},
		{"duplicate real server", func(f *Fake) error {
			must(t, f.AddVirtualServer(vs))
			must(t, f.AddRealServer(vs, rs))
			return f.AddRealServer(vs, rs)
		}, unix.EEXIST},
		{"update a missing real server", func(f *Fake) error {
			must(t, f.AddVirtualServer(vs))
			return f.UpdateRealServer(vs, rs)
		}, unix.ENOENT},
		{"real server of the other family", func(f *Fake) error {
			must(t, f.AddVirtualServer(vs))
			return f.AddRealServer(vs, &RealServer{Addr: netip.MustParseAddr("fd00::1"), Port: 8080, Weight: 1})
		}, unix.EAFNOSUPPORT},
		{"delete a missing virtual server", func(f *Fake) error { return f.DeleteVirtualServer(vs) }, unix.ESRCH},
		{"persistence without timeout", func(f *Fake) error {
			p := *vs
			p.Persistent = true
			return f.AddVirtualServer(&p)
		}, unix.EINVAL},
		{"address on a missing interface", func(f *Fake) error {
			return f.AddAddress(DummyInterface, vs.Addr)
		}, unix.ENODEV},
		{"duplicate address", func(f *Fake) error {
			must(t, f.EnsureDummy(DummyInterface))
			must(t, f.AddAddress(DummyInterface, vs.Addr))
			return f.AddAddress(DummyInterface, vs.Addr)
		}, unix.EEXIST},
		{"delete an absent address", func(f *Fake) error {
			must(t, f.EnsureDummy(DummyInterface))
			return f.DeleteAddress(DummyInterface, vs.Addr)
		}, unix.EADDRNOTAVAIL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(NewFake([]string{"rr"})); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}
