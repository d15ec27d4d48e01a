/*
 * ingest.c — a message from the provider into the store: the RETR body
 * through the dot decoder into a spool file (line ends made CRLF, SHA-256
 * on the way), then
 *
 *   spool file (fsync, rename) → row + UIDL committed → DELE
 *
 * so a message is deleted at the provider only once it is durably stored
 * (G3). The fetch does not wait for a commit to retrieve the next message:
 * up to INGEST_IN_FLIGHT_MAX of a connection are in the writer thread at
 * once (client.h), which commits them in groups; each DELE goes out once
 * its own commit is done, between two commands.
 *
 * A UIDL that is already recorded as stored is only deleted, never fetched
 * again: that is the message a crash caught between commit and the
 * provider's QUIT, or kept by a provider that ignores DELE. One listed twice
 * or with another size than then is retrieved, and deleted without storing
 * only if the same body (its SHA-256) is stored under that UIDL. A recorded
 * UIDL is forgotten only once the provider no longer lists it (a complete
 * listing, not one cut at [fetch] max_listed).
 *
 * Owns: the body in progress (spool writer, digest, CRLF state), the
 * messages being committed (conn->in_flight) and the reasons messages are
 * left at the provider. Must never: parse the body, or ask for a DELE
 * before the commit.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "core/log.h"
#include "core/util.h"
#include "pipeline/pipeline.h"
#include "pipeline/route.h"
#include "pop3/client.h"
#include "popgate.h"
#include "store/account.h"
#include "store/message.h"
#include "store/spool.h"
#include "store/writer.h"

/* Skip reasons a fetch's summary line names; the rest are counted. */
#define INGEST_SKIP_REASONS 3

/* Stores LEN bytes of body as they go to the spool file (already CRLF). */
static void ingest_body_store(struct provider_conn *conn, const char *data, size_t len)
{
	int64_t limit = conn->fetcher->pg->cfg->max_message_size;

	if (conn->oversize || len == 0)
		return;
	if ((int64_t)(conn->writer->size + len) > limit) {
		/* Keep reading to the terminator so the connection stays in step,
		 * but store nothing: the message stays at the provider. */
		conn->oversize = true;
		return;
	}
	spool_writer_write(conn->writer, data, len);
	EVP_DigestUpdate(conn->digest, data, len);
}

/* Decoded body bytes: line ends made CRLF once, here, so the stored size and
 * SHA-256 are of what clients will be given. */
static void ingest_body_out(void *ctx, const char *data, size_t len)
{
	struct provider_conn *conn = ctx;

	if (conn->oversize)
		return;
	if (conn->crlf_capacity < 2 * len + 1) {
		conn->crlf_capacity = 2 * len + 1;
		conn->crlf_buffer = xrealloc(conn->crlf_buffer, conn->crlf_capacity);
	}
	ingest_body_store(conn, conn->crlf_buffer,
			  spool_crlf_normalise(&conn->crlf, data, len, conn->crlf_buffer));
}

/* The UIDL checks (client.h). */
bool ingest_entry_stored(struct provider_conn *conn, struct provider_entry *entry)
{
	int64_t listed = 0;
	int known = 0;

	if (!entry->duplicate) {
		known = store_uidl_lookup(conn->fetcher->pg->store, conn->account->account_id,
					  entry->uidl, &listed);
		if (known < 0) {
			pop3_client_fail(conn, "store error: %s",
					 store_errmsg(conn->fetcher->pg->store));
			return false;
		}
	}
	switch (listing_entry_action(entry, known == 1, listed > 0 ? (uint64_t)listed : 0)) {
	case LISTING_DELETE_ONLY:
		return true;
	case LISTING_RETRIEVE_COMPARE:
		entry->compare = true;
		return false;
	case LISTING_RETRIEVE:
		break;
	}
	return false;
}

/* Logs the UIDLs the listing holds more than once, once per fetch, and
 * keeps the anomaly for the account's last error. */
static void ingest_report_duplicates(struct provider_conn *conn)
{
	const struct provider_listing *listing = &conn->listing;

	if (listing->duplicate_uidls == 0)
		return;
	snprintf(conn->anomaly, sizeof(conn->anomaly), "provider lists uidl %s twice%s",
		 listing->entries[listing->first_duplicate].uidl,
		 listing->duplicate_uidls > 1 ? " (and other uidls too)" : "");
	log_event(LOG_WARN, "error", conn->account_name, NULL,
		  "the %s; %zu uidl(s) listed more than once: those messages are retrieved and "
		  "compared, never deleted unless stored",
		  conn->anomaly, listing->duplicate_uidls);
}

/* The UIDLs a complete listing holds, on their way to the store: the
 * recorded ones not among them are forgotten. */
struct ingest_prune {
	int64_t account_id;
	char *account_name;
	char **present;
	size_t count;
};

static void ingest_prune_free(struct ingest_prune *prune)
{
	for (size_t i = 0; i < prune->count; i++)
		free(prune->present[i]);
	free(prune->present);
	free(prune->account_name);
	free(prune);
}

static int ingest_prune_work(struct store *store, void *arg)
{
	struct ingest_prune *prune = arg;

	if (store_uidl_prune(store, prune->account_id, prune->present, prune->count) < 0)
		return -1;
	return 0;
}

static void ingest_prune_done(int result, const char *error, void *arg)
{
	struct ingest_prune *prune = arg;

	/* Harmless: the UIDLs are forgotten after the next complete listing. */
	if (result < 0)
		log_event(LOG_WARN, "error", prune->account_name, NULL,
			  "cannot forget the UIDLs the provider no longer lists: %s", error);
	ingest_prune_free(prune);
}

/*
 * Queues the prune of CONN's account to the listing's UIDLs. The writer
 * commits jobs in the order queued: a message of an earlier fetch still
 * being committed (that fetch passed its deadline) has its row and UIDL
 * written before this runs, and this fetch's messages after it; either way
 * its UIDL is listed (it is deleted at the provider only after its commit),
 * so nothing a row is committed for is forgotten.
 */
static void ingest_prune_submit(struct provider_conn *conn)
{
	struct ingest_prune *prune = xcalloc(1, sizeof(*prune));

	prune->account_id = conn->account->account_id;
	prune->account_name = xstrdup(conn->account_name);
	prune->present = xcalloc(conn->listing.count + 1, sizeof(char *));
	for (size_t i = 0; i < conn->listing.count; i++)
		prune->present[i] = xstrdup(conn->listing.entries[i].uidl);
	prune->count = conn->listing.count;
	if (writer_submit(conn->fetcher->pg->writer, NULL, ingest_prune_work, ingest_prune_done,
			  prune) < 0)
		ingest_prune_done(-1, "the store is overloaded", prune);
}

/* The UIDL listing is complete (client.h). */
void ingest_listing_closed(struct provider_conn *conn)
{
	/* UIDLs the provider no longer lists are gone there for good;
	 * a listing cut at max_listed proves nothing of the rest. */
	if (conn->listing.unlisted == 0) {
		ingest_prune_submit(conn);
		log_event(LOG_INFO, "fetch", conn->account_name, NULL,
			  "%zu message(s) at the provider", conn->listing.count);
	} else {
		log_event(LOG_INFO, "fetch", conn->account_name, NULL,
			  "%zu message(s) at the provider; this fetch takes the first %zu "
			  "([fetch] max_listed), the rest waits for the next fetch",
			  conn->listing.count + conn->listing.unlisted, conn->listing.count);
	}
	listing_close(&conn->listing);
	ingest_report_duplicates(conn);
}

/* A fresh spool file, digest and decoder for the RETR (client.h). */
int ingest_retr_begin(struct provider_conn *conn)
{
	struct popgate *pg = conn->fetcher->pg;

	conn->writer = spool_writer_new(pg->store->data_dir);
	if (conn->writer == NULL) {
		pop3_client_fail(conn, "cannot create a spool file: %s", strerror(errno));
		return -1;
	}
	if (conn->digest == NULL)
		conn->digest = EVP_MD_CTX_new();
	EVP_DigestInit_ex(conn->digest, EVP_sha256(), NULL);
	conn->oversize = false;
	conn->crlf.after_cr = false;
	pop3_dot_decoder_init(&conn->decoder);
	return 0;
}

/* Leaves ENTRY at the provider. The reasons are summed up in one line at
 * the end of the fetch, not logged per message: a listing may be huge. */
void ingest_skip(struct provider_conn *conn, struct provider_entry *entry, const char *reason)
{
	size_t used = strlen(conn->skip_reason);

	conn->skipped_count++;
	if (conn->skipped_count <= INGEST_SKIP_REASONS)
		snprintf(conn->skip_reason + used, sizeof(conn->skip_reason) - used, "%smessage %u: %s",
			 used > 0 ? "; " : "", entry->number, reason);
}

/* The skip reasons as one text: the first few, and how many more. */
void ingest_skip_summary(const struct provider_conn *conn, char *out, size_t outlen)
{
	if (conn->skipped_count > INGEST_SKIP_REASONS)
		snprintf(out, outlen, "%s; and %u more", conn->skip_reason,
			 conn->skipped_count - INGEST_SKIP_REASONS);
	else
		snprintf(out, outlen, "%s", conn->skip_reason);
}

/* A message on its way to the store: what the writer thread commits and
 * what follows the commit in the loop. */
struct ingest_message {
	struct provider_conn *conn; /* NULL once the connection ended */
	TAILQ_ENTRY(ingest_message) link; /* in conn->in_flight while conn is set */
	size_t entry;		    /* its index in conn's listing */
	unsigned number;	    /* its message number at the provider */
	struct popgate *pg;
	int64_t account_id;
	char id[SPOOL_ID_LEN + 1];
	char *uidl;
	char *account_name;
	int64_t size;
	int64_t provider_size;
	char sha256_hex[2 * EVP_MAX_MD_SIZE + 1];
};

static void ingest_message_free(struct ingest_message *ingest)
{
	free(ingest->uidl);
	free(ingest->account_name);
	free(ingest);
}

/* The connection ends with commits under way (client.h). The account's next
 * fetch finds them stored: it connects only once its start mark, queued in
 * the writer behind them, is committed (fetch.c), and the writer commits in
 * the order queued. */
void ingest_detach_all(struct provider_conn *conn)
{
	struct ingest_message *ingest;

	while ((ingest = TAILQ_FIRST(&conn->in_flight)) != NULL) {
		TAILQ_REMOVE(&conn->in_flight, ingest, link);
		ingest->conn = NULL; /* its commit goes on; the DELE waits for a later fetch */
	}
	conn->in_flight_count = 0;
}

/* In the writer thread: the row and its UIDL, committed together. */
static int ingest_message_work(struct store *store, void *arg)
{
	struct ingest_message *ingest = arg;

	if (store_message_insert(store, ingest->id, ingest->account_id, ingest->uidl,
				 ingest->size, ingest->sha256_hex) < 0 ||
	    store_uidl_set_size(store, ingest->account_id, ingest->uidl,
				ingest->provider_size) < 0)
		return -1;
	return 0;
}

/* Hands the committed message to the pipeline, with the job route.h gives
 * a fetched message (its account and user as owner, the login as
 * recipient). */
static void ingest_message_submit(struct ingest_message *ingest)
{
	struct popgate *pg = ingest->pg;
	struct store_message message = {.received_at = util_now()};
	struct store_account account = {0};
	struct pipeline_job job;
	char *recipient[1];
	struct filter_profile profile;

	memcpy(message.id, ingest->id, sizeof(message.id));
	message.account_id = ingest->account_id;
	store_account_get_by_id(pg->store, ingest->account_id, &account);
	route_job_fill(pg, &message, &account, &job, recipient, &profile);
	if (pipeline_submit(pg->pipeline, &job) < 0)
		log_event(LOG_ERROR, "error", ingest->account_name, ingest->id,
			  "cannot queue for processing; it will be processed at the next start");
	store_account_clear(&account);
}

/* In the loop, after the commit: the message goes to the pipeline, and only
 * now may the provider delete it (G3): its DELE is queued, and sent when
 * the conversation is between two commands (pop3_client_fetch_next). */
static void ingest_message_done(int result, const char *error, void *arg)
{
	struct ingest_message *ingest = arg;
	struct provider_conn *conn = ingest->conn;

	if (conn != NULL) {
		TAILQ_REMOVE(&conn->in_flight, ingest, link);
		conn->in_flight_count--;
		if (conn->state == PROVIDER_DONE)
			conn = NULL; /* ended, and freed from the loop next */
	}
	if (result < 0) {
		/* The fetch fails without QUIT, so the provider applies none of
		 * this session's DELEs, not even those of messages committed
		 * before: a later fetch deletes them by their UIDLs. */
		if (conn != NULL)
			pop3_client_fail(conn, "cannot record message %u: %s", ingest->number,
					 error);
		ingest_message_free(ingest);
		return;
	}
	log_event(LOG_INFO, "stored", ingest->account_name, ingest->id, "uidl %s, %lld bytes",
		  ingest->uidl, (long long)ingest->size);
	ingest_message_submit(ingest);
	if (conn == NULL) {
		/* The connection ended: a later fetch deletes it (its UIDL is known). */
		ingest_message_free(ingest);
		return;
	}
	conn->stored_count++;
	/* Room is certain: a RETR starts only while in flight and to delete
	 * together are under INGEST_IN_FLIGHT_MAX, and this one moves from the
	 * first to the second. */
	conn->to_delete[conn->to_delete_count++] = ingest->entry;
	ingest_message_free(ingest);
	pop3_client_commit_done(conn);
}

/*
 * The body of the current message is complete in its spool file: hand it to
 * the writer thread, which makes it durable and commits its row and UIDL;
 * ingest_message_done then asks the provider to delete it (G3) and hands
 * the message to the pipeline.
 */
static void ingest_store_message(struct provider_conn *conn)
{
	struct popgate *pg = conn->fetcher->pg;
	struct provider_entry *entry = &conn->listing.entries[conn->cursor];
	unsigned char hash[EVP_MAX_MD_SIZE];
	unsigned hash_len = 0;
	char hash_hex[2 * EVP_MAX_MD_SIZE + 1];
	char id[SPOOL_ID_LEN + 1];
	char tail[1];

	/* A body that ended in a lone CR gets its LF. */
	ingest_body_store(conn, tail, spool_crlf_finish(&conn->crlf, tail));
	if (conn->oversize) {
		spool_writer_free(&conn->writer);
		char reason[96];
		snprintf(reason, sizeof(reason), "over the size limit of %lld bytes",
			 pg->cfg->max_message_size);
		ingest_skip(conn, entry, reason);
		conn->cursor++;
		pop3_client_fetch_next(conn);
		return;
	}
	EVP_DigestFinal_ex(conn->digest, hash, &hash_len);
	sodium_bin2hex(hash_hex, sizeof(hash_hex), hash, hash_len);
	int64_t size = (int64_t)conn->writer->size;
	memcpy(id, conn->writer->id, sizeof(id));

	if (entry->compare) {
		/* Its UIDL alone proved nothing: the very same body stored under it
		 * does. Then only delete; else it is another message: store it. */
		int copy = store_message_has_copy(pg->store, conn->account->account_id,
						  entry->uidl, hash_hex);
		if (copy < 0) {
			spool_writer_free(&conn->writer);
			pop3_client_fail(conn, "store error: %s", store_errmsg(pg->store));
			return;
		}
		if (copy == 1) {
			spool_writer_free(&conn->writer);
			conn->redeleted_count++;
			pop3_client_send_dele(conn, conn->cursor++);
			return;
		}
	}

	/*
	 * The writer thread makes the body durable (fsync, rename, folder fsync)
	 * and then commits its row and UIDL, in one transaction with whatever
	 * else is queued; the DELE waits for that commit (ingest_message_done).
	 * A crash before the commit leaves an orphan file, removed at start-up.
	 * Meanwhile the fetch goes on with the next entry, so the next bodies
	 * are retrieved while this one commits, and commit with it.
	 */
	struct ingest_message *ingest = xcalloc(1, sizeof(*ingest));
	ingest->conn = conn;
	ingest->entry = conn->cursor;
	ingest->number = entry->number;
	ingest->pg = pg;
	ingest->account_id = conn->account->account_id;
	memcpy(ingest->id, id, sizeof(id));
	ingest->uidl = xstrdup(entry->uidl);
	ingest->account_name = xstrdup(conn->account_name);
	ingest->size = size;
	ingest->provider_size = (int64_t)entry->size;
	snprintf(ingest->sha256_hex, sizeof(ingest->sha256_hex), "%s", hash_hex);
	struct spool_writer *body = conn->writer;
	conn->writer = NULL;
	if (writer_submit(pg->writer, body, ingest_message_work, ingest_message_done, ingest) < 0) {
		ingest_message_free(ingest);
		pop3_client_fail(conn, "cannot store message %u: the store is overloaded",
				 entry->number);
		return;
	}
	TAILQ_INSERT_TAIL(&conn->in_flight, ingest, link);
	conn->in_flight_count++;
	conn->cursor++;
	pop3_client_fetch_next(conn);
}

/* The body as it comes (client.h). */
void ingest_read_body(struct provider_conn *conn)
{
	struct evbuffer *in = bufferevent_get_input(conn->bev);

	while (!conn->decoder.done && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec vec;
		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
			break;
		size_t used = pop3_dot_decode(&conn->decoder, vec.iov_base, vec.iov_len,
					      ingest_body_out, conn);
		evbuffer_drain(in, used);
	}
	if (conn->decoder.done)
		ingest_store_message(conn);
}
