/*
 * spf.c — the spf filter: is the hand-off address (the host that gave the
 * message to the provider) allowed to send for the envelope sender's
 * domain (or, for a null sender, its HELO name)? libspf2 evaluates the
 * record; its questions go through filter_dns_query (see auth.h).
 *
 * Owns: the worker's libspf2 server and the DNS layer under it, made once
 * (spf_setup, before the worker is confined: libspf2 asks gethostname
 * then). The layer's hook points at the message being checked for the
 * length of one check and is NULL otherwise: libspf2's lookup callback has
 * no other way to reach it. Workers and popgatectl are single-threaded, so
 * one layer serves every check.
 * Must never: let libspf2 open a socket or a resolver of its own (the
 * layer answers every question, and has no layer below), log through
 * libspf2's stdio or syslog handlers, or let a DNS failure hold a message
 * (it is a temperror, scored 0).
 *
 * SECURITY: the records and names come from DNS and hostile mail; libspf2
 * limits the mechanisms a record may cost (10 lookups, RFC 7208 4.6.4) and
 * filter_dns_query refuses names that are not DNS names. libspf2 compiles
 * records written by whoever runs the sender's DNS, and Debian 12's 1.2.10
 * lacks upstream's later fix of an integer underflow in that compiler
 * (CVE-2023-42118): it runs only here, in the confined worker, whose crash
 * costs one retried job.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spf2/spf.h>

#include "core/log.h"
#include "core/util.h"
#include "filters/auth.h"
#include "filters/filter.h"
#include "pipeline/pipeline.h"

/* Points, before the profile's weight. A pass says little (spammers
 * publish records too); a fail says the sender's domain disowns the host. */
#define SPF_POINTS_PASS (-0.1)
#define SPF_POINTS_FAIL 3.0
#define SPF_POINTS_SOFTFAIL 1.0

static SPF_dns_server_t spf_dns_layer;
static SPF_server_t *spf_server;

/* libspf2 calls its error handler for its own bugs only (a NULL where it
 * asserts one), then aborts: the worker dies and the job is retried. */
__attribute__((noreturn)) static void spf_library_error(const char *file, int line,
							const char *message)
{
	log_error("libspf2: %s:%d: %s", file != NULL ? file : "?", line, message);
	abort();
}

/* The record type filter_dns_query knows for libspf2's TYPE, or 0. */
static enum filter_dns_type spf_dns_type(ns_type type)
{
	switch (type) {
	case ns_t_a:
		return FILTER_DNS_A;
	case ns_t_aaaa:
		return FILTER_DNS_AAAA;
	case ns_t_mx:
		return FILTER_DNS_MX;
	case ns_t_txt:
		return FILTER_DNS_TXT;
	case ns_t_ptr:
		return FILTER_DNS_PTR;
	default:
		return 0;
	}
}

/* Adds RECORD (text, as filters/dns.h gives it) to RR as its type's data;
 * a record that does not parse is left out. */
static void spf_dns_rr_add(SPF_dns_rr_t *rr, const char *record)
{
	int index = rr->num_rr;
	struct in_addr ipv4;
	struct in6_addr ipv6;
	const char *text = record;

	switch (rr->rr_type) {
	case ns_t_a:
		if (inet_pton(AF_INET, record, &ipv4) != 1)
			return;
		if (SPF_dns_rr_buf_realloc(rr, index, sizeof(SPF_dns_rr_data_t)) != SPF_E_SUCCESS)
			abort();
		rr->rr[index]->a = ipv4;
		break;
	case ns_t_aaaa:
		if (inet_pton(AF_INET6, record, &ipv6) != 1)
			return;
		if (SPF_dns_rr_buf_realloc(rr, index, sizeof(SPF_dns_rr_data_t)) != SPF_E_SUCCESS)
			abort();
		rr->rr[index]->aaaa = ipv6;
		break;
	case ns_t_mx:
		/* "PREFERENCE EXCHANGE": libspf2 keeps the exchange alone. */
		text = strchr(record, ' ');
		if (text == NULL)
			return;
		text++;
		/* fall through */
	default:
		if (SPF_dns_rr_buf_realloc(rr, index, strlen(text) + 1) != SPF_E_SUCCESS)
			abort();
		memcpy(rr->rr[index]->txt, text, strlen(text) + 1);
		break;
	}
	rr->num_rr = index + 1;
}

/*
 * The layer's lookup: DOMAIN's records of TYPE from the message in the
 * layer's hook, as libspf2 wants them. A type filter_dns_query does not ask
 * (type 99, which libspf2 tries before TXT) has no data; a name that is not
 * a DNS name does not exist; a timeout or failure is TRY_AGAIN, which
 * libspf2 turns into a temperror.
 */
static SPF_dns_rr_t *spf_dns_lookup(SPF_dns_server_t *layer, const char *domain, ns_type type,
				    int should_cache)
{
	const struct filter_message *message = layer->hook;
	enum filter_dns_type question = spf_dns_type(type);
	struct filter_dns_answer answer;
	SPF_dns_stat_t herrno;
	SPF_dns_rr_t *rr;
	char name[FILTER_DNS_NAME_MAX + 2];
	size_t len;

	(void)should_cache;
	snprintf(name, sizeof(name), "%s", domain != NULL ? domain : "");
	len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		name[len - 1] = '\0';
	memset(&answer, 0, sizeof(answer));
	if (question == 0) {
		herrno = NO_DATA;
	} else if (!filter_dns_name_valid(name)) {
		herrno = HOST_NOT_FOUND;
	} else {
		filter_dns_query(message, name, question, &answer);
		switch (answer.status) {
		case FILTER_DNS_OK:
			herrno = answer.count > 0 ? NETDB_SUCCESS : NO_DATA;
			break;
		case FILTER_DNS_NOT_FOUND:
			herrno = HOST_NOT_FOUND;
			break;
		default:
			herrno = TRY_AGAIN;
			break;
		}
	}
	rr = SPF_dns_rr_new_init(layer, domain, type, 0, herrno);
	if (rr == NULL)
		abort();
	for (size_t i = 0; herrno == NETDB_SUCCESS && i < answer.count; i++)
		spf_dns_rr_add(rr, answer.records[i]);
	if (herrno == NETDB_SUCCESS && rr->num_rr == 0)
		rr->herrno = NO_DATA;
	filter_dns_answer_clear(&answer);
	return rr;
}

int spf_setup(char *err, size_t errlen)
{
	if (spf_server != NULL)
		return 0;
	/* libspf2's warnings and notes are about hostile records: the result
	 * says what matters, and nothing may reach stderr or syslog. */
	SPF_error_handler = spf_library_error;
	SPF_warning_handler = NULL;
	SPF_info_handler = NULL;
	SPF_debug_handler = NULL;
	memset(&spf_dns_layer, 0, sizeof(spf_dns_layer));
	spf_dns_layer.lookup = spf_dns_lookup;
	spf_dns_layer.name = "popgate";
	spf_server = SPF_server_new_dns(&spf_dns_layer, 0);
	if (spf_server == NULL) {
		snprintf(err, errlen, "libspf2: cannot make a server");
		return -1;
	}
	return 0;
}

/* libspf2's RESULT as ours. */
static enum auth_result spf_result(SPF_result_t result)
{
	switch (result) {
	case SPF_RESULT_PASS:
		return AUTH_PASS;
	case SPF_RESULT_FAIL:
		return AUTH_FAIL;
	case SPF_RESULT_SOFTFAIL:
		return AUTH_SOFTFAIL;
	case SPF_RESULT_NEUTRAL:
		return AUTH_NEUTRAL;
	case SPF_RESULT_TEMPERROR:
		return AUTH_TEMPERROR;
	case SPF_RESULT_PERMERROR:
		return AUTH_PERMERROR;
	default:
		return AUTH_NONE;
	}
}

/*
 * The result of RESPONSE, whose query returned RC. libspf2 1.2.10 leaves a
 * query that ended early without a result, only errors: a record lookup
 * that failed (TRY_AGAIN) is a temperror (RFC 7208 4.4), a record that does
 * not compile a permerror (4.6), no record at all none (4.5). The compiler
 * records its own error before the "not SPF" it ends with, so an error
 * other than that one means the record was there.
 */
static enum auth_result spf_response_outcome(SPF_response_t *response, SPF_errcode_t rc)
{
	if (SPF_response_result(response) != SPF_RESULT_INVALID)
		return spf_result(SPF_response_result(response));
	if (rc == SPF_E_DNS_ERROR)
		return AUTH_TEMPERROR;
	for (int i = 0; i < SPF_response_messages(response); i++) {
		SPF_error_t *error = SPF_response_message(response, i);

		if (SPF_error_errorp(error) && SPF_error_code(error) != SPF_E_NOT_SPF)
			return AUTH_PERMERROR;
	}
	return AUTH_NONE;
}

void spf_evaluate(const struct filter_message *message, struct auth_spf *spf)
{
	const struct filter_handoff *handoff = &message->handoff;
	char sender[512];
	const char *at;
	int have_sender;
	bool helo_valid;
	SPF_request_t *request;
	SPF_response_t *response = NULL;
	SPF_errcode_t rc;
	char err[AUTH_WHY_MAX];

	memset(spf, 0, sizeof(*spf));
	if (!handoff->found) {
		snprintf(spf->why, sizeof(spf->why), "no hand-off address");
		return;
	}
	snprintf(spf->address, sizeof(spf->address), "%s", handoff->address);
	have_sender = auth_envelope_sender(message, sender, sizeof(sender));
	helo_valid = handoff->helo[0] != '\0' && filter_dns_name_valid(handoff->helo);
	if (have_sender < 0) {
		snprintf(spf->why, sizeof(spf->why), "no envelope sender");
		return;
	}
	if (have_sender == 0 && !helo_valid) {
		snprintf(spf->why, sizeof(spf->why), "null sender and no HELO name");
		return;
	}
	spf->helo = have_sender == 0;
	at = strrchr(sender, '@');
	/* Both are DNS names (at most AUTH_DOMAIN_MAX): checked above. */
	snprintf(spf->domain, sizeof(spf->domain), "%.*s", AUTH_DOMAIN_MAX,
		 spf->helo ? handoff->helo : at + 1);
	if (spf_setup(err, sizeof(err)) < 0) {
		spf->result = AUTH_TEMPERROR;
		snprintf(spf->why, sizeof(spf->why), "%s", err);
		return;
	}
	request = SPF_request_new(spf_server);
	if (request == NULL)
		abort();
	rc = strchr(handoff->address, ':') != NULL
		 ? SPF_request_set_ipv6_str(request, handoff->address)
		 : SPF_request_set_ipv4_str(request, handoff->address);
	if (rc != SPF_E_SUCCESS) {
		spf->domain[0] = '\0';
		snprintf(spf->why, sizeof(spf->why), "the hand-off address is not an address");
		SPF_request_free(request);
		return;
	}
	if (helo_valid)
		SPF_request_set_helo_dom(request, handoff->helo);
	SPF_request_set_env_from(request, spf->helo ? "" : sender);
	spf_dns_layer.hook = (void *)message;
	rc = SPF_request_query_mailfrom(request, &response);
	spf_dns_layer.hook = NULL;
	spf->result = response != NULL ? spf_response_outcome(response, rc) : AUTH_TEMPERROR;
	if (response != NULL)
		SPF_response_free(response);
	SPF_request_free(request);
}

/* ---- the filter ----------------------------------------------------------- */

static int spf_filter_init(char *err, size_t errlen)
{
	return spf_setup(err, errlen);
}

static double spf_points(enum auth_result result)
{
	switch (result) {
	case AUTH_PASS:
		return SPF_POINTS_PASS;
	case AUTH_FAIL:
		return SPF_POINTS_FAIL;
	case AUTH_SOFTFAIL:
		return SPF_POINTS_SOFTFAIL;
	default:
		return 0;
	}
}

static int spf_filter_run(const struct filter_message *message, struct pipeline_result *result,
			  struct pipeline_verdict *verdict)
{
	const struct auth_spf *spf = auth_spf(message);

	(void)verdict;
	if (spf == NULL) {
		result->reason = xstrdup("spf: no authentication state");
		return -1;
	}
	result->score = spf_points(spf->result);
	if (spf->domain[0] == '\0')
		result->reason =
		    auth_reason("spf=%s (%s)", auth_result_name(spf->result), spf->why);
	else
		result->reason =
		    auth_reason("spf=%s for %s (%s %s)", auth_result_name(spf->result),
				spf->address, spf->helo ? "helo" : "envelope from", spf->domain);
	return 0;
}

const struct filter filter_spf = {
    .name = "spf",
    .init = spf_filter_init,
    .run = spf_filter_run,
};
