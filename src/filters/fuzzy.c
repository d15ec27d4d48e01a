/*
 * fuzzy.c — the fuzzy filter (see filters/fuzzy.h): the fingerprint of a
 * message made in the worker (its text through MIME, the hashing in
 * fuzzy_hash.c), and its judgement against the fingerprints seen before, in
 * the main process.
 *
 * Owns: nothing. Must never: keep or send any of the text itself (only the
 * MinHash values leave the worker), or put a sender's address into a
 * reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "filters/fuzzy.h"
#include "filters/message.h"
#include "filters/mime.h"
#include "filters/senders.h"
#include "pipeline/proto.h"
#include "store/correspondent.h"
#include "store/fingerprint.h"
#include "store/sender_list.h"

void fuzzy_fingerprint_message(const struct mime_message *message,
			       struct filter_fingerprint *fingerprint)
{
	fuzzy_fingerprint_text(message->text != NULL ? message->text : "", message->text_len,
			       fingerprint);
}

/* The integer setting KEY within [MIN, MAX], or FALLBACK. */
static int64_t fuzzy_setting_int(const char *key, int64_t min, int64_t max, int64_t fallback)
{
	const char *text = filter_setting(key);
	char *end;
	long long value;

	if (text == NULL || *text == '\0')
		return fallback;
	value = strtoll(text, &end, 10);
	if (*end != '\0' || value < min || value > max)
		return fallback;
	return value;
}

/* [spam] fuzzy_window, in seconds (the default when unset or bad). */
static int64_t fuzzy_window(void)
{
	return fuzzy_setting_int("fuzzy_window", 60, 31 * 86400, FUZZY_WINDOW_DEFAULT);
}

int fuzzy_sender_exempt(struct store *store, int64_t owner_id, const char *sender)
{
	struct sender_list_entry *entries = NULL;
	const struct sender_list_entry *match;
	size_t count = 0;
	int exempt;

	if (sender == NULL)
		return 0;
	if (store_sender_list_for_user(store, owner_id, &entries, &count) < 0)
		return -1;
	match = senders_match(entries, count, owner_id, sender);
	exempt = match != NULL && match->kind == SENDER_LIST_ALLOW;
	store_sender_list_free(&entries, count);
	if (exempt || owner_id == 0)
		return exempt;
	return store_correspondent_known(store, owner_id, sender);
}

/* The plural ending for COUNT things. */
static const char *fuzzy_plural(int64_t count)
{
	return count == 1 ? "" : "s";
}

int fuzzy_judge(struct store *store, int64_t owner_id, const char *message_id,
		const struct pipeline_verdict *verdict, int64_t now, struct pipeline_result *result)
{
	int64_t min_count =
	    fuzzy_setting_int("fuzzy_min_count", 2, 1000000, FUZZY_MIN_COUNT_DEFAULT);
	int64_t window = fuzzy_window();
	int64_t sender_hash = fuzzy_sender_hash(verdict->sender);
	struct fingerprint_stats stats;
	int64_t messages, senders, owners, since;
	char when[32];
	struct tm tm;
	time_t first;
	int exempt;

	result->status = PIPELINE_RESULT_OK;
	result->score = 0;
	if (!verdict->fingerprint.present) {
		result->reason = xasprintf("fuzzy: fewer than %d words of text, no fingerprint",
					   FUZZY_MIN_WORDS);
		return 0;
	}
	exempt = fuzzy_sender_exempt(store, owner_id, verdict->sender);
	if (exempt == 1) {
		result->reason =
		    xstrdup("fuzzy: from an allowed sender or a correspondent, not counted");
		return 0;
	}
	if (exempt < 0 || store_fingerprint_stats(store, &verdict->fingerprint, now - window,
						  message_id, sender_hash, owner_id, &stats) < 0) {
		result->status = PIPELINE_RESULT_FAILED;
		result->reason = xstrdup("fuzzy: cannot read the fingerprints");
		return -1;
	}
	/* This message counts too (it is recorded once the verdict is). */
	messages = stats.messages + 1;
	senders = stats.senders + (stats.sender_seen ? 0 : 1);
	owners = stats.owners + (stats.owner_seen ? 0 : 1);
	since = stats.messages > 0 ? stats.first_seen : now;
	first = (time_t)since;
	if (gmtime_r(&first, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%MZ", &tm) == 0)
		snprintf(when, sizeof(when), "?");
	if (stats.ham) {
		result->reason = xasprintf("fuzzy: seen %lld time%s from %lld sender%s since %s, "
					   "reported as ham",
					   (long long)messages, fuzzy_plural(messages),
					   (long long)senders, fuzzy_plural(senders), when);
		return 0;
	}
	if (senders >= min_count) {
		double score = (double)senders / (double)min_count;

		result->score = score > FUZZY_SCORE_MAX ? FUZZY_SCORE_MAX : score;
	}
	result->reason = xasprintf("fuzzy: seen %lld time%s from %lld sender%s to %lld user%s "
				   "since %s (scores from %lld senders)",
				   (long long)messages, fuzzy_plural(messages), (long long)senders,
				   fuzzy_plural(senders), (long long)owners, fuzzy_plural(owners),
				   when, (long long)min_count);
	return 0;
}

/* In the worker, before it confines itself: GMime's converters. */
static int fuzzy_filter_init(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	mime_init();
	return 0;
}

/* In the worker: the fingerprint, sent with the verdict. */
static void fuzzy_filter_collect(const struct filter_message *message,
				 struct pipeline_verdict *verdict)
{
	fuzzy_fingerprint_message(filter_message_mime(message), &verdict->fingerprint);
}

/* Judged by the main process, which holds the fingerprints seen. */
const struct filter filter_fuzzy = {
    .name = FUZZY_FILTER_NAME,
    .init = fuzzy_filter_init,
    .run = NULL,
    .collect = fuzzy_filter_collect,
};
