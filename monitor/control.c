/* SPDX-License-Identifier: MIT */
/* control.c - the control socket: accept, SO_PEERCRED, versioned handshake, fd passing. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "monitor.h"

/* An admin connection (ipcdctl) sends its query right after the hello. */
#define PENDING_ADMIN	(1u << 31)

/* The most descriptors one message carries: the welcome's or a connection's. */
#define SEND_MAX_FDS	IPCD_MAX(IPCD_CTL_NFDS, IPCD_CTL_CONN_NFDS)

static uint32_t pending_flags[MON_MAX_PENDING];
static bool accept_paused;	/* pending table full: the kernel backlog holds the rest */

/* Stop or resume taking connections from the listening socket. */
static void accept_pause(bool pause)
{
	struct epoll_event ev = {
		.events = pause ? 0 : EPOLLIN,
		.data.u64 = MON_EV(MON_EV_LISTEN, 0),
	};

	if (accept_paused == pause || mon.lsock < 0)
		return;
	accept_paused = pause;
	epoll_ctl(mon.epfd, EPOLL_CTL_MOD, mon.lsock, &ev);
}

/* mkdir -p the socket's directory (0755: the socket itself is what clients reach). */
static int make_parent_dir(const char *path)
{
	char dir[sizeof(mon.sock_path)];
	char *p;

	snprintf(dir, sizeof(dir), "%s", path);
	p = strrchr(dir, '/');
	if (!p || p == dir)
		return 0;
	*p = '\0';
	for (p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Is a monitor already answering on @path? */
static bool socket_alive(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return false;
	alive = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(fd);
	return alive;
}

int control_init(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = MON_EV(MON_EV_LISTEN, 0) };
	unsigned int i;
	int rc;

	for (i = 0; i < MON_MAX_PENDING; i++)
		mon.pending[i].sock = -1;
	snprintf(mon.sock_path, sizeof(mon.sock_path), "%s", mon.cfg.control_socket);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", mon.sock_path);
	rc = make_parent_dir(mon.sock_path);
	if (rc) {
		log_err("control socket %s: cannot create its directory: %s", mon.sock_path,
			strerror(-rc));
		return rc;
	}
	if (socket_alive(&sa)) {
		log_err("control socket %s: another monitor is already running there",
			mon.sock_path);
		return -EADDRINUSE;
	}
	unlink(mon.sock_path);	/* stale, from a monitor that did not exit cleanly */

	mon.lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (mon.lsock < 0) {
		rc = -errno;
		log_err("control socket: socket(): %s", strerror(errno));
		return rc;
	}
	if (bind(mon.lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(mon.sock_path, 0666) < 0 || listen(mon.lsock, SOMAXCONN) < 0) {
		rc = -errno;
		log_err("control socket %s: %s", mon.sock_path, strerror(errno));
		goto err_close;
	}
	if (epoll_ctl(mon.epfd, EPOLL_CTL_ADD, mon.lsock, &ev) < 0) {
		rc = -errno;
		goto err_unlink;
	}
	log_info("listening on %s", mon.sock_path);
	return 0;

err_unlink:
	unlink(mon.sock_path);
err_close:
	close(mon.lsock);
	mon.lsock = -1;
	return rc;
}

static void pending_close(uint32_t idx)
{
	struct mon_pending *p = &mon.pending[idx];

	if (p->sock < 0)
		return;
	epoll_ctl(mon.epfd, EPOLL_CTL_DEL, p->sock, NULL);
	close(p->sock);
	p->sock = -1;
	pending_flags[idx] = 0;
	accept_pause(false);
}

void control_exit(void)
{
	unsigned int i;

	for (i = 0; i < MON_MAX_PENDING; i++)
		pending_close(i);
	if (mon.lsock >= 0) {
		close(mon.lsock);
		unlink(mon.sock_path);
		mon.lsock = -1;
	}
}

int control_send_fds(int sock, const void *msg, size_t len, const int *fds, unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * SEND_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)(uintptr_t)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (nfds > SEND_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	/* The peer may be slow or hostile: never block the monitor on it. */
	if (sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len)
		return errno ? -errno : -EIO;
	return 0;
}

void control_accept(void)
{
	for (;;) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
		socklen_t len = sizeof(struct ucred);
		struct ucred cred;
		uint32_t i;
		int fd;

		for (i = 0; i < MON_MAX_PENDING && mon.pending[i].sock >= 0; i++)
			;
		if (i == MON_MAX_PENDING) {
			/* Leave the rest queued in the kernel until a handshake ends. */
			accept_pause(true);
			return;
		}
		fd = accept4(mon.lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("control socket: accept: %s", strerror(errno));
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			log_warn("control socket: SO_PEERCRED: %s", strerror(errno));
			close(fd);
			continue;
		}
		ev.data.u64 = MON_EV(MON_EV_PENDING, i);
		if (epoll_ctl(mon.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			continue;
		}
		mon.pending[i].sock = fd;
		mon.pending[i].cred = cred;
		mon.pending[i].since_ns = ipcd_now_ns();
		pending_flags[i] = 0;
	}
}

static void refuse(uint32_t idx, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Tell the peer why (if it speaks our handshake), log it, close. */
static void refuse(uint32_t idx, int status, const char *fmt, ...)
{
	struct mon_pending *p = &mon.pending[idx];
	struct ipcd_ctl_welcome w = {
		.magic = IPCD_CTL_MAGIC,
		.abi_major = IPCD_SHM_ABI_MAJOR,
		.abi_minor = IPCD_SHM_ABI_MINOR,
		.status = status,
		.pid = (uint32_t)p->cred.pid,
	};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w.msg, sizeof(w.msg), fmt, ap);
	va_end(ap);
	control_send_fds(p->sock, &w, sizeof(w), NULL, 0);
	log_warn("refused pid %d (uid %u): %s", p->cred.pid, p->cred.uid, w.msg);
	mon.ctr.refused++;
	pending_close(idx);
}

static void admin_query(uint32_t idx)
{
	struct mon_pending *p = &mon.pending[idx];
	struct ipcd_ctl_query q;
	ssize_t n = recv(p->sock, &q, sizeof(q), MSG_DONTWAIT);

	if (n < 0 && errno == EAGAIN)
		return;
	if (n != (ssize_t)sizeof(q)) {
		pending_close(idx);
		return;
	}
	mon.ctr.admin_queries++;
	report_query(p->sock, &p->cred, &q);
	pending_close(idx);
}

void control_pending_ready(uint32_t idx)
{
	struct mon_pending *p;
	struct ipcd_ctl_hello h;
	char why[160];
	ssize_t n;
	int rc;

	if (idx >= MON_MAX_PENDING || mon.pending[idx].sock < 0)
		return;
	p = &mon.pending[idx];
	if (pending_flags[idx] & PENDING_ADMIN) {
		admin_query(idx);
		return;
	}
	n = recv(p->sock, &h, sizeof(h), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		pending_close(idx);	/* went away before saying hello */
		return;
	}
	if (n != (ssize_t)sizeof(h) || h.magic != IPCD_CTL_MAGIC) {
		refuse(idx, -EPROTO, "not an IPC-Direct hello (%zd bytes)", n);
		return;
	}
	if (h.abi_major != IPCD_SHM_ABI_MAJOR) {
		refuse(idx, -EPROTONOSUPPORT,
		       "library speaks ABI %u.%u, this monitor speaks ABI %u.%u", h.abi_major,
		       h.abi_minor, IPCD_SHM_ABI_MAJOR, IPCD_SHM_ABI_MINOR);
		return;
	}
	switch (h.kind) {
	case IPCD_CTL_CLIENT:
		/* clients_register() re-adds the socket under its client tag. */
		epoll_ctl(mon.epfd, EPOLL_CTL_DEL, p->sock, NULL);
		rc = clients_register(p->sock, &p->cred, &h, why, sizeof(why));
		if (rc) {
			refuse(idx, rc, "%s", why);
			return;
		}
		p->sock = -1;		/* the socket now belongs to the client */
		pending_flags[idx] = 0;
		accept_pause(false);
		return;
	case IPCD_CTL_ADMIN:
		pending_flags[idx] |= PENDING_ADMIN;
		admin_query(idx);	/* usually already queued behind the hello */
		return;
	default:
		refuse(idx, -EPROTO, "unknown connection kind %u", h.kind);
	}
}

void control_pending_expire(uint64_t now)
{
	uint32_t i;

	for (i = 0; i < MON_MAX_PENDING; i++) {
		struct mon_pending *p = &mon.pending[i];

		if (p->sock >= 0 && now - p->since_ns > MON_HELLO_TIMEOUT_NS) {
			log_warn("pid %d connected but said no hello within 1 s: closing",
				 p->cred.pid);
			mon.ctr.refused++;
			pending_close(i);
		}
	}
}
