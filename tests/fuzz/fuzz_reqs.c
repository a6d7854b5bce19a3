/* SPDX-License-Identifier: MIT */
/*
 * fuzz_reqs.c - the monitor's requests, end to end, from processes that
 * write whatever they like into every region they share with it.
 *
 * An in-process monitor (fx.c) serves up to four registered processes. The
 * input is their program: requests (any 64 bytes, with ids the monitor gave
 * out patched in), turns of the monitor's loop, registrations (as root or
 * other users, libraries of a newer ABI minor), kernel listening sockets
 * for LISTEN to name, deaths, hold tokens closed, bytes on a control socket,
 * ipcdctl queries, and writes into what a process shares with the monitor:
 * its request channel (ring indices, record headers, doorbell_pending,
 * mon_wait), the doorbell queue in shared mode, and its connections' regions
 * (struct ipcd_conn_ctl words: reset, closed, holders, peer_key; ring
 * counters and indices), which the monitor reads at CLOSE, death, hang-up,
 * lane reuse and ipcdctl. So every handler of reqs.c and what it calls
 * (conns.c, ns.c, fallback.c, report.c, cluster.c without peers) decodes
 * hostile bodies against real state.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fx.h"
#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS		256

enum op {
	OP_REQ,
	OP_TURN,
	OP_CONNECT,
	OP_HANGUP,
	OP_POKE_CONN,		/* a process writes a connection region it maps */
	OP_POKE_CHAN,		/* ... its own request channel */
	OP_POKE_DB,		/* ... the shared doorbell queue */
	OP_HOLD_CLOSE,		/* a holder of an end or listener exits */
	OP_CTL_BYTE,		/* anything on the control socket is a violation */
	OP_ADMIN,
	OP_HOUSEKEEP,
	OP_KLISTEN,		/* a kernel listening socket, for LISTEN to name */
	OP_COUNT
};

static const uint32_t uids[] = { 0, 1000, 1001 };

/* Put a value the monitor gave out into the body: the fuzzer cannot guess ids. */
static void patch(struct fz *f, struct ipcd_req *req)
{
	uint8_t p = fz_u8(f);
	uint64_t v = fx_val(fz_u8(f));
	unsigned int off = (p & 0x3f) % IPCD_REQ_BODY & ~3u;

	if (!(p & 0x80))
		return;
	if (p & 0x40 && off <= IPCD_REQ_BODY - 8)
		memcpy(req->body + off, &v, 8);
	else
		memcpy(req->body + off, &v, 4);
}

/* Where in a connection region to write: anywhere, or in one of its control blocks. */
static size_t conn_spot(const struct fx_map *m, uint8_t how, uint32_t r)
{
	const struct ipcd_shm_hdr *h = (const void *)m->base;
	uint64_t off;

	switch (how % 4) {
	case 1:
		off = h->area[IPCD_AREA_CONN_CTL].off + r % sizeof(struct ipcd_conn_ctl);
		break;
	case 2:
		off = h->area[IPCD_AREA_CONN_A2B].off + r % (sizeof(struct ipcd_spsc_shm) + 64);
		break;
	case 3:
		off = h->area[IPCD_AREA_CONN_B2A].off + r % (sizeof(struct ipcd_spsc_shm) + 64);
		break;
	default:
		off = r;
		break;
	}
	return off % m->size;
}

static void run(struct fz *f)
{
	unsigned int ops;

	for (ops = 0; ops < MAX_OPS && fz_more(f); ops++) {
		uint8_t op = fz_u8(f) % OP_COUNT;
		struct fx_client *c = &fx.c[fz_u8(f) % FX_CLIENTS];

		switch (op) {
		case OP_REQ: {
			struct ipcd_req req;
			uint8_t how;

			fz_bytes(f, &req, sizeof(req));
			patch(f, &req);
			patch(f, &req);
			how = fz_u8(f);
			if (how & 1)	/* a well-formed envelope: the body is what matters */
				req.len = req.len % (IPCD_REQ_BODY + 1);
			if (how & 2)
				req.opcode = req.opcode % (IPCD_OP_MAX + 2);
			(void)fx_submit(c, &req);
			if (!(how & 4))
				fx_turn();
			break;
		}
		case OP_TURN:
			fx_turn();
			break;
		case OP_CONNECT: {
			uint8_t who = fz_u8(f);

			(void)fx_connect((unsigned int)(c - fx.c), uids[who % 3],
					 who & 0x80 ? IPCD_SHM_ABI_MINOR + 1 : IPCD_SHM_ABI_MINOR);
			break;
		}
		case OP_HANGUP:
			if (c->live)
				fx_hangup(c);
			fx_turn();
			break;
		case OP_POKE_CONN: {
			uint8_t j = fz_u8(f), how = fz_u8(f), len = fz_u8(f);
			uint32_t r = fz_u32(f);
			uint8_t bytes[16];
			struct fx_map *m;
			size_t off;

			fz_bytes(f, bytes, len % sizeof(bytes));
			if (!c->n_maps)
				break;
			m = &c->maps[j % c->n_maps];
			off = conn_spot(m, how, r);
			memcpy(m->base + off, bytes, IPCD_MIN(len % sizeof(bytes), m->size - off));
			break;
		}
		case OP_POKE_CHAN: {
			uint32_t off = fz_u32(f);
			uint8_t len = fz_u8(f), bytes[16];

			fz_bytes(f, bytes, len % sizeof(bytes));
			if (!c->reg.base)
				break;
			/* Mostly its rings' and ctl's control blocks: the interesting bytes. */
			if (off & 0x80000000u)
				off = (uint32_t)c->reg.hdr.area[off % 3].off + (off >> 8) % 640;
			off %= c->reg.size;
			memcpy((uint8_t *)c->reg.base + off, bytes,
			       IPCD_MIN(len % sizeof(bytes), c->reg.size - off));
			break;
		}
		case OP_POKE_DB: {
			uint16_t off = fz_u16(f);
			uint8_t len = fz_u8(f), bytes[16];
			size_t sz;
			uint8_t *q;

			fz_bytes(f, bytes, len % sizeof(bytes));
			q = c->glob.base ? ipcd_region_area(&c->glob, IPCD_AREA_GLOBAL_MPSC, &sz)
					 : NULL;
			if (q)
				memcpy(q + off % sz, bytes, IPCD_MIN(len % sizeof(bytes), sz - off % sz));
			break;
		}
		case OP_HOLD_CLOSE: {
			unsigned int j = fz_u8(f);

			if (!c->n_holds)
				break;
			j %= c->n_holds;
			close(c->holds[j]);
			c->holds[j] = c->holds[--c->n_holds];
			fx_turn();
			break;
		}
		case OP_CTL_BYTE:
			if (c->live) {
				(void)send(c->sock, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
				fx_turn();
			}
			break;
		case OP_ADMIN: {
			struct ipcd_ctl_query q;

			fz_bytes(f, &q, sizeof(q));
			if (!(q.flags & 0x80000000u))
				q.what %= IPCD_Q_CLUSTER + 2;
			fx_admin(&q);
			break;
		}
		case OP_HOUSEKEEP:
			fx_housekeep();
			break;
		case OP_KLISTEN:
			(void)fx_klisten(c, fz_u8(f));
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const modes[] = {
		"queue_mode = per-process\n",
		"queue_mode = shared\n",
	};
	/* The limits (monitor/conns.c): none that bite, or small ones either way. */
	static const char *const limits[] = {
		"",
		"max_process_connections = 6\nmax_process_memory = 1M\nmax_memory = 2M\n"
		"limit_action = kernel\n",
		"max_process_connections = 6\nmax_process_memory = 1M\nmax_memory = 2M\n"
		"limit_action = error\n",
	};
	char text[1024];
	struct fz f = { .p = data, .n = size };
	uint8_t setup = fz_u8(&f);
	unsigned int i;

	snprintf(text, sizeof(text),
		 "%s%s"
		 "spin_us = 0\n"
		 "skip_us = 1\n"
		 "max_processes = 8\n"
		 "max_connections = 64\n"
		 "ring_bytes = 4096\n"
		 "ring_max_bytes = 65536\n"
		 "request_ring_bytes = 4096\n"
		 "bind_rule = deny uid=1001 ports=5000-5999\n"
		 "bind_rule = allow uid=* ports=1-65535\n",
		 modes[setup & 1], limits[(setup >> 3) % 3]);
	fx_start(text);
	/* Two processes to begin with, as root and as a user: the rest is the input's. */
	for (i = 0; i < 2; i++)
		(void)fx_connect(i, uids[(setup >> (1 + i)) & 1], IPCD_SHM_ABI_MINOR);
	run(&f);
	fx_stop();
	return 0;
}
