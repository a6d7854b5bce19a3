/* SPDX-License-Identifier: MIT */
/*
 * it_monitor_basic.c - a real ipcd-monitor: registration and calls, the
 * versioned handshake, ipcdctl, config errors, pipelined calls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcd/atomic.h>
#include <ipcd/wait.h>

#include "t_monitor.h"

static struct t_out out;

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("expected \"%s\" in:\n%s", needle, hay);
}

static void assert_json_valid(const char *what, const char *json)
{
	if (!t_json_balanced(json))
		fail_msg("%s: not balanced JSON:\n%s", what, json);
	if (t_json_python(json) == 1)
		fail_msg("%s: python3 json.load rejects:\n%s", what, json);
}

/* ---- 1. registration and calls ------------------------------------------ */

static void test_register_calls(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct ipcd_attach a;
	struct ipcd_req req;
	struct ipcd_resp resp;
	char pat[64];
	int base, i, rc;

	t_mon_start(m);
	base = t_mon_fd_baseline(m);
	assert_int_equal(t_mon_maps_count(m, "ipcd-client"), 0);
	t_attach(m, "it-register", &a);
	assert_int_equal(t_mon_maps_count(m, "ipcd-client"), 1);

	for (i = 0; i < 1000; i++) {
		memset(&req, 0, sizeof(req));
		memset(&resp, 0xa5, sizeof(resp));
		req.opcode = IPCD_OP_NOP;
		rc = ipcd_reqq_call(&a.cl, &req, &resp, 20000, T_CALL_TIMEOUT_NS);
		assert_int_equal(rc, 0);
		assert_int_equal(resp.status, 0);
		assert_int_equal(resp.opcode, IPCD_OP_NOP);
		assert_int_equal(resp.len, 0);
		assert_int_equal(resp.cookie, req.cookie);
	}
	for (i = 0; i < 1000; i++) {
		uint16_t len = (uint16_t)(i % (IPCD_REQ_BODY + 1));
		unsigned int k;

		memset(&req, 0, sizeof(req));
		memset(&resp, 0xa5, sizeof(resp));
		req.opcode = IPCD_OP_ECHO;
		req.len = len;
		t_pattern_fill(req.body, len, (uint32_t)getpid(), (uint64_t)i * IPCD_REQ_BODY);
		rc = ipcd_reqq_call(&a.cl, &req, &resp, 20000, T_CALL_TIMEOUT_NS);
		assert_int_equal(rc, 0);
		assert_int_equal(resp.status, 0);
		assert_int_equal(resp.opcode, IPCD_OP_ECHO);
		assert_int_equal(resp.cookie, req.cookie);
		assert_int_equal(resp.len, len);
		assert_memory_equal(resp.body, req.body, len);
		for (k = len; k < IPCD_REQ_BODY; k++)
			assert_int_equal(resp.body[k], 0);	/* nothing stale leaks out */
	}
	assert_true(t_resp_ring_empty(&a));

	assert_int_equal(t_ctl(m, &out, true, "processes"), 0);
	assert_json_valid("processes", out.out);
	snprintf(pat, sizeof(pat), "{\"pid\":%d,", (int)getpid());
	assert_contains(out.out, pat);
	assert_int_equal(t_count_str(out.out, "{\"pid\":"), 1);
	assert_contains(out.out, "\"comm\":\"it-register\"");
	assert_contains(out.out, "\"requests\":2000,");
	assert_int_equal(t_ctl(m, &out, false, "processes"), 0);
	snprintf(pat, sizeof(pat), "%d", (int)getpid());
	assert_contains(out.out, pat);
	assert_contains(out.out, "it-register");

	assert_int_equal(t_ctl_num(m, "status", "processes"), 1);
	assert_int_equal(t_ctl_num(m, "counters", "registered"), 1);
	assert_int_equal(t_ctl_num(m, "counters", "nop"), 1000);
	assert_int_equal(t_ctl_num(m, "counters", "echo"), 1000);
	assert_int_equal(t_ctl_num(m, "counters", "requests"), 2000);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);

	ipcd_detach(&a);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	assert_int_equal(t_ctl_num(m, "counters", "reaped"), 1);
	assert_int_equal(t_mon_wait_fds(m, base), base);
	assert_int_equal(t_mon_maps_count(m, "ipcd-client"), 0);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- 2. versioned handshake --------------------------------------------- */

static struct ipcd_ctl_hello hello(uint16_t major, uint16_t minor, uint32_t kind)
{
	struct ipcd_ctl_hello h = {
		.magic = IPCD_CTL_MAGIC,
		.abi_major = major,
		.abi_minor = minor,
		.kind = kind,
		.comm = "it-raw",
	};

	return h;
}

/* Send @len bytes at @msg on a fresh connection; expect a refusal with @status, then EOF. */
static void expect_refused(const struct t_mon *m, const void *msg, size_t len, int status,
			   const char *why1, const char *why2)
{
	struct ipcd_ctl_welcome w;
	unsigned int nfds;
	ssize_t n;
	int fd = t_connect(m->sock);

	assert_true(fd >= 0);
	assert_int_equal(send(fd, msg, len, MSG_NOSIGNAL), (ssize_t)len);
	n = t_recv_welcome(fd, &w, &nfds, T_WAIT_MS);
	assert_int_equal(n, sizeof(w));
	assert_int_equal(nfds, 0);
	assert_int_equal(w.magic, IPCD_CTL_MAGIC);
	assert_int_equal(w.abi_major, IPCD_SHM_ABI_MAJOR);
	assert_int_equal(w.abi_minor, IPCD_SHM_ABI_MINOR);
	assert_int_equal(w.status, status);
	assert_int_equal(w.client_id, 0);
	w.msg[sizeof(w.msg) - 1] = '\0';
	if (why1)
		assert_contains(w.msg, why1);
	if (why2)
		assert_contains(w.msg, why2);
	assert_int_equal(t_wait_eof(fd, T_WAIT_MS), 0);
	close(fd);
}

static void test_handshake(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct ipcd_ctl_hello h;
	struct ipcd_attach a;
	struct ipcd_resp resp;
	char lib[32], mon[32], why[256], proxy_path[160];
	uint8_t junk[100];
	long long refused = 0;
	int fds[70], i, rc;
	pid_t proxy;

	t_mon_start(m);
	snprintf(mon, sizeof(mon), "ABI %d.%d", IPCD_SHM_ABI_MAJOR, IPCD_SHM_ABI_MINOR);

	/* A newer major, and an older one: refused, both versions named, then closed. */
	h = hello(IPCD_SHM_ABI_MAJOR + 1, 7, IPCD_CTL_CLIENT);
	snprintf(lib, sizeof(lib), "ABI %d.7", IPCD_SHM_ABI_MAJOR + 1);
	expect_refused(m, &h, sizeof(h), -EPROTONOSUPPORT, lib, mon);
	h = hello(IPCD_SHM_ABI_MAJOR - 1, 3, IPCD_CTL_CLIENT);
	snprintf(lib, sizeof(lib), "ABI %d.3", IPCD_SHM_ABI_MAJOR - 1);
	expect_refused(m, &h, sizeof(h), -EPROTONOSUPPORT, lib, mon);
	refused += 2;

	/* ipcd_attach() reports the refusal in @why (a relay bumps its hello's major). */
	snprintf(proxy_path, sizeof(proxy_path), "%s/proxy-major.sock", m->dir);
	proxy = t_hello_proxy(proxy_path, m->sock, 1, 0);
	rc = ipcd_attach(proxy_path, "it-newer", &a, why, sizeof(why));
	assert_int_equal(rc, -EPROTONOSUPPORT);
	snprintf(lib, sizeof(lib), "ABI %d.%d", IPCD_SHM_ABI_MAJOR + 1, IPCD_SHM_ABI_MINOR);
	assert_contains(why, lib);
	assert_contains(why, mon);
	assert_int_equal(a.sock, -1);
	assert_int_equal(t_wait(proxy, T_WAIT_MS), 0);
	refused++;

	/*
	 * A newer minor is accepted, and an opcode this monitor does not know
	 * is answered -ENOSYS (a newer library is not hostile).
	 */
	snprintf(proxy_path, sizeof(proxy_path), "%s/proxy-minor.sock", m->dir);
	proxy = t_hello_proxy(proxy_path, m->sock, 0, 1);
	rc = ipcd_attach(proxy_path, "it-minor", &a, why, sizeof(why));
	if (rc)
		fail_msg("attach with a newer minor: %d: %s", rc, why);
	assert_int_equal(a.welcome.status, 0);
	assert_int_equal(a.welcome.pid, proxy);	/* SO_PEERCRED: the relay connected */
	assert_int_equal(t_echo_check(&a, 1, 0, IPCD_REQ_BODY), 0);
	assert_int_equal(t_call(&a, 999, NULL, 0, &resp, T_CALL_TIMEOUT_NS), 0);
	assert_int_equal(resp.status, -ENOSYS);
	assert_int_equal(resp.opcode, 999);
	assert_int_equal(t_echo_check(&a, 1, 64, 7), 0);
	assert_true(t_resp_ring_empty(&a));
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	assert_int_equal(t_ctl_num(m, "counters", "unknown"), 1);
	assert_int_equal(t_ctl_num(m, "status", "processes"), 1);
	ipcd_detach(&a);
	assert_int_equal(t_wait(proxy, T_WAIT_MS), 0);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);

	/* Garbage hellos: too short, wrong magic, too long, unknown kind. */
	memset(junk, 0x41, sizeof(junk));
	expect_refused(m, junk, 10, -EPROTO, "not an IPC-Direct hello", "10 bytes");
	h = hello(IPCD_SHM_ABI_MAJOR, IPCD_SHM_ABI_MINOR, IPCD_CTL_CLIENT);
	h.magic ^= 0x01000000u;
	expect_refused(m, &h, sizeof(h), -EPROTO, "not an IPC-Direct hello", NULL);
	h = hello(IPCD_SHM_ABI_MAJOR, IPCD_SHM_ABI_MINOR, IPCD_CTL_CLIENT);
	memcpy(junk, &h, sizeof(h));
	expect_refused(m, junk, sizeof(junk), -EPROTO, "not an IPC-Direct hello", "100 bytes");
	h = hello(IPCD_SHM_ABI_MAJOR, IPCD_SHM_ABI_MINOR, 7);
	expect_refused(m, &h, sizeof(h), -EPROTO, "unknown connection kind 7", NULL);
	refused += 4;

	/* An admin hello with a malformed query, and an empty message: closed, no answer. */
	fds[0] = t_connect(m->sock);
	assert_true(fds[0] >= 0);
	h = hello(IPCD_SHM_ABI_MAJOR, IPCD_SHM_ABI_MINOR, IPCD_CTL_ADMIN);
	assert_int_equal(send(fds[0], &h, sizeof(h), MSG_NOSIGNAL), sizeof(h));
	assert_int_equal(send(fds[0], junk, 5, MSG_NOSIGNAL), 5);
	assert_int_equal(t_wait_eof(fds[0], T_WAIT_MS), 0);
	close(fds[0]);
	fds[0] = t_connect(m->sock);
	assert_true(fds[0] >= 0);
	assert_int_equal(send(fds[0], junk, 0, MSG_NOSIGNAL), 0);
	assert_int_equal(t_wait_eof(fds[0], T_WAIT_MS), 0);
	close(fds[0]);

	/* A silent connection is closed by the monitor. */
	fds[0] = t_connect(m->sock);
	assert_true(fds[0] >= 0);
	assert_int_equal(t_wait_eof(fds[0], T_WAIT_MS), 0);
	close(fds[0]);
	refused++;
	assert_true(t_mon_log_contains(m, "said no hello within 1 s"));

	/* More silent connections than the monitor holds (64): every one is closed. */
	for (i = 0; i < 70; i++) {
		fds[i] = t_connect(m->sock);
		assert_true(fds[i] >= 0);
	}
	for (i = 0; i < 70; i++) {
		assert_int_equal(t_wait_eof(fds[i], T_WAIT_MS), 0);
		close(fds[i]);
	}
	refused += 70;
	assert_int_equal(t_ctl_num(m, "counters", "refused"), refused);
	assert_int_equal(t_ctl_num(m, "counters", "registered"), 1);
	assert_int_equal(t_ctl_num(m, "status", "processes"), 0);

	/* After all that, a normal client attaches and calls. */
	t_attach(m, "it-after", &a);
	for (i = 0; i < 100; i++)
		assert_int_equal(t_echo_check(&a, 2, (uint64_t)i * 64, (uint16_t)(i % 49)), 0);
	assert_true(t_resp_ring_empty(&a));
	assert_int_equal(t_ctl_num(m, "status", "processes"), 1);
	ipcd_detach(&a);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- pipelined calls: more requests in flight than the response ring holds -- */

#define PIPELINED	90	/* > one ring of responses (56), < two */

static void test_pipelined_calls(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct ipcd_attach a;
	struct ipcd_req req;
	struct ipcd_resp resp;
	uint64_t deadline;
	unsigned int sent = 0, got = 0;
	int rc;

	t_mon_start(m);
	t_attach(m, "it-pipeline", &a);
	deadline = ipcd_deadline(T_CALL_TIMEOUT_NS);
	while (sent < PIPELINED) {
		memset(&req, 0, sizeof(req));
		req.opcode = IPCD_OP_ECHO;
		req.len = 8;
		req.cookie = sent + 1;
		memcpy(req.body, &req.cookie, 8);
		rc = ipcd_reqq_submit(&a.cl, &req);
		if (rc == 0) {
			sent++;
			continue;
		}
		assert_int_equal(rc, -EAGAIN);
		assert_true(ipcd_remaining(deadline) != 0);
		ipcd_spsc_wait_writable(&a.cl.chan.req, sizeof(req), 20000, 10 * T_NSEC_PER_MSEC);
	}
	/*
	 * Let the monitor go idle first: it announces a sleep in our mon_wait
	 * word. Requests are now queued behind a full response ring. (Not an
	 * assertion: if it never sleeps we just read on.)
	 */
	t_wait_word(&a.cl.chan.ctl->mon_wait, 1, 2000);
	/* Every accepted request is answered, in order, once we read the answers. */
	while (got < sent) {
		ssize_t n = ipcd_spsc_recv(&a.cl.chan.resp, &resp, sizeof(resp));

		if (n == -EAGAIN) {
			rc = ipcd_spsc_wait_readable(&a.cl.chan.resp, 20000, 10 * T_NSEC_PER_SEC);
			if (rc == -ETIMEDOUT)
				fail_msg("%u of %u pipelined requests answered; the rest stay "
					 "queued (monitor asleep?)", got, sent);
			continue;
		}
		assert_int_equal(n, sizeof(resp));
		assert_int_equal(resp.cookie, got + 1);
		assert_int_equal(resp.status, 0);
		assert_memory_equal(resp.body, &resp.cookie, 8);
		got++;
	}
	assert_true(t_resp_ring_empty(&a));
	ipcd_detach(&a);
	t_mon_stop(m);
	T_PASSED(s);
}

/* ---- 7. ipcdctl ---------------------------------------------------------- */

static const char *const commands[] = {
	"status", "processes", "listeners", "connections", "counters", "queues",
};

static void test_ipcdctl(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	const char *mode = m->mode == IPCD_QMODE_SHARED ? "shared" : "per-process";
	struct ipcd_attach a;
	char pat[256], env[160];
	unsigned int i;

	t_mon_start(m);
	t_attach(m, "it-ctl", &a);
	assert_int_equal(t_echo_check(&a, 3, 0, 16), 0);

	for (i = 0; i < IPCD_ARRAY_SIZE(commands); i++) {
		assert_int_equal(t_ctl(m, &out, false, commands[i]), 0);
		assert_string_equal(out.err, "");
		assert_true(out.out_len > 0);
		assert_true(out.out[out.out_len - 1] == '\n');
		assert_int_equal(t_ctl(m, &out, true, commands[i]), 0);
		assert_string_equal(out.err, "");
		assert_json_valid(commands[i], out.out);
	}

	/* status */
	t_ctl(m, &out, false, "status");
	snprintf(pat, sizeof(pat), "queue mode     %s\n", mode);
	assert_contains(out.out, pat);
	snprintf(pat, sizeof(pat), "processes      1 of %d\n", T_MON_MAX_PROCESSES);
	assert_contains(out.out, pat);
	snprintf(pat, sizeof(pat), "socket         %s\n", m->sock);
	assert_contains(out.out, pat);
	snprintf(pat, sizeof(pat), "ipcd-monitor   pid %d,", (int)m->pid);
	assert_contains(out.out, pat);
	t_ctl(m, &out, true, "status");
	snprintf(pat, sizeof(pat), "\"queue_mode\":\"%s\"", mode);
	assert_contains(out.out, pat);
	snprintf(pat, sizeof(pat), "\"socket\":\"%s\"", m->sock);
	assert_contains(out.out, pat);
	snprintf(pat, sizeof(pat), "\"config\":\"%s\"", m->conf);
	assert_contains(out.out, pat);
	assert_int_equal(t_ctl_num(m, "status", "pid"), m->pid);
	assert_int_equal(t_ctl_num(m, "status", "processes"), 1);
	assert_int_equal(t_ctl_num(m, "status", "max_processes"), T_MON_MAX_PROCESSES);

	/* processes and queues list us */
	snprintf(pat, sizeof(pat), "%-8d it-ctl", (int)getpid());
	t_ctl(m, &out, false, "processes");
	assert_contains(out.out, "PID");
	assert_contains(out.out, pat);
	t_ctl(m, &out, false, "queues");
	assert_contains(out.out, pat);
	assert_contains(out.out, "REQ-DEPTH");
	if (m->mode == IPCD_QMODE_SHARED)
		assert_contains(out.out, "doorbell queue");
	else
		assert_null(strstr(out.out, "doorbell queue"));
	snprintf(pat, sizeof(pat), "{\"pid\":%d,\"comm\":\"it-ctl\"", (int)getpid());
	t_ctl(m, &out, true, "processes");
	assert_contains(out.out, pat);
	t_ctl(m, &out, true, "queues");
	assert_contains(out.out, pat);

	/* nothing bound, nothing connected */
	t_ctl(m, &out, false, "listeners");
	assert_contains(out.out, "ADDRESS");
	t_ctl(m, &out, true, "listeners");
	assert_string_equal(out.out, "[]\n");
	t_ctl(m, &out, false, "connections");
	assert_contains(out.out, "A (CONNECTED) PID ADDRESS");
	assert_contains(out.out, "B (ACCEPTED) PID ADDRESS");
	assert_contains(out.out, "RING");
	assert_null(strstr(out.out, "fallback"));	/* no process reported one */
	t_ctl(m, &out, true, "connections");
	assert_string_equal(out.out, "[]\n");

	/* counters */
	t_ctl(m, &out, false, "counters");
	assert_contains(out.out, "registered      1\n");
	assert_int_equal(t_ctl_num(m, "counters", "echo"), 1);

	/* $IPCD_SOCKET instead of -s; --help; usage errors */
	{
		char *const argv[] = { (char *)IPCDCTL_BIN, (char *)"status", NULL };
		char *const help[] = { (char *)IPCDCTL_BIN, (char *)"--help", NULL };
		char *const bad[] = { (char *)IPCDCTL_BIN, (char *)"-s", m->sock,
				      (char *)"frobnicate", NULL };
		char *const none[] = { (char *)IPCDCTL_BIN, (char *)"-s", m->sock, NULL };
		char *const opt[] = { (char *)IPCDCTL_BIN, (char *)"--bogus", (char *)"status",
				      NULL };
		char *envp[] = { env, NULL };

		snprintf(env, sizeof(env), "IPCD_SOCKET=%s", m->sock);
		t_run(&out, NULL, argv, envp);
		assert_int_equal(out.code, 0);
		snprintf(pat, sizeof(pat), "queue mode     %s\n", mode);
		assert_contains(out.out, pat);
		t_run(&out, NULL, help, NULL);
		assert_int_equal(out.code, 0);
		assert_contains(out.out, "usage: ipcdctl");
		t_run(&out, NULL, bad, NULL);
		assert_int_equal(out.code, 2);
		assert_contains(out.err, "unknown command 'frobnicate'");
		assert_string_equal(out.out, "");
		t_run(&out, NULL, none, NULL);
		assert_int_equal(out.code, 2);
		t_run(&out, NULL, opt, NULL);
		assert_int_equal(out.code, 2);
	}
	/* admin queries left nothing behind: still one process */
	assert_int_equal(t_ctl_num(m, "status", "processes"), 1);
	ipcd_detach(&a);
	t_mon_stop(m);

	/* No monitor: exit 1 and say so, for every command. */
	for (i = 0; i < IPCD_ARRAY_SIZE(commands); i++) {
		assert_int_equal(t_ctl(m, &out, false, commands[i]), 1);
		assert_contains(out.err, "no monitor is running");
		assert_string_equal(out.out, "");
		assert_int_equal(t_ctl(m, &out, true, commands[i]), 1);
		assert_contains(out.err, "no monitor is running");
		assert_string_equal(out.out, "");
	}
	T_PASSED(s);
}

/* ---- 8. config errors ---------------------------------------------------- */

struct bad_config {
	const char *text;	/* "@": the control socket */
	const char *line;	/* ":N:" */
	const char *key;
};

static const struct bad_config bad_configs[] = {
	{ "# comment\ncontrol_socket = @\nqueue_mode = fast\n", ":3:", "queue_mode" },
	{ "control_socket = @\nmax_processes = 0\n", ":2:", "max_processes" },
	{ "control_socket = @\n\nno_such_key = 1\n", ":3:", "no_such_key" },
	{ "control_socket = @\nspin_us = 10\nspin_us = 20\n", ":3:", "spin_us" },
	{ "control_socket = @\nrequest_ring_bytes = 5000\n", ":2:", "request_ring_bytes" },
	{ "control_socket = @\nring_max_bytes = 3000\n", ":2:", "key 'ring_max_bytes'" },
	{ "control_socket = @\nring_bytes = 8388608\n", ":2:", "key 'ring_bytes'" },
	{ "control_socket = @\nring_bytes = 65536\nring_max_bytes = 8192\n", ":3:",
	  "key 'ring_max_bytes'" },
	{ "control_socket = @\nlog_level\n", ":2:", "log_level" },
	{ "log_level = info\ncontrol_socket = relative/@\n", ":2:", "control_socket" },
};

static void check_not_started(struct t_mon *m, const char *conf)
{
	pid_t pid = t_mon_spawn(m, conf);
	int code = t_wait(pid, T_MON_STOP_MS);

	if (code == 0 || code >= 128 || code < 0) {
		t_mon_print_logs(m);
		fail_msg("ipcd-monitor -c %s: exit %d, expected a failure exit", conf, code);
	}
	assert_true(access(m->sock, F_OK) < 0 && errno == ENOENT);
	assert_true(t_file_contains(m->log, "not started"));
}

static void test_config_errors(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	char path[256], pat[300];
	unsigned int i;

	for (i = 0; i < IPCD_ARRAY_SIZE(bad_configs); i++) {
		char *const argv[] = { (char *)IPCD_MONITOR_BIN, (char *)"--check-config", path,
				       NULL };
		FILE *f;

		snprintf(path, sizeof(path), "%s/bad-%u.conf", m->dir, i);
		f = fopen(path, "we");
		assert_non_null(f);
		for (const char *c = bad_configs[i].text; *c; c++) {
			if (*c == '@')
				fputs(m->sock, f);
			else
				fputc(*c, f);
		}
		fclose(f);

		t_run(&out, NULL, argv, NULL);
		assert_int_equal(out.code, 1);
		snprintf(pat, sizeof(pat), "%s%s", path, bad_configs[i].line);
		assert_contains(out.err, pat);
		assert_contains(out.err, bad_configs[i].key);
		assert_null(strstr(out.out, "valid"));

		check_not_started(m, path);
		assert_true(t_file_contains(m->log, pat));
	}

	/* The good config passes, and a missing file is an error naming it. */
	{
		char *const good[] = { (char *)IPCD_MONITOR_BIN, (char *)"--check-config", m->conf,
				       NULL };
		char *const missing[] = { (char *)IPCD_MONITOR_BIN, (char *)"--check-config",
					  path, NULL };

		t_run(&out, NULL, good, NULL);
		assert_int_equal(out.code, 0);
		snprintf(pat, sizeof(pat), "%s: valid", m->conf);
		assert_contains(out.out, pat);
		snprintf(path, sizeof(path), "%s/missing.conf", m->dir);
		t_run(&out, NULL, missing, NULL);
		assert_int_equal(out.code, 1);
		assert_contains(out.err, path);
		check_not_started(m, path);
	}

	/* A valid config whose socket directory cannot exist: start-up fails cleanly. */
	{
		FILE *f;

		snprintf(path, sizeof(path), "%s/plain-file", m->dir);
		f = fopen(path, "we");
		assert_non_null(f);
		fclose(f);
		snprintf(pat, sizeof(pat), "%s/nodir.conf", m->dir);
		f = fopen(pat, "we");
		assert_non_null(f);
		fprintf(f, "control_socket = %s/monitor.sock\n", path);
		fclose(f);
		check_not_started(m, pat);
		assert_true(t_file_contains(m->log, "control socket"));
	}
	T_PASSED(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_BOTH(test_register_calls),
		T_BOTH(test_handshake),
		T_BOTH(test_pipelined_calls),
		T_BOTH(test_ipcdctl),
		T_ONCE(test_config_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
