# Image URLs used by all building/pushing image targets.
IMG ?= svcplane/manager:latest
AGENT_IMG ?= svcplane/agent:latest

# CONTAINER_TOOL builds and pushes images; podman works as well.
CONTAINER_TOOL ?= docker

# LOCALBIN holds the pinned tools and built binaries. These come first because rule targets
# and prerequisites are expanded as make reads them.
LOCALBIN ?= $(shell pwd)/bin
# K8S_BIN holds kube-apiserver and etcd built from hack/k8s; tests get it as KUBEBUILDER_ASSETS.
K8S_BIN ?= $(LOCALBIN)/k8s

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

# The help target prints out all targets with their descriptions organized
# beneath their categories. The categories are represented by '##@' and the
# target descriptions by '##'.
.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

.DEFAULT_GOAL := help

##@ Development

# CONTROLLER_GEN_PATHS names the packages controller-gen reads. hack/k8s is a module of
# its own (the test control plane), so "./..." would stop at its go.mod with an error.
CONTROLLER_GEN_PATHS ?= ./api/...;./controllers/...;./cmd/...

.PHONY: manifests
manifests: controller-gen ## Generate the CRD, the manager's and the agent's ClusterRoles and webhook configuration.
	"$(CONTROLLER_GEN)" rbac:roleName=manager-role crd webhook paths="$(CONTROLLER_GEN_PATHS)" output:crd:artifacts:config=config/crd/bases
	"$(CONTROLLER_GEN)" rbac:roleName=agent-role paths="./internal/agent/..." output:rbac:artifacts:config=config/agent

.PHONY: generate
generate: controller-gen ## Generate DeepCopy, DeepCopyInto and DeepCopyObject methods.
	"$(CONTROLLER_GEN)" object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Rewrite the Go files with gofmt (make test and make verify only check).
	gofmt -w $$(git ls-files --cached --others --exclude-standard '*.go')

.PHONY: fmt-check
fmt-check: ## Fail if a Go file is not gofmt-formatted; rewrites nothing.
	@unformatted="$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "$$unformatted"; echo "error: run 'make fmt' (gofmt -w) on the files above" >&2; exit 1; fi

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

.PHONY: test
test: fmt-check vet controlplane ## Run all tests (rewrites nothing); envtest suites use kube-apiserver and etcd from K8S_BIN.
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go test ./... -timeout 20m -coverprofile cover.out

.PHONY: test-fuzz
test-fuzz: ## Fuzz the allocator bitmap for 30s.
	go test -run='^$$' -fuzz=FuzzBitmapOperations -fuzztime=30s ./controllers/allocator/

.PHONY: bench
bench: ## Run the allocator benchmarks.
	go test -run='^$$' -bench=. -benchmem ./controllers/allocator/

.PHONY: bench-iptables
bench-iptables: ## Render and apply (root: iptables-legacy in a network namespace) 10,000 service ports x 10 endpoints.
	go test -run='^$$' -bench=. -benchmem -benchtime=5x -timeout 60m ./dataplane/iptables/

.PHONY: bench-endpoints
bench-endpoints: controlplane ## Measure EndpointSlice latency and writes per pod change (1,000 Services x 10 pods).
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go run ./hack/endpointslice-bench --services=1000 --pods-per-service=10 --rate=20 --duration=60s

.PHONY: bench-compare
bench-compare: controlplane upstream ## Run svcplane and Kubernetes side by side (root; QUICK=1 for a few minutes) and write docs/performance.md with plots.
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go run ./hack/bench-compare $(if $(QUICK),-quick)

.PHONY: bench-dns
bench-dns: ## Measure the DNS server on loopback: qps and latency of cached A, SRV and NXDOMAIN with 10,000 Services; memory per Service.
	go run ./hack/dns-bench --services=10000 --duration=10s

.PHONY: verify
verify: controller-gen golangci-lint ## Check gofmt, go mod tidy, generated files, tracked-file hygiene and golangci-lint; rewrites nothing.
	LOCALBIN="$(LOCALBIN)" GOLANGCI_LINT="$(GOLANGCI_LINT)" hack/verify.sh

.PHONY: test-e2e
test-e2e: controlplane ## Run the real-kernel end-to-end test alone (root; builds network namespaces and removes them).
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go test ./test/e2e/ -count=1 -v -timeout 10m

.PHONY: test-vm
test-vm: ## Run the IPVS tests on a real kernel in a QEMU VM (no KVM needed; hack/vm/kernel.sh caches Debian's kernel in bin/vm).
	go test ./test/vm/... -count=1 -v -timeout 15m

.PHONY: bench-ipvs
bench-ipvs: ## IPVS syncs of 1,000 and 10,000 service ports x 10: netlink calls over the fake, then time on the VM's kernel.
	go test -run='^$$' -bench=. -benchmem ./dataplane/ipvs/
	VM_BENCH=. go test ./test/vm/ipvs/ -run=TestVM -count=1 -v -timeout 30m

.PHONY: demo
demo: controlplane ## Show svcplane working on this machine (root): node, pods and client in network namespaces. HOLD=1 keeps it up; MODE=nftables runs the agent in nftables mode.
	go build -o "$(LOCALBIN)/svcplane-demo" ./hack/demo
	KUBEBUILDER_ASSETS="$(K8S_BIN)" "$(LOCALBIN)/svcplane-demo" --log-file="$(LOCALBIN)/demo.log" $(if $(HOLD),--hold) $(if $(MODE),--mode=$(MODE))

##@ Build

.PHONY: build
build: ## Build the manager binary.
	go build -o "$(LOCALBIN)/manager" ./cmd/manager

# run builds only what running needs; generation, gofmt and vet are make verify's and make test's.
.PHONY: run
run: ## Build and run the manager (extra flags in ARGS) against KUBECONFIG, or a local control plane with a pod simulator if no cluster is reachable.
	K8S_BIN="$(K8S_BIN)" ARGS="$(ARGS)" hack/run.sh

.PHONY: controlplane
controlplane: $(K8S_BIN)/kube-apiserver $(K8S_BIN)/etcd ## Build kube-apiserver and etcd into K8S_BIN (cached; 5-10 minutes cold on 2 cores).

# Both binaries come from one build of the hack/k8s module, hence the grouped target (&:).
K8S_SOURCES := hack/k8s/go.mod hack/k8s/go.sum $(wildcard hack/k8s/kube-apiserver/*.go hack/k8s/etcd/*.go)
$(K8S_BIN)/kube-apiserver $(K8S_BIN)/etcd &: $(K8S_SOURCES)
	hack/build-controlplane.sh "$(K8S_BIN)"

.PHONY: upstream
upstream: $(K8S_BIN)/kube-controller-manager $(K8S_BIN)/kube-proxy ## Build kube-controller-manager and kube-proxy into K8S_BIN for make bench-compare (cached; not part of controlplane or CI).

UPSTREAM_SOURCES := hack/k8s/go.mod hack/k8s/go.sum $(wildcard hack/k8s/kube-controller-manager/*.go hack/k8s/kube-proxy/*.go)
$(K8S_BIN)/kube-controller-manager $(K8S_BIN)/kube-proxy &: $(UPSTREAM_SOURCES)
	hack/build-upstream.sh "$(K8S_BIN)"

# Other platforms: docker buildx build --platform linux/arm64 (the Dockerfile honours TARGETARCH).
.PHONY: docker-build
docker-build: ## Build the manager image.
	$(CONTAINER_TOOL) build -t "$(IMG)" .

.PHONY: docker-push
docker-push: ## Push the manager image.
	$(CONTAINER_TOOL) push "$(IMG)"

.PHONY: build-installer
build-installer: manifests generate kustomize ## Render one YAML with the CRD and the deployment into dist/install.yaml.
	mkdir -p dist
	cd config/manager && "$(KUSTOMIZE)" edit set image controller="$(IMG)"
	cd config/agent && "$(KUSTOMIZE)" edit set image agent="$(AGENT_IMG)"
	"$(KUSTOMIZE)" build config/default > dist/install.yaml

.PHONY: build-agent
build-agent: ## Build the node agent binary.
	go build -o "$(LOCALBIN)/agent" ./cmd/agent

.PHONY: build-dns
build-dns: ## Build the DNS server binary.
	go build -o "$(LOCALBIN)/dns" ./cmd/dns

.PHONY: docker-build-agent
docker-build-agent: ## Build the agent image (the Dockerfile's agent target: Debian slim with iptables).
	$(CONTAINER_TOOL) build --target agent -t "$(AGENT_IMG)" .

.PHONY: docker-push-agent
docker-push-agent: ## Push the agent image.
	$(CONTAINER_TOOL) push "$(AGENT_IMG)"

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install the CRD into the cluster of KUBECONFIG.
	"$(KUSTOMIZE)" build config/crd | $(KUBECTL) apply -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Remove the CRD from the cluster of KUBECONFIG. Call with ignore-not-found=true to ignore resource not found errors.
	"$(KUSTOMIZE)" build config/crd | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the manager to the cluster of KUBECONFIG.
	cd config/manager && "$(KUSTOMIZE)" edit set image controller="$(IMG)"
	cd config/agent && "$(KUSTOMIZE)" edit set image agent="$(AGENT_IMG)"
	"$(KUSTOMIZE)" build config/default | $(KUBECTL) apply -f -

# --wait=false: on a control plane without kube-controller-manager (hack/devcluster, a
# minimal or virtual one) nothing finalizes the Namespace, and kubectl would wait forever.
.PHONY: undeploy
undeploy: kustomize ## Remove the manager from the cluster of KUBECONFIG. Call with ignore-not-found=true to ignore resource not found errors.
	"$(KUSTOMIZE)" build config/default | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) --wait=false -f -

##@ Dependencies

$(LOCALBIN):
	mkdir -p "$(LOCALBIN)"

## Tool Binaries
KUBECTL ?= kubectl
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint

## Tool Versions
# kustomize v5.8.x needs Go 1.27; v5.7.1 is the newest that builds with Go 1.26.
KUSTOMIZE_VERSION ?= v5.7.1
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0

# The tool targets are phony so that changing a version above always takes effect; when the
# right version is already in place the check costs a stat and a readlink.
.PHONY: kustomize
kustomize: | $(LOCALBIN) ## Install kustomize into LOCALBIN if necessary.
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: controller-gen
controller-gen: | $(LOCALBIN) ## Install controller-gen into LOCALBIN if necessary.
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: golangci-lint
golangci-lint: | $(LOCALBIN) ## Install golangci-lint into LOCALBIN if necessary.
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

# go-install-tool installs a pinned tool as <name>-<version> and points <name> at it, so a
# version change reinstalls and scripts can keep calling bin/<name>.
# $1 - target path with name of binary
# $2 - package url which can be installed
# $3 - specific version of package
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$(1)-$(3)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
rm -f "$(1)" ;\
GOBIN="$(LOCALBIN)" go install $${package} ;\
mv "$(LOCALBIN)/$$(basename "$(1)")" "$(1)-$(3)" ;\
} ;\
ln -sf "$$(realpath "$(1)-$(3)")" "$(1)"
endef
