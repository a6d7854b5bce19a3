/* SPDX-License-Identifier: MIT */
/* test_mpsc.c - doorbell queue: FIFO, full, wrap, stall skip, hostile writers. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcd/mpsc.h>

#include "t_helpers.h"

#define SLOTS		16u
#define SKIP_NS		1000000ull		/* 1 ms of (synthetic) time */
#define T0		1000000000ull		/* synthetic clock start, never 0 */
#define HANG_GUARD_NS	(30 * T_NSEC_PER_SEC)

/* A queue in guarded shared memory: a producer handle and a consumer handle. */
struct fx {
	struct t_guarded g;
	void *mem;
	size_t mem_size;
	struct ipcd_mpsc_shm *shm;
	struct ipcd_mpsc p;
	struct ipcd_mpsc c;
	uint32_t slots;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	t_reap_all();
	t_guarded_free(&f->g);
	free(f);
	return 0;
}

static void fx_open(struct fx *f, uint32_t slots)
{
	t_guarded_free(&f->g);
	f->slots = slots;
	f->mem_size = ipcd_mpsc_mem_size(slots);
	f->mem = t_guarded_alloc(&f->g, f->mem_size, IPCD_CACHE_GUARD, true);
	f->shm = f->mem;
	assert_int_equal(ipcd_mpsc_init(f->mem, slots), 0);
	assert_int_equal(ipcd_mpsc_attach(&f->p, f->mem, f->mem_size, 0), 0);
	assert_int_equal(ipcd_mpsc_attach(&f->c, f->mem, f->mem_size, SKIP_NS), 0);
}

/* Dequeue everything available at synthetic time @now; returns the count. */
static unsigned int drain(struct fx *f, uint32_t *out, unsigned int max, uint64_t now)
{
	unsigned int n = 0, got;

	while (n < max && (got = ipcd_mpsc_dequeue_burst(&f->c, out + n, max - n, now)) > 0)
		n += got;
	return n;
}

static void test_init_attach_args(void **state)
{
	struct fx *f = *state;
	struct ipcd_mpsc q;
	const size_t cap_off = offsetof(struct ipcd_mpsc_shm, capacity);
	static const uint32_t bad_caps[] = { 0, 1, 4, 12, 17, 2 * SLOTS, 1u << 21, UINT32_MAX };
	unsigned int i;

	fx_open(f, SLOTS);
	assert_int_equal(ipcd_mpsc_init(NULL, SLOTS), -EINVAL);
	assert_int_equal(ipcd_mpsc_init(f->mem, 12), -EINVAL);
	assert_int_equal(ipcd_mpsc_init(f->mem, IPCD_MPSC_MIN_SLOTS / 2), -EINVAL);
	assert_int_equal(ipcd_mpsc_init(f->mem, IPCD_MPSC_MAX_SLOTS * 2), -EINVAL);
	for (i = 0; i < IPCD_ARRAY_SIZE(bad_caps); i++) {
		assert_int_equal(ipcd_mpsc_init(f->mem, SLOTS), 0);
		memcpy((uint8_t *)f->mem + cap_off, &bad_caps[i], sizeof(uint32_t));
		assert_int_equal(ipcd_mpsc_attach(&q, f->mem, f->mem_size, SKIP_NS), -EPROTO);
	}
	assert_int_equal(ipcd_mpsc_init(f->mem, SLOTS), 0);
	assert_int_equal(ipcd_mpsc_attach(&q, f->mem, f->mem_size - 1, 0), -EPROTO);
	assert_true(ipcd_mpsc_attach(&q, f->mem, sizeof(struct ipcd_mpsc_shm) - 1, 0) < 0);
	assert_int_equal(ipcd_mpsc_attach(&q, f->mem, f->mem_size, SKIP_NS), 0);
	assert_int_equal(q.capacity, SLOTS);
	assert_int_equal(q.mask, SLOTS - 1);
}

static void test_fifo_full_wrap(void **state)
{
	struct fx *f = *state;
	uint32_t out[4 * SLOTS];
	uint32_t next_in = 0, next_out = 0, pos = 0;
	unsigned int i, lap;

	fx_open(f, SLOTS);
	assert_int_equal(ipcd_mpsc_dequeue_burst(&f->c, out, 8, T0), 0);
	assert_int_equal(ipcd_mpsc_wait(&f->c, 0, 0), -ETIMEDOUT);
	for (i = 0; i < SLOTS; i++)
		assert_int_equal(ipcd_mpsc_enqueue(&f->p, 0xabc00000u + next_in++), 0);
	assert_int_equal(ipcd_mpsc_depth(&f->c), SLOTS);
	assert_int_equal(ipcd_mpsc_enqueue(&f->p, 1), -EAGAIN);
	assert_int_equal(ipcd_mpsc_claim(&f->p, &pos), -EAGAIN);
	assert_int_equal(ipcd_mpsc_wait(&f->c, 0, HANG_GUARD_NS), 0);
	/* n bounds the burst */
	assert_int_equal(ipcd_mpsc_dequeue_burst(&f->c, out, 3, T0), 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(out[i], 0xabc00000u + next_out++);
	assert_int_equal(ipcd_mpsc_enqueue(&f->p, 0xabc00000u + next_in++), 0);

	/* Many laps with random fill levels; FIFO order and exact counts. */
	for (lap = 0; lap < 20000; lap++) {
		unsigned int k = (lap * 7) % (SLOTS + 3), got;

		for (i = 0; i < k; i++) {
			int rc = ipcd_mpsc_enqueue(&f->p, 0xabc00000u + next_in);

			if (rc == -EAGAIN)
				break;
			assert_int_equal(rc, 0);
			next_in++;
		}
		got = ipcd_mpsc_dequeue_burst(&f->c, out, (lap % 5) + 1, T0);
		for (i = 0; i < got; i++)
			assert_int_equal(out[i], 0xabc00000u + next_out++);
	}
	next_out += drain(f, out, 4 * SLOTS, T0);
	assert_int_equal(next_out, next_in);
	assert_int_equal(ipcd_mpsc_depth(&f->c), 0);
	assert_int_equal(f->c.skipped, 0);
	assert_int_equal(f->c.corrupt, 0);
}

/*
 * A claimed but unpublished slot blocks the consumer until the skip budget
 * runs out (synthetic clock); then it is skipped, the stale publish fails and
 * writes nothing, and later entries are delivered.
 */
static void test_stall_skip(void **state)
{
	struct fx *f = *state;
	uint32_t out[SLOTS], pos = 0, i;

	fx_open(f, SLOTS);
	assert_int_equal(ipcd_mpsc_enqueue(&f->p, 100), 0);
	assert_int_equal(ipcd_mpsc_claim(&f->p, &pos), 0);
	assert_int_equal(pos, 1);
	for (i = 0; i < 3; i++)
		assert_int_equal(ipcd_mpsc_enqueue(&f->p, 200 + i), 0);

	assert_int_equal(ipcd_mpsc_dequeue_burst(&f->c, out, SLOTS, T0), 1);
	assert_int_equal(out[0], 100);
	assert_int_equal(ipcd_mpsc_dequeue_burst(&f->c, out, SLOTS, T0), 0);
	assert_int_equal(ipcd_mpsc_dequeue_burst(&f->c, out, SLOTS, T0 + SKIP_NS / 2), 0);
	assert_int_equal(f->c.skipped, 0);
	assert_int_equal(drain(f, out, SLOTS, T0 + 2 * SKIP_NS + 1), 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(out[i], 200 + i);
	assert_int_equal(f->c.skipped, 1);
	assert_int_equal(f->shm->skipped, 1);

	/* The late producer learns it lost, and nothing reappears. */
	assert_int_equal(ipcd_mpsc_publish(&f->p, pos, 0xdeadu), -ESTALE);
	assert_int_equal(f->shm->slot[pos & (SLOTS - 1)], __ipcd_mpsc_pack(pos + SLOTS, 0));
	assert_int_equal(drain(f, out, SLOTS, T0 + 10 * SKIP_NS), 0);

	/* The queue keeps working across laps, through the skipped slot. */
	for (i = 0; i < 5 * SLOTS; i++) {
		assert_int_equal(ipcd_mpsc_enqueue(&f->p, 1000 + i), 0);
		assert_int_equal(ipcd_mpsc_dequeue_burst(&f->c, out, 1, T0 + 10 * SKIP_NS), 1);
		assert_int_equal(out[0], 1000 + i);
	}
	assert_int_equal(f->c.corrupt, 0);
}

/* A publish that beats the budget is delivered, and the stall clock restarts. */
static void test_stall_then_publish(void **state)
{
	struct fx *f = *state;
	uint32_t out[SLOTS], pos = 0;
	uint64_t t = T0;

	fx_open(f, SLOTS);
	assert_int_equal(ipcd_mpsc_claim(&f->p, &pos), 0);
	assert_int_equal(ipcd_mpsc_dequeue_burst(&f->c, out, SLOTS, t), 0);
	t += SKIP_NS / 2;
	assert_int_equal(ipcd_mpsc_dequeue_burst(&f->c, out, SLOTS, t), 0);
	assert_int_equal(ipcd_mpsc_publish(&f->p, pos, 42), 0);
	t += 10 * SKIP_NS;
	assert_int_equal(ipcd_mpsc_dequeue_burst(&f->c, out, SLOTS, t), 1);
	assert_int_equal(out[0], 42);
	assert_int_equal(f->c.skipped, 0);

	/* A new stall starts its own clock: no skip right away. */
	assert_int_equal(ipcd_mpsc_claim(&f->p, &pos), 0);
	assert_int_equal(ipcd_mpsc_dequeue_burst(&f->c, out, SLOTS, t + 1), 0);
	assert_int_equal(ipcd_mpsc_dequeue_burst(&f->c, out, SLOTS, t + 2), 0);
	assert_int_equal(ipcd_mpsc_publish(&f->p, pos, 43), 0);
	assert_int_equal(ipcd_mpsc_dequeue_burst(&f->c, out, SLOTS, t + 3), 1);
	assert_int_equal(out[0], 43);
	assert_int_equal(f->c.skipped, 0);
}

/* A slot with an impossible sequence in the claimed range is repaired. */
static void test_corrupt_slot_repaired(void **state)
{
	struct fx *f = *state;
	uint32_t out[SLOTS], i;

	fx_open(f, SLOTS);
	for (i = 0; i < 3; i++)
		assert_int_equal(ipcd_mpsc_enqueue(&f->p, 10 + i), 0);
	f->shm->slot[1] = __ipcd_mpsc_pack(1 + 7 * SLOTS + 1000, 0xbad);
	assert_int_equal(drain(f, out, SLOTS, T0), 2);
	assert_int_equal(out[0], 10);
	assert_int_equal(out[1], 12);
	assert_int_equal(f->c.corrupt, 1);
	assert_int_equal(f->shm->corrupt, 1);
	/* Producers and the consumer go on, lap after lap. */
	for (i = 0; i < 4 * SLOTS; i++) {
		assert_int_equal(ipcd_mpsc_enqueue(&f->p, 500 + i), 0);
		assert_int_equal(drain(f, out, 1, T0), 1);
		assert_int_equal(out[0], 500 + i);
	}
	assert_int_equal(f->c.corrupt, 1);
}

/*
 * A hostile write into the slot producers will claim next (not claimed yet).
 * Producers may fail while it is there, but once the consumer has looked at
 * it ("repaired"), honest producers must be able to enqueue again.
 */
static void test_corrupt_unclaimed_slot_recovers(void **state)
{
	struct fx *f = *state;
	uint32_t out[SLOTS], i, tail;
	int rc = -1;

	fx_open(f, SLOTS);
	for (i = 0; i < 3; i++)
		assert_int_equal(ipcd_mpsc_enqueue(&f->p, 10 + i), 0);
	assert_int_equal(drain(f, out, SLOTS, T0), 3);
	tail = f->shm->tail;
	f->shm->slot[tail & (SLOTS - 1)] = __ipcd_mpsc_pack(tail + 12345, 0xbad);
	(void)drain(f, out, SLOTS, T0);
	(void)drain(f, out, SLOTS, T0 + 10 * SKIP_NS);
	for (i = 0; i < 3 && rc; i++) {
		rc = ipcd_mpsc_enqueue(&f->p, 77);
		(void)drain(f, out, SLOTS, T0 + (20 + i) * SKIP_NS);
	}
	if (rc)
		fail_msg("after the consumer repaired slot %u, enqueue still fails (%d): "
			 "tail %u, consumer head %u", tail, rc, f->shm->tail, f->c.head);
}

/* Garbage tails: no producer or consumer call may hang or touch memory outside. */
static void test_garbage_tail_bounded(void **state)
{
	struct fx *f = *state;
	uint32_t out[SLOTS], pos = 0;
	struct t_rng rng;
	unsigned int i, k;

	t_rng_init(&rng, t_seed() + 11);
	for (i = 0; i < 300; i++) {
		uint32_t tail;

		fx_open(f, SLOTS);
		for (k = 0; k < i % SLOTS; k++)
			assert_int_equal(ipcd_mpsc_enqueue(&f->p, k), 0);
		switch (i % 4) {
		case 0:
			tail = (uint32_t)t_rng_next(&rng);
			break;
		case 1:
			tail = f->shm->tail + SLOTS + t_rng_below(&rng, 1000);
			break;
		case 2:
			tail = f->shm->tail - 1 - t_rng_below(&rng, 1000);
			break;
		default:
			tail = UINT32_MAX - t_rng_below(&rng, 3);
			break;
		}
		f->shm->tail = tail;
		if (i % 8 < 4)	/* sometimes scribble over the slots too */
			t_rng_fill(&rng, f->shm->slot, SLOTS * sizeof(uint64_t));
		for (k = 0; k < 20; k++) {
			int rc = ipcd_mpsc_enqueue(&f->p, k);

			assert_true(rc == 0 || rc == -EAGAIN || rc == -EBUSY);
			rc = ipcd_mpsc_claim(&f->p, &pos);
			assert_true(rc == 0 || rc == -EAGAIN || rc == -EBUSY);
			if (rc == 0) {
				rc = ipcd_mpsc_publish(&f->p, pos, k);
				assert_true(rc == 0 || rc == -ESTALE);
			}
			assert_true(ipcd_mpsc_dequeue_burst(&f->c, out, SLOTS,
							    T0 + k * 2 * SKIP_NS) <= SLOTS);
			assert_true(ipcd_mpsc_depth(&f->c) <= SLOTS);
		}
		k = (unsigned int)-ipcd_mpsc_wait(&f->c, 0, 2 * T_NSEC_PER_MSEC);
		assert_true(k == 0 || k == ETIMEDOUT);
	}
}

static void test_wait_cross_process(void **state)
{
	struct fx *f = *state;
	uint32_t out[SLOTS];
	unsigned int i;

	for (i = 0; i < 8; i++) {
		pid_t pid;

		fx_open(f, SLOTS);
		pid = t_fork(T_CHILD_ALARM);
		if (pid == 0) {
			unsigned int got = 0;
			uint64_t deadline = ipcd_now_ns() + HANG_GUARD_NS;

			while (got == 0 && ipcd_now_ns() < deadline) {
				int rc = ipcd_mpsc_wait(&f->c, 0, HANG_GUARD_NS);

				T_CHECK(rc == 0);
				got = ipcd_mpsc_dequeue_burst(&f->c, out, SLOTS, 0);
			}
			T_CHECK_EQ(got, 1);
			T_CHECK_EQ(out[0], 0x5000u + i);
			_exit(0);
		}
		if (i % 4)
			t_wait_word(&f->shm->cons_wait, 1, 5000);
		assert_int_equal(ipcd_mpsc_enqueue(&f->p, 0x5000u + i), 0);
		assert_int_equal(t_wait(pid, 60000), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_attach_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_full_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stall_skip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stall_then_publish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_slot_repaired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_unclaimed_slot_recovers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_garbage_tail_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_cross_process, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
