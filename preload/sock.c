/* SPDX-License-Identifier: MIT */
/*
 * sock.c - hand-written wrappers (calls.def IPCD_OWN_CALL): socket, the
 * variadic fcntl/fcntl64/ioctl, and dup2/dup3 (two fds). Pass-through for
 * now; socket() also triggers the one registration with the monitor.
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <stdarg.h>

#include "interpose.h"

IPCD_EXPORT int socket(int domain, int type, int protocol)
{
	int fd;

	ipcd_init();
	if (unlikely(!ipcd_real.socket))
		return ipcd_enosys();
	fd = ipcd_real.socket(domain, type, protocol);
	/* After the real call: the application gets the fd number it would get without us. */
	if (fd >= 0 && !ipcd_inside)
		ipcd_state_on_socket(domain, type);	/* preserves errno */
	return fd;
}

/*
 * fcntl's third argument is an int or a pointer depending on cmd; like
 * glibc's own fcntl64 we take it as void * unconditionally (same register /
 * stack slot on every Linux ABI, garbage when cmd takes none, which the
 * kernel ignores) and forward it.
 */
#define IPCD_FCNTL(name)							\
	IPCD_EXPORT int name(int fd, int cmd, ...)				\
	{									\
		va_list ap;							\
		void *arg;							\
										\
		va_start(ap, cmd);						\
		arg = va_arg(ap, void *);					\
		va_end(ap);							\
		ipcd_init();							\
		if (unlikely(!ipcd_real.name))					\
			return ipcd_enosys();					\
		return ipcd_real.name(fd, cmd, arg);				\
	}
IPCD_FCNTL(fcntl)
IPCD_FCNTL(fcntl64)

IPCD_EXPORT int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	ipcd_init();
	if (unlikely(!ipcd_real.ioctl))
		return ipcd_enosys();
	return ipcd_real.ioctl(fd, request, arg);
}

IPCD_EXPORT int dup2(int fd, int fd2)
{
	ipcd_init();
	if (unlikely(!ipcd_real.dup2))
		return ipcd_enosys();
	return ipcd_real.dup2(fd, fd2);
}

IPCD_EXPORT int dup3(int fd, int fd2, int flags)
{
	ipcd_init();
	if (unlikely(!ipcd_real.dup3))
		return ipcd_enosys();
	return ipcd_real.dup3(fd, fd2, flags);
}
