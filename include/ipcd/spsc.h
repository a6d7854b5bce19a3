/* SPDX-License-Identifier: MIT */
/*
 * spsc.h - single-producer/single-consumer ring of records in shared memory.
 *
 * Layout and publication rules: struct ipcd_spsc_shm in shm_abi.h. One ring
 * serves two uses, fixed when the ring is created:
 *  - message mode: each send is one record, each receive returns one whole
 *    record (connection-level messages, monitor requests and responses);
 *  - stream mode: each write is one record, reads take any number of bytes
 *    across record boundaries (TCP-like byte streams, partial reads).
 *
 * Ordering points (each has its partner):
 *   R1 producer: release-store of a record header   -> A1 consumer: acquire-load of it
 *   R2 consumer: release-store of head             -> A2 producer: acquire-load of it
 *   R3 producer: release-store of prod_closed       -> A3 consumer: acquire-load of it
 *   doorbells: S1/W1 in wait.h.
 *
 * The peer is untrusted: every index and length read from shared memory is
 * checked before use, and a violation returns -EPROTO (the caller tears the
 * channel down). Copies are always masked into the ring, so a corrupted ring
 * can never make us read or write outside it.
 *
 * Return convention: counts or 0 on success, -errno on failure; -EAGAIN means
 * "would block" (full for a producer, empty for a consumer).
 */
#ifndef IPCD_SPSC_H
#define IPCD_SPSC_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "atomic.h"
#include "compiler.h"
#include "shm_abi.h"
#include "wait.h"

IPCD_BUILD_ASSERT(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);	/* rec header packing */

/**
 * struct ipcd_spsc - one process's handle on an SPSC ring.
 *
 * The geometry is a validated private copy: nothing the peer later writes to
 * the shared control block can change it.
 */
struct ipcd_spsc {
	struct ipcd_spsc_shm *shm;
	uint8_t *data;
	uint32_t capacity;
	uint32_t mask;
	uint32_t max_msg;
	uint32_t flags;
	uint32_t head_cache;	/* producer side: last head seen (A2) */
	int32_t wake_fd;	/* the other side's wake eventfd (IPCD_DB_EVENT); -1: none */
	/*
	 * A ring whose other side is on another host (IPCD_DB_REMOTE): after
	 * a publish (or a consume) that finds @remote_word set, @remote is
	 * called instead of a wake-up, with @room as __ipcd_spsc_wake's. NULL:
	 * a local ring, whatever the shared word says.
	 */
	uint32_t *remote_word;
	void (*remote)(const struct ipcd_spsc *r, bool room);
	void *remote_arg;
};

/* ipcd_spsc_read() flags */
#define IPCD_SPSC_PEEK		(1u << 0)	/* copy without consuming */
/*
 * Stream mode, marks: a zero-length record (ipcd_spsc_mark) is a mark, a
 * point in the stream something else is attached to (a UNIX socket's
 * ancillary data, preload/data.c). IPCD_SPSC_MARKS: a read stops before a
 * mark, and fails with -ENOMSG if it starts at one. IPCD_SPSC_PAST_MARK:
 * as MARKS, but a mark where the read starts is stepped over (consumed,
 * unless IPCD_SPSC_PEEK). Without either flag a mark is read as nothing.
 */
#define IPCD_SPSC_MARKS		(1u << 1)
#define IPCD_SPSC_PAST_MARK	(1u << 2)

/**
 * ipcd_spsc_mem_size - bytes needed for a ring of @capacity data bytes.
 */
static inline size_t ipcd_spsc_mem_size(uint32_t capacity)
{
	return sizeof(struct ipcd_spsc_shm) + capacity;
}

/**
 * ipcd_spsc_init - format a ring in @mem (creator side, before publication).
 * @mem:      ipcd_spsc_mem_size(@capacity) bytes, 8-byte aligned, zeroed.
 * @capacity: data bytes, a power of two in [IPCD_SPSC_MIN_CAPACITY, MAX].
 * @max_msg:  largest record payload; 0 means the largest that fits.
 * @flags:    IPCD_SPSC_F_*.
 *
 * Returns 0 or -EINVAL.
 */
int ipcd_spsc_init(void *mem, uint32_t capacity, uint32_t max_msg, uint32_t flags);

/**
 * ipcd_spsc_attach - validate a ring of @mem_size bytes at @mem and fill @r.
 *
 * Safe on hostile memory: the geometry is copied, then checked against
 * @mem_size. Returns 0, -EINVAL (bad arguments) or -EPROTO (bad ring).
 */
int ipcd_spsc_attach(struct ipcd_spsc *r, void *mem, size_t mem_size);

/* ---- internals ---------------------------------------------------------- */

static __ipcd_always_inline uint32_t __ipcd_rec_size(uint32_t len)
{
	return (uint32_t)sizeof(struct ipcd_rec_hdr) + IPCD_ALIGN_UP(len, IPCD_REC_ALIGN);
}

static __ipcd_always_inline uint64_t __ipcd_rec_pack(uint32_t len, uint32_t seq)
{
	return (uint64_t)seq << 32 | len;	/* == struct ipcd_rec_hdr on little endian */
}

/*
 * Header slot at @pos. Callers pass only positions checked to be 8-aligned;
 * the extra mask keeps even an unchecked one inside the ring.
 */
static __ipcd_always_inline uint64_t *__ipcd_rec_at(const struct ipcd_spsc *r, uint32_t pos)
{
	return (uint64_t *)(void *)(r->data + (pos & r->mask & ~(IPCD_REC_ALIGN - 1)));
}

/* Copy @len bytes into the ring starting at position @pos, wrapping once. */
static __ipcd_always_inline void __ipcd_spsc_copy_in(const struct ipcd_spsc *r, uint32_t pos,
						      const void *src, size_t len)
{
	uint32_t off = pos & r->mask;
	size_t first = r->capacity - off;

	if (likely(len <= first)) {
		memcpy(r->data + off, src, len);
	} else {
		memcpy(r->data + off, src, first);
		memcpy(r->data, (const uint8_t *)src + first, len - first);
	}
}

static __ipcd_always_inline void __ipcd_spsc_copy_out(const struct ipcd_spsc *r, uint32_t pos,
						       void *dst, size_t len)
{
	uint32_t off = pos & r->mask;
	size_t first = r->capacity - off;

	if (likely(len <= first)) {
		memcpy(dst, r->data + off, len);
	} else {
		memcpy(dst, r->data + off, first);
		memcpy((uint8_t *)dst + first, r->data, len - first);
	}
}

/*
 * Bytes the producer may still use at @tail, refreshing the cached head only
 * when the cache says there is not enough. -EPROTO if the consumer's head is
 * impossible.
 */
static __ipcd_always_inline int64_t __ipcd_spsc_room(struct ipcd_spsc *r, uint32_t tail,
						     uint32_t need)
{
	uint32_t used = tail - r->head_cache;
	uint32_t head;

	/* Our own index lives in memory the peer can write, too. */
	if (unlikely(tail & (IPCD_REC_ALIGN - 1)))
		return -EPROTO;
	if (likely(used <= r->capacity && r->capacity - used >= need))
		return r->capacity - used;
	head = ipcd_load_acquire(&r->shm->head);	/* A2: pairs with R2 in the consumer */
	used = tail - head;
	if (unlikely(used > r->capacity || (head & (IPCD_REC_ALIGN - 1)) != 0))
		return -EPROTO;
	r->head_cache = head;
	return r->capacity - used;
}

/*
 * Write one record of @len payload bytes gathered from @iov at @tail (room
 * already checked, including the 8 bytes of the next header's stamp).
 * Returns the next tail. The caller publishes prod counters and rings.
 */
static __ipcd_always_inline uint32_t __ipcd_spsc_put(struct ipcd_spsc *r, uint32_t tail,
						     const void *buf, uint32_t len)
{
	uint32_t next = tail + __ipcd_rec_size(len);

	__ipcd_spsc_copy_in(r, tail + (uint32_t)sizeof(struct ipcd_rec_hdr), buf, len);
	/* Stamp the next slot as not-yet-written before this record becomes visible. */
	ipcd_store_relaxed(__ipcd_rec_at(r, next), __ipcd_rec_pack(0, ~next));
	/* R1: publishes payload and stamp; pairs with A1 in __ipcd_spsc_peek */
	ipcd_store_release(__ipcd_rec_at(r, tail), __ipcd_rec_pack(len, tail));
	return next;
}

/*
 * Wake whoever announced a sleep in @word (cleared), by each means it named.
 * The slow half of __ipcd_spsc_wake(); also what a remote ring's progress
 * thread calls when the other host's data or room arrives.
 */
static inline void ipcd_spsc_wake_now(const struct ipcd_spsc *r, uint32_t *word, bool room)
{
	uint32_t v = ipcd_xchg(word, 0);

	if (v & IPCD_DB_FUTEX)
		ipcd_futex_wake(word);
	if ((v & IPCD_DB_EVENT) && r->wake_fd >= 0) {
		if (room)
			ipcd_eventfd_signal_out(r->wake_fd);
		else
			ipcd_eventfd_signal(r->wake_fd);
	}
}

/*
 * After publishing (W1 in wait.h): wake the other side if it announced a
 * sleep in @word, by each means it named. No syscall while nobody sleeps.
 * @room: the word is the producer's (we freed room): an eventfd sleeper
 * may be waiting for EPOLLOUT, which only a read of the eventfd signals.
 */
static __ipcd_always_inline void __ipcd_spsc_wake(const struct ipcd_spsc *r, uint32_t *word,
						   bool room)
{
	ipcd_smp_mb();	/* W1: orders the caller's publish before the load; pairs with S1 */
	if (likely(ipcd_load_relaxed(word) == 0))
		return;
	if (unlikely(word == r->remote_word)) {
		r->remote(r, room);
		return;
	}
	ipcd_spsc_wake_now(r, word, room);
}

static __ipcd_always_inline void __ipcd_spsc_produced(struct ipcd_spsc *r, uint32_t tail,
						      uint64_t bytes, uint32_t msgs)
{
	struct ipcd_spsc_shm *s = r->shm;

	ipcd_store_relaxed(&s->tail, tail);
	ipcd_store_relaxed(&s->prod_bytes, ipcd_load_relaxed(&s->prod_bytes) + bytes);
	ipcd_store_relaxed(&s->prod_msgs, ipcd_load_relaxed(&s->prod_msgs) + msgs);
	__ipcd_spsc_wake(r, &s->cons_wait, false);
}

/*
 * Look at the record at the consumer's head. Returns its payload length,
 * -EAGAIN if none is published yet, -EPROTO if the header is impossible.
 */
static __ipcd_always_inline int64_t __ipcd_spsc_peek(const struct ipcd_spsc *r, uint32_t head)
{
	uint64_t h;

	/*
	 * A record of more than a few bytes spans two cache lines. Ask for the
	 * second one while we look at the header, so that the two transfers
	 * overlap instead of the payload's waiting for the header's.
	 */
	if (unlikely(head & (IPCD_REC_ALIGN - 1)))
		return -EPROTO;		/* the peer wrote our index */
	__builtin_prefetch(r->data + ((head + IPCD_CACHE_LINE) & r->mask));
	h = ipcd_load_acquire(__ipcd_rec_at(r, head));	/* A1: pairs with R1 */
	uint32_t len = (uint32_t)h;

	if ((uint32_t)(h >> 32) != head)
		return -EAGAIN;
	if (unlikely(len > r->max_msg))
		return -EPROTO;
	return len;
}

/* ---- producer ----------------------------------------------------------- */

/**
 * ipcd_spsc_send - append one message (message mode).
 *
 * Returns 0, -EAGAIN (no room now), -EMSGSIZE (@len > max_msg), -EPIPE
 * (consumer closed) or -EPROTO (ring corrupted by the peer).
 */
static inline int ipcd_spsc_send(struct ipcd_spsc *r, const void *msg, uint32_t len)
{
	uint32_t tail = ipcd_load_relaxed(&r->shm->tail);
	uint32_t need = __ipcd_rec_size(len) + (uint32_t)sizeof(struct ipcd_rec_hdr);
	int64_t room;

	if (unlikely(len > r->max_msg))
		return -EMSGSIZE;
	if (unlikely(ipcd_load_relaxed(&r->shm->cons_closed)))
		return -EPIPE;
	room = __ipcd_spsc_room(r, tail, need);
	if (unlikely(room < (int64_t)need))
		return room < 0 ? (int)room : -EAGAIN;
	tail = __ipcd_spsc_put(r, tail, msg, len);
	__ipcd_spsc_produced(r, tail, len, 1);
	return 0;
}

/**
 * ipcd_spsc_mark - append a mark (a zero-length record; IPCD_SPSC_MARKS).
 * Returns 0, -EAGAIN (no room now), -EPIPE or -EPROTO.
 */
static inline int ipcd_spsc_mark(struct ipcd_spsc *r)
{
	static const uint8_t none;

	return ipcd_spsc_send(r, &none, 0);
}

/**
 * ipcd_spsc_send_burst - append as many of @n messages as fit, ringing once.
 *
 * Returns how many were appended (possibly 0), or -EMSGSIZE / -EPIPE /
 * -EPROTO if nothing was appended because of that error.
 */
int ipcd_spsc_send_burst(struct ipcd_spsc *r, const struct iovec *msgs, unsigned int n);

/**
 * ipcd_spsc_writev - append up to the sum of @iov bytes (stream mode).
 *
 * Partial writes as the kernel does them: returns the bytes appended (> 0),
 * -EAGAIN if there was no room for a single byte, -EPIPE or -EPROTO.
 */
ssize_t ipcd_spsc_writev(struct ipcd_spsc *r, const struct iovec *iov, int iovcnt);

static inline ssize_t ipcd_spsc_write(struct ipcd_spsc *r, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };

	return ipcd_spsc_writev(r, &iov, 1);
}

/** ipcd_spsc_close_prod - no more data: the consumer drains, then sees EOF. */
static inline void ipcd_spsc_close_prod(struct ipcd_spsc *r)
{
	ipcd_store_release(&r->shm->prod_closed, 1);	/* R3: pairs with A3 */
	__ipcd_spsc_wake(r, &r->shm->cons_wait, false);
}

/** ipcd_spsc_close_cons - nobody reads any more: the producer gets -EPIPE. */
static inline void ipcd_spsc_close_cons(struct ipcd_spsc *r)
{
	ipcd_store_release(&r->shm->cons_closed, 1);
	__ipcd_spsc_wake(r, &r->shm->prod_wait, true);
}

/* ---- consumer ----------------------------------------------------------- */

/**
 * ipcd_spsc_recv - take one whole message (message mode).
 *
 * Copies min(len, @buflen) bytes to @buf and consumes the message, like a
 * datagram socket. Returns the message's full length (compare with @buflen
 * to detect truncation), -EAGAIN if none is ready, -EPIPE once the producer
 * closed and the ring is drained (messages may be empty, so EOF cannot be 0),
 * or -EPROTO on a corrupted ring.
 */
static inline ssize_t ipcd_spsc_recv(struct ipcd_spsc *r, void *buf, size_t buflen)
{
	struct ipcd_spsc_shm *s = r->shm;
	uint32_t head = ipcd_load_relaxed(&s->head);
	int64_t len = __ipcd_spsc_peek(r, head);

	if (unlikely(len < 0)) {
		if (len == -EAGAIN && ipcd_load_acquire(&s->prod_closed) &&	/* A3 */
		    __ipcd_spsc_peek(r, head) == -EAGAIN)
			return -EPIPE;
		return len;
	}
	__ipcd_spsc_copy_out(r, head + (uint32_t)sizeof(struct ipcd_rec_hdr), buf,
			     IPCD_MIN((size_t)len, buflen));
	ipcd_store_relaxed(&s->cons_bytes, ipcd_load_relaxed(&s->cons_bytes) + (uint64_t)len);
	ipcd_store_relaxed(&s->cons_msgs, ipcd_load_relaxed(&s->cons_msgs) + 1);
	/* R2: the slot may be reused only after our copy; pairs with A2 */
	ipcd_store_release(&s->head, head + __ipcd_rec_size((uint32_t)len));
	__ipcd_spsc_wake(r, &s->prod_wait, true);
	return len;
}

/**
 * ipcd_spsc_recv_burst - take up to @n whole messages, freeing space once.
 * @buf:  messages are copied back to back, each starting 8-byte aligned.
 * @lens: receives each message's length.
 *
 * Stops early at the first message that does not fit in what remains of
 * @buflen. Returns the count taken (0 if none is ready), or -EPROTO.
 */
int ipcd_spsc_recv_burst(struct ipcd_spsc *r, void *buf, size_t buflen, uint32_t *lens,
			 unsigned int n);

/**
 * ipcd_spsc_readv - take up to the sum of @iov bytes (stream mode).
 * @flags: IPCD_SPSC_PEEK to copy without consuming; IPCD_SPSC_MARKS,
 *         IPCD_SPSC_PAST_MARK (above).
 *
 * Returns the bytes copied (> 0), 0 at end of stream (producer closed and
 * ring drained), -EAGAIN if empty, -ENOMSG at a mark (IPCD_SPSC_MARKS), or
 * -EPROTO.
 */
ssize_t ipcd_spsc_readv(struct ipcd_spsc *r, const struct iovec *iov, int iovcnt,
			unsigned int flags);

static inline ssize_t ipcd_spsc_read(struct ipcd_spsc *r, void *buf, size_t len,
				     unsigned int flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return ipcd_spsc_readv(r, &iov, 1, flags);
}

/** ipcd_spsc_readable - true if a record is ready or the producer closed. */
static inline bool ipcd_spsc_readable(const struct ipcd_spsc *r)
{
	return __ipcd_spsc_peek(r, ipcd_load_relaxed(&r->shm->head)) != -EAGAIN ||
	       ipcd_load_acquire(&r->shm->prod_closed) != 0;
}

/**
 * ipcd_spsc_mark_ready - at a mark (the consumer's head): the length of the
 * record that follows it (1 if that is a mark too, or corrupt), 0 if
 * nothing will (the producer closed), -EAGAIN if nothing follows yet,
 * -EINVAL if the head is not a mark.
 */
static inline int64_t ipcd_spsc_mark_ready(const struct ipcd_spsc *r)
{
	uint32_t head = ipcd_load_relaxed(&r->shm->head);
	int64_t len;

	if (__ipcd_spsc_peek(r, head) != 0)
		return -EINVAL;
	len = __ipcd_spsc_peek(r, head + __ipcd_rec_size(0));
	if (len != -EAGAIN)
		return len > 0 ? len : 1;
	return ipcd_load_acquire(&r->shm->prod_closed) &&
	       __ipcd_spsc_peek(r, head + __ipcd_rec_size(0)) == -EAGAIN ? 0 : -EAGAIN;
}

/**
 * ipcd_spsc_unread - true if a record is published at the consumer's head
 * (whole or partly read): data this consumer has not read. Only the consumer
 * may ask. The byte counters cannot answer it: the producer adds to
 * prod_bytes after it publishes, so a consumer that has just read a record
 * may find prod_bytes behind cons_bytes.
 */
static inline bool ipcd_spsc_unread(const struct ipcd_spsc *r)
{
	return __ipcd_spsc_peek(r, ipcd_load_relaxed(&r->shm->head)) != -EAGAIN;
}

/**
 * ipcd_spsc_bytes_ready - payload bytes the consumer could read now (FIONREAD).
 * Approximate only while the producer is writing concurrently.
 */
static inline uint64_t ipcd_spsc_bytes_ready(const struct ipcd_spsc *r)
{
	uint64_t in = ipcd_load_acquire(&r->shm->prod_bytes);
	uint64_t out = ipcd_load_relaxed(&r->shm->cons_bytes);
	uint64_t pending = in - out;
	int64_t len;

	if (pending && pending <= r->capacity)
		return pending;
	/* prod_bytes lags the record it counts: the record at the head, at least. */
	len = __ipcd_spsc_peek(r, ipcd_load_relaxed(&r->shm->head));
	if (len > (int64_t)ipcd_load_relaxed(&r->shm->head_off))
		return (uint64_t)len - ipcd_load_relaxed(&r->shm->head_off);
	return 0;
}

/**
 * ipcd_spsc_room - true if a record of @len payload bytes fits in the free
 * space now, whether or not the consumer is still there.
 */
static inline bool ipcd_spsc_room(struct ipcd_spsc *r, uint32_t len)
{
	uint32_t need = __ipcd_rec_size(len) + (uint32_t)sizeof(struct ipcd_rec_hdr);

	return __ipcd_spsc_room(r, ipcd_load_relaxed(&r->shm->tail), need) >= (int64_t)need;
}

/**
 * ipcd_spsc_writable - true if a record of @len payload bytes would fit now.
 */
static inline bool ipcd_spsc_writable(struct ipcd_spsc *r, uint32_t len)
{
	uint32_t need = __ipcd_rec_size(len) + (uint32_t)sizeof(struct ipcd_rec_hdr);

	int64_t room = __ipcd_spsc_room(r, ipcd_load_relaxed(&r->shm->tail), need);

	/* A corrupted ring counts as writable: the write reports -EPROTO. */
	return room < 0 || room >= (int64_t)need || ipcd_load_relaxed(&r->shm->cons_closed) != 0;
}

/* ---- waiting ------------------------------------------------------------ */

/**
 * ipcd_spsc_wait_readable - until a record is ready or the producer closed.
 * @spin_ns:    busy-poll budget before sleeping (0: sleep at once).
 * @timeout_ns: negative waits forever.
 *
 * Returns 0, -ETIMEDOUT or -EINTR (a signal arrived while asleep).
 */
int ipcd_spsc_wait_readable(struct ipcd_spsc *r, uint64_t spin_ns, int64_t timeout_ns);

/**
 * ipcd_spsc_wait_writable - until @len payload bytes fit or the consumer closed.
 * Same arguments and returns as ipcd_spsc_wait_readable(); -EPROTO as well.
 */
int ipcd_spsc_wait_writable(struct ipcd_spsc *r, uint32_t len, uint64_t spin_ns,
			    int64_t timeout_ns);

/*
 * ---------------------------------------------------------------------------
 * A connection end gone without closing (a death)
 * ---------------------------------------------------------------------------
 */

/**
 * ipcd_conn_wake_rings - wake every sleeper on the two rings of a
 * connection (wait.h protocol, as a waker): clear each doorbell word (a full
 * barrier after the caller's stores) and futex-wake it. A sleeper that armed
 * before the exchange either sleeps and is woken, or finds the word 0.
 */
static inline void ipcd_conn_wake_rings(struct ipcd_spsc_shm *a, struct ipcd_spsc_shm *b)
{
	struct ipcd_spsc_shm *r[2] = { a, b };
	unsigned int i;

	for (i = 0; i < 2; i++) {
		ipcd_xchg(&r[i]->cons_wait, 0);
		ipcd_futex_wake(&r[i]->cons_wait);
		ipcd_xchg(&r[i]->prod_wait, 0);
		ipcd_futex_wake(&r[i]->prod_wait);
	}
}

/**
 * ipcd_conn_mark_gone - close an end for a process that can no longer do
 * it, as the kernel closes a dead process's socket: @reset_bit in
 * @ctl->reset (IPCD_CONN_RESET_A/B, the gone end's) if @reset or if the ring
 * it read (@in) still held bytes it never read (the kernel's RST; never for
 * a @pipe: its writers get EPIPE, its reader EOF), then prod_closed on the
 * ring it wrote (@out: the survivor reads EOF once drained) and cons_closed
 * on @in (the survivor's writes fail), then every sleeper on both rings
 * woken. Used by the monitor at a death and by a survivor that learns of
 * it from its life socket (ctl.h). Returns true if the reset bit was set.
 */
static inline bool ipcd_conn_mark_gone(struct ipcd_conn_ctl *ctl, struct ipcd_spsc_shm *out,
				       struct ipcd_spsc_shm *in, uint32_t reset_bit, bool reset,
				       bool pipe)
{
	if (ipcd_load_acquire(&in->prod_bytes) != ipcd_load_relaxed(&in->cons_bytes))
		reset = true;
	if (pipe)
		reset = false;
	if (reset)
		ipcd_fetch_or(&ctl->reset, reset_bit);
	/* R3 for the survivor's A3, as ipcd_spsc_close_prod() would have done. */
	ipcd_store_release(&out->prod_closed, 1);
	ipcd_store_release(&in->cons_closed, 1);
	ipcd_conn_wake_rings(out, in);
	return reset;
}

#endif /* IPCD_SPSC_H */
