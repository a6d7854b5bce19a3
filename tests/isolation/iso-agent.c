/* SPDX-License-Identifier: MIT */
/*
 * ipcd-iso-agent - one process of one user for the isolation tests
 * (it_isolation.c), run under ipcd-run (or not: the kernel oracle).
 * Plain POSIX calls: it behaves the same with and without libipcd.so.
 *
 * The test drives it line by line on stdin; every command is answered with
 * one line on stdout, "ok [values]" or "err <call> <ERRNO-NAME>", so the
 * test sees exactly what the application would see. Sockets are named by
 * their fd number. Every wait is bounded (a hang guard, never a timing
 * assertion): the test's own guard then reports the agent's stderr.
 *
 *   pid                          ok PID
 *   tcp-bind ADDR PORT [reuse]   ok FD          bind only (the listen comes apart)
 *   listen FD                    ok
 *   tcp-connect ADDR PORT        ok FD
 *   accept FD [MS]               ok FD          poll, then accept (err accept ETIMEDOUT)
 *   unix-listen PATH MODE        ok FD          @NAME: abstract; MODE octal, chmod'ed
 *   unix-connect PATH            ok FD
 *   send FD N STREAM POS         ok             N pattern bytes (t_pattern_byte)
 *   recv FD N STREAM POS         ok             exactly N, checked (err recv EBADMSG)
 *   sendstr FD WORD / expect FD WORD
 *   pipe / socketpair            ok FD FD
 *   peercred FD                  ok PID UID GID
 *   close FD / quit
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define GUARD_MS	20000	/* hang guard of one blocking command */
#define LINE_MAX_	1024

/* The same bytes as tests/helpers t_pattern_byte(): a stream checked without copies. */
static uint8_t pattern_byte(uint32_t stream, uint64_t pos)
{
	uint64_t x = (pos + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)stream << 17;

	return (uint8_t)(x >> 56 ^ x >> 13);
}

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
	char buf[LINE_MAX_];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	/* stdout is the test's kernel pipe: a short write only on its death */
	if (write(1, buf, (size_t)n) != n)
		_exit(3);
}

static void reply_err(const char *call, int err)
{
	const char *name = strerrorname_np(err);

	reply("err %s %s", call, name ? name : "?");
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for @events on @fd until @deadline (ms): 0, or -ETIMEDOUT / -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int64_t left = deadline - now_ms();
		int rc;

		if (left <= 0)
			return -ETIMEDOUT;
		rc = poll(&p, 1, (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -errno;
	}
}

/* ADDR PORT -> a sockaddr (IPv4 or IPv6 literal). */
static bool inet_addr_of(const char *host, const char *port, struct sockaddr_storage *ss,
			 socklen_t *len)
{
	struct sockaddr_in *in = (void *)ss;
	struct sockaddr_in6 *in6 = (void *)ss;
	unsigned long p = strtoul(port, NULL, 10);

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)p);
		*len = sizeof(*in);
		return true;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*in6);
		return true;
	}
	return false;
}

/* PATH or @NAME -> a sockaddr_un (an abstract name's length counts its bytes only). */
static socklen_t unix_addr_of(const char *path, struct sockaddr_un *sun)
{
	size_t n = strlen(path);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (n >= sizeof(sun->sun_path))
		n = sizeof(sun->sun_path) - 1;
	memcpy(sun->sun_path, path, n);
	if (path[0] == '@') {
		sun->sun_path[0] = '\0';
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	}
	return (socklen_t)sizeof(*sun);
}

static void cmd_tcp_bind(char **a, int n)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	if (n < 3 || !inet_addr_of(a[1], a[2], &ss, &len)) {
		reply("err usage EINVAL");
		return;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		reply_err("socket", errno);
		return;
	}
	if (n > 3 && !strcmp(a[3], "reuse"))
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		reply_err("bind", errno);
		close(fd);
		return;
	}
	reply("ok %d", fd);
}

static void cmd_tcp_connect(char **a, int n)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	if (n < 3 || !inet_addr_of(a[1], a[2], &ss, &len)) {
		reply("err usage EINVAL");
		return;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		reply_err("socket", errno);
		return;
	}
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		reply_err("connect", errno);
		close(fd);
		return;
	}
	reply("ok %d", fd);
}


/* The listener is nonblocking (cmd_listen): poll, then accept, until the guard. */
static void cmd_accept(char **a, int n)
{
	int fd = atoi(a[1]);
	int64_t deadline = now_ms() + (n > 2 ? atoi(a[2]) : GUARD_MS);

	for (;;) {
		int c, rc = wait_fd(fd, POLLIN, deadline);

		if (rc) {
			reply_err("accept", -rc);
			return;
		}
		c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c >= 0) {
			reply("ok %d", c);
			return;
		}
		/* readable for another kind of connection, or taken: poll again */
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
			reply_err("accept", errno);
			return;
		}
	}
}

static void cmd_listen(char **a)
{
	int fd = atoi(a[1]);

	if (listen(fd, 64) < 0) {
		reply_err("listen", errno);
		return;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		reply_err("fcntl", errno);
		return;
	}
	reply("ok");
}

static void cmd_unix_listen(char **a)
{
	struct sockaddr_un sun;
	socklen_t len = unix_addr_of(a[1], &sun);
	unsigned long mode = strtoul(a[2], NULL, 8);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		reply_err("socket", errno);
		return;
	}
	if (a[1][0] != '@')
		unlink(a[1]);
	if (bind(fd, (struct sockaddr *)&sun, len) < 0) {
		reply_err("bind", errno);
		close(fd);
		return;
	}
	if (a[1][0] != '@' && chmod(a[1], (mode_t)mode) < 0) {
		reply_err("chmod", errno);
		close(fd);
		return;
	}
	if (listen(fd, 64) < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		reply_err("listen", errno);
		close(fd);
		return;
	}
	reply("ok %d", fd);
}

static void cmd_unix_connect(char **a)
{
	struct sockaddr_un sun;
	socklen_t len = unix_addr_of(a[1], &sun);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		reply_err("socket", errno);
		return;
	}
	if (connect(fd, (struct sockaddr *)&sun, len) < 0) {
		reply_err("connect", errno);
		close(fd);
		return;
	}
	reply("ok %d", fd);
}

/* Write all of @len bytes at @p (bounded): 0 or -errno. */
static int write_all(int fd, const uint8_t *p, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w > 0) {
			p += w;
			len -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			int rc = wait_fd(fd, POLLOUT, deadline);

			if (rc)
				return rc;
			continue;
		}
		return w < 0 ? -errno : -EIO;
	}
	return 0;
}

/*
 * Read exactly @len bytes into @p (bounded): 0, -ENODATA at EOF, -errno.
 * Polls first, so a blocking socket never blocks past the guard.
 */
static int read_all(int fd, uint8_t *p, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t r;
		int rc = wait_fd(fd, POLLIN, deadline);

		if (rc)
			return rc;
		r = read(fd, p, len);
		if (r > 0) {
			p += r;
			len -= (size_t)r;
			continue;
		}
		if (r == 0)
			return -ENODATA;
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	return 0;
}

static void cmd_send(char **a)
{
	int fd = atoi(a[1]);
	size_t len = strtoul(a[2], NULL, 10), i;
	uint32_t stream = (uint32_t)strtoul(a[3], NULL, 10);
	uint64_t pos = strtoull(a[4], NULL, 10);
	uint8_t *buf = malloc(len ? len : 1);
	int rc;

	if (!buf) {
		reply_err("malloc", ENOMEM);
		return;
	}
	for (i = 0; i < len; i++)
		buf[i] = pattern_byte(stream, pos + i);
	rc = write_all(fd, buf, len, now_ms() + GUARD_MS);
	free(buf);
	if (rc)
		reply_err("send", -rc);
	else
		reply("ok");
}

static void cmd_recv(char **a)
{
	int fd = atoi(a[1]);
	size_t len = strtoul(a[2], NULL, 10), i;
	uint32_t stream = (uint32_t)strtoul(a[3], NULL, 10);
	uint64_t pos = strtoull(a[4], NULL, 10);
	uint8_t *buf = malloc(len ? len : 1);
	int rc;

	if (!buf) {
		reply_err("malloc", ENOMEM);
		return;
	}
	rc = read_all(fd, buf, len, now_ms() + GUARD_MS);
	for (i = 0; !rc && i < len; i++)
		if (buf[i] != pattern_byte(stream, pos + i))
			rc = -EBADMSG;
	free(buf);
	if (rc)
		reply_err("recv", -rc);
	else
		reply("ok");
}

static void cmd_sendstr(char **a)
{
	int rc = write_all(atoi(a[1]), (const uint8_t *)a[2], strlen(a[2]), now_ms() + GUARD_MS);

	if (rc)
		reply_err("send", -rc);
	else
		reply("ok");
}

static void cmd_expect(char **a)
{
	size_t len = strlen(a[2]);
	uint8_t buf[LINE_MAX_];
	int rc = read_all(atoi(a[1]), buf, len, now_ms() + GUARD_MS);

	if (!rc && memcmp(buf, a[2], len))
		rc = -EBADMSG;
	if (rc)
		reply_err("recv", -rc);
	else
		reply("ok");
}

static void cmd_peercred(char **a)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(atoi(a[1]), SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		reply_err("getsockopt", errno);
	else
		reply("ok %d %u %u", (int)uc.pid, uc.uid, uc.gid);
}

static void run(char *line)
{
	/* each command's argument count, checked before any is read */
	static const struct { const char *name; int argc; } cmds[] = {
		{ "pid", 1 }, { "tcp-bind", 3 }, { "listen", 2 }, { "tcp-connect", 3 },
		{ "accept", 2 }, { "unix-listen", 3 }, { "unix-connect", 2 }, { "send", 5 },
		{ "recv", 5 }, { "sendstr", 3 }, { "expect", 3 }, { "pipe", 1 },
		{ "socketpair", 1 }, { "peercred", 2 }, { "close", 2 }, { "quit", 1 },
	};
	char *a[8], *save = NULL, *t;
	int n = 0, fds[2];
	unsigned int i;

	for (t = strtok_r(line, " ", &save); t && n < 8; t = strtok_r(NULL, " ", &save))
		a[n++] = t;
	if (!n)
		return;
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(a[0], cmds[i].name))
			break;
	if (i == sizeof(cmds) / sizeof(cmds[0]) || n < cmds[i].argc) {
		reply("err usage EINVAL");
		return;
	}
	if (!strcmp(a[0], "pid")) {
		reply("ok %d", (int)getpid());
	} else if (!strcmp(a[0], "tcp-bind")) {
		cmd_tcp_bind(a, n);
	} else if (!strcmp(a[0], "listen")) {
		cmd_listen(a);
	} else if (!strcmp(a[0], "tcp-connect")) {
		cmd_tcp_connect(a, n);
	} else if (!strcmp(a[0], "accept")) {
		cmd_accept(a, n);
	} else if (!strcmp(a[0], "unix-listen")) {
		cmd_unix_listen(a);
	} else if (!strcmp(a[0], "unix-connect")) {
		cmd_unix_connect(a);
	} else if (!strcmp(a[0], "send")) {
		cmd_send(a);
	} else if (!strcmp(a[0], "recv")) {
		cmd_recv(a);
	} else if (!strcmp(a[0], "sendstr")) {
		cmd_sendstr(a);
	} else if (!strcmp(a[0], "expect")) {
		cmd_expect(a);
	} else if (!strcmp(a[0], "pipe")) {
		if (pipe2(fds, O_CLOEXEC) < 0)
			reply_err("pipe", errno);
		else
			reply("ok %d %d", fds[0], fds[1]);
	} else if (!strcmp(a[0], "socketpair")) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
			reply_err("socketpair", errno);
		else
			reply("ok %d %d", fds[0], fds[1]);
	} else if (!strcmp(a[0], "peercred")) {
		cmd_peercred(a);
	} else if (!strcmp(a[0], "close")) {
		if (close(atoi(a[1])) < 0)
			reply_err("close", errno);
		else
			reply("ok");
	} else {
		reply("ok");
		exit(0);
	}
}

int main(void)
{
	char buf[LINE_MAX_];
	size_t len = 0;

	/* a dead test must not leave us writing into its pipe forever */
	signal(SIGPIPE, SIG_DFL);
	for (;;) {
		char *nl = memchr(buf, '\n', len);
		ssize_t r;

		if (nl) {
			size_t used = (size_t)(nl - buf) + 1;

			*nl = '\0';
			run(buf);
			memmove(buf, buf + used, len - used);
			len -= used;
			continue;
		}
		if (len == sizeof(buf))
			len = 0;	/* a line longer than any command: drop it */
		r = read(0, buf + len, sizeof(buf) - len);
		if (r == 0)
			return 0;	/* the test went away */
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		len += (size_t)r;
	}
}
