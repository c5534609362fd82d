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

// Package v1alpha1 contains the networking.svcplane.io/v1alpha1 API: a Service whose
// spec mirrors the core v1.ServiceSpec and whose status records what svcplane allocated.
// +kubebuilder:object:generate=true
// +groupName=networking.svcplane.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version of every type in this package.
var GroupVersion = schema.GroupVersion{Group: "networking.svcplane.io", Version: "v1alpha1"}

var (
	// SchemeBuilder registers this package's types. It is built on apimachinery rather
	// than controller-runtime so that packages which only decide things can import the
	// API without pulling in a controller framework.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types in this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &Service{}, &ServiceList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
