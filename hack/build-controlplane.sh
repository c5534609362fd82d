#!/usr/bin/env bash
# build-controlplane.sh builds kube-apiserver and etcd from the hack/k8s module into the
# directory given as the first argument (default: bin/k8s). envtest and `make run` use
# them; nothing is downloaded but Go modules, so a fresh clone needs only the Go proxy.
# A cold build compiles most of Kubernetes: 5-10 minutes on 2 idle cores, longer on a
# busy machine; later builds come from the Go build cache. While it builds, a progress
# line counts the packages compiled.

set -o errexit -o nounset -o pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${root}/bin/k8s}"
mkdir -p "${out}"
out="$(cd "${out}" && pwd)"
cd "${root}/hack/k8s"

echo "Building kube-apiserver and etcd from hack/k8s into ${out}"
echo "(5-10 minutes the first time on 2 idle cores, longer on a busy machine; cached after)..."
start=${SECONDS}
# total is an upper bound: packages already in the build cache are not compiled again.
total="$(go list -deps ./kube-apiserver ./etcd 2>/dev/null | wc -l)" || total="?"
log="$(mktemp)"
trap 'rm -f "${log}"' EXIT
# go build -v names each package as it compiles it.
go build -v -o "${out}/" ./kube-apiserver ./etcd >"${log}" 2>&1 &
build_pid=$!
trap 'kill "${build_pid}" 2>/dev/null || true; rm -f "${log}"' EXIT

progress() {
	local elapsed=$((SECONDS - start))
	printf '  %d of at most %s packages compiled, %dm%02ds elapsed' \
		"$(wc -l <"${log}")" "${total}" $((elapsed / 60)) $((elapsed % 60))
}
last=-30
while kill -0 "${build_pid}" 2>/dev/null; do
	if [[ -t 1 ]]; then
		printf '\r%s' "$(progress)"
	elif ((SECONDS - last >= 30)); then
		# Not a terminal (CI, a log file): one line every 30 seconds.
		progress
		echo
		last=${SECONDS}
	fi
	sleep 2
done
[[ -t 1 ]] && echo
if ! wait "${build_pid}"; then
	echo "error: building the control plane failed:" >&2
	cat "${log}" >&2
	exit 1
fi

# go build may leave an up-to-date binary untouched; make compares modification times.
touch "${out}/kube-apiserver" "${out}/etcd"
elapsed=$((SECONDS - start))
printf 'Built %s/{kube-apiserver,etcd} in %dm%02ds\n' "${out}" $((elapsed / 60)) $((elapsed % 60))
