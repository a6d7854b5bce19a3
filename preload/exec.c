/* SPDX-License-Identifier: MIT */
/*
 * exec.c - accelerated connections across execve and posix_spawn.
 *
 * The kernel keeps a socket open across execve unless it is close-on-exec.
 * An accelerated connection is more than its fd: a mapping (which exec
 * discards), this library's table (which the new image does not have) and
 * hidden fds. So before an exec that keeps some of them (fds without the
 * application's FD_CLOEXEC), the old image hands them over:
 *
 *   old image (exec wrapper, or posix_spawn for its child)
 *     for each connection end with an inheritable fd: its hold token
 *     (IPCD_OP_HOLD, if it has none) and its region's memfd from the monitor
 *     (IPCD_OP_REGION); the records below, in a memfd; the application's
 *     fds, the peer's wake eventfd, the token and the memfd made inheritable;
 *     IPCD_HANDOFF=<memfd> (and our LD_PRELOAD, if the new environment lost
 *     it) added to the environment the new image gets.
 *   new image (the constructor, before main)
 *     reads the records, finds the application's fds (by their eventfd's
 *     id, so a posix_spawn dup2 file action is found too), maps each region
 *     as a fresh connect would, and installs the sockets in the table with
 *     their state (O_NONBLOCK, shutdowns, timeouts, options, addresses).
 *
 * Holders (sock.h): an exec of this process keeps its count for the ends it
 * hands over (the new image inherits it). A close-on-exec end with a hold
 * token keeps its count too and is not touched: the exec closes the token
 * with the fd (whatever the new image is, preloaded or not), the monitor
 * closes the end if that was its last holder, and a failed exec leaves it
 * open; one without a token is released before the exec. A posix_spawn
 * child is counted before the spawn (and counted back if it fails). An end
 * the new image cannot take (no fd left for it, a bad record) is released
 * there as a close would. If the handover cannot be
 * prepared (no monitor, a refusal, a limit), that fd is closed by the exec
 * as a close-on-exec one would be: its peer reads EOF, the new image finds
 * the fd number free; one line on stderr says so.
 *
 * Listening sockets are handed over as a fork shares them: the listener
 * stops taking lanes (a LISTEN without IPCD_LISTEN_LANES, so the monitor
 * keeps it for its inheritors when the old registration ends), and the new
 * image gets its epoll fd, kernel listener, accept eventfd, bind id and
 * accept token: it accepts with the token, as a prefork worker does, and
 * adopts the listener if its owner is gone (monitor/conns.c "Shared
 * listeners"). If that cannot be prepared, the exec gets the kernel
 * listener at the application's fd number (put back if the exec fails):
 * kernel connections still work. Not handed over: epoll sets of ours (the
 * new image gets the bare kernel epoll fd).
 *
 * vfork is fork here (fork.c): a vfork child shares its parent's memory, in
 * which a handover cannot be prepared without corrupting the parent's.
 */
#undef _FORTIFY_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "sock.h"

#define HO_MAGIC	0x46464f48u	/* "HOFF" */
#define HO_VERSION	2u	/* 2: struct ho_end.live_fd (ABI 3.7) */
#define HO_ENV		"IPCD_HANDOFF"
#define HO_ENDS_MAX	4096u		/* ends one exec hands over; more are closed */
#define HO_FDS_MAX	16384u		/* application fds naming them */

/* The memfd's contents: struct ho_hdr, ends[n_ends], int32_t fds[n_fds]. */
struct ho_hdr {
	uint32_t magic;
	uint32_t version;
	uint32_t n_ends;
	uint32_t n_fds;
	int32_t pid;			/* who wrote it: the new image's own pid (exec) */
	uint32_t spawn;			/* ... or its parent's (posix_spawn) */
};

struct ho_end {
	uint64_t conn_id;
	uint64_t region_size;
	uint64_t efd_id;		/* fdinfo "eventfd-id" of the end's eventfd; 0: unknown */
	int32_t region_fd;
	int32_t wake_peer;
	int32_t hold_fd;
	int32_t domain;
	uint32_t fd_first;		/* its application fds: fds[fd_first .. + n_fds) */
	uint32_t n_fds;
	int64_t rcvtimeo_ns;
	int64_t sndtimeo_ns;
	int32_t sndbuf;
	int32_t rcvbuf;
	int32_t linger_onoff;
	int32_t linger_linger;
	uint32_t nopts;
	struct ipcd_sockopt opts[IPCD_SOCK_OPTS];
	uint8_t self_addr[16];
	uint8_t peer_addr[16];
	uint16_t self_port;
	uint16_t peer_port;
	uint8_t acceptor;
	uint8_t nonblock;
	uint8_t shut_rd;
	uint8_t shut_wr;
	uint8_t reset_told;
	uint8_t rst_sent;
	uint8_t rst_told;
	uint8_t drop;			/* close-on-exec: the new image only closes its token */
	uint8_t listen;			/* a listener: the fields below, not the connection's */
	uint8_t kind;			/* a connection end's IPCD_CONN_KIND_* */
	uint32_t bind_id;
	int32_t kfd;			/* the kernel listener */
	int32_t lfd;			/* the monitor's accept eventfd */
	int32_t backlog;
	uint64_t accept_token;
	int32_t live_fd;		/* a connection end's life socket; -1: none */
	uint32_t pad;
};

/* The old image's side, from prepare to the exec (or its failure). */
struct ho_slot {
	struct ipcd_sock *s;		/* a reference is held */
	int any_fd;			/* one of its fds, inheritable or not */
	int region_fd;			/* ours until the exec */
	bool drop;			/* no inheritable fd: only its hold token goes */
	bool listen;			/* a listener (else a connection end) */
	bool ready;			/* it goes: region (or token, if @drop) in hand */
};

struct ho_state {
	bool spawn;			/* for a posix_spawn child (else this process's exec) */
	bool all;			/* close-on-exec ends too (a spawn's dup2 may keep them) */
	int memfd;
	unsigned int n_slots;
	unsigned int n_fds;
	struct ho_slot *slots;		/* [HO_ENDS_MAX] */
	int32_t *fds;			/* [HO_FDS_MAX] */
	uint32_t *fd_slot;		/* [HO_FDS_MAX] */
	int32_t *saved;			/* [HO_FDS_MAX] a listener's epoll fd while the kernel
					 * listener stands in for it (listeners_swap); -1 */
	char **envp;			/* what the exec gets; NULL: the caller's */
	void *mem;
	size_t mem_size;
};

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void log_line(const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (ipcd_quiet())
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	ipcd_log_raw(line);
}

static void set_cloexec(int fd, bool on)
{
	if (fd >= 0)
		ipcd_real.fcntl(fd, F_SETFD, (void *)(intptr_t)(on ? FD_CLOEXEC : 0));
}

/* The fdinfo "eventfd-id" of @fd (Linux 6.0+), 0 if it has none. */
static uint64_t eventfd_id(int fd)
{
	char path[64], buf[512];
	uint64_t id = 0;
	const char *p;
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return 0;
	n = read(f, buf, sizeof(buf) - 1);
	ipcd_real.close(f);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strstr(buf, "eventfd-id:");
	if (p)
		id = strtoull(p + strlen("eventfd-id:"), NULL, 10);
	return id;
}

/* What /proc/self/fd/@fd links to, in @buf (@len bytes); false if nothing. */
static bool fd_link(int fd, char *buf, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, len - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* Is @fd an anonymous inode of @kind ("eventfd", "eventpoll")? */
static bool is_anon(int fd, const char *kind)
{
	char link[64], want[64];

	snprintf(want, sizeof(want), "anon_inode:[%s]", kind);
	return fd_link(fd, link, sizeof(link)) && !strcmp(link, want);
}

/* ---- the old image ------------------------------------------------------------ */

/* Our library's path, for an environment that lost LD_PRELOAD. */
static const char *self_path(void)
{
	Dl_info info;

	if (dladdr((void *)self_path, &info) && info.dli_fname && info.dli_fname[0] == '/')
		return info.dli_fname;
	return NULL;
}

/*
 * Our settings as this process found them at load (the constructor): a new
 * image that gets sockets from us must reach the same monitor, and programs
 * such as nginx hand their new binary a cleared environment.
 */
static const char *const kept_names[] = { "IPCD_SOCKET", "IPCD_SPIN_US", "IPCD_QUIET",
					  "IPCD_LANES", "IPCD_PIPES" };
static char kept_vals[IPCD_ARRAY_SIZE(kept_names)][256];

static void keep_settings(void)
{
	unsigned int i;

	for (i = 0; i < IPCD_ARRAY_SIZE(kept_names); i++) {
		const char *v = getenv(kept_names[i]);

		if (v && strlen(v) < sizeof(kept_vals[i]))
			memcpy(kept_vals[i], v, strlen(v) + 1);
	}
}

static bool env_has(char *const *env, size_t n, const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < n; i++)
		if (!strncmp(env[i], name, len) && env[i][len] == '=')
			return true;
	return false;
}

/*
 * The environment the new image gets: @envp without any IPCD_HANDOFF, plus
 * ours, plus LD_PRELOAD with this library and our settings (kept_names)
 * if it lost them. In st->mem.
 */
static int build_env(struct ho_state *st, char *const envp[], char *space, size_t space_len)
{
	const char *lib = self_path();
	bool has_lib = false;
	size_t n = 0, i, used = 0;
	char **out;

	for (i = 0; envp && envp[i]; i++)
		n++;
	out = (char **)(void *)space;
	used = (n + 3 + IPCD_ARRAY_SIZE(kept_names)) * sizeof(char *);
	if (used > space_len)
		return -E2BIG;
	n = 0;
	for (i = 0; envp && envp[i]; i++) {
		if (!strncmp(envp[i], HO_ENV "=", sizeof(HO_ENV)))
			continue;
		if (!strncmp(envp[i], "LD_PRELOAD=", 11) && lib && strstr(envp[i], lib))
			has_lib = true;
		out[n++] = envp[i];
	}
	out[n] = space + used;
	used += (size_t)snprintf(out[n], space_len - used, HO_ENV "=%d", st->memfd) + 1;
	n++;
	for (i = 0; i < IPCD_ARRAY_SIZE(kept_names); i++) {
		if (!kept_vals[i][0] || env_has(out, n, kept_names[i]))
			continue;
		if (used + strlen(kept_names[i]) + strlen(kept_vals[i]) + 2 > space_len)
			return -E2BIG;
		out[n] = space + used;
		used += (size_t)snprintf(out[n], space_len - used, "%s=%s", kept_names[i],
					 kept_vals[i]) + 1;
		n++;
	}
	if (lib && !has_lib) {
		const char *old = NULL;
		size_t j;

		for (j = 0; j < n; j++)
			if (!strncmp(out[j], "LD_PRELOAD=", 11))
				break;
		if (j < n)
			old = out[j] + 11;
		if (used + strlen(lib) + (old ? strlen(old) : 0) + 16 > space_len)
			return -E2BIG;
		if (j == n)
			n++;
		out[j] = space + used;
		used += (size_t)snprintf(out[j], space_len - used, "LD_PRELOAD=%s%s%s", lib,
					 old && *old ? " " : "", old ? old : "") + 1;
	}
	out[n] = NULL;
	st->envp = out;
	return 0;
}

/* @s's slot; a new one keeps the caller's reference on @s, an old one drops it. */
static struct ho_slot *slot_of(struct ho_state *st, struct ipcd_sock *s)
{
	unsigned int i;

	if (s->ho_idx && s->ho_idx <= st->n_slots && st->slots[s->ho_idx - 1].s == s) {
		ipcd_sock_put(s);
		return &st->slots[s->ho_idx - 1];
	}
	if (st->n_slots == HO_ENDS_MAX) {
		ipcd_sock_put(s);
		return NULL;
	}
	i = st->n_slots++;
	st->slots[i].s = s;
	st->slots[i].any_fd = -1;
	st->slots[i].region_fd = -1;
	st->slots[i].drop = !st->spawn && s->state == IPCD_SK_CONN;	/* until an inheritable fd */
	st->slots[i].listen = s->state == IPCD_SK_LISTEN;
	st->slots[i].ready = false;
	s->ho_idx = i + 1;
	return &st->slots[i];
}

/* Walk the table: the connection ends and listeners with inheritable fds. */
static void collect(struct ho_state *st)
{
	unsigned int fd;

	for (fd = 0; fd < IPCD_FDTAB_MAX; fd++) {
		struct ipcd_sock *s;
		struct ho_slot *sl;
		bool cloexec;

		if (!ipcd_fdtab_get((int)fd))
			continue;
		cloexec = ipcd_fdtab_cloexec((int)fd);
		if (cloexec && !st->all)
			continue;
		s = ipcd_sock_get((int)fd);
		if (!s)
			continue;
		if (s->state == IPCD_SK_LISTEN ? cloexec || s->kfd < 0 || s->lfd < 0
					       : s->state != IPCD_SK_CONN || !s->conn.ctl) {
			ipcd_sock_put(s);
			continue;
		}
		if (st->n_fds == HO_FDS_MAX) {
			ipcd_sock_put(s);
			continue;
		}
		sl = slot_of(st, s);
		if (!sl)
			continue;
		sl->any_fd = (int)fd;
		if (cloexec)
			continue;	/* not inherited, unless the spawn dup2s it: found by id */
		sl->drop = false;
		st->fd_slot[st->n_fds] = (uint32_t)(sl - st->slots);
		st->saved[st->n_fds] = -1;
		st->fds[st->n_fds++] = (int32_t)fd;
	}
}

/*
 * A listener the new image will accept on: no more lanes, and the monitor
 * told (answered: before our registration ends) that others may hold it,
 * as before a fork. 0, or -errno: then it is not handed over.
 */
static int share_listener(struct ipcd_sock *s)
{
	struct ipcd_req req = { .opcode = IPCD_OP_LISTEN };
	struct ipcd_listen_req *lr = (void *)req.body;
	struct ipcd_resp resp;
	int rc;

	if (!s->bind_id || !s->accept_token)
		return -EINVAL;
	if (!s->hold_asked)
		(void)ipcd_sock_hold(s);
	if (s->forked)
		return 0;	/* shared already (fork): only its owner may LISTEN */
	s->forked = true;
	req.len = ipcd_listen_req_len();
	lr->id = s->bind_id;
	lr->backlog = s->backlog < 0 ? 0 : (uint32_t)s->backlog;
	lr->flags = 0;
	lr->kfd = s->kfd;	/* a LISTEN again: the monitor has its copy already */
	rc = ipcd_mon_call(&req, &resp, NULL, NULL);
	ipcd_lanes_listener_close(s);
	return rc ? rc : resp.status;
}

/*
 * Token and region of each end; an end that gets neither is left out of the
 * handover. A close-on-exec end (@drop) needs only its token: it is not
 * released before the exec (a failed exec leaves every fd open); the exec
 * itself closes the token with the fd, and the monitor closes the end if
 * that was its last holder (conns_hold_hup), whatever the new image is.
 */
static void fetch_fds(struct ho_state *st)
{
	unsigned int i;

	for (i = 0; i < st->n_slots; i++) {
		struct ho_slot *sl = &st->slots[i];
		struct ipcd_sock *s = sl->s;
		uint64_t size = 0;
		int fd;

		if (sl->listen) {
			sl->ready = share_listener(s) == 0;
			continue;
		}
		(void)ipcd_sock_hold(s);	/* asked again if a fork's ask failed */
		if (sl->drop) {
			sl->ready = s->conn.hold_fd >= 0;
			continue;	/* without a token: released before the exec, as before */
		}
		fd = s->conn.hold_fd >= 0 ? ipcd_mon_region(s->conn.conn_id, s->conn.acceptor, &size)
					  : -ENOTCONN;
		if (fd >= 0 && size != s->conn.reg.size) {
			ipcd_real.close(fd);
			fd = -EPROTO;
		}
		if (fd < 0) {
			log_line("ipcd: exec: connection %" PRIu64 " cannot be handed to the new "
				 "image (%s): its fd is closed as close-on-exec\n",
				 s->conn.conn_id, strerror(-fd));
			continue;
		}
		sl->region_fd = fd;
		sl->ready = true;
	}
}

static void fill_end(struct ho_end *e, const struct ho_slot *sl, uint32_t first, uint32_t n,
		     int efd)
{
	const struct ipcd_sock *s = sl->s;

	memset(e, 0, sizeof(*e));
	e->domain = s->domain;
	e->fd_first = first;
	e->n_fds = n;
	e->nonblock = atomic_load(&s->nonblock);
	e->sndbuf = s->sndbuf;
	e->rcvbuf = s->rcvbuf;
	e->nopts = s->nopts;
	memcpy(e->opts, s->opts, sizeof(e->opts));
	memcpy(e->self_addr, s->self_addr, 16);
	e->self_port = s->self_port;
	e->region_fd = e->wake_peer = e->hold_fd = e->live_fd = -1;
	if (sl->listen) {
		e->listen = 1;
		e->bind_id = s->bind_id;
		e->accept_token = s->accept_token;
		e->kfd = s->kfd;
		e->lfd = s->lfd;
		e->hold_fd = s->lhold;
		e->backlog = s->backlog;
		return;
	}
	e->kfd = sl->drop ? -1 : s->kfd;	/* a socketpair end's kernel socket, or -1 */
	e->lfd = -1;
	e->conn_id = s->conn.conn_id;
	e->region_size = s->conn.reg.size;
	e->efd_id = efd >= 0 ? eventfd_id(efd) : 0;
	e->region_fd = sl->region_fd;
	e->wake_peer = sl->drop ? -1 : s->conn.wake_peer;
	e->live_fd = sl->drop ? -1 : s->conn.live_fd;
	e->hold_fd = s->conn.hold_fd;
	e->rcvtimeo_ns = s->rcvtimeo_ns;
	e->sndtimeo_ns = s->sndtimeo_ns;
	e->linger_onoff = s->linger.l_onoff;
	e->linger_linger = s->linger.l_linger;
	memcpy(e->peer_addr, s->peer_addr, 16);
	e->peer_port = s->peer_port;
	e->acceptor = s->conn.acceptor;
	e->shut_rd = atomic_load(&s->shut_rd);
	e->shut_wr = atomic_load(&s->shut_wr);
	e->reset_told = atomic_load(&s->reset_told);
	e->kind = s->kind;
	e->rst_sent = atomic_load(&s->rst_sent);
	e->rst_told = atomic_load(&s->rst_told);
	e->drop = sl->drop;
}

/* The records, in a memfd the exec keeps. */
static int write_records(struct ho_state *st)
{
	struct ho_hdr h = { .magic = HO_MAGIC, .version = HO_VERSION, .spawn = st->spawn };
	struct ho_end e;
	int32_t *out_fds = (int32_t *)(void *)(st->fd_slot + HO_FDS_MAX);	/* scratch */
	uint32_t n_out = 0;
	unsigned int i, j;
	size_t len;
	off_t off;

	st->memfd = memfd_create("ipcd-handoff", MFD_CLOEXEC);
	if (st->memfd < 0)
		return -errno;
	h.pid = (int32_t)getpid();
	off = sizeof(h);
	for (i = 0; i < st->n_slots; i++) {
		uint32_t first = n_out;

		if (!st->slots[i].ready || st->slots[i].drop)
			continue;
		for (j = 0; j < st->n_fds; j++)
			if (st->fd_slot[j] == i)
				out_fds[n_out++] = st->fds[j];
		fill_end(&e, &st->slots[i], first, n_out - first,
			 st->slots[i].drop ? -1 : st->slots[i].any_fd);
		if (pwrite(st->memfd, &e, sizeof(e), off) != (ssize_t)sizeof(e))
			return -EIO;
		off += (off_t)sizeof(e);
		h.n_ends++;
	}
	h.n_fds = n_out;
	len = n_out * sizeof(int32_t);
	if (pwrite(st->memfd, out_fds, len, off) != (ssize_t)len ||
	    pwrite(st->memfd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -EIO;
	return h.n_ends ? 0 : -ENOENT;
}

/* Make what the new image needs inheritable (@on), or close-on-exec again. */
static void inheritable(struct ho_state *st, bool on)
{
	unsigned int i;

	for (i = 0; i < st->n_fds; i++)
		if (st->slots[st->fd_slot[i]].ready)
			set_cloexec(st->fds[i], !on);
	for (i = 0; i < st->n_slots; i++) {
		struct ho_slot *sl = &st->slots[i];

		if (!sl->ready || sl->drop)
			continue;	/* a drop end's token stays close-on-exec: the exec closes it */
		if (sl->listen) {
			set_cloexec(sl->s->kfd, !on);
			set_cloexec(sl->s->lfd, !on);
			set_cloexec(sl->s->lhold, !on);
			continue;
		}
		set_cloexec(sl->s->conn.hold_fd, !on);
		if (sl->drop)
			continue;
		set_cloexec(sl->s->conn.wake_peer, !on);
		set_cloexec(sl->s->conn.live_fd, !on);
		set_cloexec(sl->s->kfd, !on);
		set_cloexec(sl->region_fd, !on);
	}
	set_cloexec(st->memfd, !on);
}

/*
 * Listening fds not handed over become the kernel listener for the exec
 * (@on), or get their epoll fd back (handed over: the epoll fd goes as it is).
 */
static void listeners_swap(struct ho_state *st, bool on)
{
	unsigned int i;

	for (i = 0; i < st->n_fds; i++) {
		const struct ho_slot *sl = &st->slots[st->fd_slot[i]];
		int fd = st->fds[i];

		if (!sl->listen || sl->ready)
			continue;
		if (on) {
			st->saved[i] = ipcd_real.fcntl(fd, F_DUPFD_CLOEXEC, (void *)0);
			if (st->saved[i] >= 0 && ipcd_real.dup3(sl->s->kfd, fd, 0) < 0) {
				ipcd_real.close(st->saved[i]);
				st->saved[i] = -1;
			}
			/*
			 * It stays O_NONBLOCK (the file is shared with every
			 * process holding the listener, whose accept must never
			 * block on it): a blocking accept in the new image sees
			 * EAGAIN.
			 */
		} else if (st->saved[i] >= 0) {
			ipcd_real.dup3(st->saved[i], fd, O_CLOEXEC);
			ipcd_real.close(st->saved[i]);
			st->saved[i] = -1;
		}
	}
}

#define HO_MEM	(HO_ENDS_MAX * sizeof(struct ho_slot) + HO_FDS_MAX * (3 * sizeof(int32_t) + \
		 sizeof(uint32_t)) + (1u << 20))

/*
 * Prepare the handover for an exec with @envp (@spawn: a posix_spawn
 * child's). Returns false if there is nothing to hand over (st->envp NULL:
 * the exec gets @envp unchanged). Holders: see the top of the file.
 */
static bool prepare(struct ho_state *st, bool spawn, bool all, char *const envp[])
{
	uint8_t *m;
	unsigned int i;

	memset(st, 0, sizeof(*st));
	st->spawn = spawn;
	st->all = all;
	st->memfd = -1;
	st->mem_size = HO_MEM;
	st->mem = mmap(NULL, st->mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (st->mem == MAP_FAILED) {
		st->mem = NULL;
		return false;
	}
	m = st->mem;
	st->slots = (void *)m;
	m += HO_ENDS_MAX * sizeof(struct ho_slot);
	st->saved = (void *)m;
	m += HO_FDS_MAX * sizeof(int32_t);
	st->fds = (void *)m;
	m += HO_FDS_MAX * sizeof(int32_t);
	st->fd_slot = (void *)m;
	m += HO_FDS_MAX * (sizeof(uint32_t) + sizeof(int32_t));	/* + write_records' scratch */

	collect(st);
	if (st->n_slots)
		fetch_fds(st);
	/* Close-on-exec ends (drop) need no record: the exec closes their token. */
	for (i = 0; i < st->n_slots; i++)
		if (st->slots[i].ready && !st->slots[i].drop)
			break;
	if (i == st->n_slots) {
		st->envp = NULL;	/* nothing to hand over */
	} else if (write_records(st) == 0 &&
		   build_env(st, envp, (char *)m,
			     st->mem_size - (size_t)(m - (uint8_t *)st->mem)) == 0) {
		inheritable(st, true);
		if (spawn) {
			ipcd_socks_lock();
			for (i = 0; i < st->n_slots; i++)
				if (st->slots[i].ready && !st->slots[i].listen)
					ipcd_socks_hold_one(st->slots[i].s, +1);
			ipcd_socks_unlock();
		}
	} else {
		/* Nothing goes: each such fd is closed by the exec as a close-on-exec one. */
		for (i = 0; i < st->n_slots; i++) {
			if (st->slots[i].region_fd >= 0)
				ipcd_real.close(st->slots[i].region_fd);
			st->slots[i].region_fd = -1;
			if (!st->slots[i].drop)
				st->slots[i].ready = false;
		}
		if (st->memfd >= 0)
			ipcd_real.close(st->memfd);
		st->memfd = -1;
		st->envp = NULL;
	}
	if (!spawn) {
		listeners_swap(st, true);
		ipcd_socks_lock();
		for (i = 0; i < st->n_slots; i++)
			st->slots[i].s->exec_keep = st->slots[i].ready;
		ipcd_socks_unlock();
	}
	return st->envp != NULL;
}

/* After the exec failed, or after the spawn (@spawned: the child exists). */
static void finish(struct ho_state *st, bool spawned)
{
	int saved = errno;
	unsigned int i;

	if (!st->mem)
		return;
	if (st->envp)
		inheritable(st, false);
	if (!st->spawn)
		listeners_swap(st, false);
	ipcd_socks_lock();
	for (i = 0; i < st->n_slots; i++) {
		struct ho_slot *sl = &st->slots[i];

		if (st->spawn && st->envp && sl->ready && !sl->listen && !spawned)
			ipcd_socks_hold_one(sl->s, -1);
		sl->s->exec_keep = false;
		sl->s->ho_idx = 0;
	}
	ipcd_socks_unlock();
	for (i = 0; i < st->n_slots; i++) {
		if (st->slots[i].region_fd >= 0)
			ipcd_real.close(st->slots[i].region_fd);
		ipcd_sock_put(st->slots[i].s);
	}
	if (st->memfd >= 0)
		ipcd_real.close(st->memfd);
	munmap(st->mem, st->mem_size);
	memset(st, 0, sizeof(*st));
	errno = saved;
}

/* ---- the exec family and posix_spawn --------------------------------------------- */

/*
 * One handover at a time in the process (exec_st, and the fds a spawn makes
 * inheritable for a while: another thread's finish() would make them
 * close-on-exec again under a spawn still running).
 */
static pthread_mutex_t ho_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ho_state exec_st;

void ipcd_exec_atfork_child(void)
{
	pthread_mutex_init(&ho_mu, NULL);	/* a thread of the parent may have held it */
}

char *const *ipcd_exec_prepare(char *const envp[])
{
	if (ipcd_inside)
		return envp;
	pthread_mutex_lock(&ho_mu);
	ipcd_inside++;
	/* Close-on-exec ends too: the exec, not us, closes them (drop ends). */
	(void)prepare(&exec_st, false, true, envp);
	ipcd_socks_lock();
	ipcd_socks_exec(true);		/* the ends not handed over (exec_keep) */
	ipcd_socks_unlock();
	ipcd_inside--;
	return exec_st.envp ? exec_st.envp : envp;
}

void ipcd_exec_failed(void)
{
	int saved = errno;

	if (ipcd_inside)
		return;
	ipcd_inside++;
	ipcd_socks_lock();
	ipcd_socks_exec(false);
	ipcd_socks_unlock();
	finish(&exec_st, false);
	ipcd_inside--;
	pthread_mutex_unlock(&ho_mu);
	errno = saved;
}

int ipcd_spawn(bool search, pid_t *pid, const char *path,
	       const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
	       char *const argv[], char *const envp[])
{
	struct ho_state st;
	char *const *env = envp;
	int rc;

	if (unlikely(!(search ? ipcd_real.posix_spawnp : ipcd_real.posix_spawn)))
		return ENOSYS;
	pthread_mutex_lock(&ho_mu);
	if (!ipcd_inside) {
		ipcd_inside++;
		/* File actions may dup2 any fd, close-on-exec or not. */
		if (prepare(&st, true, fa && fa->__used > 0, envp))
			env = st.envp;
		ipcd_inside--;
	} else {
		memset(&st, 0, sizeof(st));
	}
	rc = search ? ipcd_real.posix_spawnp(pid, path, fa, attr, argv, env)
		    : ipcd_real.posix_spawn(pid, path, fa, attr, argv, env);
	ipcd_inside++;
	finish(&st, rc == 0);
	ipcd_inside--;
	pthread_mutex_unlock(&ho_mu);
	return rc;
}

/* ---- the new image ------------------------------------------------------------- */

/* Is @fd one of the records' hidden fds (a peer's wake eventfd is an eventfd too)? */
static bool hidden(int fd, const struct ho_end *ends, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (fd == ends[i].wake_peer || fd == ends[i].hold_fd || fd == ends[i].region_fd ||
		    fd == ends[i].kfd || fd == ends[i].lfd || fd == ends[i].live_fd)
			return true;
	return false;
}

/*
 * The application's fds of end @e: those of this process that are its
 * eventfd (@e->efd_id: a posix_spawn dup2 makes more than the list says),
 * never one of the records' hidden fds.
 */
static unsigned int fds_of(const struct ho_end *e, const int32_t *list, const struct ho_end *ends,
			   uint32_t n_ends, int *out, unsigned int max)
{
	uint64_t id = e->efd_id;
	unsigned int n = 0, i;
	struct dirent *d;
	DIR *dir;

	if (!id) {
		/* No id from this kernel: trust the numbers, if each is an eventfd. */
		for (i = 0; i < e->n_fds && n < max; i++)
			if (list[i] >= 0 && list[i] < IPCD_FDTAB_MAX &&
			    !hidden(list[i], ends, n_ends) && is_anon(list[i], "eventfd"))
				out[n++] = list[i];
		return n;
	}
	dir = opendir("/proc/self/fd");
	if (!dir)
		return 0;
	while ((d = readdir(dir)) && n < max) {
		int fd = atoi(d->d_name);

		if (d->d_name[0] < '0' || d->d_name[0] > '9' || fd == dirfd(dir))
			continue;
		if (fd < IPCD_FDTAB_MAX && !hidden(fd, ends, n_ends) && is_anon(fd, "eventfd") &&
		    eventfd_id(fd) == id)
			out[n++] = fd;
	}
	closedir(dir);
	return n;
}

/* One end of the records: a socket in the table at each of its fds, or released. */
static void adopt_end(const struct ho_end *e, const int32_t *list, const struct ho_end *ends,
		      uint32_t n_ends)
{
	int fds[IPCD_CTL_CONN_NFDS], app[64];
	struct ipcd_sock *s;
	unsigned int n, i;

	if (e->drop)
		return;		/* not written by us (the exec closes those ends' tokens) */
	n = fds_of(e, list, ends, n_ends, app, IPCD_ARRAY_SIZE(app));
	s = ipcd_sock_new(e->kind == IPCD_CONN_KIND_PIPE ? AF_UNSPEC
			  : e->domain == AF_INET6 ? AF_INET6 : AF_INET, SOCK_STREAM);
	if (!s) {
		ipcd_real.close(e->region_fd);
		if (e->live_fd >= 0)
			ipcd_real.close(e->live_fd);
		return;
	}
	/* The ring says what it is (the monitor wrote it); the record must agree. */
	s->kind = e->kind <= IPCD_CONN_KIND_UNIX ? e->kind : IPCD_CONN_KIND_TCP;
	fds[IPCD_CTL_CONN_FD_REGION] = e->region_fd;
	fds[IPCD_CTL_CONN_FD_SELF] = -1;
	fds[IPCD_CTL_CONN_FD_PEER] = e->wake_peer;
	fds[IPCD_CTL_CONN_FD_LIVE] = e->live_fd;
	if (ipcd_conn_open(fds, e->region_size, e->acceptor, &s->conn) ||
	    s->conn.conn_id != e->conn_id || s->conn.ctl->kind != s->kind) {
		log_line("ipcd: exec: connection %" PRIu64 " from the old image is not valid: "
			 "its fds stay closed\n", e->conn_id);
		ipcd_conn_release(&s->conn);
		if (e->hold_fd >= 0)
			ipcd_real.close(e->hold_fd);
		if (e->kfd >= 0)
			ipcd_real.close(e->kfd);
		for (i = 0; i < n; i++)
			ipcd_real.close(app[i]);
		atomic_store(&s->refs, 1);
		ipcd_sock_put(s);
		return;
	}
	s->conn.hold_fd = e->hold_fd;
	s->kfd = -1;
	if (s->kind == IPCD_CONN_KIND_UNIX)
		s->kfd = e->kfd;
	else if (e->kfd >= 0)
		ipcd_real.close(e->kfd);
	set_cloexec(e->wake_peer, true);
	set_cloexec(e->live_fd, true);
	set_cloexec(e->hold_fd, true);
	set_cloexec(s->kfd, true);
	ipcd_fd_hide(s->conn.hold_fd, true);
	ipcd_fd_hide(s->kfd, true);
	s->rcvtimeo_ns = e->rcvtimeo_ns;
	s->sndtimeo_ns = e->sndtimeo_ns;
	s->sndbuf = e->sndbuf;
	s->rcvbuf = e->rcvbuf;
	s->linger.l_onoff = e->linger_onoff;
	s->linger.l_linger = e->linger_linger;
	s->nopts = IPCD_MIN(e->nopts, (uint32_t)IPCD_SOCK_OPTS);
	memcpy(s->opts, e->opts, sizeof(s->opts));
	memcpy(s->self_addr, e->self_addr, 16);
	memcpy(s->peer_addr, e->peer_addr, 16);
	s->self_port = e->self_port;
	s->peer_port = e->peer_port;
	atomic_store(&s->nonblock, e->nonblock != 0);
	atomic_store(&s->shut_rd, e->shut_rd != 0);
	atomic_store(&s->shut_wr, e->shut_wr != 0);
	atomic_store(&s->reset_told, e->reset_told != 0);
	atomic_store(&s->rst_sent, e->rst_sent != 0);
	atomic_store(&s->rst_told, e->rst_told != 0);
	ipcd_sock_conn_ready(s);
	atomic_store(&s->refs, 1);	/* ours, while we install it */
	for (i = 0; i < n; i++) {
		set_cloexec(app[i], true);	/* at the kernel level; the application's flag is 0 */
		ipcd_fdtab_set(app[i], s, false);
	}
	ipcd_sock_put(s);		/* none installed: the last holder closes the end */
}

/*
 * A listener of the records: its epoll fd (still holding the kernel
 * listener and the accept eventfd) at each of its fds, accepting with the
 * token as an inheritor after fork does; or, with no fd left, closed.
 */
static void adopt_listener(const struct ho_end *e, const int32_t *list, const struct ho_end *ends,
			   uint32_t n_ends)
{
	struct ipcd_sock *s;
	uint32_t i;

	s = ipcd_sock_new(e->domain == AF_INET6 ? AF_INET6 : AF_INET, SOCK_STREAM);
	if (!s) {
		ipcd_real.close(e->kfd);
		ipcd_real.close(e->lfd);
		if (e->hold_fd >= 0)
			ipcd_real.close(e->hold_fd);
		return;
	}
	s->kfd = e->kfd;
	s->lfd = e->lfd;
	s->lhold = e->hold_fd;
	ipcd_fd_hide(s->kfd, true);
	ipcd_fd_hide(s->lfd, true);
	ipcd_fd_hide(s->lhold, true);
	set_cloexec(s->kfd, true);
	set_cloexec(s->lfd, true);
	set_cloexec(s->lhold, true);
	s->bind_id = e->bind_id;
	s->accept_token = e->accept_token;
	s->backlog = e->backlog;
	s->forked = true;		/* others may hold it: no lanes, no UNBIND at close */
	s->bound = true;
	s->sndbuf = e->sndbuf;
	s->rcvbuf = e->rcvbuf;
	s->nopts = IPCD_MIN(e->nopts, (uint32_t)IPCD_SOCK_OPTS);
	memcpy(s->opts, e->opts, sizeof(s->opts));
	memcpy(s->self_addr, e->self_addr, 16);
	s->self_port = e->self_port;
	atomic_store(&s->nonblock, e->nonblock != 0);
	s->accept_spin.ns = (uint32_t)IPCD_MIN(ipcd_spin_ns, (uint64_t)UINT32_MAX);
	s->state = IPCD_SK_LISTEN;
	atomic_store(&s->refs, 1);
	for (i = 0; i < e->n_fds; i++) {
		int fd = list[i];

		if (fd < 0 || fd >= IPCD_FDTAB_MAX || hidden(fd, ends, n_ends) ||
		    !is_anon(fd, "eventpoll"))
			continue;
		set_cloexec(fd, true);
		ipcd_fdtab_set(fd, s, false);
	}
	ipcd_sock_put(s);
}

/* Is @fd a memfd this library named for a handover? */
static bool is_handoff(int fd)
{
	static const char want[] = "/memfd:ipcd-handoff";
	char link[128];

	return fd_link(fd, link, sizeof(link)) && !strncmp(link, want, sizeof(want) - 1);
}

void ipcd_exec_adopt(void)
{
	const char *v = getenv(HO_ENV);
	struct ho_hdr h;
	struct ho_end *ends = NULL;
	int32_t *list = NULL;
	struct stat st;
	char *end;
	long fd;
	uint32_t i;

	keep_settings();	/* before the application can change them */
	if (!v)
		return;
	fd = strtol(v, &end, 10);
	unsetenv(HO_ENV);
	/*
	 * Anyone can set the variable (or pass on a stale one): only our memfd,
	 * written for this very process, is read, and only then closed.
	 */
	if (*end || fd < 0 || fd > INT32_MAX || fstat((int)fd, &st) || !S_ISREG(st.st_mode) ||
	    !is_handoff((int)fd))
		return;
	ipcd_inside++;
	if (pread((int)fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.magic != HO_MAGIC ||
	    h.version != HO_VERSION || h.pid != (int32_t)(h.spawn ? getppid() : getpid())) {
		ipcd_inside--;
		return;
	}
	if (h.n_ends > HO_ENDS_MAX || h.n_fds > HO_FDS_MAX ||
	    (uint64_t)st.st_size < sizeof(h) + (uint64_t)h.n_ends * sizeof(*ends) +
				    (uint64_t)h.n_fds * sizeof(*list))
		goto out;
	ends = malloc(h.n_ends * sizeof(*ends) + 1);
	list = malloc(h.n_fds * sizeof(*list) + 1);
	if (!ends || !list ||
	    pread((int)fd, ends, h.n_ends * sizeof(*ends), sizeof(h)) !=
		    (ssize_t)(h.n_ends * sizeof(*ends)) ||
	    pread((int)fd, list, h.n_fds * sizeof(*list),
		  (off_t)(sizeof(h) + h.n_ends * sizeof(*ends))) != (ssize_t)(h.n_fds * sizeof(*list)))
		goto out;
	for (i = 0; i < h.n_ends; i++) {
		if (ends[i].fd_first > h.n_fds || ends[i].n_fds > h.n_fds - ends[i].fd_first)
			continue;
		if (ends[i].listen)
			adopt_listener(&ends[i], list + ends[i].fd_first, ends, h.n_ends);
		else
			adopt_end(&ends[i], list + ends[i].fd_first, ends, h.n_ends);
	}
out:
	free(ends);
	free(list);
	ipcd_real.close((int)fd);
	ipcd_inside--;
}
