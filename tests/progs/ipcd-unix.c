/* SPDX-License-Identifier: MIT */
/*
 * ipcd-unix - semantics of socketpair(AF_UNIX, SOCK_STREAM) between
 * processes, checked exactly as Linux defines them (issue #6): names,
 * options and credentials of the ends, fstat/fcntl/ioctl answers, half-close
 * and close (EOF, EPIPE/SIGPIPE, ECONNRESET), O_NONBLOCK, poll/epoll states,
 * data across fork with both ends used by several processes in turns,
 * SCM_RIGHTS in order with the data (regular files, and pipe and socketpair
 * ends, which the preload hands over as accelerated ends), SCM_CREDENTIALS,
 * python3 multiprocessing and socket, cat on a socketpair end after exec;
 * and the same of named AF_UNIX stream sockets (a path, an abstract name;
 * the named-* cases): listen/connect/accept, the names accept, getsockname
 * and getpeername give, SO_PEERCRED, errors (ENOENT, ECONNREFUSED, EACCES),
 * the backlog, SIGKILLed ends, a listener closed with connections pending,
 * python3 socketserver and multiprocessing.connection.
 * Plain POSIX and Linux calls and real programs: run without libipcd.so it
 * checks the kernel (the oracle), run under ipcd-run it checks the preload,
 * and both runs must print the same "ok" lines
 * (tests/integration/it_preload_unix.c).
 *
 *   ipcd-unix NAME...        NAME: a case (basics) or all
 *   ipcd-unix --list         the cases, one a line: NAME what it checks
 *   ipcd-unix --exec-probe PIPE_FD SOCK_FD
 *                            not a case: what scm-rights-accelerated (h) execs
 *
 * Every check prints "ok CASE: what" (never a value that may differ between
 * the kernel and the preload: those go to "info CASE: ..." lines). The first
 * mismatch prints "ipcd-unix CASE: FAIL: what: expected X, got Y" on stderr
 * and exits 1; a wait that outlives its hang guard prints "ipcd-unix CASE:
 * HANG: ..." and exits 3 (after SIGKILLing what it started). A case whose
 * program is missing prints "case CASE skipped: why" and exits 77. A case
 * that passes ends with "case CASE passed checks=N socketpairs=S pipes=P
 * named=U": S counts the socketpairs made for it, by this process and by the
 * python3 script it runs (python counts its socket.socketpair() calls), which
 * the preload must all have accelerated; U the named connections accepted
 * while both ends' processes lived, between processes of one user (python's
 * too), which the preload must all have accelerated. Forked children never print "ok" (the
 * order of the lines would depend on scheduling): they report a failure on
 * stderr and exit non-zero, and their parent checks how they exited.
 *
 * Time: nothing is asserted about time. GUARD_MS bounds an event that must
 * come, ALARM_S any one step, LONG_MS a real program's run; "nothing is
 * reported" is watched for QUIET_MS.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUARD_MS	20000	/* hang guard: an event that must come */
#define ALARM_S		20	/* hang guard: any one step (blocking calls included) */
#define LONG_MS		300000	/* hang guard: a real program (python3) runs */
#define QUIET_MS	100	/* how long "nothing is reported" is watched */
#define NSEC_PER_MS	1000000ull
#define MAX_VICTIMS	16
#define MAX_FDS		16	/* fds one message carries here, at most */
#define NFILES		12	/* regular files passed with SCM_RIGHTS */

static const char *case_name = "-";
static char step_txt[256];
static unsigned int n_checks, n_pairs, n_pipes, n_named;
static volatile sig_atomic_t n_sigpipe;

/*
 * Processes (pid > 0) and process groups (< 0) this process started: killed
 * when it fails or hangs, so that nothing outlives the run.
 */
static volatile pid_t victims[MAX_VICTIMS];
static volatile pid_t victim_owner;

static void victim_add(pid_t pid)
{
	if (victim_owner != getpid()) {
		for (int i = 0; i < MAX_VICTIMS; i++)
			victims[i] = 0;
		victim_owner = getpid();
	}
	for (int i = 0; i < MAX_VICTIMS; i++) {
		if (!victims[i]) {
			victims[i] = pid;
			return;
		}
	}
}

static void victim_del(pid_t pid)
{
	for (int i = 0; i < MAX_VICTIMS; i++)
		if (victims[i] == pid || victims[i] == -pid)
			victims[i] = 0;
}

/* Async-signal-safe; a forked child does not kill its parent's victims. */
static void victim_kill(void)
{
	if (getpid() != victim_owner)
		return;
	for (int i = 0; i < MAX_VICTIMS; i++)
		if (victims[i])
			kill(victims[i], SIGKILL);
}

/* ---- reporting ---------------------------------------------------------------------- */

#define FMT(buf, fmt)								\
	do {									\
		va_list ap_;							\
		va_start(ap_, fmt);						\
		vsnprintf(buf, sizeof(buf), fmt, ap_);				\
		va_end(ap_);							\
	} while (0)

static const char *errname(int err)
{
	const char *n = err ? strerrorname_np(err) : "0";

	return n ? n : "?";
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	char msg[1024];

	FMT(msg, fmt);
	victim_kill();
	fflush(stdout);
	fprintf(stderr, "ipcd-unix %s: FAIL: %s\n", case_name, msg);
	exit(1);
}

static void fail_errno(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
static void fail_errno(int err, const char *fmt, ...)
{
	char msg[768];

	FMT(msg, fmt);
	fail("%s: unexpected error %s (%s)", msg, errname(err), strerror(err));
}

static void hang(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void hang(const char *fmt, ...)
{
	char msg[1024];

	FMT(msg, fmt);
	victim_kill();
	fflush(stdout);
	fprintf(stderr, "ipcd-unix %s: HANG: %s\n", case_name, msg);
	exit(3);
}

/* One line per check; also re-arms the step hang guard. */
static void ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ok(const char *fmt, ...)
{
	char msg[768];

	FMT(msg, fmt);
	n_checks++;
	printf("ok %s: %s\n", case_name, msg);
	alarm(ALARM_S);
}

/* A value that may differ between the kernel and the preload: not compared. */
static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void info(const char *fmt, ...)
{
	char msg[768];

	FMT(msg, fmt);
	printf("info %s: %s\n", case_name, msg);
}

/* Names what is about to block, for the SIGALRM hang report. */
static void step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void step(const char *fmt, ...)
{
	FMT(step_txt, fmt);
	alarm(ALARM_S);
}

/* A forked child's check: silent when it holds, its FAIL (exit 1) when not. */
static void c_check(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void c_check(bool cond, const char *fmt, ...)
{
	char what[512];

	if (cond)
		return;
	FMT(what, fmt);
	fail("child %d: %s: not so", (int)getpid(), what);
}

static void put_str(const char *s)
{
	ssize_t r = write(2, s, strlen(s));

	(void)r;
}

static void on_alarm(int sig)
{
	(void)sig;
	victim_kill();
	put_str("ipcd-unix ");
	put_str(case_name);
	put_str(": HANG: a step outlived its hang guard: ");
	put_str(step_txt);
	put_str("\n");
	_exit(3);
}

static void on_sigpipe(int sig)
{
	(void)sig;
	n_sigpipe = n_sigpipe + 1;
}

static void check_eq(long long got, long long want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void check_eq(long long got, long long want, const char *fmt, ...)
{
	char what[512];

	FMT(what, fmt);
	if (got != want)
		fail("%s: expected %lld, got %lld", what, want, got);
	ok("%s == %lld", what, want);
}

static void check_true(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check_true(bool cond, const char *fmt, ...)
{
	char what[512];

	FMT(what, fmt);
	if (!cond)
		fail("%s: not so", what);
	ok("%s", what);
}

/* A call that must fail with @want (rc and errno as the call left them). */
static void check_err(long rc, int err, int want, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void check_err(long rc, int err, int want, const char *fmt, ...)
{
	char what[512];

	FMT(what, fmt);
	if (rc != -1 || err != want) {
		if (rc == -1)
			fail("%s: expected -1 %s, got -1 %s", what, errname(want), errname(err));
		fail("%s: expected -1 %s, got %ld", what, errname(want), rc);
	}
	ok("%s -> -1 %s", what, errname(want));
}

#define CHECK_ERR(call, want, ...)						\
	do {									\
		long rc_;							\
		int e_;								\
		errno = 0;							\
		rc_ = (long)(call);						\
		e_ = errno;							\
		check_err(rc_, e_, (want), __VA_ARGS__);			\
	} while (0)

/* A call that must succeed: its result (>= 0), else FAIL with errno. */
#define MUST(call, ...)								\
	({									\
		long rc_ = (long)(call);					\
		if (rc_ < 0)							\
			fail_errno(errno, __VA_ARGS__);				\
		rc_;								\
	})

/* The SIGPIPEs since @before: @want of them (the handler counts them). */
static void check_sigpipe(unsigned int before, unsigned int want, const char *what)
{
	check_eq((long long)((unsigned int)n_sigpipe - before), want, "%s: SIGPIPE signals", what);
}

static const struct {
	uint32_t bit;
	const char *name;
} ev_names[] = {
	{ EPOLLIN, "IN" },	   { EPOLLPRI, "PRI" },		{ EPOLLOUT, "OUT" },
	{ EPOLLERR, "ERR" },	   { EPOLLHUP, "HUP" },		{ POLLNVAL, "NVAL" },
	{ EPOLLRDNORM, "RDNORM" }, { EPOLLRDBAND, "RDBAND" },	{ EPOLLWRNORM, "WRNORM" },
	{ EPOLLWRBAND, "WRBAND" }, { EPOLLMSG, "MSG" },		{ EPOLLRDHUP, "RDHUP" },
};

/* "POLLIN|POLLOUT" (@pfx "POLL"); "0" if none. Rotating buffers. */
static const char *ev_str(uint32_t ev, const char *pfx)
{
	static char bufs[8][160];
	static unsigned int k;
	char *b = bufs[k++ % 8];
	size_t len = 0;

	b[0] = '\0';
	for (size_t i = 0; i < sizeof(ev_names) / sizeof(ev_names[0]); i++) {
		if (!(ev & ev_names[i].bit))
			continue;
		len += (size_t)snprintf(b + len, 160 - len, "%s%s%s", len ? "|" : "", pfx,
					ev_names[i].name);
		ev &= ~ev_names[i].bit;
	}
	if (ev)
		snprintf(b + len, 160 - len, "%s0x%x", len ? "|" : "", ev);
	else if (!len)
		snprintf(b, 160, "0");
	return b;
}

/* ---- time, processes ---------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000l };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* A forked child: its own step hang guard; the parent reaps it within a guard. */
static pid_t child_fork(void)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		fail_errno(errno, "fork");
	if (pid == 0)
		alarm(ALARM_S);
	else
		victim_add(pid);
	return pid;
}

/* Exit status of @pid (128 + signal if killed), reaped within @guard_ms. */
static int child_wait_ms(pid_t pid, int guard_ms, const char *what)
{
	uint64_t end = now_ns() + (uint64_t)guard_ms * NSEC_PER_MS;
	unsigned int nap = 1;
	int st;

	step("waiting for %s to exit", what);
	alarm((unsigned int)(guard_ms / 1000 + ALARM_S));
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			fail_errno(errno, "waitpid %s", what);
		if (now_ns() > end)
			hang("%s did not exit within %d ms", what, guard_ms);
		sleep_ms(nap);
		if (nap < 20)
			nap++;
	}
	victim_del(pid);
	alarm(ALARM_S);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

static int child_wait(pid_t pid, const char *what)
{
	return child_wait_ms(pid, GUARD_MS, what);
}

/* A child that must have exited 0 (its FAIL, if any, is on stderr). */
static void child_ok(pid_t pid, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void child_ok(pid_t pid, const char *fmt, ...)
{
	char what[512];

	FMT(what, fmt);
	check_eq(child_wait(pid, what), 0, "%s: exit status", what);
}

/*
 * After the leader of process group @pgid exited: every other member must be
 * gone too (within GUARD_MS; orphans reaped here), else FAIL naming @what
 * (they are killed).
 */
static void group_gone(pid_t pgid, const char *what)
{
	uint64_t end = now_ns() + (uint64_t)GUARD_MS * NSEC_PER_MS;

	for (;;) {
		int st;

		/* this process is a child subreaper: the group's orphans are its children */
		while (waitpid(-pgid, &st, WNOHANG) > 0)
			;
		if (kill(-pgid, 0))
			break;
		if (now_ns() > end) {
			kill(-pgid, SIGKILL);
			fail("%s: processes of its group still ran %d ms after it exited", what,
			     GUARD_MS);
		}
		sleep_ms(5);
	}
	victim_del(pgid);
}

static void self_exe(char *buf, size_t len)
{
	ssize_t n = MUST(readlink("/proc/self/exe", buf, len - 1), "readlink /proc/self/exe");

	buf[n] = '\0';
}

/* True if @name is an executable on PATH. */
static bool have_prog(const char *name)
{
	const char *path = getenv("PATH");
	char dir[4096], full[4200];

	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(dir, sizeof(dir), "%.*s", (int)n, path);
		snprintf(full, sizeof(full), "%s/%s", n ? dir : ".", name);
		if (!access(full, X_OK))
			return true;
		path += n;
		if (*path)
			path++;
	}
	return false;
}

static void skip_case(const char *why) __attribute__((noreturn));
static void skip_case(const char *why)
{
	printf("case %s skipped: %s\n", case_name, why);
	fflush(stdout);
	exit(77);
}

/* Shared with forked children (MAP_SHARED anonymous memory). */
static void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail_errno(errno, "mmap %zu shared bytes", size);
	return p;
}

/* ---- ends and data ------------------------------------------------------------------ */

/* A socketpair(AF_UNIX, SOCK_STREAM | @flags) made by this process; counted. */
static void mkpair(int sv[2], int flags)
{
	MUST(socketpair(AF_UNIX, SOCK_STREAM | flags, 0, sv),
	     "socketpair(AF_UNIX, SOCK_STREAM|0x%x)", (unsigned int)flags);
	n_pairs++;
}

/* A pipe made by this process (the fds passed around, and go bytes); counted apart. */
static void mkpipe(int p[2], int flags)
{
	MUST(pipe2(p, flags), "pipe2(0x%x)", (unsigned int)flags);
	n_pipes++;
}

static void xclose(int fd)
{
	if (fd >= 0 && close(fd))
		fail_errno(errno, "close %d", fd);
}

/* Byte @off of a pattern stream (@salt tells streams apart); any shift shows. */
static inline uint8_t pat(uint64_t off, unsigned int salt)
{
	return (uint8_t)(((off + salt * 0x10001ull) * 0x9E3779B97F4A7C15ull) >> 56);
}

static void pat_fill(uint8_t *buf, uint64_t off, size_t n, unsigned int salt)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = pat(off + i, salt);
}

static void pat_check(const uint8_t *buf, uint64_t off, size_t n, unsigned int salt,
		      const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != pat(off + i, salt))
			fail("%s: byte %" PRIu64 " of the stream is 0x%02x, expected 0x%02x (data "
			     "lost, repeated or out of order)", what, off + i, buf[i],
			     pat(off + i, salt));
}

/* All of @buf, blocking (partial writes continued); false with errno on error. */
static bool c_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t r = write(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static void write_all(int fd, const void *buf, size_t n, const char *what)
{
	step("%s: write %zu bytes on fd %d", what, n, fd);
	if (!c_write_all(fd, buf, n))
		fail_errno(errno, "%s: write %zu bytes", what, n);
}

static void write_str(int fd, const char *s, const char *what)
{
	write_all(fd, s, strlen(s), what);
}

/* Exactly @n bytes (blocking); false with errno (0: EOF first) otherwise. */
static bool c_read_exact(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (!r)
				errno = 0;
			return false;
		}
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static void read_exact(int fd, void *buf, size_t n, const char *what)
{
	step("%s: read %zu bytes from fd %d", what, n, fd);
	if (!c_read_exact(fd, buf, n)) {
		if (!errno)
			fail("%s: EOF before %zu bytes", what, n);
		fail_errno(errno, "%s: read", what);
	}
}

/* Exactly the bytes of @s must come next on @fd. */
static void expect_str(int fd, const char *s, const char *what)
{
	char buf[256];
	size_t n = strlen(s);

	if (n > sizeof(buf))
		fail("%s: expect_str of %zu bytes", what, n);
	read_exact(fd, buf, n, what);
	if (memcmp(buf, s, n))
		fail("%s: read \"%.*s\", expected \"%s\"", what, (int)n, buf, s);
}

/* A read must return 0 (EOF) within GUARD_MS; data instead fails. */
static void wait_eof(int fd, const char *what)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;
	ssize_t r;
	int n;

	step("%s: EOF", what);
	do
		n = poll(&p, 1, GUARD_MS);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fail_errno(errno, "%s: poll", what);
	if (n == 0)
		hang("%s: no EOF within %d ms", what, GUARD_MS);
	do
		r = read(fd, &c, 1);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		fail_errno(errno, "%s: read", what);
	if (r > 0)
		fail("%s: data (0x%02x) where EOF was due", what, (uint8_t)c);
	ok("%s: EOF", what);
}

/* The go byte: another process may proceed. */
static void go(int fd, const char *what)
{
	step("%s: the go byte", what);
	if (write(fd, "g", 1) != 1)
		fail_errno(errno, "%s: write the go byte", what);
}

/* A child waits for its go byte (its hang guard is the alarm). */
static void c_wait_go(int fd)
{
	char c;

	if (!c_read_exact(fd, &c, 1))
		fail("child %d: no go byte (%s)", (int)getpid(), errno ? errname(errno) : "EOF");
}

static void set_nonblock(int fd, bool on)
{
	int fl = (int)MUST(fcntl(fd, F_GETFL), "F_GETFL %d", fd);

	MUST(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK), "F_SETFL %d", fd);
}

static int sockopt_int(int fd, int level, int name, const char *what)
{
	socklen_t len = sizeof(int);
	int v = -1;

	MUST(getsockopt(fd, level, name, &v, &len), "%s: getsockopt", what);
	if (len != sizeof(int))
		fail("%s: getsockopt returned %u bytes", what, (unsigned int)len);
	return v;
}

static int fionread(int fd, const char *what)
{
	int n = -1;

	MUST(ioctl(fd, FIONREAD, &n), "%s: ioctl FIONREAD", what);
	return n;
}

/* ---- poll and epoll states ---------------------------------------------------------- */

#define EV_ASK	(POLLIN | POLLOUT | POLLRDHUP)

/* A level-triggered epoll set watching @fd for EPOLLIN|EPOLLOUT|EPOLLRDHUP. */
static int ep_watch(int fd)
{
	struct epoll_event e = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.fd = fd };
	int ep = (int)MUST(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");

	MUST(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e), "epoll_ctl ADD %d", fd);
	return ep;
}

/* poll() of @fd for @events within @ms: its revents (0 if nothing). */
static unsigned int poll_ev(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		fail_errno(errno, "poll fd %d", fd);
	return r ? (uint16_t)p.revents : 0;
}

/* epoll_wait of the one fd of @ep within @ms: its events (0 if none). */
static uint32_t epoll_ev(int ep, int ms)
{
	struct epoll_event e;
	int r;

	do
		r = epoll_wait(ep, &e, 1, ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		fail_errno(errno, "epoll_wait");
	return r ? e.events : 0;
}

/*
 * poll(POLLIN|POLLOUT|POLLRDHUP) of @fd, and epoll_wait of @ep (an
 * ep_watch() of @fd; -1: none), must report exactly @want: waited for
 * (within GUARD_MS) when @want is not 0; for 0, nothing may be reported
 * for QUIET_MS. The POLL and EPOLL bits asked for have the same values.
 */
static void check_ev(int fd, int ep, unsigned int want, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void check_ev(int fd, int ep, unsigned int want, const char *fmt, ...)
{
	uint64_t end = now_ns() + (uint64_t)GUARD_MS * NSEC_PER_MS;
	unsigned int got, egot;
	char what[512];

	FMT(what, fmt);
	step("%s: poll and epoll", what);
	if (!want) {
		got = poll_ev(fd, EV_ASK, QUIET_MS);
		egot = ep >= 0 ? epoll_ev(ep, QUIET_MS) : 0;
	} else {
		for (;;) {
			got = poll_ev(fd, EV_ASK, 0);
			egot = ep >= 0 ? epoll_ev(ep, 0) : want;
			if ((got == want && egot == want) || now_ns() > end)
				break;
			sleep_ms(1);
		}
	}
	if (got != want)
		fail("%s: poll(POLLIN|POLLOUT|POLLRDHUP): expected revents %s, got %s", what,
		     ev_str(want, "POLL"), ev_str(got, "POLL"));
	if (egot != want)
		fail("%s: epoll_wait (EPOLLIN|EPOLLOUT|EPOLLRDHUP, level-triggered): expected %s, "
		     "got %s", what, ev_str(want, "EPOLL"), ev_str(egot, "EPOLL"));
	ok("%s: poll%s -> %s", what, ep >= 0 ? " and epoll" : "", ev_str(want, "POLL"));
}

/* Nothing to read and no hang-up on @fd for QUIET_MS. */
static void check_quiet(int fd, const char *what)
{
	unsigned int got;

	step("%s: poll", what);
	got = poll_ev(fd, POLLIN | POLLRDHUP, QUIET_MS);
	if (got)
		fail("%s: poll(POLLIN|POLLRDHUP) reported %s, expected nothing", what,
		     ev_str(got, "POLL"));
	ok("%s: poll(POLLIN|POLLRDHUP) reports nothing for %d ms", what, QUIET_MS);
}

/*
 * Nonblocking @fd (or @flags MSG_DONTWAIT): pattern bytes from *@off until
 * EAGAIN (4096-byte sends, then single bytes, so the pair ends up full).
 * Returns the bytes sent.
 */
static size_t fill_nb(int fd, int flags, uint64_t *off, unsigned int salt, const char *what)
{
	uint8_t buf[4096];
	size_t total = 0;

	for (size_t chunk = sizeof(buf); chunk; chunk = chunk == 1 ? 0 : 1) {
		for (;;) {
			ssize_t r;

			pat_fill(buf, *off, chunk, salt);
			r = send(fd, buf, chunk, flags);
			if (r < 0 && errno == EAGAIN)
				break;
			if (r < 0)
				fail_errno(errno, "%s: nonblocking send", what);
			*off += (uint64_t)r;
			total += (size_t)r;
			if (total > (256u << 20))
				fail("%s: more than 256 MiB went in without EAGAIN", what);
		}
	}
	return total;
}

/* Nonblocking reads of @fd until EAGAIN, checking the pattern from *@off. Returns the bytes. */
static size_t drain_nb(int fd, uint64_t *off, unsigned int salt, const char *what)
{
	static uint8_t buf[65536];
	size_t total = 0;

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (r < 0 && errno == EAGAIN)
			break;
		if (r < 0)
			fail_errno(errno, "%s: nonblocking read", what);
		if (r == 0)
			fail("%s: EOF while draining", what);
		pat_check(buf, *off, (size_t)r, salt, what);
		*off += (uint64_t)r;
		total += (size_t)r;
	}
	return total;
}

/* ---- control data ------------------------------------------------------------------- */

union ctlbuf {
	struct cmsghdr align;
	char buf[CMSG_SPACE(sizeof(int) * MAX_FDS) + CMSG_SPACE(sizeof(struct ucred)) + 64];
};

#define CTL_FDS(n)	CMSG_SPACE(sizeof(int) * (n))
#define CTL_ALL		(CTL_FDS(MAX_FDS) + CMSG_SPACE(sizeof(struct ucred)))

/*
 * sendmsg of all @len bytes of @buf with @n fds (SCM_RIGHTS, if @n) and
 * @cred (SCM_CREDENTIALS, if not NULL).
 */
static void send_anc(int fd, const void *buf, size_t len, const int *fds, unsigned int n,
		     const struct ucred *cred, const char *what)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	union ctlbuf ctl;
	struct cmsghdr *c;
	size_t clen = 0;
	ssize_t r;

	if (n > MAX_FDS)
		fail("%s: %u fds", what, n);
	memset(&ctl, 0, sizeof(ctl));
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	c = CMSG_FIRSTHDR(&msg);
	if (n) {
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
		clen += CMSG_SPACE(sizeof(int) * n);
		c = CMSG_NXTHDR(&msg, c);
	}
	if (cred) {
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof(*cred));
		memcpy(CMSG_DATA(c), cred, sizeof(*cred));
		clen += CMSG_SPACE(sizeof(*cred));
	}
	msg.msg_controllen = clen;
	if (!clen)
		msg.msg_control = NULL;
	step("%s: sendmsg %zu bytes, %u fds%s", what, len, n, cred ? ", credentials" : "");
	do
		r = sendmsg(fd, &msg, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		fail_errno(errno, "%s: sendmsg of %zu bytes with %u fds", what, len, n);
	if ((size_t)r != len)
		fail("%s: sendmsg sent %zd of %zu bytes", what, r, len);
}

/* One recvmsg: its bytes, fds (all SCM_RIGHTS messages), credentials and msg_flags. */
struct rmsg {
	ssize_t n;
	int fds[MAX_FDS];
	unsigned int nfds;
	int flags;
	bool cred;
	struct ucred uc;
};

/*
 * recvmsg into @buf (@len bytes) with @ctl_len bytes of control space (0:
 * no control buffer) and @flags; the result in @m. Fails on an error or a
 * control message other than SCM_RIGHTS and SCM_CREDENTIALS.
 */
static ssize_t recv_anc(int fd, void *buf, size_t len, size_t ctl_len, int flags, struct rmsg *m,
			const char *what)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	union ctlbuf ctl;
	struct cmsghdr *c;
	ssize_t r;

	if (ctl_len > sizeof(ctl.buf))
		fail("%s: %zu bytes of control space", what, ctl_len);
	memset(m, 0, sizeof(*m));
	memset(&ctl, 0, sizeof(ctl));
	msg.msg_control = ctl_len ? ctl.buf : NULL;
	msg.msg_controllen = ctl_len;
	step("%s: recvmsg %zu bytes", what, len);
	do
		r = recvmsg(fd, &msg, flags);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		fail_errno(errno, "%s: recvmsg", what);
	m->n = r;
	m->flags = msg.msg_flags;
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			if (m->nfds + k > MAX_FDS)
				fail("%s: %zu fds", what, m->nfds + k);
			memcpy(m->fds + m->nfds, CMSG_DATA(c), k * sizeof(int));
			m->nfds += (unsigned int)k;
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
			   c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
			m->cred = true;
			memcpy(&m->uc, CMSG_DATA(c), sizeof(m->uc));
		} else {
			fail("%s: unexpected control message: level %d type %d length %zu", what,
			     c->cmsg_level, c->cmsg_type, (size_t)c->cmsg_len);
		}
	}
	return r;
}

static void rmsg_close(struct rmsg *m)
{
	for (unsigned int i = 0; i < m->nfds; i++)
		xclose(m->fds[i]);
	m->nfds = 0;
}

/* One message of exactly @data (its bytes only) with @nfds fds; none missing, none more. */
static void recv_expect(int fd, const char *data, unsigned int nfds, int flags, struct rmsg *m,
			const char *what)
{
	char buf[256];
	size_t n = strlen(data);

	recv_anc(fd, buf, n, CTL_ALL, flags, m, what);
	if ((size_t)m->n != n || memcmp(buf, data, n))
		fail("%s: recvmsg: \"%.*s\" (%zd bytes), expected \"%s\"", what,
		     (int)(m->n > 0 ? m->n : 0), buf, m->n, data);
	if (m->nfds != nfds)
		fail("%s: recvmsg of \"%s\": %u fds, expected %u", what, data, m->nfds, nfds);
	if (m->flags & MSG_CTRUNC)
		fail("%s: recvmsg of \"%s\": MSG_CTRUNC", what, data);
}

/* ---- regular files to pass ---------------------------------------------------------- */

static int files[NFILES];
static struct stat file_st[NFILES];

/* NFILES unlinked temp files, file i starting "file NN\n"; made once. */
static void files_open(void)
{
	const char *tmp = getenv("TMPDIR");
	char path[512], head[16];

	if (files[0] > 0)
		return;
	for (int i = 0; i < NFILES; i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/ipcd-unix-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		fd = (int)MUST(mkostemp(path, O_CLOEXEC), "mkostemp %s", path);
		MUST(unlink(path), "unlink %s", path);
		snprintf(head, sizeof(head), "file %02d\n", i);
		write_all(fd, head, 8, "temp file");
		MUST(fstat(fd, &file_st[i]), "fstat temp file");
		files[i] = fd;
	}
}

/* Which of the files @fd refers to (st_dev and st_ino): its index, -1 if none. */
static int file_which(int fd)
{
	struct stat st;

	if (fstat(fd, &st))
		return -1;
	for (int i = 0; i < NFILES; i++)
		if (st.st_dev == file_st[i].st_dev && st.st_ino == file_st[i].st_ino)
			return i;
	return -1;
}

/* @fd is file @i: the same inode, and its first bytes read "file NN\n". */
static bool file_is(int fd, int i)
{
	char head[8], want[16];

	if (file_which(fd) != i || pread(fd, head, 8, 0) != 8)
		return false;
	snprintf(want, sizeof(want), "file %02d\n", i);
	return !memcmp(head, want, 8);
}

static bool is_type(int fd, mode_t type)
{
	struct stat st;

	return !fstat(fd, &st) && (st.st_mode & S_IFMT) == type;
}

/* ---- case basics -------------------------------------------------------------------- */

/* Names, options, credentials, fstat and fcntl of both ends, as the creator and a child see. */
static void basics_ids(void)
{
	static const char *const end[2] = { "end 0", "end 1" };
	ino_t ino[2];
	int sv[2];
	pid_t pid;

	mkpair(sv, 0);
	for (int i = 0; i < 2; i++) {
		struct sockaddr_un sa;
		struct ucred uc;
		struct stat st;
		socklen_t len;

		memset(&sa, 0x5a, sizeof(sa));
		len = sizeof(sa);
		MUST(getsockname(sv[i], (struct sockaddr *)&sa, &len), "%s: getsockname", end[i]);
		check_eq(len, sizeof(sa_family_t), "%s: getsockname: addrlen of an unnamed socket",
			 end[i]);
		check_eq(sa.sun_family, AF_UNIX, "%s: getsockname: sun_family", end[i]);
		memset(&sa, 0x5a, sizeof(sa));
		len = sizeof(sa);
		MUST(getpeername(sv[i], (struct sockaddr *)&sa, &len), "%s: getpeername", end[i]);
		check_eq(len, sizeof(sa_family_t), "%s: getpeername: addrlen (the peer is unnamed)",
			 end[i]);
		check_eq(sa.sun_family, AF_UNIX, "%s: getpeername: sun_family", end[i]);
		check_eq(sockopt_int(sv[i], SOL_SOCKET, SO_TYPE, "SO_TYPE"), SOCK_STREAM,
			 "%s: SO_TYPE (SOCK_STREAM)", end[i]);
		check_eq(sockopt_int(sv[i], SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN"), AF_UNIX,
			 "%s: SO_DOMAIN (AF_UNIX)", end[i]);
		check_eq(sockopt_int(sv[i], SOL_SOCKET, SO_PROTOCOL, "SO_PROTOCOL"), 0,
			 "%s: SO_PROTOCOL", end[i]);
		check_eq(sockopt_int(sv[i], SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN"), 0,
			 "%s: SO_ACCEPTCONN", end[i]);
		check_eq(sockopt_int(sv[i], SOL_SOCKET, SO_ERROR, "SO_ERROR"), 0, "%s: SO_ERROR",
			 end[i]);
		memset(&uc, 0, sizeof(uc));
		len = sizeof(uc);
		MUST(getsockopt(sv[i], SOL_SOCKET, SO_PEERCRED, &uc, &len), "%s: SO_PEERCRED",
		     end[i]);
		check_eq(len, sizeof(uc), "%s: SO_PEERCRED length", end[i]);
		check_true(uc.pid == getpid(), "%s: SO_PEERCRED pid is the creator's", end[i]);
		check_eq(uc.uid, getuid(), "%s: SO_PEERCRED uid", end[i]);
		check_eq(uc.gid, getgid(), "%s: SO_PEERCRED gid", end[i]);
		MUST(fstat(sv[i], &st), "%s: fstat", end[i]);
		check_true(S_ISSOCK(st.st_mode), "%s: fstat: S_ISSOCK", end[i]);
		ino[i] = st.st_ino;
		check_eq(fcntl(sv[i], F_GETFL), O_RDWR, "%s: F_GETFL", end[i]);
		check_eq(fcntl(sv[i], F_GETFD), 0, "%s: F_GETFD", end[i]);
	}
	check_true(ino[0] != ino[1], "the two ends are two sockets (fstat st_ino differ)");

	pid = child_fork();
	if (pid == 0) {
		for (int i = 0; i < 2; i++) {
			struct ucred uc;
			socklen_t len = sizeof(uc);

			c_check(!getsockopt(sv[i], SOL_SOCKET, SO_PEERCRED, &uc, &len) &&
				uc.pid == getppid() && uc.uid == getuid() && uc.gid == getgid(),
				"%s: SO_PEERCRED in a forked child: pid %d uid %u gid %u, expected "
				"the creator's pid %d", end[i], (int)uc.pid, uc.uid, uc.gid,
				(int)getppid());
		}
		_exit(0);
	}
	child_ok(pid, "a forked child: SO_PEERCRED of both ends still names the creator");
	xclose(sv[0]);
	xclose(sv[1]);

	mkpair(sv, SOCK_NONBLOCK | SOCK_CLOEXEC);
	for (int i = 0; i < 2; i++) {
		check_eq(fcntl(sv[i], F_GETFL), O_RDWR | O_NONBLOCK,
			 "SOCK_NONBLOCK|SOCK_CLOEXEC: %s: F_GETFL", end[i]);
		check_eq(fcntl(sv[i], F_GETFD), FD_CLOEXEC,
			 "SOCK_NONBLOCK|SOCK_CLOEXEC: %s: F_GETFD", end[i]);
	}
	xclose(sv[0]);
	xclose(sv[1]);
}

/* What connects two ends: mkpair() (socketpair), or listen/connect/accept (the named cases). */
typedef void (*mk_fn)(int sv[2], int flags);

/* FIONREAD, readiness, shutdown (SHUT_WR both ways, SHUT_RD), EPIPE and SIGPIPE. */
static void basics_shutdown(mk_fn mk)
{
	uint8_t buf[256];
	unsigned int s0;
	int sv[2], ep[2];

	mk(sv, 0);
	ep[0] = ep_watch(sv[0]);
	ep[1] = ep_watch(sv[1]);
	check_ev(sv[0], ep[0], POLLOUT, "fresh pair: end 0");
	check_ev(sv[1], ep[1], POLLOUT, "fresh pair: end 1");
	check_eq(fionread(sv[1], "end 1"), 0, "FIONREAD of an empty end");
	pat_fill(buf, 0, 123, 1);
	check_eq(send(sv[0], buf, 100, 0), 100, "end 0: send of 100 bytes");
	check_eq(write(sv[0], buf + 100, 23), 23, "end 0: write of 23 bytes");
	check_eq(fionread(sv[1], "end 1"), 123, "end 1: FIONREAD after sends of 100 and 23 bytes");
	check_ev(sv[1], ep[1], POLLIN | POLLOUT, "end 1 with 123 bytes to read");
	check_ev(sv[0], ep[0], POLLOUT, "end 0 (nothing to read)");
	read_exact(sv[1], buf, 50, "end 1: the first 50 bytes");
	pat_check(buf, 0, 50, 1, "end 1: the first 50 bytes");
	check_eq(fionread(sv[1], "end 1"), 73, "end 1: FIONREAD after reading 50");
	check_eq(recv(sv[1], buf, sizeof(buf), 0), 73, "end 1: recv returns the other 73");
	pat_check(buf, 50, 73, 1, "end 1: the other 73 bytes");
	check_eq(fionread(sv[1], "end 1"), 0, "end 1: FIONREAD once all was read");
	check_ev(sv[1], ep[1], POLLOUT, "end 1 drained");

	MUST(shutdown(sv[0], SHUT_WR), "shutdown(end 0, SHUT_WR)");
	check_ev(sv[1], ep[1], POLLIN | POLLOUT | POLLRDHUP, "end 0 shut down for writing: end 1");
	check_ev(sv[0], ep[0], POLLOUT, "end 0 after its own SHUT_WR");
	check_eq(read(sv[1], buf, sizeof(buf)), 0, "end 1: read after the peer's SHUT_WR: EOF");
	check_eq(recv(sv[1], buf, sizeof(buf), 0), 0, "end 1: recv: EOF again");
	s0 = n_sigpipe;
	CHECK_ERR(send(sv[0], "x", 1, 0), EPIPE, "end 0: send after its SHUT_WR");
	check_sigpipe(s0, 1, "end 0: send after its SHUT_WR");
	s0 = n_sigpipe;
	CHECK_ERR(send(sv[0], "x", 1, MSG_NOSIGNAL), EPIPE,
		  "end 0: send MSG_NOSIGNAL after SHUT_WR");
	check_sigpipe(s0, 0, "end 0: send MSG_NOSIGNAL after SHUT_WR");
	s0 = n_sigpipe;
	CHECK_ERR(write(sv[0], "x", 1), EPIPE, "end 0: write after its SHUT_WR");
	check_sigpipe(s0, 1, "end 0: write after its SHUT_WR");
	write_str(sv[1], "half", "end 1 -> end 0 after end 0's SHUT_WR");
	check_ev(sv[0], ep[0], POLLIN | POLLOUT, "end 0 half-closed, data from end 1");
	expect_str(sv[0], "half", "end 0: the other direction still carries data");
	MUST(shutdown(sv[1], SHUT_WR), "shutdown(end 1, SHUT_WR)");
	check_ev(sv[0], ep[0], POLLIN | POLLOUT | POLLHUP | POLLRDHUP,
		 "both ends shut for writing: end 0");
	check_ev(sv[1], ep[1], POLLIN | POLLOUT | POLLHUP | POLLRDHUP,
		 "both ends shut for writing: end 1");
	check_eq(read(sv[0], buf, sizeof(buf)), 0, "end 0: EOF after the peer's SHUT_WR");
	for (int i = 0; i < 2; i++) {
		xclose(ep[i]);
		xclose(sv[i]);
	}

	mk(sv, 0);
	ep[0] = ep_watch(sv[0]);
	ep[1] = ep_watch(sv[1]);
	MUST(shutdown(sv[1], SHUT_RD), "shutdown(end 1, SHUT_RD)");
	check_ev(sv[1], ep[1], POLLIN | POLLOUT | POLLRDHUP, "end 1 after its own SHUT_RD");
	check_ev(sv[0], ep[0], POLLOUT, "end 1 shut down for reading: end 0");
	check_eq(read(sv[1], buf, sizeof(buf)), 0, "end 1: read after its SHUT_RD: EOF");
	s0 = n_sigpipe;
	CHECK_ERR(send(sv[0], "x", 1, 0), EPIPE, "end 0: send to a peer shut down for reading");
	check_sigpipe(s0, 1, "end 0: send to a peer shut down for reading");
	write_str(sv[1], "rd", "end 1 -> end 0 after end 1's SHUT_RD");
	expect_str(sv[0], "rd", "end 0: end 1 still writes after its SHUT_RD");
	for (int i = 0; i < 2; i++) {
		xclose(ep[i]);
		xclose(sv[i]);
	}
}

/* An end closed, clean or with data unread (the kernel's reset), or held by a child too. */
static void basics_close(mk_fn mk)
{
	char buf[64];
	unsigned int s0;
	int sv[2], ep, g[2];
	pid_t pid;

	mk(sv, 0);
	ep = ep_watch(sv[1]);
	write_str(sv[0], "bye", "end 0: data before its close");
	xclose(sv[0]);
	check_ev(sv[1], ep, POLLIN | POLLOUT | POLLHUP | POLLRDHUP,
		 "end 0 closed (nothing unread): end 1");
	expect_str(sv[1], "bye", "end 1: the data sent before the close");
	check_eq(read(sv[1], buf, sizeof(buf)), 0, "end 1: then EOF");
	check_eq(read(sv[1], buf, sizeof(buf)), 0, "end 1: EOF again");
	s0 = n_sigpipe;
	CHECK_ERR(send(sv[1], "x", 1, 0), EPIPE, "end 1: send after the peer closed");
	check_sigpipe(s0, 1, "end 1: send after the peer closed");
	s0 = n_sigpipe;
	CHECK_ERR(send(sv[1], "x", 1, MSG_NOSIGNAL), EPIPE,
		  "end 1: send MSG_NOSIGNAL after the peer closed");
	check_sigpipe(s0, 0, "end 1: send MSG_NOSIGNAL after the peer closed");
	check_eq(sockopt_int(sv[1], SOL_SOCKET, SO_ERROR, "SO_ERROR"), 0,
		 "end 1: SO_ERROR after a clean close");
	check_ev(sv[1], ep, POLLIN | POLLOUT | POLLHUP | POLLRDHUP, "end 1 after EPIPE");
	xclose(ep);
	xclose(sv[1]);

	mk(sv, 0);
	ep = ep_watch(sv[1]);
	write_str(sv[1], "unread", "end 1: data end 0 never reads");
	write_str(sv[0], "x", "end 0: a byte before its close");
	xclose(sv[0]);
	check_ev(sv[1], ep, POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP,
		 "end 0 closed with 6 bytes unread: end 1");
	check_eq(read(sv[1], buf, sizeof(buf)), 1,
		 "end 1: the byte sent before the close comes first");
	CHECK_ERR(read(sv[1], buf, sizeof(buf)), ECONNRESET, "end 1: then read");
	check_ev(sv[1], ep, POLLIN | POLLOUT | POLLHUP | POLLRDHUP,
		 "end 1 after the ECONNRESET was read");
	check_eq(read(sv[1], buf, sizeof(buf)), 0, "end 1: then EOF");
	xclose(ep);
	xclose(sv[1]);

	mk(sv, 0);
	write_str(sv[1], "unread", "end 1: data end 0 never reads");
	xclose(sv[0]);
	s0 = n_sigpipe;
	CHECK_ERR(send(sv[1], "z", 1, 0), EPIPE,
		  "end 0 closed with data unread: end 1 sends first");
	check_sigpipe(s0, 1, "end 0 closed with data unread: end 1 sends first");
	CHECK_ERR(recv(sv[1], buf, sizeof(buf), 0), ECONNRESET, "end 1: then recv");
	check_eq(recv(sv[1], buf, sizeof(buf), 0), 0, "end 1: then EOF");
	xclose(sv[1]);

	mk(sv, 0);
	write_str(sv[1], "unread", "end 1: data end 0 never reads");
	xclose(sv[0]);
	check_eq(sockopt_int(sv[1], SOL_SOCKET, SO_ERROR, "SO_ERROR"), ECONNRESET,
		 "end 0 closed with data unread: end 1: SO_ERROR (ECONNRESET)");
	check_eq(sockopt_int(sv[1], SOL_SOCKET, SO_ERROR, "SO_ERROR"), 0,
		 "end 1: SO_ERROR again (taken by the first)");
	check_eq(read(sv[1], buf, sizeof(buf)), 0,
		 "end 1: read after SO_ERROR took the error: EOF");
	xclose(sv[1]);

	/* The last holder's close counts: a child holds end 0 too. */
	mk(sv, 0);
	mkpipe(g, O_CLOEXEC);
	ep = ep_watch(sv[1]);
	pid = child_fork();
	if (pid == 0) {
		xclose(sv[1]);
		xclose(g[1]);
		c_wait_go(g[0]);
		if (!c_write_all(sv[0], "child-bye", 9))
			fail_errno(errno, "child: write on end 0");
		_exit(0);
	}
	xclose(g[0]);
	xclose(sv[0]);
	check_ev(sv[1], ep, POLLOUT, "end 0 closed here but held by a child: end 1");
	check_quiet(sv[1], "end 1 (no EOF while the child holds end 0)");
	go(g[1], "the child holding end 0");
	child_ok(pid, "the child that held end 0 and wrote on it");
	check_ev(sv[1], ep, POLLIN | POLLOUT | POLLHUP | POLLRDHUP, "the child exited: end 1");
	expect_str(sv[1], "child-bye", "end 1: the child's data");
	check_eq(read(sv[1], buf, sizeof(buf)), 0,
		 "end 1: EOF once the last holder of end 0 exited");
	xclose(g[1]);
	xclose(ep);
	xclose(sv[1]);
}

/* EAGAIN both ways, full and drained states; O_NONBLOCK set later; MSG_DONTWAIT. */
static void basics_nonblock(mk_fn mk)
{
	uint64_t w01 = 0, w10 = 0, r01 = 0, r10 = 0;
	size_t n01, n10;
	char buf[16];
	int sv[2], ep[2], d, on;

	mk(sv, SOCK_NONBLOCK);
	ep[0] = ep_watch(sv[0]);
	ep[1] = ep_watch(sv[1]);
	CHECK_ERR(recv(sv[0], buf, 1, 0), EAGAIN, "nonblocking end 0: recv with nothing to read");
	CHECK_ERR(read(sv[1], buf, 1), EAGAIN, "nonblocking end 1: read with nothing to read");
	n01 = fill_nb(sv[0], 0, &w01, 2, "end 0 -> end 1");
	info("end 0 -> end 1: %zu bytes went in before EAGAIN", n01);
	check_true(n01 > 0, "end 0: sends until EAGAIN");
	CHECK_ERR(send(sv[0], buf, 1, 0), EAGAIN, "end 0: send into the full direction");
	check_ev(sv[0], ep[0], 0, "end 0, its direction full, nothing to read");
	check_ev(sv[1], ep[1], POLLIN | POLLOUT, "end 1, data to read");
	n10 = fill_nb(sv[1], 0, &w10, 3, "end 1 -> end 0");
	info("end 1 -> end 0: %zu bytes went in before EAGAIN", n10);
	CHECK_ERR(write(sv[1], buf, 1), EAGAIN, "end 1: write into the full direction");
	check_ev(sv[0], ep[0], POLLIN, "both directions full: end 0");
	check_ev(sv[1], ep[1], POLLIN, "both directions full: end 1");
	check_true(drain_nb(sv[0], &r10, 3, "end 0 reads") == n10,
		   "end 0: reads back every byte end 1 sent, in order, then EAGAIN");
	check_ev(sv[0], ep[0], 0, "end 0 drained, its own direction still full");
	check_ev(sv[1], ep[1], POLLIN | POLLOUT, "end 1, room again");
	check_true(drain_nb(sv[1], &r01, 2, "end 1 reads") == n01,
		   "end 1: reads back every byte end 0 sent, in order, then EAGAIN");
	check_ev(sv[0], ep[0], POLLOUT, "both drained: end 0");
	check_ev(sv[1], ep[1], POLLOUT, "both drained: end 1");
	for (int i = 0; i < 2; i++) {
		xclose(ep[i]);
		xclose(sv[i]);
	}

	mk(sv, 0);
	CHECK_ERR(recv(sv[0], buf, 1, MSG_DONTWAIT), EAGAIN, "blocking end 0: recv MSG_DONTWAIT");
	set_nonblock(sv[0], true);
	check_eq(fcntl(sv[0], F_GETFL), O_RDWR | O_NONBLOCK,
		 "end 0: F_GETFL after F_SETFL O_NONBLOCK");
	CHECK_ERR(read(sv[0], buf, 1), EAGAIN, "end 0 made nonblocking by fcntl: read");
	on = 1;
	MUST(ioctl(sv[1], FIONBIO, &on), "FIONBIO on");
	check_eq(fcntl(sv[1], F_GETFL), O_RDWR | O_NONBLOCK, "end 1: F_GETFL after FIONBIO 1");
	CHECK_ERR(recv(sv[1], buf, 1, 0), EAGAIN, "end 1 made nonblocking by FIONBIO: recv");
	d = (int)MUST(dup(sv[1]), "dup end 1");
	check_eq(fcntl(d, F_GETFL), O_RDWR | O_NONBLOCK, "a dup of end 1 shares O_NONBLOCK");
	on = 0;
	MUST(ioctl(d, FIONBIO, &on), "FIONBIO off");
	check_eq(fcntl(sv[1], F_GETFL), O_RDWR, "FIONBIO 0 on the dup clears it for end 1");
	xclose(d);
	w01 = r01 = 0;
	n01 = fill_nb(sv[1], MSG_DONTWAIT, &w01, 4, "blocking end 1, MSG_DONTWAIT");
	check_true(n01 > 0, "blocking end 1: send MSG_DONTWAIT until EAGAIN");
	check_true(drain_nb(sv[0], &r01, 4, "end 0 reads") == n01,
		   "end 0: reads back every byte, in order");
	xclose(sv[0]);
	xclose(sv[1]);
}

static void case_basics(void)
{
	basics_ids();
	basics_shutdown(mkpair);
	basics_close(mkpair);
	basics_nonblock(mkpair);
}

/* ---- case data-fork ----------------------------------------------------------------- */

#define RT_N		100000	/* round trips */
#define RT_BLOCK	5000	/* round trips per turn */
#define RT_MSG		64
#define ST_BYTES	(256ull << 20)
#define ST_TURN		(16ull << 20)	/* bytes per writer turn; readers turn half a turn later */
#define ST_SEGS		(ST_BYTES / ST_TURN + 1)

/* Who serves round-trip block @b: clients the parent (0) and a child (1); servers two children. */
static unsigned int rt_client(unsigned int b)
{
	return b % 2;
}

static unsigned int rt_server(unsigned int b)
{
	return (b / 2) % 2;
}

static void rt_fill(uint8_t *m, uint32_t round, unsigned int salt)
{
	memcpy(m, &round, 4);
	pat_fill(m + 4, (uint64_t)round * RT_MSG, RT_MSG - 4, salt);
}

static void rt_check(const uint8_t *m, uint32_t round, unsigned int salt, const char *who)
{
	uint32_t got;

	memcpy(&got, m, 4);
	if (got != round)
		fail("%s: message of round %u where round %u was due", who, got, round);
	pat_check(m + 4, (uint64_t)round * RT_MSG, RT_MSG - 4, salt, who);
}

/*
 * Client @me (@server false) or server @me: its blocks of round trips on
 * @fd, each turn started by a go byte on @go_self (but the very first) and
 * handed over by one on @go_other.
 */
static void rt_role(int fd, bool server, unsigned int me, int go_self, int go_other)
{
	unsigned int (*owner)(unsigned int) = server ? rt_server : rt_client;
	const char *who = server ? "server" : "client";
	uint8_t m[RT_MSG];

	for (unsigned int b = 0; b < RT_N / RT_BLOCK; b++) {
		if (owner(b) != me)
			continue;
		if (b > 0 && owner(b - 1) != me)
			c_wait_go(go_self);
		alarm(ALARM_S);
		for (uint32_t r = b * RT_BLOCK; r < (b + 1) * RT_BLOCK; r++) {
			if (server) {
				if (!c_read_exact(fd, m, RT_MSG))
					fail("server %u: round %u: read: %s", me, r,
					     errno ? errname(errno) : "EOF");
				rt_check(m, r, 1, "server: the ping");
				rt_fill(m, r, 2);
				if (!c_write_all(fd, m, RT_MSG))
					fail_errno(errno, "server %u: round %u: write", me, r);
			} else {
				rt_fill(m, r, 1);
				if (!c_write_all(fd, m, RT_MSG))
					fail_errno(errno, "client %u: round %u: write", me, r);
				if (!c_read_exact(fd, m, RT_MSG))
					fail("client %u: round %u: read: %s", me, r,
					     errno ? errname(errno) : "EOF");
				rt_check(m, r, 2, "client: the pong");
			}
		}
		if (b + 1 < RT_N / RT_BLOCK && owner(b + 1) != me)
			if (write(go_other, "g", 1) != 1)
				fail_errno(errno, "%s %u: hand over the turn", who, me);
	}
}

static void data_pingpong(void)
{
	int sv[2], gc[2][2], gs[2][2];
	pid_t c1, s[2];

	mkpair(sv, 0);
	for (int i = 0; i < 2; i++) {
		mkpipe(gc[i], O_CLOEXEC);
		mkpipe(gs[i], O_CLOEXEC);
	}
	for (unsigned int i = 0; i < 2; i++) {
		s[i] = child_fork();
		if (s[i] == 0) {
			xclose(sv[0]);
			rt_role(sv[1], true, i, gs[i][0], gs[1 - i][1]);
			_exit(0);
		}
	}
	c1 = child_fork();
	if (c1 == 0) {
		xclose(sv[1]);
		rt_role(sv[0], false, 1, gc[1][0], gc[0][1]);
		_exit(0);
	}
	xclose(sv[1]);
	step("client 0's round trips");
	rt_role(sv[0], false, 0, gc[0][0], gc[1][1]);
	child_ok(c1, "client child");
	child_ok(s[0], "server child 0");
	child_ok(s[1], "server child 1");
	ok("%u round trips of %u bytes, each checked: clients the parent and a child, servers two "
	   "children, turns of %u round trips", RT_N, RT_MSG, RT_BLOCK);
	wait_eof(sv[0], "the servers exited: the parent's end");
	xclose(sv[0]);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			xclose(gc[i][j]);
			xclose(gs[i][j]);
		}
}

/* What the writers wrote and the readers read: bytes and a position-keyed sum. */
struct st_shared {
	uint64_t w_sum[2], r_sum[2];
	uint64_t w_bytes[2], r_bytes[2];
	bool eof;
};

static uint64_t st_sum(const uint8_t *p, uint64_t off, size_t n)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += (uint64_t)(p[i] + 1) * (2 * (off + i) + 1);
	return s;
}

/* Reader segment @k: [start, end) of the stream (reader turns fall mid writer turns). */
static void st_seg(unsigned int k, uint64_t *start, uint64_t *end)
{
	*start = k ? ST_TURN / 2 + (k - 1) * ST_TURN : 0;
	*end = ST_TURN / 2 + k * ST_TURN;
	if (*end > ST_BYTES)
		*end = ST_BYTES;
}

static void st_writer(int fd, unsigned int me, int go_self, int go_other, struct st_shared *sh)
{
	static const size_t sizes[] = { 65536, 1, 4096, 7000, 300000, 100, 1u << 20, 13 };
	static uint8_t buf[1u << 20];
	unsigned int k = me;

	for (unsigned int t = me; t < ST_BYTES / ST_TURN; t += 2) {
		uint64_t off = t * ST_TURN, end = off + ST_TURN;

		if (t > 0)
			c_wait_go(go_self);
		while (off < end) {
			size_t n = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];

			if (n > end - off)
				n = (size_t)(end - off);
			pat_fill(buf, off, n, 5);
			sh->w_sum[me] += st_sum(buf, off, n);
			step("writer %u: %zu bytes at %" PRIu64, me, n, off);
			if (!c_write_all(fd, buf, n))
				fail_errno(errno, "writer %u: write at %" PRIu64, me, off);
			off += n;
			sh->w_bytes[me] += n;
		}
		if (t + 1 < ST_BYTES / ST_TURN && write(go_other, "g", 1) != 1)
			fail_errno(errno, "writer %u: hand over the turn", me);
	}
}

static void st_reader(int fd, unsigned int me, int go_self, int go_other, struct st_shared *sh)
{
	static const size_t sizes[] = { 1000, 999, 4097, 1, 65536, 7, 12345, 1u << 20 };
	static uint8_t buf[1u << 20];
	unsigned int k = me;

	for (unsigned int seg = me; seg < ST_SEGS; seg += 2) {
		uint64_t off, end;

		st_seg(seg, &off, &end);
		if (seg > 0)
			c_wait_go(go_self);
		while (off < end) {
			size_t n = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];
			ssize_t r;

			if (n > end - off)
				n = (size_t)(end - off);
			step("reader %u: read %zu at %" PRIu64, me, n, off);
			r = read(fd, buf, n);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				fail_errno(errno, "reader %u: read at %" PRIu64, me, off);
			if (r == 0)
				fail("reader %u: EOF at %" PRIu64 " of %llu bytes", me, off,
				     (unsigned long long)ST_BYTES);
			pat_check(buf, off, (size_t)r, 5, "reader");
			sh->r_sum[me] += st_sum(buf, off, (size_t)r);
			off += (uint64_t)r;
			sh->r_bytes[me] += (uint64_t)r;
		}
		if (seg + 1 < ST_SEGS) {
			if (write(go_other, "g", 1) != 1)
				fail_errno(errno, "reader %u: hand over the turn", me);
		} else {
			ssize_t r;

			step("reader %u: EOF after the last byte", me);
			do
				r = read(fd, buf, 1);
			while (r < 0 && errno == EINTR);
			if (r != 0)
				fail("reader %u: after the last byte: read returned %zd (%s), "
				     "expected EOF", me, r, r < 0 ? errname(errno) : "data");
			sh->eof = true;
		}
	}
}

static void data_stream(void)
{
	struct st_shared *sh = shared_alloc(sizeof(*sh));
	int sv[2], gw[2][2], gr[2][2];
	pid_t w1, r[2];

	mkpair(sv, 0);
	for (int i = 0; i < 2; i++) {
		mkpipe(gw[i], O_CLOEXEC);
		mkpipe(gr[i], O_CLOEXEC);
	}
	for (unsigned int i = 0; i < 2; i++) {
		r[i] = child_fork();
		if (r[i] == 0) {
			xclose(sv[0]);
			st_reader(sv[1], i, gr[i][0], gr[1 - i][1], sh);
			_exit(0);
		}
	}
	xclose(sv[1]);
	w1 = child_fork();
	if (w1 == 0) {
		st_writer(sv[0], 1, gw[1][0], gw[0][1], sh);
		_exit(0);
	}
	st_writer(sv[0], 0, gw[0][0], gw[1][1], sh);
	xclose(sv[0]);
	child_ok(w1, "writer child");
	child_ok(r[0], "reader child 0");
	child_ok(r[1], "reader child 1");
	check_eq((long long)(sh->w_bytes[0] + sh->w_bytes[1]), (long long)ST_BYTES,
		 "one-way stream: bytes written by the parent and a child in turns of 16 MiB");
	check_eq((long long)(sh->r_bytes[0] + sh->r_bytes[1]), (long long)ST_BYTES,
		 "one-way stream: bytes read by two children in turns of 16 MiB, offset by 8 MiB, "
		 "each in order");
	check_true(sh->w_sum[0] + sh->w_sum[1] == sh->r_sum[0] + sh->r_sum[1],
		   "one-way stream: the readers' position-keyed checksum equals the writers'");
	check_true(sh->eof, "one-way stream: EOF after the last byte, once both writers closed");
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			xclose(gw[i][j]);
			xclose(gr[i][j]);
		}
	munmap(sh, sizeof(*sh));
}

static void case_data_fork(void)
{
	data_pingpong();
	data_stream();
}

/* ---- case scm-rights-order ---------------------------------------------------------- */

/*
 * A stream of messages, plain or carrying fds (SCM_RIGHTS of files file0,
 * file0 + 1, ... mod NFILES); the bytes are pattern salt 4 by stream offset.
 */
struct smsg {
	uint64_t off;
	uint32_t len;
	uint8_t nfds;
	uint8_t file0;
};

/* Plain sends and fd messages mixed: adjacent ones, one first, one last, sizes 1 B..5000 B. */
static const struct {
	uint32_t len;
	uint8_t nfds;
} plan_fixed[] = {
	{ 8, 1 },  { 100, 0 },	{ 10, 1 },    { 3000, 0 }, { 1, 0 },  { 500, 2 }, { 7, 3 },
	{ 1, 1 },  { 2000, 0 }, { 64, 1 },    { 13, 0 },   { 1, 0 },  { 200, 2 }, { 4096, 0 },
	{ 9, 1 },  { 300, 0 },	{ 17, 3 },    { 5000, 0 }, { 2, 1 },  { 2, 0 },	  { 33, 2 },
};

#define PLAN_FIXED	(sizeof(plan_fixed) / sizeof(plan_fixed[0]))
#define PLAN_RANDOM	3000

static uint32_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

static uint64_t plan_offsets(struct smsg *m, unsigned int n)
{
	uint64_t off = 0;

	for (unsigned int i = 0; i < n; i++) {
		m[i].off = off;
		off += m[i].len;
	}
	return off;
}

/* A third of the messages carry 1..3 fds; plain ones of 1..2000 bytes, fd ones 1..300. */
static uint64_t plan_random(struct smsg *m, unsigned int n, uint64_t seed)
{
	uint64_t s = seed;

	for (unsigned int i = 0; i < n; i++) {
		uint32_t r = lcg(&s);

		m[i].nfds = r % 3 == 0 ? (uint8_t)(1 + (r >> 8) % 3) : 0;
		m[i].len = 1 + lcg(&s) % (m[i].nfds ? 300 : 2000);
		m[i].file0 = (uint8_t)(lcg(&s) % NFILES);
	}
	return plan_offsets(m, n);
}

/* Message @i of @m on @fd: plain by write() or send() (alternately), fds by sendmsg. */
static void plan_send(int fd, const struct smsg *m, unsigned int i, const char *what)
{
	static uint8_t buf[8192];
	int fds[3];

	pat_fill(buf, m[i].off, m[i].len, 4);
	for (unsigned int j = 0; j < m[i].nfds; j++)
		fds[j] = files[(m[i].file0 + j) % NFILES];
	if (m[i].nfds)
		send_anc(fd, buf, m[i].len, fds, m[i].nfds, NULL, what);
	else if (i % 2)
		write_all(fd, buf, m[i].len, what);
	else if (send(fd, buf, m[i].len, 0) != (ssize_t)m[i].len)
		fail_errno(errno, "%s: send of %u bytes", what, m[i].len);
}

/*
 * The kernel's cut (net/unix/af_unix.c unix_stream_read_generic, checked
 * by the kernel run): a read takes bytes from the current message on,
 * across message boundaries, until its size is used up; the fds of a
 * message come with the read that takes its first byte, and that read ends
 * at the end of that message (or earlier, when its size runs out) - it may
 * start with bytes of earlier messages. Advances *@cur and *@coff (message and
 * offset in it); returns the bytes, *@fdmsg the message whose fds come
 * with them (-1: none).
 */
static size_t model_read(const struct smsg *m, unsigned int n, unsigned int *cur, uint32_t *coff,
			 size_t size, int *fdmsg)
{
	size_t got = 0;

	*fdmsg = -1;
	while (got < size && *cur < n) {
		const struct smsg *c = &m[*cur];
		size_t take = c->len - *coff;

		if (take > size - got)
			take = size - got;
		if (c->nfds && *coff == 0)
			*fdmsg = (int)*cur;
		got += take;
		*coff += (uint32_t)take;
		if (*coff < c->len)
			break;
		(*cur)++;
		*coff = 0;
		if (*fdmsg >= 0)
			break;
	}
	return got;
}

/* The fds of @r must be message @k's files, in order; closed afterwards. */
static void fds_match(struct rmsg *r, const struct smsg *m, int k, const char *what, unsigned int i)
{
	unsigned int want = k >= 0 ? m[k].nfds : 0;

	if (r->nfds != want)
		fail("%s: read %u: %u fds, expected %u (%s)", what, i, r->nfds, want,
		     k >= 0 ? "the fds of the message whose first byte it holds" : "none");
	if (r->flags & MSG_CTRUNC)
		fail("%s: read %u: MSG_CTRUNC", what, i);
	for (unsigned int j = 0; j < r->nfds; j++) {
		int f = (m[k].file0 + (int)j) % NFILES;

		if (!file_is(r->fds[j], f))
			fail("%s: read %u: fd %u of message %d is file %d, expected file %d (its "
			     "inode and content)", what, i, j, k, file_which(r->fds[j]), f);
	}
	rmsg_close(r);
}

/*
 * The fixed plan sent whole into a pair, then read with @sizes (cycled; 0:
 * up to the end of the current message), each read cut as the kernel cuts
 * it (model_read).
 */
static void order_reads(const struct smsg *m, unsigned int n, uint64_t total, const size_t *sizes,
			unsigned int nsizes, const char *style)
{
	static uint8_t buf[65536];
	unsigned int cur = 0, i = 0;
	uint32_t coff = 0;
	uint64_t pos = 0;
	struct rmsg r;
	int sv[2];

	mkpair(sv, 0);
	for (unsigned int k = 0; k < n; k++)
		plan_send(sv[0], m, k, style);
	while (pos < total) {
		size_t size = sizes[i % nsizes] ? sizes[i % nsizes] : m[cur].len - coff;
		int k;
		size_t want = model_read(m, n, &cur, &coff, size, &k);

		recv_anc(sv[1], buf, size, CTL_ALL, 0, &r, style);
		if ((size_t)r.n != want)
			fail("%s: read %u (stream offset %" PRIu64 ", %zu bytes asked): %zd bytes "
			     "and %u fds, expected %zu bytes%s", style, i, pos, size, r.n, r.nfds,
			     want, k >= 0 ? " and the fds of the message it ends with" : "");
		pat_check(buf, pos, (size_t)r.n, 4, style);
		fds_match(&r, m, k, style, i);
		pos += (uint64_t)r.n;
		i++;
	}
	CHECK_ERR(recv(sv[1], buf, 1, MSG_DONTWAIT), EAGAIN, "%s: nothing after the last message",
		  style);
	ok("%s: %u reads, each cut as the kernel cuts it (fds with the read holding their "
	   "message's first byte, which ends with that message), the fds the right files", style,
	   i);
	xclose(sv[0]);
	xclose(sv[1]);
}

/*
 * A child sends PLAN_RANDOM messages while this process reads in odd sizes:
 * how reads are cut depends on timing, so only the rules are checked: a
 * read carries the fds of the one message whose first byte it holds (of
 * none if it holds none) and nothing after that message.
 */
static void order_concurrent(void)
{
	static const size_t sizes[] = { 1, 4096, 100, 65536, 7, 3000, 250, 1 << 15 };
	static struct smsg m[PLAN_RANDOM];
	static uint8_t buf[65536];
	uint64_t total = plan_random(m, PLAN_RANDOM, 0x5c3a11), pos = 0;
	unsigned int i = 0, next = 0, with_fds = 0, reads_fds = 0, glued = 0;
	const char *what = "concurrent sender";
	struct rmsg r;
	int sv[2];
	pid_t pid;

	mkpair(sv, 0);
	pid = child_fork();
	if (pid == 0) {
		xclose(sv[1]);
		for (unsigned int k = 0; k < PLAN_RANDOM; k++)
			plan_send(sv[0], m, k, "sender child");
		_exit(0);
	}
	xclose(sv[0]);
	for (unsigned int k = 0; k < PLAN_RANDOM; k++)
		with_fds += m[k].nfds ? 1 : 0;
	for (;;) {
		size_t size = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
		uint64_t end;
		int k = -1;

		recv_anc(sv[1], buf, size, CTL_ALL, 0, &r, what);
		if (r.n == 0)
			break;
		end = pos + (uint64_t)r.n;
		if (end > total)
			fail("%s: %" PRIu64 " bytes, %" PRIu64 " were sent", what, end, total);
		pat_check(buf, pos, (size_t)r.n, 4, what);
		/* the fd messages whose first byte this read holds */
		while (next < PLAN_RANDOM && m[next].off < end) {
			if (m[next].nfds) {
				if (k >= 0)
					fail("%s: read %u (offset %" PRIu64 ", %zd bytes) holds "
					     "the first bytes of fd messages %d and %u", what, i,
					     pos, r.n, k, next);
				k = (int)next;
			}
			next++;
		}
		if (k >= 0 && end > m[k].off + m[k].len)
			fail("%s: read %u (offset %" PRIu64 ", %zd bytes) carries message %d's fds "
			     "and data after that message (it ends at %" PRIu64 ")", what, i, pos,
			     r.n, k, m[k].off + m[k].len);
		if (k >= 0) {
			reads_fds++;
			if (m[k].off > pos)
				glued++;
		}
		fds_match(&r, m, k, what, i);
		pos = end;
		i++;
	}
	child_ok(pid, "the sender child");
	check_eq((long long)pos, (long long)total,
		 "%s: every byte of %u messages, in order, then EOF", what, PLAN_RANDOM);
	check_eq(reads_fds, with_fds, "%s: reads that carried fds (one per fd message, with the "
		 "read holding its first byte, never data after it; the right files)", what);
	info("%s: %u reads; %u reads with fds began before their message", what, i, glued);
	xclose(sv[1]);
}

static void case_scm_rights_order(void)
{
	static const size_t exact[] = { 0 }, big[] = { 65536 }, small[] = { 7 },
			    mixed[] = { 1, 100, 4096, 3, 777, 65536, 2, 9 };
	struct smsg m[PLAN_FIXED];
	uint64_t total;

	files_open();
	for (unsigned int i = 0; i < PLAN_FIXED; i++) {
		m[i].len = plan_fixed[i].len;
		m[i].nfds = plan_fixed[i].nfds;
		m[i].file0 = (uint8_t)(i % NFILES);
	}
	total = plan_offsets(m, PLAN_FIXED);
	order_reads(m, PLAN_FIXED, total, exact, 1, "reads of one message each");
	order_concurrent();
	order_reads(m, PLAN_FIXED, total, small, 1, "reads of 7 bytes");
	order_reads(m, PLAN_FIXED, total, mixed, sizeof(mixed) / sizeof(mixed[0]),
		    "reads of 1 B..64 KiB");
	order_reads(m, PLAN_FIXED, total, big, 1, "reads of 64 KiB");
}

/* ---- case scm-rights-accelerated ---------------------------------------------------- */

/* Pattern bytes [@from, @to) of salt @salt into @fd, in writes of varied sizes. */
static void pat_write(int fd, uint64_t from, uint64_t to, unsigned int salt, const char *what)
{
	static const size_t sizes[] = { 4096, 1, 65536, 999, 200000, 7 };
	static uint8_t buf[200000];
	unsigned int k = 0;

	while (from < to) {
		size_t n = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];

		if (n > to - from)
			n = (size_t)(to - from);
		pat_fill(buf, from, n, salt);
		write_all(fd, buf, n, what);
		from += n;
	}
}

/* Everything until EOF on @fd, checked as pattern @salt from 0. Returns the bytes. */
static uint64_t pat_read_eof(int fd, unsigned int salt, const char *what)
{
	static uint8_t buf[65536];
	uint64_t off = 0;

	for (;;) {
		ssize_t r;

		step("%s: read at %" PRIu64, what, off);
		r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail_errno(errno, "%s: read at %" PRIu64, what, off);
		if (r == 0)
			return off;
		pat_check(buf, off, (size_t)r, salt, what);
		off += (uint64_t)r;
	}
}

/*
 * Writes single bytes into @fd (made nonblocking) until EPIPE: no reader is
 * left. The kernel answers at once; a reader's close may take a moment to
 * reach the writer elsewhere, so it is waited for (GUARD_MS). One SIGPIPE.
 */
static void wait_epipe(int fd, const char *what)
{
	uint64_t end = now_ns() + (uint64_t)GUARD_MS * NSEC_PER_MS;
	unsigned int s0, before = 0;

	set_nonblock(fd, true);
	step("%s: EPIPE", what);
	for (;;) {
		ssize_t r;

		s0 = n_sigpipe;
		r = write(fd, "z", 1);
		if (r < 0 && errno == EPIPE)
			break;
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			fail_errno(errno, "%s: write", what);
		if (r == 1)
			before++;
		if (now_ns() > end)
			hang("%s: no EPIPE within %d ms (%u bytes went in)", what, GUARD_MS,
			     before);
		sleep_ms(1);
	}
	check_eq((long long)((unsigned int)n_sigpipe - s0), 1, "%s: a write fails with EPIPE; "
		 "SIGPIPE signals", what);
	info("%s: %u bytes went in before EPIPE", what, before);
}

/* (a) A pipe read end: the sender writes before and after passing it, then closes. */
static void acc_pipe(void)
{
	const uint64_t total = 4u << 20, pre = 1000;
	uint64_t got;
	int mp[2], p[2];
	struct rmsg m;
	pid_t pid;

	mkpair(mp, 0);
	pid = child_fork();
	if (pid == 0) {
		xclose(mp[0]);
		recv_expect(mp[1], "pipe-a", 1, 0, &m, "(a) receiver");
		c_check(is_type(m.fds[0], S_IFIFO), "(a) the passed fd is a FIFO (fstat)");
		c_check((fcntl(m.fds[0], F_GETFL) & O_ACCMODE) == O_RDONLY,
			"(a) the passed fd is O_RDONLY");
		got = pat_read_eof(m.fds[0], 11, "(a) receiver: the pipe");
		rmsg_close(&m);
		write_all(mp[1], &got, sizeof(got), "(a) receiver: the count");
		_exit(0);
	}
	xclose(mp[1]);
	mkpipe(p, 0);
	pat_write(p[1], 0, pre, 11, "(a) before passing the read end");
	send_anc(mp[0], "pipe-a", 6, &p[0], 1, NULL, "(a)");
	xclose(p[0]);
	pat_write(p[1], pre, total, 11, "(a) after passing the read end");
	xclose(p[1]);
	read_exact(mp[0], &got, sizeof(got), "(a) the receiver's count");
	check_eq((long long)got, (long long)total, "(a) a pipe read end passed: the receiver "
		 "read the bytes written before and after, in order, then EOF when the writer "
		 "closed");
	child_ok(pid, "(a) the receiver");
	xclose(mp[0]);
}

/* Exactly @n pattern bytes of salt @salt from offset 0 on @fd. */
static void pat_read_n(int fd, uint64_t n, unsigned int salt, const char *what)
{
	static uint8_t buf[65536];
	uint64_t off = 0;

	while (off < n) {
		size_t want = n - off < sizeof(buf) ? (size_t)(n - off) : sizeof(buf);
		ssize_t r;

		step("%s: read at %" PRIu64, what, off);
		r = read(fd, buf, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail_errno(errno, "%s: read at %" PRIu64, what, off);
		if (r == 0)
			fail("%s: EOF at %" PRIu64 " of %" PRIu64 " bytes", what, off, n);
		pat_check(buf, off, (size_t)r, salt, what);
		off += (uint64_t)r;
	}
}

/* A read on @fd must give EOF (a child's check). */
static void c_expect_eof(int fd, const char *what)
{
	char c;
	ssize_t r;

	step("%s: EOF", what);
	do
		r = read(fd, &c, 1);
	while (r < 0 && errno == EINTR);
	if (r != 0)
		fail("%s: read returned %zd (%s), expected EOF", what, r,
		     r < 0 ? errname(errno) : "data");
}

/* (b) A socketpair end: the receiver talks over it with the sender's peer process. */
static void acc_pair(void)
{
	const uint64_t bulk = 1u << 20;
	char ping[17], pong[17];
	int mp[2], q[2];
	struct rmsg m;
	pid_t r, qp;

	mkpair(mp, 0);
	r = child_fork();
	if (r == 0) {
		struct ucred uc;
		socklen_t len = sizeof(uc);
		int x;

		xclose(mp[0]);
		recv_expect(mp[1], "pair-b", 1, 0, &m, "(b) receiver");
		x = m.fds[0];
		c_check(is_type(x, S_IFSOCK), "(b) the passed fd is a socket (fstat)");
		c_check(sockopt_int(x, SOL_SOCKET, SO_TYPE, "SO_TYPE") == SOCK_STREAM,
			"(b) SO_TYPE of the passed end");
		c_check(!getsockopt(x, SOL_SOCKET, SO_PEERCRED, &uc, &len) && uc.pid == getppid(),
			"(b) SO_PEERCRED of the passed end names its creator (pid %d, expected %d)",
			(int)uc.pid, (int)getppid());
		for (int i = 0; i < 1000; i++) {
			snprintf(ping, sizeof(ping), "ping %11d", i);
			write_all(x, ping, 16, "(b) receiver: ping");
			snprintf(ping, sizeof(ping), "pong %11d", i);
			read_exact(x, pong, 16, "(b) receiver: pong");
			c_check(!memcmp(pong, ping, 16), "(b) pong %d", i);
		}
		pat_read_n(x, bulk, 12, "(b) receiver: 1 MiB from the sender's peer");
		pat_write(x, 0, bulk, 13, "(b) receiver: 1 MiB to the sender's peer");
		MUST(shutdown(x, SHUT_WR), "(b) receiver: SHUT_WR");
		c_expect_eof(x, "(b) receiver: the peer closed");
		rmsg_close(&m);
		write_str(mp[1], "ok", "(b) receiver: done");
		_exit(0);
	}
	xclose(mp[1]);
	mkpair(q, 0);
	qp = child_fork();
	if (qp == 0) {
		xclose(mp[0]);
		xclose(q[0]);
		for (int i = 0; i < 1000; i++) {
			snprintf(pong, sizeof(pong), "ping %11d", i);
			read_exact(q[1], ping, 16, "(b) the peer: ping");
			c_check(!memcmp(pong, ping, 16), "(b) ping %d", i);
			snprintf(pong, sizeof(pong), "pong %11d", i);
			write_all(q[1], pong, 16, "(b) the peer: pong");
		}
		pat_write(q[1], 0, bulk, 12, "(b) the peer: 1 MiB to the receiver");
		pat_read_n(q[1], bulk, 13, "(b) the peer: 1 MiB from the receiver");
		c_expect_eof(q[1], "(b) the peer: the receiver's SHUT_WR");
		_exit(0);
	}
	xclose(q[1]);
	send_anc(mp[0], "pair-b", 6, &q[0], 1, NULL, "(b)");
	xclose(q[0]);
	expect_str(mp[0], "ok", "(b) the receiver's report");
	child_ok(r, "(b) the receiver of a socketpair end: fstat, SO_TYPE, SO_PEERCRED (the "
		 "creator), 1000 round trips and 1 MiB each way with the sender's peer process, "
		 "SHUT_WR and EOF");
	child_ok(qp, "(b) the sender's peer process");
	xclose(mp[0]);
}

/* (c) One message, three fds: a regular file, a pipe write end, a socketpair end. */
static void acc_multi(void)
{
	int mp[2], p[2], u[2], fds[3];
	struct rmsg m;
	pid_t r;

	files_open();
	mkpair(mp, 0);
	r = child_fork();
	if (r == 0) {
		xclose(mp[0]);
		recv_expect(mp[1], "multi-c", 3, 0, &m, "(c) receiver");
		c_check(file_is(m.fds[0], 0), "(c) fd 0 of the message is file 0");
		c_check(is_type(m.fds[1], S_IFIFO) &&
			(fcntl(m.fds[1], F_GETFL) & O_ACCMODE) == O_WRONLY,
			"(c) fd 1 is a FIFO, O_WRONLY");
		c_check(is_type(m.fds[2], S_IFSOCK), "(c) fd 2 is a socket");
		write_str(m.fds[1], "via-pipe", "(c) receiver: the pipe");
		write_str(m.fds[2], "via-pair", "(c) receiver: the socketpair end");
		expect_str(m.fds[2], "reply", "(c) receiver: the reply");
		rmsg_close(&m);
		_exit(0);
	}
	xclose(mp[1]);
	mkpipe(p, 0);
	mkpair(u, 0);
	fds[0] = files[0];
	fds[1] = p[1];
	fds[2] = u[0];
	send_anc(mp[0], "multi-c", 7, fds, 3, NULL, "(c)");
	xclose(p[1]);
	xclose(u[0]);
	expect_str(p[0], "via-pipe", "(c) from the passed pipe write end");
	expect_str(u[1], "via-pair", "(c) from the passed socketpair end");
	write_str(u[1], "reply", "(c) the reply");
	wait_eof(p[0], "(c) the receiver closed the passed write end: the pipe");
	wait_eof(u[1], "(c) the receiver closed the passed socketpair end: its peer");
	child_ok(r, "(c) the receiver of a file, a pipe write end and a socketpair end in one "
		 "message: each one what it was, each working");
	xclose(p[0]);
	xclose(u[1]);
	xclose(mp[0]);
}

/* (d) The sender closes the passed ends right after sendmsg, before they are received. */
static void acc_closed(void)
{
	int mp[2], g[2], q[2], p[2];
	struct rmsg m1, m2;
	pid_t r;

	mkpair(mp, 0);
	mkpipe(g, O_CLOEXEC);
	r = child_fork();
	if (r == 0) {
		xclose(mp[0]);
		xclose(g[1]);
		c_wait_go(g[0]);
		recv_expect(mp[1], "closed-d1", 1, 0, &m1, "(d) receiver");
		recv_expect(mp[1], "closed-d2", 1, 0, &m2, "(d) receiver");
		write_str(m1.fds[0], "hi-d", "(d) receiver: the socketpair end");
		expect_str(m1.fds[0], "reply", "(d) receiver: the reply");
		write_str(m2.fds[0], "pipe-d", "(d) receiver: the pipe write end");
		rmsg_close(&m1);
		rmsg_close(&m2);
		_exit(0);
	}
	xclose(mp[1]);
	xclose(g[0]);
	mkpair(q, 0);
	send_anc(mp[0], "closed-d1", 9, &q[0], 1, NULL, "(d)");
	xclose(q[0]);
	mkpipe(p, 0);
	send_anc(mp[0], "closed-d2", 9, &p[1], 1, NULL, "(d)");
	xclose(p[1]);
	check_ev(q[1], -1, POLLOUT,
		 "(d) the sender closed its copy of the passed end: the other end");
	check_quiet(q[1], "(d) the other end: no EOF while the passed end is in flight");
	check_eq(poll_ev(p[0], POLLIN, QUIET_MS), 0, "(d) the pipe whose write end is in flight: "
		 "poll(POLLIN) revents (no EOF)");
	go(g[1], "(d) the receiver may receive now");
	expect_str(q[1], "hi-d", "(d) from the passed socketpair end");
	write_str(q[1], "reply", "(d) the reply");
	wait_eof(q[1], "(d) the receiver closed the passed socketpair end");
	expect_str(p[0], "pipe-d", "(d) from the passed pipe write end");
	wait_eof(p[0], "(d) the receiver closed the passed pipe write end");
	child_ok(r, "(d) the receiver of ends the sender had closed before they were received");
	xclose(q[1]);
	xclose(p[0]);
	xclose(g[1]);
	xclose(mp[0]);
}

/* (e) recv(), read() and recvmsg without control space: the passed fds are closed. */
static void acc_dropped(void)
{
	int mp[2], p[2], q[2], p2[2];
	char c;
	pid_t r;

	mkpair(mp, 0);
	r = child_fork();
	if (r == 0) {
		struct iovec iov;
		struct msghdr msg;
		char buf[16];

		xclose(mp[0]);
		step("(e) receiver: recv");
		c_check(recv(mp[1], buf, 7, 0) == 7 && !memcmp(buf, "drop-e1", 7),
			"(e) recv() of the message with a pipe read end: its 7 bytes");
		c_check(read(mp[1], buf, 7) == 7 && !memcmp(buf, "drop-e2", 7),
			"(e) read() of the message with a socketpair end: its 7 bytes");
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = buf;
		iov.iov_len = 7;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		c_check(recvmsg(mp[1], &msg, 0) == 7 && !memcmp(buf, "drop-e3", 7),
			"(e) recvmsg without control space: its 7 bytes");
		c_check(msg.msg_flags & MSG_CTRUNC,
			"(e) recvmsg without control space: MSG_CTRUNC (msg_flags 0x%x)",
			(unsigned int)msg.msg_flags);
		write_str(mp[1], "g", "(e) receiver: read all three");
		c_wait_go(mp[1]);
		_exit(0);
	}
	xclose(mp[1]);
	mkpipe(p, 0);
	send_anc(mp[0], "drop-e1", 7, &p[0], 1, NULL, "(e)");
	xclose(p[0]);
	mkpair(q, 0);
	send_anc(mp[0], "drop-e2", 7, &q[0], 1, NULL, "(e)");
	xclose(q[0]);
	mkpipe(p2, 0);
	send_anc(mp[0], "drop-e3", 7, &p2[0], 1, NULL, "(e)");
	xclose(p2[0]);
	read_exact(mp[0], &c, 1, "(e) the receiver read the three messages");
	wait_epipe(p[1], "(e) recv() without a control buffer closed the passed pipe read end");
	wait_eof(q[1], "(e) read() closed the passed socketpair end: its peer");
	wait_epipe(p2[1], "(e) recvmsg without control space closed the passed pipe read end");
	go(mp[0], "(e) the receiver may exit");
	child_ok(r, "(e) the receiver: each message's bytes, MSG_CTRUNC from recvmsg");
	xclose(p[1]);
	xclose(q[1]);
	xclose(p2[1]);
	xclose(mp[0]);
}

/* (f) Control space for fewer fds than sent: MSG_CTRUNC, the first ones kept, the rest closed. */
static void acc_ctrunc(void)
{
	int mp[2], p[2], p2[2], p3[2], fds[4];
	struct rmsg m;
	pid_t r;

	files_open();
	mkpair(mp, 0);
	r = child_fork();
	if (r == 0) {
		char buf[16];

		xclose(mp[0]);
		recv_anc(mp[1], buf, 8, CTL_FDS(2), 0, &m, "(f) receiver");
		c_check(m.n == 8 && !memcmp(buf, "trunc-f1", 8), "(f) the data of trunc-f1");
		c_check(m.flags & MSG_CTRUNC, "(f) 4 fds, room for 2: MSG_CTRUNC");
		c_check(m.nfds == 2 && file_is(m.fds[0], 1) && file_is(m.fds[1], 2),
			"(f) the 2 fds received are the first 2 sent (files 1 and 2): %u fds",
			m.nfds);
		rmsg_close(&m);
		/* CMSG_SPACE(sizeof(int)) is rounded up and holds 2: CMSG_LEN holds 1 */
		recv_anc(mp[1], buf, 8, CMSG_LEN(sizeof(int)), 0, &m, "(f) receiver");
		c_check(m.n == 8 && !memcmp(buf, "trunc-f2", 8), "(f) the data of trunc-f2");
		c_check((m.flags & MSG_CTRUNC) && m.nfds == 1 && is_type(m.fds[0], S_IFIFO),
			"(f) 3 fds, room for 1: MSG_CTRUNC and the pipe read end sent first");
		expect_str(m.fds[0], "f2-data", "(f) receiver: the kept pipe read end");
		write_str(mp[1], "g", "(f) receiver: received");
		expect_str(m.fds[0], "more", "(f) receiver: the kept pipe read end, later");
		rmsg_close(&m);
		c_wait_go(mp[1]);
		_exit(0);
	}
	xclose(mp[1]);
	mkpipe(p, 0);
	mkpipe(p2, 0);
	fds[0] = files[1];
	fds[1] = files[2];
	fds[2] = p[0];
	fds[3] = p2[0];
	send_anc(mp[0], "trunc-f1", 8, fds, 4, NULL, "(f)");
	xclose(p[0]);
	xclose(p2[0]);
	mkpipe(p3, 0);
	write_str(p3[1], "f2-data", "(f) into the pipe passed first");
	fds[0] = p3[0];
	fds[1] = files[3];
	fds[2] = files[4];
	send_anc(mp[0], "trunc-f2", 8, fds, 3, NULL, "(f)");
	xclose(p3[0]);
	expect_str(mp[0], "g", "(f) the receiver's report");
	wait_epipe(p[1], "(f) a pipe read end past the control space was closed");
	wait_epipe(p2[1], "(f) another pipe read end past the control space was closed");
	check_eq(write(p3[1], "more", 4), 4,
		 "(f) the kept pipe read end still has a reader: write");
	go(mp[0], "(f) the receiver may exit");
	child_ok(r, "(f) the receiver: MSG_CTRUNC, the first fds kept and working");
	xclose(p[1]);
	xclose(p2[1]);
	xclose(p3[1]);
	xclose(mp[0]);
}

/* (g) MSG_CMSG_CLOEXEC: FD_CLOEXEC on every fd received with it, on none without. */
static void acc_cloexec(void)
{
	int mp[2], p[2][2], u[2][2], fds[3];
	struct rmsg m[2];
	pid_t r;

	files_open();
	mkpair(mp, 0);
	r = child_fork();
	if (r == 0) {
		xclose(mp[0]);
		recv_expect(mp[1], "cloexec-g1", 3, MSG_CMSG_CLOEXEC, &m[0], "(g) receiver");
		recv_expect(mp[1], "cloexec-g2", 3, 0, &m[1], "(g) receiver");
		for (int i = 0; i < 2; i++) {
			for (unsigned int j = 0; j < 3; j++)
				c_check(fcntl(m[i].fds[j], F_GETFD) == (i ? 0 : FD_CLOEXEC),
					"(g) message %d, fd %u: F_GETFD %d, expected %d", i, j,
					fcntl(m[i].fds[j], F_GETFD), i ? 0 : FD_CLOEXEC);
			c_check(file_is(m[i].fds[0], 5 + i), "(g) message %d: the file", i);
			expect_str(m[i].fds[1], i ? "g2" : "g1", "(g) receiver: the pipe");
			write_str(m[i].fds[2], i ? "s2" : "s1", "(g) receiver: the socketpair end");
			rmsg_close(&m[i]);
		}
		_exit(0);
	}
	xclose(mp[1]);
	for (int i = 0; i < 2; i++) {
		mkpipe(p[i], 0);
		mkpair(u[i], 0);
		write_str(p[i][1], i ? "g2" : "g1", "(g) into the pipe");
		fds[0] = files[5 + i];
		fds[1] = p[i][0];
		fds[2] = u[i][0];
		send_anc(mp[0], i ? "cloexec-g2" : "cloexec-g1", 10, fds, 3, NULL, "(g)");
		xclose(p[i][0]);
		xclose(u[i][0]);
	}
	expect_str(u[0][1], "s1", "(g) from the end received with MSG_CMSG_CLOEXEC");
	expect_str(u[1][1], "s2", "(g) from the end received without");
	child_ok(r, "(g) the receiver: FD_CLOEXEC on a file, a pipe end and a socketpair end "
		 "received with MSG_CMSG_CLOEXEC, not on those received without; all working");
	for (int i = 0; i < 2; i++) {
		wait_epipe(p[i][1], i ? "(g) the receiver exited: the pipe received without "
			   "MSG_CMSG_CLOEXEC" : "(g) the receiver exited: the pipe received with "
			   "MSG_CMSG_CLOEXEC");
		xclose(p[i][1]);
		xclose(u[i][1]);
	}
	xclose(mp[0]);
}

#define EXEC_BYTES	(1u << 20)

/*
 * What (h) execs (--exec-probe): reads the pipe @p_s to EOF (pattern 21),
 * then answers "hello-h" on the socketpair end @s_s with the count.
 */
static int exec_probe(const char *p_s, const char *s_s)
{
	int pfd = atoi(p_s), sfd = atoi(s_s);
	char rep[32];
	uint64_t n;

	case_name = "scm-rights-accelerated";
	c_check(is_type(pfd, S_IFIFO), "exec probe: fd %d is a FIFO", pfd);
	c_check(is_type(sfd, S_IFSOCK), "exec probe: fd %d is a socket", sfd);
	n = pat_read_eof(pfd, 21, "exec probe: the pipe");
	expect_str(sfd, "hello-h", "exec probe: the socketpair end");
	memset(rep, 0, sizeof(rep));
	snprintf(rep, sizeof(rep), "probe %" PRIu64, n);
	write_all(sfd, rep, sizeof(rep), "exec probe: the answer");
	return 0;
}

/* (h) The receiver execs itself: the received ends work in the new image; a CLOEXEC one is gone. */
static void acc_exec(void)
{
	int mp[2], p[2], u[2], p2[2], fds[2];
	char rep[32];
	struct rmsg m;
	pid_t r;

	mkpair(mp, 0);
	r = child_fork();
	if (r == 0) {
		char exe[4096], a1[16], a2[16];
		struct rmsg m2;

		xclose(mp[0]);
		recv_expect(mp[1], "exec-h", 2, 0, &m, "(h) receiver");
		recv_expect(mp[1], "exec-h2", 1, MSG_CMSG_CLOEXEC, &m2, "(h) receiver");
		self_exe(exe, sizeof(exe));
		snprintf(a1, sizeof(a1), "%d", m.fds[0]);
		snprintf(a2, sizeof(a2), "%d", m.fds[1]);
		xclose(mp[1]);
		execl(exe, exe, "--exec-probe", a1, a2, (char *)NULL);
		fail_errno(errno, "(h) exec %s", exe);
	}
	xclose(mp[1]);
	mkpipe(p, 0);
	mkpair(u, 0);
	mkpipe(p2, 0);
	pat_write(p[1], 0, 1000, 21, "(h) before passing");
	fds[0] = p[0];
	fds[1] = u[0];
	send_anc(mp[0], "exec-h", 6, fds, 2, NULL, "(h)");
	send_anc(mp[0], "exec-h2", 7, &p2[0], 1, NULL, "(h)");
	xclose(p[0]);
	xclose(u[0]);
	xclose(p2[0]);
	pat_write(p[1], 1000, EXEC_BYTES, 21, "(h) after passing");
	xclose(p[1]);
	write_str(u[1], "hello-h", "(h) to the exec'd image");
	read_exact(u[1], rep, sizeof(rep), "(h) the exec'd image's answer");
	check_true(!strcmp(rep, "probe 1048576"), "(h) the exec'd receiver read the pipe received "
		   "before exec to EOF (1 MiB in order) and answered on the socketpair end");
	wait_epipe(p2[1],
		   "(h) the pipe read end received with MSG_CMSG_CLOEXEC was closed by exec");
	wait_eof(u[1], "(h) the exec'd image exited: the socketpair end");
	child_ok(r, "(h) the exec'd receiver");
	xclose(p2[1]);
	xclose(u[1]);
	xclose(mp[0]);
}

static void case_scm_rights_accelerated(void)
{
	acc_pipe();
	acc_pair();
	acc_multi();
	acc_closed();
	acc_dropped();
	acc_ctrunc();
	acc_cloexec();
	acc_exec();
}

/* ---- case scm-credentials ----------------------------------------------------------- */

/* The credentials of @m must be @pid's (and this uid and gid). */
static void check_cred(const struct rmsg *m, pid_t pid, const char *who, const char *what)
{
	if (!m->cred)
		fail("%s: no SCM_CREDENTIALS came with the data (SO_PASSCRED is on)", what);
	if (m->uc.pid != pid || m->uc.uid != getuid() || m->uc.gid != getgid())
		fail("%s: SCM_CREDENTIALS pid %d uid %u gid %u, expected %s's: pid %d uid %u "
		     "gid %u",
		     what, (int)m->uc.pid, m->uc.uid, m->uc.gid, who, (int)pid, getuid(), getgid());
	ok("%s: SCM_CREDENTIALS name %s (pid, uid, gid)", what, who);
}

/*
 * Credentials are the sender's, whether it sends them (SCM_CREDENTIALS) or
 * not: with SO_PASSCRED on the receiving end the kernel attaches them to
 * every write, and a read never joins bytes of different credentials
 * (unix_stream_read_generic); it does join bytes of the same ones, and
 * without SO_PASSCRED nothing cuts the stream at credentials. The checks
 * that the preload passed when this was written come first.
 */
static void case_scm_credentials(void)
{
	struct ucred me = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
	int sv[2], nv[2], g[2], one = 1;
	char buf[64];
	struct rmsg m;
	pid_t c, d;

	files_open();
	mkpair(sv, 0);
	mkpipe(g, O_CLOEXEC);
	MUST(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), "SO_PASSCRED");
	check_eq(sockopt_int(sv[1], SOL_SOCKET, SO_PASSCRED, "SO_PASSCRED"), 1,
		 "end 1: SO_PASSCRED after setting it");
	c = child_fork();
	if (c == 0) {
		struct ucred uc = { .pid = getpid(), .uid = getuid(), .gid = getgid() };

		xclose(sv[1]);
		xclose(g[1]);
		send_anc(sv[0], "cred-explicit", 13, NULL, 0, &uc, "sender child");
		c_wait_go(g[0]);
		send_anc(sv[0], "cred-rights", 11, &files[7], 1, &uc, "sender child");
		c_wait_go(g[0]);
		write_str(sv[0], "plain-c", "sender child");
		c_wait_go(g[0]);
		write_str(sv[0], "from-c", "sender child");
		_exit(0);
	}
	xclose(g[0]);
	recv_expect(sv[1], "cred-explicit", 0, 0, &m, "explicit SCM_CREDENTIALS from a child");
	ok("explicit SCM_CREDENTIALS from a child: the message's 13 bytes");
	check_cred(&m, c, "the sending child", "explicit SCM_CREDENTIALS from a child");
	go(g[1], "the sender child");
	recv_expect(sv[1], "cred-rights", 1, 0, &m,
		    "SCM_CREDENTIALS and SCM_RIGHTS in one message");
	check_true(file_is(m.fds[0], 7), "SCM_CREDENTIALS and SCM_RIGHTS in one message: the file");
	check_cred(&m, c, "the sending child", "SCM_CREDENTIALS and SCM_RIGHTS in one message");
	rmsg_close(&m);

	mkpair(nv, 0);
	d = child_fork();
	if (d == 0) {
		struct ucred uc = { .pid = getpid(), .uid = getuid(), .gid = getgid() };

		xclose(nv[1]);
		send_anc(nv[0], "no-passcred", 11, NULL, 0, &uc, "sender child");
		_exit(0);
	}
	recv_expect(nv[1], "no-passcred", 0, 0, &m, "explicit SCM_CREDENTIALS, SO_PASSCRED off");
	check_true(!m.cred, "explicit SCM_CREDENTIALS to an end without SO_PASSCRED: the data, "
		   "no control message");
	child_ok(d, "the sender child of the pair without SO_PASSCRED");

	go(g[1], "the sender child");
	recv_expect(sv[1], "plain-c", 0, 0, &m, "a plain write to an end with SO_PASSCRED");
	check_cred(&m, c, "the writing child", "a plain write to an end with SO_PASSCRED");
	go(g[1], "the sender child");
	child_ok(c, "the sender child");
	d = child_fork();
	if (d == 0) {
		xclose(sv[1]);
		write_str(sv[0], "from-d", "second writer child");
		_exit(0);
	}
	child_ok(d, "a second writer child");
	recv_anc(sv[1], buf, sizeof(buf), CTL_ALL, 0, &m, "two writers");
	check_true(m.n == 6 && !memcmp(buf, "from-c", 6), "two writers queued, one read of 64 "
		   "bytes: only the first writer's 6 bytes (never joined across writers with "
		   "SO_PASSCRED)");
	check_cred(&m, c, "the first writer", "two writers: the first read");
	recv_anc(sv[1], buf, sizeof(buf), CTL_ALL, 0, &m, "two writers");
	check_true(m.n == 6 && !memcmp(buf, "from-d", 6), "two writers: the second read: the "
		   "second writer's 6 bytes");
	check_cred(&m, d, "the second writer", "two writers: the second read");

	send_anc(sv[0], "E1", 2, NULL, 0, &me, "this process");
	write_str(sv[0], "P2", "this process");
	recv_anc(sv[1], buf, sizeof(buf), CTL_ALL, 0, &m, "one writer, SO_PASSCRED");
	check_true(m.n == 4 && !memcmp(buf, "E1P2", 4), "SO_PASSCRED: explicit "
		   "SCM_CREDENTIALS then a plain write of the same process, queued: one read of 64 "
		   "bytes takes both (the same credentials)");
	check_cred(&m, getpid(), "this process", "one writer, SO_PASSCRED");
	send_anc(nv[0], "nopass", 6, NULL, 0, &me, "this process");
	write_str(nv[0], "after", "this process");
	recv_anc(nv[1], buf, sizeof(buf), CTL_ALL, 0, &m, "one writer, SO_PASSCRED off");
	check_true(m.n == 11 && !memcmp(buf, "nopassafter", 11) && !m.cred, "SO_PASSCRED "
		   "off: explicit SCM_CREDENTIALS then a plain write, queued: one read of 64 bytes "
		   "takes both, no control message");
	xclose(sv[0]);
	xclose(sv[1]);
	xclose(nv[0]);
	xclose(nv[1]);
	xclose(g[1]);
}

/* ---- running real programs ---------------------------------------------------------- */

/*
 * Runs @argv (execvp) in its own process group with stdin from /dev/null,
 * stdout into a pipe of ours and stderr ours. Reads stdout to EOF and
 * reaps it, all within @guard_ms; then its group must be empty. Returns the
 * exit status (128 + signal); *@out the output (malloc'ed).
 */
static int run_capture(char *const argv[], int guard_ms, char **out, const char *what)
{
	uint64_t end = now_ns() + (uint64_t)guard_ms * NSEC_PER_MS;
	size_t cap = 65536, n = 0;
	int o[2], code;
	char *buf;
	pid_t pid;

	mkpipe(o, O_CLOEXEC);
	pid = child_fork();
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY | O_CLOEXEC);

		setpgid(0, 0);
		if (in < 0 || dup2(in, 0) < 0 || dup2(o[1], 1) < 0)
			fail_errno(errno, "%s: dup2", what);
		signal(SIGPIPE, SIG_DFL);
		alarm(0);	/* a pending alarm survives exec: our guard is the parent's */
		execvp(argv[0], argv);
		fail_errno(errno, "exec %s", argv[0]);
	}
	setpgid(pid, pid);
	victim_add(-pid);
	xclose(o[1]);
	buf = malloc(cap + 1);
	if (!buf)
		fail("out of memory");
	for (;;) {
		struct pollfd p = { .fd = o[0], .events = POLLIN };
		uint64_t now = now_ns();
		ssize_t r;
		int pr;

		if (now > end)
			hang("%s: no EOF on its stdout within %d ms", what, guard_ms);
		step("%s: its stdout", what);
		alarm((unsigned int)(guard_ms / 1000 + ALARM_S));
		pr = poll(&p, 1, (int)((end - now) / NSEC_PER_MS) + 1);
		if (pr < 0 && errno != EINTR)
			fail_errno(errno, "%s: poll its stdout", what);
		if (pr <= 0)
			continue;
		if (n == cap) {
			char *nb = realloc(buf, cap * 2 + 1);

			if (!nb)
				fail("out of memory");
			buf = nb;
			cap *= 2;
		}
		r = read(o[0], buf + n, cap - n);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			fail_errno(errno, "%s: read its stdout", what);
		if (!r)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	xclose(o[0]);
	code = child_wait_ms(pid, (int)((end - now_ns()) / NSEC_PER_MS) + 1000, what);
	group_gone(pid, what);
	*out = buf;
	return code;
}

/* ---- case python -------------------------------------------------------------------- */

/* Counts the socketpairs python makes (multiprocessing calls socket.socketpair() at call time). */
static const char py_script[] =
	"import os, sys, socket, array, hashlib, tempfile, traceback\n"
	"import multiprocessing as mp\n"
	"from multiprocessing import reduction\n"
	"_socketpair = socket.socketpair\n"
	"made = [0]\n"
	"def counted_socketpair(*a, **k):\n"
	"    made[0] += 1\n"
	"    return _socketpair(*a, **k)\n"
	"socket.socketpair = counted_socketpair\n"
	"ctx = mp.get_context('fork')\n"
	"def say(s):\n"
	"    print('PY ok ' + s, flush=True)\n"
	"def joined(p, what):\n"
	"    p.join(60)\n"
	"    if p.exitcode != 0:\n"
	"        sys.exit('%s: exit code %r' % (what, p.exitcode))\n"
	/* 1: Pipe() (duplex) both ways */
	"def obj(i):\n"
	"    return {'i': i, 's': 'x' * (i % 50), 'l': list(range(i % 13)), 't': (i, -i, i / 3),\n"
	"            'b': b'%d.' % i * (i % 7)}\n"
	"def echo(c, n):\n"
	"    for i in range(n):\n"
	"        m = c.recv()\n"
	"        if m != obj(i):\n"
	"            c.send(('bad', i, m))\n"
	"            return\n"
	"        c.send(('re', i, obj(n - i)))\n"
	"    c.close()\n"
	"N = 10000\n"
	"a, b = ctx.Pipe()\n"
	"p = ctx.Process(target=echo, args=(b, N))\n"
	"p.start()\n"
	"b.close()\n"
	"for i in range(N):\n"
	"    a.send(obj(i))\n"
	"    if not a.poll(60):\n"
	"        sys.exit('no answer to object %d within 60 s' % i)\n"
	"    r = a.recv()\n"
	"    if r != ('re', i, obj(N - i)):\n"
	"        sys.exit('object %d: answer %r' % (i, r))\n"
	"say('Pipe() (duplex: a socketpair): 10000 objects each way between two processes, "
	"in order')\n"
	"if not a.poll(60):\n"
	"    sys.exit('no EOF within 60 s')\n"
	"try:\n"
	"    a.recv()\n"
	"    sys.exit('data after the last answer')\n"
	"except EOFError:\n"
	"    say('Pipe(): EOFError once the child exited')\n"
	"joined(p, 'echo child')\n"
	"a.close()\n"
	/* 2: reduction.send_handle/recv_handle over Pipe() */
	"def handles(c):\n"
	"    fd = reduction.recv_handle(c)\n"
	"    head = os.pread(fd, 64, 0)\n"
	"    os.close(fd)\n"
	"    fd = reduction.recv_handle(c)\n"
	"    h = hashlib.sha256()\n"
	"    while True:\n"
	"        d = os.read(fd, 65536)\n"
	"        if not d:\n"
	"            break\n"
	"        h.update(d)\n"
	"    os.close(fd)\n"
	"    c.send((head, h.hexdigest()))\n"
	"    c.close()\n"
	"a, b = ctx.Pipe()\n"
	"p = ctx.Process(target=handles, args=(b,))\n"
	"p.start()\n"
	"b.close()\n"
	"big = bytes(range(256)) * 4096\n"
	"with tempfile.TemporaryFile() as f:\n"
	"    f.write(b'handle file 42')\n"
	"    f.flush()\n"
	"    reduction.send_handle(a, f.fileno(), p.pid)\n"
	"r, w = os.pipe()\n"
	"reduction.send_handle(a, r, p.pid)\n"
	"os.close(r)\n"
	"v = memoryview(big)\n"
	"while v:\n"
	"    v = v[os.write(w, v[:65536]):]\n"
	"os.close(w)\n"
	"if not a.poll(60):\n"
	"    sys.exit('no answer from the recv_handle child within 60 s')\n"
	"head, hx = a.recv()\n"
	"if head != b'handle file 42' or hx != hashlib.sha256(big).hexdigest():\n"
	"    sys.exit('recv_handle child: %r %r' % (head, hx))\n"
	"say('reduction.send_handle/recv_handle over Pipe(): a file and a pipe read end (1 MiB "
	"through it) work in the child')\n"
	"joined(p, 'recv_handle child')\n"
	"a.close()\n"
	/* 3: socket.socketpair(), sendmsg/recvmsg and send_fds/recv_fds across fork */
	"def fds_of(anc):\n"
	"    fds = array.array('i')\n"
	"    for lvl, typ, d in anc:\n"
	"        if lvl == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:\n"
	"            fds.frombytes(d[:len(d) - len(d) % fds.itemsize])\n"
	"    return list(fds)\n"
	"s1, s2 = socket.socketpair()\n"
	"pid = os.fork()\n"
	"if pid == 0:\n"
	"    try:\n"
	"        s1.close()\n"
	"        out = []\n"
	"        msg, anc, fl, _ = s2.recvmsg(64, socket.CMSG_SPACE(8 * 4))\n"
	"        fds = fds_of(anc)\n"
	"        out.append(msg + b':' + b','.join(os.pread(fd, 64, 0) for fd in fds))\n"
	"        for fd in fds:\n"
	"            os.close(fd)\n"
	"        msg, fds, fl, _ = socket.recv_fds(s2, 64, 8)\n"
	"        out.append(msg + b':' + b','.join(os.pread(fd, 64, 0) for fd in fds))\n"
	"        for fd in fds:\n"
	"            os.close(fd)\n"
	"        s2.sendall(b'|'.join(out))\n"
	"        s2.close()\n"
	"        os._exit(0)\n"
	"    except BaseException:\n"
	"        traceback.print_exc()\n"
	"        os._exit(1)\n"
	"s2.close()\n"
	"files = []\n"
	"for k in range(3):\n"
	"    f = tempfile.TemporaryFile()\n"
	"    f.write(b'f%d' % k)\n"
	"    f.flush()\n"
	"    files.append(f)\n"
	"s1.sendmsg([b'three'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,\n"
	"                         array.array('i', [f.fileno() for f in files]))])\n"
	"socket.send_fds(s1, [b'two'], [files[2].fileno(), files[0].fileno()])\n"
	"for f in files:\n"
	"    f.close()\n"
	"got = b''\n"
	"while True:\n"
	"    d = s1.recv(4096)\n"
	"    if not d:\n"
	"        break\n"
	"    got += d\n"
	"if got != b'three:f0,f1,f2|two:f2,f0':\n"
	"    sys.exit('socketpair SCM_RIGHTS child answered %r' % got)\n"
	"st = os.waitpid(pid, 0)[1]\n"
	"if st != 0:\n"
	"    sys.exit('socketpair child: status %d' % st)\n"
	"s1.close()\n"
	"say('socket.socketpair(): sendmsg SCM_RIGHTS of 3 files and send_fds of 2 to a forked "
	"child: recvmsg and recv_fds get them in order')\n"
	/* 4: a pipe read end passed within one process */
	"x, y = socket.socketpair()\n"
	"r, w = os.pipe()\n"
	"os.write(w, b'through the passed pipe')\n"
	"os.close(w)\n"
	"socket.send_fds(x, [b'p'], [r])\n"
	"os.close(r)\n"
	"msg, fds, fl, _ = socket.recv_fds(y, 16, 4)\n"
	"if msg != b'p' or len(fds) != 1:\n"
	"    sys.exit('recv_fds in one process: %r %r' % (msg, fds))\n"
	"if os.read(fds[0], 100) != b'through the passed pipe' or os.read(fds[0], 100) != b'':\n"
	"    sys.exit('the pipe read end passed in one process: wrong data or no EOF')\n"
	"os.close(fds[0])\n"
	"x.close()\n"
	"y.close()\n"
	"say('socket.socketpair() in one process: a pipe read end passed with send_fds reads "
	"its data, then EOF')\n"
	"print('PY socketpairs=%d' % made[0], flush=True)\n";

static void case_python(void)
{
	char *const argv[] = { (char *)"python3", (char *)"-c", (char *)py_script, NULL };
	unsigned int oks = 0, pairs = 0;
	bool counted = false;
	char *out, *line, *save = NULL;
	int code;

	if (!have_prog("python3"))
		skip_case("no python3 on PATH");
	code = run_capture(argv, LONG_MS, &out, "python3");
	if (code != 0)
		fail("python3 exit status %d (its traceback is on stderr); it printed: %.500s",
		     code, out);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "PY ok ", 6)) {
			ok("python3: %s", line + 6);
			oks++;
		} else if (sscanf(line, "PY socketpairs=%u", &pairs) == 1) {
			counted = true;
		} else {
			info("python3 printed: %s", line);
		}
	}
	check_eq(oks, 5, "python3: result lines");
	if (!counted)
		fail("python3 exited 0 without its socketpair count");
	n_pairs += pairs;
	info("python3 made %u socketpairs", pairs);
	free(out);
}

/* ---- case exec ---------------------------------------------------------------------- */

/*
 * @total pattern bytes into socketpair end @fd (cat's stdin and stdout are
 * the other end) while reading them back, nonblocking, by poll; SHUT_WR
 * once all is written; read to EOF. Every byte must come back, in order.
 */
static void pump(int fd, size_t total, const char *what)
{
	static const size_t sizes[] = { 65536, 1, 4096, 7000, 30000, 100 };
	static uint8_t wbuf[65536], rbuf[65536];
	uint64_t woff = 0, roff = 0;
	unsigned int k = 0;
	bool wopen = true;

	set_nonblock(fd, true);
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN | (wopen ? POLLOUT : 0) };
		int n;

		step("%s: %" PRIu64 " bytes written, %" PRIu64 " read", what, woff, roff);
		n = poll(&pf, 1, GUARD_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail_errno(errno, "%s: poll", what);
		if (n == 0)
			hang("%s: nothing to read or write for %d ms (%" PRIu64 " bytes written, "
			     "%" PRIu64 " read)", what, GUARD_MS, woff, roff);
		if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(fd, rbuf, sizeof(rbuf));

			if (r < 0 && errno != EAGAIN)
				fail_errno(errno, "%s: read", what);
			if (r == 0)
				break;
			if (r > 0) {
				pat_check(rbuf, roff, (size_t)r, 8, what);
				roff += (uint64_t)r;
			}
		}
		if (wopen && (pf.revents & POLLOUT)) {
			size_t chunk = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];
			ssize_t r;

			if (chunk > total - woff)
				chunk = (size_t)(total - woff);
			pat_fill(wbuf, woff, chunk, 8);
			r = send(fd, wbuf, chunk, MSG_NOSIGNAL);
			if (r < 0 && errno != EAGAIN)
				fail_errno(errno, "%s: send", what);
			if (r > 0)
				woff += (uint64_t)r;
			if (woff == total) {
				MUST(shutdown(fd, SHUT_WR), "%s: SHUT_WR", what);
				wopen = false;
			}
		}
	}
	if (wopen)
		fail("%s: EOF from cat before everything was written (%" PRIu64 " of %zu)", what,
		     woff, total);
	check_eq((long long)roff, (long long)total, "%s: bytes back from cat, in order, then EOF",
		 what);
}

static void case_exec(void)
{
	const size_t total = 10u << 20;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	char *const argv[] = { (char *)"cat", NULL };
	int sv[2], err;
	sigset_t def;
	pid_t pid;

	mkpair(sv, 0);
	pid = child_fork();
	if (pid == 0) {
		if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0)
			fail_errno(errno, "dup2");
		close(sv[0]);
		close(sv[1]);
		signal(SIGPIPE, SIG_DFL);
		alarm(0);
		execvp("cat", argv);
		fail_errno(errno, "exec cat");
	}
	xclose(sv[1]);
	pump(sv[0], total, "fork, socketpair end dup2'ed onto 0 and 1, exec cat");
	xclose(sv[0]);
	child_ok(pid, "fork, exec cat");

	mkpair(sv, 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
	posix_spawn_file_actions_addclose(&fa, sv[0]);
	posix_spawn_file_actions_addclose(&fa, sv[1]);
	posix_spawnattr_init(&at);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
	fflush(stdout);
	fflush(stderr);
	err = posix_spawnp(&pid, "cat", &fa, &at, argv, environ);
	if (err)
		fail_errno(err, "posix_spawnp cat");
	victim_add(pid);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	xclose(sv[1]);
	pump(sv[0], total, "posix_spawn cat, file actions dup2 of a socketpair end onto 0 and 1");
	xclose(sv[0]);
	child_ok(pid, "posix_spawn cat");
}

/* ---- named sockets: names, listeners, connections ----------------------------------- */

/*
 * A name of an AF_UNIX socket: a path in this run's temp dir, or an abstract
 * name (with this process's pid). Neither is ever printed on an "ok" line
 * (they differ between runs); @tag names it in messages.
 */
struct uaddr {
	struct sockaddr_un sa;
	socklen_t len;
	bool abstract;
	const char *tag;
};

static char named_dir[256];
static pid_t named_owner;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* At exit, in the process that made it: the temp dir and the sockets in it. */
static void named_cleanup(void)
{
	if (named_dir[0] && getpid() == named_owner)
		nftw(named_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The temp dir of the pathname sockets, made once; 0755: another user may search it. */
static const char *named_tmp(void)
{
	const char *tmp = getenv("TMPDIR");

	if (named_dir[0])
		return named_dir;
	snprintf(named_dir, sizeof(named_dir), "%s/ipcd-unix-named-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(named_dir))
		fail_errno(errno, "mkdtemp %s", named_dir);
	MUST(chmod(named_dir, 0755), "chmod %s", named_dir);
	named_owner = getpid();
	atexit(named_cleanup);
	return named_dir;
}

/* The path @rel in the temp dir (removed first, if a socket of an earlier run is there). */
static void ua_path(struct uaddr *a, const char *rel)
{
	memset(a, 0, sizeof(*a));
	a->sa.sun_family = AF_UNIX;
	snprintf(a->sa.sun_path, sizeof(a->sa.sun_path), "%s/%s", named_tmp(), rel);
	a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a->sa.sun_path) + 1);
	a->tag = rel;
	unlink(a->sa.sun_path);
}

/* The abstract name "\0ipcd-unix-PID-@tag" (no terminating NUL: its length says where it ends). */
static void ua_abstract(struct uaddr *a, const char *tag)
{
	int n;

	memset(a, 0, sizeof(*a));
	a->sa.sun_family = AF_UNIX;
	n = snprintf(a->sa.sun_path + 1, sizeof(a->sa.sun_path) - 1, "ipcd-unix-%d-%s",
		     (int)getpid(), tag);
	a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	a->abstract = true;
	a->tag = tag;
}

static int usock(int flags)
{
	return (int)MUST(socket(AF_UNIX, SOCK_STREAM | flags, 0), "socket(AF_UNIX, SOCK_STREAM)");
}

/* A listener on @a (SOCK_STREAM | @flags, backlog @backlog). */
static int listen_on(const struct uaddr *a, int backlog, int flags)
{
	int l = usock(flags);

	MUST(bind(l, (const struct sockaddr *)&a->sa, a->len), "bind %s", a->tag);
	MUST(listen(l, backlog), "listen %s", a->tag);
	return l;
}

/* A socket (SOCK_STREAM | @flags) connected to @a. */
static int connect_to(const struct uaddr *a, int flags, const char *what)
{
	int c = usock(flags);

	step("%s: connect to %s", what, a->tag);
	if (connect(c, (const struct sockaddr *)&a->sa, a->len))
		fail_errno(errno, "%s: connect to %s", what, a->tag);
	return c;
}

/* connect() to @a, a child's: -1 with errno, or the socket. */
static int c_connect(const struct uaddr *a)
{
	int c = socket(AF_UNIX, SOCK_STREAM, 0);

	if (c < 0)
		fail_errno(errno, "child: socket");
	if (connect(c, (const struct sockaddr *)&a->sa, a->len)) {
		int e = errno;

		close(c);
		errno = e;
		return -1;
	}
	return c;
}

static int accept_on(int l, int flags, const char *what)
{
	int a;

	step("%s: accept", what);
	do
		a = accept4(l, NULL, NULL, flags);
	while (a < 0 && errno == EINTR);
	if (a < 0)
		fail_errno(errno, "%s: accept", what);
	return a;
}

/* An address a call returned (@sa, @len) is @want's name; NULL: unnamed (the family only). */
static bool addr_is(const struct sockaddr_un *sa, socklen_t len, const struct uaddr *want)
{
	if (!want)
		return len == sizeof(sa_family_t) && sa->sun_family == AF_UNIX;
	return len == want->len && !memcmp(sa, &want->sa, len);
}

static void addr_show(const struct sockaddr_un *sa, socklen_t len, char *buf, size_t n)
{
	size_t k = len > offsetof(struct sockaddr_un, sun_path) ?
		   len - offsetof(struct sockaddr_un, sun_path) : 0, o = 0;

	o += (size_t)snprintf(buf, n, "len %u family %u \"", (unsigned int)len, sa->sun_family);
	for (size_t i = 0; i < k && i < sizeof(sa->sun_path) && o + 5 < n; i++)
		o += (size_t)snprintf(buf + o, n - o, sa->sun_path[i] >= 32 &&
				      sa->sun_path[i] < 127 ? "%c" : "\\%o",
				      (unsigned char)sa->sun_path[i]);
	snprintf(buf + o, n - o, "\"");
}

enum { NAME_SOCK, NAME_PEER };

/* getsockname (@which NAME_SOCK) or getpeername of @fd: @want's name (NULL: unnamed). */
static bool name_is(int fd, int which, const struct uaddr *want, char *got, size_t n)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int rc;

	memset(&sa, 0x5a, sizeof(sa));
	rc = which == NAME_SOCK ? getsockname(fd, (struct sockaddr *)&sa, &len) :
				  getpeername(fd, (struct sockaddr *)&sa, &len);
	if (rc) {
		snprintf(got, n, "-1 %s", errname(errno));
		return false;
	}
	addr_show(&sa, len, got, n);
	return addr_is(&sa, len, want);
}

static void check_name(int fd, int which, const struct uaddr *want, const char *what)
{
	const char *call = which == NAME_SOCK ? "getsockname" : "getpeername";
	char got[300];

	if (!name_is(fd, which, want, got, sizeof(got)))
		fail("%s: %s: got %s, expected %s", what, call, got,
		     want ? want->tag : "unnamed (addrlen sizeof(sa_family_t))");
	if (want)
		ok("%s: %s: the %s name %s", what, call, want->abstract ? "abstract" : "path",
		   want->tag);
	else
		ok("%s: %s: unnamed (addrlen == sizeof(sa_family_t), AF_UNIX)", what, call);
}

/* accept() with an address buffer: the connection's fd; its address must be @want's. */
static int accept_addr(int l, const struct uaddr *want, const char *what)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	char got[300];
	int a;

	memset(&sa, 0x5a, sizeof(sa));
	step("%s: accept", what);
	do
		a = accept(l, (struct sockaddr *)&sa, &len);
	while (a < 0 && errno == EINTR);
	if (a < 0)
		fail_errno(errno, "%s: accept", what);
	addr_show(&sa, len, got, sizeof(got));
	if (!addr_is(&sa, len, want))
		fail("%s: accept's address: %s, expected %s", what, got,
		     want ? want->tag : "unnamed (addrlen sizeof(sa_family_t))");
	if (want)
		ok("%s: accept's address: the connector's name %s", what, want->tag);
	else
		ok("%s: accept's address: the connector is unnamed (addrlen == "
		   "sizeof(sa_family_t))", what);
	return a;
}

/*
 * A listener's readiness, asked for POLLIN only (POLLOUT of a listener
 * differs between kernel versions): POLLIN iff a connection is pending.
 */
static void check_lis(int l, bool pending, const char *what)
{
	struct epoll_event e = { .events = EPOLLIN, .data.fd = l };
	uint64_t end = now_ns() + (uint64_t)GUARD_MS * NSEC_PER_MS;
	unsigned int want = pending ? POLLIN : 0, got, egot;
	int ep = (int)MUST(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");

	MUST(epoll_ctl(ep, EPOLL_CTL_ADD, l, &e), "epoll_ctl ADD %d", l);
	step("%s: poll the listener", what);
	if (!pending) {
		got = poll_ev(l, POLLIN, QUIET_MS);
		egot = epoll_ev(ep, QUIET_MS);
	} else {
		for (;;) {
			got = poll_ev(l, POLLIN, 0);
			egot = epoll_ev(ep, 0);
			if ((got == want && egot == want) || now_ns() > end)
				break;
			sleep_ms(1);
		}
	}
	xclose(ep);
	if (got != want || egot != want)
		fail("%s: the listener: poll(POLLIN) %s, epoll(EPOLLIN) %s, expected %s", what,
		     ev_str(got, "POLL"), ev_str(egot, "EPOLL"), ev_str(want, "POLL"));
	ok("%s: the listener: poll and epoll (POLLIN asked) -> %s", what, ev_str(want, "POLL"));
}

/* SO_PEERCRED of @fd names @pid, @uid and @gid (a child's check: false if not). */
static bool peercred_is(int fd, pid_t pid, uid_t uid, gid_t gid)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	memset(&uc, 0, sizeof(uc));
	return !getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) && len == sizeof(uc) &&
	       uc.pid == pid && uc.uid == uid && uc.gid == gid;
}

/* The ends mk_named() connects: a listener of its own, connector end 0 (or the acceptor). */
static struct uaddr mk_addr;
static int mk_lis = -1;
static bool mk_acceptor_first;

static void mk_named(int sv[2], int flags)
{
	int c = connect_to(&mk_addr, flags, "a connection"), a;

	a = accept_on(mk_lis, flags, "a connection");
	sv[0] = mk_acceptor_first ? a : c;
	sv[1] = mk_acceptor_first ? c : a;
	n_named++;
}

static void mk_begin(const struct uaddr *a, bool acceptor_first)
{
	mk_addr = *a;
	mk_lis = listen_on(a, 16, SOCK_CLOEXEC);
	mk_acceptor_first = acceptor_first;
}

static void mk_end(void)
{
	xclose(mk_lis);
	mk_lis = -1;
	if (!mk_addr.abstract)
		unlink(mk_addr.sa.sun_path);
}

/* ---- case named-basics, named-abstract ---------------------------------------------- */

#define NB_RT		10000		/* round trips of RT_MSG bytes */
#define NB_BULK		(64ull << 20)	/* one way, checked byte by byte and summed */

static uint64_t fnv64(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The connector, a forked child: its checks, round trips, the bulk, then EOF. */
static void ids_child(const struct uaddr *a, pid_t parent)
{
	static uint8_t buf[65536];
	uint64_t off = 0, sum = 0xcbf29ce484222325ull;
	uint8_t m[RT_MSG];
	char got[300];
	int c = c_connect(a);

	if (c < 0)
		fail_errno(errno, "child: connect to %s", a->tag);
	c_check(name_is(c, NAME_SOCK, NULL, got, sizeof(got)),
		"connector: getsockname: unnamed, got %s", got);
	c_check(name_is(c, NAME_PEER, a, got, sizeof(got)),
		"connector: getpeername: the listener's name, got %s", got);
	c_check(peercred_is(c, parent, getuid(), getgid()),
		"connector: SO_PEERCRED names the listening process");
	c_check(sockopt_int(c, SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN") == 0,
		"connector: SO_ACCEPTCONN 0");
	c_check(sockopt_int(c, SOL_SOCKET, SO_TYPE, "SO_TYPE") == SOCK_STREAM &&
		sockopt_int(c, SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN") == AF_UNIX,
		"connector: SO_TYPE, SO_DOMAIN");
	write_str(c, "hello", "connector");
	for (uint32_t r = 0; r < NB_RT; r++) {
		rt_fill(m, r, 1);
		if (!c_write_all(c, m, RT_MSG))
			fail_errno(errno, "connector: round %u: write", r);
		if (!c_read_exact(c, m, RT_MSG))
			fail("connector: round %u: read: %s", r, errno ? errname(errno) : "EOF");
		rt_check(m, r, 2, "connector: the pong");
		if (!(r % 1000))
			alarm(ALARM_S);
	}
	while (off < NB_BULK) {
		size_t n = sizeof(buf) - (off / sizeof(buf)) % 7;

		if (n > NB_BULK - off)
			n = (size_t)(NB_BULK - off);
		pat_fill(buf, off, n, 21);
		sum = fnv64(sum, buf, n);
		write_all(c, buf, n, "connector: the bulk");
		off += n;
	}
	write_all(c, &sum, sizeof(sum), "connector: the bulk's checksum");
	MUST(shutdown(c, SHUT_WR), "connector: SHUT_WR");
	expect_str(c, "bye", "connector: the acceptor's last words");
	c_expect_eof(c, "connector: after the acceptor's close");
	c_check(send(c, "x", 1, MSG_NOSIGNAL) == -1 && errno == EPIPE,
		"connector: send after the acceptor closed: EPIPE");
	xclose(c);
	_exit(0);
}

/* A listener on @a; a child connects: names, options, credentials; data both ways; EOF. */
static void named_ids(const struct uaddr *a)
{
	static uint8_t buf[65536];
	uint64_t off = 0, sum = 0xcbf29ce484222325ull, want;
	struct uaddr dup_a = *a;
	uint8_t m[RT_MSG];
	int l, x, c;
	pid_t pid;

	l = listen_on(a, 8, 0);
	check_eq(sockopt_int(l, SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN"), 1,
		 "listener: SO_ACCEPTCONN");
	check_eq(sockopt_int(l, SOL_SOCKET, SO_TYPE, "SO_TYPE"), SOCK_STREAM, "listener: SO_TYPE");
	check_eq(sockopt_int(l, SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN"), AF_UNIX,
		 "listener: SO_DOMAIN");
	check_name(l, NAME_SOCK, a, "listener");
	CHECK_ERR(getpeername(l, (struct sockaddr *)&dup_a.sa, &dup_a.len), ENOTCONN,
		  "listener: getpeername");
	if (!a->abstract) {
		struct stat st;

		MUST(stat(a->sa.sun_path, &st), "stat %s", a->tag);
		check_true(S_ISSOCK(st.st_mode), "the listener's path: stat: S_ISSOCK");
	}
	x = usock(0);
	CHECK_ERR(bind(x, (const struct sockaddr *)&a->sa, a->len), EADDRINUSE,
		  "another socket: bind to the listener's name");
	xclose(x);
	set_nonblock(l, true);
	CHECK_ERR(accept(l, NULL, NULL), EAGAIN, "nonblocking listener: accept, none pending");
	set_nonblock(l, false);
	check_lis(l, false, "nothing pending");

	pid = child_fork();
	if (pid == 0) {
		xclose(l);
		ids_child(a, getppid());
	}
	check_lis(l, true, "a child connected");
	x = accept_addr(l, NULL, "the child's connection");
	n_named++;
	check_lis(l, false, "the connection accepted");
	check_name(x, NAME_SOCK, a, "accepted end");
	check_name(x, NAME_PEER, NULL, "accepted end");
	check_true(peercred_is(x, pid, getuid(), getgid()),
		   "accepted end: SO_PEERCRED names the connecting child (pid, uid, gid)");
	check_eq(sockopt_int(x, SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN"), 0,
		 "accepted end: SO_ACCEPTCONN");
	check_eq(sockopt_int(x, SOL_SOCKET, SO_TYPE, "SO_TYPE"), SOCK_STREAM,
		 "accepted end: SO_TYPE");
	check_eq(sockopt_int(x, SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN"), AF_UNIX,
		 "accepted end: SO_DOMAIN");
	check_eq(sockopt_int(x, SOL_SOCKET, SO_ERROR, "SO_ERROR"), 0, "accepted end: SO_ERROR");
	check_eq(fcntl(x, F_GETFL), O_RDWR, "accepted end: F_GETFL");
	check_eq(fcntl(x, F_GETFD), 0, "accepted end: F_GETFD");
	expect_str(x, "hello", "accepted end: the child's first bytes");
	for (uint32_t r = 0; r < NB_RT; r++) {
		read_exact(x, m, RT_MSG, "accepted end: the ping");
		rt_check(m, r, 1, "accepted end: the ping");
		rt_fill(m, r, 2);
		write_all(x, m, RT_MSG, "accepted end: the pong");
	}
	ok("%d round trips of %d bytes between the child (connector) and this process", NB_RT,
	   RT_MSG);
	while (off < NB_BULK) {
		size_t n = NB_BULK - off < sizeof(buf) ? (size_t)(NB_BULK - off) : sizeof(buf);
		ssize_t r;

		step("accepted end: the bulk at %" PRIu64, off);
		r = read(x, buf, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail_errno(errno, "accepted end: the bulk at %" PRIu64, off);
		if (!r)
			fail("accepted end: EOF at %" PRIu64 " of the bulk", off);
		pat_check(buf, off, (size_t)r, 21, "accepted end: the bulk");
		sum = fnv64(sum, buf, (size_t)r);
		off += (uint64_t)r;
	}
	read_exact(x, &want, sizeof(want), "accepted end: the bulk's checksum");
	check_true(want == sum, "64 MiB from the child: every byte in order, the checksums agree");
	check_eq(read(x, buf, 1), 0, "accepted end: EOF after the child's SHUT_WR");
	write_str(x, "bye", "accepted end");
	xclose(x);
	child_ok(pid, "the connecting child: its names, SO_PEERCRED (the listening process), "
		 "options, data, EOF and EPIPE after the close");

	/* the listener's pid in SO_PEERCRED is the listener's, whoever connects */
	c = connect_to(a, 0, "this process");
	x = accept_addr(l, NULL, "this process's connection");
	n_named++;
	check_true(peercred_is(c, getpid(), getuid(), getgid()) &&
		   peercred_is(x, getpid(), getuid(), getgid()),
		   "a connection within one process: SO_PEERCRED of both ends names it");
	check_name(c, NAME_PEER, a, "connector");
	xclose(c);
	xclose(x);
	xclose(l);
	if (!a->abstract) {
		check_true(!access(a->sa.sun_path, F_OK),
			   "the listener closed: its socket file stays");
		CHECK_ERR(connect(c = usock(0), (const struct sockaddr *)&a->sa, a->len),
			  ECONNREFUSED, "connect to the closed listener's path");
		xclose(c);
		MUST(unlink(a->sa.sun_path), "unlink %s", a->tag);
	} else {
		CHECK_ERR(connect(c = usock(0), (const struct sockaddr *)&a->sa, a->len),
			  ECONNREFUSED, "connect to the closed listener's abstract name");
		xclose(c);
	}
}

/* ENOENT, ECONNREFUSED, EISCONN, EINVAL. */
static void named_errors(void)
{
	struct uaddr none, bound, file, abs;
	int s, l, c, x;

	ua_path(&none, "none");
	CHECK_ERR(connect(s = usock(0), (const struct sockaddr *)&none.sa, none.len), ENOENT,
		  "connect to a path that does not exist");
	xclose(s);
	ua_path(&bound, "bound");
	s = usock(0);
	MUST(bind(s, (const struct sockaddr *)&bound.sa, bound.len), "bind");
	CHECK_ERR(connect(c = usock(0), (const struct sockaddr *)&bound.sa, bound.len),
		  ECONNREFUSED, "connect to a bound socket that does not listen");
	xclose(c);
	CHECK_ERR(accept(s, NULL, NULL), EINVAL, "accept on a bound socket that does not listen");
	xclose(s);
	ua_path(&file, "file");
	s = (int)MUST(open(file.sa.sun_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0666), "create file");
	xclose(s);
	CHECK_ERR(connect(c = usock(0), (const struct sockaddr *)&file.sa, file.len),
		  ECONNREFUSED, "connect to a regular file");
	xclose(c);
	ua_abstract(&abs, "nobody-there");
	CHECK_ERR(connect(c = usock(0), (const struct sockaddr *)&abs.sa, abs.len), ECONNREFUSED,
		  "connect to an abstract name nobody bound");
	xclose(c);
	CHECK_ERR(listen(s = usock(0), 4), EINVAL, "listen on an unbound socket");
	xclose(s);

	ua_path(&bound, "errs");
	l = listen_on(&bound, 4, 0);
	c = connect_to(&bound, 0, "errors");
	x = accept_on(l, 0, "errors");
	n_named++;
	CHECK_ERR(connect(c, (const struct sockaddr *)&bound.sa, bound.len), EISCONN,
		  "connect on a connected socket");
	CHECK_ERR(accept(x, NULL, NULL), EINVAL, "accept on an accepted end");
	CHECK_ERR(accept(c, NULL, NULL), EINVAL, "accept on a connector");
	CHECK_ERR(listen(c, 4), EINVAL, "listen on a connected socket");
	write_str(c, "still", "the connector after the failed calls");
	expect_str(x, "still", "the accepted end: the connection still works");
	xclose(c);
	xclose(x);
	xclose(l);
}

#define BL_MAX	8

/*
 * listen(l, 1): nonblocking connects until EAGAIN, each writing before it
 * is accepted; a blocking connect waits in a child until one is accepted;
 * then all are accepted in order, with their data.
 */
static void named_backlog(const struct uaddr *a)
{
	int l, c[BL_MAX], x[BL_MAX], ep, s, g[2];
	unsigned int n = 0;
	char buf[32];
	pid_t pid;
	int st;

	l = listen_on(a, 1, 0);
	for (;;) {
		c[n] = usock(SOCK_NONBLOCK);
		if (connect(c[n], (const struct sockaddr *)&a->sa, a->len)) {
			if (errno != EAGAIN)
				fail_errno(errno, "nonblocking connect %u", n);
			check_err(-1, errno, EAGAIN, "listen backlog 1: a nonblocking connect "
				  "once the backlog is full");
			xclose(c[n]);
			break;
		}
		snprintf(buf, sizeof(buf), "early-%u", n);
		write_str(c[n], buf, "a pending connector");
		if (++n == BL_MAX)
			fail("listen backlog 1: %u nonblocking connects and no EAGAIN", n);
	}
	ok("listen backlog 1: %u nonblocking connects succeed before EAGAIN", n);
	ep = ep_watch(c[0]);
	check_ev(c[0], ep, POLLOUT, "a connector whose connection is not accepted yet");
	xclose(ep);
	check_eq(fionread(c[0], "pending connector"), 0, "a pending connector: FIONREAD");
	check_lis(l, true, "connections pending");
	mkpipe(g, O_CLOEXEC);
	pid = child_fork();
	if (pid == 0) {
		int k;

		xclose(g[0]);
		k = c_connect(a);
		if (k < 0)
			fail_errno(errno, "child: blocking connect");
		write_str(g[1], "c", "child: connected");
		write_str(k, "late", "child");
		expect_str(k, "answer", "child");
		_exit(0);
	}
	xclose(g[1]);
	check_quiet(g[0], "a blocking connect into the full backlog (a child's)");
	check_eq(waitpid(pid, &st, WNOHANG), 0, "the child still waits in connect");
	for (unsigned int i = 0; i < n; i++) {
		x[i] = accept_on(l, 0, "the backlog");
		n_named++;
		snprintf(buf, sizeof(buf), "early-%u", i);
		expect_str(x[i], buf, "accepted in order: the data written before the accept");
	}
	ok("the %u pending connections accepted in the order they connected, each with the "
	   "data written before the accept", n);
	expect_str(g[0], "c", "the child's connect returned");
	ok("the child's blocking connect returned once the backlog had room");
	xclose(g[0]);
	s = accept_on(l, 0, "the child's connection");
	n_named++;
	expect_str(s, "late", "the child's connection");
	write_str(s, "answer", "to the child");
	child_ok(pid, "the child that connected into the full backlog");
	xclose(s);
	set_nonblock(l, true);
	CHECK_ERR(accept(l, NULL, NULL), EAGAIN, "nonblocking accept once all were accepted");
	for (unsigned int i = 0; i < n; i++) {
		write_str(x[i], "r", "accepted end");
		set_nonblock(c[i], false);
		expect_str(c[i], "r", "the connector: the accepted end's answer");
		xclose(c[i]);
		xclose(x[i]);
	}
	xclose(l);
	if (!a->abstract)
		unlink(a->sa.sun_path);
}

static void case_named_basics(void)
{
	struct uaddr a;

	ua_path(&a, "basics");
	named_ids(&a);
	named_errors();
	ua_path(&a, "backlog");
	named_backlog(&a);
	ua_path(&a, "pairs");
	mk_begin(&a, false);
	basics_shutdown(mk_named);
	basics_close(mk_named);
	basics_nonblock(mk_named);
	mk_end();
}

/* Connectors with names of their own: accept and getpeername give them. */
static void named_bound_connectors(void)
{
	struct uaddr a, cp, auto_a;
	socklen_t len;
	int l, c, x, one = 1;

	ua_abstract(&a, "bound-connectors");
	l = listen_on(&a, 4, 0);

	ua_path(&cp, "connector-path");
	c = usock(0);
	MUST(bind(c, (const struct sockaddr *)&cp.sa, cp.len), "bind the connector");
	MUST(connect(c, (const struct sockaddr *)&a.sa, a.len), "connect");
	x = accept_addr(l, &cp, "a connector bound to a path");
	n_named++;
	check_name(x, NAME_PEER, &cp, "its accepted end");
	check_name(c, NAME_SOCK, &cp, "the connector");
	xclose(c);
	xclose(x);

	/* autobind: bind with the family only; the kernel picks "\0" and 5 hex digits */
	c = usock(0);
	MUST(bind(c, (const struct sockaddr *)&a.sa, sizeof(sa_family_t)), "autobind");
	memset(&auto_a, 0, sizeof(auto_a));
	auto_a.len = sizeof(auto_a.sa);
	MUST(getsockname(c, (struct sockaddr *)&auto_a.sa, &auto_a.len), "getsockname");
	auto_a.abstract = true;
	auto_a.tag = "(autobound)";
	check_eq(auto_a.len, offsetof(struct sockaddr_un, sun_path) + 6,
		 "an autobound connector: getsockname: addrlen (\\0 and 5 hex digits)");
	MUST(connect(c, (const struct sockaddr *)&a.sa, a.len), "connect");
	x = accept_addr(l, &auto_a, "an autobound connector");
	n_named++;
	check_name(x, NAME_PEER, &auto_a, "its accepted end");
	xclose(c);
	xclose(x);

	/* SO_PASSCRED on an unbound connector: connect autobinds it */
	c = usock(0);
	MUST(setsockopt(c, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), "SO_PASSCRED");
	MUST(connect(c, (const struct sockaddr *)&a.sa, a.len), "connect");
	memset(&auto_a.sa, 0, sizeof(auto_a.sa));
	auto_a.len = sizeof(auto_a.sa);
	MUST(getsockname(c, (struct sockaddr *)&auto_a.sa, &auto_a.len), "getsockname");
	check_eq(auto_a.len, offsetof(struct sockaddr_un, sun_path) + 6,
		 "a connector with SO_PASSCRED: connect autobinds it: getsockname: addrlen");
	len = auto_a.len;
	x = accept_addr(l, &auto_a, "a connector with SO_PASSCRED");
	n_named++;
	check_eq(len, auto_a.len, "its name's length");
	xclose(c);
	xclose(x);
	xclose(l);
}

static void case_named_abstract(void)
{
	struct uaddr a;

	ua_abstract(&a, "basics");
	named_ids(&a);
	named_bound_connectors();
	ua_abstract(&a, "backlog");
	named_backlog(&a);
	ua_abstract(&a, "pairs");
	mk_begin(&a, true);
	basics_shutdown(mk_named);
	basics_close(mk_named);
	basics_nonblock(mk_named);
	mk_end();
}

/* ---- case named-fork-exec ----------------------------------------------------------- */

/* A child's echo of everything it reads on @fd until EOF; then it closes. */
static void c_echo(int fd)
{
	static uint8_t buf[65536];

	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail_errno(errno, "echo child: read");
		if (!r)
			break;
		if (!c_write_all(fd, buf, (size_t)r))
			fail_errno(errno, "echo child: write");
		alarm(ALARM_S);
	}
	xclose(fd);
}

static void case_named_fork_exec(void)
{
	const size_t total = 10u << 20;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	char *const argv[] = { (char *)"cat", NULL };
	struct uaddr a;
	int l, c, x, c2, err;
	char id[2][8];
	sigset_t def;
	pid_t pid, p2[2];

	ua_path(&a, "fork-exec");
	l = listen_on(&a, 8, SOCK_CLOEXEC);

	/* (a) an accepted end used here, then by a forked child only */
	c = connect_to(&a, 0, "(a)");
	x = accept_on(l, 0, "(a)");
	n_named++;
	write_str(x, "before", "(a) the accepted end, here");
	expect_str(c, "before", "(a) the connector");
	pid = child_fork();
	if (pid == 0) {
		xclose(c);
		xclose(l);
		pat_write(x, 0, 8u << 20, 41, "(a) child: the accepted end");
		expect_str(x, "thanks", "(a) child");
		_exit(0);
	}
	xclose(x);
	pat_read_n(c, 8u << 20, 41, "(a) the connector");
	ok("(a) an accepted end used before fork, then by the child only: 8 MiB in order");
	write_str(c, "thanks", "(a) the connector");
	child_ok(pid, "(a) the child using the accepted end");
	wait_eof(c, "(a) the connector once the child exited");
	xclose(c);

	/* (b) the listener inherited: a child accepts and echoes */
	pid = child_fork();
	if (pid == 0) {
		int k = accept_on(l, 0, "(b) child");

		xclose(l);
		c_echo(k);
		_exit(0);
	}
	c = connect_to(&a, 0, "(b)");
	n_named++;
	pump(c, 4u << 20, "(b) a child accepted on the inherited listener and echoes");
	xclose(c);
	child_ok(pid, "(b) the accepting child");
	set_nonblock(l, true);
	CHECK_ERR(accept(l, NULL, NULL), EAGAIN, "(b) nothing else pending on the listener");
	set_nonblock(l, false);

	/* (c) two children accept on the same listener, one connection each */
	for (int i = 0; i < 2; i++) {
		p2[i] = child_fork();
		if (p2[i] == 0) {
			int k = accept_on(l, 0, "(c) child");
			char me[8];

			snprintf(me, sizeof(me), "kid-%d", i);
			write_str(k, me, "(c) child");
			c_expect_eof(k, "(c) child");
			_exit(0);
		}
	}
	c = connect_to(&a, 0, "(c)");
	c2 = connect_to(&a, 0, "(c)");
	n_named += 2;
	read_exact(c, id[0], 5, "(c) the first connection");
	read_exact(c2, id[1], 5, "(c) the second connection");
	check_true(memcmp(id[0], id[1], 5) && !memcmp(id[0], "kid-", 4) &&
		   !memcmp(id[1], "kid-", 4), "(c) two children accepting on one listener: each "
		   "took one of the two connections");
	xclose(c);
	xclose(c2);
	child_ok(p2[0], "(c) the first accepting child");
	child_ok(p2[1], "(c) the second accepting child");

	/* (d) fork and exec cat on the accepted end */
	c = connect_to(&a, 0, "(d)");
	x = accept_on(l, 0, "(d)");
	n_named++;
	pid = child_fork();
	if (pid == 0) {
		if (dup2(x, 0) < 0 || dup2(x, 1) < 0)
			fail_errno(errno, "dup2");
		close(x);
		close(c);
		signal(SIGPIPE, SIG_DFL);
		alarm(0);
		execvp("cat", argv);
		fail_errno(errno, "exec cat");
	}
	xclose(x);
	pump(c, total, "(d) fork, the accepted end dup2'ed onto 0 and 1, exec cat");
	xclose(c);
	child_ok(pid, "(d) fork, exec cat");

	/* (e) posix_spawn cat on the connector */
	c = connect_to(&a, SOCK_CLOEXEC, "(e)");
	x = accept_on(l, SOCK_CLOEXEC, "(e)");
	n_named++;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, c, 0);
	posix_spawn_file_actions_adddup2(&fa, c, 1);
	posix_spawnattr_init(&at);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
	fflush(stdout);
	fflush(stderr);
	err = posix_spawnp(&pid, "cat", &fa, &at, argv, environ);
	if (err)
		fail_errno(err, "posix_spawnp cat");
	victim_add(pid);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	xclose(c);
	pump(x, total, "(e) posix_spawn cat, the connector (SOCK_CLOEXEC) dup2'ed onto 0 and 1");
	xclose(x);
	child_ok(pid, "(e) posix_spawn cat");
	xclose(l);

	/* (f) a preforking server: the listener made here, only a child keeps it */
	ua_path(&a, "prefork");
	l = listen_on(&a, 8, 0);
	pid = child_fork();
	if (pid == 0) {
		int k = accept_on(l, 0, "(f) child");

		xclose(l);
		c_echo(k);
		_exit(0);
	}
	xclose(l);
	c = connect_to(&a, 0, "(f)");
	n_named++;
	pump(c, 1u << 20, "(f) the listener made here and closed here, a child accepts on its "
	     "copy and echoes");
	xclose(c);
	child_ok(pid, "(f) the accepting child");
}

/* ---- case named-scm-rights ---------------------------------------------------------- */

static void scm_child(const struct uaddr *a)
{
	struct ucred uc = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
	struct rmsg m;
	char buf[8];
	int c = c_connect(a), p[2];

	if (c < 0)
		fail_errno(errno, "child: connect");
	mkpipe(p, O_CLOEXEC);
	send_anc(c, "a", 1, &p[0], 1, NULL, "child: a pipe read end");
	xclose(p[0]);
	pat_write(p[1], 0, 1u << 20, 51, "child: the pipe");
	xclose(p[1]);
	write_str(c, "b", "child: plain");
	send_anc(c, "c", 1, &files[3], 1, NULL, "child: a file");
	send_anc(c, "d", 1, NULL, 0, &uc, "child: SCM_CREDENTIALS");
	recv_expect(c, "e", 1, 0, &m, "child: an accepted end passed");
	c_check(is_type(m.fds[0], S_IFSOCK), "the passed accepted end is a socket");
	expect_str(m.fds[0], "ping", "child: over the passed accepted end");
	write_str(m.fds[0], "pong", "child: over the passed accepted end");
	rmsg_close(&m);
	read_exact(c, buf, 3, "child: the last words");
	c_check(!memcmp(buf, "end", 3), "child: the last words");
	_exit(0);
}

static void case_named_scm_rights(void)
{
	struct uaddr a, b;
	int l, x, lb, c3, x3, one = 1;
	uint64_t got;
	struct rmsg m;
	pid_t pid;

	files_open();
	ua_path(&a, "scm");
	l = listen_on(&a, 4, 0);
	pid = child_fork();
	if (pid == 0) {
		xclose(l);
		scm_child(&a);
	}
	x = accept_on(l, 0, "scm");
	n_named++;
	recv_expect(x, "a", 1, 0, &m, "a pipe read end with its byte");
	check_true(is_type(m.fds[0], S_IFIFO) &&
		   (fcntl(m.fds[0], F_GETFL) & O_ACCMODE) == O_RDONLY,
		   "SCM_RIGHTS over a named connection: a pipe read end (FIFO, O_RDONLY)");
	got = pat_read_eof(m.fds[0], 51, "the passed pipe");
	check_eq((long long)got, 1 << 20, "the passed pipe: the bytes the child wrote after "
		 "passing it, in order, then EOF");
	rmsg_close(&m);
	recv_expect(x, "b", 0, 0, &m, "a plain byte between");
	ok("the plain byte between the messages with fds: no fd with it");
	recv_expect(x, "c", 1, 0, &m, "a file with its byte");
	check_true(file_is(m.fds[0], 3), "SCM_RIGHTS over a named connection: the file (its "
		   "inode, its content)");
	rmsg_close(&m);
	MUST(setsockopt(x, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), "SO_PASSCRED");
	recv_expect(x, "d", 0, 0, &m, "explicit SCM_CREDENTIALS");
	check_cred(&m, pid, "the connecting child", "explicit SCM_CREDENTIALS over a named "
		   "connection");

	/* an accepted end of another connection passed to the child, used there */
	ua_abstract(&b, "scm-passed");
	lb = listen_on(&b, 4, 0);
	c3 = connect_to(&b, 0, "the end to pass");
	x3 = accept_on(lb, 0, "the end to pass");
	n_named++;
	send_anc(x, "e", 1, &x3, 1, NULL, "an accepted end passed to the child");
	xclose(x3);
	write_str(c3, "ping", "the connector of the passed end");
	expect_str(c3, "pong", "the connector of the passed end: the child's answer");
	ok("an accepted end passed with SCM_RIGHTS: the child talks over it");
	write_str(x, "end", "the last words");
	child_ok(pid, "the child that sent the fds and used the passed end");
	wait_eof(c3, "the connector of the passed end, once the child exited");
	xclose(c3);
	xclose(x);
	xclose(l);

	/* SO_PASSCRED of the listener: accept gives it to the new socket */
	MUST(setsockopt(lb, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), "SO_PASSCRED");
	c3 = connect_to(&b, 0, "SO_PASSCRED listener");
	x3 = accept_on(lb, 0, "SO_PASSCRED listener");
	n_named++;
	check_eq(sockopt_int(x3, SOL_SOCKET, SO_PASSCRED, "SO_PASSCRED"), 1,
		 "a listener with SO_PASSCRED: the accepted end has SO_PASSCRED");
	check_eq(sockopt_int(c3, SOL_SOCKET, SO_PASSCRED, "SO_PASSCRED"), 0,
		 "... and its connector has not");
	{
		struct ucred me = { .pid = getpid(), .uid = getuid(), .gid = getgid() };

		send_anc(c3, "cred", 4, NULL, 0, &me, "explicit credentials");
		recv_expect(x3, "cred", 0, 0, &m, "explicit credentials to the accepted end");
		check_cred(&m, getpid(), "this process", "SCM_CREDENTIALS to an accepted end with "
			   "SO_PASSCRED from its listener");
	}
	xclose(c3);
	xclose(x3);
	xclose(lb);
}

/* ---- case named-faults -------------------------------------------------------------- */

#define KILL_BYTES	16384	/* written before a SIGKILL: far less than any buffer */

/* A child that connects to @a, writes KILL_BYTES, says so on @g and waits to be killed. */
static pid_t doomed_connector(const struct uaddr *a, int g)
{
	pid_t pid = child_fork();

	if (pid == 0) {
		int c = c_connect(a);

		if (c < 0)
			fail_errno(errno, "doomed connector: connect");
		pat_write(c, 0, KILL_BYTES, 61, "doomed connector");
		write_str(g, "w", "doomed connector");
		for (;;)
			pause();
	}
	return pid;
}

static void kill_reap(pid_t pid, const char *what)
{
	kill(pid, SIGKILL);
	check_eq(child_wait(pid, what), 128 + SIGKILL, "%s: SIGKILLed", what);
}

/* A SIGKILLed connector, a SIGKILLed acceptor, a listener closed with connections pending. */
static void case_named_faults(void)
{
	struct uaddr a, ab;
	char buf[64];
	int l, x, c, g[2], ep, s;
	unsigned int s0;
	pid_t pid;

	mkpipe(g, O_CLOEXEC);
	ua_path(&a, "faults");
	l = listen_on(&a, 8, 0);

	/* (a) the connector is killed after the accept: its bytes, then EOF */
	pid = doomed_connector(&a, g[1]);
	x = accept_on(l, 0, "(a)");
	n_named++;
	expect_str(g[0], "w", "(a) the connector wrote");
	kill_reap(pid, "(a) the connector");
	pat_read_n(x, KILL_BYTES, 61, "(a) the accepted end");
	ok("(a) a connector SIGKILLed after the accept: what it wrote is read");
	wait_eof(x, "(a) then");
	CHECK_ERR(send(x, "x", 1, MSG_NOSIGNAL), EPIPE, "(a) send to the dead connector");
	xclose(x);

	/* (b) the connector is killed before the accept */
	pid = doomed_connector(&a, g[1]);
	expect_str(g[0], "w", "(b) the connector wrote");
	kill_reap(pid, "(b) the connector");
	x = accept_on(l, 0, "(b)");
	pat_read_n(x, KILL_BYTES, 61, "(b) the accepted end");
	ok("(b) a connector SIGKILLed before the accept: the connection is accepted, what it "
	   "wrote is read");
	wait_eof(x, "(b) then");
	xclose(x);

	/* (c) the acceptor (a child) is killed; it wrote, nothing of ours is unread */
	for (int unread = 0; unread < 2; unread++) {
		const char *v = unread ? "(d)" : "(c)";

		pid = child_fork();
		if (pid == 0) {
			int k = accept_on(l, 0, "doomed acceptor");

			if (!unread)
				write_str(k, "last words", "doomed acceptor");
			write_str(g[1], "a", "doomed acceptor");
			for (;;)
				pause();
		}
		c = connect_to(&a, 0, v);
		n_named++;
		expect_str(g[0], "a", "the acceptor accepted");
		if (unread)
			write_str(c, "unread", "(d) data the acceptor never reads");
		ep = ep_watch(c);
		kill_reap(pid, unread ? "(d) the acceptor, our data unread" :
			  "(c) the acceptor, nothing unread");
		if (!unread) {
			expect_str(c, "last words", "(c) the connector: the acceptor's bytes");
			check_ev(c, ep, POLLIN | POLLOUT | POLLHUP | POLLRDHUP,
				 "(c) the connector, its acceptor killed");
			wait_eof(c, "(c) the connector");
			s0 = n_sigpipe;
			CHECK_ERR(write(c, "x", 1), EPIPE, "(c) the connector: write");
			check_sigpipe(s0, 1, "(c) the connector: write");
		} else {
			check_ev(c, ep, POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP,
				 "(d) the connector, its acceptor killed with our data unread");
			CHECK_ERR(read(c, buf, sizeof(buf)), ECONNRESET, "(d) the connector: read");
			check_eq(read(c, buf, sizeof(buf)), 0, "(d) the connector: read again");
			s0 = n_sigpipe;
			CHECK_ERR(write(c, "x", 1), EPIPE, "(d) the connector: write");
			check_sigpipe(s0, 1, "(d) the connector: write");
		}
		xclose(ep);
		xclose(c);
	}

	/* (e) the connector closes before the accept */
	c = connect_to(&a, 0, "(e)");
	write_str(c, "gone", "(e) the connector, then its close");
	xclose(c);
	x = accept_on(l, 0, "(e)");
	expect_str(x, "gone", "(e) accepted after the connector's close: its bytes");
	wait_eof(x, "(e) then");
	xclose(x);

	/* (f) the listener closed with two connections pending (one wrote) */
	c = connect_to(&a, 0, "(f)");
	s = connect_to(&a, 0, "(f)");
	write_str(c, "pending", "(f) a pending connector");
	ep = ep_watch(c);
	xclose(l);
	check_ev(c, ep, POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP,
		 "(f) a pending connector (it wrote), its listener closed");
	CHECK_ERR(read(c, buf, sizeof(buf)), ECONNRESET, "(f) that connector: read");
	check_eq(read(c, buf, sizeof(buf)), 0, "(f) that connector: read again");
	CHECK_ERR(send(c, "x", 1, MSG_NOSIGNAL), EPIPE, "(f) that connector: send");
	xclose(ep);
	ep = ep_watch(s);
	check_ev(s, ep, POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP,
		 "(f) a pending connector (it wrote nothing), its listener closed");
	CHECK_ERR(recv(s, buf, sizeof(buf), 0), ECONNRESET, "(f) that connector: recv");
	check_eq(recv(s, buf, sizeof(buf), 0), 0, "(f) that connector: recv again");
	xclose(ep);
	xclose(c);
	xclose(s);
	CHECK_ERR(connect(c = usock(0), (const struct sockaddr *)&a.sa, a.len), ECONNREFUSED,
		  "(f) connect to the path of the closed listener");
	xclose(c);

	/* (g) a listening process killed: its names refuse */
	ua_abstract(&ab, "faults-killed");
	unlink(a.sa.sun_path);
	pid = child_fork();
	if (pid == 0) {
		int k = listen_on(&a, 4, 0), j = listen_on(&ab, 4, 0);

		(void)k;
		(void)j;
		write_str(g[1], "l", "doomed listener");
		for (;;)
			pause();
	}
	expect_str(g[0], "l", "(g) the child listens");
	c = connect_to(&a, 0, "(g) while the child lives");
	xclose(c);
	kill_reap(pid, "(g) the listening child, a connection pending");
	CHECK_ERR(connect(c = usock(0), (const struct sockaddr *)&a.sa, a.len), ECONNREFUSED,
		  "(g) connect to its path");
	xclose(c);
	CHECK_ERR(connect(c = usock(0), (const struct sockaddr *)&ab.sa, ab.len), ECONNREFUSED,
		  "(g) connect to its abstract name");
	xclose(c);
	xclose(g[0]);
	xclose(g[1]);
}

/* ---- case named-perms --------------------------------------------------------------- */

#define NOBODY	65534

/* As root: a child become nobody connects where the path's permissions let it, and nowhere else. */
static void case_named_perms(void)
{
	struct uaddr p700, pdir, p777, pab;
	char sub[300];
	int l700, ldir, l777, lab, x, y;
	pid_t pid;

	if (geteuid() != 0)
		skip_case("not root: a child cannot become another user");
	ua_path(&p700, "perm-0700");
	l700 = listen_on(&p700, 4, 0);
	MUST(chmod(p700.sa.sun_path, 0700), "chmod 0700");
	snprintf(sub, sizeof(sub), "%s/closed", named_tmp());
	MUST(mkdir(sub, 0700), "mkdir %s", sub);
	MUST(chmod(sub, 0700), "chmod %s", sub);
	ua_path(&pdir, "closed/s");
	ldir = listen_on(&pdir, 4, 0);
	MUST(chmod(pdir.sa.sun_path, 0777), "chmod 0777");
	ua_path(&p777, "perm-0777");
	l777 = listen_on(&p777, 4, 0);
	MUST(chmod(p777.sa.sun_path, 0777), "chmod 0777");
	ua_abstract(&pab, "perm-abstract");
	lab = listen_on(&pab, 4, 0);

	pid = child_fork();
	if (pid == 0) {
		int k;

		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
			fail_errno(errno, "child: become %d", NOBODY);
		k = c_connect(&p700);
		c_check(k < 0 && errno == EACCES, "nobody: connect to a socket of mode 0700: "
			"EACCES (got %s)", k < 0 ? errname(errno) : "a connection");
		k = c_connect(&pdir);
		c_check(k < 0 && errno == EACCES, "nobody: connect to a socket in a directory of "
			"mode 0700: EACCES (got %s)", k < 0 ? errname(errno) : "a connection");
		k = c_connect(&p777);
		if (k < 0)
			fail_errno(errno, "nobody: connect to a socket of mode 0777");
		c_check(peercred_is(k, getppid(), 0, 0), "nobody's connector: SO_PEERCRED names "
			"the root listener");
		write_str(k, "nobody", "nobody");
		expect_str(k, "root", "nobody");
		xclose(k);
		k = c_connect(&pab);
		if (k < 0)
			fail_errno(errno, "nobody: connect to an abstract name of root's");
		write_str(k, "nobody-abstract", "nobody");
		expect_str(k, "root", "nobody");
		xclose(k);
		_exit(0);
	}
	/* connections between users: not counted (the monitor may keep them in the kernel) */
	x = accept_on(l777, 0, "nobody's connection");
	check_true(peercred_is(x, pid, NOBODY, NOBODY), "the accepted end: SO_PEERCRED names "
		   "the child as nobody (uid and gid 65534)");
	expect_str(x, "nobody", "the child become nobody: its bytes");
	write_str(x, "root", "to nobody");
	y = accept_on(lab, 0, "nobody's abstract connection");
	expect_str(y, "nobody-abstract", "abstract names have no permissions: nobody connects");
	write_str(y, "root", "to nobody");
	child_ok(pid, "the child become nobody: EACCES for the socket of mode 0700 and for the "
		 "one in a directory of mode 0700; connected to the one of mode 0777 and to the "
		 "abstract name");
	set_nonblock(l700, true);
	set_nonblock(ldir, true);
	CHECK_ERR(accept(l700, NULL, NULL), EAGAIN, "nothing reached the socket of mode 0700");
	CHECK_ERR(accept(ldir, NULL, NULL), EAGAIN,
		  "nothing reached the socket in the closed directory");
	xclose(x);
	xclose(y);
	xclose(l700);
	xclose(ldir);
	xclose(l777);
	xclose(lab);
}

/* ---- case named-python -------------------------------------------------------------- */

/* Counts the named connections its servers accept. */
static const char py_named_script[] =
	"import os, sys, socket, socketserver, hashlib, tempfile, shutil, traceback\n"
	"from multiprocessing.connection import Listener, Client\n"
	"made = [0]\n"
	"def say(s):\n"
	"    print('PY ok ' + s, flush=True)\n"
	"BULK = bytes(range(256)) * 65536\n"
	"class H(socketserver.StreamRequestHandler):\n"
	"    def handle(self):\n"
	"        while True:\n"
	"            line = self.rfile.readline()\n"
	"            if not line:\n"
	"                return\n"
	"            if line.startswith(b'SUM '):\n"
	"                left, h = int(line[4:]), hashlib.sha256()\n"
	"                while left:\n"
	"                    b = self.rfile.read(min(left, 1 << 16))\n"
	"                    if not b:\n"
	"                        return\n"
	"                    h.update(b)\n"
	"                    left -= len(b)\n"
	"                self.wfile.write(h.hexdigest().encode() + b'\\n')\n"
	"            elif line == b'GEN\\n':\n"
	"                self.wfile.write(BULK)\n"
	"            else:\n"
	"                self.wfile.write(b'echo ' + line)\n"
	"            self.wfile.flush()\n"
	"def serve(addr, n):\n"
	"    srv = socketserver.ThreadingUnixStreamServer(addr, H)\n"
	"    pid = os.fork()\n"
	"    if pid == 0:\n"
	"        try:\n"
	"            for i in range(n):\n"
	"                srv.handle_request()\n"
	"            srv.server_close()\n"
	"            os._exit(0)\n"
	"        except BaseException:\n"
	"            traceback.print_exc()\n"
	"            os._exit(1)\n"
	"    srv.socket.close()\n"
	"    return pid\n"
	"def joined(pid, what):\n"
	"    st = os.waitpid(pid, 0)[1]\n"
	"    if st != 0:\n"
	"        sys.exit('%s: status %d' % (what, st))\n"
	"def conn(addr):\n"
	"    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
	"    s.settimeout(60)\n"
	"    s.connect(addr)\n"
	"    made[0] += 1\n"
	"    return s, s.makefile('rwb')\n"
	"def clients(addr, n, what):\n"
	"    for i in range(n):\n"
	"        s, f = conn(addr)\n"
	"        for k in range(50):\n"
	"            f.write(b'hello %d %d\\n' % (i, k))\n"
	"            f.flush()\n"
	"            if f.readline() != b'echo hello %d %d\\n' % (i, k):\n"
	"                sys.exit('%s: connection %d: wrong echo' % (what, i))\n"
	"        f.close()\n"
	"        s.close()\n"
	"d = tempfile.mkdtemp(prefix='ipcd-unix-py-')\n"
	"try:\n"
	"    path = os.path.join(d, 'srv')\n"
	"    pid = serve(path, 21)\n"
	"    clients(path, 20, 'path')\n"
	"    say('socketserver.ThreadingUnixStreamServer on a path (a forked process): 20 '\n"
	"        'connections, 50 lines echoed on each')\n"
	"    s, f = conn(path)\n"
	"    f.write(b'SUM %d\\n' % len(BULK))\n"
	"    f.write(BULK)\n"
	"    f.flush()\n"
	"    if f.readline() != hashlib.sha256(BULK).hexdigest().encode() + b'\\n':\n"
	"        sys.exit('the server summed the 16 MiB differently')\n"
	"    f.write(b'GEN\\n')\n"
	"    f.flush()\n"
	"    if f.read(len(BULK)) != BULK:\n"
	"        sys.exit('16 MiB from the server: wrong bytes')\n"
	"    f.close()\n"
	"    s.close()\n"
	"    say('16 MiB each way on one connection, sha256 and bytes compared')\n"
	"    joined(pid, 'the path server')\n"
	"    try:\n"
	"        socket.socket(socket.AF_UNIX).connect(path)\n"
	"        sys.exit('connect to the closed server: no error')\n"
	"    except ConnectionRefusedError:\n"
	"        say('the server closed: ConnectionRefusedError')\n"
	"    try:\n"
	"        socket.socket(socket.AF_UNIX).connect(os.path.join(d, 'none'))\n"
	"        sys.exit('connect to a missing path: no error')\n"
	"    except FileNotFoundError:\n"
	"        say('a missing path: FileNotFoundError')\n"
	"    abstract = '\\0ipcd-unix-py-%d' % os.getpid()\n"
	"    pid = serve(abstract, 5)\n"
	"    clients(abstract, 5, 'abstract')\n"
	"    joined(pid, 'the abstract server')\n"
	"    say('socketserver on an abstract name: 5 connections, 50 lines echoed on each')\n"
	"    lpath = os.path.join(d, 'mp')\n"
	"    lis = Listener(lpath, family='AF_UNIX', authkey=b'ipcd')\n"
	"    pid = os.fork()\n"
	"    if pid == 0:\n"
	"        try:\n"
	"            c = Client(lpath, family='AF_UNIX', authkey=b'ipcd')\n"
	"            for i in range(2000):\n"
	"                c.send({'i': i, 'b': b'%d' % i * (i % 9)})\n"
	"                if c.recv() != ('re', i):\n"
	"                    os._exit(2)\n"
	"            c.close()\n"
	"            os._exit(0)\n"
	"        except BaseException:\n"
	"            traceback.print_exc()\n"
	"            os._exit(1)\n"
	"    c = lis.accept()\n"
	"    made[0] += 1\n"
	"    for i in range(2000):\n"
	"        m = c.recv()\n"
	"        if m != {'i': i, 'b': b'%d' % i * (i % 9)}:\n"
	"            sys.exit('multiprocessing.connection: object %d: %r' % (i, m))\n"
	"        c.send(('re', i))\n"
	"    try:\n"
	"        c.recv()\n"
	"        sys.exit('multiprocessing.connection: data after the last object')\n"
	"    except EOFError:\n"
	"        pass\n"
	"    c.close()\n"
	"    lis.close()\n"
	"    joined(pid, 'the multiprocessing Client')\n"
	"    say('multiprocessing.connection Listener/Client (AF_UNIX, authkey): 2000 objects '\n"
	"        'each way with a forked client, then EOFError')\n"
	"finally:\n"
	"    shutil.rmtree(d, ignore_errors=True)\n"
	/* the servers' own connections count once: the clients' connect()s above */
	"print('PY named=%d' % made[0], flush=True)\n";

static void case_named_python(void)
{
	char *const argv[] = { (char *)"python3", (char *)"-c", (char *)py_named_script, NULL };
	unsigned int oks = 0, named = 0;
	bool counted = false;
	char *out, *line, *save = NULL;
	int code;

	if (!have_prog("python3"))
		skip_case("no python3 on PATH");
	code = run_capture(argv, LONG_MS, &out, "python3");
	if (code != 0)
		fail("python3 exit status %d (its traceback is on stderr); it printed: %.500s",
		     code, out);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "PY ok ", 6)) {
			ok("python3: %s", line + 6);
			oks++;
		} else if (sscanf(line, "PY named=%u", &named) == 1) {
			counted = true;
		} else {
			info("python3 printed: %s", line);
		}
	}
	check_eq(oks, 6, "python3: result lines");
	if (!counted)
		fail("python3 exited 0 without its count of named connections");
	n_named += named;
	info("python3 made %u named connections", named);
	free(out);
}

/* ---- main --------------------------------------------------------------------------- */

struct ucase {
	const char *name;
	void (*fn)(void);
	const char *what;
};

static const struct ucase cases[] = {
	{ "basics", case_basics,
	  "names, SO_TYPE/DOMAIN/PROTOCOL, SO_PEERCRED, fstat, F_GETFL, FIONREAD, shutdown, close "
	  "(EOF, EPIPE/SIGPIPE, ECONNRESET), EAGAIN, poll/epoll states" },
	{ "data-fork", case_data_fork,
	  "100000 round trips of 64 B, 256 MiB one way; each end used by two processes in turns" },
	{ "scm-rights-order", case_scm_rights_order,
	  "SCM_RIGHTS of files among plain sends: each fd with its bytes, reads cut as the kernel "
	  "cuts them" },
	{ "scm-rights-accelerated", case_scm_rights_accelerated,
	  "pipe and socketpair ends passed: used, closed by the sender, dropped, truncated, "
	  "CLOEXEC, across exec" },
	{ "scm-credentials", case_scm_credentials,
	  "SO_PASSCRED: explicit and implied SCM_CREDENTIALS with the data; reads cut at "
	  "credentials as the kernel cuts them" },
	{ "python", case_python,
	  "python3: multiprocessing Pipe() 10000 objects each way, send_handle/recv_handle, "
	  "socket.socketpair SCM_RIGHTS" },
	{ "exec", case_exec,
	  "cat on a socketpair end as stdin and stdout: fork+exec, posix_spawn" },
	{ "named-basics", case_named_basics,
	  "a path: names, accept's address, SO_PEERCRED, options, errors, backlog and EAGAIN, "
	  "round trips, 64 MiB, then the basics' shutdown/close/nonblock checks" },
	{ "named-abstract", case_named_abstract,
	  "an abstract name: the same; connectors bound to a path, autobound, with SO_PASSCRED" },
	{ "named-fork-exec", case_named_fork_exec,
	  "ends used across fork, the listener inherited by children that accept, cat exec'd on "
	  "an accepted end and on a connector" },
	{ "named-scm-rights", case_named_scm_rights,
	  "SCM_RIGHTS (a pipe, a file, an accepted end) and SCM_CREDENTIALS over named "
	  "connections; SO_PASSCRED inherited by accept" },
	{ "named-faults", case_named_faults,
	  "SIGKILLed connectors and acceptors, a connector closed before the accept, a listener "
	  "closed or killed with connections pending" },
	{ "named-perms", case_named_perms,
	  "as root: a child become nobody gets EACCES from a socket of mode 0700 and from a "
	  "closed directory, connects to mode 0777 and abstract names" },
	{ "named-python", case_named_python,
	  "python3: socketserver on a path and an abstract name, 16 MiB each way, "
	  "multiprocessing.connection Listener/Client" },
};

#define N_CASES	(sizeof(cases) / sizeof(cases[0]))

static void run_case(const struct ucase *c)
{
	case_name = c->name;
	n_checks = 0;
	n_pairs = 0;
	n_pipes = 0;
	n_named = 0;
	snprintf(step_txt, sizeof(step_txt), "starting");
	printf("case %s: %s\n", c->name, c->what);
	alarm(ALARM_S);
	c->fn();
	alarm(0);
	printf("case %s passed checks=%u socketpairs=%u pipes=%u named=%u\n", c->name, n_checks,
	       n_pairs, n_pipes, n_named);
	case_name = "-";
}

static void usage(void)
{
	fprintf(stderr, "usage: ipcd-unix NAME...   (a case, or all)\n       ipcd-unix --list\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	/* SIGPIPE is counted (check_sigpipe); an exec'd program gets the default back */
	sa.sa_handler = on_sigpipe;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGPIPE, &sa, NULL);
	if (argc == 4 && !strcmp(argv[1], "--exec-probe"))
		return exec_probe(argv[2], argv[3]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* the orphans of the programs it runs are reaped here (group_gone()), not by init */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (argc < 2)
		usage();
	for (int i = 1; i < argc; i++) {
		bool any = false;

		if (!strcmp(argv[i], "--list")) {
			for (size_t k = 0; k < N_CASES; k++)
				printf("%s %s\n", cases[k].name, cases[k].what);
			continue;
		}
		for (size_t k = 0; k < N_CASES; k++) {
			if (strcmp(argv[i], "all") && strcmp(argv[i], cases[k].name))
				continue;
			run_case(&cases[k]);
			any = true;
		}
		if (!any) {
			fprintf(stderr, "ipcd-unix: no case '%s' (--list)\n", argv[i]);
			usage();
		}
	}
	return 0;
}
