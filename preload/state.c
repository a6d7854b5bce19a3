/* SPDX-License-Identifier: MIT */
/*
 * state.c - this process's one registration with the monitor.
 *
 * NONE -> (first socket(AF_INET/AF_INET6, SOCK_STREAM)) -> ATTACHED or FAILED.
 * FAILED prints one line on stderr ("ipcd: no monitor at ... : using the
 * kernel", unless IPCD_QUIET=1) and is final for the process and its forked
 * children (a prefork server does not print one line per worker).
 *
 * fork: the child must not keep the parent's registration. The atfork child
 * handler closes its copies of the control socket and the other attach fds
 * (the parent still holds the socket, so the monitor sees exactly the
 * parent's lifetime) and unmaps; the child attaches again on its next TCP
 * socket().
 *
 * Programs that close every fd, or dup2 over ours: the attach fds are
 * remembered by identity (st_dev, st_ino) at attach time. Before we close
 * one, fd_is_ours() compares; a mismatch (EBADF or another file) marks the
 * registration LOST and we never close or write that fd again — it belongs
 * to the application. The mappings stay valid (mmap does not need the fd).
 * Every use of the control socket goes through ipcd_state_get(), which
 * re-checks its identity first (ipcd_mon_call, ipcd_mon_post).
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <poll.h>

#include <ipcd/proto.h>
#include <ipcd/wait.h>

#include "attach.h"
#include "interpose.h"
#include "sock.h"

enum { ST_NONE, ST_ATTACHED, ST_FAILED, ST_LOST };

struct fd_id {
	dev_t dev;
	ino_t ino;
};

static atomic_int state = ST_NONE;
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
/* Serialises requests and the descriptors that come with their answers. */
static pthread_mutex_t call_mu = PTHREAD_MUTEX_INITIALIZER;
uint64_t ipcd_spin_ns = 20000;
static struct ipcd_attach att;
static struct fd_id id_sock, id_wake, id_client, id_global;

/*
 * The one KITS allowed in flight without a caller waiting for it
 * (ipcd_mon_kits_post). Whichever call reads its answer or its kits' CONN_FD
 * messages first (they are interleaved with other calls' on the response
 * ring and the control socket) sets them aside here, under call_mu, until
 * ipcd_mon_kits_collect takes them.
 */
static struct {
	uint64_t cookie;		/* 0: none in flight */
	uint32_t lane_id;
	bool answered;
	struct ipcd_resp resp;
	unsigned int n;			/* kits set aside, in lane order */
	struct ipcd_kit kits[IPCD_KITS_MAX];
} ak;

/*
 * The monitor let a call time out while it still held our socket (stopped,
 * or swamped): until it answers anything again, a call waits for that answer
 * at most STALL_WAIT_NS and then uses the kernel without asking (call_mu).
 */
static bool stalled;

static void close_raw(int fd);

/* Forget the KITS in flight (call_mu held, or a fork child): its kits are closed. */
static void ak_forget(void)
{
	unsigned int i, j;

	for (i = 0; i < ak.n; i++)
		for (j = 0; j < IPCD_CTL_CONN_NFDS; j++)
			if (ak.kits[i].fds[j] >= 0)
				close_raw(ak.kits[i].fds[j]);
	memset(&ak, 0, sizeof(ak));
}

static void fd_remember(int fd, struct fd_id *id)
{
	struct stat st;

	if (fd >= 0 && fstat(fd, &st) == 0) {
		id->dev = st.st_dev;
		id->ino = st.st_ino;
	} else {
		id->dev = 0;
		id->ino = 0;
	}
}

static bool fd_is_ours(int fd, const struct fd_id *id)
{
	struct stat st;

	if (fd < 0 || (!id->dev && !id->ino))
		return false;
	return fstat(fd, &st) == 0 && st.st_dev == id->dev && st.st_ino == id->ino;
}

static void state_fds_hide(bool on);

/* Raw close: no wrapper, no errno change that matters (callers save errno). */
static void close_raw(int fd)
{
	syscall(SYS_close, fd);
}

/*
 * The environment as the program was started with it: a server may clear
 * its workers' environment (nginx does) after we loaded, and they must
 * still find the monitor their master uses.
 */
static char env_path[108];
static bool env_quiet;
static bool env_pipes = true;
static bool env_loaded;

void ipcd_state_load_env(void)
{
	env_loaded = true;
	const char *v = getenv(IPCD_CTL_ENV_PATH);

	if (v && *v && strlen(v) < sizeof(env_path))
		memcpy(env_path, v, strlen(v) + 1);
	v = getenv("IPCD_SPIN_US");
	if (v && *v)
		ipcd_spin_ns = strtoull(v, NULL, 10) * 1000;
	v = getenv("IPCD_QUIET");
	env_quiet = v && strcmp(v, "1") == 0;
	v = getenv("IPCD_PIPES");
	env_pipes = !(v && strcmp(v, "0") == 0);
}

bool ipcd_quiet(void)
{
	return env_quiet;
}

bool ipcd_pipes_enabled(void)
{
	return env_pipes;
}

void ipcd_state_hidden_fds(struct ipcd_fdset *h)
{
	int fds[4] = { -1, -1, -1, -1 };
	unsigned int i;

	pthread_mutex_lock(&state_mu);
	if (atomic_load_explicit(&state, memory_order_acquire) == ST_ATTACHED) {
		fds[0] = att.sock;
		fds[1] = att.wake_fd;
		fds[2] = att.client_reg.fd;
		fds[3] = att.global_reg.fd;
	}
	pthread_mutex_unlock(&state_mu);
	for (i = 0; i < 4; i++)
		if (fds[i] >= 0 && h->n < h->max)
			h->fds[h->n++] = fds[i];
}

/*
 * Register with the monitor. @quiet (a pipe's need): no warning line and no
 * verdict if there is no monitor: pipes stay the kernel's, and the process's
 * next TCP socket still tries and says so. Shell scripts make pipes in every
 * process; the one line goes to programs that use the network. A process
 * that found no monitor (ST_FAILED, or a quiet try) tries again at its next
 * need once a delay has passed: 50 ms after the first miss, doubling up to
 * 2 s. A monitor restarted after a gap serves it again, and a process with
 * no monitor pays one failed registration per delay, never more.
 */
#define ATTACH_RETRY_NS		50000000ull	/* 50 ms */
#define ATTACH_RETRY_MAX_NS	2000000000ull	/* 2 s */

static void attach(bool quiet)
{
	static _Atomic uint64_t quiet_at, failed_at;	/* when those tries found none; 0: never */
	static _Atomic uint64_t retry_ns = ATTACH_RETRY_NS;	/* the delay, doubled per miss */
	static bool said;				/* the "using the kernel" line, once */
	char why[256], line[320];
	uint64_t now = 0;
	int saved, rc, st = atomic_load_explicit(&state, memory_order_acquire);

	if (st == ST_FAILED || (quiet && atomic_load(&quiet_at))) {
		now = ipcd_now_ns();
		if (st == ST_FAILED && now - atomic_load(&failed_at) < atomic_load(&retry_ns))
			return;
		if (quiet && now - atomic_load(&quiet_at) < atomic_load(&retry_ns))
			return;
		if (st == ST_FAILED) {
			int f = ST_FAILED;

			atomic_store(&failed_at, now);	/* one thread tries; the others wait */
			atomic_compare_exchange_strong(&state, &f, ST_NONE);
		}
	} else if (st != ST_NONE) {
		return;
	}

	saved = errno;
	ipcd_inside++;
	pthread_mutex_lock(&state_mu);
	if (!env_loaded)
		ipcd_state_load_env();	/* a socket() from a constructor that ran before ours */
	if (atomic_load_explicit(&state, memory_order_relaxed) == ST_NONE) {
		why[0] = '\0';
		rc = ipcd_attach(env_path[0] ? env_path : NULL, NULL, &att, why, sizeof(why));
		if (rc == 0) {
			fd_remember(att.sock, &id_sock);
			fd_remember(att.wake_fd, &id_wake);
			fd_remember(att.client_reg.fd, &id_client);
			fd_remember(att.global_reg.fd, &id_global);
			state_fds_hide(true);
			atomic_store(&retry_ns, ATTACH_RETRY_NS);
			atomic_store_explicit(&state, ST_ATTACHED, memory_order_release);
		} else if (quiet) {
			atomic_store(&quiet_at, ipcd_now_ns() | 1);
			if (atomic_load(&retry_ns) < ATTACH_RETRY_MAX_NS)
				atomic_store(&retry_ns, atomic_load(&retry_ns) * 2);
		} else {
			if (!env_quiet && !said) {
				snprintf(line, sizeof(line), "ipcd: %s: using the kernel\n",
					 why[0] ? why : strerror(-rc));
				ipcd_log_raw(line);
				said = true;
			}
			atomic_store(&failed_at, ipcd_now_ns());
			if (atomic_load(&retry_ns) < ATTACH_RETRY_MAX_NS)
				atomic_store(&retry_ns, atomic_load(&retry_ns) * 2);
			atomic_store_explicit(&state, ST_FAILED, memory_order_release);
		}
	}
	pthread_mutex_unlock(&state_mu);
	ipcd_inside--;
	errno = saved;
}

void ipcd_state_on_socket(int domain, int type)
{
	if ((domain == AF_INET || domain == AF_INET6) &&
	    (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) == SOCK_STREAM)
		attach(false);
}

bool ipcd_state_attach_quiet(void)
{
	attach(true);
	return atomic_load_explicit(&state, memory_order_acquire) == ST_ATTACHED;
}

/**
 * ipcd_state_get - the registration, or NULL (none, failed, or lost because
 * the application closed or replaced its control socket).
 */
struct ipcd_attach *ipcd_state_get(void)
{
	int saved;

	if (atomic_load_explicit(&state, memory_order_acquire) != ST_ATTACHED)
		return NULL;
	saved = errno;
	if (!fd_is_ours(att.sock, &id_sock)) {
		atomic_store_explicit(&state, ST_LOST, memory_order_release);
		errno = saved;
		return NULL;
	}
	errno = saved;
	return &att;
}

/*
 * The registration's fds are the library's, not the application's
 * (attach.h): a close() of one fails with EBADF, a dup2() onto one moves
 * it first (ipcd_state_fd_relocate), as for a connection's.
 */
static void state_fds_hide(bool on)
{
	ipcd_fd_hide(att.sock, on);
	ipcd_fd_hide(att.wake_fd, on);
	ipcd_fd_hide(att.client_reg.fd, on);
	ipcd_fd_hide(att.global_reg.fd, on);
}

bool ipcd_state_fd(int fd)
{
	bool r;

	pthread_mutex_lock(&state_mu);
	r = fd >= 0 && atomic_load_explicit(&state, memory_order_relaxed) == ST_ATTACHED &&
	    (fd == att.sock || fd == att.wake_fd || fd == att.client_reg.fd ||
	     fd == att.global_reg.fd);
	pthread_mutex_unlock(&state_mu);
	return r;
}

bool ipcd_state_fd_relocate(int fd)
{
	int *f[] = { &att.sock, &att.wake_fd, &att.client_reg.fd, &att.global_reg.fd };
	unsigned int i;
	bool moved = false;
	int nfd;

	/* No monitor call in flight uses the old number meanwhile. */
	pthread_mutex_lock(&call_mu);
	pthread_mutex_lock(&state_mu);
	for (i = 0; i < IPCD_ARRAY_SIZE(f); i++) {
		if (*f[i] != fd || atomic_load_explicit(&state, memory_order_relaxed) != ST_ATTACHED)
			continue;
		nfd = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 0);
		if (nfd < 0)
			break;
		*f[i] = nfd;	/* the same file: its identity (fd_is_ours) holds */
		if (att.cl.wake_fd == fd)
			att.cl.wake_fd = nfd;	/* the request queue's doorbell copy */
		ipcd_fd_hide(nfd, true);
		ipcd_fd_hide(fd, false);
		moved = true;
	}
	pthread_mutex_unlock(&state_mu);
	pthread_mutex_unlock(&call_mu);
	return moved;
}

/* Forget @a's fds that are no longer ours (before ipcd_region_close/close). */
static void drop_foreign_fds(void)
{
	if (!fd_is_ours(att.client_reg.fd, &id_client))
		att.client_reg.fd = -1;
	if (!fd_is_ours(att.global_reg.fd, &id_global))
		att.global_reg.fd = -1;
}

/*
 * Unmap and close what this process holds of its registration (never an fd
 * the application has since reused) and go back to NONE: the next TCP
 * socket() or monitor call registers again. state_mu is held.
 */
/*
 * The regions of registrations we forgot, still mapped: a thread outside
 * call_mu (a connect() reading its settings, ipcd_remote_wanted and
 * ipcd_limit_errno) may hold a pointer into them while another forgets the
 * registration. Their descriptors are closed; the mappings go only when
 * RETIRED_MAX later registrations have been forgotten too.
 */
#define RETIRED_MAX	4

static void retire_region(struct ipcd_region *reg)
{
	static struct { void *base; size_t size; } retired[RETIRED_MAX];
	static unsigned int next;

	if (!reg->base)
		return;		/* never mapped: the fd is not ours (ipcd_region_close) */
	if (retired[next].base)
		munmap(retired[next].base, retired[next].size);
	retired[next].base = reg->base;
	retired[next].size = reg->size;
	next = (next + 1) % RETIRED_MAX;
	if (reg->fd >= 0)
		close_raw(reg->fd);
	memset(reg, 0, sizeof(*reg));
	reg->fd = -1;
}

/*
 * @fork_child: in a fork child (one thread), the parent's regions are
 * unmapped at once: code that runs in the child (privileges dropped, no
 * exec) must not keep a way to write the parent's requests.
 */
static void forget_registration(bool fork_child)
{
	state_fds_hide(false);
	drop_foreign_fds();
	if (fork_child) {
		ipcd_region_close(&att.client_reg);
		ipcd_region_close(&att.global_reg);
	} else {
		retire_region(&att.client_reg);
		retire_region(&att.global_reg);
	}
	if (fd_is_ours(att.wake_fd, &id_wake))
		close_raw(att.wake_fd);
	if (fd_is_ours(att.sock, &id_sock))
		close_raw(att.sock);
	memset(&att, 0, sizeof(att));
	att.sock = -1;
	att.wake_fd = -1;
	ak_forget();
	stalled = false;
	atomic_store_explicit(&state, ST_NONE, memory_order_release);
}

void ipcd_state_atfork_prepare(void)
{
	/*
	 * Before any lock (it calls the monitor): listeners leave their lanes
	 * and connection ends get hold tokens, for fork() and for libc's own
	 * forks alike (daemon()).
	 */
	ipcd_socks_before_fork();
	ipcd_lanes_fork_prepare();	/* before call_mu: a kit refill holds both */
	pthread_mutex_lock(&call_mu);
	pthread_mutex_lock(&state_mu);
	ipcd_socks_lock();
	/*
	 * The child holds every end. A fork that fails after this is counted
	 * back by our fork() wrapper; libc's own forks cannot be, and leave a
	 * count one too high: the hold token still ends the connection.
	 */
	ipcd_socks_hold_all(+1);
	ipcd_ep_fork_prepare();
}

void ipcd_state_atfork_parent(void)
{
	ipcd_ep_fork_parent();
	ipcd_socks_unlock();
	pthread_mutex_unlock(&state_mu);
	pthread_mutex_unlock(&call_mu);
	ipcd_lanes_fork_parent();
}

void ipcd_state_atfork_child(void)
{
	int saved = errno, st;

	ipcd_inside++;
	ipcd_self_pid = (pid_t)syscall(SYS_getpid);
	ipcd_ep_fork_child();
	ipcd_remote_atfork_child();
	ipcd_socks_unlock();
	st = atomic_load_explicit(&state, memory_order_relaxed);
	if (st == ST_ATTACHED || st == ST_LOST)
		forget_registration(true);
	/* ST_FAILED stays: the monitor was absent for the parent; one line is enough. */
	pthread_mutex_unlock(&state_mu);	/* locked by prepare in the parent */
	pthread_mutex_unlock(&call_mu);
	ak_forget();			/* the parent's, on a socket this child no longer has */
	ipcd_mcache_atfork_child();
	ipcd_lanes_fork_child();
	ipcd_exec_atfork_child();
	ipcd_inside--;
	errno = saved;
}

/* ---- requests ------------------------------------------------------------ */

#define CALL_TIMEOUT_NS	5000000000ll	/* a monitor that does not answer is gone */
/*
 * Once a call has timed out (stalled), how long a later one waits for the
 * monitor to answer something before it uses the kernel: a stopped monitor
 * costs each connect() this, not CALL_TIMEOUT_NS, and the request ring does
 * not fill with calls nobody reads and their CANCELs.
 */
#define STALL_WAIT_NS	100000000ll
#define DEAD_CHECK_NS	10000000ll	/* how often a waiting call looks for its EOF */
#define POST_WAIT_NS	100000000ll	/* how long a post waits for room in a full ring */
/*
 * An awake monitor answers in about a microsecond; a longer spin only keeps
 * the CPU from the processes the answer is for (on few cores, the monitor
 * and the peer we are connecting to may be waiting for it).
 */
#define MON_SPIN_NS	3000u

/* The monitor closed our control socket (it died or cut us off). */
static bool monitor_gone(void)
{
	struct pollfd p = { .fd = att.sock, .events = POLLIN };
	char b;

	if (ipcd_real.poll(&p, 1, 0) <= 0)
		return false;
	if (p.revents & (POLLHUP | POLLERR))
		return true;
	/* POLLIN: a message (fine) or EOF. */
	return recv(att.sock, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/*
 * Forget the registration (call_mu held): new sockets use the kernel until
 * the next socket() finds a monitor again. Established connections are peer
 * to peer and keep working; the mappings stay.
 */
static void detach_locked(const char *why)
{
	char line[160];

	pthread_mutex_lock(&state_mu);
	if (atomic_load_explicit(&state, memory_order_relaxed) == ST_ATTACHED) {
		if (!env_quiet) {
			snprintf(line, sizeof(line),
				 "ipcd: the monitor is gone (%s): new connections use the kernel\n",
				 why);
			ipcd_log_raw(line);
		}
		forget_registration(false);
	}
	pthread_mutex_unlock(&state_mu);
}

/* One answer from the response ring; the posted KITS's is set aside (call_mu held). */
static ssize_t resp_recv(struct ipcd_resp *r)
{
	for (;;) {
		ssize_t n = ipcd_spsc_recv(&att.cl.chan.resp, r, sizeof(*r));

		if (n == (ssize_t)sizeof(*r))
			stalled = false;	/* it answers again */
		if (n != (ssize_t)sizeof(*r) || !ak.cookie || r->cookie != ak.cookie)
			return n;
		ak.resp = *r;
		ak.answered = true;
	}
}

/*
 * One message from the control socket, as ipcd_attach_recv_msg; the posted
 * KITS's kits are set aside, and 1 returned (call_mu held).
 */
static int ctl_recv(struct ipcd_ctl_msg *m, int *fds, int timeout_ms)
{
	unsigned int i;
	int rc = ipcd_attach_recv_msg(&att, m, fds, timeout_ms);

	if (rc || m->type != IPCD_CTL_CONN_FD || !ak.cookie || m->lane_id != ak.lane_id)
		return rc;
	if (ak.n < IPCD_KITS_MAX) {
		struct ipcd_kit *k = &ak.kits[ak.n++];

		k->conn_id = m->conn_id;
		k->size = m->region_size;
		memcpy(k->fds, fds, sizeof(k->fds));
	} else {
		for (i = 0; i < IPCD_CTL_CONN_NFDS; i++)
			close_raw(fds[i]);	/* more than it asked for: cannot happen */
	}
	for (i = 0; i < IPCD_CTL_CONN_NFDS; i++)
		fds[i] = -1;
	return 1;
}

/*
 * A call failed with @rc on the monitor's side (call_mu held): let it go,
 * unless it is only slow. A monitor that did not answer in time but still
 * holds our socket keeps us: this call goes to the kernel and the next one
 * asks again. Detaching would close the socket, and the monitor would take
 * that for our death and end our connections (chaos bug 4). What it answers
 * late is dropped as it comes (the answer by its cookie, fds by take_fds):
 * a connection it made for this call then has no end here, and its peer
 * sees it closed (the life socket, or at our exit).
 */
static int submit_locked(struct ipcd_req *req, bool lazy, uint64_t deadline);
static uint64_t timed_out;	/* the cookie of the call that timed out (call_mu) */

static int call_failed(int rc)
{
	static atomic_bool told;
	uint64_t cookie = timed_out;

	timed_out = 0;
	if (rc == -ETIMEDOUT && !cookie && stalled && !monitor_gone())
		return -ETIMEDOUT;	/* not asked (call_locked): still stalled */
	/* A monitor before 3.7 cannot undo a late answer: let it go, as before. */
	if (rc == -ETIMEDOUT && cookie && att.welcome.abi_minor >= 7 && !monitor_gone()) {
		/*
		 * Whatever the late answer makes is undone (proto.h CANCEL):
		 * this call goes to the kernel, and a listener must not get a
		 * connection its connector never had.
		 */
		struct ipcd_req cr = { .opcode = IPCD_OP_CANCEL };
		struct ipcd_cancel_req *cq = (void *)cr.body;

		cr.len = sizeof(*cq);
		cq->cookie = cookie;
		stalled = true;		/* its answer, or the late one, ends it */
		(void)submit_locked(&cr, false, ipcd_deadline(POST_WAIT_NS));
		if (!env_quiet && !atomic_exchange(&told, true))
			ipcd_log_raw("ipcd: the monitor did not answer within 5 s: that call used "
				     "the kernel, and later ones do until it answers again; still "
				     "registered (said once)\n");
		return -ETIMEDOUT;
	}
	detach_locked(rc == -EPROTO ? "protocol error" : "no answer, or it closed our socket");
	return -ECONNRESET;
}

/* Drop answers nobody waits for (posted requests), so the ring never fills. */
static void drain_stale(void)
{
	struct ipcd_resp r;

	while (resp_recv(&r) == (ssize_t)sizeof(r))
		;
}

/*
 * The descriptors sent before a successful answer to @req; a lane's end
 * (IPCD_CTL_LANE_FD) that comes first goes to @lane, or is closed.
 */
static int take_fds(const struct ipcd_req *req, const struct ipcd_resp *resp, int *fds,
		    uint64_t *aux, struct ipcd_mon_lane *lane)
{
	uint16_t want = req->opcode == IPCD_OP_LISTEN ? IPCD_CTL_LISTEN_FD
			: req->opcode == IPCD_OP_HOLD || req->opcode == IPCD_OP_ULISTEN ?
				IPCD_CTL_HOLD_FD
			: req->opcode == IPCD_OP_REGION ? IPCD_CTL_REGION_FD
			: req->opcode == IPCD_OP_RATTACH ? IPCD_CTL_RCHAN_FD : IPCD_CTL_CONN_FD;
	uint64_t conn_id = 0;
	uint32_t bind_id = 0;
	struct ipcd_ctl_msg m;
	unsigned int i;
	int rc;

	if (req->opcode == IPCD_OP_LISTEN)
		memcpy(&bind_id, req->body, sizeof(bind_id));
	else if (req->opcode == IPCD_OP_HOLD || req->opcode == IPCD_OP_REGION ||
		 req->opcode == IPCD_OP_ULISTEN)
		memcpy(&conn_id, req->body, sizeof(conn_id));	/* ULISTEN: the key */
	else if (req->opcode != IPCD_OP_RATTACH)
		memcpy(&conn_id, resp->body, sizeof(conn_id));
	for (;;) {
		/* Sent before the answer: already queued, unless the monitor misbehaves. */
		rc = ctl_recv(&m, fds, 1000);
		if (rc > 0)
			continue;	/* a posted KITS's kit */
		if (rc)
			return rc;
		if (m.type == want && (want == IPCD_CTL_LISTEN_FD ? m.bind_id == bind_id
								  : m.conn_id == conn_id)) {
			if (aux)
				*aux = want == IPCD_CTL_LISTEN_FD ? m.conn_id : m.region_size;
			return 0;
		}
		if (m.type == IPCD_CTL_LANE_FD && lane && lane->fd < 0) {
			lane->fd = fds[0];
			lane->id = (uint32_t)m.conn_id;
			lane->bind_id = m.bind_id;
			lane->key = m.region_size;	/* the listener's only: its kits' tag key */
			lane->key2 = m.lane_id;
			fds[0] = -1;
			continue;
		}
		/* Left over from a call that gave up: not ours to keep. */
		for (i = 0; i < IPCD_CTL_CONN_NFDS; i++)
			if (fds[i] >= 0)
				close_raw(fds[i]);
	}
}

/*
 * Queue @req (call_mu held), waiting while the ring is full: the monitor
 * was woken when it passed half full, so room comes unless it is gone.
 */
static int submit_locked(struct ipcd_req *req, bool lazy, uint64_t deadline)
{
	int rc;

	drain_stale();
	req->cookie = ++att.cl.next_cookie;
	for (;;) {
		rc = lazy ? ipcd_reqq_submit_lazy(&att.cl, req) : ipcd_reqq_submit(&att.cl, req);
		if (rc != -EAGAIN)
			return rc;
		if (ipcd_remaining(deadline) == 0 || monitor_gone())
			return -ETIMEDOUT;
		drain_stale();
		ipcd_spsc_wait_writable(&att.cl.chan.req, sizeof(*req), MON_SPIN_NS, DEAD_CHECK_NS);
	}
}

/* Send @req and wait for its answer (call_mu held). */
static int call_locked(struct ipcd_req *req, struct ipcd_resp *resp)
{
	uint64_t deadline = ipcd_deadline(CALL_TIMEOUT_NS);
	int rc;

	/*
	 * Not a UCLAIM: its caller has taken the kernel connection from the
	 * backlog already, and only the monitor can tell it which one that is.
	 */
	if (stalled && req->opcode != IPCD_OP_UCLAIM) {
		uint64_t until = ipcd_deadline(STALL_WAIT_NS);

		for (drain_stale(); stalled; drain_stale()) {
			if (ipcd_remaining(until) == 0 || monitor_gone())
				return -ETIMEDOUT;	/* nothing asked: nothing to cancel */
			ipcd_spsc_wait_readable(&att.cl.chan.resp, MON_SPIN_NS, DEAD_CHECK_NS);
		}
	}
	rc = submit_locked(req, false, deadline);
	if (rc)
		return rc;
	for (;;) {
		ssize_t n = resp_recv(resp);

		if (n == (ssize_t)sizeof(*resp) && resp->cookie == req->cookie)
			return 0;
		if (n >= 0)
			continue;	/* an answer to a posted request */
		if (n != -EAGAIN)
			return (int)n;
		if (ipcd_remaining(deadline) == 0 || monitor_gone()) {
			timed_out = req->cookie;
			return -ETIMEDOUT;
		}
		/* EINTR is not the application's business here: keep waiting. */
		ipcd_spsc_wait_readable(&att.cl.chan.resp, MON_SPIN_NS, DEAD_CHECK_NS);
	}
}

uint64_t ipcd_state_monitor_id(void)
{
	/* W: the monitor; a process of its shared mode could rewrite it: a hint. */
	if (atomic_load_explicit(&state, memory_order_acquire) != ST_ATTACHED || !att.gctl)
		return 0;
	return ipcd_load_relaxed(&att.gctl->start_ns) | 1;
}

bool ipcd_state_monitor_alive(uint64_t id)
{
	bool alive;

	if (!id)
		return true;	/* not known (an end an exec handed over) */
	/* A fork child, or a process that met a dead monitor: registered (again) first. */
	if (!ipcd_state_monitor_id())
		(void)ipcd_state_attach_quiet();
	if (ipcd_state_monitor_id() != id)
		return false;
	if (pthread_mutex_trylock(&call_mu))
		return true;		/* a call is under way: it will find out */
	alive = ipcd_state_get() && !monitor_gone();
	pthread_mutex_unlock(&call_mu);
	return alive;
}

uint16_t ipcd_listen_req_len(void)
{
	struct ipcd_attach *a = ipcd_state_get();

	return a && a->welcome.abi_minor < 6 ? IPCD_LISTEN_REQ_V35
					     : (uint16_t)sizeof(struct ipcd_listen_req);
}

int ipcd_limit_errno(int32_t status)
{
	struct ipcd_client_ctl *ctl;
	struct ipcd_attach *a;

	if (status != -EMFILE && status != -ENOBUFS && status != -EDQUOT)
		return 0;
	a = ipcd_state_get();
	ctl = a ? a->cl.chan.ctl : NULL;	/* NULL once forgotten, still mapped if read before */
	if (!ctl || ipcd_load_relaxed(&ctl->limit_action) != IPCD_LIMIT_ERROR)
		return 0;
	return status == -EDQUOT ? ECONNREFUSED : -status;
}

int ipcd_mon_call(struct ipcd_req *req, struct ipcd_resp *resp, int *fds, uint64_t *aux)
{
	return ipcd_mon_call_lane(req, resp, fds, aux, NULL);
}

int ipcd_mon_call_lane(struct ipcd_req *req, struct ipcd_resp *resp, int *fds, uint64_t *aux,
		       struct ipcd_mon_lane *lane)
{
	unsigned int i;
	int rc;

	if (lane) {
		lane->fd = -1;
		lane->key = 0;
		lane->key2 = 0;
	}
	if (fds)
		for (i = 0; i < IPCD_CTL_CONN_NFDS; i++)
			fds[i] = -1;
	/* A forked child registers on its first need (socket() or this). */
	if (atomic_load_explicit(&state, memory_order_acquire) == ST_NONE)
		ipcd_state_on_socket(AF_INET, SOCK_STREAM);
	pthread_mutex_lock(&call_mu);
	ipcd_inside++;
	if (!ipcd_state_get()) {
		rc = -ENOTCONN;
		goto out;
	}
	rc = call_locked(req, resp);
	if (rc)
		goto gone;
	if (resp->status == 0 && fds &&
	    (req->opcode == IPCD_OP_CONNECT || req->opcode == IPCD_OP_ACCEPT ||
	     req->opcode == IPCD_OP_LISTEN || req->opcode == IPCD_OP_HOLD ||
	     req->opcode == IPCD_OP_REGION || req->opcode == IPCD_OP_PAIR ||
	     req->opcode == IPCD_OP_UCONNECT || req->opcode == IPCD_OP_UCLAIM ||
	     req->opcode == IPCD_OP_ULISTEN || req->opcode == IPCD_OP_RATTACH)) {
		rc = take_fds(req, resp, fds, aux, lane);
		/* LISTEN of a bind already listening sends no new fd. */
		if (rc == -ETIMEDOUT && req->opcode == IPCD_OP_LISTEN)
			rc = 0;
		else if (rc)
			goto gone;
	}
	goto out;
gone:
	rc = call_failed(rc);
out:
	ipcd_inside--;
	pthread_mutex_unlock(&call_mu);
	return rc;
}

/* HOLD or REGION (@opcode) for @end (IPCD_CLOSE_A/B, IPCD_HOLD_LISTENER) of @id: fd or -errno. */
static int end_fd_call(uint16_t opcode, uint64_t id, uint32_t end, uint64_t *size)
{
	struct ipcd_req req = { .opcode = opcode };
	struct ipcd_hold_req *hr = (void *)req.body;
	struct ipcd_resp resp;
	int fds[IPCD_CTL_CONN_NFDS];
	int rc;

	req.len = sizeof(*hr);
	hr->conn_id = id;
	hr->end = end;
	rc = ipcd_mon_call(&req, &resp, fds, size);
	if (rc)
		return rc;
	if (resp.status)
		return resp.status;
	return fds[0] >= 0 ? fds[0] : -EPROTO;
}

int ipcd_mon_hold(uint64_t id, uint32_t end)
{
	return end_fd_call(IPCD_OP_HOLD, id, end, NULL);
}

int ipcd_mon_region(uint64_t conn_id, bool b_side, uint64_t *size)
{
	return end_fd_call(IPCD_OP_REGION, conn_id, b_side ? IPCD_CLOSE_B : IPCD_CLOSE_A, size);
}

int ipcd_mon_kits(uint32_t lane_id, struct ipcd_kit *kits, unsigned int max)
{
	struct ipcd_req req = { .opcode = IPCD_OP_KITS };
	struct ipcd_kits_req *kr = (void *)req.body;
	struct ipcd_kits_resp kresp;
	struct ipcd_resp resp;
	struct ipcd_ctl_msg m;
	unsigned int got = 0, i;
	int rc;

	req.len = sizeof(*kr);
	kr->lane_id = lane_id;
	kr->count = IPCD_MIN(max, (unsigned int)IPCD_KITS_MAX);
	pthread_mutex_lock(&call_mu);
	ipcd_inside++;
	if (!ipcd_state_get()) {
		rc = -ENOTCONN;
		goto out;
	}
	rc = call_locked(&req, &resp);
	if (rc)
		goto gone;
	rc = resp.status;
	if (rc)
		goto out;
	memcpy(&kresp, resp.body, sizeof(kresp));
	if (kresp.count > kr->count) {
		rc = -EPROTO;
		goto gone;
	}
	/* Each kit's CONN_FD came before the answer, in lane order. */
	while (got < kresp.count) {
		struct ipcd_kit *k = &kits[got];

		rc = ctl_recv(&m, k->fds, 1000);
		if (rc > 0)
			continue;	/* the posted KITS's (another lane's) */
		if (rc)
			goto gone;
		if (m.type != IPCD_CTL_CONN_FD) {
			for (i = 0; i < IPCD_CTL_CONN_NFDS; i++)
				if (k->fds[i] >= 0)
					close_raw(k->fds[i]);
			continue;	/* left over from a call that gave up */
		}
		k->conn_id = m.conn_id;
		k->size = m.region_size;
		k->seq = kresp.first_seq + got;
		got++;
	}
	rc = (int)got;
	goto out;
gone:
	for (i = 0; i < got; i++)
		for (unsigned int j = 0; j < IPCD_CTL_CONN_NFDS; j++)
			close_raw(kits[i].fds[j]);
	rc = call_failed(rc);
out:
	ipcd_inside--;
	pthread_mutex_unlock(&call_mu);
	return rc;
}

int ipcd_mon_kits_post(uint32_t lane_id, unsigned int count)
{
	struct ipcd_req req = { .opcode = IPCD_OP_KITS };
	struct ipcd_kits_req *kr = (void *)req.body;
	int rc;

	req.len = sizeof(*kr);
	kr->lane_id = lane_id;
	kr->count = IPCD_MIN(count, (unsigned int)IPCD_KITS_MAX);
	if (!kr->count)
		return -EINVAL;
	pthread_mutex_lock(&call_mu);
	ipcd_inside++;
	if (!ipcd_state_get()) {
		rc = -ENOTCONN;
	} else if (ak.cookie) {
		rc = -EBUSY;
	} else {
		rc = submit_locked(&req, false, ipcd_deadline(POST_WAIT_NS));
		if (!rc) {
			ak.cookie = req.cookie;
			ak.lane_id = lane_id;
		}
	}
	ipcd_inside--;
	pthread_mutex_unlock(&call_mu);
	return rc;
}

int ipcd_mon_kits_collect(uint32_t lane_id, struct ipcd_kit *kits, unsigned int max, bool wait)
{
	uint64_t deadline;
	int fds[IPCD_CTL_CONN_NFDS];
	struct ipcd_kits_resp kresp;
	struct ipcd_ctl_msg m;
	struct ipcd_resp r;
	unsigned int i, j;
	ssize_t n = -EAGAIN;
	int rc;

	pthread_mutex_lock(&call_mu);
	ipcd_inside++;
	if (!ak.cookie || ak.lane_id != lane_id) {
		rc = -ENOENT;		/* forgotten: a fork, or the monitor left us */
		goto out;
	}
	if (!ipcd_state_get()) {
		ak_forget();
		rc = -ENOTCONN;
		goto out;
	}
	deadline = ipcd_deadline(stalled ? STALL_WAIT_NS : CALL_TIMEOUT_NS);
	for (;;) {
		while (!ak.answered && (n = resp_recv(&r)) >= 0)
			;		/* other answers: posted requests' */
		if (ak.answered)
			break;
		if (n != -EAGAIN) {
			rc = (int)n;
			goto gone;
		}
		if (!wait) {
			rc = 0;
			goto out;
		}
		if (monitor_gone()) {
			rc = -ETIMEDOUT;
			goto gone;
		}
		if (ipcd_remaining(deadline) == 0) {
			/*
			 * A monitor that holds our socket but does not answer:
			 * as a call's time-out (call_failed), not a detach. Its
			 * late kits are closed as they come (take_fds).
			 */
			ak_forget();
			stalled = true;
			rc = -ETIMEDOUT;
			goto out;
		}
		ipcd_spsc_wait_readable(&att.cl.chan.resp, MON_SPIN_NS, DEAD_CHECK_NS);
	}
	rc = ak.resp.status;
	if (rc) {
		ak_forget();		/* a refusal sends no kit */
		goto out;
	}
	memcpy(&kresp, ak.resp.body, sizeof(kresp));
	if (kresp.count > IPCD_KITS_MAX || kresp.count > max || ak.n > kresp.count) {
		rc = -EPROTO;
		goto gone;
	}
	/* Each kit's CONN_FD came before the answer, in lane order. */
	while (ak.n < kresp.count) {
		rc = ctl_recv(&m, fds, 1000);
		if (rc > 0)
			continue;
		if (rc)
			goto gone;
		for (j = 0; j < IPCD_CTL_CONN_NFDS; j++)
			if (fds[j] >= 0)
				close_raw(fds[j]);	/* left over from a call that gave up */
	}
	for (i = 0; i < kresp.count; i++) {
		kits[i] = ak.kits[i];
		kits[i].seq = kresp.first_seq + i;
	}
	memset(&ak, 0, sizeof(ak));	/* the kits are the caller's now */
	rc = (int)kresp.count;
	goto out;
gone:
	ak_forget();
	rc = call_failed(rc);
out:
	ipcd_inside--;
	pthread_mutex_unlock(&call_mu);
	return rc;
}

static void post(struct ipcd_req *req, bool lazy)
{
	pthread_mutex_lock(&call_mu);
	ipcd_inside++;
	if (ipcd_state_get()) {
		/*
		 * A CLOSE lost would leave its record in the monitor until this
		 * process exits: wait a little for room. A monitor stopped
		 * longer loses the note rather than stall the caller's close().
		 */
		if (submit_locked(req, lazy, ipcd_deadline(POST_WAIT_NS)) == -ETIMEDOUT &&
		    monitor_gone())
			detach_locked("it closed our socket");
	}
	ipcd_inside--;
	pthread_mutex_unlock(&call_mu);
}

void ipcd_mon_post(struct ipcd_req *req)
{
	post(req, false);
}

void ipcd_mon_post_lazy(struct ipcd_req *req)
{
	post(req, true);
}

void ipcd_mon_post_close(uint64_t conn_id, uint32_t end)
{
	struct ipcd_req req = { .opcode = IPCD_OP_CLOSE };
	struct ipcd_close_req *cr = (void *)req.body;

	req.len = sizeof(*cr);
	cr->conn_id = conn_id;
	cr->end = end;
	ipcd_mon_post_lazy(&req);
}
