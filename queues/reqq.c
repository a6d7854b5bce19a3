/* SPDX-License-Identifier: MIT */
/* reqq.c - request channels and the monitor's request server in both modes. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <ipcd/reqq.h>

#define CLIENT_BATCH	16u		/* requests per client per turn (fairness) */
#define DB_BATCH	32u		/* doorbells per dequeue */
#define SWEEP_NS	10000000ull	/* shared mode: full scan at least this often */
/*
 * A client whose response ring was full is looked at again this often: it
 * does not tell us when it has read its responses (that would cost every
 * client a check on every receive), so while any client is in that state the
 * server never sleeps longer than this.
 */
#define BP_RECHECK_NS	1000000ull

/* Doorbell payload: slot in the low 16 bits, low 16 bits of its generation above. */
#define DB_PACK(slot, gen)	((uint32_t)(slot) | (uint32_t)(gen) << 16)
#define DB_SLOT(v)		((v) & 0xffffu)
#define DB_GEN(v)		((v) >> 16)

enum client_state { CLIENT_FREE, CLIENT_ACTIVE, CLIENT_FAULTED };

struct client {
	struct ipcd_reqq_chan *chan;
	uint32_t gen;
	uint8_t state;		/* enum client_state */
	uint8_t queued;		/* shared mode: on the run queue */
	uint8_t bp;		/* its response ring was full at its last turn */
	uint8_t final;		/* ipcd_reqq_srv_drain_final(): answers may be dropped */
	uint32_t active_idx;	/* position in srv->active[] */
};

/*
 * A backend is how the server discovers work: chosen once, at creation
 * (nginx's actions table), never by branching in the poll loop.
 *  poll:        handle up to @budget requests;
 *  busy:        cheap "is there work?" for the spin phase of a wait;
 *  sleep_bound: after every client was told we sleep, 0 if there is work,
 *               else how long we may sleep (-1: until woken).
 */
struct reqq_backend {
	const char *name;
	unsigned int (*poll)(struct ipcd_reqq_srv *srv, unsigned int budget);
	bool (*busy)(const struct ipcd_reqq_srv *srv);
	int64_t (*sleep_bound)(struct ipcd_reqq_srv *srv);
};

struct ipcd_reqq_srv {
	const struct reqq_backend *be;
	uint32_t mode;
	uint32_t max_clients;
	struct client *clients;
	uint32_t *active;	/* dense list of active slots */
	uint32_t n_active;
	uint32_t cursor;	/* per-process: next position in active[] */
	uint32_t next_free;	/* hint for ipcd_reqq_srv_add */
	uint32_t *runq;		/* shared: clients with requests left after their turn */
	uint32_t runq_head;
	uint32_t runq_len;
	uint32_t n_bp;		/* clients with bp set */
	uint64_t last_sweep;
	bool sweep_now;		/* shared: a wait found work without a doorbell */
	int wake_fd;		/* eventfd the clients signal */
	struct ipcd_mpsc *db;
	const struct ipcd_reqq_ops *ops;
	void *arg;
	struct ipcd_reqq_stats st;
};

const char *ipcd_reqq_mode_name(uint32_t mode)
{
	switch (mode) {
	case IPCD_QMODE_PER_PROCESS:
		return "per-process";
	case IPCD_QMODE_SHARED:
		return "shared";
	default:
		return NULL;
	}
}

/* ---- channels ----------------------------------------------------------- */

int ipcd_reqq_chan_create(uint32_t ring_bytes, struct ipcd_region *reg,
			  struct ipcd_reqq_chan *chan)
{
	size_t sizes[3] = {
		[IPCD_AREA_CLIENT_CTL] = sizeof(struct ipcd_client_ctl),
		[IPCD_AREA_CLIENT_REQ] = ipcd_spsc_mem_size(ring_bytes),
		[IPCD_AREA_CLIENT_RESP] = ipcd_spsc_mem_size(ring_bytes),
	};
	int rc;

	if (!IPCD_IS_POW2(ring_bytes) || ring_bytes < 4 * sizeof(struct ipcd_req))
		return -EINVAL;
	rc = ipcd_region_create("ipcd-client", IPCD_REGION_CLIENT, sizes, 3, reg);
	if (rc)
		return rc;
	rc = ipcd_spsc_init(ipcd_region_area(reg, IPCD_AREA_CLIENT_REQ, NULL), ring_bytes,
			    sizeof(struct ipcd_req), 0);
	if (!rc)
		rc = ipcd_spsc_init(ipcd_region_area(reg, IPCD_AREA_CLIENT_RESP, NULL),
				    ring_bytes, sizeof(struct ipcd_resp), 0);
	if (rc)
		goto err_close;
	ipcd_region_publish(reg);
	rc = ipcd_reqq_chan_attach(reg, chan);
	if (rc)
		goto err_close;
	return 0;

err_close:
	ipcd_region_close(reg);
	return rc;
}

int ipcd_reqq_chan_attach(const struct ipcd_region *reg, struct ipcd_reqq_chan *chan)
{
	size_t ctl_size, req_size, resp_size;
	void *ctl, *req, *resp;
	int rc;

	if (reg->hdr.kind != IPCD_REGION_CLIENT)
		return -EPROTO;
	ctl = ipcd_region_area(reg, IPCD_AREA_CLIENT_CTL, &ctl_size);
	req = ipcd_region_area(reg, IPCD_AREA_CLIENT_REQ, &req_size);
	resp = ipcd_region_area(reg, IPCD_AREA_CLIENT_RESP, &resp_size);
	if (!ctl || !req || !resp || ctl_size < sizeof(struct ipcd_client_ctl))
		return -EPROTO;
	memset(chan, 0, sizeof(*chan));
	chan->ctl = ctl;
	rc = ipcd_spsc_attach(&chan->req, req, req_size);
	if (!rc)
		rc = ipcd_spsc_attach(&chan->resp, resp, resp_size);
	if (rc)
		return rc;
	/* Fixed-size envelopes: anything else is a hostile or foreign ring. */
	if (chan->req.max_msg != sizeof(struct ipcd_req) ||
	    chan->resp.max_msg != sizeof(struct ipcd_resp) ||
	    (chan->req.flags | chan->resp.flags) & IPCD_SPSC_F_STREAM)
		return -EPROTO;
	return 0;
}

/* ---- client side -------------------------------------------------------- */

int ipcd_reqq_submit(struct ipcd_reqq_client *cl, const struct ipcd_req *req)
{
	struct ipcd_client_ctl *ctl = cl->chan.ctl;
	int rc;

	rc = ipcd_spsc_send(&cl->chan.req, req, sizeof(*req));
	if (rc)
		return rc;
	if (cl->db) {
		uint32_t v;

		/*
		 * At most one doorbell in flight: if one is, the monitor will
		 * drain our ring after clearing the flag, and sees this request.
		 * The full barrier of xchg orders it after the send.
		 */
		if (ipcd_xchg(&ctl->doorbell_pending, 1) != 0)
			return 0;
		v = DB_PACK(ipcd_load_relaxed(&ctl->slot), ipcd_load_relaxed(&ctl->gen));
		/*
		 * A full or jammed queue loses only the doorbell, not the
		 * request: the monitor's periodic sweep finds it. Clear the
		 * flag so the next submit tries to ring again.
		 */
		if (ipcd_mpsc_push(cl->db, v))
			ipcd_store_release(&ctl->doorbell_pending, 0);
	}
	if (ipcd_doorbell_take(&ctl->mon_wait) && cl->wake_fd >= 0)
		ipcd_eventfd_signal(cl->wake_fd);
	return 0;
}

int ipcd_reqq_submit_lazy(struct ipcd_reqq_client *cl, const struct ipcd_req *req)
{
	int rc;

	/* Past half full: ring now, so that a lazy request never waits on a full ring. */
	if (!ipcd_spsc_writable(&cl->chan.req, cl->chan.req.capacity / 2))
		return ipcd_reqq_submit(cl, req);
	rc = ipcd_spsc_send(&cl->chan.req, req, sizeof(*req));
	return rc;
}

int ipcd_reqq_call(struct ipcd_reqq_client *cl, struct ipcd_req *req, struct ipcd_resp *resp,
		   uint64_t spin_ns, int64_t timeout_ns)
{
	uint64_t deadline = ipcd_deadline(timeout_ns);
	int rc;

	req->cookie = ++cl->next_cookie;
	while ((rc = ipcd_reqq_submit(cl, req)) == -EAGAIN) {
		int64_t left = ipcd_remaining(deadline);

		if (left == 0)
			return -ETIMEDOUT;
		rc = ipcd_spsc_wait_writable(&cl->chan.req, sizeof(*req), spin_ns, left);
		if (rc && rc != -ETIMEDOUT)
			return rc;
	}
	if (rc)
		return rc;
	for (;;) {
		ssize_t n = ipcd_spsc_recv(&cl->chan.resp, resp, sizeof(*resp));
		int64_t left;

		if (n == (ssize_t)sizeof(*resp)) {
			if (resp->cookie == req->cookie)
				return 0;
			continue;	/* an answer to a call that timed out earlier */
		}
		if (n >= 0)
			return -EPROTO;
		if (n != -EAGAIN)
			return (int)n;
		left = ipcd_remaining(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		rc = ipcd_spsc_wait_readable(&cl->chan.resp, spin_ns, left);
		if (rc && rc != -ETIMEDOUT)
			return rc;
	}
}

/* ---- server: common ----------------------------------------------------- */

static void client_fault(struct ipcd_reqq_srv *srv, uint32_t slot, int err)
{
	srv->clients[slot].state = CLIENT_FAULTED;
	srv->st.faults++;
	if (srv->ops->fault)
		srv->ops->fault(srv->arg, slot, err);
}

/*
 * Serve up to @budget requests of one client. Requests are copied out of the
 * ring before any field is read. A client whose response ring is full is
 * left alone until it reads its responses: the monitor never blocks on one.
 */
static unsigned int drain(struct ipcd_reqq_srv *srv, uint32_t slot, unsigned int budget)
{
	struct client *c = &srv->clients[slot];
	struct ipcd_reqq_chan *chan = c->chan;
	unsigned int n = 0;

	while (n < budget && c->state == CLIENT_ACTIVE) {
		struct ipcd_req req;
		ssize_t len;

		if (!ipcd_spsc_readable(&chan->req))
			break;
		if (!c->final && !ipcd_spsc_writable(&chan->resp, sizeof(struct ipcd_resp))) {
			srv->st.backpressure++;
			if (!c->bp) {
				c->bp = 1;
				srv->n_bp++;
			}
			break;
		}
		if (c->bp) {
			c->bp = 0;
			srv->n_bp--;
		}
		len = ipcd_spsc_recv(&chan->req, &req, sizeof(req));
		if (len == -EAGAIN || len == -EPIPE)
			break;
		if (len != (ssize_t)sizeof(req)) {
			client_fault(srv, slot, len < 0 ? (int)len : -EMSGSIZE);
			break;
		}
		srv->st.requests++;
		n++;
		srv->ops->request(srv->arg, slot, &req);
	}
	return n;
}

/*
 * Work the server can do now. A client whose response ring is full has none:
 * otherwise a client that stops reading responses would keep the monitor
 * spinning. It is served again when it rings, or by the next periodic pass.
 */
static bool client_has_work(const struct ipcd_reqq_srv *srv, uint32_t slot)
{
	const struct client *c = &srv->clients[slot];

	return c->state == CLIENT_ACTIVE && ipcd_spsc_readable(&c->chan->req) &&
	       ipcd_spsc_writable(&c->chan->resp, sizeof(struct ipcd_resp));
}

/* O(clients): the per-process wait, and the shared mode's lost-doorbell check. */
static bool any_work(const struct ipcd_reqq_srv *srv)
{
	uint32_t i;

	for (i = 0; i < srv->n_active; i++)
		if (client_has_work(srv, srv->active[i]))
			return true;
	return false;
}

/* ---- backend: per-process (scan every channel, round robin) -------------- */

static unsigned int pp_poll(struct ipcd_reqq_srv *srv, unsigned int budget)
{
	unsigned int n = 0, visited;

	for (visited = 0; visited < srv->n_active && n < budget; visited++) {
		uint32_t slot;

		if (srv->cursor >= srv->n_active)
			srv->cursor = 0;
		slot = srv->active[srv->cursor++];
		n += drain(srv, slot, IPCD_MIN(CLIENT_BATCH, budget - n));
	}
	return n;
}

/*
 * A client with requests behind a full response ring is woken by nothing
 * (reading responses does not ring the monitor): re-check it periodically,
 * whether or not drain() saw it full (it stops at its batch budget too, and
 * the ring can fill with the last answer of a batch).
 */
static int64_t pp_sleep_bound(struct ipcd_reqq_srv *srv)
{
	bool blocked = srv->n_bp != 0;
	uint32_t i;

	for (i = 0; i < srv->n_active; i++) {
		const struct client *c = &srv->clients[srv->active[i]];

		if (c->state != CLIENT_ACTIVE || !ipcd_spsc_readable(&c->chan->req))
			continue;
		if (ipcd_spsc_writable(&c->chan->resp, sizeof(struct ipcd_resp)))
			return 0;
		blocked = true;
	}
	return blocked ? (int64_t)BP_RECHECK_NS : -1;
}

static const struct reqq_backend pp_backend = {
	.name = "per-process",
	.poll = pp_poll,
	.busy = any_work,
	.sleep_bound = pp_sleep_bound,
};

/* ---- backend: shared (doorbells in one multi-producer queue) ------------- */

static void runq_push(struct ipcd_reqq_srv *srv, uint32_t slot)
{
	struct client *c = &srv->clients[slot];

	if (c->queued)
		return;
	c->queued = 1;	/* each client at most once, so runq never overflows */
	srv->runq[(srv->runq_head + srv->runq_len++) % srv->max_clients] = slot;
}

static unsigned int serve(struct ipcd_reqq_srv *srv, uint32_t slot, unsigned int budget)
{
	unsigned int n = drain(srv, slot, budget);

	if (client_has_work(srv, slot))
		runq_push(srv, slot);
	return n;
}

/* Safety net for doorbells lost to a full or jammed queue: look at everyone. */
static unsigned int sh_sweep(struct ipcd_reqq_srv *srv, unsigned int budget)
{
	unsigned int n = 0;
	uint32_t i;

	srv->st.sweeps++;
	for (i = 0; i < srv->n_active && n < budget; i++)
		if (client_has_work(srv, srv->active[i]))
			n += serve(srv, srv->active[i], IPCD_MIN(CLIENT_BATCH, budget - n));
	return n;
}

static unsigned int sh_poll(struct ipcd_reqq_srv *srv, unsigned int budget)
{
	unsigned int n = 0, rounds = srv->runq_len, got, i;
	uint32_t db[DB_BATCH];
	uint64_t now;

	/* Leftovers first, one turn each, so a busy client cannot starve others. */
	while (rounds-- && n < budget) {
		uint32_t slot = srv->runq[srv->runq_head];

		srv->runq_head = (srv->runq_head + 1) % srv->max_clients;
		srv->runq_len--;
		srv->clients[slot].queued = 0;
		n += serve(srv, slot, IPCD_MIN(CLIENT_BATCH, budget - n));
	}
	got = ipcd_mpsc_dequeue_burst(srv->db, db, IPCD_MIN(DB_BATCH, budget), 0);
	for (i = 0; i < got; i++) {
		uint32_t slot = DB_SLOT(db[i]);
		struct client *c;

		/* Untrusted: anyone in shared mode can write any doorbell. */
		if (slot >= srv->max_clients || srv->clients[slot].state != CLIENT_ACTIVE ||
		    DB_GEN(db[i]) != (srv->clients[slot].gen & 0xffffu)) {
			srv->st.stale++;
			continue;
		}
		c = &srv->clients[slot];
		srv->st.doorbells++;
		/* Clear before draining: a request queued after this rings again. */
		ipcd_xchg(&c->chan->ctl->doorbell_pending, 0);
		if (n < budget)
			n += serve(srv, slot, IPCD_MIN(CLIENT_BATCH, budget - n));
		else if (client_has_work(srv, slot))
			runq_push(srv, slot);
	}
	if (n == 0 && got == 0) {
		now = ipcd_now_ns();
		if (srv->sweep_now || now - srv->last_sweep >= SWEEP_NS ||
		    (srv->n_bp && now - srv->last_sweep >= BP_RECHECK_NS)) {
			srv->sweep_now = false;
			srv->last_sweep = now;
			n += sh_sweep(srv, budget);
		}
	}
	return n;
}


static bool sh_busy(const struct ipcd_reqq_srv *srv)
{
	return srv->runq_len || ipcd_mpsc_ready(srv->db);
}

static int64_t sh_sleep_bound(struct ipcd_reqq_srv *srv)
{
	uint64_t now, since;

	if (sh_busy(srv))
		return 0;
	/* A claim not yet published: its producer may be dead. Time it. */
	if (ipcd_mpsc_claim_pending(srv->db))
		return (int64_t)IPCD_MAX(srv->db->skip_ns, 1);
	/*
	 * Every sweep period, look for requests whose doorbell was lost; more
	 * often while a client is held back by its full response ring.
	 */
	now = ipcd_now_ns();
	since = now - srv->last_sweep;
	if (since < (srv->n_bp ? BP_RECHECK_NS : SWEEP_NS))
		return (int64_t)((srv->n_bp ? BP_RECHECK_NS : SWEEP_NS) - since);
	srv->last_sweep = now;
	if (any_work(srv)) {
		srv->sweep_now = true;
		return 0;
	}
	return (int64_t)SWEEP_NS;
}

static const struct reqq_backend sh_backend = {
	.name = "shared",
	.poll = sh_poll,
	.busy = sh_busy,
	.sleep_bound = sh_sleep_bound,
};

/* ---- server: public ----------------------------------------------------- */

int ipcd_reqq_srv_create(uint32_t mode, uint32_t max_clients, struct ipcd_mpsc *db,
			 const struct ipcd_reqq_ops *ops, void *arg, struct ipcd_reqq_srv **out)
{
	struct ipcd_reqq_srv *srv;
	int rc;

	if (!ops || !ops->request || !out || max_clients == 0 ||
	    max_clients > IPCD_REQQ_MAX_CLIENTS)
		return -EINVAL;
	if (mode == IPCD_QMODE_SHARED && !db)
		return -EINVAL;
	if (mode != IPCD_QMODE_SHARED && mode != IPCD_QMODE_PER_PROCESS)
		return -EINVAL;

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->wake_fd < 0) {
		rc = -errno;
		free(srv);
		return rc;
	}
	srv->clients = calloc(max_clients, sizeof(*srv->clients));
	srv->active = calloc(max_clients, sizeof(*srv->active));
	srv->runq = calloc(max_clients, sizeof(*srv->runq));
	if (!srv->clients || !srv->active || !srv->runq) {
		ipcd_reqq_srv_destroy(srv);
		return -ENOMEM;
	}
	srv->be = mode == IPCD_QMODE_SHARED ? &sh_backend : &pp_backend;
	srv->mode = mode;
	srv->max_clients = max_clients;
	srv->db = db;
	srv->ops = ops;
	srv->arg = arg;
	srv->last_sweep = ipcd_now_ns();
	*out = srv;
	return 0;
}

void ipcd_reqq_srv_destroy(struct ipcd_reqq_srv *srv)
{
	if (!srv)
		return;
	close(srv->wake_fd);
	free(srv->runq);
	free(srv->active);
	free(srv->clients);
	free(srv);
}

int ipcd_reqq_srv_add(struct ipcd_reqq_srv *srv, struct ipcd_reqq_chan *chan, uint32_t *slot)
{
	uint32_t i, s;
	struct client *c;

	for (i = 0; i < srv->max_clients; i++) {
		s = (srv->next_free + i) % srv->max_clients;
		if (srv->clients[s].state == CLIENT_FREE && !srv->clients[s].queued)
			goto found;
	}
	return -ENOSPC;
found:
	c = &srv->clients[s];
	c->chan = chan;
	c->gen++;
	c->state = CLIENT_ACTIVE;
	c->active_idx = srv->n_active;
	srv->active[srv->n_active++] = s;
	srv->next_free = (s + 1) % srv->max_clients;
	ipcd_store_relaxed(&chan->ctl->slot, s);
	ipcd_store_relaxed(&chan->ctl->gen, c->gen & 0xffffu);
	ipcd_store_relaxed(&chan->ctl->doorbell_pending, 0);
	ipcd_store_relaxed(&chan->ctl->mon_wait, 0);
	if (slot)
		*slot = s;
	return 0;
}

void ipcd_reqq_srv_del(struct ipcd_reqq_srv *srv, uint32_t slot)
{
	struct client *c;
	uint32_t last;

	if (slot >= srv->max_clients || srv->clients[slot].state == CLIENT_FREE)
		return;
	c = &srv->clients[slot];
	if (c->bp) {
		c->bp = 0;
		srv->n_bp--;
	}
	/* Swap-remove from the dense active list. */
	last = srv->active[--srv->n_active];
	srv->active[c->active_idx] = last;
	srv->clients[last].active_idx = c->active_idx;
	c->state = CLIENT_FREE;
	c->chan = NULL;
	c->gen++;	/* doorbells still queued for the old owner become stale */
	/* A runq entry may remain; sh_poll's drain sees the slot is not active. */
}

unsigned int ipcd_reqq_srv_poll(struct ipcd_reqq_srv *srv, unsigned int budget)
{
	return srv->be->poll(srv, budget);
}

int ipcd_reqq_srv_respond(struct ipcd_reqq_srv *srv, uint32_t slot,
			  const struct ipcd_resp *resp)
{
	struct client *c;
	int rc;

	if (slot >= srv->max_clients || srv->clients[slot].state != CLIENT_ACTIVE)
		return -ENOENT;
	c = &srv->clients[slot];
	rc = ipcd_spsc_send(&c->chan->resp, resp, sizeof(*resp));
	return rc == -EAGAIN && c->final ? 0 : rc;	/* nobody will read it */
}

unsigned int ipcd_reqq_srv_drain_final(struct ipcd_reqq_srv *srv, uint32_t slot,
				       unsigned int budget)
{
	struct client *c;
	unsigned int n;

	if (slot >= srv->max_clients || srv->clients[slot].state != CLIENT_ACTIVE)
		return 0;
	c = &srv->clients[slot];
	c->final = 1;
	n = drain(srv, slot, budget);
	c->final = 0;
	return n;
}

int ipcd_reqq_srv_wake_fd(const struct ipcd_reqq_srv *srv)
{
	return srv->wake_fd;
}

int64_t ipcd_reqq_srv_prepare_sleep(struct ipcd_reqq_srv *srv)
{
	uint32_t i;

	for (i = 0; i < srv->n_active; i++)
		ipcd_store_relaxed(&srv->clients[srv->active[i]].chan->ctl->mon_wait, 1);
	ipcd_smp_mb();	/* S1: announcements before the re-check; pairs with W1 in submit */
	return srv->be->sleep_bound(srv);
}

void ipcd_reqq_srv_woken(struct ipcd_reqq_srv *srv)
{
	uint64_t n;

	while (read(srv->wake_fd, &n, sizeof(n)) == (ssize_t)sizeof(n))
		;
}

int ipcd_reqq_srv_wait(struct ipcd_reqq_srv *srv, uint64_t spin_ns, int64_t timeout_ns)
{
	uint64_t deadline = ipcd_deadline(timeout_ns);
	uint64_t end = spin_ns ? ipcd_now_ns() + spin_ns : 0;

	do {
		if (srv->be->busy(srv))
			return 0;
		ipcd_cpu_relax();
	} while (ipcd_now_ns() < end);

	for (;;) {
		struct pollfd pfd = { .fd = srv->wake_fd, .events = POLLIN };
		int64_t left = ipcd_remaining(deadline);
		int64_t bound = ipcd_reqq_srv_prepare_sleep(srv);
		struct timespec ts;
		int rc;

		if (bound == 0)
			return 0;
		if (left == 0)
			return -ETIMEDOUT;
		if (bound > 0 && (left < 0 || bound < left))
			left = bound;
		if (left >= 0) {
			ts.tv_sec = left / 1000000000;
			ts.tv_nsec = left % 1000000000;
		}
		rc = ppoll(&pfd, 1, left >= 0 ? &ts : NULL, NULL);
		if (rc < 0 && errno == EINTR)
			return -EINTR;
		if (rc > 0) {
			ipcd_reqq_srv_woken(srv);
			return 0;
		}
	}
}

void ipcd_reqq_srv_stats(const struct ipcd_reqq_srv *srv, struct ipcd_reqq_stats *st)
{
	*st = srv->st;
}
