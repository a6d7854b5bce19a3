/* SPDX-License-Identifier: MIT */
/* bench_util.c - what the benchmark drivers share (bench_util.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

void ipcd_bench_vsay(const char *who, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", who);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void ipcd_bench_say_raw(const char *msg)
{
	/* strlen() and write() are async-signal-safe; nothing to do if stderr is gone. */
	ssize_t r = write(STDERR_FILENO, msg, strlen(msg));

	(void)r;
}

pid_t ipcd_bench_fork(void)
{
	fflush(stdout);
	fflush(stderr);
	return fork();
}

void ipcd_bench_exec(const char *const argv[], char **env)
{
	/* execve() takes char *const[] for historical reasons; it does not write to them. */
	execve(argv[0], (char *const *)argv, env);
	fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

void ipcd_bench_child_signals(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
}

pid_t ipcd_bench_spawn_monitor(const char *monitor, const char *conf, const char *log,
			       char **env)
{
	pid_t pid = ipcd_bench_fork();

	if (pid == 0) {
		const char *margv[] = { monitor, "--foreground", "--config", conf, NULL };
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

		ipcd_bench_child_signals();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		ipcd_bench_exec(margv, env);
	}
	return pid;
}

void ipcd_bench_describe_status(int st, char *b, size_t len)
{
	if (st == -1)
		snprintf(b, len, "timed out (killed)");
	else if (WIFEXITED(st))
		snprintf(b, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(b, len, "was killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(b, len, "changed state (0x%x)", st);
}

void ipcd_bench_log_head(const char *path, unsigned int max_lines, char *b, size_t len)
{
	char line[512];
	size_t used = 0;
	unsigned int lines = 0;
	FILE *f = fopen(path, "re");

	b[0] = '\0';
	if (!f)
		return;
	/* Stop short of the end rather than append a stub of a few bytes. */
	while (lines < max_lines && used + 8 < len && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!line[0])
			continue;
		used += (size_t)snprintf(b + used, len - used, "%s%s", lines ? " | " : "", line);
		lines++;
	}
	fclose(f);
}

bool ipcd_bench_mapped(const char *needle)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

void ipcd_bench_rmdir(const char *dir, const char *who)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	if (rmdir(dir))
		fprintf(stderr, "%s: could not remove %s: %s\n", who, dir, strerror(errno));
}

int ipcd_bench_buf_add(struct ipcd_bench_buf *b, const char *d, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = IPCD_MAX(b->cap * 2, b->len + n + 4096);
		char *p = realloc(b->p, cap);

		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int ipcd_bench_drain(int fd, struct ipcd_bench_buf *out, uint64_t until, unsigned int poll_ms)
{
	if (ipcd_bench_buf_add(out, "", 0))
		return -ENOMEM;
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		char chunk[8192];
		uint64_t t = ipcd_now_ns();
		ssize_t n;

		if (t >= until)
			return -ETIMEDOUT;
		if (poll(&pf, 1, (int)IPCD_MIN((until - t) / 1000000 + 1, (uint64_t)poll_ms)) <= 0)
			continue;
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		if (ipcd_bench_buf_add(out, chunk, (size_t)n))
			return -ENOMEM;
	}
}

int ipcd_bench_run_capture(const char *const argv[], char **env, struct ipcd_bench_buf *out,
			   uint64_t timeout_ns, unsigned int poll_ms, int *status)
{
	uint64_t until = ipcd_now_ns() + timeout_ns;
	int p[2], rc;
	pid_t pid;

	*status = -1;
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid = ipcd_bench_fork();
	if (pid < 0) {
		rc = -errno;
		close(p[0]);
		close(p[1]);
		return rc;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

		ipcd_bench_child_signals();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
			_exit(127);
		ipcd_bench_exec(argv, env);
	}
	close(p[1]);
	rc = ipcd_bench_drain(p[0], out, until, poll_ms);
	if (rc)
		kill(pid, SIGKILL);	/* timed out, or no room for what it says */
	close(p[0]);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	if (rc == -ENOMEM)
		return rc;
	return ipcd_now_ns() >= until ? -ETIMEDOUT : 0;
}

int ipcd_bench_write_conf(char *text, const char *path, const char *sock, char *summary,
			  size_t len)
{
	static const char key[] = "control_socket";
	char *line, *save = NULL;
	bool moved = false;
	size_t used = 0;
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	if (len)
		summary[0] = '\0';
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		bool is_sock = !strncmp(line, key, sizeof(key) - 1);

		if (is_sock)
			fprintf(f, "%s = %s\n", key, sock);
		else
			fprintf(f, "%s\n", line);
		moved |= is_sock;
		if (line[0] != '#' && line[0] && used + 1 < len)
			used += (size_t)snprintf(summary + used, len - used, "%s%s", used ? "; " : "",
						 is_sock ? "control_socket = <temp dir>" : line);
	}
	if (!moved)
		fprintf(f, "%s = %s\n", key, sock);
	return fclose(f) ? -errno : 0;
}

const char *ipcd_bench_json_obj(const char *text, const char *name, const char **end)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":{", name);
	p = strstr(text, k);
	*end = p ? strchr(p + strlen(k), '}') : NULL;
	return p;
}

const char *ipcd_bench_json_key(const char *from, const char *end, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(from, k);
	return p && (!end || p < end) ? p + strlen(k) : NULL;
}

uint64_t ipcd_bench_json_u64(const char *from, const char *end, const char *key)
{
	const char *p = ipcd_bench_json_key(from, end, key);

	return p ? strtoull(p, NULL, 10) : 0;
}

int ipcd_bench_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

int ipcd_bench_cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

bool ipcd_bench_cpuinfo(const char *key, char *val, size_t len)
{
	char line[4096];	/* "flags" lines run past 1 KiB */
	bool found = false;
	FILE *f = fopen("/proc/cpuinfo", "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (!colon || strncmp(line, key, strlen(key)))
			continue;
		colon += 1 + (colon[1] == ' ');
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(val, len, "%s", colon);
		found = true;
	}
	fclose(f);
	return found;
}

void ipcd_bench_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}
