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

#include <inttypes.h>
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
#define IPCD_OP_KITS		10	/* struct ipcd_kits_req -> struct ipcd_kits_resp */
#define IPCD_OP_LANE_DONE	11	/* struct ipcd_lane_done_req */
#define IPCD_OP_KIT_ACCEPTED	12	/* struct ipcd_kit_accepted_req; for ipcdctl only */
#define IPCD_OP_HOLD		13	/* struct ipcd_hold_req (ABI 3.2) */
#define IPCD_OP_REGION		14	/* struct ipcd_hold_req (ABI 3.2) */
#define IPCD_OP_PAIR		15	/* struct ipcd_pair_req -> struct ipcd_conn_resp (ABI 3.3) */
#define IPCD_OP_ULISTEN		16	/* struct ipcd_ulisten_req (ABI 3.4) */
#define IPCD_OP_UCONNECT	17	/* struct ipcd_uconnect_req -> struct ipcd_uconnect_resp */
#define IPCD_OP_UCLAIM		18	/* struct ipcd_uclaim_req -> struct ipcd_conn_resp */
#define IPCD_OP_RATTACH		19	/* no body -> struct ipcd_rattach_resp (ABI 3.5) */
#define IPCD_OP_UCONNECTED	20	/* struct ipcd_uconnected_req (ABI 3.7), posted */
#define IPCD_OP_CANCEL		21	/* struct ipcd_cancel_req (ABI 3.7), posted */
#define IPCD_OP_MAX		21

/* struct ipcd_bind_req.flags */
#define IPCD_BIND_REUSEADDR	(1u << 0)
#define IPCD_BIND_REUSEPORT	(1u << 1)
#define IPCD_BIND_V6ONLY	(1u << 2)
/*
 * ABI 3.6: only ask whether the config's bind_rules let the caller bind
 * @port: 0 or -EACCES, and nothing is bound. The library asks before a
 * bind() to an explicit port reaches the kernel, so that a port the config
 * reserves for others fails there with EACCES (ports below 1024 stay the
 * kernel's to judge). Advisory against a process that drops the preload.
 */
#define IPCD_BIND_PROBE		(1u << 3)
#define IPCD_BIND_FLAGS		(IPCD_BIND_REUSEADDR | IPCD_BIND_REUSEPORT | IPCD_BIND_V6ONLY | \
				 IPCD_BIND_PROBE)

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

/* struct ipcd_listen_req.flags */
#define IPCD_LISTEN_LANES	(1u << 0)	/* one process accepts: lanes may come (below) */

/**
 * struct ipcd_listen_req - start (or re-size) listening on bind @id.
 * @ring_bytes: buffering the listener's sockets asked for (SO_RCVBUF /
 *              SO_SNDBUF, as the kernel doubles them); 0: the default. See
 *              struct ipcd_connect_req.
 * @flags:      IPCD_LISTEN_LANES while the owner is the only process that
 *              holds the listening socket; a LISTEN without it (sent after
 *              fork) stops new lanes to the bind.
 *
 * The first LISTEN of a bind sends IPCD_CTL_LISTEN_FD before its response.
 *
 * Lanes. Connection setup through the monitor costs the connector a round
 * trip and the acceptor another; a lane takes the monitor off that path for
 * one (connecting process, listening bind) pair. When a CONNECT reaches a
 * bind listening with IPCD_LISTEN_LANES and the pair has no lane yet, the
 * monitor makes an AF_UNIX SOCK_SEQPACKET socketpair and sends one end to
 * the connector (IPCD_CTL_LANE_FD before the CONNECT's CONN_FD) and the other
 * to the bind's owner when it ACCEPTs that connection (IPCD_CTL_LANE_FD before
 * the ACCEPT's CONN_FD). From then on the connector asks for "kits"
 * (IPCD_OP_KITS): connections the monitor makes ahead of need, A end the
 * connector, B end the bind's owner. A connect() takes the next kit and
 * sends it down the lane (struct ipcd_lane_msg with the kit's fds); the
 * listener's accept() receives it: no monitor, no round trip, and the lane
 * socket is readable in the listener's epoll set like a kernel backlog.
 * Kits are sent and received in the order the monitor numbered them
 * (@seq), so the counts in IPCD_OP_LANE_DONE say which kits the listener
 * had. A lane ends when either side closes its socket: the other side sees
 * EOF (listener) or EPIPE (connector).
 */
struct ipcd_listen_req {
	uint32_t id;
	uint32_t backlog;	/* as listen(2); the monitor caps it */
	uint32_t ring_bytes;
	uint32_t flags;		/* IPCD_LISTEN_* */
	/*
	 * ABI 3.6: the caller's kernel socket listening on the bind's address
	 * and port (its fd number). The first LISTEN of a bind takes a copy of
	 * it (pidfd_getfd) and keeps it as long as the listener lives, so an
	 * accelerated listener always holds its port in the kernel too: no
	 * process can take connections for a port it does not listen on. A
	 * first LISTEN without one (-1, or the 16-byte body of a library before
	 * 3.6) is refused with -EPERM: the socket stays the kernel's.
	 */
	int32_t kfd;
	uint32_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_listen_req) == 24);
#define IPCD_LISTEN_REQ_V35	16	/* the body's size before ABI 3.6 */

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
/* struct ipcd_connect_req.flags */
#define IPCD_CONNECT_REMOTE	(1u << 0)	/* the caller can take an RDMA connection (3.5) */

struct ipcd_connect_req {
	uint8_t addr[16];
	uint16_t port;
	uint16_t pad;
	uint32_t flags;		/* IPCD_CONNECT_* */
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

/**
 * struct ipcd_kits_req - make up to @count connections on lane @lane_id for
 * its connector (the caller), each sent first as an IPCD_CTL_CONN_FD
 * message (fds: region, A's wake eventfd, B's), numbered by the lane.
 * -ENOENT: no such lane of the caller's, or its listener is gone or no
 * longer takes lanes (the caller drops the lane); -ENOBUFS: no room.
 */
struct ipcd_kits_req {
	uint32_t lane_id;
	uint32_t count;		/* 1 .. IPCD_KITS_MAX */
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_kits_req) == 8);

#define IPCD_KITS_MAX		8

/**
 * struct ipcd_kits_resp - @count kits were sent, with lane numbers
 * @first_seq .. @first_seq + @count - 1 in the order of their messages.
 * Each kit's addresses and ports are in its region's struct ipcd_conn_ctl.
 */
struct ipcd_kits_resp {
	uint32_t count;
	uint32_t first_seq;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_kits_resp) == 8);

/**
 * struct ipcd_lane_done_req - the listener (bind owner) closed its end of
 * lane @lane_id; @received is one past the number of the last kit it
 * received, @accepted one past the last it accepted (a connector skips the
 * numbers of kits it closed unsent: IPCD_CLOSE_UNSENT). The monitor resets kits it never received
 * (their connector sees ECONNRESET, or closes them unsent), and queues the
 * received but unaccepted ones on the bind's backlog when it still listens
 * (after fork: any process may accept them), else resets them. Sent without
 * waiting for the response.
 */
struct ipcd_lane_done_req {
	uint32_t lane_id;
	uint32_t received;
	uint32_t accepted;
	uint32_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_lane_done_req) == 16);

/**
 * struct ipcd_kit_accepted_req - the listener accepted kit @conn_id from a
 * lane. Informational (connection counters and state in ipcdctl); sent
 * without waiting, and without waking the monitor.
 */
struct ipcd_kit_accepted_req {
	uint64_t conn_id;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_kit_accepted_req) == 8);

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

/**
 * struct ipcd_pair_req - a connection both of whose ends are the caller's,
 * with no address: pipe(2) (@kind IPCD_CONN_KIND_PIPE; A writes, B reads)
 * or socketpair(2) (IPCD_CONN_KIND_UNIX). @ring_bytes as in struct
 * ipcd_connect_req (0: the default).
 *
 * The region's fds come first, as one IPCD_CTL_CONN_FD message for end A
 * (end B's are the same region with the two wake eventfds swapped); then
 * the response (struct ipcd_conn_resp: @conn_id only). Fork and exec share
 * the ends as any connection's (IPCD_OP_HOLD, IPCD_OP_REGION).
 * Status: 0, -EINVAL, -ENOBUFS (no room), -EMFILE.
 */
struct ipcd_pair_req {
	uint32_t kind;
	uint32_t ring_bytes;
	uint32_t flags;		/* 0 */
	uint32_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_pair_req) == 16);

/*
 * A pipe's rings: 1 MiB (F_SETPIPE_SZ up to pipe-max-size's default) and
 * room for the records' headers. The preload asks it for every pipe; the
 * monitor keeps regions of this size ready.
 */
#define IPCD_PIPE_RING_BYTES	(2u << 20)

/* struct ipcd_close_req.end (and struct ipcd_hold_req.end) */
#define IPCD_CLOSE_MINE		0	/* the end this process connected or accepted */
#define IPCD_CLOSE_A		1	/* the connecting end */
#define IPCD_CLOSE_B		2	/* the accepting end */
#define IPCD_CLOSE_UNSENT	3	/* a kit its connector never sent: both ends */
#define IPCD_HOLD_LISTENER	4	/* HOLD only: @conn_id is a listening bind's id */
#define IPCD_CLOSE_UNCLAIMED	5	/* a named AF_UNIX connector takes its connection
					 * back (both ends): 0, or -EALREADY once claimed */

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

/**
 * struct ipcd_hold_req - give end @end (IPCD_CLOSE_A or IPCD_CLOSE_B) of
 * connection @conn_id a hold token (ABI 3.2), before a fork shares it.
 *
 * The monitor makes a pipe, keeps its read end and sends the write end
 * (IPCD_CTL_HOLD_FD, before the response). Every process that holds the
 * connection end holds the token: fork copies it, exit and exec close it,
 * so the kernel counts the end's holders for us. When the last one is gone
 * the monitor's read end reports EPOLLHUP and it closes the end for
 * whoever held it last, as a process's exit closes its sockets: a forked
 * child that exits without close, or a parent that dies before its child,
 * ends the connection exactly when the kernel would. An end with a token
 * is no longer closed at its owner's death, only at that hang-up.
 *
 * @end IPCD_HOLD_LISTENER: the same for listening bind @conn_id (its owner
 * or a process of its user asks, before a fork or an exec shares the
 * socket): at the hang-up the listener and its bind go, its queued
 * connections are reset and new connects refused, as when the kernel's
 * last listening fd closes.
 *
 * Status: 0, -ENOENT (no such connection, or the end is closed), -EPERM
 * (not the end's owner nor a process of its user), -EEXIST (the end has a
 * token already: it was given to a process that holds the end), -EMFILE.
 *
 * IPCD_OP_REGION takes the same body and the same rules (no token is made):
 * the monitor sends the connection's region memfd (IPCD_CTL_REGION_FD,
 * before the response). exec: the region's mapping does not survive it,
 * so a process that keeps the end across exec asks for the memfd first and
 * hands it to its new image with the end's other descriptors.
 */
struct ipcd_hold_req {
	uint64_t conn_id;
	uint32_t end;
	uint32_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_hold_req) == 16);

/*
 * Named AF_UNIX stream sockets (pathname and abstract; ABI 3.4). The
 * kernel binds, listens, connects and accepts, so the path's permissions,
 * ECONNREFUSED, the backlog and SO_PEERCRED stay its own; the data of a
 * connection between two preloaded processes then goes through a region,
 * as a socketpair's does (IPCD_CONN_KIND_UNIX).
 *
 *  1. A preloaded listener registers its name (ULISTEN, @key: a hash of the
 *     bound file's device and inode, or of the netns and abstract name).
 *  2. A preloaded connector asks UCONNECT for that key before its kernel
 *     connect. If a live process registered it, the monitor makes the
 *     connection: end A's fds come first (IPCD_CTL_CONN_FD), the answer
 *     holds the connection id, a random @token and the registrant's pid.
 *     The connector binds its socket to the abstract name
 *     IPCD_UNIX_NAME_FMT (id, token) and connects in the kernel; it checks
 *     SO_PEERCRED against @listener_pid (the path may have been replaced
 *     meanwhile), then its fd becomes end A. On any failure it takes the
 *     connection back (CLOSE IPCD_CLOSE_UNCLAIMED) and stays the kernel's;
 *     if an acceptor claimed it already (-EALREADY), end A is used anyway.
 *  3. A preloaded acceptor whose accepted socket's peer has such a name asks
 *     UCLAIM, naming the accepted socket's fd in its own table. The monitor
 *     checks the claim on the kernel's word: it takes that fd from the
 *     claimer (pidfd_getfd) and checks its peer: the connection's name, and
 *     the connector's process and user in SO_PEERCRED. Only a process that
 *     accepted the connector's kernel connection can claim its region. End
 *     B's fds come first.
 *
 * ULISTEN's answer brings a token (IPCD_CTL_HOLD_FD, as HOLD's) that every
 * process holding the listener holds: its hang-up ends the registration
 * and resets its unclaimed connections (the connector's reads fail with
 * ECONNRESET). IPCD_ULISTEN_DROP (an exec handing the listener to a
 * program that will not load the library) only stops new connects.
 */
#define IPCD_UNIX_NAME_PREFIX	"ipcd-u-"	/* after the abstract name's leading NUL */
#define IPCD_UNIX_NAME_FMT	IPCD_UNIX_NAME_PREFIX "%016" PRIx64 "-%016" PRIx64
#define IPCD_UNIX_NAME_LEN	(1 + 7 + 16 + 1 + 16)	/* NUL, prefix, id, '-', token */

#define IPCD_ULISTEN_DROP	(1u << 0)	/* the registration ends */

struct ipcd_ulisten_req {
	uint64_t key;
	uint32_t flags;		/* IPCD_ULISTEN_DROP or 0 */
	uint32_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_ulisten_req) == 16);

/*
 * Status: 0, -ENOENT (no live registration: the kernel's connection),
 * -ENOBUFS (no room), -EINVAL.
 */
struct ipcd_uconnect_req {
	uint64_t key;
	uint32_t ring_bytes;	/* as struct ipcd_connect_req's */
	int32_t fd;		/* -1, or the connector's socket, named (below) */
};

/*
 * A connector with a name of its own (bound by the application, or
 * autobound because it has SO_PASSCRED) binds none of ours: UCONNECT names
 * its socket (@fd), the monitor reads the socket's name (pidfd_getfd) and
 * the token is ipcd_unix_name_hash() of it. An acceptor that sees a peer
 * name not of ours claims with @conn_id 0 and that hash; the monitor checks
 * the accepted socket's peer name hashes the same.
 */
IPCD_BUILD_ASSERT(sizeof(struct ipcd_uconnect_req) == 16);

#define IPCD_FNV1A_INIT	0xcbf29ce484222325ull

/* FNV-1a over @n bytes at @p, from @h (IPCD_FNV1A_INIT to start). */
static inline uint64_t ipcd_fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3ull;
	return h;
}

static inline uint64_t ipcd_unix_name_hash(const char *sun_path, size_t len)
{
	uint64_t h = ipcd_fnv1a(IPCD_FNV1A_INIT, sun_path, len);

	return h ? h : 1;	/* 0 is no token */
}

struct ipcd_uconnect_resp {
	uint64_t conn_id;
	uint64_t token;
	int32_t listener_pid;	/* the registrant, in the monitor's pid namespace */
	uint32_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_uconnect_resp) == 24);

/*
 * Status: 0, -ENOENT (no such unclaimed connection), -EPERM (@fd is not a
 * socket connected to the connection's connector), -EINVAL.
 */
struct ipcd_uclaim_req {
	uint64_t conn_id;	/* 0: the peer's own name's (@token is its hash) */
	uint64_t token;
	int32_t fd;		/* the accepted kernel socket, in the caller's fd table */
	uint32_t pad;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_uclaim_req) == 24);

/**
 * struct ipcd_uconnected_req - (ABI 3.7, posted) the connector of named
 * AF_UNIX connection @conn_id has its kernel connection: an acceptor may
 * come to claim it. Posted before connect() returns, so before the
 * application wrote a byte. A connector that dies without having said so
 * made no kernel connection (or wrote nothing): its unclaimed connection
 * is freed at once instead of waiting for a claim that cannot come.
 * Status: 0, -ENOENT (no such unclaimed connection of the caller's).
 */
struct ipcd_uconnected_req {
	uint64_t conn_id;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_uconnected_req) == 8);

/**
 * struct ipcd_cancel_req - (ABI 3.7, posted) the caller gave up waiting for
 * the answer to its request @cookie (its monitor was slower than the
 * library's call bound) and made the call in the kernel instead. If that
 * request was the caller's latest CONNECT, UCONNECT, ACCEPT, UCLAIM or PAIR
 * and made or handed it a connection, the monitor undoes it: a connection
 * nobody accepted yet is withdrawn (no listener will get a connection its
 * connector never had), one accepted meanwhile, or one the caller accepted,
 * is ended with a reset. Anything else: nothing. Status: 0.
 */
struct ipcd_cancel_req {
	uint64_t cookie;
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_cancel_req) == 8);

/*
 * ---------------------------------------------------------------------------
 * Across hosts (ABI 3.5): a process's RDMA channel
 * ---------------------------------------------------------------------------
 *
 * A CONNECT with IPCD_CONNECT_REMOTE to an address of another cluster host
 * whose link is up is answered once that host's monitor has queued the
 * connection on its listener (or refused it: -ECONNREFUSED, and the caller
 * uses the kernel, as for a local port nobody preloaded listens on). The
 * region it gets has ipcd_conn_ctl.remote_host set; so does the acceptor's.
 *
 * The two processes then need a queue pair between them and each other's
 * ring addresses. They say so in messages the monitors carry: RATTACH gives
 * the process a SOCK_SEQPACKET socket to its monitor (IPCD_CTL_RCHAN_FD
 * before the response), on which it sends and receives struct ipcd_rmsg.
 * The monitor stamps every message it forwards with the sender's host and
 * key, so a message proves who sent it; the body is the two libraries'
 * business (rdma/engine.c) and the monitors never read it.
 */
#define IPCD_RMSG_BODY		128

#define IPCD_RMSG_SEND		1	/* process -> monitor: to (@host, @key) */
#define IPCD_RMSG_DELIVER	2	/* monitor -> process: from (@host, @key) */
#define IPCD_RMSG_GONE		3	/* monitor -> process: (@host, @key) is gone; key 0: the host */

struct ipcd_rmsg {
	uint16_t type;			/* IPCD_RMSG_* */
	uint16_t len;			/* bytes of @body in use */
	uint32_t host;			/* cluster host, 1-based */
	uint64_t key;			/* a process at that host */
	uint8_t body[IPCD_RMSG_BODY];
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_rmsg) == 144);

/**
 * struct ipcd_rattach_resp - RATTACH's answer.
 * @host:     this host's number in the cluster table (1-based).
 * @key:      the caller's key, as peers will see it.
 * @addr:     this host's cluster address: the RDMA device to use carries it.
 */
struct ipcd_rattach_resp {
	uint32_t host;
	uint32_t pad;
	uint64_t key;
	uint8_t addr[16];
};
IPCD_BUILD_ASSERT(sizeof(struct ipcd_rattach_resp) == 32);

#endif /* IPCD_PROTO_H */
