/* SPDX-License-Identifier: MIT */
/* config.c - the monitor's config file: "key = value" lines, all or nothing. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ipcd/compiler.h>
#include <ipcd/shm_abi.h>

#include "monitor.h"

#define DEFAULT_PEER_PORT	18515
#define MAX_LINE		1024

const char ipcd_default_config[] =
	"# IPC-Direct monitor: embedded default configuration\n"
	"queue_mode = per-process\n"
	"core = none\n"
	"spin_us = 50\n"
	"skip_us = 200\n"
	"control_socket = /run/ipcd/monitor.sock\n"
	"max_processes = 1024\n"
	"max_connections = 65536\n"
	"max_process_connections = 16384\n"
	"max_memory = auto\n"
	"max_process_memory = auto\n"
	"limit_action = kernel\n"
	"ring_bytes = 262144\n"
	"ring_max_bytes = 4194304\n"
	"request_ring_bytes = 4096\n"
	"log_level = info\n";

struct parser {
	const char *name;
	unsigned int line;
	const char *key;
	char *err;
	size_t errlen;
	struct ipcd_config *cfg;
	uint32_t seen;		/* bit per scalar key: duplicates are errors */
	unsigned int line_of[32];	/* where each scalar key was set */
	bool rules_seen;
	bool peers_seen;
};

static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parser *p, const char *fmt, ...)
{
	size_t n;
	va_list ap;

	n = (size_t)snprintf(p->err, p->errlen, "%s:%u: ", p->name, p->line);
	if (p->key && n < p->errlen)
		n += (size_t)snprintf(p->err + n, p->errlen - n, "key '%s': ", p->key);
	if (n < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Unsigned decimal in [lo, hi]; the whole string must be the number. */
static int parse_u32(struct parser *p, const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
	unsigned long long x;
	char *end;

	if (!isdigit((unsigned char)*v))
		return fail(p, "expected a number in [%u, %u], got '%s'", lo, hi, v);
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end || x < lo || x > hi)
		return fail(p, "expected a number in [%u, %u], got '%s'", lo, hi, v);
	*out = (uint32_t)x;
	return 0;
}

static int parse_pow2(struct parser *p, const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
	if (parse_u32(p, v, lo, hi, out) || !IPCD_IS_POW2(*out))
		return fail(p, "expected a power of two in [%u, %u], got '%s'", lo, hi, v);
	return 0;
}

/*
 * A size in bytes: a number with an optional K, M, G or T (powers of 1024),
 * at least @lo, or "auto" (0) where @auto_ok.
 */
static int parse_size(struct parser *p, const char *v, uint64_t lo, bool auto_ok, uint64_t *out)
{
	static const char units[] = "KMGT";
	unsigned long long x;
	const char *u;
	char *end;

	if (auto_ok && !strcmp(v, "auto")) {
		*out = 0;
		return 0;
	}
	if (!isdigit((unsigned char)*v))
		goto bad;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno)
		goto bad;
	if (*end) {
		u = strchr(units, *end);
		if (!u || !*u || end[1] || x > (UINT64_MAX >> 10 * (u - units + 1)))
			goto bad;
		x <<= 10 * (u - units + 1);
	}
	if (x < lo)
		goto bad;
	*out = x;
	return 0;
bad:
	return fail(p, "expected %sa size in bytes of at least %" PRIu64
		    " (a number, optionally with K, M, G or T), got '%s'",
		    auto_ok ? "auto or " : "", lo, v);
}

static int parse_enum(struct parser *p, const char *v, const char *const *names, unsigned int n,
		      unsigned int *out)
{
	char expect[128] = "";
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (!strcmp(v, names[i])) {
			*out = i;
			return 0;
		}
		snprintf(expect + strlen(expect), sizeof(expect) - strlen(expect), "%s%s",
			 i ? (i + 1 == n ? " or " : ", ") : "", names[i]);
	}
	return fail(p, "expected %s, got '%s'", expect, v);
}

/* "LO" or "LO-HI" */
static int parse_ports(struct parser *p, const char *v, uint16_t *lo, uint16_t *hi)
{
	char buf[32], *dash;
	uint32_t a, b;

	if (strlen(v) >= sizeof(buf))
		return fail(p, "expected ports=PORT or ports=LO-HI, got '%s'", v);
	strcpy(buf, v);
	dash = strchr(buf, '-');
	if (dash)
		*dash = '\0';
	if (parse_u32(p, buf, 1, 65535, &a))
		return -EINVAL;
	b = a;
	if (dash && parse_u32(p, dash + 1, 1, 65535, &b))
		return -EINVAL;
	if (b < a)
		return fail(p, "port range '%s' is empty", v);
	*lo = (uint16_t)a;
	*hi = (uint16_t)b;
	return 0;
}

/* bind_rule = allow|deny uid=N|uid=*|gid=N ports=LO[-HI] */
static int parse_bind_rule(struct parser *p, char *v)
{
	static const char *const verbs[] = { "allow", "deny" };
	struct ipcd_config *cfg = p->cfg;
	struct ipcd_bind_rule r = { .line = p->line };
	char *tok[3], *save = NULL;
	unsigned int i, n = 0, verb = 0;

	for (char *t = strtok_r(v, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == 3)
			return fail(p, "expected 'allow|deny uid=N|gid=N|uid=* ports=LO-HI', "
				    "got extra '%s'", t);
		tok[n++] = t;
	}
	if (n != 3)
		return fail(p, "expected 'allow|deny uid=N|gid=N|uid=* ports=LO-HI'");
	if (parse_enum(p, tok[0], verbs, 2, &verb))
		return -EINVAL;
	r.allow = verb == 0;
	if (!strcmp(tok[1], "uid=*")) {
		r.any_id = true;
	} else if (!strncmp(tok[1], "uid=", 4) || !strncmp(tok[1], "gid=", 4)) {
		r.is_gid = tok[1][0] == 'g';
		if (parse_u32(p, tok[1] + 4, 0, UINT32_MAX - 1, &r.id))
			return -EINVAL;
	} else {
		return fail(p, "expected uid=N, gid=N or uid=*, got '%s'", tok[1]);
	}
	if (strncmp(tok[2], "ports=", 6))
		return fail(p, "expected ports=LO-HI, got '%s'", tok[2]);
	if (parse_ports(p, tok[2] + 6, &r.port_lo, &r.port_hi))
		return -EINVAL;

	if (!p->rules_seen) {	/* the file's rules replace the defaults */
		cfg->n_rules = 0;
		p->rules_seen = true;
	}
	if (cfg->n_rules == IPCD_MAX_BIND_RULES)
		return fail(p, "more than %d rules", IPCD_MAX_BIND_RULES);
	i = cfg->n_rules++;
	cfg->rules[i] = r;
	return 0;
}

/* peer = NAME ADDRESS [PORT] */
static int parse_peer(struct parser *p, char *v)
{
	struct ipcd_config *cfg = p->cfg;
	struct ipcd_peer peer = { .port = DEFAULT_PEER_PORT };
	char *name, *addr, *port, *save = NULL;
	unsigned char bin[16];
	uint32_t port_nr;

	name = strtok_r(v, " \t", &save);
	addr = strtok_r(NULL, " \t", &save);
	port = strtok_r(NULL, " \t", &save);
	if (!name || !addr || strtok_r(NULL, " \t", &save))
		return fail(p, "expected 'NAME ADDRESS [PORT]'");
	if (strlen(name) >= sizeof(peer.name))
		return fail(p, "peer name longer than %zu bytes", sizeof(peer.name) - 1);
	if (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1)
		return fail(p, "expected a numeric IPv4 or IPv6 address, got '%s'", addr);
	if (port) {
		if (parse_u32(p, port, 1, 65535, &port_nr))
			return -EINVAL;
		peer.port = (uint16_t)port_nr;
	}
	strcpy(peer.name, name);
	strcpy(peer.addr, addr);

	if (!p->peers_seen) {
		cfg->n_peers = 0;
		p->peers_seen = true;
	}
	for (uint32_t i = 0; i < cfg->n_peers; i++)
		if (!strcmp(cfg->peers[i].name, name))
			return fail(p, "peer '%s' defined twice", name);
	if (cfg->n_peers == IPCD_MAX_PEERS)
		return fail(p, "more than %d peers", IPCD_MAX_PEERS);
	cfg->peers[cfg->n_peers++] = peer;
	return 0;
}

enum key_id {
	K_QUEUE_MODE, K_CORE, K_SPIN_US, K_SKIP_US, K_CONTROL_SOCKET, K_MAX_PROCESSES,
	K_MAX_CONNECTIONS, K_RING_BYTES, K_RING_MAX_BYTES, K_REQUEST_RING_BYTES, K_LOG_LEVEL,
	K_BIND_RULE, K_PEER, K_MAX_PROCESS_CONNECTIONS, K_MAX_MEMORY, K_MAX_PROCESS_MEMORY,
	K_LIMIT_ACTION, K_COUNT
};
IPCD_BUILD_ASSERT(K_COUNT <= 32);	/* struct parser: seen, line_of */

static const char *const key_names[K_COUNT] = {
	[K_QUEUE_MODE] = "queue_mode",
	[K_CORE] = "core",
	[K_SPIN_US] = "spin_us",
	[K_SKIP_US] = "skip_us",
	[K_CONTROL_SOCKET] = "control_socket",
	[K_MAX_PROCESSES] = "max_processes",
	[K_MAX_CONNECTIONS] = "max_connections",
	[K_RING_BYTES] = "ring_bytes",
	[K_RING_MAX_BYTES] = "ring_max_bytes",
	[K_REQUEST_RING_BYTES] = "request_ring_bytes",
	[K_LOG_LEVEL] = "log_level",
	[K_BIND_RULE] = "bind_rule",
	[K_PEER] = "peer",
	[K_MAX_PROCESS_CONNECTIONS] = "max_process_connections",
	[K_MAX_MEMORY] = "max_memory",
	[K_MAX_PROCESS_MEMORY] = "max_process_memory",
	[K_LIMIT_ACTION] = "limit_action",
};

static int set_key(struct parser *p, enum key_id k, char *v)
{
	static const char *const modes[] = { "per-process", "shared" };
	static const char *const levels[] = { "error", "warn", "info", "debug" };
	static const char *const actions[] = { "kernel", "error" };
	struct ipcd_config *cfg = p->cfg;
	unsigned int e = 0;
	uint32_t x;

	switch (k) {
	case K_QUEUE_MODE:
		if (parse_enum(p, v, modes, 2, &e))
			return -EINVAL;
		cfg->queue_mode = e == 0 ? IPCD_QMODE_PER_PROCESS : IPCD_QMODE_SHARED;
		return 0;
	case K_CORE:
		if (!strcmp(v, "none")) {
			cfg->core = -1;
			return 0;
		}
		if (!isdigit((unsigned char)*v))
			return fail(p, "expected none or a CPU number in [0, %d], got '%s'",
				    CPU_SETSIZE - 1, v);
		if (parse_u32(p, v, 0, CPU_SETSIZE - 1, &x))
			return -EINVAL;
		cfg->core = (int32_t)x;
		return 0;
	case K_SPIN_US:
		return parse_u32(p, v, 0, 1000000, &cfg->spin_us);
	case K_SKIP_US:
		return parse_u32(p, v, 1, 10000000, &cfg->skip_us);
	case K_CONTROL_SOCKET:
		if (v[0] != '/' || strlen(v) >= sizeof(cfg->control_socket))
			return fail(p, "expected an absolute path shorter than %zu bytes, got '%s'",
				    sizeof(cfg->control_socket), v);
		strcpy(cfg->control_socket, v);
		return 0;
	case K_MAX_PROCESSES:
		return parse_u32(p, v, 1, 65536, &cfg->max_processes);
	case K_MAX_CONNECTIONS:
		return parse_u32(p, v, 1, 1u << 20, &cfg->max_connections);
	case K_RING_BYTES:
		return parse_pow2(p, v, 4096, 1u << 30, &cfg->ring_bytes);
	case K_RING_MAX_BYTES:
		return parse_pow2(p, v, 4096, 1u << 30, &cfg->ring_max_bytes);
	case K_REQUEST_RING_BYTES:
		return parse_pow2(p, v, 4096, 1u << 20, &cfg->request_ring_bytes);
	case K_LOG_LEVEL:
		if (parse_enum(p, v, levels, 4, &e))
			return -EINVAL;
		cfg->log_level = (enum ipcd_log_level)e;
		return 0;
	case K_BIND_RULE:
		return parse_bind_rule(p, v);
	case K_PEER:
		return parse_peer(p, v);
	case K_MAX_PROCESS_CONNECTIONS:
		return parse_u32(p, v, 1, 1u << 20, &cfg->max_process_connections);
	case K_MAX_MEMORY:
		return parse_size(p, v, 1u << 20, true, &cfg->max_memory);
	case K_MAX_PROCESS_MEMORY:
		return parse_size(p, v, 1u << 20, true, &cfg->max_process_memory);
	case K_LIMIT_ACTION:
		if (parse_enum(p, v, actions, 2, &e))
			return -EINVAL;
		cfg->limit_action = e == 0 ? IPCD_LIMIT_KERNEL : IPCD_LIMIT_ERROR;
		return 0;
	case K_COUNT:
		break;
	}
	return fail(p, "internal error");
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/*
 * Rules between keys, once the whole file is read; the message names the
 * line of the key the file set last among those involved.
 */
static int check_keys(struct parser *p)
{
	const struct ipcd_config *cfg = p->cfg;

	if (cfg->ring_max_bytes < cfg->ring_bytes) {
		bool max_set = p->seen & (1u << K_RING_MAX_BYTES);
		bool max_last = max_set && p->line_of[K_RING_MAX_BYTES] >= p->line_of[K_RING_BYTES];

		if (max_last || !(p->seen & (1u << K_RING_BYTES))) {
			p->line = p->line_of[K_RING_MAX_BYTES];
			p->key = key_names[K_RING_MAX_BYTES];
			return fail(p, "must be at least ring_bytes (%u), got %u", cfg->ring_bytes,
				    cfg->ring_max_bytes);
		}
		p->line = p->line_of[K_RING_BYTES];
		p->key = key_names[K_RING_BYTES];
		return fail(p, "must be at most ring_max_bytes (%u), got %u", cfg->ring_max_bytes,
			    cfg->ring_bytes);
	}
	return 0;
}

static int parse_line(struct parser *p, char *line)
{
	char *eq, *key, *val, *hash;
	unsigned int k;

	hash = strchr(line, '#');
	if (hash)
		*hash = '\0';
	line = trim(line);
	if (!*line)
		return 0;
	eq = strchr(line, '=');
	if (!eq)
		return fail(p, "expected 'key = value', got '%s'", line);
	*eq = '\0';
	key = trim(line);
	val = trim(eq + 1);
	for (k = 0; k < K_COUNT; k++)
		if (!strcmp(key, key_names[k]))
			break;
	if (k == K_COUNT)
		return fail(p, "unknown key '%s'", key);
	p->key = key_names[k];
	if (!*val)
		return fail(p, "missing value");
	if (k != K_BIND_RULE && k != K_PEER) {
		if (p->seen & (1u << k))
			return fail(p, "set twice");
		p->seen |= 1u << k;
		p->line_of[k] = p->line;
	}
	return set_key(p, (enum key_id)k, val);
}

int ipcd_config_parse(const char *text, size_t len, const char *name, struct ipcd_config *cfg,
		      char *err, size_t errlen)
{
	struct ipcd_config *tmp;
	struct parser p = { .name = name, .err = err, .errlen = errlen };
	size_t pos = 0;
	int rc = 0;

	tmp = malloc(sizeof(*tmp));
	if (!tmp) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -ENOMEM;
	}
	*tmp = *cfg;
	p.cfg = tmp;
	while (pos < len && !rc) {
		char line[MAX_LINE];
		size_t n = 0;

		p.line++;
		p.key = NULL;
		while (pos < len && text[pos] != '\n') {
			if (text[pos] == '\0') {
				rc = fail(&p, "NUL byte in the file");
				break;
			}
			if (n == sizeof(line) - 1) {
				rc = fail(&p, "line longer than %d bytes", MAX_LINE - 1);
				break;
			}
			line[n++] = text[pos++];
		}
		if (rc)
			break;
		pos++;	/* the newline */
		line[n] = '\0';
		rc = parse_line(&p, line);
	}
	if (!rc)
		rc = check_keys(&p);
	if (!rc)
		*cfg = *tmp;
	free(tmp);
	return rc;
}

static void config_defaults(struct ipcd_config *cfg)
{
	char err[256];

	memset(cfg, 0, sizeof(*cfg));
	/* The embedded text is covered by a unit test; it cannot fail here. */
	if (ipcd_config_parse(ipcd_default_config, sizeof(ipcd_default_config) - 1,
			      "<default>", cfg, err, sizeof(err)))
		abort();
}

int ipcd_config_load(const char *path, bool must_exist, struct ipcd_config *cfg, char *err,
		     size_t errlen)
{
	char *text = NULL;
	size_t len = 0, cap = 0;
	FILE *f;
	int rc;

	config_defaults(cfg);
	if (!path)
		return 0;
	f = fopen(path, "re");
	if (!f) {
		rc = -errno;
		if (rc == -ENOENT && !must_exist)
			return 0;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
		return rc;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			char *t;

			if (cap >= (1u << 20)) {
				snprintf(err, errlen, "%s: larger than 1 MiB", path);
				rc = -EFBIG;
				goto out;
			}
			cap = cap ? 2 * cap : 4096;
			t = realloc(text, cap);
			if (!t) {
				snprintf(err, errlen, "%s: out of memory", path);
				rc = -ENOMEM;
				goto out;
			}
			text = t;
		}
		n = fread(text + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = -EIO;
		goto out;
	}
	rc = ipcd_config_parse(text, len, path, cfg, err, errlen);
out:
	free(text);
	fclose(f);
	return rc;
}

bool ipcd_config_bind_allowed(const struct ipcd_config *cfg, uid_t uid, gid_t gid,
			      uint16_t port)
{
	uint32_t i;

	for (i = 0; i < cfg->n_rules; i++) {
		const struct ipcd_bind_rule *r = &cfg->rules[i];
		bool who = r->any_id || (r->is_gid ? r->id == gid : r->id == uid);

		if (who && port >= r->port_lo && port <= r->port_hi)
			return r->allow;
	}
	return true;
}

const char *ipcd_log_level_name(enum ipcd_log_level l)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	return (unsigned int)l < IPCD_ARRAY_SIZE(names) ? names[l] : "?";
}
