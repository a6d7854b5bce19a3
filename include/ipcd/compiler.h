/* SPDX-License-Identifier: MIT */
/*
 * compiler.h - compiler helpers shared by every IPC-Direct component.
 */
#ifndef IPCD_COMPILER_H
#define IPCD_COMPILER_H

#define IPCD_CACHE_LINE		64
/*
 * Producer- and consumer-written fields sit this far apart: the adjacent-line
 * prefetcher pulls cache lines in pairs, so one line of separation is not
 * enough to stop false sharing (DPDK's RTE_CACHE_GUARD).
 */
#define IPCD_CACHE_GUARD	(2 * IPCD_CACHE_LINE)

#define __ipcd_cache_aligned	__attribute__((aligned(IPCD_CACHE_LINE)))
#define __ipcd_guard_aligned	__attribute__((aligned(IPCD_CACHE_GUARD)))
#define __ipcd_always_inline	inline __attribute__((always_inline))
#define __ipcd_noinline		__attribute__((noinline))
#define __ipcd_unused		__attribute__((unused))
#define __ipcd_must_check	__attribute__((warn_unused_result))

#ifndef likely
#define likely(x)		__builtin_expect(!!(x), 1)
#define unlikely(x)		__builtin_expect(!!(x), 0)
#endif

#define IPCD_BUILD_ASSERT(cond)	_Static_assert(cond, #cond)
#define IPCD_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define IPCD_ALIGN_UP(x, a)	(((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))
#define IPCD_IS_POW2(x)		((x) != 0 && ((x) & ((x) - 1)) == 0)
#define IPCD_MIN(a, b)		((a) < (b) ? (a) : (b))
#define IPCD_MAX(a, b)		((a) > (b) ? (a) : (b))

/* Exported from a -fvisibility=hidden shared object. */
#define IPCD_EXPORT		__attribute__((visibility("default")))

static __ipcd_always_inline void ipcd_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

#endif /* IPCD_COMPILER_H */
