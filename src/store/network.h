/*
 * network.h — the Local Networks (SPEC S2): the client networks whose SMTP
 * clients may relay without authentication. Managed with "popgatectl
 * network add|del|list"; the daemon holds them loaded (struct
 * local_networks) and loads them again when popgatectl tells it of a change.
 *
 * A fresh store holds loopback (127.0.0.0/8) and loopback6 (::1/128), so
 * out of the box only the machine itself may relay. Functions that change
 * something follow store/user.h: they check first and write in one
 * transaction, a refusal writes nothing and puts a sentence into ERR.
 */
#ifndef POPGATE_STORE_NETWORK_H
#define POPGATE_STORE_NETWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/cidr.h"
#include "store/db.h"

/* Longest network name. */
#define STORE_NETWORK_NAME_MAX 64

/* The shortest prefixes a Local Network may have: the widest private
 * ranges, 10.0.0.0/8 and fc00::/7 (RFC 1918, RFC 4193). */
#define STORE_NETWORK_WIDEST_IPV4 8u
#define STORE_NETWORK_WIDEST_IPV6 7u

struct store_network {
	char *name;
	char *cidr;	    /* as stored: canonical (cidr_format) for rows added by popgatectl */
	int64_t created_at; /* 0 for the seeded loopback rows */
};

/* True if NAME is 1..STORE_NETWORK_NAME_MAX characters of [A-Za-z0-9._-]. */
bool store_network_name_valid(const char *name);

/*
 * TEXT as a Local Network into *NET: core/cidr.h's cidr_parse, and not wider
 * than STORE_NETWORK_WIDEST_IPV4 or _IPV6. 0, or -1 with a sentence in ERR
 * (*NET zeroed).
 */
int store_network_parse(const char *text, struct cidr *net, char *err, size_t errlen);

/* All Local Networks by name: *LIST_R (allocated, free with
 * store_network_list_free). 0, or -1 with ERR. */
int store_network_list(struct store *store, struct store_network **list_r, size_t *count_r,
		       char *err, size_t errlen);
void store_network_list_free(struct store_network **list, size_t count);

/*
 * Adds Local Network NAME for CIDR_TEXT (core/cidr.h's cidr_parse), stored
 * in canonical form, which is also written into CANONICAL (CANONICAL_LEN
 * bytes, CIDR_TEXT_MAX is enough; may be NULL). Refused for an invalid name,
 * a name already used (compared without case), an invalid network (ERR
 * holds cidr_parse's sentence), a network wider than
 * STORE_NETWORK_WIDEST_IPV4 or _IPV6 (0.0.0.0/0 would be an open relay), or
 * a network already there under another name. 0/-1.
 */
int store_network_add(struct store *store, const char *name, const char *cidr_text, char *canonical,
		      size_t canonical_len, char *err, size_t errlen);

/* Deletes Local Network NAME (compared without case). 1 deleted, 0 there is
 * none (ERR says so), -1 error (ERR). */
int store_network_delete(struct store *store, const char *name, char *err, size_t errlen);

/* The loaded Local Networks, for the daemon's SMTP server. */
struct local_networks;

/*
 * Reads every Local Network from STORE. A row that store_network_add would
 * refuse (written by hand or by a future version: a text that does not
 * parse, a network too wide) is skipped with a warning in the log and never
 * matches. NULL on a database error (logged): the caller
 * keeps the set it had. Free with local_networks_free.
 */
struct local_networks *local_networks_load(struct store *store);

/* True if ADDR (a client's peer address; IPv4-mapped IPv6 counts as IPv4)
 * lies in one of NETWORKS. NULL NETWORKS or ADDR: false. */
bool local_networks_contains(const struct local_networks *networks, const struct sockaddr *addr);

/* How many networks NETWORKS holds (the rows that parsed); 0 for NULL. */
size_t local_networks_count(const struct local_networks *networks);

/* Frees *NETWORKS and sets it to NULL; NULL is fine. */
void local_networks_free(struct local_networks **networks);

#endif
