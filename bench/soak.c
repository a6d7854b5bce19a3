/* SPDX-License-Identifier: MIT */
/*
 * soak.c - ipcd-soak: a long mixed load under libipcd.so, watched for growth
 * in memory, fds and objects (issue #8, item 5).
 *
 * The driver (this process, never preloaded) starts its own ipcd-monitor on
 * the embedded default config (control socket moved to a temp dir), and runs
 * the same mix of worker processes three times: a kernel phase (no preload),
 * the ipcd phase (every worker under ipcd-run), a second kernel phase. The
 * workers are this program again (/proc/self/exe --worker ROLE ...):
 *
 *   long-lived, for the whole phase:
 *     echo-tcp, echo-unix  epoll servers (nonblocking, level-triggered) that
 *                          echo whatever they read: TCP 127.0.0.1, a named
 *                          AF_UNIX stream socket
 *     forksrv              accept + fork per connection; the child echoes
 *     sink <- source       one TCP stream of position-checked bytes, paced
 *     ping -> echo-tcp     64 B request/response, paced, timed one by one
 *   in waves (a wave lasts --wave seconds; the workers exit by themselves):
 *     churn-tcp, churn-unix  connect, 32 B there and back, close, many a second
 *     forkcli -> forksrv     4 KiB there and back per forked server child
 *     pair                   socketpair + fork, 32 round trips, child exits
 *     pipe                   pipe + fork, 256 KiB of checked bytes, child exits
 *     victims                started every 400 ms by the driver, TCP and
 *                            AF_UNIX echo clients; half are SIGKILLed
 *
 * Between two waves only the long-lived workers run: a quiescent point. The
 * monitor's object counts and fds, the long-lived workers' fds and the
 * /dev/shm entries must then be what they were at the first quiescent point
 * after the warm-up, exactly. Every --interval seconds the driver samples the
 * monitor (VmRSS, RssAnon, fds, mappings; ipcdctl status and counters), the
 * long-lived workers (RSS, fds), /dev/shm and the interval's figures (the
 * workers add them to a shared memfd page: counts, bytes, latency
 * histograms). Steady state (after the warm-up), the medians of the first
 * and last thirds of the samples must not differ by more than
 * max(1 MiB, 2 %) in RSS. After the ipcd phase, with every worker gone, the
 * monitor must be back to its idle state: no process, connection, bind or
 * lane, the fds it had before the load.
 *
 * Every byte is checked; every wait is bounded (alarm() in the workers, a
 * deadline for each in the driver). Exit status: 0 no growth and no error,
 * 1 growth, an error, a hang or a dead monitor, 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ipcd/compiler.h>

#include "bench_util.h"

#define NS_PER_S	1000000000ull
#define NS_PER_MS	1000000ull
#define SHM_FD		3		/* the stats memfd, in every worker */
#define ALARM_S		20		/* a worker's hang guard for any one step */
#define START_NS	(15 * NS_PER_S)	/* a server is ready this soon after exec */
#define EXIT_NS		(20 * NS_PER_S)	/* a worker exits this soon after its end */
#define STALE_NS	(30 * NS_PER_S)	/* a paced long-lived client without progress */
#define QUIET_NS	(15 * NS_PER_S)	/* a quiescent point converges this soon */
#define IDLE_NS		(15 * NS_PER_S)	/* idle again this soon after the load */
#define TICK_MS		50
#define MAX_CHILD	64
#define MAX_SAMPLES	4096
#define MAX_QUIET	512
#define ERR_LEN		512
#define NB		1024		/* histogram buckets: 16 per power of two */
#define STREAM_CHUNK	(64u << 10)
#define PIPE_BYTES	(256u << 10)
#define FORK_MSG	4096u
#define CHURN_MSG	32u
#define PING_MSG	64u
#define PAIR_MSG	64u
#define PAIR_RTS	32u
#define VICTIM_MSG	1024u
#define MIB		(1024.0 * 1024.0)

/* ---- what workers and driver share: one slot per role and side ------------------------ */

enum side { SD_KERNEL, SD_IPCD, N_SIDE };
static const char *const side_name[N_SIDE] = { "kernel", "ipcd" };

enum role {
	R_ECHO_TCP, R_ECHO_UNIX, R_FORKSRV, R_SINK, R_SOURCE, R_PING,	/* long-lived */
	R_CHURN_TCP, R_CHURN_UNIX, R_FORKCLI, R_PAIR, R_PIPE,		/* waves */
	R_VICTIM, N_ROLE
};
#define N_LONG		(R_PING + 1)
static const char *const role_name[N_ROLE] = {
	"echo-tcp", "echo-unix", "forksrv", "sink", "source", "ping",
	"churn-tcp", "churn-unix", "forkcli", "pair", "pipe", "victim",
};

/*
 * struct slot - the figures of one role on one side, added to by every process
 * of that role (forked children too) with relaxed atomic adds; the driver
 * reads them every interval and keeps the differences. @ready: a server's
 * port (1 for AF_UNIX) once it listens; zeroed by the driver before a phase.
 */
struct slot {
	uint64_t ready;
	uint64_t beat_ns;	/* last progress (CLOCK_MONOTONIC) */
	uint64_t ops;		/* round trips, connections, chunks: per role */
	uint64_t bytes;		/* checked payload bytes */
	uint64_t aux;		/* servers: connections accepted */
	uint64_t aux2;		/* servers: ends that went away with an error (reset) */
	uint64_t fails;		/* forksrv: forked children that failed (the log says why) */
	uint64_t pad;
	uint64_t hist[NB];	/* latencies in ns */
} __ipcd_cache_aligned;

#define N_SLOT		(N_SIDE * N_ROLE)
#define SLOTS_BYTES	(N_SLOT * sizeof(struct slot))

static struct slot *slots;

static void add(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static uint64_t rd(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* log-linear bucket of @v: exact below 16, then 16 buckets per power of two (6 %) */
static unsigned int bucket(uint64_t v)
{
	unsigned int e;

	if (v < 16)
		return (unsigned int)v;
	e = 63u - (unsigned int)__builtin_clzll(v);
	return (e - 3) * 16 + (unsigned int)((v >> (e - 4)) & 15);
}

static double bucket_mid(unsigned int i)
{
	unsigned int e = i / 16 + 3;

	if (i < 16)
		return i;
	return (double)((16ull + i % 16) << (e - 4)) + (double)(1ull << (e - 4)) / 2;
}

/* The @q quantile (0..1) of @h in ns, or NAN if empty. */
static double hist_q(const uint64_t *h, double q)
{
	uint64_t n = 0, want, seen = 0;
	unsigned int i;

	for (i = 0; i < NB; i++)
		n += h[i];
	if (!n)
		return NAN;
	want = (uint64_t)ceil(q * (double)n);
	if (want < 1)
		want = 1;
	for (i = 0; i < NB; i++) {
		seen += h[i];
		if (seen >= want)
			return bucket_mid(i);
	}
	return bucket_mid(NB - 1);
}

/* ---- the workers ---------------------------------------------------------------------- */

struct wopts {
	enum role role;
	enum side side;
	uint64_t end_ns;	/* clients: stop at this CLOCK_MONOTONIC time */
	unsigned int port;
	const char *path;	/* AF_UNIX name */
	double rate;		/* operations (stream: MB) per second */
	uint64_t seed;
};

static struct wopts w;
static struct slot *me;
static volatile sig_atomic_t w_stop;

static __attribute__((noreturn, format(printf, 1, 2))) void w_die(const char *fmt, ...)
{
	va_list ap;
	char who[64];

	snprintf(who, sizeof(who), "ipcd-soak %s %s (pid %d)", side_name[w.side],
		 role_name[w.role], (int)getpid());
	va_start(ap, fmt);
	ipcd_bench_vsay(who, fmt, ap);
	va_end(ap);
	_exit(1);
}

static char alarm_msg[160];	/* made before any alarm() can fire: the handler only writes */

static void w_on_alarm(int sig)
{
	(void)sig;
	ipcd_bench_say_raw(alarm_msg);
	_exit(3);
}

static void w_alarm_msg(void)
{
	snprintf(alarm_msg, sizeof(alarm_msg), "ipcd-soak %s %s (pid %d): HANG: a step took "
		 "longer than %d s\n", side_name[w.side], role_name[w.role], (int)getpid(),
		 ALARM_S);
}

static void w_on_term(int sig)
{
	(void)sig;
	w_stop = 1;
}

static void beat(void)
{
	__atomic_store_n(&me->beat_ns, ipcd_now_ns(), __ATOMIC_RELAXED);
}

static void lat(uint64_t ns)
{
	add(&me->hist[IPCD_MIN(bucket(ns), NB - 1u)], 1);
}

/* splitmix64: the byte at stream offset i is byte (i % 8) of mix(seed + i / 8) */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void pattern(uint64_t seed, uint64_t off, uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint64_t word = mix(seed + (off + i) / 8);
		unsigned int b = (unsigned int)((off + i) % 8);

		for (; b < 8 && i < n; b++, i++)
			p[i] = (uint8_t)(word >> (8 * b));
	}
}

/* The offset of the first byte of @p that is not the pattern, or -1. */
static int64_t pattern_check(uint64_t seed, uint64_t off, const uint8_t *p, size_t n)
{
	uint8_t want[4096];
	size_t i = 0;

	while (i < n) {
		size_t k = IPCD_MIN(n - i, sizeof(want));

		pattern(seed, off + i, want, k);
		if (memcmp(want, p + i, k)) {
			size_t j = 0;

			while (want[j] == p[i + j])
				j++;
			return (int64_t)(off + i + j);
		}
		i += k;
	}
	return -1;
}

static void w_send_all(int fd, const void *p, size_t n, const char *what)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t r = send(fd, b, n, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			w_die("%s: send: %s", what, r < 0 ? strerror(errno) : "returned 0");
		b += r;
		n -= (size_t)r;
	}
}

static void w_recv_all(int fd, void *p, size_t n, const char *what)
{
	ssize_t r = ipcd_bench_recv_full(fd, p, n);

	if (r < 0)
		w_die("%s: recv: %s", what, strerror((int)-r));
	if ((size_t)r != n)
		w_die("%s: EOF after %zd of %zu bytes", what, r, n);
}

static int w_connect(bool unix_path)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int fd;

	if (unix_path) {
		struct sockaddr_un *u = (struct sockaddr_un *)&ss;

		u->sun_family = AF_UNIX;
		snprintf(u->sun_path, sizeof(u->sun_path), "%s", w.path);
		len = sizeof(*u);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)w.port);
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*in);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		w_die("socket: %s", strerror(errno));
	while (connect(fd, (struct sockaddr *)&ss, len)) {
		if (errno != EINTR)
			w_die("connect to %s: %s", unix_path ? w.path : "127.0.0.1",
			      strerror(errno));
	}
	if (!unix_path) {
		int one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

/* A listener on 127.0.0.1:0 or @w.path; its port (or 1) goes to the slot once it listens. */
static int w_listen(bool unix_path, int flags)
{
	int fd = socket(unix_path ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	unsigned int port = 1;

	if (fd < 0)
		w_die("socket: %s", strerror(errno));
	if (unix_path) {
		struct sockaddr_un u = { .sun_family = AF_UNIX };

		snprintf(u.sun_path, sizeof(u.sun_path), "%s", w.path);
		unlink(w.path);
		if (bind(fd, (struct sockaddr *)&u, sizeof(u)))
			w_die("bind %s: %s", w.path, strerror(errno));
	} else {
		struct sockaddr_in in = { .sin_family = AF_INET };
		socklen_t len = sizeof(in);

		in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(fd, (struct sockaddr *)&in, sizeof(in)) ||
		    getsockname(fd, (struct sockaddr *)&in, &len))
			w_die("bind 127.0.0.1:0: %s", strerror(errno));
		port = ntohs(in.sin_port);
	}
	if (listen(fd, 128))
		w_die("listen: %s", strerror(errno));
	__atomic_store_n(&me->ready, port, __ATOMIC_RELEASE);
	return fd;
}

/* Sleep until the next of @rate slots a second; a late worker does not catch up in a burst. */
static void pace(uint64_t *next, double rate)
{
	uint64_t now = ipcd_now_ns(), period = (uint64_t)(1e9 / rate);
	struct timespec ts;

	*next += period;
	if (*next + 100 * NS_PER_MS < now)
		*next = now;
	if (*next <= now)
		return;
	ts.tv_sec = (time_t)(*next / NS_PER_S);
	ts.tv_nsec = (long)(*next % NS_PER_S);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !w_stop)
		;
}

/* ---- echo-tcp, echo-unix: one epoll loop, level-triggered, nonblocking ---------------- */

struct econn {
	int fd;
	uint32_t have, off;	/* bytes in buf not yet echoed, from off */
	bool out;		/* waiting for EPOLLOUT, not reading */
	uint8_t buf[16384];
};

static void econn_close(int ep, struct econn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Echo what @c has; false when the connection is over (EOF, reset). */
static bool econn_io(int ep, struct econn *c)
{
	for (;;) {
		ssize_t r;

		while (c->have) {
			r = send(c->fd, c->buf + c->off, c->have, MSG_NOSIGNAL);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && errno == EAGAIN) {
				struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };

				if (!c->out && epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev))
					w_die("epoll_ctl MOD: %s", strerror(errno));
				c->out = true;
				return true;
			}
			if (r < 0) {
				add(&me->aux2, 1);	/* a victim SIGKILLed mid-echo */
				return false;
			}
			c->off += (uint32_t)r;
			c->have -= (uint32_t)r;
			add(&me->bytes, (uint64_t)r);
		}
		if (c->out) {
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

			if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev))
				w_die("epoll_ctl MOD: %s", strerror(errno));
			c->out = false;
		}
		r = recv(c->fd, c->buf, sizeof(c->buf), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return true;
		if (r < 0)
			add(&me->aux2, 1);
		if (r <= 0)
			return false;
		c->have = (uint32_t)r;
		c->off = 0;
	}
}

static void w_echo(bool unix_path)
{
	int lfd = w_listen(unix_path, SOCK_NONBLOCK);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[64];

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev))
		w_die("epoll: %s", strerror(errno));
	while (!w_stop) {
		int n = epoll_wait(ep, evs, IPCD_ARRAY_SIZE(evs), 200), i;

		if (n < 0 && errno != EINTR)
			w_die("epoll_wait: %s", strerror(errno));
		alarm(ALARM_S);
		for (i = 0; i < n; i++) {
			struct econn *c = evs[i].data.ptr;

			if (c) {
				if (!econn_io(ep, c))
					econn_close(ep, c);
				continue;
			}
			for (;;) {
				int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

				if (fd < 0 && errno == EINTR)
					continue;
				if (fd < 0 && (errno == EAGAIN || errno == ECONNABORTED))
					break;
				if (fd < 0)
					w_die("accept4: %s", strerror(errno));
				c = calloc(1, sizeof(*c));
				if (!c)
					w_die("out of memory");
				c->fd = fd;
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
					w_die("epoll_ctl ADD: %s", strerror(errno));
				add(&me->aux, 1);
			}
		}
		beat();
	}
	/* Open connections are the OS's to close: the phase is over. */
	if (unix_path)
		unlink(w.path);
	_exit(0);
}

/* ---- forksrv: a process per connection ------------------------------------------------ */

static void fork_child(int fd)
{
	uint8_t buf[FORK_MSG];

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			w_die("forked child: recv: %s", strerror(errno));
		if (r == 0)
			_exit(0);
		w_send_all(fd, buf, (size_t)r, "forked child");
		add(&me->bytes, (uint64_t)r);
	}
}

static void w_forksrv(void)
{
	int lfd = w_listen(false, 0);

	while (!w_stop) {
		struct pollfd pf = { .fd = lfd, .events = POLLIN };
		int st, fd;
		pid_t pid;

		/* a failed child is the driver's to report: the server goes on serving */
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
			if (!WIFEXITED(st) || WEXITSTATUS(st))
				add(&me->fails, 1);
		beat();
		/* a step is one turn: the next client may take long to come (a slow exec) */
		alarm(ALARM_S);
		if (poll(&pf, 1, 200) <= 0)
			continue;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0)
			w_die("accept: %s", strerror(errno));
		pid = fork();
		if (pid < 0)
			w_die("fork: %s", strerror(errno));
		if (pid == 0) {
			close(lfd);
			w_alarm_msg();
			alarm(ALARM_S);
			fork_child(fd);
		}
		close(fd);
		add(&me->aux, 1);
	}
	/* Children end with their clients, which end before the servers are told to stop. */
	while (waitpid(-1, NULL, 0) > 0)
		;
	_exit(0);
}

/* ---- sink <- source: one stream, every byte checked ----------------------------------- */

static void w_sink(void)
{
	int lfd = w_listen(false, 0), fd;
	uint8_t *buf = malloc(STREAM_CHUNK);
	uint64_t off = 0;

	alarm(ALARM_S);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0 || !buf)
		w_die("accept: %s", strerror(errno));
	close(lfd);
	for (;;) {
		ssize_t r;
		int64_t bad;

		alarm(ALARM_S);
		r = recv(fd, buf, STREAM_CHUNK, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			w_die("recv at byte %" PRIu64 ": %s", off, strerror(errno));
		if (r == 0)
			break;
		bad = pattern_check(w.seed, off, buf, (size_t)r);
		if (bad >= 0)
			w_die("DATA: stream byte %" PRId64 " is wrong", bad);
		off += (uint64_t)r;
		add(&me->bytes, (uint64_t)r);
		add(&me->ops, 1);
		beat();
	}
	_exit(0);
}

static void w_source(void)
{
	int fd = w_connect(false);
	uint8_t *buf = malloc(STREAM_CHUNK);
	uint64_t off = 0, next = ipcd_now_ns();
	/* 100 ticks a second, each sends rate MB / 100 */
	size_t per_tick = (size_t)(w.rate * 1e6 / 100);

	if (!buf)
		w_die("out of memory");
	while (ipcd_now_ns() < w.end_ns && !w_stop) {
		size_t left = per_tick;

		alarm(ALARM_S);
		while (left) {
			size_t n = IPCD_MIN(left, (size_t)STREAM_CHUNK);

			pattern(w.seed, off, buf, n);
			w_send_all(fd, buf, n, "stream");
			off += n;
			left -= n;
			add(&me->bytes, n);
		}
		add(&me->ops, 1);
		beat();
		pace(&next, 100);
	}
	shutdown(fd, SHUT_WR);
	close(fd);
	_exit(0);
}

/* ---- ping: paced request/response, one timed round trip each -------------------------- */

static void w_ping(void)
{
	int fd = w_connect(false);
	uint8_t out[PING_MSG], in[PING_MSG];
	uint64_t k = 0, next = ipcd_now_ns();

	while (ipcd_now_ns() < w.end_ns && !w_stop) {
		uint64_t t0;

		alarm(ALARM_S);
		pattern(w.seed, k * PING_MSG, out, sizeof(out));
		t0 = ipcd_now_ns();
		w_send_all(fd, out, sizeof(out), "ping");
		w_recv_all(fd, in, sizeof(in), "ping");
		lat(ipcd_now_ns() - t0);
		if (memcmp(in, out, sizeof(in)))
			w_die("DATA: echo of round trip %" PRIu64 " differs", k);
		add(&me->ops, 1);
		add(&me->bytes, sizeof(in));
		beat();
		k++;
		pace(&next, w.rate);
	}
	close(fd);
	_exit(0);
}

/* ---- churn-tcp, churn-unix, forkcli: a connection per exchange ------------------------ */

static void w_churn(bool unix_path, size_t size)
{
	uint8_t *out = malloc(size), *in = malloc(size);
	uint64_t k = 0, next = ipcd_now_ns();

	if (!out || !in)
		w_die("out of memory");
	while (ipcd_now_ns() < w.end_ns) {
		uint64_t t0 = ipcd_now_ns();
		int fd;

		alarm(ALARM_S);
		fd = w_connect(unix_path);
		pattern(w.seed, k * size, out, size);
		w_send_all(fd, out, size, "exchange");
		w_recv_all(fd, in, size, "exchange");
		if (memcmp(in, out, size))
			w_die("DATA: echo on connection %" PRIu64 " differs", k);
		close(fd);
		lat(ipcd_now_ns() - t0);
		add(&me->ops, 1);
		add(&me->bytes, size);
		beat();
		k++;
		pace(&next, w.rate);
	}
	_exit(0);
}

/* ---- pair: socketpair + fork; pipe: pipe + fork --------------------------------------- */

static void w_pair(void)
{
	uint64_t k = 0, next = ipcd_now_ns();

	while (ipcd_now_ns() < w.end_ns) {
		uint8_t out[PAIR_MSG], in[PAIR_MSG];
		int sv[2], st;
		unsigned int i;
		pid_t pid;

		alarm(ALARM_S);
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			w_die("socketpair: %s", strerror(errno));
		pid = fork();
		if (pid < 0)
			w_die("fork: %s", strerror(errno));
		if (pid == 0) {
			close(sv[0]);
			w_alarm_msg();
			for (;;) {
				ssize_t r = ipcd_bench_recv_full(sv[1], in, sizeof(in));

				if (r == 0)
					_exit(0);
				if (r != (ssize_t)sizeof(in))
					w_die("pair child: recv: %s",
					      r < 0 ? strerror((int)-r) : "short");
				w_send_all(sv[1], in, sizeof(in), "pair child");
			}
		}
		close(sv[1]);
		for (i = 0; i < PAIR_RTS; i++) {
			uint64_t t0 = ipcd_now_ns();

			pattern(w.seed, (k * PAIR_RTS + i) * PAIR_MSG, out, sizeof(out));
			w_send_all(sv[0], out, sizeof(out), "pair");
			w_recv_all(sv[0], in, sizeof(in), "pair");
			lat(ipcd_now_ns() - t0);
			if (memcmp(in, out, sizeof(in)))
				w_die("DATA: socketpair %" PRIu64 " round trip %u differs", k, i);
			add(&me->bytes, sizeof(in));
		}
		close(sv[0]);
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
			w_die("socketpair child %d failed (status 0x%x)", (int)pid, st);
		add(&me->ops, 1);
		beat();
		k++;
		pace(&next, w.rate);
	}
	_exit(0);
}

static void w_pipe(void)
{
	uint8_t *buf = malloc(PIPE_BYTES);
	uint64_t k = 0, next = ipcd_now_ns();

	if (!buf)
		w_die("out of memory");
	while (ipcd_now_ns() < w.end_ns) {
		size_t got = 0;
		int p[2], st;
		int64_t bad;
		pid_t pid;

		alarm(ALARM_S);
		if (pipe2(p, O_CLOEXEC))
			w_die("pipe: %s", strerror(errno));
		pid = fork();
		if (pid < 0)
			w_die("fork: %s", strerror(errno));
		if (pid == 0) {
			size_t off = 0;

			close(p[0]);
			w_alarm_msg();
			pattern(w.seed + k, 0, buf, PIPE_BYTES);
			while (off < PIPE_BYTES) {
				/* writes of 1..64 KiB, so reads see every kind of boundary */
				size_t n = IPCD_MIN(PIPE_BYTES - off, 1 + (mix(off) % (64u << 10)));
				ssize_t r = write(p[1], buf + off, n);

				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0)
					w_die("pipe child: write: %s", strerror(errno));
				off += (size_t)r;
			}
			_exit(0);
		}
		close(p[1]);
		for (;;) {
			ssize_t r = read(p[0], buf + got, PIPE_BYTES - got);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				w_die("pipe read: %s", strerror(errno));
			if (r == 0)
				break;
			got += (size_t)r;
			if (got == PIPE_BYTES) {
				uint8_t extra;

				/* one more read: must be EOF */
				r = read(p[0], &extra, 1);
				if (r != 0)
					w_die("DATA: pipe %" PRIu64 ": more than %u bytes", k,
					      PIPE_BYTES);
				break;
			}
		}
		close(p[0]);
		if (got != PIPE_BYTES)
			w_die("DATA: pipe %" PRIu64 ": EOF after %zu of %u bytes", k, got,
			      PIPE_BYTES);
		bad = pattern_check(w.seed + k, 0, buf, PIPE_BYTES);
		if (bad >= 0)
			w_die("DATA: pipe %" PRIu64 " byte %" PRId64 " is wrong", k, bad);
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
			w_die("pipe child %d failed (status 0x%x)", (int)pid, st);
		add(&me->bytes, PIPE_BYTES);
		add(&me->ops, 1);
		beat();
		k++;
		pace(&next, w.rate);
	}
	_exit(0);
}

/* ---- victim: echo traffic on TCP and AF_UNIX until its end (or SIGKILL) --------------- */

static void w_victim(void)
{
	int fds[2] = { w_connect(false), w_connect(true) };
	uint8_t out[VICTIM_MSG], in[VICTIM_MSG];
	uint64_t k = 0;

	while (ipcd_now_ns() < w.end_ns) {
		int fd = fds[k & 1];

		alarm(ALARM_S);
		pattern(w.seed, k * VICTIM_MSG, out, sizeof(out));
		w_send_all(fd, out, sizeof(out), "victim");
		w_recv_all(fd, in, sizeof(in), "victim");
		if (memcmp(in, out, sizeof(in)))
			w_die("DATA: victim round trip %" PRIu64 " differs", k);
		add(&me->ops, 1);
		add(&me->bytes, sizeof(in));
		k++;
		/* ~2000 round trips a second: enough to be killed mid-transfer */
		if (!(k & 3))
			usleep(2000);
	}
	_exit(0);
}

static int worker_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "worker", required_argument, NULL, 'w' },
		{ "side", required_argument, NULL, 's' },
		{ "end", required_argument, NULL, 'e' },
		{ "port", required_argument, NULL, 'p' },
		{ "path", required_argument, NULL, 'P' },
		{ "rate", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa = { .sa_handler = w_on_term };
	int c, r;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'w':
			for (r = 0; r < N_ROLE && strcmp(optarg, role_name[r]); r++)
				;
			if (r == N_ROLE)
				return 2;
			w.role = (enum role)r;
			break;
		case 's':
			w.side = !strcmp(optarg, "ipcd") ? SD_IPCD : SD_KERNEL;
			break;
		case 'e':
			w.end_ns = strtoull(optarg, NULL, 10);
			break;
		case 'p':
			w.port = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'P':
			w.path = optarg;
			break;
		case 'r':
			w.rate = strtod(optarg, NULL);
			break;
		case 'S':
			w.seed = strtoull(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	slots = mmap(NULL, SLOTS_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, SHM_FD, 0);
	if (slots == MAP_FAILED)
		w_die("mmap of the stats memfd (fd %d): %s", SHM_FD, strerror(errno));
	me = &slots[w.side * N_ROLE + w.role];
	if (w.rate <= 0)
		w.rate = 1;
	w_alarm_msg();
	signal(SIGALRM, w_on_alarm);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	switch (w.role) {
	case R_ECHO_TCP:
		w_echo(false);
		break;
	case R_ECHO_UNIX:
		w_echo(true);
		break;
	case R_FORKSRV:
		w_forksrv();
		break;
	case R_SINK:
		w_sink();
		break;
	case R_SOURCE:
		w_source();
		break;
	case R_PING:
		w_ping();
		break;
	case R_CHURN_TCP:
		w_churn(false, CHURN_MSG);
		break;
	case R_CHURN_UNIX:
		w_churn(true, CHURN_MSG);
		break;
	case R_FORKCLI:
		w_churn(false, FORK_MSG);
		break;
	case R_PAIR:
		w_pair();
		break;
	case R_PIPE:
		w_pipe();
		break;
	case R_VICTIM:
		w_victim();
		break;
	default:
		break;
	}
	return 2;
}

/* ---- the driver ----------------------------------------------------------------------- */

struct opts {
	double minutes;
	bool quick;
	double interval_s, wave_s, load;
	const char *json;
	const char *monitor, *ipcdctl, *run;
	bool keep;
	unsigned int only;	/* wave roles and victims that run (bits of enum role) */
};

/* operations (stream: MB) a second at --load 1, per role; victims: one per 400 ms */
static const double base_rate[N_ROLE] = {
	[R_SOURCE] = 50, [R_PING] = 1000, [R_CHURN_TCP] = 300, [R_CHURN_UNIX] = 200,
	[R_FORKCLI] = 20, [R_PAIR] = 10, [R_PIPE] = 10,
};
#define VICTIM_EVERY_NS	(400 * NS_PER_MS)

struct child {
	pid_t pid;
	enum role role;
	enum side side;
	uint64_t kill_at;	/* victims: SIGKILL at this time (0: never) */
	bool killed;		/* we sent SIGKILL */
	bool done;
	int status;
};

/* What one look at the monitor, the long-lived workers and /dev/shm gives. */
struct look {
	long mon_rss, mon_anon, mon_fds, mon_vmas, mon_memfds;	/* kB, counts */
	uint64_t procs, binds, conns, lanes;			/* ipcdctl status, counters */
	uint64_t faults, fd_faults, reaped, dead_ends, reset, fallbacks;
	uint64_t created, pipes, pairs, unix_conns;
	long shm;
	long wk_rss, wk_anon, wk_fds;				/* summed, kB */
};

struct sample {
	double t;		/* s since the start */
	enum side side;
	int phase;
	bool steady;
	struct look l;
	double dt;
	uint64_t ops[N_ROLE], bytes[N_ROLE];
	double p50[N_ROLE], p99[N_ROLE];	/* us */
	double mon_cpu;		/* % of one CPU */
	double load1;
	unsigned int victims, killed;
};

struct quiet {
	double t;
	enum side side;
	int wave;
	bool judged, match, is_ref;
	double settle_s;	/* how long it took to match */
	struct look l;
};

static struct opts o = { .interval_s = 10, .load = 1, .json = "soak.json" };
static char self_exe[PATH_MAX];
static pid_t driver_pid;
static char tmpdir[64], mon_sock[128], mon_log[128], unix_path[N_SIDE][128];
static volatile pid_t mon_pid = -1;
static char mon_config[2048];
static char **env_kernel, **env_ipcd;
static int stats_fd = -1;
static struct child kids[MAX_CHILD];
static struct sample *smp;
static unsigned int n_smp;
static struct quiet qp[MAX_QUIET];
static unsigned int n_qp;
static char errs[64][ERR_LEN];	/* the first 64 failures; all are counted */
static unsigned int n_err;		/* every failure: the exit status */
static unsigned int n_hard;		/* those that stop the run (not growth) */
static uint64_t t0_ns, warm_end_ns, next_sample_ns, last_sample_ns;
static uint64_t phase_end_ns;		/* the long-lived clients stop then */
static struct slot *prev;		/* the slots at the last sample */
static uint64_t tot_hist[N_SIDE][N_ROLE][NB];
static uint64_t tot_ops[N_SIDE][N_ROLE], tot_bytes[N_SIDE][N_ROLE];
static double tot_s[N_SIDE];
static unsigned int v_started, v_killed, v_tot_started[N_SIDE], v_tot_killed[N_SIDE];
static uint64_t mon_ticks_prev;
static struct look idle_before, idle_after;
static bool have_ref, idle_ok, idle_checked, have_first;
static struct look ref, first_q;		/* the reference; the ipcd phase's first point */
static double cpu_s[N_SIDE], wall_s[N_SIDE], mon_cpu_s[N_SIDE];
static int cur_phase;
static enum side cur_side;
static uint64_t cur_srv_port[N_SIDE];

static void stop_all(void);

static __attribute__((format(printf, 2, 0))) void failed_record(bool hard, const char *fmt,
									 va_list ap)
{
	char line[ERR_LEN];

	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "ipcd-soak: FAILED: %s\n", line);
	if (n_err < IPCD_ARRAY_SIZE(errs))
		memcpy(errs[n_err], line, sizeof(line));
	n_err++;
	n_hard += hard;
}

static __attribute__((format(printf, 1, 2))) void failed(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	failed_record(true, fmt, ap);
	va_end(ap);
}

/*
 * Growth, or a wave's worker that failed, fails the run but does not stop
 * it: the later quiescent points and the idle check tell whether what was
 * not given back is lost for good, and the figures are still taken.
 */
static __attribute__((format(printf, 1, 2))) void failed_soft(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	failed_record(false, fmt, ap);
	va_end(ap);
}

static __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	ipcd_bench_vsay("ipcd-soak", fmt, ap);
	va_end(ap);
	if (getpid() != driver_pid)
		_exit(3);
	stop_all();
	if (tmpdir[0])
		fprintf(stderr, "ipcd-soak: logs kept in %s\n", tmpdir);
	exit(1);
}

static void on_signal(int sig)
{
	unsigned int i;

	for (i = 0; i < MAX_CHILD; i++)
		if (kids[i].pid > 0 && !kids[i].done)
			kill(kids[i].pid, SIGKILL);
	if (mon_pid > 0)
		kill(mon_pid, SIGTERM);
	ipcd_bench_say_raw("ipcd-soak: interrupted\n");
	_exit(128 + sig);
}

static char *xstrdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xstrdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("out of memory");
	return s;
}

static char **env_build(bool preload)
{
	size_t n = 0, k = 0, i;
	char **e;

	while (environ[n])
		n++;
	e = calloc(n + 2, sizeof(*e));
	if (!e)
		die("out of memory");
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) &&
		    strncmp(environ[i], "IPCD_SOCKET=", 12))
			e[k++] = environ[i];
	/* ipcd-run puts libipcd.so in LD_PRELOAD; the monitor is ours */
	if (preload)
		e[k++] = xstrdup_printf("IPCD_SOCKET=%s", mon_sock);
	e[k] = NULL;
	return e;
}

/* Run @argv (not preloaded), its stdout and stderr into @out; the wait status or -1 (timed out). */
static int run_capture(const char *const argv[], struct ipcd_bench_buf *out, uint64_t timeout_ns)
{
	int st, rc = ipcd_bench_run_capture(argv, env_kernel, out, timeout_ns, 100, &st);

	if (rc && rc != -ETIMEDOUT)
		die("running %s: %s", argv[0], strerror(-rc));
	return rc ? -1 : st;
}

/* ---- the monitor ---------------------------------------------------------------------- */

static bool monitor_alive(void)
{
	int st;

	if (mon_pid <= 0)
		return false;
	if (waitpid(mon_pid, &st, WNOHANG) == mon_pid) {
		char how[96];

		ipcd_bench_describe_status(st, how, sizeof(how));
		failed("the monitor %s (log: %s)", how, mon_log);
		mon_pid = -1;
		return false;
	}
	return true;
}

static void stop_monitor(void)
{
	uint64_t until = ipcd_now_ns() + 5 * NS_PER_S;
	pid_t pid = mon_pid;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	while (waitpid(pid, NULL, WNOHANG) == 0) {
		if (ipcd_now_ns() > until) {
			failed("the monitor did not exit on SIGTERM within 5 s");
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			break;
		}
		usleep(10000);
	}
	mon_pid = -1;
}

static void start_monitor(void)
{
	const char *argv[] = { o.monitor, "--print-default-config", NULL };
	struct ipcd_bench_buf def = { 0 };
	char conf[128];
	int st, i;

	st = run_capture(argv, &def, 10 * NS_PER_S);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("%s --print-default-config failed: %.200s", o.monitor, def.p);
	snprintf(conf, sizeof(conf), "%s/monitor.conf", tmpdir);
	st = ipcd_bench_write_conf(def.p, conf, mon_sock, mon_config, sizeof(mon_config));
	free(def.p);
	if (st)
		die("%s: %s", conf, strerror(-st));
	mon_pid = ipcd_bench_spawn_monitor(o.monitor, conf, mon_log, env_kernel);
	if (mon_pid < 0)
		die("fork: %s", strerror(errno));
	for (i = 0; i < 500; i++) {
		struct stat sb;

		if (stat(mon_sock, &sb) == 0)
			return;
		if (!monitor_alive())
			die("the monitor exited at start (log: %s)", mon_log);
		usleep(10000);
	}
	die("the monitor did not create %s within 5 s (log: %s)", mon_sock, mon_log);
}

/* ---- looking at processes ------------------------------------------------------------- */

static void proc_mem(pid_t pid, long *rss, long *anon)
{
	char path[64], line[256];
	FILE *f;

	*rss = *anon = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmRSS:", 6))
			*rss = strtol(line + 6, NULL, 10);
		else if (!strncmp(line, "RssAnon:", 8))
			*anon = strtol(line + 8, NULL, 10);
	}
	fclose(f);
}

static long count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static long proc_fds(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	return count_dir(path);
}

static void proc_maps(pid_t pid, long *vmas, long *memfds)
{
	char path[64], line[1024];
	FILE *f;

	*vmas = *memfds = -1;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	*vmas = *memfds = 0;
	while (fgets(line, sizeof(line), f)) {
		(*vmas)++;
		*memfds += strstr(line, "/memfd:") != NULL;
	}
	fclose(f);
}

/* utime + stime of @pid in clock ticks */
static uint64_t proc_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');	/* the command may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			 &st) != 2)
		return 0;
	return ut + st;
}

static bool query(const char *what, struct ipcd_bench_buf *out)
{
	const char *argv[] = { o.ipcdctl, "--socket", mon_sock, "--json", what, NULL };
	int st = run_capture(argv, out, 10 * NS_PER_S);

	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		out->p[strcspn(out->p, "\n")] = '\0';
		failed("ipcdctl %s %s: %.200s", what, st == -1 ? "timed out" : "failed", out->p);
		return false;
	}
	return true;
}

static void look(struct look *l)
{
	struct ipcd_bench_buf s = { 0 }, c = { 0 };
	const char *obj, *end;
	unsigned int i;

	memset(l, 0, sizeof(*l));
	if (monitor_alive()) {
		proc_mem(mon_pid, &l->mon_rss, &l->mon_anon);
		l->mon_fds = proc_fds(mon_pid);
		proc_maps(mon_pid, &l->mon_vmas, &l->mon_memfds);
		if (query("status", &s) && query("counters", &c)) {
			l->procs = ipcd_bench_json_u64(s.p, NULL, "processes");
			l->binds = ipcd_bench_json_u64(s.p, NULL, "binds");
			l->conns = ipcd_bench_json_u64(s.p, NULL, "connections");
			l->faults = ipcd_bench_json_u64(c.p, NULL, "faults");
			l->reaped = ipcd_bench_json_u64(c.p, NULL, "reaped");
			obj = ipcd_bench_json_obj(c.p, "connections", &end);
			if (obj) {
				l->created = ipcd_bench_json_u64(obj, end, "created");
				l->dead_ends = ipcd_bench_json_u64(obj, end, "dead_ends");
				l->reset = ipcd_bench_json_u64(obj, end, "reset");
				l->fd_faults = ipcd_bench_json_u64(obj, end, "fd_faults");
				l->pipes = ipcd_bench_json_u64(obj, end, "pipes");
				l->pairs = ipcd_bench_json_u64(obj, end, "socketpairs");
				l->unix_conns = ipcd_bench_json_u64(obj, end, "unix_connected");
			}
			obj = ipcd_bench_json_obj(c.p, "lanes", &end);
			if (obj)
				l->lanes = ipcd_bench_json_u64(obj, end, "open");
			obj = ipcd_bench_json_obj(c.p, "fallbacks", &end);
			if (obj)
				l->fallbacks = ipcd_bench_json_u64(obj, NULL, "total");
		}
	}
	free(s.p);
	free(c.p);
	l->shm = count_dir("/dev/shm");
	for (i = 0; i < MAX_CHILD; i++) {
		long rss, anon;

		if (kids[i].pid <= 0 || kids[i].done || kids[i].role >= N_LONG)
			continue;
		proc_mem(kids[i].pid, &rss, &anon);
		l->wk_rss += IPCD_MAX(rss, 0L);
		l->wk_anon += IPCD_MAX(anon, 0L);
		l->wk_fds += IPCD_MAX(proc_fds(kids[i].pid), 0L);
	}
}

/* ---- children ------------------------------------------------------------------------- */

static struct child *spawn(enum role role, enum side side, uint64_t end_ns, uint64_t seed)
{
	char end[32], rate[32], port[16], sd[32];
	const char *argv[24];
	struct child *c = NULL;
	unsigned int i, n = 0;
	pid_t pid;

	/* a child reap() saw exit was judged then: its slot is free */
	for (i = 0; i < MAX_CHILD && !c; i++)
		if (kids[i].pid <= 0 || kids[i].done)
			c = &kids[i];
	if (!c)
		die("more than %d workers at once", MAX_CHILD);
	snprintf(end, sizeof(end), "%" PRIu64, end_ns);
	snprintf(rate, sizeof(rate), "%g", base_rate[role] * o.load);
	snprintf(port, sizeof(port), "%u",
		 (unsigned int)rd(&slots[side * N_ROLE +
				  (role == R_SOURCE ? R_SINK :
				   role == R_FORKCLI ? R_FORKSRV : R_ECHO_TCP)].ready));
	snprintf(sd, sizeof(sd), "%" PRIu64, seed);
	if (side == SD_IPCD)
		argv[n++] = o.run;
	argv[n++] = self_exe;
	argv[n++] = "--worker";
	argv[n++] = role_name[role];
	argv[n++] = "--side";
	argv[n++] = side_name[side];
	argv[n++] = "--end";
	argv[n++] = end;
	argv[n++] = "--rate";
	argv[n++] = rate;
	argv[n++] = "--port";
	argv[n++] = port;
	argv[n++] = "--path";
	argv[n++] = unix_path[side];
	argv[n++] = "--seed";
	argv[n++] = sd;
	argv[n] = NULL;

	pid = ipcd_bench_fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		char log[160];
		int fd, nul;

		snprintf(log, sizeof(log), "%s/%s-%s.log", tmpdir, side_name[side],
			 role_name[role]);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		ipcd_bench_child_signals();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		/* dup2() onto itself would keep O_CLOEXEC */
		if (stats_fd == SHM_FD ? fcntl(SHM_FD, F_SETFD, 0) : dup2(stats_fd, SHM_FD) < 0)
			_exit(127);
		ipcd_bench_exec(argv, side == SD_IPCD ? env_ipcd : env_kernel);
	}
	memset(c, 0, sizeof(*c));
	c->pid = pid;
	c->role = role;
	c->side = side;
	return c;
}

static void role_log(enum side side, enum role role, char *b, size_t len)
{
	char log[160];

	snprintf(log, sizeof(log), "%s/%s-%s.log", tmpdir, side_name[side], role_name[role]);
	ipcd_bench_log_head(log, 3, b, len);
}

/* Reap what exited; a worker that ended badly is an error (victims we killed excepted). */
static void reap(void)
{
	unsigned int i;

	for (i = 0; i < MAX_CHILD; i++) {
		struct child *c = &kids[i];
		char how[96], head[300];
		int st;

		if (c->pid <= 0 || c->done || waitpid(c->pid, &st, WNOHANG) != c->pid)
			continue;
		c->done = true;
		c->status = st;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			continue;
		if (c->killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
			continue;
		ipcd_bench_describe_status(st, how, sizeof(how));
		role_log(c->side, c->role, head, sizeof(head));
		/* the run goes on without a wave's worker, not without a long-lived one */
		if (c->role < N_LONG)
			failed("%s %s (pid %d) %s: %s", side_name[c->side], role_name[c->role],
			       (int)c->pid, how, head[0] ? head : "(no output)");
		else
			failed_soft("%s %s (pid %d) %s: %s", side_name[c->side],
				    role_name[c->role], (int)c->pid, how,
				    head[0] ? head : "(no output)");
	}
}

static void forget_done(void)
{
	unsigned int i;

	for (i = 0; i < MAX_CHILD; i++)
		if (kids[i].pid > 0 && kids[i].done)
			kids[i].pid = 0;
}

static unsigned int running(bool (*match)(const struct child *))
{
	unsigned int i, n = 0;

	for (i = 0; i < MAX_CHILD; i++)
		n += kids[i].pid > 0 && !kids[i].done && match(&kids[i]);
	return n;
}

static bool is_any(const struct child *c)
{
	(void)c;
	return true;
}

static bool is_wave(const struct child *c)
{
	return c->role >= N_LONG;
}

static bool is_client(const struct child *c)
{
	return c->role == R_SOURCE || c->role == R_PING || c->role == R_SINK;
}

static void kill_all(void)
{
	unsigned int i;

	for (i = 0; i < MAX_CHILD; i++)
		if (kids[i].pid > 0 && !kids[i].done) {
			kill(kids[i].pid, SIGKILL);
			kids[i].killed = true;
			waitpid(kids[i].pid, NULL, 0);
			kids[i].done = true;
		}
	forget_done();
}

static void stop_all(void)
{
	kill_all();
	stop_monitor();
}

/* ---- sampling ------------------------------------------------------------------------- */

static double now_s(void)
{
	return (double)(ipcd_now_ns() - t0_ns) / 1e9;
}

static double us_or_nan(double ns)
{
	return isnan(ns) ? NAN : ns / 1000;
}

static void print_sample_head(void)
{
	static const char *const fmt =
		"%7s %-6s %7s %7s %5s %5s %5s %5s %4s %7s %5s %7s %13s %15s %15s %7s %13s %7s "
		"%5s\n";

	putchar('\n');
	printf(fmt, "t(s)", "side", "monRSS", "monAnon", "fds", "procs", "conns", "lanes", "shm",
	       "wkRSS", "wkFds", "MB/s", "ping p50/p99", "tcp/s p50/p99", "unix/s p50/p99",
	       "fork/s", "pair p50/p99", "pipeMB", "load");
	printf(fmt, "", "", "MiB", "MiB", "", "", "", "", "", "MiB", "", "stream", "us", "us", "us",
	       "", "us", "/s", "1min");
}

static void print_sample(const struct sample *s)
{
	printf("%7.0f %-6s %7.2f %7.2f %5ld %5" PRIu64 " %5" PRIu64 " %5" PRIu64 " %4ld %7.1f "
	       "%5ld %7.1f %6.1f/%-6.1f %5.0f %4.0f/%-4.0f %5.0f %4.0f/%-4.0f %7.1f %6.1f/%-6.1f "
	       "%7.1f %5.2f%s\n",
	       s->t, side_name[s->side], s->l.mon_rss / 1024.0, s->l.mon_anon / 1024.0,
	       s->l.mon_fds, s->l.procs, s->l.conns, s->l.lanes, s->l.shm, s->l.wk_rss / 1024.0,
	       s->l.wk_fds, s->bytes[R_SINK] / s->dt / 1e6, s->p50[R_PING], s->p99[R_PING],
	       s->ops[R_CHURN_TCP] / s->dt, s->p50[R_CHURN_TCP], s->p99[R_CHURN_TCP],
	       s->ops[R_CHURN_UNIX] / s->dt, s->p50[R_CHURN_UNIX], s->p99[R_CHURN_UNIX],
	       s->ops[R_FORKCLI] / s->dt, s->p50[R_PAIR], s->p99[R_PAIR],
	       s->bytes[R_PIPE] / s->dt / 1e6, s->load1,
	       s->side == SD_IPCD && !s->steady ? " warm-up" : "");
	fflush(stdout);
}

/* The interval's figures (slot differences since the last sample) and one look. */
static void take_sample(void)
{
	uint64_t now = ipcd_now_ns(), ticks;
	struct sample *s;
	double la[3];
	unsigned int r, b;

	if (n_smp == MAX_SAMPLES)
		return;
	s = &smp[n_smp++];
	memset(s, 0, sizeof(*s));
	s->dt = (double)(now - last_sample_ns) / 1e9;
	s->side = cur_side;
	s->phase = cur_phase;
	s->steady = cur_side == SD_IPCD && now >= warm_end_ns;
	for (r = 0; r < N_ROLE; r++) {
		unsigned int k = cur_side * N_ROLE + r;
		uint64_t h[NB];

		/* only the current side's workers run; the other side's slots stand still */
		s->ops[r] = rd(&slots[k].ops) - prev[k].ops;
		s->bytes[r] = rd(&slots[k].bytes) - prev[k].bytes;
		prev[k].ops += s->ops[r];
		prev[k].bytes += s->bytes[r];
		for (b = 0; b < NB; b++) {
			uint64_t v = rd(&slots[k].hist[b]);

			h[b] = v - prev[k].hist[b];
			prev[k].hist[b] = v;
			tot_hist[cur_side][r][b] += h[b];
		}
		s->p50[r] = us_or_nan(hist_q(h, 0.5));
		s->p99[r] = us_or_nan(hist_q(h, 0.99));
		tot_ops[cur_side][r] += s->ops[r];
		tot_bytes[cur_side][r] += s->bytes[r];
	}
	tot_s[cur_side] += s->dt;
	ticks = monitor_alive() ? proc_ticks(mon_pid) : mon_ticks_prev;
	s->mon_cpu = 100.0 * (double)(ticks - mon_ticks_prev) / (double)sysconf(_SC_CLK_TCK) /
		     s->dt;
	mon_cpu_s[cur_side] += (double)(ticks - mon_ticks_prev) / (double)sysconf(_SC_CLK_TCK);
	mon_ticks_prev = ticks;
	s->victims = v_started;
	s->killed = v_killed;
	v_started = v_killed = 0;
	look(&s->l);
	s->t = now_s();
	getloadavg(la, 3);
	s->load1 = la[0];
	last_sample_ns = now;
	print_sample(s);
}

/* ---- one tick of the driver: reap, sample, watch for hangs, kill victims -------------- */

static void tick(void)
{
	uint64_t now = ipcd_now_ns();
	unsigned int i;

	reap();
	for (i = 0; i < MAX_CHILD; i++) {
		struct child *c = &kids[i];

		if (c->pid <= 0 || c->done)
			continue;
		if (c->kill_at && now >= c->kill_at && !c->killed) {
			kill(c->pid, SIGKILL);
			c->killed = true;
			v_killed++;
			v_tot_killed[c->side]++;
		}
		if (c->role < N_LONG) {
			uint64_t beat = rd(&slots[c->side * N_ROLE + c->role].beat_ns);

			if (beat && now > beat + STALE_NS) {
				failed("HANG: %s %s (pid %d) made no progress for %.0f s",
				       side_name[c->side], role_name[c->role], (int)c->pid,
				       (double)(now - beat) / 1e9);
				kill(c->pid, SIGKILL);
				c->killed = true;
			}
		}
	}
	for (i = 0; i < N_SIDE; i++) {
		static uint64_t seen[N_SIDE];
		uint64_t f = rd(&slots[i * N_ROLE + R_FORKSRV].fails);
		char head[300];

		if (f == seen[i])
			continue;
		role_log((enum side)i, R_FORKSRV, head, sizeof(head));
		failed_soft("%s forksrv: %" PRIu64 " forked children failed: %s", side_name[i],
		     f - seen[i], head[0] ? head : "(no output)");
		seen[i] = f;
	}
	if (now >= next_sample_ns) {
		take_sample();
		next_sample_ns += (uint64_t)(o.interval_s * 1e9);
		if (next_sample_ns < now)
			next_sample_ns = now + (uint64_t)(o.interval_s * 1e9);
	}
	if (mon_pid <= 0 || !monitor_alive()) {
		if (!n_hard)
			failed("the monitor is gone (log: %s)", mon_log);
	}
	usleep(TICK_MS * 1000);
}

/* Tick until no child matches @match, at most until @until; false (and an error) past it. */
static bool wait_for(bool (*match)(const struct child *), uint64_t until, const char *what)
{
	while (running(match)) {
		if (n_hard)
			return false;
		if (ipcd_now_ns() > until) {
			unsigned int i;

			for (i = 0; i < MAX_CHILD; i++)
				if (kids[i].pid > 0 && !kids[i].done && match(&kids[i]))
					failed("HANG: %s %s (pid %d) still running %.0f s after "
					       "%s", side_name[kids[i].side],
					       role_name[kids[i].role], (int)kids[i].pid,
					       (double)EXIT_NS / 1e9, what);
			return false;
		}
		tick();
	}
	reap();
	forget_done();
	return !n_hard;
}

static bool wait_ready(enum side side, enum role role)
{
	uint64_t until = ipcd_now_ns() + START_NS;

	while (!rd(&slots[side * N_ROLE + role].ready)) {
		if (n_hard)
			return false;
		if (ipcd_now_ns() > until) {
			failed("%s %s did not listen within %.0f s", side_name[side],
			       role_name[role], (double)START_NS / 1e9);
			return false;
		}
		tick();
	}
	return true;
}

/* ---- quiescent points ----------------------------------------------------------------- */

static bool same(const struct look *a, const struct look *b)
{
	return a->mon_fds == b->mon_fds && a->mon_memfds == b->mon_memfds &&
	       a->procs == b->procs && a->binds == b->binds && a->conns == b->conns &&
	       a->lanes == b->lanes && a->shm == b->shm && a->wk_fds == b->wk_fds;
}

static bool same_objects(const struct look *a, const struct look *b)
{
	return a->procs == b->procs && a->binds == b->binds && a->conns == b->conns &&
	       a->lanes == b->lanes;
}

static void print_look_diff(const struct look *a, const struct look *b)
{
	printf("  %-18s %8s %8s\n", "", "now", "expected");
#define D(f) \
	if (a->f != b->f) \
		printf("  %-18s %8ld %8ld\n", #f, (long)a->f, (long)b->f);
	D(mon_fds) D(mon_memfds) D(procs) D(binds) D(conns) D(lanes) D(shm) D(wk_fds)
#undef D
}

/*
 * What the monitor holds, for the finding: ipcdctl connections, processes,
 * listeners and counters into TAG-WHAT.txt in the temp dir; the connections
 * also on stdout.
 */
static void dump_monitor(const char *tag)
{
	static const char *const what[] = { "connections", "processes", "listeners", "counters" };
	unsigned int i;

	for (i = 0; i < IPCD_ARRAY_SIZE(what); i++) {
		const char *argv[] = { o.ipcdctl, "--socket", mon_sock, what[i], NULL };
		struct ipcd_bench_buf out = { 0 };
		char path[192];
		FILE *f;

		run_capture(argv, &out, 10 * NS_PER_S);
		snprintf(path, sizeof(path), "%s/%s-%s.txt", tmpdir, tag, what[i]);
		f = fopen(path, "we");
		if (f) {
			fputs(out.p ? out.p : "", f);
			fclose(f);
		}
		if (i == 0)
			printf("  ipcdctl connections (%s):\n%s", path, out.p ? out.p : "");
		free(out.p);
	}
}

/*
 * Only the long-lived workers run: the monitor's objects and fds, and the
 * workers' fds, must come back to what they were at the reference point. The
 * first point after the warm-up is the reference, once two looks 200 ms apart
 * agree (lazy CLOSEs and lane endings take a moment).
 */
static void quiescent(int wave)
{
	uint64_t start = ipcd_now_ns(), until = start + QUIET_NS;
	struct quiet *q = n_qp < MAX_QUIET ? &qp[n_qp++] : &qp[MAX_QUIET - 1];
	struct look l, last;
	bool judged = cur_side == SD_IPCD && have_ref, match = false;

	memset(q, 0, sizeof(*q));
	look(&last);
	while (!n_hard && ipcd_now_ns() < until) {
		usleep(200 * 1000);
		reap();
		look(&l);
		if (judged ? same(&l, &ref) : same(&l, &last)) {
			match = true;
			last = l;
			break;
		}
		last = l;
	}
	q->t = now_s();
	q->side = cur_side;
	q->wave = wave;
	q->l = last;
	q->settle_s = (double)(ipcd_now_ns() - start) / 1e9;
	if (ipcd_now_ns() + NS_PER_S >= phase_end_ns) {
		/* a wave that ended late: the long-lived clients are stopping */
		printf("  quiescent %s wave %d at %.0f s: cut by the end of the phase, not "
		       "judged\n", side_name[cur_side], wave, now_s());
		n_qp--;
		return;
	}
	q->judged = judged;
	q->match = match;
	printf("  quiescent %s wave %d at %.0f s: monitor fds %ld memfds %ld, processes %" PRIu64
	       ", connections %" PRIu64 ", binds %" PRIu64 ", lanes %" PRIu64
	       ", /dev/shm %ld, workers' fds %ld, settled in %.1f s%s\n",
	       side_name[cur_side], wave, q->t, last.mon_fds, last.mon_memfds, last.procs,
	       last.conns, last.binds, last.lanes, last.shm, last.wk_fds, q->settle_s,
	       judged ? (match ? ": same as the reference" : ": DIFFERENT from the reference")
	       : cur_side == SD_IPCD && ipcd_now_ns() >= warm_end_ns
	       ? (match ? ": the reference" : ": did not settle") : " (warm-up or kernel)");
	if (judged && !match) {
		char tag[32];

		print_look_diff(&last, &ref);
		snprintf(tag, sizeof(tag), "wave%d", wave);
		dump_monitor(tag);
		failed_soft("growth: quiescent point of wave %d (at %.0f s) differs from the "
			    "reference", wave, q->t);
	}
	/*
	 * The objects (not the fds, which caches may still add to in the
	 * warm-up) are what the long-lived workers hold from the first point
	 * on: none may be added during the warm-up either.
	 */
	if (cur_side == SD_IPCD && !have_first) {
		first_q = last;
		have_first = true;
	} else if (cur_side == SD_IPCD && !same_objects(&last, &first_q)) {
		char tag[32];

		printf("  objects: processes %" PRIu64 " connections %" PRIu64 " binds %" PRIu64
		       " lanes %" PRIu64 ", at the first point %" PRIu64 " %" PRIu64 " %" PRIu64
		       " %" PRIu64 "\n", last.procs, last.conns, last.binds, last.lanes,
		       first_q.procs, first_q.conns, first_q.binds, first_q.lanes);
		if (!judged || match) {
			snprintf(tag, sizeof(tag), "wave%d-objects", wave);
			dump_monitor(tag);
		}
		failed_soft("growth: quiescent point of wave %d (at %.0f s) holds other objects "
			    "than the first one", wave, q->t);
	}
	if (!judged && cur_side == SD_IPCD && ipcd_now_ns() >= warm_end_ns) {
		if (!match)
			failed_soft("the first quiescent point after the warm-up did not settle "
				    "within %.0f s", (double)QUIET_NS / 1e9);
		ref = last;
		have_ref = true;
		q->is_ref = true;
	}
	fflush(stdout);
}

/* ---- a phase: the long-lived workers, waves of the others, victims -------------------- */

static uint64_t seed_next(void)
{
	static uint64_t s = 0x50a4;

	return mix(s++);
}

static void run_phase(enum side side, int phase, uint64_t dur_ns)
{
	uint64_t start = ipcd_now_ns(), end = start + dur_ns;
	uint64_t wave_ns = (uint64_t)(o.wave_s * 1e9);
	enum role r;
	int wave = 0;
	struct rusage ru0, ru1;
	unsigned int i;

	cur_side = side;
	cur_phase = phase;
	getrusage(RUSAGE_CHILDREN, &ru0);
	printf("\n== phase %d: %s, %.0f s ==\n", phase + 1,
	       side == SD_IPCD ? "ipcd (every worker under ipcd-run)" : "kernel (no preload)",
	       (double)dur_ns / 1e9);
	for (r = 0; r < N_ROLE; r++)
		__atomic_store_n(&slots[side * N_ROLE + r].ready, 0, __ATOMIC_RELAXED);
	for (r = 0; r < N_LONG; r++)
		__atomic_store_n(&slots[side * N_ROLE + r].beat_ns, 0, __ATOMIC_RELAXED);
	spawn(R_ECHO_TCP, side, end, seed_next());
	spawn(R_ECHO_UNIX, side, end, seed_next());
	spawn(R_FORKSRV, side, end, seed_next());
	spawn(R_SINK, side, end, 0x5eed);
	if (!wait_ready(side, R_ECHO_TCP) || !wait_ready(side, R_ECHO_UNIX) ||
	    !wait_ready(side, R_FORKSRV) || !wait_ready(side, R_SINK))
		return;
	spawn(R_SOURCE, side, end, 0x5eed);
	spawn(R_PING, side, end, seed_next());
	cur_srv_port[side] = rd(&slots[side * N_ROLE + R_ECHO_TCP].ready);
	print_sample_head();

	/*
	 * A wave needs at least half its length, and its quiescent point must
	 * end before the long-lived clients do: the phase's last QUIET_NS + 7 s
	 * have no wave.
	 */
	phase_end_ns = end;
	while (!n_hard && ipcd_now_ns() + wave_ns / 2 + QUIET_NS + 7 * NS_PER_S < end) {
		uint64_t w_end = IPCD_MIN(ipcd_now_ns() + wave_ns, end - QUIET_NS - 7 * NS_PER_S);
		uint64_t next_victim = ipcd_now_ns();

		wave++;
		for (r = R_CHURN_TCP; r <= R_PIPE; r++)
			if (o.only & (1u << r))
				spawn(r, side, w_end, seed_next());
		while (!n_hard && ipcd_now_ns() < w_end) {
			uint64_t now = ipcd_now_ns();

			/* victims: one per 400 ms; half exit by themselves, half are SIGKILLed */
			if (now >= next_victim && now + NS_PER_S < w_end &&
			    (o.only & (1u << R_VICTIM))) {
				uint64_t s = seed_next();
				uint64_t life = (300 + s % 2700) * NS_PER_MS;
				struct child *c = spawn(R_VICTIM, side,
							IPCD_MIN(now + life, w_end), s);

				if ((s >> 32) & 1)
					c->kill_at = now + (100 * NS_PER_MS) +
						     (s >> 40) % (life - 100 * NS_PER_MS);
				v_started++;
				v_tot_started[side]++;
				next_victim += VICTIM_EVERY_NS;
			}
			tick();
		}
		if (!wait_for(is_wave, w_end + EXIT_NS, "the end of their wave"))
			break;
		quiescent(wave);
	}
	while (!n_hard && ipcd_now_ns() < end)
		tick();
	/* source and ping stop at @end, the sink at the stream's EOF; then the servers */
	if (!n_hard)
		wait_for(is_client, end + EXIT_NS, "the end of the phase");
	for (i = 0; i < MAX_CHILD; i++)
		if (kids[i].pid > 0 && !kids[i].done)
			kill(kids[i].pid, SIGTERM);
	if (!n_hard)
		wait_for(is_any, ipcd_now_ns() + EXIT_NS, "SIGTERM");
	take_sample();
	getrusage(RUSAGE_CHILDREN, &ru1);
	cpu_s[side] += (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
		       (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
		       (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
		       (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
	wall_s[side] += (double)(ipcd_now_ns() - start) / 1e9;
}

/* After the ipcd phase: the monitor holds nothing and has the fds it had before the load. */
static void check_idle(void)
{
	uint64_t until = ipcd_now_ns() + IDLE_NS;

	idle_checked = true;
	do {
		look(&idle_after);
		idle_ok = !idle_after.procs && !idle_after.conns && !idle_after.binds &&
			  !idle_after.lanes && idle_after.mon_fds == idle_before.mon_fds &&
			  idle_after.mon_memfds == idle_before.mon_memfds &&
			  idle_after.shm == idle_before.shm;
		if (idle_ok || n_hard)
			break;
		usleep(250 * 1000);
	} while (ipcd_now_ns() < until);
	printf("\nafter the ipcd phase: monitor fds %ld (before the load %ld), memfds %ld (%ld), "
	       "processes %" PRIu64 ", connections %" PRIu64 ", binds %" PRIu64 ", lanes %"
	       PRIu64 ", /dev/shm %ld (%ld), RSS %.2f MiB (%.2f), RssAnon %.2f MiB (%.2f): %s\n",
	       idle_after.mon_fds, idle_before.mon_fds, idle_after.mon_memfds,
	       idle_before.mon_memfds, idle_after.procs, idle_after.conns, idle_after.binds,
	       idle_after.lanes, idle_after.shm, idle_before.shm, idle_after.mon_rss / 1024.0,
	       idle_before.mon_rss / 1024.0, idle_after.mon_anon / 1024.0,
	       idle_before.mon_anon / 1024.0, idle_ok ? "back to idle" : "NOT back to idle");
	if (!idle_ok && !n_hard)
		dump_monitor("idle");
	if (!idle_ok)
		failed_soft("growth: after the ipcd phase the monitor is not back to its idle "
			    "state within %.0f s", (double)IDLE_NS / 1e9);
}

/* ---- the verdict and the report ------------------------------------------------------- */

struct trend {
	const char *name;
	bool quiet;		/* over the quiescent points (else every steady sample) */
	bool judged;		/* a growth limit applies */
	unsigned int n;
	double first, last, growth, limit, per_hour;
	bool ok;
};

/*
 * RssAnon is the heap: judged over every steady sample. VmRSS also counts the
 * rings of the connections alive at that moment (RssShmem), so it is judged
 * at the quiescent points, where the connections are always the same. The
 * counts under load (fds, mappings, connections) move with the load at the
 * moment of the sample and are only shown: the quiescent points judge them
 * exactly.
 */
enum tfield { TF_MON_ANON, TF_WK_ANON, TF_MON_RSS, TF_WK_RSS, TF_MON_ANON_Q, TF_MON_RSS_LOAD,
	      TF_MON_FDS, TF_MON_VMAS, TF_WK_FDS, TF_CONNS, N_TREND };
static const struct {
	const char *name;
	bool quiet, judged;
} tdef[N_TREND] = {
	[TF_MON_ANON] = { "monitor RssAnon KiB", false, true },
	[TF_WK_ANON] = { "workers RssAnon KiB", false, true },
	[TF_MON_RSS] = { "monitor VmRSS KiB, q", true, true },
	[TF_WK_RSS] = { "workers VmRSS KiB, q", true, true },
	[TF_MON_ANON_Q] = { "monitor RssAnon KiB, q", true, true },
	[TF_MON_RSS_LOAD] = { "monitor VmRSS KiB", false, false },
	[TF_MON_FDS] = { "monitor fds", false, false },
	[TF_MON_VMAS] = { "monitor mappings", false, false },
	[TF_WK_FDS] = { "workers fds", false, false },
	[TF_CONNS] = { "connections", false, false },
};
static struct trend trends[N_TREND];

static double median(double *v, unsigned int n)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), ipcd_bench_cmp_dbl);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double field(const struct look *l, enum tfield k)
{
	switch (k) {
	case TF_MON_ANON:
	case TF_MON_ANON_Q:
		return (double)l->mon_anon;
	case TF_WK_ANON:
		return (double)l->wk_anon;
	case TF_MON_RSS:
	case TF_MON_RSS_LOAD:
		return (double)l->mon_rss;
	case TF_WK_RSS:
		return (double)l->wk_rss;
	case TF_MON_FDS:
		return (double)l->mon_fds;
	case TF_MON_VMAS:
		return (double)l->mon_vmas;
	case TF_WK_FDS:
		return (double)l->wk_fds;
	default:
		return (double)l->conns;
	}
}

/*
 * Steady state (the ipcd phase after the warm-up), in thirds: growth is the
 * median of the last third minus the median of the first; a judged figure
 * may grow by max(1 MiB, 2 %) at most. The slope (least squares) is shown
 * per hour. Fewer than 3 points (a --quick run's quiescent points may be
 * that few): shown, not judged.
 */
static void evaluate_trends(void)
{
	double *v = calloc(MAX_SAMPLES + MAX_QUIET, sizeof(*v));
	double *tt = calloc(MAX_SAMPLES + MAX_QUIET, sizeof(*tt));
	double *third = calloc(MAX_SAMPLES + MAX_QUIET, sizeof(*third));
	unsigned int k, i, n, m;

	if (!v || !tt || !third)
		die("out of memory");
	for (k = 0; k < N_TREND; k++) {
		struct trend *t = &trends[k];
		double sx = 0, sy = 0, sxx = 0, sxy = 0;

		t->name = tdef[k].name;
		t->quiet = tdef[k].quiet;
		t->judged = tdef[k].judged;
		n = 0;
		if (t->quiet) {
			for (i = 0; i < n_qp; i++)
				if (qp[i].side == SD_IPCD && (qp[i].judged || qp[i].is_ref)) {
					v[n] = field(&qp[i].l, (enum tfield)k);
					tt[n++] = qp[i].t;
				}
		} else {
			for (i = 0; i < n_smp; i++)
				if (smp[i].steady && smp[i].dt >= o.interval_s / 2) {
					v[n] = field(&smp[i].l, (enum tfield)k);
					tt[n++] = smp[i].t;
				}
		}
		t->n = n;
		t->ok = true;
		t->first = t->last = t->growth = t->per_hour = t->limit = NAN;
		if (n < 3) {
			t->judged = false;
			continue;
		}
		for (i = 0; i < n; i++) {
			sx += tt[i];
			sy += v[i];
			sxx += tt[i] * tt[i];
			sxy += tt[i] * v[i];
		}
		t->per_hour = (n * sxy - sx * sy) / (n * sxx - sx * sx) * 3600;
		m = n / 3;
		memcpy(third, v, m * sizeof(*v));
		t->first = median(third, m);
		memcpy(third, v + n - m, m * sizeof(*v));
		t->last = median(third, m);
		t->growth = t->last - t->first;
		if (!t->judged)
			continue;
		t->limit = IPCD_MAX(1024.0, 0.02 * t->first);
		if (t->growth > t->limit) {
			t->ok = false;
			failed_soft("growth: %s grew by %.0f between the thirds (limit %.0f)",
				    t->name, t->growth, t->limit);
		}
	}
	free(v);
	free(tt);
	free(third);
}

/* The median over a side's full intervals of @role's ops (bytes if @bytes) a second. */
static double rate_median(enum side side, enum role role, bool bytes)
{
	double v[MAX_SAMPLES];
	unsigned int i, n = 0;

	for (i = 0; i < n_smp; i++)
		if (smp[i].side == side && smp[i].dt >= o.interval_s / 2)
			v[n++] = (double)(bytes ? smp[i].bytes[role] : smp[i].ops[role]) /
				 smp[i].dt / (bytes ? 1e6 : 1);
	return median(v, n);
}

struct row {
	const char *name;
	double v[N_SIDE];
	bool lower_better;
};

#define MAX_ROWS 24
static struct row rows[MAX_ROWS];
static unsigned int n_rows;

static void row(const char *name, double k, double i, bool lower_better)
{
	if (n_rows < MAX_ROWS)
		rows[n_rows++] = (struct row){ name, { k, i }, lower_better };
}

static void build_rows(void)
{
	static const struct {
		enum role role;
		const char *rate, *p50, *p99;
		bool bytes;
	} t[] = {
		{ R_SINK, "TCP stream, paced (MB/s)", NULL, NULL, true },
		{ R_PING, "TCP ping-pong 64 B, paced (round trips/s)", "  round trip p50 (us)",
		  "  round trip p99 (us)", false },
		{ R_CHURN_TCP, "TCP connect+32 B+close (connections/s)",
		  "  connection p50 (us)", "  connection p99 (us)", false },
		{ R_CHURN_UNIX, "AF_UNIX named connect+32 B+close (/s)",
		  "  connection p50 (us)", "  connection p99 (us)", false },
		{ R_FORKCLI, "TCP fork-per-connection, 4 KiB (/s)", "  connection p50 (us)",
		  "  connection p99 (us)", false },
		{ R_PAIR, "socketpair+fork, 32 x 64 B (pairs/s)", "  round trip p50 (us)",
		  "  round trip p99 (us)", false },
		{ R_PIPE, "pipe+fork, 256 KiB checked (MB/s)", NULL, NULL, true },
		{ R_VICTIM, "victims' 1 KiB echoes (round trips/s)", NULL, NULL, false },
	};
	unsigned int i;
	enum side s;

	for (i = 0; i < IPCD_ARRAY_SIZE(t); i++) {
		double p50[N_SIDE], p99[N_SIDE];

		row(t[i].rate, rate_median(SD_KERNEL, t[i].role, t[i].bytes),
		    rate_median(SD_IPCD, t[i].role, t[i].bytes), false);
		if (!t[i].p50)
			continue;
		for (s = 0; s < N_SIDE; s++) {
			p50[s] = us_or_nan(hist_q(tot_hist[s][t[i].role], 0.5));
			p99[s] = us_or_nan(hist_q(tot_hist[s][t[i].role], 0.99));
		}
		row(t[i].p50, p50[0], p50[1], true);
		row(t[i].p99, p99[0], p99[1], true);
	}
	row("victims started (SIGKILLed)", v_tot_started[0], v_tot_started[1], false);
	row("  of which SIGKILLed", v_tot_killed[0], v_tot_killed[1], false);
	row("workers' CPU (% of one CPU)", wall_s[0] > 0 ? 100 * cpu_s[0] / wall_s[0] : NAN,
	    wall_s[1] > 0 ? 100 * cpu_s[1] / wall_s[1] : NAN, true);
	row("monitor's CPU (% of one CPU)", tot_s[0] > 0 ? 100 * mon_cpu_s[0] / tot_s[0] : NAN,
	    tot_s[1] > 0 ? 100 * mon_cpu_s[1] / tot_s[1] : NAN, true);
}

static void print_report(void)
{
	unsigned int i, judged = 0, matched = 0;

	printf("\n== figures: kernel phases against the ipcd phase (same mix, same run) ==\n");
	printf("%-42s %11s %11s %8s\n", "", "kernel", "ipcd", "ratio");
	for (i = 0; i < n_rows; i++) {
		const struct row *r = &rows[i];
		double ratio = r->lower_better ? r->v[0] / r->v[1] : r->v[1] / r->v[0];
		/* counts of a phase's length, and a monitor idle through the kernel phases */
		bool counts = !strncmp(r->name, "victims", 7) || !strncmp(r->name, "  of", 4) ||
			      !strncmp(r->name, "monitor", 7);

		printf("%-42s %11.2f %11.2f ", r->name, r->v[0], r->v[1]);
		if (counts || isnan(ratio) || isinf(ratio))
			printf("%8s\n", "-");
		else
			printf("%7.2fx\n", ratio);
	}
	printf("rates: the median of the phase's intervals (paced: both sides should meet the "
	       "pace);\nlatencies: pooled over the phase; ratio >1: ipcd is better "
	       "(kernel/ipcd for latency and CPU, ipcd/kernel for rates)\n");

	printf("\n== growth: ipcd phase after the warm-up, first third against last third ==\n");
	printf("%-24s %4s %11s %11s %10s %10s %11s  %s\n", "", "n", "first 1/3", "last 1/3",
	       "growth", "limit", "slope/hour", "verdict");
	printf("(q: at the quiescent points; else every sample, under load)\n");
	for (i = 0; i < N_TREND; i++) {
		const struct trend *t = &trends[i];

		printf("%-24s %4u %11.0f %11.0f %+10.0f ", t->name, t->n, t->first, t->last,
		       t->growth);
		if (t->judged)
			printf("%10.0f", t->limit);
		else
			printf("%10s", "-");
		printf(" %+11.0f  %s\n", t->per_hour,
		       t->n < 3 ? "(too few points)" : !t->judged ? "(shown)"
		       : t->ok ? "ok" : "GROWTH");
	}
	for (i = 0; i < n_qp; i++) {
		judged += qp[i].judged;
		matched += qp[i].judged && qp[i].match;
	}
	printf("quiescent points: %u judged against the reference, %u identical "
	       "(monitor fds, memfd mappings, processes, connections, binds, lanes, /dev/shm, "
	       "workers' fds)\n", judged, matched);
	if (have_ref)
		printf("reference: monitor fds %ld, memfds %ld, processes %" PRIu64
		       ", connections %" PRIu64 ", binds %" PRIu64 ", lanes %" PRIu64
		       ", /dev/shm %ld, workers' fds %ld\n", ref.mon_fds, ref.mon_memfds,
		       ref.procs, ref.conns, ref.binds, ref.lanes, ref.shm, ref.wk_fds);
	if (!idle_checked) {
		printf("idle: the run stopped before the idle check\n");
		return;
	}
	printf("idle: before the load monitor fds %ld, RSS %.2f MiB, RssAnon %.2f MiB; after: "
	       "fds %ld, RSS %.2f MiB, RssAnon %.2f MiB (%s)\n", idle_before.mon_fds,
	       idle_before.mon_rss / 1024.0, idle_before.mon_anon / 1024.0, idle_after.mon_fds,
	       idle_after.mon_rss / 1024.0, idle_after.mon_anon / 1024.0,
	       idle_ok ? "back to idle" : "NOT back to idle");
	printf("monitor counters at the end: faults %" PRIu64 ", fd faults %" PRIu64
	       ", processes reaped %" PRIu64 ", dead ends %" PRIu64 ", resets %" PRIu64
	       ", fallbacks %" PRIu64 "; made: connections %" PRIu64 ", pipes %" PRIu64
	       ", socketpairs %" PRIu64 ", AF_UNIX named %" PRIu64 "\n", idle_after.faults,
	       idle_after.fd_faults, idle_after.reaped, idle_after.dead_ends, idle_after.reset,
	       idle_after.fallbacks, idle_after.created, idle_after.pipes, idle_after.pairs,
	       idle_after.unix_conns);
}

/*
 * What the monitor logged at warn or error level once it had started (the
 * lines before are about the machine: the open files limit). Shown, and kept
 * for the JSON; a log line alone fails nothing.
 */
static unsigned int mon_warns;
static char mon_warn_head[3][256];

static void scan_monitor_log(void)
{
	char line[512];
	bool started = false;
	FILE *f = fopen(mon_log, "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!started) {
			started = strstr(line, " started: ") != NULL;
			continue;
		}
		if (!strstr(line, " warn ") && !strstr(line, " error "))
			continue;
		if (mon_warns < IPCD_ARRAY_SIZE(mon_warn_head))
			snprintf(mon_warn_head[mon_warns], sizeof(mon_warn_head[0]), "%.250s",
				 line);
		mon_warns++;
	}
	fclose(f);
	printf("monitor log: %u warn or error lines after the start\n", mon_warns);
	for (unsigned int i = 0; i < IPCD_MIN(mon_warns, 3u); i++)
		printf("  %s\n", mon_warn_head[i]);
}

static void json_look(FILE *f, const struct look *l)
{
	fprintf(f, "{\"mon_rss_kb\":%ld,\"mon_anon_kb\":%ld,\"mon_fds\":%ld,\"mon_vmas\":%ld,"
		"\"mon_memfds\":%ld,\"processes\":%" PRIu64 ",\"binds\":%" PRIu64
		",\"connections\":%" PRIu64 ",\"lanes\":%" PRIu64 ",\"faults\":%" PRIu64
		",\"fd_faults\":%" PRIu64 ",\"reaped\":%" PRIu64 ",\"dead_ends\":%" PRIu64
		",\"reset\":%" PRIu64 ",\"fallbacks\":%" PRIu64 ",\"created\":%" PRIu64
		",\"pipes\":%" PRIu64 ",\"socketpairs\":%" PRIu64 ",\"unix_connected\":%" PRIu64
		",\"dev_shm\":%ld,\"workers_rss_kb\":%ld,\"workers_anon_kb\":%ld,"
		"\"workers_fds\":%ld}", l->mon_rss, l->mon_anon, l->mon_fds, l->mon_vmas,
		l->mon_memfds, l->procs, l->binds, l->conns, l->lanes, l->faults, l->fd_faults,
		l->reaped, l->dead_ends, l->reset, l->fallbacks, l->created, l->pipes, l->pairs,
		l->unix_conns, l->shm, l->wk_rss, l->wk_anon, l->wk_fds);
}

static void json_num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else
		fprintf(f, "%.3f", v);
}

static void write_json(const char *date, const double *load0, const double *load1,
		       const double *phase_s, double warm_s, bool passed)
{
	FILE *f = fopen(o.json, "we");
	unsigned int i, r;

	if (!f) {
		failed("%s: %s", o.json, strerror(errno));
		return;
	}
	fprintf(f, "{\"meta\":{\"date\":");
	ipcd_bench_json_str(f, date);
	fprintf(f, ",\"minutes\":%g,\"quick\":%s,\"interval_s\":%g,\"wave_s\":%g,\"load\":%g,"
		"\"phases_s\":[%.0f,%.0f,%.0f],\"warmup_s\":%.0f,\"nproc\":%ld,"
		"\"loadavg_start\":[%.2f,%.2f,%.2f],\"loadavg_end\":[%.2f,%.2f,%.2f],"
		"\"monitor_config\":", o.minutes, o.quick ? "true" : "false", o.interval_s,
		o.wave_s, o.load, phase_s[0], phase_s[1], phase_s[2], warm_s,
		sysconf(_SC_NPROCESSORS_ONLN), load0[0], load0[1], load0[2], load1[0], load1[1],
		load1[2]);
	ipcd_bench_json_str(f, mon_config);
	fprintf(f, ",\"rates\":{");
	for (r = 0, i = 0; r < N_ROLE; r++)
		if (base_rate[r] > 0)
			fprintf(f, "%s\"%s\":%g", i++ ? "," : "", role_name[r],
				base_rate[r] * o.load);
	fprintf(f, "}},\n\"samples\":[");
	for (i = 0; i < n_smp; i++) {
		const struct sample *s = &smp[i];

		fprintf(f, "%s\n{\"t\":%.1f,\"side\":\"%s\",\"phase\":%d,\"steady\":%s,"
			"\"dt\":%.2f,\"load1\":%.2f,\"mon_cpu_pct\":%.1f,\"victims\":%u,"
			"\"killed\":%u,\"look\":",
			i ? "," : "", s->t, side_name[s->side], s->phase + 1,
			s->steady ? "true" : "false", s->dt, s->load1, s->mon_cpu, s->victims,
			s->killed);
		json_look(f, &s->l);
		fprintf(f, ",\"roles\":{");
		for (r = 0; r < N_ROLE; r++) {
			fprintf(f, "%s\"%s\":{\"ops\":%" PRIu64 ",\"bytes\":%" PRIu64
				",\"p50_us\":", r ? "," : "", role_name[r], s->ops[r], s->bytes[r]);
			json_num(f, s->p50[r]);
			fprintf(f, ",\"p99_us\":");
			json_num(f, s->p99[r]);
			fputc('}', f);
		}
		fprintf(f, "}}");
	}
	fprintf(f, "],\n\"quiescent\":[");
	for (i = 0; i < n_qp; i++) {
		fprintf(f, "%s\n{\"t\":%.1f,\"side\":\"%s\",\"wave\":%d,\"judged\":%s,\"match\":%s,"
			"\"settle_s\":%.1f,\"look\":", i ? "," : "", qp[i].t, side_name[qp[i].side],
			qp[i].wave, qp[i].judged ? "true" : "false", qp[i].match ? "true" : "false",
			qp[i].settle_s);
		json_look(f, &qp[i].l);
		fputc('}', f);
	}
	fprintf(f, "],\n\"idle\":{\"before\":");
	json_look(f, &idle_before);
	fprintf(f, ",\"after\":");
	json_look(f, &idle_after);
	fprintf(f, ",\"ok\":%s},\n\"growth\":[", idle_ok ? "true" : "false");
	for (i = 0; i < N_TREND; i++) {
		fprintf(f, "%s{\"name\":", i ? "," : "");
		ipcd_bench_json_str(f, trends[i].name);
		fprintf(f, ",\"quiescent_points\":%s,\"judged\":%s,\"n\":%u,\"first\":",
			trends[i].quiet ? "true" : "false", trends[i].judged ? "true" : "false",
			trends[i].n);
		json_num(f, trends[i].first);
		fprintf(f, ",\"last\":");
		json_num(f, trends[i].last);
		fprintf(f, ",\"growth\":");
		json_num(f, trends[i].growth);
		fprintf(f, ",\"limit\":");
		json_num(f, trends[i].limit);
		fprintf(f, ",\"slope_per_hour\":");
		json_num(f, trends[i].per_hour);
		fprintf(f, ",\"ok\":%s}", trends[i].ok ? "true" : "false");
	}
	fprintf(f, "],\n\"figures\":[");
	for (i = 0; i < n_rows; i++) {
		fprintf(f, "%s{\"name\":", i ? "," : "");
		ipcd_bench_json_str(f, rows[i].name);
		fprintf(f, ",\"kernel\":");
		json_num(f, rows[i].v[0]);
		fprintf(f, ",\"ipcd\":");
		json_num(f, rows[i].v[1]);
		fputc('}', f);
	}
	fprintf(f, "],\n\"errors\":[");
	for (i = 0; i < IPCD_MIN(n_err, (unsigned int)IPCD_ARRAY_SIZE(errs)); i++) {
		fputs(i ? "," : "", f);
		ipcd_bench_json_str(f, errs[i]);
	}
	fprintf(f, "],\"monitor_log_warnings\":%u,\"monitor_log_head\":[", mon_warns);
	for (i = 0; i < IPCD_MIN(mon_warns, 3u); i++) {
		fputs(i ? "," : "", f);
		ipcd_bench_json_str(f, mon_warn_head[i]);
	}
	fprintf(f, "],\"failed\":%s}\n", passed ? "false" : "true");
	if (fclose(f))
		failed("%s: %s", o.json, strerror(errno));
}

/* ---- main ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ipcd-soak [--minutes N | --quick] [--json FILE] [--interval S] [--wave S]\n"
		"                 [--load X] [--monitor PATH] [--ipcdctl PATH] [--run PATH]\n"
		"                 [--keep]\n"
		"  --minutes N   the whole run (default 30): kernel 5 %%, ipcd 90 %%, kernel 5 %%\n"
		"  --quick       about 70 s (10 s, 50 s, 10 s), for CI smoke runs\n"
		"  --json FILE   every sample and figure (default soak.json)\n"
		"  --interval S  seconds between samples (default 10; --quick 2)\n"
		"  --wave S      how long a wave of short-lived workers runs (default 50 s;\n"
		"                --quick 6 s)\n"
		"  --load X      every pace times X (default 1)\n"
		"  --keep        keep the temp dir (logs) even when the run passed\n"
		"  --only LIST   only these of the waves' workers: churn-tcp, churn-unix,\n"
		"                forkcli, pair, pipe, victim (default: all)\n");
}

/* --only LIST: the wave roles (and victims) to run, to narrow down a finding */
static int parse_only(const char *list)
{
	char *dup = strdup(list), *tok, *save = NULL;
	unsigned int r;

	if (!dup)
		die("out of memory");
	o.only = 0;
	for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (r = N_LONG; r < N_ROLE && strcmp(tok, role_name[r]); r++)
			;
		if (r == N_ROLE) {
			fprintf(stderr, "ipcd-soak: --only: %s is not one of churn-tcp, "
				"churn-unix, forkcli, pair, pipe, victim\n", tok);
			free(dup);
			return -1;
		}
		o.only |= 1u << r;
	}
	free(dup);
	return 0;
}

static const char *absolute(const char *p)
{
	char *r = realpath(p, NULL);

	return r ? r : p;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "minutes", required_argument, NULL, 'm' },
		{ "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "interval", required_argument, NULL, 'i' },
		{ "wave", required_argument, NULL, 'W' },
		{ "load", required_argument, NULL, 'l' },
		{ "monitor", required_argument, NULL, 'M' },
		{ "ipcdctl", required_argument, NULL, 'C' },
		{ "run", required_argument, NULL, 'R' },
		{ "keep", no_argument, NULL, 'k' },
		{ "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa = { .sa_handler = on_signal };
	double load0[3], load1[3], phase_s[3], total_s, warm_s;
	bool set_interval = false, set_wave = false, passed;
	char date[64], cpu_model[256], kernel[256];
	struct utsname u;
	struct tm tm;
	time_t wall = time(NULL);
	ssize_t n;
	int c;

	if (argc > 1 && !strcmp(argv[1], "--worker"))
		return worker_main(argc, argv);
	o.minutes = 30;
	o.only = ~0u;
	o.monitor = IPCD_MONITOR_BIN;
	o.ipcdctl = IPCDCTL_BIN;
	o.run = IPCD_RUN_BIN;
	o.wave_s = 50;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'm':
			o.minutes = strtod(optarg, NULL);
			break;
		case 'q':
			o.quick = true;
			break;
		case 'j':
			o.json = optarg;
			break;
		case 'i':
			o.interval_s = strtod(optarg, NULL);
			set_interval = true;
			break;
		case 'W':
			o.wave_s = strtod(optarg, NULL);
			set_wave = true;
			break;
		case 'l':
			o.load = strtod(optarg, NULL);
			break;
		case 'M':
			o.monitor = optarg;
			break;
		case 'C':
			o.ipcdctl = optarg;
			break;
		case 'R':
			o.run = optarg;
			break;
		case 'k':
			o.keep = true;
			break;
		case 'o':
			if (parse_only(optarg))
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || o.minutes <= 0 || o.interval_s < 0.5 || o.wave_s < 2 ||
	    o.load <= 0) {
		usage(stderr);
		return 2;
	}
	if (ipcd_bench_mapped("/libipcd")) {
		fprintf(stderr, "ipcd-soak: do not run me preloaded: I preload my own workers\n");
		return 2;
	}
	if (o.quick) {
		o.minutes = 1;
		if (!set_interval)
			o.interval_s = 2;
		if (!set_wave)
			o.wave_s = 6;
	}
	total_s = o.minutes * 60;
	phase_s[0] = phase_s[2] = o.quick ? 10 : IPCD_MAX(10.0, 0.05 * total_s);
	/* --quick: 50 s, room for 4 waves and the quiet end (QUIET_NS + 7 s) */
	phase_s[1] = o.quick ? 50 : IPCD_MAX(40.0, total_s - 2 * phase_s[0]);
	warm_s = IPCD_MAX(0.1 * phase_s[1], IPCD_MIN(o.wave_s, 0.5 * phase_s[1]));
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		die("readlink /proc/self/exe: %s", strerror(errno));
	self_exe[n] = '\0';
	o.monitor = absolute(o.monitor);
	o.ipcdctl = absolute(o.ipcdctl);
	o.run = absolute(o.run);
	driver_pid = getpid();

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ipcd-soak-XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp: %s", strerror(errno));
	snprintf(mon_sock, sizeof(mon_sock), "%s/monitor.sock", tmpdir);
	snprintf(mon_log, sizeof(mon_log), "%s/monitor.log", tmpdir);
	snprintf(unix_path[SD_KERNEL], sizeof(unix_path[0]), "%s/kernel-echo.sock", tmpdir);
	snprintf(unix_path[SD_IPCD], sizeof(unix_path[0]), "%s/ipcd-echo.sock", tmpdir);
	stats_fd = memfd_create("ipcd-soak-stats", MFD_CLOEXEC);
	if (stats_fd < 0 || ftruncate(stats_fd, (off_t)SLOTS_BYTES))
		die("memfd: %s", strerror(errno));
	slots = mmap(NULL, SLOTS_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, stats_fd, 0);
	prev = calloc(N_SLOT, sizeof(*prev));
	smp = calloc(MAX_SAMPLES, sizeof(*smp));
	if (slots == MAP_FAILED || !prev || !smp)
		die("out of memory");
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	env_kernel = env_build(false);
	env_ipcd = env_build(true);

	gmtime_r(&wall, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", &tm);
	if (!ipcd_bench_cpuinfo("model name", cpu_model, sizeof(cpu_model)))
		snprintf(cpu_model, sizeof(cpu_model), "unknown");
	snprintf(kernel, sizeof(kernel), "unknown");
	if (uname(&u) == 0)
		snprintf(kernel, sizeof(kernel), "%s %s", u.sysname, u.release);
	getloadavg(load0, 3);
	start_monitor();
	printf("== ipcd-soak: a mixed load, kernel against ipcd, watched for growth ==\n");
	printf("date      %s\n", date);
	printf("host      %s, %ld CPUs, %s\n", cpu_model, sysconf(_SC_NPROCESSORS_ONLN), kernel);
	printf("load avg  %.2f %.2f %.2f (before)%s\n", load0[0], load0[1], load0[2],
	       load0[0] > 1 ? "  NOTE: the machine is busy: other work shares the CPUs" : "");
	printf("monitor   %s (pid %d): %s\n", o.monitor, (int)mon_pid, mon_config);
	printf("ipcd side %s %s --worker ... (IPCD_SOCKET = the monitor's)\n", o.run, self_exe);
	printf("plan      %.0f min: kernel %.0f s, ipcd %.0f s (warm-up %.0f s), kernel %.0f s; "
	       "waves of %.0f s; a sample every %.0f s\n", o.minutes, phase_s[0], phase_s[1],
	       warm_s, phase_s[2], o.wave_s, o.interval_s);
	printf("paces     stream %g MB/s, ping %g/s, churn tcp %g/s, unix %g/s, fork %g/s, "
	       "socketpair %g/s, pipe %g/s, a victim every %.1f s%s\n",
	       base_rate[R_SOURCE] * o.load, base_rate[R_PING] * o.load,
	       base_rate[R_CHURN_TCP] * o.load, base_rate[R_CHURN_UNIX] * o.load,
	       base_rate[R_FORKCLI] * o.load, base_rate[R_PAIR] * o.load,
	       base_rate[R_PIPE] * o.load, (double)VICTIM_EVERY_NS / 1e9,
	       o.quick ? "\nNOTE      --quick: a smoke run; its figures are not measurements" : "");
	printf("temp dir  %s\n", tmpdir);
	fflush(stdout);

	t0_ns = ipcd_now_ns();
	usleep(500 * 1000);
	look(&idle_before);
	mon_ticks_prev = proc_ticks(mon_pid);
	last_sample_ns = ipcd_now_ns();
	next_sample_ns = last_sample_ns + (uint64_t)(o.interval_s * 1e9);
	warm_end_ns = UINT64_MAX;

	run_phase(SD_KERNEL, 0, (uint64_t)(phase_s[0] * 1e9));
	if (!n_hard) {
		warm_end_ns = ipcd_now_ns() + (uint64_t)(warm_s * 1e9);
		run_phase(SD_IPCD, 1, (uint64_t)(phase_s[1] * 1e9));
	}
	if (!n_hard) {
		kill_all();
		check_idle();
	}
	if (!n_hard)
		run_phase(SD_KERNEL, 2, (uint64_t)(phase_s[2] * 1e9));
	kill_all();
	if (!n_hard) {
		/* with --only, some of them are not made at all */
		if (o.only == ~0u && (!idle_after.created || !idle_after.pipes ||
				      !idle_after.pairs || !idle_after.unix_conns))
			failed("the monitor made no %s: the ipcd side was not accelerated",
			       !idle_after.created ? "connections" : !idle_after.pipes ? "pipes"
			       : !idle_after.pairs ? "socketpairs" : "AF_UNIX connections");
		if (idle_after.faults || idle_after.fd_faults)
			failed("the monitor cut off %" PRIu64 " processes (faults %" PRIu64
			       ", fd faults %" PRIu64 ")", idle_after.faults + idle_after.fd_faults,
			       idle_after.faults, idle_after.fd_faults);
	}
	evaluate_trends();
	build_rows();
	stop_monitor();
	getloadavg(load1, 3);
	print_report();
	scan_monitor_log();
	printf("load avg  %.2f %.2f %.2f (before), %.2f %.2f %.2f (after)\n", load0[0], load0[1],
	       load0[2], load1[0], load1[1], load1[2]);
	passed = !n_err;
	write_json(date, load0, load1, phase_s, warm_s, passed);
	if (n_err > IPCD_ARRAY_SIZE(errs))
		printf("(%u errors; the first %zu:)\n", n_err, IPCD_ARRAY_SIZE(errs));
	for (c = 0; c < (int)IPCD_MIN(n_err, (unsigned int)IPCD_ARRAY_SIZE(errs)); c++)
		printf("FAILED: %s\n", errs[c]);
	printf("%s (%.0f s; json: %s)\n", passed ? "PASSED: no growth, no error" : "FAILED",
	       now_s(), o.json);
	if (passed && !o.keep)
		ipcd_bench_rmdir(tmpdir, "ipcd-soak");
	else
		printf("logs kept in %s\n", tmpdir);
	return passed ? 0 : 1;
}
