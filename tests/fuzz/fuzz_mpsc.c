/* SPDX-License-Identifier: MIT */
/*
 * fuzz_mpsc.c - the doorbell queue (queues/mpsc.c, include/ipcd/mpsc.h) that
 * every process in shared mode can write.
 *
 * The monitor is the consumer; any client can write any slot, the tail, the
 * head and the doorbell word of the shared queue, between and during the
 * monitor's dequeues. The input interleaves such writes with honest
 * producers (claim, publish, push) and the consumer's dequeue_burst, with a
 * clock the input moves (so skips of stalled claims happen). Checked: every
 * call returns, with counts in range; the consumer's private head only
 * moves forward by at most what one burst may take; and once the hostile
 * writes stop, the consumer repairs whatever they left: an honest doorbell
 * goes through again within a bounded number of polls.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ipcd/mpsc.h>

#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS		512
#define MAX_CLAIMS	16

enum op {
	OP_SLOT,		/* a hostile process writes one slot */
	OP_TAIL,		/* ... the tail */
	OP_WORD,		/* ... head, heartbeat, counters, the doorbell word */
	OP_CLAIM,
	OP_PUBLISH,
	OP_PUSH,
	OP_DEQUEUE,
	OP_CLOCK,
	OP_QUERY,
	OP_WAIT,
	OP_COUNT
};

/*
 * The hostile process stopped: the consumer, polling as the monitor does,
 * must bring the queue back so that an honest doorbell goes through again
 * (pushes may fail meanwhile: that doorbell's request waits for the sweep).
 */
static void recover(struct ipcd_mpsc *prod, struct ipcd_mpsc *cons, uint64_t now)
{
	uint32_t out[64], rounds;
	bool pushed = false;

	for (rounds = 0; rounds < 2 * cons->capacity + 8; rounds++) {
		unsigned int got, i;

		now += cons->skip_ns + 1;
		got = ipcd_mpsc_dequeue_burst(cons, out, 64, now);
		for (i = 0; i < got; i++)
			if (pushed && out[i] == 0xfeedf00d)
				return;
		if (!pushed)
			pushed = ipcd_mpsc_push(prod, 0xfeedf00d) == 0;
	}
	FZ_CHECK(!"the queue never recovered from what a hostile process left in it");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t words[] = {
		offsetof(struct ipcd_mpsc_shm, head),
		offsetof(struct ipcd_mpsc_shm, cons_heartbeat),
		offsetof(struct ipcd_mpsc_shm, cons_wait),
		offsetof(struct ipcd_mpsc_shm, capacity),
	};
	struct fz f = { .p = data, .n = size };
	uint32_t slots = IPCD_MPSC_MIN_SLOTS << (fz_u8(&f) % 6);	/* 8 .. 256 */
	size_t mem_size = ipcd_mpsc_mem_size(slots);
	uint32_t claims[MAX_CLAIMS], n_claims = 0;
	struct ipcd_mpsc prod, cons;
	uint64_t now = 1;
	unsigned int ops;
	uint8_t *mem;

	/* As aligned as the struct (a region area is); exactly its size for ASan. */
	if (posix_memalign((void **)&mem, IPCD_CACHE_GUARD, mem_size))
		return 0;
	memset(mem, 0, mem_size);
	if (ipcd_mpsc_init(mem, slots) || ipcd_mpsc_attach(&prod, mem, mem_size, 0) ||
	    ipcd_mpsc_attach(&cons, mem, mem_size, 1000 + fz_u16(&f))) {
		free(mem);
		return 0;
	}
	for (ops = 0; ops < MAX_OPS && fz_more(&f); ops++) {
		switch (fz_u8(&f) % OP_COUNT) {
		case OP_SLOT: {
			uint32_t i = fz_u32(&f), seq = fz_u32(&f), payload = fz_u32(&f);

			/* Often a sequence near the consumer's: the interesting ones. */
			if (fz_u8(&f) & 1)
				seq = cons.head + (seq & 0xf) - 8;
			((struct ipcd_mpsc_shm *)(void *)mem)->slot[i % slots] = __ipcd_mpsc_pack(seq, payload);
			break;
		}
		case OP_TAIL: {
			uint32_t v = fz_u32(&f);

			if (fz_u8(&f) & 1)
				v = cons.head + (v & 0x1ff) - 0x100;
			ipcd_store_relaxed(&((struct ipcd_mpsc_shm *)(void *)mem)->tail, v);
			break;
		}
		case OP_WORD: {
			uint32_t v = fz_u32(&f);

			memcpy(mem + words[fz_u8(&f) % IPCD_ARRAY_SIZE(words)], &v, sizeof(v));
			break;
		}
		case OP_CLAIM: {
			uint32_t pos;
			int rc = ipcd_mpsc_claim(&prod, &pos);

			FZ_CHECK(rc == 0 || rc == -EAGAIN || rc == -EBUSY);
			if (rc == 0 && n_claims < MAX_CLAIMS)
				claims[n_claims++] = pos;
			break;
		}
		case OP_PUBLISH: {
			uint32_t payload = fz_u32(&f);
			int rc;

			if (!n_claims)
				break;
			rc = ipcd_mpsc_publish(&prod, claims[--n_claims], payload);
			FZ_CHECK(rc == 0 || rc == -ESTALE);
			break;
		}
		case OP_PUSH: {
			int rc = ipcd_mpsc_push(&prod, fz_u32(&f));

			FZ_CHECK(rc == 0 || rc == -EAGAIN || rc == -EBUSY);
			break;
		}
		case OP_DEQUEUE: {
			uint32_t out[64], before = cons.head;
			unsigned int n = fz_u8(&f) % 65;
			unsigned int got = ipcd_mpsc_dequeue_burst(&cons, out, n, now);

			FZ_CHECK(got <= n);
			/* Each step of the head is an entry, a skip or a repair: n + 4 at most. */
			FZ_CHECK(cons.head - before <= n + 4);
			FZ_CHECK(ipcd_mpsc_depth(&cons) <= cons.capacity);
			break;
		}
		case OP_CLOCK:
			now += (uint64_t)fz_u16(&f) * 16;
			break;
		case OP_QUERY:
			(void)ipcd_mpsc_ready(&cons);
			(void)ipcd_mpsc_claim_pending(&cons);
			FZ_CHECK(ipcd_mpsc_depth(&cons) <= cons.capacity);
			break;
		case OP_WAIT: {
			/* No spin, no time: returns at once whatever the slots say. */
			int rc = ipcd_mpsc_wait(&cons, 0, 0);

			FZ_CHECK(rc == 0 || rc == -ETIMEDOUT);
			break;
		}
		}
	}
	recover(&prod, &cons, now);
	free(mem);
	return 0;
}
