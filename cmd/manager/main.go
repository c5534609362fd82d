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

// Command manager runs svcplane's controllers: it allocates ClusterIPs and node ports
// for networking.svcplane.io Services, maintains their EndpointSlices and gives
// LoadBalancer Services an external address. Its flags and wiring live in
// controllers/manager, so that a binary with load balancer providers of its own is the
// same manager (see cmd/example-lb-manager).
package main

import (
	"os"

	"github.com/svcplane/svcplane/controllers/manager"
)

func main() {
	if err := manager.Run(manager.Options{}); err != nil {
		os.Exit(1)
	}
}
