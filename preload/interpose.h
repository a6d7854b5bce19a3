/* SPDX-License-Identifier: MIT */
/*
 * interpose.h - the table of real libc functions (calls.def) and the
 * helpers every wrapper uses. Internal to libipcd.so (hidden symbols).
 */
#ifndef IPCD_INTERPOSE_H
#define IPCD_INTERPOSE_H

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <unistd.h>

#include <ipcd/compiler.h>

/* Declared by glibc's headers only under _FORTIFY_SOURCE. */
extern int __dprintf_chk(int fd, int flag, const char *__restrict fmt, ...);
extern int __vdprintf_chk(int fd, int flag, const char *__restrict fmt, __gnuc_va_list ap);
extern ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen);
extern ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
extern ssize_t __recvfrom_chk(int fd, void *__restrict buf, size_t n, size_t buflen, int flags,
			      __SOCKADDR_ARG addr, socklen_t *__restrict addrlen);

/** struct ipcd_libc - the next definition (RTLD_NEXT) of every call; NULL if absent. */
struct ipcd_libc {
#define IPCD_FD_CALL(ret, name, params, ...)	ret (*name) params;
#define IPCD_OWN_CALL(ret, name, params)	ret (*name) params;
#include "calls.def"
};

/*
 * The table is also the unit tests' mock seam: tests assign a fake to
 * ipcd_real.<name> after ipcd_init().
 */
extern struct ipcd_libc ipcd_real;

/*
 * Depth of the library's own work on this thread: while > 0, wrappers go
 * straight to ipcd_real (attach.c's socket()/close() calls, logging, ...).
 * initial-exec: no __tls_get_addr (which may allocate) on the fast path.
 */
extern __thread int ipcd_inside __attribute__((tls_model("initial-exec")));

extern atomic_bool ipcd_resolved;
void ipcd_init_slow(void);

/* ipcd_init - resolve the table once (constructor, or the first wrapper called). */
static __ipcd_always_inline void ipcd_init(void)
{
	if (unlikely(!atomic_load_explicit(&ipcd_resolved, memory_order_acquire)))
		ipcd_init_slow();
}

/* Set errno to ENOSYS and return -1: the slot did not resolve. */
int ipcd_enosys(void);

/* Number of slots and their names/pointers, for test_calls.c. */
unsigned int ipcd_real_count(void);
const char *ipcd_real_name(unsigned int i);
void *ipcd_real_slot(unsigned int i);

/* A message on stderr via the raw syscall (never recurses, async-signal-safe). */
void ipcd_log_raw(const char *msg);

/* ---- state.c --------------------------------------------------------------- */

/* socket() created an fd of @domain/@type: attach to the monitor if it is the first TCP one. */
void ipcd_state_on_socket(int domain, int type);
/* At load (constructor): IPCD_SOCKET, IPCD_SPIN_US, IPCD_QUIET as the program started. */
void ipcd_state_load_env(void);
/* IPCD_QUIET=1 at load: no warning lines on stderr. */
bool ipcd_quiet(void);
/* Register for a pipe: silently, and without a verdict if no monitor (state.c). */
bool ipcd_state_attach_quiet(void);
/* IPCD_PIPES=0 at load: pipes stay the kernel's (pipe.c). */
bool ipcd_pipes_enabled(void);
/* fork.c/pthread_atfork: the child forgets the parent's registration. */
void ipcd_state_atfork_prepare(void);
void ipcd_state_atfork_parent(void);
void ipcd_state_atfork_child(void);

#endif /* IPCD_INTERPOSE_H */
