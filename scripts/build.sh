#!/usr/bin/env bash
# build.sh - configure and build one flavour of IPC-Direct.
#
# Usage: scripts/build.sh [release|asan|tsan]   -> build dir build/<flavour>
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
flavour=${1:-release}
jobs=$(nproc)

case $flavour in
release) extra=(-DCMAKE_BUILD_TYPE=Release) ;;
asan)    extra=(-DCMAKE_BUILD_TYPE=Debug -DIPCD_SANITIZE=address,undefined -DIPCD_BUILD_BENCH=OFF) ;;
tsan)    extra=(-DCMAKE_BUILD_TYPE=Debug -DIPCD_SANITIZE=thread -DIPCD_BUILD_BENCH=OFF) ;;
*) echo "build.sh: unknown flavour '$flavour' (release|asan|tsan)" >&2; exit 2 ;;
esac

cmake -S "$top" -B "$top/build/$flavour" -DIPCD_WERROR=ON "${extra[@]}" >/dev/null
cmake --build "$top/build/$flavour" -j "$jobs"
