/* SPDX-License-Identifier: MIT */
/* fallback.c - connections that went to the kernel, and why (IPCD_OP_FALLBACK, for ipcdctl). */
#include <errno.h>
#include <string.h>

#include "monitor.h"

IPCD_BUILD_ASSERT(IPCD_IS_POW2(MON_FALLBACK_RING));

static struct {
	struct fallback_entry ring[MON_FALLBACK_RING];
	uint64_t n;				/* reports ever recorded; ring[n % RING] is next */
	uint64_t counts[IPCD_FB_MAX + 1];	/* [0]: refused */
} fb;

static const struct {
	const char *name;
	const char *key;
} reasons[IPCD_FB_MAX + 1] = {
	[0] = { "invalid", "invalid" },
	[IPCD_FB_NO_LISTENER] = { "no accelerated listener", "no_listener" },
	[IPCD_FB_BACKLOG_FULL] = { "backlog full", "backlog_full" },
	[IPCD_FB_LIMIT] = { "limit", "limit" },
	[IPCD_FB_ERROR] = { "monitor error", "monitor_error" },
	[IPCD_FB_KERNEL_PEER] = { "peer not preloaded", "peer_not_preloaded" },
	[IPCD_FB_FD_RANGE] = { "fd beyond table", "fd_beyond_table" },
};

int fallback_record(const struct mon_client *c, const void *body, size_t len)
{
	struct fallback_entry *e;
	struct ipcd_fallback_req r;

	/* Informational: a bad report is refused, not a reason to cut the process off. */
	if (len != sizeof(r)) {
		fb.counts[0]++;
		return -EINVAL;
	}
	memcpy(&r, body, sizeof(r));
	if (r.reason < 1 || r.reason > IPCD_FB_MAX || r.pad) {
		fb.counts[0]++;
		return -EINVAL;
	}
	fb.counts[r.reason]++;
	e = &fb.ring[fb.n++ & (MON_FALLBACK_RING - 1)];
	e->mono_ns = ipcd_now_ns();
	e->pid = c->pid;
	e->uid = c->uid;
	memcpy(e->comm, c->comm, sizeof(e->comm));
	memcpy(e->addr, r.addr, sizeof(e->addr));
	e->port = r.port;
	e->reason = r.reason;
	log_debug("process %d (%s): a connection to port %u uses the kernel: %s", c->pid,
		  c->comm, r.port, reasons[r.reason].name);
	return 0;
}

bool fallback_next(uint64_t *cursor, struct fallback_entry *e)
{
	uint64_t oldest = fb.n > MON_FALLBACK_RING ? fb.n - MON_FALLBACK_RING : 0;

	if (*cursor < oldest)
		*cursor = oldest;
	if (*cursor >= fb.n)
		return false;
	*e = fb.ring[(*cursor)++ & (MON_FALLBACK_RING - 1)];
	return true;
}

void fallback_counts(uint64_t counts[IPCD_FB_MAX + 1])
{
	memcpy(counts, fb.counts, sizeof(fb.counts));
}

const char *fallback_reason_name(uint32_t reason)
{
	return reason <= IPCD_FB_MAX ? reasons[reason].name : "?";
}

const char *fallback_reason_key(uint32_t reason)
{
	return reason <= IPCD_FB_MAX ? reasons[reason].key : "?";
}
