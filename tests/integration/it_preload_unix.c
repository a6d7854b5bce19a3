/* SPDX-License-Identifier: MIT */
/*
 * it_preload_unix.c - socketpair(AF_UNIX, SOCK_STREAM) under the preload
 * (issue #6): every case of tests/progs/ipcd-unix runs twice,
 *   (a) without the preload: the kernel is the oracle, so a failure here
 *       means the check itself is wrong;
 *   (b) under ipcd-run with a monitor: it must pass the same checks (the
 *       same "ok" lines, in the same order), and the monitor must have made
 *       at least as many socketpairs as the case did (counter "socketpairs"
 *       under "connections" in ipcdctl --json counters; the case prints its
 *       count: the socketpairs of the program itself and of the python3
 *       script it runs, all preloaded); for the named-* cases (pathname and
 *       abstract AF_UNIX stream sockets), the counter "unix_connected" must
 *       have grown by at least the named connections the case counted (both
 *       ends preloaded, accepted while the connector lived), and no listener
 *       may stay registered ("unix_listeners" back to 0) once it ended.
 * Then nothing may be left behind (processes, connections, monitor fds).
 *
 * Cases: basics (names, options, SO_PEERCRED, fstat, fcntl, FIONREAD,
 * shutdown, close, ECONNRESET, EAGAIN, poll/epoll states), data-fork
 * (100000 round trips, 256 MiB one way, ends shared by processes in turns),
 * scm-rights-order (files passed among plain sends, reads cut as the
 * kernel cuts them), scm-rights-accelerated (pipe and socketpair ends
 * passed: used, closed, dropped, truncated, CLOEXEC, across exec),
 * scm-credentials, python (multiprocessing and socket; skipped without
 * python3), exec (cat on a socketpair end: fork+exec, posix_spawn);
 * named-basics (a path: names, accept's address, SO_PEERCRED, errors,
 * backlog, data, then the basics' checks on connected ends), named-abstract,
 * named-fork-exec, named-scm-rights, named-faults (SIGKILLed ends, a
 * listener closed with connections pending), named-perms (as root, a child
 * become nobody; skipped otherwise), named-python (socketserver,
 * multiprocessing.connection).
 *
 * The program bounds every wait itself (a hang prints HANG and exits 3);
 * the guards here are the last resort. ThreadSanitizer builds skip (77).
 * T_FILTER='test_basics' runs only the matching tests (cmocka's filter).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t_progs.h"

#ifndef IPCD_UNIX_BIN
#error "IPCD_UNIX_BIN must name the ipcd-unix test program"
#endif

/* Hang guard for a run of python3 (the program's own guards act first). */
#define GUARD_REAL_MS	(600000 * T_SLOWDOWN)

static struct t_out ctl;

/* What a case holds: static, so that a failed case (cmocka jumps out) leaks nothing. */
static struct t_prog kern, pre;
static char *kern_ok, *pre_ok, *err;

static void case_free(void)
{
	t_prog_free(&kern);
	t_prog_free(&pre);
	free(kern_ok);
	free(pre_ok);
	free(err);
	kern_ok = pre_ok = err = NULL;
}

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

static void show_counters(const struct t_mon *m)
{
	if (t_ctl(m, &ctl, false, "counters") == 0)
		fprintf(stderr, "---- ipcdctl counters ----\n%s----\n", ctl.out);
}

static void run_case(struct t_state *s, const char *name, int guard_ms)
{
	char *const argv[] = { (char *)IPCD_UNIX_BIN, (char *)name, NULL };
	char label[64], summary[96], diff[1200], why[300] = "";
	const char *line;
	uint64_t checks = 0, pairs = 0, pchecks = 0, ppairs = 0, named = 0, pnamed = 0;
	long long pairs0, pairs1, named0 = 0, named1 = 0, lis = 0;
	struct t_ctr c0, c1;
	int code;

	case_free();

	/* (a) the kernel */
	snprintf(label, sizeof(label), "kernel-%s", name);
	t_prog_startv(&kern, s->mon.dir, label, false, argv);
	code = t_prog_wait(&kern, guard_ms);
	if (code == T_EXIT_SKIP) {
		snprintf(summary, sizeof(summary), "case %s skipped", name);
		line = t_line(kern.out, summary);
		fprintf(stderr, "%s: %s\n", name, line ? line : "skipped");
		case_free();
		skip();
	}
	snprintf(summary, sizeof(summary), "case %s passed", name);
	line = t_line(kern.out, summary);
	if (code != 0 || !line || !t_kv_u64(line, "checks", false, &checks) ||
	    !t_kv_u64(line, "socketpairs", false, &pairs) ||
	    !t_kv_u64(line, "named", false, &named)) {
		t_prog_dump(&kern);
		err = t_file_read(kern.err_path);
		fail_msg("%s WITHOUT the preload (the kernel is the oracle: the check is wrong): "
			 "exit %d: %s", name, code, line_with(err, "ipcd-unix"));
	}
	fprintf(stderr, "%s: kernel: %" PRIu64 " checks, %" PRIu64 " socketpairs made, %" PRIu64
		" named connections\n", name, checks, pairs, named);
	kern_ok = ok_lines(kern.out);

	/* (b) preloaded, with a monitor */
	t_case_begin(s, &c0);
	pairs0 = t_counter(&s->mon, "socketpairs");
	if (named)
		named0 = t_counter(&s->mon, "unix_connected");
	snprintf(label, sizeof(label), "preload-%s", name);
	t_prog_startv(&pre, s->mon.dir, label, true, argv);
	code = t_prog_wait(&pre, guard_ms);
	pre_ok = ok_lines(pre.out);
	if (code != 0) {
		char how[64], last[300];

		err = t_file_read(pre.err_path);
		line = line_with(err, "ipcd-unix ");
		if (code == 1 || code == 3)
			snprintf(how, sizeof(how), "%s", code == 1 ? "mismatch" : "hang");
		else if (code > 128)
			snprintf(how, sizeof(how), "killed by SIG%s", sigabbrev_np(code - 128) ?
				 sigabbrev_np(code - 128) : "?");
		else
			snprintf(how, sizeof(how), "%s", code < 0 ? "hang guard" : "error");
		last_line(pre_ok, last, sizeof(last));
		t_prog_dump(&pre);
		fail_msg("%s under the preload: exit %d (%s) after %u of %" PRIu64 " checks: %s\n"
			 "  last check passed: %s", name, code, how, t_count_str(pre_ok, "\n"),
			 checks, *line ? line : "(no message)", last);
	}
	if (strcmp(kern_ok, pre_ok)) {
		first_diff(kern_ok, pre_ok, diff, sizeof(diff));
		t_prog_dump(&pre);
		fail_msg("%s: the preloaded run's checks differ from the kernel's:\n  %s", name,
			 diff);
	}
	line = t_line(pre.out, summary);
	if (!line || !t_kv_u64(line, "checks", false, &pchecks) || pchecks != checks ||
	    !t_kv_u64(line, "socketpairs", false, &ppairs) ||
	    !t_kv_u64(line, "named", false, &pnamed))
		fail_msg("%s: preloaded summary \"%s\", kernel checks %" PRIu64, name,
			 line ? line : "(none)", checks);
	fprintf(stderr, "%s: preloaded: the same %" PRIu64 " checks\n", name, checks);
	if (ppairs > pairs)
		pairs = ppairs;
	if (pnamed > named)
		named = pnamed;

	/* what the monitor saw: socketpairs made; then the leak checks, whatever it saw */
	pairs1 = t_counter(&s->mon, "socketpairs");
	t_ctr_read(&s->mon, &c1);
	fprintf(stderr, "%s: monitor: %lld socketpairs made during the run (the case made %" PRIu64
		"), %lld connections created, %lld fallbacks\n", name, pairs1 - pairs0, pairs,
		c1.created - c0.created, c1.fallbacks - c0.fallbacks);
	if (pairs1 - pairs0 < (long long)pairs)
		snprintf(why, sizeof(why), "the monitor made %lld socketpairs during the run; the "
			 "case made %" PRIu64 " (socketpair() of the program and of python3), all "
			 "in preloaded processes", pairs1 - pairs0, pairs);
	if (named) {
		named1 = t_counter(&s->mon, "unix_connected");
		/* every listener closed or its process gone: none stays registered */
		lis = t_ctl_wait_num(&s->mon, "counters", "unix_listeners", 0);
		fprintf(stderr, "%s: monitor: unix_connected grew by %lld (the case made %" PRIu64
			" named connections); unix_listeners now %lld\n", name, named1 - named0,
			named, lis);
		if (!why[0] && named1 - named0 < (long long)named)
			snprintf(why, sizeof(why), "unix_connected grew by %lld during the "
				 "run; the case made %" PRIu64 " named AF_UNIX connections between "
				 "preloaded processes", named1 - named0, named);
		if (!why[0] && lis != 0)
			snprintf(why, sizeof(why), "%lld named listeners still registered "
				 "(unix_listeners) after every process of the case exited", lis);
	}
	case_free();
	t_case_finish(s);
	if (why[0]) {
		s->passed = false;
		show_counters(&s->mon);
		fail_msg("%s: NOT accelerated as expected: %s", name, why);
	}
}

/* One cmocka test per ipcd-unix case: test_data_fork runs "data-fork". */
#define UNIX_CASE(id, guard)							\
	static void test_##id(void **state)					\
	{									\
		char name[64];							\
		snprintf(name, sizeof(name), "%s", #id);			\
		for (char *c = name; *c; c++)					\
			if (*c == '_')						\
				*c = '-';					\
		run_case(*state, name, guard);					\
	}

UNIX_CASE(basics, T_PROG_GUARD_MS)
UNIX_CASE(data_fork, T_PROG_GUARD_MS)
UNIX_CASE(scm_rights_order, T_PROG_GUARD_MS)
UNIX_CASE(scm_rights_accelerated, T_PROG_GUARD_MS)
UNIX_CASE(scm_credentials, T_PROG_GUARD_MS)
UNIX_CASE(python, GUARD_REAL_MS)
UNIX_CASE(exec, T_PROG_GUARD_MS)
UNIX_CASE(named_basics, T_PROG_GUARD_MS)
UNIX_CASE(named_abstract, T_PROG_GUARD_MS)
UNIX_CASE(named_fork_exec, T_PROG_GUARD_MS)
UNIX_CASE(named_scm_rights, T_PROG_GUARD_MS)
UNIX_CASE(named_faults, T_PROG_GUARD_MS)
UNIX_CASE(named_perms, T_PROG_GUARD_MS)
UNIX_CASE(named_python, GUARD_REAL_MS)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_ONCE(test_basics),
		T_ONCE(test_data_fork),
		T_ONCE(test_scm_rights_order),
		T_ONCE(test_scm_rights_accelerated),
		T_ONCE(test_scm_credentials),
		T_ONCE(test_python),
		T_ONCE(test_exec),
		T_ONCE(test_named_basics),
		T_ONCE(test_named_abstract),
		T_ONCE(test_named_fork_exec),
		T_ONCE(test_named_scm_rights),
		T_ONCE(test_named_faults),
		T_ONCE(test_named_perms),
		T_ONCE(test_named_python),
	};

#if defined(IPCD_SANITIZED) && !defined(IPCD_ASAN_RUNTIME)
	fprintf(stderr, "it_preload_unix: skipped in ThreadSanitizer builds "
			"(ThreadSanitizer cannot be preloaded)\n");
	return T_EXIT_SKIP;
#endif
	if (getenv("T_FILTER"))
		cmocka_set_test_filter(getenv("T_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
