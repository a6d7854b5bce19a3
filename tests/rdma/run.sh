#!/usr/bin/env bash
# run.sh - the two-guest RDMA tests (ctest rdma_two_guests, label rdma): make
# the guest cache current (vm.sh --prepare), boot two guests with a Soft-RoCE
# device each (vm.sh) and run cases.sh in both. See tests/rdma/README.md.
#
# Usage: tests/rdma/run.sh BUILD_DIR [CASE...]     (cases: cases.sh --list)
#
# Logs go to BUILD_DIR/rdma-vm/ (emptied first): console.gI.log (each guest's
# console: every step of cases.sh), gI-monitor.N.log, CASE/gI-PROGRAM.log,
# CASE/gI-ipcdctl.txt, results.gI.
# Exit status: 0 pass, 1 fail, 2 usage or setup error, 77 skipped: this host
# cannot run QEMU at all (scripts/setup.sh rdma installs it).
# Environment: IPCD_RDMA_TIMEOUT (seconds for the whole guest run, default
# 1200), vm.sh's (IPCD_VM_*); every other IPCD_* variable is passed on to the
# guests: cases.sh's bounds (IPCD_RDMA_*_S), the preload's knobs.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

[[ $# -ge 1 && $1 != -* ]] || { echo "usage: tests/rdma/run.sh BUILD_DIR [CASE...]" >&2; exit 2; }
build=$(cd "$1" 2>/dev/null && pwd -P) || { echo "run.sh: no build directory $1" >&2; exit 2; }
shift
known=" $("$here/cases.sh" --list | tr '\n' ' ')"
for c in "$@"; do
	[[ $known == *" $c "* ]] || { echo "run.sh: no case '$c' (cases:$known)" >&2; exit 2; }
done
for f in monitor/ipcd-monitor monitor/ipcdctl preload/ipcd-run preload/libipcd.so tests/ipcd-echo; do
	[[ -e $build/$f ]] || { echo "run.sh: $build/$f is not built" >&2; exit 2; }
done

if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "run.sh: SKIP: no qemu-system-x86_64 on this host, so no guests with an RDMA device"
	echo "run.sh: (scripts/setup.sh rdma installs qemu-system-x86 and the rest)"
	exit 77
fi

start=$SECONDS
"$here/vm.sh" --prepare || exit 2

share=$build/rdma-vm
rm -rf "$share"
mkdir -p "$share"
echo "run.sh: two guests, cases: ${*:-all}; logs in $share"
# The guests start with an empty environment: pass on ours that is meant for
# them (cases.sh's bounds, the preload's and the monitor's knobs).
envs=()
while IFS='=' read -r name _; do
	case $name in
	IPCD_VM_* | IPCD_SOCKET | IPCD_RDMA_TIMEOUT) ;;
	IPCD_*) envs+=(--env "$name=${!name}") ;;
	esac
done < <(env)
rc=0
"$here/vm.sh" --guests 2 --share "$share" --timeout "${IPCD_RDMA_TIMEOUT:-1200}" \
	--expose "$build" "${envs[@]}" -- "$here/cases.sh" "$build" "$@" || rc=$?

echo "run.sh: results (guest 1 runs the servers, guest 0 the clients):"
for g in 0 1; do
	if [[ -s $share/results.g$g ]]; then
		sed "s/^/  g$g  /" "$share/results.g$g"
	else
		echo "  g$g  no results: see $share/console.g$g.log"
	fi
done
echo "run.sh: $((SECONDS - start)) s in all, exit status of the guests $rc"
case $rc in
0) exit 0 ;;
124) echo "run.sh: FAIL: the guests did not finish within ${IPCD_RDMA_TIMEOUT:-1200} s" ;;
125) echo "run.sh: FAIL: a guest did not boot or set up (its console log says why)" ;;
*) echo "run.sh: FAIL: consoles $share/console.g0.log, $share/console.g1.log; per case $share/CASE/" ;;
esac
exit 1
