/* SPDX-License-Identifier: MIT */
/* bench_queues.c - cross-process latency and throughput of the SPSC and MPSC queues. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include <ipcd/atomic.h>
#include <ipcd/compiler.h>
#include <ipcd/mpsc.h>
#include <ipcd/spsc.h>
#include <ipcd/wait.h>

#include "bench_util.h"

#define NS_PER_S	1000000000ull
#define MAX_KIDS	8
#define CHECK_EVERY	1024u		/* spins between liveness and deadline checks */
#define GRACE_NS	(20 * NS_PER_S)	/* how far a phase may overrun its plan */
#define REAP_NS		(5 * NS_PER_S)	/* children must exit this soon after their work */

#define LAT_KINDS	4		/* floor, 2-line floor, SPSC 64 B, SPSC 8 B, by block */
#define LAT_BLOCK	2048u		/* round trips per block */
#define LAT_SKIP	48u		/* leading round trips of a block, not recorded */
#define LAT_REC		(LAT_BLOCK - LAT_SKIP)
#define PROBE_WARM	64u		/* floor probe before each throughput run */
#define PROBE_RT	2000u
#define PROBE_NS	(NS_PER_S / 50)	/* a probe stops early after this (busy machine) */
#define RTT_RING	(64u << 10)	/* data bytes of each latency ring */
#define RTT_MAX_MSG	64u
#define MAX_REPS	9
#define TPUT_RING	(1u << 20)	/* data bytes of the throughput ring */
#define MAX_BURST	32u
#define CONS_BUF	(512u << 10)	/* consumer's recv_burst / read buffer */
#define CONS_MAX_MSGS	64u
#define STREAM_READ	(64u << 10)
#define PATTERN		(64u << 10)	/* stream content repeats with this period */
#define MPSC_SLOTS	4096u
#define MPSC_SKIP_NS	1000000ull	/* consumer's stall budget before a skip */
#define MPSC_BURST	64u
#define MPSC_IDLE_SPINS	128u		/* empty polls before the consumer yields */

/* Shared between the parent and its children; reset before every phase. */
struct ctl {
	uint32_t ready;			/* W: children (fetch_add) once set up */
	uint32_t go;			/* W: parent. start */
	uint32_t stop;			/* W: parent. the timed window (or the phase) is over */
	uint32_t abort;			/* W: parent. it is giving up: exit quietly */
	uint64_t deadline_ns;		/* W: parent before fork. CLOCK_MONOTONIC */
	uint32_t done[MAX_KIDS];	/* W: child i, after its role returned */
	uint64_t sent[MAX_KIDS];	/* W: child i. messages, bytes or requests produced */
	uint64_t yields[MAX_KIDS];	/* W: child i. mpsc: yields on a full queue */
	uint64_t busy[MAX_KIDS];	/* W: child i. mpsc: -EBUSY from enqueue */
	uint64_t cpu_ns[MAX_KIDS];	/* W: child i. CPU time it got between go and stop */
	uint64_t line __ipcd_guard_aligned;	/* W: both. the floor's ping-pong counter */
	uint64_t ping __ipcd_guard_aligned;	/* W: parent. 2-line floor, parent -> peer */
	uint64_t pong __ipcd_guard_aligned;	/* W: peer. 2-line floor, peer -> parent */
	uint8_t pad[IPCD_CACHE_GUARD - 8];
};

struct opts {
	bool quick;
	const char *json;
	unsigned int lat_blocks;	/* recorded blocks of LAT_REC round trips per kind */
	uint64_t lat_ns;		/* latency phase stops early after this (busy machine) */
	uint64_t run_ns;		/* one throughput measurement */
	unsigned int reps;		/* throughput measurements per case */
};

struct range {
	double med, min, max;
};

struct lat {
	const char *name;
	uint32_t size;			/* message bytes; 0 for a floor */
	uint64_t n;
	double min, p50, p90, p99, p999, max;	/* ns, over all recorded round trips */
	struct range blk;		/* p50 of each block */
	double ratio;			/* median over blocks of p50 / the floor block's p50 */
};

struct tput_case {
	bool stream;
	uint32_t size;			/* message or write bytes */
	unsigned int burst;		/* messages per send_burst (message mode) */
};

struct tput {
	struct tput_case c;
	struct range msgs;		/* messages (or writes) per second */
	struct range mbs;		/* payload MB (1e6 bytes) per second */
	unsigned int runs;
	double run_msgs[MAX_REPS];	/* each run, in order */
	double run_floor[MAX_REPS];	/* floor probe p50 (ns) just before each run */
	double run_cpu[MAX_REPS];	/* share of the CPUs the run's processes got */
	struct range floor, cpu;
};

struct mres {
	unsigned int producers;
	struct range rps;		/* requests per second */
	uint64_t received, skipped, corrupt, yields, busy;
	unsigned int runs;
	double run_rps[MAX_REPS];
	double run_floor[MAX_REPS];
	double run_cpu[MAX_REPS];
	struct range floor, cpu;
};

/* Role arguments: read by a child after fork, so they may live on the parent's stack. */
struct lat_arg {
	unsigned int blocks;		/* all kinds, warm-up blocks included */
	void *ab, *ba;			/* ring memory: parent -> child, child -> parent */
};

/* Kind 1 is the floor of any two-ring design: each side writes one line, polls another. */
static const char *const lat_name[LAT_KINDS] = { "floor", "floor 2 lines", "64 B", "8 B" };
static const uint32_t lat_size[LAT_KINDS] = { 0, 0, 64, 8 };

struct tput_arg {
	struct tput_case c;
	void *mem;
};

static const struct tput_case tput_cases[] = {
	{ false, 8, 32 },
	{ false, 64, 32 },
	{ false, 512, 32 },
	{ false, 4096, 16 },
	{ false, 65536, 4 },
	{ true, 8, 1 },
	{ true, 65536, 1 },
};
#define N_TPUT	IPCD_ARRAY_SIZE(tput_cases)

static const unsigned int mpsc_producers[] = { 1, 2, 4, 8 };
#define N_MPSC	IPCD_ARRAY_SIZE(mpsc_producers)

static pid_t parent_pid;
static int kid_index = -1;		/* this process's child index; -1 in the parent */
static pid_t kids[MAX_KIDS];		/* > 0: running, -1: reaped */
static int nkids;
static struct ctl *ctl;
static const char *phase = "setup";
static cpu_set_t all_cpus;
static int cpu_a = -1, cpu_b = -1;	/* parent's and peer's CPU; -1: unpinned */
static bool single_cpu;
static bool use_tsc;
static double ticks_per_ns = 1.0;
static double floor_lo = 1e300, floor_hi;	/* every floor p50 seen in this run */
static double cpu_lo = 1.0;			/* lowest CPU share of any SPSC throughput run */

static void kill_kids(void)
{
	int i;

	if (kid_index >= 0)
		return;
	if (ctl)
		ipcd_store_release(&ctl->abort, 1);
	for (i = 0; i < nkids; i++) {
		if (kids[i] <= 0)
			continue;
		kill(kids[i], SIGKILL);
		while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
			;
		kids[i] = -1;
	}
	nkids = 0;
}

static __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "ipcd-bench-queues: %s: ", phase);
	if (kid_index >= 0)
		fprintf(stderr, "child %d (pid %d): ", kid_index, (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (kid_index >= 0)
		_exit(3);
	kill_kids();
	exit(1);
}

static void *xmalloc(size_t size)
{
	void *p = malloc(size);

	if (!p)
		die("out of memory (%zu bytes)", size);
	memset(p, 0, size);	/* fault the pages in before anything is timed */
	return p;
}

static void *map_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap(%zu): %s", size, strerror(errno));
	return p;
}

/* CPU time this process has used: other load on the machine shows up as a low share. */
static uint64_t cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned int aux;

	if (likely(use_tsc))
		return __rdtscp(&aux);
#endif
	return ipcd_now_ns();
}

/* ---- child processes ---------------------------------------------------- */

/* Reap children that exited. One that died, or quit before finishing its role, is fatal. */
static void poll_kids(void)
{
	char why[96];
	int i, st;

	for (i = 0; i < nkids; i++) {
		pid_t r;

		if (kids[i] <= 0)
			continue;
		r = waitpid(kids[i], &st, WNOHANG);
		if (r == 0)
			continue;
		if (r < 0)
			die("waitpid(%d): %s", (int)kids[i], strerror(errno));
		r = kids[i];
		kids[i] = -1;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && ipcd_load_acquire(&ctl->done[i]))
			continue;
		ipcd_bench_describe_status(st, why, sizeof(why));
		die("peer process %d %s before finishing", (int)r, why);
	}
}

/* Off the fast path: is the peer alive, is the phase overdue, should we give way? */
static void slow_check(void)
{
	if (kid_index >= 0) {
		if (getppid() != parent_pid)
			die("the parent process died");
		if (ipcd_load_acquire(&ctl->abort))
			_exit(3);
	} else {
		poll_kids();
	}
	if (ipcd_now_ns() > ctl->deadline_ns)
		die("timed out: the peer stopped making progress (or the machine is overloaded)");
	if (single_cpu)
		sched_yield();
}

/* One iteration of a busy wait. Every wait loop goes through here, so none is unbounded. */
static void spin(uint32_t *n)
{
	ipcd_cpu_relax();
	if (unlikely(++*n >= CHECK_EVERY)) {
		*n = 0;
		slow_check();
	}
}

static void pin_self(int cpu)
{
	cpu_set_t set;

	if (cpu < 0) {
		set = all_cpus;
	} else {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
	}
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity(cpu %d): %s", cpu, strerror(errno));
}

static void begin_phase(const char *name, uint64_t planned_ns)
{
	phase = name;
	memset(ctl, 0, sizeof(*ctl));
	ctl->deadline_ns = ipcd_now_ns() + planned_ns + GRACE_NS;
	nkids = 0;
}

/* Fork a child that runs @role(@arg) on @cpu (-1: any allowed CPU), then exits. */
static void spawn(int cpu, void (*role)(void *arg), void *arg)
{
	int idx = nkids;
	pid_t pid;

	if (idx >= MAX_KIDS)
		die("too many children");
	pid = ipcd_bench_fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		kid_index = idx;
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent_pid)
			_exit(3);
		pin_self(cpu);
		role(arg);
		ipcd_store_release(&ctl->done[idx], 1);
		_exit(0);
	}
	kids[nkids++] = pid;
}

/* Child: report ready, wait for the parent's go. Returns the CPU clock at the start. */
static uint64_t kid_wait_go(void)
{
	ipcd_fetch_add(&ctl->ready, 1);
	while (!ipcd_load_acquire(&ctl->go)) {
		sched_yield();
		slow_check();
	}
	return cpu_now();
}

/*
 * Share of the CPUs the phase's processes got: their CPU time (the parent's
 * since @cpu0) over @wall_ns times the CPUs they could use. 1.0 when nothing
 * else ran on the machine.
 */
static double cpu_share(uint64_t cpu0, uint64_t wall_ns)
{
	uint64_t used = cpu_now() - cpu0;
	int i, procs = 1 + nkids, cpus = single_cpu ? 1 : 2;

	for (i = 0; i < nkids; i++)
		used += ipcd_load_acquire(&ctl->cpu_ns[i]);
	return (double)used / ((double)wall_ns * IPCD_MIN(procs, cpus));
}

/* Parent: wait until every child is ready, then start them. */
static void parent_go(void)
{
	while (ipcd_load_acquire(&ctl->ready) != (uint32_t)nkids) {
		sched_yield();
		slow_check();
	}
	ipcd_store_release(&ctl->go, 1);
}

/* Parent: wait (bounded) for every child to finish its role and exit. */
static void end_phase(void)
{
	uint64_t until = ipcd_now_ns() + REAP_NS;
	struct timespec ts = { 0, 200000 };
	int i, left;

	for (;;) {
		poll_kids();
		for (i = 0, left = 0; i < nkids; i++)
			left += kids[i] > 0;
		if (!left)
			break;
		if (ipcd_now_ns() > until || ipcd_now_ns() > ctl->deadline_ns)
			die("%d child process(es) did not exit", left);
		nanosleep(&ts, NULL);
	}
	nkids = 0;
}

static bool kids_done(void)
{
	int i;

	for (i = 0; i < nkids; i++)
		if (!ipcd_load_acquire(&ctl->done[i]))
			return false;
	return true;
}

/* ---- statistics --------------------------------------------------------- */

static double pct(const uint32_t *s, size_t n, double p)
{
	size_t i = (size_t)(p * (double)n);

	return (double)s[i < n ? i : n - 1] / ticks_per_ns;
}

static void lat_stats(uint32_t *s, size_t n, struct lat *out)
{
	qsort(s, n, sizeof(*s), ipcd_bench_cmp_u32);
	out->n = n;
	out->min = (double)s[0] / ticks_per_ns;
	out->p50 = pct(s, n, 0.50);
	out->p90 = pct(s, n, 0.90);
	out->p99 = pct(s, n, 0.99);
	out->p999 = pct(s, n, 0.999);
	out->max = (double)s[n - 1] / ticks_per_ns;
}

static struct range range_of(double *v, unsigned int n)
{
	struct range r;

	qsort(v, n, sizeof(*v), ipcd_bench_cmp_dbl);
	r.min = v[0];
	r.max = v[n - 1];
	r.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return r;
}

static uint32_t clamp32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static void note_floor(double p50)
{
	floor_lo = IPCD_MIN(floor_lo, p50);
	floor_hi = IPCD_MAX(floor_hi, p50);
}

/* ---- 1 and 2. floor and SPSC round trip, interleaved block by block ----- */

static void attach_ring(struct ipcd_spsc *r, void *mem, uint32_t capacity)
{
	int rc = ipcd_spsc_attach(r, mem, ipcd_spsc_mem_size(capacity));

	if (rc)
		die("ipcd_spsc_attach: %s", strerror(-rc));
}

static void init_ring(void *mem, uint32_t capacity, uint32_t flags)
{
	int rc;

	memset(mem, 0, ipcd_spsc_mem_size(capacity));
	rc = ipcd_spsc_init(mem, capacity, 0, flags);
	if (rc)
		die("ipcd_spsc_init(capacity %u): %s", capacity, strerror(-rc));
}

/* Floor round trip @c: the parent makes the counter odd, the peer makes it even. */
static void floor_initiate(uint64_t c, uint32_t *n)
{
	ipcd_store_release(&ctl->line, 2 * c + 1);
	while (ipcd_load_acquire(&ctl->line) != 2 * c + 2)
		spin(n);
}

/* Peer waits end early when the parent stops the phase; checked only every CHECK_EVERY spins. */
static bool stopped(const uint32_t *n)
{
	return unlikely(*n == 0) && ipcd_load_acquire(&ctl->stop);
}

static bool floor_answer(uint64_t c, uint32_t *n)
{
	while (ipcd_load_acquire(&ctl->line) != 2 * c + 1) {
		spin(n);
		if (stopped(n))
			return false;
	}
	ipcd_store_release(&ctl->line, 2 * c + 2);
	return true;
}

static void floor2_initiate(uint64_t c, uint32_t *n)
{
	ipcd_store_release(&ctl->ping, c + 1);
	while (ipcd_load_acquire(&ctl->pong) != c + 1)
		spin(n);
}

static bool floor2_answer(uint64_t c, uint32_t *n)
{
	while (ipcd_load_acquire(&ctl->ping) != c + 1) {
		spin(n);
		if (stopped(n))
			return false;
	}
	ipcd_store_release(&ctl->pong, c + 1);
	return true;
}

/* SPSC round trip: @msg (carrying @seq) goes out on @ab and must come back on @ba. */
static void spsc_initiate(struct ipcd_spsc *ab, struct ipcd_spsc *ba, uint8_t *msg, uint32_t size,
			  uint64_t seq, uint32_t *n)
{
	uint64_t echo;
	ssize_t len;
	int rc;

	memcpy(msg, &seq, sizeof(seq));
	while ((rc = ipcd_spsc_send(ab, msg, size)) == -EAGAIN)
		spin(n);
	if (rc)
		die("ipcd_spsc_send: %s", strerror(-rc));
	while ((len = ipcd_spsc_recv(ba, msg, RTT_MAX_MSG)) == -EAGAIN)
		spin(n);
	if (len != (ssize_t)size)
		die("ipcd_spsc_recv returned %zd, expected %u", len, size);
	memcpy(&echo, msg, sizeof(echo));
	if (echo != seq)
		die("reply to message %" PRIu64 " carries %" PRIu64, seq, echo);
}

static bool spsc_answer(struct ipcd_spsc *ab, struct ipcd_spsc *ba, uint8_t *buf, uint32_t size,
			uint32_t *n)
{
	ssize_t len;
	int rc;

	while ((len = ipcd_spsc_recv(ab, buf, RTT_MAX_MSG)) == -EAGAIN) {
		spin(n);
		if (stopped(n))
			return false;
	}
	if (len != (ssize_t)size)
		die("ipcd_spsc_recv returned %zd, expected %u", len, size);
	while ((rc = ipcd_spsc_send(ba, buf, size)) == -EAGAIN)
		spin(n);
	if (rc)
		die("ipcd_spsc_send: %s", strerror(-rc));
	return true;
}

static void lat_peer(void *arg)
{
	const struct lat_arg *a = arg;
	uint8_t buf[RTT_MAX_MSG];
	struct ipcd_spsc ab, ba;
	uint64_t c = 0, c2 = 0;
	unsigned int b, j;
	uint32_t n = 0;

	attach_ring(&ab, a->ab, RTT_RING);
	attach_ring(&ba, a->ba, RTT_RING);
	kid_wait_go();
	for (b = 0; b < a->blocks; b++) {
		unsigned int kind = b % LAT_KINDS;

		for (j = 0; j < LAT_BLOCK; j++) {
			bool ok;

			if (lat_size[kind])
				ok = spsc_answer(&ab, &ba, buf, lat_size[kind], &n);
			else if (kind == 1)
				ok = floor2_answer(c2++, &n);
			else
				ok = floor_answer(c++, &n);
			if (!ok)
				return;
		}
	}
}

static double median_of(double *v, unsigned int n)
{
	return range_of(v, n).med;
}

/*
 * The host may move the two vCPUs closer or further apart at any moment, which
 * changes every cross-core figure several times over. So the four kinds run
 * alternately, LAT_BLOCK round trips at a time, with one peer, and the ratio to
 * the floor is taken per block (each block against the floor block just before
 * it); its median is what the target is checked against.
 */
static void run_latency(const struct opts *o, void *ab_mem, void *ba_mem, uint32_t **samples,
			struct lat *out)
{
	struct lat_arg a = { (o->lat_blocks + 1) * LAT_KINDS, ab_mem, ba_mem };
	uint32_t *tmp = xmalloc(LAT_REC * sizeof(*tmp)), n = 0;
	double *bp50[LAT_KINDS], *ratio = xmalloc(o->lat_blocks * sizeof(*ratio));
	uint64_t c = 0, c2 = 0, seq = 0, t, now, until;
	uint8_t msg[RTT_MAX_MSG] = { 0 };
	unsigned int b, j, k, kind, nb;
	struct ipcd_spsc ab, ba;

	begin_phase("latency", 0);
	init_ring(ab_mem, RTT_RING, 0);
	init_ring(ba_mem, RTT_RING, 0);
	attach_ring(&ab, ab_mem, RTT_RING);
	attach_ring(&ba, ba_mem, RTT_RING);
	spawn(cpu_b, lat_peer, &a);
	parent_go();
	until = ipcd_now_ns() + o->lat_ns;
	for (b = 0; b < a.blocks; b++) {
		unsigned int blk = b / LAT_KINDS;	/* block 0 of each kind is warm-up */

		/* Over budget (busy machine): stop after a whole recorded cycle of kinds. */
		if (b % LAT_KINDS == 0 && blk >= 2 && ipcd_now_ns() > until)
			break;
		uint32_t size = lat_size[b % LAT_KINDS];
		uint32_t *s = samples[b % LAT_KINDS];

		t = ticks();
		for (j = 0; j < LAT_BLOCK; j++) {
			if (size)
				spsc_initiate(&ab, &ba, msg, size, seq++, &n);
			else if (b % LAT_KINDS == 1)
				floor2_initiate(c2++, &n);
			else
				floor_initiate(c++, &n);
			now = ticks();
			if (blk && j >= LAT_SKIP)
				s[(size_t)(blk - 1) * LAT_REC + j - LAT_SKIP] = clamp32(now - t);
			t = now;
		}
	}
	ipcd_store_release(&ctl->stop, 1);
	end_phase();

	nb = b / LAT_KINDS - 1;		/* recorded blocks per kind */
	for (kind = 0; kind < LAT_KINDS; kind++) {
		bp50[kind] = xmalloc(nb * sizeof(double));
		for (k = 0; k < nb; k++) {
			memcpy(tmp, samples[kind] + (size_t)k * LAT_REC, LAT_REC * sizeof(*tmp));
			qsort(tmp, LAT_REC, sizeof(*tmp), ipcd_bench_cmp_u32);
			bp50[kind][k] = (double)tmp[LAT_REC / 2] / ticks_per_ns;
		}
		lat_stats(samples[kind], (size_t)nb * LAT_REC, &out[kind]);
		out[kind].size = lat_size[kind];
		out[kind].name = lat_name[kind];
		for (k = 0; k < nb; k++)
			ratio[k] = bp50[kind][k] / bp50[0][k];
		out[kind].ratio = median_of(ratio, nb);
		out[kind].blk = range_of(bp50[kind], nb);
	}
	note_floor(out[0].blk.min);
	note_floor(out[0].blk.max);
	for (kind = 0; kind < LAT_KINDS; kind++)
		free(bp50[kind]);
	free(ratio);
	free(tmp);
}

/* A short floor measurement (pinned like the throughput peers) taken before each run. */
static void probe_peer(void *arg)
{
	const unsigned int *total = arg;
	uint32_t n = 0;
	uint64_t c;

	kid_wait_go();
	for (c = 0; c < *total; c++)
		if (!floor_answer(c, &n))
			return;
}

static double probe_floor(void)
{
	static uint32_t s[PROBE_RT];
	unsigned int total = PROBE_WARM + PROBE_RT;
	uint64_t c, t, now, until;
	uint32_t n = 0;
	double p50;

	begin_phase("floor probe", 0);
	spawn(cpu_b, probe_peer, &total);
	parent_go();
	until = ipcd_now_ns() + PROBE_NS;
	t = ticks();
	for (c = 0; c < total; c++) {
		if (c % 64 == 0 && c >= PROBE_WARM + 64 && ipcd_now_ns() > until)
			break;
		floor_initiate(c, &n);
		now = ticks();
		if (c >= PROBE_WARM)
			s[c - PROBE_WARM] = clamp32(now - t);
		t = now;
	}
	ipcd_store_release(&ctl->stop, 1);
	end_phase();
	total = (unsigned int)c - PROBE_WARM;
	qsort(s, total, sizeof(*s), ipcd_bench_cmp_u32);
	p50 = (double)s[total / 2] / ticks_per_ns;
	note_floor(p50);
	return p50;
}

/* ---- 3. SPSC one-way throughput ----------------------------------------- */

/* Stream content is a function of the byte offset, so the consumer can spot-check it. */
static uint8_t pattern_byte(uint64_t off)
{
	uint32_t o = (uint32_t)(off & (PATTERN - 1));

	return (uint8_t)(o ^ (o >> 8) * 7);
}

static void msg_producer(void *arg)
{
	const struct tput_arg *a = arg;
	struct iovec iov[MAX_BURST];
	unsigned int burst = a->c.burst, j, off;
	uint32_t size = a->c.size, n = 0;
	uint64_t seq = 0, cpu0;
	struct ipcd_spsc r;
	uint8_t *buf;
	int k;

	attach_ring(&r, a->mem, TPUT_RING);
	buf = xmalloc((size_t)burst * size);
	for (j = 0; j < burst; j++) {
		iov[j].iov_base = buf + (size_t)j * size;
		iov[j].iov_len = size;
	}
	cpu0 = kid_wait_go();
	while (!ipcd_load_relaxed(&ctl->stop)) {
		for (j = 0; j < burst; j++) {
			uint64_t v = seq + j;

			memcpy(buf + (size_t)j * size, &v, sizeof(v));
		}
		for (off = 0; off < burst;) {
			k = ipcd_spsc_send_burst(&r, iov + off, burst - off);
			if (k > 0) {
				off += (unsigned int)k;
				continue;
			}
			if (k < 0)
				die("ipcd_spsc_send_burst: %s", strerror(-k));
			if (ipcd_load_relaxed(&ctl->stop))
				break;
			spin(&n);
		}
		seq += off;
	}
	ipcd_store_relaxed(&ctl->cpu_ns[kid_index], cpu_now() - cpu0);
	ipcd_store_release(&ctl->sent[kid_index], seq);
	ipcd_spsc_close_prod(&r);
	free(buf);
}

static void stream_producer(void *arg)
{
	const struct tput_arg *a = arg;
	uint32_t size = a->c.size, n = 0;
	uint64_t off = 0, i, cpu0;
	struct ipcd_spsc r;
	uint8_t *pat;
	ssize_t w;

	attach_ring(&r, a->mem, TPUT_RING);
	pat = xmalloc(PATTERN + (size_t)size);
	for (i = 0; i < PATTERN + (uint64_t)size; i++)
		pat[i] = pattern_byte(i);
	cpu0 = kid_wait_go();
	while (!ipcd_load_relaxed(&ctl->stop)) {
		w = ipcd_spsc_write(&r, pat + (off & (PATTERN - 1)), size);
		if (w > 0)
			off += (uint64_t)w;
		else if (w == -EAGAIN)
			spin(&n);
		else
			die("ipcd_spsc_write: %s", strerror((int)-w));
	}
	ipcd_store_relaxed(&ctl->cpu_ns[kid_index], cpu_now() - cpu0);
	ipcd_store_release(&ctl->sent[kid_index], off);
	ipcd_spsc_close_prod(&r);
	free(pat);
}

/* Each message carries its sequence number in its first 8 bytes. */
static void check_msgs(const uint8_t *buf, const uint32_t *lens, unsigned int k, uint32_t size,
		       uint64_t *expect)
{
	size_t off = 0;
	unsigned int i;
	uint64_t v;

	for (i = 0; i < k; i++) {
		if (lens[i] != size)
			die("message %" PRIu64 " is %u bytes, expected %u", *expect, lens[i], size);
		memcpy(&v, buf + off, sizeof(v));
		if (v != *expect)
			die("message out of order: got %" PRIu64 ", expected %" PRIu64, v, *expect);
		++*expect;
		off += IPCD_ALIGN_UP(size, IPCD_REC_ALIGN);
	}
}

static void check_stream(const uint8_t *buf, size_t len, uint64_t off)
{
	if (buf[0] != pattern_byte(off) || buf[len - 1] != pattern_byte(off + len - 1))
		die("stream corrupted near byte %" PRIu64, off);
}

/*
 * Take what is ready; in stream mode returns bytes, in message mode messages.
 * 0: nothing now; -1: end of stream (producer closed and ring drained).
 */
static int64_t consume(struct ipcd_spsc *r, const struct tput_case *c, uint8_t *buf,
		       uint32_t *lens, unsigned int nmax, uint64_t *pos)
{
	ssize_t len;
	int k;

	if (c->stream) {
		len = ipcd_spsc_read(r, buf, STREAM_READ, 0);
		if (len > 0) {
			check_stream(buf, (size_t)len, *pos);
			*pos += (uint64_t)len;
			return len;
		}
		if (len == 0)
			return -1;
		if (len != -EAGAIN)
			die("ipcd_spsc_read: %s", strerror((int)-len));
		return 0;
	}
	k = ipcd_spsc_recv_burst(r, buf, CONS_BUF, lens, nmax);
	if (k > 0) {
		check_msgs(buf, lens, (unsigned int)k, c->size, pos);
		return k;
	}
	if (k < 0)
		die("ipcd_spsc_recv_burst: %s", strerror(-k));
	/* recv_burst has no end-of-stream result; recv reports it as -EPIPE. */
	len = ipcd_spsc_recv(r, buf, CONS_BUF);
	if (len == -EPIPE)
		return -1;
	if (len == -EAGAIN)
		return 0;
	if (len < 0)
		die("ipcd_spsc_recv: %s", strerror((int)-len));
	lens[0] = (uint32_t)len;
	check_msgs(buf, lens, 1, c->size, pos);
	return 1;
}

/* One measurement; returns the rate in units (messages or bytes) per second. */
static double tput_once(const struct opts *o, const struct tput_case *c, void *mem,
			uint8_t *buf, uint32_t *lens, double *share)
{
	struct tput_arg a = { *c, mem };
	unsigned int nmax = IPCD_MIN(CONS_MAX_MSGS, CONS_BUF / IPCD_ALIGN_UP(c->size, 8u));
	uint64_t units = 0, total, pos = 0, t0, t1, end, it, cpu0;
	struct ipcd_spsc r;
	uint32_t n = 0;
	int64_t got;

	init_ring(mem, TPUT_RING, c->stream ? IPCD_SPSC_F_STREAM : 0);
	attach_ring(&r, mem, TPUT_RING);
	spawn(cpu_b, c->stream ? stream_producer : msg_producer, &a);
	parent_go();
	cpu0 = cpu_now();
	t0 = ipcd_now_ns();
	end = t0 + o->run_ns;
	for (it = 0;; it++) {
		got = consume(&r, c, buf, lens, nmax, &pos);
		if (got > 0)
			units += (uint64_t)got;
		else if (got < 0)
			die("end of stream before the run ended");
		else
			spin(&n);
		if ((it & 15) == 0 && ipcd_now_ns() >= end)
			break;
	}
	t1 = ipcd_now_ns();
	ipcd_store_release(&ctl->stop, 1);
	/* Drain to the producer's close so the totals can be checked. */
	total = units;
	while ((got = consume(&r, c, buf, lens, nmax, &pos)) >= 0) {
		if (got)
			total += (uint64_t)got;
		else
			spin(&n);
	}
	end_phase();
	*share = cpu_share(cpu0, t1 - t0);
	if (total != ctl->sent[0])
		die("produced %" PRIu64 " %s, consumed %" PRIu64, ctl->sent[0],
		    c->stream ? "bytes" : "messages", total);
	return (double)units * 1e9 / (double)(t1 - t0);
}

static void run_tput(const struct opts *o, const struct tput_case *c, void *mem, uint8_t *buf,
		     uint32_t *lens, struct tput *out)
{
	double rate, msgs[MAX_REPS], mbs[MAX_REPS], fl[MAX_REPS];
	unsigned int i;

	for (i = 0; i < o->reps; i++) {
		out->run_floor[i] = fl[i] = probe_floor();
		begin_phase(c->stream ? "spsc stream throughput" : "spsc message throughput",
			    o->run_ns);
		rate = tput_once(o, c, mem, buf, lens, &out->run_cpu[i]);
		cpu_lo = IPCD_MIN(cpu_lo, out->run_cpu[i]);
		msgs[i] = c->stream ? rate / c->size : rate;
		mbs[i] = (c->stream ? rate : rate * c->size) / 1e6;
		out->run_msgs[i] = msgs[i];
	}
	out->c = *c;
	out->runs = o->reps;
	out->msgs = range_of(msgs, o->reps);
	out->mbs = range_of(mbs, o->reps);
	out->floor = range_of(fl, o->reps);
	memcpy(fl, out->run_cpu, sizeof(fl));
	out->cpu = range_of(fl, o->reps);
}

/* ---- 4. MPSC: N producer processes, one consumer ------------------------ */

static void mpsc_producer(void *arg)
{
	uint32_t id = (uint32_t)kid_index, seq = 0, fails = 0;
	uint64_t sent = 0, yields = 0, busy = 0, cpu0;
	struct ipcd_mpsc q;
	int rc;

	rc = ipcd_mpsc_attach(&q, arg, ipcd_mpsc_mem_size(MPSC_SLOTS), 0);
	if (rc)
		die("ipcd_mpsc_attach: %s", strerror(-rc));
	cpu0 = kid_wait_go();
	while (!ipcd_load_relaxed(&ctl->stop)) {
		rc = ipcd_mpsc_enqueue(&q, id << 24 | (seq & 0xffffff));
		if (likely(rc == 0)) {
			seq++;
			if (unlikely(++sent % 65536 == 0))
				slow_check();
			continue;
		}
		if (rc == -EAGAIN)
			yields++;
		else if (rc == -EBUSY)
			busy++;
		else
			die("ipcd_mpsc_enqueue: %s", strerror(-rc));
		sched_yield();
		if (++fails % 256 == 0)
			slow_check();
	}
	ipcd_store_relaxed(&ctl->cpu_ns[kid_index], cpu_now() - cpu0);
	ipcd_store_relaxed(&ctl->yields[kid_index], yields);
	ipcd_store_relaxed(&ctl->busy[kid_index], busy);
	ipcd_store_release(&ctl->sent[kid_index], sent);
}

/* Payload: producer id in the top 8 bits, its own sequence in the low 24. */
static void check_reqs(const uint32_t *v, unsigned int k, unsigned int nprod, uint32_t *next)
{
	unsigned int i;

	for (i = 0; i < k; i++) {
		uint32_t id = v[i] >> 24, seq = v[i] & 0xffffff;

		if (id >= nprod)
			die("request 0x%08x names producer %u of %u", v[i], id, nprod);
		if (seq != next[id])
			die("producer %u: request %u arrived, expected %u", id, seq, next[id]);
		next[id] = (seq + 1) & 0xffffff;
	}
}

static double mpsc_once(const struct opts *o, unsigned int nprod, void *mem, struct mres *acc,
			double *share)
{
	uint64_t count = 0, total, sent = 0, t0, t1, end, it, cpu0;
	uint32_t out[MPSC_BURST], next[MAX_KIDS] = { 0 }, idle = 0, n = 0;
	struct ipcd_mpsc q;
	unsigned int i, k;
	int rc;

	memset(mem, 0, ipcd_mpsc_mem_size(MPSC_SLOTS));
	rc = ipcd_mpsc_init(mem, MPSC_SLOTS);
	if (!rc)
		rc = ipcd_mpsc_attach(&q, mem, ipcd_mpsc_mem_size(MPSC_SLOTS), MPSC_SKIP_NS);
	if (rc)
		die("ipcd_mpsc_init/attach: %s", strerror(-rc));
	for (i = 0; i < nprod; i++)
		spawn(-1, mpsc_producer, mem);
	parent_go();
	cpu0 = cpu_now();
	t0 = ipcd_now_ns();
	end = t0 + o->run_ns;
	for (it = 0;; it++) {
		k = ipcd_mpsc_dequeue_burst(&q, out, MPSC_BURST, 0);
		if (k) {
			check_reqs(out, k, nprod, next);
			count += k;
			idle = 0;
		} else if (++idle < MPSC_IDLE_SPINS) {
			ipcd_cpu_relax();
		} else {
			idle = 0;
			sched_yield();
		}
		if ((it & 15) == 0 && ipcd_now_ns() >= end)
			break;
	}
	t1 = ipcd_now_ns();
	ipcd_store_release(&ctl->stop, 1);
	total = count;
	for (;;) {
		k = ipcd_mpsc_dequeue_burst(&q, out, MPSC_BURST, 0);
		if (k) {
			check_reqs(out, k, nprod, next);
			total += k;
			continue;
		}
		if (kids_done() && ipcd_mpsc_depth(&q) == 0)
			break;
		sched_yield();
		spin(&n);
	}
	end_phase();
	*share = cpu_share(cpu0, t1 - t0);
	for (i = 0; i < nprod; i++) {
		sent += ctl->sent[i];
		acc->yields += ctl->yields[i];
		acc->busy += ctl->busy[i];
	}
	if (sent != total)
		die("%u producers enqueued %" PRIu64 " requests, consumer took %" PRIu64, nprod,
		    sent, total);
	acc->received += total;
	acc->skipped += q.skipped;
	acc->corrupt += q.corrupt;
	return (double)count * 1e9 / (double)(t1 - t0);
}

static void run_mpsc(const struct opts *o, unsigned int nprod, void *mem, struct mres *out)
{
	double rate[MAX_REPS], fl[MAX_REPS];
	unsigned int i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < o->reps; i++) {
		out->run_floor[i] = fl[i] = probe_floor();
		begin_phase("mpsc throughput", o->run_ns);
		out->run_rps[i] = rate[i] = mpsc_once(o, nprod, mem, out, &out->run_cpu[i]);
	}
	out->producers = nprod;
	out->runs = o->reps;
	out->rps = range_of(rate, o->reps);
	out->floor = range_of(fl, o->reps);
	memcpy(fl, out->run_cpu, sizeof(fl));
	out->cpu = range_of(fl, o->reps);
}

/* ---- environment -------------------------------------------------------- */

struct env {
	char date[32];
	char loadavg[64];
	char cpu_model[128];
	char kernel[160];
	long online;
	int allowed;
	char topology[64];
	double timer_ns;		/* cost of one timestamp, included in each sample */
	double timer_res_ns;		/* smallest step of the timestamp counter */
};

static void read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	snprintf(buf, len, "unknown");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

static void cpu_topology(char *buf, size_t len)
{
	char path[96], core_a[32], core_b[32], pkg_a[32], pkg_b[32];

	if (cpu_a < 0) {
		snprintf(buf, len, "unpinned");
		return;
	}
	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu_a);
	read_line(path, core_a, sizeof(core_a));
	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu_b);
	read_line(path, core_b, sizeof(core_b));
	snprintf(path, sizeof(path),
		 "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu_a);
	read_line(path, pkg_a, sizeof(pkg_a));
	snprintf(path, sizeof(path),
		 "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu_b);
	read_line(path, pkg_b, sizeof(pkg_b));
	if (!strcmp(core_a, "unknown") || !strcmp(core_b, "unknown"))
		snprintf(buf, len, "topology unknown");
	else if (strcmp(pkg_a, pkg_b))
		snprintf(buf, len, "different sockets");
	else if (!strcmp(core_a, core_b))
		snprintf(buf, len, "same core (SMT siblings)");
	else
		snprintf(buf, len, "different cores");
}

static void setup_cpus(void)
{
	int cpu;

	if (sched_getaffinity(0, sizeof(all_cpus), &all_cpus))
		die("sched_getaffinity: %s", strerror(errno));
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &all_cpus))
			continue;
		if (cpu_a < 0)
			cpu_a = cpu;
		else if (cpu_b < 0)
			cpu_b = cpu;
	}
	if (cpu_b < 0) {
		single_cpu = true;
		cpu_a = cpu_b = -1;
		return;
	}
	pin_self(cpu_a);
}

/* Calibrate the TSC against CLOCK_MONOTONIC and measure the cost of one timestamp. */
static void calibrate(uint64_t ns, struct env *e)
{
	uint64_t t0, t1, c0, c1, best = UINT64_MAX;
	char flags[4096];
	int i;

#if defined(__x86_64__) || defined(__i386__)
	use_tsc = ipcd_bench_cpuinfo("flags", flags, sizeof(flags)) &&
		  strstr(flags, " constant_tsc") && strstr(flags, " nonstop_tsc") &&
		  strstr(flags, " rdtscp");
#else
	(void)flags;
#endif
	if (use_tsc) {
		t0 = ipcd_now_ns();
		c0 = ticks();
		do
			t1 = ipcd_now_ns();
		while (t1 - t0 < ns);
		c1 = ticks();
		ticks_per_ns = (double)(c1 - c0) / (double)(t1 - t0);
	}
	/* Resolution: the smallest step the counter makes; cost: the mean of back-to-back reads. */
	c0 = ticks();
	for (i = 0; i < 10000; i++) {
		t0 = ticks();
		t1 = ticks();
		if (t1 != t0 && t1 - t0 < best)
			best = t1 - t0;
	}
	c1 = ticks();
	e->timer_res_ns = (double)best / ticks_per_ns;
	e->timer_ns = (double)(c1 - c0) / 20000 / ticks_per_ns;
}

static void collect_env(struct env *e)
{
	struct utsname u;
	struct tm tm;
	time_t now = time(NULL);

	gmtime_r(&now, &tm);
	strftime(e->date, sizeof(e->date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	read_line("/proc/loadavg", e->loadavg, sizeof(e->loadavg));
	if (!ipcd_bench_cpuinfo("model name", e->cpu_model, sizeof(e->cpu_model)))
		snprintf(e->cpu_model, sizeof(e->cpu_model), "unknown");
	if (uname(&u) == 0)
		snprintf(e->kernel, sizeof(e->kernel), "%s %s", u.sysname, u.release);
	else
		snprintf(e->kernel, sizeof(e->kernel), "unknown");
	e->online = sysconf(_SC_NPROCESSORS_ONLN);
	e->allowed = CPU_COUNT(&all_cpus);
	cpu_topology(e->topology, sizeof(e->topology));
}

/* ---- output ------------------------------------------------------------- */

struct results {
	struct env env;
	struct lat lat[LAT_KINDS];	/* floor, 2-line floor, SPSC 64 B, SPSC 8 B */
	struct tput tp[N_TPUT];
	struct mres mp[N_MPSC];
	double elapsed_s;
};

struct target {
	const char *name;
	const char *unit;
	double value, limit;
	bool pass;
};

static const char *size_str(uint32_t size, char *buf, size_t len)
{
	if (size >= 1024 && size % 1024 == 0)
		snprintf(buf, len, "%u KiB", size / 1024);
	else
		snprintf(buf, len, "%u B", size);
	return buf;
}

static void print_lat_row(const struct lat *l, bool ratio)
{
	printf("%-13s %6.0f %6.0f %6.0f %6.0f %7.0f %8.0f   %5.0f .. %-5.0f", l->name,
	       l->min, l->p50, l->p90, l->p99, l->p999, l->max, l->blk.min, l->blk.max);
	if (ratio)
		printf("  %5.2fx", l->ratio);
	printf("\n");
}

static void print_tput_row(const struct tput *t)
{
	char sz[16];

	printf("%-7s %6s %5u  %6.2f [%6.2f .. %6.2f]  %6.0f [%6.0f .. %6.0f]  %4.0f .. %-4.0f"
	       " %4.0f\n", t->c.stream ? "stream" : "message", size_str(t->c.size, sz, sizeof(sz)),
	       t->c.burst, t->msgs.med / 1e6, t->msgs.min / 1e6, t->msgs.max / 1e6, t->mbs.med,
	       t->mbs.min, t->mbs.max, t->floor.min, t->floor.max, t->cpu.min * 100);
	fflush(stdout);
}

static void print_mpsc_row(const struct mres *m)
{
	printf("%9u  %6.2f [%6.2f .. %6.2f]  %7" PRIu64 " %7" PRIu64 " %9" PRIu64 " %5" PRIu64
	       "  %4.0f .. %-4.0f %4.0f\n", m->producers, m->rps.med / 1e6, m->rps.min / 1e6,
	       m->rps.max / 1e6, m->skipped, m->corrupt, m->yields, m->busy, m->floor.min,
	       m->floor.max, m->cpu.min * 100);
	fflush(stdout);
}

static void json_range(FILE *f, const char *name, const struct range *r)
{
	fprintf(f, "\"%s\": {\"median\": %.1f, \"min\": %.1f, \"max\": %.1f}", name, r->med,
		r->min, r->max);
}

static void json_lat(FILE *f, const struct lat *l)
{
	fprintf(f, "\"round_trips\": %" PRIu64 ", \"min_ns\": %.1f, \"p50_ns\": %.1f, "
		"\"p90_ns\": %.1f, \"p99_ns\": %.1f, \"p999_ns\": %.1f, \"max_ns\": %.1f, ",
		l->n, l->min, l->p50, l->p90, l->p99, l->p999, l->max);
	json_range(f, "block_p50_ns", &l->blk);
}

static void json_runs(FILE *f, const char *what, const double *v, const double *fl,
		      const double *cpu, unsigned int n)
{
	unsigned int i;

	fprintf(f, "\"runs\": [");
	for (i = 0; i < n; i++)
		fprintf(f, "{\"%s\": %.1f, \"floor_p50_ns\": %.1f, \"cpu_share\": %.3f}%s",
			what, v[i], fl[i], cpu[i], i + 1 < n ? ", " : "");
	fprintf(f, "]");
}

static void write_json(const char *path, const struct opts *o, const struct results *r,
		       const struct target *t, unsigned int nt)
{
	const struct env *e = &r->env;
	unsigned int i;
	FILE *f = fopen(path, "w");

	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	fprintf(f, "{\n  \"benchmark\": \"ipcd-bench-queues\",\n  \"meta\": {\"date\": ");
	ipcd_bench_json_str(f, e->date);
	fprintf(f, ", \"loadavg\": ");
	ipcd_bench_json_str(f, e->loadavg);
	fprintf(f, ", \"cpu_model\": ");
	ipcd_bench_json_str(f, e->cpu_model);
	fprintf(f, ", \"kernel\": ");
	ipcd_bench_json_str(f, e->kernel);
	fprintf(f, ",\n    \"nproc_online\": %ld, \"nproc_allowed\": %d, \"pinned\": %s, "
		"\"cpu_a\": %d, \"cpu_b\": %d, \"topology\": ", e->online, e->allowed,
		single_cpu ? "false" : "true", cpu_a, cpu_b);
	ipcd_bench_json_str(f, e->topology);
	fprintf(f, ",\n    \"clock\": \"%s\", \"ticks_per_ns\": %.4f, "
		"\"timer_resolution_ns\": %.1f, \"timer_overhead_ns\": %.1f, "
		"\"quick\": %s, \"runs\": %u, \"run_s\": %.3f, \"elapsed_s\": %.1f,\n"
		"    \"floor_seen_ns\": {\"min\": %.1f, \"max\": %.1f}, "
		"\"cpu_share_min\": %.3f},\n",
		use_tsc ? "rdtscp" : "clock_gettime", ticks_per_ns, e->timer_res_ns, e->timer_ns,
		o->quick ? "true" : "false", o->reps, (double)o->run_ns / 1e9, r->elapsed_s,
		floor_lo, floor_hi, cpu_lo);

	fprintf(f, "  \"floor\": {\"block_round_trips\": %u, ", LAT_REC);
	json_lat(f, &r->lat[0]);
	fprintf(f, "},\n  \"floor_two_lines\": {");
	json_lat(f, &r->lat[1]);
	fprintf(f, ", \"p50_over_floor\": %.3f},\n  \"spsc_rtt\": [\n", r->lat[1].ratio);
	for (i = 2; i < LAT_KINDS; i++) {
		const struct lat *l = &r->lat[i];

		fprintf(f, "    {\"msg_bytes\": %u, \"ring_bytes\": %u, ", l->size, RTT_RING);
		json_lat(f, l);
		fprintf(f, ", \"p50_over_floor\": %.3f, \"p50_over_floor_overall\": %.3f}%s\n",
			l->ratio, l->p50 / r->lat[0].p50, i + 1 < LAT_KINDS ? "," : "");
	}
	fprintf(f, "  ],\n  \"spsc_throughput\": [\n");
	for (i = 0; i < N_TPUT; i++) {
		const struct tput *p = &r->tp[i];

		fprintf(f, "    {\"mode\": \"%s\", \"msg_bytes\": %u, \"burst\": %u, "
			"\"ring_bytes\": %u, ", p->c.stream ? "stream" : "message", p->c.size,
			p->c.burst, TPUT_RING);
		json_range(f, "msgs_per_s", &p->msgs);
		fprintf(f, ", ");
		json_range(f, "mb_per_s", &p->mbs);
		fprintf(f, ", ");
		json_range(f, "floor_p50_ns", &p->floor);
		fprintf(f, ",\n      ");
		json_runs(f, "msgs_per_s", p->run_msgs, p->run_floor, p->run_cpu, p->runs);
		fprintf(f, "}%s\n", i + 1 < N_TPUT ? "," : "");
	}
	fprintf(f, "  ],\n  \"mpsc_throughput\": [\n");
	for (i = 0; i < N_MPSC; i++) {
		const struct mres *m = &r->mp[i];

		fprintf(f, "    {\"producers\": %u, \"slots\": %u, \"skip_ns\": %llu, ",
			m->producers, MPSC_SLOTS, MPSC_SKIP_NS);
		json_range(f, "req_per_s", &m->rps);
		fprintf(f, ", \"received\": %" PRIu64 ", \"skipped\": %" PRIu64 ", \"corrupt\": %"
			PRIu64 ", \"full_yields\": %" PRIu64 ", \"ebusy\": %" PRIu64 ", ",
			m->received, m->skipped, m->corrupt, m->yields, m->busy);
		json_range(f, "floor_p50_ns", &m->floor);
		fprintf(f, ",\n      ");
		json_runs(f, "req_per_s", m->run_rps, m->run_floor, m->run_cpu, m->runs);
		fprintf(f, "}%s\n", i + 1 < N_MPSC ? "," : "");
	}
	fprintf(f, "  ],\n  \"targets\": [\n");
	for (i = 0; i < nt; i++) {
		fprintf(f, "    {\"name\": ");
		ipcd_bench_json_str(f, t[i].name);
		fprintf(f, ", \"value\": %.3f, \"limit\": %.3f, \"unit\": \"%s\", ", t[i].value,
			t[i].limit, t[i].unit);
		fprintf(f, "\"pass\": %s}%s\n", t[i].pass ? "true" : "false",
			i + 1 < nt ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	if (fclose(f))
		die("cannot write %s: %s", path, strerror(errno));
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ipcd-bench-queues [--quick] [--json FILE]\n"
		"\n"
		"Measures the IPC-Direct queues between processes over shared memory:\n"
		"cache-line ping-pong floor, SPSC round trip, SPSC throughput and MPSC\n"
		"throughput. Prints a table on stdout and writes every figure as JSON.\n"
		"\n"
		"  --quick      short runs for CI smoke use (whole run under 10 s)\n"
		"  --json FILE  where to write the JSON (default: bench-queues.json)\n"
		"  --help       this text\n"
		"\n"
		"Targets are informational: the exit status is 0 unless something failed.\n");
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->json = "bench-queues.json";
	while ((c = getopt_long(argc, argv, "qj:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			o->quick = true;
			break;
		case 'j':
			o->json = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	if (o->quick) {
		o->lat_blocks = 25;
		o->lat_ns = 3 * NS_PER_S / 2;
		o->run_ns = NS_PER_S / 10;
		o->reps = 3;
	} else {
		o->lat_blocks = 100;
		o->lat_ns = 5 * NS_PER_S;
		o->run_ns = NS_PER_S / 2;
		o->reps = 5;
	}
}

int main(int argc, char **argv)
{
	static struct results r;
	struct opts o = { 0 };
	struct target t[3];
	void *ab_mem, *ba_mem, *tput_mem, *mpsc_mem;
	uint64_t start = ipcd_now_ns();
	const struct env *e = &r.env;
	uint32_t *samples[LAT_KINDS], *lens;
	uint8_t *buf;
	unsigned int i;

	parse_opts(argc, argv, &o);
	parent_pid = getpid();
	atexit(kill_kids);
	setup_cpus();
	calibrate(o.quick ? NS_PER_S / 50 : NS_PER_S / 20, &r.env);
	collect_env(&r.env);

	ctl = map_shared(sizeof(*ctl));
	ab_mem = map_shared(ipcd_spsc_mem_size(RTT_RING));
	ba_mem = map_shared(ipcd_spsc_mem_size(RTT_RING));
	tput_mem = map_shared(ipcd_spsc_mem_size(TPUT_RING));
	mpsc_mem = map_shared(ipcd_mpsc_mem_size(MPSC_SLOTS));
	for (i = 0; i < LAT_KINDS; i++)
		samples[i] = xmalloc((size_t)o.lat_blocks * LAT_REC * sizeof(uint32_t));
	buf = xmalloc(CONS_BUF);
	lens = xmalloc(CONS_MAX_MSGS * sizeof(*lens));

	printf("ipcd-bench-queues  %s  (%s run)\n", e->date, o.quick ? "quick" : "normal");
	printf("cpu      %s\n", e->cpu_model);
	printf("nproc    %ld online, %d allowed; ", e->online, e->allowed);
	if (single_cpu)
		printf("ONLY ONE CPU: running unpinned, waits yield; latency is scheduler-bound\n");
	else
		printf("parent pinned to CPU %d, peer to CPU %d (%s)\n", cpu_a, cpu_b,
		       e->topology);
	printf("load     %s\n", e->loadavg);
	printf("kernel   %s\n", e->kernel);
	printf("clock    %s, %.3f ticks/ns, resolution %.0f ns; one read costs %.0f ns "
	       "(included in samples)\n", use_tsc ? "rdtscp" : "clock_gettime", ticks_per_ns,
	       e->timer_res_ns, e->timer_ns);
	fflush(stdout);

	run_latency(&o, ab_mem, ba_mem, samples, r.lat);
	printf("\n== floor: one cache line ping-ponged between two processes ==\n");
	printf("%u blocks x %u round trips per row, alternating with the spsc rtt blocks; "
	       "ns per round trip\n", (unsigned int)(r.lat[0].n / LAT_REC), LAT_REC);
	printf("%-13s %6s %6s %6s %6s %7s %8s   %-14s  %s\n", "", "min", "p50", "p90", "p99",
	       "p99.9", "max", "block p50", "p50/floor");
	print_lat_row(&r.lat[0], false);
	print_lat_row(&r.lat[1], true);

	printf("\n== spsc rtt: ipcd_spsc_send + busy-polled ipcd_spsc_recv, there and back ==\n");
	printf("message mode, two %u KiB rings; ns per round trip; p50/floor is the median of "
	       "per-block ratios\n", RTT_RING >> 10);
	printf("%-13s %6s %6s %6s %6s %7s %8s   %-14s  %s\n", "size", "min", "p50", "p90", "p99",
	       "p99.9", "max", "block p50", "p50/floor");
	for (i = 2; i < LAT_KINDS; i++)
		print_lat_row(&r.lat[i], true);
	fflush(stdout);

	printf("\n== spsc throughput: one way, %u MiB ring, %u runs x %.2f s, "
	       "median [min .. max] ==\n", TPUT_RING >> 20, o.reps, (double)o.run_ns / 1e9);
	printf("message: send_burst of <burst> / recv_burst; stream: write <size> / read 64 KiB;\n"
	       "floor: p50 of a floor probe before each run (ns); cpu%%: lowest share of the two\n"
	       "CPUs the run's processes got (well below 100: other load on the machine)\n");
	printf("%-7s %6s %5s  %-24s  %-24s  %-12s %s\n", "mode", "size", "burst",
	       "M msg/s (stream: writes)", "MB/s (payload, 1e6 B)", "floor", "cpu%");
	for (i = 0; i < N_TPUT; i++) {
		run_tput(&o, &tput_cases[i], tput_mem, buf, lens, &r.tp[i]);
		print_tput_row(&r.tp[i]);
	}

	printf("\n== mpsc throughput: ipcd_mpsc_enqueue from N processes, one consumer ==\n");
	if (single_cpu)
		printf("consumer unpinned");
	else
		printf("consumer on CPU %d", cpu_a);
	printf(" (dequeue_burst %u, spin then yield), producers float and yield when full;\n"
	       "%u slots, skip budget %llu us, %u runs x %.2f s, median [min .. max]; "
	       "counts summed over runs\n", MPSC_BURST, MPSC_SLOTS, MPSC_SKIP_NS / 1000, o.reps,
	       (double)o.run_ns / 1e9);
	printf("cpu%%: as above, but floating producers may also leave a CPU idle\n");
	printf("%9s  %-24s  %7s %7s %9s %5s  %-12s %s\n", "producers", "M req/s", "skipped",
	       "corrupt", "fullyield", "ebusy", "floor", "cpu%");
	for (i = 0; i < N_MPSC; i++) {
		run_mpsc(&o, mpsc_producers[i], mpsc_mem, &r.mp[i]);
		print_mpsc_row(&r.mp[i]);
	}

	t[0] = (struct target){ "SPSC 64 B rtt p50 <= 1.5x floor", "x floor", r.lat[2].ratio,
				1.5, false };
	t[0].pass = t[0].value <= t[0].limit;
	t[1] = (struct target){ "SPSC 8 B batched >= 20 M msg/s", "M msg/s",
				r.tp[0].msgs.med / 1e6, 20, false };
	t[1].pass = t[1].value >= t[1].limit;
	t[2] = (struct target){ "MPSC 4 producers >= 5 M req/s", "M req/s",
				r.mp[2].rps.med / 1e6, 5, false };
	t[2].pass = t[2].value >= t[2].limit;

	printf("\n== targets (informational; exit status does not depend on them) ==\n");
	for (i = 0; i < IPCD_ARRAY_SIZE(t); i++)
		printf("%-34s %7.2f %-8s %s\n", t[i].name, t[i].value, t[i].unit,
		       t[i].pass ? "PASS" : "MISS");

	printf("\nfloor p50 seen during this run: %.0f .. %.0f ns\n", floor_lo, floor_hi);
	if (floor_hi > 1.8 * floor_lo)
		printf("NOTE: the cross-core round trip changed during the run (the host moved "
		       "the vCPUs);\n      compare throughput runs only at a similar floor "
		       "(per-run floors are in the JSON).\n");
	if (cpu_lo < 0.9)
		printf("NOTE: other processes took CPU time during some spsc runs (cpu%% down to "
		       "%.0f);\n      those runs measure the machine's load, not the queues.\n",
		       cpu_lo * 100);
	r.elapsed_s = (double)(ipcd_now_ns() - start) / 1e9;
	write_json(o.json, &o, &r, t, IPCD_ARRAY_SIZE(t));
	printf("all messages verified (order, length, totals); %.1f s; json: %s\n", r.elapsed_s,
	       o.json);
	for (i = 0; i < LAT_KINDS; i++)
		free(samples[i]);
	free(buf);
	free(lens);
	return 0;
}
