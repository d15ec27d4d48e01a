/*
 * auth.h — who sent a message, as SPF, DKIM and DMARC say: the results the
 * spf, dkim and dmarc filters report, computed once per message and shared.
 *
 * DMARC needs the SPF and DKIM outcomes, and each costs DNS questions from
 * the message's budget, so each is computed at most once per message: the
 * first filter that needs a result computes it into the message's
 * struct filter_auth (filter_message.auth), and the others read it there.
 * The worker gives every job a zeroed one (pipeline/worker.c); it holds no
 * pointers, so it needs no freeing. A message without one (auth NULL) gets
 * a failed result from these filters.
 *
 *   spf   the hand-off address (filter_handoff) against the SPF record of
 *         the envelope sender's domain (the job's sender, else the
 *         Return-Path the provider wrote), or of the HELO name for a null
 *         sender; libspf2 evaluates it (filters/spf.c).
 *   dkim  every DKIM-Signature, verified by libopendkim (dkim_verify.c).
 *   dmarc the From domain's policy (or its organizational domain's) and the
 *         alignment of the SPF and DKIM domains with From, by libopendmarc
 *         (dmarc.c).
 *
 * Forwarded mail: a forwarder's address is not in the original sender's SPF
 * record, so SPF fails; a DKIM signature survives forwarding unchanged, and
 * DMARC passes through it when its d= aligns with From.
 *
 * Every DNS question goes through filter_dns_query (filters/dns.h): a
 * question that times out or fails is a temperror, never a held message.
 *
 * SECURITY: all names and texts here come from hostile mail or DNS. Domains
 * are kept only when filter_dns_name_valid accepts them, so they can be put
 * into a header; reasons are printable ASCII.
 */
#ifndef POPGATE_FILTERS_AUTH_H
#define POPGATE_FILTERS_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "filters/dns.h"

struct filter_message;

/* Signatures looked at in one message; the rest are not verified. */
#define AUTH_DKIM_SIGNATURES_MAX 8
#define AUTH_DOMAIN_MAX FILTER_DNS_NAME_MAX
#define AUTH_SELECTOR_MAX 63
#define AUTH_WHY_MAX 96

/* Results, by their RFC 8601 names (auth_result_name). */
enum auth_result {
	AUTH_NONE = 0,
	AUTH_PASS,
	AUTH_FAIL,
	AUTH_SOFTFAIL,
	AUTH_NEUTRAL,
	AUTH_TEMPERROR,
	AUTH_PERMERROR,
};

struct auth_spf {
	enum auth_result result;
	bool helo;			  /* the HELO name was checked (null sender) */
	char address[64];		  /* the address checked, or "" */
	char domain[AUTH_DOMAIN_MAX + 1]; /* the domain whose record was checked, or "" */
	char why[AUTH_WHY_MAX];		  /* why there was no check, or "" */
};

struct auth_dkim_signature {
	enum auth_result result;	  /* pass, fail, temperror or permerror */
	char domain[AUTH_DOMAIN_MAX + 1]; /* d=, or "" when not a DNS name */
	char selector[AUTH_SELECTOR_MAX + 1];
	bool aligned;		/* d= aligns (relaxed) with the From domain */
	char why[AUTH_WHY_MAX]; /* libopendkim's error for a failed one */
};

struct auth_dkim {
	/* PASS if a signature passed, else FAIL, TEMPERROR or PERMERROR as the
	 * signatures went, NONE without one. */
	enum auth_result result;
	size_t count;
	struct auth_dkim_signature signatures[AUTH_DKIM_SIGNATURES_MAX];
	char why[AUTH_WHY_MAX]; /* why nothing was verified, or "" */
};

enum auth_policy {
	AUTH_POLICY_NONE = 0,
	AUTH_POLICY_QUARANTINE,
	AUTH_POLICY_REJECT,
};

struct auth_dmarc {
	/* PASS (aligned SPF or DKIM), FAIL (neither), NONE (no From domain
	 * or no record), TEMPERROR (no answer in time), PERMERROR (a record
	 * libopendmarc cannot parse). */
	enum auth_result result;
	enum auth_policy policy; /* the policy that applies (sp= for a subdomain) */
	char from_domain[AUTH_DOMAIN_MAX + 1];
	char policy_domain[AUTH_DOMAIN_MAX + 1]; /* whose _dmarc record it was */
	bool spf_aligned;
	bool dkim_aligned;
	char why[AUTH_WHY_MAX];
};

/* One message's results; zeroed, nothing is computed yet. */
struct filter_auth {
	bool spf_done, dkim_done, dmarc_done;
	char from_domain[AUTH_DOMAIN_MAX + 1]; /* set with dkim_done */
	struct auth_spf spf;
	struct auth_dkim dkim;
	struct auth_dmarc dmarc;
};

/*
 * MESSAGE's results, computed on the first call for the message (DMARC
 * computes SPF and DKIM first). NULL when MESSAGE has no auth state.
 */
const struct auth_spf *auth_spf(const struct filter_message *message);
const struct auth_dkim *auth_dkim(const struct filter_message *message);
const struct auth_dmarc *auth_dmarc(const struct filter_message *message);

/* The RFC 8601 name of RESULT ("pass", "temperror"...). */
const char *auth_result_name(enum auth_result result);

/* A filter's reason, formatted like printf, cut to what a result may carry
 * (PROTO_REASON_MAX) and made printable ASCII; the caller frees it. */
char *auth_reason(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* The From domain of MESSAGE (first From address; lowercased), or "" when
 * it has none or it is not a DNS name. Cached with the DKIM results. */
const char *auth_from_domain(const struct filter_message *message);

/*
 * The envelope sender of MESSAGE into OUT (OUTLEN bytes): the job's, else
 * the address of the first Return-Path field of its header. 1 with an
 * address, 0 for the null sender ("<>"), -1 when there is none (or it does
 * not fit).
 */
int auth_envelope_sender(const struct filter_message *message, char *out, size_t outlen);

/* ---- in spf.c, dkim_verify.c, dmarc.c: the computations ---------------- */

/* Loads what each needs before the worker is confined (idempotent). 0 or -1
 * with ERR. */
int spf_setup(char *err, size_t errlen);
int dkim_verify_setup(char *err, size_t errlen);
int dmarc_setup(char *err, size_t errlen);

void spf_evaluate(const struct filter_message *message, struct auth_spf *spf);
void dkim_verify_evaluate(const struct filter_message *message, const char *from_domain,
			  struct auth_dkim *dkim);
void dmarc_evaluate(const struct filter_message *message, const char *from_domain,
		    const struct auth_spf *spf, const struct auth_dkim *dkim,
		    struct auth_dmarc *dmarc);

/* Whether DOMAIN aligns with FROM_DOMAIN: equal when STRICT, else the same
 * organizational domain (libopendmarc's rules). */
bool dmarc_aligned(const char *domain, const char *from_domain, bool strict);

#endif
