/* SPDX-License-Identifier: MIT */
/* clients.c - registered processes: registration, death, cleanup. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "monitor.h"

#define CAP_NET_BIND_SERVICE_BIT	10

int clients_init(void)
{
	uint32_t n = mon.cfg.max_processes;
	int rc;

	mon.clients = calloc(n, sizeof(*mon.clients));
	mon.dead = calloc(n, sizeof(*mon.dead));
	if (!mon.clients || !mon.dead)
		return -ENOMEM;
	rc = ipcd_reqq_srv_create(mon.cfg.queue_mode, n,
				  mon.cfg.queue_mode == IPCD_QMODE_SHARED ? &mon.db : NULL,
				  &reqs_ops, NULL, &mon.srv);
	if (rc)
		log_err("request server: cannot create (%s)", strerror(-rc));
	return rc;
}

/* Reap a slot now (not from inside a request handler: use clients_kill). */
static void reap(uint32_t slot, const char *why)
{
	struct mon_client *c = mon.clients[slot];

	if (!c)
		return;
	if (c->state == CL_ACTIVE)
		ipcd_reqq_srv_del(mon.srv, slot);
	if (mon.ns) {
		conns_client_gone(c);	/* before its binds go: it releases its own ports */
		ipcd_ns_release_owner(mon.ns, c->id);
	}
	cluster_client_gone(c);
	epoll_ctl(mon.epfd, EPOLL_CTL_DEL, c->sock, NULL);
	close(c->sock);
	ipcd_region_close(&c->reg);
	log_info("process %d (%s, uid %u) gone: %s; it held slot %u for %.1f s", c->pid, c->comm,
		 c->uid, why, slot, (double)(ipcd_now_ns() - c->since_ns) / 1e9);
	free(c);
	mon.clients[slot] = NULL;
	mon.n_clients--;
}

void clients_exit(void)
{
	uint32_t i;

	if (mon.clients)
		for (i = 0; i < mon.cfg.max_processes; i++)
			if (mon.clients[i])
				reap(i, "monitor shutting down");
	ipcd_reqq_srv_destroy(mon.srv);
	mon.srv = NULL;
	free(mon.clients);
	free(mon.dead);
	mon.clients = NULL;
	mon.dead = NULL;
}

/* The settings @c's library follows, in its own control block (shm_abi.h ABI 3.6). */
static void publish_to(struct mon_client *c)
{
	ipcd_store_relaxed(&c->chan.ctl->limit_action, mon.cfg.limit_action);
	ipcd_store_release(&c->chan.ctl->cluster_up, mon.cluster_up);
}

void clients_publish(void)
{
	uint32_t s;

	if (!mon.clients)
		return;
	for (s = 0; s < mon.cfg.max_processes; s++)
		if (mon.clients[s] && mon.clients[s]->state == CL_ACTIVE)
			publish_to(mon.clients[s]);
}

struct mon_client *clients_get(uint32_t slot)
{
	return slot < mon.cfg.max_processes ? mon.clients[slot] : NULL;
}

/* Read @name of the process directory @dfd into @buf (NUL-terminated). 0 or -errno. */
static int read_proc(int dfd, const char *name, char *buf, size_t size)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	n = len ? 0 : -EIO;
	close(fd);
	buf[len] = '\0';
	return (int)n;
}

/* starttime (field 22) of a /proc/PID/stat line, in ns since boot. false if malformed. */
static bool stat_start_ns(const char *stat, uint64_t *ns)
{
	const char *p = strrchr(stat, ')');	/* comm may hold spaces and ')' */
	long hz = sysconf(_SC_CLK_TCK);
	unsigned int field;
	char *end;

	if (!p || hz <= 0)
		return false;
	for (field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');		/* p: the space before field + 1 */
	if (!p)
		return false;
	*ns = strtoull(p + 1, &end, 10) * (1000000000ull / (uint64_t)hz);
	return end != p + 1;
}

/* CLOCK_BOOTTIME (that of /proc/PID/stat) at the CLOCK_MONOTONIC instant @mono_ns. */
static uint64_t boottime_at(uint64_t mono_ns)
{
	struct timespec b;
	uint64_t now = ipcd_now_ns();

	clock_gettime(CLOCK_BOOTTIME, &b);
	return (uint64_t)b.tv_sec * 1000000000ull + (uint64_t)b.tv_nsec - (now - mono_ns);
}

/* Why a process gets no privileged-port right, when it is worth saying. */
struct priv_why {
	const char *what;
	bool suspect;		/* not what a library does: worth a warning */
};

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD	77	/* Linux 6.5; asm-generic value */
#endif

/*
 * Is the process that connected on @sock still alive? 1 yes, 0 no, -1 this
 * kernel cannot say (no SO_PEERPIDFD before Linux 6.5). Its pidfd names that
 * very process, whatever has its pid number now.
 */
static int connector_alive(int sock)
{
	socklen_t len = sizeof(int);
	int pidfd, rc;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
		return errno == ENOPROTOOPT || errno == EINVAL ? -1 : 0;
	rc = (int)syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0);
	rc = rc == 0 || errno == EPERM;		/* EPERM: it exists */
	close(pidfd);
	return rc;
}

/*
 * May the process that said hello on @sock, with credentials @hello that
 * match the connect's (@pend: SO_PEERCRED and the accept time), bind ports
 * below 1024? Root may. Another uid needs CAP_NET_BIND_SERVICE in its
 * effective set, read from /proc/PID/status; and the process read there
 * must be the one that spoke, not one that took its pid since (isolation
 * finding e5):
 *  - the hello came from the process that connected (a library's process
 *    connects and says hello itself; the pid of the connect alone may be
 *    another process's by the hello: e5);
 *  - the files are read through one /proc/PID directory fd (if the pid is
 *    reused meanwhile, they fail);
 *  - the process there runs as the hello's uid (real and effective), and
 *    started before the monitor accepted the connection (/proc/PID/stat,
 *    clock ticks: a pid reused within one tick of the accept passes this);
 *  - and after the reads, the process that connected is still alive
 *    (SO_PEERPIDFD, Linux 6.5+): then nothing can have taken its pid.
 * It must also live in our user namespace: capabilities in a namespace of
 * its own (unshare -U) are worth nothing for our ports.
 */
static bool may_bind_privileged(int sock, const struct ucred *hello,
				const struct mon_pending *pend, struct priv_why *why)
{
	static struct stat own_ns;
	char path[64], buf[4096], *line, *next;
	unsigned int ruid = ~0u, euid = ~0u;
	unsigned long long caps = 0;
	struct stat ns;
	uint64_t start;
	int dfd;

	why->what = NULL;
	why->suspect = false;
	if (hello->uid == 0)
		return true;
	if (hello->pid <= 0)
		return false;		/* not in our pid namespace */
	if (hello->pid != pend->cred.pid) {
		why->what = "its hello came from another process than the one that connected";
		why->suspect = true;
		return false;
	}
	if (!own_ns.st_ino && stat("/proc/self/ns/user", &own_ns) < 0) {
		why->what = "cannot read our own user namespace";
		return false;
	}
	snprintf(path, sizeof(path), "/proc/%d", (int)hello->pid);
	dfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		why->what = "it is gone";
		return false;
	}
	if (read_proc(dfd, "status", buf, sizeof(buf))) {
		why->what = "it is gone";
		goto no;
	}
	for (line = buf; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (sscanf(line, "Uid: %u %u", &ruid, &euid) != 2)
			sscanf(line, "CapEff: %llx", &caps);
	}
	if (!(caps & (1ull << CAP_NET_BIND_SERVICE_BIT)))
		goto no;
	if (ruid != hello->uid || euid != hello->uid) {
		why->what = "the process now at its pid runs as another user";
		why->suspect = true;
		goto no;
	}
	if (read_proc(dfd, "stat", buf, sizeof(buf)) || !stat_start_ns(buf, &start)) {
		why->what = "it is gone";
		goto no;
	}
	if (start > boottime_at(pend->since_ns)) {
		why->what = "the process now at its pid started after it connected";
		why->suspect = true;
		goto no;
	}
	if (fstatat(dfd, "ns/user", &ns, 0) < 0 || ns.st_ino != own_ns.st_ino ||
	    ns.st_dev != own_ns.st_dev) {
		why->what = "its capabilities are those of another user namespace";
		goto no;
	}
	if (!connector_alive(sock)) {
		why->what = "the process that connected is gone: its pid may be another's";
		why->suspect = true;
		goto no;
	}
	close(dfd);
	return true;
no:
	close(dfd);
	return false;
}

/*
 * The handshake @sock belongs to: control.c keeps its entry (SO_PEERCRED at
 * accept, the accept time) until clients_register() returns.
 */
static const struct mon_pending *pending_of(int sock)
{
	uint32_t i;

	for (i = 0; i < MON_MAX_PENDING; i++)
		if (mon.pending[i].sock == sock)
			return &mon.pending[i];
	return NULL;
}

/*
 * Register the process that said @hello on @sock. @cred: the hello's
 * SCM_CREDENTIALS (pid 0 and uid/gid -1 if none came); SO_PEERCRED is in
 * the pending entry of @sock. The uid and gid are SO_PEERCRED's (who
 * connected); the pid is the hello's sender's when the kernel gave it, and
 * the privileged-port right is judged on it only when its uid and gid are
 * those that connected (ctl.h, "Identity").
 */
int clients_register(int sock, const struct ucred *cred, const struct ipcd_ctl_hello *hello,
		     char *why, size_t whylen)
{
	const struct mon_pending *pend = pending_of(sock);
	struct ipcd_ctl_welcome w = {
		.magic = IPCD_CTL_MAGIC,
		.abi_major = IPCD_SHM_ABI_MAJOR,
		.abi_minor = IPCD_SHM_ABI_MINOR,
		.queue_mode = mon.cfg.queue_mode,
	};
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	struct priv_why priv_why = { 0 };
	struct mon_client *c;
	int fds[IPCD_CTL_NFDS];
	bool same;
	uint32_t slot;
	int rc;

	if (!pend) {
		snprintf(why, whylen, "not a pending handshake");
		return -EINVAL;
	}
	same = cred->uid == pend->cred.uid && cred->gid == pend->cred.gid;
	if (!same && (hello->flags & IPCD_CTL_HELLO_CREDS)) {
		snprintf(why, whylen, "the credentials of its hello (uid %d gid %d) are not those "
			 "it connected with (uid %u gid %u)", (int)cred->uid, (int)cred->gid,
			 pend->cred.uid, pend->cred.gid);
		return -EPERM;
	}
	if (mon.n_clients >= mon.cfg.max_processes) {
		snprintf(why, whylen, "the monitor serves at most max_processes=%u processes",
			 mon.cfg.max_processes);
		return -EUSERS;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	rc = ipcd_reqq_chan_create(mon.cfg.request_ring_bytes, &c->reg, &c->chan);
	if (rc) {
		snprintf(why, whylen, "cannot create its request channel: %s", strerror(-rc));
		goto err_free;
	}
	rc = ipcd_reqq_srv_add(mon.srv, &c->chan, &slot);
	if (rc) {
		snprintf(why, whylen, "no request slot free");
		goto err_region;
	}
	c->state = CL_ACTIVE;
	c->id = ++mon.next_client_id;
	c->pid = cred->pid > 0 ? cred->pid : pend->cred.pid;
	c->uid = pend->cred.uid;
	c->gid = pend->cred.gid;
	/* Without credentials that match the connect's, no pid is worth reading. */
	c->priv_ports = same && may_bind_privileged(sock, cred, pend, &priv_why);
	if (priv_why.what)
		ipcd_log(priv_why.suspect ? IPCD_LOG_WARN : IPCD_LOG_INFO,
			 "process %d (uid %u): no right to ports below 1024: %s", c->pid, c->uid,
			 priv_why.what);
	w.pid = (uint32_t)c->pid;
	c->abi_minor = hello->abi_minor;
	memcpy(c->comm, hello->comm, sizeof(c->comm));
	c->comm[sizeof(c->comm) - 1] = '\0';
	for (char *p = c->comm; *p; p++)	/* it is only for display: keep it printable */
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	c->sock = sock;
	c->slot = slot;
	c->since_ns = ipcd_now_ns();
	publish_to(c);		/* before the welcome: the library reads them from its first call */

	w.client_id = c->id;
	w.slot = slot;
	fds[IPCD_CTL_FD_CLIENT] = c->reg.fd;
	fds[IPCD_CTL_FD_GLOBAL] = mon.global.fd;
	fds[IPCD_CTL_FD_WAKE] = ipcd_reqq_srv_wake_fd(mon.srv);
	rc = control_send_fds(sock, &w, sizeof(w), fds, IPCD_CTL_NFDS);
	if (rc) {
		snprintf(why, whylen, "cannot send the welcome: %s", strerror(-rc));
		goto err_del;
	}
	ev.data.u64 = MON_EV(MON_EV_CLIENT, slot);
	if (epoll_ctl(mon.epfd, EPOLL_CTL_ADD, sock, &ev) < 0) {
		rc = -errno;
		snprintf(why, whylen, "epoll: %s", strerror(errno));
		goto err_del;
	}
	mon.clients[slot] = c;
	mon.n_clients++;
	mon.ctr.registered++;
	log_info("process %d (%s, uid %u gid %u) registered: slot %u, id %" PRIu64
		 ", library ABI %u.%u%s", c->pid, c->comm, c->uid, c->gid, slot, c->id,
		 hello->abi_major, hello->abi_minor, c->priv_ports ? ", ports < 1024" : "");
	if (c->pid != pend->cred.pid)
		log_info("process %d (%s): pid %d connected, pid %d said hello", c->pid, c->comm,
			 pend->cred.pid, c->pid);
	return 0;

err_del:
	ipcd_reqq_srv_del(mon.srv, slot);
err_region:
	ipcd_region_close(&c->reg);
err_free:
	free(c);
	return rc;
}

/*
 * Cut a client off from inside the poll turn: it stops being served at once;
 * its sockets and memory go when the turn ends (clients_reap_dead).
 */
void clients_kill(uint32_t slot, const char *why)
{
	struct mon_client *c = clients_get(slot);

	if (!c || c->state != CL_ACTIVE)
		return;
	ipcd_reqq_srv_del(mon.srv, slot);
	c->state = CL_DEAD;
	c->why_dead = why;
	mon.dead[mon.n_dead++] = slot;
}

void clients_reap_dead(void)
{
	while (mon.n_dead) {
		uint32_t slot = mon.dead[--mon.n_dead];
		struct mon_client *c = mon.clients[slot];

		if (c)
			reap(slot, c->why_dead);
	}
}

/*
 * The process closed its control socket (exit, exec, crash). What it queued
 * before is served first (a CLOSE posted just before exit), then it is reaped.
 * The budget is one ring's worth: a process cannot keep us here.
 */
#define FINAL_BUDGET	256u

static void gone(uint32_t slot)
{
	ipcd_reqq_srv_drain_final(mon.srv, slot, FINAL_BUDGET);
	if (mon.clients[slot] && mon.clients[slot]->state == CL_ACTIVE) {
		reap(slot, "its control socket closed (exit or crash)");
		mon.ctr.reaped++;
	}
}

void mon_object_event(uint64_t tag, uint32_t events)
{
	switch (MON_EV_KIND(tag)) {
	case MON_EV_CLIENT:
		clients_event(MON_EV_IDX(tag), events);
		break;
	case MON_EV_PENDING:
		control_pending_ready(MON_EV_IDX(tag));
		break;
	case MON_EV_HOLD:
		conns_hold_hup(MON_EV_IDX(tag));
		break;
	case MON_EV_LHOLD:
		conns_lis_hup(MON_EV_IDX(tag));
		break;
	case MON_EV_UHOLD:
		conns_ulis_hup(MON_EV_IDX(tag));
		break;
	case MON_EV_RLINK:
		cluster_link_event();
		break;
	case MON_EV_RCHAN:
		cluster_chan_event(MON_EV_IDX(tag), events);
		break;
	default:
		break;
	}
}

void clients_event(uint32_t slot, uint32_t events)
{
	struct mon_client *c = clients_get(slot);
	char byte;
	ssize_t n;

	if (!c || c->state != CL_ACTIVE)
		return;
	if (events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)) {
		gone(slot);
		return;
	}
	n = recv(c->sock, &byte, 1, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		gone(slot);
	} else if (n > 0) {
		log_warn("process %d (%s): unexpected message on its control socket: disconnecting",
			 c->pid, c->comm);
		mon.ctr.faults++;
		reap(slot, "protocol violation on the control socket");
	}
}
