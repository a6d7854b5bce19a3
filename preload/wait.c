/* SPDX-License-Identifier: MIT */
/*
 * wait.c - hand-written wrappers for readiness calls (poll, ppoll, select,
 * pselect, epoll_*). Pass-through for now: they take fd sets, not one fd;
 * accelerated fds will be mapped here.
 */
#undef _FORTIFY_SOURCE
#include "interpose.h"

#define IPCD_PASS(name, ...)							\
	do {									\
		ipcd_init();							\
		if (unlikely(!ipcd_real.name))					\
			return ipcd_enosys();					\
		return ipcd_real.name(__VA_ARGS__);				\
	} while (0)

IPCD_EXPORT int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	IPCD_PASS(poll, fds, nfds, timeout);
}

IPCD_EXPORT int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		      const __sigset_t *ss)
{
	IPCD_PASS(ppoll, fds, nfds, timeout, ss);
}

IPCD_EXPORT int select(int nfds, fd_set *__restrict readfds, fd_set *__restrict writefds,
		       fd_set *__restrict exceptfds, struct timeval *__restrict timeout)
{
	IPCD_PASS(select, nfds, readfds, writefds, exceptfds, timeout);
}

IPCD_EXPORT int pselect(int nfds, fd_set *__restrict readfds, fd_set *__restrict writefds,
			fd_set *__restrict exceptfds, const struct timespec *__restrict timeout,
			const __sigset_t *__restrict sigmask)
{
	IPCD_PASS(pselect, nfds, readfds, writefds, exceptfds, timeout, sigmask);
}

IPCD_EXPORT int epoll_create(int size)
{
	IPCD_PASS(epoll_create, size);
}

IPCD_EXPORT int epoll_create1(int flags)
{
	IPCD_PASS(epoll_create1, flags);
}

IPCD_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	IPCD_PASS(epoll_ctl, epfd, op, fd, event);
}

IPCD_EXPORT int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	IPCD_PASS(epoll_wait, epfd, events, maxevents, timeout);
}

IPCD_EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
			    const __sigset_t *ss)
{
	IPCD_PASS(epoll_pwait, epfd, events, maxevents, timeout, ss);
}
