/* SPDX-License-Identifier: MIT */
/*
 * it_monitor_conns.c - connection setup through a real ipcd-monitor:
 * CONNECT / ACCEPT / CLOSE between forked processes over 127.0.0.1, ::1 and a
 * wildcard listener, 64 MiB each way at once through the stream rings, EOF,
 * ECONNREFUSED, a full backlog, ACCEPT on someone else's bind, SO_REUSEPORT,
 * SIGKILL of either endpoint mid-transfer and of a listener with a backlog,
 * 1000 connections in a row (nothing left behind), and a process that never
 * reads its control socket (cut off; the others keep going).
 *
 * Children never use cmocka (T_CHECK); every wait is a hang guard, never a
 * timing assertion.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int bind_listen(struct ipcd_attach *a, const uint8_t addr[16], uint16_t port,
		       uint32_t flags, uint32_t backlog, uint32_t *id, uint16_t *port_out)
{
	struct ipcd_bind_req b = { .port = port, .flags = flags };
	struct ipcd_listen_req l = { .backlog = backlog };
	struct ipcd_bind_resp br;
	int rc;

	memcpy(b.addr, addr, 16);
	rc = call(a, IPCD_OP_BIND, &b, sizeof(b), &br, sizeof(br));
	if (rc)
		return rc;
	l.id = br.id;
	*id = br.id;
	*port_out = br.port;
	return call(a, IPCD_OP_LISTEN, &l, sizeof(l), NULL, 0);
}

/*
 * The CONN_FD message for @conn_id (sent before the response, so already
 * queued); LISTEN_READY messages on the way are counted in *@ready.
 */
static void take_conn_fd(struct ipcd_attach *a, uint64_t conn_id, bool acceptor,
			 struct ipcd_conn *conn, unsigned int *ready)
{
	for (;;) {
		struct ipcd_ctl_msg m;
		int fd, rc = ipcd_attach_recv_msg(a, &m, &fd, T_WAIT_MS);

		T_CHECK_EQ(rc, 0);
		if (m.type == IPCD_CTL_LISTEN_READY) {
			T_CHECK_EQ(fd, -1);
			if (ready)
				(*ready)++;
			continue;
		}
		T_CHECK_EQ(m.type, IPCD_CTL_CONN_FD);
		T_CHECK_EQ(m.conn_id, conn_id);
		T_CHECK(fd >= 0);
		T_CHECK_EQ(ipcd_conn_open(fd, m.region_size, acceptor, conn), 0);
		T_CHECK_EQ(conn->conn_id, conn_id);
		return;
	}
}

static int do_connect(struct ipcd_attach *a, const uint8_t addr[16], uint16_t port,
		      struct ipcd_conn *conn, struct ipcd_conn_resp *resp, unsigned int *ready)
{
	struct ipcd_connect_req r = { .port = port };
	int rc;

	memcpy(r.addr, addr, 16);
	rc = call(a, IPCD_OP_CONNECT, &r, sizeof(r), resp, sizeof(*resp));
	if (rc == 0) {
		take_conn_fd(a, resp->conn_id, false, conn, ready);
		T_CHECK_EQ(conn->ctl->a_port, resp->self_port);
		T_CHECK_EQ(conn->ctl->b_port, resp->peer_port);
		T_CHECK(!memcmp(conn->ctl->b_addr, resp->peer_addr, 16));
	}
	return rc;
}

static int do_accept(struct ipcd_attach *a, uint32_t id, struct ipcd_conn *conn,
		     struct ipcd_conn_resp *resp, unsigned int *ready)
{
	struct ipcd_accept_req r = { .id = id };
	int rc = call(a, IPCD_OP_ACCEPT, &r, sizeof(r), resp, sizeof(*resp));

	if (rc == 0) {
		take_conn_fd(a, resp->conn_id, true, conn, ready);
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

/* Wait for a LISTEN_READY (other messages are a failure here). */
static void wait_listen_ready(struct ipcd_attach *a, uint32_t bind_id)
{
	struct ipcd_ctl_msg m;
	int fd;

	T_CHECK_EQ(ipcd_attach_recv_msg(a, &m, &fd, T_WAIT_MS), 0);
	T_CHECK_EQ(m.type, IPCD_CTL_LISTEN_READY);
	T_CHECK_EQ(m.bind_id, bind_id);
	T_CHECK_EQ(fd, -1);
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

	attach_or_die(m, "it-listen", &a);
	T_CHECK_EQ(bind_listen(&a, bind_addr, 0, 0, 16, &id, &port), 0);
	ipcd_store_release(&sh->port, port);
	wait_listen_ready(&a, id);
	T_CHECK_EQ(do_accept(&a, id, &conn, &resp, NULL), 0);
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
	T_CHECK_EQ(do_connect(&a, dst, (uint16_t)sh->port, &conn, &resp, NULL), 0);
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
	assert_int_equal(t_mon_maps_count(m, "ipcd-conn"), 0);
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

	attach_or_die(m, "it-listen", &a);
	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 1, &id, &port), 0);
	ipcd_store_release(&sh->bind_id, id);
	ipcd_store_release(&sh->port, port);
	WAIT_FLAG(&sh->queued, 1);
	wait_listen_ready(&a, id);
	/* The oldest first: the connector wrote "hello" and closed it while queued. */
	T_CHECK_EQ(do_accept(&a, id, &c1, &resp, NULL), 0);
	T_CHECK_EQ(drain_to_eof(&c1), 5);
	T_CHECK_EQ(do_accept(&a, id, &c2, &resp, NULL), 0);
	T_CHECK_EQ(do_accept(&a, id, &c3, &resp, NULL), -EAGAIN);
	T_CHECK_EQ(ipcd_spsc_write(&c2.tx, "pong", 4), 4);
	ipcd_store_release(&sh->accepted, 1);
	T_CHECK_EQ(drain_to_eof(&c2), 0);
	do_close(&a, &c1);
	do_close(&a, &c2);
	ipcd_detach(&a);
	_exit(0);
}

static void __attribute__((noreturn)) rules_connector(const struct t_mon *m, struct sh_rules *sh)
{
	struct ipcd_attach a;
	struct ipcd_conn_resp resp;
	struct ipcd_conn c1, c2, c3;
	struct ipcd_connect_req bad = { .flags = 1 };
	uint8_t lo[16], lo6[16], buf[8];
	uint64_t c1_id;

	attach_or_die(m, "it-connect", &a);
	v4(lo, 127, 0, 0, 1);
	v6_loop(lo6);
	WAIT_FLAG(&sh->port, 1);
	/* Nobody listens there (nor on ::1 at the listener's port). */
	T_CHECK_EQ(do_connect(&a, lo, (uint16_t)(sh->port == 65535 ? 1 : sh->port + 1), &c1,
			      &resp, NULL), -ECONNREFUSED);
	T_CHECK_EQ(do_connect(&a, lo6, (uint16_t)sh->port, &c1, &resp, NULL), -ECONNREFUSED);
	T_CHECK_EQ(call(&a, IPCD_OP_CONNECT, &bad, sizeof(bad), NULL, 0), -EINVAL);
	/* listen(fd, 1) holds two connections, as Linux does. */
	T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &c1, &resp, NULL), 0);
	c1_id = c1.conn_id;
	T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &c2, &resp, NULL), 0);
	T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &c3, &resp, NULL), -EAGAIN);
	T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &c3, &resp, NULL), -EAGAIN);
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

/* Accept whatever comes (LISTEN_READY, then until -EAGAIN), closing each. */
static void __attribute__((noreturn)) rp_listener(const struct t_mon *m, struct sh_rp *sh,
						  unsigned int i)
{
	struct ipcd_attach a;

	attach_or_die(m, "it-reuseport", &a);
	uint8_t lo[16];
	uint32_t id;
	uint16_t port;

	v4(lo, 127, 0, 0, 1);
	if (i == 1)
		WAIT_FLAG(&sh->port, 1);
	T_CHECK_EQ(bind_listen(&a, lo, i ? (uint16_t)sh->port : 0, IPCD_BIND_REUSEPORT, 64, &id,
			       &port), 0);
	if (i == 0)
		ipcd_store_release(&sh->port, port);
	ipcd_fetch_add(&sh->listening, 1);
	while (!ipcd_load_acquire(&sh->stop)) {
		struct ipcd_conn_resp resp;
		struct ipcd_ctl_msg msg;
		struct ipcd_conn conn;
		int fd, rc = ipcd_attach_recv_msg(&a, &msg, &fd, 10);

		if (rc == -ETIMEDOUT)
			continue;
		T_CHECK_EQ(rc, 0);
		T_CHECK_EQ(msg.type, IPCD_CTL_LISTEN_READY);
		while (do_accept(&a, id, &conn, &resp, NULL) == 0) {
			do_close(&a, &conn);
			sh->got[i]++;
			ipcd_fetch_add(&sh->total, 1);
		}
	}
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
			T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &conn, &resp, NULL), 0);
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

		T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 4, &id, &port), 0);
		ipcd_store_release(&sh->port, port);
		wait_listen_ready(&a, id);
		T_CHECK_EQ(do_accept(&a, id, &conn, &resp, NULL), 0);
	} else {
		WAIT_FLAG(&sh->port, 1);
		T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &conn, &resp, NULL), 0);
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
	ipcd_store_release(&sh->survivor_full, 1);
	/* Bounded: the monitor marks the dead side's rings and wakes us. */
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

		attach_or_die(m, "it-listen", &a);
		v4(lo, 127, 0, 0, 1);
		T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 8, &id, &port), 0);
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
			T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &c[i], &resp, NULL), 0);
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
	unsigned int i, ready = 0;

	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 4, &id, &port), 0);
	ipcd_store_release(&sh->attached, 1);
	WAIT_FLAG(&sh->go, 1);
	for (i = 0; i < N_SEQ; i++) {
		struct ipcd_conn_resp r1, r2;
		struct ipcd_conn ca, cb;

		/* A self-connection: this process holds both ends. */
		T_CHECK_EQ(do_connect(&a, lo, port, &ca, &r1, &ready), 0);
		T_CHECK_EQ(do_accept(&a, id, &cb, &r2, &ready), 0);
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
	/* The LISTEN_READY of the last connection may still be queued. */
	T_CHECK(ready >= N_SEQ - 1);
	ipcd_store_release(&sh->done, 1);
	WAIT_FLAG(&sh->exit, 1);
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
	ipcd_store_release(&sh->go, 1);
	if (!t_wait_at_least(&sh->done, 1, T_WAIT_MS * 3))
		fail_msg("the child did not finish its %d connections", N_SEQ);
	expect_no_connections(m);
	assert_int_equal(t_mon_wait_fds(m, base), base);
	assert_int_equal(t_mon_maps_count(m, "ipcd-conn"), 0);
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
		struct ipcd_close_req cl;
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

	v4(lo, 127, 0, 0, 1);
	T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 128, &id, &port), 0);
	ipcd_store_release(&sh->port, port);
	while (!ipcd_load_acquire(&sh->stop)) {
		struct ipcd_conn_resp resp;
		struct ipcd_ctl_msg msg;
		struct ipcd_conn conn;
		int fd, rc = ipcd_attach_recv_msg(&a, &msg, &fd, 10);

		if (rc == -ETIMEDOUT)
			continue;
		T_CHECK_EQ(rc, 0);
		T_CHECK_EQ(msg.type, IPCD_CTL_LISTEN_READY);
		/* Accept and close: the deaf client never even maps its end. */
		while (do_accept(&a, id, &conn, &resp, NULL) == 0) {
			do_close(&a, &conn);
			ipcd_fetch_add(&sh->accepted, 1);
		}
	}
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
			T_CHECK_EQ(do_connect(&a, lo, (uint16_t)sh->port, &conn, &resp, NULL), 0);
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
		uint32_t id;
		uint16_t port;

		attach_or_die(m, "it-orphan", &a);
		v4(lo, 127, 0, 0, 1);
		T_CHECK_EQ(bind_listen(&a, lo, 0, 0, 4, &id, &port), 0);
		T_CHECK_EQ(do_connect(&a, lo, port, &ca, &r1, NULL), 0);
		T_CHECK_EQ(do_accept(&a, id, &cb, &r2, NULL), 0);
		ipcd_store_release(&sh->attached, 1);
		WAIT_FLAG(&sh->go, 1);
		/* The monitor is gone; the rings were never marked. */
		T_CHECK_EQ(ipcd_attach_recv_msg(&a, &(struct ipcd_ctl_msg){ 0 }, &(int){ 0 },
						T_WAIT_MS), -ECONNRESET);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_BOTH(test_transfer),
		T_BOTH(test_rules),
		T_BOTH(test_reuseport),
		T_BOTH(test_kill_endpoint),
		T_BOTH(test_kill_listener),
		T_BOTH(test_many_in_a_row),
		T_BOTH(test_deaf_client),
		T_BOTH(test_monitor_exit),
	};

	signal(SIGPIPE, SIG_IGN);
	if (getenv("T_FILTER"))		/* e.g. T_FILTER='test_rules*' */
		cmocka_set_test_filter(getenv("T_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
