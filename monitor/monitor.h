/* SPDX-License-Identifier: MIT */
/*
 * monitor.h - private declarations of ipcd-monitor (one header, Caladan's defs.h).
 */
#ifndef IPCD_MONITOR_H
#define IPCD_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
	uint32_t ring_bytes;		/* data ring per connection direction (power of 2) */
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

#endif /* IPCD_MONITOR_H */
