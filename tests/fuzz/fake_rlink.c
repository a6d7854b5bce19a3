/* SPDX-License-Identifier: MIT */
/*
 * fake_rlink.c - rdma/link.c's API without RDMA: the monitor's links to the
 * other hosts, driven by the fuzz target.
 *
 * cluster.c opens it as it opens the real one; the target then says when a
 * link comes up or goes down and which frames arrive (fx_link_*), with the
 * guarantees link.c gives: callbacks only for configured peers, frames only
 * while a link is up. What cluster.c sends is kept (fx.sent) for the target
 * to answer with; ipcd_rlink_send() fails with -ENOTCONN on a link that is
 * down and returns fx.send_rc otherwise (-ENOBUFS: a full window).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fx.h"

struct ipcd_rlink {
	struct ipcd_rlink_cb cb;
	unsigned int npeers;
	bool up[IPCD_RLINK_MAX_PEERS];
};

int ipcd_rlink_open(const uint8_t addr[16], uint16_t port, unsigned int npeers,
		    const uint8_t (*peer_addr)[16], const uint16_t *peer_port, uint32_t retry_ms,
		    const struct ipcd_rlink_cb *cb, struct ipcd_rlink **out, const char **why)
{
	struct ipcd_rlink *l;

	(void)addr;
	(void)port;
	(void)peer_addr;
	(void)peer_port;
	(void)retry_ms;
	if (npeers > IPCD_RLINK_MAX_PEERS) {
		*why = "too many peers";
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		*why = "out of memory";
		return -ENOMEM;
	}
	l->cb = *cb;
	l->npeers = npeers;
	fx.link = l;
	*out = l;
	return 0;
}

void ipcd_rlink_close(struct ipcd_rlink *l)
{
	if (fx.link == l)
		fx.link = NULL;
	free(l);
}

int ipcd_rlink_fds(const struct ipcd_rlink *l, int *fds, int max)
{
	(void)l;
	(void)fds;
	(void)max;
	return 0;	/* the target delivers events itself */
}

int ipcd_rlink_poll(struct ipcd_rlink *l)
{
	(void)l;
	return -1;
}

int ipcd_rlink_send(struct ipcd_rlink *l, unsigned int peer, const struct ipcd_rlink_frame *f)
{
	if (peer >= l->npeers || !l->up[peer])
		return -ENOTCONN;
	if (fx.send_rc)
		return fx.send_rc;
	fx.sent[fx.n_sent++ % FX_FRAMES] = *f;
	return 0;
}

bool ipcd_rlink_is_up(const struct ipcd_rlink *l, unsigned int peer)
{
	return peer < l->npeers && l->up[peer];
}

void ipcd_rlink_drop(struct ipcd_rlink *l, unsigned int peer, const char *why)
{
	if (peer < l->npeers && l->up[peer]) {
		l->up[peer] = false;
		if (l->cb.down)
			l->cb.down(l->cb.arg, peer, why);
	}
}

void ipcd_rlink_stats(const struct ipcd_rlink *l, unsigned int peer, struct ipcd_rlink_stats *s)
{
	(void)l;
	(void)peer;
	memset(s, 0, sizeof(*s));
}

unsigned int fx_link_peers(void)
{
	return fx.link ? fx.link->npeers : 0;
}

void fx_link_up(unsigned int peer)
{
	struct ipcd_rlink *l = fx.link;

	/* As link.c: a peer that connects while up replaces the old link. */
	if (!l || peer >= l->npeers)
		return;
	if (l->up[peer])
		ipcd_rlink_drop(l, peer, "replaced");
	l->up[peer] = true;
	if (l->cb.up)
		l->cb.up(l->cb.arg, peer);
}

void fx_link_down(unsigned int peer)
{
	if (fx.link)
		ipcd_rlink_drop(fx.link, peer, "fuzz");
}

void fx_link_frame(unsigned int peer, const struct ipcd_rlink_frame *f)
{
	struct ipcd_rlink *l = fx.link;

	if (l && peer < l->npeers && l->up[peer] && l->cb.frame)
		l->cb.frame(l->cb.arg, peer, f);
}
