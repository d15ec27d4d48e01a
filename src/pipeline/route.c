/*
 * route.c — the main process's answer to a verdict: attribution (U4, U5),
 * the archive (A1), the combined action, the state change, and retries of
 * messages a worker failed on.
 *
 * Owns: nothing; it runs inside the pipeline's callback, on the event loop,
 * and hands every archive to the archiver's thread (pipeline/archiver.h) and
 * every write to the writer thread (store/writer.h).
 * Must never: trust a worker's addresses beyond looking them up, lose a
 * message to a bookkeeping error, move a judged message out of processing
 * before it is archived when the depot is on, or call pipeline_free.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ciss/challenge.h"
#include "ciss/policy.h"
#include "core/log.h"
#include "core/util.h"
#include "pipeline/archiver.h"
#include "pipeline/proto.h"
#include "pipeline/route.h"
#include "pipeline/subject_tag.h"
#include "smtp/relay.h"
#include "smtp/sign.h"
#include "filters/clamav.h"
#include "filters/fuzzy.h"
#include "filters/senders.h"
#include "popgate.h"
#include "store/address.h"
#include "store/envelope.h"
#include "store/fingerprint.h"
#include "store/profile.h"
#include "store/user.h"
#include "store/writer.h"

/* U3: mail of a user without a seat is delivered, but unfiltered and
 * unarchived, and says so. */
#define UNFILTERED_HEADER                                                                          \
	"X-Popgate-Unfiltered: no licence seat is free for this user; delivered without "          \
	"filtering or archiving\r\n"

/* True unless the account's user is known to be waiting for a seat. */
static bool user_has_seat(struct popgate *pg, const struct store_account *account)
{
	struct store_user user = {0};
	bool has_seat = true;

	if (account->user_name != NULL && store_user_get(pg->store, account->user_name, &user) == 1)
		has_seat = user.has_seat;
	store_user_clear(&user);
	return has_seat;
}

/* A verdict's writes, made by the writer thread (store/writer.h) so the
 * loop never waits on a commit: copies of what the verdict said (it lives
 * only during the callback) and of what the log and a retry need. */
struct route_write {
	struct popgate *pg;
	char id[SPOOL_ID_LEN + 1];
	char account_name[512];
	bool judged;
	bool submitted; /* over SMTP: no account; its owner was set when it was stored */
	/* Judged: the addresses to attribute, the verdict and where it goes. */
	char *sender;
	char **recipients;
	size_t recipient_count;
	enum message_state state;
	char *prepend;
	double score;
	enum verdict_action action;
	char *reasons;
	char *tag_prefix; /* [spam] tag_subject_prefix for a tagged message; NULL: none */
	/* The fuzzy filter's fingerprint, recorded as seen (store/fingerprint.h),
	 * and the owner it is counted for. */
	struct filter_fingerprint fingerprint;
	int64_t owner_id;
	/* Challenged (CISS): what the loop found, what the writer decided, and
	 * the prepended lines should it quarantine the message instead. */
	struct ciss_plan ciss;
	struct ciss_decision ciss_decision;
	char *quarantine_prepend;
	/* Its entry in MailDepot once archived (pipeline/archiver.h), else 0. */
	int64_t depot_seq;
	/* Failed: why, and the profile a retry is judged by. */
	char *reason;
	struct filter_profile profile;
	bool has_profile;
};

static void route_write_free(struct route_write *record)
{
	free(record->sender);
	for (size_t i = 0; i < record->recipient_count; i++)
		free(record->recipients[i]);
	free(record->recipients);
	free(record->prepend);
	free(record->reasons);
	free(record->tag_prefix);
	free(record->reason);
	ciss_plan_clear(&record->ciss);
	ciss_decision_clear(&record->ciss_decision);
	free(record->quarantine_prepend);
	free(record);
}

/*
 * U4, U5 (in the writer thread): records whose message RECORD is — the
 * owner of its sender address and the owners of its recipient addresses —
 * before it is delivered. The addresses come from a worker and are only
 * looked up, never trusted. A failure is logged and the mail is delivered
 * anyway: losing a message to a bookkeeping error would be worse than an
 * unattributed one.
 */
static void attribute_message(struct store *store, const struct route_write *record)
{
	int64_t *user_ids = xcalloc(record->recipient_count + 1, sizeof(*user_ids));
	char **addresses = xcalloc(record->recipient_count + 1, sizeof(*addresses));
	int64_t owner = 0;
	size_t n = 0;

	if (record->sender != NULL && store_address_owner(store, record->sender, &owner) < 0)
		goto fail;
	for (size_t i = 0; i < record->recipient_count; i++) {
		int found = store_address_owner(store, record->recipients[i], &user_ids[n]);

		if (found < 0)
			goto fail;
		if (found == 1)
			addresses[n++] = record->recipients[i];
	}
	if (store_message_attribute(store, record->id, owner, user_ids, addresses, n) < 0)
		goto fail;
	log_event(LOG_DEBUG, "attributed", record->account_name, record->id,
		  "owner=%lld recipient_users=%zu", (long long)owner, n);
	free(addresses);
	free(user_ids);
	return;
fail:
	log_event(LOG_ERROR, "error", record->account_name, record->id,
		  "cannot attribute the message to its users: %s", store_errmsg(store));
	free(addresses);
	free(user_ids);
}

_Static_assert(SUBJECT_TAG_PREFIX_MAX == CONFIG_TAG_SUBJECT_PREFIX_MAX,
	       "the planner takes every prefix the configuration allows");

/*
 * In the writer thread, for a message the "tag" action delivers: plans its
 * subject tag on the start of its body file (bodies are never changed; the
 * POP3 server inserts the tag while serving) and records it, or adds a
 * Subject line to RECORD's prepended lines. A body that cannot be read or
 * whose header block is too long to plan on is delivered untagged (its
 * X-Popgate-Spam-* lines still say it is spam), logged; never held back.
 */
static void route_subject_tag(struct store *store, struct route_write *record)
{
	struct subject_tag_plan plan;
	char *path = spool_path(store->data_dir, record->id);
	char *header = xmalloc(SUBJECT_TAG_SCAN_MAX);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n = 0;

	free(path);
	while (fd >= 0 && len < SUBJECT_TAG_SCAN_MAX) {
		n = read(fd, header + len, SUBJECT_TAG_SCAN_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (fd < 0 || n < 0) {
		log_event(LOG_ERROR, "error", record->account_name, record->id,
			  "cannot read the body to tag its subject: %s; delivered untagged",
			  strerror(errno));
		goto done;
	}
	subject_tag_plan(header, len, len < SUBJECT_TAG_SCAN_MAX, record->tag_prefix, &plan);
	switch (plan.kind) {
	case SUBJECT_TAG_INSERT:
		if (store_message_set_subject_tag(store, record->id, plan.offset, plan.text) < 0)
			log_event(LOG_ERROR, "error", record->account_name, record->id,
				  "cannot record the subject tag: %s; delivered untagged",
				  store_errmsg(store));
		break;
	case SUBJECT_TAG_ADD: {
		char *prepend = xasprintf("%s%s", record->prepend, plan.text);

		free(record->prepend);
		record->prepend = prepend;
		break;
	}
	case SUBJECT_TAG_ALREADY:
		break;
	case SUBJECT_TAG_UNKNOWN:
		log_event(LOG_WARN, "error", record->account_name, record->id,
			  "the header block is longer than %d bytes; delivered with its subject "
			  "untagged",
			  SUBJECT_TAG_SCAN_MAX);
		break;
	}
done:
	if (fd >= 0)
		close(fd);
	free(header);
}

/*
 * In the writer thread: the fuzzy fingerprint of RECORD's message counted
 * as seen, unless its sender is one the owner vouches for (filters/fuzzy.h).
 * A failure is logged: the message goes on.
 */
static void record_fingerprint(struct store *store, const struct route_write *record)
{
	int exempt = fuzzy_sender_exempt(store, record->owner_id, record->sender);

	if (exempt == 0 && store_fingerprint_record(store, &record->fingerprint, record->id,
						    fuzzy_sender_hash(record->sender),
						    record->owner_id, util_now(), NULL) == 0)
		return;
	if (exempt != 1)
		log_event(LOG_ERROR, "error", record->account_name, record->id,
			  "cannot record the fuzzy fingerprint: %s", store_errmsg(store));
}

/*
 * In the writer thread, for a message the verdict challenges: CISS decides
 * (ciss/policy.h) whether its sender is challenged, it joins an open
 * challenge, or it goes to the quarantine; the decision's line is added to
 * the verdict's explanation (what popgatectl queue show prints). -1 when
 * the store cannot be read: the whole job is undone, the message stays in
 * processing and is judged again.
 */
static int route_ciss_decide(struct store *store, struct route_write *record)
{
	char *line, *reasons;

	if (ciss_policy_decide(store, &record->ciss, util_now(), &record->ciss_decision) < 0)
		return -1;
	if (record->ciss_decision.outcome == CISS_OUTCOME_QUARANTINE) {
		record->action = VERDICT_QUARANTINE;
		record->state = MESSAGE_QUARANTINE;
		free(record->prepend);
		record->prepend = record->quarantine_prepend;
		record->quarantine_prepend = NULL;
	}
	line = xasprintf("ciss\t0.000\t0.000\t%s\n", record->ciss_decision.reason);
	reasons = xasprintf("%s%s", record->reasons != NULL ? record->reasons : "", line);
	free(line);
	free(record->reasons);
	record->reasons = reasons;
	return 0;
}

/*
 * In the writer thread. Judged: the verdict recorded, the message
 * attributed, its fuzzy fingerprint counted, and the message moved; the
 * result is 1 if moved, 0 if it was not in processing. Failed: the attempt
 * counted (the result), and a second one holds it as suspect.
 */
static int route_write_work(struct store *store, void *arg)
{
	struct route_write *record = arg;

	if (record->judged) {
		int moved;

		if (record->action == VERDICT_CHALLENGE && route_ciss_decide(store, record) < 0)
			return -1;
		if (store_message_set_verdict(store, record->id, record->score,
					      verdict_action_name(record->action),
					      record->reasons) < 0)
			log_event(LOG_ERROR, "error", record->account_name, record->id,
				  "cannot record the verdict: %s", store_errmsg(store));
		if (!record->submitted)
			attribute_message(store, record);
		if (record->tag_prefix != NULL)
			route_subject_tag(store, record);
		/* Mail our users send is not a campaign to count. */
		if (!record->submitted && record->fingerprint.present)
			record_fingerprint(store, record);
		moved = store_message_move(store, record->id, MESSAGE_PROCESSING, record->state,
					   record->prepend);
		/* Held for its sender: recorded with the move, or neither. */
		if (moved == 1 && record->state == MESSAGE_CHALLENGED &&
		    ciss_policy_hold(store, record->id, &record->ciss, util_now(),
				     &record->ciss_decision) < 0)
			return -1;
		return moved;
	}
	int attempts = store_message_add_attempt(store, record->id);
	if (attempts >= 2 &&
	    store_message_move(store, record->id, MESSAGE_PROCESSING, MESSAGE_SUSPECT, NULL) < 0)
		return -1;
	return attempts;
}

/* Submits RECORD's message again, judged by the profile its first attempt had. */
static void route_retry(struct route_write *record)
{
	struct popgate *pg = record->pg;
	struct store_message message = {0};
	struct store_account account = {0};
	struct pipeline_job job;
	char *recipient[1];

	if (store_message_get(pg->store, record->id, &message) == 1) {
		struct filter_profile profile;

		store_account_get_by_id(pg->store, message.account_id, &account);
		route_job_fill(pg, &message, &account, &job, recipient, &profile);
		if (record->has_profile)
			job.profile = &record->profile;
		pipeline_submit(pg->pipeline, &job);
	}
	store_account_clear(&account);
	store_message_clear(&message);
}

/* Sends the challenge whose row RECORD's job committed (ciss/challenge.h).
 * One that cannot be queued is logged; its message stays held (later mail
 * from that sender joins it) until the administrator releases it or its
 * hold expires. */
static void route_challenge_issue(struct route_write *record)
{
	char err[256];

	/* Queued, ciss/challenge.c logs it (event=challenge). */
	if (ciss_challenge_issue(record->pg, record->ciss_decision.challenge_id, err, sizeof(err)) <
	    0)
		log_event(LOG_ERROR, "error", record->account_name, record->id,
			  "cannot send challenge %lld: %s",
			  (long long)record->ciss_decision.challenge_id, err);
}

/* In the loop, after the commit: the log, and a failed message's retry. */
static void route_write_done(int result, const char *error, void *arg)
{
	struct route_write *record = arg;
	const char *account_name = record->account_name;

	if (record->judged) {
		/* The action and score go on the message's one "processed" line:
		 * its trace in the log stays one event per step. The reasons are
		 * filters' words about the content, so they stay out of the log. */
		if (result == 1) {
			char archived[64] = "";

			if (record->depot_seq > 0)
				snprintf(archived, sizeof(archived),
					 ", archived as depot entry %lld",
					 (long long)record->depot_seq);
			log_event(LOG_INFO, "processed", account_name, record->id,
				  "to %s (%s, score %.3f)%s",
				  record->state == MESSAGE_DELIVERY
				      ? "the delivery queue"
				      : store_message_state_name(record->state),
				  verdict_action_name(record->action), record->score, archived);
		}
		/* Committed in outbound: the relay sends it now. */
		if (result == 1 && record->state == MESSAGE_OUTBOUND)
			relay_kick(record->pg->relay);
		/* Held, with its challenge committed: the challenge mail goes now
		 * (C1: when the message is fetched). */
		if (result == 1 && record->state == MESSAGE_CHALLENGED &&
		    record->ciss_decision.outcome == CISS_OUTCOME_CHALLENGE)
			route_challenge_issue(record);
		if (result < 0)
			log_event(LOG_ERROR, "error", account_name, record->id,
				  "cannot move to %s: %s; it is filtered again shortly",
				  store_message_state_name(record->state), error);
		route_write_free(record);
		return;
	}
	log_event(LOG_WARN, "error", account_name, record->id, "processing failed: %s",
		  record->reason != NULL ? record->reason : "worker failed");
	if (result >= 2)
		log_event(LOG_ERROR, "suspect", account_name, record->id,
			  "held as suspect after %d failed attempts", result);
	else if (result == 1)
		route_retry(record);
	route_write_free(record);
}

/* Hands RECORD to the writer thread; if it cannot take it, the message stays
 * in processing and is filtered again at the next release check or start. */
static void route_write_submit(struct popgate *pg, struct route_write *record)
{
	if (writer_submit(pg->writer, NULL, route_write_work, route_write_done, record) < 0) {
		log_event(LOG_ERROR, "error", record->account_name, record->id,
			  "cannot record the verdict: the store is overloaded; the message is "
			  "filtered again later");
		route_write_free(record);
	}
}

/* In the loop, once a submitted message's DKIM signature is made (or not
 * needed): its move to outbound, with the signature in front of its header
 * lines. Not signed now (-1): it stays in processing and is filtered and
 * signed again at the next release check, never sent unsigned. */
static void route_signed(int result, char *prepend, const char *error, void *arg)
{
	struct route_write *record = arg;

	if (result < 0) {
		log_event(LOG_ERROR, "error", record->account_name, record->id,
			  "cannot DKIM-sign it: %s; it is filtered and signed again later", error);
		route_write_free(record);
		return;
	}
	record->prepend = prepend;
	route_write_submit(record->pg, record);
}

/* Adds ADDRESS to REQUEST's owners with its user, if it is one of our
 * users' addresses (looked up, never trusted). A failed look-up is logged by
 * the store and leaves the address out: the message is archived anyway. */
static void route_archive_owner(struct popgate *pg, struct archiver_request *request,
				const char *address)
{
	char *user = NULL;

	if (address != NULL && *address != '\0' &&
	    store_address_owner_name(pg->store, address, &user) == 1)
		archiver_request_add_owner(request, address, user);
	free(user);
}

/* Adds ACCOUNT's user to REQUEST's owners through the user's primary
 * address (U2), or, for a user without one, through the account's name. */
static void route_archive_user(struct popgate *pg, struct archiver_request *request,
			       const struct store_account *account)
{
	struct store_address *addresses = NULL;
	size_t count = 0;
	const char *address = account->name;
	char err[256];

	if (store_address_list(pg->store, account->user_name, &addresses, &count, err,
			       sizeof(err)) == 0) {
		for (size_t i = 0; i < count; i++) {
			if (addresses[i].is_primary)
				address = addresses[i].address;
		}
	}
	archiver_request_add_owner(request, address, account->user_name);
	store_address_list_free(&addresses, count);
}

/*
 * Whose MESSAGE is, for the archive: the users of its addresses, as the
 * attribution finds them (U4, U5). Fetched: the owners of the author's and
 * the recipients' addresses the worker read (VERDICT), and the user of the
 * account it was fetched for. Submitted: the owners of the envelope's sender
 * and recipients as stored (what the relay sends it by; a header names
 * anyone).
 */
static void route_archive_owners(struct popgate *pg, const struct pipeline_verdict *verdict,
				 const struct store_message *message,
				 const struct store_account *account,
				 struct archiver_request *request)
{
	if (message->account_id == 0) {
		char *sender = NULL;
		char **recipients = NULL;
		size_t count = 0;

		if (store_envelope_sender(pg->store, message->id, &sender) == 1)
			route_archive_owner(pg, request, sender);
		free(sender);
		if (store_envelope_recipients(pg->store, message->id, &recipients, &count) == 0) {
			for (size_t i = 0; i < count; i++)
				route_archive_owner(pg, request, recipients[i]);
		}
		store_envelope_recipients_free(&recipients, count);
		return;
	}
	route_archive_owner(pg, request, verdict->sender);
	for (size_t i = 0; i < verdict->recipient_count; i++)
		route_archive_owner(pg, request, verdict->recipients[i]);
	/* The mailbox's user, through its login when that is one of its
	 * addresses (U5), and always through the user's primary address: a
	 * user's search finds mail by the addresses assigned to the user. */
	if (account->login != NULL && proto_address_valid(account->login, strlen(account->login)))
		route_archive_owner(pg, request, account->login);
	if (account->user_name != NULL)
		route_archive_user(pg, request, account);
}

static void route_judged_submit(struct popgate *pg, struct route_write *record);

/* In the loop, once the message is archived: on where the verdict sends it. */
static void route_archived(int64_t seq, void *arg)
{
	struct route_write *record = arg;

	record->depot_seq = seq;
	route_judged_submit(record->pg, record);
}

/* The daemon stopped before the message was archived or moved: it is still
 * in processing, judged and archived again at the next start. */
static void route_archive_dropped(void *arg)
{
	route_write_free(arg);
}

/*
 * SPEC A1: the judged message is archived, unaltered, before it leaves
 * processing; RECORD's writes (the move) follow once it is (route_archived).
 * Fields the worker could not extract are archived empty rather than the
 * message skipped.
 */
static void route_archive_submit(struct popgate *pg, const struct pipeline_verdict *verdict,
				 const struct store_message *message,
				 const struct store_account *account, struct route_write *record)
{
	struct archiver_request *request = xcalloc(1, sizeof(*request));

	memcpy(request->id, message->id, sizeof(request->id));
	snprintf(request->account, sizeof(request->account), "%s", record->account_name);
	request->size = message->body_size;
	request->direction = message->account_id == 0 ? DEPOT_OUT : DEPOT_IN;
	archiver_fields_copy(&request->fields, verdict->archive_fields);
	route_archive_owners(pg, verdict, message, account, request);
	archiver_submit(pg->archiver, request, route_archived, route_archive_dropped, record);
}

/* A judged message's writes; a submitted one is DKIM-signed first (sign.h). */
static void route_judged_submit(struct popgate *pg, struct route_write *record)
{
	if (record->submitted) {
		int signing = sign_outbound(pg, record->id, route_signed, record);

		if (signing == 1)
			return; /* route_signed goes on */
		if (signing < 0) {
			route_signed(-1, NULL, "the key or the message cannot be read", record);
			return;
		}
	}
	route_write_submit(pg, record);
}

static struct route_write *route_write_new(struct popgate *pg,
					   const struct pipeline_verdict *verdict,
					   const char *account_name)
{
	struct route_write *record = xcalloc(1, sizeof(*record));

	record->pg = pg;
	memcpy(record->id, verdict->id, sizeof(record->id));
	snprintf(record->account_name, sizeof(record->account_name), "%s", account_name);
	return record;
}

enum message_state route_action_state(enum verdict_action action)
{
	switch (action) {
	case VERDICT_DELIVER:
	case VERDICT_TAG:
		return MESSAGE_DELIVERY;
	case VERDICT_QUARANTINE:
		return MESSAGE_QUARANTINE;
	case VERDICT_CHALLENGE:
		return MESSAGE_CHALLENGED;
	case VERDICT_HOLD:
		/* Held for the administrator beside the messages a worker died
		 * on (popgatectl queue release): left in processing, it would be
		 * judged again at every release check. */
		break;
	}
	return MESSAGE_SUSPECT;
}

void route_job_fill(struct popgate *pg, const struct store_message *message,
		    const struct store_account *account, struct pipeline_job *job,
		    char *recipient[1], struct filter_profile *profile)
{
	/* Read at each job, so a profile popgatectl changed judges the next
	 * message without a restart. */
	store_profile_for_user(pg->store, account->user_id, profile);
	memset(job, 0, sizeof(*job));
	job->profile = profile;
	job->archive = pg->archiver != NULL;
	memcpy(job->id, message->id, sizeof(job->id));
	job->received_at = message->received_at;
	snprintf(job->account, sizeof(job->account), "%s",
		 account->name != NULL ? account->name : "-");
	snprintf(job->provider_host, sizeof(job->provider_host), "%s",
		 account->host != NULL ? account->host : "-");
	/* Only mail submitted over SMTP has no account (store/message.h). */
	job->source = message->account_id == 0 ? PIPELINE_SOURCE_SUBMITTED : PIPELINE_SOURCE_FETCHED;
	job->owner.account_id = account->id;
	job->owner.user_id = account->user_id;
	if (account->login != NULL && proto_address_valid(account->login, strlen(account->login))) {
		recipient[0] = account->login;
		job->envelope.recipients = recipient;
		job->envelope.recipient_count = 1;
	}
}

/* Copies SCAN, clamav's result from before the worker ran, into RESULT;
 * without one (a caller that did not scan), the filter failed. */
static void route_scan_result(const struct pipeline_result *scan, struct pipeline_result *result)
{
	if (scan == NULL) {
		result->status = PIPELINE_RESULT_FAILED;
		result->reason = xstrdup("not scanned");
		return;
	}
	*result = *scan;
	result->reason = scan->reason != NULL ? xstrdup(scan->reason) : NULL;
	result->headers = scan->headers != NULL ? xstrdup(scan->headers) : NULL;
}

size_t route_results_complete(struct store *store, const struct pipeline_job *job,
			      const struct pipeline_verdict *verdict,
			      struct pipeline_result **results_r)
{
	const struct filter_profile *profile =
	    job != NULL && job->profile != NULL ? job->profile : filter_profile_default();
	struct pipeline_result *results =
	    xcalloc(verdict->result_count + profile->filter_count + 1, sizeof(*results));
	int64_t owner_id = job != NULL ? job->owner.user_id : 0;
	size_t count = 0;

	/* The worker's results, but never one for a filter the main process
	 * judges: a compromised worker must not speak for the sender lists. */
	for (size_t i = 0; i < verdict->result_count; i++) {
		const struct filter *filter = filter_find(verdict->results[i].name);

		if (filter != NULL && filter->run == NULL)
			continue;
		results[count] = verdict->results[i];
		results[count].reason = verdict->results[i].reason != NULL
					    ? xstrdup(verdict->results[i].reason)
					    : NULL;
		results[count].headers = verdict->results[i].headers != NULL
					     ? xstrdup(verdict->results[i].headers)
					     : NULL;
		count++;
	}
	for (size_t i = 0; i < profile->filter_count; i++) {
		const struct filter *filter = filter_find(profile->filters[i].name);
		struct pipeline_result *result;

		if (filter == NULL || filter->run != NULL)
			continue;
		result = &results[count++];
		memcpy(result->name, filter->name, strlen(filter->name) + 1);
		if (strcmp(filter->name, FUZZY_FILTER_NAME) == 0)
			fuzzy_judge(store, owner_id, verdict->id, verdict, util_now(), result);
		else if (strcmp(filter->name, CLAMAV_FILTER_NAME) == 0)
			route_scan_result(verdict->scan, result);
		else
			senders_judge(store, owner_id, verdict->sender, result);
	}
	*results_r = results;
	return count;
}

void route_results_free(struct pipeline_result **results, size_t count)
{
	if (*results == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*results)[i].reason);
		free((*results)[i].headers);
	}
	xfree(results);
}

/* Combines a judged VERDICT and has its message moved where the action says. */
static void route_judged(struct popgate *pg, const struct pipeline_verdict *verdict,
			 const struct store_message *message, const struct store_account *account,
			 const char *account_name)
{
	const struct filter_profile *profile = verdict->job != NULL && verdict->job->profile != NULL
						   ? verdict->job->profile
						   : filter_profile_default();
	struct verdict_decision decision;
	struct route_write *record = route_write_new(pg, verdict, account_name);
	int64_t owner_id = verdict->job != NULL ? verdict->job->owner.user_id : 0;
	/* CISS (ciss/policy.h) looks the sender up only for a profile that
	 * challenges, and only for fetched mail (the relay sends submitted
	 * mail): a store query per message would be paid for nothing else. */
	bool sender_known = message->account_id == 0 ||
			    ciss_policy_plan(pg->store, pg->cfg->pseudo_domain, profile, owner_id,
					     account->login, verdict, &record->ciss) != 1;

	struct pipeline_result *results = NULL;
	size_t count = route_results_complete(pg->store, verdict->job, verdict, &results);
	bool has_seat = user_has_seat(pg, account);

	verdict_combine(profile, results, count, sender_known, &decision);
	/* A challenge CISS may not send (G4, a cap) goes to the quarantine, as
	 * the writer finds: its header lines for that case are made now, while
	 * the results are here, so they name the action it gets. */
	if (decision.action == VERDICT_CHALLENGE && has_seat) {
		char *spam_headers;

		decision.action = VERDICT_QUARANTINE;
		spam_headers = verdict_spam_headers(profile, &decision, results, count);
		decision.action = VERDICT_CHALLENGE;
		record->quarantine_prepend = xasprintf("%s%s", decision.headers, spam_headers);
		free(spam_headers);
	}
	route_results_free(&results, count);
	record->judged = true;
	/* U3: without a seat, delivered whatever the filters said (their
	 * verdict is recorded), and marked as such rather than as judged. */
	record->action = has_seat ? decision.action : VERDICT_DELIVER;
	record->state = route_action_state(record->action);
	record->score = decision.score;
	record->reasons = decision.explanation;
	decision.explanation = NULL;
	record->prepend = xasprintf("%s%s", decision.headers,
				    has_seat ? decision.spam_headers : UNFILTERED_HEADER);
	/* Copied here: the writer thread must not read a configuration a
	 * reload may replace. */
	if (record->action == VERDICT_TAG && *pg->cfg->tag_subject_prefix != '\0')
		record->tag_prefix = xstrdup(pg->cfg->tag_subject_prefix);
	if (message->account_id == 0) {
		/*
		 * Submitted over SMTP (S1): it goes to the outbound queue for the
		 * relay, whatever the filters said (their verdict is recorded).
		 * It keeps the Received header it was stored with (smtp/server.c)
		 * and gets none of the filters' headers: those are for our users'
		 * mailboxes, not for the world; nor the trace filter's POP3 line.
		 */
		record->submitted = true;
		record->state = MESSAGE_OUTBOUND;
		xfree(&record->prepend);
		xfree(&record->tag_prefix);
	}
	record->sender = verdict->sender != NULL ? xstrdup(verdict->sender) : NULL;
	record->recipients = xcalloc(verdict->recipient_count + 1, sizeof(*record->recipients));
	for (size_t i = 0; i < verdict->recipient_count; i++)
		record->recipients[i] = xstrdup(verdict->recipients[i]);
	record->recipient_count = verdict->recipient_count;
	/* Only a profile running the fuzzy filter counts fingerprints: a worker
	 * sending one unasked is not believed. */
	for (size_t i = 0; i < profile->filter_count; i++) {
		if (strcmp(profile->filters[i].name, FUZZY_FILTER_NAME) == 0)
			record->fingerprint = verdict->fingerprint;
	}
	record->owner_id = owner_id;
	verdict_decision_clear(&decision);
	/* U3: a user without a seat gets mail unarchived, as its header says. */
	if (pg->archiver != NULL && has_seat)
		route_archive_submit(pg, verdict, message, account, record);
	else
		route_judged_submit(pg, record);
}

void route_on_verdict(const struct pipeline_verdict *verdict, void *ctx)
{
	struct popgate *pg = ctx;
	struct store_message message = {0};

	/* Judged again (a release check, a restart's resume) while its
	 * archive is pending: the verdict being acted on stands. */
	if (archiver_pending(pg->archiver, verdict->id)) {
		log_event(LOG_DEBUG, "verdict_ignored", NULL, verdict->id,
			  "its archive is pending: the verdict before goes on");
		return;
	}
	if (store_message_get(pg->store, verdict->id, &message) != 1) {
		log_event(LOG_ERROR, "error", NULL, verdict->id, "verdict for an unknown message");
		store_message_clear(&message);
		return;
	}
	struct store_account account = {0};
	store_account_get_by_id(pg->store, message.account_id, &account);
	const char *account_name = account.name != NULL ? account.name : "-";

	if (verdict->outcome == PIPELINE_JUDGED) {
		route_judged(pg, verdict, &message, &account, account_name);
		goto done;
	}
	/* A worker died or hung on it: retry once, then hold it as suspect. */
	struct route_write *record = route_write_new(pg, verdict, account_name);
	record->reason = verdict->reason != NULL ? xstrdup(verdict->reason) : NULL;
	if (verdict->job != NULL && verdict->job->profile != NULL) {
		record->profile = *verdict->job->profile;
		record->has_profile = true;
	}
	route_write_submit(pg, record);
done:
	store_account_clear(&account);
	store_message_clear(&message);
}
