/* SPDX-License-Identifier: MIT */
/*
 * fork.c - fork and the exec family.
 *
 * The work is done by the pthread_atfork handlers (interpose.c registers
 * them, state.c implements them), which also cover programs that reach
 * libc's fork without this wrapper (daemon()): before the fork every
 * connection end gets its hold token (proto.h IPCD_OP_HOLD) and the child
 * is counted as a holder of every end (sock.h), before it exists. This
 * wrapper only counts the child back out when fork fails. vfork is not
 * interposed: a wrapper function cannot return twice through one stack
 * frame shared by parent and child; the real vfork runs no atfork
 * handlers, its child is not counted as a holder, and it may only exec
 * (whose wrapper then leaves the holders alone: see below) or _exit.
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>

#include "sock.h"

pid_t ipcd_self_pid;	/* the process the holders were counted for */

IPCD_EXPORT pid_t fork(void)
{
	pid_t pid;

	ipcd_init();
	if (unlikely(!ipcd_real.fork))
		return ipcd_enosys();
	pid = ipcd_real.fork();
	if (pid < 0) {		/* the prepare handler counted a child that never was */
		int saved = errno;

		ipcd_socks_lock();
		ipcd_socks_hold_all(-1);
		ipcd_socks_unlock();
		errno = saved;
	}
	return pid;
}

/*
 * exec: the new image has no table, so every accelerated fd is close-on-exec
 * at the kernel level (fdtab.c) and this process stops holding each
 * connection end it holds: as if it closed them all. The last holder marks
 * the rings (the peer reads EOF) and tells the monitor. Only the process
 * the holders were counted for does this: a vfork child shares its parent's
 * memory and was never counted (its pid differs from the one recorded).
 * If exec fails, ends other processes still held are counted back; ends this
 * process was the last to hold stay closed (the application sees EOF/EPIPE).
 */
static void exec_prepare(void)
{
	if (ipcd_inside || syscall(SYS_getpid) != ipcd_self_pid)
		return;
	ipcd_socks_lock();
	ipcd_socks_exec(true);
	ipcd_socks_unlock();
}

static void exec_failed(void)
{
	int saved = errno;

	if (ipcd_inside || syscall(SYS_getpid) != ipcd_self_pid)
		return;
	ipcd_socks_lock();
	ipcd_socks_exec(false);
	ipcd_socks_unlock();
	errno = saved;
}

#define IPCD_EXEC(call)								\
	do {									\
		int rc;								\
										\
		ipcd_init();							\
		exec_prepare();							\
		rc = (call);							\
		exec_failed();							\
		return rc;							\
	} while (0)

IPCD_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	if (unlikely(!ipcd_real.execve))
		return ipcd_enosys();
	IPCD_EXEC(ipcd_real.execve(path, argv, envp));
}

IPCD_EXPORT int execv(const char *path, char *const argv[])
{
	if (unlikely(!ipcd_real.execv))
		return ipcd_enosys();
	IPCD_EXEC(ipcd_real.execv(path, argv));
}

IPCD_EXPORT int execvp(const char *file, char *const argv[])
{
	if (unlikely(!ipcd_real.execvp))
		return ipcd_enosys();
	IPCD_EXEC(ipcd_real.execvp(file, argv));
}

IPCD_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	if (unlikely(!ipcd_real.execvpe))
		return ipcd_enosys();
	IPCD_EXEC(ipcd_real.execvpe(file, argv, envp));
}

IPCD_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	if (unlikely(!ipcd_real.fexecve))
		return ipcd_enosys();
	IPCD_EXEC(ipcd_real.fexecve(fd, argv, envp));
}

/*
 * execl, execlp, execle: glibc implements them with its internal execve, so
 * they are interposed too; their arguments are gathered into an argv here
 * and go through the wrappers above (their calls.def slots stay unused).
 */
#define EXEC_MAX_ARGS	4096

static int gather(const char *arg0, va_list ap, char **argv, char ***envp)
{
	int n = 0;

	argv[n++] = (char *)arg0;
	while (arg0 && (argv[n] = va_arg(ap, char *)) != NULL) {
		if (++n == EXEC_MAX_ARGS) {
			errno = E2BIG;
			return -1;
		}
	}
	if (!arg0)
		argv[0] = NULL;
	if (envp)
		*envp = va_arg(ap, char **);
	return 0;
}

IPCD_EXPORT int execl(const char *path, const char *arg, ...)
{
	char *argv[EXEC_MAX_ARGS + 1];
	va_list ap;
	int rc;

	va_start(ap, arg);
	rc = gather(arg, ap, argv, NULL);
	va_end(ap);
	if (rc)
		return rc;
	return execv(path, argv);
}

IPCD_EXPORT int execlp(const char *file, const char *arg, ...)
{
	char *argv[EXEC_MAX_ARGS + 1];
	va_list ap;
	int rc;

	va_start(ap, arg);
	rc = gather(arg, ap, argv, NULL);
	va_end(ap);
	if (rc)
		return rc;
	return execvp(file, argv);
}

IPCD_EXPORT int execle(const char *path, const char *arg, ...)
{
	char *argv[EXEC_MAX_ARGS + 1];
	char **envp;
	va_list ap;
	int rc;

	va_start(ap, arg);
	rc = gather(arg, ap, argv, &envp);
	va_end(ap);
	if (rc)
		return rc;
	return execve(path, argv, envp);
}
