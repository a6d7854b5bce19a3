/* SPDX-License-Identifier: MIT */
/*
 * it_isolation.c - two unprivileged users against a real monitor (issue #8
 * item 3; label isolation).
 *
 * User A (uid/gid 61001) runs ipcd-iso-agent processes under ipcd-run that
 * hold accelerated TCP connections, pipes, socketpairs and named AF_UNIX
 * sockets. User B (uid/gid 61002) attacks them the way a real local
 * attacker would: the kernel's ways into another process's memory and fds,
 * files that look like ours, a registered raw client (ipcd_attach, no
 * preload) sending requests that name A's objects and forged doorbells,
 * binds of ports the config reserves for A, and connects to A's sockets
 * where the file permissions forbid them. Every case runs once per queue
 * mode (T_BOTH), each against its own monitor.
 *
 * Every check has a positive control that can make it fail: the same probe
 * run as root (or as another process of user A) must find A's secret bytes,
 * the same request from user A must work, the kernel without the preload is
 * the oracle for errnos. No timing is asserted; every wait has a hang guard.
 *
 * A check that fails because of an isolation hole in the product says
 * "ISOLATION HOLE" and names the case; README.md (this directory) lists the
 * holes found, how to reproduce each, where the code is and a suggested fix.
 *
 * Needs root (to become the two users): exits 77 otherwise. The users need
 * no passwd entries. The test runs in a network namespace of its own when it
 * may (ports and abstract names then collide with nothing else on the host).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <unistd.h>

#include <ipcd/atomic.h>
#include <ipcd/wait.h>

#include "t_monitor.h"

#ifndef IPCD_RUN_BIN
#error "IPCD_RUN_BIN must name ipcd-run"
#endif
#ifndef ISO_AGENT_BIN
#error "ISO_AGENT_BIN must name ipcd-iso-agent"
#endif

#define UID_A		61001u
#define UID_B		61002u
#define AGENT_ALARM_S	600	/* hang guard of an agent's whole life */
#define CHILD_ALARM_S	120	/* hang guard of one attacker child */
#define FD_SCAN		1024	/* fd numbers an attacker tries in another process */
/*
 * Ports: our own network namespace, where nothing else binds. The queue
 * modes use ranges of their own: a case's connections may linger in
 * TIME_WAIT after it, and the next mode binds the same ports without
 * SO_REUSEADDR.
 */
#define PORT_BASE	(42000 + (mode_shared ? 500 : 0))

static bool mode_shared;	/* the running case's queue mode */

/*
 * The programs the users run: the build's, or copies in a directory they
 * can reach when the build tree is not theirs to read (copy_programs()).
 * ipcd-run preloads the libipcd.so beside it.
 */
static char run_bin[PATH_MAX] = IPCD_RUN_BIN;
static char agent_bin[PATH_MAX] = ISO_AGENT_BIN;
static char copy_dir[64];

/* ---- results shared with the attacker children ----------------------------- */

#define PROBE_PIDS	4
#define PROBE_MAPS	16
#define REPORT_MAX	8192

/*
 * struct probe - one run of the kernel-level memory probe (probe_run()).
 * In: the processes, the mappings of their connection regions (read by root
 * from /proc: an attacker may know them, we assume it does), the secret.
 * Out: what opened, and how many ways showed the secret.
 */
struct probe {
	int n_pids;
	pid_t pids[PROBE_PIDS];
	unsigned int n_maps[PROBE_PIDS];
	uint64_t map_lo[PROBE_PIDS][PROBE_MAPS];
	uint64_t map_hi[PROBE_PIDS][PROBE_MAPS];
	char secret[48];
	char canary_name[96];		/* in /dev/shm: the directory scan must find it */
	char canary[48];

	unsigned int fd_opened, map_opened, mem_opened, vm_read, fd_taken, pidfd_opened;
	unsigned int files_opened;
	unsigned int hit_fd, hit_map, hit_mem, hit_vm, hit_getfd, hit_file;
	unsigned int hit_pid[PROBE_PIDS];	/* any way, per process */
	bool canary_seen;
	char first_hit[256];
};

/* What an attacker child found wrong (any line here fails the case) and what it learned. */
struct report {
	unsigned int violations;
	unsigned int discovered;	/* e.g. bind ids that answered -EPERM: they exist */
	unsigned int done;		/* progress flags for the parent */
	uint64_t word[8];		/* values handed between the parent and a child */
	size_t len;
	char text[REPORT_MAX];
};

static struct probe *pr;
static struct report *rp;

static void report_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report_add(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (rp->len + 2 >= sizeof(rp->text))
		return;
	va_start(ap, fmt);
	n = vsnprintf(rp->text + rp->len, sizeof(rp->text) - rp->len - 1, fmt, ap);
	va_end(ap);
	if (n > 0)
		rp->len = IPCD_MIN(rp->len + (size_t)n, sizeof(rp->text) - 2);
	rp->text[rp->len++] = '\n';
	rp->text[rp->len] = '\0';
}

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rp->violations++;
	report_add("%s", buf);
}

static void report_reset(void)
{
	memset(rp, 0, sizeof(*rp));
}

/* ---- identities ----------------------------------------------------------- */

/*
 * Become @uid (its gid is the same number), no supplementary groups: in a
 * child only. The parent-death signal is cleared by a change of
 * credentials: arm it again.
 */
static int become(uid_t uid)
{
	if (uid == 0)
		return 0;
	if (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
		return -errno;
	if (getuid() != uid || geteuid() != uid || getgid() != uid || getegid() != uid)
		return -EPERM;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	return 0;
}

/* In a child: become @uid or die saying why. */
static void child_become(uid_t uid)
{
	int rc = become(uid);

	if (rc) {
		fprintf(stderr, "child: cannot become uid %u: %s\n", uid, strerror(-rc));
		_exit(125);
	}
}

static const char *who(uid_t uid)
{
	return uid == 0 ? "root" : uid == UID_A ? "user A" : uid == UID_B ? "user B" : "?";
}

/* ---- the monitor, reachable by both users ---------------------------------- */

/*
 * The harness's temp dir is 0700 (root's): open it as /run/ipcd is, so that
 * both users reach the socket. The monitor makes its socket 0666 itself.
 */
static void mon_start(struct t_state *s, const char *extra)
{
	struct stat st;

	mode_shared = s->mon.mode == IPCD_QMODE_SHARED;
	if (extra)
		t_mon_write_config(&s->mon, extra);
	assert_int_equal(chmod(s->mon.dir, 0755), 0);
	t_mon_start(&s->mon);
	assert_int_equal(stat(s->mon.sock, &st), 0);
	if ((st.st_mode & 0666) != 0666)
		fail_msg("the monitor's control socket %s has mode %03o: another user cannot "
			 "connect", s->mon.sock, (unsigned int)(st.st_mode & 0777));
}

/* ---- agents: ipcd-iso-agent processes of one user --------------------------- */

/*
 * struct agent - one ipcd-iso-agent, driven line by line (iso-agent.c).
 * @pid:   ipcd-run execs the agent: the same process all along.
 * @log:   its stderr, in the monitor's directory (printed when a case fails).
 */
struct agent {
	pid_t pid;
	int in;
	int out;
	uid_t uid;
	bool preload;
	char label[24];
	char log[192];
	size_t len;
	char buf[2048];
	char line[1024];
};

static void agent_dump(const struct agent *ag)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = fopen(ag->log, "re");

	if (!f)
		return;
	if (getdelim(&text, &n, '\0', f) > 0)
		fprintf(stderr, "---- %s (%s, pid %d) stderr ----\n%s---- end ----\n", ag->label,
			who(ag->uid), (int)ag->pid, text);
	free(text);
	fclose(f);
}

static const char *agent_cmd(struct agent *ag, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void agent_start(struct agent *ag, const struct t_mon *m, const char *label, uid_t uid,
			bool preload)
{
	int in[2], out[2], err;
	pid_t pid;

	memset(ag, 0, sizeof(*ag));
	ag->uid = uid;
	ag->preload = preload;
	snprintf(ag->label, sizeof(ag->label), "%s", label);
	snprintf(ag->log, sizeof(ag->log), "%s/%s.err.log", m->dir, label);
	err = open(ag->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (err < 0 || pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		fail_msg("agent %s: %s", label, strerror(errno));
	pid = t_fork(AGENT_ALARM_S);
	if (pid == 0) {
		char env_sock[160];
		char *envp[] = { env_sock, (char *)"PATH=/usr/bin:/bin", NULL };
		char *argv_pre[] = { run_bin, agent_bin, NULL };
		char *argv_k[] = { agent_bin, NULL };

		snprintf(env_sock, sizeof(env_sock), "IPCD_SOCKET=%s", m->sock);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err, 2) < 0)
			_exit(126);
		close_range(3, ~0u, 0);
		child_become(uid);
		if (chdir("/"))
			_exit(126);
		execve(preload ? argv_pre[0] : argv_k[0], preload ? argv_pre : argv_k, envp);
		dprintf(2, "exec: %s\n", strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err);
	ag->pid = pid;
	ag->in = in[1];
	ag->out = out[0];
	if (atoi(agent_cmd(ag, "pid") + 3) != (int)pid) {
		agent_dump(ag);
		fail_msg("agent %s: answered pid '%s', expected %d", label, ag->line, (int)pid);
	}
}

/*
 * Send one command and wait (up to @guard_ms, the hang guard) for its
 * answer line ("ok ..." or "err ..."). NULL if the guard passed; fails the
 * case if the agent died.
 */
static const char *agent_vcmd(struct agent *ag, int guard_ms, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static const char *agent_vcmd(struct agent *ag, int guard_ms, const char *fmt, va_list ap)
{
	uint64_t deadline = ipcd_deadline((int64_t)guard_ms * T_NSEC_PER_MSEC);
	char cmd[512];
	int n;

	n = vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
	cmd[n++] = '\n';
	if (write(ag->in, cmd, (size_t)n) != n) {
		agent_dump(ag);
		fail_msg("agent %s: cannot send '%.*s': %s", ag->label, n - 1, cmd,
			 strerror(errno));
	}
	for (;;) {
		char *nl = memchr(ag->buf, '\n', ag->len);
		struct pollfd p = { .fd = ag->out, .events = POLLIN };
		int left = (int)(ipcd_remaining(deadline) / T_NSEC_PER_MSEC);
		ssize_t r;

		if (nl) {
			size_t used = (size_t)(nl - ag->buf) + 1;

			memcpy(ag->line, ag->buf, used - 1);
			ag->line[used - 1] = '\0';
			memmove(ag->buf, ag->buf + used, ag->len - used);
			ag->len -= used;
			return ag->line;
		}
		if (left <= 0 || poll(&p, 1, left) == 0)
			return NULL;
		r = read(ag->out, ag->buf + ag->len, sizeof(ag->buf) - ag->len);
		if (r <= 0 && !(r < 0 && errno == EINTR)) {
			agent_dump(ag);
			fail_msg("agent %s (%s) died before answering '%.*s' (exit %d)", ag->label,
				 who(ag->uid), n - 1, cmd, t_wait(ag->pid, 1000));
		}
		if (r > 0)
			ag->len += (size_t)r;
	}
}

/* One command, its answer line; fails the case on the hang guard. */
static const char *agent_cmd(struct agent *ag, const char *fmt, ...)
{
	const char *line;
	va_list ap;

	va_start(ap, fmt);
	line = agent_vcmd(ag, T_WAIT_MS * 2, fmt, ap);
	va_end(ap);
	if (!line) {
		agent_dump(ag);
		fail_msg("agent %s (%s): no answer (hang guard, %d ms) to: %s", ag->label,
			 who(ag->uid), T_WAIT_MS * 2, fmt);
	}
	return line;
}

/* One command, its answer line, or NULL if @guard_ms passed without one. */
static const char *agent_try(struct agent *ag, int guard_ms, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static const char *agent_try(struct agent *ag, int guard_ms, const char *fmt, ...)
{
	const char *line;
	va_list ap;

	va_start(ap, fmt);
	line = agent_vcmd(ag, guard_ms, fmt, ap);
	va_end(ap);
	return line;
}

/* A command that must succeed: the values after "ok". */
#define agent_ok(ag, ...)	agent_ok_(ag, agent_cmd(ag, __VA_ARGS__))
static const char *agent_ok_(struct agent *ag, const char *line)
{
	if (strncmp(line, "ok", 2)) {
		agent_dump(ag);
		fail_msg("agent %s (%s): expected ok, got '%s'", ag->label, who(ag->uid), line);
	}
	return line + 2;
}

/* The first number after "ok". */
#define agent_fd(ag, ...)	atoi(agent_ok(ag, __VA_ARGS__))

static void agent_quit(struct agent *ag)
{
	if (!ag->pid)
		return;
	agent_cmd(ag, "quit");
	assert_int_equal(t_wait(ag->pid, T_WAIT_MS), 0);
	close(ag->in);
	close(ag->out);
	ag->pid = 0;
}

/* ---- what root's ipcdctl shows (the oracle of the test, never the attacker's) --- */

#define VIEW_MAX	64

struct conn_view {
	uint64_t id;
	int a_pid;
	int b_pid;
	char kind[16];
	char state[16];
	unsigned long long a2b_bytes;
};

struct proc_view {
	int pid;
	unsigned int uid;
	unsigned int slot;
	uint64_t id;
	unsigned long long requests;
};

static struct t_out ctl_out;

/* "@key":N or "@key":"S" after @p, before @end; false if absent. */
static bool field_num(const char *p, const char *end, const char *key, unsigned long long *v)
{
	char pat[48];
	const char *q;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	q = strstr(p, pat);
	if (!q || (end && q >= end))
		return false;
	*v = strtoull(q + strlen(pat), NULL, 10);
	return true;
}

static bool field_str(const char *p, const char *end, const char *key, char *buf, size_t len)
{
	char pat[48];
	const char *q, *e;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	q = strstr(p, pat);
	if (!q || (end && q >= end))
		return false;
	q += strlen(pat);
	e = strchr(q, '"');
	if (!e)
		return false;
	snprintf(buf, len, "%.*s", (int)(e - q), q);
	return true;
}

static unsigned int conns_view(const struct t_mon *m, struct conn_view *v, unsigned int max)
{
	const char *p = ctl_out.out;
	unsigned int n = 0;

	if (t_ctl(m, &ctl_out, true, "connections"))
		fail_msg("ipcdctl connections: exit %d: %s", ctl_out.code, ctl_out.err);
	while (n < max && (p = strstr(p, "{\"id\":"))) {
		const char *next = strstr(p + 1, "{\"id\":");
		unsigned long long x = 0;
		struct conn_view *c = &v[n++];

		memset(c, 0, sizeof(*c));
		c->id = strtoull(p + 6, NULL, 10);
		if (field_num(p, next, "a_pid", &x))
			c->a_pid = (int)x;
		if (field_num(p, next, "b_pid", &x))
			c->b_pid = (int)x;
		field_str(p, next, "kind", c->kind, sizeof(c->kind));
		field_str(p, next, "state", c->state, sizeof(c->state));
		field_num(p, next, "a2b_bytes", &c->a2b_bytes);
		p++;
	}
	return n;
}

/* The connection between @a_pid (connector) and @b_pid (acceptor) of @kind: its id, or fail. */
static struct conn_view conn_of(const struct t_mon *m, int a_pid, int b_pid, const char *kind)
{
	struct conn_view v[VIEW_MAX];
	unsigned int n = conns_view(m, v, VIEW_MAX), i;

	for (i = 0; i < n; i++)
		if (v[i].a_pid == a_pid && v[i].b_pid == b_pid && !strcmp(v[i].kind, kind))
			return v[i];
	fail_msg("no accelerated %s connection from pid %d to pid %d in: %s", kind, a_pid, b_pid,
		 ctl_out.out);
	return v[0];	/* not reached */
}

/* The state root's ipcdctl shows for connection @id ("" if it is gone). */
static const char *conn_state(const struct t_mon *m, uint64_t id)
{
	static char state[16];
	struct conn_view v[VIEW_MAX];
	unsigned int n = conns_view(m, v, VIEW_MAX), i;

	state[0] = '\0';
	for (i = 0; i < n; i++)
		if (v[i].id == id)
			snprintf(state, sizeof(state), "%s", v[i].state);
	return state;
}

/*
 * Wait (bounded) until connection @id is in @state: a lane kit's listener
 * reports it with a lazy KIT_ACCEPTED, a request the monitor may serve at
 * any moment until then.
 */
static void conn_wait_state(const struct t_mon *m, uint64_t id, const char *state)
{
	uint64_t deadline = ipcd_deadline((int64_t)T_WAIT_MS * T_NSEC_PER_MSEC);

	while (strcmp(conn_state(m, id), state)) {
		if (ipcd_remaining(deadline) == 0)
			fail_msg("connection %" PRIu64 " never became '%s': %s", id, state,
				 ctl_out.out);
		t_sleep_ms(10);
	}
}

static bool proc_of(const struct t_mon *m, int pid, struct proc_view *out)
{
	const char *p = ctl_out.out;
	unsigned long long x;

	if (t_ctl(m, &ctl_out, true, "processes"))
		fail_msg("ipcdctl processes: exit %d: %s", ctl_out.code, ctl_out.err);
	while ((p = strstr(p, "{\"pid\":"))) {
		const char *next = strstr(p + 1, "{\"pid\":");

		if (atoi(p + 7) == pid) {
			memset(out, 0, sizeof(*out));
			out->pid = pid;
			if (field_num(p, next, "uid", &x))
				out->uid = (unsigned int)x;
			if (field_num(p, next, "slot", &x))
				out->slot = (unsigned int)x;
			if (field_num(p, next, "id", &x))
				out->id = x;
			field_num(p, next, "requests", &out->requests);
			return true;
		}
		p++;
	}
	return false;
}

static struct proc_view proc_must(const struct t_mon *m, int pid)
{
	struct proc_view v;

	if (!proc_of(m, pid, &v))
		fail_msg("pid %d is not registered with the monitor: %s", pid, ctl_out.out);
	return v;
}

/* ---- running a function as another user --------------------------------------- */

/* Fork, become @uid, run @fn(@arg); the child must exit 0 (its findings go to rp/pr). */
static void run_as(uid_t uid, void (*fn)(void *arg), void *arg, const char *what)
{
	pid_t pid = t_fork(CHILD_ALARM_S);
	int code;

	if (pid == 0) {
		child_become(uid);
		fn(arg);
		_exit(0);
	}
	code = t_wait(pid, 2 * CHILD_ALARM_S * 1000);
	if (code != 0)
		fail_msg("%s as %s: the child exited %d (%s)", what, who(uid), code, rp->text);
}

/* ---- a) the kernel's ways into another process's memory ------------------------ */

static int probe_cur = -1;	/* the process probe_pid() looks at; -1: files */

/* Does @len bytes at @p hold the secret? Records the first place it was seen. */
static bool probe_hit(const void *p, size_t len, const char *where)
{
	if (!memmem(p, len, pr->secret, strlen(pr->secret)))
		return false;
	if (!pr->first_hit[0])
		snprintf(pr->first_hit, sizeof(pr->first_hit), "%s", where);
	if (probe_cur >= 0)
		pr->hit_pid[probe_cur]++;
	return true;
}

/* Read a regular file behind @fd (at most 64 MiB) and look for the secret; closes @fd. */
static bool probe_file(int fd, const char *where)
{
	static uint8_t buf[1 << 20];
	size_t keep = strlen(pr->secret);
	struct stat st;
	off_t off = 0;
	bool hit = false;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return false;	/* a pipe or a socket: reading would steal its data */
	}
	while (!hit && off < st.st_size && off < (64 << 20)) {
		ssize_t r = pread(fd, buf, sizeof(buf), off);

		if (r <= 0)
			break;
		hit = probe_hit(buf, (size_t)r, where);
		off += r > (ssize_t)keep ? r - (ssize_t)keep : r;	/* a secret across chunks */
	}
	close(fd);
	return hit;
}

static void probe_pid(int i)
{
	static uint8_t buf[1 << 20];
	pid_t pid = pr->pids[i];
	char path[128], where[192];
	unsigned int n, k;
	int fd, pidfd;

	/* /proc/PID/fd/N: the link opens the file itself (a memfd would be its region). */
	for (n = 0; n < FD_SCAN; n++) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%u", (int)pid, n);
		fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			continue;
		pr->fd_opened++;
		if (probe_file(fd, path))
			pr->hit_fd++;
	}
	/* map_files: the mappings by address (root says where they are). */
	for (k = 0; k < pr->n_maps[i]; k++) {
		snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid,
			 pr->map_lo[i][k], pr->map_hi[i][k]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		pr->map_opened++;
		if (probe_file(fd, path))
			pr->hit_map++;
	}
	/* /proc/PID/mem and process_vm_readv at those addresses. */
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		pr->mem_opened++;
	for (k = 0; k < pr->n_maps[i]; k++) {
		uint64_t lo = pr->map_lo[i][k], len = pr->map_hi[i][k] - lo, off;

		for (off = 0; off < len; off += sizeof(buf)) {
			size_t want = (size_t)IPCD_MIN((uint64_t)sizeof(buf), len - off);
			struct iovec local = { .iov_base = buf, .iov_len = want };
			struct iovec remote = { .iov_base = (void *)(uintptr_t)(lo + off),
						.iov_len = want };
			ssize_t r;

			snprintf(where, sizeof(where), "%s at %" PRIx64, path, lo + off);
			if (fd >= 0 && (r = pread(fd, buf, want, (off_t)(lo + off))) > 0 &&
			    probe_hit(buf, (size_t)r, where))
				pr->hit_mem++;
			r = process_vm_readv(pid, &local, 1, &remote, 1, 0);
			if (r > 0) {
				pr->vm_read++;
				snprintf(where, sizeof(where), "process_vm_readv(%d) at %" PRIx64,
					 (int)pid, lo + off);
				if (probe_hit(buf, (size_t)r, where))
					pr->hit_vm++;
			}
		}
	}
	if (fd >= 0)
		close(fd);
	/* pidfd_open needs nothing; pidfd_getfd needs ptrace rights over the process. */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return;
	pr->pidfd_opened++;
	for (n = 0; n < FD_SCAN; n++) {
		int got = (int)syscall(SYS_pidfd_getfd, pidfd, n, 0);

		if (got < 0)
			continue;
		pr->fd_taken++;
		snprintf(where, sizeof(where), "pidfd_getfd(%d, %u)", (int)pid, n);
		if (probe_file(got, where))
			pr->hit_getfd++;
	}
	close(pidfd);
}

/* Every file whose name says ipcd under @dir (one level into directories so named). */
static void probe_dir(const char *dir, int depth)
{
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[512];
		struct stat st;
		int fd;

		if (e->d_name[0] == '.' || (depth == 0 && !strcasestr(e->d_name, "ipcd")))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (depth == 0)
				probe_dir(path, 1);
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			continue;
		pr->files_opened++;
		if (!strcmp(e->d_name, pr->canary_name)) {
			char c[64] = "";

			if (read(fd, c, sizeof(c) - 1) > 0 && strstr(c, pr->canary))
				pr->canary_seen = true;
		}
		if (probe_file(fd, path))
			pr->hit_file++;
	}
	closedir(d);
}

static void probe_run(void *arg)
{
	static const char *const dirs[] = { "/dev/shm", "/tmp", "/run", "/run/ipcd", "/var/tmp" };
	unsigned int i;
	int k;

	(void)arg;
	for (k = 0; k < pr->n_pids; k++) {
		probe_cur = k;
		probe_pid(k);
	}
	probe_cur = -1;
	for (i = 0; i < IPCD_ARRAY_SIZE(dirs); i++)
		probe_dir(dirs[i], 0);
}

static void probe_clear_out(void)
{
	pr->fd_opened = pr->map_opened = pr->mem_opened = pr->vm_read = pr->fd_taken = 0;
	pr->pidfd_opened = pr->files_opened = 0;
	pr->hit_fd = pr->hit_map = pr->hit_mem = pr->hit_vm = pr->hit_getfd = pr->hit_file = 0;
	memset(pr->hit_pid, 0, sizeof(pr->hit_pid));
	pr->canary_seen = false;
	pr->first_hit[0] = '\0';
}

/* Root's view of @pid's connection regions: its mappings of ipcd-conn memfds. */
static void probe_add_pid(pid_t pid)
{
	char path[64], line[512];
	int i = pr->n_pids++;
	FILE *f;

	assert_true(i < PROBE_PIDS);
	pr->pids[i] = pid;
	pr->n_maps[i] = 0;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) && pr->n_maps[i] < PROBE_MAPS) {
		unsigned long long lo, hi;

		if (!strstr(line, "memfd:ipcd-conn") || sscanf(line, "%llx-%llx", &lo, &hi) != 2)
			continue;
		pr->map_lo[i][pr->n_maps[i]] = lo;
		pr->map_hi[i][pr->n_maps[i]] = hi;
		pr->n_maps[i]++;
	}
	fclose(f);
}

static void probe_print(const char *as)
{
	fprintf(stderr, "[probe as %s] opened: /proc fds %u, map_files %u, mem %u, "
		"process_vm_readv %u, pidfd_open %u, pidfd_getfd %u, ipcd-named files %u; "
		"the secret seen via: fd %u, map_files %u, mem %u, vm %u, getfd %u, files %u%s%s\n",
		as, pr->fd_opened, pr->map_opened, pr->mem_opened, pr->vm_read, pr->pidfd_opened,
		pr->fd_taken, pr->files_opened, pr->hit_fd, pr->hit_map, pr->hit_mem, pr->hit_vm,
		pr->hit_getfd, pr->hit_file, pr->first_hit[0] ? "; first at " : "",
		pr->first_hit);
}

/* ---- raw clients (ipcd_attach, no preload): child side ------------------------- */

static void raw_attach(const struct t_mon *m, const char *comm, struct ipcd_attach *a)
{
	char why[256];
	int rc = ipcd_attach(m->sock, comm, a, why, sizeof(why));

	if (rc) {
		report_add("%s: ipcd_attach: %s: %s", comm, strerror(-rc), why);
		_exit(124);
	}
}

/* One strict call; its status. A broken channel (we were cut off) ends the child. */
static int32_t raw_call(struct ipcd_attach *a, uint16_t op, const void *body, uint16_t len,
			struct ipcd_resp *out)
{
	struct ipcd_resp resp;
	int rc = t_call(a, op, body, len, &resp, T_CALL_TIMEOUT_NS);

	if (rc) {
		report_add("opcode %u: no answer (%s): cut off?", op, strerror(-rc));
		_exit(123);
	}
	if (out)
		*out = resp;
	return resp.status;
}

static void close_fds(int *fds, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/*
 * Messages the monitor sent us since the last look. After a refused request
 * there must be none: a message carries descriptors (a region, a token).
 */
static void raw_no_msgs(struct ipcd_attach *a, const char *after)
{
	struct ipcd_ctl_msg msg;
	int fds[IPCD_CTL_CONN_NFDS] = { -1, -1, -1 };

	while (ipcd_attach_recv_msg(a, &msg, fds, 0) == 0) {
		violation("%s: the monitor sent message type %u (conn %" PRIu64 ", bind %u) with "
			  "descriptors", after, msg.type, msg.conn_id, msg.bind_id);
		close_fds(fds, IPCD_CTL_CONN_NFDS);
	}
}

/* The next message of @type (bounded): its fds in @fds; false if none came. */
static bool raw_msg(struct ipcd_attach *a, uint16_t type, struct ipcd_ctl_msg *msg,
		    int fds[IPCD_CTL_CONN_NFDS])
{
	uint64_t deadline = ipcd_deadline((int64_t)T_WAIT_MS * T_NSEC_PER_MSEC);

	while (ipcd_remaining(deadline)) {
		int rc;

		fds[0] = fds[1] = fds[2] = -1;
		rc = ipcd_attach_recv_msg(a, msg, fds, 100);

		if (rc == -ETIMEDOUT)
			continue;
		if (rc)
			return false;
		if (msg->type == type)
			return true;
		close_fds(fds, IPCD_CTL_CONN_NFDS);
	}
	return false;
}

/* Does the region in memfd @fd hold the secret? Takes @fd. */
static bool region_has_secret(int fd)
{
	struct ipcd_region reg;
	bool hit;

	if (!pr->secret[0]) {
		report_add("no secret set: the search would match anything");
		_exit(121);
	}
	if (ipcd_region_map(fd, IPCD_REGION_CONN, &reg)) {
		close(fd);
		return false;
	}
	hit = memmem(reg.base, reg.size, pr->secret, strlen(pr->secret)) != NULL;
	ipcd_region_close(&reg);
	return hit;
}

static void fill_loopback(uint8_t addr[16])
{
	memset(addr, 0, 16);
	addr[10] = addr[11] = 0xff;
	addr[12] = 127;
	addr[15] = 1;
}

/* ---- the secret ---------------------------------------------------------------- */

static void new_secret(void)
{
	uint8_t r[8];
	unsigned int i;
	char *p;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		fail_msg("getrandom: %s", strerror(errno));
	p = pr->secret + sprintf(pr->secret, "isosecret");
	for (i = 0; i < sizeof(r); i++)
		p += sprintf(p, "%02x", r[i]);
	p = pr->canary + sprintf(pr->canary, "isocanary");
	for (i = 0; i < sizeof(r); i++)
		p += sprintf(p, "%02x", r[sizeof(r) - 1 - i]);
}

/* ---- the objects an attacker aims at -------------------------------------------- */

#define TARGET_CONNS	8
#define TARGET_KEYS	4
#define TARGET_SLOTS	4

/* A's objects, as root's ipcdctl (or stat) shows them: handed to the attacker child. */
struct targets {
	const struct t_mon *m;
	unsigned int n_conns;
	uint64_t conns[TARGET_CONNS];
	unsigned int n_keys;
	uint64_t keys[TARGET_KEYS];	/* named AF_UNIX registrations (unix.c name_key()) */
	unsigned int n_slots;
	uint32_t slots[TARGET_SLOTS];	/* A's request slots (shared mode doorbells) */
	uint16_t port;			/* A's listener */
};

static void target_conn(struct targets *t, uint64_t id)
{
	assert_true(t->n_conns < TARGET_CONNS);
	t->conns[t->n_conns++] = id;
}

/* ---- a) B cannot map or read A's connection memory ---------------------------- */

/* REGION and HOLD of each of A's connection ends: refused, and nothing sent to us. */
static void b_region_requests(void *arg)
{
	const struct targets *t = arg;
	struct ipcd_attach a;
	struct ipcd_conn_resp cr;
	struct ipcd_connect_req c = { .port = t->port };
	struct ipcd_ctl_msg msg;
	struct ipcd_resp resp;
	int fds[IPCD_CTL_CONN_NFDS];
	unsigned int i, end;

	raw_attach(t->m, "iso-b-region", &a);
	for (i = 0; i < t->n_conns; i++) {
		for (end = IPCD_CLOSE_A; end <= IPCD_CLOSE_B; end++) {
			struct ipcd_hold_req h = { .conn_id = t->conns[i], .end = end };
			int32_t st;

			st = raw_call(&a, IPCD_OP_REGION, &h, sizeof(h), NULL);
			if (st == 0)
				violation("REGION of A's connection %" PRIu64 " end %u: granted to B",
					  t->conns[i], end);
			raw_no_msgs(&a, "REGION of A's connection");
			st = raw_call(&a, IPCD_OP_HOLD, &h, sizeof(h), NULL);
			if (st == 0)
				violation("HOLD of A's connection %" PRIu64 " end %u: granted to B",
					  t->conns[i], end);
			raw_no_msgs(&a, "HOLD of A's connection");
		}
	}
	/* Anyone may connect to A's TCP listener: B's own region holds nothing of A's. */
	fill_loopback(c.addr);
	if (raw_call(&a, IPCD_OP_CONNECT, &c, sizeof(c), &resp) != 0) {
		violation("B's CONNECT to A's listener: status %d (TCP has no permissions)",
			  resp.status);
	} else {
		memcpy(&cr, resp.body, sizeof(cr));
		if (!raw_msg(&a, IPCD_CTL_CONN_FD, &msg, fds)) {
			violation("B's CONNECT answered 0 without its region");
		} else {
			close_fds(&fds[1], 2);
			if (region_has_secret(fds[0]))
				violation("B's own new connection's region holds A's secret");
			else
				rp->discovered++;
		}
	}
	ipcd_detach(&a);
}

/* The positive control: a process of user A may ask for the region of A's end. */
static void a_region_control(void *arg)
{
	const struct targets *t = arg;
	struct ipcd_hold_req h = { .conn_id = t->conns[0], .end = IPCD_CLOSE_A };
	struct ipcd_attach a;
	struct ipcd_ctl_msg msg;
	int fds[IPCD_CTL_CONN_NFDS];
	int32_t st;

	raw_attach(t->m, "iso-a-region", &a);
	st = raw_call(&a, IPCD_OP_REGION, &h, sizeof(h), NULL);
	if (st != 0)
		violation("control: REGION of connection %" PRIu64 " by user A: %d", h.conn_id, st);
	else if (!raw_msg(&a, IPCD_CTL_REGION_FD, &msg, fds))
		violation("control: REGION answered 0 without the region");
	else if (!region_has_secret(fds[0]))
		violation("control: the region user A got does not hold the secret");
	else
		rp->discovered++;
	ipcd_detach(&a);
}

static void test_memory(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	uint16_t port = PORT_BASE + 1;
	struct targets t = { .m = m, .port = port };
	struct agent srv, cli;
	char canary[160];
	int l, c, x, fd;
	struct conn_view tcp, pipe_v, sp_v;
	int pr_r, pr_w, sp0, sp1;

	mon_start(s, NULL);
	new_secret();
	agent_start(&srv, m, "a-server", UID_A, true);
	agent_start(&cli, m, "a-client", UID_A, true);
	l = agent_fd(&srv, "tcp-bind 127.0.0.1 %u", port);
	agent_ok(&srv, "listen %d", l);
	c = agent_fd(&cli, "tcp-connect 127.0.0.1 %u", port);
	x = agent_fd(&srv, "accept %d", l);
	/* The secrets stay unread: in the rings of A's regions while B looks. */
	agent_ok(&cli, "sendstr %d %s-tcp", c, pr->secret);
	sscanf(agent_ok(&cli, "pipe"), "%d %d", &pr_r, &pr_w);
	agent_ok(&cli, "sendstr %d %s-pipe", pr_w, pr->secret);
	sscanf(agent_ok(&cli, "socketpair"), "%d %d", &sp0, &sp1);
	agent_ok(&cli, "sendstr %d %s-socketpair", sp0, pr->secret);
	tcp = conn_of(m, cli.pid, srv.pid, "tcp");
	pipe_v = conn_of(m, cli.pid, cli.pid, "pipe");
	sp_v = conn_of(m, cli.pid, cli.pid, "unix");
	target_conn(&t, tcp.id);
	target_conn(&t, pipe_v.id);
	target_conn(&t, sp_v.id);

	memset(pr->pids, 0, sizeof(pr->pids));
	pr->n_pids = 0;
	probe_add_pid(cli.pid);
	probe_add_pid(srv.pid);
	probe_add_pid(m->pid);
	assert_true(pr->n_maps[0] > 0 && pr->n_maps[1] > 0);	/* A's ends are mapped */
	snprintf(pr->canary_name, sizeof(pr->canary_name), "ipcd-iso-canary-%d", (int)getpid());
	snprintf(canary, sizeof(canary), "/dev/shm/%s", pr->canary_name);
	fd = open(canary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0644), 0);
	assert_int_equal(write(fd, pr->canary, strlen(pr->canary)), (ssize_t)strlen(pr->canary));
	close(fd);

	/* Positive control: with the rights (root), every way shows the secret. */
	probe_clear_out();
	run_as(0, probe_run, NULL, "the memory probe");
	probe_print("root");
	if (!pr->hit_fd || !pr->hit_map || !pr->hit_mem || !pr->hit_vm || !pr->hit_getfd ||
	    !pr->hit_pid[0] || !pr->hit_pid[1] || !pr->hit_pid[2] || !pr->canary_seen)
		fail_msg("control: the probe as root must see the secret through /proc fds, "
			 "map_files, mem, process_vm_readv and pidfd_getfd, in both of A's processes "
			 "and in the monitor's fds, and find the canary (it can fail otherwise)");

	/* User B: nothing opens, nothing shows the secret; the directory scan works. */
	probe_clear_out();
	run_as(UID_B, probe_run, NULL, "the memory probe");
	probe_print("user B");
	if (pr->fd_opened || pr->map_opened || pr->mem_opened || pr->vm_read || pr->fd_taken ||
	    pr->hit_fd || pr->hit_map || pr->hit_mem || pr->hit_vm || pr->hit_getfd ||
	    pr->hit_file || pr->first_hit[0])
		fail_msg("ISOLATION HOLE (a, kernel paths): user B opened or read A's memory or "
			 "fds (see the probe line above; first secret at '%s')", pr->first_hit);
	if (!pr->canary_seen)
		fail_msg("control: user B's directory scan did not find the canary %s", canary);
	unlink(canary);

	/* B's registered process asking the monitor for A's regions by id. */
	report_reset();
	run_as(UID_B, b_region_requests, &t, "REGION/HOLD requests");
	if (rp->violations)
		fail_msg("ISOLATION HOLE (a, monitor requests):\n%s", rp->text);
	assert_int_equal(rp->discovered, 1);
	report_reset();
	run_as(UID_A, a_region_control, &t, "the REGION control");
	if (rp->violations || rp->discovered != 1)
		fail_msg("control: %s", rp->text);

	/* A's own peers read the data. */
	agent_ok(&srv, "expect %d %s-tcp", x, pr->secret);
	agent_ok(&cli, "expect %d %s-pipe", pr_r, pr->secret);
	agent_ok(&cli, "expect %d %s-socketpair", sp1, pr->secret);
	agent_quit(&cli);
	agent_quit(&srv);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- b) B cannot forge A's requests ----------------------------------------------- */

#define SWEEP_IDX	64	/* bind ids: (generation << 20) | slot, as ns.c numbers them */
#define SWEEP_GEN	16
#define SWEEP_LANES	32	/* lane ids: (serial << 10) | index */
#define SWEEP_SERIAL	8
#define DB(slot, gen)	((uint32_t)(slot) | (uint32_t)(gen) << 16)

/* @st must be a refusal: anything else is B acting in A's name. */
static void refused(int32_t st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refused(int32_t st, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (st < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	violation("%s: status %d from B's request", buf, st);
}

/* Every request that names one of A's connections. */
static void forge_conn_requests(struct ipcd_attach *a, uint64_t id)
{
	static const uint32_t ends[] = { IPCD_CLOSE_MINE, IPCD_CLOSE_A, IPCD_CLOSE_B,
					 IPCD_CLOSE_UNSENT, IPCD_CLOSE_UNCLAIMED };
	struct ipcd_kit_accepted_req ka = { .conn_id = id };
	unsigned int i;

	for (i = 0; i < IPCD_ARRAY_SIZE(ends); i++) {
		struct ipcd_close_req c = { .conn_id = id, .end = ends[i] };

		refused(raw_call(a, IPCD_OP_CLOSE, &c, sizeof(c), NULL),
			"CLOSE of A's connection %" PRIu64 " end %u", id, ends[i]);
	}
	for (i = IPCD_CLOSE_A; i <= IPCD_CLOSE_B; i++) {
		struct ipcd_hold_req h = { .conn_id = id, .end = i };

		refused(raw_call(a, IPCD_OP_HOLD, &h, sizeof(h), NULL),
			"HOLD of A's connection %" PRIu64 " end %u", id, i);
		refused(raw_call(a, IPCD_OP_REGION, &h, sizeof(h), NULL),
			"REGION of A's connection %" PRIu64 " end %u", id, i);
	}
	refused(raw_call(a, IPCD_OP_KIT_ACCEPTED, &ka, sizeof(ka), NULL),
		"KIT_ACCEPTED of A's connection %" PRIu64, id);
	for (i = 0; i < 3; i++) {
		struct ipcd_uclaim_req u = { .conn_id = id, .token = i ? id * i : 1,
					     .fd = (int32_t)i };

		refused(raw_call(a, IPCD_OP_UCLAIM, &u, sizeof(u), NULL),
			"UCLAIM of A's connection %" PRIu64, id);
	}
	raw_no_msgs(a, "requests naming A's connection");
}

/*
 * Every request that names a listening bind, over the ids a fresh monitor
 * hands out: ACCEPT (no token, a guessed one), LISTEN, HOLD, UNBIND last.
 * -EPERM says the id exists and is not ours: that is how an attacker finds
 * A's (counted in rp->discovered, so the parent knows the sweep reached it).
 */
static void forge_bind_requests(struct ipcd_attach *a)
{
	uint32_t idx, gen;

	for (gen = 0; gen < SWEEP_GEN; gen++) {
		for (idx = 1; idx <= SWEEP_IDX; idx++) {
			uint32_t id = gen << 20 | idx;
			struct ipcd_accept_req ac = { .id = id };
			struct ipcd_listen_req li = { .id = id, .backlog = 1,
						      .flags = IPCD_LISTEN_LANES };
			struct ipcd_hold_req h = { .conn_id = id, .end = IPCD_HOLD_LISTENER };
			struct ipcd_unbind_req u = { .id = id };
			int32_t st;

			st = raw_call(a, IPCD_OP_ACCEPT, &ac, sizeof(ac), NULL);
			refused(st, "ACCEPT on bind %#x without its token", id);
			if (st == -EPERM)
				rp->discovered++;
			ac.token = 0x9e3779b97f4a7c15ull * (id + 1);
			refused(raw_call(a, IPCD_OP_ACCEPT, &ac, sizeof(ac), NULL),
				"ACCEPT on bind %#x with a guessed token", id);
			refused(raw_call(a, IPCD_OP_LISTEN, &li, sizeof(li), NULL),
				"LISTEN on bind %#x", id);
			refused(raw_call(a, IPCD_OP_HOLD, &h, sizeof(h), NULL),
				"HOLD of listening bind %#x", id);
			refused(raw_call(a, IPCD_OP_UNBIND, &u, sizeof(u), NULL),
				"UNBIND of bind %#x", id);
		}
	}
	raw_no_msgs(a, "requests naming A's binds");
}

/* KITS and LANE_DONE over the lane ids a fresh monitor hands out. */
static void forge_lane_requests(struct ipcd_attach *a)
{
	uint32_t idx, serial;

	for (serial = 1; serial <= SWEEP_SERIAL; serial++) {
		for (idx = 0; idx < SWEEP_LANES; idx++) {
			uint32_t id = serial << 10 | idx;
			struct ipcd_kits_req k = { .lane_id = id, .count = 1 };
			struct ipcd_lane_done_req d = { .lane_id = id };

			refused(raw_call(a, IPCD_OP_KITS, &k, sizeof(k), NULL), "KITS on lane %#x",
				id);
			refused(raw_call(a, IPCD_OP_LANE_DONE, &d, sizeof(d), NULL),
				"LANE_DONE of lane %#x", id);
		}
	}
	raw_no_msgs(a, "requests naming A's lanes");
}

/* Named AF_UNIX registrations of A's: B may neither drop nor take them over. */
static void forge_unix_requests(struct ipcd_attach *a, const struct targets *t)
{
	unsigned int i;

	for (i = 0; i < t->n_keys; i++) {
		struct ipcd_ulisten_req drop = { .key = t->keys[i], .flags = IPCD_ULISTEN_DROP };
		struct ipcd_ulisten_req take = { .key = t->keys[i] };

		refused(raw_call(a, IPCD_OP_ULISTEN, &drop, sizeof(drop), NULL),
			"ULISTEN DROP of A's name %#" PRIx64, t->keys[i]);
		refused(raw_call(a, IPCD_OP_ULISTEN, &take, sizeof(take), NULL),
			"ULISTEN of A's name %#" PRIx64 " while A's listener lives", t->keys[i]);
	}
	raw_no_msgs(a, "requests naming A's AF_UNIX names");
}

/* Queue one doorbell (bounded: the monitor drains the queue). */
static void db_push(struct ipcd_attach *a, uint32_t v)
{
	unsigned int tries;

	for (tries = 0; tries < 2000; tries++) {
		if (ipcd_mpsc_enqueue(&a->db, v) == 0) {
			rp->word[7]++;
			return;
		}
		usleep(100);
	}
}

/*
 * Shared mode: doorbells naming A's slots with every generation a fresh
 * monitor can have given them, then garbage: claims never published (as a
 * producer killed mid-enqueue) and random words written into the queue.
 * A doorbell carries no request: the monitor can only find in A's ring
 * what A wrote there.
 */
static void forge_doorbells(struct ipcd_attach *a, const struct targets *t, uint64_t seed)
{
	struct t_rng rng;
	uint32_t gen, pos;
	unsigned int i;

	if (!a->cl.db) {
		report_add("per-process mode: no doorbell queue to forge into");
		return;
	}
	t_rng_init(&rng, seed);
	for (i = 0; i < t->n_slots; i++)
		for (gen = 0; gen < 1024; gen++)
			db_push(a, DB(t->slots[i], gen));
	for (i = 0; i < 2000; i++)
		db_push(a, (uint32_t)t_rng_next(&rng));
	for (i = 0; i < 20000 && ipcd_load_acquire(&a->db.shm->head) !=
				 ipcd_load_acquire(&a->db.shm->tail); i++)
		usleep(100);
	for (i = 0; i < 16; i++)
		if (ipcd_mpsc_claim(&a->db, &pos))
			break;
	for (i = 0; i < 16; i++)
		ipcd_store_release(&a->db.shm->slot[t_rng_below(&rng, a->db.capacity)],
				   t_rng_next(&rng));
	/* Our own requests still work after all that (the sweep recovers the queue). */
	for (i = 0; i < 20; i++)
		if (t_echo_check(a, 99, (uint64_t)i * 64, 32))
			violation("B's own ECHO after the garbage doorbells failed");
}

static void b_forge(void *arg)
{
	const struct targets *t = arg;
	struct ipcd_attach a;
	unsigned int i;

	raw_attach(t->m, "iso-b-forge", &a);
	for (i = 0; i < t->n_conns; i++)
		forge_conn_requests(&a, t->conns[i]);
	forge_bind_requests(&a);
	forge_lane_requests(&a);
	forge_unix_requests(&a, t);
	forge_doorbells(&a, t, t_seed());
	raw_no_msgs(&a, "the whole attack");
	ipcd_detach(&a);
}

/* The positive control: the same CLOSE and REGION from a process of user A work. */
static void a_forge_control(void *arg)
{
	const struct targets *t = arg;
	struct ipcd_hold_req h = { .conn_id = t->conns[0], .end = IPCD_CLOSE_B };
	struct ipcd_close_req c = { .conn_id = t->conns[0], .end = IPCD_CLOSE_A };
	struct ipcd_attach a;
	struct ipcd_ctl_msg msg;
	int fds[IPCD_CTL_CONN_NFDS];
	int32_t st;

	raw_attach(t->m, "iso-a-control", &a);
	st = raw_call(&a, IPCD_OP_REGION, &h, sizeof(h), NULL);
	if (st || !raw_msg(&a, IPCD_CTL_REGION_FD, &msg, fds))
		violation("control: REGION of A's connection by user A: %d", st);
	else
		close(fds[0]);
	st = raw_call(&a, IPCD_OP_CLOSE, &c, sizeof(c), NULL);
	if (st)
		violation("control: CLOSE of A's end by user A: %d", st);
	ipcd_detach(&a);
}

/* One round of data both ways on connection (@a_fd of @a, @b_fd of @b), checked. */
static void data_both_ways(struct agent *a, int a_fd, struct agent *b, int b_fd, uint32_t stream,
			   uint64_t *pos)
{
	agent_ok(a, "send %d 65536 %u %" PRIu64, a_fd, stream, *pos);
	agent_ok(b, "recv %d 65536 %u %" PRIu64, b_fd, stream, *pos);
	agent_ok(b, "send %d 4096 %u %" PRIu64, b_fd, stream + 1, *pos);
	agent_ok(a, "recv %d 4096 %u %" PRIu64, a_fd, stream + 1, *pos);
	*pos += 65536;
}

static void test_forge(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	uint16_t port = PORT_BASE + 2;
	struct targets t = { .m = m, .port = port };
	struct agent srv, cli, cli2;
	struct conn_view v1, v2, vq, vp, vs, spare;
	struct proc_view before[3], after[3];
	char states[TARGET_CONNS][16];
	int l, c1, c2, cq, x1, x2, xq, c4, x4, pr_r, pr_w, sp0, sp1;
	uint64_t pos = 0;
	unsigned int i;

	mon_start(s, NULL);
	agent_start(&srv, m, "a-server", UID_A, true);
	agent_start(&cli, m, "a-client", UID_A, true);
	agent_start(&cli2, m, "a-client2", UID_A, true);
	l = agent_fd(&srv, "tcp-bind 127.0.0.1 %u", port);
	agent_ok(&srv, "listen %d", l);
	c1 = agent_fd(&cli, "tcp-connect 127.0.0.1 %u", port);	/* through the monitor */
	x1 = agent_fd(&srv, "accept %d", l);
	c2 = agent_fd(&cli, "tcp-connect 127.0.0.1 %u", port);	/* down the lane, as a kit */
	x2 = agent_fd(&srv, "accept %d", l);
	cq = agent_fd(&cli2, "tcp-connect 127.0.0.1 %u", port);	/* waits in A's backlog */
	sscanf(agent_ok(&cli, "pipe"), "%d %d", &pr_r, &pr_w);
	sscanf(agent_ok(&cli, "socketpair"), "%d %d", &sp0, &sp1);
	data_both_ways(&cli, c1, &srv, x1, 1, &pos);
	data_both_ways(&cli, c2, &srv, x2, 3, &pos);
	v1 = conn_of(m, cli.pid, srv.pid, "tcp");
	vq = conn_of(m, cli2.pid, srv.pid, "tcp");
	vp = conn_of(m, cli.pid, cli.pid, "pipe");
	vs = conn_of(m, cli.pid, cli.pid, "unix");
	{
		struct conn_view v[VIEW_MAX];
		unsigned int n = conns_view(m, v, VIEW_MAX);

		/* the kit that carried c2 (bytes went through it), and a spare one */
		memset(&v2, 0, sizeof(v2));
		memset(&spare, 0, sizeof(spare));
		for (i = 0; i < n; i++) {
			if (v[i].a_pid != cli.pid || v[i].b_pid != srv.pid || v[i].id == v1.id)
				continue;
			if (v[i].a2b_bytes)
				v2 = v[i];
			else if (!strcmp(v[i].state, "lane-kit") && !spare.id)
				spare = v[i];
		}
	}
	target_conn(&t, v1.id);
	target_conn(&t, vq.id);
	target_conn(&t, vp.id);
	target_conn(&t, vs.id);
	if (spare.id)
		target_conn(&t, spare.id);	/* a kit its connector holds for later */
	assert_string_equal(vq.state, "backlog");

	/* A is idle from here until B is done: what A's processes asked must not move. */
	if (!v2.id)
		fail_msg("no second connection of A's client: %s", ctl_out.out);
	conn_wait_state(m, v2.id, "established");	/* its lazy KIT_ACCEPTED served */
	target_conn(&t, v2.id);
	for (i = 0; i < t.n_conns; i++)
		snprintf(states[i], sizeof(states[i]), "%s", conn_state(m, t.conns[i]));
	before[0] = proc_must(m, srv.pid);
	before[1] = proc_must(m, cli.pid);
	before[2] = proc_must(m, cli2.pid);
	for (i = 0; i < 3; i++)
		if (t.n_slots < TARGET_SLOTS)
			t.slots[t.n_slots++] = before[i].slot;
	v1 = conn_of(m, cli.pid, srv.pid, "tcp");

	report_reset();
	run_as(UID_B, b_forge, &t, "the forged requests");
	fprintf(stderr, "[forge as user B] %u doorbells queued, %u of A's bind ids found "
		"(-EPERM)%s%s", (unsigned int)rp->word[7], rp->discovered,
		rp->len ? "; " : "\n", rp->text);
	if (rp->violations)
		fail_msg("ISOLATION HOLE (b, forged requests): B's requests naming A's objects "
			 "were not refused:\n%s", rp->text);
	if (!rp->discovered)
		fail_msg("the bind-id sweep never met A's listener (-EPERM): it tested nothing");

	/* Nothing was done in A's name: A's request counts and connections as they were. */
	after[0] = proc_must(m, srv.pid);
	after[1] = proc_must(m, cli.pid);
	after[2] = proc_must(m, cli2.pid);
	for (i = 0; i < 3; i++)
		if (after[i].requests != before[i].requests)
			fail_msg("ISOLATION HOLE (b): pid %d (user A, idle) has %llu requests served "
				 "after B's attack, %llu before", before[i].pid, after[i].requests,
				 before[i].requests);
	for (i = 0; i < t.n_conns; i++) {
		struct conn_view v[VIEW_MAX];
		unsigned int n = conns_view(m, v, VIEW_MAX), k;
		const char *want = states[i];
		bool seen = false;

		for (k = 0; k < n; k++) {
			if (v[k].id != t.conns[i])
				continue;
			seen = true;
			if (strcmp(v[k].state, want))
				fail_msg("ISOLATION HOLE (b): A's connection %" PRIu64 " is '%s' after "
					 "B's attack, was '%s'", t.conns[i], v[k].state, want);
		}
		if (!seen)
			fail_msg("ISOLATION HOLE (b): A's connection %" PRIu64 " is gone after B's "
				 "attack", t.conns[i]);
	}
	/* A's connections carry intact data; its listener accepts for A, in order. */
	data_both_ways(&cli, c1, &srv, x1, 5, &pos);
	data_both_ways(&cli, c2, &srv, x2, 7, &pos);
	xq = agent_fd(&srv, "accept %d", l);
	data_both_ways(&cli2, cq, &srv, xq, 9, &pos);
	agent_ok(&cli, "send %d 1000 11 0", pr_w);
	agent_ok(&cli, "recv %d 1000 11 0", pr_r);
	data_both_ways(&cli, sp0, &cli, sp1, 13, &pos);
	c4 = agent_fd(&cli, "tcp-connect 127.0.0.1 %u", port);
	x4 = agent_fd(&srv, "accept %d", l);
	data_both_ways(&cli, c4, &srv, x4, 15, &pos);
	agent_ok(&cli, "pipe");		/* a request of A's own (PAIR): the count does move */
	after[1] = proc_must(m, cli.pid);
	assert_true(after[1].requests > before[1].requests);

	/* The positive control: the same requests from user A are obeyed. */
	report_reset();
	t.conns[0] = v1.id;
	run_as(UID_A, a_forge_control, &t, "the control requests");
	if (rp->violations)
		fail_msg("control: %s", rp->text);
	assert_string_equal(conn_state(m, v1.id), "half-closed");

	agent_quit(&cli2);
	agent_quit(&cli);
	agent_quit(&srv);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- c) B cannot bind ports the config reserves for A ------------------------------- */

#define RES_LO		(PORT_BASE + 10)	/* reserved for user A by the config */
#define RES_HI		(PORT_BASE + 19)

/* The config's rules: RES_LO..RES_HI are user A's (the case's mode set first). */
static const char *res_rules(struct t_state *s)
{
	static char rules[160];

	mode_shared = s->mon.mode == IPCD_QMODE_SHARED;
	snprintf(rules, sizeof(rules), "bind_rule = allow uid=%u ports=%u-%u\n"
		 "bind_rule = deny uid=* ports=%u-%u\n", UID_A, RES_LO, RES_HI, RES_LO, RES_HI);
	return rules;
}

/* "port":N as ipcdctl --json shows a bind. */
static const char *port_key(unsigned int port)
{
	static char key[24];

	snprintf(key, sizeof(key), "\"port\":%u", port);
	return key;
}

/* BIND @host (an IPv4 or IPv6 literal) @port with IPCD_BIND_* @flags: the status, *@id. */
static int32_t raw_bind(struct ipcd_attach *a, const char *host, uint16_t port, uint32_t flags,
			uint32_t *id)
{
	struct ipcd_bind_req b = { .port = port, .flags = flags };
	struct ipcd_bind_resp out;
	struct ipcd_resp resp;
	uint8_t v4[4];
	int32_t st;

	if (inet_pton(AF_INET, host, v4) == 1) {
		b.addr[10] = b.addr[11] = 0xff;
		memcpy(b.addr + 12, v4, 4);
	} else if (inet_pton(AF_INET6, host, b.addr) != 1) {
		report_add("bad address %s", host);
		_exit(122);
	}
	st = raw_call(a, IPCD_OP_BIND, &b, sizeof(b), &resp);
	if (st == 0 && id) {
		memcpy(&out, resp.body, sizeof(out));
		*id = out.id;
	}
	return st;
}

static int32_t raw_listen(struct ipcd_attach *a, uint32_t id)
{
	struct ipcd_listen_req l = { .id = id, .backlog = 16 };
	struct ipcd_ctl_msg msg;
	int fds[IPCD_CTL_CONN_NFDS];
	int32_t st = raw_call(a, IPCD_OP_LISTEN, &l, sizeof(l), NULL);

	if (st == 0 && raw_msg(a, IPCD_CTL_LISTEN_FD, &msg, fds))
		close(fds[0]);
	return st;
}

static void b_bind_reserved(void *arg)
{
	static const char *const hosts[] = { "127.0.0.1", "0.0.0.0", "::1", "::", "127.0.0.2" };
	static const uint32_t flags[] = { 0, IPCD_BIND_REUSEADDR, IPCD_BIND_REUSEPORT,
					  IPCD_BIND_REUSEADDR | IPCD_BIND_REUSEPORT,
					  IPCD_BIND_V6ONLY };
	const struct targets *t = arg;
	const uint16_t ports[] = { RES_LO, RES_LO + 1, RES_HI };
	struct ipcd_attach a;
	unsigned int h, f, p;

	raw_attach(t->m, "iso-b-bind", &a);
	for (p = 0; p < IPCD_ARRAY_SIZE(ports); p++)
		for (h = 0; h < IPCD_ARRAY_SIZE(hosts); h++)
			for (f = 0; f < IPCD_ARRAY_SIZE(flags); f++) {
				int32_t st = raw_bind(&a, hosts[h], ports[p], flags[f], NULL);

				if (flags[f] == IPCD_BIND_V6ONLY && !strchr(hosts[h], ':'))
					continue;	/* V6ONLY of an IPv4 address: EINVAL */
				if (st != -EACCES)
					violation("BIND %s port %u flags %#x by B: %d, expected -EACCES "
						  "(reserved for A)", hosts[h], ports[p], flags[f], st);
			}
	ipcd_detach(&a);
}

/* The control: user A's raw BIND of the same ports works. */
static void a_bind_reserved(void *arg)
{
	const struct targets *t = arg;
	struct ipcd_unbind_req u = { 0 };
	struct ipcd_attach a;
	int32_t st;

	raw_attach(t->m, "iso-a-bind", &a);
	st = raw_bind(&a, "127.0.0.1", RES_HI, 0, &u.id);
	if (st)
		violation("control: BIND port %u by user A: %d", RES_HI, st);
	else if ((st = raw_call(&a, IPCD_OP_UNBIND, &u, sizeof(u), NULL)))
		violation("control: UNBIND by user A: %d", st);
	ipcd_detach(&a);
}

/*
 * c1, c3: B's raw BIND of A's reserved ports is refused (every address and
 * flag); A's preloaded program binds and listens there, accelerated; while
 * it does, B cannot take the port through the kernel either (its kernel
 * socket holds it).
 */
static void test_ports_reserved(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct targets t = { .m = m };
	struct agent srv, cli, bk, bp;
	const char *r;
	int l, c, x;
	uint64_t pos = 0;

	mon_start(s, res_rules(s));
	report_reset();
	run_as(UID_B, b_bind_reserved, &t, "BIND of reserved ports");
	if (rp->violations)
		fail_msg("ISOLATION HOLE (c, raw BIND of reserved ports):\n%s", rp->text);
	run_as(UID_A, a_bind_reserved, &t, "the BIND control");
	if (rp->violations)
		fail_msg("%s", rp->text);

	/* A binds its reserved port, accelerated. */
	agent_start(&srv, m, "a-server", UID_A, true);
	agent_start(&cli, m, "a-client", UID_A, true);
	l = agent_fd(&srv, "tcp-bind 127.0.0.1 %u", RES_LO);
	agent_ok(&srv, "listen %d", l);
	if (t_ctl(m, &ctl_out, true, "listeners") || !strstr(ctl_out.out, port_key(RES_LO)))
		fail_msg("A's listener on its reserved port %u is not accelerated: %s", RES_LO,
			 ctl_out.out);
	c = agent_fd(&cli, "tcp-connect 127.0.0.1 %u", RES_LO);
	x = agent_fd(&srv, "accept %d", l);
	data_both_ways(&cli, c, &srv, x, 1, &pos);
	conn_of(m, cli.pid, srv.pid, "tcp");

	/*
	 * B without the preload: the kernel says A holds the port. With it: the
	 * config's rule says B may not bind it at all (EACCES, which the kernel
	 * too gives before EADDRINUSE for a port the caller may not bind).
	 */
	agent_start(&bk, m, "b-kernel", UID_B, false);
	agent_start(&bp, m, "b-preload", UID_B, true);
	{
		static const char *const binds[][2] = {
			{ "127.0.0.1", "" }, { "127.0.0.1", " reuse" }, { "0.0.0.0", "" },
			{ "0.0.0.0", " reuse" }, { "::", "" },
		};
		unsigned int i;
		char b[40];

		for (i = 0; i < IPCD_ARRAY_SIZE(binds); i++) {
			snprintf(b, sizeof(b), "%s %u%s", binds[i][0], RES_LO, binds[i][1]);
			r = agent_cmd(&bk, "tcp-bind %s", b);
			if (strcmp(r, "err bind EADDRINUSE"))
				fail_msg("B's kernel bind %s while A listens there: '%s', expected "
					 "EADDRINUSE", b, r);
			r = agent_cmd(&bp, "tcp-bind %s", b);
			if (strcmp(r, "err bind EACCES"))
				fail_msg("B's preloaded bind %s while A listens there: '%s', expected "
					 "EACCES", b, r);
		}
	}
	/* The positive control: B binds a port nobody reserved, in the kernel. */
	agent_ok(&bk, "tcp-bind 127.0.0.1 %u", PORT_BASE + 30);
	/*
	 * Documented (the design limit of c2): another address of the loopback
	 * net is another socket address for the kernel, which knows nothing of
	 * bind_rule; the preload's listen() there stays the kernel's when the
	 * monitor refuses the bind, and connects to that address reach it.
	 */
	r = agent_cmd(&bp, "tcp-bind 127.0.0.2 %u", RES_LO);
	fprintf(stderr, "[c] B's preloaded bind of 127.0.0.2:%u (A listens on 127.0.0.1:%u): '%s'",
		RES_LO, RES_LO, r);
	if (!strncmp(r, "ok", 2))
		fprintf(stderr, "; its listen: '%s'", agent_cmd(&bp, "listen %d", atoi(r + 3)));
	fprintf(stderr, "\n");
	if (t_ctl(m, &ctl_out, true, "listeners") ||
	    t_count_str(ctl_out.out, port_key(RES_LO)) != 1)
		fail_msg("ISOLATION HOLE (c): a second accelerated listener on A's reserved port "
			 "%u: %s", RES_LO, ctl_out.out);
	data_both_ways(&cli, c, &srv, x, 3, &pos);

	agent_quit(&bp);
	agent_quit(&bk);
	agent_quit(&cli);
	agent_quit(&srv);
	t_mon_stop(m);
	T_PASSED(s);
}

/*
 * c2: B's preloaded program binds a port the config reserves for A while A
 * does not listen there. The preload's bind() is the kernel's only; the
 * monitor hears of the socket at listen(), refuses it, and the listener
 * then stays the kernel's: B holds A's reserved port. Expected (issue #8):
 * bind() fails with EACCES, and A's own bind then succeeds.
 */
static void test_ports_reserved_preload(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct agent bp, srv, cli;
	char b_bind[64] = "", b_listen[64] = "-", a_bind[64] = "", reached[96] = "-";
	const char *r;

	mon_start(s, res_rules(s));
	agent_start(&bp, m, "b-preload", UID_B, true);
	agent_start(&srv, m, "a-server", UID_A, true);
	agent_start(&cli, m, "a-client", UID_A, true);
	snprintf(b_bind, sizeof(b_bind), "%s", agent_cmd(&bp, "tcp-bind 127.0.0.1 %u", RES_LO + 1));
	if (!strncmp(b_bind, "ok", 2)) {
		int bl = atoi(b_bind + 3);

		snprintf(b_listen, sizeof(b_listen), "%s", agent_cmd(&bp, "listen %d", bl));
		if (!strcmp(b_listen, "ok")) {
			/* where does A's own preloaded client end up? */
			r = agent_cmd(&cli, "tcp-connect 127.0.0.1 %u", RES_LO + 1);
			if (!strncmp(r, "ok", 2)) {
				int c = atoi(r + 3);

				agent_ok(&cli, "sendstr %d for-A-only", c);
				r = agent_cmd(&bp, "accept %d", bl);
				if (!strncmp(r, "ok", 2))
					snprintf(reached, sizeof(reached), "yes, B accepted it and "
						 "read: %s", agent_cmd(&bp, "expect %d for-A-only",
									atoi(r + 3)));
				else
					snprintf(reached, sizeof(reached), "no (%s)", r);
			}
		}
	}
	r = agent_cmd(&srv, "tcp-bind 127.0.0.1 %u", RES_LO + 1);
	snprintf(a_bind, sizeof(a_bind), "%s", r);
	if (!strncmp(r, "ok", 2))
		snprintf(a_bind, sizeof(a_bind), "%s, listen %s", r,
			 agent_cmd(&srv, "listen %d", atoi(r + 3)));
	if (strcmp(b_bind, "err bind EACCES") || strncmp(a_bind, "ok", 2))
		fail_msg("ISOLATION HOLE (c2, reserved port through the preload): B's preloaded "
			 "bind() of 127.0.0.1:%u, reserved for A by bind_rule: '%s' (expected 'err "
			 "bind EACCES'); B's listen(): '%s'; A's preloaded client connecting there "
			 "reached B: %s; A's own bind() afterwards: '%s' (expected ok)",
			 RES_LO + 1, b_bind, b_listen, reached, a_bind);
	agent_quit(&cli);
	agent_quit(&srv);
	agent_quit(&bp);
	t_mon_stop(m);
	T_PASSED(s);
}

/*
 * B's raw client: an accelerated listener on @t->port with no kernel socket
 * behind it. It waits for the parent (rp->word[0]), then ACCEPTs once: a
 * connection there came from someone who meant another listener.
 */
static void b_squat(void *arg)
{
	const struct targets *t = arg;
	struct ipcd_accept_req ac = { 0 };
	struct ipcd_attach a;
	struct ipcd_resp resp;
	struct ipcd_ctl_msg msg;
	int fds[IPCD_CTL_CONN_NFDS];
	int32_t st;

	raw_attach(t->m, "iso-b-squat", &a);
	st = raw_bind(&a, "127.0.0.1", t->port, 0, &ac.id);
	if (st == 0)
		st = raw_listen(&a, ac.id);
	rp->word[1] = (uint64_t)(int64_t)st;
	ipcd_store_release(&rp->done, 1);
	if (st)
		_exit(0);
	while (!ipcd_load_acquire(&rp->word[0]))
		t_sleep_ms(2);	/* the parent's hang guard ends us */
	st = raw_call(&a, IPCD_OP_ACCEPT, &ac, sizeof(ac), &resp);
	rp->word[2] = (uint64_t)(int64_t)st;
	if (st == 0) {
		if (!raw_msg(&a, IPCD_CTL_CONN_FD, &msg, fds)) {
			violation("B's ACCEPT answered 0 without a region");
		} else {
			close_fds(&fds[1], 2);
			if (region_has_secret(fds[0]))
				violation("B accepted A's client's connection and read A's secret "
					  "from it");
			else
				violation("B accepted a connection of A's client");
		}
	}
	ipcd_store_release(&rp->done, 2);
	ipcd_detach(&a);
}

/*
 * One round of c4: B squats @port in the monitor first, then A's server
 * (@preload_srv: under the preload, or a kernel one) listens there and A's
 * preloaded client connects and sends the secret. Returns the failure text,
 * or NULL if A's client reached A's server and B got nothing.
 */
static const char *hijack_round(struct t_state *s, uint16_t port, bool preload_srv)
{
	static char why[1024];
	struct t_mon *m = &s->mon;
	struct targets t = { .m = m, .port = port };
	struct agent srv, cli;
	char listeners[512];
	pid_t pid;
	int l, c, code;
	const char *r;

	report_reset();
	pid = t_fork(CHILD_ALARM_S);
	if (pid == 0) {
		child_become(UID_B);
		b_squat(&t);
		_exit(0);
	}
	if (!t_wait_at_least(&rp->done, 1, T_WAIT_MS))
		fail_msg("B's squatter did not start: %s", rp->text);
	fprintf(stderr, "[c4] B's raw BIND+LISTEN of 127.0.0.1:%u (no kernel socket): %d\n", port,
		(int)(int64_t)rp->word[1]);

	agent_start(&srv, m, preload_srv ? "a-server" : "a-server-kernel", UID_A, preload_srv);
	agent_start(&cli, m, "a-client", UID_A, true);
	l = agent_fd(&srv, "tcp-bind 127.0.0.1 %u", port);	/* the kernel port is free */
	agent_ok(&srv, "listen %d", l);
	t_ctl(m, &ctl_out, true, "listeners");
	snprintf(listeners, sizeof(listeners), "%.400s", ctl_out.out);
	c = agent_fd(&cli, "tcp-connect 127.0.0.1 %u", port);
	agent_ok(&cli, "sendstr %d %s-hijack", c, pr->secret);
	/* The monitor queued a connection it made before CONNECT's answer: B sees it now. */
	ipcd_store_release(&rp->word[0], 1);
	code = t_wait(pid, 2 * CHILD_ALARM_S * 1000);
	if (code)
		fail_msg("B's squatter exited %d: %s", code, rp->text);
	why[0] = '\0';
	if (rp->violations) {
		snprintf(why, sizeof(why), "B holds 127.0.0.1:%u in the monitor only (no kernel "
			 "socket); A's %s server then bound and listened there; A's preloaded "
			 "client's connect() went to B: %.300s (monitor listeners: %.400s)", port,
			 preload_srv ? "preloaded" : "kernel", rp->text, listeners);
	} else {
		r = agent_cmd(&srv, "accept %d", l);
		if (strncmp(r, "ok", 2))
			snprintf(why, sizeof(why), "A's server got no connection: %s", r);
		else
			agent_ok(&srv, "expect %d %s-hijack", atoi(r + 3), pr->secret);
	}
	agent_quit(&cli);
	agent_quit(&srv);
	return why[0] ? why : NULL;
}

/*
 * c4: ports nobody reserved. The monitor's port namespace is not the
 * kernel's: B's raw client can BIND and LISTEN an accelerated port without
 * holding it in the kernel, before A's server starts there. A's server's
 * kernel bind succeeds, its monitor BIND is refused (EADDRINUSE) and it
 * silently stays a kernel listener; A's preloaded clients' CONNECT then
 * reaches B. Expected: every connection of A's client reaches A's server.
 */
static void test_ports_hijack(void **state)
{
	struct t_state *s = *state;
	const char *why1, *why2;
	static char w1[1024];

	mon_start(s, NULL);
	new_secret();
	why1 = hijack_round(s, PORT_BASE + 40, true);
	if (why1)
		snprintf(w1, sizeof(w1), "%s", why1);
	why2 = hijack_round(s, PORT_BASE + 41, false);
	if (why1 || why2)
		fail_msg("ISOLATION HOLE (c4, port squatting in the monitor):\n"
			 "  preloaded server: %s\n  kernel server: %s", why1 ? w1 : "ok",
			 why2 ? why2 : "ok");
	t_mon_stop(&s->mon);
	T_PASSED(s);
}

/* ---- d) B cannot connect to A's AF_UNIX socket where the file forbids it ---------- */

#define USOCKS	4

/* unix.c name_key(): a pathname's (device, inode), or the netns and the abstract name. */
static uint64_t unix_key(const char *path)
{
	uint64_t h = IPCD_FNV1A_INIT;
	struct stat st;

	if (path[0] == '@') {
		char name[108] = "";
		uint64_t ns;

		assert_int_equal(stat("/proc/self/ns/net", &st), 0);
		ns = st.st_ino;
		snprintf(name + 1, sizeof(name) - 1, "%s", path + 1);
		h = ipcd_fnv1a(h, "a", 1);
		h = ipcd_fnv1a(h, &ns, sizeof(ns));
		return ipcd_fnv1a(h, name, strlen(path));
	}
	assert_int_equal(stat(path, &st), 0);
	{
		uint64_t dev = st.st_dev, ino = st.st_ino;

		h = ipcd_fnv1a(h, "p", 1);
		h = ipcd_fnv1a(h, &dev, sizeof(dev));
		return ipcd_fnv1a(h, &ino, sizeof(ino));
	}
}

/* B's raw requests on A's names, then a UCONNECT of each (printed: what B gets). */
static void b_unix_requests(void *arg)
{
	const struct targets *t = arg;
	struct ipcd_attach a;
	unsigned int i;

	raw_attach(t->m, "iso-b-unix", &a);
	forge_unix_requests(&a, t);
	for (i = 0; i < t->n_keys; i++) {
		struct ipcd_uconnect_req u = { .key = t->keys[i], .fd = -1 };
		struct ipcd_uconnect_resp out;
		struct ipcd_resp resp;
		struct ipcd_ctl_msg msg;
		int fds[IPCD_CTL_CONN_NFDS];
		int32_t st = raw_call(&a, IPCD_OP_UCONNECT, &u, sizeof(u), &resp);

		if (st) {
			report_add("UCONNECT to A's name %u: %d", i, st);
			continue;
		}
		memcpy(&out, resp.body, sizeof(out));
		report_add("UCONNECT to A's name %u: 0, connection %" PRIu64 " waiting for a claim "
			   "only a kernel connection to A's socket can make", i, out.conn_id);
		if (!raw_msg(&a, IPCD_CTL_CONN_FD, &msg, fds)) {
			violation("UCONNECT answered 0 without a region");
			continue;
		}
		close_fds(&fds[1], 2);
		if (region_has_secret(fds[0]))
			violation("B's UCONNECT region holds A's secret");
	}
	ipcd_detach(&a);
}

static void test_unix(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct targets t = { .m = m };
	struct agent srv, cli, bk, bp;
	char dir[128], priv[160], path[USOCKS][192], kern[USOCKS][64];
	static const char *const name[USOCKS] = { "s700", "s777", "priv/s777", "abstract" };
	static const char *const mode[USOCKS] = { "700", "777", "777", "0" };
	static const bool b_may[USOCKS] = { false, true, false, true };
	int l[USOCKS];
	long long before;
	unsigned int i;
	const char *r;

	mon_start(s, NULL);
	new_secret();
	snprintf(dir, sizeof(dir), "%s/u", m->dir);
	snprintf(priv, sizeof(priv), "%s/priv", dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mkdir(priv, 0700), 0);
	assert_int_equal(chown(dir, UID_A, UID_A), 0);
	assert_int_equal(chown(priv, UID_A, UID_A), 0);
	for (i = 0; i < USOCKS; i++) {
		if (i == 3)
			snprintf(path[i], sizeof(path[i]), "@ipcd-iso-%d-%d", (int)getpid(),
				 (int)m->mode);
		else
			snprintf(path[i], sizeof(path[i]), "%s/%s", dir, name[i]);
	}

	agent_start(&srv, m, "a-server", UID_A, true);
	agent_start(&cli, m, "a-client", UID_A, true);
	agent_start(&bk, m, "b-kernel", UID_B, false);
	agent_start(&bp, m, "b-preload", UID_B, true);
	for (i = 0; i < USOCKS; i++) {
		l[i] = agent_fd(&srv, "unix-listen %s %s", path[i], mode[i]);
		t.keys[t.n_keys++] = unix_key(path[i]);
	}

	for (i = 0; i < USOCKS; i++) {
		/* The kernel's answer to B, without the preload: the oracle. */
		r = agent_cmd(&bk, "unix-connect %s", path[i]);
		snprintf(kern[i], sizeof(kern[i]), "%s", r);
		if (b_may[i] != !strncmp(r, "ok", 2) ||
		    (!b_may[i] && strcmp(r, "err connect EACCES")))
			fail_msg("the kernel oracle: B's connect to %s (%s): '%s'", name[i], path[i], r);
		if (b_may[i]) {
			int x = agent_fd(&srv, "accept %d", l[i]);

			agent_ok(&bk, "sendstr %d kernel-b", atoi(r + 3));
			agent_ok(&srv, "expect %d kernel-b", x);
			agent_ok(&srv, "close %d", x);
			agent_ok(&bk, "close %d", atoi(r + 3));
		}
		/* B under the preload: exactly the kernel's answer, and where allowed, data. */
		r = agent_cmd(&bp, "unix-connect %s", path[i]);
		if (strncmp(r, "ok", 2) ? strcmp(r, kern[i]) : strncmp(kern[i], "ok", 2))
			fail_msg("ISOLATION HOLE (d, %s): B's preloaded connect to A's socket: '%s', "
				 "the kernel's answer without the preload: '%s'", name[i], r, kern[i]);
		if (b_may[i]) {
			int c = atoi(r + 3), x = agent_fd(&srv, "accept %d", l[i]);

			agent_ok(&bp, "sendstr %d from-b", c);
			agent_ok(&srv, "expect %d from-b", x);
			agent_ok(&srv, "sendstr %d from-a", x);
			agent_ok(&bp, "expect %d from-a", c);
			r = agent_ok(&srv, "peercred %d", x);
			if (atoi(r) != bp.pid)
				fail_msg("A's accepted end names pid %d, B's connector is %d", atoi(r),
					 (int)bp.pid);
		}
	}
	/* A's listeners accept nothing B was refused: nothing waits. */
	for (i = 0; i < USOCKS; i++)
		if (!b_may[i] && strcmp(r = agent_cmd(&srv, "accept %d 200", l[i]),
					 "err accept ETIMEDOUT"))
			fail_msg("ISOLATION HOLE (d, %s): A's listener accepted after B's refused "
				 "connect: '%s'", name[i], r);

	/*
	 * A's own client on each name, accelerated: the secret goes through
	 * regions that are then closed (a region handed to B later must not
	 * carry it).
	 */
	before = t_ctl_num(m, "counters", "unix_connected");
	for (i = 0; i < USOCKS; i++) {
		int c = agent_fd(&cli, "unix-connect %s", path[i]);
		int x = agent_fd(&srv, "accept %d", l[i]);

		agent_ok(&cli, "sendstr %d %s-a2b", c, pr->secret);
		agent_ok(&srv, "expect %d %s-a2b", x, pr->secret);
		agent_ok(&srv, "sendstr %d %s-b2a", x, pr->secret);
		agent_ok(&cli, "expect %d %s-b2a", c, pr->secret);
		agent_ok(&cli, "close %d", c);
		agent_ok(&srv, "close %d", x);
	}
	if (t_ctl_num(m, "counters", "unix_connected") < before + USOCKS)
		fail_msg("control: A's own connections to its names were not accelerated");

	/* B's raw requests on A's registered names. */
	report_reset();
	run_as(UID_B, b_unix_requests, &t, "requests on A's AF_UNIX names");
	fprintf(stderr, "[d] %s", rp->text);
	if (rp->violations)
		fail_msg("ISOLATION HOLE (d, requests on A's names):\n%s", rp->text);
	for (i = 0; i < USOCKS; i++)
		if (!b_may[i] && strcmp(r = agent_cmd(&srv, "accept %d 200", l[i]),
					 "err accept ETIMEDOUT"))
			fail_msg("ISOLATION HOLE (d, %s): A's listener accepted after B's UCONNECT: "
				 "'%s'", name[i], r);

	/* A's names are still A's: its client connects everywhere, accelerated. */
	before = t_ctl_num(m, "counters", "unix_connected");
	for (i = 0; i < USOCKS; i++) {
		int c = agent_fd(&cli, "unix-connect %s", path[i]), x = agent_fd(&srv, "accept %d",
										 l[i]);
		uint64_t pos = 0;

		data_both_ways(&cli, c, &srv, x, 20 + 2 * i, &pos);
	}
	if (t_ctl_num(m, "counters", "unix_connected") < before + USOCKS)
		fail_msg("control: A's own connections to its names were not accelerated (%lld, "
			 "%lld before): the names are not registered, or B took them over",
			 t_ctl_num(m, "counters", "unix_connected"), before);
	agent_quit(&bp);
	agent_quit(&bk);
	agent_quit(&cli);
	agent_quit(&srv);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- e) anything else ---------------------------------------------------------- */

/* ipcdctl -s SOCK --json @cmd as @uid, its stdout in @out (static). Returns the exit code. */
static int ctl_as(uid_t uid, const struct t_mon *m, const char *cmd, const char **out)
{
	static char buf[1 << 16];
	char path[192];
	ssize_t n;
	pid_t pid;
	int fd, code;

	snprintf(path, sizeof(path), "%s/ctl-%u.out", m->dir, uid);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	pid = t_fork(CHILD_ALARM_S);
	if (pid == 0) {
		char *argv[] = { (char *)IPCDCTL_BIN, (char *)"-s", (char *)m->sock,
				 (char *)"--json", (char *)cmd, NULL };

		if (dup2(fd, 1) < 0)
			_exit(126);
		child_become(uid);
		execv(argv[0], argv);
		_exit(127);
	}
	code = t_wait(pid, T_WAIT_MS);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	*out = buf;
	return code;
}

struct kill_in {
	pid_t mon;
	pid_t a_pid;
};

/* Signals and ptrace from B at the monitor and at A's processes: all EPERM. */
static void b_signals(void *arg)
{
	static const int sigs[] = { 0, SIGKILL, SIGSTOP, SIGTERM, SIGHUP, SIGUSR1 };
	const struct kill_in *k = arg;
	pid_t targets[2] = { k->mon, k->a_pid };
	unsigned int i, j;

	for (j = 0; j < 2; j++) {
		for (i = 0; i < IPCD_ARRAY_SIZE(sigs); i++)
			if (kill(targets[j], sigs[i]) == 0 || errno != EPERM)
				violation("kill(%s %d, %d) by B: %s", j ? "A's process" : "the monitor",
					  (int)targets[j], sigs[i], strerror(errno));
		if (syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, targets[j], 0, 0) == 0 ||
		    errno != EPERM)
			violation("ptrace(ATTACH, %d) by B: %s", (int)targets[j], strerror(errno));
	}
}

/* The control: a process of A may signal A's processes (signal 0: just the check). */
static void a_signal_control(void *arg)
{
	const struct kill_in *k = arg;

	if (kill(k->a_pid, 0))
		violation("control: kill(A's process, 0) by user A: %s", strerror(errno));
}

/*
 * e1: B cannot kill, stop or trace the monitor or A's processes, and
 * ipcdctl shows B none of A's processes, binds or connections (root and A
 * see them). What B does see (status and counters: host-wide totals) is
 * printed for the report.
 */
static void test_signals_and_views(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	uint16_t port = PORT_BASE + 50;
	struct agent srv, cli;
	struct kill_in k;
	char pid_key[32], apid_key[32];
	static const char *const views[] = { "processes", "listeners", "connections" };
	const char *out;
	unsigned int i;
	int l, c, x;
	uint64_t pos = 0;

	mon_start(s, NULL);
	agent_start(&srv, m, "a-server", UID_A, true);
	agent_start(&cli, m, "a-client", UID_A, true);
	l = agent_fd(&srv, "tcp-bind 127.0.0.1 %u", port);
	agent_ok(&srv, "listen %d", l);
	c = agent_fd(&cli, "tcp-connect 127.0.0.1 %u", port);
	x = agent_fd(&srv, "accept %d", l);
	data_both_ways(&cli, c, &srv, x, 1, &pos);

	k.mon = m->pid;
	k.a_pid = srv.pid;
	report_reset();
	run_as(UID_B, b_signals, &k, "signals and ptrace");
	if (rp->violations)
		fail_msg("ISOLATION HOLE (e, signals):\n%s", rp->text);
	run_as(UID_A, a_signal_control, &k, "the signal control");
	if (rp->violations)
		fail_msg("%s", rp->text);
	assert_int_equal(t_try_wait(m->pid), T_STILL_RUNNING);

	snprintf(pid_key, sizeof(pid_key), "\"pid\":%d", (int)srv.pid);
	snprintf(apid_key, sizeof(apid_key), "\"a_pid\":%d", (int)cli.pid);
	for (i = 0; i < IPCD_ARRAY_SIZE(views); i++) {
		const char *key = i == 2 ? apid_key : i == 1 ? port_key(port) : pid_key;

		/* the controls: root and user A see A's objects */
		assert_int_equal(ctl_as(0, m, views[i], &out), 0);
		if (!strstr(out, key))
			fail_msg("control: root's ipcdctl %s lacks %s: %s", views[i], key, out);
		assert_int_equal(ctl_as(UID_A, m, views[i], &out), 0);
		if (!strstr(out, key))
			fail_msg("control: user A's ipcdctl %s lacks %s: %s", views[i], key, out);
		assert_int_equal(ctl_as(UID_B, m, views[i], &out), 0);
		if (strstr(out, key) || strstr(out, "\"uid\":61001"))
			fail_msg("ISOLATION HOLE (e, ipcdctl %s): user B sees A's objects: %s",
				 views[i], out);
	}
	assert_int_equal(ctl_as(UID_B, m, "status", &out), 0);
	fprintf(stderr, "[e] user B's ipcdctl status: %.300s\n", out);
	data_both_ways(&cli, c, &srv, x, 3, &pos);
	agent_quit(&cli);
	agent_quit(&srv);
	t_mon_stop(m);
	T_PASSED(s);
}

/* Wait (bounded) for the parent to set rp->word[0] to at least @v. */
static void child_wait_parent(uint64_t v)
{
	uint64_t deadline = ipcd_deadline((int64_t)T_WAIT_MS * T_NSEC_PER_MSEC);

	while (ipcd_load_acquire(&rp->word[0]) < v) {
		if (ipcd_remaining(deadline) == 0) {
			report_add("the parent never came (step %" PRIu64 ")", v);
			_exit(120);
		}
		t_sleep_ms(2);
	}
}

/*
 * B connects to A's listener (anyone may: TCP has no permissions) and so
 * gets a lane to it. Once A accepted that first connection, B asks for a
 * kit, writes the id of A's connection @t->conns[0] into the kit's region
 * (its conn_ctl is the connector's to write, as its rings are) and sends
 * it down the lane naming that id. A accepts it as connection @conns[0]:
 * A's CLOSE of it then names A's other connection.
 */
static void b_kit_forge(void *arg)
{
	const struct targets *t = arg;
	struct ipcd_connect_req c = { .port = t->port };
	struct ipcd_kits_resp kr;
	struct ipcd_attach a;
	struct ipcd_ctl_msg lane, msg;
	struct ipcd_resp resp;
	struct ipcd_region reg;
	struct ipcd_conn_ctl *ctl;
	int lfds[IPCD_CTL_CONN_NFDS], fds[IPCD_CTL_CONN_NFDS], dupfd, st, tries;

	raw_attach(t->m, "iso-b-kits", &a);
	fill_loopback(c.addr);
	st = raw_call(&a, IPCD_OP_CONNECT, &c, sizeof(c), &resp);
	if (st || !raw_msg(&a, IPCD_CTL_LANE_FD, &lane, lfds) ||
	    !raw_msg(&a, IPCD_CTL_CONN_FD, &msg, fds)) {
		violation("B's CONNECT to A's listener: %d, or no lane: nothing to forge with", st);
		return;
	}
	close_fds(fds, IPCD_CTL_CONN_NFDS);
	ipcd_store_release(&rp->done, 1);
	child_wait_parent(1);		/* A accepted: the lane's other end is A's */

	for (tries = 0; tries < 1000; tries++) {
		struct ipcd_kits_req k = { .lane_id = (uint32_t)lane.conn_id, .count = 1 };

		st = raw_call(&a, IPCD_OP_KITS, &k, sizeof(k), &resp);
		if (st != -EAGAIN)
			break;
		t_sleep_ms(2);
	}
	if (st || !raw_msg(&a, IPCD_CTL_CONN_FD, &msg, fds)) {
		violation("KITS on B's own lane: %d", st);
		return;
	}
	memcpy(&kr, resp.body, sizeof(kr));
	dupfd = dup(fds[IPCD_CTL_CONN_FD_REGION]);
	if (dupfd < 0 || ipcd_region_map(dupfd, IPCD_REGION_CONN, &reg) ||
	    !(ctl = ipcd_region_area(&reg, IPCD_AREA_CONN_CTL, NULL))) {
		violation("B cannot map its own kit");
		return;
	}
	rp->word[3] = msg.conn_id;
	ipcd_store_relaxed(&ctl->conn_id, t->conns[0]);	/* the forgery */
	{
		struct ipcd_lane_msg lm = {
			.magic = IPCD_LANE_MAGIC,
			.seq = kr.first_seq,
			.conn_id = t->conns[0],
			.region_size = msg.region_size,
		};
		int send_fds[IPCD_CTL_CONN_NFDS] = {
			fds[IPCD_CTL_CONN_FD_REGION], fds[IPCD_CTL_CONN_FD_PEER],
			fds[IPCD_CTL_CONN_FD_SELF],
		};
		union {
			char buf[CMSG_SPACE(sizeof(send_fds))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { .iov_base = &lm, .iov_len = sizeof(lm) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
				     .msg_controllen = sizeof(u.buf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(send_fds));
		memcpy(CMSG_DATA(cm), send_fds, sizeof(send_fds));
		if (sendmsg(lfds[0], &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(lm))
			violation("sending the kit down the lane: %s", strerror(errno));
	}
	ipcd_store_release(&rp->done, 2);
	child_wait_parent(2);		/* A accepted the kit and closed it */
	ipcd_region_close(&reg);
	ipcd_detach(&a);
}

/*
 * e2: a lane kit comes from the connecting process, which can write the
 * connection id in it (docs/architecture.md, "Lanes", Trust: a known gap
 * issue #8 is to close). B connects to A's listener, gets a lane, and
 * sends a kit that names A's connection X. A's accept takes it; A's close
 * of it must not close X's end in the monitor's records.
 */
static void test_kit_forgery(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	uint16_t port = PORT_BASE + 60;
	struct targets t = { .m = m, .port = port };
	struct agent srv, cli;
	struct conn_view x;
	const char *after;
	char r[64];
	int l, c, xa, bx, fx, code;
	uint64_t pos = 0;
	pid_t pid;

	mon_start(s, NULL);
	agent_start(&srv, m, "a-server", UID_A, true);
	agent_start(&cli, m, "a-client", UID_A, true);
	l = agent_fd(&srv, "tcp-bind 127.0.0.1 %u", port);
	agent_ok(&srv, "listen %d", l);
	c = agent_fd(&cli, "tcp-connect 127.0.0.1 %u", port);
	xa = agent_fd(&srv, "accept %d", l);
	data_both_ways(&cli, c, &srv, xa, 1, &pos);
	x = conn_of(m, cli.pid, srv.pid, "tcp");
	assert_string_equal(x.state, "established");
	target_conn(&t, x.id);

	report_reset();
	pid = t_fork(CHILD_ALARM_S);
	if (pid == 0) {
		child_become(UID_B);
		b_kit_forge(&t);
		_exit(0);
	}
	if (!t_wait_at_least(&rp->done, 1, T_WAIT_MS))
		fail_msg("B's connector did not connect: %s", rp->text);
	bx = agent_fd(&srv, "accept %d", l);		/* B's first connection, and its lane */
	ipcd_store_release(&rp->word[0], 1);
	if (!t_wait_at_least(&rp->done, 2, T_WAIT_MS))
		fail_msg("B did not send its kit: %s", rp->text);
	/* B's kit is in the lane already: a product that refuses it leaves nothing to accept */
	snprintf(r, sizeof(r), "%s", agent_cmd(&srv, "accept %d 5000", l));
	fprintf(stderr, "[e2] A's accept of B's kit %" PRIu64 " that names A's connection %"
		PRIu64 ": '%s'\n", rp->word[3], x.id, r);
	if (!strncmp(r, "ok", 2)) {
		fx = atoi(r + 3);
		agent_ok(&srv, "close %d", fx);
	}
	agent_ok(&srv, "close %d", bx);
	ipcd_store_release(&rp->word[0], 2);
	code = t_wait(pid, 2 * CHILD_ALARM_S * 1000);
	if (code || rp->violations)
		fail_msg("B's kit forger: exit %d: %s", code, rp->text);
	/*
	 * A's CLOSE is posted lazily; a request A waits for (PAIR) is served
	 * after it, in the order of A's ring.
	 */
	agent_ok(&srv, "pipe");
	after = conn_state(m, x.id);
	if (strcmp(after, "established"))
		fail_msg("ISOLATION HOLE (e2, forged lane kit): B's kit named A's connection %"
			 PRIu64 "; A accepted it ('%s') and closed it, and the monitor now has A's "
			 "connection %" PRIu64 " (still open at both ends) as '%s'", x.id, r, x.id,
			 after[0] ? after : "gone");
	data_both_ways(&cli, c, &srv, xa, 3, &pos);
	agent_quit(&cli);
	agent_quit(&srv);
	t_mon_stop(m);
	T_PASSED(s);
}

/* The global region's control block, as a registered process maps it (rp->word[4..6]). */
static void global_read(void *arg)
{
	const struct targets *t = arg;
	struct ipcd_attach a;

	raw_attach(t->m, "iso-observer", &a);
	rp->word[4] = ipcd_load_relaxed(&a.gctl->cluster_up);
	rp->word[5] = ipcd_load_relaxed(&(&a.gctl->cluster_up)[1]);	/* 3.6: limit_action */
	rp->word[6] = ipcd_load_relaxed(&a.gctl->monitor_pid);
	ipcd_detach(&a);
}

/*
 * B writes every word of the global region's control block (written by the
 * monitor only, read by every library) through its own mapping of it: the
 * region is mapped read-write by every client (shared mode: its doorbell
 * queue lives in the same memfd). 1 in every word from cluster_up to the
 * heartbeat's line (ABI 3.6 put limit_action there: IPCD_LIMIT_ERROR), a
 * wrong queue mode, pid and start, a stopped heartbeat.
 */
static void b_global_write(void *arg)
{
	const struct targets *t = arg;
	struct ipcd_attach a;
	uint32_t *w;
	size_t i, n;

	raw_attach(t->m, "iso-b-global", &a);
	w = &a.gctl->cluster_up;
	n = (offsetof(struct ipcd_global_ctl, heartbeat) -
	     offsetof(struct ipcd_global_ctl, cluster_up)) / sizeof(*w);
	for (i = 0; i < n; i++)
		ipcd_store_relaxed(&w[i], 1u);
	ipcd_store_relaxed(&a.gctl->queue_mode, a.gctl->queue_mode ^ 3u);
	ipcd_store_relaxed(&a.gctl->monitor_pid, 1u);
	ipcd_store_relaxed(&a.gctl->start_ns, 0);
	ipcd_store_relaxed(&a.gctl->heartbeat, 0);
	ipcd_detach(&a);
}

/*
 * e3: what the monitor tells A's libraries must not be B's to change. With
 * max_process_connections = 2 and limit_action = kernel, A's third pipe is
 * the kernel's (the control); after B rewrote the global region, A's next
 * one must still be, and A's new connections still accelerated.
 */
static void test_global_region(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct targets t = { .m = m };
	uint16_t port = PORT_BASE + 80;
	struct agent srv, cli;
	uint64_t w4, w5, pos = 0;
	char r[64];
	int l, c, x, p0, p1;

	mon_start(s, "max_process_connections = 2\nlimit_action = kernel\n");
	agent_start(&cli, m, "a-client", UID_A, true);
	agent_start(&srv, m, "a-server", UID_A, true);
	sscanf(agent_ok(&cli, "pipe"), "%d %d", &p0, &p1);
	agent_ok(&cli, "pipe");
	agent_ok(&cli, "pipe");		/* the control: past the limit, the kernel's pipe */
	report_reset();
	run_as(UID_A, global_read, &t, "reading the global region");
	w4 = rp->word[4];
	w5 = rp->word[5];
	assert_int_equal(rp->word[6], m->pid);		/* it is the monitor's region */

	run_as(UID_B, b_global_write, &t, "writing the global region");
	run_as(UID_A, global_read, &t, "reading the global region");
	fprintf(stderr, "[e3] the global region after B's writes: cluster_up %" PRIu64 " -> %"
		PRIu64 ", the next word (3.6: limit_action) %" PRIu64 " -> %" PRIu64 ", monitor_pid "
		"%d -> %" PRIu64 "\n", w4, rp->word[4], w5, rp->word[5], (int)m->pid, rp->word[6]);
	snprintf(r, sizeof(r), "%s", agent_cmd(&cli, "pipe"));
	if (strncmp(r, "ok", 2))
		fail_msg("ISOLATION HOLE (e3, global region): B rewrote the global region every "
			 "library maps (limit_action %" PRIu64 " -> %" PRIu64 "); A's next pipe() past "
			 "its limit (config: limit_action = kernel): '%s' (expected ok, a kernel pipe)",
			 w5, rp->word[5], r);
	/* A's new connections: still accelerated, data intact. */
	l = agent_fd(&srv, "tcp-bind 127.0.0.1 %u", port);
	agent_ok(&srv, "listen %d", l);
	agent_ok(&cli, "close %d", p0);	/* room under max_process_connections */
	agent_ok(&cli, "close %d", p1);
	c = agent_fd(&cli, "tcp-connect 127.0.0.1 %u", port);
	x = agent_fd(&srv, "accept %d", l);
	data_both_ways(&cli, c, &srv, x, 1, &pos);
	conn_of(m, cli.pid, srv.pid, "tcp");
	agent_quit(&cli);
	agent_quit(&srv);
	t_mon_stop(m);
	T_PASSED(s);
}

#define FLOOD_SOCKS	6000	/* beyond the control socket's backlog (somaxconn) */

/*
 * B's flood of the control socket: connections that never say hello, each
 * one replaced as soon as the monitor drops it, until the parent is done
 * (rp->word[0]). rp->word[1] counts connects, rp->done says it is at full
 * strength.
 */
static void b_flood(void *arg)
{
	const struct targets *t = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static struct pollfd p[FLOOD_SOCKS];
	struct rlimit rl;
	unsigned int i, n = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->m->sock);
	for (i = 0; i < FLOOD_SOCKS; i++)
		p[i].fd = -1;
	while (!ipcd_load_acquire(&rp->word[0])) {
		unsigned int open = 0;
		bool full = false;

		for (i = 0; i < FLOOD_SOCKS; i++) {
			if (p[i].fd >= 0 && p[i].revents & (POLLHUP | POLLERR | POLLIN | POLLRDHUP)) {
				close(p[i].fd);		/* dropped by the monitor: replace it */
				p[i].fd = -1;
			}
			p[i].revents = 0;
			if (p[i].fd < 0 && !full) {
				int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
						0);

				if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
					p[i].fd = fd;
					p[i].events = POLLRDHUP;
					n++;
				} else {
					if (fd >= 0)
						close(fd);
					full = true;	/* the backlog is full: later */
				}
			}
			open += p[i].fd >= 0;
		}
		rp->word[1] = n;
		if (open >= 4096)
			ipcd_store_release(&rp->done, 1);
		poll(p, FLOOD_SOCKS, 100);
	}
}

/*
 * e4: B floods the monitor's control socket with connections that never say
 * hello (anyone may connect: the socket is 0666). The monitor keeps at most
 * 64 of them for up to 1 s each and the rest wait in the kernel's backlog,
 * ahead of everyone else. A's newly started program registers at its first
 * socket(); it must not be held up for as long as B cares to flood.
 */
static void test_flood(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct targets t = { .m = m };
	uint16_t port = PORT_BASE + 70;
	struct agent srv, ctl;
	struct proc_view pv;
	const char *r;
	pid_t pid;
	int l, code;

	mon_start(s, NULL);
	/* The control: without the flood, A's program registers at its first socket(). */
	agent_start(&ctl, m, "a-control", UID_A, true);
	agent_fd(&ctl, "tcp-bind 127.0.0.1 %u", port + 1);
	proc_must(m, ctl.pid);
	report_reset();
	pid = t_fork(CHILD_ALARM_S);
	if (pid == 0) {
		child_become(UID_B);
		b_flood(&t);
		_exit(0);
	}
	if (!t_wait_at_least(&rp->done, 1, T_WAIT_MS))
		fail_msg("B's flood did not reach the backlog's size (%" PRIu64 " connects)",
			 rp->word[1]);
	agent_start(&srv, m, "a-server", UID_A, true);
	r = agent_try(&srv, T_WAIT_MS, "tcp-bind 127.0.0.1 %u", port);
	if (!r) {
		ipcd_store_release(&rp->word[0], 1);
		fail_msg("ISOLATION HOLE (e4, flood): while B floods the monitor's control socket "
			 "with connections that never say hello (%" PRIu64 " connects so far), A's "
			 "newly started program blocks in its first socket() (registration: a "
			 "blocking connect() and welcome) for more than %d ms", rp->word[1],
			 T_WAIT_MS);
	}
	l = atoi(agent_ok_(&srv, r));
	agent_ok(&srv, "listen %d", l);
	ipcd_store_release(&rp->word[0], 1);
	code = t_wait(pid, T_WAIT_MS);
	fprintf(stderr, "[e4] B's flood: %" PRIu64 " connects; A registered meanwhile\n",
		rp->word[1]);
	assert_int_equal(code, 0);
	if (!proc_of(m, srv.pid, &pv))
		fail_msg("ISOLATION HOLE (e4, flood): A's program did not register while B flooded "
			 "the control socket: it runs unaccelerated");
	agent_quit(&srv);
	agent_quit(&ctl);
	t_mon_stop(m);
	T_PASSED(s);
}

/*
 * Register on @sock, already connected, by sending the hello now: the
 * monitor takes the pid of the process that connected (SO_PEERCRED), not
 * of the one that says hello. ipcd_attach()'s steps, trimmed.
 */
static int attach_on(int sock, struct ipcd_attach *a)
{
	struct ipcd_ctl_hello h = {
		.magic = IPCD_CTL_MAGIC,
		.abi_major = IPCD_SHM_ABI_MAJOR,
		.abi_minor = IPCD_SHM_ABI_MINOR,
		.kind = IPCD_CTL_CLIENT,
		.comm = "iso-b-stale",
	};
	int fds[IPCD_CTL_MAX_FDS];
	unsigned int nfds = 0;
	ssize_t n;

	memset(a, 0, sizeof(*a));
	a->sock = sock;
	if (send(sock, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h))
		return -errno;
	n = ipcd_ctl_recv(sock, &a->welcome, sizeof(a->welcome), 0, fds, IPCD_CTL_MAX_FDS, &nfds);
	if (n != (ssize_t)sizeof(a->welcome) || a->welcome.status || nfds != IPCD_CTL_NFDS)
		return -EPROTO;
	if (ipcd_region_map(fds[IPCD_CTL_FD_CLIENT], IPCD_REGION_CLIENT, &a->client_reg) ||
	    ipcd_region_map(fds[IPCD_CTL_FD_GLOBAL], IPCD_REGION_GLOBAL, &a->global_reg) ||
	    ipcd_reqq_chan_attach(&a->client_reg, &a->cl.chan))
		return -EPROTO;
	a->wake_fd = fds[IPCD_CTL_FD_WAKE];
	a->gctl = ipcd_region_area(&a->global_reg, IPCD_AREA_GLOBAL_CTL, NULL);
	if (a->welcome.queue_mode == IPCD_QMODE_SHARED) {
		size_t size;
		void *q = ipcd_region_area(&a->global_reg, IPCD_AREA_GLOBAL_MPSC, &size);

		if (!q || ipcd_mpsc_attach(&a->db, q, size, 0))
			return -EPROTO;
		a->cl.db = &a->db;
	}
	a->cl.wake_fd = a->wake_fd;
	return 0;
}

/*
 * B's process P connects to the control socket and forks Q, which keeps
 * the connection; P exits. Once the parent has given P's pid to a root
 * process (rp->word[0]), Q says hello and BINDs port 80.
 */
static void b_stale(void *arg)
{
	const struct targets *t = arg;
	struct ipcd_attach a;
	int sock = t_connect(t->m->sock);
	pid_t q;
	int rc;

	if (sock < 0) {
		violation("B cannot connect to the control socket: %s", strerror(-sock));
		return;
	}
	q = fork();
	if (q < 0) {
		violation("fork: %s", strerror(errno));
		return;
	}
	if (q > 0) {
		rp->word[1] = (uint64_t)getpid();
		rp->word[2] = (uint64_t)q;
		ipcd_store_release(&rp->done, 1);
		_exit(0);		/* P is gone; its pid is free once reaped */
	}
	alarm(CHILD_ALARM_S);		/* Q's own hang guard: fork does not inherit one */
	child_wait_parent(1);
	rc = attach_on(sock, &a);
	if (rc) {
		report_add("Q's hello: %s", strerror(-rc));
		rp->word[3] = 1;
	} else {
		rp->word[4] = (uint64_t)(int64_t)raw_bind(&a, "127.0.0.1", 80, 0, NULL);
		rp->word[5] = a.welcome.pid;
	}
	ipcd_store_release(&rp->done, 2);
	child_wait_parent(2);
	_exit(0);
}

/* B's ordinary registration: BIND port 80 (the control: -EACCES). */
static void b_bind80(void *arg)
{
	const struct targets *t = arg;
	struct ipcd_attach a;

	raw_attach(t->m, "iso-b-80", &a);
	rp->word[6] = (uint64_t)(int64_t)raw_bind(&a, "127.0.0.1", 80, 0, NULL);
	ipcd_detach(&a);
}

/*
 * Fork a root process that sleeps, with pid @want if we can get it
 * (ns_last_pid; other processes on the host may take it first: retried).
 * Returns its pid (maybe not @want).
 */
static pid_t fork_at_pid(pid_t want)
{
	pid_t pid = 0;
	int i;

	for (i = 0; i < 200; i++) {
		int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
		char buf[16];
		int n = snprintf(buf, sizeof(buf), "%d", (int)want - 1);

		if (fd < 0 || write(fd, buf, (size_t)n) != n) {
			if (fd >= 0)
				close(fd);
			return 0;
		}
		close(fd);
		pid = t_fork(CHILD_ALARM_S);
		if (pid == 0) {
			pause();
			_exit(0);
		}
		if (pid == want)
			return pid;
		t_kill_wait(pid);
	}
	return pid;
}

/*
 * e5: the monitor knows a registration by the pid SO_PEERCRED gave when the
 * process connected, and looks that pid up later (/proc/PID/status for the
 * privileged-port right at the hello; pidfd_open(PID) + pidfd_getfd for
 * UCONNECT and UCLAIM). The process that connected may be gone by then, its
 * connection held by a child, and its pid another process's (pid_max is
 * small: B can cycle through it). Here B's connector exits before the hello
 * and a root process takes its pid: B must not get root's right to bind
 * port 80.
 */
static void test_stale_pid(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct targets t = { .m = m };
	pid_t p, r = 0;
	int code;

	mon_start(s, NULL);
	report_reset();
	run_as(UID_B, b_bind80, &t, "the port 80 control");
	assert_int_equal((int64_t)rp->word[6], -EACCES);

	report_reset();
	p = t_fork(CHILD_ALARM_S);
	if (p == 0) {
		child_become(UID_B);
		b_stale(&t);
		_exit(0);
	}
	if (!t_wait_at_least(&rp->done, 1, T_WAIT_MS))
		fail_msg("B's connector did not fork: %s", rp->text);
	assert_int_equal(t_wait(p, T_WAIT_MS), 0);	/* reaped: its pid is free */
	assert_int_equal((pid_t)rp->word[1], p);
	r = fork_at_pid(p);
	if (r != p) {
		kill((pid_t)rp->word[2], SIGKILL);
		if (r > 0)
			t_kill_wait(r);
		fprintf(stderr, "[e5] could not give pid %d to a root process (ns_last_pid): "
			"the host is too busy; case not run\n", (int)p);
		t_mon_stop(m);
		skip();
	}
	ipcd_store_release(&rp->word[0], 1);
	if (!t_wait_at_least(&rp->done, 2, T_WAIT_MS))
		fail_msg("B's registration did not finish: %s", rp->text);
	t_ctl(m, &ctl_out, false, "processes");
	fprintf(stderr, "[e5] B's connector %d exited, root's process %d took its pid; B's child %d "
		"said hello: registered as pid %" PRIu64 ", BIND 127.0.0.1:80 -> %d\n%s", (int)p,
		(int)r, (int)rp->word[2], rp->word[5], (int)(int64_t)rp->word[4], ctl_out.out);
	ipcd_store_release(&rp->word[0], 2);
	kill((pid_t)rp->word[2], SIGKILL);
	while ((code = waitpid((pid_t)rp->word[2], NULL, 0)) < 0 && errno == EINTR)
		;
	t_kill_wait(r);
	if (rp->word[3])
		fail_msg("B's late hello was refused: %s", rp->text);
	if ((int64_t)rp->word[4] != -EACCES)
		fail_msg("ISOLATION HOLE (e5, stale pid): B's registration, made by a process that "
			 "had exited and whose pid a root process now has, got root's right to "
			 "bind port 80: BIND -> %d (expected -EACCES, as for B's own registration)",
			 (int)(int64_t)rp->word[4]);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- the programs, where both users can run them ------------------------------- */

/* Can user A execute them and read the preload? */
static bool programs_reachable(void)
{
	char lib[PATH_MAX + 16], dir[PATH_MAX];
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s", run_bin);
	snprintf(lib, sizeof(lib), "%s/libipcd.so", dirname(dir));
	pid = t_fork(CHILD_ALARM_S);
	if (pid == 0) {
		child_become(UID_A);
		_exit(access(run_bin, X_OK) || access(agent_bin, X_OK) || access(lib, R_OK));
	}
	return t_wait(pid, T_WAIT_MS) == 0;
}

static int copy_file(const char *from, const char *to)
{
	static char buf[1 << 16];
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	ssize_t n = 0;

	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	while (out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			n = -1;
	close(in);
	if (out < 0 || n < 0 || fchmod(out, 0755) || close(out))
		return -1;
	return 0;
}

/*
 * The build tree may sit where the two users cannot go (a home directory
 * of mode 0700): then ipcd-run, the libipcd.so beside it and the agent go
 * to a temp directory of mode 0755. Returns false if even that fails.
 */
static bool copy_programs(void)
{
	char lib[PATH_MAX + 16], dir[PATH_MAX], to[128];

	if (programs_reachable())
		return true;
	snprintf(copy_dir, sizeof(copy_dir), "/tmp/ipcd-iso-bin-XXXXXX");
	if (!mkdtemp(copy_dir) || chmod(copy_dir, 0755))
		return false;
	snprintf(dir, sizeof(dir), "%s", run_bin);
	snprintf(lib, sizeof(lib), "%s/libipcd.so", dirname(dir));
	snprintf(to, sizeof(to), "%s/libipcd.so", copy_dir);
	if (copy_file(lib, to))
		return false;
	snprintf(to, sizeof(to), "%s/ipcd-run", copy_dir);
	if (copy_file(run_bin, to))
		return false;
	snprintf(run_bin, sizeof(run_bin), "%s", to);
	snprintf(to, sizeof(to), "%s/ipcd-iso-agent", copy_dir);
	if (copy_file(agent_bin, to))
		return false;
	snprintf(agent_bin, sizeof(agent_bin), "%s", to);
	printf("it_isolation: the build tree is not readable by uid %u: running copies in %s\n",
	       UID_A, copy_dir);
	return programs_reachable();
}

static void remove_copies(void)
{
	static const char *const names[] = { "libipcd.so", "ipcd-run", "ipcd-iso-agent" };
	char path[PATH_MAX];
	unsigned int i;

	if (!copy_dir[0])
		return;
	for (i = 0; i < IPCD_ARRAY_SIZE(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", copy_dir, names[i]);
		unlink(path);
	}
	rmdir(copy_dir);
}

/* ---- fixtures ------------------------------------------------------------------- */

/* Remove @path and what it holds, two levels deep (test_unix's directories). */
static void remove_tree(const char *path, int depth)
{
	struct dirent *e;
	DIR *d = opendir(path);

	if (d) {
		while ((e = readdir(d))) {
			char sub[512];

			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			if (unlink(sub) && depth > 0)
				remove_tree(sub, depth - 1);
		}
		closedir(d);
	}
	rmdir(path);
}

/* t_teardown(), after what the cases leave outside the harness's reach. */
static int iso_teardown(void **state)
{
	struct t_state *s = *state;
	char path[192];

	if (s->mon.dir[0]) {
		snprintf(path, sizeof(path), "%s/u", s->mon.dir);
		remove_tree(path, 2);
	}
	if (pr->canary_name[0]) {
		snprintf(path, sizeof(path), "/dev/shm/%s", pr->canary_name);
		unlink(path);
	}
	return t_teardown(state);
}

#define ISO_BOTH(fn)							\
	{ #fn "/per-process", fn, t_setup, iso_teardown, &t_mode_pp },	\
	{ #fn "/shared", fn, t_setup, iso_teardown, &t_mode_sh }

/* ---- main ----------------------------------------------------------------------- */

/*
 * A network namespace of our own: its ports and abstract AF_UNIX names are
 * ours alone, whatever else runs on the host. Loopback must be brought up.
 */
static void own_netns(void)
{
	struct ifreq ifr = { 0 };
	int fd;

	if (unshare(CLONE_NEWNET) < 0) {
		printf("it_isolation: no network namespace of our own (%s): the host's\n",
		       strerror(errno));
		return;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		printf("it_isolation: lo: %s\n", strerror(errno));
	} else {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			printf("it_isolation: lo up: %s\n", strerror(errno));
	}
	if (fd >= 0)
		close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		ISO_BOTH(test_memory),
		ISO_BOTH(test_forge),
		ISO_BOTH(test_ports_reserved),
		ISO_BOTH(test_ports_reserved_preload),
		ISO_BOTH(test_ports_hijack),
		ISO_BOTH(test_unix),
		ISO_BOTH(test_signals_and_views),
		ISO_BOTH(test_kit_forgery),
		ISO_BOTH(test_global_region),
		ISO_BOTH(test_flood),
		ISO_BOTH(test_stale_pid),
	};
	int rc;

	if (geteuid() != 0) {
		printf("it_isolation: needs root (to run two unprivileged users)\n");
		return T_EXIT_SKIP;
	}
	/* T_FILTER=test_unix* runs some cases only, T_SKIP=test_flood* all but some (globs). */
	if (getenv("T_FILTER"))
		cmocka_set_test_filter(getenv("T_FILTER"));
	if (getenv("T_SKIP"))
		cmocka_set_skip_filter(getenv("T_SKIP"));
	own_netns();
	/* e5: B's processes whose parent exits come back to us, to be killed */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (!copy_programs()) {
		printf("it_isolation: uid %u cannot run %s and %s, nor copies of them\n", UID_A,
		       run_bin, agent_bin);
		remove_copies();
		return 1;
	}
	pr = t_shm_alloc(sizeof(*pr));
	rp = t_shm_alloc(sizeof(*rp));
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	remove_copies();
	t_shm_free(rp, sizeof(*rp));
	t_shm_free(pr, sizeof(*pr));
	return rc;
}
