/* SPDX-License-Identifier: MIT */
/*
 * fuzz_hello.c - what a process sends on the monitor's control socket before
 * it is registered (monitor/control.c control_pending_ready(), then
 * clients.c clients_register() or report.c report_query()).
 *
 * Anyone who can reach the socket (mode 0666) sends anything: a hello of any
 * length, magic, ABI, kind and comm; an admin query of any size and content;
 * nothing at all, or more than it should. The input is a series of such
 * connections, each given credentials, one or two messages and a moment for
 * the monitor to read them, with a registered process in the background so
 * that queries have something to report. Checked: every connection ends
 * registered, refused (with a welcome saying why, when it spoke our
 * handshake) or still pending, and never takes the monitor down.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fx.h"
#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CONNS	16
#define FIRST_IDX	2	/* fx.c uses pending[0] and [1] */

/* One message: a template hello or query with fields from the input, or raw bytes. */
static size_t message(struct fz *f, uint8_t *buf, size_t cap, bool query)
{
	uint8_t how = fz_u8(f);
	size_t len;

	if (how & 1) {
		len = fz_u8(f) % cap;
		fz_bytes(f, buf, len);
		return len;
	}
	if (query) {
		struct ipcd_ctl_query q = { .what = fz_u8(f) % (IPCD_Q_CLUSTER + 2),
					    .flags = fz_u8(f) & 3 };

		memcpy(buf, &q, sizeof(q));
		len = sizeof(q);
	} else {
		struct ipcd_ctl_hello h = {
			.magic = IPCD_CTL_MAGIC,
			.abi_major = IPCD_SHM_ABI_MAJOR,
			.abi_minor = IPCD_SHM_ABI_MINOR,
			.kind = how & 2 ? IPCD_CTL_ADMIN : IPCD_CTL_CLIENT,
		};

		if (how & 4)
			h.abi_major = fz_u16(f);
		if (how & 8)
			h.abi_minor = fz_u16(f);
		if (how & 16)
			h.kind = fz_u32(f);
		if (how & 32)
			h.flags = fz_u32(f);
		fz_bytes(f, h.comm, sizeof(h.comm));	/* not terminated, not printable */
		if (how & 64)
			fz_bytes(f, h.reserved, sizeof(h.reserved));
		memcpy(buf, &h, sizeof(h));
		len = sizeof(h);
	}
	if (how & 128)	/* cut short, or longer than the struct */
		len = IPCD_MIN((size_t)fz_u8(f), cap);
	return len;
}

static void one(struct fz *f, uint32_t idx, int *peer)
{
	struct mon_pending *p = &mon.pending[idx];
	uint8_t how = fz_u8(f), buf[512];
	struct ipcd_ctl_welcome w;
	int sv[2], k;
	ssize_t n;

	if (p->sock >= 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
				       sv))
		return;
	p->sock = sv[0];
	p->cred.pid = getpid();
	p->cred.uid = how & 1 ? 1000 : 0;
	p->cred.gid = p->cred.uid;
	p->since_ns = ipcd_now_ns();
	for (k = 0; k < 1 + (how >> 1 & 1); k++) {
		size_t len = message(f, buf, sizeof(buf), k == 1);

		(void)send(sv[1], buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	if (how & 4)
		close(sv[1]);	/* gone before the monitor looks */
	control_pending_ready(idx);
	if (how & 8)
		control_pending_ready(idx);	/* epoll says readable again */
	if (how & 4) {
		FZ_CHECK(p->sock < 0);
		return;
	}
	/* The first answer, if any, is a welcome; a registration brings three fds. */
	n = recv(sv[1], &w, sizeof(w), MSG_DONTWAIT);
	if (n == (ssize_t)sizeof(w) && w.magic == IPCD_CTL_MAGIC) {
		FZ_CHECK(w.status <= 0);
		FZ_CHECK(memchr(w.msg, '\0', sizeof(w.msg)) != NULL);
		if (w.status)
			FZ_CHECK(p->sock < 0);	/* refused: closed */
	}
	*peer = sv[1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { .p = data, .n = size };
	int peers[MAX_CONNS];
	unsigned int i, n = 0;

	fx_start("max_processes = 4\nmax_connections = 16\nspin_us = 0\n");
	(void)fx_connect(0, 0, IPCD_SHM_ABI_MINOR);	/* something for queries to report */
	while (n < MAX_CONNS && fz_more(&f)) {
		peers[n] = -1;
		one(&f, FIRST_IDX + n % (MON_MAX_PENDING - FIRST_IDX), &peers[n]);
		n++;
		if (fz_u8(&f) & 1)
			fx_turn();
		if (fz_u8(&f) & 1)
			fx_housekeep();	/* those still pending time out */
	}
	for (i = 0; i < n; i++)
		if (peers[i] >= 0)
			close(peers[i]);
	fx_turn();
	fx_stop();
	return 0;
}
