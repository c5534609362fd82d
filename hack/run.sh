#!/usr/bin/env bash
# run.sh runs the manager in the foreground for development (`make run`).
#
# With a reachable cluster in $KUBECONFIG (or ~/.kube/config) it installs the CRDs there and
# runs the manager against it. Without one it starts hack/devcluster, a local etcd and
# kube-apiserver with the CRDs installed, and hack/podsim, a kubelet stand-in that makes
# pods Ready; it runs the manager against that and stops both when the manager exits.
# Extra manager flags come from $ARGS; DEVCLUSTER=always uses the local control plane
# even when a cluster is reachable.

set -o errexit -o nounset -o pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

K8S_BIN="${K8S_BIN:-${root}/bin/k8s}"
DEV_KUBECONFIG="${DEV_KUBECONFIG:-${root}/bin/dev-kubeconfig}"
ARGS="${ARGS:-}"

# Local runs serve no metrics and answer probes on :8081, like the deployed manager.
# ARGS is split on whitespace on purpose: it carries several flags.
# shellcheck disable=SC2206
manager_args=(--metrics-bind-address=0 --health-probe-bind-address=:8081 ${ARGS})

cluster_reachable() {
	# kubectl fails fast without a kubeconfig; --request-timeout bounds an unreachable server.
	timeout 10 kubectl get --raw /readyz --request-timeout=5s >/dev/null 2>&1
}

# run_manager runs the manager built below (bin/manager) in the foreground.
run_manager() {
	echo "Running the manager: bin/manager ${manager_args[*]}"
	"${root}/bin/manager" "${manager_args[@]}"
}

if ! command -v kubectl >/dev/null; then
	echo "error: kubectl is required (https://kubernetes.io/docs/tasks/tools/)" >&2
	exit 1
fi

# Only what running needs is built: the manager (seconds once the module cache is warm).
# Code generation, gofmt and vet are `make verify`'s and `make test`'s.
echo "Building the manager (bin/manager)..."
go build -o "${root}/bin/manager" ./cmd/manager

if [[ "${DEVCLUSTER:-auto}" != "always" ]] && cluster_reachable; then
	echo "Using the cluster of the current kubeconfig context ($(kubectl config current-context 2>/dev/null || echo "in-cluster"))."
	kubectl apply -f config/crd/bases
	run_manager
	exit
fi

if [[ "${DEVCLUSTER:-auto}" == "always" ]]; then
	echo "DEVCLUSTER=always: starting a local control plane."
else
	echo "No reachable cluster in ${KUBECONFIG:-~/.kube/config}; starting a local control plane."
fi
if [[ ! -x "${K8S_BIN}/kube-apiserver" || ! -x "${K8S_BIN}/etcd" ]]; then
	# Once per clone; hack/build-controlplane.sh prints its progress while it builds.
	make --no-print-directory controlplane K8S_BIN="${K8S_BIN}"
fi

# Build first so that the wait below only covers starting the control plane.
devcluster="${root}/bin/devcluster"
podsim="${root}/bin/podsim"
go build -o "${devcluster}" ./hack/devcluster
go build -o "${podsim}" ./hack/podsim
rm -f "${DEV_KUBECONFIG}"
log="${root}/bin/devcluster.log"
"${devcluster}" --assets="${K8S_BIN}" --crds=config/crd/bases --write-kubeconfig="${DEV_KUBECONFIG}" >"${log}" 2>&1 &
devcluster_pid=$!

podsim_pid=""
stop_devcluster() {
	if [[ -n "${podsim_pid}" ]] && kill -0 "${podsim_pid}" 2>/dev/null; then
		kill -TERM "${podsim_pid}" 2>/dev/null || true
		wait "${podsim_pid}" 2>/dev/null || true
	fi
	if kill -0 "${devcluster_pid}" 2>/dev/null; then
		echo "Stopping the local control plane (pid ${devcluster_pid})..."
		kill -TERM "${devcluster_pid}" 2>/dev/null || true
		wait "${devcluster_pid}" 2>/dev/null || true
	fi
}
trap stop_devcluster EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export KUBECONFIG="${DEV_KUBECONFIG}"
for _ in $(seq 1 120); do
	if ! kill -0 "${devcluster_pid}" 2>/dev/null; then
		echo "error: the local control plane exited; its log (${log}):" >&2
		cat "${log}" >&2
		exit 1
	fi
	if [[ -s "${KUBECONFIG}" ]] && cluster_reachable; then
		break
	fi
	sleep 1
done
if ! cluster_reachable; then
	echo "error: the local control plane was not ready after 120s; see ${log}" >&2
	exit 1
fi

# The control plane has no kubelet: podsim stands in for one, so that pods get an
# address and become Ready and EndpointSlices list them.
podsim_log="${root}/bin/podsim.log"
"${podsim}" >"${podsim_log}" 2>&1 &
podsim_pid=$!

cat <<MSG

Local control plane is ready; its kubeconfig is ${KUBECONFIG}
(control plane log: ${log}). A kubelet stand-in, hack/podsim, reports pods on
Node podsim-node Running and Ready with addresses from 203.0.113.0/24; nothing runs
(log: ${podsim_log}). In another shell:

    export KUBECONFIG=${KUBECONFIG}
    kubectl apply -k config/samples/ && kubectl apply -k config/samples/pods/
    kubectl get svcp
    kubectl get endpointslices -l networking.svcplane.io/service-name=clusterip

It stops when the manager does (Ctrl-C).

MSG
run_manager
