/* SPDX-License-Identifier: MIT */
/*
 * it_real_unix.c - real programs from Debian, unmodified, over named
 * AF_UNIX stream sockets (a path and an abstract name), on the kernel and
 * then with server and clients all under ipcd-run (issue #6).
 *
 * Cases:
 *   - socat_oneway: "socat -u UNIX-LISTEN:PATH OPEN:FILE" receives 64 MiB
 *     that "socat -u OPEN:FILE UNIX-CONNECT:PATH" sends: the file written is
 *     the file sent (sizes, checksums, every byte; and sha256sum of both);
 *   - socat_echo: "socat UNIX-LISTEN:PATH,fork EXEC:cat" echoes 64 MiB that
 *     "socat - UNIX-CONNECT:PATH" sends from a file and writes back into
 *     another (both directions at once); then 10 small files, a connection
 *     each; then the same server on an abstract name (ABSTRACT-LISTEN);
 *   - redis: redis-server with --port 0 --unixsocket PATH: redis-cli -s
 *     PATH SET of values of 1 B to 1 MiB from a file, GET byte-exact, the
 *     server's SHA-1 of each; then "redis-benchmark -s PATH -n 20000 -q
 *     -t set,get": both results reported, and INFO commandstats counted at
 *     least 20000 SET and 20000 GET calls.
 * Preloaded, the monitor's "unix_connected" counter must have grown by at
 * least the connections the clients made (server and client preloaded);
 * on the kernel it must not have grown at all. Then nothing is left behind
 * (t_real_finish(): no TCP connection either way, no fallback, no leak).
 * A case whose programs are missing is skipped (scripts/setup.sh test
 * installs them). Every wait is bounded; no timing is asserted.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t_real.h"

#define BULK		(64u << 20)
#define SMALL_FILES	10
#define BENCH_N		20000
#define BENCH_CLIENTS	50	/* redis-benchmark's default -c */

static const size_t sizes[] = { 1, 4096, 65536, 1 << 20 };
#define N_SIZES		(sizeof(sizes) / sizeof(sizes[0]))

/* True if every program of @names (NULL-terminated) is installed; else prints why. */
static bool have_all(const char *const *names)
{
	static const char *const dirs[] = { "/usr/sbin", "/usr/bin", "/sbin", "/bin" };

	for (; *names; names++) {
		bool found = t_have_prog(*names);
		char path[256];

		for (size_t i = 0; !found && i < sizeof(dirs) / sizeof(dirs[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", dirs[i], *names);
			found = access(path, X_OK) == 0;
		}
		if (!found) {
			fprintf(stderr, "SKIPPED: %s is not installed (scripts/setup.sh test)\n",
				*names);
			return false;
		}
	}
	return true;
}

#define NEED(...)								\
	do {									\
		if (!have_all((const char *const[]){ __VA_ARGS__, NULL })) {	\
			skip();							\
			return;							\
		}								\
	} while (0)

/* unix_connected of the monitor now. */
static long long unix_connected(const struct t_real *r)
{
	return t_counter(&r->t.mon, "unix_connected");
}

/*
 * The server's socket file exists and, preloaded, the monitor lists a
 * registered listener (unix_listeners > 0; bounded: a warning if it never
 * does, and the counter check at the end fails the case).
 */
static void wait_unix_listen(struct t_real *r, const char *path, struct t_prog *srv)
{
	int waited = 0;

	if (path)
		t_file_wait(path, srv, T_PROG_START_MS);
	while (r->preload && t_counter(&r->t.mon, "unix_listeners") < 1) {
		t_prog_alive(srv, "the monitor listed its listener");
		if (waited >= T_PROG_START_MS) {
			fprintf(stderr, "WARNING: after %d ms the monitor lists no named listener "
				"(unix_listeners 0): the connections will not be accelerated\n",
				T_PROG_START_MS);
			return;
		}
		t_sleep_ms(10);
		waited += 10;
	}
}

/*
 * After every program exited: preloaded, unix_connected grew by at least
 * @conns since @u0; on the kernel, not at all. Then t_real_finish().
 */
static void finish(struct t_real *r, long long u0, long long conns, const char *what)
{
	long long grew = unix_connected(r) - u0;

	fprintf(stderr, "%s (%s): unix_connected grew by %lld; the clients made %lld named "
		"connections\n", what, r->what, grew, conns);
	if (r->preload && grew < conns) {
		struct t_out o;

		memset(&o, 0, sizeof(o));
		if (t_ctl(&r->t.mon, &o, false, "counters") == 0)
			fprintf(stderr, "---- ipcdctl counters ----\n%s----\n", o.out);
		fail_msg("%s (preload): named AF_UNIX connections NOT accelerated as expected: "
			 "unix_connected grew by %lld, the clients made %lld (server and clients "
			 "preloaded)", what, grew, conns);
	}
	if (!r->preload && grew != 0)
		fail_msg("%s (kernel): nothing was preloaded, yet unix_connected grew by %lld",
			 what, grew);
	t_real_finish(r, 0, what);
}

/* SIGTERM to a server that runs until told; any exit status (socat's is its signal's). */
static void stop(struct t_prog *p)
{
	kill(p->pid, SIGTERM);
	if (t_prog_wait(p, T_REAL_STOP_MS) < 0) {
		t_prog_dump(p);
		fail_msg("%s: did not exit within %d ms of SIGTERM", p->label, T_REAL_STOP_MS);
	}
	t_prog_free(p);
}

static void sha256_same(const char *a, const char *b, const char *what)
{
	char *const argv[] = { (char *)"sha256sum", (char *)a, (char *)b, NULL };
	struct t_out o;

	memset(&o, 0, sizeof(o));
	t_run(&o, NULL, argv, NULL);
	if (o.code != 0 || strlen(o.out) < 130 || memcmp(o.out, strchr(o.out, '\n') + 1, 64))
		fail_msg("%s: sha256sum: exit %d:\n%s%s", what, o.code, o.out, o.err);
	fprintf(stderr, "%s: sha256 %.64s on both sides\n", what, o.out);
}

/* ---- socat ---------------------------------------------------------------------------- */

static void test_socat_oneway(void **state)
{
	struct t_real *r = *state;
	const char *dir = r->t.mon.dir, *socat;
	char sock[200], in[200], got[200], lis[256], con[256], opn[256];
	struct t_prog srv, cli;
	long long u0;

	NEED("socat", "sha256sum");
	socat = t_real_find("socat");
	t_real_begin(r);
	u0 = unix_connected(r);
	snprintf(sock, sizeof(sock), "%s/oneway.sock", dir);
	snprintf(in, sizeof(in), "%s/oneway.in", dir);
	snprintf(got, sizeof(got), "%s/oneway.got", dir);
	t_real_make_file(in, BULK, 31);
	snprintf(lis, sizeof(lis), "UNIX-LISTEN:%s", sock);
	snprintf(opn, sizeof(opn), "OPEN:%s,creat,trunc", got);
	{
		char *const argv[] = { (char *)socat, (char *)"-u", lis, opn, NULL };

		t_prog_startv(&srv, dir, "socat-server", r->preload, argv);
	}
	wait_unix_listen(r, sock, &srv);
	snprintf(opn, sizeof(opn), "OPEN:%s", in);
	snprintf(con, sizeof(con), "UNIX-CONNECT:%s", sock);
	{
		char *const argv[] = { (char *)socat, (char *)"-u", opn, con, NULL };

		t_real_run(r, &cli, "socat-client", argv, NULL, NULL, T_REAL_LOAD_MS);
		t_prog_free(&cli);
	}
	/* the server takes one connection: it exits 0 at its EOF */
	t_prog_expect(&srv, T_REAL_CLIENT_MS, 0);
	t_prog_free(&srv);
	t_real_expect_same(in, got, "socat -u: 64 MiB from UNIX-CONNECT to UNIX-LISTEN");
	sha256_same(in, got, "socat -u: 64 MiB");
	unlink(in);
	unlink(got);
	finish(r, u0, 1, "socat one way");
}

/* "socat -t 60 - ADDR" with stdin from @in and stdout to @out: what it sent comes back. */
static void echo_once(struct t_real *r, const char *addr, const char *in, const char *out,
		      const char *label, int timeout_ms)
{
	char *const argv[] = { (char *)t_real_find("socat"), (char *)"-t", (char *)"60",
			       (char *)"-", (char *)addr, NULL };
	struct t_prog cli;

	t_real_run(r, &cli, label, argv, in, out, timeout_ms);
	t_prog_free(&cli);
	t_real_expect_same(in, out, label);
}

static void test_socat_echo(void **state)
{
	struct t_real *r = *state;
	const char *dir = r->t.mon.dir, *socat;
	char sock[200], in[200], got[200], lis[256], con[256], label[64], abs_name[96];
	struct t_prog srv;
	long long u0, conns = 0;

	NEED("socat", "cat", "sha256sum");
	socat = t_real_find("socat");
	t_real_begin(r);
	u0 = unix_connected(r);
	snprintf(sock, sizeof(sock), "%s/echo.sock", dir);
	snprintf(lis, sizeof(lis), "UNIX-LISTEN:%s,fork", sock);
	{
		char *const argv[] = { (char *)socat, (char *)"-t", (char *)"60", lis,
				       (char *)"EXEC:cat", NULL };

		t_prog_startv(&srv, dir, "socat-echo", r->preload, argv);
	}
	wait_unix_listen(r, sock, &srv);
	snprintf(con, sizeof(con), "UNIX-CONNECT:%s", sock);
	snprintf(in, sizeof(in), "%s/echo.in", dir);
	snprintf(got, sizeof(got), "%s/echo.got", dir);
	t_real_make_file(in, BULK, 32);
	echo_once(r, con, in, got, "socat echo: 64 MiB through cat and back", T_REAL_LOAD_MS);
	sha256_same(in, got, "socat echo: 64 MiB");
	conns++;
	for (int i = 0; i < SMALL_FILES; i++) {
		t_real_make_file(in, (size_t)1 << (i * 2), 40 + (uint32_t)i);
		snprintf(label, sizeof(label), "socat echo: %zu bytes", (size_t)1 << (i * 2));
		echo_once(r, con, in, got, label, T_REAL_CLIENT_MS);
		conns++;
	}
	stop(&srv);

	snprintf(abs_name, sizeof(abs_name), "ipcd-it-real-unix-%d", (int)getpid());
	snprintf(lis, sizeof(lis), "ABSTRACT-LISTEN:%s,fork", abs_name);
	{
		char *const argv[] = { (char *)socat, (char *)"-t", (char *)"60", lis,
				       (char *)"EXEC:cat", NULL };

		t_prog_startv(&srv, dir, "socat-echo-abstract", r->preload, argv);
	}
	/* no file to wait for: the client retries until the name is there */
	wait_unix_listen(r, NULL, &srv);
	snprintf(con, sizeof(con), "ABSTRACT-CONNECT:%s,retry=200,interval=0.05", abs_name);
	t_real_make_file(in, 4u << 20, 50);
	echo_once(r, con, in, got, "socat echo on an abstract name: 4 MiB", T_REAL_LOAD_MS);
	conns++;
	stop(&srv);
	unlink(in);
	unlink(got);
	finish(r, u0, conns, "socat echo");
}

/* ---- redis -------------------------------------------------------------------------- */

struct redis {
	struct t_real *r;
	struct t_prog srv;
	char sock[200];
	const char *cli;
	long long conns;
};

static void redis_start(struct t_real *r, struct redis *rd)
{
	const char *bin = t_real_find("redis-server");

	memset(rd, 0, sizeof(*rd));
	rd->r = r;
	rd->cli = t_real_find("redis-cli");
	snprintf(rd->sock, sizeof(rd->sock), "%s/redis.sock", r->t.mon.dir);
	{
		char *const argv[] = { (char *)bin, (char *)"--port", (char *)"0",
				       (char *)"--unixsocket", rd->sock, (char *)"--unixsocketperm",
				       (char *)"700", (char *)"--save", (char *)"",
				       (char *)"--appendonly", (char *)"no", (char *)"--dir",
				       r->t.mon.dir, (char *)"--daemonize", (char *)"no",
				       (char *)"--logfile", (char *)"", (char *)"--databases",
				       (char *)"1", NULL };

		t_prog_startv(&rd->srv, r->t.mon.dir, "redis-server", r->preload, argv);
	}
	t_prog_wait_output(&rd->srv, false, "ready to accept connections at", T_PROG_START_MS);
	wait_unix_listen(r, rd->sock, &rd->srv);
	fprintf(stderr, "redis-server pid %d on %s\n", (int)rd->srv.pid, rd->sock);
}

static void redis_stop(struct redis *rd)
{
	kill(rd->srv.pid, SIGTERM);
	t_prog_expect(&rd->srv, T_REAL_STOP_MS, 0);
	if (!strstr(rd->srv.out, "ready to exit")) {
		t_prog_dump(&rd->srv);
		fail_msg("redis-server: no clean shutdown (output above)");
	}
	t_prog_free(&rd->srv);
}

/* redis-cli -s SOCK @args..., stdin @in, stdout @out (NULL: the log): its stdout (static). */
static const char *cli(struct redis *rd, const char *label, const char *in, const char *out,
		       const char *const *args)
{
	static char result[1 << 16];
	char *argv[T_PROG_MAX_ARGS + 1];
	struct t_prog p;
	int n = 0;

	argv[n++] = (char *)rd->cli;
	argv[n++] = (char *)"-s";
	argv[n++] = rd->sock;
	for (; *args; args++) {
		if (n == T_PROG_MAX_ARGS)
			fail_msg("%s: too many arguments", label);
		argv[n++] = (char *)*args;
	}
	argv[n] = NULL;
	t_real_run(rd->r, &p, label, argv, in, out, T_REAL_CLIENT_MS);
	snprintf(result, sizeof(result), "%s", p.out);
	t_prog_free(&p);
	rd->conns++;
	return result;
}

#define CLI(rd, label, in, out, ...) \
	cli((rd), (label), (in), (out), (const char *const[]){ __VA_ARGS__, NULL })

static void expect_reply(const char *label, const char *got, const char *want)
{
	if (strcmp(got, want))
		fail_msg("%s: replied \"%s\", expected \"%s\"", label, got, want);
}

static long long cmd_calls(struct redis *rd, const char *cmd)
{
	const char *reply = CLI(rd, "info", NULL, NULL, "INFO", "commandstats");
	char needle[64];
	const char *p;

	snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", cmd);
	p = strstr(reply, needle);
	return p ? strtoll(p + strlen(needle), NULL, 10) : 0;
}

static void test_redis_unix(void **state)
{
	struct t_real *r = *state;
	const char *dir = r->t.mon.dir, *out, *l;
	char path[200], got[200], key[64], label[128], want[64], sha[41], n_s[16];
	long long u0, set0, get0, set1, get1;
	struct redis rd;
	struct t_prog p;

	NEED("redis-server", "redis-cli", "redis-benchmark", "sha1sum");
	t_real_begin(r);
	u0 = unix_connected(r);
	redis_start(r, &rd);
	expect_reply("ping", CLI(&rd, "ping", NULL, NULL, "PING"), "PONG\n");
	for (size_t i = 0; i < N_SIZES; i++) {
		snprintf(path, sizeof(path), "%s/value-%zu.bin", dir, sizes[i]);
		snprintf(got, sizeof(got), "%s/got-%zu.bin", dir, sizes[i]);
		snprintf(key, sizeof(key), "value:%zu", sizes[i]);
		t_real_make_file(path, sizes[i], 7 + (uint32_t)i);
		snprintf(label, sizeof(label), "set-%zu", sizes[i]);
		expect_reply(label, CLI(&rd, label, path, NULL, "-x", "SET", key), "OK\n");
		snprintf(label, sizeof(label), "strlen-%zu", sizes[i]);
		snprintf(want, sizeof(want), "%zu\n", sizes[i]);
		expect_reply(label, CLI(&rd, label, NULL, NULL, "STRLEN", key), want);
		snprintf(label, sizeof(label), "get-%zu", sizes[i]);
		CLI(&rd, label, NULL, got, "--raw", "-D", "", "GET", key);
		snprintf(label, sizeof(label), "redis -s: GET %s (%zu B)", key, sizes[i]);
		t_real_expect_same(path, got, label);
		unlink(got);
		snprintf(label, sizeof(label), "sha1-%zu", sizes[i]);
		t_real_sha1(path, sha);
		snprintf(want, sizeof(want), "%s\n", sha);
		expect_reply(label, CLI(&rd, label, NULL, NULL, "EVAL",
					"return redis.sha1hex(redis.call('GET',KEYS[1]))", "1",
					key), want);
	}
	set0 = cmd_calls(&rd, "set");
	get0 = cmd_calls(&rd, "get");
	snprintf(n_s, sizeof(n_s), "%d", BENCH_N);
	{
		char *const argv[] = { (char *)t_real_find("redis-benchmark"), (char *)"-s",
				       rd.sock, (char *)"-n", n_s, (char *)"-q", (char *)"-t",
				       (char *)"set,get", NULL };

		out = t_real_run(r, &p, "redis-benchmark", argv, NULL, NULL, T_REAL_LOAD_MS);
	}
	fprintf(stderr, "redis-benchmark -s (%s):\n%s", r->what, out);
	/* -q: progress lines ("SET: rps=...", ended by \r), then "SET: N requests per second" */
	for (int i = 0; i < 2; i++) {
		const char *test = i ? "GET: " : "SET: ";
		double rps = 0;
		int n;

		for (l = strstr(out, test); l; l = strstr(l + 1, test)) {
			n = 0;
			if (sscanf(l + strlen(test), "%lf%n", &rps, &n) == 1 && n > 0 &&
			    !strncmp(l + strlen(test) + n, " requests per second", 20))
				break;
		}
		if (!l || rps <= 0) {
			t_prog_dump(&p);
			fail_msg("redis-benchmark -s: no %s result with requests per second > 0",
				 test);
		}
	}
	t_prog_free(&p);
	rd.conns += BENCH_CLIENTS;
	set1 = cmd_calls(&rd, "set");
	get1 = cmd_calls(&rd, "get");
	fprintf(stderr, "redis-benchmark -s: the server counted %lld SET and %lld GET calls\n",
		set1 - set0, get1 - get0);
	if (set1 - set0 < BENCH_N || get1 - get0 < BENCH_N)
		fail_msg("redis-benchmark -s: the server counted %lld SET and %lld GET calls, "
			 "expected >= %d each", set1 - set0, get1 - get0, BENCH_N);
	redis_stop(&rd);
	finish(r, u0, rd.conns, "redis over a unix socket");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_REAL_BOTH(test_socat_oneway),
		T_REAL_BOTH(test_socat_echo),
		T_REAL_BOTH(test_redis_unix),
	};

	T_REAL_RUN("it_real_unix", tests);
}
