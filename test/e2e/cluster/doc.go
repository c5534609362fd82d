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

// Package cluster runs svcplane on a world (package world): a test control plane
// (kube-apiserver and etcd through envtest), the manager's controllers and the node
// agent, all inside the current process, which must run in the world's node
// namespace. It registers the world's node and pods with the API server, with the
// addresses and readiness a kubelet would report, since no kubelet runs. The
// real-kernel test and `make demo` share it.
package cluster
