/*
 * test_outbound.c — delivery results per recipient (a final recipient is
 * never changed again), correspondents learnt from a delivery, the end of a
 * message's relay (sent, bounced) and the DSN it queues (once, never to <>,
 * with the original's header and not its body), and the queue commands'
 * retry and bounce.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/util.h"
#include "store/correspondent.h"
#include "store/envelope.h"
#include "store/outbound.h"
#include "store/spool.h"

#include "test_support.h"

#define M1 "111111111111111111111111"
#define M2 "222222222222222222222222"
#define MTA "gate.example"

static const char body[] = "From: a@example.com\r\nTo: b@example.net\r\nSubject: hello\r\n"
			   "\r\nthe secret body\r\n";

/* Outbound message ID from SENDER to the COUNT RECIPIENTS, owned by user 1,
 * with its body in the spool. */
static void outbound_message(struct test_store *f, const char *id, const char *sender,
			     const char *const *recipients, size_t count)
{
	char *path = spool_path(f->dir, id);
	char *dir = xstrdup(path);
	char *sql;

	*strrchr(dir, '/') = '\0';
	assert_int_equal(spool_init(f->dir), 0);
	assert_int_equal(util_mkdir_p(dir, 0750), 0);
	test_write_file(path, body);
	sql = xasprintf("INSERT INTO message (id, account_id, state, source, body_size,"
			" received_at, state_changed_at, owner_user_id) VALUES"
			" ('%s', NULL, 'outbound', 'submitted', %zu, 1, 1, 1)",
			id, strlen(body));
	test_exec_sql(f->store, sql);
	assert_int_equal(store_envelope_add(f->store, id, sender, recipients, count), 0);
	free(sql);
	free(dir);
	free(path);
}

static int setup(void **state)
{
	struct test_store *f;

	test_store_setup(state, "outbound");
	f = *state;
	test_exec_sql(f->store, "INSERT INTO user (id, name, origin, created_at)"
				" VALUES (1, 'alice', 'local', 1)");
	return 0;
}

static const char *state_of(struct test_store *f, const char *id, char *out)
{
	char *sql = xasprintf("SELECT state FROM message WHERE id = '%s'", id);

	test_query_text(f->store, sql, out, 32);
	free(sql);
	return out;
}

static void test_all_sent(void **state)
{
	struct test_store *f = *state;
	static const char *const to[] = {"b@example.net", "C@Example.org"};
	struct outbound_attempt first[] = {
	    {.address = "b@example.net", .status = ENVELOPE_SENT, .reply = "250 2.0.0 ok"},
	    {.address = "C@Example.org",
	     .status = ENVELOPE_PENDING,
	     .next_attempt_at = 500,
	     .reply = "451 4.3.0 later"},
	};
	struct outbound_attempt second[] = {
	    {.address = "C@Example.org", .status = ENVELOPE_SENT, .reply = "250 ok"},
	};
	char dsn[SPOOL_ID_LEN + 1], st[32];

	outbound_message(f, M1, "a@example.com", to, 2);
	assert_int_equal(store_outbound_record(f->store, M1, first, 2, 100), 0);
	assert_int_equal(store_outbound_finish(f->store, M1, MTA, 100, dsn), 0);
	assert_string_equal(state_of(f, M1, st), "outbound");
	assert_int_equal(test_query_int(f->store, "SELECT next_attempt_at FROM envelope_recipient"
						  " WHERE address = 'C@Example.org'"),
			 500);
	assert_int_equal(test_query_int(f->store, "SELECT last_attempt_at FROM envelope_recipient"
						  " WHERE address = 'C@Example.org'"),
			 100);
	assert_string_equal(test_query_text(f->store,
					    "SELECT last_reply FROM envelope_recipient"
					    " WHERE address = 'C@Example.org'",
					    st, sizeof(st)),
			    "451 4.3.0 later");
	assert_int_equal(store_outbound_record(f->store, M1, second, 1, 600), 0);
	assert_int_equal(store_outbound_finish(f->store, M1, MTA, 600, dsn), 1);
	assert_string_equal(dsn, "");
	assert_string_equal(state_of(f, M1, st), "sent");
	assert_int_equal(test_query_int(f->store, "SELECT attempts FROM envelope_recipient"
						  " WHERE address = 'C@Example.org'"),
			 2);
	/* Both learnt as alice's correspondents, in lower case. */
	assert_int_equal(store_correspondent_known(f->store, 1, "b@example.net"), 1);
	assert_int_equal(store_correspondent_known(f->store, 1, "c@example.org"), 1);
	assert_int_equal(store_correspondent_known(f->store, 1, "x@example.org"), 0);
	assert_int_equal(test_query_int(f->store, "SELECT first_at FROM correspondent"
						  " WHERE address = 'c@example.org'"),
			 600);
}

static void test_final_never_changes(void **state)
{
	struct test_store *f = *state;
	static const char *const to[] = {"b@example.net"};
	struct outbound_attempt sent = {
	    .address = "b@example.net", .status = ENVELOPE_SENT, .reply = "250 ok"};
	struct outbound_attempt late = {
	    .address = "b@example.net", .status = ENVELOPE_FAILED, .reply = "550 no"};
	char out[64];

	outbound_message(f, M1, "a@example.com", to, 1);
	assert_int_equal(store_outbound_record(f->store, M1, &sent, 1, 10), 0);
	assert_int_equal(store_outbound_record(f->store, M1, &late, 1, 20), 0);
	assert_string_equal(
	    test_query_text(f->store, "SELECT status FROM envelope_recipient", out, sizeof(out)),
	    "sent");
	assert_int_equal(test_query_int(f->store, "SELECT attempts FROM envelope_recipient"), 1);
	/* Learnt once, for the one delivery. */
	assert_int_equal(test_query_int(f->store, "SELECT messages FROM correspondent"), 1);
}

static void test_bounce_and_dsn(void **state)
{
	struct test_store *f = *state;
	static const char *const to[] = {"b@example.net", "c@example.org"};
	struct outbound_attempt results[] = {
	    {.address = "b@example.net", .status = ENVELOPE_SENT, .reply = "250 ok"},
	    {.address = "c@example.org",
	     .status = ENVELOPE_FAILED,
	     .reply = "550 5.1.1 <c@example.org>: no such user\r\nInjected: header"},
	};
	char dsn[SPOOL_ID_LEN + 1], st[32], *path, *text = NULL, *sql;
	size_t len = 0;

	outbound_message(f, M1, "a@example.com", to, 2);
	assert_int_equal(store_outbound_record(f->store, M1, results, 2, 100), 0);
	assert_int_equal(store_outbound_finish(f->store, M1, MTA, 100, dsn), 2);
	assert_string_equal(state_of(f, M1, st), "bounced");
	assert_true(spool_id_valid(dsn));
	assert_int_equal(test_query_int(f->store, "SELECT dsn_sent FROM envelope"
						  " WHERE message_id = '" M1 "'"),
			 1);
	/* The DSN: a submitted message in its first state, from <> to the sender. */
	assert_string_equal(state_of(f, dsn, st), "processing");
	sql =
	    xasprintf("SELECT sender || '|' || (SELECT address FROM envelope_recipient r"
		      " WHERE r.message_id = e.message_id) FROM envelope e WHERE message_id = '%s'",
		      dsn);
	assert_string_equal(test_query_text(f->store, sql, st, sizeof(st)), "|a@example.com");
	free(sql);
	path = spool_path(f->dir, dsn);
	assert_int_equal(util_read_file(path, &text, &len), 0);
	assert_non_null(strstr(text, "report-type=delivery-status"));
	assert_non_null(strstr(text, "Final-Recipient: rfc822; c@example.org\r\n"));
	assert_non_null(strstr(text, "Status: 5.1.1\r\n"));
	assert_non_null(strstr(text, "Diagnostic-Code: smtp; 550 5.1.1"));
	assert_null(strstr(text, "\r\nInjected: header"));
	assert_null(strstr(text, "Final-Recipient: rfc822; b@example.net"));
	assert_non_null(strstr(text, "Subject: hello\r\n"));
	assert_null(strstr(text, "the secret body"));
	/* Once: finishing again queues nothing more. */
	assert_int_equal(store_outbound_finish(f->store, M1, MTA, 200, dsn), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"), 2);
	free(text);
	free(path);
}

static void test_null_sender_no_dsn(void **state)
{
	struct test_store *f = *state;
	static const char *const to[] = {"b@example.net"};
	struct outbound_attempt failed = {
	    .address = "b@example.net", .status = ENVELOPE_FAILED, .reply = "550 no"};
	char dsn[SPOOL_ID_LEN + 1], st[32];

	outbound_message(f, M1, "", to, 1);
	assert_int_equal(store_outbound_record(f->store, M1, &failed, 1, 100), 0);
	assert_int_equal(store_outbound_finish(f->store, M1, MTA, 100, dsn), 2);
	assert_string_equal(state_of(f, M1, st), "bounced");
	assert_string_equal(dsn, "");
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"), 1);
}

static void test_retry_and_bounce(void **state)
{
	struct test_store *f = *state;
	static const char *const to[] = {"b@example.net", "c@example.org"};
	struct outbound_attempt results[] = {
	    {.address = "b@example.net", .status = ENVELOPE_SENT, .reply = "250 ok"},
	    {.address = "c@example.org",
	     .status = ENVELOPE_PENDING,
	     .next_attempt_at = 9000,
	     .reply = "421 busy"},
	};
	struct outbound_message *list = NULL;
	char(*ids)[SPOOL_ID_LEN + 1] = NULL;
	char dsn[SPOOL_ID_LEN + 1];
	size_t count = 0;
	char st[32];

	outbound_message(f, M1, "a@example.com", to, 2);
	outbound_message(f, M2, "a@example.com", to + 1, 1);
	test_exec_sql(f->store, "UPDATE envelope_recipient SET next_attempt_at = 9000"
				" WHERE message_id = '" M2 "'");
	assert_int_equal(store_outbound_record(f->store, M1, results, 2, 100), 0);
	/* One message's pending recipients, then all. */
	assert_int_equal(store_outbound_retry(f->store, M1, 200), 1);
	assert_int_equal(test_query_int(f->store, "SELECT next_attempt_at FROM envelope_recipient"
						  " WHERE message_id = '" M1
						  "' AND address = 'c@example.org'"),
			 200);
	assert_int_equal(store_outbound_retry(f->store, NULL, 300), 1);
	assert_int_equal(store_outbound_list(f->store, NULL, &list, &count), 0);
	assert_int_equal(count, 2);
	assert_string_equal(list[0].id, M1);
	assert_int_equal(list[0].recipient_count, 2);
	assert_int_equal(list[0].recipients[1].status, ENVELOPE_PENDING);
	assert_string_equal(list[0].recipients[1].last_reply, "421 busy");
	store_outbound_list_free(&list, count);
	/* Bounce: the pending one fails, the sent one stays sent; the message
	 * waits for the daemon to end it, which sends the DSN. */
	assert_int_equal(store_outbound_bounce(f->store, M1, 400), 1);
	assert_string_equal(state_of(f, M1, st), "outbound");
	assert_int_equal(store_outbound_unfinished(f->store, 10, &ids, &count), 0);
	assert_int_equal(count, 1);
	assert_string_equal(ids[0], M1);
	free(ids);
	assert_int_equal(store_outbound_finish(f->store, M1, MTA, 400, dsn), 2);
	assert_string_equal(state_of(f, M1, st), "bounced");
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM envelope_recipient WHERE"
						  " message_id = '" M1 "' AND status = 'sent'"),
			 1);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"
						  " WHERE state = 'processing'"),
			 1);
	assert_int_equal(store_outbound_bounce(f->store, M1, 400), 0);
	assert_int_equal(store_outbound_unfinished(f->store, 10, &ids, &count), 0);
	assert_int_equal(count, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_all_sent, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_final_never_changes, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_bounce_and_dsn, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_null_sender_no_dsn, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_retry_and_bounce, setup, test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
