/* SPDX-License-Identifier: MIT */
/* t_progs.c - run real programs under ipcd-run for the preload integration tests. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ipcd/wait.h>

#include "t_progs.h"

static struct t_out ctl;

uint64_t t_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- programs --------------------------------------------------------------- */

void t_prog_startv(struct t_prog *p, const char *dir, const char *label, bool preload,
		   char *const argv[])
{
	t_prog_startv_io(p, dir, label, preload, argv, NULL, NULL);
}

void t_prog_startv_io(struct t_prog *p, const char *dir, const char *label, bool preload,
		      char *const argv[], const char *in_path, const char *out_path)
{
	char *args[T_PROG_MAX_ARGS + 2];
	int out, err, i = 0;

	memset(p, 0, sizeof(*p));
	snprintf(p->label, sizeof(p->label), "%s", label);
	if (out_path)
		snprintf(p->out_path, sizeof(p->out_path), "%s", out_path);
	else
		snprintf(p->out_path, sizeof(p->out_path), "%s/%s.out.log", dir, label);
	p->raw_out = out_path != NULL;
	snprintf(p->err_path, sizeof(p->err_path), "%s/%s.err.log", dir, label);
	if (preload)
		args[i++] = (char *)IPCD_RUN_BIN;
	for (int k = 0; argv[k]; k++) {
		if (i == T_PROG_MAX_ARGS)
			fail_msg("%s: too many arguments", label);
		args[i++] = argv[k];
	}
	args[i] = NULL;
	out = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	err = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0 || err < 0)
		fail_msg("%s: %s", p->out_path, strerror(errno));
	/* The child's own hang guard is far past any test's: the test's guards act first. */
	p->pid = t_fork(600);
	if (p->pid == 0) {
		int in = open(in_path ? in_path : "/dev/null", O_RDONLY);

		/* Its own process group: a hang guard kills what it spawned too. */
		setpgid(0, 0);
		if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(126);
		signal(SIGPIPE, SIG_DFL);
		execvp(args[0], args);
		dprintf(2, "exec %s: %s\n", args[0], strerror(errno));
		_exit(127);
	}
	close(out);
	close(err);
}

void t_prog_start(struct t_prog *p, const char *dir, const char *label, bool preload,
		  const char *args)
{
	char buf[1024], *argv[T_PROG_MAX_ARGS + 1], *save = NULL, *w;
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", args);
	argv[n++] = (char *)IPCD_ECHO_BIN;
	for (w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (n == T_PROG_MAX_ARGS)
			fail_msg("%s: too many arguments", label);
		argv[n++] = w;
	}
	argv[n] = NULL;
	t_prog_startv(p, dir, label, preload, argv);
}

char *t_file_read(const char *path)
{
	FILE *f = fopen(path, "re");
	size_t cap = 4096, len = 0, n;
	char *buf;

	buf = malloc(cap);
	if (!buf)
		fail_msg("out of memory");
	buf[0] = '\0';
	if (!f)
		return buf;
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len - 1 == 0) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				fail_msg("out of memory");
			buf = nb;
			cap *= 2;
		}
	}
	buf[len] = '\0';
	fclose(f);
	return buf;
}

const char *t_prog_read(struct t_prog *p)
{
	free(p->out);
	p->out = p->raw_out ? calloc(1, 1) : t_file_read(p->out_path);
	if (!p->out)
		fail_msg("out of memory");
	return p->out;
}

void t_prog_dump(const struct t_prog *p)
{
	char *o, *e = t_file_read(p->err_path);
	struct stat st;

	if (p->raw_out) {
		o = malloc(512);
		if (!o)
			fail_msg("out of memory");
		snprintf(o, 512, "(%s: %lld bytes, not shown)\n", p->out_path,
			 stat(p->out_path, &st) ? -1ll : (long long)st.st_size);
	} else {
		o = t_file_read(p->out_path);
	}

	fprintf(stderr, "---- %s (pid %d, exit %d) stdout ----\n%s---- %s stderr ----\n%s----\n",
		p->label, (int)p->pid, p->code, o, p->label, e);
	free(o);
	free(e);
}

void t_prog_free(struct t_prog *p)
{
	free(p->out);
	p->out = NULL;
}

int t_prog_wait(struct t_prog *p, int timeout_ms)
{
	if (p->pid > 0) {
		p->code = t_wait(p->pid, timeout_ms);
		p->pid = 0;
	}
	t_prog_read(p);
	return p->code;
}

void t_prog_expect(struct t_prog *p, int timeout_ms, int code)
{
	int got = t_prog_wait(p, timeout_ms);

	if (got != code) {
		t_prog_dump(p);
		if (got == -1)
			fail_msg("%s: still running after the %d ms hang guard (killed; "
				 "output above)", p->label, timeout_ms);
		fail_msg("%s: exit %d, expected %d (output above)", p->label, got, code);
	}
}

const char *t_prog_wait_output(struct t_prog *p, bool in_err, const char *needle, int timeout_ms)
{
	static char *last;
	uint64_t deadline = ipcd_deadline((int64_t)timeout_ms * T_NSEC_PER_MSEC);

	for (;;) {
		const char *hit;
		int code;

		free(last);
		last = t_file_read(in_err ? p->err_path : p->out_path);
		hit = strstr(last, needle);
		if (hit)
			return hit;
		code = t_try_wait(p->pid);
		if (code != T_STILL_RUNNING) {
			p->code = code;
			p->pid = 0;
			t_prog_dump(p);
			fail_msg("%s exited (%d) before printing \"%s\" (output above)", p->label,
				 code, needle);
		}
		if (ipcd_remaining(deadline) == 0) {
			t_prog_dump(p);
			fail_msg("%s: no \"%s\" within %d ms (output above)", p->label, needle,
				 timeout_ms);
		}
		t_sleep_ms(5);
	}
}

const char *t_find_line(const char *text, const char *needle, bool at_start)
{
	static char line[1024];
	size_t len = strlen(needle);
	const char *p = text;

	while (p && *p) {
		size_t n = strcspn(p, "\n");
		bool hit = at_start ? n >= len && !strncmp(p, needle, len)
				    : memmem(p, n, needle, len) != NULL;

		if (hit) {
			snprintf(line, sizeof(line), "%.*s", (int)n, p);
			return line;
		}
		p += n;
		if (*p)
			p++;
	}
	return NULL;
}

const char *t_prog_await_line(struct t_prog *p, const char *needle, bool at_start, int guard_ms,
			      char *why, size_t why_len)
{
	uint64_t deadline = ipcd_deadline((int64_t)guard_ms * T_NSEC_PER_MSEC);

	for (;;) {
		const char *l = t_find_line(t_prog_read(p), needle, at_start);
		int code;

		if (l)
			return l;
		code = p->pid > 0 ? t_try_wait(p->pid) : p->code;
		if (code != T_STILL_RUNNING) {
			if (p->pid > 0) {
				p->code = code;
				p->pid = 0;
			}
			/* What it printed before it exited. */
			l = t_find_line(t_prog_read(p), needle, at_start);
			if (l)
				return l;
			snprintf(why, why_len, "%s exited (code %d) without printing \"%s\"",
				 p->label, code, needle);
			return NULL;
		}
		if (ipcd_remaining(deadline) == 0) {
			snprintf(why, why_len, "%s printed no \"%s\" within the %d ms hang guard",
				 p->label, needle, guard_ms);
			return NULL;
		}
		t_sleep_ms(2);
	}
}

unsigned int t_echo_server(struct t_prog *p, const char *dir, const char *label, bool preload,
			   const char *args)
{
	char buf[1024], path[200];
	const char *hit;
	char *colon;
	unsigned int port;

	snprintf(path, sizeof(path), "%s/%s.port", dir, label);
	snprintf(buf, sizeof(buf), "server --port-file %s %s", path, args);
	t_prog_start(p, dir, label, preload, buf);
	hit = t_prog_wait_output(p, false, "server listening ", T_PROG_START_MS);
	t_file_wait(path, p, T_PROG_START_MS);
	snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(hit, "\n"), hit);
	colon = strrchr(buf, ':');
	if (!colon || sscanf(colon + 1, "%u", &port) != 1 || !port)
		fail_msg("%s: cannot read the port from \"%s\"", label, buf);
	return port;
}

void t_prog_alive(struct t_prog *p, const char *before)
{
	int code;

	if (!p || p->pid <= 0)
		return;
	code = t_try_wait(p->pid);
	if (code == T_STILL_RUNNING)
		return;
	p->code = code;
	p->pid = 0;
	t_prog_dump(p);
	fail_msg("%s exited (%d) before %s (output above)", p->label, code, before);
}

void t_file_wait(const char *path, struct t_prog *watch, int timeout_ms)
{
	uint64_t deadline = ipcd_deadline((int64_t)timeout_ms * T_NSEC_PER_MSEC);
	char before[300];

	snprintf(before, sizeof(before), "%s appeared", path);
	while (access(path, F_OK)) {
		t_prog_alive(watch, before);
		if (ipcd_remaining(deadline) == 0) {
			if (watch)
				t_prog_dump(watch);
			fail_msg("%s did not appear within %d ms", path, timeout_ms);
		}
		t_sleep_ms(2);
	}
}

void t_file_create(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	close(fd);
}

/* ---- parsing the programs' key=value lines ------------------------------------- */

static const char *kv_find(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text;

	while ((p = strstr(p, key))) {
		if ((p == text || p[-1] == ' ' || p[-1] == '\n') && p[klen] == '=')
			return p + klen + 1;
		p += klen;
	}
	return NULL;
}

bool t_kv_u64(const char *text, const char *key, bool hex, uint64_t *v)
{
	const char *p = text ? kv_find(text, key) : NULL;
	char *end;

	if (!p)
		return false;
	errno = 0;
	*v = strtoull(p, &end, hex ? 16 : 10);
	return end != p && !errno;
}

bool t_kv_word(const char *text, const char *key, char *buf, size_t len)
{
	const char *p = text ? kv_find(text, key) : NULL;
	size_t n;

	if (!p)
		return false;
	n = strcspn(p, " \n");
	if (n >= len)
		n = len - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return true;
}

const char *t_line(const char *text, const char *prefix)
{
	static char line[1024];
	size_t plen = strlen(prefix);
	const char *p = text;

	while (p && *p) {
		size_t n = strcspn(p, "\n");

		if (!strncmp(p, prefix, plen)) {
			if (n >= sizeof(line))
				n = sizeof(line) - 1;
			memcpy(line, p, n);
			line[n] = '\0';
			return line;
		}
		p += n;
		if (*p)
			p++;
	}
	return NULL;
}

void t_echo_match(struct t_prog *client, struct t_prog *server)
{
	char cl[1024], sl[1024], ch[40] = "", sh[40] = "";
	const char *l;
	uint64_t cb = 0, sb = 0;

	l = t_line(t_prog_read(client), "client ok");
	snprintf(cl, sizeof(cl), "%s", l ? l : "");
	l = t_line(t_prog_read(server), "server done");
	snprintf(sl, sizeof(sl), "%s", l ? l : "");
	if (!t_kv_u64(cl, "bytes", false, &cb) || !t_kv_u64(sl, "bytes", false, &sb) ||
	    !t_kv_word(cl, "hash", ch, sizeof(ch)) || !t_kv_word(sl, "hash", sh, sizeof(sh)) ||
	    cb != sb || strcmp(ch, sh)) {
		t_prog_dump(client);
		t_prog_dump(server);
		fail_msg("client and server disagree:\n  %s\n  %s", cl, sl);
	}
}

bool t_have_prog(const char *name)
{
	char *const argv[] = { (char *)"sh", (char *)"-c", (char *)"command -v \"$0\" >/dev/null",
			       (char *)name, NULL };

	t_run(&ctl, NULL, argv, NULL);
	return ctl.code == 0;
}

void t_progs_env(const struct t_mon *m)
{
	unsetenv("IPCD_QUIET");
	setenv("IPCD_SOCKET", m->sock, 1);
}

/* ---- what the monitor saw --------------------------------------------------- */

long long t_counter(const struct t_mon *m, const char *key)
{
	return t_ctl_num(m, "counters", key);
}

void t_ctr_read(const struct t_mon *m, struct t_ctr *c)
{
	long long v;

	if (t_ctl(m, &ctl, true, "counters") != 0)
		fail_msg("ipcdctl --json counters: exit %d: %s", ctl.code, ctl.err);
	if (!t_json_num(ctl.out, "created", &c->created) ||
	    !t_json_num(ctl.out, "accepted", &c->accepted))
		fail_msg("ipcdctl --json counters: no connections.created/accepted: %s", ctl.out);
	/* "fallbacks":{"total":N,...}: absent in an older monitor counts as 0 */
	c->fallbacks = t_json_num(ctl.out, "total", &v) ? v : 0;
}

static void show_ctl(const struct t_mon *m)
{
	if (t_ctl(m, &ctl, false, "counters") == 0)
		fprintf(stderr, "---- ipcdctl counters ----\n%s", ctl.out);
	if (t_ctl(m, &ctl, false, "connections") == 0)
		fprintf(stderr, "---- ipcdctl connections ----\n%s----\n", ctl.out);
}

void t_expect_accelerated(const struct t_mon *m, const struct t_ctr *before, long long n,
			  const char *what)
{
	struct t_ctr now;

	t_ctr_read(m, &now);
	fprintf(stderr, "%s: %lld accelerated connections created, %lld accepted, %lld fallbacks\n",
		what, now.created - before->created, now.accepted - before->accepted,
		now.fallbacks - before->fallbacks);
	if (now.created - before->created < n || now.accepted - before->accepted < n ||
	    now.fallbacks != before->fallbacks) {
		show_ctl(m);
		fail_msg("%s: NOT accelerated as expected: %lld connections created, %lld accepted "
			 "(expected >= %lld each), %lld fell back to the kernel (expected 0)",
			 what, now.created - before->created, now.accepted - before->accepted, n,
			 now.fallbacks - before->fallbacks);
	}
}

void t_expect_fallback(const struct t_mon *m, const struct t_ctr *before, long long n,
		       const char *reason_key, const char *what)
{
	struct t_ctr now;
	long long reason;
	unsigned int listed;

	t_ctr_read(m, &now);
	if (!t_json_num(ctl.out, reason_key, &reason)) {
		show_ctl(m);
		fail_msg("%s: ipcdctl --json counters has no fallback reason \"%s\"", what,
			 reason_key);
	}
	if (t_ctl(m, &ctl, true, "connections") != 0)
		fail_msg("ipcdctl --json connections: exit %d: %s", ctl.code, ctl.err);
	listed = t_count_str(ctl.out, "\"accelerated\":false");
	fprintf(stderr, "%s: %lld accelerated, %lld fallbacks (%s: %lld in total), %u listed\n",
		what, now.created - before->created, now.fallbacks - before->fallbacks, reason_key,
		reason, listed);
	if (now.created != before->created || now.fallbacks - before->fallbacks < n ||
	    reason < n || listed < (unsigned int)n || !strstr(ctl.out, "\"reason\":\"")) {
		show_ctl(m);
		fail_msg("%s: expected >= %lld connections on the kernel (reason %s) and none "
			 "accelerated: %lld accelerated, %lld fallbacks, %lld with that reason, "
			 "%u listed by ipcdctl connections", what, n, reason_key,
			 now.created - before->created, now.fallbacks - before->fallbacks, reason,
			 listed);
	}
}

void t_expect_live_bytes(const struct t_mon *m, unsigned int n, uint64_t min_bytes,
			 const char *what)
{
	unsigned int conns = 0, full = 0;
	const char *p;

	if (t_ctl(m, &ctl, true, "connections") != 0)
		fail_msg("ipcdctl --json connections: exit %d: %s", ctl.code, ctl.err);
	for (p = ctl.out; (p = strstr(p, "{\"id\":")); p++) {
		long long ab, ba;
		const char *end = strchr(p, '}');
		char entry[1024];
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len >= sizeof(entry))
			len = sizeof(entry) - 1;
		memcpy(entry, p, len);
		entry[len] = '\0';
		if (!strstr(entry, "\"accelerated\":true"))
			continue;
		conns++;
		if (t_json_num(entry, "a2b_bytes", &ab) && t_json_num(entry, "b2a_bytes", &ba) &&
		    (uint64_t)ab >= min_bytes && (uint64_t)ba >= min_bytes)
			full++;
	}
	fprintf(stderr, "%s: %u accelerated connections open, %u carried >= %" PRIu64
		" bytes each way\n", what, conns, full, min_bytes);
	if (conns < n || full < n) {
		fprintf(stderr, "---- ipcdctl --json connections ----\n%s----\n", ctl.out);
		fail_msg("%s: expected >= %u accelerated connections with >= %" PRIu64
			 " bytes each way on their rings; %u listed, %u with the bytes",
			 what, n, min_bytes, conns, full);
	}
}

/* ---- leaks ------------------------------------------------------------------- */

static void shm_snapshot(struct t_leaks *l)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;

	l->n_shm = 0;
	if (!d)
		return;
	while ((e = readdir(d)) && l->n_shm < T_SHM_MAX)
		if (e->d_name[0] != '.')
			snprintf(l->shm[l->n_shm++], sizeof(l->shm[0]), "%s", e->d_name);
	closedir(d);
}

void t_leaks_begin(struct t_leaks *l, const struct t_mon *m)
{
	shm_snapshot(l);
	l->mon_fds = m->pid > 0 ? t_mon_fd_baseline(m) : -1;
	l->mon_maps = m->pid > 0 ? t_mon_maps_count(m, "/memfd:") : -1;
}

void t_leaks_check(const struct t_leaks *l, const struct t_mon *m)
{
	static struct t_leaks now;
	unsigned int i, j;

	if (m->pid > 0) {
		long long procs = t_ctl_wait_num(m, "status", "processes", 0);
		long long active = t_ctl_wait_num(m, "status", "connections", 0);
		int fds = t_mon_wait_fds(m, l->mon_fds);
		int maps = t_mon_maps_count(m, "/memfd:");

		fprintf(stderr, "leaks: monitor fds %d (baseline %d), memfd mappings %d (baseline "
			"%d), %lld processes, %lld connections left\n", fds, l->mon_fds, maps,
			l->mon_maps, procs, active);
		if (procs || active || fds > l->mon_fds || maps > l->mon_maps) {
			show_ctl(m);
			fail_msg("left behind after the programs exited: %lld processes "
				 "registered, %lld connections, monitor fds %d (baseline %d), "
				 "memfd mappings %d (baseline %d)", procs, active, fds, l->mon_fds,
				 maps, l->mon_maps);
		}
	}
	/* Regions are memfds; others' programs on a shared machine may add entries. */
	shm_snapshot(&now);
	for (i = 0; i < now.n_shm; i++) {
		for (j = 0; j < l->n_shm && strcmp(now.shm[i], l->shm[j]); j++)
			;
		if (j < l->n_shm)
			continue;
		if (strcasestr(now.shm[i], "ipcd"))
			fail_msg("new /dev/shm entry left behind: %s", now.shm[i]);
		fprintf(stderr, "note: new /dev/shm entry (not ours?): %s\n", now.shm[i]);
	}
}

static struct t_leaks case_leaks;

void t_case_begin(struct t_state *s, struct t_ctr *c)
{
	t_mon_start(&s->mon);
	t_progs_env(&s->mon);
	t_leaks_begin(&case_leaks, &s->mon);
	t_ctr_read(&s->mon, c);
}

void t_case_finish(struct t_state *s)
{
	t_leaks_check(&case_leaks, &s->mon);
	T_PASSED(s);
}
