/* SPDX-License-Identifier: MIT */
/*
 * stress_impl.h - the generic queue stress engine (DPDK test_ring_stress_impl.h
 * style). A variant file defines its parameters and state types, includes
 * this header (which declares the hooks and supplies the engine and main()),
 * then defines the hooks.
 *
 * Before the #include:
 *   ST_NAME                          test name (string)
 *   ST_PRODUCERS, ST_PER_PROD        producers and items per producer
 *   ST_EXPECT_EOF                    1 if the consumer must see end of stream
 *   struct st_prod_state, struct st_cons_state
 * After it, the hooks:
 *   static size_t st_mem_size(void);
 *   static void st_format(void *mem);
 *   static void st_prod_attach(struct st_prod *p, void *mem);
 *   static int  st_produce(struct st_prod *p, uint64_t seq);
 *                 0: item @seq is in; -EAGAIN: full, call st_prod_wait() and
 *                 retry the same @seq; other: fatal
 *   static void st_prod_wait(struct st_prod *p);
 *   static void st_prod_finish(struct st_prod *p);
 *   static void st_cons_attach(struct st_cons *c, void *mem);
 *   static int  st_consume(struct st_cons *c);
 *                 > 0 items handed to st_deliver(); 0 none ready;
 *                 -EINPROGRESS data taken but no whole item yet (no wait);
 *                 -EPIPE end of stream; other: fatal
 *   static void st_cons_wait(struct st_cons *c);
 *   static int st_report(struct st_cons *c);   (a summary line)
 *
 * Items are (producer id, sequence) pairs with a checksum the variant
 * verifies. The consumer checks that every item of every producer arrives
 * exactly once and in order. Producers run as forked processes over
 * MAP_SHARED|MAP_ANONYMOUS memory, or as threads with --threads (so that
 * ThreadSanitizer sees the synchronisation). Nothing asserts on timing; the
 * deadline below only turns a hang into a failure.
 */
#ifndef STRESS_IMPL_H
#define STRESS_IMPL_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t_helpers.h"

#define ST_DEADLINE_NS		(90 * T_NSEC_PER_SEC)
#define ST_MAX_PRODUCERS	16

struct st_prod {
	struct st_prod_state s;
	unsigned int id;
	uint64_t count;
	struct t_rng rng;
	void *mem;
	uint64_t waits;
	int result;
};

struct st_cons {
	struct st_cons_state s;
	unsigned int producers;
	uint64_t next[ST_MAX_PRODUCERS];
	uint64_t total;
	uint64_t waits;
	unsigned int errors;
	struct t_rng rng;
};

static size_t st_mem_size(void);
static void st_format(void *mem);
static void st_prod_attach(struct st_prod *p, void *mem);
static int st_produce(struct st_prod *p, uint64_t seq);
static void st_prod_wait(struct st_prod *p);
static void st_prod_finish(struct st_prod *p);
static void st_cons_attach(struct st_cons *c, void *mem);
static int st_consume(struct st_cons *c);
static void st_cons_wait(struct st_cons *c);
static int st_report(struct st_cons *c);

/*
 * st_deliver - the consumer's check of one item: the checksum held, the
 * producer exists, and the sequence is exactly the next one expected.
 */
static void st_deliver(struct st_cons *c, uint32_t id, uint64_t seq, bool csum_ok)
{
	if (!csum_ok || id >= c->producers || seq != c->next[id]) {
		if (c->errors++ < 10)
			fprintf(stderr, "%s: bad item: producer %u seq %" PRIu64 " (expected %"
				PRIu64 ")%s\n", ST_NAME, id, seq,
				id < c->producers ? c->next[id] : 0,
				csum_ok ? "" : " checksum mismatch");
		if (id >= c->producers)
			return;
		if (seq < c->next[id])
			return;		/* duplicate or reordered: do not count it */
	}
	c->next[id] = seq + 1;
	c->total++;
}

static int st_run_producer(struct st_prod *p)
{
	uint64_t deadline = ipcd_now_ns() + ST_DEADLINE_NS;
	uint64_t seq;

	st_prod_attach(p, p->mem);
	for (seq = 0; seq < p->count; seq++) {
		int rc;

		while ((rc = st_produce(p, seq)) == -EAGAIN) {
			if (ipcd_now_ns() > deadline) {
				fprintf(stderr, "%s: producer %u stuck at %" PRIu64 "\n", ST_NAME,
					p->id, seq);
				return -ETIMEDOUT;
			}
			p->waits++;
			st_prod_wait(p);
		}
		if (rc) {
			fprintf(stderr, "%s: producer %u: seq %" PRIu64 ": error %d\n", ST_NAME,
				p->id, seq, rc);
			return rc;
		}
	}
	st_prod_finish(p);
	return 0;
}

static void *st_prod_thread(void *arg)
{
	struct st_prod *p = arg;

	p->result = st_run_producer(p);
	return NULL;
}

static int st_run_consumer(struct st_cons *c, void *mem, uint64_t expect)
{
	uint64_t deadline = ipcd_now_ns() + ST_DEADLINE_NS;
	bool eof = false;

	st_cons_attach(c, mem);
	while (c->total < expect || (ST_EXPECT_EOF && !eof)) {
		int rc = st_consume(c);

		if (rc == -EINPROGRESS)
			continue;
		if (rc == -EPIPE) {
			eof = true;
			if (c->total < expect) {
				fprintf(stderr, "%s: end of stream after %" PRIu64 " of %" PRIu64
					" items\n", ST_NAME, c->total, expect);
				return -EPIPE;
			}
			continue;
		}
		if (rc < 0) {
			fprintf(stderr, "%s: consumer error %d after %" PRIu64 " items\n", ST_NAME,
				rc, c->total);
			return rc;
		}
		if (rc == 0) {
			if (ipcd_now_ns() > deadline) {
				fprintf(stderr, "%s: consumer stalled at %" PRIu64 " of %" PRIu64
					" items\n", ST_NAME, c->total, expect);
				return -ETIMEDOUT;
			}
			c->waits++;
			st_cons_wait(c);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	bool threads = argc > 1 && strcmp(argv[1], "--threads") == 0;
	unsigned int n = ST_PRODUCERS, i;
	uint64_t per = ST_PER_PROD / T_SLOWDOWN;
	uint64_t seed = t_seed();
	struct st_prod *prods;
	struct st_cons *cons;
	pthread_t th[ST_MAX_PRODUCERS];
	pid_t pids[ST_MAX_PRODUCERS] = { 0 };
	size_t size = st_mem_size();
	void *mem;
	int rc, bad = 0;

	_Static_assert(ST_PRODUCERS <= ST_MAX_PRODUCERS, "too many producers");
	alarm(110);	/* below the ctest timeout: a hang fails here, with a message */
	mem = t_shm_alloc(size);
	prods = t_shm_alloc(sizeof(*prods) * n);
	cons = calloc(1, sizeof(*cons));
	if (!cons)
		return 1;
	st_format(mem);
	cons->producers = n;
	t_rng_init(&cons->rng, seed ^ 0xc0c0);
	for (i = 0; i < n; i++) {
		prods[i].id = i;
		prods[i].count = per;
		prods[i].mem = mem;
		t_rng_init(&prods[i].rng, seed + i);
	}
	printf("%s: %u producer %s x %" PRIu64 " items\n", ST_NAME, n,
	       threads ? "threads" : "processes", per);

	for (i = 0; i < n; i++) {
		if (threads) {
			if (pthread_create(&th[i], NULL, st_prod_thread, &prods[i]))
				return 1;
		} else {
			pids[i] = t_fork(100);
			if (pids[i] == 0)
				_exit(st_run_producer(&prods[i]) ? 1 : 0);
		}
	}
	rc = st_run_consumer(cons, mem, per * n);
	if (rc) {
		bad++;
		if (!threads)
			t_reap_all();	/* do not wait for producers that cannot finish */
		else
			_exit(1);	/* threads may be blocked forever: do not join */
	}
	for (i = 0; i < n && !rc; i++) {
		if (threads) {
			pthread_join(th[i], NULL);
			if (prods[i].result) {
				fprintf(stderr, "%s: producer %u failed: %d\n", ST_NAME, i,
					prods[i].result);
				bad++;
			}
		} else {
			int st = t_wait(pids[i], 30000);

			if (st) {
				fprintf(stderr, "%s: producer %u exit status %d\n", ST_NAME, i, st);
				bad++;
			}
		}
	}
	if (cons->errors) {
		fprintf(stderr, "%s: %u bad items\n", ST_NAME, cons->errors);
		bad++;
	}
	for (i = 0; i < n; i++) {
		if (cons->next[i] != per) {
			fprintf(stderr, "%s: producer %u: %" PRIu64 " of %" PRIu64 " items\n",
				ST_NAME, i, cons->next[i], per);
			bad++;
		}
	}
	bad += st_report(cons);
	printf("%s: %" PRIu64 " items, consumer waits %" PRIu64 "%s\n", ST_NAME, cons->total,
	       cons->waits, bad ? ", FAILED" : ", ok");
	free(cons);
	t_shm_free(prods, sizeof(*prods) * n);
	t_shm_free(mem, size);
	return bad ? 1 : 0;
}

#endif /* STRESS_IMPL_H */
