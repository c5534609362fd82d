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

package iptables

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/svcplane/svcplane/dataplane/model"
)

// Addresses: documentation ranges; nothing is sent anywhere.

// fullPort returns a service port with every field set and every list non-empty.
func fullPort() *model.ServicePort {
	return &model.ServicePort{
		Name:                     model.ServicePortName{Namespace: "ns", Name: "web", Port: "http", Protocol: model.TCP},
		Port:                     80,
		ClusterIP:                netip.MustParseAddr("192.0.2.10"),
		NodePort:                 30080,
		HealthCheckNodePort:      31000,
		ExternalIPs:              []netip.Addr{netip.MustParseAddr("198.51.100.1")},
		LoadBalancerIPs:          []netip.Addr{netip.MustParseAddr("203.0.113.1")},
		LoadBalancerSourceRanges: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		SessionAffinity:          model.SessionAffinity{ClientIP: true, TimeoutSeconds: 10},
		ExternalTrafficPolicy:    model.PolicyLocal,
		InternalTrafficPolicy:    model.PolicyCluster,
		Endpoints: []model.Endpoint{{Addr: netip.MustParseAddr("192.0.2.100"), Port: 8080, Ready: true, Serving: true,
			Terminating: true, Local: true, NodeName: "node-a", Zone: "zone-a"}},
	}
}

// fullView returns a view with every field but ServicePorts set.
func fullView() *model.View {
	return &model.View{
		Family: model.IPv4, NodeName: "node-a",
		NodeAddresses:           []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		NodePortsOnAllAddresses: true,
		NodePortAddresses:       []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		ClusterCIDR:             netip.MustParsePrefix("192.0.2.128/25"),
		MasqueradeAll:           true,
	}
}

var (
	addrType   = reflect.TypeFor[netip.Addr]()
	prefixType = reflect.TypeFor[netip.Prefix]()
)

// mutations calls change once per leaf field reachable from v (a settable value),
// with a function that changes that field alone, named by its path. Lists get
// their first element's fields changed, and one element more.
func mutations(path string, v reflect.Value, change func(path string, mutate func())) {
	switch {
	case v.Type() == addrType:
		change(path, func() { v.Set(reflect.ValueOf(v.Interface().(netip.Addr).Next())) })
		return
	case v.Type() == prefixType:
		change(path, func() {
			p := v.Interface().(netip.Prefix)
			v.Set(reflect.ValueOf(netip.PrefixFrom(p.Addr(), p.Bits()+1)))
		})
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			mutations(path+"."+v.Type().Field(i).Name, v.Field(i), change)
		}
	case reflect.Slice:
		if v.Len() == 0 {
			change(path+"+", func() { v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem()))) })
			return
		}
		change(path+"+", func() { v.Set(reflect.Append(v, v.Index(0))) })
		mutations(path+"[0]", v.Index(0), change)
	case reflect.Pointer:
		mutations(path, v.Elem(), change)
	case reflect.String:
		change(path, func() { v.SetString(v.String() + "x") })
	case reflect.Bool:
		change(path, func() { v.SetBool(!v.Bool()) })
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		change(path, func() { v.SetInt(v.Int() + 1) })
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		change(path, func() { v.SetUint(v.Uint() + 1) })
	default:
		panic("mutations: no mutation for " + path + " of kind " + v.Kind().String())
	}
}

// TestInputHashesCoverEveryField changes every field of a service port, of its
// endpoints and of the view, one at a time, and checks that the hash a partial
// render relies on changes too: a field left out would leave a changed port's
// rules unwritten.
func TestInputHashesCoverEveryField(t *testing.T) {
	r := newRenderer(model.IPv4, DefaultMasqueradeBit)
	base := r.inputHash(fullPort())
	n := 0
	// Every path once: mutations walks a fresh port for each.
	mutations("ServicePort", reflect.ValueOf(fullPort()), func(path string, _ func()) {
		p := fullPort()
		found := false
		mutations("ServicePort", reflect.ValueOf(p), func(other string, mutate func()) {
			if other == path {
				mutate()
				found = true
			}
		})
		if !found {
			t.Fatalf("%s: not found again", path)
		}
		n++
		if r.inputHash(p) == base {
			t.Errorf("changing %s leaves inputHash unchanged", path)
		}
	})
	if n < 20 {
		t.Errorf("only %d fields of ServicePort changed; the walk is broken", n)
	}

	baseView := r.viewHash(fullView())
	mutations("View", reflect.ValueOf(fullView()), func(path string, _ func()) {
		if path == "View.ServicePorts+" || path == "View.ServicePorts[0]" {
			return
		}
		v := fullView()
		mutations("View", reflect.ValueOf(v), func(other string, mutate func()) {
			if other == path {
				mutate()
			}
		})
		if r.viewHash(v) == baseView {
			t.Errorf("changing %s leaves viewHash unchanged", path)
		}
	})
	r.terse = !r.terse
	if r.viewHash(fullView()) == baseView {
		t.Error("the terse setting leaves viewHash unchanged")
	}
}

// TestRenderAfterRelease checks that renders after release, partial and full, write
// what a renderer that kept its buffers writes.
func TestRenderAfterRelease(t *testing.T) {
	v := benchView(50, 5)
	changed := withEndpointChanged(v, "10.255.255.1")
	kept, released := newRenderer(model.IPv4, DefaultMasqueradeBit), newRenderer(model.IPv4, DefaultMasqueradeBit)
	released.seed = kept.seed
	a, b := kept.render(v, nil, true, nil), released.render(v, nil, true, nil)
	released.release()
	for i, next := range []*model.View{changed, v} {
		a, b = kept.render(next, a.services, false, nil), released.render(next, b.services, false, nil)
		if string(a.payload) != string(b.payload) || a.written != 1 || b.written != 1 {
			t.Fatalf("partial render %d after release: %d service ports written, want 1, and the payload differs:\n%s\nwant:\n%s", i, b.written, b.payload, a.payload)
		}
		released.release()
	}
	if a, b := kept.render(v, nil, true, nil), released.render(v, nil, true, nil); string(a.payload) != string(b.payload) {
		t.Error("a full render after release differs")
	}
}
