/* SPDX-License-Identifier: MIT */
/*
 * bench_modes.c - the queue-mode microbenchmark: a real ipcd-monitor in each
 * request-queue mode, N registered processes, a few of them busy, the rest idle.
 *
 * For each mode and N in {1, 8, 64, 256}:
 *   idle:       everyone registered, nobody busy: the monitor's CPU use;
 *   latency:    one client, one request in flight: round trip p50/p99 for a
 *               no-op and for a bind+unbind pair;
 *   throughput: up to 4 busy clients with 32 requests in flight each:
 *               requests/s and the monitor's CPU use; and the same clients
 *               doing bind+unbind pairs in a closed loop: pairs/s.
 * The host may move the vCPUs during a run (the cross-core round trip then
 * changes several-fold), so the two modes are interleaved for each N, each
 * repetition is normalised by the cache-line floor measured at its start
 * (latency in floor round trips; throughput scaled to a REF_FLOOR_NS floor),
 * and each figure is the median of the repetitions. Raw figures are kept too.
 * Output: a table, a JSON file and a PNG plot (gnuplot, if installed).
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcd/proto.h>

#include "attach.h"
#include "bench_util.h"

#define MAX_N		256
#define MAX_BUSY	4
#define PIPELINE	32
#define MAX_SAMPLES	(1u << 20)
#define MAX_REPS	5
#define REF_FLOOR_NS	110.0	/* the common placement on the project's VMs */

enum phase { PH_WAIT, PH_LAT_NOP, PH_LAT_BIND, PH_TPUT, PH_TPUT_BIND, PH_EXIT };

/* Shared with the client processes (MAP_SHARED|MAP_ANONYMOUS). */
struct shared {
	uint32_t phase;			/* enum phase, written by the parent */
	uint32_t gen;			/* bumped with each new phase */
	uint32_t ready;			/* clients attached */
	uint32_t done;			/* clients finished the phase */
	uint32_t failed;
	uint64_t stop_ns;		/* end of the phase */
	uint64_t count[MAX_BUSY];	/* requests completed per busy client */
	uint32_t n_samples;
	uint32_t samples[MAX_SAMPLES];	/* ns per round trip, client 0 */
};

struct result {
	const char *mode;
	unsigned int n;
	double floor;			/* ns: one cache line ping-ponged between CPU 0 and 1 */
	double floor_tput;		/* the same, just before the throughput phase */
	double idle_cpu;		/* % of one core */
	double nop_p50, nop_p99;	/* ns */
	double bind_p50, bind_p99;	/* ns, bind + unbind */
	unsigned int busy;
	double tput;			/* requests/s */
	double tput_cpu;
	double pairs;			/* bind+unbind pairs/s, same busy clients, closed loop */
	double nop_norm;		/* nop_p50 / floor */
	double tput_norm;		/* tput * floor / REF_FLOOR_NS */
};

static struct shared *sh;
static double phase_s = 1.0;
static unsigned int reps = 3;
static char tmpdir[64];
static pid_t kids[MAX_N + 1];
static unsigned int n_kids;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void kill_all(void)
{
	unsigned int i;

	for (i = 0; i < n_kids; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
	for (i = 0; i < n_kids; i++)
		if (kids[i] > 0)
			waitpid(kids[i], NULL, 0);
	n_kids = 0;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ipcd_bench_vsay("ipcd-bench-modes", fmt, ap);
	va_end(ap);
	kill_all();
	if (tmpdir[0])
		fprintf(stderr, "ipcd-bench-modes: the monitor's config and log are in %s\n", tmpdir);
	exit(1);
}

/* After a successful run: remove what the run wrote in its temp dir. */
static void remove_tmpdir(void)
{
	static const char *const names[] = { "monitor.conf", "monitor.log", "m.sock", "modes.dat",
					     "modes.gp" };
	char path[160];
	size_t i;

	for (i = 0; i < IPCD_ARRAY_SIZE(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	if (rmdir(tmpdir) != 0)
		fprintf(stderr, "ipcd-bench-modes: could not remove %s: %s\n", tmpdir,
			strerror(errno));
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* Time @pid has spent on a CPU, in ns (schedstat: far finer than utime's ticks). */
static uint64_t cpu_ns(pid_t pid)
{
	unsigned long long run = 0;
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &run) != 1)
		run = 0;
	fclose(f);
	return run;
}

/* ---- clients ------------------------------------------------------------ */

static int call(struct ipcd_attach *a, uint16_t op, const void *body, uint16_t len,
		struct ipcd_resp *resp)
{
	struct ipcd_req req = { .opcode = op, .len = len };

	memcpy(req.body, body, len);
	return ipcd_reqq_call(&a->cl, &req, resp, 200000, 2000000000);
}

static int bind_unbind(struct ipcd_attach *a, uint16_t port)
{
	struct ipcd_bind_req b = { .port = port };
	struct ipcd_unbind_req u = { 0 };
	struct ipcd_resp resp;

	b.addr[10] = b.addr[11] = 0xff;		/* ::ffff:127.0.0.1 */
	b.addr[12] = 127;
	b.addr[15] = 1;
	if (call(a, IPCD_OP_BIND, &b, sizeof(b), &resp) || resp.status)
		return -1;
	memcpy(&u.id, resp.body, sizeof(u.id));
	if (call(a, IPCD_OP_UNBIND, &u, sizeof(u), &resp) || resp.status)
		return -1;
	return 0;
}

static void latency_loop(struct ipcd_attach *a, enum phase ph, unsigned int idx)
{
	uint16_t port = (uint16_t)(20000 + idx);
	uint32_t n = 0;

	while (ipcd_now_ns() < sh->stop_ns) {
		uint64_t t0 = ipcd_now_ns();
		struct ipcd_resp resp;
		int rc;

		rc = ph == PH_LAT_NOP ? call(a, IPCD_OP_NOP, NULL, 0, &resp) : bind_unbind(a, port);
		if (rc) {
			sh->failed++;
			return;
		}
		if (n < MAX_SAMPLES)
			sh->samples[n++] = (uint32_t)IPCD_MIN(ipcd_now_ns() - t0, UINT32_MAX);
	}
	sh->n_samples = n;
}

/* PIPELINE requests in flight: submit while there is room, collect what is back. */
static void tput_loop(struct ipcd_attach *a, unsigned int idx)
{
	struct ipcd_req req = { .opcode = IPCD_OP_NOP };
	unsigned int inflight = 0;
	uint64_t done = 0;

	while (ipcd_now_ns() < sh->stop_ns) {
		struct ipcd_resp resp;

		while (inflight < PIPELINE && ipcd_reqq_submit(&a->cl, &req) == 0)
			inflight++;
		while (ipcd_spsc_recv(&a->cl.chan.resp, &resp, sizeof(resp)) == sizeof(resp)) {
			inflight--;
			done++;
		}
	}
	sh->count[idx] = done;
}

/* Closed loop of bind+unbind pairs (each needs the bind's id for the unbind). */
static void pairs_loop(struct ipcd_attach *a, unsigned int idx)
{
	uint64_t done = 0;

	while (ipcd_now_ns() < sh->stop_ns) {
		if (bind_unbind(a, (uint16_t)(21000 + idx))) {
			sh->failed++;
			return;
		}
		done++;
	}
	sh->count[idx] = done;
}

static void client(const char *sock, unsigned int idx)
{
	struct ipcd_attach a;
	uint32_t gen = 0;
	char why[256];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (ipcd_attach(sock, "bench-client", &a, why, sizeof(why))) {
		fprintf(stderr, "client %u: %s\n", idx, why);
		__atomic_fetch_add(&sh->failed, 1, __ATOMIC_SEQ_CST);
		_exit(1);
	}
	if (idx < MAX_BUSY)
		pin(1);
	__atomic_fetch_add(&sh->ready, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		uint32_t ph;

		/* Idle clients sleep here; busy ones poll gently between phases. */
		while (__atomic_load_n(&sh->gen, __ATOMIC_ACQUIRE) == gen)
			usleep(idx < MAX_BUSY ? 200 : 20000);
		gen = __atomic_load_n(&sh->gen, __ATOMIC_ACQUIRE);
		ph = __atomic_load_n(&sh->phase, __ATOMIC_ACQUIRE);
		if (ph == PH_EXIT)
			_exit(0);
		if (ph == PH_LAT_NOP || ph == PH_LAT_BIND) {
			if (idx == 0)
				latency_loop(&a, (enum phase)ph, idx);
		} else if (ph == PH_TPUT && idx < MAX_BUSY) {
			tput_loop(&a, idx);
		} else if (ph == PH_TPUT_BIND && idx < MAX_BUSY) {
			pairs_loop(&a, idx);
		}
		__atomic_fetch_add(&sh->done, 1, __ATOMIC_SEQ_CST);
	}
}

/*
 * The physical floor right now: two processes on CPU 0 and 1 ping-pong one
 * cache line. The host moves vCPUs, and this moves with it several-fold.
 */
static double probe_floor(void)
{
	enum { ROUNDS = 20000 };
	uint64_t *line = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			      -1, 0);
	uint32_t *t = malloc(ROUNDS * sizeof(*t));
	uint64_t i, guard;
	double p50;
	pid_t pid;

	if (line == MAP_FAILED || !t)
		die("floor probe: out of memory");
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pin(1);
		for (i = 1; i <= ROUNDS; i++) {
			guard = ipcd_now_ns() + 1000000000ull;
			while (__atomic_load_n(line, __ATOMIC_ACQUIRE) != 2 * i - 1)
				if (ipcd_now_ns() > guard)
					_exit(1);
			__atomic_store_n(line, 2 * i, __ATOMIC_RELEASE);
		}
		_exit(0);
	}
	pin(0);
	for (i = 1; i <= ROUNDS; i++) {
		uint64_t t0 = ipcd_now_ns();

		__atomic_store_n(line, 2 * i - 1, __ATOMIC_RELEASE);
		guard = t0 + 1000000000ull;
		while (__atomic_load_n(line, __ATOMIC_ACQUIRE) != 2 * i)
			if (ipcd_now_ns() > guard)
				die("floor probe: the peer stopped");
		t[i - 1] = (uint32_t)(ipcd_now_ns() - t0);
	}
	waitpid(pid, NULL, 0);
	qsort(t, ROUNDS, sizeof(*t), ipcd_bench_cmp_u32);
	p50 = t[ROUNDS / 2];
	free(t);
	munmap(line, 4096);
	return p50;
}

/* ---- parent ------------------------------------------------------------- */

static pid_t start_monitor(const char *bin, const char *mode, const char *sock)
{
	char conf[128], log[128];
	FILE *f;
	pid_t pid;
	int i;

	snprintf(conf, sizeof(conf), "%s/monitor.conf", tmpdir);
	snprintf(log, sizeof(log), "%s/monitor.log", tmpdir);
	f = fopen(conf, "w");
	if (!f)
		die("%s: %s", conf, strerror(errno));
	fprintf(f, "queue_mode = %s\ncontrol_socket = %s\nmax_processes = 512\n"
		   "log_level = warn\ncore = %s\n", mode, sock,
		sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? "0" : "none");
	fclose(f);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (!freopen(log, "w", stderr))
			_exit(127);
		execl(bin, bin, "-f", "-c", conf, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 500; i++) {
		struct stat st;

		if (stat(sock, &st) == 0)
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			die("the monitor exited at start (log: %s)", log);
		usleep(10000);
	}
	die("the monitor did not create %s (log: %s)", sock, log);
}

static void run_phase(enum phase ph, unsigned int n_done)
{
	uint64_t guard;

	sh->done = 0;
	sh->n_samples = 0;
	memset(sh->count, 0, sizeof(sh->count));
	sh->stop_ns = ipcd_now_ns() + (uint64_t)(phase_s * 1e9);
	__atomic_store_n(&sh->phase, ph, __ATOMIC_RELEASE);
	__atomic_fetch_add(&sh->gen, 1, __ATOMIC_RELEASE);
	guard = sh->stop_ns + 20000000000ull;
	while (__atomic_load_n(&sh->done, __ATOMIC_ACQUIRE) < n_done) {
		if (ipcd_now_ns() > guard)
			die("clients did not finish a phase");
		usleep(1000);
	}
	if (sh->failed)
		die("%u client requests failed", sh->failed);
}

static void percentiles(double *p50, double *p99)
{
	uint32_t n = sh->n_samples;

	if (!n) {
		*p50 = *p99 = 0;
		return;
	}
	qsort(sh->samples, n, sizeof(uint32_t), ipcd_bench_cmp_u32);
	*p50 = sh->samples[n / 2];
	*p99 = sh->samples[(uint64_t)n * 99 / 100];
}

static void measure(const char *bin, const char *mode, unsigned int n, struct result *r)
{
	char sock[128];
	uint64_t t0, c0;
	pid_t mon;
	unsigned int i;

	snprintf(sock, sizeof(sock), "%s/m.sock", tmpdir);
	mon = start_monitor(bin, mode, sock);
	memset(sh, 0, offsetof(struct shared, samples));
	for (i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0)
			client(sock, i);
		kids[n_kids++] = pid;
	}
	t0 = ipcd_now_ns() + 30000000000ull;
	while (__atomic_load_n(&sh->ready, __ATOMIC_ACQUIRE) < n) {
		if (sh->failed || ipcd_now_ns() > t0)
			die("%u of %u clients attached", sh->ready, n);
		usleep(1000);
	}
	r->mode = mode;
	r->n = n;

	/* idle: nobody busy */
	usleep(200000);
	c0 = cpu_ns(mon);
	t0 = ipcd_now_ns();
	usleep((useconds_t)(phase_s * 1e6));
	r->idle_cpu = 100.0 * (double)(cpu_ns(mon) - c0) / (double)(ipcd_now_ns() - t0);

	r->floor = probe_floor();	/* just before the phase it normalises */
	run_phase(PH_LAT_NOP, n);
	percentiles(&r->nop_p50, &r->nop_p99);
	run_phase(PH_LAT_BIND, n);
	percentiles(&r->bind_p50, &r->bind_p99);

	r->floor_tput = probe_floor();
	c0 = cpu_ns(mon);
	t0 = ipcd_now_ns();
	run_phase(PH_TPUT, n);
	r->tput_cpu = 100.0 * (double)(cpu_ns(mon) - c0) / (double)(ipcd_now_ns() - t0);
	r->busy = IPCD_MIN(n, MAX_BUSY);
	r->tput = 0;
	for (i = 0; i < r->busy; i++)
		r->tput += (double)sh->count[i] / phase_s;
	run_phase(PH_TPUT_BIND, n);
	r->pairs = 0;
	for (i = 0; i < r->busy; i++)
		r->pairs += (double)sh->count[i] / phase_s;
	r->nop_norm = r->nop_p50 / r->floor;
	r->tput_norm = r->tput * r->floor_tput / REF_FLOOR_NS;

	__atomic_store_n(&sh->phase, PH_EXIT, __ATOMIC_RELEASE);
	__atomic_fetch_add(&sh->gen, 1, __ATOMIC_RELEASE);
	for (i = 0; i < n_kids; i++)
		waitpid(kids[i], NULL, 0);
	n_kids = 0;
	kill(mon, SIGTERM);
	waitpid(mon, NULL, 0);
}

static double med(const struct result *rr, unsigned int n, size_t off)
{
	double v[MAX_REPS];
	unsigned int k;

	for (k = 0; k < n; k++)
		memcpy(&v[k], (const char *)&rr[k] + off, sizeof(double));
	qsort(v, n, sizeof(double), ipcd_bench_cmp_dbl);
	return v[n / 2];
}

/* Each figure independently: the median of the repetitions. */
static void median_of(const struct result *rr, unsigned int n, struct result *out)
{
	*out = rr[0];
	out->floor = med(rr, n, offsetof(struct result, floor));
	out->idle_cpu = med(rr, n, offsetof(struct result, idle_cpu));
	out->nop_p50 = med(rr, n, offsetof(struct result, nop_p50));
	out->nop_p99 = med(rr, n, offsetof(struct result, nop_p99));
	out->bind_p50 = med(rr, n, offsetof(struct result, bind_p50));
	out->bind_p99 = med(rr, n, offsetof(struct result, bind_p99));
	out->tput = med(rr, n, offsetof(struct result, tput));
	out->tput_cpu = med(rr, n, offsetof(struct result, tput_cpu));
	out->pairs = med(rr, n, offsetof(struct result, pairs));
	out->nop_norm = med(rr, n, offsetof(struct result, nop_norm));
	out->tput_norm = med(rr, n, offsetof(struct result, tput_norm));
}

static void write_outputs(const struct result *r, unsigned int nr, const char *json,
			  const char *png)
{
	char dat[128], gp[160], cmd[400];
	unsigned int i;
	FILE *f;

	f = fopen(json, "w");
	if (!f)
		die("%s: %s", json, strerror(errno));
	fprintf(f, "{\"benchmark\":\"ipcd-bench-modes\",\"phase_s\":%.2f,\"repetitions\":%u,"
		"\"results\":[", phase_s, reps);
	for (i = 0; i < nr; i++)
		fprintf(f, "%s{\"mode\":\"%s\",\"processes\":%u,\"idle_cpu_pct\":%.2f,"
			"\"nop_p50_ns\":%.0f,\"nop_p99_ns\":%.0f,\"bind_unbind_p50_ns\":%.0f,"
			"\"bind_unbind_p99_ns\":%.0f,\"busy\":%u,\"requests_per_s\":%.0f,"
			"\"busy_cpu_pct\":%.1f,\"bind_unbind_pairs_per_s\":%.0f,\"floor_ns\":%.0f,"
			"\"nop_p50_floors\":%.2f,"
			"\"requests_per_s_at_ref_floor\":%.0f}", i ? "," : "", r[i].mode, r[i].n,
			r[i].idle_cpu,
			r[i].nop_p50, r[i].nop_p99, r[i].bind_p50, r[i].bind_p99, r[i].busy,
			r[i].tput, r[i].tput_cpu, r[i].pairs, r[i].floor, r[i].nop_norm,
			r[i].tput_norm);
	fprintf(f, "]}\n");
	fclose(f);

	if (!png || system("command -v gnuplot >/dev/null 2>&1") != 0) {
		printf("plot: skipped (%s)\n", png ? "gnuplot not installed" : "--no-plot");
		return;
	}
	snprintf(dat, sizeof(dat), "%s/modes.dat", tmpdir);
	snprintf(gp, sizeof(gp), "%s/modes.gp", tmpdir);
	f = fopen(dat, "w");
	if (!f)
		die("%s: %s", dat, strerror(errno));
	for (i = 0; i < nr; i++) {
		if (i && strcmp(r[i].mode, r[i - 1].mode))
			fprintf(f, "\n\n");
		fprintf(f, "%u %.0f %.2f %.2f %.1f\n", r[i].n, r[i].tput_norm / 1e3, r[i].nop_norm,
			r[i].idle_cpu, r[i].tput_cpu);
	}
	fclose(f);
	f = fopen(gp, "w");
	if (!f)
		die("%s: %s", gp, strerror(errno));
	fprintf(f,
		"set terminal pngcairo size 1200,420 font ',10'\n"
		"set output '%s'\n"
		"set multiplot layout 1,3 title 'IPC-Direct request queues: per-process vs shared'\n"
		"set logscale x 2\nset xrange [0.8:320]\nset xlabel 'registered processes'\n"
		"set key top left\nset grid\n"
		"set title 'throughput, min(N, %u) busy clients x %d in flight'\n"
		"set ylabel 'k requests/s (scaled to a %.0f ns floor)'\nset yrange [0:*]\n"
		"plot '%s' index 0 using 1:2 with linespoints title 'per-process', "
		"'' index 1 using 1:2 with linespoints title 'shared'\n"
		"set title 'round trip p50, one client'\nset ylabel 'cache-line round trips (floor)'\n"
		"plot '%s' index 0 using 1:3 with linespoints title 'per-process', "
		"'' index 1 using 1:3 with linespoints title 'shared'\n"
		"set title 'monitor CPU, all processes idle'\nset ylabel '%% of one core'\n"
		"plot '%s' index 0 using 1:4 with linespoints title 'per-process', "
		"'' index 1 using 1:4 with linespoints title 'shared'\n"
		"unset multiplot\n", png, MAX_BUSY, PIPELINE, REF_FLOOR_NS, dat, dat, dat);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "gnuplot '%s'", gp);
	if (system(cmd) != 0)
		printf("plot: gnuplot failed (%s)\n", gp);
	else
		printf("plot: %s\n", png);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ipcd-bench-modes [--quick] [--json FILE] [--png FILE] [--no-plot] "
		   "[--monitor PATH]\n");
}

int main(int argc, char **argv)
{
	static const unsigned int ns[] = { 1, 8, 64, 256 };
	static const char *const modes[] = { "per-process", "shared" };
	const char *json = "bench-modes.json", *png = "bench-modes.png";
	const char *bin = IPCD_MONITOR_BIN;
	struct result r[8];
	double load[3] = { 0 };
	unsigned int m, i, nr = 0;
	int a;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--quick")) {
			phase_s = 0.25;
			reps = 1;
		}
		else if (!strcmp(argv[a], "--json") && a + 1 < argc)
			json = argv[++a];
		else if (!strcmp(argv[a], "--png") && a + 1 < argc)
			png = argv[++a];
		else if (!strcmp(argv[a], "--no-plot"))
			png = NULL;
		else if (!strcmp(argv[a], "--monitor") && a + 1 < argc)
			bin = argv[++a];
		else if (!strcmp(argv[a], "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ipcd-bench-modes-XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp: %s", strerror(errno));
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	getloadavg(load, 3);
	printf("ipcd-bench-modes: %ld CPUs, load average %.2f %.2f %.2f; monitor pinned to CPU 0,"
	       " busy clients to CPU 1; %.2f s per phase; median of %u runs, modes interleaved\n",
	       sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2], phase_s, reps);
	for (i = 0; i < IPCD_ARRAY_SIZE(ns); i++)
		for (m = 0; m < IPCD_ARRAY_SIZE(modes); m++) {
			struct result rr[MAX_REPS] = { 0 };
			uint64_t t = ipcd_now_ns();
			unsigned int k;

			for (k = 0; k < reps; k++)
				measure(bin, modes[m], ns[i], &rr[k]);
			median_of(rr, reps, &r[m * IPCD_ARRAY_SIZE(ns) + i]);
			fprintf(stderr, "  %-12s %3u processes: %u x %.1f s\n", modes[m], ns[i], reps,
				(double)(ipcd_now_ns() - t) / 1e9 / reps);
			nr++;
		}

	printf("\n%-12s %5s %9s | %7s | %9s %9s %7s | %11s %11s | %4s %11s %8s %10s\n",
	       "mode", "procs", "idle CPU", "floor", "nop p50", "nop p99", "/floor", "bind+unb50",
	       "bind+unb99", "busy", "requests/s", "busy CPU", "pairs/s");
	for (i = 0; i < nr; i++)
		printf("%-12s %5u %8.3f%% | %5.0fns | %7.0fns %7.0fns %6.1fx | %9.0fns %9.0fns |"
		       " %4u %11.0f %7.1f%% %10.0f\n", r[i].mode, r[i].n, r[i].idle_cpu,
		       r[i].floor, r[i].nop_p50, r[i].nop_p99, r[i].nop_p50 / r[i].floor,
		       r[i].bind_p50, r[i].bind_p99, r[i].busy, r[i].tput, r[i].tput_cpu,
		       r[i].pairs);
	printf("\nnormalised by each run's floor (medians): p50 in floor round trips, requests/s "
	       "scaled to a %.0f ns floor\n", REF_FLOOR_NS);
	for (i = 0; i < nr; i++)
		printf("%-12s %5u  p50 %5.1f floors  %12.0f requests/s\n", r[i].mode, r[i].n,
		       r[i].nop_norm, r[i].tput_norm);
	printf("\nthroughput at 256 processes vs 1 (normalised):");
	for (m = 0; m < IPCD_ARRAY_SIZE(modes); m++)
		printf("  %s %.0f%%", modes[m],
		       100.0 * r[m * 4 + 3].tput_norm / r[m * 4].tput_norm);
	printf("\njson: %s\n", json);
	write_outputs(r, nr, json, png);
	getloadavg(load, 3);
	printf("load average after: %.2f %.2f %.2f\n", load[0], load[1], load[2]);
	remove_tmpdir();
	return 0;
}
