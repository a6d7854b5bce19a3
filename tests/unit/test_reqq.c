/* SPDX-License-Identifier: MIT */
/* test_reqq.c - request channels and the request server, in both queue modes. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcd/proto.h>
#include <ipcd/reqq.h>

#include "t_helpers.h"

#define NCL		4		/* clients per fixture */
#define MAX_CLIENTS	8
#define RING		1024u		/* 14 requests fit */
#define DB_SLOTS	64u
#define MAX_LOG		4096
#define HANG_GUARD_NS	(30 * T_NSEC_PER_SEC)

/* Doorbell payload as reqq.c packs it: slot low 16 bits, generation above. */
#define DB(slot, gen)	((uint32_t)(slot) | (uint32_t)(gen) << 16)

struct tcl {
	struct ipcd_region reg;
	struct ipcd_reqq_chan schan;	/* the server's view */
	struct ipcd_reqq_client c;	/* the client's own view */
	uint32_t slot;
	uint64_t next_seq;
};

struct fx {
	uint32_t mode;
	struct ipcd_global_ctl *gctl;
	void *dbmem;
	struct ipcd_mpsc dbc;		/* server: consumer */
	struct ipcd_mpsc dbp;		/* clients: producers */
	struct ipcd_reqq_srv *srv;
	struct tcl cl[NCL];
	/* what the server saw */
	unsigned int n_req;
	struct {
		uint32_t slot;
		uint64_t cookie;
	} req[MAX_LOG];
	unsigned int n_fault;
	uint32_t fault_slot[16];
	int fault_err[16];
	bool respond;
	int respond_errors;
};

static uint32_t MODE_PP = IPCD_QMODE_PER_PROCESS;
static uint32_t MODE_SH = IPCD_QMODE_SHARED;

static void on_request(void *arg, uint32_t slot, const struct ipcd_req *req)
{
	struct fx *f = arg;

	if (f->n_req < MAX_LOG) {
		f->req[f->n_req].slot = slot;
		f->req[f->n_req].cookie = req->cookie;
		f->n_req++;
	}
	if (f->respond) {
		struct ipcd_resp resp;

		memset(&resp, 0, sizeof(resp));
		resp.opcode = req->opcode;
		resp.cookie = req->cookie;
		resp.len = req->len <= IPCD_REQ_BODY ? req->len : 0;
		memcpy(resp.body, req->body, resp.len);
		if (ipcd_reqq_srv_respond(f->srv, slot, &resp))
			f->respond_errors++;
	}
}

static void on_fault(void *arg, uint32_t slot, int err)
{
	struct fx *f = arg;

	if (f->n_fault < 16) {
		f->fault_slot[f->n_fault] = slot;
		f->fault_err[f->n_fault] = err;
	}
	f->n_fault++;
}

static const struct ipcd_reqq_ops ops = { .request = on_request, .fault = on_fault };

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	unsigned int i;

	if (!f)
		return -1;
	f->mode = *(uint32_t *)*state;
	*state = f;
	f->gctl = t_shm_alloc(sizeof(*f->gctl));
	f->gctl->queue_mode = f->mode;
	f->dbmem = t_shm_alloc(ipcd_mpsc_mem_size(DB_SLOTS));
	if (ipcd_mpsc_init(f->dbmem, DB_SLOTS) ||
	    ipcd_mpsc_attach(&f->dbc, f->dbmem, ipcd_mpsc_mem_size(DB_SLOTS), 200000) ||
	    ipcd_mpsc_attach(&f->dbp, f->dbmem, ipcd_mpsc_mem_size(DB_SLOTS), 0))
		return -1;
	if (ipcd_reqq_srv_create(f->mode, MAX_CLIENTS, f->mode == IPCD_QMODE_SHARED ? &f->dbc
				 : NULL, &ops, f, &f->srv))
		return -1;
	for (i = 0; i < NCL; i++) {
		struct tcl *c = &f->cl[i];

		if (ipcd_reqq_chan_create(RING, &c->reg, &c->schan) ||
		    ipcd_reqq_chan_attach(&c->reg, &c->c.chan) ||
		    ipcd_reqq_srv_add(f->srv, &c->schan, &c->slot))
			return -1;
		c->c.db = f->mode == IPCD_QMODE_SHARED ? &f->dbp : NULL;
		c->c.wake_fd = ipcd_reqq_srv_wake_fd(f->srv);
	}
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	unsigned int i;

	t_reap_all();
	ipcd_reqq_srv_destroy(f->srv);
	for (i = 0; i < NCL; i++)
		ipcd_region_close(&f->cl[i].reg);
	t_shm_free(f->dbmem, ipcd_mpsc_mem_size(DB_SLOTS));
	t_shm_free(f->gctl, sizeof(*f->gctl));
	free(f);
	return 0;
}

static void make_req(struct ipcd_req *r, uint32_t client, uint64_t seq)
{
	memset(r, 0, sizeof(*r));
	r->opcode = IPCD_OP_ECHO;
	r->len = 16;
	r->cookie = (uint64_t)client << 32 | seq;
	memcpy(r->body, &r->cookie, 8);
	memcpy(r->body + 8, "payload!", 8);
}

static int submit(struct fx *f, unsigned int i)
{
	struct tcl *c = &f->cl[i];
	struct ipcd_req r;
	int rc;

	make_req(&r, i, c->next_seq);
	rc = ipcd_reqq_submit(&c->c, &r);
	if (rc == 0)
		c->next_seq++;
	return rc;
}

/* Poll until @want requests have been seen in total, or a bounded time passes. */
static void poll_until(struct fx *f, unsigned int want)
{
	uint64_t deadline = ipcd_now_ns() + 5 * T_NSEC_PER_SEC;

	while (f->n_req < want && ipcd_now_ns() < deadline)
		if (ipcd_reqq_srv_poll(f->srv, 64) == 0)
			t_sleep_ms(1);
}

/* Poll a fixed number of times (sweeps included in shared mode). */
static void poll_some(struct fx *f, unsigned int rounds)
{
	unsigned int i;

	for (i = 0; i < rounds; i++)
		if (ipcd_reqq_srv_poll(f->srv, 64) == 0 && i % 8 == 0)
			t_sleep_ms(2);
}

/* How many requests the server handed up for @slot; checks their order. */
static unsigned int seen_for(struct fx *f, uint32_t slot, uint32_t client)
{
	unsigned int i, n = 0;

	for (i = 0; i < f->n_req; i++) {
		if (f->req[i].slot != slot)
			continue;
		assert_int_equal(f->req[i].cookie >> 32, client);	/* right owner */
		assert_int_equal((uint32_t)f->req[i].cookie, n);	/* in order, once */
		n++;
	}
	return n;
}

static void test_create_args(void **state)
{
	struct fx *f = *state;
	struct ipcd_reqq_srv *s;

	assert_int_equal(ipcd_reqq_srv_create(0, 4, &f->dbc, &ops, f, &s), -EINVAL);
	assert_int_equal(ipcd_reqq_srv_create(99, 4, &f->dbc, &ops, f, &s), -EINVAL);
	assert_int_equal(ipcd_reqq_srv_create(f->mode, 0, &f->dbc, &ops, f, &s), -EINVAL);
	assert_int_equal(ipcd_reqq_srv_create(f->mode, IPCD_REQQ_MAX_CLIENTS + 1, &f->dbc,
					      &ops, f, &s), -EINVAL);
	assert_int_equal(ipcd_reqq_srv_create(IPCD_QMODE_SHARED, 4, NULL, &ops, f, &s),
			 -EINVAL);
	assert_int_equal(ipcd_reqq_srv_create(f->mode, 4, &f->dbc, NULL, f, &s), -EINVAL);
	assert_string_equal(ipcd_reqq_mode_name(IPCD_QMODE_PER_PROCESS), "per-process");
	assert_string_equal(ipcd_reqq_mode_name(IPCD_QMODE_SHARED), "shared");
	assert_null(ipcd_reqq_mode_name(0));
	/* srv_add wrote each client's slot and generation into its ctl words. */
	assert_int_equal(f->cl[1].c.chan.ctl->slot, f->cl[1].slot);
	assert_int_not_equal(f->cl[1].c.chan.ctl->gen, 0);
}

static void test_requests_delivered(void **state)
{
	struct fx *f = *state;
	struct ipcd_resp resp;
	unsigned int i, k;

	f->respond = true;
	for (k = 0; k < 5; k++)
		for (i = 0; i < NCL; i++)
			assert_int_equal(submit(f, i), 0);
	poll_until(f, 5 * NCL);
	assert_int_equal(f->n_req, 5 * NCL);
	for (i = 0; i < NCL; i++) {
		assert_int_equal(seen_for(f, f->cl[i].slot, i), 5);
		for (k = 0; k < 5; k++) {
			assert_int_equal(ipcd_spsc_recv(&f->cl[i].c.chan.resp, &resp, sizeof(resp)),
					 sizeof(resp));
			assert_int_equal(resp.cookie, (uint64_t)i << 32 | k);
			assert_int_equal(resp.status, 0);
			assert_memory_equal(resp.body + 8, "payload!", 8);
		}
		assert_int_equal(ipcd_spsc_recv(&f->cl[i].c.chan.resp, &resp, sizeof(resp)),
				 -EAGAIN);
	}
	assert_int_equal(f->respond_errors, 0);
	assert_int_equal(f->n_fault, 0);
}

/* ---- round trips through a server thread (TSan sees this one) ------------ */

struct srv_thread {
	struct fx *f;
	int stop;
};

static void *srv_main(void *arg)
{
	struct srv_thread *t = arg;

	while (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
		if (ipcd_reqq_srv_poll(t->f->srv, 64) == 0)
			ipcd_reqq_srv_wait(t->f->srv, 0, 5 * T_NSEC_PER_MSEC);
	}
	return NULL;
}

static void test_call_roundtrip(void **state)
{
	struct fx *f = *state;
	struct srv_thread t = { .f = f };
	struct ipcd_req req;
	struct ipcd_resp resp;
	pthread_t th;
	unsigned int i;

	f->respond = true;
	assert_int_equal(pthread_create(&th, NULL, srv_main, &t), 0);
	for (i = 0; i < 500; i++) {
		int rc;

		make_req(&req, i % NCL, i);
		rc = ipcd_reqq_call(&f->cl[i % NCL].c, &req, &resp, 0, HANG_GUARD_NS);
		if (rc) {
			__atomic_store_n(&t.stop, 1, __ATOMIC_RELEASE);
			pthread_join(th, NULL);
			fail_msg("call %u: %d", i, rc);
		}
		assert_int_equal(resp.cookie, req.cookie);
		assert_int_equal(resp.status, 0);
		assert_int_equal(resp.len, 16);
		assert_memory_equal(resp.body, req.body, 16);
	}
	__atomic_store_n(&t.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	assert_int_equal(f->n_req, 500);
	assert_int_equal(f->respond_errors, 0);
}

/*
 * Shared mode: anyone can write any doorbell. Forged doorbells naming a
 * victim make the server look at the victim's ring, which holds only what
 * the victim wrote: no request may ever be reported for the victim.
 */
static void test_forged_doorbells(void **state)
{
	struct fx *f = *state;
	struct tcl *victim = &f->cl[0], *forger = &f->cl[1];
	uint32_t vs = victim->slot, vgen = victim->c.chan.ctl->gen;
	uint32_t free_slot = MAX_CLIENTS - 1;
	unsigned int i, stale = 0;

	if (f->mode != IPCD_QMODE_SHARED)
		skip();
	assert_true(free_slot >= NCL);		/* never added */
	f->respond = true;
	for (i = 0; i < 8; i++)			/* the victim's current name */
		assert_int_equal(ipcd_mpsc_enqueue(&f->dbp, DB(vs, vgen)), 0);
	for (i = 0; i < 4; i++, stale++)	/* an old generation */
		assert_int_equal(ipcd_mpsc_enqueue(&f->dbp, DB(vs, vgen - 1 - i)), 0);
	for (i = 0; i < 4; i++, stale++)	/* out of range */
		assert_int_equal(ipcd_mpsc_enqueue(&f->dbp, DB(MAX_CLIENTS + i, 1)), 0);
	for (i = 0; i < 4; i++, stale++)	/* never-used slot */
		assert_int_equal(ipcd_mpsc_enqueue(&f->dbp, DB(free_slot, i)), 0);
	assert_int_equal(ipcd_mpsc_enqueue(&f->dbp, UINT32_MAX), 0);
	stale++;
	poll_some(f, 50);
	assert_int_equal(f->n_req, 0);
	assert_int_equal(f->n_fault, 0);
	{
		struct ipcd_reqq_stats st;

		ipcd_reqq_srv_stats(f->srv, &st);
		assert_int_equal(st.stale, stale);
		assert_int_equal(st.requests, 0);
	}

	/* The forger's own requests carry the forger's slot; the victim's, the victim's. */
	assert_int_equal(submit(f, 1), 0);
	poll_until(f, 1);
	assert_int_equal(f->n_req, 1);
	assert_int_equal(f->req[0].slot, forger->slot);
	assert_int_equal(submit(f, 0), 0);
	assert_int_equal(ipcd_mpsc_enqueue(&f->dbp, DB(vs, vgen)), 0);	/* and a forged one */
	poll_until(f, 2);
	poll_some(f, 20);
	assert_int_equal(f->n_req, 2);
	assert_int_equal(seen_for(f, vs, 0), 1);
	assert_int_equal(seen_for(f, forger->slot, 1), 1);
}

/* A client that breaks the protocol is cut off; the others keep being served. */
static void run_fault(struct fx *f, bool wrong_size)
{
	struct tcl *bad = &f->cl[2];
	uint8_t junk[16] = "not a request";
	struct ipcd_reqq_stats st;
	unsigned int k;

	assert_int_equal(submit(f, 2), 0);		/* one good request first */
	if (wrong_size) {
		assert_int_equal(ipcd_spsc_send(&bad->c.chan.req, junk, 10), 0);
	} else {
		/* a header at the position the server reads next, with a length > max */
		struct ipcd_spsc *r = &bad->c.chan.req;
		uint32_t pos = r->shm->tail;

		__atomic_store_n((uint64_t *)(void *)(r->data + (pos & r->mask)),
				 __ipcd_rec_pack(1000, pos), __ATOMIC_RELEASE);
	}
	for (k = 0; k < 3; k++) {
		assert_int_equal(submit(f, 0), 0);
		assert_int_equal(submit(f, 3), 0);
	}
	if (wrong_size)
		assert_int_equal(submit(f, 2), 0);	/* rings; never served */
	else
		ipcd_eventfd_signal(ipcd_reqq_srv_wake_fd(f->srv));
	if (f->mode == IPCD_QMODE_SHARED && !wrong_size) {
		/* make sure a doorbell for the bad client is queued */
		assert_int_equal(ipcd_mpsc_enqueue(&f->dbp, DB(bad->slot,
							       bad->c.chan.ctl->gen)), 0);
	}
	poll_until(f, 7);
	poll_some(f, 30);
	assert_int_equal(f->n_fault, 1);
	assert_int_equal(f->fault_slot[0], bad->slot);
	assert_true(f->fault_err[0] < 0);
	if (!wrong_size)
		assert_int_equal(f->fault_err[0], -EPROTO);
	assert_int_equal(seen_for(f, bad->slot, 2), 1);
	assert_int_equal(seen_for(f, f->cl[0].slot, 0), 3);
	assert_int_equal(seen_for(f, f->cl[3].slot, 3), 3);

	/* Cut off for good: more requests and doorbells change nothing. */
	for (k = 0; k < 3; k++)
		(void)submit(f, 2);
	assert_int_equal(submit(f, 0), 0);
	poll_until(f, 8);
	poll_some(f, 30);
	assert_int_equal(seen_for(f, bad->slot, 2), 1);
	assert_int_equal(seen_for(f, f->cl[0].slot, 0), 4);
	assert_int_equal(f->n_fault, 1);
	ipcd_reqq_srv_stats(f->srv, &st);
	assert_int_equal(st.faults, 1);
}

static void test_fault_wrong_size(void **state)
{
	run_fault(*state, true);
}

static void test_fault_corrupt_ring(void **state)
{
	run_fault(*state, false);
}

/*
 * A client that does not read its responses is not served further (the
 * server never blocks on a full response ring), loses nothing, and does not
 * slow anyone else down.
 */
static void test_backpressure(void **state)
{
	struct fx *f = *state;
	struct ipcd_reqq_stats st;
	struct ipcd_resp resp;
	unsigned int n1 = 0, n2 = 0, k;

	f->respond = true;
	while (submit(f, 0) == 0)
		n1++;
	assert_true(n1 >= 4);
	poll_until(f, n1);
	assert_int_equal(seen_for(f, f->cl[0].slot, 0), n1);
	while (submit(f, 0) == 0)
		n2++;
	for (k = 0; k < 3; k++)
		assert_int_equal(submit(f, 1), 0);
	poll_until(f, n1 + 3);
	poll_some(f, 30);
	assert_int_equal(seen_for(f, f->cl[1].slot, 1), 3);
	ipcd_reqq_srv_stats(f->srv, &st);
	assert_true(st.backpressure > 0);
	assert_int_equal(f->respond_errors, 0);
	assert_true(seen_for(f, f->cl[0].slot, 0) < n1 + n2);

	/* Reading the responses releases the rest, in order. */
	for (k = 0; k < n1 + n2; k++) {
		uint64_t deadline = ipcd_now_ns() + 5 * T_NSEC_PER_SEC;
		struct ipcd_spsc *r = &f->cl[0].c.chan.resp;
		ssize_t n;

		while ((n = ipcd_spsc_recv(r, &resp, sizeof(resp))) == -EAGAIN &&
		       ipcd_now_ns() < deadline)
			poll_some(f, 1);
		assert_int_equal(n, sizeof(resp));
		assert_int_equal(resp.cookie, k);
	}
	assert_int_equal(seen_for(f, f->cl[0].slot, 0), n1 + n2);
	assert_int_equal(f->respond_errors, 0);
	assert_int_equal(f->n_fault, 0);
}

/*
 * A client that went away with its response ring full: drain_final() serves
 * everything it queued (the answers that do not fit are dropped, without an
 * error), which a normal poll would not (backpressure).
 */
static void test_drain_final(void **state)
{
	struct fx *f = *state;
	unsigned int n1 = 0, n2 = 0;

	f->respond = true;
	while (submit(f, 0) == 0)
		n1++;
	poll_until(f, n1);		/* every answer fits: the response ring is now full */
	while (submit(f, 0) == 0)
		n2++;
	assert_true(n2 >= 1);
	poll_some(f, 10);
	assert_int_equal(seen_for(f, f->cl[0].slot, 0), n1);	/* held back */
	assert_int_equal(ipcd_reqq_srv_drain_final(f->srv, f->cl[0].slot, 1000), n2);
	assert_int_equal(seen_for(f, f->cl[0].slot, 0), n1 + n2);
	assert_int_equal(f->respond_errors, 0);
	assert_int_equal(f->n_fault, 0);
	/* Bounded, and nothing for a slot that is not served. */
	assert_int_equal(ipcd_reqq_srv_drain_final(f->srv, f->cl[0].slot, 1000), 0);
	assert_int_equal(ipcd_reqq_srv_drain_final(f->srv, MAX_CLIENTS + 5, 1000), 0);
}

/*
 * The response ring fills with the last answer of a turn (the turn ended on
 * its budget, so the server never saw it full): requests remain, nothing will
 * ring the server, and it must still not sleep without a bound.
 */
static void test_full_at_budget(void **state)
{
	struct fx *f = *state;
	unsigned int polls = 0;

	f->respond = true;
	while (submit(f, 0) == 0)
		;
	while (ipcd_spsc_writable(&f->cl[0].schan.resp, sizeof(struct ipcd_resp)) &&
	       polls < 10000)
		polls += ipcd_reqq_srv_poll(f->srv, 1);
	assert_true(polls > 0);
	assert_int_equal(submit(f, 0), 0);	/* another request, behind the full ring */
	assert_true(ipcd_spsc_readable(&f->cl[0].schan.req));
	assert_true(ipcd_reqq_srv_prepare_sleep(f->srv) >= 0);	/* poll now, or a bounded sleep */
	assert_int_equal(f->respond_errors, 0);
}

static void test_del_add(void **state)
{
	struct fx *f = *state;
	struct tcl *gone = &f->cl[1];
	struct ipcd_resp resp;
	struct ipcd_reqq_stats st;
	struct ipcd_reqq_chan extra[MAX_CLIENTS];
	struct ipcd_region regs[MAX_CLIENTS];
	uint32_t old_gen = gone->c.chan.ctl->gen, slot, s2;
	unsigned int i, added = 0;
	int rc;

	memset(&resp, 0, sizeof(resp));
	assert_int_equal(submit(f, 1), 0);
	ipcd_reqq_srv_del(f->srv, gone->slot);
	ipcd_reqq_srv_del(f->srv, gone->slot);		/* twice: harmless */
	ipcd_reqq_srv_del(f->srv, MAX_CLIENTS + 3);	/* out of range: harmless */
	assert_int_equal(ipcd_reqq_srv_respond(f->srv, gone->slot, &resp), -ENOENT);
	assert_int_equal(ipcd_reqq_srv_respond(f->srv, MAX_CLIENTS, &resp), -ENOENT);
	if (f->mode == IPCD_QMODE_SHARED)
		assert_int_equal(ipcd_mpsc_enqueue(&f->dbp, DB(gone->slot, old_gen)), 0);
	assert_int_equal(submit(f, 0), 0);
	poll_until(f, 1);
	poll_some(f, 20);
	assert_int_equal(f->n_req, 1);
	assert_int_equal(f->req[0].slot, f->cl[0].slot);

	/* Fill the table: -ENOSPC at max_clients; a reused slot gets a new generation. */
	for (i = 0; i < MAX_CLIENTS; i++) {
		assert_int_equal(ipcd_reqq_chan_create(RING, &regs[i], &extra[i]), 0);
		rc = ipcd_reqq_srv_add(f->srv, &extra[i], &slot);
		if (rc) {
			assert_int_equal(rc, -ENOSPC);
			break;
		}
		added++;
		if (slot == gone->slot)
			assert_int_not_equal(extra[i].ctl->gen, old_gen);
	}
	assert_int_equal(added, MAX_CLIENTS - NCL + 1);
	ipcd_reqq_srv_del(f->srv, f->cl[3].slot);
	assert_int_equal(ipcd_reqq_srv_add(f->srv, &extra[added], &s2), 0);
	assert_int_equal(s2, f->cl[3].slot);
	ipcd_reqq_srv_stats(f->srv, &st);
	if (f->mode == IPCD_QMODE_SHARED)
		assert_true(st.stale >= 1);
	for (i = 0; i <= added && i < MAX_CLIENTS; i++)
		ipcd_region_close(&regs[i]);
}

/* Idle server: the wait ends with -ETIMEDOUT (STYLE: a timeout is reported as such). */
static void test_srv_wait_timeout(void **state)
{
	struct fx *f = *state;

	assert_int_equal(ipcd_reqq_srv_wait(f->srv, 0, 20 * T_NSEC_PER_MSEC), -ETIMEDOUT);
}

/* A client process wakes a sleeping server. */
static void test_srv_wait_cross_process(void **state)
{
	struct fx *f = *state;
	unsigned int round;

	for (round = 0; round < 6; round++) {
		/* The server announces its sleep in each client's private ctl. */
		uint32_t *word = &f->cl[round % NCL].c.chan.ctl->mon_wait;
		uint64_t deadline;
		pid_t pid;

		pid = t_fork(T_CHILD_ALARM);
		if (pid == 0) {
			if (round % 3)
				t_wait_word(word, 1, 5000);
			T_CHECK_EQ(submit(f, round % NCL), 0);
			_exit(0);
		}
		f->cl[round % NCL].next_seq++;
		deadline = ipcd_now_ns() + HANG_GUARD_NS;
		while (f->n_req <= round && ipcd_now_ns() < deadline) {
			int rc = ipcd_reqq_srv_wait(f->srv, 0, HANG_GUARD_NS);

			assert_true(rc == 0 || rc == -ETIMEDOUT);
			ipcd_reqq_srv_poll(f->srv, 64);
		}
		assert_int_equal(f->n_req, round + 1);
		assert_int_equal(t_wait(pid, 60000), 0);
	}
}

#define T_BOTH(fn)							\
	{ #fn "/per-process", fn, setup, teardown, &MODE_PP },		\
	{ #fn "/shared", fn, setup, teardown, &MODE_SH }

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_BOTH(test_create_args),
		T_BOTH(test_requests_delivered),
		T_BOTH(test_call_roundtrip),
		T_BOTH(test_forged_doorbells),
		T_BOTH(test_fault_wrong_size),
		T_BOTH(test_fault_corrupt_ring),
		T_BOTH(test_backpressure),
		T_BOTH(test_drain_final),
		T_BOTH(test_full_at_budget),
		T_BOTH(test_del_add),
		T_BOTH(test_srv_wait_timeout),
		T_BOTH(test_srv_wait_cross_process),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
