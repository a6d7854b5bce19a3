/* SPDX-License-Identifier: MIT */
/*
 * chaos.h - what the chaos driver (it_chaos.c) and its worker (ipcd-chaos.c)
 * share: the byte streams, the connection's hello, the live statistics file
 * and the names of the files in the test's directory.
 *
 * Every connection carries two independent streams, client to server (c2s)
 * and server to client (s2c). Byte k of a stream is a pure function of the
 * stream's seed and k (chaos_byte), so a receiver checks every byte it
 * accepts with no state but its offset, whatever the sizes of the writes
 * and reads were. The c2s stream starts with a struct chaos_hello that names
 * the client and the connection's seed; the pattern offsets count from the
 * first byte after it.
 */
#ifndef CHAOS_H
#define CHAOS_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CHAOS_MAX_SLOTS		4096	/* processes one run may start */
#define CHAOS_IO_MAX		(256u << 10)	/* largest single write or read */
#define CHAOS_HELLO_MAGIC	0x53414843u	/* "CHAS" */
#define CHAOS_SALT_C2S		0x6332735f63326373ull
#define CHAOS_SALT_S2C		0x7332635f73326373ull

/* What a worker's slot says about it (chaos_slot.state). */
enum {
	CHAOS_ST_FREE,
	CHAOS_ST_RUNNING,	/* moving data */
	CHAOS_ST_DRAINING,	/* told to finish: ending its connections */
	CHAOS_ST_DONE,		/* results written, exiting */
};

/**
 * struct chaos_slot - one worker's live figures, in the statistics file
 * (CHAOS_STATS_FILE) that every worker maps shared. Written only by that
 * worker (relaxed atomics), read by the driver for progress lines and to
 * know when the initial connections are up. 128 bytes.
 * @pid:         the worker's pid (0 until it started).
 * @state:       CHAOS_ST_*.
 * @rx_bytes:    pattern bytes received and verified.
 * @tx_bytes:    pattern bytes sent.
 * @conns_open:  connections open now.
 * @conns_done:  connections ended (cleanly or not).
 * @conns_accel: connections whose fd is an accelerated end.
 * @conns_kernel: connections on a kernel socket.
 * @progress_ns: CLOCK_MONOTONIC of the last byte moved.
 * @listen_gen:  servers: listener generations made (1 after start-up).
 * @errors:      failures seen (each also a FAIL line on stderr).
 * @resets:      connections that ended with ECONNRESET or EPIPE.
 */
struct chaos_slot {
	uint64_t pid;
	uint64_t state;
	uint64_t rx_bytes;
	uint64_t tx_bytes;
	uint64_t conns_open;
	uint64_t conns_done;
	uint64_t conns_accel;
	uint64_t conns_kernel;
	uint64_t progress_ns;
	uint64_t listen_gen;
	uint64_t errors;
	uint64_t resets;
	uint64_t reserved[4];
};

_Static_assert(sizeof(struct chaos_slot) == 128, "chaos_slot is two cache lines");

#define CHAOS_STATS_FILE	"stats"
#define CHAOS_STATS_SIZE	(CHAOS_MAX_SLOTS * sizeof(struct chaos_slot))

/*
 * Files in the run's directory, by slot:
 *   server-N.port   "gen=G tcp=PORT unix=PATH" of the newest listeners
 *                   (written to a temporary name and renamed: never torn)
 *   server-N.sock.G the AF_UNIX listener of generation G
 *   worker-N.res    per-connection result lines and the final "done" line
 *   worker-N.out/.err the worker's stdout and stderr
 */

/**
 * struct chaos_hello - the first 32 bytes a client sends on a connection.
 * @magic: CHAOS_HELLO_MAGIC.
 * @slot:  the client's slot.
 * @serial: the connection's number within that client (from 1).
 * @seed:  the connection's seed (chaos_conn_seed); each stream's seed is
 *         @seed ^ its salt.
 * @pid:   the client's pid.
 * @sum:   chaos_hello_sum() of the fields above.
 */
struct chaos_hello {
	uint32_t magic;
	uint32_t slot;
	uint64_t serial;
	uint64_t seed;
	uint32_t pid;
	uint32_t sum;
};

_Static_assert(sizeof(struct chaos_hello) == 32, "the hello is 32 bytes on the wire");

/* splitmix64's finaliser: a bijection with good avalanche. */
static inline uint64_t chaos_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Word @i (bytes 8i .. 8i+7, little endian) of the stream @seed. */
static inline uint64_t chaos_word(uint64_t seed, uint64_t i)
{
	return chaos_mix(seed + (i + 1) * 0x9e3779b97f4a7c15ull);
}

static inline uint8_t chaos_byte(uint64_t seed, uint64_t pos)
{
	return (uint8_t)(chaos_word(seed, pos >> 3) >> ((pos & 7) * 8));
}

/* Bytes @pos .. @pos + @len - 1 of the stream @seed into @buf. */
static inline void chaos_fill(void *buf, size_t len, uint64_t seed, uint64_t pos)
{
	uint8_t *p = buf;

	while (len && (pos & 7)) {
		*p++ = chaos_byte(seed, pos++);
		len--;
	}
	while (len >= 8) {
		uint64_t w = htole64(chaos_word(seed, pos >> 3));

		memcpy(p, &w, 8);
		p += 8;
		pos += 8;
		len -= 8;
	}
	while (len--)
		*p++ = chaos_byte(seed, pos++);
}

/*
 * The index of the first byte of @buf that differs from the stream @seed
 * at @pos, or @len if all @len bytes are right.
 */
static inline size_t chaos_check(const void *buf, size_t len, uint64_t seed, uint64_t pos)
{
	const uint8_t *p = buf;
	size_t i = 0;

	while (i < len && ((pos + i) & 7)) {
		if (p[i] != chaos_byte(seed, pos + i))
			return i;
		i++;
	}
	while (len - i >= 8) {
		uint64_t w = htole64(chaos_word(seed, (pos + i) >> 3)), g;

		memcpy(&g, p + i, 8);
		if (g != w)
			break;		/* the byte loop below finds which */
		i += 8;
	}
	for (; i < len; i++)
		if (p[i] != chaos_byte(seed, pos + i))
			return i;
	return len;
}

static inline uint32_t chaos_hello_sum(const struct chaos_hello *h)
{
	uint64_t x = chaos_mix(h->magic ^ (uint64_t)h->slot << 32);

	x = chaos_mix(x ^ h->serial);
	x = chaos_mix(x ^ h->seed);
	x = chaos_mix(x ^ h->pid);
	return (uint32_t)(x ^ x >> 32);
}

/* The seed of connection @serial of the client in @slot, in the run @run_seed. */
static inline uint64_t chaos_conn_seed(uint64_t run_seed, uint32_t slot, uint64_t serial)
{
	return chaos_mix(chaos_mix(run_seed ^ 0x636f6e6eull) ^ (uint64_t)slot << 40 ^ serial);
}

#endif /* CHAOS_H */
