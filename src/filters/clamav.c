/*
 * clamav.c — the clamav filter's row, settings and results (clamav.h); the
 * talking to clamd is clamd.c's (blocking) and pipeline/scan.c's (in the
 * daemon's loop).
 *
 * Owns: nothing. Must never: make a result that lets a message through
 * unscanned except for the size rule (clamav.h), or put anything but
 * clamd's sanitised words into a reason.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "filters/clamav.h"

/* The value of setting KEY as a number in [MIN, MAX], else FALLBACK. */
static long long clamav_setting_number(const char *key, long long min, long long max,
				       long long fallback)
{
	const char *text = filter_setting(key);
	char *end;
	long long value;

	if (text == NULL || *text == '\0')
		return fallback;
	errno = 0;
	value = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || value < min || value > max)
		return fallback;
	return value;
}

void clamav_settings_load(struct clamav_settings *settings)
{
	const char *socket = filter_setting("clamd_socket");

	memset(settings, 0, sizeof(*settings));
	snprintf(settings->socket, sizeof(settings->socket), "%s",
		 socket != NULL && *socket != '\0' ? socket : CLAMAV_DEFAULT_SOCKET);
	settings->timeout_seconds =
	    (int)clamav_setting_number("clamd_timeout", 1, 3600, CLAMAV_DEFAULT_TIMEOUT);
	settings->retry_seconds =
	    (int)clamav_setting_number("clamd_retry", 1, 86400, CLAMAV_DEFAULT_RETRY);
	settings->max_size =
	    clamav_setting_number("clamd_max_size", 1, LLONG_MAX, CLAMAV_DEFAULT_MAX_SIZE);
	settings->max_connections = (int)clamav_setting_number("clamd_max_connections", 1, 1000,
							       CLAMAV_DEFAULT_MAX_CONNECTIONS);
}

bool clamav_profile_runs(const struct filter_profile *profile)
{
	if (profile == NULL)
		profile = filter_profile_default();
	for (size_t i = 0; i < profile->filter_count; i++) {
		if (strcmp(profile->filters[i].name, CLAMAV_FILTER_NAME) == 0)
			return true;
	}
	return false;
}

void clamav_result_from_reply(const struct clamd_reply *reply, struct pipeline_result *result)
{
	snprintf(result->name, sizeof(result->name), "%s", CLAMAV_FILTER_NAME);
	result->status = PIPELINE_RESULT_OK;
	result->score = 0;
	result->force_quarantine = false;
	free(result->reason);
	switch (reply->verdict) {
	case CLAMD_VIRUS:
		result->score = CLAMAV_VIRUS_SCORE;
		result->force_quarantine = true;
		result->reason = xasprintf("virus: %s", reply->text);
		break;
	case CLAMD_TOO_LARGE:
		result->reason = xstrdup("not scanned: larger than clamd's StreamMaxLength");
		break;
	default:
		result->reason = xstrdup("no virus found");
		break;
	}
}

void clamav_result_too_large(uint64_t size, long long max_size, struct pipeline_result *result)
{
	snprintf(result->name, sizeof(result->name), "%s", CLAMAV_FILTER_NAME);
	result->status = PIPELINE_RESULT_OK;
	result->score = 0;
	result->force_quarantine = false;
	free(result->reason);
	result->reason = xasprintf("not scanned: %llu bytes, over clamd_max_size %lld",
				   (unsigned long long)size, max_size);
}

int clamav_retry_delay(const struct clamav_settings *settings, unsigned failures)
{
	unsigned doublings = failures > 0 ? failures - 1 : 0;
	long long delay = settings->retry_seconds;

	for (unsigned i = 0; i < doublings && delay * 2 <= (long long)settings->retry_seconds *
							       CLAMAV_RETRY_GROWTH_MAX;
	     i++)
		delay *= 2;
	return delay > INT_MAX ? INT_MAX : (int)delay;
}

/* In the table so profiles can name it; the main process judges it. */
const struct filter filter_clamav = {
    .name = CLAMAV_FILTER_NAME,
    .init = NULL,
    .run = NULL,
};
