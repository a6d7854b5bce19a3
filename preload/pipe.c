/* SPDX-License-Identifier: MIT */
/*
 * pipe.c - pipes through shared memory, and what an accelerated fd looks
 * like to fstat() and lseek().
 *
 * A pipe is a connection both of whose ends its creator holds (proto.h
 * IPCD_OP_PAIR, kind IPCD_CONN_KIND_PIPE): end A writes, end B reads, the
 * A->B ring carries the data (data.c has the pipe semantics). Fork, exec
 * and posix_spawn share the ends as any connection's (fdtab.c hold tokens,
 * exec.c), so a shell pipeline's pipes reach the programs it runs: the last
 * writer gone is EOF for the readers, the last reader gone EPIPE for the
 * writers.
 *
 * pipe()/pipe2() make the kernel pipe first, so the application gets the fd
 * numbers it would get without us; then each end's wake eventfd replaces
 * its kernel fd (dup3), as connect() replaces a TCP socket (sock.c). The
 * pipe stays the kernel's when the monitor cannot make one (no monitor, a
 * limit), for O_DIRECT (packet mode) and O_NOTIFICATION_PIPE, for fds past
 * the table, and with IPCD_PIPES=0 in the environment.
 *
 * fstat(), fstatat(AT_EMPTY_PATH) and statx() describe an accelerated fd as
 * the kernel object it stands for (a FIFO, a socket), not the eventfd
 * behind it; lseek() fails with ESPIPE on it, as on a pipe or a socket
 * (an eventfd would accept it, and a program that seeks back after a read,
 * as bash's read builtin does on a seekable input, would lose data).
 * stdio streams on an accelerated fd call our read/write, and open() of
 * /dev/fd/N of a pipe end duplicates it (the end of this file).
 */
#undef _FORTIFY_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "sock.h"

static int fail(int err)
{
	errno = err;
	return -1;
}

/* An end whose rings are attached but which no fd names: its last reference closes it. */
static void end_put(struct ipcd_sock *s)
{
	atomic_store(&s->refs, 1);
	s->state = IPCD_SK_CONN;
	ipcd_sock_put(s);
}

static void close_fds(const int *fds, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			ipcd_real.close(fds[i]);
}

/*
 * Ask the monitor for a pair of @kind and put its ends at @fd_a (A) and
 * @fd_b (B), which the caller made as the kernel's object. @flags: O_NONBLOCK,
 * O_CLOEXEC (or their SOCK_ twins). A socketpair's kernel sockets stay
 * behind the ends (s->kfd): duplicates of them first, made here.
 * 0, or -1 with the kernel's fds untouched (they serve unaccelerated), or
 * an errno > 0 when the monitor refused for a limit with limit_action =
 * error (ipcd_limit_errno): the call is then to fail with it.
 */
static int pair_make(uint32_t kind, int domain, int fd_a, int fd_b, int flags)
{
	int ka = -1, kb = -1;
	/*
	 * A pipe may grow to 1 MiB (F_SETPIPE_SZ, pipe-max-size): its ring is
	 * twice that, for the records' headers (sock.c sock_fcntl).
	 */
	uint32_t ring = kind == IPCD_CONN_KIND_PIPE ? IPCD_PIPE_RING_BYTES : 0;
	struct ipcd_req req = { .opcode = IPCD_OP_PAIR };
	struct ipcd_pair_req *pr = (void *)req.body;
	int fa[IPCD_CTL_CONN_NFDS], fb[IPCD_CTL_CONN_NFDS];
	struct ipcd_sock *a = NULL, *b = NULL;
	bool nb = flags & O_NONBLOCK, cloexec = flags & O_CLOEXEC;
	struct ipcd_conn_resp cr;
	struct ipcd_resp resp;
	uint64_t size = 0;
	unsigned int i;
	int refused = 0;

	if ((unsigned int)fd_a >= IPCD_FDTAB_MAX || (unsigned int)fd_b >= IPCD_FDTAB_MAX ||
	    !ipcd_state_attach_quiet())
		return -1;
	if (kind == IPCD_CONN_KIND_UNIX) {
		ka = ipcd_real.fcntl(fd_a, F_DUPFD_CLOEXEC, 0);
		kb = ipcd_real.fcntl(fd_b, F_DUPFD_CLOEXEC, 0);
		if (ka < 0 || kb < 0)
			goto err_kernel;
	}
	req.len = sizeof(*pr);
	pr->kind = kind;
	pr->ring_bytes = ring;
	if (ipcd_mon_call(&req, &resp, fa, &size))
		goto err_kernel;
	if (resp.status) {
		/* limit_action = error: the call fails, its kernel objects closed by the caller. */
		refused = ipcd_limit_errno(resp.status);
		if (refused == ENOBUFS && kind == IPCD_CONN_KIND_PIPE)
			refused = ENFILE;	/* pipe(2)'s errno for pipe memory */
		goto err_kernel;
	}
	memcpy(&cr, resp.body, sizeof(cr));
	/* End B: the same region; its wake eventfd is A's peer one, and A's is its peer. */
	fb[IPCD_CTL_CONN_FD_REGION] = ipcd_real.fcntl(fa[IPCD_CTL_CONN_FD_REGION],
						      F_DUPFD_CLOEXEC, 0);
	fb[IPCD_CTL_CONN_FD_SELF] = ipcd_real.fcntl(fa[IPCD_CTL_CONN_FD_PEER], F_DUPFD_CLOEXEC, 0);
	fb[IPCD_CTL_CONN_FD_PEER] = ipcd_real.fcntl(fa[IPCD_CTL_CONN_FD_SELF], F_DUPFD_CLOEXEC, 0);
	/* Life sockets (ctl.h): the ends often part at the next fork. Optional. */
	{
		int live[2];

		if (ipcd_real.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, live) < 0)
			live[0] = live[1] = -1;
		if (fa[IPCD_CTL_CONN_FD_LIVE] >= 0)
			ipcd_real.close(fa[IPCD_CTL_CONN_FD_LIVE]);	/* not the monitor's to give */
		fa[IPCD_CTL_CONN_FD_LIVE] = live[0];
		fb[IPCD_CTL_CONN_FD_LIVE] = live[1];
	}
	a = ipcd_sock_new(domain, nb ? SOCK_NONBLOCK : 0);
	b = ipcd_sock_new(domain, nb ? SOCK_NONBLOCK : 0);
	for (i = 0; i < IPCD_CTL_CONN_NFDS_MIN; i++)
		if (fb[i] < 0)
			break;
	if (!a || !b || i < IPCD_CTL_CONN_NFDS_MIN) {
		close_fds(fa, IPCD_CTL_CONN_NFDS);
		close_fds(fb, IPCD_CTL_CONN_NFDS);
		goto err_drop;
	}
	if (ipcd_conn_open(fa, size, false, &a->conn)) {	/* takes fa */
		close_fds(fb, IPCD_CTL_CONN_NFDS);
		goto err_drop;
	}
	if (ipcd_conn_open(fb, size, true, &b->conn)) {
		a->kind = (uint8_t)kind;
		end_put(a);
		a = NULL;
		ipcd_mon_post_close(cr.conn_id, IPCD_CLOSE_B);
		goto err_socks;
	}
	a->kind = b->kind = (uint8_t)kind;
	a->kfd = ka;
	b->kfd = kb;
	ipcd_fd_hide(ka, true);
	ipcd_fd_hide(kb, true);
	/*
	 * The eventfds take the kernel fds' places. A failure here can only be
	 * a race with another thread's dup2 onto the same number: the pipe is
	 * then lost, as that dup2 would have lost it.
	 */
	if (ipcd_real.dup3(a->conn.wake_self, fd_a, O_CLOEXEC) < 0 ||
	    ipcd_real.dup3(b->conn.wake_self, fd_b, O_CLOEXEC) < 0) {
		end_put(a);
		end_put(b);
		return -1;
	}
	ipcd_real.close(a->conn.wake_self);
	ipcd_real.close(b->conn.wake_self);
	a->conn.wake_self = b->conn.wake_self = -1;
	ipcd_sock_conn_ready(a);
	ipcd_sock_conn_ready(b);
	ipcd_fdtab_set(fd_a, a, cloexec);
	ipcd_fdtab_set(fd_b, b, cloexec);
	return 0;

err_drop:
	/* The monitor made the pair but we cannot use it: both ends are closed. */
	ipcd_mon_post_close(cr.conn_id, IPCD_CLOSE_A);
	ipcd_mon_post_close(cr.conn_id, IPCD_CLOSE_B);
err_socks:
	/* Never installed and never attached: nothing to close but the memory. */
	if (a) {
		atomic_store(&a->refs, 1);
		ipcd_sock_put(a);
	}
	if (b) {
		atomic_store(&b->refs, 1);
		ipcd_sock_put(b);
	}
err_kernel:
	if (ka >= 0)
		ipcd_real.close(ka);
	if (kb >= 0)
		ipcd_real.close(kb);
	return refused ? refused : -1;
}

/* limit_action = error: the kernel objects made for the call go, and it fails with @err. */
static int refuse_pair(const int k[2], int err)
{
	ipcd_real.close(k[0]);
	ipcd_real.close(k[1]);
	errno = err;
	return -1;
}

static int pipe_common(int fds[2], int flags)
{
	int k[2], saved, refused;

	if (unlikely(!ipcd_real.pipe2))
		return ipcd_enosys();
	if (ipcd_real.pipe2(k, flags) < 0)
		return -1;
	if (!ipcd_inside && !(flags & ~(O_CLOEXEC | O_NONBLOCK)) && ipcd_pipes_enabled()) {
		saved = errno;
		refused = pair_make(IPCD_CONN_KIND_PIPE, AF_UNSPEC, k[1], k[0], flags);
		if (refused > 0)
			return refuse_pair(k, refused);
		errno = saved;
	}
	fds[0] = k[0];
	fds[1] = k[1];
	return 0;
}

IPCD_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
	int saved, refused;

	ipcd_init();
	if (unlikely(!ipcd_real.socketpair))
		return ipcd_enosys();
	if (ipcd_real.socketpair(domain, type, protocol, sv) < 0)
		return -1;
	/* AF_UNIX stream only; datagram and seqpacket pairs stay the kernel's. */
	if (!ipcd_inside && domain == AF_UNIX &&
	    (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) == SOCK_STREAM && ipcd_pipes_enabled()) {
		saved = errno;
		refused = pair_make(IPCD_CONN_KIND_UNIX, AF_UNIX, sv[0], sv[1],
				    (type & SOCK_NONBLOCK ? O_NONBLOCK : 0) |
				    (type & SOCK_CLOEXEC ? O_CLOEXEC : 0));
		if (refused > 0)
			return refuse_pair(sv, refused);
		errno = saved;
	}
	return 0;
}

IPCD_EXPORT int pipe(int fds[2])
{
	ipcd_init();
	return pipe_common(fds, 0);
}

IPCD_EXPORT int pipe2(int fds[2], int flags)
{
	ipcd_init();
	return pipe_common(fds, flags);
}

/* ---- what an accelerated fd looks like ------------------------------------------------- */

/*
 * The kernel object @s stands for: a FIFO (both ends of a pipe share one
 * inode, as the kernel's do) or a socket. 0 if the fd is still the
 * kernel's own (a socket before connect or listen).
 */
static mode_t stand_in(const struct ipcd_sock *s, uint64_t *ino)
{
	if (s->state == IPCD_SK_FRESH)
		return 0;
	if (s->state == IPCD_SK_CONN && s->kind == IPCD_CONN_KIND_PIPE) {
		*ino = s->conn.conn_id;
		return S_IFIFO | S_IRUSR | S_IWUSR;
	}
	*ino = s->state == IPCD_SK_CONN ? s->conn.conn_id << 1 | s->conn.acceptor : s->bind_id;
	return S_IFSOCK | S_IRWXU | S_IRWXG | S_IRWXO;
}

static void fix_stat(int fd, struct stat *st)
{
	struct ipcd_sock *s = ipcd_sock_get(fd);
	uint64_t ino = 0;
	mode_t m;

	if (!s)
		return;
	m = stand_in(s, &ino);
	if (m) {
		st->st_mode = m;
		st->st_ino = (ino_t)ino;
		st->st_nlink = 1;
		st->st_size = 0;
		st->st_blksize = 4096;
		st->st_blocks = 0;
	}
	ipcd_sock_put(s);
}

static void fix_statx(int fd, struct statx *sx)
{
	struct ipcd_sock *s = ipcd_sock_get(fd);
	uint64_t ino = 0;
	mode_t m;

	if (!s)
		return;
	m = stand_in(s, &ino);
	if (m) {
		sx->stx_mode = (uint16_t)m;
		sx->stx_ino = ino;
		sx->stx_nlink = 1;
		sx->stx_size = 0;
		sx->stx_blksize = 4096;
		sx->stx_blocks = 0;
	}
	ipcd_sock_put(s);
}

static bool ours(int fd)
{
	return !ipcd_inside && ipcd_fdtab_get(fd);
}

static int named_fd(const char *path);

/*
 * fstatat()/statx() of an fd of ours: the fd itself (an empty path with
 * AT_EMPTY_PATH), or a /dev/fd/N path followed to it (stat(), as diff does
 * on bash's process substitution: every eventfd is one inode to the
 * kernel, so two pipes would look like one file). Returns that fd, or -1.
 */
static int stat_target(int fd, const char *path, int flags)
{
	if ((flags & AT_EMPTY_PATH) && path && !path[0])
		return ours(fd) ? fd : -1;
	if (flags & AT_SYMLINK_NOFOLLOW)
		return -1;
	return named_fd(path);
}

/* The kernel's answer, then ours for @target (an fd of ours, or -1) if the call succeeded. */
#define IPCD_STAT(name, params, args, st, target)				\
	IPCD_EXPORT int name params						\
	{									\
		int rc_, t_;							\
										\
		ipcd_init();							\
		if (unlikely(!ipcd_real.name))					\
			return ipcd_enosys();					\
		rc_ = ipcd_real.name args;					\
		if (rc_ == 0 && unlikely((t_ = (target)) >= 0))			\
			fix_stat(t_, (struct stat *)(st)); /* one layout on 64-bit */ \
		return rc_;							\
	}

IPCD_STAT(fstat, (int fd, struct stat *st), (fd, st), st, ours(fd) ? fd : -1)
IPCD_STAT(fstat64, (int fd, struct stat64 *st), (fd, st), st, ours(fd) ? fd : -1)
IPCD_STAT(fstatat, (int fd, const char *__restrict path, struct stat *__restrict st, int flags),
	  (fd, path, st, flags), st, stat_target(fd, path, flags))
IPCD_STAT(fstatat64, (int fd, const char *__restrict path, struct stat64 *__restrict st,
		      int flags),
	  (fd, path, st, flags), st, stat_target(fd, path, flags))
IPCD_STAT(stat, (const char *__restrict path, struct stat *__restrict st), (path, st), st,
	  stat_target(AT_FDCWD, path, 0))
IPCD_STAT(stat64, (const char *__restrict path, struct stat64 *__restrict st), (path, st), st,
	  stat_target(AT_FDCWD, path, 0))

IPCD_EXPORT int statx(int fd, const char *__restrict path, int flags, unsigned int mask,
		      struct statx *__restrict sx)
{
	int rc;

	ipcd_init();
	if (unlikely(!ipcd_real.statx))
		return ipcd_enosys();
	rc = ipcd_real.statx(fd, path, flags, mask, sx);
	if (rc == 0 && unlikely((fd = stat_target(fd, path, flags)) >= 0))
		fix_statx(fd, sx);
	return rc;
}

/* An fd that stands for a pipe or a socket (not a socket still the kernel's). */
static bool unseekable(int fd)
{
	struct ipcd_sock *s;
	bool r;

	if (likely(!ours(fd)) || !(s = ipcd_sock_get(fd)))
		return false;
	r = s->state != IPCD_SK_FRESH;
	ipcd_sock_put(s);
	return r;
}

IPCD_EXPORT off_t lseek(int fd, off_t off, int whence)
{
	ipcd_init();
	if (unlikely(!ipcd_real.lseek))
		return ipcd_enosys();
	if (unlikely(unseekable(fd)))
		return fail(ESPIPE);
	return ipcd_real.lseek(fd, off, whence);
}

IPCD_EXPORT off64_t lseek64(int fd, off64_t off, int whence)
{
	ipcd_init();
	if (unlikely(!ipcd_real.lseek64))
		return ipcd_enosys();
	if (unlikely(unseekable(fd)))
		return fail(ESPIPE);
	return ipcd_real.lseek64(fd, off, whence);
}

/* ---- stdio ---------------------------------------------------------------------------- */

/*
 * glibc's stdio reads and writes a FILE's fd with its internal read/write,
 * which no preload can interpose: a FILE on an accelerated fd would read
 * the eventfd behind it. So stdin, stdout and stderr become fopencookie()
 * streams calling our read/write on fds 0, 1, 2 once one of those fds is
 * accelerated (glibc documents the three as assignable variables), and
 * fdopen() of an accelerated fd gives such a stream. fileno() still gives
 * the fd. The streams keep working if the fd later goes back to the
 * kernel (our wrappers pass it through), fully buffered as on a pipe, or
 * unbuffered for stderr.
 */
static ssize_t ck_read(void *c, char *buf, size_t n)
{
	return read((int)(intptr_t)c, buf, n);
}

/* As glibc's file streams: write it all, or stop at the first error. */
static ssize_t ck_write(void *c, const char *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t k = write((int)(intptr_t)c, buf + done, n - done);

		if (k <= 0)
			return done ? (ssize_t)done : -1;
		done += (size_t)k;
	}
	return (ssize_t)done;
}

static int ck_close(void *c)
{
	return close((int)(intptr_t)c);
}

static FILE *cookie_stream(int fd, const char *mode)
{
	static const cookie_io_functions_t io = { .read = ck_read, .write = ck_write,
						  .close = ck_close };
	FILE *f = fopencookie((void *)(intptr_t)fd, mode, io);

	if (f)
		f->_fileno = fd;	/* fileno(); the cookie functions never read it */
	return f;
}

/*
 * Per standard fd: whether its stream is our cookie stream now, that stream
 * (made once, reused), and the stream it replaced (given back when a kernel
 * fd is put there again, so a terminal is line-buffered again).
 */
static pthread_mutex_t std_mu = PTHREAD_MUTEX_INITIALIZER;
static bool std_done[3];
static FILE *std_cookie[3], *std_orig[3];

static FILE **std_slot(int fd)
{
	return fd == 0 ? &stdin : fd == 1 ? &stdout : &stderr;
}

void ipcd_stdio_take(int fd)
{
	FILE **slot, *old, *f;

	if (fd < 0 || fd > 2)
		return;
	pthread_mutex_lock(&std_mu);
	if (std_done[fd])
		goto out;
	slot = std_slot(fd);
	old = *slot;
	f = std_cookie[fd];
	if (!f) {
		f = cookie_stream(fd, fd == 0 ? "r" : "w");
		if (!f)
			goto out;
		if (fd == 2)
			setvbuf(f, NULL, _IONBF, 0);
		std_cookie[fd] = f;
	}
	/*
	 * What the old stream holds unwritten goes to the fd when it is
	 * flushed, whichever file the fd is by then: the new stream takes it.
	 */
	if (fd && old && old->_IO_write_ptr > old->_IO_write_base) {
		fwrite(old->_IO_write_base, 1, (size_t)(old->_IO_write_ptr - old->_IO_write_base),
		       f);
		old->_IO_write_ptr = old->_IO_write_base;
	}
	std_orig[fd] = old;
	*slot = f;
	std_done[fd] = true;
out:
	pthread_mutex_unlock(&std_mu);
}

void ipcd_stdio_give_back(int fd)
{
	FILE **slot;

	if (fd < 0 || fd > 2)
		return;
	pthread_mutex_lock(&std_mu);
	if (!std_done[fd])
		goto out;
	std_done[fd] = false;
	slot = std_slot(fd);
	if (*slot != std_cookie[fd])
		goto out;	/* the application put its own stream there */
	if (fd)
		fflush(std_cookie[fd]);	/* to the fd as it is now, as glibc's would */
	else
		__fpurge(std_cookie[fd]);	/* what it read came from the old file */
	*slot = std_orig[fd];
out:
	pthread_mutex_unlock(&std_mu);
}

/* dprintf() writes with glibc's internal write too: format, then our write. */
static int fd_vprintf(int fd, const char *fmt, va_list ap)
{
	char *p;
	int n = vasprintf(&p, fmt, ap);
	ssize_t w;

	if (n < 0)
		return -1;
	w = ck_write((void *)(intptr_t)fd, p, (size_t)n);
	free(p);
	return w < 0 ? -1 : (int)w;
}

IPCD_EXPORT int vdprintf(int fd, const char *fmt, va_list ap)
{
	ipcd_init();
	if (unlikely(!ipcd_real.vdprintf))
		return ipcd_enosys();
	if (likely(!ours(fd)))
		return ipcd_real.vdprintf(fd, fmt, ap);
	return fd_vprintf(fd, fmt, ap);
}

IPCD_EXPORT int dprintf(int fd, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vdprintf(fd, fmt, ap);
	va_end(ap);
	return r;
}

/* _FORTIFY_SOURCE's: @flag only asks for %n checks, which vasprintf does not need here. */
IPCD_EXPORT int __vdprintf_chk(int fd, int flag, const char *fmt, va_list ap)
{
	ipcd_init();
	if (unlikely(!ipcd_real.__vdprintf_chk))
		return ipcd_enosys();
	if (likely(!ours(fd)))
		return ipcd_real.__vdprintf_chk(fd, flag, fmt, ap);
	return fd_vprintf(fd, fmt, ap);
}

IPCD_EXPORT int __dprintf_chk(int fd, int flag, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = __vdprintf_chk(fd, flag, fmt, ap);
	va_end(ap);
	return r;
}

IPCD_EXPORT FILE *fdopen(int fd, const char *mode)
{
	ipcd_init();
	if (unlikely(!ipcd_real.fdopen))
		return (FILE *)(intptr_t)ipcd_enosys();
	if (likely(!ours(fd)))
		return ipcd_real.fdopen(fd, mode);
	if (ipcd_real.fcntl(fd, F_GETFD) < 0) {
		errno = EBADF;
		return NULL;
	}
	return cookie_stream(fd, mode);
}

/*
 * freopen() of a stream of ours (a cookie stream, which glibc's freopen
 * would take for a file stream and crash on) or of a stream on an
 * accelerated fd: the file is opened and put at the stream's fd (dup2,
 * which lets the accelerated end go), and the stream reads and writes it
 * from there, through our wrappers to the kernel. A standard stream gets
 * its own FILE back then (ipcd_stdio_give_back), which is returned.
 */
static int mode_flags(const char *mode)
{
	int f;

	switch (mode[0]) {
	case 'r': f = O_RDONLY; break;
	case 'w': f = O_WRONLY | O_CREAT | O_TRUNC; break;
	case 'a': f = O_WRONLY | O_CREAT | O_APPEND; break;
	default: return -1;
	}
	if (strchr(mode, '+'))
		f = (f & ~O_ACCMODE) | O_RDWR;
	if (strchr(mode, 'e'))
		f |= O_CLOEXEC;
	if (strchr(mode, 'x'))
		f |= O_EXCL;
	return f;
}

static bool stream_ours(FILE *f)
{
	unsigned int i;

	for (i = 0; i < 3; i++)
		if (std_cookie[i] == f)
			return true;
	return ours(f->_fileno);
}

static FILE *reopen_stream(const char *path, const char *mode, FILE *f,
			   FILE *(*real)(const char *, const char *, FILE *))
{
	int fd, nfd, flags;

	ipcd_init();
	if (unlikely(!real))
		return (FILE *)(intptr_t)ipcd_enosys();
	if (!f || !stream_ours(f))
		return real(path, mode, f);
	fd = f->_fileno;
	if (!path)
		return f;	/* a new mode on the same pipe or socket: nothing to change */
	flags = mode ? mode_flags(mode) : -1;
	if (flags < 0) {
		errno = EINVAL;
		return NULL;
	}
	fflush(f);
	nfd = open(path, flags & ~O_CLOEXEC, 0666);
	if (nfd < 0)
		return NULL;
	if (nfd != fd && (dup3(nfd, fd, flags & O_CLOEXEC) < 0 || close(nfd) < 0))
		return NULL;
	clearerr(f);
	if (fd >= 0 && fd <= 2 && f == std_cookie[fd])
		return *std_slot(fd);	/* dup3 gave the standard stream its own FILE back */
	return f;
}

IPCD_EXPORT FILE *freopen(const char *path, const char *mode, FILE *f)
{
	return reopen_stream(path, mode, f, ipcd_real.freopen);
}

IPCD_EXPORT FILE *freopen64(const char *path, const char *mode, FILE *f)
{
	return reopen_stream(path, mode, f, ipcd_real.freopen64);
}

/* ---- reopening a pipe by its /proc name ----------------------------------------------- */

/*
 * open("/dev/fd/N") (bash's process substitution, "cat /dev/stdin") reopens
 * the file fd N names; for a pipe, the kernel gives a new fd on the same
 * pipe. Ours is an eventfd, which cannot be reopened: the caller gets a
 * duplicate of N instead, which reads or writes the same pipe end.
 * Returns N, or -1 if @path does not name an accelerated pipe end of ours.
 */
/* The fd of ours /dev/fd/N, /proc/self/fd/N (...) or /dev/stdin names, or -1. */
static __ipcd_noinline int named_fd(const char *path)	/* not inlined: @path may be NULL */
{
	static const char *const std[] = { "/dev/stdin", "/dev/stdout", "/dev/stderr" };
	const char *p = NULL;
	char self[32];
	long n = -1;
	char *end;
	int i;

	if (!path || likely(path[0] != '/') || (strncmp(path, "/dev/", 5) && strncmp(path, "/proc/", 6)))
		return -1;
	for (i = 0; i < 3; i++)
		if (!strcmp(path, std[i]))
			n = i;
	if (n < 0) {
		snprintf(self, sizeof(self), "/proc/%d/fd/", (int)getpid());
		if (!strncmp(path, "/dev/fd/", 8))
			p = path + 8;
		else if (!strncmp(path, "/proc/self/fd/", 14))
			p = path + 14;
		else if (!strncmp(path, "/proc/thread-self/fd/", 21))
			p = path + 21;
		else if (!strncmp(path, self, strlen(self)))
			p = path + strlen(self);
		if (!p || *p < '0' || *p > '9')
			return -1;
		n = strtol(p, &end, 10);
		if (*end || n >= IPCD_FDTAB_MAX)
			return -1;
	}
	return ours((int)n) ? (int)n : -1;
}

static int names_our_pipe(const char *path)
{
	struct ipcd_sock *s;
	int fd = named_fd(path), r;

	if (fd < 0 || !(s = ipcd_sock_get(fd)))
		return -1;
	r = s->state == IPCD_SK_CONN && s->kind == IPCD_CONN_KIND_PIPE ? fd : -1;
	ipcd_sock_put(s);
	return r;
}

static int reopen(int fd, int flags)
{
	return fcntl(fd, flags & O_CLOEXEC ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
}

/* The mode argument: only there with O_CREAT or O_TMPFILE (as glibc reads it). */
#define OPEN_MODE(flags, last)							\
	({									\
		mode_t m_ = 0;							\
		if ((flags) & (O_CREAT | __O_TMPFILE)) {			\
			va_list ap_;						\
			va_start(ap_, last);					\
			m_ = va_arg(ap_, mode_t);				\
			va_end(ap_);						\
		}								\
		m_;								\
	})

#define IPCD_OPEN(name)								\
	IPCD_EXPORT int name(const char *path, int flags, ...)		\
	{									\
		mode_t mode = OPEN_MODE(flags, flags);				\
		int fd;								\
										\
		ipcd_init();							\
		if (unlikely(!ipcd_real.name))					\
			return ipcd_enosys();					\
		if (unlikely(!ipcd_inside && (fd = names_our_pipe(path)) >= 0)) \
			return reopen(fd, flags);				\
		return ipcd_real.name(path, flags, mode);			\
	}

#define IPCD_OPENAT(name)							\
	IPCD_EXPORT int name(int dirfd, const char *path, int flags, ...)	\
	{									\
		mode_t mode = OPEN_MODE(flags, flags);				\
		int fd;								\
										\
		ipcd_init();							\
		if (unlikely(!ipcd_real.name))					\
			return ipcd_enosys();					\
		if (unlikely(!ipcd_inside && (fd = names_our_pipe(path)) >= 0)) \
			return reopen(fd, flags);				\
		return ipcd_real.name(dirfd, path, flags, mode);		\
	}

IPCD_OPEN(open)
IPCD_OPEN(open64)
IPCD_OPENAT(openat)
IPCD_OPENAT(openat64)

/* ---- an exec whose new image will not load us --------------------------------------- */

/*
 * A setuid or setgid program ignores LD_PRELOAD, a static one has no
 * loader, and a Go program reads and writes with raw syscalls: any of
 * them would find an eventfd where its pipe should be. Before such an
 * exec, each pipe end it would inherit becomes a kernel pipe whose other
 * end a relay process (ours, detached, so that the new image never sees it
 * as a child) joins to the accelerated end, until EOF or EPIPE.
 */
static bool elf_loads_us(int fd)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	Elf64_Shdr sh, strsh;
	char name[16];
	bool interp = false;
	unsigned int i;

	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
		return true;		/* not ours to judge: let the loader say */
	if (!memcmp(eh.e_ident, "#!", 2))
		return true;		/* a script: its interpreter is what runs */
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(ph) || eh.e_phnum > 256)
		return true;
	for (i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) !=
		    (ssize_t)sizeof(ph))
			return true;
		if (ph.p_type == PT_INTERP)
			interp = true;
	}
	if (!interp)
		return false;		/* static: no loader reads LD_PRELOAD */
	/* Go: its I/O never calls libc's read/write (a .go.buildinfo section). */
	if (eh.e_shentsize != sizeof(sh) || eh.e_shnum > 4096 || eh.e_shstrndx >= eh.e_shnum ||
	    pread(fd, &strsh, sizeof(strsh),
		  (off_t)(eh.e_shoff + eh.e_shstrndx * sizeof(sh))) != (ssize_t)sizeof(strsh))
		return true;
	for (i = 0; i < eh.e_shnum; i++) {
		if (pread(fd, &sh, sizeof(sh), (off_t)(eh.e_shoff + i * sizeof(sh))) !=
		    (ssize_t)sizeof(sh) || sh.sh_name >= strsh.sh_size)
			continue;
		if (pread(fd, name, sizeof(name), (off_t)(strsh.sh_offset + sh.sh_name)) ==
		    (ssize_t)sizeof(name) && !memcmp(name, ".go.buildinfo", 14))
			return false;
	}
	return true;
}

/* Will the image at @path (searched in PATH if @search) run with this library? */
static bool image_loads_us(const char *path, bool search)
{
	char buf[PATH_MAX];
	const char *p = path, *dirs, *end;
	struct stat st;
	bool r;
	int fd = -1;

	if (search && !strchr(path, '/')) {
		dirs = getenv("PATH");
		for (dirs = dirs ? dirs : "/bin:/usr/bin"; *dirs; dirs = *end ? end + 1 : end) {
			end = strchrnul(dirs, ':');
			if ((size_t)snprintf(buf, sizeof(buf), "%.*s/%s", (int)(end - dirs), dirs,
					     path) >= sizeof(buf))
				continue;
			fd = ipcd_real.open(buf, O_RDONLY | O_CLOEXEC);
			if (fd >= 0)
				break;
		}
	} else {
		fd = ipcd_real.open(p, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return true;		/* the exec fails, or is not ours to judge */
	r = ipcd_real.fstat(fd, &st) == 0 && !(st.st_mode & (S_ISUID | S_ISGID)) &&
	    elf_loads_us(fd);
	ipcd_real.close(fd);
	return r;
}

static void relay_copy(int from, int to)
{
	static char buf[65536];
	ssize_t n, k, off;

	for (;;) {
		n = read(from, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (off = 0; off < n; off += k) {
			k = write(to, buf + off, (size_t)(n - off));
			if (k < 0 && errno == EINTR)
				k = 0;
			else if (k < 0)
				return;
		}
	}
}

/* In the relay: every fd but @a, @b and the library's own goes (other pipe ends too). */
static void keep_only(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;

	if (lo > 0)
		close_range(0, (unsigned int)lo - 1, 0);
	if (hi > lo + 1)
		close_range((unsigned int)lo + 1, (unsigned int)hi - 1, 0);
	close_range((unsigned int)hi + 1, ~0u, 0);
}

/*
 * @s's inheritable fds (@fds, @n) become one kernel pipe end, relayed to
 * @s; a socket's (a socketpair's, a named AF_UNIX or TCP connection's)
 * become one end of a kernel socketpair, relayed both ways, each direction
 * shut when it ends. Only the bytes cross: control data stays behind, and
 * SO_PEERCRED names the relay.
 */
static void demote(struct ipcd_sock *s, const int *fds, unsigned int n)
{
	bool pipe = s->kind == IPCD_CONN_KIND_PIPE, reader = s->conn.acceptor;
	int kp[2], image_end, relay_end, ring = fds[0];
	unsigned int i;
	pid_t pid;

	if (pipe ? ipcd_real.pipe2(kp, O_CLOEXEC)
		 : ipcd_real.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, kp))
		return;
	/* The relay's end of the kernel object, and the new image's. */
	relay_end = pipe && !reader ? kp[0] : kp[1];
	image_end = relay_end == kp[0] ? kp[1] : kp[0];
	pid = fork();
	if (pid == 0) {
		if (fork() == 0) {
			setsid();
			signal(SIGPIPE, SIG_IGN);
			keep_only(ring, relay_end);
			if (pipe && reader) {
				relay_copy(ring, relay_end);
			} else if (pipe) {
				relay_copy(relay_end, ring);
			} else if (fork() == 0) {
				relay_copy(ring, relay_end);
				shutdown(relay_end, SHUT_WR);
			} else {
				relay_copy(relay_end, ring);
				shutdown(ring, SHUT_WR);
			}
			_exit(0);
		}
		_exit(0);
	}
	ipcd_real.close(relay_end);
	if (pid > 0) {
		waitpid(pid, NULL, 0);
		for (i = 0; i < n; i++)
			dup2(image_end, fds[i]);	/* ours: the table lets go of @s there */
	}
	ipcd_real.close(image_end);
}

void ipcd_pipes_before_exec(const char *path, bool search)
{
	struct ipcd_sock *done[64];
	unsigned int nd = 0, i, fd, n;
	int fds[64];

	if (!path || image_loads_us(path, search))
		return;
	ipcd_unix_before_exec();
	for (fd = 0; fd < IPCD_FDTAB_MAX && nd < IPCD_ARRAY_SIZE(done); fd++) {
		struct ipcd_sock *s = ipcd_fdtab_get((int)fd);

		if (!s || s->state != IPCD_SK_CONN || ipcd_fdtab_cloexec((int)fd))
			continue;
		for (i = 0; i < nd && done[i] != s; i++)
			;
		if (i < nd)
			continue;
		done[nd++] = s;
		/* Every inheritable fd of this end, from here on. */
		for (n = 0, i = fd; i < IPCD_FDTAB_MAX && n < IPCD_ARRAY_SIZE(fds); i++)
			if (ipcd_fdtab_get((int)i) == s && !ipcd_fdtab_cloexec((int)i))
				fds[n++] = (int)i;
		s = ipcd_sock_get((int)fd);
		if (s) {
			demote(s, fds, n);
			ipcd_sock_put(s);
		}
	}
}
