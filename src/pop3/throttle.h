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

struct popgate;

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

/* Counts the attempt as a pending failure on both keys. 0, or -1 on a store
 * error (nothing counted). */
int throttle_count(struct popgate *pg, struct throttle_attempt *attempt);

/* The password proved right: the account's failures are forgotten and the
 * attempt's pending count on the address is released. */
void throttle_succeeded(struct popgate *pg, struct throttle_attempt *attempt);

/* The attempt ended through no fault of the client's credentials (an
 * internal error, a cap on live checks): its pending counts are released. */
void throttle_release(struct popgate *pg, struct throttle_attempt *attempt);

#endif
