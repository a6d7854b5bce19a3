/* SPDX-License-Identifier: MIT */
/*
 * fault_mpsc_kill.c - producers SIGKILLed in the middle of an enqueue. The
 * consumer skips the dead claim after its budget and keeps delivering every
 * survivor's entries exactly once, in order.
 */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcd/mpsc.h>

#include "t_helpers.h"

#define SLOTS		64u
#define SKIP_NS		(5 * T_NSEC_PER_MSEC)
#define SEQ_BITS	20
#define SEQ_MASK	((1u << SEQ_BITS) - 1)
#define MAX_PROD	8
#define DEADLINE_NS	(60 * T_NSEC_PER_SEC)

static uint32_t pack(uint32_t id, uint32_t seq)
{
	return id << SEQ_BITS | seq;
}

struct q {
	void *mem;
	struct ipcd_mpsc c;
};

static void q_open(struct q *q)
{
	q->mem = t_shm_alloc(ipcd_mpsc_mem_size(SLOTS));
	assert_int_equal(ipcd_mpsc_init(q->mem, SLOTS), 0);
	assert_int_equal(ipcd_mpsc_attach(&q->c, q->mem, ipcd_mpsc_mem_size(SLOTS), SKIP_NS), 0);
}

static void q_close(struct q *q)
{
	t_shm_free(q->mem, ipcd_mpsc_mem_size(SLOTS));
}

/* Child: enqueue @count entries as producer @id, yielding when full. */
static void producer(void *mem, uint32_t id, uint32_t count, bool slow_publish)
{
	struct ipcd_mpsc p;
	struct t_rng rng;
	uint32_t seq;

	T_CHECK_EQ(ipcd_mpsc_attach(&p, mem, ipcd_mpsc_mem_size(SLOTS), 0), 0);
	t_rng_init(&rng, t_seed() ^ id);
	for (seq = 0; seq < count; seq++) {
		for (;;) {
			uint32_t pos;
			int rc = ipcd_mpsc_claim(&p, &pos);
			unsigned int k;

			if (rc == -EAGAIN || rc == -EBUSY) {
				sched_yield();
				continue;
			}
			T_CHECK_EQ(rc, 0);
			if (slow_publish)	/* a wide window for the killer to hit */
				for (k = t_rng_below(&rng, 2000); k; k--)
					ipcd_cpu_relax();
			rc = ipcd_mpsc_publish(&p, pos, pack(id, seq));
			if (rc == 0)
				break;
			T_CHECK_EQ(rc, -ESTALE);
		}
	}
	_exit(0);
}

/*
 * Consume until every producer in @alive has delivered @count entries;
 * producers not alive may have delivered any in-order prefix. Checks exactly
 * once and in order for everyone. @on_entry runs after each entry.
 */
struct consume_ctx {
	struct q *q;
	uint32_t n_prod;
	uint32_t count;
	uint32_t next[MAX_PROD];
	bool *alive;
	void (*on_entry)(struct consume_ctx *ctx, uint64_t total);
	void *arg;
};

static void consume(struct consume_ctx *x)
{
	uint64_t deadline = ipcd_now_ns() + DEADLINE_NS, total = 0;
	uint32_t out[32];

	for (;;) {
		unsigned int n = ipcd_mpsc_dequeue_burst(&x->q->c, out, 32, 0), i;
		bool done = true;

		for (i = 0; i < n; i++) {
			uint32_t id = out[i] >> SEQ_BITS, seq = out[i] & SEQ_MASK;

			if (id >= x->n_prod || seq != x->next[id])
				fail_msg("entry %#x: producer %u seq %u, expected %u", out[i], id,
					 seq, id < x->n_prod ? x->next[id] : 0);
			x->next[id]++;
			total++;
			if (x->on_entry)
				x->on_entry(x, total);
		}
		for (i = 0; i < x->n_prod; i++)
			if (x->alive[i] && x->next[i] < x->count)
				done = false;
		if (done)
			return;
		if (ipcd_now_ns() > deadline)
			fail_msg("consumer stalled after %llu entries", (unsigned long long)total);
		if (n == 0)
			ipcd_mpsc_wait(&x->q->c, 0, 20 * T_NSEC_PER_MSEC);
	}
}

/*
 * A producer claims a slot, reports it, and is killed before publishing.
 * Other producers enqueue behind the dead claim (more than a lap's worth);
 * the consumer must skip it and deliver all of theirs.
 */
static void test_killed_between_claim_and_publish(void **state)
{
	struct consume_ctx x = { .n_prod = 3, .count = 5 * SLOTS };
	bool alive[3] = { false, true, true };
	int pfd[2];
	uint32_t pos = 0;
	struct q q;
	pid_t dead, p1, p2;

	(void)state;
	q_open(&q);
	x.q = &q;
	x.alive = alive;
	assert_int_equal(pipe(pfd), 0);
	dead = t_fork(T_CHILD_ALARM);
	if (dead == 0) {
		struct ipcd_mpsc p;
		uint32_t claimed;

		T_CHECK_EQ(ipcd_mpsc_attach(&p, q.mem, ipcd_mpsc_mem_size(SLOTS), 0), 0);
		T_CHECK_EQ(ipcd_mpsc_enqueue(&p, pack(0, 0)), 0);
		T_CHECK_EQ(ipcd_mpsc_claim(&p, &claimed), 0);
		T_CHECK(write(pfd[1], &claimed, sizeof(claimed)) == sizeof(claimed));
		for (;;)
			pause();
	}
	assert_int_equal(read(pfd[0], &pos, sizeof(pos)), sizeof(pos));
	assert_int_equal(pos, 1);
	p1 = t_fork(T_CHILD_ALARM);
	if (p1 == 0)
		producer(q.mem, 1, x.count, false);
	p2 = t_fork(T_CHILD_ALARM);
	if (p2 == 0)
		producer(q.mem, 2, x.count, false);
	t_sleep_ms(20);
	assert_int_equal(t_kill_wait(dead), 128 + SIGKILL);
	consume(&x);
	assert_int_equal(x.next[0], 1);		/* its published entry, nothing more */
	assert_int_equal(t_wait(p1, 30000), 0);
	assert_int_equal(t_wait(p2, 30000), 0);
	assert_true(q.c.skipped >= 1);
	assert_int_equal(q.c.corrupt, 0);
	close(pfd[0]);
	close(pfd[1]);
	q_close(&q);
}

struct killer {
	pid_t pid[MAX_PROD];
	uint64_t kill_at[MAX_PROD];	/* total entry count at which to kill; 0: never */
	unsigned int killed;
};

static void maybe_kill(struct consume_ctx *x, uint64_t total)
{
	struct killer *k = x->arg;
	uint32_t i;

	for (i = 0; i < x->n_prod; i++) {
		if (k->kill_at[i] && total == k->kill_at[i]) {
			kill(k->pid[i], SIGKILL);
			k->killed++;
		}
	}
}

/*
 * Several producers in tight claim/publish loops; the parent SIGKILLs some of
 * them at random moments while consuming. The survivors' entries all arrive,
 * exactly once and in order; the victims' form an in-order prefix.
 */
static void test_random_kills(void **state)
{
	struct t_rng rng;
	unsigned int round;

	(void)state;
	t_rng_init(&rng, t_seed() + 21);
	for (round = 0; round < 6; round++) {
		struct consume_ctx x = { .n_prod = 5, .count = 20000 / T_SLOWDOWN };
		bool alive[MAX_PROD];
		struct killer k;
		uint32_t i, victims = 1 + round % 2;
		struct q q;

		memset(&k, 0, sizeof(k));
		q_open(&q);
		x.q = &q;
		x.alive = alive;
		x.on_entry = maybe_kill;
		x.arg = &k;
		for (i = 0; i < x.n_prod; i++) {
			alive[i] = true;
			k.pid[i] = t_fork(T_CHILD_ALARM);
			if (k.pid[i] == 0)
				producer(q.mem, i, x.count, true);
		}
		for (i = 0; i < victims; i++) {
			uint32_t v = t_rng_below(&rng, x.n_prod);

			if (!alive[v])
				continue;
			alive[v] = false;
			k.kill_at[v] = 1 + t_rng_below(&rng, x.count * x.n_prod / 2);
		}
		consume(&x);
		for (i = 0; i < x.n_prod; i++) {
			int st = t_wait(k.pid[i], alive[i] ? 30000 : 5000);

			if (alive[i])
				assert_int_equal(st, 0);
			else
				assert_true(st == 0 || st == 128 + SIGKILL);
		}
		/* Whatever was in flight from the victims: drain it, still in order. */
		x.on_entry = NULL;
		for (i = 0; i < 4; i++) {
			t_sleep_ms(2 * SKIP_NS / T_NSEC_PER_MSEC);
			consume(&x);
		}
		for (i = 0; i < x.n_prod; i++)
			assert_true(x.next[i] <= x.count);
		assert_int_equal(q.c.corrupt, 0);
		printf("round %u: %u killed, %llu skipped\n", round, k.killed,
		       (unsigned long long)q.c.skipped);
		q_close(&q);
	}
}

static int teardown(void **state)
{
	(void)state;
	t_reap_all();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_killed_between_claim_and_publish, teardown),
		cmocka_unit_test_teardown(test_random_kills, teardown),
	};

	t_seed();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
