#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench/soak-repro-unix-kill.sh - the reproducer of the soak's finding S1
# (docs/reliability.md, Findings): a named AF_UNIX connection whose connector
# is SIGKILLed right after connect() can stay in the monitor, unclaimed
# ("closing" in ipcdctl connections), charged to the listener's process, for
# as long as the listener lives.
#
#   bench/soak-repro-unix-kill.sh [--build DIR] [-n N] [--delay US] [--tcp]
#
# A monitor of its own (temp dir), then under ipcd-run: a listener process
# whose forked server accepts and reads each connection until EOF; N times
# (default 1000) a forked child connects, writes a byte and waits, and is
# SIGKILLed 0..US (default 3000) us after the fork. 5 s later, the server
# still up, every connection must be gone. Exit 0: none left; 1: leaked
# connections (listed); 2: could not run. --tcp: the same over TCP
# 127.0.0.1 (no leak seen there).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build/soak
n=1000
delay=3000
kind=unix
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	-n) n=$2; shift 2 ;;
	--delay) delay=$2; shift 2 ;;
	--tcp) kind=tcp; shift ;;
	-h|--help) sed -n '3,20p' "$0"; exit 0 ;;
	*) echo "soak-repro-unix-kill.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
for b in monitor/ipcd-monitor monitor/ipcdctl preload/ipcd-run; do
	[ -x "$build/$b" ] || { echo "no $build/$b: build first" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/ipcd-repro-XXXXXX)
cat >"$tmp/ukill.c" <<'EOF'
/* ukill PATH N MAXDELAY_US unix|tcp: see soak-repro-unix-kill.sh */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t srv;

static void on_term(int sig)
{
	(void)sig;
	kill(srv, SIGKILL);	/* the listener's other process */
	_exit(0);
}

int main(int argc, char **argv)
{
	struct sockaddr_un u = { .sun_family = AF_UNIX };
	struct sockaddr_in in = { .sin_family = AF_INET };
	int n = atoi(argv[2]), maxd = atoi(argv[3]), tcp = !strcmp(argv[4], "tcp"), l, i;
	struct sockaddr *sa = tcp ? (struct sockaddr *)&in : (struct sockaddr *)&u;
	socklen_t salen = tcp ? sizeof(in) : sizeof(u);

	snprintf(u.sun_path, sizeof(u.sun_path), "%s", argv[1]);
	unlink(argv[1]);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM, 0);
	if (bind(l, sa, salen) || listen(l, 128) || getsockname(l, sa, &salen)) {
		perror("ukill: bind/listen");
		return 2;
	}
	srv = fork();
	if (srv == 0) {
		for (;;) {
			int c = accept(l, NULL, NULL);
			char b[64];

			if (c < 0 && errno == EINTR)
				continue;
			if (c < 0)
				_exit(2);
			for (;;) {
				struct pollfd pf = { .fd = c, .events = POLLIN };

				/* a connection that never ends is left open (not seen) */
				if (poll(&pf, 1, 5000) <= 0 || read(c, b, sizeof(b)) <= 0)
					break;
			}
			close(c);
		}
	}
	close(l);
	signal(SIGTERM, on_term);
	srand(1);
	for (i = 0; i < n; i++) {
		pid_t p = fork();

		if (p == 0) {
			int s = socket(sa->sa_family, SOCK_STREAM, 0);

			if (connect(s, sa, salen) == 0 && write(s, "x", 1) < 0)
				_exit(1);
			pause();
			_exit(0);
		}
		usleep((useconds_t)(rand() % (maxd + 1)));
		kill(p, SIGKILL);
		waitpid(p, NULL, 0);
	}
	printf("done %d\n", n);
	fflush(stdout);
	sleep(30);	/* the server stays up while the monitor is looked at */
	kill(srv, SIGKILL);
	waitpid(srv, NULL, 0);
	return 0;
}
EOF
cc -O2 -o "$tmp/ukill" "$tmp/ukill.c"

"$build/monitor/ipcd-monitor" --print-default-config |
	sed "s#^control_socket.*#control_socket = $tmp/m.sock#" >"$tmp/m.conf"
"$build/monitor/ipcd-monitor" --foreground --config "$tmp/m.conf" >"$tmp/monitor.log" 2>&1 &
mon=$!
i=0
while [ ! -S "$tmp/m.sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
IPCD_SOCKET=$tmp/m.sock "$build/preload/ipcd-run" "$tmp/ukill" "$tmp/u.sock" "$n" "$delay" \
	"$kind" >"$tmp/ukill.out" 2>&1 &
uk=$!
i=0
while ! grep -q done "$tmp/ukill.out" 2>/dev/null && [ $i -lt 600 ]; do
	kill -0 $uk 2>/dev/null || break
	sleep 1
	i=$((i + 1))
done
sleep 5		# lazy CLOSEs; the monitor looks at least every 100 ms
ctl="$build/monitor/ipcdctl --socket $tmp/m.sock"
left=$($ctl --json status | sed -n 's/.*"connections":\([0-9]*\).*/\1/p')
echo "$n connectors ($kind) SIGKILLed 0..$delay us after fork; 5 s later, the server up:"
$ctl status | grep -E '^(processes|connections)'
$ctl processes
[ "${left:-0}" -gt 0 ] && $ctl connections | head -12
kill $uk 2>/dev/null || true
wait $uk 2>/dev/null || true
sleep 2
echo "after the listener's processes exited:"
$ctl status | grep -E '^connections'
kill $mon
wait $mon 2>/dev/null || true
if [ "${left:-0}" -gt 0 ]; then
	echo "LEAK: $left connections outlived their connectors (logs: $tmp)"
	exit 1
fi
echo "no connection left"
rm -rf "$tmp"
