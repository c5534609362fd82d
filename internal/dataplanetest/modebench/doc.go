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

// Package modebench compares the dataplane modes side by side on the real kernel:
// full syncs, one-service changes and the connect latency a client sees, at a
// given number of service ports. It has only benchmarks, which run in a network
// namespace they create and remove (see TestMain); they need root, ip, nft and
// iptables-legacy.
//
//	go test ./internal/dataplanetest/modebench -run '^$' -bench . -benchtime 1x -modebench.ports 1000,10000
package modebench
