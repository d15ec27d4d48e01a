/*
 * auth_internal.h — what the login state machine (pop3/auth.c) shares with
 * the part that stores what a provider confirmed (pop3/auth_store.c): the
 * request and its steps. Private to those two files.
 *
 * SECURITY: a request holds a client's password until it ends (wiped).
 */
#ifndef POPGATE_POP3_AUTH_INTERNAL_H
#define POPGATE_POP3_AUTH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "core/crypto.h"
#include "pop3/auth.h"
#include "pop3/fetch.h"
#include "pop3/throttle.h"

struct auth_store_job;

#define AUTH_LOGIN_MAX 256
#define AUTH_HOST_MAX 256
/* Longer console names cannot be a user or an account; refused unread. */
#define AUTH_CONSOLE_NAME_MAX 512

/* Which login a request is, and so which steps it takes. */
enum auth_kind {
	AUTH_KIND_POP3,	   /* a mail client: an account name "login@host" */
	AUTH_KIND_CONSOLE, /* a user of the console: a user or account name */
	AUTH_KIND_ADMIN,   /* the administrator */
};

struct auth_request {
	struct auth *auth;
	enum auth_kind kind;
	char *name;	     /* POP3: normalised "login@host"; console: the user found */
	char *shown;	     /* the name for the log, sanitised */
	char *login;	     /* the provider account a live check asks */
	char *host;
	char *password;	     /* wiped when the request ends */
	char *client_address; /* NULL: the command line */
	bool exists;	     /* the account was found in the store (its hash tried) */
	int64_t account_id;
	struct throttle_attempt throttle;
	struct throttle_count *count; /* while the writer thread writes the attempt's counts */
	void (*after_count)(struct auth_request *request); /* the step once written */
	char *typed;	     /* console: the name as typed, until looked up */
	struct auth_store_job *store_job; /* while the writer thread stores the account */
	bool checked_live;   /* the password proved right at the provider */
	bool live_check;     /* counted in auth->live_checks */
	struct fetch_verify *verify;
	struct event *reply_timer;

	/* argon2id runs in the offload threads; while a job runs, the request
	 * must stay alive (a cancel only marks it, and the job's end frees it). */
	bool job_running;
	bool cancelled;
	char *stored_hash;	/* the hash the verify job checks */
	int verify_result;	/* crypto_password_verify's answer */
	int hash_status;	/* 0 when NEW_HASH and NEW_SECRET were made */
	char new_hash[CRYPTO_HASH_MAX];
	unsigned char *new_secret;
	size_t new_secret_len;
	enum auth_result result;
	char message[256];
	auth_done_cb *callback;		   /* POP3 */
	auth_console_cb *console_callback; /* console and administrator */
	void *ctx;
	TAILQ_ENTRY(auth_request) entry;
};

TAILQ_HEAD(auth_request_list, auth_request);

struct auth {
	struct popgate *pg;
	struct auth_cache *cache; /* POP3 logins that succeeded lately */
	struct auth_request_list requests;
	unsigned live_checks; /* requests with live_check set */
};

/* ---- auth.c ------------------------------------------------------------------ */

/* Wipes and frees a secret string; *SECRET becomes NULL. */
void auth_wipe(char **secret);

/* Ends REQUEST at once, without an answer (cancelled, or answered). */
void auth_request_free(struct auth_request *request);

/* An internal error: the client is not at fault; its count is released. */
void auth_fail_internal(struct auth_request *request);

/* The password proved right (CHECKED_LIVE: by the provider, just now). */
void auth_succeed(struct auth_request *request, bool checked_live);

/* ---- auth_store.c ---------------------------------------------------------- */

/*
 * The provider confirmed a POP3 login: its password is hashed and sealed
 * (offload threads), then a first login's account and user are created, or
 * the account's credentials updated (the writer thread); the login succeeds,
 * or fails internally, once that committed.
 */
void auth_store_confirmed(struct auth_request *request);

/* The request of JOB is gone: the job still commits, and its completion
 * touches nothing else. */
void auth_store_job_detach(struct auth_store_job *job);

#endif
