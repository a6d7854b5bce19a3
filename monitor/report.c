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
	struct conns_stats cn;

	conns_get_stats(&cn);

	if (o->json) {
		put(o, "{\"pid\":%d,\"uptime_s\":%.1f,\"abi\":\"%u.%u\",\"queue_mode\":\"%s\","
		    "\"core\":%d,\"spin_us\":%u,\"processes\":%u,\"max_processes\":%u,"
		    "\"binds\":%u,\"connections\":%u,\"socket\":\"%s\",\"config\":\"%s\","
		    "\"log_level\":\"%s\","
		    "\"heartbeat\":%" PRIu64 "}\n",
		    (int)getpid(), up, IPCD_SHM_ABI_MAJOR, IPCD_SHM_ABI_MINOR,
		    ipcd_reqq_mode_name(c->queue_mode), c->core, c->spin_us, mon.n_clients,
		    c->max_processes, listeners, cn.active, mon.sock_path,
		    mon.config_path ? mon.config_path : "<embedded default>",
		    ipcd_log_level_name(c->log_level), mon.gctl->heartbeat);
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
	put(o, "connections    %u of %u\n", cn.active, cn.max);
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
		put(o, "%-8s %-16s %6s %6s %6s %10s %12s\n", "PID", "COMMAND", "UID", "SLOT", "ID",
		    "AGE(s)", "REQUESTS");
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
			    "\"req_depth\":%" PRIu64 ",\"resp_depth\":%" PRIu64 "}",
			    c->pid, jstr(c->comm, esc, sizeof(esc)), c->uid, c->gid, c->slot, c->id,
			    (double)(now - c->since_ns) / 1e9, total, ring_depth(&c->chan.req),
			    ring_depth(&c->chan.resp));
		} else if (queues) {
			put(o, "%-8d %-16s %6u %10" PRIu64 " %10" PRIu64 " %12" PRIu64
			    " %12" PRIu64 "\n", c->pid, c->comm, c->slot, ring_depth(&c->chan.req),
			    ring_depth(&c->chan.resp),
			    ipcd_load_relaxed(&c->chan.req.shm->cons_msgs),
			    ipcd_load_relaxed(&c->chan.resp.shm->prod_msgs));
		} else {
			put(o, "%-8d %-16s %6u %6u %6" PRIu64 " %10.1f %12" PRIu64 "\n", c->pid,
			    c->comm, c->uid, c->slot, c->id, (double)(now - c->since_ns) / 1e9,
			    total);
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

/* One text row per end, as ss(8) lists both sockets of a loopback connection. */
static void conn_row(struct out *o, const struct conns_entry *e, bool b_side)
{
	char l[INET6_ADDRSTRLEN + 10], p[INET6_ADDRSTRLEN + 10], bo[24] = "?", bi[24] = "?";

	ep_str(b_side ? e->b_addr : e->a_addr, b_side ? e->b_port : e->a_port, l, sizeof(l));
	ep_str(b_side ? e->a_addr : e->b_addr, b_side ? e->a_port : e->b_port, p, sizeof(p));
	if (e->bytes_known) {
		snprintf(bo, sizeof(bo), "%" PRIu64, b_side ? e->b2a_bytes : e->a2b_bytes);
		snprintf(bi, sizeof(bi), "%" PRIu64, b_side ? e->a2b_bytes : e->b2a_bytes);
	}
	put(o, "%-12" PRIu64 " %-4s %-26s %-26s %8d %-12s %-11s %12s %12s\n", e->id,
	    b_side ? "B" : "A", l, p, (int)(b_side ? e->b_pid : e->a_pid),
	    conns_state_name(e->state), "yes", bo, bi);
}

/*
 * Every accelerated connection one of whose ends @who may see; A connected,
 * B accepted (until then, B is the listener). Bytes are the rings'
 * prod_bytes, read with pread() from the memfd (no mapping): written by the
 * endpoints, so informational only.
 */
static void q_connections(struct out *o, const struct ucred *who)
{
	char a[INET6_ADDRSTRLEN + 10], b[INET6_ADDRSTRLEN + 10];
	struct conns_entry e;
	uint32_t cursor = 0;

	if (o->json)
		put(o, "[");
	else
		put(o, "%-12s %-4s %-26s %-26s %8s %-12s %-11s %12s %12s\n", "ID", "SIDE", "LOCAL",
		    "PEER", "PID", "STATE", "ACCELERATED", "BYTES-OUT", "BYTES-IN");
	while (conns_next(&cursor, &e)) {
		if (!visible(who, e.a_uid) && !visible(who, e.b_uid))
			continue;
		if (!o->json) {
			conn_row(o, &e, false);
			conn_row(o, &e, true);
			continue;
		}
		ep_str(e.a_addr, e.a_port, a, sizeof(a));
		ep_str(e.b_addr, e.b_port, b, sizeof(b));
		elem(o);
		put(o, "{\"id\":%" PRIu64 ",\"a\":\"%s\",\"a_pid\":%d,\"b\":\"%s\",\"b_pid\":%d,"
		    "\"state\":\"%s\",\"accelerated\":true,\"reset_a\":%s,\"reset_b\":%s", e.id,
		    a, (int)e.a_pid, b, (int)e.b_pid, conns_state_name(e.state),
		    e.reset & IPCD_CONN_RESET_A ? "true" : "false",
		    e.reset & IPCD_CONN_RESET_B ? "true" : "false");
		if (e.bytes_known)
			put(o, ",\"a2b_bytes\":%" PRIu64 ",\"b2a_bytes\":%" PRIu64 "}", e.a2b_bytes,
			    e.b2a_bytes);
		else
			put(o, ",\"a2b_bytes\":null,\"b2a_bytes\":null}");
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
		[IPCD_OP_CLOSE] = "close",
	};
	struct ipcd_reqq_stats st;
	struct conns_stats cn;
	unsigned int k;

	ipcd_reqq_srv_stats(mon.srv, &st);
	conns_get_stats(&cn);
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
		    "}}\n", cn.active, cn.created, cn.accepted, cn.closed, cn.freed, cn.dead_ends,
		    cn.reset, cn.refused, cn.backlog_full, cn.no_room, cn.fd_faults);
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
	put(o, "  fd faults     %" PRIu64 "  (processes cut off: control socket not read)\n",
	    cn.fd_faults);
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
	default:
		put(&o, "error: unknown query %u\n", q->what);
	}
	flush(&o);
	if (!o.failed)
		send(sock, "", 0, MSG_DONTWAIT | MSG_NOSIGNAL);
}
