/* SPDX-License-Identifier: MIT */
/* clients.c - registered processes: registration, death, cleanup. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "monitor.h"

#define CAP_NET_BIND_SERVICE_BIT	10

int clients_init(void)
{
	uint32_t n = mon.cfg.max_processes;
	int rc;

	mon.clients = calloc(n, sizeof(*mon.clients));
	mon.dead = calloc(n, sizeof(*mon.dead));
	if (!mon.clients || !mon.dead)
		return -ENOMEM;
	rc = ipcd_reqq_srv_create(mon.cfg.queue_mode, n,
				  mon.cfg.queue_mode == IPCD_QMODE_SHARED ? &mon.db : NULL,
				  &reqs_ops, NULL, &mon.srv);
	if (rc)
		log_err("request server: cannot create (%s)", strerror(-rc));
	return rc;
}

/* Reap a slot now (not from inside a request handler: use clients_kill). */
static void reap(uint32_t slot, const char *why)
{
	struct mon_client *c = mon.clients[slot];

	if (!c)
		return;
	if (c->state == CL_ACTIVE)
		ipcd_reqq_srv_del(mon.srv, slot);
	if (mon.ns) {
		conns_client_gone(c);	/* before its binds go: it releases its own ports */
		ipcd_ns_release_owner(mon.ns, c->id);
	}
	cluster_client_gone(c);
	epoll_ctl(mon.epfd, EPOLL_CTL_DEL, c->sock, NULL);
	close(c->sock);
	ipcd_region_close(&c->reg);
	log_info("process %d (%s, uid %u) gone: %s; it held slot %u for %.1f s", c->pid, c->comm,
		 c->uid, why, slot, (double)(ipcd_now_ns() - c->since_ns) / 1e9);
	free(c);
	mon.clients[slot] = NULL;
	mon.n_clients--;
}

void clients_exit(void)
{
	uint32_t i;

	if (mon.clients)
		for (i = 0; i < mon.cfg.max_processes; i++)
			if (mon.clients[i])
				reap(i, "monitor shutting down");
	ipcd_reqq_srv_destroy(mon.srv);
	mon.srv = NULL;
	free(mon.clients);
	free(mon.dead);
	mon.clients = NULL;
	mon.dead = NULL;
}

struct mon_client *clients_get(uint32_t slot)
{
	return slot < mon.cfg.max_processes ? mon.clients[slot] : NULL;
}

/* Root, or CAP_NET_BIND_SERVICE in the effective set, may bind ports < 1024. */
static bool may_bind_privileged(pid_t pid, uid_t uid)
{
	char path[64], line[256];
	bool ok = false;
	FILE *f;

	if (uid == 0)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long caps;

		if (sscanf(line, "CapEff: %llx", &caps) == 1) {
			ok = caps & (1ull << CAP_NET_BIND_SERVICE_BIT);
			break;
		}
	}
	fclose(f);
	return ok;
}

int clients_register(int sock, const struct ucred *cred, const struct ipcd_ctl_hello *hello,
		     char *why, size_t whylen)
{
	struct ipcd_ctl_welcome w = {
		.magic = IPCD_CTL_MAGIC,
		.abi_major = IPCD_SHM_ABI_MAJOR,
		.abi_minor = IPCD_SHM_ABI_MINOR,
		.queue_mode = mon.cfg.queue_mode,
		.pid = (uint32_t)cred->pid,
	};
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	struct mon_client *c;
	int fds[IPCD_CTL_NFDS];
	uint32_t slot;
	int rc;

	if (mon.n_clients >= mon.cfg.max_processes) {
		snprintf(why, whylen, "the monitor serves at most max_processes=%u processes",
			 mon.cfg.max_processes);
		return -EUSERS;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	rc = ipcd_reqq_chan_create(mon.cfg.request_ring_bytes, &c->reg, &c->chan);
	if (rc) {
		snprintf(why, whylen, "cannot create its request channel: %s", strerror(-rc));
		goto err_free;
	}
	rc = ipcd_reqq_srv_add(mon.srv, &c->chan, &slot);
	if (rc) {
		snprintf(why, whylen, "no request slot free");
		goto err_region;
	}
	c->state = CL_ACTIVE;
	c->id = ++mon.next_client_id;
	c->pid = cred->pid;
	c->uid = cred->uid;
	c->gid = cred->gid;
	c->priv_ports = may_bind_privileged(cred->pid, cred->uid);
	c->abi_minor = hello->abi_minor;
	memcpy(c->comm, hello->comm, sizeof(c->comm));
	c->comm[sizeof(c->comm) - 1] = '\0';
	for (char *p = c->comm; *p; p++)	/* it is only for display: keep it printable */
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	c->sock = sock;
	c->slot = slot;
	c->since_ns = ipcd_now_ns();

	w.client_id = c->id;
	w.slot = slot;
	fds[IPCD_CTL_FD_CLIENT] = c->reg.fd;
	fds[IPCD_CTL_FD_GLOBAL] = mon.global.fd;
	fds[IPCD_CTL_FD_WAKE] = ipcd_reqq_srv_wake_fd(mon.srv);
	rc = control_send_fds(sock, &w, sizeof(w), fds, IPCD_CTL_NFDS);
	if (rc) {
		snprintf(why, whylen, "cannot send the welcome: %s", strerror(-rc));
		goto err_del;
	}
	ev.data.u64 = MON_EV(MON_EV_CLIENT, slot);
	if (epoll_ctl(mon.epfd, EPOLL_CTL_ADD, sock, &ev) < 0) {
		rc = -errno;
		snprintf(why, whylen, "epoll: %s", strerror(errno));
		goto err_del;
	}
	mon.clients[slot] = c;
	mon.n_clients++;
	mon.ctr.registered++;
	log_info("process %d (%s, uid %u gid %u) registered: slot %u, id %" PRIu64
		 ", library ABI %u.%u", c->pid, c->comm, c->uid, c->gid, slot, c->id,
		 hello->abi_major, hello->abi_minor);
	return 0;

err_del:
	ipcd_reqq_srv_del(mon.srv, slot);
err_region:
	ipcd_region_close(&c->reg);
err_free:
	free(c);
	return rc;
}

/*
 * Cut a client off from inside the poll turn: it stops being served at once;
 * its sockets and memory go when the turn ends (clients_reap_dead).
 */
void clients_kill(uint32_t slot, const char *why)
{
	struct mon_client *c = clients_get(slot);

	if (!c || c->state != CL_ACTIVE)
		return;
	ipcd_reqq_srv_del(mon.srv, slot);
	c->state = CL_DEAD;
	c->why_dead = why;
	mon.dead[mon.n_dead++] = slot;
}

void clients_reap_dead(void)
{
	while (mon.n_dead) {
		uint32_t slot = mon.dead[--mon.n_dead];
		struct mon_client *c = mon.clients[slot];

		if (c)
			reap(slot, c->why_dead);
	}
}

/*
 * The process closed its control socket (exit, exec, crash). What it queued
 * before is served first (a CLOSE posted just before exit), then it is reaped.
 * The budget is one ring's worth: a process cannot keep us here.
 */
#define FINAL_BUDGET	256u

static void gone(uint32_t slot)
{
	ipcd_reqq_srv_drain_final(mon.srv, slot, FINAL_BUDGET);
	if (mon.clients[slot] && mon.clients[slot]->state == CL_ACTIVE) {
		reap(slot, "its control socket closed (exit or crash)");
		mon.ctr.reaped++;
	}
}

void clients_event(uint32_t slot, uint32_t events)
{
	struct mon_client *c = clients_get(slot);
	char byte;
	ssize_t n;

	if (!c || c->state != CL_ACTIVE)
		return;
	if (events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)) {
		gone(slot);
		return;
	}
	n = recv(c->sock, &byte, 1, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		gone(slot);
	} else if (n > 0) {
		log_warn("process %d (%s): unexpected message on its control socket: disconnecting",
			 c->pid, c->comm);
		mon.ctr.faults++;
		reap(slot, "protocol violation on the control socket");
	}
}
