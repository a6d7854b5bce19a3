/* SPDX-License-Identifier: MIT */
/*
 * t_helpers.h - helpers shared by the IPC-Direct tests (t_ prefix).
 *
 * Includes cmocka with the headers it needs, so a test includes only this.
 * Forked children must never use cmocka's assert_*(): a failed assert in a
 * child would longjmp into the child's copy of the test runner. Children use
 * T_CHECK*() instead, which print and _exit(1).
 */
#ifndef T_HELPERS_H
#define T_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

/* Exit code of a whole test binary whose prerequisite is missing. */
#define T_EXIT_SKIP		77

/* Hang guard (seconds) armed in every forked child by default. */
#define T_CHILD_ALARM		60

/* Sanitized builds run stress loops this many times shorter. */
#ifdef IPCD_SANITIZED
#define T_SLOWDOWN		8
#else
#define T_SLOWDOWN		1
#endif

#define T_NSEC_PER_MSEC		1000000ll
#define T_NSEC_PER_SEC		1000000000ll

/**
 * T_CHECK - child-side assertion: report and _exit(1) if @cond is false.
 */
#define T_CHECK(cond)								\
	do {									\
		if (!(cond))							\
			t_child_fail(__FILE__, __LINE__, #cond, 0, 0);		\
	} while (0)

/**
 * T_CHECK_EQ - child-side equality assertion on integers, printing both.
 */
#define T_CHECK_EQ(a, b)							\
	do {									\
		long long __ta = (long long)(a), __tb = (long long)(b);	\
		if (__ta != __tb)						\
			t_child_fail(__FILE__, __LINE__, #a " == " #b, __ta, __tb); \
	} while (0)

/**
 * t_child_fail - print a failed child-side check and _exit(1).
 * @file: source file; @line: its line; @what: the failed expression;
 * @a, @b: the compared values (printed when they differ).
 */
void t_child_fail(const char *file, int line, const char *what, long long a, long long b)
	__attribute__((noreturn));

/**
 * t_shm_alloc - zeroed MAP_SHARED|MAP_ANONYMOUS memory of @size bytes.
 *
 * Shared with every child forked afterwards. Page aligned. Never returns NULL
 * (fails the test instead).
 */
void *t_shm_alloc(size_t size);

/** t_shm_free - unmap memory from t_shm_alloc(). NULL is ignored. */
void t_shm_free(void *p, size_t size);

/**
 * struct t_guarded - shared memory with an inaccessible page on each side.
 * @map:     the whole mapping, guards included.
 * @map_len: its length.
 * @ptr:     the usable area of @size bytes.
 * @size:    requested size.
 */
struct t_guarded {
	void *map;
	size_t map_len;
	void *ptr;
	size_t size;
};

/**
 * t_guarded_alloc - zeroed shared memory flanked by PROT_NONE pages.
 * @g:      receives the mapping.
 * @size:   usable bytes.
 * @align:  alignment of the usable area (power of two, at most a page).
 * @at_end: true places the area as close to the trailing guard page as
 *          @align allows (catches overruns), false starts it on the first
 *          byte after the leading guard page (catches underruns).
 *
 * Any access outside [@ptr, @ptr + @size) that reaches a guard page faults,
 * in every build, sanitized or not. Returns @g->ptr.
 */
void *t_guarded_alloc(struct t_guarded *g, size_t size, size_t align, bool at_end);

/** t_guarded_free - unmap a t_guarded_alloc() mapping. Safe on a zeroed struct. */
void t_guarded_free(struct t_guarded *g);

/**
 * t_fork - fork a child that cannot outlive the test.
 * @alarm_s: the child is killed by SIGALRM after this many seconds (0: none).
 *
 * The child gets PR_SET_PDEATHSIG(SIGKILL), default handlers for crash
 * signals (cmocka's would longjmp into the child's copy of the runner) and
 * an alarm. The parent records the pid until t_wait() reaps it, so
 * t_reap_all() can clean up after a failed assertion. Returns 0 in the
 * child, the pid in the parent. Fails the test if fork() fails.
 */
pid_t t_fork(unsigned int alarm_s);

/**
 * t_wait - reap @pid, waiting at most @timeout_ms (negative: forever).
 *
 * A child still running at the deadline is SIGKILLed and reaped. Returns
 * its exit code, 128 + signal number if it was killed by a signal, or -1 if
 * the deadline passed.
 */
int t_wait(pid_t pid, int timeout_ms);

/* t_try_wait() result for a child that has not exited yet. */
#define T_STILL_RUNNING		(-2)

/**
 * t_try_wait - reap @pid if it has exited, without waiting.
 * Returns what t_wait() would, or T_STILL_RUNNING.
 */
int t_try_wait(pid_t pid);

/** t_kill_wait - SIGKILL and reap @pid. Returns what t_wait() would. */
int t_kill_wait(pid_t pid);
/*
 * t_kill_group_wait - as t_kill_wait(), and SIGKILL the process group @pid
 * leads (programs started in their own group: what they spawned goes too).
 */
int t_kill_group_wait(pid_t pid);

/**
 * t_reap_all - SIGKILL and reap every child t_fork() made that was not
 * reaped yet. Call from fixture teardowns. Returns how many were left.
 */
int t_reap_all(void);

/**
 * t_fnv1a - 32-bit FNV-1a hash of @len bytes at @p, continuing from @h
 * (start with T_FNV_INIT).
 */
#define T_FNV_INIT		2166136261u
uint32_t t_fnv1a(uint32_t h, const void *p, size_t len);

/**
 * struct t_rng - xorshift64* generator; deterministic from its seed.
 */
struct t_rng {
	uint64_t s;
};

/**
 * t_seed - the run's base seed: $T_SEED if set, else time and pid.
 * Printed once, so a failing run can be replayed.
 */
uint64_t t_seed(void);

/** t_rng_init - seed @r from @seed (any value, 0 included). */
void t_rng_init(struct t_rng *r, uint64_t seed);

/** t_rng_next - next 64 random bits. */
uint64_t t_rng_next(struct t_rng *r);

/** t_rng_below - uniform-enough value in [0, @n), @n > 0. */
uint32_t t_rng_below(struct t_rng *r, uint32_t n);

/** t_rng_fill - fill @len bytes at @p with random bytes. */
void t_rng_fill(struct t_rng *r, void *p, size_t len);

/**
 * t_pattern_byte - the byte at absolute position @pos of stream @stream.
 * Used to check stream contents across wrap-around without keeping copies.
 */
static inline uint8_t t_pattern_byte(uint32_t stream, uint64_t pos)
{
	uint64_t x = (pos + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)stream << 17;

	return (uint8_t)(x >> 56 ^ x >> 13);
}

/** t_pattern_fill - write @len pattern bytes of @stream from @pos into @p. */
void t_pattern_fill(void *p, size_t len, uint32_t stream, uint64_t pos);

/**
 * t_pattern_check - true if @len bytes at @p are the pattern of @stream
 * starting at @pos.
 */
bool t_pattern_check(const void *p, size_t len, uint32_t stream, uint64_t pos);

/** t_sleep_ms - sleep @ms milliseconds (restarts after signals). */
void t_sleep_ms(unsigned int ms);

/**
 * t_wait_word - poll until *@word == @val or @timeout_ms passes.
 *
 * Used to wait until a child announced it is about to sleep on a doorbell.
 * Not a timing assertion: callers proceed either way. Returns true if seen.
 */
bool t_wait_word(const uint32_t *word, uint32_t val, int timeout_ms);

/**
 * t_wait_at_least - poll (every ms) until *@word >= @at_least or @timeout_ms
 * of wall-clock time passes. A hang guard, not a timing assertion.
 * Returns true if reached.
 */
bool t_wait_at_least(const uint32_t *word, uint32_t at_least, int timeout_ms);

#endif /* T_HELPERS_H */
