/* SPDX-License-Identifier: MIT */
/*
 * stress_spsc_stream.c - SPSC stream mode: checksummed frames written in
 * random pieces (partial writes, gathered iovecs) and read back in random
 * sizes (partial reads across records, peeks) until end of stream.
 */
#include <ipcd/spsc.h>

#define ST_NAME		"stress_spsc_stream"
#define ST_PRODUCERS	1
#define ST_PER_PROD	3000000ull
#define ST_EXPECT_EOF	1

#define RING		2048u
#define MAX_FRAME	600u
#define RBUF		(64 * 1024)

struct frame {
	uint32_t id;
	uint32_t len;		/* whole frame, header included */
	uint64_t seq;
	uint32_t csum;
	uint32_t pad;
};

struct st_prod_state {
	struct ipcd_spsc r;
	uint8_t buf[MAX_FRAME];
	uint64_t seq;		/* frame in buf */
	uint32_t len, off;	/* its length, bytes already written */
	bool full;
};

struct st_cons_state {
	struct ipcd_spsc r;
	uint8_t buf[RBUF];
	uint8_t peek[RBUF];
	size_t have;
	bool eof;
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
	if (ipcd_spsc_init(mem, RING, 0, IPCD_SPSC_F_STREAM))
		abort();
}

static void st_prod_attach(struct st_prod *p, void *mem)
{
	if (ipcd_spsc_attach(&p->s.r, mem, st_mem_size()))
		abort();
	p->s.full = false;
}

static int st_produce(struct st_prod *p, uint64_t seq)
{
	struct st_prod_state *s = &p->s;

	if (!s->full || s->seq != seq) {
		const uint32_t max = MAX_FRAME - (uint32_t)sizeof(struct frame);
		uint32_t plen = t_rng_below(&p->rng, 4) ? t_rng_below(&p->rng, 40)
							: t_rng_below(&p->rng, max + 1);
		struct frame f = { .id = p->id, .len = (uint32_t)sizeof(f) + plen, .seq = seq };

		memcpy(s->buf, &f, sizeof(f));
		t_rng_fill(&p->rng, s->buf + sizeof(f), plen);
		f.csum = frame_csum(s->buf, f.len);
		memcpy(s->buf, &f, sizeof(f));
		s->seq = seq;
		s->len = f.len;
		s->off = 0;
		s->full = true;
	}
	while (s->off < s->len) {
		uint32_t left = s->len - s->off;
		uint32_t a = t_rng_below(&p->rng, left + 1);
		uint32_t b = t_rng_below(&p->rng, left - a + 1);
		struct iovec v[3] = {
			{ s->buf + s->off, a },
			{ s->buf + s->off + a, b },
			{ s->buf + s->off + a + b, left - a - b },
		};
		ssize_t n = ipcd_spsc_writev(&s->r, v, (int)t_rng_below(&p->rng, 3) + 1);

		if (n == -EAGAIN)
			return -EAGAIN;
		if (n < 0)
			return (int)n;
		s->off += (uint32_t)n;	/* 0 if every chosen piece was empty */
	}
	s->full = false;
	return 0;
}

static void st_prod_wait(struct st_prod *p)
{
	int rc = ipcd_spsc_wait_writable(&p->s.r, 64, t_rng_below(&p->rng, 2) ? 20000 : 0,
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

/* Hand over every complete frame at the front of the reassembly buffer. */
static int parse(struct st_cons *c)
{
	struct st_cons_state *s = &c->s;
	size_t off = 0;
	int n = 0;

	while (s->have - off >= sizeof(struct frame)) {
		struct frame f;

		memcpy(&f, s->buf + off, sizeof(f));
		if (f.len < sizeof(f) || f.len > MAX_FRAME) {
			st_deliver(c, UINT32_MAX, 0, false);
			return -EPROTO;	/* framing lost: nothing after this can be trusted */
		}
		if (s->have - off < f.len)
			break;
		st_deliver(c, f.id, f.seq, f.csum == frame_csum(s->buf + off, f.len));
		off += f.len;
		n++;
	}
	memmove(s->buf, s->buf + off, s->have - off);
	s->have -= off;
	return n;
}

static int st_consume(struct st_cons *c)
{
	struct st_cons_state *s = &c->s;
	size_t space = RBUF - s->have;
	size_t want = t_rng_below(&c->rng, 4) ? t_rng_below(&c->rng, 64) + 1
					      : t_rng_below(&c->rng, 4096) + 1;
	size_t a;
	struct iovec v[2];
	ssize_t n, pk = -1;
	int got;

	if (s->eof)
		return -EPIPE;
	want = IPCD_MIN(want, space);
	a = t_rng_below(&c->rng, (uint32_t)want + 1);
	v[0].iov_base = s->buf + s->have;
	v[0].iov_len = a;
	v[1].iov_base = s->buf + s->have + a;
	v[1].iov_len = want - a;
	if (t_rng_below(&c->rng, 8) == 0)
		pk = ipcd_spsc_read(&s->r, s->peek, want, IPCD_SPSC_PEEK);
	n = ipcd_spsc_readv(&s->r, v, 2, 0);
	if (n == -EAGAIN)
		return 0;
	if (n < 0)
		return (int)n;
	if (n == 0) {
		s->eof = true;
		if (s->have)
			st_deliver(c, UINT32_MAX, 0, false);	/* a torn frame at EOF */
		return -EPIPE;
	}
	/* What a peek showed is a prefix of what the next read returns. */
	if (pk > 0 && (pk > n || memcmp(s->peek, s->buf + s->have, (size_t)pk) != 0))
		st_deliver(c, UINT32_MAX, 0, false);
	s->have += (size_t)n;
	got = parse(c);
	return got < 0 ? got : got > 0 ? got : -EINPROGRESS;
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
	printf("%s: %" PRIu64 " records, %" PRIu64 " bytes through a %u-byte ring\n", ST_NAME,
	       c->s.r.shm->cons_msgs, c->s.r.shm->cons_bytes, RING);
	return 0;
}
