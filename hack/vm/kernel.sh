#!/usr/bin/env bash
# hack/vm/kernel.sh fetches Debian's current kernel package (the one linux-image-amd64
# depends on) and unpacks it, once, into a cache directory; it prints that directory,
# which holds boot/vmlinuz-<version> and lib/modules/<version>/ with the ip_vs, dummy,
# veth and netfilter modules the VM tests load. The package is not committed anywhere:
# the cache lives under bin/ (git-ignored). Usage: hack/vm/kernel.sh [CACHE_DIR]
#
# Set KERNEL_PACKAGE to pin another package name (e.g. linux-image-6.1.0-57-amd64).

set -o errexit -o nounset -o pipefail

cache=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin/vm"}
mkdir -p "${cache}"
cd "${cache}"

pkg=${KERNEL_PACKAGE:-}
if [[ -z "${pkg}" ]]; then
	# apt-cache prints "  Depends: linux-image-6.1.0-57-amd64" for the metapackage.
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
fi
if [[ -z "${pkg}" ]]; then
	# No package lists at all (a fresh machine): use the newest kernel already cached.
	pkg=$(find . -maxdepth 1 -type d -name 'linux-image-*' -printf '%f\n' | sort -V | tail -n1)
fi
if [[ -z "${pkg}" ]]; then
	echo "error: cannot tell which kernel package linux-image-amd64 depends on; run apt-get update" >&2
	exit 1
fi

dir="${cache}/${pkg}"
if [[ ! -e "${dir}/.unpacked" ]]; then
	rm -rf "${dir}" "${dir}.tmp"
	debs=("${pkg}"_*.deb)
	if [[ ! -e "${debs[0]}" ]]; then
		# apt-get download writes into the current directory; its _apt sandbox user
		# may not write here, which only costs a warning.
		apt-get download "${pkg}" >&2
		debs=("${pkg}"_*.deb)
	fi
	mkdir -p "${dir}.tmp"
	# Only the kernel image and the modules are needed, not the firmware-sized rest.
	dpkg-deb --fsys-tarfile "${debs[0]}" | tar -x -C "${dir}.tmp" --wildcards './boot/vmlinuz-*' './lib/modules/*'
	mv "${dir}.tmp" "${dir}"
	touch "${dir}/.unpacked"
fi
echo "${dir}"
