#!/bin/bash
# SPDX-License-Identifier: MIT
# late-answer-reset.sh - bug 6 of the chaos test.
#
# The monitor answers a call after more than 5 s (here: SIGSTOPped for 7 s;
# in the chaos test: a loaded ASan monitor): the caller gives up and
# detaches (closes its control socket), and the monitor, when it runs again,
# takes the live caller for dead and ends its established connections: the
# server reads EOF from a client that is alive and never closed.
cd "$(dirname "$0")"
B=${B:-$(cd ../../.. && pwd)/build/chaos}
D=$(mktemp -d /tmp/ipcd-repro-XXXX)
printf "control_socket = $D/mon.sock\n" > $D/mon.conf
$B/monitor/ipcd-monitor -f -c $D/mon.conf > $D/mon.log 2>&1 & MP=$!; sleep 0.3
export IPCD_SOCKET=$D/mon.sock IPCD_LANES=0
coproc SRV { exec $B/preload/ipcd-run python3 slowmon.py server 2>&1; }
read -u ${SRV[0]} PORT
coproc CLI { exec $B/preload/ipcd-run python3 slowmon.py client $PORT 2>&1; }
read -u ${CLI[0]} L; echo "$L"; read -u ${SRV[0]} L; echo "$L"
kill -STOP $MP; echo "monitor SIGSTOPped (it answers nothing for 7 s)"
echo >&${CLI[1]}; sleep 7; kill -CONT $MP; echo "monitor SIGCONTed"
read -u ${CLI[0]} L; echo "$L"; sleep 1
echo >&${CLI[1]}; read -u ${CLI[0]} L; echo "$L"
timeout 5 cat <&${SRV[0]}
echo "--- monitor log:"; grep "python3" $D/mon.log | grep -v registered
echo >&${CLI[1]}; kill $MP $SRV_PID 2>/dev/null; rm -rf $D
