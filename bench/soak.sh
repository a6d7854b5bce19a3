#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench/soak.sh - build ipcd-soak (Release, its own build dir) and run it in
# the background: the output goes to BUILD/soak/soak-<UTC time>.out and the
# JSON beside it, so a 30-minute run survives the shell that started it.
# Poll the .out file; the last line says PASSED or FAILED. See
# docs/reliability.md.
#
#   bench/soak.sh [--build DIR] [--fg] [-- IPCD-SOAK ARGS...]
#
#   --build DIR  the build dir (default build/soak); configured if needed
#   --fg         run in the foreground instead (CI: exit status of ipcd-soak)
#   ARGS         passed to ipcd-soak (default: --minutes 30)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build/soak
fg=0
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	--fg) fg=1; shift ;;
	--) shift; break ;;
	-h|--help) sed -n '3,15p' "$0"; exit 0 ;;
	*) echo "soak.sh: unknown option $1 (ipcd-soak's options go after --)" >&2; exit 2 ;;
	esac
done
[ $# -gt 0 ] || set -- --minutes 30

if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DIPCD_WERROR=ON >/dev/null
fi
cmake --build "$build" --target ipcd-soak -j2 >/dev/null

mkdir -p "$build/soak"
stamp=$(date -u +%Y%m%d-%H%M%S)
out=$build/soak/soak-$stamp.out
json=$build/soak/soak-$stamp.json
if [ $fg = 1 ]; then
	exec "$build/bench/ipcd-soak" --json "$json" "$@"
fi
nohup "$build/bench/ipcd-soak" --json "$json" "$@" >"$out" 2>&1 &
echo "ipcd-soak running (pid $!): tail -f $out"
