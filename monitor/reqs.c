/* SPDX-License-Identifier: MIT */
/* reqs.c - the monitor's request handlers (requests arrive copied and sized). */
#include <errno.h>
#include <string.h>

#include "monitor.h"

static void respond(uint32_t slot, const struct ipcd_req *req, int32_t status,
		    const void *body, uint16_t len)
{
	struct ipcd_resp resp = {
		.opcode = req->opcode,
		.len = len,
		.status = status,
		.cookie = req->cookie,
	};
	int rc;

	if (len)
		memcpy(resp.body, body, len);
	/*
	 * drain() checked for room before handing us the request, so a failure
	 * is a response ring the client corrupted (-EPROTO) or closed (-EPIPE).
	 */
	rc = ipcd_reqq_srv_respond(mon.srv, slot, &resp);
	if (rc) {
		struct mon_client *c = clients_get(slot);

		log_warn("process %d (%s): cannot answer it (%s): disconnecting",
			 c ? c->pid : 0, c ? c->comm : "?", strerror(-rc));
		mon.ctr.faults++;
		clients_kill(slot, rc == -EPIPE ? "closed its response ring"
						: "corrupt response ring");
	}
}

void reqs_respond(struct mon_client *c, const struct ipcd_req *req, int32_t status,
		  const void *body, uint16_t len)
{
	respond(c->slot, req, status, body, len);
}

/* @c's request @req made or gave it connection @id (a CANCEL may undo it). */
static void made(struct mon_client *c, const struct ipcd_req *req, uint64_t id)
{
	c->made_op = req->opcode;
	c->made_cookie = req->cookie;
	c->made_conn = id;
}

static void op_nop(struct mon_client *c, const struct ipcd_req *req)
{
	respond(c->slot, req, 0, NULL, 0);
}

static void op_echo(struct mon_client *c, const struct ipcd_req *req)
{
	respond(c->slot, req, 0, req->body, req->len);
}

/*
 * Bodies are copied out of the request (already a private copy) into an
 * aligned struct; a wrong length is a protocol violation.
 */
static bool take_body(struct mon_client *c, const struct ipcd_req *req, void *out, size_t len)
{
	if (req->len != len) {
		log_warn("process %d (%s): opcode %u with a %u-byte body, expected %zu: "
			 "disconnecting", c->pid, c->comm, req->opcode, req->len, len);
		mon.ctr.faults++;
		clients_kill(c->slot, "malformed request body");
		return false;
	}
	memcpy(out, req->body, len);
	return true;
}

static void op_bind(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_ns_who who = { .owner = c->id, .uid = c->uid, .gid = c->gid };
	struct ipcd_bind_resp out = { 0 };
	struct ipcd_bind_req b;
	uint32_t flags = 0;
	int rc;

	if (!take_body(c, req, &b, sizeof(b)))
		return;
	if (b.flags & ~IPCD_BIND_FLAGS) {
		respond(c->slot, req, -EINVAL, NULL, 0);
		return;
	}
	if (b.flags & IPCD_BIND_PROBE) {
		/*
		 * The config's rules only: the kernel judges ports below 1024
		 * itself, with what it knows and we may not (user namespaces,
		 * ip_unprivileged_port_start).
		 */
		rc = b.port && !ipcd_config_bind_allowed(&mon.cfg, c->uid, c->gid, b.port) ? -EACCES
											: 0;
		if (rc)
			log_info("process %d (%s, uid %u): bind to port %u denied", c->pid, c->comm,
				 c->uid, b.port);
		respond(c->slot, req, rc, NULL, 0);
		return;
	}
	if (b.flags & IPCD_BIND_REUSEADDR)
		flags |= IPCD_NS_REUSEADDR;
	if (b.flags & IPCD_BIND_REUSEPORT)
		flags |= IPCD_NS_REUSEPORT;
	if (b.flags & IPCD_BIND_V6ONLY)
		flags |= IPCD_NS_V6ONLY;
	if (c->priv_ports)
		flags |= IPCD_NS_PRIV;
	rc = ipcd_ns_bind(mon.ns, &who, b.addr, b.port, flags, &mon.cfg, &out.id, &out.port);
	if (rc == -EACCES)
		log_info("process %d (%s, uid %u): bind to port %u denied", c->pid, c->comm,
			 c->uid, b.port);
	respond(c->slot, req, rc, rc ? NULL : &out, rc ? 0 : sizeof(out));
}

/*
 * The first LISTEN of a bind sends the accept eventfd before the response; a
 * process whose control socket is full is cut off there and gets none.
 */
static void op_listen(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_listen_req l;
	int rc;

	if (req->len == IPCD_LISTEN_REQ_V35) {
		/* A library before 3.6: no kernel socket named (conns_listen refuses a first LISTEN). */
		memset(&l, 0, sizeof(l));
		memcpy(&l, req->body, IPCD_LISTEN_REQ_V35);
		l.kfd = -1;
	} else if (!take_body(c, req, &l, sizeof(l))) {
		return;
	}
	rc = conns_listen(c, &l);
	if (c->state == CL_ACTIVE)
		respond(c->slot, req, rc, NULL, 0);
}

static void op_unbind(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_unbind_req u;

	if (!take_body(c, req, &u, sizeof(u)))
		return;
	conns_unbind(c, u.id);	/* its backlog first: the bind's index is still valid */
	respond(c->slot, req, ipcd_ns_unbind(mon.ns, c->id, u.id), NULL, 0);
}

/*
 * CONNECT and ACCEPT send the region's fd on the control socket before the
 * response; a process whose control socket is full is cut off there instead
 * (conns.c), and gets no response.
 */
static void op_connect(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_conn_resp out;
	struct ipcd_connect_req r;
	int rc;

	if (!take_body(c, req, &r, sizeof(r)))
		return;
	/* Another cluster host's address: answered when that host's monitor has. */
	if (cluster_connect(c, req, &r))
		return;
	rc = conns_connect(c, &r, &out);
	if (!rc)
		made(c, req, out.conn_id);
	if (c->state == CL_ACTIVE)
		respond(c->slot, req, rc, rc ? NULL : &out, rc ? 0 : sizeof(out));
	conns_refill();		/* the next CONNECT's region, once this one is answered */
}

static void op_accept(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_conn_resp out;
	struct ipcd_accept_req r;
	int rc;

	if (!take_body(c, req, &r, sizeof(r)))
		return;
	rc = conns_accept(c, &r, &out);
	if (!rc)
		made(c, req, out.conn_id);
	if (c->state == CL_ACTIVE)
		respond(c->slot, req, rc, rc ? NULL : &out, rc ? 0 : sizeof(out));
}

/* PAIR sends the region's fds before the response, as CONNECT does. */
static void op_pair(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_conn_resp out;
	struct ipcd_pair_req r;
	int rc;

	if (!take_body(c, req, &r, sizeof(r)))
		return;
	rc = conns_pair(c, &r, &out);
	if (!rc)
		made(c, req, out.conn_id);
	if (c->state == CL_ACTIVE)
		respond(c->slot, req, rc, rc ? NULL : &out, rc ? 0 : sizeof(out));
	conns_refill();
}

static void op_ulisten(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_ulisten_req r;

	if (take_body(c, req, &r, sizeof(r)))
		respond(c->slot, req, conns_ulisten(c, &r), NULL, 0);
}

/* UCONNECT and UCLAIM send the region's fds before the response, as CONNECT does. */
static void op_uconnect(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_uconnect_resp out;
	struct ipcd_uconnect_req r;
	int rc;

	if (!take_body(c, req, &r, sizeof(r)))
		return;
	rc = conns_uconnect(c, &r, &out);
	if (!rc)
		made(c, req, out.conn_id);
	if (c->state == CL_ACTIVE)
		respond(c->slot, req, rc, rc ? NULL : &out, rc ? 0 : sizeof(out));
	conns_refill();
}

static void op_uclaim(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_conn_resp out;
	struct ipcd_uclaim_req r;
	int rc;

	if (!take_body(c, req, &r, sizeof(r)))
		return;
	rc = conns_uclaim(c, &r, &out);
	if (!rc)
		made(c, req, out.conn_id);
	if (c->state == CL_ACTIVE)
		respond(c->slot, req, rc, rc ? NULL : &out, rc ? 0 : sizeof(out));
}

static void op_uconnected(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_uconnected_req r;

	if (take_body(c, req, &r, sizeof(r)))
		respond(c->slot, req, conns_uconnected(c, &r), NULL, 0);
}

static void op_cancel(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_cancel_req r;

	if (!take_body(c, req, &r, sizeof(r)))
		return;
	if (c->made_cookie == r.cookie && c->made_op)
		conns_cancel(c, c->made_op, c->made_conn);
	c->made_op = 0;
	respond(c->slot, req, 0, NULL, 0);
}

static void op_close(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_close_req r;

	if (take_body(c, req, &r, sizeof(r)))
		respond(c->slot, req, conns_close(c, &r), NULL, 0);
}

/*
 * Sent without waiting for the answer, and informational: a malformed one
 * (even of the wrong size) is answered -EINVAL, not punished.
 */
static void op_fallback(struct mon_client *c, const struct ipcd_req *req)
{
	respond(c->slot, req, fallback_record(c, req->body, req->len), NULL, 0);
}

/* KITS sends each kit's fds before the response, as CONNECT does. */
static void op_kits(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_kits_resp out;
	struct ipcd_kits_req r;
	int rc;

	if (!take_body(c, req, &r, sizeof(r)))
		return;
	rc = conns_kits(c, &r, &out);
	if (c->state == CL_ACTIVE)
		respond(c->slot, req, rc, rc ? NULL : &out, rc ? 0 : sizeof(out));
	conns_refill();
}

static void op_lane_done(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_lane_done_req r;

	if (take_body(c, req, &r, sizeof(r)))
		respond(c->slot, req, conns_lane_done(c, &r), NULL, 0);
}

static void op_kit_accepted(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_kit_accepted_req r;

	if (take_body(c, req, &r, sizeof(r)))
		respond(c->slot, req, conns_kit_accepted(c, &r), NULL, 0);
}

/* HOLD and REGION send their fd before the response, as CONNECT sends its fds. */
static void op_hold(struct mon_client *c, const struct ipcd_req *req)
{
	struct ipcd_hold_req r;
	int rc;

	if (!take_body(c, req, &r, sizeof(r)))
		return;
	rc = req->opcode == IPCD_OP_HOLD ? conns_hold(c, &r) : conns_region(c, &r);
	if (c->state == CL_ACTIVE)
		respond(c->slot, req, rc, NULL, 0);
}

typedef void (*op_fn)(struct mon_client *c, const struct ipcd_req *req);

static const op_fn ops_table[IPCD_OP_MAX + 1] = {
	[IPCD_OP_NOP] = op_nop,
	[IPCD_OP_ECHO] = op_echo,
	[IPCD_OP_BIND] = op_bind,
	[IPCD_OP_LISTEN] = op_listen,
	[IPCD_OP_KITS] = op_kits,
	[IPCD_OP_LANE_DONE] = op_lane_done,
	[IPCD_OP_KIT_ACCEPTED] = op_kit_accepted,
	[IPCD_OP_HOLD] = op_hold,
	[IPCD_OP_REGION] = op_hold,
	[IPCD_OP_PAIR] = op_pair,
	[IPCD_OP_ULISTEN] = op_ulisten,
	[IPCD_OP_UCONNECT] = op_uconnect,
	[IPCD_OP_UCLAIM] = op_uclaim,
	[IPCD_OP_UCONNECTED] = op_uconnected,
	[IPCD_OP_CANCEL] = op_cancel,
	[IPCD_OP_UNBIND] = op_unbind,
	[IPCD_OP_CONNECT] = op_connect,
	[IPCD_OP_ACCEPT] = op_accept,
	[IPCD_OP_CLOSE] = op_close,
	[IPCD_OP_FALLBACK] = op_fallback,
	[IPCD_OP_RATTACH] = cluster_rattach,
};

static void on_request(void *arg, uint32_t slot, const struct ipcd_req *req)
{
	struct mon_client *c = clients_get(slot);

	(void)arg;
	if (!c || c->state != CL_ACTIVE)
		return;
	if (req->len > IPCD_REQ_BODY) {
		log_warn("process %d (%s): request opcode %u claims a %u-byte body (max %u): "
			 "disconnecting", c->pid, c->comm, req->opcode, req->len, IPCD_REQ_BODY);
		mon.ctr.faults++;
		clients_kill(slot, "malformed request");
		return;
	}
	if (req->opcode > IPCD_OP_MAX || !ops_table[req->opcode]) {
		c->reqs[0]++;
		mon.ctr.ops[0]++;
		/* A newer library may know opcodes we do not: that is not hostile. */
		if (c->abi_minor > IPCD_SHM_ABI_MINOR) {
			respond(slot, req, -ENOSYS, NULL, 0);
			return;
		}
		log_warn("process %d (%s): unknown request opcode %u from a library of ABI "
			 "%u.%u: disconnecting", c->pid, c->comm, req->opcode, IPCD_SHM_ABI_MAJOR,
			 c->abi_minor);
		mon.ctr.faults++;
		clients_kill(slot, "unknown request opcode");
		return;
	}
	c->reqs[req->opcode]++;
	mon.ctr.ops[req->opcode]++;
	ops_table[req->opcode](c, req);
}

static void on_fault(void *arg, uint32_t slot, int err)
{
	struct mon_client *c = clients_get(slot);

	(void)arg;
	if (!c)
		return;
	log_warn("process %d (%s): its request ring is corrupt (%s): disconnecting", c->pid,
		 c->comm, strerror(-err));
	mon.ctr.faults++;
	clients_kill(slot, "corrupt request ring");
}

const struct ipcd_reqq_ops reqs_ops = {
	.request = on_request,
	.fault = on_fault,
};
