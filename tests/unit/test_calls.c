/* SPDX-License-Identifier: MIT */
/*
 * test_calls.c - the calls.def table of libipcd.so.
 *
 * The preload objects (ipcd_preload_objs: interpose.c, sock.c, wait.c,
 * fork.c, state.c) are linked into this test, so the wrappers interpose
 * libc for the test's own calls and ipcd_real is directly reachable. That
 * is simpler than dlopen()ing the module (whose initial-exec TLS and
 * hidden table are meant for LD_PRELOAD) and tests the same code.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "interpose.h"

#ifdef IPCD_SANITIZED
#define IPCD_IS_SANITIZED	1
#else
#define IPCD_IS_SANITIZED	0
#endif

#ifndef IPCD_MAP_FILE
#error "IPCD_MAP_FILE must name preload/libipcd.map"
#endif

/* 1. Every slot resolved, into libc (not into our own wrappers). */
static void test_all_resolved(void **state)
{
	unsigned int i, n = ipcd_real_count();
	Dl_info info;

	(void)state;
	ipcd_init();
	assert_int_equal(n * sizeof(void *), sizeof(struct ipcd_libc));
	for (i = 0; i < n; i++) {
		void *p = ipcd_real_slot(i);

		if (!p)
			fail_msg("slot %s did not resolve", ipcd_real_name(i));
		assert_true(dladdr(p, &info) != 0);
		/* Sanitizer runtimes come before libc and intercept many calls. */
		if (!info.dli_fname || (!strstr(info.dli_fname, "libc.so") &&
					!(IPCD_IS_SANITIZED && strstr(info.dli_fname, "san.so"))))
			fail_msg("slot %s resolved into %s, not libc", ipcd_real_name(i),
				 info.dli_fname ? info.dli_fname : "?");
	}
}

/* 2. libipcd.map exports exactly the calls.def names. */
static void test_map_in_sync(void **state)
{
	char buf[8192], needle[64];
	unsigned int i, n = ipcd_real_count(), entries = 0;
	FILE *f = fopen(IPCD_MAP_FILE, "r");
	size_t len;
	char *p;

	(void)state;
	assert_non_null(f);
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	for (i = 0; i < n; i++) {
		snprintf(needle, sizeof(needle), " %s;", ipcd_real_name(i));
		if (!strstr(buf, needle))
			fail_msg("%s missing from libipcd.map", ipcd_real_name(i));
	}
	for (p = buf; (p = strchr(p, ';')); p++)
		entries++;
	/* n names + "local: *;" + "};" */
	assert_int_equal(entries, n + 2);
}

/* 3. The mock seam: a fake in ipcd_real.close is what close() calls. */
static int fake_close_fd = -1;
static int fake_close_calls;

static int fake_close(int fd)
{
	fake_close_fd = fd;
	fake_close_calls++;
	errno = EIO;
	return -1;
}

static void test_fake_swap(void **state)
{
	int (*real)(int) = ipcd_real.close;
	int rc, e;

	(void)state;
	ipcd_init();
	ipcd_real.close = fake_close;
	rc = close(4242);
	e = errno;
	ipcd_real.close = real;
	assert_int_equal(rc, -1);
	assert_int_equal(e, EIO);
	assert_int_equal(fake_close_calls, 1);
	assert_int_equal(fake_close_fd, 4242);
	/* Restored: the real close again. */
	errno = 0;
	assert_int_equal(close(-1), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(fake_close_calls, 1);
}

/* 4. An unresolved slot fails with ENOSYS, never crashes. */
static void test_unresolved_enosys(void **state)
{
	ssize_t (*real)(int, const void *, size_t, int) = ipcd_real.send;
	ssize_t rc;
	int e;

	(void)state;
	ipcd_real.send = NULL;
	errno = 0;
	rc = send(0, "x", 1, 0);
	e = errno;
	ipcd_real.send = real;
	assert_int_equal(rc, -1);
	assert_int_equal(e, ENOSYS);
}

/* 5. Pass-through keeps return values and errno, variadic args included. */
static void test_passthrough(void **state)
{
	int p[2], flags, nread = -1;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char buf[8];
	int sv[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "hello", 5), 5);
	assert_int_equal(ioctl(p[0], FIONREAD, &nread), 0);	/* pointer arg */
	assert_int_equal(nread, 5);
	flags = fcntl(p[0], F_GETFL);
	assert_true(flags >= 0);
	assert_int_equal(fcntl(p[0], F_SETFL, flags | O_NONBLOCK), 0);	/* int arg */
	assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 5);
	errno = 0;
	assert_int_equal(read(p[0], buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);
	/* F_GETLK takes a struct flock *: on a pipe the kernel says EINVAL or fills it. */
	errno = 0;
	if (fcntl(p[0], F_GETLK, &fl) < 0)
		assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(fcntl(-1, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(dup2(p[0], p[0]), p[0]);
	assert_int_equal(dup3(p[0], p[0], 0), -1);
	assert_int_equal(errno, EINVAL);
	close(p[0]);
	close(p[1]);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(send(sv[0], "abc", 3, 0), 3);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), 0), 3);
	errno = 0;
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	close(sv[0]);
	close(sv[1]);
}

/* 6. A TCP socket with no monitor: works, errno untouched on success. */
static void test_socket_no_monitor(void **state)
{
	int fd;

	(void)state;
	setenv("IPCD_SOCKET", "/nonexistent/ipcd-test.sock", 1);
	setenv("IPCD_QUIET", "1", 1);
	errno = 12345;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(errno, 12345);
	assert_int_equal(close(fd), 0);
	errno = 0;
	assert_int_equal(socket(12345, SOCK_STREAM, 0), -1);
	assert_int_equal(errno, EAFNOSUPPORT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_resolved),
		cmocka_unit_test(test_map_in_sync),
		cmocka_unit_test(test_fake_swap),
		cmocka_unit_test(test_unresolved_enosys),
		cmocka_unit_test(test_passthrough),
		cmocka_unit_test(test_socket_no_monitor),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
