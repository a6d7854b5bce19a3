/* SPDX-License-Identifier: MIT */
/*
 * ipcd-echo - TCP echo server, client and semantic probes for the preload
 * integration tests (tests/integration/it_preload_accel.c, it_preload_faults.c).
 * Plain POSIX sockets: it behaves the same with and without libipcd.so.
 *
 *   ipcd-echo server [--host A] [--port P] [--port-file F] [--conns N]
 *                    [--nonblock | --select | --fork] [--close] [--report] [--allow-reset]
 *   ipcd-echo client --port P [--host A] [--conns N] [--size B] [--chunk B] [--seed S]
 *                    [--nonblock | --select] [--duplex] [--sendfile] [--rcvtimeo MS]
 *                    [--forever [--idle]] [--ready-at B --ready-file F [--wait-file G]]
 *   ipcd-echo churn --port P [--host A] [--count N] [--map-slack N]
 *   ipcd-echo probe refused|addrinuse|epipe|timeo|eintr|epollet [--host A] [--port P] [--ms MS]
 *
 * Results are one line on stdout ("client ok ...", "server done ...", "probe
 * ok ..."); an error is one line on stderr naming what failed, where (the
 * connection, the byte offset) and errno, and the exit status is 1.
 * Timestamps (t_mono_ns=) are CLOCK_MONOTONIC, comparable across processes.
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
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS	4096
#define IO_MAX		(64 * 1024)
#define PEEK_MAX	512
#define GUARD_MS	60000	/* hang guard: no progress at all for this long is an error */
#define DUPLEX_GUARD_MS	20000	/* hang guard: a duplex transfer without progress */
#define SERVER_IDLE_MS	180000	/* a server with nothing to do for this long gives up */
#define FNV64_INIT	0xcbf29ce484222325ull

struct opts {
	const char *host;
	unsigned int port;
	const char *port_file;
	unsigned int conns;
	uint64_t size;
	size_t chunk;
	uint64_t seed;
	bool nonblock;
	bool use_select;
	bool fork_mode;
	bool close_mode;
	bool report;
	bool allow_reset;
	bool sendfile_mode;
	bool forever;
	bool idle;
	bool duplex;
	int rcvtimeo_ms;
	uint64_t ready_at;
	const char *ready_file;
	const char *wait_file;
	unsigned int count;
	unsigned int map_slack;	/* idle mappings the runtime may cache (churn) */
	int ms;
};

static struct opts opt = {
	.host = "127.0.0.1",
	.conns = 1,
	.size = 1 << 20,
	.chunk = 16 << 10,
	.seed = 1,
	.count = 1000,
	.ms = 300,
};

static const char *role = "ipcd-echo";

/* ---- errors and small helpers ---------------------------------------------- */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "ipcd-echo %s: FAIL: %s\n", role, msg);
	exit(1);
}

static const char *errname(int err)
{
	const char *n = err ? strerrorname_np(err) : "0";

	return n ? n : "?";
}

/* "what: strerror (errno N ENAME)" and exit 1. */
static void fail_errno(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
static void fail_errno(int err, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fail("%s: %s (errno %d %s)", msg, strerror(err), err, errname(err));
}

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

static uint64_t parse_size(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		fail("bad %s: '%s'", what, s);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end)
		fail("bad %s: '%s'", what, s);
	return v;
}

/* Open fds of this process (not counting the directory stream's own fd). */
static int fd_count(void)
{
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		fail_errno(errno, "opendir /proc/self/fd");
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

/* Shared-memory mappings of this process: lines of /proc/self/maps naming a memfd. */
static int memfd_maps(void)
{
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		fail_errno(errno, "open /proc/self/maps");
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "/memfd:"))
			n++;
	fclose(f);
	return n;
}

static long rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void touch_file(const char *path)
{
	char tmp[4096];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_errno(errno, "create %s", tmp);
	close(fd);
	if (rename(tmp, path))
		fail_errno(errno, "rename %s", path);
}

static void write_file(const char *path, const char *text)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		fail_errno(errno, "create %s", tmp);
	fputs(text, f);
	if (fclose(f))
		fail_errno(errno, "write %s", tmp);
	if (rename(tmp, path))
		fail_errno(errno, "rename %s", path);
}

static void wait_for_file(const char *path)
{
	uint64_t deadline = now_ns() + (uint64_t)GUARD_MS * 1000000ull;

	while (access(path, F_OK)) {
		if (now_ns() > deadline)
			fail("%s did not appear within %d ms", path, GUARD_MS);
		sleep_ms(2);
	}
}

/* ---- data: a pseudo-random byte per (stream, position), and its hash --------- */

static inline uint8_t pat_byte(uint64_t stream, uint64_t pos)
{
	uint64_t x = (pos + 1) * 0x9e3779b97f4a7c15ull ^ stream * 0xff51afd7ed558ccdull;

	x ^= x >> 29;
	return (uint8_t)(x >> 56 ^ x >> 13);
}

static void pat_fill(uint8_t *p, size_t len, uint64_t stream, uint64_t pos)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pat_byte(stream, pos + i);
}

static uint64_t stream_of(unsigned int conn)
{
	return opt.seed * 1000003ull + conn;
}

static uint64_t fnv64(uint64_t h, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* The first byte where @got differs from the pattern, or @len. */
static size_t pat_mismatch(const uint8_t *got, size_t len, uint64_t stream, uint64_t pos)
{
	for (size_t i = 0; i < len; i++)
		if (got[i] != pat_byte(stream, pos + i))
			return i;
	return len;
}

/* ---- addresses ---------------------------------------------------------------- */

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

static void addr_make(struct addr *a, const char *host, unsigned int port)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->ss;

	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		a->len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		a->len = sizeof(*v6);
	} else {
		fail("bad address '%s' (numeric IPv4 or IPv6 only)", host);
	}
}

static int addr_family(const struct addr *a)
{
	return a->ss.ss_family;
}

static unsigned int addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

static const char *addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, addr_port(ss));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, addr_port(ss));
	} else {
		snprintf(buf, len, "<family %d>", ss->ss_family);
	}
	return buf;
}

static bool addr_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

static bool addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	return addr_same_ip(a, b) && addr_port(a) == addr_port(b);
}

/*
 * getsockname/getpeername of a connected socket: the peer must be @peer
 * (the connect target, or what accept() returned); the local end must have
 * @peer's family, a port (@local_port if non-zero), and, for a client, an
 * address of the same kind (loopback to loopback).
 */
static void check_names(int fd, const char *who, unsigned int id,
			const struct sockaddr_storage *peer, unsigned int local_port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char b1[80], b2[80];

	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &len))
		fail_errno(errno, "%s %u: getpeername", who, id);
	if (!addr_equal(&ss, peer))
		fail("%s %u: getpeername gives %s, expected %s", who, id,
		     addr_str(&ss, b1, sizeof(b1)), addr_str(peer, b2, sizeof(b2)));
	len = sizeof(ss);
	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		fail_errno(errno, "%s %u: getsockname", who, id);
	if (ss.ss_family != peer->ss_family || addr_port(&ss) == 0 ||
	    (local_port && addr_port(&ss) != local_port))
		fail("%s %u: getsockname gives %s (peer %s, expected local port %u)", who, id,
		     addr_str(&ss, b1, sizeof(b1)), addr_str(peer, b2, sizeof(b2)), local_port);
}

/* ---- waiting: poll() or select() over the same pollfd array --------------------- */

static int wait_events(struct pollfd *p, nfds_t n, int timeout_ms)
{
	fd_set rd, wr, ex;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	int maxfd = -1, rc;

	if (!opt.use_select) {
		do
			rc = poll(p, n, timeout_ms);
		while (rc < 0 && errno == EINTR);
		if (rc < 0)
			fail_errno(errno, "poll");
		return rc;
	}
	FD_ZERO(&rd);
	FD_ZERO(&wr);
	FD_ZERO(&ex);
	for (nfds_t i = 0; i < n; i++) {
		p[i].revents = 0;
		if (p[i].fd < 0)
			continue;
		if (p[i].fd >= FD_SETSIZE)
			fail("fd %d does not fit select() (FD_SETSIZE %d): use --nonblock", p[i].fd,
			     FD_SETSIZE);
		if (p[i].events & POLLIN)
			FD_SET(p[i].fd, &rd);
		if (p[i].events & POLLOUT)
			FD_SET(p[i].fd, &wr);
		FD_SET(p[i].fd, &ex);
		if (p[i].fd > maxfd)
			maxfd = p[i].fd;
	}
	do
		rc = select(maxfd + 1, &rd, &wr, &ex, &tv);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		fail_errno(errno, "select");
	rc = 0;
	for (nfds_t i = 0; i < n; i++) {
		if (p[i].fd < 0)
			continue;
		if (FD_ISSET(p[i].fd, &rd))
			p[i].revents |= POLLIN;
		if (FD_ISSET(p[i].fd, &wr))
			p[i].revents |= POLLOUT;
		if (FD_ISSET(p[i].fd, &ex))
			p[i].revents |= POLLPRI;
		if (p[i].revents)
			rc++;
	}
	return rc;
}

/* ---- connection ends, as the fault tests want to see them --------------------- */

enum end_kind { END_EOF, END_RESET, END_EPIPE, END_ERROR };

static const char *end_name(enum end_kind k, int err)
{
	switch (k) {
	case END_EOF:
		return "EOF";
	case END_RESET:
		return "ECONNRESET";
	case END_EPIPE:
		return "EPIPE";
	default:
		return errname(err);
	}
}

static enum end_kind classify(int err)
{
	if (err == ECONNRESET)
		return END_RESET;
	if (err == EPIPE)
		return END_EPIPE;
	return END_ERROR;
}

/* ---- server --------------------------------------------------------------------- */

/* Shared across the server's threads or forked children (MAP_SHARED). */
#define CHURN_WINDOW	100u	/* connections per high-water window (> 3 kit batches) */

struct totals {
	uint64_t bytes;
	uint64_t hash;		/* sum of the per-connection FNV-1a of the bytes received */
	uint32_t ended;
	uint32_t eof;
	uint32_t reset;
	uint32_t errors;
	uint32_t active;
	/*
	 * fd count and memfd mappings when no connection is open: high-water
	 * marks over the first and the last CHURN_WINDOW such moments (the
	 * preload keeps a bounded, varying number of idle mappings).
	 */
	int32_t fds_idle_first;
	int32_t maps_idle_first;
	int32_t fds_idle_last;
	int32_t maps_idle_last;
};

static struct totals *tot;
static pthread_mutex_t tot_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tot_cond = PTHREAD_COND_INITIALIZER;
static unsigned int listen_port;

struct sconn {
	int fd;
	unsigned int id;
	struct sockaddr_storage peer;
	/* nonblocking server: the bytes read and not yet written back */
	uint8_t *buf;
	size_t off, len;
	bool eof;
	uint64_t in, out, hash;
};

static void conn_ended(struct sconn *c, enum end_kind k, const char *where, int err)
{
	if (opt.report) {
		printf("server conn=%u end=%s where=%s in=%" PRIu64 " out=%" PRIu64
		       " t_mono_ns=%" PRIu64 "\n", c->id, end_name(k, err), where, c->in, c->out,
		       now_ns());
		fflush(stdout);
	}
	if (k == END_ERROR || ((k == END_RESET || k == END_EPIPE) && !opt.allow_reset))
		fprintf(stderr, "ipcd-echo server: conn %u: %s after %" PRIu64 " bytes in, %" PRIu64
			" out: %s (errno %d %s)\n", c->id, where, c->in, c->out, strerror(err), err,
			errname(err));
	__atomic_fetch_add(&tot->bytes, c->in, __ATOMIC_RELAXED);
	__atomic_fetch_add(&tot->hash, c->hash, __ATOMIC_RELAXED);
	__atomic_fetch_add(k == END_EOF ? &tot->eof : k == END_ERROR ? &tot->errors : &tot->reset,
			   1, __ATOMIC_RELAXED);
}

/* A connection's final accounting after its fd is closed. */
static void conn_closed(void)
{
	pthread_mutex_lock(&tot_lock);
	tot->ended++;
	tot->active--;
	if (tot->active == 0 && (tot->ended <= CHURN_WINDOW ||
				 (opt.conns && tot->ended + CHURN_WINDOW > opt.conns))) {
		int32_t f = fd_count(), m = memfd_maps();
		bool first = tot->ended <= CHURN_WINDOW;
		int32_t *fp = first ? &tot->fds_idle_first : &tot->fds_idle_last;
		int32_t *mp = first ? &tot->maps_idle_first : &tot->maps_idle_last;

		*fp = f > *fp ? f : *fp;
		*mp = m > *mp ? m : *mp;
	}
	pthread_cond_broadcast(&tot_cond);
	pthread_mutex_unlock(&tot_lock);
}

static int send_all_plain(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One connection of the blocking server: recv, echo, until EOF or an error. */
static void serve_blocking(struct sconn *c)
{
	uint8_t *buf;

	check_names(c->fd, "server conn", c->id, &c->peer, listen_port);
	if (opt.close_mode) {
		conn_ended(c, END_EOF, "close", 0);
		return;
	}
	buf = malloc(IO_MAX);
	if (!buf)
		fail("out of memory");
	for (;;) {
		ssize_t n = recv(c->fd, buf, IO_MAX, 0);
		int rc;

		if (n == 0) {
			conn_ended(c, END_EOF, "read", 0);
			break;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			conn_ended(c, classify(errno), "read", errno);
			break;
		}
		c->in += (uint64_t)n;
		c->hash = fnv64(c->hash, buf, (size_t)n);
		rc = send_all_plain(c->fd, buf, (size_t)n);
		if (rc) {
			conn_ended(c, classify(-rc), "write", -rc);
			break;
		}
		c->out += (uint64_t)n;
	}
	free(buf);
}

static void *conn_thread(void *arg)
{
	struct sconn *c = arg;

	serve_blocking(c);
	close(c->fd);
	free(c);
	conn_closed();
	return NULL;
}

static bool accepting(unsigned int accepted)
{
	return opt.conns == 0 || accepted < opt.conns;
}

static void server_blocking(int lfd)
{
	pthread_attr_t attr;
	unsigned int accepted = 0;
	unsigned int forked = 0;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	while (accepting(accepted)) {
		struct sconn *c = calloc(1, sizeof(*c));
		socklen_t len = sizeof(c->peer);
		pthread_t th;
		int rc;

		if (!c)
			fail("out of memory");
		c->fd = accept(lfd, (struct sockaddr *)&c->peer, &len);
		if (c->fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) {
				free(c);
				continue;
			}
			fail_errno(errno, "accept (after %u connections)", accepted);
		}
		c->id = accepted++;
		c->hash = FNV64_INIT;
		pthread_mutex_lock(&tot_lock);
		tot->active++;
		pthread_mutex_unlock(&tot_lock);
		if (opt.fork_mode) {
			pid_t pid = fork();

			if (pid < 0)
				fail_errno(errno, "fork (connection %u)", c->id);
			if (pid == 0) {
				close(lfd);
				serve_blocking(c);
				close(c->fd);
				fflush(stdout);
				_exit(0);
			}
			forked++;
			close(c->fd);
			free(c);
			/* Reap whoever finished, so a long run keeps no zombies. */
			while (waitpid(-1, NULL, WNOHANG) > 0) {
				forked--;
				conn_closed();
			}
			continue;
		}
		rc = pthread_create(&th, &attr, conn_thread, c);
		if (rc)
			fail_errno(rc, "pthread_create (connection %u)", c->id);
	}
	pthread_attr_destroy(&attr);
	for (; forked; forked--) {
		int st;

		while (waitpid(-1, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			__atomic_fetch_add(&tot->errors, 1, __ATOMIC_RELAXED);
		conn_closed();
	}
	pthread_mutex_lock(&tot_lock);
	while (tot->active)
		pthread_cond_wait(&tot_cond, &tot_lock);
	pthread_mutex_unlock(&tot_lock);
}

static void nb_end(struct sconn **conns, unsigned int i, enum end_kind k, const char *where,
		   int err)
{
	struct sconn *c = conns[i];

	conn_ended(c, k, where, err);
	close(c->fd);
	free(c->buf);
	free(c);
	conns[i] = NULL;
	conn_closed();
}

/* One nonblocking connection's turn: read what fits, write what is buffered. */
static void nb_step(struct sconn **conns, unsigned int i, short revents)
{
	struct sconn *c = conns[i];
	ssize_t n;

	if (opt.close_mode) {
		nb_end(conns, i, END_EOF, "close", 0);
		return;
	}
	if ((revents & (POLLIN | POLLHUP | POLLERR | POLLPRI)) && !c->eof && c->len < IO_MAX) {
		/* read() and recv(MSG_DONTWAIT) on alternate connections */
		if (c->id & 1)
			n = recv(c->fd, c->buf + c->len, IO_MAX - c->len, MSG_DONTWAIT);
		else
			n = read(c->fd, c->buf + c->len, IO_MAX - c->len);
		if (n > 0) {
			c->hash = fnv64(c->hash, c->buf + c->len, (size_t)n);
			c->in += (uint64_t)n;
			c->len += (size_t)n;
		} else if (n == 0) {
			c->eof = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			nb_end(conns, i, classify(errno), "read", errno);
			return;
		}
	}
	if (c->len > c->off) {
		if (c->id & 1)
			n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
		else
			n = write(c->fd, c->buf + c->off, c->len - c->off);
		if (n > 0) {
			c->off += (size_t)n;
			c->out += (uint64_t)n;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			nb_end(conns, i, classify(errno), "write", errno);
			return;
		}
		if (c->off == c->len)
			c->off = c->len = 0;
	}
	if (c->eof && c->len == 0)
		nb_end(conns, i, END_EOF, "read", 0);
}

static void server_nonblock(int lfd)
{
	struct sconn **conns = calloc(MAX_CONNS, sizeof(*conns));
	struct pollfd *p = calloc(MAX_CONNS + 1, sizeof(*p));
	unsigned int *idx = calloc(MAX_CONNS + 1, sizeof(*idx));
	unsigned int accepted = 0, nopen = 0, hi = 0;

	if (!conns || !p || !idx)
		fail("out of memory");
	while (accepting(accepted) || nopen) {
		nfds_t n = 0;
		int rc;

		if (accepting(accepted) && nopen < MAX_CONNS) {
			p[n] = (struct pollfd){ .fd = lfd, .events = POLLIN };
			idx[n++] = UINT32_MAX;
		}
		for (unsigned int i = 0; i < hi; i++) {
			struct sconn *c = conns[i];
			short ev = 0;

			if (!c)
				continue;
			if (!c->eof && c->len < IO_MAX)
				ev |= POLLIN;
			if (c->len > c->off)
				ev |= POLLOUT;
			p[n] = (struct pollfd){ .fd = c->fd, .events = ev };
			idx[n++] = i;
		}
		rc = wait_events(p, n, SERVER_IDLE_MS);
		if (rc == 0)
			fail("nothing happened for %d ms (%u connections open, %u accepted)",
			     SERVER_IDLE_MS, nopen, accepted);
		for (nfds_t k = 0; k < n; k++) {
			if (!p[k].revents)
				continue;
			if (idx[k] != UINT32_MAX) {
				nb_step(conns, idx[k], p[k].revents);
				if (!conns[idx[k]])
					nopen--;
				continue;
			}
			/* the listener: take every pending connection */
			while (accepting(accepted) && nopen < MAX_CONNS) {
				struct sockaddr_storage peer;
				socklen_t len = sizeof(peer);
				struct sconn *c;
				unsigned int slot;
				int fd = accept4(lfd, (struct sockaddr *)&peer, &len,
						 SOCK_NONBLOCK | SOCK_CLOEXEC);

				if (fd < 0) {
					if (errno == EAGAIN || errno == EINTR ||
					    errno == ECONNABORTED)
						break;
					fail_errno(errno, "accept4 (after %u connections)",
						   accepted);
				}
				if (!(fcntl(fd, F_GETFL) & O_NONBLOCK))
					fail("accept4(SOCK_NONBLOCK) gave a blocking fd %d", fd);
				for (slot = 0; conns[slot]; slot++)
					;
				c = calloc(1, sizeof(*c));
				if (!c || !(c->buf = malloc(IO_MAX)))
					fail("out of memory");
				c->fd = fd;
				c->id = accepted++;
				c->peer = peer;
				c->hash = FNV64_INIT;
				check_names(fd, "server conn", c->id, &peer, listen_port);
				conns[slot] = c;
				if (slot >= hi)
					hi = slot + 1;
				nopen++;
				pthread_mutex_lock(&tot_lock);
				tot->active++;
				pthread_mutex_unlock(&tot_lock);
			}
		}
		while (hi && !conns[hi - 1])
			hi--;
	}
	free(idx);
	free(p);
	free(conns);
}

static int run_server(void)
{
	struct addr a;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char buf[80], txt[32];
	int one = 1, lfd, fds_end, maps_end;
	bool bad;

	role = "server";
	signal(SIGPIPE, SIG_IGN);
	tot = mmap(NULL, sizeof(*tot), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (tot == MAP_FAILED)
		fail_errno(errno, "mmap");
	tot->fds_idle_first = tot->maps_idle_first = -1;
	tot->fds_idle_last = tot->maps_idle_last = -1;
	addr_make(&a, opt.host, opt.port);
	lfd = socket(addr_family(&a), SOCK_STREAM | SOCK_CLOEXEC |
		     (opt.nonblock || opt.use_select ? SOCK_NONBLOCK : 0), 0);
	if (lfd < 0)
		fail_errno(errno, "socket");
	if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		fail_errno(errno, "setsockopt SO_REUSEADDR");
	if (bind(lfd, (struct sockaddr *)&a.ss, a.len))
		fail_errno(errno, "bind %s", addr_str(&a.ss, buf, sizeof(buf)));
	if (listen(lfd, 4096))
		fail_errno(errno, "listen");
	if (getsockname(lfd, (struct sockaddr *)&ss, &len))
		fail_errno(errno, "getsockname of the listener");
	if (!addr_same_ip(&ss, &a.ss) || (opt.port && addr_port(&ss) != opt.port) ||
	    !addr_port(&ss))
		fail("listener getsockname gives %s", addr_str(&ss, buf, sizeof(buf)));
	listen_port = addr_port(&ss);
	printf("server listening %s\n", addr_str(&ss, buf, sizeof(buf)));
	fflush(stdout);
	if (opt.port_file) {
		snprintf(txt, sizeof(txt), "%u\n", listen_port);
		write_file(opt.port_file, txt);
	}
	if (opt.nonblock || opt.use_select)
		server_nonblock(lfd);
	else
		server_blocking(lfd);
	fds_end = fd_count();
	maps_end = memfd_maps();
	fds_end = tot->fds_idle_last > fds_end ? tot->fds_idle_last : fds_end;
	maps_end = tot->maps_idle_last > maps_end ? tot->maps_idle_last : maps_end;
	close(lfd);
	printf("server done conns=%u eof=%u reset=%u errors=%u bytes=%" PRIu64 " hash=%016" PRIx64
	       " fds_idle_first=%d fds_end=%d memfd_maps_idle_first=%d memfd_maps_end=%d\n",
	       tot->ended, tot->eof, tot->reset, tot->errors, tot->bytes, tot->hash,
	       tot->fds_idle_first, fds_end, tot->maps_idle_first, maps_end);
	fflush(stdout);
	bad = tot->errors || (tot->reset && !opt.allow_reset);
	return bad ? 1 : 0;
}

/* ---- client ------------------------------------------------------------------- */

struct cconn {
	int fd;
	bool connecting;
	bool wr_shut;
	bool done;
	uint64_t sent, rcvd;
	uint64_t hash;
};

static struct addr target;
static uint64_t client_hash, client_bytes;
static int tmp_fd = -1;		/* --sendfile: the file the data is sent from */

/*
 * getsockopt(SO_RCVTIMEO) returns what was set, rounded up to the kernel's
 * clock tick (HZ 100..1000): at least @set, less than 20 ms more.
 */
static bool timeo_matches(const struct timeval *got, const struct timeval *set)
{
	int64_t g = (int64_t)got->tv_sec * 1000000 + got->tv_usec;
	int64_t w = (int64_t)set->tv_sec * 1000000 + set->tv_usec;

	return g >= w && g < w + 20000;
}

static void set_timeouts(int fd)
{
	struct timeval tv = { opt.rcvtimeo_ms / 1000, (opt.rcvtimeo_ms % 1000) * 1000 };
	struct timeval got;
	socklen_t len = sizeof(got);

	if (!opt.rcvtimeo_ms)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		fail_errno(errno, "setsockopt SO_RCVTIMEO/SO_SNDTIMEO");
	if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &got, &len))
		fail_errno(errno, "getsockopt SO_RCVTIMEO");
	if (len != sizeof(got) || !timeo_matches(&got, &tv))
		fail("getsockopt SO_RCVTIMEO gives %ld.%06ld s, set %ld.%06ld s", (long)got.tv_sec,
		     (long)got.tv_usec, (long)tv.tv_sec, (long)tv.tv_usec);
}

static int connect_blocking(unsigned int id)
{
	int fd = socket(addr_family(&target), SOCK_STREAM | SOCK_CLOEXEC, 0);
	char buf[80];

	if (fd < 0)
		fail_errno(errno, "conn %u: socket", id);
	set_timeouts(fd);
	while (connect(fd, (struct sockaddr *)&target.ss, target.len)) {
		if (errno != EINTR)
			fail_errno(errno, "conn %u: connect %s", id,
				   addr_str(&target.ss, buf, sizeof(buf)));
	}
	check_names(fd, "client conn", id, &target.ss, 0);
	return fd;
}

/* Nonblocking connect: 0 connected, 1 in progress (EINPROGRESS). */
static int connect_start(int fd, unsigned int id)
{
	char buf[80];

	if (connect(fd, (struct sockaddr *)&target.ss, target.len) == 0)
		return 0;
	if (errno == EINPROGRESS)
		return 1;
	fail_errno(errno, "conn %u: nonblocking connect %s", id,
		   addr_str(&target.ss, buf, sizeof(buf)));
}

static void connect_finish(int fd, unsigned int id)
{
	int err = -1;
	socklen_t len = sizeof(err);
	char buf[80];

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		fail_errno(errno, "conn %u: getsockopt SO_ERROR", id);
	if (err)
		fail_errno(err, "conn %u: nonblocking connect %s (SO_ERROR)", id,
			   addr_str(&target.ss, buf, sizeof(buf)));
	check_names(fd, "client conn", id, &target.ss, 0);
}

/* Blocking send of @n bytes by one of several calls; 0 or -errno. */
static int send_by(int fd, const uint8_t *p, size_t n, unsigned int method)
{
	if (tmp_fd >= 0) {
		/* sendfile from the temp file: rewrite its head, then send it from offset 0 */
		off_t off = 0;

		if (pwrite(tmp_fd, p, n, 0) != (ssize_t)n)
			fail_errno(errno, "pwrite to the sendfile temp file");
		while ((size_t)off < n) {
			ssize_t w = sendfile(fd, tmp_fd, &off, n - (size_t)off);

			if (w < 0 && errno != EINTR)
				return -errno;
			if (w == 0)
				fail("sendfile returned 0 at offset %lld of %zu", (long long)off,
				     n);
		}
		return 0;
	}
	while (n) {
		struct iovec iov[3];
		struct msghdr mh = { .msg_iov = iov };
		size_t a = n / 3, b = n / 3;
		ssize_t w;

		iov[0] = (struct iovec){ (void *)p, a };
		iov[1] = (struct iovec){ (void *)(p + a), b };
		iov[2] = (struct iovec){ (void *)(p + a + b), n - a - b };
		switch (method % 4) {
		case 0:
			w = write(fd, p, n);
			break;
		case 1:
			w = send(fd, p, n, MSG_NOSIGNAL);
			break;
		case 2:
			w = writev(fd, iov, 3);
			break;
		default:
			mh.msg_iovlen = 3;
			w = sendmsg(fd, &mh, MSG_NOSIGNAL);
			break;
		}
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			fail("a send call returned 0 for %zu bytes", n);
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Blocking receive of exactly @n bytes; 0, -ENODATA at EOF (*@got says where), or -errno. */
static int recv_by(int fd, uint8_t *p, size_t n, unsigned int method, size_t *got)
{
	*got = 0;
	while (*got < n) {
		uint8_t *q = p + *got;
		size_t left = n - *got;
		size_t a = left / 2;
		struct iovec iov[2] = { { q, a }, { q + a, left - a } };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
		ssize_t r;

		switch (method % 4) {
		case 0:
			r = read(fd, q, left);
			break;
		case 1:
			r = recv(fd, q, left, MSG_WAITALL);
			break;
		case 2:
			r = readv(fd, iov, 2);
			break;
		default:
			r = recvmsg(fd, &mh, 0);
			break;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ENODATA;
		*got += (size_t)r;
	}
	return 0;
}

static void client_end(unsigned int id, struct cconn *c, const char *where, int rc)
{
	enum end_kind k = rc == -ENODATA ? END_EOF : classify(-rc);

	if (opt.forever && k != END_ERROR) {
		printf("client conn=%u end=%s where=%s sent=%" PRIu64 " rcvd=%" PRIu64
		       " t_mono_ns=%" PRIu64 "\n", id, end_name(k, -rc), where, c->sent, c->rcvd,
		       now_ns());
		fflush(stdout);
		exit(0);
	}
	if (rc == -ENODATA)
		fail("conn %u: %s: unexpected EOF after %" PRIu64 " bytes sent, %" PRIu64 " echoed",
		     id, where, c->sent, c->rcvd);
	if (rc == -EAGAIN && opt.rcvtimeo_ms)
		fail("conn %u: %s: SO_RCVTIMEO/SO_SNDTIMEO of %d ms expired after %" PRIu64
		     " bytes sent, %" PRIu64 " echoed",
		     id, where, opt.rcvtimeo_ms, c->sent, c->rcvd);
	fail_errno(-rc, "conn %u: %s after %" PRIu64 " bytes sent, %" PRIu64 " echoed", id, where,
		   c->sent, c->rcvd);
}

/* After the last byte: shutdown(SHUT_WR), then the echo side must end with EOF. */
static void expect_eof(int fd, unsigned int id)
{
	uint8_t b;
	ssize_t r;

	do
		r = read(fd, &b, 1);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		fail("conn %u: bytes after the end of the echo", id);
	if (r < 0)
		fail_errno(errno, "conn %u: read after shutdown(SHUT_WR), expected EOF", id);
}

/* True once, when every connection has echoed --ready-at bytes (and --wait-file exists). */
static bool client_ready_point(struct cconn *cs)
{
	static bool done;

	if (done || !opt.ready_file)
		return false;
	for (unsigned int i = 0; i < opt.conns; i++)
		if (cs[i].rcvd < opt.ready_at)
			return false;
	done = true;
	touch_file(opt.ready_file);
	if (opt.wait_file)
		wait_for_file(opt.wait_file);
	return true;
}

/*
 * --forever --idle: past the ready point, send nothing more and block in
 * read() on the first connection until the peer goes away (client_end()
 * reports how); data arriving is an error.
 */
static void client_idle(struct cconn *cs)
{
	uint8_t b;
	ssize_t r;

	do
		r = read(cs[0].fd, &b, 1);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		fail("conn 0: data arrived on an idle connection");
	client_end(0, &cs[0], "read", r == 0 ? -ENODATA : -errno);
}

static void client_blocking(struct cconn *cs)
{
	uint8_t *sbuf = malloc(opt.chunk), *rbuf = malloc(opt.chunk), *pbuf = malloc(PEEK_MAX);
	unsigned int left = opt.conns;
	uint64_t round = 0;

	if (!sbuf || !rbuf || !pbuf)
		fail("out of memory");
	for (unsigned int i = 0; i < opt.conns; i++) {
		cs[i].fd = connect_blocking(i);
		cs[i].hash = FNV64_INIT;
	}
	while (left) {
		for (unsigned int i = 0; i < opt.conns; i++) {
			struct cconn *c = &cs[i];
			uint64_t stream = stream_of(i);
			unsigned int method = (unsigned int)(round + i);
			size_t n, got, bad;
			ssize_t pk = 0;
			int rc;

			if (c->done)
				continue;
			n = opt.forever ? opt.chunk : (size_t)(opt.size - c->sent < opt.chunk ?
							     opt.size - c->sent : opt.chunk);
			pat_fill(sbuf, n, stream, c->sent);
			rc = send_by(c->fd, sbuf, n, method);
			if (rc)
				client_end(i, c, "write", rc);
			c->sent += n;
			c->hash = fnv64(c->hash, sbuf, n);
			if (method % 3 == 0) {
				/* MSG_PEEK: the bytes seen must be those the next read returns */
				do
					pk = recv(c->fd, pbuf, n < PEEK_MAX ? n : PEEK_MAX,
						  MSG_PEEK);
				while (pk < 0 && errno == EINTR);
				if (pk == 0)
					client_end(i, c, "recv(MSG_PEEK)", -ENODATA);
				if (pk < 0)
					client_end(i, c, "recv(MSG_PEEK)", -errno);
			}
			rc = recv_by(c->fd, rbuf, n, method, &got);
			c->rcvd += got;
			if (rc)
				client_end(i, c, "read", rc);
			bad = pat_mismatch(rbuf, n, stream, c->rcvd - n);
			if (bad < n)
				fail("conn %u: echo differs at byte %" PRIu64
				     ": got 0x%02x, sent 0x%02x",
				     i, c->rcvd - n + bad, rbuf[bad], sbuf[bad]);
			if (pk > 0 && memcmp(pbuf, rbuf, (size_t)pk))
				fail("conn %u: MSG_PEEK showed %zd bytes that differ from the "
				     "next read (at byte %" PRIu64 ")", i, pk, c->rcvd - n);
			if (!opt.forever && c->sent == opt.size) {
				if (shutdown(c->fd, SHUT_WR))
					fail_errno(errno, "conn %u: shutdown(SHUT_WR)", i);
				expect_eof(c->fd, i);
				if (close(c->fd))
					fail_errno(errno, "conn %u: close", i);
				c->done = true;
				left--;
			}
		}
		round++;
		if (client_ready_point(cs) && opt.idle)
			client_idle(cs);
	}
	free(pbuf);
	free(rbuf);
	free(sbuf);
}

/* One nonblocking connection's turn in the poll()/select() loop. */
static void nb_client_step(struct cconn *c, unsigned int i, short revents, uint8_t *buf)
{
	uint64_t stream = stream_of(i);
	ssize_t n;

	if (c->connecting) {
		if (!(revents & (POLLOUT | POLLERR | POLLHUP | POLLPRI)))
			return;
		connect_finish(c->fd, i);
		c->connecting = false;
	}
	if (c->sent < opt.size && (revents & (POLLOUT | POLLERR | POLLHUP | POLLPRI))) {
		size_t len =
			(size_t)(opt.size - c->sent < opt.chunk ? opt.size - c->sent : opt.chunk);

		pat_fill(buf, len, stream, c->sent);
		n = (i & 1) ? send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT)
			    : write(c->fd, buf, len);
		if (n > 0) {
			c->hash = fnv64(c->hash, buf, (size_t)n);
			c->sent += (uint64_t)n;	/* a partial write: the rest next turn */
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			client_end(i, c, "write", -errno);
		}
	}
	if (c->sent == opt.size && !c->wr_shut) {
		if (shutdown(c->fd, SHUT_WR))
			fail_errno(errno, "conn %u: shutdown(SHUT_WR)", i);
		c->wr_shut = true;
	}
	if (revents & (POLLIN | POLLERR | POLLHUP | POLLPRI)) {
		n = read(c->fd, buf, opt.chunk);
		if (n > 0) {
			size_t bad = pat_mismatch(buf, (size_t)n, stream, c->rcvd);

			if (bad < (size_t)n)
				fail("conn %u: echo differs at byte %" PRIu64
				     ": got 0x%02x, sent 0x%02x",
				     i, c->rcvd + bad, buf[bad], pat_byte(stream, c->rcvd + bad));
			c->rcvd += (uint64_t)n;
			if (c->rcvd > c->sent)
				fail("conn %u: %" PRIu64 " bytes echoed, only %" PRIu64 " sent", i,
				     c->rcvd, c->sent);
		} else if (n == 0) {
			if (c->rcvd != opt.size)
				client_end(i, c, "read", -ENODATA);
			if (close(c->fd))
				fail_errno(errno, "conn %u: close", i);
			c->done = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			client_end(i, c, "read", -errno);
		}
	}
}

static void client_nonblock(struct cconn *cs)
{
	struct pollfd *p = calloc(opt.conns, sizeof(*p));
	unsigned int *idx = calloc(opt.conns, sizeof(*idx));
	uint8_t *buf = malloc(opt.chunk);
	unsigned int left = opt.conns;

	if (!p || !idx || !buf)
		fail("out of memory");
	for (unsigned int i = 0; i < opt.conns; i++) {
		int fd =
			socket(addr_family(&target), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0)
			fail_errno(errno, "conn %u: socket", i);
		cs[i].fd = fd;
		cs[i].hash = FNV64_INIT;
		cs[i].connecting = connect_start(fd, i);
		if (!cs[i].connecting)
			connect_finish(fd, i);
	}
	while (left) {
		nfds_t n = 0;

		for (unsigned int i = 0; i < opt.conns; i++) {
			struct cconn *c = &cs[i];
			short ev = POLLIN;

			if (c->done)
				continue;
			if (c->connecting || c->sent < opt.size)
				ev |= POLLOUT;
			if (c->connecting)
				ev = POLLOUT;
			p[n] = (struct pollfd){ .fd = c->fd, .events = ev };
			idx[n++] = i;
		}
		if (wait_events(p, n, GUARD_MS) == 0)
			fail("no progress for %d ms with %u connections unfinished", GUARD_MS,
			     left);
		for (nfds_t k = 0; k < n; k++) {
			if (!p[k].revents)
				continue;
			nb_client_step(&cs[idx[k]], idx[k], p[k].revents, buf);
			if (cs[idx[k]].done)
				left--;
		}
	}
	free(buf);
	free(idx);
	free(p);
}

/*
 * --duplex: a writer thread and a reader thread per connection, at the same
 * time (as python's sendall with a reader thread). With --nonblock the
 * socket is made O_NONBLOCK after connect and each thread waits in poll()
 * before every call, as python's settimeout() does.
 */
struct duplex {
	struct cconn *c;
	unsigned int id;
	pthread_t wr, rd;
	/* progress of each thread, for the message when one of them hangs */
	uint64_t wr_at, rd_at;
	uint64_t wr_wait_ns, rd_wait_ns;	/* when it entered poll(), 0: not in poll() */
	uint64_t wr_eagain, rd_eagain;		/* EAGAIN right after poll() said ready */
};

static void duplex_state(const struct duplex *d, char *buf, size_t len)
{
	uint64_t now = now_ns();
	uint64_t ww = __atomic_load_n(&d->wr_wait_ns, __ATOMIC_RELAXED);
	uint64_t rw = __atomic_load_n(&d->rd_wait_ns, __ATOMIC_RELAXED);

	snprintf(buf, len, "writer at byte %" PRIu64 " of %" PRIu64 " (%s%" PRIu64 " ms; "
		 "%" PRIu64 " EAGAIN after POLLOUT), reader at byte %" PRIu64 " (%s%" PRIu64
		 " ms; %" PRIu64 " EAGAIN after POLLIN)",
		 __atomic_load_n(&d->wr_at, __ATOMIC_RELAXED), opt.size,
		 ww ? "in poll(POLLOUT) for " : "not in poll, ", ww ? (now - ww) / 1000000 : 0,
		 __atomic_load_n(&d->wr_eagain, __ATOMIC_RELAXED),
		 __atomic_load_n(&d->rd_at, __ATOMIC_RELAXED),
		 rw ? "in poll(POLLIN) for " : "not in poll, ", rw ? (now - rw) / 1000000 : 0,
		 __atomic_load_n(&d->rd_eagain, __ATOMIC_RELAXED));
}

static void duplex_poll(struct duplex *d, short ev, const char *where)
{
	struct pollfd p = { .fd = d->c->fd, .events = ev };
	uint64_t *since = ev == POLLIN ? &d->rd_wait_ns : &d->wr_wait_ns;
	char state[256];
	int rc;

	__atomic_store_n(since, now_ns(), __ATOMIC_RELAXED);
	do
		rc = poll(&p, 1, DUPLEX_GUARD_MS);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		fail_errno(errno, "conn %u: poll before %s", d->id, where);
	if (rc == 0) {
		duplex_state(d, state, sizeof(state));
		fail("conn %u: poll(%s) before %s: nothing for %d ms; %s", d->id,
		     ev == POLLIN ? "POLLIN" : "POLLOUT", where, DUPLEX_GUARD_MS, state);
	}
	__atomic_store_n(since, 0, __ATOMIC_RELAXED);
}

static void *duplex_writer(void *arg)
{
	struct duplex *d = arg;
	struct cconn *c = d->c;
	uint8_t *buf = malloc(opt.chunk);
	uint64_t stream = stream_of(d->id), sent = 0, hash = FNV64_INIT;

	if (!buf)
		fail("out of memory");
	while (sent < opt.size) {
		size_t n = (size_t)(opt.size - sent < opt.chunk ? opt.size - sent : opt.chunk);

		pat_fill(buf, n, stream, sent);
		if (opt.nonblock) {
			ssize_t w;

			duplex_poll(d, POLLOUT, "send");
			w = send(c->fd, buf, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EAGAIN)
				__atomic_fetch_add(&d->wr_eagain, 1, __ATOMIC_RELAXED);
			if (w < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (w < 0)
				client_end(d->id, c, "send", -errno);
			n = (size_t)w;
		} else {
			int rc = send_by(c->fd, buf, n, (unsigned int)(sent / opt.chunk));

			if (rc)
				client_end(d->id, c, "write", rc);
		}
		hash = fnv64(hash, buf, n);
		sent += n;
		__atomic_store_n(&d->wr_at, sent, __ATOMIC_RELAXED);
	}
	if (shutdown(c->fd, SHUT_WR))
		fail_errno(errno, "conn %u: shutdown(SHUT_WR)", d->id);
	c->sent = sent;
	c->hash = hash;
	free(buf);
	return NULL;
}

static void *duplex_reader(void *arg)
{
	struct duplex *d = arg;
	struct cconn *c = d->c;
	uint8_t *buf = malloc(opt.chunk);
	uint64_t stream = stream_of(d->id), rcvd = 0;

	if (!buf)
		fail("out of memory");
	for (;;) {
		ssize_t r;
		size_t bad;

		if (opt.nonblock)
			duplex_poll(d, POLLIN, "recv");
		r = opt.nonblock ? recv(c->fd, buf, opt.chunk, 0) : read(c->fd, buf, opt.chunk);
		if (r < 0 && opt.nonblock && errno == EAGAIN)
			__atomic_fetch_add(&d->rd_eagain, 1, __ATOMIC_RELAXED);
		if (r < 0 && opt.nonblock && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail_errno(errno, "conn %u: read after %" PRIu64 " bytes echoed", d->id,
				   rcvd);
		if (r == 0)
			break;
		bad = pat_mismatch(buf, (size_t)r, stream, rcvd);
		if (bad < (size_t)r)
			fail("conn %u: echo differs at byte %" PRIu64 ": got 0x%02x, sent 0x%02x",
			     d->id, rcvd + bad, buf[bad], pat_byte(stream, rcvd + bad));
		rcvd += (uint64_t)r;
		__atomic_store_n(&d->rd_at, rcvd, __ATOMIC_RELAXED);
	}
	if (rcvd != opt.size)
		fail("conn %u: EOF after %" PRIu64 " bytes echoed of %" PRIu64, d->id, rcvd,
		     opt.size);
	c->rcvd = rcvd;
	free(buf);
	return NULL;
}

static void client_duplex(struct cconn *cs)
{
	struct duplex *d = calloc(opt.conns, sizeof(*d));
	pthread_attr_t attr;
	int rc;

	if (!d)
		fail("out of memory");
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	for (unsigned int i = 0; i < opt.conns; i++) {
		cs[i].fd = connect_blocking(i);
		if (opt.nonblock && fcntl(cs[i].fd, F_SETFL, fcntl(cs[i].fd, F_GETFL) | O_NONBLOCK))
			fail_errno(errno, "conn %u: fcntl(F_SETFL, O_NONBLOCK)", i);
		d[i].c = &cs[i];
		d[i].id = i;
	}
	for (unsigned int i = 0; i < opt.conns; i++) {
		rc = pthread_create(&d[i].rd, &attr, duplex_reader, &d[i]);
		if (!rc)
			rc = pthread_create(&d[i].wr, &attr, duplex_writer, &d[i]);
		if (rc)
			fail_errno(rc, "pthread_create (connection %u)", i);
	}
	for (unsigned int i = 0; i < opt.conns; i++) {
		pthread_join(d[i].wr, NULL);
		pthread_join(d[i].rd, NULL);
		if (close(cs[i].fd))
			fail_errno(errno, "conn %u: close", i);
	}
	pthread_attr_destroy(&attr);
	free(d);
}

static int run_client(void)
{
	struct cconn *cs;
	uint64_t t0 = now_ns();

	role = "client";
	signal(SIGPIPE, SIG_IGN);
	if (!opt.port)
		fail("--port is required");
	if (opt.conns == 0 || opt.conns > MAX_CONNS)
		fail("--conns must be 1..%d", MAX_CONNS);
	if (opt.chunk == 0 || opt.chunk > (64 << 20))
		fail("--chunk must be 1..64M");
	if ((opt.nonblock || opt.use_select || opt.duplex) &&
	    (opt.forever || opt.sendfile_mode || opt.ready_file))
		fail("--forever, --sendfile and --ready-file need the blocking client");
	if (opt.idle && (!opt.forever || !opt.ready_file))
		fail("--idle needs --forever and --ready-file");
	if (opt.duplex && opt.use_select)
		fail("--duplex waits with poll() (--nonblock), not select()");
	addr_make(&target, opt.host, opt.port);
	cs = calloc(opt.conns, sizeof(*cs));
	if (!cs)
		fail("out of memory");
	if (opt.sendfile_mode) {
		char path[] = "/tmp/ipcd-echo-sendfile-XXXXXX";

		tmp_fd = mkstemp(path);
		if (tmp_fd < 0)
			fail_errno(errno, "mkstemp %s", path);
		unlink(path);
	}
	if (opt.duplex)
		client_duplex(cs);
	else if (opt.nonblock || opt.use_select)
		client_nonblock(cs);
	else
		client_blocking(cs);
	for (unsigned int i = 0; i < opt.conns; i++) {
		client_hash += cs[i].hash;
		client_bytes += cs[i].sent;
	}
	if (tmp_fd >= 0)
		close(tmp_fd);
	printf("client ok conns=%u bytes=%" PRIu64 " hash=%016" PRIx64 " ms=%" PRIu64 " mode=%s\n",
	       opt.conns, client_bytes, client_hash, (now_ns() - t0) / 1000000,
	       opt.duplex ? (opt.nonblock ? "duplex-poll" : "duplex") :
	       opt.use_select ? "select" : opt.nonblock ? "nonblock" :
	       opt.sendfile_mode ? "sendfile" : "blocking");
	free(cs);
	return 0;
}

/* ---- churn: a long-lived process opening and closing many connections --------- */

static void churn_one(unsigned int k, uint8_t *sbuf, uint8_t *rbuf)
{
	size_t n = 64 + k % 1000, got;
	struct cconn c = { 0 };
	int fd, rc;

	if (k % 3 == 1) {
		struct pollfd p;

		fd = socket(addr_family(&target), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			fail_errno(errno, "churn %u: socket", k);
		if (connect_start(fd, k)) {
			p = (struct pollfd){ .fd = fd, .events = POLLOUT };
			if (wait_events(&p, 1, GUARD_MS) == 0)
				fail("churn %u: nonblocking connect: not writable after %d ms", k,
				     GUARD_MS);
		}
		connect_finish(fd, k);
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK))
			fail_errno(errno, "churn %u: fcntl(F_SETFL, ~O_NONBLOCK)", k);
	} else {
		fd = connect_blocking(k);
	}
	pat_fill(sbuf, n, stream_of(k), 0);
	rc = send_by(fd, sbuf, n, k);
	if (rc)
		client_end(k, &c, "write", rc);
	rc = recv_by(fd, rbuf, n, k, &got);
	if (rc)
		client_end(k, &c, "read", rc);
	if (memcmp(sbuf, rbuf, n))
		fail("churn %u: echo differs", k);
	if (k % 4 == 0) {
		if (shutdown(fd, SHUT_WR))
			fail_errno(errno, "churn %u: shutdown(SHUT_WR)", k);
		expect_eof(fd, k);
	}
	if (close(fd))
		fail_errno(errno, "churn %u: close", k);
}

static int run_churn(void)
{
	uint8_t sbuf[2048], rbuf[2048];
	int fds0, fds1, maps0, maps1;
	long rss0 = 0, rss1;

	role = "churn";
	signal(SIGPIPE, SIG_IGN);
	if (!opt.port)
		fail("--port is required");
	if (opt.count < 2 * CHURN_WINDOW)
		fail("--count must be at least %u (two windows)", 2 * CHURN_WINDOW);
	addr_make(&target, opt.host, opt.port);
	/*
	 * The first connections set up per-process state for good (the
	 * registration, a lane and its kits), and the preload holds a bounded,
	 * varying number of kits (3 fds each) and idle mappings: compare the
	 * high-water marks of a first and a last window of CHURN_WINDOW
	 * connections. Anything that leaks per connection raises the second
	 * by far more than the windows' spread.
	 */
	fds0 = fds1 = maps0 = maps1 = 0;
	for (unsigned int k = 0; k <= opt.count; k++) {
		bool first = k < CHURN_WINDOW, last = k + CHURN_WINDOW > opt.count;

		churn_one(k, sbuf, rbuf);
		if (first || last) {
			int f = fd_count(), m = memfd_maps();

			if (first) {
				fds0 = f > fds0 ? f : fds0;
				maps0 = m > maps0 ? m : maps0;
			} else {
				fds1 = f > fds1 ? f : fds1;
				maps1 = m > maps1 ? m : maps1;
			}
		}
		if (k == 0)
			rss0 = rss_kb();
	}
	rss1 = rss_kb();
	printf("churn %s conns=%u fds_before=%d fds_after=%d memfd_maps_before=%d "
	       "memfd_maps_after=%d rss_kb_before=%ld rss_kb_after=%ld\n",
	       fds1 > fds0 || maps1 > maps0 + (int)opt.map_slack ? "LEAK" : "ok", opt.count + 1,
	       fds0, fds1, maps0,
	       maps1, rss0, rss1);
	if (fds1 > fds0)
		fail("%d fds leaked over %u connections", fds1 - fds0, opt.count);
	if (maps1 > maps0 + (int)opt.map_slack)
		fail("%d memfd mappings leaked over %u connections (%u allowed for a cache)",
		     maps1 - maps0, opt.count, opt.map_slack);
	return 0;
}

/* ---- probes: one kernel-visible semantic each ------------------------------------ */

static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

/* A port nobody listens on: bind to port 0 (no listen), read it, close. */
static unsigned int unused_port(void)
{
	struct addr a;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd;

	addr_make(&a, opt.host, 0);
	fd = socket(addr_family(&a), SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a.ss, a.len) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len))
		fail_errno(errno, "picking an unused port");
	close(fd);
	return addr_port(&ss);
}

static void probe_refused(void)
{
	struct pollfd p;
	int fd, err = 0, rc;
	socklen_t len = sizeof(err);
	const char *nb;

	addr_make(&target, opt.host, opt.port ? opt.port : unused_port());
	fd = socket(addr_family(&target), SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail_errno(errno, "socket");
	rc = connect(fd, (struct sockaddr *)&target.ss, target.len);
	if (rc == 0 || errno != ECONNREFUSED)
		fail_errno(rc ? errno : 0, "blocking connect to port %u: expected ECONNREFUSED",
			   addr_port(&target.ss));
	close(fd);
	fd = socket(addr_family(&target), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail_errno(errno, "socket");
	rc = connect(fd, (struct sockaddr *)&target.ss, target.len);
	if (rc == 0)
		fail("nonblocking connect to a closed port succeeded");
	if (errno == EINPROGRESS) {
		nb = "EINPROGRESS+SO_ERROR";
		p = (struct pollfd){ .fd = fd, .events = POLLOUT };
		if (wait_events(&p, 1, GUARD_MS) == 0)
			fail("nonblocking connect to a closed port: not writable after %d ms",
			     GUARD_MS);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
			fail_errno(errno, "getsockopt SO_ERROR");
		if (err != ECONNREFUSED)
			fail_errno(err, "nonblocking connect: SO_ERROR, expected ECONNREFUSED");
	} else if (errno == ECONNREFUSED) {
		nb = "ECONNREFUSED";
	} else {
		fail_errno(errno, "nonblocking connect to a closed port: expected EINPROGRESS or "
			   "ECONNREFUSED");
	}
	close(fd);
	printf("probe refused ok port=%u blocking=ECONNREFUSED nonblocking=%s\n",
	       addr_port(&target.ss), nb);
}

static void probe_addrinuse(void)
{
	struct addr a;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int one = 1, fd, fd2, l, l2;

	/* 1. someone else's listener on --port, with and without SO_REUSEADDR */
	if (opt.port) {
		addr_make(&a, opt.host, opt.port);
		for (int reuse = 0; reuse < 2; reuse++) {
			fd = socket(addr_family(&a), SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd < 0)
				fail_errno(errno, "socket");
			if (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
				fail_errno(errno, "setsockopt SO_REUSEADDR");
			if (bind(fd, (struct sockaddr *)&a.ss, a.len) == 0 || errno != EADDRINUSE)
				fail_errno(errno,
					   "bind to the listening port %u%s: expected EADDRINUSE",
					   opt.port, reuse ? " with SO_REUSEADDR" : "");
			close(fd);
		}
	}
	/* 2. our own listener, then a second bind to its port */
	addr_make(&a, opt.host, 0);
	l = socket(addr_family(&a), SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a.ss, a.len) || listen(l, 8) ||
	    getsockname(l, (struct sockaddr *)&ss, &len))
		fail_errno(errno, "own listener");
	addr_make(&a, opt.host, addr_port(&ss));
	fd = socket(addr_family(&a), SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (bind(fd, (struct sockaddr *)&a.ss, a.len) == 0 || errno != EADDRINUSE)
		fail_errno(errno, "second bind to own listening port %u: expected EADDRINUSE",
			   addr_port(&ss));
	/*
	 * 3. two sockets bound to one port with SO_REUSEADDR (allowed while
	 * neither listens): the second listen() collides.
	 */
	addr_make(&a, opt.host, unused_port());
	fd2 = socket(addr_family(&a), SOCK_STREAM | SOCK_CLOEXEC, 0);
	l2 = socket(addr_family(&a), SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd2 < 0 || l2 < 0 ||
	    setsockopt(fd2, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(l2, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		fail_errno(errno, "socket/setsockopt SO_REUSEADDR");
	if (bind(l2, (struct sockaddr *)&a.ss, a.len) || bind(fd2, (struct sockaddr *)&a.ss, a.len))
		fail_errno(errno, "two binds to port %u with SO_REUSEADDR, nobody listening",
			   addr_port(&a.ss));
	if (listen(l2, 8))
		fail_errno(errno, "listen on the first of two SO_REUSEADDR sockets");
	if (listen(fd2, 8) == 0 || errno != EADDRINUSE)
		fail_errno(errno, "listen on the second of two SO_REUSEADDR sockets on port %u: "
			   "expected EADDRINUSE", addr_port(&a.ss));
	close(l2);
	close(fd2);
	close(l);
	close(fd);
	printf("probe addrinuse ok port=%u own_port=%u\n", opt.port, addr_port(&ss));
}

static void probe_epipe(void)
{
	struct sigaction sa = { .sa_handler = on_sigpipe };
	uint8_t buf[4096] = { 0 };
	int fd, resets = 0, writes = 0, before;
	ssize_t r;
	uint8_t b;

	if (!opt.port)
		fail("--port is required (a server --close)");
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	addr_make(&target, opt.host, opt.port);
	opt.rcvtimeo_ms = GUARD_MS;	/* hang guard on the EOF wait */
	fd = connect_blocking(0);
	/* the server closes at once: EOF first */
	do
		r = read(fd, &b, 1);
	while (r < 0 && errno == EINTR);
	if (r != 0)
		fail_errno(r < 0 ? errno : 0,
			   "read: expected EOF from a server that closed (got %zd)", r);
	for (;;) {
		r = write(fd, buf, sizeof(buf));
		if (r > 0) {
			if (++writes > 1000)
				fail("1000 writes to a closed peer succeeded");
			sleep_ms(5);
			continue;
		}
		if (r < 0 && errno == ECONNRESET) {
			if (++resets > 10)
				fail("ECONNRESET ten times, never EPIPE");
			continue;
		}
		if (r < 0 && errno == EPIPE)
			break;
		fail_errno(r < 0 ? errno : 0, "write to a closed peer: expected EPIPE (got %zd)",
			   r);
	}
	if (sigpipes == 0)
		fail("write gave EPIPE without SIGPIPE");
	before = sigpipes;
	r = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
	if (r >= 0 || errno != EPIPE)
		fail_errno(r < 0 ? errno : 0, "send(MSG_NOSIGNAL) after EPIPE: expected EPIPE");
	if (sigpipes != before)
		fail("send(MSG_NOSIGNAL) raised SIGPIPE");
	close(fd);
	printf("probe epipe ok writes_before=%d econnreset=%d sigpipe=%d\n", writes, resets,
	       (int)sigpipes);
}

static void probe_timeo(void)
{
	struct timeval tv = { opt.ms / 1000, (opt.ms % 1000) * 1000 }, got, stv;
	socklen_t len = sizeof(got);
	uint8_t sbuf[100], rbuf[100];
	struct pollfd p;
	fd_set rd;
	uint64_t t0;
	ssize_t r;
	int fd, rc;

	if (!opt.port)
		fail("--port is required (an echo server)");
	addr_make(&target, opt.host, opt.port);
	fd = connect_blocking(0);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		fail_errno(errno, "setsockopt SO_RCVTIMEO");
	if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &got, &len))
		fail_errno(errno, "getsockopt SO_RCVTIMEO");
	if (len != sizeof(got) || !timeo_matches(&got, &tv))
		fail("getsockopt SO_RCVTIMEO gives %ld.%06ld s, set %ld.%06ld s", (long)got.tv_sec,
		     (long)got.tv_usec, (long)tv.tv_sec, (long)tv.tv_usec);
	/* nothing sent: recv must time out */
	t0 = now_ns();
	r = recv(fd, rbuf, sizeof(rbuf), 0);
	if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
		fail_errno(r < 0 ? errno : 0, "recv with SO_RCVTIMEO and no data: expected EAGAIN "
			   "(got %zd)", r);
	printf("probe timeo: recv timed out after %" PRIu64 " ms (SO_RCVTIMEO %d ms)\n",
	       (now_ns() - t0) / 1000000, opt.ms);
	/* poll and select time out on an idle socket, then see the echo */
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	if ((rc = poll(&p, 1, 50)) != 0)
		fail("poll on an idle socket returned %d (revents 0x%x)", rc, p.revents);
	FD_ZERO(&rd);
	FD_SET(fd, &rd);
	stv = (struct timeval){ 0, 50000 };
	if ((rc = select(fd + 1, &rd, NULL, NULL, &stv)) != 0)
		fail("select on an idle socket returned %d", rc);
	pat_fill(sbuf, sizeof(sbuf), 7, 0);
	if (send(fd, sbuf, sizeof(sbuf), 0) != (ssize_t)sizeof(sbuf))
		fail_errno(errno, "send");
	FD_ZERO(&rd);
	FD_SET(fd, &rd);
	stv = (struct timeval){ GUARD_MS / 1000, 0 };
	if ((rc = select(fd + 1, &rd, NULL, NULL, &stv)) != 1 || !FD_ISSET(fd, &rd))
		fail("select: the echo did not make the socket readable (%d)", rc);
	r = recv(fd, rbuf, sizeof(rbuf), MSG_WAITALL);
	if (r != (ssize_t)sizeof(rbuf) || memcmp(sbuf, rbuf, sizeof(rbuf)))
		fail_errno(r < 0 ? errno : 0, "recv(MSG_WAITALL) of the echo returned %zd", r);
	/* the echo server closes after our FIN: EOF, with the timeout still set */
	if (shutdown(fd, SHUT_WR))
		fail_errno(errno, "shutdown");
	do
		r = recv(fd, rbuf, 1, 0);
	while (r < 0 && errno == EINTR);
	if (r != 0)
		fail_errno(r < 0 ? errno : 0, "recv after shutdown(SHUT_WR): expected EOF");
	close(fd);
	printf("probe timeo ok\n");
}

/*
 * A blocking recv interrupted by a signal handler: EINTR without SA_RESTART;
 * restarted (it then returns the data that comes later) with SA_RESTART;
 * EINTR again, SA_RESTART or not, once SO_RCVTIMEO is set (signal(7)).
 */
static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

struct late_send {
	int fd;
	int ms;
};

static void *late_sender(void *arg)
{
	struct late_send *ls = arg;
	uint8_t b = 0x5a;

	usleep((useconds_t)ls->ms * 1000);
	if (send(ls->fd, &b, 1, MSG_NOSIGNAL) != 1)
		fail_errno(errno, "late send");
	return NULL;
}

static void alarm_in(int ms, bool restart)
{
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = restart ? SA_RESTART : 0 };
	struct itimerval it = { .it_value = { ms / 1000, (ms % 1000) * 1000 } };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) || setitimer(ITIMER_REAL, &it, NULL))
		fail_errno(errno, "sigaction/setitimer");
}

static void probe_eintr(void)
{
	struct timeval tv = { 5, 0 };
	struct late_send ls;
	pthread_t th;
	uint8_t b;
	ssize_t r;
	int fd, a0;

	if (!opt.port)
		fail("--port is required (an echo server)");
	addr_make(&target, opt.host, opt.port);
	fd = connect_blocking(0);

	/* 1. no SA_RESTART: EINTR */
	a0 = alarms;
	alarm_in(100, false);
	r = recv(fd, &b, 1, 0);
	if (r != -1 || errno != EINTR || alarms == a0)
		fail_errno(r < 0 ? errno : 0, "recv interrupted by a handler without SA_RESTART: "
			   "expected EINTR (got %zd, %d alarms)", r, (int)(alarms - a0));

	/* 2. SA_RESTART: the recv goes on and returns the echo of a later send */
	a0 = alarms;
	ls = (struct late_send){ .fd = fd, .ms = 400 };
	if (pthread_create(&th, NULL, late_sender, &ls))
		fail("pthread_create");
	alarm_in(100, true);
	r = recv(fd, &b, 1, 0);
	pthread_join(th, NULL);
	if (r != 1 || b != 0x5a || alarms == a0)
		fail_errno(r < 0 ? errno : 0, "recv interrupted by an SA_RESTART handler: expected "
			   "the later byte (got %zd, %d alarms)", r, (int)(alarms - a0));

	/* 3. SO_RCVTIMEO set: EINTR even with SA_RESTART */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		fail_errno(errno, "setsockopt SO_RCVTIMEO");
	a0 = alarms;
	alarm_in(100, true);
	r = recv(fd, &b, 1, 0);
	if (r != -1 || errno != EINTR || alarms == a0)
		fail_errno(r < 0 ? errno : 0, "recv with SO_RCVTIMEO interrupted by an SA_RESTART "
			   "handler: expected EINTR (got %zd, %d alarms)", r, (int)(alarms - a0));
	close(fd);
	printf("probe eintr ok\n");
}

/*
 * An edge-triggered epoll event loop on one nonblocking connection to an
 * echo server: write until EAGAIN, read until EAGAIN, then wait for the next
 * edge (EPOLLIN or EPOLLOUT), until 8 MiB went out and came back verified.
 * With the ring full both ways, progress depends on both edges arriving.
 */
static void probe_epollet(void)
{
	const uint64_t total = 8u << 20;
	static uint8_t wbuf[65536], rbuf[65536];
	struct epoll_event ev;
	uint64_t sent = 0, rcvd = 0, waits = 0, stream = stream_of(0);
	int fd, ep;

	if (!opt.port)
		fail("--port is required (an echo server)");
	addr_make(&target, opt.host, opt.port);
	fd = connect_blocking(0);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK))
		fail_errno(errno, "fcntl O_NONBLOCK");
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = fd;
	/*
	 * 1. EPOLLOUT alone: 384 KiB, more than one connection buffer holds
	 * here (256 KiB rings) and less than the two together: once the data
	 * is out, only an EPOLLOUT edge can wake us (nothing to read yet
	 * counts: the echo waits in the other direction).
	 */
	ev.events = EPOLLOUT | EPOLLET;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		fail_errno(errno, "epoll");
	while (sent < (384u << 10)) {
		size_t len = sizeof(wbuf);
		struct epoll_event out;
		ssize_t n;

		pat_fill(wbuf, len, stream, sent);
		n = send(fd, wbuf, len, MSG_NOSIGNAL);
		if (n > 0) {
			sent += (uint64_t)n;
			continue;
		}
		if (n == 0 || errno != EAGAIN)
			fail_errno(n < 0 ? errno : 0, "send at byte %" PRIu64, sent);
		n = epoll_wait(ep, &out, 1, GUARD_MS);
		waits++;
		if (n == 0)
			fail("epoll (EPOLLOUT|EPOLLET): no edge for %d ms after EAGAIN; sent %" PRIu64,
			     GUARD_MS, sent);
	}
	/* 2. then both, for the rest: the echo of phase 1 is read here too. */
	ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev))
		fail_errno(errno, "epoll_ctl MOD");
	while (rcvd < total) {
		struct epoll_event out;
		ssize_t n;

		while (sent < total) {
			size_t len = total - sent < sizeof(wbuf) ? (size_t)(total - sent) : sizeof(wbuf);

			pat_fill(wbuf, len, stream, sent);
			n = send(fd, wbuf, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0)
				fail_errno(n < 0 ? errno : 0, "send at byte %" PRIu64, sent);
			sent += (uint64_t)n;
		}
		if (sent == total)
			shutdown(fd, SHUT_WR);
		while (rcvd < total) {
			n = recv(fd, rbuf, sizeof(rbuf), 0);
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0)
				fail_errno(n < 0 ? errno : 0, "recv at byte %" PRIu64, rcvd);
			if (pat_mismatch(rbuf, (size_t)n, stream, rcvd) != (size_t)n)
				fail("echo differs near byte %" PRIu64, rcvd);
			rcvd += (uint64_t)n;
		}
		if (rcvd == total)
			break;
		n = epoll_wait(ep, &out, 1, GUARD_MS);
		waits++;
		if (n == 0)
			fail("epoll (EPOLLET): no edge for %d ms after EAGAIN both ways; sent %" PRIu64
			     ", received %" PRIu64, GUARD_MS, sent, rcvd);
		if (n < 0 && errno != EINTR)
			fail_errno(errno, "epoll_wait");
	}
	close(ep);
	close(fd);
	printf("probe epollet ok bytes=%" PRIu64 " waits=%" PRIu64 "\n", total, waits);
}

static int run_probe(const char *what)
{
	role = "probe";
	if (!strcmp(what, "refused"))
		probe_refused();
	else if (!strcmp(what, "addrinuse"))
		probe_addrinuse();
	else if (!strcmp(what, "epipe"))
		probe_epipe();
	else if (!strcmp(what, "timeo"))
		probe_timeo();
	else if (!strcmp(what, "eintr"))
		probe_eintr();
	else if (!strcmp(what, "epollet"))
		probe_epollet();
	else
		fail("unknown probe '%s' (refused, addrinuse, epipe, timeo, eintr, epollet)", what);
	return 0;
}

/* ---- arguments ------------------------------------------------------------------- */

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
		"usage: ipcd-echo server [--host A] [--port P] [--port-file F] [--conns N]\n"
		"           [--nonblock | --select | --fork] [--close] [--report] [--allow-reset]\n"
		"       ipcd-echo client --port P [--host A] [--conns N] [--size B] [--chunk B]\n"
		"           [--seed S] [--nonblock | --select] [--duplex] [--sendfile]\n"
		"           [--rcvtimeo MS] [--forever [--idle]]\n"
		"           [--ready-at B --ready-file F [--wait-file G]]\n"
		"       ipcd-echo churn --port P [--host A] [--count N] [--map-slack N]\n"
		"       ipcd-echo probe refused|addrinuse|epipe|timeo|eintr|epollet [--host A]\n"
		"                 [--port P]\n"
		"           [--ms MS]\n"
		"Sizes take k, m, g suffixes. Exit status: 0 ok, 1 error (one line on stderr),\n"
		"2 usage.\n");
	exit(code);
}

int main(int argc, char **argv)
{
	const char *cmd, *probe = NULL;
	int i = 2;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		usage(argc < 2 ? 2 : 0);
	cmd = argv[1];
	if (!strcmp(cmd, "probe")) {
		if (argc < 3)
			usage(2);
		probe = argv[i++];
	}
	for (; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = true;

		if (!strcmp(a, "--nonblock"))
			opt.nonblock = true, takes = false;
		else if (!strcmp(a, "--select"))
			opt.use_select = true, takes = false;
		else if (!strcmp(a, "--fork"))
			opt.fork_mode = true, takes = false;
		else if (!strcmp(a, "--close"))
			opt.close_mode = true, takes = false;
		else if (!strcmp(a, "--report"))
			opt.report = true, takes = false;
		else if (!strcmp(a, "--allow-reset"))
			opt.allow_reset = true, takes = false;
		else if (!strcmp(a, "--sendfile"))
			opt.sendfile_mode = true, takes = false;
		else if (!strcmp(a, "--forever"))
			opt.forever = true, takes = false;
		else if (!strcmp(a, "--idle"))
			opt.idle = true, takes = false;
		else if (!strcmp(a, "--duplex"))
			opt.duplex = true, takes = false;
		else if (!v)
			usage(2);
		else if (!strcmp(a, "--host"))
			opt.host = v;
		else if (!strcmp(a, "--port"))
			opt.port = (unsigned int)parse_size(v, "--port");
		else if (!strcmp(a, "--port-file"))
			opt.port_file = v;
		else if (!strcmp(a, "--map-slack"))
			opt.map_slack = (unsigned int)parse_size(v, "--map-slack");
		else if (!strcmp(a, "--conns"))
			opt.conns = (unsigned int)parse_size(v, "--conns");
		else if (!strcmp(a, "--size"))
			opt.size = parse_size(v, "--size");
		else if (!strcmp(a, "--chunk"))
			opt.chunk = (size_t)parse_size(v, "--chunk");
		else if (!strcmp(a, "--seed"))
			opt.seed = parse_size(v, "--seed");
		else if (!strcmp(a, "--rcvtimeo"))
			opt.rcvtimeo_ms = (int)parse_size(v, "--rcvtimeo");
		else if (!strcmp(a, "--ready-at"))
			opt.ready_at = parse_size(v, "--ready-at");
		else if (!strcmp(a, "--ready-file"))
			opt.ready_file = v;
		else if (!strcmp(a, "--wait-file"))
			opt.wait_file = v;
		else if (!strcmp(a, "--count"))
			opt.count = (unsigned int)parse_size(v, "--count");
		else if (!strcmp(a, "--ms"))
			opt.ms = (int)parse_size(v, "--ms");
		else
			usage(2);
		if (takes)
			i++;
	}
	if (opt.port > 65535)
		fail("--port out of range");
	if (!strcmp(cmd, "server"))
		return run_server();
	if (!strcmp(cmd, "client"))
		return run_client();
	if (!strcmp(cmd, "churn"))
		return run_churn();
	if (probe)
		return run_probe(probe);
	usage(2);
}
