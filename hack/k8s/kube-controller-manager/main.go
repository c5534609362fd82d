// Command kube-controller-manager is the upstream kube-controller-manager, built from the
// pinned k8s.io/kubernetes module so that hack/bench-compare can run its EndpointSlice
// controller beside svcplane's on the same API server.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"

	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
