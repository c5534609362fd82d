// Command kube-proxy is the upstream kube-proxy, built from the pinned k8s.io/kubernetes
// module so that hack/bench-compare can run it beside svcplane's agent on the same
// Services and EndpointSlices.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"

	"k8s.io/kubernetes/cmd/kube-proxy/app"
)

func main() {
	os.Exit(cli.Run(app.NewProxyCommand()))
}
