/* SPDX-License-Identifier: MIT */
/*
 * fuzz_config.c - the monitor's config parser (monitor/config.c) on any bytes.
 *
 * The input is a config file, parsed over the embedded default as the
 * monitor does at start and at SIGHUP. Whatever the text, the parser must
 * return 0 or -EINVAL with a NUL-terminated message naming the file, and
 * leave the config untouched on error (all or nothing); a config it accepts
 * must hold what the monitor relies on (powers of two, ring_bytes <=
 * ring_max_bytes, rules and peers within their tables).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ipcd/compiler.h>

#include "fz.h"
#include "monitor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ipcd_config def, cfg;
	char err[256];
	uint32_t i;
	int rc;

	if (ipcd_config_load(NULL, false, &def, err, sizeof(err)))
		abort();
	cfg = def;
	memset(err, 0x55, sizeof(err));	/* a message must be written, terminated */
	rc = ipcd_config_parse((const char *)data, size, "fuzz.conf", &cfg, err, sizeof(err));
	if (rc) {
		FZ_CHECK(rc == -EINVAL);
		FZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		FZ_CHECK(strncmp(err, "fuzz.conf:", 10) == 0);
		FZ_CHECK(memcmp(&cfg, &def, sizeof(cfg)) == 0);
		return 0;
	}
	FZ_CHECK(cfg.queue_mode == IPCD_QMODE_PER_PROCESS || cfg.queue_mode == IPCD_QMODE_SHARED);
	FZ_CHECK(IPCD_IS_POW2(cfg.ring_bytes) && IPCD_IS_POW2(cfg.ring_max_bytes));
	FZ_CHECK(IPCD_IS_POW2(cfg.request_ring_bytes));
	FZ_CHECK(cfg.ring_bytes <= cfg.ring_max_bytes);
	FZ_CHECK(cfg.max_processes >= 1 && cfg.max_connections >= 1);
	FZ_CHECK(cfg.n_rules <= IPCD_MAX_BIND_RULES && cfg.n_peers <= IPCD_MAX_PEERS);
	FZ_CHECK(memchr(cfg.control_socket, '\0', sizeof(cfg.control_socket)) != NULL);
	for (i = 0; i < cfg.n_peers; i++) {
		FZ_CHECK(memchr(cfg.peers[i].name, '\0', sizeof(cfg.peers[i].name)) != NULL);
		FZ_CHECK(memchr(cfg.peers[i].addr, '\0', sizeof(cfg.peers[i].addr)) != NULL);
	}
	/* What the monitor asks of the rules at every BIND. */
	for (i = 0; i < 8; i++)
		(void)ipcd_config_bind_allowed(&cfg, i & 1 ? 1000 : 0, i & 2 ? 50 : 1000,
					       (uint16_t)(i * 9000 + 80));
	/* The same text over its own result (a reload of an unchanged file) is accepted too. */
	rc = ipcd_config_parse((const char *)data, size, "fuzz.conf", &cfg, err, sizeof(err));
	FZ_CHECK(rc == 0);
	return 0;
}
