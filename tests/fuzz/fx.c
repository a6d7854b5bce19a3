/* SPDX-License-Identifier: MIT */
/* fx.c - an in-process ipcd-monitor for the fuzz targets (see fx.h). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fx.h"
#include "fz.h"

struct monitor mon;
struct fx fx;

#define FD_BITS		65536u
#define TURNS		4	/* rounds of fx_turn() while something happens */
#define EVENT_ROUNDS	8	/* epoll batches per round: a level-triggered fd cannot hold us */

/* IPCD_FUZZ_LOG: the clients' requests and answers too, to read a reproducer. */
static bool trace;

/* Descriptors open before the input: everything else is the run's, closed by fx_stop(). */
static uint64_t fds_before[FD_BITS / 64];

static void fds_snapshot(void)
{
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");

	memset(fds_before, 0, sizeof(fds_before));
	if (!d)
		abort();
	while ((e = readdir(d))) {
		long fd = strtol(e->d_name, NULL, 10);

		if (e->d_name[0] != '.' && fd >= 0 && (unsigned long)fd < FD_BITS)
			fds_before[fd / 64] |= 1ull << (fd % 64);
	}
	closedir(d);
}

static void fds_close_new(void)
{
	int fds[1024], n = 0, i;
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");

	if (!d)
		abort();
	while ((e = readdir(d)) && n < (int)IPCD_ARRAY_SIZE(fds)) {
		long fd = strtol(e->d_name, NULL, 10);

		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		if ((unsigned long)fd >= FD_BITS || !(fds_before[fd / 64] & 1ull << (fd % 64)))
			fds[n++] = (int)fd;
	}
	closedir(d);
	for (i = 0; i < n; i++)
		close(fds[i]);
}

void fx_val_add(uint64_t v)
{
	unsigned int i, n = IPCD_MIN(fx.n_vals, FX_VALS);

	if (!v)
		return;
	for (i = 0; i < n; i++)
		if (fx.vals[i] == v)
			return;
	if (trace)
		dprintf(2, "fx: value #%u = %#llx\n", fx.n_vals % FX_VALS, (unsigned long long)v);
	fx.vals[fx.n_vals++ % FX_VALS] = v;
}

uint64_t fx_val(unsigned int i)
{
	unsigned int n = IPCD_MIN(fx.n_vals, FX_VALS);

	return n ? fx.vals[i % n] : 0;
}

/* main.c's global_init(): the global region, and the doorbell queue in shared mode. */
static void global_init(void)
{
	bool shared = mon.cfg.queue_mode == IPCD_QMODE_SHARED;
	uint32_t slots = IPCD_MPSC_MIN_SLOTS;
	size_t sizes[2], mpsc_size;
	void *mpsc;

	while (slots < mon.cfg.max_processes)
		slots <<= 1;
	sizes[IPCD_AREA_GLOBAL_CTL] = sizeof(struct ipcd_global_ctl);
	sizes[IPCD_AREA_GLOBAL_MPSC] = shared ? ipcd_mpsc_mem_size(slots) : 0;
	if (ipcd_region_create("ipcd-global", IPCD_REGION_GLOBAL, sizes, shared ? 2 : 1,
			       &mon.global))
		abort();
	mon.gctl = ipcd_region_area(&mon.global, IPCD_AREA_GLOBAL_CTL, NULL);
	mon.gctl->queue_mode = mon.cfg.queue_mode;
	mon.gctl->monitor_pid = (uint32_t)getpid();
	mon.gctl->start_ns = mon.start_ns;
	if (shared) {
		mpsc = ipcd_region_area(&mon.global, IPCD_AREA_GLOBAL_MPSC, &mpsc_size);
		if (ipcd_mpsc_init(mpsc, slots) ||
		    ipcd_mpsc_attach(&mon.db, mpsc, mpsc_size, (uint64_t)mon.cfg.skip_us * 1000))
			abort();
	}
	ipcd_region_publish(&mon.global);
}

void fx_start(const char *text)
{
	static struct ipcd_config cfg;
	static char *cfg_text;
	char err[512];
	unsigned int i;

	signal(SIGPIPE, SIG_IGN);	/* as main.c's signals_init() */
	trace = getenv("IPCD_FUZZ_LOG") != NULL;
	fds_snapshot();
	memset(&fx, 0, sizeof(fx));
	for (i = 0; i < FX_CLIENTS; i++)
		fx.c[i].sock = fx.c[i].rchan = fx.c[i].rq.wake_fd = -1;
	memset(&mon, 0, sizeof(mon));
	mon.epfd = mon.sigfd = mon.lsock = -1;
	/* Parsed once per text: its comparisons would only feed the fuzzer noise. */
	if (!cfg_text || strcmp(cfg_text, text)) {
		if (ipcd_config_load(NULL, false, &cfg, err, sizeof(err)) ||
		    ipcd_config_parse(text, strlen(text), "fx.conf", &cfg, err, sizeof(err))) {
			dprintf(2, "fx: bad config: %s\n", err);
			abort();
		}
		free(cfg_text);
		cfg_text = strdup(text);
	}
	mon.cfg = cfg;
	/* Every log line is formatted (its arguments checked), then dropped: fz.c. */
	ipcd_log_init(IPCD_LOG_DEBUG, false);
	mon.start_ns = ipcd_now_ns();
	mon.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (mon.epfd < 0)
		abort();
	global_init();
	if (ipcd_ns_create(mon.cfg.max_connections, 32768, 60999, &mon.ns) || conns_init() ||
	    clients_init() || cluster_init())
		abort();
	/* control_init() without its listening socket: fx_connect() plays accept(). */
	for (i = 0; i < MON_MAX_PENDING; i++)
		mon.pending[i].sock = -1;
}

static void client_forget(struct fx_client *c)
{
	unsigned int i;

	for (i = 0; i < c->n_maps; i++)
		munmap(c->maps[i].base, c->maps[i].size);
	for (i = 0; i < c->n_holds; i++)
		close(c->holds[i]);
	if (c->rchan >= 0)
		close(c->rchan);
	if (c->rq.wake_fd >= 0)
		close(c->rq.wake_fd);
	ipcd_region_close(&c->reg);
	ipcd_region_close(&c->glob);
	if (c->sock >= 0)
		close(c->sock);
	memset(c, 0, sizeof(*c));
	c->sock = c->rchan = c->rq.wake_fd = -1;
}

void fx_stop(void)
{
	unsigned int i;

	/* Every process dies first: the monitor's death paths run too. */
	for (i = 0; i < FX_CLIENTS; i++)
		if (fx.c[i].live)
			fx_hangup(&fx.c[i]);
	fx_turn();
	/* Then main.c's undo_init(), in reverse order of the steps. */
	mon.stop = true;
	control_exit();
	cluster_exit();
	clients_exit();
	conns_exit();
	ipcd_ns_destroy(mon.ns);
	mon.ns = NULL;
	ipcd_region_close(&mon.global);
	mon.gctl = NULL;
	close(mon.epfd);
	mon.epfd = -1;
	for (i = 0; i < FX_CLIENTS; i++)
		client_forget(&fx.c[i]);
	/* What the monitor keeps until it exits (hold tokens of listeners, ...). */
	fds_close_new();
}

/* ---- a client's side of its control socket ---------------------------------- */

/* One message and its descriptors (all closed by the caller); length or -1. */
static ssize_t recv_fds(int sock, void *buf, size_t len, int *fds, unsigned int *nfds)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b),
	};
	struct cmsghdr *cm;
	ssize_t n;

	*nfds = 0;
	n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -1;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (k = 0; k < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int) && *nfds < 8; k++)
			memcpy(&fds[(*nfds)++], CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
	}
	return n;
}

/* Map a connection region it was sent, as the preload would (it may write it later). */
static void map_region(struct fx_client *c, int fd, uint64_t size)
{
	struct fx_map *m;
	struct stat st;
	void *base;

	if (fstat(fd, &st) || (uint64_t)st.st_size != size || !size || size > (64u << 20))
		return;
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return;
	m = &c->maps[c->n_maps < FX_MAPS ? c->n_maps++ : (size % FX_MAPS)];
	if (m->base)
		munmap(m->base, m->size);
	m->base = base;
	m->size = size;
}

static void on_ctl_msg(struct fx_client *c, const struct ipcd_ctl_msg *m, int *fds,
		       unsigned int nfds)
{
	unsigned int i;

	if (m->magic != IPCD_CTL_MAGIC)
		return;
	fx_val_add(m->conn_id);
	fx_val_add(m->bind_id);
	fx_val_add(m->lane_id);
	switch (m->type) {
	case IPCD_CTL_CONN_FD:
	case IPCD_CTL_REGION_FD:
		if (nfds)
			map_region(c, fds[0], m->region_size);
		break;
	case IPCD_CTL_HOLD_FD:
		/* Kept: the end (or listener) lives while someone holds its token. */
		if (nfds && c->n_holds < FX_HOLDS) {
			c->holds[c->n_holds++] = fds[0];
			fds[0] = -1;
		}
		break;
	case IPCD_CTL_RCHAN_FD:
		if (nfds) {
			if (c->rchan >= 0)
				close(c->rchan);
			c->rchan = fds[0];
			fds[0] = -1;
		}
		break;
	default:
		break;	/* LISTEN_FD, LANE_FD: nothing to keep */
	}
	for (i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Everything the monitor sent @c: control messages, then answers. */
static void client_read(struct fx_client *c)
{
	struct ipcd_resp resp;
	unsigned int guard;

	for (guard = 0; guard < 256; guard++) {
		struct ipcd_ctl_msg m;
		unsigned int nfds, i;
		int fds[8];
		ssize_t n = recv_fds(c->sock, &m, sizeof(m), fds, &nfds);

		if (n < 0)
			break;
		if (n == (ssize_t)sizeof(m)) {
			on_ctl_msg(c, &m, fds, nfds);
		} else {
			for (i = 0; i < nfds; i++)
				close(fds[i]);
			if (n == 0)
				break;	/* the monitor closed it: cut off */
		}
	}
	for (guard = 0; c->rchan >= 0 && guard < 256; guard++) {
		struct ipcd_rmsg m;

		if (recv(c->rchan, &m, sizeof(m), MSG_DONTWAIT) != (ssize_t)sizeof(m))
			break;
		fx_val_add(m.key);	/* another host's process: an engine would answer it */
	}
	for (guard = 0; guard < 256; guard++) {
		ssize_t n = ipcd_spsc_recv(&c->rq.chan.resp, &resp, sizeof(resp));
		uint64_t v;

		if (n < 0)
			break;
		if (trace)
			dprintf(2, "fx: client in slot %u: answer to opcode %u: %d\n", c->slot,
				resp.opcode, resp.status);
		if (n != (ssize_t)sizeof(resp) || resp.status)
			continue;
		memcpy(&v, resp.body, 8);
		fx_val_add(v);
		fx_val_add((uint32_t)v);
		memcpy(&v, resp.body + 8, 8);
		fx_val_add(v);
	}
}

/* ---- registration ---------------------------------------------------------- */

/* As the preload's attach: map the welcome's regions and make a request client. */
static bool client_attach(struct fx_client *c, const int *fds)
{
	size_t sz;
	void *p;

	if (ipcd_region_map(fds[IPCD_CTL_FD_CLIENT], IPCD_REGION_CLIENT, &c->reg))
		return false;
	if (ipcd_region_map(fds[IPCD_CTL_FD_GLOBAL], IPCD_REGION_GLOBAL, &c->glob)) {
		close(fds[IPCD_CTL_FD_GLOBAL]);
		close(fds[IPCD_CTL_FD_WAKE]);
		return false;
	}
	c->rq.wake_fd = fds[IPCD_CTL_FD_WAKE];
	if (ipcd_reqq_chan_attach(&c->reg, &c->rq.chan))
		return false;
	p = ipcd_region_area(&c->glob, IPCD_AREA_GLOBAL_MPSC, &sz);
	if (p) {
		if (ipcd_mpsc_attach(&c->db, p, sz, 0))
			return false;
		c->rq.db = &c->db;
	}
	return true;
}

bool fx_connect(unsigned int i, uint32_t uid, uint16_t abi_minor)
{
	struct fx_client *c = &fx.c[i % FX_CLIENTS];
	struct ipcd_ctl_hello h = {
		.magic = IPCD_CTL_MAGIC,
		.abi_major = IPCD_SHM_ABI_MAJOR,
		.abi_minor = abi_minor,
		.kind = IPCD_CTL_CLIENT,
		.comm = "fuzz",
	};
	struct ipcd_ctl_welcome w;
	struct mon_pending *p = &mon.pending[0];
	unsigned int nfds, k;
	int sv[2], fds[8];
	ssize_t n;

	if (c->live)
		fx_hangup(c);
	client_forget(c);
	if (p->sock >= 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return false;
	/* control_accept(): the credentials are the kernel's (here: chosen). */
	p->sock = sv[0];
	p->cred.pid = getpid();
	p->cred.uid = uid;
	p->cred.gid = uid;
	p->since_ns = ipcd_now_ns();
	c->sock = sv[1];
	c->uid = uid;
	if (send(c->sock, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h))
		return false;
	control_pending_ready(0);
	n = recv_fds(c->sock, &w, sizeof(w), fds, &nfds);
	if (n != (ssize_t)sizeof(w) || w.status || nfds != IPCD_CTL_NFDS) {
		for (k = 0; k < nfds; k++)
			close(fds[k]);
		client_forget(c);
		return false;
	}
	c->live = true;
	c->slot = w.slot;
	fx_val_add(w.client_id);
	if (!client_attach(c, fds)) {
		fx_hangup(c);
		return false;
	}
	return true;
}

void fx_hangup(struct fx_client *c)
{
	client_forget(c);	/* the kernel closes a dead process's descriptors */
}

int fx_klisten(struct fx_client *c, uint8_t how)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (void *)&ss;
	struct sockaddr_in6 *in6 = (void *)&ss;
	socklen_t len;
	int fd, one = 1;
	uid_t was;

	if (!c->live)
		return -1;
	memset(&ss, 0, sizeof(ss));
	/* Its process made it: the socket's inode belongs to that user (the monitor checks). */
	was = (uid_t)setfsuid(c->uid);
	fd = socket(how & 1 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setfsuid(was);
	if (fd < 0)
		return -1;
	if (how & 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = how & 2 ? in6addr_any : in6addr_loopback;
		len = sizeof(*in6);
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	} else {
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(how & 2 ? INADDR_ANY : INADDR_LOOPBACK);
		len = sizeof(*in);
	}
	/* Port 0: the kernel's choice, never one another test of this machine uses. */
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 8) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len)) {
		close(fd);
		return -1;
	}
	fx_val_add((uint64_t)fd);
	fx_val_add(ntohs(how & 1 ? in6->sin6_port : in->sin_port));
	return fd;
}

int fx_submit(struct fx_client *c, struct ipcd_req *req)
{
	if (!c->live || !c->reg.base)
		return -ENOTCONN;
	req->cookie = ++c->rq.next_cookie;
	if (trace)
		dprintf(2, "fx: client in slot %u submits opcode %u, %u-byte body\n", c->slot,
			req->opcode, req->len);
	return ipcd_reqq_submit(&c->rq, req);
}

/* ---- the loop -------------------------------------------------------------- */

/*
 * main.c's handle_events() without waiting, for the monitor objects' events
 * only (the listening socket, signals and the wake eventfd are main.c's):
 * returns the events handled.
 */
static int events(void)
{
	struct epoll_event ev[32];
	int i, n, total = 0, round;

	for (round = 0; round < EVENT_ROUNDS; round++) {
		n = epoll_wait(mon.epfd, ev, (int)IPCD_ARRAY_SIZE(ev), 0);
		if (n <= 0)
			break;
		total += n;
		for (i = 0; i < n; i++)
			mon_object_event(ev[i].data.u64, ev[i].events);
		clients_reap_dead();
	}
	return total;
}

void fx_turn(void)
{
	unsigned int round, i;

	for (round = 0; round < TURNS; round++) {
		unsigned int n = ipcd_reqq_srv_poll(mon.srv, MON_REQ_BUDGET);
		int ev;

		clients_reap_dead();
		ipcd_store_relaxed(&mon.gctl->heartbeat, ++mon.ctr.loops);
		ipcd_reqq_srv_woken(mon.srv);
		if (cluster_backlogged())
			cluster_link_event();
		ev = events();
		for (i = 0; i < FX_CLIENTS; i++)
			if (fx.c[i].live)
				client_read(&fx.c[i]);
		if (!n && !ev)
			break;
	}
}

void fx_housekeep(void)
{
	static uint64_t later;

	/* Time passes for the monitor: hellos expire, orphans are looked at. */
	later += MON_HOUSEKEEP_NS;
	control_pending_expire(ipcd_now_ns() + later + MON_HELLO_TIMEOUT_NS);
	(void)conns_orphans_check(ipcd_now_ns() + later);
	(void)ipcd_reqq_srv_prepare_sleep(mon.srv);
	(void)cluster_tick();
	conns_refill();
}

void fx_admin(const struct ipcd_ctl_query *q)
{
	struct ipcd_ctl_hello h = {
		.magic = IPCD_CTL_MAGIC,
		.abi_major = IPCD_SHM_ABI_MAJOR,
		.abi_minor = IPCD_SHM_ABI_MINOR,
		.kind = IPCD_CTL_ADMIN,
		.comm = "ipcdctl",
	};
	struct mon_pending *p = &mon.pending[1];
	char buf[IPCD_CTL_CHUNK];
	unsigned int guard;
	int sv[2];

	/* Everything queued first, as the monitor does before an answer. */
	fx_turn();
	if (p->sock >= 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
				       sv))
		return;
	p->sock = sv[0];
	p->cred.pid = getpid();
	p->cred.uid = 0;
	p->cred.gid = 0;
	p->since_ns = ipcd_now_ns();
	if (send(sv[1], &h, sizeof(h), MSG_NOSIGNAL) == (ssize_t)sizeof(h) &&
	    send(sv[1], q, sizeof(*q), MSG_NOSIGNAL) == (ssize_t)sizeof(*q))
		control_pending_ready(1);
	for (guard = 0; guard < 4096; guard++)
		if (recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			break;
	close(sv[1]);
	if (p->sock >= 0)	/* the query never came whole: as a hello timeout */
		control_pending_expire(ipcd_now_ns() + 2 * MON_HELLO_TIMEOUT_NS);
}
