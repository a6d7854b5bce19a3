/* SPDX-License-Identifier: MIT */
/* main.c - ipcd-monitor: arguments, ordered init, the poll loop, signals. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "monitor.h"

struct monitor mon = { .epfd = -1, .sigfd = -1, .lsock = -1 };

/* ---- init steps --------------------------------------------------------- */

static int epoll_init(void)
{
	mon.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (mon.epfd < 0) {
		log_err("epoll_create1: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static void epoll_exit(void)
{
	close(mon.epfd);
	mon.epfd = -1;
}

static int signals_init(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = MON_EV(MON_EV_SIGNAL, 0) };
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	mon.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (mon.sigfd < 0 || epoll_ctl(mon.epfd, EPOLL_CTL_ADD, mon.sigfd, &ev) < 0) {
		log_err("signalfd: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static void signals_exit(void)
{
	close(mon.sigfd);
	mon.sigfd = -1;
}

static int pin_core(int32_t core)
{
	cpu_set_t set;

	if (core < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(core, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0) {
		log_err("core = %d: cannot pin the poll loop there: %s (this machine has %ld "
			"CPUs online)", core, strerror(errno), sysconf(_SC_NPROCESSORS_ONLN));
		return -errno;
	}
	log_info("poll loop pinned to CPU %d", core);
	return 0;
}

static int cpu_init(void)
{
	return pin_core(mon.cfg.core);
}

static uint32_t pow2_at_least(uint32_t n)
{
	uint32_t p = IPCD_MPSC_MIN_SLOTS;

	while (p < n)
		p <<= 1;
	return p;
}

static int global_init(void)
{
	bool shared = mon.cfg.queue_mode == IPCD_QMODE_SHARED;
	uint32_t slots = pow2_at_least(mon.cfg.max_processes);
	size_t sizes[2] = {
		[IPCD_AREA_GLOBAL_CTL] = sizeof(struct ipcd_global_ctl),
		[IPCD_AREA_GLOBAL_MPSC] = shared ? ipcd_mpsc_mem_size(slots) : 0,
	};
	size_t mpsc_size;
	void *mpsc;
	int rc;

	rc = ipcd_region_create("ipcd-global", IPCD_REGION_GLOBAL, sizes, shared ? 2 : 1,
				&mon.global);
	if (rc) {
		log_err("global region: %s", strerror(-rc));
		return rc;
	}
	mon.gctl = ipcd_region_area(&mon.global, IPCD_AREA_GLOBAL_CTL, NULL);
	mon.gctl->queue_mode = mon.cfg.queue_mode;
	mon.gctl->monitor_pid = (uint32_t)getpid();
	mon.gctl->start_ns = mon.start_ns;
	if (shared) {
		/*
		 * One slot per process is enough: each has at most one doorbell in
		 * flight. The rest of the capacity absorbs garbage from a hostile one.
		 */
		mpsc = ipcd_region_area(&mon.global, IPCD_AREA_GLOBAL_MPSC, &mpsc_size);
		rc = ipcd_mpsc_init(mpsc, slots);
		if (!rc)
			rc = ipcd_mpsc_attach(&mon.db, mpsc, mpsc_size,
					      (uint64_t)mon.cfg.skip_us * 1000);
		if (rc) {
			log_err("doorbell queue: %s", strerror(-rc));
			ipcd_region_close(&mon.global);
			return rc;
		}
	}
	ipcd_region_publish(&mon.global);
	return 0;
}

static void global_exit(void)
{
	ipcd_region_close(&mon.global);
	mon.gctl = NULL;
}

/* The kernel's ephemeral range, so accelerated and kernel ports look alike. */
static void ephemeral_range(uint16_t *lo, uint16_t *hi)
{
	unsigned int a = 32768, b = 60999;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");

	if (f) {
		if (fscanf(f, "%u %u", &a, &b) != 2 || a < 1 || b > 65535 || a > b) {
			a = 32768;
			b = 60999;
		}
		fclose(f);
	}
	*lo = (uint16_t)a;
	*hi = (uint16_t)b;
}

static int ns_init(void)
{
	uint16_t lo, hi;
	int rc;

	ephemeral_range(&lo, &hi);
	rc = ipcd_ns_create(mon.cfg.max_connections, lo, hi, &mon.ns);
	if (rc)
		log_err("port namespace: %s", strerror(-rc));
	return rc;
}

static void ns_exit(void)
{
	ipcd_ns_destroy(mon.ns);
	mon.ns = NULL;
}

/* Ordered like Caladan's iok_init_handlers[]; undone in reverse on failure and exit. */
static const struct init_step {
	const char *name;
	int (*init)(void);
	void (*exit)(void);
} init_steps[] = {
	{ "epoll", epoll_init, epoll_exit },
	{ "signals", signals_init, signals_exit },
	{ "cpu", cpu_init, NULL },
	{ "global region", global_init, global_exit },
	{ "port namespace", ns_init, ns_exit },
	{ "connections", conns_init, conns_exit },
	{ "clients", clients_init, clients_exit },
	{ "cluster", cluster_init, cluster_exit },
	{ "control socket", control_init, control_exit },
};

static void undo_init(size_t done)
{
	while (done--)
		if (init_steps[done].exit)
			init_steps[done].exit();
}

static int run_init(void)
{
	size_t i;
	int rc;

	for (i = 0; i < IPCD_ARRAY_SIZE(init_steps); i++) {
		rc = init_steps[i].init();
		if (rc) {
			log_err("start-up failed at step '%s'", init_steps[i].name);
			undo_init(i);
			return rc;
		}
	}
	return 0;
}

/* ---- reload ------------------------------------------------------------- */

static void warn_fixed(const char *key, bool changed)
{
	if (changed)
		log_warn("reload: '%s' changed but takes effect only after a restart", key);
}

static void reload_config(void)
{
	struct ipcd_config next;
	char err[512];
	int rc;

	rc = ipcd_config_load(mon.config_path, mon.config_must_exist, &next, err, sizeof(err));
	if (rc) {
		log_err("reload: %s; keeping the running configuration", err);
		return;
	}
	warn_fixed("queue_mode", next.queue_mode != mon.cfg.queue_mode);
	warn_fixed("control_socket", strcmp(next.control_socket, mon.cfg.control_socket) != 0);
	warn_fixed("max_processes", next.max_processes != mon.cfg.max_processes);
	warn_fixed("max_connections", next.max_connections != mon.cfg.max_connections);
	warn_fixed("request_ring_bytes", next.request_ring_bytes != mon.cfg.request_ring_bytes);
	if (next.core != mon.cfg.core && pin_core(next.core) == 0)
		mon.cfg.core = next.core;
	mon.cfg.spin_us = next.spin_us;
	mon.cfg.skip_us = next.skip_us;
	mon.db.skip_ns = (uint64_t)next.skip_us * 1000;
	mon.cfg.ring_bytes = next.ring_bytes;	/* for connections made from now on */
	mon.cfg.ring_max_bytes = next.ring_max_bytes;
	/* Limits: for connections made from now on; those over them stay. */
	mon.cfg.max_process_connections = next.max_process_connections;
	mon.cfg.max_memory = next.max_memory;
	mon.cfg.max_process_memory = next.max_process_memory;
	mon.cfg.limit_action = next.limit_action;
	conns_limits_apply();
	mon.cfg.log_level = next.log_level;
	ipcd_log_set_level(next.log_level);
	mon.cfg.n_rules = next.n_rules;
	memcpy(mon.cfg.rules, next.rules, sizeof(next.rules));
	/* The links and the hosts' numbers are made at start (cluster.c). */
	warn_fixed("peer", next.n_peers != mon.cfg.n_peers ||
			   memcmp(next.peers, mon.cfg.peers, sizeof(next.peers)) != 0);
	log_info("reload: configuration from %s applied",
		 mon.config_path ? mon.config_path : "<embedded default>");
}

/* ---- the loop ----------------------------------------------------------- */

static void on_signal(void)
{
	struct signalfd_siginfo si;

	while (read(mon.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			mon.reload = true;
		} else if (mon.stop) {
			log_info("signal %u again: exiting now", si.ssi_signo);
			mon.drain_end = 0;
		} else {
			log_info("signal %u: draining and exiting", si.ssi_signo);
			mon.stop = true;
		}
	}
}

/*
 * Handle what epoll reports; @timeout_ns < 0 waits forever, 0 only looks.
 * Returns the number of events.
 */
static int handle_events(int64_t timeout_ns)
{
	struct epoll_event ev[32];
	struct timespec ts, *tsp = NULL;
	int i, n;

	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	n = epoll_pwait2(mon.epfd, ev, (int)IPCD_ARRAY_SIZE(ev), tsp, NULL);
	for (i = 0; i < n; i++) {
		uint64_t tag = ev[i].data.u64;

		switch (MON_EV_KIND(tag)) {
		case MON_EV_LISTEN:
			control_accept();
			break;
		case MON_EV_SIGNAL:
			on_signal();
			break;
		case MON_EV_WAKE:
			ipcd_reqq_srv_woken(mon.srv);
			mon.ctr.wakeups++;
			break;
		default:
			mon_object_event(tag, ev[i].events);
			break;
		}
	}
	return n;
}

static bool any_pending(void)
{
	unsigned int i;

	for (i = 0; i < MON_MAX_PENDING; i++)
		if (mon.pending[i].sock >= 0)
			return true;
	return false;
}

static unsigned int poll_turn(void)
{
	unsigned int n = ipcd_reqq_srv_poll(mon.srv, MON_REQ_BUDGET);

	clients_reap_dead();
	ipcd_store_relaxed(&mon.gctl->heartbeat, ++mon.ctr.loops);
	return n;
}

/*
 * After SIGTERM (or SIGINT), before exiting: no new process registers (the
 * socket's path is free for a successor at once) and no new connection is
 * made (CONNECT and UCONNECT are refused: the kernel's), while requests are
 * still served, so that connections already made but not accepted yet get
 * their ACCEPT or UCLAIM, for up to MON_DRAIN_NS: those would otherwise go
 * with us (their connectors then see a reset: docs/reliability.md). A second
 * signal ends the wait. True once the loop may end.
 */
#define MON_DRAIN_NS	3000000000ull

static bool stopping(void)
{
	uint32_t n;

	if (!mon.stop)
		return false;
	n = conns_unaccepted();
	if (!mon.draining) {
		mon.draining = true;
		mon.drain_end = ipcd_now_ns() + MON_DRAIN_NS;
		control_exit();
		if (n)
			log_info("stopping: no new connections; waiting up to %llu s for %u not "
				 "accepted yet", MON_DRAIN_NS / 1000000000ull, n);
	}
	if (n && ipcd_now_ns() >= mon.drain_end)
		log_warn("stopping with %u connections not accepted: their connectors will see "
			 "a reset", n);
	return n == 0 || ipcd_now_ns() >= mon.drain_end;
}

/*
 * Flat loop (Caladan): requests first, each turn a bounded batch; the control
 * sockets when idle (and every MON_CONTROL_EVERY busy turns, so a flood of
 * requests cannot starve registrations and deaths); after spin_us without
 * work, sleep in epoll until a client's eventfd signal, a socket event, or
 * the bound the request server gives (shared mode's sweep).
 */
static void run_loop(void)
{
	uint64_t spin_ns = (uint64_t)mon.cfg.spin_us * 1000;
	uint64_t last_work = ipcd_now_ns();
	unsigned int turns = 0;

	while (!stopping()) {
		int64_t bound;
		bool orphans;
		int cl_ms;

		if (poll_turn()) {
			if (cluster_backlogged())
				cluster_link_event();	/* send completions reopen the window */
			if (++turns % MON_CONTROL_EVERY == 0) {
				handle_events(0);
				cluster_tick();	/* keepalives and deadlines of a busy monitor */
			}
			last_work = ipcd_now_ns();
			continue;
		}
		if (++turns % MON_CONTROL_EVERY == 0)
			handle_events(0);
		if (ipcd_now_ns() - last_work < spin_ns) {
			ipcd_cpu_relax();
			continue;
		}
		/* The periodic look at epoll may have seen SIGTERM: never sleep past it. */
		if (mon.stop && !mon.draining)
			continue;
		if (mon.reload) {
			mon.reload = false;
			reload_config();
			spin_ns = (uint64_t)mon.cfg.spin_us * 1000;
		}
		control_pending_expire(ipcd_now_ns());
		orphans = conns_orphans_check(ipcd_now_ns());
		bound = ipcd_reqq_srv_prepare_sleep(mon.srv);
		if (bound == 0)
			continue;
		if ((any_pending() || orphans) && (bound < 0 || (uint64_t)bound > MON_HOUSEKEEP_NS))
			bound = (int64_t)MON_HOUSEKEEP_NS;
		/* Lazy requests (a CLOSE) ring no doorbell: look now and then while they may come. */
		if ((conns_active() || mon.draining) &&
		    (bound < 0 || (uint64_t)bound > IPCD_REQQ_LAZY_NS))
			bound = (int64_t)IPCD_REQQ_LAZY_NS;
		/* The cluster's timers: link retries, connects another host did not answer. */
		cl_ms = cluster_tick();
		if (cl_ms >= 0 && (bound < 0 || (uint64_t)bound > (uint64_t)cl_ms * 1000000))
			bound = (int64_t)cl_ms * 1000000;
		mon.ctr.sleeps++;
		/*
		 * Spin again only after a real event: a timeout (the shared mode's
		 * sweep, a backpressured client's re-check) brings no new work, and
		 * spinning after each one would cost an idle monitor spin_us per
		 * wake-up.
		 */
		if (handle_events(bound) > 0)
			last_work = ipcd_now_ns();
		else
			last_work = 0;
	}
}

/* SIGTERM: no new processes; serve what is queued (bounded), then close everything. */
static void drain(void)
{
	uint64_t end = ipcd_now_ns() + 100000000ull;
	uint64_t served = 0;
	unsigned int n;

	control_exit();
	do {
		n = poll_turn();
		served += n;
	} while (n && ipcd_now_ns() < end);
	log_info("drained %llu queued requests; %u processes will fall back to the kernel",
		 (unsigned long long)served, mon.n_clients);
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ipcd-monitor [--config FILE] [--foreground] [--log-level LEVEL]\n"
		"       ipcd-monitor --check-config FILE\n"
		"       ipcd-monitor --print-default-config\n"
		"\n"
		"The IPC-Direct monitor: one per host. Without a config file it runs on the\n"
		"embedded default (--print-default-config shows it).\n"
		"\n"
		"  -c, --config FILE        config file (default: $IPCD_CONFIG, else %s;\n"
		"                           a missing default file means the embedded default)\n"
		"  -f, --foreground         stay in the foreground and log to stderr\n"
		"                           (default: detach once started, log to syslog)\n"
		"  -l, --log-level LEVEL    error, warn, info or debug (overrides the config)\n"
		"      --check-config FILE  validate FILE and exit (0: valid)\n"
		"      --print-default-config\n"
		"  -h, --help\n"
		"\n"
		"Signals: SIGHUP reloads the config (what can change at run time);\n"
		"SIGTERM or SIGINT drains the request queues and exits, removing the socket.\n",
		IPCD_CONFIG_PATH);
}

static int parse_level(const char *s, enum ipcd_log_level *out)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	unsigned int i;

	for (i = 0; i < IPCD_ARRAY_SIZE(names); i++)
		if (!strcmp(s, names[i])) {
			*out = (enum ipcd_log_level)i;
			return 0;
		}
	return -EINVAL;
}

static void daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0) {
		log_err("fork: %s; staying in the foreground", strerror(errno));
		return;
	}
	if (pid > 0)
		_exit(0);	/* the socket is listening: the caller may connect now */
	setsid();
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	ipcd_log_init(mon.cfg.log_level, true);
	mon.gctl->monitor_pid = (uint32_t)getpid();
}

int main(int argc, char **argv)
{
	enum { OPT_CHECK = 256, OPT_PRINT };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "check-config", required_argument, NULL, OPT_CHECK },
		{ "print-default-config", no_argument, NULL, OPT_PRINT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum ipcd_log_level level = IPCD_LOG_INFO;
	bool foreground = false, level_set = false;
	char err[512];
	int c, rc;

	while ((c = getopt_long(argc, argv, "c:fl:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			mon.config_path = optarg;
			mon.config_must_exist = true;
			break;
		case 'f':
			foreground = true;
			break;
		case 'l':
			if (parse_level(optarg, &level)) {
				fprintf(stderr, "ipcd-monitor: --log-level: expected error, warn, "
					"info or debug, got '%s'\n", optarg);
				return 2;
			}
			level_set = true;
			break;
		case OPT_CHECK:
			rc = ipcd_config_load(optarg, true, &mon.cfg, err, sizeof(err));
			if (rc) {
				fprintf(stderr, "ipcd-monitor: %s\n", err);
				return 1;
			}
			printf("%s: valid\n", optarg);
			return 0;
		case OPT_PRINT:
			fputs(ipcd_default_config, stdout);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ipcd-monitor: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!mon.config_path) {
		mon.config_path = getenv("IPCD_CONFIG");
		mon.config_must_exist = mon.config_path != NULL;
		if (!mon.config_path)
			mon.config_path = IPCD_CONFIG_PATH;
	}
	rc = ipcd_config_load(mon.config_path, mon.config_must_exist, &mon.cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "ipcd-monitor: %s\n", err);
		fprintf(stderr, "ipcd-monitor: not started\n");
		return 1;
	}
	if (!mon.config_must_exist && access(mon.config_path, F_OK) != 0)
		mon.config_path = NULL;		/* running on the embedded default */
	if (level_set)
		mon.cfg.log_level = level;
	ipcd_log_init(mon.cfg.log_level, false);

	mon.start_ns = ipcd_now_ns();
	rc = run_init();
	if (rc) {
		fprintf(stderr, "ipcd-monitor: not started\n");
		return 1;
	}
	log_info("started: queue mode %s, max %u processes, config %s",
		 ipcd_reqq_mode_name(mon.cfg.queue_mode), mon.cfg.max_processes,
		 mon.config_path ? mon.config_path : "<embedded default>");
	{
		struct epoll_event ev = {
			.events = EPOLLIN,
			.data.u64 = MON_EV(MON_EV_WAKE, 0),
		};

		if (epoll_ctl(mon.epfd, EPOLL_CTL_ADD, ipcd_reqq_srv_wake_fd(mon.srv), &ev) < 0) {
			log_err("epoll: wake fd: %s", strerror(errno));
			undo_init(IPCD_ARRAY_SIZE(init_steps));
			return 1;
		}
	}
	if (!foreground)
		daemonize();
	run_loop();
	mon.exiting = true;	/* from here on, processes let go are not dying */
	drain();
	undo_init(IPCD_ARRAY_SIZE(init_steps));
	log_info("stopped");
	return 0;
}
