/*
 * policy.h — whether a fetched message's sender is challenged (SPEC C1, C2,
 * G4): the main process's half of challenge-response. The worker found the
 * header facts (filters/ciss.h); the store keeps the rest (store/ciss.h).
 *
 *   applies   the owner's filter profile challenges unknown senders and
 *             the owner has an address in a Local Domain chosen in the CISS
 *             settings (C2; the pseudo-domain is a Local Domain by itself);
 *   known     the sender (the first From address) is allow-listed for the
 *             owner or globally (filters/senders.h), one of the owner's
 *             correspondents (store/correspondent.h), trusted by the owner
 *             (answered a challenge, or the administrator said so), or an
 *             address of one of popgate's users.
 *
 * A message CISS applies to from a sender who is not known is one the
 * verdict may challenge (pipeline/verdict.h keeps its order: the quarantine
 * by score comes first). Then, in the writer thread's transaction, so that
 * the counts are exact:
 *
 *   - a G4 rule on the facts (ciss_facts_screen), no usable From address,
 *     a sender challenged within the period whose challenge is no longer
 *     open, or a cap of challenges per hour reached (all users, or this
 *     one) sends it to the quarantine, with the reason;
 *   - a sender whose challenge to this user is still open (unanswered, its
 *     link valid) has the message held with it: no second challenge;
 *   - otherwise a new challenge is recorded and the message held for it;
 *     once that commits, the challenge mail is sent (ciss/challenge.h).
 */
#ifndef POPGATE_CISS_POLICY_H
#define POPGATE_CISS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/address.h"
#include "filters/filter.h"
#include "pipeline/pipeline.h"
#include "store/ciss.h"
#include "store/db.h"

/* What the main loop found for one message, for the writer thread: copies,
 * so the verdict and the configuration may go. */
struct ciss_plan {
	bool applies; /* CISS applies and the sender is not known */
	int64_t owner_id;
	char sender[ADDRESS_MAX + 1];	 /* lower case; "" when the message has none */
	char recipient[ADDRESS_MAX + 1]; /* the owner's address the challenge names */
	char *subject;			 /* from the facts (NULL: none); owned */
	const char *screen_reason;	 /* a G4 reason found already (static), or NULL */
	int period_days;
	int cap_hour;
	int cap_user_hour;
	int link_days;
};

/*
 * Fills *PLAN for VERDICT (judged) of user OWNER_ID under PROFILE, whose
 * message was fetched for the login ACCOUNT_ADDRESS (may be NULL or no
 * address; the challenge names it, else the first recipient the header
 * names, else the owner's address in a CISS domain);
 * PSEUDO_DOMAIN is [server] pseudo_domain. Returns 1 when CISS applies and
 * the sender is not known (the verdict may challenge), 0 when not. A store
 * that cannot be read makes it 1 with a screen reason saying so, so the
 * message goes to the quarantine rather than past CISS. Clear *PLAN with
 * ciss_plan_clear.
 */
int ciss_policy_plan(struct store *store, const char *pseudo_domain,
		     const struct filter_profile *profile, int64_t owner_id,
		     const char *account_address, const struct pipeline_verdict *verdict,
		     struct ciss_plan *plan);

void ciss_plan_clear(struct ciss_plan *plan);

enum ciss_outcome {
	CISS_OUTCOME_CHALLENGE,	 /* a new challenge: send it once committed */
	CISS_OUTCOME_JOINED,	 /* held with the sender's open challenge */
	CISS_OUTCOME_QUARANTINE, /* no challenge (G4): to the quarantine */
};

struct ciss_decision {
	enum ciss_outcome outcome;
	int64_t challenge_id; /* CHALLENGE, JOINED: the challenge */
	char *reason;	      /* one line for the verdict's explanation; owned */
};

void ciss_decision_clear(struct ciss_decision *decision);

/*
 * In the writer thread's transaction, for a message the verdict challenges:
 * decides by PLAN at NOW (see above) into *DECISION, writing nothing. 0, or
 * -1 when the store cannot be read (logged).
 */
int ciss_policy_decide(struct store *store, const struct ciss_plan *plan, int64_t now,
		       struct ciss_decision *decision);

/*
 * In the same transaction, once message MESSAGE_ID moved to challenged:
 * records the new challenge (CHALLENGE: its id into DECISION) and the hold
 * of the message. 0 or -1 (logged).
 */
int ciss_policy_hold(struct store *store, const char *message_id, const struct ciss_plan *plan,
		     int64_t now, struct ciss_decision *decision);

#endif
