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

package dataplanetest

import (
	"net/netip"

	"github.com/svcplane/svcplane/dataplane/model"
)

// seen says that src's last connection to p went to the endpoint at dest, age
// seconds ago.
func seen(p *model.ServicePort, dest, src string, age int) []Pin {
	return []Pin{{Port: p.Name, Endpoint: netip.MustParseAddrPort(dest), Client: netip.MustParseAddr(src), Age: age}}
}

// BehaviourState is one node's services for the behaviour scenarios: every kind
// of Service a node meets, in one state.
var BehaviourState = State(
	SvcPort("web", "10.96.0.10", Eps("10.244.1.5/local", "10.244.2.6", "10.244.2.7", "10.244.2.8/notready/notserving"),
		NodePort(30080), LoadBalancer("192.0.2.10"), SourceRanges("203.0.113.0/24"), ExternalIPs("198.51.100.20")),
	SvcPort("draining", "10.96.0.11", Eps("10.244.2.9/notready/terminating", "10.244.2.10/notready/notserving/terminating")),
	SvcPort("local-none", "10.96.0.12", Eps("10.244.2.11"), NodePort(30082), LoadBalancer("192.0.2.12"), ExternalLocal(32002)),
	SvcPort("local-some", "10.96.0.13", Eps("10.244.1.13/local", "10.244.2.13"), NodePort(30083), ExternalLocal(32003)),
	SvcPort("empty", "10.96.0.14", nil, NodePort(30084), ExternalIPs("198.51.100.24")),
	SvcPort("itp", "10.96.0.15", Eps("10.244.1.15/local", "10.244.2.15"), InternalLocal),
	SvcPort("itp-none", "10.96.0.16", Eps("10.244.2.16"), InternalLocal),
	SvcPort("dns", "10.96.0.17", Eps("10.244.2.17"), Protocol(model.UDP, 53)),
	SvcPort("diameter", "10.96.0.18", Eps("10.244.2.18"), Protocol(model.SCTP, 3868)),
	SvcPort("sticky", "10.96.0.19", Eps("10.244.1.19/local", "10.244.2.19"), Affinity(10800)),
	SvcPort("web", "fd00:10:96::10", Eps("fd00:10:244:1::5/local", "fd00:10:244:2::6"), NodePort(30080)),
	SvcPort("empty", "fd00:10:96::14", nil),
)

// Cases returns every packet scenario.
func Cases() []Case {
	var out []Case
	out = append(out, behaviourCases()...)
	out = append(out, masqueradeCases()...)
	out = append(out, nodePortAddressCases()...)
	out = append(out, affinityCases()...)
	return out
}

func behaviourCases() []Case {
	const (
		pod      = "10.244.1.20" // a pod on this node
		node     = "192.168.0.10"
		client   = "203.0.113.7"  // outside the cluster, inside web's source ranges
		stranger = "198.51.100.9" // outside the cluster and the source ranges
	)
	return []Case{{
		Name:  "pod → ClusterIP:80 is DNATed to exactly the ready endpoints, not masqueraded",
		Pkt:   Packet{Src: pod, Dst: "10.96.0.10:80", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.1.5:8080", "DNAT 10.244.2.6:8080", "DNAT 10.244.2.7:8080"},
		State: BehaviourState,
	}, {
		Name:  "another port of the cluster IP is not captured",
		Pkt:   Packet{Src: pod, Dst: "10.96.0.10:81", Proto: "tcp"},
		Want:  []string{"ACCEPT 10.96.0.10:81"},
		State: BehaviourState,
	}, {
		Name:  "another protocol on the service port is not captured",
		Pkt:   Packet{Src: pod, Dst: "10.96.0.10:80", Proto: "udp"},
		Want:  []string{"ACCEPT 10.96.0.10:80"},
		State: BehaviourState,
	}, {
		Name:  "a pod reaching itself through its Service is masqueraded (hairpin)",
		Pkt:   Packet{Src: "10.244.1.5", Dst: "10.96.0.10:80", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080", "DNAT 10.244.2.7:8080"},
		State: BehaviourState,
	}, {
		Name:  "from outside the cluster CIDR → ClusterIP is masqueraded",
		Pkt:   Packet{Src: client, Dst: "10.96.0.10:80", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080 masq", "DNAT 10.244.2.7:8080 masq"},
		State: BehaviourState,
	}, {
		Name:  "the node itself → ClusterIP is masqueraded",
		Pkt:   Packet{Src: node, Dst: "10.96.0.10:80", Proto: "tcp", FromHost: true},
		Want:  []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080 masq", "DNAT 10.244.2.7:8080 masq"},
		State: BehaviourState,
	}, {
		Name:  "external → NodePort (eTP Cluster) goes anywhere, masqueraded",
		Pkt:   Packet{Src: client, Dst: node + ":30080", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080 masq", "DNAT 10.244.2.7:8080 masq"},
		State: BehaviourState,
	}, {
		Name:  "node ports are not served on loopback",
		Pkt:   Packet{Src: "127.0.0.1", Dst: "127.0.0.1:30080", Proto: "tcp", FromHost: true},
		Want:  []string{"LOCAL 127.0.0.1:30080"},
		State: BehaviourState,
	}, {
		Name:  "external → external IP is DNATed and masqueraded",
		Pkt:   Packet{Src: client, Dst: "198.51.100.20:80", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080 masq", "DNAT 10.244.2.7:8080 masq"},
		State: BehaviourState,
	}, {
		Name:  "a source inside loadBalancerSourceRanges → LB IP is DNATed",
		Pkt:   Packet{Src: client, Dst: "192.0.2.10:80", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080 masq", "DNAT 10.244.2.7:8080 masq"},
		State: BehaviourState,
	}, {
		Name:  "a source outside loadBalancerSourceRanges → LB IP is dropped",
		Pkt:   Packet{Src: stranger, Dst: "192.0.2.10:80", Proto: "tcp"},
		Want:  []string{"DROP"},
		State: BehaviourState,
	}, {
		Name:  "node ports ignore loadBalancerSourceRanges, as in kube",
		Pkt:   Packet{Src: stranger, Dst: node + ":30080", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.1.5:8080 masq", "DNAT 10.244.2.6:8080 masq", "DNAT 10.244.2.7:8080 masq"},
		State: BehaviourState,
	}, {
		Name:  "with no ready endpoint, traffic goes to the serving terminating ones",
		Pkt:   Packet{Src: pod, Dst: "10.96.0.11:80", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.2.9:8080"},
		State: BehaviourState,
	}, {
		Name:  "external → NodePort with eTP Local and no local endpoint is dropped",
		Pkt:   Packet{Src: client, Dst: node + ":30082", Proto: "tcp"},
		Want:  []string{"DROP"},
		State: BehaviourState,
	}, {
		Name:  "external → LB IP with eTP Local and no local endpoint is dropped",
		Pkt:   Packet{Src: client, Dst: "192.0.2.12:80", Proto: "tcp"},
		Want:  []string{"DROP"},
		State: BehaviourState,
	}, {
		Name:  "a pod → NodePort with eTP Local takes the Cluster path",
		Pkt:   Packet{Src: pod, Dst: node + ":30082", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.2.11:8080"},
		State: BehaviourState,
	}, {
		Name:  "the node → its own NodePort with eTP Local takes the Cluster path, masqueraded",
		Pkt:   Packet{Src: node, Dst: node + ":30082", Proto: "tcp", FromHost: true},
		Want:  []string{"DNAT 10.244.2.11:8080 masq"},
		State: BehaviourState,
	}, {
		Name:  "the cluster IP of an eTP Local service still reaches every endpoint",
		Pkt:   Packet{Src: pod, Dst: "10.96.0.12:80", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.2.11:8080"},
		State: BehaviourState,
	}, {
		Name:  "external → NodePort with eTP Local goes to local endpoints only, source kept",
		Pkt:   Packet{Src: client, Dst: node + ":30083", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.1.13:8080"},
		State: BehaviourState,
	}, {
		Name:  "the health check node port is accepted",
		Pkt:   Packet{Src: client, Dst: node + ":32002", Proto: "tcp"},
		Want:  []string{"LOCAL 192.168.0.10:32002"},
		State: BehaviourState,
	}, {
		Name:  "a service port with no endpoints rejects cluster IP traffic",
		Pkt:   Packet{Src: pod, Dst: "10.96.0.14:80", Proto: "tcp"},
		Want:  []string{"REJECT"},
		State: BehaviourState,
	}, {
		Name:  "… and rejects it from the node itself",
		Pkt:   Packet{Src: node, Dst: "10.96.0.14:80", Proto: "tcp", FromHost: true},
		Want:  []string{"REJECT"},
		State: BehaviourState,
	}, {
		Name:  "… and node port traffic",
		Pkt:   Packet{Src: client, Dst: node + ":30084", Proto: "tcp"},
		Want:  []string{"REJECT"},
		State: BehaviourState,
	}, {
		Name:  "… and external IP traffic",
		Pkt:   Packet{Src: client, Dst: "198.51.100.24:80", Proto: "tcp"},
		Want:  []string{"REJECT"},
		State: BehaviourState,
	}, {
		Name:  "iTP Local: cluster IP traffic goes to local endpoints only",
		Pkt:   Packet{Src: pod, Dst: "10.96.0.15:80", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.1.15:8080"},
		State: BehaviourState,
	}, {
		Name:  "iTP Local without a local endpoint drops cluster IP traffic",
		Pkt:   Packet{Src: pod, Dst: "10.96.0.16:80", Proto: "tcp"},
		Want:  []string{"DROP"},
		State: BehaviourState,
	}, {
		Name:  "UDP",
		Pkt:   Packet{Src: pod, Dst: "10.96.0.17:53", Proto: "udp"},
		Want:  []string{"DNAT 10.244.2.17:8080"},
		State: BehaviourState,
	}, {
		Name:  "TCP to a UDP-only port is not captured",
		Pkt:   Packet{Src: pod, Dst: "10.96.0.17:53", Proto: "tcp"},
		Want:  []string{"ACCEPT 10.96.0.17:53"},
		State: BehaviourState,
	}, {
		Name:  "SCTP",
		Pkt:   Packet{Src: pod, Dst: "10.96.0.18:3868", Proto: "sctp"},
		Want:  []string{"DNAT 10.244.2.18:8080"},
		State: BehaviourState,
	}, {
		Name:   "ClientIP affinity may send a client to any endpoint",
		Pkt:    Packet{Src: pod, Dst: "10.96.0.19:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.19:8080", "DNAT 10.244.2.19:8080"},
		State:  BehaviourState,
		Sticky: portNamed(BehaviourState, "sticky"),
	}, {
		Name:  "IPv6: pod → ClusterIP",
		Pkt:   Packet{Src: "fd00:10:244:1::20", Dst: "[fd00:10:96::10]:80", Proto: "tcp"},
		Want:  []string{"DNAT [fd00:10:244:1::5]:8080", "DNAT [fd00:10:244:2::6]:8080"},
		State: BehaviourState,
	}, {
		Name:  "IPv6: external → NodePort, masqueraded",
		Pkt:   Packet{Src: "2001:db8:113::7", Dst: "[fd00:192:168::10]:30080", Proto: "tcp"},
		Want:  []string{"DNAT [fd00:10:244:1::5]:8080 masq", "DNAT [fd00:10:244:2::6]:8080 masq"},
		State: BehaviourState,
	}, {
		Name:  "IPv6: no endpoints, rejected",
		Pkt:   Packet{Src: "fd00:10:244:1::20", Dst: "[fd00:10:96::14]:80", Proto: "tcp"},
		Want:  []string{"REJECT"},
		State: BehaviourState,
	}}
}

func masqueradeCases() []Case {
	web := SvcPort("web", "10.96.0.10", Eps("10.244.2.6"))
	podToWeb := Packet{Src: "10.244.1.20", Dst: "10.96.0.10:80", Proto: "tcp"}
	all := State(web)
	all.IPv4.MasqueradeAll = true
	// Without a cluster CIDR nothing tells pods from the rest, so only hairpins
	// are masqueraded.
	unknown := State(web)
	unknown.IPv4.ClusterCIDR = netip.Prefix{}
	return []Case{{
		Name:  "with masquerade-all, pod → ClusterIP is masqueraded",
		State: all,
		Pkt:   podToWeb,
		Want:  []string{"DNAT 10.244.2.6:8080 masq"},
	}, {
		Name:  "without a cluster CIDR, off-cluster → ClusterIP is not masqueraded",
		State: unknown,
		Pkt:   Packet{Src: "203.0.113.7", Dst: "10.96.0.10:80", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.2.6:8080"},
	}, {
		Name:  "without a cluster CIDR, a hairpin is still masqueraded",
		State: unknown,
		Pkt:   Packet{Src: "10.244.2.6", Dst: "10.96.0.10:80", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.2.6:8080 masq"},
	}}
}

func nodePortAddressCases() []Case {
	st := State(SvcPort("web", "10.96.0.10", Eps("10.244.2.6"), NodePort(30080)))
	st.IPv4.NodePortsOnAllAddresses = false
	st.IPv4.NodePortAddresses = []netip.Addr{NodeIPv4}
	other := []netip.Addr{netip.MustParseAddr("172.16.0.10")} // a second, unselected node address
	return []Case{{
		Name:  "--nodeport-addresses: the selected address serves node ports",
		State: st,
		Local: other,
		Pkt:   Packet{Src: "203.0.113.7", Dst: "192.168.0.10:30080", Proto: "tcp"},
		Want:  []string{"DNAT 10.244.2.6:8080 masq"},
	}, {
		Name:  "--nodeport-addresses: another local address does not",
		State: st,
		Local: other,
		Pkt:   Packet{Src: "203.0.113.7", Dst: "172.16.0.10:30080", Proto: "tcp"},
		Want:  []string{"LOCAL 172.16.0.10:30080"},
	}}
}

// affinityCases check ClientIP affinity against the kernel's memory of earlier
// connections: with none, a client may land on any endpoint, and its connection
// pins it to the endpoint it lands on; with a pin, it lands on that endpoint
// again, as long as the pin is no older than the timeout, the service still has
// the endpoint and the traffic policy allows it.
func affinityCases() []Case {
	const timeout = 600 // seconds
	var (
		sticky = SvcPort("sticky", "10.96.0.19", Eps("10.244.1.19/local", "10.244.2.19", "10.244.2.29"),
			NodePort(30019), LoadBalancer("192.0.2.19"), SourceRanges("203.0.113.0/24"), Affinity(timeout))
		// other shares an endpoint with sticky.
		other = SvcPort("other", "10.96.0.22", Eps("10.244.2.19", "10.244.2.39"), Affinity(timeout))
		local = SvcPort("sticky-local", "10.96.0.20", Eps("10.244.1.21/local", "10.244.1.22/local", "10.244.2.21"),
			NodePort(30020), ExternalLocal(32020), Affinity(timeout))
		internal = SvcPort("sticky-internal", "10.96.0.21", Eps("10.244.1.23/local", "10.244.1.24/local", "10.244.2.23"),
			InternalLocal, Affinity(timeout))
		sticky6 = SvcPort("sticky", "fd00:10:96::19", Eps("fd00:10:244:1::19/local", "fd00:10:244:2::19"), Affinity(timeout))
	)
	const (
		pod        = "10.244.1.30"
		neighbour  = "10.244.1.31" // pod's neighbour: a mask wider than one address would pin it too
		client     = "203.0.113.7"
		node       = "192.168.0.10"
		pod6       = "fd00:10:244:1::30"
		neighbour6 = "fd00:10:244:1::31"
	)
	affinityState := State(sticky, other, local, internal, sticky6)
	return []Case{{
		Name:   "with no memory, a pod may land on any endpoint",
		Sticky: sticky,
		Pkt:    Packet{Src: pod, Dst: "10.96.0.19:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.19:8080", "DNAT 10.244.2.19:8080", "DNAT 10.244.2.29:8080"},
		State:  affinityState,
	}, {
		Name:   "with no memory, an external client → node port may land on any endpoint",
		Sticky: sticky,
		Pkt:    Packet{Src: client, Dst: node + ":30019", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.19:8080 masq", "DNAT 10.244.2.19:8080 masq", "DNAT 10.244.2.29:8080 masq"},
		State:  affinityState,
	}, {
		Name:   "a pod goes back to its last endpoint",
		Sticky: sticky,
		Memory: seen(sticky, "10.244.2.19:8080", pod, 0),
		Pkt:    Packet{Src: pod, Dst: "10.96.0.19:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.2.19:8080"},
		State:  affinityState,
	}, {
		Name:   "… whichever endpoint that was",
		Sticky: sticky,
		Memory: seen(sticky, "10.244.1.19:8080", pod, 0),
		Pkt:    Packet{Src: pod, Dst: "10.96.0.19:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.19:8080"},
		State:  affinityState,
	}, {
		Name:   "an external client → node port goes back to its last endpoint",
		Sticky: sticky,
		Memory: seen(sticky, "10.244.2.29:8080", client, 0),
		Pkt:    Packet{Src: client, Dst: node + ":30019", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.2.29:8080 masq"},
		State:  affinityState,
	}, {
		Name:   "an external client → LB IP goes back to its last endpoint",
		Sticky: sticky,
		Memory: seen(sticky, "10.244.2.29:8080", client, 0),
		Pkt:    Packet{Src: client, Dst: "192.0.2.19:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.2.29:8080 masq"},
		State:  affinityState,
	}, {
		Name:   "the node itself goes back to its last endpoint",
		Sticky: sticky,
		Memory: seen(sticky, "10.244.2.19:8080", node, 0),
		Pkt:    Packet{Src: node, Dst: "10.96.0.19:80", Proto: "tcp", FromHost: true},
		Want:   []string{"DNAT 10.244.2.19:8080 masq"},
		State:  affinityState,
	}, {
		Name:   "a client last seen exactly the timeout ago is still pinned",
		Sticky: sticky,
		Memory: seen(sticky, "10.244.2.19:8080", pod, timeout),
		Pkt:    Packet{Src: pod, Dst: "10.96.0.19:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.2.19:8080"},
		State:  affinityState,
	}, {
		Name:   "a client last seen longer than the timeout ago may land anywhere",
		Sticky: sticky,
		Memory: seen(sticky, "10.244.2.19:8080", pod, timeout+1),
		Pkt:    Packet{Src: pod, Dst: "10.96.0.19:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.19:8080", "DNAT 10.244.2.19:8080", "DNAT 10.244.2.29:8080"},
		State:  affinityState,
	}, {
		Name:   "another client is not pinned by a pod's memory, even next to it",
		Sticky: sticky,
		Memory: seen(sticky, "10.244.2.19:8080", pod, 0),
		Pkt:    Packet{Src: neighbour, Dst: "10.96.0.19:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.19:8080", "DNAT 10.244.2.19:8080", "DNAT 10.244.2.29:8080"},
		State:  affinityState,
	}, {
		Name:   "an external client is not pinned by a pod's memory",
		Sticky: sticky,
		Memory: seen(sticky, "10.244.2.19:8080", pod, 0),
		Pkt:    Packet{Src: client, Dst: node + ":30019", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.19:8080 masq", "DNAT 10.244.2.19:8080 masq", "DNAT 10.244.2.29:8080 masq"},
		State:  affinityState,
	}, {
		Name:   "memory of an endpoint the service no longer has pins nothing",
		Sticky: sticky,
		Memory: seen(sticky, "10.244.2.99:8080", pod, 0),
		Pkt:    Packet{Src: pod, Dst: "10.96.0.19:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.19:8080", "DNAT 10.244.2.19:8080", "DNAT 10.244.2.29:8080"},
		State:  affinityState,
	}, {
		Name:   "memory of another service's use of a shared endpoint pins nothing",
		Sticky: sticky,
		Memory: seen(other, "10.244.2.19:8080", pod, 0),
		Pkt:    Packet{Src: pod, Dst: "10.96.0.19:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.19:8080", "DNAT 10.244.2.19:8080", "DNAT 10.244.2.29:8080"},
		State:  affinityState,
	}, {
		Name:   "… nor does memory of this service's use of it pin the other service",
		Sticky: other,
		Memory: seen(sticky, "10.244.2.19:8080", pod, 0),
		Pkt:    Packet{Src: pod, Dst: "10.96.0.22:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.2.19:8080", "DNAT 10.244.2.39:8080"},
		State:  affinityState,
	}, {
		Name:   "eTP Local with no memory: external → node port lands on a local endpoint, source kept",
		Sticky: local,
		Pkt:    Packet{Src: client, Dst: node + ":30020", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.21:8080", "DNAT 10.244.1.22:8080"},
		State:  affinityState,
	}, {
		Name:   "eTP Local: external → node port goes back to its last local endpoint",
		Sticky: local,
		Memory: seen(local, "10.244.1.22:8080", client, 0),
		Pkt:    Packet{Src: client, Dst: node + ":30020", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.22:8080"},
		State:  affinityState,
	}, {
		Name:   "eTP Local: memory of a remote endpoint does not take external traffic off the node",
		Sticky: local,
		Memory: seen(local, "10.244.2.21:8080", client, 0),
		Pkt:    Packet{Src: client, Dst: node + ":30020", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.21:8080", "DNAT 10.244.1.22:8080"},
		State:  affinityState,
	}, {
		Name:   "eTP Local: the cluster IP still goes back to a remote endpoint",
		Sticky: local,
		Memory: seen(local, "10.244.2.21:8080", pod, 0),
		Pkt:    Packet{Src: pod, Dst: "10.96.0.20:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.2.21:8080"},
		State:  affinityState,
	}, {
		Name:   "eTP Local: a pod → node port takes the Cluster path, affinity included",
		Sticky: local,
		Memory: seen(local, "10.244.2.21:8080", pod, 0),
		Pkt:    Packet{Src: pod, Dst: node + ":30020", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.2.21:8080"},
		State:  affinityState,
	}, {
		Name:   "iTP Local: a pod goes back to its last local endpoint",
		Sticky: internal,
		Memory: seen(internal, "10.244.1.24:8080", pod, 0),
		Pkt:    Packet{Src: pod, Dst: "10.96.0.21:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.24:8080"},
		State:  affinityState,
	}, {
		Name:   "iTP Local: memory of a remote endpoint does not take the pod off the node",
		Sticky: internal,
		Memory: seen(internal, "10.244.2.23:8080", pod, 0),
		Pkt:    Packet{Src: pod, Dst: "10.96.0.21:80", Proto: "tcp"},
		Want:   []string{"DNAT 10.244.1.23:8080", "DNAT 10.244.1.24:8080"},
		State:  affinityState,
	}, {
		Name:   "IPv6: with no memory, a pod may land on any endpoint",
		Sticky: sticky6,
		Pkt:    Packet{Src: pod6, Dst: "[fd00:10:96::19]:80", Proto: "tcp"},
		Want:   []string{"DNAT [fd00:10:244:1::19]:8080", "DNAT [fd00:10:244:2::19]:8080"},
		State:  affinityState,
	}, {
		Name:   "IPv6: a pod goes back to its last endpoint",
		Sticky: sticky6,
		Memory: seen(sticky6, "[fd00:10:244:2::19]:8080", pod6, 0),
		Pkt:    Packet{Src: pod6, Dst: "[fd00:10:96::19]:80", Proto: "tcp"},
		Want:   []string{"DNAT [fd00:10:244:2::19]:8080"},
		State:  affinityState,
	}, {
		Name:   "IPv6: its neighbour is not pinned",
		Sticky: sticky6,
		Memory: seen(sticky6, "[fd00:10:244:2::19]:8080", pod6, 0),
		Pkt:    Packet{Src: neighbour6, Dst: "[fd00:10:96::19]:80", Proto: "tcp"},
		Want:   []string{"DNAT [fd00:10:244:1::19]:8080", "DNAT [fd00:10:244:2::19]:8080"},
		State:  affinityState,
	}}
}

// portNamed returns the IPv4 service port of st named name.
func portNamed(st *model.State, name string) *model.ServicePort {
	for _, p := range st.IPv4.ServicePorts {
		if p.Name.Name == name {
			return p
		}
	}
	panic("no service port " + name)
}
