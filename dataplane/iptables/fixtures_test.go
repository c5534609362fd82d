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

package iptables

// The fixtures and their IP conventions are dataplanetest's, shared by every
// backend; these are short names for them.

import (
	"github.com/svcplane/svcplane/internal/dataplanetest"
)

var (
	nodeIPv4    = dataplanetest.NodeIPv4
	nodeIPv6    = dataplanetest.NodeIPv6
	clusterCIDR = dataplanetest.ClusterCIDR

	state         = dataplanetest.State
	svcPort       = dataplanetest.SvcPort
	eps           = dataplanetest.Eps
	nodePort      = dataplanetest.NodePort
	protocol      = dataplanetest.Protocol
	externalIPs   = dataplanetest.ExternalIPs
	loadBalancer  = dataplanetest.LoadBalancer
	sourceRanges  = dataplanetest.SourceRanges
	externalLocal = dataplanetest.ExternalLocal
	internalLocal = dataplanetest.InternalLocal
	affinity      = dataplanetest.Affinity
	familiesOf    = dataplanetest.Families

	behaviourState = dataplanetest.BehaviourState
)
