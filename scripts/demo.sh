#!/usr/bin/env bash
# demo.sh - set up, build and run the main job.
#
# Today (issue #2) the main job is the queue benchmark: IPC-Direct's rings
# against the raw cache-line floor measured in the same run. Later issues turn
# it into the monitor plus a preloaded demo against kernel sockets.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/setup.sh" build
"$top/scripts/build.sh" release
exec ./build/release/bench/ipcd-bench-queues --json build/release/bench-queues.json "$@"
