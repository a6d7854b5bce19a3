/* SPDX-License-Identifier: MIT */
/*
 * fuzz_cluster.c - the monitor across hosts (monitor/cluster.c): frames from
 * other monitors and messages on the processes' RDMA channels.
 *
 * Another host's monitor is trusted no more than the network: its frames
 * (F_CONNECT, F_CONNECTED, F_END, F_MSG, F_GONE, F_ACCEPTED, F_PING and any
 * other type) come from the input, as fresh bytes or as one of our own sent
 * frames echoed back changed, with ids we gave out patched in. A process's
 * RDMA channel (IPCD_OP_RATTACH) carries struct ipcd_rmsg it writes. The
 * links go up and down, their window fills (-ENOBUFS), time passes
 * (cluster_tick), processes connect to other hosts (CONNECT with
 * IPCD_CONNECT_REMOTE), accept remote connections, close, and die. The
 * links themselves are fake_rlink.c: RDMA CM is not what is tested.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fx.h"
#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS		256
#define CL_MAGIC	0x52445049u	/* cluster.c's frame magic */

enum op {
	OP_REQ,
	OP_TURN,
	OP_LINK_UP,
	OP_LINK_DOWN,
	OP_FRAME,
	OP_RMSG,
	OP_SEND_RC,
	OP_TICK,
	OP_HANGUP,
	OP_CONNECT,
	OP_POKE_CONN,
	OP_ADMIN,
	OP_KLISTEN,		/* a kernel listening socket, for LISTEN to name */
	OP_COUNT
};

static const uint8_t host_b[4] = { 198, 51, 100, 2 };
static const uint8_t host_c[4] = { 203, 0, 113, 3 };
static unsigned int harvested;

/* Our frames' ids (pend, keys, connection ids) for the other side to answer with. */
static void harvest(void)
{
	for (; harvested < fx.n_sent; harvested++) {
		const uint8_t *b = fx.sent[harvested % FX_FRAMES].b;
		uint64_t v;
		uint32_t w;

		memcpy(&w, b + 8, 4);
		fx_val_add(w);
		memcpy(&v, b + 16, 8);
		fx_val_add(v);
		memcpy(&v, b + 24, 8);
		fx_val_add(v);
	}
}

static void turn(void)
{
	fx_turn();
	harvest();
}

/* A value the monitors gave out, at an even offset (a frame's u16 ports are not 4-aligned). */
static void patch(struct fz *f, uint8_t *b, size_t size)
{
	uint8_t p = fz_u8(f);
	uint64_t v = fx_val(fz_u8(f));
	size_t off = IPCD_MIN((p & 0x3f) * 2 % size, size - 4);

	if (!(p & 0x80))
		return;
	memcpy(b + off, &v, p & 0x40 && off + 8 <= size ? 8 : 4);
}

static void req(struct fz *f, struct fx_client *c)
{
	struct ipcd_req r;
	uint8_t how;

	fz_bytes(f, &r, sizeof(r));
	patch(f, r.body, sizeof(r.body));
	patch(f, r.body, sizeof(r.body));
	how = fz_u8(f);
	if (how & 1) {
		r.len = r.len % (IPCD_REQ_BODY + 1);
		r.opcode = r.opcode % (IPCD_OP_MAX + 1);
	}
	if (how & 2) {
		/* A connect to another host of the cluster, b or c (the port kept). */
		struct ipcd_connect_req cr;

		memcpy(&cr, r.body, sizeof(cr));
		memset(cr.addr, 0, 10);
		cr.addr[10] = cr.addr[11] = 0xff;
		memcpy(cr.addr + 12, how & 4 ? host_c : host_b, 4);
		cr.flags = IPCD_CONNECT_REMOTE;
		cr.pad = cr.pad2 = 0;
		memcpy(r.body, &cr, sizeof(cr));
		r.opcode = IPCD_OP_CONNECT;
		r.len = sizeof(cr);
	}
	(void)fx_submit(c, &r);
	turn();
}

static void frame(struct fz *f)
{
	unsigned int peer = fz_u8(f) % IPCD_MAX(fx_link_peers(), 1u);
	struct ipcd_rlink_frame fr;
	uint8_t how = fz_u8(f), k, n;

	uint8_t back = fz_u8(f);

	if ((how & 1) && fx.n_sent)	/* one of ours, echoed: its ids are right */
		fr = fx.sent[(fx.n_sent - 1 - back % IPCD_MIN(fx.n_sent, FX_FRAMES)) % FX_FRAMES];
	else
		memset(&fr, 0, sizeof(fr));
	if (!(how & 2)) {
		uint32_t magic = CL_MAGIC;
		uint16_t type = fz_u8(f) % 9;

		memcpy(fr.b, &magic, 4);
		memcpy(fr.b + 4, &type, 2);
	}
	n = fz_u8(f) % 8;
	for (k = 0; k < n; k++) {
		uint8_t off = fz_u8(f);

		fz_bytes(f, fr.b + off % (IPCD_RLINK_FRAME - 8), 8);
	}
	patch(f, fr.b, 128);
	patch(f, fr.b, 128);
	fx_link_frame(peer, &fr);
	turn();
}

static void rmsg(struct fz *f, struct fx_client *c)
{
	struct ipcd_rmsg m;
	uint8_t how = fz_u8(f);
	size_t len = sizeof(m);

	fz_bytes(f, &m, sizeof(m));
	if (!(how & 1)) {
		m.type = IPCD_RMSG_SEND;
		m.host = 2 + (how >> 1 & 1);
		m.len %= IPCD_RMSG_BODY + 1;
	}
	if (how & 4)
		m.key = fx_val(fz_u8(f));
	if (how & 8)
		len = fz_u8(f);	/* a short or long message */
	if (c->rchan < 0)
		return;
	(void)send(c->rchan, &m, IPCD_MIN(len, sizeof(m)), MSG_NOSIGNAL | MSG_DONTWAIT);
	turn();
}

static void run(struct fz *f)
{
	unsigned int ops;

	for (ops = 0; ops < MAX_OPS && fz_more(f); ops++) {
		uint8_t op = fz_u8(f) % OP_COUNT;
		struct fx_client *c = &fx.c[fz_u8(f) % FX_CLIENTS];

		switch (op) {
		case OP_REQ:
			req(f, c);
			break;
		case OP_TURN:
			turn();
			break;
		case OP_LINK_UP:
			fx_link_up(fz_u8(f) % IPCD_MAX(fx_link_peers(), 1u));
			turn();
			break;
		case OP_LINK_DOWN:
			fx_link_down(fz_u8(f) % IPCD_MAX(fx_link_peers(), 1u));
			turn();
			break;
		case OP_FRAME:
			frame(f);
			break;
		case OP_RMSG:
			rmsg(f, c);
			break;
		case OP_SEND_RC: {
			static const int rcs[] = { 0, -ENOBUFS, -ENOTCONN, -EIO };

			fx.send_rc = rcs[fz_u8(f) % 4];
			break;
		}
		case OP_TICK:
			(void)cluster_tick();
			harvest();
			break;
		case OP_HANGUP:
			if (c->live)
				fx_hangup(c);
			turn();
			break;
		case OP_CONNECT:
			(void)fx_connect((unsigned int)(c - fx.c), fz_u8(f) & 1 ? 1000 : 0,
					 IPCD_SHM_ABI_MINOR);
			break;
		case OP_POKE_CONN: {
			uint8_t j = fz_u8(f), len = fz_u8(f) % 16, bytes[16];
			uint32_t off = fz_u32(f);
			struct fx_map *m;

			fz_bytes(f, bytes, len);
			if (!c->n_maps)
				break;
			m = &c->maps[j % c->n_maps];
			off %= m->size;
			memcpy(m->base + off, bytes, IPCD_MIN((size_t)len, m->size - off));
			break;
		}
		case OP_ADMIN: {
			struct ipcd_ctl_query q = { .what = IPCD_Q_CLUSTER, .flags = fz_u8(f) & 1 };

			fx_admin(&q);
			break;
		}
		case OP_KLISTEN:
			(void)fx_klisten(c, fz_u8(f));
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { .p = data, .n = size };
	uint8_t setup = fz_u8(&f);
	unsigned int i;

	/*
	 * This host is 127.0.0.1 (loopback is local), the others are addresses
	 * of the documentation ranges (TEST-NET-2 and -3; TEST-NET-1 is this
	 * machine's in some sandboxes): nothing is ever sent to them, the links
	 * are fake.
	 */
	fx_start("spin_us = 0\n"
		 "max_processes = 8\n"
		 "max_connections = 64\n"
		 "ring_bytes = 4096\n"
		 "ring_max_bytes = 65536\n"
		 "peer = self 127.0.0.1\n"
		 "peer = b 198.51.100.2\n"
		 "peer = c 203.0.113.3 7000\n");
	harvested = 0;
	for (i = 0; i < 2; i++)
		(void)fx_connect(i, 0, IPCD_SHM_ABI_MINOR);
	if (setup & 1)	/* most inputs want a link up: save them the op */
		fx_link_up(0);
	run(&f);
	fx_stop();
	return 0;
}
