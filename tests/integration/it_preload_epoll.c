/* SPDX-License-Identifier: MIT */
/*
 * it_preload_epoll.c - event-loop semantics under the preload (issue #5
 * items 1, 2, 4, 5): every case of tests/progs/ipcd-evloop runs twice,
 *   (a) without the preload: the kernel is the oracle, so a failure here
 *       means the check itself is wrong;
 *   (b) under ipcd-run with a monitor: it must pass the same checks (the
 *       same "ok" lines, in the same order), and every connection it made
 *       must have been accelerated (ipcdctl counters, as it_preload_accel);
 *       only its connects to a port nobody listens on go to the kernel
 *       (counted as fallbacks, no_listener).
 * Then nothing may be left behind (processes, connections, monitor fds).
 *
 * Cases: epoll (API and errors, mixed sets with kernel fds, LT, EPOLLET,
 * EPOLLONESHOT, EPOLLEXCLUSIVE, EPOLLRDHUP/EPOLLHUP/EPOLLERR, RST and FIN,
 * registered before connect/listen, EPOLLOUT after EAGAIN, two sets, nested
 * sets, data, maxevents, close, dup, EINTR and signal masks, timeouts,
 * wake-ups from threads and a child; no lost wake-up when another thread
 * re-arms EPOLLONESHOT by MOD or DEL+ADD, adds a connection to a set held
 * by the outer set or the poll a thread sleeps on, or closes the registered
 * fd while a dup keeps the connection); poll, ppoll, select, pselect (mixed
 * sets, POLLNVAL/EBADF, hangups, timeouts, EINTR, signal masks);
 * dup/dup2/dup3/F_DUPFD; threads (duplex on one socket, blocking and
 * EPOLLET, accept from several threads, a blocked recv woken); fork and
 * exec (parent and child writing one end in turns, a grandchild or a
 * daemon(3) keeping a connection its exited parent left open, an end
 * dup2'ed onto 0 and 1 of /bin/cat by fork+exec, posix_spawn and vfork,
 * FD_CLOEXEC across exec, a failed exec; a listener inherited across
 * fork+exec and posix_spawn accepting in the new image, its queued
 * connection too, and a close-on-exec one closed by the exec). The
 * connections a program exec'd by the case accepts count as the case's
 * accelerated connections.
 *
 * The program bounds every wait itself (a hang prints HANG and exits 3);
 * T_PROG_GUARD_MS is the last resort. ThreadSanitizer builds skip (77).
 * T_FILTER='test_exec_*' runs only the matching tests (cmocka's filter).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t_progs.h"

#ifndef IPCD_EVLOOP_BIN
#error "IPCD_EVLOOP_BIN must name the ipcd-evloop test program"
#endif

/* The "ok " lines of @out, in order (a malloc'ed copy). */
static char *ok_lines(const char *out)
{
	size_t len = strlen(out), o = 0;
	char *res = malloc(len + 1);
	const char *p = out;

	if (!res)
		fail_msg("out of memory");
	while (*p) {
		size_t n = strcspn(p, "\n");

		if (!strncmp(p, "ok ", 3)) {
			memcpy(res + o, p, n);
			o += n;
			res[o++] = '\n';
		}
		p += n;
		if (*p)
			p++;
	}
	res[o] = '\0';
	return res;
}

/* The last line of @text (without its newline) into @buf; "(none)" if empty. */
static void last_line(const char *text, char *buf, size_t len)
{
	size_t n = strlen(text);
	const char *start;

	while (n && text[n - 1] == '\n')
		n--;
	if (!n) {
		snprintf(buf, len, "(none)");
		return;
	}
	for (start = text + n; start > text && start[-1] != '\n'; start--)
		;
	snprintf(buf, len, "%.*s", (int)(text + n - start), start);
}

/* The first line of @text containing @needle, or "" (static copy). */
static const char *line_with(const char *text, const char *needle)
{
	static char line[1024];
	const char *hit = strstr(text, needle), *start;
	size_t n;

	if (!hit)
		return "";
	for (start = hit; start > text && start[-1] != '\n'; start--)
		;
	n = strcspn(start, "\n");
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memcpy(line, start, n);
	line[n] = '\0';
	return line;
}

/* The first line where @a and @b differ (for the message). */
static void first_diff(const char *a, const char *b, char *buf, size_t len)
{
	while (*a && *b) {
		size_t na = strcspn(a, "\n"), nb = strcspn(b, "\n");

		if (na != nb || memcmp(a, b, na)) {
			snprintf(buf, len, "kernel: %.*s\n  preloaded: %.*s", (int)na, a,
				 (int)nb, b);
			return;
		}
		a += na + (a[na] ? 1 : 0);
		b += nb + (b[nb] ? 1 : 0);
	}
	snprintf(buf, len, "kernel: %.200s\n  preloaded: %.200s", *a ? a : "(end)",
		 *b ? b : "(end)");
}

/*
 * t_expect_accelerated(), except that exactly @refused connects (to a port
 * nobody listens on) fell back to the kernel.
 */
static void expect_counters(const struct t_mon *m, const struct t_ctr *c0, long long pairs,
			    long long refused, const char *what)
{
	struct t_ctr now;

	if (!refused) {
		t_expect_accelerated(m, c0, pairs, what);
		return;
	}
	t_ctr_read(m, &now);
	fprintf(stderr, "%s: %lld accelerated connections created, %lld accepted, %lld fallbacks "
		"(%lld refused connects)\n", what, now.created - c0->created,
		now.accepted - c0->accepted, now.fallbacks - c0->fallbacks, refused);
	if (now.created - c0->created < pairs || now.accepted - c0->accepted < pairs ||
	    now.fallbacks - c0->fallbacks != refused)
		fail_msg("%s: expected >= %lld accelerated connections and exactly %lld fallbacks "
			 "(the refused connects): %lld created, %lld accepted, %lld fallbacks",
			 what, pairs, refused, now.created - c0->created,
			 now.accepted - c0->accepted, now.fallbacks - c0->fallbacks);
}

static void run_case(struct t_state *s, const char *name)
{
	char *const argv[] = { (char *)IPCD_EVLOOP_BIN, (char *)name, NULL };
	char label[64], summary[96], diff[1200], *kern_ok, *pre_ok, *err;
	const char *line;
	uint64_t checks = 0, pairs = 0, refused = 0, pchecks = 0;
	struct t_prog k, p;
	struct t_ctr c0;
	int code;

	/* (a) the kernel */
	snprintf(label, sizeof(label), "kernel-%s", name);
	t_prog_startv(&k, s->mon.dir, label, false, argv);
	code = t_prog_wait(&k, T_PROG_GUARD_MS);
	snprintf(summary, sizeof(summary), "case %s passed", name);
	line = t_line(k.out, summary);
	if (code != 0 || !line || !t_kv_u64(line, "checks", false, &checks) ||
	    !t_kv_u64(line, "pairs", false, &pairs) ||
	    !t_kv_u64(line, "refused", false, &refused)) {
		t_prog_dump(&k);
		err = t_file_read(k.err_path);
		fail_msg("%s WITHOUT the preload (the kernel is the oracle: the check is wrong): "
			 "exit %d: %s", name, code, line_with(err, "ipcd-evloop"));
	}
	fprintf(stderr, "%s: kernel: %" PRIu64 " checks, %" PRIu64 " connections\n", name,
		checks, pairs);
	kern_ok = ok_lines(k.out);

	/* (b) preloaded, with a monitor */
	t_case_begin(s, &c0);
	snprintf(label, sizeof(label), "preload-%s", name);
	t_prog_startv(&p, s->mon.dir, label, true, argv);
	code = t_prog_wait(&p, T_PROG_GUARD_MS);
	pre_ok = ok_lines(p.out);
	if (code != 0) {
		char how[64], last[300];

		err = t_file_read(p.err_path);
		line = line_with(err, "ipcd-evloop ");
		if (code == 1 || code == 3)
			snprintf(how, sizeof(how), "%s", code == 1 ? "mismatch" : "hang");
		else if (code > 128)
			snprintf(how, sizeof(how), "killed by SIG%s", sigabbrev_np(code - 128) ?
				 sigabbrev_np(code - 128) : "?");
		else
			snprintf(how, sizeof(how), "%s", code < 0 ? "hang guard" : "error");
		last_line(pre_ok, last, sizeof(last));
		t_prog_dump(&p);
		fail_msg("%s under the preload: exit %d (%s) after %u of %" PRIu64 " checks: %s\n"
			 "  last check passed: %s", name, code, how, t_count_str(pre_ok, "\n"),
			 checks, *line ? line : "(no message)", last);
	}
	if (strcmp(kern_ok, pre_ok)) {
		first_diff(kern_ok, pre_ok, diff, sizeof(diff));
		t_prog_dump(&p);
		fail_msg("%s: the preloaded run's checks differ from the kernel's:\n  %s", name,
			 diff);
	}
	line = t_line(p.out, summary);
	if (!line || !t_kv_u64(line, "checks", false, &pchecks) || pchecks != checks)
		fail_msg("%s: preloaded summary \"%s\", kernel checks %" PRIu64, name,
			 line ? line : "(none)", checks);
	fprintf(stderr, "%s: preloaded: the same %" PRIu64 " checks\n", name, checks);
	expect_counters(&s->mon, &c0, (long long)pairs, (long long)refused, name);
	free(kern_ok);
	free(pre_ok);
	t_prog_free(&k);
	t_prog_free(&p);
	t_case_finish(s);
}

/* One cmocka test per ipcd-evloop case: test_epoll_lt runs "epoll-lt". */
#define EV_CASE(id)								\
	static void test_##id(void **state)					\
	{									\
		char name[64];							\
		snprintf(name, sizeof(name), "%s", #id);			\
		for (char *c = name; *c; c++)					\
			if (*c == '_')						\
				*c = '-';					\
		run_case(*state, name);						\
	}

EV_CASE(epoll_api)
EV_CASE(epoll_mixed)
EV_CASE(epoll_lt)
EV_CASE(epoll_et)
EV_CASE(epoll_oneshot)
EV_CASE(epoll_exclusive)
EV_CASE(epoll_rdhup)
EV_CASE(epoll_rst)
EV_CASE(epoll_fin)
EV_CASE(epoll_connect)
EV_CASE(epoll_out)
EV_CASE(epoll_two_sets)
EV_CASE(epoll_nested)
EV_CASE(epoll_data)
EV_CASE(epoll_maxevents)
EV_CASE(epoll_close)
EV_CASE(epoll_dup)
EV_CASE(epoll_eintr)
EV_CASE(epoll_timeout)
EV_CASE(epoll_wake)
EV_CASE(epoll_mod_wake)
EV_CASE(epoll_nested_add)
EV_CASE(epoll_dup_close_wake)
EV_CASE(poll_mixed)
EV_CASE(poll_out)
EV_CASE(poll_rdhup)
EV_CASE(poll_rst)
EV_CASE(poll_nval)
EV_CASE(poll_timeout)
EV_CASE(poll_eintr)
EV_CASE(poll_sigmask)
EV_CASE(dup_stream)
EV_CASE(dup_errors)
EV_CASE(dup_close)
EV_CASE(threads_duplex)
EV_CASE(threads_duplex_epoll)
EV_CASE(threads_accept)
EV_CASE(threads_recv_wake)
EV_CASE(fork_order)
EV_CASE(fork_parent_exits)
EV_CASE(fork_daemon)
EV_CASE(exec_inetd)
EV_CASE(exec_cloexec)
EV_CASE(exec_spawn)
EV_CASE(exec_vfork)
EV_CASE(exec_fail)
EV_CASE(exec_listener)
EV_CASE(exec_listener_cloexec)
EV_CASE(spawn_listener)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_ONCE(test_epoll_api),
		T_ONCE(test_epoll_mixed),
		T_ONCE(test_epoll_lt),
		T_ONCE(test_epoll_et),
		T_ONCE(test_epoll_oneshot),
		T_ONCE(test_epoll_exclusive),
		T_ONCE(test_epoll_rdhup),
		T_ONCE(test_epoll_rst),
		T_ONCE(test_epoll_fin),
		T_ONCE(test_epoll_connect),
		T_ONCE(test_epoll_out),
		T_ONCE(test_epoll_two_sets),
		T_ONCE(test_epoll_nested),
		T_ONCE(test_epoll_data),
		T_ONCE(test_epoll_maxevents),
		T_ONCE(test_epoll_close),
		T_ONCE(test_epoll_dup),
		T_ONCE(test_epoll_eintr),
		T_ONCE(test_epoll_timeout),
		T_ONCE(test_epoll_wake),
		T_ONCE(test_epoll_mod_wake),
		T_ONCE(test_epoll_nested_add),
		T_ONCE(test_epoll_dup_close_wake),
		T_ONCE(test_poll_mixed),
		T_ONCE(test_poll_out),
		T_ONCE(test_poll_rdhup),
		T_ONCE(test_poll_rst),
		T_ONCE(test_poll_nval),
		T_ONCE(test_poll_timeout),
		T_ONCE(test_poll_eintr),
		T_ONCE(test_poll_sigmask),
		T_ONCE(test_dup_stream),
		T_ONCE(test_dup_errors),
		T_ONCE(test_dup_close),
		T_ONCE(test_threads_duplex),
		T_ONCE(test_threads_duplex_epoll),
		T_ONCE(test_threads_accept),
		T_ONCE(test_threads_recv_wake),
		T_ONCE(test_fork_order),
		T_ONCE(test_fork_parent_exits),
		T_ONCE(test_fork_daemon),
		T_ONCE(test_exec_inetd),
		T_ONCE(test_exec_cloexec),
		T_ONCE(test_exec_spawn),
		T_ONCE(test_exec_vfork),
		T_ONCE(test_exec_fail),
		T_ONCE(test_exec_listener),
		T_ONCE(test_exec_listener_cloexec),
		T_ONCE(test_spawn_listener),
	};

#if defined(IPCD_SANITIZED) && !defined(IPCD_ASAN_RUNTIME)
	fprintf(stderr, "it_preload_epoll: skipped in ThreadSanitizer builds "
			"(ThreadSanitizer cannot be preloaded)\n");
	return T_EXIT_SKIP;
#endif
	if (getenv("T_FILTER"))
		cmocka_set_test_filter(getenv("T_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
