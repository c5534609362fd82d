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

package agent

// The agent's ClusterRole, config/agent/role.yaml, is generated from these markers by
// `make manifests` (controller-gen rbac:roleName=agent-role over ./dataplane/...).
// The agent reads svcplane Services, the EndpointSlices and its own Node through
// informers (list and watch; get for the cache's reads). Nodes are listed with a field
// selector on the agent's own name, but RBAC cannot restrict by field, hence
// cluster-wide access to Nodes. It writes nothing to the API server.

// +kubebuilder:rbac:groups=networking.svcplane.io,resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
