/* SPDX-License-Identifier: MIT */
/*
 * it_monitor_leaks.c - what the monitor must free or never confuse when
 * processes are SIGKILLed, and what a process must see without it. The
 * programs are tests/integration/leaks/ipcd-leaks.c under ipcd-run.
 *
 *   unix_killed_connectors_freed: first DEAD_WRITERS connectors to a named
 *       AF_UNIX listener each write a byte and are SIGKILLed before the
 *       listener accepts anything: accepted then, each connection must give
 *       its byte, then EOF, as with the kernel (a connection whose connector
 *       posted UCONNECTED, preload/unix.c, must stay claimable after its
 *       death). Then soak finding S1 (bench/soak-repro-unix-kill.sh,
 *       docs/reliability.md): KILLS times a fork child connects to the
 *       listener, writes a byte and is SIGKILLed 0..3 ms after its fork. A
 *       connector killed between the monitor's UCONNECT answer and its
 *       kernel connect() leaves a connection nobody can claim: the monitor
 *       must free it at the death (monitor/conns.c, counter
 *       unix_unconnected: it frees the unclaimed ones whose connector never
 *       posted UCONNECTED). With the listener still up, every connection
 *       must be gone from the monitor (a bounded wait: the hang guard
 *       T_WAIT_MS); every byte a killed child's write() acknowledged must
 *       reach the server, which must read EOF on each connection. The freed
 *       count is printed. Batches of KILLS until one freed a connection (at
 *       most KILL_BATCHES; a run whose kills never landed in that window
 *       says so);
 *   tcp_killed_connectors_control: the same over 127.0.0.1 (positive
 *       control: no leak there);
 *   ids_not_reused_after_restart: process P holds connection X (to
 *       server 1), made by monitor 1; monitor 1 is SIGKILLed and monitor 2
 *       starts on the same control socket; P makes connection Q (to server
 *       2, started then: a listener of monitor 1 stays the kernel's)
 *       through monitor 2, then closes X: its lazy CLOSE of X's id reaches
 *       monitor 2. Monitor 2's ids start at a random serial (monitor/
 *       conns.c conns_init), so X's id is none of its own: Q must still be
 *       listed, established, and carry data both ways, intact. (Were the
 *       serials to start at 0, Q would have X's id and an end of it would
 *       be closed.) Lanes are off (IPCD_LANES=0) so that X and Q are each
 *       their monitor's first connection;
 *   pipe_epipe_monitor_stopped: a pipe (accelerated) whose reader, a fork
 *       child of the writer, is SIGKILLed while the monitor is SIGSTOPped;
 *       the writer then writes (more than 1 ms after its last write, SIGPIPE
 *       ignored): the write must fail with EPIPE at once, the reader's
 *       death seen from its life socket (preload/data.c pipe_reader_check),
 *       as must the next one. The monitor is SIGCONTed only after the
 *       writer reported both (a write still blocked after the hang guard
 *       STOPPED_GUARD_MS is a HANG);
 *   pipe_epipe_control: the same with the monitor running.
 *
 * Every wait is a hang guard whose expiry fails the case with what was
 * expected; nothing asserts timing. The teardown prints the programs' and
 * the monitors' logs of a failed case, SIGKILLs every process left (process
 * groups: fork children too) and removes the temp directory.
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

#ifndef IPCD_LEAKS_BIN
#error "IPCD_LEAKS_BIN must name tests/integration/leaks/ipcd-leaks"
#endif

/* Hang guard of one awaited step (a blocking call that must return). */
#define GUARD_MS		(20000 * T_SLOWDOWN)
/* The connectors' loop: fork, connect, SIGKILL, KILLS times (a hang guard). */
#define KILL_LOOP_MS		(120000 * T_SLOWDOWN)
/* The writer's writes with the monitor stopped must return within this. */
#define STOPPED_GUARD_MS	(8000 * T_SLOWDOWN)

/* Connectors SIGKILLed, 0..KILL_MAX_US after their fork, per batch; batches at most. */
#define KILLS			300
#define KILL_MAX_US		3000
#define KILL_BATCHES		4
/* Connectors SIGKILLed after their write, before the listener accepts. */
#define DEAD_WRITERS		64

static struct t_out ctl;
static char why[256];

/* ---- the programs ------------------------------------------------------------ */

/* ipcd-leaks @a @b @c @d @e @f (NULL ends the list early), preloaded. */
static void start_leaks(struct t_prog *p, struct t_state *s, const char *label, const char *a,
			const char *b, const char *c, const char *d, const char *e, const char *f)
{
	char *const argv[] = { (char *)IPCD_LEAKS_BIN, (char *)a, (char *)b, (char *)c,
			       (char *)d, (char *)e, (char *)f, NULL };

	t_prog_startv(p, s->mon.dir, label, true, argv);
}

static const char *find_line(const char *text, const char *prefix)
{
	return t_find_line(text, prefix, true);
}

/* t_prog_await_line() of a line starting with @prefix, why[] saying what happened if NULL. */
static const char *await_line(struct t_prog *p, const char *prefix, int guard_ms)
{
	return t_prog_await_line(p, prefix, true, guard_ms, why, sizeof(why));
}

/* await_line() that fails the case: a step that must happen (setup). */
static const char *need_line(struct t_prog *p, const char *prefix, int guard_ms,
			     const char *name)
{
	static char line[1024];
	const char *l = await_line(p, prefix, guard_ms);

	if (!l) {
		t_prog_dump(p);
		fail_msg("%s: a step did not happen: %s (output above)", name, why);
	}
	snprintf(line, sizeof(line), "%s", l);
	return line;
}

static void go(struct t_state *s, const char *name)
{
	char path[200];

	snprintf(path, sizeof(path), "%s/%s", s->mon.dir, name);
	t_file_create(path);
}

static void unlink_go(struct t_state *s, const char *name)
{
	char path[200];

	snprintf(path, sizeof(path), "%s/%s", s->mon.dir, name);
	unlink(path);
}

/* Every "fd=KIND" of @line must be the wake eventfd of an accelerated end. */
static void expect_eventfd(const char *line, const char *what, const char *name)
{
	unsigned int fds = t_count_str(line, "fd=");

	if (!fds || t_count_str(line, "fd=anon_inode:[eventfd]") != fds)
		fail_msg("%s: %s is NOT accelerated (its fd should be the wake eventfd, "
			 "anon_inode:[eventfd]): \"%s\"", name, what, line);
}

/* ipcdctl counters and connections, to stderr (a failure's evidence). */
static void show_monitor(const struct t_state *s)
{
	if (t_ctl(&s->mon, &ctl, false, "counters") == 0)
		fprintf(stderr, "---- ipcdctl counters ----\n%s", ctl.out);
	if (t_ctl(&s->mon, &ctl, false, "connections") == 0)
		fprintf(stderr, "---- ipcdctl connections ----\n%s----\n", ctl.out);
}

/* The programs are gone: no process registered, no connection left. */
static void expect_nothing_left(struct t_state *s, const char *name)
{
	long long procs = t_ctl_wait_num(&s->mon, "status", "processes", 0);
	long long conns = t_ctl_wait_num(&s->mon, "status", "connections", 0);

	if (procs || conns) {
		show_monitor(s);
		fail_msg("%s: after every program exited, %lld processes are still registered "
			 "and %lld connections left in the monitor (expected 0 and 0 within the "
			 "%d ms hang guard)", name, procs, conns, T_WAIT_MS);
	}
}

/* ---- 1. connectors SIGKILLed right after their fork (soak finding S1) ---------------- */

/*
 * One batch: ipcd-leaks kill (KILLS connectors SIGKILLed 0..KILL_MAX_US after
 * their fork, then the listener's last connection), its checks with the
 * listener up, then the listener exits. Returns how many unclaimed AF_UNIX
 * connections the monitor freed at their connector's death in this batch.
 */
static long long kill_batch(struct t_state *s, bool unix_fam, int batch, const char *name)
{
	const char *fam = unix_fam ? "unix" : "tcp";
	long long created0, accepted0, unix_conn0, unconn0, dead0, left, freed;
	uint64_t conns = 0, bytes = 0, writes = 0, resets = 0, stalls = 0;
	char kills[16], delay[16], guard[16], drained[512], label[16];
	struct t_prog p;

	created0 = t_counter(&s->mon, "created");
	accepted0 = t_counter(&s->mon, "accepted");
	unix_conn0 = t_counter(&s->mon, "unix_connected");
	unconn0 = t_counter(&s->mon, "unix_unconnected");
	dead0 = t_counter(&s->mon, "dead_ends");
	snprintf(kills, sizeof(kills), "%d", KILLS);
	snprintf(delay, sizeof(delay), "%d", KILL_MAX_US);
	snprintf(guard, sizeof(guard), "%d", GUARD_MS);
	snprintf(label, sizeof(label), "kill%d", batch);
	start_leaks(&p, s, label, "kill", fam, s->mon.dir, kills, delay, guard);
	expect_eventfd(need_line(&p, "kill: sentinel sent", KILL_LOOP_MS, name),
		       "the listener process's own last connection", name);
	fprintf(stderr, "%s: batch %d: %s\n", name, batch,
		find_line(t_prog_read(&p), "kill: done"));
	snprintf(drained, sizeof(drained), "%.500s", need_line(&p, "server: drained", GUARD_MS * 2,
							       name));
	fprintf(stderr, "%s: batch %d: %s\n", name, batch, drained);
	if (!t_kv_u64(drained, "conns", false, &conns) ||
	    !t_kv_u64(drained, "bytes", false, &bytes) ||
	    !t_kv_u64(drained, "writes", false, &writes) ||
	    !t_kv_u64(drained, "resets", false, &resets) ||
	    !t_kv_u64(drained, "stalls", false, &stalls))
		fail_msg("%s: cannot parse the server's line \"%s\"", name, drained);

	/* The listener and its server are up: nothing may wait for them. */
	t_prog_alive(&p, "the monitor was looked at (the listener must stay up)");
	left = t_ctl_wait_num(&s->mon, "status", "connections", 0);
	freed = t_counter(&s->mon, "unix_unconnected") - unconn0;
	fprintf(stderr, "%s: batch %d: monitor: %lld connections created, %lld %s, %lld dead "
		"ends; %lld unclaimed AF_UNIX connections freed at their connector's death "
		"(unix_unconnected); %lld connections left\n", name, batch,
		t_counter(&s->mon, "created") - created0,
		unix_fam ? t_counter(&s->mon, "unix_connected") - unix_conn0 :
		t_counter(&s->mon, "accepted") - accepted0,
		unix_fam ? "claimed by the server (unix_connected)" : "accepted",
		t_counter(&s->mon, "dead_ends") - dead0, freed, left);
	t_prog_alive(&p, "the monitor's connections were counted");
	if (left) {
		show_monitor(s);
		fail_msg("%s: LEAK: %lld connections are still in the monitor after %d %s "
			 "connectors were SIGKILLed 0..%d us after their fork, the listener (pid "
			 "%d) still up and done with every connection it got (%s), the hang guard "
			 "of %d ms passed: a connection whose connector died before it had its "
			 "kernel connection must be freed at the death (monitor/conns.c, "
			 "unix_unconnected; soak finding S1); listed above", name, left, KILLS,
			 fam, KILL_MAX_US, (int)p.pid, drained, T_WAIT_MS);
	}
	if (t_counter(&s->mon, "created") - created0 < 1 ||
	    (unix_fam && t_counter(&s->mon, "unix_connected") - unix_conn0 < 1))
		fail_msg("%s: the connections were NOT accelerated: the monitor created %lld and "
			 "the server claimed %lld (expected >= 1 each)", name,
			 t_counter(&s->mon, "created") - created0,
			 unix_fam ? t_counter(&s->mon, "unix_connected") - unix_conn0 : -1ll);
	if (stalls)
		fail_msg("%s: the server never read EOF on %llu connections whose connector was "
			 "SIGKILLed (hang guard %d ms each): %s", name, (unsigned long long)stalls,
			 GUARD_MS, drained);
	if (bytes < writes)
		fail_msg("%s: LOST DATA: the killed connectors' write() acknowledged %llu bytes "
			 "(one each) and the server read only %llu of them (%llu connections, "
			 "%llu resets): a byte written before its writer's death must still be "
			 "read, then EOF, as with the kernel (a connection its connector said "
			 "UCONNECTED for stays claimable)", name, (unsigned long long)writes,
			 (unsigned long long)bytes, (unsigned long long)conns,
			 (unsigned long long)resets);
	go(s, "go-end");
	t_prog_expect(&p, GUARD_MS, 0);
	unlink_go(s, "go-end");
	t_prog_free(&p);
	return freed;
}

/*
 * ipcd-leaks dead-writers: DEAD_WRITERS connectors each write a byte and are
 * SIGKILLed before the listener accepts anything; then it accepts them
 * all: each must give its byte, then EOF, as with the kernel. A named
 * AF_UNIX connection whose connector said UCONNECTED (preload/unix.c) must
 * stay claimable after that connector's death (monitor/conns.c frees only
 * the ones it never said it for).
 */
static void dead_writers(struct t_state *s, bool unix_fam, const char *name)
{
	char n[16], guard[16], end[512];
	long long freed0 = t_counter(&s->mon, "unix_unconnected");
	long long created0 = t_counter(&s->mon, "created");
	const char *claim_key = unix_fam ? "unix_connected" : "accepted";
	long long claimed0 = t_counter(&s->mon, claim_key), created, claimed;
	uint64_t conns = 0, intact = 0;
	struct t_prog p;

	snprintf(n, sizeof(n), "%d", DEAD_WRITERS);
	snprintf(guard, sizeof(guard), "%d", GUARD_MS);
	start_leaks(&p, s, "dead-writers", "dead-writers", unix_fam ? "unix" : "tcp", s->mon.dir,
		    n, guard, NULL);
	snprintf(end, sizeof(end), "%.500s", need_line(&p, "dead-writers: END", KILL_LOOP_MS,
							   name));
	created = t_counter(&s->mon, "created") - created0;
	claimed = t_counter(&s->mon, claim_key) - claimed0;
	fprintf(stderr, "%s: %s; monitor: %lld created, %lld %s, %lld freed as unclaimed\n",
		name, end, created, claimed, claim_key,
		t_counter(&s->mon, "unix_unconnected") - freed0);
	if (!t_kv_u64(end, "conns", false, &conns) || !t_kv_u64(end, "intact", false, &intact))
		fail_msg("%s: cannot parse \"%s\"", name, end);
	if (created < (long long)conns)
		fail_msg("%s: the dead writers' connections were NOT accelerated: the monitor "
			 "created %lld for %llu connections", name, created,
			 (unsigned long long)conns);
	if (intact != conns) {
		t_prog_dump(&p);
		fail_msg("%s: LOST DATA: %llu of %llu connections accepted after their connector "
			 "wrote one byte and was SIGKILLed did not give that byte, then EOF "
			 "(\"%s\"; details above): as with the kernel, a connection made before "
			 "its connector's death stays to be accepted with what it was sent%s",
			 name, (unsigned long long)(conns - intact), (unsigned long long)conns,
			 end, unix_fam ? " (the connector posted UCONNECTED: the monitor must not "
			 "free it as unclaimed at the death)" : "");
	}
	if (claimed < (long long)conns)
		fail_msg("%s: the listener took only %lld of the %llu accelerated connections "
			 "(counter %s): the others went to the kernel", name, claimed,
			 (unsigned long long)conns, claim_key);
	t_prog_expect(&p, GUARD_MS, 0);
	t_prog_free(&p);
}

/*
 * Batches of kills until one freed an unclaimed AF_UNIX connection (a kill
 * that landed between the monitor's answer and the connector's kernel
 * connect(): what S1 needs), at most KILL_BATCHES; TCP: one batch.
 */
static void killed_connectors(void **state, bool unix_fam, const char *name)
{
	struct t_state *s = *state;
	long long freed = 0;
	int batch;

	t_mon_start(&s->mon);
	t_progs_env(&s->mon);
	unsetenv("IPCD_LANES");		/* the default, as the soak */
	dead_writers(s, unix_fam, name);
	for (batch = 1; batch <= (unix_fam ? KILL_BATCHES : 1) && !freed; batch++)
		freed += kill_batch(s, unix_fam, batch, name);
	if (unix_fam && !freed)
		fprintf(stderr, "%s: note: in %d batches no kill landed between the monitor's "
			"answer and the connector's kernel connect(): this run did not exercise "
			"the free of unclaimed connections\n", name, KILL_BATCHES);
	else if (unix_fam)
		fprintf(stderr, "%s: %lld unclaimed connections freed by the monitor (S1), none "
			"left\n", name, freed);
	expect_nothing_left(s, name);
	T_PASSED(s);
}

static void unix_killed_connectors_freed(void **state)
{
	killed_connectors(state, true, "unix_killed_connectors_freed");
}

static void tcp_killed_connectors_control(void **state)
{
	killed_connectors(state, false, "tcp_killed_connectors_control");
}

/* ---- 2. a connection id of monitor 1 closed through monitor 2 ------------------------- */

struct conn_info {
	long long id;
	long long a_pid;
	long long b_pid;
	char state[32];
};

/*
 * The accelerated connection whose connector is @a_pid (the first with
 * @id if @id, else the last one listed), from ipcdctl --json connections;
 * false if none.
 */
static bool find_conn(struct t_state *s, long long a_pid, long long id, struct conn_info *out)
{
	bool found = false;
	const char *p;

	if (t_ctl(&s->mon, &ctl, true, "connections") != 0)
		fail_msg("ipcdctl --json connections: exit %d: %s", ctl.code, ctl.err);
	for (p = ctl.out; (p = strstr(p, "{\"id\":")); p++) {
		const char *end = strchr(p, '}'), *st;
		char entry[1024];
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct conn_info c = { 0 };

		snprintf(entry, sizeof(entry), "%.*s", (int)len, p);
		if (!strstr(entry, "\"accelerated\":true") || !t_json_num(entry, "id", &c.id) ||
		    !t_json_num(entry, "a_pid", &c.a_pid) || !t_json_num(entry, "b_pid", &c.b_pid))
			continue;
		st = strstr(entry, "\"state\":\"");
		if (st)
			snprintf(c.state, sizeof(c.state), "%.*s", (int)strcspn(st + 9, "\""),
				 st + 9);
		if (c.a_pid != a_pid || (id && c.id != id))
			continue;
		*out = c;
		found = true;
		if (id)
			break;
	}
	return found;
}

/* Q must be in monitor 2's list, established, its ends P and the server. */
static void expect_q_listed(struct t_state *s, const struct conn_info *q, long long x_id,
			    const char *when, const char *name)
{
	struct conn_info now;

	if (!find_conn(s, q->a_pid, q->id, &now)) {
		show_monitor(s);
		fail_msg("%s: monitor 2 no longer lists connection Q (id %lld, P pid %lld) %s: "
			 "closed by the CLOSE of P's old connection X (monitor 1's id %lld)? "
			 "The ids of monitor 2 must never be monitor 1's (monitor/conns.c: the "
			 "serials start at random); listed above", name, q->id, q->a_pid, when,
			 x_id);
	}
	if (strcmp(now.state, "established") || now.b_pid != q->b_pid) {
		show_monitor(s);
		fail_msg("%s: monitor 2 lists connection Q (id %lld) as \"%s\" (B pid %lld) %s, "
			 "expected \"established\" (B pid %lld): an end of Q was closed by the "
			 "CLOSE of P's old connection X (monitor 1's id %lld)%s; listed above",
			 name, q->id, now.state, now.b_pid, when, q->b_pid, x_id,
			 q->id == x_id ? ", which is Q's id too: monitor 2 reused it" : "");
	}
}

/* An echo server (ipcd-leaks echo-server DIR @label) and its port. */
static unsigned int start_echo(struct t_prog *p, struct t_state *s, const char *label)
{
	char path[200], *txt;
	unsigned int port;

	start_leaks(p, s, label, "echo-server", s->mon.dir, label, NULL, NULL, NULL);
	snprintf(path, sizeof(path), "%s/%s.port", s->mon.dir, label);
	t_file_wait(path, p, GUARD_MS);
	txt = t_file_read(path);
	port = (unsigned int)strtoul(txt, NULL, 10);
	free(txt);
	if (!port)
		fail_msg("%s: no port in %s", label, path);
	return port;
}

static void ids_not_reused_after_restart(void **state)
{
	static const char name[] = "ids_not_reused_after_restart";
	struct t_state *s = *state;
	struct t_prog srv1, srv2, cli;
	struct conn_info x, q;
	char line[1024];
	const char *l;
	long long p_pid, created;

	t_mon_start(&s->mon);
	t_progs_env(&s->mon);
	/* X and Q each their monitor's first connection (no lane kits before them). */
	setenv("IPCD_LANES", "0", 1);
	snprintf(line, sizeof(line), "%u", start_echo(&srv1, s, "server1"));
	start_leaks(&cli, s, "P", "ids-client", s->mon.dir, line, NULL, NULL, NULL);
	l = need_line(&cli, "P: pid=", GUARD_MS, name);
	expect_eventfd(l, "P's connection X", name);
	p_pid = strtoll(l + strlen("P: pid="), NULL, 10);
	expect_eventfd(need_line(&srv1, "server: accepted", GUARD_MS, name),
		       "server 1's end of X", name);
	if (!find_conn(s, p_pid, 0, &x))
		fail_msg("%s: monitor 1 does not list P's (pid %lld) connection X", name, p_pid);
	fprintf(stderr, "%s: monitor 1: P (pid %lld) holds connection X, id %lld (%s), B pid "
		"%lld\n", name, p_pid, x.id, x.state, x.b_pid);

	t_mon_kill(&s->mon);
	t_mon_start(&s->mon);
	/* A listener of monitor 1 stays the kernel's: Q's server registers with monitor 2. */
	start_echo(&srv2, s, "server2");
	fprintf(stderr, "%s: monitor 1 SIGKILLed, monitor 2 up on the same control socket, "
		"server 2 listening\n", name);
	go(s, "go-q");
	expect_eventfd(need_line(&cli, "P: Q connected", GUARD_MS, name),
		       "P's connection Q (made through monitor 2)", name);
	expect_eventfd(need_line(&srv2, "server: accepted fd=anon_inode", GUARD_MS, name),
		       "server 2's end of Q", name);
	created = t_counter(&s->mon, "created");
	if (created < 1 || !find_conn(s, p_pid, 0, &q)) {
		show_monitor(s);
		fail_msg("%s: monitor 2 did not make P's connection Q (%lld created, P's not "
			 "listed)", name, created);
	}
	fprintf(stderr, "%s: monitor 2: P's connection Q, id %lld (%s), B pid %lld (X's id "
		"was %lld%s); P made it over the kernel first %u times (its library met "
		"monitor 1's death)\n", name, q.id, q.state, q.b_pid, x.id,
		q.id == x.id ? ": THE SAME" : ", not reused",
		t_count_str(t_prog_read(&cli), "P: Q try "));
	if (strcmp(q.state, "established"))
		fail_msg("%s: Q is \"%s\" before X's close, expected \"established\"", name,
			 q.state);

	/* P closes X: its lazy CLOSE of X's id goes to monitor 2. */
	go(s, "go-close");
	need_line(&cli, "P: X closed", GUARD_MS, name);
	l = await_line(&srv1, "server: conn fd", GUARD_MS);
	if (!l)
		fail_msg("%s: server 1 did not see X end after P closed it: %s", name, why);
	fprintf(stderr, "%s: P closed X; server 1: %s\n", name, l);
	/* ipcdctl's query serves the lazy requests queued before it (report.c). */
	expect_q_listed(s, &q, x.id, "after P closed X", name);

	go(s, "go-data");
	l = await_line(&cli, "P: END", GUARD_MS);
	if (!l)
		fail_msg("%s: HANG: P's exchanges on Q after X's close did not end: %s", name, why);
	snprintf(line, sizeof(line), "%s", l);
	fprintf(stderr, "%s: %s\n", name, line);
	if (strncmp(line, "P: END Q intact", 15))
		fail_msg("%s: connection Q no longer carries data both ways after P closed its "
			 "old connection X (monitor 1's id %lld, Q's %lld): \"%s\"", name, x.id,
			 q.id, line);
	expect_eventfd(line, "Q after X's close", name);
	expect_q_listed(s, &q, x.id, "after the exchanges", name);

	go(s, "go-end");
	t_prog_expect(&cli, GUARD_MS, 0);
	if (t_ctl_wait_num(&s->mon, "status", "connections", 0)) {
		show_monitor(s);
		fail_msg("%s: Q is still in monitor 2 after P closed it and exited", name);
	}
	t_kill_group_wait(srv1.pid);
	srv1.pid = 0;
	t_kill_group_wait(srv2.pid);
	srv2.pid = 0;
	expect_nothing_left(s, name);
	t_prog_free(&srv1);
	t_prog_free(&srv2);
	t_prog_free(&cli);
	T_PASSED(s);
}

/* ---- 3. a pipe's writer after its reader's death, the monitor stopped ----------------- */

/* /proc/@pid/stat's state letter; 0 if the process is gone. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *rp;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' ? rp[2] : 0;
}

/* Wait (bounded) until @pid's state is one of @states (0 in it: or gone). */
static bool await_state(pid_t pid, const char *states, bool gone_ok)
{
	uint64_t deadline = ipcd_deadline((int64_t)GUARD_MS * T_NSEC_PER_MSEC);

	for (;;) {
		char st = proc_state(pid);

		if ((!st && gone_ok) || (st && strchr(states, st)))
			return true;
		if (ipcd_remaining(deadline) == 0)
			return false;
		t_sleep_ms(1);
	}
}

static void pipe_epipe(void **state, bool stop, const char *name)
{
	struct t_state *s = *state;
	struct t_prog p;
	char w1[256], w2[256];
	const char *l, *r;
	long long pipes0;
	pid_t reader;
	bool hang;

	t_mon_start(&s->mon);
	t_progs_env(&s->mon);
	pipes0 = t_counter(&s->mon, "pipes");
	start_leaks(&p, s, "pipe", "pipe", s->mon.dir, NULL, NULL, NULL, NULL);
	l = need_line(&p, "writer: pid=", GUARD_MS, name);
	expect_eventfd(l, "the pipe's write end", name);
	r = strstr(l, " reader=");
	reader = r ? (pid_t)strtol(r + 8, NULL, 10) : 0;
	if (reader <= 0)
		fail_msg("%s: no reader pid in \"%s\"", name, l);
	expect_eventfd(need_line(&p, "reader: pid=", GUARD_MS, name), "the pipe's read end",
		       name);
	if (t_counter(&s->mon, "pipes") - pipes0 < 1)
		fail_msg("%s: the monitor made no pipe (counter \"pipes\")", name);

	if (stop) {
		if (kill(s->mon.pid, SIGSTOP))
			fail_msg("%s: kill(monitor, SIGSTOP): %s", name, strerror(errno));
		if (!await_state(s->mon.pid, "Tt", false))
			fail_msg("%s: the monitor (pid %d) did not stop after SIGSTOP (state %c)",
				 name, (int)s->mon.pid, proc_state(s->mon.pid));
	}
	/* The reader, blocked in its read, dies; the writer does not reap it yet. */
	if (kill(reader, SIGKILL))
		fail_msg("%s: kill(reader %d, SIGKILL): %s", name, (int)reader, strerror(errno));
	if (!await_state(reader, "Z", true))
		fail_msg("%s: the reader (pid %d) did not die after SIGKILL (state %c)", name,
			 (int)reader, proc_state(reader));
	fprintf(stderr, "%s: the reader (pid %d) SIGKILLed%s; the writer writes\n", name,
		(int)reader, stop ? " while the monitor is SIGSTOPped" : "");
	go(s, "go-write");

	l = await_line(&p, "writer: write 2:", stop ? STOPPED_GUARD_MS : GUARD_MS);
	hang = !l;
	r = find_line(t_prog_read(&p), "writer: write 1:");
	snprintf(w1, sizeof(w1), "%.200s", r ? r : "(no result: still in write())");
	r = find_line(t_prog_read(&p), "writer: write 2:");
	snprintf(w2, sizeof(w2), "%.200s", r ? r : "(no result: still in write())");
	if (stop) {
		fprintf(stderr, "%s: with the monitor stopped: \"%s\", \"%s\"; SIGCONT\n", name,
			w1, w2);
		if (kill(s->mon.pid, SIGCONT))
			fail_msg("%s: kill(monitor, SIGCONT): %s", name, strerror(errno));
	}
	if (hang)
		fail_msg("%s: HANG: the writer's writes did not return within the %d ms hang guard"
			 "%s (%s): \"%s\", \"%s\"; expected -1 EPIPE at once: its only reader was "
			 "SIGKILLed, which its life socket tells without the monitor "
			 "(preload/data.c pipe_reader_check)", name,
			 stop ? STOPPED_GUARD_MS : GUARD_MS,
			 stop ? " while the monitor was SIGSTOPped" : "", why, w1, w2);
	if (strcmp(w1, "writer: write 1: -1 EPIPE") || strcmp(w2, "writer: write 2: -1 EPIPE"))
		fail_msg("%s: the writer's writes after its only reader's SIGKILL%s: \"%s\", "
			 "\"%s\"; expected -1 EPIPE twice (SIGPIPE ignored), as the kernel's pipe: "
			 "after a pause of more than 1 ms the writer must see the reader's death "
			 "from its life socket (preload/data.c pipe_reader_check)%s", name,
			 stop ? " (the monitor SIGSTOPped)" : "", w1, w2,
			 stop ? ", not wait for the monitor to mark it" : "");
	fprintf(stderr, "%s: OK: %s, %s\n", name, w1 + 8, w2 + 8);
	t_prog_expect(&p, GUARD_MS, 0);
	expect_nothing_left(s, name);
	t_prog_free(&p);
	T_PASSED(s);
}

static void pipe_epipe_monitor_stopped(void **state)
{
	pipe_epipe(state, true, "pipe_epipe_monitor_stopped");
}

static void pipe_epipe_control(void **state)
{
	pipe_epipe(state, false, "pipe_epipe_control");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_ONCE(unix_killed_connectors_freed),
		T_ONCE(tcp_killed_connectors_control),
		T_ONCE(ids_not_reused_after_restart),
		T_ONCE(pipe_epipe_monitor_stopped),
		T_ONCE(pipe_epipe_control),
	};

#if defined(IPCD_SANITIZED) && !defined(IPCD_ASAN_RUNTIME)
	fprintf(stderr, "it_monitor_leaks: skipped in ThreadSanitizer builds "
			"(ThreadSanitizer cannot be preloaded)\n");
	return T_EXIT_SKIP;
#endif
	if (getenv("T_FILTER"))
		cmocka_set_test_filter(getenv("T_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
