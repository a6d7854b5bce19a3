/* SPDX-License-Identifier: MIT */
/*
 * it_monitor_lifecycle.c - a real ipcd-monitor stopped, killed and restarted:
 * SIGTERM drains and removes the socket, SIGKILL leaves a stale socket that
 * the next monitor replaces, a second monitor on a live socket refuses to
 * start, SIGHUP reloads.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcd/wait.h>

#include "t_monitor.h"

#define QUEUED		10	/* requests in the ring when SIGTERM arrives */

static struct t_out out;

static void calls_ok(struct ipcd_attach *a, uint32_t stream, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		assert_int_equal(t_echo_check(a, stream, (uint64_t)i * 64, (uint16_t)(i % 49)), 0);
	assert_true(t_resp_ring_empty(a));
}

static void test_sigterm_restart(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct ipcd_attach a, b;
	struct ipcd_req req;
	struct ipcd_resp resp;
	uint64_t first_cookie;
	unsigned int i;

	t_mon_start(m);
	t_attach(m, "it-term", &a);
	calls_ok(&a, 1, 20);

	/* Requests queued when SIGTERM arrives are still answered (the drain). */
	first_cookie = a.cl.next_cookie + 1;
	for (i = 0; i < QUEUED; i++) {
		memset(&req, 0, sizeof(req));
		req.opcode = IPCD_OP_ECHO;
		req.len = 8;
		req.cookie = ++a.cl.next_cookie;
		memcpy(req.body, &req.cookie, 8);
		assert_int_equal(ipcd_reqq_submit(&a.cl, &req), 0);
	}
	t_mon_stop(m);		/* exit 0, socket removed */
	assert_int_equal(t_wait_eof(a.sock, T_WAIT_MS), 0);
	for (i = 0; i < QUEUED; i++) {
		assert_int_equal(ipcd_spsc_recv(&a.cl.chan.resp, &resp, sizeof(resp)),
				 sizeof(resp));
		assert_int_equal(resp.cookie, first_cookie + i);
		assert_int_equal(resp.status, 0);
		assert_memory_equal(resp.body, &resp.cookie, 8);
	}
	assert_true(t_resp_ring_empty(&a));
	assert_true(t_mon_log_contains(m, "drained"));
	ipcd_detach(&a);

	/* A new monitor on the same path works, with fresh state. */
	t_mon_start(m);
	t_attach(m, "it-term2", &b);
	calls_ok(&b, 2, 100);
	assert_int_equal(t_ctl_num(m, "status", "processes"), 1);
	assert_int_equal(t_ctl_num(m, "counters", "registered"), 1);
	ipcd_detach(&b);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	t_mon_stop(m);
	T_PASSED(s);
}

/*
 * SIGTERM right after the monitor handled work (a client's last call and
 * its exit), repeated: whenever the signal lands, the monitor must exit.
 * (Whether a round lands the signal in the window that matters depends on
 * scheduling; on a loaded machine most runs do.)
 */
#define TERM_ROUNDS	100

static void test_sigterm_after_work(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct ipcd_attach a;
	unsigned int i;

	for (i = 0; i < TERM_ROUNDS; i++) {
		t_mon_start(m);
		t_attach(m, "it-term-now", &a);
		calls_ok(&a, i, 5);
		ipcd_detach(&a);
		t_mon_stop(m);
	}
	T_PASSED(s);
}

static void test_sigkill_stale_socket(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct ipcd_attach a, b;
	struct stat st;

	t_mon_start(m);
	t_attach(m, "it-kill", &a);
	calls_ok(&a, 1, 20);

	t_mon_kill(m);
	assert_int_equal(t_wait_eof(a.sock, T_WAIT_MS), 0);	/* the kernel closes it */
	assert_int_equal(stat(m->sock, &st), 0);		/* stale, left behind */
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(t_ctl(m, &out, false, "status"), 1);
	assert_true(strstr(out.err, "no monitor is running") != NULL);

	/* The next monitor sees nobody answers there and replaces the socket. */
	t_mon_start(m);
	t_attach(m, "it-kill2", &b);
	calls_ok(&b, 2, 100);
	assert_int_equal(t_ctl_num(m, "status", "processes"), 1);
	ipcd_detach(&b);
	ipcd_detach(&a);
	t_mon_stop(m);
	T_PASSED(s);
}

static void test_second_monitor_refused(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct ipcd_attach a, b;
	pid_t second;
	int code;

	t_mon_start(m);
	t_attach(m, "it-first", &a);

	second = t_mon_spawn(m, NULL);		/* same config, same socket path */
	code = t_wait(second, T_MON_STOP_MS);
	if (code != 1) {
		t_mon_print_logs(m);
		fail_msg("a second monitor on a live socket: exit %d, expected 1", code);
	}
	assert_true(t_file_contains(m->log, "another monitor"));
	assert_true(t_file_contains(m->log, "not started"));

	/* The first one kept its socket and its clients. */
	assert_int_equal(access(m->sock, F_OK), 0);
	calls_ok(&a, 1, 50);
	t_attach(m, "it-third", &b);
	calls_ok(&b, 2, 50);
	assert_int_equal(t_ctl_num(m, "status", "processes"), 2);
	assert_int_equal(t_ctl_num(m, "status", "pid"), m->pid);
	ipcd_detach(&a);
	ipcd_detach(&b);
	t_mon_stop(m);
	T_PASSED(s);
}

/* Poll ipcdctl --json status until it contains @needle (bounded). */
static bool status_shows(const struct t_mon *m, const char *needle)
{
	uint64_t deadline = ipcd_deadline((int64_t)T_WAIT_MS * T_NSEC_PER_MSEC);

	do {
		assert_int_equal(t_ctl(m, &out, true, "status"), 0);
		if (strstr(out.out, needle))
			return true;
		t_sleep_ms(20);
	} while (ipcd_remaining(deadline) != 0);
	return false;
}

static bool log_shows(const struct t_mon *m, const char *needle)
{
	uint64_t deadline = ipcd_deadline((int64_t)T_WAIT_MS * T_NSEC_PER_MSEC);

	do {
		if (t_mon_log_contains(m, needle))
			return true;
		t_sleep_ms(20);
	} while (ipcd_remaining(deadline) != 0);
	return false;
}

static void test_sighup_reload(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	const char *other = m->mode == IPCD_QMODE_SHARED ? "per-process" : "shared";
	char extra[128], mode_json[64];
	struct ipcd_attach a;

	snprintf(mode_json, sizeof(mode_json), "\"queue_mode\":\"%s\"",
		 m->mode == IPCD_QMODE_SHARED ? "shared" : "per-process");
	t_mon_start(m);
	t_attach(m, "it-hup", &a);
	assert_true(status_shows(m, "\"log_level\":\"info\""));

	/* What can change at run time does; the queue mode waits for a restart. */
	snprintf(extra, sizeof(extra), "log_level = debug\nqueue_mode = %s\n", other);
	t_mon_write_config(m, extra);
	kill(m->pid, SIGHUP);
	assert_true(status_shows(m, "\"log_level\":\"debug\""));
	assert_true(log_shows(m, "'queue_mode' changed but takes effect only after a restart"));
	assert_true(status_shows(m, mode_json));

	/* A broken file is reported and the running configuration kept. */
	t_mon_write_config(m, "log_level = warn\nno_such_key = 1\n");
	kill(m->pid, SIGHUP);
	assert_true(log_shows(m, "keeping the running configuration"));
	assert_true(status_shows(m, "\"log_level\":\"debug\""));

	calls_ok(&a, 1, 50);
	ipcd_detach(&a);
	t_mon_stop(m);
	T_PASSED(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_BOTH(test_sigterm_restart),
		T_BOTH(test_sigterm_after_work),
		T_BOTH(test_sigkill_stale_socket),
		T_BOTH(test_second_monitor_refused),
		T_BOTH(test_sighup_reload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
