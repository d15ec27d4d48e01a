/*
 * ciss.h — the facts challenge-response (CISS, SPEC C1, G4) needs from a
 * message's header and authentication, found in the worker (the header is
 * hostile), and the G4 rules that read them in the main process.
 *
 * ciss_facts_collect fills struct pipeline_ciss (pipeline/pipeline.h): the
 * Return-Path (null, missing), Auto-Submitted (other than "no"),
 * Precedence (bulk, list, junk), List-Id, our own challenge's header, the
 * Subject, and what SPF and DKIM say of the From domain (auth.h: computed
 * once per message, shared with the spf, dkim and dmarc filters).
 *
 * ciss_facts_screen is the part of G4 that needs nothing but those facts:
 * the reason a message's sender must not be challenged, or NULL. The rule
 * on authentication is the safe one: a challenge goes only to a sender
 * whose From domain was positively authenticated, by an SPF pass for an
 * envelope domain aligned with it (the same organizational domain) or by a
 * DKIM pass whose d= aligns with it. Mail that could not be checked (no
 * SPF record, a DNS timeout, no signature) is not challenged: a forged
 * From would otherwise draw a challenge to an innocent address.
 */
#ifndef POPGATE_FILTERS_CISS_H
#define POPGATE_FILTERS_CISS_H

#include <stddef.h>

#include "filters/filter.h"
#include "pipeline/pipeline.h"

/* The field every challenge popgate sends carries (with Auto-Submitted:
 * auto-replied), so that a challenge is never answered with one. */
#define CISS_CHALLENGE_HEADER "X-Popgate-Challenge"

/* The header part of the facts of MESSAGE (LEN bytes, its header block
 * first): its PIPELINE_CISS_* header flags (the null or missing
 * Return-Path, Auto-Submitted, Precedence, List-Id, our challenge's field),
 * and its Subject into SUBJECT ("" if none or too long), printable ASCII. */
unsigned ciss_header_facts(const char *message, size_t len,
			   char subject[PIPELINE_CISS_SUBJECT_MAX + 1]);

/* Fills *FACTS (present, flags, subject: free it with the verdict) for
 * MESSAGE, whose header and body were read. Asks SPF's and DKIM's DNS
 * questions if no filter has yet. */
void ciss_facts_collect(const struct filter_message *message, struct pipeline_ciss *facts);

/* The G4 reason (a static sentence) why a message with FLAGS must not draw
 * a challenge, or NULL when they allow one. */
const char *ciss_facts_screen(unsigned flags);

#endif
