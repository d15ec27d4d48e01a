/*
 * test_ciss_store.c — the store's part of challenge-response (store/ciss.h):
 * Local Domains with the pseudo-domain built in, the CISS settings and their
 * defaults, trusted senders, challenges and their single-use answer that
 * releases every held message of that user from that sender.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/util.h"
#include "store/ciss.h"
#include "store/db.h"
#include "store/lifecycle.h"
#include "store/message.h"

#include "test_support.h"

#define PSEUDO "pop3proxy.reddoxx"
#define HELD_1 "0123456789abcdef01234561"
#define HELD_2 "0123456789abcdef01234562"
#define HELD_OTHER "0123456789abcdef01234563"
#define HELD_USER2 "0123456789abcdef01234564"
#define NOW 1700000000

static int setup(void **state)
{
	struct test_store *f;

	test_store_setup(state, "ciss");
	f = *state;
	test_exec_sql(
	    f->store,
	    "INSERT INTO user (id, name, origin, created_at) VALUES (1, 'ann', 'local', 1),"
	    " (2, 'bob', 'local', 1);"
	    "INSERT INTO account (id, name, login, host, user_id, password_hash,"
	    " password_secret, created_at) VALUES (10, 'a@h', 'a', 'h', 1, 'x', x'00', 1),"
	    " (20, 'b@h', 'b', 'h', 2, 'x', x'00', 1)");
	return 0;
}

/* A message of ACCOUNT_ID moved to challenged and held for USER_ID until
 * SENDER answers, as the router does it. */
static void hold(struct test_store *f, const char *id, int64_t account_id, int64_t user_id,
		 const char *sender)
{
	assert_int_equal(store_message_insert(f->store, id, account_id, NULL, 1, NULL), 0);
	assert_int_equal(store_begin(f->store), 0);
	assert_int_equal(
	    store_lifecycle_move(f->store, id, MESSAGE_PROCESSING, MESSAGE_CHALLENGED, NULL), 1);
	assert_int_equal(store_ciss_hold(f->store, id, user_id, sender, NOW), 0);
	assert_int_equal(store_commit(f->store), 0);
}

static enum message_state state_of(struct test_store *f, const char *id)
{
	struct store_message message = {0};
	enum message_state state;

	assert_int_equal(store_message_get(f->store, id, &message), 1);
	state = message.state;
	store_message_clear(&message);
	return state;
}

static void test_local_domains(void **state)
{
	struct test_store *f = *state;
	struct store_local_domain *list;
	size_t count;
	char err[256];

	assert_int_equal(store_local_domain_is_local(f->store, PSEUDO, PSEUDO), 1);
	assert_int_equal(store_local_domain_is_local(f->store, PSEUDO, "POP3PROXY.Reddoxx"), 1);
	assert_int_equal(store_local_domain_is_local(f->store, PSEUDO, "example.com"), 0);

	assert_int_equal(store_local_domain_add(f->store, PSEUDO, "Example.COM", err, sizeof(err)),
			 0);
	assert_int_equal(store_local_domain_is_local(f->store, PSEUDO, "example.com"), 1);
	assert_int_equal(store_local_domain_is_local(f->store, PSEUDO, "EXAMPLE.com"), 1);
	assert_int_equal(store_local_domain_add(f->store, PSEUDO, "example.com", err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "already"));
	assert_int_equal(store_local_domain_add(f->store, PSEUDO, PSEUDO, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "by itself"));
	assert_int_equal(store_local_domain_add(f->store, PSEUDO, "bad..domain", err, sizeof(err)),
			 -1);
	assert_int_equal(store_local_domain_add(f->store, PSEUDO, "a b", err, sizeof(err)), -1);
	assert_int_equal(store_local_domain_add(f->store, PSEUDO, "", err, sizeof(err)), -1);
	assert_int_equal(store_local_domain_add(f->store, PSEUDO, "b.org", err, sizeof(err)), 0);

	assert_int_equal(store_local_domain_list(f->store, PSEUDO, &list, &count, err, sizeof(err)),
			 0);
	assert_int_equal(count, 3);
	assert_string_equal(list[0].domain, PSEUDO);
	assert_true(list[0].builtin);
	assert_string_equal(list[1].domain, "b.org");
	assert_false(list[1].builtin);
	assert_string_equal(list[2].domain, "example.com");
	store_local_domain_list_free(&list, count);
	assert_null(list);

	assert_int_equal(store_local_domain_del(f->store, PSEUDO, PSEUDO, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot be deleted"));
	assert_int_equal(store_local_domain_del(f->store, PSEUDO, "nowhere.net", err, sizeof(err)),
			 -1);
	assert_int_equal(store_local_domain_del(f->store, PSEUDO, "B.ORG", err, sizeof(err)), 0);
	assert_int_equal(store_local_domain_is_local(f->store, PSEUDO, "b.org"), 0);
}

static void test_settings(void **state)
{
	struct test_store *f = *state;
	struct ciss_settings settings;
	char err[256];

	assert_int_equal(store_ciss_settings_get(f->store, &settings), 0);
	assert_int_equal(settings.domain_count, 0);
	assert_int_equal(settings.period_days, CISS_DEFAULT_PERIOD_DAYS);
	assert_int_equal(settings.cap_hour, CISS_DEFAULT_CAP_HOUR);
	assert_int_equal(settings.cap_user_hour, CISS_DEFAULT_CAP_USER_HOUR);
	assert_int_equal(settings.hold_days, CISS_DEFAULT_HOLD_DAYS);
	assert_int_equal(settings.hold_expiry, CISS_HOLD_EXPIRY_QUARANTINE);
	assert_int_equal(settings.link_days, CISS_DEFAULT_LINK_DAYS);
	ciss_settings_clear(&settings);

	assert_int_equal(ciss_setting_parse("cap-user-hour"), CISS_SETTING_CAP_USER_HOUR);
	assert_int_equal(ciss_setting_parse("cap"), -1);
	assert_int_equal(ciss_hold_expiry_parse("delete"), CISS_HOLD_EXPIRY_DELETE);
	assert_int_equal(ciss_hold_expiry_parse("keep"), -1);

	assert_int_equal(store_ciss_set_number(f->store, CISS_SETTING_PERIOD, 3, err, sizeof(err)),
			 0);
	assert_int_equal(
	    store_ciss_set_number(f->store, CISS_SETTING_CAP_HOUR, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cap-hour"));
	assert_int_equal(store_ciss_set_number(f->store, CISS_SETTING_HOLD_DAYS,
					       CISS_SETTING_MAX + 1L, err, sizeof(err)),
			 -1);
	assert_int_equal(
	    store_ciss_set_number(f->store, CISS_SETTING_CAP_USER_HOUR, 5, err, sizeof(err)), 0);
	assert_int_equal(
	    store_ciss_set_hold_expiry(f->store, CISS_HOLD_EXPIRY_DELETE, err, sizeof(err)), 0);

	/* Only Local Domains, each once; the pseudo-domain is one. */
	assert_int_equal(store_local_domain_add(f->store, PSEUDO, "example.com", err, sizeof(err)),
			 0);
	assert_int_equal(store_ciss_set_domains(f->store, PSEUDO,
						(const char *const[]){"other.org"}, 1, err,
						sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "not a Local Domain"));
	assert_int_equal(store_ciss_set_domains(f->store, PSEUDO,
						(const char *const[]){PSEUDO, "POP3PROXY.REDDOXX"},
						2, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "twice"));
	assert_int_equal(store_ciss_set_domains(f->store, PSEUDO,
						(const char *const[]){PSEUDO, "Example.com"}, 2,
						err, sizeof(err)),
			 0);

	assert_int_equal(store_ciss_settings_get(f->store, &settings), 0);
	assert_int_equal(settings.domain_count, 2);
	assert_string_equal(settings.domains[0], PSEUDO);
	assert_string_equal(settings.domains[1], "example.com");
	assert_true(ciss_settings_has_domain(&settings, "EXAMPLE.COM"));
	assert_false(ciss_settings_has_domain(&settings, "other.org"));
	assert_int_equal(settings.period_days, 3);
	assert_int_equal(settings.cap_user_hour, 5);
	assert_int_equal(settings.hold_expiry, CISS_HOLD_EXPIRY_DELETE);
	ciss_settings_clear(&settings);

	/* A domain CISS applies to is not deleted under it. */
	assert_int_equal(store_local_domain_del(f->store, PSEUDO, "example.com", err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "ciss set domains"));
	assert_int_equal(store_ciss_set_domains(f->store, PSEUDO, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(store_local_domain_del(f->store, PSEUDO, "example.com", err, sizeof(err)),
			 0);

	/* A value written by hand that does not parse falls back to its default. */
	test_exec_sql(f->store, "UPDATE setting SET value = 'x' WHERE key = 'ciss_period_days';"
				"UPDATE setting SET value = 'x' WHERE key = 'ciss_hold_expiry'");
	assert_int_equal(store_ciss_settings_get(f->store, &settings), 0);
	assert_int_equal(settings.period_days, CISS_DEFAULT_PERIOD_DAYS);
	assert_int_equal(settings.hold_expiry, CISS_HOLD_EXPIRY_QUARANTINE);
	assert_int_equal(settings.domain_count, 0);
	ciss_settings_clear(&settings);
}

static void test_trust(void **state)
{
	struct test_store *f = *state;
	struct ciss_trusted *list;
	size_t count;
	char err[256];

	assert_int_equal(store_ciss_is_trusted(f->store, 1, "joe@example.net"), 0);
	assert_int_equal(store_ciss_trust(f->store, 1, "Joe@Example.NET", CISS_TRUST_ADMIN, NOW,
					  err, sizeof(err)),
			 0);
	assert_int_equal(store_ciss_is_trusted(f->store, 1, "joe@example.net"), 1);
	assert_int_equal(store_ciss_is_trusted(f->store, 2, "joe@example.net"), 0);
	assert_int_equal(store_ciss_trust(f->store, 1, "not an address", CISS_TRUST_ADMIN, NOW, err,
					  sizeof(err)),
			 -1);
	assert_int_equal(store_ciss_trust(f->store, 2, "amy@example.org", CISS_TRUST_ANSWER, NOW,
					  err, sizeof(err)),
			 0);

	assert_int_equal(store_ciss_trusted_list(f->store, 0, &list, &count), 0);
	assert_int_equal(count, 2);
	assert_string_equal(list[0].user_name, "ann");
	assert_string_equal(list[0].address, "joe@example.net");
	assert_int_equal(list[0].via, CISS_TRUST_ADMIN);
	assert_string_equal(list[1].user_name, "bob");
	assert_int_equal(list[1].via, CISS_TRUST_ANSWER);
	store_ciss_trusted_list_free(&list, count);
	assert_int_equal(store_ciss_trusted_list(f->store, 2, &list, &count), 0);
	assert_int_equal(count, 1);
	assert_string_equal(list[0].address, "amy@example.org");
	store_ciss_trusted_list_free(&list, count);

	assert_int_equal(store_ciss_untrust(f->store, 1, "JOE@example.net"), 1);
	assert_int_equal(store_ciss_untrust(f->store, 1, "joe@example.net"), 0);
	assert_int_equal(store_ciss_is_trusted(f->store, 1, "joe@example.net"), 0);
}

static void test_challenge_counts(void **state)
{
	struct test_store *f = *state;
	struct ciss_challenge challenge;
	char nonce[CISS_NONCE_LEN + 1], other_nonce[CISS_NONCE_LEN + 1];
	int64_t id, other;

	hold(f, HELD_1, 10, 1, "joe@example.net");
	assert_int_equal(store_ciss_challenge_add(f->store, 1, "Joe@Example.net", "ann@example.com",
						  "Hello\r\nBcc: x", HELD_1, NOW - 7200, NOW + 3600,
						  &id, nonce),
			 0);
	assert_int_equal(strlen(nonce), CISS_NONCE_LEN);
	assert_int_equal(store_ciss_challenge_add(f->store, 1, "amy@example.org", "ann@example.com",
						  "", HELD_1, NOW, NOW + 3600, &other, other_nonce),
			 0);
	assert_true(other > id);
	assert_string_not_equal(nonce, other_nonce);
	/* Hostile input is refused before it is stored. */
	assert_int_equal(store_ciss_challenge_add(f->store, 1, "<>", "ann@example.com", "", HELD_1,
						  NOW, NOW + 3600, &other, other_nonce),
			 -1);
	assert_int_equal(store_ciss_challenge_add(f->store, 1, "a@b.c", "ann@example.com", "",
						  "../etc", NOW, NOW + 3600, &other, other_nonce),
			 -1);

	assert_int_equal(store_ciss_challenge_get(f->store, id, &challenge), 1);
	assert_int_equal(challenge.user_id, 1);
	assert_string_equal(challenge.sender, "joe@example.net");
	assert_string_equal(challenge.recipient, "ann@example.com");
	assert_string_equal(challenge.subject, "Hello??Bcc: x");
	assert_string_equal(challenge.message_id, HELD_1);
	assert_string_equal(challenge.nonce, nonce);
	assert_int_equal(challenge.created_at, NOW - 7200);
	assert_int_equal(challenge.expires_at, NOW + 3600);
	assert_int_equal(challenge.answered_at, 0);
	ciss_challenge_clear(&challenge);
	assert_int_equal(store_ciss_challenge_get(f->store, id + 100, &challenge), 0);

	assert_int_equal(
	    store_ciss_challenge_count_sender(f->store, 1, "JOE@example.net", NOW - 86400), 1);
	assert_int_equal(
	    store_ciss_challenge_count_sender(f->store, 1, "joe@example.net", NOW - 3600), 0);
	assert_int_equal(store_ciss_challenge_count_sender(f->store, 2, "joe@example.net", 0), 0);
	assert_int_equal(store_ciss_challenge_count_since(f->store, 0, NOW - 3600), 1);
	assert_int_equal(store_ciss_challenge_count_since(f->store, 0, NOW - 86400), 2);
	assert_int_equal(store_ciss_challenge_count_since(f->store, 1, NOW - 86400), 2);
	assert_int_equal(store_ciss_challenge_count_since(f->store, 2, NOW - 86400), 0);

	/* The message going away leaves the challenge, still counted. */
	test_exec_sql(f->store, "DELETE FROM message WHERE id = '" HELD_1 "'");
	assert_int_equal(store_ciss_challenge_get(f->store, id, &challenge), 1);
	assert_string_equal(challenge.message_id, "");
	ciss_challenge_clear(&challenge);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM ciss_held"), 0);
	assert_int_equal(store_ciss_challenge_count_since(f->store, 0, NOW - 86400), 2);
}

static void test_answer_releases_all(void **state)
{
	struct test_store *f = *state;
	char nonce[CISS_NONCE_LEN + 1], wrong[CISS_NONCE_LEN + 1];
	size_t released = 99;
	int64_t id;

	hold(f, HELD_1, 10, 1, "joe@example.net");
	hold(f, HELD_2, 10, 1, "JOE@example.net");
	hold(f, HELD_OTHER, 10, 1, "amy@example.org");
	hold(f, HELD_USER2, 20, 2, "joe@example.net");
	assert_int_equal(store_ciss_challenge_add(f->store, 1, "joe@example.net", "ann@example.com",
						  "hi", HELD_1, NOW, NOW + 3600, &id, nonce),
			 0);

	/* A wrong nonce, a cut one, an unknown id: nothing happens. */
	snprintf(wrong, sizeof(wrong), "%s", nonce);
	wrong[0] = wrong[0] == '0' ? '1' : '0';
	assert_int_equal(store_ciss_challenge_answer(f->store, id, wrong, NOW, &released),
			 CISS_ANSWER_UNKNOWN);
	assert_int_equal(released, 0);
	assert_int_equal(store_ciss_challenge_answer(f->store, id, "", NOW, &released),
			 CISS_ANSWER_UNKNOWN);
	assert_int_equal(store_ciss_challenge_answer(f->store, id + 1, nonce, NOW, &released),
			 CISS_ANSWER_UNKNOWN);
	assert_int_equal(store_ciss_is_trusted(f->store, 1, "joe@example.net"), 0);
	assert_int_equal(state_of(f, HELD_1), MESSAGE_CHALLENGED);

	assert_int_equal(store_ciss_challenge_answer(f->store, id, nonce, NOW + 10, &released),
			 CISS_ANSWER_DONE);
	assert_int_equal(released, 2);
	assert_int_equal(state_of(f, HELD_1), MESSAGE_DELIVERY);
	assert_int_equal(state_of(f, HELD_2), MESSAGE_DELIVERY);
	assert_int_equal(state_of(f, HELD_OTHER), MESSAGE_CHALLENGED);
	assert_int_equal(state_of(f, HELD_USER2), MESSAGE_CHALLENGED);
	assert_int_equal(store_ciss_is_trusted(f->store, 1, "joe@example.net"), 1);
	assert_int_equal(store_ciss_is_trusted(f->store, 2, "joe@example.net"), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM ciss_held"), 2);
	assert_int_equal(test_query_int(f->store, "SELECT answered_at FROM ciss_challenge"),
			 NOW + 10);

	/* The administrator's trust releases a sender's held mail the same way. */
	assert_int_equal(store_ciss_release_sender(f->store, 1, "AMY@example.org"), 1);
	assert_int_equal(state_of(f, HELD_OTHER), MESSAGE_DELIVERY);
	assert_int_equal(store_ciss_release_sender(f->store, 1, "amy@example.org"), 0);
	assert_int_equal(state_of(f, HELD_USER2), MESSAGE_CHALLENGED);

	/* Single use. */
	assert_int_equal(store_ciss_challenge_answer(f->store, id, nonce, NOW + 20, &released),
			 CISS_ANSWER_ANSWERED);
	assert_int_equal(released, 0);
}

static void test_answer_expired(void **state)
{
	struct test_store *f = *state;
	char nonce[CISS_NONCE_LEN + 1];
	size_t released;
	int64_t id;

	hold(f, HELD_1, 10, 1, "joe@example.net");
	assert_int_equal(store_ciss_challenge_add(f->store, 1, "joe@example.net", "ann@example.com",
						  "hi", HELD_1, NOW, NOW + 3600, &id, nonce),
			 0);
	assert_int_equal(store_ciss_challenge_answer(f->store, id, nonce, NOW + 3600, &released),
			 CISS_ANSWER_EXPIRED);
	assert_int_equal(released, 0);
	assert_int_equal(state_of(f, HELD_1), MESSAGE_CHALLENGED);
	assert_int_equal(store_ciss_is_trusted(f->store, 1, "joe@example.net"), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM ciss_challenge"
						  " WHERE answered_at IS NOT NULL"),
			 0);
}

/* A held message no longer challenged (released by hand) is left alone,
 * and the answer inside a caller's transaction commits with it. */
static void test_answer_inside_transaction(void **state)
{
	struct test_store *f = *state;
	char nonce[CISS_NONCE_LEN + 1];
	size_t released;
	int64_t id;

	hold(f, HELD_1, 10, 1, "joe@example.net");
	hold(f, HELD_2, 10, 1, "joe@example.net");
	assert_int_equal(
	    store_message_move(f->store, HELD_2, MESSAGE_CHALLENGED, MESSAGE_DELIVERY, NULL), 1);
	assert_int_equal(store_ciss_challenge_add(f->store, 1, "joe@example.net", "ann@example.com",
						  "hi", HELD_1, NOW, NOW + 3600, &id, nonce),
			 0);
	assert_int_equal(store_begin(f->store), 0);
	assert_int_equal(store_ciss_challenge_answer(f->store, id, nonce, NOW, &released),
			 CISS_ANSWER_DONE);
	assert_int_equal(store_commit(f->store), 0);
	assert_int_equal(released, 1);
	assert_int_equal(state_of(f, HELD_1), MESSAGE_DELIVERY);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM ciss_held"), 0);
}

/* Held messages whose time is up go to the quarantine, with the reason in
 * their verdict, or away; the younger ones stay held; the listing shows
 * what is held. */
static void test_held_expire(void **state)
{
	struct test_store *f = *state;
	char(*ids)[SPOOL_ID_LEN + 1] = NULL;
	struct ciss_held *list;
	size_t count;

	hold(f, HELD_1, 10, 1, "joe@example.net");
	hold(f, HELD_2, 10, 1, "amy@example.org");
	hold(f, HELD_USER2, 20, 2, "joe@example.net");
	test_exec_sql(f->store, "UPDATE message SET state_changed_at = 100 WHERE id IN ('" HELD_1
				"', '" HELD_USER2 "')");
	assert_int_equal(store_ciss_held_list(f->store, 0, &list, &count), 0);
	assert_int_equal(count, 3);
	store_ciss_held_list_free(&list, count);
	assert_int_equal(store_ciss_held_list(f->store, 2, &list, &count), 0);
	assert_int_equal(count, 1);
	assert_string_equal(list[0].message_id, HELD_USER2);
	assert_string_equal(list[0].user_name, "bob");
	assert_string_equal(list[0].sender, "joe@example.net");
	store_ciss_held_list_free(&list, count);

	/* HELD_USER2 away (with its body to remove), as the setting says. */
	test_exec_sql(f->store,
		      "UPDATE message SET state_changed_at = 200 WHERE id = '" HELD_1 "'");
	assert_int_equal(
	    store_ciss_held_expire(f->store, 150, CISS_HOLD_EXPIRY_DELETE, 14, &ids, &count), 1);
	assert_int_equal(count, 1);
	assert_string_equal(ids[0], HELD_USER2);
	free(ids);
	assert_int_equal(
	    test_query_int(f->store, "SELECT count(*) FROM message WHERE id = '" HELD_USER2 "'"),
	    0);
	/* HELD_1 to the quarantine; HELD_2 (held now) stays. */
	assert_int_equal(
	    store_ciss_held_expire(f->store, 300, CISS_HOLD_EXPIRY_QUARANTINE, 14, &ids, &count),
	    1);
	assert_int_equal(count, 0);
	assert_null(ids);
	assert_int_equal(state_of(f, HELD_1), MESSAGE_QUARANTINE);
	assert_int_equal(state_of(f, HELD_2), MESSAGE_CHALLENGED);
	assert_int_equal(
	    test_query_int(f->store,
			   "SELECT count(*) FROM message WHERE id = '" HELD_1
			   "' AND verdict_action = 'quarantine' AND verdict_reasons LIKE"
			   " '%no answer to the challenge within 14 days: to the quarantine%'"),
	    1);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM ciss_held"), 1);
	assert_int_equal(store_ciss_held_list(f->store, 0, &list, &count), 0);
	assert_int_equal(count, 1);
	store_ciss_held_list_free(&list, count);
}

/* Deleting a user takes its trusted senders and challenges with it. */
static void test_user_gone(void **state)
{
	struct test_store *f = *state;
	char nonce[CISS_NONCE_LEN + 1], err[256];
	int64_t id;

	hold(f, HELD_1, 10, 1, "joe@example.net");
	assert_int_equal(store_ciss_trust(f->store, 2, "joe@example.net", CISS_TRUST_ADMIN, NOW,
					  err, sizeof(err)),
			 0);
	assert_int_equal(store_ciss_challenge_add(f->store, 2, "joe@example.net", "bob@example.com",
						  "hi", HELD_1, NOW, NOW + 3600, &id, nonce),
			 0);
	test_exec_sql(f->store,
		      "DELETE FROM account WHERE user_id = 2; DELETE FROM user WHERE id = 2");
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM ciss_trusted"), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM ciss_challenge"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_local_domains, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_settings, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_trust, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_challenge_counts, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_answer_releases_all, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_answer_expired, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_answer_inside_transaction, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_held_expire, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_user_gone, setup, test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
