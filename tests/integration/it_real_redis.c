/* SPDX-License-Identifier: MIT */
/*
 * it_real_redis.c - redis-server, redis-cli and redis-benchmark from Debian,
 * unmodified, on the kernel and then all under ipcd-run (issue #5 item 6).
 *
 * Each case starts its own redis-server (its own port, no persistence:
 * --save '' --appendonly no, in the monitor's temp dir) and checks:
 *   - cli: values of 1 B, 4 KiB, 64 KiB and 1 MiB (deterministic bytes, every
 *     byte value, CR LF and NUL included) written with "redis-cli -x SET"
 *     from a file, one command per connection: STRLEN, a byte-exact GET into
 *     a file (--raw -D ""), and the SHA-1 the server computes of what it
 *     stored (EVAL redis.sha1hex) against sha1sum of the file; then 300
 *     SET/GET commands one after another on one connection (redis-cli
 *     reading commands from stdin) with the replies compared line by line;
 *   - pipe: the same values plus 1000 small keys written pipelined (redis-cli
 *     --pipe: all commands sent before the replies are read; "errors: 0"),
 *     then verified pipelined by the server itself (EVAL comparing each
 *     value's SHA-1 or content, an error reply for a mismatch) and read back
 *     byte-exact with GET;
 *   - benchmark: redis-benchmark, 50 clients, SET and GET, without pipelining
 *     (-P 1) and with 16 requests in flight per client (-P 16): it exits 0,
 *     reports both tests, and the server's INFO commandstats counted at least
 *     every request it made.
 * Preloaded, the monitor must have accelerated every connection (no
 * fallback); on the kernel it must have seen none. Then nothing is left
 * behind (t_case_finish()).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t_real.h"

#define BENCH_CLIENTS	50
#define SMALL_KEYS	1000

static const size_t sizes[] = { 1, 4096, 65536, 1 << 20 };
#define N_SIZES		(sizeof(sizes) / sizeof(sizes[0]))

/* One redis-server of a case. */
struct redis {
	struct t_real *r;
	struct t_prog srv;
	unsigned int port;
	char port_s[16];
	const char *cli;
};

static void redis_start(struct t_real *r, struct redis *rd)
{
	const char *bin = t_real_find("redis-server");

	memset(rd, 0, sizeof(*rd));
	rd->r = r;
	rd->cli = t_real_find("redis-cli");
	rd->port = t_real_free_port();
	snprintf(rd->port_s, sizeof(rd->port_s), "%u", rd->port);
	{
		char *const argv[] = { (char *)bin, (char *)"--port", rd->port_s,
				       (char *)"--bind", (char *)"127.0.0.1", (char *)"--save",
				       (char *)"", (char *)"--appendonly", (char *)"no",
				       (char *)"--dir", r->t.mon.dir, (char *)"--daemonize",
				       (char *)"no", (char *)"--logfile", (char *)"",
				       (char *)"--databases", (char *)"1", NULL };

		t_prog_startv(&rd->srv, r->t.mon.dir, "redis-server", r->preload, argv);
	}
	t_prog_wait_output(&rd->srv, false, "Ready to accept connections", T_PROG_START_MS);
	t_real_wait_listen(r, rd->port, &rd->srv);
	fprintf(stderr, "redis-server pid %d on 127.0.0.1:%u\n", (int)rd->srv.pid, rd->port);
}

/* SIGTERM: redis shuts down and exits 0; nothing of it may be left. */
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

/*
 * redis-cli -h 127.0.0.1 -p PORT @args... (NULL-terminated), stdin from @in,
 * stdout to @out (NULL: the log). Returns its stdout (static copy).
 */
static const char *cli(struct redis *rd, const char *label, const char *in, const char *out,
		       const char *const *args)
{
	static char result[1 << 16];
	char *argv[T_PROG_MAX_ARGS + 1];
	struct t_prog p;
	int n = 0;

	argv[n++] = (char *)rd->cli;
	argv[n++] = (char *)"-h";
	argv[n++] = (char *)"127.0.0.1";
	argv[n++] = (char *)"-p";
	argv[n++] = rd->port_s;
	for (; *args; args++) {
		if (n == T_PROG_MAX_ARGS)
			fail_msg("%s: too many arguments", label);
		argv[n++] = (char *)*args;
	}
	argv[n] = NULL;
	t_real_run(rd->r, &p, label, argv, in, out, T_REAL_CLIENT_MS);
	snprintf(result, sizeof(result), "%s", p.out);
	t_prog_free(&p);
	return result;
}

#define CLI(rd, label, in, out, ...) \
	cli((rd), (label), (in), (out), (const char *const[]){ __VA_ARGS__, NULL })

/* @got must be @want exactly. */
static void expect_reply(const char *label, const char *got, const char *want)
{
	if (strcmp(got, want))
		fail_msg("%s: replied \"%s\", expected \"%s\"", label, got, want);
}

static void value_path(const struct t_real *r, size_t size, char *buf, size_t len)
{
	snprintf(buf, len, "%s/value-%zu.bin", r->t.mon.dir, size);
}

/* The values of every size, as files; returns nothing, the files stay for the checks. */
static void make_values(const struct t_real *r)
{
	for (size_t i = 0; i < N_SIZES; i++) {
		char path[200];
		uint32_t h;

		value_path(r, sizes[i], path, sizeof(path));
		h = t_real_make_file(path, sizes[i], 7 + (uint32_t)i);
		fprintf(stderr, "value %zu B: fnv1a 0x%08x\n", sizes[i], h);
	}
}

/*
 * Read the value of @size back: STRLEN, GET byte-exact into a file, and the
 * server's SHA-1 of what it stored against sha1sum of what was sent.
 */
static void check_value(struct redis *rd, const char *key, size_t size)
{
	const char *dir = rd->r->t.mon.dir;
	char src[200], got[200], want[64], sha[41], label[64];
	const char *reply;

	value_path(rd->r, size, src, sizeof(src));
	snprintf(got, sizeof(got), "%s/got-%s.bin", dir, key);
	snprintf(label, sizeof(label), "strlen-%s", key);
	reply = CLI(rd, label, NULL, NULL, "STRLEN", key);
	snprintf(want, sizeof(want), "%zu\n", size);
	expect_reply(label, reply, want);
	snprintf(label, sizeof(label), "get-%s", key);
	CLI(rd, label, NULL, got, "--raw", "-D", "", "GET", key);
	snprintf(label, sizeof(label), "redis GET %s (%zu B)", key, size);
	t_real_expect_same(src, got, label);
	unlink(got);
	snprintf(label, sizeof(label), "sha1-%s", key);
	reply = CLI(rd, label, NULL, NULL, "EVAL",
		    "return redis.sha1hex(redis.call('GET',KEYS[1]))", "1", key);
	t_real_sha1(src, sha);
	snprintf(want, sizeof(want), "%s\n", sha);
	expect_reply(label, reply, want);
}

static void key_name(size_t size, char *buf, size_t len)
{
	snprintf(buf, len, "value:%zu", size);
}

/* ---- redis-cli, one command per connection, and commands one by one -------- */

static void test_redis_cli(void **state)
{
	struct t_real *r = *state;
	const char *dir = r->t.mon.dir;
	char path[200], key[64], label[64], cmds[200], want[200];
	struct redis rd;
	struct t_prog p;
	FILE *f, *w;
	long long conns = 0;

	t_real_begin(r);
	redis_start(r, &rd);
	make_values(r);
	for (size_t i = 0; i < N_SIZES; i++) {
		value_path(r, sizes[i], path, sizeof(path));
		key_name(sizes[i], key, sizeof(key));
		snprintf(label, sizeof(label), "set-%zu", sizes[i]);
		expect_reply(label, CLI(&rd, label, path, NULL, "-x", "SET", key), "OK\n");
		check_value(&rd, key, sizes[i]);
		conns += 4;
	}
	/* 300 commands on one connection, each reply read before the next command */
	snprintf(cmds, sizeof(cmds), "%s/cmds.txt", dir);
	snprintf(want, sizeof(want), "%s/cmds-want.txt", dir);
	f = fopen(cmds, "we");
	w = fopen(want, "we");
	if (!f || !w)
		fail_msg("%s: %s", cmds, strerror(errno));
	for (int i = 0; i < 150; i++) {
		fprintf(f, "SET k:%d v-%d-%0*d\nGET k:%d\n", i, i, i % 97, 0, i);
		fprintf(w, "OK\nv-%d-%0*d\n", i, i % 97, 0);
	}
	fclose(f);
	fclose(w);
	{
		char *const argv[] = { (char *)rd.cli, (char *)"-h", (char *)"127.0.0.1",
				       (char *)"-p", rd.port_s, (char *)"--raw", NULL };
		char got[200];

		snprintf(got, sizeof(got), "%s/cmds-got.txt", dir);
		t_prog_startv_io(&p, dir, "cli-stdin", r->preload, argv, cmds, got);
		t_prog_expect(&p, T_REAL_CLIENT_MS, 0);
		t_real_expect_same(want, got, "redis-cli: 150 SET + 150 GET on one connection");
		t_prog_free(&p);
		conns++;
	}
	expect_reply("dbsize", CLI(&rd, "dbsize", NULL, NULL, "DBSIZE"), "154\n");
	conns++;
	redis_stop(&rd);
	t_real_finish(r, conns, "redis-cli");
}

/* ---- redis-cli --pipe: everything sent before the replies are read -------- */

/* One RESP command of @argc arguments; @lens[i] == 0: strlen. */
static void resp(FILE *f, int argc, const char *const *argv, const size_t *lens)
{
	fprintf(f, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		size_t n = lens && lens[i] ? lens[i] : strlen(argv[i]);

		fprintf(f, "$%zu\r\n", n);
		fwrite(argv[i], 1, n, f);
		fputs("\r\n", f);
	}
}

static char *slurp_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n = -1;

	if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fail_msg("%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		fail_msg("%s: short read", path);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void small_value(int i, char *buf, size_t len)
{
	snprintf(buf, len, "small-%d-%0*d", i, i % 211, 0);
}

static const char check_sha[] =
	"if redis.sha1hex(redis.call('GET',KEYS[1]))==ARGV[1] then return 1 end "
	"return redis.error_reply('MISMATCH '..KEYS[1])";
static const char check_eq[] =
	"if redis.call('GET',KEYS[1])==ARGV[1] then return 1 end "
	"return redis.error_reply('MISMATCH '..KEYS[1])";

static void expect_pipe(const char *label, const char *reply, unsigned int n)
{
	char want[64];

	snprintf(want, sizeof(want), "errors: 0, replies: %u", n);
	if (!strstr(reply, want))
		fail_msg("%s: expected \"%s\" in:\n%s", label, want, reply);
	fprintf(stderr, "%s: %s\n", label, want);
}

static void test_redis_pipe(void **state)
{
	struct t_real *r = *state;
	const char *dir = r->t.mon.dir;
	char set_path[200], check_path[200], path[200], key[64], sha[41], val[256];
	struct redis rd;
	FILE *f, *c;
	long long conns = 0;

	t_real_begin(r);
	redis_start(r, &rd);
	make_values(r);
	snprintf(set_path, sizeof(set_path), "%s/pipe-set.resp", dir);
	snprintf(check_path, sizeof(check_path), "%s/pipe-check.resp", dir);
	f = fopen(set_path, "we");
	c = fopen(check_path, "we");
	if (!f || !c)
		fail_msg("%s: %s", set_path, strerror(errno));
	for (size_t i = 0; i < N_SIZES; i++) {
		size_t len = 0;
		char *v;

		value_path(r, sizes[i], path, sizeof(path));
		key_name(sizes[i], key, sizeof(key));
		v = slurp_file(path, &len);
		resp(f, 3, (const char *const[]){ "SET", key, v }, (const size_t[]){ 0, 0, len });
		free(v);
		t_real_sha1(path, sha);
		resp(c, 5, (const char *const[]){ "EVAL", check_sha, "1", key, sha }, NULL);
	}
	for (int i = 0; i < SMALL_KEYS; i++) {
		snprintf(key, sizeof(key), "k:%d", i);
		small_value(i, val, sizeof(val));
		resp(f, 3, (const char *const[]){ "SET", key, val }, NULL);
		resp(c, 5, (const char *const[]){ "EVAL", check_eq, "1", key, val }, NULL);
	}
	fclose(f);
	fclose(c);
	expect_pipe("redis-cli --pipe SET",
		    CLI(&rd, "pipe-set", set_path, NULL, "--pipe", "--pipe-timeout", "60"),
		    N_SIZES + SMALL_KEYS);
	expect_pipe("redis-cli --pipe EVAL checks",
		    CLI(&rd, "pipe-check", check_path, NULL, "--pipe", "--pipe-timeout", "60"),
		    N_SIZES + SMALL_KEYS);
	conns += 2;
	for (size_t i = 0; i < N_SIZES; i++) {
		key_name(sizes[i], key, sizeof(key));
		check_value(&rd, key, sizes[i]);
		conns += 3;
	}
	snprintf(val, sizeof(val), "%u\n", (unsigned int)(N_SIZES + SMALL_KEYS));
	expect_reply("dbsize", CLI(&rd, "dbsize", NULL, NULL, "DBSIZE"), val);
	conns++;
	redis_stop(&rd);
	t_real_finish(r, conns, "redis-cli --pipe");
}

/* ---- redis-benchmark ---------------------------------------------------------- */

/* "cmdstat_@cmd:calls=N" from INFO commandstats (0 if the command never ran). */
static long long cmd_calls(struct redis *rd, const char *cmd)
{
	const char *reply = CLI(rd, "info", NULL, NULL, "INFO", "commandstats");
	char needle[64];
	const char *p;

	snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", cmd);
	p = strstr(reply, needle);
	return p ? strtoll(p + strlen(needle), NULL, 10) : 0;
}

static void run_benchmark(struct t_real *r, unsigned int pipeline, unsigned int n)
{
	char n_s[16], c_s[16], p_s[16], label[64];
	const char *out, *l;
	long long set0, get0, set1, get1;
	struct redis rd;
	struct t_prog p;

	t_real_begin(r);
	redis_start(r, &rd);
	set0 = cmd_calls(&rd, "set");
	get0 = cmd_calls(&rd, "get");
	snprintf(n_s, sizeof(n_s), "%u", n);
	snprintf(c_s, sizeof(c_s), "%u", BENCH_CLIENTS);
	snprintf(p_s, sizeof(p_s), "%u", pipeline);
	snprintf(label, sizeof(label), "redis-benchmark-P%u", pipeline);
	{
		char *const argv[] = { (char *)t_real_find("redis-benchmark"), (char *)"-h",
				       (char *)"127.0.0.1", (char *)"-p", rd.port_s, (char *)"-c",
				       c_s, (char *)"-n", n_s, (char *)"-P", p_s, (char *)"-t",
				       (char *)"set,get", (char *)"-d", (char *)"256", (char *)"-r",
				       (char *)"10000", (char *)"--csv", NULL };

		out = t_real_run(r, &p, label, argv, NULL, NULL, T_REAL_LOAD_MS);
	}
	fprintf(stderr, "%s (%s):\n%s", label, r->what, out);
	for (int i = 0; i < 2; i++) {
		const char *test = i ? "\"GET\"," : "\"SET\",";
		double rps = 0;

		l = t_line(out, test);
		if (!l || sscanf(l + strlen(test), "\"%lf\"", &rps) != 1 || rps <= 0) {
			t_prog_dump(&p);
			fail_msg("%s: no %s result with requests per second > 0", label, test);
		}
	}
	t_prog_free(&p);
	set1 = cmd_calls(&rd, "set");
	get1 = cmd_calls(&rd, "get");
	fprintf(stderr, "%s: the server counted %lld SET and %lld GET calls\n", label,
		set1 - set0, get1 - get0);
	if (set1 - set0 < n || get1 - get0 < n)
		fail_msg("%s: the server counted %lld SET and %lld GET calls, expected >= %u each",
			 label, set1 - set0, get1 - get0, n);
	redis_stop(&rd);
	/* the benchmark's clients, its CONFIG GET connection, 4 INFO redis-cli runs */
	t_real_finish(r, BENCH_CLIENTS + 4, label);
}

static void test_redis_benchmark_p1(void **state)
{
	run_benchmark(*state, 1, 20000);
}

static void test_redis_benchmark_p16(void **state)
{
	run_benchmark(*state, 16, 200000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_REAL_BOTH(test_redis_cli),
		T_REAL_BOTH(test_redis_pipe),
		T_REAL_BOTH(test_redis_benchmark_p1),
		T_REAL_BOTH(test_redis_benchmark_p16),
	};

	T_REAL_RUN("it_real_redis", tests);
}
