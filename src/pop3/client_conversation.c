/*
 * client_conversation.c — the POP3 conversation of a connection to a
 * provider (client.h): what each reply means in the state it came in, and
 * what popgate says next.
 *
 * Greeting, CAPA, STLS when the policy wants it (client.c upgrades the
 * connection), USER/PASS or AUTH PLAIN. A verify then QUITs. A fetch lists
 * UIDL and LIST and takes each entry in turn: DELE only for one stored
 * before, RETR for the rest, a skip for one over the size limit. A body
 * retrieved goes to ingest.c (the writer thread commits it) and the next
 * entry follows at once; each message's DELE is sent once its commit is
 * done, between two commands, before the next RETR (G3). At the end, once
 * every commit is done and every DELE sent: QUIT, which commits the
 * deletions at the provider.
 *
 * Owns: nothing; the connection is client.c's. Must never: send a command
 * the state does not expect, or log a password.
 *
 * SECURITY: the provider is a remote peer. Its status and listing lines are
 * parsed by pop3/parse.c and listing.c; its reply texts are sanitised before
 * they go into a log line or an error. The password is wiped as soon as the
 * login is answered.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <sodium.h>

#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "pop3/client.h"
#include "pop3/listing.h"
#include "pop3/parse.h"
#include "store/account.h"
#include "popgate.h"

/* Entries a fetch works through before it lets the loop serve others. */
#define POP3_CLIENT_STEPS_PER_TURN 256

/* The reply text, sanitised, for a log line or an error. */
static void pop3_client_reply_text(char *out, size_t outlen, const struct pop3_reply *reply)
{
	util_sanitize(out, outlen, reply->text, reply->text_len);
}

/* ---- the login ---------------------------------------------------------- */

/* The login, as the provider's CAPA allows (client.h). */
void pop3_client_send_login(struct provider_conn *conn)
{
	/* Base64 in AUTH PLAIN would hide a CR or LF from pop3_client_send_command:
	 * check the fields themselves (defence in depth; logins refuse them). */
	if (strpbrk(conn->login, "\r\n") != NULL || strpbrk(conn->password, "\r\n") != NULL) {
		pop3_client_wipe_password(conn);
		pop3_client_fail(conn, "refused to send the provider a login or password with a CR "
				       "or LF in it");
		return;
	}
	if (!conn->capa_user && conn->capa_sasl_plain) {
		/* A provider that offers only SASL: AUTH PLAIN with an initial response. */
		size_t login_len = strlen(conn->login), pass_len = strlen(conn->password);
		size_t raw_len = 1 + login_len + 1 + pass_len;
		unsigned char *raw = xmalloc(raw_len);
		size_t b64_len = sodium_base64_ENCODED_LEN(raw_len, sodium_base64_VARIANT_ORIGINAL);
		char *b64 = xmalloc(b64_len);

		raw[0] = '\0';
		memcpy(raw + 1, conn->login, login_len);
		raw[1 + login_len] = '\0';
		memcpy(raw + 2 + login_len, conn->password, pass_len);
		sodium_bin2base64(b64, b64_len, raw, raw_len, sodium_base64_VARIANT_ORIGINAL);
		sodium_memzero(raw, raw_len);
		free(raw);
		pop3_client_wipe_password(conn);
		pop3_client_send_command(conn, PROVIDER_PASS, "AUTH PLAIN %s", b64);
		sodium_memzero(b64, b64_len);
		free(b64);
		return;
	}
	pop3_client_send_command(conn, PROVIDER_USER, "USER %s", conn->login);
}

/* After CAPA (or STLS): go to TLS if the policy wants it, else log in. */
static void pop3_client_after_capa(struct provider_conn *conn)
{
	if (conn->policy->tls == PROVIDER_TLS_STARTTLS && !conn->tls_active) {
		if (!conn->capa_stls) {
			pop3_client_fail(conn, "the provider does not offer STLS, which the policy "
					       "requires");
			return;
		}
		pop3_client_send_command(conn, PROVIDER_STLS, "STLS");
		return;
	}
	pop3_client_send_login(conn);
}

/* The login was accepted: a verify ends here, a fetch lists the mailbox. */
static void pop3_client_logged_in(struct provider_conn *conn)
{
	if (conn->mode == PROVIDER_MODE_VERIFY) {
		pop3_client_report_verify(conn, FETCH_VERIFY_OK, NULL);
		pop3_client_send_command(conn, PROVIDER_QUIT, "QUIT");
		return;
	}
	log_event(LOG_INFO, "fetch", conn->account_name, NULL, "logged in at %s", conn->host);
	pop3_client_send_command(conn, PROVIDER_UIDL, "UIDL");
}

static void pop3_client_login_refused(struct provider_conn *conn, const struct pop3_reply *reply)
{
	char text[160];

	pop3_client_reply_text(text, sizeof(text), reply);
	/* RFC 3206: only [AUTH] (or no code) means the credentials were wrong;
	 * [IN-USE] or [SYS/…] is the provider's trouble, not a bad password. */
	bool credentials = reply->code[0] == '\0' || strcmp(reply->code, "AUTH") == 0;
	pop3_client_wipe_password(conn);
	if (conn->mode == PROVIDER_MODE_VERIFY) {
		pop3_client_report_verify(conn,
					  credentials ? FETCH_VERIFY_REJECTED : FETCH_VERIFY_FAILED,
					  credentials ? "the provider refused the login" : text);
		pop3_client_finish(conn);
		return;
	}
	pop3_client_fail(conn, "login refused by the provider: %s", text);
}

/* ---- the fetch ---------------------------------------------------------- */

static void pop3_client_resume_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct provider_conn *conn = ctx;
	(void)fd;
	(void)what;

	if (conn->state != PROVIDER_DONE)
		pop3_client_fetch_next(conn);
}

/* The DELE of entry INDEX (client.h). */
void pop3_client_send_dele(struct provider_conn *conn, size_t index)
{
	conn->dele_entry = index;
	pop3_client_send_command(conn, PROVIDER_DELE, "DELE %u",
				 conn->listing.entries[index].number);
}

/* No command to send until a commit is done: ingest.c calls
 * pop3_client_commit_done then. Nothing is read meanwhile (the provider owes
 * no reply), so the silence timeout does not run while the disk is slow. */
static void pop3_client_wait_commits(struct provider_conn *conn)
{
	pop3_client_enter_state(conn, PROVIDER_COMMIT_WAIT);
	bufferevent_disable(conn->bev, EV_READ);
}

/* A commit is done (client.h). */
void pop3_client_commit_done(struct provider_conn *conn)
{
	/* Else a reply is outstanding, or a turn is to come (resume_event):
	 * either goes on with pop3_client_fetch_next, never two at once. */
	if (conn->state != PROVIDER_COMMIT_WAIT ||
	    (conn->resume_event != NULL && evtimer_pending(conn->resume_event, NULL)))
		return;
	pop3_client_fetch_next(conn);
}

/* Whether CONN's account still has its row (a store error counts as yes:
 * the row is then as likely there as before, and the QUIT only applies the
 * DELEs of committed messages). */
static bool pop3_client_account_exists(struct provider_conn *conn)
{
	struct store_account account = {0};
	int found = store_account_get_by_id(conn->fetcher->pg->store, conn->account->account_id,
					    &account);

	store_account_clear(&account);
	return found != 0;
}

/* The next command, between two (client.h). */
void pop3_client_fetch_next(struct provider_conn *conn)
{
	struct popgate *pg = conn->fetcher->pg;
	unsigned steps = 0;

	if (conn->state == PROVIDER_COMMIT_WAIT)
		bufferevent_enable(conn->bev, EV_READ);
	if (conn->to_delete_count > 0) {
		/* Committed since the last command: its DELE goes first, one
		 * command, one reply, before the next RETR. */
		size_t index = conn->to_delete[0];
		conn->to_delete_count--;
		memmove(conn->to_delete, conn->to_delete + 1,
			conn->to_delete_count * sizeof(conn->to_delete[0]));
		pop3_client_send_dele(conn, index);
		return;
	}
	while (conn->cursor < conn->listing.count) {
		struct provider_entry *entry = &conn->listing.entries[conn->cursor];
		/* Entries left without a word to the provider (over the size limit)
		 * could run long: let the loop serve others between turns. */
		if (++steps > POP3_CLIENT_STEPS_PER_TURN) {
			static const struct timeval soon = {0, 0};
			if (conn->resume_event == NULL)
				conn->resume_event =
				    evtimer_new(pg->base, pop3_client_resume_cb, conn);
			evtimer_add(conn->resume_event, &soon);
			return;
		}
		bool known = ingest_entry_stored(conn, entry);
		if (conn->state == PROVIDER_DONE)
			return;
		if (known) {
			/* Stored at an earlier fetch whose deletion did not happen (a
			 * crash, a provider that ignores DELE): delete only. Counted in
			 * the fetch's summary, not logged one by one. */
			conn->redeleted_count++;
			pop3_client_send_dele(conn, conn->cursor++);
			return;
		}
		if ((int64_t)entry->size > pg->cfg->max_message_size) {
			char reason[96];
			snprintf(reason, sizeof(reason), "%llu bytes is over the size limit of %lld",
				 (unsigned long long)entry->size, pg->cfg->max_message_size);
			ingest_skip(conn, entry, reason);
			conn->cursor++;
			continue;
		}
		/* At the bound, wait for commits. One to compare by content waits
		 * for all: it may be the same body as one still being committed
		 * under its UIDL (listed twice), which must be found stored. */
		if (conn->in_flight_count + conn->to_delete_count >= INGEST_IN_FLIGHT_MAX ||
		    (entry->compare && conn->in_flight_count > 0)) {
			pop3_client_wait_commits(conn);
			return;
		}
		if (ingest_retr_begin(conn) < 0)
			return;
		pop3_client_send_command(conn, PROVIDER_RETR_STATUS, "RETR %u", entry->number);
		return;
	}
	/* Every DELE waits for its commit, and QUIT (which applies them) for
	 * every DELE. */
	if (conn->in_flight_count > 0) {
		pop3_client_wait_commits(conn);
		return;
	}
	/* An administrator may have deleted the account (and with --force its
	 * messages) while its DELEs went out: then no QUIT, so the provider
	 * applies none of them and keeps the mail popgate no longer has. */
	if (!pop3_client_account_exists(conn)) {
		pop3_client_fail(conn, "the account was deleted during its fetch; nothing is "
				       "deleted at the provider");
		return;
	}
	pop3_client_send_command(conn, PROVIDER_QUIT, "QUIT");
}

/* The provider confirmed our QUIT: its deletions are done. */
static void pop3_client_quit_done(struct provider_conn *conn)
{
	/* The UIDLs of deleted messages are kept: a provider may acknowledge
	 * DELE and QUIT and delete nothing. They go when the provider stops
	 * listing them (the prune at the end of UIDL), so such a provider costs
	 * DELEs again, never a message stored twice. */
	if (conn->mode == PROVIDER_MODE_FETCH) {
		log_event(LOG_INFO, "fetch", conn->account_name, NULL,
			  "done: %u stored, %u deleted at the provider (%u stored before), %u "
			  "left there, %zu more listed for the next fetch",
			  conn->stored_count, conn->deleted_count, conn->redeleted_count,
			  conn->skipped_count, conn->listing.unlisted);
		if (conn->skipped_count > 0 && conn->error[0] == '\0') {
			char reasons[sizeof(conn->skip_reason) + 32];
			ingest_skip_summary(conn, reasons, sizeof(reasons));
			snprintf(conn->error, sizeof(conn->error), "%u message(s) left at the "
				 "provider (%s)", conn->skipped_count, reasons);
			conn->skips_reported = true;
		}
	}
	pop3_client_enter_state(conn, PROVIDER_DONE);
	pop3_client_finish(conn);
}

/* Handles one status line in the states that expect one (client.h). */
void pop3_client_handle_status(struct provider_conn *conn, const char *line, size_t len)
{
	struct pop3_reply reply;
	char text[160];

	if (pop3_reply_parse(line, len, &reply) < 0) {
		pop3_client_fail(conn, "malformed reply from the provider in state %s",
				 pop3_client_state_name(conn));
		return;
	}
	pop3_client_reply_text(text, sizeof(text), &reply);

	switch (conn->state) {
	case PROVIDER_GREETING:
		if (!reply.ok) {
			pop3_client_fail(conn, "the provider refused the connection: %s", text);
			return;
		}
		pop3_client_send_command(conn, PROVIDER_CAPA, "CAPA");
		return;
	case PROVIDER_CAPA:
		if (!reply.ok) { /* no CAPA: assume USER/PASS */
			conn->capa_user = true;
			pop3_client_after_capa(conn);
			return;
		}
		conn->in_listing = true;
		return;
	case PROVIDER_STLS:
		if (!reply.ok) {
			pop3_client_fail(conn, "the provider refused STLS: %s", text);
			return;
		}
		pop3_client_start_tls(conn);
		return;
	case PROVIDER_USER:
		if (!reply.ok) {
			pop3_client_login_refused(conn, &reply);
			return;
		}
		pop3_client_send_command(conn, PROVIDER_PASS, "PASS %s", conn->password);
		return;
	case PROVIDER_PASS:
		pop3_client_wipe_password(conn);
		if (!reply.ok) {
			pop3_client_login_refused(conn, &reply);
			return;
		}
		pop3_client_logged_in(conn);
		return;
	case PROVIDER_UIDL:
		if (!reply.ok) {
			pop3_client_fail(conn, "the provider does not support UIDL: %s", text);
			return;
		}
		conn->in_listing = true;
		return;
	case PROVIDER_LIST:
		if (!reply.ok) { /* sizes are advisory */
			pop3_client_fetch_next(conn);
			return;
		}
		conn->in_listing = true;
		return;
	case PROVIDER_RETR_STATUS:
		if (!reply.ok) {
			spool_writer_free(&conn->writer);
			ingest_skip(conn, &conn->listing.entries[conn->cursor], text);
			conn->cursor++;
			pop3_client_fetch_next(conn);
			return;
		}
		pop3_client_enter_state(conn, PROVIDER_RETR_BODY);
		ingest_read_body(conn);
		return;
	case PROVIDER_DELE:
		if (reply.ok) {
			conn->listing.entries[conn->dele_entry].deleted = true;
			conn->deleted_count++;
		} else if (conn->dele_refused++ == 0) {
			/* Summed up at the end of the fetch: a listing may be huge. */
			snprintf(conn->dele_error, sizeof(conn->dele_error), "DELE %u: %s",
				 conn->listing.entries[conn->dele_entry].number, text);
		}
		pop3_client_fetch_next(conn);
		return;
	case PROVIDER_QUIT:
		if (!reply.ok && conn->mode == PROVIDER_MODE_FETCH) {
			pop3_client_fail(
			    conn, "the provider refused QUIT (deletions not applied): %s", text);
			return;
		}
		pop3_client_quit_done(conn);
		return;
	default:
		pop3_client_fail(conn, "unexpected reply from the provider in state %s",
				 pop3_client_state_name(conn));
		return;
	}
}

/* Lines of a multi-line reply (CAPA, UIDL, LIST); the status was seen (client.h). */
void pop3_client_handle_listing(struct provider_conn *conn, const char *line, size_t len)
{
	/* Listing lines are dot-stuffed like any multi-line reply. */
	if (len > 0 && line[0] == '.' && !pop3_is_terminator(line, len)) {
		line++;
		len--;
	}
	if (pop3_is_terminator(line, len)) {
		conn->in_listing = false;
		switch (conn->state) {
		case PROVIDER_CAPA:
			pop3_client_after_capa(conn);
			return;
		case PROVIDER_UIDL:
			ingest_listing_closed(conn);
			if (conn->listing.count == 0) {
				pop3_client_send_command(conn, PROVIDER_QUIT, "QUIT");
				return;
			}
			pop3_client_send_command(conn, PROVIDER_LIST, "LIST");
			return;
		case PROVIDER_LIST:
			pop3_client_fetch_next(conn);
			return;
		default:
			return;
		}
	}
	switch (conn->state) {
	case PROVIDER_CAPA: {
		char word[16];
		size_t n = 0;
		while (n < len && n < sizeof(word) - 1 && line[n] != ' ') {
			word[n] = line[n];
			n++;
		}
		word[n] = '\0';
		if (util_strcaseeq(word, "STLS"))
			conn->capa_stls = true;
		else if (util_strcaseeq(word, "USER"))
			conn->capa_user = true;
		else if (util_strcaseeq(word, "SASL") && len > 5) {
			for (size_t i = 5; i + 5 <= len; i++) {
				if ((i == 5 || line[i - 1] == ' ') &&
				    strncasecmp(line + i, "PLAIN", 5) == 0 &&
				    (i + 5 == len || line[i + 5] == ' '))
					conn->capa_sasl_plain = true;
			}
		}
		return;
	}
	case PROVIDER_UIDL:
		if (listing_add_uidl(&conn->listing, line, len) < 0)
			pop3_client_fail(conn, "malformed UIDL line from the provider");
		return;
	case PROVIDER_LIST:
		listing_add_size(&conn->listing, line, len);
		return;
	default:
		return;
	}
}
