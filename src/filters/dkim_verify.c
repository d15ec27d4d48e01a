/*
 * dkim_verify.c — the dkim filter: every DKIM-Signature of a message
 * verified by libopendkim, the keys asked for through filter_dns_query
 * (SELECTOR._domainkey.DOMAIN TXT; see auth.h). Named so as not to be
 * smtp/dkim.c, which signs outbound mail.
 *
 * Owns: the worker's libopendkim library handle, made once (dkim_verify_
 * setup, before the worker is confined). Each message gets its own
 * verifying handle, freed when it is done; the message it verifies
 * reaches the key lookup as the handle's user context.
 * Must never: canonicalise or hash by hand, let libopendkim query DNS
 * itself (the key lookup answers every key), or verify a body cut short
 * (a message larger than the bytes the worker keeps is not verified).
 *
 * SECURITY: signatures, keys and bodies are hostile; libopendkim parses
 * them. Only d= values that are DNS names are kept.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <opendkim/dkim.h>

#include "core/util.h"
#include "filters/auth.h"
#include "filters/filter.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"

/* Points, before the profile's weight: a valid signature of the From
 * domain's own vouches for the message; a broken one is a weak sign
 * (mailing lists break signatures too). */
#define DKIM_POINTS_ALIGNED_PASS (-1.0)
#define DKIM_POINTS_FAIL 0.5

static DKIM_LIB *dkim_verify_lib;

/*
 * libopendkim's key lookup: the TXT record of SIG's selector and domain
 * into BUF, asked through the message in the handle's user context. A
 * record that is not a DKIM key (other TXT strings under the name) is
 * skipped; more than one key is libopendkim's multiple-reply case.
 */
static DKIM_CBSTAT dkim_verify_key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	const struct filter_message *message = dkim_get_user_context(dkim);
	const char *selector = (const char *)dkim_sig_getselector(sig);
	const char *domain = (const char *)dkim_sig_getdomain(sig);
	struct filter_dns_answer answer;
	const char *key = NULL;
	char name[FILTER_DNS_NAME_MAX + 1];
	DKIM_CBSTAT status = DKIM_CBSTAT_NOTFOUND;
	int len;

	if (message == NULL || selector == NULL || domain == NULL)
		return DKIM_CBSTAT_ERROR;
	len = snprintf(name, sizeof(name), "%s._domainkey.%s", selector, domain);
	if (len < 0 || (size_t)len >= sizeof(name) || !filter_dns_name_valid(name))
		return DKIM_CBSTAT_NOTFOUND;
	filter_dns_query(message, name, FILTER_DNS_TXT, &answer);
	switch (answer.status) {
	case FILTER_DNS_OK:
		for (size_t i = 0; i < answer.count && key == NULL; i++) {
			/* RFC 6376 3.6.1: v=, if there, comes first; p= is required. */
			if (strncasecmp(answer.records[i], "v=DKIM1", 7) == 0 ||
			    strstr(answer.records[i], "p=") != NULL)
				key = answer.records[i];
		}
		if (key != NULL && strlen(key) < buflen) {
			memcpy(buf, key, strlen(key) + 1);
			status = DKIM_CBSTAT_CONTINUE;
		} else if (key != NULL) {
			status = DKIM_CBSTAT_ERROR;
		}
		break;
	case FILTER_DNS_NOT_FOUND:
		break;
	default:
		status = DKIM_CBSTAT_TRYAGAIN;
		break;
	}
	filter_dns_answer_clear(&answer);
	return status;
}

int dkim_verify_setup(char *err, size_t errlen)
{
	unsigned int flags = 0;

	if (dkim_verify_lib != NULL)
		return 0;
	dkim_verify_lib = dkim_init(NULL, NULL);
	if (dkim_verify_lib == NULL) {
		snprintf(err, errlen, "libopendkim: cannot initialise");
		return -1;
	}
	/* FIXCRLF: a message stored with bare LF lines is verified as the
	 * CRLF message it was when signed. */
	if (dkim_options(dkim_verify_lib, DKIM_OP_GETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
		DKIM_STAT_OK ||
	    (flags |= DKIM_LIBFLAGS_FIXCRLF,
	     dkim_options(dkim_verify_lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
			  sizeof(flags)) != DKIM_STAT_OK) ||
	    dkim_set_key_lookup(dkim_verify_lib, dkim_verify_key_lookup) != DKIM_STAT_OK) {
		snprintf(err, errlen, "libopendkim: cannot set its options");
		dkim_close(dkim_verify_lib);
		dkim_verify_lib = NULL;
		return -1;
	}
	return 0;
}

/* One signature's result, from libopendkim's verdict on it. */
static enum auth_result dkim_verify_signature_result(DKIM_SIGINFO *sig)
{
	if (DKIM_SIG_CHECK(sig))
		return AUTH_PASS;
	switch (dkim_sig_geterror(sig)) {
	case DKIM_SIGERROR_KEYFAIL:
		return AUTH_TEMPERROR; /* the key lookup timed out or failed */
	case DKIM_SIGERROR_NOKEY:
	case DKIM_SIGERROR_DNSSYNTAX:
	case DKIM_SIGERROR_MULTIREPLY:
	case DKIM_SIGERROR_KEYVERSION:
	case DKIM_SIGERROR_KEYUNKNOWNHASH:
	case DKIM_SIGERROR_KEYHASHMISMATCH:
	case DKIM_SIGERROR_NOTEMAILKEY:
	case DKIM_SIGERROR_KEYTYPEMISSING:
	case DKIM_SIGERROR_KEYTYPEUNKNOWN:
	case DKIM_SIGERROR_KEYREVOKED:
	case DKIM_SIGERROR_KEYDECODE:
	case DKIM_SIGERROR_KEYTOOSMALL:
		return AUTH_PERMERROR; /* no usable key: RFC 6376 PERMFAIL */
	default:
		return AUTH_FAIL;
	}
}

/* The message's overall result: the best of its signatures'. */
static enum auth_result dkim_verify_overall(const struct auth_dkim *dkim)
{
	static const enum auth_result order[] = {AUTH_PASS, AUTH_FAIL, AUTH_TEMPERROR,
						 AUTH_PERMERROR};

	for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++)
		for (size_t i = 0; i < dkim->count; i++)
			if (dkim->signatures[i].result == order[o])
				return order[o];
	return AUTH_NONE;
}

void dkim_verify_evaluate(const struct filter_message *message, const char *from_domain,
			  struct auth_dkim *dkim)
{
	DKIM_SIGINFO **sigs = NULL;
	enum auth_result unverified = AUTH_NONE; /* the result without signatures */
	DKIM_STAT status;
	DKIM *handle;
	char err[AUTH_WHY_MAX];
	int nsigs = 0;

	memset(dkim, 0, sizeof(*dkim));
	if (message->body == NULL || message->size > message->body_len) {
		snprintf(dkim->why, sizeof(dkim->why), "message too large to verify");
		return;
	}
	if (dkim_verify_setup(err, sizeof(err)) < 0) {
		dkim->result = AUTH_TEMPERROR;
		snprintf(dkim->why, sizeof(dkim->why), "%s", err);
		return;
	}
	handle =
	    dkim_verify(dkim_verify_lib, (const unsigned char *)message->job->id, NULL, &status);
	if (handle == NULL) {
		dkim->result = AUTH_TEMPERROR;
		snprintf(dkim->why, sizeof(dkim->why), "libopendkim: %s",
			 dkim_getresultstr(status));
		return;
	}
	dkim_set_user_context(handle, (void *)message);
	status = dkim_chunk(handle, (unsigned char *)message->body, message->body_len);
	if (status == DKIM_STAT_OK)
		status = dkim_chunk(handle, NULL, 0);
	if (status == DKIM_STAT_OK)
		status = dkim_eom(handle, NULL);
	if (status == DKIM_STAT_NOSIG) {
		snprintf(dkim->why, sizeof(dkim->why), "no signature");
	} else if (status == DKIM_STAT_CBTRYAGAIN || status == DKIM_STAT_KEYFAIL) {
		/* A key lookup timed out: libopendkim stops there, for all. */
		unverified = AUTH_TEMPERROR;
		snprintf(dkim->why, sizeof(dkim->why), "no key in time");
	} else if (dkim_getsiglist(handle, &sigs, &nsigs) != DKIM_STAT_OK || nsigs <= 0) {
		snprintf(dkim->why, sizeof(dkim->why), "libopendkim: %s",
			 dkim_getresultstr(status));
		nsigs = 0;
	}
	for (int i = 0; i < nsigs && dkim->count < AUTH_DKIM_SIGNATURES_MAX; i++) {
		struct auth_dkim_signature *signature = &dkim->signatures[dkim->count++];
		const char *domain = (const char *)dkim_sig_getdomain(sigs[i]);
		const char *selector = (const char *)dkim_sig_getselector(sigs[i]);

		signature->result = dkim_verify_signature_result(sigs[i]);
		if (domain != NULL && strlen(domain) < sizeof(signature->domain) &&
		    filter_dns_name_valid(domain)) {
			snprintf(signature->domain, sizeof(signature->domain), "%s", domain);
			for (char *p = signature->domain; *p != '\0'; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
		}
		if (selector != NULL && strlen(selector) < sizeof(signature->selector) &&
		    filter_dns_name_valid(selector))
			snprintf(signature->selector, sizeof(signature->selector), "%s", selector);
		signature->aligned = signature->domain[0] != '\0' && from_domain[0] != '\0' &&
				     dmarc_aligned(signature->domain, from_domain, false);
		if (signature->result != AUTH_PASS)
			snprintf(signature->why, sizeof(signature->why), "%s",
				 dkim_sig_geterrorstr(dkim_sig_geterror(sigs[i])));
	}
	dkim->result = dkim->count > 0 ? dkim_verify_overall(dkim) : unverified;
	dkim_free(handle);
}

/* ---- the filter ----------------------------------------------------------- */

static int dkim_filter_init(char *err, size_t errlen)
{
	return dkim_verify_setup(err, errlen);
}

static int dkim_filter_run(const struct filter_message *message, struct pipeline_result *result,
			   struct pipeline_verdict *verdict)
{
	const struct auth_dkim *dkim = auth_dkim(message);
	char list[PROTO_REASON_MAX + 1] = "";
	size_t used = 0;
	bool aligned_pass = false;

	(void)verdict;
	if (dkim == NULL) {
		result->reason = xstrdup("dkim: no authentication state");
		return -1;
	}
	for (size_t i = 0; i < dkim->count; i++) {
		const struct auth_dkim_signature *signature = &dkim->signatures[i];
		int n = snprintf(list + used, sizeof(list) - used, "%s%s d=%s%s%s%s%s",
				 i > 0 ? ", " : "", auth_result_name(signature->result),
				 signature->domain[0] != '\0' ? signature->domain : "?",
				 signature->aligned ? " aligned" : "",
				 signature->why[0] != '\0' ? " (" : "", signature->why,
				 signature->why[0] != '\0' ? ")" : "");

		if (n < 0 || (size_t)n >= sizeof(list) - used)
			break;
		used += (size_t)n;
		aligned_pass =
		    aligned_pass || (signature->result == AUTH_PASS && signature->aligned);
	}
	if (aligned_pass)
		result->score = DKIM_POINTS_ALIGNED_PASS;
	else if (dkim->result == AUTH_FAIL)
		result->score = DKIM_POINTS_FAIL;
	if (dkim->count == 0)
		result->reason =
		    auth_reason("dkim=%s (%s)", auth_result_name(dkim->result), dkim->why);
	else
		result->reason = auth_reason("dkim=%s: %s", auth_result_name(dkim->result), list);
	return 0;
}

const struct filter filter_dkim = {
    .name = "dkim",
    .init = dkim_filter_init,
    .run = dkim_filter_run,
};
