/* SPDX-License-Identifier: MIT */
/*
 * it_monitor_restart.c - accelerated connections across a monitor that
 * stops (SIGKILL or SIGTERM), restarts or stalls (issue #8; the bugs of
 * tests/chaos/repro/ made into asserting tests). Server and client are
 * python3 under ipcd-run (tests/integration/restart/peer.py), stepped by
 * go files; every connection under test is checked to be accelerated
 * (both programs' fds are the wake eventfd, and the monitor counted it)
 * before the monitor goes.
 *
 *   peer_death_no_restart[_poll,_epoll,_unix]: positive control: the
 *       client is SIGKILLed; the server, waiting in a blocking recv() (or
 *       poll, epoll; or on a named AF_UNIX connection), must see EOF or
 *       ECONNRESET;
 *   peer_death_after_restart[_poll,_epoll,_unix]_{kill,term}: the same
 *       after monitor 1 was stopped (SIGKILL, SIGTERM) and monitor 2
 *       started on the same control socket (repro: no-eof-after-restart.sh,
 *       bug 4);
 *   unaccepted[_unix]_no_stop: positive control of the next ones: the
 *       server accepts the queued connection with the monitor up;
 *   unaccepted[_lanes,_unix]_at_monitor_kill: a connection made (and its
 *       bytes sent) but not accepted yet when the monitor is SIGKILLed;
 *       then the server accepts. Nothing may hang: the client's recv() of
 *       the reply returns the reply intact or EOF/ECONNRESET, and a
 *       connection the server accepts carries exactly the client's bytes
 *       or ends (a non-preloaded "sentinel" connection, served after it,
 *       proves the server is not stuck on a connection the client is not
 *       on). The outcome is printed (repro: lost-unaccepted.sh, bugs 1-2);
 *   unaccepted[_lanes,_unix]_at_monitor_term: the same with SIGTERM: a
 *       stopping monitor makes no new connections and lets the queued one
 *       be accepted (bounded), so the server accepts it, the client gets
 *       the whole reply, and the monitor then exits 0;
 *   slow_monitor_keeps_connections: the monitor is SIGSTOPped while the
 *       client makes a new connect() (a monitor call the library gives up
 *       on after its 5 s timeout), then SIGCONTed: the client's established
 *       accelerated connection must still carry data both ways, intact and
 *       not reset (repro: late-answer-reset.sh, bug 6); the connect()
 *       itself must succeed (over the kernel);
 *   slow_monitor_fallback_connect_works: the same, then the server's next
 *       accept() must return the connection made during the stall, and it
 *       must carry its bytes both ways (not a connection the monitor made
 *       for the call it answered late, which nobody connects on);
 *   slow_monitor_control: the positive control of both, without the SIGSTOP;
 *   slow_monitor_asks_once: five connect()s while the monitor is stopped:
 *       only the first may reach it (the others use the kernel without
 *       asking, counted by its CONNECTs), and the first one after the
 *       SIGCONT is accelerated again;
 *   short_timeout_event_loop_after_kill[_poll,_select]: unaccepted_lanes_
 *       at_monitor_kill with a client that waits for the reply in an event
 *       loop (non-blocking socket; epoll, poll or select calls of 0.5 s,
 *       again and again: no single wait lasts the 1 s of a life-socket
 *       check): its connection must still move to the kernel, and the reply
 *       must arrive (repro: evloop.py); short_timeout_event_loop_control:
 *       the same with the monitor up;
 *   slow_accept_keeps_listener: a connection waits in the monitor's
 *       backlog; the monitor is SIGSTOPped while the server calls accept()
 *       (until the library gives up on it, 5 s, as its stderr says), then
 *       SIGCONTed: a new preloaded client must be served (accelerated or
 *       not); the first client gets the reply or EOF/ECONNRESET, nobody
 *       hangs (repro: slowacc.py); slow_accept_control: without the stop;
 *   close_fds_keeps_connections[_pipe,_tcp,_tcp_close,_tcp_dup2]: an
 *       accelerated connection whose writer, a child, closes every fd of the
 *       application but 0-2 before it writes 2.5 s later (longer than the
 *       reader's life-socket check): subprocess.run(stdout=PIPE) with
 *       close_fds=True (its child runs sh); a pipe and os.closerange(3,
 *       65536); a TCP connection and os.closerange(3, 1024), close() of each
 *       fd listed, or dup2() of a file onto each; the bytes (and on TCP the
 *       reply back) must arrive, no EOF or reset: the library's hidden fds,
 *       the life socket among them, are not the application's (repros:
 *       sp.py, cr.py, cr2.py, dup.py);
 *   lane_kits_survive_listener_fork: a client makes 4 connections to a
 *       listener with lanes (the default); the listener accepted the first
 *       and forks: the 3 lane kits it received go back to the backlog, its
 *       worker accepts them and answers each 3 s later: every connection
 *       must get its answer, accelerated, none reset (repro: lanekit.py).
 *
 * Unaccepted TCP cases run with IPCD_LANES=0 as the repro does (the
 * connection waits in the monitor's backlog); the _lanes ones with lanes
 * (the default; the first connection of a process to a bind still goes
 * through the monitor's backlog). The close_fds and lane kit programs are
 * one process tree each (restart/forks.py, next to peer.py); their 2.5 s
 * and 3 s sleeps only make a reader sleep past a life-socket check. Every
 * wait is a hang guard (GUARD_MS, T_MON_STOP_MS) whose expiry fails the
 * case with what was expected; nothing asserts timing. The teardown prints
 * the programs' and monitors' logs of a failed case, SIGKILLs every process
 * left (process groups: fork children too) and removes the temp directory.
 * T_FILTER=pattern runs some cases only.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcd/wait.h>

#include "t_progs.h"

#ifndef IPCD_RESTART_PY
#error "IPCD_RESTART_PY must name tests/integration/restart/peer.py"
#endif

/* Hang guard of one awaited step (a blocking call that must return). */
#define GUARD_MS	(20000 * T_SLOWDOWN)

/* What the unaccepted client sends (peer.py MSG_LEN). */
#define MSG_LEN		1024

enum stop { STOP_NONE, STOP_KILL, STOP_TERM };

static const char *stop_name(enum stop how)
{
	return how == STOP_KILL ? "SIGKILL" : how == STOP_TERM ? "SIGTERM" : "none";
}

/* ---- programs ------------------------------------------------------------------ */

/* The programs' environment: the monitor's socket; lanes on or off. */
static void env_for(struct t_state *s, bool lanes)
{
	t_progs_env(&s->mon);
	if (lanes)
		unsetenv("IPCD_LANES");
	else
		setenv("IPCD_LANES", "0", 1);
}

/* python3 peer.py @role @a @b @c @d (NULL ends the list early). */
static void start_py(struct t_prog *p, struct t_state *s, const char *label, bool preload,
		     const char *role, const char *a, const char *b, const char *c, const char *d)
{
	char *const argv[] = { (char *)"python3", (char *)IPCD_RESTART_PY, (char *)role,
			       (char *)a, (char *)b, (char *)c, (char *)d, NULL };

	t_prog_startv(p, s->mon.dir, label, preload, argv);
}

static char why[256];

static const char *find_line(const char *text, const char *needle, bool at_start)
{
	return t_find_line(text, needle, at_start);
}

/* t_prog_await_line(), why[] saying what happened if it returns NULL. */
static const char *await_text(struct t_prog *p, const char *needle, bool at_start, int guard_ms)
{
	return t_prog_await_line(p, needle, at_start, guard_ms, why, sizeof(why));
}

/* await_text() of a line starting with @prefix. */
static const char *await_line(struct t_prog *p, const char *prefix, int guard_ms)
{
	return await_text(p, prefix, true, guard_ms);
}

/* await_line() that fails the case: a step that must happen (setup). */
static const char *need_line(struct t_prog *p, const char *prefix, const char *name)
{
	static char line[1024];
	const char *l = await_line(p, prefix, GUARD_MS);

	if (!l) {
		t_prog_dump(p);
		fail_msg("%s: setup step failed: %s (output above)", name, why);
	}
	snprintf(line, sizeof(line), "%s", l ? l : "");
	return line;
}

/* The last line @p printed (for messages), "(nothing)" if none. */
static const char *last_line(struct t_prog *p)
{
	static char line[512];
	const char *text = t_prog_read(p), *end = text + strlen(text), *b;

	while (end > text && end[-1] == '\n')
		end--;
	for (b = end; b > text && b[-1] != '\n'; b--)
		;
	if (b == end)
		return "(nothing)";
	snprintf(line, sizeof(line), "%.*s", (int)(end - b), b);
	return line;
}

static void go(struct t_state *s, const char *name)
{
	char path[200];

	snprintf(path, sizeof(path), "%s/%s", s->mon.dir, name);
	t_file_create(path);
}

/* The server's address (port or socket path) from DIR/server.addr. */
static void server_addr(struct t_state *s, struct t_prog *srv, char *addr, size_t len)
{
	char path[200], *txt;

	snprintf(path, sizeof(path), "%s/server.addr", s->mon.dir);
	t_file_wait(path, srv, GUARD_MS);
	txt = t_file_read(path);
	txt[strcspn(txt, "\n")] = '\0';
	snprintf(addr, len, "%s", txt);
	free(txt);
}

/* ---- is it accelerated? ------------------------------------------------------------ */

/* @line ("... fd=KIND") must name the wake eventfd of an accelerated connection. */
static void expect_eventfd(const char *line, const char *who, const char *name)
{
	if (!strstr(line, "fd=anon_inode:[eventfd]"))
		fail_msg("%s: the %s's connection is NOT accelerated (its fd should be the wake "
			 "eventfd, anon_inode:[eventfd]): \"%s\"", name, who, line);
}

/*
 * The monitor made the connection: "created" grew, and nothing fell back to
 * the kernel; @accepted: the server's side too ("accepted", which a named
 * AF_UNIX connection counts at its claim, with "unix_connected").
 */
static void expect_counted(struct t_state *s, const struct t_ctr *c0, bool accepted,
			   const char *name)
{
	struct t_ctr now;

	t_ctr_read(&s->mon, &now);
	fprintf(stderr, "%s: monitor: %lld connections created, %lld accepted, %lld fallbacks\n",
		name, now.created - c0->created, now.accepted - c0->accepted,
		now.fallbacks - c0->fallbacks);
	if (now.created - c0->created < 1 || (accepted && now.accepted - c0->accepted < 1) ||
	    now.fallbacks != c0->fallbacks)
		fail_msg("%s: the monitor did NOT make the connection an accelerated one: %lld "
			 "created, %lld accepted (expected >= 1%s), %lld fallbacks (expected 0)",
			 name, now.created - c0->created, now.accepted - c0->accepted,
			 accepted ? " created and accepted" : " created", now.fallbacks - c0->fallbacks);
}

/* ---- stopping and starting the monitor ----------------------------------------- */

/* Monitor 1 goes: SIGKILL, or SIGTERM and its exit 0 (t_mon_stop's hang guard). */
static void stop_monitor(struct t_state *s, enum stop how, const char *name)
{
	if (how == STOP_KILL)
		t_mon_kill(&s->mon);
	else
		t_mon_stop(&s->mon);
	fprintf(stderr, "%s: monitor 1 stopped (%s)\n", name, stop_name(how));
}

/*
 * SIGTERM without waiting for the exit; then (bounded, never failing) wait
 * for the monitor to log that it took the signal, so that what the test
 * does next meets a stopping monitor. Returns T_STILL_RUNNING, or the
 * monitor's exit code if it is gone already (then reaped: s->mon.pid = 0).
 */
static int term_monitor(struct t_state *s, const char *name)
{
	uint64_t deadline = ipcd_deadline((int64_t)GUARD_MS * T_NSEC_PER_MSEC);
	int code;

	if (kill(s->mon.pid, SIGTERM))
		fail_msg("%s: kill(monitor, SIGTERM): %s", name, strerror(errno));
	while (!t_file_contains(s->mon.log, "signal 15")) {
		code = t_try_wait(s->mon.pid);
		if (code != T_STILL_RUNNING) {
			s->mon.pid = 0;
			fprintf(stderr, "%s: note: the monitor exited (%d) at once, its log never "
				"said \"signal 15\"\n", name, code);
			return code;
		}
		if (ipcd_remaining(deadline) == 0) {
			fprintf(stderr, "%s: note: the monitor's log never said \"signal 15\"\n",
				name);
			return T_STILL_RUNNING;
		}
		t_sleep_ms(2);
	}
	fprintf(stderr, "%s: monitor 1 took the SIGTERM (\"signal 15\" in its log)\n", name);
	return T_STILL_RUNNING;
}

/* ---- 1. the death of a peer after a restart -------------------------------------- */

static void peer_death(void **state, const char *fam, const char *wait, enum stop how,
		       const char *name)
{
	struct t_state *s = *state;
	struct t_prog srv, cli;
	char addr[160], waits[64];
	const char *l;
	struct t_ctr c0;

	snprintf(waits, sizeof(waits), "%s%s", !strcmp(wait, "recv") ? "blocking recv()" :
		 !strcmp(wait, "poll") ? "poll() (then recv())" : "epoll_wait() (then recv())",
		 !strcmp(fam, "unix") ? " on a named AF_UNIX connection" : "");
	t_mon_start(&s->mon);
	env_for(s, true);
	t_ctr_read(&s->mon, &c0);
	start_py(&srv, s, "server", true, "server", "death", fam, s->mon.dir, wait);
	server_addr(s, &srv, addr, sizeof(addr));
	start_py(&cli, s, "client", true, "client", "death", fam, s->mon.dir, addr);
	expect_eventfd(need_line(&cli, "client: pid=", name), "client", name);
	expect_eventfd(need_line(&srv, "server: accepted", name), "server", name);
	need_line(&srv, "server: got b'ping'", name);
	need_line(&srv, "server: waiting in", name);
	expect_counted(s, &c0, true, name);

	if (how != STOP_NONE) {
		stop_monitor(s, how, name);
		t_mon_start(&s->mon);
		fprintf(stderr, "%s: monitor 2 up on the same control socket (%lld processes "
			"registered, %lld connections)\n", name,
			t_ctl_num(&s->mon, "status", "processes"),
			t_ctl_num(&s->mon, "status", "connections"));
	}
	t_prog_alive(&srv, "the client's SIGKILL");
	if (kill(-cli.pid, SIGKILL))
		fail_msg("%s: kill(client, SIGKILL): %s", name, strerror(errno));
	t_prog_wait(&cli, GUARD_MS);
	fprintf(stderr, "%s: client SIGKILLed; the server waits in its %s\n", name, waits);

	l = await_line(&srv, "server: END", GUARD_MS);
	if (!l)
		fail_msg("%s: HANG: the server's %s did not return after its peer's SIGKILL "
			 "(monitor restart: %s): %s; expected EOF (b'') or ECONNRESET; the "
			 "server's last line: \"%s\" (logs below)", name, waits, stop_name(how),
			 why, last_line(&srv));
	if (strcmp(l, "server: END eof") && strcmp(l, "server: END reset"))
		fail_msg("%s: the server's %s returned \"%s\" after its peer's SIGKILL; expected "
			 "EOF (b'') or ECONNRESET", name, waits, l);
	fprintf(stderr, "%s: OK: %s\n", name, l);
	t_prog_expect(&srv, GUARD_MS, 0);
	t_prog_free(&srv);
	t_prog_free(&cli);
	T_PASSED(s);
}

static void peer_death_no_restart(void **state)
{
	peer_death(state, "tcp", "recv", STOP_NONE, "peer_death_no_restart");
}

static void peer_death_no_restart_poll(void **state)
{
	peer_death(state, "tcp", "poll", STOP_NONE, "peer_death_no_restart_poll");
}

static void peer_death_no_restart_epoll(void **state)
{
	peer_death(state, "tcp", "epoll", STOP_NONE, "peer_death_no_restart_epoll");
}

static void peer_death_no_restart_unix(void **state)
{
	peer_death(state, "unix", "recv", STOP_NONE, "peer_death_no_restart_unix");
}

static void peer_death_after_restart_kill(void **state)
{
	peer_death(state, "tcp", "recv", STOP_KILL, "peer_death_after_restart_kill");
}

static void peer_death_after_restart_term(void **state)
{
	peer_death(state, "tcp", "recv", STOP_TERM, "peer_death_after_restart_term");
}

static void peer_death_after_restart_poll_kill(void **state)
{
	peer_death(state, "tcp", "poll", STOP_KILL, "peer_death_after_restart_poll_kill");
}

static void peer_death_after_restart_poll_term(void **state)
{
	peer_death(state, "tcp", "poll", STOP_TERM, "peer_death_after_restart_poll_term");
}

static void peer_death_after_restart_epoll_kill(void **state)
{
	peer_death(state, "tcp", "epoll", STOP_KILL, "peer_death_after_restart_epoll_kill");
}

static void peer_death_after_restart_epoll_term(void **state)
{
	peer_death(state, "tcp", "epoll", STOP_TERM, "peer_death_after_restart_epoll_term");
}

static void peer_death_after_restart_unix_kill(void **state)
{
	peer_death(state, "unix", "recv", STOP_KILL, "peer_death_after_restart_unix_kill");
}

static void peer_death_after_restart_unix_term(void **state)
{
	peer_death(state, "unix", "recv", STOP_TERM, "peer_death_after_restart_unix_term");
}

/* ---- 2, 3. a connection not accepted yet when the monitor goes --------------------- */

/* Lines of the server that say something went wrong with a connection's bytes. */
static void expect_no_corruption(struct t_prog *srv, const char *name)
{
	const char *text = t_prog_read(srv), *bad = strstr(text, "CORRUPT");

	if (bad)
		fail_msg("%s: CORRUPTION: the server accepted a connection whose bytes are not "
			 "the client's: \"%.*s\"", name, (int)strcspn(bad, "\n"), bad);
}

/* A server line "conn #N END KIND after K bytes" with 0 < K: or NULL. */
static const char *partial_line(const char *text)
{
	static char line[512];
	const char *p = text;

	while ((p = strstr(p, "server: conn #"))) {
		size_t n = strcspn(p, "\n");
		const char *after = memmem(p, n, " after ", 7);
		unsigned int k;

		if (after && memmem(p, n, " END ", 5) && sscanf(after, " after %u bytes", &k) == 1 &&
		    k > 0) {
			snprintf(line, sizeof(line), "%.*s", (int)n, p);
			return line;
		}
		p += n;
	}
	return NULL;
}

/*
 * After the client's outcome: a non-preloaded client connects to the same
 * listener (the kernel's) and the server, which serves one connection after
 * the other, must get to it; the server then exits 0. A server stuck on an
 * accepted connection (its recv() never returns: a split) fails here.
 */
static void run_sentinel(struct t_state *s, struct t_prog *srv, const char *fam,
			 const char *addr, const char *name)
{
	struct t_prog sen;

	start_py(&sen, s, "sentinel", false, "sentinel", fam, addr, NULL, NULL);
	if (!await_text(srv, "sentinel; done", false, GUARD_MS))
		fail_msg("%s: SPLIT or HANG: the server never served the sentinel connection "
			 "made after the client's outcome (%s): it is stuck at \"%s\" (an "
			 "accepted connection whose recv() does not return is one the client is "
			 "not on) (logs below)", name, why, last_line(srv));
	t_prog_expect(&sen, GUARD_MS, 0);
	if (!t_line(sen.out, "sentinel: END sentinel-ok"))
		fail_msg("%s: the sentinel did not get its answer: \"%s\"", name, last_line(&sen));
	t_prog_expect(srv, GUARD_MS, 0);
	t_prog_free(&sen);
}

/*
 * @loop: NULL: the client waits for the reply in a blocking recv(); else
 * in an event loop of @loop ("epoll", "poll", "select") calls of 0.5 s,
 * shorter than a life-socket check, again and again (peer.py
 * unaccepted-LOOP); it must then get the reply even after a SIGKILL.
 */
static void unaccepted(void **state, const char *fam, enum stop how, bool lanes,
		       const char *loop, const char *name)
{
	struct t_state *s = *state;
	struct t_prog srv, cli;
	char addr[160], cl_end[256], scen[64], waits[128];
	const char *l, *text, *partial;
	bool delivered;
	int code = T_STILL_RUNNING;
	struct t_ctr c0;

	snprintf(scen, sizeof(scen), "unaccepted%s%s", loop ? "-" : "", loop ? loop : "");
	if (loop)
		snprintf(waits, sizeof(waits), "%s() loop (a non-blocking socket, calls of 0.5 s "
			 "again and again, none as long as the 1 s life-socket check)", loop);
	else
		snprintf(waits, sizeof(waits), "recv()");
	t_mon_start(&s->mon);
	env_for(s, lanes);
	t_ctr_read(&s->mon, &c0);
	start_py(&srv, s, "server", true, "server", "unaccepted", fam, s->mon.dir, NULL);
	server_addr(s, &srv, addr, sizeof(addr));
	start_py(&cli, s, "client", true, "client", scen, fam, s->mon.dir, addr);
	expect_eventfd(need_line(&cli, "client: pid=", name), "client", name);
	need_line(&cli, "client: sent", name);
	expect_counted(s, &c0, false, name);
	if (t_line(t_prog_read(&srv), "server: accepted"))
		fail_msg("%s: the server accepted before it was told to", name);

	if (how == STOP_KILL) {
		t_mon_kill(&s->mon);
		fprintf(stderr, "%s: monitor SIGKILLed with the connection queued, not "
			"accepted\n", name);
	} else if (how == STOP_TERM) {
		code = term_monitor(s, name);
	}
	go(s, "go-accept");
	fprintf(stderr, "%s: the server accepts now; the client waits in its %s for the "
		"reply\n", name, waits);

	l = await_line(&cli, "client: END", GUARD_MS);
	if (!l) {
		const char *acc = find_line(t_prog_read(&srv), "server: accepted #1 ", true);
		bool split = acc && strstr(acc, "fd=socket:");
		char cl_last[512];

		snprintf(cl_last, sizeof(cl_last), "%s", last_line(&cli));
		fail_msg("%s: HANG: the client's %s of the reply did not return (monitor "
			 "stop: %s, then the server's accept()): %s; expected %s; the client's "
			 "last line: \"%s\"; the server's last line: \"%s\"%s (logs below)",
			 name, waits, stop_name(how), why, loop && how == STOP_KILL ?
			 "the reply (the connection lost with the killed monitor's backlog moves "
			 "to the kernel at the client's life-socket check, which must come even "
			 "though no single wait lasts 1 s)" : how == STOP_KILL ?
			 "the reply, or EOF/ECONNRESET" : "the server's reply "
			 "(a stopping monitor lets the queued connection be accepted)",
			 cl_last, last_line(&srv), split ? "; SPLIT: the server accepted "
			 "a kernel socket while the client's end is accelerated" : "");
	}
	snprintf(cl_end, sizeof(cl_end), "%s", l);
	if (loop && find_line(t_prog_read(&cli), "() calls (", false))
		fprintf(stderr, "%s: %s\n", name, find_line(cli.out, "() calls (", false));
	fprintf(stderr, "%s: %s\n", name, cl_end);
	expect_no_corruption(&srv, name);
	if (strstr(cl_end, "CORRUPT") || strstr(cl_end, "PARTIAL"))
		fail_msg("%s: CORRUPTION: the client's reply is not the server's: \"%s\"", name,
			 cl_end);
	delivered = !strcmp(cl_end, "client: END reply intact");

	if ((how != STOP_KILL || loop) && !delivered)
		fail_msg("%s: the client got \"%s\", expected the server's whole reply%s; the "
			 "server's last line: \"%s\" (logs below)", name, cl_end + 8,
			 how == STOP_TERM ? " (a monitor stopped with SIGTERM must let the queued "
			 "connection be accepted)" : how == STOP_KILL ? " (the connection lost "
			 "with the killed monitor's backlog moves to the kernel and replays its "
			 "bytes)" : "", last_line(&srv));
	if (how == STOP_TERM) {
		if (code == T_STILL_RUNNING)
			code = t_wait(s->mon.pid, T_MON_STOP_MS);
		s->mon.pid = 0;
		if (code != 0)
			fail_msg("%s: after the drain the monitor %s %d, expected to exit 0 "
				 "(logs below)", name, code == -1 ? "did not exit within the hang "
				 "guard (killed):" : "exited with code", code);
		if (access(s->mon.sock, F_OK) == 0)
			fail_msg("%s: the monitor exited but left its socket %s behind", name,
				 s->mon.sock);
		fprintf(stderr, "%s: monitor 1 exited 0 after the drain\n", name);
	}
	run_sentinel(s, &srv, fam, addr, name);
	t_prog_expect(&cli, GUARD_MS, 0);

	/* Who saw what. The server served connections one at a time, then the sentinel. */
	expect_no_corruption(&srv, name);
	text = srv.out;
	partial = partial_line(text);
	if (partial)
		fail_msg("%s: PARTIAL: a connection the server accepted ended after only part of "
			 "the client's bytes: \"%s\" (expected all %d or none)", name, partial,
			 MSG_LEN);
	if (delivered) {
		if (!strstr(text, "got the payload intact") || !strstr(text, "replied"))
			fail_msg("%s: the client got a reply the server does not report sending",
				 name);
		fprintf(stderr, "%s: OUTCOME delivered: the server accepted the connection, got "
			"its %d bytes intact and its reply reached the client\n", name, MSG_LEN);
	} else if (strstr(text, "got the payload intact")) {
		fail_msg("%s: LOST REPLY: the server accepted the connection, got the client's "
			 "bytes intact and %s, but the client read %s (logs below)", name,
			 strstr(text, "replied") ? "replied" : "could not reply", cl_end + 12);
	} else if (strstr(text, "server: conn #1 END")) {
		fprintf(stderr, "%s: OUTCOME reset: the client read %s; the server accepted the "
			"connection and read \"%s\"\n", name, cl_end + 12,
			t_line(text, "server: conn #1 END") + 8);
	} else {
		fprintf(stderr, "%s: OUTCOME reset: the client read %s; the server never "
			"accepted the connection\n", name, cl_end + 12);
	}
	t_prog_free(&srv);
	t_prog_free(&cli);
	T_PASSED(s);
}

static void unaccepted_no_stop(void **state)
{
	unaccepted(state, "tcp", STOP_NONE, false, NULL, "unaccepted_no_stop");
}

static void unaccepted_unix_no_stop(void **state)
{
	unaccepted(state, "unix", STOP_NONE, true, NULL, "unaccepted_unix_no_stop");
}

static void unaccepted_at_monitor_kill(void **state)
{
	unaccepted(state, "tcp", STOP_KILL, false, NULL, "unaccepted_at_monitor_kill");
}

static void unaccepted_lanes_at_monitor_kill(void **state)
{
	unaccepted(state, "tcp", STOP_KILL, true, NULL, "unaccepted_lanes_at_monitor_kill");
}

static void unaccepted_unix_at_monitor_kill(void **state)
{
	unaccepted(state, "unix", STOP_KILL, true, NULL, "unaccepted_unix_at_monitor_kill");
}

static void unaccepted_at_monitor_term(void **state)
{
	unaccepted(state, "tcp", STOP_TERM, false, NULL, "unaccepted_at_monitor_term");
}

static void unaccepted_lanes_at_monitor_term(void **state)
{
	unaccepted(state, "tcp", STOP_TERM, true, NULL, "unaccepted_lanes_at_monitor_term");
}

static void unaccepted_unix_at_monitor_term(void **state)
{
	unaccepted(state, "unix", STOP_TERM, true, NULL, "unaccepted_unix_at_monitor_term");
}

/*
 * The client sent its bytes into a connection the server has not accepted;
 * the monitor is SIGKILLed (@mkill) with it in its backlog; the client's next
 * call is close() (it made none since the kill, so nothing has looked at the
 * connection yet). A kernel close() would leave the bytes for the server's
 * accept(): so must ours, over the kernel connection that replaces it.
 * Without @mkill: the positive control, the monitor up. Variants:
 *   CLOSE_SRV_GONE: the server is SIGKILLed before the close(): there is
 *       nothing to move to, and the close() must still return 0 without a
 *       SIGPIPE (the client has SIGPIPE's default action);
 *   CLOSE_BIG: 250 KiB (the ring holds 256), more than the kernel takes from
 *       an AF_UNIX move at once;
 *       the close() must return although the server does not accept, and
 *       the server must never see part of the bytes (then EOF);
 *   CLOSE_FORK: a fork child closes its copy of the end; the client, which
 *       still holds it, must get the server's reply (a close of one copy is
 *       not the connection's end).
 */
enum close_variant { CLOSE_PLAIN, CLOSE_SRV_GONE, CLOSE_BIG, CLOSE_FORK };

static void unaccepted_close(void **state, const char *fam, bool lanes, bool mkill,
			     enum close_variant v, const char *name)
{
	static const char *const scen[] = { "unaccepted-close", "unaccepted-close",
					    "unaccepted-bigclose", "unaccepted-forkclose" };
	struct t_state *s = *state;
	struct t_prog srv, cli;
	char addr[160];
	const char *acc, *l;
	struct t_ctr c0;

	t_mon_start(&s->mon);
	env_for(s, lanes);
	t_ctr_read(&s->mon, &c0);
	start_py(&srv, s, "server", true, "server", "unaccepted", fam, s->mon.dir, NULL);
	server_addr(s, &srv, addr, sizeof(addr));
	start_py(&cli, s, "client", true, "client", scen[v], fam, s->mon.dir, addr);
	expect_eventfd(need_line(&cli, "client: pid=", name), "client", name);
	need_line(&cli, "client: sent", name);
	expect_counted(s, &c0, false, name);
	if (mkill) {
		t_mon_kill(&s->mon);
		fprintf(stderr, "%s: monitor SIGKILLed with the connection queued, not "
			"accepted\n", name);
	}
	if (v == CLOSE_SRV_GONE) {
		kill(srv.pid, SIGKILL);
		t_prog_wait(&srv, GUARD_MS);
		fprintf(stderr, "%s: server SIGKILLed: its listener is gone\n", name);
	}
	go(s, "go-close");
	if (v == CLOSE_FORK) {
		need_line(&cli, "client: child gone", name);
		go(s, "go-accept");
		l = await_line(&cli, "client: END", GUARD_MS);
		if (!l)
			fail_msg("%s: HANG: the client's recv() of the reply did not return after "
				 "its fork child closed its copy: %s (logs below)", name, why);
		if (!strstr(l, "END reply intact"))
			fail_msg("%s: the client, which still holds the end its child closed, got "
				 "\"%s\"; expected the server's reply (logs below)", name, l);
	} else {
		if (!await_line(&cli, "client: closed", GUARD_MS))
			fail_msg("%s: HANG or DEATH: the client's close() did not return: %s "
				 "(logs below)", name, why);
	}
	t_prog_expect(&cli, GUARD_MS, 0);
	if (v == CLOSE_SRV_GONE) {
		fprintf(stderr, "%s: OK: close() returned and the client exited 0\n", name);
		goto done;
	}
	if (v != CLOSE_FORK) {
		fprintf(stderr, "%s: the client closed its socket and exited; the server "
			"accepts now\n", name);
		go(s, "go-accept");
	}
	run_sentinel(s, &srv, fam, addr, name);
	expect_no_corruption(&srv, name);
	if (partial_line(srv.out))
		fail_msg("%s: PARTIAL: the server got only part of the client's bytes: \"%s\" "
			 "(expected all or none)", name, partial_line(srv.out));
	acc = find_line(srv.out, "server: accepted #1 ", true);
	if (v == CLOSE_BIG) {
		fprintf(stderr, "%s: OK: close() returned; the server's first connection: %s; "
			"%s\n", name, acc ? acc : "none",
			strstr(srv.out, "conn #1 got the payload intact") ? "the bytes arrived"
			: "the bytes were lost whole (not cut short)");
		goto done;
	}
	if (!strstr(srv.out, "server: conn #1 got the payload intact"))
		fail_msg("%s: LOST: the client's %d bytes, sent before its close(), never reached "
			 "the server (its first connection: \"%s\"); a kernel connection's would "
			 "have waited for its accept()%s (logs below)", name, MSG_LEN,
			 acc ? acc : "none", mkill ? ": the one lost with the killed monitor's "
			 "backlog must move to the kernel at the close()" : "");
	fprintf(stderr, "%s: OK: the server accepted the connection (%s) and got its %d bytes "
		"intact\n", name, acc, MSG_LEN);
done:
	t_prog_free(&srv);
	t_prog_free(&cli);
	T_PASSED(s);
}

static void unaccepted_close_control(void **state)
{
	unaccepted_close(state, "tcp", false, false, CLOSE_PLAIN, "unaccepted_close_control");
}

static void unaccepted_close_at_monitor_kill(void **state)
{
	unaccepted_close(state, "tcp", false, true, CLOSE_PLAIN,
			 "unaccepted_close_at_monitor_kill");
}

static void unaccepted_close_lanes_at_monitor_kill(void **state)
{
	unaccepted_close(state, "tcp", true, true, CLOSE_PLAIN,
			 "unaccepted_close_lanes_at_monitor_kill");
}

static void unaccepted_close_unix_at_monitor_kill(void **state)
{
	unaccepted_close(state, "unix", true, true, CLOSE_PLAIN,
			 "unaccepted_close_unix_at_monitor_kill");
}

static void unaccepted_close_unix_server_gone(void **state)
{
	unaccepted_close(state, "unix", true, true, CLOSE_SRV_GONE,
			 "unaccepted_close_unix_server_gone");
}

static void unaccepted_close_tcp_server_gone(void **state)
{
	unaccepted_close(state, "tcp", false, true, CLOSE_SRV_GONE,
			 "unaccepted_close_tcp_server_gone");
}

static void unaccepted_close_unix_big(void **state)
{
	unaccepted_close(state, "unix", true, true, CLOSE_BIG, "unaccepted_close_unix_big");
}

static void unaccepted_close_tcp_big(void **state)
{
	unaccepted_close(state, "tcp", false, true, CLOSE_BIG, "unaccepted_close_tcp_big");
}

static void unaccepted_close_fork_child(void **state)
{
	unaccepted_close(state, "tcp", false, true, CLOSE_FORK, "unaccepted_close_fork_child");
}

/* Positive control of the next ones: the event-loop client, the monitor up. */
static void short_timeout_event_loop_control(void **state)
{
	unaccepted(state, "tcp", STOP_NONE, true, "epoll", "short_timeout_event_loop_control");
}

static void short_timeout_event_loop_after_kill(void **state)
{
	unaccepted(state, "tcp", STOP_KILL, true, "epoll", "short_timeout_event_loop_after_kill");
}

static void short_timeout_event_loop_after_kill_poll(void **state)
{
	unaccepted(state, "tcp", STOP_KILL, true, "poll",
		   "short_timeout_event_loop_after_kill_poll");
}

static void short_timeout_event_loop_after_kill_select(void **state)
{
	unaccepted(state, "tcp", STOP_KILL, true, "select",
		   "short_timeout_event_loop_after_kill_select");
}

/* ---- 4. a monitor slower than the library's call timeout ----------------------------- */

static void slow_monitor(void **state, bool stall, bool second, const char *name)
{
	struct t_state *s = *state;
	struct t_prog srv, cli;
	char addr[160];
	const char *l;
	struct t_ctr c0;
	const char *scen = second ? "slow-second" : "slow", *second_line;
	bool answered_stopped, split;

	t_mon_start(&s->mon);
	env_for(s, false);	/* as the repro: the new connect() asks the monitor */
	t_ctr_read(&s->mon, &c0);
	start_py(&srv, s, "server", true, "server", scen, "tcp", s->mon.dir, NULL);
	server_addr(s, &srv, addr, sizeof(addr));
	start_py(&cli, s, "client", true, "client", scen, "tcp", s->mon.dir, addr);
	expect_eventfd(need_line(&cli, "client: pid=", name), "client", name);
	expect_eventfd(need_line(&srv, "server: accepted", name), "server", name);
	need_line(&cli, "client: round 0 ok", name);
	expect_counted(s, &c0, true, name);
	fprintf(stderr, "%s: connection 1 accelerated and carrying data (round 0)\n", name);

	if (stall && kill(s->mon.pid, SIGSTOP))
		fail_msg("%s: kill(monitor, SIGSTOP): %s", name, strerror(errno));
	go(s, "go-stall");
	fprintf(stderr, "%s: %s; the client makes a second connect(), a monitor call\n", name,
		stall ? "monitor SIGSTOPped (it answers nothing)" : "monitor running");
	/* The library gives up after its 5 s; the monitor stays stopped till then. */
	l = await_line(&cli, "client: second connect returned", GUARD_MS);
	answered_stopped = l != NULL && stall;
	kill(s->mon.pid, SIGCONT);
	if (!l) {
		fprintf(stderr, "%s: note: %s while the monitor was stopped; SIGCONTed\n", name,
			why);
		l = await_line(&cli, "client: second connect returned", GUARD_MS);
		if (!l)
			fail_msg("%s: HANG: the client's connect() did not return even after the "
				 "monitor's SIGCONT: %s (logs below)", name, why);
	}
	if (!strstr(l, " fd="))
		fail_msg("%s: the connect() made while the monitor %s failed: \"%s\"; expected "
			 "it to succeed (over the kernel if the monitor does not answer)", name,
			 stall ? "did not answer" : "ran", l);
	fprintf(stderr, "%s: %s%s%s\n", name, l,
		answered_stopped ? " (while the monitor was stopped)" : "",
		stall ? "; monitor SIGCONTed" : "");
	/*
	 * Let the monitor handle what it missed (the late answer, and the
	 * client's control socket if the library closed it): it serves
	 * everything queued, and the events that came before, before it
	 * answers a query.
	 */
	fprintf(stderr, "%s: monitor: %lld processes registered, %lld connections\n", name,
		t_ctl_num(&s->mon, "status", "processes"),
		t_ctl_num(&s->mon, "status", "connections"));
	go(s, "go-rounds");

	l = await_line(&cli, "client: all rounds ok", GUARD_MS);
	if (!l) {
		const char *cl = last_line(&cli);
		char cls[512];

		snprintf(cls, sizeof(cls), "%s", cl);
		if (!second || !t_line(t_prog_read(&cli), "client: round 4 ok"))
			fail_msg("%s: the established accelerated connection did not survive the "
				 "%s monitor: client: \"%s\"; server: \"%s\" (%s); expected every "
				 "round intact both ways, no EOF and no reset (logs below)", name,
				 stall ? "slow" : "(control)", cls, last_line(&srv), why);
		second_line = find_line(t_prog_read(&cli), "client: second connect returned",
					true);
		split = second_line && strstr(second_line, "fd=socket:") &&
			find_line(t_prog_read(&srv), "second connection fd=anon_inode:[eventfd]",
				  false);
		fail_msg("%s: the connection made while the monitor %s does not work: client: "
			 "\"%s\"; server: \"%s\" (%s); expected the server's next accept() to "
			 "return it and carry its bytes both ways%s (logs below)", name,
			 stall ? "did not answer" : "ran", cls, last_line(&srv), why,
			 split ? "; SPLIT: the client's connection is a kernel socket but the "
			 "server accepted an accelerated one (made by the monitor's late answer?)"
			 : "");
	}
	t_prog_expect(&cli, GUARD_MS, 0);
	t_prog_expect(&srv, GUARD_MS, 0);
	if (!t_line(srv.out, "server: round 4 ok") ||
	    (second && !t_line(srv.out, "server: second connection ok")) ||
	    !t_line(srv.out, "server: END eof"))
		fail_msg("%s: the server did not see every round%s and then the client's close: "
			 "\"%s\"", name, second ? ", the second connection" : "", last_line(&srv));
	fprintf(stderr, "%s: OK: every round intact both ways after the stall; %s\n", name,
		t_line(cli.out, "client: round 4 ok"));
	if (second)
		fprintf(stderr, "%s: OK: the connection made during the stall works: %s\n",
			name, t_line(srv.out, "server: accepted the second connection"));
	t_prog_free(&srv);
	t_prog_free(&cli);
	T_PASSED(s);
}

/* Positive control: the same without the stall, the second connection included. */
static void slow_monitor_control(void **state)
{
	slow_monitor(state, false, true, "slow_monitor_control");
}

static void slow_monitor_keeps_connections(void **state)
{
	slow_monitor(state, true, false, "slow_monitor_keeps_connections");
}

static void slow_monitor_fallback_connect_works(void **state)
{
	slow_monitor(state, true, true, "slow_monitor_fallback_connect_works");
}

#define STALL_CONNECTS	5	/* peer.py's, the second connect() included */

/*
 * A stalled monitor is asked once: after the call that timed out, later
 * connect()s must not ask a monitor that has not answered since (each would
 * wait the library's 5 s and leave a request and its CANCEL in the ring);
 * they use the kernel. Once the monitor answers again, a connect() is
 * accelerated again. The monitor's CONNECT count says how often it was asked.
 */
static void slow_monitor_asks(void **state, bool lanes, const char *name)
{
	struct t_state *s = *state;
	struct t_prog srv, cli;
	long long conn0, asked;
	char addr[160], pre[64];
	const char *l;
	int i;

	t_mon_start(&s->mon);
	env_for(s, lanes);	/* no lanes: every connect() asks the monitor */
	start_py(&srv, s, "server", true, "server", "slow-many", "tcp", s->mon.dir, NULL);
	server_addr(s, &srv, addr, sizeof(addr));
	start_py(&cli, s, "client", true, "client", "slow-many", "tcp", s->mon.dir, addr);
	expect_eventfd(need_line(&cli, "client: pid=", name), "client", name);
	need_line(&cli, "client: round 0 ok", name);
	conn0 = t_ctl_num(&s->mon, "counters", "connect");

	if (kill(s->mon.pid, SIGSTOP))
		fail_msg("%s: kill(monitor, SIGSTOP): %s", name, strerror(errno));
	go(s, "go-stall");
	fprintf(stderr, "%s: monitor SIGSTOPped; the client makes %d connect()s\n", name,
		STALL_CONNECTS);
	/* The bound would let every connect() wait the library's 5 s. */
	l = await_line(&cli, "client: stalled connects done", GUARD_MS + STALL_CONNECTS * 5000);
	kill(s->mon.pid, SIGCONT);
	if (!l)
		fail_msg("%s: HANG: the client's connect()s made while the monitor was stopped "
			 "did not all return: %s (logs below)", name, why);
	/* A query is answered after every request queued before it. */
	asked = t_ctl_num(&s->mon, "counters", "connect") - conn0;
	fprintf(stderr, "%s: monitor SIGCONTed; it received %lld CONNECT(s), %lld CANCEL(s)\n",
		name, asked, t_ctl_num(&s->mon, "counters", "cancel"));
	for (i = 2; i <= STALL_CONNECTS; i++) {
		snprintf(pre, sizeof(pre), "client: stalled connect %d returned, fd=", i);
		if (!t_line(t_prog_read(&cli), pre))
			fail_msg("%s: connect() %d of the stall failed: \"%s\"; expected it to "
				 "succeed over the kernel", name, i, last_line(&cli));
	}
	/* With lanes, kits serve connect()s until they run out (KITS, not CONNECT). */
	if (!lanes && asked != 1)
		fail_msg("%s: the stopped monitor was sent %lld CONNECTs for the %d connect()s "
			 "made while it did not answer; expected 1: once a call has timed out, "
			 "later ones must use the kernel without asking until it answers again",
			 name, asked, STALL_CONNECTS);

	go(s, "go-recover");
	l = await_line(&cli, "client: recovered connect returned", GUARD_MS);
	if (!l)
		fail_msg("%s: HANG: the connect() after the SIGCONT did not return: %s", name,
			 why);
	if (!strstr(l, "fd=anon_inode:[eventfd]"))
		fail_msg("%s: the connect() made after the monitor answered again is NOT "
			 "accelerated: \"%s\"; expected the monitor's answers to end the stall",
			 name, l);
	fprintf(stderr, "%s: OK: %s during the stall; after it: %s\n", name,
		lanes ? "no detach" : "asked once", l);
	go(s, "go-rounds");
	if (!await_line(&cli, "client: all rounds ok", GUARD_MS))
		fail_msg("%s: the established connection did not survive the stall: client: "
			 "\"%s\"; server: \"%s\" (%s)", name, last_line(&cli), last_line(&srv),
			 why);
	t_prog_expect(&cli, GUARD_MS, 0);
	t_prog_expect(&srv, GUARD_MS, 0);
	t_prog_free(&srv);
	t_prog_free(&cli);
	T_PASSED(s);
}

static void slow_monitor_asks_once(void **state)
{
	slow_monitor_asks(state, false, "slow_monitor_asks_once");
}

/*
 * The same with lanes: the connect()s use kits until they run out, then the
 * library's KITS wait times out. That must not detach the process (the
 * monitor would take it for dead and end its established connection).
 */
static void slow_monitor_asks_once_lanes(void **state)
{
	slow_monitor_asks(state, true, "slow_monitor_asks_once_lanes");
}

/* ---- 5. a listener whose accept() meets a stopped monitor ------------------------------ */

/* What the library says when the monitor did not answer a call in time (state.c). */
#define LATE_NOTE	"did not answer within"

/*
 * A client whose connection waits in the monitor's backlog; the monitor is
 * SIGSTOPped and the server calls accept() (ACCEPT, which the library gives
 * up on after its 5 s); then SIGCONT, and a new client connects: the server
 * must serve it (accelerated or over the kernel), and nobody may hang (the
 * first client gets the reply, or EOF/ECONNRESET: the connection of the
 * call the library gave up on may be reset).
 */
static void slow_accept(void **state, bool stall, const char *name)
{
	struct t_state *s = *state;
	struct t_prog srv, cli1, cli2;
	char addr[160], c1_end[256];
	const char *l;
	struct t_ctr c0;
	uint64_t deadline;

	t_mon_start(&s->mon);
	env_for(s, true);	/* as the repro (slowacc.py): lanes on, the default */
	t_ctr_read(&s->mon, &c0);
	start_py(&srv, s, "server", true, "server", "unaccepted", "tcp", s->mon.dir, NULL);
	server_addr(s, &srv, addr, sizeof(addr));
	start_py(&cli1, s, "client1", true, "client", "unaccepted", "tcp", s->mon.dir, addr);
	expect_eventfd(need_line(&cli1, "client: pid=", name), "client1", name);
	need_line(&cli1, "client: sent", name);
	expect_counted(s, &c0, false, name);

	if (stall && kill(s->mon.pid, SIGSTOP))
		fail_msg("%s: kill(monitor, SIGSTOP): %s", name, strerror(errno));
	go(s, "go-accept");
	need_line(&srv, "server: accepting", name);
	fprintf(stderr, "%s: %s; the server calls accept() with client 1's connection in the "
		"monitor's backlog\n", name, stall ? "monitor SIGSTOPped" : "monitor running");
	if (stall) {
		/*
		 * Keep the monitor stopped until the library gave up on the
		 * accept()'s call (its 5 s): it says so on stderr. If it does not
		 * say it, the hang guard's wait is longer than 5 s anyway.
		 */
		deadline = ipcd_deadline((int64_t)GUARD_MS * T_NSEC_PER_MSEC);
		while (!t_file_contains(srv.err_path, LATE_NOTE) && ipcd_remaining(deadline))
			t_sleep_ms(5);
		if (!t_file_contains(srv.err_path, LATE_NOTE))
			fprintf(stderr, "%s: note: the server never said \"%s\" (stopped %d ms)\n",
				name, LATE_NOTE, GUARD_MS);
		else
			fprintf(stderr, "%s: the server's library gave up on the monitor: "
				"\"%s\" in its stderr\n", name, LATE_NOTE);
		if (kill(s->mon.pid, SIGCONT))
			fail_msg("%s: kill(monitor, SIGCONT): %s", name, strerror(errno));
		fprintf(stderr, "%s: monitor SIGCONTed: %lld processes registered, %lld "
			"connections\n", name, t_ctl_num(&s->mon, "status", "processes"),
			t_ctl_num(&s->mon, "status", "connections"));
	}

	start_py(&cli2, s, "client2", true, "client", "unaccepted", "tcp", s->mon.dir, addr);
	fprintf(stderr, "%s: client 2 (new%s): %s\n", name, stall ? ", after the stall" : "",
		need_line(&cli2, "client: pid=", name));
	l = await_line(&cli2, "client: END", GUARD_MS);
	snprintf(c1_end, sizeof(c1_end), "%.200s", last_line(&cli1));
	if (!l)
		fail_msg("%s: HANG: the listener no longer serves new clients after %s: client 2's "
			 "recv() of the reply did not return (%s); the server's last line: \"%s\"; "
			 "client 1's: \"%s\"; expected the server to accept client 2's connection "
			 "(accelerated or over the kernel) and reply (logs below)", name,
			 stall ? "its accept() met a monitor stopped for more than 5 s" :
			 "(control)", why, last_line(&srv), c1_end);
	if (strcmp(l, "client: END reply intact"))
		fail_msg("%s: client 2 (connected after %s) got \"%s\", expected the server's "
			 "whole reply; the server's last line: \"%s\" (logs below)", name,
			 stall ? "the stall" : "(control)", l + 8, last_line(&srv));
	fprintf(stderr, "%s: OK: client 2: %s\n", name, l);

	l = await_line(&cli1, "client: END", GUARD_MS);
	if (!l)
		fail_msg("%s: HANG: client 1 (its connection in the backlog during the %s) never "
			 "got its reply, nor an EOF/ECONNRESET: %s; the server's last line: \"%s\" "
			 "(logs below)", name, stall ? "stall" : "(control)", why, last_line(&srv));
	snprintf(c1_end, sizeof(c1_end), "%s", l);
	expect_no_corruption(&srv, name);
	if (strstr(c1_end, "CORRUPT") || strstr(c1_end, "PARTIAL"))
		fail_msg("%s: CORRUPTION: client 1's reply is not the server's: \"%s\"", name,
			 c1_end);
	if (!stall && strcmp(c1_end, "client: END reply intact"))
		fail_msg("%s: client 1 got \"%s\", expected the server's whole reply (the monitor "
			 "was never stopped)", name, c1_end + 8);
	fprintf(stderr, "%s: client 1 (queued%s): %s\n", name,
		stall ? " during the stall" : "", c1_end);
	run_sentinel(s, &srv, "tcp", addr, name);
	if (partial_line(srv.out))
		fail_msg("%s: PARTIAL: a connection the server accepted ended after only part of "
			 "its client's bytes: \"%s\"", name, partial_line(srv.out));
	t_prog_expect(&cli1, GUARD_MS, 0);
	t_prog_expect(&cli2, GUARD_MS, 0);
	t_prog_free(&srv);
	t_prog_free(&cli1);
	t_prog_free(&cli2);
	T_PASSED(s);
}

/* Positive control: the same without the SIGSTOP. */
static void slow_accept_control(void **state)
{
	slow_accept(state, false, "slow_accept_control");
}

static void slow_accept_keeps_listener(void **state)
{
	slow_accept(state, true, "slow_accept_keeps_listener");
}

/* ---- 6. one process tree (restart/forks.py): fds closed, listener forks ------------------ */

/* tests/integration/restart/forks.py, next to peer.py. */
static const char *forks_py(void)
{
	static char path[512];
	const char *slash = strrchr(IPCD_RESTART_PY, '/');

	snprintf(path, sizeof(path), "%.*sforks.py",
		 slash ? (int)(slash - IPCD_RESTART_PY + 1) : 0, IPCD_RESTART_PY);
	return path;
}

/* python3 forks.py @scen @a @b (NULL ends the list early), preloaded. */
static void start_forks(struct t_prog *p, struct t_state *s, const char *label,
			const char *scen, const char *a, const char *b)
{
	char *const argv[] = { (char *)"python3", (char *)forks_py(), (char *)scen,
			       (char *)a, (char *)b, NULL };

	t_prog_startv(p, s->mon.dir, label, true, argv);
}

/*
 * An accelerated connection (a pipe; or a TCP connection, @method:
 * closerange, close, dup2) whose other end is a fork child that closes every
 * fd of the application but 0-2 (or covers them with dup2), then writes
 * 2.5 s later (more than a life-socket check of the reader, asleep
 * meanwhile): the reader must get the bytes, not an EOF or a reset; on TCP
 * the child must then get the reply. The library's own fds (the life
 * socket included) are not the application's to close.
 */
static void close_fds(void **state, const char *scen, const char *method, const char *what,
		      const char *name)
{
	struct t_state *s = *state;
	struct t_prog p;
	const char *l;
	char child[1024], end[512];
	bool tcp = !strcmp(scen, "tcp");

	t_mon_start(&s->mon);
	env_for(s, true);
	if (tcp)
		start_forks(&p, s, "parent", scen, method, s->mon.dir);
	else
		start_forks(&p, s, "parent", scen, s->mon.dir, NULL);
	l = need_line(&p, tcp ? "parent: connection fd=" : "parent: pipe fd=", name);
	/* Every end the line names ("fd=KIND") is accelerated. */
	if (t_count_str(l, "fd=anon_inode:[eventfd]") != t_count_str(l, "fd="))
		fail_msg("%s: the %s is NOT accelerated (its fds should be the wake eventfd, "
			 "anon_inode:[eventfd]): \"%s\"", name, tcp ? "TCP connection" : "pipe", l);
	fprintf(stderr, "%s: %s\n", name, l);

	l = await_line(&p, "parent: END", GUARD_MS);
	snprintf(end, sizeof(end), "%s", l ? l : "");
	l = find_line(t_prog_read(&p), "child: pid=", true);
	snprintf(child, sizeof(child), "%s", !tcp ? "(its own output is the pipe)" :
		 l ? l : "(no line)");
	l = *end ? end : NULL;
	if (!l)
		fail_msg("%s: HANG: the parent's read did not return (%s); %s; expected the "
			 "child's bytes; the child: \"%s\" (logs below)", name, why, what, child);
	if (strcmp(l, tcp ? "parent: END child's bytes intact" : "parent: END line intact"))
		fail_msg("%s: the parent read \"%s\": %s; expected the child's bytes, not an EOF "
			 "or a reset: the child's closing of its fds must not close the library's "
			 "hidden fds (its life socket: the parent took the child for dead); the "
			 "child: \"%s\"", name, l + 8, what, child);
	fprintf(stderr, "%s: OK: %s\n", name, l);
	if (tcp) {
		fprintf(stderr, "%s: %s\n", name, child);
		l = await_line(&p, "child: END", GUARD_MS);
		if (!l)
			fail_msg("%s: HANG: the child's read of the parent's reply did not return "
				 "(%s) after it closed its fds; its last line: \"%s\" (logs below)",
				 name, why, last_line(&p));
		if (strcmp(l, "child: END reply intact"))
			fail_msg("%s: the child, which closed its fds, read \"%s\", expected the "
				 "parent's whole reply", name, l + 7);
		fprintf(stderr, "%s: OK: %s\n", name, l);
	}
	t_prog_expect(&p, GUARD_MS, 0);
	t_prog_free(&p);
	T_PASSED(s);
}

static void close_fds_keeps_connections(void **state)
{
	close_fds(state, "subprocess", NULL, "subprocess.run(['sh', '-c', 'sleep 2.5; echo ...'], "
		  "stdout=PIPE), default close_fds=True", "close_fds_keeps_connections");
}

static void close_fds_keeps_connections_pipe(void **state)
{
	close_fds(state, "pipe-closerange", NULL, "a pipe whose writer, a fork child, called "
		  "os.closerange(3, 65536)", "close_fds_keeps_connections_pipe");
}

static void close_fds_keeps_connections_tcp(void **state)
{
	close_fds(state, "tcp", "closerange", "a TCP connection whose end is a fork child's "
		  "that called os.closerange(3, 1024)", "close_fds_keeps_connections_tcp");
}

static void close_fds_keeps_connections_tcp_close(void **state)
{
	close_fds(state, "tcp", "close", "a TCP connection whose end is a fork child's that "
		  "called close() on every fd from 3 it has",
		  "close_fds_keeps_connections_tcp_close");
}

static void close_fds_keeps_connections_tcp_dup2(void **state)
{
	close_fds(state, "tcp", "dup2", "a TCP connection whose end is a fork child's that "
		  "dup2()ed a file onto every fd from 3 it has, then closed them",
		  "close_fds_keeps_connections_tcp_dup2");
}

/*
 * forks.py lanekit: 4 connections of a client to a lane-enabled listener,
 * 3 of them lane kits the listener received but did not accept when it
 * forked (they go back to the monitor's backlog); its worker accepts them
 * and answers each after 3 s (the client idles in recv() meanwhile, past
 * a life-socket check): every connection must get its answer, and stay
 * accelerated (no monitor went: nothing may move to the kernel).
 */
static void lane_kits_survive_listener_fork(void **state)
{
	static const char name[] = "lane_kits_survive_listener_fork";
	struct t_state *s = *state;
	struct t_prog p;
	const char *l;
	char needle[64], end[256];
	struct t_ctr c0;
	int i;

	t_mon_start(&s->mon);
	env_for(s, true);	/* lanes: the default IPCD_LANES */
	t_ctr_read(&s->mon, &c0);
	start_forks(&p, s, "lanekit", "lanekit", s->mon.dir, NULL);
	for (i = 0; i < 4; i++) {
		snprintf(needle, sizeof(needle), "client: conn %d connected", i);
		expect_eventfd(need_line(&p, needle, name), "client", name);
	}
	expect_eventfd(need_line(&p, "listener: accepted conn 0", name), "listener", name);
	need_line(&p, "client: sent", name);
	expect_counted(s, &c0, true, name);
	fprintf(stderr, "%s: 4 accelerated connections, their bytes sent; the listener forks "
		"its worker\n", name);

	l = await_line(&p, "client: END", GUARD_MS);
	if (!l)
		fail_msg("%s: HANG: the client's recv() of the worker's answers did not return "
			 "(%s); its last line: \"%s\" (logs below)", name, why, last_line(&p));
	snprintf(end, sizeof(end), "%s", l);
	fprintf(stderr, "%s: %s (worker: %u connections accepted)\n", name, end,
		t_count_str(t_prog_read(&p), "worker: accepted a connection"));
	for (i = 0; i < 4; i++) {
		snprintf(needle, sizeof(needle), "client: conn %d reply intact", i);
		l = find_line(t_prog_read(&p), needle, true);
		if (!l) {
			snprintf(needle, sizeof(needle), "client: conn %d FAILED", i);
			l = find_line(t_prog_read(&p), needle, true);
			fail_msg("%s: connection %d (%s) did not get its answer: \"%s\"; expected "
				 "\"pong:ping%d\": a lane kit the listener's fork gave back to the "
				 "backlog, accepted by its worker, must stay a live connection; "
				 "the client: \"%s\" (logs below)", name, i,
				 i ? "a lane kit" : "made by the monitor", l ? l : "(no line)", i,
				 end);
		}
		if (!strstr(l, "fd=anon_inode:[eventfd]"))
			fail_msg("%s: connection %d got its answer but MOVED to the kernel (no "
				 "monitor went; its peer never died): \"%s\"", name, i, l);
	}
	t_prog_expect(&p, GUARD_MS, 0);
	fprintf(stderr, "%s: OK: every connection got its answer, accelerated\n", name);
	t_prog_free(&p);
	T_PASSED(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_ONCE(peer_death_no_restart),
		T_ONCE(peer_death_no_restart_poll),
		T_ONCE(peer_death_no_restart_epoll),
		T_ONCE(peer_death_no_restart_unix),
		T_ONCE(peer_death_after_restart_kill),
		T_ONCE(peer_death_after_restart_term),
		T_ONCE(peer_death_after_restart_poll_kill),
		T_ONCE(peer_death_after_restart_poll_term),
		T_ONCE(peer_death_after_restart_epoll_kill),
		T_ONCE(peer_death_after_restart_epoll_term),
		T_ONCE(peer_death_after_restart_unix_kill),
		T_ONCE(peer_death_after_restart_unix_term),
		T_ONCE(unaccepted_no_stop),
		T_ONCE(unaccepted_unix_no_stop),
		T_ONCE(unaccepted_at_monitor_kill),
		T_ONCE(unaccepted_lanes_at_monitor_kill),
		T_ONCE(unaccepted_unix_at_monitor_kill),
		T_ONCE(unaccepted_at_monitor_term),
		T_ONCE(unaccepted_lanes_at_monitor_term),
		T_ONCE(unaccepted_unix_at_monitor_term),
		T_ONCE(unaccepted_close_control),
		T_ONCE(unaccepted_close_at_monitor_kill),
		T_ONCE(unaccepted_close_lanes_at_monitor_kill),
		T_ONCE(unaccepted_close_unix_at_monitor_kill),
		T_ONCE(unaccepted_close_unix_server_gone),
		T_ONCE(unaccepted_close_tcp_server_gone),
		T_ONCE(unaccepted_close_unix_big),
		T_ONCE(unaccepted_close_tcp_big),
		T_ONCE(unaccepted_close_fork_child),
		T_ONCE(slow_monitor_control),
		T_ONCE(slow_monitor_keeps_connections),
		T_ONCE(slow_monitor_fallback_connect_works),
		T_ONCE(slow_monitor_asks_once),
		T_ONCE(slow_monitor_asks_once_lanes),
		T_ONCE(short_timeout_event_loop_control),
		T_ONCE(short_timeout_event_loop_after_kill),
		T_ONCE(short_timeout_event_loop_after_kill_poll),
		T_ONCE(short_timeout_event_loop_after_kill_select),
		T_ONCE(slow_accept_control),
		T_ONCE(slow_accept_keeps_listener),
		T_ONCE(close_fds_keeps_connections),
		T_ONCE(close_fds_keeps_connections_pipe),
		T_ONCE(close_fds_keeps_connections_tcp),
		T_ONCE(close_fds_keeps_connections_tcp_close),
		T_ONCE(close_fds_keeps_connections_tcp_dup2),
		T_ONCE(lane_kits_survive_listener_fork),
	};

#if defined(IPCD_SANITIZED) && !defined(IPCD_ASAN_RUNTIME)
	fprintf(stderr, "it_monitor_restart: skipped in ThreadSanitizer builds "
			"(ThreadSanitizer cannot be preloaded)\n");
	return T_EXIT_SKIP;
#endif
	if (!t_have_prog("python3")) {
		fprintf(stderr, "it_monitor_restart: no python3: skipped\n");
		return T_EXIT_SKIP;
	}
	if (getenv("T_FILTER"))
		cmocka_set_test_filter(getenv("T_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
