/* SPDX-License-Identifier: MIT */
/*
 * attach.h - a process registers with the monitor and maps its queues.
 *
 * Used by the preload library, and by tests and benchmarks that talk to a
 * real monitor. Calls return 0 or -errno and never touch errno.
 */
#ifndef IPCD_ATTACH_H
#define IPCD_ATTACH_H

#include <stddef.h>
#include <stdint.h>

#include <ipcd/ctl.h>
#include <ipcd/mpsc.h>
#include <ipcd/reqq.h>
#include <ipcd/shm.h>

/**
 * struct ipcd_attach - one registration with the monitor.
 * @sock:    the control socket; closing it (or dying) unregisters.
 * @welcome: what the monitor said (queue mode, client id, slot).
 * @cl:      the request channel: ipcd_reqq_call(&a->cl, ...).
 */
struct ipcd_attach {
	int sock;
	int wake_fd;
	struct ipcd_region client_reg;
	struct ipcd_region global_reg;
	struct ipcd_global_ctl *gctl;
	struct ipcd_mpsc db;
	struct ipcd_reqq_client cl;
	struct ipcd_ctl_welcome welcome;
};

/**
 * ipcd_ctl_path - the control socket to use: @path, else $IPCD_SOCKET, else
 * the default.
 */
const char *ipcd_ctl_path(const char *path);

/**
 * ipcd_attach - connect to the monitor at ipcd_ctl_path(@path) and register.
 * @comm: a name shown by ipcdctl (NULL: this process's name).
 * @why:  receives a one-line reason on failure.
 *
 * Returns 0, -ENOENT/-ECONNREFUSED (no monitor), -EPROTONOSUPPORT (ABI
 * mismatch; @why names both versions), the monitor's refusal, or -EPROTO.
 */
int ipcd_attach(const char *path, const char *comm, struct ipcd_attach *a, char *why,
		size_t whylen);

/** ipcd_detach - unregister (close the control socket) and unmap. */
void ipcd_detach(struct ipcd_attach *a);

#endif /* IPCD_ATTACH_H */
