/* SPDX-License-Identifier: MIT */
/* mpsc.c - doorbell queue: creation, validation and the consumer. */
#include <errno.h>
#include <string.h>

#include <ipcd/mpsc.h>

int ipcd_mpsc_init(void *mem, uint32_t slots)
{
	struct ipcd_mpsc_shm *s = mem;
	uint32_t i;

	if (!mem || ((uintptr_t)mem & 7) || !IPCD_IS_POW2(slots) || slots < IPCD_MPSC_MIN_SLOTS ||
	    slots > IPCD_MPSC_MAX_SLOTS)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->capacity = slots;
	for (i = 0; i < slots; i++)
		s->slot[i] = __ipcd_mpsc_pack(i, 0);
	return 0;
}

int ipcd_mpsc_attach(struct ipcd_mpsc *q, void *mem, size_t mem_size, uint64_t skip_ns)
{
	struct ipcd_mpsc_shm *s = mem;
	uint32_t slots;

	if (!q || !mem || ((uintptr_t)mem & 7) || mem_size < sizeof(*s))
		return -EINVAL;
	slots = ipcd_load_relaxed(&s->capacity);
	if (!IPCD_IS_POW2(slots) || slots < IPCD_MPSC_MIN_SLOTS || slots > IPCD_MPSC_MAX_SLOTS ||
	    ipcd_mpsc_mem_size(slots) > mem_size)
		return -EPROTO;
	memset(q, 0, sizeof(*q));
	q->shm = s;
	q->capacity = slots;
	q->mask = slots - 1;
	q->head = ipcd_load_relaxed(&s->head);
	q->skip_ns = skip_ns;
	return 0;
}

/*
 * The slot at the head is not published. Decide whether a producer claimed it
 * (tail beyond head) and, if it has been stuck longer than the skip budget,
 * take it away from that producer. Returns true if the head moved.
 */
/*
 * Positions claimed at or beyond @head: 0 if none, and 0 as well after
 * repairing an impossible tail (behind the head, or more than a lap ahead),
 * which only a hostile process can write. Producers then claim from the head
 * again; an honest claim caught by the repair fails its publish with -ESTALE
 * and retries, so nothing is lost or duplicated.
 */
static uint32_t claimed_from(struct ipcd_mpsc *q, uint32_t head)
{
	uint32_t tail = ipcd_load_relaxed(&q->shm->tail);
	uint32_t claimed = tail - head;

	if (claimed > q->capacity) {
		if (ipcd_cas(&q->shm->tail, &tail, head))
			q->corrupt++;
		return 0;
	}
	return claimed;
}

static bool unstick(struct ipcd_mpsc *q, uint64_t *slot, uint32_t head, uint64_t *now_ns)
{
	uint32_t claimed = claimed_from(q, head);
	uint64_t expect;

	if (claimed == 0) {
		q->stall_since = 0;	/* empty */
		return false;
	}
	if (!*now_ns)
		*now_ns = ipcd_now_ns();
	if (!q->stall_since) {
		q->stall_since = *now_ns;
		return false;
	}
	if (*now_ns - q->stall_since < q->skip_ns)
		return false;
	expect = __ipcd_mpsc_pack(head, 0);
	if (!ipcd_cas(slot, &expect, __ipcd_mpsc_pack(head + q->capacity, 0)))
		return false;	/* published meanwhile: the caller looks again */
	q->skipped++;
	q->stall_since = 0;
	return true;
}

unsigned int ipcd_mpsc_dequeue_burst(struct ipcd_mpsc *q, uint32_t *out, unsigned int n,
				     uint64_t now_ns)
{
	struct ipcd_mpsc_shm *s = q->shm;
	uint32_t head = q->head;
	unsigned int got = 0;
	unsigned int budget = n + 4;	/* bounds skips and repairs per call */

	while (got < n && budget--) {
		uint64_t *slot = __ipcd_mpsc_slot(q, head);
		uint64_t v = ipcd_load_acquire(slot);	/* A1: pairs with R1 */
		uint32_t seq = (uint32_t)v;

		if (seq == head + 1) {
			out[got++] = (uint32_t)(v >> 32);
			/* R2: frees the slot for the next lap; pairs with A2 */
			ipcd_store_release(slot, __ipcd_mpsc_pack(head + q->capacity, 0));
			head++;
			q->stall_since = 0;
		} else if (v == __ipcd_mpsc_pack(head, 0)) {
			/*
			 * Free, or claimed and not published yet. Only {head, 0}:
			 * unstick() skips a stalled claim by CAS from exactly that,
			 * so a slot with the head's sequence and a payload (which no
			 * honest party writes) waited there forever, and every
			 * doorbell behind it with it (found by tests/fuzz/fuzz_mpsc).
			 */
			if (!unstick(q, slot, head, &now_ns))
				break;
			head++;
		} else {
			/*
			 * Honest parties only ever leave {head, 0} or {head + 1, v}
			 * here: a hostile process wrote this slot. If a producer had
			 * claimed it, drop the claim like a skip (its publish gets
			 * -ESTALE); if not, give the slot back to the current lap and
			 * stay.
			 */
			q->corrupt++;
			q->stall_since = 0;
			if (claimed_from(q, head) == 0) {
				ipcd_store_release(slot, __ipcd_mpsc_pack(head, 0));
				break;
			}
			ipcd_store_release(slot, __ipcd_mpsc_pack(head + q->capacity, 0));
			head++;
		}
	}
	q->head = head;
	ipcd_store_relaxed(&s->head, head);
	ipcd_store_relaxed(&s->cons_heartbeat, ipcd_load_relaxed(&s->cons_heartbeat) + 1);
	ipcd_store_relaxed(&s->skipped, q->skipped);
	ipcd_store_relaxed(&s->corrupt, q->corrupt);
	return got;
}

int ipcd_mpsc_wait(struct ipcd_mpsc *q, uint64_t spin_ns, int64_t timeout_ns)
{
	uint64_t deadline = ipcd_deadline(timeout_ns);
	uint64_t end = spin_ns ? ipcd_now_ns() + spin_ns : 0;
	unsigned int i;

	for (;;) {
		for (i = 0; i < 64; i++) {
			if (ipcd_mpsc_ready(q))
				return 0;
			ipcd_cpu_relax();
		}
		if (ipcd_now_ns() >= end)
			break;
	}
	for (;;) {
		int64_t left = ipcd_remaining(deadline);
		bool claimed;
		int rc;

		if (left == 0)
			return -ETIMEDOUT;
		ipcd_doorbell_arm(&q->shm->cons_wait);
		if (ipcd_mpsc_ready(q))
			return 0;
		/*
		 * A claim that is not published yet: its producer rings when it
		 * publishes, but it may be dead, so sleep no longer than the skip
		 * budget and let the caller's next dequeue decide.
		 */
		claimed = ipcd_mpsc_claim_pending(q);
		if (claimed && (left < 0 || (uint64_t)left > q->skip_ns))
			left = (int64_t)q->skip_ns;
		rc = ipcd_futex_wait(&q->shm->cons_wait, 1, left);
		if (rc == -EINTR)
			return -EINTR;
		if (ipcd_mpsc_ready(q) || claimed)
			return 0;
	}
}
