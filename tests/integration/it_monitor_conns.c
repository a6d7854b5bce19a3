/* SPDX-License-Identifier: MIT */
/*
 * it_monitor_conns.c - connection setup through a real ipcd-monitor:
 * CONNECT / ACCEPT / CLOSE between forked processes over 127.0.0.1, ::1 and a
 * wildcard listener, 64 MiB each way at once through the stream rings, EOF,
 * ECONNREFUSED, a full backlog, ACCEPT on someone else's bind, SO_REUSEPORT,
 * SIGKILL of either endpoint mid-transfer and of a listener with a backlog,
 * 1000 connections in a row (nothing left behind), and a process that never
 * reads its control socket (cut off; the others keep going). Then ABI 2.0:
 * the listener's accept eventfd (readable exactly while the backlog is not
 * empty), the wake eventfds a death signals, ring-size hints and their cap,
 * and FALLBACK reports as ipcdctl shows them. Then ABI 3.0's lanes: the
 * LANE_FD a CONNECT and the owner's ACCEPT bring, KITS, KIT_ACCEPTED,
 * CLOSE of unsent kits, LANE_DONE (kits kept, queued again in order, or
 * reset), either side's death before and after the listener has its end, a
 * forked worker's ACCEPT, a full table, and bodies of the wrong size. Then
 * ABI 3.1's lane regions: a kit gets a region its pair used before once
 * both ends closed it (by CLOSE, or by the closed bits alone), formatted
 * and without a byte of the earlier connections; never one whose
 * connection ended with a death or a reset, nor one with an end still
 * open; and when the lane ends, a region in use stays its connection's.
 * Then ABI 3.2's hold tokens (HOLD): the HOLD_FD pipe before the answer,
 * once per end, every refusal; the last copy's hang-up closes the end (as
 * a death, with a reset for unread bytes, or as a close when its closed
 * bit is set); an end with a token outlives its owner, and a lane's
 * listener; a SIGKILLed or exiting holder hangs it up.
 *
 * Children never use cmocka (T_CHECK); every wait is a hang guard, never a
 * timing assertion.
 */
#include <dirent.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <ipcd/atomic.h>
#include <ipcd/spsc.h>
#include <ipcd/wait.h>

#include "t_monitor.h"

#define XFER_BYTES	((64ull << 20) / T_SLOWDOWN)	/* each way */
#define CHUNK		(64u << 10)
#define SPIN_NS		20000
#define WAIT_NS		((int64_t)T_WAIT_MS * T_NSEC_PER_MSEC)
#define N_SEQ		1000	/* connections opened and closed in a row */
#define CONF		"max_connections = 4096\n"

static struct t_out tout;

/* ---- addresses ---------------------------------------------------------- */

static void v4(uint8_t a[16], uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3)
{
	memset(a, 0, 16);
	a[10] = a[11] = 0xff;
	a[12] = b0;
	a[13] = b1;
	a[14] = b2;
	a[15] = b3;
}

static void v6_loop(uint8_t a[16])
{
	memset(a, 0, 16);
	a[15] = 1;
}

/* ---- child-side calls (no cmocka) --------------------------------------- */

/* Not by value: the attachment points into itself (a->cl.db = &a->db). */
static void attach_or_die(const struct t_mon *m, const char *comm, struct ipcd_attach *a)
{
	char why[256];
	int rc = ipcd_attach(m->sock, comm, a, why, sizeof(why));

	if (rc) {
		fprintf(stderr, "[%s %d] attach: %d: %s\n", comm, (int)getpid(), rc, why);
		_exit(2);
	}
}

/* A call's status (>= -4095), or the transport's error from t_call. */
static int call(struct ipcd_attach *a, uint16_t op, const void *body, uint16_t len, void *out,
		size_t out_len)
{
	struct ipcd_resp resp;
	int rc = t_call(a, op, body, len, &resp, T_CALL_TIMEOUT_NS);

	T_CHECK_EQ(rc, 0);
	T_CHECK_EQ(resp.opcode, op);
	if (resp.status == 0 && out) {
		T_CHECK_EQ(resp.len, out_len);
		memcpy(out, resp.body, out_len);
	}
	return resp.status;
}

/* Is eventfd @fd readable within @timeout_ms (0: right now)? */
static bool fd_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	T_CHECK(n >= 0);
	return n == 1 && (p.revents & POLLIN);
}

/*
 * LISTEN bind @id with @backlog and ring-size hint @hint. The first LISTEN of
 * a bind sends its accept eventfd before the response, so it is queued by
 * now: *@lfd receives it (NULL: none must come, as for a re-LISTEN or a
 * failed one).
 */
static uint64_t last_token;	/* of the latest LISTEN_FD (the accept token) */
static int maps0;		/* ipcd-conn mappings after start: the monitor's pool */

static int listen_req(struct ipcd_attach *a, uint32_t id, uint32_t backlog, uint32_t hint,
		      uint32_t flags, int *lfd)
{
	/* A first LISTEN names the kernel socket listening there (proto.h). */
	struct ipcd_listen_req l = { .id = id, .backlog = backlog, .ring_bytes = hint,
				     .flags = flags, .kfd = t_kernel_listener(id) };
	int fds[IPCD_CTL_CONN_NFDS];
	struct ipcd_ctl_msg m;
	int rc = call(a, IPCD_OP_LISTEN, &l, sizeof(l), NULL, 0);

	if (!lfd || rc) {
		T_CHECK_EQ(ipcd_attach_recv_msg(a, &m, fds, 0), -ETIMEDOUT);
		return rc;
	}
	T_CHECK_EQ(ipcd_attach_recv_msg(a, &m, fds, 0), 0);
	T_CHECK_EQ(m.type, IPCD_CTL_LISTEN_FD);
	T_CHECK_EQ(m.bind_id, id);
	T_CHECK(fds[0] >= 0);
	T_CHECK_EQ(fds[1], -1);
	T_CHECK_EQ(fds[2], -1);
	*lfd = fds[0];
	T_CHECK(m.conn_id != 0);		/* the accept token */
	last_token = m.conn_id;
	T_CHECK(!fd_readable(*lfd, 0));		/* nothing queued yet */
	return 0;
}

static int listen_hint(struct ipcd_attach *a, uint32_t id, uint32_t backlog, uint32_t hint,
		       int *lfd)
{
	return listen_req(a, id, backlog, hint, 0, lfd);
}

/* BIND, then LISTEN with IPCD_LISTEN_* @lflags (see listen_req()). */
static int bind_listen_flags(struct ipcd_attach *a, const uint8_t addr[16], uint16_t port,
			     uint32_t flags, uint32_t backlog, uint32_t lflags, uint32_t *id,
			     uint16_t *port_out, int *lfd)
{
	struct ipcd_bind_req b = { .port = port, .flags = flags };
	struct ipcd_bind_resp br;
	int rc;

	memcpy(b.addr, addr, 16);
	if (!port)
		b.port = t_kernel_port(addr, flags);	/* a port free in the kernel too */
	rc = call(a, IPCD_OP_BIND, &b, sizeof(b), &br, sizeof(br));
	if (rc)
		return rc;
	t_note_bind(br.id, addr, br.port, flags);
	*id = br.id;
	*port_out = br.port;
	return listen_req(a, br.id, backlog, 0, lflags, lfd);
}

/* BIND alone: its status (the bind is kept on success). */
static int bind_only(struct ipcd_attach *a, const uint8_t addr[16], uint16_t port)
{
	struct ipcd_bind_req b = { .port = port };
	struct ipcd_bind_resp br;
	int rc;

	memcpy(b.addr, addr, 16);
	rc = call(a, IPCD_OP_BIND, &b, sizeof(b), &br, sizeof(br));
	if (rc == 0)
		t_note_bind(br.id, addr, br.port, 0);
	return rc;
}

static int bind_listen(struct ipcd_attach *a, const uint8_t addr[16], uint16_t port,
		       uint32_t flags, uint32_t backlog, uint32_t *id, uint16_t *port_out, int *lfd)
{
	return bind_listen_flags(a, addr, port, flags, backlog, 0, id, port_out, lfd);
}

/*
 * The CONN_FD message for @conn_id (sent before the response, so already
 * queued): the region, this end's wake eventfd and the peer's.
 */
static void take_conn_fd(struct ipcd_attach *a, uint64_t conn_id, bool acceptor,
			 struct ipcd_conn *conn)
{
	int fds[IPCD_CTL_CONN_NFDS];
	struct ipcd_ctl_msg m;
	unsigned int i;

	T_CHECK_EQ(ipcd_attach_recv_msg(a, &m, fds, 0), 0);
	T_CHECK_EQ(m.type, IPCD_CTL_CONN_FD);
	T_CHECK_EQ(m.conn_id, conn_id);
	for (i = 0; i < IPCD_CTL_CONN_NFDS_MIN; i++)
		T_CHECK(fds[i] >= 0);	/* the life socket is optional (ctl.h) */
	T_CHECK_EQ(ipcd_conn_open(fds, m.region_size, acceptor, conn), 0);
	T_CHECK_EQ(conn->conn_id, conn_id);
	T_CHECK(conn->wake_self >= 0 && conn->wake_peer >= 0);
	T_CHECK_EQ(ipcd_load_acquire(&conn->ctl->holders_a), 1);
	T_CHECK_EQ(ipcd_load_acquire(&conn->ctl->holders_b), 1);
	/* Both rings of a connection have one size. */
	T_CHECK_EQ(conn->tx.capacity, conn->rx.capacity);
}

static int do_connect_hint(struct ipcd_attach *a, const uint8_t addr[16], uint16_t port,
			   uint32_t hint, struct ipcd_conn *conn, struct ipcd_conn_resp *resp)
{
	struct ipcd_connect_req r = { .port = port, .ring_bytes = hint };
	int rc;

	memcpy(r.addr, addr, 16);
	rc = call(a, IPCD_OP_CONNECT, &r, sizeof(r), resp, sizeof(*resp));
	if (rc == 0) {
		take_conn_fd(a, resp->conn_id, false, conn);
		T_CHECK_EQ(conn->ctl->a_port, resp->self_port);
		T_CHECK_EQ(conn->ctl->b_port, resp->peer_port);
		T_CHECK(!memcmp(conn->ctl->b_addr, resp->peer_addr, 16));
	}
	return rc;
}

static int do_connect(struct ipcd_attach *a, const uint8_t addr[16], uint16_t port,
		      struct ipcd_conn *conn, struct ipcd_conn_resp *resp)
{
	return do_connect_hint(a, addr, port, 0, conn, resp);
}

static int do_accept(struct ipcd_attach *a, uint32_t id, struct ipcd_conn *conn,
		     struct ipcd_conn_resp *resp)
{
	struct ipcd_accept_req r = { .id = id };
	int rc = call(a, IPCD_OP_ACCEPT, &r, sizeof(r), resp, sizeof(*resp));

	if (rc == 0) {
		take_conn_fd(a, resp->conn_id, true, conn);
		T_CHECK_EQ(conn->ctl->b_port, resp->self_port);
		T_CHECK_EQ(conn->ctl->a_port, resp->peer_port);
		T_CHECK(!memcmp(conn->ctl->a_addr, resp->peer_addr, 16));
	}
	return rc;
}

static int close_id(struct ipcd_attach *a, uint64_t id)
{
	struct ipcd_close_req r = { .conn_id = id };

	return call(a, IPCD_OP_CLOSE, &r, sizeof(r), NULL, 0);
}

static void do_close(struct ipcd_attach *a, struct ipcd_conn *conn)
{
	uint64_t id = conn->conn_id;

	ipcd_conn_close(conn);
	T_CHECK_EQ(close_id(a, id), 0);
}

/* Wait (bounded) until the accept eventfd says a connection is queued. */
static void wait_listen_ready(int lfd)
{
	T_CHECK(fd_readable(lfd, T_WAIT_MS));
}

#define WAIT_FLAG(w, n)	T_CHECK(t_wait_at_least((w), (n), T_WAIT_MS))

/* ---- moving data -------------------------------------------------------- */

struct xfer {
	uint64_t sent;
	uint64_t rcvd;
	uint32_t tx_sum;	/* FNV-1a of what was written */
	uint32_t rx_sum;	/* ... and of what was read */
};

/*
 * Write @total pattern bytes of stream @tx_stream while reading @total bytes
 * of @rx_stream, both at once (the peer does the mirror image), checking
 * every byte read. Sleeps on the read ring when neither side can move.
 */
static void xfer(struct ipcd_conn *c, uint32_t tx_stream, uint32_t rx_stream, uint64_t total,
		 struct xfer *x)
{
	static uint8_t wbuf[CHUNK], rbuf[CHUNK];
	uint64_t deadline = ipcd_deadline(WAIT_NS * 3);
	size_t wlen = 0, woff = 0;

	x->tx_sum = x->rx_sum = T_FNV_INIT;
	while (x->sent < total || x->rcvd < total) {
		bool moved = false;
		ssize_t n;

		if (x->sent < total) {
			if (woff == wlen) {
				wlen = (size_t)IPCD_MIN((uint64_t)CHUNK, total - x->sent);
				t_pattern_fill(wbuf, wlen, tx_stream, x->sent);
				woff = 0;
			}
			n = ipcd_spsc_write(&c->tx, wbuf + woff, wlen - woff);
			if (n > 0) {
				x->tx_sum = t_fnv1a(x->tx_sum, wbuf + woff, (size_t)n);
				woff += (size_t)n;
				x->sent += (uint64_t)n;
				moved = true;
			} else {
				T_CHECK_EQ(n, -EAGAIN);
			}
		}
		if (x->rcvd < total) {
			n = ipcd_spsc_read(&c->rx, rbuf, sizeof(rbuf), 0);
			if (n > 0) {
				T_CHECK(t_pattern_check(rbuf, (size_t)n, rx_stream, x->rcvd));
				x->rx_sum = t_fnv1a(x->rx_sum, rbuf, (size_t)n);
				x->rcvd += (uint64_t)n;
				moved = true;
			} else {
				T_CHECK_EQ(n, -EAGAIN);	/* not EOF: the peer sends as much */
			}
		}
		T_CHECK(ipcd_remaining(deadline) > 0);
		if (!moved) {
			if (x->rcvd < total)
				ipcd_spsc_wait_readable(&c->rx, SPIN_NS, T_NSEC_PER_MSEC);
			else
				ipcd_spsc_wait_writable(&c->tx, 1, SPIN_NS, T_NSEC_PER_MSEC);
		}
	}
}

/* Read until EOF (bounded); returns the bytes drained. */
static uint64_t drain_to_eof(struct ipcd_conn *c)
{
	static uint8_t buf[CHUNK];
	uint64_t deadline = ipcd_deadline(WAIT_NS), total = 0;

	for (;;) {
		ssize_t n = ipcd_spsc_read(&c->rx, buf, sizeof(buf), 0);

		if (n == 0)
			return total;
		if (n > 0) {
			total += (uint64_t)n;
			continue;
		}
		T_CHECK_EQ(n, -EAGAIN);
		T_CHECK(ipcd_remaining(deadline) > 0);
		T_CHECK(ipcd_spsc_wait_readable(&c->rx, SPIN_NS, ipcd_remaining(deadline)) == 0 ||
			ipcd_remaining(deadline) == 0);
	}
}

/* ---- parent-side checks ------------------------------------------------- */

static void expect_no_connections(struct t_mon *m)
{
	assert_int_equal(t_ctl_wait_num(m, "status", "connections", 0), 0);
	assert_int_equal(t_ctl(m, &tout, true, "connections"), 0);
	assert_string_equal(tout.out, "[]\n");
}

/* tout holds ipcdctl --json output: it must be valid JSON (python3's json, when there). */
static void check_json(const char *what)
{
	int rc = t_json_python(tout.out);

	assert_true(t_json_balanced(tout.out));
	if (rc == 1)
		fail_msg("ipcdctl --json %s: not valid JSON:\n%s", what, tout.out);
}

static void child_ok(pid_t pid)
{
	assert_int_equal(t_wait(pid, T_WAIT_MS * 3), 0);
}

/* ---- 1. transfer over 127.0.0.1, ::1 and a wildcard --------------------- */

struct sh_xfer {
	uint32_t port;
	uint32_t connected;
	uint32_t go;
	uint32_t a_done;
	struct xfer xa;
	struct xfer xb;
};

static void __attribute__((noreturn)) xfer_listener(const struct t_mon *m, struct sh_xfer *sh,
						    const uint8_t bind_addr[16])
{
	struct ipcd_attach a;
	struct ipcd_conn_resp resp;
	struct ipcd_conn conn;
	uint32_t id;
	uint16_t port;
	int lfd;

	attach_or_die(m, "it-listen", &a);
	T_CHECK_EQ(bind_listen(&a, bind_addr, 0, 0, 16, &id, &port, &lfd), 0);
	ipcd_store_release(&sh->port, port);
	wait_listen_ready(lfd);
	T_CHECK_EQ(do_accept(&a, id, &conn, &resp), 0);
	T_CHECK(!fd_readable(lfd, 0));		/* the backlog is empty again */
	T_CHECK_EQ(resp.self_port, port);
	ipcd_fetch_add(&sh->connected, 1);
	WAIT_FLAG(&sh->go, 1);
	xfer(&conn, 2, 1, XFER_BYTES, &sh->xb);
	/* A closes first: B drains to EOF, then its writes fail. */
	WAIT_FLAG(&sh->a_done, 1);
	T_CHECK_EQ(drain_to_eof(&conn), 0);
	T_CHECK_EQ(ipcd_spsc_write(&conn.tx, "x", 1), -EPIPE);
	T_CHECK_EQ(ipcd_load_acquire(&conn.ctl->reset), 0);
	do_close(&a, &conn);
	close(lfd);
	ipcd_detach(&a);
	_exit(0);
}

static void __attribute__((noreturn)) xfer_connector(const struct t_mon *m, struct sh_xfer *sh,
						     const uint8_t dst[16])
{
	struct ipcd_attach a;
	struct ipcd_conn_resp resp;
	struct ipcd_conn conn;

	attach_or_die(m, "it-connect", &a);
	WAIT_FLAG(&sh->port, 1);
	T_CHECK_EQ(do_connect(&a, dst, (uint16_t)sh->port, &conn, &resp), 0);
	T_CHECK_EQ(resp.peer_port, sh->port);
	T_CHECK(resp.self_port != 0);
	ipcd_fetch_add(&sh->connected, 1);
	WAIT_FLAG(&sh->go, 1);
	xfer(&conn, 1, 2, XFER_BYTES, &sh->xa);
	do_close(&a, &conn);
	ipcd_store_release(&sh->a_done, 1);
	ipcd_detach(&a);
	_exit(0);
}

static void run_xfer(struct t_mon *m, const uint8_t bind_addr[16], const uint8_t dst[16],
		     const char *a_str, const char *b_str, bool inspect)
{
	struct sh_xfer *sh = t_shm_alloc(sizeof(*sh));
	pid_t pl, pc;
	char want[128];

	pl = t_fork(T_CHILD_ALARM);
	if (pl == 0)
		xfer_listener(m, sh, bind_addr);
	pc = t_fork(T_CHILD_ALARM);
	if (pc == 0)
		xfer_connector(m, sh, dst);
	if (!t_wait_at_least(&sh->connected, 2, T_WAIT_MS))
		fail_msg("the two processes did not connect");
	if (inspect) {
		assert_int_equal(t_ctl(m, &tout, true, "connections"), 0);
		assert_true(t_json_balanced(tout.out));
		assert_int_equal(t_count_str(tout.out, "\"id\":"), 1);
		assert_non_null(strstr(tout.out, "\"state\":\"established\""));
		assert_non_null(strstr(tout.out, "\"accelerated\":true"));
		snprintf(want, sizeof(want), "\"a_pid\":%d", (int)pc);
		assert_non_null(strstr(tout.out, want));
		snprintf(want, sizeof(want), "\"b_pid\":%d", (int)pl);
		assert_non_null(strstr(tout.out, want));
		snprintf(want, sizeof(want), "\"b\":\"%s:%u\"", b_str, sh->port);
		assert_non_null(strstr(tout.out, want));
		snprintf(want, sizeof(want), "\"a\":\"%s:", a_str);
		assert_non_null(strstr(tout.out, want));
		assert_int_equal(t_ctl(m, &tout, false, "connections"), 0);
		assert_non_null(strstr(tout.out, "established"));
	}
	ipcd_store_release(&sh->go, 1);
	child_ok(pc);
	child_ok(pl);
	assert_int_equal(sh->xa.sent, XFER_BYTES);
	assert_int_equal(sh->xb.rcvd, XFER_BYTES);
	assert_int_equal(sh->xa.tx_sum, sh->xb.rx_sum);
	assert_int_equal(sh->xb.tx_sum, sh->xa.rx_sum);
	expect_no_connections(m);
	t_shm_free(sh, sizeof(*sh));
}

static void test_transfer(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	uint8_t lo4[16], lo6[16], any4[16];
	int base;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	base = t_mon_fd_baseline(m);
	maps0 = t_mon_maps_count(m, "ipcd-conn");
	v4(lo4, 127, 0, 0, 1);
	v6_loop(lo6);
	v4(any4, 0, 0, 0, 0);
	run_xfer(m, lo4, lo4, "127.0.0.1", "127.0.0.1", true);
	run_xfer(m, lo6, lo6, "[::1]", "[::1]", true);
	/* A wildcard listener: B's address is the destination. */
	run_xfer(m, any4, lo4, "127.0.0.1", "127.0.0.1", true);
	assert_int_equal(t_ctl_num(m, "counters", "created"), 3);
	assert_int_equal(t_ctl_num(m, "counters", "accepted"), 3);
	assert_int_equal(t_ctl_num(m, "counters", "freed"), 3);
	assert_int_equal(t_ctl_num(m, "counters", "reset"), 0);
	assert_int_equal(t_ctl_wait_num(m, "status", "binds", 0), 0);
	assert_int_equal(t_mon_wait_fds(m, base), base);
	/* Only the regions pooled ahead of need stay mapped (none handed out). */
	assert_int_equal(t_mon_maps_count(m, "ipcd-conn"), maps0);
	assert_int_equal(t_ctl(m, &tout, false, "counters"), 0);
	assert_non_null(strstr(tout.out, "backlog full"));
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- 2. refused, backlog full, EPERM, close while queued ---------------- */

struct sh_rules {
	uint32_t port;
	uint32_t bind_id;
	uint32_t queued;
	uint32_t accepted;
};

static void __attribute__((noreturn)) rules_listener(const struct t_mon *m, struct sh_rules *sh)
{
	struct ipcd_attach a;
	struct ipcd_conn_resp resp;
	struct ipcd_conn c1, c2, c3;
	uint8_t lo[16];
	uint32_t id;
	uint16_t port;
	int lfd;

	attach_or_die(m, "it-listen", &a);
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 1, &id, &port, &lfd), 0);
	ipcd_store_release(&sh->bind_id, id);
	ipcd_store_release(&sh->port, port);
	WAIT_FLAG(&sh->queued, 1);
	wait_listen_ready(lfd);
	/* The oldest first: the connector wrote "hello" and closed it while queued. */
	T_CHECK_EQ(do_accept(&a, id, &c1, &resp), 0);
	T_CHECK(fd_readable(lfd, 0));		/* one more queued */
	T_CHECK_EQ(drain_to_eof(&c1), 5);
	T_CHECK_EQ(do_accept(&a, id, &c2, &resp), 0);
	T_CHECK(!fd_readable(lfd, 0));
	T_CHECK_EQ(do_accept(&a, id, &c3, &resp), -EAGAIN);
	T_CHECK(!fd_readable(lfd, 0));
	T_CHECK_EQ(ipcd_spsc_write(&c2.tx, "pong", 4), 4);
	ipcd_store_release(&sh->accepted, 1);
	T_CHECK_EQ(drain_to_eof(&c2), 0);
	do_close(&a, &c1);
	do_close(&a, &c2);
	close(lfd);
	ipcd_detach(&a);
	_exit(0);
}

static void __attribute__((noreturn)) rules_connector(const struct t_mon *m, struct sh_rules *sh)
{
	struct ipcd_attach a;
	struct ipcd_conn_resp resp;
	struct ipcd_conn c1, c2, c3;
	struct ipcd_connect_req bad = { .flags = 1u << 31 };	/* no such flag */
	uint8_t lo[16], lo6[16], buf[8];
	uint64_t c1_id;

	attach_or_die(m, "it-connect", &a);
	v4(lo, 127, 0, 0, 1);
	v6_loop(lo6);
	WAIT_FLAG(&sh->port, 1);
	/* Nobody listens there (nor on ::1 at the listener's port). */
	T_CHECK_EQ(do_connect(&a, lo, (uint16_t)(sh->port == 65535 ? 1 : sh->port + 1), &c1,
			      &resp), -ECONNREFUSED);
	T_CHECK_EQ(do_connect(&a, lo6, (uint16_t)sh->port, &c1, &resp), -ECONNREFUSED);
	T_CHECK_EQ(call(&a, IPCD_OP_CONNECT, &bad, sizeof(bad), NULL, 0), -EINVAL);
	/* listen(fd, 1) holds two connections, as Linux does. */
	T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &c1, &resp), 0);
	c1_id = c1.conn_id;
	T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &c2, &resp), 0);
	T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &c3, &resp), -EAGAIN);
	T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &c3, &resp), -EAGAIN);
	/* Not ours to accept from, nor to close. */
	{
		struct ipcd_accept_req ar = { .id = sh->bind_id };

		T_CHECK_EQ(call(&a, IPCD_OP_ACCEPT, &ar, sizeof(ar), NULL, 0), -EPERM);
		T_CHECK_EQ(close_id(&a, 12345), -ENOENT);
	}
	/* Write, then close while still queued: the acceptor gets the data and EOF. */
	T_CHECK_EQ(ipcd_spsc_write(&c1.tx, "hello", 5), 5);
	do_close(&a, &c1);
	T_CHECK_EQ(close_id(&a, c1_id), -ENOENT);	/* closed already */
	ipcd_store_release(&sh->queued, 1);
	WAIT_FLAG(&sh->accepted, 1);
	T_CHECK(ipcd_spsc_wait_readable(&c2.rx, SPIN_NS, WAIT_NS) == 0);
	T_CHECK_EQ(ipcd_spsc_read(&c2.rx, buf, sizeof(buf), 0), 4);
	T_CHECK(!memcmp(buf, "pong", 4));
	do_close(&a, &c2);
	ipcd_detach(&a);
	_exit(0);
}

static void test_rules(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_rules *sh = t_shm_alloc(sizeof(*sh));
	pid_t pl, pc;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	pl = t_fork(T_CHILD_ALARM);
	if (pl == 0)
		rules_listener(m, sh);
	pc = t_fork(T_CHILD_ALARM);
	if (pc == 0)
		rules_connector(m, sh);
	child_ok(pc);
	child_ok(pl);
	expect_no_connections(m);
	assert_int_equal(t_ctl_num(m, "counters", "refused_connects"), 2);
	assert_int_equal(t_ctl_num(m, "counters", "backlog_full"), 2);
	assert_int_equal(t_ctl_num(m, "counters", "created"), 2);
	assert_int_equal(t_ctl_num(m, "status", "processes"), 0);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 3. SO_REUSEPORT: two listening processes share the connections ----- */

#define N_RP	8

struct sh_rp {
	uint32_t port;
	uint32_t listening;
	uint32_t total;
	uint32_t stop;
	uint32_t got[2];
};

/* Accept whatever comes (the accept eventfd readable, then until -EAGAIN), closing each. */
static void __attribute__((noreturn)) rp_listener(const struct t_mon *m, struct sh_rp *sh,
						  unsigned int i)
{
	struct ipcd_attach a;

	attach_or_die(m, "it-reuseport", &a);
	uint8_t lo[16];
	uint32_t id;
	uint16_t port;
	int lfd;

	v4(lo, 127, 0, 0, 1);
	if (i == 1)
		WAIT_FLAG(&sh->port, 1);
	T_CHECK_EQ(bind_listen(&a, lo, i ? (uint16_t)sh->port : 0, IPCD_BIND_REUSEPORT, 64, &id,
			       &port, &lfd), 0);
	if (i == 0)
		ipcd_store_release(&sh->port, port);
	ipcd_fetch_add(&sh->listening, 1);
	while (!ipcd_load_acquire(&sh->stop)) {
		struct ipcd_conn_resp resp;
		struct ipcd_conn conn;

		if (!fd_readable(lfd, 10))
			continue;
		while (do_accept(&a, id, &conn, &resp) == 0) {
			do_close(&a, &conn);
			sh->got[i]++;
			ipcd_fetch_add(&sh->total, 1);
		}
	}
	close(lfd);
	ipcd_detach(&a);
	_exit(0);
}

static void test_reuseport(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_rp *sh = t_shm_alloc(sizeof(*sh));
	struct ipcd_attach a;
	pid_t pl[2], pc;
	unsigned int i;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	for (i = 0; i < 2; i++) {
		pl[i] = t_fork(T_CHILD_ALARM);
		if (pl[i] == 0)
			rp_listener(m, sh, i);
	}
	pc = t_fork(T_CHILD_ALARM);
	if (pc == 0) {
		struct ipcd_conn_resp resp;
		struct ipcd_conn conn;
		uint8_t lo[16];

		attach_or_die(m, "it-connect", &a);
		v4(lo, 127, 0, 0, 1);
		WAIT_FLAG(&sh->listening, 2);
		for (i = 0; i < N_RP; i++) {
			T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &conn, &resp), 0);
			do_close(&a, &conn);
		}
		ipcd_detach(&a);
		_exit(0);
	}
	child_ok(pc);
	if (!t_wait_at_least(&sh->total, N_RP, T_WAIT_MS))
		fail_msg("only %u of %d connections accepted", sh->total, N_RP);
	ipcd_store_release(&sh->stop, 1);
	child_ok(pl[0]);
	child_ok(pl[1]);
	assert_true(sh->got[0] > 0);
	assert_true(sh->got[1] > 0);
	expect_no_connections(m);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 4. SIGKILL of either endpoint mid-transfer ------------------------- */

struct sh_kill {
	uint32_t port;
	uint32_t connected;
	uint32_t victim_stalled;	/* the victim stopped reading */
	uint32_t survivor_full;		/* the survivor filled the victim's ring */
};

/*
 * Both ends move data for a while; then the victim stops reading, the
 * survivor fills the ring towards it, and the parent SIGKILLs the victim.
 * The survivor must see EOF, the victim's reset bit (it died with unread
 * data), and EPIPE on writes.
 */
static void __attribute__((noreturn)) kill_end(const struct t_mon *m, struct sh_kill *sh,
					       bool acceptor, bool victim)
{
	struct ipcd_attach a;

	attach_or_die(m, victim ? "it-victim" : "it-survivor", &a);
	static uint8_t buf[CHUNK];
	struct ipcd_conn_resp resp;
	struct ipcd_conn conn;
	struct xfer x = { 0 };
	uint8_t lo[16];
	uint32_t bit = acceptor ? IPCD_CONN_RESET_A : IPCD_CONN_RESET_B;

	v4(lo, 127, 0, 0, 1);
	if (acceptor) {
		uint32_t id;
		uint16_t port;
		int lfd;

		T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 4, &id, &port, &lfd), 0);
		ipcd_store_release(&sh->port, port);
		wait_listen_ready(lfd);
		T_CHECK_EQ(do_accept(&a, id, &conn, &resp), 0);
		close(lfd);
	} else {
		WAIT_FLAG(&sh->port, 1);
		T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &conn, &resp), 0);
	}
	ipcd_fetch_add(&sh->connected, 1);
	WAIT_FLAG(&sh->connected, 2);
	xfer(&conn, acceptor ? 2 : 1, acceptor ? 1 : 2, 4u << 20, &x);
	if (victim) {
		ipcd_store_release(&sh->victim_stalled, 1);
		for (;;)
			pause();	/* SIGKILLed with unread data in its ring */
	}
	WAIT_FLAG(&sh->victim_stalled, 1);
	t_pattern_fill(buf, sizeof(buf), 7, 0);
	while (ipcd_spsc_write(&conn.tx, buf, sizeof(buf)) > 0)
		;
	/*
	 * Sleep as poll/epoll would: IPCD_DB_EVENT on the ring we read, then the
	 * wake eventfd. Nobody has set DB_EVENT before, so nothing has signalled
	 * it yet; the victim is stalled, so only the monitor can.
	 */
	T_CHECK(!fd_readable(conn.wake_self, 0));
	ipcd_doorbell_arm_bits(&conn.rx.shm->cons_wait, IPCD_DB_EVENT);
	T_CHECK_EQ(ipcd_load_acquire(&conn.rx.shm->prod_closed), 0);
	ipcd_store_release(&sh->survivor_full, 1);
	/* Bounded: the monitor marks the dead side's rings and wakes us. */
	{
		uint64_t v = 0;
		ssize_t n;

		/*
		 * ipcd_eventfd_signal_out() adds 1, reads the counter back and
		 * writes it again (an EPOLLOUT edge): a read between the two
		 * finds 0 (EAGAIN) although poll said readable: look again.
		 */
		do {
			T_CHECK(fd_readable(conn.wake_self, T_WAIT_MS));
			n = read(conn.wake_self, &v, sizeof(v));
		} while (n < 0 && errno == EAGAIN);
		T_CHECK_EQ(n, (ssize_t)sizeof(v));
		T_CHECK(v >= 1);
	}
	/* The monitor cleared the word before it signalled, and marked the ring. */
	T_CHECK_EQ(ipcd_load_acquire(&conn.rx.shm->cons_wait), 0);
	T_CHECK_EQ(ipcd_load_acquire(&conn.rx.shm->prod_closed), 1);
	T_CHECK_EQ(drain_to_eof(&conn), 0);
	T_CHECK(ipcd_load_acquire(&conn.ctl->reset) & bit);
	T_CHECK_EQ(ipcd_spsc_write(&conn.tx, buf, 1), -EPIPE);
	T_CHECK_EQ(ipcd_spsc_wait_writable(&conn.tx, 1, 0, WAIT_NS), 0);
	do_close(&a, &conn);
	ipcd_detach(&a);
	_exit(0);
}

static void test_kill_endpoint(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	unsigned int v;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	for (v = 0; v < 2; v++) {	/* 0: the connector dies, 1: the acceptor */
		struct sh_kill *sh = t_shm_alloc(sizeof(*sh));
		pid_t pa, pb, victim, survivor;

		pb = t_fork(T_CHILD_ALARM);
		if (pb == 0)
			kill_end(m, sh, true, v == 1);
		pa = t_fork(T_CHILD_ALARM);
		if (pa == 0)
			kill_end(m, sh, false, v == 0);
		victim = v ? pb : pa;
		survivor = v ? pa : pb;
		if (!t_wait_at_least(&sh->survivor_full, 1, T_WAIT_MS))
			fail_msg("case %u: the survivor never filled the ring", v);
		assert_int_equal(t_kill_wait(victim), 128 + SIGKILL);
		child_ok(survivor);
		expect_no_connections(m);
		t_shm_free(sh, sizeof(*sh));
	}
	assert_int_equal(t_ctl_num(m, "counters", "reset"), 2);
	assert_int_equal(t_ctl_num(m, "counters", "dead_ends"), 2);
	assert_int_equal(t_ctl_wait_num(m, "status", "binds", 0), 0);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- 5. SIGKILL of a listener with connections in its backlog ----------- */

struct sh_backlog {
	uint32_t port;
	uint32_t queued;
};

static void test_kill_listener(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_backlog *sh = t_shm_alloc(sizeof(*sh));
	pid_t pl, pc;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	pl = t_fork(T_CHILD_ALARM);
	if (pl == 0) {
		struct ipcd_attach a;
		uint8_t lo[16];
		uint32_t id;
		uint16_t port;
		int lfd;

		attach_or_die(m, "it-listen", &a);
		v4(lo, 127, 0, 0, 1);
		T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 8, &id, &port, &lfd), 0);
		ipcd_store_release(&sh->port, port);
		for (;;)
			pause();	/* never accepts */
	}
	pc = t_fork(T_CHILD_ALARM);
	if (pc == 0) {
		struct ipcd_attach a;
		struct ipcd_conn_resp resp;
		struct ipcd_conn c[3];
		uint8_t lo[16];
		unsigned int i;

		attach_or_die(m, "it-connect", &a);
		v4(lo, 127, 0, 0, 1);
		WAIT_FLAG(&sh->port, 1);
		for (i = 0; i < 3; i++) {
			T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &c[i], &resp), 0);
			T_CHECK_EQ(ipcd_spsc_write(&c[i].tx, "req", 3), 3);
		}
		ipcd_store_release(&sh->queued, 1);
		for (i = 0; i < 3; i++) {
			T_CHECK_EQ(drain_to_eof(&c[i]), 0);
			T_CHECK(ipcd_load_acquire(&c[i].ctl->reset) & IPCD_CONN_RESET_B);
			T_CHECK_EQ(ipcd_spsc_write(&c[i].tx, "x", 1), -EPIPE);
			do_close(&a, &c[i]);
		}
		ipcd_detach(&a);
		_exit(0);
	}
	if (!t_wait_at_least(&sh->queued, 1, T_WAIT_MS))
		fail_msg("the connector did not get its connections");
	assert_int_equal(t_ctl(m, &tout, true, "connections"), 0);
	assert_int_equal(t_count_str(tout.out, "\"state\":\"backlog\""), 3);
	assert_int_equal(t_kill_wait(pl), 128 + SIGKILL);
	child_ok(pc);
	expect_no_connections(m);
	assert_int_equal(t_ctl_num(m, "counters", "reset"), 3);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 6. 1000 connections in a row: nothing left behind ------------------ */

struct sh_seq {
	uint32_t attached;
	uint32_t go;
	uint32_t done;
	uint32_t exit;
};

static void __attribute__((noreturn)) seq_child(const struct t_mon *m, struct sh_seq *sh)
{
	struct ipcd_attach a;

	attach_or_die(m, "it-seq", &a);
	uint8_t lo[16], b;
	uint32_t id;
	uint16_t port;
	unsigned int i;
	int lfd;

	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 4, &id, &port, &lfd), 0);
	ipcd_store_release(&sh->attached, 1);
	WAIT_FLAG(&sh->go, 1);
	for (i = 0; i < N_SEQ; i++) {
		struct ipcd_conn_resp r1, r2;
		struct ipcd_conn ca, cb;

		/*
		 * A self-connection: this process holds both ends. The accept
		 * eventfd is readable exactly while the connection is queued
		 * (the monitor sets its level before it answers).
		 */
		T_CHECK(!fd_readable(lfd, 0));
		T_CHECK_EQ(do_connect(&a, lo, port, &ca, &r1), 0);
		T_CHECK(fd_readable(lfd, 0));
		T_CHECK_EQ(do_accept(&a, id, &cb, &r2), 0);
		T_CHECK(!fd_readable(lfd, 0));
		T_CHECK_EQ(r1.conn_id, r2.conn_id);
		T_CHECK_EQ(r1.self_port, r2.peer_port);
		b = (uint8_t)i;
		T_CHECK_EQ(ipcd_spsc_write(&ca.tx, &b, 1), 1);
		T_CHECK_EQ(ipcd_spsc_read(&cb.rx, &b, 1, 0), 1);
		T_CHECK_EQ(b, (uint8_t)i);
		if (i & 1) {
			do_close(&a, &ca);
			do_close(&a, &cb);
		} else {
			do_close(&a, &cb);
			do_close(&a, &ca);
		}
	}
	ipcd_store_release(&sh->done, 1);
	WAIT_FLAG(&sh->exit, 1);
	close(lfd);
	ipcd_detach(&a);
	_exit(0);
}

static void test_many_in_a_row(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_seq *sh = t_shm_alloc(sizeof(*sh));
	pid_t pid;
	int base;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	pid = t_fork(T_CHILD_ALARM * 2);
	if (pid == 0)
		seq_child(m, sh);
	if (!t_wait_at_least(&sh->attached, 1, T_WAIT_MS))
		fail_msg("the child did not start");
	base = t_mon_fd_baseline(m);
	maps0 = t_mon_maps_count(m, "ipcd-conn");
	ipcd_store_release(&sh->go, 1);
	if (!t_wait_at_least(&sh->done, 1, T_WAIT_MS * 3))
		fail_msg("the child did not finish its %d connections", N_SEQ);
	expect_no_connections(m);
	assert_int_equal(t_mon_wait_fds(m, base), base);
	/* Only the regions pooled ahead of need stay mapped (none handed out). */
	assert_int_equal(t_mon_maps_count(m, "ipcd-conn"), maps0);
	/* Every ephemeral port went back: only the listener's bind is left. */
	assert_int_equal(t_ctl_num(m, "status", "binds"), 1);
	assert_int_equal(t_ctl_num(m, "counters", "created"), N_SEQ);
	assert_int_equal(t_ctl_num(m, "counters", "freed"), N_SEQ);
	assert_int_equal(t_ctl_num(m, "counters", "closed"), 2 * N_SEQ);
	ipcd_store_release(&sh->exit, 1);
	child_ok(pid);
	assert_int_equal(t_ctl_wait_num(m, "status", "binds", 0), 0);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 7. a process that never reads its control socket ------------------- */

struct sh_deaf {
	uint32_t port;
	uint32_t stop;
	uint32_t accepted;
	uint32_t connects;
};

/*
 * Submit @op and wait for its response, or for the monitor to close our
 * control socket (then return 1): a process cut off gets no response.
 */
static int call_or_cut(struct ipcd_attach *a, uint16_t op, const void *body, uint16_t len,
		       struct ipcd_resp *resp)
{
	uint64_t deadline = ipcd_deadline(T_CALL_TIMEOUT_NS);
	struct ipcd_req req = { .opcode = op, .len = len };
	int rc;

	memcpy(req.body, body, len);
	req.cookie = ++a->cl.next_cookie;
	while ((rc = ipcd_reqq_submit(&a->cl, &req)) == -EAGAIN)
		T_CHECK(ipcd_remaining(deadline) > 0);
	T_CHECK_EQ(rc, 0);
	for (;;) {
		struct pollfd p = { .fd = a->sock, .events = POLLRDHUP };
		ssize_t n = ipcd_spsc_recv(&a->cl.chan.resp, resp, sizeof(*resp));

		if (n == (ssize_t)sizeof(*resp)) {
			T_CHECK_EQ(resp->cookie, req.cookie);
			return 0;
		}
		T_CHECK_EQ(n, -EAGAIN);
		if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP)))
			return 1;
		T_CHECK(ipcd_remaining(deadline) > 0);
		ipcd_spsc_wait_readable(&a->cl.chan.resp, SPIN_NS, T_NSEC_PER_MSEC);
	}
}

static void __attribute__((noreturn)) deaf_child(const struct t_mon *m, struct sh_deaf *sh)
{
	struct ipcd_attach a;
	struct ipcd_connect_req r = { 0 };
	unsigned int i;

	attach_or_die(m, "it-deaf", &a);
	v4(r.addr, 127, 0, 0, 1);
	WAIT_FLAG(&sh->port, 1);
	r.port = (uint16_t)sh->port;
	for (i = 0; i < 100000; i++) {
		struct ipcd_conn_resp cr;
		struct ipcd_close_req cl = { 0 };
		struct ipcd_resp resp;

		if (call_or_cut(&a, IPCD_OP_CONNECT, &r, sizeof(r), &resp))
			_exit(0);	/* cut off, as it deserves */
		if (resp.status == -EAGAIN) {	/* the listener is behind: let it catch up */
			t_sleep_ms(1);
			continue;
		}
		T_CHECK_EQ(resp.status, 0);
		memcpy(&cr, resp.body, sizeof(cr));
		ipcd_fetch_add(&sh->connects, 1);
		cl.conn_id = cr.conn_id;
		if (call_or_cut(&a, IPCD_OP_CLOSE, &cl, sizeof(cl), &resp))
			_exit(0);
		T_CHECK_EQ(resp.status, 0);
	}
	fprintf(stderr, "[it-deaf] %u connections and never cut off\n", i);
	_exit(1);
}

static void __attribute__((noreturn)) busy_listener(const struct t_mon *m, struct sh_deaf *sh)
{
	struct ipcd_attach a;

	attach_or_die(m, "it-listen", &a);
	uint8_t lo[16];
	uint32_t id;
	uint16_t port;
	int lfd;

	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 128, &id, &port, &lfd), 0);
	ipcd_store_release(&sh->port, port);
	while (!ipcd_load_acquire(&sh->stop)) {
		struct ipcd_conn_resp resp;
		struct ipcd_conn conn;

		if (!fd_readable(lfd, 10))
			continue;
		/* Accept and close: the deaf client never even maps its end. */
		while (do_accept(&a, id, &conn, &resp) == 0) {
			do_close(&a, &conn);
			ipcd_fetch_add(&sh->accepted, 1);
		}
	}
	close(lfd);
	ipcd_detach(&a);
	_exit(0);
}

static void test_deaf_client(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_deaf *sh = t_shm_alloc(sizeof(*sh));
	pid_t pl, pd, pp;
	int code;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	pl = t_fork(T_CHILD_ALARM * 2);
	if (pl == 0)
		busy_listener(m, sh);
	pd = t_fork(T_CHILD_ALARM * 2);
	if (pd == 0)
		deaf_child(m, sh);
	code = t_wait(pd, T_WAIT_MS * 3);
	if (code != 0)
		fail_msg("the deaf client exited %d after %u connections", code, sh->connects);
	assert_true(t_mon_log_contains(m, "it does not read its control socket"));
	assert_int_equal(t_ctl_num(m, "counters", "fd_faults"), 1);
	/* Everyone else keeps working. */
	pp = t_fork(T_CHILD_ALARM);
	if (pp == 0) {
		struct ipcd_attach a;
		struct ipcd_conn_resp resp;
		struct ipcd_conn conn;
		uint8_t lo[16];
		unsigned int i;
		ssize_t n;

		attach_or_die(m, "it-polite", &a);
		v4(lo, 127, 0, 0, 1);
		for (i = 0; i < 20; i++) {
			T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &conn, &resp), 0);
			/* The listener may have accepted and closed it already. */
			n = ipcd_spsc_write(&conn.tx, "hi", 2);
			T_CHECK(n == 2 || n == -EPIPE);
			do_close(&a, &conn);
		}
		ipcd_detach(&a);
		_exit(0);
	}
	child_ok(pp);
	if (!t_wait_at_least(&sh->accepted, sh->connects + 20, T_WAIT_MS))
		fail_msg("the listener accepted %u of %u", sh->accepted, sh->connects + 20);
	ipcd_store_release(&sh->stop, 1);
	child_ok(pl);
	expect_no_connections(m);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 8. SIGTERM: the monitor goes, the connections stay ----------------- */

static void test_monitor_exit(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_seq *sh = t_shm_alloc(sizeof(*sh));
	pid_t pid;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0) {
		struct ipcd_conn_resp r1, r2;
		struct ipcd_attach a;
		struct ipcd_conn ca, cb;
		char b1[4], b2[4];
		uint8_t lo[16];
		int fds[IPCD_CTL_CONN_NFDS];
		uint32_t id;
		uint16_t port;
		int lfd;

		attach_or_die(m, "it-orphan", &a);
		v4(lo, 127, 0, 0, 1);
		T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 4, &id, &port, &lfd), 0);
		T_CHECK_EQ(do_connect(&a, lo, port, &ca, &r1), 0);
		T_CHECK_EQ(do_accept(&a, id, &cb, &r2), 0);
		ipcd_store_release(&sh->attached, 1);
		WAIT_FLAG(&sh->go, 1);
		/* The monitor is gone; the rings were never marked. */
		T_CHECK_EQ(ipcd_attach_recv_msg(&a, &(struct ipcd_ctl_msg){ 0 }, fds, T_WAIT_MS),
			   -ECONNRESET);
		T_CHECK(!fd_readable(ca.wake_self, 0));
		T_CHECK(!fd_readable(cb.wake_self, 0));
		T_CHECK_EQ(ipcd_load_acquire(&ca.tx.shm->cons_closed), 0);
		T_CHECK_EQ(ipcd_load_acquire(&cb.tx.shm->cons_closed), 0);
		T_CHECK_EQ(ipcd_load_acquire(&ca.ctl->reset), 0);
		T_CHECK_EQ(ipcd_spsc_write(&ca.tx, "ping", 4), 4);
		T_CHECK_EQ(ipcd_spsc_read(&cb.rx, b1, 4, 0), 4);
		T_CHECK_EQ(ipcd_spsc_write(&cb.tx, "pong", 4), 4);
		T_CHECK_EQ(ipcd_spsc_read(&ca.rx, b2, 4, 0), 4);
		T_CHECK(!memcmp(b1, "ping", 4) && !memcmp(b2, "pong", 4));
		ipcd_conn_close(&ca);
		T_CHECK_EQ(drain_to_eof(&cb), 0);
		ipcd_conn_close(&cb);
		_exit(0);
	}
	if (!t_wait_at_least(&sh->attached, 1, T_WAIT_MS))
		fail_msg("the child did not connect");
	t_mon_stop(m);
	ipcd_store_release(&sh->go, 1);
	child_ok(pid);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 9. the listener's accept eventfd ------------------------------------ */

static int unbind_id(struct ipcd_attach *a, uint32_t id)
{
	struct ipcd_unbind_req u = { .id = id };

	return call(a, IPCD_OP_UNBIND, &u, sizeof(u), NULL, 0);
}

/*
 * One process, self-connections only, so every level is exact: the accept
 * eventfd comes once, before the first LISTEN's response; it is readable
 * exactly while the backlog holds something; a dropped backlog drains it.
 */
static void __attribute__((noreturn)) lfd_child(const struct t_mon *m)
{
	struct ipcd_attach a;
	struct ipcd_conn_resp resp;
	struct ipcd_conn c[3], acc;
	uint8_t lo[16];
	uint32_t id, id2;
	uint16_t port, port2;
	int lfd, lfd2;

	attach_or_die(m, "it-lfd", &a);
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 4, &id, &port, &lfd), 0);
	/* A re-LISTEN (new backlog) sends no second eventfd, and failed ones none. */
	T_CHECK_EQ(listen_hint(&a, id, 8, 0, NULL), 0);
	T_CHECK_EQ(listen_hint(&a, 0xdead, 8, 0, NULL), -ENOENT);
	{
		/* Unknown flags are refused: only IPCD_LISTEN_LANES exists. */
		struct ipcd_listen_req l = { .id = id, .backlog = 4, .flags = 2 };

		T_CHECK_EQ(call(&a, IPCD_OP_LISTEN, &l, sizeof(l), NULL, 0), -EINVAL);
		l.flags = 0;
		l.ring_bytes = (1u << 30) + 1;
		T_CHECK_EQ(call(&a, IPCD_OP_LISTEN, &l, sizeof(l), NULL, 0), -EINVAL);
		T_CHECK_EQ(ipcd_attach_recv_msg(&a, &(struct ipcd_ctl_msg){ 0 },
						(int[IPCD_CTL_CONN_NFDS]){ 0 }, 0), -ETIMEDOUT);
	}
	T_CHECK(!fd_readable(lfd, 0));

	/* empty -> 1 -> 2: readable; 2 -> 1: still; 1 -> 0: not; then again. */
	T_CHECK_EQ(do_connect(&a, lo, port, &c[0], &resp), 0);
	T_CHECK(fd_readable(lfd, 0));
	T_CHECK_EQ(do_connect(&a, lo, port, &c[1], &resp), 0);
	T_CHECK(fd_readable(lfd, 0));
	T_CHECK_EQ(do_accept(&a, id, &acc, &resp), 0);
	T_CHECK(fd_readable(lfd, 0));
	do_close(&a, &acc);
	T_CHECK_EQ(do_accept(&a, id, &acc, &resp), 0);
	T_CHECK(!fd_readable(lfd, 0));
	do_close(&a, &acc);
	T_CHECK_EQ(do_accept(&a, id, &acc, &resp), -EAGAIN);
	T_CHECK(!fd_readable(lfd, 0));
	T_CHECK_EQ(do_connect(&a, lo, port, &c[2], &resp), 0);
	T_CHECK(fd_readable(lfd, 0));

	/* The connector closing a queued connection leaves it queued (the kernel does too). */
	do_close(&a, &c[2]);
	T_CHECK(fd_readable(lfd, 0));
	T_CHECK_EQ(do_accept(&a, id, &acc, &resp), 0);
	T_CHECK(!fd_readable(lfd, 0));
	T_CHECK_EQ(drain_to_eof(&acc), 0);
	do_close(&a, &acc);
	do_close(&a, &c[0]);
	do_close(&a, &c[1]);

	/* A second listener has its own eventfd. Unbinding drops its backlog: drained. */
	T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 4, &id2, &port2, &lfd2), 0);
	T_CHECK(lfd2 != lfd);
	T_CHECK_EQ(do_connect(&a, lo, port2, &c[0], &resp), 0);
	T_CHECK(fd_readable(lfd2, 0));
	T_CHECK(!fd_readable(lfd, 0));
	T_CHECK_EQ(unbind_id(&a, id2), 0);
	T_CHECK(!fd_readable(lfd2, 0));
	T_CHECK_EQ(drain_to_eof(&c[0]), 0);	/* reset, as after the kernel's RST */
	T_CHECK(ipcd_load_acquire(&c[0].ctl->reset) & IPCD_CONN_RESET_B);
	do_close(&a, &c[0]);
	close(lfd2);

	T_CHECK_EQ(unbind_id(&a, id), 0);
	close(lfd);
	ipcd_detach(&a);
	_exit(0);
}

static void test_listener_fd(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	pid_t pid;
	int base;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	base = t_mon_fd_baseline(m);
	maps0 = t_mon_maps_count(m, "ipcd-conn");
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		lfd_child(m);
	child_ok(pid);
	expect_no_connections(m);
	/* Every eventfd went: the listeners' and the connections' two each. */
	assert_int_equal(t_mon_wait_fds(m, base), base);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- 10. ring sizes: config, hints, cap ----------------------------------- */

#define RING_MIN	4096u
#define RING_MAX	(1u << 20)
#define CONF_RING	CONF "ring_bytes = 4096\nring_max_bytes = 1048576\n"

struct sh_ring {
	uint32_t open;		/* a 128 KiB connection is open */
	uint32_t checked;
};

/*
 * A self-connection with hints @connect_hint (and the listener's current
 * one): both ends see rings of @want bytes each way.
 */
static void ring_case(struct ipcd_attach *a, const uint8_t lo[16], uint16_t port, uint32_t id,
		      uint32_t connect_hint, uint32_t want, struct sh_ring *sh)
{
	struct ipcd_conn_resp r1, r2;
	struct ipcd_conn ca, cb;

	T_CHECK_EQ(do_connect_hint(a, lo, port, connect_hint, &ca, &r1), 0);
	T_CHECK_EQ(do_accept(a, id, &cb, &r2), 0);
	T_CHECK_EQ(ca.tx.capacity, want);
	T_CHECK_EQ(ca.rx.capacity, want);
	T_CHECK_EQ(cb.tx.capacity, want);
	T_CHECK_EQ(cb.rx.capacity, want);
	if (sh) {		/* let the parent look at it with ipcdctl */
		ipcd_store_release(&sh->open, 1);
		WAIT_FLAG(&sh->checked, 1);
	}
	do_close(a, &ca);
	do_close(a, &cb);
}

static void __attribute__((noreturn)) ring_child(const struct t_mon *m, struct sh_ring *sh)
{
	struct ipcd_attach a;
	struct ipcd_conn_resp resp;
	struct ipcd_conn c;
	uint8_t lo[16];
	uint32_t id;
	uint16_t port;
	int lfd;

	attach_or_die(m, "it-ring", &a);
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 4, &id, &port, &lfd), 0);
	/* No hints: the config's ring_bytes. */
	ring_case(&a, lo, port, id, 0, RING_MIN, NULL);
	/* Smaller than ring_bytes changes nothing; larger rounds up to a power of two. */
	ring_case(&a, lo, port, id, 100, RING_MIN, NULL);
	ring_case(&a, lo, port, id, 5000, 8192, NULL);
	ring_case(&a, lo, port, id, 65536, 65536, NULL);
	/* Capped by ring_max_bytes, up to the largest hint a request may carry. */
	ring_case(&a, lo, port, id, RING_MAX + 1, RING_MAX, NULL);
	ring_case(&a, lo, port, id, 1u << 30, RING_MAX, NULL);
	{
		struct ipcd_connect_req r = { .port = port, .ring_bytes = (1u << 30) + 1 };

		memcpy(r.addr, lo, 16);
		T_CHECK_EQ(do_connect_hint(&a, lo, port, (1u << 30) + 1, &c, &resp), -EINVAL);
		T_CHECK_EQ(do_connect_hint(&a, lo, port, UINT32_MAX, &c, &resp), -EINVAL);
		r.ring_bytes = 0;
		r.pad2 = 1;
		T_CHECK_EQ(call(&a, IPCD_OP_CONNECT, &r, sizeof(r), NULL, 0), -EINVAL);
		r.pad2 = 0;
		r.pad = 1;
		T_CHECK_EQ(call(&a, IPCD_OP_CONNECT, &r, sizeof(r), NULL, 0), -EINVAL);
	}
	/* The listener's hint (from its latest LISTEN) counts as much as the connector's. */
	T_CHECK_EQ(listen_hint(&a, id, 4, 100000, NULL), 0);
	ring_case(&a, lo, port, id, 0, 131072, sh);
	ring_case(&a, lo, port, id, 300000, 524288, NULL);
	T_CHECK_EQ(listen_hint(&a, id, 4, 1u << 30, NULL), 0);
	ring_case(&a, lo, port, id, 0, RING_MAX, NULL);
	T_CHECK_EQ(listen_hint(&a, id, 4, 0, NULL), 0);
	ring_case(&a, lo, port, id, 0, RING_MIN, NULL);
	close(lfd);
	ipcd_detach(&a);
	_exit(0);
}

static void test_ring_hint(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_ring *sh = t_shm_alloc(sizeof(*sh));
	pid_t pid;

	t_mon_write_config(m, CONF_RING);
	t_mon_start(m);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		ring_child(m, sh);
	if (!t_wait_at_least(&sh->open, 1, T_WAIT_MS))
		fail_msg("the child did not open its connection");
	assert_int_equal(t_ctl(m, &tout, true, "connections"), 0);
	check_json("connections");
	assert_int_equal(t_count_str(tout.out, "\"id\":"), 1);
	assert_non_null(strstr(tout.out, "\"ring_bytes\":131072"));
	assert_int_equal(t_ctl(m, &tout, false, "connections"), 0);
	assert_non_null(strstr(tout.out, " 131072 "));
	assert_non_null(strstr(tout.out, "accelerated"));
	ipcd_store_release(&sh->checked, 1);
	child_ok(pid);
	expect_no_connections(m);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 11. FALLBACK reports: counted, listed, bounded ----------------------- */

#define N_FB_MANY	300	/* more than the monitor keeps (256) */

static int fallback(struct ipcd_attach *a, const uint8_t addr[16], uint16_t port,
		    uint16_t reason, uint32_t pad)
{
	struct ipcd_fallback_req r = { .port = port, .reason = reason, .pad = pad };

	memcpy(r.addr, addr, 16);
	return call(a, IPCD_OP_FALLBACK, &r, sizeof(r), NULL, 0);
}

struct sh_fb {
	uint32_t step;		/* 1: first reports sent; 2: the many sent */
	uint32_t go;
	int32_t pid;
};

static void __attribute__((noreturn)) fb_child(const struct t_mon *m, struct sh_fb *sh)
{
	struct ipcd_attach a;
	struct ipcd_fallback_req r = { .reason = IPCD_FB_LIMIT };
	uint8_t lo[16], lo6[16], buf[32] = { 0 };
	uint16_t reason;
	unsigned int i;

	attach_or_die(m, "it-fallback", &a);
	v4(lo, 127, 0, 0, 1);
	v6_loop(lo6);
	for (reason = 1; reason <= IPCD_FB_MAX; reason++)
		T_CHECK_EQ(fallback(&a, reason & 1 ? lo : lo6, (uint16_t)(8000 + reason), reason,
				    0), 0);
	/* Malformed: -EINVAL, and the process stays registered. */
	T_CHECK_EQ(fallback(&a, lo, 1, 0, 0), -EINVAL);
	T_CHECK_EQ(fallback(&a, lo, 1, IPCD_FB_MAX + 1, 0), -EINVAL);
	T_CHECK_EQ(fallback(&a, lo, 1, UINT16_MAX, 0), -EINVAL);
	T_CHECK_EQ(fallback(&a, lo, 1, IPCD_FB_LIMIT, 1), -EINVAL);
	memcpy(buf, &r, sizeof(r));
	T_CHECK_EQ(call(&a, IPCD_OP_FALLBACK, buf, sizeof(r) - 4, NULL, 0), -EINVAL);
	T_CHECK_EQ(call(&a, IPCD_OP_FALLBACK, buf, sizeof(r) + 8, NULL, 0), -EINVAL);
	T_CHECK_EQ(call(&a, IPCD_OP_FALLBACK, NULL, 0, NULL, 0), -EINVAL);
	T_CHECK_EQ(call(&a, IPCD_OP_NOP, NULL, 0, NULL, 0), 0);
	sh->pid = (int32_t)getpid();
	ipcd_store_release(&sh->step, 1);
	WAIT_FLAG(&sh->go, 1);
	for (i = 0; i < N_FB_MANY; i++)
		T_CHECK_EQ(fallback(&a, lo, (uint16_t)(10000 + i), IPCD_FB_NO_LISTENER, 0), 0);
	ipcd_store_release(&sh->step, 2);
	WAIT_FLAG(&sh->go, 2);
	ipcd_detach(&a);
	_exit(0);
}

static void test_fallback(void **state)
{
	static const char *const names[] = {
		"no accelerated listener", "backlog full", "limit", "monitor error",
		"peer not preloaded", "fd beyond table",
	};
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_fb *sh = t_shm_alloc(sizeof(*sh));
	char want[160];
	unsigned int i;
	pid_t pid;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		fb_child(m, sh);
	if (!t_wait_at_least(&sh->step, 1, T_WAIT_MS))
		fail_msg("the child did not send its reports");

	assert_int_equal(t_ctl(m, &tout, true, "connections"), 0);
	check_json("connections");
	assert_int_equal(t_count_str(tout.out, "\"accelerated\":false"), IPCD_FB_MAX);
	assert_int_equal(t_count_str(tout.out, "\"accelerated\":true"), 0);
	for (i = 0; i < IPCD_ARRAY_SIZE(names); i++) {
		snprintf(want, sizeof(want), "\"reason\":\"%s\",\"reason_code\":%u", names[i],
			 i + 1);
		assert_non_null(strstr(tout.out, want));
	}
	snprintf(want, sizeof(want), "\"pid\":%d", sh->pid);
	assert_int_equal(t_count_str(tout.out, want), IPCD_FB_MAX);
	assert_non_null(strstr(tout.out, "\"comm\":\"it-fallback\""));
	assert_non_null(strstr(tout.out, "\"peer\":\"127.0.0.1:8001\""));
	assert_non_null(strstr(tout.out, "\"peer\":\"[::1]:8002\""));
	assert_int_equal(t_ctl(m, &tout, false, "connections"), 0);
	assert_int_equal(t_count_str(tout.out, " fallback "), IPCD_FB_MAX);
	for (i = 0; i < IPCD_ARRAY_SIZE(names); i++)
		assert_non_null(strstr(tout.out, names[i]));

	assert_int_equal(t_ctl(m, &tout, true, "counters"), 0);
	check_json("counters");
	assert_non_null(strstr(tout.out, "\"fallbacks\":{\"total\":6,\"by_reason\":{"
				 "\"no_listener\":1,\"backlog_full\":1,\"limit\":1,"
				 "\"monitor_error\":1,\"peer_not_preloaded\":1,"
				 "\"fd_beyond_table\":1},\"invalid\":7}"));
	assert_int_equal(t_ctl_num(m, "counters", "fallback"), IPCD_FB_MAX + 7);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	assert_int_equal(t_ctl(m, &tout, false, "counters"), 0);
	assert_non_null(strstr(tout.out, "fallbacks       6"));
	assert_non_null(strstr(tout.out, "fd beyond table"));

	/* Only the latest 256 are kept; every one is counted. */
	ipcd_store_release(&sh->go, 1);
	if (!t_wait_at_least(&sh->step, 2, T_WAIT_MS))
		fail_msg("the child did not send its many reports");
	assert_int_equal(t_ctl(m, &tout, true, "connections"), 0);
	check_json("connections");
	assert_int_equal(t_count_str(tout.out, "\"accelerated\":false"), 256);
	assert_null(strstr(tout.out, "\"reason\":\"fd beyond table\""));	/* the oldest went */
	assert_null(strstr(tout.out, "\"peer\":\"127.0.0.1:10043\""));
	assert_non_null(strstr(tout.out, "\"peer\":\"127.0.0.1:10044\""));
	assert_non_null(strstr(tout.out, "\"peer\":\"127.0.0.1:10299\""));
	assert_int_equal(t_ctl_num(m, "counters", "total"), IPCD_FB_MAX + N_FB_MANY);
	assert_int_equal(t_ctl_num(m, "counters", "no_listener"), 1 + N_FB_MANY);

	/* The reports outlive the process (they are history), the connections list stays valid. */
	ipcd_store_release(&sh->go, 2);
	child_ok(pid);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	assert_int_equal(t_ctl(m, &tout, true, "connections"), 0);
	check_json("connections");
	assert_int_equal(t_count_str(tout.out, "\"accelerated\":false"), 256);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- CLOSE of an explicit end (the last holder after fork) ---------------- */

static int close_end(struct ipcd_attach *a, uint64_t id, uint32_t end, uint32_t pad)
{
	struct ipcd_close_req r = { .conn_id = id, .end = end, .pad = pad };

	return call(a, IPCD_OP_CLOSE, &r, sizeof(r), NULL, 0);
}

static void __attribute__((noreturn)) end_child(const struct t_mon *m)
{
	struct ipcd_attach a, other;
	struct ipcd_conn_resp resp;
	struct ipcd_conn c, acc, q;
	uint8_t lo[16];
	uint32_t id;
	uint16_t port;
	int lfd;

	attach_or_die(m, "it-end", &a);
	attach_or_die(m, "it-end-2", &other);	/* another process of the same user */
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 4, &id, &port, &lfd), 0);
	T_CHECK_EQ(do_connect(&a, lo, port, &c, &resp), 0);
	T_CHECK_EQ(do_accept(&a, id, &acc, &resp), 0);
	T_CHECK_EQ(close_end(&other, c.conn_id, 3, 0), -EINVAL);
	T_CHECK_EQ(close_end(&other, c.conn_id, IPCD_CLOSE_A, 1), -EINVAL);
	/* Not its end by the monitor's records, but its user's: accepted once. */
	T_CHECK_EQ(close_end(&other, c.conn_id, IPCD_CLOSE_A, 0), 0);
	T_CHECK_EQ(close_end(&other, c.conn_id, IPCD_CLOSE_A, 0), -ENOENT);
	T_CHECK_EQ(close_end(&a, c.conn_id, IPCD_CLOSE_MINE, 0), 0);	/* B, as A is closed */
	ipcd_conn_close(&c);
	ipcd_conn_close(&acc);
	/* Accepting needs the listener or its token (what a forked worker inherits). */
	{
		struct ipcd_accept_req ar = { .id = id, .token = last_token ^ 1 };
		struct ipcd_conn w;

		T_CHECK_EQ(do_connect(&a, lo, port, &q, &resp), 0);
		T_CHECK_EQ(call(&other, IPCD_OP_ACCEPT, &ar, sizeof(ar), NULL, 0), -EPERM);
		ar.token = 0;
		T_CHECK_EQ(call(&other, IPCD_OP_ACCEPT, &ar, sizeof(ar), NULL, 0), -EPERM);
		ar.token = last_token;
		T_CHECK_EQ(call(&other, IPCD_OP_ACCEPT, &ar, sizeof(ar), &resp, sizeof(resp)), 0);
		take_conn_fd(&other, resp.conn_id, true, &w);
		do_close(&other, &w);
		do_close(&a, &q);
	}
	/* A queued connection has no B end to close yet. */
	T_CHECK_EQ(do_connect(&a, lo, port, &q, &resp), 0);
	T_CHECK_EQ(close_end(&other, q.conn_id, IPCD_CLOSE_B, 0), -EPERM);
	do_close(&a, &q);
	ipcd_detach(&other);
	ipcd_detach(&a);
	close(lfd);
	_exit(0);
}

static void test_close_end(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	pid_t pid;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		end_child(m);
	child_ok(pid);
	assert_int_equal(t_ctl_num(m, "counters", "created"), 3);
	/* Both ends of two are closed: freed. The last goes with its listener. */
	assert_int_equal(t_ctl_wait_num(m, "counters", "freed", 3), 3);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- a connector that dies while queued: still accepted, data then EOF ---- */

static void test_dead_while_queued(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct ipcd_attach a;
	struct ipcd_conn_resp resp;
	struct ipcd_conn acc;
	uint8_t lo[16];
	char buf[16];
	uint32_t id;
	uint16_t port;
	int lfd;
	pid_t pid;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	attach_or_die(m, "it-dq-listen", &a);
	v4(lo, 127, 0, 0, 1);
	assert_int_equal(bind_listen(&a, lo, 0, 0, 4, &id, &port, &lfd), 0);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0) {
		struct ipcd_attach b;
		struct ipcd_conn c;

		attach_or_die(m, "it-dq-conn", &b);
		T_CHECK_EQ(do_connect(&b, lo, port, &c, &resp), 0);
		T_CHECK_EQ(ipcd_spsc_write(&c.tx, "hello", 5), 5);
		_exit(0);	/* no CLOSE, rings not marked: the monitor does it */
	}
	child_ok(pid);
	wait_listen_ready(lfd);
	assert_int_equal(t_ctl_wait_num(m, "counters", "dead_ends", 1), 1);
	assert_int_equal(do_accept(&a, id, &acc, &resp), 0);
	assert_int_equal(ipcd_spsc_read(&acc.rx, buf, sizeof(buf), 0), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(ipcd_spsc_read(&acc.rx, buf, sizeof(buf), 0), 0);	/* EOF */
	assert_int_equal(ipcd_load_acquire(&acc.ctl->reset), 0);
	do_close(&a, &acc);
	assert_int_equal(t_ctl_wait_num(m, "counters", "freed", 1), 1);
	ipcd_detach(&a);
	close(lfd);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- lanes (proto.h "Lanes"): the monitor's side -------------------------- */

/*
 * A lane joins one connecting process to one listening bind; kits are the
 * connections the monitor makes ahead of need on it. The "processes" here
 * are separate attachments (client ids) of one child, so every step is
 * ordered and every level exact. A death is a detach (EOF on the control
 * socket: what the monitor sees of a process that dies), after which the
 * test drops that attachment's descriptors and mappings as the kernel would.
 */

#define CONF_LANES	CONF "ring_bytes = 4096\nring_max_bytes = 1048576\n"
#define LANE_HINT	65536u	/* the lane-making CONNECT's ring hint: its kits get as much */

/* A kit as its connector holds it: the A end, and the fds to hand down the lane. */
struct kit {
	struct ipcd_conn a;
	int fds[IPCD_CTL_CONN_NFDS];	/* dups, in the order A got them: region, A's, B's */
	uint64_t id;
	uint64_t size;
	uint32_t seq;
};

/* A child and the parent take turns: the parent reads ipcdctl in between. */
struct sh_lane {
	uint32_t step;
	uint32_t go;
};

static void child_step(struct sh_lane *sh, uint32_t n)
{
	ipcd_store_release(&sh->step, n);
	WAIT_FLAG(&sh->go, n);
}

/* Bounded past the child's own hang guards: a stuck child says where first. */
static void parent_step(struct sh_lane *sh, uint32_t n, pid_t pid)
{
	uint64_t deadline = ipcd_deadline(2 * WAIT_NS);

	while (ipcd_load_acquire(&sh->step) < n) {
		int code = t_try_wait(pid);

		if (code != T_STILL_RUNNING)
			fail_msg("the child exited (%d) before step %u", code, n);
		if (ipcd_remaining(deadline) == 0)
			fail_msg("the child did not reach step %u", n);
		t_sleep_ms(2);
	}
}

/* A field of the "lanes" object of ipcdctl --json counters. */
static long long lane_num(const struct t_mon *m, const char *key)
{
	const char *p;
	long long v;

	if (t_ctl(m, &tout, true, "counters") != 0)
		fail_msg("ipcdctl --json counters: exit %d: %s", tout.code, tout.err);
	p = strstr(tout.out, "\"lanes\":{");
	if (!p || !t_json_num(p, key, &v))
		fail_msg("ipcdctl --json counters: no lanes.%s in: %s", key, tout.out);
	return v;
}

/* Connections ipcdctl lists in state @state. */
static unsigned int conns_in_state(const struct t_mon *m, const char *state)
{
	char want[64];

	assert_int_equal(t_ctl(m, &tout, true, "connections"), 0);
	snprintf(want, sizeof(want), "\"state\":\"%s\"", state);
	return t_count_str(tout.out, want);
}

/* Nothing is waiting on @a's control socket. */
static void no_msg(struct ipcd_attach *a)
{
	int fds[IPCD_CTL_CONN_NFDS];
	struct ipcd_ctl_msg m;

	T_CHECK_EQ(ipcd_attach_recv_msg(a, &m, fds, 0), -ETIMEDOUT);
}

/*
 * The LANE_FD message (queued before the CONN_FD that follows it): an
 * AF_UNIX SOCK_SEQPACKET socket, this end of lane *@lane_id to @bind_id.
 */
static int take_lane_fd(struct ipcd_attach *a, uint32_t bind_id, uint32_t *lane_id)
{
	int fds[IPCD_CTL_CONN_NFDS], v = -1;
	socklen_t len = sizeof(v);
	struct ipcd_ctl_msg m;

	T_CHECK_EQ(ipcd_attach_recv_msg(a, &m, fds, 0), 0);
	T_CHECK_EQ(m.type, IPCD_CTL_LANE_FD);
	T_CHECK_EQ(m.bind_id, bind_id);
	T_CHECK(m.conn_id != 0 && m.conn_id <= UINT32_MAX);
	T_CHECK(fds[0] >= 0);
	T_CHECK_EQ(fds[1], -1);
	T_CHECK_EQ(fds[2], -1);
	T_CHECK_EQ(getsockopt(fds[0], SOL_SOCKET, SO_DOMAIN, &v, &len), 0);
	T_CHECK_EQ(v, AF_UNIX);
	len = sizeof(v);
	T_CHECK_EQ(getsockopt(fds[0], SOL_SOCKET, SO_TYPE, &v, &len), 0);
	T_CHECK_EQ(v, SOCK_SEQPACKET);
	*lane_id = (uint32_t)m.conn_id;
	return fds[0];
}

/*
 * A CONNECT that must make a lane: its LANE_FD (*@lane_fd, *@lane_id) comes
 * first, then the CONN_FD. (do_connect() checks that none comes: its first
 * message must be the CONN_FD.)
 */
static int connect_lane(struct ipcd_attach *a, const uint8_t addr[16], uint16_t port,
			uint32_t bind_id, uint32_t hint, struct ipcd_conn *conn,
			struct ipcd_conn_resp *resp, int *lane_fd, uint32_t *lane_id)
{
	struct ipcd_connect_req r = { .port = port, .ring_bytes = hint };
	int rc;

	memcpy(r.addr, addr, 16);
	rc = call(a, IPCD_OP_CONNECT, &r, sizeof(r), resp, sizeof(*resp));
	if (rc == 0) {
		*lane_fd = take_lane_fd(a, bind_id, lane_id);
		take_conn_fd(a, resp->conn_id, false, conn);
		T_CHECK_EQ(conn->ctl->a_port, resp->self_port);
		T_CHECK_EQ(conn->ctl->b_port, resp->peer_port);
	}
	no_msg(a);
	return rc;
}

/*
 * ACCEPT with @token (0: the owner). @lane_fd non-NULL: a LANE_FD must come
 * before the CONN_FD; NULL: the CONN_FD must come first.
 */
static int accept_lane(struct ipcd_attach *a, uint32_t id, uint64_t token, struct ipcd_conn *conn,
		       struct ipcd_conn_resp *resp, int *lane_fd, uint32_t *lane_id)
{
	struct ipcd_accept_req r = { .id = id, .token = token };
	int rc = call(a, IPCD_OP_ACCEPT, &r, sizeof(r), resp, sizeof(*resp));

	if (rc == 0) {
		if (lane_fd)
			*lane_fd = take_lane_fd(a, id, lane_id);
		take_conn_fd(a, resp->conn_id, true, conn);
		T_CHECK_EQ(conn->ctl->b_port, resp->self_port);
		T_CHECK_EQ(conn->ctl->a_port, resp->peer_port);
	}
	no_msg(a);
	return rc;
}

static int kits_req(struct ipcd_attach *a, uint32_t lane, uint32_t count,
		    struct ipcd_kits_resp *out)
{
	struct ipcd_kits_req r = { .lane_id = lane, .count = count };
	struct ipcd_kits_resp dummy;
	int rc = call(a, IPCD_OP_KITS, &r, sizeof(r), out ? out : &dummy, sizeof(dummy));

	if (rc)
		no_msg(a);	/* a refused KITS sends nothing */
	return rc;
}

static int close_unsent(struct ipcd_attach *a, uint64_t conn_id)
{
	struct ipcd_close_req r = { .conn_id = conn_id, .end = IPCD_CLOSE_UNSENT };

	return call(a, IPCD_OP_CLOSE, &r, sizeof(r), NULL, 0);
}

static int kit_accepted(struct ipcd_attach *a, uint64_t conn_id)
{
	struct ipcd_kit_accepted_req r = { .conn_id = conn_id };

	return call(a, IPCD_OP_KIT_ACCEPTED, &r, sizeof(r), NULL, 0);
}

static int lane_done(struct ipcd_attach *a, uint32_t lane, uint32_t received, uint32_t accepted,
		     uint32_t pad)
{
	struct ipcd_lane_done_req r = {
		.lane_id = lane, .received = received, .accepted = accepted, .pad = pad,
	};

	return call(a, IPCD_OP_LANE_DONE, &r, sizeof(r), NULL, 0);
}

/*
 * KITS @count on @lane: numbered from *@next_seq on, their CONN_FDs queued
 * before the response, each a connection from @src (the lane's source
 * address) to @src:@b_port with its own ephemeral port and rings of @ring
 * bytes. Opens each A end in @k[].
 */
static void take_kits(struct ipcd_attach *a, uint32_t lane, uint32_t count, const uint8_t src[16],
		      uint16_t b_port, uint32_t ring, uint32_t *next_seq, struct kit *k)
{
	struct ipcd_kits_resp kr;
	uint32_t i, j;

	T_CHECK_EQ(kits_req(a, lane, count, &kr), 0);
	T_CHECK_EQ(kr.count, count);
	T_CHECK_EQ(kr.first_seq, *next_seq);
	for (i = 0; i < count; i++) {
		int fds[IPCD_CTL_CONN_NFDS];
		struct ipcd_ctl_msg m;
		struct kit *x = &k[i];

		T_CHECK_EQ(ipcd_attach_recv_msg(a, &m, fds, 0), 0);
		T_CHECK_EQ(m.type, IPCD_CTL_CONN_FD);
		T_CHECK(m.conn_id != 0);
		for (j = 0; j < IPCD_CTL_CONN_NFDS; j++) {
			x->fds[j] = -1;
			if (j >= IPCD_CTL_CONN_NFDS_MIN) {
				/* A kit's life sockets are its connector's to make. */
				T_CHECK_EQ(fds[j], -1);
				continue;
			}
			T_CHECK(fds[j] >= 0);
			x->fds[j] = fcntl(fds[j], F_DUPFD_CLOEXEC, 0);
			T_CHECK(x->fds[j] >= 0);
		}
		T_CHECK_EQ(ipcd_conn_open(fds, m.region_size, false, &x->a), 0);
		x->id = m.conn_id;
		x->size = m.region_size;
		x->seq = kr.first_seq + i;
		T_CHECK_EQ(x->a.conn_id, m.conn_id);
		T_CHECK_EQ(x->a.ctl->conn_id, m.conn_id);
		T_CHECK(!memcmp(x->a.ctl->a_addr, src, 16));
		T_CHECK(!memcmp(x->a.ctl->b_addr, src, 16));
		T_CHECK(x->a.ctl->a_port != 0);
		T_CHECK_EQ(x->a.ctl->b_port, b_port);
		T_CHECK_EQ(ipcd_load_acquire(&x->a.ctl->holders_a), 1);
		T_CHECK_EQ(ipcd_load_acquire(&x->a.ctl->holders_b), 1);
		T_CHECK_EQ(ipcd_load_acquire(&x->a.ctl->reset), 0);
		T_CHECK_EQ(x->a.tx.capacity, ring);
		T_CHECK_EQ(x->a.rx.capacity, ring);
		for (j = 0; j < i; j++) {
			T_CHECK(k[j].id != x->id);
			T_CHECK(k[j].a.ctl->a_port != x->a.ctl->a_port);
		}
	}
	no_msg(a);
	*next_seq += count;
}

static void kit_close_fds(struct kit *k)
{
	unsigned int i;

	for (i = 0; i < IPCD_CTL_CONN_NFDS; i++) {
		if (k->fds[i] >= 0)
			close(k->fds[i]);
		k->fds[i] = -1;
	}
}

/* Wait (bounded) until @fd is readable or hung up. */
static void wait_in(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	do
		n = poll(&p, 1, T_WAIT_MS);
	while (n < 0 && errno == EINTR);
	T_CHECK_EQ(n, 1);
}

/* The connector hands kit @k down the lane: struct ipcd_lane_msg + [region, B's, A's]. */
static void lane_send_kit(int lane_fd, const struct kit *k)
{
	struct ipcd_lane_msg lm = {
		.magic = IPCD_LANE_MAGIC, .seq = k->seq, .conn_id = k->id, .region_size = k->size,
	};
	/* As a connector without life sockets sends it (a 3.6 library's form). */
	int fds[IPCD_CTL_CONN_NFDS_MIN] = {
		[IPCD_CTL_CONN_FD_REGION] = k->fds[IPCD_CTL_CONN_FD_REGION],
		[IPCD_CTL_CONN_FD_SELF] = k->fds[IPCD_CTL_CONN_FD_PEER],
		[IPCD_CTL_CONN_FD_PEER] = k->fds[IPCD_CTL_CONN_FD_SELF],
	};
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = &lm, .iov_len = sizeof(lm) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;

	memset(u.buf, 0, sizeof(u.buf));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	T_CHECK_EQ(sendmsg(lane_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT), (ssize_t)sizeof(lm));
}

/* The listener takes the next message of its lane end: kit @k; it opens B in @b. */
static void lane_recv_kit(int lane_fd, const struct kit *k, struct ipcd_conn *b)
{
	int got[IPCD_CTL_MAX_FDS];
	struct ipcd_lane_msg lm;
	unsigned int nfds;

	wait_in(lane_fd);
	T_CHECK_EQ(ipcd_ctl_recv(lane_fd, &lm, sizeof(lm), MSG_DONTWAIT, got, IPCD_CTL_MAX_FDS,
				 &nfds), (ssize_t)sizeof(lm));
	T_CHECK_EQ(nfds, IPCD_CTL_CONN_NFDS_MIN);
	got[IPCD_CTL_CONN_FD_LIVE] = -1;
	T_CHECK_EQ(lm.magic, IPCD_LANE_MAGIC);
	T_CHECK_EQ(lm.seq, k->seq);
	T_CHECK_EQ(lm.conn_id, k->id);
	T_CHECK_EQ(ipcd_conn_open(got, lm.region_size, true, b), 0);
	T_CHECK_EQ(b->ctl->conn_id, k->id);
	T_CHECK_EQ(b->ctl->a_port, k->a.ctl->a_port);
}

/* A message sent on lane end @from arrives at @to: the two ends of one socketpair. */
static void lane_ping(int from, int to, const char *msg)
{
	size_t len = strlen(msg);
	char buf[16];

	T_CHECK_EQ(send(from, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT), (ssize_t)len);
	wait_in(to);
	T_CHECK_EQ(recv(to, buf, sizeof(buf), MSG_DONTWAIT), (ssize_t)len);
	T_CHECK(!memcmp(buf, msg, len));
}

/* Nobody holds the other end of lane end @fd any more: a send fails with EPIPE. */
static void lane_peer_closed(int fd)
{
	T_CHECK_EQ(send(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT), -1);
	T_CHECK_EQ(errno, EPIPE);
}

/* ... and a receive reads EOF (bounded wait). */
static void lane_eof(int fd)
{
	char b;

	wait_in(fd);
	T_CHECK_EQ(recv(fd, &b, 1, MSG_DONTWAIT), 0);
}

/* Write @msg on @from and read exactly it on @to (the same connection's two ends). */
static void pass(struct ipcd_conn *from, struct ipcd_conn *to, const char *msg)
{
	size_t len = strlen(msg);
	char buf[16];

	T_CHECK_EQ(ipcd_spsc_write(&from->tx, msg, len), (ssize_t)len);
	T_CHECK_EQ(ipcd_spsc_read(&to->rx, buf, sizeof(buf), 0), (ssize_t)len);
	T_CHECK(!memcmp(buf, msg, len));
}

/* The monitor closed end B of A's connection @a for it, with a reset (an RST). */
static void reset_by_b(struct ipcd_conn *a)
{
	WAIT_FLAG(&a->rx.shm->prod_closed, 1);	/* after a death: once reaped */
	T_CHECK(ipcd_load_acquire(&a->ctl->reset) & IPCD_CONN_RESET_B);
	T_CHECK_EQ(ipcd_load_acquire(&a->tx.shm->cons_closed), 1);
	T_CHECK_EQ(drain_to_eof(a), 0);
	T_CHECK_EQ(ipcd_spsc_write(&a->tx, "x", 1), -EPIPE);
}

/* The common end of a lane case: nothing left behind, nothing counted as a fault. */
static void lanes_all_gone(struct t_mon *m, int base)
{
	expect_no_connections(m);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	assert_int_equal(t_ctl_wait_num(m, "status", "binds", 0), 0);
	assert_int_equal(lane_num(m, "open"), 0);
	/* Every lane end, region and eventfd went; the pool is full again. */
	assert_int_equal(t_mon_wait_fds(m, base), base);
	assert_int_equal(t_mon_maps_count(m, "ipcd-conn"), maps0);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	assert_int_equal(t_ctl_num(m, "counters", "fd_faults"), 0);
}

static void lane_case_start(struct t_mon *m, int *base)
{
	t_mon_write_config(m, CONF_LANES);
	t_mon_start(m);
	*base = t_mon_fd_baseline(m);
	maps0 = t_mon_maps_count(m, "ipcd-conn");
}

/* ---- 12. lanes: made by CONNECT, delivered by ACCEPT, kits --------------- */

static void __attribute__((noreturn)) lane_setup_child(const struct t_mon *m, struct sh_lane *sh)
{
	struct ipcd_attach l, c, c2;
	struct ipcd_conn_resp resp;
	struct ipcd_conn c1, cc2, c3, b1, b2, kb0, x, y;
	struct kit k[5];
	uint8_t lo[16];
	uint16_t port, port2, ports[7];
	uint32_t id, id2, lane, lane_b, seq = 0, i, j;
	int lfd, lfd2, cl, ll;

	attach_or_die(m, "it-lane-l", &l);
	attach_or_die(m, "it-lane-c", &c);
	attach_or_die(m, "it-lane-c2", &c2);
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen_flags(&l, lo, 0, 0, 8, IPCD_LISTEN_LANES, &id, &port, &lfd), 0);
	T_CHECK_EQ(bind_listen(&l, lo, 0, 0, 8, &id2, &port2, &lfd2), 0);

	/* C's first CONNECT to the bind makes a lane: LANE_FD, then CONN_FD. */
	T_CHECK_EQ(connect_lane(&c, lo, port, id, LANE_HINT, &c1, &resp, &cl, &lane), 0);
	T_CHECK_EQ(c1.tx.capacity, LANE_HINT);
	/* The pair has a lane now: none for the second; none from a listener without the flag. */
	T_CHECK_EQ(do_connect(&c, lo, port, &cc2, &resp), 0);
	no_msg(&c);
	T_CHECK_EQ(do_connect(&c, lo, port2, &c3, &resp), 0);
	no_msg(&c);
	no_msg(&l);

	/* KITS before the listener has its end: -EAGAIN. Malformed, or not C's lane: refused. */
	T_CHECK_EQ(kits_req(&c, lane, 1, NULL), -EAGAIN);
	T_CHECK_EQ(kits_req(&c, lane, 0, NULL), -EINVAL);
	T_CHECK_EQ(kits_req(&c, lane, IPCD_KITS_MAX + 1, NULL), -EINVAL);
	T_CHECK_EQ(kits_req(&l, lane, 1, NULL), -ENOENT);
	T_CHECK_EQ(kits_req(&c2, lane, 1, NULL), -ENOENT);
	T_CHECK_EQ(kits_req(&c, 0, 1, NULL), -ENOENT);
	T_CHECK_EQ(kits_req(&c, lane + 1, 1, NULL), -ENOENT);
	T_CHECK_EQ(kits_req(&c, lane ^ (1u << 10), 1, NULL), -ENOENT);
	T_CHECK_EQ(kits_req(&c, UINT32_MAX, 1, NULL), -ENOENT);
	/* Nor can its listener be done with a lane it does not have yet. */
	T_CHECK_EQ(lane_done(&l, lane, 0, 0, 0), -EPERM);
	T_CHECK_EQ(lane_done(&c, lane, 0, 0, 0), -EPERM);
	no_msg(&l);
	child_step(sh, 1);

	/* The owner's ACCEPT of the lane-making connection: LANE_FD (the other end) first. */
	T_CHECK_EQ(accept_lane(&l, id, 0, &b1, &resp, &ll, &lane_b), 0);
	T_CHECK_EQ(resp.conn_id, c1.conn_id);
	T_CHECK_EQ(lane_b, lane);
	lane_ping(cl, ll, "ping");
	lane_ping(ll, cl, "pong");
	pass(&c1, &b1, "c1");
	pass(&b1, &c1, "b1");
	/* The next ACCEPT brings no lane. */
	T_CHECK_EQ(accept_lane(&l, id, 0, &b2, &resp, NULL, NULL), 0);
	T_CHECK_EQ(resp.conn_id, cc2.conn_id);
	T_CHECK(!fd_readable(lfd, 0));

	/* KITS: numbered from 0 on, across calls; still only C's, 1 .. IPCD_KITS_MAX. */
	T_CHECK_EQ(kits_req(&c, lane, 0, NULL), -EINVAL);
	T_CHECK_EQ(kits_req(&c, lane, IPCD_KITS_MAX + 1, NULL), -EINVAL);
	T_CHECK_EQ(kits_req(&l, lane, 1, NULL), -ENOENT);
	T_CHECK_EQ(kits_req(&c2, lane, 1, NULL), -ENOENT);
	T_CHECK_EQ(kits_req(&c, lane + 1, 1, NULL), -ENOENT);
	take_kits(&c, lane, 3, lo, port, LANE_HINT, &seq, k);
	take_kits(&c, lane, 2, lo, port, LANE_HINT, &seq, k + 3);
	T_CHECK_EQ(seq, 5);
	ports[0] = c1.ctl->a_port;
	ports[1] = cc2.ctl->a_port;
	for (i = 0; i < 5; i++) {
		ports[2 + i] = k[i].a.ctl->a_port;
		T_CHECK(k[i].id != c1.conn_id && k[i].id != cc2.conn_id && k[i].id != c3.conn_id);
	}
	for (i = 0; i < 7; i++)
		for (j = 0; j < i; j++)
			T_CHECK(ports[i] != ports[j]);
	no_msg(&l);
	/* A kit never passes the backlog. */
	T_CHECK(!fd_readable(lfd, 0));
	T_CHECK_EQ(accept_lane(&l, id, 0, &x, &resp, NULL, NULL), -EAGAIN);
	/* A kit is a connection: handed down the lane, the listener opens B. */
	lane_send_kit(cl, &k[0]);
	lane_recv_kit(ll, &k[0], &kb0);
	pass(&k[0].a, &kb0, "hi");
	pass(&kb0, &k[0].a, "ho");
	/* KIT_ACCEPTED: the listener's, once per kit, only for kits. */
	T_CHECK_EQ(kit_accepted(&c, k[0].id), -EPERM);
	T_CHECK_EQ(kit_accepted(&l, k[0].id), 0);
	T_CHECK_EQ(kit_accepted(&l, k[0].id), -EALREADY);
	T_CHECK_EQ(kit_accepted(&l, c1.conn_id), -ENOENT);
	T_CHECK_EQ(kit_accepted(&l, 0), -ENOENT);
	T_CHECK_EQ(kit_accepted(&l, k[4].id + 1), -ENOENT);
	child_step(sh, 2);

	/* A LISTEN without the flag (what a library sends after fork) ends KITS and new lanes. */
	T_CHECK_EQ(listen_req(&l, id, 8, 0, 0, NULL), 0);
	T_CHECK_EQ(kits_req(&c, lane, 1, NULL), -ENOENT);
	T_CHECK_EQ(do_connect(&c2, lo, port, &x, &resp), 0);
	no_msg(&c2);
	T_CHECK_EQ(accept_lane(&l, id, 0, &y, &resp, NULL, NULL), 0);
	T_CHECK_EQ(resp.conn_id, x.conn_id);
	do_close(&c2, &x);
	do_close(&l, &y);

	/* The listener had kit 0 and accepted it: kits 1..4 are reset. */
	T_CHECK_EQ(lane_done(&l, lane, 1, 1, 0), 0);
	for (i = 1; i < 5; i++)
		reset_by_b(&k[i].a);
	T_CHECK_EQ(ipcd_load_acquire(&k[0].a.ctl->reset), 0);
	pass(&k[0].a, &kb0, "still");
	/* The monitor kept no copy of the listener's end: closed, C's end is dead. */
	close(ll);
	lane_peer_closed(cl);
	close(cl);
	do_close(&l, &kb0);
	T_CHECK_EQ(drain_to_eof(&k[0].a), 0);
	for (i = 0; i < 5; i++) {
		do_close(&c, &k[i].a);
		kit_close_fds(&k[i]);
	}
	do_close(&c, &c1);
	do_close(&l, &b1);
	do_close(&c, &cc2);
	do_close(&l, &b2);
	do_close(&c, &c3);	/* still queued: freed with its listener */
	T_CHECK_EQ(unbind_id(&l, id), 0);
	T_CHECK_EQ(unbind_id(&l, id2), 0);
	close(lfd);
	close(lfd2);
	ipcd_detach(&c2);
	ipcd_detach(&c);
	ipcd_detach(&l);
	_exit(0);
}

static void test_lane_setup(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_lane *sh = t_shm_alloc(sizeof(*sh));
	pid_t pid;
	int base;

	lane_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		lane_setup_child(m, sh);
	parent_step(sh, 1, pid);
	assert_int_equal(lane_num(m, "open"), 1);
	assert_int_equal(lane_num(m, "made"), 1);
	assert_int_equal(lane_num(m, "kits"), 0);
	assert_int_equal(conns_in_state(m, "backlog"), 3);
	ipcd_store_release(&sh->go, 1);
	parent_step(sh, 2, pid);
	assert_int_equal(lane_num(m, "kits"), 5);
	assert_int_equal(conns_in_state(m, "lane-kit"), 4);
	assert_int_equal(conns_in_state(m, "established"), 3);	/* kit 0 with c1, cc2 */
	assert_int_equal(conns_in_state(m, "backlog"), 1);
	/* Kits are counted once their listener says it accepted them (KIT_ACCEPTED). */
	assert_int_equal(t_ctl_num(m, "counters", "created"), 4);
	assert_int_equal(t_ctl_num(m, "counters", "accepted"), 3);
	ipcd_store_release(&sh->go, 2);
	child_ok(pid);
	assert_int_equal(lane_num(m, "made"), 1);
	assert_int_equal(lane_num(m, "kits"), 5);
	assert_int_equal(lane_num(m, "kits_unused"), 4);
	assert_int_equal(lane_num(m, "kits_requeued"), 0);
	lanes_all_gone(m, base);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 13. LANE_DONE: accepted kits stay, received ones queue, others reset - */

static void __attribute__((noreturn)) lane_done_child(const struct t_mon *m, struct sh_lane *sh)
{
	struct ipcd_attach l, c;
	struct ipcd_conn_resp resp;
	struct ipcd_conn c0, b0, kb[4], acc[3], q, x;
	struct kit k[5];
	uint8_t lo[16];
	uint16_t port;
	uint32_t id, lane, lane_b, seq = 0, i, n_reset;
	int lfd, cl, ll;
	char msg[8];

	attach_or_die(m, "it-done-l", &l);
	attach_or_die(m, "it-done-c", &c);
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen_flags(&l, lo, 0, 0, 8, IPCD_LISTEN_LANES, &id, &port, &lfd), 0);
	T_CHECK_EQ(connect_lane(&c, lo, port, id, 0, &c0, &resp, &cl, &lane), 0);
	T_CHECK_EQ(accept_lane(&l, id, 0, &b0, &resp, &ll, &lane_b), 0);
	T_CHECK_EQ(lane_b, lane);
	take_kits(&c, lane, 5, lo, port, c0.tx.capacity, &seq, k);
	for (i = 0; i < 5; i++) {
		snprintf(msg, sizeof(msg), "k%u", i);
		T_CHECK_EQ(ipcd_spsc_write(&k[i].a.tx, msg, 2), 2);
	}
	/* The listener receives kits 0..2, in order, and accepts kit 0 only. */
	for (i = 0; i < 3; i++) {
		lane_send_kit(cl, &k[i]);
		lane_recv_kit(ll, &k[i], &kb[i]);
	}
	T_CHECK_EQ(ipcd_spsc_read(&kb[0].rx, msg, sizeof(msg), 0), 2);
	T_CHECK(!memcmp(msg, "k0", 2));
	T_CHECK_EQ(kit_accepted(&l, k[0].id), 0);
	ipcd_conn_release(&kb[1]);	/* received, not accepted: dropped unmarked */
	ipcd_conn_release(&kb[2]);
	/*
	 * C is done with kit 2 (sent) before it is accepted, and closes kit 4
	 * unsent: both its ends at once, so it is gone at once.
	 */
	do_close(&c, &k[2].a);
	T_CHECK_EQ(close_unsent(&c, k[2].id), -ENOENT);	/* A is closed already */
	T_CHECK_EQ(close_unsent(&c, c0.conn_id), -EINVAL);	/* not a kit */
	ipcd_conn_close(&k[4].a);
	T_CHECK_EQ(close_unsent(&c, k[4].id), 0);
	T_CHECK_EQ(close_unsent(&c, k[4].id), -ENOENT);
	T_CHECK_EQ(close_id(&c, k[4].id), -ENOENT);

	/* Not the listener's, or counts that cannot be: refused, and nothing happens. */
	T_CHECK_EQ(lane_done(&c, lane, 3, 1, 0), -EPERM);
	T_CHECK_EQ(lane_done(&l, lane, 6, 1, 0), -EINVAL);	/* 5 kits issued */
	T_CHECK_EQ(lane_done(&l, lane, 1, 2, 0), -EINVAL);	/* accepted > received */
	T_CHECK_EQ(lane_done(&l, lane, 3, 1, 1), -EINVAL);	/* pad */
	T_CHECK_EQ(lane_done(&l, lane + 1, 3, 1, 0), -ENOENT);
	T_CHECK_EQ(lane_done(&l, 0, 0, 0, 0), -ENOENT);
	T_CHECK(!fd_readable(lfd, 0));
	T_CHECK_EQ(ipcd_load_acquire(&k[3].a.ctl->reset), 0);
	T_CHECK_EQ(ipcd_load_acquire(&k[3].a.rx.shm->prod_closed), 0);
	T_CHECK_EQ(ipcd_load_acquire(&k[1].a.rx.shm->prod_closed), 0);
	child_step(sh, 1);

	/* The listener closes its end (C's sees EOF: the monitor kept no copy), then says so. */
	close(ll);
	lane_eof(cl);
	lane_peer_closed(cl);
	close(cl);
	T_CHECK_EQ(lane_done(&l, lane, 3, 1, 0), 0);
	T_CHECK_EQ(lane_done(&l, lane, 3, 1, 0), -ENOENT);
	T_CHECK_EQ(kits_req(&c, lane, 1, NULL), -ENOENT);

	/* Kit 0 (accepted) stays the listener's connection: its CLOSE is an endpoint's. */
	pass(&kb[0], &k[0].a, "b0");
	do_close(&l, &kb[0]);
	T_CHECK_EQ(drain_to_eof(&k[0].a), 0);
	T_CHECK_EQ(ipcd_load_acquire(&k[0].a.ctl->reset), 0);
	do_close(&c, &k[0].a);

	/* Kits 1 and 2 (received, not accepted) wait in the backlog: ACCEPT sends their fds. */
	T_CHECK(fd_readable(lfd, 0));
	for (i = 0; i < 2; i++) {
		T_CHECK_EQ(accept_lane(&l, id, 0, &acc[i], &resp, NULL, NULL), 0);
		T_CHECK(resp.conn_id == k[1].id || resp.conn_id == k[2].id);
		T_CHECK_EQ(ipcd_load_acquire(&acc[i].ctl->reset), 0);
	}
	T_CHECK(acc[0].conn_id != acc[1].conn_id);
	T_CHECK_EQ(kit_accepted(&l, acc[0].conn_id), -ENOENT);	/* an ordinary connection now */
	T_CHECK(!fd_readable(lfd, 0));
	T_CHECK_EQ(accept_lane(&l, id, 0, &x, &resp, NULL, NULL), -EAGAIN);
	for (i = 0; i < 2; i++) {
		bool one = acc[i].conn_id == k[1].id;

		T_CHECK_EQ(ipcd_spsc_read(&acc[i].rx, msg, sizeof(msg), 0), 2);
		T_CHECK(!memcmp(msg, one ? "k1" : "k2", 2));
		if (one) {		/* C still has it */
			pass(&acc[i], &k[1].a, "r1");
			pass(&k[1].a, &acc[i], "s1");
		} else {		/* C closed it while it waited: EOF after the data */
			T_CHECK_EQ(drain_to_eof(&acc[i]), 0);
		}
		do_close(&l, &acc[i]);
	}
	T_CHECK_EQ(drain_to_eof(&k[1].a), 0);
	T_CHECK_EQ(ipcd_load_acquire(&k[1].a.ctl->reset), 0);
	do_close(&c, &k[1].a);

	/* Kit 3 (never received; C still holds it) is reset, its peer woken. */
	T_CHECK(fd_readable(k[3].a.wake_self, 0));
	reset_by_b(&k[3].a);
	/* C gives it back unsent after the lane is done (a race at exit): it goes. */
	ipcd_conn_close(&k[3].a);
	T_CHECK_EQ(close_unsent(&c, k[3].id), 0);
	T_CHECK_EQ(close_id(&c, k[3].id), -ENOENT);
	for (i = 0; i < 5; i++)
		kit_close_fds(&k[i]);
	do_close(&c, &c0);
	do_close(&l, &b0);
	child_step(sh, 2);

	/*
	 * A full backlog: received kits that do not fit are reset. listen(fd, 1)
	 * holds two connections; one ordinary connection waits there already.
	 */
	T_CHECK_EQ(listen_req(&l, id, 1, 0, IPCD_LISTEN_LANES, NULL), 0);
	T_CHECK_EQ(connect_lane(&c, lo, port, id, 0, &c0, &resp, &cl, &lane), 0);
	T_CHECK_EQ(accept_lane(&l, id, 0, &b0, &resp, &ll, &lane_b), 0);
	T_CHECK_EQ(lane_b, lane);
	seq = 0;
	take_kits(&c, lane, 4, lo, port, c0.tx.capacity, &seq, k);
	for (i = 0; i < 4; i++) {
		lane_send_kit(cl, &k[i]);
		lane_recv_kit(ll, &k[i], &kb[i]);
		ipcd_conn_release(&kb[i]);
	}
	T_CHECK_EQ(do_connect(&c, lo, port, &q, &resp), 0);
	close(ll);
	T_CHECK_EQ(lane_done(&l, lane, 4, 0, 0), 0);
	T_CHECK_EQ(accept_lane(&l, id, 0, &acc[0], &resp, NULL, NULL), 0);
	T_CHECK_EQ(resp.conn_id, q.conn_id);	/* it was there first */
	T_CHECK_EQ(accept_lane(&l, id, 0, &acc[1], &resp, NULL, NULL), 0);
	T_CHECK_EQ(accept_lane(&l, id, 0, &acc[2], &resp, NULL, NULL), -EAGAIN);
	for (i = n_reset = 0; i < 4; i++) {
		if (k[i].id == acc[1].conn_id) {
			T_CHECK_EQ(ipcd_load_acquire(&k[i].a.ctl->reset), 0);
			pass(&k[i].a, &acc[1], "ok");
		} else {
			reset_by_b(&k[i].a);
			n_reset++;
		}
	}
	T_CHECK_EQ(n_reset, 3);
	for (i = 0; i < 4; i++) {
		do_close(&c, &k[i].a);
		kit_close_fds(&k[i]);
	}
	do_close(&l, &acc[0]);
	do_close(&l, &acc[1]);
	do_close(&c, &q);
	do_close(&c, &c0);
	do_close(&l, &b0);
	close(cl);

	/*
	 * Numbers skipped: C closes kit 1 unsent and sends 0 and 2; the
	 * listener accepts 0, so it says received 3 (one past 2), accepted 1:
	 * kit 2 goes to the backlog, kit 1 (gone already) is not counted twice.
	 */
	T_CHECK_EQ(listen_req(&l, id, 8, 0, IPCD_LISTEN_LANES, NULL), 0);
	T_CHECK_EQ(connect_lane(&c, lo, port, id, 0, &c0, &resp, &cl, &lane), 0);
	T_CHECK_EQ(accept_lane(&l, id, 0, &b0, &resp, &ll, &lane_b), 0);
	seq = 0;
	take_kits(&c, lane, 3, lo, port, c0.tx.capacity, &seq, k);
	ipcd_conn_close(&k[1].a);
	T_CHECK_EQ(close_unsent(&c, k[1].id), 0);
	lane_send_kit(cl, &k[0]);
	lane_send_kit(cl, &k[2]);
	lane_recv_kit(ll, &k[0], &kb[0]);
	lane_recv_kit(ll, &k[2], &kb[2]);
	T_CHECK_EQ(kit_accepted(&l, k[0].id), 0);
	ipcd_conn_release(&kb[2]);
	close(ll);
	T_CHECK_EQ(lane_done(&l, lane, 3, 1, 0), 0);
	T_CHECK_EQ(accept_lane(&l, id, 0, &acc[0], &resp, NULL, NULL), 0);
	T_CHECK_EQ(resp.conn_id, k[2].id);
	T_CHECK_EQ(accept_lane(&l, id, 0, &acc[1], &resp, NULL, NULL), -EAGAIN);
	pass(&k[2].a, &acc[0], "k2");
	pass(&k[0].a, &kb[0], "k0");
	do_close(&l, &acc[0]);
	do_close(&l, &kb[0]);
	for (i = 0; i < 3; i++) {
		if (i != 1)
			do_close(&c, &k[i].a);
		kit_close_fds(&k[i]);
	}
	do_close(&c, &c0);
	do_close(&l, &b0);
	close(cl);
	close(lfd);
	ipcd_detach(&c);
	ipcd_detach(&l);
	_exit(0);
}

static void test_lane_done(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_lane *sh = t_shm_alloc(sizeof(*sh));
	pid_t pid;
	int base;

	lane_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		lane_done_child(m, sh);
	parent_step(sh, 1, pid);
	assert_int_equal(lane_num(m, "open"), 1);
	assert_int_equal(lane_num(m, "kits"), 5);
	assert_int_equal(lane_num(m, "kits_unused"), 1);	/* 4 */
	assert_int_equal(lane_num(m, "kits_requeued"), 0);
	/* 0 is accepted, 2 half closed, 4 gone: 1 and 3 are kits. */
	assert_int_equal(conns_in_state(m, "lane-kit"), 2);
	assert_int_equal(t_count_str(tout.out, "\"id\":"), 5);
	ipcd_store_release(&sh->go, 1);
	parent_step(sh, 2, pid);
	assert_int_equal(lane_num(m, "open"), 0);
	assert_int_equal(lane_num(m, "kits_unused"), 2);	/* 3 and 4 */
	assert_int_equal(lane_num(m, "kits_requeued"), 2);	/* 1 and 2 */
	assert_int_equal(t_ctl_num(m, "counters", "reset"), 1);	/* 3 */
	expect_no_connections(m);
	ipcd_store_release(&sh->go, 2);
	child_ok(pid);
	assert_int_equal(lane_num(m, "made"), 3);
	assert_int_equal(lane_num(m, "kits"), 12);
	assert_int_equal(lane_num(m, "kits_unused"), 3);
	assert_int_equal(lane_num(m, "kits_requeued"), 4);
	lanes_all_gone(m, base);
	/*
	 * Every connection a listener accepted was created: three lane-making
	 * CONNECTs, an ordinary one, two kits accepted on their lanes
	 * (KIT_ACCEPTED) and the four accepted from the backlog after LANE_DONE.
	 */
	assert_int_equal(t_ctl_num(m, "counters", "accepted"), 10);
	assert_int_equal(t_ctl_num(m, "counters", "created"), 10);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 14. lanes and deaths --------------------------------------------------- */

static void __attribute__((noreturn)) lane_death_child(const struct t_mon *m, struct sh_lane *sh)
{
	struct ipcd_attach l, c;
	struct ipcd_conn_resp resp;
	struct ipcd_conn c0, b0, kb0, q;
	struct kit k[3];
	uint8_t lo[16];
	uint16_t port;
	uint32_t id, lane, lane_b, seq, i;
	int lfd, cl, ll;

	v4(lo, 127, 0, 0, 1);

	/* a) The connector dies once the listener has its end. */
	attach_or_die(m, "it-death-l", &l);
	attach_or_die(m, "it-death-c", &c);
	T_CHECK_EQ(bind_listen_flags(&l, lo, 0, 0, 8, IPCD_LISTEN_LANES, &id, &port, &lfd), 0);
	T_CHECK_EQ(connect_lane(&c, lo, port, id, 0, &c0, &resp, &cl, &lane), 0);
	T_CHECK_EQ(accept_lane(&l, id, 0, &b0, &resp, &ll, &lane_b), 0);
	seq = 0;
	take_kits(&c, lane, 3, lo, port, c0.tx.capacity, &seq, k);
	T_CHECK_EQ(ipcd_spsc_write(&k[0].a.tx, "hi", 2), 2);
	lane_send_kit(cl, &k[0]);
	lane_recv_kit(ll, &k[0], &kb0);
	ipcd_detach(&c);
	/* Every A end is closed for it: B reads what A wrote, then EOF. */
	T_CHECK_EQ(drain_to_eof(&kb0), 2);
	T_CHECK_EQ(ipcd_spsc_write(&kb0.tx, "x", 1), -EPIPE);
	T_CHECK_EQ(ipcd_load_acquire(&kb0.ctl->reset), 0);
	T_CHECK_EQ(drain_to_eof(&b0), 0);
	/* ... the unsent kits' too (the same reaping, which may still be under way). */
	for (i = 1; i < 3; i++) {
		WAIT_FLAG(&k[i].a.tx.shm->prod_closed, 1);
		T_CHECK_EQ(ipcd_load_acquire(&k[i].a.rx.shm->cons_closed), 1);
	}
	/* What the kernel does for the dead: its mappings and its lane end go. */
	for (i = 0; i < 3; i++) {
		ipcd_conn_release(&k[i].a);
		kit_close_fds(&k[i]);
	}
	ipcd_conn_release(&c0);
	close(cl);
	lane_eof(ll);
	child_step(sh, 1);	/* the lane lives until its listener says LANE_DONE */
	T_CHECK_EQ(lane_done(&l, lane, 1, 1, 0), 0);
	close(ll);
	do_close(&l, &kb0);
	do_close(&l, &b0);
	T_CHECK_EQ(unbind_id(&l, id), 0);
	close(lfd);
	ipcd_detach(&l);
	child_step(sh, 2);

	/* b) The listener dies with the lane delivered, kits out and a backlog. */
	attach_or_die(m, "it-death-l", &l);
	attach_or_die(m, "it-death-c", &c);
	T_CHECK_EQ(bind_listen_flags(&l, lo, 0, 0, 8, IPCD_LISTEN_LANES, &id, &port, &lfd), 0);
	T_CHECK_EQ(connect_lane(&c, lo, port, id, 0, &c0, &resp, &cl, &lane), 0);
	T_CHECK_EQ(accept_lane(&l, id, 0, &b0, &resp, &ll, &lane_b), 0);
	seq = 0;
	take_kits(&c, lane, 3, lo, port, c0.tx.capacity, &seq, k);
	lane_send_kit(cl, &k[0]);
	lane_recv_kit(ll, &k[0], &kb0);
	T_CHECK_EQ(ipcd_spsc_write(&k[2].a.tx, "data", 4), 4);	/* B never reads it */
	T_CHECK_EQ(do_connect(&c, lo, port, &q, &resp), 0);	/* waits in the backlog */
	ipcd_detach(&l);
	ipcd_conn_release(&kb0);
	ipcd_conn_release(&b0);
	close(ll);
	close(lfd);
	/* Every kit's B end is closed for it: A reads EOF, its writes fail. */
	for (i = 0; i < 3; i++) {
		T_CHECK_EQ(drain_to_eof(&k[i].a), 0);
		T_CHECK_EQ(ipcd_load_acquire(&k[i].a.rx.shm->prod_closed), 1);
		T_CHECK_EQ(ipcd_spsc_write(&k[i].a.tx, "x", 1), -EPIPE);
	}
	/* Unread data when B went: a reset, as the kernel's RST. */
	T_CHECK(ipcd_load_acquire(&k[2].a.ctl->reset) & IPCD_CONN_RESET_B);
	T_CHECK_EQ(drain_to_eof(&c0), 0);
	reset_by_b(&q);
	/* The lane is gone with its listener. */
	T_CHECK_EQ(kits_req(&c, lane, 1, NULL), -ENOENT);
	T_CHECK_EQ(do_connect(&c, lo, port, &q, &resp), -ECONNREFUSED);
	for (i = 0; i < 3; i++) {
		do_close(&c, &k[i].a);
		kit_close_fds(&k[i]);
	}
	do_close(&c, &c0);
	do_close(&c, &q);
	close(cl);
	ipcd_detach(&c);
	child_step(sh, 3);

	/* c) The listener goes before the owner's ACCEPT: UNBIND, then a death. */
	attach_or_die(m, "it-death-l", &l);
	attach_or_die(m, "it-death-c", &c);
	T_CHECK_EQ(bind_listen_flags(&l, lo, 0, 0, 8, IPCD_LISTEN_LANES, &id, &port, &lfd), 0);
	T_CHECK_EQ(connect_lane(&c, lo, port, id, 0, &c0, &resp, &cl, &lane), 0);
	T_CHECK_EQ(unbind_id(&l, id), 0);
	/* The monitor held the listener's end: it closed it. */
	lane_peer_closed(cl);
	close(cl);
	T_CHECK_EQ(kits_req(&c, lane, 1, NULL), -ENOENT);
	reset_by_b(&c0);
	do_close(&c, &c0);
	close(lfd);
	T_CHECK_EQ(bind_listen_flags(&l, lo, 0, 0, 8, IPCD_LISTEN_LANES, &id, &port, &lfd), 0);
	T_CHECK_EQ(connect_lane(&c, lo, port, id, 0, &c0, &resp, &cl, &lane), 0);
	ipcd_detach(&l);
	close(lfd);
	T_CHECK_EQ(drain_to_eof(&c0), 0);	/* once reaped (bounded wait) */
	reset_by_b(&c0);
	lane_peer_closed(cl);
	close(cl);
	T_CHECK_EQ(kits_req(&c, lane, 1, NULL), -ENOENT);
	do_close(&c, &c0);
	ipcd_detach(&c);
	child_step(sh, 4);

	/* d) The connector dies before the owner's ACCEPT: that ACCEPT brings no lane. */
	attach_or_die(m, "it-death-l", &l);
	attach_or_die(m, "it-death-c", &c);
	T_CHECK_EQ(bind_listen_flags(&l, lo, 0, 0, 8, IPCD_LISTEN_LANES, &id, &port, &lfd), 0);
	T_CHECK_EQ(connect_lane(&c, lo, port, id, 0, &c0, &resp, &cl, &lane), 0);
	T_CHECK_EQ(ipcd_spsc_write(&c0.tx, "bye", 3), 3);
	ipcd_detach(&c);
	WAIT_FLAG(&c0.tx.shm->prod_closed, 1);	/* reaped: the monitor closed A for it */
	ipcd_conn_release(&c0);
	close(cl);
	wait_listen_ready(lfd);
	T_CHECK_EQ(accept_lane(&l, id, 0, &b0, &resp, NULL, NULL), 0);
	T_CHECK_EQ(drain_to_eof(&b0), 3);
	T_CHECK_EQ(ipcd_load_acquire(&b0.ctl->reset), 0);
	do_close(&l, &b0);
	T_CHECK_EQ(lane_done(&l, lane, 0, 0, 0), -ENOENT);
	close(lfd);
	ipcd_detach(&l);
	_exit(0);
}

static void test_lane_death(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_lane *sh = t_shm_alloc(sizeof(*sh));
	pid_t pid;
	int base;

	lane_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		lane_death_child(m, sh);
	parent_step(sh, 1, pid);
	assert_int_equal(lane_num(m, "open"), 1);
	ipcd_store_release(&sh->go, 1);
	parent_step(sh, 2, pid);
	expect_no_connections(m);
	assert_int_equal(lane_num(m, "open"), 0);
	assert_int_equal(lane_num(m, "kits_unused"), 2);
	ipcd_store_release(&sh->go, 2);
	parent_step(sh, 3, pid);
	expect_no_connections(m);
	assert_int_equal(lane_num(m, "open"), 0);
	ipcd_store_release(&sh->go, 3);
	parent_step(sh, 4, pid);
	expect_no_connections(m);
	assert_int_equal(lane_num(m, "open"), 0);
	ipcd_store_release(&sh->go, 4);
	child_ok(pid);
	assert_int_equal(lane_num(m, "made"), 5);
	assert_int_equal(lane_num(m, "kits"), 6);
	lanes_all_gone(m, base);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 15. a forked worker accepts the lane-making connection ----------------- */

static void __attribute__((noreturn)) lane_fork_child(const struct t_mon *m, struct sh_lane *sh)
{
	struct ipcd_attach l, w, c;
	struct ipcd_conn_resp resp;
	struct ipcd_conn c0, b0, c1, b1;
	uint8_t lo[16];
	uint16_t port;
	uint32_t id, lane;
	uint64_t token;
	int lfd, cl;

	attach_or_die(m, "it-fork-l", &l);
	attach_or_die(m, "it-fork-w", &w);	/* inherited the socket: knows the token */
	attach_or_die(m, "it-fork-c", &c);
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen_flags(&l, lo, 0, 0, 8, IPCD_LISTEN_LANES, &id, &port, &lfd), 0);
	token = last_token;
	T_CHECK_EQ(connect_lane(&c, lo, port, id, 0, &c0, &resp, &cl, &lane), 0);
	/* The worker's ACCEPT: its CONN_FD comes first, no lane for it (nor for the owner). */
	T_CHECK_EQ(accept_lane(&w, id, token, &b0, &resp, NULL, NULL), 0);
	T_CHECK_EQ(resp.conn_id, c0.conn_id);
	no_msg(&l);
	pass(&c0, &b0, "w0");
	/* The lane ended: the monitor closed the listener's end, C's reports EPIPE. */
	lane_peer_closed(cl);
	close(cl);
	T_CHECK_EQ(kits_req(&c, lane, 1, NULL), -ENOENT);
	T_CHECK_EQ(lane_done(&l, lane, 0, 0, 0), -ENOENT);
	child_step(sh, 1);
	/* After fork the owner LISTENs without the flag: no lane is offered again. */
	T_CHECK_EQ(listen_req(&l, id, 8, 0, 0, NULL), 0);
	T_CHECK_EQ(do_connect(&c, lo, port, &c1, &resp), 0);
	no_msg(&c);
	T_CHECK_EQ(accept_lane(&w, id, token, &b1, &resp, NULL, NULL), 0);
	pass(&b1, &c1, "w1");
	do_close(&c, &c0);
	do_close(&w, &b0);
	do_close(&c, &c1);
	do_close(&w, &b1);
	close(lfd);
	ipcd_detach(&c);
	ipcd_detach(&w);
	ipcd_detach(&l);
	_exit(0);
}

static void test_lane_forked_accepter(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_lane *sh = t_shm_alloc(sizeof(*sh));
	pid_t pid;
	int base;

	lane_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		lane_fork_child(m, sh);
	parent_step(sh, 1, pid);
	assert_int_equal(lane_num(m, "open"), 0);
	assert_int_equal(lane_num(m, "made"), 1);
	ipcd_store_release(&sh->go, 1);
	child_ok(pid);
	assert_int_equal(lane_num(m, "made"), 1);
	assert_int_equal(lane_num(m, "kits"), 0);
	lanes_all_gone(m, base);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 16. KITS, LANE_DONE and KIT_ACCEPTED bodies of the wrong size ---------- */

static const struct {
	uint16_t op;
	uint16_t len;
	size_t want;
} bad_bodies[] = {
	{ IPCD_OP_KITS, 0, sizeof(struct ipcd_kits_req) },
	{ IPCD_OP_KITS, 12, sizeof(struct ipcd_kits_req) },
	{ IPCD_OP_LANE_DONE, 8, sizeof(struct ipcd_lane_done_req) },
	{ IPCD_OP_LANE_DONE, 20, sizeof(struct ipcd_lane_done_req) },
	{ IPCD_OP_KIT_ACCEPTED, 4, sizeof(struct ipcd_kit_accepted_req) },
	{ IPCD_OP_KIT_ACCEPTED, 16, sizeof(struct ipcd_kit_accepted_req) },
};

static void __attribute__((noreturn)) bad_body_child(const struct t_mon *m, unsigned int i)
{
	struct ipcd_attach a;
	struct ipcd_req req;

	attach_or_die(m, "it-lane-body", &a);
	T_CHECK_EQ(t_echo_check(&a, 5, 0, 8), 0);
	memset(&req, 0, sizeof(req));
	req.opcode = bad_bodies[i].op;
	req.len = bad_bodies[i].len;
	req.cookie = ++a.cl.next_cookie;
	T_CHECK_EQ(ipcd_reqq_submit(&a.cl, &req), 0);
	T_CHECK_EQ(t_wait_eof(a.sock, T_WAIT_MS), 0);	/* cut off ... */
	T_CHECK(t_resp_ring_empty(&a));			/* ... without an answer */
	_exit(0);
}

static void test_lane_bad_body(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	char line[160];
	unsigned int i;
	int base;

	lane_case_start(m, &base);
	for (i = 0; i < IPCD_ARRAY_SIZE(bad_bodies); i++) {
		pid_t pid = t_fork(T_CHILD_ALARM);

		if (pid == 0)
			bad_body_child(m, i);
		child_ok(pid);
		snprintf(line, sizeof(line),
			 "process %d (it-lane-body): opcode %u with a %u-byte body, expected %zu",
			 (int)pid, bad_bodies[i].op, bad_bodies[i].len, bad_bodies[i].want);
		assert_true(t_mon_log_contains(m, line));
	}
	assert_int_equal(t_ctl_num(m, "counters", "faults"), IPCD_ARRAY_SIZE(bad_bodies));
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	assert_int_equal(t_mon_wait_fds(m, base), base);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- 17. kits back in the backlog keep their order -------------------------- */

/*
 * The listener received kits 0..2 in order (the connector's connect()s
 * returned in that order) and accepted none: back in the backlog they must
 * be accepted in that order, as the kernel's accept queue would give them.
 * Connections opened and closed first leave the monitor's table with free
 * entries in no particular order, which the kits then take.
 */
static void __attribute__((noreturn)) lane_order_child(const struct t_mon *m)
{
	struct ipcd_attach l, c;
	struct ipcd_conn_resp resp;
	struct ipcd_conn c0, b0, x[3], y[3], kb, acc;
	struct kit k[3];
	uint8_t lo[16];
	uint16_t port;
	uint32_t id, lane, lane_b, seq = 0, i;
	int lfd, cl, ll;

	attach_or_die(m, "it-order-l", &l);
	attach_or_die(m, "it-order-c", &c);
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen_flags(&l, lo, 0, 0, 8, IPCD_LISTEN_LANES, &id, &port, &lfd), 0);
	T_CHECK_EQ(connect_lane(&c, lo, port, id, 0, &c0, &resp, &cl, &lane), 0);
	T_CHECK_EQ(accept_lane(&l, id, 0, &b0, &resp, &ll, &lane_b), 0);
	for (i = 0; i < 3; i++) {
		T_CHECK_EQ(do_connect(&c, lo, port, &x[i], &resp), 0);
		T_CHECK_EQ(accept_lane(&l, id, 0, &y[i], &resp, NULL, NULL), 0);
	}
	for (i = 0; i < 3; i++) {
		do_close(&c, &x[i]);
		do_close(&l, &y[i]);
	}
	take_kits(&c, lane, 3, lo, port, c0.tx.capacity, &seq, k);
	for (i = 0; i < 3; i++) {
		lane_send_kit(cl, &k[i]);
		lane_recv_kit(ll, &k[i], &kb);
		ipcd_conn_release(&kb);
	}
	close(ll);
	T_CHECK_EQ(lane_done(&l, lane, 3, 0, 0), 0);
	for (i = 0; i < 3; i++) {
		T_CHECK_EQ(accept_lane(&l, id, 0, &acc, &resp, NULL, NULL), 0);
		if (resp.conn_id != k[i].id)
			fprintf(stderr, "[it-order] accept %u got kit %u (seq order: kit %u)\n", i,
				resp.conn_id == k[0].id ? 0 : resp.conn_id == k[1].id ? 1 : 2, i);
		T_CHECK_EQ(resp.conn_id, k[i].id);
		do_close(&l, &acc);
	}
	for (i = 0; i < 3; i++) {
		do_close(&c, &k[i].a);
		kit_close_fds(&k[i]);
	}
	do_close(&c, &c0);
	do_close(&l, &b0);
	close(cl);
	close(lfd);
	ipcd_detach(&c);
	ipcd_detach(&l);
	_exit(0);
}

static void test_lane_requeue_order(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	pid_t pid;
	int base;

	lane_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		lane_order_child(m);
	child_ok(pid);
	assert_int_equal(lane_num(m, "kits_requeued"), 3);
	lanes_all_gone(m, base);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- 18. KITS when the monitor is out of room ------------------------------- */

/* Connections and binds (ephemeral ports included) share max_connections. */
#define CONF_TIGHT	"max_connections = 6\nring_bytes = 4096\nring_max_bytes = 1048576\n"

static void __attribute__((noreturn)) lane_room_child(const struct t_mon *m)
{
	struct ipcd_attach l, c;
	struct ipcd_conn_resp resp;
	struct ipcd_kits_resp kr;
	struct ipcd_conn c0, b0;
	struct kit k[IPCD_KITS_MAX + 1];
	uint8_t lo[16];
	uint16_t port;
	uint32_t id, lane, lane_b, seq, n, i, ring;
	int lfd, cl, ll;

	attach_or_die(m, "it-room-l", &l);
	attach_or_die(m, "it-room-c", &c);
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen_flags(&l, lo, 0, 0, 8, IPCD_LISTEN_LANES, &id, &port, &lfd), 0);
	T_CHECK_EQ(connect_lane(&c, lo, port, id, 0, &c0, &resp, &cl, &lane), 0);
	T_CHECK_EQ(accept_lane(&l, id, 0, &b0, &resp, &ll, &lane_b), 0);
	ring = c0.tx.capacity;
	/* As many as fit: the response counts exactly the CONN_FDs sent. */
	T_CHECK_EQ(kits_req(&c, lane, IPCD_KITS_MAX, &kr), 0);
	n = kr.count;
	T_CHECK(n >= 1 && n < IPCD_KITS_MAX);
	T_CHECK_EQ(kr.first_seq, 0);
	for (i = 0; i < n; i++) {
		int fds[IPCD_CTL_CONN_NFDS];
		struct ipcd_ctl_msg msg;
		unsigned int j;

		T_CHECK_EQ(ipcd_attach_recv_msg(&c, &msg, fds, 0), 0);
		T_CHECK_EQ(msg.type, IPCD_CTL_CONN_FD);
		for (j = 0; j < IPCD_CTL_CONN_NFDS; j++)
			k[i].fds[j] = -1;
		T_CHECK_EQ(ipcd_conn_open(fds, msg.region_size, false, &k[i].a), 0);
	}
	no_msg(&c);
	/* None at all: -ENOBUFS, nothing sent, nothing numbered. */
	T_CHECK_EQ(kits_req(&c, lane, 1, NULL), -ENOBUFS);
	/*
	 * Room again once a connection is freed (a kit's A end closed is not
	 * enough: its B end is the listener's until LANE_DONE); the numbering
	 * goes on where it was.
	 */
	do_close(&c, &c0);
	do_close(&l, &b0);
	seq = n;
	take_kits(&c, lane, 1, lo, port, ring, &seq, &k[n]);
	close(ll);
	T_CHECK_EQ(lane_done(&l, lane, 0, 0, 0), 0);
	for (i = 0; i <= n; i++) {
		reset_by_b(&k[i].a);
		do_close(&c, &k[i].a);
		kit_close_fds(&k[i]);
	}
	close(cl);
	close(lfd);
	ipcd_detach(&c);
	ipcd_detach(&l);
	_exit(0);
}

static void test_lane_kits_no_room(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	pid_t pid;
	int base;

	t_mon_write_config(m, CONF_TIGHT);
	t_mon_start(m);
	base = t_mon_fd_baseline(m);
	maps0 = t_mon_maps_count(m, "ipcd-conn");
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		lane_room_child(m);
	child_ok(pid);
	assert_true(t_ctl_num(m, "counters", "no_room") >= 1);
	lanes_all_gone(m, base);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- 19-23. lane regions (conns.c "Lane regions") --------------------------- */

/*
 * A lane keeps the regions of its kits and gives one to a later kit once
 * both ends of its connection are closed. Reuse is seen in the file, not in
 * the bytes (a reused region must look new): the child names each kit's
 * memfd by fstat() in sh_reg, the parent compares them and looks for them
 * among the monitor's fds and mappings (/proc), which also shows whether a
 * region the monitor let go of is really gone.
 */

#define N_REG_KITS	8
#define BIG_WRITE	40000u	/* past conns.c SCRUB_PUNCH (16 KiB): reuse punches pages out */

struct sh_reg {
	struct sh_lane sync;
	uint64_t dev;			/* of every memfd: one internal mount */
	uint64_t ino[N_REG_KITS];	/* kit i's region memfd */
	uint64_t id[N_REG_KITS];	/* kit i's connection id */
};

/* Record kit @k's region file and id as number @i. */
static void reg_note(struct sh_reg *sh, unsigned int i, const struct kit *k)
{
	struct stat st;

	T_CHECK(i < N_REG_KITS);
	T_CHECK_EQ(fstat(k->fds[IPCD_CTL_CONN_FD_REGION], &st), 0);
	sh->dev = st.st_dev;
	sh->ino[i] = st.st_ino;
	sh->id[i] = k->id;
}

/* Read exactly @n bytes that @c's peer wrote already. */
static void read_exact(struct ipcd_conn *c, uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = ipcd_spsc_read(&c->rx, buf + got, n - got, 0);

		T_CHECK(r > 0);
		got += (size_t)r;
	}
}

/* Read exactly @msg, then EOF: the peer wrote it and closed. */
static void read_then_eof(struct ipcd_conn *c, const char *msg)
{
	size_t len = strlen(msg);
	char buf[16];

	T_CHECK_EQ(ipcd_spsc_read(&c->rx, buf, sizeof(buf), 0), (ssize_t)len);
	T_CHECK(!memcmp(buf, msg, len));
	T_CHECK_EQ(ipcd_spsc_read(&c->rx, buf, sizeof(buf), 0), 0);
}

/*
 * End @c as preload's end_release() does when its last holder closes it,
 * short of the CLOSE request, which a library may leave queued: rings
 * marked, then this end's IPCD_CONN_CLOSED_* bit, then unmapped.
 */
static void close_by_bit(struct ipcd_conn *c)
{
	ipcd_spsc_close_prod(&c->tx);
	ipcd_spsc_close_cons(&c->rx);
	ipcd_fetch_or(&c->ctl->closed, c->acceptor ? IPCD_CONN_CLOSED_B : IPCD_CONN_CLOSED_A);
	ipcd_conn_release(c);
}

/*
 * Bytes of a region no ring position accounts for: the spare bytes of its
 * header and ctl, written through an end's mapping. The header is rewritten
 * from the monitor's copy and the ctl from nothing: none may survive.
 */
static void scribble(struct ipcd_conn *c)
{
	struct ipcd_shm_hdr *h = c->reg.base;

	memset(h->reserved, 0xee, sizeof(h->reserved));
	memset(c->ctl->reserved0, 0xee, sizeof(c->ctl->reserved0));
	memset(c->ctl->reserved1, 0xee, sizeof(c->ctl->reserved1));
}

/*
 * Ring @r of a region given again is as ipcd_spsc_init() leaves a new one
 * (the control block, position 0 stamped) and holds not one byte of what
 * earlier connections wrote: scrubbed as far as their positions say.
 */
static void ring_fresh(const struct ipcd_spsc *r, const char *name)
{
	static uint8_t want[sizeof(struct ipcd_spsc_shm) + IPCD_SPSC_MIN_CAPACITY]
		__attribute__((aligned(IPCD_CACHE_GUARD)));
	const struct ipcd_spsc_shm *s = r->shm;
	uint32_t i;

	T_CHECK_EQ(s->tail, 0);
	T_CHECK_EQ(s->head, 0);
	T_CHECK_EQ(s->head_off, 0);
	T_CHECK_EQ(s->prod_bytes, 0);
	T_CHECK_EQ(s->cons_bytes, 0);
	T_CHECK_EQ(s->prod_closed, 0);
	T_CHECK_EQ(s->cons_closed, 0);
	T_CHECK_EQ(ipcd_spsc_init(want, r->capacity, 0, IPCD_SPSC_F_STREAM), 0);
	T_CHECK(!memcmp(s, want, sizeof(*s) + sizeof(struct ipcd_rec_hdr)));
	for (i = sizeof(struct ipcd_rec_hdr); i < r->capacity; i++) {
		if (!r->data[i])
			continue;
		fprintf(stderr, "[it-reg %d] ring %s: data byte %u of %u is %#x, an earlier "
			"connection's\n", (int)getpid(), name, i, r->capacity, r->data[i]);
		T_CHECK_EQ(r->data[i], 0);
	}
}

/*
 * Kit @k got a region used before: header (@hdr: as it was first issued;
 * NULL: not compared), ctl and both rings as a new region's, with none of
 * the earlier connections' bytes.
 */
static void region_fresh(const struct kit *k, const struct ipcd_shm_hdr *hdr)
{
	const struct ipcd_conn_ctl *ctl = k->a.ctl;
	const uint8_t *r0 = (const uint8_t *)ctl->reserved0;
	size_t i;

	if (hdr)
		T_CHECK(!memcmp(k->a.reg.base, hdr, sizeof(*hdr)));
	T_CHECK_EQ(ctl->conn_id, k->id);
	T_CHECK_EQ(ipcd_load_acquire(&ctl->closed), 0);
	T_CHECK_EQ(ipcd_load_acquire(&ctl->reset), 0);
	for (i = 0; i < sizeof(ctl->reserved0); i++)
		T_CHECK_EQ(r0[i], 0);
	for (i = 0; i < sizeof(ctl->reserved1); i++)
		T_CHECK_EQ(ctl->reserved1[i], 0);
	ring_fresh(&k->a.tx, "A->B");
	ring_fresh(&k->a.rx, "B->A");
}

/* The monitor's hold on kit @i's region: its fds open on the memfd, its mappings of it. */
static void mon_holds(const struct t_mon *m, const struct sh_reg *sh, unsigned int i, int *fds,
		      int *maps)
{
	char path[64], fp[384], line[512];
	struct dirent *e;
	struct stat st;
	DIR *d;
	FILE *f;

	*fds = *maps = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)m->pid);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(fp, sizeof(fp), "%s/%s", path, e->d_name);
		if (stat(fp, &st) == 0 && st.st_dev == sh->dev && st.st_ino == sh->ino[i])
			(*fds)++;
	}
	closedir(d);
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)m->pid);
	f = fopen(path, "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned int maj, min;
		unsigned long long ino;

		if (sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &ino) == 3 &&
		    ino == sh->ino[i] && makedev(maj, min) == sh->dev)
			(*maps)++;
	}
	fclose(f);
}

/*
 * The monitor holds kit @i's region with @fds fds and @maps mappings: 1, 1
 * while its lane owns it, 1, 0 while it is a connection's own (only the
 * memfd is kept), 0, 0 once it is gone.
 */
static void expect_held(const struct t_mon *m, const struct sh_reg *sh, unsigned int i,
			int fds, int maps)
{
	int got_fds, got_maps;

	mon_holds(m, sh, i, &got_fds, &got_maps);
	if (got_fds != fds || got_maps != maps)
		fail_msg("the monitor holds kit %u's region (inode %llu) with %d fds and %d "
			 "mappings, want %d and %d", i, (unsigned long long)sh->ino[i], got_fds,
			 got_maps, fds, maps);
}

/* Kit @i got the region kit @j had (@same), or another one. */
static void expect_region(const struct sh_reg *sh, unsigned int i, unsigned int j, bool same)
{
	if ((sh->ino[i] == sh->ino[j]) != same)
		fail_msg("kit %u got region inode %llu, kit %u had %llu: want %s", i,
			 (unsigned long long)sh->ino[i], j, (unsigned long long)sh->ino[j],
			 same ? "the same region (reused)" : "another region");
}

/* Kits @i and @i + 1 got the regions of kits @j and @j + 1, in either order. */
static void expect_pair_reused(const struct sh_reg *sh, unsigned int i, unsigned int j)
{
	if (!(sh->ino[i] == sh->ino[j] && sh->ino[i + 1] == sh->ino[j + 1]) &&
	    !(sh->ino[i] == sh->ino[j + 1] && sh->ino[i + 1] == sh->ino[j]))
		fail_msg("kits %u, %u got region inodes %llu, %llu; kits %u, %u had %llu, %llu: "
			 "want those two reused", i, i + 1, (unsigned long long)sh->ino[i],
			 (unsigned long long)sh->ino[i + 1], j, j + 1,
			 (unsigned long long)sh->ino[j], (unsigned long long)sh->ino[j + 1]);
}

/* A field of connection @id in ipcdctl --json connections (read through the monitor's memfd). */
static long long conn_num(const struct t_mon *m, uint64_t id, const char *key)
{
	char want[48];
	const char *p;
	long long v;

	assert_int_equal(t_ctl(m, &tout, true, "connections"), 0);
	snprintf(want, sizeof(want), "{\"id\":%llu,", (unsigned long long)id);
	p = strstr(tout.out, want);
	if (!p || !t_json_num(p, key, &v))
		fail_msg("ipcdctl --json connections: no %s (a number) for connection %llu in: %s",
			 key, (unsigned long long)id, tout.out);
	return v;
}

/* Listener @l and connector @c of a new lane to a bind of @l's (kits of @hint-byte rings). */
struct reg_pair {
	struct ipcd_attach l, c;
	struct ipcd_conn c0, b0;	/* the lane-making connection */
	uint8_t lo[16];
	uint32_t id, lane, seq, ring;
	uint16_t port;
	int lfd, cl, ll;
};

static void reg_pair_open(const struct t_mon *m, struct reg_pair *p, uint32_t hint)
{
	struct ipcd_conn_resp resp;
	uint32_t lane_b;

	attach_or_die(m, "it-reg-l", &p->l);
	attach_or_die(m, "it-reg-c", &p->c);
	v4(p->lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen_flags(&p->l, p->lo, 0, 0, 8, IPCD_LISTEN_LANES, &p->id, &p->port,
				     &p->lfd), 0);
	T_CHECK_EQ(connect_lane(&p->c, p->lo, p->port, p->id, hint, &p->c0, &resp, &p->cl,
				&p->lane), 0);
	T_CHECK_EQ(accept_lane(&p->l, p->id, 0, &p->b0, &resp, &p->ll, &lane_b), 0);
	T_CHECK_EQ(lane_b, p->lane);
	p->seq = 0;
	p->ring = p->c0.tx.capacity;
}

/* KITS @n into @k, noted in @sh from number @first on. */
static void reg_kits(struct reg_pair *p, struct sh_reg *sh, unsigned int first, uint32_t n,
		     struct kit *k)
{
	uint32_t i;

	take_kits(&p->c, p->lane, n, p->lo, p->port, p->ring, &p->seq, k);
	for (i = 0; i < n; i++)
		reg_note(sh, first + i, &k[i]);
}

/* Kit @k down the lane; the listener accepts it in @b (KIT_ACCEPTED). */
static void reg_hand(struct reg_pair *p, const struct kit *k, struct ipcd_conn *b)
{
	lane_send_kit(p->cl, k);
	lane_recv_kit(p->ll, k, b);
	T_CHECK_EQ(kit_accepted(&p->l, k->id), 0);
}

/* The listener is done with the lane, every kit numbered so far received and accepted. */
static void reg_pair_close(struct reg_pair *p)
{
	do_close(&p->c, &p->c0);
	do_close(&p->l, &p->b0);
	close(p->ll);
	T_CHECK_EQ(lane_done(&p->l, p->lane, p->seq, p->seq, 0), 0);
	close(p->cl);
	close(p->lfd);
	ipcd_detach(&p->c);
	ipcd_detach(&p->l);
}

/* ---- 19. a kit closed by both CLOSEs: the next kit gets its region, scrubbed -- */

static void __attribute__((noreturn)) reg_reuse_child(const struct t_mon *m, struct sh_reg *sh)
{
	static uint8_t big[BIG_WRITE], buf[BIG_WRITE];
	struct ipcd_shm_hdr hdr0;
	struct ipcd_conn kb;
	struct reg_pair p;
	struct kit k[3];
	uint32_t i;

	/* 64 KiB rings: room for writes past SCRUB_PUNCH. */
	reg_pair_open(m, &p, LANE_HINT);
	T_CHECK_EQ(p.ring, LANE_HINT);
	memset(big, 0x5a, sizeof(big));

	/* Kit 0: a large write A->B, read; a small one B->A, left unread. */
	reg_kits(&p, sh, 0, 1, &k[0]);
	memcpy(&hdr0, k[0].a.reg.base, sizeof(hdr0));
	reg_hand(&p, &k[0], &kb);
	T_CHECK_EQ(ipcd_spsc_write(&k[0].a.tx, big, BIG_WRITE), BIG_WRITE);
	read_exact(&kb, buf, BIG_WRITE);
	T_CHECK(!memcmp(buf, big, BIG_WRITE));
	T_CHECK_EQ(ipcd_spsc_write(&kb.tx, "unread", 6), 6);
	scribble(&k[0].a);
	do_close(&p.c, &k[0].a);
	do_close(&p.l, &kb);
	child_step(&sh->sync, 1);

	/* Kit 1 gets kit 0's region, as new: none of kit 0's bytes. */
	reg_kits(&p, sh, 1, 1, &k[1]);
	region_fresh(&k[1], &hdr0);
	child_step(&sh->sync, 2);

	/*
	 * Kit 1's producer laps its ring (tail past the capacity: all of it
	 * was written), and it is reused again, just as clean.
	 */
	reg_hand(&p, &k[1], &kb);
	for (i = 0; i < 3; i++) {
		T_CHECK_EQ(ipcd_spsc_write(&k[1].a.tx, big, BIG_WRITE), BIG_WRITE);
		read_exact(&kb, buf, BIG_WRITE);
		T_CHECK(!memcmp(buf, big, BIG_WRITE));
	}
	T_CHECK(ipcd_load_acquire(&k[1].a.tx.shm->tail) > LANE_HINT);
	T_CHECK_EQ(ipcd_spsc_write(&kb.tx, "unread", 6), 6);
	scribble(&kb);
	do_close(&p.c, &k[1].a);
	do_close(&p.l, &kb);
	reg_kits(&p, sh, 2, 1, &k[2]);
	region_fresh(&k[2], &hdr0);
	/* ... and a connection like any other. */
	reg_hand(&p, &k[2], &kb);
	pass(&k[2].a, &kb, "new");
	pass(&kb, &k[2].a, "wen");
	do_close(&p.c, &k[2].a);
	do_close(&p.l, &kb);
	for (i = 0; i < 3; i++)
		kit_close_fds(&k[i]);
	reg_pair_close(&p);
	_exit(0);
}

static void test_lane_region_reuse(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_reg *sh = t_shm_alloc(sizeof(*sh));
	pid_t pid;
	int base;

	lane_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		reg_reuse_child(m, sh);
	parent_step(&sh->sync, 1, pid);
	/* Both ends closed by their CLOSEs: the lane keeps the region, mapped, for its next kit. */
	assert_int_equal(lane_num(m, "regions_reused"), 0);
	expect_held(m, sh, 0, 1, 1);
	ipcd_store_release(&sh->sync.go, 1);
	parent_step(&sh->sync, 2, pid);
	expect_region(sh, 1, 0, true);
	assert_int_equal(lane_num(m, "regions_reused"), 1);
	expect_held(m, sh, 1, 1, 1);
	ipcd_store_release(&sh->sync.go, 2);
	child_ok(pid);
	expect_region(sh, 2, 0, true);
	assert_int_equal(lane_num(m, "regions_reused"), 2);
	assert_int_equal(lane_num(m, "closed_early"), 0);
	assert_int_equal(t_ctl_num(m, "counters", "dead_ends"), 0);
	lanes_all_gone(m, base);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 20. both closed bits, no CLOSE yet: reused; the late CLOSEs find nothing - */

static void __attribute__((noreturn)) reg_bits_child(const struct t_mon *m, struct sh_reg *sh)
{
	struct ipcd_conn kb[4];
	struct reg_pair p;
	struct kit k[4];
	uint32_t i;

	reg_pair_open(m, &p, 0);
	/* Kit 0's KIT_ACCEPTED was read; kit 1's is still queued (lazy) with the CLOSEs. */
	reg_kits(&p, sh, 0, 2, k);
	reg_hand(&p, &k[0], &kb[0]);
	lane_send_kit(p.cl, &k[1]);
	lane_recv_kit(p.ll, &k[1], &kb[1]);
	for (i = 0; i < 2; i++) {
		pass(&k[i].a, &kb[i], "ab");
		pass(&kb[i], &k[i].a, "ba");
		close_by_bit(&k[i].a);
		close_by_bit(&kb[i]);
	}
	child_step(&sh->sync, 1);

	/* The next kits take both regions: the bits stood for the CLOSEs. */
	reg_kits(&p, sh, 2, 2, k + 2);
	for (i = 2; i < 4; i++)
		region_fresh(&k[i], NULL);
	/* The late requests find no connection: answered, not a fault. */
	for (i = 0; i < 2; i++) {
		T_CHECK_EQ(close_end(&p.c, k[i].id, IPCD_CLOSE_A, 0), -ENOENT);
		T_CHECK_EQ(close_end(&p.l, k[i].id, IPCD_CLOSE_B, 0), -ENOENT);
		T_CHECK_EQ(close_id(&p.c, k[i].id), -ENOENT);
		T_CHECK_EQ(close_id(&p.l, k[i].id), -ENOENT);
	}
	T_CHECK_EQ(kit_accepted(&p.l, k[1].id), -ENOENT);
	/* Both processes go on; the new kits took the regions, not the ids. */
	for (i = 2; i < 4; i++) {
		T_CHECK(k[i].id != k[0].id && k[i].id != k[1].id);
		reg_hand(&p, &k[i], &kb[i]);
		pass(&k[i].a, &kb[i], "new");
		pass(&kb[i], &k[i].a, "wen");
	}
	child_step(&sh->sync, 2);
	for (i = 2; i < 4; i++) {
		do_close(&p.c, &k[i].a);
		do_close(&p.l, &kb[i]);
	}
	for (i = 0; i < 4; i++)
		kit_close_fds(&k[i]);
	reg_pair_close(&p);
	_exit(0);
}

static void test_lane_region_closed_bits(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_reg *sh = t_shm_alloc(sizeof(*sh));
	pid_t pid;
	int base;

	lane_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		reg_bits_child(m, sh);
	parent_step(&sh->sync, 1, pid);
	/* The monitor looks at the bits only when it needs a region: both kits are still there. */
	assert_int_equal(lane_num(m, "closed_early"), 0);
	assert_int_equal(lane_num(m, "regions_reused"), 0);
	assert_int_equal(t_ctl(m, &tout, true, "connections"), 0);
	assert_int_equal(t_count_str(tout.out, "\"id\":"), 3);	/* with the lane-making one */
	assert_int_equal(t_ctl_num(m, "counters", "created"), 2);	/* it and kit 0 */
	ipcd_store_release(&sh->sync.go, 1);
	parent_step(&sh->sync, 2, pid);
	expect_pair_reused(sh, 2, 0);
	assert_int_equal(lane_num(m, "regions_reused"), 2);
	assert_int_equal(lane_num(m, "closed_early"), 4);	/* both ends of both */
	assert_int_equal(t_ctl(m, &tout, true, "connections"), 0);
	assert_int_equal(t_count_str(tout.out, "\"id\":"), 3);
	assert_int_equal(t_count_str(tout.out, "\"state\":\"established\""), 3);
	/* Kit 1 was accepted (its B end closed it) though its KIT_ACCEPTED came late: once. */
	assert_int_equal(t_ctl_num(m, "counters", "created"), 5);
	assert_int_equal(t_ctl_num(m, "counters", "accepted"), 5);
	assert_int_equal(t_ctl_num(m, "counters", "closed"), 0);
	/* Late CLOSEs are not faults: both processes are still registered. */
	assert_int_equal(t_ctl_num(m, "status", "processes"), 2);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	ipcd_store_release(&sh->sync.go, 2);
	child_ok(pid);
	assert_int_equal(lane_num(m, "closed_early"), 4);
	lanes_all_gone(m, base);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 21. an end closed by a death or a reset: its region is not reused ------ */

static void __attribute__((noreturn)) reg_abnormal_child(const struct t_mon *m, struct sh_reg *sh)
{
	struct ipcd_conn_resp resp;
	struct ipcd_conn kb[3], c1, b1;
	struct reg_pair p;
	struct kit k[3];
	uint32_t lane_b, i;

	/*
	 * a) The connector dies with the lane open: kit 0 was closed by both
	 * CLOSEs before, kit 1 not; the listener then closes kit 1.
	 */
	reg_pair_open(m, &p, 0);
	reg_kits(&p, sh, 0, 2, k);
	for (i = 0; i < 2; i++)
		reg_hand(&p, &k[i], &kb[i]);
	do_close(&p.c, &k[0].a);
	do_close(&p.l, &kb[0]);
	T_CHECK_EQ(ipcd_spsc_write(&k[1].a.tx, "bye", 3), 3);
	ipcd_detach(&p.c);
	/* Reaped: B reads what A wrote, then EOF; the kernel drops the dead one's fds. */
	T_CHECK_EQ(drain_to_eof(&kb[1]), 3);
	T_CHECK_EQ(ipcd_load_acquire(&kb[1].ctl->reset), 0);
	ipcd_conn_release(&k[1].a);
	ipcd_conn_release(&p.c0);
	for (i = 0; i < 2; i++)
		kit_close_fds(&k[i]);
	close(p.cl);
	do_close(&p.l, &kb[1]);
	child_step(&sh->sync, 1);
	lane_eof(p.ll);
	close(p.ll);
	T_CHECK_EQ(lane_done(&p.l, p.lane, 2, 2, 0), 0);
	do_close(&p.l, &p.b0);
	child_step(&sh->sync, 2);

	/*
	 * b) LANE_DONE resets kit 3 (never received); the connector lives on
	 * and its next lane's kit gets a region of its own.
	 */
	attach_or_die(m, "it-reg-c", &p.c);
	T_CHECK_EQ(connect_lane(&p.c, p.lo, p.port, p.id, 0, &p.c0, &resp, &p.cl, &p.lane), 0);
	T_CHECK_EQ(accept_lane(&p.l, p.id, 0, &p.b0, &resp, &p.ll, &lane_b), 0);
	p.seq = 0;
	reg_kits(&p, sh, 2, 2, k);
	reg_hand(&p, &k[0], &kb[0]);
	T_CHECK_EQ(ipcd_spsc_write(&k[1].a.tx, "lost", 4), 4);
	close(p.ll);
	T_CHECK_EQ(lane_done(&p.l, p.lane, 1, 1, 0), 0);
	reset_by_b(&k[1].a);
	do_close(&p.c, &k[1].a);
	pass(&k[0].a, &kb[0], "kept");
	lane_peer_closed(p.cl);
	close(p.cl);
	T_CHECK_EQ(connect_lane(&p.c, p.lo, p.port, p.id, 0, &c1, &resp, &p.cl, &p.lane), 0);
	T_CHECK_EQ(accept_lane(&p.l, p.id, 0, &b1, &resp, &p.ll, &lane_b), 0);
	p.seq = 0;
	reg_kits(&p, sh, 4, 1, &k[2]);
	child_step(&sh->sync, 3);
	reg_hand(&p, &k[2], &kb[2]);
	pass(&k[2].a, &kb[2], "new");
	for (i = 0; i < 3; i += 2) {
		do_close(&p.c, &k[i].a);
		do_close(&p.l, &kb[i]);
	}
	for (i = 0; i < 3; i++)
		kit_close_fds(&k[i]);
	do_close(&p.c, &c1);
	do_close(&p.l, &b1);
	do_close(&p.c, &p.c0);
	do_close(&p.l, &p.b0);
	close(p.ll);
	T_CHECK_EQ(lane_done(&p.l, p.lane, 1, 1, 0), 0);
	close(p.cl);

	/*
	 * c) The listener dies with the lane open: kit 5 was closed by both
	 * CLOSEs before, kit 6 is open; the connector closes it after.
	 */
	T_CHECK_EQ(connect_lane(&p.c, p.lo, p.port, p.id, 0, &p.c0, &resp, &p.cl, &p.lane), 0);
	T_CHECK_EQ(accept_lane(&p.l, p.id, 0, &p.b0, &resp, &p.ll, &lane_b), 0);
	p.seq = 0;
	reg_kits(&p, sh, 5, 2, k);
	for (i = 0; i < 2; i++)
		reg_hand(&p, &k[i], &kb[i]);
	do_close(&p.c, &k[0].a);
	do_close(&p.l, &kb[0]);
	ipcd_detach(&p.l);
	ipcd_conn_release(&kb[1]);
	ipcd_conn_release(&p.b0);
	close(p.ll);
	close(p.lfd);
	WAIT_FLAG(&k[1].a.rx.shm->prod_closed, 1);	/* reaped */
	/* A round trip after the reaping: the lane went with its listener. */
	T_CHECK_EQ(kits_req(&p.c, p.lane, 1, NULL), -ENOENT);
	child_step(&sh->sync, 4);
	T_CHECK_EQ(drain_to_eof(&k[1].a), 0);
	do_close(&p.c, &k[1].a);
	do_close(&p.c, &p.c0);
	for (i = 0; i < 2; i++)
		kit_close_fds(&k[i]);
	close(p.cl);
	child_step(&sh->sync, 5);
	ipcd_detach(&p.c);
	_exit(0);
}

static void test_lane_region_abnormal(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_reg *sh = t_shm_alloc(sizeof(*sh));
	unsigned int i;
	pid_t pid;
	int base;

	lane_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		reg_abnormal_child(m, sh);
	/* a) Kit 0's region (both CLOSEs) stays the lane's; kit 1's (A died) is gone at once. */
	parent_step(&sh->sync, 1, pid);
	expect_held(m, sh, 0, 1, 1);
	expect_held(m, sh, 1, 0, 0);
	assert_int_equal(lane_num(m, "open"), 1);
	ipcd_store_release(&sh->sync.go, 1);
	/* The lane's end frees the region it kept. */
	parent_step(&sh->sync, 2, pid);
	expect_held(m, sh, 0, 0, 0);
	assert_int_equal(lane_num(m, "open"), 0);
	ipcd_store_release(&sh->sync.go, 2);
	/*
	 * b) Kit 3 (reset) went with its connection; kit 2, open, keeps its
	 * memfd only. The pair's next kit has a region none of them had.
	 */
	parent_step(&sh->sync, 3, pid);
	expect_held(m, sh, 3, 0, 0);
	expect_held(m, sh, 2, 1, 0);
	for (i = 0; i < 4; i++)
		expect_region(sh, 4, i, false);
	assert_int_equal(lane_num(m, "regions_reused"), 0);
	ipcd_store_release(&sh->sync.go, 3);
	/* c) The listener died: kit 5's region is freed with the lane, kit 6's kept while A is open. */
	parent_step(&sh->sync, 4, pid);
	expect_held(m, sh, 5, 0, 0);
	expect_held(m, sh, 6, 1, 0);
	assert_int_equal(lane_num(m, "open"), 0);
	ipcd_store_release(&sh->sync.go, 4);
	parent_step(&sh->sync, 5, pid);
	expect_held(m, sh, 6, 0, 0);
	ipcd_store_release(&sh->sync.go, 5);
	child_ok(pid);
	assert_int_equal(lane_num(m, "regions_reused"), 0);
	lanes_all_gone(m, base);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 22. one end's closed bit: the region is not taken, the kit goes on ----- */

static void __attribute__((noreturn)) reg_one_bit_child(const struct t_mon *m, struct sh_reg *sh)
{
	struct ipcd_conn kb[6];
	struct reg_pair p;
	struct kit k[6];
	uint32_t i;

	reg_pair_open(m, &p, 0);
	reg_kits(&p, sh, 0, 2, k);
	for (i = 0; i < 2; i++)
		reg_hand(&p, &k[i], &kb[i]);
	/* Kit 0's A end and kit 1's B end close by their bits, their CLOSEs still queued. */
	T_CHECK_EQ(ipcd_spsc_write(&k[0].a.tx, "a0", 2), 2);
	close_by_bit(&k[0].a);
	T_CHECK_EQ(ipcd_spsc_write(&kb[1].tx, "b1", 2), 2);
	close_by_bit(&kb[1]);
	reg_kits(&p, sh, 2, 2, k + 2);
	child_step(&sh->sync, 1);

	/* Each still works for its open end: the data, EOF, and writes fail (no reader). */
	read_then_eof(&kb[0], "a0");
	T_CHECK_EQ(ipcd_spsc_write(&kb[0].tx, "x", 1), -EPIPE);
	T_CHECK_EQ(ipcd_load_acquire(&kb[0].ctl->reset), 0);
	read_then_eof(&k[1].a, "b1");
	T_CHECK_EQ(ipcd_spsc_write(&k[1].a.tx, "x", 1), -EPIPE);
	T_CHECK_EQ(ipcd_load_acquire(&k[1].a.ctl->reset), 0);
	/* The lazy CLOSEs still find their ends open; then the other ends close. */
	T_CHECK_EQ(close_end(&p.c, k[0].id, IPCD_CLOSE_A, 0), 0);
	T_CHECK_EQ(close_end(&p.l, k[1].id, IPCD_CLOSE_B, 0), 0);
	do_close(&p.l, &kb[0]);
	do_close(&p.c, &k[1].a);
	/* Now both regions are free: the next kits get them. */
	reg_kits(&p, sh, 4, 2, k + 4);
	for (i = 4; i < 6; i++)
		region_fresh(&k[i], NULL);
	child_step(&sh->sync, 2);
	for (i = 2; i < 6; i++) {
		reg_hand(&p, &k[i], &kb[i]);
		pass(&k[i].a, &kb[i], "ab");
		do_close(&p.c, &k[i].a);
		do_close(&p.l, &kb[i]);
	}
	for (i = 0; i < 6; i++)
		kit_close_fds(&k[i]);
	reg_pair_close(&p);
	_exit(0);
}

static void test_lane_region_one_bit(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_reg *sh = t_shm_alloc(sizeof(*sh));
	unsigned int i, j;
	pid_t pid;
	int base;

	lane_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		reg_one_bit_child(m, sh);
	parent_step(&sh->sync, 1, pid);
	/* Kits 2 and 3 got new regions: one end of each of kits 0 and 1 is open. */
	for (i = 2; i < 4; i++)
		for (j = 0; j < 2; j++)
			expect_region(sh, i, j, false);
	assert_int_equal(lane_num(m, "regions_reused"), 0);
	assert_int_equal(lane_num(m, "closed_early"), 0);
	for (i = 0; i < 4; i++)
		expect_held(m, sh, i, 1, 1);
	assert_int_equal(t_ctl(m, &tout, true, "connections"), 0);
	assert_int_equal(t_count_str(tout.out, "\"id\":"), 5);
	ipcd_store_release(&sh->sync.go, 1);
	parent_step(&sh->sync, 2, pid);
	expect_pair_reused(sh, 4, 0);
	assert_int_equal(lane_num(m, "regions_reused"), 2);
	assert_int_equal(lane_num(m, "closed_early"), 0);
	ipcd_store_release(&sh->sync.go, 2);
	child_ok(pid);
	assert_int_equal(t_ctl_num(m, "counters", "dead_ends"), 0);
	assert_int_equal(t_ctl_num(m, "counters", "reset"), 0);
	lanes_all_gone(m, base);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 23. the lane ends: a region in use stays its connection's ------------- */

static void __attribute__((noreturn)) reg_lane_end_child(const struct t_mon *m, struct sh_reg *sh)
{
	struct ipcd_conn kb[4];
	struct reg_pair p;
	struct kit k[4];
	uint32_t i;
	char buf[16];

	reg_pair_open(m, &p, 0);
	/* Kits 0 and 2 accepted and open, 1 closed by both CLOSEs, 3 never received. */
	reg_kits(&p, sh, 0, 4, k);
	for (i = 0; i < 3; i++)
		reg_hand(&p, &k[i], &kb[i]);
	T_CHECK_EQ(ipcd_spsc_write(&k[0].a.tx, "before", 6), 6);
	T_CHECK_EQ(ipcd_spsc_write(&kb[0].tx, "b0", 2), 2);
	T_CHECK_EQ(ipcd_spsc_write(&k[2].a.tx, "k2", 2), 2);
	do_close(&p.c, &k[1].a);
	do_close(&p.l, &kb[1]);
	child_step(&sh->sync, 1);
	close(p.ll);
	T_CHECK_EQ(lane_done(&p.l, p.lane, 3, 3, 0), 0);
	lane_peer_closed(p.cl);
	close(p.cl);
	child_step(&sh->sync, 2);

	/* Kit 0's rings kept what was written before, and go on working. */
	T_CHECK_EQ(ipcd_spsc_read(&kb[0].rx, buf, sizeof(buf), 0), 6);
	T_CHECK(!memcmp(buf, "before", 6));
	T_CHECK_EQ(ipcd_spsc_read(&k[0].a.rx, buf, sizeof(buf), 0), 2);
	T_CHECK(!memcmp(buf, "b0", 2));
	pass(&k[0].a, &kb[0], "after");
	pass(&kb[0], &k[0].a, "retfa");
	T_CHECK_EQ(ipcd_load_acquire(&k[0].a.ctl->reset), 0);
	reset_by_b(&k[3].a);
	do_close(&p.c, &k[3].a);
	do_close(&p.c, &k[0].a);
	do_close(&p.l, &kb[0]);
	child_step(&sh->sync, 3);

	/* The connector dies: the monitor closes kit 2's A end through the memfd it kept. */
	ipcd_detach(&p.c);
	T_CHECK_EQ(drain_to_eof(&kb[2]), 2);
	T_CHECK_EQ(ipcd_load_acquire(&kb[2].ctl->reset), 0);
	T_CHECK_EQ(ipcd_spsc_write(&kb[2].tx, "x", 1), -EPIPE);
	ipcd_conn_release(&k[2].a);
	ipcd_conn_release(&p.c0);
	for (i = 0; i < 4; i++)
		kit_close_fds(&k[i]);
	do_close(&p.l, &kb[2]);
	do_close(&p.l, &p.b0);
	close(p.lfd);
	ipcd_detach(&p.l);
	_exit(0);
}

static void test_lane_region_lane_end(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_reg *sh = t_shm_alloc(sizeof(*sh));
	unsigned int i;
	pid_t pid;
	int base;

	lane_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		reg_lane_end_child(m, sh);
	parent_step(&sh->sync, 1, pid);
	for (i = 0; i < 4; i++)
		expect_held(m, sh, i, 1, 1);
	ipcd_store_release(&sh->sync.go, 1);
	/*
	 * After LANE_DONE the free region is gone; those in use (kits 0, 2 and
	 * the reset 3) are their connections' own: the memfd, no mapping. The
	 * monitor reads kit 0's rings through it.
	 */
	parent_step(&sh->sync, 2, pid);
	assert_int_equal(lane_num(m, "open"), 0);
	expect_held(m, sh, 1, 0, 0);
	for (i = 0; i < 4; i += 2)
		expect_held(m, sh, i, 1, 0);
	expect_held(m, sh, 3, 1, 0);
	assert_int_equal(conn_num(m, sh->id[0], "a2b_bytes"), 6);
	assert_int_equal(conn_num(m, sh->id[0], "b2a_bytes"), 2);
	assert_int_equal(conn_num(m, sh->id[2], "a2b_bytes"), 2);
	ipcd_store_release(&sh->sync.go, 2);
	/* Closed, kits 0 and 3 are freed with their memfds. */
	parent_step(&sh->sync, 3, pid);
	expect_held(m, sh, 0, 0, 0);
	expect_held(m, sh, 3, 0, 0);
	expect_held(m, sh, 2, 1, 0);
	ipcd_store_release(&sh->sync.go, 3);
	child_ok(pid);
	expect_held(m, sh, 2, 0, 0);
	assert_int_equal(lane_num(m, "regions_reused"), 0);
	lanes_all_gone(m, base);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 24-30. hold tokens (IPCD_OP_HOLD, ABI 3.2) ----------------------------- */

/*
 * HOLD gives a connection end a pipe whose read end the monitor watches and
 * whose write end (the token) every process holding the end keeps; at the
 * token's hang-up the monitor closes the end for its last holder: a normal
 * close if the end's IPCD_CONN_CLOSED_* bit is set, else as for a dead
 * process. An end with a token is not closed at its owner's death. As in
 * the lane cases, the "processes" are attachments of one child (a death is
 * a detach); a real forked process holds a token where the kernel's own
 * bookkeeping is the point (SIGKILL, exit).
 */

#define NOBODY	65534

struct sh_hold {
	struct sh_lane sync;
	uint32_t ready;		/* a forked holder dropped everything but its token */
	uint32_t nobody;	/* root: a process of another user may be tried */
};

static int hold_req(struct ipcd_attach *a, uint64_t id, uint32_t end, uint32_t pad)
{
	struct ipcd_hold_req r = { .conn_id = id, .end = end, .pad = pad };

	return call(a, IPCD_OP_HOLD, &r, sizeof(r), NULL, 0);
}

/* A HOLD the monitor refuses with @err: no message comes with the answer. */
static void hold_refused(struct ipcd_attach *a, uint64_t id, uint32_t end, uint32_t pad, int err)
{
	T_CHECK_EQ(hold_req(a, id, end, pad), err);
	no_msg(a);
}

/* Descriptors the monitor has open on the file @st describes (a token: its pipe). */
static unsigned int mon_fds_on(const struct t_mon *m, const struct stat *st)
{
	char path[64], fp[384];
	unsigned int n = 0;
	struct dirent *e;
	struct stat s;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)m->pid);
	d = opendir(path);
	T_CHECK(d != NULL);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(fp, sizeof(fp), "%s/%s", path, e->d_name);
		if (stat(fp, &s) == 0 && s.st_dev == st->st_dev && s.st_ino == st->st_ino)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * HOLD end @end of @id: answered 0, with an IPCD_CTL_HOLD_FD message queued
 * before the answer (read raw, not through the library's checks) carrying
 * exactly one descriptor: the write end of a pipe whose read end, and only
 * that, the monitor keeps. Returns the token; *@st describes its pipe.
 */
static int take_hold(const struct t_mon *m, struct ipcd_attach *a, uint64_t id, uint32_t end,
		     struct stat *st)
{
	int got[IPCD_CTL_MAX_FDS], fl;
	struct ipcd_ctl_msg msg;
	unsigned int nfds;

	T_CHECK_EQ(hold_req(a, id, end, 0), 0);
	T_CHECK_EQ(ipcd_ctl_recv(a->sock, &msg, sizeof(msg), MSG_DONTWAIT, got, IPCD_CTL_MAX_FDS,
				 &nfds), (ssize_t)sizeof(msg));
	T_CHECK_EQ(nfds, 1);
	T_CHECK_EQ(msg.magic, IPCD_CTL_MAGIC);
	T_CHECK_EQ(msg.type, IPCD_CTL_HOLD_FD);
	T_CHECK_EQ(msg.conn_id, id);
	T_CHECK_EQ(msg.bind_id, end);
	T_CHECK_EQ(fstat(got[0], st), 0);
	T_CHECK(S_ISFIFO(st->st_mode));
	fl = fcntl(got[0], F_GETFL);
	T_CHECK(fl >= 0);
	T_CHECK_EQ(fl & O_ACCMODE, O_WRONLY);
	T_CHECK_EQ(mon_fds_on(m, st), 1);	/* its read end, kept once */
	no_msg(a);
	return got[0];
}

/* The monitor closed @c's peer for it: @unread bytes then EOF, reset bits @reset, EPIPE. */
static void end_gone(struct ipcd_conn *c, uint64_t unread, uint32_t reset)
{
	WAIT_FLAG(&c->rx.shm->prod_closed, 1);
	T_CHECK_EQ(ipcd_load_acquire(&c->tx.shm->cons_closed), 1);
	T_CHECK_EQ(drain_to_eof(c), unread);
	T_CHECK_EQ(ipcd_load_acquire(&c->ctl->reset), reset);
	T_CHECK_EQ(ipcd_spsc_write(&c->tx, "x", 1), -EPIPE);
}

/* Nothing closed @c's peer: its rings are not marked. */
static void peer_open(const struct ipcd_conn *c)
{
	T_CHECK_EQ(ipcd_load_acquire(&c->rx.shm->prod_closed), 0);
	T_CHECK_EQ(ipcd_load_acquire(&c->tx.shm->cons_closed), 0);
	T_CHECK_EQ(ipcd_load_acquire(&c->ctl->reset), 0);
}

/* Close every descriptor but 0-2 and @keep (a forked holder: only its token stays). */
static void keep_only(int keep)
{
	int fds[1024];
	unsigned int n = 0, i;
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");

	T_CHECK(d != NULL);
	while ((e = readdir(d)) && n < 1024) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] != '.' && fd > 2 && fd != keep && fd != dirfd(d))
			fds[n++] = fd;
	}
	T_CHECK(e == NULL);
	closedir(d);
	for (i = 0; i < n; i++)
		close(fds[i]);
}

/* A connection from @c to @l's listener @id, accepted: @ca is A's end, @cb is B's. */
static void hold_pair(struct ipcd_attach *c, struct ipcd_attach *l, const uint8_t lo[16],
		      uint16_t port, uint32_t id, int lfd, struct ipcd_conn *ca, struct ipcd_conn *cb)
{
	struct ipcd_conn_resp r1, r2;

	T_CHECK_EQ(do_connect(c, lo, port, ca, &r1), 0);
	wait_listen_ready(lfd);
	T_CHECK_EQ(do_accept(l, id, cb, &r2), 0);
	T_CHECK_EQ(r1.conn_id, r2.conn_id);
}

/* Counter @key of ipcdctl --json counters is @want. */
static void hold_count(const struct t_mon *m, const char *key, long long want)
{
	long long v = t_ctl_num(m, "counters", key);

	if (v != want)
		fail_msg("counter %s: %lld, want %lld", key, v, want);
}

/* Counters of a hold case; hold_hups waited for first (a hang-up is handled when it comes). */
static void expect_hold_counts(const struct t_mon *m, long long holds, long long hups,
			       long long dead_ends, long long closed, long long reset)
{
	long long v = t_ctl_wait_num(m, "counters", "hold_hups", hups);

	if (v != hups)
		fail_msg("counter hold_hups: %lld, want %lld", v, hups);
	hold_count(m, "holds", holds);
	hold_count(m, "dead_ends", dead_ends);
	hold_count(m, "closed", closed);
	hold_count(m, "reset", reset);
}

/* The start of a hold case: a monitor, its idle fds, a child's shared page. */
static struct sh_hold *hold_case_start(struct t_mon *m, int *base)
{
	t_mon_write_config(m, CONF);
	t_mon_start(m);
	*base = t_mon_fd_baseline(m);
	return t_shm_alloc(sizeof(struct sh_hold));
}

/* ... and its end: @freed connections freed, nothing left behind, not a token's read end. */
static void hold_case_end(struct t_mon *m, struct sh_hold *sh, pid_t pid, int base,
			  long long freed)
{
	child_ok(pid);
	expect_no_connections(m);
	hold_count(m, "freed", freed);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	assert_int_equal(t_mon_wait_fds(m, base), base);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	assert_int_equal(t_ctl_num(m, "counters", "fd_faults"), 0);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
}

/* ---- 24. HOLD: the token, once per end, and every refusal ------------------- */

static void __attribute__((noreturn)) hold_req_child(const struct t_mon *m, struct sh_hold *sh)
{
	struct ipcd_attach c, l;
	struct ipcd_conn_resp resp;
	struct ipcd_conn ca, cb;
	struct stat sa, sb;
	uint8_t lo[16];
	uint64_t id;
	uint32_t bid;
	uint16_t port;
	int lfd, ta, tb;

	v4(lo, 127, 0, 0, 1);
	attach_or_die(m, "it-hold-c", &c);
	attach_or_die(m, "it-hold-l", &l);
	T_CHECK_EQ(bind_listen(&l, lo, 0, 0, 4, &bid, &port, &lfd), 0);
	T_CHECK_EQ(do_connect(&c, lo, port, &ca, &resp), 0);
	id = ca.conn_id;
	/* Queued: B is nobody's yet, not even the listener's. */
	hold_refused(&l, id, IPCD_CLOSE_B, 0, -EPERM);
	hold_refused(&c, id, IPCD_CLOSE_B, 0, -EPERM);
	T_CHECK_EQ(do_accept(&l, bid, &cb, &resp), 0);
	/* Only A or B, with pad 0; an id the monitor never gave is unknown. */
	hold_refused(&c, id, IPCD_CLOSE_MINE, 0, -EINVAL);
	hold_refused(&c, id, IPCD_CLOSE_UNSENT, 0, -EINVAL);
	hold_refused(&c, id, IPCD_HOLD_LISTENER + 1, 0, -EINVAL);
	hold_refused(&c, id, UINT32_MAX, 0, -EINVAL);
	hold_refused(&c, id, IPCD_CLOSE_A, 1, -EINVAL);
	hold_refused(&l, id, IPCD_CLOSE_B, 0x80000000u, -EINVAL);
	hold_refused(&c, 12345, IPCD_CLOSE_A, 0, -ENOENT);
	hold_refused(&c, 0, IPCD_CLOSE_A, 0, -ENOENT);
	hold_refused(&c, ~0ull, IPCD_CLOSE_A, 0, -ENOENT);
	/* One token per end: a pipe each, named by the end in bind_id. */
	ta = take_hold(m, &c, id, IPCD_CLOSE_A, &sa);
	tb = take_hold(m, &l, id, IPCD_CLOSE_B, &sb);
	T_CHECK(sa.st_ino != sb.st_ino);
	/* A second: -EEXIST, from the owner or another process of its user. */
	hold_refused(&c, id, IPCD_CLOSE_A, 0, -EEXIST);
	hold_refused(&l, id, IPCD_CLOSE_A, 0, -EEXIST);
	hold_refused(&l, id, IPCD_CLOSE_B, 0, -EEXIST);
	hold_refused(&c, id, IPCD_CLOSE_B, 0, -EEXIST);
	T_CHECK_EQ(mon_fds_on(m, &sa), 1);
	T_CHECK_EQ(mon_fds_on(m, &sb), 1);
	if (sh->nobody) {
		/* Not the owner and another user: -EPERM, even with the token given. */
		pid_t pid = t_fork(T_CHILD_ALARM);

		if (pid == 0) {
			gid_t none[1] = { NOBODY };
			struct ipcd_attach n;
			char why[256];

			T_CHECK_EQ(setgroups(1, none), 0);
			T_CHECK_EQ(setgid(NOBODY), 0);
			T_CHECK_EQ(setuid(NOBODY), 0);
			T_CHECK_EQ(ipcd_attach(m->sock, "it-hold-nobody", &n, why, sizeof(why)),
				   0);
			hold_refused(&n, id, IPCD_CLOSE_A, 0, -EPERM);
			hold_refused(&n, id, IPCD_CLOSE_B, 0, -EPERM);
			hold_refused(&n, 12345, IPCD_CLOSE_A, 0, -ENOENT);
			ipcd_detach(&n);
			_exit(0);
		}
		T_CHECK_EQ(t_wait(pid, T_WAIT_MS), 0);
	}
	/* The tokens change nothing while they are held. */
	pass(&ca, &cb, "ping");
	pass(&cb, &ca, "pong");
	peer_open(&ca);
	peer_open(&cb);
	child_step(&sh->sync, 1);

	/* CLOSE with the tokens out: a closed end has none to give. */
	do_close(&c, &ca);
	hold_refused(&c, id, IPCD_CLOSE_A, 0, -ENOENT);
	hold_refused(&l, id, IPCD_CLOSE_B, 0, -EEXIST);
	T_CHECK_EQ(mon_fds_on(m, &sa), 1);	/* kept while the connection is */
	do_close(&l, &cb);
	/* Freed: the monitor let go of the read ends, the tokens' writes fail. */
	hold_refused(&c, id, IPCD_CLOSE_A, 0, -ENOENT);
	hold_refused(&l, id, IPCD_CLOSE_B, 0, -ENOENT);
	T_CHECK_EQ(mon_fds_on(m, &sa), 0);
	T_CHECK_EQ(mon_fds_on(m, &sb), 0);
	T_CHECK_EQ(write(ta, "x", 1), -1);
	T_CHECK_EQ(errno, EPIPE);
	T_CHECK_EQ(write(tb, "x", 1), -1);
	T_CHECK_EQ(errno, EPIPE);
	close(ta);
	close(tb);
	child_step(&sh->sync, 2);
	close(lfd);
	ipcd_detach(&c);
	ipcd_detach(&l);
	_exit(0);
}

static void test_hold_requests(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_hold *sh;
	pid_t pid;
	int base;

	/* As root, a process of another user may try: let it reach the socket. */
	if (geteuid() == 0)
		assert_int_equal(chmod(m->dir, 0755), 0);
	sh = hold_case_start(m, &base);
	sh->nobody = geteuid() == 0;
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		hold_req_child(m, sh);
	parent_step(&sh->sync, 1, pid);
	expect_hold_counts(m, 2, 0, 0, 0, 0);
	assert_int_equal(conns_in_state(m, "established"), 1);
	ipcd_store_release(&sh->sync.go, 1);
	/* Freed by its CLOSEs: the tokens never hung up while the monitor had them. */
	parent_step(&sh->sync, 2, pid);
	expect_hold_counts(m, 2, 0, 0, 2, 0);
	hold_count(m, "freed", 1);
	ipcd_store_release(&sh->sync.go, 2);
	hold_case_end(m, sh, pid, base, 1);
	T_PASSED(s);
}

/* ---- 25. the last copy of a token closed, no CLOSE: the end is closed ------- */

static void __attribute__((noreturn)) hold_hup_child(const struct t_mon *m, struct sh_hold *sh)
{
	struct ipcd_attach c, l;
	struct ipcd_conn ca, cb;
	struct stat sa, sb;
	uint8_t lo[16];
	uint64_t id;
	uint32_t bid;
	uint16_t port;
	int lfd, ta, ta2, tb;

	v4(lo, 127, 0, 0, 1);
	attach_or_die(m, "it-hold-c", &c);
	attach_or_die(m, "it-hold-l", &l);
	T_CHECK_EQ(bind_listen(&l, lo, 0, 0, 4, &bid, &port, &lfd), 0);
	hold_pair(&c, &l, lo, port, bid, lfd, &ca, &cb);
	id = ca.conn_id;
	ta = take_hold(m, &c, id, IPCD_CLOSE_A, &sa);
	ta2 = dup(ta);		/* a second holder's copy, as fork makes */
	T_CHECK(ta2 >= 0);
	T_CHECK_EQ(ipcd_spsc_write(&ca.tx, "abc", 3), 3);
	/* A's process lets its end go without a CLOSE: no mark, no closed bit. */
	ipcd_conn_release(&ca);
	close(ta);
	/* One copy is left: the token is still there (a request later, it still is). */
	hold_refused(&c, id, IPCD_CLOSE_A, 0, -EEXIST);
	T_CHECK_EQ(mon_fds_on(m, &sa), 1);
	peer_open(&cb);
	child_step(&sh->sync, 1);

	/* The last copy: A is closed for it, as for a process that died. */
	close(ta2);
	end_gone(&cb, 3, 0);
	T_CHECK_EQ(mon_fds_on(m, &sa), 0);
	hold_refused(&c, id, IPCD_CLOSE_A, 0, -ENOENT);
	T_CHECK_EQ(close_id(&c, id), -ENOENT);	/* a late CLOSE finds it closed */
	child_step(&sh->sync, 2);

	/* B the same way: both ends are done, the connection is freed. */
	tb = take_hold(m, &l, id, IPCD_CLOSE_B, &sb);
	ipcd_conn_release(&cb);
	close(tb);
	child_step(&sh->sync, 3);
	T_CHECK_EQ(mon_fds_on(m, &sb), 0);
	hold_refused(&l, id, IPCD_CLOSE_B, 0, -ENOENT);
	close(lfd);
	ipcd_detach(&c);
	ipcd_detach(&l);
	_exit(0);
}

static void test_hold_hangup(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_hold *sh;
	pid_t pid;
	int base;

	sh = hold_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		hold_hup_child(m, sh);
	parent_step(&sh->sync, 1, pid);
	expect_hold_counts(m, 1, 0, 0, 0, 0);
	assert_int_equal(conns_in_state(m, "established"), 1);
	ipcd_store_release(&sh->sync.go, 1);
	parent_step(&sh->sync, 2, pid);
	expect_hold_counts(m, 1, 1, 1, 0, 0);
	assert_int_equal(conns_in_state(m, "half-closed"), 1);
	hold_count(m, "freed", 0);
	ipcd_store_release(&sh->sync.go, 2);
	parent_step(&sh->sync, 3, pid);
	expect_hold_counts(m, 2, 2, 2, 0, 0);
	assert_int_equal(t_ctl_wait_num(m, "counters", "freed", 1), 1);
	expect_no_connections(m);
	ipcd_store_release(&sh->sync.go, 3);
	hold_case_end(m, sh, pid, base, 1);
	T_PASSED(s);
}

/* ---- 26. the closed bit set before the hang-up: a normal close ------------- */

static void __attribute__((noreturn)) hold_bit_child(const struct t_mon *m, struct sh_hold *sh)
{
	struct ipcd_attach c, l;
	struct ipcd_conn ca, cb;
	struct stat sa, sb;
	uint8_t lo[16];
	uint64_t id;
	uint32_t bid;
	uint16_t port;
	int lfd, ta, tb;

	v4(lo, 127, 0, 0, 1);
	attach_or_die(m, "it-hold-c", &c);
	attach_or_die(m, "it-hold-l", &l);
	T_CHECK_EQ(bind_listen(&l, lo, 0, 0, 4, &bid, &port, &lfd), 0);
	hold_pair(&c, &l, lo, port, bid, lfd, &ca, &cb);
	id = ca.conn_id;
	tb = take_hold(m, &l, id, IPCD_CLOSE_B, &sb);
	/*
	 * B closes with A's bytes unread: its library marks the rings and sets
	 * IPCD_CONN_CLOSED_B; the CLOSE it would send never comes. Were this a
	 * death, the unread bytes would make it a reset.
	 */
	T_CHECK_EQ(ipcd_spsc_write(&ca.tx, "unread", 6), 6);
	close_by_bit(&cb);
	close(tb);
	child_step(&sh->sync, 1);
	T_CHECK_EQ(mon_fds_on(m, &sb), 0);
	T_CHECK_EQ(ipcd_load_acquire(&ca.ctl->reset), 0);
	T_CHECK_EQ(drain_to_eof(&ca), 0);
	T_CHECK_EQ(ipcd_spsc_write(&ca.tx, "x", 1), -EPIPE);
	T_CHECK_EQ(close_id(&l, id), -ENOENT);	/* the late CLOSE finds it closed */
	hold_refused(&l, id, IPCD_CLOSE_B, 0, -ENOENT);
	/* A too: both closed, the connection is freed. */
	ta = take_hold(m, &c, id, IPCD_CLOSE_A, &sa);
	close_by_bit(&ca);
	close(ta);
	child_step(&sh->sync, 2);
	T_CHECK_EQ(mon_fds_on(m, &sa), 0);
	close(lfd);
	ipcd_detach(&c);
	ipcd_detach(&l);
	_exit(0);
}

static void test_hold_closed_bit(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_hold *sh;
	pid_t pid;
	int base;

	sh = hold_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		hold_bit_child(m, sh);
	parent_step(&sh->sync, 1, pid);
	expect_hold_counts(m, 1, 1, 0, 1, 0);
	assert_int_equal(conns_in_state(m, "half-closed"), 1);
	assert_int_equal(t_count_str(tout.out, "\"reset_b\":false"), 1);
	ipcd_store_release(&sh->sync.go, 1);
	parent_step(&sh->sync, 2, pid);
	expect_hold_counts(m, 2, 2, 0, 2, 0);
	assert_int_equal(t_ctl_wait_num(m, "counters", "freed", 1), 1);
	ipcd_store_release(&sh->sync.go, 2);
	hold_case_end(m, sh, pid, base, 1);
	T_PASSED(s);
}

/* ---- 27. the owner dies, a copy of the token lives: the end stays open ----- */

static void __attribute__((noreturn)) hold_owner_child(const struct t_mon *m, struct sh_hold *sh)
{
	struct ipcd_attach c, l;
	struct ipcd_conn ca, cb;
	struct stat sa;
	uint8_t lo[16];
	uint64_t id;
	uint32_t bid;
	uint16_t port;
	int lfd, ta, ta2;

	v4(lo, 127, 0, 0, 1);
	attach_or_die(m, "it-hold-c", &c);
	attach_or_die(m, "it-hold-l", &l);
	T_CHECK_EQ(bind_listen(&l, lo, 0, 0, 4, &bid, &port, &lfd), 0);
	hold_pair(&c, &l, lo, port, bid, lfd, &ca, &cb);
	id = ca.conn_id;
	ta = take_hold(m, &c, id, IPCD_CLOSE_A, &sa);
	ta2 = dup(ta);
	T_CHECK(ta2 >= 0);
	close(ta);
	/* The owner dies; another holder keeps the token and A's mapping. */
	ipcd_detach(&c);
	child_step(&sh->sync, 1);

	/* Reaped (the parent saw it go), and A is as open as it was. */
	peer_open(&cb);
	T_CHECK_EQ(mon_fds_on(m, &sa), 1);
	/* Its port too: bound while a holder lives, as the kernel's stays with the socket. */
	T_CHECK_EQ(bind_only(&l, lo, ca.ctl->a_port), -EADDRINUSE);
	pass(&ca, &cb, "alive");
	pass(&cb, &ca, "too");
	hold_refused(&l, id, IPCD_CLOSE_A, 0, -EEXIST);	/* its user's: still A's token */
	/* B writes what A never reads: unread data in the dead end's ring at hang-up. */
	T_CHECK_EQ(ipcd_spsc_write(&cb.tx, "late", 4), 4);
	T_CHECK_EQ(ipcd_spsc_write(&ca.tx, "last", 4), 4);
	ipcd_conn_release(&ca);
	close(ta2);
	end_gone(&cb, 4, IPCD_CONN_RESET_A);
	T_CHECK_EQ(mon_fds_on(m, &sa), 0);
	child_step(&sh->sync, 2);
	do_close(&l, &cb);
	close(lfd);
	ipcd_detach(&l);
	_exit(0);
}

static void test_hold_owner_dies(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_hold *sh;
	pid_t pid;
	int base;

	sh = hold_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		hold_owner_child(m, sh);
	parent_step(&sh->sync, 1, pid);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 1), 1);
	expect_hold_counts(m, 1, 0, 0, 0, 0);
	assert_int_equal(conns_in_state(m, "established"), 1);
	ipcd_store_release(&sh->sync.go, 1);
	parent_step(&sh->sync, 2, pid);
	expect_hold_counts(m, 1, 1, 1, 0, 1);
	assert_int_equal(conns_in_state(m, "half-closed"), 1);
	assert_int_equal(t_count_str(tout.out, "\"reset_a\":true"), 1);
	ipcd_store_release(&sh->sync.go, 2);
	hold_case_end(m, sh, pid, base, 1);
	T_PASSED(s);
}

/* ---- 28. bytes unread in the end's ring at the hang-up: a reset ------------- */

static void __attribute__((noreturn)) hold_unread_child(const struct t_mon *m, struct sh_hold *sh)
{
	struct ipcd_attach c, l;
	struct ipcd_conn ca, cb;
	struct stat sb;
	uint8_t lo[16];
	uint64_t id;
	uint32_t bid;
	uint16_t port;
	int lfd, tb;

	v4(lo, 127, 0, 0, 1);
	attach_or_die(m, "it-hold-c", &c);
	attach_or_die(m, "it-hold-l", &l);
	T_CHECK_EQ(bind_listen(&l, lo, 0, 0, 4, &bid, &port, &lfd), 0);
	hold_pair(&c, &l, lo, port, bid, lfd, &ca, &cb);
	id = ca.conn_id;
	tb = take_hold(m, &l, id, IPCD_CLOSE_B, &sb);
	pass(&cb, &ca, "answer");
	T_CHECK_EQ(ipcd_spsc_write(&ca.tx, "request", 7), 7);	/* B never reads it */
	ipcd_conn_release(&cb);
	close(tb);
	end_gone(&ca, 0, IPCD_CONN_RESET_B);
	T_CHECK_EQ(mon_fds_on(m, &sb), 0);
	child_step(&sh->sync, 1);
	do_close(&c, &ca);
	close(lfd);
	ipcd_detach(&c);
	ipcd_detach(&l);
	_exit(0);
}

static void test_hold_unread(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_hold *sh;
	pid_t pid;
	int base;

	sh = hold_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		hold_unread_child(m, sh);
	parent_step(&sh->sync, 1, pid);
	expect_hold_counts(m, 1, 1, 1, 0, 1);
	assert_int_equal(conns_in_state(m, "half-closed"), 1);
	assert_int_equal(t_count_str(tout.out, "\"reset_b\":true"), 1);
	ipcd_store_release(&sh->sync.go, 1);
	hold_case_end(m, sh, pid, base, 1);
	T_PASSED(s);
}

/* ---- 29. real processes hold the tokens: SIGKILL and exit hang them up ------ */

/*
 * Fork a holder of token @t: it keeps that and nothing else of ours (not
 * the control sockets: the monitor must see their owners go) and waits for
 * @leave (then exits) or its SIGKILL.
 */
static pid_t fork_holder(struct sh_hold *sh, int t, const uint32_t *leave)
{
	pid_t pid;

	ipcd_store_release(&sh->ready, 0);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0) {
		keep_only(t);
		ipcd_store_release(&sh->ready, 1);
		if (leave)
			WAIT_FLAG(leave, 1);
		else
			for (;;)
				pause();
		_exit(0);
	}
	WAIT_FLAG(&sh->ready, 1);
	return pid;
}

static void __attribute__((noreturn)) hold_proc_child(const struct t_mon *m, struct sh_hold *sh)
{
	struct ipcd_attach c, l;
	struct ipcd_conn ca, cb;
	struct stat sa, sb;
	uint8_t lo[16];
	uint64_t id;
	uint32_t bid, *lv;
	uint16_t port;
	int lfd, ta, tb;
	pid_t ga, gb;

	lv = t_shm_alloc(sizeof(*lv));
	v4(lo, 127, 0, 0, 1);
	attach_or_die(m, "it-hold-c", &c);
	attach_or_die(m, "it-hold-l", &l);
	T_CHECK_EQ(bind_listen(&l, lo, 0, 0, 4, &bid, &port, &lfd), 0);
	hold_pair(&c, &l, lo, port, bid, lfd, &ca, &cb);
	id = ca.conn_id;
	ta = take_hold(m, &c, id, IPCD_CLOSE_A, &sa);
	T_CHECK_EQ(ipcd_spsc_write(&ca.tx, "from-a", 6), 6);
	/* A forked holder keeps A's token; then the owner lets go of it and dies. */
	ga = fork_holder(sh, ta, NULL);
	close(ta);
	ipcd_conn_release(&ca);
	ipcd_detach(&c);
	child_step(&sh->sync, 1);

	peer_open(&cb);
	T_CHECK_EQ(mon_fds_on(m, &sa), 1);
	/* The holder is killed: the kernel closes its token, the monitor A. */
	T_CHECK_EQ(t_kill_wait(ga), 128 + SIGKILL);
	end_gone(&cb, 6, 0);
	T_CHECK_EQ(mon_fds_on(m, &sa), 0);
	child_step(&sh->sync, 2);

	/* B's token goes to another holder; B's owner, the listener, dies too. */
	tb = take_hold(m, &l, id, IPCD_CLOSE_B, &sb);
	gb = fork_holder(sh, tb, lv);
	close(tb);
	ipcd_conn_release(&cb);
	hold_refused(&l, id, IPCD_CLOSE_B, 0, -EEXIST);		/* still held */
	close(lfd);
	ipcd_detach(&l);
	child_step(&sh->sync, 3);

	/* The holder exits: its exit closes B, the connection is freed. */
	T_CHECK_EQ(mon_fds_on(m, &sb), 1);
	ipcd_store_release(lv, 1);
	T_CHECK_EQ(t_wait(gb, T_WAIT_MS), 0);
	child_step(&sh->sync, 4);
	T_CHECK_EQ(mon_fds_on(m, &sb), 0);
	t_shm_free(lv, sizeof(*lv));
	_exit(0);
}

static void test_hold_killed_holder(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_hold *sh;
	pid_t pid;
	int base;

	sh = hold_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		hold_proc_child(m, sh);
	parent_step(&sh->sync, 1, pid);
	/* A's owner is gone (the holder has none of its control socket): A is not. */
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 1), 1);
	expect_hold_counts(m, 1, 0, 0, 0, 0);
	assert_int_equal(conns_in_state(m, "established"), 1);
	ipcd_store_release(&sh->sync.go, 1);
	parent_step(&sh->sync, 2, pid);
	expect_hold_counts(m, 1, 1, 1, 0, 0);
	assert_int_equal(conns_in_state(m, "half-closed"), 1);
	ipcd_store_release(&sh->sync.go, 2);
	/* The listener is gone (reaped: no processes left), B is not: it has a holder. */
	parent_step(&sh->sync, 3, pid);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	expect_hold_counts(m, 2, 1, 1, 0, 0);
	assert_int_equal(conns_in_state(m, "half-closed"), 1);
	hold_count(m, "freed", 0);
	ipcd_store_release(&sh->sync.go, 3);
	parent_step(&sh->sync, 4, pid);
	expect_hold_counts(m, 2, 2, 2, 0, 0);
	assert_int_equal(t_ctl_wait_num(m, "counters", "freed", 1), 1);
	expect_no_connections(m);
	ipcd_store_release(&sh->sync.go, 4);
	hold_case_end(m, sh, pid, base, 1);
	T_PASSED(s);
}

/* ---- 30. a lane's listener dies: a kit whose B end has a token stays -------- */

static void __attribute__((noreturn)) hold_kit_child(const struct t_mon *m, struct sh_hold *sh)
{
	struct ipcd_attach l, c;
	struct ipcd_conn_resp resp;
	struct ipcd_conn c0, b0, kb[2];
	struct kit k[2];
	struct stat sb;
	uint8_t lo[16];
	uint16_t port;
	uint32_t id, lane, lane_b, seq = 0, i;
	int lfd, cl, ll, tb;

	v4(lo, 127, 0, 0, 1);
	attach_or_die(m, "it-hold-l", &l);
	attach_or_die(m, "it-hold-c", &c);
	T_CHECK_EQ(bind_listen_flags(&l, lo, 0, 0, 8, IPCD_LISTEN_LANES, &id, &port, &lfd), 0);
	T_CHECK_EQ(connect_lane(&c, lo, port, id, 0, &c0, &resp, &cl, &lane), 0);
	T_CHECK_EQ(accept_lane(&l, id, 0, &b0, &resp, &ll, &lane_b), 0);
	take_kits(&c, lane, 2, lo, port, c0.tx.capacity, &seq, k);
	for (i = 0; i < 2; i++) {
		lane_send_kit(cl, &k[i]);
		lane_recv_kit(ll, &k[i], &kb[i]);
		T_CHECK_EQ(kit_accepted(&l, k[i].id), 0);
	}
	/* Kit 0's B end is shared (a worker holds the token); kit 1's is not. */
	tb = take_hold(m, &l, k[0].id, IPCD_CLOSE_B, &sb);
	pass(&k[0].a, &kb[0], "hi");
	/* The listener dies before any LANE_DONE: the lane ends with it. */
	ipcd_detach(&l);
	ipcd_conn_release(&kb[1]);
	ipcd_conn_release(&b0);
	close(ll);
	close(lfd);
	end_gone(&k[1].a, 0, 0);
	end_gone(&c0, 0, 0);
	child_step(&sh->sync, 1);

	/* Neither the death nor the lane's end closed kit 0's B: not reset, not requeued. */
	peer_open(&k[0].a);
	T_CHECK_EQ(mon_fds_on(m, &sb), 1);
	pass(&k[0].a, &kb[0], "still");
	pass(&kb[0], &k[0].a, "here");
	ipcd_conn_release(&kb[0]);
	close(tb);
	end_gone(&k[0].a, 0, 0);
	T_CHECK_EQ(mon_fds_on(m, &sb), 0);
	child_step(&sh->sync, 2);
	for (i = 0; i < 2; i++) {
		do_close(&c, &k[i].a);
		kit_close_fds(&k[i]);
	}
	do_close(&c, &c0);
	close(cl);
	ipcd_detach(&c);
	_exit(0);
}

static void test_hold_lane_kit(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_hold *sh = t_shm_alloc(sizeof(*sh));
	pid_t pid;
	int base;

	lane_case_start(m, &base);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		hold_kit_child(m, sh);
	parent_step(&sh->sync, 1, pid);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 1), 1);
	assert_int_equal(lane_num(m, "open"), 0);
	assert_int_equal(lane_num(m, "kits_requeued"), 0);
	expect_hold_counts(m, 1, 0, 2, 0, 0);
	assert_int_equal(conns_in_state(m, "established"), 1);
	assert_int_equal(conns_in_state(m, "half-closed"), 2);
	ipcd_store_release(&sh->sync.go, 1);
	parent_step(&sh->sync, 2, pid);
	expect_hold_counts(m, 1, 1, 3, 0, 0);
	assert_int_equal(conns_in_state(m, "half-closed"), 3);
	ipcd_store_release(&sh->sync.go, 2);
	child_ok(pid);
	hold_count(m, "freed", 3);
	lanes_all_gone(m, base);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 40-43. limits (conns.c "Limits", docs/limits.md) ------------------------ */

/* One connection per listener in each test but the flood's; small rings. */
#define CONF_LIMITS	"max_process_connections = 3\nring_bytes = 4096\n"

static int pair_req(struct ipcd_attach *a, uint32_t kind, struct ipcd_conn *conn)
{
	struct ipcd_pair_req r = { .kind = kind };
	struct ipcd_conn_resp resp;
	int rc = call(a, IPCD_OP_PAIR, &r, sizeof(r), &resp, sizeof(resp));

	if (rc == 0)
		take_conn_fd(a, resp.conn_id, false, conn);
	return rc;
}

static void pair_close(struct ipcd_attach *a, struct ipcd_conn *conn)
{
	uint64_t id = conn->conn_id;

	ipcd_conn_close(conn);
	T_CHECK_EQ(close_end(a, id, IPCD_CLOSE_A, 0), 0);
	T_CHECK_EQ(close_end(a, id, IPCD_CLOSE_B, 0), 0);
}

/* Connect @c to (@port, @id) of @l and accept it: the answer to the CONNECT. */
static int conn_pair(struct ipcd_attach *c, struct ipcd_attach *l, const uint8_t lo[16],
		     uint16_t port, uint32_t id, struct ipcd_conn *ce, struct ipcd_conn *le)
{
	struct ipcd_conn_resp resp;
	int rc = do_connect(c, lo, port, ce, &resp);

	if (rc == 0)
		T_CHECK_EQ(do_accept(l, id, le, &resp), 0);
	return rc;
}

static void __attribute__((noreturn)) limit_conns_child(const struct t_mon *m)
{
	struct ipcd_attach l1, l2, c, d;
	struct ipcd_conn ce[3], le[3], de, de2, pe[2], x, y;
	uint32_t id1, id2, i;
	uint16_t p1, p2;
	uint8_t lo[16];
	int f1, f2;

	attach_or_die(m, "it-lim-l1", &l1);
	attach_or_die(m, "it-lim-l2", &l2);
	attach_or_die(m, "it-lim-c", &c);
	attach_or_die(m, "it-lim-d", &d);
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen(&l1, lo, 0, 0, 16, &id1, &p1, &f1), 0);
	T_CHECK_EQ(bind_listen(&l2, lo, 0, 0, 16, &id2, &p2, &f2), 0);
	for (i = 0; i < 3; i++)
		T_CHECK_EQ(conn_pair(&c, &l1, lo, p1, id1, &ce[i], &le[i]), 0);
	/* c made 3: its own count says EMFILE, wherever it connects. */
	T_CHECK_EQ(conn_pair(&c, &l2, lo, p2, id2, &x, &y), -EMFILE);
	/* l1 holds 3: a connector to it hears -EDQUOT (its library: ECONNREFUSED). */
	T_CHECK_EQ(conn_pair(&d, &l1, lo, p1, id1, &x, &y), -EDQUOT);
	/* Nobody else is held back. */
	T_CHECK_EQ(conn_pair(&d, &l2, lo, p2, id2, &de, &de2), 0);
	/* Pipes and socketpairs count as one connection each. */
	T_CHECK_EQ(pair_req(&d, IPCD_CONN_KIND_PIPE, &pe[0]), 0);
	T_CHECK_EQ(pair_req(&d, IPCD_CONN_KIND_UNIX, &pe[1]), 0);
	T_CHECK_EQ(pair_req(&d, IPCD_CONN_KIND_PIPE, &x), -EMFILE);
	/* A connection freed (both ends closed) is room again, for both processes. */
	do_close(&c, &ce[0]);
	do_close(&l1, &le[0]);
	T_CHECK_EQ(conn_pair(&c, &l1, lo, p1, id1, &ce[0], &le[0]), 0);
	pair_close(&d, &pe[0]);
	T_CHECK_EQ(pair_req(&d, IPCD_CONN_KIND_PIPE, &pe[0]), 0);
	for (i = 0; i < 3; i++) {
		do_close(&c, &ce[i]);
		do_close(&l1, &le[i]);
	}
	do_close(&d, &de);
	do_close(&l2, &de2);
	pair_close(&d, &pe[0]);
	pair_close(&d, &pe[1]);
	close(f1);
	close(f2);
	ipcd_detach(&d);
	ipcd_detach(&c);
	ipcd_detach(&l2);
	ipcd_detach(&l1);
	_exit(0);
}

static void test_limit_connections(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	pid_t pid;

	t_mon_write_config(m, CONF_LIMITS);
	t_mon_start(m);
	assert_int_equal(t_ctl_num(m, "status", "max_process_connections"), 3);
	pid = t_fork(T_CHILD_ALARM * 2);
	if (pid == 0)
		limit_conns_child(m);
	child_ok(pid);
	/* c's EMFILE, d's EDQUOT, d's third pair. */
	assert_int_equal(t_ctl_num(m, "counters", "limit_connections"), 3);
	assert_int_equal(t_ctl_num(m, "counters", "limit_memory"), 0);
	expect_no_connections(m);
	assert_int_equal(t_ctl_num(m, "status", "memory"), 0);
	t_mon_stop(m);
	T_PASSED(s);
}

/*
 * Memory: c connects to l1 until its own cap (max_process_memory) or the
 * host's (max_memory) refuses, with -ENOBUFS; then d, to l1 and to l2.
 * @host: the host's cap is the smaller one.
 */
static void __attribute__((noreturn)) limit_mem_child(const struct t_mon *m, bool host)
{
	struct ipcd_attach l1, l2, c, d;
	struct ipcd_conn ce[16], le[16], x, y;
	uint32_t id1, id2, i, n;
	uint16_t p1, p2;
	uint8_t lo[16];
	int f1, f2, rc;

	attach_or_die(m, "it-mem-l1", &l1);
	attach_or_die(m, "it-mem-l2", &l2);
	attach_or_die(m, "it-mem-c", &c);
	attach_or_die(m, "it-mem-d", &d);
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen(&l1, lo, 0, 0, 32, &id1, &p1, &f1), 0);
	T_CHECK_EQ(bind_listen(&l2, lo, 0, 0, 32, &id2, &p2, &f2), 0);
	for (n = 0; n < 16; n++) {
		rc = conn_pair(&c, &l1, lo, p1, id1, &ce[n], &le[n]);
		if (rc)
			break;
	}
	/* 1 MiB of ~130 KiB regions (64 KiB rings): a few, never all 16. */
	T_CHECK(n >= 2 && n < 16);
	T_CHECK_EQ(rc, -ENOBUFS);
	if (host) {
		/* The host is full: d too, wherever it connects, until c frees one. */
		T_CHECK_EQ(conn_pair(&d, &l2, lo, p2, id2, &x, &y), -ENOBUFS);
		do_close(&c, &ce[--n]);
		do_close(&l1, &le[n]);
		T_CHECK_EQ(conn_pair(&d, &l2, lo, p2, id2, &x, &y), 0);
	} else {
		/* c's memory and l1's are full, not d's nor l2's. */
		T_CHECK_EQ(conn_pair(&d, &l1, lo, p1, id1, &x, &y), -EDQUOT);
		T_CHECK_EQ(conn_pair(&d, &l2, lo, p2, id2, &x, &y), 0);
	}
	do_close(&d, &x);
	do_close(&l2, &y);
	for (i = 0; i < n; i++) {
		do_close(&c, &ce[i]);
		do_close(&l1, &le[i]);
	}
	close(f1);
	close(f2);
	ipcd_detach(&d);
	ipcd_detach(&c);
	ipcd_detach(&l2);
	ipcd_detach(&l1);
	_exit(0);
}

static void run_limit_memory(struct t_state *s, bool host)
{
	struct t_mon *m = &s->mon;
	pid_t pid;

	/* A process's cap is half the host's unless set ("auto"). */
	t_mon_write_config(m, host ? "max_memory = 1M\nmax_process_memory = 1M\nring_bytes = 65536\n"
				   : "max_process_memory = 1M\nring_bytes = 65536\n");
	t_mon_start(m);
	assert_int_equal(t_ctl_num(m, "status", host ? "max_memory" : "max_process_memory"),
			 1 << 20);
	pid = t_fork(T_CHILD_ALARM * 2);
	if (pid == 0)
		limit_mem_child(m, host);
	child_ok(pid);
	assert_int_equal(t_ctl_num(m, "counters", "limit_memory"), 2);
	assert_int_equal(t_ctl_num(m, "counters", "limit_connections"), 0);
	expect_no_connections(m);
	assert_int_equal(t_ctl_num(m, "status", "memory"), 0);
	t_mon_stop(m);
	T_PASSED(s);
}

static void test_limit_process_memory(void **state)
{
	run_limit_memory(*state, false);
}

static void test_limit_host_memory(void **state)
{
	run_limit_memory(*state, true);
}

/*
 * A flood of connects from one process does not starve another (issue #8):
 * the flooder pipelines CONNECTs to its own listener and never closes what
 * it gets; the table holds 64 connections, a process 8. Without the
 * per-process cap the flooder would take the whole table and the good
 * process's connects would fail with -ENOBUFS; without fairness in the
 * request loop they would wait behind the flood. The good process makes
 * GOOD_CONNS connections, one at a time, while the flood goes on.
 */
#define CONF_FLOOD	"max_connections = 64\nmax_process_connections = 8\nring_bytes = 4096\n"
#define GOOD_CONNS	200u
#define FLOOD_MAX_NS	(60 * T_NSEC_PER_SEC)

struct sh_flood {
	uint32_t port;
	uint32_t bind_id;
	uint32_t ready;
	uint32_t submitted;
	uint32_t answered;
	uint32_t refused;	/* -EMFILE answers */
	uint32_t other;		/* any other refusal: a failure */
	uint32_t good_done;
};

static void __attribute__((noreturn)) flood_child(const struct t_mon *m, struct sh_flood *sh)
{
	uint64_t end = ipcd_deadline(FLOOD_MAX_NS);
	struct ipcd_connect_req r = { 0 };
	struct ipcd_attach f, l;
	struct ipcd_req req;
	struct ipcd_resp resp;
	uint32_t id, held = 0;
	uint16_t port;
	uint8_t lo[16];
	int lfd;

	attach_or_die(m, "it-flood", &f);
	attach_or_die(m, "it-flood-l", &l);
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen(&l, lo, 0, 0, 64, &id, &port, &lfd), 0);
	memcpy(r.addr, lo, 16);
	r.port = port;
	memset(&req, 0, sizeof(req));
	req.opcode = IPCD_OP_CONNECT;
	req.len = sizeof(r);
	memcpy(req.body, &r, sizeof(r));
	ipcd_store_release(&sh->ready, 1);
	while (!ipcd_load_acquire(&sh->good_done) && ipcd_remaining(end) != 0) {
		/* Keep the request ring full; take answers (and the fds that precede them). */
		while (ipcd_reqq_submit(&f.cl, &req) == 0)
			ipcd_store_release(&sh->submitted, sh->submitted + 1);
		while (ipcd_spsc_recv(&f.cl.chan.resp, &resp, sizeof(resp)) == sizeof(resp)) {
			if (resp.status == 0) {
				int fds[IPCD_CTL_CONN_NFDS];
				struct ipcd_ctl_msg msg;
				unsigned int j;

				T_CHECK_EQ(ipcd_attach_recv_msg(&f, &msg, fds, T_WAIT_MS), 0);
				for (j = 0; j < IPCD_CTL_CONN_NFDS; j++)
					close(fds[j]);
				held++;
			} else if (resp.status == -EMFILE) {
				ipcd_store_release(&sh->refused, sh->refused + 1);
			} else {
				fprintf(stderr, "[flooder] CONNECT: %d (%s)\n", resp.status,
					strerror(-resp.status));
				ipcd_store_release(&sh->other, sh->other + 1);
			}
			ipcd_store_release(&sh->answered, sh->answered + 1);
		}
	}
	/* The good process must have finished while the flood was still on. */
	T_CHECK(ipcd_load_acquire(&sh->good_done));
	while (sh->answered < sh->submitted) {
		if (ipcd_spsc_recv(&f.cl.chan.resp, &resp, sizeof(resp)) != sizeof(resp)) {
			T_CHECK(ipcd_spsc_wait_readable(&f.cl.chan.resp, 20000,
							(uint64_t)T_WAIT_MS * 1000000) == 0);
			continue;
		}
		if (resp.status == 0) {
			int fds[IPCD_CTL_CONN_NFDS];
			struct ipcd_ctl_msg msg;
			unsigned int j;

			T_CHECK_EQ(ipcd_attach_recv_msg(&f, &msg, fds, T_WAIT_MS), 0);
			for (j = 0; j < IPCD_CTL_CONN_NFDS; j++)
				close(fds[j]);
			held++;
		}
		ipcd_store_release(&sh->answered, sh->answered + 1);
	}
	T_CHECK(held <= 8);
	close(lfd);
	ipcd_detach(&l);
	ipcd_detach(&f);
	_exit(0);
}

static void test_connect_flood(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct sh_flood *sh = t_shm_alloc(sizeof(*sh));
	struct ipcd_attach g, l;
	struct ipcd_conn ge, le;
	uint32_t id, i, during;
	uint16_t port;
	uint8_t lo[16];
	pid_t pid;
	int lfd;

	t_mon_write_config(m, CONF_FLOOD);
	t_mon_start(m);
	pid = t_fork(T_CHILD_ALARM * 3);
	if (pid == 0)
		flood_child(m, sh);
	assert_true(t_wait_at_least(&sh->ready, 1, T_WAIT_MS));
	/* The flood is on: past its cap, refused by the hundred. */
	assert_true(t_wait_at_least(&sh->refused, 100, T_WAIT_MS));
	t_attach(m, "it-good", &g);
	t_attach(m, "it-good-l", &l);
	v4(lo, 127, 0, 0, 1);
	assert_int_equal(bind_listen(&l, lo, 0, 0, 4, &id, &port, &lfd), 0);
	during = ipcd_load_acquire(&sh->answered);
	for (i = 0; i < GOOD_CONNS; i++) {
		assert_int_equal(conn_pair(&g, &l, lo, port, id, &ge, &le), 0);
		do_close(&g, &ge);
		do_close(&l, &le);
	}
	during = ipcd_load_acquire(&sh->answered) - during;
	ipcd_store_release(&sh->good_done, 1);
	child_ok(pid);
	/* The flooder checked that the flood outlasted the good process; it only hit its cap. */
	fprintf(stderr, "flood: %u CONNECTs answered while the good process made %u "
		"connections (%u refused at the cap)\n", during, GOOD_CONNS, sh->refused);
	assert_int_equal(sh->other, 0);
	assert_int_equal(sh->answered, sh->submitted);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	close(lfd);
	ipcd_detach(&l);
	ipcd_detach(&g);
	expect_no_connections(m);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 44. a listener holds its port in the kernel (proto.h ipcd_listen_req.kfd) ---- */

/*
 * A first LISTEN must name the caller's kernel socket listening on the
 * bind's address and port: none, a socket listening elsewhere, or a socket
 * that does not listen is refused (-EPERM) and nothing listens. Named, the
 * monitor keeps a copy: once the caller closes its own, the port is still
 * held in the kernel (a kernel bind there fails) for as long as the
 * accelerated listener lives, and freed with it.
 */
static void __attribute__((noreturn)) kfd_child(const struct t_mon *m)
{
	struct ipcd_listen_req lr = { .backlog = 8 };
	struct ipcd_bind_req b = { 0 };
	struct ipcd_bind_resp br, br2;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct ipcd_attach a;
	uint8_t lo[16];
	int other, plain, k, lfd;

	attach_or_die(m, "it-kfd", &a);
	v4(lo, 127, 0, 0, 1);
	memcpy(b.addr, lo, 16);
	b.port = t_kernel_port(lo, 0);		/* ports free in the kernel, sockets ready */
	T_CHECK_EQ(call(&a, IPCD_OP_BIND, &b, sizeof(b), &br, sizeof(br)), 0);
	b.port = t_kernel_port(lo, 0);
	T_CHECK_EQ(call(&a, IPCD_OP_BIND, &b, sizeof(b), &br2, sizeof(br2)), 0);
	t_note_bind(br.id, lo, br.port, 0);
	t_note_bind(br2.id, lo, br2.port, 0);
	/* None; the kernel listener of another port; a socket that does not listen. */
	lr.id = br.id;
	lr.kfd = -1;
	T_CHECK_EQ(call(&a, IPCD_OP_LISTEN, &lr, sizeof(lr), NULL, 0), -EPERM);
	other = t_kernel_listener(br2.id);
	T_CHECK(other >= 0);
	lr.kfd = other;
	T_CHECK_EQ(call(&a, IPCD_OP_LISTEN, &lr, sizeof(lr), NULL, 0), -EPERM);
	plain = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	T_CHECK(plain >= 0);
	lr.kfd = plain;
	T_CHECK_EQ(call(&a, IPCD_OP_LISTEN, &lr, sizeof(lr), NULL, 0), -EPERM);
	/* A library before ABI 3.6 (a 16-byte body) names none: refused, not cut off. */
	T_CHECK_EQ(call(&a, IPCD_OP_LISTEN, &lr, IPCD_LISTEN_REQ_V35, NULL, 0), -EPERM);
	/* Its own: accepted, and the port stays the listener's after we close ours. */
	T_CHECK_EQ(listen_req(&a, br.id, 8, 0, 0, &lfd), 0);
	close(t_kernel_listener(br.id));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(br.port);
	k = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	T_CHECK(k >= 0);
	T_CHECK(bind(k, (struct sockaddr *)&sin, sizeof(sin)) < 0 && errno == EADDRINUSE);
	T_CHECK_EQ(unbind_id(&a, br.id), 0);
	/* Unbound: the monitor's copy is gone, and so is the kernel listener. */
	T_CHECK_EQ(bind(k, (struct sockaddr *)&sin, sizeof(sin)), 0);
	close(k);
	close(plain);
	close(other);
	close(lfd);
	ipcd_detach(&a);
	_exit(0);
}

static void test_listen_kernel_socket(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	pid_t pid;

	t_mon_write_config(m, CONF);
	t_mon_start(m);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		kfd_child(m);
	child_ok(pid);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	t_mon_stop(m);
	T_PASSED(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_BOTH(test_transfer),
		T_BOTH(test_rules),
		T_BOTH(test_reuseport),
		T_BOTH(test_limit_connections),
		T_BOTH(test_limit_process_memory),
		T_BOTH(test_limit_host_memory),
		T_BOTH(test_connect_flood),
		T_BOTH(test_listen_kernel_socket),
		T_BOTH(test_kill_endpoint),
		T_BOTH(test_kill_listener),
		T_BOTH(test_many_in_a_row),
		T_BOTH(test_deaf_client),
		T_BOTH(test_monitor_exit),
		T_BOTH(test_listener_fd),
		T_BOTH(test_ring_hint),
		T_BOTH(test_fallback),
		T_BOTH(test_close_end),
		T_BOTH(test_dead_while_queued),
		T_BOTH(test_lane_setup),
		T_BOTH(test_lane_done),
		T_BOTH(test_lane_death),
		T_BOTH(test_lane_forked_accepter),
		T_BOTH(test_lane_bad_body),
		T_BOTH(test_lane_requeue_order),
		T_BOTH(test_lane_kits_no_room),
		T_BOTH(test_lane_region_reuse),
		T_BOTH(test_lane_region_closed_bits),
		T_BOTH(test_lane_region_abnormal),
		T_BOTH(test_lane_region_one_bit),
		T_BOTH(test_lane_region_lane_end),
		T_BOTH(test_hold_requests),
		T_BOTH(test_hold_hangup),
		T_BOTH(test_hold_closed_bit),
		T_BOTH(test_hold_owner_dies),
		T_BOTH(test_hold_unread),
		T_BOTH(test_hold_killed_holder),
		T_BOTH(test_hold_lane_kit),
	};

	signal(SIGPIPE, SIG_IGN);
	if (getenv("T_FILTER"))		/* e.g. T_FILTER='test_rules*' */
		cmocka_set_test_filter(getenv("T_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
