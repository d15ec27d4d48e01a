/*
 * dmarc.c — the dmarc filter: does the From domain's DMARC policy (RFC
 * 7489) accept the message? An SPF pass (envelope domain) or a DKIM pass
 * (d=) aligned with the From domain passes. libopendmarc parses the record
 * (p, sp, adkim, aspf); alignment is by RFC 7489's rules with libpsl's
 * organizational domains (see dmarc_judge for why not libopendmarc's). The
 * record is asked for through filter_dns_query (_dmarc.FROM-DOMAIN TXT,
 * then the organizational domain's).
 *
 * The dmarc filter also writes the message's one Authentication-Results
 * header (RFC 8601) with the spf, dkim and dmarc results, since it is the
 * filter that has all three; a profile without it gets no such header.
 * One the message already carries, even under this gateway's name (a
 * forgery, RFC 8601 5), stays: filters only add headers; ours is on top.
 *
 * Owns: the libpsl context, loaded once (dmarc_setup, before the worker is
 * confined) from Debian's public suffix list (package publicsuffix).
 * Must never: let libopendmarc query DNS itself (opendmarc_policy_query_
 * dmarc is not used), or score a DNS failure (it is a temperror, scored 0).
 *
 * pct= is not sampled: a failing message under p=quarantine pct=10 counts
 * as a quarantine policy's failure, for a score, not an action.
 *
 * SECURITY: records come from DNS, domains from hostile mail; only DNS
 * names go into the header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpsl.h>
#include <opendmarc/dmarc.h>

#include "core/log.h"
#include "core/util.h"
#include "filters/auth.h"
#include "filters/filter.h"
#include "pipeline/pipeline.h"

/* Points, before the profile's weight. A pass says the From domain is not
 * forged; a failure counts as much as its owner asks. */
#define DMARC_POINTS_PASS (-0.5)
#define DMARC_POINTS_QUARANTINE 4.0
#define DMARC_POINTS_REJECT 6.0

static bool dmarc_ready;
static const psl_ctx_t *dmarc_psl;

int dmarc_setup(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	if (dmarc_ready)
		return 0;
	/* The distribution's list (Debian's publicsuffix package), or the one
	 * built into libpsl when it is newer or the file cannot be read. */
	dmarc_psl = psl_latest(NULL);
	if (dmarc_psl == NULL) {
		log_warn("dmarc: cannot read the public suffix list %s; using the built-in one",
			 psl_dist_filename() != NULL ? psl_dist_filename() : "(none)");
		dmarc_psl = psl_builtin();
	}
	dmarc_ready = true;
	return 0;
}

bool dmarc_aligned(const char *domain, const char *from_domain, bool strict)
{
	const char *organizational;
	const char *from_organizational;

	if (strcasecmp(domain, from_domain) == 0)
		return true;
	if (strict)
		return false;
	if (!dmarc_ready) {
		char err[AUTH_WHY_MAX];

		dmarc_setup(err, sizeof(err));
	}
	/* libpsl compares as it finds: both lowercased, as auth.h keeps them. */
	organizational = psl_registrable_domain(dmarc_psl, domain);
	from_organizational = psl_registrable_domain(dmarc_psl, from_domain);
	return organizational != NULL && from_organizational != NULL &&
	       strcasecmp(organizational, from_organizational) == 0;
}

/*
 * The DMARC record of DOMAIN into OUT: 1 found, 0 none (no name, no record,
 * or more than one: RFC 7489 6.6.3), -1 no answer (timeout, failure).
 */
static int dmarc_record(const struct filter_message *message, const char *domain, char *out,
			size_t outlen)
{
	struct filter_dns_answer answer;
	char name[FILTER_DNS_NAME_MAX + 1];
	const char *found = NULL;
	size_t count = 0;
	int len = snprintf(name, sizeof(name), "_dmarc.%s", domain);

	if (len < 0 || (size_t)len >= sizeof(name))
		return 0;
	filter_dns_query(message, name, FILTER_DNS_TXT, &answer);
	if (answer.status == FILTER_DNS_TIMEOUT || answer.status == FILTER_DNS_FAILED) {
		filter_dns_answer_clear(&answer);
		return -1;
	}
	for (size_t i = 0; i < answer.count; i++) {
		const char *record = answer.records[i];

		if (strncasecmp(record, "v=DMARC1", 8) == 0 &&
		    (record[8] == ';' || record[8] == ' ' || record[8] == '\t' ||
		     record[8] == '\0')) {
			found = record;
			count++;
		}
	}
	if (count == 1 && strlen(found) < outlen)
		memcpy(out, found, strlen(found) + 1);
	filter_dns_answer_clear(&answer);
	return count == 1 && out[0] != '\0' ? 1 : 0;
}

static enum auth_policy dmarc_policy_of(int p)
{
	switch (p) {
	case DMARC_RECORD_P_REJECT:
		return AUTH_POLICY_REJECT;
	case DMARC_RECORD_P_QUARANTINE:
		return AUTH_POLICY_QUARANTINE;
	default:
		return AUTH_POLICY_NONE;
	}
}

/*
 * Reads the record with libopendmarc, then judges by RFC 7489 (3.1, 6.6):
 * an SPF or DKIM pass whose domain aligns with the From domain under aspf=
 * or adkim= passes; else the policy applies: sp= (if given) when the
 * record was the organizational domain's, p= otherwise. libopendmarc's
 * own judgement (opendmarc_get_policy_to_enforce) is not used: 1.4.2
 * aligns d=mail.example.org with From example.org under adkim=s, because
 * it compares the signing domain's organizational domain in strict mode.
 */
static void dmarc_judge(DMARC_POLICY_T *pctx, const char *record, const char *org_domain,
			const struct auth_spf *spf, const struct auth_dkim *dkim,
			struct auth_dmarc *dmarc)
{
	OPENDMARC_STATUS_T status;
	int adkim = 0, aspf = 0, p = 0, sp = 0;

	status = opendmarc_policy_store_dmarc(pctx, (u_char *)record, (u_char *)dmarc->from_domain,
					      (u_char *)org_domain);
	if (status == DMARC_PARSE_OKAY)
		status = opendmarc_policy_fetch_p(pctx, &p);
	if (status != DMARC_PARSE_OKAY || p == DMARC_RECORD_P_UNSPECIFIED) {
		dmarc->result = AUTH_PERMERROR;
		snprintf(dmarc->why, sizeof(dmarc->why), "unusable record: %s",
			 opendmarc_policy_status_to_str(status));
		return;
	}
	opendmarc_policy_fetch_adkim(pctx, &adkim);
	opendmarc_policy_fetch_aspf(pctx, &aspf);
	opendmarc_policy_fetch_sp(pctx, &sp);
	dmarc->spf_aligned =
	    spf->result == AUTH_PASS && spf->domain[0] != '\0' &&
	    dmarc_aligned(spf->domain, dmarc->from_domain, aspf == DMARC_RECORD_A_STRICT);
	for (size_t i = 0; i < dkim->count; i++) {
		const struct auth_dkim_signature *signature = &dkim->signatures[i];

		if (signature->result == AUTH_PASS && signature->domain[0] != '\0' &&
		    dmarc_aligned(signature->domain, dmarc->from_domain,
				  adkim == DMARC_RECORD_A_STRICT))
			dmarc->dkim_aligned = true;
	}
	dmarc->policy =
	    dmarc_policy_of(org_domain != NULL && sp != DMARC_RECORD_P_UNSPECIFIED ? sp : p);
	dmarc->result = dmarc->spf_aligned || dmarc->dkim_aligned ? AUTH_PASS : AUTH_FAIL;
}

void dmarc_evaluate(const struct filter_message *message, const char *from_domain,
		    const struct auth_spf *spf, const struct auth_dkim *dkim,
		    struct auth_dmarc *dmarc)
{
	const struct filter_handoff *handoff = &message->handoff;
	char record[FILTER_DNS_RECORD_MAX + 1] = "";
	const char *org_domain = NULL;
	DMARC_POLICY_T *pctx;
	char err[128];
	int found;

	memset(dmarc, 0, sizeof(*dmarc));
	if (from_domain[0] == '\0') {
		snprintf(dmarc->why, sizeof(dmarc->why), "no From domain");
		return;
	}
	dmarc_setup(err, sizeof(err));
	snprintf(dmarc->from_domain, sizeof(dmarc->from_domain), "%s", from_domain);
	snprintf(dmarc->policy_domain, sizeof(dmarc->policy_domain), "%s", from_domain);
	found = dmarc_record(message, from_domain, record, sizeof(record));
	if (found == 0) {
		const char *registrable = psl_registrable_domain(dmarc_psl, from_domain);

		if (registrable != NULL && strcmp(registrable, from_domain) != 0) {
			org_domain = registrable;
			snprintf(dmarc->policy_domain, sizeof(dmarc->policy_domain), "%s",
				 org_domain);
			found = dmarc_record(message, org_domain, record, sizeof(record));
		}
	}
	if (found < 0) {
		dmarc->result = AUTH_TEMPERROR;
		snprintf(dmarc->why, sizeof(dmarc->why), "no answer for the DMARC record");
		return;
	}
	if (found == 0) {
		snprintf(dmarc->why, sizeof(dmarc->why), "no DMARC record");
		return;
	}
	pctx =
	    opendmarc_policy_connect_init((u_char *)(handoff->found ? handoff->address : "0.0.0.0"),
					  handoff->found && strchr(handoff->address, ':') != NULL);
	if (pctx == NULL)
		abort();
	dmarc_judge(pctx, record, org_domain, spf, dkim, dmarc);
	opendmarc_policy_connect_shutdown(pctx);
}

/* ---- the filter ----------------------------------------------------------- */

static const char *dmarc_policy_name(enum auth_policy policy)
{
	return policy == AUTH_POLICY_REJECT	  ? "reject"
	       : policy == AUTH_POLICY_QUARANTINE ? "quarantine"
						  : "none";
}

/* The Authentication-Results header of the three results (RFC 8601 2.2):
 * authserv-id the gateway's name, then one resinfo per method. */
static char *dmarc_results_header(const char *hostname, const struct auth_spf *spf,
				  const struct auth_dkim *dkim, const struct auth_dmarc *dmarc)
{
	char *header = xasprintf("Authentication-Results: %s",
				 filter_dns_name_valid(hostname) ? hostname : "localhost");
	char *next;

	if (spf->domain[0] != '\0')
		next =
		    xasprintf("%s;\r\n\tspf=%s smtp.%s=%s", header, auth_result_name(spf->result),
			      spf->helo ? "helo" : "mailfrom", spf->domain);
	else
		next = xasprintf("%s;\r\n\tspf=none", header);
	free(header);
	header = next;
	for (size_t i = 0; i < dkim->count; i++) {
		const struct auth_dkim_signature *signature = &dkim->signatures[i];

		if (signature->domain[0] == '\0')
			continue;
		next = xasprintf("%s;\r\n\tdkim=%s header.d=%s%s%s", header,
				 auth_result_name(signature->result), signature->domain,
				 signature->selector[0] != '\0' ? " header.s=" : "",
				 signature->selector);
		free(header);
		header = next;
	}
	if (dkim->count == 0) {
		next = xasprintf("%s;\r\n\tdkim=none", header);
		free(header);
		header = next;
	}
	if (dmarc->from_domain[0] != '\0')
		next = xasprintf("%s;\r\n\tdmarc=%s (p=%s) header.from=%s\r\n", header,
				 auth_result_name(dmarc->result), dmarc_policy_name(dmarc->policy),
				 dmarc->from_domain);
	else
		next = xasprintf("%s;\r\n\tdmarc=none\r\n", header);
	free(header);
	return next;
}

static int dmarc_filter_init(char *err, size_t errlen)
{
	return dmarc_setup(err, errlen);
}

static int dmarc_filter_run(const struct filter_message *message, struct pipeline_result *result,
			    struct pipeline_verdict *verdict)
{
	const struct auth_dmarc *dmarc = auth_dmarc(message);
	char *header;

	(void)verdict;
	if (dmarc == NULL) {
		result->reason = xstrdup("dmarc: no authentication state");
		return -1;
	}
	if (dmarc->result == AUTH_PASS)
		result->score = DMARC_POINTS_PASS;
	else if (dmarc->result == AUTH_FAIL && dmarc->policy == AUTH_POLICY_REJECT)
		result->score = DMARC_POINTS_REJECT;
	else if (dmarc->result == AUTH_FAIL && dmarc->policy == AUTH_POLICY_QUARANTINE)
		result->score = DMARC_POINTS_QUARANTINE;
	if (dmarc->result == AUTH_PASS || dmarc->result == AUTH_FAIL)
		result->reason =
		    auth_reason("dmarc=%s p=%s for From %s (policy of %s; spf %s, dkim %s)",
				auth_result_name(dmarc->result), dmarc_policy_name(dmarc->policy),
				dmarc->from_domain, dmarc->policy_domain,
				dmarc->spf_aligned ? "aligned" : "not aligned",
				dmarc->dkim_aligned ? "aligned" : "not aligned");
	else
		result->reason =
		    auth_reason("dmarc=%s (%s%s%s)", auth_result_name(dmarc->result), dmarc->why,
				dmarc->from_domain[0] != '\0' ? " of " : "", dmarc->policy_domain);
	header = dmarc_results_header(message->hostname != NULL ? message->hostname : "",
				      auth_spf(message), auth_dkim(message), dmarc);
	filter_result_add_headers(result, header);
	free(header);
	return 0;
}

const struct filter filter_dmarc = {
    .name = "dmarc",
    .init = dmarc_filter_init,
    .run = dmarc_filter_run,
};
