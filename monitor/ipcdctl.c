/* SPDX-License-Identifier: MIT */
/* ipcdctl.c - ask the monitor what it is doing. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ipcd/compiler.h>
#include <ipcd/ctl.h>

static const struct {
	const char *name;
	uint32_t what;
	const char *help;
} cmds[] = {
	{ "status", IPCD_Q_STATUS, "the monitor: mode, core, processes, config" },
	{ "processes", IPCD_Q_PROCESSES, "registered processes and their requests" },
	{ "listeners", IPCD_Q_LISTENERS, "bound and listening accelerated addresses" },
	{ "connections", IPCD_Q_CONNECTIONS, "connections (TCP, pipes, socketpairs), accelerated or not" },
	{ "counters", IPCD_Q_COUNTERS, "counters per request type, event and fallback reason" },
	{ "queues", IPCD_Q_QUEUES, "request and response queue depths per process" },
	{ "cluster", IPCD_Q_CLUSTER, "RDMA cluster hosts and links; processes' queue pairs and RDMA counters" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: ipcdctl [--socket PATH] [--json] COMMAND\n\n"
		   "Shows the state of the local IPC-Direct monitor. Commands:\n");
	for (i = 0; i < IPCD_ARRAY_SIZE(cmds); i++)
		fprintf(f, "  %-12s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "\n  -s, --socket PATH  control socket (default: $%s, else %s)\n"
		   "  -j, --json         machine-readable output\n"
		   "  -h, --help\n\n"
		   "Non-root users see only their own processes and connections. Exit\n"
		   "status: 0 ok, 1 no monitor or an error talking to it, 2 usage.\n",
		IPCD_CTL_ENV_PATH, IPCD_CTL_DEFAULT_PATH);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ipcd_ctl_hello h = {
		.magic = IPCD_CTL_MAGIC,
		.abi_major = IPCD_SHM_ABI_MAJOR,
		.abi_minor = IPCD_SHM_ABI_MINOR,
		.kind = IPCD_CTL_ADMIN,
		.comm = "ipcdctl",
	};
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ipcd_ctl_query q = { 0 };
	const char *path = getenv(IPCD_CTL_ENV_PATH);
	char buf[IPCD_CTL_CHUNK + 1];
	size_t i;
	int c, fd;

	while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'j':
			q.flags |= IPCD_QF_JSON;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	for (i = 0; i < IPCD_ARRAY_SIZE(cmds); i++)
		if (!strcmp(argv[optind], cmds[i].name))
			q.what = cmds[i].what;
	if (!q.what) {
		fprintf(stderr, "ipcdctl: unknown command '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!path || !*path)
		path = IPCD_CTL_DEFAULT_PATH;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "ipcdctl: socket path too long: %s\n", path);
		return 2;
	}
	strcpy(sa.sun_path, path);

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "ipcdctl: no monitor is running at %s (%s)\n", path,
			strerror(errno));
		return 1;
	}
	if (send(fd, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h) ||
	    send(fd, &q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q)) {
		fprintf(stderr, "ipcdctl: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (;;) {
		ssize_t n = recv(fd, buf, IPCD_CTL_CHUNK, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "ipcdctl: %s: %s\n", path, strerror(errno));
			return 1;
		}
		if (n == 0)
			break;		/* the empty message ends the answer (or EOF) */
		if (n >= (ssize_t)sizeof(struct ipcd_ctl_welcome) &&
		    ((struct ipcd_ctl_welcome *)(void *)buf)->magic == IPCD_CTL_MAGIC) {
			struct ipcd_ctl_welcome *w = (struct ipcd_ctl_welcome *)(void *)buf;

			w->msg[sizeof(w->msg) - 1] = '\0';
			fprintf(stderr, "ipcdctl: the monitor refused: %s\n", w->msg);
			return 1;
		}
		fwrite(buf, 1, (size_t)n, stdout);
	}
	close(fd);
	return 0;
}
