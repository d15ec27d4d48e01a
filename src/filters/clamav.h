/*
 * clamav.h — the clamav filter: viruses, by clamd (filters/clamd.h). The
 * worker has no network, so the main process asks clamd (its table row has
 * no run): the daemon streams each message whose profile runs clamav to
 * clamd before a worker sees it (pipeline/scan.c), and popgatectl filter
 * check does the same, blocking.
 *
 *   clean                    score 0, "no virus found";
 *   a virus                  score CLAMAV_VIRUS_SCORE, "virus: NAME", and
 *                            the message is quarantined whatever the total
 *                            score (force_quarantine; verdict.h), unless
 *                            the profile gives clamav weight 0 (then it
 *                            only reports);
 *   over [spam] clamd_max_size, or over clamd's own StreamMaxLength
 *                            not scanned: score 0, "not scanned: ...", and
 *                            the mail goes on (as most gateways do with
 *                            mail too big to scan);
 *   clamd down, timing out or answering an error
 *                            no result: the daemon holds the message in
 *                            processing and scans it again later (never
 *                            delivered unscanned, never dropped);
 *                            popgatectl reports the filter as failed.
 *
 * Settings ([spam], filter_setting): clamd_socket, clamd_timeout,
 * clamd_retry, clamd_max_size, clamd_max_connections.
 */
#ifndef POPGATE_FILTERS_CLAMAV_H
#define POPGATE_FILTERS_CLAMAV_H

#include <stdbool.h>
#include <stdint.h>

#include "filters/clamd.h"
#include "filters/filter.h"
#include "pipeline/pipeline.h"

#define CLAMAV_FILTER_NAME "clamav"
#define CLAMAV_VIRUS_SCORE 100.0

/* The defaults (as core/config.c's): Debian's clamd socket, 60 s per scan,
 * 60 s before the first retry, clamd's default StreamMaxLength (25 MiB),
 * 10 scans at once (clamd's MaxThreads is 12). */
#define CLAMAV_DEFAULT_SOCKET "/var/run/clamav/clamd.ctl"
#define CLAMAV_DEFAULT_TIMEOUT 60
#define CLAMAV_DEFAULT_RETRY 60
#define CLAMAV_DEFAULT_MAX_SIZE (25LL * 1024 * 1024)
#define CLAMAV_DEFAULT_MAX_CONNECTIONS 10
/* A message's wait before its next scan doubles after each failure, up to
 * clamd_retry times this. */
#define CLAMAV_RETRY_GROWTH_MAX 16

struct clamav_settings {
	char socket[256];
	int timeout_seconds;
	int retry_seconds;
	long long max_size;
	int max_connections;
};

/* Reads the settings (filter_setting); a key not set or not a number in
 * range keeps its default. */
void clamav_settings_load(struct clamav_settings *settings);

/* True when PROFILE (NULL: the default) runs clamav. */
bool clamav_profile_runs(const struct filter_profile *profile);

/* Fills RESULT (clamav's) from clamd's REPLY, which is not CLAMD_ERROR nor
 * CLAMD_INCOMPLETE. */
void clamav_result_from_reply(const struct clamd_reply *reply, struct pipeline_result *result);

/* Fills RESULT for a body of SIZE bytes, over MAX_SIZE: not scanned. */
void clamav_result_too_large(uint64_t size, long long max_size, struct pipeline_result *result);

/* Seconds to wait before the scan after the FAILURESth failed one (1, 2, ...). */
int clamav_retry_delay(const struct clamav_settings *settings, unsigned failures);

#endif
