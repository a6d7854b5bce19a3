/* SPDX-License-Identifier: MIT */
/*
 * epoll.c - epoll sets that mix accelerated and kernel fds.
 *
 * The application's epoll fd is a real kernel epoll instance. For each one
 * this file keeps a shadow (struct ipcd_ep) of the registrations whose
 * readiness lives in shared memory, so that epoll_wait answers them
 * without a syscall:
 *
 *   the registered fd is        the kernel instance holds      readiness from
 *   a kernel fd                 it, as the application asked   the kernel
 *   a FRESH or LISTEN socket    it, as asked (a listener is     the kernel; the item
 *                               an epoll fd: no EXCLUSIVE)     follows connect/listen
 *   a CONN (accelerated)        its wake eventfd, EPOLLIN|ET,  the rings
 *                               with a tagged data word
 *   an epoll fd with a shadow   it, EPOLLIN|ET, tagged         its shadow, then the kernel
 *
 * An item whose readiness is ours is either listed (ep->head: it may be
 * ready, every epoll_wait looks at it in user space) or armed (found not
 * ready, and its rings' doorbells name its eventfd: the peer's next publish
 * writes the eventfd, the kernel reports the tagged word, and the item is
 * listed again). Every listed item is armed before a thread sleeps in the
 * kernel, so a sleeper can rely on the eventfds.
 *
 * epoll_wait: kernel events a poll() on this fd pulled out first, then the
 * listed items, round robin. The kernel is asked too (zero timeout) when
 * the set has kernel registrations or armed items, so a call reports every
 * ready fd that fits, as the kernel's does: a set of accelerated fds alone
 * whose items are all listed costs no syscall. If nothing is ready: spin
 * a little on the listed items (adaptive, data.c ipcd_spin), arm them,
 * re-check, and sleep in the kernel on the whole set for the exact time
 * left (epoll_pwait2). Kernel errors (EINTR, EBADF, EINVAL) are the kernel's.
 *
 * Level-triggered items are reported while ready. EPOLLET: when something
 * happened since the last report: new bytes (the rx ring's tail moved), a
 * readiness bit that was absent, or room after a send found the ring full.
 * EPOLLONESHOT: off after one report until EPOLL_CTL_MOD.
 *
 * epoll_ctl: the kernel does the same operation on the same fd number
 * first, so every error (EEXIST, ENOENT, EBADF, EPERM, ELOOP, EINVAL, ...)
 * is the kernel's; the shadow changes only after it succeeded. A
 * registration lives as long as its socket (closing one of several
 * duplicates keeps it), as the kernel ties it to the open file.
 *
 * Tagged data words are EP_TAG | item index: the high half is not a
 * canonical address, so no pointer an application stores can look like
 * one (a kernel fd registered with exactly such a word would be taken for
 * ours: a documented limit).
 *
 * Locks: the registry (reg_mu: items, sockets' lists, the set list) before
 * any set's mu; an outer set's mu before an inner set's (the kernel refuses
 * loops, ELOOP, before the shadow sees them).
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include <ipcd/wait.h>

#include "sock.h"

#define EP_TAG		0xa5c3e11d00000000ull	/* high half of our data words */
#define EP_TAG_MASK	0xffffffff00000000ull
#define EP_CHUNK	1024u		/* items allocated at a time */
#define EP_CHUNKS	256u		/* at most EP_CHUNK * EP_CHUNKS items per process */
#define EP_PENDING	16		/* kernel events a poll() pulled for the next epoll_wait */

/* What the kernel accepts with EPOLLEXCLUSIVE (fs/eventpoll.c EPOLLEXCLUSIVE_OK_BITS). */
#define EP_EXCL_OK	(EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | \
			 EPOLLEXCLUSIVE)
#define EP_READINESS	(EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDNORM | EPOLLRDBAND | \
			 EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG | EPOLLRDHUP)

enum ep_kind {
	EPI_KERNEL,		/* FRESH or LISTEN socket: the kernel answers */
	EPI_CONN,		/* accelerated connection: the rings answer */
	EPI_EPOLL,		/* an epoll set with a shadow: the shadow answers */
};

struct ipcd_ep_item {
	struct ipcd_ep *ep;		/* the set it is in; NULL: free */
	struct ipcd_sock *sock;		/* EPI_KERNEL/EPI_CONN (weak: teardown unlinks) */
	struct ipcd_ep *inner;		/* EPI_EPOLL (weak: the inner set's end unlinks) */
	uint32_t idx;			/* in the item chunks: the tag's low half */
	int fd;				/* the fd number registered */
	uint32_t events;		/* as the application registered them */
	uint64_t data;
	uint8_t kind;			/* enum ep_kind */
	bool listed;
	bool off;			/* EPOLLONESHOT fired */
	bool seen_valid;		/* EPOLLET: the seen_* below are set */
	bool kreg;			/* EPI_CONN: the kernel has its eventfd (made lazily) */
	uint32_t seen_mask;
	uint32_t seen_tail;
	uint32_t seen_short;
	struct ipcd_ep_item *lnext, *lprev;	/* ep->head list; free list */
	struct ipcd_ep_item *onext;		/* the owner's registrations */
	struct ipcd_ep_item *enext, *eprev;	/* ep->items */
};

struct ipcd_ep {
	atomic_uint refs;		/* fds naming it + calls in progress */
	pthread_mutex_t mu;
	int fd;				/* one fd naming it (for our own epoll_ctl) */
	struct ipcd_ep_item *items;	/* every item (reg_mu and mu) */
	struct ipcd_ep_item *head, *tail;	/* listed items */
	unsigned int naccel;		/* EPI_CONN + EPI_EPOLL items */
	unsigned int nlisted;
	unsigned int nkernel;		/* kernel registrations (an over-count is harmless) */
	unsigned int sleepers;		/* threads in the kernel on this set */
	bool watched;			/* armed for an outer set or a poll: may be waited on
					 * in the kernel without a sleeper of its own (sticky) */
	unsigned int npending, pending_at;
	struct epoll_event pending[EP_PENDING];
	struct ipcd_spin spin;
	uint64_t live_at;		/* its ends' life sockets last looked at (peers_check) */
	struct ipcd_ep_item *regs;	/* items naming this set in other sets (onext) */
	struct ipcd_ep *next, *prev;	/* every set (fork) / spares */
};

static _Atomic(struct ipcd_ep *) eptab[IPCD_FDTAB_MAX];

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ipcd_ep *sets;		/* every live set */
static struct ipcd_ep *spare_sets;	/* recycled, never freed (as sockets, fdtab.c) */
static _Atomic(struct ipcd_ep_item *) chunks[EP_CHUNKS];
static unsigned int nchunks;
static struct ipcd_ep_item *free_items;

static int fail(int err)
{
	errno = err;
	return -1;
}

/* ---- items ------------------------------------------------------------------ */

/* Under reg_mu. NULL when EP_CHUNK * EP_CHUNKS items exist (the caller: ENOSPC). */
static struct ipcd_ep_item *item_alloc(void)
{
	struct ipcd_ep_item *it = free_items;

	if (!it) {
		struct ipcd_ep_item *c;
		unsigned int i;

		if (nchunks == EP_CHUNKS)
			return NULL;
		c = calloc(EP_CHUNK, sizeof(*c));
		if (!c)
			return NULL;
		for (i = 0; i < EP_CHUNK; i++) {
			c[i].idx = nchunks * EP_CHUNK + i;
			c[i].lnext = i + 1 < EP_CHUNK ? &c[i + 1] : NULL;
		}
		atomic_store_explicit(&chunks[nchunks], c, memory_order_release);
		nchunks++;
		it = c;
	}
	free_items = it->lnext;
	it->lnext = NULL;
	return it;
}

/* The item a tagged word names, or NULL. The caller checks it->ep under its set's mu. */
static struct ipcd_ep_item *item_at(uint64_t word)
{
	uint32_t idx = (uint32_t)word;
	struct ipcd_ep_item *c;

	if (idx >= EP_CHUNK * EP_CHUNKS)
		return NULL;
	c = atomic_load_explicit(&chunks[idx / EP_CHUNK], memory_order_acquire);
	return c ? &c[idx % EP_CHUNK] : NULL;
}

static bool tagged(uint64_t word)
{
	return (word & EP_TAG_MASK) == EP_TAG;
}

static void list_add(struct ipcd_ep *ep, struct ipcd_ep_item *it)
{
	it->lnext = NULL;
	it->lprev = ep->tail;
	if (ep->tail)
		ep->tail->lnext = it;
	else
		ep->head = it;
	ep->tail = it;
	it->listed = true;
	ep->nlisted++;
}

static void list_del(struct ipcd_ep *ep, struct ipcd_ep_item *it)
{
	if (it->lprev)
		it->lprev->lnext = it->lnext;
	else
		ep->head = it->lnext;
	if (it->lnext)
		it->lnext->lprev = it->lprev;
	else
		ep->tail = it->lprev;
	it->lnext = it->lprev = NULL;
	it->listed = false;
	ep->nlisted--;
}

static struct ipcd_ep_item **owner_list(struct ipcd_ep_item *it)
{
	return it->kind == EPI_EPOLL ? &it->inner->regs : &it->sock->ep_items;
}

/* Under reg_mu and it->ep->mu: out of its set and its owner's list, back to the free list. */
static void item_free(struct ipcd_ep_item *it)
{
	struct ipcd_ep *ep = it->ep;
	struct ipcd_ep_item **pp;

	if (it->listed)
		list_del(ep, it);
	if (it->eprev)
		it->eprev->enext = it->enext;
	else
		ep->items = it->enext;
	if (it->enext)
		it->enext->eprev = it->eprev;
	for (pp = owner_list(it); *pp; pp = &(*pp)->onext) {
		if (*pp == it) {
			*pp = it->onext;
			break;
		}
	}
	if (it->kind != EPI_EPOLL && it->sock)
		atomic_fetch_sub_explicit(&it->sock->ep_nregs, 1, memory_order_relaxed);
	/* EPI_KERNEL: its kernel registration may outlive the item (nkernel stays). */
	if (it->kind != EPI_KERNEL)
		ep->naccel--;
	{
		uint32_t idx = it->idx;

		memset(it, 0, sizeof(*it));
		it->idx = idx;
	}
	it->lnext = free_items;
	free_items = it;
}

/* ---- readiness ---------------------------------------------------------------- */

static short ep_events_locked(struct ipcd_ep *ep, int fd);

/* The item's readiness now, and what EPOLLET compares (tail, short count). */
static uint32_t item_mask(struct ipcd_ep_item *it, uint32_t *tail, uint32_t *shrt)
{
	uint32_t want = it->events & EP_READINESS;

	if (it->kind == EPI_CONN) {
		struct ipcd_sock *s = it->sock;

		*tail = ipcd_load_relaxed(&s->conn.rx.shm->tail);
		*shrt = atomic_load_explicit(&s->tx_short, memory_order_relaxed);
		return (uint16_t)ipcd_conn_events(s, (short)want);
	}
	*tail = 0;
	*shrt = 0;
	if (it->kind == EPI_EPOLL) {
		short ev;

		pthread_mutex_lock(&it->inner->mu);
		ev = ep_events_locked(it->inner, it->fd);
		pthread_mutex_unlock(&it->inner->mu);
		return ev ? (EPOLLIN & want) : 0;
	}
	return 0;
}

static bool item_edge(const struct ipcd_ep_item *it, uint32_t mask, uint32_t tail, uint32_t shrt)
{
	if (!it->seen_valid || (mask & ~it->seen_mask))
		return true;
	if ((mask & EPOLLIN) && tail != it->seen_tail)
		return true;
	return (mask & EPOLLOUT) && shrt != it->seen_short;
}

static bool item_due(const struct ipcd_ep_item *it, uint32_t mask, uint32_t tail, uint32_t shrt)
{
	return mask && (!(it->events & EPOLLET) || item_edge(it, mask, tail, shrt));
}

/* Report the listed items that are due, round robin (mu held). */
static int scan(struct ipcd_ep *ep, struct epoll_event *out, int max)
{
	struct ipcd_ep_item *it, *last = ep->tail;
	int n = 0;

	while (n < max && (it = ep->head) != NULL) {
		uint32_t tail, shrt, mask = item_mask(it, &tail, &shrt);
		bool due = item_due(it, mask, tail, shrt);

		it->seen_valid = true;
		it->seen_mask = mask;
		it->seen_tail = tail;
		it->seen_short = shrt;
		list_del(ep, it);
		if (due) {
			out[n].events = mask;
			out[n].data.u64 = it->data;
			n++;
			if (it->events & EPOLLONESHOT)
				it->off = true;
		}
		if (!it->off)
			list_add(ep, it);	/* to the tail: round robin */
		if (it == last)
			break;
	}
	return n;
}

/* Would a scan report something? (mu held; changes nothing) */
static bool probe(struct ipcd_ep *ep)
{
	struct ipcd_ep_item *it;

	if (ep->npending)
		return true;
	for (it = ep->head; it; it = it->lnext) {
		uint32_t tail, shrt, mask = item_mask(it, &tail, &shrt);

		if (item_due(it, mask, tail, shrt))
			return true;
	}
	return false;
}

/* The kernel registration of @it (mu held): what epoll_ctl gets for it. */
static struct epoll_event kernel_event(const struct ipcd_ep_item *it)
{
	struct epoll_event kev;

	if (it->kind == EPI_KERNEL) {
		kev.events = it->events;
		/* A listener is an epoll fd: the kernel refuses EXCLUSIVE on those. */
		if (it->sock && it->sock->state == IPCD_SK_LISTEN)
			kev.events &= ~EPOLLEXCLUSIVE;
		kev.data.u64 = it->data;
	} else {
		kev.events = EPOLLIN | EPOLLET | (it->events & EPOLLEXCLUSIVE);
		kev.data.u64 = EP_TAG | it->idx;
	}
	return kev;
}

/* Can a thread be asleep in the kernel on @ep, directly or through a set or poll? (mu held) */
static bool waited_on(const struct ipcd_ep *ep)
{
	return ep->sleepers || ep->watched;
}

/*
 * An accelerated connection's registration in the kernel set (its eventfd,
 * tagged) is only needed to sleep there: it is made when the item is first
 * armed, not at EPOLL_CTL_ADD, so an event loop that adds, modifies and
 * deletes its connections between sleeps makes no epoll_ctl syscall for
 * them. mu held; false if the kernel refused (the item then stays due).
 */
static bool item_kreg(struct ipcd_ep_item *it, int epfd)
{
	struct epoll_event kev;
	int saved = errno;

	if (it->kreg)
		return true;
	kev = kernel_event(it);
	if (epfd >= 0 && (ipcd_real.epoll_ctl(epfd, EPOLL_CTL_ADD, it->fd, &kev) == 0 ||
			  (errno == EEXIST &&
			   ipcd_real.epoll_ctl(epfd, EPOLL_CTL_MOD, it->fd, &kev) == 0)))
		it->kreg = true;
	errno = saved;
	return it->kreg;
}

/*
 * Before a sleep in the kernel (mu held): arm every listed item and take it
 * off the list, unless it is due after all (then return true: do not sleep).
 */
static bool ep_arm_locked(struct ipcd_ep *ep)
{
	struct ipcd_ep_item *it, *next;
	bool due = ep->npending != 0;

	for (it = ep->head; it; it = next) {
		uint32_t tail, shrt, mask;

		next = it->lnext;
		if (it->kind == EPI_CONN) {
			struct ipcd_sock *s = it->sock;

			if (!item_kreg(it, ep->fd)) {
				due = true;	/* cannot sleep on it: keep looking at its ring */
				continue;
			}
			mask = item_mask(it, &tail, &shrt);
			/* Always the rx side: data, EOF and resets arrive there. */
			ipcd_conn_arm(s, it->fd, POLLIN);
			/* The tx side only when short of room (as the kernel's SOCK_NOSPACE). */
			if ((it->events & (EPOLLOUT | EPOLLWRNORM)) && !(mask & EPOLLOUT))
				ipcd_conn_arm(s, it->fd, POLLOUT);
		} else if (it->kind == EPI_EPOLL) {
			pthread_mutex_lock(&it->inner->mu);
			it->inner->watched = true;
			(void)ep_arm_locked(it->inner);
			pthread_mutex_unlock(&it->inner->mu);
		}
		mask = item_mask(it, &tail, &shrt);
		if (item_due(it, mask, tail, shrt)) {
			due = true;
			continue;
		}
		list_del(ep, it);
	}
	return due;
}

/*
 * Kernel events in @ev[0..n): tagged ones list their items (if still ours),
 * the others stay, compacted. Returns how many stayed. mu held.
 */
static int merge(struct ipcd_ep *ep, struct epoll_event *ev, int n)
{
	int i, k = 0;

	for (i = 0; i < n; i++) {
		struct ipcd_ep_item *it;

		if (!tagged(ev[i].data.u64)) {
			ev[k++] = ev[i];
			continue;
		}
		it = item_at(ev[i].data.u64);
		if (it && it->ep == ep && it->kind != EPI_KERNEL && !it->off && !it->listed)
			list_add(ep, it);
	}
	return k;
}

/* Pull what the kernel has for @ep (zero timeout) into pending and the list (mu held). */
static void pull(struct ipcd_ep *ep, int fd)
{
	struct epoll_event ev[EP_PENDING];
	int n, i;

	if (ep->npending)
		return;
	n = ipcd_real.epoll_wait(fd, ev, EP_PENDING, 0);
	if (n <= 0)
		return;
	n = merge(ep, ev, n);
	for (i = 0; i < n; i++)
		ep->pending[i] = ev[i];
	ep->npending = (unsigned int)n;
	ep->pending_at = 0;
}

static short ep_events_locked(struct ipcd_ep *ep, int fd)
{
	if (probe(ep))
		return POLLIN;
	pull(ep, fd);
	return probe(ep) ? POLLIN : 0;
}

static int pending_take(struct ipcd_ep *ep, struct epoll_event *out, int max)
{
	int n = 0;

	while (ep->npending && n < max) {
		out[n++] = ep->pending[ep->pending_at++];
		ep->npending--;
	}
	if (!ep->npending)
		ep->pending_at = 0;
	return n;
}

/* ---- the set table ---------------------------------------------------------- */

bool ipcd_ep_is(int fd)
{
	return (unsigned int)fd < IPCD_FDTAB_MAX &&
	       atomic_load_explicit(&eptab[fd], memory_order_acquire) != NULL;
}

struct ipcd_ep *ipcd_ep_get(int fd)
{
	struct ipcd_ep *ep;
	unsigned int r;

	if ((unsigned int)fd >= IPCD_FDTAB_MAX)
		return NULL;
	ep = atomic_load_explicit(&eptab[fd], memory_order_acquire);
	if (!ep)
		return NULL;
	r = atomic_load_explicit(&ep->refs, memory_order_relaxed);
	do {
		if (r == 0)
			return NULL;
	} while (!atomic_compare_exchange_weak_explicit(&ep->refs, &r, r + 1,
							memory_order_acquire,
							memory_order_relaxed));
	if (unlikely(atomic_load_explicit(&eptab[fd], memory_order_acquire) != ep)) {
		ipcd_ep_put(ep);
		return NULL;
	}
	return ep;
}

static struct ipcd_ep *ep_new(int fd)
{
	struct ipcd_ep *ep;

	pthread_mutex_lock(&reg_mu);
	ep = spare_sets;
	if (ep)
		spare_sets = ep->next;
	pthread_mutex_unlock(&reg_mu);
	if (!ep) {
		ep = malloc(sizeof(*ep));
		if (!ep)
			return NULL;
	}
	memset(ep, 0, sizeof(*ep));
	pthread_mutex_init(&ep->mu, NULL);
	ep->fd = fd;
	ep->spin.ns = (uint32_t)IPCD_MIN(ipcd_spin_ns, (uint64_t)UINT32_MAX);
	atomic_init(&ep->refs, 1);
	pthread_mutex_lock(&reg_mu);
	ep->next = sets;
	if (sets)
		sets->prev = ep;
	sets = ep;
	pthread_mutex_unlock(&reg_mu);
	return ep;
}

/* The last reference: every registration in it and of it goes (as the kernel's). */
static void ep_free(struct ipcd_ep *ep)
{
	pthread_mutex_lock(&reg_mu);
	pthread_mutex_lock(&ep->mu);
	while (ep->items)
		item_free(ep->items);
	pthread_mutex_unlock(&ep->mu);
	while (ep->regs) {
		struct ipcd_ep_item *it = ep->regs;
		struct ipcd_ep *outer = it->ep;

		pthread_mutex_lock(&outer->mu);
		item_free(it);
		pthread_mutex_unlock(&outer->mu);
	}
	if (ep->prev)
		ep->prev->next = ep->next;
	else
		sets = ep->next;
	if (ep->next)
		ep->next->prev = ep->prev;
	pthread_mutex_destroy(&ep->mu);
	ep->next = spare_sets;
	spare_sets = ep;
	pthread_mutex_unlock(&reg_mu);
}

void ipcd_ep_put(struct ipcd_ep *ep)
{
	int saved = errno;

	if (atomic_fetch_sub_explicit(&ep->refs, 1, memory_order_acq_rel) == 1)
		ep_free(ep);
	errno = saved;
}

void ipcd_ep_dup(struct ipcd_ep *ep, int newfd)
{
	if ((unsigned int)newfd >= IPCD_FDTAB_MAX)
		return;		/* beyond the table: that fd is plain (its waits are the kernel's) */
	atomic_fetch_add_explicit(&ep->refs, 1, memory_order_relaxed);
	atomic_store_explicit(&eptab[newfd], ep, memory_order_release);
}

void ipcd_ep_fd_gone(int fd)
{
	struct ipcd_ep *ep;
	unsigned int i;

	if ((unsigned int)fd >= IPCD_FDTAB_MAX)
		return;
	ep = atomic_exchange_explicit(&eptab[fd], NULL, memory_order_acq_rel);
	if (!ep)
		return;
	pthread_mutex_lock(&ep->mu);
	if (ep->fd == fd) {
		/* Another fd naming it (a duplicate), for our own epoll_ctl calls. */
		ep->fd = -1;
		for (i = 0; i < IPCD_FDTAB_MAX && atomic_load(&ep->refs) > 1; i++) {
			if (atomic_load_explicit(&eptab[i], memory_order_relaxed) == ep) {
				ep->fd = (int)i;
				break;
			}
		}
	}
	pthread_mutex_unlock(&ep->mu);
	ipcd_ep_put(ep);
}

void ipcd_ep_drop_range(unsigned int first, unsigned int last)
{
	unsigned int fd;

	if (first >= IPCD_FDTAB_MAX)
		return;
	if (last >= IPCD_FDTAB_MAX)
		last = IPCD_FDTAB_MAX - 1;
	for (fd = first; fd <= last; fd++)
		if (atomic_load_explicit(&eptab[fd], memory_order_relaxed))
			ipcd_ep_fd_gone((int)fd);
}

bool ipcd_ep_accel(struct ipcd_ep *ep)
{
	bool r;

	pthread_mutex_lock(&ep->mu);
	ep->watched = true;	/* in a poll/select: connections added later arm at once */
	r = ep->naccel || ep->npending;
	pthread_mutex_unlock(&ep->mu);
	return r;
}

short ipcd_ep_poll_events(struct ipcd_ep *ep, int fd)
{
	short ev;

	pthread_mutex_lock(&ep->mu);
	ev = ep_events_locked(ep, fd);
	pthread_mutex_unlock(&ep->mu);
	return ev;
}

bool ipcd_ep_arm(struct ipcd_ep *ep)
{
	bool due;

	pthread_mutex_lock(&ep->mu);
	ep->watched = true;
	due = ep_arm_locked(ep);
	pthread_mutex_unlock(&ep->mu);
	return !due;
}

/* ---- sockets changing kind -------------------------------------------------------- */


void ipcd_ep_sock_changed(struct ipcd_sock *s, int fd)
{
	struct ipcd_ep_item *it;
	bool wake = false;

	pthread_mutex_lock(&reg_mu);
	for (it = s->ep_items; it; it = it->onext) {
		struct ipcd_ep *ep = it->ep;
		struct epoll_event kev;

		if (it->kind != EPI_KERNEL || it->fd != fd)
			continue;
		pthread_mutex_lock(&ep->mu);
		if (s->state == IPCD_SK_CONN) {
			it->kind = EPI_CONN;
			ep->naccel++;
			if (ep->nkernel)
				ep->nkernel--;	/* the socket's registration went with it */
			it->seen_valid = false;
			if (!it->off)
				list_add(ep, it);
			wake |= ep->sleepers != 0;
		}
		/*
		 * The fd now names another kernel object (an eventfd, an epoll
		 * fd): the old one's registration went with it (or stays with
		 * its other holders), the new one needs its own.
		 */
		kev = kernel_event(it);
		if (ep->fd >= 0 && ipcd_real.epoll_ctl(ep->fd, EPOLL_CTL_ADD, fd, &kev) == 0)
			it->kreg = true;
		pthread_mutex_unlock(&ep->mu);
	}
	pthread_mutex_unlock(&reg_mu);
	if (wake)
		(void)ipcd_eventfd_signal(fd);	/* a sleeper re-checks the new item */
}

/* What happens to the kernel side of a socket's registrations under one fd. */
enum fd_act {
	FD_CLOSING,	/* CONN, its last fd: they leave the kernel sets */
	FD_LEAVING,	/* CONN, one fd of several: the lazy ones are made now */
	FD_REPLACED,	/* a kernel object (FRESH, LISTEN) about to be replaced at fd */
};

/* @act on each of @s's registrations under @fd (reg_mu, then each set's mu). */
static void sock_fd_act(struct ipcd_sock *s, int fd, enum fd_act act)
{
	uint8_t kind = act == FD_REPLACED ? EPI_KERNEL : EPI_CONN;
	struct ipcd_ep_item *it;

	pthread_mutex_lock(&reg_mu);
	for (it = s->ep_items; it; it = it->onext) {
		int epfd;

		if (it->kind != kind || it->fd != fd)
			continue;
		pthread_mutex_lock(&it->ep->mu);
		epfd = it->ep->fd;
		switch (act) {
		case FD_CLOSING:
			if (it->kreg && epfd >= 0)
				(void)ipcd_real.epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
			it->kreg = false;
			break;
		case FD_LEAVING:
			(void)item_kreg(it, epfd);
			break;
		case FD_REPLACED:
			if (epfd >= 0)
				(void)ipcd_real.epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
			break;
		}
		pthread_mutex_unlock(&it->ep->mu);
	}
	pthread_mutex_unlock(&reg_mu);
}

void ipcd_ep_sock_closing(struct ipcd_sock *s, int fd)
{
	sock_fd_act(s, fd, FD_CLOSING);
}

void ipcd_ep_sock_fd_leaving(struct ipcd_sock *s, int fd)
{
	sock_fd_act(s, fd, FD_LEAVING);
}

void ipcd_ep_sock_kernel_del(struct ipcd_sock *s, int fd)
{
	sock_fd_act(s, fd, FD_REPLACED);
}

void ipcd_ep_sock_to_kernel(struct ipcd_sock *s, int fd)
{
	struct ipcd_ep_item *it;

	pthread_mutex_lock(&reg_mu);
	for (it = s->ep_items; it; it = it->onext) {
		struct ipcd_ep *ep = it->ep;
		struct epoll_event kev;

		if (it->kind != EPI_CONN || it->fd != fd)
			continue;
		pthread_mutex_lock(&ep->mu);
		if (it->listed)
			list_del(ep, it);
		it->kind = EPI_KERNEL;
		it->kreg = false;
		if (ep->naccel)
			ep->naccel--;
		ep->nkernel++;
		/* The eventfd's registration went with it: the socket's, as the application asked. */
		kev = kernel_event(it);
		if (it->off)
			kev.events &= ~EP_READINESS;	/* an EPOLLONESHOT that fired: until MOD */
		if (ep->fd >= 0)
			(void)ipcd_real.epoll_ctl(ep->fd, EPOLL_CTL_ADD, fd, &kev);
		pthread_mutex_unlock(&ep->mu);
	}
	pthread_mutex_unlock(&reg_mu);
}

void ipcd_ep_sock_gone(struct ipcd_sock *s)
{
	pthread_mutex_lock(&reg_mu);
	while (s->ep_items) {
		struct ipcd_ep_item *it = s->ep_items;
		struct ipcd_ep *ep = it->ep;

		pthread_mutex_lock(&ep->mu);
		item_free(it);
		pthread_mutex_unlock(&ep->mu);
	}
	pthread_mutex_unlock(&reg_mu);
}

/* ---- fork ------------------------------------------------------------------------ */

void ipcd_ep_fork_prepare(void)
{
	pthread_mutex_lock(&reg_mu);
}

void ipcd_ep_fork_parent(void)
{
	pthread_mutex_unlock(&reg_mu);
}

void ipcd_ep_fork_child(void)
{
	struct ipcd_ep *ep;

	/*
	 * The child shares the kernel instances with the parent and has a copy
	 * of their shadows; a set's lock held by another thread at the fork
	 * would never be released here.
	 */
	for (ep = sets; ep; ep = ep->next) {
		pthread_mutex_init(&ep->mu, NULL);
		ep->sleepers = 0;
	}
	pthread_mutex_init(&reg_mu, NULL);
}

/* ---- the calls ------------------------------------------------------------------- */

static int ep_created(int fd)
{
	struct ipcd_ep *ep;

	if (fd < 0 || fd >= IPCD_FDTAB_MAX || ipcd_inside)
		return fd;
	ep = ep_new(fd);
	if (ep)
		atomic_store_explicit(&eptab[fd], ep, memory_order_release);
	/* Without a shadow the set is the kernel's alone (accelerated fds as eventfds). */
	return fd;
}

IPCD_EXPORT int epoll_create(int size)
{
	ipcd_init();
	if (unlikely(!ipcd_real.epoll_create))
		return ipcd_enosys();
	return ep_created(ipcd_real.epoll_create(size));
}

IPCD_EXPORT int epoll_create1(int flags)
{
	ipcd_init();
	if (unlikely(!ipcd_real.epoll_create1))
		return ipcd_enosys();
	return ep_created(ipcd_real.epoll_create1(flags));
}

static struct ipcd_ep_item *item_find(struct ipcd_ep_item *list, struct ipcd_ep *ep, int fd)
{
	for (; list; list = list->onext)
		if (list->ep == ep && list->fd == fd)
			return list;
	return NULL;
}

/*
 * epoll_ctl on a set of ours for a socket of ours (@s) or a set of ours
 * (@inner). Under reg_mu and ep->mu: the kernel first, then the shadow.
 */
static int ctl_item(struct ipcd_ep *ep, int epfd, int op, int fd, struct epoll_event *event,
		    struct ipcd_sock *s, struct ipcd_ep *inner)
{
	struct ipcd_ep_item **owner = inner ? &inner->regs : &s->ep_items;
	struct ipcd_ep_item *it = item_find(*owner, ep, fd), *fresh = NULL;
	struct epoll_event kev;
	uint8_t kind = inner ? EPI_EPOLL : s->state == IPCD_SK_CONN ? EPI_CONN : EPI_KERNEL;
	int rc;

	if (op != EPOLL_CTL_DEL) {
		if ((event->events & EPOLLEXCLUSIVE) &&
		    (op == EPOLL_CTL_MOD || (event->events & ~EP_EXCL_OK) || kind == EPI_EPOLL))
			return fail(EINVAL);
		if (op == EPOLL_CTL_MOD && it && (it->events & EPOLLEXCLUSIVE))
			return fail(EINVAL);
	}
	if (kind == EPI_CONN) {
		/* The shadow alone (item_kreg): its errors are the kernel's. */
		if (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD && op != EPOLL_CTL_DEL)
			return fail(EINVAL);
		if (op == EPOLL_CTL_ADD ? it != NULL : !it)
			return fail(op == EPOLL_CTL_ADD ? EEXIST : ENOENT);
		if (op == EPOLL_CTL_DEL) {
			if (it->kreg)
				(void)ipcd_real.epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
			item_free(it);
			return 0;
		}
	}
	if (op == EPOLL_CTL_ADD && !it) {
		it = fresh = item_alloc();
		if (!it)
			return fail(ENOSPC);
		it->kind = kind;
	}
	if (op == EPOLL_CTL_DEL || !it) {
		rc = ipcd_real.epoll_ctl(epfd, op, fd, event);
		if (rc == 0 && it)
			item_free(it);
		return rc;
	}
	/* ADD or MOD with an item: register what the kernel must watch. */
	if (kind == EPI_CONN)
		goto shadow;	/* the kernel lazily (item_kreg), below if a thread sleeps */
	{
		struct ipcd_ep_item tmp = *it;

		tmp.kind = kind;
		tmp.sock = s;
		tmp.events = event->events;
		tmp.data = event->data.u64;
		kev = kernel_event(&tmp);
	}
	rc = ipcd_real.epoll_ctl(epfd, op, fd, &kev);
	if (rc) {
		if (fresh) {
			int err = errno;

			fresh->lnext = free_items;
			free_items = fresh;
			errno = err;
		}
		return rc;
	}
shadow:
	if (fresh && inner) {
		pthread_mutex_lock(&inner->mu);		/* outer before inner */
		inner->watched = true;	/* waited on through this set from now on */
		pthread_mutex_unlock(&inner->mu);
	}
	if (fresh) {
		it->ep = ep;
		it->fd = fd;
		it->sock = s;
		it->inner = inner;
		it->enext = ep->items;
		if (ep->items)
			ep->items->eprev = it;
		ep->items = it;
		it->onext = *owner;
		*owner = it;
		if (!inner)
			atomic_fetch_add_explicit(&s->ep_nregs, 1, memory_order_relaxed);
		if (kind != EPI_KERNEL)
			ep->naccel++;
		else
			ep->nkernel++;
	}
	it->events = event->events;
	it->data = event->data.u64;
	it->off = false;
	it->seen_valid = false;
	/*
	 * A thread asleep in the kernel on the set (or on a set or poll that
	 * holds it) must be woken by this item: registered and armed now, as
	 * ep_arm_locked() would (a recv that found nothing does not arm a
	 * socket of our sets: data.c); epoll_ctl() then signals it if ready.
	 */
	if (kind == EPI_CONN && waited_on(ep)) {
		if (!item_kreg(it, epfd)) {
			if (fresh) {
				item_free(it);
				return fail(ENOSPC);	/* the kernel's watch limit */
			}
		} else {
			ipcd_conn_arm(s, fd, (short)(POLLIN | ((it->events & (EPOLLOUT | EPOLLWRNORM))
							      ? POLLOUT : 0)));
		}
	}
	if (kind != EPI_KERNEL && !it->listed)
		list_add(ep, it);
	return 0;
}

IPCD_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	struct ipcd_ep *ep, *inner = NULL;
	struct ipcd_sock *s = NULL;
	bool wake = false;
	int rc;

	ipcd_init();
	if (unlikely(!ipcd_real.epoll_ctl))
		return ipcd_enosys();
	if (ipcd_inside || !(ep = ipcd_ep_get(epfd)))
		return ipcd_real.epoll_ctl(epfd, op, fd, event);
	if (fd != epfd && (op == EPOLL_CTL_DEL || event)) {
		s = ipcd_sock_get(fd);
		if (!s)
			inner = ipcd_ep_get(fd);
	}
	if (!s && !inner) {
		/* A kernel fd: the kernel alone. */
		rc = ipcd_real.epoll_ctl(epfd, op, fd, event);
		if (rc == 0 && op != EPOLL_CTL_MOD) {
			pthread_mutex_lock(&ep->mu);
			if (op == EPOLL_CTL_ADD)
				ep->nkernel++;
			else if (ep->nkernel)
				ep->nkernel--;
			pthread_mutex_unlock(&ep->mu);
		}
		ipcd_ep_put(ep);
		return rc;
	}
	pthread_mutex_lock(&reg_mu);
	pthread_mutex_lock(&ep->mu);
	rc = ctl_item(ep, epfd, op, fd, event, s, inner);
	wake = rc == 0 && op != EPOLL_CTL_DEL && s && s->state == IPCD_SK_CONN && waited_on(ep);
	pthread_mutex_unlock(&ep->mu);
	pthread_mutex_unlock(&reg_mu);
	/* A thread asleep on the set re-checks (the kernel wakes waiters on a ready ADD). */
	if (wake && ipcd_conn_events(s, (short)(event->events & EP_READINESS)))
		(void)ipcd_eventfd_signal(fd);
	if (s)
		ipcd_sock_put(s);
	if (inner)
		ipcd_ep_put(inner);
	ipcd_ep_put(ep);
	return rc;
}

/* Sleep in the kernel on the set (mu dropped meanwhile); tagged events listed. */
static int kernel_wait(struct ipcd_ep *ep, int epfd, struct epoll_event *ev, int max,
		       int64_t left_ns, const sigset_t *ss)
{
	struct timespec ts, *tp = NULL;
	int n, err;

	if (left_ns >= 0) {
		ts.tv_sec = left_ns / 1000000000;
		ts.tv_nsec = left_ns % 1000000000;
		tp = &ts;
	}
	ep->sleepers++;
	pthread_mutex_unlock(&ep->mu);
	if (ipcd_real.epoll_pwait2)
		n = ipcd_real.epoll_pwait2(epfd, ev, max, tp, ss);
	else
		n = ipcd_real.epoll_pwait(epfd, ev, max,
					  left_ns < 0 ? -1 :
					  (int)IPCD_MIN((left_ns + 999999) / 1000000, (int64_t)INT_MAX),
					  ss);
	err = errno;
	pthread_mutex_lock(&ep->mu);
	ep->sleepers--;
	if (n < 0) {
		errno = err;
		return -1;
	}
	return merge(ep, ev, n);
}

static bool probe_cb(void *arg)
{
	return probe(arg);
}

/*
 * A sleep of ours on @ep timed out: look for peers gone without a word
 * (attach.h ipcd_conn_peer_check; mu held). An end found so has its
 * eventfd signalled, as the monitor does at a death, so that the kernel
 * reports it and every thread waiting on it sees it.
 */
static void peers_check(struct ipcd_ep *ep)
{
	struct ipcd_ep_item *it;

	for (it = ep->items; it; it = it->enext)
		if (it->kind == EPI_CONN && it->sock && it->sock->conn.live_fd >= 0 &&
		    ipcd_sock_peer_check(it->sock) && ipcd_fdtab_get(it->fd) == it->sock)
			(void)ipcd_eventfd_signal_out(it->fd);
}

static int ep_wait(struct ipcd_ep *ep, int epfd, struct epoll_event *evs, int max,
		   int64_t tmo_ns, const sigset_t *ss)
{
	uint64_t deadline = ipcd_deadline(tmo_ns);
	int n;

	pthread_mutex_lock(&ep->mu);
	for (;;) {
		bool had_pending = ep->npending != 0, slice;
		int64_t left;

		/* Every time round, at most once a second: a busy loop may never sleep. */
		if (ep->naccel) {
			uint64_t now = ipcd_now_ns();

			if (now - ep->live_at >= (uint64_t)IPCD_LIVE_CHECK_NS) {
				ep->live_at = now;
				peers_check(ep);
			}
		}

		n = pending_take(ep, evs, max);
		n += scan(ep, evs + n, max - n);
		if (n) {
			/*
			 * Ready kernel fds, and armed items whose eventfd fired,
			 * are reported with them, as the kernel reports every
			 * ready fd that fits: one zero-timeout syscall, only when
			 * the set has such registrations.
			 */
			if (n < max && !had_pending &&
			    (ep->nkernel || ep->nlisted < ep->naccel)) {
				int k = kernel_wait(ep, epfd, evs + n, max - n, 0, NULL);

				if (k > 0)
					n += k;
			}
			break;
		}
		left = ipcd_remaining(deadline);
		if (left == 0) {
			/* A poll: ask the kernel, arm nothing. */
			n = kernel_wait(ep, epfd, evs, max, 0, ss);
			if (n >= 0)
				n += scan(ep, evs + n, max - n);
			break;
		}
		if (ep->head && ipcd_spin(&ep->spin, probe_cb, ep))
			continue;
		if (ep_arm_locked(ep))
			continue;
		/* Accelerated ends: in slices, to look for a peer's hang-up now and then. */
		slice = ep->naccel && (left < 0 || left > IPCD_LIVE_CHECK_NS);
		n = kernel_wait(ep, epfd, evs, max, slice ? IPCD_LIVE_CHECK_NS : left, ss);
		if (n < 0)
			break;
		n += scan(ep, evs + n, max - n);
		if (n || ipcd_remaining(deadline) == 0)
			break;
		/* Only stale eventfd edges: sleep again for what is left. */
	}
	pthread_mutex_unlock(&ep->mu);
	return n;
}

/* The set behind @epfd if epoll_wait must answer it here (a reference), else NULL. */
static struct ipcd_ep *ep_enter(int epfd, const struct epoll_event *evs, int max)
{
	struct ipcd_ep *ep;

	if (ipcd_inside || max <= 0 || max > INT_MAX / (int)sizeof(struct epoll_event) ||
	    !evs || !(ep = ipcd_ep_get(epfd)))
		return NULL;	/* the kernel's answer (EINVAL, EFAULT, EBADF) */
	/*
	 * Even with no accelerated fd now: another thread may ADD one while we
	 * sleep, and a registration the kernel keeps after its socket went (the
	 * peer holds a reference to its eventfd) may still fire: tagged words
	 * must go through merge(), never to the application.
	 */
	return ep;
}

/*
 * A NULL events array on a set of ours: the kernel's EFAULT comes when it
 * has an event to copy, so an accelerated item that is ready now answers
 * EFAULT here; the others are armed (and registered) so that one becoming
 * ready makes the kernel's call fail the same way.
 */
static bool null_events_ready(int epfd, const struct epoll_event *evs, int max)
{
	struct ipcd_ep *ep;
	bool ready;

	if (evs || max <= 0 || ipcd_inside || !(ep = ipcd_ep_get(epfd)))
		return false;
	pthread_mutex_lock(&ep->mu);
	ready = probe(ep) || ep_arm_locked(ep);
	pthread_mutex_unlock(&ep->mu);
	ipcd_ep_put(ep);
	return ready;
}

static int64_t ms_ns(int ms)
{
	return ms < 0 ? -1 : (int64_t)ms * 1000000;
}

IPCD_EXPORT int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	struct ipcd_ep *ep;
	int n;

	ipcd_init();
	if (unlikely(!ipcd_real.epoll_wait))
		return ipcd_enosys();
	ep = ep_enter(epfd, events, maxevents);
	if (!ep)
		return null_events_ready(epfd, events, maxevents) ? fail(EFAULT)
								  : ipcd_real.epoll_wait(epfd, events, maxevents, timeout);
	n = ep_wait(ep, epfd, events, maxevents, ms_ns(timeout), NULL);
	ipcd_ep_put(ep);
	return n;
}

IPCD_EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
			    const __sigset_t *ss)
{
	struct ipcd_ep *ep;
	int n;

	ipcd_init();
	if (unlikely(!ipcd_real.epoll_pwait))
		return ipcd_enosys();
	ep = ep_enter(epfd, events, maxevents);
	if (!ep)
		return null_events_ready(epfd, events, maxevents) ? fail(EFAULT)
								  : ipcd_real.epoll_pwait(epfd, events, maxevents, timeout, ss);
	n = ep_wait(ep, epfd, events, maxevents, ms_ns(timeout), ss);
	ipcd_ep_put(ep);
	return n;
}

IPCD_EXPORT int epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
			     const struct timespec *timeout, const __sigset_t *ss)
{
	struct ipcd_ep *ep;
	int64_t ns = -1;
	int n;

	ipcd_init();
	if (unlikely(!ipcd_real.epoll_pwait2))
		return ipcd_enosys();
	if (timeout) {
		/* A bad timespec: the kernel's EINVAL. */
		if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000)
			return ipcd_real.epoll_pwait2(epfd, events, maxevents, timeout, ss);
		if (timeout->tv_sec < INT64_MAX / 1000000000 - 1)
			ns = timeout->tv_sec * 1000000000ll + timeout->tv_nsec;
	}
	ep = ep_enter(epfd, events, maxevents);
	if (!ep)
		return null_events_ready(epfd, events, maxevents) ? fail(EFAULT)
								  : ipcd_real.epoll_pwait2(epfd, events, maxevents, timeout, ss);
	n = ep_wait(ep, epfd, events, maxevents, ns, ss);
	ipcd_ep_put(ep);
	return n;
}
