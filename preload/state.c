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
 * The pass-through step never writes to the control socket; the
 * acceleration step must call ipcd_state_get() (which re-checks) first.
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "attach.h"
#include "interpose.h"

enum { ST_NONE, ST_ATTACHED, ST_FAILED, ST_LOST };

struct fd_id {
	dev_t dev;
	ino_t ino;
};

static atomic_int state = ST_NONE;
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ipcd_attach att;
static struct fd_id id_sock, id_wake, id_client, id_global;

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

/* Raw close: no wrapper, no errno change that matters (callers save errno). */
static void close_raw(int fd)
{
	syscall(SYS_close, fd);
}

void ipcd_state_on_socket(int domain, int type)
{
	char why[256], line[320];
	const char *quiet;
	int saved, rc;

	if (domain != AF_INET && domain != AF_INET6)
		return;
	if ((type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != SOCK_STREAM)
		return;
	if (atomic_load_explicit(&state, memory_order_acquire) != ST_NONE)
		return;

	saved = errno;
	ipcd_inside++;
	pthread_mutex_lock(&state_mu);
	if (atomic_load_explicit(&state, memory_order_relaxed) == ST_NONE) {
		why[0] = '\0';
		rc = ipcd_attach(NULL, NULL, &att, why, sizeof(why));
		if (rc == 0) {
			fd_remember(att.sock, &id_sock);
			fd_remember(att.wake_fd, &id_wake);
			fd_remember(att.client_reg.fd, &id_client);
			fd_remember(att.global_reg.fd, &id_global);
			atomic_store_explicit(&state, ST_ATTACHED, memory_order_release);
		} else {
			quiet = getenv("IPCD_QUIET");
			if (!quiet || strcmp(quiet, "1") != 0) {
				snprintf(line, sizeof(line), "ipcd: %s: using the kernel\n",
					 why[0] ? why : strerror(-rc));
				ipcd_log_raw(line);
			}
			atomic_store_explicit(&state, ST_FAILED, memory_order_release);
		}
	}
	pthread_mutex_unlock(&state_mu);
	ipcd_inside--;
	errno = saved;
}

/**
 * ipcd_state_get - the registration, or NULL (none, failed, or lost because
 * the application closed or replaced its control socket).
 */
struct ipcd_attach *ipcd_state_get(void);
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

/* Forget @a's fds that are no longer ours (before ipcd_region_close/close). */
static void drop_foreign_fds(void)
{
	if (!fd_is_ours(att.client_reg.fd, &id_client))
		att.client_reg.fd = -1;
	if (!fd_is_ours(att.global_reg.fd, &id_global))
		att.global_reg.fd = -1;
}

void ipcd_state_atfork_prepare(void)
{
	pthread_mutex_lock(&state_mu);
}

void ipcd_state_atfork_parent(void)
{
	pthread_mutex_unlock(&state_mu);
}

void ipcd_state_atfork_child(void)
{
	int saved = errno, st;

	ipcd_inside++;
	st = atomic_load_explicit(&state, memory_order_relaxed);
	if (st == ST_ATTACHED || st == ST_LOST) {
		drop_foreign_fds();
		ipcd_region_close(&att.client_reg);
		ipcd_region_close(&att.global_reg);
		if (fd_is_ours(att.wake_fd, &id_wake))
			close_raw(att.wake_fd);
		if (fd_is_ours(att.sock, &id_sock))
			close_raw(att.sock);
		memset(&att, 0, sizeof(att));
		att.sock = -1;
		att.wake_fd = -1;
		atomic_store_explicit(&state, ST_NONE, memory_order_relaxed);
	}
	/* ST_FAILED stays: the monitor was absent for the parent; one line is enough. */
	pthread_mutex_unlock(&state_mu);	/* locked by prepare in the parent */
	ipcd_inside--;
	errno = saved;
}
