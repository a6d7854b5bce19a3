/* SPDX-License-Identifier: MIT */
/*
 * it_monitor_procs.c - a real ipcd-monitor and many client processes: 200
 * registering at once (detaching, exiting, or SIGKILLed mid-calls), SIGKILLs
 * at random points with a survivor that keeps getting answers, and the
 * max_processes limit. Afterwards nothing may be left: no process, no fd, no
 * mapping in the monitor, no /dev/shm entry.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ipcd/atomic.h>
#include <ipcd/wait.h>

#include "t_monitor.h"

#define NPROC		200	/* case 3: concurrent processes */
#define NCALLS		50	/* calls each */
#define NVICTIMS	(120 / T_SLOWDOWN)	/* case 4: processes SIGKILLed at random */
#define WAVE		8	/* victims alive at once */

static struct t_out out;

struct shared {
	uint32_t attached;
	uint32_t go;
	uint32_t stop;
	uint32_t surv_ready;
	uint32_t surv_calls;
	uint32_t progress[NPROC];
};

/* ---- leftovers ---------------------------------------------------------- */

#define MAX_SHM_NAMES	512

struct shm_names {
	unsigned int n;
	char name[MAX_SHM_NAMES][256];
};

static void shm_snapshot(struct shm_names *s)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;

	s->n = 0;
	if (!d)
		return;
	while ((e = readdir(d)) && s->n < MAX_SHM_NAMES)
		if (e->d_name[0] != '.')
			snprintf(s->name[s->n++], sizeof(s->name[0]), "%s", e->d_name);
	closedir(d);
}

/*
 * Regions are memfds: nothing of ours may appear in /dev/shm. Other programs
 * on a shared machine may add entries; only names that look like ours fail.
 */
static void assert_no_new_shm(const struct shm_names *before)
{
	static struct shm_names now;
	unsigned int i, j;

	shm_snapshot(&now);
	for (i = 0; i < now.n; i++) {
		for (j = 0; j < before->n && strcmp(now.name[i], before->name[j]); j++)
			;
		if (j < before->n)
			continue;
		if (strcasestr(now.name[i], "ipcd"))
			fail_msg("new /dev/shm entry left behind: %s", now.name[i]);
		fprintf(stderr, "note: new /dev/shm entry (not ours?): %s\n", now.name[i]);
	}
}

/* Everything a dead or detached client held is gone from the monitor. */
static void assert_cleaned_up(struct t_mon *m, int fd_base, const struct shm_names *shm)
{
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	assert_int_equal(t_mon_wait_fds(m, fd_base), fd_base);
	assert_int_equal(t_mon_maps_count(m, "ipcd-client"), 0);
	assert_no_new_shm(shm);
	assert_int_equal(t_ctl(m, &out, true, "processes"), 0);
	assert_string_equal(out.out, "[]\n");
}

static void final_client_ok(struct t_mon *m)
{
	struct ipcd_attach a;
	unsigned int i;

	t_attach(m, "it-final", &a);
	for (i = 0; i < 20; i++)
		assert_int_equal(t_echo_check(&a, 9, (uint64_t)i * 64, (uint16_t)(i + 1)), 0);
	ipcd_detach(&a);
}

/* ---- 3. 200 processes at once ------------------------------------------- */

enum ending { END_DETACH, END_EXIT, END_KILLED };

static enum ending ending_of(unsigned int i)
{
	return (enum ending)(i % 3);
}

static void __attribute__((noreturn)) many_child(const struct t_mon *m, struct shared *sh,
						 unsigned int i)
{
	struct ipcd_attach a;
	char why[256];
	uint32_t k;
	int rc = ipcd_attach(m->sock, "it-many", &a, why, sizeof(why));

	if (rc) {
		fprintf(stderr, "[child %u] attach: %d: %s\n", i, rc, why);
		_exit(2);
	}
	ipcd_fetch_add(&sh->attached, 1);
	while (!ipcd_load_acquire(&sh->go))
		t_sleep_ms(1);
	for (k = 0; ending_of(i) == END_KILLED || k < NCALLS; k++) {
		T_CHECK_EQ(t_echo_check(&a, (uint32_t)getpid(), (uint64_t)k * 64,
					(uint16_t)(k % 48 + 1)), 0);
		ipcd_store_release(&sh->progress[i], k + 1);
	}
	T_CHECK(t_resp_ring_empty(&a));
	if (ending_of(i) == END_DETACH)
		ipcd_detach(&a);
	_exit(0);
}

static void test_many_processes(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	static struct shm_names shm;
	static pid_t pids[NPROC];
	struct shared *sh = t_shm_alloc(sizeof(*sh));
	struct t_rng rng;
	char pat[48];
	unsigned int i;
	int base;

	t_rng_init(&rng, t_seed());
	shm_snapshot(&shm);
	t_mon_start(m);
	base = t_mon_fd_baseline(m);

	for (i = 0; i < NPROC; i++) {
		pids[i] = t_fork(T_CHILD_ALARM);
		if (pids[i] == 0)
			many_child(m, sh, i);
	}
	if (!t_wait_at_least(&sh->attached, NPROC, T_WAIT_MS)) {
		for (i = 0; i < NPROC; i++) {
			int code = t_try_wait(pids[i]);

			if (code != T_STILL_RUNNING)
				fprintf(stderr, "child %u (pid %d) exited early: %d\n", i,
					(int)pids[i], code);
		}
		fail_msg("only %u of %d processes registered", sh->attached, NPROC);
	}

	/* All 200 registered at once: the monitor lists every one (multi-chunk JSON). */
	assert_int_equal(t_ctl_num(m, "status", "processes"), NPROC);
	assert_int_equal(t_ctl(m, &out, true, "processes"), 0);
	assert_true(out.out_len > IPCD_CTL_CHUNK);
	assert_true(t_json_balanced(out.out));
	assert_int_equal(t_json_python(out.out) == 1, 0);
	assert_int_equal(t_count_str(out.out, "{\"pid\":"), NPROC);
	for (i = 0; i < NPROC; i++) {
		snprintf(pat, sizeof(pat), "{\"pid\":%d,", (int)pids[i]);
		assert_non_null(strstr(out.out, pat));
	}
	assert_int_equal(t_mon_maps_count(m, "ipcd-client"), NPROC);
	ipcd_store_release(&sh->go, 1);

	/* A third is SIGKILLed mid-calls, after a random number of them. */
	for (i = 0; i < NPROC; i++) {
		if (ending_of(i) != END_KILLED)
			continue;
		if (!t_wait_at_least(&sh->progress[i], 1 + t_rng_below(&rng, NCALLS), T_WAIT_MS))
			fail_msg("child %u made no progress (%u calls)", i, sh->progress[i]);
		usleep(t_rng_below(&rng, 2000));
		kill(pids[i], SIGKILL);
	}
	for (i = 0; i < NPROC; i++) {
		int code = t_wait(pids[i], T_WAIT_MS);

		if (ending_of(i) == END_KILLED)
			assert_int_equal(code, 128 + SIGKILL);
		else
			assert_int_equal(code, 0);
	}

	assert_cleaned_up(m, base, &shm);
	assert_int_equal(t_ctl_num(m, "counters", "registered"), NPROC);
	assert_int_equal(t_ctl_num(m, "counters", "reaped"), NPROC);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	assert_int_equal(t_ctl_num(m, "counters", "refused"), 0);
	assert_true(t_ctl_num(m, "counters", "echo") >= (long long)NPROC / 3 * 2 * NCALLS);
	final_client_ok(m);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- 4. SIGKILL at random points, a survivor keeps going ---------------- */

static void __attribute__((noreturn)) survivor(const struct t_mon *m, struct shared *sh)
{
	struct ipcd_attach a;
	char why[256];
	uint64_t k;

	T_CHECK_EQ(ipcd_attach(m->sock, "it-survivor", &a, why, sizeof(why)), 0);
	ipcd_store_release(&sh->surv_ready, 1);
	for (k = 0; !ipcd_load_acquire(&sh->stop); k++) {
		T_CHECK_EQ(t_echo_check(&a, (uint32_t)getpid(), k * 64, (uint16_t)(k % 49)), 0);
		ipcd_store_release(&sh->surv_calls, (uint32_t)k + 1);
	}
	T_CHECK(t_resp_ring_empty(&a));
	ipcd_detach(&a);
	_exit(0);
}

static void __attribute__((noreturn)) victim(const struct t_mon *m, struct shared *sh,
					     unsigned int i)
{
	struct ipcd_attach a;
	char why[256];
	uint32_t k;

	T_CHECK_EQ(ipcd_attach(m->sock, "it-victim", &a, why, sizeof(why)), 0);
	for (k = 0;; k++) {
		T_CHECK_EQ(t_echo_check(&a, (uint32_t)getpid(), (uint64_t)k * 64,
					(uint16_t)(k % 49)), 0);
		ipcd_store_release(&sh->progress[i], k + 1);
	}
}

static void test_random_kills(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	static struct shm_names shm;
	struct shared *sh = t_shm_alloc(sizeof(*sh));
	struct t_rng rng;
	pid_t surv, pids[WAVE];
	unsigned int done = 0, i;
	int base;

	t_rng_init(&rng, t_seed() ^ 0x4b);
	shm_snapshot(&shm);
	t_mon_start(m);
	base = t_mon_fd_baseline(m);

	surv = t_fork(T_CHILD_ALARM);
	if (surv == 0)
		survivor(m, sh);
	assert_true(t_wait_at_least(&sh->surv_ready, 1, T_WAIT_MS));

	while (done < NVICTIMS) {
		uint32_t before = ipcd_load_acquire(&sh->surv_calls);

		for (i = 0; i < WAVE; i++) {
			sh->progress[i] = 0;
			pids[i] = t_fork(T_CHILD_ALARM);
			if (pids[i] == 0)
				victim(m, sh, i);
		}
		/* Half die at a random moment (often mid-attach), half mid-calls. */
		for (i = 0; i < WAVE; i++) {
			if (t_rng_below(&rng, 2))
				t_wait_at_least(&sh->progress[i], 1 + t_rng_below(&rng, 20), T_WAIT_MS);
			usleep(t_rng_below(&rng, 3000));
			kill(pids[i], SIGKILL);
		}
		for (i = 0; i < WAVE; i++) {
			int code = t_wait(pids[i], T_WAIT_MS);

			if (code != 128 + SIGKILL)
				fail_msg("victim %d ended with %d, not by our SIGKILL", (int)pids[i],
					 code);
		}
		done += WAVE;
		/* The survivor got answers during this wave or right after it. */
		if (!t_wait_at_least(&sh->surv_calls, before + 1, T_WAIT_MS))
			fail_msg("the survivor made no progress after %u kills", done);
		assert_int_equal(t_try_wait(surv), T_STILL_RUNNING);
	}
	ipcd_store_release(&sh->stop, 1);
	assert_int_equal(t_wait(surv, T_WAIT_MS), 0);
	assert_true(sh->surv_calls > 0);

	assert_cleaned_up(m, base, &shm);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	assert_int_equal(t_ctl_num(m, "counters", "registered"),
			 t_ctl_num(m, "counters", "reaped"));
	final_client_ok(m);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/*
 * A burst of registrations while the monitor is stalled (SIGSTOP stands in
 * for a descheduled monitor on a busy machine): when it resumes, every one
 * of them has connected and sent its hello, so none owes anything; all must
 * be registered, whatever the size of the monitor's table of connections
 * that still owe a hello (64).
 */
#define BURST	100

static void __attribute__((noreturn)) burst_child(const struct t_mon *m, struct shared *sh)
{
	struct ipcd_attach a;
	char why[256];
	int rc;

	ipcd_fetch_add(&sh->attached, 1);
	rc = ipcd_attach(m->sock, "it-burst", &a, why, sizeof(why));
	ipcd_fetch_add(&sh->go, 1);		/* attempts finished */
	if (rc) {
		fprintf(stderr, "[child %d] attach: %d: %s\n", (int)getpid(), rc, why);
		ipcd_fetch_add(&sh->surv_ready, 1);	/* failures */
		_exit(2);
	}
	T_CHECK_EQ(t_echo_check(&a, (uint32_t)getpid(), 0, 8), 0);
	while (!ipcd_load_acquire(&sh->stop))
		t_sleep_ms(1);
	ipcd_detach(&a);
	_exit(0);
}

static void test_registration_burst(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct shared *sh = t_shm_alloc(sizeof(*sh));
	static pid_t pids[BURST];
	unsigned int i, failed = 0;

	t_mon_start(m);
	kill(m->pid, SIGSTOP);
	for (i = 0; i < BURST; i++) {
		pids[i] = t_fork(T_CHILD_ALARM);
		if (pids[i] == 0)
			burst_child(m, sh);
	}
	t_wait_at_least(&sh->attached, BURST, T_WAIT_MS);
	t_sleep_ms(300);	/* let them connect and send their hellos (not an assertion) */
	kill(m->pid, SIGCONT);
	if (!t_wait_at_least(&sh->go, BURST, T_WAIT_MS))
		fail_msg("only %u of %d registrations finished", sh->go, BURST);
	if (sh->surv_ready)
		fail_msg("%u of %d processes were refused after a burst of registrations "
			 "(their hello was already queued)", sh->surv_ready, BURST);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", BURST), BURST);
	ipcd_store_release(&sh->stop, 1);
	for (i = 0; i < BURST; i++)
		if (t_wait(pids[i], T_WAIT_MS) != 0)
			failed++;
	assert_int_equal(failed, 0);
	assert_int_equal(t_ctl_num(m, "counters", "refused"), 0);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- max_processes ------------------------------------------------------ */

#define LIMIT	4

static void test_max_processes(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct ipcd_attach a[LIMIT + 1];
	char why[256];
	unsigned int i;
	int rc;

	t_mon_write_config(m, "max_processes = 4\n");
	t_mon_start(m);
	for (i = 0; i < LIMIT; i++)
		t_attach(m, "it-limit", &a[i]);
	rc = ipcd_attach(m->sock, "it-over", &a[LIMIT], why, sizeof(why));
	assert_int_equal(rc, -EUSERS);
	assert_non_null(strstr(why, "max_processes=4"));
	assert_int_equal(t_ctl_num(m, "status", "processes"), LIMIT);
	assert_int_equal(t_ctl_num(m, "counters", "refused"), 1);

	ipcd_detach(&a[0]);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", LIMIT - 1), LIMIT - 1);
	t_attach(m, "it-over", &a[LIMIT]);
	for (i = 1; i <= LIMIT; i++)
		assert_int_equal(t_echo_check(&a[i], i, 0, 32), 0);
	for (i = 1; i <= LIMIT; i++)
		ipcd_detach(&a[i]);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	t_mon_stop(m);
	T_PASSED(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_BOTH(test_many_processes),
		T_BOTH(test_random_kills),
		T_BOTH(test_registration_burst),
		T_BOTH(test_max_processes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
