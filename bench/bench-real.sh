#!/usr/bin/env bash
# bench-real.sh - real programs over kernel TCP and through IPC-Direct, in one run
# (issue #5, item 7).
#
# nginx + wrk, redis-server + redis-benchmark, memcached + ipcd-bench-memc: each
# server and its client run once as they are (kernel TCP loopback) and once both
# under ipcd-run (libipcd.so, IPCD_SOCKET = a monitor this script starts in its
# own temp dir), sides alternating, R repeats. Per case: the median over repeats
# of requests/s, p50 and p99 latency for each side and their ratios, and the
# connections the monitor accelerated. Every client run is under `timeout`; a
# run that fails or hangs is a FAIL in the table, never the end of the script.
# How to read it: bench/README.md (bench-real.sh).
#
# Usage: bench/bench-real.sh [--build DIR] [--quick] [--repeats R] [--duration S]
#                            [--json FILE] [--plot FILE | --no-plot] [--only LIST]
#                            [--sides LIST] [--retry-failed] [--keep]
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
here=$top/bench

usage() {
	cat <<EOF
usage: bench/bench-real.sh [options]
Real servers and clients, kernel TCP vs IPC-Direct (both ends under ipcd-run),
alternating in one run. Markdown table on stdout, JSON and a PNG plot.

  --build DIR       build tree with preload/, monitor/, bench/ (default: build/release)
  --quick           1 repeat, 1 s runs (CI smoke; about a minute)
  --repeats R       repeats per side (default 5)
  --duration S      seconds per wrk / ipcd-bench-memc run (default 5; redis-benchmark
                    request counts scale with it)
  --json FILE       default bench-real.json
  --plot FILE       PNG (default bench-real.png); --no-plot: none
  --only LIST       programs: any of nginx,redis,memcached (default: all three)
  --sides LIST      any of kernel,ipcd (default: both; without ipcd no monitor)
  --retry-failed    rerun a case on a side where it already hung (default: a case
                    that hung is not retried in later repeats; other failures are)
  --keep            keep the temp dir (logs, every client's output)
Exit status: 0 every run succeeded, 1 something failed, 2 usage.
EOF
}

build=$top/build/release
repeats=5
duration=5
json=bench-real.json
plot=bench-real.png
only=nginx,redis,memcached
sides=kernel,ipcd
retry=0
keep=0
quick=0
rep_set=0
dur_set=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--build) build=${2:?}; shift ;;
	--quick) quick=1 ;;
	--repeats) repeats=${2:?}; rep_set=1; shift ;;
	--duration) duration=${2:?}; dur_set=1; shift ;;
	--json) json=${2:?}; shift ;;
	--plot) plot=${2:?}; shift ;;
	--no-plot) plot= ;;
	--only) only=${2:?}; shift ;;
	--sides) sides=${2:?}; shift ;;
	--retry-failed) retry=1 ;;
	--keep) keep=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
if ((quick)); then
	((rep_set)) || repeats=1
	((dur_set)) || duration=1
fi
[[ $repeats =~ ^[1-9][0-9]*$ && $duration =~ ^[1-9][0-9]*$ ]] ||
	{ echo "bench-real.sh: --repeats and --duration take whole numbers >= 1" >&2; exit 2; }
for p in ${only//,/ }; do
	[[ $p == nginx || $p == redis || $p == memcached ]] ||
		{ echo "bench-real.sh: --only: unknown program '$p'" >&2; exit 2; }
done
for s in ${sides//,/ }; do
	[[ $s == kernel || $s == ipcd ]] ||
		{ echo "bench-real.sh: --sides: unknown '$s'" >&2; exit 2; }
done
has() { [[ ,$1, == *,$2,* ]]; }

build=$(cd "$build" 2>/dev/null && pwd) || { echo "bench-real.sh: no build dir" >&2; exit 2; }
monitor=$build/monitor/ipcd-monitor
ipcdctl=$build/monitor/ipcdctl
ipcd_run=$build/preload/ipcd-run
memc=$build/bench/ipcd-bench-memc
for f in "$monitor" "$ipcdctl" "$ipcd_run" "$build/preload/libipcd.so" "$memc"; do
	[[ -x $f || -f $f ]] ||
		{ echo "bench-real.sh: $f missing: cmake --build $build" >&2; exit 1; }
done
"$top/scripts/setup.sh" test bench || exit 1
for c in nginx wrk redis-server redis-benchmark memcached python3 ss timeout setsid; do
	command -v "$c" >/dev/null || { echo "bench-real.sh: $c not found" >&2; exit 1; }
done
if [[ -n ${LD_PRELOAD:-}${IPCD_SOCKET:-} ]]; then
	echo "bench-real.sh: run me without LD_PRELOAD / IPCD_SOCKET (I set them per side)" >&2
	exit 2
fi

tmp=$(mktemp -d /tmp/ipcd-bench-real-XXXXXX)
mkdir -p "$tmp/runs"
raw=$tmp/raw.tsv
: >"$raw"
mon_sock=$tmp/monitor.sock
mon_pid=
srv_pid=
srv_gone=

# Any process of group $1 that is not a zombie (ours stay zombies until waited for).
group_alive() {
	ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'
}
stop_group() {	# stop_group PID: SIGTERM the process group we started, SIGKILL after 5 s
	local pid=$1 i
	[[ -n $pid ]] || return 0
	kill -TERM -- "-$pid" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		group_alive "$pid" || break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
	stop_group "$srv_pid"
	srv_pid=
	stop_group "$mon_pid"
	mon_pid=
	if ((keep)); then echo "bench-real.sh: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

loadavg() { cut -d' ' -f1 /proc/loadavg; }
log_tail() {	# the last lines of a log, one line, without redis' start-up warning
	[[ -s $1 ]] && grep -v 'overcommit' "$1" | tail -n 3 | tr '\n\t' '  ' | cut -c1-300
}

# ---- the monitor: embedded default config, control socket in the temp dir ----
mon_config=
start_monitor() {
	local i
	"$monitor" --print-default-config |
		sed "s|^control_socket *=.*|control_socket = $mon_sock|" >"$tmp/monitor.conf" ||
		return 1
	grep -q "^control_socket = $mon_sock" "$tmp/monitor.conf" ||
		echo "control_socket = $mon_sock" >>"$tmp/monitor.conf"
	mon_config=$(grep -v '^#' "$tmp/monitor.conf" | grep . |
		sed 's|^control_socket.*|control_socket = <temp dir>|' | paste -sd ';' |
		sed 's/;/; /g')
	setsid "$monitor" --foreground --config "$tmp/monitor.conf" </dev/null \
		>"$tmp/monitor.log" 2>&1 &
	mon_pid=$!
	for ((i = 0; i < 100; i++)); do
		[[ -S $mon_sock ]] && return 0
		kill -0 "$mon_pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "bench-real.sh: the monitor did not start: $(log_tail "$tmp/monitor.log")" >&2
	mon_pid=
	return 1
}
counters() {	# prints "created fallbacks", or nothing
	local j
	j=$(timeout 10 "$ipcdctl" --socket "$mon_sock" --json counters 2>/dev/null) || return 1
	printf '%s %s\n' \
		"$(sed -n 's/.*"connections":{[^}]*"created":\([0-9]*\).*/\1/p' <<<"$j")" \
		"$(sed -n 's/.*"fallbacks":{"total":\([0-9]*\).*/\1/p' <<<"$j")"
}

# ---- servers: own process group (setsid), fresh port, all files in the temp dir ----
next_port=$((20000 + RANDOM % 20000))
free_port() {
	while [[ -n $(ss -Htan "( sport = :$next_port or dport = :$next_port )" 2>/dev/null) ]]; do
		next_port=$((next_port + 1))
	done
	port=$next_port
	next_port=$((next_port + 1))
}
side_env() {	# side_env SIDE: the command prefix of a side
	if [[ $1 == ipcd ]]; then
		printf '%s\n' env -u LD_PRELOAD "IPCD_SOCKET=$mon_sock" "$ipcd_run"
	else
		printf '%s\n' env -u LD_PRELOAD -u IPCD_SOCKET
	fi
}

nginx_conf() {	# nginx_conf DIR PORT
	local user=
	((EUID == 0)) && user="user root;"
	cat <<EOF
daemon off;
master_process on;
worker_processes 2;
$user
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	tcp_nodelay on;
	keepalive_requests 100000000;
	client_body_temp_path $1/body;
	proxy_temp_path $1/proxy;
	fastcgi_temp_path $1/fastcgi;
	uwsgi_temp_path $1/uwsgi;
	scgi_temp_path $1/scgi;
	types { text/html html; }
	server {
		listen 127.0.0.1:$2;
		root $1/www;
		location / { }
	}
}
EOF
}

# start_server PROG SIDE: sets srv_pid, port, srv_log; returns 1 on failure, why in $why.
start_server() {
	local prog=$1 side=$2 dir=$tmp/$1-$2 i
	local -a pre cmd
	mapfile -t pre < <(side_env "$side")
	srv_gone=
	rm -rf "$dir"
	mkdir -p "$dir/www"
	free_port
	case $prog in
	nginx)
		head -c 64 /dev/zero | tr '\0' 'x' >"$dir/www/f64.html"
		nginx_conf "$dir" "$port" >"$dir/nginx.conf"
		srv_log=$dir/error.log
		cmd=(nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log")
		;;
	redis)
		srv_log=$dir/redis.log
		cmd=(redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no
		     --daemonize no --dir "$dir" --logfile "$srv_log" --loglevel warning)
		;;
	memcached)
		srv_log=$dir/memcached.log
		cmd=(memcached -t 2 -p "$port" -l 127.0.0.1 -U 0 -c 1024)
		((EUID == 0)) && cmd+=(-u root)
		;;
	esac
	setsid "${pre[@]}" "${cmd[@]}" </dev/null >>"$dir/stdout.log" 2>&1 &
	srv_pid=$!
	[[ $prog == memcached ]] && srv_log=$dir/stdout.log
	for ((i = 0; i < 200; i++)); do
		if ! kill -0 "$srv_pid" 2>/dev/null; then
			why="$prog exited at start: $(log_tail "$srv_log")"
			[[ $srv_log == "$dir/stdout.log" ]] ||
				why="$why $(log_tail "$dir/stdout.log")"
			wait "$srv_pid" 2>/dev/null
			srv_pid=
			return 1
		fi
		[[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]] && return 0
		sleep 0.05
	done
	why="$prog did not listen on port $port within 10 s: $(log_tail "$srv_log")"
	stop_group "$srv_pid"
	srv_pid=
	return 1
}

# ---- clients -------------------------------------------------------------------------
# Cases: name, program, and the client (run by run_case). Redis request counts
# scale with --duration: about a second per unit on the kernel on a 2-core VM.
declare -A cases=(
	[nginx]="nginx-c1 nginx-c32"
	[redis]="redis-set-P1 redis-get-P1 redis-set-P16 redis-get-P16"
	[memcached]="memc-get-c1 memc-set-c1 memc-get-c32 memc-set-c32"
)
redis_n1=$((50000 * duration))
redis_n16=$((1000000 * duration))
declare -A kernel_s	# case -> how long its kernel run took (s), for the hang limit

client_cmd() {	# client_cmd CASE: sets cmd (argv) and limit (timeout, s)
	local url=http://127.0.0.1:$port/f64.html
	case $1 in
	nginx-c1) cmd=(wrk --latency -t1 -c1 -d"${duration}s" "$url") ;;
	nginx-c32) cmd=(wrk --latency -t2 -c32 -d"${duration}s" "$url") ;;
	redis-*)
		local t=${1#redis-} n=$redis_n1
		[[ ${t#*-} == P16 ]] && n=$redis_n16
		cmd=(redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n "$n" -P "${t#*-P}" -d 64
		     -t "${t%-*}" --csv)
		;;
	memc-*)
		local t=${1#memc-} c=${1##*-c} th=1
		((c > 1)) && th=2
		cmd=("$memc" --port "$port" --conns "$c" --threads "$th" --duration "$duration"
		     --op "${t%-*}" --value-size 64 --timeout $((duration + 20)))
		;;
	esac
	# A hang guard, not a deadline: wrk and ipcd-bench-memc stop on their own after
	# --duration; redis-benchmark runs a request count, so its limit is 10x what
	# the kernel took in this run (when known), at least 30 s.
	limit=$((duration * 4 + 20))
	if [[ $1 == redis-* ]]; then
		limit=$((duration * 20 + 30))
		[[ -n ${kernel_s[$1]:-} ]] && limit=$(awk -v k="${kernel_s[$1]}" \
			'BEGIN { l = int(10 * k + 1); print l < 30 ? 30 : l }')
	fi
}

# parse_CASE OUT: prints "rps p50_us p99_us" or "FAIL reason"
to_us() {	# wrk's 29.00us / 1.23ms / 1.00s
	awk -v v="$1" 'BEGIN {
		f = 1
		if (v ~ /ms$/) f = 1e3; else if (v ~ /[0-9]s$/) f = 1e6
		sub(/[a-z]+$/, "", v); printf "%.2f", v * f }'
}
parse_wrk() {
	local rps p50 p99 n errs bad
	n=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$1")
	rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1")
	p50=$(awk '$1 == "50%" { print $2 }' "$1")
	p99=$(awk '$1 == "99%" { print $2 }' "$1")
	errs=$(grep -m1 'Socket errors' "$1" | sed 's/^ *//')
	bad=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$1")
	if [[ -z $n || -z $rps ]]; then echo "FAIL no wrk summary"
	elif ((n == 0)); then echo "FAIL 0 requests completed"
	elif [[ -n $bad ]]; then echo "FAIL $bad non-2xx/3xx responses"
	elif [[ -n $errs ]]; then echo "FAIL $errs"
	else echo "$rps $(to_us "$p50") $(to_us "$p99")"
	fi
}
parse_redis() {	# "SET","rps","avg","min","p50","p95","p99","max" (ms)
	local line
	line=$(grep -m1 "^\"$2\"," "$1" | tr -d '"')
	[[ -n $line ]] || { echo "FAIL no $2 result in the output"; return; }
	awk -F, '{ printf "%s %.2f %.2f\n", $2, $5 * 1000, $7 * 1000 }' <<<"$line"
}
parse_memc() {
	local line
	line=$(grep -m1 '^op=' "$1")
	[[ -n $line ]] || { echo "FAIL no result line"; return; }
	awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	       print v["rps"], v["p50_us"], v["p99_us"] }' <<<"$line"
}

declare -A failed	# side/case -> why, once a case hung on a side (not run again)
any_fail=0
run_case() {	# run_case REPEAT SIDE CASE
	local r=$1 side=$2 name=$3 out=$tmp/runs/r$1-$2-$3 res rc t_run e
	local before='' after='' created=- fb=-
	local -a pre cmd
	if [[ -n $srv_gone ]]; then
		any_fail=1
		printf '%s\t%s\t%s\tFAIL\t\t\t\t-\t-\t%s\n' "$r" "$side" "$name" "$srv_gone" \
			>>"$raw"
		printf '  %-6s %-14s FAIL %s\n' "$side" "$name" "$srv_gone" | cut -c1-160 >&2
		return
	fi
	if [[ -n ${failed[$side/$name]+x} ]]; then
		printf '%s\t%s\t%s\tFAIL\t\t\t\t-\t-\tnot retried: %s\n' "$r" "$side" "$name" \
			"${failed[$side/$name]}" >>"$raw"
		return
	fi
	mapfile -t pre < <(side_env "$side")
	client_cmd "$name"
	[[ $side == ipcd ]] && before=$(counters)
	t_run=$(date +%s.%N)
	timeout -k 5 "$limit" "${pre[@]}" "${cmd[@]}" </dev/null >"$out.out" 2>"$out.err"
	rc=$?
	t_run=$(awk -v a="$t_run" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	if [[ $side == ipcd ]]; then
		after=$(counters)
		if [[ -n $before && -n $after ]]; then
			created=$(( ${after% *} - ${before% *} ))
			fb=$(( ${after#* } - ${before#* } ))
		fi
	fi
	if ((rc == 124 || rc == 137)); then
		res="FAIL hung: killed after ${limit} s"
	else
		case $name in
		nginx-*) res=$(parse_wrk "$out.out") ;;
		redis-*)
			local t=${name#redis-}
			t=${t%-*}
			res=$(parse_redis "$out.out" "${t^^}")
			;;
		memc-*) res=$(parse_memc "$out.out") ;;
		esac
		if ((rc != 0)) && [[ $res != FAIL* ]]; then
			res="FAIL exit status $rc"
		fi
	fi
	if [[ $res == FAIL* ]]; then
		e=$(log_tail "$out.err")
		[[ -n $e ]] && res="$res; stderr: $e"
		e=$(log_tail "$srv_log")
		[[ -n $e ]] && res="$res; server log: $e"
	fi
	if [[ -n $srv_pid ]] && ! kill -0 "$srv_pid" 2>/dev/null; then
		wait "$srv_pid"
		e=$?
		((e > 128)) && e="killed by signal $((e - 128))" || e="exit status $e"
		[[ $res == FAIL* ]] || res="FAIL"
		res="$res; the server exited ($e; not by us)"
		srv_pid=
		srv_gone="not run: the server exited during an earlier case ($e)"
	fi
	if [[ $side == ipcd && -n $mon_pid ]] && ! kill -0 "$mon_pid" 2>/dev/null; then
		[[ $res == FAIL* ]] || res="FAIL"
		res="$res; the monitor exited: $(log_tail "$tmp/monitor.log")"
	fi
	if [[ $res == FAIL* ]]; then
		any_fail=1
		((retry)) || [[ $res != "FAIL hung"* ]] || failed[$side/$name]=${res#FAIL }
		printf '%s\t%s\t%s\tFAIL\t\t\t\t%s\t%s\t%s\n' "$r" "$side" "$name" "$created" \
			"$fb" "${res#FAIL }" >>"$raw"
		printf '  %-6s %-14s FAIL %s\n' "$side" "$name" "${res#FAIL }" | cut -c1-160 >&2
	else
		read -r rps p50 p99 <<<"$res"
		[[ $side == kernel ]] && kernel_s[$name]=$t_run
		printf '%s\t%s\t%s\tok\t%s\t%s\t%s\t%s\t%s\t\n' "$r" "$side" "$name" "$rps" "$p50" \
			"$p99" "$created" "$fb" >>"$raw"
		printf '  %-6s %-14s %12s req/s  p50 %9s us  p99 %9s us  accelerated %s\n' "$side" \
			"$name" "$rps" "$p50" "$p99" "$created" >&2
	fi
}

run_program() {	# run_program REPEAT PROG SIDE
	local r=$1 prog=$2 side=$3 name list todo=0 why=
	list=${cases[$prog]}
	for name in $list; do [[ -z ${failed[$side/$name]+x} ]] && todo=1; done
	if ((todo)); then
		if [[ $side == ipcd && -z $mon_pid ]]; then
			why="no monitor"
		elif start_server "$prog" "$side"; then
			why=
		fi
	fi
	for name in $list; do
		if ((todo)) && [[ -n $why ]]; then
			any_fail=1
			printf '%s\t%s\t%s\tFAIL\t\t\t\t-\t-\t%s\n' "$r" "$side" "$name" "$why" \
				>>"$raw"
			printf '  %-6s %-14s FAIL %s\n' "$side" "$name" "$why" | cut -c1-160 >&2
		else
			run_case "$r" "$side" "$name"
		fi
	done
	stop_group "$srv_pid"
	srv_pid=
}

# ---- the run ------------------------------------------------------------------------
load_start=$(loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null)
[[ -n $(git -C "$top" status --porcelain --untracked-files=no 2>/dev/null) ]] &&
	commit="$commit (tree modified)"
t0=$SECONDS
if has "$sides" ipcd; then
	start_monitor || any_fail=1
fi
echo "bench-real: $(nproc) CPUs, load average $load_start, repeats $repeats, runs of" \
	"${duration} s, build $build; temp dir $tmp" >&2
for ((r = 1; r <= repeats; r++)); do
	order="kernel ipcd"
	((r % 2 == 0)) && order="ipcd kernel"
	echo "repeat $r/$repeats ($order)" >&2
	for prog in nginx redis memcached; do
		has "$only" "$prog" || continue
		for side in $order; do
			has "$sides" "$side" || continue
			run_program "$r" "$prog" "$side"
		done
	done
done
load_end=$(loadavg)

# Totals from the monitor, then stop it before reporting.
mon_totals=
[[ -n $mon_pid ]] && mon_totals=$(counters)
stop_group "$mon_pid"
mon_pid=

versions=$(
	echo "nginx=$(nginx -v 2>&1 | sed 's|.*/||')"
	echo "wrk=$(wrk --version 2>&1 | awk 'NR == 1 { print $2 }')"
	echo "redis=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
	echo "memcached=$(memcached -V | awk '{ print $2 }')"
)
{
	echo "started=$started"
	echo "elapsed_s=$((SECONDS - t0))"
	echo "host=$(hostname)"
	echo "nproc=$(nproc)"
	echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	echo "kernel=$(uname -r)"
	echo "build=$build"
	echo "commit=$commit"
	echo "repeats=$repeats"
	echo "duration_s=$duration"
	echo "redis_requests_P1=$redis_n1"
	echo "redis_requests_P16=$redis_n16"
	echo "sides=$sides"
	echo "loadavg_start=$load_start"
	echo "loadavg_end=$load_end"
	echo "monitor_config=$mon_config"
	echo "monitor_totals=$mon_totals"
	echo "$versions"
} >"$tmp/meta"

python3 "$here/bench_real_report.py" --raw "$raw" --meta "$tmp/meta" --json "$json" \
	${plot:+--plot "$plot"} || { any_fail=1; keep=1; }
exit "$any_fail"
