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

package controllers

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// Addresses here come from the suite's ranges: 10.96.0.0/12 and fd00:10:96::/108 for
// ClusterIPs, 30000-32767 for node ports. 192.0.2.0/24 (TEST-NET-1) is "outside the
// range".

const timeout = 20 * time.Second

func newNamespace() string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "alloc-"}}
	Expect(k8sClient.Create(suiteCtx, ns)).To(Succeed())
	return ns.Name
}

func service(ns, name string, mutate ...func(*v1alpha1.Service)) *v1alpha1.Service {
	svc := &v1alpha1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []v1alpha1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	for _, m := range mutate {
		m(svc)
	}
	return svc
}

func ofType(t corev1.ServiceType) func(*v1alpha1.Service) {
	return func(s *v1alpha1.Service) { s.Spec.Type = t }
}

func create(svc *v1alpha1.Service) *v1alpha1.Service {
	GinkgoHelper()
	Expect(k8sClient.Create(suiteCtx, svc)).To(Succeed())
	return svc
}

func get(svc *v1alpha1.Service) *v1alpha1.Service {
	GinkgoHelper()
	out := &v1alpha1.Service{}
	Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(svc), out)).To(Succeed())
	return out
}

// allocated waits for the Allocated condition of the current generation to be True and
// returns the Service.
func allocated(svc *v1alpha1.Service) *v1alpha1.Service {
	GinkgoHelper()
	return conditionOf(svc, metav1.ConditionTrue, "")
}

// conditionOf waits for the Allocated condition of the current generation to have the
// given status (and reason, when not empty) and returns the Service.
func conditionOf(svc *v1alpha1.Service, status metav1.ConditionStatus, reason string) *v1alpha1.Service {
	GinkgoHelper()
	var out *v1alpha1.Service
	Eventually(func(g Gomega) {
		out = &v1alpha1.Service{}
		g.Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(svc), out)).To(Succeed())
		c := meta.FindStatusCondition(out.Status.Conditions, ConditionAllocated)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.ObservedGeneration).To(Equal(out.Generation))
		g.Expect(c.Status).To(Equal(status), c.Message)
		if reason != "" {
			g.Expect(c.Reason).To(Equal(reason))
		}
	}, timeout, 50*time.Millisecond).Should(Succeed())
	return out
}

func allocatedCondition(svc *v1alpha1.Service) *metav1.Condition {
	return meta.FindStatusCondition(svc.Status.Conditions, ConditionAllocated)
}

func update(svc *v1alpha1.Service, mutate func(*v1alpha1.Service)) {
	GinkgoHelper()
	Eventually(func() error {
		cur := get(svc)
		mutate(cur)
		return k8sClient.Update(suiteCtx, cur)
	}, timeout).Should(Succeed())
}

func remove(svc *v1alpha1.Service) {
	GinkgoHelper()
	Expect(k8sClient.Delete(suiteCtx, svc)).To(Succeed())
}

// warningEvents returns the reasons and notes of Warning events about svc.
func warningEvents(svc *v1alpha1.Service) []string {
	GinkgoHelper()
	list := &eventsv1.EventList{}
	Expect(k8sClient.List(suiteCtx, list, client.InNamespace(svc.Namespace))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == svc.Name && e.Regarding.Kind == "Service" && e.Type == corev1.EventTypeWarning {
			out = append(out, e.Reason+": "+e.Note)
		}
	}
	return out
}

func inCIDR(cidr string) OmegaMatcher {
	p := netip.MustParsePrefix(cidr)
	return WithTransform(func(s string) bool {
		ip, err := netip.ParseAddr(s)
		return err == nil && p.Contains(ip)
	}, BeTrue())
}

func nodePorts(svc *v1alpha1.Service) []int32 {
	var out []int32
	for _, p := range svc.Status.Ports {
		out = append(out, p.NodePort)
	}
	return out
}

var _ = Describe("Allocation", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	Context("ClusterIP Services", func() {
		It("allocates an address from the primary range and shows kubectl's columns", func() {
			svc := allocated(create(service(ns, "web")))
			Expect(svc.Status.ClusterIP).To(inCIDR("10.96.0.0/12"))
			Expect(svc.Status.ClusterIPs).To(Equal([]string{svc.Status.ClusterIP}))
			Expect(svc.Status.IPFamilies).To(Equal([]corev1.IPFamily{corev1.IPv4Protocol}))
			Expect(svc.Status.Ports).To(Equal([]v1alpha1.ServicePortStatus{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}))
			Expect(svc.Status.Display).To(Equal(v1alpha1.ServiceDisplay{ExternalIP: "<none>", Ports: "80/TCP"}))
			Expect(svc.Status.ObservedGeneration).To(Equal(svc.Generation))
			Expect(svc.Spec.ClusterIP).To(BeEmpty(), "controllers never write spec")
			Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeClusterIP), "type defaults to ClusterIP")
			Expect(svc.Spec.SessionAffinity).To(Equal(corev1.ServiceAffinityNone))
		})

		It("writes status once and then leaves a settled Service alone", func() {
			svc := allocated(create(service(ns, "quiet")))
			rv := svc.ResourceVersion
			Consistently(func() string { return get(svc).ResourceVersion }, 3*time.Second, 200*time.Millisecond).Should(Equal(rv))
		})

		It("honours a requested address", func() {
			svc := allocated(create(service(ns, "chosen", func(s *v1alpha1.Service) { s.Spec.ClusterIP = "10.96.200.10" })))
			Expect(svc.Status.ClusterIPs).To(Equal([]string{"10.96.200.10"}))
		})

		It("reports a requested address that is taken, keeps the Service, and allocates it once freed", func() {
			first := allocated(create(service(ns, "owner", func(s *v1alpha1.Service) { s.Spec.ClusterIP = "10.96.200.20" })))
			second := conditionOf(create(service(ns, "late", func(s *v1alpha1.Service) { s.Spec.ClusterIP = "10.96.200.20" })),
				metav1.ConditionFalse, "ClusterIPAlreadyAllocated")
			Expect(allocatedCondition(second).Message).To(Equal(`spec.clusterIPs[0]: Invalid value: "10.96.200.20": failed to allocate IP 10.96.200.20: provided IP is already allocated`))
			Expect(second.Status.ClusterIPs).To(BeEmpty())
			Eventually(func() []string { return warningEvents(second) }, timeout).Should(ContainElement(ContainSubstring("ClusterIPAlreadyAllocated: spec.clusterIPs[0]")))
			Expect(get(second).Spec.ClusterIP).To(Equal("10.96.200.20"), "the request is kept")

			remove(first)
			second = allocated(second)
			Expect(second.Status.ClusterIPs).To(Equal([]string{"10.96.200.20"}))
		})

		It("keeps what a Service holds when an update asks for a taken address", func() {
			allocated(create(service(ns, "holder", func(s *v1alpha1.Service) { s.Spec.ClusterIP = "10.96.200.30" })))
			mover := allocated(create(service(ns, "mover")))
			before := mover.Status.ClusterIP
			update(mover, func(s *v1alpha1.Service) { s.Spec.ClusterIP = "10.96.200.30" })
			mover = conditionOf(mover, metav1.ConditionFalse, "ClusterIPAlreadyAllocated")
			Expect(mover.Status.ClusterIP).To(Equal(before), "nothing already allocated is lost")
		})

		It("rejects a requested address outside the range with kube's words", func() {
			svc := conditionOf(create(service(ns, "outside", func(s *v1alpha1.Service) { s.Spec.ClusterIP = "192.0.2.10" })),
				metav1.ConditionFalse, "ClusterIPOutOfRange")
			Expect(allocatedCondition(svc).Message).To(ContainSubstring("the provided IP (192.0.2.10) is not in the valid range. The range of valid IPs is 10.96.0.0/12"))
		})

		It("releases a deleted Service's address for reuse", func() {
			svc := allocated(create(service(ns, "gone", func(s *v1alpha1.Service) { s.Spec.ClusterIP = "10.96.200.40" })))
			remove(svc)
			again := allocated(create(service(ns, "reuse", func(s *v1alpha1.Service) { s.Spec.ClusterIP = "10.96.200.40" })))
			Expect(again.Status.ClusterIP).To(Equal("10.96.200.40"))
		})

		It("gives a headless Service no address", func() {
			svc := allocated(create(service(ns, "headless", func(s *v1alpha1.Service) { s.Spec.ClusterIP = v1alpha1.ClusterIPNone })))
			Expect(svc.Status.ClusterIP).To(Equal("None"))
			Expect(svc.Status.ClusterIPs).To(Equal([]string{"None"}))
			Expect(svc.Status.IPFamilies).To(Equal([]corev1.IPFamily{corev1.IPv4Protocol}))
			Expect(nodePorts(svc)).To(Equal([]int32{0}))
		})

		It("gives an ExternalName Service no address and no ports", func() {
			svc := allocated(create(service(ns, "alias", ofType(corev1.ServiceTypeExternalName), func(s *v1alpha1.Service) {
				s.Spec.ExternalName = "db.example.com"
				s.Spec.Selector = nil
			})))
			Expect(svc.Status.ClusterIP).To(BeEmpty())
			Expect(svc.Status.ClusterIPs).To(BeEmpty())
			Expect(svc.Status.Ports).To(BeEmpty())
			Expect(svc.Status.Display.ExternalIP).To(Equal("db.example.com"))
		})
	})

	Context("NodePort and LoadBalancer Services", func() {
		It("allocates a node port for every port, honours a requested one, and shares one between TCP and UDP", func() {
			svc := allocated(create(service(ns, "np", ofType(corev1.ServiceTypeNodePort), func(s *v1alpha1.Service) {
				s.Spec.Ports = []v1alpha1.ServicePort{
					{Name: "http", Port: 80},
					{Name: "fixed", Port: 443, NodePort: 30443},
					{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
					{Name: "dns-udp", Port: 53, Protocol: corev1.ProtocolUDP},
				}
			})))
			ports := nodePorts(svc)
			Expect(ports).To(HaveLen(4))
			Expect(ports[1]).To(Equal(int32(30443)))
			Expect(ports[0]).To(And(BeNumerically(">=", 30000), BeNumerically("<=", 32767)))
			Expect(ports[0]).NotTo(Equal(ports[1]))
			Expect(ports[2]).To(Equal(ports[3]), "TCP and UDP of one port number share a node port")
			Expect(svc.Status.Display.Ports).To(Equal(fmt.Sprintf("80:%d/TCP,443:30443/TCP,53:%d/TCP,53:%d/UDP", ports[0], ports[2], ports[2])))
		})

		It("reports a requested node port that is taken", func() {
			allocated(create(service(ns, "np-a", ofType(corev1.ServiceTypeNodePort), func(s *v1alpha1.Service) { s.Spec.Ports[0].NodePort = 30555 })))
			b := conditionOf(create(service(ns, "np-b", ofType(corev1.ServiceTypeNodePort), func(s *v1alpha1.Service) { s.Spec.Ports[0].NodePort = 30555 })),
				metav1.ConditionFalse, "PortAlreadyAllocated")
			Expect(allocatedCondition(b).Message).To(Equal("spec.ports[0].nodePort: Invalid value: 30555: provided port is already allocated"))
			Expect(b.Status.ClusterIPs).To(BeEmpty(), "nothing is half-applied")
			Eventually(func() []string { return warningEvents(b) }, timeout).Should(ContainElement(HavePrefix("PortAlreadyAllocated: ")))
		})

		It("rejects a requested node port outside the range", func() {
			svc := conditionOf(create(service(ns, "np-out", ofType(corev1.ServiceTypeNodePort), func(s *v1alpha1.Service) { s.Spec.Ports[0].NodePort = 8080 })),
				metav1.ConditionFalse, "PortOutOfRange")
			Expect(allocatedCondition(svc).Message).To(Equal("spec.ports[0].nodePort: Invalid value: 8080: the provided port (8080) is not in the valid range. The range of valid ports is 30000-32767"))
		})

		It("gives LoadBalancer Services node ports and, with externalTrafficPolicy Local, a health check node port", func() {
			svc := allocated(create(service(ns, "lb", ofType(corev1.ServiceTypeLoadBalancer), func(s *v1alpha1.Service) {
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			})))
			Expect(svc.Status.ClusterIP).To(inCIDR("10.96.0.0/12"))
			Expect(nodePorts(svc)[0]).NotTo(BeZero())
			Expect(svc.Status.HealthCheckNodePort).To(And(BeNumerically(">=", 30000), BeNumerically("<=", 32767)))
			Expect(svc.Status.HealthCheckNodePort).NotTo(Equal(nodePorts(svc)[0]))
			Expect(svc.Status.Display.ExternalIP).To(Equal("<pending>"))

			By("switching to Cluster the health check node port is released")
			update(svc, func(s *v1alpha1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster })
			Expect(allocated(svc).Status.HealthCheckNodePort).To(BeZero())
		})

		It("skips node ports with allocateLoadBalancerNodePorts: false but honours requested ones", func() {
			svc := allocated(create(service(ns, "lb-nonp", ofType(corev1.ServiceTypeLoadBalancer), func(s *v1alpha1.Service) {
				s.Spec.AllocateLoadBalancerNodePorts = ptr.To(false)
				s.Spec.Ports = append(s.Spec.Ports, v1alpha1.ServicePort{Name: "fixed", Port: 81, NodePort: 30081})
			})))
			Expect(nodePorts(svc)).To(Equal([]int32{0, 30081}))
		})
	})

	Context("type changes", func() {
		It("allocates what is newly needed and releases what is not, keeping the address", func() {
			svc := allocated(create(service(ns, "morph")))
			ip := svc.Status.ClusterIP

			update(svc, func(s *v1alpha1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort; s.Spec.Ports[0].NodePort = 30777 })
			svc = allocated(svc)
			Expect(svc.Status.ClusterIP).To(Equal(ip))
			Expect(nodePorts(svc)).To(Equal([]int32{30777}))

			update(svc, func(s *v1alpha1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP; s.Spec.Ports[0].NodePort = 0 })
			svc = allocated(svc)
			Expect(svc.Status.ClusterIP).To(Equal(ip))
			Expect(nodePorts(svc)).To(Equal([]int32{0}))
			By("the released node port can be taken by another Service")
			allocated(create(service(ns, "taker", ofType(corev1.ServiceTypeNodePort), func(s *v1alpha1.Service) { s.Spec.Ports[0].NodePort = 30777 })))

			update(svc, func(s *v1alpha1.Service) {
				s.Spec.Type = corev1.ServiceTypeExternalName
				s.Spec.ExternalName = "example.com"
				s.Spec.Selector = nil
			})
			Expect(allocated(svc).Status.ClusterIPs).To(BeEmpty())
			By("the released address can be requested by another Service")
			allocated(create(service(ns, "reuser", func(s *v1alpha1.Service) { s.Spec.ClusterIP = ip })))
		})

		It("keeps a node port when other ports change", func() {
			svc := allocated(create(service(ns, "grow", ofType(corev1.ServiceTypeNodePort))))
			np := nodePorts(svc)[0]
			update(svc, func(s *v1alpha1.Service) {
				s.Spec.Ports = append(s.Spec.Ports, v1alpha1.ServicePort{Name: "https", Port: 443})
			})
			svc = allocated(svc)
			Expect(nodePorts(svc)[0]).To(Equal(np))
			Expect(nodePorts(svc)[1]).NotTo(BeZero())
		})
	})

	Context("dual-stack", func() {
		It("allocates one address per family with RequireDualStack", func() {
			svc := allocated(create(service(ns, "dual", func(s *v1alpha1.Service) {
				s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
			})))
			Expect(svc.Status.IPFamilies).To(Equal([]corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}))
			Expect(svc.Status.ClusterIPs).To(HaveLen(2))
			Expect(svc.Status.ClusterIPs[0]).To(inCIDR("10.96.0.0/12"))
			Expect(svc.Status.ClusterIPs[1]).To(inCIDR("fd00:10:96::/108"))
		})

		It("puts the requested family first with PreferDualStack", func() {
			svc := allocated(create(service(ns, "v6first", func(s *v1alpha1.Service) {
				s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
				s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
			})))
			Expect(svc.Status.IPFamilies).To(Equal([]corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}))
			Expect(svc.Status.ClusterIP).To(inCIDR("fd00:10:96::/108"))
		})

		It("honours requested addresses of both families and grows from single to dual stack", func() {
			svc := allocated(create(service(ns, "pair", func(s *v1alpha1.Service) {
				s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
				s.Spec.ClusterIPs = []string{"fd00:10:96::a", "10.96.200.50"}
			})))
			Expect(svc.Status.ClusterIPs).To(Equal([]string{"fd00:10:96::a", "10.96.200.50"}))

			single := allocated(create(service(ns, "grower")))
			v4 := single.Status.ClusterIP
			update(single, func(s *v1alpha1.Service) { s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack) })
			single = allocated(single)
			Expect(single.Status.ClusterIPs).To(HaveLen(2))
			Expect(single.Status.ClusterIPs[0]).To(Equal(v4))
		})
	})

	Context("admission", func() {
		DescribeTable("rejects what kube-apiserver rejects",
			func(mutate func(*v1alpha1.Service), message string) {
				err := k8sClient.Create(suiteCtx, service(ns, "bad", mutate))
				Expect(err).To(HaveOccurred())
				Expect(err.Error()).To(ContainSubstring(message))
			},
			Entry("ExternalName without externalName", func(s *v1alpha1.Service) { s.Spec.Type = corev1.ServiceTypeExternalName },
				"spec.externalName: Required value: must be specified when `type` is 'ExternalName'"),
			Entry("externalName on a ClusterIP Service", func(s *v1alpha1.Service) { s.Spec.ExternalName = "example.com" },
				"spec.externalName: Forbidden: may only be set when `type` is 'ExternalName'"),
			Entry("headless NodePort", func(s *v1alpha1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.ClusterIP = v1alpha1.ClusterIPNone
			}, "may not be set to 'None' for NodePort services"),
			Entry("nodePort on a ClusterIP Service", func(s *v1alpha1.Service) { s.Spec.Ports[0].NodePort = 30001 },
				"nodePort may not be used when `type` is 'ClusterIP'"),
			Entry("a malformed address", func(s *v1alpha1.Service) { s.Spec.ClusterIP = "10.96.0.300" },
				"must be a valid IP address"),
			Entry("duplicate port names", func(s *v1alpha1.Service) {
				s.Spec.Ports = append(s.Spec.Ports, v1alpha1.ServicePort{Name: "http", Port: 81})
			}, "port names must be unique"),
			Entry("an unnamed port among several", func(s *v1alpha1.Service) {
				s.Spec.Ports = append(s.Spec.Ports, v1alpha1.ServicePort{Port: 81})
			}, "a name is required for every port when more than one port is defined"),
			Entry("a duplicate port and protocol", func(s *v1alpha1.Service) {
				s.Spec.Ports = append(s.Spec.Ports, v1alpha1.ServicePort{Name: "again", Port: 80})
			}, "Duplicate value"),
			Entry("an unknown protocol", func(s *v1alpha1.Service) { s.Spec.Ports[0].Protocol = "ICMP" },
				`Unsupported value: "ICMP"`),
			Entry("a port out of range", func(s *v1alpha1.Service) { s.Spec.Ports[0].Port = 70000 },
				"should be less than or equal to 65535"),
			Entry("a bad named targetPort", func(s *v1alpha1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("Not_A_Name") },
				"IANA service name"),
			Entry("SingleStack with two families", func(s *v1alpha1.Service) {
				s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
				s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
			}, "must be 'RequireDualStack' or 'PreferDualStack'"),
			Entry("two addresses of one family", func(s *v1alpha1.Service) {
				s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
				s.Spec.ClusterIPs = []string{"10.96.0.10", "10.96.0.11"}
			}, "may specify no more than one IP for each IP family"),
			Entry("a timeout above one day", func(s *v1alpha1.Service) {
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &v1alpha1.SessionAffinityConfig{ClientIP: &v1alpha1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(86401))}}
			}, "should be less than or equal to 86400"),
			Entry("externalTrafficPolicy on an internal Service", func(s *v1alpha1.Service) {
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			}, "may only be set for externally-accessible services"),
			Entry("no ports", func(s *v1alpha1.Service) { s.Spec.Ports = nil },
				"at least one port is required"),
		)

		It("defaults the ClientIP timeout to three hours", func() {
			svc := create(service(ns, "sticky", func(s *v1alpha1.Service) {
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &v1alpha1.SessionAffinityConfig{ClientIP: &v1alpha1.ClientIPConfig{}}
			}))
			Expect(*get(svc).Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds).To(Equal(int32(10800)))
		})
	})

	It("gives 200 Services created at once 200 distinct addresses and node ports", func() {
		const n = 200
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- k8sClient.Create(suiteCtx, service(ns, fmt.Sprintf("burst-%03d", i), ofType(corev1.ServiceTypeNodePort)))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			Expect(err).NotTo(HaveOccurred())
		}
		Eventually(func(g Gomega) {
			list := &v1alpha1.ServiceList{}
			g.Expect(k8sClient.List(suiteCtx, list, client.InNamespace(ns))).To(Succeed())
			g.Expect(list.Items).To(HaveLen(n))
			ips, ports := map[string]bool{}, map[int32]bool{}
			for _, svc := range list.Items {
				c := allocatedCondition(&svc)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
				g.Expect(svc.Status.ClusterIP).To(inCIDR("10.96.0.0/12"))
				ips[svc.Status.ClusterIP] = true
				ports[svc.Status.Ports[0].NodePort] = true
			}
			g.Expect(ips).To(HaveLen(n), "distinct cluster IPs")
			g.Expect(ports).To(HaveLen(n), "distinct node ports")
		}, 60*time.Second, 250*time.Millisecond).Should(Succeed())
	})
})

// These containers replace the suite's manager, so they run one at a time.
var _ = Describe("Allocation across manager restarts", Serial, Ordered, func() {
	var ns string
	BeforeAll(func() { ns = newNamespace() })

	It("keeps every allocation and hands out no duplicate afterwards", func() {
		var before []*v1alpha1.Service
		for i := range 10 {
			before = append(before, allocated(create(service(ns, fmt.Sprintf("keep-%d", i), ofType(corev1.ServiceTypeNodePort)))))
		}
		swapManager(suiteServiceCIDRs, suiteNodePorts)
		ips, ports := map[string]bool{}, map[int32]bool{}
		for _, svc := range before {
			after := allocated(svc)
			Expect(after.Status.ClusterIPs).To(Equal(svc.Status.ClusterIPs))
			Expect(after.Status.Ports).To(Equal(svc.Status.Ports))
			ips[after.Status.ClusterIP], ports[after.Status.Ports[0].NodePort] = true, true
		}
		By("new Services after the restart get values nobody holds")
		for i := range 20 {
			svc := allocated(create(service(ns, fmt.Sprintf("fresh-%d", i), ofType(corev1.ServiceTypeNodePort))))
			Expect(ips).NotTo(HaveKey(svc.Status.ClusterIP))
			Expect(ports).NotTo(HaveKey(svc.Status.Ports[0].NodePort))
			ips[svc.Status.ClusterIP], ports[svc.Status.Ports[0].NodePort] = true, true
		}
		Expect(current.book.Usage()[0].Used).To(BeNumerically(">=", 30))
	})

	It("repairs a status that claims another Service's address, older Service first", func() {
		older := allocated(create(service(ns, "older")))
		younger := allocated(create(service(ns, "younger")))
		current.stop()
		// While no manager runs, make the younger Service's status claim the older one's
		// address: what a lost update or a restored backup could leave behind.
		patched := younger.DeepCopy()
		patched.Status.ClusterIP = older.Status.ClusterIP
		patched.Status.ClusterIPs = older.Status.ClusterIPs
		Expect(k8sClient.Status().Update(suiteCtx, patched)).To(Succeed())

		current = startManager(suiteServiceCIDRs, suiteNodePorts)
		Eventually(func(g Gomega) {
			y := get(younger)
			g.Expect(y.Status.ClusterIP).NotTo(BeEmpty())
			g.Expect(y.Status.ClusterIP).NotTo(Equal(older.Status.ClusterIP))
		}, timeout).Should(Succeed())
		Expect(get(older).Status.ClusterIP).To(Equal(older.Status.ClusterIP), "the older Service keeps its address")
		Eventually(func() []string { return warningEvents(younger) }, timeout).Should(ContainElement(HavePrefix("ClusterIPAlreadyAllocated: ")))
	})

	It("moves Services whose addresses are outside a new range", func() {
		svc := allocated(create(service(ns, "moved")))
		swapManager("10.112.0.0/22,fd00:10:96::/108", suiteNodePorts)
		Eventually(func() string { return get(svc).Status.ClusterIP }, timeout).Should(inCIDR("10.112.0.0/22"))
		Eventually(func() []string { return warningEvents(svc) }, timeout).Should(ContainElement(HavePrefix("ClusterIPOutOfRange: ")))
	})

	AfterAll(func() {
		// Leave no Services behind that a later container's ranges would reject.
		Expect(k8sClient.DeleteAllOf(suiteCtx, &v1alpha1.Service{}, client.InNamespace(ns))).To(Succeed())
		swapManager(suiteServiceCIDRs, suiteNodePorts)
	})
})

var _ = Describe("An exhausted range", Serial, Ordered, func() {
	var ns string
	BeforeAll(func() {
		// Every Service in the cluster must fit the tiny ranges: earlier containers'
		// Services would be moved into them otherwise.
		list := &v1alpha1.ServiceList{}
		Expect(k8sClient.List(suiteCtx, list)).To(Succeed())
		for i := range list.Items {
			Expect(client.IgnoreNotFound(k8sClient.Delete(suiteCtx, &list.Items[i]))).To(Succeed())
		}
		ns = newNamespace()
		// 10.100.0.0/29 holds 6 usable addresses; the node port range holds 3 ports.
		swapManager("10.100.0.0/29", "30000-30002")
	})
	AfterAll(func() {
		Expect(k8sClient.DeleteAllOf(suiteCtx, &v1alpha1.Service{}, client.InNamespace(ns))).To(Succeed())
		swapManager(suiteServiceCIDRs, suiteNodePorts)
	})

	It("reports 'range is full' and allocates as soon as a Service is deleted", func() {
		var held []*v1alpha1.Service
		for i := range 6 {
			held = append(held, allocated(create(service(ns, fmt.Sprintf("ip-%d", i)))))
		}
		waiting := conditionOf(create(service(ns, "waiting")), metav1.ConditionFalse, "ClusterIPRangeFull")
		Expect(allocatedCondition(waiting).Message).To(HavePrefix("failed to allocate a serviceIP: range is full"))
		Eventually(func() []string { return warningEvents(waiting) }, timeout).Should(ContainElement(HavePrefix("ClusterIPRangeFull: ")))

		freed := held[2].Status.ClusterIP
		remove(held[2])
		// Well inside the 30 s fallback retry: the release itself triggers the retry.
		Eventually(func() string { return get(waiting).Status.ClusterIP }, 10*time.Second, 50*time.Millisecond).Should(Equal(freed))
	})

	It("does the same for node ports", func() {
		Expect(k8sClient.DeleteAllOf(suiteCtx, &v1alpha1.Service{}, client.InNamespace(ns))).To(Succeed())
		var held []*v1alpha1.Service
		for i := range 3 {
			Eventually(func() error {
				return k8sClient.Create(suiteCtx, service(ns, fmt.Sprintf("np-%d", i), ofType(corev1.ServiceTypeNodePort)))
			}, timeout).Should(Succeed())
			held = append(held, allocated(&v1alpha1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("np-%d", i)}}))
		}
		waiting := conditionOf(create(service(ns, "np-waiting", ofType(corev1.ServiceTypeNodePort))), metav1.ConditionFalse, "NodePortRangeFull")
		Expect(allocatedCondition(waiting).Message).To(HavePrefix("failed to allocate a nodePort: range is full"))
		Expect(waiting.Status.ClusterIPs).To(BeEmpty(), "no address is held by a Service that could not get everything")

		update(held[0], func(s *v1alpha1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP })
		Eventually(func() []int32 { return nodePorts(get(waiting)) }, 10*time.Second, 50*time.Millisecond).Should(Equal(nodePorts(held[0])))
		Expect(strings.Join(get(waiting).Status.ClusterIPs, ",")).To(inCIDR("10.100.0.0/29"))
	})
})
