/* SPDX-License-Identifier: MIT */
/* test_spsc.c - SPSC record ring: both modes, EOF, waiting, hostile peers. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ipcd/spsc.h>

#include "t_helpers.h"

#define CAP		256u	/* default ring: small, so tests wrap a lot */
#define HANG_GUARD_NS	(30 * T_NSEC_PER_SEC)

/*
 * One ring in guarded shared memory, with separate producer and consumer
 * handles (each side caches its own view, as two processes would). The
 * control block ends flush against a guard page (prestate AT_END, default)
 * or starts right after one (AT_START).
 */
struct fx {
	struct t_guarded g;
	void *mem;
	size_t mem_size;
	struct ipcd_spsc_shm *shm;
	struct ipcd_spsc p;
	struct ipcd_spsc c;
	uint32_t cap;
	bool at_end;
};

static bool AT_END = true;
static bool AT_START;

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->at_end = *state ? *(bool *)*state : true;
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

/* Format a fresh ring and attach both sides; replaces any previous ring. */
static void fx_open(struct fx *f, uint32_t cap, uint32_t max_msg, uint32_t flags)
{
	t_guarded_free(&f->g);
	f->cap = cap;
	f->mem_size = ipcd_spsc_mem_size(cap);
	f->mem = t_guarded_alloc(&f->g, f->mem_size, IPCD_CACHE_GUARD, f->at_end);
	f->shm = f->mem;
	assert_int_equal(ipcd_spsc_init(f->mem, cap, max_msg, flags), 0);
	assert_int_equal(ipcd_spsc_attach(&f->p, f->mem, f->mem_size), 0);
	assert_int_equal(ipcd_spsc_attach(&f->c, f->mem, f->mem_size), 0);
}

/* Payload bytes of record @len: the largest message that still fits once. */
static uint32_t largest_fit(uint32_t cap)
{
	return cap - 2 * (uint32_t)sizeof(struct ipcd_rec_hdr);
}

/* Send @len-byte messages until the ring refuses; returns how many fit. */
static unsigned int fill_msgs(struct ipcd_spsc *r, uint32_t len)
{
	uint8_t buf[4096] = { 0 };
	unsigned int n = 0;
	int rc;

	while ((rc = ipcd_spsc_send(r, buf, len)) == 0)
		n++;
	assert_int_equal(rc, -EAGAIN);
	return n;
}

/* ---- creation and validation -------------------------------------------- */

static void test_init_rejects_bad_args(void **state)
{
	struct fx *f = *state;
	void *mem = t_guarded_alloc(&f->g, ipcd_spsc_mem_size(4096), 128, true);

	assert_int_equal(ipcd_spsc_init(NULL, 256, 0, 0), -EINVAL);
	assert_int_equal(ipcd_spsc_init(mem, 0, 0, 0), -EINVAL);
	assert_int_equal(ipcd_spsc_init(mem, 100, 0, 0), -EINVAL);		/* not pow2 */
	assert_int_equal(ipcd_spsc_init(mem, 32, 0, 0), -EINVAL);		/* < MIN */
	assert_int_equal(ipcd_spsc_init(mem, IPCD_SPSC_MAX_CAPACITY << 1, 0, 0), -EINVAL);
	assert_int_equal(ipcd_spsc_init(mem, 256, 256, 0), -EINVAL);		/* max_msg */
	assert_int_equal(ipcd_spsc_init(mem, 256, 256 - 8, 0), -EINVAL);
	assert_int_equal(ipcd_spsc_init(mem, 256, UINT32_MAX, 0), -EINVAL);
	assert_int_equal(ipcd_spsc_init(mem, 256, largest_fit(256), 0), 0);
	assert_int_equal(ipcd_spsc_init(mem, IPCD_SPSC_MIN_CAPACITY, 0, 0), 0);
}

static void test_attach_geometry(void **state)
{
	struct fx *f = *state;
	uint8_t buf[CAP];
	int i;

	fx_open(f, CAP, 0, 0);
	assert_int_equal(f->p.capacity, CAP);
	assert_int_equal(f->p.mask, CAP - 1);
	assert_int_equal(f->p.flags, 0);
	/* max_msg 0 means "the largest that fits": a record plus the next stamp. */
	assert_int_equal(f->p.max_msg, largest_fit(CAP));
	for (i = 0; i < 3; i++) {
		t_pattern_fill(buf, largest_fit(CAP), 7, (uint64_t)i);
		assert_int_equal(ipcd_spsc_send(&f->p, buf, largest_fit(CAP)), 0);
		assert_int_equal(ipcd_spsc_send(&f->p, buf, 1), -EAGAIN);
		memset(buf, 0, sizeof(buf));
		assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), largest_fit(CAP));
		assert_true(t_pattern_check(buf, largest_fit(CAP), 7, (uint64_t)i));
	}

	fx_open(f, CAP, 100, IPCD_SPSC_F_STREAM);
	assert_int_equal(f->c.max_msg, 100);
	assert_int_equal(f->c.flags, IPCD_SPSC_F_STREAM);
}

/* Corrupt one geometry field of a freshly formatted ring; attach must refuse. */
static void expect_attach_refused(struct fx *f, size_t field_off, uint32_t val, size_t mem_size)
{
	struct ipcd_spsc r;

	assert_int_equal(ipcd_spsc_init(f->mem, f->cap, 0, 0), 0);
	memcpy((uint8_t *)f->mem + field_off, &val, sizeof(val));
	memset(&r, 0xa5, sizeof(r));
	assert_int_equal(ipcd_spsc_attach(&r, f->mem, mem_size), -EPROTO);
}

static void test_attach_rejects_corrupt_geometry(void **state)
{
	struct fx *f = *state;
	const size_t cap_off = offsetof(struct ipcd_spsc_shm, capacity);
	const size_t max_off = offsetof(struct ipcd_spsc_shm, max_msg);
	struct ipcd_spsc r;

	fx_open(f, CAP, 0, 0);
	expect_attach_refused(f, cap_off, 0, f->mem_size);
	expect_attach_refused(f, cap_off, CAP + 8, f->mem_size);		/* not pow2 */
	expect_attach_refused(f, cap_off, 3 * CAP, f->mem_size);
	expect_attach_refused(f, cap_off, IPCD_SPSC_MIN_CAPACITY / 2, f->mem_size);
	expect_attach_refused(f, cap_off, 2 * CAP, f->mem_size);		/* > mapping */
	expect_attach_refused(f, cap_off, IPCD_SPSC_MAX_CAPACITY, f->mem_size);
	expect_attach_refused(f, cap_off, 1u << 31, f->mem_size);		/* > MAX */
	expect_attach_refused(f, cap_off, UINT32_MAX, f->mem_size);
	expect_attach_refused(f, max_off, CAP, f->mem_size);
	expect_attach_refused(f, max_off, CAP - 8, f->mem_size);
	expect_attach_refused(f, max_off, UINT32_MAX, f->mem_size);
	/* A mapping one byte too short for the declared capacity. */
	assert_int_equal(ipcd_spsc_init(f->mem, CAP, 0, 0), 0);
	assert_int_equal(ipcd_spsc_attach(&r, f->mem, f->mem_size - 1), -EPROTO);
	assert_true(ipcd_spsc_attach(&r, f->mem, sizeof(struct ipcd_spsc_shm) - 1) < 0);
	assert_int_equal(ipcd_spsc_attach(&r, NULL, f->mem_size), -EINVAL);
	/* And the untouched ring still attaches. */
	assert_int_equal(ipcd_spsc_attach(&r, f->mem, f->mem_size), 0);
}

/* Geometry is copied at attach: later writes to the shared constants are ignored. */
static void test_geometry_is_private_copy(void **state)
{
	struct fx *f = *state;
	uint8_t buf[CAP];
	int i;

	fx_open(f, CAP, 0, 0);
	f->shm->capacity = 1u << 30;
	f->shm->max_msg = UINT32_MAX;
	f->shm->flags = UINT32_MAX;
	assert_int_equal(ipcd_spsc_send(&f->p, buf, CAP), -EMSGSIZE);
	for (i = 0; i < 1000; i++) {
		uint32_t len = (uint32_t)(i * 37) % (largest_fit(CAP) + 1);

		t_pattern_fill(buf, len, 3, (uint64_t)i << 16);
		assert_int_equal(ipcd_spsc_send(&f->p, buf, len), 0);
		assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), len);
		assert_true(t_pattern_check(buf, len, 3, (uint64_t)i << 16));
	}
}

/* ---- message mode ------------------------------------------------------- */

static void test_msg_send_recv(void **state)
{
	struct fx *f = *state;
	uint8_t buf[64], small[4], oversize[65] = { 0 };

	fx_open(f, CAP, 64, 0);
	assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), -EAGAIN);
	assert_false(ipcd_spsc_readable(&f->c));
	assert_int_equal(ipcd_spsc_bytes_ready(&f->c), 0);

	assert_int_equal(ipcd_spsc_send(&f->p, "hello", 5), 0);
	assert_int_equal(ipcd_spsc_send(&f->p, "", 0), 0);		/* empty message */
	assert_int_equal(ipcd_spsc_send(&f->p, "truncate me", 11), 0);
	assert_int_equal(ipcd_spsc_send(&f->p, oversize, sizeof(oversize)), -EMSGSIZE);
	assert_true(ipcd_spsc_readable(&f->c));
	assert_int_equal(ipcd_spsc_bytes_ready(&f->c), 16);
	assert_int_equal(f->shm->prod_msgs, 3);
	assert_int_equal(f->shm->prod_bytes, 16);

	memset(buf, 0, sizeof(buf));
	assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), 0);
	/* Datagram truncation: the full length is returned, the rest dropped. */
	memset(small, 0, sizeof(small));
	assert_int_equal(ipcd_spsc_recv(&f->c, small, sizeof(small)), 11);
	assert_memory_equal(small, "trun", 4);
	assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), -EAGAIN);
	assert_int_equal(f->shm->cons_msgs, 3);
	assert_int_equal(f->shm->cons_bytes, 16);
	assert_int_equal(ipcd_spsc_bytes_ready(&f->c), 0);
	assert_false(ipcd_spsc_readable(&f->c));
}

/* Capacity accounting: each record costs rec_size and one stamp must fit. */
static void test_msg_full(void **state)
{
	struct fx *f = *state;
	static const uint32_t lens[] = { 0, 1, 8, 24, 100 };
	uint8_t buf[CAP];
	unsigned int i, n, k;

	for (i = 0; i < IPCD_ARRAY_SIZE(lens); i++) {
		uint32_t rec = __ipcd_rec_size(lens[i]);

		fx_open(f, CAP, 0, 0);
		n = fill_msgs(&f->p, lens[i]);
		assert_int_equal(n, (CAP - sizeof(struct ipcd_rec_hdr)) / rec);
		assert_false(ipcd_spsc_writable(&f->p, lens[i]));
		assert_int_equal(ipcd_spsc_send(&f->p, buf, lens[i]), -EAGAIN);
		/* Freeing one record makes room for exactly one more. */
		assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), lens[i]);
		assert_true(ipcd_spsc_writable(&f->p, lens[i]));
		assert_int_equal(ipcd_spsc_send(&f->p, buf, lens[i]), 0);
		assert_int_equal(ipcd_spsc_send(&f->p, buf, lens[i]), -EAGAIN);
		for (k = 0; k < n; k++)
			assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), lens[i]);
		assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), -EAGAIN);
	}
}

/*
 * Random sizes through a small ring for many laps: every payload is checked,
 * most straddle the end of the ring at some point.
 */
static void run_msg_laps(struct fx *f, uint64_t msgs, uint64_t seed)
{
	uint32_t max = f->p.max_msg;
	uint8_t *buf = malloc(max + 1), *out = malloc(max + 1);
	uint32_t lens[1024];	/* FIFO of lengths in flight (< 1024 records fit) */
	uint64_t sent = 0, rcvd = 0;
	struct t_rng rng;

	assert_non_null(buf);
	assert_non_null(out);
	t_rng_init(&rng, seed);
	while (rcvd < msgs) {
		uint32_t burst = t_rng_below(&rng, 8) + 1;

		while (burst-- && sent < msgs) {
			uint32_t len = t_rng_below(&rng, 4) ? t_rng_below(&rng, 33)
							    : t_rng_below(&rng, max + 1);
			int rc;

			t_pattern_fill(buf, len, 1, sent << 12);
			rc = ipcd_spsc_send(&f->p, buf, len);
			if (rc == -EAGAIN)
				break;
			assert_int_equal(rc, 0);
			lens[sent++ % 1024] = len;
		}
		burst = t_rng_below(&rng, 8) + 1;
		while (burst-- && rcvd < sent) {
			ssize_t n = ipcd_spsc_recv(&f->c, out, max + 1);

			assert_int_equal(n, lens[rcvd % 1024]);
			if (!t_pattern_check(out, (size_t)n, 1, rcvd << 12))
				fail_msg("message %llu corrupted", (unsigned long long)rcvd);
			rcvd++;
		}
	}
	assert_int_equal(ipcd_spsc_recv(&f->c, out, max), -EAGAIN);
	assert_int_equal(f->shm->prod_msgs, msgs);
	assert_int_equal(f->shm->cons_msgs, msgs);
	assert_int_equal(f->shm->prod_bytes, f->shm->cons_bytes);
	assert_int_equal(ipcd_spsc_bytes_ready(&f->c), 0);
	free(buf);
	free(out);
}

static void test_msg_wrap_many_laps(void **state)
{
	struct fx *f = *state;

	fx_open(f, 128, 0, 0);
	run_msg_laps(f, 100000, t_seed());
	fx_open(f, 4096, 0, 0);
	run_msg_laps(f, 50000, t_seed() + 1);
}

/*
 * Positions are free-running uint32 counters. Start an empty ring just below
 * 2^32 (a consistent state: head == tail, the header there not stamped with
 * its own position) and run traffic across the wrap.
 */
static void start_near_wrap(struct fx *f, uint32_t cap, uint32_t flags, uint32_t pos)
{
	fx_open(f, cap, 0, flags);
	f->shm->head = pos;
	f->shm->tail = pos;
	*(uint64_t *)(void *)((uint8_t *)f->mem + sizeof(struct ipcd_spsc_shm) +
			      (pos & (cap - 1))) = __ipcd_rec_pack(0, ~pos);
	assert_int_equal(ipcd_spsc_attach(&f->p, f->mem, f->mem_size), 0);
	assert_int_equal(ipcd_spsc_attach(&f->c, f->mem, f->mem_size), 0);
}

static void test_msg_uint32_wrap(void **state)
{
	struct fx *f = *state;

	start_near_wrap(f, 128, 0, UINT32_MAX - 7 - 5 * 128);
	run_msg_laps(f, 2000, t_seed() + 2);
	assert_true(f->shm->tail < 1u << 20);	/* it did wrap */
	start_near_wrap(f, 4096, 0, UINT32_MAX - 7 - 64);
	run_msg_laps(f, 2000, t_seed() + 3);
}

static void test_send_burst(void **state)
{
	struct fx *f = *state;
	uint8_t a[3] = "ab", b[5] = "cdef", c[8] = "ghijklm", d[20] = "nopqrstuvwxyz012345";
	uint8_t big[CAP] = { 0 };
	struct iovec v[4] = { { a, 3 }, { b, 5 }, { c, 8 }, { d, 20 } };
	struct iovec many[20];
	uint8_t out[256];
	uint32_t lens[8];
	unsigned int i;

	fx_open(f, CAP, 64, 0);
	assert_int_equal(ipcd_spsc_send_burst(&f->p, v, 4), 4);
	assert_int_equal(f->shm->prod_msgs, 4);
	/* Back to back, each message 8-byte aligned. */
	assert_int_equal(ipcd_spsc_recv_burst(&f->c, out, sizeof(out), lens, 8), 4);
	assert_int_equal(lens[0], 3);
	assert_int_equal(lens[1], 5);
	assert_int_equal(lens[2], 8);
	assert_int_equal(lens[3], 20);
	assert_memory_equal(out + 0, a, 3);
	assert_memory_equal(out + 8, b, 5);
	assert_memory_equal(out + 16, c, 8);
	assert_memory_equal(out + 24, d, 20);
	assert_int_equal(ipcd_spsc_recv_burst(&f->c, out, sizeof(out), lens, 8), 0);

	/* Burst means as many as fit: 24-byte messages take 32 bytes each. */
	for (i = 0; i < IPCD_ARRAY_SIZE(many); i++) {
		many[i].iov_base = big;
		many[i].iov_len = 24;
	}
	assert_int_equal(ipcd_spsc_send_burst(&f->p, many, 20), (CAP - 8) / 32);
	assert_int_equal(ipcd_spsc_send_burst(&f->p, many, 20), 0);
	/* n limits the count; a too-small buffer stops the burst early. */
	assert_int_equal(ipcd_spsc_recv_burst(&f->c, out, sizeof(out), lens, 2), 2);
	assert_int_equal(ipcd_spsc_recv_burst(&f->c, out, 50, lens, 8), 2);
	assert_int_equal(ipcd_spsc_recv_burst(&f->c, out, 23, lens, 8), 0);
	assert_int_equal(ipcd_spsc_recv(&f->c, out, sizeof(out)), 24);	/* still there */
	while (ipcd_spsc_recv(&f->c, out, sizeof(out)) == 24)
		;

	/* Oversize: an error only if it is the first message. */
	v[0].iov_len = 65;
	assert_int_equal(ipcd_spsc_send_burst(&f->p, v, 4), -EMSGSIZE);
	v[0].iov_len = 3;
	v[2].iov_base = big;
	v[2].iov_len = 65;
	assert_int_equal(ipcd_spsc_send_burst(&f->p, v, 4), 2);
	assert_int_equal(ipcd_spsc_recv_burst(&f->c, out, sizeof(out), lens, 8), 2);
	assert_int_equal(ipcd_spsc_send_burst(&f->p, v, 0), 0);

	ipcd_spsc_close_cons(&f->c);
	assert_int_equal(ipcd_spsc_send_burst(&f->p, v, 2), -EPIPE);
}

static void test_msg_eof(void **state)
{
	struct fx *f = *state;
	uint8_t buf[16];

	fx_open(f, CAP, 0, 0);
	assert_int_equal(ipcd_spsc_send(&f->p, "one", 3), 0);
	assert_int_equal(ipcd_spsc_send(&f->p, "two", 3), 0);
	ipcd_spsc_close_prod(&f->p);
	assert_true(ipcd_spsc_readable(&f->c));
	assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "one", 3);
	assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "two", 3);
	assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), -EPIPE);
	assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), -EPIPE);
	assert_true(ipcd_spsc_readable(&f->c));	/* EOF is readable */
	assert_int_equal(ipcd_spsc_wait_readable(&f->c, 0, 0), 0);
}

static void test_close_cons(void **state)
{
	struct fx *f = *state;

	fx_open(f, CAP, 0, 0);
	ipcd_spsc_close_cons(&f->c);
	assert_int_equal(ipcd_spsc_send(&f->p, "x", 1), -EPIPE);
	assert_true(ipcd_spsc_writable(&f->p, 1));	/* so a poller finds out */
	assert_int_equal(ipcd_spsc_wait_writable(&f->p, 1, 0, HANG_GUARD_NS), 0);

	fx_open(f, CAP, 0, IPCD_SPSC_F_STREAM);
	ipcd_spsc_close_cons(&f->c);
	assert_int_equal(ipcd_spsc_write(&f->p, "x", 1), -EPIPE);
}

/*
 * The producer adds to prod_bytes after it publishes a record: a consumer may
 * read the record before the count. Whether it left data unread (close: RST
 * or FIN) and FIONREAD must come from the ring, not from the counters.
 */
static void test_unread_with_lagging_count(void **state)
{
	struct fx *f = *state;
	char b[8];

	fx_open(f, CAP, 0, IPCD_SPSC_F_STREAM);
	assert_false(ipcd_spsc_unread(&f->c));
	assert_int_equal(ipcd_spsc_write(&f->p, "abcdef", 6), 6);
	f->shm->prod_bytes -= 6;	/* as if the producer stopped after publishing */
	assert_true(ipcd_spsc_unread(&f->c));
	assert_int_equal(ipcd_spsc_bytes_ready(&f->c), 6);
	assert_int_equal(ipcd_spsc_read(&f->c, b, 2, 0), 2);
	assert_true(ipcd_spsc_unread(&f->c));	/* a record partly read */
	assert_int_equal(ipcd_spsc_bytes_ready(&f->c), 4);
	assert_int_equal(ipcd_spsc_read(&f->c, b, sizeof(b), 0), 4);
	assert_false(ipcd_spsc_unread(&f->c));	/* cons_bytes is now ahead of prod_bytes */
	assert_int_equal(ipcd_spsc_bytes_ready(&f->c), 0);
	f->shm->prod_bytes += 6;
	assert_false(ipcd_spsc_unread(&f->c));
	assert_int_equal(ipcd_spsc_bytes_ready(&f->c), 0);
}

/* Marks: zero-length records a UNIX socket's ancillary data is attached to. */
static void test_stream_marks(void **state)
{
	struct fx *f = *state;
	char b[16];

	fx_open(f, CAP, 0, IPCD_SPSC_F_STREAM);
	assert_int_equal(ipcd_spsc_mark_ready(&f->c), -EINVAL);
	assert_int_equal(ipcd_spsc_write(&f->p, "ab", 2), 2);
	assert_int_equal(ipcd_spsc_mark(&f->p), 0);
	/* Data before a mark is read up to it, never across it. */
	assert_int_equal(ipcd_spsc_read(&f->c, b, sizeof(b), IPCD_SPSC_MARKS), 2);
	assert_memory_equal(b, "ab", 2);
	assert_int_equal(ipcd_spsc_read(&f->c, b, sizeof(b), IPCD_SPSC_MARKS), -ENOMSG);
	assert_int_equal(ipcd_spsc_mark_ready(&f->c), -EAGAIN);	/* its data not there yet */
	assert_int_equal(ipcd_spsc_write(&f->p, "cd", 2), 2);
	assert_int_equal(ipcd_spsc_mark(&f->p), 0);
	assert_int_equal(ipcd_spsc_write(&f->p, "ef", 2), 2);
	assert_int_equal(ipcd_spsc_mark_ready(&f->c), 2);	/* "cd": the record after it */
	/* Peek past the mark consumes nothing. */
	assert_int_equal(ipcd_spsc_read(&f->c, b, sizeof(b), IPCD_SPSC_PAST_MARK | IPCD_SPSC_PEEK),
			 2);
	assert_int_equal(ipcd_spsc_read(&f->c, b, sizeof(b), IPCD_SPSC_MARKS), -ENOMSG);
	assert_int_equal(ipcd_spsc_read(&f->c, b, sizeof(b), IPCD_SPSC_PAST_MARK), 2);
	assert_memory_equal(b, "cd", 2);
	assert_int_equal(ipcd_spsc_read(&f->c, b, sizeof(b), IPCD_SPSC_MARKS), -ENOMSG);
	/* Without the flags a mark is nothing. */
	assert_int_equal(ipcd_spsc_read(&f->c, b, sizeof(b), 0), 2);
	assert_memory_equal(b, "ef", 2);
	/* A mark the producer never followed: stepped over, then end of stream. */
	assert_int_equal(ipcd_spsc_mark(&f->p), 0);
	ipcd_spsc_close_prod(&f->p);
	assert_int_equal(ipcd_spsc_mark_ready(&f->c), 0);
	assert_int_equal(ipcd_spsc_read(&f->c, b, sizeof(b), IPCD_SPSC_PAST_MARK), 0);
	assert_int_equal(ipcd_spsc_mark_ready(&f->c), -EINVAL);
	assert_int_equal(f->shm->cons_bytes, 6);
}

/* ---- stream mode -------------------------------------------------------- */

static void test_stream_partial_reads(void **state)
{
	struct fx *f = *state;
	struct iovec wv[3] = { { (void *)"kl", 2 }, { (void *)"", 0 }, { (void *)"mno", 3 } };
	char a[4], b[16], c2[2], c10[10];
	struct iovec rv[2] = { { c2, 2 }, { c10, 10 } };

	fx_open(f, CAP, 0, IPCD_SPSC_F_STREAM);
	assert_int_equal(ipcd_spsc_read(&f->c, a, sizeof(a), 0), -EAGAIN);
	assert_int_equal(ipcd_spsc_write(&f->p, "abc", 3), 3);
	assert_int_equal(ipcd_spsc_write(&f->p, "defgh", 5), 5);
	assert_int_equal(ipcd_spsc_write(&f->p, "ij", 2), 2);
	assert_int_equal(ipcd_spsc_bytes_ready(&f->c), 10);

	/* A read across two records, leaving the second one half read. */
	assert_int_equal(ipcd_spsc_read(&f->c, a, 4, 0), 4);
	assert_memory_equal(a, "abcd", 4);
	assert_int_equal(ipcd_spsc_bytes_ready(&f->c), 6);
	/* Peek copies across records without consuming. */
	assert_int_equal(ipcd_spsc_read(&f->c, b, sizeof(b), IPCD_SPSC_PEEK), 6);
	assert_memory_equal(b, "efghij", 6);
	assert_int_equal(ipcd_spsc_read(&f->c, b, 3, IPCD_SPSC_PEEK), 3);
	assert_memory_equal(b, "efg", 3);
	assert_int_equal(ipcd_spsc_bytes_ready(&f->c), 6);
	assert_int_equal(ipcd_spsc_read(&f->c, b, 1, 0), 1);
	assert_int_equal(b[0], 'e');
	/* Gathering write is one record; scattering read crosses records. */
	assert_int_equal(ipcd_spsc_writev(&f->p, wv, 3), 5);
	assert_int_equal(ipcd_spsc_readv(&f->c, rv, 2, 0), 10);
	assert_memory_equal(c2, "fg", 2);
	assert_memory_equal(c10, "hijklmno", 8);
	assert_int_equal(ipcd_spsc_read(&f->c, b, sizeof(b), 0), -EAGAIN);
	assert_int_equal(ipcd_spsc_read(&f->c, b, sizeof(b), IPCD_SPSC_PEEK), -EAGAIN);
	assert_int_equal(f->shm->prod_bytes, 15);
	assert_int_equal(f->shm->cons_bytes, 15);
}

static void test_stream_partial_writes(void **state)
{
	struct fx *f = *state;
	uint8_t in[1024], out[1024];
	size_t total = 0, got = 0;
	ssize_t n;
	int i;

	fx_open(f, CAP, 0, IPCD_SPSC_F_STREAM);
	t_pattern_fill(in, sizeof(in), 9, 0);
	/* Larger than a record: a partial write, never an error. */
	n = ipcd_spsc_write(&f->p, in, sizeof(in));
	assert_true(n > 0 && n <= (ssize_t)f->p.max_msg);
	total += (size_t)n;
	for (i = 0; i < 16; i++) {
		n = ipcd_spsc_write(&f->p, in + total, 100);
		if (n == -EAGAIN)
			break;
		assert_true(n > 0 && n <= 100);
		total += (size_t)n;
	}
	assert_int_equal(n, -EAGAIN);
	assert_true(total <= CAP);
	assert_false(ipcd_spsc_writable(&f->p, 1));
	assert_int_equal(ipcd_spsc_bytes_ready(&f->c), total);
	while ((n = ipcd_spsc_read(&f->c, out + got, 7, 0)) > 0)
		got += (size_t)n;
	assert_int_equal(n, -EAGAIN);
	assert_int_equal(got, total);
	assert_memory_equal(out, in, total);
	/* Empty again: a write of max_msg bytes goes in whole. */
	assert_int_equal(ipcd_spsc_write(&f->p, in, f->p.max_msg), f->p.max_msg);
}

/* Random writev/readv/peek sizes for many laps; the byte stream must be intact. */
static void run_stream_laps(struct fx *f, uint64_t bytes, uint64_t seed)
{
	uint8_t wbuf[3][300], rbuf[2][300], pbuf[600];
	uint64_t wpos = 0, rpos = 0;
	struct t_rng rng;

	t_rng_init(&rng, seed);
	while (rpos < bytes) {
		struct iovec wv[3], rv[2];
		int wn = (int)t_rng_below(&rng, 3) + 1, rn = (int)t_rng_below(&rng, 2) + 1, i;
		uint64_t p = wpos;
		size_t want = 0;
		ssize_t n;

		for (i = 0; i < wn; i++) {
			wv[i].iov_base = wbuf[i];
			wv[i].iov_len = t_rng_below(&rng, 4) ? t_rng_below(&rng, 40)
							     : t_rng_below(&rng, 300);
			t_pattern_fill(wbuf[i], wv[i].iov_len, 2, p);
			p += wv[i].iov_len;
			want += wv[i].iov_len;
		}
		n = ipcd_spsc_writev(&f->p, wv, wn);
		if (want == 0)
			assert_true(n == 0 || n == -EAGAIN);
		else if (n != -EAGAIN)
			assert_true(n > 0 && (size_t)n <= want);
		if (n > 0)
			wpos += (uint64_t)n;

		want = 0;
		for (i = 0; i < rn; i++) {
			rv[i].iov_base = rbuf[i];
			rv[i].iov_len = t_rng_below(&rng, 300) + 1;
			want += rv[i].iov_len;
		}
		if (t_rng_below(&rng, 8) == 0) {
			n = ipcd_spsc_read(&f->c, pbuf, sizeof(pbuf), IPCD_SPSC_PEEK);
			if (n != -EAGAIN) {
				assert_int_equal(n, wpos - rpos < sizeof(pbuf) ? wpos - rpos
										: sizeof(pbuf));
				assert_true(t_pattern_check(pbuf, (size_t)n, 2, rpos));
			}
		}
		n = ipcd_spsc_readv(&f->c, rv, rn, 0);
		if (n == -EAGAIN) {
			assert_int_equal(wpos, rpos);
			continue;
		}
		assert_int_equal(n, wpos - rpos < want ? wpos - rpos : want);
		for (i = 0; i < rn && n > 0; i++) {
			size_t k = IPCD_MIN((size_t)n, rv[i].iov_len);

			if (!t_pattern_check(rbuf[i], k, 2, rpos))
				fail_msg("stream corrupted at byte %llu", (unsigned long long)rpos);
			rpos += k;
			n -= (ssize_t)k;
		}
		assert_int_equal(ipcd_spsc_bytes_ready(&f->c), wpos - rpos);
	}
}

static void test_stream_wrap_many_laps(void **state)
{
	struct fx *f = *state;

	fx_open(f, 128, 0, IPCD_SPSC_F_STREAM);
	run_stream_laps(f, 2000000, t_seed() + 4);
	fx_open(f, 1024, 0, IPCD_SPSC_F_STREAM);
	run_stream_laps(f, 2000000, t_seed() + 5);
	start_near_wrap(f, 256, IPCD_SPSC_F_STREAM, UINT32_MAX - 7 - 3 * 256);
	run_stream_laps(f, 50000, t_seed() + 6);
	assert_true(f->shm->tail < 1u << 20);
}

static void test_stream_eof(void **state)
{
	struct fx *f = *state;
	char buf[64];

	fx_open(f, CAP, 0, IPCD_SPSC_F_STREAM);
	assert_int_equal(ipcd_spsc_write(&f->p, "0123456789", 10), 10);
	ipcd_spsc_close_prod(&f->p);
	assert_true(ipcd_spsc_readable(&f->c));
	assert_int_equal(ipcd_spsc_read(&f->c, buf, 4, 0), 4);
	assert_int_equal(ipcd_spsc_read(&f->c, buf, sizeof(buf), IPCD_SPSC_PEEK), 6);
	assert_int_equal(ipcd_spsc_read(&f->c, buf, sizeof(buf), 0), 6);
	assert_memory_equal(buf, "456789", 6);
	assert_int_equal(ipcd_spsc_read(&f->c, buf, sizeof(buf), 0), 0);
	assert_int_equal(ipcd_spsc_read(&f->c, buf, sizeof(buf), 0), 0);
	assert_int_equal(ipcd_spsc_read(&f->c, buf, sizeof(buf), IPCD_SPSC_PEEK), 0);
	assert_true(ipcd_spsc_readable(&f->c));
}

/* ---- waiting ------------------------------------------------------------ */

static void test_wait_timeouts(void **state)
{
	struct fx *f = *state;
	uint8_t buf[CAP];

	fx_open(f, CAP, 0, 0);
	assert_int_equal(ipcd_spsc_wait_readable(&f->c, 0, 0), -ETIMEDOUT);
	assert_int_equal(ipcd_spsc_wait_readable(&f->c, 0, 20 * T_NSEC_PER_MSEC), -ETIMEDOUT);
	assert_int_equal(ipcd_spsc_wait_readable(&f->c, 1 * T_NSEC_PER_MSEC,
						 5 * T_NSEC_PER_MSEC), -ETIMEDOUT);
	assert_int_equal(ipcd_spsc_wait_writable(&f->p, 8, 0, 0), 0);
	assert_int_equal(ipcd_spsc_send(&f->p, "x", 1), 0);
	assert_int_equal(ipcd_spsc_wait_readable(&f->c, 0, HANG_GUARD_NS), 0);
	assert_int_equal(ipcd_spsc_wait_readable(&f->c, 0, -1), 0);

	fill_msgs(&f->p, 100);
	assert_int_equal(ipcd_spsc_wait_writable(&f->p, 100, 0, 20 * T_NSEC_PER_MSEC),
			 -ETIMEDOUT);
	assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), 1);
	assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), 100);
	assert_int_equal(ipcd_spsc_wait_writable(&f->p, 100, 0, HANG_GUARD_NS), 0);
}

enum wake_kind { WAKE_DATA, WAKE_CLOSE };

/*
 * A forked consumer sleeps in wait_readable; the parent wakes it with a send
 * (or a close) once the consumer has announced its sleep. The timeout only
 * guards against hangs.
 */
static void run_cross_process_readable(struct fx *f, enum wake_kind kind, unsigned int rounds)
{
	unsigned int i;
	uint8_t buf[64];

	for (i = 0; i < rounds; i++) {
		pid_t pid;

		fx_open(f, CAP, 0, 0);
		pid = t_fork(T_CHILD_ALARM);
		if (pid == 0) {
			T_CHECK_EQ(ipcd_spsc_wait_readable(&f->c, 0, HANG_GUARD_NS), 0);
			if (kind == WAKE_DATA) {
				T_CHECK_EQ(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), 8);
				T_CHECK(t_pattern_check(buf, 8, 5, i));
			} else {
				T_CHECK_EQ(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), -EPIPE);
			}
			_exit(0);
		}
		/* Usually wake a sleeper; sometimes race with the sleep itself. */
		if (i % 4)
			t_wait_word(&f->shm->cons_wait, 1, 5000);
		if (kind == WAKE_DATA) {
			t_pattern_fill(buf, 8, 5, i);
			assert_int_equal(ipcd_spsc_send(&f->p, buf, 8), 0);
		} else {
			ipcd_spsc_close_prod(&f->p);
		}
		assert_int_equal(t_wait(pid, 60000), 0);
	}
}

static void test_wait_readable_cross_process(void **state)
{
	run_cross_process_readable(*state, WAKE_DATA, 12);
	run_cross_process_readable(*state, WAKE_CLOSE, 4);
}

static void test_wait_writable_cross_process(void **state)
{
	struct fx *f = *state;
	uint8_t buf[CAP] = { 0 };
	unsigned int i;

	for (i = 0; i < 8; i++) {
		bool closing = i >= 6;
		pid_t pid;

		fx_open(f, CAP, 0, 0);
		fill_msgs(&f->p, 64);
		pid = t_fork(T_CHILD_ALARM);
		if (pid == 0) {
			T_CHECK_EQ(ipcd_spsc_wait_writable(&f->p, 64, 0, HANG_GUARD_NS), 0);
			T_CHECK_EQ(ipcd_spsc_send(&f->p, buf, 64), closing ? -EPIPE : 0);
			_exit(0);
		}
		if (i % 3)
			t_wait_word(&f->shm->prod_wait, 1, 5000);
		if (closing)
			ipcd_spsc_close_cons(&f->c);
		else
			assert_int_equal(ipcd_spsc_recv(&f->c, buf, sizeof(buf)), 64);
		assert_int_equal(t_wait(pid, 60000), 0);
	}
}

static void on_usr1(int sig)
{
	(void)sig;
}

/* A signal interrupts a sleeping waiter with -EINTR (no SA_RESTART). */
static void test_wait_eintr(void **state)
{
	struct fx *f = *state;
	int i, rc = T_STILL_RUNNING;
	pid_t pid;

	fx_open(f, CAP, 0, 0);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_usr1;
		sigaction(SIGUSR1, &sa, NULL);
		T_CHECK_EQ(ipcd_spsc_wait_readable(&f->c, 0, -1), -EINTR);
		_exit(0);
	}
	t_wait_word(&f->shm->cons_wait, 1, 10000);
	/* Signal until it returns: a signal that lands before the sleep is lost. */
	for (i = 0; i < 1000 && rc == T_STILL_RUNNING; i++) {
		kill(pid, SIGUSR1);
		t_sleep_ms(10);
		rc = t_try_wait(pid);
	}
	if (rc == T_STILL_RUNNING) {
		t_kill_wait(pid);
		fail_msg("wait_readable did not return after SIGUSR1");
	}
	assert_int_equal(rc, 0);
}

/* ---- hostile peers ------------------------------------------------------ */

/*
 * The producer's view of a garbage head written by the consumer. Every value
 * that cannot be a head (behind the tail by more than the capacity, ahead of
 * it, or unaligned) must be refused with -EPROTO before a single byte is
 * written; the guard pages catch any write outside the ring.
 */
static void check_garbage_head(struct fx *f, uint32_t flags, bool rel, uint32_t v)
{
	uint8_t buf[64] = { 0 };
	struct iovec iov = { buf, 8 };
	uint32_t tail, head, used;
	bool bad;
	int rc;

	fx_open(f, CAP, 0, flags);
	if (flags & IPCD_SPSC_F_STREAM) {
		while (ipcd_spsc_write(&f->p, buf, 64) > 0)
			;
	} else {
		fill_msgs(&f->p, 8);
	}
	tail = f->shm->tail;
	head = rel ? tail + v : v;
	f->shm->head = head;
	used = tail - head;
	bad = used > CAP || (head & 7);

	if (flags & IPCD_SPSC_F_STREAM)
		rc = (int)ipcd_spsc_write(&f->p, buf, 8);
	else
		rc = ipcd_spsc_send(&f->p, buf, 8);
	if (bad) {
		if (rc != -EPROTO)
			fail_msg("head %#x tail %#x: send/write returned %d, not -EPROTO", head,
				 tail, rc);
		if (!(flags & IPCD_SPSC_F_STREAM))
			assert_int_equal(ipcd_spsc_send_burst(&f->p, &iov, 1), -EPROTO);
		/* writable() reports a corrupt ring as ready, so the write reports it. */
		assert_true(ipcd_spsc_writable(&f->p, 8));
		assert_int_equal(f->shm->tail, tail);	/* nothing was published */
	} else {
		assert_true(rc == 0 || rc == 8 || rc == -EAGAIN);
	}
}

static void test_corrupt_head_producer(void **state)
{
	struct fx *f = *state;
	static const uint32_t fixed[] = { 8, 16, 0x80000000u, UINT32_MAX, UINT32_MAX - 7, 4, 3 };
	struct t_rng rng;
	unsigned int i, m;

	t_rng_init(&rng, t_seed() + 7);
	for (m = 0; m < 2; m++) {
		uint32_t flags = m ? IPCD_SPSC_F_STREAM : 0;

		for (i = 0; i < IPCD_ARRAY_SIZE(fixed); i++)
			check_garbage_head(f, flags, false, fixed[i]);
		for (i = 0; i < 200; i++)
			check_garbage_head(f, flags, false, (uint32_t)t_rng_next(&rng));
		/* Near the real head: ahead of the tail, too far behind, unaligned, valid. */
		for (i = 0; i < 40; i++) {
			check_garbage_head(f, flags, true, 8 + 8 * i);
			check_garbage_head(f, flags, true, 0u - CAP - 8 - 8 * i);
			check_garbage_head(f, flags, true, 0u - 8 * i - 1 - i % 7);
			check_garbage_head(f, flags, true, 0u - 8 * i);
		}
	}
}

/*
 * wait_writable must not sleep on a bad head: it returns -EPROTO, or 0 so that
 * the write reports -EPROTO. Sleeping into the timeout is the failure.
 */
static void test_corrupt_head_wait_writable(void **state)
{
	struct fx *f = *state;
	int rc;

	fx_open(f, CAP, 0, 0);
	fill_msgs(&f->p, 8);
	f->shm->head = f->shm->tail + 64;
	rc = ipcd_spsc_wait_writable(&f->p, 8, 0, 2 * T_NSEC_PER_SEC);
	assert_true(rc == 0 || rc == -EPROTO);
	assert_int_equal(ipcd_spsc_send(&f->p, "x", 1), -EPROTO);
}

/* A header that claims the consumer's position but carries an impossible length. */
static void plant_header(struct fx *f, uint32_t pos, uint32_t len)
{
	uint64_t *h = (uint64_t *)(void *)((uint8_t *)f->mem + sizeof(struct ipcd_spsc_shm) +
					   (pos & (f->cap - 1)));

	__atomic_store_n(h, __ipcd_rec_pack(len, pos), __ATOMIC_RELEASE);
}

static void test_corrupt_record_len(void **state)
{
	struct fx *f = *state;
	const uint32_t max = 100;
	const uint32_t lens[] = { max + 1, max + 8, CAP, 1000, 0x7fffffffu, UINT32_MAX };
	uint8_t out[CAP];
	uint32_t olens[4];
	unsigned int i;

	for (i = 0; i < IPCD_ARRAY_SIZE(lens); i++) {
		fx_open(f, CAP, max, 0);
		plant_header(f, 0, lens[i]);
		assert_int_equal(ipcd_spsc_recv(&f->c, out, sizeof(out)), -EPROTO);
		assert_int_equal(ipcd_spsc_recv_burst(&f->c, out, sizeof(out), olens, 4), -EPROTO);
		assert_true(ipcd_spsc_readable(&f->c));	/* the caller finds out by reading */
		assert_int_equal(f->shm->head, 0);

		/* The same after a good record: the good one is delivered first. */
		fx_open(f, CAP, max, 0);
		assert_int_equal(ipcd_spsc_send(&f->p, "good", 4), 0);
		plant_header(f, 16, lens[i]);
		assert_int_equal(ipcd_spsc_recv(&f->c, out, sizeof(out)), 4);
		assert_int_equal(ipcd_spsc_recv(&f->c, out, sizeof(out)), -EPROTO);

		fx_open(f, CAP, max, IPCD_SPSC_F_STREAM);
		plant_header(f, 0, lens[i]);
		assert_int_equal(ipcd_spsc_read(&f->c, out, sizeof(out), 0), -EPROTO);
		assert_int_equal(ipcd_spsc_read(&f->c, out, sizeof(out), IPCD_SPSC_PEEK), -EPROTO);
	}
}

static void test_corrupt_head_off(void **state)
{
	struct fx *f = *state;
	static const uint32_t offs[] = { 11, 12, 100, 0x80000000u, UINT32_MAX };
	char out[64];
	unsigned int i;

	for (i = 0; i < IPCD_ARRAY_SIZE(offs); i++) {
		fx_open(f, CAP, 0, IPCD_SPSC_F_STREAM);
		assert_int_equal(ipcd_spsc_write(&f->p, "0123456789", 10), 10);
		f->shm->head_off = offs[i];
		assert_int_equal(ipcd_spsc_read(&f->c, out, sizeof(out), 0), -EPROTO);
		assert_int_equal(ipcd_spsc_read(&f->c, out, sizeof(out), IPCD_SPSC_PEEK), -EPROTO);
	}
	/* In range: reading resumes at the offset. */
	fx_open(f, CAP, 0, IPCD_SPSC_F_STREAM);
	assert_int_equal(ipcd_spsc_write(&f->p, "0123456789", 10), 10);
	f->shm->head_off = 7;
	assert_int_equal(ipcd_spsc_read(&f->c, out, sizeof(out), 0), 3);
	assert_memory_equal(out, "789", 3);
}

/*
 * Fuzz the consumer: random ring contents, random (aligned) head and
 * head_off, sometimes a header stamped with the head position and a random
 * length. Results must stay within the contract and nothing may fault.
 */
static void test_fuzz_consumer(void **state)
{
	struct fx *f = *state;
	uint8_t out[CAP * 2];
	uint32_t lens[8];
	struct t_rng rng;
	int i;

	t_rng_init(&rng, t_seed() + 8);
	for (i = 0; i < 4000; i++) {
		uint32_t flags = (i / 64) & 1 ? IPCD_SPSC_F_STREAM : 0;
		uint32_t head = (uint32_t)t_rng_next(&rng) & ~7u;
		ssize_t n;

		if (i % 64 == 0)
			fx_open(f, CAP, 0, flags);
		t_rng_fill(&rng, (uint8_t *)f->mem + sizeof(struct ipcd_spsc_shm), CAP);
		f->shm->head = head;
		f->shm->head_off = t_rng_below(&rng, 4) ? t_rng_below(&rng, 300)
							: (uint32_t)t_rng_next(&rng);
		f->shm->prod_closed = t_rng_below(&rng, 2);
		f->shm->prod_bytes = t_rng_next(&rng);
		if (t_rng_below(&rng, 2))
			plant_header(f, head, t_rng_below(&rng, 2) ? t_rng_below(&rng, CAP)
								   : (uint32_t)t_rng_next(&rng));
		(void)ipcd_spsc_readable(&f->c);
		assert_true(ipcd_spsc_bytes_ready(&f->c) <= CAP);
		if (flags) {
			n = ipcd_spsc_read(&f->c, out, t_rng_below(&rng, sizeof(out)) + 1,
					   t_rng_below(&rng, 2) ? IPCD_SPSC_PEEK : 0);
			assert_true(n == -EAGAIN || n == -EPROTO || (n >= 0 && n <= CAP));
		} else if (t_rng_below(&rng, 2)) {
			n = ipcd_spsc_recv(&f->c, out, t_rng_below(&rng, sizeof(out)) + 1);
			assert_true(n == -EAGAIN || n == -EPIPE || n == -EPROTO ||
				    (n >= 0 && n <= f->c.max_msg));
		} else {
			n = ipcd_spsc_recv_burst(&f->c, out, t_rng_below(&rng, sizeof(out)) + 1,
						 lens, 8);
			assert_true(n == -EPROTO || (n >= 0 && n <= 8));
		}
		n = ipcd_spsc_wait_readable(&f->c, 0, 0);
		assert_true(n == 0 || n == -ETIMEDOUT);
	}
}

/*
 * A hostile peer may write any index, including the other side's own
 * position, and may make it unaligned. Run each case in a child so a fault
 * is reported as a failure, not a crash of the runner. The ring ends on a
 * guard page, so a header load or store at (capacity - 4) faults.
 */
enum unaligned_case { UA_SEND, UA_WRITEV, UA_RECV, UA_READV, UA_RECV_BURST, UA_READABLE };

static const char *const ua_names[] = {
	"send", "writev", "recv", "readv", "recv_burst", "readable",
};

static int run_unaligned(struct fx *f, enum unaligned_case which)
{
	uint8_t buf[64] = { 0 };
	uint32_t lens[4];
	uint32_t cap = CAP;
	bool stream = which == UA_WRITEV || which == UA_READV;
	pid_t pid;
	int st;

	fx_open(f, cap, 0, stream ? IPCD_SPSC_F_STREAM : 0);
	if (which == UA_SEND || which == UA_WRITEV) {
		/* tail unaligned, head aligned and "4 bytes used": lots of room */
		f->shm->tail = 2 * cap - 4;
		f->shm->head = 2 * cap - 8;
	} else {
		f->shm->head = 2 * cap - 4;
		f->shm->tail = 2 * cap - 4;
	}
	assert_int_equal(ipcd_spsc_attach(&f->p, f->mem, f->mem_size), 0);
	assert_int_equal(ipcd_spsc_attach(&f->c, f->mem, f->mem_size), 0);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0) {
		long long rc = 0;

		switch (which) {
		case UA_SEND:
			rc = ipcd_spsc_send(&f->p, buf, 8);
			break;
		case UA_WRITEV:
			rc = ipcd_spsc_write(&f->p, buf, 8);
			break;
		case UA_RECV:
			rc = ipcd_spsc_recv(&f->c, buf, sizeof(buf));
			break;
		case UA_READV:
			rc = ipcd_spsc_read(&f->c, buf, sizeof(buf), 0);
			break;
		case UA_RECV_BURST:
			rc = ipcd_spsc_recv_burst(&f->c, buf, sizeof(buf), lens, 4);
			break;
		case UA_READABLE:
			rc = ipcd_spsc_readable(&f->c) ? -EPROTO : -EAGAIN;
			break;
		}
		T_CHECK(rc == -EPROTO || rc == -EAGAIN || rc == 0);
		_exit(0);
	}
	st = t_wait(pid, 60000);
	if (st != 0)
		print_error("case %s: child %s %d (unaligned index read from shared memory "
			    "used without a check)\n", ua_names[which],
			    st > 128 ? "died of signal" : "exit", st > 128 ? st - 128 : st);
	return st != 0;
}

static void test_corrupt_unaligned_tail_producer(void **state)
{
	int bad = run_unaligned(*state, UA_SEND) + run_unaligned(*state, UA_WRITEV);

	assert_int_equal(bad, 0);
}

static void test_corrupt_unaligned_head_consumer(void **state)
{
	int bad = run_unaligned(*state, UA_RECV) + run_unaligned(*state, UA_READV) +
		  run_unaligned(*state, UA_RECV_BURST) + run_unaligned(*state, UA_READABLE);

	assert_int_equal(bad, 0);
}

/* ---- remote hooks (shm_abi.h IPCD_DB_REMOTE) ------------------------------ */

static unsigned int hook_calls[2];	/* [room] */

static void count_hook(const struct ipcd_spsc *r, bool room)
{
	assert_ptr_equal(r->remote_arg, &hook_calls);
	hook_calls[room]++;
}

/*
 * A ring whose consumer is on another host: every publish and every close
 * calls the producer's hook, and never clears the word; the consumer's
 * frees call its own hook. A word that says REMOTE on a ring with no hook
 * (a local ring a hostile peer scribbled on) is an ordinary doorbell.
 */
static void test_remote_hooks(void **state)
{
	struct fx *f = *state;
	uint8_t buf[64] = { 0 };

	fx_open(f, CAP, 0, IPCD_SPSC_F_STREAM);
	f->shm->cons_wait = IPCD_DB_REMOTE;
	f->shm->prod_wait = IPCD_DB_REMOTE;
	f->p.remote_word = &f->shm->cons_wait;
	f->p.remote = count_hook;
	f->p.remote_arg = &hook_calls;
	f->c.remote_word = &f->shm->prod_wait;
	f->c.remote = count_hook;
	f->c.remote_arg = &hook_calls;
	memset(hook_calls, 0, sizeof(hook_calls));

	assert_int_equal(ipcd_spsc_write(&f->p, buf, 10), 10);
	assert_int_equal(ipcd_spsc_write(&f->p, buf, 20), 20);
	assert_int_equal(hook_calls[false], 2);
	assert_int_equal(f->shm->cons_wait, IPCD_DB_REMOTE);	/* never consumed */
	assert_int_equal(ipcd_spsc_read(&f->c, buf, sizeof(buf), 0), 30);
	assert_int_equal(hook_calls[true], 1);
	assert_int_equal(f->shm->prod_wait, IPCD_DB_REMOTE);
	ipcd_spsc_close_prod(&f->p);
	ipcd_spsc_close_cons(&f->c);
	assert_int_equal(hook_calls[false], 3);
	assert_int_equal(hook_calls[true], 2);

	/* No hook: the bit is just a non-zero word, cleared by the waker. */
	fx_open(f, CAP, 0, IPCD_SPSC_F_STREAM);
	memset(hook_calls, 0, sizeof(hook_calls));
	f->shm->cons_wait = IPCD_DB_REMOTE;
	assert_int_equal(ipcd_spsc_write(&f->p, buf, 10), 10);
	assert_int_equal(hook_calls[false] + hook_calls[true], 0);
	assert_int_equal(f->shm->cons_wait, 0);
}

#define T(fn)		cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define T_AT(fn, where)	\
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, &(where))

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_init_rejects_bad_args),
		T(test_attach_geometry),
		T(test_attach_rejects_corrupt_geometry),
		T(test_geometry_is_private_copy),
		T(test_msg_send_recv),
		T(test_msg_full),
		T(test_msg_wrap_many_laps),
		T(test_msg_uint32_wrap),
		T(test_send_burst),
		T(test_msg_eof),
		T(test_close_cons),
		T(test_unread_with_lagging_count),
		T(test_stream_marks),
		T(test_stream_partial_reads),
		T(test_stream_partial_writes),
		T(test_stream_wrap_many_laps),
		T(test_stream_eof),
		T(test_wait_timeouts),
		T(test_wait_readable_cross_process),
		T(test_wait_writable_cross_process),
		T(test_wait_eintr),
		T_AT(test_corrupt_head_producer, AT_END),
		T_AT(test_corrupt_head_producer, AT_START),
		T(test_corrupt_head_wait_writable),
		T_AT(test_corrupt_record_len, AT_END),
		T_AT(test_corrupt_record_len, AT_START),
		T_AT(test_corrupt_head_off, AT_END),
		T_AT(test_fuzz_consumer, AT_END),
		T_AT(test_fuzz_consumer, AT_START),
		T(test_corrupt_unaligned_tail_producer),
		T(test_corrupt_unaligned_head_consumer),
		T(test_remote_hooks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
