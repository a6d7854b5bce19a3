/* SPDX-License-Identifier: MIT */
/* attach.c - register with the monitor: handshake, fds over SCM_RIGHTS, map the queues. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ipcd/wait.h>

#include "attach.h"

#define MSG_MAX_FDS	5	/* more than a message may carry: any excess is closed */

/*
 * Registration, all of it: connect() (the monitor's backlog may be full),
 * hello and welcome. As long as a call may wait for the monitor (state.c):
 * a monitor that does not answer within it is gone, and the process uses the
 * kernel rather than block in its first socket().
 */
#define ATTACH_TIMEOUT_NS	5000000000ll
/*
 * A monitor whose table of connections that owe a hello is full closes one
 * of a user past its share without a word (monitor/control.c): a burst of
 * the user's own programs starting at once. Connect again, backing off.
 */
#define ATTACH_TRIES		8
#define ATTACH_BACKOFF_NS	1000000ll	/* doubled at each try */

const char *ipcd_ctl_path(const char *path)
{
	const char *env;

	if (path)
		return path;
	env = getenv(IPCD_CTL_ENV_PATH);
	return env && *env ? env : IPCD_CTL_DEFAULT_PATH;
}

static void close_fds(int *fds, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

ssize_t ipcd_ctl_recv(int sock, void *buf, size_t len, int flags, int *fds,
		      unsigned int max_fds, unsigned int *nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPCD_CTL_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds),
	};
	struct cmsghdr *cm;
	ssize_t n;

	*nfds = 0;
	if (max_fds > IPCD_CTL_MAX_FDS)
		return -EINVAL;
	do
		n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (k > max_fds - *nfds)
			k = max_fds - *nfds;	/* MSG_CTRUNC: the kernel closed the excess */
		memcpy(fds + *nfds, CMSG_DATA(cm), k * sizeof(int));
		*nfds += (unsigned int)k;
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		close_fds(fds, *nfds);
		*nfds = 0;
		return -EMSGSIZE;
	}
	return n;
}

/* Wait for POLLIN on @sock until @deadline. 0, -ETIMEDOUT or -errno. */
static int wait_in(int sock, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = sock, .events = POLLIN };
		int64_t left = ipcd_remaining(deadline);
		int ms = left < 0 ? -1 : (int)((left + 999999) / 1000000);
		int n = poll(&p, 1, ms);

		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n == 0 && ipcd_remaining(deadline) == 0)
			return -ETIMEDOUT;
	}
}

/*
 * Receive the welcome and exactly IPCD_CTL_NFDS descriptors (or none, if
 * refused) by @deadline. -ECONNRESET: the monitor closed without a word.
 */
static int recv_welcome(int sock, struct ipcd_ctl_welcome *w, int *fds, unsigned int *nfds,
			uint64_t deadline)
{
	ssize_t n;
	int rc;

	for (;;) {
		n = ipcd_ctl_recv(sock, w, sizeof(*w), MSG_DONTWAIT, fds, IPCD_CTL_NFDS, nfds);
		if (n != -EAGAIN)
			break;
		rc = wait_in(sock, deadline);
		if (rc)
			return rc;
	}
	if (n == 0 || n == -ECONNRESET) {
		close_fds(fds, *nfds);
		*nfds = 0;
		return -ECONNRESET;
	}
	if (n < 0)
		return n == -EMSGSIZE ? -EPROTO : (int)n;
	return n == (ssize_t)sizeof(*w) ? 0 : -EPROTO;
}

/*
 * connect() by @deadline: a monitor whose backlog is full (busy, or flooded
 * with connections) makes a blocking connect() wait; SO_SNDTIMEO bounds it
 * (the kernel then says EAGAIN).
 */
static int connect_until(int sock, const struct sockaddr_un *sa, uint64_t deadline)
{
	for (;;) {
		int64_t left = ipcd_remaining(deadline);
		struct timeval tv = {
			.tv_sec = left / 1000000000,
			.tv_usec = left % 1000000000 / 1000,
		};

		if (left == 0)
			return -ETIMEDOUT;
		if (!tv.tv_sec && !tv.tv_usec)
			tv.tv_usec = 1;		/* 0 would mean forever */
		if (setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
			return -errno;
		if (connect(sock, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
			return 0;
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
}

/*
 * Send @h with this process's credentials (SCM_CREDENTIALS, checked by the
 * kernel): the monitor takes the pid from them (ctl.h, "Identity"). If the
 * kernel will not let us name them (an id not mapped in our user
 * namespace), send it as an older library did.
 */
static int send_hello(int sock, struct ipcd_ctl_hello *h)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} u;
	struct ucred uc = { .pid = getpid(), .uid = geteuid(), .gid = getegid() };
	struct iovec iov = { .iov_base = h, .iov_len = sizeof(*h) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	memset(&u, 0, sizeof(u));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_CREDENTIALS;
	cm->cmsg_len = CMSG_LEN(sizeof(uc));
	memcpy(CMSG_DATA(cm), &uc, sizeof(uc));
	h->flags |= IPCD_CTL_HELLO_CREDS;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EPERM || errno == EINVAL)) {
		h->flags &= ~IPCD_CTL_HELLO_CREDS;
		do
			n = send(sock, h, sizeof(*h), MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
	}
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(*h) ? 0 : -EIO;
}

/* Sleep @ns, but not past @deadline. */
static void backoff(int64_t ns, uint64_t deadline)
{
	int64_t left = ipcd_remaining(deadline);
	struct timespec ts;

	if (left >= 0 && left < ns)
		ns = left;
	ts.tv_sec = ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * One try: connect to @sa, say hello, receive the welcome and its
 * descriptors (*@nfds of them in @fds). a->sock is the connection, or -1.
 */
static int handshake(const struct sockaddr_un *sa, const char *path, struct ipcd_ctl_hello *h,
		     struct ipcd_attach *a, int *fds, unsigned int *nfds, uint64_t deadline,
		     char *why, size_t whylen)
{
	int rc;

	*nfds = 0;
	a->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (a->sock < 0) {
		rc = -errno;
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return rc;
	}
	rc = connect_until(a->sock, sa, deadline);
	if (rc == -ETIMEDOUT || rc == -EAGAIN) {
		rc = -ETIMEDOUT;
		snprintf(why, whylen, "monitor at %s: its control socket took no connection "
			 "within %lld s (busy, or flooded)", path, ATTACH_TIMEOUT_NS / 1000000000);
		return rc;
	}
	if (rc) {
		snprintf(why, whylen, "no monitor at %s (%s)", path, strerror(-rc));
		return rc;
	}
	rc = send_hello(a->sock, h);
	if (rc == -EPIPE || rc == -ECONNRESET) {
		snprintf(why, whylen, "monitor at %s: closed the connection before the hello",
			 path);
		return -ECONNRESET;	/* as closed without a word: try again */
	}
	if (rc) {
		snprintf(why, whylen, "monitor at %s: send hello: %s", path, strerror(-rc));
		return rc;
	}
	rc = recv_welcome(a->sock, &a->welcome, fds, nfds, deadline);
	if (rc == -ETIMEDOUT)
		snprintf(why, whylen, "monitor at %s: no welcome within %lld s", path,
			 ATTACH_TIMEOUT_NS / 1000000000);
	else if (rc == -ECONNRESET)
		snprintf(why, whylen, "monitor at %s: closed the connection without a welcome",
			 path);
	else if (rc)
		snprintf(why, whylen, "monitor at %s: bad welcome (%s)", path, strerror(-rc));
	return rc;
}

int ipcd_attach(const char *path, const char *comm, struct ipcd_attach *a, char *why,
		size_t whylen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ipcd_ctl_hello h = {
		.magic = IPCD_CTL_MAGIC,
		.abi_major = IPCD_SHM_ABI_MAJOR,
		.abi_minor = IPCD_SHM_ABI_MINOR,
		.kind = IPCD_CTL_CLIENT,
	};
	uint64_t deadline = ipcd_deadline(ATTACH_TIMEOUT_NS);
	int fds[IPCD_CTL_NFDS] = { -1, -1, -1 };
	int64_t pause = ATTACH_BACKOFF_NS;
	unsigned int nfds = 0, tries;
	size_t mpsc_size;
	void *mpsc;
	int rc;

	memset(a, 0, sizeof(*a));
	a->sock = -1;
	a->wake_fd = -1;
	path = ipcd_ctl_path(path);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(why, whylen, "control socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (comm)
		snprintf(h.comm, sizeof(h.comm), "%s", comm);
	else
		prctl(PR_GET_NAME, h.comm);

	for (tries = 1;; tries++) {
		rc = handshake(&sa, path, &h, a, fds, &nfds, deadline, why, whylen);
		if (rc != -ECONNRESET || tries == ATTACH_TRIES || ipcd_remaining(deadline) == 0)
			break;
		close(a->sock);
		backoff(pause, deadline);
		pause *= 2;
	}
	if (rc)
		goto err_fds;
	a->welcome.msg[sizeof(a->welcome.msg) - 1] = '\0';
	if (a->welcome.magic != IPCD_CTL_MAGIC) {
		rc = -EPROTO;
		snprintf(why, whylen, "monitor at %s: not an IPC-Direct monitor", path);
		goto err_fds;
	}
	if (a->welcome.status) {
		rc = a->welcome.status < 0 ? a->welcome.status : -EPROTO;
		snprintf(why, whylen, "monitor at %s refused: %s", path, a->welcome.msg);
		goto err_fds;
	}
	if (nfds != IPCD_CTL_NFDS) {
		rc = -EPROTO;
		snprintf(why, whylen, "monitor at %s sent %u descriptors, expected %d", path, nfds,
			 IPCD_CTL_NFDS);
		goto err_fds;
	}
	rc = ipcd_region_map(fds[IPCD_CTL_FD_CLIENT], IPCD_REGION_CLIENT, &a->client_reg);
	if (rc) {
		snprintf(why, whylen, "client region: %s", strerror(-rc));
		goto err_fds;
	}
	fds[IPCD_CTL_FD_CLIENT] = -1;
	rc = ipcd_region_map(fds[IPCD_CTL_FD_GLOBAL], IPCD_REGION_GLOBAL, &a->global_reg);
	if (rc) {
		snprintf(why, whylen, "global region: %s", strerror(-rc));
		goto err_client;
	}
	fds[IPCD_CTL_FD_GLOBAL] = -1;
	a->wake_fd = fds[IPCD_CTL_FD_WAKE];
	fds[IPCD_CTL_FD_WAKE] = -1;

	rc = ipcd_reqq_chan_attach(&a->client_reg, &a->cl.chan);
	if (rc) {
		snprintf(why, whylen, "request channel: %s", strerror(-rc));
		goto err_global;
	}
	a->gctl = ipcd_region_area(&a->global_reg, IPCD_AREA_GLOBAL_CTL, NULL);
	if (!a->gctl) {
		rc = -EPROTO;
		snprintf(why, whylen, "global region has no control area");
		goto err_global;
	}
	if (a->welcome.queue_mode == IPCD_QMODE_SHARED) {
		mpsc = ipcd_region_area(&a->global_reg, IPCD_AREA_GLOBAL_MPSC, &mpsc_size);
		rc = mpsc ? ipcd_mpsc_attach(&a->db, mpsc, mpsc_size, 0) : -EPROTO;
		if (rc) {
			snprintf(why, whylen, "doorbell queue: %s", strerror(-rc));
			goto err_global;
		}
		a->cl.db = &a->db;
	}
	a->cl.wake_fd = a->wake_fd;
	return 0;

err_global:
	ipcd_region_close(&a->global_reg);
err_client:
	ipcd_region_close(&a->client_reg);
err_fds:
	close_fds(fds, nfds);
	if (a->wake_fd >= 0)
		close(a->wake_fd);
	if (a->sock >= 0)
		close(a->sock);
	a->sock = -1;
	a->wake_fd = -1;
	return rc;
}

void ipcd_detach(struct ipcd_attach *a)
{
	if (a->sock < 0)
		return;
	ipcd_region_close(&a->client_reg);
	ipcd_region_close(&a->global_reg);
	close(a->wake_fd);
	close(a->sock);
	a->sock = -1;
	a->wake_fd = -1;
}

int ipcd_attach_recv_msg(struct ipcd_attach *a, struct ipcd_ctl_msg *m,
			 int fds[IPCD_CTL_CONN_NFDS], int timeout_ms)
{
	uint64_t deadline = ipcd_deadline(timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000000);
	int got[MSG_MAX_FDS];
	unsigned int nfds = 0, i;
	ssize_t n;
	int rc;

	for (i = 0; i < IPCD_CTL_CONN_NFDS; i++)
		fds[i] = -1;
	for (;;) {
		n = ipcd_ctl_recv(a->sock, m, sizeof(*m), MSG_DONTWAIT, got, MSG_MAX_FDS, &nfds);
		if (n >= 0)
			break;
		if (n == -EMSGSIZE)
			return -EPROTO;
		if (n != -EAGAIN)
			return (int)n;
		if (timeout_ms == 0)
			return -ETIMEDOUT;
		rc = wait_in(a->sock, deadline);
		if (rc)
			return rc;
	}
	if (n == 0 && !nfds)
		return -ECONNRESET;	/* EOF: the monitor let us go */
	if (n != (ssize_t)sizeof(*m) || m->magic != IPCD_CTL_MAGIC)
		goto err_close;
	switch (m->type) {
	case IPCD_CTL_CONN_FD:
		if ((nfds != IPCD_CTL_CONN_NFDS && nfds != IPCD_CTL_CONN_NFDS_MIN) || !m->conn_id)
			goto err_close;
		break;
	case IPCD_CTL_LISTEN_FD:
		if (nfds != 1 || !m->bind_id)
			goto err_close;
		break;
	case IPCD_CTL_LANE_FD:
		if (nfds != 1 || !m->conn_id || !m->bind_id)
			goto err_close;
		break;
	case IPCD_CTL_HOLD_FD:
	case IPCD_CTL_REGION_FD:
		if (nfds != 1 || !m->conn_id)
			goto err_close;
		break;
	case IPCD_CTL_RCHAN_FD:
		if (nfds != 1)
			goto err_close;
		break;
	default:
		goto err_close;
	}
	memcpy(fds, got, nfds * sizeof(int));
	return 0;

err_close:
	close_fds(got, nfds);
	return -EPROTO;
}

/*
 * Idle mappings of connection regions. A lane's regions are reused within
 * its pair (monitor/conns.c, "Lane regions"), so the region of the next
 * connection is often one this process mapped before: keeping the mapping
 * after close saves an mmap, its page faults and an munmap (with its TLB
 * shootdown) per connection and end. An entry is keyed by the memfd's
 * identity and size; a hit must also find, in the mapping, the id the
 * monitor gave the new connection, so a recycled inode number can never
 * match. Bounded (IPCD_MCACHE_SLOTS, the oldest goes first); the lock is only
 * ever tried: a busy cache is bypassed (map, unmap), never waited for.
 */
static struct {
	dev_t dev;
	ino_t ino;
	size_t size;
	void *base;			/* NULL: free */
	uint64_t age;
} mcache[IPCD_MCACHE_SLOTS];
static int mcache_busy;
static uint64_t mcache_clock;

static bool mcache_lock(void)
{
	return !__atomic_exchange_n(&mcache_busy, 1, __ATOMIC_ACQUIRE);
}

static void mcache_unlock(void)
{
	__atomic_store_n(&mcache_busy, 0, __ATOMIC_RELEASE);
}

void ipcd_mcache_atfork_child(void)
{
	mcache_busy = 0;	/* a thread of the parent may have held it */
}

/* The idle mapping of (@dev, @ino) of @size bytes, now the caller's; or NULL. */
static void *mcache_take(dev_t dev, ino_t ino, size_t size)
{
	void *base = NULL;
	unsigned int i;

	if (!mcache_lock())
		return NULL;
	for (i = 0; i < IPCD_MCACHE_SLOTS; i++)
		if (mcache[i].base && mcache[i].ino == ino && mcache[i].dev == dev &&
		    mcache[i].size == size) {
			base = mcache[i].base;
			mcache[i].base = NULL;
			break;
		}
	mcache_unlock();
	return base;
}

/* Keep @base (@size bytes of (@dev, @ino)) for the next connection in it. */
static void mcache_put(dev_t dev, ino_t ino, void *base, size_t size)
{
	void *old = NULL;
	size_t old_size = 0;
	unsigned int i, pick = 0;

	if (!mcache_lock()) {
		munmap(base, size);
		return;
	}
	for (i = 0; i < IPCD_MCACHE_SLOTS; i++) {
		if (!mcache[i].base) {
			pick = i;
			break;
		}
		if (mcache[i].age < mcache[pick].age)
			pick = i;
	}
	if (mcache[pick].base) {
		old = mcache[pick].base;
		old_size = mcache[pick].size;
	}
	mcache[pick].dev = dev;
	mcache[pick].ino = ino;
	mcache[pick].size = size;
	mcache[pick].base = base;
	mcache[pick].age = ++mcache_clock;
	mcache_unlock();
	if (old)
		munmap(old, old_size);
}

/*
 * Attach @out's rings once its region is mapped (out->reg). @expect_id: the
 * connection's id as the monitor gave it (0: take the region's).
 */
static int conn_attach(struct ipcd_conn *out, uint64_t region_size, bool acceptor,
		       uint64_t expect_id)
{
	struct ipcd_spsc a2b, b2a;
	size_t size[3];
	void *area[3];
	uint32_t i;
	int rc;

	if (out->reg.size != region_size)
		return -EPROTO;
	for (i = 0; i < 3; i++) {
		area[i] = ipcd_region_area(&out->reg, i, &size[i]);
		if (!area[i])
			return -EPROTO;
	}
	if (size[IPCD_AREA_CONN_CTL] < sizeof(struct ipcd_conn_ctl))
		return -EPROTO;
	out->ctl = area[IPCD_AREA_CONN_CTL];
	out->conn_id = ipcd_load_relaxed(&out->ctl->conn_id);
	if (!out->conn_id || (expect_id && out->conn_id != expect_id))
		return -EPROTO;
	rc = ipcd_spsc_attach(&a2b, area[IPCD_AREA_CONN_A2B], size[IPCD_AREA_CONN_A2B]);
	if (!rc)
		rc = ipcd_spsc_attach(&b2a, area[IPCD_AREA_CONN_B2A], size[IPCD_AREA_CONN_B2A]);
	if (rc)
		return rc;
	if (!(a2b.flags & IPCD_SPSC_F_STREAM) || !(b2a.flags & IPCD_SPSC_F_STREAM))
		return -EPROTO;
	out->tx = acceptor ? b2a : a2b;
	out->rx = acceptor ? a2b : b2a;
	out->tx.wake_fd = out->wake_peer;
	out->rx.wake_fd = out->wake_peer;
	out->acceptor = acceptor;
	ipcd_fetch_or(&out->ctl->opened, acceptor ? IPCD_CONN_CLOSED_B : IPCD_CONN_CLOSED_A);
	if (out->live_fd >= 0)
		ipcd_fetch_or(&out->ctl->opened, acceptor ? IPCD_CONN_LIVE_B : IPCD_CONN_LIVE_A);
	return 0;
}

/* A cached mapping of @fd's region, validated as ipcd_region_map would; or -1. */
static int conn_open_cached(int fd, const struct stat *st, uint64_t region_size, bool acceptor,
			    uint64_t expect_id, struct ipcd_conn *out)
{
	void *base = mcache_take(st->st_dev, st->st_ino, (size_t)region_size);

	if (!base)
		return -1;
	if (!ipcd_region_adopt(base, (size_t)region_size, IPCD_REGION_CONN, &out->reg) &&
	    !conn_attach(out, region_size, acceptor, expect_id)) {
		close(fd);
		return 0;
	}
	munmap(base, (size_t)region_size);	/* not this connection's region any more */
	memset(&out->reg, 0, sizeof(out->reg));
	out->reg.fd = -1;
	return -1;
}

int ipcd_conn_open_id(const int fds[IPCD_CTL_CONN_NFDS], uint64_t region_size, bool acceptor,
		      uint64_t expect_id, struct ipcd_conn *out)
{
	int fd = fds[IPCD_CTL_CONN_FD_REGION];
	bool known = false;
	struct stat st;
	int rc;

	memset(out, 0, sizeof(*out));
	out->reg.fd = -1;
	out->hold_fd = -1;
	out->wake_self = fds[IPCD_CTL_CONN_FD_SELF];
	out->wake_peer = fds[IPCD_CTL_CONN_FD_PEER];
	out->live_fd = fds[IPCD_CTL_CONN_FD_LIVE];
	ipcd_fd_hide(out->wake_peer, true);
	ipcd_fd_hide(out->live_fd, true);
	if (expect_id && fstat(fd, &st) == 0 && (uint64_t)st.st_size == region_size) {
		if (conn_open_cached(fd, &st, region_size, acceptor, expect_id, out) == 0)
			goto cacheable;
		known = true;
	}
	rc = ipcd_region_map(fd, IPCD_REGION_CONN, &out->reg);
	if (rc) {
		close(fd);
		goto err_wake;
	}
	rc = conn_attach(out, region_size, acceptor, expect_id);
	if (rc)
		goto err_close;
	/* The mapping is all we need; the memfd would only hold a low fd number. */
	close(out->reg.fd);
	out->reg.fd = -1;
	if (!known)
		return 0;
cacheable:
	out->map_dev = st.st_dev;
	out->map_ino = st.st_ino;
	return 0;

err_close:
	ipcd_region_close(&out->reg);
err_wake:
	if (out->wake_self >= 0)
		close(out->wake_self);
	if (out->wake_peer >= 0)
		close(out->wake_peer);
	ipcd_fd_hide(out->live_fd, false);
	if (out->live_fd >= 0)
		close(out->live_fd);
	memset(out, 0, sizeof(*out));
	out->reg.fd = -1;
	out->wake_self = out->wake_peer = out->hold_fd = out->live_fd = -1;
	return rc;
}

int ipcd_conn_open(const int fds[IPCD_CTL_CONN_NFDS], uint64_t region_size, bool acceptor,
		   struct ipcd_conn *out)
{
	return ipcd_conn_open_id(fds, region_size, acceptor, 0, out);
}

#define HIDE_MAX	65536u		/* as the fd table (sock.h IPCD_FDTAB_MAX) */

static _Atomic uint64_t hide_bits[HIDE_MAX / 64];

void ipcd_fd_hide(int fd, bool on)
{
	uint64_t bit;

	if (fd < 0 || (unsigned int)fd >= HIDE_MAX)
		return;
	bit = 1ull << (fd % 64);
	if (on)
		atomic_fetch_or_explicit(&hide_bits[fd / 64], bit, memory_order_relaxed);
	else
		atomic_fetch_and_explicit(&hide_bits[fd / 64], ~bit, memory_order_relaxed);
}

bool ipcd_fd_marked(int fd)
{
	return fd >= 0 && (unsigned int)fd < HIDE_MAX &&
	       (atomic_load_explicit(&hide_bits[fd / 64], memory_order_relaxed) >> (fd % 64) & 1);
}

void (*ipcd_conn_remote_release)(struct ipcd_conn *c);

void ipcd_conn_release(struct ipcd_conn *c)
{
	if (!c->reg.base)
		return;
	ipcd_fd_hide(c->wake_peer, false);	/* before they are closed (close() checks) */
	ipcd_fd_hide(c->hold_fd, false);
	ipcd_fd_hide(c->live_fd, false);
	if (c->remote && ipcd_conn_remote_release) {
		ipcd_conn_remote_release(c);	/* the mapping is the engine's now */
		if (c->reg.fd >= 0)
			close(c->reg.fd);
	} else if (c->map_ino && c->reg.fd < 0)
		mcache_put(c->map_dev, c->map_ino, c->reg.base, c->reg.size);
	else
		ipcd_region_close(&c->reg);
	if (c->wake_self >= 0)
		close(c->wake_self);
	if (c->wake_peer >= 0)
		close(c->wake_peer);
	/* Last: the monitor closes the end for us if we were its last holder. */
	if (c->hold_fd >= 0)
		close(c->hold_fd);
	/* ... and the peer sees the hang-up after our marks (ipcd_conn_peer_check). */
	if (c->live_fd >= 0)
		close(c->live_fd);
	memset(c, 0, sizeof(*c));
	c->reg.fd = -1;
	c->wake_self = c->wake_peer = c->hold_fd = c->live_fd = -1;
}

enum ipcd_peer ipcd_conn_peer_state(struct ipcd_conn *c)
{
	struct pollfd p = { .fd = c->live_fd, .events = POLLIN };
	uint32_t peer = c->acceptor ? IPCD_CONN_CLOSED_A : IPCD_CONN_CLOSED_B;
	uint32_t live = c->acceptor ? IPCD_CONN_LIVE_A : IPCD_CONN_LIVE_B;
	uint32_t opened;

	if (c->live_fd < 0 || !c->reg.base || ipcd_load_relaxed(&c->peer_lost))
		return IPCD_PEER_HERE;
	if (poll(&p, 1, 0) != 1 || !(p.revents & (POLLHUP | POLLRDHUP | POLLERR)))
		return IPCD_PEER_HERE;
	/* Its end is marked closed (by itself or a monitor): nothing to say. */
	if (ipcd_load_acquire(&c->rx.shm->prod_closed) &&
	    ipcd_load_acquire(&c->tx.shm->cons_closed)) {
		ipcd_store_relaxed(&c->peer_lost, IPCD_PEER_GONE);
		return IPCD_PEER_HERE;
	}
	opened = ipcd_load_acquire(&c->ctl->opened);
	if (!(opened & peer))
		return IPCD_PEER_NEVER;
	if (!(opened & live)) {
		/* It has the connection, but not the life socket we hear from: nothing to say. */
		ipcd_store_relaxed(&c->peer_lost, IPCD_PEER_DEAF);
		return IPCD_PEER_HERE;
	}
	return IPCD_PEER_GONE;
}

void ipcd_conn_peer_mark(struct ipcd_conn *c)
{
	uint32_t bit = c->acceptor ? IPCD_CONN_RESET_A : IPCD_CONN_RESET_B;
	struct ipcd_spsc_shm *out = c->rx.shm;	/* the ring the peer wrote */
	struct ipcd_spsc_shm *in = c->tx.shm;	/* the ring it read */

	ipcd_store_relaxed(&c->peer_lost, IPCD_PEER_GONE);
	/* As the monitor marks a dead process's end, from our own mapping. */
	(void)ipcd_conn_mark_gone(c->ctl, out, in, bit, false,
				  ipcd_load_relaxed(&c->ctl->kind) == IPCD_CONN_KIND_PIPE);
}

void ipcd_conn_close(struct ipcd_conn *c)
{
	if (!c->reg.base)
		return;
	ipcd_spsc_close_prod(&c->tx);
	ipcd_spsc_close_cons(&c->rx);
	ipcd_conn_release(c);
}
