#!/bin/bash
# SPDX-License-Identifier: MIT
# no-reattach.sh - bug 3 of the chaos test.
#
# A process learns that its monitor died (its listen() of B fails over to
# the kernel, even if a new monitor were up already), and its next need of
# a monitor (the socket() of C) comes while none runs: it never registers
# again. Listener D, made with the new monitor up, is not accelerated (the
# monitor does not list it), nor is anything the process does afterwards.
cd "$(dirname "$0")"
B=${B:-$(cd ../../.. && pwd)/build/chaos}
D=$(mktemp -d /tmp/ipcd-repro-XXXX)
printf "control_socket = $D/mon.sock\n" > $D/mon.conf
mon() { $B/monitor/ipcd-monitor -f -c $D/mon.conf >> $D/mon.log 2>&1 & MP=$!; sleep 0.3; }
ls_() { echo "   monitor lists: $($B/monitor/ipcdctl -s $D/mon.sock --json listeners |
	grep -o '"port":[0-9]*' | tr '\n' ' ')"; }
mon
export IPCD_SOCKET=$D/mon.sock
coproc P { $B/preload/ipcd-run python3 relisten.py 2>&1; }
read -u ${P[0]} L; echo "$L"; ls_
kill -9 $MP; wait $MP 2>/dev/null; echo "monitor SIGKILLed (no monitor now)"
echo >&${P[1]}; read -u ${P[0]} L; echo "$L"; read -u ${P[0]} L; echo "$L"
echo >&${P[1]}; read -u ${P[0]} L; echo "$L"; read -u ${P[0]} L; echo "$L"
mon; echo "new monitor up"
echo >&${P[1]}; read -u ${P[0]} L; echo "$L (made with the new monitor up)"; ls_
kill $P_PID; kill $MP; rm -rf $D
