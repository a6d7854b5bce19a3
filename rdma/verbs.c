/* SPDX-License-Identifier: MIT */
/* verbs.c - one process's RDMA device: context, PD, CQ + channel, RC QPs, MRs. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "rdma.h"

/* Inline sizes tried, largest first, when finding what a QP of ours can take. */
static const uint32_t inline_tries[] = { 256, 128, 64 };

/* What ipcd_rqp_connect needs beyond the public fields. */
struct rdev_priv {
	struct ipcd_rdev pub;		/* first: ipcd_rdev pointers are rdev_priv ones */
	uint8_t max_rd_atomic;		/* outstanding reads we may issue (<= 16) */
	uint8_t max_dest_rd_atomic;	/* outstanding reads we may serve (<= 16) */
};

static __thread const char *rdev_why_str = "no ipcd_rdev_open failure";

const char *ipcd_rdev_why(void)
{
	return rdev_why_str;
}

/* Verbs calls return a positive errno, some providers -1 with errno set. */
static int verbs_err(int rc)
{
	if (rc > 0)
		return -rc;
	if (rc < 0 && errno > 0)
		return -errno;
	return -EIO;
}

static int errno_or(int fallback)
{
	return errno > 0 ? -errno : -fallback;
}

static bool is_v4mapped(const uint8_t a[16])
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return memcmp(a, prefix, sizeof(prefix)) == 0;
}

static bool ifa_has_addr(const struct ifaddrs *ifa, const uint8_t addr[16])
{
	const struct sockaddr *sa = ifa->ifa_addr;

	if (!sa)
		return false;
	if (sa->sa_family == AF_INET && is_v4mapped(addr)) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		return memcmp(&sin->sin_addr, addr + 12, 4) == 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		return memcmp(&sin6->sin6_addr, addr, 16) == 0;
	}
	return false;
}

/*
 * The 16 GID bytes of IPoIB interface @name: its 20-byte hardware address is
 * the QPN (4 bytes) followed by the port GID it runs on.
 */
static bool ipoib_gid(const char *name, uint8_t gid[16])
{
	char path[128], text[80];
	unsigned int b[20];
	ssize_t n;
	int fd;

	if (snprintf(path, sizeof(path), "/sys/class/net/%s/address", name) >= (int)sizeof(path))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return false;
	text[n] = '\0';
	if (sscanf(text,
		   "%x:%x:%x:%x:%x:%x:%x:%x:%x:%x:%x:%x:%x:%x:%x:%x:%x:%x:%x:%x",
		   &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &b[6], &b[7], &b[8], &b[9],
		   &b[10], &b[11], &b[12], &b[13], &b[14], &b[15], &b[16], &b[17], &b[18],
		   &b[19]) != 20)
		return false;
	for (int i = 0; i < 16; i++)
		gid[i] = (uint8_t)b[4 + i];
	return true;
}

/* Does an IPoIB interface holding @addr run on the port whose GID is @gid? */
static bool ipoib_has(const uint8_t addr[16], const uint8_t gid[16])
{
	struct ifaddrs *ifas, *ifa;
	uint8_t g[16];
	bool found = false;

	if (getifaddrs(&ifas) != 0)
		return false;
	for (ifa = ifas; ifa && !found; ifa = ifa->ifa_next) {
		if (!ifa_has_addr(ifa, addr) || !ipoib_gid(ifa->ifa_name, g))
			continue;
		found = memcmp(g, gid, 16) == 0;
	}
	freeifaddrs(ifas);
	return found;
}

/*
 * The GID of @port to use: with @addr, the RoCE v2 entry equal to it, else
 * the RoCE v1 one, else (InfiniBand) the GID an IPoIB netdev with that
 * address runs on; -1 when the port does not carry @addr. Without
 * @addr, the first RoCE v2 entry, else index 0.
 */
static int port_pick_gid(struct ibv_context *ctx, uint8_t port, const struct ibv_port_attr *pa,
			 const uint8_t *addr)
{
	struct ibv_gid_entry e;
	int v1 = -1, ib = -1;

	for (int i = 0; i < pa->gid_tbl_len; i++) {
		if (ibv_query_gid_ex(ctx, port, (uint32_t)i, &e, 0) != 0)
			continue;	/* ENODATA: an empty slot */
		if (e.gid_type == IBV_GID_TYPE_ROCE_V2 &&
		    (!addr || memcmp(e.gid.raw, addr, 16) == 0))
			return i;
		if (addr && e.gid_type == IBV_GID_TYPE_ROCE_V1 && v1 < 0 &&
		    memcmp(e.gid.raw, addr, 16) == 0)
			v1 = i;
		if (addr && e.gid_type == IBV_GID_TYPE_IB && ib < 0 && ipoib_has(addr, e.gid.raw))
			ib = i;
	}
	if (!addr)
		return 0;
	return v1 >= 0 ? v1 : ib;
}

/* Largest inline size (of inline_tries) an RC QP on @cq accepts. */
static int probe_inline(struct ipcd_rdev *d, uint32_t *out)
{
	int err = -EINVAL;

	for (size_t i = 0; i < IPCD_ARRAY_SIZE(inline_tries); i++) {
		struct ibv_qp_init_attr a = {
			.send_cq = d->cq,
			.recv_cq = d->cq,
			.cap = { .max_send_wr = 1, .max_recv_wr = 1, .max_send_sge = 1,
				 .max_recv_sge = 1, .max_inline_data = inline_tries[i] },
			.qp_type = IBV_QPT_RC,
		};
		struct ibv_qp *qp = ibv_create_qp(d->pd, &a);

		if (!qp) {
			err = errno_or(EINVAL);
			continue;
		}
		*out = IPCD_MAX(a.cap.max_inline_data, inline_tries[i]);
		ibv_destroy_qp(qp);
		return 0;
	}
	return err;
}

/*
 * Open and set up device @dev's port @port with GID @gid_index. On failure
 * everything it opened is closed again and rdev_why_str says which step.
 */
static int rdev_setup(struct ibv_context *ctx, const struct ibv_device_attr *da, uint8_t port,
		      const struct ibv_port_attr *pa, int gid_index, uint32_t cqe,
		      struct ipcd_rdev **out)
{
	struct rdev_priv *p;
	struct ipcd_rdev *d;
	union ibv_gid gid;
	int err, flags;

	p = calloc(1, sizeof(*p));
	if (!p) {
		rdev_why_str = "out of memory for the device context";
		return -ENOMEM;
	}
	d = &p->pub;
	d->ctx = ctx;
	d->port = port;
	d->gid_index = (uint8_t)gid_index;
	d->mtu = (uint8_t)pa->active_mtu;
	d->lid = pa->lid;
	snprintf(d->name, sizeof(d->name), "%s", ibv_get_device_name(ctx->device));
	p->max_rd_atomic = (uint8_t)IPCD_MIN(da->max_qp_init_rd_atom, 16);
	p->max_dest_rd_atomic = (uint8_t)IPCD_MIN(da->max_qp_rd_atom, 16);

	err = ibv_query_gid(ctx, port, gid_index, &gid);
	if (err) {
		err = verbs_err(err);
		rdev_why_str = "ibv_query_gid of the chosen GID failed";
		goto err_free;
	}
	memcpy(d->gid, gid.raw, sizeof(d->gid));

	d->pd = ibv_alloc_pd(ctx);
	if (!d->pd) {
		err = errno_or(ENOMEM);
		rdev_why_str = "ibv_alloc_pd failed";
		goto err_free;
	}
	d->chan = ibv_create_comp_channel(ctx);
	if (!d->chan) {
		err = errno_or(ENOMEM);
		rdev_why_str = "ibv_create_comp_channel failed";
		goto err_pd;
	}
	/* The caller's event loop polls this fd; a read must never block it. */
	flags = fcntl(d->chan->fd, F_GETFL);
	if (flags < 0 || fcntl(d->chan->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		err = errno_or(EINVAL);
		rdev_why_str = "fcntl(O_NONBLOCK) on the completion channel failed";
		goto err_chan;
	}
	if (cqe == 0)
		cqe = 1;
	if (da->max_cqe > 0 && cqe > (uint32_t)da->max_cqe)
		cqe = (uint32_t)da->max_cqe;
	d->cq = ibv_create_cq(ctx, (int)cqe, d, d->chan, 0);
	if (!d->cq) {
		err = errno_or(ENOMEM);
		rdev_why_str = "ibv_create_cq failed";
		goto err_chan;
	}
	err = probe_inline(d, &d->max_inline);
	if (err) {
		rdev_why_str = "ibv_create_qp with 64 bytes inline failed";
		goto err_cq;
	}
	*out = d;
	return 0;

err_cq:
	ibv_destroy_cq(d->cq);
err_chan:
	ibv_destroy_comp_channel(d->chan);
err_pd:
	ibv_dealloc_pd(d->pd);
err_free:
	free(p);
	return err;
}

/*
 * Find on @ctx the port carrying @addr (or the first active one): its number,
 * attributes and GID index. 0, or -ENODEV with rdev_why_str set.
 */
static int dev_find_port(struct ibv_context *ctx, const struct ibv_device_attr *da,
			 const uint8_t *addr, uint8_t *port, struct ibv_port_attr *pa,
			 int *gid_index)
{
	bool inactive_match = false;

	for (unsigned int p = 1; p <= da->phys_port_cnt && p <= UINT8_MAX; p++) {
		int gi;

		if (ibv_query_port(ctx, (uint8_t)p, pa) != 0)
			continue;
		gi = port_pick_gid(ctx, (uint8_t)p, pa, addr);
		if (gi < 0 || gi > UINT8_MAX)
			continue;
		if (pa->state != IBV_PORT_ACTIVE) {
			inactive_match = addr != NULL;
			continue;
		}
		*port = (uint8_t)p;
		*gid_index = gi;
		return 0;
	}
	if (inactive_match)
		rdev_why_str = "the RDMA port with that address is not active";
	return -ENODEV;
}

int ipcd_rdev_open(const uint8_t addr[16], uint32_t cqe, struct ipcd_rdev **out)
{
	struct ibv_device **list;
	int n, err = -ENODEV;

	*out = NULL;
	rdev_why_str = addr ? "no RDMA device has that address in its GID table"
			    : "no RDMA device with an active port";
	/*
	 * Registered memory must stay with the parent across fork() unless the
	 * kernel copes by itself (5.13+ with FOLL_PIN); fork init has to come
	 * before any device is opened.
	 */
	if (ibv_is_fork_initialized() != IBV_FORK_UNNEEDED) {
		err = ibv_fork_init();
		if (err) {
			rdev_why_str = "ibv_fork_init failed";
			return verbs_err(err);
		}
		err = -ENODEV;
	}

	list = ibv_get_device_list(&n);
	if (!list) {
		rdev_why_str = "ibv_get_device_list failed (no RDMA subsystem?)";
		return errno == ENOSYS ? -ENODEV : errno_or(ENODEV);
	}
	if (n == 0)
		rdev_why_str = "no RDMA device";
	for (int i = 0; i < n; i++) {
		struct ibv_device_attr da;
		struct ibv_port_attr pa;
		struct ibv_context *ctx;
		uint8_t port;
		int gi;

		ctx = ibv_open_device(list[i]);
		if (!ctx)
			continue;
		if (ibv_query_device(ctx, &da) != 0 ||
		    dev_find_port(ctx, &da, addr, &port, &pa, &gi) != 0) {
			ibv_close_device(ctx);
			continue;
		}
		err = rdev_setup(ctx, &da, port, &pa, gi, cqe, out);
		if (err)
			ibv_close_device(ctx);
		break;
	}
	ibv_free_device_list(list);
	return err;
}

void ipcd_rdev_close(struct ipcd_rdev *d)
{
	struct ibv_context *ctx;

	if (!d)
		return;
	ctx = d->ctx;
	ibv_destroy_cq(d->cq);
	ibv_destroy_comp_channel(d->chan);
	ibv_dealloc_pd(d->pd);
	free((struct rdev_priv *)(void *)d);
	ibv_close_device(ctx);
}

static uint32_t random_psn(void)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		struct timespec ts;

		/* Not secret, only unlikely to match an old incarnation's. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		r = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid() * 2654435761u;
	}
	return r & 0xffffff;
}

struct ibv_qp *ipcd_rqp_create(struct ipcd_rdev *d, struct ibv_pd *pd, uint32_t max_send,
			       uint32_t max_recv, struct ipcd_rqp_info *self)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = d->cq,
		.recv_cq = d->cq,
		.cap = { .max_send_wr = max_send, .max_recv_wr = max_recv, .max_send_sge = 1,
			 .max_recv_sge = 1, .max_inline_data = d->max_inline },
		.qp_type = IBV_QPT_RC,
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT,
		.pkey_index = 0,
		.port_num = d->port,
		.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
	};
	struct ibv_qp *qp;
	int rc;

	qp = ibv_create_qp(pd ? pd : d->pd, &ia);
	if (!qp) {
		if (errno == 0)
			errno = EINVAL;
		return NULL;
	}
	rc = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
				   IBV_QP_ACCESS_FLAGS);
	if (rc) {
		int err = -verbs_err(rc);

		ibv_destroy_qp(qp);
		errno = err;
		return NULL;
	}
	memset(self, 0, sizeof(*self));
	self->qpn = htole32(qp->qp_num);
	self->psn = htole32(random_psn());
	memcpy(self->gid, d->gid, sizeof(self->gid));
	self->lid = htole16(d->lid);
	self->mtu = d->mtu;
	return qp;
}

int ipcd_rqp_connect(struct ipcd_rdev *d, struct ibv_qp *qp, const struct ipcd_rqp_info *self,
		     const struct ipcd_rqp_info *peer)
{
	const struct rdev_priv *p = (const struct rdev_priv *)(const void *)d;
	struct ibv_qp_attr a;
	int rc;

	if (peer->mtu < IBV_MTU_256 || peer->mtu > IBV_MTU_4096 || self->mtu < IBV_MTU_256 ||
	    self->mtu > IBV_MTU_4096)
		return -EINVAL;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = (enum ibv_mtu)IPCD_MIN(self->mtu, peer->mtu);
	a.dest_qp_num = le32toh(peer->qpn) & 0xffffff;
	a.rq_psn = le32toh(peer->psn) & 0xffffff;
	a.max_dest_rd_atomic = p->max_dest_rd_atomic;
	a.min_rnr_timer = 12;		/* 0.64 ms */
	a.ah_attr.is_global = 1;	/* RoCE routes by GID: always a GRH */
	memcpy(a.ah_attr.grh.dgid.raw, peer->gid, sizeof(peer->gid));
	a.ah_attr.grh.sgid_index = d->gid_index;
	a.ah_attr.grh.hop_limit = 64;
	a.ah_attr.dlid = le16toh(peer->lid);
	a.ah_attr.port_num = d->port;
	rc = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
				   IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
				   IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
	if (rc)
		return verbs_err(rc);

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;			/* 4.096 us * 2^14 = 67 ms per try */
	a.retry_cnt = 7;
	a.rnr_retry = 7;		/* 7: retry for ever while the peer has no RECV */
	a.sq_psn = le32toh(self->psn) & 0xffffff;
	a.max_rd_atomic = p->max_rd_atomic;
	rc = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
				   IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
	if (rc)
		return verbs_err(rc);
	return 0;
}

void ipcd_rqp_destroy(struct ibv_qp *qp)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };

	if (!qp)
		return;
	/* ERR first: its outstanding work requests complete as flushed. */
	ibv_modify_qp(qp, &a, IBV_QP_STATE);
	ibv_destroy_qp(qp);
}

struct ibv_mr *ipcd_rdev_reg(struct ipcd_rdev *d, struct ibv_pd *pd, void *addr, size_t len,
			     bool remote)
{
	int access = IBV_ACCESS_LOCAL_WRITE | (remote ? IBV_ACCESS_REMOTE_WRITE : 0);
	struct ibv_mr *mr;

	mr = ibv_reg_mr(pd ? pd : d->pd, addr, len, access);
	if (!mr && errno == 0)
		errno = EINVAL;
	return mr;
}

void ipcd_rdev_dereg(struct ibv_mr *mr)
{
	if (mr)
		ibv_dereg_mr(mr);
}

int ipcd_rdev_arm(struct ipcd_rdev *d)
{
	int rc = ibv_req_notify_cq(d->cq, 0);

	return rc ? verbs_err(rc) : 0;
}

int ipcd_rdev_take_event(struct ipcd_rdev *d)
{
	struct ibv_cq *cq;
	void *ctx;

	if (ibv_get_cq_event(d->chan, &cq, &ctx) != 0)
		return errno_or(EAGAIN);
	/* Acked at once: ibv_destroy_cq waits for every event to be acked. */
	ibv_ack_cq_events(cq, 1);
	return 0;
}

int ipcd_rdev_fd(const struct ipcd_rdev *d)
{
	return d->chan->fd;
}
