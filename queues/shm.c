/* SPDX-License-Identifier: MIT */
/* shm.c - memfd-backed shared regions: create, publish, map, validate. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcd/atomic.h>
#include <ipcd/shm.h>

int ipcd_region_create(const char *name, uint32_t kind, const size_t *sizes,
		       uint32_t n_areas, struct ipcd_region *out)
{
	struct ipcd_shm_hdr *h;
	uint64_t off = IPCD_ALIGN_UP((uint64_t)sizeof(*h), IPCD_CACHE_GUARD);
	size_t size;
	uint32_t i;
	void *base;
	int fd, rc;

	if (!out || n_areas > IPCD_SHM_MAX_AREAS || (n_areas && !sizes))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	for (i = 0; i < n_areas; i++) {
		if (sizes[i] > (1ull << 40))
			return -EINVAL;
		off = IPCD_ALIGN_UP(off + sizes[i], IPCD_CACHE_GUARD);
	}
	size = IPCD_ALIGN_UP((size_t)off, (size_t)sysconf(_SC_PAGESIZE));

	/* Sealing keeps a client from shrinking the region under the monitor. */
	fd = memfd_create(name ? name : "ipcd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		rc = -errno;
		goto err_close;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		rc = -errno;
		goto err_close;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		goto err_close;
	}

	h = base;
	h->magic = IPCD_SHM_MAGIC;
	h->abi_major = IPCD_SHM_ABI_MAJOR;
	h->abi_minor = IPCD_SHM_ABI_MINOR;
	h->hdr_size = sizeof(*h);
	h->kind = kind;
	h->region_size = size;
	h->features = IPCD_FEAT_FUTEX_WAIT;
	h->n_areas = n_areas;
	off = IPCD_ALIGN_UP((uint64_t)sizeof(*h), IPCD_CACHE_GUARD);
	for (i = 0; i < n_areas; i++) {
		h->area[i].off = off;
		h->area[i].size = sizes[i];
		off = IPCD_ALIGN_UP(off + sizes[i], IPCD_CACHE_GUARD);
	}
	out->base = base;
	out->size = size;
	out->fd = fd;
	out->hdr = *h;
	return 0;

err_close:
	close(fd);
	return rc;
}

void ipcd_region_publish(struct ipcd_region *reg)
{
	struct ipcd_shm_hdr *h = reg->base;

	ipcd_store_release(&h->ready, 1);	/* pairs with the acquire in ipcd_region_map */
	reg->hdr.ready = 1;
}

int ipcd_region_check_hdr(const struct ipcd_shm_hdr *h, size_t map_size, uint32_t kind,
			  const char **why)
{
	uint32_t i;

	*why = NULL;
	if (h->magic != IPCD_SHM_MAGIC) {
		*why = "bad magic";
		return -EPROTO;
	}
	if (h->abi_major != IPCD_SHM_ABI_MAJOR) {
		*why = "ABI major version mismatch";
		return -EPROTONOSUPPORT;
	}
	if (!h->ready) {
		*why = "region not ready";
		return -EAGAIN;
	}
	if (h->hdr_size < sizeof(*h) || h->hdr_size > map_size) {
		*why = "bad header size";
		return -EPROTO;
	}
	if (h->kind != kind) {
		*why = "unexpected region kind";
		return -EPROTO;
	}
	if (h->region_size != map_size) {
		*why = "region size does not match the mapping";
		return -EPROTO;
	}
	if (h->n_areas > IPCD_SHM_MAX_AREAS) {
		*why = "too many areas";
		return -EPROTO;
	}
	for (i = 0; i < h->n_areas; i++) {
		const struct ipcd_shm_area *a = &h->area[i];

		if (!a->off)
			continue;
		if (a->off < h->hdr_size || a->off > map_size || a->size > map_size - a->off) {
			*why = "area outside the region";
			return -EPROTO;
		}
		/*
		 * Every shared struct is IPCD_CACHE_GUARD-aligned, and so is every
		 * area ipcd_region_create() places: an area only 8-aligned (which a
		 * process that rewrote the header of a region it hands on, a lane
		 * kit or the global region, can ask for) would put the reader's
		 * structs at misaligned addresses (undefined behaviour; found by
		 * tests/fuzz/fuzz_region).
		 */
		if (a->off & (IPCD_CACHE_GUARD - 1)) {
			*why = "misaligned area";
			return -EPROTO;
		}
	}
	return 0;
}

int ipcd_region_adopt(void *base, size_t size, uint32_t kind, struct ipcd_region *out)
{
	const char *why;
	int rc;

	/* Copy first, validate the copy: the other side may change it under us. */
	if (!ipcd_load_acquire(&((struct ipcd_shm_hdr *)base)->ready))
		return -EAGAIN;
	memcpy(&out->hdr, base, sizeof(out->hdr));
	rc = ipcd_region_check_hdr(&out->hdr, size, kind, &why);
	if (rc) {
		if (rc == -EPROTONOSUPPORT)
			fprintf(stderr, "ipcd: shared region has ABI %u.%u, this build speaks %u.%u\n",
				out->hdr.abi_major, out->hdr.abi_minor, IPCD_SHM_ABI_MAJOR,
				IPCD_SHM_ABI_MINOR);
		return rc;
	}
	out->base = base;
	out->size = size;
	return 0;
}

int ipcd_region_map(int fd, uint32_t kind, struct ipcd_region *out)
{
	struct stat st;
	void *base;
	int rc;

	if (!out || fd < 0)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < (off_t)sizeof(struct ipcd_shm_hdr))
		return -EPROTO;
	base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	rc = ipcd_region_adopt(base, (size_t)st.st_size, kind, out);
	if (rc) {
		munmap(base, (size_t)st.st_size);
		return rc;
	}
	out->fd = fd;
	return 0;
}

void *ipcd_region_area(const struct ipcd_region *reg, uint32_t i, size_t *size)
{
	const struct ipcd_shm_area *a;

	if (!reg->base || i >= reg->hdr.n_areas || i >= IPCD_SHM_MAX_AREAS)
		return NULL;
	a = &reg->hdr.area[i];
	if (!a->off)
		return NULL;
	if (size)
		*size = a->size;
	return (uint8_t *)reg->base + a->off;
}

void ipcd_region_close(struct ipcd_region *reg)
{
	if (!reg->base)
		return;		/* never mapped: fd is not ours (it may be 0) */
	munmap(reg->base, reg->size);
	if (reg->fd >= 0)
		close(reg->fd);
	memset(reg, 0, sizeof(*reg));
	reg->fd = -1;
}
