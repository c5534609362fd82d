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

// Package agent is the node agent's glue: it watches svcplane Services, the
// EndpointSlices labelled networking.svcplane.io/service-name and its own Node
// through a controller-runtime cache, and on every change asks a dataplane.Runner
// for a sync. Each sync lists the cache, builds the desired state with the pure
// model.Build and hands it to the Backend; the health check node ports, /healthz
// and the metrics follow the result. Event handlers carry no data to the sync, so
// coalescing any number of events into one sync loses nothing.
//
// Decisions live elsewhere: what a node should do in package model, how a kernel is
// programmed in the backend packages, how health is reported in package
// healthcheck.
package agent
