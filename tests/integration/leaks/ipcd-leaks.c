/* SPDX-License-Identifier: MIT */
/*
 * ipcd-leaks - the programs of it_monitor_leaks (tests/integration/
 * it_monitor_leaks.c), run under ipcd-run. Plain POSIX: they behave the
 * same without the preload.
 *
 *   ipcd-leaks kill unix|tcp DIR N MAXDELAY_US GUARD_MS
 *       A listener (DIR/u.sock, or 127.0.0.1 port 0) whose forked server
 *       accepts every connection and reads it until EOF (one poll() loop
 *       over all of them); N times a forked child connects, writes one
 *       byte and waits, and is SIGKILLed 0..MAXDELAY_US us after the fork
 *       (bench/soak-repro-unix-kill.sh). A child whose write() returned 1
 *       counts it in shared memory before it waits. Then a last connection
 *       of this process ("END!") marks the end of the backlog: once it and
 *       every connection before it ended, the server prints
 *       "server: drained conns=C bytes=B writes=W resets=R stalls=S" (B: the
 *       children's bytes it read; W: the writes acknowledged; S: connections
 *       whose EOF did not come within GUARD_MS, a hang guard). The listener
 *       stays up until DIR/go-end exists.
 *   ipcd-leaks dead-writers unix|tcp DIR N
 *       A listener (DIR/d.sock, or 127.0.0.1 port 0) that accepts nothing
 *       yet; N times a forked child connects and writes one byte, and once
 *       its write() returned 1 is SIGKILLed and reaped. Then the listener
 *       accepts the N connections, each made by a connector dead by now,
 *       and reads each until EOF (or an error, or GUARD_MS: a stall):
 *       "dead-writers: END conns=C intact=I lost=L resets=R stalls=S" (as
 *       with the kernel, each must give its byte, then EOF).
 *   ipcd-leaks echo-server DIR NAME
 *       127.0.0.1 port 0 (in DIR/NAME.port), lanes as the environment
 *       says; a thread per connection echoes what it reads until EOF.
 *   ipcd-leaks ids-client DIR PORT
 *       Connection X to the echo server on PORT, one exchange; DIR/go-q:
 *       connection Q to the one of DIR/server2.port, one exchange (made
 *       again, up to Q_TRIES times, while it is the kernel's: the first
 *       call after a monitor's death finds it gone, and the next socket()
 *       registers with the new one); DIR/go-close: X closed; DIR/go-data:
 *       exchanges on Q (1 .. 256 KiB, patterned, both ways); DIR/go-end: Q
 *       closed, exit.
 *   ipcd-leaks pipe DIR
 *       A pipe whose reader is a fork child, blocked in a read after it read
 *       "hello"; SIGPIPE ignored. DIR/go-write: two writes of one byte to the
 *       pipe (the test has SIGKILLed the reader), each reported as
 *       "writer: write N: ..." as soon as it returned.
 *
 * Every step is one line on stdout in one write(), starting with the role
 * ("kill:", "server:", "client:", "P:", "reader:", "writer:"); a program
 * that cannot do a step says why on stdout and exits 2. A wait for a go
 * file gives up (exit 3) after GO_GUARD_S, far past the test's guards.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GO_GUARD_S	600
#define MAX_OPEN	1024
#define SENTINEL	"END!"
#define Q_TRIES		50

/* One line, in one write(): processes of one tree share this stdout. */
static void say(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	size_t len, off = 0;
	int saved = errno;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	len = strlen(line);
	line[len++] = '\n';
	while (off < len) {
		ssize_t n = write(1, line + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	errno = saved;
}

static void __attribute__((noreturn)) die(const char *role, const char *what)
{
	say("%s: FAILED: %s: %s", role, what, strerror(errno));
	_exit(2);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Wait for DIR/@name (the test's go file). */
static void wait_go(const char *role, const char *dir, const char *name)
{
	char path[512];
	uint64_t end = mono_ms() + GO_GUARD_S * 1000ull;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	while (access(path, F_OK)) {
		if (mono_ms() > end) {
			say("%s: GUARD: %s never appeared", role, path);
			_exit(3);
		}
		sleep_ms(1);
	}
}

/* What fd @fd is: anon_inode:[eventfd] for an accelerated end. */
static const char *kind(int fd)
{
	static char buf[2][128];
	static int k;
	char path[64];
	ssize_t n;

	k ^= 1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf[k], sizeof(buf[k]) - 1);
	buf[k][n > 0 ? n : 0] = '\0';
	return buf[k];
}

static bool write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len) {
		ssize_t n = write(fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		b += n;
		len -= (size_t)n;
	}
	return true;
}

/* Exactly @len bytes; false on EOF (errno 0) or an error. */
static bool read_exact(int fd, void *p, size_t len)
{
	uint8_t *b = p;

	while (len) {
		ssize_t n = read(fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = 0;
			return false;
		}
		b += n;
		len -= (size_t)n;
	}
	return true;
}

/* ---- kill: connectors SIGKILLed right after their fork ------------------------- */

struct tally {
	unsigned long writes;	/* children's write() that returned 1 */
};

struct open_conn {
	int fd;
	uint64_t deadline;
	unsigned int got;
	char data[8];
};

/*
 * The listener's server: accept every connection and read each until EOF
 * (or an error, or GUARD_MS without an end: a stall). Never returns.
 */
static void __attribute__((noreturn)) kill_server(int l, struct tally *t, unsigned int guard_ms)
{
	static struct open_conn c[MAX_OPEN];
	static struct pollfd pf[MAX_OPEN + 1];
	unsigned long conns = 0, bytes = 0, resets = 0, stalls = 0;
	unsigned int n = 0, polled, i;
	bool sentinel = false, said = false;

	for (;;) {
		uint64_t now;
		int rc;

		pf[0].fd = l;
		pf[0].events = n < MAX_OPEN ? POLLIN : 0;
		for (i = 0; i < n; i++) {
			pf[i + 1].fd = c[i].fd;
			pf[i + 1].events = POLLIN;
			pf[i + 1].revents = 0;
		}
		pf[0].revents = 0;
		polled = n;
		rc = poll(pf, n + 1, 100);
		if (rc < 0 && errno != EINTR)
			die("server", "poll");
		now = mono_ms();
		if (rc > 0 && (pf[0].revents & POLLIN)) {
			int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);

			if (fd < 0 && errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
				die("server", "accept");
			if (fd >= 0) {
				memset(&c[n], 0, sizeof(c[n]));
				c[n].fd = fd;
				c[n].deadline = now + guard_ms;
				n++;
				conns++;
			}
		}
		/* Downwards: a connection moved into slot i was looked at already. */
		for (i = polled; i-- > 0;) {
			short ev = rc > 0 ? pf[i + 1].revents : 0;
			bool done = false;
			char b[64];

			if (!ev) {
				if (now > c[i].deadline) {
					say("server: STALL: a connection (fd %d, %s) had no EOF "
					    "within %u ms; it read %u bytes", c[i].fd,
					    kind(c[i].fd), guard_ms, c[i].got);
					stalls++;
					done = true;
				}
			} else {
				ssize_t r = read(c[i].fd, b, sizeof(b));

				if (r < 0 && (errno == EINTR || errno == EAGAIN))
					continue;
				if (r < 0) {
					if (errno == ECONNRESET)
						resets++;
					else
						say("server: read: %s", strerror(errno));
					done = true;
				} else if (r == 0) {
					done = true;
				} else {
					size_t room = sizeof(c[i].data) - c[i].got;

					if (room)
						memcpy(c[i].data + c[i].got, b,
						       (size_t)r < room ? (size_t)r : room);
					c[i].got += (unsigned int)r;
				}
			}
			if (!done)
				continue;
			if (c[i].got == strlen(SENTINEL) && !memcmp(c[i].data, SENTINEL, 4))
				sentinel = true;
			else
				bytes += c[i].got;
			close(c[i].fd);
			c[i] = c[--n];
		}
		if (sentinel && !n && !said) {
			say("server: drained conns=%lu bytes=%lu writes=%lu resets=%lu stalls=%lu",
			    conns - 1, bytes, __atomic_load_n(&t->writes, __ATOMIC_SEQ_CST), resets,
			    stalls);
			said = true;
		}
	}
}

static int kill_main(int argc, char **argv)
{
	struct sockaddr_un u = { .sun_family = AF_UNIX };
	struct sockaddr_in in = { .sin_family = AF_INET };
	bool tcp;
	const char *dir;
	int n, maxd, l, i, s;
	unsigned int guard_ms;
	struct sockaddr *sa;
	socklen_t salen;
	struct tally *t;
	pid_t srv;

	if (argc != 7)
		return 2;
	tcp = !strcmp(argv[2], "tcp");
	dir = argv[3];
	n = atoi(argv[4]);
	maxd = atoi(argv[5]);
	guard_ms = (unsigned int)atoi(argv[6]);
	sa = tcp ? (struct sockaddr *)&in : (struct sockaddr *)&u;
	salen = tcp ? sizeof(in) : sizeof(u);
	snprintf(u.sun_path, sizeof(u.sun_path), "%s/u.sock", dir);
	unlink(u.sun_path);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED)
		die("kill", "mmap");
	l = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, sa, salen) || listen(l, 128) || getsockname(l, sa, &salen))
		die("kill", "socket/bind/listen");
	srv = fork();
	if (srv < 0)
		die("kill", "fork");
	if (srv == 0)
		kill_server(l, t, guard_ms);
	close(l);
	say("kill: listening on %s (%s); server pid=%d", tcp ? "127.0.0.1" : u.sun_path,
	    argv[2], (int)srv);
	srand(1);
	for (i = 0; i < n; i++) {
		pid_t p = fork();

		if (p < 0)
			die("kill", "fork");
		if (p == 0) {
			s = socket(sa->sa_family, SOCK_STREAM, 0);
			if (s >= 0 && connect(s, sa, salen) == 0 && write(s, "x", 1) == 1)
				__atomic_add_fetch(&t->writes, 1, __ATOMIC_SEQ_CST);
			for (;;)
				pause();
		}
		usleep((useconds_t)(rand() % (maxd + 1)));
		kill(p, SIGKILL);
		while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
			;
	}
	say("kill: done forks=%d writes=%lu", n, __atomic_load_n(&t->writes, __ATOMIC_SEQ_CST));
	/* The end of the backlog: the server reads this after every child's. */
	s = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, sa, salen) || !write_all(s, SENTINEL, strlen(SENTINEL)))
		die("kill", "the last connection");
	say("kill: sentinel sent fd=%s", kind(s));
	close(s);
	wait_go("kill", dir, "go-end");
	kill(srv, SIGKILL);
	while (waitpid(srv, NULL, 0) < 0 && errno == EINTR)
		;
	say("kill: END");
	return 0;
}

/* ---- dead-writers: connections accepted after their connector's death ------------ */

static int dead_writers_main(int argc, char **argv)
{
	struct sockaddr_un u = { .sun_family = AF_UNIX };
	struct sockaddr_in in = { .sin_family = AF_INET };
	unsigned long intact = 0, lost = 0, resets = 0, stalls = 0, other = 0;
	unsigned int guard_ms;
	struct sockaddr *sa;
	socklen_t salen;
	unsigned int *wrote;
	int n, l, i;
	bool tcp;

	if (argc != 6)
		return 2;
	tcp = !strcmp(argv[2], "tcp");
	n = atoi(argv[4]);
	guard_ms = (unsigned int)atoi(argv[5]);
	sa = tcp ? (struct sockaddr *)&in : (struct sockaddr *)&u;
	salen = tcp ? sizeof(in) : sizeof(u);
	snprintf(u.sun_path, sizeof(u.sun_path), "%s/d.sock", argv[3]);
	unlink(u.sun_path);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	wrote = mmap(NULL, sizeof(*wrote), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		     -1, 0);
	if (wrote == MAP_FAILED)
		die("dead-writers", "mmap");
	l = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, sa, salen) || listen(l, 4096) || getsockname(l, sa, &salen))
		die("dead-writers", "socket/bind/listen");
	say("dead-writers: listening on %s (%s)", tcp ? "127.0.0.1" : u.sun_path, argv[2]);
	for (i = 0; i < n; i++) {
		uint64_t end = mono_ms() + guard_ms;
		pid_t p;

		__atomic_store_n(wrote, 0, __ATOMIC_SEQ_CST);
		p = fork();
		if (p < 0)
			die("dead-writers", "fork");
		if (p == 0) {
			int s = socket(sa->sa_family, SOCK_STREAM, 0);

			if (s < 0 || connect(s, sa, salen))
				__atomic_store_n(wrote, 2, __ATOMIC_SEQ_CST);
			else
				__atomic_store_n(wrote, write(s, "x", 1) == 1 ? 1 : 3,
						 __ATOMIC_SEQ_CST);
			for (;;)
				pause();
		}
		while (!__atomic_load_n(wrote, __ATOMIC_SEQ_CST) && mono_ms() < end)
			usleep(100);
		kill(p, SIGKILL);
		while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
			;
		if (__atomic_load_n(wrote, __ATOMIC_SEQ_CST) != 1) {
			say("dead-writers: FAILED: connector %d: %s", i,
			    *wrote == 2 ? "connect() failed" : *wrote == 3 ? "write() failed" :
			    "no connect() and write() within the hang guard");
			return 2;
		}
	}
	say("dead-writers: %d connectors wrote their byte and were SIGKILLed; accepting", n);
	for (i = 0; i < n; i++) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		unsigned int got = 0;
		char b[16], first = 0;

		if (c < 0)
			die("dead-writers", "accept");
		for (;;) {
			struct pollfd pf = { .fd = c, .events = POLLIN };
			ssize_t r;

			if (poll(&pf, 1, (int)guard_ms) == 0) {
				say("dead-writers: STALL: connection %d (fd=%s): no EOF within %u ms "
				    "after %u bytes", i, kind(c), guard_ms, got);
				stalls++;
				break;
			}
			r = read(c, b, sizeof(b));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				say("dead-writers: connection %d (fd=%s): read: %s after %u bytes", i,
				    kind(c), strerror(errno), got);
				if (errno == ECONNRESET)
					resets++;
				else
					other++;
				break;
			}
			if (r == 0) {
				if (got == 1 && first == 'x')
					intact++;
				else
					lost++;
				if (got != 1)
					say("dead-writers: connection %d (fd=%s): EOF after %u bytes, "
					    "expected 1", i, kind(c), got);
				break;
			}
			if (!got)
				first = b[0];
			got += (unsigned int)r;
		}
		close(c);
	}
	say("dead-writers: END conns=%d intact=%lu lost=%lu resets=%lu stalls=%lu errors=%lu", n,
	    intact, lost, resets, stalls, other);
	return 0;
}

/* ---- echo-server and ids-client: a connection that outlives its monitor ------------ */

static void *echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	static uint8_t dummy;
	uint8_t *buf = malloc(65536);
	unsigned long total = 0;

	if (!buf)
		buf = &dummy;
	for (;;) {
		ssize_t n = read(fd, buf, buf == &dummy ? 1 : 65536);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			say("server: conn fd %d %s after %lu bytes", fd,
			    n == 0 ? "EOF" : strerror(errno), total);
			break;
		}
		total += (unsigned long)n;
		if (!write_all(fd, buf, (size_t)n)) {
			say("server: conn fd %d write: %s after %lu bytes", fd, strerror(errno),
			    total);
			break;
		}
	}
	close(fd);
	if (buf != &dummy)
		free(buf);
	return NULL;
}

static int echo_server_main(int argc, char **argv)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t len = sizeof(in);
	char path[512], tmp[520];
	FILE *f;
	int l;

	if (argc != 4)
		return 2;
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&in, sizeof(in)) || listen(l, 64) ||
	    getsockname(l, (struct sockaddr *)&in, &len))
		die("server", "socket/bind/listen");
	snprintf(path, sizeof(path), "%s/%s.port", argv[2], argv[3]);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f || fprintf(f, "%u\n", ntohs(in.sin_port)) < 0 || fclose(f) || rename(tmp, path))
		die("server", "port file");
	say("server: pid=%d listening on 127.0.0.1:%u", (int)getpid(), ntohs(in.sin_port));
	for (;;) {
		int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		pthread_t th;

		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0)
			die("server", "accept");
		say("server: accepted fd=%s", kind(fd));
		if (pthread_create(&th, NULL, echo_conn, (void *)(intptr_t)fd))
			die("server", "pthread_create");
		pthread_detach(th);
	}
}

static int connect_port(unsigned int port)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	in.sin_port = htons((uint16_t)port);
	if (s < 0 || connect(s, (struct sockaddr *)&in, sizeof(in)))
		return -1;
	return s;
}

/*
 * @len patterned bytes (@salt) to @fd while reading them back, in 16 KiB
 * steps (the echo never holds more than that): "" if intact, else what
 * went wrong (a static string).
 */
static const char *exchange(int fd, size_t len, unsigned int salt)
{
	static char why[256];
	static uint8_t out[16384], back[16384];
	size_t done = 0, i;

	while (done < len) {
		size_t n = len - done < sizeof(out) ? len - done : sizeof(out);

		for (i = 0; i < n; i++)
			out[i] = (uint8_t)((done + i) * 31 + salt + ((done + i) >> 8));
		if (!write_all(fd, out, n)) {
			snprintf(why, sizeof(why), "write at byte %zu of %zu: %s", done, len,
				 strerror(errno));
			return why;
		}
		if (!read_exact(fd, back, n)) {
			snprintf(why, sizeof(why), "read of the echo at byte %zu of %zu: %s", done,
				 len, errno ? strerror(errno) : "EOF");
			return why;
		}
		if (memcmp(out, back, n)) {
			for (i = 0; i < n && out[i] == back[i]; i++)
				;
			snprintf(why, sizeof(why), "CORRUPT echo at byte %zu of %zu", done + i,
				 len);
			return why;
		}
		done += n;
	}
	return "";
}

/* The port in DIR/@name.port. */
static unsigned int read_port(const char *dir, const char *name)
{
	char path[512];
	unsigned int port = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.port", dir, name);
	f = fopen(path, "re");
	if (!f || fscanf(f, "%u", &port) != 1 || !port)
		die("P", path);
	fclose(f);
	return port;
}

static int ids_client_main(int argc, char **argv)
{
	static const size_t sizes[] = { 1, 100, 4096, 65536, 262144 };
	const char *dir, *why;
	unsigned int port, i;
	int x, q;

	if (argc != 4)
		return 2;
	dir = argv[2];
	port = (unsigned int)atoi(argv[3]);
	x = connect_port(port);
	if (x < 0)
		die("P", "connect X");
	why = exchange(x, 64, 1);
	if (*why) {
		say("P: FAILED: X's first exchange: %s", why);
		return 2;
	}
	say("P: pid=%d X connected fd=%s, one exchange intact", (int)getpid(), kind(x));
	wait_go("P", dir, "go-q");
	port = read_port(dir, "server2");
	for (i = 1;; i++) {
		q = connect_port(port);
		if (q < 0)
			die("P", "connect Q");
		why = exchange(q, 64, 2);
		if (*why) {
			say("P: FAILED: Q's first exchange: %s", why);
			return 2;
		}
		if (!strcmp(kind(q), "anon_inode:[eventfd]") || i == Q_TRIES)
			break;
		say("P: Q try %u: over the kernel (fd=%s): again", i, kind(q));
		close(q);
		sleep_ms(100);
	}
	say("P: Q connected fd=%s, one exchange intact", kind(q));
	wait_go("P", dir, "go-close");
	if (close(x))
		die("P", "close X");
	say("P: X closed");
	wait_go("P", dir, "go-data");
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		why = exchange(q, sizes[i], 10 + i);
		if (*why) {
			say("P: END Q FAILED after X's close: exchange of %zu bytes: %s fd=%s",
			    sizes[i], why, kind(q));
			break;
		}
	}
	if (i == sizeof(sizes) / sizeof(sizes[0]))
		say("P: END Q intact after X's close: 5 exchanges, 1 .. 262144 bytes each way "
		    "fd=%s", kind(q));
	wait_go("P", dir, "go-end");
	close(q);
	say("P: exit");
	return 0;
}

/* ---- pipe: the writer's write after its reader died ------------------------------ */

static void report_write(int k, ssize_t n, int e)
{
	if (n < 0)
		say("writer: write %d: -1 %s", k, e == EPIPE ? "EPIPE" : strerror(e));
	else
		say("writer: write %d: returned %zd", k, n);
}

static int pipe_main(int argc, char **argv)
{
	int p[2], e;
	char buf[8];
	ssize_t n;
	pid_t rd;

	if (argc != 3)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (pipe(p))
		die("writer", "pipe");
	rd = fork();
	if (rd < 0)
		die("writer", "fork");
	if (rd == 0) {
		close(p[1]);
		if (!read_exact(p[0], buf, 5) || memcmp(buf, "hello", 5))
			die("reader", "read hello");
		say("reader: pid=%d got hello fd=%s", (int)getpid(), kind(p[0]));
		n = read(p[0], buf, 1);
		say("reader: FAILED: a read of a pipe whose writer lives returned %zd (%s)", n,
		    n < 0 ? strerror(errno) : "");
		_exit(2);
	}
	close(p[0]);
	if (!write_all(p[1], "hello", 5))
		die("writer", "write hello");
	say("writer: pid=%d reader=%d fd=%s wrote hello", (int)getpid(), (int)rd, kind(p[1]));
	wait_go("writer", argv[2], "go-write");
	/* A pause of more than 1 ms since the last write (preload/data.c PIPE_PAUSE_NS). */
	sleep_ms(5);
	errno = 0;
	n = write(p[1], "x", 1);
	e = errno;
	report_write(1, n, e);
	errno = 0;
	n = write(p[1], "y", 1);
	e = errno;
	report_write(2, n, e);
	close(p[1]);
	while (waitpid(rd, NULL, 0) < 0 && errno == EINTR)
		;
	say("writer: END");
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	if (!strcmp(mode, "kill"))
		return kill_main(argc, argv);
	if (!strcmp(mode, "dead-writers"))
		return dead_writers_main(argc, argv);
	if (!strcmp(mode, "echo-server"))
		return echo_server_main(argc, argv);
	if (!strcmp(mode, "ids-client"))
		return ids_client_main(argc, argv);
	if (!strcmp(mode, "pipe"))
		return pipe_main(argc, argv);
	fprintf(stderr, "usage: ipcd-leaks kill unix|tcp DIR N MAXDELAY_US GUARD_MS | "
		"dead-writers unix|tcp DIR N GUARD_MS | "
		"echo-server DIR NAME | ids-client DIR PORT | pipe DIR\n");
	return 2;
}
