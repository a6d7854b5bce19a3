/* SPDX-License-Identifier: MIT */
/*
 * ipcd-run [--] CMD ARGS... - run CMD with libipcd.so (next to this binary)
 * first in LD_PRELOAD. Exit codes like a shell: 127 command not found,
 * 126 found but not executable, 2 usage.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: ipcd-run [--] COMMAND [ARGS...]\n"
		   "Runs COMMAND with IPC-Direct (libipcd.so) preloaded.\n");
}

int main(int argc, char **argv)
{
	char self[PATH_MAX], lib[PATH_MAX + 16];
	const char *first = lib;	/* what goes first in LD_PRELOAD */
	const char *old;
	char *val;
	ssize_t n;
	int i = 1;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0 || n >= (ssize_t)sizeof(self) - 1) {
		fprintf(stderr, "ipcd-run: cannot find my own path: %s\n",
			n < 0 ? strerror(errno) : "too long");
		return 127;
	}
	self[n] = '\0';
	snprintf(lib, sizeof(lib), "%s/libipcd.so", dirname(self));
	if (access(lib, R_OK) != 0) {
		fprintf(stderr, "ipcd-run: %s: %s\n", lib, strerror(errno));
		return 127;
	}
#ifdef IPCD_ASAN_RUNTIME
	{
		/*
		 * An ASan build of libipcd.so: the ASan runtime must be the
		 * first object loaded. Leak reports would be about the programs
		 * we run (python, curl...), which are not ours to fix.
		 */
		static char pre[sizeof(IPCD_ASAN_RUNTIME) + 1 + sizeof(lib)];
		const char *ao = getenv("ASAN_OPTIONS");
		char opts[1024];

		snprintf(pre, sizeof(pre), "%s:%s", IPCD_ASAN_RUNTIME, lib);
		first = pre;
		/* Later options win: keep the caller's, turn leak reports off. */
		snprintf(opts, sizeof(opts), "%s%sdetect_leaks=0:verify_asan_link_order=0",
			 ao ? ao : "", ao && *ao ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
#endif
	old = getenv("LD_PRELOAD");
	if (old && *old) {
		val = malloc(strlen(first) + strlen(old) + 2);
		if (!val) {
			perror("ipcd-run");
			return 127;
		}
		sprintf(val, "%s:%s", first, old);
	} else {
		val = (char *)first;
	}
	if (setenv("LD_PRELOAD", val, 1) != 0) {
		perror("ipcd-run: setenv");
		return 127;
	}
	execvp(argv[i], &argv[i]);
	fprintf(stderr, "ipcd-run: %s: %s\n", argv[i], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
