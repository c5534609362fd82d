#!/usr/bin/env bash
# build-controlplane.sh builds kube-apiserver and etcd from the hack/k8s module into the
# directory given as the first argument (default: bin/k8s). envtest and `make run` use
# them; nothing is downloaded but Go modules, so a fresh clone needs only the Go proxy.
# A cold build takes 5-10 minutes on 2 cores; later builds come from the Go build cache.

set -o errexit -o nounset -o pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${root}/bin/k8s}"
mkdir -p "${out}"
out="$(cd "${out}" && pwd)"

echo "Building kube-apiserver and etcd from hack/k8s into ${out} (5-10 minutes cold)..."
start=${SECONDS}
(
	cd "${root}/hack/k8s"
	go build -o "${out}/" ./kube-apiserver ./etcd
)
# go build may leave an up-to-date binary untouched; make compares modification times.
touch "${out}/kube-apiserver" "${out}/etcd"
elapsed=$((SECONDS - start))
printf 'Built %s/{kube-apiserver,etcd} in %dm%02ds\n' "${out}" $((elapsed / 60)) $((elapsed % 60))
