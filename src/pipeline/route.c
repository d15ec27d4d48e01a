/*
 * route.c — the main process's answer to a verdict: attribution (U4, U5),
 * the combined action, the state change, and retries of messages a worker
 * failed on.
 *
 * Owns: nothing; it runs inside the pipeline's callback, on the event loop.
 * Must never: trust a worker's addresses beyond looking them up, lose a
 * message to a bookkeeping error, or call pipeline_free.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "pipeline/proto.h"
#include "pipeline/route.h"
#include "popgate.h"
#include "store/user.h"

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

/*
 * U4, U5: records whose message VERDICT is — the owner of its sender address
 * and the owners of its recipient addresses — before it is delivered. The
 * addresses come from a worker and are only looked up, never trusted. A
 * failure is logged and the mail is delivered anyway: losing a message to a
 * bookkeeping error would be worse than an unattributed one.
 */
static void attribute_message(struct popgate *pg, const struct pipeline_verdict *verdict,
			      const char *account_name)
{
	int64_t *user_ids = xcalloc(verdict->recipient_count + 1, sizeof(*user_ids));
	char **addresses = xcalloc(verdict->recipient_count + 1, sizeof(*addresses));
	int64_t owner = 0;
	size_t n = 0;

	if (verdict->sender != NULL && store_address_owner(pg->store, verdict->sender, &owner) < 0)
		goto fail;
	for (size_t i = 0; i < verdict->recipient_count; i++) {
		int found = store_address_owner(pg->store, verdict->recipients[i], &user_ids[n]);

		if (found < 0)
			goto fail;
		if (found == 1)
			addresses[n++] = verdict->recipients[i];
	}
	if (store_message_attribute(pg->store, verdict->id, owner, user_ids, addresses, n) < 0)
		goto fail;
	log_event(LOG_DEBUG, "attributed", account_name, verdict->id,
		  "owner=%lld recipient_users=%zu", (long long)owner, n);
	free(addresses);
	free(user_ids);
	return;
fail:
	log_event(LOG_ERROR, "error", account_name, verdict->id,
		  "cannot attribute the message to its users: %s", store_errmsg(pg->store));
	free(addresses);
	free(user_ids);
}

/* Whether the sender is one the owner is known to correspond with. Until
 * there is an address book (challenge-response, CISS), that is a sender who
 * is one of the gateway's own users. */
static bool route_sender_known(struct popgate *pg, const struct pipeline_verdict *verdict)
{
	int64_t owner = 0;

	return verdict->sender != NULL &&
	       store_address_owner(pg->store, verdict->sender, &owner) == 1;
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

void route_job_fill(const struct store_message *message, const struct store_account *account,
		    struct pipeline_job *job, char *recipient[1])
{
	memset(job, 0, sizeof(*job));
	memcpy(job->id, message->id, sizeof(job->id));
	job->received_at = message->received_at;
	snprintf(job->account, sizeof(job->account), "%s",
		 account->name != NULL ? account->name : "-");
	snprintf(job->provider_host, sizeof(job->provider_host), "%s",
		 account->host != NULL ? account->host : "-");
	job->source = PIPELINE_SOURCE_FETCHED;
	job->owner.account_id = account->id;
	job->owner.user_id = account->user_id;
	if (account->login != NULL && proto_address_valid(account->login, strlen(account->login))) {
		recipient[0] = account->login;
		job->envelope.recipients = recipient;
		job->envelope.recipient_count = 1;
	}
}

/* Combines a judged VERDICT and moves its message where the action says. */
static void route_judged(struct popgate *pg, const struct pipeline_verdict *verdict,
			 const struct store_account *account, const char *account_name)
{
	const struct filter_profile *profile =
	    verdict->job != NULL && verdict->job->profile != NULL ? verdict->job->profile
								  : filter_profile_default();
	/* Looked up only for a profile that asks: a store query per message
	 * would be paid for nothing otherwise. */
	bool sender_known = !profile->challenge_unknown_senders || route_sender_known(pg, verdict);
	struct verdict_decision decision;
	enum message_state state;

	verdict_combine(profile, verdict->results, verdict->result_count, sender_known, &decision);
	state = route_action_state(decision.action);
	/* The action and score go on the message's one "processed" line: its
	 * trace in the log stays one event per step. The reasons are filters'
	 * words about the content, so they are kept out of the log. */
	if (store_message_set_verdict(pg->store, verdict->id, decision.score,
				      verdict_action_name(decision.action), decision.reasons) < 0)
		log_event(LOG_ERROR, "error", account_name, verdict->id,
			  "cannot record the verdict: %s", store_errmsg(pg->store));
	char *prepend = xasprintf("%s%s", decision.headers,
				  user_has_seat(pg, account) ? "" : UNFILTERED_HEADER);
	attribute_message(pg, verdict, account_name);
	int moved = store_message_move(pg->store, verdict->id, MESSAGE_PROCESSING,
				       state, prepend);
	free(prepend);
	if (moved == 1)
		log_event(LOG_INFO, "processed", account_name, verdict->id, "to %s (%s, score %.3f)",
			  state == MESSAGE_DELIVERY ? "the delivery queue"
						    : store_message_state_name(state),
			  verdict_action_name(decision.action), decision.score);
	else if (moved < 0)
		log_event(LOG_ERROR, "error", account_name, verdict->id,
			  "cannot move to %s: %s; it is filtered again shortly",
			  store_message_state_name(state), store_errmsg(pg->store));
	verdict_decision_clear(&decision);
}

void route_on_verdict(const struct pipeline_verdict *verdict, void *ctx)
{
	struct popgate *pg = ctx;
	struct store_message message = {0};

	if (store_message_get(pg->store, verdict->id, &message) != 1) {
		log_event(LOG_ERROR, "error", NULL, verdict->id, "verdict for an unknown message");
		store_message_clear(&message);
		return;
	}
	struct store_account account = {0};
	store_account_get_by_id(pg->store, message.account_id, &account);
	const char *account_name = account.name != NULL ? account.name : "-";

	if (verdict->outcome == PIPELINE_JUDGED) {
		route_judged(pg, verdict, &account, account_name);
		goto done;
	}
	/* A worker died or hung on it: retry once, then hold it as suspect. */
	int attempts = store_message_add_attempt(pg->store, verdict->id);
	log_event(LOG_WARN, "error", account_name, verdict->id, "processing failed: %s",
		  verdict->reason != NULL ? verdict->reason : "worker failed");
	if (attempts >= 2) {
		store_message_move(pg->store, verdict->id, MESSAGE_PROCESSING, MESSAGE_SUSPECT,
				   NULL);
		log_event(LOG_ERROR, "suspect", account_name, verdict->id,
			  "held as suspect after %d failed attempts", attempts);
	} else if (attempts == 1) {
		struct pipeline_job job;
		char *recipient[1];

		route_job_fill(&message, &account, &job, recipient);
		/* The retry is judged by the profile the first attempt had. */
		if (verdict->job != NULL)
			job.profile = verdict->job->profile;
		pipeline_submit(pg->pipeline, &job);
	}
done:
	store_account_clear(&account);
	store_message_clear(&message);
}
