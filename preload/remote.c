/* SPDX-License-Identifier: MIT */
/*
 * remote.c - connections to other hosts (issue #7): the preload's side.
 *
 * A connect() to an address that is not local asks the monitor with
 * IPCD_CONNECT_REMOTE only while the monitor says a cluster link is up
 * (ipcd_global_ctl.cluster_up) and this process's RDMA engine works. The
 * engine (rdma/engine.c, libipcd-rdma.so) is loaded with dlopen() then, and
 * only then: a program that never leaves its host never loads libibverbs,
 * and a host without the library or a device stays on TCP with one line
 * of explanation.
 *
 * Ends of remote connections are ordinary ends to the rest of the library;
 * the engine hooks their rings (spsc.h remote hooks) at attach and takes
 * their mapping over at release.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcd/atomic.h>

#include "../rdma/engine.h"
#include "sock.h"

enum { ENG_UNTRIED, ENG_OK, ENG_FAILED };

static pthread_mutex_t eng_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int eng_state = ENG_UNTRIED;
static const struct ipcd_engine_ops *eng_ops;

static void eng_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	if (ipcd_quiet())
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n] = '\n';
	line[n + 1] = '\0';
	ipcd_log_raw(line);
}

/* libipcd-rdma.so: $IPCD_RDMA_LIB, else beside this library. */
static void *engine_open(void)
{
	const char *env = getenv("IPCD_RDMA_LIB");
	char path[PATH_MAX];
	Dl_info info;
	void *h;

	if (env && *env)
		return dlopen(env, RTLD_NOW | RTLD_LOCAL);
	if (dladdr((void *)engine_open, &info) && info.dli_fname) {
		const char *slash = strrchr(info.dli_fname, '/');

		if (slash && (size_t)(slash - info.dli_fname) + sizeof(IPCD_ENGINE_LIB) + 1 <
			     sizeof(path)) {
			snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - info.dli_fname),
				 info.dli_fname, IPCD_ENGINE_LIB);
			h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
			if (h)
				return h;
		}
	}
	return dlopen(IPCD_ENGINE_LIB, RTLD_NOW | RTLD_LOCAL);
}

/* Load the engine, get our RDMA channel from the monitor, start it. */
static int engine_start(void)
{
	struct ipcd_req req = { .opcode = IPCD_OP_RATTACH };
	struct ipcd_rattach_resp ra;
	struct ipcd_engine_env env = { 0 };
	const struct ipcd_engine_ops *ops;
	struct ipcd_attach *a = ipcd_state_get();
	struct ipcd_resp resp;
	int fds[IPCD_CTL_CONN_NFDS];
	void *h;
	int rc;

	h = engine_open();
	if (!h) {
		eng_log("ipcd: cannot load %s (%s): connections to other hosts use TCP",
			IPCD_ENGINE_LIB, dlerror());
		return -ENOENT;
	}
	ops = dlsym(h, IPCD_ENGINE_SYMBOL);
	if (!ops || ops->version != IPCD_ENGINE_VERSION) {
		eng_log("ipcd: %s is not this library's version: connections to other hosts use "
			"TCP", IPCD_ENGINE_LIB);
		return -ENOENT;
	}
	rc = ipcd_mon_call(&req, &resp, fds, NULL);
	if (rc || resp.status || resp.len != sizeof(ra)) {
		if (fds[0] >= 0)
			close(fds[0]);
		return rc ? rc : resp.status ? resp.status : -EPROTO;
	}
	memcpy(&ra, resp.body, sizeof(ra));
	env.chan_fd = fds[0];
	ipcd_fd_hide(env.chan_fd, true);
	env.host = ra.host;
	env.key = ra.key;
	memcpy(env.addr, ra.addr, 16);
	if (a) {
		struct ipcd_client_ctl *cc = ipcd_region_area(&a->client_reg, IPCD_AREA_CLIENT_CTL,
							      NULL);

		env.stats = cc ? &cc->rdma : NULL;
	}
	env.spin_ns = (uint32_t)IPCD_MIN(ipcd_spin_ns, 1000000u);
	env.log = eng_log;
	rc = ops->init(&env);
	if (rc) {
		ipcd_fd_hide(env.chan_fd, false);
		close(env.chan_fd);
		return rc;
	}
	eng_ops = ops;
	return 0;
}

/* The engine, started on first need (once: a failure is final for the process). */
static bool engine_ready(void)
{
	int st = atomic_load(&eng_state);

	if (st == ENG_UNTRIED) {
		pthread_mutex_lock(&eng_mu);
		if (atomic_load(&eng_state) == ENG_UNTRIED)
			atomic_store(&eng_state, engine_start() ? ENG_FAILED : ENG_OK);
		pthread_mutex_unlock(&eng_mu);
		st = atomic_load(&eng_state);
	}
	return st == ENG_OK && eng_ops->usable();
}

bool ipcd_remote_wanted(const uint8_t dst[16])
{
	struct ipcd_attach *a = ipcd_state_get();

	/* Pointers read once: another thread may forget the registration (state.c retire_region). */
	const uint32_t *up = !a ? NULL
			     : a->welcome.abi_minor >= 6 ? (a->cl.chan.ctl ? &a->cl.chan.ctl->cluster_up
									    : NULL)
			     : a->gctl ? &a->gctl->cluster_up : NULL;

	if (!up || !ipcd_load_acquire(up))
		return false;
	static const uint8_t v6_lo[16] = { [15] = 1 };

	if ((dst[0] == 0 && dst[10] == 0xff && dst[12] == 127) || !memcmp(dst, v6_lo, 16))
		return false;		/* loopback: never another host */
	return engine_ready();
}

int ipcd_remote_attach(struct ipcd_conn *c)
{
	struct ipcd_engine_conn *ec;
	unsigned int i;
	int rc;

	if (!engine_ready())
		return -ENOTCONN;
	ec = calloc(1, sizeof(*ec));
	if (!ec)
		return -ENOMEM;
	ec->conn_id = c->conn_id;
	ec->ctl = c->ctl;
	ec->tx = &c->tx;
	ec->rx = &c->rx;
	ec->base = c->reg.base;
	ec->size = c->reg.size;
	for (i = 0; i < 3; i++)
		ec->off[i] = c->reg.hdr.area[i].off;
	ec->acceptor = c->acceptor;
	ec->wake_fd = c->wake_self >= 0 ? fcntl(c->wake_self, F_DUPFD_CLOEXEC, 0) : -1;
	if (ec->wake_fd < 0) {
		free(ec);
		return -EMFILE;
	}
	ipcd_fd_hide(ec->wake_fd, true);
	rc = eng_ops->attach(ec);
	if (rc) {
		ipcd_fd_hide(ec->wake_fd, false);
		close(ec->wake_fd);
		free(ec);
		return rc;
	}
	c->remote = ec;
	return 0;
}

/* ipcd_conn_release() of a remote end: the engine keeps the mapping. */
static void remote_release(struct ipcd_conn *c)
{
	struct ipcd_engine_conn *ec = c->remote;

	c->remote = NULL;
	if (!ec)
		return;
	ipcd_fd_hide(ec->wake_fd, false);	/* the engine closes it */
	eng_ops->detach(ec);
	free(ec);
}

void ipcd_remote_atfork_child(void)
{
	/* The parent's engine serves the ends we inherit; ours starts on our first need. */
	if (atomic_load(&eng_state) == ENG_OK) {
		eng_ops->atfork_child();
		atomic_store(&eng_state, ENG_UNTRIED);
	}
	pthread_mutex_init(&eng_mu, NULL);
}

__attribute__((constructor)) static void remote_init(void)
{
	ipcd_conn_remote_release = remote_release;
}
