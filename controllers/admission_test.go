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
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// Hostile specs, each refused by the CRD schema or its CEL rules with the exact
// words the API server answers. External addresses are from 192.0.2.0/24
// (TEST-NET-1); the refused ones are the special ranges kube-apiserver refuses.

const (
	dns1035Message    = `a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`
	labelKeyMessage   = `a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName'), at most 63 characters after the prefix`
	labelValueMessage = `a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`
)

var _ = Describe("Admission", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	named := func(name string) func(*v1alpha1.Service) {
		return func(s *v1alpha1.Service) { s.Name = name }
	}
	selector := func(sel map[string]string) func(*v1alpha1.Service) {
		return func(s *v1alpha1.Service) { s.Spec.Selector = sel }
	}
	externalIPs := func(ips ...string) func(*v1alpha1.Service) {
		return func(s *v1alpha1.Service) { s.Spec.ExternalIPs = ips }
	}

	DescribeTable("refuses a hostile spec with kube-apiserver's words",
		func(mutate func(*v1alpha1.Service), want string) {
			svc := service(ns, "hostile", mutate)
			err := k8sClient.Create(suiteCtx, svc)
			Expect(err).To(HaveOccurred())
			GinkgoWriter.Println(err.Error())
			Expect(err.Error()).To(Equal(`Service.networking.svcplane.io "` + svc.Name + `" is invalid: ` + want))
		},
		Entry("a name of 70 characters", named(strings.Repeat("a", 70)),
			`metadata: Invalid value: name "`+strings.Repeat("a", 70)+`": must be no more than 63 characters`),
		Entry("a name of 253 characters", named(strings.Repeat("a", 253)),
			`metadata: Invalid value: name "`+strings.Repeat("a", 253)+`": must be no more than 63 characters`),
		Entry("a dotted name", named("web.example"),
			`metadata: Invalid value: name "web.example": `+dns1035Message),
		Entry("a name starting with a digit", named("1web"),
			`metadata: Invalid value: name "1web": `+dns1035Message),
		Entry("a selector value of 100 characters", selector(map[string]string{"app": strings.Repeat("v", 100)}),
			`spec.selector: Invalid value: value "`+strings.Repeat("v", 100)+`": must be no more than 63 bytes`),
		Entry("a selector key with slashes", selector(map[string]string{"bad key/with/slashes": "x"}),
			`spec.selector: Invalid value: key "bad key/with/slashes": `+labelKeyMessage),
		Entry("a selector key whose name part has 64 characters", selector(map[string]string{"example.com/" + strings.Repeat("k", 64): "x"}),
			`spec.selector: Invalid value: key "example.com/`+strings.Repeat("k", 64)+`": `+labelKeyMessage),
		Entry("a selector key with an upper-case prefix", selector(map[string]string{"Example.com/app": "x"}),
			`spec.selector: Invalid value: key "Example.com/app": `+labelKeyMessage),
		Entry("an empty selector key", selector(map[string]string{"": "x"}),
			`spec.selector: Invalid value: key "": `+labelKeyMessage),
		Entry("a selector of 65 keys", selector(manyKeys(65)),
			`[spec.selector: Too many: 65: must have at most 64 items, <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]`),
		Entry("a loopback external IP", externalIPs("127.0.0.1"),
			`spec.externalIPs[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)`),
		Entry("an IPv6 loopback external IP", externalIPs("192.0.2.10", "::1"),
			`spec.externalIPs[1]: Invalid value: "::1": may not be in the loopback range (127.0.0.0/8, ::1/128)`),
		Entry("an unspecified external IP", externalIPs("0.0.0.0"),
			`spec.externalIPs[0]: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)`),
		Entry("an unspecified IPv6 external IP", externalIPs("::"),
			`spec.externalIPs[0]: Invalid value: "::": may not be unspecified (::)`),
		Entry("a link-local multicast external IP", externalIPs("224.0.0.1"),
			`spec.externalIPs[0]: Invalid value: "224.0.0.1": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)`),
		Entry("an IPv6 link-local multicast external IP", externalIPs("ff02::1"),
			`spec.externalIPs[0]: Invalid value: "ff02::1": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)`),
		Entry("a link-local external IP", externalIPs("169.254.169.254"),
			`spec.externalIPs[0]: Invalid value: "169.254.169.254": may not be in the link-local range (169.254.0.0/16, fe80::/10)`),
		Entry("an IPv6 link-local external IP", externalIPs("fe80::1"),
			`spec.externalIPs[0]: Invalid value: "fe80::1": may not be in the link-local range (169.254.0.0/16, fe80::/10)`),
		Entry("a multicast external IP", externalIPs("239.1.2.3"),
			`spec.externalIPs[0]: Invalid value: "239.1.2.3": may not be a multicast address (224.0.0.0/4, ff00::/8)`),
		Entry("a malformed external IP", externalIPs("192.0.2.300"),
			`spec.externalIPs: Invalid value: each entry must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)`),
	)

	It("accepts what kube-apiserver accepts at the edges", func() {
		for _, svc := range []*v1alpha1.Service{
			service(ns, strings.Repeat("a", 63)),
			service(ns, "web-1", selector(map[string]string{"example.com/app": "my_value.1", "app": ""})),
			service(ns, "external", externalIPs("192.0.2.10", "2001:db8::10")),
		} {
			Expect(k8sClient.Create(suiteCtx, svc)).To(Succeed(), svc.Name)
		}
	})

	It("accepts a generated name", func() {
		svc := service(ns, "")
		svc.GenerateName = "web-"
		Expect(k8sClient.Create(suiteCtx, svc)).To(Succeed())
		Expect(svc.Name).To(HavePrefix("web-"))
	})

	Context("refused by the controller", func() {
		It("refuses a selector value with characters a label value may not have, in kube's words", func() {
			svc := create(service(ns, "spaced", selector(map[string]string{"app": "has space!"})))
			got := conditionOf(svc, metav1.ConditionFalse, ReasonInvalidSelector)
			Expect(allocatedCondition(got).Message).To(Equal(`spec.selector: Invalid value: "has space!": ` + labelValueMessage))
			Expect(got.Status.ClusterIPs).To(BeEmpty())
			Eventually(func() []string { return warningEvents(svc) }, timeout).Should(ContainElement(
				ReasonInvalidSelector + `: spec.selector: Invalid value: "has space!": ` + labelValueMessage))

			update(svc, func(s *v1alpha1.Service) { s.Spec.Selector = map[string]string{"app": "spaced"} })
			Expect(allocated(svc).Status.ClusterIPs).To(HaveLen(1))
		})
	})
})

var _ = Describe("Admission with --deny-external-ips", Serial, Ordered, func() {
	var ns string
	BeforeAll(func() {
		swapManager(suiteServiceCIDRs, suiteNodePorts, func(r *AllocationReconciler) { r.DenyExternalIPs = true })
		DeferCleanup(func() { swapManager(suiteServiceCIDRs, suiteNodePorts) })
	})
	BeforeEach(func() { ns = newNamespace() })

	It("refuses a Service with external IPs in kube's words and gives back what it held", func() {
		svc := create(service(ns, "web", func(s *v1alpha1.Service) { s.Spec.ClusterIP = "10.96.7.7" }))
		Expect(allocated(svc).Status.ClusterIPs).To(Equal([]string{"10.96.7.7"}))

		update(svc, func(s *v1alpha1.Service) { s.Spec.ExternalIPs = []string{"192.0.2.10"} })
		got := conditionOf(svc, metav1.ConditionFalse, ReasonExternalIPsDenied)
		Expect(allocatedCondition(got).Message).To(Equal("spec.externalIPs: Forbidden: Use of external IPs is denied by admission control"))
		Expect(got.Status.ClusterIPs).To(BeEmpty())
		Expect(got.Status.ClusterIP).To(BeEmpty())
		Eventually(func() []string { return warningEvents(svc) }, timeout).Should(ContainElement(
			ReasonExternalIPsDenied + ": spec.externalIPs: Forbidden: Use of external IPs is denied by admission control"))

		// The address went back to the range: another Service may take it.
		other := create(service(ns, "other", func(s *v1alpha1.Service) { s.Spec.ClusterIP = "10.96.7.7" }))
		Expect(allocated(other).Status.ClusterIPs).To(Equal([]string{"10.96.7.7"}))

		update(svc, func(s *v1alpha1.Service) { s.Spec.ExternalIPs = nil; s.Spec.ClusterIP = "" })
		Expect(allocated(svc).Status.ClusterIPs).To(HaveLen(1))
	})

	It("allocates Services without external IPs as usual", func() {
		Expect(allocated(create(service(ns, "plain"))).Status.ClusterIPs).To(HaveLen(1))
	})
})

func manyKeys(n int) map[string]string {
	out := map[string]string{}
	for i := range n {
		out[fmt.Sprintf("k%d", i)] = "v"
	}
	return out
}
