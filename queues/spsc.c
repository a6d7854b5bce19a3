/* SPDX-License-Identifier: MIT */
/* spsc.c - SPSC record ring: creation, validation, batched and slow paths. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <ipcd/spsc.h>

int ipcd_spsc_init(void *mem, uint32_t capacity, uint32_t max_msg, uint32_t flags)
{
	struct ipcd_spsc_shm *s = mem;
	uint32_t largest;

	if (!mem || ((uintptr_t)mem & (IPCD_REC_ALIGN - 1)) || !IPCD_IS_POW2(capacity) ||
	    capacity < IPCD_SPSC_MIN_CAPACITY || capacity > IPCD_SPSC_MAX_CAPACITY ||
	    (flags & ~IPCD_SPSC_F_STREAM))
		return -EINVAL;
	/* A record plus the next record's stamp must fit in an empty ring. */
	largest = capacity - 2 * (uint32_t)sizeof(struct ipcd_rec_hdr);
	if (max_msg == 0)
		max_msg = largest;
	if (max_msg > largest)
		return -EINVAL;

	memset(s, 0, sizeof(*s));
	s->capacity = capacity;
	s->max_msg = max_msg;
	s->flags = flags;
	/* Position 0 must not look published: stamp it like any next record. */
	*(uint64_t *)(void *)((uint8_t *)mem + sizeof(*s)) = __ipcd_rec_pack(0, ~0u);
	return 0;
}

int ipcd_spsc_attach(struct ipcd_spsc *r, void *mem, size_t mem_size)
{
	struct ipcd_spsc_shm *s = mem;
	uint32_t capacity, max_msg, flags;

	if (!r || !mem || ((uintptr_t)mem & (IPCD_REC_ALIGN - 1)) || mem_size < sizeof(*s))
		return -EINVAL;
	/* Copy the geometry once; validate the copy; never re-read it. */
	capacity = ipcd_load_relaxed(&s->capacity);
	max_msg = ipcd_load_relaxed(&s->max_msg);
	flags = ipcd_load_relaxed(&s->flags);
	if (!IPCD_IS_POW2(capacity) || capacity < IPCD_SPSC_MIN_CAPACITY ||
	    capacity > IPCD_SPSC_MAX_CAPACITY || ipcd_spsc_mem_size(capacity) > mem_size ||
	    max_msg > capacity - 2 * sizeof(struct ipcd_rec_hdr) || (flags & ~IPCD_SPSC_F_STREAM))
		return -EPROTO;

	memset(r, 0, sizeof(*r));
	r->shm = s;
	r->data = (uint8_t *)mem + sizeof(*s);
	r->capacity = capacity;
	r->mask = capacity - 1;
	r->max_msg = max_msg;
	r->flags = flags;
	r->head_cache = ipcd_load_acquire(&s->head);
	r->wake_fd = -1;
	return 0;
}

int ipcd_spsc_send_burst(struct ipcd_spsc *r, const struct iovec *msgs, unsigned int n)
{
	struct ipcd_spsc_shm *s = r->shm;
	uint32_t tail = ipcd_load_relaxed(&s->tail);
	uint64_t bytes = 0;
	unsigned int i;

	if (ipcd_load_relaxed(&s->cons_closed))
		return -EPIPE;
	for (i = 0; i < n; i++) {
		uint32_t need;
		int64_t room;

		if (msgs[i].iov_len > r->max_msg) {
			if (i == 0)
				return -EMSGSIZE;
			break;
		}
		need = __ipcd_rec_size((uint32_t)msgs[i].iov_len) + sizeof(struct ipcd_rec_hdr);
		room = __ipcd_spsc_room(r, tail, need);
		if (room < (int64_t)need) {
			if (room < 0 && i == 0)
				return (int)room;
			break;
		}
		tail = __ipcd_spsc_put(r, tail, msgs[i].iov_base, (uint32_t)msgs[i].iov_len);
		bytes += msgs[i].iov_len;
	}
	if (i)
		__ipcd_spsc_produced(r, tail, bytes, i);
	return (int)i;
}

/* Gather @len bytes from @iov starting at *@idx / *@off into the ring at @pos. */
static void gather(const struct ipcd_spsc *r, uint32_t pos, const struct iovec *iov,
		   int *idx, size_t *off, size_t len)
{
	while (len) {
		size_t n = IPCD_MIN(len, iov[*idx].iov_len - *off);

		__ipcd_spsc_copy_in(r, pos, (const uint8_t *)iov[*idx].iov_base + *off, n);
		pos += (uint32_t)n;
		len -= n;
		*off += n;
		if (*off == iov[*idx].iov_len) {
			(*idx)++;
			*off = 0;
		}
	}
}

ssize_t ipcd_spsc_writev(struct ipcd_spsc *r, const struct iovec *iov, int iovcnt)
{
	struct ipcd_spsc_shm *s = r->shm;
	uint32_t tail = ipcd_load_relaxed(&s->tail);
	const uint32_t overhead = 2 * sizeof(struct ipcd_rec_hdr);	/* header + next stamp */
	size_t total = 0, done = 0, off = 0;
	uint32_t msgs = 0;
	int i, idx = 0;

	if (iovcnt < 0)
		return -EINVAL;
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > SSIZE_MAX - total)
			return -EINVAL;
		total += iov[i].iov_len;
	}
	if (ipcd_load_relaxed(&s->cons_closed))
		return -EPIPE;
	if (total == 0)
		return 0;
	/* Skip leading empty iovecs so gather() always makes progress. */
	while (idx < iovcnt && iov[idx].iov_len == 0)
		idx++;

	while (done < total) {
		size_t want = IPCD_MIN(total - done, (size_t)r->max_msg);
		uint32_t need = (uint32_t)IPCD_MIN(IPCD_ALIGN_UP(want, IPCD_REC_ALIGN) + overhead,
						   (size_t)r->capacity);
		int64_t room = __ipcd_spsc_room(r, tail, need);
		uint32_t len, next;

		if (room < 0) {
			if (done)
				break;
			return (ssize_t)room;
		}
		if (room < (int64_t)(overhead + 1))
			break;
		/* Room is a multiple of 8, so aligning len up stays within it. */
		len = (uint32_t)IPCD_MIN((size_t)(room - overhead), total - done);
		len = IPCD_MIN(len, r->max_msg);
		next = tail + __ipcd_rec_size(len);
		gather(r, tail + sizeof(struct ipcd_rec_hdr), iov, &idx, &off, len);
		ipcd_store_relaxed(__ipcd_rec_at(r, next), __ipcd_rec_pack(0, ~next));
		/* R1: pairs with A1 in __ipcd_spsc_peek */
		ipcd_store_release(__ipcd_rec_at(r, tail), __ipcd_rec_pack(len, tail));
		tail = next;
		done += len;
		msgs++;
	}
	if (!done)
		return -EAGAIN;
	__ipcd_spsc_produced(r, tail, done, msgs);
	return (ssize_t)done;
}

int ipcd_spsc_recv_burst(struct ipcd_spsc *r, void *buf, size_t buflen, uint32_t *lens,
			 unsigned int n)
{
	struct ipcd_spsc_shm *s = r->shm;
	uint32_t head = ipcd_load_relaxed(&s->head);
	uint8_t *out = buf;
	size_t used = 0;
	uint64_t bytes = 0;
	unsigned int i;

	for (i = 0; i < n; i++) {
		int64_t len = __ipcd_spsc_peek(r, head);

		if (len < 0) {
			if (len == -EPROTO && i == 0)
				return -EPROTO;
			break;
		}
		if ((size_t)len > buflen - used)
			break;
		__ipcd_spsc_copy_out(r, head + sizeof(struct ipcd_rec_hdr), out + used,
				     (size_t)len);
		lens[i] = (uint32_t)len;
		used = IPCD_MIN(buflen, used + IPCD_ALIGN_UP((size_t)len, IPCD_REC_ALIGN));
		bytes += (uint64_t)len;
		head += __ipcd_rec_size((uint32_t)len);
	}
	if (i) {
		ipcd_store_relaxed(&s->cons_bytes, ipcd_load_relaxed(&s->cons_bytes) + bytes);
		ipcd_store_relaxed(&s->cons_msgs, ipcd_load_relaxed(&s->cons_msgs) + i);
		ipcd_store_release(&s->head, head);	/* R2: pairs with A2 */
		__ipcd_spsc_wake(r, &s->prod_wait, true);
	}
	return (int)i;
}

/* Scatter @len bytes from the ring at @pos into @iov from *@idx / *@off. */
static void scatter(const struct ipcd_spsc *r, uint32_t pos, const struct iovec *iov,
		    int *idx, size_t *off, size_t len)
{
	while (len) {
		size_t n = IPCD_MIN(len, iov[*idx].iov_len - *off);

		__ipcd_spsc_copy_out(r, pos, (uint8_t *)iov[*idx].iov_base + *off, n);
		pos += (uint32_t)n;
		len -= n;
		*off += n;
		if (*off == iov[*idx].iov_len) {
			(*idx)++;
			*off = 0;
		}
	}
}

ssize_t ipcd_spsc_readv(struct ipcd_spsc *r, const struct iovec *iov, int iovcnt,
			unsigned int flags)
{
	struct ipcd_spsc_shm *s = r->shm;
	uint32_t head = ipcd_load_relaxed(&s->head);
	uint32_t head_off = ipcd_load_relaxed(&s->head_off);
	size_t total = 0, done = 0, off = 0;
	uint32_t msgs = 0;
	int i, idx = 0;

	if (iovcnt < 0)
		return -EINVAL;
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > SSIZE_MAX - total)
			return -EINVAL;
		total += iov[i].iov_len;
	}
	while (idx < iovcnt && iov[idx].iov_len == 0)
		idx++;

	while (done < total) {
		int64_t len = __ipcd_spsc_peek(r, head);
		size_t n;

		if (len < 0) {
			if (len == -EPROTO && !done)
				return -EPROTO;
			break;
		}
		if (unlikely(len == 0) && (flags & (IPCD_SPSC_MARKS | IPCD_SPSC_PAST_MARK))) {
			if (done || msgs || !(flags & IPCD_SPSC_PAST_MARK)) {
				if (done || msgs)
					break;
				return -ENOMSG;
			}
			head += __ipcd_rec_size(0);	/* the mark the caller has dealt with */
			head_off = 0;
			msgs++;
			continue;
		}
		if (unlikely(head_off > (uint64_t)len))
			return done ? (ssize_t)done : -EPROTO;
		n = IPCD_MIN((size_t)len - head_off, total - done);
		scatter(r, head + sizeof(struct ipcd_rec_hdr) + head_off, iov, &idx, &off, n);
		done += n;
		if (head_off + n == (size_t)len) {
			head += __ipcd_rec_size((uint32_t)len);
			head_off = 0;
			msgs++;
		} else {
			head_off += (uint32_t)n;
		}
	}
	if (!done) {
		if (msgs && !(flags & IPCD_SPSC_PEEK)) {
			/* A mark stepped over (IPCD_SPSC_PAST_MARK), nothing after it yet. */
			ipcd_store_relaxed(&s->cons_msgs, ipcd_load_relaxed(&s->cons_msgs) + msgs);
			ipcd_store_relaxed(&s->head_off, 0);
			ipcd_store_release(&s->head, head);
			__ipcd_spsc_wake(r, &s->prod_wait, true);
		}
		if (total == 0)
			return 0;
		/* A3: the producer's last record is visible once we see it closed. */
		if (ipcd_load_acquire(&s->prod_closed) && __ipcd_spsc_peek(r, head) == -EAGAIN)
			return 0;
		return -EAGAIN;
	}
	if (!(flags & IPCD_SPSC_PEEK)) {
		ipcd_store_relaxed(&s->cons_bytes, ipcd_load_relaxed(&s->cons_bytes) + done);
		ipcd_store_relaxed(&s->cons_msgs, ipcd_load_relaxed(&s->cons_msgs) + msgs);
		ipcd_store_relaxed(&s->head_off, head_off);
		ipcd_store_release(&s->head, head);	/* R2: pairs with A2 */
		__ipcd_spsc_wake(r, &s->prod_wait, true);
	}
	return (ssize_t)done;
}

/* Spin on @ready for up to @spin_ns, checking the clock every 64 polls. */
static bool spin_until(bool (*ready)(struct ipcd_spsc *, uint32_t), struct ipcd_spsc *r,
		       uint32_t arg, uint64_t spin_ns)
{
	uint64_t end;
	unsigned int i;

	if (ready(r, arg))
		return true;
	if (!spin_ns)
		return false;
	end = ipcd_now_ns() + spin_ns;
	for (;;) {
		for (i = 0; i < 64; i++) {
			if (ready(r, arg))
				return true;
			ipcd_cpu_relax();
		}
		if (ipcd_now_ns() >= end)
			return false;
	}
}

static bool readable_cb(struct ipcd_spsc *r, uint32_t unused)
{
	(void)unused;
	return ipcd_spsc_readable(r);
}

static bool writable_cb(struct ipcd_spsc *r, uint32_t len)
{
	return ipcd_spsc_writable(r, len);
}

static int wait_on(bool (*ready)(struct ipcd_spsc *, uint32_t), struct ipcd_spsc *r,
		   uint32_t arg, uint32_t *word, uint64_t spin_ns, int64_t timeout_ns)
{
	uint64_t deadline = ipcd_deadline(timeout_ns);

	if (spin_until(ready, r, arg, spin_ns))
		return 0;
	for (;;) {
		int64_t left = ipcd_remaining(deadline);
		int rc;

		if (left == 0)
			return -ETIMEDOUT;
		uint32_t armed = ipcd_doorbell_arm_bits(word, IPCD_DB_FUTEX);

		if (ready(r, arg))
			return 0;
		rc = ipcd_futex_wait(word, armed, left);
		if (rc == -EINTR)
			return -EINTR;
		if (ready(r, arg))
			return 0;
	}
}

int ipcd_spsc_wait_readable(struct ipcd_spsc *r, uint64_t spin_ns, int64_t timeout_ns)
{
	return wait_on(readable_cb, r, 0, &r->shm->cons_wait, spin_ns, timeout_ns);
}

int ipcd_spsc_wait_writable(struct ipcd_spsc *r, uint32_t len, uint64_t spin_ns,
			    int64_t timeout_ns)
{
	int64_t room;

	if (len > r->max_msg)
		len = r->max_msg;	/* a stream write may be split; wait for one record */
	room = __ipcd_spsc_room(r, ipcd_load_relaxed(&r->shm->tail), 0);
	if (room < 0)
		return (int)room;
	return wait_on(writable_cb, r, len, &r->shm->prod_wait, spin_ns, timeout_ns);
}
