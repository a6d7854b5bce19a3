/* SPDX-License-Identifier: MIT */
/*
 * fuzz_region.c - mapping a shared region whose every byte someone else wrote
 * (queues/shm.c, and the attach steps of spsc.c, mpsc.c, reqq.c).
 *
 * Who can write a region a process maps: a lane's kit region comes from the
 * connecting process, which can rewrite its header before it sends it (the
 * listener then maps it: preload/attach.c conn_attach()); the global region
 * is mapped writable by every client, so a hostile one can rewrite its header
 * for the next process that registers. The input is the region's bytes (of
 * a size it picks) and the kind expected. The reader copies the header,
 * validates the copy, takes each area and attaches what lives there, as
 * ipcd_region_adopt() and the attach steps do; then uses the rings a little,
 * as consumer and producer. Everything it touches must lie inside the block
 * (malloc'ed of exactly the region's size: ASan sees the rest).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <ipcd/mpsc.h>
#include <ipcd/proto.h>
#include <ipcd/reqq.h>
#include <ipcd/shm.h>
#include <ipcd/spsc.h>

#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t buf[4096];

static void use_ring(struct ipcd_spsc *r)
{
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	uint32_t lens[4];

	(void)ipcd_spsc_readable(r);
	(void)ipcd_spsc_bytes_ready(r);
	if (r->flags & IPCD_SPSC_F_STREAM) {
		(void)ipcd_spsc_readv(r, &iov, 1, IPCD_SPSC_PEEK | IPCD_SPSC_MARKS);
		(void)ipcd_spsc_readv(r, &iov, 1, 0);
		(void)ipcd_spsc_write(r, buf, 100);
	} else {
		(void)ipcd_spsc_recv_burst(r, buf, sizeof(buf), lens, 4);
		(void)ipcd_spsc_recv(r, buf, sizeof(buf));
		(void)ipcd_spsc_send(r, buf, IPCD_MIN(r->max_msg, 64u));
	}
}

/* Each area must lie inside the mapping, whatever the header claimed. */
static void *area(const struct ipcd_region *reg, uint32_t i, size_t *size)
{
	uint8_t *p = ipcd_region_area(reg, i, size);

	if (p) {
		FZ_CHECK(p >= (uint8_t *)reg->base && *size <= reg->size &&
			 (size_t)(p - (uint8_t *)reg->base) <= reg->size - *size);
	}
	return p;
}

static void conn_region(const struct ipcd_region *reg)
{
	struct ipcd_spsc a2b, b2a;
	size_t sz[3];
	void *p[3];
	uint32_t i;

	for (i = 0; i < 3; i++)
		if (!(p[i] = area(reg, i, &sz[i])))
			return;
	if (sz[IPCD_AREA_CONN_CTL] < sizeof(struct ipcd_conn_ctl))
		return;
	if (ipcd_spsc_attach(&a2b, p[IPCD_AREA_CONN_A2B], sz[IPCD_AREA_CONN_A2B]) ||
	    ipcd_spsc_attach(&b2a, p[IPCD_AREA_CONN_B2A], sz[IPCD_AREA_CONN_B2A]))
		return;
	use_ring(&a2b);
	use_ring(&b2a);
}

static void client_region(const struct ipcd_region *reg)
{
	struct ipcd_reqq_chan chan;
	struct ipcd_resp resp = { .opcode = IPCD_OP_NOP };
	struct ipcd_req req;

	if (ipcd_reqq_chan_attach(reg, &chan))
		return;
	FZ_CHECK(chan.req.max_msg == sizeof(req) && chan.resp.max_msg == sizeof(resp));
	(void)ipcd_spsc_recv(&chan.req, &req, sizeof(req));
	(void)ipcd_spsc_send(&chan.resp, &resp, sizeof(resp));
	(void)ipcd_load_relaxed(&chan.ctl->doorbell_pending);
}

static void global_region(const struct ipcd_region *reg)
{
	struct ipcd_mpsc q;
	uint32_t out[8];
	size_t sz;
	void *p;

	p = area(reg, IPCD_AREA_GLOBAL_CTL, &sz);
	if (!p || sz < sizeof(struct ipcd_global_ctl))
		return;
	p = area(reg, IPCD_AREA_GLOBAL_MPSC, &sz);
	if (!p || ipcd_mpsc_attach(&q, p, sz, 1000))
		return;
	(void)ipcd_mpsc_push(&q, 1);
	(void)ipcd_mpsc_dequeue_burst(&q, out, 8, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { .p = data, .n = size };
	uint32_t kind = fz_u8(&f) % 4;
	size_t len = sizeof(struct ipcd_shm_hdr) + fz_u16(&f) % 32768;
	struct ipcd_region reg;
	uint8_t *mem;
	int rc;

	/* Page-aligned as a mapping is; exactly @len bytes for ASan. */
	if (posix_memalign((void **)&mem, 4096, len))
		return 0;
	fz_bytes(&f, mem, len);
	memset(&reg, 0, sizeof(reg));
	rc = ipcd_region_adopt(mem, len, kind, &reg);
	if (rc == 0) {
		FZ_CHECK(reg.hdr.kind == kind && reg.hdr.region_size == len);
		if (kind == IPCD_REGION_CONN)
			conn_region(&reg);
		else if (kind == IPCD_REGION_CLIENT)
			client_region(&reg);
		else if (kind == IPCD_REGION_GLOBAL)
			global_region(&reg);
	} else {
		FZ_CHECK(rc == -EAGAIN || rc == -EPROTO || rc == -EPROTONOSUPPORT);
	}
	free(mem);
	return 0;
}
