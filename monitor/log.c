/* SPDX-License-Identifier: MIT */
/* log.c - leveled log lines to stderr (foreground) or syslog (daemon). */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

#include "monitor.h"

static enum ipcd_log_level log_level = IPCD_LOG_INFO;
static bool log_syslog;

void ipcd_log_init(enum ipcd_log_level level, bool use_syslog)
{
	log_level = level;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog("ipcd-monitor", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void ipcd_log_set_level(enum ipcd_log_level level)
{
	log_level = level;
}

bool ipcd_log_enabled(enum ipcd_log_level level)
{
	return level <= log_level;
}

void ipcd_log(enum ipcd_log_level level, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog) {
		syslog(prio[level], "%s", line);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ipcd-monitor %-5s %s\n",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, ipcd_log_level_name(level), line);
}
