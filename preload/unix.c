/* SPDX-License-Identifier: MIT */
/*
 * unix.c - named AF_UNIX stream sockets (pathname and abstract) between
 * preloaded processes: the kernel makes the connection, shared memory
 * carries its data.
 *
 * The kernel binds, listens, connects and accepts: the socket file's
 * permissions, ECONNREFUSED, ENOENT, the backlog and SO_PEERCRED are its
 * own. What we add (proto.h, "Named AF_UNIX stream sockets"):
 *
 *  - listen() registers the bound name with the monitor (ULISTEN). The
 *    name's key is taken at bind(), in the cwd the path was given in: a
 *    pathname's file (device, inode), or the network namespace and the
 *    abstract name. The registration's token (s->lhold) goes with the
 *    socket through fork: it ends when no process holds the listener.
 *  - connect() to a registered name first asks the monitor for a
 *    connection (UCONNECT), binds the socket to an abstract name that
 *    says which one, then connects in the kernel. Once SO_PEERCRED shows
 *    the registrant listening, the fd becomes end A, with the kernel
 *    connection kept behind it (s->kfd) as a socketpair end keeps its
 *    pair: names, options, SO_PEERCRED and control data (anc.c) are the
 *    kernel's. A connector with a name of its own (bound, or autobound
 *    for SO_PASSCRED) binds none of ours: the hash of its name is the
 *    token.
 *  - accept() on any AF_UNIX listener of a preloaded process looks at the
 *    peer's name: one of ours (or any, on a registered listener) is claimed
 *    from the monitor (UCLAIM), which checks that we hold the kernel
 *    connection, and the fd becomes end B.
 *
 * The abstract name is ours, not the application's: getsockname() of the
 * connector and getpeername()/accept() of the acceptor report an unbound
 * peer, as the kernel would without us.
 *
 * A connection nobody claims leaves its connector waiting on the ring: the
 * acceptor must be preloaded. The registrant is, and the processes it forks
 * are; a listener inherited by an exec of a program that will not load us,
 * or sent to another process, is the documented exception (README).
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "sock.h"

#define UNIX_PATH_OFF	offsetof(struct sockaddr_un, sun_path)

static int fail(int err)
{
	errno = err;
	return -1;
}

/*
 * The network namespace's inode: abstract names are per namespace. Asked
 * each time: unshare() and setns() change it.
 */
static uint64_t netns_ino(void)
{
	struct stat st;

	return stat("/proc/self/ns/net", &st) == 0 ? st.st_ino : 0;
}

/*
 * The key of the name @sa names (proto.h struct ipcd_ulisten_req): false
 * if there is none (not AF_UNIX, unnamed, no such socket file).
 */
static bool name_key(const struct sockaddr *sa, socklen_t len, uint64_t *key)
{
	const struct sockaddr_un *u = (const void *)sa;
	uint64_t h = IPCD_FNV1A_INIT;
	size_t n;

	if (!sa || len <= UNIX_PATH_OFF || len > sizeof(*u) || u->sun_family != AF_UNIX)
		return false;
	n = len - UNIX_PATH_OFF;
	if (u->sun_path[0] == '\0') {
		uint64_t ns = netns_ino();

		h = ipcd_fnv1a(h, "a", 1);
		h = ipcd_fnv1a(h, &ns, sizeof(ns));
		h = ipcd_fnv1a(h, u->sun_path, n);
	} else {
		char path[sizeof(u->sun_path) + 1];
		struct stat st;
		uint64_t dev, ino;

		n = strnlen(u->sun_path, n);
		memcpy(path, u->sun_path, n);
		path[n] = '\0';
		if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
			return false;
		dev = st.st_dev;
		ino = st.st_ino;
		h = ipcd_fnv1a(h, "p", 1);
		h = ipcd_fnv1a(h, &dev, sizeof(dev));
		h = ipcd_fnv1a(h, &ino, sizeof(ino));
	}
	*key = h;
	return true;
}

/* Is @sa (@len) the abstract name of one of our connections? Its id and token. */
static bool our_name(const struct sockaddr_un *sa, socklen_t len, uint64_t *id, uint64_t *token)
{
	char buf[IPCD_UNIX_NAME_LEN + 1];
	unsigned long long a, b;
	int end = 0;

	if (len != UNIX_PATH_OFF + IPCD_UNIX_NAME_LEN || sa->sun_family != AF_UNIX ||
	    sa->sun_path[0] != '\0')
		return false;
	memcpy(buf, sa->sun_path + 1, IPCD_UNIX_NAME_LEN - 1);
	buf[IPCD_UNIX_NAME_LEN - 1] = '\0';
	if (sscanf(buf, IPCD_UNIX_NAME_PREFIX "%16llx-%16llx%n", &a, &b, &end) != 2 ||
	    end != IPCD_UNIX_NAME_LEN - 1)
		return false;
	*id = a;
	*token = b;
	return true;
}

/* An unbound AF_UNIX address, as the kernel reports one. */
static void unnamed(struct sockaddr *addr, socklen_t *len)
{
	sa_family_t f = AF_UNIX;

	if (addr && len && *len)
		memcpy(addr, &f, IPCD_MIN(*len, (socklen_t)sizeof(f)));
	if (len)
		*len = sizeof(f);
}

void ipcd_unix_bound(struct ipcd_sock *s, int fd)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);

	if (ipcd_real.getsockname(fd, (struct sockaddr *)&sun, &len) == 0)
		s->ukey_ok = name_key((struct sockaddr *)&sun, len, &s->ukey);
}

/*
 * ULISTEN: a registration (its token's fd in *@hold), or its retirement
 * (@flags IPCD_ULISTEN_DROP, @hold NULL). 0 or -errno.
 */
static int ulisten(uint64_t key, uint32_t flags, int *hold)
{
	struct ipcd_req req = { .opcode = IPCD_OP_ULISTEN };
	struct ipcd_ulisten_req *ul = (void *)req.body;
	int fds[IPCD_CTL_CONN_NFDS];
	struct ipcd_resp resp;

	req.len = sizeof(*ul);
	ul->key = key;
	ul->flags = flags;
	if (ipcd_mon_call(&req, &resp, hold ? fds : NULL, NULL))
		return -ENOTCONN;
	if (hold && resp.status == 0) {
		if (fds[0] < 0)
			return -EPROTO;
		*hold = fds[0];
	}
	return resp.status;
}

/*
 * The registration lives while a process holds its token, which fork
 * copies with the listener: a pre-forking server's parent may close its
 * listener, its children still accept. The last holder's close or exit
 * ends it (fdtab.c closes the token with the socket).
 */
int ipcd_unix_listen(struct ipcd_sock *s, int fd, int n)
{
	int rc = ipcd_real.listen(fd, n), hold = -1;

	if (rc || s->ulisten || !s->ukey_ok || !ipcd_state_attach_quiet())
		return rc;
	if (ulisten(s->ukey, 0, &hold) == 0) {
		s->lhold = hold;
		ipcd_fd_hide(hold, true);
		s->ulisten = true;
	}
	return 0;
}

void ipcd_unix_before_exec(void)
{
	unsigned int fd;

	for (fd = 0; fd < IPCD_FDTAB_MAX; fd++) {
		struct ipcd_sock *s = ipcd_fdtab_get((int)fd);

		if (s && s->ulisten && !ipcd_fdtab_cloexec((int)fd)) {
			ulisten(s->ukey, IPCD_ULISTEN_DROP, NULL);
			s->ulisten = false;
		}
	}
}

/* Take back connection @id (unclaimed): 0, -EALREADY (claimed: use it), or -errno. */
static int unclaim(uint64_t id)
{
	struct ipcd_req req = { .opcode = IPCD_OP_CLOSE };
	struct ipcd_close_req *cr = (void *)req.body;
	struct ipcd_resp resp;

	req.len = sizeof(*cr);
	cr->conn_id = id;
	cr->end = IPCD_CLOSE_UNCLAIMED;
	if (ipcd_mon_call(&req, &resp, NULL, NULL))
		return -ENOTCONN;
	return resp.status;
}

/*
 * Our kernel connection for @id is made (posted; proto.h UCONNECTED): were
 * we to die from now on, an acceptor may still come to claim it.
 */
static void uconnected(uint64_t id)
{
	struct ipcd_req req = { .opcode = IPCD_OP_UCONNECTED };
	struct ipcd_uconnected_req *ur = (void *)req.body;
	struct ipcd_attach *a = ipcd_state_get();

	if (!a || a->welcome.abi_minor < 7)
		return;
	req.len = sizeof(*ur);
	ur->conn_id = id;
	ipcd_mon_post_lazy(&req);
}

/* Has the kernel socket @fd SO_PASSCRED? */
static bool passcred_on(int fd)
{
	int on = 0;
	socklen_t ol = sizeof(on);

	return ipcd_real.getsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, &ol) == 0 && on;
}

/*
 * @s has its end of a named connection (s->conn) and @fd is the kernel
 * socket: the kernel socket moves behind the end (s->kfd) and the end's
 * eventfd takes @fd. 0, or -errno with the end closed (its peer reads EOF).
 */
static int become_end(struct ipcd_sock *s, int fd)
{
	int kfd = ipcd_real.fcntl(fd, F_DUPFD_CLOEXEC, 0);

	if (kfd < 0 || ipcd_real.dup3(s->conn.wake_self, fd, O_CLOEXEC) < 0) {
		int err = errno;

		if (kfd >= 0)
			ipcd_real.close(kfd);
		ipcd_conn_close(&s->conn);
		ipcd_mon_post_close(s->conn.conn_id, IPCD_END_OF(s));
		return -err;
	}
	ipcd_real.close(s->conn.wake_self);
	s->conn.wake_self = -1;
	s->kfd = kfd;
	ipcd_fd_hide(kfd, true);
	s->kind = IPCD_CONN_KIND_UNIX;
	ipcd_sock_conn_ready(s);
	/* Set before connect, or inherited from the listener (as accept() does). */
	if (passcred_on(kfd))
		ipcd_unix_passcred(s, true);
	return 0;
}

int ipcd_unix_connect(struct ipcd_sock *s, int fd, const struct sockaddr *sa, socklen_t len)
{
	struct ipcd_req req = { .opcode = IPCD_OP_UCONNECT };
	struct ipcd_uconnect_req *uq = (void *)req.body;
	struct ipcd_uconnect_resp ur;
	struct sockaddr_un me;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	struct ipcd_resp resp;
	int fds[IPCD_CTL_CONN_NFDS];
	uint64_t key, size = 0;
	bool cloexec, named;
	int rc, err;

	if (s->state != IPCD_SK_FRESH)
		return fail(EISCONN);
	if (s->uname || !name_key(sa, len, &key) || !ipcd_state_attach_quiet()) {
		/* One with a name of ours stays: getsockname hides that name. */
		if (!s->uname)
			ipcd_sock_to_kernel(fd);
		return ipcd_real.connect(fd, sa, len);
	}
	/*
	 * SO_PASSCRED on an unbound connector: the kernel autobinds it in
	 * connect, and its peer sees that name. Autobound now, it is a
	 * connector with a name of its own, as one the application bound.
	 */
	if (!s->bound && passcred_on(fd)) {
		sa_family_t f = AF_UNIX;

		if (ipcd_real.bind(fd, (struct sockaddr *)&f, sizeof(f)) < 0) {
			ipcd_sock_to_kernel(fd);
			return ipcd_real.connect(fd, sa, len);
		}
		s->bound = true;
	}
	named = s->bound;
	req.len = sizeof(*uq);
	uq->key = key;
	uq->fd = named ? fd : -1;
	err = ipcd_mon_call(&req, &resp, fds, &size);
	if (err || resp.status) {
		err = err ? 0 : ipcd_limit_errno(resp.status);
		ipcd_sock_to_kernel(fd);	/* nobody preloaded listens there */
		if (err)
			return fail(err);	/* limit_action = error */
		return ipcd_real.connect(fd, sa, len);
	}
	memcpy(&ur, resp.body, sizeof(ur));
	if (ipcd_conn_open(fds, size, false, &s->conn)) {
		unclaim(ur.conn_id);
		ipcd_sock_to_kernel(fd);
		return ipcd_real.connect(fd, sa, len);
	}
	if (!named) {
		memset(&me, 0, sizeof(me));
		me.sun_family = AF_UNIX;
		snprintf(me.sun_path, sizeof(me.sun_path), "@" IPCD_UNIX_NAME_FMT, ur.conn_id,
			 ur.token);
		me.sun_path[0] = '\0';
		if (ipcd_real.bind(fd, (struct sockaddr *)&me,
				   UNIX_PATH_OFF + IPCD_UNIX_NAME_LEN) < 0) {
			ipcd_conn_release(&s->conn);
			unclaim(ur.conn_id);
			ipcd_sock_to_kernel(fd);
			return ipcd_real.connect(fd, sa, len);
		}
		s->bound = true;
		s->uname = true;	/* getsockname: unbound, as without us (ipcd_unix_name) */
	}
	rc = ipcd_real.connect(fd, sa, len);
	if (rc < 0) {
		/* No kernel connection: nobody can claim it. */
		err = errno;
		ipcd_conn_release(&s->conn);
		unclaim(ur.conn_id);
		return fail(err);
	}
	uconnected(ur.conn_id);
	/*
	 * The listener we reached must be the registrant (the path may name
	 * another socket by now). If not, the connection is taken back, unless
	 * its acceptor, preloaded after all, claimed it first.
	 */
	if ((ipcd_real.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
	     cred.pid != ur.listener_pid) && unclaim(ur.conn_id) != -EALREADY) {
		ipcd_conn_release(&s->conn);
		return 0;
	}
	cloexec = (ipcd_real.fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
	if (become_end(s, fd) == 0) {
		ipcd_fdtab_set_cloexec(fd, cloexec);	/* the table keeps the flag from now on */
		ipcd_ep_sock_changed(s, fd);	/* registrations follow the fd's new object */
	}
	/* else the kernel socket stays at fd; the peer reads EOF on the ring. */
	return 0;
}

int ipcd_unix_accept(struct ipcd_sock *l, int fd, struct sockaddr *addr, socklen_t *addrlen,
		     int flags)
{
	struct ipcd_req req = { .opcode = IPCD_OP_UCLAIM };
	struct ipcd_uclaim_req *uq = (void *)req.body;
	struct ipcd_conn_resp cr;
	struct sockaddr_un sun;
	socklen_t sl = sizeof(sun);
	struct ipcd_resp resp;
	struct ipcd_sock *s;
	int fds[IPCD_CTL_CONN_NFDS];
	uint64_t id, token, size = 0;
	bool ours;
	int nfd, saved;

	memset(&sun, 0, sizeof(sun));
	nfd = ipcd_real.accept4(fd, (struct sockaddr *)&sun, &sl, flags);
	if (nfd < 0)
		return nfd;
	saved = errno;
	ours = our_name(&sun, sl, &id, &token);
	/*
	 * A connector named by us, or one with a name of its own that reached
	 * a registered listener (the claim then names it by its hash).
	 */
	if (!ours && (!l->ulisten || sl <= UNIX_PATH_OFF))
		goto out;
	if (nfd >= IPCD_FDTAB_MAX || !ipcd_state_attach_quiet())
		goto out;
	req.len = sizeof(*uq);
	uq->conn_id = ours ? id : 0;
	uq->token = ours ? token : ipcd_unix_name_hash(sun.sun_path, sl - UNIX_PATH_OFF);
	uq->fd = nfd;
	/* Not ours after all (-ENOENT: taken back by its connector): the kernel's. */
	if (ipcd_mon_call(&req, &resp, fds, &size) || resp.status)
		goto out;
	memcpy(&cr, resp.body, sizeof(cr));
	/*
	 * Claimed: the connector uses the ring from now on. If we cannot, the
	 * connection is aborted, as the kernel may abort one before accept.
	 */
	s = ipcd_sock_new(AF_UNIX, flags & SOCK_NONBLOCK);
	if (!s) {
		ipcd_real.close(fds[IPCD_CTL_CONN_FD_REGION]);
		ipcd_real.close(fds[IPCD_CTL_CONN_FD_SELF]);
		ipcd_real.close(fds[IPCD_CTL_CONN_FD_PEER]);
		ipcd_mon_post_close(cr.conn_id, IPCD_CLOSE_B);
		goto abort;
	}
	if (ipcd_conn_open(fds, size, true, &s->conn)) {
		ipcd_mon_post_close(cr.conn_id, IPCD_CLOSE_B);
		goto abort_sock;
	}
	if (become_end(s, nfd))
		goto abort_sock;
	ipcd_fdtab_set(nfd, s, (flags & SOCK_CLOEXEC) != 0);
	goto out;
abort_sock:
	atomic_store(&s->refs, 1);
	ipcd_sock_put(s);
abort:
	ipcd_real.close(nfd);
	return fail(ECONNABORTED);
out:
	if (addr && addrlen) {
		if (ours)
			unnamed(addr, addrlen);	/* the peer's name is ours, not its application's */
		else {
			memcpy(addr, &sun, IPCD_MIN(*addrlen, sl));
			*addrlen = sl;
		}
	}
	errno = saved;
	return nfd;
}

int ipcd_unix_name(struct ipcd_sock *s, int fd, bool peer, struct sockaddr *addr,
		   socklen_t *len)
{
	struct sockaddr_un sun;
	socklen_t sl = sizeof(sun);
	uint64_t id, token;
	int k = s->state == IPCD_SK_FRESH ? fd : s->kfd;

	if (!len)
		return fail(EFAULT);
	if ((peer ? ipcd_real.getpeername : ipcd_real.getsockname)(k, (struct sockaddr *)&sun,
								   &sl) < 0)
		return -1;
	/* The name a connector of ours bound is not its application's: unbound. */
	if (our_name(&sun, sl, &id, &token)) {
		unnamed(addr, len);
		return 0;
	}
	if (addr)
		memcpy(addr, &sun, IPCD_MIN(*len, sl));
	*len = sl;
	return 0;
}
