#!/usr/bin/env bash
# build-upstream.sh builds kube-controller-manager and kube-proxy from the hack/k8s module
# (the same pinned k8s.io/kubernetes as the test control plane) into the directory given
# as the first argument (default: bin/k8s). Only `make bench-compare` needs them, so they
# are not part of `make controlplane` or CI. Most packages are shared with kube-apiserver,
# so after `make controlplane` this compiles the controllers and the proxiers: a few
# minutes on 2 idle cores, cached after.

set -o errexit -o nounset -o pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${root}/bin/k8s}"
mkdir -p "${out}"
out="$(cd "${out}" && pwd)"
cd "${root}/hack/k8s"

echo "Building kube-controller-manager and kube-proxy from hack/k8s into ${out}..."
start=${SECONDS}
go build -o "${out}/" ./kube-controller-manager ./kube-proxy
# go build may leave an up-to-date binary untouched; make compares modification times.
touch "${out}/kube-controller-manager" "${out}/kube-proxy"
elapsed=$((SECONDS - start))
printf 'Built %s/{kube-controller-manager,kube-proxy} in %dm%02ds\n' "${out}" $((elapsed / 60)) $((elapsed % 60))
