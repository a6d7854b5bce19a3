/* SPDX-License-Identifier: MIT */
/*
 * atomic.h - the only way IPC-Direct code touches memory that another thread
 * or process writes concurrently.
 *
 * Built on the __atomic builtins (as liburing's barrier.h is on C11 atomics)
 * so that the ordering is portable and visible to ThreadSanitizer. Plain
 * `volatile` is never used for synchronisation.
 */
#ifndef IPCD_ATOMIC_H
#define IPCD_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

#define ipcd_load_relaxed(p)		__atomic_load_n((p), __ATOMIC_RELAXED)
#define ipcd_load_acquire(p)		__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ipcd_store_relaxed(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ipcd_store_release(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ipcd_xchg(p, v)			__atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define ipcd_fetch_add(p, v)		__atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define ipcd_fetch_or(p, v)		__atomic_fetch_or((p), (v), __ATOMIC_SEQ_CST)
#define ipcd_fetch_and(p, v)		__atomic_fetch_and((p), (v), __ATOMIC_SEQ_CST)

/*
 * Full barrier: orders a prior store before a later load (Dekker / eventcount).
 * ThreadSanitizer does not model fences (GCC refuses them under -Werror=tsan);
 * there, a locked read-modify-write is the same full barrier on x86 and an
 * atomic access TSan understands.
 */
#if defined(__SANITIZE_THREAD__)
#define ipcd_smp_mb()								\
	do {									\
		uint32_t __ipcd_mb = 0;						\
		__atomic_fetch_add(&__ipcd_mb, 0, __ATOMIC_SEQ_CST);		\
	} while (0)
#elif defined(__x86_64__)
/*
 * On x86 a locked read-modify-write is a full barrier and costs less than
 * MFENCE (Linux's smp_mb() makes the same choice). The red zone below the
 * stack pointer is ours to touch; "memory" keeps the compiler's order.
 */
#define ipcd_smp_mb()	__asm__ __volatile__("lock; addl $0,-4(%%rsp)" ::: "memory", "cc")
#else
#define ipcd_smp_mb()			__atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif

/*
 * ipcd_cas - strong compare-and-swap, sequentially consistent on success,
 * acquire on failure. On failure *expected is updated with the current value.
 */
#define ipcd_cas(p, expected, desired)						\
	__atomic_compare_exchange_n((p), (expected), (desired), false,		\
				    __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE)

#endif /* IPCD_ATOMIC_H */
