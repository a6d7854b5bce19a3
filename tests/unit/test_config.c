/* SPDX-License-Identifier: MIT */
/* test_config.c - the monitor's config parser: good files, bad files, access rules. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <ipcd/shm_abi.h>

#include "monitor.h"

static int parse(const char *text, struct ipcd_config *cfg, char *err, size_t errlen)
{
	return ipcd_config_parse(text, strlen(text), "t.conf", cfg, err, errlen);
}

static void load_default(struct ipcd_config *cfg)
{
	char err[256] = "";

	assert_int_equal(ipcd_config_load(NULL, false, cfg, err, sizeof(err)), 0);
}

static void test_default(void **state)
{
	struct ipcd_config cfg;

	(void)state;
	load_default(&cfg);
	assert_int_equal(cfg.queue_mode, IPCD_QMODE_PER_PROCESS);
	assert_int_equal(cfg.core, -1);
	assert_int_equal(cfg.spin_us, 50);
	assert_string_equal(cfg.control_socket, "/run/ipcd/monitor.sock");
	assert_int_equal(cfg.max_processes, 1024);
	assert_int_equal(cfg.ring_bytes, 262144);
	assert_int_equal(cfg.ring_max_bytes, 4194304);
	assert_non_null(strstr(ipcd_default_config, "\nring_max_bytes = 4194304\n"));
	assert_int_equal(cfg.log_level, IPCD_LOG_INFO);
	assert_int_equal(cfg.n_rules, 0);
	assert_int_equal(cfg.n_peers, 0);
	assert_int_equal(cfg.max_process_connections, 16384);
	assert_int_equal(cfg.max_memory, 0);		/* auto */
	assert_int_equal(cfg.max_process_memory, 0);	/* auto */
	assert_int_equal(cfg.limit_action, IPCD_LIMIT_KERNEL);
}

/* The limits' keys: sizes with units, auto, and the action. */
static void test_limit_keys(void **state)
{
	static const struct {
		const char *text;
		uint64_t mem;		/* max_memory */
		uint64_t pmem;		/* max_process_memory */
	} good[] = {
		{ "max_memory = 1048576\nmax_process_memory = 2M\n", 1u << 20, 2u << 20 },
		{ "max_memory = 3G\nmax_process_memory = auto\n", 3ull << 30, 0 },
		{ "max_memory = 1T\nmax_process_memory = 1024K\n", 1ull << 40, 1u << 20 },
		{ "max_memory = auto\nmax_process_memory = 16777215T\n", 0, 16777215ull << 40 },
	};
	static const struct {
		const char *text;
		const char *err;
	} bad[] = {
		{ "max_memory = 1023K\n", "key 'max_memory': expected auto or a size in bytes of at least 1048576" },
		{ "max_memory = 1X\n", "got '1X'" },
		{ "max_memory = 1MB\n", "got '1MB'" },
		{ "max_memory = -1\n", "got '-1'" },
		{ "max_memory = 16777216T\n", "got '16777216T'" },	/* 2^64: too big */
		{ "max_process_memory = 99999999999999999999\n", "key 'max_process_memory'" },
		{ "max_process_memory = 17179869184T\n", "key 'max_process_memory'" },
		{ "max_process_connections = 0\n", "key 'max_process_connections': expected a number in [1, 1048576]" },
		{ "limit_action = panic\n", "key 'limit_action': expected kernel or error, got 'panic'" },
	};
	struct ipcd_config cfg;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		load_default(&cfg);
		err[0] = '\0';
		assert_int_equal(parse(good[i].text, &cfg, err, sizeof(err)), 0);
		assert_int_equal(cfg.max_memory, good[i].mem);
		assert_int_equal(cfg.max_process_memory, good[i].pmem);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		load_default(&cfg);
		assert_int_equal(parse(bad[i].text, &cfg, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].err))
			fail_msg("'%s': got '%s', want '%s'", bad[i].text, err, bad[i].err);
		assert_int_equal(cfg.max_memory, 0);	/* nothing applied */
	}
	load_default(&cfg);
	assert_int_equal(parse("limit_action = error\nmax_process_connections = 7\n", &cfg, err,
			       sizeof(err)), 0);
	assert_int_equal(cfg.limit_action, IPCD_LIMIT_ERROR);
	assert_int_equal(cfg.max_process_connections, 7);
}

static void test_good_file(void **state)
{
	static const char text[] =
		"# comment line\n"
		"\n"
		"  queue_mode =  shared   # trailing comment\n"
		"core = 1\n"
		"spin_us = 0\n"
		"skip_us = 500\n"
		"control_socket = /tmp/x.sock\n"
		"max_processes = 256\n"
		"max_connections = 1000\n"
		"ring_bytes = 1048576\n"
		"request_ring_bytes = 8192\n"
		"log_level = debug\n"
		"ring_max_bytes = 8388608\n"
		"bind_rule = deny uid=1000 ports=8000-8999\n"
		"bind_rule = allow gid=50 ports=9000\n"
		"bind_rule = deny uid=* ports=1-65535\n"
		"peer = hostb 10.0.0.2 7471\n"
		"peer = hostc fe80::1\n";
	struct ipcd_config cfg;
	char err[256] = "";

	(void)state;
	load_default(&cfg);
	assert_int_equal(parse(text, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.queue_mode, IPCD_QMODE_SHARED);
	assert_int_equal(cfg.core, 1);
	assert_int_equal(cfg.spin_us, 0);
	assert_int_equal(cfg.skip_us, 500);
	assert_string_equal(cfg.control_socket, "/tmp/x.sock");
	assert_int_equal(cfg.max_processes, 256);
	assert_int_equal(cfg.max_connections, 1000);
	assert_int_equal(cfg.ring_bytes, 1048576);
	assert_int_equal(cfg.ring_max_bytes, 8388608);
	assert_int_equal(cfg.request_ring_bytes, 8192);
	assert_int_equal(cfg.log_level, IPCD_LOG_DEBUG);
	assert_int_equal(cfg.n_rules, 3);
	assert_false(cfg.rules[0].allow);
	assert_int_equal(cfg.rules[0].id, 1000);
	assert_int_equal(cfg.rules[0].port_lo, 8000);
	assert_int_equal(cfg.rules[0].port_hi, 8999);
	assert_int_equal(cfg.rules[0].line, 14);
	assert_true(cfg.rules[1].is_gid);
	assert_int_equal(cfg.rules[1].port_lo, 9000);
	assert_int_equal(cfg.rules[1].port_hi, 9000);
	assert_true(cfg.rules[2].any_id);
	assert_int_equal(cfg.n_peers, 2);
	assert_string_equal(cfg.peers[0].name, "hostb");
	assert_string_equal(cfg.peers[0].addr, "10.0.0.2");
	assert_int_equal(cfg.peers[0].port, 7471);
	assert_string_equal(cfg.peers[1].addr, "fe80::1");
	assert_int_equal(cfg.peers[1].port, 18515);
}

/* Each bad file: the error names file, line and key, and nothing is applied. */
static void test_bad_files(void **state)
{
	static const struct {
		const char *text;
		const char *expect;	/* substring of the message */
	} cases[] = {
		{ "queue_mode = fast\n", "t.conf:1: key 'queue_mode': expected per-process or shared, got 'fast'" },
		{ "\n\ncore = -1\n", "t.conf:3: key 'core': expected none or a CPU number" },
		{ "spin_us = 12abc\n", "t.conf:1: key 'spin_us': expected a number in [0, 1000000], got '12abc'" },
		{ "spin_us = 99999999999999999999\n", "key 'spin_us': expected a number" },
		{ "skip_us = 0\n", "key 'skip_us': expected a number in [1, 10000000]" },
		{ "ring_bytes = 5000\n", "key 'ring_bytes': expected a power of two in [4096, 1073741824], got '5000'" },
		{ "ring_bytes = 2048\n", "key 'ring_bytes': expected a power of two" },
		{ "request_ring_bytes = 4194304\n", "key 'request_ring_bytes'" },
		{ "ring_max_bytes = 5000\n",
		  "t.conf:1: key 'ring_max_bytes': expected a power of two in [4096, 1073741824], "
		  "got '5000'" },
		{ "ring_max_bytes = 2147483648\n", "key 'ring_max_bytes': expected a power of two" },
		/* ring_max_bytes >= ring_bytes: the line of whichever of the two came last */
		{ "ring_bytes = 8388608\n",
		  "t.conf:1: key 'ring_bytes': must be at most ring_max_bytes (4194304), got 8388608" },
		{ "\nring_max_bytes = 65536\n",
		  "t.conf:2: key 'ring_max_bytes': must be at least ring_bytes (262144), got 65536" },
		{ "ring_bytes = 1048576\n\nring_max_bytes = 524288\n",
		  "t.conf:3: key 'ring_max_bytes': must be at least ring_bytes (1048576), "
		  "got 524288" },
		{ "ring_max_bytes = 524288\nring_bytes = 1048576\n",
		  "t.conf:2: key 'ring_bytes': must be at most ring_max_bytes (524288), got 1048576" },
		{ "max_processes = 0\n", "key 'max_processes': expected a number in [1, 65536]" },
		{ "control_socket = relative.sock\n", "key 'control_socket': expected an absolute path" },
		{ "log_level = loud\n", "key 'log_level': expected error, warn, info or debug, got 'loud'" },
		{ "colour = blue\n", "t.conf:1: unknown key 'colour'" },
		{ "queue_mode\n", "t.conf:1: expected 'key = value', got 'queue_mode'" },
		{ "queue_mode =\n", "t.conf:1: key 'queue_mode': missing value" },
		{ "spin_us = 1\nspin_us = 2\n", "t.conf:2: key 'spin_us': set twice" },
		{ "bind_rule = allow uid=1000\n", "key 'bind_rule': expected 'allow|deny" },
		{ "bind_rule = permit uid=1 ports=1\n", "expected allow or deny, got 'permit'" },
		{ "bind_rule = allow user=1 ports=1\n", "expected uid=N, gid=N or uid=*, got 'user=1'" },
		{ "bind_rule = allow uid=1 ports=9-3\n", "port range '9-3' is empty" },
		{ "bind_rule = allow uid=1 ports=70000\n", "expected a number in [1, 65535], got '70000'" },
		{ "bind_rule = allow uid=1 ports=1 extra\n", "got extra 'extra'" },
		{ "peer = b\n", "key 'peer': expected 'NAME ADDRESS [PORT]'" },
		{ "peer = b hostname.example\n", "expected a numeric IPv4 or IPv6 address, got 'hostname.example'" },
		{ "peer = b 10.0.0.2\npeer = b 10.0.0.3\n", "t.conf:2: key 'peer': peer 'b' defined twice" },
	};
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ipcd_config cfg, before;
		char err[256] = "";

		load_default(&cfg);
		before = cfg;
		assert_int_equal(parse(cases[i].text, &cfg, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].expect))
			fail_msg("case %u: message '%s' lacks '%s'", i, err, cases[i].expect);
		assert_memory_equal(&cfg, &before, sizeof(cfg));	/* all or nothing */
	}
}

/* ring_max_bytes may equal ring_bytes, and raising both at once is fine. */
static void test_ring_max(void **state)
{
	struct ipcd_config cfg;
	char err[256] = "";

	(void)state;
	load_default(&cfg);
	assert_int_equal(parse("ring_bytes = 65536\nring_max_bytes = 65536\n", &cfg, err,
			       sizeof(err)), 0);
	assert_int_equal(cfg.ring_bytes, 65536);
	assert_int_equal(cfg.ring_max_bytes, 65536);
	load_default(&cfg);
	assert_int_equal(parse("ring_bytes = 16777216\nring_max_bytes = 1073741824\n", &cfg, err,
			       sizeof(err)), 0);
	assert_int_equal(cfg.ring_bytes, 16777216);
	assert_int_equal(cfg.ring_max_bytes, 1073741824);
	load_default(&cfg);
	assert_int_equal(parse("ring_max_bytes = 4096\nring_bytes = 4096\n", &cfg, err,
			       sizeof(err)), 0);
	assert_int_equal(cfg.ring_max_bytes, 4096);
}

static void test_limits(void **state)
{
	struct ipcd_config cfg;
	char err[256] = "", *text;
	size_t n, i;

	(void)state;
	load_default(&cfg);
	/* A NUL byte and an overlong line are refused, not truncated. */
	assert_int_equal(ipcd_config_parse("spin_us = 1\0junk\n", 17, "t.conf", &cfg, err,
					   sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "t.conf:1: NUL byte"));
	text = malloc(2048);
	assert_non_null(text);
	memset(text, ' ', 2047);
	text[2047] = '\0';
	assert_int_equal(parse(text, &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line longer than"));
	free(text);

	/* Rules are bounded. */
	text = malloc(IPCD_MAX_BIND_RULES * 64 + 128);
	assert_non_null(text);
	for (i = 0, n = 0; i <= IPCD_MAX_BIND_RULES; i++)
		n += (size_t)sprintf(text + n, "bind_rule = allow uid=%zu ports=1\n", i);
	assert_int_equal(parse(text, &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than 64 rules"));
	free(text);

	/* A tiny error buffer is never overrun. */
	assert_int_equal(parse("colour = blue\n", &cfg, err, 8), -EINVAL);
	assert_int_equal(strlen(err), 7);
}

static void test_load_files(void **state)
{
	char path[] = "/tmp/ipcd-test-config-XXXXXX", err[256] = "";
	struct ipcd_config cfg;
	FILE *f;
	int fd;

	(void)state;
	/* A missing file is the embedded default only when it need not exist. */
	assert_int_equal(ipcd_config_load("/nonexistent/ipcd.conf", false, &cfg, err,
					  sizeof(err)), 0);
	assert_int_equal(cfg.queue_mode, IPCD_QMODE_PER_PROCESS);
	assert_int_equal(ipcd_config_load("/nonexistent/ipcd.conf", true, &cfg, err,
					  sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/ipcd.conf: cannot open"));

	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("queue_mode = shared\nring_bytes = 3\n", f);
	fclose(f);
	assert_int_equal(ipcd_config_load(path, true, &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":2: key 'ring_bytes'"));
	assert_non_null(strstr(err, path));
	unlink(path);
}

static void test_bind_rules(void **state)
{
	static const char text[] =
		"bind_rule = allow uid=1000 ports=8080\n"
		"bind_rule = deny uid=1000 ports=8000-8999\n"
		"bind_rule = deny gid=100 ports=5000-5999\n"
		"bind_rule = deny uid=* ports=6379\n";
	struct ipcd_config cfg;
	char err[256] = "";

	(void)state;
	load_default(&cfg);
	assert_true(ipcd_config_bind_allowed(&cfg, 1000, 1000, 8080));	/* no rules */
	assert_int_equal(parse(text, &cfg, err, sizeof(err)), 0);
	assert_true(ipcd_config_bind_allowed(&cfg, 1000, 1000, 8080));	/* first match */
	assert_false(ipcd_config_bind_allowed(&cfg, 1000, 1000, 8081));
	assert_true(ipcd_config_bind_allowed(&cfg, 1001, 1001, 8081));
	assert_false(ipcd_config_bind_allowed(&cfg, 1001, 100, 5000));
	assert_true(ipcd_config_bind_allowed(&cfg, 1001, 101, 5000));
	assert_false(ipcd_config_bind_allowed(&cfg, 0, 0, 6379));
	assert_true(ipcd_config_bind_allowed(&cfg, 0, 0, 6380));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default),
		cmocka_unit_test(test_limit_keys),
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_ring_max),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_load_files),
		cmocka_unit_test(test_bind_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
