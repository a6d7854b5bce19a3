/* SPDX-License-Identifier: MIT */
/*
 * it_preload_faults.c - processes die under the preload (issue #4 item 9):
 *   kill-client: SIGKILL the preloaded client mid-transfer (busy, and idle
 *       with the server blocked in recv; 1 and 8 connections): the server
 *       sees EOF or ECONNRESET (EPIPE if it was writing) and exits;
 *   kill-server: SIGKILL the server mid-transfer (busy, idle): the client
 *       sees ECONNRESET, EPIPE or EOF and exits;
 *   kill-monitor: SIGKILL the monitor with connections open: they carry on
 *       to the end (every byte verified), a new connection afterwards works
 *       (over the kernel), and nothing hangs;
 *   churn: a long-lived preloaded client opens and closes 2000 connections
 *       to a long-lived preloaded server: neither process ends with more fds
 *       or memfd mappings than it had after its first connection.
 * After each case: no process registered, no connection left, the monitor's
 * fd count back to its baseline, no new /dev/shm entry.
 *
 * Nothing asserts timing. The kill-to-notice delays are hang-guarded at
 * T_PEER_DEATH_MS (10 s) and PRINTED ("delay:" lines): the issue wants them
 * <= 1 s. ThreadSanitizer builds skip (77), like it_preload_passthrough.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attach.h"
#include "t_progs.h"


/*
 * SIGKILL @victim at a measured instant, then wait (bounded by the hang
 * guard) for @watcher to exit; returns the kill instant.
 */
static uint64_t kill_and_watch(struct t_prog *victim, struct t_prog *watcher, const char *what,
			       uint64_t *exit_ms)
{
	uint64_t t_kill;
	int code;

	t_kill = t_mono_ns();
	if (kill(victim->pid, SIGKILL))
		fail_msg("kill %s: %s", victim->label, strerror(errno));
	code = t_prog_wait(watcher, T_PEER_DEATH_MS);
	*exit_ms = (t_mono_ns() - t_kill) / 1000000;
	if (code != 0) {
		t_prog_dump(watcher);
		if (code == -1)
			fail_msg("%s: %s still running %d ms after %s was SIGKILLed (hang guard; "
				 "output above)", what, watcher->label, T_PEER_DEATH_MS,
				 victim->label);
		fail_msg("%s: %s exited %d after %s was SIGKILLed (output above)", what,
			 watcher->label, code, victim->label);
	}
	t_prog_wait(victim, T_PROG_GUARD_MS);
	return t_kill;
}

/*
 * Every "@prefix ... end=KIND ... t_mono_ns=T" line of @p: KIND must be one
 * of @allowed (space-separated, with a trailing space); prints each delay
 * after @t_kill. Returns how many lines.
 */
static unsigned int check_ends(struct t_prog *p, const char *prefix, const char *allowed,
			       uint64_t t_kill, uint64_t exit_ms, const char *what)
{
	const char *text = t_prog_read(p), *l = text;
	unsigned int n = 0;
	uint64_t worst = 0;

	while ((l = strstr(l, prefix))) {
		char line[512], kind[40], where[40] = "?", pat[48];
		uint64_t t = 0, d;
		size_t len = strcspn(l, "\n");

		snprintf(line, sizeof(line), "%.*s", (int)len, l);
		l += len;
		if (!t_kv_word(line, "end", kind, sizeof(kind)))
			continue;
		t_kv_word(line, "where", where, sizeof(where));
		if (!t_kv_u64(line, "t_mono_ns", false, &t))
			fail_msg("%s: no t_mono_ns in \"%s\"", what, line);
		snprintf(pat, sizeof(pat), "%s ", kind);
		if (!strstr(allowed, pat)) {
			t_prog_dump(p);
			fail_msg("%s: %s saw the end as %s (in %s); expected one of: %s", what,
				 p->label, kind, where, allowed);
		}
		d = t > t_kill ? (t - t_kill) / 1000 : 0;
		if (d > worst)
			worst = d;
		fprintf(stderr, "delay: %s: %s saw %s (in %s) %" PRIu64 ".%03" PRIu64
			" ms after the SIGKILL\n", what, p->label, kind, where, d / 1000, d % 1000);
		n++;
	}
	fprintf(stderr, "delay: %s: %u connection ends, the last seen %" PRIu64 ".%03" PRIu64
		" ms after the SIGKILL; %s exited %" PRIu64 " ms after it%s\n", what, n,
		worst / 1000, worst % 1000, p->label, exit_ms,
		worst > 1000000 || exit_ms > 1000 ? "  ** over the issue's 1 s **" : "");
	return n;
}

/* ---- SIGKILL of the client ---------------------------------------------------- */

static void kill_client(void **state, const char *srv_mode, unsigned int conns, bool idle,
			const char *what)
{
	struct t_state *s = *state;
	const char *dir = s->mon.dir;
	struct t_prog srv, cli;
	char args[512], ready[160];
	uint64_t t_kill, exit_ms;
	unsigned int port;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	snprintf(args, sizeof(args), "%s --conns %u --report --allow-reset", srv_mode, conns);
	port = t_echo_server(&srv, dir, "server", true, args);
	snprintf(ready, sizeof(ready), "%s/ready", dir);
	snprintf(args, sizeof(args), "client --port %u --conns %u --forever %s --ready-at 1m "
		 "--ready-file %s", port, conns, idle ? "--idle" : "", ready);
	t_prog_start(&cli, dir, "client", true, args);
	t_file_wait(ready, &cli, T_PROG_GUARD_MS);
	t_expect_live_bytes(&s->mon, conns, 1 << 20, what);
	if (idle)
		t_sleep_ms(100);	/* let the server block in recv */
	t_kill = kill_and_watch(&cli, &srv, what, &exit_ms);
	if (check_ends(&srv, "server conn=", "EOF ECONNRESET EPIPE ", t_kill, exit_ms, what) !=
	    conns)
		fail_msg("%s: the server reported fewer than %u connection ends", what, conns);
	t_expect_accelerated(&s->mon, &c0, conns, what);
	t_prog_free(&srv);
	t_prog_free(&cli);
	t_case_finish(s);
}

static void test_kill_client_busy(void **state)
{
	kill_client(state, "", 1, false, "kill client (busy, thread server)");
}

static void test_kill_client_idle(void **state)
{
	kill_client(state, "", 1, true, "kill client (idle, server in recv)");
}

static void test_kill_client_8_nonblock(void **state)
{
	kill_client(state, "--nonblock", 8, false, "kill client (8 conns, poll server)");
}

/* ---- SIGKILL of the server ---------------------------------------------------- */

static void kill_server(void **state, const char *srv_mode, bool idle, const char *what)
{
	struct t_state *s = *state;
	const char *dir = s->mon.dir;
	struct t_prog srv, cli;
	char args[512], ready[160];
	uint64_t t_kill, exit_ms;
	unsigned int port;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	snprintf(args, sizeof(args), "%s --conns 1 --report", srv_mode);
	port = t_echo_server(&srv, dir, "server", true, args);
	snprintf(ready, sizeof(ready), "%s/ready", dir);
	snprintf(args, sizeof(args), "client --port %u --forever %s --ready-at 1m --ready-file %s",
		 port, idle ? "--idle" : "", ready);
	t_prog_start(&cli, dir, "client", true, args);
	t_file_wait(ready, &cli, T_PROG_GUARD_MS);
	t_expect_live_bytes(&s->mon, 1, 1 << 20, what);
	if (idle)
		t_sleep_ms(100);	/* let the client block in read */
	t_kill = kill_and_watch(&srv, &cli, what, &exit_ms);
	if (check_ends(&cli, "client conn=", "EOF ECONNRESET EPIPE ", t_kill, exit_ms, what) != 1)
		fail_msg("%s: the client reported no connection end", what);
	t_expect_accelerated(&s->mon, &c0, 1, what);
	t_prog_free(&srv);
	t_prog_free(&cli);
	t_case_finish(s);
}

static void test_kill_server_busy(void **state)
{
	kill_server(state, "", false, "kill server (busy)");
}

static void test_kill_server_idle(void **state)
{
	kill_server(state, "--nonblock", true, "kill server (idle, client in read)");
}

/* ---- SIGKILL of the monitor ------------------------------------------------------ */

static void test_kill_monitor(void **state)
{
	struct t_state *s = *state;
	const char *dir = s->mon.dir;
	struct t_prog srv, cli, cli2;
	char args[512], ready[160], go[160], h[3][40];
	uint64_t b[3] = { 0 }, hv[3] = { 0 };
	const char *l;
	unsigned int port;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	port = t_echo_server(&srv, dir, "server", true, "--nonblock --conns 5 --report");
	snprintf(ready, sizeof(ready), "%s/ready", dir);
	snprintf(go, sizeof(go), "%s/go", dir);
	snprintf(args, sizeof(args), "client --port %u --conns 4 --size 16m --rcvtimeo 30000 "
		 "--ready-at 2m --ready-file %s --wait-file %s", port, ready, go);
	t_prog_start(&cli, dir, "client", true, args);
	t_file_wait(ready, &cli, T_PROG_GUARD_MS);
	t_expect_live_bytes(&s->mon, 4, 2 << 20, "kill monitor");
	t_expect_accelerated(&s->mon, &c0, 4, "kill monitor (before)");
	t_mon_kill(&s->mon);
	fprintf(stderr, "kill monitor: monitor SIGKILLed with 4 connections open\n");
	t_file_create(go);
	t_prog_expect(&cli, T_PROG_GUARD_MS, 0);
	fprintf(stderr, "kill monitor: %s\n", t_line(cli.out, "client ok"));
	/* a new connection without a monitor: over the kernel */
	snprintf(args, sizeof(args),
		 "client --port %u --conns 1 --size 1m --seed 9 --rcvtimeo 30000", port);
	t_prog_start(&cli2, dir, "client-after", true, args);
	t_prog_expect(&cli2, T_PROG_GUARD_MS, 0);
	fprintf(stderr, "kill monitor: after: %s\n", t_line(cli2.out, "client ok"));
	t_prog_expect(&srv, T_PROG_GUARD_MS, 0);
	/* the server's hash and bytes are the sums over both clients' connections */
	l = t_line(cli.out, "client ok");
	if (!l || !t_kv_u64(l, "bytes", false, &b[0]) || !t_kv_u64(l, "hash", true, &hv[0]))
		fail_msg("client: no result line");
	l = t_line(cli2.out, "client ok");
	if (!l || !t_kv_u64(l, "bytes", false, &b[1]) || !t_kv_u64(l, "hash", true, &hv[1]))
		fail_msg("client-after: no result line");
	l = t_line(srv.out, "server done");
	if (!l || !t_kv_u64(l, "bytes", false, &b[2]) || !t_kv_u64(l, "hash", true, &hv[2]) ||
	    !strstr(l, "eof=5 reset=0 errors=0")) {
		t_prog_dump(&srv);
		fail_msg("server: expected 5 clean connections: %s", l ? l : "(no summary)");
	}
	snprintf(h[0], sizeof(h[0]), "%016" PRIx64, hv[0] + hv[1]);
	snprintf(h[1], sizeof(h[1]), "%016" PRIx64, hv[2]);
	if (b[0] + b[1] != b[2] || strcmp(h[0], h[1]))
		fail_msg("server got %" PRIu64 " bytes, hash %s; the clients sent %" PRIu64
			 ", hash %s", b[2], h[1], b[0] + b[1], h[0]);
	t_prog_free(&srv);
	t_prog_free(&cli);
	t_prog_free(&cli2);
	t_case_finish(s);	/* the monitor is gone: /dev/shm only */
}

/* ---- fds of long-lived processes -------------------------------------------------- */

static void test_churn_no_leak(void **state)
{
	struct t_state *s = *state;
	const char *dir = s->mon.dir, *l;
	struct t_prog srv, cli;
	uint64_t first = 0, end = 0;
	long long closed0, dead0;
	char args[256];
	unsigned int port;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	closed0 = t_counter(&s->mon, "closed") + t_counter(&s->mon, "closed_early");
	dead0 = t_counter(&s->mon, "dead_ends");
	port = t_echo_server(&srv, dir, "server", true, "--nonblock --conns 2001");
	/* Both may keep IPCD_MCACHE_SLOTS idle mappings, filled as lane regions appear. */
	snprintf(args, sizeof(args), "churn --port %u --count 2000 --map-slack %u", port,
		 IPCD_MCACHE_SLOTS);
	t_prog_start(&cli, dir, "churn", true, args);
	t_prog_expect(&cli, T_PROG_GUARD_MS, 0);
	t_prog_expect(&srv, T_PROG_GUARD_MS, 0);
	fprintf(stderr, "churn: %s\n", t_line(cli.out, "churn ok"));
	l = t_line(srv.out, "server done");
	fprintf(stderr, "churn: %s\n", l ? l : "(no summary)");
	if (!l || !t_kv_u64(l, "fds_idle_first", false, &first) ||
	    !t_kv_u64(l, "fds_end", false, &end) || !strstr(l, "eof=2001 reset=0 errors=0"))
		fail_msg("server: expected 2001 clean connections: %s", l ? l : "(no summary)");
	if (end > first)
		fail_msg("server: %" PRIu64 " fds leaked over 2000 connections (%" PRIu64
			 " after the first, %" PRIu64 " at the end)", end - first, first, end);
	if (!t_kv_u64(l, "memfd_maps_idle_first", false, &first) ||
	    !t_kv_u64(l, "memfd_maps_end", false, &end) || end > first + IPCD_MCACHE_SLOTS)
		fail_msg("server: memfd mappings leaked over 2000 connections: %s", l);
	t_expect_accelerated(&s->mon, &c0, 2001, "churn");
	/*
	 * Both programs closed every connection before exiting: each end must
	 * have been closed by its own process, by its CLOSE or by the closed
	 * bit the monitor reads first when it reuses a lane's region (conns.c),
	 * none by the monitor at exit (a CLOSE naming the wrong end left the
	 * other open until then).
	 */
	if (t_counter(&s->mon, "closed") + t_counter(&s->mon, "closed_early") - closed0 !=
	    2 * 2001 || t_counter(&s->mon, "dead_ends") - dead0 != 0)
		fail_msg("monitor: %lld ends closed by CLOSE or closed bit (want %d), %lld ends "
			 "closed at exit (want 0)", t_counter(&s->mon, "closed") +
			 t_counter(&s->mon, "closed_early") - closed0, 2 * 2001,
			 t_counter(&s->mon, "dead_ends") - dead0);
	t_prog_free(&srv);
	t_prog_free(&cli);
	t_case_finish(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_ONCE(test_kill_client_busy),
		T_ONCE(test_kill_client_idle),
		T_BOTH(test_kill_client_8_nonblock),
		T_ONCE(test_kill_server_busy),
		T_ONCE(test_kill_server_idle),
		T_BOTH(test_kill_monitor),
		T_ONCE(test_churn_no_leak),
	};

#if defined(IPCD_SANITIZED) && !defined(IPCD_ASAN_RUNTIME)
	fprintf(stderr, "it_preload_faults: skipped in ThreadSanitizer builds "
			"(ThreadSanitizer cannot be preloaded)\n");
	return T_EXIT_SKIP;
#endif
	return cmocka_run_group_tests(tests, NULL, NULL);
}
