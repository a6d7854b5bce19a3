/* SPDX-License-Identifier: MIT */
/*
 * stress_mpsc.c - doorbell queue with more producers than cores. Each entry
 * packs (producer id, sequence, check byte). The skip budget is tiny, so
 * preempted producers are skipped all the time and must re-enqueue after
 * -ESTALE: the consumer still sees every entry exactly once, in order per
 * producer.
 */
#include <ipcd/mpsc.h>

#define ST_NAME		"stress_mpsc"
#define ST_PRODUCERS	6
#define ST_PER_PROD	1000000ull
#define ST_EXPECT_EOF	0

#define SLOTS		64u
#define SKIP_NS		50000ull	/* 50 us: far shorter than a time slice */
#define SEQ_BITS	20
#define SEQ_MASK	((1u << SEQ_BITS) - 1)

struct st_prod_state {
	struct ipcd_mpsc q;
	uint64_t stale;
	uint64_t busy;
};

struct st_cons_state {
	struct ipcd_mpsc q;
	uint32_t out[32];
};

#include "stress_impl.h"

_Static_assert(ST_PER_PROD <= SEQ_MASK + 1, "sequence field too small");
_Static_assert(ST_PRODUCERS <= 16, "id field too small");

static uint32_t check_byte(uint32_t id, uint32_t seq)
{
	uint32_t v = id << SEQ_BITS | seq;

	return t_fnv1a(T_FNV_INIT, &v, sizeof(v)) & 0xff;
}

static uint32_t pack(uint32_t id, uint32_t seq)
{
	return check_byte(id, seq) << 24 | id << SEQ_BITS | seq;
}

static size_t st_mem_size(void)
{
	return ipcd_mpsc_mem_size(SLOTS);
}

static void st_format(void *mem)
{
	if (ipcd_mpsc_init(mem, SLOTS))
		abort();
}

static void st_prod_attach(struct st_prod *p, void *mem)
{
	if (ipcd_mpsc_attach(&p->s.q, mem, st_mem_size(), 0))
		abort();
}

static int st_produce(struct st_prod *p, uint64_t seq)
{
	uint32_t v = pack(p->id, (uint32_t)seq & SEQ_MASK);
	uint32_t pos;

	for (;;) {
		int rc = ipcd_mpsc_claim(&p->s.q, &pos);

		if (rc == -EBUSY) {
			p->s.busy++;
			return -EAGAIN;
		}
		if (rc)
			return rc;	/* -EAGAIN: full */
		/* Widen the claim-to-publish window now and then. */
		if (t_rng_below(&p->rng, 64) == 0)
			sched_yield();
		rc = ipcd_mpsc_publish(&p->s.q, pos, v);
		if (rc != -ESTALE)
			return rc;
		p->s.stale++;	/* skipped while stalled: nothing was written, again */
	}
}

static void st_prod_wait(struct st_prod *p)
{
	(void)p;
	sched_yield();
}

static void st_prod_finish(struct st_prod *p)
{
	if (p->s.stale || p->s.busy)
		printf("%s: producer %u: %" PRIu64 " stale publishes, %" PRIu64 " busy\n",
		       ST_NAME, p->id, p->s.stale, p->s.busy);
}

static void st_cons_attach(struct st_cons *c, void *mem)
{
	if (ipcd_mpsc_attach(&c->s.q, mem, st_mem_size(), SKIP_NS))
		abort();
}

static int st_consume(struct st_cons *c)
{
	unsigned int n = ipcd_mpsc_dequeue_burst(&c->s.q, c->s.out,
						 t_rng_below(&c->rng, 32) + 1, 0);
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint32_t v = c->s.out[i];
		uint32_t id = v >> SEQ_BITS & 0xf, seq = v & SEQ_MASK;

		st_deliver(c, id, seq, v >> 24 == check_byte(id, seq));
	}
	return (int)n;
}

static void st_cons_wait(struct st_cons *c)
{
	int rc = ipcd_mpsc_wait(&c->s.q, t_rng_below(&c->rng, 2) ? 10000 : 0,
				100 * T_NSEC_PER_MSEC);

	if (rc && rc != -ETIMEDOUT)
		abort();
}

static int st_report(struct st_cons *c)
{
	printf("%s: consumer skipped %" PRIu64 " stalled claims, repaired %" PRIu64 "\n",
	       ST_NAME, c->s.q.skipped, c->s.q.corrupt);
	if (c->s.q.corrupt)
		printf("%s: honest producers never leave an impossible slot\n", ST_NAME);
	return c->s.q.corrupt ? 1 : 0;
}
