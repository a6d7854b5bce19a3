/* SPDX-License-Identifier: MIT */
/* fz.c - what every fuzz target shares: the failed-invariant report. */
#include <stdio.h>
#include <stdlib.h>

#include "fz.h"

void fz_fail(const char *file, int line, const char *what)
{
	/* fd 2, not stderr: the monitor fixture points stderr at /dev/null (fx.c). */
	dprintf(2, "%s:%d: invariant broken: %s\n", file, line, what);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * The code under test logs to stderr (the monitor's log lines, a region's
 * version mismatch): at fuzzing speed that is noise, so stderr goes to
 * /dev/null unless IPCD_FUZZ_LOG is set. libFuzzer keeps its own copy of
 * the stream it reports on, and the sanitizers write to fd 2 directly, so
 * their reports still show.
 */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FILE *null;

	(void)argc;
	(void)argv;
	if (getenv("IPCD_FUZZ_LOG"))
		return 0;
	null = fopen("/dev/null", "we");
	if (null)
		stderr = null;
	return 0;
}
