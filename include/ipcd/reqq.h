/* SPDX-License-Identifier: MIT */
/*
 * reqq.h - the monitor's request queues, in both modes.
 *
 * Every registered process owns a private channel (an IPCD_REGION_CLIENT
 * region mapped only by it and the monitor): a request ring it writes and a
 * response ring the monitor writes. The two modes differ only in how the
 * monitor finds work:
 *
 *  - per-process: the monitor scans every channel's request ring, round
 *    robin. No shared state between clients; the scan costs O(clients).
 *  - shared: after queueing a request, a client posts a doorbell naming its
 *    slot into one multi-producer queue (mpsc.h) that the monitor polls. At
 *    most one doorbell per client is in flight (doorbell_pending).
 *
 * Why identity cannot be forged in shared mode: a doorbell only says "look
 * at slot N". The request itself is read from slot N's private ring, which
 * no other process can map. A forged doorbell makes the monitor look at a
 * ring that holds only what its owner wrote.
 *
 * Waking the monitor: the server owns an eventfd (the monitor puts it in its
 * epoll set next to its sockets). Before sleeping, the server sets mon_wait
 * in every client's private ctl; a client that queued work clears its own
 * word and writes the eventfd (wait.h protocol). A process can therefore
 * only suppress the wake-ups of its own requests.
 */
#ifndef IPCD_REQQ_H
#define IPCD_REQQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mpsc.h"
#include "shm.h"
#include "shm_abi.h"
#include "spsc.h"

#define IPCD_REQQ_MAX_CLIENTS	65536u	/* slot numbers fit in 16 bits */

/**
 * struct ipcd_reqq_chan - one process's request channel (either side).
 */
struct ipcd_reqq_chan {
	struct ipcd_client_ctl *ctl;
	struct ipcd_spsc req;	/* client -> monitor */
	struct ipcd_spsc resp;	/* monitor -> client */
};

/**
 * ipcd_reqq_chan_create - create a client region with rings of @ring_bytes.
 * Returns 0 or -errno; @reg receives the region (its fd goes to the client).
 */
int ipcd_reqq_chan_create(uint32_t ring_bytes, struct ipcd_region *reg,
			  struct ipcd_reqq_chan *chan);

/** ipcd_reqq_chan_attach - validate a mapped client region and fill @chan. */
int ipcd_reqq_chan_attach(const struct ipcd_region *reg, struct ipcd_reqq_chan *chan);

/* ---- client side -------------------------------------------------------- */

/**
 * struct ipcd_reqq_client - what a process needs to talk to the monitor.
 * @db:      the doorbell queue in shared mode, NULL in per-process mode.
 * @wake_fd: the server's eventfd (ipcd_reqq_srv_wake_fd()), -1 for none.
 */
struct ipcd_reqq_client {
	struct ipcd_reqq_chan chan;
	struct ipcd_mpsc *db;
	int wake_fd;
	uint32_t pad;
	uint64_t next_cookie;
};

/**
 * ipcd_reqq_submit - queue @req and make sure the monitor will look.
 * Returns 0, -EAGAIN (request ring full), or another -errno from the rings.
 */
int ipcd_reqq_submit(struct ipcd_reqq_client *cl, const struct ipcd_req *req);

/**
 * ipcd_reqq_submit_lazy - queue @req without waking the monitor, which
 * finds it when it next looks (it looks at least every
 * IPCD_REQQ_LAZY_NS while it holds anything a lazy request could be
 * about; see the monitor's loop). Once the ring is half full this is
 * ipcd_reqq_submit(). For requests nobody waits for whose effect may be
 * late (a CLOSE: the peer learnt it from the rings already).
 */
int ipcd_reqq_submit_lazy(struct ipcd_reqq_client *cl, const struct ipcd_req *req);

/* The longest a lazy request waits for a monitor that holds connections. */
#define IPCD_REQQ_LAZY_NS	100000000ull

/**
 * ipcd_reqq_call - submit @req (its cookie is assigned) and wait for the
 * response with that cookie. Responses with other cookies are dropped.
 * Returns 0 (see @resp->status), -ETIMEDOUT, -EINTR or -EPROTO.
 */
int ipcd_reqq_call(struct ipcd_reqq_client *cl, struct ipcd_req *req, struct ipcd_resp *resp,
		   uint64_t spin_ns, int64_t timeout_ns);

/* ---- monitor side ------------------------------------------------------- */

struct ipcd_reqq_srv;

/**
 * struct ipcd_reqq_ops - what the monitor does with requests.
 * @request: one validated request, copied out of shared memory.
 * @fault:   client @slot broke the protocol (@err: -EPROTO, -EMSGSIZE...);
 *           it is no longer polled. The monitor disconnects it.
 */
struct ipcd_reqq_ops {
	void (*request)(void *arg, uint32_t slot, const struct ipcd_req *req);
	void (*fault)(void *arg, uint32_t slot, int err);
};

/**
 * struct ipcd_reqq_stats - counters of a request server.
 */
struct ipcd_reqq_stats {
	uint64_t requests;	/* handed to ops->request */
	uint64_t doorbells;	/* taken from the shared queue */
	uint64_t stale;		/* doorbells naming a free slot or an old generation */
	uint64_t sweeps;	/* full scans in shared mode (lost-doorbell safety net) */
	uint64_t faults;	/* clients cut off */
	uint64_t backpressure;	/* polls skipped because a response ring was full */
};

/**
 * ipcd_reqq_srv_create - a request server for up to @max_clients.
 * @mode: IPCD_QMODE_PER_PROCESS or IPCD_QMODE_SHARED.
 * @db:   the consumer handle of the doorbell queue (shared mode only).
 * Returns 0, -EINVAL, -ENOMEM, or -errno from eventfd().
 */
int ipcd_reqq_srv_create(uint32_t mode, uint32_t max_clients, struct ipcd_mpsc *db,
			 const struct ipcd_reqq_ops *ops, void *arg, struct ipcd_reqq_srv **out);

/** ipcd_reqq_srv_wake_fd - the eventfd that clients signal (nonblocking, CLOEXEC). */
int ipcd_reqq_srv_wake_fd(const struct ipcd_reqq_srv *srv);

/**
 * ipcd_reqq_srv_prepare_sleep - announce a sleep to every client, then
 * re-check for work. Returns how long the caller may sleep on the wake fd:
 * 0 (work is waiting: poll now), a bound in ns, or -1 (until woken).
 * In shared mode the bound is the next lost-doorbell sweep, or the skip
 * budget of a claim that a producer has not published yet.
 */
int64_t ipcd_reqq_srv_prepare_sleep(struct ipcd_reqq_srv *srv);

/** ipcd_reqq_srv_woken - the wake fd was readable: reset it. */
void ipcd_reqq_srv_woken(struct ipcd_reqq_srv *srv);

void ipcd_reqq_srv_destroy(struct ipcd_reqq_srv *srv);

/**
 * ipcd_reqq_srv_add - start serving @chan (the server keeps the pointer).
 * Writes the slot and its generation into the channel's ctl words.
 * Returns 0 or -ENOSPC.
 */
int ipcd_reqq_srv_add(struct ipcd_reqq_srv *srv, struct ipcd_reqq_chan *chan, uint32_t *slot);

/** ipcd_reqq_srv_del - stop serving @slot; its generation moves on. */
void ipcd_reqq_srv_del(struct ipcd_reqq_srv *srv, uint32_t slot);

/**
 * ipcd_reqq_srv_poll - handle at most @budget requests. Never blocks.
 * Returns the number handled; true work done iff > 0.
 */
unsigned int ipcd_reqq_srv_poll(struct ipcd_reqq_srv *srv, unsigned int budget);

/**
 * ipcd_reqq_srv_drain_final - serve what client @slot queued before it went
 * away (up to @budget requests), whatever room its response ring has: the
 * answers nobody will read are dropped. A process that posts a request
 * (CLOSE) and exits at once gets it served, as if it had lived a moment
 * longer. Returns the number handled.
 */
unsigned int ipcd_reqq_srv_drain_final(struct ipcd_reqq_srv *srv, uint32_t slot,
				       unsigned int budget);

/**
 * ipcd_reqq_srv_respond - send @resp to client @slot.
 * Returns 0, -ENOENT (slot not in use), -EAGAIN or a ring error.
 */
int ipcd_reqq_srv_respond(struct ipcd_reqq_srv *srv, uint32_t slot,
			  const struct ipcd_resp *resp);

/**
 * ipcd_reqq_srv_wait - spin up to @spin_ns, then sleep until a client rings
 * or @timeout_ns passes. Returns 0 (poll now), -ETIMEDOUT or -EINTR.
 *
 * In shared mode the sleep is cut into sweep periods (10 ms); between them the
 * server looks for requests whose doorbell was lost and returns 0 if any.
 */
int ipcd_reqq_srv_wait(struct ipcd_reqq_srv *srv, uint64_t spin_ns, int64_t timeout_ns);

/** ipcd_reqq_srv_stats - copy the counters. */
void ipcd_reqq_srv_stats(const struct ipcd_reqq_srv *srv, struct ipcd_reqq_stats *st);

/** ipcd_reqq_mode_name - "per-process" or "shared" (NULL if unknown). */
const char *ipcd_reqq_mode_name(uint32_t mode);

#endif /* IPCD_REQQ_H */
