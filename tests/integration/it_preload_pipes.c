/* SPDX-License-Identifier: MIT */
/*
 * it_preload_pipes.c - pipes under the preload (issue #6): every case of
 * tests/progs/ipcd-pipe runs twice,
 *   (a) without the preload: the kernel is the oracle, so a failure here
 *       means the check itself is wrong;
 *   (b) under ipcd-run with a monitor: it must pass the same checks (the
 *       same "ok" lines, in the same order), and the monitor must have made
 *       at least as many pipes as the case did (counter "pipes" under
 *       "connections" in ipcdctl --json counters; the case prints its count:
 *       the pipes of the program itself, of the shells and of the python3
 *       scripts it runs, all preloaded).
 * Then nothing may be left behind (processes, connections, monitor fds).
 *
 * Cases: pipeline-1g (sh -c 'gen | sha256sum' and 'gen | cat | sha256sum',
 * 1 GiB each: the pipes are made by sh and cross fork and exec; the only
 * slow case), eof-last-writer, epipe-sigpipe, atomic-pipe-buf, nonblock,
 * fdinfo, stdio (dprintf, fdopen, popen), pipe-size (F_SETPIPE_SZ),
 * exec-cat, python-mp, jobserver, procsubst (bash, /dev/fd/N), shell-misc,
 * signal-writes (a SIGALRM handler writes to the pipe the program writes),
 * freopen (of stdout and stdin that were pipe ends), close-range
 * (close_range, closefrom), dup2-hidden (dup2 onto the library's own fds),
 * zombie-writer (a writer SIGKILLed and not reaped).
 * A case whose program is missing (python3, bash) is skipped.
 *
 * The program bounds every wait itself (a hang prints HANG and exits 3);
 * the guards here are the last resort. ThreadSanitizer builds skip (77).
 * T_FILTER='test_nonblock' runs only the matching tests (cmocka's filter).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t_progs.h"

#ifndef IPCD_PIPE_BIN
#error "IPCD_PIPE_BIN must name the ipcd-pipe test program"
#endif

/* Hang guards for one run of a case (the program's own guards act first). */
#define GUARD_1G_MS	(700000 * T_SLOWDOWN)	/* two pipelines of 1 GiB */
#define GUARD_REAL_MS	(600000 * T_SLOWDOWN)	/* several sh, bash or python3 runs */

static struct t_out ctl;

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

/* The monitor's "pipes" counter; false if it has none. */
static bool read_pipes(const struct t_mon *m, long long *v)
{
	if (t_ctl(m, &ctl, true, "counters") != 0)
		fail_msg("ipcdctl --json counters: exit %d: %s", ctl.code, ctl.err);
	return t_json_num(ctl.out, "pipes", v);
}

static void show_counters(const struct t_mon *m)
{
	if (t_ctl(m, &ctl, false, "counters") == 0)
		fprintf(stderr, "---- ipcdctl counters ----\n%s----\n", ctl.out);
}

static void run_case(struct t_state *s, const char *name, int guard_ms)
{
	char *const argv[] = { (char *)IPCD_PIPE_BIN, (char *)name, NULL };
	char label[64], summary[96], diff[1200], why[300] = "", *kern_ok, *pre_ok, *err;
	const char *line;
	uint64_t checks = 0, pipes = 0, pchecks = 0, ppipes = 0;
	long long pipes0 = 0, pipes1 = 0;
	bool have0, have1;
	struct t_ctr c0, c1;
	struct t_prog k, p;
	int code;

	/* (a) the kernel */
	snprintf(label, sizeof(label), "kernel-%s", name);
	t_prog_startv(&k, s->mon.dir, label, false, argv);
	code = t_prog_wait(&k, guard_ms);
	if (code == T_EXIT_SKIP) {
		snprintf(summary, sizeof(summary), "case %s skipped", name);
		line = t_line(k.out, summary);
		fprintf(stderr, "%s: %s\n", name, line ? line : "skipped");
		t_prog_free(&k);
		skip();
	}
	snprintf(summary, sizeof(summary), "case %s passed", name);
	line = t_line(k.out, summary);
	if (code != 0 || !line || !t_kv_u64(line, "checks", false, &checks) ||
	    !t_kv_u64(line, "pipes", false, &pipes)) {
		t_prog_dump(&k);
		err = t_file_read(k.err_path);
		fail_msg("%s WITHOUT the preload (the kernel is the oracle: the check is wrong): "
			 "exit %d: %s", name, code, line_with(err, "ipcd-pipe"));
	}
	fprintf(stderr, "%s: kernel: %" PRIu64 " checks, %" PRIu64 " pipes made\n", name, checks,
		pipes);
	kern_ok = ok_lines(k.out);

	/* (b) preloaded, with a monitor */
	t_case_begin(s, &c0);
	have0 = read_pipes(&s->mon, &pipes0);
	snprintf(label, sizeof(label), "preload-%s", name);
	t_prog_startv(&p, s->mon.dir, label, true, argv);
	code = t_prog_wait(&p, guard_ms);
	pre_ok = ok_lines(p.out);
	if (code != 0) {
		char how[64], last[300];

		err = t_file_read(p.err_path);
		line = line_with(err, "ipcd-pipe ");
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
	if (!line || !t_kv_u64(line, "checks", false, &pchecks) || pchecks != checks ||
	    !t_kv_u64(line, "pipes", false, &ppipes))
		fail_msg("%s: preloaded summary \"%s\", kernel checks %" PRIu64, name,
			 line ? line : "(none)", checks);
	fprintf(stderr, "%s: preloaded: the same %" PRIu64 " checks\n", name, checks);
	if (ppipes > pipes)
		pipes = ppipes;

	/* what the monitor saw: pipes made; then the leak checks, whatever it saw */
	have1 = read_pipes(&s->mon, &pipes1);
	t_ctr_read(&s->mon, &c1);
	if (have1)
		fprintf(stderr, "%s: monitor: %lld pipes made during the run (the case made %" PRIu64
			")", name, pipes1 - (have0 ? pipes0 : 0), pipes);
	else
		fprintf(stderr, "%s: monitor: no \"pipes\" counter (the case made %" PRIu64
			" pipes)", name, pipes);
	fprintf(stderr, ", %lld connections created, %lld fallbacks\n", c1.created - c0.created,
		c1.fallbacks - c0.fallbacks);
	if (!have1)
		snprintf(why, sizeof(why), "the monitor has no \"pipes\" counter (ipcdctl --json "
			 "counters, under \"connections\"): pipe acceleration is not in this build; "
			 "the case made %" PRIu64 " pipes", pipes);
	else if (pipes1 - (have0 ? pipes0 : 0) < (long long)pipes)
		snprintf(why, sizeof(why), "the monitor made %lld pipes during the run; the case "
			 "made %" PRIu64 " (pipe() and pipe2() of the program, its shells and "
			 "python3), all in preloaded processes", pipes1 - (have0 ? pipes0 : 0),
			 pipes);
	free(kern_ok);
	free(pre_ok);
	t_prog_free(&k);
	t_prog_free(&p);
	t_case_finish(s);
	if (why[0]) {
		s->passed = false;
		show_counters(&s->mon);
		fail_msg("%s: pipes NOT accelerated as expected: %s", name, why);
	}
}

/* One cmocka test per ipcd-pipe case: test_eof_last_writer runs "eof-last-writer". */
#define PIPE_CASE(id, guard)							\
	static void test_##id(void **state)					\
	{									\
		char name[64];							\
		snprintf(name, sizeof(name), "%s", #id);			\
		for (char *c = name; *c; c++)					\
			if (*c == '_')						\
				*c = '-';					\
		run_case(*state, name, guard);					\
	}

PIPE_CASE(eof_last_writer, T_PROG_GUARD_MS)
PIPE_CASE(epipe_sigpipe, T_PROG_GUARD_MS)
PIPE_CASE(atomic_pipe_buf, T_PROG_GUARD_MS)
PIPE_CASE(nonblock, T_PROG_GUARD_MS)
PIPE_CASE(fdinfo, T_PROG_GUARD_MS)
PIPE_CASE(stdio, T_PROG_GUARD_MS)
PIPE_CASE(pipe_size, T_PROG_GUARD_MS)
PIPE_CASE(exec_cat, T_PROG_GUARD_MS)
PIPE_CASE(jobserver, T_PROG_GUARD_MS)
PIPE_CASE(shell_misc, GUARD_REAL_MS)
PIPE_CASE(procsubst, GUARD_REAL_MS)
PIPE_CASE(python_mp, GUARD_REAL_MS)
PIPE_CASE(signal_writes, T_PROG_GUARD_MS)
PIPE_CASE(freopen, T_PROG_GUARD_MS)
PIPE_CASE(dup2_hidden, T_PROG_GUARD_MS)
PIPE_CASE(close_range, T_PROG_GUARD_MS)
PIPE_CASE(zombie_writer, T_PROG_GUARD_MS)
PIPE_CASE(pipeline_1g, GUARD_1G_MS)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_ONCE(test_eof_last_writer),
		T_ONCE(test_epipe_sigpipe),
		T_ONCE(test_atomic_pipe_buf),
		T_ONCE(test_nonblock),
		T_ONCE(test_fdinfo),
		T_ONCE(test_stdio),
		T_ONCE(test_pipe_size),
		T_ONCE(test_exec_cat),
		T_ONCE(test_jobserver),
		T_ONCE(test_shell_misc),
		T_ONCE(test_procsubst),
		T_ONCE(test_python_mp),
		T_ONCE(test_signal_writes),
		T_ONCE(test_freopen),
		T_ONCE(test_close_range),
		T_ONCE(test_dup2_hidden),
		T_ONCE(test_zombie_writer),
		T_ONCE(test_pipeline_1g),
	};

#if defined(IPCD_SANITIZED) && !defined(IPCD_ASAN_RUNTIME)
	fprintf(stderr, "it_preload_pipes: skipped in ThreadSanitizer builds "
			"(ThreadSanitizer cannot be preloaded)\n");
	return T_EXIT_SKIP;
#endif
	if (getenv("T_FILTER"))
		cmocka_set_test_filter(getenv("T_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
