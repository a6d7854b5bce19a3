/* SPDX-License-Identifier: MIT */
/* stress_spsc_msg.c - SPSC message mode: random sizes, checksummed, send/recv bursts. */
#include <ipcd/spsc.h>

#define ST_NAME		"stress_spsc_msg"
#define ST_PRODUCERS	1
#define ST_PER_PROD	2000000ull
#define ST_EXPECT_EOF	1

#define RING		4096u

/* Every message starts with this frame; the checksum covers it and the payload. */
struct frame {
	uint32_t id;
	uint32_t len;		/* whole message, frame included */
	uint64_t seq;
	uint32_t csum;
	uint32_t pad;
};

struct st_prod_state {
	struct ipcd_spsc r;
	uint8_t buf[RING];
};

struct st_cons_state {
	struct ipcd_spsc r;
	uint8_t buf[4 * RING];
	uint32_t lens[16];
};

#include "stress_impl.h"

static uint32_t frame_csum(const uint8_t *msg, uint32_t len)
{
	struct frame f;

	memcpy(&f, msg, sizeof(f));
	f.csum = 0;
	return t_fnv1a(t_fnv1a(T_FNV_INIT, &f, sizeof(f)), msg + sizeof(f), len - sizeof(f));
}

static size_t st_mem_size(void)
{
	return ipcd_spsc_mem_size(RING);
}

static void st_format(void *mem)
{
	if (ipcd_spsc_init(mem, RING, 0, 0))
		abort();
}

static void st_prod_attach(struct st_prod *p, void *mem)
{
	if (ipcd_spsc_attach(&p->s.r, mem, st_mem_size()))
		abort();
}

static int st_produce(struct st_prod *p, uint64_t seq)
{
	uint32_t room = p->s.r.max_msg - (uint32_t)sizeof(struct frame);
	uint32_t plen = t_rng_below(&p->rng, 8) ? t_rng_below(&p->rng, 64)
						: t_rng_below(&p->rng, room + 1);
	struct frame f = { .id = p->id, .len = (uint32_t)sizeof(f) + plen, .seq = seq };
	struct t_rng save = p->rng;
	int rc;

	memcpy(p->s.buf, &f, sizeof(f));
	t_rng_fill(&p->rng, p->s.buf + sizeof(f), plen);
	f.csum = frame_csum(p->s.buf, f.len);
	memcpy(p->s.buf, &f, sizeof(f));
	if (seq & 1) {
		struct iovec v = { p->s.buf, f.len };

		rc = ipcd_spsc_send_burst(&p->s.r, &v, 1);
		rc = rc == 1 ? 0 : rc == 0 ? -EAGAIN : rc;
	} else {
		rc = ipcd_spsc_send(&p->s.r, p->s.buf, f.len);
	}
	if (rc == -EAGAIN)
		p->rng = save;	/* the retry rebuilds the same message */
	return rc;
}

static void st_prod_wait(struct st_prod *p)
{
	int rc = ipcd_spsc_wait_writable(&p->s.r, p->s.r.max_msg,
					 t_rng_below(&p->rng, 2) ? 20000 : 0,
					 100 * T_NSEC_PER_MSEC);

	if (rc && rc != -ETIMEDOUT)
		abort();
}

static void st_prod_finish(struct st_prod *p)
{
	ipcd_spsc_close_prod(&p->s.r);
}

static void st_cons_attach(struct st_cons *c, void *mem)
{
	if (ipcd_spsc_attach(&c->s.r, mem, st_mem_size()))
		abort();
}

static void check_msg(struct st_cons *c, const uint8_t *msg, size_t len)
{
	struct frame f;

	if (len < sizeof(f)) {
		st_deliver(c, UINT32_MAX, 0, false);
		return;
	}
	memcpy(&f, msg, sizeof(f));
	st_deliver(c, f.id, f.seq, f.len == len && f.csum == frame_csum(msg, f.len));
}

static int st_consume(struct st_cons *c)
{
	if (t_rng_below(&c->rng, 2)) {
		ssize_t n = ipcd_spsc_recv(&c->s.r, c->s.buf, sizeof(c->s.buf));

		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return (int)n;
		check_msg(c, c->s.buf, (size_t)n);
		return 1;
	} else {
		int n = ipcd_spsc_recv_burst(&c->s.r, c->s.buf, sizeof(c->s.buf), c->s.lens,
					     t_rng_below(&c->rng, 16) + 1);
		size_t off = 0;
		int i;

		if (n < 0)
			return n;
		if (n == 0) {	/* empty, or closed and drained */
			ssize_t e = ipcd_spsc_recv(&c->s.r, c->s.buf, sizeof(c->s.buf));

			if (e == -EAGAIN)
				return 0;
			if (e < 0)
				return (int)e;
			check_msg(c, c->s.buf, (size_t)e);
			return 1;
		}
		for (i = 0; i < n; i++) {
			check_msg(c, c->s.buf + off, c->s.lens[i]);
			off += IPCD_ALIGN_UP((size_t)c->s.lens[i], 8);
		}
		return n;
	}
}

static void st_cons_wait(struct st_cons *c)
{
	int rc = ipcd_spsc_wait_readable(&c->s.r, t_rng_below(&c->rng, 2) ? 20000 : 0,
					 100 * T_NSEC_PER_MSEC);

	if (rc && rc != -ETIMEDOUT)
		abort();
}

static int st_report(struct st_cons *c)
{
	printf("%s: %" PRIu64 " messages, %" PRIu64 " bytes through a %u-byte ring\n", ST_NAME,
	       c->s.r.shm->cons_msgs, c->s.r.shm->cons_bytes, RING);
	return 0;
}
