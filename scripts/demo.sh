#!/usr/bin/env bash
# demo.sh - set up, build and run the product demo: ipcd-bench-sock.
#
# The same blocking TCP client and server run over kernel TCP loopback, over
# UNIX stream sockets, and through IPC-Direct (LD_PRELOAD=libipcd.so), blocks
# interleaved in one run; the benchmark starts its own ipcd-monitor on the
# embedded default config and checks with ipcdctl that the ipcd connections
# really were accelerated. How to read it: bench/README.md.
#
# Usage: scripts/demo.sh [ipcd-bench-sock options]   (e.g. --quick: under a minute)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/setup.sh" build
"$top/scripts/build.sh" release

# The JSON the summary is read from: ours, unless the caller chose one.
json=build/release/bench-sock.json
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
	[[ ${args[i]} == --json && $((i + 1)) -lt ${#args[@]} ]] && json=${args[i + 1]}
done
rm -f "$json"

status=0
./build/release/bench/ipcd-bench-sock --json "$json" "$@" || status=$?

# A number from the JSON's flat "summary" object ("null" or empty when not measured).
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$json" 2>/dev/null | head -n 1; }
num() { [[ -n $1 && $1 != null ]]; }

rtt=$(field rtt64_p50_speedup)
rate=$(field rate8_speedup)
echo
if num "$rtt" && num "$rate"; then
	awk -v cond="$(field condition | tr -d '"')" -v rtt="$rtt" -v rate="$rate" \
	    -v ip="$(field ipcd_rtt64_p50_us)" -v kp="$(field kernel_tcp_rtt64_p50_us)" \
	    -v im="$(field ipcd_rate8_msgs_per_s)" -v km="$(field kernel_tcp_rate8_msgs_per_s)" '
	function x(r) { return r >= 1 ? sprintf("%.1fx faster", r) : sprintf("%.1fx slower", 1 / r) }
	BEGIN {
		printf "demo: ipcd against kernel TCP (%s, same run): 64 B round trip p50 %.2f us vs " \
		       "%.2f us, %s; 8 B messages %.2f M/s vs %.2f M/s, %s\n", cond, ip, kp, x(rtt),
		       im / 1e6, km / 1e6, x(rate)
	}'
else
	echo "demo: ipcd against kernel TCP: not measured (see FAILED above; exit status $status)"
fi
exit "$status"
