#!/usr/bin/env bash
# verify.sh fails when the tree is not what CI expects (`make verify`): unformatted Go,
# an untidy go.mod, stale generated files, a large or binary file tracked by git, or a
# golangci-lint finding. It changes nothing in the working tree: the module and the
# generators run on copies.
#
# The Makefile passes the pinned tools: GOLANGCI_LINT (and LOCALBIN, where controller-gen
# is). Every check runs even when an earlier one failed, so one run lists every problem.

set -o errexit -o nounset -o pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

LOCALBIN="${LOCALBIN:-${root}/bin}"
GOLANGCI_LINT="${GOLANGCI_LINT:-${LOCALBIN}/golangci-lint}"
# MAX_FILE_BYTES is the largest file git may track (1 MiB).
MAX_FILE_BYTES=$((1024 * 1024))

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

failed=()
# fail records a failed check ($1) and says why ($2).
fail() {
	echo "FAIL (${1}): ${2}" >&2
	failed+=("$1")
}

# files lists tracked files and untracked ones that are not ignored, NUL-separated:
# what the next commit can contain.
files() {
	git ls-files -z --cached --others --exclude-standard
}

echo "==> gofmt"
mapfile -d '' gofiles < <(files | grep -z '\.go$' || true)
existing=()
for f in "${gofiles[@]}"; do
	[[ -f "${f}" ]] && existing+=("${f}")
done
unformatted=""
if ((${#existing[@]} > 0)); then
	unformatted="$(gofmt -l "${existing[@]}")"
fi
if [[ -n "${unformatted}" ]]; then
	echo "${unformatted}" >&2
	fail "gofmt" "these files need gofmt -w"
fi

echo "==> go mod tidy"
# -diff prints what tidy would change and exits non-zero, without writing go.mod.
if ! go mod tidy -diff >"${tmp}/tidy.diff" 2>&1; then
	cat "${tmp}/tidy.diff" >&2
	fail "go mod tidy" "go.mod/go.sum are not tidy; run go mod tidy"
fi

echo "==> generated files"
# Generate into a copy of the tree, then compare: the working tree is never rewritten,
# so verify can run while others edit it.
copy="${tmp}/tree"
mkdir -p "${copy}"
files | (cd "${root}" && xargs -0 cp --parents -t "${copy}" 2>/dev/null) || true
if ! make -C "${copy}" --no-print-directory manifests generate LOCALBIN="${LOCALBIN}" >"${tmp}/generate.log" 2>&1; then
	cat "${tmp}/generate.log" >&2
	fail "generate" "make manifests generate failed"
else
	cat "${tmp}/generate.log"
fi
if ! diff -ruN "${root}/api" "${copy}/api" >"${tmp}/gen.diff" ||
	! diff -ruN "${root}/config" "${copy}/config" >>"${tmp}/gen.diff"; then
	cat "${tmp}/gen.diff" >&2
	fail "generated files" "api/ or config/ differ from what make manifests generate writes; run it and commit the result"
fi

echo "==> tracked files"
# A file that is executable in git must be a script (#!); no tracked file may be an
# ELF, Mach-O or PE binary whatever its mode, or larger than MAX_FILE_BYTES.
while IFS=' ' read -r -d '' mode path; do
	[[ -f "${path}" ]] || continue
	size="$(stat -c %s -- "${path}")"
	if ((size > MAX_FILE_BYTES)); then
		fail "large file" "${path} is ${size} bytes; git must not track files over ${MAX_FILE_BYTES} bytes"
	fi
	magic="$(head -c 4 -- "${path}" | od -An -tx1 | tr -d ' \n')"
	case "${magic}" in
	7f454c46 | cffaedfe | cefaedfe | feedface | feedfacf | 4d5a*)
		fail "binary" "${path} is an executable binary; build outputs belong in bin/, not in git"
		continue
		;;
	esac
	if [[ "${mode}" == 100755 && "$(head -c 2 -- "${path}")" != '#!' ]]; then
		fail "binary" "${path} is executable in git but is not a script"
	fi
done < <(git ls-files -z --stage | sed -z 's/^\([0-7]*\) [0-9a-f]* [0-9]*\t/\1 /')

echo "==> golangci-lint"
if ! "${GOLANGCI_LINT}" run ./...; then
	fail "golangci-lint" "golangci-lint found problems"
fi

if ((${#failed[@]} > 0)); then
	echo "verify failed: ${failed[*]}" >&2
	exit 1
fi
echo "verify passed"
