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

// Package healthcheck serves the HTTP endpoints that tell load balancers and
// monitoring about this node, as kube-proxy's healthcheck package does:
//
//   - one listener per healthCheckNodePort (LoadBalancer Services with
//     externalTrafficPolicy Local), answering 200 while the node has ready local
//     endpoints of the Service and 503 otherwise, so that a cloud load balancer only
//     sends traffic to nodes that will not drop it;
//   - /healthz, answering 200 while the agent keeps its rules up to date and 503
//     once a change has waited longer than a timeout.
//
// It is plain Go: the agent hands it the State it applied.
package healthcheck
