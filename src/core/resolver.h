/*
 * resolver.h — popgate's DNS resolver: libunbound, asynchronous in the
 * daemon's libevent loop, for the questions mail asks: a host's addresses
 * (A and AAAA, the provider a fetch connects to, the relay's next hop), MX
 * (the SMTP relay's delivery), TXT (SPF, DKIM and DMARC in the Spamfinder
 * filters), PTR (the name of an SMTP client's address), TLSA (DANE for the
 * relay, RFC 7672).
 *
 * It forwards to the name servers of [server] nameservers ("IP[:PORT]"
 * items), or to those of /etc/resolv.conf when that is empty, and answers
 * the names of /etc/hosts itself either way. Answers are cached as long as
 * their TTL says.
 *
 * DNSSEC: with a trust anchor ([server] dns_trust_anchor, set by
 * resolver_set_trust_anchor) libunbound validates every answer below it:
 * answer.secure says an answer (records, or their absence) was proved by
 * signatures; answer.bogus that validation failed (a signature wrong,
 * expired, or missing where the chain says one must be), which also makes
 * the status RESOLVER_FAILED, as a validating resolver's SERVFAIL. Without
 * a trust anchor nothing is secure and nothing is bogus. Validation through
 * forwarders needs forwarders that pass DNSSEC records on (libunbound asks
 * with the DO bit once a trust anchor is set): one that strips them makes
 * every answer under the anchor bogus.
 *
 * Owns: the libunbound context, its thread (started at the first lookup)
 * and the lookups in flight. Must never: block the loop, call a callback
 * before the call that started its lookup has returned, or call one for a
 * cancelled lookup.
 *
 * SECURITY: answers come from the network and are untrusted. Records are
 * read by core/rdata.c (bounded, names escaped); an address is only an
 * address: the caller applies its policy (core/policy.c) to each one.
 */
#ifndef POPGATE_RESOLVER_H
#define POPGATE_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

/* How long a lookup may take before it ends as RESOLVER_TIMEOUT. */
#define RESOLVER_TIMEOUT_MS 15000

struct resolver;
struct resolver_lookup;

/* Best first: of two answers for one host, the better status counts. */
enum resolver_status {
	RESOLVER_OK,	    /* answered: the records, maybe none (the name has no such record) */
	RESOLVER_NOT_FOUND, /* the name does not exist (NXDOMAIN) */
	RESOLVER_FAILED,    /* no usable answer: server failure, refusal, bad records */
	RESOLVER_TIMEOUT,   /* no answer within the resolver's timeout */
};

/* The record types one can ask for, by their DNS numbers. */
enum resolver_type {
	RESOLVER_A = 1,
	RESOLVER_PTR = 12,
	RESOLVER_MX = 15,
	RESOLVER_TXT = 16,
	RESOLVER_AAAA = 28,
	RESOLVER_TLSA = 52,
};

struct resolver_address {
	struct sockaddr_storage addr; /* sockaddr_in or sockaddr_in6, with the port asked for */
	socklen_t len;
};

/* One character-string of a TXT record. */
struct resolver_txt_string {
	char *data; /* its bytes and a NUL after them; a NUL may be among them */
	size_t length;
};

/* A TLSA record (RFC 6698): the values as published, unchecked. */
struct resolver_tlsa {
	uint8_t usage;	  /* 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE */
	uint8_t selector; /* 0 the certificate, 1 its public key */
	uint8_t matching; /* 0 exact, 1 SHA-256, 2 SHA-512 */
	uint8_t *data;	  /* the association data */
	size_t length;
};

/* One record of an answer; the fields of its type are set. */
struct resolver_record {
	struct resolver_address address;     /* A, AAAA (port 0) */
	uint16_t preference;		     /* MX */
	char *name;			     /* MX: the exchange ("." for a null MX); PTR */
	struct resolver_txt_string *strings; /* TXT: each string, in order */
	size_t string_count;
	char *text; /* TXT: the strings joined, as SPF and DKIM read them */
	size_t text_length;
	struct resolver_tlsa *tlsa; /* TLSA: its fields (one) */
};

struct resolver_answer {
	enum resolver_status status;
	enum resolver_type type;
	const char *name;		 /* the name asked for */
	struct resolver_record *records; /* MX sorted by preference, lowest first */
	size_t count;
	bool secure; /* DNSSEC-validated: the records, or that there are none */
	bool bogus;  /* DNSSEC validation failed (status RESOLVER_FAILED) */
};

/* ANSWER and all it points to live until the callback returns. */
typedef void resolver_answer_cb(const struct resolver_answer *answer, void *ctx);
/* STATUS is RESOLVER_OK when any address was found; ADDRESSES (IPv4 first,
 * then IPv6) live until the callback returns. */
typedef void resolver_addresses_cb(enum resolver_status status,
				   const struct resolver_address *addresses, size_t count,
				   void *ctx);

/* A resolver on BASE for NAMESERVERS ("IP[:PORT]" items separated by spaces
 * or commas; NULL or "" for those of /etc/resolv.conf). NULL with a message
 * in ERR. */
struct resolver *resolver_new(struct event_base *base, const char *nameservers, char *err,
			      size_t errlen);

/* Validates answers from now on with the DS or DNSKEY records in FILE (as
 * unbound's trust-anchor-file reads them; /usr/share/dns/root.key for the
 * root). Before the first lookup only. 0, or -1 with a message in ERR (a
 * file that cannot be read, or records libunbound refuses). */
int resolver_set_trust_anchor(struct resolver *resolver, const char *file, char *err,
			      size_t errlen);

/* Frees *RESOLVER_P (NULL is fine) and sets it to NULL. Lookups still in
 * flight are dropped without their callbacks; their handles are then gone.
 * Never from inside a callback. */
void resolver_free(struct resolver **resolver_p);

/* Lookups started from now on end as RESOLVER_TIMEOUT after MILLISECONDS
 * (RESOLVER_TIMEOUT_MS unless set). */
void resolver_set_timeout(struct resolver *resolver, int milliseconds);

/*
 * Looks up HOST's addresses (A and AAAA at once) and calls CALLBACK with
 * them, each with PORT; a numeric HOST (IPv4 or IPv6) is its own address,
 * without a query. The callback always runs later, from the loop, once; the
 * handle returned is valid until then, and resolver_cancel stops it.
 */
struct resolver_lookup *resolver_lookup_addresses(struct resolver *resolver, const char *host,
						  int port, resolver_addresses_cb *callback,
						  void *ctx);

/* Looks up NAME's records of TYPE and calls CALLBACK with the answer, as
 * resolver_lookup_addresses does. */
struct resolver_lookup *resolver_lookup(struct resolver *resolver, const char *name,
					enum resolver_type type, resolver_answer_cb *callback,
					void *ctx);

/* Stops the lookup *LOOKUP_P (NULL is fine) and sets it to NULL: its
 * callback will not run. Not for a lookup whose callback has run. */
void resolver_cancel(struct resolver_lookup **lookup_p);

/* Writes the name a PTR lookup of ADDR asks for (4.3.2.1.in-addr.arpa, or
 * the nibbles under ip6.arpa) to OUT. 0, or -1 for another family or when
 * SIZE is too small (73 is enough). */
int resolver_reverse_name(const struct sockaddr *addr, char *out, size_t size);

/* A few words for STATUS, for log lines ("no such name"). */
const char *resolver_status_text(enum resolver_status status);

#endif
