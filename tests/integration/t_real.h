/* SPDX-License-Identifier: MIT */
/*
 * t_real.h - unmodified Debian programs (redis, memcached, nginx, wrk, curl)
 * as integration tests (issue #5 item 6). Parent side only (cmocka).
 *
 * Every scenario runs twice, same programs and same assertions: once on the
 * kernel (nothing preloaded; the monitor runs but must see no accelerated
 * connection) and once with server and clients all under ipcd-run (the
 * monitor must have created and accepted the connections as accelerated
 * ones, and none may have fallen back to the kernel). T_REAL_BOTH() makes the
 * two cmocka cases of a scenario.
 *
 * Servers run in the monitor's temp directory, on a port found free at run
 * time. What a daemonizing server leaves behind (nginx's master after
 * "daemon on") is reparented to the test (PR_SET_CHILD_SUBREAPER) and
 * killed by the teardown if the test did not stop it. Every wait is bounded
 * by a hang guard; no timing is asserted.
 */
#ifndef T_REAL_H
#define T_REAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "t_progs.h"

/* Hang guards, never timing assertions. */
#define T_REAL_CLIENT_MS	(30000 * T_SLOWDOWN)	/* one short client run */
#define T_REAL_LOAD_MS		(60000 * T_SLOWDOWN)	/* one benchmark run */
#define T_REAL_STOP_MS		(30000 * T_SLOWDOWN)	/* a server asked to stop exits */

/** struct t_real_case - what a cmocka case is given: queue mode, preloaded or not. */
struct t_real_case {
	uint32_t mode;
	bool preload;
};

extern struct t_real_case t_real_kernel;
extern struct t_real_case t_real_preload;

/**
 * struct t_real - per-case state.
 * @t:       the monitor and T_PASSED (first: t_case_begin() takes &@t).
 * @preload: run servers and clients under ipcd-run.
 * @c0:      the monitor's counters when the case began.
 * @daemon:  a daemonized server's pid (reparented to us), 0 if none; the
 *           teardown SIGKILLs its process group.
 * @what:    "kernel" or "preload", for messages.
 */
struct t_real {
	struct t_state t;
	bool preload;
	struct t_ctr c0;
	pid_t daemon;
	const char *what;
};

/** t_real_setup - a struct t_real from a struct t_real_case; makes the monitor's dir. */
int t_real_setup(void **state);

/**
 * t_real_teardown - SIGKILL a daemon left running, remove the subdirectories
 * the case made in the temp dir, t_mon_cleanup(), reap orphans, free.
 */
int t_real_teardown(void **state);

#define T_REAL_BOTH(fn)								\
	{ #fn "/kernel", fn, t_real_setup, t_real_teardown, &t_real_kernel },	\
	{ #fn "/preload", fn, t_real_setup, t_real_teardown, &t_real_preload }

/*
 * T_REAL_RUN - the end of each real-program test's main(): skipped under
 * ThreadSanitizer (it cannot be preloaded); T_FILTER='*kernel' (or
 * '*preload') selects cases; then every case of @tests.
 */
#if defined(IPCD_SANITIZED) && !defined(IPCD_ASAN_RUNTIME)
#define T_REAL_RUN(name, tests)							\
	do {									\
		(void)(tests);							\
		fprintf(stderr, name ": skipped in ThreadSanitizer builds "	\
			"(ThreadSanitizer cannot be preloaded)\n");		\
		return T_EXIT_SKIP;						\
	} while (0)
#else
#define T_REAL_RUN(name, tests)							\
	do {									\
		if (getenv("T_FILTER"))						\
			cmocka_set_test_filter(getenv("T_FILTER"));		\
		return cmocka_run_group_tests(tests, NULL, NULL);		\
	} while (0)
#endif

/**
 * t_real_begin - start the monitor, the programs' environment, the leak
 * baseline and @r->c0 (t_case_begin()), and print which run this is.
 */
void t_real_begin(struct t_real *r);

/**
 * t_real_finish - after every program exited: preloaded, at least
 * @min_conns connections created and accepted as accelerated ones and no
 * fallback (t_expect_accelerated()); on the kernel, no accelerated connection
 * and no fallback either (nothing was preloaded). Then the leak checks and
 * T_PASSED.
 */
void t_real_finish(struct t_real *r, long long min_conns, const char *what);

/**
 * t_real_find - the path of program @name: the first of /usr/sbin, /usr/bin,
 * /sbin, /bin and PATH that has it. Fails the test if none does, telling to
 * run scripts/setup.sh test.
 */
const char *t_real_find(const char *name);

/** t_real_free_port - a TCP port of 127.0.0.1 that the kernel just gave and released. */
unsigned int t_real_free_port(void);

/**
 * t_real_wait_listen - wait (bounded) until 127.0.0.1:@port listens in the
 * kernel and, preloaded, the monitor lists it as an accelerated listener.
 * Fails the test if @watch (may be NULL) exits first or nothing listens in
 * the kernel. Returns false (with a warning and what the monitor lists) if
 * the monitor never lists the listener: the case goes on, its programs must
 * still work, and t_real_finish() fails it for the fallbacks.
 */
bool t_real_wait_listen(struct t_real *r, unsigned int port, struct t_prog *watch);

/**
 * t_real_make_file - write @size deterministic bytes (every byte value
 * occurs; stream @seed of t_pattern_fill()) to @path. Returns their FNV-1a.
 */
uint32_t t_real_make_file(const char *path, size_t size, uint32_t seed);

/**
 * t_real_expect_same - the file @got holds exactly the bytes of @want:
 * sizes, FNV-1a checksums and every byte compared; the first difference is
 * reported. @what names the transfer.
 */
void t_real_expect_same(const char *want, const char *got, const char *what);

/** t_real_sha1 - sha1sum of @path (40 hex digits) into @hex[41]. */
void t_real_sha1(const char *path, char *hex);

/** t_real_mkdir - mkdir @path (0755); fails the test on error. */
void t_real_mkdir(const char *path);

/** t_real_rm_tree - remove @path and everything below it (errors ignored). */
void t_real_rm_tree(const char *path);

/**
 * t_real_run - run @argv preloaded if @r->preload, stdin from @in_path and
 * stdout to @out_path (NULL: /dev/null and LABEL.out.log), expect exit 0
 * within @timeout_ms and return its stdout (@p->out; t_prog_free() it).
 */
const char *t_real_run(struct t_real *r, struct t_prog *p, const char *label, char *const argv[],
		       const char *in_path, const char *out_path, int timeout_ms);

#endif /* T_REAL_H */
