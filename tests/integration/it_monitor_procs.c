/* SPDX-License-Identifier: MIT */
/*
 * it_monitor_procs.c - a real ipcd-monitor and many client processes: 200
 * registering at once (detaching, exiting, or SIGKILLed mid-calls), SIGKILLs
 * at random points with a survivor that keeps getting answers, and the
 * max_processes limit. Afterwards nothing may be left: no process, no fd, no
 * mapping in the monitor, no /dev/shm entry. Then who a process is: one
 * user's silent connections against another's registration, and the
 * privileged-port right of a hello's sender (as root: other users).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
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

/* ---- who a process is (as root: other users) --------------------------- */

#define UID_FLOOD	61011u		/* no passwd entries needed */
#define UID_OTHER	61012u
#define NOBODY		65534u
#define PENDING_MAX	64		/* the monitor's table of connections owing a hello */
#define FLOOD_SOCKS	(4 * PENDING_MAX)

struct ident {
	uint32_t stop;
	uint32_t connects;		/* the flooder's */
	uint32_t dropped;		/* ... closed by the monitor */
	uint32_t go;			/* the parent's steps */
	uint32_t done;			/* the child's */
	uint32_t r_ready;		/* the process put at a pid is what it should be */
	uint32_t connected;		/* STALE_SENDER_LATER: nobody's process connected */
	int32_t p;			/* the connector, or the hello's sender */
	int32_t q;			/* the process that holds the connection after it */
	int32_t rc;			/* registration: 0, or -errno / the refusal */
	int32_t bind80;			/* BIND 127.0.0.1:80 */
	uint32_t welcome_pid;
	char why[256];
};

/* The cases below become other users (setresuid): root only. */
static void need_root(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "note: not root: cannot become other users\n");
		skip();
	}
}

/* The monitor's temp dir is 0700: let other users reach the socket, as /run/ipcd does. */
static void open_dir(struct t_mon *m)
{
	assert_int_equal(chmod(m->dir, 0755), 0);
}

/* In a child: become @uid (gid and groups too); keep CAP_NET_BIND_SERVICE if @cap. */
static void become(uid_t uid, bool cap)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (cap)
		T_CHECK_EQ(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), 0);
	T_CHECK_EQ(setgroups(0, NULL), 0);
	T_CHECK_EQ(setresgid(uid, uid, uid), 0);
	T_CHECK_EQ(setresuid(uid, uid, uid), 0);
	if (!cap)
		return;
	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = 1u << CAP_NET_BIND_SERVICE;
	T_CHECK_EQ(syscall(SYS_capset, &hdr, data), 0);
}

/* BIND 127.0.0.1:80 (child side): the status. */
static int bind80(struct ipcd_attach *a)
{
	struct ipcd_bind_req b = { .port = 80 };
	struct ipcd_resp resp;
	int rc;

	b.addr[10] = b.addr[11] = 0xff;
	b.addr[12] = 127;
	b.addr[15] = 1;
	rc = t_call(a, IPCD_OP_BIND, &b, sizeof(b), &resp, T_CALL_TIMEOUT_NS);
	return rc ? rc : resp.status;
}

/*
 * A hello on @sock, connected already. @creds: as a library does (its
 * SCM_CREDENTIALS and IPCD_CTL_HELLO_CREDS); else as an older library, or a
 * hand-made client, does.
 */
static int raw_hello(int sock, bool creds)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} u;
	struct ipcd_ctl_hello h = {
		.magic = IPCD_CTL_MAGIC,
		.abi_major = IPCD_SHM_ABI_MAJOR,
		.abi_minor = IPCD_SHM_ABI_MINOR,
		.kind = IPCD_CTL_CLIENT,
		.flags = creds ? IPCD_CTL_HELLO_CREDS : 0,
		.comm = "it-ident",
	};
	struct ucred uc = { .pid = getpid(), .uid = geteuid(), .gid = getegid() };
	struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (creds) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_CREDENTIALS;
		cm->cmsg_len = CMSG_LEN(sizeof(uc));
		memcpy(CMSG_DATA(cm), &uc, sizeof(uc));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(h) ? 0 : -errno;
}

/* The rest of ipcd_attach() on @sock, hello sent: the welcome, the mappings. */
static int raw_welcome(int sock, struct ipcd_attach *a)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int fds[IPCD_CTL_MAX_FDS];
	unsigned int nfds = 0;
	ssize_t n;

	memset(a, 0, sizeof(*a));
	a->sock = sock;
	a->wake_fd = -1;
	if (poll(&p, 1, T_WAIT_MS) != 1)
		return -ETIMEDOUT;
	n = ipcd_ctl_recv(sock, &a->welcome, sizeof(a->welcome), MSG_DONTWAIT, fds,
			  IPCD_CTL_MAX_FDS, &nfds);
	if (n == 0)
		return -ECONNRESET;
	if (n != (ssize_t)sizeof(a->welcome))
		return n < 0 ? (int)n : -EPROTO;
	if (a->welcome.status)
		return a->welcome.status;
	if (nfds != IPCD_CTL_NFDS)
		return -EPROTO;
	if (ipcd_region_map(fds[IPCD_CTL_FD_CLIENT], IPCD_REGION_CLIENT, &a->client_reg) ||
	    ipcd_region_map(fds[IPCD_CTL_FD_GLOBAL], IPCD_REGION_GLOBAL, &a->global_reg) ||
	    ipcd_reqq_chan_attach(&a->client_reg, &a->cl.chan))
		return -EPROTO;
	a->wake_fd = fds[IPCD_CTL_FD_WAKE];
	a->gctl = ipcd_region_area(&a->global_reg, IPCD_AREA_GLOBAL_CTL, NULL);
	if (a->welcome.queue_mode == IPCD_QMODE_SHARED) {
		size_t size;
		void *q = ipcd_region_area(&a->global_reg, IPCD_AREA_GLOBAL_MPSC, &size);

		if (!q || ipcd_mpsc_attach(&a->db, q, size, 0))
			return -EPROTO;
		a->cl.db = &a->db;
	}
	a->cl.wake_fd = a->wake_fd;
	return 0;
}

/* Child side: the welcome on @sock, then BIND port 80; both results in @sh. */
static void welcome_and_bind80(int sock, struct ident *sh)
{
	struct ipcd_attach a;

	sh->rc = raw_welcome(sock, &a);
	sh->welcome_pid = a.welcome.pid;
	sh->bind80 = sh->rc ? 1 : bind80(&a);
}

/* ---- one user's silent connections -------------------------------------- */

/*
 * As UID_FLOOD: keep FLOOD_SOCKS connections to the control socket that
 * never say hello, each one the monitor closes made again at once.
 */
static void __attribute__((noreturn)) flooder(const struct t_mon *m, struct ident *sh)
{
	static struct pollfd p[FLOOD_SOCKS];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned int i;

	become(UID_FLOOD, false);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", m->sock);
	for (i = 0; i < FLOOD_SOCKS; i++)
		p[i].fd = -1;
	while (!ipcd_load_acquire(&sh->stop)) {
		for (i = 0; i < FLOOD_SOCKS; i++) {
			if (p[i].fd >= 0 && p[i].revents) {
				close(p[i].fd);
				p[i].fd = -1;
				ipcd_fetch_add(&sh->dropped, 1);
			}
			p[i].revents = 0;
			if (p[i].fd < 0) {
				int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
						0);

				if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
					p[i].fd = fd;
					p[i].events = POLLRDHUP;
					ipcd_fetch_add(&sh->connects, 1);
				} else if (fd >= 0) {
					close(fd);
				}
			}
		}
		poll(p, FLOOD_SOCKS, 10);
	}
	_exit(0);
}

/* As @uid: register (the library's way), one call; 0 or the error, why in @sh. */
static void __attribute__((noreturn)) share_client(const struct t_mon *m, struct ident *sh,
						   uid_t uid)
{
	struct ipcd_attach a;
	int rc;

	become(uid, false);
	rc = ipcd_attach(m->sock, "it-share", &a, sh->why, sizeof(sh->why));
	if (rc) {
		fprintf(stderr, "[uid %u] attach: %d: %s\n", uid, rc, sh->why);
		_exit(2);
	}
	T_CHECK_EQ(t_echo_check(&a, (uint32_t)getpid(), 0, 8), 0);
	ipcd_detach(&a);
	_exit(0);
}

/*
 * One user keeps four times the monitor's table of connections that owe a
 * hello, silent (isolation finding e4): another user's process registers
 * all the same (within its share, it takes back a slot lent to the
 * flooder), and so does the flooding user's own (its hello is there when the
 * monitor takes its connection, or its library connects again). Before,
 * the flood held every slot for 1 s each and everyone else's registration
 * waited behind it in the kernel's backlog.
 */
static void test_pending_share(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct ident *sh;
	pid_t flood, pid;

	need_root();
	sh = t_shm_alloc(sizeof(*sh));
	open_dir(m);
	t_mon_start(m);
	flood = t_fork(T_CHILD_ALARM);
	if (flood == 0)
		flooder(m, sh);
	/* The flood is steady: the monitor has closed more of them than it holds. */
	if (!t_wait_at_least(&sh->dropped, FLOOD_SOCKS, T_WAIT_MS))
		fail_msg("the monitor closed only %u of the flood's %u connections",
			 sh->dropped, sh->connects);

	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		share_client(m, sh, UID_OTHER);
	if (t_wait(pid, T_WAIT_MS) != 0)
		fail_msg("uid %u could not register while uid %u flooded the control socket "
			 "(%u silent connections so far): %s", UID_OTHER, UID_FLOOD, sh->connects,
			 sh->why);
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		share_client(m, sh, UID_FLOOD);
	if (t_wait(pid, T_WAIT_MS) != 0)
		fail_msg("the flooding uid's own program could not register: %s", sh->why);

	ipcd_store_release(&sh->stop, 1);
	assert_int_equal(t_wait(flood, T_WAIT_MS), 0);
	assert_true(t_mon_log_contains(m, "connections that owe a hello, past its share of 16"));
	assert_int_equal(t_ctl_num(m, "counters", "registered"), 2);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	final_client_ok(m);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/* ---- the privileged-port right of a hello's sender ---------------------- */

/* As @uid (with CAP_NET_BIND_SERVICE if @cap): ipcd_attach(), then BIND port 80. */
static void __attribute__((noreturn)) attach_bind80(const struct t_mon *m, struct ident *sh,
						    uid_t uid, bool cap, bool userns)
{
	struct ipcd_attach a;

	become(uid, cap);
	if (userns && unshare(CLONE_NEWUSER) < 0) {
		snprintf(sh->why, sizeof(sh->why), "unshare(CLONE_NEWUSER): %s", strerror(errno));
		_exit(T_EXIT_SKIP);
	}
	sh->rc = ipcd_attach(m->sock, "it-priv", &a, sh->why, sizeof(sh->why));
	if (sh->rc)
		_exit(2);
	sh->welcome_pid = a.welcome.pid;
	sh->bind80 = bind80(&a);
	ipcd_detach(&a);
	_exit(0);
}

/* Run attach_bind80() in a child; its BIND status, or fail. T_EXIT_SKIP if it could not try. */
static int run_attach_bind80(const struct t_mon *m, struct ident *sh, uid_t uid, bool cap,
			     bool userns)
{
	pid_t pid = t_fork(T_CHILD_ALARM);
	int code;

	if (pid == 0)
		attach_bind80(m, sh, uid, cap, userns);
	code = t_wait(pid, T_WAIT_MS);
	if (code == T_EXIT_SKIP)
		return T_EXIT_SKIP;
	if (code != 0)
		fail_msg("uid %u%s: registration: %d: %s", uid, cap ? " + CAP_NET_BIND_SERVICE" : "",
			 sh->rc, sh->why);
	assert_int_equal(sh->welcome_pid, pid);
	return sh->bind80;
}

/*
 * Root connects, then (a child of) it drops to nobody and says hello: the
 * right to ports below 1024 is judged on the hello's sender, never on who
 * connected. A hello without IPCD_CTL_HELLO_CREDS (an older library) is
 * registered without that right; a library's hello whose credentials are
 * not those of the connect is refused.
 */
static void __attribute__((noreturn)) root_connects(const struct t_mon *m, struct ident *sh,
						    bool creds)
{
	int sock = t_connect(m->sock);

	T_CHECK(sock >= 0);
	become(NOBODY, false);
	T_CHECK_EQ(raw_hello(sock, creds), 0);
	welcome_and_bind80(sock, sh);
	_exit(0);
}

static void test_hello_identity(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct ident *sh;
	pid_t pid;
	int rc;

	need_root();
	sh = t_shm_alloc(sizeof(*sh));
	open_dir(m);
	t_mon_start(m);

	/* The control: root may, nobody may not, nobody with the capability may. */
	assert_int_equal(run_attach_bind80(m, sh, 0, false, false), 0);
	assert_int_equal(run_attach_bind80(m, sh, NOBODY, false, false), -EACCES);
	assert_int_equal(run_attach_bind80(m, sh, NOBODY, true, false), 0);

	/* Capabilities in a user namespace of its own are worth nothing here. */
	rc = run_attach_bind80(m, sh, NOBODY, false, true);
	if (rc == T_EXIT_SKIP)
		fprintf(stderr, "note: no user namespace for nobody (%s): case not run\n", sh->why);
	else
		assert_int_equal(rc, -EACCES);

	/* Root connected, nobody said hello, as an older library would. */
	memset(sh, 0, sizeof(*sh));
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		root_connects(m, sh, false);
	assert_int_equal(t_wait(pid, T_WAIT_MS), 0);
	assert_int_equal(sh->rc, 0);
	assert_int_equal(sh->welcome_pid, pid);
	assert_int_equal(sh->bind80, -EACCES);

	/* ... with its credentials, as a library does: they are not the connect's. */
	memset(sh, 0, sizeof(*sh));
	pid = t_fork(T_CHILD_ALARM);
	if (pid == 0)
		root_connects(m, sh, true);
	assert_int_equal(t_wait(pid, T_WAIT_MS), 0);
	assert_int_equal(sh->rc, -EPERM);

	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	assert_int_equal(t_ctl_num(m, "counters", "faults"), 0);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

/*
 * A child with pid @want (ns_last_pid, as root), running as @uid with
 * CAP_NET_BIND_SERVICE if @cap (root stays root), asleep until killed; it
 * sets sh->r_ready once it is what it should be. Another process on the host
 * may take the pid first: tried again; returns the child (maybe not @want),
 * or 0 if pids cannot be chosen here.
 */
static pid_t fork_at_pid(pid_t want, uid_t uid, bool cap, struct ident *sh)
{
	pid_t pid = 0;
	int i;

	for (i = 0; i < 100; i++) {
		int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
		char buf[16];
		int n = snprintf(buf, sizeof(buf), "%d", (int)want - 1);

		if (fd < 0 || write(fd, buf, (size_t)n) != n) {
			if (fd >= 0)
				close(fd);
			return 0;
		}
		close(fd);
		ipcd_store_release(&sh->r_ready, 0);
		pid = t_fork(T_CHILD_ALARM);
		if (pid == 0) {
			if (uid)
				become(uid, cap);
			ipcd_store_release(&sh->r_ready, 1);
			for (;;)
				pause();
		}
		if (pid == want)
			break;
		t_kill_wait(pid);
	}
	if (pid == want && !t_wait_at_least(&sh->r_ready, 1, T_WAIT_MS))
		fail_msg("the process at pid %d did not get ready", (int)pid);
	return pid;
}

/*
 * The holder of a connection once the process that made it has exited: once
 * the parent gave that pid away (go 2), says hello if @say_hello, takes the
 * welcome and BINDs port 80; waits for go 3.
 */
static void __attribute__((noreturn)) holder(int sock, struct ident *sh, bool say_hello)
{
	alarm(T_CHILD_ALARM);		/* fork() does not inherit t_fork()'s hang guard */
	while (ipcd_load_acquire(&sh->go) < 2)
		t_sleep_ms(1);
	sh->rc = say_hello ? raw_hello(sock, false) : 0;
	if (!sh->rc)
		welcome_and_bind80(sock, sh);
	ipcd_store_release(&sh->done, 1);
	while (ipcd_load_acquire(&sh->go) < 3)
		t_sleep_ms(1);
	_exit(0);
}

enum stale { STALE_CONNECTOR, STALE_SENDER_ROOT, STALE_SENDER_LATER, STALE_SENDER_SOON };

/* The process given the pid: nobody's, with CAP_NET_BIND_SERVICE (else root's). */
static bool stale_nobody_cap(enum stale how)
{
	return how == STALE_SENDER_LATER || how == STALE_SENDER_SOON;
}

/* As nobody: connect, say hello unless STALE_CONNECTOR, fork the holder, exit. */
static void __attribute__((noreturn)) stale_child(const struct t_mon *m, struct ident *sh,
						  enum stale how)
{
	int sock;
	pid_t q;

	become(NOBODY, false);
	sock = t_connect(m->sock);
	T_CHECK(sock >= 0);
	if (how == STALE_SENDER_LATER) {
		ipcd_store_release(&sh->connected, 1);
		while (ipcd_load_acquire(&sh->go) < 1)	/* the monitor took it, and is stopped */
			t_sleep_ms(1);
	}
	if (how != STALE_CONNECTOR)
		T_CHECK_EQ(raw_hello(sock, true), 0);
	q = fork();
	T_CHECK(q >= 0);
	if (q == 0)
		holder(sock, sh, how == STALE_CONNECTOR);
	sh->p = getpid();
	sh->q = q;
	_exit(0);
}

/* The monitor's fd count reaches @n (it took a connection): hang guard only. */
static void wait_mon_fds(const struct t_mon *m, int n)
{
	uint64_t deadline = ipcd_deadline((int64_t)T_WAIT_MS * T_NSEC_PER_MSEC);

	while (t_mon_fd_count(m) < n) {
		if (ipcd_remaining(deadline) == 0)
			fail_msg("the monitor did not take the connection (%d fds, want %d)",
				 t_mon_fd_count(m), n);
		t_sleep_ms(1);
	}
}

/* CLOCK_BOOTTIME, the clock of /proc/PID/stat's start time. */
static uint64_t boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Let @ticks clock ticks (/proc/PID/stat's unit) begin after now. */
static void pass_ticks(unsigned int ticks)
{
	uint64_t tick = 1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK);
	uint64_t until = (boottime_ns() / tick + ticks) * tick;

	while (boottime_ns() <= until)
		t_sleep_ms(1);
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD	77	/* Linux 6.5; asm-generic value */
#endif

/* Can this kernel give a pidfd of a socket's peer (Linux 6.5+)? */
static bool have_peer_pidfd(void)
{
	socklen_t len = sizeof(int);
	int sv[2], pidfd;
	bool ok;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return false;
	ok = getsockopt(sv[0], SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0;
	if (ok)
		close(pidfd);
	close(sv[0]);
	close(sv[1]);
	return ok;
}

/*
 * One stale pid: the process a pid of the handshake named is gone, and
 * another process has that pid when the monitor looks (isolation finding
 * e5). The registration must not get that process's right to bind port 80.
 * Returns false (with a note) if the case could not be set up.
 *
 * STALE_CONNECTOR: nobody connects and exits, root gets its pid, nobody's
 *   child says hello. The pid of the connect is root's process now; the
 *   hello's sender is nobody's child.
 * STALE_SENDER_ROOT: the monitor stopped, nobody connects, says hello and
 *   exits (its child holds the connection); root gets its pid before the
 *   monitor reads the hello: the process at the hello's pid runs as
 *   another user.
 * STALE_SENDER_LATER: as STALE_SENDER_ROOT, but the monitor is stopped once
 *   it has taken the connection, and the pid goes to a process of nobody's
 *   with CAP_NET_BIND_SERVICE, two clock ticks later: it started after the
 *   connection was taken (/proc/PID/stat).
 * STALE_SENDER_SOON: as STALE_SENDER_ROOT, but the pid goes to a process of
 *   nobody's with CAP_NET_BIND_SERVICE: same user, started before the
 *   monitor took the connection; only the connector's pidfd tells
 *   (SO_PEERPIDFD, Linux 6.5+).
 */
static bool stale_case(const struct t_mon *m, struct ident *sh, enum stale how)
{
	bool stopped = false;
	pid_t p, r;
	int base;

	memset(sh, 0, sizeof(*sh));
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	base = t_mon_fd_baseline(m);
	if (how == STALE_SENDER_ROOT || how == STALE_SENDER_SOON) {
		kill(m->pid, SIGSTOP);
		stopped = true;
	}
	p = t_fork(T_CHILD_ALARM);
	if (p == 0)
		stale_child(m, sh, how);
	if (how == STALE_SENDER_LATER) {
		if (!t_wait_at_least(&sh->connected, 1, T_WAIT_MS))
			fail_msg("nobody's process did not connect");
		wait_mon_fds(m, base + 1);
		kill(m->pid, SIGSTOP);
		stopped = true;
		ipcd_store_release(&sh->go, 1);
		pass_ticks(2);		/* /proc/PID/stat's start time can tell: a later tick */
	}
	assert_int_equal(t_wait(p, T_WAIT_MS), 0);	/* reaped: its pid is free */
	assert_int_equal(sh->p, p);
	r = fork_at_pid(p, stale_nobody_cap(how) ? NOBODY : 0, stale_nobody_cap(how), sh);
	if (stopped)
		kill(m->pid, SIGCONT);
	if (r != p) {
		kill(sh->q, SIGKILL);
		if (r > 0)
			t_kill_wait(r);
		fprintf(stderr, "note: could not give pid %d to another process (ns_last_pid): "
			"stale pid case %d not run\n", (int)p, how);
		return false;
	}
	ipcd_store_release(&sh->go, 2);
	if (!t_wait_at_least(&sh->done, 1, T_WAIT_MS))
		fail_msg("stale pid case %d: the holder of the connection did not finish", how);
	ipcd_store_release(&sh->go, 3);
	kill(sh->q, SIGKILL);
	t_kill_wait(r);
	/* Silent while its pid was given away: the monitor may have dropped it (1 s). */
	if ((how == STALE_CONNECTOR || how == STALE_SENDER_LATER) &&
	    (sh->rc == -ECONNRESET || sh->rc == -EPIPE) &&
	    t_mon_log_contains(m, "said no hello within 1 s")) {
		fprintf(stderr, "note: the monitor was stopped past its hello timeout: stale pid "
			"case %d not run\n", how);
		return false;
	}
	if (sh->rc)
		fail_msg("stale pid case %d: the hello was refused: %d", how, sh->rc);
	assert_int_equal(sh->welcome_pid, how == STALE_CONNECTOR ? (uint32_t)sh->q : (uint32_t)p);
	if (sh->bind80 != -EACCES)
		fail_msg("stale pid case %d: nobody's registration got the right to bind port 80 "
			 "of the process that took a pid of its handshake: BIND -> %d", how,
			 sh->bind80);
	return true;
}

static void test_stale_pid(void **state)
{
	struct t_state *s = *state;
	struct t_mon *m = &s->mon;
	struct ident *sh;

	need_root();
	sh = t_shm_alloc(sizeof(*sh));
	open_dir(m);
	t_mon_start(m);
	stale_case(m, sh, STALE_CONNECTOR);
	if (stale_case(m, sh, STALE_SENDER_ROOT))
		assert_true(t_mon_log_contains(m, "runs as another user"));
	if (stale_case(m, sh, STALE_SENDER_LATER))
		assert_true(t_mon_log_contains(m, "started after it connected"));
	if (have_peer_pidfd()) {
		if (stale_case(m, sh, STALE_SENDER_SOON))
			assert_true(t_mon_log_contains(m, "the process that connected is gone"));
	} else {
		fprintf(stderr, "note: no SO_PEERPIDFD (Linux < 6.5): the monitor cannot tell a "
			"pid reused before the accept by a process of the same user; case not "
			"run\n");
	}
	assert_int_equal(t_ctl_wait_num(m, "status", "processes", 0), 0);
	t_mon_stop(m);
	t_shm_free(sh, sizeof(*sh));
	T_PASSED(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_BOTH(test_many_processes),
		T_BOTH(test_random_kills),
		T_BOTH(test_registration_burst),
		T_BOTH(test_max_processes),
		T_BOTH(test_pending_share),
		T_ONCE(test_hello_identity),
		T_ONCE(test_stale_pid),
	};

	if (getenv("T_FILTER"))		/* e.g. T_FILTER='test_stale*' */
		cmocka_set_test_filter(getenv("T_FILTER"));

	return cmocka_run_group_tests(tests, NULL, NULL);
}
