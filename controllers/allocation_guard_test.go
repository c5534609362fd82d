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
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/svcplane/svcplane/api/v1alpha1"
)

// Addresses from the suite's 10.96.0.0/12: 10.96.200.1 and .2 are requested by
// nobody else.

var _ = Describe("A second allocator", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("follows an allocation another manager wrote instead of overwriting it, and says so", func() {
		svc := allocated(create(service(ns, "shared")))
		mine := svc.Status.ClusterIPs[0]

		// A younger manager (its identity starts later than the suite's) writes
		// another free address, in a later second than the suite's manager wrote
		// (managed fields keep time to the second, and a tie counts as this
		// manager's own write).
		time.Sleep(1100 * time.Millisecond)
		other := svc.DeepCopy()
		other.Status.ClusterIP, other.Status.ClusterIPs = "10.96.200.1", []string{"10.96.200.1"}
		Expect(k8sClient.Status().Patch(suiteCtx, other, client.MergeFrom(svc),
			client.FieldOwner(allocatorFieldManagerPrefix+"elsewhere/9999999999999999999"))).To(Succeed())

		// The suite's manager adopts it: the status keeps the other's address.
		Consistently(func() []string { return get(svc).Status.ClusterIPs }, 3*time.Second, 100*time.Millisecond).
			Should(Equal([]string{"10.96.200.1"}))
		Eventually(func() []string { return warningEvents(svc) }, timeout).Should(ContainElement(
			ContainSubstring(ReasonOtherAllocator + ": The allocation in status was written by svcplane-allocator/elsewhere/9999999999999999999")))

		// The adopted address is held: nobody else gets it; the old one is free.
		taken := create(service(ns, "wants-it", func(s *v1alpha1.Service) { s.Spec.ClusterIP = "10.96.200.1" }))
		conditionOf(taken, metav1.ConditionFalse, "ClusterIPAlreadyAllocated")
		freed := create(service(ns, "wants-old", func(s *v1alpha1.Service) { s.Spec.ClusterIP = mine }))
		Expect(allocated(freed).Status.ClusterIPs).To(Equal([]string{mine}))
	})
})
