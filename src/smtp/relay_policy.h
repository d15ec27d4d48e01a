/*
 * relay_policy.h — the one decision whether popgate accepts an SMTP
 * recipient (RCPT TO), so that it is never an open relay (SPEC S1, S2).
 *
 * Who may send where:
 * - A client inside a Local Network (store/network.h) or authenticated on
 *   the submission port may send to any recipient whose path is valid RFC
 *   5321 syntax (S1). A source route ("<@hop1,@hop2:user@domain>") is
 *   accepted from these clients and the route ignored (RFC 5321 appendix C).
 * - Any other client may send only to a LOCAL address, written plainly:
 *   "<local-part@domain>" with a dot-atom local part free of '%' and '!' and
 *   a domain of plain DNS labels (core/address.h's address_valid). Local
 *   means an address the administrator assigned to a popgate user
 *   (store/address.h: "popgatectl address add"). Mail accepted for a local
 *   address from outside is then delivered like any other (by its MX or a
 *   transport rule), which is why everything that a later hop could read as
 *   a route to elsewhere is refused from outside even when the address would
 *   otherwise be local: the percent hack ("u%foreign@local"), a bang path
 *   ("foreign!u@local"), a source route, a quoted local part, an address
 *   literal ("u@[192.0.2.1]"), a non-ASCII address.
 * - The domain is compared without case: it is lower-cased before IS_LOCAL
 *   is asked; the local part keeps its case, and IS_LOCAL must compare it
 *   without case too (store_address_owner does), so "ALICE@Example.ORG"
 *   is the same local address as "alice@example.org", and an upper-case
 *   spelling of a foreign address stays foreign.
 *
 * Refused for everyone, as bad syntax (RELAY_BAD_ADDRESS, 501 5.1.3): a
 * path without its angle brackets or with anything after '>', the null path
 * "<>" (a recipient cannot be empty; only a sender can), an unquoted '@' in
 * the local part ("<a@b@c>"), an empty label or a trailing dot in the
 * domain ("<u@example.org.>": RFC 5321 has no such domain), an address
 * literal that is neither IPv4 nor "IPv6:", a path longer than 256 octets,
 * a local part over 64 or a label over 63, control characters and
 * malformed UTF-8.
 *
 * "<postmaster>" without a domain (RFC 5321 4.5.1): popgate is a gateway
 * with no mailbox of its own, and a path without a domain cannot be
 * delivered anywhere, so it is refused for everyone with RELAY_DENIED and a
 * reason that says to write postmaster@DOMAIN ("<postmaster@local-domain>"
 * is accepted from outside like any other local address, when assigned).
 *
 * Each recipient of a transaction is decided on its own: one refused does
 * not change the others.
 *
 * For the SMTP server: hand over the path alone (the "<...>" after "RCPT
 * TO:", without the spaces before it and the ESMTP parameters after it);
 * store and relay relay_path_mailbox's form of an accepted path; an IS_LOCAL
 * whose look-up failed (a database error) answers false and should say so
 * through CTX, so that the server replies 451 4.3.0 rather than this
 * permanent 554. UTF-8 is accepted from inside as RFC 6531 allows it; that
 * the transaction asked for SMTPUTF8 is the server's check.
 */
#ifndef POPGATE_SMTP_RELAY_POLICY_H
#define POPGATE_SMTP_RELAY_POLICY_H

#include <stdbool.h>
#include <stddef.h>

/* The longest RFC 5321 path, with its angle brackets (4.5.3.1.3). */
#define RELAY_PATH_MAX 256

struct relay_client {
	bool in_local_network; /* the client's address is in a Local Network (S2) */
	bool authenticated;    /* AUTH succeeded on the submission port */
};

enum relay_decision {
	RELAY_ACCEPT,	   /* 250 2.1.5 */
	RELAY_DENIED,	   /* 554 5.7.1 relaying denied */
	RELAY_BAD_ADDRESS, /* 501 5.1.3 bad recipient address syntax */
};

/*
 * IS_LOCAL answers whether ADDRESS ("local-part@domain", the domain
 * lower-cased, already checked by address_valid) belongs to a popgate user
 * (store_address_owner, which compares without case). CTX is the caller's.
 */
typedef bool relay_is_local_fn(const char *address, void *ctx);

/*
 * Decides recipient PATH, the RCPT TO argument as the client sent it with
 * its angle brackets ("<a@b.de>", "<@hop:a@b.de>", "<\"a b\"@b.de>") and
 * without the ESMTP parameters after it. IS_LOCAL is asked only for a
 * client outside every Local Network and not authenticated, and only for a
 * plain address. REASON (REASON_LEN bytes; may be NULL with 0) gets a short
 * sentence for the log and the reply text, free of the client's bytes.
 */
enum relay_decision relay_policy_check_recipient(const struct relay_client *client,
						 const char *path, relay_is_local_fn *is_local,
						 void *ctx, char *reason, size_t reason_len);

/*
 * The mailbox of a PATH that relay_policy_check_recipient accepted, as it
 * should be stored in the envelope and given to the next hop: the source
 * route dropped, the domain lower-cased, the local part as sent (quoted if
 * it was). Into OUT (SIZE bytes; RELAY_PATH_MAX is enough). 0, or -1 for a
 * path that is not valid syntax or does not fit.
 */
int relay_path_mailbox(const char *path, char *out, size_t size);

#endif
