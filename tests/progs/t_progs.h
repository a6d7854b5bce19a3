/* SPDX-License-Identifier: MIT */
/*
 * t_progs.h - run real programs (tests/progs/ipcd-echo, python3, curl, socat)
 * under ipcd-run from the preload integration tests, and check what the
 * monitor saw. Parent side only (cmocka): every failure fails the test and
 * shows what the programs printed.
 *
 * A program's stdout and stderr go to LABEL.out.log and LABEL.err.log in the
 * monitor's temp directory, so t_mon_cleanup() prints them when a test fails
 * and removes them afterwards. Every wait is bounded by a hang guard; no
 * timing is asserted.
 */
#ifndef T_PROGS_H
#define T_PROGS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "t_monitor.h"

#ifndef IPCD_RUN_BIN
#error "IPCD_RUN_BIN must name the ipcd-run binary"
#endif
#ifndef IPCD_ECHO_BIN
#error "IPCD_ECHO_BIN must name the ipcd-echo test program"
#endif

/* Hang guards, never timing assertions. */
#define T_PROG_GUARD_MS		(120000 * T_SLOWDOWN)	/* one program run */
#define T_PROG_START_MS		(20000 * T_SLOWDOWN)	/* a server is listening */
#define T_PEER_DEATH_MS		10000	/* a peer's SIGKILL noticed (issue: <= 1 s) */
#define T_PROG_MAX_ARGS		48

/**
 * struct t_prog - one program started by t_prog_start().
 * @pid:   running process, 0 once reaped.
 * @code:  exit code from t_wait() once reaped (128 + signal; -1: hang guard hit).
 * @label: short name, used for the output files and in messages.
 * @out_path, @err_path: its stdout and stderr files.
 * @out:   stdout read by t_prog_read() (malloc'ed, NUL-terminated, may be NULL).
 * @raw_out: stdout goes to a result file of the caller's (t_prog_startv_io()).
 */
struct t_prog {
	pid_t pid;
	int code;
	char label[32];
	char out_path[160];
	char err_path[160];
	char *out;
	bool raw_out;
};

/**
 * t_prog_startv - run @argv (execvp) as a child, under IPCD_RUN_BIN if
 * @preload, stdin from /dev/null, stdout and stderr to files in @dir.
 * The child inherits the environment (IPCD_SOCKET set by t_progs_env()).
 */
void t_prog_startv(struct t_prog *p, const char *dir, const char *label, bool preload,
		   char *const argv[]);

/**
 * t_prog_startv_io - t_prog_startv() with stdin from the file @in_path
 * (NULL: /dev/null) and stdout to the file @out_path (NULL: LABEL.out.log).
 * An @out_path is a result, maybe binary: t_prog_read() leaves @p->out
 * empty and t_prog_dump() shows only its size.
 */
void t_prog_startv_io(struct t_prog *p, const char *dir, const char *label, bool preload,
		      char *const argv[], const char *in_path, const char *out_path);

/** t_prog_start - t_prog_startv() of IPCD_ECHO_BIN and @args split at spaces. */
void t_prog_start(struct t_prog *p, const char *dir, const char *label, bool preload,
		  const char *args);

/**
 * t_prog_wait - reap @p within @timeout_ms (the hang guard: SIGKILLed and
 * -1 past it). Returns the exit code and reads stdout into @p->out.
 */
int t_prog_wait(struct t_prog *p, int timeout_ms);

/** t_prog_expect - t_prog_wait() and fail (showing the outputs) unless it exits @code. */
void t_prog_expect(struct t_prog *p, int timeout_ms, int code);

/**
 * t_find_line - the line of @text holding @needle (starting with it if
 * @at_start), copied to a static buffer, or NULL.
 */
const char *t_find_line(const char *text, const char *needle, bool at_start);

/**
 * t_prog_await_line - wait (bounded by @guard_ms) until @p's stdout has a
 * line holding @needle (starting with it if @at_start); returns that line
 * (t_find_line's copy), or NULL with @why (@why_len bytes) saying what
 * happened instead: @p exited (reaped), or was still running at the guard.
 * Never fails the test: the caller says what the missing line means.
 */
const char *t_prog_await_line(struct t_prog *p, const char *needle, bool at_start, int guard_ms,
			      char *why, size_t why_len);

/** t_prog_read - (re)read @p's stdout file into @p->out; returns it ("" if none). */
const char *t_prog_read(struct t_prog *p);

/** t_prog_dump - @p's stdout and stderr to stderr, labelled. */
void t_prog_dump(const struct t_prog *p);

/** t_prog_free - free @p->out. */
void t_prog_free(struct t_prog *p);

/**
 * t_prog_wait_output - wait (bounded by @timeout_ms) until @p's stdout (or
 * stderr if @in_err) contains @needle; fails the test if @p exits first or
 * the guard passes. Returns a pointer into a static copy of the file, at the
 * needle.
 */
const char *t_prog_wait_output(struct t_prog *p, bool in_err, const char *needle, int timeout_ms);

/**
 * t_echo_server - start "ipcd-echo server --port-file F @args" and wait for
 * its port. Returns the port.
 */
unsigned int t_echo_server(struct t_prog *p, const char *dir, const char *label, bool preload,
			   const char *args);

/*
 * t_prog_alive - fail (showing its outputs) if @p (NULL: nothing) has exited:
 * "<label> exited (<code>) before <@before>".
 */
void t_prog_alive(struct t_prog *p, const char *before);

/** t_file_wait - wait until @path exists; fails if @watch (may be NULL) exits first. */
void t_file_wait(const char *path, struct t_prog *watch, int timeout_ms);

/** t_file_read - @path's whole content, malloc'ed and NUL-terminated ("" if absent). */
char *t_file_read(const char *path);

/** t_file_create - create an empty file @path. */
void t_file_create(const char *path);

/** t_mono_ns - CLOCK_MONOTONIC in ns, comparable with the programs' t_mono_ns=. */
uint64_t t_mono_ns(void);

/**
 * t_kv_u64 - find " @key=N" (or at the start of @text; decimal, or hex when
 * @hex) in @text; false if absent.
 */
bool t_kv_u64(const char *text, const char *key, bool hex, uint64_t *v);

/** t_kv_word - copy the word after "@key=" into @buf; false if absent. */
bool t_kv_word(const char *text, const char *key, char *buf, size_t len);

/** t_line - the line of @text starting with @prefix (copied to a static buffer) or NULL. */
const char *t_line(const char *text, const char *prefix);

/**
 * t_echo_match - the client's "client ok" line and the server's "server
 * done" line agree on bytes= and hash= (everything sent arrived, in order).
 */
void t_echo_match(struct t_prog *client, struct t_prog *server);

/** t_have_prog - true if @name is on PATH. */
bool t_have_prog(const char *name);

/** t_progs_env - IPCD_SOCKET for every program started afterwards; IPCD_QUIET unset. */
void t_progs_env(const struct t_mon *m);

/* ---- what the monitor saw --------------------------------------------------- */

/** t_counter - ipcdctl --json counters, value of "@key" (fails if absent). */
long long t_counter(const struct t_mon *m, const char *key);

/**
 * t_expect_accelerated - the monitor created and accepted at least @n
 * accelerated connections since @before (counters "created"/"accepted"),
 * and no connection fell back to the kernel (fallbacks "total" unchanged).
 * @what names the case in the failure message.
 */
struct t_ctr {
	long long created;
	long long accepted;
	long long fallbacks;
};
void t_ctr_read(const struct t_mon *m, struct t_ctr *c);
void t_expect_accelerated(const struct t_mon *m, const struct t_ctr *before, long long n,
			  const char *what);

/**
 * t_expect_fallback - no accelerated connection since @before, and the
 * fallback counter "@reason_key" grew by at least @n; ipcdctl connections
 * lists kernel connections ("accelerated":false) with a reason.
 */
void t_expect_fallback(const struct t_mon *m, const struct t_ctr *before, long long n,
		       const char *reason_key, const char *what);

/**
 * t_expect_live_bytes - while the programs hold their connections open:
 * ipcdctl --json connections shows at least @n accelerated connections,
 * at least @n of which carried >= @min_bytes in each direction.
 */
void t_expect_live_bytes(const struct t_mon *m, unsigned int n, uint64_t min_bytes,
			 const char *what);

/* ---- leaks ------------------------------------------------------------------- */

#define T_SHM_MAX	512

/**
 * struct t_leaks - what a case must give back: /dev/shm entries, the
 * monitor's fd count (its idle baseline) and its memfd mappings.
 */
struct t_leaks {
	unsigned int n_shm;
	char shm[T_SHM_MAX][256];
	int mon_fds;
	int mon_maps;
};

/** t_leaks_begin - snapshot /dev/shm and the monitor's fd baseline (if it runs). */
void t_leaks_begin(struct t_leaks *l, const struct t_mon *m);

/**
 * t_leaks_check - after a case whose programs all exited: 0 processes
 * registered, 0 active connections, the monitor's fds and memfd mappings
 * back to the baseline (skipped if the monitor is not running), no new
 * /dev/shm entry that looks like ours (others are printed).
 */
void t_leaks_check(const struct t_leaks *l, const struct t_mon *m);

/**
 * t_case_begin - the start of a preload case: a monitor, the programs'
 * environment, the leak baseline, and the counters in @c.
 * t_case_finish - its end: the leak checks, then T_PASSED.
 */
void t_case_begin(struct t_state *s, struct t_ctr *c);
void t_case_finish(struct t_state *s);

#endif /* T_PROGS_H */
