/* SPDX-License-Identifier: MIT */
/*
 * bench_util.h - what the benchmark drivers have in common: messages, child
 * processes and their captured output, the monitor's JSON counters, sorting
 * and the machine's description. The helpers keep no state and never exit:
 * each benchmark knows what it must clean up first (its monitor, its
 * children), so a helper that cannot go on returns an error to it.
 */
#ifndef IPCD_BENCH_UTIL_H
#define IPCD_BENCH_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <ipcd/wait.h>		/* ipcd_now_ns(): every benchmark's clock */

/*
 * The build tree's programs, compiled in by bench/CMakeLists.txt. Built any
 * other way, the bare names: PATH and the dynamic linker find them.
 */
#ifndef IPCD_MONITOR_BIN
#define IPCD_MONITOR_BIN	"ipcd-monitor"
#endif
#ifndef IPCDCTL_BIN
#define IPCDCTL_BIN		"ipcdctl"
#endif
#ifndef IPCD_PRELOAD_LIB
#define IPCD_PRELOAD_LIB	"libipcd.so"
#endif
#ifndef IPCD_RUN_BIN
#define IPCD_RUN_BIN		"ipcd-run"
#endif

/* ---- messages ------------------------------------------------------------------- */

/**
 * ipcd_bench_vsay - "@who: <@fmt, @ap>\n" on stderr.
 * @who: the program, or the program and its role ("ipcd-bench-rdma role (pid 7)").
 */
void ipcd_bench_vsay(const char *who, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/**
 * ipcd_bench_say_raw - @msg on stderr with write(2) alone: for signal handlers,
 * where stdio may be in the middle of the very call that was interrupted.
 */
void ipcd_bench_say_raw(const char *msg);

/* ---- child processes ---------------------------------------------------------------- */

/**
 * ipcd_bench_fork - fork() with stdout and stderr flushed first, so that a child
 * that exits through stdio does not print the parent's pending output again.
 * Returns what fork() returns.
 */
pid_t ipcd_bench_fork(void);

/**
 * ipcd_bench_exec - in a child: execve(@argv[0], @argv, @env); if that fails,
 * "<argv[0]>: <why>" on stderr and _exit(127), the shell's "cannot run" status.
 */
__attribute__((noreturn)) void ipcd_bench_exec(const char *const argv[], char **env);

/** ipcd_bench_child_signals - in a child: the default action for SIGINT, SIGTERM, SIGHUP, SIGPIPE. */
void ipcd_bench_child_signals(void);

/**
 * ipcd_bench_spawn_monitor - fork @monitor --foreground --config @conf with
 * @env, stdin from /dev/null, stdout and stderr to @log, killed with its
 * parent (PDEATHSIG). Returns its pid, or -1 (fork failed: errno).
 */
pid_t ipcd_bench_spawn_monitor(const char *monitor, const char *conf, const char *log,
			       char **env);

/**
 * ipcd_bench_describe_status - a wait status in words, for an error message:
 * "exited with status 3", "was killed by signal 9 (Killed)"; -1 (what the
 * drivers' waits return when they had to kill at the deadline): "timed out
 * (killed)".
 */
void ipcd_bench_describe_status(int st, char *b, size_t len);

/**
 * ipcd_bench_log_head - the first @max_lines non-empty lines of the file
 * @path, joined by " | " into @b ("" if it cannot be read): what a failed
 * child said, on one line of an error message.
 */
void ipcd_bench_log_head(const char *path, unsigned int max_lines, char *b, size_t len);

/**
 * ipcd_bench_mapped - is a file whose path contains @needle ("/libipcd")
 * mapped into this process? A driver must not run preloaded: it preloads
 * its own children, and its own traffic would be counted as theirs.
 */
bool ipcd_bench_mapped(const char *needle);

/**
 * ipcd_bench_rmdir - remove @dir, a driver's mkdtemp() dir, and the plain
 * files in it (the drivers make no subdirectories there). A failure is
 * reported as "@who: could not remove ..." and otherwise ignored.
 */
void ipcd_bench_rmdir(const char *dir, const char *who);

/* ---- sockets ---------------------------------------------------------------------- */

/**
 * ipcd_bench_recv_full - recv() until @n bytes, EOF or an error (EINTR is
 * retried). Returns the bytes read (fewer than @n only at EOF), or -errno.
 * Inline: the roles call it inside timed round trips.
 */
static inline ssize_t ipcd_bench_recv_full(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, b + got, n - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* ---- captured output -------------------------------------------------------------- */

/**
 * struct ipcd_bench_buf - a growing text buffer, NUL-terminated once anything
 * (even "") was added. Start from { 0 }; free(@p) when done.
 */
struct ipcd_bench_buf {
	char *p;
	size_t len, cap;
};

/** ipcd_bench_buf_add - append @n bytes of @d. Returns 0 or -ENOMEM. */
int ipcd_bench_buf_add(struct ipcd_bench_buf *b, const char *d, size_t n);

/**
 * ipcd_bench_drain - append what @fd (a child's output pipe) says to @out until
 * EOF or an error (0), or until CLOCK_MONOTONIC @until (-ETIMEDOUT: the child is
 * the caller's to kill), polling at least every @poll_ms so the deadline holds.
 * @out->p is a string afterwards; -ENOMEM if it could not be grown.
 */
int ipcd_bench_drain(int fd, struct ipcd_bench_buf *out, uint64_t until, unsigned int poll_ms);

/**
 * ipcd_bench_run_capture - run @argv with @env (stdin /dev/null, stdout and
 * stderr into @out, default signal actions, killed with its parent) for at
 * most @timeout_ns, draining every @poll_ms at least. 0 with its wait status
 * in @status; -ETIMEDOUT (it was killed and reaped); or -errno from pipe(),
 * fork() or @out's growth (-ENOMEM), with nothing left running.
 */
int ipcd_bench_run_capture(const char *const argv[], char **env, struct ipcd_bench_buf *out,
			   uint64_t timeout_ns, unsigned int poll_ms, int *status);

/**
 * ipcd_bench_write_conf - write the monitor config @text (what
 * --print-default-config printed; cut into lines in place) to @path with its
 * control_socket set to @sock (added if it had none), and its settings into
 * @summary (@len bytes): "key = value; ...", the socket as "<temp dir>".
 * 0 or -errno from writing @path.
 */
int ipcd_bench_write_conf(char *text, const char *path, const char *sock, char *summary,
			  size_t len);

/* ---- the monitor's counters (ipcdctl --json counters) ------------------------------ */

/*
 * ipcdctl's JSON is one line of objects one level deep ("connections":{...,
 * "remote_out":N,...}), so a key is found by its quoted name inside the braces
 * of its object: no parser needed.
 */

/**
 * ipcd_bench_json_obj - where the object "@name":{ starts in @text, or NULL;
 * *@end is set to its closing brace (NULL if none).
 */
const char *ipcd_bench_json_obj(const char *text, const char *name, const char **end);

/**
 * ipcd_bench_json_key - the value of "@key": at or after @from and before @end
 * (NULL: anywhere after), or NULL.
 */
const char *ipcd_bench_json_key(const char *from, const char *end, const char *key);

/** ipcd_bench_json_u64 - that value as a number; 0 when the key is not there. */
uint64_t ipcd_bench_json_u64(const char *from, const char *end, const char *key);

/* ---- sorting, the machine, JSON output ------------------------------------------------ */

/* qsort() comparators: ascending uint32_t and double. */
int ipcd_bench_cmp_u32(const void *a, const void *b);
int ipcd_bench_cmp_dbl(const void *a, const void *b);

/**
 * ipcd_bench_cpuinfo - the value of the first /proc/cpuinfo line that starts
 * with @key ("model name", "flags") into @val. False if there is none.
 */
bool ipcd_bench_cpuinfo(const char *key, char *val, size_t len);

/** ipcd_bench_json_str - @s as a JSON string (NULL as ""). */
void ipcd_bench_json_str(FILE *f, const char *s);

#endif /* IPCD_BENCH_UTIL_H */
