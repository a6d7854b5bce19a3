/* SPDX-License-Identifier: MIT */
/*
 * it_monitor_hostile.c - hostile clients against a real ipcd-monitor.
 *
 * Each hostile client runs in its own process; a well-behaved client keeps
 * calling (strict calls: exactly its own answers) before, during and after.
 * A client that breaks the request protocol must be cut off (its control
 * socket reads EOF), logged, and counted in `ipcdctl counters` faults.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcd/atomic.h>
#include <ipcd/wait.h>

#include "t_monitor.h"

#define DB(slot, gen)	((uint32_t)(slot) | (uint32_t)(gen) << 16)
#define GOOD_CALLS	2000		/* case f: calls of the good client during a flood */
#define FLOOD_MAX_NS	(30 * T_NSEC_PER_SEC)	/* hang guard of the flood */
#define DRAIN_NS	(10 * T_NSEC_PER_SEC)	/* hang guard per awaited response */

struct shared {
	uint32_t good_ready;
	uint32_t good_stop;
	uint32_t good_calls;
	uint32_t good_slot;
	uint32_t good_gen;
	uint32_t flood_ready;
	uint32_t flood_submitted;
	uint32_t flood_answered;
	uint32_t stale_sent;		/* doorbells that cannot name a live client */
	uint32_t forged_sent;
};

enum hostile {
	H_LONG_LEN,		/* a) len > 48 */
	H_BAD_OPCODE,		/* b) opcode 999 from a library of our ABI minor */
	H_SHORT_RECORD,		/* c) an 8-byte record in the request ring */
	H_CORRUPT_HDR,		/* d) a header at head: seq == head, len huge */
	H_CORRUPT_HEAD,		/* d) the request ring's head index misaligned */
	H_CORRUPT_RESP,		/* d) the response ring's tail index misaligned */
};

static const char *const hostile_name[] = {
	[H_LONG_LEN] = "long body",
	[H_BAD_OPCODE] = "unknown opcode",
	[H_SHORT_RECORD] = "short record",
	[H_CORRUPT_HDR] = "corrupt record header",
	[H_CORRUPT_HEAD] = "corrupt request head",
	[H_CORRUPT_RESP] = "corrupt response tail",
};

static struct shared *sh;

/* ---- the well-behaved client -------------------------------------------- */

static void __attribute__((noreturn)) good_client(const struct t_mon *m, uint32_t max_calls)
{
	struct ipcd_attach a;
	char why[256];
	uint32_t k;

	T_CHECK_EQ(ipcd_attach(m->sock, "it-good", &a, why, sizeof(why)), 0);
	ipcd_store_relaxed(&sh->good_slot, a.cl.chan.ctl->slot);
	ipcd_store_relaxed(&sh->good_gen, a.cl.chan.ctl->gen);
	ipcd_store_release(&sh->good_ready, 1);
	for (k = 0; !ipcd_load_acquire(&sh->good_stop) && k < max_calls; k++) {
		int rc = t_echo_check(&a, (uint32_t)getpid(), (uint64_t)k * 64,
				      (uint16_t)(k % 49));

		if (rc)
			fprintf(stderr, "[good %d] call %u: %d (%s)\n", (int)getpid(), k, rc,
				strerror(-rc));
		T_CHECK_EQ(rc, 0);
		ipcd_store_release(&sh->good_calls, k + 1);
	}
	T_CHECK(t_resp_ring_empty(&a));		/* nothing but our own answers */
	ipcd_detach(&a);
	_exit(0);
}

static pid_t start_good(const struct t_mon *m, uint32_t max_calls)
{
	pid_t pid;

	memset(sh, 0, sizeof(*sh));
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		good_client(m, max_calls);
	assert_true(t_wait_at_least(&sh->good_ready, 1, T_WAIT_MS));
	assert_true(t_wait_at_least(&sh->good_calls, 10, T_WAIT_MS));
	return pid;
}

/* The good client answers again (after whatever just happened). */
static void good_progresses(pid_t good)
{
	uint32_t before = ipcd_load_acquire(&sh->good_calls);

	if (!t_wait_at_least(&sh->good_calls, before + 10, T_WAIT_MS))
		fail_msg("the well-behaved client is stuck at %u calls", before);
	assert_int_equal(t_try_wait(good), T_STILL_RUNNING);
}

static void stop_good(pid_t good)
{
	ipcd_store_release(&sh->good_stop, 1);
	assert_int_equal(t_wait(good, T_WAIT_MS), 0);
}

/* ---- hostile clients ---------------------------------------------------- */

static void __attribute__((noreturn)) hostile_client(const struct t_mon *m, enum hostile kind)
{
	struct ipcd_attach a;
	struct ipcd_req req;
	char why[256];
	uint32_t head, tail;
	uint8_t junk[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	int rc;

	T_CHECK_EQ(ipcd_attach(m->sock, "it-hostile", &a, why, sizeof(why)), 0);
	/* A working client first: what follows is what gets it cut off. */
	T_CHECK_EQ(t_echo_check(&a, 7, 0, 16), 0);

	memset(&req, 0, sizeof(req));
	req.cookie = ++a.cl.next_cookie;
	switch (kind) {
	case H_LONG_LEN:
		req.opcode = IPCD_OP_ECHO;
		req.len = IPCD_REQ_BODY + 1;
		T_CHECK_EQ(ipcd_reqq_submit(&a.cl, &req), 0);
		break;
	case H_BAD_OPCODE:
		req.opcode = 999;
		T_CHECK_EQ(ipcd_reqq_submit(&a.cl, &req), 0);
		break;
	case H_SHORT_RECORD:
		T_CHECK_EQ(ipcd_spsc_send(&a.cl.chan.req, junk, sizeof(junk)), 0);
		t_ring_monitor(&a);
		break;
	case H_CORRUPT_HDR:
		head = ipcd_load_relaxed(&a.cl.chan.req.shm->head);
		ipcd_store_release((uint64_t *)(void *)(a.cl.chan.req.data +
							 (head & a.cl.chan.req.mask)),
				   (uint64_t)head << 32 | 0x7fffff00u);
		t_ring_monitor(&a);
		break;
	case H_CORRUPT_HEAD:
		head = ipcd_load_relaxed(&a.cl.chan.req.shm->head);
		ipcd_store_release(&a.cl.chan.req.shm->head, head + 3);
		t_ring_monitor(&a);
		break;
	case H_CORRUPT_RESP:
		tail = ipcd_load_relaxed(&a.cl.chan.resp.shm->tail);
		ipcd_store_release(&a.cl.chan.resp.shm->tail, tail + 5);
		req.opcode = IPCD_OP_NOP;
		T_CHECK_EQ(ipcd_reqq_submit(&a.cl, &req), 0);
		break;
	}
	rc = t_wait_eof(a.sock, T_WAIT_MS);
	if (rc)
		fprintf(stderr, "[hostile %d] %s: not disconnected: %d\n", (int)getpid(),
			hostile_name[kind], rc);
	T_CHECK_EQ(rc, 0);
	if (kind != H_CORRUPT_RESP)
		T_CHECK(t_resp_ring_empty(&a));		/* cut off without an answer */
	_exit(0);
}

/* The monitor's log line for @kind and process @pid. */
static void expected_log(enum hostile kind, pid_t pid, char *buf, size_t len)
{
	switch (kind) {
	case H_LONG_LEN:
		snprintf(buf, len, "process %d (it-hostile): request opcode %d claims a %d-byte body",
			 (int)pid, IPCD_OP_ECHO, IPCD_REQ_BODY + 1);
		break;
	case H_BAD_OPCODE:
		snprintf(buf, len, "process %d (it-hostile): unknown request opcode 999", (int)pid);
		break;
	case H_SHORT_RECORD:
	case H_CORRUPT_HDR:
	case H_CORRUPT_HEAD:
		snprintf(buf, len, "process %d (it-hostile): its request ring is corrupt", (int)pid);
		break;
	case H_CORRUPT_RESP:
		snprintf(buf, len, "process %d (it-hostile", (int)pid);
		break;
	}
}

static void run_hostile(void **state, enum hostile kind)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	char line[160];
	pid_t good, bad;
	int base, code;

	t_mon_start(m);
	base = t_mon_fd_baseline(m);
	good = start_good(m, UINT32_MAX);

	bad = t_fork(T_CHILD_ALARM);
	if (bad == 0)
		hostile_client(m, kind);
	code = t_wait(bad, 2 * T_WAIT_MS);
	if (code != 0)
		fail_msg("hostile client (%s) exit %d: it was not cut off", hostile_name[kind], code);
	expected_log(kind, bad, line, sizeof(line));
	assert_true(t_mon_log_contains(m, line));
	good_progresses(good);

	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 1), 1);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 1);
	good_progresses(good);
	stop_good(good);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	assert_int_equal(t_mon_wait_fds(m, base), base);
	assert_int_equal(t_mon_maps_count(m, "ipcd-client"), 0);
	t_mon_stop(m);
	T_PASSED(s);
}

static void test_long_body(void **state)
{
	run_hostile(state, H_LONG_LEN);
}

static void test_unknown_opcode(void **state)
{
	run_hostile(state, H_BAD_OPCODE);
}

static void test_short_record(void **state)
{
	run_hostile(state, H_SHORT_RECORD);
}

static void test_corrupt_record_header(void **state)
{
	run_hostile(state, H_CORRUPT_HDR);
}

static void test_corrupt_request_head(void **state)
{
	run_hostile(state, H_CORRUPT_HEAD);
}

static void test_corrupt_response_tail(void **state)
{
	run_hostile(state, H_CORRUPT_RESP);
}

/* ---- random garbage over a whole client region ---------------------------- */

#define GARBAGE_ROUNDS	8

static void __attribute__((noreturn)) garbage_client(const struct t_mon *m, uint64_t seed)
{
	struct ipcd_attach a;
	struct ipcd_req req;
	struct t_rng rng;
	char why[256];
	uint8_t *base;

	T_CHECK_EQ(ipcd_attach(m->sock, "it-garbage", &a, why, sizeof(why)), 0);
	T_CHECK_EQ(t_echo_check(&a, 8, 0, 16), 0);
	t_rng_init(&rng, seed);
	/* Everything after the region header: ctl words, both rings, their data. */
	base = a.client_reg.base;
	t_rng_fill(&rng, base + sizeof(struct ipcd_shm_hdr),
		   a.client_reg.size - sizeof(struct ipcd_shm_hdr));
	t_ring_monitor(&a);
	memset(&req, 0, sizeof(req));
	req.opcode = IPCD_OP_NOP;
	(void)ipcd_reqq_submit(&a.cl, &req);	/* may fail: the ring is garbage */
	t_ring_monitor(&a);
	t_sleep_ms(20);
	_exit(0);
}

static void test_garbage_region(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	unsigned int i;
	pid_t good;
	int base;

	t_mon_start(m);
	base = t_mon_fd_baseline(m);
	good = start_good(m, UINT32_MAX);
	for (i = 0; i < GARBAGE_ROUNDS; i++) {
		pid_t bad = t_fork(T_CHILD_ALARM);

		if (bad == 0)
			garbage_client(m, t_seed() + i);
		assert_int_equal(t_wait(bad, T_WAIT_MS), 0);
		good_progresses(good);
	}
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 1), 1);
	assert_true(t_ctl_num(m, "counters", "faults") <= GARBAGE_ROUNDS);
	stop_good(good);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	assert_int_equal(t_mon_wait_fds(m, base), base);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- e) shared mode: forged and garbage doorbells ----------------------- */

static void push_counted(struct ipcd_attach *a, uint32_t v, uint32_t *counter)
{
	unsigned int tries;

	for (tries = 0; tries < 1000; tries++) {
		if (ipcd_mpsc_enqueue(&a->db, v) == 0) {
			ipcd_fetch_add(counter, 1);
			return;
		}
		usleep(100);	/* full: the monitor drains it */
	}
}

static void __attribute__((noreturn)) doorbell_forger(const struct t_mon *m, uint64_t seed)
{
	uint32_t vslot = ipcd_load_acquire(&sh->good_slot);
	uint32_t vgen = ipcd_load_acquire(&sh->good_gen);
	struct ipcd_attach a;
	struct t_rng rng;
	char why[256];
	uint32_t own_slot, own_gen, pos;
	unsigned int i;

	T_CHECK_EQ(ipcd_attach(m->sock, "it-forger", &a, why, sizeof(why)), 0);
	T_CHECK(a.cl.db != NULL);
	own_slot = a.cl.chan.ctl->slot;
	own_gen = a.cl.chan.ctl->gen;
	t_rng_init(&rng, seed);

	/* Doorbells naming the victim, exactly as its own would. */
	for (i = 0; i < 5000; i++)
		push_counted(&a, DB(vslot, vgen), &sh->forged_sent);
	/* Doorbells that cannot name a live client: no such slot, wrong generations. */
	for (i = 0; i < 2000; i++) {
		uint32_t slot = T_MON_MAX_PROCESSES + t_rng_below(&rng, 65536 - T_MON_MAX_PROCESSES);

		push_counted(&a, DB(slot, t_rng_below(&rng, 65536)), &sh->stale_sent);
	}
	for (i = 0; i < 500; i++) {
		push_counted(&a, DB(vslot, (vgen ^ 0x8000u) & 0xffffu), &sh->stale_sent);
		push_counted(&a, DB(own_slot, (own_gen + 1 + i) & 0xffffu), &sh->stale_sent);
	}
	/* Let the monitor take all of them before we break slots (bounded). */
	for (i = 0; i < 20000 && ipcd_load_acquire(&a.db.shm->head) !=
				  ipcd_load_acquire(&a.db.shm->tail); i++)
		usleep(100);
	/* Claims never published, as if we died mid-enqueue. */
	for (i = 0; i < 32; i++)
		if (ipcd_mpsc_claim(&a.db, &pos))
			break;
	/* Raw garbage straight into the queue's slots. */
	for (i = 0; i < 16; i++)
		ipcd_store_release(&a.db.shm->slot[t_rng_below(&rng, a.db.capacity)],
				   t_rng_next(&rng));
	/* Breaking nothing but the shared queue is not a reason to be cut off. */
	for (i = 0; i < 50; i++)
		T_CHECK_EQ(t_echo_check(&a, 11, (uint64_t)i * 64, 24), 0);
	T_CHECK(t_resp_ring_empty(&a));
	ipcd_detach(&a);
	_exit(0);
}

static void test_forged_doorbells(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	pid_t good, bad;

	if (m->mode != IPCD_QMODE_SHARED)
		skip();		/* no doorbell queue in per-process mode */
	t_mon_start(m);
	good = start_good(m, UINT32_MAX);
	bad = t_fork(T_CHILD_ALARM);
	if (bad == 0)
		doorbell_forger(m, t_seed());
	assert_int_equal(t_wait(bad, 2 * T_WAIT_MS), 0);
	assert_true(sh->forged_sent > 0);
	assert_true(sh->stale_sent > 0);
	good_progresses(good);
	stop_good(good);	/* its strict calls saw only their own answers */

	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	if (t_ctl_num(m, "counters", "stale_doorbells") < sh->stale_sent)
		fail_msg("%u doorbells naming no live client were queued, the monitor counted "
			 "%lld stale", sh->stale_sent, t_ctl_num(m, "counters", "stale_doorbells"));
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- f) a flooding client ------------------------------------------------ */

static void __attribute__((noreturn)) flooder(const struct t_mon *m)
{
	uint64_t end = ipcd_deadline(FLOOD_MAX_NS);
	struct ipcd_attach a;
	struct ipcd_req req;
	struct ipcd_resp resp;
	char why[256];
	uint32_t got = 0;

	T_CHECK_EQ(ipcd_attach(m->sock, "it-flood", &a, why, sizeof(why)), 0);
	ipcd_store_release(&sh->flood_ready, 1);
	/* Submit as fast as possible, never reading, until the good client is done. */
	memset(&req, 0, sizeof(req));
	req.opcode = IPCD_OP_ECHO;
	req.len = 8;
	while (!ipcd_load_acquire(&sh->good_stop) && ipcd_remaining(end) != 0) {
		req.cookie = sh->flood_submitted + 1;
		memcpy(req.body, &req.cookie, 8);
		if (ipcd_reqq_submit(&a.cl, &req) == 0)
			ipcd_store_release(&sh->flood_submitted, (uint32_t)req.cookie);
	}
	/* Now read: every accepted request is answered, in order. */
	while (got < sh->flood_submitted) {
		ssize_t n = ipcd_spsc_recv(&a.cl.chan.resp, &resp, sizeof(resp));

		if (n == -EAGAIN) {
			if (ipcd_spsc_wait_readable(&a.cl.chan.resp, 20000, DRAIN_NS) == -ETIMEDOUT) {
				fprintf(stderr, "[flooder] %u of %u requests answered; the rest "
					"stay queued\n", got, sh->flood_submitted);
				_exit(3);
			}
			continue;
		}
		T_CHECK_EQ(n, sizeof(resp));
		T_CHECK_EQ(resp.cookie, got + 1);
		T_CHECK_EQ(resp.status, 0);
		T_CHECK(memcmp(resp.body, &resp.cookie, 8) == 0);
		got++;
		ipcd_store_release(&sh->flood_answered, got);
	}
	T_CHECK(t_resp_ring_empty(&a));
	ipcd_detach(&a);
	_exit(0);
}

static void test_flood(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	pid_t flood, good;

	t_mon_start(m);
	memset(sh, 0, sizeof(*sh));
	flood = t_fork(T_CHILD_ALARM);
	if (flood == 0)
		flooder(m);
	assert_true(t_wait_at_least(&sh->flood_ready, 1, T_WAIT_MS));
	assert_true(t_wait_at_least(&sh->flood_submitted, 100, T_WAIT_MS));
	/* The good client's 2000 strict calls complete while the flood goes on. */
	good = t_fork(T_CHILD_ALARM);
	if (good == 0)
		good_client(m, GOOD_CALLS);
	assert_int_equal(t_wait(good, 4 * T_WAIT_MS), 0);
	assert_int_equal(sh->good_calls, GOOD_CALLS);
	ipcd_store_release(&sh->good_stop, 1);
	assert_int_equal(t_wait(flood, 4 * T_WAIT_MS), 0);
	assert_int_equal(sh->flood_answered, sh->flood_submitted);

	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);	/* busy is not hostile */
	assert_true(t_ctl_num(m, "counters", "backpressure") > 0);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	t_mon_stop(m);
	T_PASSED(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_BOTH(test_long_body),
		T_BOTH(test_unknown_opcode),
		T_BOTH(test_short_record),
		T_BOTH(test_corrupt_record_header),
		T_BOTH(test_corrupt_request_head),
		T_BOTH(test_corrupt_response_tail),
		T_BOTH(test_garbage_region),
		T_BOTH(test_forged_doorbells),
		T_BOTH(test_flood),
	};
	int rc;

	sh = t_shm_alloc(sizeof(*sh));
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	t_shm_free(sh, sizeof(*sh));
	return rc;
}
