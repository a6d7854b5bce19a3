/* SPDX-License-Identifier: MIT */
/*
 * interpose.c - the calls.def expansions (STYLE.md 2.4):
 *   1. struct ipcd_libc ipcd_real (interpose.h);
 *   2. the resolver: dlsym(RTLD_NEXT) per slot, from a constructor and,
 *      through pthread_once, from every wrapper (another library's
 *      constructor may call close() before ours ran);
 *   3. an exported wrapper per IPCD_FD_CALL: a kernel fd goes to the real
 *      call with its return value and errno untouched; an accelerated one
 *      to ipcd_sock_<name>() (sock.c, data.c).
 */
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>

#include "interpose.h"
#include "sock.h"

struct ipcd_libc ipcd_real;
__thread int ipcd_inside __attribute__((tls_model("initial-exec")));
atomic_bool ipcd_resolved;

static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

static const char *const slot_names[] = {
#define IPCD_FD_CALL(ret, name, params, ...)	#name,
#define IPCD_OWN_CALL(ret, name, params)	#name,
#include "calls.def"
};
IPCD_BUILD_ASSERT(sizeof(slot_names) / sizeof(slot_names[0]) * sizeof(void (*)(void)) ==
		  sizeof(struct ipcd_libc));

void ipcd_log_raw(const char *msg)
{
	int saved = errno;

	syscall(SYS_write, 2, msg, strlen(msg));
	errno = saved;
}

static void resolve(void)
{
	int saved = errno;

	ipcd_inside++;
#define IPCD_FD_CALL(ret, name, params, ...)	IPCD_OWN_CALL(ret, name, params)
#define IPCD_OWN_CALL(ret, name, params)					\
	do {									\
		void *p = dlsym(RTLD_NEXT, #name);				\
		if (!p)								\
			ipcd_log_raw("ipcd: libc has no " #name "(): it fails with ENOSYS\n"); \
		memcpy(&ipcd_real.name, &p, sizeof(p));				\
	} while (0);
#include "calls.def"
	ipcd_inside--;
	atomic_store_explicit(&ipcd_resolved, true, memory_order_release);
	errno = saved;
}

void ipcd_init_slow(void)
{
	/*
	 * dlsym() itself calling a wrapper on this thread (ipcd_inside > 0):
	 * pthread_once would deadlock; the caller sees the slots resolved so
	 * far (an unresolved one fails with ENOSYS).
	 */
	if (ipcd_inside)
		return;
	pthread_once(&resolve_once, resolve);
}

__attribute__((constructor)) static void ipcd_ctor(void)
{
	ipcd_init();
	ipcd_self_pid = (pid_t)syscall(SYS_getpid);
	ipcd_state_load_env();
	ipcd_exec_adopt();	/* connections an exec handed over (exec.c), before main */
	/* The atfork handlers: registered once, after the table. */
	pthread_atfork(ipcd_state_atfork_prepare, ipcd_state_atfork_parent,
		       ipcd_state_atfork_child);
}

int ipcd_enosys(void)
{
	errno = ENOSYS;
	return -1;
}

unsigned int ipcd_real_count(void)
{
	return IPCD_ARRAY_SIZE(slot_names);
}

const char *ipcd_real_name(unsigned int i)
{
	return i < IPCD_ARRAY_SIZE(slot_names) ? slot_names[i] : NULL;
}

void *ipcd_real_slot(unsigned int i)
{
	void *p = NULL;

	if (i < IPCD_ARRAY_SIZE(slot_names))
		memcpy(&p, (char *)&ipcd_real + i * sizeof(void (*)(void)), sizeof(p));
	return p;
}

/*
 * 3. The wrappers (STYLE.md 2.4): an fd that is not in the table, or a call
 * made by the library itself, goes to the real call unchanged; an
 * accelerated one goes to ipcd_sock_<name>() (sock.c, data.c), holding a
 * reference on the socket for the duration of the call. A connection
 * whose monitor died with it still in a backlog becomes the kernel's at
 * its next call, or when a call finds it so (IPCD_EMOVED): the call is
 * then the kernel's (sock.h ipcd_sock_settle).
 */
#define IPCD_WRAP(ret, name, params, sock_only, ...)				\
	IPCD_EXPORT ret name params						\
	{									\
		struct ipcd_sock *s;						\
		ret r;								\
										\
		ipcd_init();							\
		if (unlikely(!ipcd_real.name))					\
			return (ret)ipcd_enosys();				\
		if (likely(!ipcd_fdtab_get(fd)) || ipcd_inside ||		\
		    !(s = ipcd_sock_get(fd)))					\
			return ipcd_real.name(__VA_ARGS__);			\
		if ((sock_only) && unlikely(s->kind == IPCD_CONN_KIND_PIPE)) {	\
			ipcd_sock_put(s);					\
			errno = ENOTSOCK;	/* send() on a pipe */		\
			return (ret)-1;						\
		}								\
		if (unlikely(s->conn.peer_lost == IPCD_PEER_MOVED) &&		\
		    ipcd_sock_settle(s))					\
			goto kernel;						\
		r = ipcd_sock_##name(s, __VA_ARGS__);				\
		if (unlikely(r == (ret)-1 && errno == IPCD_EMOVED)) {		\
			if (ipcd_sock_settle(s))				\
				goto kernel;					\
			r = ipcd_sock_##name(s, __VA_ARGS__);			\
		}								\
		ipcd_sock_put(s);	/* preserves errno */			\
		return r;							\
	kernel:									\
		ipcd_sock_put(s);						\
		return ipcd_real.name(__VA_ARGS__);				\
	}
#define IPCD_FD_CALL(ret, name, params, ...)	IPCD_WRAP(ret, name, params, false, __VA_ARGS__)
#define IPCD_SOCK_CALL(ret, name, params, ...)	IPCD_WRAP(ret, name, params, true, __VA_ARGS__)
#include "calls.def"
