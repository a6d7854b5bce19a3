/* SPDX-License-Identifier: MIT */
/*
 * it_chaos.c - issue #8 item 2: 200 connections between preloaded processes
 * under SIGKILL, SIGSTOP/SIGCONT and monitor restarts.
 *
 * A real monitor (t_monitor.c), 8 servers and 40 clients of 5 connections
 * each (tests/chaos/ipcd-chaos, every one a process under ipcd-run): every
 * connection carries a checked random stream each way (chaos.h), over TCP
 * on 127.0.0.1 and over named AF_UNIX sockets, by every socket call and
 * wait style. For CHAOS_SECONDS (default 75) the driver, seeded (T_SEED,
 * printed), SIGKILLs random clients and starts new ones in their place,
 * SIGSTOPs others and SIGCONTs them after a random pause, and restarts the
 * monitor twice (once SIGKILL, once SIGTERM, in a random order, with a
 * random gap without any monitor; the queue mode may change). After a
 * restart every server listens again on new addresses (the old listeners
 * were the dead monitor's) until the new monitor has them (a server whose
 * library gave up registering cannot: relisten_all).
 *
 * Asserted at the end:
 *  - every byte any worker accepted was the stream's (each checks inline);
 *  - no hang: told to finish, every client and then every server exits on
 *    its own within the hang guard (a survivor still alive is dumped:
 *    /proc stacks and wchan, gdb backtraces, ipcdctl, then killed);
 *  - every connection of a surviving client ended cleanly at both ends with
 *    exactly the bytes the other end sent; a killed client's server saw EOF
 *    or ECONNRESET (EPIPE writing), never anything else, never a hang;
 *  - acceleration: before the first restart every connection is
 *    accelerated (the monitor counted no fallback; the fds say so), and in
 *    every monitor's lifetime every connection of a client started after
 *    the servers re-listened with it is accelerated, both ends alike;
 *  - no leak: each surviving worker closed all it opened, and what the
 *    preload still holds is within its documented caches (ipcd-chaos.c);
 *    the last monitor ends with no process, connection or lane, its fds and
 *    memfd mappings back to an idle monitor's, its anonymous memory not
 *    grown beyond CHAOS_RSS_SLACK_KB over its value under full load; no new
 *    /dev/shm entry of ours.
 *
 * Nothing asserts timing: every wait is a hang guard. Environment: T_SEED,
 * CHAOS_SECONDS, CHAOS_SERVERS, CHAOS_CLIENTS, CHAOS_CONNS, CHAOS_MAX_LEN
 * (the longest stream), CHAOS_STYLE=epoll|epollet|poll|threads (every
 * worker's; default: all four, mixed), CHAOS_RESTARTS=0|1|2 and CHAOS_RESTART_KIND=kill|term
 * (to isolate one kind of restart), CHAOS_AVOID_KNOWN=1 (step around the
 * monitor-restart bugs known when this test was written, to test the rest:
 * see freeze_clients), CHAOS_KEEP_DIR=PATH (a failed run's files are copied
 * there), CHAOS_EXPECT_REATTACH=1 (also require the clients
 * that lived through a restart to be accelerated again with the new monitor:
 * see must_accel). ThreadSanitizer builds skip (77).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ipcd/wait.h>

#include "chaos.h"
#include "t_monitor.h"

#ifndef IPCD_RUN_BIN
#error "IPCD_RUN_BIN must name ipcd-run"
#endif
#ifndef IPCD_CHAOS_BIN
#error "IPCD_CHAOS_BIN must name the chaos worker"
#endif

/* Sanitized workers are several times slower: the hang guards stretch. */
#ifdef IPCD_SANITIZED
#define SLOW			3
#else
#define SLOW			1
#endif
#define EXIT_GUARD_MS		(60000 * SLOW)	/* a told worker exits */
#define START_GUARD_MS		(30000 * SLOW)	/* servers listen, connections come up */
#define KILL_GUARD_MS		10000		/* a SIGKILLed worker is reaped */
#define RELISTEN_TRIES		4
#define MAX_PHASES		8
#define MAX_STOPPED_PCT		25		/* at most this share of clients stopped at once */
#define CHAOS_RSS_SLACK_KB	(8 << 10)	/* allocator slack the monitor's RssAnon may keep */

struct cfg {
	unsigned int seconds;
	unsigned int servers;
	unsigned int clients;
	unsigned int conns;
	unsigned long long max_len;
	unsigned int restarts;
	const char *restart_kind;
	bool avoid_known;
	bool expect_reattach;
	const char *style;	/* every worker's, if set */
};

static const char *const styles[] = { "epoll", "epollet", "poll", "threads" };

struct worker {
	pid_t pid;		/* 0 once reaped */
	unsigned int slot;
	bool server;
	const char *style;
	bool lanes;
	bool killed;		/* by the driver */
	bool stopped;		/* SIGSTOPped now */
	uint64_t cont_at;
	uint64_t t_spawn;
	uint64_t t_kill;
	int code;		/* once reaped */
	char err[200];		/* its stderr */
	char res[200];		/* its results */
};

/*
 * One monitor's lifetime. @t_ready: the servers listened again with it
 * (@srv_reg: those whose listeners it has); connections made from then on
 * may be required to be accelerated. @t_end: just before it was killed or
 * stopped.
 */
struct phase {
	uint32_t mode;
	const char *end_how;
	unsigned int gap_ms;	/* without a monitor before the next one */
	unsigned int relisten_signals;
	unsigned int servers_reg;	/* servers whose newest listeners it has */
	bool srv_reg[CHAOS_MAX_SLOTS];
	uint64_t t_up, t_ready, t_end;
	long long created, accepted, fallbacks, registered;
};

static struct cfg cfg;
static struct worker ws[CHAOS_MAX_SLOTS];
static unsigned int n_ws;
static struct phase ph[MAX_PHASES];
static unsigned int n_ph;
static struct chaos_slot *stats;
static struct t_rng rng;
static uint64_t seed;
static unsigned int kills, stops, restarts;
static struct t_out ctl;
static FILE *events;	/* D/events.txt: what the driver did, when (CLOCK_MONOTONIC ns) */

static uint64_t mono_ns(void);

static void event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void event(const char *fmt, ...)
{
	va_list ap;

	if (!events)
		return;
	fprintf(events, "%" PRIu64 " ", mono_ns());
	va_start(ap, fmt);
	vfprintf(events, fmt, ap);
	va_end(ap);
	fputc('\n', events);
	fflush(events);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned long env_num(const char *name, unsigned long def)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : def;
}

static uint64_t st(const struct worker *w, size_t off)
{
	return __atomic_load_n((uint64_t *)((char *)&stats[w->slot] + off), __ATOMIC_RELAXED);
}

#define ST(w, field)	st(w, offsetof(struct chaos_slot, field))

/* ---- files ----------------------------------------------------------------------------------- */

static char *file_read(const char *path, size_t *len)
{
	size_t cap = 1 << 16, n = 0, r;
	char *buf = malloc(cap);
	FILE *f = fopen(path, "re");

	if (!buf)
		fail_msg("out of memory");
	if (f) {
		while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
			n += r;
			if (cap - n - 1 == 0) {
				char *nb = realloc(buf, cap * 2);

				if (!nb)
					fail_msg("out of memory");
				buf = nb;
				cap *= 2;
			}
		}
		fclose(f);
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

/* The first @max_lines lines of @path (or of the lines containing @grep) to stderr. */
static void file_show(const char *path, const char *title, unsigned int max_lines,
		      const char *grep)
{
	char *text = file_read(path, NULL), *l = text;
	unsigned int n = 0;

	fprintf(stderr, "---- %s ----\n", title);
	while (*l && n < max_lines) {
		size_t len = strcspn(l, "\n");
		char save = l[len];

		l[len] = '\0';
		if (!grep || strstr(l, grep)) {
			fprintf(stderr, "%s\n", l);
			n++;
		}
		l[len] = save;
		l += len + (save ? 1 : 0);
	}
	if (*l)
		fprintf(stderr, "(more in %s)\n", path);
	fprintf(stderr, "---- end of %s ----\n", title);
	free(text);
}

/*
 * Run @argv with its stdout and stderr to @path, within @guard_ms (killed
 * past it). Returns its exit code (127: not found, -1: the guard). Big
 * outputs (ipcdctl connections, gdb) go to a file, not to t_run's buffer.
 */
static int run_to_file(char *const argv[], const char *path, int guard_ms)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	pid_t pid;

	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	pid = t_fork(guard_ms / 1000 + 30);
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		if (null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fd);
	return t_wait(pid, guard_ms);
}

static long proc_status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':')
			v = strtol(line + klen + 1, NULL, 10);
	fclose(f);
	return v;
}

/* ---- workers --------------------------------------------------------------------------------- */

static struct worker *spawn(const struct t_mon *m, bool server, const char *style, bool lanes)
{
	struct worker *w;
	char slot[16], seed_s[32], conns[16], servers[16], max_len[32], out[200];
	char *argv[24];
	int i = 0, fo, fe;

	if (n_ws == CHAOS_MAX_SLOTS)
		fail_msg("more than %d workers", CHAOS_MAX_SLOTS);
	w = &ws[n_ws];
	memset(w, 0, sizeof(*w));
	w->slot = n_ws++;
	w->server = server;
	w->style = style;
	w->lanes = lanes;
	snprintf(w->err, sizeof(w->err), "%s/worker-%u.err.log", m->dir, w->slot);
	snprintf(w->res, sizeof(w->res), "%s/worker-%u.res", m->dir, w->slot);
	snprintf(out, sizeof(out), "%s/worker-%u.out", m->dir, w->slot);
	snprintf(slot, sizeof(slot), "%u", w->slot);
	snprintf(seed_s, sizeof(seed_s), "0x%" PRIx64, seed);
	snprintf(conns, sizeof(conns), "%u", cfg.conns);
	snprintf(servers, sizeof(servers), "%u", cfg.servers);
	snprintf(max_len, sizeof(max_len), "%llu", cfg.max_len);
	argv[i++] = (char *)IPCD_RUN_BIN;
	argv[i++] = (char *)IPCD_CHAOS_BIN;
	argv[i++] = (char *)(server ? "server" : "client");
	argv[i++] = (char *)"--slot";
	argv[i++] = slot;
	argv[i++] = (char *)"--dir";
	argv[i++] = (char *)m->dir;
	argv[i++] = (char *)"--seed";
	argv[i++] = seed_s;
	argv[i++] = (char *)"--style";
	argv[i++] = (char *)style;
	if (!server) {
		argv[i++] = (char *)"--conns";
		argv[i++] = conns;
		argv[i++] = (char *)"--servers";
		argv[i++] = servers;
		argv[i++] = (char *)"--max-len";
		argv[i++] = max_len;
		if (cfg.avoid_known) {
			argv[i++] = (char *)"--unix-pct";	/* known bug 2 */
			argv[i++] = (char *)"0";
		}
	}
	argv[i] = NULL;
	fo = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	fe = open(w->err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fo < 0 || fe < 0)
		fail_msg("%s: %s", w->err, strerror(errno));
	/* The worker's own guard: far past the run, so that nothing outlives a stuck driver. */
	w->pid = t_fork(cfg.seconds + 900);
	if (w->pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		struct rlimit core;

		setpgid(0, 0);
		if (null < 0 || dup2(null, 0) < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
			_exit(126);
		/* A crash leaves its core in the run's directory (check_alive shows it). */
		if (getrlimit(RLIMIT_CORE, &core) == 0) {
			core.rlim_cur = core.rlim_max;
			setrlimit(RLIMIT_CORE, &core);
		}
		if (chdir(m->dir) < 0)
			_exit(126);
		if (lanes)
			unsetenv("IPCD_LANES");
		else
			setenv("IPCD_LANES", "0", 1);
		execv(IPCD_RUN_BIN, argv);
		dprintf(2, "exec %s: %s\n", IPCD_RUN_BIN, strerror(errno));
		_exit(127);
	}
	close(fo);
	close(fe);
	w->t_spawn = mono_ns();
	event("spawn %s %u pid %d style %s lanes %d", server ? "server" : "client", w->slot,
	      (int)w->pid, style, lanes);
	return w;
}

static const char *wname(const struct worker *w)
{
	static char buf[4][64];
	static unsigned int k;
	char *b = buf[k++ % 4];

	snprintf(b, sizeof(buf[0]), "%s %u (%s%s, pid %d)", w->server ? "server" : "client",
		 w->slot, w->style, w->server ? "" : w->lanes ? ", lanes" : ", no lanes",
		 (int)w->pid);
	return b;
}

static void state_path(const struct t_mon *m, const struct worker *w, char *buf, size_t len)
{
	snprintf(buf, len, "%s/worker-%u.state", m->dir, w->slot);
}

/*
 * Ask every live worker for its table of open connections (SIGQUIT: a
 * thread of its own answers, whatever the others are stuck in) and wait,
 * bounded, for the files.
 */
static void state_request(const struct t_mon *m)
{
	uint64_t deadline = ipcd_deadline(5 * T_NSEC_PER_SEC);
	char path[256];
	unsigned int i, missing;

	for (i = 0; i < n_ws; i++) {
		if (!ws[i].pid)
			continue;
		state_path(m, &ws[i], path, sizeof(path));
		unlink(path);
		kill(ws[i].pid, SIGQUIT);
	}
	do {
		t_sleep_ms(20);
		missing = 0;
		for (i = 0; i < n_ws; i++) {
			state_path(m, &ws[i], path, sizeof(path));
			missing += ws[i].pid && access(path, F_OK) != 0;
		}
	} while (missing && ipcd_remaining(deadline) != 0);
}

/* Everything we know about a worker that is stuck: its threads' kernel stacks, gdb, ipcdctl. */
static void dump_hung(const struct t_mon *m, const struct worker *w)
{
	char path[300], pid_s[16], line[400];
	struct dirent *e;
	DIR *d;

	fprintf(stderr, "==== HANG: %s did not exit; its state follows ====\n", wname(w));
	snprintf(path, sizeof(path), "/proc/%d/status", (int)w->pid);
	file_show(path, "status", 60, NULL);
	snprintf(path, sizeof(path), "/proc/%d/task", (int)w->pid);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		char p2[600], comm[64] = "", wchan[64] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p2, sizeof(p2), "%s/%s/comm", path, e->d_name);
		if ((f = fopen(p2, "re"))) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(f);
		}
		snprintf(p2, sizeof(p2), "%s/%s/wchan", path, e->d_name);
		if ((f = fopen(p2, "re"))) {
			if (!fgets(wchan, sizeof(wchan), f))
				wchan[0] = '\0';
			fclose(f);
		}
		fprintf(stderr, "task %s (%s) wchan %s; kernel stack:\n", e->d_name, comm, wchan);
		snprintf(p2, sizeof(p2), "%s/%s/stack", path, e->d_name);
		if ((f = fopen(p2, "re"))) {
			while (fgets(line, sizeof(line), f))
				fprintf(stderr, "    %s", line);
			fclose(f);
		}
	}
	if (d)
		closedir(d);
	snprintf(pid_s, sizeof(pid_s), "%d", (int)w->pid);
	snprintf(path, sizeof(path), "%s/gdb-%u.txt", m->dir, w->slot);
	{
		char *const argv[] = { (char *)"gdb", (char *)"-p", pid_s, (char *)"-batch",
				       (char *)"-nx", (char *)"-ex", (char *)"thread apply all bt",
				       NULL };

		if (run_to_file(argv, path, 60000) != 127)
			file_show(path, "gdb: thread apply all bt", 600, NULL);
	}
	file_show(w->err, "its stderr", 200, NULL);
	state_path(m, w, path, sizeof(path));
	file_show(path, "its open connections (its own view)", 100, NULL);
	if (!w->server) {
		char needle[32];
		unsigned int i;

		/* The other ends: the servers' views of this client's connections. */
		snprintf(needle, sizeof(needle), " peer=%u ", w->slot);
		for (i = 0; i < cfg.servers; i++) {
			char title[80];

			state_path(m, &ws[i], path, sizeof(path));
			snprintf(title, sizeof(title), "server %u: its connections of this client",
				 i);
			file_show(path, title, 40, needle);
			snprintf(title, sizeof(title), "server %u: its connections without a hello",
				 i);
			file_show(path, title, 40, " peer=-1 ");
		}
	}
	if (m->pid > 0) {
		char *const argv[] = { (char *)IPCDCTL_BIN, (char *)"-s", (char *)m->sock,
				       (char *)"processes", NULL };
		char *const argv2[] = { (char *)IPCDCTL_BIN, (char *)"-s", (char *)m->sock,
					(char *)"connections", NULL };

		snprintf(path, sizeof(path), "%s/ctl-processes.txt", m->dir);
		run_to_file(argv, path, 30000);
		file_show(path, "ipcdctl processes", 200, NULL);
		snprintf(path, sizeof(path), "%s/ctl-connections.txt", m->dir);
		run_to_file(argv2, path, 30000);
		file_show(path, "ipcdctl connections (lines naming the pid)", 300, pid_s);
	}
	fprintf(stderr, "==== end of the state of %s ====\n", wname(w));
}

static const struct t_mon *the_mon;

/* A worker died of a signal: the backtraces of its core, if the kernel wrote one. */
static void show_core(const struct worker *w)
{
	char core[256], out[256];
	char *const argv[] = { (char *)"gdb", (char *)"-batch", (char *)"-nx", (char *)"-ex",
			       (char *)"thread apply all bt", (char *)IPCD_CHAOS_BIN, core, NULL };

	if (w->code <= 128 || w->code == 128 + SIGKILL || !the_mon)
		return;
	snprintf(core, sizeof(core), "%s/core", the_mon->dir);
	snprintf(out, sizeof(out), "%s/core-%u.txt", the_mon->dir, w->slot);
	if (access(core, R_OK) == 0 && run_to_file(argv, out, 60000) != 127)
		file_show(out, "gdb: the core's backtraces", 400, NULL);
}

/* A worker the driver did not kill exited: fail with what it said. */
static void check_alive(struct worker *w)
{
	int code;

	if (!w->pid || w->killed)
		return;
	code = t_try_wait(w->pid);
	if (code == T_STILL_RUNNING)
		return;
	w->code = code;
	file_show(w->err, wname(w), 200, NULL);
	show_core(w);
	w->pid = 0;
	fail_msg("%s exited with %d in the middle of the run (its stderr above)", wname(w), code);
}

static void check_all_alive(void)
{
	unsigned int i;

	for (i = 0; i < n_ws; i++) {
		check_alive(&ws[i]);
		if (ws[i].pid && !ws[i].killed && ST(&ws[i], errors)) {
			file_show(ws[i].err, wname(&ws[i]), 200, NULL);
			fail_msg("%s reports %" PRIu64 " failures (its stderr above)",
				 wname(&ws[i]), ST(&ws[i], errors));
		}
	}
}

static const char *pick_style(unsigned int k)
{
	return cfg.style ? cfg.style : styles[k % 4];
}

static struct worker *spawn_client(const struct t_mon *m)
{
	const char *style = pick_style(t_rng_below(&rng, cfg.avoid_known ? 3 : 4));

	return spawn(m, false, style, t_rng_below(&rng, 2));
}

/* ---- monitor phases -------------------------------------------------------------------------- */

static void phase_counters(const struct t_mon *m, struct phase *p)
{
	if (t_ctl(m, &ctl, true, "counters") != 0)
		fail_msg("ipcdctl --json counters: exit %d: %s", ctl.code, ctl.err);
	if (!t_json_num(ctl.out, "created", &p->created) ||
	    !t_json_num(ctl.out, "accepted", &p->accepted) ||
	    !t_json_num(ctl.out, "total", &p->fallbacks) ||
	    !t_json_num(ctl.out, "registered", &p->registered))
		fail_msg("ipcdctl --json counters: missing keys: %s", ctl.out);
	if (p->fallbacks) {
		const char *f = strstr(ctl.out, "\"by_reason\":");

		fprintf(stderr, "chaos: monitor %u: fallbacks %.*s\n", (unsigned int)(p - ph) + 1,
			f ? (int)strcspn(f, "}") + 1 : 0, f ? f : "");
	}
}

static void phase_start(struct t_mon *m)
{
	struct phase *p;

	if (n_ph == MAX_PHASES)
		fail_msg("too many monitor phases");
	p = &ph[n_ph++];
	memset(p, 0, sizeof(*p));
	/* A restart may change the queue mode: processes register anew either way. */
	p->mode = t_rng_below(&rng, 2) ? IPCD_QMODE_SHARED : IPCD_QMODE_PER_PROCESS;
	p->t_end = UINT64_MAX;
	m->mode = p->mode;
	t_mon_write_config(m, NULL);
	t_mon_start(m);
	p->t_up = mono_ns();
	event("monitor %u up: pid %d, %s mode", n_ph, (int)m->pid,
	      p->mode == IPCD_QMODE_SHARED ? "shared" : "per-process");
}

/*
 * True if the monitor lists a listening bind of @port owned by @pid. The
 * list holds every client's bound ends too (thousands, with lane kits):
 * through a file, not t_run's buffer.
 */
static bool listener_registered(const struct t_mon *m, unsigned int port, pid_t pid)
{
	char *const argv[] = { (char *)IPCDCTL_BIN, (char *)"-s", (char *)m->sock,
			       (char *)"--json", (char *)"listeners", NULL };
	char path[256], *text, *p;
	bool found = false;
	int code;

	snprintf(path, sizeof(path), "%s/ctl-listeners.json", m->dir);
	code = run_to_file(argv, path, 60000);
	if (code != 0)
		fail_msg("ipcdctl --json listeners: exit %d", code);
	text = file_read(path, NULL);
	for (p = text; !found && (p = strchr(p, '{')); p++) {
		char obj[512];
		size_t len = strcspn(p, "}");
		long long v_port, v_pid;

		if (len >= sizeof(obj))
			len = sizeof(obj) - 1;
		snprintf(obj, sizeof(obj), "%.*s", (int)len, p);
		found = t_json_num(obj, "port", &v_port) && t_json_num(obj, "pid", &v_pid) &&
			v_port == port && v_pid == pid && strstr(obj, "\"state\":\"listen\"");
	}
	free(text);
	return found;
}

static unsigned int port_of(const struct t_mon *m, const struct worker *w)
{
	char path[256], *text;
	unsigned int gen = 0, port = 0;

	snprintf(path, sizeof(path), "%s/server-%u.port", m->dir, w->slot);
	text = file_read(path, NULL);
	if (sscanf(text, "gen=%u tcp=%u", &gen, &port) != 2)
		fail_msg("%s: '%s'", path, text);
	free(text);
	return port;
}

/* Wait (bounded) until the server announced listener generation @gen. */
static void wait_listen_gen(struct worker *w, uint64_t gen)
{
	uint64_t deadline = ipcd_deadline((int64_t)START_GUARD_MS * T_NSEC_PER_MSEC);

	while (ST(w, listen_gen) < gen) {
		check_alive(w);
		if (ipcd_remaining(deadline) == 0)
			fail_msg("%s: no listeners of generation %" PRIu64 " within %d ms",
				 wname(w), gen, START_GUARD_MS);
		t_sleep_ms(5);
	}
}

/*
 * After a restart: every server listens again (its listeners belong to the
 * dead monitor). A process learns that its monitor died only when a call
 * to it fails, so the first new listener may still go to the kernel (that
 * listen() is the call that fails); the next one registers. Signal again
 * until the monitor lists the server's newest TCP listener. A server whose
 * first try at registering again came before the new monitor was up never
 * registers again (preload/state.c: ST_FAILED): it is noted, and only
 * CHAOS_EXPECT_REATTACH=1 makes it a failure.
 */
static void relisten_all(const struct t_mon *m, struct phase *p)
{
	unsigned int i, k;

	for (i = 0; i < cfg.servers; i++) {
		struct worker *w = &ws[i];

		for (k = 0; k < RELISTEN_TRIES; k++) {
			uint64_t gen = ST(w, listen_gen) + 1;

			kill(w->pid, SIGUSR2);
			p->relisten_signals++;
			wait_listen_gen(w, gen);
			if (listener_registered(m, port_of(m, w), w->pid)) {
				p->srv_reg[i] = true;
				p->servers_reg++;
				break;
			}
		}
		if (k == RELISTEN_TRIES) {
			fprintf(stderr, "chaos: %s: none of its %d new listeners is the new "
				"monitor's (it stays on the kernel)\n", wname(w), RELISTEN_TRIES);
			if (cfg.expect_reattach) {
				file_show(w->err, wname(w), 50, NULL);
				fail_msg("%s never registered with the new monitor "
					 "(CHAOS_EXPECT_REATTACH=1)", wname(w));
			}
		}
	}
	p->t_ready = mono_ns();
	event("monitor %u ready: %u of %u servers listen with it", n_ph, p->servers_reg,
	      cfg.servers);
}

/*
 * CHAOS_AVOID_KNOWN=1 steps around the bugs this test found in monitor
 * restarts (open when it was written, all fixed since: life sockets, the
 * SIGTERM drain, docs/reliability.md "Monitor restarts"), to compare with
 * the runs of that time:
 *  1. a connection the monitor made (connect() returned) but nobody accepted
 *     yet is lost with the monitor, its connector waits forever: the clients
 *     are frozen around a restart while the servers take what is queued;
 *  2. an AF_UNIX connection registered with one monitor and claimed with
 *     none or another is split (the connector's ring, the acceptor's kernel
 *     socket): no AF_UNIX connections;
 *  3. a connection made with a monitor since gone gets no EOF or reset when
 *     its peer dies: after a restart, only clients started since it are
 *     killed;
 *  4. a multi-threaded process that detaches from a dead monitor in one
 *     thread may crash in another's connect(): clients are single-threaded.
 */

/* SIGSTOP (@on) or SIGCONT every client the chaos did not stop. */
static void freeze_clients(bool on)
{
	unsigned int i;

	for (i = cfg.servers; i < n_ws; i++)
		if (ws[i].pid && !ws[i].stopped)
			kill(ws[i].pid, on ? SIGSTOP : SIGCONT);
}

static void restart_monitor(struct t_mon *m, bool hard)
{
	struct phase *p = &ph[n_ph - 1];

	if (cfg.avoid_known) {
		/*
		 * Known bug 1 (above): frozen clients start no connection, and
		 * the servers take what is queued meanwhile (most likely: this
		 * waits, it cannot know).
		 */
		freeze_clients(true);
		t_sleep_ms(500);
	}

	phase_counters(m, p);
	p->end_how = hard ? "SIGKILL" : "SIGTERM";

	p->gap_ms = t_rng_below(&rng, 500);
	fprintf(stderr, "chaos: %s the monitor (pid %d, %s mode): %lld connections made, %lld "
		"accepted, %lld fallbacks; then %u ms without a monitor\n", p->end_how,
		(int)m->pid, m->mode == IPCD_QMODE_SHARED ? "shared" : "per-process", p->created,
		p->accepted, p->fallbacks, p->gap_ms);
	p->t_end = mono_ns();	/* connects answered before this were answered by it */
	event("monitor %u end: %s, then %u ms without a monitor", n_ph, p->end_how, p->gap_ms);
	if (hard)
		t_mon_kill(m);
	else
		t_mon_stop(m);	/* exit 0, socket removed */
	t_sleep_ms(p->gap_ms);
	phase_start(m);
	relisten_all(m, &ph[n_ph - 1]);
	if (cfg.avoid_known)
		freeze_clients(false);
	restarts++;
	fprintf(stderr, "chaos: monitor %u up (pid %d, %s mode); after %u signals to listen "
		"again, %u of %u servers have listeners with it\n", n_ph, (int)m->pid,
		m->mode == IPCD_QMODE_SHARED ? "shared" : "per-process",
		ph[n_ph - 1].relisten_signals, ph[n_ph - 1].servers_reg, cfg.servers);
}

/* ---- chaos actions --------------------------------------------------------------------------- */

static struct worker *pick_client(bool running_only, bool to_kill)
{
	uint64_t since = ph[n_ph - 1].t_up;
	unsigned int cand[CHAOS_MAX_SLOTS], n = 0, i;

	for (i = cfg.servers; i < n_ws; i++)
		if (ws[i].pid && !ws[i].killed && (!running_only || !ws[i].stopped) &&
		    (!to_kill || !cfg.avoid_known || n_ph == 1 || ws[i].t_spawn >= since))
			cand[n++] = i;
	return n ? &ws[cand[t_rng_below(&rng, n)]] : NULL;
}

static void kill_client(const struct t_mon *m)
{
	struct worker *w = pick_client(false, true);
	int code;

	if (!w)
		return;
	check_alive(w);
	w->t_kill = mono_ns();
	w->killed = true;
	event("SIGKILL client %u pid %d%s", w->slot, (int)w->pid, w->stopped ? " (stopped)" : "");
	kill(w->pid, SIGKILL);
	code = t_wait(w->pid, KILL_GUARD_MS);
	if (code != 128 + SIGKILL) {
		w->code = code;
		file_show(w->err, wname(w), 200, NULL);
		show_core(w);
		fail_msg("%s: SIGKILL -> status %d (it had ended on its own)", wname(w), code);
	}
	w->code = code;
	w->pid = 0;
	w->stopped = false;
	kills++;
	spawn_client(m);
}

static void stop_client(void)
{
	struct worker *w = pick_client(true, false);
	unsigned int stopped = 0, clients = 0, i;

	for (i = cfg.servers; i < n_ws; i++) {
		if (ws[i].pid && !ws[i].killed) {
			clients++;
			stopped += ws[i].stopped;
		}
	}
	if (!w || (stopped + 1) * 100 > clients * MAX_STOPPED_PCT)
		return;
	kill(w->pid, SIGSTOP);
	event("SIGSTOP client %u pid %d", w->slot, (int)w->pid);
	w->stopped = true;
	w->cont_at = mono_ns() + (50 + t_rng_below(&rng, 2950)) * 1000000ull;
	stops++;
}

static void cont_due(bool all)
{
	uint64_t now = mono_ns();
	unsigned int i;

	for (i = cfg.servers; i < n_ws; i++) {
		if (ws[i].pid && ws[i].stopped && (all || now >= ws[i].cont_at)) {
			kill(ws[i].pid, SIGCONT);
			event("SIGCONT client %u pid %d", ws[i].slot, (int)ws[i].pid);
			ws[i].stopped = false;
		}
	}
}

static void progress(uint64_t t0)
{
	uint64_t rx = 0, done = 0, accel = 0, kern = 0;
	unsigned int i, alive = 0, stopped = 0;

	for (i = 0; i < n_ws; i++) {
		rx += ST(&ws[i], rx_bytes);
		done += ST(&ws[i], conns_done);
		if (!ws[i].server) {
			accel += ST(&ws[i], conns_accel);
			kern += ST(&ws[i], conns_kernel);
		}
		if (ws[i].pid && !ws[i].server) {
			alive++;
			stopped += ws[i].stopped;
		}
	}
	fprintf(stderr, "chaos: t=%3" PRIu64 " s  %u clients (%u stopped)  %u kills  %u stops  %u "
		"restarts  %" PRIu64 " MiB verified  %" PRIu64 " connection ends  clients' "
		"connections: %" PRIu64 " accelerated, %" PRIu64 " kernel\n",
		(uint64_t)((mono_ns() - t0) / 1000000000ull), alive, stopped, kills, stops,
		restarts, rx >> 20, done, accel, kern);
}

/* ---- the end: survivors finish on their own -------------------------------------------------- */

/* Wait for every live worker of @servers' kind; dump and kill the ones that hang. */
static unsigned int reap_told(const struct t_mon *m, bool servers)
{
	uint64_t deadline = ipcd_deadline((int64_t)EXIT_GUARD_MS * T_NSEC_PER_MSEC);
	unsigned int i, left, hung = 0;

	do {
		left = 0;
		for (i = 0; i < n_ws; i++) {
			struct worker *w = &ws[i];
			int code;

			if (!w->pid || w->server != servers)
				continue;
			code = t_try_wait(w->pid);
			if (code == T_STILL_RUNNING) {
				left++;
				continue;
			}
			w->code = code;
			w->pid = 0;
			if (code != 0) {
				file_show(w->err, wname(w), 200, NULL);
				show_core(w);
			}
		}
		if (left)
			t_sleep_ms(10);
	} while (left && ipcd_remaining(deadline) != 0);
	if (left)
		state_request(m);
	for (i = 0; left && i < n_ws; i++) {
		struct worker *w = &ws[i];

		if (!w->pid || w->server != servers)
			continue;
		dump_hung(m, w);
		hung++;
	}
	for (i = 0; left && i < n_ws; i++) {
		struct worker *w = &ws[i];

		if (!w->pid || w->server != servers)
			continue;
		w->code = t_kill_group_wait(w->pid);
		w->pid = 0;
	}
	return hung;
}

static void finish_all(const struct t_mon *m)
{
	unsigned int i, hung, failed = 0;

	cont_due(true);
	for (i = 0; i < n_ws; i++)
		if (ws[i].pid)
			kill(ws[i].pid, SIGUSR1);
	hung = reap_told(m, false);
	if (hung)
		fail_msg("%u clients did not finish within %d ms of SIGUSR1 (state above)", hung,
			 EXIT_GUARD_MS);
	for (i = 0; i < cfg.servers; i++)
		if (ws[i].pid)
			kill(ws[i].pid, SIGTERM);
	hung = reap_told(m, true);
	if (hung)
		fail_msg("%u servers did not finish within %d ms of SIGTERM, with every client "
			 "gone (state above)", hung, EXIT_GUARD_MS);
	for (i = 0; i < n_ws; i++)
		if (!ws[i].killed && ws[i].code != 0)
			failed++;
	if (failed)
		fail_msg("%u workers exited with failures (their stderr above)", failed);
}

/* ---- results --------------------------------------------------------------------------------- */

/* One connection as its server saw it. */
struct srec {
	int cli;		/* -1: the hello never came */
	uint64_t serial;
	unsigned int srv;
	char tr;
	int accel;
	uint64_t rx, tx;
	char rxend[24], txend[24];
	bool matched;
};

static int srec_cmp(const void *a, const void *b)
{
	const struct srec *x = a, *y = b;

	if (x->cli != y->cli)
		return x->cli < y->cli ? -1 : 1;
	return x->serial < y->serial ? -1 : x->serial > y->serial;
}

struct totals {
	uint64_t conns, pairs, killed_eof, killed_reset, killed_tx_reset, no_hello;
	uint64_t bytes_checked, accel_pairs, kernel_pairs, tcp, afunix, moved;
	uint64_t must_accel, were_accel;
	uint64_t ph_conns[MAX_PHASES], ph_accel[MAX_PHASES];	/* survivors', by connect time */
	uint64_t lib_fds_max_srv, lib_fds_max_cli, maps_max;
};

static bool kv_u64(const char *line, const char *key, uint64_t *v)
{
	char pat[40];
	const char *p;

	snprintf(pat, sizeof(pat), " %s=", key);
	p = strstr(line, pat);
	if (!p)
		return false;
	*v = strtoull(p + strlen(pat), NULL, 0);
	return true;
}

static struct srec *load_servers(size_t *n_out, struct totals *t)
{
	size_t n = 0, cap = 1 << 14;
	struct srec *v = malloc(cap * sizeof(*v));
	unsigned int i;

	if (!v)
		fail_msg("out of memory");
	for (i = 0; i < cfg.servers; i++) {
		char *text = file_read(ws[i].res, NULL), *l, *save = NULL;
		bool done = false;

		for (l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			struct srec r = { .srv = i };
			unsigned int pid, hello, bad;

			if (!strncmp(l, "done ", 5)) {
				uint64_t lib = 0, maps = 0;

				done = kv_u64(l, "lib_fds", &lib) && kv_u64(l, "memfd_maps", &maps);
				if (lib > t->lib_fds_max_srv)
					t->lib_fds_max_srv = lib;
				if (maps > t->maps_max)
					t->maps_max = maps;
				continue;
			}
			if (sscanf(l, "s cli=%d serial=%" SCNu64 " pid=%u tr=%c accel=%d hello=%u "
				   "rx=%" SCNu64 " rxend=%23s tx=%" SCNu64 " txend=%23s bad=%u",
				   &r.cli, &r.serial, &pid, &r.tr, &r.accel, &hello, &r.rx, r.rxend,
				   &r.tx, r.txend, &bad) != 11)
				fail_msg("%s: bad line '%s'", ws[i].res, l);
			if (n == cap) {
				struct srec *nv = realloc(v, 2 * cap * sizeof(*v));

				if (!nv)
					fail_msg("out of memory");
				v = nv;
				cap *= 2;
			}
			v[n++] = r;
		}
		if (!done)
			fail_msg("%s: no final line", ws[i].res);
		free(text);
	}
	qsort(v, n, sizeof(*v), srec_cmp);
	*n_out = n;
	return v;
}

/*
 * Which connections must be accelerated: those of a client started after
 * the servers listened again with the monitor of the moment, to a server
 * whose newest listeners that monitor has, whose connect returned before
 * that monitor was killed or stopped (it answered every request of that
 * client). A client that lived through
 * a restart is not required to be: a process attached to a dead monitor
 * learns of it only when a call fails (that connect goes to the kernel),
 * and one whose next try at registering came before the new monitor was up
 * stays on the kernel for good (preload/state.c ST_FAILED).
 * CHAOS_EXPECT_REATTACH=1 requires those to be accelerated again too, once
 * each of their connection lanes made one connection past the restart.
 */
static int must_accel(const struct worker *w, unsigned int srv, uint64_t tconn,
		      unsigned int *reattach_seen)
{
	unsigned int k;

	for (k = 0; k < n_ph; k++) {
		if (tconn < ph[k].t_ready || tconn >= ph[k].t_end || !ph[k].srv_reg[srv])
			continue;
		if (w->t_spawn >= ph[k].t_ready)
			return (int)k;
		if (cfg.expect_reattach && ++reattach_seen[k] > cfg.conns)
			return (int)k;
	}
	return -1;
}

static void mismatch(const struct worker *w, const char *line, unsigned int srv,
		     const struct srec *r)
{
	fprintf(stderr, "MISMATCH: client %u: '%s'; its server %u saw: ", w->slot, line, srv);
	if (r)
		fprintf(stderr, "tr=%c accel=%d rx=%" PRIu64 " rxend=%s tx=%" PRIu64 " txend=%s\n",
			r->tr, r->accel, r->rx, r->rxend, r->tx, r->txend);
	else
		fprintf(stderr, "nothing\n");
}

static void not_accelerated(const struct worker *w, const char *line, unsigned int k,
			    uint64_t tconn)
{
	fprintf(stderr, "NOT ACCELERATED: client %u (started %.3f s after the servers listened "
		"with monitor %u), connected %.3f s after: '%s'\n", w->slot,
		((double)w->t_spawn - (double)ph[k].t_ready) / 1e9, k + 1,
		((double)tconn - (double)ph[k].t_ready) / 1e9, line);
}

static void check_results(struct totals *t)
{
	size_t n_s, i;
	struct srec *s = load_servers(&n_s, t);
	unsigned int bad = 0, accel_bad = 0;

	t->conns = n_s;
	for (i = cfg.servers; i < n_ws; i++) {
		const struct worker *w = &ws[i];
		unsigned int reattach_seen[MAX_PHASES] = { 0 };
		char *text, *l, *save = NULL;
		bool done = false;

		if (w->killed)
			continue;	/* its results died with it; its servers' are below */
		text = file_read(w->res, NULL);
		for (l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			struct srec key = { .cli = (int)w->slot }, *r;
			unsigned int srv, isbad;
			uint64_t tstart, tconn, tx, rx;
			char tr, rxend[24], txend[24];
			int accel, moved, k;

			if (!strncmp(l, "done ", 5)) {
				uint64_t lib = 0, maps = 0;

				done = kv_u64(l, "lib_fds", &lib) && kv_u64(l, "memfd_maps", &maps);
				if (lib > t->lib_fds_max_cli)
					t->lib_fds_max_cli = lib;
				if (maps > t->maps_max)
					t->maps_max = maps;
				continue;
			}
			if (sscanf(l, "c srv=%u serial=%" SCNu64 " tr=%c accel=%d moved=%d tstart=%"
				   SCNu64 " tconn=%" SCNu64 " tx=%" SCNu64 " rx=%" SCNu64
				   " rxend=%23s txend=%23s bad=%u", &srv, &key.serial, &tr, &accel,
				   &moved, &tstart, &tconn, &tx, &rx, rxend, txend, &isbad) != 12)
				fail_msg("%s: bad line '%s'", w->res, l);
			r = bsearch(&key, s, n_s, sizeof(*s), srec_cmp);
			/*
			 * A connection moved to the kernel (its monitor died with it
			 * unaccepted) was accelerated at the client when made, and is
			 * a kernel one at the server.
			 */
			if (!r || r->matched || r->srv != srv || r->tr != tr || r->rx != tx ||
			    r->tx != rx || strcmp(r->rxend, "EOF") || strcmp(r->txend, "done") ||
			    strcmp(rxend, "EOF") || strcmp(txend, "done") || isbad ||
			    r->accel != (moved ? 0 : accel)) {
				if (bad++ < 20)
					mismatch(w, l, srv, r);
				if (r)
					r->matched = true;
				continue;
			}
			r->matched = true;
			t->pairs++;
			if (moved) {
				/*
				 * Only a connection made by a monitor that ended
				 * since: one alive at some time between the start of
				 * the connect() and its return.
				 */
				for (k = 0; k < (int)n_ph; k++)
					if (ph[k].t_up <= tconn && ph[k].t_end >= tstart &&
					    ph[k].t_end != UINT64_MAX)
						break;
				if (k == (int)n_ph && bad++ < 20)
					fprintf(stderr, "MOVED WITHOUT A RESTART: %s: '%s'\n", w->res,
						l);
				t->moved++;
			}
			for (k = 0; k < (int)n_ph; k++) {
				if (tconn >= ph[k].t_up && tconn < ph[k].t_end) {
					t->ph_conns[k]++;
					t->ph_accel[k] += accel == 1;
				}
			}
			t->bytes_checked += tx + rx;
			if (accel == 1)
				t->accel_pairs++;
			else
				t->kernel_pairs++;
			if (tr == 'u')
				t->afunix++;
			else
				t->tcp++;
			k = must_accel(w, srv, tconn, reattach_seen);
			if (k >= 0) {
				t->must_accel++;
				if (accel == 1)
					t->were_accel++;
				else if (accel_bad++ < 20)
					not_accelerated(w, l, (unsigned int)k, tconn);
			}
		}
		free(text);
		if (!done)
			fail_msg("%s: no final line", w->res);
	}
	for (i = 0; i < n_s; i++) {
		struct srec *r = &s[i];
		const struct worker *w = r->cli >= 0 && (unsigned int)r->cli < n_ws ?
					 &ws[r->cli] : NULL;

		if (r->cli < 0) {
			t->no_hello++;
			continue;
		}
		if (!w || w->server) {
			if (bad++ < 20)
				fprintf(stderr, "MISMATCH: server %u has a connection of slot %d, "
					"not a client\n", r->srv, r->cli);
			continue;
		}
		if (!w->killed) {
			if (!r->matched && bad++ < 20)
				fprintf(stderr, "MISMATCH: server %u has connection %d/%" PRIu64
					" that its (surviving) client never reported\n", r->srv,
					r->cli, r->serial);
			continue;
		}
		/* A killed client's peer: EOF or a reset, nothing else (ipcd-chaos checked). */
		if (!strcmp(r->rxend, "EOF"))
			t->killed_eof++;
		else if (!strcmp(r->rxend, "ECONNRESET"))
			t->killed_reset++;
		else if (bad++ < 20)
			fprintf(stderr, "MISMATCH: server %u, connection %d/%" PRIu64 " of a "
				"killed client ended with %s\n", r->srv, r->cli, r->serial,
				r->rxend);
		if (strcmp(r->txend, "done"))
			t->killed_tx_reset++;
	}
	free(s);
	if (bad)
		fail_msg("%u connections disagree between their two ends (first ones above)", bad);
	if (t->no_hello > (uint64_t)kills * cfg.conns)
		fail_msg("%" PRIu64 " connections ended before their hello, more than the %u "
			 "killed clients could have had in flight", t->no_hello, kills);
	if (accel_bad)
		fail_msg("%u connections went to the kernel that must have been accelerated "
			 "(first ones above; %" PRIu64 " required)", accel_bad, t->must_accel);
}

/* ---- leaks ----------------------------------------------------------------------------------- */

#define SHM_MAX		1024

static unsigned int shm_list(char (*names)[256])
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	unsigned int n = 0;

	while (d && (e = readdir(d)) && n < SHM_MAX)
		if (e->d_name[0] != '.')
			snprintf(names[n++], 256, "%s", e->d_name);
	if (d)
		closedir(d);
	return n;
}

static void check_shm(char (*before)[256], unsigned int n_before)
{
	static char now[SHM_MAX][256];
	unsigned int n = shm_list(now), i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < n_before && strcmp(now[i], before[j]); j++)
			;
		if (j < n_before)
			continue;
		if (strcasestr(now[i], "ipcd"))
			fail_msg("new /dev/shm entry left behind: %s", now[i]);
		fprintf(stderr, "note: new /dev/shm entry (another test's?): %s\n", now[i]);
	}
}

/*
 * The last monitor after every worker exited: what it still holds, next to
 * an idle monitor of its queue mode, and its memory under load (@*_warm).
 */
struct mon_end {
	long long procs, conns, lanes;
	int fds, idle_fds, maps, idle_maps;
	long anon, anon_warm, rss, rss_warm;
};

static void report(const struct totals *t, const struct mon_end *e, unsigned int rounds)
{
	uint64_t rx = 0, tx = 0, done = 0;
	unsigned int w;

	for (w = 0; w < n_ws; w++) {
		rx += ST(&ws[w], rx_bytes);
		tx += ST(&ws[w], tx_bytes);
		done += ST(&ws[w], conns_done);
	}
	fprintf(stderr, "chaos: seed 0x%" PRIx64 ": %u workers (%u servers, %u clients, %u of "
		"them SIGKILLed and replaced), %u SIGSTOP/SIGCONT, %u monitor restarts, %u "
		"rounds\n", seed, n_ws, cfg.servers, n_ws - cfg.servers, kills, stops, restarts,
		rounds);
	fprintf(stderr, "chaos: %" PRIu64 " MiB received and verified byte by byte (%" PRIu64
		" MiB sent) over %" PRIu64 " connection ends; servers saw %" PRIu64
		" connections\n", rx >> 20, tx >> 20, done, t->conns);
	fprintf(stderr, "chaos: %" PRIu64 " connections of surviving clients agree at both "
		"ends (%" PRIu64 " MiB; %" PRIu64 " TCP, %" PRIu64 " AF_UNIX; %" PRIu64
		" accelerated, %" PRIu64 " kernel); %" PRIu64 " had to be accelerated, %" PRIu64
		" were; %" PRIu64 " moved to the kernel when their monitor died before their "
		"accept\n", t->pairs, t->bytes_checked >> 20, t->tcp, t->afunix, t->accel_pairs,
		t->kernel_pairs, t->must_accel, t->were_accel, t->moved);
	fprintf(stderr, "chaos: connections of the clients killed (their whole lives): the "
		"servers read %" PRIu64 " to EOF, %" PRIu64 " to ECONNRESET (%" PRIu64
		" writes ended EPIPE, ECONNRESET or ENOTCONN); %" PRIu64 " ended before "
		"the hello\n", t->killed_eof, t->killed_reset, t->killed_tx_reset, t->no_hello);
	for (w = 0; w < n_ph; w++)
		fprintf(stderr, "chaos: monitor %u (%s): %lld connections made, %lld accepted, "
			"%lld fallbacks, %lld registrations, %u/%u servers' listeners; surviving "
			"clients' connections in its time: %" PRIu64 " of %" PRIu64
			" accelerated; ended by %s\n", w + 1,
			ph[w].mode == IPCD_QMODE_SHARED ? "shared" : "per-process",
			ph[w].created, ph[w].accepted, ph[w].fallbacks, ph[w].registered,
			ph[w].servers_reg, cfg.servers, t->ph_accel[w], t->ph_conns[w],
			ph[w].end_how ? ph[w].end_how : "SIGTERM at the end");
	fprintf(stderr, "chaos: leaks: workers' preload fds at the end <= %" PRIu64
		" (servers), <= %" PRIu64 " (clients), memfd mappings <= %" PRIu64 "; the last "
		"monitor: %lld processes, %lld connections, %lld lanes left, fds %d (idle %d), "
		"memfd maps %d (idle %d), RssAnon %ld kB (%ld kB under load), VmRSS %ld kB (%ld "
		"kB under load)\n", t->lib_fds_max_srv, t->lib_fds_max_cli, t->maps_max,
		e->procs, e->conns, e->lanes, e->fds, e->idle_fds, e->maps, e->idle_maps, e->anon,
		e->anon_warm, e->rss, e->rss_warm);
}

/* ---- the test -------------------------------------------------------------------------------- */

static void stats_create(const struct t_mon *m)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", m->dir, CHAOS_STATS_FILE);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)CHAOS_STATS_SIZE) < 0)
		fail_msg("%s: %s", path, strerror(errno));
	stats = mmap(NULL, CHAOS_STATS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (stats == MAP_FAILED)
		fail_msg("mmap %s: %s", path, strerror(errno));
}

/* An idle monitor of @mode (no process ever registered): its fds and memfd mappings. */
static void idle_monitor(struct t_mon *m, uint32_t mode, int *fds, int *maps)
{
	m->mode = mode;
	t_mon_write_config(m, NULL);
	t_mon_start(m);
	*fds = t_mon_fd_baseline(m);
	*maps = t_mon_maps_count(m, "/memfd:");
	t_mon_stop(m);
}

static void test_chaos(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	static char shm_before[SHM_MAX][256];
	unsigned int n_shm, i, total_conns, rounds = 0;
	int idle_fds[2], idle_maps[2];
	struct mon_end e = { .anon_warm = -1, .rss_warm = -1 };
	uint64_t t0, t_stop, t_fin, restart_at[2], next_progress, t_warm_rss;
	bool restart_hard[2];
	struct totals t = { 0 };

	the_mon = m;
	seed = t_seed();
	t_rng_init(&rng, seed);
	cfg.seconds = (unsigned int)env_num("CHAOS_SECONDS", 75);
	cfg.servers = (unsigned int)env_num("CHAOS_SERVERS", 8);
	cfg.clients = (unsigned int)env_num("CHAOS_CLIENTS", 40);
	cfg.conns = (unsigned int)env_num("CHAOS_CONNS", 5);
	cfg.max_len = env_num("CHAOS_MAX_LEN", 8 << 20);
	cfg.expect_reattach = env_num("CHAOS_EXPECT_REATTACH", 0) != 0;
	cfg.restarts = (unsigned int)env_num("CHAOS_RESTARTS", 2);
	cfg.avoid_known = env_num("CHAOS_AVOID_KNOWN", 0) != 0;
	cfg.style = getenv("CHAOS_STYLE");
	for (i = 0; cfg.style && i < 4 && strcmp(cfg.style, styles[i]); i++)
		;
	if (cfg.style && i == 4)
		fail_msg("CHAOS_STYLE: epoll, epollet, poll or threads");
	cfg.restart_kind = getenv("CHAOS_RESTART_KIND");
	if (cfg.restarts > 2)
		fail_msg("CHAOS_RESTARTS: 0, 1 or 2");
	total_conns = cfg.clients * cfg.conns;
	if (cfg.servers < 1 || cfg.clients < 1 || cfg.servers + cfg.clients >= CHAOS_MAX_SLOTS / 2)
		fail_msg("CHAOS_SERVERS/CHAOS_CLIENTS out of range");
	fprintf(stderr, "chaos: seed 0x%" PRIx64 " (T_SEED=0x%" PRIx64 " replays the decisions), "
		"%u s, %u servers, %u clients x %u connections = %u, streams up to %llu bytes\n",
		seed, seed, cfg.seconds, cfg.servers, cfg.clients, cfg.conns, total_conns,
		cfg.max_len);

	unsetenv("IPCD_QUIET");
	setenv("IPCD_SOCKET", m->sock, 1);
	n_shm = shm_list(shm_before);
	stats_create(m);
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/events.txt", m->dir);
		events = fopen(path, "we");
	}

	/* What an idle monitor holds, in each queue mode (a restart may change it). */
	idle_monitor(m, IPCD_QMODE_PER_PROCESS, &idle_fds[0], &idle_maps[0]);
	idle_monitor(m, IPCD_QMODE_SHARED, &idle_fds[1], &idle_maps[1]);

	/* ---- monitor 1, the servers, the clients ---- */
	phase_start(m);
	for (i = 0; i < cfg.servers; i++)
		spawn(m, true, pick_style((unsigned int)(i + seed)), true);
	for (i = 0; i < cfg.servers; i++)
		wait_listen_gen(&ws[i], 1);
	ph[0].t_ready = mono_ns();
	for (i = 0; i < cfg.servers; i++)
		ph[0].srv_reg[i] = true;
	ph[0].servers_reg = cfg.servers;
	event("monitor 1 ready: every server listens");
	for (i = 0; i < cfg.clients; i++)
		spawn_client(m);
	{
		uint64_t deadline = ipcd_deadline((int64_t)START_GUARD_MS * T_NSEC_PER_MSEC);
		uint64_t up;

		do {
			check_all_alive();
			up = 0;
			for (i = cfg.servers; i < n_ws; i++)
				up += ST(&ws[i], conns_accel) + ST(&ws[i], conns_kernel);
			if (up >= total_conns)
				break;
			t_sleep_ms(10);
		} while (ipcd_remaining(deadline) != 0);
		if (up < total_conns)
			fail_msg("only %" PRIu64 " of the %u first connections came up within %d "
				 "ms", up, total_conns, START_GUARD_MS);
	}
	/* Warm: every first connection is up. With a monitor from the start, all accelerated. */
	{
		uint64_t kern = 0;

		phase_counters(m, &ph[0]);
		for (i = 0; i < n_ws; i++)
			kern += ST(&ws[i], conns_kernel);
		fprintf(stderr, "chaos: %u connections up: the monitor made %lld, %lld fallbacks; "
			"%" PRIu64 " ends on a kernel socket\n", total_conns, ph[0].created,
			ph[0].fallbacks, kern);
		if (ph[0].created < total_conns || ph[0].fallbacks || kern)
			fail_msg("with a monitor from the start, not every connection was "
				 "accelerated: %lld made by the monitor (want >= %u), %lld "
				 "fallbacks, %" PRIu64 " ends on kernel sockets", ph[0].created,
				 total_conns, ph[0].fallbacks, kern);
	}

	/* ---- chaos ---- */
	t0 = mono_ns();
	t_stop = t0 + cfg.seconds * 1000000000ull;
	/* One SIGKILL and one SIGTERM, in a random order (or as CHAOS_RESTART_KIND says). */
	restart_hard[0] = t_rng_below(&rng, 2);
	restart_hard[1] = !restart_hard[0];
	if (cfg.restart_kind && *cfg.restart_kind)
		restart_hard[0] = restart_hard[1] = !strcmp(cfg.restart_kind, "kill");
	restart_at[0] = t0 + (uint64_t)cfg.seconds * (300 + t_rng_below(&rng, 100)) * 1000000ull;
	restart_at[1] = t0 + (uint64_t)cfg.seconds * (600 + t_rng_below(&rng, 100)) * 1000000ull;
	if (cfg.restarts == 1)
		restart_at[0] = t0 + (uint64_t)cfg.seconds * 450 * 1000000ull;
	t_warm_rss = t0 + (uint64_t)cfg.seconds * 850 * 1000000ull;
	next_progress = t0;
	while (mono_ns() < t_stop) {
		uint64_t now = mono_ns();
		unsigned int dice = t_rng_below(&rng, 1000);

		check_all_alive();
		cont_due(false);
		if (restarts < cfg.restarts && now >= restart_at[restarts]) {
			restart_monitor(m, restart_hard[restarts]);
			continue;
		}
		if (restarts == cfg.restarts && e.anon_warm < 0 && now >= t_warm_rss) {
			/* The last monitor under full load: its memory then is the reference. */
			e.anon_warm = proc_status_kb(m->pid, "RssAnon");
			e.rss_warm = proc_status_kb(m->pid, "VmRSS");
		}
		if (now >= next_progress) {
			progress(t0);
			next_progress = now + 5000000000ull;
		}
		if (dice < 90)
			kill_client(m);
		else if (dice < 200)
			stop_client();
		rounds++;
		t_sleep_ms(20 + t_rng_below(&rng, 160));
	}
	progress(t0);
	phase_counters(m, &ph[n_ph - 1]);
	if (e.anon_warm < 0) {
		e.anon_warm = proc_status_kb(m->pid, "RssAnon");
		e.rss_warm = proc_status_kb(m->pid, "VmRSS");
	}

	/* ---- the end: everyone finishes on its own ---- */
	t_fin = mono_ns();
	event("SIGUSR1 to every worker: finish");
	finish_all(m);
	fprintf(stderr, "chaos: every survivor finished on its own in %.1f s\n",
		(double)(mono_ns() - t_fin) / 1e9);
	check_results(&t);

	/* ---- leaks: the last monitor with every process gone ---- */
	e.procs = t_ctl_wait_num(m, "status", "processes", 0);
	e.conns = t_ctl_wait_num(m, "status", "connections", 0);
	e.lanes = t_ctl_wait_num(m, "counters", "open", 0);
	e.idle_fds = idle_fds[m->mode == IPCD_QMODE_SHARED];
	e.idle_maps = idle_maps[m->mode == IPCD_QMODE_SHARED];
	e.fds = t_mon_wait_fds(m, e.idle_fds);
	e.maps = t_mon_maps_count(m, "/memfd:");
	e.anon = proc_status_kb(m->pid, "RssAnon");
	e.rss = proc_status_kb(m->pid, "VmRSS");
	report(&t, &e, rounds);
	if (e.procs || e.conns || e.lanes || e.fds > e.idle_fds || e.maps > e.idle_maps) {
		t_ctl(m, &ctl, false, "status");
		fprintf(stderr, "%s", ctl.out);
		fail_msg("the last monitor kept %lld processes, %lld connections, %lld lanes, %d "
			 "fds (idle: %d), %d memfd mappings (idle: %d) after every worker exited",
			 e.procs, e.conns, e.lanes, e.fds, e.idle_fds, e.maps, e.idle_maps);
	}
#ifndef IPCD_SANITIZED
	/*
	 * Under ASan the quarantine keeps what the monitor frees: there, its
	 * exit (t_mon_stop below wants status 0) is LeakSanitizer's check.
	 */
	if (e.anon < 0 || e.anon_warm < 0 || e.anon > e.anon_warm + CHAOS_RSS_SLACK_KB)
		fail_msg("the last monitor's anonymous memory grew from %ld kB under load to %ld "
			 "kB with nothing left (slack %d kB)", e.anon_warm, e.anon,
			 CHAOS_RSS_SLACK_KB);
#endif
	check_shm(shm_before, n_shm);
	if (t.must_accel == 0)
		fail_msg("no connection was checked for acceleration");
	/* Under the last monitor too (if a server could register with it: relisten_all). */
	if (ph[n_ph - 1].servers_reg && ph[n_ph - 1].created < total_conns)
		fail_msg("the last monitor made only %lld accelerated connections (want >= %u)",
			 ph[n_ph - 1].created, total_conns);
	t_mon_stop(m);
	T_PASSED(s);
}

/*
 * CHAOS_KEEP_DIR=PATH: a failed run's directory (every worker's results,
 * connection tables and logs, the monitors' logs) is copied there first.
 */
static int teardown(void **state)
{
	struct t_state *s = *state;
	const char *keep = getenv("CHAOS_KEEP_DIR");

	if (!s->passed && keep && *keep && s->mon.dir[0]) {
		char *const argv[] = { (char *)"cp", (char *)"-a", s->mon.dir, (char *)keep, NULL };

		mkdir(keep, 0755);
		t_mon_kill(&s->mon);
		fprintf(stderr, "chaos: the run's files: %s/%s (cp: %d)\n", keep,
			strrchr(s->mon.dir, '/') + 1, run_to_file(argv, "/dev/null", 60000));
	}
	return t_teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		{ "test_chaos", test_chaos, t_setup, teardown, &t_mode_pp },
	};

#if defined(IPCD_SANITIZED) && !defined(IPCD_ASAN_RUNTIME)
	fprintf(stderr, "it_chaos: skipped in ThreadSanitizer builds "
			"(ThreadSanitizer cannot be preloaded)\n");
	return T_EXIT_SKIP;
#endif
	return cmocka_run_group_tests(tests, NULL, NULL);
}
