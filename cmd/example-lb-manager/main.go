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

// Command example-lb-manager is svcplane's manager with one more load balancer
// provider: the static provider of controllers/loadbalancer/example, which is also
// the default. It is the template for building a manager with a provider of your
// own: define your flags, register a factory under your provider's name, call
// manager.Run. Every flag of cmd/manager works here too.
//
//	example-lb-manager --static-addresses='shop/web=192.0.2.10,2001:db8::10' \
//	    --static-config-file=/var/run/lb/config.json
package main

import (
	"flag"
	"os"

	"github.com/svcplane/svcplane/controllers/loadbalancer"
	"github.com/svcplane/svcplane/controllers/loadbalancer/example"
	"github.com/svcplane/svcplane/controllers/manager"
)

func main() {
	addresses := flag.String("static-addresses", "", `The static provider's address table: "namespace/name=address[,address]" entries, one address per IP family, separated by semicolons.`)
	configFile := flag.String("static-config-file", "", "Where the static provider writes the load balancers' configuration as JSON; empty writes it nowhere.")
	err := manager.Run(manager.Options{
		Providers: map[string]manager.ProviderFactory{
			example.Name: func() (loadbalancer.Provider, error) { return newProvider(*addresses, *configFile) },
		},
		DefaultLoadBalancerProvider: example.Name,
	})
	if err != nil {
		os.Exit(1)
	}
}

// newProvider builds the static provider from its flags; manager.Run calls it once the
// command line is parsed.
func newProvider(addresses, configFile string) (loadbalancer.Provider, error) {
	table, err := example.ParseAddresses(addresses)
	if err != nil {
		return nil, err
	}
	var publish example.Publish
	if configFile != "" {
		publish = example.PublishFile(configFile)
	}
	return example.New(table, publish), nil
}
