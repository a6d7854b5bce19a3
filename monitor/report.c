/* SPDX-License-Identifier: MIT */
/* report.c - answers to ipcdctl: status, processes, listeners, connections, counters, queues. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "monitor.h"

/* Output in SEQPACKET chunks; an empty message ends the answer. */
struct out {
	int sock;
	bool json;
	bool failed;
	bool first;		/* JSON: no comma before the next array element */
	size_t len;
	char buf[IPCD_CTL_CHUNK];
};

static void flush(struct out *o)
{
	if (!o->failed && o->len &&
	    send(o->sock, o->buf, o->len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)o->len)
		o->failed = true;	/* a reader that does not read loses its answer */
	o->len = 0;
}

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (o->len + (size_t)n > sizeof(o->buf))
		flush(o);
	memcpy(o->buf + o->len, line, (size_t)n);
	o->len += (size_t)n;
}

/* JSON string body: comm names are printable ASCII already; escape " and \. */
static const char *jstr(const char *s, char *buf, size_t len)
{
	size_t j = 0;

	for (; *s && j + 2 < len; s++) {
		if (*s == '"' || *s == '\\')
			buf[j++] = '\\';
		buf[j++] = *s;
	}
	buf[j] = '\0';
	return buf;
}

static bool visible(const struct ucred *who, uid_t owner)
{
	return who->uid == 0 || who->uid == owner;
}

static const char *addr_str(const uint8_t a[16], char *buf, size_t len)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (!memcmp(a, v4mapped, sizeof(v4mapped)))
		inet_ntop(AF_INET, a + 12, buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, a, buf, (socklen_t)len);
	return buf;
}

static void elem(struct out *o)
{
	if (!o->first)
		put(o, ",");
	o->first = false;
}

static void q_status(struct out *o)
{
	const struct ipcd_config *c = &mon.cfg;
	double up = (double)(ipcd_now_ns() - mon.start_ns) / 1e9;
	uint32_t listeners = mon.ns ? ipcd_ns_count(mon.ns) : 0;
	static const char *const actions[] = { [IPCD_LIMIT_KERNEL] = "kernel",
						[IPCD_LIMIT_ERROR] = "error" };
	struct conns_limits lim;
	struct conns_stats cn;

	conns_get_stats(&cn);
	conns_get_limits(&lim);

	if (o->json) {
		put(o, "{\"pid\":%d,\"uptime_s\":%.1f,\"abi\":\"%u.%u\",\"queue_mode\":\"%s\","
		    "\"core\":%d,\"spin_us\":%u,\"processes\":%u,\"max_processes\":%u,"
		    "\"binds\":%u,\"connections\":%u,\"socket\":\"%s\",\"config\":\"%s\","
		    "\"log_level\":\"%s\","
		    "\"limits\":{\"max_connections\":%u,\"max_process_connections\":%u,"
		    "\"max_memory\":%" PRIu64 ",\"max_process_memory\":%" PRIu64
		    ",\"memory\":%" PRIu64 ",\"limit_action\":\"%s\"},"
		    "\"heartbeat\":%" PRIu64 "}\n",
		    (int)getpid(), up, IPCD_SHM_ABI_MAJOR, IPCD_SHM_ABI_MINOR,
		    ipcd_reqq_mode_name(c->queue_mode), c->core, c->spin_us, mon.n_clients,
		    c->max_processes, listeners, cn.active, mon.sock_path,
		    mon.config_path ? mon.config_path : "<embedded default>",
		    ipcd_log_level_name(c->log_level), cn.max, lim.max_process_connections,
		    lim.max_memory, lim.max_process_memory, lim.memory,
		    actions[c->limit_action], mon.gctl->heartbeat);
		return;
	}
	put(o, "ipcd-monitor   pid %d, up %.1f s, ABI %u.%u\n", (int)getpid(), up,
	    IPCD_SHM_ABI_MAJOR, IPCD_SHM_ABI_MINOR);
	put(o, "queue mode     %s\n", ipcd_reqq_mode_name(c->queue_mode));
	if (c->core >= 0)
		put(o, "core           %d (pinned), spin %u us before sleeping\n", c->core,
		    c->spin_us);
	else
		put(o, "core           not pinned, spin %u us before sleeping\n", c->spin_us);
	put(o, "processes      %u of %u\n", mon.n_clients, c->max_processes);
	put(o, "binds          %u\n", listeners);
	put(o, "connections    %u of %u, at most %u per process\n", cn.active, cn.max,
	    lim.max_process_connections);
	put(o, "memory         %" PRIu64 " of %" PRIu64 " MiB in connection regions, at most %"
	    PRIu64 " MiB per process\n", lim.memory >> 20, lim.max_memory >> 20,
	    lim.max_process_memory >> 20);
	put(o, "over a limit   %s\n", c->limit_action == IPCD_LIMIT_ERROR
	    ? "the call fails (EMFILE, ENOBUFS, ECONNREFUSED)" : "the call uses the kernel");
	put(o, "socket         %s\n", mon.sock_path);
	put(o, "config         %s\n", mon.config_path ? mon.config_path : "<embedded default>");
	put(o, "log level      %s\n", ipcd_log_level_name(c->log_level));
}

static uint64_t ring_depth(const struct ipcd_spsc *r)
{
	uint64_t in = ipcd_load_relaxed(&r->shm->prod_msgs);
	uint64_t out = ipcd_load_relaxed(&r->shm->cons_msgs);

	return in - out;	/* the client writes prod_msgs: informational only */
}

static void q_processes(struct out *o, const struct ucred *who, bool queues)
{
	uint64_t now = ipcd_now_ns();
	char esc[40];
	uint32_t s;

	if (o->json)
		put(o, "[");
	else if (queues)
		put(o, "%-8s %-16s %6s %10s %10s %12s %12s\n", "PID", "COMMAND", "SLOT", "REQ-DEPTH",
		    "RESP-DEPTH", "REQ-MSGS", "RESP-MSGS");
	else
		put(o, "%-8s %-16s %6s %6s %6s %10s %12s %7s %10s\n", "PID", "COMMAND", "UID",
		    "SLOT", "ID", "AGE(s)", "REQUESTS", "CONNS", "MEM(KiB)");
	for (s = 0; s < mon.cfg.max_processes; s++) {
		const struct mon_client *c = mon.clients[s];
		uint64_t total = 0;
		unsigned int k;

		if (!c || c->state != CL_ACTIVE || !visible(who, c->uid))
			continue;
		for (k = 0; k <= IPCD_OP_MAX; k++)
			total += c->reqs[k];
		if (o->json) {
			elem(o);
			put(o, "{\"pid\":%d,\"comm\":\"%s\",\"uid\":%u,\"gid\":%u,\"slot\":%u,"
			    "\"id\":%" PRIu64 ",\"age_s\":%.1f,\"requests\":%" PRIu64 ","
			    "\"req_depth\":%" PRIu64 ",\"resp_depth\":%" PRIu64 ","
			    "\"connections\":%u,\"conn_bytes\":%" PRIu64 "}",
			    c->pid, jstr(c->comm, esc, sizeof(esc)), c->uid, c->gid, c->slot, c->id,
			    (double)(now - c->since_ns) / 1e9, total, ring_depth(&c->chan.req),
			    ring_depth(&c->chan.resp), c->n_conns, c->conn_bytes);
		} else if (queues) {
			put(o, "%-8d %-16s %6u %10" PRIu64 " %10" PRIu64 " %12" PRIu64
			    " %12" PRIu64 "\n", c->pid, c->comm, c->slot, ring_depth(&c->chan.req),
			    ring_depth(&c->chan.resp),
			    ipcd_load_relaxed(&c->chan.req.shm->cons_msgs),
			    ipcd_load_relaxed(&c->chan.resp.shm->prod_msgs));
		} else {
			put(o, "%-8d %-16s %6u %6u %6" PRIu64 " %10.1f %12" PRIu64 " %7u %10" PRIu64
			    "\n", c->pid, c->comm, c->uid, c->slot, c->id,
			    (double)(now - c->since_ns) / 1e9, total, c->n_conns,
			    c->conn_bytes >> 10);
		}
	}
	if (o->json)
		put(o, "]\n");
}

static const struct mon_client *client_by_id(uint64_t id)
{
	uint32_t s;

	for (s = 0; s < mon.cfg.max_processes; s++)
		if (mon.clients[s] && mon.clients[s]->id == id)
			return mon.clients[s];
	return NULL;
}

static void q_listeners(struct out *o, const struct ucred *who)
{
	struct ipcd_ns_entry e;
	uint32_t cursor = 0;
	char addr[INET6_ADDRSTRLEN];

	if (o->json)
		put(o, "[");
	else
		put(o, "%-40s %6s %-9s %8s %-16s %s\n", "ADDRESS", "PORT", "STATE", "PID", "COMMAND",
		    "FLAGS");
	while (mon.ns && ipcd_ns_next(mon.ns, &cursor, &e)) {
		const struct mon_client *c = client_by_id(e.owner);
		char esc[40];

		if (!visible(who, e.uid))
			continue;
		addr_str(e.addr, addr, sizeof(addr));
		if (o->json) {
			elem(o);
			put(o, "{\"address\":\"%s\",\"port\":%u,\"state\":\"%s\",\"pid\":%d,"
			    "\"comm\":\"%s\",\"reuseaddr\":%s,\"reuseport\":%s,\"accelerated\":true}",
			    addr, e.port, e.listening ? "listen" : "bound", c ? c->pid : 0,
			    jstr(c ? c->comm : "", esc, sizeof(esc)),
			    e.flags & IPCD_NS_REUSEADDR ? "true" : "false",
			    e.flags & IPCD_NS_REUSEPORT ? "true" : "false");
		} else {
			put(o, "%-40s %6u %-9s %8d %-16s %s%s\n", addr, e.port,
			    e.listening ? "listen" : "bound", c ? c->pid : 0, c ? c->comm : "?",
			    e.flags & IPCD_NS_REUSEADDR ? "reuseaddr " : "",
			    e.flags & IPCD_NS_REUSEPORT ? "reuseport" : "");
		}
	}
	if (o->json)
		put(o, "]\n");
}

/* "a.b.c.d:port" or "[v6]:port" */
static const char *ep_str(const uint8_t a[16], uint16_t port, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];

	addr_str(a, addr, sizeof(addr));
	snprintf(buf, len, strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr, port);
	return buf;
}

static const char *kind_name(uint32_t kind)
{
	return kind == IPCD_CONN_KIND_PIPE ? "pipe" : kind == IPCD_CONN_KIND_UNIX ? "unix" : "tcp";
}

/*
 * One end's address: ADDR:PORT for TCP; a pipe's ends are "pipe:w" (A) and
 * "pipe:r" (B), a socketpair's "unix" (no address, as getsockname says).
 */
static const char *end_addr(const struct conns_entry *e, bool b_side, char *buf, size_t len)
{
	if (e->kind == IPCD_CONN_KIND_PIPE)
		snprintf(buf, len, "%s", b_side ? "pipe:r" : "pipe:w");
	else if (e->kind == IPCD_CONN_KIND_UNIX)
		snprintf(buf, len, "unix");
	else if (b_side)
		ep_str(e->b_addr, e->b_port, buf, len);
	else
		ep_str(e->a_addr, e->a_port, buf, len);
	return buf;
}

/* "PID ADDR" for one end, as the text table shows it. */
static const char *end_str(const struct conns_entry *e, bool b_side, char *buf, size_t len)
{
	char ep[INET6_ADDRSTRLEN + 10];

	snprintf(buf, len, "%d %s", (int)(b_side ? e->b_pid : e->a_pid),
		 end_addr(e, b_side, ep, sizeof(ep)));
	return buf;
}

/* Bytes written but not read yet; the endpoints write both counters: never negative here. */
static uint64_t unread(const struct conns_dir *d)
{
	return d->bytes >= d->bytes_read ? d->bytes - d->bytes_read : 0;
}

static void conn_text(struct out *o, const struct conns_entry *e)
{
	char a[INET6_ADDRSTRLEN + 24], b[INET6_ADDRSTRLEN + 24];
	char ab[3][24] = { "?", "?", "?" }, ba[3][24] = { "?", "?", "?" };

	if (e->rings_known) {
		snprintf(ab[0], sizeof(ab[0]), "%" PRIu64, e->a2b.bytes);
		snprintf(ab[1], sizeof(ab[1]), "%" PRIu64, e->a2b.records);
		snprintf(ab[2], sizeof(ab[2]), "%" PRIu64, unread(&e->a2b));
		snprintf(ba[0], sizeof(ba[0]), "%" PRIu64, e->b2a.bytes);
		snprintf(ba[1], sizeof(ba[1]), "%" PRIu64, e->b2a.records);
		snprintf(ba[2], sizeof(ba[2]), "%" PRIu64, unread(&e->b2a));
	}
	put(o, "%-12" PRIu64 " %-33s %-33s %-12s %9u %12s %9s %9s %12s %9s %9s  %s\n", e->id,
	    end_str(e, false, a, sizeof(a)), end_str(e, true, b, sizeof(b)),
	    conns_state_name(e->state),
	    e->ring_bytes, ab[0], ab[1], ab[2], ba[0], ba[1], ba[2],
	    e->remote_host ? "rdma" : "accelerated");
}

static void dir_json(struct out *o, const char *name, const struct conns_dir *d, bool known)
{
	if (known)
		put(o, ",\"%s_bytes\":%" PRIu64 ",\"%s_records\":%" PRIu64 ",\"%s_bytes_read\":%"
		    PRIu64, name, d->bytes, name, d->records, name, d->bytes_read);
	else
		put(o, ",\"%s_bytes\":null,\"%s_records\":null,\"%s_bytes_read\":null", name, name,
		    name);
}

static void conn_json(struct out *o, const struct conns_entry *e)
{
	char a[INET6_ADDRSTRLEN + 10], b[INET6_ADDRSTRLEN + 10];

	end_addr(e, false, a, sizeof(a));
	end_addr(e, true, b, sizeof(b));
	elem(o);
	put(o, "{\"id\":%" PRIu64 ",\"kind\":\"%s\",\"a\":\"%s\",\"a_pid\":%d,\"b\":\"%s\","
	    "\"b_pid\":%d,\"state\":\"%s\",\"accelerated\":true,\"ring_bytes\":%u,"
	    "\"reset_a\":%s,\"reset_b\":%s", e->id, kind_name(e->kind), a, (int)e->a_pid, b,
	    (int)e->b_pid,
	    conns_state_name(e->state), e->ring_bytes,
	    e->reset & IPCD_CONN_RESET_A ? "true" : "false",
	    e->reset & IPCD_CONN_RESET_B ? "true" : "false");
	dir_json(o, "a2b", &e->a2b, e->rings_known);
	dir_json(o, "b2a", &e->b2a, e->rings_known);
	put(o, ",\"remote_host\":%u}", e->remote_host);
}

static void fallback_json(struct out *o, const struct fallback_entry *f, uint64_t now)
{
	char peer[INET6_ADDRSTRLEN + 10], esc[40];

	elem(o);
	put(o, "{\"accelerated\":false,\"pid\":%d,\"uid\":%u,\"comm\":\"%s\",\"peer\":\"%s\","
	    "\"reason\":\"%s\",\"reason_code\":%u,\"mono_ns\":%" PRIu64 ",\"age_s\":%.1f}",
	    (int)f->pid, (unsigned int)f->uid, jstr(f->comm, esc, sizeof(esc)),
	    ep_str(f->addr, f->port, peer, sizeof(peer)), fallback_reason_name(f->reason),
	    f->reason, f->mono_ns, (double)(now - f->mono_ns) / 1e9);
}

/*
 * Every accelerated connection one of whose ends @who may see (A connected,
 * B accepted; until then, B is the listener's owner), then the most recent
 * connections that went to the kernel instead (fallback.c), oldest first.
 * Ring counters are read with pread() from the memfd (no mapping): written
 * by the endpoints, so informational only.
 */
static void q_connections(struct out *o, const struct ucred *who)
{
	uint64_t now = ipcd_now_ns(), fcur = 0;
	struct fallback_entry f;
	struct conns_entry e;
	uint32_t cursor = 0;
	bool any = false;

	if (o->json)
		put(o, "[");
	else
		put(o, "%-12s %-33s %-33s %-12s %9s %12s %9s %9s %12s %9s %9s  %s\n", "ID",
		    "A (CONNECTED) PID ADDRESS", "B (ACCEPTED) PID ADDRESS", "STATE", "RING",
		    "A>B-BYTES", "A>B-RECS", "A>B-UNRD", "B>A-BYTES", "B>A-RECS", "B>A-UNRD", "MODE");
	while (conns_next(&cursor, &e)) {
		if (!visible(who, e.a_uid) && !visible(who, e.b_uid))
			continue;
		if (o->json)
			conn_json(o, &e);
		else
			conn_text(o, &e);
	}
	while (fallback_next(&fcur, &f)) {
		char peer[INET6_ADDRSTRLEN + 10];

		if (!visible(who, f.uid))
			continue;
		if (o->json) {
			fallback_json(o, &f, now);
			continue;
		}
		if (!any)
			put(o, "\nrecent connections on the kernel (latest %u kept)\n"
			    "%-9s %-8s %-16s %-33s %-9s %s\n", MON_FALLBACK_RING, "AGE(s)", "PID",
			    "COMMAND", "PEER", "MODE", "REASON");
		any = true;
		put(o, "%-9.1f %-8d %-16s %-33s %-9s %s\n", (double)(now - f.mono_ns) / 1e9,
		    (int)f.pid, f.comm, ep_str(f.addr, f.port, peer, sizeof(peer)), "fallback",
		    fallback_reason_name(f.reason));
	}
	if (o->json)
		put(o, "]\n");
}

static void q_counters(struct out *o)
{
	static const char *const op_names[IPCD_OP_MAX + 1] = {
		[0] = "unknown", [IPCD_OP_NOP] = "nop", [IPCD_OP_ECHO] = "echo",
		[IPCD_OP_BIND] = "bind", [IPCD_OP_LISTEN] = "listen", [IPCD_OP_UNBIND] = "unbind",
		[IPCD_OP_CONNECT] = "connect", [IPCD_OP_ACCEPT] = "accept",
		[IPCD_OP_CLOSE] = "close", [IPCD_OP_FALLBACK] = "fallback",
		[IPCD_OP_KITS] = "kits", [IPCD_OP_LANE_DONE] = "lane_done",
		[IPCD_OP_KIT_ACCEPTED] = "kit_accepted", [IPCD_OP_HOLD] = "hold",
		[IPCD_OP_REGION] = "region", [IPCD_OP_PAIR] = "pair",
		[IPCD_OP_ULISTEN] = "ulisten", [IPCD_OP_UCONNECT] = "uconnect",
		[IPCD_OP_UCLAIM] = "uclaim", [IPCD_OP_RATTACH] = "rattach",
		[IPCD_OP_UCONNECTED] = "uconnected", [IPCD_OP_CANCEL] = "cancel",
	};
	struct cluster_stats cl;
	uint64_t fb[IPCD_FB_MAX + 1], fb_total = 0;
	struct ipcd_reqq_stats st;
	struct conns_stats cn;
	unsigned int k;

	ipcd_reqq_srv_stats(mon.srv, &st);
	conns_get_stats(&cn);
	cluster_get_stats(&cl);
	fallback_counts(fb);
	for (k = 1; k <= IPCD_FB_MAX; k++)
		fb_total += fb[k];
	if (o->json) {
		put(o, "{\"registered\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"reaped\":%" PRIu64
		    ",\"faults\":%" PRIu64 ",\"admin_queries\":%" PRIu64 ",\"sleeps\":%" PRIu64
		    ",\"wakeups\":%" PRIu64 ",\"loops\":%" PRIu64 ",\"requests\":%" PRIu64
		    ",\"doorbells\":%" PRIu64 ",\"stale_doorbells\":%" PRIu64 ",\"sweeps\":%" PRIu64
		    ",\"backpressure\":%" PRIu64 ",\"by_opcode\":{",
		    mon.ctr.registered, mon.ctr.refused, mon.ctr.reaped, mon.ctr.faults,
		    mon.ctr.admin_queries, mon.ctr.sleeps, mon.ctr.wakeups, mon.ctr.loops,
		    st.requests, st.doorbells, st.stale, st.sweeps, st.backpressure);
		for (k = 0; k <= IPCD_OP_MAX; k++)
			put(o, "%s\"%s\":%" PRIu64, k ? "," : "", op_names[k], mon.ctr.ops[k]);
		put(o, "},\"connections\":{\"active\":%u,\"created\":%" PRIu64 ",\"accepted\":%"
		    PRIu64 ",\"closed\":%" PRIu64 ",\"freed\":%" PRIu64 ",\"dead_ends\":%" PRIu64
		    ",\"reset\":%" PRIu64 ",\"refused_connects\":%" PRIu64
		    ",\"backlog_full\":%" PRIu64 ",\"no_room\":%" PRIu64 ",\"fd_faults\":%" PRIu64
		    ",\"pooled\":%" PRIu64 ",\"holds\":%" PRIu64 ",\"hold_hups\":%" PRIu64
		    ",\"pipes\":%" PRIu64 ",\"socketpairs\":%" PRIu64
		    ",\"unix_connected\":%" PRIu64 ",\"unix_unconnected\":%" PRIu64
		    ",\"unix_listeners\":%u,\"remote_out\":%" PRIu64
		    ",\"remote_in\":%" PRIu64 ",\"remote_total\":%" PRIu64
		    ",\"limit_connections\":%" PRIu64 ",\"limit_memory\":%" PRIu64
		    ",\"cancelled\":%" PRIu64
		    "},\"lanes\":{\"open\":%u,\"made\":%" PRIu64
		    ",\"kits\":%" PRIu64 ",\"kits_unused\":%" PRIu64 ",\"kits_requeued\":%"
		    PRIu64 ",\"regions_reused\":%" PRIu64 ",\"closed_early\":%" PRIu64
		    "},\"fallbacks\":{\"total\":%" PRIu64
		    ",\"by_reason\":{", cn.active, cn.created,
		    cn.accepted, cn.closed, cn.freed, cn.dead_ends, cn.reset, cn.refused,
		    cn.backlog_full, cn.no_room, cn.fd_faults, cn.pooled, cn.holds,
		    cn.hold_hups, cn.pipes, cn.socketpairs, cn.unix_connected,
		    cn.unix_unconnected, cn.unix_listeners, cn.remote_out, cn.remote_in, cn.remote_out + cn.remote_in,
		    cn.limit_conns, cn.limit_memory, cn.cancelled, cn.lanes, cn.lanes_made,
		    cn.kits, cn.kits_unused, cn.kits_requeued, cn.regions_reused, cn.closed_early,
		    fb_total);
		for (k = 1; k <= IPCD_FB_MAX; k++)
			put(o, "%s\"%s\":%" PRIu64, k > 1 ? "," : "", fallback_reason_key(k), fb[k]);
		put(o, "},\"invalid\":%" PRIu64 "},\"cluster\":{\"hosts\":%u,\"self\":%u,\"up\":%u,"
		    "\"channels\":%u,\"connects\":%" PRIu64 ",\"refused\":%" PRIu64
		    ",\"msgs_forwarded\":%" PRIu64 ",\"msgs_delivered\":%" PRIu64
		    ",\"msgs_dropped\":%" PRIu64 "}}\n", fb[0], cl.hosts, cl.self, cl.up, cl.chans,
		    cl.connects, cl.refused, cl.msgs_fwd, cl.msgs_in, cl.msgs_dropped);
		return;
	}
	put(o, "registered      %" PRIu64 "\n", mon.ctr.registered);
	put(o, "refused         %" PRIu64 "\n", mon.ctr.refused);
	put(o, "reaped          %" PRIu64 "\n", mon.ctr.reaped);
	put(o, "faults          %" PRIu64 "  (processes cut off for breaking the protocol)\n",
	    mon.ctr.faults);
	put(o, "requests        %" PRIu64 "\n", st.requests);
	for (k = 0; k <= IPCD_OP_MAX; k++)
		put(o, "  %-13s %" PRIu64 "\n", op_names[k], mon.ctr.ops[k]);
	put(o, "doorbells       %" PRIu64 "  stale %" PRIu64 ", sweeps %" PRIu64 "\n",
	    st.doorbells, st.stale, st.sweeps);
	put(o, "backpressure    %" PRIu64 "  (polls skipped: a response ring was full)\n",
	    st.backpressure);
	put(o, "loop            %" PRIu64 " turns, %" PRIu64 " sleeps, %" PRIu64 " wake-ups\n",
	    mon.ctr.loops, mon.ctr.sleeps, mon.ctr.wakeups);
	put(o, "connections     %u of %u now\n", cn.active, cn.max);
	put(o, "  created       %" PRIu64 "\n", cn.created);
	put(o, "  accepted      %" PRIu64 "\n", cn.accepted);
	put(o, "  closed        %" PRIu64 "  (CLOSE requests)\n", cn.closed);
	put(o, "  freed         %" PRIu64 "\n", cn.freed);
	put(o, "  dead ends     %" PRIu64 "  (closed by the monitor for a dead process)\n",
	    cn.dead_ends);
	put(o, "  reset         %" PRIu64 "\n", cn.reset);
	put(o, "  refused       %" PRIu64 "  (no accelerated listener)\n", cn.refused);
	put(o, "  backlog full  %" PRIu64 "\n", cn.backlog_full);
	put(o, "  no room       %" PRIu64 "  (connection table, ports or fds)\n", cn.no_room);
	put(o, "  over limits   %" PRIu64 " connections, %" PRIu64 " memory  (refused: "
	    "max_process_connections; max_memory, max_process_memory)\n", cn.limit_conns,
	    cn.limit_memory);
	put(o, "  cancelled     %" PRIu64 "  (undone: the caller gave up waiting for us)\n",
	    cn.cancelled);
	put(o, "  fd faults     %" PRIu64 "  (processes cut off: control socket not read)\n",
	    cn.fd_faults);
	put(o, "  pooled        %" PRIu64 "  (regions made ahead of need)\n", cn.pooled);
	put(o, "  holds         %" PRIu64 "  (hold tokens: ends shared by fork)\n", cn.holds);
	put(o, "  hold hang-ups %" PRIu64 "  (ends whose last holder closed or exited)\n",
	    cn.hold_hups);
	put(o, "  pipes         %" PRIu64 "  (pipe(2) made: one connection each)\n", cn.pipes);
	put(o, "  socketpairs   %" PRIu64 "  (socketpair(AF_UNIX) made)\n", cn.socketpairs);
	put(o, "  unix named    %" PRIu64 "  (AF_UNIX connections by name; %u names listened "
	    "on now; %" PRIu64 " freed unclaimed: connector died before connecting)\n",
	    cn.unix_connected, cn.unix_listeners, cn.unix_unconnected);
	put(o, "  remote        %" PRIu64 " out, %" PRIu64 " in  (across hosts, over RDMA)\n",
	    cn.remote_out, cn.remote_in);
	put(o, "lanes           %u now, %" PRIu64 " made  (connection setup without the monitor)\n",
	    cn.lanes, cn.lanes_made);
	put(o, "  kits          %" PRIu64 "  (connections made ahead of need for a lane)\n",
	    cn.kits);
	put(o, "  kits unused   %" PRIu64 "  (never reached their listener)\n", cn.kits_unused);
	put(o, "  kits requeued %" PRIu64 "  (received, not accepted: back to the backlog)\n",
	    cn.kits_requeued);
	put(o, "  regions reused %" PRIu64 "  (a lane's kit in a region its pair used before)\n",
	    cn.regions_reused);
	put(o, "  closed early  %" PRIu64 "  (ends seen closed in a lane region before their "
	    "CLOSE)\n", cn.closed_early);
	put(o, "fallbacks       %" PRIu64 "  (connections on the kernel, as processes reported)\n",
	    fb_total);
	for (k = 1; k <= IPCD_FB_MAX; k++)
		put(o, "  %-24s %" PRIu64 "\n", fallback_reason_name(k), fb[k]);
	put(o, "  %-24s %" PRIu64 "  (malformed reports refused)\n", "invalid", fb[0]);
	put(o, "cluster         %u hosts, %u links up, %u processes with an RDMA channel\n",
	    cl.hosts, cl.up, cl.chans);
	put(o, "  connects      %" PRIu64 " sent, %" PRIu64 " refused or unanswered\n",
	    cl.connects, cl.refused);
	put(o, "  messages      %" PRIu64 " forwarded, %" PRIu64 " delivered, %" PRIu64
	    " dropped\n", cl.msgs_fwd, cl.msgs_in, cl.msgs_dropped);
}

/*
 * The cluster: each host and its link, then each process with an RDMA
 * channel and what its engine says of itself (untrusted, informational).
 */
static void q_cluster(struct out *o, const struct ucred *who)
{
	const char *name, *addr;
	bool up, self, first = true;
	uint16_t port;
	uint32_t h, s;

	if (o->json)
		put(o, "{\"hosts\":[");
	else
		put(o, "%-4s %-16s %-40s %6s  %s\n", "HOST", "NAME", "ADDRESS", "PORT", "LINK");
	for (h = 1; cluster_host(h, &name, &addr, &port, &up, &self); h++) {
		char esc[2 * IPCD_NAME_MAX + 2];

		if (o->json)
			put(o, "%s{\"host\":%u,\"name\":\"%s\",\"addr\":\"%s\",\"port\":%u,"
			    "\"self\":%s,\"up\":%s}", h > 1 ? "," : "", h,
			    jstr(name, esc, sizeof(esc)), addr, port, self ? "true" : "false",
			    up ? "true" : "false");
		else
			put(o, "%-4u %-16s %-40s %6u  %s\n", h, name, addr, port,
			    self ? "(this host)" : up ? "up" : "down");
	}
	if (o->json)
		put(o, "],\"processes\":[");
	else
		put(o, "\n%-8s %-16s %5s %6s %12s %14s %12s %10s %8s\n", "PID", "COMMAND", "QPS",
		    "CONNS", "WRITES", "TX-BYTES", "RX-EVENTS", "SLEEPS", "ERRORS");
	for (s = 0; s < mon.cfg.max_processes; s++) {
		const struct mon_client *c = mon.clients[s];
		const struct ipcd_client_ctl *ctl;
		struct ipcd_rdma_stats r;
		char esc[40];

		if (!c || c->state != CL_ACTIVE || !visible(who, c->uid))
			continue;
		ctl = ipcd_region_area(&c->reg, IPCD_AREA_CLIENT_CTL, NULL);
		memcpy(&r, &ctl->rdma, sizeof(r));	/* the process writes it as we read */
		if (!r.qps && !r.conns && !r.writes && !r.rx_events)
			continue;
		if (o->json) {
			put(o, "%s{\"pid\":%d,\"comm\":\"%s\",\"qps\":%u,\"conns\":%u,"
			    "\"writes\":%" PRIu64 ",\"tx_bytes\":%" PRIu64 ",\"rx_events\":%" PRIu64
			    ",\"sleeps\":%" PRIu64 ",\"errors\":%" PRIu64 "}", first ? "" : ",",
			    c->pid, jstr(c->comm, esc, sizeof(esc)), r.qps, r.conns, r.writes,
			    r.tx_bytes, r.rx_events, r.sleeps, r.errors);
		} else {
			put(o, "%-8d %-16s %5u %6u %12" PRIu64 " %14" PRIu64 " %12" PRIu64 " %10"
			    PRIu64 " %8" PRIu64 "\n", c->pid, c->comm, r.qps, r.conns, r.writes,
			    r.tx_bytes, r.rx_events, r.sleeps, r.errors);
		}
		first = false;
	}
	if (o->json)
		put(o, "]}\n");
}

static void q_queues(struct out *o, const struct ucred *who)
{
	if (mon.cfg.queue_mode == IPCD_QMODE_SHARED && !o->json)
		put(o, "doorbell queue  %u slots, depth %u, skipped %" PRIu64 ", corrupt %" PRIu64
		    "\n\n", mon.db.capacity, ipcd_mpsc_depth(&mon.db), mon.db.skipped,
		    mon.db.corrupt);
	q_processes(o, who, true);
}

void report_query(int sock, const struct ucred *cred, const struct ipcd_ctl_query *q)
{
	struct out o = { .sock = sock, .json = q->flags & IPCD_QF_JSON, .first = true };
	unsigned int turns;

	/*
	 * Serve what is queued first (bounded), lazy requests included (a
	 * CLOSE, KIT_ACCEPTED: they ring no doorbell), so that the answer
	 * reflects everything the processes did before the query.
	 */
	for (turns = 0; turns < 64; turns++)
		if (ipcd_reqq_srv_poll(mon.srv, MON_REQ_BUDGET) < MON_REQ_BUDGET)
			break;
	clients_reap_dead();
	switch (q->what) {
	case IPCD_Q_STATUS:
		q_status(&o);
		break;
	case IPCD_Q_PROCESSES:
		q_processes(&o, cred, false);
		break;
	case IPCD_Q_LISTENERS:
		q_listeners(&o, cred);
		break;
	case IPCD_Q_CONNECTIONS:
		q_connections(&o, cred);
		break;
	case IPCD_Q_COUNTERS:
		q_counters(&o);
		break;
	case IPCD_Q_QUEUES:
		q_queues(&o, cred);
		break;
	case IPCD_Q_CLUSTER:
		q_cluster(&o, cred);
		break;
	default:
		put(&o, "error: unknown query %u\n", q->what);
	}
	flush(&o);
	if (!o.failed)
		send(sock, "", 0, MSG_DONTWAIT | MSG_NOSIGNAL);
}
