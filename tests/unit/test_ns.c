/* SPDX-License-Identifier: MIT */
/* test_ns.c - the port namespace: conflict rules, ephemeral ports, lookup, a model test. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t_helpers.h"

#include "monitor.h"

#define RA	IPCD_NS_REUSEADDR
#define RP	IPCD_NS_REUSEPORT
#define V6O	IPCD_NS_V6ONLY
#define PRIV	IPCD_NS_PRIV

#define EPH_LO	40000
#define EPH_HI	40999

/* "127.0.0.1" -> ::ffff:127.0.0.1, "::1" -> ::1 */
static void addr_of(const char *s, uint8_t out[16])
{
	memset(out, 0, 16);
	if (strchr(s, ':')) {
		assert_int_equal(inet_pton(AF_INET6, s, out), 1);
	} else {
		out[10] = 0xff;
		out[11] = 0xff;
		assert_int_equal(inet_pton(AF_INET, s, out + 12), 1);
	}
}

static int bind_full(struct ipcd_ns *ns, uint64_t owner, uint32_t uid, uint32_t gid, const char *a,
		     uint16_t port, uint32_t flags, const struct ipcd_config *cfg, uint32_t *id,
		     uint16_t *port_out)
{
	struct ipcd_ns_who w = { .owner = owner, .uid = uid, .gid = gid };
	uint8_t addr[16];
	uint32_t tmp_id;
	uint16_t tmp_port;

	addr_of(a, addr);
	return ipcd_ns_bind(ns, &w, addr, port, flags, cfg, id ? id : &tmp_id,
			    port_out ? port_out : &tmp_port);
}

/* Bind as owner @owner with uid = gid = @uid, no config. */
static int nbind(struct ipcd_ns *ns, uint64_t owner, uint32_t uid, const char *a, uint16_t port,
		 uint32_t flags, uint32_t *id)
{
	return bind_full(ns, owner, uid, uid, a, port, flags, NULL, id, NULL);
}

static int64_t look(struct ipcd_ns *ns, const char *a, uint16_t port)
{
	uint8_t addr[16];

	addr_of(a, addr);
	return ipcd_ns_lookup_listener(ns, addr, port);
}

static int setup(void **state)
{
	struct ipcd_ns *ns;

	assert_int_equal(ipcd_ns_create(64, EPH_LO, EPH_HI, &ns), 0);
	*state = ns;
	return 0;
}

static int teardown(void **state)
{
	ipcd_ns_destroy(*state);
	return 0;
}

static void test_create_invalid(void **state)
{
	struct ipcd_ns *ns;

	(void)state;
	assert_int_equal(ipcd_ns_create(0, EPH_LO, EPH_HI, &ns), -EINVAL);
	assert_int_equal(ipcd_ns_create(16, 0, EPH_HI, &ns), -EINVAL);
	assert_int_equal(ipcd_ns_create(16, 5000, 4999, &ns), -EINVAL);
	assert_int_equal(ipcd_ns_create(UINT32_MAX, EPH_LO, EPH_HI, &ns), -EINVAL);
	assert_int_equal(ipcd_ns_create(16, EPH_LO, EPH_HI, NULL), -EINVAL);
	assert_int_equal(ipcd_ns_create(1, 1, 65535, &ns), 0);
	assert_int_equal(ipcd_ns_count(ns), 0);
	ipcd_ns_destroy(ns);
}

static void test_bind_invalid(void **state)
{
	struct ipcd_ns *ns = *state;
	struct ipcd_ns_who w = { .owner = 1, .uid = 1000, .gid = 1000 };
	uint8_t addr[16];
	uint32_t id;

	addr_of("127.0.0.1", addr);
	assert_int_equal(ipcd_ns_bind(ns, &w, addr, 5000, 1u << 20, NULL, &id, NULL), -EINVAL);
	assert_int_equal(ipcd_ns_bind(ns, NULL, addr, 5000, 0, NULL, &id, NULL), -EINVAL);
	assert_int_equal(ipcd_ns_bind(ns, &w, NULL, 5000, 0, NULL, &id, NULL), -EINVAL);
	assert_int_equal(ipcd_ns_bind(ns, &w, addr, 5000, 0, NULL, NULL, NULL), -EINVAL);
	/* Linux: an IPv4-mapped address on a V6ONLY socket is EINVAL. */
	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 5000, V6O, NULL), -EINVAL);
	assert_int_equal(nbind(ns, 1, 1000, "0.0.0.0", 5000, V6O, NULL), -EINVAL);
	assert_int_equal(ipcd_ns_count(ns), 0);
	/* port_out is optional */
	assert_int_equal(ipcd_ns_bind(ns, &w, addr, 5000, 0, NULL, &id, NULL), 0);
	assert_int_equal(ipcd_ns_count(ns), 1);
}

static void test_exact_v4(void **state)
{
	struct ipcd_ns *ns = *state;
	uint32_t id;
	uint16_t port;

	assert_int_equal(bind_full(ns, 1, 1000, 1000, "127.0.0.1", 5000, 0, NULL, &id, &port), 0);
	assert_int_equal(port, 5000);
	assert_int_not_equal(id, 0);
	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 2, 1001, "127.0.0.1", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 2, 1001, "127.0.0.2", 5000, 0, NULL), 0);
	assert_int_equal(nbind(ns, 2, 1001, "127.0.0.1", 5001, 0, NULL), 0);
	/* IPv6 addresses never overlap an IPv4 one */
	assert_int_equal(nbind(ns, 2, 1001, "::1", 5000, 0, NULL), 0);
	assert_int_equal(nbind(ns, 2, 1001, "::ffff:7f00:3", 5000, 0, NULL), 0);
	assert_int_equal(nbind(ns, 2, 1001, "::ffff:127.0.0.2", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(ipcd_ns_count(ns), 5);
}

static void test_wildcard_v4(void **state)
{
	struct ipcd_ns *ns = *state;
	uint32_t any, ex;

	/* wildcard first, then exact */
	assert_int_equal(nbind(ns, 1, 1000, "0.0.0.0", 5000, 0, &any), 0);
	assert_int_equal(nbind(ns, 2, 1000, "127.0.0.1", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 2, 1000, "0.0.0.0", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 2, 1000, "::", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 2, 1000, "::", 5000, V6O, NULL), 0);
	assert_int_equal(nbind(ns, 2, 1000, "::1", 5000, 0, NULL), -EADDRINUSE);	/* the :: */
	assert_int_equal(ipcd_ns_unbind(ns, 1, any), 0);

	/* exact first, then wildcard */
	assert_int_equal(nbind(ns, 1, 1000, "10.1.2.3", 6000, 0, &ex), 0);
	assert_int_equal(nbind(ns, 2, 1000, "0.0.0.0", 6000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 2, 1000, "::", 6000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 2, 1000, "::", 6000, V6O, NULL), 0);
	assert_int_equal(ipcd_ns_unbind(ns, 1, ex), 0);
	assert_int_equal(nbind(ns, 2, 1000, "0.0.0.0", 6000, 0, NULL), 0);
}

static void test_v6(void **state)
{
	struct ipcd_ns *ns = *state;

	assert_int_equal(nbind(ns, 1, 1000, "::1", 5000, 0, NULL), 0);
	assert_int_equal(nbind(ns, 1, 1000, "::1", 5000, V6O, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 1, 1000, "::2", 5000, 0, NULL), 0);
	assert_int_equal(nbind(ns, 1, 1000, "::", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 1, 1000, "::", 5000, V6O, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 1, 1000, "0.0.0.0", 5000, 0, NULL), 0);

	/* :: first, then exact IPv6 */
	assert_int_equal(nbind(ns, 1, 1000, "::", 6000, V6O, NULL), 0);
	assert_int_equal(nbind(ns, 1, 1000, "fe80::1", 6000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 1, 1000, "::", 6000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 1, 1000, "::", 6000, V6O, NULL), -EADDRINUSE);
}

static void test_dual_stack(void **state)
{
	struct ipcd_ns *ns = *state;
	uint32_t dual, v6o;

	assert_int_equal(nbind(ns, 1, 1000, "::", 5000, 0, &dual), 0);
	assert_int_equal(nbind(ns, 2, 1000, "127.0.0.1", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 2, 1000, "0.0.0.0", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 2, 1000, "::1", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 2, 1000, "::", 5000, V6O, NULL), -EADDRINUSE);
	assert_int_equal(ipcd_ns_unbind(ns, 1, dual), 0);

	assert_int_equal(nbind(ns, 1, 1000, "::", 5000, V6O, &v6o), 0);
	assert_int_equal(nbind(ns, 2, 1000, "127.0.0.1", 5000, 0, NULL), 0);
	/* blocked by 127.0.0.1, not by the V6ONLY :: */
	assert_int_equal(nbind(ns, 2, 1000, "0.0.0.0", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 2, 1000, "::1", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 1, 1000, "::", 5001, V6O, NULL), 0);
	assert_int_equal(nbind(ns, 2, 1000, "0.0.0.0", 5001, 0, NULL), 0);
	assert_int_equal(nbind(ns, 2, 1000, "::", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(ipcd_ns_unbind(ns, 1, v6o), 0);
	/* the IPv4 bind now blocks a dual-stack :: but not a V6ONLY one */
	assert_int_equal(nbind(ns, 1, 1000, "::", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 1, 1000, "::", 5000, V6O, NULL), 0);
}

static void test_reuseaddr(void **state)
{
	struct ipcd_ns *ns = *state;
	uint32_t a, b, c;

	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 5000, RA, &a), 0);
	assert_int_equal(nbind(ns, 2, 1001, "127.0.0.1", 5000, RA, &b), 0);
	assert_int_equal(nbind(ns, 2, 1001, "0.0.0.0", 5000, RA, &c), 0);
	/* only one side with SO_REUSEADDR is not enough */
	assert_int_equal(nbind(ns, 3, 1002, "127.0.0.1", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 3, 1002, "127.0.0.1", 5000, RP, NULL), -EADDRINUSE);
	/* first listen wins, the others fail at listen */
	assert_int_equal(ipcd_ns_listen(ns, 1, a), 0);
	assert_int_equal(ipcd_ns_listen(ns, 2, b), -EADDRINUSE);
	assert_int_equal(ipcd_ns_listen(ns, 2, c), -EADDRINUSE);
	/* and a new SO_REUSEADDR bind next to a listener fails */
	assert_int_equal(nbind(ns, 3, 1002, "127.0.0.1", 5000, RA, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 3, 1002, "0.0.0.0", 5000, RA, NULL), -EADDRINUSE);
	/* overlapping only the non-listening wildcard: the usual SO_REUSEADDR rule */
	assert_int_equal(nbind(ns, 3, 1002, "127.0.0.2", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 3, 1002, "127.0.0.2", 5000, RA, NULL), 0);
	assert_int_equal(nbind(ns, 3, 1002, "::1", 5000, 0, NULL), 0);
	/* the listener gone, the second can listen */
	assert_int_equal(ipcd_ns_unbind(ns, 1, a), 0);
	assert_int_equal(ipcd_ns_listen(ns, 2, b), 0);
	assert_int_equal(ipcd_ns_listen(ns, 2, c), -EADDRINUSE);
}

static void test_reuseport(void **state)
{
	struct ipcd_ns *ns = *state;
	uint32_t a, b, c, d, e;

	/* same uid, different processes: allowed, listening or not */
	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 5000, RP, &a), 0);
	assert_int_equal(ipcd_ns_listen(ns, 1, a), 0);
	assert_int_equal(nbind(ns, 2, 1000, "127.0.0.1", 5000, RP, &b), 0);
	assert_int_equal(ipcd_ns_listen(ns, 2, b), 0);
	assert_int_equal(nbind(ns, 2, 1000, "0.0.0.0", 5000, RP, &c), 0);
	assert_int_equal(ipcd_ns_listen(ns, 2, c), 0);
	/* different uid, or one side without SO_REUSEPORT */
	assert_int_equal(nbind(ns, 3, 1001, "127.0.0.1", 5000, RP, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 3, 1001, "0.0.0.0", 5000, RP | RA, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 3, 1000, "127.0.0.1", 5000, 0, NULL), -EADDRINUSE);
	assert_int_equal(nbind(ns, 3, 1000, "127.0.0.1", 5000, RA, NULL), -EADDRINUSE);

	/* different uids, both REUSEADDR|REUSEPORT: bind ok, only one may listen */
	assert_int_equal(nbind(ns, 1, 1000, "10.0.0.1", 6000, RP | RA, &d), 0);
	assert_int_equal(nbind(ns, 3, 1001, "10.0.0.1", 6000, RP | RA, &e), 0);
	assert_int_equal(ipcd_ns_listen(ns, 3, e), 0);
	assert_int_equal(ipcd_ns_listen(ns, 1, d), -EADDRINUSE);
}

static void test_listen_twice(void **state)
{
	struct ipcd_ns *ns = *state;
	struct ipcd_ns_entry e;
	uint32_t a;

	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 5000, 0, &a), 0);
	assert_int_equal(ipcd_ns_get(ns, a, &e), 0);
	assert_false(e.listening);
	assert_int_equal(ipcd_ns_listen(ns, 1, a), 0);
	assert_int_equal(ipcd_ns_listen(ns, 1, a), 0);	/* listen() again changes the backlog */
	assert_int_equal(ipcd_ns_get(ns, a, &e), 0);
	assert_true(e.listening);
}

static void test_privileged(void **state)
{
	struct ipcd_ns *ns = *state, *low;
	uint16_t port;

	assert_int_equal(nbind(ns, 1, 1000, "0.0.0.0", 80, 0, NULL), -EACCES);
	assert_int_equal(nbind(ns, 1, 1000, "::", 1023, RA | RP, NULL), -EACCES);
	assert_int_equal(nbind(ns, 1, 1000, "::1", 1, 0, NULL), -EACCES);
	assert_int_equal(nbind(ns, 1, 1000, "0.0.0.0", 1024, 0, NULL), 0);
	assert_int_equal(nbind(ns, 1, 0, "0.0.0.0", 80, PRIV, NULL), 0);
	assert_int_equal(nbind(ns, 1, 1000, "0.0.0.0", 1023, PRIV, NULL), 0);
	assert_int_equal(nbind(ns, 1, 0, "0.0.0.0", 80, PRIV, NULL), -EADDRINUSE);
	assert_int_equal(ipcd_ns_count(ns), 3);

	/* ephemeral ports ignore the privileged rule */
	assert_int_equal(ipcd_ns_create(8, 500, 501, &low), 0);
	assert_int_equal(bind_full(low, 1, 1000, 1000, "0.0.0.0", 0, 0, NULL, NULL, &port), 0);
	assert_in_range(port, 500, 501);
	ipcd_ns_destroy(low);
}

static void load_rules(struct ipcd_config *cfg, const char *text)
{
	char err[256] = "";

	assert_int_equal(ipcd_config_load(NULL, false, cfg, err, sizeof(err)), 0);
	assert_int_equal(ipcd_config_parse(text, strlen(text), "t.conf", cfg, err, sizeof(err)), 0);
}

static void test_config_rules(void **state)
{
	struct ipcd_ns *ns = *state;
	struct ipcd_config cfg;

	load_rules(&cfg, "bind_rule = deny uid=1000 ports=8000-8999\n"
			 "bind_rule = allow gid=50 ports=9000\n"
			 "bind_rule = deny uid=* ports=9000-9100\n"
			 "bind_rule = deny uid=* ports=80\n");
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "0.0.0.0", 8080, 0, &cfg, NULL, NULL),
			 -EACCES);
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "::1", 8999, 0, &cfg, NULL, NULL), -EACCES);
	assert_int_equal(bind_full(ns, 1, 1001, 1001, "0.0.0.0", 8080, 0, &cfg, NULL, NULL), 0);
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "0.0.0.0", 7999, 0, &cfg, NULL, NULL), 0);
	assert_int_equal(bind_full(ns, 2, 2000, 50, "0.0.0.0", 9000, 0, &cfg, NULL, NULL), 0);
	assert_int_equal(bind_full(ns, 2, 2000, 51, "::1", 9000, 0, &cfg, NULL, NULL), -EACCES);
	assert_int_equal(bind_full(ns, 2, 2000, 50, "::1", 9001, 0, &cfg, NULL, NULL), -EACCES);
	assert_int_equal(bind_full(ns, 2, 2000, 50, "::1", 9101, 0, &cfg, NULL, NULL), 0);
	/* both rules apply: PRIV does not override the config */
	assert_int_equal(bind_full(ns, 3, 0, 0, "0.0.0.0", 80, PRIV, &cfg, NULL, NULL), -EACCES);
	assert_int_equal(bind_full(ns, 3, 0, 0, "0.0.0.0", 81, 0, &cfg, NULL, NULL), -EACCES);
	assert_int_equal(bind_full(ns, 3, 0, 0, "0.0.0.0", 81, PRIV, &cfg, NULL, NULL), 0);
	/* no config: no rules */
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "::1", 8080, 0, NULL, NULL, NULL), 0);
}

static void test_ephemeral_skips_denied(void **state)
{
	struct ipcd_ns *ns;
	struct ipcd_config cfg;
	uint16_t port;
	int i;

	(void)state;
	assert_int_equal(ipcd_ns_create(64, 40000, 40009, &ns), 0);
	load_rules(&cfg, "bind_rule = deny uid=1000 ports=40000-40008\n");
	for (i = 0; i < 4; i++) {
		/* a different address each time: the port is free for each */
		char a[32];

		snprintf(a, sizeof(a), "127.0.0.%d", i + 1);
		assert_int_equal(bind_full(ns, 1, 1000, 1000, a, 0, 0, &cfg, NULL, &port), 0);
		assert_int_equal(port, 40009);
	}
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "127.0.0.1", 0, 0, &cfg, NULL, &port),
			 -EADDRNOTAVAIL);
	/* another uid may use the rest of the range */
	for (i = 0; i < 9; i++) {
		assert_int_equal(bind_full(ns, 2, 1001, 1001, "127.0.0.1", 0, 0, &cfg, NULL, &port),
				 0);
		assert_in_range(port, 40000, 40008);
	}
	assert_int_equal(bind_full(ns, 2, 1001, 1001, "127.0.0.1", 0, 0, &cfg, NULL, &port),
			 -EADDRNOTAVAIL);
	ipcd_ns_destroy(ns);

	/* every port denied */
	assert_int_equal(ipcd_ns_create(64, 40000, 40008, &ns), 0);
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "::", 0, 0, &cfg, NULL, &port),
			 -EADDRNOTAVAIL);
	assert_int_equal(ipcd_ns_count(ns), 0);
	ipcd_ns_destroy(ns);
}

static void test_ephemeral(void **state)
{
	struct ipcd_ns *ns;
	bool seen[100] = { false };
	uint16_t port, first[10];
	bool ascending = true;
	int i;

	(void)state;
	assert_int_equal(ipcd_ns_create(256, 40000, 40099, &ns), 0);
	for (i = 0; i < 100; i++) {
		assert_int_equal(bind_full(ns, 1, 1000, 1000, "0.0.0.0", 0, RA | RP, NULL, NULL,
					   &port),
				 0);
		assert_in_range(port, 40000, 40099);
		assert_false(seen[port - 40000]);	/* never shared, even with RA|RP */
		seen[port - 40000] = true;
		if (i < 10)
			first[i] = port;
	}
	for (i = 0; i < 10; i++)
		ascending &= first[i] == 40000 + i;
	assert_false(ascending);
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "127.0.0.1", 0, 0, NULL, NULL, &port),
			 -EADDRNOTAVAIL);
	/* the IPv4 wildcard leaves the IPv6 side free */
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "::1", 0, 0, NULL, NULL, &port), 0);
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "::", 0, V6O, NULL, NULL, &port), 0);
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "::", 0, 0, NULL, NULL, &port),
			 -EADDRNOTAVAIL);
	ipcd_ns_destroy(ns);

	/* a one-port range: free per address */
	assert_int_equal(ipcd_ns_create(16, 40000, 40000, &ns), 0);
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "127.0.0.1", 0, 0, NULL, NULL, &port), 0);
	assert_int_equal(port, 40000);
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "127.0.0.2", 0, 0, NULL, NULL, &port), 0);
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "127.0.0.2", 0, RA, NULL, NULL, &port),
			 -EADDRNOTAVAIL);
	assert_int_equal(bind_full(ns, 1, 1000, 1000, "0.0.0.0", 0, 0, NULL, NULL, &port),
			 -EADDRNOTAVAIL);
	ipcd_ns_destroy(ns);

	/* a port held by an explicit SO_REUSEADDR bind is not handed out */
	assert_int_equal(ipcd_ns_create(16, 40000, 40001, &ns), 0);
	assert_int_equal(nbind(ns, 1, 1000, "0.0.0.0", 40000, RA, NULL), 0);
	assert_int_equal(bind_full(ns, 2, 1000, 1000, "0.0.0.0", 0, RA, NULL, NULL, &port), 0);
	assert_int_equal(port, 40001);
	assert_int_equal(bind_full(ns, 2, 1000, 1000, "0.0.0.0", 0, RA, NULL, NULL, &port),
			 -EADDRNOTAVAIL);
	/* but explicit binds may join ephemeral ones under the usual rules */
	assert_int_equal(nbind(ns, 3, 1000, "0.0.0.0", 40001, RA, NULL), 0);
	assert_int_equal(nbind(ns, 3, 1000, "0.0.0.0", 40001, 0, NULL), -EADDRINUSE);
	ipcd_ns_destroy(ns);
}

static void test_table_full(void **state)
{
	struct ipcd_ns *ns;
	uint32_t ids[4];
	int i;

	(void)state;
	assert_int_equal(ipcd_ns_create(4, EPH_LO, EPH_HI, &ns), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", (uint16_t)(5000 + i), 0, &ids[i]),
				 0);
	assert_int_equal(ipcd_ns_count(ns), 4);
	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 6000, 0, NULL), -ENOSPC);
	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 0, 0, NULL), -ENOSPC);
	assert_int_equal(ipcd_ns_unbind(ns, 1, ids[2]), 0);
	assert_int_equal(ipcd_ns_count(ns), 3);
	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 6000, 0, NULL), 0);
	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 6001, 0, NULL), -ENOSPC);
	assert_int_equal(ipcd_ns_count(ns), 4);
	ipcd_ns_destroy(ns);
}

static void test_ownership(void **state)
{
	struct ipcd_ns *ns = *state;
	struct ipcd_ns_entry e;
	uint32_t a;

	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 5000, 0, &a), 0);
	assert_int_equal(ipcd_ns_listen(ns, 2, a), -EPERM);
	assert_int_equal(ipcd_ns_unbind(ns, 2, a), -EPERM);
	assert_int_equal(ipcd_ns_get(ns, a, &e), 0);
	assert_false(e.listening);
	assert_int_equal(ipcd_ns_listen(ns, 0, 0), -ENOENT);
	assert_int_equal(ipcd_ns_unbind(ns, 1, 0), -ENOENT);
	assert_int_equal(ipcd_ns_unbind(ns, 1, a ^ 0x40000000u), -ENOENT);
	assert_int_equal(ipcd_ns_unbind(ns, 1, a + 1), -ENOENT);
	assert_int_equal(ipcd_ns_unbind(ns, 1, 0x000fffffu), -ENOENT);
	assert_int_equal(ipcd_ns_get(ns, UINT32_MAX, &e), -ENOENT);
	assert_int_equal(ipcd_ns_unbind(ns, 1, a), 0);
	assert_int_equal(ipcd_ns_unbind(ns, 1, a), -ENOENT);
	assert_int_equal(ipcd_ns_listen(ns, 1, a), -ENOENT);
	assert_int_equal(ipcd_ns_get(ns, a, &e), -ENOENT);
}

static void test_stale_id(void **state)
{
	struct ipcd_ns *ns;
	uint32_t ids[200];
	int i, j;

	(void)state;
	/* one slot: every bind reuses it, and every id must differ */
	assert_int_equal(ipcd_ns_create(1, EPH_LO, EPH_HI, &ns), 0);
	for (i = 0; i < 200; i++) {
		assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 5000, 0, &ids[i]), 0);
		for (j = 0; j < i; j++) {
			assert_int_not_equal(ids[i], ids[j]);
			assert_int_equal(ipcd_ns_unbind(ns, 1, ids[j]), -ENOENT);
		}
		assert_int_equal(ipcd_ns_unbind(ns, 1, ids[i]), 0);
	}
	ipcd_ns_destroy(ns);

	/* freed slots are reused oldest first */
	assert_int_equal(ipcd_ns_create(8, EPH_LO, EPH_HI, &ns), 0);
	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 5000, 0, &ids[0]), 0);
	assert_int_equal(ipcd_ns_unbind(ns, 1, ids[0]), 0);
	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 5000, 0, &ids[1]), 0);
	assert_int_not_equal(ids[1] & 0xfffffu, ids[0] & 0xfffffu);
	ipcd_ns_destroy(ns);
}

static void test_release_owner(void **state)
{
	struct ipcd_ns *ns = *state;
	struct ipcd_ns_entry e;
	uint32_t a, b;

	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 5000, 0, &a), 0);
	assert_int_equal(ipcd_ns_listen(ns, 1, a), 0);
	assert_int_equal(nbind(ns, 1, 1000, "::", 5001, 0, NULL), 0);
	assert_int_equal(nbind(ns, 1, 1000, "0.0.0.0", 0, 0, NULL), 0);
	assert_int_equal(nbind(ns, 2, 1000, "127.0.0.2", 5000, 0, &b), 0);
	assert_int_equal(nbind(ns, 2, 1000, "::1", 5002, 0, NULL), 0);
	assert_int_equal(ipcd_ns_count(ns), 5);

	assert_int_equal(ipcd_ns_release_owner(ns, 1), 3);
	assert_int_equal(ipcd_ns_count(ns), 2);
	assert_int_equal(ipcd_ns_release_owner(ns, 1), 0);
	assert_int_equal(ipcd_ns_release_owner(ns, 3), 0);
	assert_int_equal(ipcd_ns_get(ns, a, &e), -ENOENT);
	assert_int_equal(ipcd_ns_get(ns, b, &e), 0);
	assert_int_equal(e.owner, 2);
	assert_int_equal(look(ns, "127.0.0.1", 5000), -ECONNREFUSED);
	/* the ports are free again */
	assert_int_equal(nbind(ns, 3, 1001, "127.0.0.1", 5000, 0, NULL), 0);
	assert_int_equal(nbind(ns, 3, 1001, "::", 5001, 0, NULL), 0);
	assert_int_equal(ipcd_ns_release_owner(ns, 2), 2);
	assert_int_equal(ipcd_ns_release_owner(ns, 3), 2);
	assert_int_equal(ipcd_ns_count(ns), 0);
}

static void test_lookup(void **state)
{
	struct ipcd_ns *ns = *state;
	uint32_t any4, ex, dual, v6o, any4b, notl;

	assert_int_equal(look(ns, "127.0.0.1", 5000), -ECONNREFUSED);
	/* bound but not listening */
	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 5000, RP, &notl), 0);
	assert_int_equal(look(ns, "127.0.0.1", 5000), -ECONNREFUSED);

	assert_int_equal(nbind(ns, 1, 1000, "0.0.0.0", 5000, RP, &any4), 0);
	assert_int_equal(ipcd_ns_listen(ns, 1, any4), 0);
	assert_int_equal(look(ns, "127.0.0.1", 5000), any4);
	assert_int_equal(look(ns, "10.9.8.7", 5000), any4);
	assert_int_equal(look(ns, "::ffff:10.9.8.7", 5000), any4);
	assert_int_equal(look(ns, "::1", 5000), -ECONNREFUSED);
	assert_int_equal(look(ns, "::ffff:0:a09:807", 5000), -ECONNREFUSED);	/* not mapped */
	assert_int_equal(look(ns, "127.0.0.1", 5001), -ECONNREFUSED);

	/* an exact listener beats the wildcard */
	assert_int_equal(nbind(ns, 1, 1000, "127.0.0.1", 5000, RP, &ex), 0);
	assert_int_equal(ipcd_ns_listen(ns, 1, ex), 0);
	assert_int_equal(look(ns, "127.0.0.1", 5000), ex);
	assert_int_equal(look(ns, "127.0.0.1", 5000), ex);
	assert_int_equal(look(ns, "127.0.0.2", 5000), any4);

	/* dual-stack :: reaches IPv4 and IPv6, below an IPv4 wildcard */
	assert_int_equal(nbind(ns, 2, 1000, "::", 5000, RP, &dual), 0);
	assert_int_equal(ipcd_ns_listen(ns, 2, dual), 0);
	assert_int_equal(look(ns, "127.0.0.2", 5000), any4);
	assert_int_equal(look(ns, "::1", 5000), dual);
	assert_int_equal(ipcd_ns_unbind(ns, 1, any4), 0);
	assert_int_equal(look(ns, "127.0.0.2", 5000), dual);
	assert_int_equal(look(ns, "127.0.0.1", 5000), ex);
	assert_int_equal(ipcd_ns_unbind(ns, 2, dual), 0);

	/* V6ONLY :: reaches IPv6 only */
	assert_int_equal(nbind(ns, 2, 1000, "::", 5000, V6O, &v6o), 0);
	assert_int_equal(ipcd_ns_listen(ns, 2, v6o), 0);
	assert_int_equal(look(ns, "::1", 5000), v6o);
	assert_int_equal(look(ns, "fe80::1", 5000), v6o);
	assert_int_equal(look(ns, "127.0.0.2", 5000), -ECONNREFUSED);
	assert_int_equal(look(ns, "127.0.0.1", 5000), ex);

	/* a connect to a wildcard address reaches loopback, as in Linux */
	assert_int_equal(look(ns, "0.0.0.0", 5000), ex);
	assert_int_equal(look(ns, "::", 5000), v6o);

	/* an IPv6 connect never reaches an IPv4 bind */
	assert_int_equal(nbind(ns, 3, 1000, "0.0.0.0", 6000, 0, &any4b), 0);
	assert_int_equal(ipcd_ns_listen(ns, 3, any4b), 0);
	assert_int_equal(look(ns, "::1", 6000), -ECONNREFUSED);
	assert_int_equal(look(ns, "::", 6000), -ECONNREFUSED);
	assert_int_equal(look(ns, "1.2.3.4", 6000), any4b);
}

static int slot_of(const uint32_t *ids, int n, int64_t id)
{
	int i;

	for (i = 0; i < n; i++)
		if (ids[i] == id)
			return i;
	fail_msg("id %" PRId64 " is none of the expected listeners", id);
	return -1;
}

static void test_round_robin(void **state)
{
	struct ipcd_ns *ns = *state;
	uint32_t ids[3], any;
	int hits[3] = { 0 }, round, i;

	for (i = 0; i < 3; i++) {
		assert_int_equal(nbind(ns, (uint64_t)i + 1, 1000, "127.0.0.1", 5000, RP, &ids[i]),
				 0);
		assert_int_equal(ipcd_ns_listen(ns, (uint64_t)i + 1, ids[i]), 0);
	}
	assert_int_equal(nbind(ns, 9, 1000, "0.0.0.0", 5000, RP, &any), 0);
	assert_int_equal(ipcd_ns_listen(ns, 9, any), 0);
	/* every window of 3 consecutive lookups reaches each listener once */
	for (round = 0; round < 5; round++) {
		bool seen[3] = { false };

		for (i = 0; i < 3; i++) {
			int s = slot_of(ids, 3, look(ns, "127.0.0.1", 5000));

			assert_false(seen[s]);
			seen[s] = true;
			hits[s]++;
		}
	}
	for (i = 0; i < 3; i++)
		assert_int_equal(hits[i], 5);
	/* a wildcard lookup in between does not disturb the rotation */
	assert_int_equal(look(ns, "127.0.0.9", 5000), any);

	assert_int_equal(ipcd_ns_unbind(ns, 2, ids[1]), 0);
	ids[1] = ids[2];
	for (round = 0; round < 4; round++) {
		int64_t x = look(ns, "127.0.0.1", 5000), y = look(ns, "127.0.0.1", 5000);

		assert_int_not_equal(x, y);
		slot_of(ids, 2, x);
		slot_of(ids, 2, y);
	}
}

static void test_iterate(void **state)
{
	struct ipcd_ns *ns = *state;
	struct ipcd_ns_entry e;
	uint32_t ids[5], cursor = 0, seen = 0;
	uint8_t want[16];
	int i;

	assert_false(ipcd_ns_next(ns, &cursor, &e));
	for (i = 0; i < 5; i++)
		assert_int_equal(nbind(ns, (uint64_t)i + 10, 1000u + (uint32_t)i, "::1",
				       (uint16_t)(5000 + i), RA | PRIV, &ids[i]),
				 0);
	assert_int_equal(ipcd_ns_listen(ns, 13, ids[3]), 0);
	assert_int_equal(ipcd_ns_unbind(ns, 10, ids[0]), 0);
	assert_int_equal(ipcd_ns_unbind(ns, 12, ids[2]), 0);
	assert_int_equal(ipcd_ns_count(ns), 3);

	addr_of("::1", want);
	cursor = 0;
	while (ipcd_ns_next(ns, &cursor, &e)) {
		int k = slot_of(ids, 5, e.id);

		assert_true(k == 1 || k == 3 || k == 4);
		assert_false(seen & 1u << k);
		seen |= 1u << k;
		assert_int_equal(e.owner, 10 + k);
		assert_int_equal(e.uid, 1000 + k);
		assert_int_equal(e.port, 5000 + k);
		assert_int_equal(e.flags, RA);		/* PRIV is a credential, not kept */
		assert_memory_equal(e.addr, want, 16);
		assert_int_equal(e.listening, k == 3);
	}
	assert_int_equal(seen, 1u << 1 | 1u << 3 | 1u << 4);
	assert_false(ipcd_ns_next(ns, &cursor, &e));
}

/* ---- randomized test against a brute-force model ------------------------ */

#define M_MAX		16
#define M_OWNERS	4
#define M_EPH_LO	40000
#define M_EPH_HI	40003

struct m_bind {
	uint32_t id;
	uint64_t owner;
	uint32_t uid;
	uint8_t addr[16];
	uint16_t port;
	uint32_t flags;
	bool listening;
};

struct model {
	struct m_bind b[M_MAX];
	int n;
};

static const char *const m_bind_addrs[] = {
	"0.0.0.0", "127.0.0.1", "127.0.0.2", "::", "::1", "::2",
};
/* Everything bound, plus one unbound address per family: two address sets
 * intersect iff they share a member of this universe. */
static const char *const m_universe[] = {
	"127.0.0.1", "127.0.0.2", "10.0.0.1", "::1", "::2", "fe80::5",
};
static const char *const m_dest_addrs[] = {
	"127.0.0.1", "127.0.0.2", "10.0.0.1", "::1", "::2", "fe80::5", "0.0.0.0", "::",
};
static const uint16_t m_ports[] = { 80, 1023, 5000, 5001, 40000, 40001, 40003 };

/* Half of all explicit ports are 5000, so that binds meet. */
static uint16_t m_port(struct t_rng *r)
{
	return t_rng_below(r, 2) ? 5000 : m_ports[t_rng_below(r, 7)];
}

static bool m_is_v4(const uint8_t a[16])
{
	static const uint8_t pfx[12] = { [10] = 0xff, [11] = 0xff };

	return memcmp(a, pfx, 12) == 0;
}

static bool m_addr_is(const uint8_t a[16], const char *s)
{
	uint8_t x[16];

	addr_of(s, x);
	return memcmp(a, x, 16) == 0;
}

/* Does bind @b's address set contain the unicast address @d? */
static bool m_covers(const struct m_bind *b, const uint8_t d[16])
{
	if (memcmp(b->addr, d, 16) == 0)
		return true;
	if (m_addr_is(b->addr, "0.0.0.0"))
		return m_is_v4(d);
	if (m_addr_is(b->addr, "::"))
		return !m_is_v4(d) || !(b->flags & V6O);
	return false;
}

static bool m_overlap(const struct m_bind *x, const struct m_bind *y)
{
	size_t i;

	if (x->port != y->port)
		return false;
	for (i = 0; i < sizeof(m_universe) / sizeof(m_universe[0]); i++) {
		uint8_t d[16];

		addr_of(m_universe[i], d);
		if (m_covers(x, d) && m_covers(y, d))
			return true;
	}
	return false;
}

static bool m_rp_pair(const struct m_bind *x, const struct m_bind *y)
{
	return (x->flags & RP) && (y->flags & RP) && x->uid == y->uid;
}

static bool m_conflict(const struct model *m, const struct m_bind *nb)
{
	int i;

	for (i = 0; i < m->n; i++) {
		const struct m_bind *e = &m->b[i];

		if (!m_overlap(e, nb) || m_rp_pair(e, nb))
			continue;
		if ((e->flags & RA) && (nb->flags & RA) && !e->listening)
			continue;
		return true;
	}
	return false;
}

static bool m_allowed(const struct ipcd_config *cfg, uint32_t uid, uint32_t gid, uint16_t port)
{
	return !cfg || ipcd_config_bind_allowed(cfg, uid, gid, port);
}

static uint32_t m_uid(uint64_t owner)
{
	return owner == M_OWNERS ? 1001 : 1000;	/* mostly one uid: SO_REUSEPORT groups */
}

static uint32_t m_gid(uint64_t owner)
{
	return owner >= 3 ? 50 : 100;
}

static void m_check_bind(struct model *m, struct ipcd_ns *ns, struct t_rng *r,
			 const struct ipcd_config *cfg)
{
	struct ipcd_ns_who w;
	struct m_bind nb = { 0 };
	uint32_t flags = 0, id = 0;
	uint16_t port, got_port = 0;
	int want, ret;

	w.owner = 1 + t_rng_below(r, M_OWNERS);
	w.uid = m_uid(w.owner);
	w.gid = m_gid(w.owner);
	addr_of(m_bind_addrs[t_rng_below(r, 6)], nb.addr);
	port = t_rng_below(r, 3) == 0 ? 0 : m_port(r);
	if (t_rng_below(r, 2))
		flags |= RA;
	if (t_rng_below(r, 4))
		flags |= RP;
	if (t_rng_below(r, m_is_v4(nb.addr) ? 16 : 3) == 0)
		flags |= V6O;
	if (t_rng_below(r, 2))
		flags |= PRIV;
	nb.owner = w.owner;
	nb.uid = w.uid;
	nb.flags = flags & ~PRIV;
	nb.port = port;

	ret = ipcd_ns_bind(ns, &w, nb.addr, port, flags, cfg, &id, &got_port);
	if ((flags & V6O) && m_is_v4(nb.addr))
		want = -EINVAL;
	else if (port && port < 1024 && !(flags & PRIV))
		want = -EACCES;
	else if (port && !m_allowed(cfg, w.uid, w.gid, port))
		want = -EACCES;
	else if (m->n == M_MAX)
		want = -ENOSPC;
	else if (port)
		want = m_conflict(m, &nb) ? -EADDRINUSE : 0;
	else
		want = INT32_MIN;	/* ephemeral: checked below */

	if (want == INT32_MIN) {
		bool any_free = false;
		int p, i;

		for (p = M_EPH_LO; p <= M_EPH_HI; p++) {
			bool free_port = m_allowed(cfg, w.uid, w.gid, (uint16_t)p);

			nb.port = (uint16_t)p;
			for (i = 0; i < m->n && free_port; i++)
				free_port = !m_overlap(&m->b[i], &nb);
			any_free |= free_port;
			if (ret == 0 && p == got_port)
				assert_true(free_port);
		}
		want = any_free ? 0 : -EADDRNOTAVAIL;
		if (ret == 0)
			assert_in_range(got_port, M_EPH_LO, M_EPH_HI);
		nb.port = got_port;
	}
	assert_int_equal(ret, want);
	if (ret == 0) {
		assert_int_equal(got_port, nb.port);
		nb.id = id;
		m->b[m->n++] = nb;
	}
}

static void m_check_listen(struct model *m, struct ipcd_ns *ns, struct t_rng *r)
{
	struct m_bind *b;
	uint64_t owner;
	int i, want;

	if (!m->n)
		return;
	b = &m->b[t_rng_below(r, (uint32_t)m->n)];
	owner = t_rng_below(r, 8) == 0 ? 1 + t_rng_below(r, M_OWNERS) : b->owner;
	want = 0;
	if (owner != b->owner) {
		want = -EPERM;
	} else if (!b->listening) {
		for (i = 0; i < m->n; i++) {
			const struct m_bind *e = &m->b[i];

			if (e != b && e->listening && m_overlap(e, b) && !m_rp_pair(e, b))
				want = -EADDRINUSE;
		}
	}
	assert_int_equal(ipcd_ns_listen(ns, owner, b->id), want);
	if (!want)
		b->listening = true;
}

static void m_remove(struct model *m, int i, uint32_t *dead, int *n_dead)
{
	if (*n_dead < 256)
		dead[(*n_dead)++] = m->b[i].id;
	m->b[i] = m->b[--m->n];
}

static void m_check_unbind(struct model *m, struct ipcd_ns *ns, struct t_rng *r, uint32_t *dead,
			   int *n_dead)
{
	uint64_t owner;
	int i;

	if (!m->n)
		return;
	i = (int)t_rng_below(r, (uint32_t)m->n);
	owner = t_rng_below(r, 8) == 0 ? 1 + t_rng_below(r, M_OWNERS) : m->b[i].owner;
	if (owner != m->b[i].owner) {
		assert_int_equal(ipcd_ns_unbind(ns, owner, m->b[i].id), -EPERM);
		return;
	}
	assert_int_equal(ipcd_ns_unbind(ns, owner, m->b[i].id), 0);
	m_remove(m, i, dead, n_dead);
}

static void m_check_release(struct model *m, struct ipcd_ns *ns, struct t_rng *r, uint32_t *dead,
			    int *n_dead)
{
	uint64_t owner = 1 + t_rng_below(r, M_OWNERS);
	uint32_t want = 0;
	int i;

	for (i = m->n - 1; i >= 0; i--) {
		if (m->b[i].owner == owner) {
			m_remove(m, i, dead, n_dead);
			want++;
		}
	}
	assert_int_equal(ipcd_ns_release_owner(ns, owner), want);
}

static int m_score(const struct m_bind *b, const uint8_t d[16])
{
	if (memcmp(b->addr, d, 16) == 0)
		return 3;
	if (!m_covers(b, d))
		return 0;
	return m_is_v4(d) == m_is_v4(b->addr) ? 2 : 1;
}

static void m_check_lookup(struct model *m, struct ipcd_ns *ns, struct t_rng *r)
{
	const char *dest = m_dest_addrs[t_rng_below(r, 8)];
	uint16_t port = m_port(r);
	uint8_t d[16], q[16];
	bool best[M_MAX] = { false }, seen[M_MAX] = { false };
	int i, k, top = 0, n_best = 0;

	addr_of(dest, q);
	if (!strcmp(dest, "0.0.0.0"))
		addr_of("127.0.0.1", d);
	else if (!strcmp(dest, "::"))
		addr_of("::1", d);
	else
		memcpy(d, q, 16);
	for (i = 0; i < m->n; i++)
		if (m->b[i].listening && m->b[i].port == port && m_score(&m->b[i], d) > top)
			top = m_score(&m->b[i], d);
	for (i = 0; i < m->n && top; i++) {
		best[i] = m->b[i].listening && m->b[i].port == port && m_score(&m->b[i], d) == top;
		n_best += best[i];
	}
	if (!n_best) {
		assert_int_equal(ipcd_ns_lookup_listener(ns, q, port), -ECONNREFUSED);
		return;
	}
	/* n_best lookups in a row: each of the best group once */
	for (k = 0; k < n_best; k++) {
		int64_t got = ipcd_ns_lookup_listener(ns, q, port);

		for (i = 0; i < m->n; i++)
			if (m->b[i].id == got)
				break;
		assert_true(i < m->n);
		assert_true(best[i]);
		assert_false(seen[i]);
		seen[i] = true;
	}
}

static void m_check_all(const struct model *m, const struct ipcd_ns *ns, const uint32_t *dead,
			int n_dead)
{
	struct ipcd_ns_entry e;
	uint32_t cursor = 0, n = 0;
	int i;

	assert_int_equal(ipcd_ns_count(ns), m->n);
	while (ipcd_ns_next(ns, &cursor, &e)) {
		for (i = 0; i < m->n; i++)
			if (m->b[i].id == e.id)
				break;
		assert_true(i < m->n);
		assert_int_equal(e.owner, m->b[i].owner);
		assert_int_equal(e.uid, m->b[i].uid);
		assert_int_equal(e.port, m->b[i].port);
		assert_int_equal(e.flags, m->b[i].flags);
		assert_int_equal(e.listening, m->b[i].listening);
		assert_memory_equal(e.addr, m->b[i].addr, 16);
		n++;
	}
	assert_int_equal(n, m->n);
	for (i = 0; i < n_dead; i++) {
		bool live = false;
		int j;

		for (j = 0; j < m->n; j++)
			live |= m->b[j].id == dead[i];
		if (!live)
			assert_int_equal(ipcd_ns_get(ns, dead[i], &e), -ENOENT);
	}
}

static void run_model(uint64_t seed, int ops, bool use_cfg)
{
	struct ipcd_config cfg;
	struct ipcd_ns *ns;
	struct model *m = calloc(1, sizeof(*m));
	uint32_t dead[256];
	int n_dead = 0, op;
	struct t_rng r;

	assert_non_null(m);
	t_rng_init(&r, seed);
	load_rules(&cfg, "bind_rule = deny uid=1001 ports=5001\n"
			 "bind_rule = allow gid=50 ports=40001\n"
			 "bind_rule = deny uid=* ports=40001-40002\n");
	assert_int_equal(ipcd_ns_create(M_MAX, M_EPH_LO, M_EPH_HI, &ns), 0);
	for (op = 0; op < ops; op++) {
		const struct ipcd_config *c = use_cfg && t_rng_below(&r, 4) ? &cfg : NULL;
		uint32_t k = t_rng_below(&r, 100);

		if (k < 45)
			m_check_bind(m, ns, &r, c);
		else if (k < 65)
			m_check_listen(m, ns, &r);
		else if (k < 80)
			m_check_unbind(m, ns, &r, dead, &n_dead);
		else if (k < 83)
			m_check_release(m, ns, &r, dead, &n_dead);
		else
			m_check_lookup(m, ns, &r);
		if (op % 16 == 0)
			m_check_all(m, ns, dead, n_dead);
		if (n_dead == 256)
			n_dead = 0;
	}
	m_check_all(m, ns, dead, n_dead);
	ipcd_ns_destroy(ns);
	free(m);
}

static void test_model(void **state)
{
	uint64_t seed = t_seed();
	int i;

	(void)state;
	for (i = 0; i < 8; i++) {
		fprintf(stderr, "test_model: round %d seed 0x%" PRIx64 "\n", i, seed + (uint64_t)i);
		run_model(seed + (uint64_t)i, 4000 / T_SLOWDOWN, i & 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_invalid),
		cmocka_unit_test_setup_teardown(test_bind_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exact_v4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wildcard_v4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dual_stack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reuseaddr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reuseport, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_privileged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_rules, setup, teardown),
		cmocka_unit_test(test_ephemeral_skips_denied),
		cmocka_unit_test(test_ephemeral),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test_setup_teardown(test_ownership, setup, teardown),
		cmocka_unit_test(test_stale_id),
		cmocka_unit_test_setup_teardown(test_release_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_robin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iterate, setup, teardown),
		cmocka_unit_test(test_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
