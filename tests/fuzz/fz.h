/* SPDX-License-Identifier: MIT */
/*
 * fz.h - reading a fuzz input as a little program: bytes, then numbers.
 *
 * A target takes its operations and their arguments from the input, in
 * order; once the input is used up every read returns zeros, so that any
 * prefix of an input is an input too (libFuzzer's mutations cut and splice).
 */
#ifndef IPCD_FZ_H
#define IPCD_FZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fz {
	const uint8_t *p;
	size_t n;
};

static inline bool fz_more(const struct fz *f)
{
	return f->n != 0;
}

/* Copy up to @len input bytes to @out, zero-filling what the input lacks; returns those copied. */
static inline size_t fz_bytes(struct fz *f, void *out, size_t len)
{
	size_t k = len < f->n ? len : f->n;

	memcpy(out, f->p, k);
	memset((uint8_t *)out + k, 0, len - k);
	f->p += k;
	f->n -= k;
	return k;
}

static inline uint8_t fz_u8(struct fz *f)
{
	uint8_t v;

	fz_bytes(f, &v, sizeof(v));
	return v;
}

static inline uint16_t fz_u16(struct fz *f)
{
	uint16_t v;

	fz_bytes(f, &v, sizeof(v));
	return v;
}

static inline uint32_t fz_u32(struct fz *f)
{
	uint32_t v;

	fz_bytes(f, &v, sizeof(v));
	return v;
}

static inline uint64_t fz_u64(struct fz *f)
{
	uint64_t v;

	fz_bytes(f, &v, sizeof(v));
	return v;
}

/* A target's own invariant broke: a crash libFuzzer reports and saves. */
#define FZ_CHECK(cond)							\
	do {								\
		if (!(cond))						\
			fz_fail(__FILE__, __LINE__, #cond);		\
	} while (0)

void fz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

#endif /* IPCD_FZ_H */
