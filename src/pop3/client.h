/*
 * client.h — popgate as a POP3 client of a user's provider, inside the
 * provider side (fetch.h is its public face): one connection, for a live
 * login check (verify) or the fetch of an account's mail.
 *
 * Four files share what is here:
 *   client.c       the connection: connect (core/connector) and the STLS
 *                  upgrade, command lines out, status and listing lines in,
 *                  socket errors, the connection's deadline, end and free;
 *   client_conversation.c
 *                  the conversation: greeting, CAPA, STLS, USER/PASS or AUTH
 *                  PLAIN, UIDL and LIST, each entry in turn (RETR, DELE or a
 *                  skip), QUIT: what each reply means and what comes next;
 *   ingest.c       a RETR body into a spool file, then its row and UIDL
 *                  committed before the DELE (G3), and the checks of a UIDL
 *                  recorded before (listed once with the same size, or the
 *                  same body's SHA-256), the recorded UIDLs pruned after a
 *                  listing;
 *   fetch.c        the scheduler: an account's fetch requests, [fetch]
 *                  max_fetches, back-off, and the login checks' handles.
 *
 * Nothing outside src/pop3/{client,client_conversation,ingest,fetch}.c
 * includes this header.
 *
 * SECURITY: the provider is a remote peer. Its status and listing lines go
 * through pop3/parse.c; message bytes go only to the spool file and are
 * never parsed here. The password is decrypted at the start of a fetch, sent
 * once, and wiped as soon as the login is answered; it is never logged.
 */
#ifndef POPGATE_POP3_CLIENT_H
#define POPGATE_POP3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "core/config.h"
#include "pop3/fetch.h"
#include "pop3/listing.h"
#include "pop3/parse.h"
#include "store/spool.h"

struct connector;
struct connector_attempt;

enum provider_state {
	PROVIDER_CONNECTING, /* resolving and connecting: core/connector */
	PROVIDER_GREETING,
	PROVIDER_CAPA,
	PROVIDER_STLS,
	PROVIDER_TLS_HANDSHAKE,
	PROVIDER_USER,
	PROVIDER_PASS,
	PROVIDER_UIDL,
	PROVIDER_LIST,
	PROVIDER_RETR_STATUS,
	PROVIDER_RETR_BODY,
	PROVIDER_DELE,
	PROVIDER_COMMIT_WAIT, /* no command out: waiting for commits (ingest.c) */
	PROVIDER_QUIT,
	PROVIDER_DONE,
	PROVIDER_STATE_COUNT
};

enum provider_mode { PROVIDER_MODE_VERIFY, PROVIDER_MODE_FETCH };

/* Per-account fetch scheduling (fetch.c). */
struct fetch_account {
	int64_t account_id;
	bool running;
	bool again;	  /* requested while running: fetch once more after */
	bool queued;	  /* waiting for a free slot (max_fetches) */
	bool now;	  /* the queued request ignores back-off */
	struct event *retry_timer;
	struct fetcher *fetcher;
	TAILQ_ENTRY(fetch_account) entry;
	TAILQ_ENTRY(fetch_account) queue_entry;
};

TAILQ_HEAD(fetch_account_list, fetch_account);

/*
 * Messages of one connection handed to the writer thread and not yet
 * deleted at the provider (committing, or committed with their DELE still
 * to send). The fetch retrieves the next bodies while those commit, so the
 * writer's group commit takes many of them per fsync round and transaction
 * instead of one message per round trip; at this many it waits. 32 keeps the
 * writer fed at a provider's pace (a round of fsyncs lasts about as long as
 * a few dozen small RETRs on a LAN) while bounding the spool files in flight
 * and the DELEs a cut connection leaves to the next fetch.
 */
#define INGEST_IN_FLIGHT_MAX 32

/* One connection to a provider. */
struct ingest_message;	/* ingest.c: a message being committed */
struct fetch_begin;	/* fetch.c: the fetch's start mark being committed */
TAILQ_HEAD(ingest_message_list, ingest_message);

struct provider_conn {
	struct fetcher *fetcher;
	enum provider_mode mode;
	enum provider_state state;
	char *login;
	char *host;
	char *account_name; /* for the log */
	char *password;	    /* wiped and freed once the login is answered */
	const struct provider_policy *policy;
	struct connector_attempt *attempt; /* while resolving and connecting */
	struct bufferevent *bev;
	bool capa_stls;
	bool capa_user;
	bool capa_sasl_plain;
	bool tls_active;

	/* verify */
	fetch_verify_cb *verify_callback;
	void *verify_ctx;
	struct fetch_verify *verify;

	/* fetch */
	struct fetch_account *account;
	struct fetch_begin *begin; /* the start mark, until committed: not connected yet */
	struct provider_listing listing;
	size_t cursor;		 /* entry being worked on (RETR, or next to be) */
	size_t dele_entry;	 /* entry whose DELE is answered next */
	struct event *resume_event; /* goes on working through the entries */
	bool in_listing;	 /* the +OK of a multi-line reply was read; lines follow */
	struct spool_writer *writer;
	struct ingest_message_list in_flight; /* being committed, oldest first */
	unsigned in_flight_count;
	size_t to_delete[INGEST_IN_FLIGHT_MAX]; /* entries committed, DELE not sent yet */
	unsigned to_delete_count;
	struct pop3_dot_decoder decoder;
	struct spool_crlf crlf;	 /* the body's line ends, made CRLF on the way */
	char *crlf_buffer;	 /* room for a normalised chunk */
	size_t crlf_capacity;
	EVP_MD_CTX *digest;
	bool oversize;		 /* the body in progress passed the size limit */
	bool skips_reported;	 /* the skipped messages are in the fetch's error */
	unsigned stored_count;
	unsigned deleted_count;
	unsigned skipped_count;
	unsigned redeleted_count; /* stored at an earlier fetch, deleted again */
	unsigned dele_refused;	 /* DELEs the provider answered -ERR */
	char dele_error[180];	 /* the first of those answers */
	char skip_reason[200];	 /* the first reasons messages were left at the provider */
	char error[400];	 /* why the connection failed; "" if it did not */
	char anomaly[160];	 /* a rule the provider broke, for the account's last error */

	/* The absolute deadline of the whole connection ([server]
	 * login_check_timeout or [fetch] deadline): the silence timeout alone
	 * lets a provider that drips a byte at a time hold it forever. */
	struct event *deadline_event;

	/* A connection is freed from the loop, never inside its own handlers. */
	struct event *free_event;
	TAILQ_ENTRY(provider_conn) entry;
};

TAILQ_HEAD(provider_conn_list, provider_conn);

struct fetch_verify {
	struct provider_conn *conn;
};

struct fetcher {
	struct popgate *pg;
	struct fetch_account_list accounts;
	struct fetch_account_list waiting;
	unsigned active;	/* fetches under way: at most [fetch] max_fetches */
	unsigned checks;	/* login checks under way, counted apart: they must not
				 * keep fetches from starting */
	struct provider_conn_list conns;
	struct connector *connector; /* with the provider TLS contexts */
};

/* ---- client.c ------------------------------------------------------------ */

/* A connection for MODE to LOGIN at HOST, counted in FETCHER, its deadline
 * running; pop3_client_start connects it. */
struct provider_conn *pop3_client_new(struct fetcher *fetcher, enum provider_mode mode,
				      const char *login, const char *host, const char *password);

/* Connects CONN by its host's policy. May end CONN at once (the host is not
 * allowed, a CA file cannot be read). */
void pop3_client_start(struct provider_conn *conn);

/* Frees CONN at once (fetcher_free; else ended by pop3_client_finish). */
void pop3_client_free(struct provider_conn *conn);

/* Ends CONN: reports a verify, records a fetch, frees CONN from the loop. */
void pop3_client_finish(struct provider_conn *conn);

/* Records the first failure of CONN and ends it. */
void pop3_client_fail(struct provider_conn *conn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Sends one command line and moves CONN to STATE. A line holding CR or LF
 * (a login or password smuggling commands) is refused: CONN fails with a
 * clear error and nothing is sent. -1 then (CONN is ended), else 0.
 */
int pop3_client_send_command(struct provider_conn *conn, enum provider_state state,
			     const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void pop3_client_enter_state(struct provider_conn *conn, enum provider_state state);

/* CONN's state for a log line; while connecting, the connector's phase
 * ("resolving" or "connecting"). */
const char *pop3_client_state_name(const struct provider_conn *conn);

void pop3_client_wipe_password(struct provider_conn *conn);

/* Upgrades CONN's connection to TLS after the provider's +OK to STLS; the
 * login follows the handshake. May end CONN. */
void pop3_client_start_tls(struct provider_conn *conn);

/* Hands the verify of CONN its RESULT (ERROR: why, for a failure) and ends
 * the caller's handle; nothing happens for a verify already reported. */
void pop3_client_report_verify(struct provider_conn *conn, enum fetch_verify_result result,
			       const char *error);

/* ---- client_conversation.c ----------------------------------------------- */

/* Sends the login: AUTH PLAIN to a provider that offers only SASL PLAIN,
 * else USER (PASS follows its +OK). May end CONN. */
void pop3_client_send_login(struct provider_conn *conn);

/* One status line from the provider, in the state that expects it. May end
 * CONN. */
void pop3_client_handle_status(struct provider_conn *conn, const char *line, size_t len);

/* One line of a multi-line reply (CAPA, UIDL, LIST) whose +OK was seen; the
 * terminator ends it. May end CONN. */
void pop3_client_handle_listing(struct provider_conn *conn, const char *line, size_t len);

/*
 * Goes on with the fetch between two commands (no reply outstanding): first
 * the DELE of a message committed since (G3: never one before), then entry
 * CURSOR: delete it if already stored, skip it if too big, else retrieve it
 * (unless INGEST_IN_FLIGHT_MAX messages are being committed: then it waits
 * in PROVIDER_COMMIT_WAIT). After the last entry and the last commit and
 * DELE: QUIT.
 */
void pop3_client_fetch_next(struct provider_conn *conn);

/* A message of CONN is committed (its DELE queued) or failed: a fetch
 * waiting in PROVIDER_COMMIT_WAIT goes on. */
void pop3_client_commit_done(struct provider_conn *conn);

/* Sends the DELE of entry INDEX, whose row is committed or was stored at an
 * earlier fetch. */
void pop3_client_send_dele(struct provider_conn *conn, size_t index);

/* ---- ingest.c ------------------------------------------------------------ */

/*
 * Whether ENTRY provably is a message stored at an earlier fetch (its UIDL
 * recorded, listed once, with the same LIST size as then: listing.c). An
 * entry without that proof whose UIDL is recorded or listed twice is marked
 * to be retrieved and compared by content. False, with CONN ended, on a
 * store error.
 */
bool ingest_entry_stored(struct provider_conn *conn, struct provider_entry *entry);

/*
 * The UIDL listing is complete: forgets recorded UIDLs the provider no
 * longer lists (only when the listing was not cut at max_listed), closes
 * the listing (listing.c marks UIDLs listed twice) and reports those.
 */
void ingest_listing_closed(struct provider_conn *conn);

/* Opens the spool file and digest for the RETR of entry CURSOR. -1, with
 * CONN ended, if the spool file cannot be made. */
int ingest_retr_begin(struct provider_conn *conn);

/*
 * Reads body bytes of the current RETR through the dot decoder. At the
 * terminator the message goes to the writer thread (or is left: too big, or
 * deleted only: the same body is stored under its UIDL) and the fetch goes
 * on with the next entry at once; its DELE is queued once its commit is done.
 */
void ingest_read_body(struct provider_conn *conn);

/* Leaves ENTRY at the provider. The reasons are summed up in one line at
 * the end of the fetch, not logged per message: a listing may be huge. */
void ingest_skip(struct provider_conn *conn, struct provider_entry *entry, const char *reason);

/* The skip reasons as one text: the first few, and how many more. */
void ingest_skip_summary(const struct provider_conn *conn, char *out, size_t outlen);

/* CONN ends while messages of it are being committed: each commit goes on
 * and hands its message to the pipeline; their DELEs are left to a later
 * fetch (their UIDLs are recorded with them). */
void ingest_detach_all(struct provider_conn *conn);

/* ---- fetch.c --------------------------------------------------------------- */

/* Records the outcome of the fetch CONN and schedules what comes next. */
void fetcher_fetch_done(struct provider_conn *conn);

/* The connection of BEGIN ends before its start mark is committed: the
 * commit goes on, the connection is not started. */
void fetcher_begin_detach(struct fetch_begin *begin);

/* Starts waiting requests while there is room. */
void fetcher_run_waiting(struct fetcher *fetcher);

#endif
