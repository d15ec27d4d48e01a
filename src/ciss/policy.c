/*
 * policy.c — whether a message's sender is challenged (see ciss/policy.h).
 *
 * Owns: nothing; it reads the store, and writes challenges and holds only
 * through store/ciss.h, inside the writer thread's transaction.
 * Must never: challenge a sender a G4 rule excludes, challenge one sender
 * twice while a challenge to it is open, or exceed a cap.
 * SECURITY: the sender, the subject and the facts come from a worker that
 * read hostile mail: they are only compared and stored, the sender only
 * once address_valid accepts it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ciss/policy.h"
#include "core/log.h"
#include "core/util.h"
#include "filters/ciss.h"
#include "filters/fuzzy.h"
#include "store/address.h"

#define CISS_DAY 86400
#define CISS_HOUR 3600

/* 1 when SENDER is known to user OWNER_ID (see policy.h), 0 if not, -1 error. */
static int ciss_sender_known(struct store *store, int64_t owner_id, const char *sender)
{
	int64_t user_id;
	int known = fuzzy_sender_exempt(store, owner_id, sender);

	if (known != 0)
		return known;
	known = store_ciss_is_trusted(store, owner_id, sender);
	if (known != 0)
		return known;
	return store_address_owner(store, sender, &user_id);
}

void ciss_plan_clear(struct ciss_plan *plan)
{
	free(plan->subject);
	memset(plan, 0, sizeof(*plan));
}

int ciss_policy_plan(struct store *store, const char *pseudo_domain,
		     const struct filter_profile *profile, int64_t owner_id,
		     const char *account_address, const struct pipeline_verdict *verdict,
		     struct ciss_plan *plan)
{
	struct ciss_settings settings;
	char owner_address[ADDRESS_MAX + 1];
	int rc;

	memset(plan, 0, sizeof(*plan));
	if (!profile->challenge_unknown_senders || owner_id <= 0)
		return 0;
	plan->owner_id = owner_id;
	if (store_ciss_settings_get(store, &settings) < 0)
		goto unreadable;
	rc = store_ciss_user_address(store, pseudo_domain, &settings, owner_id, owner_address,
				     sizeof(owner_address));
	plan->period_days = settings.period_days;
	plan->cap_hour = settings.cap_hour;
	plan->cap_user_hour = settings.cap_user_hour;
	plan->link_days = settings.link_days;
	ciss_settings_clear(&settings);
	if (rc < 0)
		goto unreadable;
	if (rc == 0)
		return 0; /* C2: none of the owner's addresses is in a CISS domain */
	if (verdict->sender != NULL) {
		rc = ciss_sender_known(store, owner_id, verdict->sender);
		if (rc < 0)
			goto unreadable;
		if (rc == 1)
			return 0;
	}
	plan->applies = true;
	/* The challenge names the address the sender wrote to: the provider
	 * address the message was fetched from when the login is one, else the
	 * most trusted recipient the header names (Delivered-To first), else
	 * the owner's own. */
	const char *recipient = owner_address;
	if (account_address != NULL && address_valid(account_address))
		recipient = account_address;
	else if (verdict->recipient_count > 0 && address_valid(verdict->recipients[0]))
		recipient = verdict->recipients[0];
	snprintf(plan->recipient, sizeof(plan->recipient), "%s", recipient);
	if (verdict->sender != NULL && address_valid(verdict->sender)) {
		snprintf(plan->sender, sizeof(plan->sender), "%s", verdict->sender);
		for (char *c = plan->sender; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	if (verdict->ciss.subject != NULL)
		plan->subject = xstrdup(verdict->ciss.subject);
	if (!verdict->ciss.present)
		plan->screen_reason = "no challenge: the worker reported no header facts";
	else if (plan->sender[0] == '\0')
		plan->screen_reason = "no challenge: no From address a challenge can go to";
	else
		plan->screen_reason = ciss_facts_screen(verdict->ciss.flags);
	return 1;
unreadable:
	plan->applies = true;
	plan->screen_reason = "no challenge: the store could not be read";
	return 1;
}

void ciss_decision_clear(struct ciss_decision *decision)
{
	free(decision->reason);
	memset(decision, 0, sizeof(*decision));
}

/* DECISION made a quarantine because of REASON. */
static void ciss_quarantine(struct ciss_decision *decision, char *reason)
{
	decision->outcome = CISS_OUTCOME_QUARANTINE;
	decision->reason = reason;
}

int ciss_policy_decide(struct store *store, const struct ciss_plan *plan, int64_t now,
		       struct ciss_decision *decision)
{
	int64_t count, open_id;
	int rc;

	memset(decision, 0, sizeof(*decision));
	if (plan->screen_reason != NULL) {
		ciss_quarantine(decision, xstrdup(plan->screen_reason));
		return 0;
	}
	rc = store_ciss_challenge_open(store, plan->owner_id, plan->sender, now, &open_id);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		decision->outcome = CISS_OUTCOME_JOINED;
		decision->challenge_id = open_id;
		decision->reason = xasprintf("held with the open challenge %lld to %s",
					     (long long)open_id, plan->sender);
		return 0;
	}
	count = store_ciss_challenge_count_sender(store, plan->owner_id, plan->sender,
						  now - (int64_t)plan->period_days * CISS_DAY);
	if (count < 0)
		return -1;
	if (count > 0) {
		ciss_quarantine(decision,
				xasprintf("no challenge: %s was challenged within the last %d days",
					  plan->sender, plan->period_days));
		return 0;
	}
	count = store_ciss_challenge_count_since(store, 0, now - CISS_HOUR);
	if (count < 0)
		return -1;
	if (count >= plan->cap_hour) {
		ciss_quarantine(
		    decision,
		    xasprintf("no challenge: the cap of %d challenges per hour is reached",
			      plan->cap_hour));
		return 0;
	}
	count = store_ciss_challenge_count_since(store, plan->owner_id, now - CISS_HOUR);
	if (count < 0)
		return -1;
	if (count >= plan->cap_user_hour) {
		ciss_quarantine(decision,
				xasprintf("no challenge: the cap of %d challenges per hour "
					  "for this user is reached",
					  plan->cap_user_hour));
		return 0;
	}
	decision->outcome = CISS_OUTCOME_CHALLENGE;
	decision->reason = xasprintf("challenged: a challenge goes to %s", plan->sender);
	return 0;
}

int ciss_policy_hold(struct store *store, const char *message_id, const struct ciss_plan *plan,
		     int64_t now, struct ciss_decision *decision)
{
	char nonce[CISS_NONCE_LEN + 1];

	if (decision->outcome == CISS_OUTCOME_CHALLENGE &&
	    store_ciss_challenge_add(store, plan->owner_id, plan->sender, plan->recipient,
				     plan->subject != NULL ? plan->subject : "", message_id, now,
				     now + (int64_t)plan->link_days * CISS_DAY,
				     &decision->challenge_id, nonce) < 0)
		return -1;
	return store_ciss_hold(store, message_id, plan->owner_id, plan->sender, now);
}
