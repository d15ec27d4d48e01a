/*
 * config.h — popgate's configuration: an INI file read with inih, every key
 * with a default (popgate.conf.example documents each one).
 *
 * Provider policy sections decide how popgate reaches a provider host that a
 * user names in the account name. The host comes from the user, so the policy
 * is what keeps popgate from becoming a way into the office network.
 */
#ifndef POPGATE_CONFIG_H
#define POPGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum provider_tls {
	PROVIDER_TLS_IMPLICIT, /* POP3S: TLS from the first byte (default, port 995) */
	PROVIDER_TLS_STARTTLS, /* plain connect, then STLS; refuse if not offered */
	PROVIDER_TLS_NONE,     /* plain text; only where the config says so */
};

/* How to reach one provider host (or a pattern "*.example.net"). */
struct provider_policy {
	char *pattern;	     /* "pop.gmx.net", "*.web.de"; "*" for the default */
	int port;	     /* default 995 (implicit), 110 (starttls, none) */
	enum provider_tls tls;
	char *ca_file;	     /* NULL: the system's CA store */
	bool verify;	     /* verify the certificate and host name (default yes) */
	bool allow_private;  /* allow loopback, private and link-local addresses */
	struct provider_policy *next;
};

/* The root zone's trust anchor as Debian's dns-root-data installs it. */
#define CONFIG_ROOT_TRUST_ANCHOR "/usr/share/dns/root.key"

/* The longest [spam] tag_subject_prefix (pipeline/subject_tag.h plans with it). */
#define CONFIG_TAG_SUBJECT_PREFIX_MAX 64

struct popgate_config {
	/* [server] */
	char *data_dir;		/* "data" */
	char *log_file;		/* "-" = stderr */
	char *log_level;	/* "info" */
	char *run_as_user;	/* "popgate"; used only when started as root */
	char *worker_user;	/* "popgate-worker": the workers' user, when started as root */
	char *hostname;		/* name in the certificate and trace header */
	char *nameservers;	/* "" or NULL: the system's (resolv.conf); else "IP[:PORT] ..." */
	char *dns_trust_anchor; /* DNSSEC trust anchor file (DS/DNSKEY); "": none, nothing
				   validated. Default CONFIG_ROOT_TRUST_ANCHOR when it exists */
	char *listen_address;	/* "0.0.0.0" */
	int pop3_port;		/* 1110 (STLS offered) */
	int pop3s_port;		/* 1995 (implicit TLS) */
	char *tls_cert;		/* "" = DATA/tls/cert.pem, made on first start */
	char *tls_key;		/* "" = DATA/tls/key.pem */
	bool allow_plaintext_auth; /* allow USER/PASS before STLS on pop3_port */
	int max_sessions;	/* 1000 */
	int max_sessions_per_ip;/* 100 */
	int login_timeout;	/* seconds of silence allowed before authentication, 60 */
	int login_deadline;	/* seconds from accept to a completed login, 120 */
	int max_login_checks;	/* 20 live login checks at providers at once */
	int max_login_checks_per_ip; /* 3 live login checks at once per client address */
	int login_check_timeout;/* 30 seconds a live login check may take in all */
	int idle_timeout;	/* seconds without a command after login, 600 */
	int command_timeout;	/* seconds a reply may stall in output, 300 */
	int max_line;		/* 512 bytes per command line incl. CRLF (RFC 2449: 255) */
	int max_bad_commands;	/* 20; then the session is closed */
	int login_fail_limit;	/* 10 failures per window per client address or account */
	int login_fail_window;	/* 900 seconds */
	int login_fail_delay_ms;/* 1000: delay before answering a failed login */

	/* [users] */
	char *pseudo_domain;	/* "pop3proxy.reddoxx" */

	/* [queue] */
	int delivered_keep_days;/* 7 */
	int release_check_seconds; /* 60: the fallback look for released messages (core/control.h) */
	long long max_message_size; /* 67108864 bytes */

	/* [fetch] */
	int fetch_timeout;	/* 120 seconds of silence from a provider */
	int fetch_retry_min;	/* 60 seconds: first back-off after a failure */
	int fetch_retry_max;	/* 3600 seconds: back-off ceiling */
	int max_fetches;	/* 50 fetches at once */
	int fetch_deadline;	/* 1800 seconds a whole fetch may take */
	int max_listed;		/* 10000 messages taken from one provider listing */
	int fetch_restart_spread; /* 300 seconds over which a restart spreads the fetches
				     of accounts whose last fetch ended cleanly */

	/* [pipeline] */
	int workers;		/* 0 = one per core */
	int worker_timeout;	/* 60 seconds per message before a worker is killed */

	/* [spam] */
	int quarantine_days;	/* 30: days quarantined mail is kept, then deleted */
	char *tag_subject_prefix; /* "[SPAM]": put before the Subject of tagged mail; "": none */
	char *rules_file;	/* NULL: the default content rules alone (filters/rules.h) */
	int dns_time_limit;	/* 5: seconds each message may wait for DNS answers, in all */
	char *dnsbl_zones;	/* "": DNS blocklists asked about the hand-off address */
	char *uribl_zones;	/* "": URI blocklists asked about the link domains */
	int fuzzy_min_count;	/* 5: distinct senders of one fingerprint that score */
	int fuzzy_window;	/* 86400: seconds fingerprints are counted, then expire */
	char *clamd_socket;	/* /var/run/clamav/clamd.ctl, or ADDRESS:PORT */
	int clamd_timeout;	/* 60 seconds a whole scan may take */
	int clamd_retry;	/* 60 seconds before a failed scan is tried again (doubling) */
	long long clamd_max_size;  /* 26214400 bytes: larger mail is not scanned */
	int clamd_max_connections; /* 10 scans at once */
	char *blocked_extensions; /* the attachments filter's (filters/attachments.h) */
	char *trusted_relays;	/* "": the provider's relays besides its own domain
				 * (filters/received.h) */

	/* [smtp] (smtp/server.c) */
	int smtp_port;		/* 10025 (25 is the standard port); 0: off */
	int smtp_submission_port; /* 10587 (587); AUTH after STARTTLS; 0: off */
	long long smtp_max_message_size; /* 52428800 bytes (SIZE) */
	int smtp_max_recipients; /* 100 per message (RFC 5321 4.5.3.1.8) */
	int smtp_max_sessions;	/* 200 per port */
	int smtp_max_sessions_per_client; /* 20 per port, per address (IPv6: /64) */
	int smtp_max_bad_commands; /* 10: at this many, 421 4.7.0 and the end */
	int smtp_timeout;	/* 300 seconds of silence (RFC 5321 4.5.3.2.7) */
	int smtp_session_deadline; /* 3600 seconds a whole session may take */
	int smtp_max_text_line;	/* 12300 bytes per line of a body or AUTH, CR LF included */
	/* [relay] (smtp/relay.h) */
	int relay_retry_min;	/* 300 seconds: the first wait after a temporary failure */
	int relay_retry_max;	/* 3600 seconds: the longest wait (it doubles up to this) */
	int relay_queue_lifetime; /* 432000 seconds (5 days); then pending recipients fail */
	int relay_max_connections; /* 20 outbound SMTP connections at once */
	int relay_max_per_destination; /* 2 connections at once to one destination */
	int relay_messages_per_connection; /* 50 messages over one connection, then QUIT */
	int relay_connect_timeout; /* 30 seconds per address to connect */
	int relay_timeout;	/* 300 seconds of silence from a remote server */
	int relay_mx_port;	/* 25: the port of MX hosts */
	bool relay_allow_private; /* deliver to MX hosts in private ranges (no) */
	int relay_mta_sts_port;	  /* 443: the port of mta-sts.DOMAIN (others for tests) */
	char *relay_ca_file;	  /* NULL: the system's CA store, for verified TLS */
	/* [web] (web/server.h): the HTTPS listener of the CISS sender page */
	int web_port;		/* 1443; 0: off */
	char *web_base_url;	/* "": https://HOSTNAME:PORT; the links in challenges */
	char *web_challenge_from; /* "": postmaster@PSEUDO_DOMAIN; From of challenges */
	int web_max_connections; /* 200 at once */
	int web_max_connections_per_address; /* 20 at once from one address (IPv6: /64) */
	int web_timeout;	/* 20 seconds of silence */
	int web_connection_deadline; /* 60 seconds a connection may live in all */
	int web_requests_per_minute; /* 60 per client address (a burst of as many) */
	int web_max_wrong_codes; /* 5 wrong codes, then the challenge's page is locked */

	/* [depot] (MailDepot: depot/depot.h; the daemon's archiver,
	 * pipeline/archiver.h) */
	bool depot_enabled;	       /* no: archive every message passing popgate (restart) */
	int depot_retention_days;      /* 3653: days an archived message is kept by default */
	int depot_checkpoint_interval; /* 3600 s between signed checkpoints; 0: none (restart) */
	int depot_batch;	       /* 256 messages at most per ingest batch (restart) */
	int depot_retry;	       /* 60 s before a failed archive is tried again (doubling) */

	/* [providers] */
	char **provider_allow;	/* NULL/empty: any host; else host names or "*.suffix" */
	size_t provider_allow_count;
	struct provider_policy *policies; /* [provider HOST] sections, in file order */
	struct provider_policy default_policy;
};

/* Fills CFG with the defaults. */
void config_defaults(struct popgate_config *cfg);

/*
 * Reads PATH over the defaults and checks it. CFG holds config_defaults() or is
 * all zero (then the defaults are filled in first). Relative paths are made
 * absolute against PATH's folder; empty tls_cert/tls_key become
 * DATA/tls/cert.pem and DATA/tls/key.pem. Keys a [provider HOST] section leaves
 * out come from [provider *]. Returns 0, or -1 with a message that names the
 * file, the line and the problem in ERR ("popgate.conf:12: unknown key 'foo'
 * in [server]"); either way the caller ends with config_free(CFG).
 */
int config_load(struct popgate_config *cfg, const char *path, char *err, size_t errlen);

/*
 * For a reload (SIGHUP): sets in FRESH, just loaded, every key that only a
 * restart can change (listen address and ports, data_dir, user, hostname,
 * nameservers, dns_trust_anchor, tls_cert, tls_key, workers, worker_timeout)
 * back to its value in RUNNING, and writes the names of those that differed,
 * "[server] pop3_port, [server] user", into NAMES (cut to NAMES_LEN).
 * Returns how many differed.
 */
size_t config_keep_restart_keys(struct popgate_config *fresh, const struct popgate_config *running,
				char *names, size_t names_len);

/* Frees everything CFG holds and zeroes it; NULL is fine. */
void config_free(struct popgate_config *cfg);

/*
 * Prints every effective key as INI that config_load reads back (for
 * `config show`). The configuration holds no secret. 0, or -1 on a write error.
 */
int config_write_summary(const struct popgate_config *cfg, FILE *out);

/* The keys of SECTION (a plain section of the key table) with their values,
 * as lines "KEY VALUE\n" ("KEY \n" for an empty value): what the filters
 * get of [spam] (filters/filter.h, filter_settings_set). Allocated. */
char *config_section_text(const struct popgate_config *cfg, const char *section);

/* The policy for HOST: the first [provider] section that matches, else the
 * default. Never NULL. */
const struct provider_policy *config_policy_for_host(const struct popgate_config *cfg,
						     const char *host);

/* True when HOST passes the allow-list (always true without one) and is not
 * an ambiguous IPv4 literal (policy_host_refusal; the reason is logged). */
bool config_host_allowed(const struct popgate_config *cfg, const char *host);

/* True when PATTERN ("host" or "*.suffix", case-insensitive) matches HOST. */
bool config_pattern_match(const char *pattern, const char *host);

#endif
