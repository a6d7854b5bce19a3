#!/usr/bin/env bash
# cases.sh - the two-guest RDMA cases of issue #7, run in both guests at once
# by tests/rdma/vm.sh (tests/rdma/run.sh does that; see README.md).
#
# Usage (inside the guests): cases.sh BUILD_DIR [CASE...]    (default: every case)
#        cases.sh --list
#
# Guest 1 is the server side, guest 0 the client side. Each guest runs its own
# ipcd-monitor (/tmp/ipcd-rdma/monitor.sock, log level debug, logs in the
# share) with the same cluster list: `peer = g0 10.77.0.1 18515` and
# `peer = g1 10.77.0.2 18515`. The guests stay in step through files in the
# share (SHARE/sync): a case begins and ends with a barrier, and in between one
# side posts what the other awaits ("the server listens", "the client is half
# way"). Every wait is bounded; a side that gives up posts an abort that ends
# the other side's waits at once. Nothing here asserts on timing: under TCG
# the guests run 10 to 30 times slower than the host, and unevenly.
#
# Two kinds of checks, reported apart:
#   data    the programs' own verdicts (ipcd-echo checks every byte, and the
#           bytes and hash both ends saw must agree), sha256 and cmp of files
#           pushed through, the expected end of a connection (ECONNRESET or
#           EOF, never a hang) when a peer or a monitor dies;
#   remote  the connections of an accelerated case went over RDMA: the
#           monitor's `ipcdctl counters` connections.remote_total grew during
#           the case, on both guests (a remote connection has an end on each).
#           The fallback case requires that it did not.
#
# Output: a line per step on stdout (the guest's console log), per case the
# programs' output in SHARE/CASE/gI-NAME.log, the monitors' logs in
# SHARE/gI-monitor.N.log, one result line per case in SHARE/results.gI.
# Exit status: 0 every check passed, 1 a check failed, 2 usage.
# shellcheck disable=SC2317  # the cases are called by name (run_case)
set -uo pipefail	# no -e: a failed check fails its case, and the run goes on

all_cases=(rxe echo fork short redis kill-peer monitor-restart fallback)

# ---- bounds: hang guards, never timing assertions ------------------------------------
t_step=${IPCD_RDMA_STEP_S:-300}		# one transfer or one program run (<= 60 s seen under load)
t_await=${IPCD_RDMA_AWAIT_S:-420}	# the other guest reaching a point (> t_step: its hang is reported as one)
t_end=${IPCD_RDMA_END_S:-180}		# a connection ending after its peer died
t_start=60				# a server or monitor coming up

if [[ ${1:-} == --list ]]; then
	printf '%s\n' "${all_cases[@]}"
	exit 0
fi
[[ $# -ge 1 ]] || { echo "usage: cases.sh BUILD_DIR [CASE...]" >&2; exit 2; }
build=$1
shift
if [[ $# -eq 0 ]]; then
	selected=("${all_cases[@]}")
else
	selected=("$@")
fi
for c in "${selected[@]}"; do
	[[ " ${all_cases[*]} " == *" $c "* ]] || { echo "cases.sh: no case '$c'" >&2; exit 2; }
done
[[ ${IPCD_VM_COUNT:-} == 2 ]] || { echo "cases.sh: runs in two guests (tests/rdma/run.sh)" >&2; exit 2; }

idx=$IPCD_VM_INDEX
me=g$idx
share=$IPCD_VM_SHARE
read -r client_ip server_ip <<<"$IPCD_VM_PEERS"
sync_dir=$share/sync
work=/tmp/ipcd-rdma
mon_conf=$work/monitor.conf
mon_sock=$work/monitor.sock
export IPCD_SOCKET=$mon_sock	# the preload's monitor

monitor_bin=$build/monitor/ipcd-monitor
ctl_bin=$build/monitor/ipcdctl
run_bin=$build/preload/ipcd-run
echo_bin=$build/tests/ipcd-echo
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

mkdir -p "$work" "$sync_dir"

say() { echo "[$me $(date +%T)] $*"; }

# ---- per-case state ---------------------------------------------------------------------
case_name=""
case_dir=""
data_fails=()
remote_fails=()
declare -A pid=()	# spawned programs of the case, by name
mon_pid=0
mon_starts=0
remote_base=0
failed_any=0
reap_limit=0
desync=0		# a barrier timed out: the guests are no longer in step

fail() {	# message: a data check failed
	say "FAIL: $*"
	data_fails+=("$*")
}

remote_fail() {	# message: the remote-connection assertion failed
	say "FAIL (remote): $*"
	remote_fails+=("$*")
}

# ---- synchronisation through files in the share ----------------------------------------

sync_file() { echo "$sync_dir/$case_name.$1"; }

post() {	# point: tell the other guest we got there
	: >"$(sync_file "$1")"
}

abort_case() {	# message: fail, and end the other side's waits in this case
	fail "$*"
	: >"$(sync_file "abort.$me")"
	return 1
}

peer_aborted() {
	local f

	for f in "$sync_dir/$case_name".abort.g*; do
		[[ -e $f && $f != *.abort.$me ]] && return 0
	done
	return 1
}

# Wait until FILE exists (bounded; a poll, not a timing assumption).
# Returns 1 if the other guest aborted the case first, or on timeout.
await_file() {	# file what [seconds]
	local file=$1 what=$2 limit=${3:-$t_await} start=$SECONDS

	until [[ -e $file ]]; do
		if peer_aborted; then
			fail "the other guest gave up on this case (we were waiting for $what)"
			return 1
		fi
		if ((SECONDS - start >= limit)); then
			abort_case "waited $limit s for $what ($file)"
			return 1
		fi
		sleep 0.1
	done
}

await() {	# point [seconds]: wait for the other guest's post
	await_file "$(sync_file "$1")" "its '$1'" "${2:-}"
}

# Both guests at POINT. Not cut short by an abort: after it the guests are in
# step again, whatever happened in the case.
barrier() {	# point
	local f start=$SECONDS

	: >"$(sync_file "$1.$me")"
	for f in "$(sync_file "$1.g0")" "$(sync_file "$1.g1")"; do
		until [[ -e $f ]]; do
			if ((SECONDS - start >= t_await)); then
				fail "barrier '$1': the other guest did not arrive within $t_await s"
				desync=1
				return 1
			fi
			sleep 0.1
		done
	done
}

# ---- programs ---------------------------------------------------------------------------

# Start CMD in the background as NAME: stdin from IN, stdout to OUT, stderr to
# the case's log for NAME (OUT defaults to it too). pid[NAME] is CMD's own pid
# (exec), so that a signal reaches the program itself, not a shell.
spawn_io() {	# name in out cmd...
	local name=$1 in=$2 out=$3 log=$case_dir/$me-$1.log

	shift 3
	[[ $out == - ]] && out=$log
	echo "# $*" >>"$log"
	(exec "$@" <"$in" >>"$out" 2>>"$log") &
	pid[$name]=$!
	say "started $name (pid ${pid[$name]}): $*"
}

spawn() {	# name cmd...
	local name=$1

	shift
	spawn_io "$name" /dev/null - "$@"
}

running() {	# pid: alive and not yet a zombie
	local state

	[[ -r /proc/$1/stat ]] || return 1
	state=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z ]]
}

# Wait for NAME to exit, at most SECONDS; its exit status, or 124 after
# killing it when it did not end in time (or 125 when the other guest aborted).
reap() {	# name seconds
	local name=$1 limit=$2 p=${pid[$1]:-} start=$SECONDS rc=0

	reap_limit=$limit
	[[ -n $p ]] || return 127
	while running "$p"; do
		if ((SECONDS - start >= limit)) || peer_aborted; then
			kill -KILL "$p" 2>/dev/null
			wait "$p" 2>/dev/null
			unset "pid[$name]"
			if peer_aborted; then
				say "$name abandoned: the other guest gave up on this case"
				return 125
			fi
			say "$name did not end within $limit s: killed"
			return 124
		fi
		sleep 0.1
	done
	wait "$p" 2>/dev/null || rc=$?	# (no "Killed" notice from bash: the caller reports)
	unset "pid[$name]"
	return "$rc"
}

# Wait for NAME (bounded) and require its exit status to be EXPECTED.
finish() {	# name seconds expected
	local rc=0

	reap "$1" "$2" || rc=$?
	check_exit "$1" "$rc" "$3"
}

# Run NAME to its end (bounded) and require exit status 0.
run_ok() {	# name cmd...
	spawn "$@"
	finish "$1" "$t_step" 0
}

check_exit() {	# name status expected
	local log=$case_dir/$me-$1.log

	if [[ $2 -eq $3 ]]; then
		return 0
	fi
	case $2 in
	124) fail "$1 hung: killed at its bound ($reap_limit s); output: $log" ;;
	*) fail "$1 exited $2, expected $3; output: $log" ;;
	esac
	sed 's/^/    | /' "$log" | tail -n 8
	return 1
}

kill_all() {
	local name

	for name in "${!pid[@]}"; do
		kill -KILL "${pid[$name]}" 2>/dev/null && say "stopped $name (left running)"
		wait "${pid[$name]}" 2>/dev/null
	done
	pid=()
}

# ---- the monitor ------------------------------------------------------------------------

write_monitor_config() {
	cat >"$mon_conf" <<EOF
# tests/rdma/cases.sh: the monitor of guest $idx. Both guests list the same
# cluster; each finds itself by its own address.
control_socket = $mon_sock
log_level = debug
peer = g0 $client_ip 18515
peer = g1 $server_ip 18515
EOF
}

monitor_start() {
	local log start=$SECONDS

	mon_starts=$((mon_starts + 1))
	log=$share/$me-monitor.$mon_starts.log
	(exec "$monitor_bin" -f -c "$mon_conf" </dev/null >"$log" 2>&1) &
	mon_pid=$!
	until "$ctl_bin" --socket "$mon_sock" status >/dev/null 2>&1; do
		if ! running "$mon_pid" || ((SECONDS - start >= t_start)); then
			fail "ipcd-monitor did not come up (log: $log)"
			tail -n 20 "$log" | sed 's/^/    | /'
			return 1
		fi
		sleep 0.1
	done
	say "monitor up (pid $mon_pid, log $log)"
}

monitor_kill() {
	kill -KILL "$mon_pid" 2>/dev/null
	wait "$mon_pid" 2>/dev/null
	say "monitor (pid $mon_pid) SIGKILLed"
	mon_pid=0
}

# connections.remote_total of our monitor: a number, "absent" (the monitor
# does not report it) or "error" (no answer).
remote_total() {
	local json

	json=$("$ctl_bin" --socket "$mon_sock" --json counters 2>/dev/null) || { echo error; return; }
	python3 -c '
import json, sys
c = json.loads(sys.argv[1]).get("connections", {})
print(c.get("remote_total", "absent"))' "$json" 2>/dev/null || echo error
}

remote_mark() {	# from now on, count remote connections from here
	local n

	n=$(remote_total)
	[[ $n =~ ^[0-9]+$ ]] || n=0
	remote_base=$n
}

# The connections of this case (since remote_mark) went over RDMA, or not.
remote_expect() {	# some|none
	local n got why=""

	n=$(remote_total)
	case $n in
	absent) got=0 why="; the monitor has no connections.remote_total counter yet" ;;
	error) remote_fail "ipcdctl counters gave no answer: cannot count remote connections"; return ;;
	*) got=$((n - remote_base)) ;;
	esac
	if [[ $1 == some ]]; then
		if ((got > 0)); then
			say "remote: $got connection(s) over RDMA on $me"
		else
			remote_fail "expected remote connections > 0, got $got (connections fell back to TCP)$why"
		fi
	elif ((got != 0)); then
		remote_fail "expected no remote connection (a peer not preloaded), got $got"
	else
		say "remote: none, as expected"
	fi
}

# What the monitor saw in this case, for whoever debugs it.
monitor_snapshot() {
	local f=$case_dir/$me-ipcdctl.txt

	{
		echo "## counters"
		"$ctl_bin" --socket "$mon_sock" counters
		echo "## connections"
		"$ctl_bin" --socket "$mon_sock" connections
		echo "## cluster"
		"$ctl_bin" --socket "$mon_sock" cluster
	} >"$f" 2>&1
}

# ---- checks on the programs' output ---------------------------------------------------

# "bytes=N hash=H" of ipcd-echo's summary line in LOG.
echo_sums() {	# log prefix
	grep "^$2 " "$1" | tail -n 1 | grep -o 'bytes=[0-9]* hash=[0-9a-f]*'
}

# The client's and the server's views of the transfer agree.
check_sums() {	# client-log server-log
	local c s

	c=$(echo_sums "$1" "client ok")
	s=$(echo_sums "$2" "server done")
	if [[ -z $c || $c != "$s" ]]; then
		fail "client and server disagree: client '${c:-no summary}' ($1), server '${s:-no summary}' ($2)"
		return 1
	fi
	say "client and server agree: $c"
}

# A connection whose peer died ended as one should: ECONNRESET or EOF.
check_end() {	# name status
	local log=$case_dir/$me-$1.log end

	check_exit "$1" "$2" 0 || return 1
	end=$(grep -o 'end=[A-Z]*' "$log" | tail -n 1)
	case $end in
	end=ECONNRESET | end=EOF) say "$1 saw the peer's death: $end" ;;
	*) fail "$1 ended with '${end:-nothing}', expected ECONNRESET or EOF ($log)" ;;
	esac
}

# NAME, an ipcd-echo server, listens (it writes its --port-file then); a
# server that exits first aborts the case at once.
await_up() {	# name probe...: wait (bounded) until PROBE succeeds while NAME runs
	local name=$1 start=$SECONDS rc=0

	shift
	until "$@" 2>/dev/null; do
		if ! running "${pid[$name]}"; then
			reap "$name" 1 || rc=$?
			check_exit "$name" "$rc" 0
			abort_case "$name exited (status $rc) without listening"
			return 1
		fi
		if peer_aborted || ((SECONDS - start >= t_start)); then
			abort_case "$name did not listen within $t_start s"
			return 1
		fi
		sleep 0.1
	done
}

await_listening() {	# name: an ipcd-echo server wrote its --port-file
	await_up "$1" test -e "$case_dir/$1.port"
}

redis_pong() { [[ $(redis-cli -h "$server_ip" -p 6379 PING) == PONG ]]; }

echo_server() {	# name port [args...]: a preloaded ipcd-echo server on our address
	local name=$1 port=$2

	shift 2
	rm -f "$case_dir/$name.port"
	spawn "$name" "$run_bin" "$echo_bin" server --host "$server_ip" --port "$port" \
		--port-file "$case_dir/$name.port" "$@"
	await_listening "$name"
}

# ---- cases: each has a _server (guest 1) and a _client (guest 0) half -------------------

# rxe: the RDMA device itself works between the guests (rping over RDMA CM),
# so that a failing case below is ours, not the environment's.
case_rxe_server() {
	ibv_devinfo -d rxe0 | grep -q 'state:.*PORT_ACTIVE' || abort_case "rxe0 is not active" || return
	spawn rping rping -s -a "$server_ip" -C 10 -S 4096
	post listening
	finish rping "$t_step" 0
}

case_rxe_client() {
	local tries=0 rc

	ibv_devinfo -d rxe0 | grep -q 'state:.*PORT_ACTIVE' || abort_case "rxe0 is not active" || return
	await listening || return
	# rping's server may not be bound yet: retry a refused connection
	while :; do
		spawn rping rping -c -a "$server_ip" -C 10 -S 4096
		rc=0
		reap rping "$t_step" || rc=$?
		[[ $rc -ne 0 && $((++tries)) -lt 20 ]] || break
		sleep 0.5
	done
	check_exit rping "$rc" 0
}

# echo: ipcd-echo, 8 connections of 4 MiB each way, every byte checked by the
# client, and the client's and the server's byte counts and hashes equal;
# then a random 16 MiB file through our echo server with a preloaded socat,
# sha256 of what came back against what went.
case_echo_server() {
	echo_server srv 7101 --conns 8 || return
	echo_server file 7102 --conns 1 || return
	post listening
	finish srv "$t_step" 0
	finish file "$t_step" 0
	post finished
}

case_echo_client() {
	local in=$work/echo-in.bin out=$work/echo-out.bin a b rc=0

	await listening || return
	run_ok cli "$run_bin" "$echo_bin" client --host "$server_ip" --port 7101 \
		--conns 8 --size 4M
	head -c 16M /dev/urandom >"$in"
	# -t: after our EOF, wait that long for the echo's (socat's default is 0.5 s)
	spawn_io socat "$in" "$out" "$run_bin" socat -t "$t_step" - "TCP:$server_ip:7102"
	reap socat "$t_step" || rc=$?
	check_exit socat "$rc" 0
	a=$(sha256sum <"$in" | cut -c1-64)
	b=$(sha256sum <"$out" | cut -c1-64)
	if [[ $a == "$b" ]]; then
		say "16 MiB through the echo: sha256 $a matches"
	else
		fail "16 MiB through the echo: sha256 sent $a, received $b ($(stat -c %s "$out") bytes)"
	fi
	await finished || return
	check_sums "$case_dir/g0-cli.log" "$case_dir/g1-srv.log"
}

# fork: a fork-per-connection server (ipcd-echo --fork: the parent accepts,
# a child serves and the parent closes its copy). The child's end is the
# parent's remote connection: its sends and reads go through the parent's
# RDMA engine, which must keep the end alive after the parent's close.
case_fork_server() {
	echo_server srv 7151 --conns 4 --fork || return
	post listening
	finish srv "$t_step" 0
	post finished
}

case_fork_client() {
	await listening || return
	run_ok cli "$run_bin" "$echo_bin" client --host "$server_ip" --port 7151 \
		--conns 4 --size 1M
	await finished || return
	check_sums "$case_dir/g0-cli.log" "$case_dir/g1-srv.log"
}

# short: connections that write and close at once, both ways (a client's
# fire-and-forget message, a server's banner-then-close), under python3: what
# was written before close() arrives whole, though the connection may close
# before the two engines have even bound it.
case_short_server() {
	spawn srv "$run_bin" python3 "$here/short.py" server "$server_ip" 7161 20
	await_up srv grep -q listening "$case_dir/$me-srv.log" || return
	post listening
	finish srv "$t_step" 0
	post finished
}

case_short_client() {
	await listening || return
	run_ok cli "$run_bin" python3 "$here/short.py" client "$server_ip" 7161 20
	await finished || return
}

# redis: redis-server preloaded on guest 1; redis-benchmark (SET, GET) and a
# 1 MiB random value SET and read back byte for byte with redis-cli, preloaded.
case_redis_server() {
	spawn redis "$run_bin" redis-server --port 6379 --bind "$server_ip" --save "" \
		--appendonly no --dir "$work" --daemonize no --logfile "" --databases 1 \
		--protected-mode no
	# up when it answers (a plain redis-cli: nothing of ours involved)
	await_up redis redis_pong || return
	post listening
	await finished || return
	kill -TERM "${pid[redis]}"
	finish redis "$t_start" 0
}

case_redis_client() {
	local v=$work/value.bin got=$work/value.got log=$case_dir/g0-bench.log r

	await listening || return
	run_ok bench "$run_bin" redis-benchmark -h "$server_ip" -p 6379 -n 2000 -c 10 \
		-t set,get -q
	# -q still draws its progress with CRs: the result is the last "SET: ..." of a line
	r=$(tr '\r' '\n' <"$log" | grep -o '^[SG]ET: [0-9.]* requests per second')
	if [[ $r == *SET:* && $r == *GET:* ]]; then
		say "redis-benchmark: $(echo "$r" | tr '\n' ' ')"
	else
		fail "redis-benchmark did not report both SET and GET ($log)"
	fi
	head -c 1M /dev/urandom >"$v"
	spawn_io set "$v" - "$run_bin" redis-cli -h "$server_ip" -p 6379 -x SET big
	finish set "$t_step" 0
	r=$(tr -d '\r' <"$case_dir/g0-set.log" | grep -v '^#')
	[[ $r == OK ]] || fail "SET of 1 MiB: reply '$r', expected OK"
	spawn_io get /dev/null "$got" "$run_bin" redis-cli -h "$server_ip" -p 6379 --raw -D "" GET big
	finish get "$t_step" 0
	if cmp -s "$v" "$got"; then
		say "1 MiB value: SET and GET back byte for byte"
	else
		fail "1 MiB value: GET differs from SET ($(stat -c %s "$got") bytes back; cmp: $(cmp "$v" "$got" 2>&1 | head -n 1))"
	fi
	post finished
}

# kill-peer: the server of a long transfer is SIGKILLed half way; the client
# must see ECONNRESET or EOF (bounded: a hang fails), and a new pair works.
case_kill_peer_server() {
	echo_server srv1 7301 --conns 1 --allow-reset || return
	post listening
	await halfway || return
	kill -KILL "${pid[srv1]}"
	finish srv1 "$t_start" 137
	say "server SIGKILLed mid-transfer"
	post killed
	echo_server srv2 7302 --conns 1 || return
	post listening2
	finish srv2 "$t_step" 0
	post finished
}

case_kill_peer_client() {
	local rc=0

	await listening || return
	spawn cli1 "$run_bin" "$echo_bin" client --host "$server_ip" --port 7301 --forever \
		--ready-at 2M --ready-file "$(sync_file halfway)"
	await killed || return
	reap cli1 "$t_end" || rc=$?
	check_end cli1 "$rc"
	await listening2 || return
	run_ok cli2 "$run_bin" "$echo_bin" client --host "$server_ip" --port 7302 --size 2M
	await finished || return
	check_sums "$case_dir/g0-cli2.log" "$case_dir/g1-srv2.log"
}

# monitor-restart: guest 1's monitor is SIGKILLed under an idle established
# connection. A remote connection must then end for the client (ECONNRESET or
# EOF, bounded). A connection that fell back to kernel TCP does not depend on
# the monitor and must stay up (it ends when the server is killed instead).
# The monitor restarts; new connections must work, and be remote ones.
case_monitor_restart_server() {
	local n mode

	echo_server srv1 7401 --conns 1 --allow-reset || return
	post listening
	await idle || return
	n=$(remote_total)
	if [[ $n =~ ^[0-9]+$ ]] && ((n > remote_base)); then
		mode=remote
	else
		mode=tcp
		remote_fail "the idle connection: expected remote connections > 0, got 0 (connections fell back to TCP)"
	fi
	echo "$mode" >"$(sync_file mode)"
	monitor_kill
	post monitor-killed
	if [[ $mode == remote ]]; then
		await client-ended || return
	else
		await client-checked || return
	fi
	kill -KILL "${pid[srv1]}"
	reap srv1 "$t_start"	# SIGKILLed: its status says nothing
	monitor_start || { abort_case "the monitor did not restart"; return; }
	remote_mark	# the new monitor counts from 0
	echo_server srv2 7402 --conns 2 || return
	post listening2
	finish srv2 "$t_step" 0
	post finished
}

case_monitor_restart_client() {
	local rc=0 mode

	await listening || return
	spawn cli1 "$run_bin" "$echo_bin" client --host "$server_ip" --port 7401 --forever \
		--idle --ready-at 64K --ready-file "$(sync_file idle)"
	await monitor-killed || return
	mode=$(cat "$(sync_file mode)")
	say "the idle connection was a $mode one"
	if [[ $mode == remote ]]; then
		reap cli1 "$t_end" || rc=$?
		check_end cli1 "$rc"
		post client-ended
	else
		if running "${pid[cli1]}"; then
			say "the kernel TCP connection outlived guest 1's monitor, as it must"
		else
			fail "a kernel TCP connection ended with guest 1's monitor ($case_dir/g0-cli1.log)"
		fi
		post client-checked
		reap cli1 "$t_end" || rc=$?
		check_end cli1 "$rc"
	fi
	remote_mark	# the assertion below is about the new connections
	await listening2 || return
	run_ok cli2 "$run_bin" "$echo_bin" client --host "$server_ip" --port 7402 --conns 2 \
		--size 1M
	await finished || return
	check_sums "$case_dir/g0-cli2.log" "$case_dir/g1-srv2.log"
}

# fallback: a server that is not preloaded and a preloaded client (then the
# other way round) talk over kernel TCP, transparently; nothing is remote.
case_fallback_server() {
	rm -f "$case_dir/srv1.port"
	spawn srv1 "$echo_bin" server --host "$server_ip" --port 7501 \
		--port-file "$case_dir/srv1.port" --conns 2
	await_listening srv1 || return
	post listening
	finish srv1 "$t_step" 0
	post finished
	echo_server srv2 7502 --conns 1 || return
	post listening2
	finish srv2 "$t_step" 0
	post finished2
}

case_fallback_client() {
	await listening || return
	run_ok cli1 "$run_bin" "$echo_bin" client --host "$server_ip" --port 7501 --conns 2 \
		--size 1M
	await finished || return
	check_sums "$case_dir/g0-cli1.log" "$case_dir/g1-srv1.log"
	await listening2 || return
	run_ok cli2 "$echo_bin" client --host "$server_ip" --port 7502 --size 1M
	await finished2 || return
	check_sums "$case_dir/g0-cli2.log" "$case_dir/g1-srv2.log"
}

# ---- running a case -------------------------------------------------------------------

run_case() {	# name
	local fn=case_${1//-/_} side data remote start=$SECONDS

	case_name=$1
	case_dir=$share/$1
	data_fails=()
	remote_fails=()
	side=$([[ $idx -eq 1 ]] && echo server || echo client)
	mkdir -p "$case_dir"
	say "==== $case_name ($side side)"
	if barrier begin; then
		# a case that killed the monitor and could not restart it: try again
		running "$mon_pid" || monitor_start
		remote_mark
		"${fn}_$side"
		kill_all
		monitor_snapshot
		case $case_name in
		rxe) ;;
		fallback) remote_expect none ;;
		*) remote_expect some ;;
		esac
		barrier end
	fi

	data=ok
	remote=ok
	[[ ${#data_fails[@]} -eq 0 ]] || data=FAIL
	[[ ${#remote_fails[@]} -eq 0 ]] || remote=FAIL
	[[ $case_name == rxe ]] && remote=n/a
	[[ $data == ok && $remote != FAIL ]] || failed_any=1
	{
		printf '%-16s data=%-4s remote=%-4s %4ds' "$case_name" "$data" "$remote" $((SECONDS - start))
		for m in "${data_fails[@]}" "${remote_fails[@]}"; do
			printf ' | %s' "$m"
		done
		echo
	} >>"$share/results.$me"
	say "==== $case_name: data $data, remote $remote ($((SECONDS - start)) s)"
}

main() {
	local c

	for f in "$monitor_bin" "$ctl_bin" "$run_bin" "$echo_bin"; do
		[[ -x $f ]] || { echo "cases.sh: $f: not built" >&2; exit 2; }
	done
	: >"$share/results.$me"
	say "guest $idx of 2, $IPCD_VM_IP; server $server_ip, client $client_ip; build $build"
	write_monitor_config
	if ! monitor_start; then
		echo "monitor-start data=FAIL remote=n/a | ipcd-monitor did not start" >>"$share/results.$me"
		exit 1
	fi
	for c in "${selected[@]}"; do
		run_case "$c"
		if [[ $desync -eq 1 ]]; then
			say "the guests are out of step: the remaining cases are not run"
			echo "(out of step after $c: later cases not run)" >>"$share/results.$me"
			failed_any=1
			break
		fi
	done
	kill -TERM "$mon_pid" 2>/dev/null && wait "$mon_pid"
	say "results:"
	sed 's/^/    /' "$share/results.$me"
	exit "$failed_any"
}

main
