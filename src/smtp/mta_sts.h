/*
 * mta_sts.h — SMTP MTA Strict Transport Security (RFC 8461): what the
 * records and the policy say, and whether an MX host is one the policy
 * names; and the HTTP response the policy comes in. No I/O here:
 * smtp/mta_sts_fetch.c finds the record, fetches the policy and keeps it
 * (store/mta_sts.h); the relay applies the decision.
 *
 * The TXT record "_mta-sts.DOMAIN" ("v=STSv1; id=...") says a domain has a
 * policy and which version of it is current (3.1). The policy, a short
 * text served over HTTPS (3.2), names the mode (enforce, testing, none),
 * the MX host patterns mail may go to ("mx.example.com", "*.example.com":
 * one label in place of the star) and how long it may be cached (max_age,
 * at most 31557600 seconds).
 *
 * Must never: read past the length given (the texts come from the network
 * and need not be NUL-ended), or accept a policy it did not wholly
 * understand the required fields of: a sender that misreads "enforce" as
 * no policy would be downgraded.
 */
#ifndef POPGATE_SMTP_MTA_STS_H
#define POPGATE_SMTP_MTA_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest policy body popgate reads (RFC 8461 3.3 lets a sender bound
 * it; real policies are a few hundred bytes). */
#define MTA_STS_POLICY_MAX 65536
/* The most mx lines one policy may carry. */
#define MTA_STS_MX_MAX 64
/* The longest policy id (RFC 8461 3.1: 1 to 32 letters and digits). */
#define MTA_STS_ID_MAX 32
/* RFC 8461 3.2: max_age at most 31557600 seconds (about a year). */
#define MTA_STS_MAX_AGE_MAX 31557600L

enum mta_sts_mode {
	MTA_STS_NONE,	 /* the domain withdrew its policy */
	MTA_STS_TESTING, /* report only: deliver as usual */
	MTA_STS_ENFORCE, /* only matching MX hosts, verified TLS */
};

struct mta_sts_policy {
	enum mta_sts_mode mode;
	int64_t max_age;
	char **mx; /* patterns, lowercase, without a trailing dot */
	size_t mx_count;
};

/* "enforce", "testing" or "none". */
const char *mta_sts_mode_name(enum mta_sts_mode mode);

/*
 * Reads one TXT record's text (TEXT, LEN bytes): 1 when it is a valid
 * STSv1 record, its id copied to ID (MTA_STS_ID_MAX + 1 bytes); 0 when it
 * does not begin with "v=STSv1" (another kind of record, to be ignored);
 * -1 when it begins so but is malformed.
 */
int mta_sts_record_parse(const char *text, size_t len, char *id);

/*
 * Parses the policy body TEXT (LEN bytes) into *POLICY (zeroed first;
 * free with mta_sts_policy_clear). Lines end with LF or CRLF; unknown
 * keys are ignored (3.2: extensions), but version, mode and max_age must
 * each be present exactly once and valid, and enforce and testing need at
 * least one mx. 0, or -1 with why in ERR.
 */
int mta_sts_policy_parse(const char *text, size_t len, struct mta_sts_policy *policy, char *err,
			 size_t errlen);

/* Frees what POLICY holds and zeroes it; NULL is fine. */
void mta_sts_policy_clear(struct mta_sts_policy *policy);

/*
 * Whether HOST (an MX name; a trailing dot and case ignored) matches
 * PATTERN: equal, or PATTERN "*.rest" and HOST one label followed by
 * ".rest" (RFC 8461 4.1: the star stands for exactly one label).
 */
bool mta_sts_mx_match(const char *pattern, const char *host);

/* Whether HOST matches one of POLICY's mx patterns. */
bool mta_sts_policy_allows(const struct mta_sts_policy *policy, const char *host);

/* The longest status line and header block of the policy's HTTP response. */
#define MTA_STS_HEADER_MAX 16384

/*
 * Frames the HTTP response to the policy GET (sent as HTTP/1.0, so no
 * chunked body), BUF holding its first LEN bytes; CLOSED when the server
 * has closed the connection cleanly (TLS close_notify: a cut response
 * must not pass for whole). 1: the whole response is there, the body at
 * *BODY_OFFSET, *BODY_LENGTH bytes; 0: more is needed; -1: refused, why in
 * ERR. Refused: a status other than 200 (a redirect is never followed,
 * RFC 8461 3.3), a Content-Type other than text/plain, a
 * Transfer-Encoding, a body over MTA_STS_POLICY_MAX, headers over
 * MTA_STS_HEADER_MAX, a malformed status line or header.
 */
int mta_sts_http_response(const char *buf, size_t len, bool closed, size_t *body_offset,
			  size_t *body_length, char *err, size_t errlen);

#endif
