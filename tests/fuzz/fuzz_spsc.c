/* SPDX-License-Identifier: MIT */
/*
 * fuzz_spsc.c - an SPSC ring (queues/spsc.c, include/ipcd/spsc.h) whose peer
 * writes anything.
 *
 * A connection's rings are shared with another application: the consumer
 * reads record headers, @head and @head_off that the peer can overwrite at
 * any moment (they are in the same mapping), and a producer (the monitor's
 * responses, a connection's writer) reads a @head its consumer wrote. The
 * input is a program: honest sends and reads on both sides, interleaved
 * with arbitrary writes of the peer into the control block and the data,
 * in message or stream mode. The ring lives in a malloc'ed block of exactly
 * its size, so ASan sees any access outside it; every result must be in the
 * range its contract gives, and every call must return (libFuzzer's
 * -timeout catches a loop).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <ipcd/spsc.h>

#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS		512
#define MAX_LEN		4200		/* beyond the largest ring: -EMSGSIZE paths too */

enum op {
	OP_SCRIBBLE,		/* the peer writes bytes anywhere in the ring */
	OP_INDEX,		/* ... or one control word */
	OP_HEADER,		/* ... or a record header, maybe one that looks published */
	OP_SEND,
	OP_WRITEV,
	OP_SEND_BURST,
	OP_MARK,
	OP_RECV,
	OP_RECV_BURST,
	OP_READV,
	OP_QUERY,
	OP_WAIT,
	OP_CLOSE,
	OP_REATTACH,		/* a handle made from geometry the peer rewrote */
	OP_COUNT
};

static uint8_t scratch[MAX_LEN];

/* Control words a peer can write, by their offset in struct ipcd_spsc_shm. */
static const size_t words[] = {
	offsetof(struct ipcd_spsc_shm, tail),
	offsetof(struct ipcd_spsc_shm, head),
	offsetof(struct ipcd_spsc_shm, head_off),
	offsetof(struct ipcd_spsc_shm, prod_lock),
	offsetof(struct ipcd_spsc_shm, cons_lock),
	offsetof(struct ipcd_spsc_shm, cons_wait),
	offsetof(struct ipcd_spsc_shm, prod_wait),
	offsetof(struct ipcd_spsc_shm, prod_closed),
	offsetof(struct ipcd_spsc_shm, cons_closed),
	offsetof(struct ipcd_spsc_shm, capacity),
	offsetof(struct ipcd_spsc_shm, max_msg),
	offsetof(struct ipcd_spsc_shm, flags),
};

/* Up to three iovecs over separately allocated buffers of the sizes asked. */
struct vecs {
	struct iovec iov[3];
	int n;
	size_t total;
};

static void vecs_make(struct fz *f, struct vecs *v, bool fill)
{
	int i;

	v->n = fz_u8(f) % 4;
	v->total = 0;
	for (i = 0; i < v->n; i++) {
		size_t len = fz_u16(f) % MAX_LEN;

		v->iov[i].iov_base = malloc(len ? len : 1);
		v->iov[i].iov_len = len;
		if (fill)
			fz_bytes(f, v->iov[i].iov_base, len);
		v->total += len;
	}
}

static void vecs_free(struct vecs *v)
{
	int i;

	for (i = 0; i < v->n; i++)
		free(v->iov[i].iov_base);
}

static void queries(struct ipcd_spsc *r, uint32_t len)
{
	int64_t m;

	(void)ipcd_spsc_readable(r);
	(void)ipcd_spsc_unread(r);
	(void)ipcd_spsc_bytes_ready(r);
	(void)ipcd_spsc_room(r, len);
	(void)ipcd_spsc_writable(r, len);
	m = ipcd_spsc_mark_ready(r);
	/* 1 also stands for "a mark or a corrupt header follows" */
	FZ_CHECK(m == -EINVAL || m == -EAGAIN || (m >= 0 && m <= IPCD_MAX(r->max_msg, 1u)));
}

static void run(struct fz *f, uint8_t *mem, size_t mem_size, struct ipcd_spsc *prod,
		struct ipcd_spsc *cons)
{
	struct ipcd_spsc alt;
	unsigned int ops;

	for (ops = 0; ops < MAX_OPS && fz_more(f); ops++) {
		switch (fz_u8(f) % OP_COUNT) {
		case OP_SCRIBBLE: {
			size_t off = fz_u16(f) % mem_size;
			size_t len = fz_u8(f) % 64;

			fz_bytes(f, mem + off, IPCD_MIN(len, mem_size - off));
			break;
		}
		case OP_INDEX: {
			uint32_t v = fz_u32(f);

			memcpy(mem + words[fz_u8(f) % IPCD_ARRAY_SIZE(words)], &v, sizeof(v));
			break;
		}
		case OP_HEADER: {
			uint32_t pos = fz_u32(f), len = fz_u32(f);
			uint8_t how = fz_u8(f);
			uint32_t seq = how & 1 ? pos : fz_u32(f);

			if (how & 2)	/* near the consumer's head: where it will look */
				pos = ipcd_load_relaxed(&cons->shm->head) + (pos & 0xff);
			if (how & 4)
				len %= cons->capacity;
			*__ipcd_rec_at(cons, pos) = __ipcd_rec_pack(len, seq);
			break;
		}
		case OP_SEND: {
			uint32_t len = fz_u16(f) % MAX_LEN;
			int rc;

			fz_bytes(f, scratch, len);
			rc = ipcd_spsc_send(prod, scratch, len);
			FZ_CHECK(rc == 0 || rc == -EAGAIN || rc == -EMSGSIZE || rc == -EPIPE ||
				 rc == -EPROTO);
			break;
		}
		case OP_WRITEV: {
			struct vecs v;
			ssize_t n;

			vecs_make(f, &v, true);
			n = ipcd_spsc_writev(prod, v.iov, v.n);
			FZ_CHECK((n >= 0 && (size_t)n <= v.total) || n == -EAGAIN || n == -EPIPE ||
				 n == -EPROTO);
			vecs_free(&v);
			break;
		}
		case OP_SEND_BURST: {
			struct vecs v;
			int n;

			vecs_make(f, &v, true);
			n = ipcd_spsc_send_burst(prod, v.iov, (unsigned int)v.n);
			FZ_CHECK((n >= 0 && n <= v.n) || n == -EMSGSIZE || n == -EPIPE ||
				 n == -EPROTO);
			vecs_free(&v);
			break;
		}
		case OP_MARK: {
			int rc = ipcd_spsc_mark(prod);

			FZ_CHECK(rc == 0 || rc == -EAGAIN || rc == -EPIPE || rc == -EPROTO);
			break;
		}
		case OP_RECV: {
			size_t buflen = fz_u16(f) % MAX_LEN;
			uint8_t *buf = malloc(buflen ? buflen : 1);
			ssize_t n = ipcd_spsc_recv(cons, buf, buflen);

			FZ_CHECK((n >= 0 && n <= cons->max_msg) || n == -EAGAIN || n == -EPIPE ||
				 n == -EPROTO);
			free(buf);
			break;
		}
		case OP_RECV_BURST: {
			size_t buflen = fz_u16(f) % MAX_LEN;
			unsigned int n = fz_u8(f) % 9;
			uint8_t *buf = malloc(buflen ? buflen : 1);
			uint32_t lens[8];
			int got = ipcd_spsc_recv_burst(cons, buf, buflen, lens, n);

			FZ_CHECK((got >= 0 && (unsigned int)got <= n) || got == -EPROTO);
			for (int i = 0; i < got; i++)
				FZ_CHECK(lens[i] <= cons->max_msg && lens[i] <= buflen);
			free(buf);
			break;
		}
		case OP_READV: {
			unsigned int flags = fz_u8(f) & (IPCD_SPSC_PEEK | IPCD_SPSC_MARKS |
							 IPCD_SPSC_PAST_MARK);
			struct vecs v;
			ssize_t n;

			vecs_make(f, &v, false);
			n = ipcd_spsc_readv(cons, v.iov, v.n, flags);
			FZ_CHECK((n >= 0 && (size_t)n <= v.total) || n == -EAGAIN || n == -ENOMSG ||
				 n == -EPROTO);
			vecs_free(&v);
			break;
		}
		case OP_QUERY:
			queries(cons, fz_u16(f));
			queries(prod, fz_u16(f));
			break;
		case OP_WAIT: {
			/* No spin, no time: must answer at once, never sleep. */
			int rc = ipcd_spsc_wait_readable(cons, 0, 0);

			FZ_CHECK(rc == 0 || rc == -ETIMEDOUT);
			rc = ipcd_spsc_wait_writable(prod, fz_u16(f), 0, 0);
			FZ_CHECK(rc == 0 || rc == -ETIMEDOUT || rc == -EPROTO);
			break;
		}
		case OP_CLOSE:
			if (fz_u8(f) & 1)
				ipcd_spsc_close_prod(prod);
			else
				ipcd_spsc_close_cons(cons);
			break;
		case OP_REATTACH: {
			bool to_prod = fz_u8(f) & 1;

			/*
			 * A process that maps the ring after the peer rewrote its
			 * geometry: attach must refuse what does not fit the memory,
			 * and a handle it accepts is used from then on.
			 */
			if (ipcd_spsc_attach(&alt, mem, mem_size) == 0) {
				FZ_CHECK(ipcd_spsc_mem_size(alt.capacity) <= mem_size);
				*(to_prod ? prod : cons) = alt;
			}
			break;
		}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { .p = data, .n = size };
	uint8_t geo = fz_u8(&f);
	uint32_t capacity = IPCD_SPSC_MIN_CAPACITY << (geo % 7);	/* 64 .. 4096 */
	uint32_t flags = geo & 0x80 ? IPCD_SPSC_F_STREAM : 0;
	uint32_t max_msg = geo & 0x40 ? 0 : (fz_u16(&f) % (capacity - 15));
	size_t mem_size = ipcd_spsc_mem_size(capacity);
	struct ipcd_spsc prod, cons;
	uint8_t *mem;

	/* As aligned as the struct (a region area is); exactly its size for ASan. */
	if (posix_memalign((void **)&mem, IPCD_CACHE_GUARD, mem_size))
		return 0;
	memset(mem, 0, mem_size);
	if (ipcd_spsc_init(mem, capacity, max_msg, flags) == 0 &&
	    ipcd_spsc_attach(&prod, mem, mem_size) == 0 &&
	    ipcd_spsc_attach(&cons, mem, mem_size) == 0)
		run(&f, mem, mem_size, &prod, &cons);
	free(mem);
	return 0;
}
