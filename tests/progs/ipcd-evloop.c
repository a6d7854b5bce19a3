/* SPDX-License-Identifier: MIT */
/*
 * ipcd-evloop - event-loop semantics of TCP connections on 127.0.0.1, checked
 * exactly as Linux defines them (issue #5): epoll, poll/ppoll/select/pselect,
 * dup/dup2/dup3/F_DUPFD, several threads on one socket or one listener,
 * connections shared by forked processes and carried across exec, listeners
 * inherited across exec and posix_spawn.
 * Plain POSIX and Linux calls: run without libipcd.so it checks the kernel
 * (the oracle), run under ipcd-run it checks the preload, and both runs must
 * print the same "ok" lines (tests/integration/it_preload_epoll.c).
 *
 *   ipcd-evloop NAME...      NAME: a case (epoll-lt), a group (epoll, poll,
 *                            dup, threads, fork) or all
 *   ipcd-evloop --list       the cases, one a line: NAME GROUP what it checks
 *   ipcd-evloop --exec-probe KEPT_FD CLOEXEC_FD
 *                            not a case: what exec-cloexec execs (exec_probe())
 *   ipcd-evloop --exec-accept LFD N
 *                            not a case: what exec-listener, spawn-listener
 *                            and exec-listener-cloexec exec (exec_accept())
 *
 * Connections are made inside the process (listen, connect, accept; a fork
 * where a case needs another process). Every check prints "ok CASE: what".
 * The first mismatch prints "ipcd-evloop CASE: FAIL: what: expected X, got Y"
 * on stderr and exits 1; a wait that outlives its hang guard prints
 * "ipcd-evloop CASE: HANG: ..." and exits 3. A case that passes ends with
 * "case CASE passed checks=N pairs=P refused=R" (P: connections accept()ed,
 * by this process or by a program it exec'd or spawned; R: connects to a port
 * nobody listens on, which the preload leaves to the kernel).
 *
 * Time: only lower bounds are asserted (a timeout never ends early). Every
 * other bound is a hang guard: GUARD_MS for an event that must come, ALARM_S
 * for any step. "Nothing is reported" waits QUIET_MS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <spawn.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUARD_MS	5000	/* hang guard: an event that must come */
#define ALARM_S		10	/* hang guard: any one step (blocking calls included) */
#define JOIN_MS		60000	/* hang guard: threads moving megabytes */
#define QUIET_MS	50	/* how long "nothing is reported" is watched */
#define TMO_MS		50	/* the timeouts whose lower bound is checked */
#define MAX_EV		16
#define NSEC_PER_MS	1000000ull
#define IO_CHUNK	65536

static const char *case_name = "-";
static char step_txt[256];
static unsigned int n_checks, n_pairs, n_refused;

/*
 * A child running a program with no hang guard of its own (posix_spawn and
 * vfork children do not inherit the pending alarm): killed when the process
 * that started it fails or hangs, so that nothing outlives the run.
 */
static volatile pid_t victim_pid, victim_owner;

static void victim_set(pid_t pid)
{
	victim_owner = getpid();
	victim_pid = pid;
}

/* Async-signal-safe; a forked child does not kill its parent's victim. */
static void victim_kill(void)
{
	if (victim_pid > 0 && getpid() == victim_owner)
		kill(victim_pid, SIGKILL);
}

/* ---- reporting ------------------------------------------------------------ */

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
	fprintf(stderr, "ipcd-evloop %s: FAIL: %s\n", case_name, msg);
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
	fprintf(stderr, "ipcd-evloop %s: HANG: %s\n", case_name, msg);
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

/* Names what is about to block, for the SIGALRM hang report. Main thread only. */
static void step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void step(const char *fmt, ...)
{
	FMT(step_txt, fmt);
	alarm(ALARM_S);
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
	put_str("ipcd-evloop ");
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
	static __thread char bufs[8][160];
	static __thread unsigned int k;
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

/* ---- time, sleeping, threads ------------------------------------------------ */

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

static void expect_not_early(uint64_t t0, unsigned int ms, const char *what)
{
	uint64_t dt = now_ns() - t0;

	if (dt < ms * NSEC_PER_MS)
		fail("%s: returned after %.3f ms, before its %u ms timeout", what,
		     (double)dt / 1e6, ms);
	ok("%s: not before its %u ms timeout", what, ms);
}

static void thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
	int err = pthread_create(th, NULL, fn, arg);

	if (err)
		fail_errno(err, "pthread_create");
}

static void thread_join(pthread_t th, int guard_ms, const char *what)
{
	struct timespec ts;
	int err;

	step("joining %s", what);
	alarm((unsigned int)(guard_ms / 1000 + ALARM_S));
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += guard_ms / 1000;
	err = pthread_timedjoin_np(th, NULL, &ts);
	if (err == ETIMEDOUT)
		hang("%s: the thread did not finish within %d ms", what, guard_ms);
	if (err)
		fail_errno(err, "pthread_join %s", what);
	alarm(ALARM_S);
}

/* An action run by another thread after a delay. */
struct later {
	pthread_t th;
	unsigned int ms;
	void (*fn)(void *);
	void *arg;
};

static void *later_main(void *arg)
{
	struct later *l = arg;

	sleep_ms(l->ms);
	l->fn(l->arg);
	return NULL;
}

static void later_start(struct later *l, unsigned int ms, void (*fn)(void *), void *arg)
{
	l->ms = ms;
	l->fn = fn;
	l->arg = arg;
	thread_start(&l->th, later_main, l);
}

static void later_join(struct later *l, const char *what)
{
	thread_join(l->th, GUARD_MS, what);
}

/* A forked child: its own hang guard; the parent reaps it within a guard. */
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
	return pid;
}

static int child_wait(pid_t pid, const char *what)
{
	uint64_t end = now_ns() + (uint64_t)GUARD_MS * NSEC_PER_MS;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			fail_errno(errno, "waitpid %s", what);
		if (now_ns() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			hang("%s: the child did not exit within %d ms", what, GUARD_MS);
		}
		sleep_ms(1);
	}
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

/* ---- signals ------------------------------------------------------------------ */

static volatile sig_atomic_t n_sigs;

static void on_usr1(int sig)
{
	(void)sig;
	n_sigs = n_sigs + 1;
}

static void sig_handler(bool restart)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = restart ? SA_RESTART : 0;
	if (sigaction(SIGUSR1, &sa, NULL))
		fail_errno(errno, "sigaction SIGUSR1");
}

/* SIGUSR1 to @target after @first_ms, then (if @repeat) every 20 ms until stopped. */
struct kicker {
	pthread_t th;
	pthread_t target;
	unsigned int first_ms;
	bool repeat;
	int stop;
};

static void *kicker_main(void *arg)
{
	struct kicker *k = arg;

	sleep_ms(k->first_ms);
	do {
		pthread_kill(k->target, SIGUSR1);
		if (!k->repeat)
			break;
		sleep_ms(20);
	} while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE));
	return NULL;
}

static void kicker_start(struct kicker *k, unsigned int first_ms, bool repeat)
{
	k->target = pthread_self();
	k->first_ms = first_ms;
	k->repeat = repeat;
	k->stop = 0;
	thread_start(&k->th, kicker_main, k);
}

static void kicker_stop(struct kicker *k)
{
	__atomic_store_n(&k->stop, 1, __ATOMIC_RELEASE);
	thread_join(k->th, GUARD_MS, "the signal sender");
}

static bool usr1_blocked(void)
{
	sigset_t cur;

	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, SIGUSR1) == 1;
}

static bool usr1_pending(void)
{
	sigset_t pend;

	sigpending(&pend);
	return sigismember(&pend, SIGUSR1) == 1;
}

/* ---- connections ------------------------------------------------------------- */

/* a: connect()ed, b: accept()ed; both blocking, no FD_CLOEXEC. */
struct pair {
	int a;
	int b;
};

/* A listener on 127.0.0.1, an ephemeral port (into @sin); socket() @flags (SOCK_CLOEXEC). */
static int listener_open_flags(struct sockaddr_in *sin, int backlog, int flags)
{
	socklen_t len = sizeof(*sin);
	int one = 1, fd;

	fd = MUST(socket(AF_INET, SOCK_STREAM | flags, 0), "socket (listener)");
	MUST(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), "SO_REUSEADDR");
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	MUST(bind(fd, (struct sockaddr *)sin, sizeof(*sin)), "bind 127.0.0.1:0");
	MUST(listen(fd, backlog), "listen");
	MUST(getsockname(fd, (struct sockaddr *)sin, &len), "getsockname (listener)");
	return fd;
}

static int listener_open(struct sockaddr_in *sin, int backlog)
{
	return listener_open_flags(sin, backlog, 0);
}

static int connect_to(const struct sockaddr_in *sin)
{
	int fd = MUST(socket(AF_INET, SOCK_STREAM, 0), "socket");

	step("connect to 127.0.0.1:%u", ntohs(sin->sin_port));
	MUST(connect(fd, (const struct sockaddr *)sin, sizeof(*sin)), "connect 127.0.0.1:%u",
	     ntohs(sin->sin_port));
	return fd;
}

static int accept_one(int lfd, int flags)
{
	int fd;

	step("accept");
	fd = MUST(accept4(lfd, NULL, NULL, flags), "accept4");
	n_pairs++;
	return fd;
}

static void pair_open(struct pair *p)
{
	struct sockaddr_in sin;
	int l = listener_open(&sin, 8);

	p->a = connect_to(&sin);
	p->b = accept_one(l, 0);
	close(l);
}

static void pair_close(struct pair *p)
{
	if (p->a >= 0)
		close(p->a);
	if (p->b >= 0)
		close(p->b);
	p->a = p->b = -1;
}

static void nonblock(int fd, bool on)
{
	int fl = MUST(fcntl(fd, F_GETFL), "F_GETFL");

	MUST(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK), "F_SETFL");
}

static void send_n(int fd, size_t n)
{
	char buf[4096];

	memset(buf, 'x', sizeof(buf));
	step("send %zu bytes on fd %d", n, fd);
	while (n) {
		ssize_t r = send(fd, buf, n < sizeof(buf) ? n : sizeof(buf), MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			fail_errno(errno, "send on fd %d", fd);
		n -= (size_t)r;
	}
}

static void send_str(int fd, const char *s)
{
	size_t len = strlen(s);

	step("send \"%s\" on fd %d", s, fd);
	if (send(fd, s, len, MSG_NOSIGNAL) != (ssize_t)len)
		fail_errno(errno, "send \"%s\" on fd %d", s, fd);
}

/* Exactly @n bytes (blocking reads); EOF before them fails. */
static void recv_n(int fd, void *buf, size_t n)
{
	char tmp[IO_CHUNK];
	size_t got = 0;

	step("receive %zu bytes on fd %d", n, fd);
	while (got < n) {
		size_t want = n - got < sizeof(tmp) ? n - got : sizeof(tmp);
		ssize_t r = recv(fd, buf ? (char *)buf + got : tmp, want, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail_errno(errno, "recv on fd %d after %zu of %zu bytes", fd, got, n);
		if (r == 0)
			fail("recv on fd %d: EOF after %zu of %zu bytes", fd, got, n);
		got += (size_t)r;
	}
}

static void recv_str(int fd, const char *want, const char *what)
{
	char buf[256];
	size_t len = strlen(want);

	recv_n(fd, buf, len);
	buf[len] = '\0';
	if (memcmp(buf, want, len))
		fail("%s: expected \"%s\", got \"%s\"", what, want, buf);
	ok("%s: \"%s\"", what, want);
}

/* Nothing to read and no EOF: recv(MSG_DONTWAIT) gives EAGAIN. */
static void expect_eagain(int fd, const char *what)
{
	char c;

	CHECK_ERR(recv(fd, &c, 1, MSG_DONTWAIT), EAGAIN, "%s: recv(MSG_DONTWAIT)", what);
}

/* A blocking recv gives 0 (EOF), within the step guard. */
static void expect_eof(int fd, const char *what)
{
	char c;
	ssize_t r;

	step("%s: recv until EOF", what);
	do
		r = recv(fd, &c, 1, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		fail_errno(errno, "%s: recv (expected 0, EOF)", what);
	if (r > 0)
		fail("%s: recv: expected 0 (EOF), got a byte", what);
	ok("%s: recv -> 0 (EOF)", what);
}

/* Nonblocking sends until EAGAIN; returns the bytes accepted. */
static size_t fill(int fd)
{
	static char buf[IO_CHUNK];
	size_t total = 0;

	step("fill fd %d until EAGAIN", fd);
	for (;;) {
		ssize_t r = send(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);

		if (r > 0) {
			total += (size_t)r;
			if (total > (1ull << 30))
				fail("fd %d: 1 GiB sent without EAGAIN", fd);
			continue;
		}
		if (r < 0 && errno == EAGAIN) {
			/*
			 * The kernel may still be moving bytes from our send
			 * buffer to the peer's receive buffer (it grows under
			 * autotuning): full means still full once that settled.
			 */
			struct pollfd pf = { .fd = fd, .events = POLLOUT };

			if (poll(&pf, 1, 50) == 1 && (pf.revents & POLLOUT))
				continue;
			break;
		}
		fail_errno(errno, "filling fd %d after %zu bytes", fd, total);
	}
	printf("info %s: fd %d took %zu bytes before EAGAIN\n", case_name, fd, total);
	return total;
}

static void drain_n(int fd, size_t n)
{
	recv_n(fd, NULL, n);
}

/* ---- epoll helpers ---------------------------------------------------------- */

enum wcall { C_EPOLL_WAIT, C_EPOLL_PWAIT, C_EPOLL_PWAIT2, C_POLL, C_PPOLL, C_SELECT, C_PSELECT };

static const char *const wcall_name[] = {
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect",
};

struct want {
	uint64_t tag;
	uint32_t ev;
};

static const char *op_name(int op)
{
	return op == EPOLL_CTL_ADD ? "ADD" : op == EPOLL_CTL_MOD ? "MOD" :
	       op == EPOLL_CTL_DEL ? "DEL" : "?";
}

static int ep_new(void)
{
	return MUST(epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
}

static void ep_ctl(int ep, int op, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u64 = tag;
	MUST(epoll_ctl(ep, op, fd, &ev), "epoll_ctl(%d, %s, fd %d, %s)", ep, op_name(op), fd,
	     ev_str(events, "EPOLL"));
}

static int ep_wait(enum wcall how, int ep, struct epoll_event *evs, int max, int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000l };

	switch (how) {
	case C_EPOLL_WAIT:
		return epoll_wait(ep, evs, max, ms);
	case C_EPOLL_PWAIT:
		return epoll_pwait(ep, evs, max, ms, NULL);
	default:
		return epoll_pwait2(ep, evs, max, ms < 0 ? NULL : &ts, NULL);
	}
}

static void evs_str(const struct epoll_event *evs, int n, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	if (n <= 0)
		snprintf(buf, len, "nothing");
	for (int i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s{0x%" PRIx64 " %s}", i ? ", " : "",
				      (uint64_t)evs[i].data.u64, ev_str(evs[i].events, "EPOLL"));
}

static void wants_str(const struct want *w, int n, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	if (n <= 0)
		snprintf(buf, len, "nothing");
	for (int i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s{0x%" PRIx64 " %s}", i ? ", " : "",
				      w[i].tag, ev_str(w[i].ev, "EPOLL"));
}

/*
 * One wait call (maxevents MAX_EV) must report exactly @w (any order): with
 * @n > 0 it may block up to GUARD_MS (nothing at all by then is a hang),
 * with @n == 0 it watches for QUIET_MS.
 */
static void ep_expect(enum wcall how, int ep, const struct want *w, int n, const char *what)
{
	struct epoll_event evs[MAX_EV];
	bool used[MAX_EV] = { false };
	char got[1024], exp[1024];
	int rc;

	step("%s: %s", wcall_name[how], what);
	rc = ep_wait(how, ep, evs, MAX_EV, n ? GUARD_MS : QUIET_MS);
	if (rc < 0)
		fail_errno(errno, "%s: %s", wcall_name[how], what);
	evs_str(evs, rc, got, sizeof(got));
	wants_str(w, n, exp, sizeof(exp));
	if (rc == 0 && n)
		hang("%s: %s: nothing reported within %d ms, expected %s", wcall_name[how], what,
		     GUARD_MS, exp);
	if (rc != n)
		fail("%s: %s: expected %s, got %s", wcall_name[how], what, exp, got);
	for (int i = 0; i < rc; i++) {
		int j;

		for (j = 0; j < n; j++)
			if (!used[j] && w[j].tag == evs[i].data.u64)
				break;
		if (j == n || w[j].ev != evs[i].events)
			fail("%s: %s: expected %s, got %s", wcall_name[how], what, exp, got);
		used[j] = true;
	}
	ok("%s: %s -> %s", wcall_name[how], what, exp);
}

static void ep_none(int ep, const char *what)
{
	ep_expect(C_EPOLL_WAIT, ep, NULL, 0, what);
}

static void ep_one(int ep, uint64_t tag, uint32_t ev, const char *what)
{
	struct want w = { tag, ev };

	ep_expect(C_EPOLL_WAIT, ep, &w, 1, what);
}

/* One poll call over @f; the count and every revents must be as given. */
static void poll_expect(enum wcall c, struct pollfd *f, int n, int timeout_ms, int want_rc,
			const short *want, const char *what)
{
	struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000l };
	int rc;

	for (int i = 0; i < n; i++)
		f[i].revents = (short)0x7fff;	/* must be overwritten */
	step("%s: %s", wcall_name[c], what);
	rc = c == C_PPOLL ? ppoll(f, (nfds_t)n, &ts, NULL) : poll(f, (nfds_t)n, timeout_ms);
	if (rc < 0)
		fail_errno(errno, "%s: %s", wcall_name[c], what);
	if (rc == 0 && want_rc)
		hang("%s: %s: nothing within %d ms, expected %d ready", wcall_name[c], what,
		     timeout_ms, want_rc);
	for (int i = 0; i < n; i++)
		if (f[i].revents != want[i])
			fail("%s: %s: entry %d (fd %d, events %s): expected revents %s, got %s",
			     wcall_name[c], what, i, f[i].fd, ev_str((uint16_t)f[i].events, "POLL"),
			     ev_str((uint16_t)want[i], "POLL"),
			     ev_str((uint16_t)f[i].revents, "POLL"));
	if (rc != want_rc)
		fail("%s: %s: expected %d, got %d", wcall_name[c], what, want_rc, rc);
	ok("%s: %s -> %d", wcall_name[c], what, want_rc);
}

/* poll of one fd for @events: revents must be @want. */
static void poll1(int fd, short events, short want, const char *what)
{
	struct pollfd f = { .fd = fd, .events = events };

	poll_expect(C_POLL, &f, 1, want ? GUARD_MS : 0, want ? 1 : 0, &want, what);
}

/* ---- one waiting call on one fd (the epoll fd for the epoll calls) --------------- */

static int call_wait(enum wcall c, int fd, int ms, const sigset_t *mask)
{
	struct epoll_event evs[MAX_EV];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000l };
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	fd_set rd;

	FD_ZERO(&rd);
	FD_SET(fd, &rd);
	switch (c) {
	case C_EPOLL_WAIT:
		return epoll_wait(fd, evs, MAX_EV, ms);
	case C_EPOLL_PWAIT:
		return epoll_pwait(fd, evs, MAX_EV, ms, mask);
	case C_EPOLL_PWAIT2:
		return epoll_pwait2(fd, evs, MAX_EV, &ts, mask);
	case C_POLL:
		return poll(&pfd, 1, ms);
	case C_PPOLL:
		return ppoll(&pfd, 1, &ts, mask);
	case C_SELECT:
		return select(fd + 1, &rd, NULL, NULL, &tv);
	case C_PSELECT:
		return pselect(fd + 1, &rd, NULL, NULL, &ts, mask);
	}
	return -1;
}

/* Nothing ready on @fd: @c with a TMO_MS timeout returns 0, not early. */
static void check_timeout(enum wcall c, int fd, const char *what)
{
	char buf[256];
	uint64_t t0;
	int rc;

	snprintf(buf, sizeof(buf), "%s %d ms on %s", wcall_name[c], TMO_MS, what);
	step("%s", buf);
	t0 = now_ns();
	rc = call_wait(c, fd, TMO_MS, NULL);
	if (rc != 0)
		fail("%s: expected 0 (timeout), got %d%s%s", buf, rc, rc < 0 ? " " : "",
		     rc < 0 ? errname(errno) : "");
	expect_not_early(t0, TMO_MS, buf);
}

/*
 * Nothing ready on @fd; a SIGUSR1 handler (with or without SA_RESTART) and
 * SIGUSR1 sent every 20 ms from 100 ms on: @c returns -1 EINTR and is not
 * restarted (signal(7): the multiplexing calls never are).
 */
static void check_eintr(enum wcall c, int fd, bool restart)
{
	struct kicker k;
	int rc, err;

	sig_handler(restart);
	n_sigs = 0;
	kicker_start(&k, 100, true);
	step("%s interrupted by SIGUSR1", wcall_name[c]);
	rc = call_wait(c, fd, GUARD_MS, NULL);
	err = errno;
	kicker_stop(&k);
	if (rc == 0)
		fail("%s%s: expected -1 EINTR, got 0 after its %d ms timeout (SIGUSR1 sent every "
		     "20 ms; restarted?)", wcall_name[c], restart ? " (SA_RESTART)" : "", GUARD_MS);
	check_err(rc, err, EINTR, "%s blocked, SIGUSR1 handler%s", wcall_name[c],
		  restart ? " with SA_RESTART" : "");
	check_true(n_sigs > 0, "%s: the handler ran", wcall_name[c]);
	signal(SIGUSR1, SIG_IGN);
}

/*
 * ppoll/pselect/epoll_pwait/epoll_pwait2 with a signal mask: SIGUSR1 is
 * blocked outside the call. @idle has nothing ready, @ready has one fd ready.
 */
static void check_sigmask(enum wcall c, int idle, int ready)
{
	const char *n = wcall_name[c];
	sigset_t usr1, old, open_mask, shut_mask;
	struct kicker k;
	uint64_t t0;
	int rc, err;

	sig_handler(false);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, &old);
	open_mask = old;
	sigdelset(&open_mask, SIGUSR1);
	shut_mask = old;
	sigaddset(&shut_mask, SIGUSR1);

	/* pending before the call, the call's mask lets it in */
	n_sigs = 0;
	pthread_kill(pthread_self(), SIGUSR1);
	check_true(n_sigs == 0 && usr1_pending(), "%s: SIGUSR1 blocked and pending before the call",
		   n);
	step("%s with SIGUSR1 pending", n);
	rc = call_wait(c, idle, GUARD_MS, &open_mask);
	err = errno;
	if (rc == 0)
		hang("%s: SIGUSR1 pending and unblocked by the call's mask: returned 0 after "
		     "%d ms, expected -1 EINTR", n, GUARD_MS);
	check_err(rc, err, EINTR, "%s, SIGUSR1 pending, unblocked by the call's mask", n);
	check_eq(n_sigs, 1, "%s: handler runs", n);
	check_true(usr1_blocked() && !usr1_pending(), "%s: after it SIGUSR1 is blocked again, "
		   "not pending", n);

	/* sent while the call waits */
	n_sigs = 0;
	kicker_start(&k, 100, false);
	step("%s, SIGUSR1 sent during the wait", n);
	rc = call_wait(c, idle, GUARD_MS, &open_mask);
	err = errno;
	kicker_stop(&k);
	if (rc == 0)
		hang("%s: SIGUSR1 sent during the wait: returned 0 after %d ms, expected -1 EINTR",
		     n, GUARD_MS);
	check_err(rc, err, EINTR, "%s, SIGUSR1 (blocked outside) sent during the wait", n);
	check_eq(n_sigs, 1, "%s: handler runs", n);
	check_true(usr1_blocked(), "%s: SIGUSR1 blocked again after the call", n);

	/* the call's mask keeps it blocked: a plain timeout, still pending */
	n_sigs = 0;
	pthread_kill(pthread_self(), SIGUSR1);
	step("%s, SIGUSR1 pending and kept blocked", n);
	t0 = now_ns();
	rc = call_wait(c, idle, TMO_MS, &shut_mask);
	if (rc != 0)
		fail("%s with SIGUSR1 in its mask: expected 0 (timeout), got %d %s", n, rc,
		     rc < 0 ? errname(errno) : "");
	expect_not_early(t0, TMO_MS, "timeout with SIGUSR1 pending and blocked by the mask");
	check_true(n_sigs == 0 && usr1_pending(), "%s: SIGUSR1 still pending, handler not run",
		   n);

	/* an fd ready and the signal deliverable: the ready count wins, still pending */
	rc = call_wait(c, ready, GUARD_MS, &open_mask);
	if (rc != 1)
		fail("%s, one fd ready and SIGUSR1 pending, unblocked by the mask: expected 1, got "
		     "%d %s", n, rc, rc < 0 ? errname(errno) : "");
	ok("%s, one fd ready and SIGUSR1 pending, unblocked by the mask -> 1", n);
	check_true(n_sigs == 0 && usr1_pending(), "%s: the handler did not run, SIGUSR1 still "
		   "pending", n);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	check_eq(n_sigs, 1, "%s: unblocked afterwards: the handler runs", n);
	signal(SIGUSR1, SIG_IGN);
}

/* ---- epoll: the API and its errors ------------------------------------------------ */

/* Tags: data.u64 values that say which registration reported. */
#define T1	0x1111000000000001ull
#define T2	0x2222000000000002ull
#define T3	0x3333000000000003ull
#define T4	0x4444000000000004ull
#define T5	0x5555000000000005ull
#define T0	0x0000000000000000ull

/*
 * An fd number that is not open, high enough (>= 900) that the lowest-free
 * rule does not hand it out again during the case.
 */
static int closed_fd(void)
{
	int fd = MUST(eventfd(0, 0), "eventfd"), hi = MUST(fcntl(fd, F_DUPFD, 900), "F_DUPFD");

	close(fd);
	close(hi);
	return hi;
}

static void case_epoll_api(void)
{
	struct epoll_event ev, evs[4];
	struct timespec ts;
	struct pair p;
	int ep, ep2, pfd[2], bad, file, l;
	struct sockaddr_in sin;
	sigset_t mask;
	/* hidden from the compiler, which rejects such calls outright */
	volatile int neg = -1;
	struct epoll_event *volatile nullev = NULL;

	CHECK_ERR(epoll_create(0), EINVAL, "epoll_create(0)");
	CHECK_ERR(epoll_create(-1), EINVAL, "epoll_create(-1)");
	ep = MUST(epoll_create(1), "epoll_create(1)");
	check_eq(fcntl(ep, F_GETFD), 0, "epoll_create(1): F_GETFD");
	close(ep);
	ep = MUST(epoll_create1(0), "epoll_create1(0)");
	check_eq(fcntl(ep, F_GETFD), 0, "epoll_create1(0): F_GETFD");
	close(ep);
	CHECK_ERR(epoll_create1(1), EINVAL, "epoll_create1(1) (a flag other than EPOLL_CLOEXEC)");
	ep = MUST(epoll_create1(EPOLL_CLOEXEC), "epoll_create1(EPOLL_CLOEXEC)");
	check_eq(fcntl(ep, F_GETFD), FD_CLOEXEC, "epoll_create1(EPOLL_CLOEXEC): F_GETFD");

	pair_open(&p);
	MUST(pipe(pfd), "pipe");
	bad = closed_fd();
	file = MUST(open("/proc/self/exe", O_RDONLY | O_CLOEXEC), "open /proc/self/exe");
	ep2 = ep_new();
	l = listener_open(&sin, 8);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = T1;
	check_eq(epoll_ctl(ep, EPOLL_CTL_ADD, p.b, &ev), 0, "epoll_ctl ADD connection");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p.b, &ev), EEXIST, "epoll_ctl ADD it again");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_MOD, p.a, &ev), ENOENT,
		  "epoll_ctl MOD of an fd not in the set");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_DEL, p.a, &ev), ENOENT,
		  "epoll_ctl DEL of an fd not in the set");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, bad, &ev), EBADF, "epoll_ctl ADD of a closed fd");
	CHECK_ERR(epoll_ctl(bad, EPOLL_CTL_ADD, p.a, &ev), EBADF, "epoll_ctl on a closed epfd");
	CHECK_ERR(epoll_ctl(pfd[0], EPOLL_CTL_ADD, p.a, &ev), EINVAL,
		  "epoll_ctl on a pipe as epfd");
	CHECK_ERR(epoll_ctl(p.a, EPOLL_CTL_ADD, p.b, &ev), EINVAL,
		  "epoll_ctl on a connection as epfd");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev), EINVAL, "epoll_ctl ADD epfd to itself");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, file, &ev), EPERM,
		  "epoll_ctl ADD of a regular file");
	CHECK_ERR(epoll_ctl(ep, 99, p.a, &ev), EINVAL, "epoll_ctl op 99");
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_MOD, p.b, &ev), EINVAL,
		  "epoll_ctl MOD with EPOLLEXCLUSIVE");
	check_eq(epoll_ctl(ep, EPOLL_CTL_ADD, p.a, &ev), 0, "epoll_ctl ADD with EPOLLEXCLUSIVE");
	ev.events = EPOLLIN;
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_MOD, p.a, &ev), EINVAL,
		  "epoll_ctl MOD of an EPOLLEXCLUSIVE registration");
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, ep2, &ev), EINVAL,
		  "epoll_ctl ADD of an epoll fd with EPOLLEXCLUSIVE");
	ev.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT;
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev), EINVAL,
		  "epoll_ctl ADD with EPOLLEXCLUSIVE|EPOLLONESHOT");
	check_eq(epoll_ctl(ep, EPOLL_CTL_DEL, p.a, NULL), 0, "epoll_ctl DEL with event NULL");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_DEL, p.a, NULL), ENOENT, "epoll_ctl DEL again");

	CHECK_ERR(epoll_wait(ep, evs, 0, 0), EINVAL, "epoll_wait maxevents 0");
	CHECK_ERR(epoll_wait(ep, evs, neg, 0), EINVAL, "epoll_wait maxevents -1");
	CHECK_ERR(epoll_wait(pfd[0], evs, 4, 0), EINVAL, "epoll_wait on a pipe");
	CHECK_ERR(epoll_wait(p.b, evs, 4, 0), EINVAL, "epoll_wait on a connection");
	CHECK_ERR(epoll_wait(bad, evs, 4, 0), EBADF, "epoll_wait on a closed fd");
	check_eq(epoll_wait(ep, evs, 4, 0), 0, "epoll_wait, nothing ready, timeout 0");
	check_eq(epoll_pwait(ep, evs, 4, 0, NULL), 0, "epoll_pwait, nothing ready, timeout 0");
	sigemptyset(&mask);
	check_eq(epoll_pwait(ep, evs, 4, 0, &mask), 0,
		 "epoll_pwait with an empty mask, nothing ready, timeout 0");
	ts.tv_sec = 0;
	ts.tv_nsec = 0;
	check_eq(epoll_pwait2(ep, evs, 4, &ts, NULL), 0, "epoll_pwait2 {0, 0}, nothing ready");
	ts.tv_nsec = 1000000000;
	CHECK_ERR(epoll_pwait2(ep, evs, 4, &ts, NULL), EINVAL, "epoll_pwait2 tv_nsec 1e9");
	ts.tv_sec = -1;
	ts.tv_nsec = 0;
	CHECK_ERR(epoll_pwait2(ep, evs, 4, &ts, NULL), EINVAL, "epoll_pwait2 tv_sec -1");

	send_str(p.a, "x");
	ep_one(ep, T1, EPOLLIN, "one byte arrived");
	ep_expect(C_EPOLL_PWAIT, ep, &(struct want){ T1, EPOLLIN }, 1, "one byte arrived");
	check_eq(epoll_pwait2(ep, evs, 4, NULL, NULL), 1, "epoll_pwait2, timeout NULL, one ready");
	check_true(evs[0].data.u64 == T1 && evs[0].events == EPOLLIN,
		   "epoll_pwait2: the event is {T1 EPOLLIN}");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p.a, nullev), EFAULT,
		  "epoll_ctl ADD with event NULL");
	CHECK_ERR(epoll_wait(ep, nullev, 4, 0), EFAULT, "epoll_wait, events NULL, one ready");

	close(l);
	close(ep2);
	close(file);
	close(pfd[0]);
	close(pfd[1]);
	close(ep);
	pair_close(&p);
}

/* ---- epoll: readiness ------------------------------------------------------------- */

/* A connection, a pipe, an eventfd and a listener in one set. */
static void case_epoll_mixed(void)
{
	struct sockaddr_in sin;
	struct pair p;
	int ep = ep_new(), ep2 = ep_new(), pfd[2], efd, l, c1, c2, s1, s2;
	eventfd_t v;
	char ch;
	const struct want all[4] = {
		{ T1, EPOLLIN }, { T2, EPOLLIN }, { T3, EPOLLIN }, { T4, EPOLLIN },
	};
	const struct want outs[2] = { { T1, EPOLLOUT }, { T2, EPOLLOUT } };

	pair_open(&p);
	MUST(pipe(pfd), "pipe");
	efd = MUST(eventfd(0, EFD_NONBLOCK), "eventfd");
	l = listener_open(&sin, 8);
	ep_ctl(ep, EPOLL_CTL_ADD, p.b, EPOLLIN, T1);
	ep_ctl(ep, EPOLL_CTL_ADD, pfd[0], EPOLLIN, T2);
	ep_ctl(ep, EPOLL_CTL_ADD, efd, EPOLLIN, T3);
	ep_ctl(ep, EPOLL_CTL_ADD, l, EPOLLIN, T4);
	ep_none(ep, "connection, pipe, eventfd, listener: nothing ready");
	MUST(write(pfd[1], "p", 1), "write pipe");
	ep_one(ep, T2, EPOLLIN, "the pipe written");
	MUST(read(pfd[0], &ch, 1), "read pipe");
	ep_none(ep, "the pipe read");
	MUST(eventfd_write(efd, 1), "eventfd_write");
	ep_one(ep, T3, EPOLLIN, "the eventfd written");
	MUST(eventfd_read(efd, &v), "eventfd_read");
	ep_none(ep, "the eventfd read");
	send_str(p.a, "c");
	ep_one(ep, T1, EPOLLIN, "the connection got a byte");
	recv_str(p.b, "c", "the byte");
	ep_none(ep, "the byte read");
	c1 = connect_to(&sin);
	ep_one(ep, T4, EPOLLIN, "a connection to the listener");
	s1 = accept_one(l, 0);
	ep_none(ep, "accepted");

	MUST(write(pfd[1], "p", 1), "write pipe");
	MUST(eventfd_write(efd, 1), "eventfd_write");
	send_str(p.a, "c");
	c2 = connect_to(&sin);
	ep_expect(C_EPOLL_WAIT, ep, all, 4, "all four ready");
	ep_expect(C_EPOLL_PWAIT, ep, all, 4, "all four ready");
	ep_expect(C_EPOLL_PWAIT2, ep, all, 4, "all four ready");
	MUST(read(pfd[0], &ch, 1), "read pipe");
	MUST(eventfd_read(efd, &v), "eventfd_read");
	recv_str(p.b, "c", "the byte");
	s2 = accept_one(l, 0);
	ep_none(ep, "all four consumed");

	ep_ctl(ep2, EPOLL_CTL_ADD, p.a, EPOLLOUT, T1);
	ep_ctl(ep2, EPOLL_CTL_ADD, pfd[1], EPOLLOUT, T2);
	ep_expect(C_EPOLL_WAIT, ep2, outs, 2, "a connection and a pipe's write end: writable");

	close(c1);
	close(c2);
	close(s1);
	close(s2);
	close(l);
	close(efd);
	close(pfd[0]);
	close(pfd[1]);
	close(ep);
	close(ep2);
	pair_close(&p);
}

static void case_epoll_lt(void)
{
	struct pair p;
	int ep = ep_new();

	pair_open(&p);
	ep_ctl(ep, EPOLL_CTL_ADD, p.b, EPOLLIN, T1);
	ep_none(ep, "fresh connection, EPOLLIN");
	send_n(p.a, 100);
	ep_one(ep, T1, EPOLLIN, "100 bytes arrived");
	ep_one(ep, T1, EPOLLIN, "still unread: reported again (level-triggered)");
	recv_n(p.b, NULL, 40);
	ep_one(ep, T1, EPOLLIN, "60 bytes still unread");
	recv_n(p.b, NULL, 60);
	ep_none(ep, "all read");
	ep_ctl(ep, EPOLL_CTL_MOD, p.b, EPOLLIN | EPOLLOUT, T2);
	ep_one(ep, T2, EPOLLOUT, "MOD to EPOLLIN|EPOLLOUT, nothing to read");
	send_n(p.a, 1);
	ep_one(ep, T2, EPOLLIN | EPOLLOUT, "a byte arrived");
	ep_one(ep, T2, EPOLLIN | EPOLLOUT, "again, unread");
	recv_n(p.b, NULL, 1);
	ep_one(ep, T2, EPOLLOUT, "read");
	ep_ctl(ep, EPOLL_CTL_MOD, p.b, 0, T3);
	send_n(p.a, 1);
	ep_none(ep, "MOD to no events, a byte unread");
	recv_n(p.b, NULL, 1);
	close(ep);
	pair_close(&p);
}

static void case_epoll_et(void)
{
	struct pair p;
	int ep = ep_new(), ep2 = ep_new();

	pair_open(&p);
	ep_ctl(ep, EPOLL_CTL_ADD, p.b, EPOLLIN | EPOLLET, T1);
	ep_none(ep, "fresh connection, EPOLLIN|EPOLLET");
	send_n(p.a, 100);
	ep_one(ep, T1, EPOLLIN, "100 bytes arrived");
	ep_none(ep, "no new data: no second report (edge-triggered)");
	send_n(p.a, 1);
	ep_one(ep, T1, EPOLLIN, "1 more byte, 100 still unread: a new report");
	ep_none(ep, "no new data");
	recv_n(p.b, NULL, 50);
	ep_none(ep, "reading a part is no new edge");
	recv_n(p.b, NULL, 51);
	ep_none(ep, "all read");
	send_n(p.a, 10);
	send_n(p.a, 10);
	ep_one(ep, T1, EPOLLIN, "two sends before the wait: one report");
	ep_none(ep, "no new data");
	recv_n(p.b, NULL, 20);
	send_n(p.a, 5);
	ep_one(ep, T1, EPOLLIN, "5 bytes arrived");
	ep_ctl(ep, EPOLL_CTL_MOD, p.b, EPOLLIN | EPOLLET, T2);
	ep_one(ep, T2, EPOLLIN, "MOD with 5 bytes unread: reported again");
	ep_none(ep, "no new data");
	recv_n(p.b, NULL, 5);
	ep_ctl(ep, EPOLL_CTL_MOD, p.b, EPOLLIN | EPOLLET, T2);
	ep_none(ep, "MOD with nothing unread");
	ep_ctl(ep, EPOLL_CTL_MOD, p.b, EPOLLIN | EPOLLOUT | EPOLLET, T3);
	ep_one(ep, T3, EPOLLOUT, "MOD to EPOLLIN|EPOLLOUT|EPOLLET: writable, once");
	ep_none(ep, "no change");
	send_n(p.a, 1);
	ep_one(ep, T3, EPOLLIN | EPOLLOUT, "a byte arrived: the whole mask reported");
	ep_none(ep, "no change");
	recv_n(p.b, NULL, 1);
	ep_ctl(ep2, EPOLL_CTL_ADD, p.a, EPOLLOUT | EPOLLET, T4);
	ep_one(ep2, T4, EPOLLOUT, "ADD EPOLLOUT|EPOLLET of a writable connection: once");
	ep_none(ep2, "no change");
	close(ep);
	close(ep2);
	pair_close(&p);
}

static void case_epoll_oneshot(void)
{
	struct epoll_event ev;
	struct pair p;
	int ep = ep_new();

	pair_open(&p);
	ep_ctl(ep, EPOLL_CTL_ADD, p.b, EPOLLIN | EPOLLONESHOT, T1);
	ep_none(ep, "fresh connection, EPOLLIN|EPOLLONESHOT");
	send_n(p.a, 10);
	ep_one(ep, T1, EPOLLIN, "10 bytes arrived");
	ep_none(ep, "disarmed after one report, 10 bytes unread");
	send_n(p.a, 10);
	ep_none(ep, "disarmed: new data not reported");
	ep_ctl(ep, EPOLL_CTL_MOD, p.b, EPOLLIN | EPOLLONESHOT, T2);
	ep_one(ep, T2, EPOLLIN, "MOD re-arms: the unread data reported");
	ep_none(ep, "disarmed again");
	recv_n(p.b, NULL, 20);
	ep_ctl(ep, EPOLL_CTL_MOD, p.b, EPOLLIN | EPOLLONESHOT, T3);
	ep_none(ep, "re-armed, nothing unread");
	send_n(p.a, 1);
	ep_one(ep, T3, EPOLLIN, "a byte arrived");
	ep_none(ep, "disarmed");
	recv_n(p.b, NULL, 1);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p.b, &ev), EEXIST,
		  "epoll_ctl ADD of a disarmed EPOLLONESHOT fd (still in the set)");
	ep_ctl(ep, EPOLL_CTL_MOD, p.b, EPOLLIN | EPOLLONESHOT | EPOLLET, T4);
	send_n(p.a, 1);
	ep_one(ep, T4, EPOLLIN, "EPOLLONESHOT|EPOLLET: a byte arrived");
	send_n(p.a, 1);
	ep_none(ep, "EPOLLONESHOT|EPOLLET: disarmed, new data not reported");
	check_eq(epoll_ctl(ep, EPOLL_CTL_DEL, p.b, NULL), 0, "epoll_ctl DEL of a disarmed fd");
	close(ep);
	pair_close(&p);
}

struct excl_waiter {
	int ep;
	int l;
	int rc;
	uint64_t tag;
	uint32_t events;
	int fd;
};

static void *excl_waiter_main(void *arg)
{
	struct excl_waiter *w = arg;
	struct epoll_event ev;

	w->rc = epoll_wait(w->ep, &ev, 1, GUARD_MS);
	if (w->rc == 1) {
		w->tag = ev.data.u64;
		w->events = ev.events;
		w->fd = accept4(w->l, NULL, NULL, SOCK_NONBLOCK);
	}
	return NULL;
}

static void case_epoll_exclusive(void)
{
	struct excl_waiter w;
	struct sockaddr_in sin;
	struct pair p;
	pthread_t th;
	int ep = ep_new(), ep2 = ep_new(), ep3 = ep_new(), l, c, s;

	pair_open(&p);
	ep_ctl(ep, EPOLL_CTL_ADD, p.b, EPOLLIN | EPOLLEXCLUSIVE, T1);
	ep_none(ep, "connection, EPOLLIN|EPOLLEXCLUSIVE, nothing to read");
	send_n(p.a, 3);
	ep_one(ep, T1, EPOLLIN, "3 bytes arrived");
	ep_one(ep, T1, EPOLLIN, "still unread (level-triggered)");
	recv_n(p.b, NULL, 3);
	ep_none(ep, "read");
	ep_ctl(ep2, EPOLL_CTL_ADD, p.a, EPOLLIN | EPOLLOUT | EPOLLEXCLUSIVE, T2);
	ep_one(ep2, T2, EPOLLOUT, "EPOLLIN|EPOLLOUT|EPOLLEXCLUSIVE: writable");

	l = listener_open(&sin, 8);
	nonblock(l, true);
	ep_ctl(ep3, EPOLL_CTL_ADD, l, EPOLLIN | EPOLLEXCLUSIVE, T3);
	ep_none(ep3, "listener, EPOLLIN|EPOLLEXCLUSIVE, no connection");
	c = connect_to(&sin);
	ep_one(ep3, T3, EPOLLIN, "listener: a connection arrived");
	s = accept_one(l, SOCK_NONBLOCK);
	check_true(s >= 0, "accept after the event");
	ep_none(ep3, "accepted");
	CHECK_ERR(accept4(l, NULL, NULL, 0), EAGAIN, "accept on the drained nonblocking listener");
	close(c);
	close(s);

	/* a thread blocked on the exclusive listener wakes and accepts */
	memset(&w, 0, sizeof(w));
	w.ep = ep3;
	w.l = l;
	w.fd = -1;
	thread_start(&th, excl_waiter_main, &w);
	sleep_ms(100);
	c = connect_to(&sin);
	thread_join(th, 2 * GUARD_MS, "the epoll_wait thread");
	if (w.rc == 0)
		hang("a thread blocked in epoll_wait on an EPOLLEXCLUSIVE listener: not woken "
		     "by a connection within %d ms", GUARD_MS);
	if (w.rc != 1 || w.tag != T3 || w.events != EPOLLIN)
		fail("blocked epoll_wait on an EPOLLEXCLUSIVE listener: expected 1 {T3 EPOLLIN}, "
		     "got %d {0x%" PRIx64 " %s}", w.rc, w.tag, ev_str(w.events, "EPOLL"));
	ok("a thread blocked in epoll_wait on an EPOLLEXCLUSIVE listener woke: {T3 EPOLLIN}");
	if (w.fd < 0)
		fail("the woken thread's accept failed");
	n_pairs++;
	ok("the woken thread accepted the connection");
	close(w.fd);
	close(c);
	close(l);
	close(ep);
	close(ep2);
	close(ep3);
	pair_close(&p);
}

static void case_epoll_rdhup(void)
{
	struct pair p;
	int ep1 = ep_new(), ep2 = ep_new(), ep3 = ep_new(), ep4 = ep_new(), ep5 = ep_new();

	pair_open(&p);
	ep_ctl(ep1, EPOLL_CTL_ADD, p.b, EPOLLIN | EPOLLRDHUP, T1);
	ep_ctl(ep2, EPOLL_CTL_ADD, p.b, EPOLLIN, T2);
	ep_ctl(ep3, EPOLL_CTL_ADD, p.b, EPOLLIN | EPOLLOUT | EPOLLRDHUP, T3);
	ep_ctl(ep4, EPOLL_CTL_ADD, p.b, EPOLLIN | EPOLLRDHUP | EPOLLET, T4);
	ep_none(ep1, "nothing yet");
	send_n(p.a, 5);
	MUST(shutdown(p.a, SHUT_WR), "shutdown(SHUT_WR)");
	ep_one(ep1, T1, EPOLLIN | EPOLLRDHUP, "peer sent 5 bytes, then shutdown(SHUT_WR)");
	ep_one(ep2, T2, EPOLLIN, "the same, registered without EPOLLRDHUP");
	ep_one(ep3, T3, EPOLLIN | EPOLLOUT | EPOLLRDHUP, "the same, EPOLLIN|EPOLLOUT|EPOLLRDHUP");
	ep_one(ep4, T4, EPOLLIN | EPOLLRDHUP, "the same, edge-triggered");
	ep_none(ep4, "edge-triggered: once");
	recv_n(p.b, NULL, 5);
	expect_eof(p.b, "after the 5 bytes");
	ep_one(ep1, T1, EPOLLIN | EPOLLRDHUP, "EOF read: still reported (level-triggered)");
	ep_none(ep4, "edge-triggered: nothing new");
	send_str(p.b, "r");
	recv_str(p.a, "r", "the half-closed side still receives");
	MUST(shutdown(p.b, SHUT_WR), "shutdown(SHUT_WR) of the other side");
	ep_one(ep3, T3, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLHUP,
	       "both directions shut down");
	ep_ctl(ep5, EPOLL_CTL_ADD, p.a, EPOLLIN | EPOLLOUT | EPOLLRDHUP, T5);
	ep_one(ep5, T5, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLHUP,
	       "both directions shut down, seen from the side that shut first");
	close(ep1);
	close(ep2);
	close(ep3);
	close(ep4);
	close(ep5);
	pair_close(&p);
}

static int sock_error(int fd)
{
	socklen_t len = sizeof(int);
	int err = -1;

	MUST(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), "getsockopt SO_ERROR");
	return err;
}

static void case_epoll_rst(void)
{
	const uint32_t all = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
	struct linger lg = { 1, 0 };
	struct pair p;
	int ep, ep0;
	char c;

	/* the peer closes with data it did not read: it sends RST */
	pair_open(&p);
	ep = ep_new();
	ep0 = ep_new();
	ep_ctl(ep, EPOLL_CTL_ADD, p.a, all, T1);
	ep_ctl(ep0, EPOLL_CTL_ADD, p.a, 0, T0);
	send_n(p.a, 10);
	ep_one(ep, T1, EPOLLOUT, "10 bytes sent, the peer reads none");
	ep_none(ep0, "registered with no events");
	close(p.b);
	p.b = -1;
	ep_one(ep, T1, all | EPOLLHUP | EPOLLERR, "the peer closed with 10 bytes unread (RST)");
	ep_one(ep0, T0, EPOLLERR | EPOLLHUP, "registered with no events: EPOLLERR|EPOLLHUP");
	CHECK_ERR(recv(p.a, &c, 1, 0), ECONNRESET, "recv after the RST");
	ep_one(ep, T1, all | EPOLLHUP, "the error consumed: no EPOLLERR");
	ep_one(ep0, T0, EPOLLHUP, "registered with no events: EPOLLHUP");
	check_eq(recv(p.a, &c, 1, 0), 0, "recv after the error");
	CHECK_ERR(send(p.a, "x", 1, MSG_NOSIGNAL), EPIPE, "send after the RST");
	close(ep);
	close(ep0);
	pair_close(&p);

	/* SO_LINGER {1, 0}: close sends RST */
	pair_open(&p);
	ep = ep_new();
	ep_ctl(ep, EPOLL_CTL_ADD, p.a, all, T2);
	MUST(setsockopt(p.b, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), "SO_LINGER");
	close(p.b);
	p.b = -1;
	ep_one(ep, T2, all | EPOLLHUP | EPOLLERR, "the peer closed with SO_LINGER {1, 0} (RST)");
	check_eq(sock_error(p.a), ECONNRESET, "SO_ERROR after the RST");
	ep_one(ep, T2, all | EPOLLHUP, "SO_ERROR read: no EPOLLERR");
	check_eq(recv(p.a, &c, 1, 0), 0, "recv after the error");
	close(ep);
	pair_close(&p);
}

/* The peer sends, then closes normally (FIN): data and EOF, no hangup; then RST. */
static void case_epoll_fin(void)
{
	const uint32_t all = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
	struct pair p;
	int ep;

	pair_open(&p);
	ep = ep_new();
	ep_ctl(ep, EPOLL_CTL_ADD, p.a, all, T3);
	send_n(p.b, 10);
	close(p.b);
	p.b = -1;
	ep_one(ep, T3, all, "the peer sent 10 bytes and closed (FIN)");
	recv_n(p.a, NULL, 10);
	expect_eof(p.a, "after the 10 bytes");
	ep_one(ep, T3, all, "EOF read");
	check_eq(send(p.a, "x", 1, MSG_NOSIGNAL), 1, "send to the closed peer (accepted locally)");
	ep_one(ep, T3, all | EPOLLHUP | EPOLLERR, "the closed peer answered with RST");
	check_eq(sock_error(p.a), EPIPE, "SO_ERROR after RST in CLOSE_WAIT");
	ep_one(ep, T3, all | EPOLLHUP, "SO_ERROR read: no EPOLLERR");
	CHECK_ERR(send(p.a, "x", 1, MSG_NOSIGNAL), EPIPE, "send after the RST");
	close(ep);
	pair_close(&p);
}

/* Registered before connect/listen, as event loops do: the readiness of each state. */
static void case_epoll_connect(void)
{
	const uint32_t all = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int ep = ep_new(), ep2 = ep_new(), c, l, s, r, one = 1;

	c = MUST(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), "socket");
	ep_ctl(ep, EPOLL_CTL_ADD, c, all, T1);
	ep_one(ep, T1, EPOLLOUT | EPOLLHUP, "a fresh socket, not connected");
	l = MUST(socket(AF_INET, SOCK_STREAM, 0), "socket");
	MUST(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), "SO_REUSEADDR");
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	MUST(bind(l, (struct sockaddr *)&sin, sizeof(sin)), "bind");
	MUST(getsockname(l, (struct sockaddr *)&sin, &len), "getsockname");
	ep_ctl(ep2, EPOLL_CTL_ADD, l, EPOLLIN, T2);
	ep_one(ep2, T2, EPOLLHUP, "a bound socket, not listening, EPOLLIN");
	MUST(listen(l, 8), "listen");
	ep_none(ep2, "listening, no connection");
	CHECK_ERR(connect(c, (struct sockaddr *)&sin, sizeof(sin)), EINPROGRESS,
		  "nonblocking connect");
	ep_one(ep, T1, EPOLLOUT, "connected");
	check_eq(sock_error(c), 0, "SO_ERROR after the connect");
	ep_one(ep2, T2, EPOLLIN, "the listener has the connection");
	s = accept_one(l, 0);
	ep_none(ep2, "accepted");
	check_eq(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0,
		 "connect again once connected: the first repeat reports success");
	CHECK_ERR(connect(c, (struct sockaddr *)&sin, sizeof(sin)), EISCONN,
		  "connect a third time");
	send_str(s, "x");
	ep_one(ep, T1, EPOLLIN | EPOLLOUT, "a byte arrived");
	recv_str(c, "x", "the byte");
	ep_one(ep, T1, EPOLLOUT, "read");
	poll1(c, POLLIN | POLLOUT, POLLOUT, "the connected socket in poll");
	close(s);
	ep_one(ep, T1, all, "the peer closed");
	close(c);
	close(l);

	/* nobody listens on the port any more: refused */
	r = MUST(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), "socket");
	ep_ctl(ep, EPOLL_CTL_ADD, r, all, T3);
	n_refused++;
	CHECK_ERR(connect(r, (struct sockaddr *)&sin, sizeof(sin)), EINPROGRESS,
		  "nonblocking connect to a port nobody listens on");
	ep_one(ep, T3, all | EPOLLERR | EPOLLHUP, "refused");
	check_eq(sock_error(r), ECONNREFUSED, "SO_ERROR after the refusal");
	ep_one(ep, T3, all | EPOLLHUP, "SO_ERROR read: no EPOLLERR");
	CHECK_ERR(connect(r, (struct sockaddr *)&sin, sizeof(sin)), ECONNABORTED,
		  "connect again after the refusal");
	close(r);
	close(ep);
	close(ep2);
}

/*
 * fill() for an EPOLLET registration in @ep: the kernel may make EPOLLOUT
 * edges while we fill (room freed as it moves our bytes to the peer); take
 * them and fill again until a fill adds nothing after the edges were taken.
 */
static size_t fill_et(int fd, int ep)
{
	struct epoll_event ev[4];
	size_t total = 0, n;

	do {
		n = fill(fd);
		total += n;
	} while (epoll_wait(ep, ev, 4, 0) > 0 || n);
	return total;
}

static void case_epoll_out(void)
{
	struct pair p;
	int ep = ep_new(), ep2 = ep_new(), ep3 = ep_new();
	size_t sent;

	pair_open(&p);
	nonblock(p.a, true);
	ep_ctl(ep, EPOLL_CTL_ADD, p.a, EPOLLOUT, T1);
	ep_one(ep, T1, EPOLLOUT, "fresh connection is writable");
	sent = fill(p.a);
	ok("send(MSG_DONTWAIT) until EAGAIN");
	ep_none(ep, "send side full: no EPOLLOUT");
	drain_n(p.b, sent);
	ep_one(ep, T1, EPOLLOUT, "the peer read everything: writable");

	ep_ctl(ep2, EPOLL_CTL_ADD, p.a, EPOLLOUT | EPOLLET, T2);
	ep_one(ep2, T2, EPOLLOUT, "EPOLLOUT|EPOLLET: writable at ADD");
	ep_none(ep2, "EPOLLOUT|EPOLLET: once");
	sent = fill_et(p.a, ep2);
	ok("send(MSG_DONTWAIT) until EAGAIN");
	ep_none(ep2, "EPOLLOUT|EPOLLET: send side full");
	drain_n(p.b, sent);
	ep_one(ep2, T2, EPOLLOUT, "EPOLLOUT|EPOLLET: the peer read everything: one report");
	ep_none(ep2, "EPOLLOUT|EPOLLET: no second report");

	sent = fill(p.a);
	ok("send(MSG_DONTWAIT) until EAGAIN");
	send_n(p.b, 1);
	/* The byte's ACK may let the kernel move more of ours to the peer: full again. */
	sent += fill(p.a);
	ep_ctl(ep3, EPOLL_CTL_ADD, p.a, EPOLLIN | EPOLLOUT, T3);
	ep_one(ep3, T3, EPOLLIN, "send side full, a byte to read: EPOLLIN only");
	drain_n(p.b, sent);
	ep_one(ep3, T3, EPOLLIN | EPOLLOUT, "the peer read everything");
	recv_n(p.a, NULL, 1);
	ep_one(ep3, T3, EPOLLOUT, "the byte read");
	close(ep);
	close(ep2);
	close(ep3);
	pair_close(&p);
}

struct set_waiter {
	pthread_t th;
	int ep;
	int rc;
	struct epoll_event ev;
};

static void *set_waiter_main(void *arg)
{
	struct set_waiter *w = arg;

	w->rc = epoll_wait(w->ep, &w->ev, 1, GUARD_MS);
	return NULL;
}

static void set_waiter_check(struct set_waiter *w, uint64_t tag, uint32_t ev, const char *what)
{
	thread_join(w->th, 2 * GUARD_MS, what);
	if (w->rc == 0)
		hang("%s: not woken within %d ms", what, GUARD_MS);
	if (w->rc != 1 || w->ev.data.u64 != tag || w->ev.events != ev)
		fail("%s: expected 1 {0x%" PRIx64 " %s}, got %d {0x%" PRIx64 " %s}", what, tag,
		     ev_str(ev, "EPOLL"), w->rc, (uint64_t)w->ev.data.u64,
		     ev_str(w->ev.events, "EPOLL"));
	ok("%s: woken with {0x%" PRIx64 " %s}", what, tag, ev_str(ev, "EPOLL"));
}

static void case_epoll_two_sets(void)
{
	struct set_waiter w1, w2;
	struct pair p;
	int ep1 = ep_new(), ep2 = ep_new();

	pair_open(&p);
	ep_ctl(ep1, EPOLL_CTL_ADD, p.b, EPOLLIN, T1);
	ep_ctl(ep2, EPOLL_CTL_ADD, p.b, EPOLLIN | EPOLLET, T2);
	send_n(p.a, 1);
	ep_one(ep1, T1, EPOLLIN, "set 1 (level-triggered): a byte arrived");
	ep_one(ep2, T2, EPOLLIN, "set 2 (edge-triggered): a byte arrived");
	ep_one(ep1, T1, EPOLLIN, "set 1: unread");
	ep_none(ep2, "set 2: no new data");
	send_n(p.a, 1);
	ep_one(ep2, T2, EPOLLIN, "set 2: another byte");
	ep_ctl(ep1, EPOLL_CTL_DEL, p.b, 0, 0);
	ep_none(ep1, "set 1 after DEL");
	send_n(p.a, 1);
	ep_one(ep2, T2, EPOLLIN, "set 2 still reports after DEL from set 1");
	recv_n(p.b, NULL, 3);

	ep_ctl(ep1, EPOLL_CTL_ADD, p.b, EPOLLIN, T1);
	memset(&w1, 0, sizeof(w1));
	memset(&w2, 0, sizeof(w2));
	w1.ep = ep1;
	w2.ep = ep2;
	thread_start(&w1.th, set_waiter_main, &w1);
	thread_start(&w2.th, set_waiter_main, &w2);
	sleep_ms(100);
	send_n(p.a, 1);
	set_waiter_check(&w1, T1, EPOLLIN, "a thread blocked on set 1");
	set_waiter_check(&w2, T2, EPOLLIN, "a thread blocked on set 2");
	close(ep1);
	close(ep2);
	pair_close(&p);
}

static void act_send(void *arg)
{
	int fd = *(int *)arg;

	if (send(fd, "w", 1, MSG_NOSIGNAL) != 1)
		fail_errno(errno, "send from the other thread");
}

static void case_epoll_nested(void)
{
	struct pollfd pf;
	struct later lt;
	struct pair p;
	fd_set rd;
	struct timeval tv = { 0, 0 };
	int inner = ep_new(), outer = ep_new();
	struct epoll_event ev;

	pair_open(&p);
	ep_ctl(inner, EPOLL_CTL_ADD, p.b, EPOLLIN, T1);
	ep_ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN, T2);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	CHECK_ERR(epoll_ctl(inner, EPOLL_CTL_ADD, outer, &ev), ELOOP,
		  "epoll_ctl ADD of the outer set into the inner one (a loop)");
	ep_none(outer, "the inner set has nothing ready");
	pf.fd = inner;
	pf.events = POLLIN | POLLOUT;
	pf.revents = 0;
	check_eq(poll(&pf, 1, 0), 0, "poll of the inner epoll fd, nothing ready");
	send_n(p.a, 1);
	ep_one(outer, T2, EPOLLIN, "the inner set has a ready connection");
	check_eq(poll(&pf, 1, GUARD_MS), 1, "poll of the inner epoll fd");
	check_eq(pf.revents, POLLIN, "poll of the inner epoll fd: revents (never POLLOUT)");
	FD_ZERO(&rd);
	FD_SET(inner, &rd);
	check_eq(select(inner + 1, &rd, NULL, NULL, &tv), 1, "select of the inner epoll fd");
	ep_one(inner, T1, EPOLLIN, "the inner set reports the connection");
	recv_n(p.b, NULL, 1);
	ep_none(outer, "the byte read");
	check_eq(poll(&pf, 1, 0), 0, "poll of the inner epoll fd after the read");
	later_start(&lt, 100, act_send, &p.a);
	ep_one(outer, T2, EPOLLIN, "blocked on the outer set, another thread sends");
	later_join(&lt, "the sender");
	recv_n(p.b, NULL, 1);
	close(inner);
	close(outer);
	pair_close(&p);
}

static void case_epoll_data(void)
{
	struct epoll_event ev, got;
	struct pair p;
	int ep = ep_new();
	static int anchor;

	pair_open(&p);
	send_n(p.a, 1);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = 0xfedcba9876543210ull;
	MUST(epoll_ctl(ep, EPOLL_CTL_ADD, p.b, &ev), "epoll_ctl ADD");
	ep_one(ep, 0xfedcba9876543210ull, EPOLLIN, "data.u64 0xfedcba9876543210");
	ev.data.u64 = 0;
	ev.data.ptr = &anchor;
	MUST(epoll_ctl(ep, EPOLL_CTL_MOD, p.b, &ev), "epoll_ctl MOD");
	check_eq(epoll_wait(ep, &got, 1, GUARD_MS), 1, "epoll_wait after MOD to data.ptr");
	check_true(got.data.ptr == &anchor, "data.ptr returned unchanged");
	ev.data.u64 = 0xffffffff00000000ull;
	ev.data.fd = p.b;
	MUST(epoll_ctl(ep, EPOLL_CTL_MOD, p.b, &ev), "epoll_ctl MOD");
	check_eq(epoll_wait(ep, &got, 1, GUARD_MS), 1, "epoll_wait after MOD to data.fd");
	check_true(got.data.fd == p.b && got.data.u64 == ev.data.u64,
		   "data.fd and the upper half returned unchanged");
	ev.data.u64 = 0;
	MUST(epoll_ctl(ep, EPOLL_CTL_MOD, p.b, &ev), "epoll_ctl MOD");
	ep_one(ep, 0, EPOLLIN, "data.u64 0");
	ev.data.u64 = ~0ull;
	MUST(epoll_ctl(ep, EPOLL_CTL_MOD, p.b, &ev), "epoll_ctl MOD");
	ep_one(ep, ~0ull, EPOLLIN, "data.u64 ~0");
	close(ep);
	pair_close(&p);
}

#define N_MAXEV	5

static void case_epoll_maxevents(void)
{
	struct epoll_event evs[MAX_EV];
	struct want all[N_MAXEV];
	struct pair p[N_MAXEV];
	int et = ep_new(), lt = ep_new(), rc, seen[N_MAXEV] = { 0 };
	const int batches[] = { 2, 2, 1 };

	for (int i = 0; i < N_MAXEV; i++) {
		pair_open(&p[i]);
		ep_ctl(et, EPOLL_CTL_ADD, p[i].b, EPOLLIN | EPOLLET, (uint64_t)i);
		ep_ctl(lt, EPOLL_CTL_ADD, p[i].b, EPOLLIN, (uint64_t)i);
		all[i].tag = (uint64_t)i;
		all[i].ev = EPOLLIN;
	}
	for (int i = 0; i < N_MAXEV; i++)
		send_n(p[i].a, 1);
	/* edge-triggered: 5 ready, maxevents 2: 2, 2, 1, then nothing; each once */
	for (int k = 0; k < 3; k++) {
		step("epoll_wait maxevents 2, batch %d", k);
		rc = epoll_wait(et, evs, 2, GUARD_MS);
		if (rc != batches[k])
			fail("edge-triggered, 5 ready, maxevents 2, call %d: expected %d, "
			     "got %d %s", k + 1, batches[k], rc, rc < 0 ? errname(errno) : "");
		for (int i = 0; i < rc; i++) {
			uint64_t t = evs[i].data.u64;

			if (t >= N_MAXEV || seen[t] || evs[i].events != EPOLLIN)
				fail("edge-triggered, maxevents 2, call %d: {0x%" PRIx64 " %s}: "
				     "unknown or reported twice", k + 1, t,
				     ev_str(evs[i].events, "EPOLL"));
			seen[t] = 1;
		}
		ok("edge-triggered, 5 ready, maxevents 2: call %d returns %d new ones", k + 1,
		   batches[k]);
	}
	ep_none(et, "edge-triggered: all 5 reported, none again");
	/* level-triggered: successive calls round-robin through the ready set */
	memset(seen, 0, sizeof(seen));
	for (int k = 0; k < N_MAXEV; k++) {
		rc = epoll_wait(lt, evs, 1, GUARD_MS);
		if (rc != 1)
			fail("level-triggered, maxevents 1, call %d: expected 1, got %d", k + 1,
			     rc);
		if (evs[0].data.u64 >= N_MAXEV || seen[evs[0].data.u64])
			fail("level-triggered, 5 ready, maxevents 1, call %d: 0x%" PRIx64
			     " again before the others (no round robin)", k + 1,
			     (uint64_t)evs[0].data.u64);
		seen[evs[0].data.u64] = 1;
	}
	ok("level-triggered, 5 ready, maxevents 1: 5 calls report 5 different fds");
	ep_expect(C_EPOLL_WAIT, lt, all, N_MAXEV, "level-triggered: all 5 still ready");
	for (int i = 0; i < N_MAXEV; i++)
		pair_close(&p[i]);
	close(et);
	close(lt);
}

static void case_epoll_close(void)
{
	struct epoll_event ev;
	struct pair p;
	int ep = ep_new(), fd;

	pair_open(&p);
	ep_ctl(ep, EPOLL_CTL_ADD, p.b, EPOLLIN | EPOLLRDHUP, T1);
	send_n(p.a, 1);
	ep_one(ep, T1, EPOLLIN, "a byte arrived");
	recv_n(p.b, NULL, 1);
	fd = p.b;
	close(p.b);
	p.b = -1;
	ep_none(ep, "the registered fd closed (its only reference)");
	MUST(shutdown(p.a, SHUT_WR), "shutdown(SHUT_WR)");
	ep_none(ep, "the peer shuts down: nothing");
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_DEL, fd, &ev), EBADF, "epoll_ctl DEL of the closed fd");
	MUST(dup2(p.a, fd), "dup2 onto the closed fd's number");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev), ENOENT,
		  "epoll_ctl MOD of a new file under the closed fd's number");
	ep_none(ep, "the new file is not in the set");
	close(fd);
	close(ep);
	pair_close(&p);
}

static void case_epoll_dup(void)
{
	const struct want both[2] = { { T1, EPOLLIN }, { T2, EPOLLIN } };
	struct epoll_event ev;
	struct pair p;
	int ep = ep_new(), d, orig;

	pair_open(&p);
	ep_ctl(ep, EPOLL_CTL_ADD, p.b, EPOLLIN, T1);
	orig = p.b;
	d = MUST(dup(p.b), "dup");
	close(p.b);
	p.b = d;
	send_n(p.a, 1);
	ep_one(ep, T1, EPOLLIN,
	       "registered fd closed, a dup keeps the socket open: the registration lives on");
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_DEL, orig, &ev), EBADF, "epoll_ctl DEL of the closed fd");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_DEL, d, &ev), ENOENT, "epoll_ctl DEL of the dup");
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_MOD, d, &ev), ENOENT, "epoll_ctl MOD of the dup");
	ep_ctl(ep, EPOLL_CTL_ADD, d, EPOLLIN, T2);
	ok("epoll_ctl ADD of the dup");
	ep_expect(C_EPOLL_WAIT, ep, both, 2, "one socket, two registrations");
	recv_n(d, NULL, 1);
	ep_none(ep, "read through the dup");
	ep_ctl(ep, EPOLL_CTL_DEL, d, 0, 0);
	send_n(p.a, 1);
	ep_one(ep, T1, EPOLLIN, "after DEL of the dup: the old registration only");
	recv_n(d, NULL, 1);
	close(d);
	p.b = -1;
	ep_none(ep, "the last fd of the socket closed");
	close(ep);
	pair_close(&p);
}

static void case_epoll_eintr(void)
{
	struct pair p, q;
	int idle = ep_new(), ready = ep_new();

	pair_open(&p);
	pair_open(&q);
	ep_ctl(idle, EPOLL_CTL_ADD, p.b, EPOLLIN, T1);
	ep_ctl(ready, EPOLL_CTL_ADD, q.b, EPOLLIN, T2);
	send_n(q.a, 1);
	for (enum wcall c = C_EPOLL_WAIT; c <= C_EPOLL_PWAIT2; c++) {
		check_eintr(c, idle, false);
		check_eintr(c, idle, true);
	}
	check_sigmask(C_EPOLL_PWAIT, idle, ready);
	check_sigmask(C_EPOLL_PWAIT2, idle, ready);
	close(idle);
	close(ready);
	pair_close(&p);
	pair_close(&q);
}

static void case_epoll_timeout(void)
{
	struct epoll_event ev;
	struct pair p;
	int ep = ep_new(), empty = ep_new(), pfd[2];

	pair_open(&p);
	MUST(pipe(pfd), "pipe");
	ep_ctl(ep, EPOLL_CTL_ADD, p.b, EPOLLIN, T1);
	ep_ctl(ep, EPOLL_CTL_ADD, pfd[0], EPOLLIN, T2);
	for (enum wcall c = C_EPOLL_WAIT; c <= C_EPOLL_PWAIT2; c++)
		check_timeout(c, ep, "a connection and a pipe, nothing ready");
	check_timeout(C_EPOLL_WAIT, empty, "an empty set");
	check_eq(epoll_wait(ep, &ev, 1, 0), 0, "epoll_wait timeout 0, nothing ready");
	close(pfd[0]);
	close(pfd[1]);
	close(ep);
	close(empty);
	pair_close(&p);
}

struct drain_arg {
	int fd;
	size_t n;
};

static void act_drain(void *arg)
{
	struct drain_arg *d = arg;
	char buf[IO_CHUNK];
	size_t got = 0;

	while (got < d->n) {
		ssize_t r = recv(d->fd, buf, sizeof(buf), 0);

		if (r <= 0)
			fail_errno(r ? errno : 0, "draining thread: recv after %zu of %zu", got,
				   d->n);
		got += (size_t)r;
	}
}

struct add_arg {
	int ep;
	int fd;
};

static void act_add(void *arg)
{
	struct add_arg *a = arg;

	ep_ctl(a->ep, EPOLL_CTL_ADD, a->fd, EPOLLIN, T4);
}

static void act_close(void *arg)
{
	close(*(int *)arg);
}

static void case_epoll_wake(void)
{
	struct drain_arg da;
	struct add_arg aa;
	struct later lt;
	struct pair p, q, r, s;
	struct epoll_event ev;
	int ep = ep_new(), ep2 = ep_new(), ep3 = ep_new(), ep4 = ep_new(), ep5 = ep_new();
	pid_t pid;

	pair_open(&p);
	ep_ctl(ep, EPOLL_CTL_ADD, p.b, EPOLLIN, T1);
	later_start(&lt, 100, act_send, &p.a);
	ep_one(ep, T1, EPOLLIN, "blocked; another thread sends");
	later_join(&lt, "the sender");
	recv_n(p.b, NULL, 1);

	pid = child_fork();
	if (pid == 0) {
		sleep_ms(100);
		_exit(send(p.a, "f", 1, MSG_NOSIGNAL) == 1 ? 0 : 1);
	}
	ep_one(ep, T1, EPOLLIN, "blocked; a forked child sends");
	check_eq(child_wait(pid, "the sending child"), 0, "the sending child's exit status");
	recv_str(p.b, "f", "the child's byte");

	nonblock(p.a, true);
	ep_ctl(ep2, EPOLL_CTL_ADD, p.a, EPOLLOUT, T2);
	da.fd = p.b;
	da.n = fill(p.a);
	ep_none(ep2, "send side full");
	later_start(&lt, 100, act_drain, &da);
	ep_one(ep2, T2, EPOLLOUT, "blocked on EPOLLOUT; another thread drains the peer");
	later_join(&lt, "the draining thread");

	pair_open(&r);
	ep_ctl(ep4, EPOLL_CTL_ADD, r.b, EPOLLIN | EPOLLRDHUP, T3);
	later_start(&lt, 100, act_close, &r.a);
	ep_one(ep4, T3, EPOLLIN | EPOLLRDHUP, "blocked; another thread closes the peer");
	later_join(&lt, "the closing thread");
	r.a = -1;

	pair_open(&s);
	ep_ctl(ep5, EPOLL_CTL_ADD, s.b, EPOLLIN, T5);
	pid = child_fork();
	if (pid == 0) {
		int n = epoll_wait(ep5, &ev, 1, GUARD_MS);

		_exit(n == 1 && ev.data.u64 == T5 && ev.events == EPOLLIN ? 0 : n == 0 ? 3 : 1);
	}
	sleep_ms(100);
	send_n(s.a, 1);
	check_eq(child_wait(pid, "the waiting child"), 0,
		 "a forked child blocked on the inherited set woke with {T5 EPOLLIN}: exit status");

	pair_open(&q);
	send_n(q.a, 1);
	aa.ep = ep3;
	aa.fd = q.b;
	later_start(&lt, 100, act_add, &aa);
	ep_one(ep3, T4, EPOLLIN, "blocked on an empty set; another thread ADDs a ready fd");
	later_join(&lt, "the adding thread");
	close(ep);
	close(ep2);
	close(ep3);
	close(ep4);
	close(ep5);
	pair_close(&p);
	pair_close(&q);
	pair_close(&r);
	pair_close(&s);
}

/*
 * Lost wake-ups: a thread asleep in epoll_wait (or poll) while another
 * thread re-arms, adds or closes what it waits for. The sleeper's own
 * timeout (WAKE_MS) bounds it; the main thread waits GUARD_MS for it (a
 * wait that would only find the event once its timeout expired lost the
 * wake-up too). No duration is asserted.
 */
#define WAKE_MS		10000
#define WAKE_ROUNDS	3

struct sleeper {
	pthread_t th;
	int fd;			/* the epoll set, or the fd poll()ed for POLLIN */
	bool use_poll;
	int rounds;
	int rc[WAKE_ROUNDS];
	int err[WAKE_ROUNDS];
	struct epoll_event ev[WAKE_ROUNDS];
	short revents[WAKE_ROUNDS];
	sem_t done;		/* posted after each round */
};

static void *sleeper_main(void *arg)
{
	struct sleeper *w = arg;

	for (int i = 0; i < w->rounds; i++) {
		if (w->use_poll) {
			struct pollfd pf = { .fd = w->fd, .events = POLLIN };

			w->rc[i] = poll(&pf, 1, WAKE_MS);
			w->revents[i] = pf.revents;
		} else {
			w->rc[i] = epoll_wait(w->fd, &w->ev[i], 1, WAKE_MS);
		}
		w->err[i] = errno;
		sem_post(&w->done);
	}
	return NULL;
}

/* A thread that sleeps @rounds times on @fd; give it time to fall asleep. */
static void sleeper_start(struct sleeper *w, int fd, bool use_poll, int rounds)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->use_poll = use_poll;
	w->rounds = rounds;
	if (sem_init(&w->done, 0, 0))
		fail_errno(errno, "sem_init");
	thread_start(&w->th, sleeper_main, w);
	sleep_ms(100);
}

/*
 * Round @i of @w ends: its wait must return within GUARD_MS, well before its
 * own WAKE_MS timeout (a wait that found the event only when its timeout
 * expired lost its wake-up too), with 1 and {@tag @ev} (epoll) or revents
 * @ev (poll); 0 is its timeout.
 */
static void sleeper_check(struct sleeper *w, int i, uint64_t tag, uint32_t ev, const char *what)
{
	const char *call = w->use_poll ? "poll" : "epoll_wait";
	struct timespec ts;

	step("%s: round %d of the sleeping thread", what, i);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += GUARD_MS / 1000;
	while (sem_timedwait(&w->done, &ts)) {
		if (errno == ETIMEDOUT)
			hang("%s: the wake-up was lost: the sleeping thread's %s (timeout %d ms) "
			     "not woken within %d ms", what, call, WAKE_MS, GUARD_MS);
		if (errno != EINTR)
			fail_errno(errno, "sem_timedwait");
	}
	if (w->rc[i] == 0)
		hang("%s: the wake-up was lost: %s returned 0 after its %d ms timeout", what, call,
		     WAKE_MS);
	if (w->rc[i] < 0)
		fail_errno(w->err[i], "%s: %s", what, call);
	if (w->use_poll) {
		if (w->rc[i] != 1 || w->revents[i] != (short)ev)
			fail("%s: expected poll 1, revents %s, got %d, revents %s", what,
			     ev_str(ev, "POLL"), w->rc[i], ev_str((uint16_t)w->revents[i], "POLL"));
		ok("%s: poll woken: 1, revents %s", what, ev_str(ev, "POLL"));
		return;
	}
	if (w->rc[i] != 1 || w->ev[i].data.u64 != tag || w->ev[i].events != ev)
		fail("%s: expected 1 {0x%" PRIx64 " %s}, got %d {0x%" PRIx64 " %s}", what, tag,
		     ev_str(ev, "EPOLL"), w->rc[i], (uint64_t)w->ev[i].data.u64,
		     ev_str(w->ev[i].events, "EPOLL"));
	ok("%s: epoll_wait woken: 1 {0x%" PRIx64 " %s}", what, tag, ev_str(ev, "EPOLL"));
}

static void sleeper_join(struct sleeper *w, const char *what)
{
	thread_join(w->th, GUARD_MS, what);
	sem_destroy(&w->done);
}

/* Nonblocking @fd read until EAGAIN: exactly @n bytes were there. */
static void read_to_eagain(int fd, size_t n, const char *what)
{
	char buf[256];
	size_t got = 0;
	ssize_t r;

	step("%s: read fd %d until EAGAIN", what, fd);
	while ((r = recv(fd, buf, sizeof(buf), 0)) > 0)
		got += (size_t)r;
	if (r == 0)
		fail("%s: recv on fd %d: EOF after %zu bytes", what, fd, got);
	if (errno != EAGAIN)
		fail_errno(errno, "%s: recv on fd %d after %zu bytes", what, fd, got);
	check_eq((long long)got, (long long)n, "%s: bytes read before EAGAIN", what);
}

static void case_epoll_mod_wake(void)
{
	struct sleeper w;
	struct pair p;
	int ep = ep_new();

	pair_open(&p);
	nonblock(p.b, true);
	ep_ctl(ep, EPOLL_CTL_ADD, p.b, EPOLLIN | EPOLLONESHOT, T1);
	sleeper_start(&w, ep, false, 3);
	send_n(p.a, 1);
	sleeper_check(&w, 0, T1, EPOLLIN, "EPOLLIN|EPOLLONESHOT, the peer sends");
	sleep_ms(100);		/* the thread is asleep again, the connection disarmed */
	read_to_eagain(p.b, 1, "after the first report");
	ep_ctl(ep, EPOLL_CTL_MOD, p.b, EPOLLIN | EPOLLONESHOT, T2);
	sleep_ms(100);
	send_n(p.a, 1);
	sleeper_check(&w, 1, T2, EPOLLIN,
		      "re-armed by MOD while a thread sleeps on the set, the peer sends");
	sleep_ms(100);
	read_to_eagain(p.b, 1, "after the MOD's report");
	ep_ctl(ep, EPOLL_CTL_DEL, p.b, 0, 0);
	ep_ctl(ep, EPOLL_CTL_ADD, p.b, EPOLLIN | EPOLLONESHOT, T3);
	sleep_ms(100);
	send_n(p.a, 1);
	sleeper_check(&w, 2, T3, EPOLLIN,
		      "DEL and ADD again while a thread sleeps on the set, the peer sends");
	sleeper_join(&w, "the sleeping thread");
	read_to_eagain(p.b, 1, "after the ADD's report");
	ep_none(ep, "disarmed after its report");
	close(ep);
	pair_close(&p);
}

/* A nonblocking connection that carried a byte and was read until EAGAIN. */
static void pair_open_used(struct pair *p)
{
	pair_open(p);
	nonblock(p->b, true);
	send_n(p->a, 1);
	poll1(p->b, POLLIN, POLLIN, "the connection's first byte");
	read_to_eagain(p->b, 1, "the connection used once");
}

static void case_epoll_nested_add(void)
{
	struct sleeper w;
	struct pair p, q;
	int inner = ep_new(), outer = ep_new(), inner2 = ep_new();

	pair_open_used(&p);
	ep_ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN, T2);
	sleeper_start(&w, outer, false, 1);
	ep_ctl(inner, EPOLL_CTL_ADD, p.b, EPOLLIN, T1);
	sleep_ms(100);
	send_n(p.a, 1);
	sleeper_check(&w, 0, T2, EPOLLIN,
		      "asleep on the outer set; a connection added to the inner set, the peer "
		      "sends");
	sleeper_join(&w, "the thread asleep on the outer set");
	ep_one(inner, T1, EPOLLIN, "the inner set reports the connection");
	read_to_eagain(p.b, 1, "the byte");
	ep_none(outer, "the byte read");

	pair_open_used(&q);
	sleeper_start(&w, inner2, true, 1);
	ep_ctl(inner2, EPOLL_CTL_ADD, q.b, EPOLLIN, T3);
	sleep_ms(100);
	send_n(q.a, 1);
	sleeper_check(&w, 0, 0, POLLIN,
		      "poll asleep on an epoll fd; a connection added to the set, the peer sends");
	sleeper_join(&w, "the thread asleep in poll");
	ep_one(inner2, T3, EPOLLIN, "the set reports the connection");
	read_to_eagain(q.b, 1, "the byte");
	close(outer);
	close(inner);
	close(inner2);
	pair_close(&p);
	pair_close(&q);
}

/*
 * The registered fd closed while a dup keeps the connection open (@reuse:
 * its number then names a pipe): a thread asleep on the set is woken with
 * the registration's data when the peer sends.
 */
static void dup_close_wake(bool reuse)
{
	const char *how = reuse ? "its number reused by a pipe" : "its number left closed";
	struct sleeper w;
	struct pair p;
	int ep = ep_new(), orig, d, pfd[2] = { -1, -1 };

	pair_open(&p);
	ep_ctl(ep, EPOLL_CTL_ADD, p.b, EPOLLIN, T5);
	orig = p.b;
	d = MUST(dup(p.b), "dup");
	close(p.b);
	p.b = d;
	if (reuse) {
		MUST(pipe(pfd), "pipe");
		MUST(dup2(pfd[0], orig), "dup2 of the pipe onto the closed fd's number");
		close(pfd[0]);
		pfd[0] = orig;
	}
	sleeper_start(&w, ep, false, 1);
	send_n(p.a, 1);
	sleeper_check(&w, 0, T5, EPOLLIN, reuse ?
		      "registered fd closed, a dup keeps the socket, its number reused by a "
		      "pipe: the peer sends" :
		      "registered fd closed, a dup keeps the socket: the peer sends");
	sleeper_join(&w, "the sleeping thread");
	recv_n(d, NULL, 1);
	ok("%s: the byte read through the dup", how);
	close(d);
	p.b = -1;
	ep_none(ep, "the last fd of the socket closed");
	if (reuse) {
		close(pfd[0]);
		close(pfd[1]);
	}
	close(ep);
	pair_close(&p);
}

static void case_epoll_dup_close_wake(void)
{
	dup_close_wake(false);
	dup_close_wake(true);
}

/* ---- poll, ppoll, select, pselect ---------------------------------------------------- */

/* select over @n fds: which are readable/writable/exceptional must be as given. */
static void select_expect(const int *fds, int n, const bool *rd, const bool *wr,
			  const bool *want_rd, const bool *want_wr, int timeout_ms,
			  const char *what)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	fd_set r, w, x;
	int maxfd = -1, rc, want_rc = 0;

	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_ZERO(&x);
	for (int i = 0; i < n; i++) {
		if (rd[i])
			FD_SET(fds[i], &r);
		if (wr[i])
			FD_SET(fds[i], &w);
		FD_SET(fds[i], &x);
		maxfd = fds[i] > maxfd ? fds[i] : maxfd;
		want_rc += want_rd[i] + want_wr[i];
	}
	step("select: %s", what);
	rc = select(maxfd + 1, &r, &w, &x, &tv);
	if (rc < 0)
		fail_errno(errno, "select: %s", what);
	for (int i = 0; i < n; i++) {
		if (FD_ISSET(fds[i], &r) != want_rd[i] || FD_ISSET(fds[i], &w) != want_wr[i] ||
		    FD_ISSET(fds[i], &x))
			fail("select: %s: fd %d: expected%s%s%s, got%s%s%s%s", what, fds[i],
			     want_rd[i] ? " readable" : "", want_wr[i] ? " writable" : "",
			     want_rd[i] || want_wr[i] ? "" : " nothing",
			     FD_ISSET(fds[i], &r) ? " readable" : "",
			     FD_ISSET(fds[i], &w) ? " writable" : "",
			     FD_ISSET(fds[i], &x) ? " exceptional" : "",
			     FD_ISSET(fds[i], &r) || FD_ISSET(fds[i], &w) || FD_ISSET(fds[i], &x) ?
			     "" : " nothing");
	}
	if (rc != want_rc)
		fail("select: %s: expected %d, got %d", what, want_rc, rc);
	ok("select: %s -> %d", what, want_rc);
}

static void case_poll_mixed(void)
{
	struct sockaddr_in sin;
	struct pair p, q;
	int pfd[2], efd, l, c, s, bad;
	eventfd_t v;
	char ch;

	pair_open(&p);
	pair_open(&q);
	MUST(pipe(pfd), "pipe");
	efd = MUST(eventfd(0, EFD_NONBLOCK), "eventfd");
	l = listener_open(&sin, 8);
	bad = closed_fd();
	{
		struct pollfd f[8] = {
			{ p.b, POLLIN | POLLOUT | POLLRDHUP, 0 }, { q.b, POLLIN, 0 },
			{ pfd[0], POLLIN, 0 }, { efd, POLLIN, 0 }, { l, POLLIN, 0 },
			{ bad, POLLIN, 0 }, { -1, POLLIN, 0 }, { pfd[1], POLLOUT, 0 },
		};
		const short w0[8] = { POLLOUT, 0, 0, 0, 0, POLLNVAL, 0, POLLOUT };
		const short w1[8] = { POLLIN | POLLOUT, 0, POLLIN, POLLIN, POLLIN, POLLNVAL, 0,
				      POLLOUT };
		const int sfd[6] = { p.b, q.b, pfd[0], efd, l, pfd[1] };
		const bool srd[6] = { true, true, true, true, true, false };
		const bool swr[6] = { true, true, false, false, false, true };
		const bool r0[6] = { false, false, false, false, false, false };
		const bool x0[6] = { true, true, false, false, false, true };
		const bool r1[6] = { true, false, true, true, true, false };

		poll_expect(C_POLL, f, 8, 0, 3, w0, "connections, pipe, eventfd, listener, a "
			    "closed fd, fd -1: nothing to read");
		poll_expect(C_PPOLL, f, 8, 0, 3, w0, "the same");
		select_expect(sfd, 6, srd, swr, r0, x0, 0,
			      "the same (no closed fd): nothing to read");
		send_str(p.a, "c");
		MUST(write(pfd[1], "p", 1), "write pipe");
		MUST(eventfd_write(efd, 1), "eventfd_write");
		c = connect_to(&sin);
		poll_expect(C_POLL, f, 8, GUARD_MS, 6, w1, "all four readable");
		poll_expect(C_PPOLL, f, 8, GUARD_MS, 6, w1, "all four readable");
		select_expect(sfd, 6, srd, swr, r1, x0, GUARD_MS, "all four readable");
		recv_str(p.b, "c", "the byte");
		MUST(read(pfd[0], &ch, 1), "read pipe");
		MUST(eventfd_read(efd, &v), "eventfd_read");
		s = accept_one(l, 0);
		poll_expect(C_POLL, f, 8, 0, 3, w0, "all consumed");
	}
	close(c);
	close(s);
	close(l);
	close(efd);
	close(pfd[0]);
	close(pfd[1]);
	pair_close(&p);
	pair_close(&q);
}

static void case_poll_out(void)
{
	const int fds[1] = { 0 };
	const bool yes[1] = { true }, no[1] = { false };
	struct drain_arg da;
	struct later lt;
	struct pair p;
	size_t sent;
	int sfd[1];

	(void)fds;
	pair_open(&p);
	sfd[0] = p.a;
	nonblock(p.a, true);
	poll1(p.a, POLLOUT, POLLOUT, "fresh connection: POLLOUT");
	select_expect(sfd, 1, no, yes, no, yes, 0, "fresh connection: writable");
	sent = fill(p.a);
	ok("send(MSG_DONTWAIT) until EAGAIN");
	poll1(p.a, POLLOUT, 0, "send side full: POLLOUT");
	poll1(p.a, POLLIN | POLLOUT, 0, "send side full: POLLIN|POLLOUT");
	select_expect(sfd, 1, yes, yes, no, no, QUIET_MS, "send side full: not writable");
	drain_n(p.b, sent);
	poll1(p.a, POLLOUT, POLLOUT, "the peer read everything: POLLOUT");
	select_expect(sfd, 1, no, yes, no, yes, GUARD_MS, "the peer read everything: writable");
	da.fd = p.b;
	da.n = fill(p.a);
	later_start(&lt, 100, act_drain, &da);
	poll1(p.a, POLLOUT, POLLOUT, "blocked; another thread drains the peer: POLLOUT");
	later_join(&lt, "the draining thread");
	da.n = fill(p.a);
	later_start(&lt, 100, act_drain, &da);
	select_expect(sfd, 1, no, yes, no, yes, GUARD_MS,
		      "blocked; another thread drains the peer: writable");
	later_join(&lt, "the draining thread");
	pair_close(&p);
}

static void case_poll_rdhup(void)
{
	const bool yes[1] = { true }, no[1] = { false };
	struct later lt;
	struct pair p;
	int sfd[1];

	/* the peer shuts down its sending side, then both sides are shut */
	pair_open(&p);
	MUST(shutdown(p.a, SHUT_WR), "shutdown(SHUT_WR)");
	poll1(p.b, POLLIN | POLLRDHUP, POLLIN | POLLRDHUP,
	      "peer shutdown(SHUT_WR): POLLIN|POLLRDHUP");
	poll1(p.b, POLLIN, POLLIN, "peer shutdown(SHUT_WR): POLLIN");
	poll1(p.b, 0, 0, "peer shutdown(SHUT_WR): no events asked");
	poll1(p.b, POLLIN | POLLOUT | POLLRDHUP, POLLIN | POLLOUT | POLLRDHUP,
	      "peer shutdown(SHUT_WR): POLLIN|POLLOUT|POLLRDHUP");
	sfd[0] = p.b;
	select_expect(sfd, 1, yes, no, yes, no, GUARD_MS, "peer shutdown(SHUT_WR): readable");
	MUST(shutdown(p.b, SHUT_WR), "shutdown(SHUT_WR) of the other side");
	poll1(p.b, POLLIN | POLLOUT | POLLRDHUP, POLLIN | POLLOUT | POLLRDHUP | POLLHUP,
	      "both directions shut down");
	poll1(p.b, 0, POLLHUP, "both directions shut down, no events asked");
	pair_close(&p);

	/* a blocked poll woken by the peer's close */
	pair_open(&p);
	later_start(&lt, 100, act_close, &p.a);
	poll1(p.b, POLLIN | POLLRDHUP, POLLIN | POLLRDHUP,
	      "blocked; another thread closes the peer");
	later_join(&lt, "the closing thread");
	p.a = -1;
	pair_close(&p);
}

/* RST: the peer closes with data it did not read. */
static void case_poll_rst(void)
{
	const bool yes[1] = { true };
	struct pair p;
	int sfd[1];
	char c;

	pair_open(&p);
	send_n(p.a, 10);
	close(p.b);
	p.b = -1;
	poll1(p.a, POLLIN | POLLOUT | POLLRDHUP, POLLIN | POLLOUT | POLLRDHUP | POLLERR | POLLHUP,
	      "the peer closed with 10 bytes unread (RST)");
	poll1(p.a, 0, POLLERR | POLLHUP, "RST, no events asked");
	sfd[0] = p.a;
	select_expect(sfd, 1, yes, yes, yes, yes, GUARD_MS, "RST: readable and writable");
	CHECK_ERR(recv(p.a, &c, 1, 0), ECONNRESET, "recv after the RST");
	poll1(p.a, 0, POLLHUP, "the error consumed, no events asked");
	pair_close(&p);
}

/* Closed fds: POLLNVAL for poll, EBADF for select. */
static void case_poll_nval(void)
{
	struct timeval tv = { 0, 0 };
	struct timespec ts = { 0, 0 };
	struct pair p;
	int bad, rc;
	fd_set s;

	bad = closed_fd();
	poll1(bad, POLLIN, POLLNVAL, "a closed fd: POLLNVAL");
	poll1(bad, 0, POLLNVAL, "a closed fd, no events asked: POLLNVAL");
	{
		struct pollfd f = { .fd = bad, .events = POLLIN };
		const short w = POLLNVAL;

		poll_expect(C_PPOLL, &f, 1, 0, 1, &w, "a closed fd: POLLNVAL");
	}
	FD_ZERO(&s);
	FD_SET(bad, &s);
	rc = select(bad + 1, &s, NULL, NULL, &tv);
	check_err(rc, errno, EBADF, "select, a closed fd in readfds");
	FD_ZERO(&s);
	FD_SET(bad, &s);
	rc = select(bad + 1, NULL, &s, NULL, &tv);
	check_err(rc, errno, EBADF, "select, a closed fd in writefds");
	FD_ZERO(&s);
	FD_SET(bad, &s);
	rc = select(bad + 1, NULL, NULL, &s, &tv);
	check_err(rc, errno, EBADF, "select, a closed fd in exceptfds");
	FD_ZERO(&s);
	FD_SET(bad, &s);
	rc = pselect(bad + 1, &s, NULL, NULL, &ts, NULL);
	check_err(rc, errno, EBADF, "pselect, a closed fd in readfds");

	/* a connection closed: its number is POLLNVAL too */
	pair_open(&p);
	bad = MUST(fcntl(p.b, F_DUPFD, 900), "F_DUPFD");
	close(bad);
	poll1(bad, POLLIN, POLLNVAL, "a closed duplicate of a connection: POLLNVAL");
	close(p.b);
	poll1(p.b, POLLIN, POLLNVAL, "a closed connection: POLLNVAL");
	p.b = -1;
	pair_close(&p);
}

static void case_poll_timeout(void)
{
	struct pair p;
	struct timeval tv;
	struct timespec ts;
	fd_set rd;
	uint64_t t0;
	int rc;

	pair_open(&p);
	for (enum wcall c = C_POLL; c <= C_PSELECT; c++)
		check_timeout(c, p.b, "a connection with nothing to read");
	step("poll of no fds");
	t0 = now_ns();
	check_eq(poll(NULL, 0, TMO_MS), 0, "poll of no fds");
	expect_not_early(t0, TMO_MS, "poll of no fds");

	FD_ZERO(&rd);
	FD_SET(p.b, &rd);
	tv.tv_sec = 0;
	tv.tv_usec = TMO_MS * 1000;
	rc = select(p.b + 1, &rd, NULL, NULL, &tv);
	check_eq(rc, 0, "select timeout");
	check_true(tv.tv_sec == 0 && tv.tv_usec == 0,
		   "select updates the timeout to what is left: {0, 0} after a timeout");
	check_true(!FD_ISSET(p.b, &rd), "select clears the fd set on timeout");
	FD_ZERO(&rd);
	FD_SET(p.b, &rd);
	ts.tv_sec = 0;
	ts.tv_nsec = TMO_MS * 1000000l;
	check_eq(pselect(p.b + 1, &rd, NULL, NULL, &ts, NULL), 0, "pselect timeout");
	check_true(ts.tv_sec == 0 && ts.tv_nsec == TMO_MS * 1000000l,
		   "pselect leaves its timeout unchanged");
	{
		struct pollfd f = { .fd = p.b, .events = POLLIN };

		ts.tv_sec = 0;
		ts.tv_nsec = TMO_MS * 1000000l;
		check_eq(ppoll(&f, 1, &ts, NULL), 0, "ppoll timeout");
		check_true(ts.tv_sec == 0 && ts.tv_nsec == TMO_MS * 1000000l,
			   "ppoll leaves its timeout unchanged");
	}
	send_n(p.a, 1);
	FD_ZERO(&rd);
	FD_SET(p.b, &rd);
	tv.tv_sec = GUARD_MS / 1000;
	tv.tv_usec = 0;
	check_eq(select(p.b + 1, &rd, NULL, NULL, &tv), 1, "select, a byte to read");
	check_true(tv.tv_sec * 1000000ll + tv.tv_usec <= GUARD_MS * 1000ll,
		   "select: the time left is at most the timeout given");
	pair_close(&p);
}

static void case_poll_eintr(void)
{
	struct pair p;

	pair_open(&p);
	for (enum wcall c = C_POLL; c <= C_PSELECT; c++) {
		check_eintr(c, p.b, false);
		check_eintr(c, p.b, true);
	}
	pair_close(&p);
}

static void case_poll_sigmask(void)
{
	struct pair p, q;

	pair_open(&p);
	pair_open(&q);
	send_n(q.a, 1);
	check_sigmask(C_PPOLL, p.b, q.b);
	check_sigmask(C_PSELECT, p.b, q.b);
	pair_close(&p);
	pair_close(&q);
}

/* ---- dup, dup2, dup3, F_DUPFD, F_DUPFD_CLOEXEC -------------------------------------- */

#define N_DUPS	6
#define DUP_AT	500	/* dup2/dup3 targets: DUP_AT, DUP_AT + 1; F_DUPFD from DUP_AT + 2 */

static const char *const dup_how[N_DUPS] = {
	"the original", "dup", "dup2", "dup3(O_CLOEXEC)", "F_DUPFD", "F_DUPFD_CLOEXEC",
};

/* @fd and 5 duplicates of it, in the order of dup_how. */
static void make_dups(int fd, int *d)
{
	for (int i = DUP_AT; i < DUP_AT + 2; i++)
		if (fcntl(i, F_GETFD) >= 0)
			fail("fd %d is open already: cannot use it as a dup2 target", i);
	d[0] = fd;
	d[1] = MUST(dup(fd), "dup");
	d[2] = MUST(dup2(fd, DUP_AT), "dup2");
	d[3] = MUST(dup3(fd, DUP_AT + 1, O_CLOEXEC), "dup3");
	d[4] = MUST(fcntl(fd, F_DUPFD, DUP_AT + 2), "F_DUPFD");
	d[5] = MUST(fcntl(fd, F_DUPFD_CLOEXEC, DUP_AT + 2), "F_DUPFD_CLOEXEC");
}

static void same_names(int a, int b, const char *what)
{
	struct sockaddr_in x, y;
	socklen_t lx = sizeof(x), ly = sizeof(y);

	MUST(getsockname(a, (struct sockaddr *)&x, &lx), "getsockname");
	MUST(getsockname(b, (struct sockaddr *)&y, &ly), "getsockname");
	if (lx != ly || memcmp(&x, &y, lx))
		fail("%s: getsockname differs", what);
	lx = sizeof(x);
	ly = sizeof(y);
	MUST(getpeername(a, (struct sockaddr *)&x, &lx), "getpeername");
	MUST(getpeername(b, (struct sockaddr *)&y, &ly), "getpeername");
	if (lx != ly || memcmp(&x, &y, lx))
		fail("%s: getpeername differs", what);
	ok("%s: same getsockname and getpeername", what);
}

static void case_dup_stream(void)
{
	const int cloexec[N_DUPS] = { 0, 0, 0, FD_CLOEXEC, 0, FD_CLOEXEC };
	struct sockaddr_in sin;
	struct pair p;
	int d[N_DUPS], l, a, s, sd;
	char buf[N_DUPS + 1], c;

	pair_open(&p);
	make_dups(p.a, d);
	check_eq(d[2], DUP_AT, "dup2 returns its target");
	check_eq(d[3], DUP_AT + 1, "dup3 returns its target");
	check_true(d[4] >= DUP_AT + 2 && d[5] >= DUP_AT + 2 && d[4] != d[5],
		   "F_DUPFD and F_DUPFD_CLOEXEC: distinct fds >= their minimum");
	for (int i = 0; i < N_DUPS; i++)
		check_eq(fcntl(d[i], F_GETFD), cloexec[i], "%s: F_GETFD", dup_how[i]);
	for (int i = 0; i < N_DUPS; i++) {
		c = (char)('0' + i);
		if (send(d[i], &c, 1, MSG_NOSIGNAL) != 1)
			fail_errno(errno, "send through %s", dup_how[i]);
	}
	ok("one byte sent through each of the 6 fds");
	recv_n(p.b, buf, N_DUPS);
	buf[N_DUPS] = '\0';
	if (strcmp(buf, "012345"))
		fail("bytes sent through the 6 fds in turn: expected \"012345\", got \"%s\"", buf);
	ok("the peer received them in order: \"012345\"");
	send_str(p.b, "abcdef");
	for (int i = 0; i < N_DUPS; i++) {
		recv_n(d[i], &c, 1);
		if (c != 'a' + i)
			fail("recv through %s: expected '%c', got '%c'", dup_how[i], 'a' + i, c);
	}
	ok("one byte received through each of the 6 fds, in stream order");
	for (int i = 1; i < N_DUPS; i++)
		same_names(d[0], d[i], dup_how[i]);

	MUST(fcntl(d[1], F_SETFD, FD_CLOEXEC), "F_SETFD");
	check_eq(fcntl(d[1], F_GETFD), FD_CLOEXEC, "F_SETFD FD_CLOEXEC on the dup: the dup");
	check_eq(fcntl(d[0], F_GETFD), 0, "F_SETFD FD_CLOEXEC on the dup: the original");
	MUST(fcntl(d[2], F_SETFL, O_NONBLOCK), "F_SETFL");
	check_true(fcntl(d[0], F_GETFL) & O_NONBLOCK,
		   "F_SETFL O_NONBLOCK on the dup2: the original shares it");
	expect_eagain(d[0], "the original, nonblocking through its dup2");
	MUST(fcntl(d[0], F_SETFL, 0), "F_SETFL");
	check_true(!(fcntl(d[5], F_GETFL) & O_NONBLOCK),
		   "F_SETFL 0 on the original: F_DUPFD_CLOEXEC's fd blocking again");

	l = listener_open(&sin, 8);
	a = connect_to(&sin);
	s = accept_one(l, SOCK_CLOEXEC);
	check_eq(fcntl(s, F_GETFD), FD_CLOEXEC, "accept4(SOCK_CLOEXEC): F_GETFD");
	sd = MUST(dup(s), "dup");
	check_eq(fcntl(sd, F_GETFD), 0, "its dup: F_GETFD");
	close(sd);
	close(s);
	close(a);
	close(l);
	for (int i = 1; i < N_DUPS; i++)
		close(d[i]);
	pair_close(&p);
}

static void case_dup_errors(void)
{
	struct pair p;
	int bad;

	pair_open(&p);
	bad = closed_fd();
	CHECK_ERR(dup(bad), EBADF, "dup of a closed fd");
	check_true(dup2(p.a, p.a) == p.a, "dup2(fd, fd) returns fd");
	CHECK_ERR(dup3(p.a, p.a, 0), EINVAL, "dup3(fd, fd, 0)");
	CHECK_ERR(fcntl(p.a, F_DUPFD, -1), EINVAL, "F_DUPFD from -1");
	CHECK_ERR(dup2(bad, DUP_AT + 40), EBADF, "dup2 of a closed fd");
	CHECK_ERR(dup2(p.a, -1), EBADF, "dup2 onto -1");
	CHECK_ERR(dup3(p.a, -1, 0), EBADF, "dup3 onto -1");
	CHECK_ERR(dup3(p.a, DUP_AT + 40, 1), EINVAL, "dup3 with flags 1");
	CHECK_ERR(fcntl(DUP_AT + 40, F_GETFD), EBADF, "dup3 with flags 1 made no fd");
	send_str(p.a, "e");
	recv_str(p.b, "e", "the connection still works");
	pair_close(&p);
}

static void case_dup_close(void)
{
	struct pair p, q;
	int d[N_DUPS], go[2], d2;
	pid_t pid;
	char c;

	/* 6 fds: the peer sees EOF only when the last one is closed */
	pair_open(&p);
	make_dups(p.a, d);
	for (int i = 0; i < N_DUPS - 1; i++) {
		char want[2] = { (char)('A' + i), '\0' };

		close(d[i]);
		expect_eagain(p.b, "no EOF while a duplicate is open");
		poll1(p.b, POLLIN | POLLRDHUP, 0, "no POLLIN|POLLRDHUP while a duplicate is open");
		send_str(d[i + 1], want);
		recv_str(p.b, want, "a still-open duplicate sends");
	}
	close(d[N_DUPS - 1]);
	p.a = -1;
	expect_eof(p.b, "the last of the 6 fds closed");
	pair_close(&p);

	/* shutdown through one duplicate acts on the socket */
	pair_open(&p);
	d2 = MUST(dup(p.a), "dup");
	MUST(shutdown(d2, SHUT_WR), "shutdown(SHUT_WR) through the dup");
	expect_eof(p.b, "shutdown(SHUT_WR) through a dup, both fds open");
	send_str(p.b, "y");
	recv_str(p.a, "y", "the original still receives");
	close(d2);
	pair_close(&p);

	/* dup2 onto an open connection closes that connection */
	pair_open(&p);
	pair_open(&q);
	MUST(dup2(p.a, q.a), "dup2 onto another connection's fd");
	expect_eof(q.b, "dup2 replaced the connection's only fd: its peer sees EOF");
	send_str(q.a, "z");
	recv_str(p.b, "z", "the replaced fd number now sends on the other connection");
	pair_close(&p);
	pair_close(&q);

	/* a forked child holds the connection: the parent's close is not the last */
	pair_open(&p);
	MUST(pipe(go), "pipe");
	pid = child_fork();
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(send(p.a, "k", 1, MSG_NOSIGNAL) == 1 ? 0 : 1);
	}
	close(go[0]);
	close(p.a);
	p.a = -1;
	expect_eagain(p.b, "the parent closed, the child holds the connection: no EOF");
	MUST(write(go[1], "g", 1), "write pipe");
	recv_str(p.b, "k", "the child sends");
	check_eq(child_wait(pid, "the child"), 0, "the child's exit status");
	expect_eof(p.b, "the child exited: last holder gone");
	close(go[1]);
	pair_close(&p);
}

/* ---- threads ------------------------------------------------------------------------ */

#define XFER_BYTES	(4u << 20)

static inline uint8_t pat_byte(uint64_t stream, uint64_t pos)
{
	uint64_t x = (pos + 1) * 0x9e3779b97f4a7c15ull ^ stream * 0xff51afd7ed558ccdull;

	x ^= x >> 29;
	return (uint8_t)(x >> 56 ^ x >> 13);
}

struct xfer {
	pthread_t th;
	int fd;
	int ep;		/* -1: blocking I/O; else this thread's own edge-triggered set */
	bool writer;
	uint64_t stream;
	uint64_t done;
	uint64_t hash;
	uint64_t waits;
};

static void xfer_wait(struct xfer *x)
{
	struct epoll_event ev;
	int rc;

	do
		rc = epoll_wait(x->ep, &ev, 1, GUARD_MS);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		fail_errno(errno, "%s thread: epoll_wait", x->writer ? "writer" : "reader");
	if (rc == 0)
		hang("%s thread (fd %d, edge-triggered %s): no event for %d ms after %" PRIu64
		     " of %u bytes", x->writer ? "writer" : "reader", x->fd,
		     x->writer ? "EPOLLOUT" : "EPOLLIN", GUARD_MS, x->done, XFER_BYTES);
	x->waits++;
}

static void *xfer_main(void *arg)
{
	struct xfer *x = arg;
	static __thread uint8_t buf[IO_CHUNK];
	uint64_t rng = x->stream * 0x2545f4914f6cdd1dull + 1;

	x->hash = 0xcbf29ce484222325ull;
	while (x->done < XFER_BYTES) {
		size_t len;
		ssize_t r;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		len = 1 + (size_t)(rng % IO_CHUNK);
		if (len > XFER_BYTES - x->done)
			len = XFER_BYTES - x->done;
		if (x->writer) {
			for (size_t i = 0; i < len; i++)
				buf[i] = pat_byte(x->stream, x->done + i);
			r = send(x->fd, buf, len, MSG_NOSIGNAL);
		} else {
			r = recv(x->fd, buf, len, 0);
		}
		if (r < 0 && errno == EAGAIN && x->ep >= 0) {
			xfer_wait(x);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail_errno(errno, "%s thread, fd %d, after %" PRIu64 " bytes",
				   x->writer ? "writer" : "reader", x->fd, x->done);
		if (r == 0)
			fail("reader thread, fd %d: EOF after %" PRIu64 " of %u bytes", x->fd,
			     x->done, XFER_BYTES);
		for (ssize_t i = 0; i < r; i++) {
			if (!x->writer && buf[i] != pat_byte(x->stream, x->done + (uint64_t)i))
				fail("reader thread, fd %d: byte %" PRIu64 " is 0x%02x, expected "
				     "0x%02x (stream corrupted)", x->fd, x->done + (uint64_t)i,
				     buf[i], pat_byte(x->stream, x->done + (uint64_t)i));
			x->hash = (x->hash ^ buf[i]) * 0x100000001b3ull;
		}
		x->done += (uint64_t)r;
	}
	return NULL;
}

/* On each end one thread writes and one reads, at the same time, XFER_BYTES each way. */
static void duplex(bool use_epoll)
{
	struct xfer x[4];
	struct pair p;

	pair_open(&p);
	memset(x, 0, sizeof(x));
	x[0].fd = p.a, x[0].writer = true, x[0].stream = 1;	/* a -> b */
	x[1].fd = p.b, x[1].writer = false, x[1].stream = 1;
	x[2].fd = p.b, x[2].writer = true, x[2].stream = 2;	/* b -> a */
	x[3].fd = p.a, x[3].writer = false, x[3].stream = 2;
	if (use_epoll) {
		nonblock(p.a, true);
		nonblock(p.b, true);
	}
	for (int i = 0; i < 4; i++) {
		x[i].ep = -1;
		if (use_epoll) {
			x[i].ep = ep_new();
			ep_ctl(x[i].ep, EPOLL_CTL_ADD, x[i].fd,
			       (x[i].writer ? EPOLLOUT : EPOLLIN) | EPOLLET, (uint64_t)i);
		}
	}
	for (int i = 0; i < 4; i++)
		thread_start(&x[i].th, xfer_main, &x[i]);
	for (int i = 0; i < 4; i++)
		thread_join(x[i].th, JOIN_MS, x[i].writer ? "a writer thread" : "a reader thread");
	for (int d = 0; d < 2; d++) {
		struct xfer *w = &x[2 * d], *r = &x[2 * d + 1];

		if (w->done != r->done || w->hash != r->hash)
			fail("%s: sent %" PRIu64 " bytes hash %016" PRIx64 ", received %" PRIu64
			     " hash %016" PRIx64, d ? "b -> a" : "a -> b", w->done, w->hash,
			     r->done, r->hash);
		ok("%s: %u bytes, a writer and a reader thread on each end%s, same checksum",
		   d ? "b -> a" : "a -> b", XFER_BYTES,
		   use_epoll ? " (nonblocking, each its own EPOLLET set)" : "");
	}
	printf("info %s: epoll waits %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
	       case_name, x[0].waits, x[1].waits, x[2].waits, x[3].waits);
	for (int i = 0; i < 4; i++)
		if (x[i].ep >= 0)
			close(x[i].ep);
	pair_close(&p);
}

static void case_threads_duplex(void)
{
	duplex(false);
}

static void case_threads_duplex_epoll(void)
{
	duplex(true);
}

#define ACC_THREADS	4
#define ACC_CONNS	32
#define ACC_STOP	0xffffffffu

struct acc_shared {
	int l;
	pthread_mutex_t mu;
	int by[ACC_CONNS];	/* which thread (1-based) accepted connection i */
	int fd[ACC_CONNS];
	int accepted;
	int per_thread[ACC_THREADS];
};

struct acc_thread {
	pthread_t th;
	int id;
	struct acc_shared *sh;
};

static void *acc_main(void *arg)
{
	struct acc_thread *t = arg;
	struct acc_shared *sh = t->sh;

	for (;;) {
		uint32_t idx;
		int fd = accept(sh->l, NULL, NULL);

		if (fd < 0)
			fail_errno(errno, "accept thread %d", t->id);
		if (recv(fd, &idx, sizeof(idx), MSG_WAITALL) != sizeof(idx))
			fail_errno(errno, "accept thread %d: recv of the index", t->id);
		if (idx == ACC_STOP) {
			close(fd);
			return NULL;
		}
		pthread_mutex_lock(&sh->mu);
		if (idx >= ACC_CONNS || sh->by[idx])
			fail("accept thread %d: connection %u %s", t->id, idx,
			     idx >= ACC_CONNS ? "unknown" : "accepted twice");
		sh->by[idx] = t->id + 1;
		sh->fd[idx] = fd;
		sh->accepted++;
		sh->per_thread[t->id]++;
		pthread_mutex_unlock(&sh->mu);
	}
}

static void case_threads_accept(void)
{
	static struct acc_shared sh;
	struct acc_thread t[ACC_THREADS];
	struct sockaddr_in sin, x, y;
	int c[ACC_CONNS], stop[ACC_THREADS];
	uint64_t end;

	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.mu, NULL);
	sh.l = listener_open(&sin, 64);
	for (int i = 0; i < ACC_THREADS; i++) {
		t[i].id = i;
		t[i].sh = &sh;
		thread_start(&t[i].th, acc_main, &t[i]);
	}
	sleep_ms(100);
	for (uint32_t i = 0; i < ACC_CONNS; i++) {
		c[i] = connect_to(&sin);
		if (send(c[i], &i, sizeof(i), MSG_NOSIGNAL) != sizeof(i))
			fail_errno(errno, "send index %u", i);
	}
	step("%d connections accepted by %d threads", ACC_CONNS, ACC_THREADS);
	end = now_ns() + (uint64_t)GUARD_MS * NSEC_PER_MS;
	for (;;) {
		int n;

		pthread_mutex_lock(&sh.mu);
		n = sh.accepted;
		pthread_mutex_unlock(&sh.mu);
		if (n == ACC_CONNS)
			break;
		if (now_ns() > end)
			hang("%d of %d connections accepted by %d threads blocked in accept after "
			     "%d ms", n, ACC_CONNS, ACC_THREADS, GUARD_MS);
		sleep_ms(1);
	}
	ok("%d connects, %d threads blocked in accept: %d accepts", ACC_CONNS, ACC_THREADS,
	   ACC_CONNS);
	for (int i = 0; i < ACC_THREADS; i++) {
		uint32_t s = ACC_STOP;

		stop[i] = connect_to(&sin);
		if (send(stop[i], &s, sizeof(s), MSG_NOSIGNAL) != sizeof(s))
			fail_errno(errno, "send stop");
	}
	for (int i = 0; i < ACC_THREADS; i++)
		thread_join(t[i].th, GUARD_MS, "an accept thread");
	ok("each thread took one stop connection and ended");
	n_pairs += ACC_CONNS + ACC_THREADS;
	for (int i = 0; i < ACC_CONNS; i++) {
		socklen_t lx = sizeof(x), ly = sizeof(y);

		if (!sh.by[i])
			fail("connection %d was never accepted", i);
		for (int j = 0; j < i; j++)
			if (sh.fd[j] == sh.fd[i])
				fail("connections %d and %d accepted as the same fd %d", j, i,
				     sh.fd[i]);
		MUST(getsockname(c[i], (struct sockaddr *)&x, &lx), "getsockname");
		MUST(getpeername(sh.fd[i], (struct sockaddr *)&y, &ly), "getpeername");
		if (x.sin_port != y.sin_port)
			fail("connection %d: accepted fd's peer port %u, the client's port %u", i,
			     ntohs(y.sin_port), ntohs(x.sin_port));
	}
	ok("every connection accepted once, on distinct fds, matching its client");
	printf("info %s: accepts per thread %d %d %d %d\n", case_name, sh.per_thread[0],
	       sh.per_thread[1], sh.per_thread[2], sh.per_thread[3]);
	for (int i = 0; i < ACC_CONNS; i++) {
		close(c[i]);
		close(sh.fd[i]);
	}
	for (int i = 0; i < ACC_THREADS; i++)
		close(stop[i]);
	close(sh.l);
	pthread_mutex_destroy(&sh.mu);
}

struct blocked_recv {
	pthread_t th;
	int fd;
	ssize_t rc;
	int err;
};

static void *blocked_recv_main(void *arg)
{
	struct blocked_recv *b = arg;
	char c;

	b->rc = recv(b->fd, &c, 1, 0);
	b->err = errno;
	return NULL;
}

static void blocked_recv_check(struct blocked_recv *b, ssize_t want, int want_err,
			       const char *what)
{
	thread_join(b->th, GUARD_MS, what);
	if (b->rc != want || (want < 0 && b->err != want_err))
		fail("%s: the blocked recv returned %zd %s, expected %zd %s", what, b->rc,
		     b->rc < 0 ? errname(b->err) : "", want, want < 0 ? errname(want_err) : "");
	ok("%s: the blocked recv returns %zd%s%s", what, want, want < 0 ? " " : "",
	   want < 0 ? errname(want_err) : "");
}

static void case_threads_recv_wake(void)
{
	struct linger lg = { 1, 0 };
	struct blocked_recv b;
	struct pair p;

	pair_open(&p);
	b.fd = p.b;
	thread_start(&b.th, blocked_recv_main, &b);
	sleep_ms(100);
	MUST(shutdown(p.b, SHUT_RD), "shutdown(SHUT_RD)");
	blocked_recv_check(&b, 0, 0, "another thread does shutdown(SHUT_RD)");
	send_str(p.b, "s");
	recv_str(p.a, "s", "after shutdown(SHUT_RD) the socket still sends");
	pair_close(&p);

	pair_open(&p);
	b.fd = p.b;
	thread_start(&b.th, blocked_recv_main, &b);
	sleep_ms(100);
	close(p.a);
	p.a = -1;
	blocked_recv_check(&b, 0, 0, "the peer closes");
	pair_close(&p);

	pair_open(&p);
	b.fd = p.b;
	thread_start(&b.th, blocked_recv_main, &b);
	sleep_ms(100);
	MUST(shutdown(p.a, SHUT_WR), "shutdown(SHUT_WR)");
	blocked_recv_check(&b, 0, 0, "the peer does shutdown(SHUT_WR)");
	pair_close(&p);

	pair_open(&p);
	b.fd = p.b;
	thread_start(&b.th, blocked_recv_main, &b);
	sleep_ms(100);
	send_str(p.a, "d");
	blocked_recv_check(&b, 1, 0, "the peer sends a byte");
	pair_close(&p);

	pair_open(&p);
	b.fd = p.b;
	thread_start(&b.th, blocked_recv_main, &b);
	sleep_ms(100);
	MUST(setsockopt(p.a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), "SO_LINGER");
	close(p.a);
	p.a = -1;
	blocked_recv_check(&b, -1, ECONNRESET, "the peer closes with SO_LINGER {1, 0} (RST)");
	pair_close(&p);
}

/* ---- fork and exec ------------------------------------------------------------------ */

/*
 * A forked child prints no checks (the "ok" lines are the test process's
 * alone): it makes raw calls and reports through its exit status, one code
 * per step that can fail, which the test process checks.
 */
static bool c_send(int fd, const void *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = send(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		done += (size_t)r;
	}
	return true;
}

/* Exactly @n bytes, never more: false on an error or EOF before them. */
static bool c_recv(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, (char *)buf + got, n - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

/* One byte from a pipe (the go signal): false on EOF or an error. */
static bool c_go(int fd)
{
	ssize_t r;
	char c;

	do
		r = read(fd, &c, 1);
	while (r < 0 && errno == EINTR);
	return r == 1;
}

/* The test process: all of @buf, blocking. */
static void send_buf(int fd, const void *buf, size_t n, const char *what)
{
	step("%s: send %zu bytes on fd %d", what, n, fd);
	if (!c_send(fd, buf, n))
		fail_errno(errno, "%s: send %zu bytes on fd %d", what, n, fd);
}

/* The test process: a go byte for the child reading pipe end @fd. */
static void go(int fd, const char *what)
{
	step("%s: the go byte", what);
	if (write(fd, "g", 1) != 1)
		fail_errno(errno, "%s: write the go byte", what);
}

/* The test process: @n bytes from child @pid through a pipe, else FAIL (with its status). */
static void from_child(int fd, void *buf, size_t n, pid_t pid, const char *what)
{
	size_t got = 0;

	step("%s: read the child's pipe", what);
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			fail("%s: the child's pipe gave %s after %zu of %zu bytes (the child's "
			     "exit status: %d)", what, r ? "an error" : "EOF", got, n,
			     child_wait(pid, what));
		got += (size_t)r;
	}
}

/* Orphans reparented to this process, which can then reap them. */
static void subreaper(bool on)
{
	MUST(prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0), "PR_SET_CHILD_SUBREAPER %d",
	     on);
}

/* pair_open(), the accepted end made by accept4(@flags). */
static void pair_open_accept(struct pair *p, int flags)
{
	struct sockaddr_in sin;
	int l = listener_open(&sin, 8);

	p->a = connect_to(&sin);
	p->b = accept_one(l, flags);
	close(l);
}

#define ORDER_TURNS	6
#define ORDER_MAX	3000
#define ORDER_CHILD	"for the child: 0123456789"
#define ORDER_PARENT	"for the parent"

/* Turn @i's bytes into @buf, their count returned (the parent's turns even, the child's odd). */
static size_t order_fill(int i, char *buf)
{
	size_t n = i % 3 == 2 ? ORDER_MAX : 16 + (size_t)i;

	for (size_t k = 0; k < n; k++)
		buf[k] = (char)pat_byte(100 + (uint64_t)i, k);
	return n;
}

static const char *order_who(int i)
{
	return i % 2 ? "child" : "parent";
}

static void case_fork_order(void)
{
	char buf[ORDER_MAX], got[ORDER_MAX], c;
	int to_child[2], to_parent[2];
	struct pair p;
	pid_t pid;

	pair_open(&p);
	MUST(pipe(to_child), "pipe");
	MUST(pipe(to_parent), "pipe");
	pid = child_fork();
	if (pid == 0) {
		close(to_child[1]);
		close(to_parent[0]);
		close(p.b);
		for (int i = 1; i < ORDER_TURNS; i += 2) {
			size_t n = order_fill(i, buf);

			if (!c_go(to_child[0]))
				_exit(10);
			if (!c_send(p.a, buf, n))
				_exit(11);
			if (write(to_parent[1], "d", 1) != 1)
				_exit(12);
		}
		if (!c_go(to_child[0]))
			_exit(13);
		if (!c_recv(p.a, got, strlen(ORDER_CHILD)))
			_exit(14);
		if (memcmp(got, ORDER_CHILD, strlen(ORDER_CHILD)))
			_exit(15);
		if (write(to_parent[1], "d", 1) != 1)
			_exit(16);
		_exit(0);
	}
	close(to_child[0]);
	close(to_parent[1]);
	for (int i = 0; i < ORDER_TURNS; i += 2) {
		send_buf(p.a, buf, order_fill(i, buf), "the parent's turn");
		go(to_child[1], "the child's turn");
		from_child(to_parent[0], &c, 1, pid, "the child's turn");
	}
	ok("%d turns on one end, the parent's and the child's in turn", ORDER_TURNS);
	for (int i = 0; i < ORDER_TURNS; i++) {
		size_t n = order_fill(i, buf);

		recv_n(p.b, got, n);
		if (memcmp(got, buf, n))
			fail("turn %d (the %s's): the peer read other bytes", i, order_who(i));
		ok("turn %d (the %s's, %zu bytes): the peer read them in the order written", i,
		   order_who(i), n);
	}
	expect_eagain(p.b, "the peer read every turn: nothing more");

	/* the peer answers both in one send: the child reads its part, then the parent */
	send_str(p.b, ORDER_CHILD ORDER_PARENT);
	go(to_child[1], "the child reads its part");
	from_child(to_parent[0], &c, 1, pid, "the child reads its part");
	recv_str(p.a, ORDER_PARENT, "after the child read its part, the parent reads the rest");
	expect_eagain(p.a, "both parts read: nothing more");
	check_eq(child_wait(pid, "the child"), 0,
		 "the child's exit status (its turns sent, its part read first and whole)");
	expect_eagain(p.b, "the child exited, the parent still holds the end: no EOF");
	close(p.a);
	p.a = -1;
	expect_eof(p.b, "the parent closed the last copy");
	close(to_child[1]);
	close(to_parent[0]);
	pair_close(&p);
}

#define C2_SAYS		"from C2"

static void case_fork_parent_exits(void)
{
	int pids[2], go2[2];
	struct pair p;
	pid_t c1, c2 = 0;

	pair_open(&p);
	subreaper(true);
	MUST(pipe(pids), "pipe");
	MUST(pipe(go2), "pipe");
	c1 = child_fork();
	if (c1 == 0) {
		pid_t g;

		close(pids[0]);
		close(go2[1]);
		close(p.b);
		fflush(stdout);
		fflush(stderr);
		g = fork();
		if (g < 0)
			_exit(10);
		if (g == 0) {
			alarm(ALARM_S);
			close(pids[1]);
			if (!c_go(go2[0]))
				_exit(20);
			if (!c_send(p.a, C2_SAYS, strlen(C2_SAYS)))
				_exit(21);
			if (!c_go(go2[0]))
				_exit(22);
			_exit(0);
		}
		if (write(pids[1], &g, sizeof(g)) != (ssize_t)sizeof(g))
			_exit(11);
		_exit(0);	/* without closing the connection */
	}
	close(pids[1]);
	close(go2[0]);
	close(p.a);
	p.a = -1;
	from_child(pids[0], &c2, sizeof(c2), c1, "C2's pid from C1");
	check_eq(child_wait(c1, "C1"), 0, "C1 forked C2 and exited without closing the connection");
	expect_eagain(p.b, "C1 exited, C2 holds the connection: no data, no EOF");
	go(go2[1], "C2 sends");
	recv_str(p.b, C2_SAYS, "C2 sends on the connection its exited parent left it");
	expect_eagain(p.b, "C2 still runs: no EOF");
	go(go2[1], "C2 exits");
	check_eq(child_wait(c2, "C2 (reparented to this process)"), 0, "C2's exit status");
	expect_eof(p.b, "C2 exited: the last holder is gone");
	subreaper(false);
	close(pids[0]);
	close(go2[1]);
	pair_close(&p);
}

#define DAEMON_SAYS	"from the daemon"

static void case_fork_daemon(void)
{
	struct pair p;
	pid_t pid, d = 0;
	int pids[2];

	pair_open(&p);
	subreaper(true);
	MUST(pipe(pids), "pipe");
	pid = child_fork();
	if (pid == 0) {
		pid_t me;
		char c;

		close(pids[0]);
		close(p.b);
		if (daemon(1, 1))
			_exit(10);
		/* the daemon: its parent _exit()ed inside daemon() */
		alarm(ALARM_S);
		me = getpid();
		if (getsid(0) != me)
			_exit(20);
		if (write(pids[1], &me, sizeof(me)) != (ssize_t)sizeof(me))
			_exit(21);
		close(pids[1]);
		if (!c_send(p.a, DAEMON_SAYS, strlen(DAEMON_SAYS)))
			_exit(22);
		if (!c_recv(p.a, &c, 1))
			_exit(23);
		_exit(c == 'r' ? 0 : 24);
	}
	close(pids[1]);
	close(p.a);
	p.a = -1;
	check_eq(child_wait(pid, "daemon()'s parent"), 0,
		 "the child called daemon(1, 1): the daemon's parent exited 0");
	from_child(pids[0], &d, sizeof(d), pid, "the daemon's pid");
	recv_str(p.b, DAEMON_SAYS, "the daemon sends on the inherited connection");
	expect_eagain(p.b, "the daemon waits for the reply: no EOF");
	send_str(p.b, "r");
	check_eq(child_wait(d, "the daemon (reparented to this process)"), 0,
		 "the daemon's exit status (a session leader; it read the reply)");
	expect_eof(p.b, "the daemon exited: the last holder is gone");
	subreaper(false);
	close(pids[0]);
	pair_close(&p);
}

/* ---- exec ---------------------------------------------------------------------------- */

#define CAT_BIN		"/bin/cat"
#define CAT_HELLO	"hello, cat\n"
#define CAT_BYTES	(64u << 10)	/* patterned lines through cat */
#define CAT_BATCH	(8u << 10)	/* each read back before the next: no full buffers */
#define CAT_LINE	64

extern char **environ;

static char *const cat_argv[] = { (char *)"cat", NULL };

static uint32_t fnv1a(uint32_t h, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)buf[i]) * 16777619u;
	return h;
}

/*
 * The peer's side of /bin/cat (pid @pid) serving the other end on its stdin
 * and stdout: a line, then CAT_BYTES of patterned lines (each echoed batch
 * compared, both directions checksummed); shutdown(SHUT_WR): cat reads EOF
 * and exits, its end closes (EOF here), its exit status is 0.
 */
static void cat_exchange(int fd, pid_t pid, const char *how)
{
	static char out[CAT_BATCH], in[CAT_BATCH];
	uint32_t h_out = 2166136261u, h_in = 2166136261u;
	size_t total = 0;
	char what[256];

	send_buf(fd, CAT_HELLO, strlen(CAT_HELLO), "a line to cat");
	recv_n(fd, in, strlen(CAT_HELLO));
	check_true(!memcmp(in, CAT_HELLO, strlen(CAT_HELLO)), "%s: cat echoed a line", how);
	for (size_t off = 0; off < CAT_BYTES; off += CAT_BATCH) {
		for (size_t k = 0; k < CAT_BATCH; k++) {
			size_t pos = off + k;

			out[k] = pos % CAT_LINE == CAT_LINE - 1 ? '\n'
				 : (char)('a' + pat_byte(7, pos) % 26);
		}
		send_buf(fd, out, CAT_BATCH, "patterned lines to cat");
		recv_n(fd, in, CAT_BATCH);
		for (size_t k = 0; k < CAT_BATCH; k++)
			if (in[k] != out[k])
				fail("%s: echoed byte %zu: expected 0x%02x, got 0x%02x", how,
				     off + k, (uint8_t)out[k], (uint8_t)in[k]);
		h_out = fnv1a(h_out, out, CAT_BATCH);
		h_in = fnv1a(h_in, in, CAT_BATCH);
		total += CAT_BATCH;
	}
	check_eq((long long)total, CAT_BYTES, "%s: bytes of %u-byte lines echoed intact", how,
		 CAT_LINE);
	check_eq(h_in, h_out, "%s: FNV-1a of the echoed bytes", how);
	MUST(shutdown(fd, SHUT_WR), "shutdown(SHUT_WR)");
	snprintf(what, sizeof(what), "%s: after shutdown(SHUT_WR) cat read EOF and exited", how);
	expect_eof(fd, what);
	check_eq(child_wait(pid, "cat"), 0, "%s: cat's exit status", how);
	victim_pid = 0;
}

static void case_exec_inetd(void)
{
	struct pair p;
	pid_t pid;

	pair_open(&p);
	pid = child_fork();
	if (pid == 0) {
		close(p.a);
		if (dup2(p.b, 0) != 0 || dup2(p.b, 1) != 1)
			_exit(120);
		close(p.b);
		execv(CAT_BIN, cat_argv);
		_exit(127);
	}
	victim_set(pid);
	close(p.b);
	p.b = -1;
	cat_exchange(p.a, pid, "fork, dup2 onto 0 and 1, exec cat");
	pair_close(&p);
}

/*
 * --exec-probe KEPT_FD CLOEXEC_FD, what exec-cloexec execs: CLOEXEC_FD is
 * closed (F_GETFD: EBADF), KEPT_FD open without FD_CLOEXEC; "probe-ok" out
 * through KEPT_FD, one byte 'r' back. Exit 0, else a code per step and a
 * line on stderr.
 */
static int exec_probe(const char *kept_s, const char *cx_s)
{
	int kept = atoi(kept_s), cx = atoi(cx_s), rc, err;
	char c = 0;

	alarm(ALARM_S);		/* SIGALRM's default action: a hang ends the probe */
	errno = 0;
	rc = fcntl(cx, F_GETFD);
	err = errno;
	if (rc != -1 || err != EBADF) {
		fprintf(stderr, "ipcd-evloop exec-probe: FAIL: close-on-exec fd %d: F_GETFD -> %d "
			"%s, expected -1 EBADF\n", cx, rc, rc == -1 ? errname(err) : "");
		return 10;
	}
	rc = fcntl(kept, F_GETFD);
	err = errno;
	if (rc != 0) {
		fprintf(stderr, "ipcd-evloop exec-probe: FAIL: kept fd %d: F_GETFD -> %d %s, "
			"expected 0\n", kept, rc, rc == -1 ? errname(err) : "");
		return 11;
	}
	if (!c_send(kept, "probe-ok", 8)) {
		fprintf(stderr, "ipcd-evloop exec-probe: FAIL: send on kept fd %d: %s\n", kept,
			errname(errno));
		return 12;
	}
	if (!c_recv(kept, &c, 1) || c != 'r') {
		fprintf(stderr, "ipcd-evloop exec-probe: FAIL: recv on kept fd %d: %s\n", kept,
			c ? "not 'r'" : errname(errno));
		return 13;
	}
	return 0;
}

static void case_exec_cloexec(void)
{
	char self[4096], kfd[16], cfd[16];
	struct pair keep, cx;
	int gop[2];
	ssize_t n;
	pid_t pid;

	n = MUST(readlink("/proc/self/exe", self, sizeof(self) - 1), "readlink /proc/self/exe");
	self[n] = '\0';
	pair_open_accept(&keep, 0);
	pair_open_accept(&cx, SOCK_CLOEXEC);
	check_eq(fcntl(keep.b, F_GETFD), 0, "accept4(0): F_GETFD");
	check_eq(fcntl(cx.b, F_GETFD), FD_CLOEXEC, "accept4(SOCK_CLOEXEC): F_GETFD");
	snprintf(kfd, sizeof(kfd), "%d", keep.b);
	snprintf(cfd, sizeof(cfd), "%d", cx.b);
	MUST(pipe2(gop, O_CLOEXEC), "pipe2");
	pid = child_fork();
	if (pid == 0) {
		char *const argv[] = { (char *)"ipcd-evloop", (char *)"--exec-probe", kfd, cfd,
				       NULL };

		close(keep.a);
		close(cx.a);
		close(gop[1]);
		if (!c_go(gop[0]))
			_exit(120);
		execv(self, argv);
		_exit(127);
	}
	victim_set(pid);
	close(gop[0]);
	close(keep.b);
	close(cx.b);
	keep.b = cx.b = -1;
	expect_eagain(cx.a, "before the exec the child holds the close-on-exec connection: no EOF");
	expect_eagain(keep.a, "before the exec: nothing on the kept connection");
	go(gop[1], "the child execs the probe");
	expect_eof(cx.a, "the exec closed the close-on-exec connection's last holder");
	recv_str(keep.a, "probe-ok", "the exec'd probe: close-on-exec fd EBADF, kept fd sends");
	send_str(keep.a, "r");
	check_eq(child_wait(pid, "the exec'd probe"), 0,
		 "the probe's exit status (it read the reply on the kept fd)");
	victim_pid = 0;
	expect_eof(keep.a, "the probe exited: the kept connection's last holder is gone");
	close(gop[1]);
	pair_close(&keep);
	pair_close(&cx);
}

static void case_exec_spawn(void)
{
	posix_spawn_file_actions_t fa;
	struct pair p;
	pid_t pid;
	int err;

	pair_open(&p);
	err = posix_spawn_file_actions_init(&fa);
	if (!err)
		err = posix_spawn_file_actions_adddup2(&fa, p.b, 0);
	if (!err)
		err = posix_spawn_file_actions_adddup2(&fa, p.b, 1);
	if (!err)
		err = posix_spawn_file_actions_addclose(&fa, p.b);
	if (!err)
		err = posix_spawn_file_actions_addclose(&fa, p.a);
	if (err)
		fail_errno(err, "posix_spawn_file_actions");
	fflush(stdout);
	fflush(stderr);
	err = posix_spawn(&pid, CAT_BIN, &fa, NULL, cat_argv, environ);
	if (err)
		fail_errno(err, "posix_spawn %s", CAT_BIN);
	victim_set(pid);
	posix_spawn_file_actions_destroy(&fa);
	close(p.b);
	p.b = -1;
	cat_exchange(p.a, pid, "posix_spawn cat, the end dup2'ed onto 0 and 1");
	pair_close(&p);
}

static void case_exec_vfork(void)
{
	struct pair p;
	pid_t pid;

	pair_open(&p);
	/* neither end goes to cat but as 0 and 1: the child only dup2s and execs */
	MUST(fcntl(p.a, F_SETFD, FD_CLOEXEC), "F_SETFD");
	MUST(fcntl(p.b, F_SETFD, FD_CLOEXEC), "F_SETFD");
	fflush(stdout);
	fflush(stderr);
	pid = vfork();
	if (pid == 0) {
		if (dup2(p.b, 0) != 0 || dup2(p.b, 1) != 1)
			_exit(126);
		execv(CAT_BIN, cat_argv);
		_exit(127);
	}
	if (pid < 0)
		fail_errno(errno, "vfork");
	victim_set(pid);
	close(p.b);
	p.b = -1;
	cat_exchange(p.a, pid, "vfork, dup2 onto 0 and 1, exec cat");
	pair_close(&p);
}

#define EXEC_MISSING	"/nonexistent/ipcd-evloop-no-such-program"
#define FAIL_SAYS	"after a failed exec"
#define FAIL_SAYS_CX	"close-on-exec end kept"

static void case_exec_fail(void)
{
	struct pair p, q;
	int gop[2];
	pid_t pid;

	pair_open(&p);
	pair_open_accept(&q, SOCK_CLOEXEC);
	MUST(pipe(gop), "pipe");
	pid = child_fork();
	if (pid == 0) {
		char c;

		close(p.b);
		close(q.a);
		close(gop[1]);
		if (!c_go(gop[0]))
			_exit(10);
		errno = 0;
		if (execv(EXEC_MISSING, cat_argv) != -1 || errno != ENOENT)
			_exit(11);
		if (fcntl(p.a, F_GETFD) != 0 || fcntl(q.b, F_GETFD) != FD_CLOEXEC)
			_exit(12);
		if (!c_send(p.a, FAIL_SAYS, strlen(FAIL_SAYS)))
			_exit(13);
		if (!c_send(q.b, FAIL_SAYS_CX, strlen(FAIL_SAYS_CX)))
			_exit(14);
		if (!c_recv(p.a, &c, 1) || c != 'r')
			_exit(15);
		if (!c_recv(q.b, &c, 1) || c != 's')
			_exit(16);
		_exit(0);
	}
	close(gop[0]);
	close(p.a);
	close(q.b);
	p.a = q.b = -1;
	expect_eagain(p.b, "the parent closed, the child holds the connection: no EOF");
	expect_eagain(q.a, "the child holds the close-on-exec connection: no EOF");
	go(gop[1], "the child's exec of a missing program");
	recv_str(p.b, FAIL_SAYS, "execv -1 ENOENT: the child still sends");
	recv_str(q.a, FAIL_SAYS_CX, "a failed exec closes no close-on-exec fd: it sends");
	send_str(p.b, "r");
	send_str(q.a, "s");
	check_eq(child_wait(pid, "the child"), 0,
		 "the child's exit status (execv -1 ENOENT, F_GETFD unchanged, both ends "
		 "sent and received)");
	expect_eof(p.b, "the child exited: the last holder is gone");
	expect_eof(q.a, "the child exited: the close-on-exec connection's last holder is gone");
	close(gop[1]);
	pair_close(&p);
	pair_close(&q);
}

/* ---- listeners across exec and posix_spawn ----------------------------------------------- */

#define ACC_AFTER	3	/* connects once the acceptor runs, besides the queued one */
#define ACC_LINE_MAX	128

/* This binary's path, for an exec of a hidden mode. */
static void self_exe(char *buf, size_t len)
{
	ssize_t n = MUST(readlink("/proc/self/exe", buf, len - 1), "readlink /proc/self/exe");

	buf[n] = '\0';
}

/* Line @i for the acceptor into @buf (ACC_LINE_MAX), '\n' last; its length. */
static size_t acc_line(int i, char *buf)
{
	size_t n = (size_t)snprintf(buf, ACC_LINE_MAX, "line %d for the exec'd acceptor: ", i);
	size_t len = n + 9 + 13 * (size_t)i;

	for (size_t k = n; k < len; k++)
		buf[k] = (char)('a' + pat_byte(300 + (uint64_t)i, k) % 26);
	buf[len] = '\n';
	return len + 1;
}

/*
 * --exec-accept LFD N, what exec-listener and spawn-listener exec: LFD is
 * the listening socket it inherited, open without FD_CLOEXEC (F_GETFD 0)
 * and listening (SO_ACCEPTCONN 1); N connections accepted on it one after
 * the other, each one's line (up to '\n') sent back byte for byte, then
 * closed. N 0 (exec-listener-cloexec): LFD was close-on-exec, F_GETFD gives
 * EBADF. Exit 0, else a code per step and a line on stderr.
 */
static int exec_accept(const char *lfd_s, const char *n_s)
{
	int lfd = atoi(lfd_s), n = atoi(n_s), rc, err, acc = 0;
	socklen_t len = sizeof(acc);

	alarm(ALARM_S);		/* SIGALRM's default action: a hang ends the acceptor */
	errno = 0;
	rc = fcntl(lfd, F_GETFD);
	err = errno;
	if (n == 0) {
		if (rc == -1 && err == EBADF)
			return 0;
		fprintf(stderr, "ipcd-evloop exec-accept: FAIL: close-on-exec listener fd %d: "
			"F_GETFD -> %d %s, expected -1 EBADF\n", lfd, rc,
			rc == -1 ? errname(err) : "");
		return 20;
	}
	if (rc != 0) {
		fprintf(stderr, "ipcd-evloop exec-accept: FAIL: listener fd %d: F_GETFD -> %d %s, "
			"expected 0\n", lfd, rc, rc == -1 ? errname(err) : "");
		return 21;
	}
	errno = 0;
	if (getsockopt(lfd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) || acc != 1) {
		fprintf(stderr, "ipcd-evloop exec-accept: FAIL: listener fd %d: SO_ACCEPTCONN "
			"%d %s, expected 1\n", lfd, acc, errname(errno));
		return 22;
	}
	for (int i = 0; i < n; i++) {
		char line[ACC_LINE_MAX];
		size_t got = 0;
		int fd;

		do
			fd = accept(lfd, NULL, NULL);
		while (fd < 0 && errno == EINTR);
		if (fd < 0) {
			fprintf(stderr, "ipcd-evloop exec-accept: FAIL: accept %d of %d on fd %d: "
				"%s\n", i + 1, n, lfd, errname(errno));
			return 23;
		}
		errno = 0;
		while (got < sizeof(line) && (!got || line[got - 1] != '\n') &&
		       c_recv(fd, line + got, 1))
			got++;
		if (!got || line[got - 1] != '\n') {
			const char *why = got == sizeof(line) ? "no room left"
					  : errno ? errname(errno) : "EOF";

			fprintf(stderr, "ipcd-evloop exec-accept: FAIL: connection %d: no line: "
				"%zu bytes, then %s\n", i + 1, got, why);
			return 24;
		}
		if (!c_send(fd, line, got)) {
			fprintf(stderr, "ipcd-evloop exec-accept: FAIL: connection %d: send %zu "
				"bytes: %s\n", i + 1, got, errname(errno));
			return 25;
		}
		if (close(fd)) {
			fprintf(stderr, "ipcd-evloop exec-accept: FAIL: connection %d: close: %s\n",
				i + 1, errname(errno));
			return 26;
		}
		alarm(ALARM_S);
	}
	return 0;
}

/* The test process: a connection to the acceptor's listener, line @i sent on it. */
static int acc_connect(const struct sockaddr_in *sin, int i)
{
	char line[ACC_LINE_MAX];
	int fd = connect_to(sin);

	send_buf(fd, line, acc_line(i, line), "a line for the acceptor");
	return fd;
}

/*
 * The test process: until @fd is readable. If the acceptor @pid exits
 * first (seen without reaping it), @fd must be readable within GUARD_MS
 * (its echo, EOF or a reset): else FAIL with its exit status.
 */
static void acc_readable(int fd, pid_t pid, const char *what)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	siginfo_t si;

	step("%s: wait for fd %d", what, fd);
	while (poll(&pf, 1, 10) != 1) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) || si.si_pid != pid)
			continue;
		if (poll(&pf, 1, GUARD_MS) == 1)
			return;
		fail("%s: fd %d not readable %d ms after the acceptor exited (its exit status: "
		     "%d)", what, fd, GUARD_MS, child_wait(pid, "the acceptor"));
	}
}

/*
 * The test process: line @i back on @fd byte for byte, then EOF (the
 * acceptor @pid closed it). The acceptor, not this process, accept()ed the
 * connection: it is counted here, as accept_one() counts its own.
 */
static void acc_echo(int fd, int i, pid_t pid, const char *how)
{
	char line[ACC_LINE_MAX], got[ACC_LINE_MAX], what[256];
	size_t n = acc_line(i, line);

	snprintf(what, sizeof(what), "%s: line %d's echo", how, i);
	acc_readable(fd, pid, what);
	step("%s: line %d's echo on fd %d", how, i, fd);
	errno = 0;
	if (!c_recv(fd, got, n))
		fail("%s: line %d's echo: recv gave %s (the acceptor's exit status: %d)", how, i,
		     errno ? errname(errno) : "EOF", child_wait(pid, "the acceptor"));
	for (size_t k = 0; k < n; k++)
		if (got[k] != line[k])
			fail("%s: line %d's echo, byte %zu: expected 0x%02x, got 0x%02x", how, i,
			     k, (uint8_t)line[k], (uint8_t)got[k]);
	ok("%s: line %d (%zu bytes) echoed byte for byte", how, i, n);
	snprintf(what, sizeof(what), "%s: line %d echoed, the acceptor closed its end", how, i);
	expect_eof(fd, what);
	n_pairs++;
}

/* Nobody listens on @sin: a blocking connect is refused (the preload leaves it to the kernel). */
static void expect_refused(const struct sockaddr_in *sin, const char *what)
{
	int fd = MUST(socket(AF_INET, SOCK_STREAM, 0), "socket");

	n_refused++;
	step("%s: connect", what);
	CHECK_ERR(connect(fd, (const struct sockaddr *)sin, sizeof(*sin)), ECONNREFUSED,
		  "%s: connect", what);
	close(fd);
}

/*
 * exec-listener and spawn-listener, once the acceptor @pid (--exec-accept
 * LFD 1+ACC_AFTER) holds the only copy of the listener on @sin: @c0, which
 * connected and sent line 0 before the acceptor's image ran, is echoed;
 * then ACC_AFTER connections, each echoed; the acceptor exits 0; it held
 * the last copy, so a connect is now refused.
 */
static void acc_exchange(const struct sockaddr_in *sin, int c0, pid_t pid, const char *how)
{
	char what[256];

	snprintf(what, sizeof(what), "%s: queued before the acceptor ran", how);
	acc_echo(c0, 0, pid, what);
	close(c0);
	for (int i = 1; i <= ACC_AFTER; i++) {
		int fd = acc_connect(sin, i);

		acc_echo(fd, i, pid, how);
		close(fd);
	}
	check_eq(child_wait(pid, "the acceptor"), 0,
		 "%s: the acceptor's exit status (%d connections accepted on the inherited "
		 "listener, each echoed)", how, 1 + ACC_AFTER);
	victim_pid = 0;
	snprintf(what, sizeof(what), "%s: the acceptor held the last copy of the listener and "
		 "exited", how);
	expect_refused(sin, what);
}

/*
 * The test process closes its copy of the listener once the child is
 * forked: the child's is the only one, and the child only waits and execs,
 * so every connection that is served was accepted by the exec'd image.
 */
static void case_exec_listener(void)
{
	char self[4096], lfd[16], nacc[16];
	struct sockaddr_in sin;
	int l, c0, gop[2];
	pid_t pid;

	self_exe(self, sizeof(self));
	l = listener_open(&sin, 8);
	check_eq(fcntl(l, F_GETFD), 0, "socket(0), listen: F_GETFD");
	snprintf(lfd, sizeof(lfd), "%d", l);
	snprintf(nacc, sizeof(nacc), "%d", 1 + ACC_AFTER);
	MUST(pipe2(gop, O_CLOEXEC), "pipe2");
	pid = child_fork();
	if (pid == 0) {
		char *const argv[] = { (char *)"ipcd-evloop", (char *)"--exec-accept", lfd, nacc,
				       NULL };

		close(gop[1]);
		if (!c_go(gop[0]))
			_exit(120);
		execv(self, argv);
		_exit(127);
	}
	victim_set(pid);
	close(gop[0]);
	close(l);
	c0 = acc_connect(&sin, 0);
	expect_eagain(c0, "queued on the listener only the child holds, before its exec: no echo");
	go(gop[1], "the child execs the acceptor");
	acc_exchange(&sin, c0, pid, "fork, exec the acceptor on the listener");
	close(gop[1]);
}

/*
 * The same with a close-on-exec listener: the exec closes the last copy
 * (the test process closed its own), which resets the connection queued
 * on it; the exec'd image finds the fd number closed; a connect is refused.
 */
static void case_exec_listener_cloexec(void)
{
	char self[4096], lfd[16], c;
	struct sockaddr_in sin;
	int l, c0, gop[2];
	pid_t pid;

	self_exe(self, sizeof(self));
	l = listener_open_flags(&sin, 8, SOCK_CLOEXEC);
	check_eq(fcntl(l, F_GETFD), FD_CLOEXEC, "socket(SOCK_CLOEXEC), listen: F_GETFD");
	snprintf(lfd, sizeof(lfd), "%d", l);
	MUST(pipe2(gop, O_CLOEXEC), "pipe2");
	pid = child_fork();
	if (pid == 0) {
		char *const argv[] = { (char *)"ipcd-evloop", (char *)"--exec-accept", lfd,
				       (char *)"0", NULL };

		close(gop[1]);
		if (!c_go(gop[0]))
			_exit(120);
		execv(self, argv);
		_exit(127);
	}
	victim_set(pid);
	close(gop[0]);
	close(l);
	c0 = acc_connect(&sin, 0);
	expect_eagain(c0, "queued on the listener only the child holds, before its exec: no echo");
	go(gop[1], "the child execs the probe");
	check_eq(child_wait(pid, "the exec'd probe"), 0,
		 "the exec'd probe's exit status (F_GETFD on the close-on-exec listener's "
		 "number: -1 EBADF)");
	victim_pid = 0;
	step("the connection queued on the closed listener: recv");
	CHECK_ERR(recv(c0, &c, 1, 0), ECONNRESET,
		  "the exec closed the last copy of the listener: the connection queued on it "
		  "is reset: recv");
	close(c0);
	expect_refused(&sin, "the exec closed the last copy of the listener");
	close(gop[1]);
}

/*
 * posix_spawn, no file actions: the spawned acceptor inherits the listener
 * at its number. The connection queued before the spawn goes to it; the
 * test process closes its own copy once the spawn returned.
 */
static void case_spawn_listener(void)
{
	char self[4096], lfd[16], nacc[16];
	char *const argv[] = { (char *)"ipcd-evloop", (char *)"--exec-accept", lfd, nacc, NULL };
	struct sockaddr_in sin;
	int l, c0, err;
	pid_t pid;

	self_exe(self, sizeof(self));
	l = listener_open(&sin, 8);
	check_eq(fcntl(l, F_GETFD), 0, "socket(0), listen: F_GETFD");
	snprintf(lfd, sizeof(lfd), "%d", l);
	snprintf(nacc, sizeof(nacc), "%d", 1 + ACC_AFTER);
	c0 = acc_connect(&sin, 0);
	expect_eagain(c0, "queued on the listener before the spawn: no echo");
	fflush(stdout);
	fflush(stderr);
	err = posix_spawn(&pid, self, NULL, NULL, argv, environ);
	if (err)
		fail_errno(err, "posix_spawn %s", self);
	victim_set(pid);
	close(l);
	acc_exchange(&sin, c0, pid, "posix_spawn the acceptor, the listener inherited");
}

/* ---- main ------------------------------------------------------------------------------- */

struct evcase {
	const char *name;
	const char *group;
	void (*fn)(void);
	const char *what;
};

static const struct evcase cases[] = {
	{ "epoll-api", "epoll", case_epoll_api, "create/create1/ctl/wait/pwait/pwait2 and errors" },
	{ "epoll-mixed", "epoll", case_epoll_mixed,
	  "a connection, pipe, eventfd, listener in one set" },
	{ "epoll-lt", "epoll", case_epoll_lt, "level-triggered EPOLLIN/EPOLLOUT" },
	{ "epoll-et", "epoll", case_epoll_et, "EPOLLET: one report per arrival, MOD re-arms" },
	{ "epoll-oneshot", "epoll", case_epoll_oneshot, "EPOLLONESHOT and re-arming by MOD" },
	{ "epoll-exclusive", "epoll", case_epoll_exclusive,
	  "EPOLLEXCLUSIVE on connections and a listener" },
	{ "epoll-rdhup", "epoll", case_epoll_rdhup,
	  "EPOLLRDHUP after shutdown(SHUT_WR), EPOLLHUP when both" },
	{ "epoll-rst", "epoll", case_epoll_rst, "RST: peer closed with unread data, SO_LINGER 0" },
	{ "epoll-fin", "epoll", case_epoll_fin, "FIN with data, then a send draws RST" },
	{ "epoll-connect", "epoll", case_epoll_connect,
	  "registered before connect/listen: each state, refusal" },
	{ "epoll-out", "epoll", case_epoll_out, "EPOLLOUT after EAGAIN, LT and ET" },
	{ "epoll-two-sets", "epoll", case_epoll_two_sets, "one fd in two sets" },
	{ "epoll-nested", "epoll", case_epoll_nested, "an epoll fd in epoll, poll and select" },
	{ "epoll-data", "epoll", case_epoll_data, "data.u64/ptr/fd returned unchanged" },
	{ "epoll-maxevents", "epoll", case_epoll_maxevents, "maxevents below the ready count" },
	{ "epoll-close", "epoll", case_epoll_close, "a closed fd leaves the set" },
	{ "epoll-dup", "epoll", case_epoll_dup,
	  "a registration outlives its fd while a dup lives" },
	{ "epoll-eintr", "epoll", case_epoll_eintr, "EINTR, SA_RESTART, signal masks" },
	{ "epoll-timeout", "epoll", case_epoll_timeout, "timeouts are not early" },
	{ "epoll-wake", "epoll", case_epoll_wake, "blocked waits woken by threads and a child" },
	{ "epoll-mod-wake", "epoll", case_epoll_mod_wake,
	  "EPOLLONESHOT re-armed by MOD, or DEL and ADD, while a thread sleeps on the set" },
	{ "epoll-nested-add", "epoll", case_epoll_nested_add,
	  "a connection added to a set an outer set's or a poll's sleeper waits on" },
	{ "epoll-dup-close-wake", "epoll", case_epoll_dup_close_wake,
	  "a sleeper woken through a registration whose fd was closed, a dup kept" },
	{ "poll-mixed", "poll", case_poll_mixed, "poll/ppoll/select on mixed sets, POLLNVAL" },
	{ "poll-out", "poll", case_poll_out, "POLLOUT and select writability after EAGAIN" },
	{ "poll-rdhup", "poll", case_poll_rdhup, "POLLRDHUP, POLLHUP when both sides shut down" },
	{ "poll-rst", "poll", case_poll_rst, "POLLERR|POLLHUP after RST, select" },
	{ "poll-nval", "poll", case_poll_nval, "POLLNVAL for closed fds, select EBADF" },
	{ "poll-timeout", "poll", case_poll_timeout, "timeouts are not early; what they leave" },
	{ "poll-eintr", "poll", case_poll_eintr, "EINTR with and without SA_RESTART" },
	{ "poll-sigmask", "poll", case_poll_sigmask, "ppoll/pselect signal masks" },
	{ "dup-stream", "dup", case_dup_stream, "all duplicates carry one stream; FD_CLOEXEC" },
	{ "dup-errors", "dup", case_dup_errors, "dup/dup2/dup3/F_DUPFD errors" },
	{ "dup-close", "dup", case_dup_close, "EOF only after the last duplicate closes" },
	{ "threads-duplex", "threads", case_threads_duplex,
	  "a reader and a writer thread per end" },
	{ "threads-duplex-epoll", "threads", case_threads_duplex_epoll,
	  "the same, nonblocking, a private EPOLLET set per thread" },
	{ "threads-accept", "threads", case_threads_accept,
	  "threads blocked in accept on one listener" },
	{ "threads-recv-wake", "threads", case_threads_recv_wake,
	  "a blocked recv woken by shutdown, close, RST" },
	{ "fork-order", "fork", case_fork_order,
	  "parent and child write one end in turns; reads in turn" },
	{ "fork-parent-exits", "fork", case_fork_parent_exits,
	  "a grandchild keeps the connection its exited parent left open" },
	{ "fork-daemon", "fork", case_fork_daemon, "daemon(1, 1) keeps the inherited connection" },
	{ "exec-inetd", "fork", case_exec_inetd, "fork, dup2 onto 0 and 1, exec /bin/cat" },
	{ "exec-cloexec", "fork", case_exec_cloexec,
	  "exec closes FD_CLOEXEC connections, keeps the others" },
	{ "exec-spawn", "fork", case_exec_spawn, "posix_spawn /bin/cat with adddup2 onto 0 and 1" },
	{ "exec-vfork", "fork", case_exec_vfork, "vfork, dup2 onto 0 and 1, exec /bin/cat" },
	{ "exec-fail", "fork", case_exec_fail, "a failed exec leaves every connection working" },
	{ "exec-listener", "fork", case_exec_listener,
	  "fork, exec: the new image accepts on the inherited listener, queued ones too" },
	{ "exec-listener-cloexec", "fork", case_exec_listener_cloexec,
	  "exec closes a SOCK_CLOEXEC listener: queued reset, then refused" },
	{ "spawn-listener", "fork", case_spawn_listener,
	  "posix_spawn: the new image accepts on the inherited listener" },
};

#define N_CASES	(sizeof(cases) / sizeof(cases[0]))

static void run_case(const struct evcase *c)
{
	case_name = c->name;
	n_checks = 0;
	n_pairs = 0;
	n_refused = 0;
	snprintf(step_txt, sizeof(step_txt), "starting");
	printf("case %s: %s\n", c->name, c->what);
	alarm(ALARM_S);
	c->fn();
	alarm(0);
	signal(SIGUSR1, SIG_IGN);
	printf("case %s passed checks=%u pairs=%u refused=%u\n", c->name, n_checks, n_pairs,
	       n_refused);
	case_name = "-";
}

static void usage(void)
{
	fprintf(stderr, "usage: ipcd-evloop NAME...   (a case, a group: epoll poll dup threads "
			"fork, or all)\n       ipcd-evloop --list\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	if (argc == 4 && !strcmp(argv[1], "--exec-probe"))
		return exec_probe(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "--exec-accept"))
		return exec_accept(argv[2], argv[3]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	if (argc < 2)
		usage();
	for (int i = 1; i < argc; i++) {
		bool any = false;

		if (!strcmp(argv[i], "--list")) {
			for (size_t k = 0; k < N_CASES; k++)
				printf("%s %s %s\n", cases[k].name, cases[k].group, cases[k].what);
			continue;
		}
		for (size_t k = 0; k < N_CASES; k++) {
			if (strcmp(argv[i], "all") && strcmp(argv[i], cases[k].name) &&
			    strcmp(argv[i], cases[k].group))
				continue;
			run_case(&cases[k]);
			any = true;
		}
		if (!any) {
			fprintf(stderr, "ipcd-evloop: no case or group '%s' (--list)\n", argv[i]);
			usage();
		}
	}
	return 0;
}
