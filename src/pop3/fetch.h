/*
 * fetch.h — the provider side: popgate as a POP3 client of the user's
 * provider, to verify a login live and to fetch an account's mail.
 *
 * A fetch connects by the host's policy (resolve, refuse private addresses
 * unless allowed, TLS 1.2+ with SNI and verification, or STLS), logs in,
 * lists UIDLs (at most [fetch] max_listed a time), and for each message: RETR
 * into a spool file (line ends made CRLF), fsync, commit the row with its
 * UIDL and LIST size, and only then DELE (G3). A UIDL already recorded, listed
 * once with the same LIST size, is deleted without fetching again; one listed
 * twice or with another size is retrieved and deleted only if the same body
 * is stored. QUIT commits the deletions at the provider; a recorded UIDL is
 * kept until the provider no longer lists it.
 *
 * Each connection has an absolute deadline: [server] login_check_timeout for
 * a login check, [fetch] deadline for a fetch. [fetch] max_fetches caps
 * fetches only; login checks are counted apart (fetcher_checks).
 *
 * SECURITY: the provider is a remote peer; its replies go through
 * pop3/parse.c, message bytes only to the spool file. The password is
 * decrypted just before PASS and wiped right after; it is never logged.
 */
#ifndef POPGATE_POP3_FETCH_H
#define POPGATE_POP3_FETCH_H

#include <stdint.h>

struct popgate;
struct fetcher;
struct fetch_verify;

enum fetch_verify_result {
	FETCH_VERIFY_OK,	 /* the provider accepted the login */
	FETCH_VERIFY_REJECTED,	 /* the provider said -ERR to the password */
	FETCH_VERIFY_FAILED,	 /* could not ask: policy, DNS, TLS, timeout … */
};

/* ERROR is a short text for the log and the client (never a password). */
typedef void fetch_verify_cb(enum fetch_verify_result result, const char *error, void *ctx);

struct fetcher *fetcher_new(struct popgate *pg);
void fetcher_free(struct fetcher **fetcher);

/*
 * Checks LOGIN and PASSWORD at HOST live: connect, log in, QUIT. CALLBACK is
 * called exactly once unless cancelled first — from the loop, or before this
 * returns if the check cannot even start (then NULL is returned). The handle
 * is freed when the callback runs; forget it then. The password is copied and
 * wiped when done.
 */
struct fetch_verify *fetch_verify_start(struct fetcher *fetcher, const char *login,
					const char *host, const char *password,
					fetch_verify_cb *callback, void *ctx);

/* Stops a verification; its callback will not be called. NULL is fine. */
void fetch_verify_cancel(struct fetch_verify **verify);

/*
 * Asks for a fetch of ACCOUNT_ID. If one runs for the account, another
 * follows it; a fetch that waits for back-off starts when that ends unless
 * NOW is set (only the back-off timer itself sets it: a pickup must not
 * hammer a failing provider).
 */
void fetcher_request(struct fetcher *fetcher, int64_t account_id, int now);

/* Fetches under way (for status and tests); [fetch] max_fetches caps them. */
unsigned fetcher_active(const struct fetcher *fetcher);

/* Live login checks under way. They do not take fetch slots; each ends by
 * [server] login_check_timeout at the latest. */
unsigned fetcher_checks(const struct fetcher *fetcher);

#endif
