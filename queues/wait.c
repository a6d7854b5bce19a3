/* SPDX-License-Identifier: MIT */
/* wait.c - sleep and wake: futexes on shared words, eventfd signals. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ipcd/wait.h>

/*
 * No FUTEX_PRIVATE_FLAG: the words live in MAP_SHARED memory and the sleeper
 * and the waker are usually different processes.
 */
int ipcd_futex_wait(uint32_t *word, uint32_t val, int64_t timeout_ns)
{
	struct timespec ts, *tsp = NULL;
	long rc;

	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	rc = syscall(SYS_futex, word, FUTEX_WAIT, val, tsp, NULL, 0);
	if (rc == 0 || errno == EAGAIN)
		return 0;
	return -errno;
}

int ipcd_futex_wake(uint32_t *word)
{
	long rc = syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);

	return rc < 0 ? -errno : (int)rc;
}

int ipcd_eventfd_signal(int fd)
{
	uint64_t one = 1;

	if (syscall(SYS_write, fd, &one, sizeof(one)) == (long)sizeof(one) || errno == EAGAIN)
		return 0;
	return -errno;
}

int ipcd_eventfd_signal_out(int fd)
{
	uint64_t v = 0;
	int rc = ipcd_eventfd_signal(fd);

	if (rc)
		return rc;
	/*
	 * The read makes the EPOLLOUT edge; writing back what it took leaves
	 * the counter as a plain signal would (>= 1: pollers waiting for
	 * POLLIN see it). If the owner read it first, its read made the edge.
	 */
	if (syscall(SYS_read, fd, &v, sizeof(v)) == (long)sizeof(v) && v)
		syscall(SYS_write, fd, &v, sizeof(v));
	return 0;
}
