/* SPDX-License-Identifier: MIT */
/*
 * siphash.h - SipHash-2-4 of one 64-bit word (Aumasson and Bernstein, "SipHash:
 * a fast short-input PRF", 2012), for tags that one party must not be able to
 * forge for another: a lane kit's tag (shm_abi.h struct ipcd_conn_ctl.kit_tag).
 */
#ifndef IPCD_SIPHASH_H
#define IPCD_SIPHASH_H

#include <stdint.h>

static inline uint64_t ipcd_rotl64(uint64_t x, unsigned int b)
{
	return (x << b) | (x >> (64 - b));
}

#define IPCD_SIPROUND(v0, v1, v2, v3)						\
	do {									\
		v0 += v1; v1 = ipcd_rotl64(v1, 13); v1 ^= v0; v0 = ipcd_rotl64(v0, 32); \
		v2 += v3; v3 = ipcd_rotl64(v3, 16); v3 ^= v2;				\
		v0 += v3; v3 = ipcd_rotl64(v3, 21); v3 ^= v0;				\
		v2 += v1; v1 = ipcd_rotl64(v1, 17); v1 ^= v2; v2 = ipcd_rotl64(v2, 32); \
	} while (0)

/* SipHash-2-4 under the key (@k0, @k1) of the 8-byte little-endian message @m. */
static inline uint64_t ipcd_siphash24_u64(uint64_t k0, uint64_t k1, uint64_t m)
{
	uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
	const uint64_t last = 8ull << 56;	/* the length byte, no tail */

	v3 ^= m;
	IPCD_SIPROUND(v0, v1, v2, v3);
	IPCD_SIPROUND(v0, v1, v2, v3);
	v0 ^= m;
	v3 ^= last;
	IPCD_SIPROUND(v0, v1, v2, v3);
	IPCD_SIPROUND(v0, v1, v2, v3);
	v0 ^= last;
	v2 ^= 0xff;
	IPCD_SIPROUND(v0, v1, v2, v3);
	IPCD_SIPROUND(v0, v1, v2, v3);
	IPCD_SIPROUND(v0, v1, v2, v3);
	IPCD_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/*
 * The tag of kit @conn_id on lane @lane_id whose secret key is (@key, @key2)
 * (96 random bits; the lane id, which the connector knows, fills the rest):
 * the monitor writes it in the kit's region, the listener checks it
 * (docs/architecture.md, "Lanes", Trust). The connector never learns the key.
 */
static inline uint64_t ipcd_kit_tag(uint64_t key, uint32_t key2, uint32_t lane_id,
				    uint64_t conn_id)
{
	return ipcd_siphash24_u64(key, (uint64_t)key2 << 32 | lane_id, conn_id);
}

#endif /* IPCD_SIPHASH_H */
