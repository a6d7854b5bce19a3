/* SPDX-License-Identifier: MIT */
/*
 * bench_sock.c - ipcd-bench-sock: TCP through IPC-Direct against kernel TCP
 * loopback and UNIX stream sockets, in one run (issue #4, item 10).
 *
 * The driver (this process, never preloaded) starts its own ipcd-monitor on
 * the embedded default config, with only the control socket moved to a temp
 * dir, and re-executes itself (/proc/self/exe --role server|client ...) for
 * every measurement block. The roles are plain blocking POSIX sockets. The
 * kernel-tcp and ipcd transports run the very same role code; only the
 * children's environment differs (LD_PRELOAD=libipcd.so, IPCD_SOCKET). The
 * blocks of the three transports are interleaved, so machine noise hits them
 * alike. After every ipcd block the monitor's counters (ipcdctl) must show
 * the block's connections as created by the monitor, or ipcd has failed.
 *
 * Measurements, each under two conditions (spin: client and server pinned to
 * two CPUs; busy: client, server and a CPU hog, all free to migrate):
 *   rtt:  ping-pong of 8 B .. 1 MiB, p50/p99 of per-round-trip times;
 *   rate: one-way 8 B and 64 B messages, one send() each, messages/s;
 *   conn: connect + accept + close per second.
 * With --tests pipe,pair,unix (not in the default set; issue #6, item 4), one
 * role process makes pipes, a socketpair or a named AF_UNIX connection and
 * forks its peer; the kernel side and the ipcd side (the same code,
 * preloaded) are interleaved the same way:
 *   pipe: 64 KiB write()s into one pipe, GB/s (the reader checksums every
 *         chunk); 64 B ping-pong over two pipes, p50/p99;
 *   pair: socketpair(AF_UNIX, SOCK_STREAM) 64 B ping-pong, p50/p99; one-way
 *         8 B messages, one send() each, messages/s;
 *   unix: as pair, over a named AF_UNIX stream connection: the role binds and
 *         listens on a pathname in its own mkdtemp() dir, its peer connects,
 *         the role accepts.
 * An ipcd pipe, pair or unix block counts only if the monitor's counter
 * (connections.pipes, .socketpairs or .unix_connected) grew by what the
 * block made.
 * Every byte is checked; every wait is bounded (alarm() in the roles, poll
 * deadlines in the driver). A transport that fails is reported as failed,
 * never with figures, and the exit status is 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ipcd/atomic.h>
#include <ipcd/compiler.h>

#include "bench_util.h"

#define NS_PER_S	1000000000ull
#define MAX_MSG		(1u << 20)	/* largest ping-pong message */
#define PAT_SHIFT	256u		/* round trip i sends the pattern from i % 256 on */
#define PERIOD		(64u << 10)	/* the one-way stream repeats with this period */
#define READ_BUF	(64u << 10)	/* the one-way server's recv() size */
#define MAX_RUNS	9
#define ERR_LEN		512
#define REPORT_FD	3		/* role -> driver: text lines */
#define SHM_FD		4		/* one page shared by the driver and the roles */
#define START_NS	(15 * NS_PER_S)	/* a server must listen this soon after exec */
#define REAP_NS		(10 * NS_PER_S)	/* roles must exit this soon after working */
#define POLL_MS		100

enum tp { TP_TCP, TP_UNIX, TP_IPCD, N_TP };
static const char *const tp_name[N_TP] = { "kernel-tcp", "kernel-unix", "ipcd" };

/*
 * --tests names; pipe, pair and unix are not in the default set (scripts/demo.sh
 * runs the default).
 */
enum test { T_RTT, T_RATE, T_CONN, T_PIPE, T_PAIR, T_UNIX, N_TEST };
static const char *const test_name[N_TEST] = { "rtt", "rate", "conn", "pipe", "pair", "unix" };
#define N_TEST_DEFAULT	3	/* rtt, rate, conn */

enum cond { C_SPIN, C_BUSY, N_COND };
static const char *const cond_name[N_COND] = { "spin", "busy" };

static const uint32_t rtt_sizes[] = { 8, 64, 512, 4096, 65536, 1048576 };
#define N_RTT	IPCD_ARRAY_SIZE(rtt_sizes)
static const uint32_t rate_sizes[] = { 8, 64 };
#define N_RATE	IPCD_ARRAY_SIZE(rate_sizes)
#define RTT_64	1	/* index of 64 B in rtt_sizes */

/*
 * The pipe, socketpair and named AF_UNIX groups (issue #6): one role process
 * makes the pipes, the socketpair or the connection (bind, listen, its peer
 * connects, it accepts), forks its peer, and both ends talk through them. Two
 * sides: the kernel's, and the same role code under the preload (ipcd).
 */
enum grp { G_PIPE, G_PAIR, G_UNIX, N_GRP };
static const char *const grp_name[N_GRP] = { "pipe", "pair", "unix" };
static const char *const grp_title[N_GRP] = { "pipe", "socketpair", "AF_UNIX named" };
static const char *const grp_unit[N_GRP] = { "pipe", "socketpair", "AF_UNIX connection" };
static const char *const grp_counter[N_GRP] = { "pipes", "socketpairs",	/* monitor's */
						"unix_connected" };
static const enum test grp_test[N_GRP] = { T_PIPE, T_PAIR, T_UNIX };	/* --tests name */

enum side { S_KERN, S_IPCD, N_SIDE };
static const char *const side_name[N_GRP][N_SIDE] = {
	{ "kernel-pipe", "ipcd" }, { "kernel-pair", "ipcd" }, { "kernel-unix", "ipcd" },
};

enum xtest { X_PIPE_TPUT, X_PIPE_RTT, X_PAIR_RTT, X_PAIR_RATE, X_UNIX_RTT, X_UNIX_RATE,
	     N_XTEST };
static const char *const xtest_name[N_XTEST] = { "pipe-tput", "pipe-rtt", "pair-rtt",
						 "pair-rate", "unix-rtt", "unix-rate" };

#define CHUNK		(64u << 10)	/* pipe throughput: bytes per write() */
#define CHUNK_WARM	16u		/* untimed chunks before the timed ones */
#define CK_LANES	4u		/* checksum lanes (independent running sums) */
#define IPC_RTT_SIZE	64u		/* pipe, socketpair and named AF_UNIX ping-pong */
#define IPC_RATE_SIZE	8u		/* socketpair and named AF_UNIX one-way messages */

static uint32_t clamp32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* Stream byte at offset o (one-way test) is pat[o % PERIOD]; ping-pongs use pat + i % 256. */
static uint8_t *make_pattern(void)
{
	uint8_t *p = malloc(MAX_MSG + PAT_SHIFT);
	uint32_t i;

	if (!p)
		return NULL;
	for (i = 0; i < MAX_MSG + PAT_SHIFT; i++)
		p[i] = (uint8_t)(i * 131u + (i >> 9));
	return p;
}

/* ==== roles: the processes that are measured =================================== */

struct role {
	const char *name, *test, *family, *addr;
	unsigned int port;
	uint32_t size;
	uint64_t count, min, budget_ns;
	unsigned int timeout_s;
};

struct raddr {
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
};

static const char *r_name = "role";
static FILE *rep;
static uint8_t *pat;

/* unix-rtt, unix-rate: the role's mkdtemp() dir and socket file, until it has accepted. */
static char solo_dir[64], solo_sock[108];
static pid_t solo_owner;		/* the role that made them (not its forked peer) */

/* Remove them (the role only; async-signal-safe: r_die and the alarm call it). */
static void solo_cleanup(void)
{
	if (!solo_owner || solo_owner != getpid())
		return;
	if (solo_sock[0])
		unlink(solo_sock);
	if (solo_dir[0])
		rmdir(solo_dir);
	solo_sock[0] = solo_dir[0] = '\0';
	solo_owner = 0;
}

static __attribute__((noreturn, format(printf, 1, 2))) void r_die(const char *fmt, ...)
{
	char who[96];
	va_list ap;

	solo_cleanup();

	snprintf(who, sizeof(who), "ipcd-bench-sock %s (pid %d)", r_name, (int)getpid());
	va_start(ap, fmt);
	ipcd_bench_vsay(who, fmt, ap);
	va_end(ap);
	_exit(3);
}

static void on_alarm(int sig)
{
	(void)sig;
	ipcd_bench_say_raw("ipcd-bench-sock: role timed out (alarm): the transport stopped "
			   "making progress\n");
	solo_cleanup();
	_exit(4);
}

/* Is libipcd (or whatever LD_PRELOAD names) mapped into this process? */
static int preload_mapped(void)
{
	const char *env = getenv("LD_PRELOAD");
	char line[1024], names[1024], *tok, *save = NULL;
	int found = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		r_die("/proc/self/maps: %s", strerror(errno));
	snprintf(names, sizeof(names), "%s", env ? env : "");
	while (!found && fgets(line, sizeof(line), f)) {
		char copy[1024];

		if (strstr(line, "/libipcd")) {
			found = 1;
			break;
		}
		snprintf(copy, sizeof(copy), "%s", names);
		for (tok = strtok_r(copy, " :", &save); tok; tok = strtok_r(NULL, " :", &save)) {
			const char *base = strrchr(tok, '/');

			base = base ? base + 1 : tok;
			if (*base && strstr(line, base)) {
				found = 1;
				break;
			}
		}
	}
	fclose(f);
	return found;
}

static void make_addr(const struct role *r, struct raddr *a)
{
	memset(a, 0, sizeof(*a));
	if (!strcmp(r->family, "unix")) {
		struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;

		if (strlen(r->addr) >= sizeof(un->sun_path))
			r_die("unix socket path too long: %s", r->addr);
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, r->addr, strlen(r->addr) + 1);
		a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(r->addr) + 1);
		a->family = AF_UNIX;
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)r->port);
		if (inet_pton(AF_INET, r->addr, &in->sin_addr) != 1)
			r_die("bad IPv4 address %s", r->addr);
		a->len = sizeof(*in);
		a->family = AF_INET;
	}
}

static int sock_new(const struct raddr *a)
{
	int fd = socket(a->family, SOCK_STREAM, 0);

	if (fd < 0)
		r_die("socket: %s", strerror(errno));
	return fd;
}

static void nodelay(int fd, const struct raddr *a)
{
	int one = 1;

	if (a->family == AF_INET && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		r_die("setsockopt(TCP_NODELAY): %s", strerror(errno));
}

static int connect_to(const struct raddr *a)
{
	int fd = sock_new(a);

	while (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0)
		if (errno != EINTR)
			r_die("connect: %s", strerror(errno));
	return fd;
}

static int listen_on(struct raddr *a, unsigned int *port)
{
	int fd = sock_new(a), one = 1;

	if (a->family == AF_INET &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		r_die("setsockopt(SO_REUSEADDR): %s", strerror(errno));
	if (a->family == AF_UNIX)
		unlink(((struct sockaddr_un *)&a->ss)->sun_path);
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len))
		r_die("bind: %s", strerror(errno));
	if (listen(fd, 128))
		r_die("listen: %s", strerror(errno));
	*port = 0;
	if (a->family == AF_INET) {
		struct sockaddr_in in;
		socklen_t len = sizeof(in);

		if (getsockname(fd, (struct sockaddr *)&in, &len))
			r_die("getsockname: %s", strerror(errno));
		*port = ntohs(in.sin_port);
		if (!*port)
			r_die("getsockname gave port 0 after bind + listen");
	}
	return fd;
}

static int accept_one(int lfd)
{
	int fd;

	while ((fd = accept(lfd, NULL, NULL)) < 0)
		if (errno != EINTR)
			r_die("accept: %s", strerror(errno));
	return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t r = send(fd, b, n, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			r_die("send: %s", r < 0 ? strerror(errno) : "returned 0");
		b += r;
		n -= (size_t)r;
	}
}

/* Returns the bytes read: fewer than @n only at EOF. */
static size_t recv_all(int fd, void *p, size_t n)
{
	ssize_t got = ipcd_bench_recv_full(fd, p, n);

	if (got < 0)
		r_die("recv: %s", strerror((int)-got));
	return (size_t)got;
}

static void *xmalloc_role(size_t n)
{
	void *p = malloc(n);

	if (!p)
		r_die("out of memory (%zu bytes)", n);
	memset(p, 0, n);
	return p;
}

static void server_rtt(const struct role *r, int lfd, const struct raddr *a)
{
	uint8_t *buf = xmalloc_role(r->size);
	uint64_t n = 0;
	int fd = accept_one(lfd);

	nodelay(fd, a);
	for (;;) {
		size_t got = recv_all(fd, buf, r->size);

		if (got == 0)
			break;
		if (got != r->size)
			r_die("EOF in the middle of message %" PRIu64 " (%zu of %u bytes)", n, got,
			      r->size);
		send_all(fd, buf, r->size);
		n++;
	}
	close(fd);
	fprintf(rep, "done %" PRIu64 "\n", n);
	free(buf);
}

static void client_rtt(const struct role *r, const struct raddr *a)
{
	uint32_t warm = r->size >= 65536 ? 4 : 64;
	uint32_t *s = xmalloc_role(r->count * sizeof(*s));
	uint8_t *buf = xmalloc_role(r->size);
	uint64_t i, n = 0, start = 0;
	int fd = connect_to(a);

	nodelay(fd, a);
	for (i = 0;; i++) {
		const uint8_t *msg = pat + i % PAT_SHIFT;
		uint64_t t0, t1;

		if (i == warm)
			start = ipcd_now_ns();
		if (i >= warm &&
		    (n == r->count || (n >= r->min && ipcd_now_ns() - start >= r->budget_ns)))
			break;
		t0 = ipcd_now_ns();
		send_all(fd, msg, r->size);
		if (recv_all(fd, buf, r->size) != r->size)
			r_die("the server closed the connection after %" PRIu64 " round trips", i);
		t1 = ipcd_now_ns();
		if (memcmp(buf, msg, r->size))
			r_die("round trip %" PRIu64 ": the echo differs from what was sent", i);
		if (i >= warm)
			s[n++] = clamp32(t1 - t0);
	}
	close(fd);
	fprintf(rep, "conns 1\nrtt %" PRIu64 "\n", n);
	for (i = 0; i < n; i++)
		fprintf(rep, "%u\n", s[i]);
	free(s);
	free(buf);
}

static void server_rate(const struct role *r, int lfd)
{
	uint8_t *buf = xmalloc_role(READ_BUF);
	uint64_t total = r->count * r->size, got = 0;
	int fd = accept_one(lfd);
	char ack = 'A';

	while (got < total) {
		ssize_t n = recv(fd, buf, IPCD_MIN((uint64_t)READ_BUF, total - got), 0);
		uint64_t k;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r_die("recv after %" PRIu64 " of %" PRIu64 " bytes: %s", got, total,
			      n ? strerror(errno) : "EOF");
		/* The stream is pat[offset % PERIOD]: compare in up to two pieces per period. */
		for (k = 0; k < (uint64_t)n;) {
			uint64_t o = (got + k) % PERIOD;
			uint64_t len = IPCD_MIN((uint64_t)n - k, PERIOD - o);

			if (memcmp(buf + k, pat + o, len))
				r_die("stream content differs near byte %" PRIu64, got + k);
			k += len;
		}
		got += (uint64_t)n;
	}
	send_all(fd, &ack, 1);
	if (recv_all(fd, buf, 1) != 0)
		r_die("extra bytes after the %" PRIu64 " expected", total);
	close(fd);
	fprintf(rep, "done %" PRIu64 "\n", r->count);
	free(buf);
}

static void client_rate(const struct role *r, const struct raddr *a)
{
	uint64_t i, off = 0, t0, t1;
	int fd = connect_to(a);
	char ack = 0;

	if (PERIOD % r->size)
		r_die("message size %u does not divide %u", r->size, PERIOD);
	nodelay(fd, a);
	t0 = ipcd_now_ns();
	for (i = 0; i < r->count; i++) {
		send_all(fd, pat + off, r->size);
		off = (off + r->size) % PERIOD;
	}
	if (recv_all(fd, &ack, 1) != 1 || ack != 'A')
		r_die("no acknowledgement from the server after %" PRIu64 " messages", r->count);
	t1 = ipcd_now_ns();
	close(fd);
	fprintf(rep, "conns 1\nrate %" PRIu64 " %" PRIu64 "\n", r->count, t1 - t0);
}

/*
 * Connection setup. The server accepts and closes until it has accepted the
 * client's last connection, whose number the client puts in the shared stop
 * word before making it (the client's connections are sequential: each one
 * waits for the server's close).
 */
static void server_conn(int lfd, uint32_t *stop)
{
	uint32_t n = 0;

	for (;;) {
		close(accept_one(lfd));
		n++;
		if (ipcd_load_acquire(stop) == n)	/* A1: pairs with R1 in client_conn */
			break;
	}
	fprintf(rep, "done %u\n", n);
}

static void one_conn(const struct raddr *a, uint64_t k)
{
	int fd = connect_to(a);
	char c;

	if (recv_all(fd, &c, 1) != 0)
		r_die("connection %" PRIu64 ": data where EOF was expected", k);
	close(fd);
}

static void client_conn(const struct role *r, const struct raddr *a, uint32_t *stop)
{
	uint64_t k = 0, t0, t1;

	t0 = ipcd_now_ns();
	while (k < r->count && (k < r->min || ipcd_now_ns() - t0 < r->budget_ns))
		one_conn(a, k++);
	t1 = ipcd_now_ns();
	/* The last connection, untimed: it tells the server to stop. */
	ipcd_store_release(stop, (uint32_t)(k + 1));	/* R1: pairs with A1 in server_conn */
	one_conn(a, k);
	fprintf(rep, "conns %" PRIu64 "\nconn %" PRIu64 " %" PRIu64 "\n", k + 1, k, t1 - t0);
}

/* ---- the pipe and socketpair roles: one process and its forked peer ------------ */

/* write() all of @n (pipes: no send()). */
static void wr_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t r = write(fd, b, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			r_die("write: %s", r < 0 ? strerror(errno) : "returned 0");
		b += r;
		n -= (size_t)r;
	}
}

/* read() until @n bytes or EOF; returns the bytes read. */
static size_t rd_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, b + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			r_die("read: %s", strerror(errno));
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/*
 * The pipe throughput checksum: CK_LANES running sums s1 += w, s2 += s1 over
 * the 64-bit words (lane j takes words j, j + CK_LANES, ...), mod 2^64. s2
 * weighs every word by its position, so moved, dropped or repeated bytes show.
 */
static void ck_sum(const uint64_t *w, size_t words, uint64_t out[2 * CK_LANES])
{
	uint64_t s1[CK_LANES] = { 0 }, s2[CK_LANES] = { 0 };
	size_t i;
	unsigned int j;

	for (i = 0; i + CK_LANES <= words; i += CK_LANES)
		for (j = 0; j < CK_LANES; j++) {
			s1[j] += w[i + j];
			s2[j] += s1[j];
		}
	for (j = 0; j < CK_LANES; j++) {
		out[j] = s1[j];
		out[CK_LANES + j] = s2[j];
	}
}

/* Chunk k is the first CHUNK bytes of the pattern with its first word set to tag(k). */
static uint64_t chunk_tag(uint64_t k)
{
	return (k + 1) * 0x9e3779b97f4a7c15ull;
}

static void *xalign_role(size_t n)
{
	void *p = aligned_alloc(64, n);

	if (!p)
		r_die("out of memory (%zu bytes)", n);
	memset(p, 0, n);
	return p;
}

static pid_t peer_pid = -1;

/*
 * Fork the peer. It is pinned to @cpu (-1: left floating), dies with the
 * role (PR_SET_PDEATHSIG) and has its own alarm(): fork() does not inherit
 * one. It never writes to the report pipe and leaves with _exit().
 */
static pid_t fork_peer(const struct role *r, int cpu)
{
	pid_t parent = getpid(), pid;

	fflush(rep);
	pid = ipcd_bench_fork();
	if (pid < 0)
		r_die("fork: %s", strerror(errno));
	if (pid > 0) {
		peer_pid = pid;
		return pid;
	}
	r_name = "forked peer";
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(3);
	close(REPORT_FD);
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			r_die("sched_setaffinity(%d): %s", cpu, strerror(errno));
	}
	alarm(r->timeout_s);
	return 0;
}

/* Reap the peer (bounded by the role's alarm); it must have exited 0. */
static void reap_peer(void)
{
	int st;

	while (waitpid(peer_pid, &st, 0) < 0)
		if (errno != EINTR)
			r_die("waitpid(peer %d): %s", (int)peer_pid, strerror(errno));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return;
	if (WIFSIGNALED(st))
		r_die("the forked peer (pid %d) was killed by signal %d (%s)", (int)peer_pid,
		      WTERMSIG(st), strsignal(WTERMSIG(st)));
	r_die("the forked peer (pid %d) exited with status %d", (int)peer_pid,
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* The peer of pipe-tput: reads and checks CHUNK_WARM + @chunks chunks, then EOF. */
static __attribute__((noreturn)) void pipe_reader(int fd, int ack, uint64_t chunks)
{
	uint64_t *buf = xalign_role(CHUNK), base[2 * CK_LANES], sum[2 * CK_LANES];
	uint64_t k, total = CHUNK_WARM + chunks;
	const uint64_t lane_len = CHUNK / 8 / CK_LANES;

	memcpy(buf, pat, CHUNK);
	buf[0] = 0;
	ck_sum(buf, CHUNK / 8, base);
	for (k = 0; k < total; k++) {
		size_t got = rd_all(fd, buf, CHUNK);
		uint64_t v = chunk_tag(k);

		if (got != CHUNK)
			r_die("EOF after %" PRIu64 " of %" PRIu64 " chunks (+%zu bytes)", k, total,
			      got);
		ck_sum(buf, CHUNK / 8, sum);
		/* The expected sums: the base's, with word 0 (lane 0, first) set to v. */
		if (sum[0] != base[0] + v || sum[CK_LANES] != base[CK_LANES] + lane_len * v ||
		    memcmp(sum + 1, base + 1, (CK_LANES - 1) * sizeof(*sum)) ||
		    memcmp(sum + CK_LANES + 1, base + CK_LANES + 1, (CK_LANES - 1) * sizeof(*sum)))
			r_die("chunk %" PRIu64 " of %" PRIu64 ": the checksum differs from what "
			      "was written", k, total);
		if (k + 1 == CHUNK_WARM)
			wr_all(ack, "W", 1);
	}
	if (rd_all(fd, buf, 1) != 0)
		r_die("bytes after the last of %" PRIu64 " chunks", total);
	wr_all(ack, "A", 1);
	close(fd);
	close(ack);
	_exit(0);
}

/*
 * Pipe throughput: the role writes CHUNK_WARM + count chunks of 64 KiB, one
 * write() each, into a pipe; its forked peer reads and checksums them. Timed
 * from the first chunk after the warm-up acknowledgement ('W' on a second
 * pipe) to the peer's 'A', which it sends after it has seen EOF.
 */
static void solo_pipe_tput(const struct role *r, int cpu)
{
	uint64_t *buf = xalign_role(CHUNK), k, t0, t1;
	int d[2], a[2];
	char c = 0;

	if (pipe(d) || pipe(a))
		r_die("pipe: %s", strerror(errno));
	fprintf(rep, "made 2\n");
	if (fork_peer(r, cpu) == 0) {
		close(d[1]);
		close(a[0]);
		pipe_reader(d[0], a[1], r->count);
	}
	close(d[0]);
	close(a[1]);
	memcpy(buf, pat, CHUNK);
	for (k = 0; k < CHUNK_WARM; k++) {
		buf[0] = chunk_tag(k);
		wr_all(d[1], buf, CHUNK);
	}
	if (rd_all(a[0], &c, 1) != 1 || c != 'W')
		r_die("no warm-up acknowledgement from the reader");
	t0 = ipcd_now_ns();
	for (; k < CHUNK_WARM + r->count; k++) {
		buf[0] = chunk_tag(k);
		wr_all(d[1], buf, CHUNK);
	}
	close(d[1]);
	if (rd_all(a[0], &c, 1) != 1 || c != 'A')
		r_die("no final acknowledgement from the reader");
	t1 = ipcd_now_ns();
	if (rd_all(a[0], &c, 1) != 0)
		r_die("bytes after the final acknowledgement");
	close(a[0]);
	reap_peer();
	fprintf(rep, "bytes %" PRIu64 " %" PRIu64 "\n", r->count * CHUNK, t1 - t0);
	free(buf);
}

/* Ping-pong over an fd pair (pipes: write/read; socketpair: send/recv). */
struct pp_io {
	int out, in;
	bool sock;
};

static void pp_send(const struct pp_io *io, const void *p, size_t n)
{
	if (io->sock)
		send_all(io->out, p, n);
	else
		wr_all(io->out, p, n);
}

static size_t pp_recv(const struct pp_io *io, void *p, size_t n)
{
	return io->sock ? recv_all(io->in, p, n) : rd_all(io->in, p, n);
}

/* The peer: echo @size-byte messages until EOF. */
static __attribute__((noreturn)) void pp_echo(const struct pp_io *io, uint32_t size)
{
	uint8_t *buf = xmalloc_role(size);
	uint64_t n = 0;

	for (;;) {
		size_t got = pp_recv(io, buf, size);

		if (got == 0)
			break;
		if (got != size)
			r_die("EOF in the middle of message %" PRIu64 " (%zu of %u bytes)", n, got,
			      size);
		pp_send(io, buf, size);
		n++;
	}
	close(io->out);
	if (io->in != io->out)
		close(io->in);
	_exit(0);
}

/* The role's side: as client_rtt, then EOF both ways. */
static void pp_ping(const struct role *r, const struct pp_io *io)
{
	uint32_t warm = 64, *s = xmalloc_role(r->count * sizeof(*s));
	uint8_t *buf = xmalloc_role(r->size);
	uint64_t i, n = 0, start = 0;

	for (i = 0;; i++) {
		const uint8_t *msg = pat + i % PAT_SHIFT;
		uint64_t t0, t1;

		if (i == warm)
			start = ipcd_now_ns();
		if (i >= warm &&
		    (n == r->count || (n >= r->min && ipcd_now_ns() - start >= r->budget_ns)))
			break;
		t0 = ipcd_now_ns();
		pp_send(io, msg, r->size);
		if (pp_recv(io, buf, r->size) != r->size)
			r_die("the peer closed after %" PRIu64 " round trips", i);
		t1 = ipcd_now_ns();
		if (memcmp(buf, msg, r->size))
			r_die("round trip %" PRIu64 ": the echo differs from what was sent", i);
		if (i >= warm)
			s[n++] = clamp32(t1 - t0);
	}
	/* Our end's close is the peer's EOF; its close (or exit) is ours. */
	if (io->sock && shutdown(io->out, SHUT_WR))
		r_die("shutdown(SHUT_WR): %s", strerror(errno));
	if (!io->sock)
		close(io->out);
	if (pp_recv(io, buf, 1) != 0)
		r_die("data from the peer where EOF was expected");
	close(io->in);
	reap_peer();
	fprintf(rep, "rtt %" PRIu64 "\n", n);
	for (i = 0; i < n; i++)
		fprintf(rep, "%u\n", s[i]);
	free(s);
	free(buf);
}

/* Round trip over two pipes (role -> peer, peer -> role). */
static void solo_pipe_rtt(const struct role *r, int cpu)
{
	int p1[2], p2[2];

	if (pipe(p1) || pipe(p2))
		r_die("pipe: %s", strerror(errno));
	fprintf(rep, "made 2\n");
	if (fork_peer(r, cpu) == 0) {
		struct pp_io io = { .out = p2[1], .in = p1[0], .sock = false };

		close(p1[1]);
		close(p2[0]);
		pp_echo(&io, r->size);
	}
	close(p1[0]);
	close(p2[1]);
	pp_ping(r, &(struct pp_io){ .out = p1[1], .in = p2[0], .sock = false });
}

/*
 * The stream connection of the pair and unix cases, in three steps around
 * fork_peer(). pair: socketpair(AF_UNIX, SOCK_STREAM); sv[0] is the role's
 * end, sv[1] the peer's. unix (@named): the role binds a pathname socket in
 * its own mkdtemp() dir under /tmp and listens on it (sv[0]); the peer
 * connects to it and the role accepts, then removes the file and the dir.
 * Either way the block makes one connection ("made 1").
 */
static void conn_make(bool named, int sv[2])
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };

	if (!named) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			r_die("socketpair: %s", strerror(errno));
		fprintf(rep, "made 1\n");
		return;
	}
	snprintf(solo_dir, sizeof(solo_dir), "/tmp/ipcd-bench-unix-XXXXXX");
	if (!mkdtemp(solo_dir)) {
		solo_dir[0] = '\0';
		r_die("mkdtemp: %s", strerror(errno));
	}
	solo_owner = getpid();
	snprintf(solo_sock, sizeof(solo_sock), "%s/s", solo_dir);
	memcpy(un.sun_path, solo_sock, strlen(solo_sock) + 1);
	sv[1] = -1;
	sv[0] = socket(AF_UNIX, SOCK_STREAM, 0);
	if (sv[0] < 0)
		r_die("socket(AF_UNIX): %s", strerror(errno));
	if (bind(sv[0], (const struct sockaddr *)&un, sizeof(un)))
		r_die("bind(%s): %s", solo_sock, strerror(errno));
	if (listen(sv[0], 1))
		r_die("listen(%s): %s", solo_sock, strerror(errno));
	fprintf(rep, "made 1\n");
}

/* In the forked peer: its end (unix: connected to the role's listener, which it closes). */
static int conn_peer(bool named, int sv[2])
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd;

	close(sv[0]);
	if (!named)
		return sv[1];
	memcpy(un.sun_path, solo_sock, strlen(solo_sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		r_die("socket(AF_UNIX): %s", strerror(errno));
	while (connect(fd, (const struct sockaddr *)&un, sizeof(un)))
		if (errno != EINTR)
			r_die("connect(%s): %s", solo_sock, strerror(errno));
	return fd;
}

/* In the role: its end (unix: accepted, then the listener, the file and the dir go). */
static int conn_role(bool named, int sv[2])
{
	int fd;

	if (!named) {
		close(sv[1]);
		return sv[0];
	}
	fd = accept_one(sv[0]);
	close(sv[0]);
	solo_cleanup();
	return fd;
}

/* Round trip over socketpair(AF_UNIX, SOCK_STREAM) or a named AF_UNIX connection. */
static void solo_stream_rtt(const struct role *r, int cpu, bool named)
{
	int sv[2], fd;

	conn_make(named, sv);
	if (fork_peer(r, cpu) == 0) {
		fd = conn_peer(named, sv);
		pp_echo(&(struct pp_io){ .out = fd, .in = fd, .sock = true }, r->size);
	}
	fd = conn_role(named, sv);
	pp_ping(r, &(struct pp_io){ .out = fd, .in = fd, .sock = true });
}

/*
 * One-way messages over a socketpair or a named AF_UNIX connection: the peer
 * says it is ready ('R'), the role sends count messages of size bytes, one
 * send() each, from the stream pattern; the peer checks every byte and
 * acknowledges ('A'). As client_rate.
 */
static void solo_stream_rate(const struct role *r, int cpu, bool named)
{
	uint64_t i, off = 0, t0, t1;
	int sv[2], fd;
	char c = 0;

	if (PERIOD % r->size)
		r_die("message size %u does not divide %u", r->size, PERIOD);
	conn_make(named, sv);
	if (fork_peer(r, cpu) == 0) {
		uint8_t *buf = xmalloc_role(READ_BUF);
		uint64_t total = r->count * r->size, got = 0;

		fd = conn_peer(named, sv);
		send_all(fd, "R", 1);
		while (got < total) {
			ssize_t n = recv(fd, buf, IPCD_MIN((uint64_t)READ_BUF, total - got), 0);
			uint64_t k;

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				r_die("recv after %" PRIu64 " of %" PRIu64 " bytes: %s", got, total,
				      n ? strerror(errno) : "EOF");
			for (k = 0; k < (uint64_t)n;) {
				uint64_t o = (got + k) % PERIOD;
				uint64_t len = IPCD_MIN((uint64_t)n - k, PERIOD - o);

				if (memcmp(buf + k, pat + o, len))
					r_die("stream content differs near byte %" PRIu64, got + k);
				k += len;
			}
			got += (uint64_t)n;
		}
		send_all(fd, "A", 1);
		if (recv_all(fd, buf, 1) != 0)
			r_die("extra bytes after the %" PRIu64 " expected", total);
		close(fd);
		_exit(0);
	}
	fd = conn_role(named, sv);
	if (recv_all(fd, &c, 1) != 1 || c != 'R')
		r_die("the peer did not say it was ready");
	t0 = ipcd_now_ns();
	for (i = 0; i < r->count; i++) {
		send_all(fd, pat + off, r->size);
		off = (off + r->size) % PERIOD;
	}
	if (recv_all(fd, &c, 1) != 1 || c != 'A')
		r_die("no acknowledgement from the peer after %" PRIu64 " messages", r->count);
	t1 = ipcd_now_ns();
	close(fd);
	reap_peer();
	fprintf(rep, "rate %" PRIu64 " %" PRIu64 "\n", r->count, t1 - t0);
}

static void solo_main(const struct role *r, int cpu)
{
	if (!strcmp(r->test, xtest_name[X_PIPE_TPUT]))
		solo_pipe_tput(r, cpu);
	else if (!strcmp(r->test, xtest_name[X_PIPE_RTT]))
		solo_pipe_rtt(r, cpu);
	else if (!strcmp(r->test, xtest_name[X_PAIR_RTT]))
		solo_stream_rtt(r, cpu, false);
	else if (!strcmp(r->test, xtest_name[X_PAIR_RATE]))
		solo_stream_rate(r, cpu, false);
	else if (!strcmp(r->test, xtest_name[X_UNIX_RTT]))
		solo_stream_rtt(r, cpu, true);
	else if (!strcmp(r->test, xtest_name[X_UNIX_RATE]))
		solo_stream_rate(r, cpu, true);
	else
		r_die("unknown --test %s for --role parent", r->test);
}

static int role_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "test", required_argument, NULL, 't' },
		{ "family", required_argument, NULL, 'f' },
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'c' },
		{ "min", required_argument, NULL, 'm' },
		{ "budget-ns", required_argument, NULL, 'b' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "peer-cpu", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	struct role r = { .family = "tcp", .addr = "127.0.0.1", .size = 8, .count = 1,
			  .timeout_s = 60 };
	struct sigaction sa = { .sa_handler = on_alarm };
	struct raddr a;
	uint32_t *stop;
	int c, lfd, peer_cpu = -1;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'r': r.name = optarg; break;
		case 't': r.test = optarg; break;
		case 'f': r.family = optarg; break;
		case 'a': r.addr = optarg; break;
		case 'p': r.port = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 's': r.size = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'c': r.count = strtoull(optarg, NULL, 10); break;
		case 'm': r.min = strtoull(optarg, NULL, 10); break;
		case 'b': r.budget_ns = strtoull(optarg, NULL, 10); break;
		case 'T': r.timeout_s = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'P': peer_cpu = (int)strtol(optarg, NULL, 10); break;
		default: r_die("bad role arguments");
		}
	}
	if (!r.name || !r.test ||
	    (strcmp(r.name, "server") && strcmp(r.name, "client") && strcmp(r.name, "parent")))
		r_die("--role server|client|parent and --test are required");
	r_name = r.name;
	if (!r.size || r.size > MAX_MSG || !r.count || r.count > (1ull << 31))
		r_die("bad --size or --count");
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	alarm(r.timeout_s);
	rep = fdopen(REPORT_FD, "w");
	stop = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, SHM_FD, 0);
	pat = make_pattern();
	if (!rep || stop == MAP_FAILED || !pat)
		r_die("setup (report fd %d, shared page on fd %d): %s", REPORT_FD, SHM_FD,
		      strerror(errno));
	fprintf(rep, "hello %d %d\n", (int)getpid(), preload_mapped());
	if (!strcmp(r.name, "parent")) {
		solo_main(&r, peer_cpu);
		goto done;
	}
	make_addr(&r, &a);

	if (!strcmp(r.name, "server")) {
		unsigned int port;

		lfd = listen_on(&a, &port);
		fprintf(rep, "listening %u\n", port);
		fflush(rep);
		if (!strcmp(r.test, "rtt"))
			server_rtt(&r, lfd, &a);
		else if (!strcmp(r.test, "rate"))
			server_rate(&r, lfd);
		else
			server_conn(lfd, stop);
		close(lfd);
		if (a.family == AF_UNIX)
			unlink(r.addr);
	} else if (!strcmp(r.test, "rtt")) {
		client_rtt(&r, &a);
	} else if (!strcmp(r.test, "rate")) {
		client_rate(&r, &a);
	} else {
		client_conn(&r, &a, stop);
	}
done:
	fprintf(rep, "ok\n");
	if (fflush(rep) || ferror(rep))
		r_die("report pipe: %s", strerror(errno));
	return 0;
}

/* ==== the driver ================================================================ */

struct opts {
	bool quick;
	const char *json, *monitor, *preload, *ipcdctl;
	bool tp_on[N_TP];
	bool cond_on[N_COND];
	bool test_on[N_TEST];		/* enum test */
	unsigned int rtt_rounds;	/* blocks per rtt case, interleaved with the others */
	uint32_t rtt_target, rtt_min;	/* samples per case (all rounds) */
	uint64_t rtt_budget_ns;		/* per case (all rounds) */
	uint64_t rate_bytes;		/* per one-way run */
	unsigned int rate_runs;		/* one-way runs per case (median) */
	unsigned int conn_runs;		/* connection runs per case (median) */
	uint32_t conn_target, conn_min;	/* per connection run */
	uint64_t conn_budget_ns;	/* per connection run */
	unsigned int role_timeout_s;	/* a role's alarm() */
	uint64_t pipe_bytes;		/* per pipe throughput run */
	unsigned int pipe_runs;		/* pipe throughput runs per side (median) */
};

struct rtt_cell {
	bool ok;			/* every block of the case succeeded */
	char err[ERR_LEN];		/* why not ("" and !ok: not run) */
	uint32_t *s;			/* pooled samples, ns */
	uint64_t n;
	double p50, p99, min, max;	/* ns */
};

struct runs_cell {
	bool ok;
	char err[ERR_LEN];
	unsigned int runs;
	double v[MAX_RUNS];		/* per second, each run in order */
	double med, min, max;
};

struct cond_res {
	bool ran;
	char placement[200];
	double floor_start, floor_end;	/* ns, cache-line round trip p50; 0: not measured */
	double load_start[3], load_end[3];
	struct rtt_cell rtt[N_RTT][N_TP];
	struct runs_cell rate[N_RATE][N_TP];
	struct runs_cell conn[N_TP];
};

/* One condition's pipe, socketpair and named AF_UNIX figures, per side (enum side). */
struct ipc_res {
	bool ran[N_GRP];
	double load_start[N_GRP][3], load_end[N_GRP][3];
	struct runs_cell pipe_tput[N_SIDE];	/* bytes per second */
	struct rtt_cell pipe_rtt[N_SIDE];
	struct rtt_cell pair_rtt[N_SIDE];
	struct runs_cell pair_rate[N_SIDE];	/* messages per second */
	struct rtt_cell unix_rtt[N_SIDE];
	struct runs_cell unix_rate[N_SIDE];	/* messages per second */
};

/* The monitor's counters that the driver checks. */
struct mctr {
	uint64_t created;		/* connections.created */
	bool have[N_GRP];		/* connections.pipes, .socketpairs, .unix_connected present */
	uint64_t grp[N_GRP];
};

struct block {
	enum tp tp;
	enum test test;
	uint32_t size;
	uint64_t count, min, budget_ns;
	int srv_cpu, cli_cpu;		/* -1: all allowed CPUs */
};

struct outcome {
	char err[ERR_LEN];
	uint32_t *s;			/* rtt samples (malloc'd) */
	uint64_t n;
	uint64_t units, ns;		/* rate: messages, conn: connections; and the time */
	uint64_t conns;			/* connections the client opened */
};

struct child {
	const char *what;		/* "server" or "client" */
	pid_t pid;
	int fd;				/* report pipe, read end; -1 at EOF */
	struct ipcd_bench_buf out;
	char logpath[128];
	int status;
	bool reaped;
};

extern char **environ;

static struct opts o;
static pid_t driver_pid;
static char tmpdir[64];
static char mon_sock[128], mon_log[128], unix_path[128];
static volatile pid_t mon_pid = -1, hog_pid = -1;
static volatile pid_t live[2] = { -1, -1 };	/* the current block's roles */
static char **env_kernel, **env_ipcd;
static uint32_t *stop_word;
static int shm_fd = -1;
static cpu_set_t all_cpus;
static int cpu_a = -1, cpu_b = -1;		/* the spin condition's server and client CPU */
static bool tp_failed[N_TP];
static char tp_err[N_TP][ERR_LEN];
static bool ipcd_not_accelerated;
static uint64_t accel_base;			/* monitor's connections created, last seen */
static uint64_t ipcd_conns, ipcd_accel;		/* over the run */
static char mon_config[2048];			/* what the monitor runs on */
static struct cond_res res[N_COND];
static struct ipc_res ires[N_COND];
static bool grp_failed[N_GRP][N_SIDE];
static char grp_err[N_GRP][N_SIDE][ERR_LEN];
static bool grp_not_accel[N_GRP];		/* an ipcd block was not accelerated */
static char grp_not_accel_why[N_GRP][64];	/* "counter pipes +0" (the first such block) */
static uint64_t grp_made[N_GRP], grp_counted[N_GRP];	/* ipcd blocks, over the run */

static void stop_monitor(void);

static void stop_processes(void)
{
	unsigned int i;

	for (i = 0; i < IPCD_ARRAY_SIZE(live); i++)
		if (live[i] > 0) {
			kill(live[i], SIGKILL);
			waitpid(live[i], NULL, 0);
			live[i] = -1;
		}
	if (hog_pid > 0) {
		kill(hog_pid, SIGKILL);
		waitpid(hog_pid, NULL, 0);
		hog_pid = -1;
	}
}

static __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	ipcd_bench_vsay("ipcd-bench-sock", fmt, ap);
	va_end(ap);
	if (getpid() != driver_pid)
		_exit(3);
	stop_processes();
	stop_monitor();
	if (tmpdir[0])
		fprintf(stderr, "ipcd-bench-sock: logs kept in %s\n", tmpdir);
	exit(1);
}

static void on_signal(int sig)
{
	unsigned int i;

	for (i = 0; i < IPCD_ARRAY_SIZE(live); i++)
		if (live[i] > 0)
			kill(live[i], SIGKILL);
	if (hog_pid > 0)
		kill(hog_pid, SIGKILL);
	if (mon_pid > 0)
		kill(mon_pid, SIGTERM);
	ipcd_bench_say_raw("ipcd-bench-sock: interrupted\n");
	_exit(128 + sig);
}

static void *xmalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
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

/* The text after @prefix on the first line that starts with it, or NULL. */
static const char *find_line(const struct ipcd_bench_buf *b, const char *prefix)
{
	const char *p = b->p;
	size_t k = strlen(prefix);

	while (p && *p) {
		if (!strncmp(p, prefix, k) && strchr(p, '\n'))
			return p + k;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

static void set_affinity(int cpu)
{
	cpu_set_t set = all_cpus;

	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
	}
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity(%d): %s", cpu, strerror(errno));
}

/* The first lines of a log, on one line, for an error message. */
static void log_head(const char *path, char *b, size_t len)
{
	ipcd_bench_log_head(path, 3, b, len);
}

/* Run @argv (output captured) for at most @timeout_ns: its wait status, -1 (timed out). */
static int run_capture(const char *const argv[], struct ipcd_bench_buf *out, uint64_t timeout_ns)
{
	char **env = env_kernel ? env_kernel : environ;
	int st, rc = ipcd_bench_run_capture(argv, env, out, timeout_ns, POLL_MS, &st);

	if (rc && rc != -ETIMEDOUT)
		die("running %s: %s", argv[0], strerror(-rc));
	return rc ? -1 : st;
}

/* ---- the monitor ---------------------------------------------------------------- */

static bool monitor_alive(void)
{
	int st;

	if (mon_pid <= 0)
		return false;
	if (waitpid(mon_pid, &st, WNOHANG) == mon_pid) {
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
			fprintf(stderr, "ipcd-bench-sock: the monitor did not exit on SIGTERM; "
				"killing it\n");
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			break;
		}
		usleep(10000);
	}
	mon_pid = -1;
}

/*
 * The monitor's counters (ipcdctl counters --json): connections.created, and
 * connections.pipes, .socketpairs and .unix_connected when the monitor has them.
 */
static int monitor_counters(struct mctr *m, char *err, size_t len)
{
	const char *argv[] = { o.ipcdctl, "--socket", mon_sock, "--json", "counters", NULL };
	struct ipcd_bench_buf out = { 0 };
	const char *conn, *end, *p;
	unsigned int g;
	int st;

	memset(m, 0, sizeof(*m));
	st = run_capture(argv, &out, 10 * NS_PER_S);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		out.p[strcspn(out.p, "\n")] = '\0';
		snprintf(err, len, "ipcdctl counters %s: %.200s",
			 st == -1 ? "timed out" : "failed", out.p);
		free(out.p);
		return -1;
	}
	conn = ipcd_bench_json_obj(out.p, "connections", &end);
	p = conn ? ipcd_bench_json_key(conn, NULL, "created") : NULL;
	if (!p) {
		snprintf(err, len, "ipcdctl counters --json: no connections.created in %.200s",
			 out.p);
		free(out.p);
		return -1;
	}
	m->created = strtoull(p, NULL, 10);
	for (g = 0; g < N_GRP && end; g++) {
		p = ipcd_bench_json_key(conn, end, grp_counter[g]);
		if (p) {
			m->have[g] = true;
			m->grp[g] = strtoull(p, NULL, 10);
		}
	}
	free(out.p);
	return 0;
}

/* The monitor's count of connections it created (ipcdctl counters --json). */
static int monitor_created(uint64_t *created, char *err, size_t len)
{
	struct mctr m;

	if (monitor_counters(&m, err, len))
		return -1;
	*created = m.created;
	return 0;
}

/*
 * The embedded default config (--print-default-config), with the control
 * socket moved into the temp dir; the monitor then runs in the foreground.
 */
static int start_monitor(char *err, size_t len)
{
	const char *argv[] = { o.monitor, "--print-default-config", NULL };
	struct ipcd_bench_buf def = { 0 };
	char conf[128];
	int st, i;

	st = run_capture(argv, &def, 10 * NS_PER_S);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(err, len, "%s --print-default-config failed: %.200s", o.monitor, def.p);
		free(def.p);
		return -1;
	}
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
			return 0;
		if (!monitor_alive()) {
			char head[300];

			log_head(mon_log, head, sizeof(head));
			snprintf(err, len, "the monitor exited at start: %s", head);
			return -1;
		}
		usleep(10000);
	}
	snprintf(err, len, "the monitor did not create %s within 5 s (log: %s)", mon_sock,
		 mon_log);
	return -1;
}

/* ---- helpers of the spin and busy conditions ------------------------------------ */

static void start_hog(void)
{
	hog_pid = ipcd_bench_fork();
	if (hog_pid < 0)
		die("fork: %s", strerror(errno));
	if (hog_pid == 0) {
		volatile uint64_t x = 0;
		uint32_t i;

		ipcd_bench_child_signals();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != driver_pid)
			_exit(0);
		set_affinity(-1);
		for (;;) {
			for (i = 0; i < (1u << 24); i++)
				x = x + 1;
			if (getppid() != driver_pid)
				_exit(0);
		}
	}
}

static void stop_hog(void)
{
	if (hog_pid > 0) {
		kill(hog_pid, SIGKILL);
		waitpid(hog_pid, NULL, 0);
		hog_pid = -1;
	}
}

/*
 * The physical floor, for reference: two processes on the spin condition's
 * CPUs ping-pong one cache line. 0 when it cannot be measured.
 */
static double probe_floor(void)
{
	enum { WARM = 1000, ROUNDS = 20000 };
	static uint32_t t[ROUNDS];
	uint64_t *line, i, guard;
	double p50 = 0;
	int st;
	pid_t pid;

	if (cpu_b < 0)
		return 0;
	line = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (line == MAP_FAILED)
		return 0;
	pid = ipcd_bench_fork();
	if (pid == 0) {
		ipcd_bench_child_signals();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		set_affinity(cpu_b);
		for (i = 1; i <= WARM + ROUNDS; i++) {
			guard = ipcd_now_ns() + NS_PER_S;
			while (ipcd_load_acquire(line) != 2 * i - 1)	/* A1: pairs with R2 */
				if (ipcd_now_ns() > guard)
					_exit(1);
			ipcd_store_release(line, 2 * i);		/* R1: pairs with A2 */
		}
		_exit(0);
	}
	if (pid < 0) {
		munmap(line, 4096);
		return 0;
	}
	set_affinity(cpu_a);
	for (i = 1; i <= WARM + ROUNDS; i++) {
		uint64_t t0 = ipcd_now_ns();

		guard = t0 + NS_PER_S;
		ipcd_store_release(line, 2 * i - 1);			/* R2: pairs with A1 */
		while (ipcd_load_acquire(line) != 2 * i)		/* A2: pairs with R1 */
			if (ipcd_now_ns() > guard)
				break;
		if (ipcd_load_acquire(line) != 2 * i)
			break;
		if (i > WARM)
			t[i - WARM - 1] = clamp32(ipcd_now_ns() - t0);
	}
	set_affinity(-1);
	if (i > WARM + ROUNDS) {
		qsort(t, ROUNDS, sizeof(*t), ipcd_bench_cmp_u32);
		p50 = t[ROUNDS / 2];
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	munmap(line, 4096);
	return p50;
}

/* ---- one measurement block: a server and a client, re-executed ---------------- */

/* Re-execute this program as a role; its log is @log.log in the temp dir. */
static void spawn_exec(struct child *c, const char *what, const char *log, char **env, int cpu,
		       const char *const argv[], unsigned int slot)
{
	int p[2];
	pid_t pid;

	memset(c, 0, sizeof(*c));
	c->what = what;
	c->fd = -1;
	snprintf(c->logpath, sizeof(c->logpath), "%s/%s.log", tmpdir, log);
	if (pipe2(p, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	pid = ipcd_bench_fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int lg, w, m, nul;

		ipcd_bench_child_signals();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != driver_pid)
			_exit(127);
		set_affinity(cpu);
		lg = open(c->logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		/* Above fd 4 first, so that neither dup2() below overwrites the other's source. */
		w = fcntl(p[1], F_DUPFD_CLOEXEC, 10);
		m = fcntl(shm_fd, F_DUPFD_CLOEXEC, 10);
		if (lg < 0 || nul < 0 || w < 0 || m < 0 || dup2(nul, 0) < 0 || dup2(lg, 1) < 0 ||
		    dup2(lg, 2) < 0 || dup2(w, REPORT_FD) < 0 || dup2(m, SHM_FD) < 0)
			_exit(127);
		execve("/proc/self/exe", (char *const *)argv, env);
		fprintf(stderr, "exec /proc/self/exe: %s\n", strerror(errno));
		_exit(127);
	}
	close(p[1]);
	c->fd = p[0];
	c->pid = pid;
	live[slot] = pid;
}

static void spawn_role(struct child *c, const char *what, enum tp tp, int cpu,
		       const char *const argv[], unsigned int slot)
{
	char log[64];

	snprintf(log, sizeof(log), "%s-%s", tp_name[tp], what);
	spawn_exec(c, what, log, tp == TP_IPCD ? env_ipcd : env_kernel, cpu, argv, slot);
}

static bool child_failed(const struct child *c)
{
	return c->reaped && !(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0);
}

enum pump_until { UNTIL_LISTENING, UNTIL_DONE };

/*
 * Read the roles' report pipes and reap them until @what holds, a role failed,
 * or @until passes (then false).
 */
static bool pump(struct child *k, unsigned int nk, enum pump_until what, uint64_t until)
{
	for (;;) {
		struct pollfd pf[2];
		unsigned int i, np = 0, idx[2];
		bool done = true;
		uint64_t t;

		for (i = 0; i < nk; i++) {
			if (!k[i].reaped && waitpid(k[i].pid, &k[i].status, WNOHANG) == k[i].pid) {
				k[i].reaped = true;
				live[i] = -1;
			}
			if (child_failed(&k[i]))
				return true;
			if (k[i].fd >= 0 || !k[i].reaped)
				done = false;
		}
		if (what == UNTIL_LISTENING && (find_line(&k[0].out, "listening ") ||
						 (k[0].fd < 0 && k[0].reaped)))
			return true;
		if (what == UNTIL_DONE && done)
			return true;
		t = ipcd_now_ns();
		if (t >= until)
			return false;
		for (i = 0; i < nk; i++)
			if (k[i].fd >= 0) {
				pf[np] = (struct pollfd){ .fd = k[i].fd, .events = POLLIN };
				idx[np++] = i;
			}
		if (poll(pf, np, (int)IPCD_MIN((until - t) / 1000000 + 1, (uint64_t)POLL_MS)) <= 0)
			continue;
		for (i = 0; i < np; i++) {
			struct child *c = &k[idx[i]];
			char chunk[65536];
			ssize_t n;

			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(c->fd, chunk, sizeof(chunk));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(c->fd);
				c->fd = -1;
			} else if (ipcd_bench_buf_add(&c->out, chunk, (size_t)n)) {
				die("out of memory");
			}
		}
	}
}

static void kill_roles(struct child *k, unsigned int nk)
{
	unsigned int i;

	for (i = 0; i < nk; i++) {
		if (!k[i].reaped) {
			kill(k[i].pid, SIGKILL);
			while (waitpid(k[i].pid, &k[i].status, 0) < 0 && errno == EINTR)
				;
			k[i].reaped = true;
		}
		live[i] = -1;
		if (k[i].fd >= 0)
			close(k[i].fd);
		k[i].fd = -1;
	}
}

static __attribute__((format(printf, 2, 3))) void fail(struct outcome *out, const char *fmt,
							 ...)
{
	va_list ap;

	if (out->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(out->err, sizeof(out->err), fmt, ap);
	va_end(ap);
}

/* "server exited with status 3: <log>" for the first role that failed, or the state of both. */
static void explain(struct outcome *out, const char *what, struct child *k, unsigned int nk)
{
	char st[96], head[300];
	unsigned int i;

	for (i = 0; i < nk; i++)
		if (child_failed(&k[i])) {
			ipcd_bench_describe_status(k[i].status, st, sizeof(st));
			log_head(k[i].logpath, head, sizeof(head));
			fail(out, "%s%s%s %s%s%s", what, *what ? ": " : "", k[i].what, st,
			     head[0] ? ": " : "", head);
			return;
		}
	for (i = 0; i < nk; i++)
		if (!k[i].reaped) {
			log_head(k[i].logpath, head, sizeof(head));
			fail(out, "%s (the %s was still running%s%s)", what, k[i].what,
			     head[0] ? "; it said: " : "", head);
			return;
		}
	fail(out, "%s", what);
}

static bool check_hello(struct outcome *out, const struct block *b, const struct child *c)
{
	const char *h = find_line(&c->out, "hello ");
	int pid, pre;

	if (!h || sscanf(h, "%d %d", &pid, &pre) != 2) {
		fail(out, "the %s did not report", c->what);
		return false;
	}
	if (b->tp == TP_IPCD && !pre) {
		fail(out, "preload not loaded in the %s (pid %d): %s is not in its /proc/PID/maps",
		     c->what, pid, o.preload);
		return false;
	}
	if (b->tp != TP_IPCD && pre) {
		fail(out, "libipcd is loaded in the %s (pid %d) of a kernel transport "
		     "(/etc/ld.so.preload?)", c->what, pid);
		return false;
	}
	return true;
}

/* The "rtt N" line and the N samples after it (at most @max). */
static bool parse_samples(struct outcome *out, const struct child *c, uint64_t max)
{
	const char *p = find_line(&c->out, "rtt ");
	uint64_t i;
	char *e;

	if (!p)
		return false;
	out->n = strtoull(p, &e, 10);
	if (!out->n || out->n > max)
		return false;
	out->s = xmalloc(out->n * sizeof(*out->s));
	for (i = 0; i < out->n; i++) {
		p = e + 1;
		out->s[i] = (uint32_t)strtoul(p, &e, 10);
		if (e == p || *e != '\n')
			return false;
	}
	return true;
}

static bool parse_client(struct outcome *out, const struct block *b, const struct child *c)
{
	const char *p = find_line(&c->out, "conns ");
	size_t len = c->out.len;

	if (len < 3 || strcmp(c->out.p + len - 3, "ok\n") || !p) {
		fail(out, "the client's report is incomplete");
		return false;
	}
	out->conns = strtoull(p, NULL, 10);
	if (b->test == T_RTT) {
		if (!parse_samples(out, c, b->count))
			goto bad;
		return true;
	}
	p = find_line(&c->out, b->test == T_RATE ? "rate " : "conn ");
	if (!p || sscanf(p, "%" SCNu64 " %" SCNu64, &out->units, &out->ns) != 2 || !out->ns ||
	    !out->units)
		goto bad;
	return true;
bad:
	fail(out, "the client's report does not parse");
	return false;
}

/* After an ipcd block: did the monitor create every connection the client opened? */
static bool check_accelerated(struct outcome *out)
{
	char why[ERR_LEN];
	uint64_t created, delta;

	if (!monitor_alive()) {
		char head[300];

		log_head(mon_log, head, sizeof(head));
		fail(out, "the monitor exited during the run: %s", head);
		return false;
	}
	if (monitor_created(&created, why, sizeof(why))) {
		fail(out, "%s", why);
		return false;
	}
	delta = created - accel_base;
	accel_base = created;
	ipcd_conns += out->conns;
	ipcd_accel += delta;
	if (delta == 0) {
		ipcd_not_accelerated = true;
		fail(out, "NOT ACCELERATED (all traffic went to the kernel): the monitor created "
		     "0 of the block's %" PRIu64 " connections", out->conns);
		return false;
	}
	if (delta < out->conns) {
		fail(out, "only %" PRIu64 " of %" PRIu64 " connections accelerated (the rest went "
		     "to the kernel)", delta, out->conns);
		return false;
	}
	return true;
}

static bool run_block(const struct block *b, struct outcome *out)
{
	char size[16], count[24], min[24], budget[24], tmo[16], port[16];
	const char *family = b->tp == TP_UNIX ? "unix" : "tcp";
	const char *addr = b->tp == TP_UNIX ? unix_path : "127.0.0.1";
	const char *argv[] = { "ipcd-bench-sock", "--role", "server", "--test", test_name[b->test],
			       "--family", family, "--addr", addr, "--port", "0", "--size", size,
			       "--count", count, "--min", min, "--budget-ns", budget,
			       "--timeout", tmo, NULL };
	struct child k[2] = { 0 };
	uint64_t until;
	const char *lp;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	snprintf(size, sizeof(size), "%u", b->size);
	snprintf(count, sizeof(count), "%" PRIu64, b->count);
	snprintf(min, sizeof(min), "%" PRIu64, b->min);
	snprintf(budget, sizeof(budget), "%" PRIu64, b->budget_ns);
	snprintf(tmo, sizeof(tmo), "%u", o.role_timeout_s);
	ipcd_store_release(stop_word, 0);

	spawn_role(&k[0], "server", b->tp, b->srv_cpu, argv, 0);
	if (!pump(k, 1, UNTIL_LISTENING, ipcd_now_ns() + START_NS)) {
		explain(out, "timed out waiting for the server to listen", k, 1);
		kill_roles(k, 1);
		goto out_free;
	}
	lp = find_line(&k[0].out, "listening ");
	if (!lp) {
		explain(out, "", k, 1);
		if (!out->err[0])
			fail(out, "the server exited without listening");
		kill_roles(k, 1);
		goto out_free;
	}
	snprintf(port, sizeof(port), "%u", (unsigned int)strtoul(lp, NULL, 10));
	argv[2] = "client";
	argv[10] = port;
	spawn_role(&k[1], "client", b->tp, b->cli_cpu, argv, 1);

	until = ipcd_now_ns() + b->budget_ns + (uint64_t)o.role_timeout_s * NS_PER_S + REAP_NS;
	if (!pump(k, 2, UNTIL_DONE, until)) {
		explain(out, "timed out (a role hung: no progress, no exit)", k, 2);
		kill_roles(k, 2);
		goto out_free;
	}
	if (child_failed(&k[0]) || child_failed(&k[1])) {
		explain(out, "", k, 2);
		kill_roles(k, 2);
		goto out_free;
	}
	kill_roles(k, 2);	/* all reaped already: closes nothing but bookkeeping */
	if (!check_hello(out, b, &k[0]) || !check_hello(out, b, &k[1]) ||
	    !find_line(&k[0].out, "done ") || !parse_client(out, b, &k[1])) {
		fail(out, "a role's report is incomplete");
		goto out_free;
	}
	ok = b->tp != TP_IPCD || check_accelerated(out);
out_free:
	free(k[0].out.p);
	if (k[1].what)
		free(k[1].out.p);
	if (!ok) {
		free(out->s);
		out->s = NULL;
	}
	return ok;
}

/* ---- one pipe, socketpair or named AF_UNIX block: one role, which forks its peer - */

struct xblock {
	enum grp g;
	enum side side;
	enum xtest test;
	uint32_t size;
	uint64_t count, min, budget_ns;
	int cpu, peer_cpu;		/* -1: all allowed CPUs */
};

/*
 * After an ipcd pipe, socketpair or named AF_UNIX block: did the monitor's
 * counter (connections.pipes, .socketpairs or .unix_connected) grow by what
 * the block made?
 */
static bool check_ipc_accel(enum grp g, const struct mctr *before, struct outcome *out)
{
	char why[ERR_LEN];
	struct mctr now;
	uint64_t delta;

	if (!monitor_alive()) {
		char head[300];

		log_head(mon_log, head, sizeof(head));
		fail(out, "the monitor exited during the run: %s", head);
		return false;
	}
	if (monitor_counters(&now, why, sizeof(why))) {
		fail(out, "%s", why);
		return false;
	}
	accel_base = now.created;	/* the TCP blocks' check counts from here on */
	grp_made[g] += out->conns;
	if (!before->have[g] || !now.have[g]) {
		if (!grp_not_accel[g])
			snprintf(grp_not_accel_why[g], sizeof(grp_not_accel_why[g]),
				 "counter %s absent", grp_counter[g]);
		grp_not_accel[g] = true;
		fail(out, "NOT accelerated: ipcdctl counters has no connections.%s, so nothing "
		     "shows that the block's %" PRIu64 " %s%s went through ipcd", grp_counter[g],
		     out->conns, grp_unit[g], out->conns == 1 ? "" : "s");
		return false;
	}
	delta = now.grp[g] - before->grp[g];
	grp_counted[g] += delta;
	if (delta < out->conns) {
		if (!grp_not_accel[g])
			snprintf(grp_not_accel_why[g], sizeof(grp_not_accel_why[g]),
				 "counter %s +%" PRIu64, grp_counter[g], delta);
		grp_not_accel[g] = true;
		fail(out, "NOT accelerated (counter %s +%" PRIu64 "; the block made %" PRIu64
		     " %s%s%s)", grp_counter[g], delta, out->conns, grp_unit[g],
		     out->conns == 1 ? "" : "s", delta ? ": the rest went to the kernel" : "");
		return false;
	}
	return true;
}

static bool run_solo(const struct xblock *b, struct outcome *out)
{
	char size[16], count[24], min[24], budget[24], tmo[16], pcpu[16], log[64], why[ERR_LEN];
	const char *argv[] = { "ipcd-bench-sock", "--role", "parent", "--test",
			       xtest_name[b->test], "--size", size, "--count", count, "--min", min,
			       "--budget-ns", budget, "--timeout", tmo, "--peer-cpu", pcpu, NULL };
	const struct block hb = { .tp = b->side == S_IPCD ? TP_IPCD : TP_TCP };
	struct child k[1] = { 0 };
	struct mctr before = { 0 };
	const char *p;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	snprintf(size, sizeof(size), "%u", b->size);
	snprintf(count, sizeof(count), "%" PRIu64, b->count);
	snprintf(min, sizeof(min), "%" PRIu64, b->min);
	snprintf(budget, sizeof(budget), "%" PRIu64, b->budget_ns);
	snprintf(tmo, sizeof(tmo), "%u", o.role_timeout_s);
	snprintf(pcpu, sizeof(pcpu), "%d", b->peer_cpu);
	snprintf(log, sizeof(log), "%s-%s", xtest_name[b->test],
		 b->side == S_IPCD ? "ipcd" : "kernel");
	if (b->side == S_IPCD && monitor_counters(&before, why, sizeof(why))) {
		fail(out, "%s", why);
		return false;
	}

	spawn_exec(&k[0], "role", log, b->side == S_IPCD ? env_ipcd : env_kernel, b->cpu, argv,
		   0);
	if (!pump(k, 1, UNTIL_DONE,
		  ipcd_now_ns() + b->budget_ns + (uint64_t)o.role_timeout_s * NS_PER_S + REAP_NS)) {
		explain(out, "timed out (the role or its forked peer hung: no progress, no exit)",
			k, 1);
		kill_roles(k, 1);
		goto out_free;
	}
	if (child_failed(&k[0])) {
		explain(out, "", k, 1);
		kill_roles(k, 1);
		goto out_free;
	}
	kill_roles(k, 1);	/* reaped already: bookkeeping only */
	if (!check_hello(out, &hb, &k[0]))
		goto out_free;
	p = find_line(&k[0].out, "made ");
	if (k[0].out.len < 3 || strcmp(k[0].out.p + k[0].out.len - 3, "ok\n") || !p) {
		fail(out, "the role's report is incomplete");
		goto out_free;
	}
	out->conns = strtoull(p, NULL, 10);
	if (b->test == X_PIPE_RTT || b->test == X_PAIR_RTT || b->test == X_UNIX_RTT) {
		if (!parse_samples(out, &k[0], b->count)) {
			fail(out, "the role's report does not parse");
			goto out_free;
		}
	} else {
		p = find_line(&k[0].out, b->test == X_PIPE_TPUT ? "bytes " : "rate ");
		if (!p || sscanf(p, "%" SCNu64 " %" SCNu64, &out->units, &out->ns) != 2 ||
		    !out->ns || !out->units) {
			fail(out, "the role's report does not parse");
			goto out_free;
		}
	}
	ok = b->side != S_IPCD || check_ipc_accel(b->g, &before, out);
out_free:
	free(k[0].out.p);
	if (!ok) {
		free(out->s);
		out->s = NULL;
	}
	return ok;
}

/* ---- the measurements ------------------------------------------------------------ */

/* The transports in a rotated order, so that none always runs first. */
static unsigned int order(unsigned int rot, enum tp *out)
{
	enum tp on[N_TP];
	unsigned int t, n = 0;

	for (t = 0; t < N_TP; t++)
		if (o.tp_on[t])
			on[n++] = (enum tp)t;
	for (t = 0; t < n; t++)
		out[t] = on[(t + rot) % n];
	return n;
}

/* Returns false (and fills @err) when @tp failed earlier in the run: skip it. */
static bool usable(enum tp tp, char *err)
{
	if (!tp_failed[tp])
		return true;
	if (!err[0])
		snprintf(err, ERR_LEN, "not run: %s failed earlier (see FAILED below)",
			 tp_name[tp]);
	return false;
}

/* A progress line on a terminal, rewritten in place; nothing when stderr is not one. */
static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
	va_list ap;

	if (!isatty(STDERR_FILENO))
		return;
	fputc('\r', stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\033[K", stderr);
}

static void progress_end(void)
{
	if (isatty(STDERR_FILENO))
		fputs("\r\033[K", stderr);
}

static void transport_failed(enum tp tp, const char *what, const char *why, char *err)
{
	snprintf(err, ERR_LEN, "FAILED in %.60s: %.420s", what, why);
	if (!tp_failed[tp]) {
		tp_failed[tp] = true;
		snprintf(tp_err[tp], ERR_LEN, "%.60s: %.420s", what, why);
		progress_end();
		fprintf(stderr, "  %s FAILED in %s: %s\n", tp_name[tp], what, why);
	}
}

static void place(enum cond c, struct block *b)
{
	b->srv_cpu = c == C_SPIN ? cpu_a : -1;
	b->cli_cpu = c == C_SPIN ? cpu_b : -1;
}

static void finish_rtt(struct rtt_cell *cell)
{
	if (!cell->ok || !cell->n) {
		cell->ok = false;
		return;
	}
	qsort(cell->s, cell->n, sizeof(uint32_t), ipcd_bench_cmp_u32);
	cell->min = cell->s[0];
	cell->p50 = cell->s[cell->n / 2];
	cell->p99 = cell->s[cell->n * 99 / 100];
	cell->max = cell->s[cell->n - 1];
}

static void run_rtt(enum cond c, struct cond_res *r)
{
	unsigned int round, si, t, n;
	enum tp ord[N_TP];

	for (si = 0; si < N_RTT; si++)
		for (t = 0; t < N_TP; t++) {
			r->rtt[si][t].ok = o.tp_on[t];
			r->rtt[si][t].s = xmalloc((size_t)o.rtt_target * sizeof(uint32_t));
		}
	for (round = 0; round < o.rtt_rounds; round++) {
		for (si = 0; si < N_RTT; si++) {
			progress("  %s: round trip, round %u/%u, %u B", cond_name[c], round + 1,
				 o.rtt_rounds, rtt_sizes[si]);
			n = order(round + si, ord);
			for (t = 0; t < n; t++) {
				struct rtt_cell *cell = &r->rtt[si][ord[t]];
				struct block b = { .tp = ord[t], .test = T_RTT,
						   .size = rtt_sizes[si] };
				struct outcome out;
				char what[64];

				if (!cell->ok || !usable(ord[t], cell->err)) {
					cell->ok = false;
					continue;
				}
				place(c, &b);
				b.count = o.rtt_target / o.rtt_rounds;
				b.min = o.rtt_min / o.rtt_rounds;
				b.budget_ns = o.rtt_budget_ns / o.rtt_rounds;
				if (!run_block(&b, &out)) {
					snprintf(what, sizeof(what), "%s %u B round trip",
						 cond_name[c], rtt_sizes[si]);
					transport_failed(ord[t], what, out.err, cell->err);
					cell->ok = false;
					continue;
				}
				memcpy(cell->s + cell->n, out.s, out.n * sizeof(uint32_t));
				cell->n += out.n;
				free(out.s);
			}
		}
	}
	progress_end();
	for (si = 0; si < N_RTT; si++)
		for (t = 0; t < N_TP; t++)
			finish_rtt(&r->rtt[si][t]);
}

static void finish_runs(struct runs_cell *cell)
{
	double v[MAX_RUNS];

	if (!cell->ok || !cell->runs) {
		cell->ok = false;
		return;
	}
	memcpy(v, cell->v, cell->runs * sizeof(double));
	qsort(v, cell->runs, sizeof(double), ipcd_bench_cmp_dbl);
	cell->min = v[0];
	cell->max = v[cell->runs - 1];
	cell->med = v[cell->runs / 2];
}

/* One-way (test T_RATE, per size) or connection setup (T_CONN): interleaved runs. */
static void run_runs(enum cond c, enum test test, struct runs_cell *cells, uint32_t size)
{
	unsigned int run, t, n, runs = test == T_RATE ? o.rate_runs : o.conn_runs;
	enum tp ord[N_TP];

	for (t = 0; t < N_TP; t++)
		cells[t].ok = o.tp_on[t];
	for (run = 0; run < runs; run++) {
		if (test == T_RATE)
			progress("  %s: one-way %u B, run %u/%u", cond_name[c], size, run + 1,
				 runs);
		else
			progress("  %s: connection setup, run %u/%u", cond_name[c], run + 1,
				 runs);
		n = order(run, ord);
		for (t = 0; t < n; t++) {
			struct runs_cell *cell = &cells[ord[t]];
			struct block b = { .tp = ord[t], .test = test, .size = size };
			struct outcome out;
			char what[64];

			if (!cell->ok || !usable(ord[t], cell->err)) {
				cell->ok = false;
				continue;
			}
			place(c, &b);
			if (test == T_RATE) {
				b.count = o.rate_bytes / size;
			} else {
				b.size = 1;
				b.count = o.conn_target;
				b.min = o.conn_min;
				b.budget_ns = o.conn_budget_ns;
			}
			if (!run_block(&b, &out)) {
				if (test == T_RATE)
					snprintf(what, sizeof(what), "%s %u B one-way",
						 cond_name[c], size);
				else
					snprintf(what, sizeof(what), "%s connection setup",
						 cond_name[c]);
				transport_failed(ord[t], what, out.err, cell->err);
				cell->ok = false;
				continue;
			}
			cell->v[cell->runs++] = (double)out.units * 1e9 / (double)out.ns;
		}
	}
	progress_end();
	for (t = 0; t < N_TP; t++)
		finish_runs(&cells[t]);
}

/* ---- the pipe, socketpair and named AF_UNIX groups --------------------------------- */

static bool side_on(enum side sd)
{
	return sd == S_KERN || o.tp_on[TP_IPCD];
}

static const char *side_who(enum side sd)
{
	return sd == S_IPCD ? "ipcd" : "kernel";
}

/* The sides in a rotated order, as order() does for the transports. */
static unsigned int side_order(unsigned int rot, enum side *out)
{
	enum side on[N_SIDE];
	unsigned int sd, n = 0;

	for (sd = 0; sd < N_SIDE; sd++)
		if (side_on((enum side)sd))
			on[n++] = (enum side)sd;
	for (sd = 0; sd < n; sd++)
		out[sd] = on[(sd + rot) % n];
	return n;
}

static void grp_fail(enum grp g, enum side sd, const char *what, const char *why, char *err)
{
	snprintf(err, ERR_LEN, "FAILED in %.60s: %.420s", what, why);
	if (!grp_failed[g][sd]) {
		grp_failed[g][sd] = true;
		snprintf(grp_err[g][sd], ERR_LEN, "%.60s: %.420s", what, why);
		progress_end();
		fprintf(stderr, "  %s %s FAILED in %s: %s\n", side_who(sd), grp_name[g], what, why);
	}
}

/* As usable(): a side that failed earlier in its group is not run again. */
static bool side_usable(enum grp g, enum side sd, char *err)
{
	if (!grp_failed[g][sd])
		return true;
	if (!err[0])
		snprintf(err, ERR_LEN, "not run: %s %s failed earlier (see FAILED below)",
			 side_who(sd), grp_name[g]);
	return false;
}

/* spin: the role on the server's CPU, its peer on the client's; busy: both float. */
static void xplace(enum cond c, struct xblock *b)
{
	b->cpu = c == C_SPIN ? cpu_a : -1;
	b->peer_cpu = c == C_SPIN ? cpu_b : -1;
}

/* 64 B ping-pong (X_*_RTT): o.rtt_rounds blocks per side, interleaved. */
static void run_ipc_rtt(enum cond c, enum grp g, enum xtest test, struct rtt_cell *cells)
{
	unsigned int round, t, n;
	enum side ord[N_SIDE];

	for (t = 0; t < N_SIDE; t++) {
		cells[t].ok = side_on((enum side)t);
		cells[t].s = xmalloc((size_t)o.rtt_target * sizeof(uint32_t));
	}
	for (round = 0; round < o.rtt_rounds; round++) {
		progress("  %s: %s round trip, round %u/%u", cond_name[c], grp_title[g], round + 1,
			 o.rtt_rounds);
		n = side_order(round, ord);
		for (t = 0; t < n; t++) {
			struct rtt_cell *cell = &cells[ord[t]];
			struct xblock b = { .g = g, .side = ord[t], .test = test,
					    .size = IPC_RTT_SIZE };
			struct outcome out;
			char what[64];

			if (!cell->ok || !side_usable(g, ord[t], cell->err)) {
				cell->ok = false;
				continue;
			}
			xplace(c, &b);
			b.count = o.rtt_target / o.rtt_rounds;
			b.min = o.rtt_min / o.rtt_rounds;
			b.budget_ns = o.rtt_budget_ns / o.rtt_rounds;
			if (!run_solo(&b, &out)) {
				snprintf(what, sizeof(what), "%s %s %u B round trip", cond_name[c],
					 grp_title[g], IPC_RTT_SIZE);
				grp_fail(g, ord[t], what, out.err, cell->err);
				cell->ok = false;
				continue;
			}
			memcpy(cell->s + cell->n, out.s, out.n * sizeof(uint32_t));
			cell->n += out.n;
			free(out.s);
		}
	}
	progress_end();
	for (t = 0; t < N_SIDE; t++)
		finish_rtt(&cells[t]);
}

/* Pipe throughput (bytes/s) or stream one-way messages (messages/s): interleaved runs. */
static void run_ipc_runs(enum cond c, enum grp g, enum xtest test, struct runs_cell *cells,
			 unsigned int runs)
{
	unsigned int run, t, n;
	enum side ord[N_SIDE];

	for (t = 0; t < N_SIDE; t++)
		cells[t].ok = side_on((enum side)t);
	for (run = 0; run < runs; run++) {
		progress("  %s: %s %s, run %u/%u", cond_name[c], grp_title[g],
			 test == X_PIPE_TPUT ? "throughput" : "one-way", run + 1, runs);
		n = side_order(run, ord);
		for (t = 0; t < n; t++) {
			struct runs_cell *cell = &cells[ord[t]];
			struct xblock b = { .g = g, .side = ord[t], .test = test };
			struct outcome out;
			char what[64];

			if (!cell->ok || !side_usable(g, ord[t], cell->err)) {
				cell->ok = false;
				continue;
			}
			xplace(c, &b);
			b.size = test == X_PIPE_TPUT ? CHUNK : IPC_RATE_SIZE;
			b.count = (test == X_PIPE_TPUT ? o.pipe_bytes : o.rate_bytes) / b.size;
			if (!run_solo(&b, &out)) {
				if (test == X_PIPE_TPUT)
					snprintf(what, sizeof(what), "%s pipe throughput",
						 cond_name[c]);
				else
					snprintf(what, sizeof(what), "%s %s %u B one-way",
						 cond_name[c], grp_title[g], IPC_RATE_SIZE);
				grp_fail(g, ord[t], what, out.err, cell->err);
				cell->ok = false;
				continue;
			}
			cell->v[cell->runs++] = (double)out.units * 1e9 / (double)out.ns;
		}
	}
	progress_end();
	for (t = 0; t < N_SIDE; t++)
		finish_runs(&cells[t]);
}

static void run_ipc_group(enum cond c, enum grp g)
{
	struct ipc_res *r = &ires[c];

	r->ran[g] = true;
	getloadavg(r->load_start[g], 3);
	if (g == G_PIPE) {
		run_ipc_runs(c, g, X_PIPE_TPUT, r->pipe_tput, o.pipe_runs);
		run_ipc_rtt(c, g, X_PIPE_RTT, r->pipe_rtt);
	} else if (g == G_PAIR) {
		run_ipc_rtt(c, g, X_PAIR_RTT, r->pair_rtt);
		run_ipc_runs(c, g, X_PAIR_RATE, r->pair_rate, o.rate_runs);
	} else {
		run_ipc_rtt(c, g, X_UNIX_RTT, r->unix_rtt);
		run_ipc_runs(c, g, X_UNIX_RATE, r->unix_rate, o.rate_runs);
	}
	getloadavg(r->load_end[g], 3);
}

/* ---- output --------------------------------------------------------------------- */

static const char *size_str(uint32_t size, char *b, size_t len)
{
	if (size >= 1024 && size % 1024 == 0)
		snprintf(b, len, size >= (1u << 20) ? "%u MiB" : "%u KiB",
			 size >= (1u << 20) ? size >> 20 : size >> 10);
	else
		snprintf(b, len, "%u B", size);
	return b;
}

/* @r: how many times faster than kernel-tcp (> 1: faster). */
static const char *vs_str(enum tp tp, bool ok, double r, char *b, size_t len)
{
	if (tp == TP_TCP)
		snprintf(b, len, "(reference)");
	else if (!ok)
		snprintf(b, len, "n/a");
	else if (r >= 1)
		snprintf(b, len, "%.2fx faster", r);
	else
		snprintf(b, len, "%.2fx slower", 1 / r);
	return b;
}

static bool rtt_speedup(const struct cond_res *r, unsigned int si, enum tp tp, double *x)
{
	const struct rtt_cell *k = &r->rtt[si][TP_TCP], *c = &r->rtt[si][tp];

	if (!k->ok || !c->ok || c->p50 <= 0)
		return false;
	*x = k->p50 / c->p50;
	return true;
}

static bool runs_speedup(const struct runs_cell *cells, enum tp tp, double *x)
{
	if (!cells[TP_TCP].ok || !cells[tp].ok || cells[TP_TCP].med <= 0)
		return false;
	*x = cells[tp].med / cells[TP_TCP].med;
	return true;
}

static void print_err_row(const char *err)
{
	printf("%s\n", err[0] ? err : "not run");
}

static void print_rtt(enum cond c, const struct cond_res *r)
{
	unsigned int si, t;
	char sz[16], vs[32];

	printf("\n== %s: round trip (ping-pong: send + recv of the full size), us ==\n",
	       cond_name[c]);
	printf("%s\n", r->placement);
	printf("%-8s %-12s %10s %10s %8s   %s\n", "size", "transport", "p50", "p99", "samples",
	       "p50 vs kernel-tcp");
	for (si = 0; si < N_RTT; si++)
		for (t = 0; t < N_TP; t++) {
			const struct rtt_cell *cell = &r->rtt[si][t];
			double x = 0;
			bool ok;

			if (!o.tp_on[t])
				continue;
			printf("%-8s %-12s ", size_str(rtt_sizes[si], sz, sizeof(sz)), tp_name[t]);
			if (!cell->ok) {
				print_err_row(cell->err);
				continue;
			}
			ok = rtt_speedup(r, si, (enum tp)t, &x);
			printf("%10.2f %10.2f %8" PRIu64 "   %s\n", cell->p50 / 1e3,
			       cell->p99 / 1e3, cell->n, vs_str((enum tp)t, ok, x, vs, sizeof(vs)));
		}
}

static void print_runs(const struct runs_cell *cells, const char *label)
{
	char vs[32], range[64];
	unsigned int t;

	for (t = 0; t < N_TP; t++) {
		const struct runs_cell *cell = &cells[t];
		double x = 0;
		bool ok;

		if (!o.tp_on[t])
			continue;
		printf("%-8s %-12s ", label, tp_name[t]);
		if (!cell->ok) {
			print_err_row(cell->err);
			continue;
		}
		ok = runs_speedup(cells, (enum tp)t, &x);
		snprintf(range, sizeof(range), "%.0f .. %.0f", cell->min, cell->max);
		printf("%12.0f  %-24s  %s\n", cell->med, range,
		       vs_str((enum tp)t, ok, x, vs, sizeof(vs)));
	}
}

static void print_rate(enum cond c, const struct cond_res *r)
{
	unsigned int i;
	char sz[16];

	printf("\n== %s: one-way messages (one send() per message, %s per run), "
	       "median of %u runs ==\n", cond_name[c],
	       size_str((uint32_t)o.rate_bytes, sz, sizeof(sz)), o.rate_runs);
	printf("%-8s %-12s %12s  %-24s  %s\n", "size", "transport", "messages/s", "min .. max",
	       "vs kernel-tcp");
	for (i = 0; i < N_RATE; i++)
		print_runs(r->rate[i], size_str(rate_sizes[i], sz, sizeof(sz)));
}

static void print_conn(enum cond c, const struct cond_res *r)
{
	printf("\n== %s: connection setup (connect, accept, server closes, client sees EOF "
	       "and closes), median of %u runs ==\n", cond_name[c], o.conn_runs);
	printf("%-8s %-12s %12s  %-24s  %s\n", "", "transport", "conns/s", "min .. max",
	       "vs kernel-tcp");
	print_runs(r->conn, "");
}

static const char *ns_str(double v, char *b, size_t len)
{
	if (v > 0)
		snprintf(b, len, "%.0f ns", v);
	else
		snprintf(b, len, "n/a");
	return b;
}

static void print_floor(enum cond c, const struct cond_res *r)
{
	char a[32], b[32];

	if (c == C_SPIN && cpu_b >= 0)
		printf("\nfloor (one cache line ping-ponged between CPU %d and %d, for reference): "
		       "p50 %s before, %s after\n", cpu_a, cpu_b,
		       ns_str(r->floor_start, a, sizeof(a)), ns_str(r->floor_end, b, sizeof(b)));
}

struct target {
	const char *name;
	const char *unit;
	bool have;
	double value, limit;
	bool pass;
};

static unsigned int targets(struct target *t)
{
	const struct cond_res *s = &res[C_SPIN], *b = &res[C_BUSY];
	double x;

	t[0] = (struct target){ "64 B rtt p50 <= 0.5 us (spin)", "us", false, 0, 0.5, false };
	if (s->ran && s->rtt[RTT_64][TP_IPCD].ok) {
		t[0].have = true;
		t[0].value = s->rtt[RTT_64][TP_IPCD].p50 / 1e3;
		t[0].pass = t[0].value <= t[0].limit;
	}
	t[1] = (struct target){ "8 B messages/s >= 20x kernel-tcp (spin)", "x", false, 0, 20,
				false };
	if (s->ran && runs_speedup(s->rate[0], TP_IPCD, &x)) {
		t[1].have = true;
		t[1].value = x;
		t[1].pass = x >= t[1].limit;
	}
	t[2] = (struct target){ "connections/s >= 2x kernel-tcp (spin)", "x", false, 0, 2, false };
	if (s->ran && runs_speedup(s->conn, TP_IPCD, &x)) {
		t[2].have = true;
		t[2].value = x;
		t[2].pass = x >= t[2].limit;
	}
	t[3] = (struct target){ "64 B rtt p50 <= kernel-tcp's (busy)", "x kernel-tcp", false, 0, 1,
				false };
	if (b->ran && rtt_speedup(b, RTT_64, TP_IPCD, &x)) {
		t[3].have = true;
		t[3].value = 1 / x;
		t[3].pass = t[3].value <= t[3].limit;
	}
	return 4;
}

static void print_summary(void)
{
	unsigned int c, i, n;
	struct target t[4];
	double x;

	if (!o.tp_on[TP_IPCD] || !o.tp_on[TP_TCP] ||
	    !(o.test_on[T_RTT] || o.test_on[T_RATE] || o.test_on[T_CONN]))
		return;
	printf("\n== ipcd against kernel-tcp, same run ==\n");
	for (c = 0; c < N_COND; c++) {
		const struct cond_res *r = &res[c];

		if (!r->ran)
			continue;
		if (rtt_speedup(r, RTT_64, TP_IPCD, &x))
			printf("%s: ipcd 64 B rtt p50 %.2f us, %.1fx %s than kernel-tcp "
			       "(%.2f us)\n",
			       cond_name[c], r->rtt[RTT_64][TP_IPCD].p50 / 1e3,
			       x >= 1 ? x : 1 / x, x >= 1 ? "faster" : "slower",
			       r->rtt[RTT_64][TP_TCP].p50 / 1e3);
		if (runs_speedup(r->rate[0], TP_IPCD, &x))
			printf("%s: ipcd 8 B messages %.2f M/s, %.1fx kernel-tcp (%.2f M/s)\n",
			       cond_name[c], r->rate[0][TP_IPCD].med / 1e6, x,
			       r->rate[0][TP_TCP].med / 1e6);
		if (runs_speedup(r->conn, TP_IPCD, &x))
			printf("%s: ipcd connections %.0f/s, %.2fx kernel-tcp (%.0f/s)\n",
			       cond_name[c], r->conn[TP_IPCD].med, x, r->conn[TP_TCP].med);
	}
	if (tp_failed[TP_IPCD])
		printf("ipcd: FAILED: %s\n", tp_err[TP_IPCD]);
	n = targets(t);
	printf("\n== targets (issue #4; informational, the exit status does not depend on them) "
	       "==\n");
	for (i = 0; i < n; i++) {
		if (t[i].have)
			printf("%-42s %8.2f %-13s %s\n", t[i].name, t[i].value, t[i].unit,
			       t[i].pass ? "PASS" : "MISS");
		else
			printf("%-42s %8s %-13s n/a\n", t[i].name, "-", "");
	}
}

/* ---- output of the pipe, socketpair and named AF_UNIX groups --------------------- */

static bool ipc_rtt_speedup(const struct rtt_cell *cells, double *x)
{
	const struct rtt_cell *k = &cells[S_KERN], *c = &cells[S_IPCD];

	if (!k->ok || !c->ok || c->p50 <= 0)
		return false;
	*x = k->p50 / c->p50;
	return true;
}

static bool ipc_runs_speedup(const struct runs_cell *cells, double *x)
{
	if (!cells[S_KERN].ok || !cells[S_IPCD].ok || cells[S_KERN].med <= 0)
		return false;
	*x = cells[S_IPCD].med / cells[S_KERN].med;
	return true;
}

static bool ipc_ran(enum grp g)
{
	unsigned int c;

	for (c = 0; c < N_COND; c++)
		if (ires[c].ran[g])
			return true;
	return false;
}

static void ipc_placement(enum cond c, char *b, size_t len)
{
	if (c == C_SPIN && cpu_b >= 0)
		snprintf(b, len, "spin: the role pinned to CPU %d, its forked peer to CPU %d, "
			 "nothing else running (the monitor floats)", cpu_a, cpu_b);
	else if (c == C_SPIN)
		snprintf(b, len, "spin: ONLY ONE CPU allowed: the role and its peer run unpinned");
	else
		snprintf(b, len, "busy: the role, its forked peer and a CPU hog (a spinning "
			 "process), all free to migrate over the %d allowed CPUs",
			 CPU_COUNT(&all_cpus));
}

static void print_ipc_rtt(enum grp g, const struct rtt_cell *cells)
{
	unsigned int t;
	char vs[32], col[32];

	snprintf(col, sizeof(col), "p50 vs %s", side_name[g][S_KERN]);
	printf("%-8s %-12s %10s %10s %8s   %s\n", "size", "transport", "p50", "p99", "samples",
	       col);
	for (t = 0; t < N_SIDE; t++) {
		const struct rtt_cell *cell = &cells[t];
		double x = 0;
		bool ok;

		if (!side_on((enum side)t))
			continue;
		printf("%-8s %-12s ", "64 B", side_name[g][t]);
		if (!cell->ok) {
			print_err_row(cell->err);
			continue;
		}
		ok = ipc_rtt_speedup(cells, &x);
		printf("%10.2f %10.2f %8" PRIu64 "   %s\n", cell->p50 / 1e3, cell->p99 / 1e3,
		       cell->n, vs_str(t == S_KERN ? TP_TCP : TP_IPCD, ok, x, vs, sizeof(vs)));
	}
}

/* @scale: the figure printed is v / scale, with @prec decimals. */
static void print_ipc_runs(enum grp g, const struct runs_cell *cells, const char *label,
			   const char *unit, double scale, int prec)
{
	char vs[32], range[64], col[32];
	unsigned int t;

	snprintf(col, sizeof(col), "vs %s", side_name[g][S_KERN]);
	printf("%-8s %-12s %12s  %-24s  %s\n", label[0] ? "size" : "", "transport", unit,
	       "min .. max", col);
	for (t = 0; t < N_SIDE; t++) {
		const struct runs_cell *cell = &cells[t];
		double x = 0;
		bool ok;

		if (!side_on((enum side)t))
			continue;
		printf("%-8s %-12s ", label, side_name[g][t]);
		if (!cell->ok) {
			print_err_row(cell->err);
			continue;
		}
		ok = ipc_runs_speedup(cells, &x);
		snprintf(range, sizeof(range), "%.*f .. %.*f", prec, cell->min / scale, prec,
			 cell->max / scale);
		printf("%12.*f  %-24s  %s\n", prec, cell->med / scale, range,
		       vs_str(t == S_KERN ? TP_TCP : TP_IPCD, ok, x, vs, sizeof(vs)));
	}
}

static void print_ipc_group(enum cond c, enum grp g)
{
	const struct ipc_res *r = &ires[c];
	char place[200], sz[16];

	ipc_placement(c, place, sizeof(place));
	if (g == G_PIPE)
		printf("\n== %s: pipes (pipe(); the role and its forked peer), kernel against "
		       "ipcd ==\n", cond_name[c]);
	else if (g == G_PAIR)
		printf("\n== %s: socketpair(AF_UNIX, SOCK_STREAM) (the role and its forked peer), "
		       "kernel against ipcd ==\n", cond_name[c]);
	else
		printf("\n== %s: AF_UNIX named (a pathname SOCK_STREAM socket: the role accepts, "
		       "its forked peer connects), kernel against ipcd ==\n", cond_name[c]);
	printf("%s\n", place);
	printf("load average %.2f before, %.2f after\n", r->load_start[g][0], r->load_end[g][0]);
	if (g == G_PIPE) {
		printf("throughput: 64 KiB write()s into one pipe, %s per run, the reader "
		       "checksums every chunk; median of %u runs\n",
		       size_str((uint32_t)o.pipe_bytes, sz, sizeof(sz)), o.pipe_runs);
		print_ipc_runs(g, r->pipe_tput, "", "GB/s", 1e9, 2);
		printf("round trip: %u B ping-pong over two pipes (write + read of the full "
		       "size), us\n", IPC_RTT_SIZE);
		print_ipc_rtt(g, r->pipe_rtt);
	} else {
		printf("round trip: %u B ping-pong (send + recv of the full size), us\n",
		       IPC_RTT_SIZE);
		print_ipc_rtt(g, g == G_PAIR ? r->pair_rtt : r->unix_rtt);
		printf("one-way: %u B messages, one send() each, %s per run; median of %u runs\n",
		       IPC_RATE_SIZE, size_str((uint32_t)o.rate_bytes, sz, sizeof(sz)),
		       o.rate_runs);
		print_ipc_runs(g, g == G_PAIR ? r->pair_rate : r->unix_rate, "8 B", "messages/s", 1,
			       0);
	}
}

/* Issue #6's targets, in the spin condition. */
static unsigned int ipc_targets(struct target *t)
{
	const struct ipc_res *s = &ires[C_SPIN];
	double x;

	t[0] = (struct target){ "AF_UNIX 64 B rtt p50 <= 0.5 us (spin, pair)", "us", false, 0,
				0.5, false };
	if (s->ran[G_PAIR] && s->pair_rtt[S_IPCD].ok) {
		t[0].have = true;
		t[0].value = s->pair_rtt[S_IPCD].p50 / 1e3;
		t[0].pass = t[0].value <= t[0].limit;
	}
	t[1] = (struct target){ "pipe 64 KiB GB/s >= 2x kernel-pipe (spin)", "x", false, 0, 2,
				false };
	if (s->ran[G_PIPE] && ipc_runs_speedup(s->pipe_tput, &x)) {
		t[1].have = true;
		t[1].value = x;
		t[1].pass = x >= t[1].limit;
	}
	return 2;
}

static void print_ipc_rtt_line(enum cond c, enum grp g, const struct rtt_cell *cells)
{
	double x;

	if (ipc_rtt_speedup(cells, &x))
		printf("%s: %s 64 B rtt p50: ipcd %.2f us, %.1fx %s than %s (%.2f us)\n",
		       cond_name[c], grp_title[g], cells[S_IPCD].p50 / 1e3, x >= 1 ? x : 1 / x,
		       x >= 1 ? "faster" : "slower", side_name[g][S_KERN],
		       cells[S_KERN].p50 / 1e3);
	else if (cells[S_KERN].ok && side_on(S_IPCD))
		printf("%s: %s 64 B rtt p50: %s %.2f us; ipcd n/a (failed)\n", cond_name[c],
		       grp_title[g], side_name[g][S_KERN], cells[S_KERN].p50 / 1e3);
}

static void print_ipc_runs_line(enum cond c, enum grp g, const struct runs_cell *cells,
				const char *what, const char *unit, double scale)
{
	double x;

	if (ipc_runs_speedup(cells, &x))
		printf("%s: %s %s: ipcd %.2f %s, %.2fx %s (%.2f %s)\n", cond_name[c], grp_title[g],
		       what, cells[S_IPCD].med / scale, unit, x, side_name[g][S_KERN],
		       cells[S_KERN].med / scale, unit);
	else if (cells[S_KERN].ok && side_on(S_IPCD))
		printf("%s: %s %s: %s %.2f %s; ipcd n/a (failed)\n", cond_name[c], grp_title[g],
		       what, side_name[g][S_KERN], cells[S_KERN].med / scale, unit);
}

static void print_ipc_summary(void)
{
	unsigned int c, g, i, n;
	struct target t[2];

	if (!ipc_ran(G_PIPE) && !ipc_ran(G_PAIR) && !ipc_ran(G_UNIX))
		return;
	printf("\n== pipes, socketpairs and named AF_UNIX: ipcd against the kernel, same run "
	       "==\n");
	for (c = 0; c < N_COND; c++) {
		const struct ipc_res *r = &ires[c];

		if (r->ran[G_PIPE]) {
			print_ipc_runs_line((enum cond)c, G_PIPE, r->pipe_tput, "64 KiB writes",
					    "GB/s", 1e9);
			print_ipc_rtt_line((enum cond)c, G_PIPE, r->pipe_rtt);
		}
		if (r->ran[G_PAIR]) {
			print_ipc_rtt_line((enum cond)c, G_PAIR, r->pair_rtt);
			print_ipc_runs_line((enum cond)c, G_PAIR, r->pair_rate, "8 B messages",
					    "M/s", 1e6);
		}
		if (r->ran[G_UNIX]) {
			print_ipc_rtt_line((enum cond)c, G_UNIX, r->unix_rtt);
			print_ipc_runs_line((enum cond)c, G_UNIX, r->unix_rate, "8 B messages",
					    "M/s", 1e6);
		}
		for (g = 0; g < N_GRP; g++)
			if (r->ran[g])
				printf("%s: load average %.2f before the %s group, %.2f after\n",
				       cond_name[c], r->load_start[g][0], grp_title[g],
				       r->load_end[g][0]);
	}
	for (g = 0; g < N_GRP; g++) {
		if (!ipc_ran((enum grp)g) || !o.tp_on[TP_IPCD])
			continue;
		if (grp_not_accel[g])
			printf("ipcd %s: NOT accelerated (%s)\n", grp_name[g],
			       grp_not_accel_why[g]);
		else if (grp_made[g])
			printf("ipcd %s: %" PRIu64 " of %" PRIu64 " %s%s accelerated (the monitor's "
			       "counter %s, checked after every ipcd block)\n", grp_name[g],
			       IPCD_MIN(grp_counted[g], grp_made[g]), grp_made[g], grp_unit[g],
			       grp_made[g] == 1 ? "" : "s", grp_counter[g]);
	}
	n = ipc_targets(t);
	printf("\n== targets (issue #6; informational, the exit status does not depend on them) "
	       "==\n");
	for (i = 0; i < n; i++) {
		if (t[i].have)
			printf("%-44s %8.2f %-13s %s\n", t[i].name, t[i].value, t[i].unit,
			       t[i].pass ? "PASS" : "MISS");
		else
			printf("%-44s %8s %-13s n/a\n", t[i].name, "-", "");
	}
}

static void json_num(FILE *f, bool have, double v)
{
	if (have)
		fprintf(f, "%.3f", v);
	else
		fprintf(f, "null");
}

static void json_side_err(FILE *f, const char *err)
{
	fprintf(f, "\"error\":");
	ipcd_bench_json_str(f, err[0] ? err : "not run");
	fputc('}', f);
}

static void json_runs(FILE *f, const struct runs_cell *cells, const char *unit, int size)
{
	unsigned int t, i, k = 0;
	double x;

	for (t = 0; t < N_TP; t++) {
		const struct runs_cell *cell = &cells[t];
		bool sp;

		if (!o.tp_on[t])
			continue;
		fprintf(f, "%s{", k++ ? "," : "");
		if (size > 0)
			fprintf(f, "\"size\":%d,", size);
		fprintf(f, "\"transport\":\"%s\",\"ok\":%s,", tp_name[t],
			cell->ok ? "true" : "false");
		if (!cell->ok) {
			json_side_err(f, cell->err);
			continue;
		}
		sp = runs_speedup(cells, (enum tp)t, &x);
		fprintf(f, "\"%s\":%.0f,\"min\":%.0f,\"max\":%.0f,\"runs\":[", unit, cell->med,
			cell->min, cell->max);
		for (i = 0; i < cell->runs; i++)
			fprintf(f, "%s%.0f", i ? "," : "", cell->v[i]);
		fprintf(f, "],\"vs_kernel_tcp\":");
		json_num(f, sp, x);
		fputc('}', f);
	}
}

static void json_ipc_rtt(FILE *f, enum grp g, const struct rtt_cell *cells)
{
	unsigned int t, k = 0;
	bool have;
	double x;

	for (t = 0; t < N_SIDE; t++) {
		const struct rtt_cell *cell = &cells[t];

		if (!side_on((enum side)t))
			continue;
		fprintf(f, "%s{\"size\":%u,\"transport\":\"%s\",\"ok\":%s,", k++ ? "," : "",
			IPC_RTT_SIZE, side_name[g][t], cell->ok ? "true" : "false");
		if (!cell->ok) {
			json_side_err(f, cell->err);
			continue;
		}
		fprintf(f, "\"samples\":%" PRIu64 ",\"min_ns\":%.0f,\"p50_ns\":%.0f,"
			"\"p99_ns\":%.0f,\"max_ns\":%.0f,\"p50_vs_kernel\":", cell->n, cell->min,
			cell->p50, cell->p99, cell->max);
		have = t == S_IPCD && ipc_rtt_speedup(cells, &x);
		json_num(f, have, x);
		fprintf(f, ",\"p99_vs_kernel\":");
		have = have && cell->p99 > 0;
		json_num(f, have, have ? cells[S_KERN].p99 / cell->p99 : 0);
		fputc('}', f);
	}
}

/* @lead: the fields before "transport"; the figure is v / scale with 3 decimals. */
static void json_ipc_runs(FILE *f, enum grp g, const struct runs_cell *cells, const char *lead,
			  const char *unit, double scale)
{
	unsigned int t, i, k = 0;
	bool have;
	double x;

	for (t = 0; t < N_SIDE; t++) {
		const struct runs_cell *cell = &cells[t];

		if (!side_on((enum side)t))
			continue;
		fprintf(f, "%s{%s\"transport\":\"%s\",\"ok\":%s,", k++ ? "," : "", lead,
			side_name[g][t], cell->ok ? "true" : "false");
		if (!cell->ok) {
			json_side_err(f, cell->err);
			continue;
		}
		fprintf(f, "\"%s\":%.3f,\"min\":%.3f,\"max\":%.3f,\"runs\":[", unit,
			cell->med / scale, cell->min / scale, cell->max / scale);
		for (i = 0; i < cell->runs; i++)
			fprintf(f, "%s%.3f", i ? "," : "", cell->v[i] / scale);
		fprintf(f, "],\"vs_kernel\":");
		have = t == S_IPCD && ipc_runs_speedup(cells, &x);
		json_num(f, have, x);
		fputc('}', f);
	}
}

/* The "pipe_pair" object (only when --tests has pipe, pair or unix). */
static void json_ipc(FILE *f)
{
	unsigned int c, g, t, i, k, n;
	struct target tg[2];
	char lead[96];

	fprintf(f, "\"pipe_pair\":{\"transports\":{");
	for (g = 0, k = 0; g < N_GRP; g++) {
		if (!ipc_ran((enum grp)g))
			continue;
		fprintf(f, "%s\"%s\":{", k++ ? "," : "", grp_name[g]);
		for (t = 0, i = 0; t < N_SIDE; t++) {
			if (!side_on((enum side)t))
				continue;
			fprintf(f, "%s\"%s\":{\"ok\":%s,\"error\":", i++ ? "," : "",
				side_name[g][t], grp_failed[g][t] ? "false" : "true");
			if (grp_failed[g][t])
				ipcd_bench_json_str(f, grp_err[g][t]);
			else
				fprintf(f, "null");
			fputc('}', f);
		}
		fputc('}', f);
	}
	fprintf(f, "},\"ipcd_accelerated\":{");
	for (g = 0, k = 0; g < N_GRP; g++) {
		if (!ipc_ran((enum grp)g) || !o.tp_on[TP_IPCD])
			continue;
		fprintf(f, "%s\"%s\":{\"made\":%" PRIu64 ",\"counted\":%" PRIu64
			",\"not_accelerated\":%s}", k++ ? "," : "", grp_counter[g], grp_made[g],
			grp_counted[g], grp_not_accel[g] ? "true" : "false");
	}
	fprintf(f, "},\"conditions\":[");
	for (c = 0, k = 0; c < N_COND; c++) {
		const struct ipc_res *r = &ires[c];
		char place[200];

		if (!r->ran[G_PIPE] && !r->ran[G_PAIR] && !r->ran[G_UNIX])
			continue;
		ipc_placement((enum cond)c, place, sizeof(place));
		fprintf(f, "%s{\"name\":\"%s\",\"placement\":", k++ ? "," : "", cond_name[c]);
		ipcd_bench_json_str(f, place);
		for (g = 0; g < N_GRP; g++) {
			if (!r->ran[g])
				continue;
			fprintf(f, ",\"%s\":{\"loadavg_start\":[%.2f,%.2f,%.2f],"
				"\"loadavg_end\":[%.2f,%.2f,%.2f],", grp_name[g],
				r->load_start[g][0], r->load_start[g][1], r->load_start[g][2],
				r->load_end[g][0], r->load_end[g][1], r->load_end[g][2]);
			if (g == G_PIPE) {
				snprintf(lead, sizeof(lead), "\"write_size\":%u,\"bytes_per_run\":%"
					 PRIu64 ",", CHUNK, o.pipe_bytes / CHUNK * CHUNK);
				fprintf(f, "\"throughput\":[");
				json_ipc_runs(f, (enum grp)g, r->pipe_tput, lead, "gb_per_s", 1e9);
				fprintf(f, "],\"rtt\":[");
				json_ipc_rtt(f, (enum grp)g, r->pipe_rtt);
				fprintf(f, "]}");
			} else {
				fprintf(f, "\"rtt\":[");
				json_ipc_rtt(f, (enum grp)g, g == G_PAIR ? r->pair_rtt : r->unix_rtt);
				snprintf(lead, sizeof(lead), "\"size\":%u,\"messages_per_run\":%"
					 PRIu64 ",", IPC_RATE_SIZE, o.rate_bytes / IPC_RATE_SIZE);
				fprintf(f, "],\"rate\":[");
				json_ipc_runs(f, (enum grp)g, g == G_PAIR ? r->pair_rate : r->unix_rate,
					      lead, "messages_per_s", 1);
				fprintf(f, "]}");
			}
		}
		fputc('}', f);
	}
	n = ipc_targets(tg);
	fprintf(f, "],\"targets\":[");
	for (i = 0; i < n; i++) {
		fprintf(f, "%s{\"name\":", i ? "," : "");
		ipcd_bench_json_str(f, tg[i].name);
		fprintf(f, ",\"unit\":\"%s\",\"value\":", tg[i].unit);
		json_num(f, tg[i].have, tg[i].value);
		fprintf(f, ",\"limit\":%.2f,\"pass\":%s}", tg[i].limit,
			!tg[i].have ? "null" : tg[i].pass ? "true" : "false");
	}
	fprintf(f, "]}");
}

static void write_json(const char *path, const char *date, double elapsed, int status)
{
	const struct cond_res *s = res[C_SPIN].ran ? &res[C_SPIN] : &res[C_BUSY];
	unsigned int c, si, t, i, k, n;
	struct target tg[4];
	bool have;
	double x;
	FILE *f = fopen(path, "we");

	if (!f) {
		fprintf(stderr, "ipcd-bench-sock: %s: %s\n", path, strerror(errno));
		return;
	}
	fprintf(f, "{\"benchmark\":\"ipcd-bench-sock\",\"date\":\"%s\",\"quick\":%s,"
		"\"elapsed_s\":%.1f,\"exit_status\":%d,\"cpus\":[%d,%d],\"monitor_config\":",
		date, o.quick ? "true" : "false", elapsed, status, cpu_a, cpu_b);
	ipcd_bench_json_str(f, mon_config);
	fprintf(f, ",\"transports\":{");
	for (t = 0, k = 0; t < N_TP; t++) {
		if (!o.tp_on[t])
			continue;
		fprintf(f, "%s\"%s\":{\"ok\":%s,\"error\":", k++ ? "," : "", tp_name[t],
			tp_failed[t] ? "false" : "true");
		if (tp_failed[t])
			ipcd_bench_json_str(f, tp_err[t]);
		else
			fprintf(f, "null");
		fputc('}', f);
	}
	fprintf(f, "},\"ipcd_connections\":{\"opened\":%" PRIu64 ",\"accelerated\":%" PRIu64
		",\"not_accelerated\":%s},\"conditions\":[", ipcd_conns, ipcd_accel,
		ipcd_not_accelerated ? "true" : "false");
	for (c = 0, k = 0; c < N_COND; c++) {
		const struct cond_res *r = &res[c];

		if (!r->ran)
			continue;
		fprintf(f, "%s{\"name\":\"%s\",\"placement\":", k++ ? "," : "", cond_name[c]);
		ipcd_bench_json_str(f, r->placement);
		fprintf(f, ",\"loadavg_start\":[%.2f,%.2f,%.2f],\"loadavg_end\":[%.2f,%.2f,%.2f],"
			"\"floor_ns\":{\"before\":", r->load_start[0], r->load_start[1],
			r->load_start[2], r->load_end[0], r->load_end[1], r->load_end[2]);
		json_num(f, r->floor_start > 0, r->floor_start);
		fprintf(f, ",\"after\":");
		json_num(f, r->floor_end > 0, r->floor_end);
		fprintf(f, "},\"rtt\":[");
		for (si = 0, i = 0; si < N_RTT; si++)
			for (t = 0; t < N_TP; t++) {
				const struct rtt_cell *cell = &r->rtt[si][t];

				if (!o.tp_on[t])
					continue;
				fprintf(f, "%s{\"size\":%u,\"transport\":\"%s\",\"ok\":%s,",
					i++ ? "," : "", rtt_sizes[si], tp_name[t],
					cell->ok ? "true" : "false");
				if (!cell->ok) {
					json_side_err(f, cell->err);
					continue;
				}
				fprintf(f, "\"samples\":%" PRIu64 ",\"min_ns\":%.0f,"
					"\"p50_ns\":%.0f,"
					"\"p99_ns\":%.0f,\"max_ns\":%.0f,\"p50_vs_kernel_tcp\":",
					cell->n, cell->min, cell->p50, cell->p99, cell->max);
				have = rtt_speedup(r, si, (enum tp)t, &x);
				json_num(f, have, x);
				fprintf(f, ",\"p99_vs_kernel_tcp\":");
				have = have && r->rtt[si][TP_TCP].ok && cell->p99 > 0;
				json_num(f, have, have ? r->rtt[si][TP_TCP].p99 / cell->p99 : 0);
				fputc('}', f);
			}
		fprintf(f, "],\"rate\":[");
		for (i = 0; i < N_RATE; i++) {
			if (i)
				fputc(',', f);
			json_runs(f, r->rate[i], "messages_per_s", (int)rate_sizes[i]);
		}
		fprintf(f, "],\"conn\":[");
		json_runs(f, r->conn, "connections_per_s", 0);
		fprintf(f, "]}");
	}
	n = targets(tg);
	fprintf(f, "],\"targets\":[");
	for (i = 0; i < n; i++) {
		fprintf(f, "%s{\"name\":", i ? "," : "");
		ipcd_bench_json_str(f, tg[i].name);
		fprintf(f, ",\"unit\":\"%s\",\"value\":", tg[i].unit);
		json_num(f, tg[i].have, tg[i].value);
		fprintf(f, ",\"limit\":%.2f,\"pass\":%s}", tg[i].limit,
			!tg[i].have ? "null" : tg[i].pass ? "true" : "false");
	}
	fputc(']', f);
	if (ipc_ran(G_PIPE) || ipc_ran(G_PAIR) || ipc_ran(G_UNIX)) {
		fputc(',', f);
		json_ipc(f);
	}
	/* Flat figures for scripts/demo.sh: the spin condition, else busy. */
	fprintf(f, ",\"summary\":{\"condition\":\"%s\",\"ipcd_rtt64_p50_us\":",
		cond_name[s == &res[C_SPIN] ? C_SPIN : C_BUSY]);
	json_num(f, s->rtt[RTT_64][TP_IPCD].ok, s->rtt[RTT_64][TP_IPCD].p50 / 1e3);
	fprintf(f, ",\"kernel_tcp_rtt64_p50_us\":");
	json_num(f, s->rtt[RTT_64][TP_TCP].ok, s->rtt[RTT_64][TP_TCP].p50 / 1e3);
	fprintf(f, ",\"rtt64_p50_speedup\":");
	have = rtt_speedup(s, RTT_64, TP_IPCD, &x);
	json_num(f, have, x);
	fprintf(f, ",\"ipcd_rate8_msgs_per_s\":");
	json_num(f, s->rate[0][TP_IPCD].ok, s->rate[0][TP_IPCD].med);
	fprintf(f, ",\"kernel_tcp_rate8_msgs_per_s\":");
	json_num(f, s->rate[0][TP_TCP].ok, s->rate[0][TP_TCP].med);
	fprintf(f, ",\"rate8_speedup\":");
	have = runs_speedup(s->rate[0], TP_IPCD, &x);
	json_num(f, have, x);
	fprintf(f, ",\"conn_speedup\":");
	have = runs_speedup(s->conn, TP_IPCD, &x);
	json_num(f, have, x);
	fprintf(f, "}}\n");
	if (fclose(f))
		fprintf(stderr, "ipcd-bench-sock: %s: %s\n", path, strerror(errno));
}

/* ---- setup ------------------------------------------------------------------------ */

static char **env_build(bool preload)
{
	size_t n = 0, k = 0, i;
	char **e;

	while (environ[n])
		n++;
	e = xmalloc((n + 3) * sizeof(*e));
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) &&
		    strncmp(environ[i], "IPCD_SOCKET=", 12))
			e[k++] = environ[i];
	if (preload) {
		e[k++] = xstrdup_printf("LD_PRELOAD=%s", o.preload);
		e[k++] = xstrdup_printf("IPCD_SOCKET=%s", mon_sock);
	}
	e[k] = NULL;
	return e;
}

static void setup_cpus(void)
{
	int cpu;

	if (sched_getaffinity(0, sizeof(all_cpus), &all_cpus))
		die("sched_getaffinity: %s", strerror(errno));
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &all_cpus))
			continue;
		if (cpu_a < 0)
			cpu_a = cpu;
		else if (cpu_b < 0)
			cpu_b = cpu;
	}
	if (cpu_b < 0)
		cpu_a = -1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ipcd-bench-sock [--quick] [--json FILE] [--transports LIST] "
		"[--conditions LIST]\n"
		"                       [--tests LIST] [--monitor PATH] [--preload PATH] "
		"[--ipcdctl PATH]\n"
		"\n"
		"TCP through IPC-Direct (the same blocking POSIX socket code under\n"
		"LD_PRELOAD=libipcd.so) against kernel TCP loopback and UNIX stream sockets,\n"
		"interleaved in one run: ping-pong round trip p50/p99 (8 B .. 1 MiB), one-way\n"
		"message rate (8 B, 64 B) and connection setup rate; with client and server\n"
		"pinned to two CPUs (spin) and with a CPU hog, three busy processes on two\n"
		"CPUs (busy). Starts its own ipcd-monitor on the embedded default config.\n"
		"\n"
		"  --quick            short run for CI smoke use (under 60 s)\n"
		"  --json FILE        where to write every figure (default: bench-sock.json)\n"
		"  --transports LIST  comma-separated: kernel-tcp,kernel-unix,ipcd (default: all)\n"
		"  --conditions LIST  comma-separated: spin,busy (default: both)\n"
		"  --tests LIST       comma-separated: rtt,rate,conn,pipe,pair,unix (default:\n"
		"                     rtt,rate,conn). pipe: 64 KiB pipe throughput and 64 B\n"
		"                     round trip over two pipes; pair: socketpair(AF_UNIX,\n"
		"                     SOCK_STREAM) 64 B round trip and 8 B one-way messages;\n"
		"                     unix: the same over a named AF_UNIX connection (bind,\n"
		"                     listen, connect, accept on a pathname in a temp dir); all\n"
		"                     between a role and its forked peer, kernel against ipcd\n"
		"  --monitor PATH     ipcd-monitor (default: %s)\n"
		"  --preload PATH     libipcd.so (default: %s)\n"
		"  --ipcdctl PATH     ipcdctl (default: %s)\n"
		"  --help             this text\n"
		"\n"
		"Exit status: 0 when every selected transport ran; 1 when one failed (including\n"
		"ipcd connections that were not accelerated); 2 on bad usage. The issue's\n"
		"targets are informational.\n", IPCD_MONITOR_BIN, IPCD_PRELOAD_LIB, IPCDCTL_BIN);
}

static bool parse_list(const char *arg, const char *const *names, unsigned int n, bool *on)
{
	char copy[256], *tok, *save = NULL;
	unsigned int i;

	memset(on, 0, n * sizeof(*on));
	snprintf(copy, sizeof(copy), "%s", arg);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < n && strcmp(tok, names[i]); i++)
			;
		if (i == n)
			return false;
		on[i] = true;
	}
	for (i = 0; i < n; i++)
		if (on[i])
			return true;
	return false;
}

static void parse_opts(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "transports", required_argument, NULL, 't' },
		{ "conditions", required_argument, NULL, 'c' },
		{ "tests", required_argument, NULL, 'T' },
		{ "monitor", required_argument, NULL, 'M' },
		{ "preload", required_argument, NULL, 'P' },
		{ "ipcdctl", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned int i;
	int c;

	o.json = "bench-sock.json";
	o.monitor = IPCD_MONITOR_BIN;
	o.preload = IPCD_PRELOAD_LIB;
	o.ipcdctl = IPCDCTL_BIN;
	for (i = 0; i < N_TP; i++)
		o.tp_on[i] = true;
	for (i = 0; i < N_COND; i++)
		o.cond_on[i] = true;
	for (i = 0; i < N_TEST_DEFAULT; i++)
		o.test_on[i] = true;
	while ((c = getopt_long(argc, argv, "qj:h", lo, NULL)) != -1) {
		switch (c) {
		case 'q':
			o.quick = true;
			break;
		case 'j':
			o.json = optarg;
			break;
		case 't':
			if (!parse_list(optarg, tp_name, N_TP, o.tp_on)) {
				fprintf(stderr, "ipcd-bench-sock: bad --transports '%s'\n", optarg);
				exit(2);
			}
			break;
		case 'c':
			if (!parse_list(optarg, cond_name, N_COND, o.cond_on)) {
				fprintf(stderr, "ipcd-bench-sock: bad --conditions '%s'\n", optarg);
				exit(2);
			}
			break;
		case 'T':
			if (!parse_list(optarg, test_name, N_TEST, o.test_on)) {
				fprintf(stderr, "ipcd-bench-sock: bad --tests '%s'\n", optarg);
				exit(2);
			}
			break;
		case 'M':
			o.monitor = optarg;
			break;
		case 'P':
			o.preload = optarg;
			break;
		case 'C':
			o.ipcdctl = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	if (o.quick) {
		o.rtt_rounds = 2;
		o.rtt_target = 4000;
		o.rtt_min = 1000;
		o.rtt_budget_ns = NS_PER_S / 4;
		o.rate_bytes = 1u << 20;
		o.rate_runs = 3;
		o.conn_runs = 3;
		o.conn_target = 2000;
		o.conn_min = 200;
		o.conn_budget_ns = NS_PER_S / 5;
		o.role_timeout_s = 30;
		o.pipe_bytes = 256u << 20;
		o.pipe_runs = 3;
	} else {
		o.rtt_rounds = 4;
		o.rtt_target = 20000;
		o.rtt_min = 2000;
		o.rtt_budget_ns = 2 * NS_PER_S;
		o.rate_bytes = 4u << 20;
		o.rate_runs = 3;
		o.conn_runs = 5;
		o.conn_target = 10000;
		o.conn_min = 500;
		o.conn_budget_ns = NS_PER_S;
		o.role_timeout_s = 60;
		o.pipe_bytes = 1ull << 30;
		o.pipe_runs = 5;
	}
}

/* Paths as absolute ones (the children run them after fork; the monitor gets its own). */
static const char *absolute(const char *path)
{
	char *r = realpath(path, NULL);

	return r ? r : path;
}

int main(int argc, char **argv)
{
	uint64_t start = ipcd_now_ns();
	double load[3] = { 0 };
	char date[32], cpu_model[128], kernel[160], why[ERR_LEN], scratch[ERR_LEN];
	struct sigaction sa = { .sa_handler = on_signal };
	struct utsname u;
	time_t wall = time(NULL);
	struct tm tm;
	unsigned int c;
	int status = 0;

	if (argc > 1 && !strcmp(argv[1], "--role"))
		return role_main(argc, argv);
	parse_opts(argc, argv);
	driver_pid = getpid();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (ipcd_bench_mapped("/libipcd")) {
		fprintf(stderr, "ipcd-bench-sock: run it without LD_PRELOAD/ipcd-run: it preloads "
			"its own children\n");
		return 2;
	}
	setup_cpus();
	o.monitor = absolute(o.monitor);
	o.preload = absolute(o.preload);
	o.ipcdctl = absolute(o.ipcdctl);

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ipcd-bench-sock-XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp: %s", strerror(errno));
	snprintf(mon_sock, sizeof(mon_sock), "%s/monitor.sock", tmpdir);
	snprintf(mon_log, sizeof(mon_log), "%s/monitor.log", tmpdir);
	snprintf(unix_path, sizeof(unix_path), "%s/unix.sock", tmpdir);
	shm_fd = memfd_create("ipcd-bench-sock", MFD_CLOEXEC);
	if (shm_fd < 0 || ftruncate(shm_fd, 4096))
		die("memfd: %s", strerror(errno));
	stop_word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
	if (stop_word == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	env_kernel = env_build(false);
	env_ipcd = env_build(true);

	gmtime_r(&wall, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!ipcd_bench_cpuinfo("model name", cpu_model, sizeof(cpu_model)))
		snprintf(cpu_model, sizeof(cpu_model), "unknown");
	snprintf(kernel, sizeof(kernel), "unknown");
	if (uname(&u) == 0)
		snprintf(kernel, sizeof(kernel), "%s %s", u.sysname, u.release);
	getloadavg(load, 3);
	printf("ipcd-bench-sock  %s  (%s run)\n", date, o.quick ? "quick" : "normal");
	printf("cpu      %s\n", cpu_model);
	printf("nproc    %ld online, %d allowed\n", sysconf(_SC_NPROCESSORS_ONLN),
	       CPU_COUNT(&all_cpus));
	printf("kernel   %s\n", kernel);
	printf("load     %.2f %.2f %.2f at start\n", load[0], load[1], load[2]);
	if (load[0] > 0.5 * CPU_COUNT(&all_cpus))
		printf("NOTE: the machine is busy (load average %.2f): expect noisy figures\n",
		       load[0]);
	if (o.tp_on[TP_IPCD]) {
		printf("ipcd     LD_PRELOAD=%s\n", o.preload);
		if (access(o.preload, R_OK))
			transport_failed(TP_IPCD, "setup", "the preload library is missing "
					 "(build target ipcd, or --preload PATH)", scratch);
		else if (access(o.ipcdctl, X_OK))
			transport_failed(TP_IPCD, "setup", "ipcdctl is missing (--ipcdctl PATH)",
					 scratch);
		else if (start_monitor(why, sizeof(why)))
			transport_failed(TP_IPCD, "starting the monitor", why, scratch);
		else if (monitor_created(&accel_base, why, sizeof(why)))
			transport_failed(TP_IPCD, "asking the monitor", why, scratch);
		else
			printf("monitor  %s (pid %d), embedded default config, control socket in "
			       "%s\n         %s\n", o.monitor, (int)mon_pid, tmpdir, mon_config);
		/* Without a monitor the ipcd side of the pipe, pair, unix groups cannot run either. */
		for (c = 0; c < N_GRP && tp_failed[TP_IPCD]; c++)
			if (o.test_on[grp_test[c]])
				grp_fail((enum grp)c, S_IPCD, "setup", tp_err[TP_IPCD], scratch);
	}
	printf("sampling CLOCK_MONOTONIC around each send + recv; every byte checked\n");

	for (c = 0; c < N_COND; c++) {
		struct cond_res *r = &res[c];
		unsigned int i;

		if (!o.cond_on[c])
			continue;
		r->ran = true;
		if (c == C_SPIN && cpu_b >= 0)
			snprintf(r->placement, sizeof(r->placement),
				 "spin: server pinned to CPU %d, client to CPU %d, nothing else "
				 "running (the monitor floats)", cpu_a, cpu_b);
		else if (c == C_SPIN)
			snprintf(r->placement, sizeof(r->placement),
				 "spin: ONLY ONE CPU allowed: client and server run unpinned");
		else
			snprintf(r->placement, sizeof(r->placement),
				 "busy: client, server and a CPU hog (a spinning process), all "
				 "free to migrate over the %d allowed CPUs", CPU_COUNT(&all_cpus));
		getloadavg(r->load_start, 3);
		if (c == C_SPIN)
			r->floor_start = probe_floor();
		else
			start_hog();
		if (o.test_on[T_RTT]) {
			run_rtt((enum cond)c, r);
			print_rtt((enum cond)c, r);
		}
		if (o.test_on[T_RATE]) {
			for (i = 0; i < N_RATE; i++)
				run_runs((enum cond)c, T_RATE, r->rate[i], rate_sizes[i]);
			print_rate((enum cond)c, r);
		}
		if (o.test_on[T_CONN]) {
			run_runs((enum cond)c, T_CONN, r->conn, 1);
			print_conn((enum cond)c, r);
		}
		for (i = 0; i < N_GRP; i++)
			if (o.test_on[grp_test[i]]) {
				run_ipc_group((enum cond)c, (enum grp)i);
				print_ipc_group((enum cond)c, (enum grp)i);
			}
		if (c == C_SPIN)
			r->floor_end = probe_floor();
		else
			stop_hog();
		getloadavg(r->load_end, 3);
		print_floor((enum cond)c, r);
	}

	print_summary();
	print_ipc_summary();
	if (o.tp_on[TP_IPCD] && ipcd_conns)
		printf("\nipcd: %" PRIu64 " of %" PRIu64 " connections accelerated (the monitor's "
		       "counters, checked after every ipcd block)\n", ipcd_accel, ipcd_conns);
	if (ipcd_not_accelerated)
		printf("ipcd: NOT ACCELERATED (all traffic went to the kernel)\n");
	for (c = 0; c < N_TP; c++)
		if (o.tp_on[c] && tp_failed[c]) {
			printf("FAILED: %s: %s\n", tp_name[c], tp_err[c]);
			status = 1;
		}
	for (c = 0; c < N_GRP * N_SIDE; c++)
		if (grp_failed[c / N_SIDE][c % N_SIDE]) {
			printf("FAILED: %s %s: %s\n", side_who((enum side)(c % N_SIDE)),
			       grp_name[c / N_SIDE], grp_err[c / N_SIDE][c % N_SIDE]);
			status = 1;
		}
	getloadavg(load, 3);
	printf("load     %.2f %.2f %.2f at end\n", load[0], load[1], load[2]);
	stop_monitor();
	write_json(o.json, date, (double)(ipcd_now_ns() - start) / 1e9, status);
	printf("%.1f s; json: %s\n", (double)(ipcd_now_ns() - start) / 1e9, o.json);
	if (status)
		printf("logs kept in %s\n", tmpdir);
	else
		ipcd_bench_rmdir(tmpdir, "ipcd-bench-sock");
	return status;
}
