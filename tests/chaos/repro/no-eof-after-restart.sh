#!/bin/bash
# SPDX-License-Identifier: MIT
# no-eof-after-restart.sh kill|term|none - bug 4 of the chaos test.
#
# A connection made with monitor 1; monitor 1 goes (SIGKILL or SIGTERM),
# monitor 2 starts; the client is SIGKILLed. The server must read EOF (or
# ECONNRESET), as it does with "none" (no restart). Observed after a
# restart: nothing, ever (a blocking recv() waits forever): the new monitor
# does not know the connection, and nobody else tells the survivor.
cd "$(dirname "$0")"
B=${B:-$(cd ../../.. && pwd)/build/chaos}
D=$(mktemp -d /tmp/ipcd-repro-XXXX)
printf "control_socket = $D/mon.sock\n" > $D/mon.conf
$B/monitor/ipcd-monitor -f -c $D/mon.conf > $D/mon1.log 2>&1 & MP=$!; sleep 0.3
export IPCD_SOCKET=$D/mon.sock
coproc SRV { $B/preload/ipcd-run python3 peerdeath.py server 2>&1; }
read -u ${SRV[0]} PORT
coproc CLI { exec $B/preload/ipcd-run python3 peerdeath.py client $PORT 2>&1; }
read -u ${CLI[0]} L; echo "$L"; read -u ${SRV[0]} L; echo "$L"; read -u ${SRV[0]} L; echo "$L"
case $1 in
kill) kill -9 $MP;; term) kill -TERM $MP;; esac
if [ "$1" != none ]; then
	wait $MP 2>/dev/null; echo "monitor 1 stopped ($1)"
	$B/monitor/ipcd-monitor -f -c $D/mon.conf > $D/mon2.log 2>&1 & MP=$!; sleep 0.3
	echo "monitor 2 up"
fi
kill -9 $CLI_PID; echo "client SIGKILLed"
timeout 20 cat <&${SRV[0]}
kill $MP; rm -rf $D
