/*
 * trace.c — the trace filter: the Received header (RFC 5322 3.6.7) that
 * records how popgate got the message — from the provider over POP3 for
 * the account, at the time it was fetched. It never scores. Its reason
 * names the hand-off the other filters judged (filters/received.h), when
 * there is one, so that every verdict shows which host it is about.
 *
 * Owns: nothing. Must never: put a byte a user typed (account, provider
 * host) into the header unsanitised: they could forge a trace clause or a
 * header line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "filters/filter.h"
#include "pipeline/pipeline.h"

/*
 * Copies S into OUT (size OUTLEN, cut to fit) for use inside a trace header:
 * only printable ASCII survives, and not the characters that would end the
 * token it stands in ("<", ">", ";", space).
 */
static void trace_sanitize_token(char *out, size_t outlen, const char *s)
{
	size_t n = strnlen(s, outlen - 1);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == ';')
			c = '?';
		out[i] = (char)c;
	}
	out[n] = '\0';
}

/* Formats WHEN as an RFC 5322 date-time in UTC ("Sat, 28 Nov 2026 02:14:13
 * +0000"). The names are spelled out here, not taken from strftime, because
 * the format must not follow the locale. */
static void trace_format_date(char *out, size_t outlen, int64_t when)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)when;
	struct tm tm;

	/* The decoder limits received_at to years 1970-9999, where gmtime_r
	 * cannot fail; the epoch is a visible rather than a silent fallback. */
	if (gmtime_r(&t, &tm) == NULL) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
		 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* "hand-off ADDRESS (helo NAME, reverse NAME)", each name cut so the reason
 * stays within a result's 200 characters; the parser kept only name
 * characters in them. Allocated. */
static char *trace_handoff_reason(const struct filter_handoff *handoff)
{
	char helo[64];
	char reverse[64];

	trace_sanitize_token(helo, sizeof(helo), handoff->helo);
	trace_sanitize_token(reverse, sizeof(reverse), handoff->reverse);
	return xasprintf("hand-off %s (helo %s, reverse %s)", handoff->address,
			 *helo != '\0' ? helo : "none", *reverse != '\0' ? reverse : "none");
}

static int trace_run(const struct filter_message *message, struct pipeline_result *result,
		     struct pipeline_verdict *verdict)
{
	const struct pipeline_job *job = message->job;
	char account[sizeof(job->account)];
	char host[sizeof(job->provider_host)];
	char hostname[256];
	char date[64];
	char *line;

	(void)verdict;
	trace_sanitize_token(account, sizeof(account), job->account);
	trace_sanitize_token(host, sizeof(host), job->provider_host);
	trace_sanitize_token(hostname, sizeof(hostname), message->hostname);
	trace_format_date(date, sizeof(date), job->received_at);
	line = xasprintf("Received: from %s by %s (popgate) with POP3\r\n"
			 "\tid %s for <%s>; %s\r\n",
			 host, hostname, job->id, account, date);
	filter_result_add_headers(result, line);
	free(line);
	if (message->handoff.found)
		result->reason = trace_handoff_reason(&message->handoff);
	return 0;
}

const struct filter filter_trace = {
    .name = "trace",
    .init = NULL,
    .run = trace_run,
};
