/* SPDX-License-Identifier: MIT */
/*
 * mpsc.h - multi-producer/single-consumer doorbell queue in shared memory.
 *
 * Layout and the claim/publish/skip rules: struct ipcd_mpsc_shm in
 * shm_abi.h. Entries are 32-bit payloads. Producers are lock-free (CAS on
 * the tail, then one CAS to publish); the consumer never waits on a producer
 * for longer than its skip budget.
 *
 * Ordering points:
 *   R1 producer: CAS {p,0} -> {p+1,v}                 -> A1 consumer: acquire-load of slot
 *   R2 consumer: CAS/store {p+cap,0} after reading v  -> A2 producer: acquire-load of slot
 *   doorbell: S1/W1 in wait.h on cons_wait.
 */
#ifndef IPCD_MPSC_H
#define IPCD_MPSC_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomic.h"
#include "compiler.h"
#include "shm_abi.h"
#include "wait.h"

/* A producer gives up after this many lost CAS races or unexpected slots. */
#define IPCD_MPSC_MAX_TRIES	4096u

/**
 * struct ipcd_mpsc - a process's handle on a doorbell queue.
 *
 * Producers use only @shm, @capacity and @mask. The consumer's position and
 * stall clock are private to the consumer, so no producer can move them.
 */
struct ipcd_mpsc {
	struct ipcd_mpsc_shm *shm;
	uint32_t capacity;
	uint32_t mask;
	/* consumer only */
	uint32_t head;
	uint32_t pad;
	uint64_t stall_since;	/* ns; 0: the head slot is not stalled */
	uint64_t skip_ns;	/* how long a claimed, unpublished slot may block */
	uint64_t skipped;
	uint64_t corrupt;
};

/** ipcd_mpsc_mem_size - bytes for a queue of @slots entries. */
static inline size_t ipcd_mpsc_mem_size(uint32_t slots)
{
	return sizeof(struct ipcd_mpsc_shm) + (size_t)slots * sizeof(uint64_t);
}

/**
 * ipcd_mpsc_init - format a queue in @mem (creator side).
 * @slots: power of two in [IPCD_MPSC_MIN_SLOTS, IPCD_MPSC_MAX_SLOTS].
 * Returns 0 or -EINVAL.
 */
int ipcd_mpsc_init(void *mem, uint32_t slots);

/**
 * ipcd_mpsc_attach - validate the queue of @mem_size bytes at @mem.
 * @skip_ns: consumer's stall budget (ignored by producers).
 * Returns 0, -EINVAL or -EPROTO.
 */
int ipcd_mpsc_attach(struct ipcd_mpsc *q, void *mem, size_t mem_size, uint64_t skip_ns);

static __ipcd_always_inline uint64_t __ipcd_mpsc_pack(uint32_t seq, uint32_t payload)
{
	return (uint64_t)payload << 32 | seq;
}

static __ipcd_always_inline uint64_t *__ipcd_mpsc_slot(const struct ipcd_mpsc *q, uint32_t pos)
{
	return &q->shm->slot[pos & q->mask];
}

/**
 * ipcd_mpsc_claim - reserve the next slot (first half of an enqueue).
 * @pos: receives the claimed position.
 *
 * Returns 0, -EAGAIN if the queue is full, or -EBUSY after
 * IPCD_MPSC_MAX_TRIES lost races (hostile or pathological contention).
 */
static inline int ipcd_mpsc_claim(struct ipcd_mpsc *q, uint32_t *pos)
{
	uint32_t p = ipcd_load_relaxed(&q->shm->tail);
	unsigned int tries;

	for (tries = 0; tries < IPCD_MPSC_MAX_TRIES; tries++) {
		uint32_t seq = (uint32_t)ipcd_load_acquire(__ipcd_mpsc_slot(q, p)); /* A2 */
		int32_t dif = (int32_t)(seq - p);

		if (dif == 0) {
			if (ipcd_cas(&q->shm->tail, &p, p + 1)) {
				*pos = p;
				return 0;
			}
			continue;		/* p now holds the current tail */
		}
		if (dif < 0)
			return -EAGAIN;		/* slot still holds the previous lap */
		p = ipcd_load_relaxed(&q->shm->tail);	/* another producer got there */
		ipcd_cpu_relax();
	}
	return -EBUSY;
}

/* Fill the slot claimed at @pos without waking anyone; -ESTALE if skipped. */
static __ipcd_always_inline int __ipcd_mpsc_commit(struct ipcd_mpsc *q, uint32_t pos,
						   uint32_t payload)
{
	uint64_t expect = __ipcd_mpsc_pack(pos, 0);

	/* R1: pairs with A1 in ipcd_mpsc_dequeue_burst */
	if (!ipcd_cas(__ipcd_mpsc_slot(q, pos), &expect, __ipcd_mpsc_pack(pos + 1, payload)))
		return -ESTALE;
	return 0;
}

/**
 * ipcd_mpsc_publish - fill the slot claimed at @pos (second half) and wake a
 * consumer sleeping in ipcd_mpsc_wait().
 *
 * Returns 0, or -ESTALE if the consumer already skipped this claim because
 * it stalled too long: nothing was written, enqueue again.
 */
static inline int ipcd_mpsc_publish(struct ipcd_mpsc *q, uint32_t pos, uint32_t payload)
{
	int rc = __ipcd_mpsc_commit(q, pos, payload);

	if (!rc)
		ipcd_doorbell_ring(&q->shm->cons_wait);
	return rc;
}

/**
 * ipcd_mpsc_push - claim and publish one entry, retrying after a skip, without
 * waking the consumer: for callers with a wake-up scheme of their own (the
 * monitor's request queues). Returns 0, -EAGAIN (full) or -EBUSY.
 */
static inline int ipcd_mpsc_push(struct ipcd_mpsc *q, uint32_t payload)
{
	unsigned int tries;
	uint32_t pos;
	int rc;

	for (tries = 0; tries < IPCD_MPSC_MAX_TRIES; tries++) {
		rc = ipcd_mpsc_claim(q, &pos);
		if (rc)
			return rc;
		rc = __ipcd_mpsc_commit(q, pos, payload);
		if (rc != -ESTALE)
			return rc;
	}
	return -EBUSY;
}

/**
 * ipcd_mpsc_enqueue - ipcd_mpsc_push(), then wake a consumer sleeping in
 * ipcd_mpsc_wait(). Returns 0, -EAGAIN (full) or -EBUSY.
 */
static inline int ipcd_mpsc_enqueue(struct ipcd_mpsc *q, uint32_t payload)
{
	int rc = ipcd_mpsc_push(q, payload);

	if (!rc)
		ipcd_doorbell_ring(&q->shm->cons_wait);
	return rc;
}

/** ipcd_mpsc_ready - consumer: true if the head slot holds an entry (or garbage to repair). */
static inline bool ipcd_mpsc_ready(const struct ipcd_mpsc *q)
{
	return (uint32_t)ipcd_load_acquire(__ipcd_mpsc_slot(q, q->head)) != q->head;
}

/** ipcd_mpsc_claim_pending - consumer: true if a producer claimed the head slot. */
static inline bool ipcd_mpsc_claim_pending(const struct ipcd_mpsc *q)
{
	return ipcd_load_relaxed(&q->shm->tail) != q->head;
}

/**
 * ipcd_mpsc_dequeue_burst - take up to @n entries into @out (consumer only).
 * @now_ns: the caller's clock, used only to time a stalled producer;
 *          0 lets the queue read the clock when it needs it.
 *
 * Never blocks. A slot claimed but not published for longer than the skip
 * budget is skipped (and counted); a slot holding an impossible sequence is
 * repaired (and counted). Returns the number of entries taken.
 */
unsigned int ipcd_mpsc_dequeue_burst(struct ipcd_mpsc *q, uint32_t *out, unsigned int n,
				     uint64_t now_ns);

/** ipcd_mpsc_depth - claimed but not yet consumed positions (informational). */
static inline uint32_t ipcd_mpsc_depth(const struct ipcd_mpsc *q)
{
	uint32_t d = ipcd_load_relaxed(&q->shm->tail) - q->head;

	return d > q->capacity ? 0 : d;
}

/**
 * ipcd_mpsc_wait - consumer: spin up to @spin_ns, then sleep until an entry
 * may be ready or @timeout_ns passes. Returns 0, -ETIMEDOUT or -EINTR.
 */
int ipcd_mpsc_wait(struct ipcd_mpsc *q, uint64_t spin_ns, int64_t timeout_ns);

#endif /* IPCD_MPSC_H */
