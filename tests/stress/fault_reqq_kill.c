/* SPDX-License-Identifier: MIT */
/*
 * fault_reqq_kill.c - client processes SIGKILLed in the middle of a submit,
 * in both queue modes. The server keeps serving every other client: each
 * survivor gets all its responses, in order, exactly once.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcd/proto.h>
#include <ipcd/reqq.h>

#include "t_helpers.h"

#define NCL		4
#define RING		1024u
#define DB_SLOTS	64u
#define SKIP_NS		(200 * 1000ull)
#define DEADLINE_NS	(60 * T_NSEC_PER_SEC)

struct fx {
	uint32_t mode;
	struct ipcd_global_ctl *gctl;
	void *dbmem;
	struct ipcd_mpsc dbc;
	struct ipcd_reqq_srv *srv;
	struct ipcd_region reg[NCL];
	struct ipcd_reqq_chan schan[NCL];
	uint32_t slot[NCL];
	uint32_t slot_client[64];	/* slot -> client index */
	uint64_t next[NCL];		/* next request sequence expected per client */
	unsigned int errors;
	unsigned int faults;
};

static uint32_t MODE_PP = IPCD_QMODE_PER_PROCESS;
static uint32_t MODE_SH = IPCD_QMODE_SHARED;

static void on_request(void *arg, uint32_t slot, const struct ipcd_req *req)
{
	struct fx *f = arg;
	uint32_t c = slot < 64 ? f->slot_client[slot] : UINT32_MAX;
	struct ipcd_resp resp;

	if (c >= NCL || req->cookie >> 32 != c || (uint32_t)req->cookie != f->next[c]) {
		if (f->errors++ < 10)
			fprintf(stderr, "slot %u: unexpected request %#llx\n", slot,
				(unsigned long long)req->cookie);
		return;
	}
	f->next[c]++;
	memset(&resp, 0, sizeof(resp));
	resp.opcode = req->opcode;
	resp.cookie = req->cookie;
	if (ipcd_reqq_srv_respond(f->srv, slot, &resp) && f->errors++ < 10)
		fprintf(stderr, "slot %u: respond failed\n", slot);
}

static void on_fault(void *arg, uint32_t slot, int err)
{
	struct fx *f = arg;

	fprintf(stderr, "slot %u: fault %d\n", slot, err);
	f->faults++;
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
	f->dbmem = t_shm_alloc(ipcd_mpsc_mem_size(DB_SLOTS));
	if (ipcd_mpsc_init(f->dbmem, DB_SLOTS) ||
	    ipcd_mpsc_attach(&f->dbc, f->dbmem, ipcd_mpsc_mem_size(DB_SLOTS), SKIP_NS))
		return -1;
	if (ipcd_reqq_srv_create(f->mode, 64, f->mode == IPCD_QMODE_SHARED ? &f->dbc : NULL,
				 &ops, f, &f->srv))
		return -1;
	for (i = 0; i < NCL; i++) {
		if (ipcd_reqq_chan_create(RING, &f->reg[i], &f->schan[i]) ||
		    ipcd_reqq_srv_add(f->srv, &f->schan[i], &f->slot[i]) || f->slot[i] >= 64)
			return -1;
		f->slot_client[f->slot[i]] = i;
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
		ipcd_region_close(&f->reg[i]);
	t_shm_free(f->dbmem, ipcd_mpsc_mem_size(DB_SLOTS));
	t_shm_free(f->gctl, sizeof(*f->gctl));
	free(f);
	return 0;
}

/* A client process: its own view of its channel, and a producer doorbell handle. */
static void client_open(struct fx *f, unsigned int i, struct ipcd_reqq_client *cl,
			struct ipcd_mpsc *db)
{
	memset(cl, 0, sizeof(*cl));
	T_CHECK_EQ(ipcd_reqq_chan_attach(&f->reg[i], &cl->chan), 0);
	if (f->mode == IPCD_QMODE_SHARED) {
		T_CHECK_EQ(ipcd_mpsc_attach(db, f->dbmem, ipcd_mpsc_mem_size(DB_SLOTS), 0), 0);
		cl->db = db;
	}
	cl->wake_fd = ipcd_reqq_srv_wake_fd(f->srv);
}

/* Child: @count requests as fast as the rings allow, checking every response. */
static void client_main(struct fx *f, unsigned int i, uint32_t count)
{
	struct ipcd_reqq_client cl;
	struct ipcd_mpsc db;
	uint32_t sent = 0, got = 0;

	client_open(f, i, &cl, &db);
	while (got < count) {
		struct ipcd_resp resp;
		ssize_t n;

		while (sent < count) {
			struct ipcd_req req;
			int rc;

			memset(&req, 0, sizeof(req));
			req.opcode = IPCD_OP_NOP;
			req.cookie = (uint64_t)i << 32 | sent;
			rc = ipcd_reqq_submit(&cl, &req);
			if (rc == -EAGAIN)
				break;
			T_CHECK_EQ(rc, 0);
			sent++;
		}
		while ((n = ipcd_spsc_recv(&cl.chan.resp, &resp, sizeof(resp))) > 0) {
			T_CHECK_EQ(n, sizeof(resp));
			T_CHECK_EQ(resp.cookie, (uint64_t)i << 32 | got);
			got++;
		}
		T_CHECK(n == -EAGAIN);
		if (got < count)
			ipcd_spsc_wait_readable(&cl.chan.resp, 0, 10 * T_NSEC_PER_MSEC);
	}
	_exit(0);
}

/* Serve until every client in @alive is reaped with status 0. */
static void serve(struct fx *f, pid_t *pid, const bool *alive, uint32_t count)
{
	uint64_t deadline = ipcd_now_ns() + DEADLINE_NS;
	bool reaped[NCL] = { false };
	unsigned int left = 0, i;

	for (i = 0; i < NCL; i++)
		left += alive[i];
	while (left) {
		if (ipcd_reqq_srv_poll(f->srv, 64) == 0)
			ipcd_reqq_srv_wait(f->srv, 0, 5 * T_NSEC_PER_MSEC);
		for (i = 0; i < NCL; i++) {
			int st;

			if (!alive[i] || reaped[i])
				continue;
			st = t_try_wait(pid[i]);
			if (st == T_STILL_RUNNING)
				continue;
			reaped[i] = true;
			left--;
			if (st != 0)
				fail_msg("client %u exited with %d", i, st);
			assert_int_equal(f->next[i], count);
		}
		if (ipcd_now_ns() > deadline)
			fail_msg("server: clients still running at the deadline");
	}
	assert_int_equal(f->errors, 0);
	assert_int_equal(f->faults, 0);
}

/*
 * Deterministic: the victim queues a request and dies inside submit, after
 * claiming a doorbell slot (shared mode) and before publishing it.
 */
static void test_killed_mid_submit(void **state)
{
	struct fx *f = *state;
	bool alive[NCL] = { false, true, true, true };
	pid_t pid[NCL];
	uint32_t count = 3000 / T_SLOWDOWN;
	int pfd[2];
	char c;
	unsigned int i;

	assert_int_equal(pipe(pfd), 0);
	pid[0] = t_fork(T_CHILD_ALARM);
	if (pid[0] == 0) {
		struct ipcd_reqq_client cl;
		struct ipcd_mpsc db;
		struct ipcd_req req;
		uint32_t pos;

		client_open(f, 0, &cl, &db);
		memset(&req, 0, sizeof(req));
		req.opcode = IPCD_OP_NOP;
		T_CHECK_EQ(ipcd_spsc_send(&cl.chan.req, &req, sizeof(req)), 0);
		if (cl.db) {
			T_CHECK_EQ(ipcd_xchg(&cl.chan.ctl->doorbell_pending, 1), 0);
			T_CHECK_EQ(ipcd_mpsc_claim(cl.db, &pos), 0);
		}
		/* half a request written after that: payload without its header */
		memset(cl.chan.req.data + ((cl.chan.req.shm->tail + 8) & cl.chan.req.mask), 0x6b,
		       8);
		T_CHECK(write(pfd[1], "k", 1) == 1);
		for (;;)
			pause();
	}
	assert_int_equal(read(pfd[0], &c, 1), 1);
	for (i = 1; i < NCL; i++) {
		pid[i] = t_fork(T_CHILD_ALARM);
		if (pid[i] == 0)
			client_main(f, i, count);
	}
	assert_int_equal(t_kill_wait(pid[0]), 128 + SIGKILL);
	serve(f, pid, alive, count);
	/* The request the victim did publish may or may not be served; never twice. */
	assert_true(f->next[0] <= 1);
	ipcd_reqq_srv_del(f->srv, f->slot[0]);
	close(pfd[0]);
	close(pfd[1]);
}

/* Random: every client submits in a tight loop; one is killed at a random moment. */
static void test_random_kill(void **state)
{
	struct fx *f = *state;
	bool alive[NCL] = { true, true, true, true };
	uint32_t count = 20000 / T_SLOWDOWN;
	pid_t pid[NCL];
	struct t_rng rng;
	unsigned int i, victim;
	uint64_t kill_after;

	t_rng_init(&rng, t_seed() + f->mode);
	victim = t_rng_below(&rng, NCL);
	kill_after = t_rng_below(&rng, count / 2);
	for (i = 0; i < NCL; i++) {
		pid[i] = t_fork(T_CHILD_ALARM);
		if (pid[i] == 0)
			client_main(f, i, count);
	}
	/* Serve until the victim is part-way through, then kill it. */
	while (f->next[victim] < kill_after)
		if (ipcd_reqq_srv_poll(f->srv, 64) == 0)
			ipcd_reqq_srv_wait(f->srv, 0, 5 * T_NSEC_PER_MSEC);
	assert_int_equal(t_kill_wait(pid[victim]), 128 + SIGKILL);
	alive[victim] = false;
	ipcd_reqq_srv_del(f->srv, f->slot[victim]);
	serve(f, pid, alive, count);
	printf("mode %s: killed client %u after %llu requests\n", ipcd_reqq_mode_name(f->mode),
	       victim, (unsigned long long)f->next[victim]);
}

#define T_BOTH(fn)							\
	{ #fn "/per-process", fn, setup, teardown, &MODE_PP },		\
	{ #fn "/shared", fn, setup, teardown, &MODE_SH }

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_BOTH(test_killed_mid_submit),
		T_BOTH(test_random_kill),
	};

	t_seed();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
