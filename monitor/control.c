/* SPDX-License-Identifier: MIT */
/* control.c - the control socket: accept, SO_PEERCRED, versioned handshake, fd passing. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

/*
 * Connections owing a hello that each uid is sure to get a slot for (a
 * quarter of the table): anyone may connect (the socket is 0666), and a user
 * who fills the table with silent connections would otherwise hold every
 * other user's newly started programs in their first socket() (isolation
 * finding e4). A uid may take more while slots are free (a burst of one
 * user's programs starting at once); those are lent: when the table is full,
 * another uid's connection within its share takes back the oldest slot lent
 * to the uid holding the most, and a connection of a uid past its share is
 * closed at once. Either is closed without a word; a library connects again
 * (preload/attach.c).
 */
#define PENDING_PER_UID		(MON_MAX_PENDING / 4)

/* Connections taken per wake-up: a flood cannot keep the loop in accept. */
#define ACCEPT_BUDGET		(4 * MON_MAX_PENDING)

/* At most one message a second about connections over their user's share. */
#define OVER_SHARE_LOG_NS	1000000000ull

static uint32_t pending_flags[MON_MAX_PENDING];
static bool accept_paused;	/* pending table full: the kernel backlog holds the rest */
static uint64_t over_share_closed;	/* since the last message about them */
static uint64_t over_share_logged_ns;

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
	/*
	 * Accepted sockets inherit SO_PASSCRED: the kernel records who sends
	 * each hello (SCM_CREDENTIALS), even one sent before we accept.
	 */
	if (setsockopt(mon.lsock, SOL_SOCKET, SO_PASSCRED, &(int){ 1 }, sizeof(int)) < 0)
		log_warn("control socket: SO_PASSCRED: %s", strerror(errno));
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

/* Connections of @uid that owe a hello. */
static uint32_t pending_of_uid(uid_t uid)
{
	uint32_t i, n = 0;

	for (i = 0; i < MON_MAX_PENDING; i++)
		n += mon.pending[i].sock >= 0 && mon.pending[i].cred.uid == uid;
	return n;
}

/*
 * A slot to take back: the oldest connection of the uid holding the most
 * past its share. -1: no uid is past its share.
 */
static int pending_lent(void)
{
	uint32_t i, n, most = PENDING_PER_UID;
	int pick = -1;

	for (i = 0; i < MON_MAX_PENDING; i++) {
		const struct mon_pending *p = &mon.pending[i];

		if (p->sock < 0)
			continue;
		if (pick >= 0 && p->cred.uid == mon.pending[pick].cred.uid) {
			if (p->since_ns < mon.pending[pick].since_ns)
				pick = (int)i;
			continue;
		}
		n = pending_of_uid(p->cred.uid);
		if (n > most) {
			most = n;
			pick = (int)i;
		}
	}
	return pick;
}

/* A connection of uid @who closed for the share (@held: its pending ones); now and then say so. */
static void over_share(const struct ucred *who, uint32_t held, const char *what)
{
	uint64_t now = ipcd_now_ns();

	over_share_closed++;
	mon.ctr.refused++;
	if (now - over_share_logged_ns < OVER_SHARE_LOG_NS)
		return;
	log_warn("uid %u (pid %d) has %u connections that owe a hello, past its share of %u "
		 "with the table full: %s; %" PRIu64 " closed so since the last message",
		 who->uid, who->pid, held, PENDING_PER_UID, what, over_share_closed);
	over_share_closed = 0;
	over_share_logged_ns = now;
}

/* Put accepted connection @fd of @cred in slot @i and serve its hello if it is there. */
static void pending_install(uint32_t i, int fd, const struct ucred *cred)
{
	mon.pending[i].sock = fd;
	mon.pending[i].cred = *cred;
	mon.pending[i].since_ns = ipcd_now_ns();
	pending_flags[i] = 0;
	/*
	 * A library sends its hello right after connect(): it is usually here
	 * already, and then the connection owes nothing and takes no slot (nor
	 * its user's share) past this call.
	 */
	control_pending_ready(i);
}

void control_accept(void)
{
	unsigned int budget;

	for (budget = ACCEPT_BUDGET; budget; budget--) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
		socklen_t len = sizeof(struct ucred);
		struct mon_pending lent;
		uint32_t lent_flags = 0;
		struct ucred cred;
		uint32_t i, held;
		int fd, take = -1;

		for (i = 0; i < MON_MAX_PENDING && mon.pending[i].sock >= 0; i++)
			;
		if (i == MON_MAX_PENDING) {
			take = pending_lent();
			if (take < 0) {
				/* Leave the rest queued in the kernel until a handshake ends. */
				accept_pause(true);
				return;
			}
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
		/* Inherited from the listening socket on Linux; set it anyway, before any read. */
		setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &(int){ 1 }, sizeof(int));
		held = pending_of_uid(cred.uid);
		if (take >= 0) {
			/* The table is full: the newcomer borrows the lent slot for a look. */
			i = (uint32_t)take;
			lent = mon.pending[i];
			lent_flags = pending_flags[i];
		}
		pending_install(i, fd, &cred);
		if (take >= 0) {
			bool stays = mon.pending[i].sock >= 0 && held < PENDING_PER_UID;

			if (mon.pending[i].sock >= 0 && !stays) {
				/* Still silent, and its user is past its share: not this one. */
				epoll_ctl(mon.epfd, EPOLL_CTL_DEL, fd, NULL);
				close(fd);
				over_share(&cred, held, "closed a new connection at once");
			}
			if (!stays) {
				mon.pending[i] = lent;	/* still in epoll under this index */
				pending_flags[i] = lent_flags;
				continue;
			}
			/* Another user's, within its share: the lent slot is taken back. */
			epoll_ctl(mon.epfd, EPOLL_CTL_DEL, lent.sock, NULL);
			close(lent.sock);
			over_share(&lent.cred, pending_of_uid(lent.cred.uid) + 1,
				   "took back the slot of its oldest");
		}
		if (mon.pending[i].sock < 0)
			continue;
		ev.data.u64 = MON_EV(MON_EV_PENDING, i);
		if (epoll_ctl(mon.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			pending_close(i);
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

/*
 * Receive the hello and who sent it: the kernel's SCM_CREDENTIALS (pid,
 * uid, gid of the sender when it sent, checked by the kernel if the sender
 * named them), or pid 0 and uid/gid -1 when none came. Descriptors sent
 * with it are closed. Returns the hello's length (MSG_TRUNC) or -errno.
 */
static ssize_t recv_hello(int sock, struct ipcd_ctl_hello *h, struct ucred *from)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = h, .iov_len = sizeof(*h) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	from->pid = 0;
	from->uid = (uid_t)-1;
	from->gid = (gid_t)-1;
	n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET)
			continue;
		if (cm->cmsg_type == SCM_CREDENTIALS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
			memcpy(from, CMSG_DATA(cm), sizeof(*from));
		} else if (cm->cmsg_type == SCM_RIGHTS) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int), j;

			for (j = 0; j < k; j++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + j * sizeof(int), sizeof(fd));
				close(fd);
			}
		}
	}
	/* The hello was the one message that needed them. */
	setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &(int){ 0 }, sizeof(int));
	return n;
}

void control_pending_ready(uint32_t idx)
{
	struct mon_pending *p;
	struct ipcd_ctl_hello h;
	struct ucred from;
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
	n = recv_hello(p->sock, &h, &from);
	if (n == -EAGAIN)
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
		rc = clients_register(p->sock, &from, &h, why, sizeof(why));
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
