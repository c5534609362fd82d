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

// Package dataplane is the node agent's core: it turns the Services and
// EndpointSlices the agent watches into a model.State and hands it to a Backend
// (iptables, IPVS or nftables) through a Runner that bounds how often the kernel is
// reprogrammed.
//
// The flow is level-triggered, as in kube-proxy: event handlers only call
// Runner.Run to say "something changed"; the Runner later rebuilds the whole
// desired state and the backend makes the kernel match it. Nothing is lost when
// events are coalesced, because nothing is carried in them.
package dataplane
