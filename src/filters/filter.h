/*
 * filter.h — the filters a worker runs over a message, and the profile that
 * says which ones run and what their scores lead to.
 *
 * A filter is one file in src/filters/ and one row of the table in filter.c:
 * a name (what profiles and results call it), an init run once per worker
 * before it confines itself (to load what it needs; NULL if nothing), and a
 * run that looks at one message and fills in one result. Adding a filter is
 * a new file and a new row, nothing else.
 *
 * A filter profile is the owner's choice of filters (in the order they run,
 * each with a weight for its score) and of thresholds. It travels with each
 * job as a snapshot (pipeline/proto.h), so a verdict is always judged by the
 * profile the job was sent with, and the main process combines the results
 * through it (pipeline/verdict.h).
 *
 * The structs here need nothing but libc, so the protocol code (which the
 * fuzz targets link almost alone) can use them.
 */
#ifndef POPGATE_FILTERS_FILTER_H
#define POPGATE_FILTERS_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A filter's name: 1 to FILTER_NAME_MAX of [a-z0-9_-]. */
#define FILTER_NAME_MAX 32
/* Filters one profile may run. */
#define FILTER_PROFILE_MAX 16
/* The largest score, weight or threshold, either sign, in points. */
#define FILTER_SCORE_MAX 1000000.0

struct filter_setting {
	char name[FILTER_NAME_MAX + 1];
	/* The filter's score counts WEIGHT times; 0 runs it for its headers
	 * and reasons alone. */
	double weight;
};

struct filter_profile {
	/* The filters that run, in this order; a filter not listed does not. */
	struct filter_setting filters[FILTER_PROFILE_MAX];
	size_t filter_count;
	/* The combined score at which mail is tagged (at or above), and
	 * quarantined (at or above; checked first). */
	double tag_at;
	double quarantine_at;
	/* Mail from a sender the owner is not known to correspond with is
	 * challenged (when it is not quarantined). */
	bool challenge_unknown_senders;
	/* All mail is held in processing, whatever it scores. */
	bool hold;
};

/*
 * The built-in profile, for a job whose owner's stored profile cannot be
 * read (store/profile.h holds the profiles, 'default' among them): the trace
 * and address filters, weight 1 each, tag_at 5, quarantine_at 10, no
 * challenge, no hold. Neither filter scores, so such mail is delivered.
 */
const struct filter_profile *filter_profile_default(void);

struct pipeline_job;
struct pipeline_result;
struct pipeline_verdict;
struct headers_parser;
struct filter_dns;
struct filter_mime;
struct filter_auth;

/* Bytes of a body kept in memory for the content filters (MIME, Bayes);
 * the rest of a larger message is read, counted and not looked at. */
#define FILTER_BODY_MAX (4UL * 1024 * 1024)

/*
 * The hand-off: the host that delivered the message to the provider (the
 * first Received hop, walking down from the top, that was not one of the
 * provider's own), found before the filters run (filters/received.h). It is
 * what the DNS blocklists and SPF judge; the provider's relays are not the
 * sender.
 */
struct filter_handoff {
	bool found;
	char address[64];  /* the IPv4 or IPv6 address, as text */
	char helo[256];	   /* the name it gave in HELO/EHLO, or "" */
	char reverse[256]; /* the name the provider found for it, or "" */
};

/*
 * A fuzzy fingerprint of a message's normalised body text (filters/fuzzy.h):
 * FILTER_FINGERPRINT_HASHES MinHash values over its word shingles, made by
 * the worker and judged by the main process against the ones it stored.
 */
#define FILTER_FINGERPRINT_HASHES 64

struct filter_fingerprint {
	bool present; /* false: none (too little text, or not asked for) */
	uint32_t minhash[FILTER_FINGERPRINT_HASHES];
};

/* What a filter sees of a message: the job, and what reading the body found. */
struct filter_message {
	const struct pipeline_job *job;
	const char *hostname;		/* the gateway's name, for trace headers */
	uint64_t size;			/* bytes in the body */
	struct headers_parser *headers; /* fed the body's header block */
	const char *body;		/* its first body_len bytes (FILTER_BODY_MAX at most) */
	size_t body_len;
	struct filter_dns *dns; /* answers its DNS questions (filters/dns.h), or NULL */
	struct filter_handoff handoff;
	/* The message's SPF, DKIM and DMARC results, computed by the first of
	 * the spf, dkim and dmarc filters that needs them and shared by all
	 * three (filters/auth.h); the worker gives each job a zeroed one. */
	struct filter_auth *auth;
	/* Its MIME, parsed once for the content filters (filters/message.h);
	 * NULL: each asks for a parse of its own. */
	struct filter_mime *mime;
};

/*
 * One filter. INIT (NULL if none) runs once in each worker before it is
 * confined: 0, or -1 with ERR set, which stops the worker. A filter without
 * RUN needs the store or the network and is judged by the main process
 * instead (the sender lists over the worker's verdict: filters/senders.h;
 * viruses by clamd before the worker runs: filters/clamav.h); the worker
 * sends no result for it; it may have COLLECT, which the worker runs in its
 * place to put into the verdict what the main process needs from the body
 * (the fuzzy filter's fingerprint) and which cannot fail. RUN judges
 * MESSAGE: it fills RESULT (score, reason, header lines; the name is set
 * already) and may fill the verdict's sender and recipients (the address
 * filter does). 0, or -1 with RESULT->reason set when it cannot judge the
 * message: the result is then sent as failed and the other filters still
 * run.
 */
struct filter {
	const char *name;
	int (*init)(char *err, size_t errlen);
	int (*run)(const struct filter_message *message, struct pipeline_result *result,
		   struct pipeline_verdict *verdict);
	void (*collect)(const struct filter_message *message, struct pipeline_verdict *verdict);
};

/* The filter called NAME, or NULL. */
const struct filter *filter_find(const char *name);

/* The INDEXth filter of the table (for listing them), or NULL past its end. */
const struct filter *filter_at(size_t index);

/* Runs every filter's init. 0, or -1 with ERR naming the filter. */
int filter_init_all(char *err, size_t errlen);

/*
 * The filters' settings: the [spam] section of the configuration, handed to
 * each worker in its setup frame (pipeline/proto.h) and to popgatectl
 * filter check by its own configuration. TEXT is lines "KEY VALUE\n"
 * (config_section_text); it replaces what was set before (NULL: none).
 */
void filter_settings_set(const char *text);

/* The value of setting KEY (without the key and its space), or NULL when it
 * is not set; an empty value is "". Valid until the next filter_settings_set. */
const char *filter_setting(const char *key);

/* Appends LINES (whole header lines, CRLF-terminated) to RESULT's headers. */
void filter_result_add_headers(struct pipeline_result *result, const char *lines);

/* The filters of the table (one file each). */
extern const struct filter filter_trace;
extern const struct filter filter_address;
extern const struct filter filter_senders;
extern const struct filter filter_bayes;
extern const struct filter filter_spf;
extern const struct filter filter_dkim;
extern const struct filter filter_dmarc;
extern const struct filter filter_dnsbl;
extern const struct filter filter_uribl;
extern const struct filter filter_fuzzy;
extern const struct filter filter_clamav;
extern const struct filter filter_attachments;
extern const struct filter filter_rules;

#endif
