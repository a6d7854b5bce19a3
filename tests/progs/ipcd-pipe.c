/* SPDX-License-Identifier: MIT */
/*
 * ipcd-pipe - semantics of pipes between processes, checked exactly as Linux
 * defines them (issue #6): shell pipelines moving 1 GiB, EOF after the last
 * writer, SIGPIPE/EPIPE after the last reader, PIPE_BUF atomicity, O_NONBLOCK,
 * poll/select/epoll states, fstat/fcntl/ioctl answers, stdio streams and
 * dprintf on pipe ends, F_SETPIPE_SZ, fork and exec,
 * posix_spawn, python3 multiprocessing, a GNU make style jobserver, bash
 * process substitution (/dev/fd/N), everyday shell idioms.
 * Plain POSIX and Linux calls and real programs: run without libipcd.so it
 * checks the kernel (the oracle), run under ipcd-run it checks the preload,
 * and both runs must print the same "ok" lines
 * (tests/integration/it_preload_pipes.c).
 *
 *   ipcd-pipe NAME...        NAME: a case (nonblock) or all
 *   ipcd-pipe --list         the cases, one a line: NAME what it checks
 *   ipcd-pipe --gen SEED BYTES FD
 *                            not a case: the producer of pipeline-1g (BYTES
 *                            pseudo-random bytes from SEED on stdout in writes
 *                            of 1 B..256 KiB; then "gen bytes=N writes=W
 *                            sizes=MIN..MAX sha256=HEX" on FD)
 *   ipcd-pipe --fd-probe CLOEXEC1 CLOEXEC2 KEPT
 *                            not a case: what fdinfo execs (fd_probe())
 *   ipcd-pipe --stdio-probe FD
 *                            not a case: what stdio execs (stdio_probe())
 *
 * Every check prints "ok CASE: what" (never a value that may differ between
 * the kernel and the preload: those go to "info CASE: ..." lines). The first
 * mismatch prints "ipcd-pipe CASE: FAIL: what: expected X, got Y" on stderr
 * and exits 1; a wait that outlives its hang guard prints "ipcd-pipe CASE:
 * HANG: ..." and exits 3 (after SIGKILLing what it started). A case whose
 * program is missing prints "case CASE skipped: why" and exits 77. A case
 * that passes ends with "case CASE passed checks=N pipes=P": P counts the
 * pipes made for it, by this process (pipe(), pipe2()) and by the shells and
 * python3 scripts it runs (declared per script; python counts its os.pipe()
 * calls), which the preload must all have accelerated.
 *
 * Time: nothing is asserted about time. GUARD_MS bounds an event that must
 * come, ALARM_S any one step, LONG_MS a real program's run; "nothing is
 * reported" is watched for QUIET_MS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUARD_MS	20000	/* hang guard: an event that must come */
#define ALARM_S		20	/* hang guard: any one step (blocking calls included) */
#define LONG_MS		300000	/* hang guard: a real program (sh, python3) runs */
#define GEN_ALARM_S	120	/* hang guard: one write of the pipeline's producer */
#define QUIET_MS	100	/* how long "nothing is reported" is watched */
#define SETTLE_MS	200	/* lets a writer reach its blocking write (not asserted) */
#define NSEC_PER_MS	1000000ull
#define MAX_VICTIMS	16
#define BIG_WRITE	(8u << 20)	/* one write that no pipe can take whole */

#define GEN_SEED	0x1bad5eed2024ull
#define GEN_BYTES	(1ull << 30)
#define GEN_MAX		(256u << 10)

static const char *case_name = "-";
static char step_txt[256];
static unsigned int n_checks, n_pipes;

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
	fprintf(stderr, "ipcd-pipe %s: FAIL: %s\n", case_name, msg);
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
	fprintf(stderr, "ipcd-pipe %s: HANG: %s\n", case_name, msg);
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

/* A forked child's failure: on stderr, then _exit(@code) (the parent checks the status). */
static void child_fail(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
static void child_fail(int code, const char *fmt, ...)
{
	char msg[768];

	FMT(msg, fmt);
	fprintf(stderr, "ipcd-pipe %s: child %d: FAIL: %s\n", case_name, (int)getpid(), msg);
	_exit(code);
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
	put_str("ipcd-pipe ");
	put_str(case_name);
	put_str(": HANG: a step outlived its hang guard: ");
	put_str(step_txt);
	put_str("\n");
	_exit(3);
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

static const struct {
	uint32_t bit;
	const char *name;
} ev_names[] = {
	{ EPOLLIN, "IN" },	   { EPOLLPRI, "PRI" },		{ EPOLLOUT, "OUT" },
	{ EPOLLERR, "ERR" },	   { EPOLLHUP, "HUP" },		{ POLLNVAL, "NVAL" },
	{ EPOLLRDNORM, "RDNORM" }, { EPOLLRDBAND, "RDBAND" },	{ EPOLLWRNORM, "WRNORM" },
	{ EPOLLWRBAND, "WRBAND" }, { EPOLLMSG, "MSG" },		{ EPOLLRDHUP, "RDHUP" },
};

/* "EPOLLIN|EPOLLOUT" (@pfx "EPOLL") or "POLLIN" ("POLL"); "0" if none. Rotating buffers. */
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

/* ---- pipes and data ----------------------------------------------------------------- */

/* A pipe made by this process: pipe() for @flags 0, else pipe2(); counted. */
static void mkpipe(int p[2], int flags)
{
	if (flags)
		MUST(pipe2(p, flags), "pipe2(0x%x)", (unsigned int)flags);
	else
		MUST(pipe(p), "pipe");
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

/* Index of the first byte of @buf that is not the pattern at @off, or -1. */
static long pat_find_bad(const uint8_t *buf, uint64_t off, size_t n, unsigned int salt)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != pat(off + i, salt))
			return (long)i;
	return -1;
}

static void pat_check(const uint8_t *buf, uint64_t off, size_t n, unsigned int salt,
		      const char *what)
{
	long bad = pat_find_bad(buf, off, n, salt);

	if (bad >= 0)
		fail("%s: byte %" PRIu64 " of the stream is 0x%02x, expected 0x%02x (data lost, "
		     "repeated or out of order)", what, off + (uint64_t)bad, buf[bad],
		     pat(off + (uint64_t)bad, salt));
}

/* @n bytes of a stream that is all @want, the first at offset @off. */
static void fill_check(const uint8_t *buf, size_t n, uint8_t want, uint64_t off, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != want)
			fail("byte %" PRIu64 " of %s is 0x%02x", off + i, what, buf[i]);
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

/* Everything until EOF (blocking), malloc'ed and NUL-terminated; its length in *@len. */
static char *read_to_eof(int fd, size_t *len, const char *what)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap + 1);

	if (!buf)
		fail("out of memory");
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *nb = realloc(buf, cap * 2 + 1);

			if (!nb)
				fail("out of memory");
			buf = nb;
			cap *= 2;
		}
		step("%s: read until EOF", what);
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail_errno(errno, "%s: read", what);
		if (!r)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
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
		child_fail(120, "no go byte (%s)", errno ? errname(errno) : "EOF");
}

/* poll() of one fd: its revents (0 if nothing within @ms). */
static unsigned int poll_ev(int fd, short events, int ms, const char *what)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	step("%s: poll %d ms", what, ms);
	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		fail_errno(errno, "%s: poll", what);
	if (r == 0 && p.revents)
		fail("%s: poll returned 0 with revents %s", what, ev_str((uint16_t)p.revents, "POLL"));
	return r ? (uint16_t)p.revents : 0;
}

static void check_poll(int fd, short events, unsigned int want, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void check_poll(int fd, short events, unsigned int want, const char *fmt, ...)
{
	char what[512];
	unsigned int got;

	FMT(what, fmt);
	got = poll_ev(fd, events, want ? 0 : QUIET_MS, what);
	if (got != want)
		fail("%s: poll(%s): expected revents %s, got %s", what, ev_str((uint16_t)events,
		     "POLL"), ev_str(want, "POLL"), ev_str(got, "POLL"));
	ok("%s: poll(%s) -> %s", what, ev_str((uint16_t)events, "POLL"), ev_str(want, "POLL"));
}

/*
 * Nonblocking @fd: pattern bytes from *@off until EAGAIN (4096-byte writes,
 * then single bytes, so the pipe ends up full). Returns the bytes written.
 */
static size_t fill_nb(int fd, uint64_t *off, unsigned int salt, const char *what)
{
	uint8_t buf[4096];
	size_t total = 0;

	for (size_t chunk = sizeof(buf); chunk; chunk = chunk == 1 ? 0 : 1) {
		for (;;) {
			ssize_t r;

			pat_fill(buf, *off, chunk, salt);
			r = write(fd, buf, chunk);
			if (r < 0 && errno == EAGAIN)
				break;
			if (r < 0)
				fail_errno(errno, "%s: nonblocking write", what);
			if ((size_t)r != chunk && chunk <= PIPE_BUF)
				fail("%s: a nonblocking write of %zu bytes (<= PIPE_BUF) wrote %zd: "
				     "not all or nothing", what, chunk, r);
			*off += (uint64_t)r;
			total += (size_t)r;
			if (total > (256u << 20))
				fail("%s: more than 256 MiB went into the pipe without EAGAIN",
				     what);
		}
	}
	return total;
}

/*
 * Nonblocking @fd: reads (up to @max bytes each) until EAGAIN or EOF,
 * checking the pattern from *@off. Returns the bytes read; *@eof if it
 * ended at EOF.
 */
static size_t drain_nb(int fd, uint64_t *off, unsigned int salt, size_t max, bool *eof,
		       const char *what)
{
	static uint8_t buf[65536];
	size_t total = 0;

	if (max > sizeof(buf))
		max = sizeof(buf);
	if (eof)
		*eof = false;
	for (;;) {
		ssize_t r = read(fd, buf, max);

		if (r < 0 && errno == EAGAIN)
			break;
		if (r < 0)
			fail_errno(errno, "%s: nonblocking read", what);
		if (r == 0) {
			if (eof)
				*eof = true;
			break;
		}
		pat_check(buf, *off, (size_t)r, salt, what);
		*off += (uint64_t)r;
		total += (size_t)r;
	}
	return total;
}

static void set_nonblock(int fd, bool on)
{
	int fl = (int)MUST(fcntl(fd, F_GETFL), "F_GETFL %d", fd);

	MUST(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK), "F_SETFL %d", fd);
}

/* ---- records from several writers --------------------------------------------------- */

/*
 * A record of writer @w, sequence @q: @size bytes of 32-bit words, each
 * (w << 24 | q). Whole and in order per writer, or the reader fails.
 */
static void rec_fill(uint8_t *rec, size_t size, unsigned int w, unsigned int q)
{
	uint32_t v = (uint32_t)w << 24 | (q & 0xffffffu);

	for (size_t i = 0; i + 4 <= size; i += 4)
		memcpy(rec + i, &v, 4);
}

#define REC_MAX		4096
#define REC_WRITERS	8

struct recs {
	size_t size;
	unsigned int writers;
	uint8_t part[REC_MAX];
	size_t plen;
	uint32_t next[REC_WRITERS];
	uint64_t n;		/* records taken */
	uint64_t bytes;
};

static void recs_init(struct recs *r, size_t size, unsigned int writers)
{
	memset(r, 0, sizeof(*r));
	r->size = size;
	r->writers = writers;
}

static void rec_take(struct recs *r, const uint8_t *rec, const char *what)
{
	uint32_t v, w, q;

	memcpy(&v, rec, 4);
	for (size_t i = 4; i + 4 <= r->size; i += 4) {
		uint32_t x;

		memcpy(&x, rec + i, 4);
		if (x != v)
			fail("%s: record %" PRIu64 " (stream byte %" PRIu64 ") is torn: it starts "
			     "as writer %u's record %u but byte %zu belongs to writer %u's record "
			     "%u (writes of <= PIPE_BUF bytes interleaved)", what, r->n,
			     r->bytes - r->size, v >> 24, v & 0xffffffu, i, x >> 24,
			     x & 0xffffffu);
	}
	w = v >> 24;
	q = v & 0xffffffu;
	if (w >= r->writers)
		fail("%s: record %" PRIu64 ": writer %u does not exist (garbage)", what, r->n, w);
	if (q != r->next[w])
		fail("%s: record %" PRIu64 ": writer %u's record %u where its %u was due (lost, "
		     "repeated or reordered)", what, r->n, w, q, r->next[w]);
	r->next[w]++;
	r->n++;
}

static void recs_feed(struct recs *r, const uint8_t *buf, size_t n, const char *what)
{
	while (n) {
		size_t take = r->size - r->plen;

		if (take > n)
			take = n;
		memcpy(r->part + r->plen, buf, take);
		r->plen += take;
		r->bytes += take;
		buf += take;
		n -= take;
		if (r->plen == r->size) {
			rec_take(r, r->part, what);
			r->plen = 0;
		}
	}
}

/*
 * Blocking reads of odd sizes from @fd into @r until it holds @until
 * records, or (@to_eof) until EOF, which must fall on a record boundary.
 */
static void recs_read(int fd, struct recs *r, uint64_t until, bool to_eof, const char *what)
{
	static const size_t sizes[] = { 1000, 999, 4097, 1, 3000, 65536, 7, 12345 };
	static uint8_t buf[65536];
	unsigned int k = 0;

	while (to_eof || r->n < until) {
		size_t want = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];
		ssize_t n;

		step("%s: read (%" PRIu64 " records so far)", what, r->n);
		n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail_errno(errno, "%s: read", what);
		if (n == 0) {
			if (!to_eof)
				fail("%s: EOF after %" PRIu64 " records, %" PRIu64 " expected", what,
				     r->n, until);
			if (r->plen)
				fail("%s: EOF inside a record (%zu of its %zu bytes)", what,
				     r->plen, r->size);
			return;
		}
		recs_feed(r, buf, (size_t)n, what);
	}
}

/* A writer child: records [@from, @to) of writer @w, one write each (must be whole). */
static void c_write_recs(int fd, size_t size, unsigned int w, unsigned int from, unsigned int to)
{
	uint8_t rec[REC_MAX];

	for (unsigned int q = from; q < to; q++) {
		ssize_t r;

		rec_fill(rec, size, w, q);
		do
			r = write(fd, rec, size);
		while (r < 0 && errno == EINTR);
		if (r != (ssize_t)size)
			child_fail(1, "writer %u: record %u: write of %zu bytes returned %zd (%s)",
				   w, q, size, r, r < 0 ? errname(errno) : "partial");
		alarm(ALARM_S);
	}
}

/* ---- SHA-256 (FIPS 180-4), for the pipeline's producer ------------------------------ */

struct sha256 {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t n;
};

static const uint32_t sha_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2,
};

#define ROR32(x, n)	(((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const uint8_t *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, hh;

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = hh + (ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25)) + ((e & f) ^ (~e & g)) +
			      sha_k[i] + w[i];
		uint32_t t2 = (ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22)) +
			      ((a & b) ^ (a & c) ^ (b & c));

		hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
	}
	h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

static void sha_init(struct sha256 *s)
{
	static const uint32_t h0[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
					0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };

	memcpy(s->h, h0, sizeof(h0));
	s->len = 0;
	s->n = 0;
}

static void sha_update(struct sha256 *s, const uint8_t *p, size_t len)
{
	s->len += len;
	if (s->n) {
		size_t take = 64 - s->n < len ? 64 - s->n : len;

		memcpy(s->buf + s->n, p, take);
		s->n += take;
		p += take;
		len -= take;
		if (s->n < 64)
			return;
		sha_block(s->h, s->buf);
		s->n = 0;
	}
	for (; len >= 64; p += 64, len -= 64)
		sha_block(s->h, p);
	memcpy(s->buf, p, len);
	s->n = len;
}

static void sha_final(struct sha256 *s, char hex[65])
{
	uint64_t bits = s->len * 8;
	uint8_t pad[72] = { 0x80 };
	size_t padlen = (s->n < 56 ? 56 : 120) - s->n;

	for (int i = 0; i < 8; i++)
		pad[padlen + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
	sha_update(s, pad, padlen + 8);
	for (int i = 0; i < 8; i++)
		snprintf(hex + 8 * i, 9, "%08x", s->h[i]);
}

/* ---- the pipeline's producer (--gen) ------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* The byte stream of a seed, independent of how it is cut into writes. */
struct gen {
	uint64_t s;
	uint8_t carry[8];
	unsigned int ncarry;
};

static void gen_fill(struct gen *g, uint8_t *dst, size_t n)
{
	while (n && g->ncarry) {
		*dst++ = g->carry[8 - g->ncarry--];
		n--;
	}
	for (; n >= 8; dst += 8, n -= 8) {
		uint64_t v = splitmix64(&g->s);

		memcpy(dst, &v, 8);
	}
	if (n) {
		uint64_t v = splitmix64(&g->s);

		memcpy(g->carry, &v, 8);
		g->ncarry = 8;
		while (n--)
			*dst++ = g->carry[8 - g->ncarry--];
	}
}

/*
 * ipcd-pipe --gen SEED BYTES FD: BYTES of the seed's stream on stdout, cut
 * into writes of 1 B..256 KiB (log-uniform, from the seed too); then its
 * size, write count, smallest and largest write and SHA-256 on FD.
 */
static int gen_main(const char *seed_s, const char *bytes_s, const char *fd_s)
{
	uint64_t seed = strtoull(seed_s, NULL, 0), left = strtoull(bytes_s, NULL, 0);
	uint64_t sz = seed ^ 0x5157a11e5ull, writes = 0, total = left;
	size_t smin = SIZE_MAX, smax = 0;
	struct gen g = { .s = seed };
	struct sha256 h;
	uint8_t *buf = malloc(GEN_MAX);
	char hex[65], rep[256];
	int rfd = atoi(fd_s), len;

	case_name = "pipeline-1g --gen";
	snprintf(step_txt, sizeof(step_txt), "a write into the pipeline (stdout)");
	if (!buf)
		return 2;
	sha_init(&h);
	while (left) {
		uint64_t r = splitmix64(&sz);
		size_t n = 1 + (size_t)((r >> 8) % (1ull << (r % 19)));

		if (writes < 2)
			n = writes ? GEN_MAX : 1;	/* both extremes for certain */

		smin = n < smin ? n : smin;
		smax = n > smax ? n : smax;
		if (n > left)
			n = (size_t)left;
		gen_fill(&g, buf, n);
		sha_update(&h, buf, n);
		alarm(GEN_ALARM_S);
		if (!c_write_all(1, buf, n)) {
			fprintf(stderr, "ipcd-pipe --gen: write %zu bytes after %" PRIu64 ": %s\n", n,
				total - left, strerror(errno));
			return 1;
		}
		left -= n;
		writes++;
	}
	alarm(0);
	sha_final(&h, hex);
	/* write(), not dprintf(): stdio on a pipe end is the stdio case's check */
	len = snprintf(rep, sizeof(rep), "gen bytes=%" PRIu64 " writes=%" PRIu64
		       " sizes=%zu..%zu sha256=%s\n", total, writes, smin, smax, hex);
	if (!c_write_all(rfd, rep, (size_t)len)) {
		fprintf(stderr, "ipcd-pipe --gen: report on fd %d: %s\n", rfd, strerror(errno));
		return 1;
	}
	return 0;
}

/* ---- running real programs ---------------------------------------------------------- */

/*
 * Runs @argv (execvp) in its own process group with stdin from /dev/null,
 * stdout into a pipe of ours (made here, counted) and stderr ours; @fd3 (if
 * >= 0) becomes its fd 3 (and is closed here). Reads stdout to EOF and
 * reaps it, all within @guard_ms; then its group must be empty. Returns the
 * exit status (128 + signal); *@out the output (malloc'ed).
 */
static int run_capture(char *const argv[], int fd3, int guard_ms, char **out, const char *what)
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
		if (in < 0 || dup2(in, 0) < 0 || dup2(o[1], 1) < 0 ||
		    (fd3 >= 0 && fd3 != 3 && dup2(fd3, 3) < 0))
			child_fail(126, "%s: dup2: %s", what, strerror(errno));
		if (fd3 == 3)
			fcntl(3, F_SETFD, 0);
		signal(SIGPIPE, SIG_DFL);
		alarm(0);	/* a pending alarm survives exec: our guard is the parent's */
		execvp(argv[0], argv);
		child_fail(127, "exec %s: %s", argv[0], strerror(errno));
	}
	setpgid(pid, pid);
	victim_add(-pid);
	xclose(o[1]);
	if (fd3 >= 0)
		xclose(fd3);
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

/* sh -c @script (with $0 @arg0 and $1 @arg1 if given): its output must be @want. */
static void sh_expect(const char *shell, const char *script, unsigned int script_pipes,
		      int want_code, const char *want, const char *what)
{
	char *const argv[] = { (char *)shell, (char *)"-c", (char *)script, NULL };
	char *out;
	int code;

	code = run_capture(argv, -1, LONG_MS, &out, what);
	n_pipes += script_pipes;
	if (code != want_code || strcmp(out, want))
		fail("%s: %s -c '%s': exit %d, output \"%.300s\"; expected exit %d, output "
		     "\"%s\"", what, shell, script, code, out, want_code, want);
	ok("%s: %s -c '%s': exit %d and the expected output", what, shell, script, want_code);
	free(out);
}

/* ---- case pipeline-1g --------------------------------------------------------------- */

static void pipeline_run(const char *script, unsigned int script_pipes, const char *what)
{
	char self[4096], seed[32], bytes[32], *out, *rep, hex[65] = "", phex[65] = "";
	char *const argv[] = { (char *)"sh", (char *)"-c", (char *)script, self, seed, bytes,
			       NULL };
	unsigned long long rbytes = 0, rwrites = 0;
	size_t smin = 0, smax = 0;
	int res[2], code;

	self_exe(self, sizeof(self));
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)GEN_SEED);
	snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)GEN_BYTES);
	mkpipe(res, O_CLOEXEC);
	code = run_capture(argv, res[1], LONG_MS, &out, what);
	n_pipes += script_pipes;
	rep = read_to_eof(res[0], NULL, "the producer's report");
	xclose(res[0]);
	check_eq(code, 0, "%s: the shell's exit status", what);
	if (sscanf(rep, "gen bytes=%llu writes=%llu sizes=%zu..%zu sha256=%64[0-9a-f]", &rbytes,
		   &rwrites, &smin, &smax, phex) != 5)
		fail("%s: the producer reported \"%s\" (it failed: see its stderr)", what, rep);
	check_eq((long long)rbytes, (long long)GEN_BYTES, "%s: bytes the producer wrote", what);
	ok("%s: the producer cut them into %llu writes of %zu to %zu bytes", what, rwrites, smin,
	   smax);
	if (sscanf(out, "%64[0-9a-f]", hex) != 1 || strlen(hex) != 64)
		fail("%s: sha256sum printed \"%.200s\"", what, out);
	if (strcmp(hex, phex))
		fail("%s: sha256sum read a stream whose SHA-256 is %s; the producer wrote one "
		     "whose SHA-256 is %s (bytes lost, repeated or reordered)", what, hex, phex);
	ok("%s: sha256sum read exactly the stream the producer wrote: sha256 %s", what, hex);
	free(out);
	free(rep);
}

static void case_pipeline_1g(void)
{
	pipeline_run("\"$0\" --gen \"$1\" \"$2\" 3 | sha256sum 3>&-", 1, "gen | sha256sum");
	pipeline_run("\"$0\" --gen \"$1\" \"$2\" 3 | cat 3>&- | sha256sum 3>&-", 2,
		     "gen | cat | sha256sum");
}

/* ---- case eof-last-writer ----------------------------------------------------------- */

#define EOF_REC		64

/* Three writers exit at different moments; EOF only after the last. */
static void eof_three_writers(void)
{
	int p[2], g1[2], g2[2];
	pid_t w0, w1, w2;
	struct recs r;
	char c;

	mkpipe(p, 0);
	mkpipe(g1, O_CLOEXEC);
	mkpipe(g2, O_CLOEXEC);
	w0 = child_fork();
	if (w0 == 0) {
		close(p[0]);
		c_write_recs(p[1], EOF_REC, 0, 0, 1000);
		_exit(0);
	}
	w1 = child_fork();
	if (w1 == 0) {
		close(p[0]);
		close(g1[1]);
		c_write_recs(p[1], EOF_REC, 1, 0, 1000);
		c_wait_go(g1[0]);
		c_write_recs(p[1], EOF_REC, 1, 1000, 1500);
		_exit(0);
	}
	w2 = child_fork();
	if (w2 == 0) {
		close(p[0]);
		close(g2[1]);
		c_write_recs(p[1], EOF_REC, 2, 0, 1000);
		c_wait_go(g2[0]);
		c_write_recs(p[1], EOF_REC, 2, 1000, 1500);
		_exit(0);
	}
	xclose(p[1]);
	xclose(g1[0]);
	xclose(g2[0]);
	recs_init(&r, EOF_REC, 3);
	recs_read(p[0], &r, 3000, false, "3 writers, their first 1000 records each");
	check_eq((long long)r.n, 3000, "3 writers: 64-byte records read, each writer's in order");
	check_eq(child_wait(w0, "writer 0"), 0, "writer 0 wrote 1000 records and exited: status");
	check_poll(p[0], POLLIN, 0, "writer 0 gone, writers 1 and 2 hold the write end: no EOF");
	go(g1[1], "writer 1 writes 500 more and exits");
	recs_read(p[0], &r, 3500, false, "writer 1's last 500 records");
	check_eq(child_wait(w1, "writer 1"), 0, "writer 1 exited: status");
	check_poll(p[0], POLLIN, 0, "writers 0 and 1 gone, writer 2 holds the write end: no EOF");
	go(g2[1], "writer 2 writes 500 more and exits");
	recs_read(p[0], &r, 0, true, "until EOF");
	check_eq(child_wait(w2, "writer 2"), 0, "writer 2 exited: status");
	check_eq((long long)r.n, 4000, "EOF after the last writer exited: records read");
	check_true(r.next[0] == 1000 && r.next[1] == 1500 && r.next[2] == 1500,
		   "each writer's records complete and in order (1000, 1500, 1500)");
	step("read at EOF again");
	check_eq(read(p[0], &c, 1), 0, "read at EOF again");
	xclose(p[0]);
	xclose(g1[1]);
	xclose(g2[1]);
}

/*
 * A writer SIGKILLed while blocked in one 8 MiB write into the full pipe:
 * the reader still gets EOF once the other writers exit, and what it read is
 * writers 0 and 2's first records, a prefix of the killed write, then writer
 * 2's last records.
 */
static void eof_writer_killed(void)
{
	const size_t first = 200 * EOF_REC, last = 100 * EOF_REC;
	int p[2], rdy[2], g2[2];
	pid_t w0, w1, w2;
	size_t len, k;
	struct recs r;
	uint8_t *data;
	char c[2];

	mkpipe(p, 0);
	mkpipe(rdy, O_CLOEXEC);
	mkpipe(g2, O_CLOEXEC);
	w0 = child_fork();
	if (w0 == 0) {
		close(p[0]);
		c_write_recs(p[1], EOF_REC, 0, 0, 100);
		_exit(0);
	}
	w2 = child_fork();
	if (w2 == 0) {
		close(p[0]);
		close(g2[1]);
		c_write_recs(p[1], EOF_REC, 2, 0, 100);
		if (write(rdy[1], "2", 1) != 1)
			child_fail(2, "ready byte: %s", strerror(errno));
		c_wait_go(g2[0]);
		c_write_recs(p[1], EOF_REC, 2, 100, 200);
		_exit(0);
	}
	check_eq(child_wait(w0, "writer 0"), 0, "writer 0 wrote 100 records and exited: status");
	read_exact(rdy[0], c, 1, "writer 2 wrote its first 100 records");
	w1 = child_fork();
	if (w1 == 0) {
		uint8_t *big = malloc(BIG_WRITE);
		ssize_t n;

		close(p[0]);
		if (!big)
			child_fail(2, "out of memory");
		pat_fill(big, 0, BIG_WRITE, 1);
		if (write(rdy[1], "1", 1) != 1)
			child_fail(2, "ready byte: %s", strerror(errno));
		n = write(p[1], big, BIG_WRITE);
		child_fail(1, "a write of 8 MiB into a pipe nobody reads returned %zd (%s)", n,
			   n < 0 ? errname(errno) : "");
	}
	xclose(p[1]);
	read_exact(rdy[0], c, 1, "writer 1 starts its 8 MiB write");
	sleep_ms(SETTLE_MS);
	kill(w1, SIGKILL);
	check_eq(child_wait(w1, "writer 1"), 128 + SIGKILL,
		 "writer 1, blocked in an 8 MiB write into the full pipe, SIGKILLed: status");
	go(g2[1], "writer 2 writes 100 more and exits");
	data = (uint8_t *)read_to_eof(p[0], &len, "until EOF, after the kill");
	check_eq(child_wait(w2, "writer 2"), 0, "writer 2 exited: status");
	ok("EOF once writers 0 and 2 exited and writer 1 was killed");
	if (len < first + last)
		fail("%zu bytes before EOF, fewer than the %zu of writers 0 and 2", len,
		     first + last);
	recs_init(&r, EOF_REC, 3);
	recs_feed(&r, data, first, "writers 0 and 2, before the kill");
	check_true(r.next[0] == 100 && r.next[2] == 100 && r.next[1] == 0,
		   "the first bytes: writers 0 and 2's first 100 records, each in order");
	k = len - first - last;
	pat_check(data + first, 0, k, 1, "writer 1's killed 8 MiB write");
	ok("then a prefix of writer 1's write, intact (the bytes it got in before the kill)");
	info("%zu bytes of writer 1's 8 MiB write arrived", k);
	recs_feed(&r, data + first + k, last, "writer 2, after the kill");
	check_true(r.next[2] == 200 && r.n == 300,
		   "then writer 2's last 100 records, in order, and nothing else");
	free(data);
	xclose(p[0]);
	xclose(rdy[0]);
	xclose(rdy[1]);
	xclose(g2[1]);
	xclose(g2[0]);
}

static void case_eof_last_writer(void)
{
	eof_three_writers();
	eof_writer_killed();
}

/* ---- case epipe-sigpipe ------------------------------------------------------------- */

enum sp_mode { SP_DFL, SP_IGN, SP_BLOCK };

static const char *const sp_names[] = { "SIGPIPE default", "SIGPIPE ignored",
					"SIGPIPE blocked" };

/*
 * The writer child: (@big) announces itself and makes one 8 MiB write, else
 * writes "hello", waits for its go byte and writes one byte. With SIGPIPE
 * default that write must kill it; otherwise it and the next write must
 * fail with EPIPE (an interrupted 8 MiB write may have written a part).
 */
static void c_epipe_writer(int w, enum sp_mode sp, bool big, int rdy, int go_r)
{
	static uint8_t buf[BIG_WRITE];
	ssize_t n;
	int e;

	if (sp == SP_IGN) {
		signal(SIGPIPE, SIG_IGN);
	} else {
		sigset_t set;

		signal(SIGPIPE, SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, SIGPIPE);
		sigprocmask(sp == SP_BLOCK ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
	}
	if (big) {
		if (write(rdy, "w", 1) != 1)
			child_fail(2, "ready byte: %s", strerror(errno));
		errno = 0;
		n = write(w, buf, sizeof(buf));
		e = errno;
	} else {
		if (!c_write_all(w, "hello", 5))
			child_fail(2, "write hello: %s", strerror(errno));
		c_wait_go(go_r);
		errno = 0;
		n = write(w, "x", 1);
		e = errno;
	}
	if (sp == SP_DFL)
		child_fail(1, "%s: the write returned %zd %s instead of killing the writer by "
			   "SIGPIPE", sp_names[sp], n, n < 0 ? errname(e) : "");
	if (!(n == -1 && e == EPIPE) && !(big && n > 0 && (size_t)n < sizeof(buf)))
		child_fail(2, "%s: the write returned %zd %s, expected -1 EPIPE%s", sp_names[sp], n,
			   n < 0 ? errname(e) : "", big ? " or a partial count" : "");
	errno = 0;
	n = write(w, "y", 1);
	e = errno;
	if (n != -1 || e != EPIPE)
		child_fail(3, "%s: the next write returned %zd %s, expected -1 EPIPE",
			   sp_names[sp], n, n < 0 ? errname(e) : "");
	if (sp == SP_BLOCK) {
		sigset_t pend;

		sigpending(&pend);
		if (sigismember(&pend, SIGPIPE) != 1)
			child_fail(4, "SIGPIPE blocked: EPIPE, but no SIGPIPE pending");
	}
	_exit(0);
}

/*
 * One scenario: a reader process and a writer process share a pipe (this
 * process keeps no end). The reader reads "hello" (unless @big), then
 * closes its end and exits, or is SIGKILLed (@kill_reader) while blocked
 * in a read (or, @big, while the writer is blocked writing 8 MiB into the
 * full pipe). Then the writer's write: SIGPIPE or EPIPE.
 */
static void epipe_one(bool kill_reader, enum sp_mode sp, bool big)
{
	int p[2], rdy[2], g[2], want = sp == SP_DFL ? 128 + SIGPIPE : 0;
	char what[256], c[2];
	pid_t rd, wr;

	snprintf(what, sizeof(what), "%s, %s", big ? "the writer blocked in an 8 MiB write into "
		 "the full pipe when the reader is SIGKILLed" : kill_reader ? "the reader is "
		 "SIGKILLed while blocked in a read" : "the reader closes its end and exits",
		 sp_names[sp]);
	mkpipe(p, 0);
	mkpipe(rdy, O_CLOEXEC);
	mkpipe(g, O_CLOEXEC);
	rd = child_fork();
	if (rd == 0) {
		char buf[5];

		close(p[1]);
		close(g[1]);
		if (!big && (!c_read_exact(p[0], buf, 5) || memcmp(buf, "hello", 5)))
			child_fail(2, "reader: no hello (%s)", errno ? errname(errno) : "EOF/data");
		if (write(rdy[1], "r", 1) != 1)
			child_fail(2, "ready byte: %s", strerror(errno));
		if (!kill_reader) {
			close(p[0]);
			_exit(0);
		}
		if (big) {
			for (;;)
				pause();
		}
		child_fail(5, "reader: a read of an empty pipe whose writer lives returned %zd",
			   read(p[0], buf, 1));
	}
	wr = child_fork();
	if (wr == 0) {
		close(p[0]);
		close(g[1]);
		c_epipe_writer(p[1], sp, big, rdy[1], g[0]);
	}
	xclose(p[0]);
	xclose(p[1]);
	xclose(rdy[1]);
	xclose(g[0]);
	read_exact(rdy[0], c, big ? 2 : 1, "the children are ready");
	if (big)
		sleep_ms(SETTLE_MS);
	if (kill_reader) {
		kill(rd, SIGKILL);
		check_eq(child_wait(rd, "the reader"), 128 + SIGKILL, "%s: the reader's status",
			 what);
	} else {
		check_eq(child_wait(rd, "the reader"), 0, "%s: the reader's status", what);
	}
	if (!big)
		go(g[1], "the writer writes again");
	check_eq(child_wait(wr, "the writer"), want, "%s: the writer's status (%s)", what,
		 sp == SP_DFL ? "killed by SIGPIPE" : sp == SP_IGN ? "0: -1 EPIPE, twice" :
		 "0: -1 EPIPE twice, SIGPIPE pending");
	xclose(rdy[0]);
	xclose(g[1]);
}

static void case_epipe_sigpipe(void)
{
	int p[2];

	epipe_one(false, SP_DFL, false);
	epipe_one(false, SP_IGN, false);
	epipe_one(false, SP_BLOCK, false);
	epipe_one(true, SP_DFL, false);
	epipe_one(true, SP_IGN, false);
	epipe_one(true, SP_DFL, true);
	epipe_one(true, SP_IGN, true);
	/* in one process, SIGPIPE ignored (as this program runs) */
	mkpipe(p, 0);
	xclose(p[0]);
	CHECK_ERR(write(p[1], "x", 1), EPIPE, "this process closed the only read end: write");
	xclose(p[1]);
}

/* ---- case atomic-pipe-buf ----------------------------------------------------------- */

/*
 * A write of PIPE_BUF bytes in 16 iovecs of 256 into a full nonblocking
 * pipe, after each read of 1000 bytes: all of it, or EAGAIN, never a part
 * (the preload once wrote 8 iovecs and stopped).
 */
static void atomic_writev(void)
{
	static uint8_t big[4096];
	struct iovec v[16];
	uint64_t woff = 0;
	unsigned int k;
	ssize_t w = -1;
	int p[2];

	mkpipe(p, O_NONBLOCK);
	memset(big, 'v', sizeof(big));
	for (k = 0; k < 16; k++)
		v[k] = (struct iovec){ .iov_base = big + k * 256, .iov_len = 256 };
	(void)fill_nb(p[1], &woff, 0, "fill before the writev");
	for (k = 0; k < 128 && w < 0; k++) {
		if (read(p[0], big, 1000) <= 0)
			fail_errno(errno, "read 1000 bytes from the full pipe");
		w = writev(p[1], v, 16);
		if (w < 0 && errno != EAGAIN)
			fail_errno(errno, "writev(16 x 256) into the full pipe");
		if (w >= 0 && w != PIPE_BUF)
			fail("writev(16 x 256 = %d) after %u reads of 1000: wrote %zd, a part",
			     PIPE_BUF, k + 1, w);
	}
	check_eq(w, PIPE_BUF, "writev of PIPE_BUF bytes in 16 iovecs into a full pipe, 1000 "
		 "bytes freed at a time: EAGAIN until it all fits, then all");
	xclose(p[0]);
	xclose(p[1]);
}

static void case_atomic_pipe_buf(void)
{
	enum { WRITERS = 4, RECS = 2000 };
	pid_t pid[WRITERS];
	struct recs r;
	int p[2];

	mkpipe(p, 0);
	for (unsigned int w = 0; w < WRITERS; w++) {
		pid[w] = child_fork();
		if (pid[w] == 0) {
			close(p[0]);
			c_write_recs(p[1], PIPE_BUF, w, 0, RECS);
			_exit(0);
		}
	}
	xclose(p[1]);
	recs_init(&r, PIPE_BUF, WRITERS);
	recs_read(p[0], &r, 0, true, "4 writers' PIPE_BUF records, reads of odd sizes");
	for (unsigned int w = 0; w < WRITERS; w++)
		check_eq(child_wait(pid[w], "a writer"), 0, "writer %u's status", w);
	check_eq((long long)r.n, WRITERS * RECS, "records of PIPE_BUF (%d) bytes read until EOF",
		 PIPE_BUF);
	for (unsigned int w = 0; w < WRITERS; w++)
		check_eq(r.next[w], RECS, "writer %u's records", w);
	ok("every record whole (never interleaved with another writer's), each writer's in order");
	xclose(p[0]);
	atomic_writev();
}

/* ---- case nonblock ------------------------------------------------------------------ */

static void nonblock_rw(void)
{
	static uint8_t big[4u << 20];
	uint64_t woff = 0, roff = 0;
	size_t cap, n, attempts = 0;
	static const size_t wsizes[] = { PIPE_BUF, 3000, 1, PIPE_BUF - 1, 2048, 100 };
	ssize_t r;
	bool eof;
	int p[2];

	mkpipe(p, O_NONBLOCK);
	check_eq(fcntl(p[0], F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_RDONLY | O_NONBLOCK,
		 "pipe2(O_NONBLOCK): read end F_GETFL & (O_ACCMODE|O_NONBLOCK)");
	check_eq(fcntl(p[1], F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_WRONLY | O_NONBLOCK,
		 "pipe2(O_NONBLOCK): write end F_GETFL & (O_ACCMODE|O_NONBLOCK)");
	CHECK_ERR(read(p[0], big, 100), EAGAIN, "empty, the writer open: read");
	cap = fill_nb(p[1], &woff, 0, "fill until EAGAIN");
	check_true(cap >= PIPE_BUF, "filled until EAGAIN: capacity >= %d", PIPE_BUF);
	info("capacity %zu bytes", cap);
	CHECK_ERR(write(p[1], "x", 1), EAGAIN, "full: write 1 byte");
	CHECK_ERR(write(p[1], big, PIPE_BUF), EAGAIN, "full: write PIPE_BUF bytes (nothing of it)");
	check_poll(p[1], POLLIN | POLLOUT, 0, "full: the write end");
	check_poll(p[0], POLLIN | POLLOUT, POLLIN, "full: the read end");
	n = drain_nb(p[0], &roff, 0, 1000, &eof, "drain in reads of 1000 bytes");
	check_true(n == cap && !eof, "drained until EAGAIN: every byte written, in order");
	/* all or nothing at every fill level: write, and read 1500 bytes after each EAGAIN */
	for (unsigned int i = 0; i < 400; i++) {
		size_t want = wsizes[i % (sizeof(wsizes) / sizeof(wsizes[0]))];

		pat_fill(big, woff, want, 0);
		r = write(p[1], big, want);
		attempts++;
		if (r < 0 && errno == EAGAIN) {
			uint8_t tmp[1500];
			ssize_t k = read(p[0], tmp, sizeof(tmp));

			if (k <= 0)
				fail_errno(k ? errno : 0, "read 1500 bytes of a full pipe");
			pat_check(tmp, roff, (size_t)k, 0, "reading to make room");
			roff += (uint64_t)k;
			continue;
		}
		if (r < 0)
			fail_errno(errno, "nonblocking write of %zu bytes", want);
		if ((size_t)r != want)
			fail("a nonblocking write of %zu bytes (<= PIPE_BUF) wrote %zd: not all or "
			     "nothing", want, r);
		woff += (uint64_t)r;
	}
	ok("%zu nonblocking writes of <= PIPE_BUF bytes at varying fill levels: each all or "
	   "nothing", attempts);
	drain_nb(p[0], &roff, 0, 65536, &eof, "drain");
	check_true(roff == woff && !eof, "drained: every byte written, in order");
	/* larger writes may be partial */
	n = cap * 4 > sizeof(big) ? sizeof(big) : cap * 4;
	if (n <= cap)
		fail("capacity %zu too large for this check", cap);
	pat_fill(big, woff, n, 0);
	r = write(p[1], big, n);
	if (r <= 0 || (size_t)r >= n)
		fail("a nonblocking write of %zu bytes (4 x the capacity) into an empty pipe "
		     "returned %zd %s: expected a partial count", n, r, r < 0 ? errname(errno) : "");
	ok("a nonblocking write of 4 x the capacity into the empty pipe: partial count");
	woff += (uint64_t)r;
	CHECK_ERR(write(p[1], "x", 1), EAGAIN, "after the partial write: write 1 byte");
	drain_nb(p[0], &roff, 0, 65536, &eof, "drain after the partial write");
	check_true(roff == woff && !eof, "drained: the partial write's bytes, in order");
	/* the writer closes: data first, then EOF */
	pat_fill(big, woff, 10, 0);
	check_eq(write(p[1], big, 10), 10, "write 10 bytes");
	woff += 10;
	xclose(p[1]);
	check_poll(p[0], POLLIN | POLLOUT, POLLIN | POLLHUP, "10 bytes left, the writer closed");
	n = drain_nb(p[0], &roff, 0, 65536, &eof, "read after the writer closed");
	check_true(n == 10 && eof, "nonblocking reads after the writer closed: the 10 bytes, then "
		   "0 (EOF, not EAGAIN)");
	check_poll(p[0], POLLIN | POLLOUT, POLLHUP, "drained, the writer closed");
	xclose(p[0]);
}


/* O_NONBLOCK set later: fcntl and FIONBIO; it belongs to the open file (dup, fork). */
static void nonblock_later(void)
{
	uint64_t woff = 0, roff = 0;
	int p[2], d, one = 1, zero = 0;
	uint8_t buf[65536];
	size_t cap, got = 0;
	pid_t pid;

	mkpipe(p, 0);
	check_eq(fcntl(p[0], F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_RDONLY,
		 "pipe(): read end F_GETFL & (O_ACCMODE|O_NONBLOCK)");
	check_eq(fcntl(p[1], F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_WRONLY,
		 "pipe(): write end F_GETFL & (O_ACCMODE|O_NONBLOCK)");
	d = (int)MUST(dup(p[0]), "dup");
	set_nonblock(p[0], true);
	check_eq(fcntl(d, F_GETFL) & O_NONBLOCK, O_NONBLOCK,
		 "F_SETFL O_NONBLOCK on the read end: its dup's F_GETFL & O_NONBLOCK");
	CHECK_ERR(read(d, buf, 1), EAGAIN, "O_NONBLOCK set by fcntl, empty: read on the dup");
	set_nonblock(p[1], true);
	cap = fill_nb(p[1], &woff, 2, "O_NONBLOCK set by fcntl on the write end: fill");
	check_true(cap >= PIPE_BUF, "O_NONBLOCK set by fcntl: filled until EAGAIN, capacity >= %d",
		   PIPE_BUF);
	set_nonblock(d, false);
	check_eq(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0,
		 "O_NONBLOCK cleared on the dup: the read end's F_GETFL & O_NONBLOCK");
	while (got < cap) {
		size_t want = cap - got < sizeof(buf) ? cap - got : sizeof(buf);
		ssize_t r;

		step("blocking reads of what is there");
		r = read(p[0], buf, want);
		if (r <= 0)
			fail_errno(r ? errno : 0, "blocking read of a full pipe");
		pat_check(buf, roff, (size_t)r, 2, "blocking reads");
		roff += (uint64_t)r;
		got += (size_t)r;
	}
	ok("blocking reads again: every byte, in order");
	MUST(ioctl(p[0], FIONBIO, &one), "ioctl FIONBIO 1");
	check_eq(fcntl(d, F_GETFL) & O_NONBLOCK, O_NONBLOCK,
		 "ioctl(FIONBIO, 1) on the read end: the dup's F_GETFL & O_NONBLOCK");
	CHECK_ERR(read(p[0], buf, 1), EAGAIN, "FIONBIO 1, empty: read");
	MUST(ioctl(p[0], FIONBIO, &zero), "ioctl FIONBIO 0");
	check_eq(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0, "ioctl(FIONBIO, 0): F_GETFL & O_NONBLOCK");
	pid = child_fork();
	if (pid == 0) {
		if ((fcntl(p[1], F_GETFL) & O_NONBLOCK) != O_NONBLOCK)
			child_fail(2, "the inherited write end lost O_NONBLOCK");
		sleep_ms(50);
		if (write(p[1], "late", 4) != 4)
			child_fail(3, "write: %s", strerror(errno));
		_exit(0);
	}
	read_exact(p[0], buf, 4, "a blocking read, woken by a child's write");
	check_true(!memcmp(buf, "late", 4), "blocking again: a read woken by a child's write");
	check_eq(child_wait(pid, "the child"), 0,
		 "the child (its inherited write end has O_NONBLOCK): status");
	xclose(d);
	xclose(p[0]);
	xclose(p[1]);
}

/* poll and select on both ends, every state; the write end after the reader closes. */
static void nonblock_poll(void)
{
	uint64_t woff = 0, roff = 0;
	struct timeval tv;
	fd_set rs, ws;
	int p[2], nfds;
	bool eof;
	char c;

	mkpipe(p, O_NONBLOCK);
	check_poll(p[0], POLLIN | POLLOUT, 0, "empty: the read end");
	check_poll(p[1], POLLIN | POLLOUT, POLLOUT, "empty: the write end");
	check_eq(write(p[1], "0123456789", 10), 10, "write 10 bytes");
	check_poll(p[0], POLLIN | POLLOUT, POLLIN, "10 bytes: the read end");
	check_poll(p[1], POLLIN | POLLOUT, POLLOUT, "10 bytes: the write end");
	check_eq(read(p[0], &c, 1), 1, "read 1 byte of 10");
	check_poll(p[0], POLLIN, POLLIN, "9 bytes left: the read end");
	check_eq(read(p[0], (char[16]){ 0 }, 16), 9, "read the other 9");
	fill_nb(p[1], &woff, 0, "fill");
	check_poll(p[1], POLLIN | POLLOUT, 0, "full: the write end");
	drain_nb(p[0], &roff, 0, 65536, &eof, "drain");
	check_poll(p[1], POLLIN | POLLOUT, POLLOUT, "drained: the write end");
	check_poll(p[0], POLLIN | POLLOUT, 0, "drained: the read end");
	/* select */
	FD_ZERO(&rs);
	FD_ZERO(&ws);
	FD_SET(p[0], &rs);
	FD_SET(p[1], &ws);
	nfds = (p[0] > p[1] ? p[0] : p[1]) + 1;
	tv = (struct timeval){ 0, QUIET_MS * 1000 };
	check_eq(select(nfds, &rs, &ws, NULL, &tv), 1, "empty: select(read end readable, write "
		 "end writable)");
	check_true(!FD_ISSET(p[0], &rs) && FD_ISSET(p[1], &ws),
		   "empty: select: only the write end (writable)");
	check_eq(write(p[1], "x", 1), 1, "write 1 byte");
	FD_ZERO(&rs);
	FD_SET(p[0], &rs);
	tv = (struct timeval){ 0, 0 };
	check_eq(select(nfds, &rs, NULL, NULL, &tv), 1, "1 byte: select(read end readable)");
	check_eq(read(p[0], &c, 1), 1, "read it");
	xclose(p[1]);
	check_poll(p[0], POLLIN | POLLOUT, POLLHUP, "empty, the writer closed: the read end");
	FD_ZERO(&rs);
	FD_SET(p[0], &rs);
	tv = (struct timeval){ 0, 0 };
	check_eq(select(p[0] + 1, &rs, NULL, NULL, &tv), 1,
		 "empty, the writer closed: select(read end readable) (EOF)");
	check_eq(read(p[0], &c, 1), 0, "empty, the writer closed: read (EOF)");
	xclose(p[0]);

	/* the reader closes: POLLERR on the write end, with POLLOUT only if there is room */
	mkpipe(p, O_NONBLOCK);
	check_eq(write(p[1], "abc", 3), 3, "write 3 bytes");
	xclose(p[0]);
	check_poll(p[1], POLLIN | POLLOUT, POLLOUT | POLLERR, "3 bytes, the reader closed: the "
		   "write end");
	FD_ZERO(&ws);
	FD_SET(p[1], &ws);
	tv = (struct timeval){ 0, 0 };
	check_eq(select(p[1] + 1, NULL, &ws, NULL, &tv), 1,
		 "the reader closed: select(write end writable)");
	CHECK_ERR(write(p[1], "x", 1), EPIPE, "the reader closed: write (SIGPIPE ignored)");
	xclose(p[1]);
	mkpipe(p, O_NONBLOCK);
	woff = 0;
	fill_nb(p[1], &woff, 0, "fill");
	xclose(p[0]);
	check_poll(p[1], POLLIN | POLLOUT, POLLERR, "full, the reader closed: the write end");
	CHECK_ERR(write(p[1], "x", 1), EPIPE, "full, the reader closed: write");
	xclose(p[1]);
}

/* Blocked poll, epoll_wait, read and write woken by another process. */
static void nonblock_wake(void)
{
	struct epoll_event ev = { .events = EPOLLIN }, got[4];
	uint64_t woff = 0, roff = 0;
	int p[2], g[2], ep, n;
	char buf[16];
	pid_t pid;

	/* the child writes, then exits only when told: the wake-up sees data, not a hangup */
	mkpipe(p, 0);
	mkpipe(g, O_CLOEXEC);
	pid = child_fork();
	if (pid == 0) {
		close(g[1]);
		sleep_ms(50);
		if (write(p[1], "wake", 4) != 4)
			child_fail(2, "write: %s", strerror(errno));
		c_wait_go(g[0]);
		sleep_ms(50);
		_exit(0);
	}
	xclose(p[1]);
	xclose(g[0]);
	check_eq(poll_ev(p[0], POLLIN, GUARD_MS, "poll woken by a child's write"), POLLIN,
		 "a poll(POLLIN) blocked on the empty read end, woken by a child's write");
	read_exact(p[0], buf, 4, "the child's bytes");
	go(g[1], "the child exits");
	check_eq(poll_ev(p[0], POLLIN, GUARD_MS, "poll woken by the last writer's exit"), POLLHUP,
		 "a poll(POLLIN) blocked on the empty read end, woken when the child (the last "
		 "writer) exits");
	check_eq(child_wait(pid, "the child"), 0, "the child's status");
	xclose(p[0]);
	xclose(g[1]);

	mkpipe(p, 0);
	mkpipe(g, O_CLOEXEC);
	ep = (int)MUST(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
	ev.data.u64 = 7;
	MUST(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), "EPOLL_CTL_ADD");
	pid = child_fork();
	if (pid == 0) {
		close(g[1]);
		sleep_ms(50);
		if (write(p[1], "epoll", 5) != 5)
			child_fail(2, "write: %s", strerror(errno));
		c_wait_go(g[0]);
		_exit(0);
	}
	xclose(p[1]);
	xclose(g[0]);
	step("epoll_wait woken by a child's write");
	n = (int)MUST(epoll_wait(ep, got, 4, GUARD_MS), "epoll_wait");
	if (n != 1 || got[0].events != EPOLLIN || got[0].data.u64 != 7)
		fail("an epoll_wait blocked on the empty read end, woken by a child's write: "
		     "%d events, the first %s (tag %" PRIu64 "); expected 1, EPOLLIN (tag 7)", n,
		     n > 0 ? ev_str(got[0].events, "EPOLL") : "-", n > 0 ? (uint64_t)got[0].data.u64 : 0);
	ok("an epoll_wait blocked on the empty read end, woken by a child's write: EPOLLIN");
	read_exact(p[0], buf, 5, "the child's bytes");
	go(g[1], "the child exits");
	step("epoll_wait woken by the last writer's exit");
	n = (int)MUST(epoll_wait(ep, got, 4, GUARD_MS), "epoll_wait");
	if (n != 1 || got[0].events != EPOLLHUP)
		fail("an epoll_wait blocked on the empty read end, woken when the child (the last "
		     "writer) exits: %d events, the first %s; expected 1, EPOLLHUP", n,
		     n > 0 ? ev_str(got[0].events, "EPOLL") : "-");
	ok("an epoll_wait blocked on the empty read end, woken when the child (the last writer) "
	   "exits: EPOLLHUP");
	check_eq(child_wait(pid, "the child"), 0, "the child's status");
	xclose(ep);
	xclose(p[0]);
	xclose(g[1]);

	/* blocking read and write woken across processes */
	mkpipe(p, 0);
	pid = child_fork();
	if (pid == 0) {
		sleep_ms(50);
		if (write(p[1], "rd", 2) != 2)
			child_fail(2, "write: %s", strerror(errno));
		_exit(0);
	}
	read_exact(p[0], buf, 2, "a blocking read woken by a child's write");
	ok("a blocking read of the empty pipe, woken by a child's write");
	check_eq(child_wait(pid, "the child"), 0, "the child's status");
	set_nonblock(p[1], true);
	fill_nb(p[1], &woff, 3, "fill");
	set_nonblock(p[1], false);
	pid = child_fork();
	if (pid == 0) {
		uint8_t tmp[65536];
		ssize_t r;

		close(p[1]);
		sleep_ms(50);
		for (;;) {
			r = read(p[0], tmp, sizeof(tmp));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				child_fail(2, "read: %s", strerror(errno));
			if (r == 0)
				_exit(0);
			if (pat_find_bad(tmp, roff, (size_t)r, 3) >= 0)
				child_fail(3, "the bytes read are not the pattern at %" PRIu64, roff);
			roff += (uint64_t)r;
			alarm(ALARM_S);
		}
	}
	xclose(p[0]);
	{
		uint8_t tmp[1000];

		pat_fill(tmp, woff, sizeof(tmp), 3);
		write_all(p[1], tmp, sizeof(tmp), "a blocking write into the full pipe");
	}
	ok("a blocking write into the full pipe, woken when a child reads");
	xclose(p[1]);
	check_eq(child_wait(pid, "the reading child"), 0,
		 "the reading child read every byte in order until EOF: status");
}

/* epoll on both ends, level-triggered and EPOLLET. */
static void ep_add(int ep, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	MUST(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), "EPOLL_CTL_ADD");
}

/*
 * epoll_wait on @ep must report exactly @want_r for the read end (tag 0)
 * and @want_w for the write end (tag 1); 0: nothing for it.
 */
static void check_ep(int ep, uint32_t want_r, uint32_t want_w, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void check_ep(int ep, uint32_t want_r, uint32_t want_w, const char *fmt, ...)
{
	struct epoll_event got[8];
	uint32_t r = 0, w = 0;
	char what[512];
	int n;

	FMT(what, fmt);
	step("%s: epoll_wait", what);
	n = (int)MUST(epoll_wait(ep, got, 8, want_r || want_w ? GUARD_MS : QUIET_MS),
		      "%s: epoll_wait", what);
	for (int i = 0; i < n; i++) {
		if (got[i].data.u64 == 0 && !r)
			r = got[i].events;
		else if (got[i].data.u64 == 1 && !w)
			w = got[i].events;
		else
			fail("%s: epoll_wait reported tag %" PRIu64 " twice or an unknown tag", what,
			     (uint64_t)got[i].data.u64);
	}
	if (r != want_r || w != want_w)
		fail("%s: expected read end %s, write end %s; got read end %s, write end %s",
		     what, ev_str(want_r, "EPOLL"), ev_str(want_w, "EPOLL"), ev_str(r, "EPOLL"),
		     ev_str(w, "EPOLL"));
	ok("%s: read end %s, write end %s", what, ev_str(want_r, "EPOLL"),
	   ev_str(want_w, "EPOLL"));
}

static void nonblock_epoll(void)
{
	uint64_t woff = 0, roff = 0;
	int p[2], ep, epr, epw;
	char buf[64];
	bool eof;

	/* level-triggered, both ends in one set */
	mkpipe(p, O_NONBLOCK);
	ep = (int)MUST(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
	ep_add(ep, p[0], EPOLLIN, 0);
	ep_add(ep, p[1], EPOLLOUT, 1);
	check_ep(ep, 0, EPOLLOUT, "LT, empty");
	check_eq(write(p[1], "0123456789", 10), 10, "write 10 bytes");
	check_ep(ep, EPOLLIN, EPOLLOUT, "LT, 10 bytes");
	check_ep(ep, EPOLLIN, EPOLLOUT, "LT, 10 bytes, again");
	check_eq(read(p[0], buf, 64), 10, "read them");
	fill_nb(p[1], &woff, 4, "fill");
	check_ep(ep, EPOLLIN, 0, "LT, full");
	drain_nb(p[0], &roff, 4, 65536, &eof, "drain");
	check_ep(ep, 0, EPOLLOUT, "LT, drained");
	check_eq(write(p[1], "abc", 3), 3, "write 3 bytes");
	xclose(p[1]);
	check_ep(ep, EPOLLIN | EPOLLHUP, 0, "LT, 3 bytes, the writer closed");
	check_eq(read(p[0], buf, 64), 3, "read them");
	check_ep(ep, EPOLLHUP, 0, "LT, drained, the writer closed");
	check_eq(read(p[0], buf, 64), 0, "read (EOF)");
	xclose(p[0]);
	mkpipe(p, O_NONBLOCK);
	ep_add(ep, p[1], EPOLLOUT, 1);
	xclose(p[0]);
	check_ep(ep, 0, EPOLLOUT | EPOLLERR, "LT, the reader closed");
	xclose(p[1]);
	xclose(ep);

	/* EPOLLET, one set per end */
	mkpipe(p, O_NONBLOCK);
	epr = (int)MUST(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
	epw = (int)MUST(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
	ep_add(epr, p[0], EPOLLIN | EPOLLET, 0);
	ep_add(epw, p[1], EPOLLOUT | EPOLLET, 1);
	check_ep(epr, 0, 0, "ET, empty: the read end's set");
	check_ep(epw, 0, EPOLLOUT, "ET, empty: the write end's set");
	check_ep(epw, 0, 0, "ET, empty: the write end's set again (reported once)");
	check_eq(write(p[1], "ab", 2), 2, "write 2 bytes");
	check_ep(epr, EPOLLIN, 0, "ET, 2 bytes arrived: the read end's set");
	check_ep(epr, 0, 0, "ET, nothing new: the read end's set again");
	check_eq(write(p[1], "cd", 2), 2, "write 2 more bytes (the first 2 unread)");
	check_ep(epr, EPOLLIN, 0, "ET, 2 more bytes arrived: the read end's set");
	check_ep(epr, 0, 0, "ET, nothing new: the read end's set again");
	check_eq(read(p[0], buf, 64), 4, "read the 4 bytes");
	check_ep(epr, 0, 0, "ET, drained: the read end's set");
	woff = roff = 0;
	fill_nb(p[1], &woff, 5, "fill");
	check_ep(epw, 0, 0, "ET, full: the write end's set");
	check_ep(epr, EPOLLIN, 0, "ET, the fill's bytes arrived: the read end's set");
	check_ep(epr, 0, 0, "ET, the read end's set again");
	drain_nb(p[0], &roff, 5, 65536, &eof, "drain");
	check_ep(epw, 0, EPOLLOUT, "ET, the full pipe drained: the write end's set");
	check_ep(epw, 0, 0, "ET, the write end's set again");
	xclose(p[0]);
	check_ep(epw, 0, EPOLLOUT | EPOLLERR, "ET, the reader closed: the write end's set");
	check_ep(epw, 0, 0, "ET, the write end's set again");
	xclose(p[1]);
	mkpipe(p, O_NONBLOCK);
	ep_add(epr, p[0], EPOLLIN | EPOLLET, 0);
	check_ep(epr, 0, 0, "ET, a new empty pipe: the read end's set");
	xclose(p[1]);
	check_ep(epr, EPOLLHUP, 0, "ET, the writer closed: the read end's set");
	check_ep(epr, 0, 0, "ET, the read end's set again");
	xclose(p[0]);
	xclose(epr);
	xclose(epw);
}

static void case_nonblock(void)
{
	nonblock_rw();
	nonblock_later();
	nonblock_poll();
	nonblock_wake();
	nonblock_epoll();
}

/* ---- case fdinfo -------------------------------------------------------------------- */

/*
 * ipcd-pipe --fd-probe A B C, exec'd by fdinfo: A and B (close-on-exec
 * write ends) must be closed, C (a write end without FD_CLOEXEC) open,
 * write-only, a FIFO, and take "exec".
 */
static int fd_probe(const char *a_s, const char *b_s, const char *c_s)
{
	int fds[2] = { atoi(a_s), atoi(b_s) }, c = atoi(c_s), rc, err;
	struct stat st;

	alarm(ALARM_S);		/* SIGALRM's default action: a hang ends the probe */
	for (int i = 0; i < 2; i++) {
		errno = 0;
		rc = fcntl(fds[i], F_GETFD);
		err = errno;
		if (rc != -1 || err != EBADF) {
			fprintf(stderr, "ipcd-pipe fd-probe: FAIL: close-on-exec fd %d: F_GETFD -> "
				"%d %s, expected -1 EBADF\n", fds[i], rc, rc == -1 ? errname(err) : "");
			return 10 + i;
		}
	}
	rc = fcntl(c, F_GETFD);
	if (rc != 0) {
		fprintf(stderr, "ipcd-pipe fd-probe: FAIL: kept fd %d: F_GETFD -> %d %s, expected "
			"0\n", c, rc, rc == -1 ? errname(errno) : "");
		return 12;
	}
	rc = fcntl(c, F_GETFL);
	if (rc < 0 || (rc & O_ACCMODE) != O_WRONLY) {
		fprintf(stderr, "ipcd-pipe fd-probe: FAIL: kept fd %d: F_GETFL -> %d\n", c, rc);
		return 13;
	}
	if (fstat(c, &st) || !S_ISFIFO(st.st_mode)) {
		fprintf(stderr, "ipcd-pipe fd-probe: FAIL: kept fd %d: not a FIFO\n", c);
		return 14;
	}
	if (!c_write_all(c, "exec", 4)) {
		fprintf(stderr, "ipcd-pipe fd-probe: FAIL: write on kept fd %d: %s\n", c,
			strerror(errno));
		return 15;
	}
	return 0;
}

static int fionread(int fd, const char *what)
{
	int n = -1;

	MUST(ioctl(fd, FIONREAD, &n), "%s: ioctl FIONREAD", what);
	return n;
}

static void fdinfo_basic(void)
{
	uint8_t buf[8192];
	struct stat s0, s1, s2;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(9),
				   .sin_addr.s_addr = htonl(0x7f000001) };
	struct sockaddr_storage ss;
	struct iovec iov = { .iov_base = buf, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	socklen_t sl = sizeof(ss), vl;
	uint64_t roff = 0;
	int p[2], q[2], sz, v = 0;

	mkpipe(p, 0);
	mkpipe(q, 0);
	MUST(fstat(p[0], &s0), "fstat");
	MUST(fstat(p[1], &s1), "fstat");
	MUST(fstat(q[0], &s2), "fstat");
	check_true(S_ISFIFO(s0.st_mode) && S_ISFIFO(s1.st_mode), "fstat: S_ISFIFO for both ends");
	check_true(s0.st_ino == s1.st_ino && s0.st_dev == s1.st_dev,
		   "fstat: both ends have the same st_dev and st_ino");
	check_true(s2.st_ino != s0.st_ino, "fstat: another pipe has another st_ino");
	check_eq(fcntl(p[0], F_GETFL) & (O_ACCMODE | O_NONBLOCK | O_APPEND), O_RDONLY,
		 "read end: F_GETFL & (O_ACCMODE|O_NONBLOCK|O_APPEND)");
	check_eq(fcntl(p[1], F_GETFL) & (O_ACCMODE | O_NONBLOCK | O_APPEND), O_WRONLY,
		 "write end: F_GETFL & (O_ACCMODE|O_NONBLOCK|O_APPEND)");
	check_eq(fcntl(p[0], F_GETFD), 0, "pipe(): read end F_GETFD");
	check_eq(fcntl(p[1], F_GETFD), 0, "pipe(): write end F_GETFD");
	sz = (int)MUST(fcntl(p[0], F_GETPIPE_SZ), "F_GETPIPE_SZ");
	check_true(sz >= PIPE_BUF, "F_GETPIPE_SZ >= %d", PIPE_BUF);
	info("F_GETPIPE_SZ %d", sz);
	check_true(fcntl(p[1], F_GETPIPE_SZ) == sz, "F_GETPIPE_SZ: the same on the write end");

	/* FIONREAD: bytes written and not read, on either end */
	check_eq(fionread(p[0], "empty"), 0, "empty: FIONREAD on the read end");
	pat_fill(buf, 0, 6000, 6);
	write_all(p[1], buf, 1000, "1000 bytes");
	check_eq(fionread(p[0], "1000"), 1000, "1000 bytes written: FIONREAD on the read end");
	check_eq(fionread(p[1], "1000"), 1000, "1000 bytes written: FIONREAD on the write end");
	read_exact(p[0], buf + 6000, 300, "300 bytes");
	pat_check(buf + 6000, roff, 300, 6, "300 bytes");
	roff += 300;
	check_eq(fionread(p[0], "700"), 700, "300 of them read: FIONREAD");
	write_all(p[1], buf + 1000, 5000, "5000 bytes");
	check_eq(fionread(p[0], "5700"), 5700, "5000 more written: FIONREAD");
	read_exact(p[0], buf + 6000, 2000, "2000 bytes");
	pat_check(buf + 6000, roff, 2000, 6, "2000 bytes");
	roff += 2000;
	read_exact(p[0], buf + 6000, 1500, "1500 bytes");
	check_eq(fionread(p[0], "2200"), 2200, "3800 of the 6000 read: FIONREAD");
	read_exact(p[0], buf + 5000, 2200, "the rest");	/* within buf[8192] */
	check_eq(fionread(p[0], "0"), 0, "all read: FIONREAD");

	/* the wrong direction, socket calls, seeking */
	CHECK_ERR(read(p[1], buf, 1), EBADF, "read on the write end");
	CHECK_ERR(write(p[0], "x", 1), EBADF, "write on the read end");
	CHECK_ERR(readv(p[1], &iov, 1), EBADF, "readv on the write end");
	CHECK_ERR(writev(p[0], &iov, 1), EBADF, "writev on the read end");
	CHECK_ERR(send(p[1], "x", 1, 0), ENOTSOCK, "send on the write end");
	CHECK_ERR(send(p[1], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT), ENOTSOCK,
		  "send(MSG_NOSIGNAL|MSG_DONTWAIT) on the write end");
	CHECK_ERR(sendmsg(p[1], &mh, 0), ENOTSOCK, "sendmsg on the write end");
	CHECK_ERR(recv(p[0], buf, 1, MSG_DONTWAIT), ENOTSOCK, "recv on the read end");
	CHECK_ERR(recvmsg(p[0], &mh, MSG_DONTWAIT), ENOTSOCK, "recvmsg on the read end");
	vl = sizeof(v);
	CHECK_ERR(getsockopt(p[0], SOL_SOCKET, SO_TYPE, &v, &vl), ENOTSOCK,
		  "getsockopt(SO_TYPE) on the read end");
	CHECK_ERR(setsockopt(p[1], SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)), ENOTSOCK,
		  "setsockopt(SO_SNDBUF) on the write end");
	CHECK_ERR(getsockname(p[0], (struct sockaddr *)&ss, &sl), ENOTSOCK,
		  "getsockname on the read end");
	sl = sizeof(ss);
	CHECK_ERR(getpeername(p[1], (struct sockaddr *)&ss, &sl), ENOTSOCK,
		  "getpeername on the write end");
	CHECK_ERR(shutdown(p[1], SHUT_WR), ENOTSOCK, "shutdown(SHUT_WR) on the write end");
	CHECK_ERR(listen(p[0], 1), ENOTSOCK, "listen on the read end");
	CHECK_ERR(accept(p[0], NULL, NULL), ENOTSOCK, "accept on the read end");
	CHECK_ERR(connect(p[1], (struct sockaddr *)&sin, sizeof(sin)), ENOTSOCK,
		  "connect(127.0.0.1:9) on the write end");
	CHECK_ERR(lseek(p[0], 0, SEEK_CUR), ESPIPE, "lseek on the read end");
	CHECK_ERR(lseek(p[1], 0, SEEK_SET), ESPIPE, "lseek on the write end");
	CHECK_ERR(pread(p[0], buf, 1, 0), ESPIPE, "pread on the read end");
	CHECK_ERR(pwrite(p[1], "x", 1, 0), ESPIPE, "pwrite on the write end");
	write_all(p[1], "still", 5, "after the errors");
	read_exact(p[0], buf, 5, "after the errors");
	check_true(!memcmp(buf, "still", 5), "after all those errors the pipe still works");
	xclose(q[0]);
	xclose(q[1]);

	/* dup, dup2, dup3, F_DUPFD, F_DUPFD_CLOEXEC: one pipe; EOF after the last write copy */
	{
		int d = (int)MUST(dup(p[1]), "dup");
		int r100 = (int)MUST(dup2(p[0], 100), "dup2 100");
		int w200 = (int)MUST(fcntl(p[1], F_DUPFD, 200), "F_DUPFD 200");
		int r300 = (int)MUST(fcntl(p[0], F_DUPFD_CLOEXEC, 300), "F_DUPFD_CLOEXEC 300");
		int r101 = (int)MUST(dup3(p[0], 101, O_CLOEXEC), "dup3 101 O_CLOEXEC");
		struct stat sd;

		check_true(r100 == 100 && w200 >= 200 && r300 >= 300 && r101 == 101,
			   "dup2 100, F_DUPFD 200, F_DUPFD_CLOEXEC 300, dup3 101: the numbers");
		check_eq(fcntl(w200, F_GETFD), 0, "F_DUPFD copy: F_GETFD");
		check_eq(fcntl(r300, F_GETFD), FD_CLOEXEC, "F_DUPFD_CLOEXEC copy: F_GETFD");
		check_eq(fcntl(r101, F_GETFD), FD_CLOEXEC, "dup3(O_CLOEXEC) copy: F_GETFD");
		MUST(fstat(r100, &sd), "fstat");
		check_true(sd.st_ino == s0.st_ino, "fstat of the dup2 copy: the same st_ino");
		write_all(d, "dup.", 4, "dup");
		write_all(w200, "fdup", 4, "F_DUPFD");
		read_exact(r100, buf, 2, "dup2 copy");
		read_exact(r300, buf + 2, 3, "F_DUPFD_CLOEXEC copy");
		read_exact(r101, buf + 5, 3, "dup3 copy");
		check_true(!memcmp(buf, "dup.fdup", 8),
			   "written through dup and F_DUPFD copies, read through dup2, "
			   "F_DUPFD_CLOEXEC and dup3 copies: one stream, in order");
		xclose(p[1]);
		write_all(d, "more", 4, "dup after the original closed");
		read_exact(p[0], buf, 4, "the original read end");
		check_true(!memcmp(buf, "more", 4),
			   "the original write end closed: its dup still writes");
		xclose(d);
		check_poll(r100, POLLIN, 0, "the original and the dup closed, the F_DUPFD copy "
			   "open: no EOF");
		xclose(w200);
		check_poll(r100, POLLIN, POLLHUP, "the last write copy closed");
		check_eq(read(r100, buf, 1), 0, "the last write copy closed: read (EOF)");
		xclose(r100);
		xclose(r300);
		xclose(r101);
		xclose(p[0]);
	}
}

static void fdinfo_cloexec(void)
{
	char self[4096], as[16], bs[16], cs[16], buf[16];
	int a[2], b[2], c[2];
	pid_t pid;

	self_exe(self, sizeof(self));
	mkpipe(a, O_CLOEXEC);
	check_true(fcntl(a[0], F_GETFD) == FD_CLOEXEC && fcntl(a[1], F_GETFD) == FD_CLOEXEC,
		   "pipe2(O_CLOEXEC): F_GETFD is FD_CLOEXEC on both ends");
	mkpipe(b, 0);
	MUST(fcntl(b[1], F_SETFD, FD_CLOEXEC), "F_SETFD FD_CLOEXEC");
	check_eq(fcntl(b[1], F_GETFD), FD_CLOEXEC, "pipe(), F_SETFD FD_CLOEXEC: F_GETFD");
	check_eq(fcntl(b[0], F_GETFD), 0, "pipe(), F_SETFD on the other end: F_GETFD");
	mkpipe(c, 0);
	snprintf(as, sizeof(as), "%d", a[1]);
	snprintf(bs, sizeof(bs), "%d", b[1]);
	snprintf(cs, sizeof(cs), "%d", c[1]);
	pid = child_fork();
	if (pid == 0) {
		char *const argv[] = { (char *)"ipcd-pipe", (char *)"--fd-probe", as, bs, cs,
				       NULL };

		close(b[0]);
		close(c[0]);
		execv(self, argv);
		child_fail(127, "exec %s: %s", self, strerror(errno));
	}
	xclose(a[1]);
	xclose(b[1]);
	xclose(c[1]);
	check_eq(child_wait(pid, "the exec'd probe"), 0,
		 "fork, exec: the probe found the close-on-exec write ends closed and the other "
		 "open, write-only, a FIFO, writable: status");
	step("pipe2(O_CLOEXEC) read end");
	check_eq(read(a[0], buf, sizeof(buf)), 0,
		 "pipe2(O_CLOEXEC): the exec closed the child's write end: read (EOF)");
	step("F_SETFD read end");
	check_eq(read(b[0], buf, sizeof(buf)), 0,
		 "F_SETFD FD_CLOEXEC: the exec closed the child's write end: read (EOF)");
	read_exact(c[0], buf, 4, "the kept pipe");
	check_true(!memcmp(buf, "exec", 4), "the kept write end carried the exec'd image's bytes");
	step("the kept pipe's EOF");
	check_eq(read(c[0], buf, sizeof(buf)), 0, "the exec'd image exited: read (EOF)");
	xclose(a[0]);
	xclose(b[0]);
	xclose(c[0]);
}

static void case_fdinfo(void)
{
	fdinfo_basic();
	fdinfo_cloexec();
}

/* ---- case stdio --------------------------------------------------------------------- */

#define STDIO_PROBE_OUT	"probe-8b" " and a longer dprintf line of 42 bytes\n" "fdopen 42\n"

/*
 * ipcd-pipe --stdio-probe FD, exec'd by the stdio case: stdio on an
 * inherited pipe end that is not 0, 1 or 2: dprintf() of exactly 8 bytes
 * and of more, then a stream fdopen()ed on it (STDIO_PROBE_OUT in all).
 */
static int stdio_probe(const char *fd_s)
{
	int fd = atoi(fd_s), n;
	FILE *f;

	alarm(ALARM_S);
	n = dprintf(fd, "probe-8b");
	if (n != 8) {
		fprintf(stderr, "ipcd-pipe stdio-probe: FAIL: dprintf of 8 bytes on fd %d: %d %s\n",
			fd, n, strerror(errno));
		return 10;
	}
	n = dprintf(fd, " and a longer dprintf line of %d bytes\n", 42);
	if (n != 39) {
		fprintf(stderr, "ipcd-pipe stdio-probe: FAIL: dprintf of 39 bytes on fd %d: %d %s\n",
			fd, n, strerror(errno));
		return 11;
	}
	f = fdopen(fd, "w");
	if (!f || fprintf(f, "fdopen %d\n", 42) != 10 || fclose(f)) {
		fprintf(stderr, "ipcd-pipe stdio-probe: FAIL: fdopen, fprintf, fclose on fd %d: %s\n",
			fd, strerror(errno));
		return 12;
	}
	return 0;
}

/* stdio streams and dprintf on pipe ends other than 0, 1, 2; popen. */
static void case_stdio(void)
{
	char self[4096], buf[256], *out;
	int p[2], n, fd;
	size_t len;
	FILE *f;
	pid_t pid;

	mkpipe(p, 0);
	check_eq(dprintf(p[1], "12345678"), 8, "dprintf of exactly 8 bytes on the write end");
	check_eq(dprintf(p[1], "and %d more\n", 30), 12, "dprintf of 12 bytes on the write end");
	read_exact(p[0], buf, 20, "what dprintf wrote");
	check_true(!memcmp(buf, "12345678and 30 more\n", 20), "dprintf: the reader got its 20 "
		   "bytes, in order");
	fd = (int)MUST(dup(p[1]), "dup");
	f = fdopen(fd, "w");
	if (!f)
		fail_errno(errno, "fdopen write end");
	check_eq(fprintf(f, "fprintf %d\n", 7), 10, "fdopen(write end, \"w\"): fprintf");
	check_eq(fflush(f), 0, "fflush");
	read_exact(p[0], buf, 10, "what fprintf wrote");
	check_true(!memcmp(buf, "fprintf 7\n", 10), "fdopen, fprintf, fflush: the reader got it");
	check_eq(fclose(f), 0, "fclose of the write end's stream");
	write_all(p[1], "line1\nline2\n", 12, "two lines");
	fd = (int)MUST(dup(p[0]), "dup");
	f = fdopen(fd, "r");
	if (!f)
		fail_errno(errno, "fdopen read end");
	check_true(fgets(buf, sizeof(buf), f) && !strcmp(buf, "line1\n"),
		   "fdopen(read end, \"r\"): fgets: line1");
	check_true(fgets(buf, sizeof(buf), f) && !strcmp(buf, "line2\n"), "fgets: line2");
	check_eq(fclose(f), 0, "fclose of the read end's stream");
	xclose(p[0]);
	xclose(p[1]);

	/* the same in an exec'd image, on an inherited end at fd 3 */
	self_exe(self, sizeof(self));
	mkpipe(p, 0);
	pid = child_fork();
	if (pid == 0) {
		char *const argv[] = { (char *)"ipcd-pipe", (char *)"--stdio-probe", (char *)"3",
				       NULL };

		if (dup2(p[1], 3) < 0)
			child_fail(126, "dup2: %s", strerror(errno));
		if (p[0] != 3)
			close(p[0]);
		if (p[1] != 3)
			close(p[1]);
		execv(self, argv);
		child_fail(127, "exec %s: %s", self, strerror(errno));
	}
	xclose(p[1]);
	out = read_to_eof(p[0], &len, "the probe's output");
	n = child_wait(pid, "the exec'd probe");
	check_eq(n, 0, "fork, exec: dprintf (8 bytes, 39 bytes) and fdopen+fprintf on the "
		 "inherited write end at fd 3: the probe's status");
	if (strcmp(out, STDIO_PROBE_OUT))
		fail("the exec'd probe's dprintf and fprintf: the reader got \"%.200s\" (%zu "
		     "bytes), expected \"%s\"", out, len, STDIO_PROBE_OUT);
	ok("the exec'd probe's dprintf and fprintf: the reader got every byte, in order");
	free(out);
	xclose(p[0]);

	/* popen: glibc's own pipe, a preloaded shell with its own pipe behind it */
	fflush(stdout);
	f = popen("seq 1 1000 | wc -l", "r");
	if (!f)
		fail_errno(errno, "popen");
	n_pipes += 1;	/* the shell's; popen's own pipe is made inside glibc */
	step("popen: fgets");
	check_true(fgets(buf, sizeof(buf), f) && !strcmp(buf, "1000\n"),
		   "popen(\"seq 1 1000 | wc -l\", \"r\"): fgets: 1000");
	check_eq(pclose(f), 0, "pclose: the shell's status");
}

/* ---- case pipe-size ----------------------------------------------------------------- */

/* F_SETPIPE_SZ: the capacity follows, and a blocking write that fits never blocks. */
static void case_pipe_size(void)
{
	static uint8_t buf[1u << 20];
	const int want = 1 << 20, fit = 900000;
	uint64_t woff = 0, roff = 0;
	size_t cap;
	int p[2], sz;
	bool eof;

	mkpipe(p, O_NONBLOCK);
	sz = (int)MUST(fcntl(p[1], F_SETPIPE_SZ, want), "F_SETPIPE_SZ %d", want);
	check_true(sz >= want, "F_SETPIPE_SZ %d: returns >= %d", want, want);
	check_true(fcntl(p[0], F_GETPIPE_SZ) == sz && fcntl(p[1], F_GETPIPE_SZ) == sz,
		   "F_GETPIPE_SZ on both ends: what F_SETPIPE_SZ returned");
	cap = fill_nb(p[1], &woff, 7, "fill the enlarged pipe");
	check_true(cap >= (size_t)sz, "a nonblocking fill of the enlarged pipe takes >= %d bytes",
		   want);
	drain_nb(p[0], &roff, 7, 65536, &eof, "drain");
	check_true(roff == woff && !eof, "drained: every byte, in order");
	set_nonblock(p[1], false);
	pat_fill(buf, woff, (size_t)fit, 7);
	write_all(p[1], buf, (size_t)fit, "one blocking write that fits, nobody reading");
	woff += (uint64_t)fit;
	ok("one blocking write of %d bytes into the empty enlarged pipe, nobody reading: "
	   "returns", fit);
	drain_nb(p[0], &roff, 7, 65536, &eof, "drain");
	check_true(roff == woff && !eof, "drained: every byte, in order");
	sz = (int)MUST(fcntl(p[1], F_SETPIPE_SZ, 65536), "F_SETPIPE_SZ 65536");
	check_true(sz >= 65536 && fcntl(p[0], F_GETPIPE_SZ) == sz,
		   "F_SETPIPE_SZ 65536 on the empty pipe: F_GETPIPE_SZ follows");
	write_all(p[1], buf, 8192, "8192 bytes");
	CHECK_ERR(fcntl(p[1], F_SETPIPE_SZ, 4096), EBUSY,
		  "8192 bytes in the pipe: F_SETPIPE_SZ 4096");
	check_true(fcntl(p[0], F_GETPIPE_SZ) == sz, "F_GETPIPE_SZ unchanged");
	xclose(p[1]);
	xclose(p[0]);
}

/* ---- case exec-cat ------------------------------------------------------------------ */

/*
 * @total pattern bytes into @wfd (cat's stdin) while reading @rfd (its
 * stdout), both nonblocking, by poll; @wfd closed once all is written;
 * @rfd read to EOF. Every byte must come back, in order.
 */
static void pump(int wfd, int rfd, size_t total, const char *what)
{
	static const size_t sizes[] = { 65536, 1, 4096, 7000, 30000, 100 };
	static uint8_t wbuf[65536], rbuf[65536];
	uint64_t woff = 0, roff = 0;
	unsigned int k = 0;
	bool wopen = true;

	set_nonblock(wfd, true);
	set_nonblock(rfd, true);
	for (;;) {
		struct pollfd pf[2] = { { .fd = rfd, .events = POLLIN },
					{ .fd = wopen ? wfd : -1, .events = POLLOUT } };
		int n;

		step("%s: %" PRIu64 " bytes written, %" PRIu64 " read", what, woff, roff);
		n = poll(pf, 2, GUARD_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail_errno(errno, "%s: poll", what);
		if (n == 0)
			hang("%s: nothing to read or write for %d ms (%" PRIu64 " bytes written, "
			     "%" PRIu64 " read)", what, GUARD_MS, woff, roff);
		if (pf[0].revents) {
			ssize_t r = read(rfd, rbuf, sizeof(rbuf));

			if (r < 0 && errno != EAGAIN)
				fail_errno(errno, "%s: read", what);
			if (r == 0)
				break;
			if (r > 0) {
				pat_check(rbuf, roff, (size_t)r, 8, what);
				roff += (uint64_t)r;
			}
		}
		if (wopen && pf[1].revents) {
			size_t chunk = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];
			ssize_t r;

			if (pf[1].revents & POLLERR)
				fail("%s: cat closed its stdin after %" PRIu64 " bytes", what, woff);
			if (chunk > total - woff)
				chunk = (size_t)(total - woff);
			pat_fill(wbuf, woff, chunk, 8);
			r = write(wfd, wbuf, chunk);
			if (r < 0 && errno != EAGAIN)
				fail_errno(errno, "%s: write", what);
			if (r > 0)
				woff += (uint64_t)r;
			if (woff == total) {
				xclose(wfd);
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

static void case_exec_cat(void)
{
	const size_t total = 4u << 20;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	char *const argv[] = { (char *)"cat", NULL };
	int in[2], out[2], err;
	sigset_t def;
	pid_t pid;

	mkpipe(in, 0);
	mkpipe(out, 0);
	pid = child_fork();
	if (pid == 0) {
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			child_fail(126, "dup2: %s", strerror(errno));
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		signal(SIGPIPE, SIG_DFL);
		alarm(0);
		execvp("cat", argv);
		child_fail(127, "exec cat: %s", strerror(errno));
	}
	xclose(in[0]);
	xclose(out[1]);
	pump(in[1], out[0], total, "fork, dup2 onto 0 and 1, exec cat");
	xclose(out[0]);
	check_eq(child_wait(pid, "cat"), 0, "fork, exec cat: its exit status");

	mkpipe(in, 0);
	mkpipe(out, 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addclose(&fa, in[0]);
	posix_spawn_file_actions_addclose(&fa, in[1]);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	posix_spawn_file_actions_addclose(&fa, out[1]);
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
	xclose(in[0]);
	xclose(out[1]);
	pump(in[1], out[0], total, "posix_spawn cat, file actions dup2 onto 0 and 1");
	xclose(out[0]);
	check_eq(child_wait(pid, "cat"), 0, "posix_spawn cat: its exit status");
}

/* ---- case python-mp ----------------------------------------------------------------- */

/* Counts the pipes python makes (multiprocessing calls os.pipe() at call time). */
static const char py_prologue[] =
	"import os, sys, hashlib, multiprocessing as mp\n"
	"_pipe = os.pipe\n"
	"made = [0]\n"
	"def counted_pipe():\n"
	"    made[0] += 1\n"
	"    return _pipe()\n"
	"os.pipe = counted_pipe\n"
	"ctx = mp.get_context('fork')\n"
	"def done():\n"
	"    print('PY pipes=%d' % made[0], flush=True)\n"
	"def say(s):\n"
	"    print('PY ok ' + s, flush=True)\n";

static const char py_pipe[] =
	"def msg(i):\n"
	"    return (i, b'z' * 100000 if i % 500 == 7 else b'%d.' % i * (i % 97))\n"
	"def child(r_in, w_out, n):\n"
	"    for i in range(n):\n"
	"        if r_in.recv() != msg(i):\n"
	"            w_out.send(('bad', i))\n"
	"            return\n"
	"        w_out.send(('ok', i))\n"
	"    data = r_in.recv_bytes()\n"
	"    w_out.send_bytes(hashlib.sha256(data).digest())\n"
	"    w_out.close()\n"
	"N = 2000\n"
	"r1, w1 = ctx.Pipe(duplex=False)\n"
	"r2, w2 = ctx.Pipe(duplex=False)\n"
	"p = ctx.Process(target=child, args=(r1, w2, N))\n"
	"p.start()\n"
	"r1.close()\n"
	"w2.close()\n"
	"for i in range(N):\n"
	"    w1.send(msg(i))\n"
	"    if not r2.poll(60):\n"
	"        sys.exit('no answer to message %d within 60 s' % i)\n"
	"    a = r2.recv()\n"
	"    if a != ('ok', i):\n"
	"        sys.exit('message %d: answer %r' % (i, a))\n"
	"big = bytes(range(256)) * 16384\n"
	"w1.send_bytes(big)\n"
	"if not r2.poll(60) or r2.recv_bytes() != hashlib.sha256(big).digest():\n"
	"    sys.exit('4 MiB: no answer or the wrong hash')\n"
	"say('Pipe(duplex=False) each way: 2000 pickled messages (some 100 kB) answered in "
	"order, 4 MiB verified')\n"
	"if not r2.poll(60):\n"
	"    sys.exit('no EOF within 60 s')\n"
	"try:\n"
	"    r2.recv()\n"
	"    sys.exit('data after the last answer')\n"
	"except EOFError:\n"
	"    say('Pipe(duplex=False): EOFError once the child closed its end')\n"
	"p.join(60)\n"
	"if p.exitcode != 0:\n"
	"    sys.exit('child exit code %r' % p.exitcode)\n"
	"say('Process exit code 0 (its sentinel pipe)')\n"
	"w1.close()\n"
	"r2.close()\n"
	"done()\n";

static const char py_queue[] =
	"def item(k, i):\n"
	"    return 'p%d.%d;' % (k, i) * (1 + i % 7)\n"
	"def producer(q, k, n):\n"
	"    for i in range(n):\n"
	"        q.put((k, i, item(k, i)))\n"
	"    q.close()\n"
	"    q.join_thread()\n"
	"def consumer(q, w, P, n):\n"
	"    nxt = [0] * P\n"
	"    for _ in range(P * n):\n"
	"        k, i, s = q.get(timeout=60)\n"
	"        if i != nxt[k] or s != item(k, i):\n"
	"            w.send(('bad', k, i, nxt[k]))\n"
	"            return\n"
	"        nxt[k] += 1\n"
	"    w.send(('ok', nxt))\n"
	"    w.close()\n"
	"P, N = 4, 2000\n"
	"q = ctx.Queue()\n"
	"rr, rw = ctx.Pipe(duplex=False)\n"
	"c = ctx.Process(target=consumer, args=(q, rw, P, N))\n"
	"c.start()\n"
	"ps = [ctx.Process(target=producer, args=(q, k, N)) for k in range(P)]\n"
	"for p in ps:\n"
	"    p.start()\n"
	"rw.close()\n"
	"if not rr.poll(120):\n"
	"    sys.exit('no result from the consumer within 120 s')\n"
	"res = rr.recv()\n"
	"if res != ('ok', [N] * P):\n"
	"    sys.exit('consumer: %r' % (res,))\n"
	"say('Queue: 4 producer processes x 2000 items, 1 consumer process: every item once, "
	"each producer in order')\n"
	"for p in ps + [c]:\n"
	"    p.join(60)\n"
	"    if p.exitcode != 0:\n"
	"        sys.exit('exit code %r' % p.exitcode)\n"
	"say('Queue: the 5 processes exited 0')\n"
	"done()\n";

static const char py_pool[] =
	"def sq(x):\n"
	"    return x * x\n"
	"pool = ctx.Pool(4)\n"
	"r = pool.map_async(sq, range(10000)).get(120)\n"
	"if r != [x * x for x in range(10000)]:\n"
	"    sys.exit('Pool.map: wrong results')\n"
	"say('Pool(4).map over 10000 items: every result right, in order')\n"
	"r = pool.map_async(sq, range(2000), chunksize=1).get(120)\n"
	"if r != [x * x for x in range(2000)]:\n"
	"    sys.exit('Pool.map chunksize 1: wrong results')\n"
	"say('Pool(4).map over 2000 items, chunksize 1')\n"
	"r = sorted(pool.imap_unordered(sq, range(3000), chunksize=7))\n"
	"if r != [x * x for x in range(3000)]:\n"
	"    sys.exit('Pool.imap_unordered: wrong results')\n"
	"say('Pool(4).imap_unordered over 3000 items')\n"
	"pool.close()\n"
	"pool.join()\n"
	"say('Pool close and join: the workers exited')\n"
	"done()\n";

static const char py_duplex[] =
	"def echo(c):\n"
	"    while True:\n"
	"        m = c.recv()\n"
	"        if m is None:\n"
	"            break\n"
	"        c.send(m)\n"
	"    c.close()\n"
	"a, b = ctx.Pipe()\n"
	"p = ctx.Process(target=echo, args=(b,))\n"
	"p.start()\n"
	"b.close()\n"
	"for i in range(200):\n"
	"    a.send(('m', i, 'x' * i))\n"
	"    if not a.poll(60) or a.recv() != ('m', i, 'x' * i):\n"
	"        sys.exit('echo %d: none or wrong' % i)\n"
	"a.send(None)\n"
	"p.join(60)\n"
	"if p.exitcode != 0:\n"
	"    sys.exit('child exit code %r' % p.exitcode)\n"
	"a.close()\n"
	"say('Pipe(duplex=True) (a socketpair): 200 messages echoed by a child')\n"
	"done()\n";

static void py_run(const char *body, const char *what)
{
	static char script[16384];
	char *const argv[] = { (char *)"python3", (char *)"-c", script, NULL };
	unsigned int oks = 0, pipes = 0;
	bool counted = false;
	char *out, *line, *save = NULL;
	int code;

	snprintf(script, sizeof(script), "%s%s", py_prologue, body);
	code = run_capture(argv, -1, LONG_MS, &out, what);
	if (code != 0)
		fail("%s: python3 exit status %d (its traceback is on stderr); it printed: %.500s",
		     what, code, out);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "PY ok ", 6)) {
			ok("python3: %s", line + 6);
			oks++;
		} else if (sscanf(line, "PY pipes=%u", &pipes) == 1) {
			counted = true;
		} else {
			info("%s: python3 printed: %s", what, line);
		}
	}
	if (!oks || !counted)
		fail("%s: python3 exited 0 without its result lines", what);
	n_pipes += pipes;
	info("%s: python3 made %u pipes", what, pipes);
	free(out);
}

static void case_python_mp(void)
{
	if (!have_prog("python3"))
		skip_case("no python3 on PATH");
	py_run(py_pipe, "python3 Pipe(duplex=False)");
	py_run(py_queue, "python3 Queue");
	py_run(py_pool, "python3 Pool");
	py_run(py_duplex, "python3 Pipe(duplex=True)");
}

/* ---- case jobserver ----------------------------------------------------------------- */

enum { JS_TOKENS = 8, JS_WORKERS = 6, JS_ITERS = 500 };

struct js_shared {
	unsigned int in_use;
	unsigned int max_in_use;
	unsigned int iters[JS_WORKERS];
	unsigned int uses[JS_TOKENS];
};

/*
 * A worker's token: blocking read, or (@nb) nonblocking read and poll as GNU
 * make. A token that does not come within GUARD_MS is a hang: what the
 * pipe shows then (FIONREAD, a read) and the tokens held are reported.
 */
static char js_take(const struct js_shared *sh, int fd, bool nb, unsigned int w, unsigned int i)
{
	char c;

	snprintf(step_txt, sizeof(step_txt), "worker %u, job %u: a blocking read for a token", w,
		 i);
	alarm(2 * GUARD_MS / 1000);
	for (;;) {
		ssize_t r = read(fd, &c, 1);

		if (r == 1)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		if (nb && r < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			int n = poll(&p, 1, GUARD_MS), avail = -1;

			if (n == 0) {
				ioctl(fd, FIONREAD, &avail);
				r = read(fd, &c, 1);
				child_fail(3, "HANG: worker %u, job %u: poll(POLLIN) reported no token "
					   "for %d ms; then FIONREAD %d, a read %zd %s; %u tokens held",
					   w, i, GUARD_MS, avail, r, r < 0 ? errname(errno) : "",
					   __atomic_load_n(&sh->in_use, __ATOMIC_SEQ_CST));
			}
			continue;
		}
		child_fail(2, "token read: %zd %s", r, r < 0 ? errname(errno) : "(EOF)");
	}
	if (c < 'a' || c >= 'a' + JS_TOKENS)
		child_fail(2, "token 0x%02x is not one of ours", (unsigned char)c);
	return c;
}

static void js_worker(struct js_shared *sh, int rfd, int wfd, unsigned int w, bool nb)
{
	for (unsigned int i = 0; i < JS_ITERS; i++) {
		char tok[2];
		unsigned int k = i % 3 == 0 ? 2 : 1, now, max;
		volatile unsigned int sink = 0;

		for (unsigned int t = 0; t < k; t++) {
			tok[t] = js_take(sh, rfd, nb, w, i);
			now = __atomic_add_fetch(&sh->in_use, 1, __ATOMIC_SEQ_CST);
			max = __atomic_load_n(&sh->max_in_use, __ATOMIC_RELAXED);
			while (now > max && !__atomic_compare_exchange_n(&sh->max_in_use, &max, now,
									 false, __ATOMIC_SEQ_CST,
									 __ATOMIC_RELAXED))
				;
			__atomic_add_fetch(&sh->uses[tok[t] - 'a'], 1, __ATOMIC_SEQ_CST);
		}
		for (unsigned int s = 0; s < 2000; s++)
			sink += s;
		if (i % 50 == 0)
			sched_yield();
		__atomic_add_fetch(&sh->iters[w], 1, __ATOMIC_SEQ_CST);
		for (unsigned int t = 0; t < k; t++) {
			__atomic_sub_fetch(&sh->in_use, 1, __ATOMIC_SEQ_CST);
			if (write(wfd, &tok[t], 1) != 1)
				child_fail(4, "token write back: %s", strerror(errno));
		}
		alarm(ALARM_S);
	}
	_exit(0);
}

static void jobserver_run(bool nb)
{
	const char *how = nb ? "nonblocking read and poll" : "blocking read";
	struct js_shared *sh;
	pid_t pid[JS_WORKERS];
	unsigned int iters = 0, uses = 0;
	char toks[64];
	size_t n = 0;
	int p[2];

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		fail_errno(errno, "mmap");
	memset(sh, 0, sizeof(*sh));
	mkpipe(p, nb ? O_NONBLOCK : 0);
	write_all(p[1], "abcdefgh", JS_TOKENS, "the tokens");
	for (unsigned int w = 0; w < JS_WORKERS; w++) {
		pid[w] = child_fork();
		if (pid[w] == 0)
			js_worker(sh, p[0], p[1], w, nb);
	}
	for (unsigned int w = 0; w < JS_WORKERS; w++)
		check_eq(child_wait_ms(pid[w], 4 * GUARD_MS, "a worker"), 0,
			 "%s: worker %u's status", how, w);
	for (unsigned int w = 0; w < JS_WORKERS; w++)
		iters += sh->iters[w];
	for (unsigned int t = 0; t < JS_TOKENS; t++)
		uses += sh->uses[t];
	check_eq(iters, JS_WORKERS * JS_ITERS, "%s: jobs run by the 6 workers", how);
	check_eq(uses, JS_WORKERS * (JS_ITERS + (JS_ITERS + 2) / 3),
		 "%s: tokens taken (2 for every third job)", how);
	check_true(sh->max_in_use <= JS_TOKENS, "%s: never more than 8 tokens held at once", how);
	info("%s: at most %u tokens held at once", how, sh->max_in_use);
	set_nonblock(p[0], true);
	for (;;) {
		ssize_t r = read(p[0], toks + n, sizeof(toks) - n);

		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0)
			fail_errno(r ? errno : 0, "%s: read the tokens back", how);
		n += (size_t)r;
	}
	check_eq((long long)n, JS_TOKENS, "%s: tokens read back (then EAGAIN)", how);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (toks[j] < toks[i]) {
				char t = toks[i];

				toks[i] = toks[j];
				toks[j] = t;
			}
	check_true(!memcmp(toks, "abcdefgh", JS_TOKENS), "%s: the 8 tokens, each once", how);
	xclose(p[0]);
	xclose(p[1]);
	munmap(sh, sizeof(*sh));
}

static void case_jobserver(void)
{
	jobserver_run(false);
	jobserver_run(true);
}

/* ---- cases procsubst, shell-misc ---------------------------------------------------- */

static void case_procsubst(void)
{
	if (!have_prog("bash"))
		skip_case("no bash on PATH");
	sh_expect("bash", "diff <(seq 1 100000) <(seq 1 100000) && cat /dev/stdin < <(echo hi)", 3,
		  0, "hi\n", "process substitution (/dev/fd/N), identical");
	sh_expect("bash", "diff <(seq 1 100000) <(seq 2 100000)", 2, 1, "1d0\n< 1\n",
		  "process substitution, different");
	sh_expect("bash", "wc -l < <(seq 1 100000)", 1, 0, "100000\n",
		  "process substitution as stdin");
	sh_expect("bash", "cmp <(seq 1 300000) <(seq 1 300000 | cat) && echo same", 3, 0,
		  "same\n", "process substitution of a pipeline");
}

static void case_shell_misc(void)
{
	sh_expect("sh", "x=$(seq 1 20000 | wc -l); echo $x", 2, 0, "20000\n",
		  "command substitution of a pipeline");
	sh_expect("sh", "seq 1 5000 | { n=0; s=0; while read l; do n=$((n+1)); s=$((s+l)); done; "
		  "echo \"$n $s\"; }", 1, 0, "5000 12502500\n", "a while-read loop over a pipe");
	sh_expect("sh", "yes | head -c 10000000 | wc -c", 2, 0, "10000000\n",
		  "yes | head | wc: the writer killed by SIGPIPE");
	sh_expect("sh", "yes | head -n 3", 1, 0, "y\ny\ny\n", "yes | head -n 3");
	if (have_prog("bash"))
		sh_expect("bash", "yes | head -c 100000 > /dev/null; echo ${PIPESTATUS[@]}", 1, 0,
			  "141 0\n", "bash PIPESTATUS: yes died by SIGPIPE");
}

/* ---- temp files --------------------------------------------------------------------- */

/* A new temp file holding @content (its path in @path): an fd open for reading and writing. */
static int tmp_file(char *path, size_t len, const char *content)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(path, len, "%s/ipcd-pipe-XXXXXX", dir && *dir ? dir : "/tmp");
	fd = (int)MUST(mkstemp(path), "mkstemp %s", path);
	if (content)
		write_all(fd, content, strlen(content), "the temp file's content");
	return fd;
}

/* ---- case signal-writes ------------------------------------------------------------- */

#define SW_CHUNK	100
#define SW_WORK_MS	500

static int sw_fd = -1;
static volatile sig_atomic_t sw_ok, sw_again;

/* The self-pipe trick: one byte from a SIGALRM handler into the pipe the program writes. */
static void sw_handler(int sig)
{
	int e = errno;

	(void)sig;
	if (write(sw_fd, "S", 1) == 1)
		sw_ok++;
	else
		sw_again++;
	errno = e;
}

/*
 * The reader: everything until EOF. The stream must be 'S' bytes and whole
 * chunks of 100 'c' bytes (a nonblocking write of <= PIPE_BUF bytes is
 * atomic); it sends the totals (bytes, 'S' bytes, torn chunks) on @res.
 */
static void c_sw_reader(int rd, int res)
{
	static uint8_t buf[65536];
	uint64_t v[3] = { 0, 0, 0 }, run = 0;

	for (;;) {
		ssize_t r = read(rd, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			child_fail(2, "read: %s", strerror(errno));
		if (!r)
			break;
		alarm(ALARM_S);
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] == 'S') {
				v[1]++;
				if (run % SW_CHUNK)
					v[2]++;
				run = 0;
			} else if (buf[i] == 'c') {
				run++;
			} else {
				child_fail(3, "byte %" PRIu64 " is 0x%02x, neither 'S' nor 'c'",
					   v[0] + (uint64_t)i, buf[i]);
			}
		}
		v[0] += (uint64_t)r;
	}
	if (run % SW_CHUNK)
		v[2]++;
	if (!c_write_all(res, v, sizeof(v)))
		child_fail(4, "write the totals: %s", strerror(errno));
	_exit(0);
}

/*
 * A nonblocking pipe written by the program and by its SIGALRM handler
 * (every 200 us, setitimer), read by a child until EOF: every byte the
 * handler's write() reported arrives, and nothing else but the chunks.
 * The hang guard's alarm() shares the timer: it is re-armed only after.
 */
static void case_signal_writes(void)
{
	struct itimerval it = { { 0, 200 }, { 0, 200 } }, off = { { 0, 0 }, { 0, 0 } };
	struct sigaction sa, old;
	uint64_t chunks = 0, again = 0, v[3], end, guard;
	char chunk[SW_CHUNK];
	int p[2], res[2];
	pid_t pid;

	memset(chunk, 'c', sizeof(chunk));
	mkpipe(p, O_NONBLOCK);
	mkpipe(res, O_CLOEXEC);
	pid = child_fork();
	if (pid == 0) {
		close(p[1]);
		close(res[0]);
		set_nonblock(p[0], false);
		c_sw_reader(p[0], res[1]);
	}
	xclose(p[0]);
	xclose(res[1]);
	sw_fd = p[1];
	sw_ok = 0;
	sw_again = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sw_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	step("signal-writes: %d ms of 100-byte writes with SIGALRM every 200 us", SW_WORK_MS);
	guard = now_ns() + (uint64_t)GUARD_MS * NSEC_PER_MS;
	alarm(0);
	sigaction(SIGALRM, &sa, &old);
	MUST(setitimer(ITIMER_REAL, &it, NULL), "setitimer 200 us");
	end = now_ns() + (uint64_t)SW_WORK_MS * NSEC_PER_MS;
	while (now_ns() < end) {
		ssize_t r = write(p[1], chunk, sizeof(chunk));

		if (r == (ssize_t)sizeof(chunk)) {
			chunks++;
			continue;
		}
		if (r >= 0) {
			setitimer(ITIMER_REAL, &off, NULL);
			fail("a nonblocking write of %d bytes (<= PIPE_BUF) wrote %zd: not all or "
			     "nothing", SW_CHUNK, r);
		}
		if (errno != EAGAIN && errno != EINTR) {
			int e = errno;

			setitimer(ITIMER_REAL, &off, NULL);
			fail_errno(e, "nonblocking write of %d bytes", SW_CHUNK);
		}
		again++;
		if (now_ns() > guard) {
			setitimer(ITIMER_REAL, &off, NULL);
			hang("the pipe stayed full for %d ms (the reader reads)", GUARD_MS);
		}
		sched_yield();
	}
	/* no handler after this: the timer stopped, a pending SIGALRM discarded */
	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_IGN);
	sigaction(SIGALRM, &old, NULL);
	alarm(ALARM_S);
	info("%" PRIu64 " chunks written, %" PRIu64 " EAGAIN/EINTR; the handler wrote %d bytes, "
	     "%d writes failed", chunks, again, (int)sw_ok, (int)sw_again);
	check_true(chunks > 0, "the program's nonblocking 100-byte writes went in, the handler "
		   "writing to the same pipe");
	xclose(p[1]);
	sw_fd = -1;
	read_exact(res[0], v, sizeof(v), "the reader's totals");
	check_eq(child_wait(pid, "the reader"), 0, "the reader's status (only 'c' and 'S' bytes)");
	check_true(v[0] == chunks * SW_CHUNK + (uint64_t)sw_ok, "bytes read until EOF == 100 x "
		   "chunks written + the handler's successful 1-byte writes");
	check_true(v[1] == (uint64_t)sw_ok, "'S' bytes read == the handler's successful writes");
	check_eq((long long)v[2], 0, "chunks torn by a handler's byte");
	xclose(res[0]);
}

/* ---- case freopen ------------------------------------------------------------------- */

#define FR_FIRST	"first line, to the pipe\n"
#define FR_SECOND	"second line, to the file\n"
#define FR_FILE		"known content of the file\n"

/* freopen() of stdout and of stdin that were pipe ends (in children: ours stay as they are). */
static void case_freopen(void)
{
	char path[4200], buf[256], *out;
	int p[2], fd;
	size_t len;
	pid_t pid;

	/* (a) stdout: a pipe's write end, then a file */
	fd = tmp_file(path, sizeof(path), NULL);
	xclose(fd);
	mkpipe(p, 0);
	pid = child_fork();
	if (pid == 0) {
		if (dup2(p[1], 1) != 1)
			child_fail(10, "dup2 onto 1: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		if (printf(FR_FIRST) != (int)strlen(FR_FIRST) || fflush(stdout))
			child_fail(11, "printf to the pipe: %s", strerror(errno));
		if (!freopen(path, "w", stdout))
			child_fail(12, "freopen(%s, \"w\", stdout): %s", path, strerror(errno));
		if (fileno(stdout) != 1)
			child_fail(13, "freopen: stdout's fd is %d, not 1", fileno(stdout));
		if (printf(FR_SECOND) != (int)strlen(FR_SECOND) || fflush(stdout))
			child_fail(14, "printf to the file: %s", strerror(errno));
		_exit(0);
	}
	xclose(p[1]);
	out = read_to_eof(p[0], &len, "stdout's line through the pipe");
	check_eq(child_wait(pid, "the stdout child"), 0, "dup2(pipe, 1), printf, freopen(file, "
		 "\"w\", stdout) (its fd stays 1), printf, fflush: the child's status");
	check_true(!strcmp(out, FR_FIRST), "the pipe's reader got the first line, and nothing "
		   "after it");
	free(out);
	xclose(p[0]);
	fd = (int)MUST(open(path, O_RDONLY), "open %s", path);
	out = read_to_eof(fd, &len, "the file");
	check_true(!strcmp(out, FR_SECOND), "the file holds exactly the second line");
	free(out);
	xclose(fd);

	/* (b) stdin: a pipe's read end, then a file */
	fd = tmp_file(path + 2000, sizeof(path) - 2000, FR_FILE);
	xclose(fd);
	mkpipe(p, 0);
	write_all(p[1], "abc\n", 4, "stdin's line");
	xclose(p[1]);
	pid = child_fork();
	if (pid == 0) {
		if (dup2(p[0], 0) != 0)
			child_fail(20, "dup2 onto 0: %s", strerror(errno));
		close(p[0]);
		if (!fgets(buf, sizeof(buf), stdin) || strcmp(buf, "abc\n"))
			child_fail(21, "fgets from the pipe: not abc");
		if (!freopen(path + 2000, "r", stdin))
			child_fail(22, "freopen(%s, \"r\", stdin): %s", path + 2000,
				   strerror(errno));
		if (fileno(stdin) != 0)
			child_fail(23, "freopen: stdin's fd is %d, not 0", fileno(stdin));
		if (!fgets(buf, sizeof(buf), stdin) || strcmp(buf, FR_FILE))
			child_fail(24, "fgets from the file: not its content");
		if (fgets(buf, sizeof(buf), stdin) || !feof(stdin))
			child_fail(25, "fgets after the file's content: not EOF");
		_exit(0);
	}
	xclose(p[0]);
	check_eq(child_wait(pid, "the stdin child"), 0, "dup2(pipe, 0), fgets: abc, freopen(file, "
		 "\"r\", stdin) (its fd stays 0), fgets: the file's line, then EOF: the child's "
		 "status");
	MUST(unlink(path), "unlink %s", path);
	MUST(unlink(path + 2000), "unlink %s", path + 2000);
}

/* ---- case dup2-hidden --------------------------------------------------------------- */

static long file_size(const char *path)
{
	struct stat st;

	MUST(stat(path, &st), "stat %s", path);
	return (long)st.st_size;
}

#define DH_TOP		64
#define DH_FREE_LO	65
#define DH_FREE_HI	80

/*
 * A shell's exec N>file on every fd from 3 to 64 but the pipe's: a child
 * blocked reading the pipe gets its 5 bytes, and nothing goes to the file.
 * Then close() of fds never opened: EBADF.
 */
static void case_dup2_hidden(void)
{
	char path[4200], buf[8];
	int p[2], fd, n = 0, bad = 0, free_n = 0;
	pid_t pid;

	mkpipe(p, 0);
	fd = tmp_file(path, sizeof(path), NULL);
	for (int i = 3; i <= DH_TOP; i++)
		if (i != p[0] && i != p[1]) {
			MUST(dup2(fd, i), "dup2(file, %d)", i);
			n++;
		}
	if (fd > DH_TOP)
		xclose(fd);
	check_eq(n, DH_TOP - 4, "dup2(file, N) for every N in 3..%d but the pipe's ends: calls",
		 DH_TOP);
	pid = child_fork();
	if (pid == 0) {
		close(p[1]);
		if (!c_read_exact(p[0], buf, 5) || memcmp(buf, "hello", 5))
			child_fail(2, "no hello (%s)", errno ? errname(errno) : "EOF/data");
		_exit(0);
	}
	sleep_ms(SETTLE_MS);
	write_all(p[1], "hello", 5, "5 bytes to the blocked reader");
	check_eq(child_wait(pid, "the reader"), 0, "the child blocked reading the pipe got its 5 "
		 "bytes: its status");
	for (int i = 3; i <= DH_TOP; i++)
		if (i != p[0] && i != p[1] && close(i))
			bad++;
	check_eq(bad, 0, "close() of the fds 3..%d but the pipe's: failures", DH_TOP);
	check_eq(file_size(path), 0, "the file's size (nothing written to it)");
	MUST(unlink(path), "unlink %s", path);
	xclose(p[0]);
	xclose(p[1]);

	for (int i = DH_FREE_LO; i <= DH_FREE_HI; i++) {
		long rc;
		int e;

		if (fcntl(i, F_GETFD) != -1 || errno != EBADF)
			continue;
		free_n++;
		errno = 0;
		rc = close(i);
		e = errno;
		if (rc != -1 || e != EBADF)
			fail("close(%d), an fd never opened: expected -1 EBADF, got %ld %s", i, rc,
			     rc == -1 ? errname(e) : "");
	}
	info("%d of the fds %d..%d were not open", free_n, DH_FREE_LO, DH_FREE_HI);
	check_true(free_n > 0, "close() of each fd in %d..%d that F_GETFD calls not open -> -1 "
		   "EBADF", DH_FREE_LO, DH_FREE_HI);
}


/* ---- case close-range --------------------------------------------------------------- */

enum cr_how { CR_RANGE, CR_FROM, CR_STD };

/* In a child: close as @how says, then every fd of the range must be closed (EBADF). */
static void c_close_range(enum cr_how how)
{
	int lo = how == CR_STD ? 0 : 3, hi = how == CR_STD ? 2 : 200, q[2];
	char buf[4];

	if (how == CR_RANGE && close_range(3, ~0U, 0))
		_exit(10);
	if (how == CR_FROM)
		closefrom(3);
	if (how == CR_STD && close_range(0, 2, 0))
		_exit(10);
	for (int i = lo; i <= hi; i++)
		if (fcntl(i, F_GETFD) != -1 || errno != EBADF)
			_exit(11);
	/* a pipe made after it works (the lowest fds are free again) */
	if (pipe(q) || q[0] != lo || q[1] != lo + 1)
		_exit(12);
	if (write(q[1], "abc", 3) != 3 || read(q[0], buf, 3) != 3 || memcmp(buf, "abc", 3))
		_exit(13);
	_exit(0);
}

static void case_close_range(void)
{
	static const char *const what[] = { "close_range(3, ~0U, 0)", "closefrom(3)",
					    "close_range(0, 2, 0)" };
	int p[2], nul;

	mkpipe(p, 0);
	nul = (int)MUST(open("/dev/null", O_RDWR), "open /dev/null");
	MUST(dup2(nul, 10), "dup2(/dev/null, 10)");
	MUST(dup2(nul, 100), "dup2(/dev/null, 100)");
	for (int how = CR_RANGE; how <= CR_STD; how++) {
		pid_t pid = child_fork();

		if (pid == 0)
			c_close_range(how);
		check_eq(child_wait(pid, what[how]), 0, "a child's %s: then fcntl(F_GETFD) of "
			 "%s -> EBADF each, and a new pipe (at the lowest fds) works: its status",
			 what[how], how == CR_STD ? "0..2" : "3..200");
		n_pipes++;
	}
	check_true(fcntl(10, F_GETFD) >= 0 && fcntl(100, F_GETFD) >= 0 &&
		   fcntl(p[0], F_GETFD) >= 0, "the parent's fds (10, 100, the pipe) stay open");
	write_all(p[1], "xyz", 3, "the parent's pipe");
	{
		char buf[3];

		read_exact(p[0], buf, 3, "the parent's pipe");
		check_true(!memcmp(buf, "xyz", 3), "the parent's pipe works");
	}
	xclose(10);
	xclose(100);
	xclose(nul);
	xclose(p[0]);
	xclose(p[1]);
}

/* ---- case zombie-writer ------------------------------------------------------------- */

#define ZW_CHUNK	(256u << 10)
#define ZW_READ		(1u << 20)

/*
 * A writer child writes 256 KiB chunks forever; the reader takes 1 MiB and
 * SIGKILLs it, not reaping it (a zombie). Then this process writes one
 * byte itself and reads it back after what the writer left.
 */
static void case_zombie_writer(void)
{
	static uint8_t buf[ZW_CHUNK];
	uint64_t got = 0, left;
	bool eof;
	siginfo_t si;
	int p[2];
	pid_t pid;
	ssize_t r;
	char c;

	mkpipe(p, 0);
	pid = child_fork();
	if (pid == 0) {
		close(p[0]);
		memset(buf, 'w', sizeof(buf));
		for (;;) {
			alarm(ALARM_S);
			if (!c_write_all(p[1], buf, sizeof(buf)))
				child_fail(2, "write: %s", strerror(errno));
		}
	}
	while (got < ZW_READ) {
		step("read the writer's chunks");
		r = read(p[0], buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			fail("read the writer's chunks: %zd %s", r, r ? errname(errno) : "EOF");
		fill_check(buf, (size_t)r, 'w', got, "the writer's stream");
		got += (uint64_t)r;
	}
	ok("read 1 MiB of the writer's 256 KiB chunks");
	MUST(kill(pid, SIGKILL), "kill the writer");
	step("waitid(WNOWAIT): the writer dies");
	memset(&si, 0, sizeof(si));
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT))
		if (errno != EINTR)
			fail_errno(errno, "waitid(WNOWAIT)");
	check_true(si.si_code == CLD_KILLED && si.si_status == SIGKILL, "the writer is SIGKILLed "
		   "and left a zombie (waitid WNOWAIT: not reaped)");

	/* what the writer left, then this process's own byte */
	set_nonblock(p[0], true);
	left = 0;
	for (;;) {
		r = read(p[0], buf, sizeof(buf));
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0)
			fail("drain what the writer left: %zd %s", r, r ? errname(errno) : "EOF");
		fill_check(buf, (size_t)r, 'w', left, "what the writer left");
		left += (uint64_t)r;
	}
	info("the writer left %" PRIu64 " bytes in the pipe", left);
	ok("what the writer left: its bytes, then EAGAIN (this process holds a write end)");
	set_nonblock(p[0], false);
	write_all(p[1], "P", 1, "this process's byte, the writer a zombie");
	read_exact(p[0], &c, 1, "this process's byte back");
	check_true(c == 'P', "this process wrote a byte after the writer died unreaped, and read "
		   "it back");
	set_nonblock(p[0], true);
	CHECK_ERR(read(p[0], &c, 1), EAGAIN, "then the empty pipe: read");
	check_eq(child_wait(pid, "the zombie writer"), 128 + SIGKILL, "then reaped: the writer's "
		 "status");
	xclose(p[1]);
	/*
	 * The kernel's EOF is there at once. The preload's comes when the
	 * monitor has seen the hang-up of the end's hold token, which the
	 * killed writer held too (microseconds later, more on a loaded
	 * machine): a known difference (issue #6 note), so this waits for
	 * readability first, bounded as every wait here.
	 */
	{
		struct pollfd pf = { .fd = p[0], .events = POLLIN };

		if (poll(&pf, 1, GUARD_MS) != 1)
			hang("the last write end closed: the read end never became readable");
	}
	eof = read(p[0], &c, 1) == 0;
	check_true(eof, "the last write end closed: poll, then read -> 0 (EOF)");
	xclose(p[0]);
}

/* ---- main --------------------------------------------------------------------------- */

struct pcase {
	const char *name;
	void (*fn)(void);
	const char *what;
};

static const struct pcase cases[] = {
	{ "pipeline-1g", case_pipeline_1g,
	  "sh -c 'gen | sha256sum' and 'gen | cat | sha256sum', 1 GiB each, writes of 1 B..256 KiB" },
	{ "eof-last-writer", case_eof_last_writer,
	  "EOF only after the last of 3 writers; a writer SIGKILLed blocked in a full pipe" },
	{ "epipe-sigpipe", case_epipe_sigpipe,
	  "the last reader closes or is SIGKILLed: SIGPIPE, or EPIPE (ignored, blocked)" },
	{ "atomic-pipe-buf", case_atomic_pipe_buf,
	  "4 writers x 2000 records of PIPE_BUF bytes, read in odd sizes: never interleaved" },
	{ "nonblock", case_nonblock,
	  "O_NONBLOCK (pipe2, fcntl, FIONBIO), all or nothing, poll/select/epoll LT and ET" },
	{ "fdinfo", case_fdinfo,
	  "fstat, F_GETFL, F_GETPIPE_SZ, FIONREAD, EBADF, ENOTSOCK, ESPIPE, dups, close-on-exec" },
	{ "stdio", case_stdio, "dprintf, fdopen+fprintf/fgets on pipe ends (also after exec), popen" },
	{ "pipe-size", case_pipe_size, "F_SETPIPE_SZ: capacity, a blocking write that fits, EBUSY" },
	{ "exec-cat", case_exec_cat, "cat between two pipes: fork+dup2+exec, posix_spawn" },
	{ "python-mp", case_python_mp,
	  "python3 multiprocessing (fork): Pipe both ways, Queue 4x1, Pool(4), duplex Pipe" },
	{ "jobserver", case_jobserver, "8 tokens, 6 workers x 500 jobs: blocking, nonblocking+poll" },
	{ "procsubst", case_procsubst, "bash process substitution: /dev/fd/N of a pipe" },
	{ "shell-misc", case_shell_misc,
	  "$(a | b), while read, yes | head | wc (SIGPIPE), PIPESTATUS" },
	{ "signal-writes", case_signal_writes,
	  "a SIGALRM handler (every 200 us) writes to the nonblocking pipe the program writes" },
	{ "freopen", case_freopen, "freopen of stdout and stdin that were pipe ends (dup2 onto 1, 0)" },
	{ "dup2-hidden", case_dup2_hidden,
	  "dup2 of a file onto every fd 3..64 but the pipe's, then the pipe: the file stays empty" },
	{ "close-range", case_close_range,
	  "children's close_range(3, ~0U), closefrom(3), close_range(0, 2): all closed, pipes work" },
	{ "zombie-writer", case_zombie_writer,
	  "a writer SIGKILLed unreaped (a zombie): the reader writes and reads a byte itself" },
};

#define N_CASES	(sizeof(cases) / sizeof(cases[0]))

static void run_case(const struct pcase *c)
{
	case_name = c->name;
	n_checks = 0;
	n_pipes = 0;
	snprintf(step_txt, sizeof(step_txt), "starting");
	printf("case %s: %s\n", c->name, c->what);
	alarm(ALARM_S);
	c->fn();
	alarm(0);
	printf("case %s passed checks=%u pipes=%u\n", c->name, n_checks, n_pipes);
	case_name = "-";
}

static void usage(void)
{
	fprintf(stderr, "usage: ipcd-pipe NAME...   (a case, or all)\n       ipcd-pipe --list\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	if (argc == 5 && !strcmp(argv[1], "--gen"))
		return gen_main(argv[2], argv[3], argv[4]);
	if (argc == 5 && !strcmp(argv[1], "--fd-probe"))
		return fd_probe(argv[2], argv[3], argv[4]);
	if (argc == 3 && !strcmp(argv[1], "--stdio-probe"))
		return stdio_probe(argv[2]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	/* the orphans of the shells it runs are reaped here (group_gone()), not by init */
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
			fprintf(stderr, "ipcd-pipe: no case '%s' (--list)\n", argv[i]);
			usage();
		}
	}
	return 0;
}
