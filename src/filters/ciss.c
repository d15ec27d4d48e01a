/*
 * ciss.c — the CISS facts of a message and the G4 rules on them (see
 * filters/ciss.h).
 *
 * Owns: nothing (the subject it hands out belongs to the verdict).
 * Must never: decide anything in the worker: it only reports.
 * SECURITY: the header is hostile; it is read by ciss_header.c (fuzzed on
 * its own), the authentication by auth.h.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "filters/auth.h"
#include "filters/ciss.h"

static unsigned ciss_auth_flags(const struct filter_message *message)
{
	const struct auth_spf *spf = auth_spf(message);
	const struct auth_dkim *dkim = auth_dkim(message);
	const char *from_domain = auth_from_domain(message);
	unsigned flags = 0;

	if (spf == NULL || dkim == NULL)
		return 0;
	if (spf->result == AUTH_FAIL)
		flags |= PIPELINE_CISS_SPF_FAIL;
	/* An SPF pass of the HELO name (a null sender) says nothing of From. */
	if (spf->result == AUTH_PASS && !spf->helo && spf->domain[0] != '\0' &&
	    from_domain[0] != '\0' && dmarc_aligned(spf->domain, from_domain, false))
		flags |= PIPELINE_CISS_SPF_ALIGNED_PASS;
	for (size_t i = 0; i < dkim->count; i++) {
		const struct auth_dkim_signature *signature = &dkim->signatures[i];

		if (signature->result != AUTH_PASS || signature->domain[0] == '\0')
			continue;
		if (signature->aligned)
			flags |= PIPELINE_CISS_DKIM_ALIGNED_PASS;
		else
			flags |= PIPELINE_CISS_DKIM_UNALIGNED_PASS;
	}
	if ((flags & PIPELINE_CISS_DKIM_ALIGNED_PASS) != 0)
		flags &= ~(unsigned)PIPELINE_CISS_DKIM_UNALIGNED_PASS;
	return flags;
}

void ciss_facts_collect(const struct filter_message *message, struct pipeline_ciss *facts)
{
	char subject[PIPELINE_CISS_SUBJECT_MAX + 1];

	memset(facts, 0, sizeof(*facts));
	facts->present = true;
	if (message->body == NULL)
		return;
	facts->flags =
	    ciss_header_facts(message->body, message->body_len, subject) | ciss_auth_flags(message);
	if (subject[0] != '\0')
		facts->subject = xstrdup(subject);
}

const char *ciss_facts_screen(unsigned flags)
{
	if ((flags & PIPELINE_CISS_NULL_SENDER) != 0)
		return "no challenge: null sender (Return-Path <>)";
	if ((flags & PIPELINE_CISS_NO_SENDER) != 0)
		return "no challenge: no usable envelope sender (Return-Path)";
	if ((flags & PIPELINE_CISS_OUR_CHALLENGE) != 0)
		return "no challenge: the message is a challenge itself (" CISS_CHALLENGE_HEADER
		       ")";
	if ((flags & PIPELINE_CISS_AUTO_SUBMITTED) != 0)
		return "no challenge: automatic mail (Auto-Submitted)";
	if ((flags & PIPELINE_CISS_BULK) != 0)
		return "no challenge: bulk mail (Precedence bulk, list or junk)";
	if ((flags & PIPELINE_CISS_LIST) != 0)
		return "no challenge: mailing-list mail (List-Id)";
	if ((flags & PIPELINE_CISS_SPF_FAIL) != 0)
		return "no challenge: SPF fails for the sender's domain";
	if ((flags & (PIPELINE_CISS_SPF_ALIGNED_PASS | PIPELINE_CISS_DKIM_ALIGNED_PASS)) != 0)
		return NULL;
	if ((flags & PIPELINE_CISS_DKIM_UNALIGNED_PASS) != 0)
		return "no challenge: DKIM does not align with the From domain";
	return "no challenge: the From domain is not authenticated (no SPF pass aligned "
	       "with it, no aligned DKIM pass)";
}
