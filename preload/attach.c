/* SPDX-License-Identifier: MIT */
/* attach.c - register with the monitor: handshake, fds over SCM_RIGHTS, map the queues. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "attach.h"

const char *ipcd_ctl_path(const char *path)
{
	const char *env;

	if (path)
		return path;
	env = getenv(IPCD_CTL_ENV_PATH);
	return env && *env ? env : IPCD_CTL_DEFAULT_PATH;
}

static void close_fds(int *fds, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Receive the welcome and exactly IPCD_CTL_NFDS descriptors (or none, if refused). */
static int recv_welcome(int sock, struct ipcd_ctl_welcome *w, int *fds, unsigned int *nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPCD_CTL_NFDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = w, .iov_len = sizeof(*w) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	*nfds = 0;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (k > IPCD_CTL_NFDS - *nfds)
			k = IPCD_CTL_NFDS - *nfds;	/* MSG_CTRUNC dropped any excess */
		memcpy(fds + *nfds, CMSG_DATA(cm), k * sizeof(int));
		*nfds += (unsigned int)k;
	}
	if (n != (ssize_t)sizeof(*w) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		return -EPROTO;
	return 0;
}

int ipcd_attach(const char *path, const char *comm, struct ipcd_attach *a, char *why,
		size_t whylen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ipcd_ctl_hello h = {
		.magic = IPCD_CTL_MAGIC,
		.abi_major = IPCD_SHM_ABI_MAJOR,
		.abi_minor = IPCD_SHM_ABI_MINOR,
		.kind = IPCD_CTL_CLIENT,
	};
	int fds[IPCD_CTL_NFDS] = { -1, -1, -1 };
	unsigned int nfds = 0;
	size_t mpsc_size;
	void *mpsc;
	int rc;

	memset(a, 0, sizeof(*a));
	a->sock = -1;
	a->wake_fd = -1;
	path = ipcd_ctl_path(path);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(why, whylen, "control socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (comm)
		snprintf(h.comm, sizeof(h.comm), "%s", comm);
	else
		prctl(PR_GET_NAME, h.comm);

	a->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (a->sock < 0) {
		rc = -errno;
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return rc;
	}
	if (connect(a->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		snprintf(why, whylen, "no monitor at %s (%s)", path, strerror(errno));
		goto err_sock;
	}
	if (send(a->sock, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h)) {
		rc = -errno;
		snprintf(why, whylen, "monitor at %s: send hello: %s", path, strerror(errno));
		goto err_sock;
	}
	rc = recv_welcome(a->sock, &a->welcome, fds, &nfds);
	if (rc) {
		snprintf(why, whylen, "monitor at %s: bad welcome (%s)", path, strerror(-rc));
		goto err_fds;
	}
	a->welcome.msg[sizeof(a->welcome.msg) - 1] = '\0';
	if (a->welcome.magic != IPCD_CTL_MAGIC) {
		rc = -EPROTO;
		snprintf(why, whylen, "monitor at %s: not an IPC-Direct monitor", path);
		goto err_fds;
	}
	if (a->welcome.status) {
		rc = a->welcome.status < 0 ? a->welcome.status : -EPROTO;
		snprintf(why, whylen, "monitor at %s refused: %s", path, a->welcome.msg);
		goto err_fds;
	}
	if (nfds != IPCD_CTL_NFDS) {
		rc = -EPROTO;
		snprintf(why, whylen, "monitor at %s sent %u descriptors, expected %d", path, nfds,
			 IPCD_CTL_NFDS);
		goto err_fds;
	}
	rc = ipcd_region_map(fds[IPCD_CTL_FD_CLIENT], IPCD_REGION_CLIENT, &a->client_reg);
	if (rc) {
		snprintf(why, whylen, "client region: %s", strerror(-rc));
		goto err_fds;
	}
	fds[IPCD_CTL_FD_CLIENT] = -1;
	rc = ipcd_region_map(fds[IPCD_CTL_FD_GLOBAL], IPCD_REGION_GLOBAL, &a->global_reg);
	if (rc) {
		snprintf(why, whylen, "global region: %s", strerror(-rc));
		goto err_client;
	}
	fds[IPCD_CTL_FD_GLOBAL] = -1;
	a->wake_fd = fds[IPCD_CTL_FD_WAKE];
	fds[IPCD_CTL_FD_WAKE] = -1;

	rc = ipcd_reqq_chan_attach(&a->client_reg, &a->cl.chan);
	if (rc) {
		snprintf(why, whylen, "request channel: %s", strerror(-rc));
		goto err_global;
	}
	a->gctl = ipcd_region_area(&a->global_reg, IPCD_AREA_GLOBAL_CTL, NULL);
	if (!a->gctl) {
		rc = -EPROTO;
		snprintf(why, whylen, "global region has no control area");
		goto err_global;
	}
	if (a->welcome.queue_mode == IPCD_QMODE_SHARED) {
		mpsc = ipcd_region_area(&a->global_reg, IPCD_AREA_GLOBAL_MPSC, &mpsc_size);
		rc = mpsc ? ipcd_mpsc_attach(&a->db, mpsc, mpsc_size, 0) : -EPROTO;
		if (rc) {
			snprintf(why, whylen, "doorbell queue: %s", strerror(-rc));
			goto err_global;
		}
		a->cl.db = &a->db;
	}
	a->cl.wake_fd = a->wake_fd;
	return 0;

err_global:
	ipcd_region_close(&a->global_reg);
err_client:
	ipcd_region_close(&a->client_reg);
err_fds:
	close_fds(fds, nfds);
	if (a->wake_fd >= 0)
		close(a->wake_fd);
err_sock:
	close(a->sock);
	a->sock = -1;
	a->wake_fd = -1;
	return rc;
}

void ipcd_detach(struct ipcd_attach *a)
{
	if (a->sock < 0)
		return;
	ipcd_region_close(&a->client_reg);
	ipcd_region_close(&a->global_reg);
	close(a->wake_fd);
	close(a->sock);
	a->sock = -1;
	a->wake_fd = -1;
}
