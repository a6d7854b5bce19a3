/* SPDX-License-Identifier: MIT */
/*
 * wait.h - bounded spin, then sleep on a shared futex word ("doorbell").
 *
 * Protocol on a doorbell word W (0: nobody asleep, 1: someone may be):
 *
 *   sleeper                                 waker (after publishing data)
 *   S1: xchg(W, 1)       (full barrier)     W1: full barrier
 *       re-check the condition                  if load(W) && xchg(W, 0)
 *       if false: futex_wait(W, 1)                  futex_wake(W, all)
 *
 * S1 pairs with W1: either the sleeper's re-check sees the data, or the
 * waker's load sees W == 1. Only wakers clear W; a sleeper that finds its
 * condition true leaves W set, which costs at most one spurious wake later
 * but can never strand another sleeper on the same word. While nobody
 * sleeps, W is only read, so the waker's check is a cache hit and no syscall.
 */
#ifndef IPCD_WAIT_H
#define IPCD_WAIT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "atomic.h"
#include "compiler.h"

/** ipcd_now_ns - CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall). */
static inline uint64_t ipcd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/**
 * ipcd_futex_wait - sleep while *@word == @val.
 * @timeout_ns: relative timeout; negative means forever.
 *
 * Returns 0 when woken (or the word had changed), -ETIMEDOUT or -EINTR.
 * The word may live in memory shared between processes.
 */
int ipcd_futex_wait(uint32_t *word, uint32_t val, int64_t timeout_ns);

/** ipcd_futex_wake - wake every sleeper on @word. Returns the number woken. */
int ipcd_futex_wake(uint32_t *word);

/**
 * ipcd_eventfd_signal - add 1 to eventfd @fd with a raw syscall (the preload
 * interposes write()). Returns 0 or -errno; a full counter is not an error.
 */
int ipcd_eventfd_signal(int fd);

/**
 * ipcd_eventfd_signal_out - as ipcd_eventfd_signal(), and also make an
 * EPOLLOUT edge: the kernel signals EPOLLOUT on an eventfd only when its
 * counter is read, so add 1, read the counter and write it back (it ends as
 * a plain signal leaves it). Three syscalls: only for a sleeper that waits
 * for room.
 */
int ipcd_eventfd_signal_out(int fd);

/**
 * ipcd_doorbell_take - after publishing: true if the other side announced a
 * sleep and this caller must wake it (the word is cleared).
 *
 * Costs a full barrier and a (normally cached) load.
 */
static __ipcd_always_inline bool ipcd_doorbell_take(uint32_t *word)
{
	ipcd_smp_mb();	/* W1: orders the caller's publish before the load; pairs with S1 */
	return unlikely(ipcd_load_relaxed(word) != 0) && ipcd_xchg(word, 0) != 0;
}

/**
 * ipcd_doorbell_ring - wake a futex sleeper on @word if it announced itself.
 * A syscall only when someone may be asleep.
 */
static __ipcd_always_inline void ipcd_doorbell_ring(uint32_t *word)
{
	if (ipcd_doorbell_take(word))
		ipcd_futex_wake(word);
}

/**
 * ipcd_doorbell_arm_bits - announce a possible sleep of kind @bits
 * (IPCD_DB_* in shm_abi.h) on a word several kinds of sleeper may share (S1).
 * Returns the word's new value: the value to FUTEX_WAIT on.
 */
static __ipcd_always_inline uint32_t ipcd_doorbell_arm_bits(uint32_t *word, uint32_t bits)
{
	return ipcd_fetch_or(word, bits) | bits;	/* S1: full barrier; pairs with W1 */
}

/** ipcd_doorbell_arm - announce a possible sleep (S1). Re-check, then sleep. */
static __ipcd_always_inline void ipcd_doorbell_arm(uint32_t *word)
{
	ipcd_xchg(word, 1);	/* S1: full barrier before the re-check; pairs with W1 */
}

/**
 * ipcd_deadline - absolute CLOCK_MONOTONIC deadline for a relative timeout.
 * @timeout_ns: negative means none (returns UINT64_MAX).
 */
static inline uint64_t ipcd_deadline(int64_t timeout_ns)
{
	return timeout_ns < 0 ? UINT64_MAX : ipcd_now_ns() + (uint64_t)timeout_ns;
}

/** ipcd_remaining - relative time left until @deadline (-1: forever, 0: past). */
static inline int64_t ipcd_remaining(uint64_t deadline)
{
	uint64_t now;

	if (deadline == UINT64_MAX)
		return -1;
	now = ipcd_now_ns();
	return now >= deadline ? 0 : (int64_t)(deadline - now);
}

#endif /* IPCD_WAIT_H */
