/* SPDX-License-Identifier: MIT */
/*
 * it_preload_limits.c - the monitor's limits seen by real programs (issue #8
 * item 4, docs/limits.md): python3 under the preload makes connections,
 * pipes and socketpairs past max_process_connections = 3.
 *   limit_action = error: the calls past the cap fail with the kernel's
 *       errno (connect: EMFILE; a connect to a listener whose process is at
 *       its cap: ECONNREFUSED; pipe: EMFILE; socketpair: EMFILE), leave no
 *       descriptor behind, and the ones before carry data;
 *   limit_action = kernel (the default): every call succeeds, those past
 *       the cap over the kernel (the fallback counter "limit" says so).
 * After each case: no process registered, no connection left, the
 * monitor's fds back to their baseline.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t_progs.h"

#define CAP	3
#define TRIES	6	/* CAP of them succeed */

/*
 * py_limits WHAT N: N tries of WHAT, each "ok" (and checked to carry a
 * byte), or the errno's name; then "leak=" the descriptors the refused
 * tries left behind (the count after the last try less the count after the
 * last success, or the first try: a refused call must leave nothing, kernel
 * objects included).
 *   tcp:    connect to its own listener (the process is charged once);
 *   peer:   connect to PORT (argv[3]) of another process;
 *   pipe, socketpair.
 */
static const char py_limits[] =
	"import errno, os, socket, sys\n"
	"what, n = sys.argv[1], int(sys.argv[2])\n"
	"res, keep = [], []\n"
	"def fds():\n"
	"    return len(os.listdir('/proc/self/fd'))\n"
	"if what == 'tcp':\n"
	"    srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(64)\n"
	"    port = srv.getsockname()[1]\n"
	"    keep.append(srv)\n"
	"else:\n"
	"    port = int(sys.argv[3]) if len(sys.argv) > 3 else 0\n"
	"after_ok = fds()\n"
	"for i in range(n):\n"
	"    msg = b'%05d' % i\n"
	"    try:\n"
	"        if what in ('tcp', 'peer'):\n"
	"            c = socket.socket()\n"
	"            try:\n"
	"                c.connect(('127.0.0.1', port))\n"
	"            except OSError:\n"
	"                c.close(); raise\n"
	"            if what == 'tcp':\n"
	"                a, _ = srv.accept()\n"
	"            else:\n"
	"                a = c\n"
	"            c.sendall(msg)\n"
	"            ok = a.recv(5) == msg\n"
	"            keep += [c, a]\n"
	"        elif what == 'pipe':\n"
	"            r, w = os.pipe()\n"
	"            os.write(w, msg); ok = os.read(r, 5) == msg\n"
	"            keep += [r, w]\n"
	"        else:\n"
	"            x, y = socket.socketpair()\n"
	"            x.sendall(msg); ok = y.recv(5) == msg\n"
	"            keep += [x, y]\n"
	"        res.append('ok' if ok else 'BAD')\n"
	"        after_ok = fds()\n"
	"    except OSError as e:\n"
	"        res.append(errno.errorcode.get(e.errno, str(e.errno)))\n"
	"    if i == 0:\n"
	"        after_ok = fds()  # the library registered by now\n"
	"print('RESULT %s leak=%d' % (' '.join(res), fds() - after_ok), flush=True)\n";

/*
 * An echo listener of another process, preloaded, for "peer": python3
 * accepting and echoing until killed; its port in @pf.
 */
static const char py_echo[] =
	"import socket, sys, threading\n"
	"srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(64)\n"
	"conns = []\n"
	"def serve(a):\n"
	"    while True:\n"
	"        b = a.recv(64)\n"
	"        if not b: return\n"
	"        a.sendall(b)\n"
	"open(sys.argv[1] + '.tmp', 'w').write('%d\\n' % srv.getsockname()[1])\n"
	"import os; os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
	"while True:\n"
	"    a, _ = srv.accept(); conns.append(a)\n"
	"    threading.Thread(target=serve, args=(a,), daemon=True).start()\n";

/* Run py_limits @what (@port for "peer") and return its RESULT line (static). */
static const char *run_limits(struct t_state *s, const char *what, unsigned int tries,
			      unsigned int port)
{
	static char line[256];
	char n[8], p[8];
	struct t_prog py;
	const char *l;

	snprintf(n, sizeof(n), "%u", tries);
	snprintf(p, sizeof(p), "%u", port);
	{
		char *const argv[] = { (char *)"python3", (char *)"-c", (char *)py_limits,
				       (char *)what, n, port ? p : NULL, NULL };

		t_prog_startv(&py, s->mon.dir, what, true, argv);
	}
	t_prog_expect(&py, T_PROG_GUARD_MS, 0);
	l = t_line(py.out, "RESULT ");
	if (!l) {
		t_prog_dump(&py);
		fail_msg("%s: no RESULT line", what);
	}
	snprintf(line, sizeof(line), "%s", l);
	fprintf(stderr, "%s: %s\n", what, line);
	t_prog_free(&py);
	return line;
}

static void expect_line(const char *line, const char *want)
{
	if (strncmp(line, want, strlen(want)))
		fail_msg("got '%s', want '%s'", line, want);
}

static void test_error_action(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_mon_write_config(&s->mon, "max_process_connections = 3\nlimit_action = error\n");
	t_case_begin(s, &c0);
	/* A process's 3 connections to itself, then EMFILE, and no fd left over. */
	expect_line(run_limits(s, "tcp", TRIES, 0), "RESULT ok ok ok EMFILE EMFILE EMFILE leak=0");
	expect_line(run_limits(s, "pipe", TRIES, 0), "RESULT ok ok ok EMFILE EMFILE EMFILE leak=0");
	expect_line(run_limits(s, "socketpair", TRIES, 0),
		    "RESULT ok ok ok EMFILE EMFILE EMFILE leak=0");
	assert_true(t_counter(&s->mon, "limit_connections") >= 9);
	t_case_finish(s);
}

static void test_error_action_peer(void **state)
{
	struct t_state *s = *state;
	struct t_prog echo;
	char pf[160], *txt;
	unsigned int port;
	struct t_ctr c0;

	t_mon_write_config(&s->mon, "max_process_connections = 3\nlimit_action = error\n");
	t_case_begin(s, &c0);
	snprintf(pf, sizeof(pf), "%s/echo.port", s->mon.dir);
	{
		char *const argv[] = { (char *)"python3", (char *)"-c", (char *)py_echo, pf, NULL };

		t_prog_startv(&echo, s->mon.dir, "py-echo", true, argv);
	}
	t_file_wait(pf, &echo, T_PROG_START_MS);
	txt = t_file_read(pf);
	port = (unsigned int)strtoul(txt, NULL, 10);
	free(txt);
	/*
	 * 3 connections to the echo server, which never closes its ends: they
	 * stay charged to it after the client's exit. The next connector is
	 * refused, as by a listener that takes no more.
	 */
	expect_line(run_limits(s, "peer", CAP, port), "RESULT ok ok ok leak=0");
	/*
	 * Two of them were lane kits, charged to the server once it says it
	 * accepted them (a lazy request): a query makes the monitor serve
	 * what is queued before it answers.
	 */
	assert_true(t_counter(&s->mon, "accepted") >= CAP);
	expect_line(run_limits(s, "peer", 3, port),
		    "RESULT ECONNREFUSED ECONNREFUSED ECONNREFUSED leak=0");
	kill(echo.pid, SIGKILL);
	t_prog_wait(&echo, T_PROG_GUARD_MS);
	t_prog_free(&echo);
	t_case_finish(s);
}

static void test_kernel_action(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_mon_write_config(&s->mon, "max_process_connections = 3\n");
	t_case_begin(s, &c0);
	expect_line(run_limits(s, "tcp", TRIES, 0), "RESULT ok ok ok ok ok ok leak=0");
	expect_line(run_limits(s, "pipe", TRIES, 0), "RESULT ok ok ok ok ok ok leak=0");
	/* The three past the cap went to the kernel, and the monitor says why. */
	assert_true(t_counter(&s->mon, "limit") >= 3);
	assert_true(t_counter(&s->mon, "limit_connections") >= 6);
	t_case_finish(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_BOTH(test_error_action),
		T_ONCE(test_error_action_peer),
		T_ONCE(test_kernel_action),
	};

#if defined(IPCD_SANITIZED) && !defined(IPCD_ASAN_RUNTIME)
	fprintf(stderr, "it_preload_limits: skipped in ThreadSanitizer builds "
			"(ThreadSanitizer cannot be preloaded)\n");
	return T_EXIT_SKIP;
#endif
	return cmocka_run_group_tests(tests, NULL, NULL);
}
