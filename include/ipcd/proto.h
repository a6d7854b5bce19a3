/* SPDX-License-Identifier: MIT */
/*
 * proto.h - monitor request opcodes and the meaning of their bodies.
 *
 * The envelopes (struct ipcd_req, struct ipcd_resp) are shared-memory
 * layouts and live in shm_abi.h. Adding an opcode bumps IPCD_SHM_ABI_MINOR.
 */
#ifndef IPCD_PROTO_H
#define IPCD_PROTO_H

#include "shm_abi.h"

#define IPCD_OP_NOP		1	/* no body; answered with status 0 */
#define IPCD_OP_ECHO		2	/* body echoed back; for tests and benchmarks */
#define IPCD_OP_MAX		2

#endif /* IPCD_PROTO_H */
