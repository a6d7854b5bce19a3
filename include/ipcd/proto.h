/* SPDX-License-Identifier: MIT */
/*
 * proto.h - monitor request opcodes and the meaning of their bodies.
 *
 * The envelopes (struct ipcd_req, struct ipcd_resp) are shared-memory
 * layouts and live in shm_abi.h; so do these bodies, by the same rules
 * (fixed-width fields, explicit padding). Adding an opcode bumps
 * IPCD_SHM_ABI_MINOR. The monitor treats every body as hostile: it checks
 * req.len against the opcode's body size and every field's range.
 */
#ifndef IPCD_PROTO_H
#define IPCD_PROTO_H

#include <stdint.h>

#include "compiler.h"
#include "shm_abi.h"

#define IPCD_OP_NOP		1	/* no body; answered with status 0 */
#define IPCD_OP_ECHO		2	/* body echoed back; for tests and benchmarks */
#define IPCD_OP_BIND		3	/* struct ipcd_bind_req -> struct ipcd_bind_resp */
#define IPCD_OP_LISTEN		4	/* struct ipcd_listen_req */
#define IPCD_OP_UNBIND		5	/* struct ipcd_unbind_req */
#define IPCD_OP_CONNECT		6	/* struct ipcd_connect_req -> struct ipcd_conn_resp */
#define IPCD_OP_ACCEPT		7	/* struct ipcd_accept_req -> struct ipcd_conn_resp */
#define IPCD_OP_CLOSE		8	/* struct ipcd_close_req */
#define IPCD_OP_FALLBACK	9	/* struct ipcd_fallback_req; for ipcdctl only */
#define IPCD_OP_MAX		9

/* struct ipcd_bind_req.flags */
#define IPCD_BIND_REUSEADDR	(1u << 0)
#define IPCD_BIND_REUSEPORT	(1u << 1)
#define IPCD_BIND_V6ONLY	(1u << 2)
#define IPCD_BIND_FLAGS		(IPCD_BIND_REUSEADDR | IPCD_BIND_REUSEPORT | IPCD_BIND_V6ONLY)

/**
 * struct ipcd_bind_req - bind an accelerated TCP address.
 * @addr:  IPv6, or IPv4-mapped IPv6 (::ffff:a.b.c.d), network byte order.
 * @port:  host byte order; 0 asks for an ephemeral port.
 * @flags: IPCD_BIND_*; the privilege to bind ports < 1024 is the monitor's
 *         finding (uid 0 or CAP_NET_BIND_SERVICE), never the request's.
 */
struct ipcd_bind_req {
	uint8_t addr[16];
	uint16_t port;
	uint16_t pad;
	uint32_t flags;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_bind_req) == 24);
IPCD_BUILD_ASSERT(sizeof(struct ipcd_bind_req) <= IPCD_REQ_BODY);

struct ipcd_bind_resp {
	uint32_t id;		/* names the bind in LISTEN and UNBIND */
	uint16_t port;		/* the port bound */
	uint16_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_bind_resp) == 8);

/**
 * struct ipcd_listen_req - start (or re-size) listening on bind @id.
 * @ring_bytes: buffering the listener's sockets asked for (SO_RCVBUF /
 *              SO_SNDBUF, as the kernel doubles them); 0: the default. See
 *              struct ipcd_connect_req.
 *
 * The first LISTEN of a bind sends IPCD_CTL_LISTEN_FD before its response.
 */
struct ipcd_listen_req {
	uint32_t id;
	uint32_t backlog;	/* as listen(2); the monitor caps it */
	uint32_t ring_bytes;
	uint32_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_listen_req) == 16);

struct ipcd_unbind_req {
	uint32_t id;
	uint32_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_unbind_req) == 8);

/**
 * struct ipcd_connect_req - connect to an accelerated listener.
 * @addr, @port: the destination, as in struct ipcd_bind_req.
 *
 * Status: 0 (connected: the region's fd was sent on the control socket
 * first, in a struct ipcd_ctl_msg of type IPCD_CTL_CONN_FD with this conn id),
 * -ECONNREFUSED (no accelerated listener: the caller may try the kernel),
 * -EAGAIN (the listener's backlog is full: retry as the kernel would),
 * -EMFILE / -ENOBUFS (a connection limit), -EACCES.
 */
struct ipcd_connect_req {
	uint8_t addr[16];
	uint16_t port;
	uint16_t pad;
	uint32_t flags;		/* 0 */
	/*
	 * Buffering this socket asked for (SO_SNDBUF / SO_RCVBUF, as the kernel
	 * doubles them); 0: the default. Each ring of the connection gets at
	 * least max(config ring_bytes, this, the listener's), rounded up to a
	 * power of two and capped by the config's ring_max_bytes, so a program
	 * never has less buffering than the kernel would give it.
	 */
	uint32_t ring_bytes;
	uint32_t pad2;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_connect_req) == 32);

/**
 * struct ipcd_accept_req - take one connection from listening bind @id.
 * @token: the listener's accept token (ctl.h IPCD_CTL_LISTEN_FD), needed by
 *         any process but the bind's owner: the processes that inherited the
 *         listening socket know it (fork copies it), no other does. A prefork
 *         server's workers accept this way. 0 from the owner.
 *
 * -EAGAIN: none queued; -EPERM: neither the owner nor the right token.
 */
struct ipcd_accept_req {
	uint32_t id;
	uint32_t pad;
	uint64_t token;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_accept_req) == 16);

/**
 * struct ipcd_conn_resp - the answer to CONNECT and ACCEPT.
 * @conn_id:   names the connection (and its CONN_FD message).
 * @peer_addr, @peer_port: the other end.
 * @self_port: this end's port (an ephemeral one for the connecting side).
 */
struct ipcd_conn_resp {
	uint64_t conn_id;
	uint8_t peer_addr[16];
	uint16_t peer_port;
	uint16_t self_port;
	uint32_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_conn_resp) == 32);
IPCD_BUILD_ASSERT(sizeof(struct ipcd_conn_resp) <= IPCD_REQ_BODY);

/* struct ipcd_fallback_req.reason: why a TCP connection went to the kernel. */
#define IPCD_FB_NO_LISTENER	1	/* no accelerated listener there (peer not preloaded, remote) */
#define IPCD_FB_BACKLOG_FULL	2	/* the accelerated backlog was full: kernel SYN queue */
#define IPCD_FB_LIMIT		3	/* a connection limit (ENOBUFS, EMFILE) */
#define IPCD_FB_ERROR		4	/* the monitor failed the CONNECT otherwise */
#define IPCD_FB_KERNEL_PEER	5	/* accepted from a program that is not preloaded */
#define IPCD_FB_FD_RANGE	6	/* the fd number is beyond the preload's table */
#define IPCD_FB_MAX		6

/**
 * struct ipcd_fallback_req - a connection of this process uses the kernel.
 * @addr, @port: the peer, as in struct ipcd_bind_req; @reason: IPCD_FB_*.
 * Informational (ipcdctl shows recent ones and counts per reason); sent
 * without waiting for the response.
 */
struct ipcd_fallback_req {
	uint8_t addr[16];
	uint16_t port;
	uint16_t reason;
	uint32_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_fallback_req) == 24);

/* struct ipcd_close_req.end */
#define IPCD_CLOSE_MINE		0	/* the end this process connected or accepted */
#define IPCD_CLOSE_A		1	/* the connecting end */
#define IPCD_CLOSE_B		2	/* the accepting end */

/**
 * struct ipcd_close_req - this process no longer uses connection @conn_id.
 * @end: IPCD_CLOSE_MINE, or the end explicitly: after fork the last process
 *       to close an end may not be the one the monitor gave it to; the
 *       monitor accepts that from a process of the same user as the end's
 *       owner (a user may close its own connections, never another's).
 */
struct ipcd_close_req {
	uint64_t conn_id;
	uint32_t end;
	uint32_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_close_req) == 16);

#endif /* IPCD_PROTO_H */
