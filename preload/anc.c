/* SPDX-License-Identifier: MIT */
/*
 * anc.c - ancillary data on accelerated socketpair ends: SCM_RIGHTS and
 * SCM_CREDENTIALS, in order with the data.
 *
 * Control data cannot cross shared memory. A sendmsg() with control data
 * sends it over the kernel socketpair behind the two ends (s->kfd), where
 * the kernel checks it, counts the fds in flight and installs them in the
 * receiver, then puts a mark in the ring (ipcd_spsc_mark) and the data after
 * it, all under the ring's lock: the mark says where in the stream the
 * control data belongs. A read that meets a mark takes the next kernel
 * message, steps over the mark and ends after the record that follows it:
 * the control data comes with the bytes sent with it, and a read never goes
 * past them, as the kernel delivers it (data.c). A read that has the data
 * of one mark stops at the next.
 *
 * Each kernel message is a struct anc_hdr, its records after it, and the
 * control data. An fd that is an accelerated connection end of ours (a
 * pipe end, a socketpair or TCP end) is an eventfd to the kernel: the
 * receiver could do nothing with it alone. So the sender adds what its new
 * holder needs (the region's memfd, the peer's wake eventfd, the end's hold
 * token and life socket, a socketpair end's kernel socket) to the same SCM_RIGHTS list and
 * describes each such end in a record; the receiver builds the end, installs
 * it at the fd the kernel gave for the eventfd, and gives the application
 * only the fds it was sent, in one SCM_RIGHTS message as the kernel merges
 * them. The new holder is counted by the sender before the message goes: a
 * message never received is closed by the kernel with its fds, the token
 * among them, and the monitor closes the end when no holder is left. An
 * accelerated listener goes as its kernel listening socket.
 *
 * MSG_PEEK at a mark gives the data without its control data.
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sock.h"

#define ANC_MAGIC	0x334e4149u		/* "IAN3" (3.7: struct anc_end.live) */
#define ANC_FDS_MAX	253			/* SCM_MAX_FD */
#define ANC_ENDS_MAX	(ANC_FDS_MAX / 4)	/* an end takes 2..6 fds */
#define ANC_NONE	UINT16_MAX

struct anc_hdr {
	uint32_t magic;
	uint32_t len;			/* this header and the records */
	uint32_t n_ends;
	uint32_t flags;			/* ANC_F_* */
	int32_t pid;			/* the credentials the sender claims (its own, */
	uint32_t uid;			/* or its SCM_CREDENTIALS): where its reader's */
	uint32_t gid;			/* reads stop (ipcd_anc_peek); the kernel's are */
	uint32_t pad;			/* what the reader is given */
};

#define ANC_F_FDS	(1u << 0)	/* SCM_RIGHTS: a read ends after its data */
#define ANC_F_CREDS	(1u << 1)	/* SCM_CREDENTIALS, or a writer's first write (SO_PASSCRED) */

/* One accelerated end in the message's SCM_RIGHTS list: indices into it. */
struct anc_end {
	uint64_t conn_id;
	uint64_t region_size;
	uint16_t app;			/* the application's fd (the end's eventfd) */
	uint16_t region;
	uint16_t peer;			/* the peer's wake eventfd */
	uint16_t hold;			/* the end's hold token, or ANC_NONE */
	uint16_t kfd;			/* a socketpair end's kernel socket, or ANC_NONE */
	uint16_t live;			/* the end's life socket, or ANC_NONE */
	uint8_t acceptor;
	uint8_t kind;
	uint8_t nonblock;
	uint8_t pad;
};

/* Scratch for one message, on the heap (a full SCM_RIGHTS list is ~1 KiB). */
struct anc_buf {
	struct anc_hdr hdr;
	struct anc_end ends[ANC_ENDS_MAX];
	int fds[ANC_FDS_MAX];
	int region_fds[ANC_ENDS_MAX];	/* sender: memfds to close after sending */
	struct ipcd_sock *socks[ANC_ENDS_MAX];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * ANC_FDS_MAX) + CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
};

static uint16_t add_fd(struct anc_buf *b, unsigned int *n, int fd)
{
	if (fd < 0)
		return ANC_NONE;
	b->fds[*n] = fd;
	return (uint16_t)(*n)++;
}

/* Undo what describe() counted and asked for, once the message cannot go. */
static void undescribe(struct anc_buf *b)
{
	uint32_t i;

	ipcd_socks_lock();
	for (i = 0; i < b->hdr.n_ends; i++)
		ipcd_socks_hold_one(b->socks[i], -1);
	ipcd_socks_unlock();
	for (i = 0; i < b->hdr.n_ends; i++) {
		if (b->region_fds[i] >= 0)
			ipcd_real.close(b->region_fds[i]);
		ipcd_sock_put(b->socks[i]);
	}
	b->hdr.n_ends = 0;
}

/*
 * The application's fds of @msg's SCM_RIGHTS messages into @b->fds (in
 * order, as the kernel merges them), each accelerated end described and
 * its companions appended; the other control messages are copied into
 * @b->ctl after the one SCM_RIGHTS message. Returns the control length, or
 * -errno.
 */
static ssize_t describe(struct anc_buf *b, const struct msghdr *msg)
{
	unsigned int n = 0, n_app, i;
	struct cmsghdr *c, *out;
	size_t others = 0;
	char *o;

	memset(&b->hdr, 0, sizeof(b->hdr));
	b->hdr.pid = ipcd_self_pid;
	b->hdr.uid = getuid();
	b->hdr.gid = getgid();
	for (c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
		size_t k, cnt;

		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
			struct ucred uc;

			memcpy(&uc, CMSG_DATA(c), sizeof(uc));
			b->hdr.pid = uc.pid;
			b->hdr.uid = uc.uid;
			b->hdr.gid = uc.gid;
			b->hdr.flags |= ANC_F_CREDS;
		}
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			others += CMSG_SPACE(c->cmsg_len - CMSG_LEN(0));
			continue;
		}
		cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (cnt > ANC_FDS_MAX - n)
			return -EINVAL;
		for (k = 0; k < cnt; k++)
			memcpy(&b->fds[n++], CMSG_DATA(c) + k * sizeof(int), sizeof(int));
	}
	n_app = n;
	if (others > sizeof(b->ctl.buf) - CMSG_SPACE(sizeof(int) * ANC_FDS_MAX))
		return -EINVAL;
	for (i = 0; i < n_app; i++) {
		struct ipcd_sock *s = ipcd_sock_get(b->fds[i]);
		struct anc_end *e;
		uint64_t size = 0;
		int region;

		if (!s)
			continue;
		if (s->state == IPCD_SK_LISTEN) {
			b->fds[i] = s->kfd;	/* the kernel's listener: not accelerated there */
			ipcd_sock_put(s);
			continue;
		}
		if (s->state != IPCD_SK_CONN || b->hdr.n_ends == ANC_ENDS_MAX ||
		    n + 5 > ANC_FDS_MAX) {
			bool conn = s->state == IPCD_SK_CONN;

			ipcd_sock_put(s);
			if (!conn)
				continue;	/* a socket still the kernel's */
			undescribe(b);
			return -ETOOMANYREFS;
		}
		if (s->conn.ctl->remote_host) {
			/*
			 * An end to another host moves its data through this
			 * process's RDMA engine: another process could not.
			 */
			ipcd_log_raw("ipcd: sendmsg: an RDMA connection cannot be passed with "
				     "SCM_RIGHTS (EOPNOTSUPP)\n");
			ipcd_sock_put(s);
			undescribe(b);
			return -EOPNOTSUPP;
		}
		region = ipcd_mon_region(s->conn.conn_id, s->conn.acceptor, &size);
		if (region < 0 || ipcd_sock_hold(s) < 0) {
			if (region >= 0)
				ipcd_real.close(region);
			ipcd_sock_put(s);
			undescribe(b);
			return region < 0 ? region : -ENOBUFS;
		}
		e = &b->ends[b->hdr.n_ends];
		memset(e, 0, sizeof(*e));
		b->socks[b->hdr.n_ends] = s;
		b->region_fds[b->hdr.n_ends] = region;
		e->conn_id = s->conn.conn_id;
		e->region_size = size;
		e->app = (uint16_t)i;
		e->region = add_fd(b, &n, region);
		e->peer = add_fd(b, &n, s->conn.wake_peer);
		e->hold = add_fd(b, &n, s->conn.hold_fd);
		e->kfd = add_fd(b, &n, s->kind == IPCD_CONN_KIND_UNIX ? s->kfd : -1);
		e->live = add_fd(b, &n, s->conn.live_fd);
		e->acceptor = s->conn.acceptor;
		e->kind = s->kind;
		e->nonblock = atomic_load(&s->nonblock);
		/* Its new holder, counted before it can exist (fdtab.c holders). */
		ipcd_socks_lock();
		ipcd_socks_hold_one(s, +1);
		ipcd_socks_unlock();
		b->hdr.n_ends++;
	}
	/* One SCM_RIGHTS message, then the others as they were. */
	out = (struct cmsghdr *)b->ctl.buf;
	o = b->ctl.buf;
	if (n) {
		b->hdr.flags |= ANC_F_FDS;
		out->cmsg_level = SOL_SOCKET;
		out->cmsg_type = SCM_RIGHTS;
		out->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(out), b->fds, n * sizeof(int));
		o += CMSG_SPACE(n * sizeof(int));
	}
	for (c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			continue;
		memcpy(o, c, c->cmsg_len);
		o += CMSG_SPACE(c->cmsg_len - CMSG_LEN(0));
	}
	b->hdr.magic = ANC_MAGIC;
	b->hdr.len = (uint32_t)(sizeof(b->hdr) + b->hdr.n_ends * sizeof(struct anc_end));
	return o - b->ctl.buf;
}

/* What the receiver's peek tells it (ipcd_anc_peek). */
static void claimed(const struct anc_hdr *h, struct ipcd_anc_info *in)
{
	in->fds = (h->flags & ANC_F_FDS) != 0;
	in->cred = (struct ucred){ .pid = h->pid, .uid = h->uid, .gid = h->gid };
}

int ipcd_anc_send_creds(struct ipcd_sock *s, bool nb, struct ipcd_anc_info *sent)
{
	struct anc_hdr h = {
		.magic = ANC_MAGIC, .len = sizeof(h), .flags = ANC_F_CREDS,
		.pid = ipcd_self_pid, .uid = getuid(), .gid = getgid(),
	};

	/* No control data: the reader's SO_PASSCRED makes the kernel attach ours. */
	if (ipcd_real.send(s->kfd, &h, sizeof(h), MSG_NOSIGNAL | (nb ? MSG_DONTWAIT : 0)) !=
	    (ssize_t)sizeof(h))
		return errno ? errno : EIO;
	claimed(&h, sent);
	return 0;
}

int ipcd_anc_peek(struct ipcd_sock *s, struct ipcd_anc_info *in)
{
	struct anc_hdr h;

	/* No control buffer: the kernel installs no fd for a peek without one. */
	if (ipcd_real.recv(s->kfd, &h, sizeof(h), MSG_PEEK | MSG_DONTWAIT) != (ssize_t)sizeof(h) ||
	    h.magic != ANC_MAGIC)
		return -EPROTO;
	claimed(&h, in);
	return 0;
}

int ipcd_anc_send(struct ipcd_sock *s, const struct msghdr *msg, bool nb,
		  struct ipcd_anc_info *sent)
{
	struct anc_buf *b = malloc(sizeof(*b));
	struct iovec v[2];
	struct msghdr km = { .msg_iov = v, .msg_iovlen = 2 };
	ssize_t ctl;
	uint32_t i;
	int err = 0;

	if (!b)
		return ENOBUFS;
	ctl = describe(b, msg);
	if (ctl < 0) {
		free(b);
		return (int)-ctl;
	}
	v[0] = (struct iovec){ .iov_base = &b->hdr, .iov_len = sizeof(b->hdr) };
	v[1] = (struct iovec){ .iov_base = b->ends, .iov_len = b->hdr.len - sizeof(b->hdr) };
	km.msg_control = ctl ? b->ctl.buf : NULL;
	km.msg_controllen = (size_t)ctl;
	if (ipcd_real.sendmsg(s->kfd, &km, MSG_NOSIGNAL | (nb ? MSG_DONTWAIT : 0)) !=
	    (ssize_t)b->hdr.len) {
		err = errno ? errno : EIO;
		undescribe(b);
	} else {
		for (i = 0; i < b->hdr.n_ends; i++) {
			ipcd_real.close(b->region_fds[i]);
			ipcd_sock_put(b->socks[i]);
		}
		claimed(&b->hdr, sent);
	}
	free(b);
	return err;
}

/* ---- receiving ---------------------------------------------------------------------- */

/* The fds that came with end @e for its new holder only (of @n received). */
static void companions_close(const struct anc_end *e, const int *fds, unsigned int n)
{
	if (e->region < n)
		ipcd_real.close(fds[e->region]);
	if (e->peer < n)
		ipcd_real.close(fds[e->peer]);
	if (e->hold != ANC_NONE && e->hold < n)
		ipcd_real.close(fds[e->hold]);
	if (e->kfd != ANC_NONE && e->kfd < n)
		ipcd_real.close(fds[e->kfd]);
	if (e->live != ANC_NONE && e->live < n)
		ipcd_real.close(fds[e->live]);
}

/* End @e of the message: a socket of ours at the application's fd, or that fd closed. */
static bool adopt(const struct anc_end *e, const int *fds, unsigned int n, bool cloexec)
{
	int cfds[IPCD_CTL_CONN_NFDS];
	struct ipcd_sock *s;
	int app;

	if (e->app >= n || e->region >= n || e->peer >= n ||
	    (e->hold != ANC_NONE && e->hold >= n) || (e->kfd != ANC_NONE && e->kfd >= n) ||
	    (e->live != ANC_NONE && e->live >= n) || e->kind > IPCD_CONN_KIND_UNIX) {
		companions_close(e, fds, n);	/* cut by the kernel (our fd limit) */
		return false;
	}
	app = fds[e->app];
	s = ipcd_sock_new(e->kind == IPCD_CONN_KIND_PIPE ? AF_UNSPEC
			  : e->kind == IPCD_CONN_KIND_UNIX ? AF_UNIX : AF_INET,
			  e->nonblock ? SOCK_NONBLOCK : 0);
	if (!s || app >= IPCD_FDTAB_MAX)
		goto err;
	cfds[IPCD_CTL_CONN_FD_REGION] = fds[e->region];
	cfds[IPCD_CTL_CONN_FD_SELF] = -1;
	cfds[IPCD_CTL_CONN_FD_PEER] = fds[e->peer];
	cfds[IPCD_CTL_CONN_FD_LIVE] = e->live != ANC_NONE ? fds[e->live] : -1;
	if (ipcd_conn_open_id(cfds, e->region_size, e->acceptor != 0, e->conn_id, &s->conn) ||
	    s->conn.ctl->kind != e->kind) {
		ipcd_conn_release(&s->conn);
		goto err_fds;
	}
	s->kind = e->kind;
	s->conn.hold_fd = e->hold != ANC_NONE ? fds[e->hold] : -1;
	s->kfd = e->kfd != ANC_NONE ? fds[e->kfd] : -1;
	ipcd_fd_hide(s->conn.hold_fd, true);
	ipcd_fd_hide(s->kfd, true);
	ipcd_sock_conn_ready(s);
	ipcd_fdtab_set(app, s, cloexec);	/* the eventfd the kernel gave is the end's fd */
	return true;

err:
	ipcd_real.close(fds[e->region]);
	ipcd_real.close(fds[e->peer]);
	if (e->live != ANC_NONE)
		ipcd_real.close(fds[e->live]);
err_fds:
	if (e->hold != ANC_NONE)
		ipcd_real.close(fds[e->hold]);
	if (e->kfd != ANC_NONE)
		ipcd_real.close(fds[e->kfd]);
	if (s) {
		atomic_store(&s->refs, 1);
		ipcd_sock_put(s);
	}
	return false;
}

/*
 * Copy the control data of @km (ours) to the application's buffer @msg
 * (@cap bytes): one SCM_RIGHTS message with the fds not in @skip, then the
 * others. What does not fit is cut (MSG_CTRUNC) and its fds closed, as the
 * kernel does.
 */
static void deliver(struct msghdr *msg, socklen_t cap, struct msghdr *km, const bool *skip)
{
	char *o = msg ? msg->msg_control : NULL, *end = o ? o + cap : NULL;
	struct cmsghdr *c;
	bool trunc = (km->msg_flags & MSG_CTRUNC) != 0;

	for (c = CMSG_FIRSTHDR(km); c; c = CMSG_NXTHDR(km, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int), k, m = 0, fit;
			int *fds = (int *)(void *)CMSG_DATA(c);
			struct cmsghdr h = { .cmsg_level = SOL_SOCKET, .cmsg_type = SCM_RIGHTS };

			for (k = 0; k < cnt; k++)
				if (!skip[k])
					fds[m++] = fds[k];
			if (!m)
				continue;
			fit = o && end - o >= (ptrdiff_t)CMSG_LEN(sizeof(int)) ?
				      IPCD_MIN(m, (size_t)(end - o - CMSG_LEN(0)) / sizeof(int)) : 0;
			for (k = fit; k < m; k++)
				close(fds[k]);	/* ours: the table lets go of an end there */
			if (fit < m)
				trunc = true;
			if (!fit)
				continue;
			h.cmsg_len = CMSG_LEN(fit * sizeof(int));
			memcpy(o, &h, sizeof(h));
			memcpy(o + CMSG_LEN(0), fds, fit * sizeof(int));
			o += IPCD_MIN((size_t)(end - o), CMSG_SPACE(fit * sizeof(int)));
			continue;
		}
		if (!o || (size_t)(end - o) < c->cmsg_len) {
			trunc = true;
			continue;
		}
		memcpy(o, c, c->cmsg_len);
		o += IPCD_MIN((size_t)(end - o), CMSG_SPACE(c->cmsg_len - CMSG_LEN(0)));
	}
	if (msg) {
		msg->msg_controllen = o ? (size_t)(o - (char *)msg->msg_control) : 0;
		if (trunc)
			msg->msg_flags |= MSG_CTRUNC;
	}
}

bool ipcd_anc_take(struct ipcd_sock *s, struct msghdr *msg, socklen_t cap, int flags, bool peek,
		   struct ucred *cred)
{
	struct anc_buf *b = malloc(sizeof(*b));
	struct iovec v = { .iov_base = NULL, .iov_len = 0 };
	struct msghdr km = { .msg_iov = &v, .msg_iovlen = 1 };
	bool skip[ANC_FDS_MAX] = { false };
	unsigned int n = 0;
	struct cmsghdr *c;
	uint32_t i;
	ssize_t got;

	bool got_cred = false;

	if (!b)
		return false;	/* the message stays: the next mark takes it (out of step) */
	if (peek) {
		/* The fds would be installed again for a peek: the data only. */
		free(b);
		return false;
	}
	v.iov_base = &b->hdr;
	v.iov_len = sizeof(b->hdr);
	km.msg_control = b->ctl.buf;
	km.msg_controllen = sizeof(b->ctl.buf);
	got = ipcd_real.recvmsg(s->kfd, &km, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (got != (ssize_t)sizeof(b->hdr) || b->hdr.magic != ANC_MAGIC ||
	    b->hdr.len < sizeof(b->hdr) || b->hdr.n_ends > ANC_ENDS_MAX ||
	    b->hdr.len != sizeof(b->hdr) + b->hdr.n_ends * sizeof(struct anc_end))
		b->hdr.n_ends = 0;	/* not from us: only its fds, as they are */
	else if (b->hdr.n_ends &&
		 ipcd_real.recv(s->kfd, b->ends, b->hdr.n_ends * sizeof(struct anc_end),
				MSG_WAITALL) != (ssize_t)(b->hdr.n_ends * sizeof(struct anc_end)))
		b->hdr.n_ends = 0;
	for (c = CMSG_FIRSTHDR(&km); c; c = CMSG_NXTHDR(&km, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(*cred))) {
			memcpy(cred, CMSG_DATA(c), sizeof(*cred));
			got_cred = true;
		}
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && !n) {
			n = (unsigned int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(b->fds, CMSG_DATA(c), n * sizeof(int));
		}
	}
	/* The ends: their companions never reach the application. */
	for (i = 0; i < b->hdr.n_ends; i++) {
		const struct anc_end *e = &b->ends[i];

		if (e->region < n)
			skip[e->region] = true;
		if (e->peer < n)
			skip[e->peer] = true;
		if (e->hold != ANC_NONE && e->hold < n)
			skip[e->hold] = true;
		if (e->kfd != ANC_NONE && e->kfd < n)
			skip[e->kfd] = true;
		if (e->live != ANC_NONE && e->live < n)
			skip[e->live] = true;
	}
	for (i = 0; i < b->hdr.n_ends; i++) {
		if (b->ends[i].app >= n || skip[b->ends[i].app]) {
			companions_close(&b->ends[i], b->fds, n);	/* its eventfd did not come */
			continue;
		}
		if (!adopt(&b->ends[i], b->fds, n, (flags & MSG_CMSG_CLOEXEC) != 0)) {
			ipcd_real.close(b->fds[b->ends[i].app]);
			skip[b->ends[i].app] = true;
		}
	}
	/* The plain fds: close-on-exec only if asked (we received them so). */
	for (i = 0; i < n; i++)
		if (!skip[i] && !ipcd_fdtab_get(b->fds[i]) && !(flags & MSG_CMSG_CLOEXEC))
			ipcd_real.fcntl(b->fds[i], F_SETFD, 0);
	deliver(msg, cap, &km, skip);
	free(b);
	return got_cred;
}
