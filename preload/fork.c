/* SPDX-License-Identifier: MIT */
/*
 * fork.c - fork() pass-through. The registration is handled by the
 * pthread_atfork handlers (interpose.c registers them, state.c implements
 * them), which also cover programs that reach libc's fork without this
 * wrapper. vfork is not interposed: a wrapper function cannot return
 * twice through one stack frame shared by parent and child; the real vfork
 * runs no atfork handlers and its child may only exec or _exit, which is
 * already correct for pass-through (the control socket is CLOEXEC).
 */
#undef _FORTIFY_SOURCE
#include "interpose.h"

IPCD_EXPORT pid_t fork(void)
{
	ipcd_init();
	if (unlikely(!ipcd_real.fork))
		return ipcd_enosys();
	return ipcd_real.fork();
}
