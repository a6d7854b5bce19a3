#!/usr/bin/env bash
# setup.sh - install the Debian 12 packages IPC-Direct needs (idempotent).
#
# Usage: scripts/setup.sh [build|test|rdma|bench|fuzz]...   (default: build)
# Installs only what is missing; runs apt-get update only when it must.
#
#   build  compilers, cmake, and the libraries the project links (rdma-core's
#          libibverbs and librdmacm for the cross-host transport, issue #7)
#   test   what the tests run: socat, python3, nginx, wrk, redis, memcached...
#   rdma   the RDMA tests' guests (tests/rdma/vm.sh): QEMU, kmod, cpio and xz to
#          build the initramfs from Debian's kernel package, and the rdma-core
#          tools and the rxe verbs provider the guests run from the host's /
#          (the kernel and busybox-static are fetched as .debs, not installed)
#   bench  gnuplot for the benchmarks' plots
#   fuzz   clang, the libFuzzer runtime (libclang_rt.fuzzer: libclang-rt-14-dev, which
#          clang only recommends) and llvm-symbolizer (llvm-14) for scripts/fuzz.sh
set -euo pipefail

declare -A groups=(
	[build]="build-essential cmake pkg-config libcmocka-dev libnuma-dev libjemalloc-dev libibverbs-dev librdmacm-dev"
	[test]="build-essential cmake pkg-config libcmocka-dev procps curl socat python3 nginx wrk redis-server redis-tools memcached libmemcached-tools"
	[rdma]="qemu-system-x86 kmod cpio xz-utils iproute2 rdma-core ibverbs-providers ibverbs-utils rdmacm-utils"
	[bench]="gnuplot-nox"
	[fuzz]="clang libclang-rt-14-dev llvm-14"
)

want=()
for g in "${@:-build}"; do
	[[ -n "${groups[$g]+x}" ]] || { echo "setup.sh: unknown group '$g'" >&2; exit 2; }
	# shellcheck disable=SC2206
	want+=(${groups[$g]})
done

missing=()
for p in "${want[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
	echo "setup.sh: missing Debian packages: ${missing[*]}" >&2
	echo "setup.sh: run as root (or: apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Servers (nginx, redis-server, memcached) are installed for the tests, which
# start their own instances: keep the packages' init scripts from starting
# system-wide daemons during the install (policy-rc.d, unless one exists).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	own_policy=1
fi
trap '[[ $own_policy -eq 1 ]] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
