/* SPDX-License-Identifier: MIT */
/*
 * fuzz_reqq.c - the monitor's request server (queues/reqq.c) draining
 * channels their clients can write anything into.
 *
 * Each client's channel is what an IPCD_REGION_CLIENT region holds: its
 * control words, a request ring the client writes and a response ring the
 * server writes; in shared mode, the doorbell queue is writable by every
 * client. Here each lives in its own malloc'ed block of exactly its size
 * (ASan sees any access outside). The input mixes honest submits and
 * response reads with arbitrary writes into rings, indices, record headers,
 * control words and doorbell slots (forged doorbells naming other slots or
 * generations), and the server's poll, sleep preparation, final drain and
 * slot reuse. Checked: the server hands the handler only 64-byte copies of
 * requests from the ring of the slot it names, of a client still served;
 * a client that breaks its ring is cut off, not the server; every call
 * returns, with counts within their budgets.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ipcd/reqq.h>

#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS		384
#define CLIENTS		4
#define MAX_SLOTS	8
#define DB_SLOTS	16

struct client {
	bool served;			/* added to the server, not deleted or faulted */
	uint32_t slot;
	struct ipcd_client_ctl *ctl;	/* the shared blocks */
	uint8_t *req_mem;
	uint8_t *resp_mem;
	size_t ring_size;
	struct ipcd_reqq_chan srv_chan;	/* the server's handles (it keeps the pointer) */
	struct ipcd_reqq_client cl;	/* the client's own */
};

static struct {
	struct ipcd_reqq_srv *srv;
	struct client c[CLIENTS];
	uint8_t *db_mem;
	size_t db_size;
	struct ipcd_mpsc db_cons;
	struct ipcd_mpsc db_prod;
	unsigned int handled;
	bool in_poll;
} t;

static struct client *client_of_slot(uint32_t slot)
{
	unsigned int i;

	for (i = 0; i < CLIENTS; i++)
		if (t.c[i].served && t.c[i].slot == slot)
			return &t.c[i];
	return NULL;
}

static bool inside(const void *p, const uint8_t *mem, size_t size)
{
	return (const uint8_t *)p >= mem && (const uint8_t *)p < mem + size;
}

static void on_request(void *arg, uint32_t slot, const struct ipcd_req *req)
{
	struct client *c = client_of_slot(slot);
	struct ipcd_resp resp = { .opcode = req->opcode, .cookie = req->cookie };
	unsigned int i;
	int rc;

	(void)arg;
	FZ_CHECK(t.in_poll);
	FZ_CHECK(c != NULL);	/* only a slot being served */
	for (i = 0; i < CLIENTS; i++)	/* a private copy, never the shared ring */
		FZ_CHECK(!t.c[i].req_mem || !inside(req, t.c[i].req_mem, t.c[i].ring_size));
	t.handled++;
	/* As the monitor: answer, and cut off a client whose response ring is broken. */
	rc = ipcd_reqq_srv_respond(t.srv, slot, &resp);
	FZ_CHECK(rc == 0 || rc == -EAGAIN || rc == -EPIPE || rc == -EPROTO);
	if (rc || (req->flags & 1)) {	/* flags & 1: as a handler that kills its client */
		ipcd_reqq_srv_del(t.srv, slot);
		c->served = false;
	}
}

static void on_fault(void *arg, uint32_t slot, int err)
{
	struct client *c = client_of_slot(slot);

	(void)arg;
	FZ_CHECK(c != NULL);
	FZ_CHECK(err == -EPROTO || err == -EMSGSIZE);
	ipcd_reqq_srv_del(t.srv, slot);	/* clients_kill() */
	c->served = false;
}

static const struct ipcd_reqq_ops ops = { .request = on_request, .fault = on_fault };

/* Zeroed, as aligned as a region's areas are, of exactly @size bytes (for ASan). */
static void *block_alloc(size_t size)
{
	void *p;

	if (posix_memalign(&p, IPCD_CACHE_GUARD, size))
		return NULL;
	return memset(p, 0, size);
}

/* A fresh channel for client @c, over blocks of exactly their size. */
static bool client_make(struct client *c, uint32_t ring_bytes)
{
	c->ring_size = ipcd_spsc_mem_size(ring_bytes);
	c->ctl = block_alloc(sizeof(*c->ctl));
	c->req_mem = block_alloc(c->ring_size);
	c->resp_mem = block_alloc(c->ring_size);
	if (!c->ctl || !c->req_mem || !c->resp_mem)
		return false;
	if (ipcd_spsc_init(c->req_mem, ring_bytes, sizeof(struct ipcd_req), 0) ||
	    ipcd_spsc_init(c->resp_mem, ring_bytes, sizeof(struct ipcd_resp), 0))
		return false;
	c->srv_chan.ctl = c->ctl;
	c->cl.chan.ctl = c->ctl;
	if (ipcd_spsc_attach(&c->srv_chan.req, c->req_mem, c->ring_size) ||
	    ipcd_spsc_attach(&c->srv_chan.resp, c->resp_mem, c->ring_size) ||
	    ipcd_spsc_attach(&c->cl.chan.req, c->req_mem, c->ring_size) ||
	    ipcd_spsc_attach(&c->cl.chan.resp, c->resp_mem, c->ring_size))
		return false;
	c->cl.db = t.db_mem ? &t.db_prod : NULL;
	c->cl.wake_fd = ipcd_reqq_srv_wake_fd(t.srv);
	return true;
}

static void client_free(struct client *c)
{
	free(c->ctl);
	free(c->req_mem);
	free(c->resp_mem);
	memset(c, 0, sizeof(*c));
}

/* The shared block @what of client @c, and its size. */
static uint8_t *block(struct client *c, unsigned int what, size_t *size)
{
	switch (what % 3) {
	case 0:
		*size = c->ring_size;
		return c->req_mem;
	case 1:
		*size = c->ring_size;
		return c->resp_mem;
	default:
		*size = sizeof(*c->ctl);
		return (uint8_t *)c->ctl;
	}
}

enum op {
	OP_SUBMIT,
	OP_SUBMIT_LAZY,
	OP_SCRIBBLE,		/* a client writes its own channel */
	OP_WORD,		/* ... one of its ring indices */
	OP_HEADER,		/* ... a record header where the server looks */
	OP_DOORBELL,		/* any client writes a doorbell slot or the queue's tail */
	OP_POLL,
	OP_SLEEP,		/* prepare_sleep, wait without time, woken */
	OP_READ_RESP,
	OP_FINAL,		/* the client went away: drain_final */
	OP_DEL_ADD,		/* a slot changes hands */
	OP_COUNT
};

static void run(struct fz *f)
{
	unsigned int opn;

	for (opn = 0; opn < MAX_OPS && fz_more(f); opn++) {
		struct client *c = &t.c[fz_u8(f) % CLIENTS];

		switch (fz_u8(f) % OP_COUNT) {
		case OP_SUBMIT:
		case OP_SUBMIT_LAZY: {
			struct ipcd_req req;
			int rc;

			fz_bytes(f, &req, sizeof(req));
			if (!c->req_mem)
				break;
			rc = opn & 1 ? ipcd_reqq_submit(&c->cl, &req)
				     : ipcd_reqq_submit_lazy(&c->cl, &req);
			FZ_CHECK(rc == 0 || rc == -EAGAIN || rc == -EPIPE || rc == -EPROTO);
			break;
		}
		case OP_SCRIBBLE: {
			uint8_t what = fz_u8(f), len = fz_u8(f) % 64, bytes[64];
			uint16_t at = fz_u16(f);
			size_t size, off;
			uint8_t *mem;

			fz_bytes(f, bytes, len);
			if (!c->req_mem)
				break;
			mem = block(c, what, &size);
			off = at % size;
			memcpy(mem + off, bytes, IPCD_MIN((size_t)len, size - off));
			break;
		}
		case OP_WORD: {
			static const size_t words[] = {
				offsetof(struct ipcd_spsc_shm, tail),
				offsetof(struct ipcd_spsc_shm, head),
				offsetof(struct ipcd_spsc_shm, head_off),
				offsetof(struct ipcd_spsc_shm, cons_wait),
				offsetof(struct ipcd_spsc_shm, prod_wait),
				offsetof(struct ipcd_spsc_shm, prod_closed),
				offsetof(struct ipcd_spsc_shm, cons_closed),
			};
			uint8_t which = fz_u8(f);
			uint32_t v = fz_u32(f);

			if (!c->req_mem)
				break;
			memcpy((which & 0x80 ? c->resp_mem : c->req_mem) +
			       words[which % IPCD_ARRAY_SIZE(words)], &v, sizeof(v));
			break;
		}
		case OP_HEADER: {
			uint32_t len = fz_u32(f), delta = fz_u8(f);
			struct ipcd_spsc *r;
			uint32_t head;

			if (!c->req_mem)
				break;
			r = &c->srv_chan.req;
			head = ipcd_load_relaxed(&r->shm->head) + delta * 8;
			if (len & 0x80000000u)
				len = sizeof(struct ipcd_req) + (len & 7) - 4;	/* near 64 */
			*__ipcd_rec_at(r, head) = __ipcd_rec_pack(len, head);
			break;
		}
		case OP_DOORBELL: {
			struct ipcd_mpsc_shm *s = (void *)t.db_mem;
			uint32_t i = fz_u32(f), payload = fz_u32(f), seq = fz_u32(f);

			if (!s)
				break;
			if (payload & 0x80000000u)	/* a plausible one: a slot, a generation */
				payload = (payload & 7) | (fz_u8(f) & 3) << 16;
			if (i & 0x80000000u)
				ipcd_store_relaxed(&s->tail, seq);
			else
				s->slot[i % DB_SLOTS] = __ipcd_mpsc_pack(
					i & 0x40000000u ? t.db_cons.head + 1 : seq, payload);
			break;
		}
		case OP_POLL: {
			unsigned int budget = fz_u16(f) % 300, before = t.handled, n;

			t.in_poll = true;
			n = ipcd_reqq_srv_poll(t.srv, budget);
			t.in_poll = false;
			FZ_CHECK(n <= budget && n == t.handled - before);
			break;
		}
		case OP_SLEEP: {
			int64_t bound = ipcd_reqq_srv_prepare_sleep(t.srv);
			int rc;

			FZ_CHECK(bound >= -1);
			t.in_poll = true;	/* a wait may sweep: it never serves, but be sure */
			rc = ipcd_reqq_srv_wait(t.srv, 0, 0);
			t.in_poll = false;
			FZ_CHECK(rc == 0 || rc == -ETIMEDOUT);
			ipcd_reqq_srv_woken(t.srv);
			break;
		}
		case OP_READ_RESP: {
			struct ipcd_resp resp;
			ssize_t n;

			if (!c->req_mem)
				break;
			n = ipcd_spsc_recv(&c->cl.chan.resp, &resp, sizeof(resp));
			FZ_CHECK(n == -EAGAIN || n == -EPIPE || n == -EPROTO ||
				 (n >= 0 && n <= (ssize_t)sizeof(resp)));
			break;
		}
		case OP_FINAL: {
			unsigned int budget = fz_u8(f), before = t.handled, n;

			if (!c->served)
				break;
			t.in_poll = true;
			n = ipcd_reqq_srv_drain_final(t.srv, c->slot, budget);
			t.in_poll = false;
			FZ_CHECK(n <= budget && n == t.handled - before);
			break;
		}
		case OP_DEL_ADD: {
			uint32_t ring = 256u << (fz_u8(f) % 5);

			if (c->served)
				ipcd_reqq_srv_del(t.srv, c->slot);
			client_free(c);
			if (!client_make(c, ring))
				break;
			if (ipcd_reqq_srv_add(t.srv, &c->srv_chan, &c->slot) == 0) {
				c->served = true;
				FZ_CHECK(c->slot < MAX_SLOTS);
				FZ_CHECK(ipcd_load_relaxed(&c->ctl->slot) == c->slot);
			}
			break;
		}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { .p = data, .n = size };
	uint8_t mode = fz_u8(&f);
	struct ipcd_reqq_stats st;
	bool shared = mode & 1;
	unsigned int i;

	memset(&t, 0, sizeof(t));
	if (shared) {
		t.db_size = ipcd_mpsc_mem_size(DB_SLOTS);
		t.db_mem = block_alloc(t.db_size);
		if (!t.db_mem || ipcd_mpsc_init(t.db_mem, DB_SLOTS) ||
		    ipcd_mpsc_attach(&t.db_cons, t.db_mem, t.db_size, 1000) ||
		    ipcd_mpsc_attach(&t.db_prod, t.db_mem, t.db_size, 0))
			goto out;
	}
	if (ipcd_reqq_srv_create(shared ? IPCD_QMODE_SHARED : IPCD_QMODE_PER_PROCESS, MAX_SLOTS,
				 shared ? &t.db_cons : NULL, &ops, NULL, &t.srv))
		goto out;
	for (i = 0; i < CLIENTS; i++) {
		struct client *c = &t.c[i];

		if (client_make(c, 256u << ((mode >> 1) % 5)) &&
		    ipcd_reqq_srv_add(t.srv, &c->srv_chan, &c->slot) == 0)
			c->served = true;
	}
	run(&f);
	ipcd_reqq_srv_stats(t.srv, &st);
	FZ_CHECK(st.requests == t.handled);
	ipcd_reqq_srv_destroy(t.srv);
out:
	for (i = 0; i < CLIENTS; i++)
		client_free(&t.c[i]);
	free(t.db_mem);
	return 0;
}
