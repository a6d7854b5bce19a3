/* SPDX-License-Identifier: MIT */
/* t_real.c - unmodified Debian programs as integration tests, on the kernel and preloaded. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcd/wait.h>

#include "t_real.h"

struct t_real_case t_real_kernel = { IPCD_QMODE_PER_PROCESS, false };
struct t_real_case t_real_preload = { IPCD_QMODE_PER_PROCESS, true };

static struct t_out out;

/* ---- fixtures ---------------------------------------------------------------- */

int t_real_setup(void **state)
{
	const struct t_real_case *c = *state;
	struct t_real *r = calloc(1, sizeof(*r));

	if (!r)
		return -1;
	t_mon_init(&r->t.mon, c->mode, NULL);
	r->preload = c->preload;
	r->what = c->preload ? "preload" : "kernel";
	*state = r;
	return 0;
}

/* Subdirectories the case made (nginx's www and temp paths): t_mon_cleanup() removes files only. */
static void rm_subdirs(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[384];

		if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		t_real_rm_tree(path);
	}
	closedir(d);
}

int t_real_teardown(void **state)
{
	struct t_real *r = *state;

	if (r->daemon > 0) {
		fprintf(stderr, "teardown: killing the daemon %d and its process group\n",
			(int)r->daemon);
		kill(-r->daemon, SIGKILL);
		kill(r->daemon, SIGKILL);
		t_wait(r->daemon, 10000);
		r->daemon = 0;
	}
	if (r->t.mon.dir[0])
		rm_subdirs(r->t.mon.dir);
	t_mon_cleanup(&r->t.mon, r->t.passed);
	/* Orphans reparented to us (PR_SET_CHILD_SUBREAPER) that exited. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	free(r);
	return 0;
}

void t_real_begin(struct t_real *r)
{
	static bool subreaper;

	/* A daemonizing server's daemon becomes our child: we can reap and bound it. */
	if (!subreaper) {
		if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
			fail_msg("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
		subreaper = true;
	}
	fprintf(stderr, "---- %s: servers and clients %s ----\n", r->what,
		r->preload ? "under ipcd-run" : "on the kernel (not preloaded)");
	t_case_begin(&r->t, &r->c0);
}

void t_real_finish(struct t_real *r, long long min_conns, const char *what)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s (%s)", what, r->what);
	if (r->preload) {
		t_expect_accelerated(&r->t.mon, &r->c0, min_conns, msg);
	} else {
		struct t_ctr now;

		t_ctr_read(&r->t.mon, &now);
		if (now.created != r->c0.created || now.accepted != r->c0.accepted ||
		    now.fallbacks != r->c0.fallbacks)
			fail_msg("%s: nothing was preloaded, yet the monitor counted %lld "
				 "accelerated connections created, %lld accepted, %lld fallbacks",
				 msg, now.created - r->c0.created, now.accepted - r->c0.accepted,
				 now.fallbacks - r->c0.fallbacks);
		fprintf(stderr, "%s: no connection seen by the monitor, as expected\n", msg);
	}
	t_case_finish(&r->t);
}

/* ---- programs ---------------------------------------------------------------- */

const char *t_real_find(const char *name)
{
	static const char *const dirs[] = { "/usr/sbin", "/usr/bin", "/sbin", "/bin" };
	static char found[16][256];
	static unsigned int next;
	char *path = found[next++ % 16];
	const char *env = getenv("PATH");

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, 256, "%s/%s", dirs[i], name);
		if (access(path, X_OK) == 0)
			return path;
	}
	if (env) {
		char buf[4096], *save = NULL, *d;

		snprintf(buf, sizeof(buf), "%s", env);
		for (d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
			snprintf(path, 256, "%s/%s", d, name);
			if (access(path, X_OK) == 0)
				return path;
		}
	}
	fail_msg("%s: not installed (not in /usr/sbin, /usr/bin, /sbin, /bin or PATH): run "
		 "scripts/setup.sh test", name);
	return NULL;
}

const char *t_real_run(struct t_real *r, struct t_prog *p, const char *label, char *const argv[],
		       const char *in_path, const char *out_path, int timeout_ms)
{
	t_prog_startv_io(p, r->t.mon.dir, label, r->preload, argv, in_path, out_path);
	t_prog_expect(p, timeout_ms, 0);
	return p->out;
}

/* ---- ports ------------------------------------------------------------------- */

unsigned int t_real_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &len))
		fail_msg("a free port: %s", strerror(errno));
	close(fd);
	return ntohs(a.sin_port);
}

/* 127.0.0.1:@port (or 0.0.0.0:@port) in state LISTEN in /proc/net/tcp. */
static bool kernel_listens(unsigned int port)
{
	FILE *f = fopen("/proc/net/tcp", "re");
	char line[512];
	bool found = false;

	if (!f)
		fail_msg("/proc/net/tcp: %s", strerror(errno));
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned int addr, lport, st;

		if (sscanf(line, " %*u: %8X:%4X %*8X:%*4X %2X", &addr, &lport, &st) == 3 &&
		    lport == port && st == 0x0A && (addr == 0x0100007F || addr == 0))
			found = true;
	}
	fclose(f);
	return found;
}

static bool monitor_listens(const struct t_mon *m, unsigned int port)
{
	char needle[64];

	if (t_ctl(m, &out, true, "listeners") != 0)
		fail_msg("ipcdctl --json listeners: exit %d: %s", out.code, out.err);
	snprintf(needle, sizeof(needle), "\"port\":%u,\"state\":\"listen\"", port);
	return strstr(out.out, needle) != NULL;
}

static void show_listeners(const struct t_mon *m)
{
	if (t_ctl(m, &out, false, "processes") == 0)
		fprintf(stderr, "---- ipcdctl processes ----\n%s", out.out);
	if (t_ctl(m, &out, false, "listeners") == 0)
		fprintf(stderr, "---- ipcdctl listeners ----\n%s----\n", out.out);
}

bool t_real_wait_listen(struct t_real *r, unsigned int port, struct t_prog *watch)
{
	uint64_t deadline = ipcd_deadline((int64_t)T_PROG_START_MS * T_NSEC_PER_MSEC);
	char before[64];

	snprintf(before, sizeof(before), "listening on port %u", port);
	while (!kernel_listens(port) || (r->preload && !monitor_listens(&r->t.mon, port))) {
		t_prog_alive(watch, before);
		if (ipcd_remaining(deadline) == 0) {
			if (watch)
				t_prog_dump(watch);
			if (!kernel_listens(port))
				fail_msg("nothing listens on 127.0.0.1:%u after %d ms", port,
					 T_PROG_START_MS);
			/* The case goes on: the programs must still work, and
			 * t_real_finish() reports the fallbacks. */
			show_listeners(&r->t.mon);
			fprintf(stderr, "WARNING: 127.0.0.1:%u listens in the kernel, but after "
				"%d ms the monitor lists no accelerated listener there (ipcdctl "
				"above): preloaded clients will fall back to the kernel\n", port,
				T_PROG_START_MS);
			return false;
		}
		t_sleep_ms(10);
	}
	return true;
}

/* ---- files -------------------------------------------------------------------- */

uint32_t t_real_make_file(const char *path, size_t size, uint32_t seed)
{
	static uint8_t buf[65536];
	uint32_t h = T_FNV_INIT;
	size_t pos = 0;
	FILE *f = fopen(path, "we");

	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	while (pos < size) {
		size_t n = size - pos < sizeof(buf) ? size - pos : sizeof(buf);

		t_pattern_fill(buf, n, seed, pos);
		h = t_fnv1a(h, buf, n);
		if (fwrite(buf, 1, n, f) != n)
			fail_msg("%s: %s", path, strerror(errno));
		pos += n;
	}
	if (fclose(f))
		fail_msg("%s: %s", path, strerror(errno));
	return h;
}

static uint8_t *read_all(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st))
		fail_msg("%s: %s", path, strerror(errno));
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		fail_msg("out of memory");
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0)
			fail_msg("%s: %s", path, n ? strerror(errno) : "shorter than its size");
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return buf;
}

void t_real_expect_same(const char *want, const char *got, const char *what)
{
	size_t wl, gl, i;
	uint8_t *w = read_all(want, &wl), *g = read_all(got, &gl);
	uint32_t wh = t_fnv1a(T_FNV_INIT, w, wl), gh = t_fnv1a(T_FNV_INIT, g, gl);

	for (i = 0; i < wl && i < gl && w[i] == g[i]; i++)
		;
	if (wl != gl || wh != gh || i != wl) {
		char detail[128] = "";

		if (i < wl && i < gl)
			snprintf(detail, sizeof(detail), "; first difference at byte %zu: 0x%02x, "
				 "expected 0x%02x", i, g[i], w[i]);
		free(w);
		free(g);
		fail_msg("%s: got %zu bytes (fnv1a 0x%08x) in %s, expected %zu bytes "
			 "(fnv1a 0x%08x) from %s%s", what, gl, gh, got, wl, wh, want, detail);
	}
	fprintf(stderr, "%s: %zu bytes, fnv1a 0x%08x: identical\n", what, gl, gh);
	free(w);
	free(g);
}

void t_real_sha1(const char *path, char *hex)
{
	char *const argv[] = { (char *)"sha1sum", (char *)path, NULL };

	t_run(&out, NULL, argv, NULL);
	if (out.code != 0 || strspn(out.out, "0123456789abcdef") != 40)
		fail_msg("sha1sum %s: exit %d: %s%s", path, out.code, out.out, out.err);
	memcpy(hex, out.out, 40);
	hex[40] = '\0';
}

void t_real_mkdir(const char *path)
{
	if (mkdir(path, 0755))
		fail_msg("mkdir %s: %s", path, strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void t_real_rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
