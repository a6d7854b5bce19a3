/* SPDX-License-Identifier: MIT */
/*
 * addr.h - TCP addresses as the monitor and the library keep them (proto.h
 * struct ipcd_bind_req): 16 bytes, IPv6, or IPv4 mapped into IPv6
 * (::ffff:a.b.c.d), network byte order; ports in host byte order.
 */
#ifndef IPCD_ADDR_H
#define IPCD_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/* @sa (@len bytes) as (@addr, @port): false unless AF_INET or AF_INET6 and long enough. */
static inline bool ipcd_sockaddr_key(const struct sockaddr *sa, socklen_t len, uint8_t addr[16],
				     uint16_t *port)
{
	if (!sa || len < (socklen_t)sizeof(sa_family_t))
		return false;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;

		memset(addr, 0, 10);
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &in->sin_addr, 4);
		*port = ntohs(in->sin_port);
		return true;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		memcpy(addr, &in6->sin6_addr, 16);
		*port = ntohs(in6->sin6_port);
		return true;
	}
	return false;
}

#endif /* IPCD_ADDR_H */
