/* SPDX-License-Identifier: MIT */
/* probe.c - ipcd-rdma-probe: check RDMA links (monitor frames) and RC QPs between hosts. */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "rdma.h"

#define PROG			"ipcd-rdma-probe"
#define PROBE_MAGIC		0x424f5250u	/* "PROB" */
#define LINGER_MS		30000	/* after success: wait this long for the peer's BYE */
#define QP_CHUNK		(1u << 20)	/* bytes per RDMA WRITE */
#define QP_WRITES_IN_FLIGHT	8

static void usage(FILE *f)
{
	fprintf(f,
		"Usage:\n"
		"  " PROG " link --listen ADDR:PORT --peer ADDR:PORT [--count N] [--stay SECONDS]\n"
		"                    [--rounds R] [--retry-ms MS] [--timeout SECONDS]\n"
		"  " PROG " qp --addr ADDR|any (--server PORT | --connect HOST:PORT) [--bytes N]\n"
		"                    [--timeout SECONDS]\n"
		"\n"
		"link: open a monitor link (RDMA CM, 256-byte frames) to one peer, wait for it\n"
		"      to come up, send N numbered, checksummed frames and check the peer's N;\n"
		"      prints \"link ok frames=N rx=M\" and exits 0. Run it on both hosts with\n"
		"      --listen and --peer swapped. The side with the smaller ADDR:PORT connects.\n"
		"      --stay SECONDS keeps the link open that long, printing up/down events and\n"
		"      repeating the exchange on every up (a restarted peer); with --rounds R it\n"
		"      ends after R exchanges. Default count 1000, timeout 300 s.\n"
		"qp:   bring up an RC queue pair with libipcd-rdma's verbs, exchanging its info\n"
		"      over TCP: the client RDMA-WRITEs N bytes into the server's registered\n"
		"      buffer, then a WRITE_WITH_IMM; the server waits for that completion on\n"
		"      the completion channel and checks every byte; both print\n"
		"      \"qp ok bytes=N\" and exit 0. Default 1 MiB, timeout 300 s. --addr any:\n"
		"      the first active RDMA port and its first RoCE v2 GID.\n"
		"ADDR is IPv4 or IPv6 ([v6]:port with a port). Exit status: 0 ok, 1 failure,\n"
		"2 usage.\n");
}

static void fail(const char *what, int err)
{
	fprintf(stderr, PROG ": %s: %s (errno %d)\n", what, strerror(err), err);
	exit(1);
}

static void failx(const char *what)
{
	fprintf(stderr, PROG ": %s\n", what);
	exit(1);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t fnv1a(uint32_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

#define FNV_INIT		2166136261u

/* "1.2.3.4" or "fe80::1" into 16 bytes (IPv4-mapped for IPv4). */
static bool parse_ip(const char *s, uint8_t a[16])
{
	struct in_addr v4;

	if (inet_pton(AF_INET, s, &v4) == 1) {
		memset(a, 0, 10);
		a[10] = 0xff;
		a[11] = 0xff;
		memcpy(a + 12, &v4, 4);
		return true;
	}
	return inet_pton(AF_INET6, s, a) == 1;
}

static bool parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v == 0 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* "ADDR:PORT" or "[ADDR]:PORT"; @host gets the address text. */
static bool parse_endpoint(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *h = s;
	size_t n;

	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return false;
		h = s + 1;
		n = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return false;
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= hostlen)
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	return parse_port(colon + 1, port);
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	return !errno && *s != '\0' && *end == '\0';
}

/* ------------------------------------------------------------------------ */
/* link                                                                      */
/* ------------------------------------------------------------------------ */

enum { FR_DATA = 1, FR_END, FR_ACK, FR_BYE };

/*
 * A probe frame: header + pattern bytes that depend on the sequence number,
 * all covered by the FNV-1a sum (computed with sum = 0).
 */
struct probe_frame {
	uint32_t magic;
	uint32_t type;
	uint32_t seq;			/* DATA: 0.. ; END: the number of DATA frames */
	uint32_t total;			/* END: FNV-1a over every DATA frame's sum */
	uint32_t sum;
	uint8_t pattern[IPCD_RLINK_FRAME - 20];
};
IPCD_BUILD_ASSERT(sizeof(struct probe_frame) == IPCD_RLINK_FRAME);

struct probe_link {
	struct ipcd_rlink *l;
	uint32_t count;
	bool stay;
	bool verbose;
	int errors;			/* frames that failed a check */
	uint64_t enobufs;		/* sends refused with a full ring */
	unsigned int ups, downs, rounds_ok;
	/* the current round (reset on every up) */
	bool up;
	uint32_t tx_seq;		/* DATA frames sent */
	uint32_t tx_total;
	bool end_sent, ack_due, ack_sent, bye_sent;
	uint32_t rx_seq;		/* DATA frames received */
	uint32_t rx_total;
	bool rx_done, acked, bye_rx, ok;
	uint64_t ok_ms;
};

static void frame_make(struct ipcd_rlink_frame *out, uint32_t type, uint32_t seq, uint32_t total)
{
	struct probe_frame f;

	memset(&f, 0, sizeof(f));
	f.magic = htole32(PROBE_MAGIC);
	f.type = htole32(type);
	f.seq = htole32(seq);
	f.total = htole32(total);
	for (size_t i = 0; i < sizeof(f.pattern); i++)
		f.pattern[i] = (uint8_t)(seq * 131u + i * 7u + type);
	f.sum = htole32(fnv1a(FNV_INIT, &f, sizeof(f)));
	memcpy(out, &f, sizeof(f));
}

static bool frame_check(const struct ipcd_rlink_frame *in, struct probe_frame *f)
{
	uint32_t sum;

	memcpy(f, in, sizeof(*f));
	sum = le32toh(f->sum);
	f->sum = 0;
	if (le32toh(f->magic) != PROBE_MAGIC || fnv1a(FNV_INIT, f, sizeof(*f)) != sum)
		return false;
	f->sum = sum;
	f->type = le32toh(f->type);
	f->seq = le32toh(f->seq);
	f->total = le32toh(f->total);
	for (size_t i = 0; i < sizeof(f->pattern); i++) {
		if (f->pattern[i] != (uint8_t)(f->seq * 131u + i * 7u + f->type))
			return false;
	}
	return true;
}

static void round_reset(struct probe_link *pl)
{
	pl->tx_seq = 0;
	pl->tx_total = FNV_INIT;
	pl->end_sent = pl->ack_due = pl->ack_sent = pl->bye_sent = false;
	pl->rx_seq = 0;
	pl->rx_total = FNV_INIT;
	pl->rx_done = pl->acked = pl->bye_rx = pl->ok = false;
}

static void on_up(void *arg, unsigned int peer)
{
	struct probe_link *pl = arg;

	pl->ups++;
	pl->up = true;
	round_reset(pl);
	printf("up peer=%u\n", peer);
	fflush(stdout);
}

static void on_down(void *arg, unsigned int peer, const char *why)
{
	struct probe_link *pl = arg;

	pl->downs++;
	pl->up = false;
	printf("down peer=%u why=%s\n", peer, why);
	fflush(stdout);
}

static void on_frame(void *arg, unsigned int peer, const struct ipcd_rlink_frame *in)
{
	struct probe_link *pl = arg;
	struct probe_frame f;

	(void)peer;
	if (!frame_check(in, &f)) {
		pl->errors++;
		fprintf(stderr, PROG ": link: frame %u: bad checksum or pattern\n", pl->rx_seq);
		return;
	}
	switch (f.type) {
	case FR_DATA:
		if (f.seq != pl->rx_seq || pl->rx_done) {
			pl->errors++;
			fprintf(stderr, PROG ": link: frame %u arrived, %u expected (order)\n",
				f.seq, pl->rx_seq);
			return;
		}
		pl->rx_seq++;
		pl->rx_total = fnv1a(pl->rx_total, &f.sum, sizeof(f.sum));
		break;
	case FR_END:
		if (f.seq != pl->rx_seq || f.total != pl->rx_total) {
			pl->errors++;
			fprintf(stderr,
				PROG ": link: END says %u frames sum %08x, got %u sum %08x\n",
				f.seq, f.total, pl->rx_seq, pl->rx_total);
			return;
		}
		pl->rx_done = true;
		pl->ack_due = true;
		break;
	case FR_ACK:
		pl->acked = true;
		break;
	case FR_BYE:
		pl->bye_rx = true;
		break;
	default:
		pl->errors++;
		break;
	}
}

static bool send_one(struct probe_link *pl, uint32_t type, uint32_t seq, uint32_t total)
{
	struct ipcd_rlink_frame fr;
	int rc;

	frame_make(&fr, type, seq, total);
	rc = ipcd_rlink_send(pl->l, 0, &fr);
	if (rc == -ENOBUFS)
		pl->enobufs++;
	if (rc == -ENOBUFS || rc == -ENOTCONN)
		return false;
	if (rc)
		fail("ipcd_rlink_send", -rc);
	if (type == FR_DATA) {
		struct probe_frame f;

		memcpy(&f, &fr, sizeof(f));
		pl->tx_total = fnv1a(pl->tx_total, &f.sum, sizeof(f.sum));
	}
	return true;
}

/* Send what the round owes the peer, as far as the send ring takes it. */
static void pump(struct probe_link *pl)
{
	if (!pl->up)
		return;
	if (pl->ack_due && !pl->ack_sent && send_one(pl, FR_ACK, 0, 0))
		pl->ack_sent = true;
	while (pl->tx_seq < pl->count && send_one(pl, FR_DATA, pl->tx_seq, 0))
		pl->tx_seq++;
	if (pl->tx_seq == pl->count && !pl->end_sent &&
	    send_one(pl, FR_END, pl->tx_seq, pl->tx_total))
		pl->end_sent = true;
	if (pl->rx_done && pl->acked && !pl->ok) {
		pl->ok = true;
		pl->ok_ms = now_ms();
		pl->rounds_ok++;
		if (pl->stay) {
			printf("round %u ok frames=%u rx=%u\n", pl->rounds_ok, pl->count,
			       pl->rx_seq);
			fflush(stdout);
		}
	}
	/* The peer may still wait for our ACK: it leaves on our BYE, or on down. */
	if (pl->ok && pl->ack_sent && !pl->bye_sent && send_one(pl, FR_BYE, 0, 0))
		pl->bye_sent = true;
}

static int run_link(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "peer", required_argument, NULL, 'p' },
		{ "count", required_argument, NULL, 'c' },
		{ "stay", required_argument, NULL, 's' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "retry-ms", required_argument, NULL, 'R' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char lhost[128] = "", phost[128] = "";
	uint8_t laddr[16];
	uint16_t lport = 0, pport = 0;
	uint64_t count = 1000, stay = 0, rounds = 0, retry = 500, timeout = 300, v;
	struct probe_link pl;
	struct ipcd_rlink_stats st;
	struct ipcd_rlink_cb cb = { on_up, on_down, on_frame, &pl };
	struct epoll_event ev, evs[4];
	uint64_t end;
	const char *why;
	int fds[4], nfd, ep, rc, c;
	uint8_t peer[1][16];

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (!parse_endpoint(optarg, lhost, sizeof(lhost), &lport))
				goto usage;
			break;
		case 'p':
			if (!parse_endpoint(optarg, phost, sizeof(phost), &pport))
				goto usage;
			break;
		case 'c':
			if (!parse_u64(optarg, &count) || count > UINT32_MAX - 1)
				goto usage;
			break;
		case 's':
			if (!parse_u64(optarg, &stay) || stay == 0)
				goto usage;
			break;
		case 'r':
			if (!parse_u64(optarg, &rounds))
				goto usage;
			break;
		case 'R':
			if (!parse_u64(optarg, &v) || v == 0 || v > UINT32_MAX)
				goto usage;
			retry = v;
			break;
		case 't':
			if (!parse_u64(optarg, &timeout) || timeout == 0)
				goto usage;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto usage;
		}
	}
	if (optind != argc || !lhost[0] || !phost[0] || !parse_ip(lhost, laddr) ||
	    !parse_ip(phost, peer[0]))
		goto usage;

	memset(&pl, 0, sizeof(pl));
	pl.count = (uint32_t)count;
	pl.stay = stay > 0;
	round_reset(&pl);
	rc = ipcd_rlink_open(laddr, lport, 1, (const uint8_t(*)[16])peer, &pport,
			     (uint32_t)retry, &cb, &pl.l, &why);
	if (rc) {
		fprintf(stderr, PROG ": ipcd_rlink_open(%s:%u): %s: %s (errno %d)\n", lhost, lport,
			why, strerror(-rc), -rc);
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		fail("epoll_create1", errno);
	nfd = ipcd_rlink_fds(pl.l, fds, 4);
	for (int i = 0; i < nfd; i++) {
		ev.events = EPOLLIN;
		ev.data.fd = fds[i];
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
			fail("epoll_ctl(ADD) of a link fd", errno);
	}
	printf("link listening on %s:%u, peer %s:%u (%s)\n", lhost, lport, phost, pport,
	       memcmp(laddr, peer[0], 16) < 0 || (!memcmp(laddr, peer[0], 16) && lport < pport)
		       ? "we connect"
		       : "the peer connects");
	fflush(stdout);

	end = now_ms() + (pl.stay ? stay : timeout) * 1000;
	for (;;) {
		uint64_t now;
		int wait_ms, t;

		t = ipcd_rlink_poll(pl.l);
		pump(&pl);
		now = now_ms();
		if (pl.errors)
			break;
		if (pl.stay) {
			/* after the last round, the peer's BYE (or its leaving) ends it */
			if (now >= end ||
			    (rounds && pl.rounds_ok >= rounds && (pl.bye_rx || !pl.up)))
				break;
		} else {
			if (pl.ok && (pl.bye_rx || !pl.up || now >= pl.ok_ms + LINGER_MS))
				break;
			if (now >= end)
				break;
		}
		wait_ms = (int)IPCD_MIN(end - now, 1000);
		if (t >= 0 && t < wait_ms)
			wait_ms = t;
		if (epoll_wait(ep, evs, 4, wait_ms) < 0 && errno != EINTR)
			fail("epoll_wait", errno);
	}

	close(ep);
	ipcd_rlink_stats(pl.l, UINT_MAX, &st);
	printf("stats frames_tx=%" PRIu64 " frames_rx=%" PRIu64 " connects=%" PRIu64
	       " drops=%" PRIu64 " rejects=%" PRIu64 " enobufs=%" PRIu64 "\n",
	       st.frames_tx, st.frames_rx, st.connects, st.drops, st.rejects, pl.enobufs);
	ipcd_rlink_close(pl.l);
	if (pl.errors) {
		fprintf(stderr, PROG ": link: %d bad frames\n", pl.errors);
		return 1;
	}
	if (pl.stay) {
		printf("stay done ups=%u downs=%u rounds_ok=%u\n", pl.ups, pl.downs, pl.rounds_ok);
		return pl.rounds_ok > 0 ? 0 : 1;
	}
	if (!pl.ok) {
		fprintf(stderr,
			PROG ": link: timed out after %" PRIu64 " s (%s; sent %u, received %u%s)\n",
			timeout, pl.up ? "up" : pl.ups ? "down again" : "never came up", pl.tx_seq,
			pl.rx_seq, pl.rx_done ? ", all" : "");
		return 1;
	}
	printf("link ok frames=%u rx=%u\n", pl.count, pl.rx_seq);
	return 0;

usage:
	usage(stderr);
	return 2;
}

/* ------------------------------------------------------------------------ */
/* qp                                                                        */
/* ------------------------------------------------------------------------ */

/* What each side sends the other over TCP; little endian. */
struct qp_hello {
	struct ipcd_rqp_info info;
	uint64_t addr;			/* the registered buffer */
	uint64_t len;
	uint32_t rkey;
	uint32_t pad;
};

static void full_io(int fd, void *buf, size_t n, bool out, const char *what)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t r = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail(what, errno);
		if (r == 0)
			fail(what, ECONNRESET);
		p += r;
		n -= (size_t)r;
	}
}

static uint8_t pattern_byte(uint64_t i)
{
	return (uint8_t)(i * 7 + 3 + (i >> 12));
}

static int tcp_server(const char *host, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	uint8_t a[16];
	int one = 1, fd, c;

	if (!parse_ip(host, a))
		failx("qp: --addr is not an IP address");
	memset(&ss, 0, sizeof(ss));
	if (a[10] == 0xff && a[11] == 0xff && !memcmp(a, "\0\0\0\0\0\0\0\0\0\0", 10)) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a + 12, 4);
		sl = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a, 16);
		sl = sizeof(*sin6);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail("qp: socket", errno);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
		fail("qp: bind of the TCP exchange socket", errno);
	if (listen(fd, 1) < 0)
		fail("qp: listen", errno);
	printf("qp server listening on %s:%u\n", host, port);
	fflush(stdout);
	c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		fail("qp: accept", errno);
	close(fd);
	return c;
}

static int tcp_client(const char *host, uint16_t port, uint64_t deadline)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char serv[8];
	int fd, rc;

	snprintf(serv, sizeof(serv), "%u", port);
	rc = getaddrinfo(host, serv, &hints, &res);
	if (rc) {
		fprintf(stderr, PROG ": qp: getaddrinfo(%s): %s\n", host, gai_strerror(rc));
		exit(1);
	}
	/* The server may not listen yet: retry until the deadline. */
	for (;;) {
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			fail("qp: socket", errno);
		if (connect(fd, res->ai_addr, res->ai_addrlen) == 0)
			break;
		rc = errno;
		close(fd);
		if (now_ms() >= deadline)
			fail("qp: connect to the server's TCP port", rc);
		usleep(200 * 1000);
	}
	freeaddrinfo(res);
	return fd;
}

/* One completion from @d's CQ: arm, check, sleep on the channel, repeat. */
static void qp_wait(struct ipcd_rdev *d, struct ibv_wc *wc, uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = ipcd_rdev_fd(d), .events = POLLIN };
		int rc, n;

		/* Armed before looking: a completion after the look raises an event. */
		rc = ipcd_rdev_arm(d);
		if (rc)
			fail("qp: ipcd_rdev_arm", -rc);
		n = ibv_poll_cq(d->cq, 1, wc);
		if (n < 0)
			fail("qp: ibv_poll_cq", EIO);
		if (n == 1) {
			if (wc->status != IBV_WC_SUCCESS) {
				fprintf(stderr, PROG ": qp: work completion %" PRIu64 ": %s (%d)\n",
					wc->wr_id, ibv_wc_status_str(wc->status), wc->status);
				exit(1);
			}
			return;
		}
		if (now_ms() >= deadline)
			fail("qp: waiting for a completion", ETIMEDOUT);
		rc = poll(&pfd, 1, 1000);
		if (rc < 0 && errno != EINTR)
			fail("qp: poll on the completion channel", errno);
		while ((rc = ipcd_rdev_take_event(d)) == 0)
			;
		if (rc != -EAGAIN)
			fail("qp: ipcd_rdev_take_event", -rc);
	}
}

static int run_qp(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "server", required_argument, NULL, 's' },
		{ "connect", required_argument, NULL, 'c' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr_s = NULL;
	char host[128] = "";
	uint16_t port = 0;
	bool server = false, client = false, any;
	uint64_t bytes = 1 << 20, timeout = 300, deadline;
	struct qp_hello me, them;
	struct ipcd_rqp_info self, peer;
	struct ipcd_rdev *d;
	struct ibv_qp *qp;
	struct ibv_mr *mr;
	struct ibv_wc wc;
	uint8_t addr[16], *buf, verdict;
	uint32_t sum;
	int c, rc, fd;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			addr_s = optarg;
			break;
		case 's':
			if (!parse_port(optarg, &port))
				goto usage;
			server = true;
			break;
		case 'c':
			if (!parse_endpoint(optarg, host, sizeof(host), &port))
				goto usage;
			client = true;
			break;
		case 'b':
			if (!parse_u64(optarg, &bytes) || bytes == 0 || bytes > (1ull << 32))
				goto usage;
			break;
		case 't':
			if (!parse_u64(optarg, &timeout) || timeout == 0)
				goto usage;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto usage;
		}
	}
	any = addr_s && !strcmp(addr_s, "any");
	if (optind != argc || !addr_s || server == client || (!any && !parse_ip(addr_s, addr)))
		goto usage;
	deadline = now_ms() + timeout * 1000;

	rc = ipcd_rdev_open(any ? NULL : addr, 64, &d);
	if (rc) {
		fprintf(stderr, PROG ": qp: ipcd_rdev_open(%s): %s: %s (errno %d)\n", addr_s,
			ipcd_rdev_why(), strerror(-rc), -rc);
		return 1;
	}
	printf("qp device %s port %u gid index %u mtu %u max_inline %u\n", d->name, d->port,
	       d->gid_index, 128u << d->mtu, d->max_inline);
	fflush(stdout);

	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		fail("qp: mmap of the buffer", errno);
	if (client) {
		for (uint64_t i = 0; i < bytes; i++)
			buf[i] = pattern_byte(i);
	}
	mr = ipcd_rdev_reg(d, NULL, buf, bytes, server);
	if (!mr)
		fail("qp: ipcd_rdev_reg", errno);
	qp = ipcd_rqp_create(d, NULL, 2 * QP_WRITES_IN_FLIGHT, 4, &self);
	if (!qp)
		fail("qp: ipcd_rqp_create", errno);
	if (server) {
		/* WRITE_WITH_IMM consumes a receive: posted before the peer can write. */
		struct ibv_recv_wr wr = { .wr_id = 1 }, *bad;

		if (ibv_post_recv(qp, &wr, &bad))
			fail("qp: ibv_post_recv", EIO);
	}

	fd = server ? tcp_server(any ? "0.0.0.0" : addr_s, port) : tcp_client(host, port, deadline);
	memset(&me, 0, sizeof(me));
	me.info = self;
	me.addr = htole64((uintptr_t)buf);
	me.len = htole64(bytes);
	me.rkey = htole32(mr->rkey);
	full_io(fd, &me, sizeof(me), true, "qp: sending our QP info");
	full_io(fd, &them, sizeof(them), false, "qp: receiving the peer's QP info");
	peer = them.info;
	rc = ipcd_rqp_connect(d, qp, &self, &peer);
	if (rc)
		fail("qp: ipcd_rqp_connect", -rc);

	if (server) {
		verdict = 'R';	/* ready: our QP is RTR, the client may write */
		full_io(fd, &verdict, 1, true, "qp: sending ready");
		qp_wait(d, &wc, deadline);
		if (wc.opcode != IBV_WC_RECV_RDMA_WITH_IMM || !(wc.wc_flags & IBV_WC_WITH_IMM))
			failx("qp: the completion is not a RECV_RDMA_WITH_IMM");
		sum = fnv1a(FNV_INIT, buf, bytes);
		verdict = 'K';
		if (ntohl(wc.imm_data) != sum) {
			fprintf(stderr, PROG ": qp: immediate %08x, data sum %08x\n",
				ntohl(wc.imm_data), sum);
			verdict = 'F';
		}
		for (uint64_t i = 0; i < bytes && verdict == 'K'; i++) {
			if (buf[i] != pattern_byte(i)) {
				fprintf(stderr, PROG ": qp: byte %" PRIu64 " is %u, %u expected\n",
					i, buf[i], pattern_byte(i));
				verdict = 'F';
			}
		}
		full_io(fd, &verdict, 1, true, "qp: sending the verdict");
	} else {
		uint64_t off = 0, raddr = le64toh(them.addr);
		unsigned int inflight = 0;
		uint32_t rkey = le32toh(them.rkey);

		if (le64toh(them.len) < bytes)
			failx("qp: the server's buffer is smaller than --bytes");
		full_io(fd, &verdict, 1, false, "qp: waiting for the server's ready");
		while (off < bytes || inflight) {
			if (off < bytes && inflight < QP_WRITES_IN_FLIGHT) {
				uint32_t n = (uint32_t)IPCD_MIN(bytes - off, QP_CHUNK);
				struct ibv_sge sge = { (uintptr_t)(buf + off), n, mr->lkey };
				struct ibv_send_wr wr = { 0 }, *bad;

				wr.wr_id = off;
				wr.sg_list = &sge;
				wr.num_sge = 1;
				wr.opcode = IBV_WR_RDMA_WRITE;
				wr.send_flags = IBV_SEND_SIGNALED;
				wr.wr.rdma.remote_addr = raddr + off;
				wr.wr.rdma.rkey = rkey;
				if (ibv_post_send(qp, &wr, &bad))
					fail("qp: ibv_post_send(RDMA_WRITE)", EIO);
				off += n;
				inflight++;
				continue;
			}
			qp_wait(d, &wc, deadline);
			inflight--;
		}
		{
			struct ibv_send_wr wr = { 0 }, *bad;

			sum = fnv1a(FNV_INIT, buf, bytes);
			wr.wr_id = UINT64_MAX;
			wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
			wr.send_flags = IBV_SEND_SIGNALED;
			wr.imm_data = htonl(sum);
			wr.wr.rdma.remote_addr = raddr;
			wr.wr.rdma.rkey = rkey;
			if (ibv_post_send(qp, &wr, &bad))
				fail("qp: ibv_post_send(RDMA_WRITE_WITH_IMM)", EIO);
			qp_wait(d, &wc, deadline);
		}
		full_io(fd, &verdict, 1, false, "qp: waiting for the server's verdict");
	}
	close(fd);
	ipcd_rqp_destroy(qp);
	ipcd_rdev_dereg(mr);
	munmap(buf, bytes);
	ipcd_rdev_close(d);
	if (verdict != 'K') {
		fprintf(stderr, PROG ": qp: the server found the data wrong\n");
		return 1;
	}
	printf("qp ok bytes=%" PRIu64 "\n", bytes);
	return 0;

usage:
	usage(stderr);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "link"))
		return run_link(argc - 1, argv + 1);
	if (!strcmp(argv[1], "qp"))
		return run_qp(argc - 1, argv + 1);
	usage(stderr);
	return 2;
}
