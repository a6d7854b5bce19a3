/* SPDX-License-Identifier: MIT */
/*
 * bench_memc.c - ipcd-bench-memc: a small closed-loop memcached load generator
 * for bench/bench-real.sh (issue #5, item 7).
 *
 * N connections over T threads; each connection has one request in flight
 * (text protocol, "get KEY" or "set KEY 0 0 SIZE"), and the next one goes out
 * when the full answer is in. Every answer is compared byte for byte with the
 * one expected: before the timed phase one extra connection stores every key
 * with a value derived from the key, so a get's answer is known exactly. The
 * client uses only blocking connect() and then non-blocking send/recv under
 * poll(): no epoll, no libevent, so under libipcd.so it exercises the
 * preload's poll path only. Latency is per request, from the first send() to
 * the recv() that completes the answer. One line of key=value pairs goes to
 * stdout; the exit status is 0 ok, 1 error (connect, protocol, stall), 2 usage.
 *
 * Debian's memaslap reports throughput but latency only as a log2 histogram,
 * and runs on libevent; memcslap reports only elapsed times. Hence this.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define NS_PER_S	1000000000ull
#define MAX_VALUE	4096
#define MAX_MSG		(MAX_VALUE + 128)
#define MAX_CONNS	1024
#define MAX_THREADS	16
#define STALL_NS	(5 * NS_PER_S)	/* no answer on any connection for this long: error */

struct opts {
	const char *host;
	unsigned int port, conns, threads, value_size, keys, duration_ms, timeout_s;
	bool set;
};

struct conn {
	int fd;
	unsigned int id;
	uint64_t seq;		/* requests issued on this connection */
	uint64_t t_start;
	size_t req_len, req_off, exp_len, got;
	char req[MAX_MSG], exp[MAX_MSG], buf[MAX_MSG];
};

struct worker {
	pthread_t tid;
	unsigned int first, n;	/* connections [first, first + n) */
	uint32_t *lat;		/* ns, one per completed request */
	size_t n_lat, cap_lat;
	char err[256];
};

static struct opts o;
static struct conn *conns;
static uint64_t t_begin, t_deadline;

/* What the process is doing, for the alarm's message. */
static const char *volatile phase = "starting";

static void on_alarm(int sig)
{
	(void)sig;
	ipcd_bench_say_raw("ipcd-bench-memc: timed out (alarm) while ");
	ipcd_bench_say_raw(phase);
	ipcd_bench_say_raw(": the server or the transport stopped making progress\n");
	_exit(4);
}

/* The value stored under key k: printable, different per key. */
static void make_value(unsigned int k, char *out)
{
	unsigned int i;

	for (i = 0; i < o.value_size; i++)
		out[i] = (char)('a' + (k * 7u + i) % 26u);
}

static size_t make_set(unsigned int k, char *out)
{
	int n = snprintf(out, MAX_MSG, "set key:%06u 0 0 %u\r\n", k, o.value_size);

	make_value(k, out + n);
	memcpy(out + n + o.value_size, "\r\n", 2);
	return (size_t)n + o.value_size + 2;
}

/* The next request on c and the exact answer it must get. */
static void next_request(struct conn *c)
{
	unsigned int k = (unsigned int)((c->id * 7919ull + c->seq++) % o.keys);
	int n;

	if (o.set) {
		c->req_len = make_set(k, c->req);
		memcpy(c->exp, "STORED\r\n", 8);
		c->exp_len = 8;
	} else {
		c->req_len = (size_t)snprintf(c->req, MAX_MSG, "get key:%06u\r\n", k);
		n = snprintf(c->exp, MAX_MSG, "VALUE key:%06u 0 %u\r\n", k, o.value_size);
		make_value(k, c->exp + n);
		memcpy(c->exp + n + o.value_size, "\r\nEND\r\n", 7);
		c->exp_len = (size_t)n + o.value_size + 7;
	}
	c->req_off = 0;
	c->got = 0;
}

static int dial(bool nonblock, char *err, size_t len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o.port) };
	int fd, one = 1;

	if (inet_pton(AF_INET, o.host, &sa.sin_addr) != 1) {
		snprintf(err, len, "bad IPv4 address %s", o.host);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, len, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		snprintf(err, len, "connect %s:%u: %s", o.host, o.port, strerror(errno));
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (nonblock && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)) {
		snprintf(err, len, "fcntl O_NONBLOCK: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Store every key once over one blocking connection, answers checked. */
static int load_keys(char *err, size_t len)
{
	char req[MAX_MSG], ans[16];
	unsigned int k;
	int fd = dial(false, err, len);

	if (fd < 0)
		return -1;
	for (k = 0; k < o.keys; k++) {
		size_t n = make_set(k, req), got = 0;

		if (send_all(fd, req, n)) {
			snprintf(err, len, "loading keys: send: %s", strerror(errno));
			goto err_close;
		}
		while (got < 8) {
			ssize_t r = recv(fd, ans + got, 8 - got, 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				snprintf(err, len, "loading keys: recv: %s",
					 r ? strerror(errno) : "the server closed the connection");
				goto err_close;
			}
			got += (size_t)r;
		}
		if (memcmp(ans, "STORED\r\n", 8)) {
			snprintf(err, len, "loading keys: set key:%06u answered %.8s", k, ans);
			goto err_close;
		}
	}
	close(fd);
	return 0;
err_close:
	close(fd);
	return -1;
}

static int record(struct worker *w, uint64_t ns)
{
	if (w->n_lat == w->cap_lat) {
		size_t cap = w->cap_lat ? w->cap_lat * 2 : 65536;
		uint32_t *p = realloc(w->lat, cap * sizeof(*p));

		if (!p)
			return -1;
		w->lat = p;
		w->cap_lat = cap;
	}
	w->lat[w->n_lat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
	return 0;
}

/* Push out what is left of c's request; -1 on a dead connection. */
static int pump_send(struct conn *c)
{
	while (c->req_off < c->req_len) {
		ssize_t r = send(c->fd, c->req + c->req_off, c->req_len - c->req_off,
				 MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r <= 0)
			return -1;
		c->req_off += (size_t)r;
	}
	return 0;
}

/* Which connections wait, and for what: the first few, for the error line. */
static void stalled(struct worker *w, unsigned int busy)
{
	size_t len = sizeof(w->err), used;
	unsigned int i, shown = 0;

	used = (size_t)snprintf(w->err, len, "stalled: no answer on any of %u connections for "
				"%llu s", busy, STALL_NS / NS_PER_S);
	for (i = 0; i < w->n && shown < 3 && used < len; i++) {
		const struct conn *c = &conns[w->first + i];

		if (c->fd < 0)
			continue;
		used += (size_t)snprintf(w->err + used, len - used, "%s conn %u: sent %zu/%zu, "
					 "got %zu/%zu", shown ? ";" : ":", c->id, c->req_off,
					 c->req_len, c->got, c->exp_len);
		shown++;
	}
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct pollfd pfd[MAX_CONNS];
	unsigned int i, busy = w->n;
	uint64_t last = ipcd_now_ns();

	for (i = 0; i < w->n; i++) {
		struct conn *c = &conns[w->first + i];

		next_request(c);
		c->t_start = ipcd_now_ns();
		if (pump_send(c)) {
			snprintf(w->err, sizeof(w->err), "send: %s", strerror(errno));
			return NULL;
		}
	}
	while (busy) {
		uint64_t t;
		int r;

		for (i = 0; i < w->n; i++) {
			struct conn *c = &conns[w->first + i];

			pfd[i].fd = c->fd < 0 ? -1 : c->fd;
			pfd[i].events = (short)(c->req_off < c->req_len ? POLLIN | POLLOUT
							   : POLLIN);
			pfd[i].revents = 0;
		}
		r = poll(pfd, w->n, 100);
		if (r < 0 && errno != EINTR) {
			snprintf(w->err, sizeof(w->err), "poll: %s", strerror(errno));
			return NULL;
		}
		t = ipcd_now_ns();
		if (t - last > STALL_NS) {
			stalled(w, busy);
			return NULL;
		}
		if (r <= 0)
			continue;
		for (i = 0; i < w->n; i++) {
			struct conn *c = &conns[w->first + i];
			ssize_t n;

			if (c->fd < 0 || !pfd[i].revents)
				continue;
			if (pump_send(c)) {
				snprintf(w->err, sizeof(w->err), "send: %s", strerror(errno));
				return NULL;
			}
			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = recv(c->fd, c->buf + c->got, sizeof(c->buf) - c->got, 0);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				continue;
			if (n <= 0) {
				snprintf(w->err, sizeof(w->err), "recv: %s",
					 n ? strerror(errno) : "the server closed the connection");
				return NULL;
			}
			c->got += (size_t)n;
			if (memcmp(c->buf, c->exp, c->got < c->exp_len ? c->got : c->exp_len)) {
				snprintf(w->err, sizeof(w->err),
					 "wrong answer: expected \"%.40s\", got \"%.40s\"",
					 c->exp, c->buf);
				return NULL;
			}
			if (c->got > c->exp_len) {
				snprintf(w->err, sizeof(w->err), "%zu bytes more than the answer",
					 c->got - c->exp_len);
				return NULL;
			}
			if (c->got < c->exp_len)
				continue;
			t = ipcd_now_ns();
			last = t;
			if (record(w, t - c->t_start)) {
				snprintf(w->err, sizeof(w->err), "out of memory");
				return NULL;
			}
			if (t >= t_deadline) {
				close(c->fd);
				c->fd = -1;
				busy--;
				continue;
			}
			next_request(c);
			c->t_start = t;
			if (pump_send(c)) {
				snprintf(w->err, sizeof(w->err), "send: %s", strerror(errno));
				return NULL;
			}
		}
	}
	return NULL;
}

static double pct_us(const uint32_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	return v[i] / 1e3;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ipcd-bench-memc --port N [--host ADDR] [--conns N] [--threads N]\n"
		"                       [--duration S] [--op get|set] [--value-size B] [--keys N]\n"
		"                       [--timeout S]\n"
		"Closed-loop memcached load (text protocol), one request in flight per\n"
		"connection, every answer checked. Prints one line: ops, seconds, rps,\n"
		"p50_us, p99_us, max_us, conns_opened. Exit 0 ok, 1 error, 2 usage.\n"
		"  --host ADDR        IPv4 address (default 127.0.0.1)\n"
		"  --conns N          connections (default 1, at most %u)\n"
		"  --threads N        threads, connections spread over them (default 1)\n"
		"  --duration S       seconds of load, fractions allowed (default 5)\n"
		"  --op get|set       default get; keys are stored before a get run\n"
		"  --value-size B     value size (default 64, at most %u)\n"
		"  --keys N           distinct keys (default 1000)\n"
		"  --timeout S        hard limit on the whole run (default duration + 30)\n",
		MAX_CONNS, MAX_VALUE);
}

static unsigned int num(const char *s, const char *what, unsigned int lo, unsigned int hi)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end || v < lo || v > hi) {
		fprintf(stderr, "ipcd-bench-memc: %s: %s is not in %u..%u\n", what, s, lo, hi);
		exit(2);
	}
	return (unsigned int)v;
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "conns", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "duration", required_argument, NULL, 'd' },
		{ "op", required_argument, NULL, 'o' },
		{ "value-size", required_argument, NULL, 's' },
		{ "keys", required_argument, NULL, 'k' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	double d;
	char *end;
	int ch;

	o = (struct opts){ .host = "127.0.0.1", .conns = 1, .threads = 1, .value_size = 64,
			   .keys = 1000, .duration_ms = 5000 };
	while ((ch = getopt_long(argc, argv, "H:p:c:t:d:o:s:k:T:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'H':
			o.host = optarg;
			break;
		case 'p':
			o.port = num(optarg, "--port", 1, 65535);
			break;
		case 'c':
			o.conns = num(optarg, "--conns", 1, MAX_CONNS);
			break;
		case 't':
			o.threads = num(optarg, "--threads", 1, MAX_THREADS);
			break;
		case 'd':
			d = strtod(optarg, &end);
			if (*end || !(d >= 0.01 && d <= 3600)) {
				fprintf(stderr, "ipcd-bench-memc: --duration: %s\n", optarg);
				exit(2);
			}
			o.duration_ms = (unsigned int)(d * 1000 + 0.5);
			break;
		case 'o':
			if (strcmp(optarg, "get") && strcmp(optarg, "set")) {
				fprintf(stderr, "ipcd-bench-memc: --op: get or set\n");
				exit(2);
			}
			o.set = !strcmp(optarg, "set");
			break;
		case 's':
			o.value_size = num(optarg, "--value-size", 1, MAX_VALUE);
			break;
		case 'k':
			o.keys = num(optarg, "--keys", 1, 999999);
			break;
		case 'T':
			o.timeout_s = num(optarg, "--timeout", 1, 86400);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc || !o.port) {
		usage(stderr);
		exit(2);
	}
	if (o.threads > o.conns)
		o.threads = o.conns;
	if (!o.timeout_s)
		o.timeout_s = o.duration_ms / 1000 + 30;
}

int main(int argc, char **argv)
{
	static struct worker w[MAX_THREADS];
	uint32_t *all;
	size_t n = 0, i;
	uint64_t t_end;
	unsigned int k, first = 0;
	char err[256];
	double secs;
	int status = 0;

	parse(argc, argv);
	signal(SIGALRM, on_alarm);
	alarm(o.timeout_s);
	conns = calloc(o.conns, sizeof(*conns));
	if (!conns) {
		fprintf(stderr, "ipcd-bench-memc: out of memory\n");
		return 1;
	}
	phase = "storing the keys (one blocking connection)";
	if (load_keys(err, sizeof(err))) {
		fprintf(stderr, "ipcd-bench-memc: %s\n", err);
		return 1;
	}
	phase = "connecting";
	for (k = 0; k < o.conns; k++) {
		conns[k].id = k;
		conns[k].fd = dial(true, err, sizeof(err));
		if (conns[k].fd < 0) {
			fprintf(stderr, "ipcd-bench-memc: connection %u: %s\n", k, err);
			return 1;
		}
	}
	for (k = 0; k < o.threads; k++) {
		w[k].first = first;
		w[k].n = o.conns / o.threads + (k < o.conns % o.threads);
		first += w[k].n;
	}
	phase = "running the load (poll loop)";
	t_begin = ipcd_now_ns();
	t_deadline = t_begin + o.duration_ms * 1000000ull;
	for (k = 0; k < o.threads; k++)
		if (pthread_create(&w[k].tid, NULL, work, &w[k])) {
			fprintf(stderr, "ipcd-bench-memc: pthread_create failed\n");
			return 1;
		}
	for (k = 0; k < o.threads; k++)
		pthread_join(w[k].tid, NULL);
	t_end = ipcd_now_ns();
	for (k = 0; k < o.threads; k++) {
		if (w[k].err[0]) {
			fprintf(stderr, "ipcd-bench-memc: thread %u: %s\n", k, w[k].err);
			status = 1;
		}
		n += w[k].n_lat;
	}
	if (status)
		return status;
	all = malloc((n ? n : 1) * sizeof(*all));
	if (!all || !n) {
		fprintf(stderr, "ipcd-bench-memc: %s\n",
			n ? "out of memory" : "no request completed");
		return 1;
	}
	for (n = 0, k = 0; k < o.threads; k++) {
		memcpy(all + n, w[k].lat, w[k].n_lat * sizeof(*all));
		n += w[k].n_lat;
	}
	qsort(all, n, sizeof(*all), ipcd_bench_cmp_u32);
	secs = (double)(t_end - t_begin) / 1e9;
	printf("op=%s conns=%u threads=%u value_size=%u ops=%zu seconds=%.3f rps=%.1f "
	       "p50_us=%.2f p99_us=%.2f max_us=%.2f conns_opened=%u\n", o.set ? "set" : "get",
	       o.conns, o.threads, o.value_size, n, secs, (double)n / secs, pct_us(all, n, 0.50),
	       pct_us(all, n, 0.99), all[n - 1] / 1e3, o.conns + 1);
	for (i = 0; i < o.threads; i++)
		free(w[i].lat);
	free(all);
	free(conns);
	return 0;
}
