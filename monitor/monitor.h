/* SPDX-License-Identifier: MIT */
/*
 * monitor.h - private declarations of ipcd-monitor (one header, Caladan's defs.h).
 */
#ifndef IPCD_MONITOR_H
#define IPCD_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <ipcd/ctl.h>
#include <ipcd/mpsc.h>
#include <ipcd/proto.h>
#include <ipcd/reqq.h>
#include <ipcd/shm.h>

/* ---- logging ------------------------------------------------------------ */

enum ipcd_log_level {
	IPCD_LOG_ERROR,
	IPCD_LOG_WARN,
	IPCD_LOG_INFO,
	IPCD_LOG_DEBUG,
};

/* ---- configuration (config.c) -------------------------------------------- */

#define IPCD_CONFIG_PATH	"/etc/ipcd/monitor.conf"
#define IPCD_MAX_BIND_RULES	64
#define IPCD_MAX_PEERS		64
#define IPCD_NAME_MAX		64

/**
 * struct ipcd_bind_rule - who may bind which ports (first match wins).
 * A rule matches a process if its uid (or gid) matches and the port is in
 * [port_lo, port_hi]. The kernel's own rule (ports < 1024 need root or
 * CAP_NET_BIND_SERVICE) applies in addition.
 */
struct ipcd_bind_rule {
	bool allow;
	bool any_id;		/* "uid=*": every process */
	bool is_gid;		/* id is a gid, else a uid */
	uint32_t id;
	uint16_t port_lo;
	uint16_t port_hi;
	unsigned int line;	/* where it was defined, for messages */
};

/** struct ipcd_peer - another host of the RDMA cluster. */
struct ipcd_peer {
	char name[IPCD_NAME_MAX];
	char addr[IPCD_NAME_MAX];	/* numeric IPv4/IPv6 address */
	uint16_t port;			/* RDMA CM port */
};

/**
 * struct ipcd_config - everything the monitor reads from its config file.
 */
struct ipcd_config {
	uint32_t queue_mode;		/* IPCD_QMODE_PER_PROCESS or IPCD_QMODE_SHARED */
	int32_t core;			/* CPU to pin the poll loop to; -1: none */
	uint32_t spin_us;		/* busy-poll budget before sleeping */
	uint32_t skip_us;		/* shared mode: stalled doorbell claims skipped after */
	char control_socket[108];	/* sizeof(sun_path) */
	uint32_t max_processes;		/* registered processes */
	uint32_t max_connections;	/* accelerated connections, whole host */
	/*
	 * Caps on what connections hold (docs/limits.md). Memory is the bytes
	 * of connection regions; 0 in a memory cap means "auto" (ipcd_limits).
	 */
	uint32_t max_process_connections; /* connections one process made or listens for */
	uint64_t max_memory;		/* all connection regions on the host; 0: auto */
	uint64_t max_process_memory;	/* those charged to one process; 0: auto */
	uint32_t limit_action;		/* IPCD_LIMIT_KERNEL or IPCD_LIMIT_ERROR (shm_abi.h) */
	uint32_t ring_bytes;		/* data ring per connection direction (power of 2) */
	uint32_t ring_max_bytes;	/* cap on ring_bytes raised by hints (power of 2) */
	uint32_t request_ring_bytes;	/* request and response ring per process (power of 2) */
	enum ipcd_log_level log_level;
	uint32_t n_rules;
	struct ipcd_bind_rule rules[IPCD_MAX_BIND_RULES];
	uint32_t n_peers;
	struct ipcd_peer peers[IPCD_MAX_PEERS];
};

/* The configuration used when no file exists (printed by --print-default-config). */
extern const char ipcd_default_config[];

/**
 * ipcd_config_parse - parse @len bytes of config text over the defaults.
 * @name: file name used in error messages.
 * @err:  receives "NAME:LINE: key 'k': expected ..., got '...'" on failure.
 *
 * All or nothing: on error @cfg is left as it was. Returns 0 or -EINVAL.
 */
int ipcd_config_parse(const char *text, size_t len, const char *name, struct ipcd_config *cfg,
		      char *err, size_t errlen);

/**
 * ipcd_config_load - read and parse @path; a missing file at the default
 * path (only) means "use the embedded default". Returns 0, -EINVAL (bad
 * content, see @err) or -errno (unreadable, see @err).
 */
int ipcd_config_load(const char *path, bool must_exist, struct ipcd_config *cfg, char *err,
		     size_t errlen);

/** ipcd_config_bind_allowed - does the config let (uid, gid) bind @port? */
bool ipcd_config_bind_allowed(const struct ipcd_config *cfg, uid_t uid, gid_t gid,
			      uint16_t port);

const char *ipcd_log_level_name(enum ipcd_log_level l);

/* ---- log.c -------------------------------------------------------------- */

/* Messages say what, where and why; the level filters (config or --log-level). */
void ipcd_log_init(enum ipcd_log_level level, bool use_syslog);
void ipcd_log_set_level(enum ipcd_log_level level);
bool ipcd_log_enabled(enum ipcd_log_level level);
void ipcd_log(enum ipcd_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...)	ipcd_log(IPCD_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)	ipcd_log(IPCD_LOG_WARN, __VA_ARGS__)
#define log_info(...)	ipcd_log(IPCD_LOG_INFO, __VA_ARGS__)
#define log_debug(...)						\
	do {							\
		if (ipcd_log_enabled(IPCD_LOG_DEBUG))		\
			ipcd_log(IPCD_LOG_DEBUG, __VA_ARGS__);	\
	} while (0)

/* ---- port namespace (ns.c) ----------------------------------------------- */

/*
 * The monitor's view of who is bound to which local TCP address and port, with
 * the kernel's rules for conflicts (see ns.c). Addresses are IPv6 or
 * IPv4-mapped IPv6 (::ffff:a.b.c.d), in network byte order; the port is in
 * host byte order. Bounded: at most max_binds entries.
 */
struct ipcd_ns;

/* ipcd_ns_bind() flags */
#define IPCD_NS_REUSEADDR	(1u << 0)
#define IPCD_NS_REUSEPORT	(1u << 1)
#define IPCD_NS_V6ONLY		(1u << 2)	/* an in6addr_any bind does not cover IPv4 */
#define IPCD_NS_PRIV		(1u << 3)	/* caller may bind ports < 1024 (root, CAP) */

/**
 * struct ipcd_ns_who - the process asking (from SO_PEERCRED, never the request).
 */
struct ipcd_ns_who {
	uint64_t owner;		/* client id: everything an owner holds is freed together */
	uint32_t uid;
	uint32_t gid;
};

int ipcd_ns_create(uint32_t max_binds, uint16_t eph_lo, uint16_t eph_hi, struct ipcd_ns **out);
void ipcd_ns_destroy(struct ipcd_ns *ns);

/**
 * ipcd_ns_bind - bind @addr:@port (port 0: an ephemeral port) for @who.
 * @cfg:  the config's bind rules apply after the kernel's own checks.
 * @id:   receives the bind's id; @port_out receives the port bound.
 * Returns 0, -EADDRINUSE, -EACCES (privileged port or a config rule),
 * -EADDRNOTAVAIL (no free ephemeral port), -ENOSPC (table full), -EINVAL.
 */
int ipcd_ns_bind(struct ipcd_ns *ns, const struct ipcd_ns_who *who, const uint8_t addr[16],
		 uint16_t port, uint32_t flags, const struct ipcd_config *cfg, uint32_t *id,
		 uint16_t *port_out);

/** ipcd_ns_listen - mark bind @id listening. -ENOENT, -EPERM (not the owner), -EADDRINUSE. */
int ipcd_ns_listen(struct ipcd_ns *ns, uint64_t owner, uint32_t id);

/** ipcd_ns_unbind - release bind @id. -ENOENT or -EPERM (not the owner). */
int ipcd_ns_unbind(struct ipcd_ns *ns, uint64_t owner, uint32_t id);

/**
 * ipcd_ns_give - bind @id passes from @from to @to (a shared listener whose
 * owner died: monitor/conns.c "Shared listeners"). 0, -ENOENT or -EPERM.
 */
int ipcd_ns_give(struct ipcd_ns *ns, uint32_t id, uint64_t from, uint64_t to);

/** ipcd_ns_release_owner - release every bind of @owner (a dead process). Returns the count. */
uint32_t ipcd_ns_release_owner(struct ipcd_ns *ns, uint64_t owner);

/**
 * ipcd_ns_lookup_listener - the listening bind a connect to @addr:@port
 * reaches: an exact address match before a wildcard; among SO_REUSEPORT
 * listeners of one address, round robin. Returns the id, or -ECONNREFUSED.
 */
int64_t ipcd_ns_lookup_listener(struct ipcd_ns *ns, const uint8_t addr[16], uint16_t port);

/** struct ipcd_ns_entry - one bind, as ipcd_ns_get()/ipcd_ns_next() report it. */
struct ipcd_ns_entry {
	uint32_t id;
	uint64_t owner;
	uint32_t uid;
	uint8_t addr[16];
	uint16_t port;
	uint32_t flags;
	bool listening;
};

/** ipcd_ns_get - copy out bind @id. -ENOENT if none. */
int ipcd_ns_get(const struct ipcd_ns *ns, uint32_t id, struct ipcd_ns_entry *e);

/** ipcd_ns_next - iterate: first call with *@cursor = 0. false at the end. */
bool ipcd_ns_next(const struct ipcd_ns *ns, uint32_t *cursor, struct ipcd_ns_entry *e);

/**
 * ipcd_ns_index - the table index of live bind @id: in [0, max_binds), unique
 * among live binds, so other parts can keep per-bind state in a parallel
 * array (conns.c: backlogs). -ENOENT if @id is not live.
 */
int64_t ipcd_ns_index(const struct ipcd_ns *ns, uint32_t id);

/** ipcd_ns_count - binds in use. */
uint32_t ipcd_ns_count(const struct ipcd_ns *ns);

/* ---- the monitor: state shared by main.c, control.c, clients.c, reqs.c ---- */

#define MON_REQ_BUDGET		256	/* requests per poll-loop turn */
#define MON_CONTROL_EVERY	64	/* busy turns between control-socket checks */
#define MON_MAX_PENDING		64	/* accepted sockets still owing a hello */
#define MON_HELLO_TIMEOUT_NS	1000000000ull
#define MON_HOUSEKEEP_NS	100000000ull	/* longest sleep: pending hellos, heartbeat */

enum client_state { CL_FREE, CL_ACTIVE, CL_DEAD };

/**
 * struct mon_client - a registered process. Identity comes from SO_PEERCRED
 * at registration, never from anything the process writes.
 */
struct mon_client {
	enum client_state state;
	uint64_t id;			/* unique for the monitor's lifetime */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool priv_ports;		/* root or CAP_NET_BIND_SERVICE at registration */
	uint16_t abi_minor;		/* the library's: newer ones may send opcodes we lack */
	/* Its latest request that made or gave it a connection (a CANCEL undoes it). */
	uint16_t made_op;
	uint64_t made_cookie;
	uint64_t made_conn;
	char comm[16];
	const char *why_dead;		/* CL_DEAD: reason, reaped after the poll turn */
	int sock;			/* control socket: EOF = the process is gone */
	uint32_t slot;			/* request-server slot == index in mon.clients */
	struct ipcd_region reg;		/* its IPCD_REGION_CLIENT */
	struct ipcd_reqq_chan chan;
	uint64_t since_ns;
	uint64_t reqs[IPCD_OP_MAX + 1];	/* requests served, by opcode (0: unknown) */
	uint32_t n_conns;		/* connections charged to it (conns.c "Limits") */
	uint64_t conn_bytes;		/* ... and their regions' bytes */
};

/** struct mon_pending - an accepted control connection that has not said hello yet. */
struct mon_pending {
	int sock;			/* -1: free */
	uint64_t since_ns;
	struct ucred cred;
};

struct mon_counters {
	uint64_t registered;
	uint64_t refused;		/* bad hello, version mismatch, table full */
	uint64_t reaped;		/* processes gone (EOF) */
	uint64_t faults;		/* processes cut off for breaking the protocol */
	uint64_t admin_queries;
	uint64_t sleeps;
	uint64_t wakeups;
	uint64_t loops;
	uint64_t ops[IPCD_OP_MAX + 1];	/* requests served, by opcode (0: unknown) */
};

struct monitor {
	struct ipcd_config cfg;
	const char *config_path;	/* NULL: embedded default only */
	bool config_must_exist;
	int epfd;
	int sigfd;
	int lsock;			/* listening control socket */
	char sock_path[108];
	uint64_t start_ns;
	struct ipcd_region global;	/* IPCD_REGION_GLOBAL */
	struct ipcd_global_ctl *gctl;
	struct ipcd_mpsc db;		/* consumer side of the doorbell queue (shared mode) */
	struct ipcd_reqq_srv *srv;
	struct mon_client **clients;	/* [cfg.max_processes], indexed by slot */
	uint32_t n_clients;
	uint32_t *dead;			/* slots killed during a poll turn, reaped after it */
	uint32_t n_dead;
	uint64_t next_client_id;
	uint32_t cluster_up;		/* hosts whose link is up (cluster.c), for clients_publish */
	struct mon_pending pending[MON_MAX_PENDING];
	struct ipcd_ns *ns;
	struct mon_counters ctr;
	bool stop;			/* SIGTERM/SIGINT: drain, then exit (main.c) */
	bool draining;			/* ... no new connections meanwhile */
	uint64_t drain_end;		/* when the drain gives up on unaccepted connections */
	bool exiting;			/* the drain is over: the processes let go live on */
	bool reload;
};

extern struct monitor mon;

/* epoll tags: the kind in the top byte, an index below */
#define MON_EV_LISTEN		1ull
#define MON_EV_SIGNAL		2ull
#define MON_EV_WAKE		3ull
#define MON_EV_CLIENT		4ull
#define MON_EV_PENDING		5ull
#define MON_EV_HOLD		6ull	/* idx: connection index << 1 | B side */
#define MON_EV_LHOLD		7ull	/* idx: the listener's namespace index */
#define MON_EV_UHOLD		8ull	/* idx: a named AF_UNIX registration's (conns.c) */
#define MON_EV_RLINK		9ull	/* the cluster's links (cluster.c) */
#define MON_EV_RCHAN		10ull	/* idx: a process's RDMA channel, by slot */
#define MON_EV(kind, idx)	((kind) << 56 | (uint64_t)(idx))
#define MON_EV_KIND(v)		((v) >> 56)
#define MON_EV_IDX(v)		((uint32_t)(v))

/*
 * clients.c: an event of a monitor object (a process, a pending handshake,
 * a hold token, a listener's or a named AF_UNIX registration's copy, the
 * cluster's links and channels). The main loop handles the listening
 * socket, signals and the wake eventfd itself; the fuzz harness
 * (tests/fuzz/fx.c) calls this for every event.
 */
void mon_object_event(uint64_t tag, uint32_t events);

/* control.c: the control socket, handshake and admin queries */
int control_init(void);
void control_exit(void);
void control_accept(void);
void control_pending_ready(uint32_t idx);
void control_pending_expire(uint64_t now);
int control_send_fds(int sock, const void *msg, size_t len, const int *fds, unsigned int nfds);

/* clients.c: the registered processes */
int clients_init(void);
void clients_exit(void);
int clients_register(int sock, const struct ucred *cred, const struct ipcd_ctl_hello *hello,
		     char *why, size_t whylen);
void clients_kill(uint32_t slot, const char *why);
void clients_reap_dead(void);
void clients_event(uint32_t slot, uint32_t events);
struct mon_client *clients_get(uint32_t slot);
/*
 * clients_publish - write the settings the libraries follow (limit_action,
 * cluster_up) into every registered process's own control block.
 */
void clients_publish(void);

/* ---- connections (conns.c) ---------------------------------------------- */

/*
 * The connection table (cfg.max_connections entries, allocated once), each
 * listener's backlog (a bounded FIFO threaded through the table), and what a
 * CLOSE or a death means for a connection. The monitor keeps each region's
 * memfd, never a mapping: it maps a region only for the moment it marks a
 * dead side's rings.
 */

/* struct conns_entry.state */
enum conn_state {
	CONN_BACKLOG,		/* queued on a listener, not accepted yet */
	CONN_ESTABLISHED,	/* both ends hold it */
	CONN_HALF_CLOSED,	/* accepted; one end closed it or died */
	CONN_CLOSING,		/* never to be accepted (connector closed, or listener gone) */
	CONN_KIT,		/* made for a lane, not accepted yet (or not told yet) */
};

/**
 * struct conns_dir - one direction's ring, as its endpoints wrote it (read
 * with pread() from the memfd: informational only).
 * @bytes:      prod_bytes, payload bytes ever written;
 * @records:    prod_msgs, records ever written (one per write in a stream);
 * @bytes_read: cons_bytes, payload bytes ever read.
 */
struct conns_dir {
	uint64_t bytes;
	uint64_t records;
	uint64_t bytes_read;
};

/** struct conns_entry - one connection, as conns_next() reports it. A connects, B accepts. */
struct conns_entry {
	uint64_t id;
	uint8_t a_addr[16];
	uint8_t b_addr[16];
	uint16_t a_port;
	uint16_t b_port;
	pid_t a_pid;
	pid_t b_pid;		/* the listener's owner until accepted */
	uid_t a_uid;
	uid_t b_uid;
	enum conn_state state;
	uint32_t reset;		/* IPCD_CONN_RESET_* the monitor set */
	uint32_t ring_bytes;	/* capacity of each ring */
	uint32_t kind;		/* IPCD_CONN_KIND_* */
	uint32_t remote_host;	/* the other end's cluster host (1-based); 0: local */
	bool rings_known;	/* false if the region could not be read */
	struct conns_dir a2b;
	struct conns_dir b2a;
};

struct conns_stats {
	uint64_t created;	/* CONNECTs answered 0, and kits their listener accepted */
	uint64_t accepted;
	uint64_t closed;	/* ends closed by a CLOSE request (an unsent kit's: kits_unused) */
	uint64_t freed;		/* connections whose two ends were done */
	uint64_t dead_ends;	/* ends the monitor closed for a process that died */
	uint64_t reset;		/* connections given a reset bit */
	uint64_t refused;	/* CONNECT -> -ECONNREFUSED */
	uint64_t backlog_full;	/* CONNECT -> -EAGAIN */
	uint64_t no_room;	/* CONNECT -> -ENOBUFS, -EMFILE, -EADDRNOTAVAIL, ... */
	uint64_t fd_faults;	/* processes cut off: they did not read their control socket */
	uint64_t pooled;	/* CONNECTs served a region made ahead of need */
	uint64_t lanes_made;	/* lanes (proto.h) created */
	uint64_t kits;		/* connections made as kits for a lane */
	uint64_t kits_unused;	/* kits the listener never received (reset or closed unsent) */
	uint64_t kits_requeued;	/* kits received, not accepted, queued on the backlog */
	uint64_t regions_reused; /* kits given a lane region its pair had used before */
	uint64_t closed_early;	/* ends found closed in a lane region before their CLOSE */
	uint64_t holds;		/* hold tokens given (HOLD: an end shared by fork) */
	uint64_t hold_hups;	/* ends whose last holder closed its token or exited */
	uint64_t pipes;		/* PAIR: pipes made */
	uint64_t socketpairs;	/* PAIR: AF_UNIX socketpairs made */
	uint64_t unix_connected; /* UCLAIM: named AF_UNIX connections made */
	uint64_t unix_unconnected; /* ... freed unclaimed: their connector died before connecting */
	uint64_t cancelled;	/* connections undone by a CANCEL (their caller gave up waiting) */
	uint32_t unix_listeners; /* ULISTEN: names registered now */
	uint64_t remote_out;	/* connections made to another host's listener */
	uint64_t remote_in;	/* connections from another host queued on ours */
	uint64_t limit_conns;	/* refused: a process at max_process_connections */
	uint64_t limit_memory;	/* refused: max_memory or max_process_memory */
	uint32_t lanes;		/* lanes now */
	uint32_t active;
	uint32_t max;
};

int conns_init(void);
void conns_exit(void);
/* Handlers: return the response status; *out is the response body when 0. */
/* Make connection regions ahead of need (after answering a CONNECT). */
void conns_refill(void);
int conns_connect(struct mon_client *c, const struct ipcd_connect_req *r,
		  struct ipcd_conn_resp *out);
int conns_accept(struct mon_client *c, const struct ipcd_accept_req *r,
		 struct ipcd_conn_resp *out);
int conns_close(struct mon_client *c, const struct ipcd_close_req *r);
int conns_kits(struct mon_client *c, const struct ipcd_kits_req *r, struct ipcd_kits_resp *out);
int conns_lane_done(struct mon_client *c, const struct ipcd_lane_done_req *r);
int conns_kit_accepted(struct mon_client *c, const struct ipcd_kit_accepted_req *r);
/* PAIR: a pipe or socketpair, both ends the caller's; its fds go before the answer. */
int conns_pair(struct mon_client *c, const struct ipcd_pair_req *r, struct ipcd_conn_resp *out);
/* Named AF_UNIX sockets (proto.h): ULISTEN, UCONNECT (fds before the answer), UCLAIM (same). */
int conns_ulisten(struct mon_client *c, const struct ipcd_ulisten_req *r);
/* A registration's token hung up (MON_EV_UHOLD): no process holds the listener. */
void conns_ulis_hup(uint32_t idx);
int conns_uconnect(struct mon_client *c, const struct ipcd_uconnect_req *r,
		   struct ipcd_uconnect_resp *out);
int conns_uclaim(struct mon_client *c, const struct ipcd_uclaim_req *r,
		 struct ipcd_conn_resp *out);
/* HOLD: a hold token for an end (proto.h struct ipcd_hold_req), sent before the answer. */
int conns_hold(struct mon_client *c, const struct ipcd_hold_req *r);
/* REGION: the end's region memfd (IPCD_CTL_REGION_FD), sent before the answer (exec). */
int conns_region(struct mon_client *c, const struct ipcd_hold_req *r);
/* A hold token's read end hung up (MON_EV_HOLD): the end's last holder is gone. */
void conns_hold_hup(uint32_t idx);
/* A listener's hold token hung up (MON_EV_LHOLD): it and its bind go. */
void conns_lis_hup(uint32_t idx);
/*
 * LISTEN: ipcd_ns_listen(), then (re)sets the bind's backlog and ring-size
 * hint; the first LISTEN of a bind sends its accept eventfd
 * (IPCD_CTL_LISTEN_FD) first, and a failed send cuts the process off.
 */
int conns_listen(struct mon_client *c, const struct ipcd_listen_req *r);
/* Before ipcd_ns_unbind(): resets the connections still in the bind's backlog. */
void conns_unbind(struct mon_client *c, uint32_t bind_id);
/* From reap(), before ipcd_ns_release_owner(): @c's process is gone or cut off. */
void conns_client_gone(struct mon_client *c);
/** conns_next - iterate: first call with *@cursor = 0. false at the end. */
bool conns_next(uint32_t *cursor, struct conns_entry *e);
void conns_get_stats(struct conns_stats *st);

/** struct conns_limits - the limits in force ("auto" resolved) and the bytes charged. */
struct conns_limits {
	uint64_t max_memory;
	uint64_t max_process_memory;
	uint32_t max_process_connections;
	uint64_t memory;
};
/* The config's limits take effect (start, reload); limit_action is published (clients_publish). */
void conns_limits_apply(void);
void conns_get_limits(struct conns_limits *l);
/* Connections in the table (kits included): lazy CLOSEs may come while any is. */
uint32_t conns_active(void);
/*
 * CANCEL: @c gave up waiting for its answer to @op (CONNECT, UCONNECT, ACCEPT,
 * UCLAIM, PAIR), which made or gave it connection @id: undo it.
 */
void conns_cancel(struct mon_client *c, uint16_t op, uint64_t id);
/* UCONNECTED: the connector of an unclaimed AF_UNIX connection has its kernel connection. */
int conns_uconnected(struct mon_client *c, const struct ipcd_uconnected_req *r);
/* Connections made but not accepted yet: queued in a backlog, or AF_UNIX ones unclaimed. */
uint32_t conns_unaccepted(void);
/*
 * Orphaned shared listeners (conns.c "Shared listeners"): drop those whose
 * port no kernel socket listens on any more, at most every
 * MON_HOUSEKEEP_NS. Returns true while some remain (the loop then sleeps
 * at most that long).
 */
bool conns_orphans_check(uint64_t now);
const char *conns_state_name(enum conn_state s);

/*
 * Across hosts (conns.c "Remote connections"; cluster.c drives them).
 * A side: an entry and an ephemeral port at @self first, the region once
 * the other host answered (ready: CONN_FD to @c, then fill @out), or drop.
 * B side: queued on the listener @dst:@port reaches, as a local connect is.
 */
bool conns_is_local(const uint8_t a[16]);
int conns_remote_a_new(struct mon_client *c, const uint8_t self[16], const uint8_t dst[16],
		       uint16_t port, uint32_t host, uint64_t *conn_id, uint16_t *a_port);
int conns_remote_a_ready(struct mon_client *c, uint64_t conn_id, uint64_t peer_conn,
			 uint32_t ring_bytes, struct ipcd_conn_resp *out);
void conns_remote_a_drop(uint64_t conn_id);

struct conns_remote_b {
	uint64_t conn_id;
	uint32_t ring_bytes;
	uint8_t b_addr[16];
	uint16_t b_port;
};
int conns_remote_b_new(uint32_t host, uint64_t a_key, uint64_t a_conn, const uint8_t a_addr[16],
		       uint16_t a_port, const uint8_t dst[16], uint16_t port, uint32_t ring_hint,
		       struct conns_remote_b *out);
/* The other host says its end of our @conn_id is done: closed, or @gone (with @reset). */
void conns_remote_end(uint32_t host, uint64_t conn_id, bool gone, bool reset);
/* The other host's process @b_key accepted our connection @conn_id (its engine may bind it). */
void conns_remote_accepted(uint32_t host, uint64_t conn_id, uint64_t b_key);
/* Does process @client have a connection with process @key of @host? (cluster.c's filter) */
bool conns_remote_pair(uint64_t client, uint32_t host, uint64_t key);
/* Every connection to @host: its end is gone (reset). */
void conns_remote_host_down(uint32_t host);

/* ---- the cluster (cluster.c) ----------------------------------------------- */

/*
 * Links to the other hosts' monitors over RDMA CM (rdma/link.c), connects
 * across them, and each process's RDMA channel (proto.h IPCD_OP_RATTACH).
 * Without peers in the config, or without an RDMA device that carries this
 * host's cluster address, it stays off and connects use the kernel.
 */
int cluster_init(void);
void cluster_exit(void);
/* MON_EV_RLINK: the link layer has work. */
void cluster_link_event(void);
/* Frames wait for a link's window: a busy loop polls the links every turn. */
bool cluster_backlogged(void);
/* MON_EV_RCHAN @slot: a process's channel is readable or hung up. */
void cluster_chan_event(uint32_t slot, uint32_t events);
/* Milliseconds until cluster_tick() is due; -1: none. Also runs what is due. */
int cluster_tick(void);
/*
 * CONNECT @req from @c with IPCD_CONNECT_REMOTE: true if the destination is
 * a host of the cluster whose link is up; the answer then comes later.
 */
bool cluster_connect(struct mon_client *c, const struct ipcd_req *req,
		     const struct ipcd_connect_req *r);
void cluster_rattach(struct mon_client *c, const struct ipcd_req *req);
/* reqs.c: answer @req of @c now (a deferred answer: the cluster's connects). */
void reqs_respond(struct mon_client *c, const struct ipcd_req *req, int32_t status,
		  const void *body, uint16_t len);
/* Process @c is gone: its channel closes, the other hosts hear of it. */
void cluster_client_gone(struct mon_client *c);
/* From conns.c: @c accepted the connection whose connector's id at @host is @peer_conn. */
void cluster_tell_accepted(uint32_t host, uint64_t peer_conn, const struct mon_client *c);
/* From conns.c: our end of the connection @peer_conn names at @host is done. */
void cluster_tell_end(uint32_t host, uint64_t peer_conn, bool gone, bool reset);

struct cluster_stats {
	uint32_t hosts;			/* in the config, this one included; 0: off */
	uint32_t self;			/* this host's number (1-based); 0: none */
	uint32_t up;			/* links up now */
	uint32_t chans;			/* processes with an RDMA channel now */
	uint64_t connects;		/* CONNECTs sent to another host */
	uint64_t refused;		/* ... answered "no accelerated listener" (or lost) */
	uint64_t msgs_fwd;		/* process messages forwarded to another host */
	uint64_t msgs_in;		/* ... delivered here */
	uint64_t msgs_dropped;		/* undeliverable (no such process, channel full) */
};
void cluster_get_stats(struct cluster_stats *st);
/* Host @h (1-based): its name, address and link state; false past the end. */
bool cluster_host(uint32_t h, const char **name, const char **addr, uint16_t *port, bool *up,
		  bool *self);

/* ---- fallbacks (fallback.c) ---------------------------------------------- */

/*
 * Connections the preload sent to the kernel, as processes report them
 * (IPCD_OP_FALLBACK): a count per reason, and the most recent
 * MON_FALLBACK_RING reports for ipcdctl. Informational only.
 */
#define MON_FALLBACK_RING	256

/** struct fallback_entry - one report, as fallback_next() gives it. */
struct fallback_entry {
	uint64_t mono_ns;	/* CLOCK_MONOTONIC when the monitor received it */
	pid_t pid;		/* identity from the registration (SO_PEERCRED) */
	uid_t uid;
	char comm[16];
	uint8_t addr[16];	/* the peer, as reported */
	uint16_t port;
	uint16_t reason;	/* IPCD_FB_* */
};

/* IPCD_OP_FALLBACK: record @len bytes of @body. Returns 0 or -EINVAL. */
int fallback_record(const struct mon_client *c, const void *body, size_t len);
/** fallback_next - oldest first: first call with *@cursor = 0. false at the end. */
bool fallback_next(uint64_t *cursor, struct fallback_entry *e);
/* Reports per reason ([IPCD_FB_*]); [0]: requests refused with -EINVAL. */
void fallback_counts(uint64_t counts[IPCD_FB_MAX + 1]);
/* "no accelerated listener", ... ("?" if out of range). */
const char *fallback_reason_name(uint32_t reason);
/* A JSON key: "no_listener", ... ("invalid" for 0). */
const char *fallback_reason_key(uint32_t reason);

/* reqs.c: request handlers */
extern const struct ipcd_reqq_ops reqs_ops;

/* report.c: answers for ipcdctl */
void report_query(int sock, const struct ucred *cred, const struct ipcd_ctl_query *q);

#endif /* IPCD_MONITOR_H */
