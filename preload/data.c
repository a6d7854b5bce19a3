/* SPDX-License-Identifier: MIT */
/*
 * data.c - the data path of accelerated connections: send and receive on the
 * connection's SPSC stream rings, with the kernel's semantics (sock.h).
 *
 * Waiting: spin (adaptive, up to ipcd_spin_ns) on the ring, then sleep on
 * the futex of the direction's doorbell word. Without a timeout the kernel
 * restarts that sleep after an SA_RESTART handler, as it restarts a socket
 * call; with SO_RCVTIMEO/SO_SNDTIMEO it never does (EINTR), as for a socket
 * call with a timeout.
 * The peer makes a syscall only when it finds a sleeper announced in the
 * word (spsc.h, __ipcd_spsc_wake).
 *
 * Each direction has its own lock, so one thread may read while another
 * writes; two readers (or writers) of one socket take turns, as the
 * kernel's socket lock makes them. Processes that share an end (fork: a
 * pipe's writers, a jobserver's readers) take turns on the ring's own lock
 * in shared memory (prod_lock, cons_lock), held for a copy, never across a
 * sleep, as the kernel holds a pipe's mutex.
 *
 * Pipes (IPCD_CONN_KIND_PIPE) are connections whose A end writes and B end
 * reads: the kernel's pipe semantics on top (EBADF the wrong way, a write of
 * at most PIPE_BUF bytes never split, EPIPE and SIGPIPE once the readers are
 * gone, POLLHUP / POLLERR as pipe_poll reports them).
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <ipcd/wait.h>

#include "sock.h"

#define IOV_CHUNK	8		/* iovec entries handed to the ring per call */
#define SPIN_MIN_NS	1000u		/* below this, a spin is not worth it: sleep */
#define SPIN_PURE_NS	2000u		/* spin without yielding the CPU this long */
#define SPIN_MISSES	4u		/* spins in a row that found nothing: halve */
#define SPIN_RETRY	1024u		/* sleeps without spinning before trying again */
#define FILE_CHUNK	65536u		/* sendfile bounce buffer */

static int fail(int err)
{
	errno = err;
	return -1;
}

/* ---- locks ---------------------------------------------------------------- */

static __ipcd_always_inline void lock(struct ipcd_lock *l)
{
	if (likely(ipcd_xchg(&l->word, 1) == 0))
		return;
	while (ipcd_xchg(&l->word, 2) != 0)
		ipcd_futex_wait(&l->word, 2, -1);
}

static __ipcd_always_inline void unlock(struct ipcd_lock *l)
{
	if (unlikely(ipcd_xchg(&l->word, 0) == 2))
		ipcd_futex_wake(&l->word);
}

/*
 * The ring's lock between processes (shm_abi.h prod_lock / cons_lock): our
 * pid while we copy. Held for a copy only, so a waiter spins briefly, then
 * sleeps on the word; every RING_LOCK_CHECK_NS it asks whether the holder
 * still exists, and takes the lock over from one that died holding it (a
 * SIGKILL mid-copy: the record it did not publish is simply not there).
 * Like the kernel's pipe mutex, never interrupted by a signal.
 */
#define RING_LOCK_SPIN		128u
#define RING_LOCK_CHECK_NS	(20 * 1000 * 1000)

/* A zombie holds no lock either: kill() still finds it until it is reaped. */
static bool zombie(pid_t pid)
{
	char path[32], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = ipcd_real.open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	n = ipcd_real.read(fd, buf, sizeof(buf) - 1);
	ipcd_real.close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	p = strrchr(buf, ')');	/* the command name may hold anything */
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static bool ring_holder_gone(uint32_t v)
{
	pid_t pid = (pid_t)(v & ~IPCD_RING_LOCK_WAITERS);

	if (pid <= 0)
		return true;
	if (pid == ipcd_self_pid)
		return false;
	return (kill(pid, 0) != 0 && errno == ESRCH) || zombie(pid);
}

static __ipcd_noinline void ring_lock_slow(uint32_t *w, uint32_t v)
{
	uint32_t me = (uint32_t)ipcd_self_pid | IPCD_RING_LOCK_WAITERS;
	unsigned int i;
	int saved = errno;

	for (i = 0;; i++) {
		if (!v) {
			/* Contended: whoever frees it next must wake. */
			if (ipcd_cas(w, &v, me))
				break;
			continue;
		}
		if (i < RING_LOCK_SPIN) {
			ipcd_cpu_relax();
			v = ipcd_load_relaxed(w);
			continue;
		}
		if (!(v & IPCD_RING_LOCK_WAITERS) && !ipcd_cas(w, &v, v | IPCD_RING_LOCK_WAITERS))
			continue;
		v |= IPCD_RING_LOCK_WAITERS;
		if (ipcd_futex_wait(w, v, RING_LOCK_CHECK_NS) == -ETIMEDOUT &&
		    ring_holder_gone(v) && ipcd_cas(w, &v, me))
			break;
		v = ipcd_load_relaxed(w);
	}
	errno = saved;
}

static __ipcd_always_inline void ring_lock(uint32_t *w)
{
	uint32_t v = 0;

	if (unlikely(!ipcd_cas(w, &v, (uint32_t)ipcd_self_pid)))
		ring_lock_slow(w, v);
}

static __ipcd_always_inline void ring_unlock(uint32_t *w)
{
	if (unlikely(ipcd_xchg(w, 0) & IPCD_RING_LOCK_WAITERS))
		ipcd_futex_wake(w);
}

/* ---- signals -------------------------------------------------------------- */

bool ipcd_restartable(void)
{
	struct sigaction sa;
	int sig;

	/*
	 * We cannot know which signal interrupted the sleep. Restart only if
	 * every installed handler has SA_RESTART: then the kernel would have
	 * restarted the socket call whatever the signal was. The handlers of
	 * faults (a sanitizer's SIGSEGV, a JIT's SIGILL) do not count: those
	 * signals come from the faulting thread's own instructions, never
	 * while it sleeps in a syscall.
	 */
	for (sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV || sig == SIGBUS ||
		    sig == SIGFPE || sig == SIGILL || sig == SIGTRAP || sig == SIGSYS ||
		    sigaction(sig, NULL, &sa) != 0)
			continue;
		if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)
			continue;
		if (!(sa.sa_flags & SA_RESTART))
			return false;
	}
	return true;
}

void ipcd_sigpipe(int flags)
{
	if (!(flags & MSG_NOSIGNAL))
		syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGPIPE);
}

/* ---- readiness -------------------------------------------------------------- */

static __ipcd_always_inline bool peer_reset(const struct ipcd_sock *s)
{
	uint32_t bit = s->conn.acceptor ? IPCD_CONN_RESET_A : IPCD_CONN_RESET_B;

	return (ipcd_load_acquire(&s->conn.ctl->reset) & bit) != 0;
}

/* Bytes of room worth waking a writer for: a quarter of the ring, at most what it needs. */
static __ipcd_always_inline uint32_t tx_want(const struct ipcd_sock *s, size_t need)
{
	return (uint32_t)IPCD_MIN(need, (size_t)s->conn.tx.capacity / 4);
}

/* Flagged to become the kernel's (ipcd_sock_peer_check): its next call does it. */
static __ipcd_always_inline bool moving(const struct ipcd_sock *s)
{
	return unlikely(ipcd_load_relaxed(&s->conn.peer_lost) == IPCD_PEER_MOVED);
}

static __ipcd_always_inline bool rx_ready(struct ipcd_sock *s)
{
	if (moving(s))
		return true;
	if (unlikely(s->kind == IPCD_CONN_KIND_UNIX) &&
	    ipcd_spsc_mark_ready(&s->conn.rx) == -EAGAIN)
		return atomic_load_explicit(&s->shut_rd, memory_order_relaxed);
	return ipcd_spsc_readable(&s->conn.rx) ||
	       atomic_load_explicit(&s->shut_rd, memory_order_relaxed);
}

/*
 * A pipe holds at most its size (F_GETPIPE_SZ: 64 KiB unless set) of
 * unread bytes, as the kernel's; its ring is larger (F_SETPIPE_SZ up to
 * 1 MiB). The bytes a writer may add now.
 */
static __ipcd_always_inline uint32_t pipe_room(const struct ipcd_sock *s)
{
	uint32_t size = ipcd_load_relaxed(&s->conn.ctl->pipe_size);
	uint64_t unread = ipcd_spsc_bytes_ready(&s->conn.tx);

	if (!size)
		size = 65536;
	return unread >= size ? 0 : size - (uint32_t)unread;
}

static __ipcd_always_inline bool tx_ready(struct ipcd_sock *s, uint32_t want)
{
	if (moving(s))
		return true;
	if (unlikely(s->kind == IPCD_CONN_KIND_PIPE) &&
	    pipe_room(s) < IPCD_MIN(want, (uint32_t)PIPE_BUF))
		return atomic_load_explicit(&s->shut_wr, memory_order_relaxed) ||
		       ipcd_load_relaxed(&s->conn.tx.shm->cons_closed);	/* EPIPE now */
	return ipcd_spsc_writable(&s->conn.tx, want) ||
	       atomic_load_explicit(&s->shut_wr, memory_order_relaxed);
}

static __ipcd_always_inline bool ready(struct ipcd_sock *s, bool rx, uint32_t want)
{
	return rx ? rx_ready(s) : tx_ready(s, want);
}

static void clear_raw(int fd)
{
	uint64_t v;

	/* Raw read: the eventfd is nonblocking; EAGAIN means it was already 0. */
	(void)syscall(SYS_read, fd, &v, sizeof(v));
}

/*
 * One eventfd serves both directions and every thread: another thread
 * polling this fd (say, for POLLOUT while we wait for POLLIN) may have been
 * woken by the count we just took, and goes back to sleep when it finds it
 * gone. Whoever takes the count hands it on while such a thread exists and
 * something is ready; it re-checks the rings. (Pollers count themselves
 * before they announce a sleep, wait.c.)
 */
static bool others_waiting(struct ipcd_sock *s)
{
	return atomic_load(&s->pollers) && ipcd_conn_events(s, POLLIN | POLLOUT);
}

void ipcd_conn_clear(struct ipcd_sock *s, int fd)
{
	clear_raw(fd);
	if (others_waiting(s))
		ipcd_eventfd_signal(fd);
}

/* pipe_poll(): the read end POLLIN with data, POLLHUP once no writer is left;
 * the write end POLLOUT with room for PIPE_BUF bytes, POLLERR once no reader is. */
static short pipe_events(struct ipcd_sock *s, short want)
{
	short ev = 0;

	if (s->conn.acceptor) {
		if (ipcd_spsc_unread(&s->conn.rx))
			ev |= POLLIN | POLLRDNORM;
		if (ipcd_load_acquire(&s->conn.rx.shm->prod_closed))
			ev |= POLLHUP;
	} else {
		/* Room, whether or not a reader is left; no reader: POLLERR too. */
		if (ipcd_spsc_room(&s->conn.tx, PIPE_BUF) && pipe_room(s) >= PIPE_BUF)
			ev |= POLLOUT | POLLWRNORM;
		if (ipcd_load_relaxed(&s->conn.tx.shm->cons_closed))
			ev |= POLLERR;
	}
	return ev & (want | POLLHUP | POLLERR);
}

short ipcd_conn_events(struct ipcd_sock *s, short want)
{
	bool rd_closed = ipcd_load_acquire(&s->conn.rx.shm->prod_closed) ||
			 atomic_load(&s->shut_rd);
	bool peer_rst = peer_reset(s), rst = atomic_load(&s->rst_sent);
	bool reset = peer_rst && !atomic_load(&s->reset_told);
	short ev = 0;

	if (moving(s))
		return want & (POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM);	/* make the call */
	if (s->kind == IPCD_CONN_KIND_PIPE)
		return pipe_events(s, want);
	if (rx_ready(s))
		ev |= POLLIN | POLLRDNORM;
	if (rd_closed)
		ev |= POLLRDHUP;
	if (tx_ready(s, tx_want(s, SIZE_MAX)) || ipcd_load_relaxed(&s->conn.tx.shm->cons_closed))
		ev |= POLLOUT | POLLWRNORM;
	/* As the kernel: EPOLLERR until the error is reported, EPOLLHUP for good. */
	if (reset || (rst && !atomic_load(&s->rst_told)))
		ev |= POLLERR;
	/*
	 * unix_poll(): EPOLLHUP once both directions are shut, whoever shut
	 * them: a socketpair whose peer closed hangs up (TCP waits for its
	 * own side's shutdown).
	 */
	if (peer_rst || rst || (rd_closed && atomic_load(&s->shut_wr)) ||
	    (s->kind == IPCD_CONN_KIND_UNIX && rd_closed &&
	     ipcd_load_relaxed(&s->conn.tx.shm->cons_closed)))
		ev |= POLLHUP;
	return ev & (want | POLLHUP | POLLERR);
}

void ipcd_conn_arm(struct ipcd_sock *s, int fd, short want)
{
	(void)fd;
	if (want & (POLLIN | POLLRDNORM | POLLRDHUP))
		ipcd_doorbell_arm_bits(&s->conn.rx.shm->cons_wait, IPCD_DB_EVENT);
	if (want & (POLLOUT | POLLWRNORM))
		ipcd_doorbell_arm_bits(&s->conn.tx.shm->prod_wait, IPCD_DB_EVENT);
}

/*
 * recv() found nothing and returns EAGAIN: the application may now wait in
 * the kernel (epoll on the fd). Keep the eventfd level: announce an eventfd
 * sleeper, forget a stale wake-up, and signal ourselves if data slipped in.
 * Costs syscalls only on the first EAGAIN after a wake-up.
 */
static void arm_rx_event(struct ipcd_sock *s, int fd)
{
	uint32_t old;

	/*
	 * In an epoll set of ours: the set looks at the ring itself while the
	 * item is listed, and arms it before it sleeps (epoll.c). Announcing
	 * here would only make the peer write our eventfd for every message.
	 */
	if (atomic_load_explicit(&s->ep_nregs, memory_order_relaxed))
		return;
	old = ipcd_fetch_or(&s->conn.rx.shm->cons_wait, IPCD_DB_EVENT);
	if (old & IPCD_DB_EVENT)
		return;		/* still announced since the last time: nobody signalled */
	clear_raw(fd);
	if (rx_ready(s) || others_waiting(s))
		ipcd_eventfd_signal(fd);
}

/*
 * send() found no room and returns EAGAIN: the application may now wait in
 * the kernel for EPOLLOUT, edge-triggered (an eventfd is always writable,
 * so only a write to it makes an edge). Announce an eventfd sleeper on the
 * tx ring: the consumer writes our eventfd when it frees room. If room
 * appeared meanwhile, make the edge ourselves.
 */
static void arm_tx_event(struct ipcd_sock *s, int fd)
{
	uint32_t old = ipcd_fetch_or(&s->conn.tx.shm->prod_wait, IPCD_DB_EVENT);

	if (!(old & IPCD_DB_EVENT) && tx_ready(s, tx_want(s, SIZE_MAX)))
		ipcd_eventfd_signal_out(fd);
}

/*
 * The spin adapts, like an adaptive mutex: it doubles (up to ipcd_spin_ns)
 * when what we waited for came while we spun, and halves after SPIN_MISSES
 * spins in a row that found nothing, down to none when the other side is
 * usually not running (more busy threads than CPUs: spinning would keep it
 * off this CPU, and our sleep lets the scheduler pull it here at once).
 * Every SPIN_RETRY sleeps it tries the full spin again.
 */
bool ipcd_spin(struct ipcd_spin *sp, bool (*done)(void *), void *arg)
{
	uint64_t budget = IPCD_MIN((uint64_t)sp->ns, ipcd_spin_ns), start, now, end;
	unsigned int i;

	if (!budget) {
		if (++sp->misses >= SPIN_RETRY) {
			/* Now and then, try the full spin again (the load may have gone). */
			sp->misses = 0;
			sp->ns = (uint32_t)IPCD_MIN(ipcd_spin_ns, (uint64_t)UINT32_MAX);
		}
		return false;
	}
	start = now = ipcd_now_ns();
	end = start + budget;
	for (;;) {
		for (i = 0; i < 64; i++) {
			if (done(arg)) {
				/* Worth spinning: allow longer next time. */
				sp->ns = (uint32_t)IPCD_MIN(budget * 2, ipcd_spin_ns);
				sp->misses = 0;
				return true;
			}
			ipcd_cpu_relax();
		}
		now = ipcd_now_ns();
		if (now >= end)
			break;
		/*
		 * Past a short pure spin, let whatever else is runnable on this
		 * CPU go first: with more busy threads than CPUs, that is often
		 * the peer we are waiting for.
		 */
		if (now - start > SPIN_PURE_NS)
			sched_yield();
	}
	/* It keeps not coming in time: spin less. */
	if (++sp->misses >= SPIN_MISSES) {
		sp->misses = 0;
		sp->ns = budget / 2 < SPIN_MIN_NS ? 0 : (uint32_t)(budget / 2);
	}
	return false;
}

struct wait_arg {
	struct ipcd_sock *s;
	bool rx;
	uint32_t want;
};

static bool wait_done(void *p)
{
	const struct wait_arg *w = p;

	return ready(w->s, w->rx, w->want);
}

/*
 * Wait until the ring is ready (rx: a record or EOF; tx: @want bytes of
 * room or the peer gone). @timeout_ns 0: forever. 0, -ETIMEDOUT, -EINTR,
 * or -IPCD_EMOVED (the socket is to become the kernel's: the caller lets
 * go of its locks and returns, and the wrapper does the rest).
 * A spin per direction (ipcd_spin), then a futex sleep.
 */
static int conn_wait(struct ipcd_sock *s, bool rx, uint32_t want, int64_t timeout_ns)
{
	uint32_t *word = rx ? &s->conn.rx.shm->cons_wait : &s->conn.tx.shm->prod_wait;
	uint64_t deadline = ipcd_deadline(timeout_ns ? timeout_ns : -1);
	struct wait_arg w = { .s = s, .rx = rx, .want = want };

	if (ipcd_spin(rx ? &s->rx_spin : &s->tx_spin, wait_done, &w))
		return moving(s) ? -IPCD_EMOVED : 0;
	for (;;) {
		int64_t left = ipcd_remaining(deadline);

		if (left == 0)
			return -ETIMEDOUT;
		{
			uint32_t v = ipcd_doorbell_arm_bits(word, IPCD_DB_FUTEX);
			int rc;

			if (ready(s, rx, want))
				return moving(s) ? -IPCD_EMOVED : 0;
			/*
			 * The futex of this direction's word, never the shared
			 * eventfd: a poller of the other direction could take its
			 * count. With a timeout the kernel never restarts the
			 * wait after a handler (EINTR), as for a socket call.
			 */
			/*
			 * With a life socket, in slices: a peer whose death no
			 * monitor reports is found by its hang-up (attach.h).
			 * A timed futex wait is never restarted by the kernel
			 * after a handler (EINTR, SA_RESTART or not), so for a
			 * call without a timeout ipcd_restartable() decides,
			 * as the kernel would if every handler is alike.
			 */
			int64_t slice = timeout_ns ? left : -1;

			if (s->conn.live_fd >= 0 && (slice < 0 || slice > IPCD_LIVE_CHECK_NS))
				slice = IPCD_LIVE_CHECK_NS;
			rc = ipcd_futex_wait(word, v, slice);
			if (rc == -EINTR && (timeout_ns || !ipcd_restartable()))
				return -EINTR;
			if (rc == -ETIMEDOUT)
				(void)ipcd_sock_peer_check(s);
		}
		if (ready(s, rx, want))
			return moving(s) ? -IPCD_EMOVED : 0;
	}
}

/*
 * A pipe's writer after a pause (tx_lock held): a reader that died since
 * is seen now, from its life socket, so this write fails with EPIPE as the
 * kernel's would, rather than after the monitor has marked the death. A
 * writer that keeps writing looks only once a millisecond (a clock read).
 */
#define PIPE_PAUSE_NS	1000000ull

static void pipe_reader_check(struct ipcd_sock *s)
{
	uint64_t now = ipcd_now_ns();

	if (s->conn.live_fd >= 0 && now - s->tx_at > PIPE_PAUSE_NS &&
	    !ipcd_load_relaxed(&s->conn.tx.shm->cons_closed) &&
	    ipcd_conn_peer_state(&s->conn) == IPCD_PEER_GONE)
		ipcd_conn_peer_mark(&s->conn);
	s->tx_at = now;
}

/* A conn_wait() failure as the call's errno (nothing done yet). */
static int wait_errno(int rc)
{
	return rc == -ETIMEDOUT ? EAGAIN : rc == -IPCD_EMOVED ? IPCD_EMOVED : EINTR;
}

/* ---- iovec cursor ------------------------------------------------------------ */

struct iov_cur {
	const struct iovec *iov;
	int cnt;
	int idx;
	size_t off;
};

/* Up to IOV_CHUNK entries of what remains after the cursor. */
static int iov_rest(const struct iov_cur *c, struct iovec *out)
{
	int n = 0, i;

	for (i = c->idx; i < c->cnt && n < IOV_CHUNK; i++) {
		size_t skip = i == c->idx ? c->off : 0;

		if (c->iov[i].iov_len == skip)
			continue;
		out[n].iov_base = (uint8_t *)c->iov[i].iov_base + skip;
		out[n].iov_len = c->iov[i].iov_len - skip;
		n++;
	}
	return n;
}

/* The first @n entries of @part, cut to @max bytes in all: how many remain. */
static int iov_cap(struct iovec *part, int n, size_t max)
{
	int i;

	for (i = 0; i < n; i++) {
		if (part[i].iov_len >= max) {
			part[i].iov_len = max;
			return i + 1;
		}
		max -= part[i].iov_len;
	}
	return n;
}

static void iov_advance(struct iov_cur *c, size_t n)
{
	while (n && c->idx < c->cnt) {
		size_t left = c->iov[c->idx].iov_len - c->off;

		if (n < left) {
			c->off += n;
			return;
		}
		n -= left;
		c->idx++;
		c->off = 0;
	}
}

static int iov_total(const struct iovec *iov, int cnt, size_t *total)
{
	size_t t = 0;
	int i;

	if (cnt < 0 || cnt > IOV_MAX)
		return -EINVAL;
	for (i = 0; i < cnt; i++) {
		if (iov[i].iov_len > SSIZE_MAX - t)
			return -EINVAL;
		t += iov[i].iov_len;
	}
	*total = t;
	return 0;
}

/* ---- receive ------------------------------------------------------------------ */

/* ---- AF_UNIX credentials (SO_PASSCRED) ---------------------------------------- */

void ipcd_unix_passcred(struct ipcd_sock *s, bool on)
{
	uint32_t bit = s->conn.acceptor ? IPCD_CONN_PASSCRED_B : IPCD_CONN_PASSCRED_A;

	if (on)
		ipcd_fetch_or(&s->conn.ctl->passcred, bit);
	else
		ipcd_fetch_and(&s->conn.ctl->passcred, ~bit);
}

/* Has @s's peer (@peer) or @s itself SO_PASSCRED? */
static bool passcred(const struct ipcd_sock *s, bool peer)
{
	uint32_t bit = s->conn.acceptor != peer ? IPCD_CONN_PASSCRED_B : IPCD_CONN_PASSCRED_A;

	return s->kind == IPCD_CONN_KIND_UNIX && (ipcd_load_relaxed(&s->conn.ctl->passcred) & bit);
}

static bool cred_eq(const struct ucred *a, const struct ucred *b)
{
	return a->pid == b->pid && a->uid == b->uid && a->gid == b->gid;
}

/* The credentials of the bytes @s reads next when no mark says: the last mark's, or the peer's. */
static struct ucred stream_cred(struct ipcd_sock *s)
{
	struct ucred uc = { 0 };
	socklen_t len = sizeof(uc);

	if (s->rx_cred_ok)
		return s->rx_cred;
	if (ipcd_real.getsockopt(s->kfd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
		s->rx_cred = uc;
		s->rx_cred_ok = true;
	}
	return uc;
}

/* SCM_CREDENTIALS @uc appended to @msg's control data (@cap bytes), as put_cmsg() does. */
static void put_cred(struct msghdr *msg, socklen_t cap, const struct ucred *uc)
{
	struct cmsghdr h = { .cmsg_len = CMSG_LEN(sizeof(*uc)), .cmsg_level = SOL_SOCKET,
			     .cmsg_type = SCM_CREDENTIALS };
	char *o = (char *)msg->msg_control + msg->msg_controllen;
	size_t room = cap - msg->msg_controllen;

	if (!msg->msg_control || room < CMSG_LEN(sizeof(*uc))) {
		msg->msg_flags |= MSG_CTRUNC;
		return;
	}
	memcpy(o, &h, sizeof(h));
	memcpy(o + CMSG_LEN(0), uc, sizeof(*uc));
	msg->msg_controllen += IPCD_MIN(room, CMSG_SPACE(sizeof(*uc)));
}

/*
 * @msg: recvmsg's, for the control data (socketpair ends), @cap bytes of
 * it; NULL for read, recv.
 */
static ssize_t conn_recv(struct ipcd_sock *s, int fd, const struct iovec *iov, int iovcnt,
			 int flags, struct msghdr *msg, socklen_t cap)
{
	bool nb = (flags & MSG_DONTWAIT) || atomic_load_explicit(&s->nonblock,
								  memory_order_relaxed);
	bool pipe = s->kind == IPCD_CONN_KIND_PIPE;
	unsigned int peek = flags & MSG_PEEK ? IPCD_SPSC_PEEK : 0;
	unsigned int marks = s->kind == IPCD_CONN_KIND_UNIX ? IPCD_SPSC_MARKS : 0, past = 0;
	size_t stop = SIZE_MAX;		/* control data came: no more than its record */
	bool pc = passcred(s, false), have_cred = false, cred_given = false;
	struct ucred cred = { 0 };	/* the credentials of this read's bytes (SO_PASSCRED) */
	struct iov_cur cur = { .iov = iov, .cnt = iovcnt };
	struct iovec part[IOV_CHUNK];
	size_t total, done = 0;
	int err = 0, rc;

	if (flags & (MSG_OOB | MSG_TRUNC | MSG_ERRQUEUE))
		return fail(flags & MSG_OOB ? EINVAL : EOPNOTSUPP);
	if (unlikely(pipe && !s->conn.acceptor))
		return fail(EBADF);	/* read on a pipe's write end */
	rc = iov_total(iov, iovcnt, &total);
	if (rc)
		return fail(-rc);
	lock(&s->rx_lock);
	if (unlikely(moving(s))) {
		/* Moved (or moving) to the kernel while we waited for the lock. */
		unlock(&s->rx_lock);
		return fail(IPCD_EMOVED);
	}
	ring_lock(&s->conn.rx.shm->cons_lock);
	while (done < total && done < stop) {
		int n = iov_cap(part, iov_rest(&cur, part), stop - done);
		ssize_t got = ipcd_spsc_readv(&s->conn.rx, part, n, peek | marks | past);

		if (got == -ENOMSG) {	/* a mark: control data comes with what follows */
			struct ipcd_anc_info in = { .fds = true };
			struct ucred kc;
			int64_t m;

			/* One control message per read; a peek never goes past data it left. */
			if (stop != SIZE_MAX || (done && peek))
				break;
			m = ipcd_spsc_mark_ready(&s->conn.rx);
			if (m == -EAGAIN && done)
				break;		/* its data is not there yet: what we have */
			/*
			 * Its data will never come (the writers are gone, one
			 * died between the two) or is not to be read: EOF.
			 */
			if (m == -EAGAIN && (atomic_load(&s->shut_rd) ||
					     ipcd_load_acquire(&s->conn.rx.shm->prod_closed)))
				break;
			if (m == -EAGAIN) {
				/*
				 * Its writer is copying the data that goes with it
				 * now: not readable yet (rx_ready says so too), so
				 * wait, or EAGAIN, as for an empty ring.
				 */
				if (nb) {
					arm_rx_event(s, fd);
					err = EAGAIN;
					break;
				}
				ring_unlock(&s->conn.rx.shm->cons_lock);
				rc = conn_wait(s, true, 0, s->rcvtimeo_ns);
				ring_lock(&s->conn.rx.shm->cons_lock);
				if (rc) {
					err = wait_errno(rc);
					break;
				}
				continue;
			}
			(void)ipcd_anc_peek(s, &in);	/* unknown: as if it carried fds */
			/*
			 * As unix_stream_read_generic(): with SO_PASSCRED a read
			 * never joins bytes of other credentials.
			 */
			if (done && pc && !peek) {
				if (!have_cred) {
					cred = stream_cred(s);
					have_cred = true;
				}
				if (!cred_eq(&in.cred, &cred))
					break;
			}
			if (ipcd_anc_take(s, msg, cap, flags, peek != 0, &kc)) {	/* anc.c */
				s->rx_cred = cred = kc;
				s->rx_cred_ok = have_cred = cred_given = true;
			}
			past = IPCD_SPSC_PAST_MARK;
			/*
			 * A read goes on into the data sent with fds, and ends
			 * after it; credentials alone do not end it.
			 */
			if (in.fds || peek)
				stop = m > 0 ? done + (size_t)m : done + 1;
			continue;
		}
		past = 0;
		if (got > 0) {
			done += (size_t)got;
			iov_advance(&cur, (size_t)got);
			/* Stopped at a mark with room left: read on into its message. */
			if (marks && !peek && stop == SIZE_MAX && done < total &&
			    ipcd_spsc_mark_ready(&s->conn.rx) != -EINVAL)
				continue;
			if (!(flags & MSG_WAITALL) || peek)
				break;
			continue;
		}
		if (got == 0) {		/* end of stream */
			if (!done && !pipe && peer_reset(s) &&
			    !atomic_exchange(&s->reset_told, true))
				err = ECONNRESET;
			break;
		}
		if (got == -EPROTO) {	/* the peer broke its ring: as a reset */
			if (!done)
				err = pipe ? EIO : ECONNRESET;
			break;
		}
		if (atomic_load(&s->shut_rd))
			break;		/* shutdown(SHUT_RD): 0 once drained */
		if (nb) {
			if (!done) {
				arm_rx_event(s, fd);
				err = EAGAIN;
			}
			break;
		}
		ring_unlock(&s->conn.rx.shm->cons_lock);
		rc = conn_wait(s, true, 0, s->rcvtimeo_ns);
		ring_lock(&s->conn.rx.shm->cons_lock);
		if (rc) {
			if (!done)
				err = wait_errno(rc);
			break;
		}
	}
	ring_unlock(&s->conn.rx.shm->cons_lock);
	unlock(&s->rx_lock);
	if (err)
		return fail(err);
	/* SO_PASSCRED: every read has its credentials. */
	if (msg && pc && done && !cred_given) {
		if (!have_cred)
			cred = stream_cred(s);
		put_cred(msg, cap, &cred);
	}
	return (ssize_t)done;
}

ssize_t ipcd_conn_recv(struct ipcd_sock *s, int fd, const struct iovec *iov, int iovcnt,
		       int flags)
{
	return conn_recv(s, fd, iov, iovcnt, flags, NULL, 0);
}

/* ---- send --------------------------------------------------------------------- */

/*
 * Control data (socketpair ends, anc.c), under the ring's lock: room for the
 * mark and the first bytes that go with it (so no other writer's data can
 * come between), the control data over the kernel socket, the mark. 0, or
 * the errno for the caller.
 */
static int anc_send(struct ipcd_sock *s, const struct msghdr *msg, size_t total, bool nb)
{
	uint32_t first = (uint32_t)IPCD_MIN(total, (size_t)PIPE_BUF);
	uint32_t *wc = s->conn.ctl->wcred[s->conn.acceptor];
	struct ipcd_anc_info sent;
	int rc;

	while (!ipcd_spsc_writable(&s->conn.tx, first + (uint32_t)sizeof(struct ipcd_rec_hdr))) {
		if (nb) {
			atomic_fetch_add_explicit(&s->tx_short, 1, memory_order_relaxed);
			return EAGAIN;
		}
		ring_unlock(&s->conn.tx.shm->prod_lock);
		rc = conn_wait(s, false, first + (uint32_t)sizeof(struct ipcd_rec_hdr),
			       s->sndtimeo_ns);
		ring_lock(&s->conn.tx.shm->prod_lock);
		if (rc)
			return wait_errno(rc);
	}
	if (ipcd_load_relaxed(&s->conn.tx.shm->cons_closed))
		return EPIPE;
	rc = msg ? ipcd_anc_send(s, msg, nb, &sent) : ipcd_anc_send_creds(s, nb, &sent);
	if (rc)
		return rc;
	rc = ipcd_spsc_mark(&s->conn.tx);
	if (rc)
		return rc == -EPIPE ? EPIPE : EIO;
	ipcd_store_relaxed(&wc[0], (uint32_t)sent.cred.pid);
	ipcd_store_relaxed(&wc[1], sent.cred.uid);
	ipcd_store_relaxed(&wc[2], sent.cred.gid);
	return 0;
}

/* Is this process the writer of @s's last mark (its credentials)? Under prod_lock. */
static bool same_writer(const struct ipcd_sock *s)
{
	const uint32_t *wc = s->conn.ctl->wcred[s->conn.acceptor];

	return ipcd_load_relaxed(&wc[0]) == (uint32_t)ipcd_self_pid &&
	       ipcd_load_relaxed(&wc[1]) == getuid() && ipcd_load_relaxed(&wc[2]) == getgid();
}

/* What this thread's send still has to write (signal handlers: tx_defer_add). */
static __thread volatile size_t tx_left;

/* @msg: sendmsg's, for the control data (socketpair ends); NULL otherwise. */
static ssize_t conn_send_one(struct ipcd_sock *s, int fd, const struct iovec *iov, int iovcnt,
			     int flags, const struct msghdr *msg)
{
	bool nb = (flags & MSG_DONTWAIT) || atomic_load_explicit(&s->nonblock,
								  memory_order_relaxed);
	bool pipe = s->kind == IPCD_CONN_KIND_PIPE;
	struct iov_cur cur = { .iov = iov, .cnt = iovcnt };
	struct iovec part[IOV_CHUNK], one;
	char flat[PIPE_BUF];
	size_t total, done = 0;
	bool whole;
	int err = 0, rc, i;

	if (flags & MSG_OOB)
		return fail(EOPNOTSUPP);
	if (unlikely(pipe && s->conn.acceptor))
		return fail(EBADF);	/* write on a pipe's read end */
	rc = iov_total(iov, iovcnt, &total);
	if (rc)
		return fail(-rc);
	/* A pipe never splits a write of at most PIPE_BUF bytes (pipe(7)). */
	whole = pipe && total <= PIPE_BUF;
	if (whole && iovcnt > IOV_CHUNK) {
		/* One record, as one chunk: gathered here. */
		for (i = 0, one.iov_len = 0; i < iovcnt; i++) {
			memcpy(flat + one.iov_len, iov[i].iov_base, iov[i].iov_len);
			one.iov_len += iov[i].iov_len;
		}
		one.iov_base = flat;
		cur = (struct iov_cur){ .iov = &one, .cnt = 1 };
	}
	lock(&s->tx_lock);
	if (unlikely(moving(s))) {
		/* Moved (or moving) to the kernel while we waited for the lock. */
		unlock(&s->tx_lock);
		return fail(IPCD_EMOVED);
	}
	if (unlikely(s->kind == IPCD_CONN_KIND_PIPE))
		pipe_reader_check(s);
	ring_lock(&s->conn.tx.shm->prod_lock);
	if (atomic_load(&s->shut_wr)) {
		err = EPIPE;
		goto out;
	}
	if (s->kind == IPCD_CONN_KIND_UNIX && total) {
		/* Control data; or credentials, as the kernel attaches them for a reader with SO_PASSCRED. */
		if (msg && msg->msg_controllen)
			err = anc_send(s, msg, total, nb);
		else if (passcred(s, true) && !same_writer(s))
			err = anc_send(s, NULL, total, nb);
		if (err)
			goto out;
	}
	while (done < total) {
		int n = iov_rest(&cur, part);
		ssize_t put;

		tx_left = total - done;
		if (pipe && !ipcd_load_relaxed(&s->conn.tx.shm->cons_closed)) {
			/* Within the pipe's size: all of a small write, or what fits. */
			uint32_t room = pipe_room(s);

			if (whole ? room < total : !room)
				n = 0;
			else if (!whole)
				n = iov_cap(part, n, room);
		}
		if (!n || (whole && !ipcd_spsc_writable(&s->conn.tx, (uint32_t)total)))
			put = -EAGAIN;
		else
			put = ipcd_spsc_writev(&s->conn.tx, part, n);
		if (put > 0) {
			done += (size_t)put;
			iov_advance(&cur, (size_t)put);
			continue;
		}
		if (put == -EPIPE || put == -EPROTO) {
			if (pipe) {
				/* pipe_write(): SIGPIPE even after a part went. */
				if (put == -EPIPE && done)
					ipcd_sigpipe(flags);
				else if (!done)
					err = put == -EPIPE ? EPIPE : EIO;
				break;
			}
			if (done)
				break;
			if (s->kind == IPCD_CONN_KIND_UNIX) {
				/* unix_stream_sendmsg(): the peer gone or its reading shut: EPIPE. */
				err = put == -EPIPE ? EPIPE : ECONNRESET;
				break;
			}
			if (put == -EPROTO ||
			    (peer_reset(s) && !atomic_exchange(&s->reset_told, true))) {
				err = ECONNRESET;
			} else if (!peer_reset(s) && !atomic_exchange(&s->rst_sent, true)) {
				/*
				 * The peer closed cleanly: the kernel takes this
				 * first write (the peer answers it with an RST);
				 * the next ones fail with EPIPE.
				 */
				done = total;
			} else {
				atomic_store(&s->rst_told, true);
				err = EPIPE;
			}
			break;
		}
		if (nb) {
			if (!done)
				err = EAGAIN;
			/* The next room is an EPOLLOUT edge (epoll.c). */
			atomic_fetch_add_explicit(&s->tx_short, 1, memory_order_relaxed);
			arm_tx_event(s, fd);	/* partial or none: room is short either way */
			break;
		}
		ring_unlock(&s->conn.tx.shm->prod_lock);
		rc = conn_wait(s, false, whole ? (uint32_t)total : tx_want(s, total - done),
			       s->sndtimeo_ns);
		ring_lock(&s->conn.tx.shm->prod_lock);
		if (rc) {
			if (!done)
				err = wait_errno(rc);
			break;
		}
		if (atomic_load(&s->shut_wr)) {
			if (!done)
				err = EPIPE;
			break;
		}
	}
out:
	ring_unlock(&s->conn.tx.shm->prod_lock);
	unlock(&s->tx_lock);
	if (err == EPIPE)
		ipcd_sigpipe(flags);
	if (err)
		return fail(err);
	return (ssize_t)done;
}

/*
 * A signal handler that writes to the socket or pipe its thread is sending
 * on (the self-pipe trick, Python's wakeup fd, asyncio's self-pipe) would
 * wait for locks its own thread holds. Its bytes (up to TX_DEFER, if the
 * ring has room for them now) are kept instead, and written by the
 * interrupted send before it returns: after its own bytes, as the kernel
 * would have them (a handler never runs inside a write's copy). Thread-local:
 * only the interrupted thread's handlers can meet its own locks.
 */
#define TX_DEFER	512

static __thread struct ipcd_sock *volatile tx_busy;
static __thread volatile size_t tx_defer_len;
static __thread char tx_defer[TX_DEFER];

/*
 * The bytes a handler adds must fit after all that the interrupted send
 * still has to write (tx_left, kept by conn_send_one): then the flush
 * finds room, unless another process's writer took it meanwhile. If they
 * do not fit, EAGAIN, as a full pipe answers a nonblocking write (a
 * blocking one would have waited).
 */

static ssize_t tx_defer_add(struct ipcd_sock *s, const struct iovec *iov, int iovcnt,
			    size_t total, const struct msghdr *msg)
{
	size_t off = tx_defer_len, need = tx_left + off + total;
	int i;

	if ((msg && msg->msg_controllen) || total > TX_DEFER - off || need > UINT32_MAX / 2 ||
	    (s->kind == IPCD_CONN_KIND_PIPE && pipe_room(s) < need) ||
	    !ipcd_spsc_writable(&s->conn.tx, (uint32_t)need +
				(uint32_t)(sizeof(struct ipcd_rec_hdr) * (2 + need / PIPE_BUF))))
		return fail(EAGAIN);
	for (i = 0; i < iovcnt; i++) {
		memcpy(tx_defer + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	tx_defer_len = off;	/* one store: the interrupted thread sees all or nothing */
	return (ssize_t)total;
}

/* The deferred bytes, with signals blocked while they are taken from the buffer. */
static void tx_defer_flush(struct ipcd_sock *s, int fd)
{
	char buf[TX_DEFER];
	sigset_t all, old;
	struct iovec v = { .iov_base = buf };

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	v.iov_len = tx_defer_len;
	memcpy(buf, tx_defer, v.iov_len);
	tx_defer_len = 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	tx_left = 0;
	/* As the handler's fd: its room was there when it was accepted. */
	(void)conn_send_one(s, fd, &v, 1, MSG_NOSIGNAL, NULL);
}

static ssize_t conn_send(struct ipcd_sock *s, int fd, const struct iovec *iov, int iovcnt,
			 int flags, const struct msghdr *msg)
{
	size_t total;
	ssize_t r;
	int saved;

	if (unlikely(tx_busy == s)) {
		if (iov_total(iov, iovcnt, &total))
			return fail(EINVAL);
		return tx_defer_add(s, iov, iovcnt, total, msg);
	}
	tx_busy = s;
	r = conn_send_one(s, fd, iov, iovcnt, flags, msg);
	saved = errno;
	tx_left = 0;
	for (;;) {
		while (unlikely(tx_defer_len))
			tx_defer_flush(s, fd);
		tx_busy = NULL;
		if (likely(!tx_defer_len))
			break;
		tx_busy = s;	/* a handler came before the line above */
	}
	errno = saved;
	return r;
}

ssize_t ipcd_conn_send(struct ipcd_sock *s, int fd, const struct iovec *iov, int iovcnt,
		       int flags)
{
	return conn_send(s, fd, iov, iovcnt, flags, NULL);
}

/* ---- the calls.def entries ------------------------------------------------------ */

/* A data call on a socket that is not a connection: the kernel's, or ENOTCONN. */
#define NOT_CONN(call)								\
	do {									\
		if (unlikely(s->state != IPCD_SK_CONN))				\
			return s->state == IPCD_SK_FRESH ? (call) : fail(ENOTCONN); \
	} while (0)

ssize_t ipcd_sock_send(struct ipcd_sock *s, int fd, const void *buf, size_t len, int flags)
{
	struct iovec v = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };

	NOT_CONN(ipcd_real.send(fd, buf, len, flags));
	return ipcd_conn_send(s, fd, &v, 1, flags);
}

ssize_t ipcd_sock_recv(struct ipcd_sock *s, int fd, void *buf, size_t len, int flags)
{
	struct iovec v = { .iov_base = buf, .iov_len = len };

	NOT_CONN(ipcd_real.recv(fd, buf, len, flags));
	return ipcd_conn_recv(s, fd, &v, 1, flags);
}

ssize_t ipcd_sock_sendto(struct ipcd_sock *s, int fd, const void *buf, size_t len, int flags,
			 __CONST_SOCKADDR_ARG addr, socklen_t addrlen)
{
	struct iovec v = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };

	NOT_CONN(ipcd_real.sendto(fd, buf, len, flags, addr, addrlen));
	/* A connected stream socket ignores the address, as TCP does. */
	return ipcd_conn_send(s, fd, &v, 1, flags);
}

ssize_t ipcd_sock_recvfrom(struct ipcd_sock *s, int fd, void *__restrict buf, size_t len,
			   int flags, __SOCKADDR_ARG addr, socklen_t *__restrict addrlen)
{
	struct iovec v = { .iov_base = buf, .iov_len = len };
	ssize_t n;

	NOT_CONN(ipcd_real.recvfrom(fd, buf, len, flags, addr, addrlen));
	n = ipcd_conn_recv(s, fd, &v, 1, flags);
	if (n >= 0 && addr.__sockaddr__ && addrlen) {
		/* TCP reports no source address; AF_UNIX the sender's name (the peer's). */
		if (s->kind != IPCD_CONN_KIND_UNIX ||
		    ipcd_unix_name(s, fd, true, addr.__sockaddr__, addrlen) < 0 ||
		    *addrlen <= sizeof(sa_family_t))
			*addrlen = 0;	/* an unbound sender: no name at all */
	}
	return n;
}

ssize_t ipcd_sock_sendmsg(struct ipcd_sock *s, int fd, const struct msghdr *msg, int flags)
{
	NOT_CONN(ipcd_real.sendmsg(fd, msg, flags));
	if (!msg)
		return fail(EFAULT);
	return conn_send(s, fd, msg->msg_iov, (int)msg->msg_iovlen, flags, msg);
}

ssize_t ipcd_sock_recvmsg(struct ipcd_sock *s, int fd, struct msghdr *msg, int flags)
{
	socklen_t cap;
	ssize_t n;

	NOT_CONN(ipcd_real.recvmsg(fd, msg, flags));
	if (!msg)
		return fail(EFAULT);
	cap = msg->msg_controllen;
	/* No control data unless a mark is met (anc_take sets them). */
	msg->msg_controllen = 0;
	msg->msg_flags = 0;
	n = conn_recv(s, fd, msg->msg_iov, (int)msg->msg_iovlen, flags, msg, cap);
	if (n >= 0 && (s->kind != IPCD_CONN_KIND_UNIX || !msg->msg_name ||
		       ipcd_unix_name(s, fd, true, msg->msg_name, &msg->msg_namelen) < 0 ||
		       msg->msg_namelen <= sizeof(sa_family_t)))
		msg->msg_namelen = 0;
	else
		msg->msg_controllen = cap;
	return n;
}

int ipcd_sock_sendmmsg(struct ipcd_sock *s, int fd, struct mmsghdr *vmessages, unsigned int vlen,
		       int flags)
{
	unsigned int i;

	NOT_CONN(ipcd_real.sendmmsg(fd, vmessages, vlen, flags));
	for (i = 0; i < vlen; i++) {
		ssize_t n = ipcd_sock_sendmsg(s, fd, &vmessages[i].msg_hdr, flags);

		if (n < 0)
			return i ? (int)i : -1;
		vmessages[i].msg_len = (unsigned int)n;
	}
	return (int)i;
}

int ipcd_sock_recvmmsg(struct ipcd_sock *s, int fd, struct mmsghdr *vmessages, unsigned int vlen,
		       int flags, struct timespec *tmo)
{
	unsigned int i;

	NOT_CONN(ipcd_real.recvmmsg(fd, vmessages, vlen, flags, tmo));
	for (i = 0; i < vlen; i++) {
		ssize_t n = ipcd_sock_recvmsg(s, fd, &vmessages[i].msg_hdr,
					      i ? flags | MSG_DONTWAIT : flags);

		if (n < 0)
			return i ? (int)i : -1;
		vmessages[i].msg_len = (unsigned int)n;
		if (n == 0)
			return (int)i + 1;
		if (flags & MSG_WAITFORONE)
			flags |= MSG_DONTWAIT;
	}
	return (int)i;
}

ssize_t ipcd_sock_read(struct ipcd_sock *s, int fd, void *buf, size_t nbytes)
{
	struct iovec v = { .iov_base = buf, .iov_len = nbytes };

	NOT_CONN(ipcd_real.read(fd, buf, nbytes));
	return ipcd_conn_recv(s, fd, &v, 1, 0);
}

ssize_t ipcd_sock_write(struct ipcd_sock *s, int fd, const void *buf, size_t n)
{
	struct iovec v = { .iov_base = (void *)(uintptr_t)buf, .iov_len = n };

	NOT_CONN(ipcd_real.write(fd, buf, n));
	return ipcd_conn_send(s, fd, &v, 1, 0);
}

ssize_t ipcd_sock_readv(struct ipcd_sock *s, int fd, const struct iovec *iov, int iovcnt)
{
	NOT_CONN(ipcd_real.readv(fd, iov, iovcnt));
	return ipcd_conn_recv(s, fd, iov, iovcnt, 0);
}

ssize_t ipcd_sock_writev(struct ipcd_sock *s, int fd, const struct iovec *iov, int iovcnt)
{
	NOT_CONN(ipcd_real.writev(fd, iov, iovcnt));
	return ipcd_conn_send(s, fd, iov, iovcnt, 0);
}

/*
 * sendfile(socket, file): through a bounce buffer, reading with pread at our
 * own offset so that the file position moves only by what was sent.
 */
static ssize_t conn_sendfile(struct ipcd_sock *s, int fd, int in_fd, off_t *offset, size_t count)
{
	off_t pos = offset ? *offset : lseek(in_fd, 0, SEEK_CUR);
	size_t done = 0;
	uint8_t *buf;
	int err = 0;

	if (pos < 0)
		return -1;
	buf = malloc(FILE_CHUNK);
	if (!buf)
		return fail(ENOMEM);
	while (done < count) {
		size_t want = IPCD_MIN(count - done, (size_t)FILE_CHUNK);
		ssize_t n = pread(in_fd, buf, want, pos);
		struct iovec v = { .iov_base = buf };
		ssize_t put;

		if (n < 0) {
			err = errno;
			break;
		}
		if (n == 0)
			break;
		v.iov_len = (size_t)n;
		put = ipcd_conn_send(s, fd, &v, 1, done ? MSG_DONTWAIT : 0);
		if (put < 0) {
			if (!done)
				err = errno;
			break;
		}
		pos += put;
		done += (size_t)put;
		if (put < n)
			break;
	}
	free(buf);
	if (offset)
		*offset = pos;
	else if (done)
		lseek(in_fd, pos, SEEK_SET);
	if (!done && err)
		return fail(err);
	return (ssize_t)done;
}

ssize_t ipcd_sock_sendfile(struct ipcd_sock *s, int fd, int in_fd, off_t *offset, size_t count)
{
	NOT_CONN(ipcd_real.sendfile(fd, in_fd, offset, count));
	return conn_sendfile(s, fd, in_fd, offset, count);
}

ssize_t ipcd_sock_sendfile64(struct ipcd_sock *s, int fd, int in_fd, __off64_t *offset,
			     size_t count)
{
	NOT_CONN(ipcd_real.sendfile64(fd, in_fd, offset, count));
	return conn_sendfile(s, fd, in_fd, (off_t *)offset, count);
}

/* ---- monitor restarts: the peer's life socket ------------------------------------ */

bool ipcd_sock_peer_check(struct ipcd_sock *s)
{
	uint64_t now = ipcd_now_ns(), last = atomic_load_explicit(&s->live_at,
								   memory_order_relaxed);
	uint32_t v = IPCD_PEER_HERE;

	/* At most once a second per socket, whoever asks (a busy event loop asks often). */
	if (s->conn.live_fd < 0 || now - last < (uint64_t)IPCD_LIVE_CHECK_NS ||
	    !atomic_compare_exchange_strong(&s->live_at, &last, now))
		return false;
	switch (ipcd_conn_peer_state(&s->conn)) {
	case IPCD_PEER_GONE:
		ipcd_conn_peer_mark(&s->conn);	/* a death no monitor reported */
		return true;
	case IPCD_PEER_NEVER:
		break;
	default:
		return false;
	}
	/*
	 * The peer never had it. While the monitor that made it lives, that
	 * monitor still holds it (a lane kit given back to the backlog at a
	 * listener's fork) or resets it: its business. Otherwise it died with
	 * the connection in its backlog, where the kernel's would have waited
	 * for accept(): the connector connects again in the kernel (its next
	 * call, ipcd_sock_settle); any other end is simply closed.
	 */
	if (ipcd_state_monitor_alive(s->mon_id))
		return false;
	if (s->conn.acceptor || s->kind == IPCD_CONN_KIND_PIPE) {
		ipcd_conn_peer_mark(&s->conn);
		return true;
	}
	if (ipcd_cas(&s->conn.peer_lost, &v, IPCD_PEER_MOVED))
		ipcd_conn_wake_rings(s->conn.tx.shm, s->conn.rx.shm);
	return true;
}

/* Kernel socket @fd writable (or failed) before @deadline (UINT64_MAX: none). */
static bool wait_out(int fd, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int64_t left;

	while ((left = ipcd_remaining(deadline)) != 0) {
		int r = ipcd_real.poll(&p, 1, left < 0 ? -1 : (int)((left + 999999) / 1000000));

		if (r > 0 || (r < 0 && errno != EINTR))
			return true;	/* the next call says what is wrong */
	}
	return false;
}

/*
 * Kernel socket @ks (ours, blocking) connected to @sa before @deadline
 * (UINT64_MAX: none). A connect() a signal interrupts goes on in the
 * kernel: wait for it as for a nonblocking one. 0 or -errno.
 */
static int connect_by(int ks, const struct sockaddr *sa, socklen_t len, uint64_t deadline)
{
	int fl = ipcd_real.fcntl(ks, F_GETFL), err = 0;
	socklen_t el = sizeof(err);

	if (deadline != UINT64_MAX)
		(void)ipcd_real.fcntl(ks, F_SETFL, (void *)(intptr_t)(fl | O_NONBLOCK));
	if (ipcd_real.connect(ks, sa, len) < 0) {
		err = errno;
		if (err == EINTR || err == EINPROGRESS) {
			if (!wait_out(ks, deadline))
				err = ETIMEDOUT;
			else if (ipcd_real.getsockopt(ks, SOL_SOCKET, SO_ERROR, &err, &el))
				err = errno;
		}
	}
	(void)ipcd_real.fcntl(ks, F_SETFL, (void *)(intptr_t)fl);
	return -err;
}

/*
 * All of @buf to kernel socket @fd (blocking) before @deadline (UINT64_MAX:
 * none), never raising SIGPIPE. 0 or -errno.
 */
static int send_all(int fd, const uint8_t *buf, size_t len, uint64_t deadline)
{
	int flags = MSG_NOSIGNAL | (deadline == UINT64_MAX ? 0 : MSG_DONTWAIT);

	while (len) {
		ssize_t n = ipcd_real.send(fd, buf, len, flags);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && deadline != UINT64_MAX) {
			if (!wait_out(fd, deadline))
				return -ETIMEDOUT;
			continue;
		}
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* SO_RCVTIMEO / SO_SNDTIMEO @name of @ns (0: none) on kernel socket @fd. */
static void set_timeo(int fd, int name, int64_t ns)
{
	struct timeval tv = { .tv_sec = ns / 1000000000, .tv_usec = ns % 1000000000 / 1000 };

	if (ns)
		(void)ipcd_real.setsockopt(fd, SOL_SOCKET, name, &tv, sizeof(tv));
}

/*
 * Connector @s's connection to the kernel (both locks held): a kernel
 * socket connected to the same address (a socketpair end's: the kernel
 * connection it has already), the bytes it sent into the ring, which no
 * process ever read, written to it in order, then put at every fd of @s
 * in place of the eventfd, with the application's flags and epoll
 * registrations; the connect and the replay done by @deadline (UINT64_MAX:
 * no bound). 0, or -errno with nothing changed.
 */
static int move_to_kernel(struct ipcd_sock *s, uint64_t deadline)
{
	struct ipcd_spsc rd = s->conn.tx;	/* a reader's view of our own ring */
	size_t cap = s->conn.tx.capacity, have = 0;
	unsigned int nmax = atomic_load(&s->refs), n, i;	/* its fds, calls in progress */
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int *fds = NULL, ks = -1, rc;
	uint8_t *buf = NULL;
	ssize_t got = 0;

	/* Another process holds this end too (fork): it could still write to the ring. */
	if (ipcd_load_relaxed(&s->conn.ctl->holders_a) != 1)
		return -EBUSY;
	if (s->kind == IPCD_CONN_KIND_UNIX && s->kfd < 0)
		return -ENOTCONN;
	buf = malloc(cap);
	fds = malloc(nmax * sizeof(*fds));
	if (!buf || !fds) {
		rc = -ENOMEM;
		goto out;
	}
	/*
	 * What it sent, all of it before anything goes out. A mark is control
	 * data (SCM_RIGHTS, credentials) that went ahead on the kernel socket:
	 * its place in the stream cannot be kept (-ENOMSG), and nothing is
	 * written then. The ring holds at most its capacity.
	 */
	while (have < cap &&
	       (got = ipcd_spsc_read(&rd, buf + have, cap - have, IPCD_SPSC_MARKS)) > 0)
		have += (size_t)got;
	if (have < cap && got < 0 && got != -EAGAIN) {
		rc = (int)got;
		goto out;
	}
	if (s->kind == IPCD_CONN_KIND_UNIX) {
		int sb = 0;
		socklen_t sl = sizeof(sb);

		ks = s->kfd;
		/*
		 * An AF_UNIX stream has no RST: a replay cut short by @deadline
		 * would end in a clean EOF after part of it. Bounded, it is
		 * written only if it fits the kernel's buffer at once.
		 */
		if (deadline != UINT64_MAX &&
		    (ipcd_real.getsockopt(ks, SOL_SOCKET, SO_SNDBUF, &sb, &sl) ||
		     have > (size_t)sb / 2)) {
			rc = -EMSGSIZE;
			goto out;
		}
	} else {
		ks = ipcd_real.socket(s->domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (ks < 0) {
			rc = -errno;
			goto out;
		}
		for (i = 0; i < s->nopts; i++)
			(void)ipcd_real.setsockopt(ks, s->opts[i].level, s->opts[i].name,
						   &s->opts[i].val, sizeof(int));
		if (s->sndbuf)
			(void)ipcd_real.setsockopt(ks, SOL_SOCKET, SO_SNDBUF, &s->sndbuf,
						   sizeof(int));
		if (s->rcvbuf)
			(void)ipcd_real.setsockopt(ks, SOL_SOCKET, SO_RCVBUF, &s->rcvbuf,
						   sizeof(int));
		if (s->linger.l_onoff)
			(void)ipcd_real.setsockopt(ks, SOL_SOCKET, SO_LINGER, &s->linger,
						   sizeof(s->linger));
		ipcd_addr_to(s->domain, s->peer_addr, s->peer_port, (struct sockaddr *)&ss, &len);
		rc = connect_by(ks, (struct sockaddr *)&ss, len, deadline);
		if (rc)
			goto out;
	}
	/*
	 * Blocking for the replay (a socketpair end's kernel socket may be the
	 * application's nonblocking one): all of it goes, or the connection
	 * fails. Once bytes went, it cannot stay ours: a failure from here is a
	 * reset at both ends (an RST for TCP), never a clean EOF after a part.
	 */
	(void)ipcd_real.fcntl(ks, F_SETFL, (void *)(intptr_t)(ipcd_real.fcntl(ks, F_GETFL) &
							      ~O_NONBLOCK));
	rc = send_all(ks, buf, have, deadline);
	if (rc) {
		struct linger rst = { .l_onoff = 1, .l_linger = 0 };

		(void)ipcd_real.setsockopt(ks, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		goto out;
	}
	set_timeo(ks, SO_RCVTIMEO, s->rcvtimeo_ns);
	set_timeo(ks, SO_SNDTIMEO, s->sndtimeo_ns);
	/* The application's shutdowns, after the bytes. */
	if (atomic_load(&s->shut_wr) || atomic_load(&s->shut_rd))
		(void)ipcd_real.shutdown(ks, !atomic_load(&s->shut_rd) ? SHUT_WR
					     : !atomic_load(&s->shut_wr) ? SHUT_RD : SHUT_RDWR);
	if (atomic_load(&s->nonblock))	/* the application's O_NONBLOCK, back */
		(void)ipcd_real.fcntl(ks, F_SETFL, (void *)(intptr_t)(ipcd_real.fcntl(ks, F_GETFL) |
								      O_NONBLOCK));
	n = ipcd_fdtab_fds_of(s, fds, nmax);
	for (i = 0; i < n; i++) {
		if (ipcd_real.dup3(ks, fds[i], ipcd_fdtab_cloexec(fds[i]) ? O_CLOEXEC : 0) < 0)
			continue;	/* only EBUSY/EINTR: that fd keeps the old end */
		ipcd_ep_sock_to_kernel(s, fds[i]);
		if (ipcd_fdtab_take(fds[i]) == s)
			ipcd_sock_put(s);	/* its reference; the caller holds one */
	}
	if (ks == s->kfd) {
		ipcd_fd_hide(s->kfd, false);
		s->kfd = -1;
	}
	atomic_store(&s->moved, true);
	rc = 0;
out:
	if (ks >= 0 && ks != s->kfd)
		ipcd_real.close(ks);
	free(buf);
	free(fds);
	return rc;
}

static bool settle(struct ipcd_sock *s, uint64_t deadline)
{
	char line[160];
	int rc;

	if (atomic_load(&s->moved))
		return true;
	if (!moving(s))
		return false;
	lock(&s->rx_lock);
	lock(&s->tx_lock);
	ipcd_inside++;
	if (!atomic_load(&s->moved) && moving(s)) {
		rc = move_to_kernel(s, deadline);
		if (rc) {
			snprintf(line, sizeof(line), "ipcd: connection %" PRIu64 ": its monitor died "
				 "before the listener took it, and no kernel connection could replace "
				 "it (%s): reset\n", s->conn.conn_id, strerror(-rc));
			ipcd_log_raw(line);
			/* As the kernel's RST: the bytes we sent are read out of the ring by now. */
			ipcd_fetch_or(&s->conn.ctl->reset, IPCD_CONN_RESET_B);
			ipcd_conn_peer_mark(&s->conn);
		}
	}
	ipcd_inside--;
	unlock(&s->tx_lock);
	unlock(&s->rx_lock);
	return atomic_load(&s->moved);
}

bool ipcd_sock_settle(struct ipcd_sock *s)
{
	return settle(s, UINT64_MAX);
}

/* How long a close() may take to move what it wrote (unless SO_LINGER says). */
#define CLOSE_MOVE_NS	1000000000ll

bool ipcd_sock_settle_on_close(struct ipcd_sock *s)
{
	if (s->state != IPCD_SK_CONN || s->conn.acceptor || s->kind == IPCD_CONN_KIND_PIPE ||
	    !s->conn.ctl || s->conn.live_fd < 0)
		return false;
	/* An abortive close (SO_LINGER 0) would discard the bytes anyway. */
	if (s->linger.l_onoff && !s->linger.l_linger)
		return false;
	/* Another process holds this end too: this close() only drops our copy. */
	if (ipcd_load_relaxed(&s->conn.ctl->holders_a) != 1)
		return false;
	if (!moving(s)) {
		/* The listener has it (the usual close): nothing to look at. */
		if (ipcd_load_acquire(&s->conn.ctl->opened) & IPCD_CONN_CLOSED_B)
			return false;
		atomic_store_explicit(&s->live_at, 0, memory_order_relaxed);	/* look now */
		if (!ipcd_sock_peer_check(s) || !moving(s))
			return false;
	}
	return settle(s, ipcd_deadline(s->linger.l_onoff ? s->linger.l_linger * 1000000000ll
							  : CLOSE_MOVE_NS));
}

/* ---- _FORTIFY_SOURCE variants ----------------------------------------------------- */

extern void __chk_fail(void) __attribute__((noreturn));

ssize_t ipcd_sock___read_chk(struct ipcd_sock *s, int fd, void *buf, size_t nbytes, size_t buflen)
{
	if (nbytes > buflen)
		__chk_fail();
	return ipcd_sock_read(s, fd, buf, nbytes);
}

ssize_t ipcd_sock___recv_chk(struct ipcd_sock *s, int fd, void *buf, size_t n, size_t buflen,
			     int flags)
{
	if (n > buflen)
		__chk_fail();
	return ipcd_sock_recv(s, fd, buf, n, flags);
}

ssize_t ipcd_sock___recvfrom_chk(struct ipcd_sock *s, int fd, void *__restrict buf, size_t n,
				 size_t buflen, int flags, __SOCKADDR_ARG addr,
				 socklen_t *__restrict addrlen)
{
	if (n > buflen)
		__chk_fail();
	return ipcd_sock_recvfrom(s, fd, buf, n, flags, addr, addrlen);
}
