/* SPDX-License-Identifier: MIT */
/*
 * fork.c - fork(). The registration is handled by the pthread_atfork
 * handlers (interpose.c registers them, state.c implements them), which also
 * cover programs that reach libc's fork without this wrapper. Through this
 * wrapper the child is also counted as a holder of every connection end
 * (sock.h), before it exists. vfork is not interposed: a wrapper function cannot return
 * twice through one stack frame shared by parent and child; the real vfork
 * runs no atfork handlers and its child may only exec or _exit, which is
 * already correct for pass-through (the control socket is CLOEXEC).
 */
#undef _FORTIFY_SOURCE
#include "sock.h"

__thread bool ipcd_forking __attribute__((tls_model("initial-exec")));

IPCD_EXPORT pid_t fork(void)
{
	pid_t pid;

	ipcd_init();
	if (unlikely(!ipcd_real.fork))
		return ipcd_enosys();
	ipcd_forking = true;		/* the prepare handler counts the child as a holder */
	pid = ipcd_real.fork();
	ipcd_forking = false;
	if (pid < 0) {
		int saved = errno;

		ipcd_socks_lock();
		ipcd_socks_hold_all(-1);
		ipcd_socks_unlock();
		errno = saved;
	}
	return pid;
}
