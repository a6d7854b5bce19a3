/* SPDX-License-Identifier: MIT */
/*
 * it_monitor_ports.c - the port namespace through a real monitor, with a real
 * unprivileged process: privileged ports, the config's bind rules, conflicts
 * between processes and users, ephemeral ports, and who sees which binds.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <ipcd/proto.h>

#include "t_helpers.h"
#include "t_monitor.h"

#define NOBODY		65534u
#define CHILD_ALARM_S	60

/* BIND ::ffff:127.0.0.1 (@any: 0.0.0.0) to @port. Returns the status; *@id, *@got on success. */
static int bind4(struct ipcd_attach *a, bool any, uint16_t port, uint32_t flags, uint32_t *id,
		 uint16_t *got)
{
	struct ipcd_bind_req b = { .port = port, .flags = flags };
	struct ipcd_bind_resp out;
	struct ipcd_resp resp;
	int rc;

	b.addr[10] = b.addr[11] = 0xff;
	if (!any) {
		b.addr[12] = 127;
		b.addr[15] = 1;
	}
	rc = t_call(a, IPCD_OP_BIND, &b, sizeof(b), &resp, T_CALL_TIMEOUT_NS);
	if (rc)
		return rc;
	if (resp.status == 0) {
		memcpy(&out, resp.body, sizeof(out));
		t_note_bind(out.id, b.addr, out.port, flags);
		if (id)
			*id = out.id;
		if (got)
			*got = out.port;
	}
	return resp.status;
}

static int listen_id(struct ipcd_attach *a, uint32_t id)
{
	struct ipcd_listen_req l = { .id = id, .backlog = 16, .kfd = t_kernel_listener(id) };
	struct ipcd_resp resp;
	int rc = t_call(a, IPCD_OP_LISTEN, &l, sizeof(l), &resp, T_CALL_TIMEOUT_NS);

	return rc ? rc : resp.status;
}

/* The monitor's temp dir is 0700: let another user reach the socket, as /run/ipcd does. */
static void open_dir(struct t_mon *m)
{
	assert_int_equal(chmod(m->dir, 0755), 0);
}

/* In a child: become nobody (gid and groups too), then attach. */
static void child_as_nobody(const struct t_mon *m, struct ipcd_attach *a)
{
	char why[256];
	gid_t none[1] = { NOBODY };

	T_CHECK_EQ(setgroups(1, none), 0);
	T_CHECK_EQ(setgid(NOBODY), 0);
	T_CHECK_EQ(setuid(NOBODY), 0);
	T_CHECK_EQ(ipcd_attach(m->sock, "nobody", a, why, sizeof(why)), 0);
}

/* Ports below 1024 need root or CAP_NET_BIND_SERVICE; the monitor decides, not the request. */
static void test_privileged_ports(void **state)
{
	struct t_state *s = *state;
	struct ipcd_attach a;
	uint32_t id = 0;
	uint16_t port;
	pid_t pid;

	open_dir(&s->mon);
	t_mon_start(&s->mon);
	t_attach(&s->mon, "root", &a);
	assert_int_equal(bind4(&a, false, 80, 0, &id, &port), 0);
	assert_int_equal(port, 80);

	pid = t_fork(CHILD_ALARM_S);
	if (pid == 0) {
		struct ipcd_attach n;
		uint16_t eph = 0;

		child_as_nobody(&s->mon, &n);
		T_CHECK_EQ(bind4(&n, false, 81, 0, NULL, NULL), -EACCES);
		T_CHECK_EQ(bind4(&n, true, 1023, IPCD_BIND_REUSEADDR, NULL, NULL), -EACCES);
		T_CHECK_EQ(bind4(&n, false, 8081, 0, NULL, &port), 0);
		T_CHECK_EQ(port, 8081);
		/* An ephemeral port is never privileged, even for nobody. */
		T_CHECK_EQ(bind4(&n, false, 0, 0, NULL, &eph), 0);
		T_CHECK(eph >= 1024);
		ipcd_detach(&n);
		_exit(0);
	}
	assert_int_equal(t_wait(pid, T_WAIT_MS), 0);
	assert_true(t_mon_log_contains(&s->mon, "bind to port 81 denied"));
	ipcd_detach(&a);
	t_mon_stop(&s->mon);
	T_PASSED(s);
}

/* The config's bind_rule lines apply after the kernel's rules, first match wins. */
static void test_bind_rules(void **state)
{
	struct t_state *s = *state;
	struct ipcd_attach a;
	pid_t pid;

	t_mon_write_config(&s->mon, "bind_rule = deny uid=65534 ports=9000-9099\n"
				    "bind_rule = allow gid=65534 ports=9050\n"
				    "bind_rule = deny uid=* ports=9200\n");
	open_dir(&s->mon);
	t_mon_start(&s->mon);
	t_attach(&s->mon, "root", &a);
	assert_int_equal(bind4(&a, false, 9050, 0, NULL, NULL), 0);	/* not root's rule */
	assert_int_equal(bind4(&a, false, 9200, 0, NULL, NULL), -EACCES);

	pid = t_fork(CHILD_ALARM_S);
	if (pid == 0) {
		struct ipcd_attach n;

		child_as_nobody(&s->mon, &n);
		T_CHECK_EQ(bind4(&n, false, 9000, 0, NULL, NULL), -EACCES);
		T_CHECK_EQ(bind4(&n, false, 9099, 0, NULL, NULL), -EACCES);
		/* The uid rule comes first, so the gid allow for 9050 never applies. */
		T_CHECK_EQ(bind4(&n, false, 9051, 0, NULL, NULL), -EACCES);
		T_CHECK_EQ(bind4(&n, false, 9100, 0, NULL, NULL), 0);
		T_CHECK_EQ(bind4(&n, false, 9200, 0, NULL, NULL), -EACCES);
		ipcd_detach(&n);
		_exit(0);
	}
	assert_int_equal(t_wait(pid, T_WAIT_MS), 0);
	ipcd_detach(&a);
	t_mon_stop(&s->mon);
	T_PASSED(s);
}

/*
 * Conflicts between processes follow the kernel: a listening bind blocks
 * everyone; SO_REUSEPORT pairs only within one uid; a process's binds go
 * when it dies.
 */
static void test_conflicts(void **state)
{
	struct t_state *s = *state;
	struct ipcd_attach a;
	uint32_t id = 0, rp = 0;
	pid_t pid;
	int ready[2];
	char c;

	open_dir(&s->mon);
	t_mon_start(&s->mon);
	t_attach(&s->mon, "owner", &a);
	assert_int_equal(bind4(&a, false, 7000, 0, &id, NULL), 0);
	assert_int_equal(listen_id(&a, id), 0);
	assert_int_equal(bind4(&a, false, 7001, IPCD_BIND_REUSEPORT, &rp, NULL), 0);
	assert_int_equal(listen_id(&a, rp), 0);

	pid = t_fork(CHILD_ALARM_S);
	if (pid == 0) {
		struct ipcd_attach o;
		char why[256];

		T_CHECK_EQ(ipcd_attach(s->mon.sock, "other", &o, why, sizeof(why)), 0);
		T_CHECK_EQ(bind4(&o, false, 7000, 0, NULL, NULL), -EADDRINUSE);
		T_CHECK_EQ(bind4(&o, true, 7000, IPCD_BIND_REUSEADDR, NULL, NULL), -EADDRINUSE);
		/* Same uid (root) and both REUSEPORT: shared. */
		T_CHECK_EQ(bind4(&o, false, 7001, IPCD_BIND_REUSEPORT, NULL, NULL), 0);
		ipcd_detach(&o);
		_exit(0);
	}
	assert_int_equal(t_wait(pid, T_WAIT_MS), 0);

	assert_int_equal(pipe(ready), 0);
	pid = t_fork(CHILD_ALARM_S);
	if (pid == 0) {
		struct ipcd_attach n;

		close(ready[0]);
		child_as_nobody(&s->mon, &n);
		/* Another uid cannot join root's REUSEPORT group. */
		T_CHECK_EQ(bind4(&n, false, 7001, IPCD_BIND_REUSEPORT, NULL, NULL), -EADDRINUSE);
		T_CHECK_EQ(bind4(&n, false, 7002, 0, NULL, NULL), 0);
		T_CHECK(write(ready[1], "x", 1) == 1);
		pause();	/* killed below, holding 7002 */
		_exit(0);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	assert_int_equal(bind4(&a, false, 7002, 0, NULL, NULL), -EADDRINUSE);
	assert_int_equal(t_kill_wait(pid), 128 + SIGKILL);
	/* Its bind went with it: converge (the monitor reaps on EOF). */
	for (int i = 0; i < 2000 && bind4(&a, false, 7002, 0, NULL, NULL) == -EADDRINUSE; i++)
		t_sleep_ms(5);
	assert_int_equal(t_ctl_wait_num(&s->mon, "status", "processes", 1), 1);
	ipcd_detach(&a);
	t_mon_stop(&s->mon);
	T_PASSED(s);
}

/* ipcdctl listeners: root sees every bind; another user sees only its own. */
static void test_listeners_view(void **state)
{
	struct t_state *s = *state;
	char *const argv[] = { (char *)"setpriv", (char *)"--reuid=65534", (char *)"--regid=65534",
			       (char *)"--clear-groups", (char *)IPCDCTL_BIN, (char *)"-s",
			       s->mon.sock, (char *)"--json", (char *)"listeners", NULL };
	struct ipcd_attach a;
	struct t_out o;
	uint32_t id = 0;
	pid_t pid;
	int ready[2];
	char c;

	open_dir(&s->mon);
	t_mon_start(&s->mon);
	t_attach(&s->mon, "root-l", &a);
	assert_int_equal(bind4(&a, false, 7100, 0, &id, NULL), 0);
	assert_int_equal(listen_id(&a, id), 0);

	assert_int_equal(pipe(ready), 0);
	pid = t_fork(CHILD_ALARM_S);
	if (pid == 0) {
		struct ipcd_attach n;
		uint32_t nid;

		close(ready[0]);
		child_as_nobody(&s->mon, &n);
		T_CHECK_EQ(bind4(&n, false, 7101, 0, &nid, NULL), 0);
		T_CHECK(write(ready[1], "x", 1) == 1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);

	assert_int_equal(t_ctl(&s->mon, &o, true, "listeners"), 0);
	assert_non_null(strstr(o.out, "\"port\":7100"));
	assert_non_null(strstr(o.out, "\"port\":7101"));
	assert_non_null(strstr(o.out, "\"state\":\"listen\""));
	assert_true(t_json_balanced(o.out));

	if (access("/usr/bin/setpriv", X_OK) != 0) {
		t_kill_wait(pid);
		ipcd_detach(&a);
		skip();
	}
	t_run(&o, NULL, argv, NULL);
	assert_int_equal(o.code, 0);
	assert_null(strstr(o.out, "\"port\":7100"));
	assert_non_null(strstr(o.out, "\"port\":7101"));

	assert_int_equal(t_kill_wait(pid), 128 + SIGKILL);
	ipcd_detach(&a);
	t_mon_stop(&s->mon);
	T_PASSED(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_BOTH(test_privileged_ports),
		T_ONCE(test_bind_rules),
		T_ONCE(test_conflicts),
		T_ONCE(test_listeners_view),
	};

	if (geteuid() != 0) {
		printf("it_monitor_ports: needs root (to run a second, unprivileged user)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
