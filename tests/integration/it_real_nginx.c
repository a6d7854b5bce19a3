/* SPDX-License-Identifier: MIT */
/*
 * it_real_nginx.c - nginx from Debian, unmodified (a master and 2 workers
 * sharing the listener), with curl and wrk as clients, on the kernel and
 * then all under ipcd-run (issue #5 item 6).
 *
 * nginx gets a generated config in the monitor's temp dir: pid file, error
 * log and every temp path there, "user root", listening on a free port of
 * 127.0.0.1, serving files of 64 B, 4 KiB and 1 MiB of known content. No
 * "env IPCD_SOCKET": nginx clears its workers' environment, and the workers
 * must still find the test's monitor (the preload keeps the path it was
 * loaded with; the default socket may be another monitor's).
 * Cases:
 *   - curl (daemon off, sendfile on): the three files on one keep-alive
 *     connection, each on its own connection, the 1 MiB file 8 times in
 *     parallel; bodies byte-exact (size, checksum, every byte). Then a
 *     reload (SIGHUP to the master): wait until the master started 2 new
 *     workers and both old ones exited, and the same curls again. Then
 *     SIGQUIT: the master exits 0;
 *   - wrk (daemon off): 1 connection for 2 s on the 1 MiB file and 32
 *     connections (2 threads) for 2 s on the 4 KiB file; wrk must report
 *     requests, no socket error and no non-2xx/3xx response, and its Lua
 *     script checks that every response is a 200 whose body is the file,
 *     byte for byte;
 *   - daemon (daemon on, sendfile off): nginx forks its master into the
 *     background and the command exits 0; the master's pid comes from the
 *     pid file. The curls, a reload, the curls again; then nginx's binary
 *     upgrade: SIGUSR2 to the master, which execs a new master that gets
 *     the listening socket through exec (NGINX=fd; in its environment,
 *     which nginx clears of everything else) and starts 2 workers; the
 *     curls with both masters up; SIGQUIT to the old master, which exits
 *     0 with its workers; the curls again, served by the new master's
 *     workers alone; SIGQUIT to the new master.
 * Every case: nginx's error log has no [emerg], [alert], [crit] or [error]
 * line. Preloaded, the monitor must have accelerated every connection (no
 * fallback); on the kernel it must have seen none. Then nothing is left
 * behind.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcd/wait.h>

#include "t_real.h"

#define N_PARALLEL	8

static const struct {
	const char *name;
	size_t size;
} files[] = {
	{ "f64.bin", 64 },
	{ "f4k.bin", 4096 },
	{ "f1m.bin", 1 << 20 },
};
#define N_FILES		(sizeof(files) / sizeof(files[0]))

/* One nginx of a case. */
struct nginx {
	struct t_real *r;
	struct t_prog cmd;	/* the nginx command: the master with daemon off */
	pid_t master;
	bool daemon;
	unsigned int port;
	char conf[200];
	char pid_file[200];
	char error_log[200];
	char www[80];
};

static void write_conf(struct nginx *ng, bool sendfile)
{
	const char *dir = ng->r->t.mon.dir;
	char tmp[200];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s/nginx-tmp", dir);
	t_real_mkdir(tmp);
	f = fopen(ng->conf, "we");
	if (!f)
		fail_msg("%s: %s", ng->conf, strerror(errno));
	fprintf(f,
		"# written by it_real_nginx\n"
		"daemon %s;\n"
		"master_process on;\n"
		"worker_processes 2;\n"
		"user root;\n"
		"pid %s;\n"
		"error_log %s notice;\n"
		"events {\n"
		"    worker_connections 1024;\n"
		"}\n"
		"http {\n"
		"    access_log off;\n"
		"    default_type application/octet-stream;\n"
		"    sendfile %s;\n"
		"    keepalive_requests 1000000;\n"
		"    client_body_temp_path %s/body;\n"
		"    proxy_temp_path %s/proxy;\n"
		"    fastcgi_temp_path %s/fastcgi;\n"
		"    uwsgi_temp_path %s/uwsgi;\n"
		"    scgi_temp_path %s/scgi;\n"
		"    server {\n"
		"        listen 127.0.0.1:%u;\n"
		"        root %s;\n"
		"    }\n"
		"}\n",
		ng->daemon ? "on" : "off", ng->pid_file, ng->error_log, sendfile ? "on" : "off",
		tmp, tmp, tmp, tmp, tmp, ng->port, ng->www);
	if (fclose(f))
		fail_msg("%s: %s", ng->conf, strerror(errno));
}

/* The master's pid from the pid file (nginx writes it once listening); 0 if not yet. */
static pid_t read_pid_file(const struct nginx *ng)
{
	FILE *f = fopen(ng->pid_file, "re");
	long pid = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

/* Lines of the error log containing @needle. */
static unsigned int log_count(const struct nginx *ng, const char *needle)
{
	FILE *f = fopen(ng->error_log, "re");
	char line[1024];
	unsigned int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

/* Wait (bounded) until the error log has at least @n lines with @needle. */
static void log_wait(const struct nginx *ng, const char *needle, unsigned int n)
{
	uint64_t deadline = ipcd_deadline((int64_t)T_PROG_START_MS * T_NSEC_PER_MSEC);

	while (log_count(ng, needle) < n) {
		if (ng->master > 0 && kill(ng->master, 0) && errno == ESRCH)
			fail_msg("nginx master %d is gone; waiting for %u \"%s\" in %s",
				 (int)ng->master, n, needle, ng->error_log);
		if (ipcd_remaining(deadline) == 0)
			fail_msg("nginx: %u lines with \"%s\" in %s after %d ms, expected %u",
				 log_count(ng, needle), needle, ng->error_log, T_PROG_START_MS, n);
		t_sleep_ms(10);
	}
}

static void expect_clean_log(const struct nginx *ng)
{
	static const char *const bad[] = { "[emerg]", "[alert]", "[crit]", "[error]" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (log_count(ng, bad[i]))
			fail_msg("nginx: %u %s lines in %s (the logs are printed below)",
				 log_count(ng, bad[i]), bad[i], ng->error_log);
}

static void nginx_start(struct t_real *r, struct nginx *ng, bool daemon, bool sendfile)
{
	const char *dir = r->t.mon.dir, *bin = t_real_find("nginx");
	char prefix[200], early_log[200];
	uint64_t deadline;

	memset(ng, 0, sizeof(*ng));
	ng->r = r;
	ng->daemon = daemon;
	ng->port = t_real_free_port();
	snprintf(ng->conf, sizeof(ng->conf), "%s/nginx.conf", dir);
	snprintf(ng->pid_file, sizeof(ng->pid_file), "%s/nginx.pid", dir);
	snprintf(ng->error_log, sizeof(ng->error_log), "%s/nginx-error.log", dir);
	snprintf(ng->www, sizeof(ng->www), "%s/www", dir);
	snprintf(prefix, sizeof(prefix), "%s/", dir);
	snprintf(early_log, sizeof(early_log), "%s/nginx-early.log", dir);
	t_real_mkdir(ng->www);
	for (size_t i = 0; i < N_FILES; i++) {
		char path[300];

		snprintf(path, sizeof(path), "%s/%s", ng->www, files[i].name);
		t_real_make_file(path, files[i].size, 101 + (uint32_t)i);
	}
	write_conf(ng, sendfile);
	{
		/* -e: the error log before the config is read (not /var/log/nginx) */
		char *const argv[] = { (char *)bin, (char *)"-p", prefix, (char *)"-e", early_log,
				       (char *)"-c", ng->conf, NULL };

		t_prog_startv(&ng->cmd, dir, "nginx", r->preload, argv);
	}
	if (daemon) {
		/* the command forks the master into the background and exits 0 */
		t_prog_expect(&ng->cmd, T_PROG_START_MS, 0);
		t_prog_free(&ng->cmd);
	}
	deadline = ipcd_deadline((int64_t)T_PROG_START_MS * T_NSEC_PER_MSEC);
	while (!(ng->master = read_pid_file(ng))) {
		if (!daemon && t_try_wait(ng->cmd.pid) != T_STILL_RUNNING) {
			ng->cmd.pid = 0;
			t_prog_dump(&ng->cmd);
			fail_msg("nginx exited before writing %s (logs below)", ng->pid_file);
		}
		if (ipcd_remaining(deadline) == 0)
			fail_msg("nginx: no pid in %s after %d ms", ng->pid_file, T_PROG_START_MS);
		t_sleep_ms(10);
	}
	if (daemon)
		r->daemon = ng->master;	/* killed by the teardown unless stopped */
	else if (ng->master != ng->cmd.pid)
		fail_msg("nginx: daemon off, yet the pid file says %d, not %d", (int)ng->master,
			 (int)ng->cmd.pid);
	t_real_wait_listen(r, ng->port, daemon ? NULL : &ng->cmd);
	log_wait(ng, "start worker process", 2);
	fprintf(stderr, "nginx master %d (daemon %s) on 127.0.0.1:%u\n", (int)ng->master,
		daemon ? "on" : "off", ng->port);
}

/* SIGHUP: the master reloads, starts 2 new workers, and the 2 old ones exit. */
static void nginx_reload(struct nginx *ng)
{
	unsigned int started = log_count(ng, "start worker process");
	unsigned int exited = log_count(ng, "exited with code 0");

	if (kill(ng->master, SIGHUP))
		fail_msg("kill -HUP %d: %s", (int)ng->master, strerror(errno));
	log_wait(ng, "reconfiguring", 1);
	log_wait(ng, "start worker process", started + 2);
	log_wait(ng, "exited with code 0", exited + 2);
	fprintf(stderr, "nginx: reloaded (SIGHUP): 2 new workers, the 2 old ones exited\n");
}

/*
 * SIGUSR2: the binary upgrade. The master renames its pid file to .oldbin,
 * forks and execs the same binary, which inherits the listening socket and
 * writes the pid file with its own pid; it starts 2 workers.
 */
static pid_t nginx_upgrade(struct nginx *ng)
{
	unsigned int started = log_count(ng, "start worker process");
	pid_t old = ng->master, pid;
	uint64_t deadline;

	if (kill(old, SIGUSR2))
		fail_msg("kill -USR2 %d: %s", (int)old, strerror(errno));
	deadline = ipcd_deadline((int64_t)T_PROG_START_MS * T_NSEC_PER_MSEC);
	while ((pid = read_pid_file(ng)) == 0 || pid == old) {
		if (ipcd_remaining(deadline) == 0)
			fail_msg("nginx: no new master in %s %d ms after SIGUSR2 (logs below)",
				 ng->pid_file, T_PROG_START_MS);
		t_sleep_ms(10);
	}
	log_wait(ng, "start worker process", started + 2);
	ng->master = pid;
	fprintf(stderr, "nginx: upgraded (SIGUSR2): new master %d, old master %d\n", (int)pid,
		(int)old);
	return old;
}

/* SIGQUIT to the old master after an upgrade: it and its workers exit 0. */
static void nginx_stop_old(struct nginx *ng, pid_t old)
{
	unsigned int exited = log_count(ng, "exited with code 0");
	int code;

	if (kill(old, SIGQUIT))
		fail_msg("kill -QUIT %d: %s", (int)old, strerror(errno));
	code = t_wait(old, T_REAL_STOP_MS);
	if (code != 0)
		fail_msg("nginx old master %d: exit %d after SIGQUIT, expected 0", (int)old, code);
	log_wait(ng, "exited with code 0", exited + 2);
	ng->r->daemon = ng->master;	/* the new one, now ours (subreaper) */
	fprintf(stderr, "nginx: old master %d and its workers exited\n", (int)old);
}

/* SIGQUIT: a graceful stop; the master exits 0 (our child, also as a daemon: subreaper). */
static void nginx_stop(struct nginx *ng)
{
	int code;

	if (kill(ng->master, SIGQUIT))
		fail_msg("kill -QUIT %d: %s", (int)ng->master, strerror(errno));
	if (ng->daemon) {
		code = t_wait(ng->master, T_REAL_STOP_MS);
		ng->r->daemon = 0;
		if (code != 0)
			fail_msg("nginx master %d (daemon): exit %d after SIGQUIT, expected 0",
				 (int)ng->master, code);
	} else {
		t_prog_expect(&ng->cmd, T_REAL_STOP_MS, 0);
		t_prog_free(&ng->cmd);
	}
	expect_clean_log(ng);
	if (access(ng->pid_file, F_OK) == 0)
		fail_msg("nginx: %s still there after the master exited", ng->pid_file);
}

/* ---- curl ------------------------------------------------------------------------ */

static void url(const struct nginx *ng, size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "http://127.0.0.1:%u/%s", ng->port, files[i].name);
}

static void src_path(const struct nginx *ng, size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", ng->www, files[i].name);
}

/*
 * curl --fail @urls[i] -o @outs[i]...; -Z: in parallel (HTTP/1.1: a
 * connection per transfer at once, or one reused when a transfer ended).
 * Every transfer must be a 200 of its file's size. Returns the connections
 * curl made (its num_connects).
 */
static unsigned int curl(struct nginx *ng, const char *label, bool parallel, unsigned int n,
			 char (*urls)[96], char (*outs)[200])
{
	char *argv[T_PROG_MAX_ARGS + 1];
	unsigned int conns = 0, lines = 0;
	const char *out, *l;
	struct t_prog p;
	int k = 0;

	argv[k++] = (char *)t_real_find("curl");
	argv[k++] = (char *)"-sS";
	argv[k++] = (char *)"--fail";
	argv[k++] = (char *)"--max-time";
	argv[k++] = (char *)"30";
	argv[k++] = (char *)"-w";
	argv[k++] = (char *)"%{http_code} %{size_download} %{num_connects}\\n";
	if (parallel) {
		argv[k++] = (char *)"-Z";
		argv[k++] = (char *)"--parallel-max";
		argv[k++] = (char *)"16";
	}
	for (unsigned int i = 0; i < n; i++) {
		argv[k++] = urls[i];
		argv[k++] = (char *)"-o";
		argv[k++] = outs[i];
	}
	argv[k] = NULL;
	out = t_real_run(ng->r, &p, label, argv, NULL, NULL, T_REAL_CLIENT_MS);
	for (l = out; *l; l += strcspn(l, "\n"), l += *l == '\n') {
		unsigned int code, c;
		unsigned long long size;

		if (sscanf(l, "%u %llu %u", &code, &size, &c) != 3 || code != 200) {
			t_prog_dump(&p);
			fail_msg("%s: not a 200 (output above)", label);
		}
		conns += c;
		lines++;
	}
	if (lines != n) {
		t_prog_dump(&p);
		fail_msg("%s: %u transfers reported, expected %u", label, lines, n);
	}
	t_prog_free(&p);
	return conns;
}

/*
 * The three files on one connection, each on its own, the 1 MiB file
 * N_PARALLEL times at once; every body byte-exact. Returns the connections
 * curl made.
 */
static unsigned int curl_all(struct nginx *ng, const char *round)
{
	char urls[N_PARALLEL][96], outs[N_PARALLEL][200], src[200], label[96];
	const char *dir = ng->r->t.mon.dir;
	unsigned int conns = 0;

	for (size_t i = 0; i < N_FILES; i++) {
		url(ng, i, urls[i], sizeof(urls[i]));
		snprintf(outs[i], sizeof(outs[i]), "%s/got-%zu.bin", dir, i);
	}
	snprintf(label, sizeof(label), "curl-keepalive-%s", round);
	conns += curl(ng, label, false, N_FILES, urls, outs);
	for (size_t i = 0; i < N_FILES; i++) {
		src_path(ng, i, src, sizeof(src));
		snprintf(label, sizeof(label), "%s: curl %s (keep-alive)", round, files[i].name);
		t_real_expect_same(src, outs[i], label);
		unlink(outs[i]);
	}
	for (size_t i = 0; i < N_FILES; i++) {
		snprintf(label, sizeof(label), "curl-%s-%s", files[i].name, round);
		conns += curl(ng, label, false, 1, &urls[i], &outs[i]);
		src_path(ng, i, src, sizeof(src));
		snprintf(label, sizeof(label), "%s: curl %s", round, files[i].name);
		t_real_expect_same(src, outs[i], label);
		unlink(outs[i]);
	}
	for (size_t i = 0; i < N_PARALLEL; i++) {
		url(ng, N_FILES - 1, urls[i], sizeof(urls[i]));
		snprintf(outs[i], sizeof(outs[i]), "%s/got-par-%zu.bin", dir, i);
	}
	snprintf(label, sizeof(label), "curl-parallel-%s", round);
	conns += curl(ng, label, true, N_PARALLEL, urls, outs);
	src_path(ng, N_FILES - 1, src, sizeof(src));
	for (size_t i = 0; i < N_PARALLEL; i++) {
		snprintf(label, sizeof(label), "%s: curl -Z %s #%zu", round,
			 files[N_FILES - 1].name, i);
		t_real_expect_same(src, outs[i], label);
		unlink(outs[i]);
	}
	return conns;
}

static void test_nginx_curl(void **state)
{
	struct t_real *r = *state;
	unsigned int conns = 0;
	struct nginx ng;

	t_real_begin(r);
	nginx_start(r, &ng, false, true);
	conns += curl_all(&ng, "before reload");
	nginx_reload(&ng);
	conns += curl_all(&ng, "after reload");
	nginx_stop(&ng);
	t_real_finish(r, conns, "nginx (daemon off) + curl, reload");
}

static void test_nginx_daemon(void **state)
{
	struct t_real *r = *state;
	unsigned int conns = 0;
	struct nginx ng;
	pid_t old;

	t_real_begin(r);
	nginx_start(r, &ng, true, false);
	conns += curl_all(&ng, "before reload");
	nginx_reload(&ng);
	conns += curl_all(&ng, "after reload");
	old = nginx_upgrade(&ng);
	conns += curl_all(&ng, "both masters after the upgrade");
	nginx_stop_old(&ng, old);
	conns += curl_all(&ng, "the new master alone");
	nginx_stop(&ng);
	t_real_finish(r, conns, "nginx (daemon on) + curl, reload, binary upgrade");
}

/* ---- wrk ------------------------------------------------------------------------- */

/*
 * Every response must be a 200 whose body is the file ($T_WRK_FILE); the
 * counts are summed over wrk's threads in done().
 */
static const char wrk_lua[] =
	"local path = os.getenv('T_WRK_FILE')\n"
	"local threads = {}\n"
	"function setup(thread) table.insert(threads, thread) end\n"
	"function init(args)\n"
	"    local f = assert(io.open(path, 'rb')); want = f:read('*a'); f:close()\n"
	"    good = 0; bad = 0; first_bad = ''\n"
	"end\n"
	"function response(status, headers, body)\n"
	"    if status == 200 and body == want then good = good + 1\n"
	"    else\n"
	"        bad = bad + 1\n"
	"        if first_bad == '' then\n"
	"            first_bad = string.format('status %d, %d body bytes', status, #(body or ''))\n"
	"        end\n"
	"    end\n"
	"end\n"
	"function done(summary, latency, requests)\n"
	"    local g, b, fb = 0, 0, ''\n"
	"    for _, t in ipairs(threads) do\n"
	"        g = g + t:get('good'); b = b + t:get('bad')\n"
	"        if fb == '' then fb = t:get('first_bad') end\n"
	"    end\n"
	"    io.write(string.format('WRK CHECK good=%d bad=%d %s\\n', g, b, fb))\n"
	"end\n";

static void run_wrk(struct t_real *r, struct nginx *ng, size_t file, unsigned int threads,
		    unsigned int conns, const char *label)
{
	char lua[200], src[200], u[96], t_s[16], c_s[16];
	const char *out, *l;
	uint64_t good = 0, bad = 1;
	struct t_prog p;
	FILE *f;

	snprintf(lua, sizeof(lua), "%s/check.lua", r->t.mon.dir);
	f = fopen(lua, "we");
	if (!f || fputs(wrk_lua, f) < 0 || fclose(f))
		fail_msg("%s: %s", lua, strerror(errno));
	src_path(ng, file, src, sizeof(src));
	setenv("T_WRK_FILE", src, 1);
	url(ng, file, u, sizeof(u));
	snprintf(t_s, sizeof(t_s), "%u", threads);
	snprintf(c_s, sizeof(c_s), "%u", conns);
	{
		char *const argv[] = { (char *)t_real_find("wrk"), (char *)"-t", t_s, (char *)"-c",
				       c_s, (char *)"-d", (char *)"2s", (char *)"--timeout",
				       (char *)"20s", (char *)"-s", lua, u, NULL };

		out = t_real_run(r, &p, label, argv, NULL, NULL, T_REAL_LOAD_MS);
	}
	unsetenv("T_WRK_FILE");
	fprintf(stderr, "%s (%s):\n%s", label, r->what, out);
	l = t_line(out, "WRK CHECK");
	if (!strstr(out, " requests in ") || strstr(out, "Socket errors") ||
	    strstr(out, "Non-2xx or 3xx responses") || !l || !t_kv_u64(l, "good", false, &good) ||
	    !t_kv_u64(l, "bad", false, &bad) || bad || !good) {
		t_prog_dump(&p);
		fail_msg("%s: wrk reported errors, bad responses or no request (output above)",
			 label);
	}
	t_prog_free(&p);
}

static void test_nginx_wrk(void **state)
{
	struct t_real *r = *state;
	struct nginx ng;

	t_real_begin(r);
	nginx_start(r, &ng, false, true);
	run_wrk(r, &ng, 2, 1, 1, "wrk-1conn-1m");
	run_wrk(r, &ng, 1, 2, 32, "wrk-32conns-4k");
	nginx_stop(&ng);
	t_real_finish(r, 1 + 32, "nginx + wrk");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_REAL_BOTH(test_nginx_curl),
		T_REAL_BOTH(test_nginx_wrk),
		T_REAL_BOTH(test_nginx_daemon),
	};

	T_REAL_RUN("it_real_nginx", tests);
}
