/*
 * throttle.h — the one failed-login throttle (G6), of POP3 and console
 * logins alike: the keys an attempt is counted under (the client address, an
 * IPv6 client by its /64; the account or user name, case aside) and the
 * counters in the store (table login_failure), which survive a restart and
 * are seen by the daemon and popgatectl alike.
 *
 * An attempt is counted when its check starts, as a pending failure on both
 * keys: so at most login_fail_limit checks per key can be in flight or failed
 * within a window, however many clients try at once. The count becomes a
 * failure by staying (wrong password, a check that failed, a policy refusal,
 * a client that went away); a proven password releases it.
 */
#ifndef POPGATE_POP3_THROTTLE_H
#define POPGATE_POP3_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct popgate;
struct store;

/* Room for a key: the prefix and an account name (login and host). */
#define THROTTLE_KEY_MAX 640

/*
 * The counter key of a client ADDRESS (as inet_ntop writes it):
 * "pop3-address:192.0.2.1"; an IPv6 address counts by its /64 prefix
 * ("pop3-address:2001:db8:1:2::/64"), since one host usually holds a whole
 * /64; an IPv4-mapped IPv6 address is its IPv4 address. Text that is no
 * address is used as it is. The prefix keeps these apart from the console's
 * keys ("user:NAME", "admin", "address:IP").
 */
void throttle_address_key(char *key, size_t size, const char *address);

/* The counter key of account NAME ("login@host"): "pop3-account:" and the
 * name with ASCII letters in lower case, so ME@Host and me@host are one. */
void throttle_account_key(char *key, size_t size, const char *name);

/* One login attempt's standing with the throttle. */
struct throttle_attempt {
	char address_key[THROTTLE_KEY_MAX];
	char account_key[THROTTLE_KEY_MAX];
	int account_failures; /* read by throttle_check */
	bool counted;	      /* a pending failure is held on both keys */
};

/* Fills ATTEMPT's keys for a POP3 login of account NAME from client ADDRESS. */
void throttle_attempt_init(struct throttle_attempt *attempt, const char *address, const char *name);

/* Fills ATTEMPT's keys for a console login: NAME_KEY ("user:NAME" folded, or
 * "admin") and "address:IP" of client ADDRESS (its /64 for IPv6), or no
 * address key when ADDRESS is NULL (the command line). */
void throttle_attempt_init_console(struct throttle_attempt *attempt, const char *address,
				   const char *name_key);

/* 1 when neither key has reached login_fail_limit within the window, 0 when
 * one has (the attempt must be refused unchecked), -1 on a store error. */
int throttle_check(struct popgate *pg, struct throttle_attempt *attempt);

/*
 * In the writer thread (or any caller with the store to itself): counts
 * ATTEMPT as a pending failure on both keys, unless one has reached LIMIT
 * failures within WINDOW (checked again here, in the same transaction: so
 * attempts that passed throttle_check at once still stay within the limit).
 * 1 counted (ATTEMPT->counted set), 0 refused, -1 on a store error (the
 * caller's transaction must be undone).
 */
int throttle_store_count(struct store *store, struct throttle_attempt *attempt, int64_t window,
			 int limit, int64_t now);

/* The store part of throttle_succeeded and throttle_release, likewise.
 * 0, or -1 on a store error. */
int throttle_store_succeeded(struct store *store, struct throttle_attempt *attempt);
int throttle_store_release(struct store *store, struct throttle_attempt *attempt);

/* RESULT: 1 counted, 0 refused (a key reached the limit meanwhile), -1 a
 * store error (nothing counted). */
typedef void throttle_count_cb(int result, void *ctx);

struct throttle_count;

/*
 * Counts ATTEMPT (throttle_store_count) in the writer thread; CALLBACK
 * follows in the loop once that committed, never inside this call, with
 * ATTEMPT->counted set if it was counted. ATTEMPT must stay until then, or
 * be forgotten. NULL if the writer refused the job (nothing counted, no
 * callback).
 */
struct throttle_count *throttle_count_start(struct popgate *pg, struct throttle_attempt *attempt,
					    throttle_count_cb *callback, void *ctx);

/* The owner of a started count goes away: CALLBACK is not called and the
 * attempt not touched; the count still commits and stays a failure (a client
 * that left). NULL is fine; sets *COUNT to NULL. */
void throttle_count_forget(struct throttle_count **count);

/*
 * The password proved right: the account's failures are forgotten and the
 * attempt's pending count on the address is released, by the writer thread;
 * CALLBACK follows in the loop once that committed, so that the next attempt
 * is checked against the counts without them. NULL when there was nothing
 * to write (or the writer refused it): no callback then, go on at once. The
 * handle is forgotten like a count's.
 */
struct throttle_count *throttle_succeeded(struct popgate *pg, struct throttle_attempt *attempt,
					  throttle_count_cb *callback, void *ctx);

/* The attempt ended through no fault of the client's credentials (an
 * internal error, a cap on live checks): its pending counts are released,
 * with CALLBACK and the handle as throttle_succeeded's. */
struct throttle_count *throttle_release(struct popgate *pg, struct throttle_attempt *attempt,
					throttle_count_cb *callback, void *ctx);

#endif
