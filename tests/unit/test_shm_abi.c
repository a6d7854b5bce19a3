/* SPDX-License-Identifier: MIT */
/* test_shm_abi.c - the shared-memory ABI: sizes, offsets and encodings. */
#include <string.h>

#include <ipcd/ctl.h>
#include <ipcd/mpsc.h>
#include <ipcd/proto.h>
#include <ipcd/shm_abi.h>
#include <ipcd/spsc.h>

#include "t_helpers.h"

/*
 * Compile-time pins of ABI v3. If one of these breaks, the layout changed:
 * either revert, or bump IPCD_SHM_ABI_MAJOR (and then update these).
 */
#define PIN(cond)	_Static_assert(cond, "ABI v3 layout: " #cond)

PIN(IPCD_SHM_ABI_MAJOR == 3);
PIN(IPCD_SHM_MAGIC == 0x44435049u);

PIN(sizeof(struct ipcd_shm_area) == 16);
PIN(sizeof(struct ipcd_shm_hdr) == 192);
PIN(offsetof(struct ipcd_shm_hdr, magic) == 0);
PIN(offsetof(struct ipcd_shm_hdr, abi_major) == 4);
PIN(offsetof(struct ipcd_shm_hdr, abi_minor) == 6);
PIN(offsetof(struct ipcd_shm_hdr, hdr_size) == 8);
PIN(offsetof(struct ipcd_shm_hdr, kind) == 12);
PIN(offsetof(struct ipcd_shm_hdr, region_size) == 16);
PIN(offsetof(struct ipcd_shm_hdr, features) == 24);
PIN(offsetof(struct ipcd_shm_hdr, n_areas) == 32);
PIN(offsetof(struct ipcd_shm_hdr, ready) == 36);
PIN(offsetof(struct ipcd_shm_hdr, area) == 40);
PIN(offsetof(struct ipcd_shm_hdr, reserved) == 40 + 16 * IPCD_SHM_MAX_AREAS);
PIN(IPCD_SHM_MAX_AREAS == 6);

PIN(sizeof(struct ipcd_rec_hdr) == 8);
PIN(offsetof(struct ipcd_rec_hdr, len) == 0);
PIN(offsetof(struct ipcd_rec_hdr, seq) == 4);

PIN(sizeof(struct ipcd_spsc_shm) == 512);
PIN(offsetof(struct ipcd_spsc_shm, capacity) == 0);
PIN(offsetof(struct ipcd_spsc_shm, flags) == 4);
PIN(offsetof(struct ipcd_spsc_shm, max_msg) == 8);
PIN(offsetof(struct ipcd_spsc_shm, tail) == 128);
PIN(offsetof(struct ipcd_spsc_shm, prod_bytes) == 136);
PIN(offsetof(struct ipcd_spsc_shm, prod_msgs) == 144);
PIN(offsetof(struct ipcd_spsc_shm, head) == 256);
PIN(offsetof(struct ipcd_spsc_shm, head_off) == 260);
PIN(offsetof(struct ipcd_spsc_shm, cons_bytes) == 264);
PIN(offsetof(struct ipcd_spsc_shm, cons_msgs) == 272);
PIN(offsetof(struct ipcd_spsc_shm, cons_wait) == 384);
PIN(offsetof(struct ipcd_spsc_shm, prod_wait) == 388);
PIN(offsetof(struct ipcd_spsc_shm, prod_closed) == 392);
PIN(offsetof(struct ipcd_spsc_shm, cons_closed) == 396);
PIN(IPCD_SPSC_F_STREAM == 1);
PIN(IPCD_DB_FUTEX == 1);
PIN(IPCD_DB_EVENT == 2);

PIN(sizeof(struct ipcd_conn_ctl) == 256);
PIN(offsetof(struct ipcd_conn_ctl, conn_id) == 0);
PIN(offsetof(struct ipcd_conn_ctl, a_addr) == 8);
PIN(offsetof(struct ipcd_conn_ctl, b_addr) == 24);
PIN(offsetof(struct ipcd_conn_ctl, a_port) == 40);
PIN(offsetof(struct ipcd_conn_ctl, b_port) == 42);
PIN(offsetof(struct ipcd_conn_ctl, reset) == 128);
PIN(offsetof(struct ipcd_conn_ctl, holders_a) == 132);
PIN(offsetof(struct ipcd_conn_ctl, holders_b) == 136);
PIN(offsetof(struct ipcd_conn_ctl, closed) == 140);

PIN(sizeof(struct ipcd_connect_req) == 32);
PIN(offsetof(struct ipcd_connect_req, ring_bytes) == 24);
PIN(sizeof(struct ipcd_listen_req) == 24);	/* 16 before ABI 3.6 (IPCD_LISTEN_REQ_V35) */
PIN(IPCD_LISTEN_REQ_V35 == 16);
PIN(offsetof(struct ipcd_listen_req, ring_bytes) == 8);
PIN(offsetof(struct ipcd_listen_req, flags) == 12);
PIN(offsetof(struct ipcd_listen_req, kfd) == 16);
PIN(offsetof(struct ipcd_client_ctl, limit_action) == 56);
PIN(offsetof(struct ipcd_client_ctl, cluster_up) == 60);
PIN(IPCD_LISTEN_LANES == 1);
PIN(sizeof(struct ipcd_kits_req) == 8);
PIN(sizeof(struct ipcd_kits_resp) == 8);
PIN(sizeof(struct ipcd_lane_done_req) == 16);
PIN(offsetof(struct ipcd_lane_done_req, accepted) == 8);
PIN(sizeof(struct ipcd_lane_msg) == 32);
PIN(offsetof(struct ipcd_lane_msg, conn_id) == 8);
PIN(offsetof(struct ipcd_lane_msg, region_size) == 16);
PIN(IPCD_CTL_LANE_FD == 3);
PIN(IPCD_OP_KITS == 10 && IPCD_OP_LANE_DONE == 11 && IPCD_OP_KIT_ACCEPTED == 12);
PIN(sizeof(struct ipcd_kit_accepted_req) == 8);
PIN(IPCD_OP_HOLD == 13 && IPCD_CTL_HOLD_FD == 4);	/* ABI 3.2 */
PIN(IPCD_OP_REGION == 14 && IPCD_CTL_REGION_FD == 5);
PIN(sizeof(struct ipcd_hold_req) == 16);
PIN(offsetof(struct ipcd_hold_req, end) == 8);
PIN(sizeof(struct ipcd_fallback_req) == 24);
PIN(sizeof(struct ipcd_close_req) == 16);
PIN(sizeof(struct ipcd_accept_req) == 16);
PIN(offsetof(struct ipcd_accept_req, token) == 8);
PIN(offsetof(struct ipcd_close_req, end) == 8);
PIN(offsetof(struct ipcd_fallback_req, reason) == 18);
PIN(sizeof(struct ipcd_ctl_msg) == 32);
PIN(IPCD_CTL_CONN_NFDS_MIN == 3);	/* what a 3.6 library takes */
PIN(IPCD_CTL_CONN_NFDS == 4);		/* 3.7: + the life socket */
PIN(IPCD_CTL_CONN_FD_LIVE == 3);
PIN(IPCD_REC_ALIGN == 8);

PIN(offsetof(struct ipcd_mpsc_shm, capacity) == 0);
PIN(offsetof(struct ipcd_mpsc_shm, tail) == 128);
PIN(offsetof(struct ipcd_mpsc_shm, head) == 256);
PIN(offsetof(struct ipcd_mpsc_shm, cons_heartbeat) == 260);
PIN(offsetof(struct ipcd_mpsc_shm, skipped) == 264);
PIN(offsetof(struct ipcd_mpsc_shm, corrupt) == 272);
PIN(offsetof(struct ipcd_mpsc_shm, cons_wait) == 384);
PIN(offsetof(struct ipcd_mpsc_shm, slot) == 512);
PIN(sizeof(struct ipcd_mpsc_shm) == 512);

PIN(sizeof(struct ipcd_client_ctl) == 384);
PIN(offsetof(struct ipcd_client_ctl, slot) == 0);
PIN(offsetof(struct ipcd_client_ctl, gen) == 4);
PIN(offsetof(struct ipcd_client_ctl, doorbell_pending) == 128);
PIN(offsetof(struct ipcd_client_ctl, mon_wait) == 256);

PIN(sizeof(struct ipcd_global_ctl) == 256);
PIN(offsetof(struct ipcd_global_ctl, queue_mode) == 0);
PIN(offsetof(struct ipcd_global_ctl, monitor_pid) == 4);
PIN(offsetof(struct ipcd_global_ctl, start_ns) == 8);
PIN(offsetof(struct ipcd_global_ctl, heartbeat) == 128);

PIN(sizeof(struct ipcd_req) == 64);
PIN(offsetof(struct ipcd_req, opcode) == 0);
PIN(offsetof(struct ipcd_req, len) == 2);
PIN(offsetof(struct ipcd_req, flags) == 4);
PIN(offsetof(struct ipcd_req, cookie) == 8);
PIN(offsetof(struct ipcd_req, body) == 16);
PIN(sizeof(struct ipcd_resp) == 64);
PIN(offsetof(struct ipcd_resp, opcode) == 0);
PIN(offsetof(struct ipcd_resp, len) == 2);
PIN(offsetof(struct ipcd_resp, status) == 4);
PIN(offsetof(struct ipcd_resp, cookie) == 8);
PIN(offsetof(struct ipcd_resp, body) == 16);

/* Producer, consumer and doorbell groups must not share a 128-byte block. */
PIN(offsetof(struct ipcd_spsc_shm, head) - offsetof(struct ipcd_spsc_shm, tail) >=
    IPCD_CACHE_GUARD);
PIN(offsetof(struct ipcd_spsc_shm, cons_wait) - offsetof(struct ipcd_spsc_shm, head) >=
    IPCD_CACHE_GUARD);
PIN(offsetof(struct ipcd_mpsc_shm, head) - offsetof(struct ipcd_mpsc_shm, tail) >=
    IPCD_CACHE_GUARD);

static void test_magic_spells_ipcd(void **state)
{
	uint32_t m = IPCD_SHM_MAGIC;

	(void)state;
	assert_memory_equal(&m, "IPCD", 4);
}

/* The inline packers must match the documented struct layout byte for byte. */
static void test_rec_hdr_packing(void **state)
{
	struct ipcd_rec_hdr h = { .len = 0x11223344u, .seq = 0xa0b0c0d0u };
	uint64_t packed = __ipcd_rec_pack(h.len, h.seq);

	(void)state;
	assert_memory_equal(&packed, &h, sizeof(h));
}

static void test_mpsc_slot_packing(void **state)
{
	uint64_t v = __ipcd_mpsc_pack(0x01020304u, 0xcafef00du);

	(void)state;
	assert_int_equal((uint32_t)v, 0x01020304u);	/* low half: seq */
	assert_int_equal((uint32_t)(v >> 32), 0xcafef00du);	/* high half: payload */
}

static void test_record_sizes(void **state)
{
	(void)state;
	assert_int_equal(__ipcd_rec_size(0), 8);
	assert_int_equal(__ipcd_rec_size(1), 16);
	assert_int_equal(__ipcd_rec_size(8), 16);
	assert_int_equal(__ipcd_rec_size(9), 24);
	assert_int_equal(__ipcd_rec_size(64), 72);
}

static void test_mem_sizes(void **state)
{
	(void)state;
	assert_int_equal(ipcd_spsc_mem_size(4096), 512 + 4096);
	assert_int_equal(ipcd_mpsc_mem_size(8), 512 + 64);
	assert_int_equal(ipcd_mpsc_mem_size(IPCD_MPSC_MAX_SLOTS), 512 + 8 * (1u << 20));
}

static void test_limits(void **state)
{
	(void)state;
	assert_true(IPCD_IS_POW2(IPCD_SPSC_MIN_CAPACITY));
	assert_true(IPCD_IS_POW2(IPCD_SPSC_MAX_CAPACITY));
	assert_true(IPCD_IS_POW2(IPCD_MPSC_MIN_SLOTS));
	assert_true(IPCD_IS_POW2(IPCD_MPSC_MAX_SLOTS));
	assert_true(IPCD_SPSC_MIN_CAPACITY % IPCD_REC_ALIGN == 0);
	assert_true(IPCD_OP_ECHO <= IPCD_OP_MAX);
	assert_true(IPCD_QMODE_PER_PROCESS != IPCD_QMODE_SHARED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_magic_spells_ipcd),
		cmocka_unit_test(test_rec_hdr_packing),
		cmocka_unit_test(test_mpsc_slot_packing),
		cmocka_unit_test(test_record_sizes),
		cmocka_unit_test(test_mem_sizes),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
