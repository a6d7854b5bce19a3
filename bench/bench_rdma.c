/* SPDX-License-Identifier: MIT */
/*
 * bench_rdma.c - ipcd-bench-rdma: TCP between two hosts through IPC-Direct's
 * RDMA transport against kernel TCP between the same two hosts, in one run
 * (issue #7, item 6). Made for real RDMA hardware; docs/rdma.md says how to
 * deploy and run it, bench/README.md what it prints.
 *
 *   host B:  ipcd-run ipcd-bench-rdma server [--host ADDR] [--port P]
 *   host A:  ipcd-bench-rdma client --host B_ADDR [--port P] [--quick] ...
 *
 * The server (run under the preload on host B) accepts any number of
 * connections, one thread each. A connection starts with a fixed 32-byte
 * header (struct wire_hdr: which test, its size and count) that the server
 * answers (struct wire_reply: accepted or why not, and whether the server
 * has the preload mapped); then the test:
 *   ping:   the client sends a message of N bytes, the server checks it and
 *           echoes it, K times; then the client closes;
 *   stream: K messages of S bytes, one send() each, then a 1-byte ack;
 *   tput:   K chunks of 64 KiB, one send() call each, then an ack carrying
 *           the byte count and a checksum of everything received.
 * The server checks every byte against the pattern both sides derive, and
 * the client checks every echo and the checksum. A connection from a
 * process that is not preloaded reaches the server's kernel listener (the
 * preload keeps one beside its own), so the same server serves both sides.
 *
 * The client driver (never preloaded) re-executes itself for every block
 * (`ipcd-bench-rdma role ...`, one connection, one test): once as it is
 * (kernel TCP) and once with LD_PRELOAD=libipcd.so (the build tree's path,
 * compiled in) and IPCD_SOCKET, the kernel and ipcd blocks interleaved. It
 * reads the local monitor's counters (ipcdctl --json counters) before and
 * after each ipcd block: connections.remote_out must have grown by the
 * block's connection, or the block went over kernel TCP and is FAILED (no
 * figures; exit status 1). Every wait is bounded: alarm() in the roles and
 * in the server's connection threads' socket timeouts, poll deadlines and
 * SIGKILL in the driver.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define NS_PER_S	1000000000ull
#define DEFAULT_PORT	18600
#define WIRE_MAGIC	0x42525049u	/* "IPRB" */
#define WIRE_VERSION	1
#define CHUNK		(64u << 10)	/* tput: bytes per send() call */
#define PERIOD		(64u << 10)	/* the stream test's pattern repeats with this period */
#define PAT_SHIFT	256u		/* ping i sends the pattern from i % 256 on */
#define MAX_MSG		(1u << 20)	/* largest ping message */
#define PAT_LEN		(MAX_MSG + PAT_SHIFT)
#define MAX_COUNT	(1ull << 32)
#define MAX_ROUNDS	64
#define ERR_LEN		400
#define REPORT_FD	3		/* role -> driver: text lines */
#define TAG_SALT	0x9e3779b97f4a7c15ull	/* tput chunk k starts with k ^ TAG_SALT */
#define CK_MUL		0x100000001b3ull
#define ACK_OK		'A'
#define ACK_BAD		'E'

enum wire_test { W_HELLO = 1, W_PING, W_STREAM, W_TPUT };
static const char *const wire_name[] = { "?", "hello", "ping", "stream", "tput" };

/* Every field little-endian. */
struct wire_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t test;			/* enum wire_test */
	uint32_t size;			/* ping and stream: message bytes; tput: CHUNK */
	uint32_t pad;
	uint64_t count;			/* round trips, messages or chunks */
	uint64_t cookie;		/* echoed in the reply */
};

#define REPLY_PRELOADED	(1u << 0)	/* the server has libipcd mapped */

enum wire_status { ST_OK, ST_MAGIC, ST_VERSION, ST_PARAMS };
static const char *const status_name[] = {
	"accepted", "bad magic", "other protocol version", "bad size or count",
};

struct wire_reply {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;			/* REPLY_* */
	uint32_t status;		/* enum wire_status */
	uint32_t pid;			/* the server's, on its host */
	uint64_t cookie;
};

/* tput's final answer. */
struct wire_ack {
	uint32_t magic;
	uint32_t status;		/* 0, or 1: content differs (bytes = where) */
	uint64_t bytes;
	uint64_t csum;
};

_Static_assert(sizeof(struct wire_hdr) == 32, "wire header layout");
_Static_assert(sizeof(struct wire_reply) == 24, "wire reply layout");
_Static_assert(sizeof(struct wire_ack) == 24, "wire ack layout");

/* ==== shared by every role: the pattern, addresses, full sends and receives ====== */

/*
 * The pattern: ping i sends pat[i % 256 ..], the stream's byte at offset o
 * is pat[o % PERIOD], tput chunk k is pat[0 .. CHUNK) with its first 8 bytes
 * replaced by the tag k ^ TAG_SALT. 64-byte aligned, so it reads as words.
 */
static uint8_t *pat;

static int pattern_init(void)
{
	uint32_t i;

	pat = aligned_alloc(64, PAT_LEN);
	if (!pat)
		return -ENOMEM;
	for (i = 0; i < PAT_LEN; i++)
		pat[i] = (uint8_t)(i * 131u + (i >> 9) + 7u);
	return 0;
}

/* The tput checksum fold: two sums of the chunk's words (plain, position-weighted). */
static uint64_t ck_fold(uint64_t ck, uint64_t s1, uint64_t s2)
{
	ck = (ck ^ s1) * CK_MUL;
	return (ck ^ s2) * CK_MUL;
}

/* s1, s2 of the pattern's chunk words 1.. (word 0 is the tag). */
static void ck_rest(uint64_t *r1, uint64_t *r2)
{
	uint64_t s1 = 0, s2 = 0, w;
	uint32_t i;

	for (i = 1; i < CHUNK / 8; i++) {
		memcpy(&w, pat + 8 * i, 8);
		s1 += w;
		s2 += (uint64_t)(i + 1) * w;
	}
	*r1 = s1;
	*r2 = s2;
}

/* The checksum of K chunks as the client sent them. */
static uint64_t ck_expected(uint64_t chunks)
{
	uint64_t r1, r2, ck = 0, k;

	ck_rest(&r1, &r2);
	for (k = 0; k < chunks; k++) {
		uint64_t tag = k ^ TAG_SALT;

		ck = ck_fold(ck, r1 + tag, r2 + tag);
	}
	return ck;
}

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
};

static int addr_make(const char *host, unsigned int port, struct addr *a)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
	bool v6 = strchr(host, ':') != NULL;
	void *ip = v6 ? (void *)&s6->sin6_addr : (void *)&s4->sin_addr;

	memset(a, 0, sizeof(*a));
	if (port == 0 || port > 65535)
		return -EINVAL;
	a->family = v6 ? AF_INET6 : AF_INET;
	a->len = v6 ? sizeof(*s6) : sizeof(*s4);
	a->ss.ss_family = (sa_family_t)a->family;
	if (v6)
		s6->sin6_port = htons((uint16_t)port);
	else
		s4->sin_port = htons((uint16_t)port);
	return inet_pton(a->family, host, ip) == 1 ? 0 : -EINVAL;
}

static void addr_str(const struct sockaddr_storage *ss, char *b, size_t len)
{
	char h[INET6_ADDRSTRLEN] = "?";
	unsigned int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, h, sizeof(h));
		port = ntohs(s4->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, h, sizeof(h));
		port = ntohs(s6->sin6_port);
	}
	snprintf(b, len, "%s port %u", h, port);
}

/* Is libipcd mapped into this process? */
static bool self_preloaded(void)
{
	return ipcd_bench_mapped("/libipcd.so");
}

/* All of @n, or -errno (-EPIPE for a send that returned 0). */
static int send_full(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t r = send(fd, b, n, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void hdr_encode(struct wire_hdr *h, enum wire_test t, uint32_t size, uint64_t count,
		       uint64_t cookie)
{
	memset(h, 0, sizeof(*h));
	h->magic = htole32(WIRE_MAGIC);
	h->version = htole16(WIRE_VERSION);
	h->test = htole16((uint16_t)t);
	h->size = htole32(size);
	h->count = htole64(count);
	h->cookie = htole64(cookie);
}

static const char *test_str(uint16_t t)
{
	return t >= W_HELLO && t <= W_TPUT ? wire_name[t] : wire_name[0];
}

/* Send and receive timeouts of @fd (connect() obeys the send one); 0: none. */
static void sock_timeouts(int fd, unsigned int s)
{
	struct timeval tv = { .tv_sec = s };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/*
 * Connect to @a, send the header, read the reply, each within @timeout_s
 * (0: no bound; the roles have their alarm). 0 with the reply's flags and
 * pid, or -1 with @err set (the socket closed).
 */
static int open_test(const struct addr *a, enum wire_test t, uint32_t size, uint64_t count,
		     unsigned int timeout_s, int *fd_out, struct wire_reply *rep, char *err,
		     size_t len)
{
	struct wire_hdr h;
	ssize_t got;
	int fd, rc;

	fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, len, "socket: %s", strerror(errno));
		return -1;
	}
	if (timeout_s)
		sock_timeouts(fd, timeout_s);
	while ((rc = connect(fd, (const struct sockaddr *)&a->ss, a->len)) != 0 && errno == EINTR)
		;
	if (rc) {
		snprintf(err, len, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	nodelay(fd);
	hdr_encode(&h, t, size, count, (uint64_t)getpid() << 32 ^ ipcd_now_ns());
	rc = send_full(fd, &h, sizeof(h));
	if (rc) {
		snprintf(err, len, "sending the test header: %s", strerror(-rc));
		close(fd);
		return -1;
	}
	got = ipcd_bench_recv_full(fd, rep, sizeof(*rep));
	if (got != (ssize_t)sizeof(*rep)) {
		snprintf(err, len, "no answer to the test header (%s)",
			 got == -EAGAIN ? "none in time: is it ipcd-bench-rdma server?" :
			 got < 0 ? strerror((int)-got) : "EOF: is it ipcd-bench-rdma server?");
		close(fd);
		return -1;
	}
	rep->magic = le32toh(rep->magic);
	rep->version = le16toh(rep->version);
	rep->flags = le16toh(rep->flags);
	rep->status = le32toh(rep->status);
	rep->pid = le32toh(rep->pid);
	rep->cookie = le64toh(rep->cookie);
	if (rep->magic != WIRE_MAGIC) {
		snprintf(err, len, "the answer is not ipcd-bench-rdma's (magic 0x%08x)", rep->magic);
		close(fd);
		return -1;
	}
	if (rep->version != WIRE_VERSION || rep->cookie != le64toh(h.cookie) ||
	    rep->status != ST_OK) {
		snprintf(err, len, "the server refused the %s test: %s (its protocol version %u, "
			 "ours %u)", test_str((uint16_t)t),
			 rep->status <= ST_PARAMS ? status_name[rep->status] :
			 rep->cookie != le64toh(h.cookie) ? "wrong cookie" : "unknown status",
			 rep->version, WIRE_VERSION);
		close(fd);
		return -1;
	}
	if (timeout_s)
		sock_timeouts(fd, 0);
	*fd_out = fd;
	return 0;
}

/* ==== the server ================================================================== */

static struct {
	unsigned int idle_s;		/* a connection's socket timeouts */
	bool quiet;
	bool preloaded;
	atomic_uint active;
	atomic_ulong served, failed;
	atomic_ulong next_id;
	volatile sig_atomic_t stop;
} srv = { .idle_s = 120 };

struct sconn {
	int fd;
	unsigned long id;
	char peer[INET6_ADDRSTRLEN + 16];
};

static __attribute__((format(printf, 2, 3))) void sconn_log(const struct sconn *c,
							    const char *fmt, ...)
{
	char line[ERR_LEN + 128];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "ipcd-bench-rdma server: conn %lu from %s: ", c->id,
		     c->peer);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}

static int no_memory(char *err, size_t len)
{
	snprintf(err, len, "out of memory");
	return -1;
}

/* The test's last word (stream, tput): 0, or -1 with @err. */
static int send_ack(int fd, const void *ack, size_t n, char *err, size_t len)
{
	int s = send_full(fd, ack, n);

	if (s)
		snprintf(err, len, "ack: %s", strerror(-s));
	return s ? -1 : 0;
}

/* Ping: K messages of N bytes, each checked and echoed. 0, or -1 with @err. */
static int serve_ping(int fd, uint32_t size, uint64_t count, char *err, size_t len)
{
	uint8_t *buf = malloc(size);
	uint64_t i;
	int rc = -1;

	if (!buf)
		return no_memory(err, len);
	for (i = 0; i < count; i++) {
		ssize_t got = ipcd_bench_recv_full(fd, buf, size);
		int s;

		if (got != (ssize_t)size) {
			snprintf(err, len, "round trip %" PRIu64 " of %" PRIu64 ": %s", i, count,
				 got < 0 ? strerror((int)-got) : "EOF in the message");
			goto out;
		}
		if (memcmp(buf, pat + i % PAT_SHIFT, size)) {
			snprintf(err, len, "round trip %" PRIu64 ": the %u-byte message differs from "
				 "the pattern", i, size);
			goto out;
		}
		s = send_full(fd, buf, size);
		if (s) {
			snprintf(err, len, "round trip %" PRIu64 ": echo: %s", i, strerror(-s));
			goto out;
		}
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

/* Stream: K messages of S bytes, read in 64 KiB recv()s and checked, then one ack byte. */
static int serve_stream(int fd, uint32_t size, uint64_t count, char *err, size_t len)
{
	uint64_t total = count * size, got = 0;
	uint8_t *buf = malloc(PERIOD);
	char ack = ACK_OK;
	int rc = -1;

	if (!buf)
		return no_memory(err, len);
	while (got < total) {
		size_t want = total - got < PERIOD ? (size_t)(total - got) : PERIOD;
		ssize_t n = recv(fd, buf, want, 0);
		uint64_t k;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, len, "after %" PRIu64 " of %" PRIu64 " bytes: %s", got, total,
				 n ? strerror(errno) : "EOF");
			goto out;
		}
		/* Byte o of the stream is pat[o % PERIOD]: at most two pieces per recv. */
		for (k = 0; k < (uint64_t)n;) {
			uint64_t o = (got + k) % PERIOD;
			uint64_t piece = (uint64_t)n - k < PERIOD - o ? (uint64_t)n - k : PERIOD - o;

			if (memcmp(buf + k, pat + o, piece)) {
				snprintf(err, len, "the stream differs from the pattern near byte %"
					 PRIu64, got + k);
				ack = ACK_BAD;
				send_full(fd, &ack, 1);
				goto out;
			}
			k += piece;
		}
		got += (uint64_t)n;
	}
	rc = send_ack(fd, &ack, 1, err, len);
out:
	free(buf);
	return rc;
}

/* Tput: K chunks of CHUNK bytes, each checked word by word, then the checksum ack. */
static int serve_tput(int fd, uint64_t chunks, char *err, size_t len)
{
	uint64_t *buf = aligned_alloc(64, CHUNK), ck = 0, k;
	const uint64_t *pw = (const uint64_t *)(const void *)pat;
	struct wire_ack ack = { .magic = htole32(WIRE_MAGIC) };
	int rc = -1;

	if (!buf)
		return no_memory(err, len);
	for (k = 0; k < chunks; k++) {
		ssize_t got = ipcd_bench_recv_full(fd, buf, CHUNK);
		uint64_t s1, s2, bad = 0;
		uint32_t i;

		if (got != (ssize_t)CHUNK) {
			snprintf(err, len, "chunk %" PRIu64 " of %" PRIu64 ": %s", k, chunks,
				 got < 0 ? strerror((int)-got) : "EOF");
			goto out;
		}
		s1 = buf[0];
		s2 = buf[0];
		bad = buf[0] != (k ^ TAG_SALT);
		for (i = 1; i < CHUNK / 8; i++) {
			uint64_t w = buf[i];

			bad |= w ^ pw[i];
			s1 += w;
			s2 += (uint64_t)(i + 1) * w;
		}
		if (bad) {
			snprintf(err, len, "chunk %" PRIu64 " (stream bytes %" PRIu64 "..) differs "
				 "from the pattern", k, k * CHUNK);
			ack.status = htole32(1);
			ack.bytes = htole64(k * CHUNK);
			send_full(fd, &ack, sizeof(ack));
			goto out;
		}
		ck = ck_fold(ck, s1, s2);
	}
	ack.bytes = htole64(chunks * CHUNK);
	ack.csum = htole64(ck);
	rc = send_ack(fd, &ack, sizeof(ack), err, len);
out:
	free(buf);
	return rc;
}

static bool params_ok(uint16_t t, uint32_t size, uint64_t count)
{
	switch (t) {
	case W_HELLO:
		return true;
	case W_PING:
		return size >= 1 && size <= MAX_MSG && count >= 1 && count <= MAX_COUNT;
	case W_STREAM:
		return size >= 1 && size <= PERIOD && PERIOD % size == 0 && count >= 1 &&
		       count <= MAX_COUNT;
	case W_TPUT:
		return size == CHUNK && count >= 1 && count <= MAX_COUNT;
	default:
		return false;
	}
}

static void *serve_conn(void *arg)
{
	struct sconn *c = arg;
	struct wire_reply rep = { .magic = htole32(WIRE_MAGIC), .version = htole16(WIRE_VERSION) };
	struct wire_hdr h;
	char err[ERR_LEN] = "";
	uint64_t t0 = ipcd_now_ns();
	uint32_t size = 0;
	uint64_t count = 0;
	uint16_t test = 0;
	ssize_t got;
	int rc = -1;
	char end;

	sock_timeouts(c->fd, srv.idle_s);
	nodelay(c->fd);
	got = ipcd_bench_recv_full(c->fd, &h, sizeof(h));
	if (got != (ssize_t)sizeof(h)) {
		snprintf(err, sizeof(err), "no test header (%s)",
			 got < 0 ? strerror((int)-got) : "EOF");
		goto done;
	}
	test = le16toh(h.test);
	size = le32toh(h.size);
	count = le64toh(h.count);
	rep.cookie = h.cookie;
	rep.pid = htole32((uint32_t)getpid());
	rep.flags = htole16(srv.preloaded ? REPLY_PRELOADED : 0);
	if (le32toh(h.magic) != WIRE_MAGIC)
		rep.status = htole32(ST_MAGIC);
	else if (le16toh(h.version) != WIRE_VERSION)
		rep.status = htole32(ST_VERSION);
	else if (!params_ok(test, size, count))
		rep.status = htole32(ST_PARAMS);
	if (send_full(c->fd, &rep, sizeof(rep)) || rep.status) {
		snprintf(err, sizeof(err), "header refused: %s (test %u, size %u, count %" PRIu64
			 ")", status_name[le32toh(rep.status) <= ST_PARAMS ? le32toh(rep.status) : 0],
			 test, size, count);
		goto done;
	}
	switch (test) {
	case W_HELLO:
		rc = 0;
		break;
	case W_PING:
		rc = serve_ping(c->fd, size, count, err, sizeof(err));
		break;
	case W_STREAM:
		rc = serve_stream(c->fd, size, count, err, sizeof(err));
		break;
	case W_TPUT:
		rc = serve_tput(c->fd, count, err, sizeof(err));
		break;
	}
	if (rc == 0 && test != W_HELLO) {
		/* The client closes after the last echo or ack: anything else is an error. */
		got = ipcd_bench_recv_full(c->fd, &end, 1);
		if (got != 0) {
			snprintf(err, sizeof(err), "%s after the test's last byte",
				 got > 0 ? "more bytes" : strerror((int)-got));
			rc = -1;
		}
	}
done:
	close(c->fd);
	if (rc == 0) {
		atomic_fetch_add(&srv.served, 1);
		if (!srv.quiet && test != W_HELLO)
			sconn_log(c, "%s %u B x %" PRIu64 ": ok (%.3f s)", test_str(test), size,
				  count, (double)(ipcd_now_ns() - t0) / 1e9);
	} else {
		atomic_fetch_add(&srv.failed, 1);
		sconn_log(c, "%s %u B x %" PRIu64 ": FAILED: %s", test_str(test), size, count, err);
	}
	atomic_fetch_sub(&srv.active, 1);
	free(c);
	return NULL;
}

static void on_stop(int sig)
{
	(void)sig;
	srv.stop = 1;
}

static void server_usage(FILE *f)
{
	fprintf(f,
		"usage: ipcd-run ipcd-bench-rdma server [--host ADDR] [--port P] [--idle S]\n"
		"                                       [--exit-idle S] [--quiet]\n"
		"  --host ADDR    address to listen on (default 0.0.0.0; :: for IPv6)\n"
		"  --port P       TCP port (default %u)\n"
		"  --idle S       a connection that makes no progress for S s is dropped (default 120)\n"
		"  --exit-idle S  exit after S s without any connection (default: run until SIGTERM)\n"
		"  --quiet        log failed connections only\n"
		"Run it under ipcd-run (libipcd.so) on the server host; clients without the\n"
		"preload reach it over kernel TCP. Exit status on SIGTERM/SIGINT/--exit-idle:\n"
		"0 if every connection passed its checks, 1 if one failed.\n", DEFAULT_PORT);
}

static int server_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "idle", required_argument, NULL, 'i' },
		{ "exit-idle", required_argument, NULL, 'x' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = "0.0.0.0";
	unsigned int port = DEFAULT_PORT, exit_idle = 0;
	struct sigaction sa = { .sa_handler = on_stop };
	uint64_t idle_since;
	struct addr a;
	char where[INET6_ADDRSTRLEN + 16];
	int c, lfd, one = 1;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'h': host = optarg; break;
		case 'p': port = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'i': srv.idle_s = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'x': exit_idle = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'q': srv.quiet = true; break;
		case 'H': server_usage(stdout); return 0;
		default: server_usage(stderr); return 2;
		}
	}
	if (optind != argc || addr_make(host, port, &a) || srv.idle_s == 0) {
		server_usage(stderr);
		return 2;
	}
	if (pattern_init()) {
		fprintf(stderr, "ipcd-bench-rdma server: out of memory\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	srv.preloaded = self_preloaded();
	if (!srv.preloaded)
		fprintf(stderr, "ipcd-bench-rdma server: WARNING: libipcd.so is not loaded (run me "
			"under ipcd-run): every connection will be kernel TCP, and the client's "
			"ipcd blocks will fail\n");
	lfd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (const struct sockaddr *)&a.ss, a.len) || listen(lfd, 128)) {
		fprintf(stderr, "ipcd-bench-rdma server: listen on %s port %u: %s\n", host, port,
			strerror(errno));
		return 1;
	}
	addr_str(&a.ss, where, sizeof(where));
	printf("ipcd-bench-rdma server: listening on %s, pid %d, preloaded %s, protocol %u\n",
	       where, (int)getpid(), srv.preloaded ? "yes" : "NO", WIRE_VERSION);
	fflush(stdout);
	idle_since = ipcd_now_ns();
	while (!srv.stop) {
		struct pollfd pf = { .fd = lfd, .events = POLLIN };
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct sconn *sc;
		pthread_attr_t attr;
		pthread_t th;
		int fd, n;

		if (atomic_load(&srv.active))
			idle_since = ipcd_now_ns();
		else if (exit_idle && ipcd_now_ns() - idle_since >= exit_idle * NS_PER_S)
			break;
		n = poll(&pf, 1, 500);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "ipcd-bench-rdma server: poll: %s\n", strerror(errno));
			break;
		}
		if (n <= 0)
			continue;
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
				fprintf(stderr, "ipcd-bench-rdma server: accept: %s\n",
					strerror(errno));
			continue;
		}
		sc = calloc(1, sizeof(*sc));
		if (!sc) {
			close(fd);
			continue;
		}
		sc->fd = fd;
		sc->id = atomic_fetch_add(&srv.next_id, 1) + 1;
		addr_str(&ss, sc->peer, sizeof(sc->peer));
		atomic_fetch_add(&srv.active, 1);
		idle_since = ipcd_now_ns();
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &attr, serve_conn, sc)) {
			fprintf(stderr, "ipcd-bench-rdma server: pthread_create failed\n");
			atomic_fetch_sub(&srv.active, 1);
			close(fd);
			free(sc);
		}
		pthread_attr_destroy(&attr);
	}
	close(lfd);
	printf("ipcd-bench-rdma server: %lu connections passed, %lu failed, %u still open\n",
	       atomic_load(&srv.served), atomic_load(&srv.failed), atomic_load(&srv.active));
	fflush(stdout);
	return atomic_load(&srv.failed) ? 1 : 0;
}

/* ==== the role: one block's connection, in a process of its own =================== */

static FILE *rep_out;

static __attribute__((noreturn, format(printf, 1, 2))) void r_die(const char *fmt, ...)
{
	char who[48];
	va_list ap;

	snprintf(who, sizeof(who), "ipcd-bench-rdma role (pid %d)", (int)getpid());
	va_start(ap, fmt);
	ipcd_bench_vsay(who, fmt, ap);
	va_end(ap);
	_exit(3);
}

static void on_alarm(int sig)
{
	(void)sig;
	ipcd_bench_say_raw("ipcd-bench-rdma role: timed out (alarm): the connection stopped "
			   "making progress\n");
	_exit(4);
}

static void role_ping(int fd, uint32_t size, uint64_t count, uint64_t warm)
{
	uint32_t *s = calloc(count > warm ? count - warm : 1, sizeof(*s));
	uint8_t *buf = malloc(size);
	uint64_t i, n = 0;

	if (!s || !buf)
		r_die("out of memory");
	for (i = 0; i < count; i++) {
		const uint8_t *msg = pat + i % PAT_SHIFT;
		uint64_t t0, t1;
		ssize_t got;
		int rc;

		t0 = ipcd_now_ns();
		rc = send_full(fd, msg, size);
		if (rc)
			r_die("round trip %" PRIu64 ": send: %s", i, strerror(-rc));
		got = ipcd_bench_recv_full(fd, buf, size);
		t1 = ipcd_now_ns();
		if (got != (ssize_t)size)
			r_die("round trip %" PRIu64 " of %" PRIu64 ": %s", i, count,
			      got < 0 ? strerror((int)-got) :
			      "the server closed the connection (its output says why)");
		if (memcmp(buf, msg, size))
			r_die("round trip %" PRIu64 ": the echo differs from what was sent", i);
		if (i >= warm)
			s[n++] = t1 - t0 > UINT32_MAX ? UINT32_MAX : (uint32_t)(t1 - t0);
	}
	fprintf(rep_out, "rtt %" PRIu64 "\n", n);
	for (i = 0; i < n; i++)
		fprintf(rep_out, "%u\n", s[i]);
	free(s);
	free(buf);
}

static void role_stream(int fd, uint32_t size, uint64_t count)
{
	uint64_t i, off = 0, t0, t1;
	ssize_t got;
	char ack = 0;
	int rc;

	t0 = ipcd_now_ns();
	for (i = 0; i < count; i++) {
		rc = send_full(fd, pat + off, size);
		if (rc)
			r_die("message %" PRIu64 " of %" PRIu64 ": send: %s", i, count, strerror(-rc));
		off = (off + size) % PERIOD;
	}
	got = ipcd_bench_recv_full(fd, &ack, 1);
	t1 = ipcd_now_ns();
	if (got != 1)
		r_die("no ack after %" PRIu64 " messages: %s", count,
		      got < 0 ? strerror((int)-got) : "EOF (the server's output says why)");
	if (ack != ACK_OK)
		r_die("the server found the stream's content wrong (its output says where)");
	fprintf(rep_out, "rate %" PRIu64 " %" PRIu64 "\n", count, t1 - t0);
}

static void role_tput(int fd, uint64_t chunks)
{
	uint64_t *buf = aligned_alloc(64, CHUNK), t0, t1, k, want;
	struct wire_ack ack;
	ssize_t got;
	int rc;

	if (!buf)
		r_die("out of memory");
	memcpy(buf, pat, CHUNK);
	t0 = ipcd_now_ns();
	for (k = 0; k < chunks; k++) {
		buf[0] = k ^ TAG_SALT;
		rc = send_full(fd, buf, CHUNK);
		if (rc)
			r_die("chunk %" PRIu64 " of %" PRIu64 ": send: %s", k, chunks, strerror(-rc));
	}
	got = ipcd_bench_recv_full(fd, &ack, sizeof(ack));
	t1 = ipcd_now_ns();
	if (got != (ssize_t)sizeof(ack))
		r_die("no ack after %" PRIu64 " chunks: %s", chunks,
		      got < 0 ? strerror((int)-got) : "EOF (the server's output says why)");
	if (le32toh(ack.magic) != WIRE_MAGIC)
		r_die("the ack is not ipcd-bench-rdma's");
	if (le32toh(ack.status))
		r_die("the server found the data wrong in the chunk at stream byte %" PRIu64,
		      le64toh(ack.bytes));
	want = ck_expected(chunks);
	if (le64toh(ack.bytes) != chunks * CHUNK || le64toh(ack.csum) != want)
		r_die("the server's checksum differs: %" PRIu64 " bytes, 0x%016" PRIx64
		      "; sent %" PRIu64 " bytes, 0x%016" PRIx64, le64toh(ack.bytes),
		      le64toh(ack.csum), chunks * CHUNK, want);
	fprintf(rep_out, "tput %" PRIu64 " %" PRIu64 "\n", chunks * CHUNK, t1 - t0);
	free(buf);
}

static int role_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "test", required_argument, NULL, 't' },
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'c' },
		{ "warm", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa = { .sa_handler = on_alarm };
	const char *test = NULL, *host = NULL;
	unsigned int port = DEFAULT_PORT, timeout_s = 120;
	uint32_t size = 8;
	uint64_t count = 1, warm = 0;
	struct wire_reply r;
	char err[ERR_LEN];
	enum wire_test t;
	struct addr a;
	int c, fd;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 't': test = optarg; break;
		case 'h': host = optarg; break;
		case 'p': port = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 's': size = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'c': count = strtoull(optarg, NULL, 10); break;
		case 'w': warm = strtoull(optarg, NULL, 10); break;
		case 'T': timeout_s = (unsigned int)strtoul(optarg, NULL, 10); break;
		default: r_die("bad role arguments");
		}
	}
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	alarm(timeout_s);
	rep_out = fdopen(REPORT_FD, "w");
	if (!rep_out)
		r_die("report fd %d: %s", REPORT_FD, strerror(errno));
	if (!test || !host || addr_make(host, port, &a))
		r_die("--test, --host and --port are required");
	if (!strcmp(test, "ping"))
		t = W_PING;
	else if (!strcmp(test, "stream"))
		t = W_STREAM;
	else if (!strcmp(test, "tput"))
		t = W_TPUT;
	else
		r_die("unknown test %s", test);
	if (!params_ok((uint16_t)t, size, count) || warm >= count)
		r_die("bad --size, --count or --warm");
	if (pattern_init())
		r_die("out of memory");
	fprintf(rep_out, "hello %d %d\n", (int)getpid(), self_preloaded());
	fflush(rep_out);
	if (open_test(&a, t, size, count, 0, &fd, &r, err, sizeof(err)))
		r_die("%s", err);
	fprintf(rep_out, "conns 1\nserver %u %u\n", r.pid, r.flags & REPLY_PRELOADED ? 1u : 0u);
	switch (t) {
	case W_PING:
		role_ping(fd, size, count, warm);
		break;
	case W_STREAM:
		role_stream(fd, size, count);
		break;
	default:
		role_tput(fd, count);
		break;
	}
	close(fd);
	fprintf(rep_out, "ok\n");
	if (fflush(rep_out) || ferror(rep_out))
		r_die("report pipe: %s", strerror(errno));
	return 0;
}

/* ==== the client driver =========================================================== */

enum kind { K_RTT, K_RATE, K_TPUT };

struct xdef {
	const char *name;		/* --tests and JSON */
	const char *label;		/* the table */
	enum kind kind;
	uint32_t size;
};

enum { X_RTT8, X_RTT64, X_RTT4K, X_RATE8, X_TPUT, N_X };
static const struct xdef xdefs[N_X] = {
	[X_RTT8] = { "rtt8", "round trip 8 B", K_RTT, 8 },
	[X_RTT64] = { "rtt64", "round trip 64 B", K_RTT, 64 },
	[X_RTT4K] = { "rtt4k", "round trip 4 KiB", K_RTT, 4096 },
	[X_RATE8] = { "rate8", "8 B one-way messages", K_RATE, 8 },
	[X_TPUT] = { "tput", "64 KiB writes", K_TPUT, CHUNK },
};

enum side { S_KERN, S_IPCD, N_SIDE };
static const char *const side_name[N_SIDE] = { "kernel", "ipcd" };

static struct {
	const char *host;
	unsigned int port;
	bool quick;
	unsigned int rounds;
	const char *json;
	const char *sock;		/* the local monitor's; NULL: the default */
	const char *preload, *ipcdctl;
	bool want[N_X];
	uint64_t rtt_count, rtt_warm, rate_count, tput_chunks;
	unsigned int timeout_s;
	unsigned int wait_s;
	bool keep;
	bool ib;
	uint64_t ib_iters;
	const char *ib_args;
} o = { .port = DEFAULT_PORT, .preload = IPCD_PRELOAD_LIB, .ipcdctl = IPCDCTL_BIN };

struct cell {
	bool ran;
	bool failed;
	char why[ERR_LEN];		/* the first failure */
	uint32_t *s;			/* rtt: samples, pooled over the rounds */
	uint64_t n, cap;
	double runs[MAX_ROUNDS];	/* rate: messages/s; tput: MB/s */
	unsigned int nruns;
	unsigned int blocks, blocks_ok;
	uint64_t conns, remote;		/* ipcd: connections made, remote_out growth seen */
	/* results */
	double p50, p99, min, max, med, rmin, rmax;
};

static struct cell cells[N_X][N_SIDE];

struct brec {
	unsigned int round, x;
	enum side side;
	bool ok;
	bool have_delta;
	uint64_t delta;
	double figure;			/* rtt: block p50 in us; rate: M msg/s; tput: MB/s */
	char why[ERR_LEN];
};

static struct brec *brecs;
static unsigned int n_brecs;
static char **env_kernel, **env_ipcd;
static char self_exe[PATH_MAX];
static char tmpdir[64];
static unsigned int srv_pid, srv_preloaded;

static __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	ipcd_bench_vsay("ipcd-bench-rdma", fmt, ap);
	va_end(ap);
	exit(1);
}

static __attribute__((format(printf, 1, 2))) void progress(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ipcd_bench_vsay("ipcd-bench-rdma", fmt, ap);
	va_end(ap);
}

/* environ without LD_PRELOAD (and IPCD_SOCKET when @ipcd), plus ours when @ipcd. */
static char **env_build(bool ipcd)
{
	extern char **environ;
	size_t n = 0, k = 0, i;
	char **e;

	while (environ[n])
		n++;
	e = calloc(n + 3, sizeof(*e));
	if (!e)
		die("out of memory");
	for (i = 0; i < n; i++) {
		if (!strncmp(environ[i], "LD_PRELOAD=", 11))
			continue;
		if (ipcd && o.sock && !strncmp(environ[i], "IPCD_SOCKET=", 12))
			continue;
		e[k++] = environ[i];
	}
	if (ipcd) {
		size_t len = strlen(o.preload) + 16;

		e[k] = malloc(len);
		if (!e[k])
			die("out of memory");
		snprintf(e[k++], len, "LD_PRELOAD=%s", o.preload);
		if (o.sock) {
			len = strlen(o.sock) + 16;
			e[k] = malloc(len);
			if (!e[k])
				die("out of memory");
			snprintf(e[k++], len, "IPCD_SOCKET=%s", o.sock);
		}
	}
	e[k] = NULL;
	return e;
}

/* Wait for @pid until @until (then SIGKILL it). Its wait status, or -1 if it was killed. */
static int reap(pid_t pid, uint64_t until)
{
	int st = 0;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return st;
		if (r < 0 && errno != EINTR)
			return -1;
		if (ipcd_now_ns() >= until) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			return -1;
		}
		usleep(2000);
	}
}

/*
 * Run @argv with @env (stdout and stderr to @out, or with @log: fd 3 to @out
 * and stdout/stderr to the file @log) for at most @timeout_ns. The wait
 * status, -1 on timeout.
 */
static int run_child(const char *const argv[], char **env, struct ipcd_bench_buf *out,
		     const char *log, uint64_t timeout_ns)
{
	uint64_t until = ipcd_now_ns() + timeout_ns;
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	pid = ipcd_bench_fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int lfd = log ? open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGPIPE, SIG_DFL);
		if (nul < 0 || dup2(nul, 0) < 0)
			_exit(127);
		if (log) {
			/* dup2 onto itself would keep O_CLOEXEC: clear it by hand then. */
			if (lfd < 0 || (p[1] == REPORT_FD ? fcntl(p[1], F_SETFD, 0) :
					dup2(p[1], REPORT_FD)) < 0 || dup2(lfd, 1) < 0 ||
			    dup2(lfd, 2) < 0)
				_exit(127);
		} else if (dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0) {
			_exit(127);
		}
		ipcd_bench_exec(argv, env);
	}
	close(p[1]);
	if (ipcd_bench_drain(p[0], out, until, 200) == -ENOMEM)
		die("out of memory");
	close(p[0]);
	return reap(pid, ipcd_now_ns() >= until ? ipcd_now_ns() : until);
}

/* ---- the monitor's counters (ipcdctl) -------------------------------------------- */

struct mctr {
	uint64_t remote_out, remote_in, created;
	unsigned int hosts, self, up;
};

static int ipcdctl(const char *what, bool json, struct ipcd_bench_buf *out, char *err, size_t len)
{
	const char *argv[7];
	int n = 0, st;

	argv[n++] = o.ipcdctl;
	if (o.sock) {
		argv[n++] = "--socket";
		argv[n++] = o.sock;
	}
	if (json)
		argv[n++] = "--json";
	argv[n++] = what;
	argv[n] = NULL;
	st = run_child(argv, env_kernel, out, NULL, 10 * NS_PER_S);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		out->p[strcspn(out->p, "\n")] = '\0';
		snprintf(err, len, "%s %s%s %s: %.200s", o.ipcdctl, json ? "--json " : "", what,
			 st == -1 ? "timed out" : "failed", out->p);
		return -1;
	}
	return 0;
}

static int counters(struct mctr *m, char *err, size_t len)
{
	struct ipcd_bench_buf out = { 0 };
	const char *conn, *cend, *cl, *clend;

	memset(m, 0, sizeof(*m));
	if (ipcdctl("counters", true, &out, err, len)) {
		free(out.p);
		return -1;
	}
	conn = ipcd_bench_json_obj(out.p, "connections", &cend);
	if (!conn || !ipcd_bench_json_key(conn, cend, "remote_out")) {
		snprintf(err, len, "ipcdctl --json counters has no connections.remote_out (a "
			 "monitor without issue #7?): %.120s", out.p);
		free(out.p);
		return -1;
	}
	m->remote_out = ipcd_bench_json_u64(conn, cend, "remote_out");
	m->remote_in = ipcd_bench_json_u64(conn, cend, "remote_in");
	m->created = ipcd_bench_json_u64(conn, cend, "created");
	cl = ipcd_bench_json_obj(out.p, "cluster", &clend);
	if (cl) {
		m->hosts = (unsigned int)ipcd_bench_json_u64(cl, clend, "hosts");
		m->self = (unsigned int)ipcd_bench_json_u64(cl, clend, "self");
		m->up = (unsigned int)ipcd_bench_json_u64(cl, clend, "up");
	}
	free(out.p);
	return 0;
}

/* ---- one block -------------------------------------------------------------------- */

static bool preload_usable(char *why, size_t len)
{
	if (access(o.preload, R_OK)) {
		snprintf(why, len, "%s: %s", o.preload, strerror(errno));
		return false;
	}
	return true;
}

static void cell_fail(struct cell *c, const char *why)
{
	if (!c->failed)
		snprintf(c->why, sizeof(c->why), "%s", why);
	c->failed = true;
}

static void cell_add_sample(struct cell *c, uint32_t v)
{
	if (c->n == c->cap) {
		uint64_t cap = c->cap ? 2 * c->cap : 4096;
		uint32_t *s = realloc(c->s, cap * sizeof(*s));

		if (!s)
			die("out of memory");
		c->s = s;
		c->cap = cap;
	}
	c->s[c->n++] = v;
}

/* Nearest-rank percentile of sorted @s. */
static double pct(const uint32_t *s, uint64_t n, double p)
{
	uint64_t i = (uint64_t)ceil(p / 100.0 * (double)n);

	return (double)s[i ? i - 1 : 0];
}

/*
 * One block: role process, one connection, test @x on side @sd. Results go
 * to the cell (rtt samples, rate or MB/s) unless it failed.
 */
static void run_block(unsigned int round, unsigned int x, enum side sd)
{
	const struct xdef *d = &xdefs[x];
	struct cell *c = &cells[x][sd];
	struct brec *b = &brecs[n_brecs++];
	char size[16], count[24], warm[24], port[8], tmo[12], log[128], why[ERR_LEN] = "";
	char st_str[96], head[ERR_LEN];
	const char *argv[20];
	struct mctr before, after;
	struct ipcd_bench_buf out = { 0 };
	uint64_t nrtt = 0, got_rtt = 0, a1 = 0, a2 = 0;
	uint32_t *blk = NULL;
	bool hello = false, okline = false, result = false;
	int preloaded = -1, n = 0, st;
	char *line, *save = NULL;

	memset(b, 0, sizeof(*b));
	b->round = round;
	b->x = x;
	b->side = sd;
	c->ran = true;
	c->blocks++;
	snprintf(log, sizeof(log), "%s/r%u-%s-%s.log", tmpdir, round + 1, d->name, side_name[sd]);
	if (sd == S_IPCD && counters(&before, why, sizeof(why)))
		goto failed;
	snprintf(size, sizeof(size), "%u", d->size);
	snprintf(count, sizeof(count), "%" PRIu64, d->kind == K_RTT ? o.rtt_count :
		 d->kind == K_RATE ? o.rate_count : o.tput_chunks);
	snprintf(warm, sizeof(warm), "%" PRIu64, d->kind == K_RTT ? o.rtt_warm : 0);
	snprintf(port, sizeof(port), "%u", o.port);
	snprintf(tmo, sizeof(tmo), "%u", o.timeout_s);
	argv[n++] = self_exe;
	argv[n++] = "role";
	argv[n++] = "--test";
	argv[n++] = d->kind == K_RTT ? "ping" : d->kind == K_RATE ? "stream" : "tput";
	argv[n++] = "--host";
	argv[n++] = o.host;
	argv[n++] = "--port";
	argv[n++] = port;
	argv[n++] = "--size";
	argv[n++] = size;
	argv[n++] = "--count";
	argv[n++] = count;
	argv[n++] = "--warm";
	argv[n++] = warm;
	argv[n++] = "--timeout";
	argv[n++] = tmo;
	argv[n] = NULL;
	st = run_child(argv, sd == S_IPCD ? env_ipcd : env_kernel, &out, log,
		       (uint64_t)(o.timeout_s + 15) * NS_PER_S);
	for (line = strtok_r(out.p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned int pid, pre;

		if (sscanf(line, "hello %u %d", &pid, &preloaded) == 2) {
			hello = true;
		} else if (sscanf(line, "server %u %u", &pid, &pre) == 2) {
			srv_pid = pid;
			srv_preloaded = pre;
		} else if (sscanf(line, "rtt %" SCNu64, &nrtt) == 1) {
			result = true;
			blk = calloc(nrtt ? nrtt : 1, sizeof(*blk));
			if (!blk)
				die("out of memory");
		} else if (blk && got_rtt < nrtt && line[0] >= '0' && line[0] <= '9') {
			blk[got_rtt++] = (uint32_t)strtoul(line, NULL, 10);
		} else if (sscanf(line, "rate %" SCNu64 " %" SCNu64, &a1, &a2) == 2 ||
			   sscanf(line, "tput %" SCNu64 " %" SCNu64, &a1, &a2) == 2) {
			result = true;
		} else if (!strcmp(line, "ok")) {
			okline = true;
		}
	}
	free(out.p);
	ipcd_bench_describe_status(st, st_str, sizeof(st_str));
	ipcd_bench_log_head(log, 4, head, sizeof(head));
	if (st != 0 || !okline || !result) {
		snprintf(why, sizeof(why), "the %s role %s%s%.280s", side_name[sd], st_str,
			 head[0] ? ": " : "", head);
		goto failed;
	}
	if (!hello || preloaded != (sd == S_IPCD)) {
		snprintf(why, sizeof(why), "the %s role %s libipcd.so mapped (LD_PRELOAD=%s)",
			 side_name[sd], preloaded == 1 ? "had" : "did not have",
			 sd == S_IPCD ? o.preload : "unset");
		goto failed;
	}
	if (d->kind == K_RTT && (got_rtt != nrtt || !nrtt)) {
		snprintf(why, sizeof(why), "the role reported %" PRIu64 " of %" PRIu64 " samples",
			 got_rtt, nrtt);
		goto failed;
	}
	if (d->kind != K_RTT && (!a1 || !a2)) {
		snprintf(why, sizeof(why), "the role reported no figure");
		goto failed;
	}
	if (sd == S_IPCD) {
		if (counters(&after, why, sizeof(why)))
			goto failed;
		b->have_delta = true;
		b->delta = after.remote_out - before.remote_out;
		c->conns++;
		c->remote += b->delta;
		if (b->delta < 1) {
			bool local = after.created > before.created;

			snprintf(why, sizeof(why), "NOT remote: connections.remote_out +%" PRIu64
				 " during the block, which made 1 connection: %s (the server %s "
				 "preloaded; cluster links up: %u before the block, %u after)%s%.100s",
				 b->delta, local ? "the monitor made a same-host connection (is "
				 "--host an address of this host?)" : "it went over kernel TCP",
				 srv_preloaded ? "is" : "is NOT", before.up, after.up,
				 head[0] ? "; the role said: " : "", head);
			goto failed;
		}
	}
	/* Good: keep the figures. */
	if (d->kind == K_RTT) {
		uint64_t i;

		for (i = 0; i < nrtt; i++)
			cell_add_sample(c, blk[i]);
		qsort(blk, nrtt, sizeof(*blk), ipcd_bench_cmp_u32);
		b->figure = pct(blk, nrtt, 50) / 1e3;
	} else if (d->kind == K_RATE) {
		b->figure = (double)a1 / ((double)a2 / 1e9) / 1e6;
		c->runs[c->nruns++] = b->figure * 1e6;
	} else {
		b->figure = (double)a1 / ((double)a2 / 1e9) / 1e6;
		c->runs[c->nruns++] = b->figure;
	}
	free(blk);
	b->ok = true;
	c->blocks_ok++;
	progress("round %u/%u %-6s %-6s ok: %s%.2f%s", round + 1, o.rounds, d->name,
		 side_name[sd], d->kind == K_RTT ? "p50 " : "", b->figure,
		 d->kind == K_RTT ? " us" : d->kind == K_RATE ? " M msg/s" : " MB/s");
	return;
failed:
	free(blk);
	snprintf(b->why, sizeof(b->why), "%s", why);
	cell_fail(c, why);
	progress("round %u/%u %-6s %-6s FAILED: %s", round + 1, o.rounds, d->name, side_name[sd],
		 why);
}

/* ---- the hello probe -------------------------------------------------------------- */

static void hello_probe(void)
{
	uint64_t until = ipcd_now_ns() + (uint64_t)o.wait_s * NS_PER_S;
	char err[ERR_LEN];
	struct wire_reply r;
	struct addr a;
	int fd;

	if (addr_make(o.host, o.port, &a))
		die("bad --host %s or --port %u", o.host, o.port);
	for (;;) {
		if (!open_test(&a, W_HELLO, 0, 0, 10, &fd, &r, err, sizeof(err)))
			break;
		if (ipcd_now_ns() >= until)
			die("the server %s port %u: %s (waited %u s; start `ipcd-run ipcd-bench-rdma "
			    "server` there, or --wait longer)", o.host, o.port, err, o.wait_s);
		usleep(250000);
	}
	close(fd);
	srv_pid = r.pid;
	srv_preloaded = r.flags & REPLY_PRELOADED;
}

/* ---- output ------------------------------------------------------------------------ */

static void loadavg(char *b, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "re");
	double l1, l5, l15;

	snprintf(b, len, "unknown");
	if (f && fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) == 3)
		snprintf(b, len, "%.2f %.2f %.2f", l1, l5, l15);
	if (f)
		fclose(f);
}

static void cpu_model(char *b, size_t len)
{
	if (!ipcd_bench_cpuinfo("model name", b, len))
		snprintf(b, len, "unknown");
}

static void finish_cells(void)
{
	unsigned int x, sd;

	for (x = 0; x < N_X; x++) {
		for (sd = 0; sd < N_SIDE; sd++) {
			struct cell *c = &cells[x][sd];

			if (!c->ran || c->failed)
				continue;
			if (xdefs[x].kind == K_RTT && c->n) {
				qsort(c->s, c->n, sizeof(*c->s), ipcd_bench_cmp_u32);
				c->p50 = pct(c->s, c->n, 50);
				c->p99 = pct(c->s, c->n, 99);
				c->min = c->s[0];
				c->max = c->s[c->n - 1];
			} else if (c->nruns) {
				double r[MAX_ROUNDS];

				memcpy(r, c->runs, c->nruns * sizeof(r[0]));
				qsort(r, c->nruns, sizeof(r[0]), ipcd_bench_cmp_dbl);
				c->med = c->nruns % 2 ? r[c->nruns / 2] :
					(r[c->nruns / 2 - 1] + r[c->nruns / 2]) / 2;
				c->rmin = r[0];
				c->rmax = r[c->nruns - 1];
			}
		}
	}
}

static bool cell_good(unsigned int x, enum side sd)
{
	const struct cell *c = &cells[x][sd];

	return c->ran && !c->failed && (xdefs[x].kind == K_RTT ? c->n > 0 : c->nruns > 0);
}

static void fmt_cell(unsigned int x, enum side sd, double v, char *b, size_t len)
{
	const struct cell *c = &cells[x][sd];

	if (!c->ran)
		snprintf(b, len, "-");
	else if (!cell_good(x, sd))
		snprintf(b, len, "FAILED");
	else if (v >= 1000)
		snprintf(b, len, "%.0f", v);
	else
		snprintf(b, len, "%.2f", v);
}

static void print_row(const char *label, unsigned int x, double k, double i, bool higher_better)
{
	char kb[24], ib[24], rb[24];

	fmt_cell(x, S_KERN, k, kb, sizeof(kb));
	fmt_cell(x, S_IPCD, i, ib, sizeof(ib));
	if (cell_good(x, S_KERN) && cell_good(x, S_IPCD) && k > 0 && i > 0)
		snprintf(rb, sizeof(rb), "%.2fx", higher_better ? i / k : k / i);
	else
		snprintf(rb, sizeof(rb), "-");
	printf("%-32s %14s %14s %12s\n", label, kb, ib, rb);
}

static void print_table(void)
{
	unsigned int x;

	printf("\n%-32s %14s %14s %12s\n", "test", "kernel (TCP)", "ipcd (RDMA)", "ratio");
	printf("%-32s %14s %14s %12s\n", "", "", "", "(>1: ipcd");
	printf("%-32s %14s %14s %12s\n", "", "", "", "is better)");
	for (x = 0; x < N_X; x++) {
		const struct xdef *d = &xdefs[x];
		const struct cell *k = &cells[x][S_KERN], *i = &cells[x][S_IPCD];
		char label[64];

		if (!o.want[x])
			continue;
		if (d->kind == K_RTT) {
			snprintf(label, sizeof(label), "%s p50 (us)", d->label);
			print_row(label, x, k->p50 / 1e3, i->p50 / 1e3, false);
			snprintf(label, sizeof(label), "%s p99 (us)", d->label);
			print_row(label, x, k->p99 / 1e3, i->p99 / 1e3, false);
		} else if (d->kind == K_RATE) {
			snprintf(label, sizeof(label), "%s (M msg/s)", d->label);
			print_row(label, x, k->med / 1e6, i->med / 1e6, true);
		} else {
			snprintf(label, sizeof(label), "%s (MB/s)", d->label);
			print_row(label, x, k->med, i->med, true);
		}
	}
	printf("ratio: kernel/ipcd for round trips, ipcd/kernel for messages/s and MB/s; "
	       "round trips\npooled over the rounds (per-iteration CLOCK_MONOTONIC), rates the "
	       "median of the rounds' blocks\n");
}

/* ---- ib_write_lat ------------------------------------------------------------------ */

struct ibres {
	bool asked, found, ran, ok;
	char cmd[512];
	char why[ERR_LEN];
	double typical_us, avg_us;
	double ratio;
};

static struct ibres ib;

static bool find_in_path(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");
	char copy[4096], *dir, *save = NULL;

	snprintf(copy, sizeof(copy), "%s:/usr/bin:/usr/local/bin", path ? path : "");
	for (dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/%s", *dir ? dir : ".", name);
		if (access(out, X_OK) == 0)
			return true;
	}
	return false;
}

/*
 * ib_write_lat's summary: a header line naming the columns (t_typical[usec],
 * t_avg[usec], ...) and a line of figures under it, whose first column is
 * the size.
 */
static int ib_parse(char *text, double *typical, double *avg, char *why, size_t len)
{
	int i_typ = -1, i_avg = -1, col;
	bool usec = true;
	char *line, *save = NULL;
	bool header = false;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *tok, *s2 = NULL;
		double v[32];

		if (!header) {
			if (!strstr(line, "t_typical"))
				continue;
			header = true;
			for (col = 0, tok = strtok_r(line, " \t", &s2); tok && col < 32;
			     tok = strtok_r(NULL, " \t", &s2), col++) {
				if (!strncmp(tok, "t_typical", 9)) {
					i_typ = col;
					usec = usec && strstr(tok, "usec");
				} else if (!strncmp(tok, "t_avg", 5)) {
					i_avg = col;
					usec = usec && strstr(tok, "usec");
				}
			}
			if (i_typ < 0 || i_avg < 0 || !usec) {
				snprintf(why, len, "its header has no t_typical[usec] / t_avg[usec] "
					 "columns (-C given?)");
				return -1;
			}
			continue;
		}
		for (col = 0, tok = strtok_r(line, " \t", &s2); tok && col < 32;
		     tok = strtok_r(NULL, " \t", &s2), col++) {
			char *end;

			v[col] = strtod(tok, &end);
			if (end == tok)
				break;
		}
		if (col > i_typ && col > i_avg && v[0] == 8) {
			*typical = v[i_typ];
			*avg = v[i_avg];
			return 0;
		}
	}
	snprintf(why, len, header ? "no line of figures for 8 bytes under its header" :
		 "no t_typical column in its output");
	return -1;
}

static void run_ib_write_lat(void)
{
	char exe[PATH_MAX], iters[24], args[512], *tok, *save = NULL;
	const char *argv[40];
	struct ipcd_bench_buf out = { 0 };
	size_t used;
	int n = 0, st;

	ib.asked = true;
	if (!find_in_path("ib_write_lat", exe, sizeof(exe))) {
		snprintf(ib.why, sizeof(ib.why), "ib_write_lat is not installed (Debian package "
			 "perftest): comparison skipped");
		return;
	}
	ib.found = true;
	snprintf(iters, sizeof(iters), "%" PRIu64, o.ib_iters);
	argv[n++] = exe;
	argv[n++] = "-s";
	argv[n++] = "8";
	argv[n++] = "-n";
	argv[n++] = iters;
	snprintf(args, sizeof(args), "%s", o.ib_args ? o.ib_args : "");
	for (tok = strtok_r(args, " \t", &save); tok && n < 36; tok = strtok_r(NULL, " \t", &save))
		argv[n++] = tok;
	argv[n++] = o.host;
	argv[n] = NULL;
	used = 0;
	for (int i = 0; i < n && used < sizeof(ib.cmd); i++)
		used += (size_t)snprintf(ib.cmd + used, sizeof(ib.cmd) - used, "%s%s", i ? " " : "",
					 i ? argv[i] : "ib_write_lat");
	progress("running %s", ib.cmd);
	st = run_child(argv, env_kernel, &out, NULL, (60 + o.ib_iters / 1000) * NS_PER_S);
	ib.ran = true;
	if (st != 0) {
		char s[96];
		char *last = out.p;

		ipcd_bench_describe_status(st, s, sizeof(s));
		while (strlen(last) > 160 && strchr(last, '\n'))
			last = strchr(last, '\n') + 1;
		for (char *q = last; *q; q++)
			if (*q == '\n')
				*q = ' ';
		snprintf(ib.why, sizeof(ib.why), "ib_write_lat %s (was `ib_write_lat -s 8 -n %s"
			 "%s%s` started on the server host?): %.160s", s, iters,
			 o.ib_args ? " " : "", o.ib_args ? o.ib_args : "", last);
		free(out.p);
		return;
	}
	if (ib_parse(out.p, &ib.typical_us, &ib.avg_us, ib.why, sizeof(ib.why)) == 0 &&
	    ib.typical_us > 0) {
		ib.ok = true;
		if (cell_good(X_RTT8, S_IPCD))
			ib.ratio = (cells[X_RTT8][S_IPCD].p50 / 1e3) / (2 * ib.typical_us);
	} else if (!ib.why[0]) {
		snprintf(ib.why, sizeof(ib.why), "t_typical is 0");
	}
	free(out.p);
}

static void print_ib(void)
{
	if (!ib.asked)
		return;
	printf("\n== ib_write_lat (perftest): the NIC's own round trip ==\n");
	if (!ib.ok) {
		printf("%s: %s\n", ib.ran ? "FAILED" : "skipped", ib.why);
		return;
	}
	printf("command: %s   (server host: ib_write_lat -s 8 -n %" PRIu64 "%s%s)\n", ib.cmd,
	       o.ib_iters, o.ib_args ? " " : "", o.ib_args ? o.ib_args : "");
	printf("t_typical %.2f us, t_avg %.2f us: perftest's latency tests time the round trip "
	       "and report half of it (one-way)\n", ib.typical_us, ib.avg_us);
	printf("ib_write_lat round trip = 2 x t_typical = %.2f us\n", 2 * ib.typical_us);
	if (cell_good(X_RTT8, S_IPCD))
		printf("ratio = ipcd 8 B round trip p50 / (2 x t_typical) = %.2f us / %.2f us = "
		       "%.2f   (issue #7 target <= 1.5: %s)\n", cells[X_RTT8][S_IPCD].p50 / 1e3,
		       2 * ib.typical_us, ib.ratio, ib.ratio <= 1.5 ? "MET" : "NOT MET");
	else
		printf("ratio: n/a (no ipcd 8 B round trip in this run)\n");
}

/* ---- JSON --------------------------------------------------------------------------- */

static void json_num(FILE *f, bool ok, double v)
{
	if (ok && isfinite(v) && v == floor(v) && fabs(v) < 1e15)
		fprintf(f, "%.0f", v);
	else if (ok && isfinite(v))
		fprintf(f, "%.6g", v);
	else
		fputs("null", f);
}

/* ,"@key":@v, or null when !@ok (a failed or missing figure is never a number). */
static void json_field(FILE *f, const char *key, bool ok, double v)
{
	fprintf(f, ",\"%s\":", key);
	json_num(f, ok, v);
}

/* ,"error":"@why", or null when nothing failed (@why NULL). */
static void json_error(FILE *f, const char *why)
{
	fputs(",\"error\":", f);
	if (why)
		ipcd_bench_json_str(f, why);
	else
		fputs("null", f);
}

static void write_json(const char *date, const char *la0, const char *la1,
		       const struct mctr *m0, bool failed)
{
	FILE *f = fopen(o.json, "we");
	unsigned int x, sd, i;
	struct utsname u;
	char cpu[256];

	if (!f) {
		fprintf(stderr, "ipcd-bench-rdma: %s: %s\n", o.json, strerror(errno));
		return;
	}
	uname(&u);
	cpu_model(cpu, sizeof(cpu));
	fprintf(f, "{\"meta\":{\"tool\":\"ipcd-bench-rdma\",\"date\":");
	ipcd_bench_json_str(f, date);
	fprintf(f, ",\"host\":");
	ipcd_bench_json_str(f, u.nodename);
	fprintf(f, ",\"kernel\":");
	ipcd_bench_json_str(f, u.release);
	fprintf(f, ",\"cpu\":");
	ipcd_bench_json_str(f, cpu);
	fprintf(f, ",\"nproc\":%ld,\"server\":{\"host\":", sysconf(_SC_NPROCESSORS_ONLN));
	ipcd_bench_json_str(f, o.host);
	fprintf(f, ",\"port\":%u,\"pid\":%u,\"preloaded\":%s},\"monitor_socket\":", o.port,
		srv_pid, srv_preloaded ? "true" : "false");
	ipcd_bench_json_str(f, o.sock ? o.sock : "(default)");
	fprintf(f, ",\"preload\":");
	ipcd_bench_json_str(f, o.preload);
	fprintf(f, ",\"quick\":%s,\"rounds\":%u,\"rtt_iterations\":%" PRIu64 ",\"rtt_warmup\":%"
		PRIu64 ",\"rate_messages\":%" PRIu64 ",\"tput_bytes\":%" PRIu64
		",\"loadavg_start\":", o.quick ? "true" : "false", o.rounds, o.rtt_count,
		o.rtt_warm, o.rate_count, o.tput_chunks * CHUNK);
	ipcd_bench_json_str(f, la0);
	fprintf(f, ",\"loadavg_end\":");
	ipcd_bench_json_str(f, la1);
	fprintf(f, ",\"cluster\":{\"hosts\":%u,\"self\":%u,\"up\":%u}},\"tests\":[", m0->hosts,
		m0->self, m0->up);
	for (x = 0, i = 0; x < N_X; x++) {
		const struct xdef *d = &xdefs[x];

		if (!o.want[x])
			continue;
		fprintf(f, "%s{\"name\":\"%s\",\"kind\":\"%s\",\"size\":%u", i++ ? "," : "",
			d->name, d->kind == K_RTT ? "rtt" : d->kind == K_RATE ? "rate" : "tput",
			d->size);
		for (sd = 0; sd < N_SIDE; sd++) {
			const struct cell *c = &cells[x][sd];
			bool good = cell_good(x, (enum side)sd);

			fprintf(f, ",\"%s\":{\"ok\":%s,\"blocks\":%u,\"blocks_ok\":%u", side_name[sd],
				good ? "true" : "false", c->blocks, c->blocks_ok);
			if (sd == S_IPCD)
				fprintf(f, ",\"connections\":%" PRIu64 ",\"remote_out_growth\":%"
					PRIu64, c->conns, c->remote);
			json_error(f, c->failed ? c->why : NULL);
			if (d->kind == K_RTT) {
				fprintf(f, ",\"samples\":%" PRIu64, good ? c->n : 0);
				json_field(f, "p50_ns", good, c->p50);
				json_field(f, "p99_ns", good, c->p99);
				json_field(f, "min_ns", good, c->min);
				json_field(f, "max_ns", good, c->max);
			} else {
				json_field(f, d->kind == K_RATE ? "messages_per_s" : "mb_per_s",
					   good, c->med);
				json_field(f, "min", good, c->rmin);
				json_field(f, "max", good, c->rmax);
				fprintf(f, ",\"runs\":[");
				for (unsigned int r = 0; good && r < c->nruns; r++)
					fprintf(f, "%s%.6g", r ? "," : "", c->runs[r]);
				fprintf(f, "]");
			}
			fprintf(f, "}");
		}
		{
			bool both = cell_good(x, S_KERN) && cell_good(x, S_IPCD);
			const struct cell *k = &cells[x][S_KERN], *p = &cells[x][S_IPCD];

			if (d->kind == K_RTT) {
				json_field(f, "ratio_p50", both && p->p50 > 0, k->p50 / p->p50);
				json_field(f, "ratio_p99", both && p->p99 > 0, k->p99 / p->p99);
			} else {
				json_field(f, "ratio", both && k->med > 0, p->med / k->med);
			}
		}
		fprintf(f, "}");
	}
	fprintf(f, "],\"blocks\":[");
	for (i = 0; i < n_brecs; i++) {
		const struct brec *b = &brecs[i];

		fprintf(f, "%s{\"round\":%u,\"test\":\"%s\",\"side\":\"%s\",\"ok\":%s",
			i ? "," : "", b->round + 1, xdefs[b->x].name, side_name[b->side],
			b->ok ? "true" : "false");
		json_field(f, "figure", b->ok, b->figure);
		fprintf(f, ",\"remote_out_growth\":");
		if (b->have_delta)
			fprintf(f, "%" PRIu64, b->delta);
		else
			fputs("null", f);
		json_error(f, b->ok ? NULL : b->why);
		fprintf(f, "}");
	}
	fprintf(f, "],\"ib_write_lat\":");
	if (!ib.asked) {
		fputs("null", f);
	} else {
		fprintf(f, "{\"ok\":%s,\"command\":", ib.ok ? "true" : "false");
		ipcd_bench_json_str(f, ib.cmd);
		json_error(f, ib.ok ? NULL : ib.why);
		json_field(f, "t_typical_us", ib.ok, ib.typical_us);
		json_field(f, "t_avg_us", ib.ok, ib.avg_us);
		json_field(f, "rtt_us", ib.ok, 2 * ib.typical_us);
		fprintf(f, ",\"formula\":\"ipcd rtt8 p50 / (2 * t_typical)\"");
		json_field(f, "ratio", ib.ok && ib.ratio > 0, ib.ratio);
		fprintf(f, ",\"target\":1.5}");
	}
	fprintf(f, ",\"failed\":%s}\n", failed ? "true" : "false");
	if (fclose(f))
		fprintf(stderr, "ipcd-bench-rdma: %s: %s\n", o.json, strerror(errno));
}

/* ---- main ---------------------------------------------------------------------------- */

static void client_usage(FILE *f)
{
	fprintf(f,
		"usage: ipcd-bench-rdma client --host ADDR [--port P] [--quick] [--rounds N]\n"
		"         [--json FILE] [--socket MONITOR_SOCK] [--tests LIST] [--iters N]\n"
		"         [--timeout S] [--wait S] [--preload LIB] [--ipcdctl PATH] [--keep]\n"
		"         [--ib-write-lat] [--ib-iters N] [--ib-args 'ARGS']\n"
		"  --host ADDR      the server host's cluster address (its `peer` line's)\n"
		"  --port P         the server's port (default %u)\n"
		"  --quick          few iterations, one round: a smoke run\n"
		"  --rounds N       kernel/ipcd block pairs per test (default 5, quick 1)\n"
		"  --json FILE      write every figure (default bench-rdma.json)\n"
		"  --socket PATH    this host's monitor (default $IPCD_SOCKET, else ipcdctl's)\n"
		"  --tests LIST     any of rtt8,rtt64,rtt4k,rate8,tput (default all)\n"
		"  --iters N        round trips per rtt block (default 20000, quick 300)\n"
		"  --timeout S      one block's limit (default 300, quick 120)\n"
		"  --wait S         how long to wait for the server to answer (default 30)\n"
		"  --preload LIB    libipcd.so for the ipcd blocks (default the build tree's)\n"
		"  --ipcdctl PATH   (default the build tree's)\n"
		"  --keep           keep the blocks' logs (in /tmp/ipcd-bench-rdma-*)\n"
		"  --ib-write-lat   also run `ib_write_lat -s 8 -n N [ARGS] ADDR` against an\n"
		"                   `ib_write_lat -s 8 -n N [ARGS]` started on the server host\n"
		"  --ib-iters N     its -n (default 10000, quick 1000)\n"
		"  --ib-args ARGS   more ib_write_lat options, both sides (e.g. '-d mlx5_0 -x 3')\n"
		"Exit status: 0 every block ran and every ipcd block was remote; 1 otherwise;\n"
		"2 usage.\n", DEFAULT_PORT);
}

static void parse_tests(const char *list)
{
	char copy[256], *tok, *save = NULL;
	unsigned int x;

	memset(o.want, 0, sizeof(o.want));
	snprintf(copy, sizeof(copy), "%s", list);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (x = 0; x < N_X; x++)
			if (!strcmp(tok, xdefs[x].name))
				break;
		if (x == N_X) {
			fprintf(stderr, "ipcd-bench-rdma: unknown test '%s'\n", tok);
			client_usage(stderr);
			exit(2);
		}
		o.want[x] = true;
	}
}

static int client_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "quick", no_argument, NULL, 'q' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "json", required_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' },
		{ "tests", required_argument, NULL, 't' },
		{ "iters", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "wait", required_argument, NULL, 'w' },
		{ "preload", required_argument, NULL, 'P' },
		{ "ipcdctl", required_argument, NULL, 'C' },
		{ "keep", no_argument, NULL, 'k' },
		{ "ib-write-lat", no_argument, NULL, 'I' },
		{ "ib-iters", required_argument, NULL, 'N' },
		{ "ib-args", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned int rounds = 0, x, r, timeout = 0, k, blocks = 0, failed_blocks = 0;
	uint64_t iters = 0, ib_iters = 0;
	char date[64], la0[64], la1[64], cpu[256], why[ERR_LEN];
	struct mctr m0, m1;
	bool have_m0, failed = false;
	struct utsname u;
	time_t now;
	ssize_t sl;
	int c;

	for (x = 0; x < N_X; x++)
		o.want[x] = true;
	o.json = "bench-rdma.json";
	o.wait_s = 30;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'h': o.host = optarg; break;
		case 'p': o.port = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'q': o.quick = true; break;
		case 'r': rounds = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'j': o.json = optarg; break;
		case 's': o.sock = optarg; break;
		case 't': parse_tests(optarg); break;
		case 'n': iters = strtoull(optarg, NULL, 10); break;
		case 'T': timeout = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'w': o.wait_s = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'P': o.preload = optarg; break;
		case 'C': o.ipcdctl = optarg; break;
		case 'k': o.keep = true; break;
		case 'I': o.ib = true; break;
		case 'N': ib_iters = strtoull(optarg, NULL, 10); break;
		case 'A': o.ib_args = optarg; break;
		case 'H': client_usage(stdout); return 0;
		default: client_usage(stderr); return 2;
		}
	}
	if (optind != argc || !o.host || rounds > MAX_ROUNDS || (iters && iters < 2) ||
	    iters > MAX_COUNT || (ib_iters && ib_iters < 5)) {
		client_usage(stderr);
		return 2;
	}
	if (!o.sock) {
		const char *e = getenv("IPCD_SOCKET");

		o.sock = e && *e ? e : NULL;
	}
	o.rounds = rounds ? rounds : o.quick ? 1 : 5;
	o.rtt_count = iters ? iters : o.quick ? 300 : 20000;
	o.rtt_warm = o.rtt_count / 10 < 200 ? o.rtt_count / 10 : 200;
	o.rate_count = o.quick ? 20000 : 2000000;
	o.tput_chunks = o.quick ? 64 : 16384;	/* 4 MiB, 1 GiB */
	o.timeout_s = timeout ? timeout : o.quick ? 120 : 300;
	o.ib_iters = ib_iters ? ib_iters : o.quick ? 1000 : 10000;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (self_preloaded()) {
		fprintf(stderr, "ipcd-bench-rdma: run the client without ipcd-run/LD_PRELOAD: it "
			"preloads its own children for the ipcd blocks\n");
		return 2;
	}
	if (!preload_usable(why, sizeof(why))) {
		fprintf(stderr, "ipcd-bench-rdma: the preload library: %s (--preload LIB)\n", why);
		return 2;
	}
	sl = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (sl <= 0 || sl >= (ssize_t)sizeof(self_exe) - 1)
		die("readlink /proc/self/exe: %s", strerror(errno));
	self_exe[sl] = '\0';
	signal(SIGPIPE, SIG_IGN);
	if (pattern_init())
		die("out of memory");
	env_kernel = env_build(false);
	env_ipcd = env_build(true);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ipcd-bench-rdma-XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp: %s", strerror(errno));
	brecs = calloc((size_t)o.rounds * N_X * N_SIDE, sizeof(*brecs));
	if (!brecs)
		die("out of memory");

	hello_probe();
	have_m0 = counters(&m0, why, sizeof(why)) == 0;
	now = time(NULL);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S %z", localtime(&now));
	uname(&u);
	cpu_model(cpu, sizeof(cpu));
	loadavg(la0, sizeof(la0));
	printf("== ipcd-bench-rdma: kernel TCP against IPC-Direct over RDMA, same run ==\n");
	printf("date      %s\nhost      %s, %s, %ld CPUs, kernel %s\n", date, u.nodename, cpu,
	       sysconf(_SC_NPROCESSORS_ONLN), u.release);
	printf("server    %s port %u: pid %u on its host, preloaded: %s\n", o.host, o.port,
	       srv_pid, srv_preloaded ? "yes" : "NO (its ipcd blocks will fall back to TCP)");
	printf("ipcd side LD_PRELOAD=%s IPCD_SOCKET=%s\n", o.preload,
	       o.sock ? o.sock : "(unset: the default)");
	if (have_m0) {
		struct ipcd_bench_buf out = { 0 };
		char e2[ERR_LEN];

		if (m0.hosts)
			printf("cluster   %u hosts, this one is host %u, %u links up (ipcdctl "
			       "cluster):\n", m0.hosts, m0.self, m0.up);
		else
			printf("cluster   none: the monitor's config has no usable `peer` lines (or "
			       "none with an address of this host)\n");
		if (m0.hosts && ipcdctl("cluster", false, &out, e2, sizeof(e2)) == 0) {
			char *line, *save = NULL;

			for (line = strtok_r(out.p, "\n", &save); line;
			     line = strtok_r(NULL, "\n", &save)) {
				if (!strncmp(line, "PID ", 4))
					break;
				printf("          %s\n", line);
			}
		}
		free(out.p);
		if (m0.up == 0)
			printf("WARNING: no cluster link is up: the ipcd blocks will use kernel TCP "
			       "and fail\n");
	} else {
		printf("WARNING: no monitor counters (%s): the ipcd blocks will fail\n", why);
	}
	printf("rounds    %u%s; per block one connection, one test; kernel and ipcd blocks "
	       "interleaved\n", o.rounds, o.quick ? " (--quick)" : "");
	printf("sizes     rtt: %" PRIu64 " round trips per block (first %" PRIu64 " not timed); "
	       "rate8: %" PRIu64 " messages; tput: %" PRIu64 " x 64 KiB\n", o.rtt_count, o.rtt_warm,
	       o.rate_count, o.tput_chunks);
	printf("load avg  %s (before)\n", la0);
	if (o.quick)
		printf("NOTE      --quick: a smoke run; its figures are not measurements\n");
	fflush(stdout);

	for (r = 0; r < o.rounds; r++) {
		for (x = 0, k = 0; x < N_X; x++) {
			enum side first;

			if (!o.want[x])
				continue;
			first = (r + k++) % 2 ? S_IPCD : S_KERN;
			run_block(r, x, first);
			run_block(r, x, first == S_KERN ? S_IPCD : S_KERN);
		}
	}
	loadavg(la1, sizeof(la1));
	if (counters(&m1, why, sizeof(why)))
		memset(&m1, 0, sizeof(m1));
	finish_cells();
	if (o.ib)
		run_ib_write_lat();

	print_table();
	printf("\nload avg  %s (before), %s (after)\n", la0, la1);
	{
		unsigned int ib_blocks = 0, ib_remote = 0;
		uint64_t grown = 0;

		for (k = 0; k < n_brecs; k++) {
			blocks++;
			failed_blocks += !brecs[k].ok;
			if (brecs[k].side == S_IPCD) {
				ib_blocks++;
				ib_remote += brecs[k].have_delta && brecs[k].delta >= 1;
				grown += brecs[k].have_delta ? brecs[k].delta : 0;
			}
		}
		printf("remote    %u of %u ipcd blocks were remote (connections.remote_out grew by "
		       "%" PRIu64 " over them; each block made 1 connection)\n", ib_remote, ib_blocks,
		       grown);
		if (have_m0)
			printf("monitor   remote_out %" PRIu64 " -> %" PRIu64 ", remote_in %" PRIu64
			       " -> %" PRIu64 " over the run\n", m0.remote_out, m1.remote_out,
			       m0.remote_in, m1.remote_in);
	}
	print_ib();
	for (k = 0; k < n_brecs; k++)
		if (!brecs[k].ok)
			printf("FAILED: round %u %s %s: %s\n", brecs[k].round + 1,
			       xdefs[brecs[k].x].name, side_name[brecs[k].side], brecs[k].why);
	failed = failed_blocks > 0 || (ib.asked && ib.found && !ib.ok);
	printf("%s: %u blocks, %u failed%s\n", failed ? "FAILED" : "OK", blocks, failed_blocks,
	       ib.asked && ib.found && !ib.ok ? "; ib_write_lat failed" : "");
	if (o.json && *o.json)
		write_json(date, la0, la1, &m0, failed);
	if (!o.keep) {
		ipcd_bench_rmdir(tmpdir, "ipcd-bench-rdma");	/* the blocks' logs */
	} else {
		printf("logs      %s\n", tmpdir);
	}
	return failed ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ipcd-bench-rdma server [OPTIONS]   (on host B, under %s)\n"
		   "       ipcd-bench-rdma client --host B [OPTIONS]   (on host A)\n"
		   "       ipcd-bench-rdma server --help | client --help\n", IPCD_RUN_BIN);
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "server"))
		return server_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "client"))
		return client_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "role"))
		return role_main(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
