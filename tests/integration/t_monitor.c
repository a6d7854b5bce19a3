/* SPDX-License-Identifier: MIT */
/* t_monitor.c - run a real ipcd-monitor under test; talk to it like a client or ipcdctl. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ipcd/atomic.h>
#include <ipcd/wait.h>

#include "t_monitor.h"

/* ---- the monitor process ------------------------------------------------ */

static const char *mode_name(uint32_t mode)
{
	return mode == IPCD_QMODE_SHARED ? "shared" : "per-process";
}

void t_mon_write_config(struct t_mon *m, const char *extra)
{
	FILE *f = fopen(m->conf, "we");

	if (!f)
		fail_msg("%s: %s", m->conf, strerror(errno));
	/* Defaults for what @extra does not set (a key set twice is an error). */
	if (!extra)
		extra = "";
	fprintf(f, "# written by the integration tests\ncontrol_socket = %s\n", m->sock);
	if (!strstr(extra, "queue_mode"))
		fprintf(f, "queue_mode = %s\n", mode_name(m->mode));
	if (!strstr(extra, "max_processes"))
		fprintf(f, "max_processes = %d\n", T_MON_MAX_PROCESSES);
	if (!strstr(extra, "log_level"))
		fprintf(f, "log_level = info\n");
	fputs(extra, f);
	if (fclose(f))
		fail_msg("%s: %s", m->conf, strerror(errno));
}

void t_mon_init(struct t_mon *m, uint32_t mode, const char *extra)
{
	memset(m, 0, sizeof(*m));
	m->mode = mode;
	snprintf(m->dir, sizeof(m->dir), "/tmp/ipcd-it-XXXXXX");
	if (!mkdtemp(m->dir))
		fail_msg("mkdtemp: %s", strerror(errno));
	snprintf(m->sock, sizeof(m->sock), "%s/monitor.sock", m->dir);
	snprintf(m->conf, sizeof(m->conf), "%s/monitor.conf", m->dir);
	t_mon_write_config(m, extra);
}

pid_t t_mon_spawn(struct t_mon *m, const char *conf)
{
	pid_t pid;
	int fd;

	snprintf(m->log, sizeof(m->log), "%s/monitor-%u.log", m->dir, ++m->starts);
	fd = open(m->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_msg("%s: %s", m->log, strerror(errno));
	/* A hang guard far beyond any test's timeout: the monitor cannot outlive a stuck run. */
	pid = t_fork(600);
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		close_range(3, ~0u, 0);
		execl(IPCD_MONITOR_BIN, "ipcd-monitor", "-f", "-c", conf ? conf : m->conf,
		      (char *)NULL);
		dprintf(2, "exec %s: %s\n", IPCD_MONITOR_BIN, strerror(errno));
		_exit(127);
	}
	close(fd);
	return pid;
}

void t_mon_start(struct t_mon *m)
{
	uint64_t deadline = ipcd_deadline((int64_t)T_MON_READY_MS * T_NSEC_PER_MSEC);

	assert_int_equal(m->pid, 0);
	m->pid = t_mon_spawn(m, NULL);
	for (;;) {
		int code = t_try_wait(m->pid);
		int fd;

		if (code != T_STILL_RUNNING) {
			m->pid = 0;
			t_mon_print_logs(m);
			fail_msg("ipcd-monitor exited with %d before listening on %s (log above)",
				 code, m->sock);
		}
		/* Connect, then go away: the monitor closes it without counting anything. */
		fd = t_connect(m->sock);
		if (fd >= 0) {
			close(fd);
			return;
		}
		if (ipcd_remaining(deadline) == 0) {
			t_mon_print_logs(m);
			fail_msg("ipcd-monitor (pid %d) did not accept on %s within %d ms "
				 "(log above)", (int)m->pid, m->sock, T_MON_READY_MS);
		}
		t_sleep_ms(5);
	}
}

void t_mon_stop(struct t_mon *m)
{
	int code;

	assert_true(m->pid > 0);
	kill(m->pid, SIGTERM);
	code = t_wait(m->pid, T_MON_STOP_MS);
	m->pid = 0;
	if (code != 0) {
		t_mon_print_logs(m);
		fail_msg("ipcd-monitor: SIGTERM -> exit code %d, expected 0 (log above)", code);
	}
	if (access(m->sock, F_OK) == 0 || errno != ENOENT)
		fail_msg("ipcd-monitor exited but left its socket %s behind", m->sock);
}

void t_mon_kill(struct t_mon *m)
{
	if (m->pid > 0)
		t_kill_wait(m->pid);
	m->pid = 0;
}

static void for_each_log(const struct t_mon *m, void (*fn)(const char *path, void *arg),
			 void *arg)
{
	struct dirent *e;
	DIR *d = opendir(m->dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[384];
		size_t n = strlen(e->d_name);

		if (n < 4 || strcmp(e->d_name + n - 4, ".log"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", m->dir, e->d_name);
		fn(path, arg);
	}
	closedir(d);
}

static void print_file(const char *path, void *arg)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "re");

	(void)arg;
	if (!f)
		return;
	fprintf(stderr, "---- %s ----\n", path);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fprintf(stderr, "---- end of %s ----\n", path);
	fclose(f);
}

void t_mon_print_logs(const struct t_mon *m)
{
	for_each_log(m, print_file, NULL);
}

bool t_file_contains(const char *path, const char *needle)
{
	static char buf[1 << 20];
	size_t n;
	FILE *f = fopen(path, "re");

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strstr(buf, needle) != NULL;
}

struct grep_arg {
	const char *needle;
	bool found;
};

static void grep_file(const char *path, void *arg)
{
	struct grep_arg *g = arg;

	if (t_file_contains(path, g->needle))
		g->found = true;
}

bool t_mon_log_contains(const struct t_mon *m, const char *needle)
{
	struct grep_arg g = { .needle = needle };

	for_each_log(m, grep_file, &g);
	return g.found;
}

void t_mon_cleanup(struct t_mon *m, bool passed)
{
	struct dirent *e;
	DIR *d;

	if (!m->dir[0])
		return;
	if (!passed)
		t_mon_print_logs(m);
	t_mon_kill(m);
	t_reap_all();
	d = opendir(m->dir);
	if (d) {
		while ((e = readdir(d))) {
			char path[384];

			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", m->dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(m->dir);
	m->dir[0] = '\0';
}

int t_mon_fd_count(const struct t_mon *m)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)m->pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int t_mon_fd_baseline(const struct t_mon *m)
{
	int best = -1, i;

	for (i = 0; i < 5; i++) {
		int n = t_mon_fd_count(m);

		if (n >= 0 && (best < 0 || n < best))
			best = n;
		t_sleep_ms(40);
	}
	assert_true(best > 0);
	return best;
}

int t_mon_wait_fds(const struct t_mon *m, int n)
{
	uint64_t deadline = ipcd_deadline((int64_t)T_WAIT_MS * T_NSEC_PER_MSEC);
	int got;

	while ((got = t_mon_fd_count(m)) > n && ipcd_remaining(deadline) != 0)
		t_sleep_ms(10);
	return got;
}

int t_mon_maps_count(const struct t_mon *m, const char *needle)
{
	char path[64], line[512];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)m->pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

/* ---- cmocka fixtures ------------------------------------------------------ */

uint32_t t_mode_pp = IPCD_QMODE_PER_PROCESS;
uint32_t t_mode_sh = IPCD_QMODE_SHARED;

int t_setup(void **state)
{
	struct t_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -1;
	t_mon_init(&s->mon, *(uint32_t *)*state, NULL);
	*state = s;
	return 0;
}

int t_teardown(void **state)
{
	struct t_state *s = *state;

	t_mon_cleanup(&s->mon, s->passed);
	free(s);
	return 0;
}

/* ---- running programs --------------------------------------------------- */

void t_run(struct t_out *o, const char *input, char *const argv[], char *const envp[])
{
	int in[2], out[2], err[2];
	size_t in_len = input ? strlen(input) : 0, in_off = 0;
	uint64_t deadline = ipcd_deadline(60 * T_NSEC_PER_SEC);
	pid_t pid;

	o->out_len = o->err_len = 0;
	o->out[0] = o->err[0] = '\0';
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		fail_msg("pipe2: %s", strerror(errno));
	pid = t_fork(90);
	if (pid == 0) {
		setpgid(0, 0);	/* its own group: a timeout kills what it spawned too */
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
			_exit(126);
		if (envp)
			execvpe(argv[0], argv, envp);
		else
			execvp(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (!in_len) {
		close(in[1]);
		in[1] = -1;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	while (out[0] >= 0 || err[0] >= 0) {
		struct pollfd p[3] = {
			{ .fd = out[0], .events = POLLIN },
			{ .fd = err[0], .events = POLLIN },
			{ .fd = in[1], .events = POLLOUT },
		};
		int left = (int)(ipcd_remaining(deadline) / T_NSEC_PER_MSEC);

		if (left <= 0 || poll(p, 3, left) == 0) {
			t_kill_group_wait(pid);
			fail_msg("%s: still running after 60 s", argv[0]);
		}
		if (p[0].revents) {
			ssize_t n = read(out[0], o->out + o->out_len, sizeof(o->out) - 1 - o->out_len);

			if (n > 0) {
				o->out_len += (size_t)n;
			} else if (n == 0 || errno != EINTR) {
				close(out[0]);
				out[0] = -1;
			}
		}
		if (p[1].revents) {
			ssize_t n = read(err[0], o->err + o->err_len, sizeof(o->err) - 1 - o->err_len);

			if (n > 0) {
				o->err_len += (size_t)n;
			} else if (n == 0 || errno != EINTR) {
				close(err[0]);
				err[0] = -1;
			}
		}
		if (p[2].revents) {
			ssize_t n = write(in[1], input + in_off, in_len - in_off);

			if (n > 0)
				in_off += (size_t)n;
			if (n < 0 || in_off == in_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (o->out_len == sizeof(o->out) - 1)
			fail_msg("%s: more than %zu bytes of output", argv[0], sizeof(o->out) - 1);
	}
	if (in[1] >= 0)
		close(in[1]);
	o->out[o->out_len] = '\0';
	o->err[o->err_len] = '\0';
	o->code = t_wait(pid, 30000);
}

int t_ctl(const struct t_mon *m, struct t_out *o, bool json, const char *cmd)
{
	char *argv[6];
	int i = 0;

	argv[i++] = (char *)IPCDCTL_BIN;
	argv[i++] = (char *)"-s";
	argv[i++] = (char *)m->sock;
	if (json)
		argv[i++] = (char *)"--json";
	argv[i++] = (char *)cmd;
	argv[i] = NULL;
	t_run(o, NULL, argv, NULL);
	return o->code;
}

static struct t_out ctl_out;

long long t_ctl_num(const struct t_mon *m, const char *cmd, const char *key)
{
	long long v;

	if (t_ctl(m, &ctl_out, true, cmd) != 0)
		fail_msg("ipcdctl --json %s: exit %d, stderr: %s", cmd, ctl_out.code, ctl_out.err);
	if (!t_json_num(ctl_out.out, key, &v))
		fail_msg("ipcdctl --json %s: no \"%s\" in: %s", cmd, key, ctl_out.out);
	return v;
}

long long t_ctl_wait_num(const struct t_mon *m, const char *cmd, const char *key, long long want)
{
	uint64_t deadline = ipcd_deadline((int64_t)T_WAIT_MS * T_NSEC_PER_MSEC);
	long long v;

	while ((v = t_ctl_num(m, cmd, key)) != want && ipcd_remaining(deadline) != 0)
		t_sleep_ms(20);
	return v;
}

bool t_json_num(const char *json, const char *key, long long *v)
{
	char pat[96];
	const char *p;
	char *end;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	if (!p)
		return false;
	p += strlen(pat);
	errno = 0;
	*v = strtoll(p, &end, 10);
	return end != p && errno == 0;
}

unsigned int t_count_str(const char *s, const char *needle)
{
	unsigned int n = 0;
	size_t len = strlen(needle);

	while ((s = strstr(s, needle))) {
		n++;
		s += len;
	}
	return n;
}

bool t_json_balanced(const char *s)
{
	char stack[64];
	int depth = 0;
	bool in_str = false, seen = false;

	for (; *s; s++) {
		char c = *s;

		if (in_str) {
			if (c == '\\' && s[1])
				s++;
			else if (c == '"')
				in_str = false;
			else if ((unsigned char)c < 0x20)
				return false;
			continue;
		}
		if (depth == 0 && seen && c != '\n' && c != ' ')
			return false;	/* a second top-level value */
		switch (c) {
		case '"':
			in_str = true;
			break;
		case '{':
		case '[':
			if (depth == (int)sizeof(stack))
				return false;
			stack[depth++] = c == '{' ? '}' : ']';
			break;
		case '}':
		case ']':
			if (depth == 0 || stack[--depth] != c)
				return false;
			if (depth == 0)
				seen = true;
			break;
		default:
			break;
		}
	}
	return !in_str && depth == 0 && seen;
}

int t_json_python(const char *s)
{
	static struct t_out o;
	char *const argv[] = { (char *)"python3", (char *)"-c",
			       (char *)"import json,sys; json.load(sys.stdin)", NULL };

	t_run(&o, s, argv, NULL);
	if (o.code == 127)
		return T_EXIT_SKIP;
	if (o.code != 0)
		fprintf(stderr, "python3 json: %s\n", o.err);
	return o.code == 0 ? 0 : 1;
}

/* ---- raw control-socket clients ----------------------------------------- */

int t_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return fd;
}

static int poll_in(int sock, int timeout_ms)
{
	struct pollfd p = { .fd = sock, .events = POLLIN | POLLRDHUP };
	uint64_t deadline = ipcd_deadline((int64_t)timeout_ms * T_NSEC_PER_MSEC);
	int rc;

	for (;;) {
		int left = (int)(ipcd_remaining(deadline) / T_NSEC_PER_MSEC);

		rc = poll(&p, 1, left);
		if (rc > 0)
			return 0;
		if (rc == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

ssize_t t_recv_welcome(int sock, struct ipcd_ctl_welcome *w, unsigned int *nfds, int timeout_ms)
{
	int fds[IPCD_CTL_MAX_FDS];
	ssize_t n;
	int rc;

	*nfds = 0;
	memset(w, 0, sizeof(*w));
	rc = poll_in(sock, timeout_ms);
	if (rc)
		return rc;
	n = ipcd_ctl_recv(sock, w, sizeof(*w), MSG_DONTWAIT, fds, IPCD_CTL_MAX_FDS, nfds);
	for (unsigned int i = 0; i < *nfds; i++)
		close(fds[i]);		/* only their number matters here */
	return n;
}

/* The relay: runs in its own child, so no cmocka here. */
static void proxy_run(int lsock, const char *upstream, int d_major, int d_minor)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPCD_CTL_NFDS)];
		struct cmsghdr align;
	} u;
	struct ipcd_ctl_hello h;
	struct ipcd_ctl_welcome w;
	struct iovec iov = { .iov_base = &w, .iov_len = sizeof(w) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	int down, up;
	ssize_t n;

	down = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
	T_CHECK(down >= 0);
	close(lsock);
	n = recv(down, &h, sizeof(h), 0);
	T_CHECK_EQ(n, sizeof(h));
	h.abi_major = (uint16_t)(h.abi_major + d_major);
	h.abi_minor = (uint16_t)(h.abi_minor + d_minor);
	up = t_connect(upstream);
	T_CHECK(up >= 0);
	T_CHECK_EQ(send(up, &h, sizeof(h), MSG_NOSIGNAL), sizeof(h));
	n = recvmsg(up, &mh, 0);
	T_CHECK(n > 0);
	iov.iov_len = (size_t)n;
	if (!CMSG_FIRSTHDR(&mh)) {
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
	}
	T_CHECK_EQ(sendmsg(down, &mh, MSG_NOSIGNAL), n);
	/* Hold the registration until the client or the monitor goes away. */
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = down, .events = POLLIN | POLLRDHUP },
			{ .fd = up, .events = POLLIN | POLLRDHUP },
		};
		char byte;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents && recv(down, &byte, 1, MSG_DONTWAIT) <= 0 && errno != EAGAIN)
			break;
		if (p[1].revents && recv(up, &byte, 1, MSG_DONTWAIT) <= 0 && errno != EAGAIN)
			break;
	}
	_exit(0);
}

pid_t t_hello_proxy(const char *listen_path, const char *upstream, int d_major, int d_minor)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	pid_t pid;

	assert_true(lsock >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", listen_path);
	unlink(listen_path);
	if (bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lsock, 4) < 0)
		fail_msg("proxy %s: %s", listen_path, strerror(errno));
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		proxy_run(lsock, upstream, d_major, d_minor);
	close(lsock);
	return pid;
}

/* ---- client side -------------------------------------------------------- */

int t_call(struct ipcd_attach *a, uint16_t op, const void *body, uint16_t len,
	   struct ipcd_resp *resp, int64_t timeout_ns)
{
	uint64_t deadline = ipcd_deadline(timeout_ns);
	struct ipcd_req req;
	int rc;

	memset(&req, 0, sizeof(req));
	req.opcode = op;
	req.len = len;
	if (len)
		memcpy(req.body, body, len <= IPCD_REQ_BODY ? len : IPCD_REQ_BODY);
	req.cookie = ++a->cl.next_cookie;
	while ((rc = ipcd_reqq_submit(&a->cl, &req)) == -EAGAIN) {
		int64_t left = ipcd_remaining(deadline);

		if (left == 0)
			return -ETIMEDOUT;
		rc = ipcd_spsc_wait_writable(&a->cl.chan.req, sizeof(req), 20000, left);
		if (rc && rc != -ETIMEDOUT)
			return rc;
	}
	if (rc)
		return rc;
	for (;;) {
		ssize_t n = ipcd_spsc_recv(&a->cl.chan.resp, resp, sizeof(*resp));
		int64_t left;

		if (n == (ssize_t)sizeof(*resp))
			return resp->cookie == req.cookie ? 0 : -EBADMSG;
		if (n >= 0)
			return -EBADMSG;
		if (n != -EAGAIN)
			return (int)n;
		left = ipcd_remaining(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		rc = ipcd_spsc_wait_readable(&a->cl.chan.resp, 20000, left);
		if (rc && rc != -ETIMEDOUT)
			return rc;
	}
}

int t_echo_check(struct ipcd_attach *a, uint32_t stream, uint64_t pos, uint16_t len)
{
	uint8_t body[IPCD_REQ_BODY];
	struct ipcd_resp resp;
	unsigned int i;
	int rc;

	t_pattern_fill(body, len, stream, pos);
	rc = t_call(a, IPCD_OP_ECHO, body, len, &resp, T_CALL_TIMEOUT_NS);
	if (rc)
		return rc;
	if (resp.status != 0 || resp.opcode != IPCD_OP_ECHO || resp.len != len ||
	    memcmp(resp.body, body, len))
		return -EBADMSG;
	for (i = len; i < IPCD_REQ_BODY; i++)
		if (resp.body[i])
			return -EBADMSG;
	return 0;
}

bool t_resp_ring_empty(struct ipcd_attach *a)
{
	return !ipcd_spsc_readable(&a->cl.chan.resp);
}

void t_ring_monitor(struct ipcd_attach *a)
{
	struct ipcd_client_ctl *ctl = a->cl.chan.ctl;

	if (a->cl.db && ipcd_xchg(&ctl->doorbell_pending, 1) == 0) {
		uint32_t v = ipcd_load_relaxed(&ctl->slot) | ipcd_load_relaxed(&ctl->gen) << 16;

		if (ipcd_mpsc_push(a->cl.db, v))
			ipcd_store_release(&ctl->doorbell_pending, 0);
	}
	ipcd_store_relaxed(&ctl->mon_wait, 0);
	ipcd_eventfd_signal(a->wake_fd);
}

int t_wait_eof(int sock, int timeout_ms)
{
	uint64_t deadline = ipcd_deadline((int64_t)timeout_ms * T_NSEC_PER_MSEC);

	for (;;) {
		char byte;
		ssize_t n;
		int rc = poll_in(sock, (int)(ipcd_remaining(deadline) / T_NSEC_PER_MSEC));

		if (rc)
			return rc;
		n = recv(sock, &byte, 1, MSG_DONTWAIT);
		if (n == 0)
			return 0;
		if (n > 0)
			return -EBADMSG;
		if (errno == ECONNRESET)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
}

void t_attach(const struct t_mon *m, const char *comm, struct ipcd_attach *a)
{
	char why[256] = "";
	int rc = ipcd_attach(m->sock, comm, a, why, sizeof(why));

	if (rc)
		fail_msg("ipcd_attach(%s): %d (%s): %s", m->sock, rc, strerror(-rc), why);
	assert_int_equal(a->welcome.queue_mode, m->mode);
	assert_int_equal(a->welcome.pid, getpid());
}

/* ---- kernel sockets behind raw LISTENs ------------------------------------ */

#define T_BINDS	64

static struct t_bind {
	uint32_t id;		/* 0: free */
	uint8_t addr[16];
	uint16_t port;
	uint32_t flags;
	int fd;			/* -1: not made yet */
	pid_t pid;		/* the process that noted it (a fork child notes its own) */
} t_binds[T_BINDS];

static struct t_bind *bind_of(uint32_t id)
{
	unsigned int i;

	for (i = 0; i < T_BINDS; i++)
		if (t_binds[i].id == id && t_binds[i].pid == getpid())
			return &t_binds[i];
	return NULL;
}

void t_note_bind(uint32_t id, const uint8_t addr[16], uint16_t port, uint32_t flags)
{
	struct t_bind *b = bind_of(id);
	unsigned int i;

	/* The same id from an earlier monitor (ids start again): its socket is stale. */
	if (b) {
		if (b->fd >= 0)
			close(b->fd);
		memset(b, 0, sizeof(*b));
		b->fd = -1;
		b = NULL;
	}
	/* A socket t_kernel_port() made for this address and port: the bind's now. */
	for (i = 0; i < T_BINDS; i++)
		if (t_binds[i].pid == getpid() && t_binds[i].id == 0 && t_binds[i].fd >= 0 &&
		    t_binds[i].port == port && !memcmp(t_binds[i].addr, addr, 16)) {
			t_binds[i].id = id;
			return;
		}

	for (i = 0; !b && i < T_BINDS; i++)
		if ((!t_binds[i].id && t_binds[i].fd < 0) || t_binds[i].pid != getpid() ||
		    (t_binds[i].id && t_binds[i].fd >= 0 && fcntl(t_binds[i].fd, F_GETFD) < 0))
			b = &t_binds[i];	/* free, a parent's, or its socket closed since */
	if (!b)
		b = &t_binds[id % T_BINDS];
	b->id = id;
	memcpy(b->addr, addr, 16);
	b->port = port;
	b->flags = flags;
	b->fd = -1;
	b->pid = getpid();
}

uint16_t t_kernel_port(const uint8_t addr[16], uint32_t flags)
{
	struct t_bind *b = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	uint16_t port;
	unsigned int i;
	int fd;

	for (i = 0; !b && i < T_BINDS; i++)	/* free: not a pending socket of ours */
		if ((!t_binds[i].id && t_binds[i].fd < 0) || t_binds[i].pid != getpid())
			b = &t_binds[i];
	if (!b)
		return 0;
	memset(b, 0, sizeof(*b));
	memcpy(b->addr, addr, 16);
	b->flags = flags;
	b->fd = -1;
	b->pid = getpid();
	b->id = UINT32_MAX;		/* taken while we make it */
	fd = t_kernel_listener(UINT32_MAX);
	b->id = 0;
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		if (fd >= 0)
			close(fd);
		b->fd = -1;
		b->pid = 0;
		return 0;
	}
	port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					      : ((struct sockaddr_in6 *)&ss)->sin6_port);
	b->port = port;
	return port;
}

int t_kernel_listener(uint32_t id)
{
	static const uint8_t v4[12] = { [10] = 0xff, [11] = 0xff };
	struct t_bind *b = bind_of(id);
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	if (!b)
		return -1;
	if (b->fd >= 0 && fcntl(b->fd, F_GETFD) >= 0)
		return b->fd;
	memset(&ss, 0, sizeof(ss));
	if (!memcmp(b->addr, v4, 12)) {
		struct sockaddr_in *in = (void *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(b->port);
		memcpy(&in->sin_addr, b->addr + 12, 4);
		sl = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (void *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(b->port);
		memcpy(&in6->sin6_addr, b->addr, 16);
		sl = sizeof(*in6);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (b->flags & IPCD_BIND_REUSEADDR)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (b->flags & IPCD_BIND_REUSEPORT)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
			   &(int){ (b->flags & IPCD_BIND_V6ONLY) != 0 }, sizeof(int));
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 64)) {
		fprintf(stderr, "t_kernel_listener: bind %u: port %u: %s\n", id, b->port,
			strerror(errno));
		close(fd);
		return -1;
	}
	b->fd = fd;
	return fd;
}
