/* SPDX-License-Identifier: MIT */
/*
 * fx.h - an ipcd-monitor inside the fuzz target, and the processes it serves.
 *
 * fx_start() initialises the monitor's parts in main.c's order (config,
 * global region, port namespace, connections, clients, cluster) around a
 * `struct monitor mon` of its own; fx_stop() lets every process die, undoes
 * the steps, and closes every descriptor the run opened, so that each input
 * starts from the same state. Nothing of the monitor is replaced: requests
 * go through the request server and reqs.c's handlers, registrations
 * through control.c, deaths and hang-ups through the epoll events main.c
 * would dispatch. Only the links to other hosts are a fake (fake_rlink.c).
 *
 * A "client" is the other side of a registered process, played the way the
 * preload plays it: it says hello on a control socket, maps the regions of
 * its welcome, submits requests with ipcd_reqq_submit(), reads its answers
 * and its control messages (mapping connection regions, keeping hold tokens
 * and RDMA channels). What it receives feeds a pool of values (ids, tokens,
 * keys) that the targets put back into requests and frames: the fuzzer
 * cannot guess them.
 */
#ifndef IPCD_FX_H
#define IPCD_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ipcd/ctl.h>
#include <ipcd/mpsc.h>
#include <ipcd/proto.h>
#include <ipcd/reqq.h>
#include <ipcd/shm.h>

#include "monitor.h"
#include "rdma.h"

#define FX_CLIENTS	4
#define FX_MAPS		8	/* connection regions a client keeps mapped */
#define FX_HOLDS	8	/* hold tokens a client keeps */
#define FX_VALS		32	/* values seen in answers and messages */
#define FX_FRAMES	8	/* frames the monitor sent to other hosts, latest */

struct fx_map {
	uint8_t *base;
	size_t size;
};

struct fx_client {
	bool live;
	int sock;			/* our end of its control socket */
	uint32_t slot;
	uint32_t uid;
	struct ipcd_region reg;		/* its client region, from the welcome */
	struct ipcd_region glob;	/* the global region */
	struct ipcd_mpsc db;		/* shared mode: the doorbell queue, as a producer */
	struct ipcd_reqq_client rq;
	struct fx_map maps[FX_MAPS];
	unsigned int n_maps;
	int holds[FX_HOLDS];
	unsigned int n_holds;
	int rchan;			/* its RDMA channel (RATTACH); -1: none */
};

struct fx {
	struct fx_client c[FX_CLIENTS];
	uint64_t vals[FX_VALS];
	unsigned int n_vals;
	/* fake_rlink.c */
	struct ipcd_rlink *link;	/* what cluster.c opened; NULL: none */
	int send_rc;			/* what ipcd_rlink_send() answers while up */
	struct ipcd_rlink_frame sent[FX_FRAMES];
	unsigned int n_sent;		/* ever: the latest is sent[(n_sent - 1) % FX_FRAMES] */
};

extern struct fx fx;

/* A config for the monitor: the embedded default, then @text. Aborts if bad. */
void fx_start(const char *text);
void fx_stop(void);

/* Register client @i (uid @uid); false if the monitor refused it. */
bool fx_connect(unsigned int i, uint32_t uid, uint16_t abi_minor);
/* Client @c's process dies: it closes everything it had. */
void fx_hangup(struct fx_client *c);
/*
 * A kernel TCP socket of @c's listening on 127.0.0.1 / 0.0.0.0 / ::1 / ::
 * (@how bits 0-1), port chosen by the kernel: what the preload's LISTEN names
 * (ABI 3.6 ipcd_listen_req.kfd). Its fd and port join the values. -1: none.
 */
int fx_klisten(struct fx_client *c, uint8_t how);
/* Queue @req (its cookie set) on @c's request ring, as the preload does. */
int fx_submit(struct fx_client *c, struct ipcd_req *req);
/*
 * What the monitor's loop does between two sleeps: serve the requests,
 * reap, handle its epoll events; then every client reads what it got.
 */
void fx_turn(void);
/* Housekeeping the loop does before it sleeps (pending hellos, orphans). */
void fx_housekeep(void);
/* An ipcdctl query (hello, then struct ipcd_ctl_query); the answer is read and dropped. */
void fx_admin(const struct ipcd_ctl_query *q);
/* The @i-th value seen (0 if none yet). */
uint64_t fx_val(unsigned int i);
void fx_val_add(uint64_t v);

/* fake_rlink.c: the link layer's events, as rdma/link.c would report them. */
void fx_link_up(unsigned int peer);
void fx_link_down(unsigned int peer);
void fx_link_frame(unsigned int peer, const struct ipcd_rlink_frame *f);
unsigned int fx_link_peers(void);

#endif /* IPCD_FX_H */
