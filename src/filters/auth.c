/*
 * auth.c — one message's SPF, DKIM and DMARC results, computed once and
 * shared by the spf, dkim and dmarc filters (see auth.h).
 *
 * Owns: nothing; the results live in the message's struct filter_auth,
 * which the worker owns. Must never: compute a result twice for one message
 * (each costs DNS time from the message's budget).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "filters/auth.h"
#include "filters/auth_header.h"
#include "filters/filter.h"
#include "pipeline/headers.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"

const char *auth_result_name(enum auth_result result)
{
	switch (result) {
	case AUTH_PASS:
		return "pass";
	case AUTH_FAIL:
		return "fail";
	case AUTH_SOFTFAIL:
		return "softfail";
	case AUTH_NEUTRAL:
		return "neutral";
	case AUTH_TEMPERROR:
		return "temperror";
	case AUTH_PERMERROR:
		return "permerror";
	case AUTH_NONE:
		break;
	}
	return "none";
}

char *auth_reason(const char *format, ...)
{
	char text[PROTO_REASON_MAX + 1];
	char clean[PROTO_REASON_MAX + 1];
	va_list ap;

	va_start(ap, format);
	vsnprintf(text, sizeof(text), format, ap);
	va_end(ap);
	util_sanitize(clean, sizeof(clean), text, strlen(text));
	return xstrdup(clean);
}

int auth_envelope_sender(const struct filter_message *message, char *out, size_t outlen)
{
	char value[1024];

	if (message->job != NULL && message->job->envelope.sender != NULL)
		return auth_path_address(message->job->envelope.sender, out, outlen);
	if (message->body == NULL || auth_header_field(message->body, message->body_len,
						       "Return-Path", value, sizeof(value)) != 1)
		return -1;
	return auth_path_address(value, out, outlen);
}

const char *auth_from_domain(const struct filter_message *message)
{
	struct filter_auth *auth = message->auth;
	const char *sender = NULL;
	const char *const *recipients;
	const char *at;

	if (auth == NULL)
		return "";
	if (auth->from_domain[0] != '\0' || message->headers == NULL)
		return auth->from_domain;
	headers_finish(message->headers, &sender, &recipients);
	/* headers.c lowercases the address and checks its domain's shape;
	 * the DNS-name check is what auth.h promises on top. */
	if (sender != NULL && (at = strrchr(sender, '@')) != NULL &&
	    strlen(at + 1) < sizeof(auth->from_domain) && filter_dns_name_valid(at + 1))
		snprintf(auth->from_domain, sizeof(auth->from_domain), "%s", at + 1);
	return auth->from_domain;
}

const struct auth_spf *auth_spf(const struct filter_message *message)
{
	struct filter_auth *auth = message->auth;

	if (auth == NULL)
		return NULL;
	if (!auth->spf_done) {
		spf_evaluate(message, &auth->spf);
		auth->spf_done = true;
	}
	return &auth->spf;
}

const struct auth_dkim *auth_dkim(const struct filter_message *message)
{
	struct filter_auth *auth = message->auth;

	if (auth == NULL)
		return NULL;
	if (!auth->dkim_done) {
		dkim_verify_evaluate(message, auth_from_domain(message), &auth->dkim);
		auth->dkim_done = true;
	}
	return &auth->dkim;
}

const struct auth_dmarc *auth_dmarc(const struct filter_message *message)
{
	struct filter_auth *auth = message->auth;

	if (auth == NULL)
		return NULL;
	if (!auth->dmarc_done) {
		const struct auth_spf *spf = auth_spf(message);
		const struct auth_dkim *dkim = auth_dkim(message);

		dmarc_evaluate(message, auth_from_domain(message), spf, dkim, &auth->dmarc);
		auth->dmarc_done = true;
	}
	return &auth->dmarc;
}
