/* SPDX-License-Identifier: MIT */
/*
 * ctl.h - messages on the monitor's control socket (AF_UNIX, SOCK_SEQPACKET).
 *
 * The control socket carries what shared memory cannot: the handshake, file
 * descriptors (SCM_RIGHTS), and the process's liveness (EOF when it dies).
 * Requests of the control plane travel in shared memory (reqq.h).
 *
 *   client                                    monitor
 *   connect()                   ------>       accept(); SO_PEERCRED -> uid/gid
 *   struct ipcd_ctl_hello       ------>       check magic and ABI major;
 *   + SCM_CREDENTIALS                         SCM_CREDENTIALS -> pid (see "Identity")
 *                               <------       struct ipcd_ctl_welcome
 *                                             + SCM_RIGHTS: client region, global
 *                                               region, monitor wake eventfd
 *   ... requests in shared memory ...
 *   exit / crash / close        ------>       EOF: the monitor reaps the client
 *
 * An admin connection (ipcdctl) sends a hello with IPCD_CTL_ADMIN, then one
 * struct ipcd_ctl_query; the monitor answers with text chunks (each one
 * message) and a final empty message.
 *
 * Same rules as shm_abi.h: fixed-width fields, explicit padding. Changing a
 * message bumps IPCD_SHM_ABI_MAJOR (one ABI version covers both).
 *
 * Identity. The uid and gid of a registration are SO_PEERCRED's (who
 * connected). The pid is that of the process that sent the hello: the
 * monitor sets SO_PASSCRED before reading it, so the kernel attaches the
 * sender's pid, uid and gid as they were at sendmsg() time (checked by the
 * kernel when the sender names them); SO_PEERCRED's pid only if none came.
 * A pid taken at connect() may be another process's by the hello (the
 * connector exited, a child kept the socket, the pid was reused). A library
 * from ABI 3.6 sends its credentials explicitly, { getpid(), geteuid(),
 * getegid() }, and sets IPCD_CTL_HELLO_CREDS; the monitor refuses such a
 * hello (-EPERM) if they are not the uid and gid it connected with.
 *
 * The right to bind ports below 1024 is judged on the hello's credentials,
 * and only when they match the connect's: uid 0; or CAP_NET_BIND_SERVICE of
 * that pid in /proc, when the hello's sender is the process that connected,
 * the process found at the pid runs as that uid (real and effective), lives
 * in the monitor's user namespace, started before the monitor accepted the
 * connection, and (Linux 6.5+, SO_PEERPIDFD) the connector is still alive
 * after the reads. An older library's hello (no flag) is registered as
 * before: with credentials that do not match it gets no right to ports
 * below 1024, and is never refused for that. Both directions are
 * compatible: an older monitor ignores the flag and the credentials.
 *
 * Registration is bounded (preload/attach.c): connect(), hello and welcome
 * within 5 s, else the library uses the kernel. Of the monitor's table of
 * connections that owe a hello, each uid is sure of a quarter; past that,
 * with the table full, a connection whose hello has not arrived is closed
 * without a word (a new one of that uid, or its oldest when another uid's
 * needs the slot), and the library connects again a few times (backing off)
 * within those 5 s.
 */
#ifndef IPCD_CTL_H
#define IPCD_CTL_H

#include <stdint.h>

#include "compiler.h"
#include "shm_abi.h"

#define IPCD_CTL_MAGIC		0x4c544349u	/* "ICTL" */
#define IPCD_CTL_DEFAULT_PATH	"/run/ipcd/monitor.sock"
#define IPCD_CTL_ENV_PATH	"IPCD_SOCKET"	/* overrides the path for clients */

/* struct ipcd_ctl_hello.kind */
#define IPCD_CTL_CLIENT		1	/* register this process */
#define IPCD_CTL_ADMIN		2	/* ipcdctl: one query, then close */

/* struct ipcd_ctl_hello.flags */
#define IPCD_CTL_HELLO_CREDS	(1u << 0)	/* sent with its SCM_CREDENTIALS (ABI 3.6) */

/* Welcome fds, in this order. */
#define IPCD_CTL_FD_CLIENT	0	/* IPCD_REGION_CLIENT memfd */
#define IPCD_CTL_FD_GLOBAL	1	/* IPCD_REGION_GLOBAL memfd */
#define IPCD_CTL_FD_WAKE	2	/* eventfd that wakes the monitor */
#define IPCD_CTL_NFDS		3

struct ipcd_ctl_hello {
	uint32_t magic;			/* IPCD_CTL_MAGIC */
	uint16_t abi_major;		/* IPCD_SHM_ABI_MAJOR of the sender */
	uint16_t abi_minor;
	uint32_t kind;			/* IPCD_CTL_CLIENT or IPCD_CTL_ADMIN */
	uint32_t flags;			/* IPCD_CTL_HELLO_CREDS, or 0 */
	char comm[16];			/* informational (the process name) */
	uint8_t reserved[32];
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_ctl_hello) == 64);

struct ipcd_ctl_welcome {
	uint32_t magic;			/* IPCD_CTL_MAGIC */
	uint16_t abi_major;		/* the monitor's */
	uint16_t abi_minor;
	int32_t status;			/* 0, or -errno: refused (see msg) */
	uint32_t queue_mode;		/* IPCD_QMODE_* */
	uint64_t client_id;		/* unique for the monitor's lifetime */
	uint32_t slot;			/* request-server slot (informational) */
	uint32_t pid;			/* the hello's sender, as the monitor saw it */
	char msg[160];			/* why, when refused; NUL-terminated */
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_ctl_welcome) == 192);

/* struct ipcd_ctl_query.what */
#define IPCD_Q_STATUS		1
#define IPCD_Q_PROCESSES	2
#define IPCD_Q_LISTENERS	3
#define IPCD_Q_CONNECTIONS	4
#define IPCD_Q_COUNTERS		5
#define IPCD_Q_QUEUES		6
#define IPCD_Q_CLUSTER		7	/* hosts, links, processes' RDMA engines (3.5) */

#define IPCD_QF_JSON		(1u << 0)

struct ipcd_ctl_query {
	uint32_t what;			/* IPCD_Q_* */
	uint32_t flags;			/* IPCD_QF_* */
	uint8_t reserved[24];
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_ctl_query) == 32);

#define IPCD_CTL_CHUNK		4096	/* largest answer message */

/*
 * After the welcome, the monitor sends a registered process only these
 * (the process sends nothing on the control socket; anything it sends is a
 * protocol violation):
 *   IPCD_CTL_CONN_FD       + SCM_RIGHTS, IPCD_CTL_CONN_NFDS fds in the
 *                          IPCD_CTL_CONN_FD_* order: connection @conn_id's
 *                          region, this end's wake eventfd and the peer's,
 *                          and (ABI 3.7, only to a library of 3.7 or later)
 *                          this end's life socket, for a connection whose
 *                          ends the monitor hands to two processes
 *                          (CONNECT/ACCEPT, UCONNECT/UCLAIM): one end of an
 *                          AF_UNIX socketpair whose other end goes to the
 *                          peer. Nothing is ever sent on it; each end's
 *                          processes hold theirs (fork and exec keep it, as
 *                          the kernel keeps a socket), so its hang-up tells
 *                          an end that every holder of the other end is gone,
 *                          without the monitor: after a monitor restart, or
 *                          for a connection still queued in a monitor that
 *                          died (docs/reliability.md, "Monitor restarts").
 *                          Libraries make their own for the connections
 *                          they hand over themselves (lane kits, pipes,
 *                          socketpairs). Sent before the CONNECT/ACCEPT
 *                          response naming it.
 *   IPCD_CTL_LISTEN_FD     + SCM_RIGHTS, one eventfd: listening bind
 *                          @bind_id's accept doorbell. The monitor keeps it
 *                          readable exactly while the bind's accelerated
 *                          backlog is non-empty (it writes on empty -> non-
 *                          empty and reads it back on non-empty -> empty), so
 *                          kernel poll/epoll can wait on it. Sent before the
 *                          response to the first LISTEN of the bind. Its
 *                          @conn_id field carries the bind's accept token
 *                          (proto.h struct ipcd_accept_req), random, never 0.
 *
 *   IPCD_CTL_LANE_FD       + SCM_RIGHTS, one AF_UNIX SOCK_SEQPACKET socket:
 *                          this process's end of lane @conn_id to listening
 *                          bind @bind_id (proto.h, "Lanes"). Sent before
 *                          the CONN_FD of the CONNECT or ACCEPT that made it.
 *   IPCD_CTL_HOLD_FD       + SCM_RIGHTS, one pipe write end: the hold token
 *                          of connection @conn_id's end @bind_id
 *                          (IPCD_CLOSE_A or IPCD_CLOSE_B; proto.h struct
 *                          ipcd_hold_req). Sent before the HOLD response
 *                          (ABI 3.2).
 *   IPCD_CTL_REGION_FD     + SCM_RIGHTS, one memfd: connection @conn_id's
 *                          region, @region_size bytes, for end @bind_id
 *                          (IPCD_OP_REGION). Sent before its response.
 *
 * Wake eventfds (EFD_NONBLOCK): an end's eventfd is written by whoever
 * clears an IPCD_DB_EVENT bit that end set in a doorbell word of its rings
 * (the peer, after publishing), and by the monitor when the peer dies. Its
 * counter is a hint ("look again"), never a count of anything.
 */
#define IPCD_CTL_CONN_FD	1
#define IPCD_CTL_LISTEN_FD	2
#define IPCD_CTL_LANE_FD	3
#define IPCD_CTL_HOLD_FD	4
#define IPCD_CTL_REGION_FD	5
#define IPCD_CTL_RCHAN_FD	6	/* one SOCK_SEQPACKET socket: IPCD_OP_RATTACH (ABI 3.5) */

#define IPCD_CTL_CONN_FD_REGION	0
#define IPCD_CTL_CONN_FD_SELF	1	/* this end's wake eventfd */
#define IPCD_CTL_CONN_FD_PEER	2	/* the other end's wake eventfd */
#define IPCD_CTL_CONN_FD_LIVE	3	/* this end's life socket (3.7); -1: none */
#define IPCD_CTL_CONN_NFDS	4	/* at most; a message may carry 3 (no life socket) */
#define IPCD_CTL_CONN_NFDS_MIN	3

struct ipcd_ctl_msg {
	uint32_t magic;			/* IPCD_CTL_MAGIC */
	uint16_t type;			/* IPCD_CTL_CONN_FD, IPCD_CTL_LISTEN_FD */
	uint16_t pad;
	uint64_t conn_id;
	uint32_t bind_id;
	uint32_t lane_id;		/* CONN_FD of a kit (IPCD_OP_KITS): its lane. LANE_FD
					 * to the listener (3.6): 32 more bits of the key */
	uint64_t region_size;		/* CONN_FD: the memfd's size. LANE_FD to the
					 * listener (ABI 3.6): its lane's kit key
					 * (shm_abi.h ipcd_conn_ctl.kit_tag); 0: none */
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_ctl_msg) == 32);

#define IPCD_LANE_MAGIC		0x454e414cu	/* "LANE" */

/**
 * struct ipcd_lane_msg - a connector to a listener, on their lane: one kit
 * (a connect()), with SCM_RIGHTS fds in the IPCD_CTL_CONN_FD_* order as the
 * listener sees them: the region, B's wake eventfd, A's, and (both ends of
 * 3.7 or later: the monitor makes lanes only between libraries that agree)
 * B's life socket, whose other end the connector keeps.
 *
 * Written by the connecting process: the listener trusts nothing in it
 * beyond what it would trust in the region itself (it maps the region with
 * the same checks as a monitor-sent one, and requires its seals). The
 * addresses and ports of the connection are in the region's struct
 * ipcd_conn_ctl, written by the monitor when it made the kit.
 */
struct ipcd_lane_msg {
	uint32_t magic;			/* IPCD_LANE_MAGIC */
	uint32_t seq;			/* the kit's number on the lane */
	uint64_t conn_id;
	uint64_t region_size;
	uint64_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_lane_msg) == 32);

#endif /* IPCD_CTL_H */
