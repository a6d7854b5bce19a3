#!/bin/bash
# SPDX-License-Identifier: MIT
# lost-unaccepted.sh tcp|unix kill|term - bugs 1 and 2 of the chaos test.
#
# A client connects (accelerated) and sends "ping"; the server has not
# accepted yet when the monitor goes (SIGKILL or SIGTERM). Then the server
# accepts and echoes. With the kernel the connection waits in the backlog
# and the echo comes back. Observed:
#   tcp:  the connection is lost with the monitor's backlog: the server's
#         accept() never returns it ("the monitor cannot serve it: kernel
#         connections only"), the client's recv() waits forever.
#   unix: split: the client has an accelerated end, the server accepts the
#         kernel connection (the claim fails) and reads EOF at once; the
#         client's "ping" is lost and its recv() waits forever.
# B=build dir (default build/chaos). Needs python3.
cd "$(dirname "$0")"
B=${B:-$(cd ../../.. && pwd)/build/chaos}
FAM=$1 HOW=$2
D=$(mktemp -d /tmp/ipcd-repro-XXXX)
printf "control_socket = $D/mon.sock\n" > $D/mon.conf
$B/monitor/ipcd-monitor -f -c $D/mon.conf > $D/mon.log 2>&1 & MP=$!
sleep 0.3
export IPCD_SOCKET=$D/mon.sock IPCD_LANES=0
coproc SRV { exec $B/preload/ipcd-run python3 server.py $FAM $D/srv.sock 2>&1; }
read -u ${SRV[0]} ADDR; echo "server listening on $ADDR"
coproc CLI { exec $B/preload/ipcd-run python3 client.py $FAM $ADDR 2>&1; }
read -u ${CLI[0]} L; echo "$L"
echo "monitor: $($B/monitor/ipcdctl -s $D/mon.sock status | grep connections)"
if [ "$HOW" = kill ]; then kill -9 $MP; else kill -TERM $MP; fi; wait $MP 2>/dev/null
echo "monitor stopped with $HOW"
echo go >&${SRV[1]}
echo go >&${CLI[1]}
timeout 15 cat <&${CLI[0]}
echo "--- server said:"; timeout 2 cat <&${SRV[0]}
kill $SRV_PID $CLI_PID 2>/dev/null; rm -rf $D
