/* SPDX-License-Identifier: MIT */
/*
 * t_monitor.h - integration-test harness: a real ipcd-monitor as a child.
 *
 * Parent side (cmocka, fails the test): t_mon_*, t_run, t_ctl*, t_json_*.
 * Child side (never cmocka; return -errno or use T_CHECK): t_call, t_wait_eof,
 * t_ring_monitor, t_resp_ring_empty.
 *
 * Every monitor runs in a fresh mkdtemp() directory holding its config, its
 * control socket and its log (stderr); t_mon_cleanup() prints the logs when
 * the test did not pass, SIGKILLs whatever still runs and removes the
 * directory. Bounds on waits are hang guards only, never timing assertions.
 */
#ifndef T_MONITOR_H
#define T_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ipcd/ctl.h>
#include <ipcd/proto.h>

#include "attach.h"
#include "t_helpers.h"

#ifndef IPCD_MONITOR_BIN
#error "IPCD_MONITOR_BIN must name the ipcd-monitor binary"
#endif
#ifndef IPCDCTL_BIN
#error "IPCDCTL_BIN must name the ipcdctl binary"
#endif

#define T_MON_MAX_PROCESSES	256
#define T_MON_READY_MS		(20000 * T_SLOWDOWN)	/* hang guard: socket accepts */
#define T_MON_STOP_MS		15000	/* hang guard: SIGTERM -> exit (the drain takes <= 100 ms) */
#define T_CALL_TIMEOUT_NS	(20 * T_NSEC_PER_SEC * T_SLOWDOWN)	/* hang guard: one call */
#define T_WAIT_MS		(20000 * T_SLOWDOWN)	/* hang guard: state converges */

/**
 * struct t_mon - one monitor under test.
 * @mode:   IPCD_QMODE_* written into the config.
 * @dir:    its temp directory; @sock, @conf, @log live there.
 * @pid:    the running monitor, 0 if none.
 * @starts: monitors started so far (each logs to its own file).
 */
struct t_mon {
	uint32_t mode;
	char dir[64];
	char sock[108];
	char conf[128];
	char log[160];
	pid_t pid;
	unsigned int starts;
};

/**
 * t_mon_init - make the temp dir and write a config: control_socket,
 * queue_mode, max_processes = T_MON_MAX_PROCESSES, log_level = info, then
 * @extra (more "key = value" lines, may be NULL).
 */
void t_mon_init(struct t_mon *m, uint32_t mode, const char *extra);

/** t_mon_write_config - rewrite @m's config file with @extra lines appended. */
void t_mon_write_config(struct t_mon *m, const char *extra);

/**
 * t_mon_spawn - exec ipcd-monitor -f -c @conf (NULL: @m's config) without
 * waiting, stderr and stdout to a new log file (its path is left in @m->log).
 * Returns the pid (tracked by t_fork, PDEATHSIG armed).
 */
pid_t t_mon_spawn(struct t_mon *m, const char *conf);

/**
 * t_mon_start - spawn the monitor and wait until its socket accepts a
 * connection. Fails the test (with the log) if it exits first or the wait
 * exceeds T_MON_READY_MS.
 */
void t_mon_start(struct t_mon *m);

/**
 * t_mon_stop - SIGTERM; asserts exit status 0 and that the socket file is
 * gone.
 */
void t_mon_stop(struct t_mon *m);

/** t_mon_kill - SIGKILL and reap the monitor. */
void t_mon_kill(struct t_mon *m);

/**
 * t_mon_cleanup - fixture teardown: print every log of @m if !@passed,
 * SIGKILL the monitor if still running, t_reap_all(), remove the temp dir.
 */
void t_mon_cleanup(struct t_mon *m, bool passed);

/** t_mon_print_logs - every log file of @m to stderr. */
void t_mon_print_logs(const struct t_mon *m);

/** t_file_contains - true if file @path contains @needle. */
bool t_file_contains(const char *path, const char *needle);

/** t_mon_log_contains - true if any log of @m contains @needle. */
bool t_mon_log_contains(const struct t_mon *m, const char *needle);

/** t_mon_fd_count - open fds of the monitor (/proc/PID/fd), -1 on error. */
int t_mon_fd_count(const struct t_mon *m);

/**
 * t_mon_fd_baseline - the monitor's idle fd count: the minimum of several
 * readings (transient connections only ever add fds).
 */
int t_mon_fd_baseline(const struct t_mon *m);

/**
 * t_mon_wait_fds - wait (bounded) until the fd count is at most @n; returns
 * the last count read.
 */
int t_mon_wait_fds(const struct t_mon *m, int n);

/** t_mon_maps_count - lines of /proc/PID/maps containing @needle. */
int t_mon_maps_count(const struct t_mon *m, const char *needle);

/* ---- cmocka fixtures ------------------------------------------------------ */

/**
 * struct t_state - per-test state: the monitor and whether the test body
 * reached its end (T_PASSED); the teardown prints the logs otherwise.
 */
struct t_state {
	struct t_mon mon;
	bool passed;
};

extern uint32_t t_mode_pp;
extern uint32_t t_mode_sh;

/** t_setup - initial state: a uint32_t queue mode. Makes the dir and config. */
int t_setup(void **state);

/** t_teardown - t_mon_cleanup() and free. */
int t_teardown(void **state);

#define T_PASSED(s)	((s)->passed = true)

/* Each case once per queue mode (tests/unit/test_reqq.c's T_BOTH). */
#define T_BOTH(fn)							\
	{ #fn "/per-process", fn, t_setup, t_teardown, &t_mode_pp },	\
	{ #fn "/shared", fn, t_setup, t_teardown, &t_mode_sh }
#define T_ONCE(fn)	{ #fn, fn, t_setup, t_teardown, &t_mode_pp }

/* ---- running ipcdctl and other programs --------------------------------- */

#define T_OUT_MAX	(1 << 18)

/** struct t_out - what a program printed and how it ended (t_wait() code). */
struct t_out {
	int code;
	size_t out_len;
	size_t err_len;
	char out[T_OUT_MAX];
	char err[16384];
};

/**
 * t_run - run @argv (execvp; @envp NULL: inherit) with @input on stdin,
 * capture stdout and stderr (NUL-terminated) and the exit code (127: exec
 * failed). Bounded by a hang guard.
 */
void t_run(struct t_out *o, const char *input, char *const argv[], char *const envp[]);

/** t_ctl - ipcdctl -s SOCK [--json] @cmd. Returns o->code. */
int t_ctl(const struct t_mon *m, struct t_out *o, bool json, const char *cmd);

/** t_ctl_num - ipcdctl --json @cmd must exit 0 and contain "@key":N; returns N. */
long long t_ctl_num(const struct t_mon *m, const char *cmd, const char *key);

/**
 * t_ctl_wait_num - poll ipcdctl --json @cmd until "@key" == @want (bounded by
 * T_WAIT_MS). Returns the last value seen.
 */
long long t_ctl_wait_num(const struct t_mon *m, const char *cmd, const char *key, long long want);

/** t_json_num - find "@key":N in @json; false if absent. */
bool t_json_num(const char *json, const char *key, long long *v);

/** t_json_count - occurrences of @needle in @s. */
unsigned int t_count_str(const char *s, const char *needle);

/**
 * t_json_balanced - minimal structural check: brackets and braces balance
 * outside strings, strings terminate, output is one value plus a newline.
 */
bool t_json_balanced(const char *s);

/**
 * t_json_python - validate @s with python3's json module.
 * Returns 0 (valid), 1 (invalid) or T_EXIT_SKIP (no python3).
 */
int t_json_python(const char *s);

/* ---- raw control-socket clients ----------------------------------------- */

/** t_connect - SOCK_SEQPACKET connection to @path, or -errno. */
int t_connect(const char *path);

/**
 * t_recv_welcome - receive one welcome (bounded wait): returns its size, 0
 * on EOF, -errno; *@nfds receives how many descriptors came with it (they
 * are closed).
 */
ssize_t t_recv_welcome(int sock, struct ipcd_ctl_welcome *w, unsigned int *nfds, int timeout_ms);

/**
 * t_hello_proxy - a relay on @listen_path (listening when this returns) that
 * accepts one client, adds @d_major/@d_minor to its hello's ABI version,
 * forwards it to @upstream, relays the welcome and its descriptors back, and
 * then holds the upstream connection until either side closes. Returns the
 * relay's pid.
 */
pid_t t_hello_proxy(const char *listen_path, const char *upstream, int d_major, int d_minor);

/* ---- client side (safe in forked children: no cmocka) ------------------- */

/**
 * t_call - strict call: submit @op with @len bytes of @body, then wait for
 * exactly one response, which must carry this request's cookie (anything else
 * is -EBADMSG). Returns 0 (see @resp->status) or -errno.
 */
int t_call(struct ipcd_attach *a, uint16_t op, const void *body, uint16_t len,
	   struct ipcd_resp *resp, int64_t timeout_ns);

/**
 * t_echo_check - ECHO @len pattern bytes of stream @stream at @pos and verify
 * the answer (status, opcode, cookie, length, content, zero tail). Returns 0,
 * -errno from t_call, or -EBADMSG.
 */
int t_echo_check(struct ipcd_attach *a, uint32_t stream, uint64_t pos, uint16_t len);

/** t_resp_ring_empty - true if no response is waiting for @a. */
bool t_resp_ring_empty(struct ipcd_attach *a);

/**
 * t_ring_monitor - after writing into the request ring behind the library's
 * back: post this client's doorbell (shared mode) and wake the monitor.
 */
void t_ring_monitor(struct ipcd_attach *a);

/**
 * t_wait_eof - wait up to @timeout_ms for EOF on a control socket.
 * Returns 0 (EOF), -ETIMEDOUT, -EBADMSG (a message arrived) or -errno.
 */
int t_wait_eof(int sock, int timeout_ms);

/**
 * t_note_bind - remember that BIND answered @id for @addr:@port (@flags:
 * IPCD_BIND_*), so that t_kernel_listener() can make its kernel socket.
 */
void t_note_bind(uint32_t id, const uint8_t addr[16], uint16_t port, uint32_t flags);

/**
 * t_kernel_port - a kernel TCP socket listening on @addr, port 0 (the kernel
 * picks a free one; @flags IPCD_BIND_*): its port, for a BIND of that port
 * whose t_note_bind() then adopts the socket; 0 if the kernel refuses. A
 * raw test's LISTEN needs a kernel socket on its port: letting the monitor
 * pick one could choose a port another program holds in the kernel.
 */
uint16_t t_kernel_port(const uint8_t addr[16], uint32_t flags);

/**
 * t_kernel_listener - a kernel TCP socket of this process listening on the
 * address and port of bind @id (made once, then the same one), as a first
 * LISTEN must name (proto.h struct ipcd_listen_req.kfd); -1 for a bind
 * t_note_bind() was not told of, or if the kernel refuses.
 */
int t_kernel_listener(uint32_t id);

/** t_attach - ipcd_attach() to @m's socket; fails the test with @why. Parent only. */
void t_attach(const struct t_mon *m, const char *comm, struct ipcd_attach *a);

#endif /* T_MONITOR_H */
