/*
 * test_ciss_policy.c — whether a sender is challenged (filters/ciss.c,
 * ciss/policy.c): the facts the worker finds in real messages (a corpus
 * message signed by its From domain, tests/unit/data/auth, edited header by
 * header for each G4 case, and a challenge as ciss/challenge.c composes
 * it), each G4 rule's reason, then with a temp store: when CISS applies
 * (C2), which senders are known, and the period, the open challenge, the
 * caps and the hold.
 *
 * Owns: its temp store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "ciss/challenge.h"
#include "ciss/policy.h"
#include "core/util.h"
#include "filters/auth.h"
#include "filters/ciss.h"
#include "filters/dns.h"
#include "pipeline/headers.h"
#include "store/ciss.h"
#include "store/correspondent.h"
#include "store/lifecycle.h"
#include "store/message.h"
#include "store/sender_list.h"
#include "test_support.h"

#define DATA "tests/unit/data/auth"
#define PSEUDO "pop3proxy.reddoxx"
#define NOW 1800000000
/* Where the corpus message's list server and its author's own server hand
 * mail over. */
#define LIST_SERVER "66.187.233.211"
#define AUTHOR_SERVER "192.0.2.77"
#define ELSEWHERE "203.0.113.9"

/* ---- DNS: SPF records and the DKIM keys of DATA/keys.txt ---- */

static const struct {
	const char *name;
	const char *record;
} spf_records[] = {
    {"spamassassin.taint.org", "v=spf1 ip4:66.187.233.0/24 -all"},
    {"munnari.oz.au", "v=spf1 ip4:" AUTHOR_SERVER " -all"},
    {"bounces.example.com", "v=spf1 ip4:" AUTHOR_SERVER " -all"},
};

static char *keys_text;
static struct {
	const char *name;
	const char *record;
} keys[4];
static size_t key_count;
static char *signed_text;

struct table {
	bool timeout;	    /* every question times out */
	bool no_author_key; /* munnari.oz.au's DKIM key is not published */
};

static void table_query(struct filter_dns *dns, const char *name, enum filter_dns_type type,
			int timeout_ms, struct filter_dns_answer *answer)
{
	struct table *table = dns->ctx;

	(void)timeout_ms;
	if (table->timeout) {
		answer->status = FILTER_DNS_TIMEOUT;
		return;
	}
	answer->status = FILTER_DNS_NOT_FOUND;
	if (type != FILTER_DNS_TXT)
		return;
	for (size_t i = 0; i < sizeof(spf_records) / sizeof(spf_records[0]); i++) {
		if (strcasecmp(spf_records[i].name, name) == 0) {
			answer->status = FILTER_DNS_OK;
			answer->records[answer->count++] = xstrdup(spf_records[i].record);
		}
	}
	for (size_t i = 0; i < key_count; i++) {
		if (strcasecmp(keys[i].name, name) != 0 ||
		    (table->no_author_key && strstr(name, "munnari") != NULL))
			continue;
		answer->status = FILTER_DNS_OK;
		answer->records[answer->count++] = xstrdup(keys[i].record);
	}
}

static int group_setup(void **state)
{
	size_t len;

	(void)state;
	if (util_read_file(DATA "/keys.txt", &keys_text, &len) < 0 ||
	    util_read_file(DATA "/signed.eml", &signed_text, &len) < 0)
		return -1;
	for (char *line = strtok(keys_text, "\n"); line != NULL && key_count < 4;
	     line = strtok(NULL, "\n")) {
		char *space = strchr(line, ' ');

		if (space == NULL)
			return -1;
		*space = '\0';
		keys[key_count].name = line;
		keys[key_count++].record = space + 1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(keys_text);
	free(signed_text);
	return 0;
}

/* ---- messages ---- */

/* True if the header line at LINE is a field named one of DROP. */
static bool field_dropped(const char *line, const char *const *drop)
{
	for (size_t i = 0; drop[i] != NULL; i++) {
		size_t len = strlen(drop[i]);

		if (strncasecmp(line, drop[i], len) == 0 && line[len] == ':')
			return true;
	}
	return false;
}

/* The signed corpus message with the header fields named in DROP (a NULL
 * ended list) taken out, continuation lines and all, and PREPEND put in
 * front. DKIM still passes: none of them is signed (h= from, to, cc,
 * subject, date, message-id). */
static char *edited(const char *const *drop, const char *prepend)
{
	size_t len = strlen(signed_text);
	char *out = xmalloc(strlen(prepend) + len + 1);
	size_t used = strlen(prepend);
	const char *p = signed_text;
	bool in_header = true, skipping = false;

	memcpy(out, prepend, used);
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t line_len = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);

		if (in_header && (p[0] == '\r' || p[0] == '\n'))
			in_header = false;
		if (in_header && p[0] != ' ' && p[0] != '\t')
			skipping = field_dropped(p, drop);
		if (!in_header || !skipping) {
			memcpy(out + used, p, line_len);
			used += line_len;
		}
		p += line_len;
	}
	out[used] = '\0';
	return out;
}

/* The corpus message as its author's own mail: no list fields, its own
 * Return-Path first, then EXTRA header lines. */
static char *personal(const char *return_path, const char *extra)
{
	static const char *const list_fields[] = {"Return-Path",      "Precedence",
						  "List-Id",	      "List-Help",
						  "List-Post",	      "List-Subscribe",
						  "List-Unsubscribe", "List-Archive",
						  "X-BeenThere",      "X-Mailman-Version",
						  "Sender",	      "Errors-To",
						  "X-Loop",	      NULL};
	char *prepend = return_path != NULL ? xasprintf("Return-Path: %s\r\n%s", return_path, extra)
					    : xstrdup(extra);
	char *message = edited(list_fields, prepend);

	free(prepend);
	return message;
}

/* The facts ciss_facts_collect finds in MESSAGE (taken) handed over from
 * ADDRESS (NULL: no hand-off found), into *FACTS. */
static void collect(char *message, const char *address, struct table *table,
		    struct pipeline_ciss *facts)
{
	struct filter_dns dns = {.query = table_query, .ctx = table};
	struct pipeline_job job = {.id = "0123456789abcdef01234567"};
	struct filter_auth auth = {0};
	struct filter_message m = {
	    .job = &job, .hostname = "gate.example.net", .dns = &dns, .auth = &auth};

	filter_dns_begin(&dns, 5000);
	m.body = message;
	m.body_len = strlen(message);
	m.size = m.body_len;
	m.headers = xmalloc(sizeof(*m.headers));
	headers_init(m.headers);
	headers_feed(m.headers, message, m.body_len);
	if (address != NULL) {
		m.handoff.found = true;
		snprintf(m.handoff.address, sizeof(m.handoff.address), "%s", address);
		snprintf(m.handoff.helo, sizeof(m.handoff.helo), "mail.example");
	}
	ciss_facts_collect(&m, facts);
	free(m.headers);
	free(message);
}

/* The flags of MESSAGE (taken) from ADDRESS with every key published. */
static unsigned flags_of(char *message, const char *address)
{
	struct table table = {0};
	struct pipeline_ciss facts;
	unsigned flags;

	collect(message, address, &table, &facts);
	assert_true(facts.present);
	flags = facts.flags;
	free(facts.subject);
	return flags;
}

/* ---- the facts and G4's rules on them ---- */

/* The list message as it came: signed by its author's domain, but bulk
 * list mail; its subject travels along. */
static void test_list_message(void **state)
{
	struct table table = {0};
	struct pipeline_ciss facts;

	(void)state;
	collect(xstrdup(signed_text), LIST_SERVER, &table, &facts);
	assert_true(facts.present);
	assert_int_equal(facts.flags,
			 PIPELINE_CISS_BULK | PIPELINE_CISS_LIST | PIPELINE_CISS_DKIM_ALIGNED_PASS);
	assert_string_equal(facts.subject, "Re: New Sequences Window");
	assert_string_equal(ciss_facts_screen(facts.flags),
			    "no challenge: bulk mail (Precedence bulk, list or junk)");
	free(facts.subject);
}

/* The author's own mail, authenticated either way, may be challenged. */
static void test_personal_mail_challenged(void **state)
{
	unsigned flags;

	(void)state;
	/* SPF passes for its own domain, and the DKIM signature aligns. */
	flags = flags_of(personal("<kre@munnari.OZ.AU>", ""), AUTHOR_SERVER);
	assert_int_equal(flags, PIPELINE_CISS_SPF_ALIGNED_PASS | PIPELINE_CISS_DKIM_ALIGNED_PASS);
	assert_null(ciss_facts_screen(flags));
	/* Sent from elsewhere (SPF fails) it is refused even with DKIM. */
	flags = flags_of(personal("<kre@munnari.OZ.AU>", ""), ELSEWHERE);
	assert_int_equal(flags, PIPELINE_CISS_SPF_FAIL | PIPELINE_CISS_DKIM_ALIGNED_PASS);
	assert_string_equal(ciss_facts_screen(flags),
			    "no challenge: SPF fails for the sender's domain");
	/* Auto-Submitted: no is a person's mail. */
	flags = flags_of(personal("<kre@munnari.OZ.AU>", "Auto-Submitted: no\r\n"), AUTHOR_SERVER);
	assert_null(ciss_facts_screen(flags));
}

/* Each G4 header rule, one field added to (or taken from) the same mail. */
static void test_header_rules(void **state)
{
	static const struct {
		const char *return_path;
		const char *extra;
		unsigned flag;
		const char *reason;
	} cases[] = {
	    {"<>", "", PIPELINE_CISS_NULL_SENDER, "no challenge: null sender (Return-Path <>)"},
	    {NULL, "", PIPELINE_CISS_NO_SENDER,
	     "no challenge: no usable envelope sender (Return-Path)"},
	    {"<not an address>", "", PIPELINE_CISS_NO_SENDER,
	     "no challenge: no usable envelope sender (Return-Path)"},
	    {"<kre@munnari.oz.au>", "Auto-Submitted: auto-replied\r\n",
	     PIPELINE_CISS_AUTO_SUBMITTED, "no challenge: automatic mail (Auto-Submitted)"},
	    {"<kre@munnari.oz.au>", "auto-submitted:   Auto-Generated (vacation)\r\n",
	     PIPELINE_CISS_AUTO_SUBMITTED, "no challenge: automatic mail (Auto-Submitted)"},
	    {"<kre@munnari.oz.au>", "Precedence: junk\r\n", PIPELINE_CISS_BULK,
	     "no challenge: bulk mail (Precedence bulk, list or junk)"},
	    {"<kre@munnari.oz.au>", "Precedence: LIST\r\n", PIPELINE_CISS_BULK,
	     "no challenge: bulk mail (Precedence bulk, list or junk)"},
	    {"<kre@munnari.oz.au>", "List-Id: <team.example.org>\r\n", PIPELINE_CISS_LIST,
	     "no challenge: mailing-list mail (List-Id)"},
	    {"<kre@munnari.oz.au>", "X-Popgate-Challenge: 7\r\n", PIPELINE_CISS_OUR_CHALLENGE,
	     "no challenge: the message is a challenge itself (X-Popgate-Challenge)"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned flags =
		    flags_of(personal(cases[i].return_path, cases[i].extra), AUTHOR_SERVER);

		assert_true((flags & cases[i].flag) != 0);
		assert_string_equal(ciss_facts_screen(flags), cases[i].reason);
	}
	/* Precedence first-class is no bulk mail. */
	assert_null(ciss_facts_screen(flags_of(
	    personal("<kre@munnari.oz.au>", "Precedence: first-class\r\n"), AUTHOR_SERVER)));
}

/* The authentication rules: DKIM that does not align, SPF for another
 * domain, nothing checkable. */
static void test_authentication_rules(void **state)
{
	struct table table = {.no_author_key = true};
	struct pipeline_ciss facts;
	unsigned flags;

	(void)state;
	/* Only the list's signature verifies: it does not align with From. */
	collect(personal("<kre@munnari.oz.au>", ""), ELSEWHERE, &table, &facts);
	assert_true((facts.flags & PIPELINE_CISS_DKIM_UNALIGNED_PASS) != 0);
	assert_true((facts.flags & PIPELINE_CISS_DKIM_ALIGNED_PASS) == 0);
	free(facts.subject);
	/* (SPF fails here first; from nowhere SPF says nothing.) */
	collect(personal("<kre@munnari.oz.au>", ""), NULL, &table, &facts);
	assert_int_equal(facts.flags, PIPELINE_CISS_DKIM_UNALIGNED_PASS);
	assert_string_equal(ciss_facts_screen(facts.flags),
			    "no challenge: DKIM does not align with the From domain");
	free(facts.subject);
	/* SPF passes, but for a bounce domain From does not name. */
	collect(personal("<b-123@bounces.example.com>", ""), AUTHOR_SERVER, &table, &facts);
	assert_int_equal(facts.flags, PIPELINE_CISS_DKIM_UNALIGNED_PASS);
	free(facts.subject);
	/* Every DNS question timed out: nothing is authenticated. */
	table.timeout = true;
	collect(personal("<kre@munnari.oz.au>", ""), AUTHOR_SERVER, &table, &facts);
	assert_int_equal(facts.flags, 0);
	assert_string_equal(ciss_facts_screen(facts.flags),
			    "no challenge: the From domain is not authenticated (no SPF pass "
			    "aligned with it, no aligned DKIM pass)");
	free(facts.subject);
	flags = PIPELINE_CISS_SPF_ALIGNED_PASS;
	assert_null(ciss_facts_screen(flags));
}

/* Our own challenge, as ciss/challenge.c composes it, arriving back with
 * the null Return-Path it was sent with: never challenged. */
static void test_our_challenge(void **state)
{
	struct ciss_challenge_mail mail = {
	    .from = "postmaster@" PSEUDO,
	    .to = "kre@munnari.oz.au",
	    .recipient = "ann@gmx.net",
	    .subject = "Re: New Sequences Window",
	    .link = "https://gate.example.net:1443/c/token",
	    .host = "gate.example.net",
	    .challenge_id = 42,
	    .now = NOW,
	    .expires_at = NOW + 86400,
	};
	size_t len;
	char *text = ciss_challenge_compose(&mail, &len);
	char *message;
	unsigned flags;

	(void)state;
	assert_non_null(text);
	message = xasprintf("Return-Path: <>\r\n%s", text);
	free(text);
	flags = flags_of(message, AUTHOR_SERVER);
	assert_true((flags & PIPELINE_CISS_NULL_SENDER) != 0);
	assert_true((flags & PIPELINE_CISS_OUR_CHALLENGE) != 0);
	assert_true((flags & PIPELINE_CISS_AUTO_SUBMITTED) != 0);
	assert_non_null(ciss_facts_screen(flags));
	/* Even with a Return-Path someone rewrote, the header alone says no. */
	assert_string_equal(
	    ciss_facts_screen(flags & ~(unsigned)PIPELINE_CISS_NULL_SENDER),
	    "no challenge: the message is a challenge itself (X-Popgate-Challenge)");
}

/* A subject is decoded to one line of UTF-8 (the challenge names it as
 * its author wrote it): control bytes become spaces, encoded words are
 * decoded, 8-bit bytes that are no UTF-8 are read as Latin-1 (as the
 * archive's depot_extract reads them). */
static void test_subject_cleaned(void **state)
{
	static const struct {
		const char *field;
		const char *subject;
	} cases[] = {
	    {"Subject: caf\xc3\xa9\x01 time\r\n", "caf\xc3\xa9  time"},
	    {"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus\r\n Berlin\r\n", "Gr\xc3\xbc\xc3\x9f"
								       "e aus Berlin"},
	    {"Subject: =?UTF-8?B?w5xiZXJ3ZWlzdW5n?=\r\n", "\xc3\x9c"
							  "berweisung"},
	    {"Subject: bad \xff byte\r\n", "bad \xc3\xbf byte"}, /* 8-bit as Latin-1 */
	};
	static const char *const subject_field[] = {"Subject", NULL};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct table table = {0};
		struct pipeline_ciss facts;
		char *message = edited(subject_field, cases[i].field);

		collect(message, AUTHOR_SERVER, &table, &facts);
		assert_string_equal(facts.subject, cases[i].subject);
		free(facts.subject);
	}
}

/* ---- the policy, with a store ---- */

#define ANN 1
#define BOB 2
#define ACCOUNT_ANN 10
#define JOE "joe@example.net"

static int store_setup(void **state)
{
	struct test_store *f;

	test_store_setup(state, "ciss-policy");
	f = *state;
	test_exec_sql(
	    f->store,
	    "INSERT INTO user (id, name, origin, created_at) VALUES (1, 'ann+gmx.net', 'provider', "
	    "1),"
	    " (2, 'bob', 'local', 1), (3, 'cy', 'local', 1);"
	    "INSERT INTO address (address, user_id, is_primary) VALUES"
	    " ('ann+gmx.net@" PSEUDO "', 1, 1), ('bob@other.org', 2, 1), ('cy@" PSEUDO "', 3, 1);"
	    "INSERT INTO account (id, name, login, host, user_id, password_hash,"
	    " password_secret, created_at) VALUES (10, 'ann@gmx.net@pop.gmx.net', 'ann@gmx.net',"
	    " 'pop.gmx.net', 1, 'x', x'00', 1)");
	return 0;
}

/* A judged verdict from SENDER with authenticated, personal facts. */
static struct pipeline_verdict verdict_from(const char *sender)
{
	struct pipeline_verdict verdict = {.outcome = PIPELINE_JUDGED};

	verdict.sender = (char *)sender;
	verdict.ciss.present = true;
	verdict.ciss.flags = PIPELINE_CISS_DKIM_ALIGNED_PASS;
	verdict.ciss.subject = "Lunch?";
	return verdict;
}

static const struct filter_profile challenging = {.challenge_unknown_senders = true};

static void set_domains(struct test_store *f, const char *domain)
{
	char err[256];

	assert_int_equal(store_ciss_set_domains(f->store, PSEUDO, (const char *const[]){domain},
						domain != NULL ? 1 : 0, err, sizeof(err)),
			 0);
}

/* 1 when the policy would let the verdict challenge SENDER's mail to OWNER. */
static int plan_for(struct test_store *f, int64_t owner, const char *sender,
		    const struct filter_profile *profile)
{
	struct pipeline_verdict verdict = verdict_from(sender);
	struct ciss_plan plan;
	int rc = ciss_policy_plan(f->store, PSEUDO, profile, owner, "ann@gmx.net", &verdict, &plan);

	ciss_plan_clear(&plan);
	return rc;
}

static void test_applies(void **state)
{
	struct test_store *f = *state;
	struct pipeline_verdict verdict = verdict_from("Joe@Example.NET");
	static const struct filter_profile quiet = {.challenge_unknown_senders = false};
	struct ciss_plan plan;

	/* C2: the profile, and a CISS domain among the owner's addresses. */
	assert_int_equal(plan_for(f, ANN, JOE, &challenging), 0);
	set_domains(f, PSEUDO);
	assert_int_equal(plan_for(f, ANN, JOE, &quiet), 0);
	assert_int_equal(plan_for(f, BOB, JOE, &challenging), 0);
	assert_int_equal(plan_for(f, 0, JOE, &challenging), 0);

	assert_int_equal(
	    ciss_policy_plan(f->store, PSEUDO, &challenging, ANN, "ann@gmx.net", &verdict, &plan),
	    1);
	assert_true(plan.applies);
	assert_string_equal(plan.sender, JOE);
	assert_string_equal(plan.recipient, "ann@gmx.net");
	assert_string_equal(plan.subject, "Lunch?");
	assert_null(plan.screen_reason);
	assert_int_equal(plan.period_days, CISS_DEFAULT_PERIOD_DAYS);
	ciss_plan_clear(&plan);

	/* A login that is no address: the first recipient the header names,
	 * else the owner's own address in the CISS domain. */
	char *recipients[] = {"cy@example.com"};
	verdict.recipients = recipients;
	verdict.recipient_count = 1;
	assert_int_equal(ciss_policy_plan(f->store, PSEUDO, &challenging, 3, "cy", &verdict, &plan),
			 1);
	assert_string_equal(plan.recipient, "cy@example.com");
	ciss_plan_clear(&plan);
	verdict.recipient_count = 0;
	assert_int_equal(ciss_policy_plan(f->store, PSEUDO, &challenging, 3, NULL, &verdict, &plan),
			 1);
	assert_string_equal(plan.recipient, "cy@" PSEUDO);
	ciss_plan_clear(&plan);

	/* A G4 fact, no From, no facts: applies, with the reason. */
	verdict.ciss.flags = PIPELINE_CISS_LIST | PIPELINE_CISS_DKIM_ALIGNED_PASS;
	assert_int_equal(
	    ciss_policy_plan(f->store, PSEUDO, &challenging, ANN, "ann@gmx.net", &verdict, &plan),
	    1);
	assert_string_equal(plan.screen_reason, "no challenge: mailing-list mail (List-Id)");
	ciss_plan_clear(&plan);
	verdict.sender = NULL;
	assert_int_equal(
	    ciss_policy_plan(f->store, PSEUDO, &challenging, ANN, "ann@gmx.net", &verdict, &plan),
	    1);
	assert_string_equal(plan.screen_reason,
			    "no challenge: no From address a challenge can go to");
	ciss_plan_clear(&plan);
	verdict.sender = "joe@example.net";
	verdict.ciss.present = false;
	assert_int_equal(
	    ciss_policy_plan(f->store, PSEUDO, &challenging, ANN, "ann@gmx.net", &verdict, &plan),
	    1);
	assert_non_null(plan.screen_reason);
	ciss_plan_clear(&plan);

	/* A domain that stopped being local (the pseudo-domain changed). */
	verdict.ciss.present = true;
	assert_int_equal(ciss_policy_plan(f->store, "other.pseudo", &challenging, ANN,
					  "ann@gmx.net", &verdict, &plan),
			 0);
	ciss_plan_clear(&plan);
}

static void test_known_senders(void **state)
{
	struct test_store *f = *state;
	char err[256];

	set_domains(f, PSEUDO);
	assert_int_equal(plan_for(f, ANN, "amy@example.org", &challenging), 1);
	/* Allow-listed by the owner, or globally. */
	assert_int_equal(store_sender_list_add(f->store, "ann+gmx.net", SENDER_LIST_ALLOW,
					       "amy@example.org", err, sizeof(err)),
			 0);
	assert_int_equal(plan_for(f, ANN, "amy@example.org", &challenging), 0);
	assert_int_equal(store_sender_list_add(f->store, NULL, SENDER_LIST_ALLOW,
					       "*.partner.example", err, sizeof(err)),
			 0);
	assert_int_equal(plan_for(f, ANN, "x@mail.partner.example", &challenging), 0);
	/* A correspondent. */
	assert_int_equal(plan_for(f, ANN, "cor@example.org", &challenging), 1);
	assert_int_equal(store_correspondent_add(f->store, ANN, "Cor@Example.org", NOW), 0);
	assert_int_equal(plan_for(f, ANN, "cor@example.org", &challenging), 0);
	/* Trusted by the owner (not by another user). */
	assert_int_equal(
	    store_ciss_trust(f->store, BOB, JOE, CISS_TRUST_ADMIN, NOW, err, sizeof(err)), 0);
	assert_int_equal(plan_for(f, ANN, JOE, &challenging), 1);
	assert_int_equal(
	    store_ciss_trust(f->store, ANN, JOE, CISS_TRUST_ANSWER, NOW, err, sizeof(err)), 0);
	assert_int_equal(plan_for(f, ANN, JOE, &challenging), 0);
	/* One of our users. */
	assert_int_equal(plan_for(f, ANN, "bob@other.org", &challenging), 0);
}

/* A message in processing, as the router finds it. */
static void message_in(struct test_store *f, const char *id)
{
	assert_int_equal(store_message_insert(f->store, id, ACCOUNT_ANN, NULL, 1, NULL), 0);
}

/* Decides and, for a challenge or a join, holds ID as the router's writer
 * job does; the decision into *DECISION. */
static void decide_and_hold(struct test_store *f, const struct ciss_plan *plan, const char *id,
			    int64_t now, struct ciss_decision *decision)
{
	assert_int_equal(store_begin(f->store), 0);
	assert_int_equal(ciss_policy_decide(f->store, plan, now, decision), 0);
	if (decision->outcome != CISS_OUTCOME_QUARANTINE) {
		assert_int_equal(store_lifecycle_move(f->store, id, MESSAGE_PROCESSING,
						      MESSAGE_CHALLENGED, NULL),
				 1);
		assert_int_equal(ciss_policy_hold(f->store, id, plan, now, decision), 0);
	}
	assert_int_equal(store_commit(f->store), 0);
}

static struct ciss_plan plan_of(const char *sender, int64_t owner)
{
	struct ciss_plan plan = {.applies = true,
				 .owner_id = owner,
				 .period_days = 7,
				 .cap_hour = 100,
				 .cap_user_hour = 100,
				 .link_days = 2};

	snprintf(plan.sender, sizeof(plan.sender), "%s", sender);
	snprintf(plan.recipient, sizeof(plan.recipient), "ann@gmx.net");
	return plan;
}

static void test_challenge_join_period(void **state)
{
	struct test_store *f = *state;
	struct ciss_plan plan = plan_of(JOE, ANN);
	struct ciss_decision first, second, late, screened;
	struct ciss_challenge challenge;
	size_t released;

	message_in(f, "000000000000000000000001");
	message_in(f, "000000000000000000000002");
	message_in(f, "000000000000000000000003");
	decide_and_hold(f, &plan, "000000000000000000000001", NOW, &first);
	assert_int_equal(first.outcome, CISS_OUTCOME_CHALLENGE);
	assert_true(first.challenge_id > 0);
	assert_string_equal(first.reason, "challenged: a challenge goes to " JOE);
	assert_int_equal(store_ciss_challenge_get(f->store, first.challenge_id, &challenge), 1);
	assert_string_equal(challenge.sender, JOE);
	assert_string_equal(challenge.recipient, "ann@gmx.net");
	assert_string_equal(challenge.message_id, "000000000000000000000001");
	assert_int_equal(challenge.expires_at, NOW + 2 * 86400);
	ciss_challenge_clear(&challenge);

	/* A second message while the challenge is open joins it. */
	decide_and_hold(f, &plan, "000000000000000000000002", NOW + 60, &second);
	assert_int_equal(second.outcome, CISS_OUTCOME_JOINED);
	assert_int_equal(second.challenge_id, first.challenge_id);
	assert_int_equal(store_ciss_challenge_count_since(f->store, 0, 0), 1);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM ciss_held"), 2);

	/* Its link expired, within the period: no second challenge. */
	decide_and_hold(f, &plan, "000000000000000000000003", NOW + 3 * 86400, &late);
	assert_int_equal(late.outcome, CISS_OUTCOME_QUARANTINE);
	assert_string_equal(late.reason,
			    "no challenge: " JOE " was challenged within the last 7 days");
	/* After the period, a new one. */
	ciss_decision_clear(&late);
	assert_int_equal(store_begin(f->store), 0);
	assert_int_equal(ciss_policy_decide(f->store, &plan, NOW + 8 * 86400, &late), 0);
	store_rollback(f->store);
	assert_int_equal(late.outcome, CISS_OUTCOME_CHALLENGE);

	/* A screened plan goes to the quarantine with its reason. */
	plan.screen_reason = "no challenge: null sender (Return-Path <>)";
	assert_int_equal(ciss_policy_decide(f->store, &plan, NOW, &screened), 0);
	assert_int_equal(screened.outcome, CISS_OUTCOME_QUARANTINE);
	assert_string_equal(screened.reason, plan.screen_reason);

	/* The answer releases both held messages. */
	char nonce[CISS_NONCE_LEN + 1];
	assert_int_equal(store_ciss_challenge_get(f->store, first.challenge_id, &challenge), 1);
	memcpy(nonce, challenge.nonce, sizeof(nonce));
	ciss_challenge_clear(&challenge);
	assert_int_equal(
	    store_ciss_challenge_answer(f->store, first.challenge_id, nonce, NOW + 120, &released),
	    CISS_ANSWER_DONE);
	assert_int_equal(released, 2);
	ciss_decision_clear(&first);
	ciss_decision_clear(&second);
	ciss_decision_clear(&late);
	ciss_decision_clear(&screened);
}

static void test_caps(void **state)
{
	struct test_store *f = *state;
	struct ciss_decision decision;
	char id[SPOOL_ID_LEN + 1], sender[64];
	int n = 0;

	/* Per user: two an hour for ann; a third sender is quarantined. */
	for (; n < 3; n++) {
		struct ciss_plan plan;

		snprintf(sender, sizeof(sender), "s%d@example.org", n);
		plan = plan_of(sender, ANN);
		plan.cap_user_hour = 2;
		snprintf(id, sizeof(id), "%024d", n + 1);
		message_in(f, id);
		decide_and_hold(f, &plan, id, NOW + n, &decision);
		assert_int_equal(decision.outcome,
				 n < 2 ? CISS_OUTCOME_CHALLENGE : CISS_OUTCOME_QUARANTINE);
		if (n == 2)
			assert_string_equal(decision.reason,
					    "no challenge: the cap of 2 challenges "
					    "per hour for this user is reached");
		ciss_decision_clear(&decision);
	}
	/* Globally: three an hour; cy's first is the fourth challenge... */
	struct ciss_plan plan = plan_of("t@example.org", 3);
	plan.cap_hour = 3;
	snprintf(id, sizeof(id), "%024d", 10);
	message_in(f, id);
	decide_and_hold(f, &plan, id, NOW + 10, &decision);
	assert_int_equal(decision.outcome, CISS_OUTCOME_CHALLENGE);
	ciss_decision_clear(&decision);
	snprintf(plan.sender, sizeof(plan.sender), "u@example.org");
	assert_int_equal(ciss_policy_decide(f->store, &plan, NOW + 11, &decision), 0);
	assert_int_equal(decision.outcome, CISS_OUTCOME_QUARANTINE);
	assert_string_equal(decision.reason,
			    "no challenge: the cap of 3 challenges per hour is reached");
	ciss_decision_clear(&decision);
	/* ...and an hour later there is room again. */
	assert_int_equal(ciss_policy_decide(f->store, &plan, NOW + 3600 + 11, &decision), 0);
	assert_int_equal(decision.outcome, CISS_OUTCOME_CHALLENGE);
	ciss_decision_clear(&decision);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_list_message),
	    cmocka_unit_test(test_personal_mail_challenged),
	    cmocka_unit_test(test_header_rules),
	    cmocka_unit_test(test_authentication_rules),
	    cmocka_unit_test(test_our_challenge),
	    cmocka_unit_test(test_subject_cleaned),
	    cmocka_unit_test_setup_teardown(test_applies, store_setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_known_senders, store_setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_challenge_join_period, store_setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_caps, store_setup, test_store_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
