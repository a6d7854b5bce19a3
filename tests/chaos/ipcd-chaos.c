/* SPDX-License-Identifier: MIT */
/*
 * ipcd-chaos - the worker of the chaos test (it_chaos.c), run under ipcd-run
 * as a real process. Plain POSIX sockets: it behaves the same with and
 * without libipcd.so.
 *
 *   ipcd-chaos server --slot N --dir D --seed S --style epoll|epollet|poll|threads
 *   ipcd-chaos client --slot N --dir D --seed S --style epoll|epollet|poll|threads
 *                     --conns K --servers M [--max-len B] [--unix-pct P]
 *
 * A server listens on 127.0.0.1 (an ephemeral port) and on an AF_UNIX path,
 * and names both in D/server-N.port. A client keeps K connections open to
 * random servers (P% over AF_UNIX), one after the other on each of its K
 * lanes. On every connection both directions carry a stream of random
 * length (up to B bytes) written with random-sized writes (1 B .. 256 KiB,
 * write/send/writev/sendmsg) and read with random-sized reads
 * (read/recv/readv/recvmsg, MSG_PEEK, MSG_WAITALL and MSG_DONTWAIT in the
 * blocking style); the receiver checks every byte (chaos.h). A side that
 * sent its whole stream shuts down its writing half and reads to EOF.
 *
 * Styles: "epoll" (one thread, nonblocking, level-triggered), "epollet"
 * (edge-triggered), "poll", "threads" (blocking calls: an accepting thread
 * per listener, a reading and a writing thread per connection).
 *
 * Signals: SIGUSR1 - finish: stop sending (shut down the writing halves),
 * read every connection to its end, open no more; a client then exits.
 * SIGUSR2 (server) - listen again on new addresses (after a monitor
 * restart: the old listeners stay open, registered with no monitor).
 * SIGTERM (server) - no client is left: close the listeners and exit once
 * every connection ended. SIGQUIT - write every open connection, as this
 * process sees it, to D/worker-N.state (for the driver's hang reports).
 *
 * Output: D/worker-N.res, one line per connection ended and a final "done"
 * line with the totals and the fd census; a FAIL line on stderr for each
 * failure (corrupt byte, broken hello, an end a client must never see, a
 * leaked fd), and exit status 1 if there was any.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"

#define MAX_LISTENERS	32
#define MAX_CONNS	4096
#define LIB_REG_FDS	4	/* the preload's registration: control socket, wake fd, 2 regions */
/* preload/lanes.c: IPCD_CLANES lanes, each with CLANE_KITS kits of 3 fds */
#define LIB_LANES	8
#define LIB_LANE_KITS	12
#define LIB_MCACHE	16	/* preload/attach.h IPCD_MCACHE_SLOTS: idle mappings kept */
/* preload/state.c RETIRED_MAX: forgotten registrations whose 2 regions stay mapped */
#define LIB_RETIRED	4
#define THREAD_STACK	(512u << 10)

enum style { ST_EPOLL, ST_EPOLLET, ST_POLL, ST_THREADS };

struct opts {
	bool server;
	unsigned int slot;
	const char *dir;
	uint64_t seed;
	enum style style;
	unsigned int conns;
	unsigned int servers;
	uint64_t max_len;
	unsigned int unix_pct;
	bool lanes;		/* IPCD_LANES is not 0: the connector keeps lanes and kits */
};

static struct opts opt = {
	.conns = 5,
	.max_len = 8 << 20,
	.unix_pct = 20,
};

static struct chaos_slot *me;
static FILE *res;
static pthread_mutex_t res_mu = PTHREAD_MUTEX_INITIALIZER;

/* Set by the signal handlers, read everywhere (lock-free atomics: async-signal-safe). */
static int sig_stop, sig_relisten, sig_final;

static bool stopping(void)
{
	return __atomic_load_n(&sig_stop, __ATOMIC_RELAXED);
}

/* ---- small helpers -------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *errname(int err)
{
	const char *n = err ? strerrorname_np(err) : "0";

	return n ? n : "?";
}

static const char *role(void)
{
	return opt.server ? "server" : "client";
}

#define ST_ADD(field, n)	__atomic_fetch_add(&me->field, (uint64_t)(n), __ATOMIC_RELAXED)
#define ST_SET(field, v)	__atomic_store_n(&me->field, (uint64_t)(v), __ATOMIC_RELAXED)

/* A failure of the product (or of this test): one FAIL line; the worker goes on, exits 1. */
static void failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failure(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "ipcd-chaos %s %u: FAIL: %s\n", role(), opt.slot, msg);
	ST_ADD(errors, 1);
}

/* The worker cannot run at all (bad arguments, no memory): exit 2 at once. */
static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "ipcd-chaos %s %u: FAIL: %s\n", role(), opt.slot, msg);
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p)
		fatal("out of memory (%zu bytes)", n);
	return p;
}

/* xorshift64*: every lane, connection and direction has its own. */
struct rng {
	uint64_t s;
};

static void rng_init(struct rng *r, uint64_t seed)
{
	r->s = chaos_mix(seed ^ 0x5eed5eed5eedull) | 1;
}

static uint64_t rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dull;
}

static uint32_t rng_below(struct rng *r, uint32_t n)
{
	return (uint32_t)((rng_next(r) >> 32) * n >> 32);
}

/* A size in [1, @max] (max >= 1), log-uniform up to CHAOS_IO_MAX: small and large calls. */
static size_t rnd_size(struct rng *r, uint64_t max)
{
	uint64_t n = 1 + (rng_next(r) & ((1ull << rng_below(r, 19)) - 1));

	return n > max ? (size_t)max : (size_t)n;
}

/* A stream length: 0 one time in 16, else log-uniform up to opt.max_len. */
static uint64_t rnd_len(struct rng *r)
{
	unsigned int bits = 64 - (unsigned int)__builtin_clzll(opt.max_len | 1);
	uint64_t v;

	if (rng_below(r, 16) == 0)
		return 0;
	v = rng_next(r) & ((1ull << rng_below(r, bits + 1 > 63 ? 63 : bits + 1)) - 1);
	return v > opt.max_len ? opt.max_len : v;
}

static void set_nonblock(int fd, struct rng *r, bool on)
{
	int v = on;

	/* Both ways of saying it (fcntl, FIONBIO): the preload must honour each. */
	if (rng_below(r, 2)) {
		int fl = fcntl(fd, F_GETFL);

		if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
			failure("fcntl O_NONBLOCK on fd %d: %s", fd, strerror(errno));
	} else if (ioctl(fd, FIONBIO, &v) < 0) {
		failure("ioctl FIONBIO on fd %d: %s", fd, strerror(errno));
	}
}

/* 1: the fd is an accelerated end (the preload's eventfd), 0: a kernel socket, -1: neither. */
static int fd_accel(int fd)
{
	char path[64], link[128];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -1;
	link[n] = '\0';
	if (!strcmp(link, "anon_inode:[eventfd]"))
		return 1;
	return strncmp(link, "socket:", 7) ? -1 : 0;
}

/* ---- fd census -------------------------------------------------------------------- */

/*
 * What this process holds, by kind, asked of the kernel directly (readlink,
 * and getsockopt as a raw system call, so that the preload answers nothing).
 * The application's objects (sockets, epoll sets, pipes) must all be gone
 * at the end; the preload's (eventfds, memfds, its SEQPACKET control socket
 * and lanes) are bounded by what it documents it keeps.
 */
struct census {
	int tcp;		/* AF_INET/AF_INET6 sockets */
	int ustream;		/* AF_UNIX SOCK_STREAM */
	int useq;		/* other AF_UNIX (the preload's SEQPACKET control socket, lanes) */
	int eventfd;
	int epoll;
	int memfd;
	int pipe;
	int other;
	int total;
	int memfd_maps;		/* lines of /proc/self/maps naming a memfd */
};

static int raw_sockopt(int fd, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (syscall(SYS_getsockopt, fd, SOL_SOCKET, name, &v, &len) < 0)
		return -1;
	return v;
}

static void census_take(struct census *c)
{
	char path[64], link[256], line[512];
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	FILE *f;

	memset(c, 0, sizeof(*c));
	if (!d)
		fatal("opendir /proc/self/fd: %s", strerror(errno));
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		ssize_t n;

		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		c->total++;
		if (!strncmp(link, "socket:", 7)) {
			int dom = raw_sockopt(fd, SO_DOMAIN), type = raw_sockopt(fd, SO_TYPE);

			if (dom == AF_INET || dom == AF_INET6)
				c->tcp++;
			else if (dom == AF_UNIX && type == SOCK_STREAM)
				c->ustream++;
			else if (dom == AF_UNIX)
				c->useq++;
			else
				c->other++;
		} else if (!strcmp(link, "anon_inode:[eventfd]")) {
			c->eventfd++;
		} else if (!strcmp(link, "anon_inode:[eventpoll]")) {
			c->epoll++;
		} else if (!strncmp(link, "/memfd:", 7)) {
			c->memfd++;
		} else if (!strncmp(link, "pipe:", 5)) {
			c->pipe++;
		} else {
			c->other++;
		}
	}
	closedir(d);
	f = fopen("/proc/self/maps", "re");
	if (!f)
		fatal("open /proc/self/maps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "/memfd:"))
			c->memfd_maps++;
	fclose(f);
}

static int census_lib(const struct census *c)
{
	return c->eventfd + c->memfd + c->useq;
}

/* ---- I/O by every call the preload interposes ------------------------------------ */

/* Split @n bytes at @p into 1..4 iovecs at random points. */
static int split_iov(struct iovec *iov, uint8_t *p, size_t n, struct rng *r)
{
	int k = 1 + (int)rng_below(r, 4), i;
	size_t left = n;

	for (i = 0; i < k - 1; i++) {
		size_t a = left ? rng_below(r, (uint32_t)left + 1) : 0;

		iov[i] = (struct iovec){ p, a };
		p += a;
		left -= a;
	}
	iov[k - 1] = (struct iovec){ p, left };
	return k;
}

static ssize_t do_write(int fd, uint8_t *p, size_t n, struct rng *r, bool dontwait)
{
	struct iovec iov[4];
	struct msghdr mh = { .msg_iov = iov };

	if (dontwait)
		return send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	switch (rng_below(r, 4)) {
	case 0:
		return write(fd, p, n);
	case 1:
		return send(fd, p, n, MSG_NOSIGNAL);
	case 2:
		return writev(fd, iov, split_iov(iov, p, n, r));
	default:
		mh.msg_iovlen = (size_t)split_iov(iov, p, n, r);
		return sendmsg(fd, &mh, MSG_NOSIGNAL);
	}
}

/* One read by a random call; @how names it. @blocking: MSG_WAITALL may be used. */
static ssize_t do_read(int fd, uint8_t *p, size_t n, struct rng *r, bool blocking,
		       const char **how)
{
	struct iovec iov[4];
	struct msghdr mh = { .msg_iov = iov };

	switch (rng_below(r, blocking ? 6 : 4)) {
	case 0:
		*how = "read";
		return read(fd, p, n);
	case 1:
		*how = "recv";
		return recv(fd, p, n, 0);
	case 2:
		*how = "readv";
		return readv(fd, iov, split_iov(iov, p, n, r));
	case 3:
		*how = "recvmsg";
		mh.msg_iovlen = (size_t)split_iov(iov, p, n, r);
		return recvmsg(fd, &mh, 0);
	case 4:
		*how = "recv(MSG_WAITALL)";
		return recv(fd, p, n, MSG_WAITALL);
	default:
		*how = "recv(MSG_DONTWAIT)";
		return recv(fd, p, n, MSG_DONTWAIT);
	}
}

/* ---- connections ----------------------------------------------------------------- */

enum { K_CONN = 1, K_LISTENER };

/*
 * One connection, either side. In the threads style the writing thread owns
 * the tx_* fields and the reading thread the rx_* ones (each its own rng).
 */
struct conn {
	int kind;		/* K_CONN: first, as struct lsn's (epoll data) */
	int fd;
	char tr;		/* 't' TCP, 'u' AF_UNIX */
	int accel;
	uint32_t peer_slot;	/* client: the server's slot; server: the client's */
	uint32_t peer_pid;
	uint64_t serial;
	uint64_t seed;
	uint64_t t_conn;
	uint64_t t_start;	/* client: just before its connect() (t_conn: after it) */
	struct chaos_hello hello;
	size_t hello_off;
	bool have_hello;	/* server: all of it in, and valid */
	bool bad;		/* corrupt bytes or a broken hello: given up */
	bool connecting;
	struct rng tx_rng, rx_rng;
	uint64_t tx_off, tx_total;
	bool tx_shut;		/* the sending side is over (shut down or failed) */
	int tx_err;
	uint64_t rx_off;
	bool rx_end;
	int rx_err;		/* 0: EOF */
	/* event loops */
	uint32_t ev;
	bool ready;		/* edge-triggered: not drained yet */
	bool in_loop;
};

struct lsn {
	int kind;		/* K_LISTENER */
	int fd;
	char tr;
	unsigned int gen;
	pthread_t thread;	/* threads style: its accepting thread */
	bool has_thread;
};

/* Set by either thread of a connection (corrupt bytes), read by both. */
static bool conn_bad(const struct conn *c)
{
	return __atomic_load_n(&c->bad, __ATOMIC_RELAXED);
}

static uint64_t tx_seed(const struct conn *c)
{
	return c->seed ^ (opt.server ? CHAOS_SALT_S2C : CHAOS_SALT_C2S);
}

static uint64_t rx_seed(const struct conn *c)
{
	return c->seed ^ (opt.server ? CHAOS_SALT_C2S : CHAOS_SALT_S2C);
}

/* Every open connection, for the state dump (SIGQUIT). */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct conn *reg[MAX_CONNS * 2];
static unsigned int n_reg;

static void reg_add(struct conn *c)
{
	pthread_mutex_lock(&reg_mu);
	if (n_reg < MAX_CONNS * 2)
		reg[n_reg++] = c;
	pthread_mutex_unlock(&reg_mu);
}

static void reg_del(struct conn *c)
{
	unsigned int i;

	pthread_mutex_lock(&reg_mu);
	for (i = 0; i < n_reg; i++) {
		if (reg[i] == c) {
			reg[i] = reg[--n_reg];
			break;
		}
	}
	pthread_mutex_unlock(&reg_mu);
}

static struct conn *conn_new(int fd, char tr)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		fatal("out of memory");
	c->kind = K_CONN;
	c->fd = fd;
	c->tr = tr;
	c->accel = -1;
	c->peer_slot = UINT32_MAX;
	ST_ADD(conns_open, 1);
	reg_add(c);
	return c;
}

static void conn_accel(struct conn *c)
{
	c->accel = fd_accel(c->fd);
	if (c->accel == 1)
		ST_ADD(conns_accel, 1);
	else
		ST_ADD(conns_kernel, 1);
}

/* The server's side of a hello that arrived whole: check it, derive the stream. */
static void hello_in(struct conn *c)
{
	const struct chaos_hello *h = &c->hello;

	if (h->magic != CHAOS_HELLO_MAGIC || h->sum != chaos_hello_sum(h) ||
	    h->seed != chaos_conn_seed(opt.seed, h->slot, h->serial)) {
		failure("conn on fd %d: broken hello: magic %08x slot %u serial %" PRIu64
			" seed %016" PRIx64 " pid %u sum %08x (want %08x)", c->fd, h->magic,
			h->slot, h->serial, h->seed, h->pid, h->sum, chaos_hello_sum(h));
		__atomic_store_n(&c->bad, true, __ATOMIC_RELAXED);
		return;
	}
	c->have_hello = true;
	c->peer_slot = h->slot;
	c->peer_pid = h->pid;
	c->serial = h->serial;
	c->seed = h->seed;
	rng_init(&c->tx_rng, c->seed ^ CHAOS_SALT_S2C);
	rng_init(&c->rx_rng, c->seed ^ CHAOS_SALT_C2S ^ 1);
	c->tx_total = stopping() ? 0 : rnd_len(&c->tx_rng);
}

/* Check @n received bytes at the connection's read offset; false (and FAIL) if one differs. */
static bool rx_check(struct conn *c, const uint8_t *buf, size_t n, const char *how, bool peek)
{
	size_t k = chaos_check(buf, n, rx_seed(c), c->rx_off);
	char exp[3 * 16 + 1] = "", got[3 * 16 + 1] = "";
	size_t i;

	if (k == n)
		return true;
	for (i = 0; i < 16 && k + i < n; i++) {
		snprintf(exp + 3 * i, 4, " %02x", chaos_byte(rx_seed(c), c->rx_off + k + i));
		snprintf(got + 3 * i, 4, " %02x", buf[k + i]);
	}
	failure("CORRUPT DATA: conn %s=%u serial=%" PRIu64 " tr=%c accel=%d dir=%s offset=%" PRIu64
		": expected %02x got %02x (byte %zu of a %s%s of %zu bytes at %" PRIu64
		"); expected:%s got:%s", opt.server ? "client" : "server", c->peer_slot, c->serial,
		c->tr, c->accel, opt.server ? "c2s" : "s2c", c->rx_off + k,
		chaos_byte(rx_seed(c), c->rx_off + k), buf[k], k, how, peek ? " (MSG_PEEK)" : "", n,
		c->rx_off, exp, got);
	__atomic_store_n(&c->bad, true, __ATOMIC_RELAXED);
	return false;
}

static void rx_ended(struct conn *c, int err)
{
	c->rx_end = true;
	c->rx_err = err;
	/* A server's side that never had its hello has nothing to send. */
	if (opt.server && !c->have_hello)
		c->tx_shut = true;
}

static void tx_ended(struct conn *c, int err)
{
	c->tx_shut = true;
	c->tx_err = err;
}

/*
 * One send on @c. Returns 1 after progress, 0 if it would block (or, for a
 * server, while the hello is not in), -1 once the sending side is over.
 */
static int conn_send(struct conn *c, uint8_t *buf, bool blocking)
{
	struct rng *r = &c->tx_rng;
	bool dontwait = blocking && rng_below(r, 8) == 0;
	ssize_t w;
	size_t n;

	if (c->tx_shut || conn_bad(c))
		return -1;
	if (!opt.server && c->hello_off < sizeof(c->hello)) {
		w = send(c->fd, (uint8_t *)&c->hello + c->hello_off,
			 sizeof(c->hello) - c->hello_off, MSG_NOSIGNAL);
		n = 0;
		goto sent;
	}
	if (opt.server && !c->have_hello)
		return 0;
	if (stopping() && c->tx_total > c->tx_off)
		c->tx_total = c->tx_off;
	if (c->tx_off == c->tx_total) {
		if (shutdown(c->fd, SHUT_WR) < 0) {
			tx_ended(c, errno);
			return -1;
		}
		tx_ended(c, 0);
		return -1;
	}
	n = rnd_size(r, c->tx_total - c->tx_off);
	chaos_fill(buf, n, tx_seed(c), c->tx_off);
	w = do_write(c->fd, buf, n, r, dontwait);
sent:
	if (w < 0) {
		if (errno == EINTR)
			return 1;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (blocking) {
				struct pollfd p = { .fd = c->fd, .events = POLLOUT };

				if (poll(&p, 1, -1) < 0 && errno != EINTR)
					failure("poll POLLOUT: %s", strerror(errno));
				return 1;
			}
			return 0;
		}
		tx_ended(c, errno);
		return -1;
	}
	if (w == 0) {
		failure("a send of %zu bytes returned 0", n ? n : sizeof(c->hello) - c->hello_off);
		tx_ended(c, EIO);
		return -1;
	}
	if (!opt.server && c->hello_off < sizeof(c->hello)) {
		c->hello_off += (size_t)w;
		return 1;
	}
	c->tx_off += (uint64_t)w;
	ST_ADD(tx_bytes, w);
	ST_SET(progress_ns, now_ns());
	return 1;
}

/* One read on @c: 1 after progress, 0 if it would block, -1 once the receiving side is over. */
static int conn_recv(struct conn *c, uint8_t *buf, bool blocking)
{
	struct rng *r = &c->rx_rng;
	const char *how = "recv";
	ssize_t got;
	size_t n;

	if (c->rx_end || conn_bad(c))
		return -1;
	if (opt.server && !c->have_hello) {
		got = recv(c->fd, (uint8_t *)&c->hello + c->hello_off,
			   sizeof(c->hello) - c->hello_off, 0);
		if (got > 0) {
			c->hello_off += (size_t)got;
			if (c->hello_off == sizeof(c->hello))
				hello_in(c);
			return conn_bad(c) ? -1 : 1;
		}
		goto ended;
	}
	n = rnd_size(r, CHAOS_IO_MAX);
	if (rng_below(r, 16) == 0) {
		/* MSG_PEEK: what it shows must be the stream too, and stay for the read. */
		got = recv(c->fd, buf, n, MSG_PEEK | (blocking ? 0 : MSG_DONTWAIT));
		if (got > 0 && !rx_check(c, buf, (size_t)got, "recv", true))
			return -1;
		if (got <= 0)
			goto ended;
	}
	got = do_read(c->fd, buf, n, r, blocking, &how);
	if (got > 0) {
		if (!rx_check(c, buf, (size_t)got, how, false))
			return -1;
		c->rx_off += (uint64_t)got;
		ST_ADD(rx_bytes, got);
		ST_SET(progress_ns, now_ns());
		return 1;
	}
ended:
	if (got == 0) {
		rx_ended(c, 0);
		return -1;
	}
	if (errno == EINTR)
		return 1;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		if (blocking) {
			struct pollfd p = { .fd = c->fd, .events = POLLIN };

			if (poll(&p, 1, -1) < 0 && errno != EINTR)
				failure("poll POLLIN: %s", strerror(errno));
			return 1;
		}
		return 0;
	}
	rx_ended(c, errno);
	return -1;
}

static bool conn_over(const struct conn *c)
{
	return conn_bad(c) || (c->tx_shut && c->rx_end);
}

/*
 * The end of a connection: judge it, write its result line, close it.
 * A client's server never dies, so anything but a clean end both ways is a
 * failure; a server's client may have been SIGKILLed (the driver knows):
 * EOF or ECONNRESET reading, EPIPE, ECONNRESET or ENOTCONN writing.
 */
static void conn_finish(struct conn *c)
{
	const char *rxend = c->rx_end ? (c->rx_err ? errname(c->rx_err) : "EOF") : "none";
	const char *txend = c->tx_shut ? (c->tx_err ? errname(c->tx_err) : "done") : "none";
	bool reset = c->rx_err || c->tx_err;
	/*
	 * Accelerated when made, a kernel socket now: its monitor died with it
	 * unaccepted and the library moved it to the kernel (docs/reliability.md
	 * "Monitor restarts"). The server's end is then a kernel one.
	 */
	int moved = c->accel == 1 && fd_accel(c->fd) == 0;

	if (!conn_bad(c)) {
		if (!opt.server && reset)
			failure("conn server=%u serial=%" PRIu64 " tr=%c accel=%d: ended with %s "
				"reading (at %" PRIu64 "), %s writing (at %" PRIu64 " of %" PRIu64
				"): servers never die", c->peer_slot, c->serial, c->tr, c->accel,
				rxend, c->rx_off, txend, c->tx_off, c->tx_total);
		/* ENOTCONN: shutdown() of a kernel socket that a reset already closed. */
		if (opt.server && ((c->rx_err && c->rx_err != ECONNRESET) ||
				   (c->tx_err && c->tx_err != EPIPE && c->tx_err != ECONNRESET &&
				    c->tx_err != ENOTCONN)))
			failure("conn client=%u serial=%" PRIu64 " tr=%c accel=%d: ended with %s "
				"reading (at %" PRIu64 "), %s writing (at %" PRIu64 ")",
				c->peer_slot, c->serial, c->tr, c->accel, rxend, c->rx_off, txend,
				c->tx_off);
	}
	if (reset)
		ST_ADD(resets, 1);
	pthread_mutex_lock(&res_mu);
	if (opt.server)
		fprintf(res, "s cli=%d serial=%" PRIu64 " pid=%u tr=%c accel=%d hello=%d rx=%"
			PRIu64 " rxend=%s tx=%" PRIu64 " txend=%s bad=%d\n",
			c->have_hello ? (int)c->peer_slot : -1, c->serial, c->peer_pid, c->tr,
			c->accel, c->have_hello, c->rx_off, rxend, c->tx_off, txend, c->bad);
	else
		fprintf(res, "c srv=%u serial=%" PRIu64 " tr=%c accel=%d moved=%d tstart=%" PRIu64
			" tconn=%" PRIu64 " tx=%" PRIu64 " rx=%" PRIu64 " rxend=%s txend=%s bad=%d\n",
			c->peer_slot, c->serial, c->tr, c->accel, moved, c->t_start, c->t_conn,
			c->tx_off, c->rx_off, rxend, txend, c->bad);
	pthread_mutex_unlock(&res_mu);
	reg_del(c);
	if (close(c->fd) < 0)
		failure("close(%d) of a connection: %s", c->fd, strerror(errno));
	ST_ADD(conns_open, -1);
	ST_ADD(conns_done, 1);
	free(c);
}

/* ---- servers' listeners ------------------------------------------------------------ */

static struct lsn lsns[MAX_LISTENERS];
static unsigned int n_lsn, listen_gen;

static void lsn_add(int fd, char tr)
{
	if (n_lsn == MAX_LISTENERS)
		fatal("more than %d listeners", MAX_LISTENERS);
	lsns[n_lsn] = (struct lsn){ .kind = K_LISTENER, .fd = fd, .tr = tr, .gen = listen_gen };
	n_lsn++;
}

static void port_file_write(unsigned int port, const char *upath)
{
	char tmp[256], path[256];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s/server-%u.port.tmp", opt.dir, opt.slot);
	snprintf(path, sizeof(path), "%s/server-%u.port", opt.dir, opt.slot);
	f = fopen(tmp, "we");
	if (!f)
		fatal("%s: %s", tmp, strerror(errno));
	fprintf(f, "gen=%u tcp=%u unix=%s\n", listen_gen, port, upath);
	if (fclose(f) || rename(tmp, path))
		fatal("%s: %s", path, strerror(errno));
}

/*
 * A new generation of listeners: TCP on 127.0.0.1 and AF_UNIX, named in the
 * port file. Nonblocking for the event-loop styles.
 */
static void listen_new(void)
{
	int flags = SOCK_CLOEXEC | (opt.style == ST_THREADS ? 0 : SOCK_NONBLOCK);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len = sizeof(sin);
	int one = 1, t, u;

	listen_gen++;
	t = socket(AF_INET, SOCK_STREAM | flags, 0);
	if (t < 0)
		fatal("socket: %s", strerror(errno));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(t, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(t, 1024) < 0 ||
	    getsockname(t, (struct sockaddr *)&sin, &len) < 0)
		fatal("TCP listener: %s", strerror(errno));
	u = socket(AF_UNIX, SOCK_STREAM | flags, 0);
	if (u < 0)
		fatal("socket AF_UNIX: %s", strerror(errno));
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/server-%u.sock.%u", opt.dir, opt.slot,
		 listen_gen);
	unlink(sun.sun_path);
	if (bind(u, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(u, 1024) < 0)
		fatal("AF_UNIX listener %s: %s", sun.sun_path, strerror(errno));
	lsn_add(t, 't');
	lsn_add(u, 'u');
	port_file_write(ntohs(sin.sin_port), sun.sun_path);
}

/* After the listeners are written in the port file: the driver waits for this. */
static void listen_announce(void)
{
	ST_SET(listen_gen, listen_gen);
}

static int accept_one(int lfd, struct rng *r, bool nonblock)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd;

	switch (rng_below(r, 3)) {
	case 0:
		return accept4(lfd, (struct sockaddr *)&ss, &len,
			       SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0));
	case 1:
		fd = accept(lfd, NULL, NULL);
		break;
	default:
		fd = accept(lfd, (struct sockaddr *)&ss, &len);
		break;
	}
	if (fd >= 0 && nonblock)
		set_nonblock(fd, r, true);
	return fd;
}

/* ---- clients' connects ------------------------------------------------------------ */

static uint64_t next_serial;

/* Read server @srv's port file: its newest TCP port and AF_UNIX path. */
static void server_addr(unsigned int srv, unsigned int *port, char *upath, size_t len)
{
	char path[256], u[200] = "";
	unsigned int gen = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/server-%u.port", opt.dir, srv);
	f = fopen(path, "re");
	if (!f || fscanf(f, "gen=%u tcp=%u unix=%199s", &gen, port, u) != 3)
		fatal("%s: cannot read it (%s)", path, f ? "bad content" : strerror(errno));
	fclose(f);
	snprintf(upath, len, "%s", u);
}

/*
 * Open a connection to a random server. @blocking: the threads style (the
 * fd ends blocking); otherwise nonblocking, maybe still connecting.
 * NULL (and a FAIL) if the connect fails: the servers never go away.
 */
static struct conn *conn_open(struct rng *r, bool blocking)
{
	unsigned int srv = rng_below(r, opt.servers), port;
	bool use_unix = rng_below(r, 100) < opt.unix_pct;
	bool nb_connect = rng_below(r, 2);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct sockaddr *sa;
	socklen_t salen;
	struct conn *c;
	int fd, rc, flags;

	server_addr(srv, &port, sun.sun_path, sizeof(sun.sun_path));
	if (use_unix) {
		sa = (struct sockaddr *)&sun;
		salen = sizeof(sun);
	} else {
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons((uint16_t)port);
		sa = (struct sockaddr *)&sin;
		salen = sizeof(sin);
	}
	flags = SOCK_STREAM | SOCK_CLOEXEC | (nb_connect && rng_below(r, 2) ? SOCK_NONBLOCK : 0);
	fd = socket(use_unix ? AF_UNIX : AF_INET, flags, 0);
	if (fd < 0)
		fatal("socket: %s", strerror(errno));
	if (rng_below(r, 8) == 0) {
		/* A buffer size: the ring-size hint of the accelerated connection. */
		int sz = 4096 << rng_below(r, 9);
		int opt_name = rng_below(r, 2) ? SO_SNDBUF : SO_RCVBUF;

		setsockopt(fd, SOL_SOCKET, opt_name, &sz, sizeof(sz));
	}
	if (nb_connect && !(fcntl(fd, F_GETFL) & O_NONBLOCK))
		set_nonblock(fd, r, true);
	c = conn_new(fd, use_unix ? 'u' : 't');
	c->peer_slot = srv;
	c->serial = ++next_serial;
	c->seed = chaos_conn_seed(opt.seed, opt.slot, c->serial);
	c->hello = (struct chaos_hello){ .magic = CHAOS_HELLO_MAGIC, .slot = opt.slot,
					 .serial = c->serial, .seed = c->seed,
					 .pid = (uint32_t)getpid() };
	c->hello.sum = chaos_hello_sum(&c->hello);
	rng_init(&c->tx_rng, c->seed ^ CHAOS_SALT_C2S);
	rng_init(&c->rx_rng, c->seed ^ CHAOS_SALT_S2C ^ 1);
	c->tx_total = rnd_len(&c->tx_rng);
	c->t_start = now_ns();
	rc = connect(fd, sa, salen);
	/*
	 * In progress: a nonblocking connect, or a blocking one a signal
	 * interrupted (the kernel goes on connecting; calling connect() again
	 * would say EALREADY).
	 */
	if (rc < 0 && (errno == EINPROGRESS || errno == EINTR)) {
		c->connecting = true;
		if (blocking) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int err = 0;
			socklen_t len = sizeof(err);

			while (poll(&p, 1, -1) < 0 && errno == EINTR)
				;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
				err = errno;
			rc = err ? -1 : 0;
			errno = err;
			c->connecting = false;
		} else {
			return c;
		}
	}
	if (rc < 0) {
		failure("connect to server %u (%s %s): %s (errno %s)", srv,
			use_unix ? "AF_UNIX" : "TCP port", use_unix ? sun.sun_path : "",
			strerror(errno), errname(errno));
		reg_del(c);
		close(fd);
		ST_ADD(conns_open, -1);
		free(c);
		return NULL;
	}
	c->t_conn = now_ns();
	conn_accel(c);
	set_nonblock(fd, r, !blocking);
	return c;
}

/* A nonblocking connect became writable: did it connect? */
static bool conn_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	c->connecting = false;
	if (err) {
		failure("nonblocking connect to server %u (%s): %s (errno %s)", c->peer_slot,
			c->tr == 'u' ? "AF_UNIX" : "TCP", strerror(err), errname(err));
		__atomic_store_n(&c->bad, true, __ATOMIC_RELAXED);
		return false;
	}
	c->t_conn = now_ns();
	conn_accel(c);
	return true;
}

/* ---- the state dump: SIGQUIT writes D/worker-N.state ------------------------------- */

/*
 * For the driver's hang reports: every open connection as this process
 * sees it, with the kernel's view of its fd. A thread of its own takes
 * SIGQUIT (sigwait), so it answers whatever call the others are stuck in.
 */
static void state_dump(void)
{
	char path[256], tmp[256], fdpath[64], link[128], info[256];
	unsigned int i;
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s/worker-%u.state.tmp", opt.dir, opt.slot);
	snprintf(path, sizeof(path), "%s/worker-%u.state", opt.dir, opt.slot);
	f = fopen(tmp, "we");
	if (!f)
		return;
	pthread_mutex_lock(&reg_mu);
	fprintf(f, "%s %u pid %d: %u connections open, stop=%d final=%d\n", role(), opt.slot,
		(int)getpid(), n_reg, stopping(), __atomic_load_n(&sig_final, __ATOMIC_RELAXED));
	for (i = 0; i < n_reg; i++) {
		const struct conn *c = reg[i];
		ssize_t n;
		FILE *fi;

		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", c->fd);
		n = readlink(fdpath, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		fprintf(f, "  fd=%d (%s) tr=%c accel=%d peer=%d serial=%" PRIu64 " hello=%zu/%d "
			"connecting=%d tx=%" PRIu64 "/%" PRIu64 " tx_shut=%d tx_err=%s rx=%" PRIu64
			" rx_end=%d rx_err=%s bad=%d ev=%#x ready=%d", c->fd, link, c->tr, c->accel,
			(int)c->peer_slot, c->serial, c->hello_off, c->have_hello, c->connecting,
			c->tx_off, c->tx_total, c->tx_shut, errname(c->tx_err), c->rx_off,
			c->rx_end, errname(c->rx_err), c->bad, c->ev, c->ready);
		snprintf(fdpath, sizeof(fdpath), "/proc/self/fdinfo/%d", c->fd);
		fi = fopen(fdpath, "re");
		while (fi && fgets(info, sizeof(info), fi))
			if (!strncmp(info, "eventfd-count", 13) || !strncmp(info, "flags", 5))
				fprintf(f, " %.*s", (int)strcspn(info, "\n"), info);
		if (fi)
			fclose(fi);
		fputc('\n', f);
	}
	pthread_mutex_unlock(&reg_mu);
	if (fclose(f) == 0)
		rename(tmp, path);
}

static void *state_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;

	for (;;)
		if (sigwait(set, &sig) == 0)
			state_dump();
	return NULL;
}

/* ---- signals ------------------------------------------------------------------------ */

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		__atomic_store_n(&sig_stop, 1, __ATOMIC_RELAXED);
	else if (sig == SIGUSR2)
		__atomic_store_n(&sig_relisten, 1, __ATOMIC_RELAXED);
	else if (sig == SIGTERM)
		__atomic_store_n(&sig_final, 1, __ATOMIC_RELAXED);
}

static void on_interrupt(int sig)
{
	(void)sig;	/* only there to interrupt a blocking accept() */
}

static void signals_init(struct rng *r)
{
	struct sigaction sa = { .sa_handler = on_signal };
	/*
	 * With SA_RESTART or without (per worker): every call here copes with
	 * EINTR, and the preload must restart exactly what the kernel would.
	 */
	sa.sa_flags = rng_below(r, 2) ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_interrupt;
	sa.sa_flags = 0;
	sigaction(SIGWINCH, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- the event-loop styles: epoll (LT or ET) or poll, one thread ------------------- */

struct loop {
	int epfd;
	bool et;
	struct conn *conns[MAX_CONNS];
	unsigned int n;
	struct pollfd *pfd;
	void **pref;
	uint8_t *rbuf, *wbuf;
	struct rng rng;
};

static uint32_t conn_want(const struct conn *c)
{
	uint32_t ev = 0;

	if (c->connecting)
		return EPOLLOUT;
	if (!c->rx_end)
		ev |= EPOLLIN | EPOLLRDHUP;
	if (!c->tx_shut && (!opt.server || c->have_hello))
		ev |= EPOLLOUT;
	return ev;
}

static void loop_ctl(struct loop *l, int op, int fd, uint32_t ev, void *ptr)
{
	struct epoll_event e = { .events = ev, .data.ptr = ptr };

	if (l->epfd >= 0 && epoll_ctl(l->epfd, op, fd, &e) < 0)
		failure("epoll_ctl(%d, fd %d, %#x): %s", op, fd, ev, strerror(errno));
}

static void loop_add(struct loop *l, struct conn *c)
{
	if (l->n == MAX_CONNS)
		fatal("more than %d connections", MAX_CONNS);
	l->conns[l->n++] = c;
	c->in_loop = true;
	c->ev = l->et ? EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET : conn_want(c);
	loop_ctl(l, EPOLL_CTL_ADD, c->fd, c->ev, c);
	c->ready = l->et;	/* edge-triggered: try it once before waiting for an edge */
}

/* Level-triggered epoll: follow what the connection wants. */
static void loop_update(struct loop *l, struct conn *c)
{
	uint32_t want;

	if (l->et || conn_over(c))
		return;
	want = conn_want(c);
	if (want != c->ev) {
		c->ev = want;
		loop_ctl(l, EPOLL_CTL_MOD, c->fd, want, c);
	}
}

/* Drive @c: up to @rounds of a read and a write. True if it is still not blocked. */
static bool conn_drive(struct loop *l, struct conn *c, unsigned int rounds)
{
	while (rounds--) {
		int a = conn_recv(c, l->rbuf, false);
		int b = conn_send(c, l->wbuf, false);

		if (conn_over(c))
			return false;
		if (a <= 0 && b <= 0)
			return false;
	}
	return true;
}

static void loop_event(struct loop *l, struct conn *c, uint32_t ev)
{
	if (c->connecting) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) || !conn_connected(c))
			return;
		if (!l->et) {
			loop_update(l, c);
			return;
		}
	}
	if (l->et)
		c->ready = true;
	else
		conn_drive(l, c, 4);
	loop_update(l, c);
}

static void loop_accept(struct loop *l, struct lsn *s)
{
	unsigned int i;

	for (i = 0; i < 64 && l->n < MAX_CONNS; i++) {
		int fd = accept_one(s->fd, &l->rng, true);
		struct conn *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				failure("accept on the %s listener: %s",
					s->tr == 'u' ? "AF_UNIX" : "TCP", strerror(errno));
			return;
		}
		c = conn_new(fd, s->tr);
		c->t_conn = now_ns();
		conn_accel(c);
		rng_init(&c->rx_rng, rng_next(&l->rng));
		loop_add(l, c);
	}
}

static void loop_reap(struct loop *l)
{
	unsigned int i = 0;

	while (i < l->n) {
		struct conn *c = l->conns[i];

		if (!conn_over(c)) {
			i++;
			continue;
		}
		l->conns[i] = l->conns[--l->n];
		/* Half the time close() alone must take it out of the epoll set. */
		if (rng_below(&l->rng, 2))
			loop_ctl(l, EPOLL_CTL_DEL, c->fd, 0, NULL);
		conn_finish(c);
	}
}

static void loop_listeners(struct loop *l, unsigned int from)
{
	unsigned int i;

	for (i = from; i < n_lsn; i++)
		loop_ctl(l, EPOLL_CTL_ADD, lsns[i].fd, EPOLLIN, &lsns[i]);
}

static int loop_wait(struct loop *l, struct epoll_event *evs, int max, int timeout)
{
	unsigned int i, k = 0;
	int n;

	if (l->epfd >= 0)
		return epoll_wait(l->epfd, evs, max, timeout);
	/* poll: the listeners, then the connections */
	for (i = 0; i < n_lsn; i++) {
		if (lsns[i].fd < 0)
			continue;
		l->pfd[k] = (struct pollfd){ .fd = lsns[i].fd, .events = POLLIN };
		l->pref[k++] = &lsns[i];
	}
	for (i = 0; i < l->n; i++) {
		uint32_t w = conn_want(l->conns[i]);

		l->pfd[k] = (struct pollfd){ .fd = l->conns[i]->fd,
			.events = (short)((w & EPOLLIN ? POLLIN | POLLRDHUP : 0) |
					  (w & EPOLLOUT ? POLLOUT : 0)) };
		l->pref[k++] = l->conns[i];
	}
	n = poll(l->pfd, k, timeout);
	if (n <= 0)
		return n;
	n = 0;
	for (i = 0; i < k && n < max; i++) {
		short re = l->pfd[i].revents;

		if (!re)
			continue;
		evs[n].events = (re & POLLIN ? EPOLLIN : 0) | (re & POLLOUT ? EPOLLOUT : 0) |
				(re & POLLERR ? EPOLLERR : 0) | (re & POLLHUP ? EPOLLHUP : 0) |
				(re & POLLRDHUP ? EPOLLRDHUP : 0);
		evs[n++].data.ptr = l->pref[i];
	}
	return n;
}

static void run_loop(void)
{
	struct loop *l = calloc(1, sizeof(*l));
	struct epoll_event evs[64];
	bool closed_lsn = false;
	unsigned int i;

	if (!l)
		fatal("out of memory");
	l->et = opt.style == ST_EPOLLET;
	l->epfd = -1;
	if (opt.style != ST_POLL) {
		l->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (l->epfd < 0)
			fatal("epoll_create1: %s", strerror(errno));
	} else {
		l->pfd = xmalloc((MAX_CONNS + MAX_LISTENERS) * sizeof(*l->pfd));
		l->pref = xmalloc((MAX_CONNS + MAX_LISTENERS) * sizeof(*l->pref));
	}
	l->rbuf = xmalloc(CHAOS_IO_MAX);
	l->wbuf = xmalloc(CHAOS_IO_MAX);
	rng_init(&l->rng, opt.seed ^ (uint64_t)opt.slot << 20 ^ 0x100);
	if (opt.server) {
		listen_new();
		loop_listeners(l, 0);
		listen_announce();
	}
	for (;;) {
		bool any_ready = false;
		int n;

		if (opt.server && __atomic_exchange_n(&sig_relisten, 0, __ATOMIC_RELAXED) &&
		    !closed_lsn) {
			unsigned int from = n_lsn;

			listen_new();
			loop_listeners(l, from);
			listen_announce();
		}
		if (stopping())
			ST_SET(state, CHAOS_ST_DRAINING);
		if (opt.server && __atomic_load_n(&sig_final, __ATOMIC_RELAXED) && !closed_lsn) {
			for (i = 0; i < n_lsn; i++) {
				loop_ctl(l, EPOLL_CTL_DEL, lsns[i].fd, 0, NULL);
				close(lsns[i].fd);
				lsns[i].fd = -1;
			}
			n_lsn = 0;
			closed_lsn = true;
		}
		if (!opt.server) {
			while (!stopping() && l->n < opt.conns) {
				struct conn *c = conn_open(&l->rng, false);

				if (!c)
					break;
				loop_add(l, c);
			}
		}
		for (i = 0; i < l->n; i++) {
			struct conn *c = l->conns[i];

			if (stopping() && !c->connecting && !c->tx_shut) {
				conn_send(c, l->wbuf, false);	/* the shutdown */
				loop_update(l, c);
			}
			if (c->ready && !c->connecting) {
				c->ready = conn_drive(l, c, 16);
				any_ready |= c->ready;
			}
		}
		loop_reap(l);
		if (opt.server ? closed_lsn && l->n == 0 : stopping() && l->n == 0)
			break;
		n = loop_wait(l, evs, 64, any_ready ? 0 : -1);
		if (n < 0) {
			if (errno != EINTR)
				failure("%s: %s", l->epfd >= 0 ? "epoll_wait" : "poll",
					strerror(errno));
			continue;
		}
		for (i = 0; i < (unsigned int)n; i++) {
			int kind = *(int *)evs[i].data.ptr;

			if (kind == K_LISTENER)
				loop_accept(l, evs[i].data.ptr);
			else
				loop_event(l, evs[i].data.ptr, evs[i].events);
		}
		loop_reap(l);
	}
	if (l->epfd >= 0)
		close(l->epfd);
	free(l->rbuf);
	free(l->wbuf);
	free(l->pfd);
	free(l->pref);
	free(l);
}

/* ---- the threads style: blocking calls ---------------------------------------------- */

static pthread_mutex_t act_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t act_cond = PTHREAD_COND_INITIALIZER;
static unsigned int active;

static void thread_start(pthread_t *t, void *(*fn)(void *), void *arg, bool detached)
{
	pthread_attr_t a;
	int rc;

	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, THREAD_STACK);
	if (detached)
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(t, &a, fn, arg);
	pthread_attr_destroy(&a);
	if (rc)
		fatal("pthread_create: %s", strerror(rc));
}

static void *t_writer(void *arg)
{
	struct conn *c = arg;
	uint8_t *buf = xmalloc(CHAOS_IO_MAX);

	while (conn_send(c, buf, true) >= 0)
		;
	free(buf);
	return NULL;
}

static void *t_reader(void *arg)
{
	struct conn *c = arg;
	uint8_t *buf = xmalloc(CHAOS_IO_MAX);

	while (conn_recv(c, buf, true) >= 0)
		;
	free(buf);
	return NULL;
}

/* Both directions of @c at once (the reader in a thread of its own), then its end. */
static void t_run_conn(struct conn *c)
{
	pthread_t rt;

	thread_start(&rt, t_reader, c, false);
	t_writer(c);
	pthread_join(rt, NULL);
	conn_finish(c);
}

static void *t_server_conn(void *arg)
{
	struct conn *c = arg;
	uint8_t buf[sizeof(struct chaos_hello)];

	/* The hello first: the server's stream depends on it. */
	while (!c->have_hello && !conn_bad(c) && !c->rx_end)
		conn_recv(c, buf, true);
	if (c->have_hello)
		t_run_conn(c);
	else
		conn_finish(c);
	pthread_mutex_lock(&act_mu);
	active--;
	pthread_cond_broadcast(&act_cond);
	pthread_mutex_unlock(&act_mu);
	return NULL;
}

static void *t_acceptor(void *arg)
{
	struct lsn *s = arg;
	struct rng r;

	rng_init(&r, opt.seed ^ (uint64_t)opt.slot << 24 ^ (uint64_t)s->fd);
	while (!__atomic_load_n(&sig_final, __ATOMIC_RELAXED)) {
		int fd = accept_one(s->fd, &r, false);
		struct conn *c;
		pthread_t t;

		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				failure("blocking accept on the %s listener: %s",
					s->tr == 'u' ? "AF_UNIX" : "TCP", strerror(errno));
			continue;
		}
		c = conn_new(fd, s->tr);
		c->t_conn = now_ns();
		conn_accel(c);
		pthread_mutex_lock(&act_mu);
		active++;
		pthread_mutex_unlock(&act_mu);
		thread_start(&t, t_server_conn, c, true);
	}
	return NULL;
}

static void t_listeners_start(unsigned int from)
{
	unsigned int i;

	for (i = from; i < n_lsn; i++) {
		thread_start(&lsns[i].thread, t_acceptor, &lsns[i], false);
		lsns[i].has_thread = true;
	}
}

#define JOIN_TRIES	1200	/* x 50 ms: an accepting thread that never wakes is a hang */

static void t_listeners_stop(void)
{
	unsigned int i, k;

	for (i = 0; i < n_lsn; i++) {
		struct timespec ts;

		for (k = 0; k < JOIN_TRIES; k++) {
			/* Again and again: the signal may land just before accept() sleeps. */
			pthread_kill(lsns[i].thread, SIGWINCH);
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (pthread_timedjoin_np(lsns[i].thread, NULL, &ts) == 0)
				break;
		}
		if (k == JOIN_TRIES)
			fatal("the accepting thread of the %s listener does not return from "
			      "accept() after %d interrupting signals (hang)",
			      lsns[i].tr == 'u' ? "AF_UNIX" : "TCP", JOIN_TRIES);
		close(lsns[i].fd);
	}
	n_lsn = 0;
}

static void *t_client_lane(void *arg)
{
	struct rng r;

	rng_init(&r, opt.seed ^ (uint64_t)opt.slot << 24 ^ (uintptr_t)arg);
	while (!stopping()) {
		struct conn *c = conn_open(&r, true);

		if (!c)
			break;
		t_run_conn(c);
	}
	return NULL;
}

static void run_threads(void)
{
	sigset_t block, old;
	pthread_t *lanes = NULL;
	unsigned int i;

	/* Only this thread takes the process's signals (sigsuspend below). */
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	if (opt.server) {
		listen_new();
		t_listeners_start(0);
		listen_announce();
	} else {
		lanes = xmalloc(opt.conns * sizeof(*lanes));
		for (i = 0; i < opt.conns; i++)
			thread_start(&lanes[i], t_client_lane, (void *)(uintptr_t)i, false);
	}
	for (;;) {
		if (opt.server && __atomic_exchange_n(&sig_relisten, 0, __ATOMIC_RELAXED)) {
			unsigned int from = n_lsn;

			listen_new();
			t_listeners_start(from);
			listen_announce();
		}
		if (stopping())
			ST_SET(state, CHAOS_ST_DRAINING);
		if (opt.server ? __atomic_load_n(&sig_final, __ATOMIC_RELAXED) : stopping())
			break;
		sigsuspend(&old);
	}
	if (opt.server) {
		t_listeners_stop();
		pthread_mutex_lock(&act_mu);
		while (active)
			pthread_cond_wait(&act_cond, &act_mu);
		pthread_mutex_unlock(&act_mu);
	} else {
		for (i = 0; i < opt.conns; i++)
			pthread_join(lanes[i], NULL);
		free(lanes);
	}
}

/* ---- main ------------------------------------------------------------------------------ */

static void stats_map(void)
{
	char path[256];
	void *p;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", opt.dir, CHAOS_STATS_FILE);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fatal("%s: %s", path, strerror(errno));
	p = mmap(NULL, CHAOS_STATS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		fatal("mmap %s: %s", path, strerror(errno));
	me = (struct chaos_slot *)p + opt.slot;
	memset(me, 0, sizeof(*me));
	ST_SET(pid, getpid());
}

/*
 * The fd census at the end, against the one taken before the first socket:
 * the application's objects must all be closed; what the preload keeps is
 * bounded by its documented caches (its registration; a connector's lanes
 * and their kits); its mappings by its registration's, IPCD_MCACHE_SLOTS
 * idle ones and those of the registrations it forgot (monitor restarts).
 */
static void finish(const struct census *base)
{
	struct census end;
	int lib, lib_bound, maps_bound;

	census_take(&end);
	lib = census_lib(&end) - census_lib(base);
	lib_bound = LIB_REG_FDS;
	if (!opt.server && opt.lanes)
		lib_bound += LIB_LANES * (1 + LIB_LANE_KITS * 3);
	maps_bound = base->memfd_maps + 2 + LIB_MCACHE + 2 * LIB_RETIRED;
	if (end.tcp || end.ustream || end.epoll || end.pipe != base->pipe ||
	    end.other != base->other)
		failure("fds left open after every socket was closed: %d TCP, %d AF_UNIX "
			"stream, %d epoll, %d pipes (%d at start), %d others (%d at start)",
			end.tcp, end.ustream, end.epoll, end.pipe, base->pipe, end.other,
			base->other);
	if (lib > lib_bound)
		failure("the preload holds %d fds after every socket was closed (%d eventfds, "
			"%d memfds, %d AF_UNIX control/lane sockets); its caches account for at "
			"most %d", lib, end.eventfd, end.memfd, end.useq, lib_bound);
	if (end.memfd_maps > maps_bound)
		failure("%d memfd mappings left after every socket was closed (at most %d)",
			end.memfd_maps, maps_bound);
	fprintf(res, "done role=%s slot=%u rx=%" PRIu64 " tx=%" PRIu64 " conns=%" PRIu64
		" accel=%" PRIu64 " kernel=%" PRIu64 " resets=%" PRIu64 " errors=%" PRIu64
		" fds_start=%d fds_end=%d lib_fds=%d lib_bound=%d eventfd=%d memfd=%d useq=%d"
		" memfd_maps=%d maps_bound=%d lanes=%d\n", role(), opt.slot,
		__atomic_load_n(&me->rx_bytes, __ATOMIC_RELAXED),
		__atomic_load_n(&me->tx_bytes, __ATOMIC_RELAXED),
		__atomic_load_n(&me->conns_done, __ATOMIC_RELAXED),
		__atomic_load_n(&me->conns_accel, __ATOMIC_RELAXED),
		__atomic_load_n(&me->conns_kernel, __ATOMIC_RELAXED),
		__atomic_load_n(&me->resets, __ATOMIC_RELAXED),
		__atomic_load_n(&me->errors, __ATOMIC_RELAXED), base->total, end.total, lib,
		lib_bound, end.eventfd, end.memfd, end.useq, end.memfd_maps, maps_bound, opt.lanes);
	if (fclose(res))
		fatal("writing the results: %s", strerror(errno));
	ST_SET(state, CHAOS_ST_DONE);
}

static void usage(void)
{
	fprintf(stderr, "usage: ipcd-chaos server|client --slot N --dir D --seed S --style "
			"epoll|epollet|poll|threads [--conns K --servers M --max-len B "
			"--unix-pct P]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *lanes = getenv("IPCD_LANES");
	struct census base;
	char path[256];
	struct rng r;
	int i;

	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "server"))
		opt.server = true;
	else if (strcmp(argv[1], "client"))
		usage();
	for (i = 2; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (!strcmp(k, "--slot"))
			opt.slot = (unsigned int)strtoul(v, NULL, 0);
		else if (!strcmp(k, "--dir"))
			opt.dir = v;
		else if (!strcmp(k, "--seed"))
			opt.seed = strtoull(v, NULL, 0);
		else if (!strcmp(k, "--conns"))
			opt.conns = (unsigned int)strtoul(v, NULL, 0);
		else if (!strcmp(k, "--servers"))
			opt.servers = (unsigned int)strtoul(v, NULL, 0);
		else if (!strcmp(k, "--max-len"))
			opt.max_len = strtoull(v, NULL, 0);
		else if (!strcmp(k, "--unix-pct"))
			opt.unix_pct = (unsigned int)strtoul(v, NULL, 0);
		else if (!strcmp(k, "--style"))
			opt.style = !strcmp(v, "epoll") ? ST_EPOLL
				    : !strcmp(v, "epollet") ? ST_EPOLLET
				    : !strcmp(v, "poll") ? ST_POLL
				    : !strcmp(v, "threads") ? ST_THREADS : (usage(), ST_EPOLL);
		else
			usage();
	}
	if (i != argc || !opt.dir || opt.slot >= CHAOS_MAX_SLOTS ||
	    (!opt.server && (!opt.servers || !opt.conns || opt.conns > MAX_CONNS)))
		usage();
	opt.lanes = !lanes || strcmp(lanes, "0");
	/* Before any socket: what the process holds that is not the preload's. */
	census_take(&base);
	stats_map();
	snprintf(path, sizeof(path), "%s/worker-%u.res", opt.dir, opt.slot);
	res = fopen(path, "we");
	if (!res)
		fatal("%s: %s", path, strerror(errno));
	base.other++;	/* the results file stays open to the end */
	rng_init(&r, opt.seed ^ (uint64_t)opt.slot << 32 ^ 0x516e);
	signals_init(&r);
	{
		static sigset_t quit;
		sigset_t all, old;
		pthread_t t;

		sigemptyset(&quit);
		sigaddset(&quit, SIGQUIT);
		pthread_sigmask(SIG_BLOCK, &quit, NULL);	/* inherited by every thread */
		/* The dump thread takes SIGQUIT only: no handler may run on it. */
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		thread_start(&t, state_thread, &quit, true);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	ST_SET(state, CHAOS_ST_RUNNING);
	if (opt.style == ST_THREADS)
		run_threads();
	else
		run_loop();
	finish(&base);
	return __atomic_load_n(&me->errors, __ATOMIC_RELAXED) ? 1 : 0;
}
