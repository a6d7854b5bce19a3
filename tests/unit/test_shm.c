/* SPDX-License-Identifier: MIT */
/* test_shm.c - memfd regions: create, publish, map, header validation. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ipcd/shm.h>

#include "t_helpers.h"

static const size_t sizes[3] = { 256, 4096 + 512, 100 };

static void test_create_layout(void **state)
{
	struct ipcd_region reg;
	const struct ipcd_shm_hdr *h;
	uint64_t prev_end;
	size_t sz;
	uint32_t i;

	(void)state;
	assert_int_equal(ipcd_region_create("t", IPCD_REGION_CLIENT, sizes, 3, &reg), 0);
	h = reg.base;
	assert_int_equal(h->magic, IPCD_SHM_MAGIC);
	assert_int_equal(h->abi_major, IPCD_SHM_ABI_MAJOR);
	assert_int_equal(h->abi_minor, IPCD_SHM_ABI_MINOR);
	assert_int_equal(h->hdr_size, sizeof(struct ipcd_shm_hdr));
	assert_int_equal(h->kind, IPCD_REGION_CLIENT);
	assert_int_equal(h->region_size, reg.size);
	assert_int_equal(h->n_areas, 3);
	assert_int_equal(h->ready, 0);		/* not before publish */
	assert_true(reg.fd >= 0);
	prev_end = sizeof(struct ipcd_shm_hdr);
	for (i = 0; i < 3; i++) {
		uint8_t *a = ipcd_region_area(&reg, i, &sz);

		assert_non_null(a);
		assert_int_equal(sz, sizes[i]);
		assert_int_equal(h->area[i].off % 128, 0);
		assert_true(h->area[i].off >= prev_end);	/* no overlap, after the header */
		assert_true(h->area[i].off + h->area[i].size <= reg.size);
		assert_ptr_equal(a, (uint8_t *)reg.base + h->area[i].off);
		memset(a, 0x5a, sz);				/* writable, all of it */
		prev_end = h->area[i].off + h->area[i].size;
	}
	assert_null(ipcd_region_area(&reg, 3, NULL));
	assert_null(ipcd_region_area(&reg, IPCD_SHM_MAX_AREAS, NULL));
	assert_null(ipcd_region_area(&reg, UINT32_MAX, NULL));
	ipcd_region_close(&reg);

	assert_int_equal(ipcd_region_create("t", IPCD_REGION_CLIENT, sizes,
					    IPCD_SHM_MAX_AREAS + 1, &reg), -EINVAL);
}

/* Map a second view through a dup of the fd, as a client would. */
static int map_dup(const struct ipcd_region *reg, uint32_t kind, struct ipcd_region *out)
{
	int fd = dup(reg->fd);
	int rc;

	assert_true(fd >= 0);
	rc = ipcd_region_map(fd, kind, out);
	if (rc)
		close(fd);	/* ownership passes only on success */
	return rc;
}

static void test_publish_and_map(void **state)
{
	struct ipcd_region reg, view;
	uint8_t *a, *b;

	(void)state;
	assert_int_equal(ipcd_region_create("t", IPCD_REGION_CONN, sizes, 2, &reg), 0);
	assert_int_equal(map_dup(&reg, IPCD_REGION_CONN, &view), -EAGAIN);	/* not ready */
	ipcd_region_publish(&reg);
	assert_int_equal(map_dup(&reg, IPCD_REGION_CLIENT, &view), -EPROTO);	/* wrong kind */
	assert_int_equal(map_dup(&reg, IPCD_REGION_CONN, &view), 0);
	assert_int_equal(view.size, reg.size);
	assert_int_equal(view.hdr.n_areas, 2);
	assert_int_equal(view.hdr.ready, 1);
	a = ipcd_region_area(&reg, 1, NULL);
	b = ipcd_region_area(&view, 1, NULL);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	a[100] = 0x77;
	assert_int_equal(b[100], 0x77);				/* the same memory */
	/* The view's header is a private copy: later writes do not change it. */
	((struct ipcd_shm_hdr *)reg.base)->area[1].off = 1u << 30;
	assert_ptr_equal(ipcd_region_area(&view, 1, NULL), b);
	ipcd_region_close(&view);
	ipcd_region_close(&view);	/* idempotent on a closed region */
	ipcd_region_close(&reg);
}

static void test_map_rejects_bad_regions(void **state)
{
	struct ipcd_region reg, view;
	struct ipcd_shm_hdr *h;
	int fd;

	(void)state;
	/* Major mismatch: refused with its own code. */
	assert_int_equal(ipcd_region_create("t", IPCD_REGION_CONN, sizes, 2, &reg), 0);
	h = reg.base;
	h->abi_major = IPCD_SHM_ABI_MAJOR + 1;
	ipcd_region_publish(&reg);
	assert_int_equal(map_dup(&reg, IPCD_REGION_CONN, &view), -EPROTONOSUPPORT);
	/* Newer minor: accepted. */
	h->abi_major = IPCD_SHM_ABI_MAJOR;
	h->abi_minor = IPCD_SHM_ABI_MINOR + 1;
	assert_int_equal(map_dup(&reg, IPCD_REGION_CONN, &view), 0);
	ipcd_region_close(&view);
	/* Bad magic, area past the end. */
	h->magic ^= 1;
	assert_int_equal(map_dup(&reg, IPCD_REGION_CONN, &view), -EPROTO);
	h->magic ^= 1;
	h->area[1].size = reg.size;
	assert_int_equal(map_dup(&reg, IPCD_REGION_CONN, &view), -EPROTO);
	ipcd_region_close(&reg);

	/* A file too small to hold a header, and an empty one. */
	fd = memfd_create("t-small", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(ipcd_region_map(fd, IPCD_REGION_CONN, &view) < 0);
	assert_int_equal(ftruncate(fd, 10), 0);
	assert_true(ipcd_region_map(fd, IPCD_REGION_CONN, &view) < 0);
	close(fd);
	assert_true(ipcd_region_map(-1, IPCD_REGION_CONN, &view) < 0);
}

/* A valid header for a mapping of @size bytes, as a test oracle. */
static void good_hdr(struct ipcd_shm_hdr *h, size_t size)
{
	memset(h, 0, sizeof(*h));
	h->magic = IPCD_SHM_MAGIC;
	h->abi_major = IPCD_SHM_ABI_MAJOR;
	h->abi_minor = IPCD_SHM_ABI_MINOR;
	h->hdr_size = sizeof(*h);
	h->kind = IPCD_REGION_GLOBAL;
	h->region_size = size;
	h->n_areas = 2;
	h->ready = 1;
	h->area[0].off = 256;
	h->area[0].size = 384;
	h->area[1].off = 1024;
	h->area[1].size = size - 1024;
}

static void test_check_hdr(void **state)
{
	const size_t size = 8192;
	struct ipcd_shm_hdr h;
	const char *why;

	(void)state;
	good_hdr(&h, size);
	assert_int_equal(ipcd_region_check_hdr(&h, size, IPCD_REGION_GLOBAL, &why), 0);

	h.abi_minor = 0xffff;				/* newer minor: fine */
	assert_int_equal(ipcd_region_check_hdr(&h, size, IPCD_REGION_GLOBAL, &why), 0);

#define EXPECT(field_stmt, rc)								\
	do {										\
		good_hdr(&h, size);							\
		field_stmt;								\
		why = NULL;								\
		assert_int_equal(ipcd_region_check_hdr(&h, size, IPCD_REGION_GLOBAL,	\
						       &why), rc);			\
		assert_non_null(why);							\
	} while (0)

	EXPECT(h.magic = 0x12345678, -EPROTO);
	EXPECT(h.magic = 0, -EPROTO);
	EXPECT(h.abi_major = IPCD_SHM_ABI_MAJOR + 1, -EPROTONOSUPPORT);
	EXPECT(h.abi_major = 0, -EPROTONOSUPPORT);
	EXPECT(h.ready = 0, -EAGAIN);
	EXPECT(h.kind = IPCD_REGION_CONN, -EPROTO);
	EXPECT(h.hdr_size = 8, -EPROTO);
	EXPECT(h.hdr_size = UINT32_MAX, -EPROTO);
	EXPECT(h.region_size = size * 2, -EPROTO);
	EXPECT(h.n_areas = IPCD_SHM_MAX_AREAS + 1, -EPROTO);
	EXPECT(h.n_areas = UINT32_MAX, -EPROTO);
	EXPECT(h.area[1].size = size - 1024 + 1, -EPROTO);		/* one byte past */
	EXPECT((h.area[1].off = size, h.area[1].size = 1), -EPROTO);
	EXPECT((h.area[1].off = UINT64_MAX - 8, h.area[1].size = 64), -EPROTO);
	EXPECT((h.area[1].off = 1024, h.area[1].size = UINT64_MAX), -EPROTO);
	EXPECT(h.area[0].off = 8, -EPROTO);				/* inside the header */
#undef EXPECT
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_layout),
		cmocka_unit_test(test_publish_and_map),
		cmocka_unit_test(test_map_rejects_bad_regions),
		cmocka_unit_test(test_check_hdr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
