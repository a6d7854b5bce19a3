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
#include <spawn.h>
#include <stdarg.h>
#include <unistd.h>
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
 * vfork: a wrapper cannot call the real vfork (its child would return
 * through our frame, which the parent then reuses), and a child sharing its
 * parent's memory could not prepare a handover (exec.c) without writing
 * the parent's. So vfork is fork here: the child gets the atfork handlers
 * (hold tokens, holder counts) and may do what a fork child may, which is
 * more than a vfork child may. POSIX leaves a vfork child that writes
 * memory undefined, so no portable program can tell, only slower.
 */
IPCD_EXPORT pid_t vfork(void)
{
	return fork();
}

/*
 * exec: the new image has no table. Every accelerated fd is close-on-exec at
 * the kernel level (fdtab.c); those the application did not mark so are
 * handed to the new image (exec.c), and this process stops holding every
 * other connection end, as if it closed them: the last holder marks the
 * rings (the peer reads EOF) and tells the monitor. Only the process the
 * holders were counted for does this: a child of a raw vfork/clone shares
 * its parent's memory and was never counted (its pid differs from the one
 * recorded). If exec fails, all of it is undone; ends this process was the
 * last to hold stay closed (the application sees EOF/EPIPE).
 */
static char *const *exec_prepare(char *const envp[], const char *image, bool search)
{
	if (ipcd_inside || syscall(SYS_getpid) != ipcd_self_pid)
		return envp;
	ipcd_pipes_before_exec(image, search);	/* an image that will not load us (pipe.c) */
	return ipcd_exec_prepare(envp);
}

static void exec_failed(void)
{
	if (ipcd_inside || syscall(SYS_getpid) != ipcd_self_pid)
		return;
	ipcd_exec_failed();
}

/* @image: the file to run, looked up in PATH if @search. */
#define IPCD_EXEC(real, image, search, ...)					\
	do {									\
		char *const *env;						\
		int rc;								\
										\
		ipcd_init();							\
		if (unlikely(!ipcd_real.real))					\
			return ipcd_enosys();					\
		env = exec_prepare(envp, image, search);			\
		rc = ipcd_real.real(__VA_ARGS__);				\
		exec_failed();							\
		return rc;							\
	} while (0)

IPCD_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	IPCD_EXEC(execve, path, false, path, argv, env);
}

/* execv and execvp use environ: the handover needs the envp variants. */
IPCD_EXPORT int execv(const char *path, char *const argv[])
{
	char *const *envp = environ;

	IPCD_EXEC(execve, path, false, path, argv, env);
}

IPCD_EXPORT int execvp(const char *file, char *const argv[])
{
	char *const *envp = environ;

	IPCD_EXEC(execvpe, file, true, file, argv, env);
}

IPCD_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	IPCD_EXEC(execvpe, file, true, file, argv, env);
}

IPCD_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	char self[32];

	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	IPCD_EXEC(fexecve, self, false, fd, argv, env);
}

/* posix_spawn: its child execs inside glibc, without our wrappers (exec.c). */
IPCD_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
			    const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ipcd_init();
	return ipcd_spawn(false, pid, path, fa, attr, argv, envp);
}

IPCD_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			     const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ipcd_init();
	return ipcd_spawn(true, pid, file, fa, attr, argv, envp);
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
