/* SPDX-License-Identifier: MIT */
/* t_helpers.c - shared memory, fork, hashing and randomness for the tests. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ipcd/wait.h>

#include "t_helpers.h"

#define T_MAX_CHILDREN	256

static pid_t children[T_MAX_CHILDREN];
static unsigned int n_children;

void t_child_fail(const char *file, int line, const char *what, long long a, long long b)
{
	if (a != b)
		fprintf(stderr, "[child %d] %s:%d: check failed: %s (%lld != %lld)\n",
			(int)getpid(), file, line, what, a, b);
	else
		fprintf(stderr, "[child %d] %s:%d: check failed: %s\n", (int)getpid(), file,
			line, what);
	fflush(stderr);
	_exit(1);
}

void *t_shm_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail_msg("mmap(%zu): %s", size, strerror(errno));
	return p;
}

void t_shm_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

void *t_guarded_alloc(struct t_guarded *g, size_t size, size_t align, bool at_end)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t body = (size + page - 1) / page * page;
	uint8_t *base;
	uintptr_t p;

	if (align == 0)
		align = 1;
	g->map_len = body + 2 * page;
	g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	if (g->map == MAP_FAILED)
		fail_msg("mmap(%zu): %s", g->map_len, strerror(errno));
	base = g->map;
	if (mprotect(base, page, PROT_NONE) || mprotect(base + page + body, page, PROT_NONE))
		fail_msg("mprotect: %s", strerror(errno));
	if (at_end) {
		p = (uintptr_t)(base + page + body - size);
		p &= ~(uintptr_t)(align - 1);
	} else {
		p = (uintptr_t)(base + page);
	}
	g->ptr = (void *)p;
	g->size = size;
	return g->ptr;
}

void t_guarded_free(struct t_guarded *g)
{
	if (g->map && g->map != MAP_FAILED)
		munmap(g->map, g->map_len);
	memset(g, 0, sizeof(*g));
}

static void forget_child(pid_t pid)
{
	unsigned int i;

	for (i = 0; i < n_children; i++) {
		if (children[i] == pid) {
			children[i] = children[--n_children];
			return;
		}
	}
}

pid_t t_fork(unsigned int alarm_s)
{
	static const int crash_sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	pid_t parent = getpid();
	pid_t pid;
	unsigned int i;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);	/* the parent died before PDEATHSIG was armed */
		for (i = 0; i < sizeof(crash_sigs) / sizeof(crash_sigs[0]); i++)
			signal(crash_sigs[i], SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		n_children = 0;
		alarm(alarm_s);
		return 0;
	}
	if (n_children < T_MAX_CHILDREN)
		children[n_children++] = pid;
	return pid;
}

static int decode_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

int t_wait(pid_t pid, int timeout_ms)
{
	struct timespec ts = { 0, 1000000 };
	int status;
	long waited = 0;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, timeout_ms < 0 ? 0 : WNOHANG);
		if (r == pid) {
			forget_child(pid);
			return decode_status(status);
		}
		if (r < 0 && errno != EINTR) {
			forget_child(pid);
			return -1;
		}
		if (r == 0) {
			if (waited >= timeout_ms) {
				kill(-pid, SIGKILL);	/* its process group, if it leads one */
				kill(pid, SIGKILL);
				while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
					;
				forget_child(pid);
				fprintf(stderr, "t_wait: child %d still running after %d ms, "
					"killed\n", (int)pid, timeout_ms);
				return -1;
			}
			nanosleep(&ts, NULL);
			waited++;
		}
	}
}

int t_try_wait(pid_t pid)
{
	int status;
	pid_t r;

	do {
		r = waitpid(pid, &status, WNOHANG);
	} while (r < 0 && errno == EINTR);
	if (r == 0)
		return T_STILL_RUNNING;
	forget_child(pid);
	return r == pid ? decode_status(status) : -1;
}

int t_kill_wait(pid_t pid)
{
	kill(pid, SIGKILL);
	return t_wait(pid, -1);
}

int t_kill_group_wait(pid_t pid)
{
	kill(-pid, SIGKILL);	/* ESRCH if it leads no group: then only itself */
	return t_kill_wait(pid);
}

int t_reap_all(void)
{
	int n = (int)n_children;

	while (n_children)
		t_kill_group_wait(children[n_children - 1]);
	return n;
}

uint32_t t_fnv1a(uint32_t h, const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
		h *= 16777619u;
	}
	return h;
}

uint64_t t_seed(void)
{
	static uint64_t seed;
	static bool done;
	const char *env;

	if (done)
		return seed;
	env = getenv("T_SEED");
	if (env && *env) {
		seed = strtoull(env, NULL, 0);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid() << 40;
	}
	done = true;
	fprintf(stderr, "T_SEED=0x%" PRIx64 "\n", seed);
	return seed;
}

void t_rng_init(struct t_rng *r, uint64_t seed)
{
	/* splitmix64 so that close seeds give unrelated streams, and never 0 */
	uint64_t z = seed + 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	r->s = z ? z : 1;
}

uint64_t t_rng_next(struct t_rng *r)
{
	uint64_t x = r->s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545f4914f6cdd1dull;
}

uint32_t t_rng_below(struct t_rng *r, uint32_t n)
{
	return (uint32_t)((t_rng_next(r) >> 32) * n >> 32);
}

void t_rng_fill(struct t_rng *r, void *p, size_t len)
{
	uint8_t *b = p;
	uint64_t x = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if ((i & 7) == 0)
			x = t_rng_next(r);
		b[i] = (uint8_t)x;
		x >>= 8;
	}
}

void t_pattern_fill(void *p, size_t len, uint32_t stream, uint64_t pos)
{
	uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		b[i] = t_pattern_byte(stream, pos + i);
}

bool t_pattern_check(const void *p, size_t len, uint32_t stream, uint64_t pos)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i] != t_pattern_byte(stream, pos + i))
			return false;
	return true;
}

void t_sleep_ms(unsigned int ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000l };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

bool t_wait_word(const uint32_t *word, uint32_t val, int timeout_ms)
{
	int i;

	for (i = 0; i < timeout_ms; i++) {
		if (__atomic_load_n(word, __ATOMIC_ACQUIRE) == val)
			return true;
		t_sleep_ms(1);
	}
	return __atomic_load_n(word, __ATOMIC_ACQUIRE) == val;
}

bool t_wait_at_least(const uint32_t *word, uint32_t at_least, int timeout_ms)
{
	uint64_t deadline = ipcd_deadline((int64_t)timeout_ms * 1000000);

	while (__atomic_load_n(word, __ATOMIC_ACQUIRE) < at_least) {
		if (ipcd_remaining(deadline) == 0)
			return false;
		t_sleep_ms(1);
	}
	return true;
}
