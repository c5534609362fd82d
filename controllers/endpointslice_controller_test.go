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
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// Pod IPs here come from 10.244.0.0/16 and fd00:10:244::/64. There is no kubelet:
// pods get their IPs and Ready condition through the status subresource, and a pod
// bound to a node stays terminating after a graceful delete until it is force-deleted.

type podSpec struct {
	name     string
	labels   map[string]string
	ips      []string
	ready    bool
	node     string
	httpPort int32 // the container port named "http"; 0 for none
}

func createPod(ns string, p podSpec) *corev1.Pod {
	GinkgoHelper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: p.name, Labels: p.labels},
		Spec: corev1.PodSpec{
			NodeName:   p.node,
			Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app"}},
		},
	}
	if p.httpPort != 0 {
		pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: p.httpPort}}
	}
	Expect(k8sClient.Create(suiteCtx, pod)).To(Succeed())
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = p.ips[0]
	for _, ip := range p.ips {
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: condition(p.ready)}}
	Expect(k8sClient.Status().Update(suiteCtx, pod)).To(Succeed())
	return pod
}

func condition(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}

func setReady(pod *corev1.Pod, ready bool) {
	GinkgoHelper()
	Eventually(func() error {
		cur := &corev1.Pod{}
		if err := k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(pod), cur); err != nil {
			return err
		}
		cur.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: condition(ready)}}
		return k8sClient.Status().Update(suiteCtx, cur)
	}, timeout).Should(Succeed())
}

func slicesOf(svc *v1alpha1.Service) []discoveryv1.EndpointSlice {
	GinkgoHelper()
	list := &discoveryv1.EndpointSliceList{}
	Expect(k8sClient.List(suiteCtx, list, client.InNamespace(svc.Namespace),
		client.MatchingLabels{v1alpha1.LabelServiceName: svc.Name, v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue})).To(Succeed())
	return list.Items
}

// endpointsOf maps pod name to endpoint over all the Service's slices of one type.
func endpointsOf(svc *v1alpha1.Service, at discoveryv1.AddressType) map[string]discoveryv1.Endpoint {
	out := map[string]discoveryv1.Endpoint{}
	for _, s := range slicesOf(svc) {
		if s.AddressType != at {
			continue
		}
		for _, ep := range s.Endpoints {
			out[ep.TargetRef.Name] = ep
		}
	}
	return out
}

// readyOf returns an endpoint's ready, serving and terminating conditions; a missing
// endpoint (the zero value) reads as all false.
func readyOf(ep discoveryv1.Endpoint) [3]bool {
	flag := func(b *bool) bool { return b != nil && *b }
	return [3]bool{flag(ep.Conditions.Ready), flag(ep.Conditions.Serving), flag(ep.Conditions.Terminating)}
}

var _ = Describe("EndpointSlices", func() {
	var ns string
	web := map[string]string{"app": "web"}
	BeforeEach(func() { ns = newNamespace() })

	webService := func(name string, mutate ...func(*v1alpha1.Service)) *v1alpha1.Service {
		return create(service(ns, name, append([]func(*v1alpha1.Service){func(s *v1alpha1.Service) {
			s.Spec.Selector = web
			s.Spec.Ports = []v1alpha1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}
		}}, mutate...)...))
	}

	It("lists ready pods with their node, zone, target and resolved port", func() {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{GenerateName: "node-", Labels: map[string]string{corev1.LabelTopologyZone: "zone-a"}}}
		Expect(k8sClient.Create(suiteCtx, node)).To(Succeed())
		DeferCleanup(func() { Expect(k8sClient.Delete(suiteCtx, node)).To(Succeed()) })
		svc := webService("web", func(s *v1alpha1.Service) { s.Labels = map[string]string{"team": "blue"} })
		pod := createPod(ns, podSpec{name: "web-1", labels: web, ips: []string{"10.244.1.5"}, ready: true, node: node.Name, httpPort: 8080})
		createPod(ns, podSpec{name: "other", labels: map[string]string{"app": "db"}, ips: []string{"10.244.1.6"}, ready: true, httpPort: 8080})

		var list []discoveryv1.EndpointSlice
		Eventually(func(g Gomega) {
			list = slicesOf(svc)
			g.Expect(list).To(HaveLen(1))
			g.Expect(list[0].Endpoints).NotTo(BeEmpty())
		}, timeout).Should(Succeed())
		s := list[0]
		Expect(s.Labels).To(Equal(map[string]string{
			"team":                                   "blue",
			"networking.svcplane.io/service-name":    "web",
			"endpointslice.kubernetes.io/managed-by": "endpointslice.svcplane.io",
		}))
		Expect(s.Labels).NotTo(HaveKey("kubernetes.io/service-name"))
		Expect(metav1.IsControlledBy(&s, get(svc))).To(BeTrue())
		Expect(s.Ports).To(HaveLen(1))
		Expect(*s.Ports[0].Port).To(Equal(int32(8080)))
		Expect(*s.Ports[0].Name).To(Equal("http"))
		Expect(s.Endpoints).To(HaveLen(1), "only selected pods")
		ep := s.Endpoints[0]
		Expect(ep.Addresses).To(Equal([]string{"10.244.1.5"}))
		Expect(readyOf(ep)).To(Equal([3]bool{true, true, false}))
		Expect(*ep.NodeName).To(Equal(node.Name))
		Expect(*ep.Zone).To(Equal("zone-a"))
		Expect(ep.TargetRef.UID).To(Equal(pod.UID))
	})

	It("follows readiness, termination and deletion", func() {
		svc := webService("flip")
		pod := createPod(ns, podSpec{name: "p", labels: web, ips: []string{"10.244.2.1"}, ready: true, node: "node-x", httpPort: 8080})
		Eventually(func() [3]bool { return readyOf(endpointsOf(svc, discoveryv1.AddressTypeIPv4)["p"]) }, timeout).Should(Equal([3]bool{true, true, false}))

		setReady(pod, false)
		Eventually(func() [3]bool { return readyOf(endpointsOf(svc, discoveryv1.AddressTypeIPv4)["p"]) }, timeout).Should(Equal([3]bool{false, false, false}))
		setReady(pod, true)
		Eventually(func() [3]bool { return readyOf(endpointsOf(svc, discoveryv1.AddressTypeIPv4)["p"]) }, timeout).Should(Equal([3]bool{true, true, false}))

		By("a graceful delete leaves the pod terminating (no kubelet finishes it)")
		Expect(k8sClient.Delete(suiteCtx, pod)).To(Succeed())
		Eventually(func() [3]bool { return readyOf(endpointsOf(svc, discoveryv1.AddressTypeIPv4)["p"]) }, timeout).Should(Equal([3]bool{false, true, true}))

		By("a forced delete removes it")
		Expect(k8sClient.Delete(suiteCtx, pod, client.GracePeriodSeconds(0))).To(Succeed())
		Eventually(func() map[string]discoveryv1.Endpoint { return endpointsOf(svc, discoveryv1.AddressTypeIPv4) }, timeout).Should(BeEmpty())
		Expect(slicesOf(svc)).To(HaveLen(1), "an empty placeholder slice stays, as kube keeps one")
	})

	It("moves pods in and out on label and selector changes", func() {
		svc := webService("moves")
		pod := createPod(ns, podSpec{name: "m", labels: web, ips: []string{"10.244.3.1"}, ready: true, httpPort: 8080})
		createPod(ns, podSpec{name: "n", labels: map[string]string{"app": "api"}, ips: []string{"10.244.3.2"}, ready: true, httpPort: 8080})
		Eventually(func() map[string]discoveryv1.Endpoint { return endpointsOf(svc, discoveryv1.AddressTypeIPv4) }, timeout).Should(HaveKey("m"))

		Eventually(func() error {
			cur := &corev1.Pod{}
			Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(pod), cur)).To(Succeed())
			cur.Labels = map[string]string{"app": "elsewhere"}
			return k8sClient.Update(suiteCtx, cur)
		}, timeout).Should(Succeed())
		Eventually(func() map[string]discoveryv1.Endpoint { return endpointsOf(svc, discoveryv1.AddressTypeIPv4) }, timeout).ShouldNot(HaveKey("m"))

		update(svc, func(s *v1alpha1.Service) { s.Spec.Selector = map[string]string{"app": "api"} })
		Eventually(func() []string {
			var names []string
			for name := range endpointsOf(svc, discoveryv1.AddressTypeIPv4) {
				names = append(names, name)
			}
			return names
		}, timeout).Should(ConsistOf("n"))

		By("removing the selector removes the managed slices")
		update(svc, func(s *v1alpha1.Service) { s.Spec.Selector = nil })
		Eventually(func() []discoveryv1.EndpointSlice { return slicesOf(svc) }, timeout).Should(BeEmpty())
	})

	It("splits pods that resolve a named port differently, and leaves out pods without it", func() {
		svc := webService("named")
		createPod(ns, podSpec{name: "a", labels: web, ips: []string{"10.244.4.1"}, ready: true, httpPort: 8080})
		createPod(ns, podSpec{name: "b", labels: web, ips: []string{"10.244.4.2"}, ready: true, httpPort: 9090})
		createPod(ns, podSpec{name: "c", labels: web, ips: []string{"10.244.4.3"}, ready: true})
		Eventually(func(g Gomega) {
			byPort := map[string][]string{}
			for _, s := range slicesOf(svc) {
				port := "none"
				if len(s.Ports) == 1 {
					port = fmt.Sprint(*s.Ports[0].Port)
				}
				for _, ep := range s.Endpoints {
					byPort[port] = append(byPort[port], ep.TargetRef.Name)
				}
			}
			g.Expect(byPort).To(Equal(map[string][]string{"8080": {"a"}, "9090": {"b"}, "none": {"c"}}))
		}, timeout).Should(Succeed())
	})

	It("keeps one set of slices per address family and marks headless Services", func() {
		svc := webService("dual", func(s *v1alpha1.Service) {
			s.Spec.ClusterIP = v1alpha1.ClusterIPNone
			s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		})
		createPod(ns, podSpec{name: "d", labels: web, ips: []string{"10.244.5.1", "fd00:10:244::5:1"}, ready: true, httpPort: 8080})
		createPod(ns, podSpec{name: "v4only", labels: web, ips: []string{"10.244.5.2"}, ready: true, httpPort: 8080})
		Eventually(func(g Gomega) {
			g.Expect(endpointsOf(svc, discoveryv1.AddressTypeIPv4)).To(HaveLen(2))
			g.Expect(endpointsOf(svc, discoveryv1.AddressTypeIPv6)).To(HaveLen(1))
			g.Expect(endpointsOf(svc, discoveryv1.AddressTypeIPv6)["d"].Addresses).To(Equal([]string{"fd00:10:244::5:1"}))
		}, timeout).Should(Succeed())
		for _, s := range slicesOf(svc) {
			Expect(s.Labels).To(HaveKeyWithValue("service.kubernetes.io/headless", ""))
		}
	})

	It("sets hostname for pods whose subdomain is the Service", func() {
		svc := webService("sub", func(s *v1alpha1.Service) { s.Spec.ClusterIP = v1alpha1.ClusterIPNone })
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "h", Labels: web},
			Spec: corev1.PodSpec{Hostname: "h-0", Subdomain: "sub", Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
		}
		Expect(k8sClient.Create(suiteCtx, pod)).To(Succeed())
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.6.1", PodIPs: []corev1.PodIP{{IP: "10.244.6.1"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		Expect(k8sClient.Status().Update(suiteCtx, pod)).To(Succeed())
		Eventually(func() *string { return endpointsOf(svc, discoveryv1.AddressTypeIPv4)["h"].Hostname }, timeout).Should(HaveValue(Equal("h-0")))
	})

	It("deletes a Service's slices itself when the Service is gone", func() {
		svc := webService("doomed")
		createPod(ns, podSpec{name: "x", labels: web, ips: []string{"10.244.7.1"}, ready: true, httpPort: 8080})
		Eventually(func() []discoveryv1.EndpointSlice { return slicesOf(svc) }, timeout).ShouldNot(BeEmpty())
		remove(svc)
		Eventually(func() []discoveryv1.EndpointSlice { return slicesOf(svc) }, timeout).Should(BeEmpty())
	})

	It("puts back a slice edited by hand, and leaves other managers' slices alone", func() {
		svc := webService("guarded", func(s *v1alpha1.Service) { s.Spec.Selector = web })
		createPod(ns, podSpec{name: "g", labels: web, ips: []string{"10.244.8.1"}, ready: true, httpPort: 8080})
		Eventually(func() map[string]discoveryv1.Endpoint { return endpointsOf(svc, discoveryv1.AddressTypeIPv4) }, timeout).Should(HaveKey("g"))

		foreign := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "guarded-manual", Labels: map[string]string{
				v1alpha1.LabelServiceName: "guarded", v1alpha1.LabelManagedBy: "someone-else"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.8.99"}}},
		}
		Expect(k8sClient.Create(suiteCtx, foreign)).To(Succeed())

		s := slicesOf(svc)[0]
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.244.8.66"}})
		s.Endpoints[0].Conditions.Ready = ptr.To(false)
		Expect(k8sClient.Update(suiteCtx, &s)).To(Succeed())
		Eventually(func(g Gomega) {
			list := slicesOf(svc)
			g.Expect(list).To(HaveLen(1))
			g.Expect(list[0].Endpoints).To(HaveLen(1))
			g.Expect(readyOf(list[0].Endpoints[0])).To(Equal([3]bool{true, true, false}))
		}, timeout).Should(Succeed())

		Consistently(func() []discoveryv1.Endpoint {
			cur := &discoveryv1.EndpointSlice{}
			Expect(k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(foreign), cur)).To(Succeed())
			return cur.Endpoints
		}, 2*time.Second).Should(HaveLen(1))
	})

	It("gives Services without a selector and ExternalName Services no managed slices", func() {
		bare := webService("bare", func(s *v1alpha1.Service) { s.Spec.Selector = nil })
		alias := webService("alias", func(s *v1alpha1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = "example.com"
		})
		createPod(ns, podSpec{name: "y", labels: web, ips: []string{"10.244.9.1"}, ready: true, httpPort: 8080})
		allocated(bare)
		allocated(alias)
		Consistently(func() int { return len(slicesOf(bare)) + len(slicesOf(alias)) }, 2*time.Second).Should(BeZero())
	})

	It("stamps each write with the time of the change it reflects", func() {
		svc := webService("stamped")
		pod := createPod(ns, podSpec{name: "s", labels: web, ips: []string{"10.244.11.1"}, ready: true, httpPort: 8080})
		trigger := func() string {
			for _, s := range slicesOf(svc) {
				if len(s.Endpoints) > 0 {
					return s.Annotations[corev1.EndpointsLastChangeTriggerTime]
				}
			}
			return ""
		}
		Eventually(func() [3]bool { return readyOf(endpointsOf(svc, discoveryv1.AddressTypeIPv4)["s"]) }, timeout).Should(Equal([3]bool{true, true, false}))

		By("a readiness flip carries the pod's Ready transition time")
		flipped := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		Eventually(func() error {
			cur := &corev1.Pod{}
			if err := k8sClient.Get(suiteCtx, client.ObjectKeyFromObject(pod), cur); err != nil {
				return err
			}
			cur.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(flipped)}}
			return k8sClient.Status().Update(suiteCtx, cur)
		}, timeout).Should(Succeed())
		Eventually(trigger, timeout).Should(Equal(flipped.Format(time.RFC3339Nano)))
	})

	It("reports slices it cannot write with a Warning event, and writes them once it can", func() {
		// An admission policy stands in for whatever refuses the write (a quota, a
		// webhook, a policy engine).
		policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "deny-slices-" + ns},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{"discovery.k8s.io"}, APIVersions: []string{"v1"}, Resources: []string{"endpointslices"}},
					},
				}}},
				Validations: []admissionregistrationv1.Validation{{Expression: "false", Message: "endpoint slices are frozen here"}},
			},
		}
		binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        policy.Name,
				ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
				MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
					MatchLabels: map[string]string{corev1.LabelMetadataName: ns},
				}},
			},
		}
		Expect(k8sClient.Create(suiteCtx, policy)).To(Succeed())
		Expect(k8sClient.Create(suiteCtx, binding)).To(Succeed())
		DeferCleanup(func() {
			Expect(client.IgnoreNotFound(k8sClient.Delete(suiteCtx, binding))).To(Succeed())
			Expect(client.IgnoreNotFound(k8sClient.Delete(suiteCtx, policy))).To(Succeed())
		})
		// The API server loads policies asynchronously: wait until it enforces this one.
		Eventually(func() error {
			probe := &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: ns, GenerateName: "probe-"},
				AddressType: discoveryv1.AddressTypeIPv4,
			}
			return k8sClient.Create(suiteCtx, probe, client.DryRunAll)
		}, timeout).Should(MatchError(ContainSubstring("endpoint slices are frozen here")))

		svc := webService("frozen")
		createPod(ns, podSpec{name: "f", labels: web, ips: []string{"10.244.12.1"}, ready: true, httpPort: 8080})
		Eventually(func() []string { return warningEvents(svc) }, timeout).Should(ContainElement(And(
			HavePrefix(ReasonFailedToUpdateEndpointSlices+": Error updating Endpoint Slices for Service "+ns+"/frozen: "),
			ContainSubstring("endpoint slices are frozen here"))))
		Expect(slicesOf(svc)).To(BeEmpty())

		By("the Service gets its slices once the policy is gone")
		Expect(k8sClient.Delete(suiteCtx, binding)).To(Succeed())
		Expect(k8sClient.Delete(suiteCtx, policy)).To(Succeed())
		Eventually(func() map[string]discoveryv1.Endpoint { return endpointsOf(svc, discoveryv1.AddressTypeIPv4) }, timeout).Should(HaveKey("f"))
	})

	It("spreads 250 pods over three slices", func() {
		svc := webService("many")
		for i := range 250 {
			createPod(ns, podSpec{name: fmt.Sprintf("pod-%d", i), labels: web,
				ips: []string{fmt.Sprintf("10.244.10.%d", i)}, ready: true, httpPort: 8080})
		}
		Eventually(func(g Gomega) {
			var sizes []int
			for _, s := range slicesOf(svc) {
				sizes = append(sizes, len(s.Endpoints))
			}
			slices.Sort(sizes)
			g.Expect(sizes).To(Equal([]int{50, 100, 100}))
		}, 60*time.Second, 250*time.Millisecond).Should(Succeed())
	})
})
