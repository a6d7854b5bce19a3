/* SPDX-License-Identifier: MIT */
/*
 * shm.h - create, map and validate shared regions (struct ipcd_shm_hdr).
 *
 * Regions are memfds: they have no name in /dev/shm, cannot be guessed or
 * opened by anyone else, and reach another process only as an fd passed
 * with SCM_RIGHTS (or inherited across fork).
 */
#ifndef IPCD_SHM_H
#define IPCD_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "shm_abi.h"

/**
 * struct ipcd_region - a mapped region as seen by one process.
 * @base: mapping; @size: its length; @fd: the memfd, or -1 if closed.
 * @hdr:  a validated private copy of the region header.
 */
struct ipcd_region {
	void *base;
	size_t size;
	int fd;
	struct ipcd_shm_hdr hdr;
};

/**
 * ipcd_region_create - new memfd region with a header and @n_areas areas.
 * @sizes: byte size of each area; each is placed 128-byte aligned.
 *
 * The header is written except @ready: format the areas, then call
 * ipcd_region_publish(). Returns 0 or -errno.
 */
int ipcd_region_create(const char *name, uint32_t kind, const size_t *sizes,
		       uint32_t n_areas, struct ipcd_region *out);

/** ipcd_region_publish - store ready = 1 with release (readers may now attach). */
void ipcd_region_publish(struct ipcd_region *reg);

/**
 * ipcd_region_map - map the region in @fd and validate its header.
 * @kind: expected IPCD_REGION_*.
 *
 * Takes ownership of @fd on success. Returns 0, -EAGAIN if not ready yet,
 * -EPROTONOSUPPORT on a major version mismatch (logged with both versions),
 * -EPROTO on any other invalid header, or another -errno.
 */
int ipcd_region_map(int fd, uint32_t kind, struct ipcd_region *out);

/**
 * ipcd_region_adopt - validate the header of a region already mapped at
 * @base (@size bytes) and fill @out's base, size and header copy (not its
 * fd), as ipcd_region_map does after mapping. Same returns; the mapping
 * stays the caller's on failure.
 */
int ipcd_region_adopt(void *base, size_t size, uint32_t kind, struct ipcd_region *out);

/**
 * ipcd_region_check_hdr - validate a copied header against a mapping size.
 * @why: receives a static description of the first problem found.
 */
int ipcd_region_check_hdr(const struct ipcd_shm_hdr *h, size_t map_size, uint32_t kind,
			  const char **why);

/** ipcd_region_area - pointer to area @i, or NULL if absent. */
void *ipcd_region_area(const struct ipcd_region *reg, uint32_t i, size_t *size);

/** ipcd_region_close - unmap and close. Does nothing on a struct that was never mapped. */
void ipcd_region_close(struct ipcd_region *reg);

#endif /* IPCD_SHM_H */
