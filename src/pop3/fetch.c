/*
 * fetch.c — the provider side's scheduler (fetch.h): which account's fetch
 * runs when, and the handles of live login checks. The conversation itself
 * is client.c's, the storing of each message ingest.c's.
 *
 * A fetch request for an account that is fetching already runs again after
 * it; one beyond [fetch] max_fetches waits in line; a failed fetch backs off
 * ([fetch] retry_min doubling to retry_max, recorded in the store so that a
 * pickup does not hammer a failing provider, and a restart keeps it). A
 * fetch is marked as begun in the store before the first byte goes to the
 * provider, so a restart recovers the fetches a stop cut (popgate.c). Login
 * checks are counted apart from fetches and never take a fetch's slot.
 *
 * The mark and a fetch's outcome are written by the writer thread
 * (store/writer.h), never by the loop: the connection starts in the mark's
 * completion, and an account runs until its outcome's completion, which
 * follows those of every message the fetch queued.
 *
 * Owns: the fetcher, its accounts' timers and queue, the connector (with
 * its TLS contexts) every provider connection uses. Must never: start a
 * fetch for an account whose fetch runs, or before its back-off ends unless
 * the back-off timer itself asks.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "core/config.h"
#include "core/connector.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "pop3/client.h"
#include "pop3/fetch.h"
#include "popgate.h"
#include "store/account.h"
#include "store/writer.h"

static void fetcher_start(struct fetcher *fetcher, struct fetch_account *account);

/* ---- scheduling ----------------------------------------------------------- */

static struct fetch_account *fetcher_account(struct fetcher *fetcher, int64_t account_id)
{
	struct fetch_account *account;

	TAILQ_FOREACH(account, &fetcher->accounts, entry)
	{
		if (account->account_id == account_id)
			return account;
	}
	return NULL;
}

static void fetcher_retry_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct fetch_account *account = ctx;
	(void)fd;
	(void)what;
	fetcher_request(account->fetcher, account->account_id, 1);
}

/* Starts waiting requests while there is room (client.h). */
void fetcher_run_waiting(struct fetcher *fetcher)
{
	struct fetch_account *account;

	while (fetcher->active < (unsigned)fetcher->pg->cfg->max_fetches &&
	       (account = TAILQ_FIRST(&fetcher->waiting)) != NULL) {
		TAILQ_REMOVE(&fetcher->waiting, account, queue_entry);
		account->queued = false;
		fetcher_start(fetcher, account);
	}
}

/* A fetch's outcome on its way to the store (writer.h): the account counts
 * as running until it is committed. */
struct fetch_record {
	struct popgate *pg;
	int64_t account_id;
	char *error;   /* the account's last error; NULL if none */
	int failures;  /* 0 after a fetch without error */
	int64_t next;  /* no fetch before then (0: none) */
	int64_t delay; /* the back-off in seconds; 0 after a fetch that went well */
	bool more;     /* the listing was cut at max_listed: fetch the rest at once */
};

/* In the writer thread: the outcome, and the start mark cleared after a
 * fetch that went well. */
static int fetcher_record_work(struct store *store, void *arg)
{
	struct fetch_record *record = arg;

	if (store_account_record_fetch(store, record->account_id, record->error,
				       record->failures, record->next) < 0)
		return -1;
	return 0;
}

/*
 * In the loop, once the outcome is committed: the account stops running and
 * what comes next is scheduled. The writer commits jobs and runs their
 * completions in the order they were queued, so every message this fetch
 * handed to it was committed, and its completion ran, before this: a fetch
 * that ended (its deadline) while a message was still being committed is
 * not followed by another that finds that UIDL unknown and stores it twice.
 */
static void fetcher_record_done(int result, const char *error, void *arg)
{
	struct fetch_record *record = arg;
	struct fetcher *fetcher = record->pg->fetcher;
	struct fetch_account *account = NULL;

	if (result < 0)
		log_event(LOG_WARN, "error", NULL, NULL,
			  "account %lld: cannot record the fetch's outcome: %s",
			  (long long)record->account_id, error);
	/* At shutdown the fetcher and its accounts are gone first. */
	if (fetcher != NULL)
		account = fetcher_account(fetcher, record->account_id);
	if (account != NULL) {
		account->running = false;
		if (record->delay > 0) {
			struct timeval tv = {.tv_sec = record->delay};
			evtimer_add(account->retry_timer, &tv);
		} else {
			evtimer_del(account->retry_timer);
		}
		if (record->more)
			account->again = true;
		if (account->again) {
			/* Asked for while running; after a failure, back-off still
			 * holds. */
			account->again = false;
			fetcher_request(fetcher, account->account_id, 0);
		}
	}
	free(record->error);
	free(record);
}

/* Records the outcome of a fetch and schedules what comes next (client.h). */
void fetcher_fetch_done(struct provider_conn *conn)
{
	struct fetcher *fetcher = conn->fetcher;
	struct fetch_account *account = conn->account;
	struct popgate *pg = fetcher->pg;
	struct store_account row = {0};
	struct fetch_record *record = xcalloc(1, sizeof(*record));

	record->pg = pg;
	record->account_id = account->account_id;
	/* The account's previous outcome is committed: it ran until then. */
	if (store_account_get_by_id(pg->store, account->account_id, &row) == 1)
		record->failures = row.fetch_failures;
	store_account_clear(&row);

	if (conn->error[0] != '\0') {
		record->failures++;
		int64_t delay = pg->cfg->fetch_retry_min;
		for (int i = 1; i < record->failures && delay < pg->cfg->fetch_retry_max; i++)
			delay *= 2;
		if (delay > pg->cfg->fetch_retry_max)
			delay = pg->cfg->fetch_retry_max;
		record->delay = delay;
		record->next = util_now() + delay;
		record->error = xstrdup(conn->error);
		log_event(LOG_WARN, "fetch_error", conn->account_name, NULL,
			  "%s; retry in %lld s", conn->error, (long long)delay);
	} else {
		/* A fetch that went well but met a provider's anomaly shows it as
		 * the account's last error, without a back-off. */
		record->failures = 0;
		if (conn->anomaly[0] != '\0')
			record->error = xstrdup(conn->anomaly);
		/* A listing cut at max_listed: the next part follows at once while
		 * the fetches store something new (a provider that ignores DELE
		 * would list the same first part again: no loop then). */
		record->more = conn->listing.unlisted > 0 && conn->stored_count > 0;
	}
	/* The account runs until the outcome is committed: a fetch asked for
	 * meanwhile follows it (fetcher_request). */
	if (writer_submit(pg->writer, NULL, fetcher_record_work, fetcher_record_done, record) < 0)
		fetcher_record_done(-1, "the store is overloaded", record);
}

/* A fetch's start mark on its way to the store: the connection waits for
 * its commit (fetcher_begin_done). */
struct fetch_begin {
	struct provider_conn *conn; /* NULL once the connection ended */
	int64_t account_id;
};

/* The connection of BEGIN ends before its mark is committed (client.h). */
void fetcher_begin_detach(struct fetch_begin *begin)
{
	begin->conn = NULL;
}

static int fetcher_begin_work(struct store *store, void *arg)
{
	struct fetch_begin *begin = arg;

	if (store_account_fetch_begin(store, begin->account_id) < 0)
		return -1;
	return 0;
}

/* In the loop, once the mark is committed: only now does the connection go
 * to the provider, so nothing there is deleted by a fetch that a restart
 * would not know was cut. */
static void fetcher_begin_done(int result, const char *error, void *arg)
{
	struct fetch_begin *begin = arg;
	struct provider_conn *conn = begin->conn;

	free(begin);
	if (conn == NULL)
		return;
	conn->begin = NULL;
	if (conn->state == PROVIDER_DONE)
		return; /* ended meanwhile (its deadline); freed from the loop next */
	if (result < 0) {
		pop3_client_fail(conn, "cannot mark the fetch as started: %s", error);
		return;
	}
	pop3_client_start(conn);
}

static void fetcher_start(struct fetcher *fetcher, struct fetch_account *account)
{
	struct popgate *pg = fetcher->pg;
	struct store_account row = {0};
	char *password = NULL;

	if (store_account_get_by_id(pg->store, account->account_id, &row) != 1) {
		log_event(LOG_ERROR, "fetch_error", NULL, NULL, "account %lld not found",
			  (long long)account->account_id);
		store_account_clear(&row);
		return;
	}
	if (crypto_secret_open(&pg->key, row.secret, row.secret_len, &password) < 0) {
		log_event(LOG_ERROR, "fetch_error", row.name, NULL,
			  "the stored password cannot be decrypted (wrong key file?); the next "
			  "login will store it again");
		store_account_clear(&row);
		return;
	}
	struct provider_conn *conn =
		pop3_client_new(fetcher, PROVIDER_MODE_FETCH, row.login, row.host, password);
	crypto_password_free(&password);
	conn->account = account;
	account->running = true;
	store_account_clear(&row);
	/* Marked before the first byte reaches the provider: a restart fetches
	 * an account whose fetch never ended (popgate.c, recover). The writer
	 * thread commits the mark; the connection starts in its completion. */
	struct fetch_begin *begin = xcalloc(1, sizeof(*begin));
	begin->conn = conn;
	begin->account_id = account->account_id;
	if (writer_submit(pg->writer, NULL, fetcher_begin_work, fetcher_begin_done, begin) < 0) {
		free(begin);
		pop3_client_fail(conn, "cannot mark the fetch as started: the store is overloaded");
		return;
	}
	conn->begin = begin;
}

/* ---- public --------------------------------------------------------------- */

struct fetcher *fetcher_new(struct popgate *pg)
{
	struct fetcher *fetcher = xcalloc(1, sizeof(*fetcher));

	fetcher->pg = pg;
	TAILQ_INIT(&fetcher->conns);
	TAILQ_INIT(&fetcher->accounts);
	TAILQ_INIT(&fetcher->waiting);
	fetcher->connector = connector_new(pg->base, pg->dns);
	return fetcher;
}

void fetcher_free(struct fetcher **fetcher_p)
{
	struct fetcher *fetcher = *fetcher_p;
	struct fetch_account *account;

	if (fetcher == NULL)
		return;
	/* No retry may start a fetch while the connections are cut below. */
	TAILQ_FOREACH(account, &fetcher->accounts, entry)
		evtimer_del(account->retry_timer);
	/* At shutdown: connections still open are cut; their messages stay at
	 * the provider unless stored, and the next start fetches again. A
	 * lookup still pending is cancelled with its connection, at once: the
	 * resolver keeps nothing of it for the stopped loop to run. */
	struct provider_conn *conn;
	while ((conn = TAILQ_FIRST(&fetcher->conns)) != NULL) {
		conn->verify_callback = NULL;
		if (conn->verify != NULL)
			conn->verify->conn = NULL;
		pop3_client_free(conn);
	}
	while ((account = TAILQ_FIRST(&fetcher->accounts)) != NULL) {
		TAILQ_REMOVE(&fetcher->accounts, account, entry);
		event_free(account->retry_timer);
		free(account);
	}
	connector_free(&fetcher->connector);
	free(fetcher);
	*fetcher_p = NULL;
}

void fetcher_request(struct fetcher *fetcher, int64_t account_id, int now)
{
	struct fetch_account *account = fetcher_account(fetcher, account_id);

	if (account == NULL) {
		account = xcalloc(1, sizeof(*account));
		account->account_id = account_id;
		account->fetcher = fetcher;
		account->retry_timer = evtimer_new(fetcher->pg->base, fetcher_retry_cb, account);
		TAILQ_INSERT_TAIL(&fetcher->accounts, account, entry);
	}
	if (account->running) {
		account->again = true;
		return;
	}
	if (account->queued)
		return;
	if (!now) {
		struct store_account row = {0};
		int64_t wait = 0;
		if (store_account_get_by_id(fetcher->pg->store, account_id, &row) == 1)
			wait = row.next_fetch_at - util_now();
		store_account_clear(&row);
		if (wait > 0) {
			/* A failing provider is not asked again before its back-off
			 * ends, however many pickups come: the timer fetches then. */
			struct timeval tv = {.tv_sec = wait};
			log_event(LOG_INFO, "fetch", NULL, NULL,
				  "account %lld waits %lld s for its fetch back-off",
				  (long long)account_id, (long long)wait);
			evtimer_add(account->retry_timer, &tv);
			return;
		}
	}
	evtimer_del(account->retry_timer);
	if (fetcher->active >= (unsigned)fetcher->pg->cfg->max_fetches) {
		account->queued = true;
		TAILQ_INSERT_TAIL(&fetcher->waiting, account, queue_entry);
		return;
	}
	fetcher_start(fetcher, account);
}

unsigned fetcher_active(const struct fetcher *fetcher)
{
	return fetcher->active;
}

unsigned fetcher_checks(const struct fetcher *fetcher)
{
	return fetcher->checks;
}

struct fetch_verify *fetch_verify_start(struct fetcher *fetcher, const char *login,
					const char *host, const char *password,
					fetch_verify_cb *callback, void *ctx)
{
	struct provider_conn *conn =
		pop3_client_new(fetcher, PROVIDER_MODE_VERIFY, login, host, password);
	struct fetch_verify *verify = xcalloc(1, sizeof(*verify));

	verify->conn = conn;
	conn->verify = verify;
	conn->verify_callback = callback;
	conn->verify_ctx = ctx;
	pop3_client_start(conn);
	/* The start may have failed at once and reported already, which freed
	 * VERIFY; CONN itself is only freed from the loop. */
	if (conn->verify == NULL)
		return NULL;
	return verify;
}

void fetch_verify_cancel(struct fetch_verify **verify_p)
{
	struct fetch_verify *verify = *verify_p;

	if (verify == NULL)
		return;
	if (verify->conn != NULL) {
		verify->conn->verify_callback = NULL;
		verify->conn->verify = NULL;
		pop3_client_wipe_password(verify->conn);
		if (verify->conn->state != PROVIDER_QUIT)
			pop3_client_fail(verify->conn, "cancelled");
	}
	free(verify);
	*verify_p = NULL;
}
