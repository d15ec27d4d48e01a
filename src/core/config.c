/*
 * config.c — the INI core: the key table of the plain sections and their
 * defaults; reads popgate.conf (inih) over the defaults, line by line, sets
 * each key of a plain section through the table (core/config_key.c checks
 * the value), hands "[TYPE NAME]" sections to core/config_section.c (which
 * also answers provider-policy questions), checks what needs the whole file,
 * and keeps restart-only keys on a reload. `config show` is
 * core/config_show.c.
 *
 * Owns: every string and list hung on struct popgate_config (config_free
 * releases them). Relative paths are made absolute against the folder of the
 * configuration file, so the daemon does not depend on its working folder.
 * Must never: accept a key, section or value it does not understand — a typo
 * in a security setting must stop the start, naming the file and line — or
 * print anything secret in the summary.
 * SECURITY: the file is trusted (it is the administrator's); the provider host
 * names that config_section.c's config_pattern_match compares come from users.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "core/address.h"
#include "core/config.h"
#include "core/config_key.h"
#include "core/config_section.h"
#include "core/util.h"
#include "depot/depot.h"
#include "filters/clamd.h"
#include "filters/attachments.h"

#define CONFIG_FIELD(field) offsetof(struct popgate_config, field)

/* Grouped by section, in the order config_write_summary prints them. */
const struct config_key config_keys[] = {
	{"server", "data_dir", CONFIG_PATH, CONFIG_FIELD(data_dir), 0, 0, NULL},
	{"server", "log_file", CONFIG_LOG_FILE, CONFIG_FIELD(log_file), 0, 0, NULL},
	{"server", "log_level", CONFIG_LEVEL, CONFIG_FIELD(log_level), 0, 0, NULL},
	{"server", "user", CONFIG_TEXT, CONFIG_FIELD(run_as_user), 0, 0, NULL},
	{"server", "worker_user", CONFIG_TEXT, CONFIG_FIELD(worker_user), 0, 0, NULL},
	{"server", "hostname", CONFIG_HOST, CONFIG_FIELD(hostname), 0, 0, NULL},
	{"server", "nameservers", CONFIG_NAMESERVERS, CONFIG_FIELD(nameservers), 0, 0, NULL},
	{"server", "dns_trust_anchor", CONFIG_OPT_PATH, CONFIG_FIELD(dns_trust_anchor), 0, 0, NULL},
	{"server", "listen_address", CONFIG_ADDRESS, CONFIG_FIELD(listen_address), 0, 0, NULL},
	{"server", "pop3_port", CONFIG_INT, CONFIG_FIELD(pop3_port), 1, 65535, NULL},
	{"server", "pop3s_port", CONFIG_INT, CONFIG_FIELD(pop3s_port), 1, 65535, NULL},
	{"server", "tls_cert", CONFIG_OPT_PATH, CONFIG_FIELD(tls_cert), 0, 0, NULL},
	{"server", "tls_key", CONFIG_OPT_PATH, CONFIG_FIELD(tls_key), 0, 0, NULL},
	{"server", "allow_plaintext_auth", CONFIG_BOOL, CONFIG_FIELD(allow_plaintext_auth), 0, 0, NULL},
	{"server", "max_sessions", CONFIG_INT, CONFIG_FIELD(max_sessions), 1, 1000000, NULL},
	{"server", "max_sessions_per_ip", CONFIG_INT, CONFIG_FIELD(max_sessions_per_ip), 1,
	 1000000, NULL},
	{"server", "login_timeout", CONFIG_INT, CONFIG_FIELD(login_timeout), 1, 86400, NULL},
	{"server", "login_deadline", CONFIG_INT, CONFIG_FIELD(login_deadline), 1, 86400, NULL},
	{"server", "max_login_checks", CONFIG_INT, CONFIG_FIELD(max_login_checks), 1, 100000, NULL},
	{"server", "max_login_checks_per_ip", CONFIG_INT, CONFIG_FIELD(max_login_checks_per_ip), 1,
	 100000, NULL},
	{"server", "login_check_timeout", CONFIG_INT, CONFIG_FIELD(login_check_timeout), 1, 3600, NULL},
	{"server", "idle_timeout", CONFIG_INT, CONFIG_FIELD(idle_timeout), 1, 86400, NULL},
	{"server", "command_timeout", CONFIG_INT, CONFIG_FIELD(command_timeout), 1, 86400, NULL},
	/* RFC 2449 lets a client send 255 octets; less would break honest clients. */
	{"server", "max_line", CONFIG_INT, CONFIG_FIELD(max_line), 255, 65536, NULL},
	{"server", "max_bad_commands", CONFIG_INT, CONFIG_FIELD(max_bad_commands), 1, 10000, NULL},
	{"server", "login_fail_limit", CONFIG_INT, CONFIG_FIELD(login_fail_limit), 1, 1000000, NULL},
	{"server", "login_fail_window", CONFIG_INT, CONFIG_FIELD(login_fail_window), 1, 604800, NULL},
	{"server", "login_fail_delay_ms", CONFIG_INT, CONFIG_FIELD(login_fail_delay_ms), 0, 60000, NULL},
	{"users", "pseudo_domain", CONFIG_HOST, CONFIG_FIELD(pseudo_domain), 0, 0, NULL},
	{"queue", "delivered_keep_days", CONFIG_INT, CONFIG_FIELD(delivered_keep_days), 0, 3650, NULL},
	{"queue", "release_check_seconds", CONFIG_INT, CONFIG_FIELD(release_check_seconds), 1, 3600, NULL},
	{"queue", "max_message_size", CONFIG_LLONG, CONFIG_FIELD(max_message_size), 1024,
	 4294967296LL, NULL},
	{"fetch", "timeout", CONFIG_INT, CONFIG_FIELD(fetch_timeout), 1, 3600, NULL},
	{"fetch", "retry_min", CONFIG_INT, CONFIG_FIELD(fetch_retry_min), 1, 86400, NULL},
	{"fetch", "retry_max", CONFIG_INT, CONFIG_FIELD(fetch_retry_max), 1, 604800, NULL},
	{"fetch", "max_fetches", CONFIG_INT, CONFIG_FIELD(max_fetches), 1, 100000, NULL},
	{"fetch", "deadline", CONFIG_INT, CONFIG_FIELD(fetch_deadline), 1, 86400, NULL},
	{"fetch", "max_listed", CONFIG_INT, CONFIG_FIELD(max_listed), 1, 1000000, NULL},
	{"fetch", "restart_spread", CONFIG_INT, CONFIG_FIELD(fetch_restart_spread), 0, 86400, NULL},
	{"pipeline", "workers", CONFIG_INT, CONFIG_FIELD(workers), 0, 256, NULL},
	{"pipeline", "worker_timeout", CONFIG_INT, CONFIG_FIELD(worker_timeout), 1, 3600, NULL},
	{"spam", "quarantine_days", CONFIG_INT, CONFIG_FIELD(quarantine_days), 1, 3650, NULL},
	{"spam", "tag_subject_prefix", CONFIG_HEADER_TEXT, CONFIG_FIELD(tag_subject_prefix), 0,
	 CONFIG_TAG_SUBJECT_PREFIX_MAX, NULL},
	{"spam", "rules_file", CONFIG_NULL_PATH, CONFIG_FIELD(rules_file), 0, 0, NULL},
	{"spam", "dns_time_limit", CONFIG_INT, CONFIG_FIELD(dns_time_limit), 0, 60, NULL},
	{"spam", "dnsbl_zones", CONFIG_HOSTS, CONFIG_FIELD(dnsbl_zones), 0, 0, NULL},
	{"spam", "uribl_zones", CONFIG_HOSTS, CONFIG_FIELD(uribl_zones), 0, 0, NULL},
	{"spam", "fuzzy_min_count", CONFIG_INT, CONFIG_FIELD(fuzzy_min_count), 2, 1000000, NULL},
	{"spam", "fuzzy_window", CONFIG_INT, CONFIG_FIELD(fuzzy_window), 60, 2678400, NULL},
	{"spam", "clamd_socket", CONFIG_TEXT, CONFIG_FIELD(clamd_socket), 0, 0, NULL},
	{"spam", "clamd_timeout", CONFIG_INT, CONFIG_FIELD(clamd_timeout), 1, 3600, NULL},
	{"spam", "clamd_retry", CONFIG_INT, CONFIG_FIELD(clamd_retry), 1, 86400, NULL},
	{"spam", "clamd_max_size", CONFIG_LLONG, CONFIG_FIELD(clamd_max_size), 1024, 4294967296LL,
	 NULL},
	{"spam", "clamd_max_connections", CONFIG_INT, CONFIG_FIELD(clamd_max_connections), 1, 1000,
	 NULL},
	{"spam", "blocked_extensions", CONFIG_TEXT, CONFIG_FIELD(blocked_extensions), 0, 0, NULL},
	{"spam", "trusted_relays", CONFIG_RELAYS, CONFIG_FIELD(trusted_relays), 0, 0, NULL},
	{"smtp", "port", CONFIG_INT, CONFIG_FIELD(smtp_port), 0, 65535, NULL},
	{"smtp", "submission_port", CONFIG_INT, CONFIG_FIELD(smtp_submission_port), 0, 65535, NULL},
	{"smtp", "max_message_size", CONFIG_LLONG, CONFIG_FIELD(smtp_max_message_size), 1024,
	 4294967296LL, NULL},
	/* RFC 5321 4.5.3.1.8: a server must take at least 100 recipients. */
	{"smtp", "max_recipients", CONFIG_INT, CONFIG_FIELD(smtp_max_recipients), 100, 100000, NULL},
	{"smtp", "max_sessions", CONFIG_INT, CONFIG_FIELD(smtp_max_sessions), 1, 1000000, NULL},
	{"smtp", "max_sessions_per_client", CONFIG_INT, CONFIG_FIELD(smtp_max_sessions_per_client),
	 1, 1000000, NULL},
	{"smtp", "max_bad_commands", CONFIG_INT, CONFIG_FIELD(smtp_max_bad_commands), 1, 10000, NULL},
	{"smtp", "timeout", CONFIG_INT, CONFIG_FIELD(smtp_timeout), 1, 86400, NULL},
	{"smtp", "session_deadline", CONFIG_INT, CONFIG_FIELD(smtp_session_deadline), 1, 604800,
	 NULL},
	/* RFC 5321 4.5.3.1.6: 1000 with the CR LF; AUTH PLAIN needs 12288 +
	 * "AUTH PLAIN " (RFC 4954 4), so less is refused. */
	{"smtp", "max_text_line", CONFIG_INT, CONFIG_FIELD(smtp_max_text_line), 12300, 1048576,
	 NULL},
	{"relay", "retry_min", CONFIG_INT, CONFIG_FIELD(relay_retry_min), 1, 86400, NULL},
	{"relay", "retry_max", CONFIG_INT, CONFIG_FIELD(relay_retry_max), 1, 604800, NULL},
	{"relay", "queue_lifetime", CONFIG_INT, CONFIG_FIELD(relay_queue_lifetime), 60, 31536000,
	 NULL},
	{"relay", "max_connections", CONFIG_INT, CONFIG_FIELD(relay_max_connections), 1, 10000, NULL},
	{"relay", "max_per_destination", CONFIG_INT, CONFIG_FIELD(relay_max_per_destination), 1,
	 1000, NULL},
	{"relay", "messages_per_connection", CONFIG_INT,
	 CONFIG_FIELD(relay_messages_per_connection), 1, 100000, NULL},
	{"relay", "connect_timeout", CONFIG_INT, CONFIG_FIELD(relay_connect_timeout), 1, 3600, NULL},
	{"relay", "timeout", CONFIG_INT, CONFIG_FIELD(relay_timeout), 1, 86400, NULL},
	{"relay", "mx_port", CONFIG_INT, CONFIG_FIELD(relay_mx_port), 1, 65535, NULL},
	{"relay", "allow_private", CONFIG_BOOL, CONFIG_FIELD(relay_allow_private), 0, 0, NULL},
	{"relay", "mta_sts_port", CONFIG_INT, CONFIG_FIELD(relay_mta_sts_port), 1, 65535, NULL},
	{"relay", "ca_file", CONFIG_NULL_PATH, CONFIG_FIELD(relay_ca_file), 0, 0, NULL},
	{"web", "port", CONFIG_INT, CONFIG_FIELD(web_port), 0, 65535, NULL},
	{"web", "base_url", CONFIG_HEADER_TEXT, CONFIG_FIELD(web_base_url), 0, 200, NULL},
	{"web", "challenge_from", CONFIG_HEADER_TEXT, CONFIG_FIELD(web_challenge_from), 0, 254,
	 NULL},
	{"web", "max_connections", CONFIG_INT, CONFIG_FIELD(web_max_connections), 1, 100000, NULL},
	{"web", "max_connections_per_address", CONFIG_INT,
	 CONFIG_FIELD(web_max_connections_per_address), 1, 100000, NULL},
	{"web", "timeout", CONFIG_INT, CONFIG_FIELD(web_timeout), 1, 3600, NULL},
	{"web", "connection_deadline", CONFIG_INT, CONFIG_FIELD(web_connection_deadline), 1, 86400,
	 NULL},
	{"web", "requests_per_minute", CONFIG_INT, CONFIG_FIELD(web_requests_per_minute), 1,
	 1000000, NULL},
	{"web", "max_wrong_codes", CONFIG_INT, CONFIG_FIELD(web_max_wrong_codes), 1, 1000, NULL},
	{"depot", "enabled", CONFIG_BOOL, CONFIG_FIELD(depot_enabled), 0, 0, NULL},
	{"depot", "retention_days", CONFIG_INT, CONFIG_FIELD(depot_retention_days), 1, 36525, NULL},
	{"depot", "checkpoint_interval", CONFIG_INT, CONFIG_FIELD(depot_checkpoint_interval), 0,
	 31536000, NULL},
	{"depot", "batch", CONFIG_INT, CONFIG_FIELD(depot_batch), 1, 10000, NULL},
	{"depot", "retry", CONFIG_INT, CONFIG_FIELD(depot_retry), 1, 86400, NULL},
	{"providers", "allow", CONFIG_ALLOW, 0, 0, 0, NULL},
};

#define CONFIG_KEY_COUNT (sizeof(config_keys) / sizeof(config_keys[0]))
const size_t config_key_count = CONFIG_KEY_COUNT;

/* The state of one config_load. */
struct config_parse {
	struct popgate_config *cfg;
	const char *path;
	FILE *file;
	char *line;
	size_t line_cap;
	int lineno;
	const char *section;	 /* a plain section (points into config_keys), or NULL */
	struct config_sections sections; /* the named ones ([provider X], …) */
	int key_line[CONFIG_KEY_COUNT];
	int error_line;		 /* line of the first error, 0 while none */
	char error[512];
};

/* The index in config_keys of SECTION's NAME, which must exist. */
static size_t config_key_index(const char *section, const char *name)
{
	for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return i;
	}
	abort(); /* a misspelt name in this file */
}

/* Records the first error, at the line being read. */
static void config_fail(struct config_parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void config_fail(struct config_parse *p, const char *fmt, ...)
{
	va_list ap;

	if (p->error_line != 0)
		return;
	p->error_line = p->lineno > 0 ? p->lineno : 1;
	va_start(ap, fmt);
	vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
}

/* Records MSG, a refusal of what the line being read says. */
static void config_refuse(struct config_parse *p, const char *msg)
{
	config_fail(p, "%s", msg);
}

/* The inih handler: one "key = value" of the current section. */
static int config_handle_key(void *user, const char *section, const char *name, const char *value)
{
	struct config_parse *p = user;
	char quoted[64];
	char msg[sizeof(p->error)];

	/* The section was already looked up, by config_read_line, when its
	 * header went past; inih's copy of the name is not needed. */
	(void)section;
	if (p->error_line != 0)
		return 0;
	if (config_sections_active(&p->sections)) {
		if (config_sections_key(&p->sections, name, value, p->lineno, msg, sizeof(msg)) < 0) {
			config_refuse(p, msg);
			return 0;
		}
		return 1;
	}
	if (p->section == NULL) {
		config_fail(p, "key '%s' outside of any section", config_quote(quoted, name));
		return 0;
	}
	for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
		const struct config_key *key = &config_keys[i];

		if (strcmp(key->section, p->section) != 0 || !util_strcaseeq(key->name, name))
			continue;
		if (p->key_line[i] != 0) {
			config_fail(p, "duplicate key '%s' in [%s] (first set at line %d)",
				    key->name, key->section, p->key_line[i]);
			return 0;
		}
		p->key_line[i] = p->lineno;
		if (config_key_set(key, p->cfg, value, msg, sizeof(msg)) < 0) {
			config_refuse(p, msg);
			return 0;
		}
		return 1;
	}
	config_fail(p, "unknown key '%s' in [%s]", config_quote(quoted, name), p->section);
	return 0;
}

/* "[NAME]": a plain section, or "[TYPE NAME]", a named one. */
static void config_begin_section(struct config_parse *p, char *name)
{
	char quoted[64];
	char msg[sizeof(p->error)];
	char *end = name + strlen(name);
	int named;

	while (isspace((unsigned char)*name))
		name++;
	while (end > name && isspace((unsigned char)end[-1]))
		*--end = '\0';
	p->section = NULL;
	named = config_sections_begin(&p->sections, name, p->lineno, msg, sizeof(msg));
	if (named < 0)
		config_refuse(p, msg);
	if (named != 0)
		return;
	for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
		if (util_strcaseeq(config_keys[i].section, name)) {
			p->section = config_keys[i].section;
			return;
		}
	}
	config_fail(p, "unknown section [%s]", config_quote(quoted, name));
}

/*
 * The inih line reader. Reading the lines here rather than in inih gives
 * errors their true line numbers, catches lines too long for inih's buffer
 * (which it would silently split in two), sees every section header even
 * without keys (inih reports only keys), and drops leading blanks so that an
 * indented line is an ordinary line, never a continuation of the previous
 * value.
 */
static char *config_read_line(char *str, int num, void *stream)
{
	struct config_parse *p = stream;
	char *start;
	size_t len;

	if (p->error_line != 0)
		return NULL; /* stop at the first error: what follows may be noise */
	if (getline(&p->line, &p->line_cap, p->file) < 0)
		return NULL;
	p->lineno++;
	start = p->line;
	if (p->lineno == 1 && strncmp(start, "\xEF\xBB\xBF", 3) == 0)
		start += 3;
	while (isspace((unsigned char)*start) && *start != '\n')
		start++;
	len = strlen(start);
	if (len >= (size_t)num) {
		config_fail(p, "line too long (at most %d characters)", num - 2);
		return NULL;
	}
	if (*start == '[') {
		/* Found exactly as inih finds it: up to ']', unless an inline
		 * comment (" ;") comes first, which inih reports as an error. */
		const char *c = start + 1;
		bool was_space = false;

		while (*c != '\0' && *c != ']' && !(was_space && *c == ';')) {
			was_space = isspace((unsigned char)*c);
			c++;
		}
		if (*c == ']') {
			char *name = xstrndup(start + 1, (size_t)(c - start - 1));

			config_begin_section(p, name);
			free(name);
			if (p->error_line != 0)
				return NULL;
		}
	}
	memcpy(str, start, len + 1);
	return str;
}

/* Makes *FIELD absolute against BASE; NULL and empty stay as they are, and
 * "-" too when it means standard error (DASH_IS_STDERR: log_file only; for
 * any other path "-" is a file of that name). */
static void config_absolute(char **field, const char *base, bool dash_is_stderr)
{
	char *abs;

	if (*field == NULL || **field == '\0' || **field == '/' ||
	    (dash_is_stderr && strcmp(*field, "-") == 0))
		return;
	abs = xasprintf("%s/%s", base, *field);
	free(*field);
	*field = abs;
}

/*
 * A path made absolute (or derived from data_dir) must still fit on one line
 * of `config show`, whose output config_load must read back: inih's lines
 * hold CONFIG_LINE_MAX characters. 0, or -1 naming the line the path came
 * from (data_dir's for a derived one).
 */
static int config_check_path_length(const struct config_parse *p, const char *key,
				    const char *value, int line, char *err, size_t errlen)
{
	if (value == NULL || strlen(key) + 3 + strlen(value) <= CONFIG_LINE_MAX)
		return 0;
	snprintf(err, errlen,
		 "%s:%d: %s is %zu characters long once made absolute; a line holds at most %d "
		 "(give a shorter absolute path)",
		 p->path, line, key, strlen(value), CONFIG_LINE_MAX);
	return -1;
}

static int config_check_path_lengths(const struct config_parse *p, char *err, size_t errlen)
{
	const struct popgate_config *cfg = p->cfg;
	int data_line = p->key_line[config_key_index("server", "data_dir")];
	static const char *const server_paths[] = {"data_dir", "log_file", "tls_cert", "tls_key",
						   "dns_trust_anchor"};
	const char *const values[] = {cfg->data_dir, cfg->log_file, cfg->tls_cert, cfg->tls_key,
				      cfg->dns_trust_anchor};
	char msg[sizeof(p->error)];
	int line = 0;

	for (size_t i = 0; i < sizeof(server_paths) / sizeof(server_paths[0]); i++) {
		line = p->key_line[config_key_index("server", server_paths[i])];
		/* A default made absolute comes from the file's own folder: line 1. */
		if (line == 0)
			line = data_line != 0 ? data_line : 1;
		if (config_check_path_length(p, server_paths[i], values[i], line, err, errlen) < 0)
			return -1;
	}
	if (config_check_path_length(p, "rules_file", cfg->rules_file,
				     p->key_line[config_key_index("spam", "rules_file")], err,
				     errlen) < 0)
		return -1;
	if (config_sections_check_paths(&p->sections, CONFIG_LINE_MAX, &line, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "%s:%d: %s", p->path, line, msg);
		return -1;
	}
	return 0;
}

/* [web] base_url is an https or http URL without blanks, quotes or angle
 * brackets (it goes into mail and HTML as it is); challenge_from an address. */
static int config_check_web(struct config_parse *p, char *err, size_t errlen)
{
	const struct popgate_config *cfg = p->cfg;
	const char *url = cfg->web_base_url;

	if (*url != '\0') {
		bool scheme = strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0;
		bool clean = strpbrk(url, " \"'<>\\`") == NULL;

		if (!scheme || !clean) {
			int line = p->key_line[config_key_index("web", "base_url")];

			snprintf(err, errlen,
				 "%s:%d: base_url must be an http(s) URL without blanks or quotes",
				 p->path, line > 0 ? line : 1);
			return -1;
		}
	}
	if (*cfg->web_challenge_from != '\0' && !address_valid(cfg->web_challenge_from)) {
		int line = p->key_line[config_key_index("web", "challenge_from")];

		snprintf(err, errlen, "%s:%d: challenge_from is not a mail address", p->path,
			 line > 0 ? line : 1);
		return -1;
	}
	return 0;
}

/* Checks that need the whole file, and the derived values. 0 or -1. */
static int config_finish(struct config_parse *p, char *err, size_t errlen)
{
	struct popgate_config *cfg = p->cfg;
	char *copy = xstrdup(p->path);
	char *base = realpath(dirname(copy), NULL);

	free(copy);
	if (base == NULL) {
		snprintf(err, errlen, "%s: cannot resolve its folder: %s", p->path,
			 strerror(errno));
		return -1;
	}
	if (cfg->fetch_retry_min > cfg->fetch_retry_max) {
		int max_line = p->key_line[config_key_index("fetch", "retry_max")];
		int min_line = p->key_line[config_key_index("fetch", "retry_min")];

		/* Blame the later of the two lines: that is where the conflict arose. */
		snprintf(err, errlen, "%s:%d: retry_min (%d) is larger than retry_max (%d)",
			 p->path, max_line > min_line ? max_line : min_line, cfg->fetch_retry_min,
			 cfg->fetch_retry_max);
		free(base);
		return -1;
	}
	/* Checked here, not at the first scan: a typo would hold all mail of
	 * the profiles that run clamav until someone reads the log. */
	struct clamd_address clamd_address;
	char clamd_err[160];
	if (clamd_address_parse(cfg->clamd_socket, &clamd_address, clamd_err,
				sizeof(clamd_err)) < 0) {
		int line = p->key_line[config_key_index("spam", "clamd_socket")];

		snprintf(err, errlen, "%s:%d: %s", p->path, line > 0 ? line : 1, clamd_err);
		free(base);
		return -1;
	}
	if (config_check_web(p, err, errlen) < 0) {
		free(base);
		return -1;
	}
	config_sections_finish(&p->sections, base);
	config_absolute(&cfg->data_dir, base, false);
	config_absolute(&cfg->log_file, base, true);
	config_absolute(&cfg->tls_cert, base, false);
	config_absolute(&cfg->relay_ca_file, base, false);
	config_absolute(&cfg->rules_file, base, false);
	config_absolute(&cfg->tls_key, base, false);
	config_absolute(&cfg->dns_trust_anchor, base, false);
	if (cfg->tls_cert == NULL || *cfg->tls_cert == '\0') {
		free(cfg->tls_cert);
		cfg->tls_cert = xasprintf("%s/tls/cert.pem", cfg->data_dir);
	}
	if (cfg->tls_key == NULL || *cfg->tls_key == '\0') {
		free(cfg->tls_key);
		cfg->tls_key = xasprintf("%s/tls/key.pem", cfg->data_dir);
	}
	free(base);
	return config_check_path_lengths(p, err, errlen);
}

void config_defaults(struct popgate_config *cfg)
{
	char host[256];

	memset(cfg, 0, sizeof(*cfg));
	cfg->data_dir = xstrdup("data");
	cfg->log_file = xstrdup("-");
	cfg->log_level = xstrdup("info");
	cfg->run_as_user = xstrdup("popgate");
	cfg->worker_user = xstrdup("popgate-worker");
	/* gethostname may cut a long name without a NUL; the last byte guards it. */
	host[sizeof(host) - 1] = '\0';
	if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	cfg->hostname = xstrdup(host);
	/* The root's trust anchor where the system keeps one (Debian's
	 * dns-root-data); without it nothing is validated. */
	cfg->dns_trust_anchor =
	    xstrdup(access(CONFIG_ROOT_TRUST_ANCHOR, R_OK) == 0 ? CONFIG_ROOT_TRUST_ANCHOR : "");
	cfg->listen_address = xstrdup("0.0.0.0");
	cfg->pop3_port = 1110;
	cfg->pop3s_port = 1995;
	cfg->tls_cert = xstrdup("");
	cfg->tls_key = xstrdup("");
	cfg->allow_plaintext_auth = false;
	cfg->max_sessions = 1000;
	cfg->max_sessions_per_ip = 100;
	cfg->login_timeout = 60;
	cfg->login_deadline = 120;
	cfg->max_login_checks = 20;
	cfg->max_login_checks_per_ip = 3;
	cfg->login_check_timeout = 30;
	cfg->idle_timeout = 600;
	cfg->command_timeout = 300;
	cfg->max_line = 512;
	cfg->max_bad_commands = 20;
	cfg->login_fail_limit = 10;
	cfg->login_fail_window = 900;
	cfg->login_fail_delay_ms = 1000;
	cfg->pseudo_domain = xstrdup("pop3proxy.reddoxx");
	cfg->delivered_keep_days = 7;
	cfg->release_check_seconds = 60;
	cfg->max_message_size = 67108864;
	cfg->fetch_timeout = 120;
	cfg->fetch_retry_min = 60;
	cfg->fetch_retry_max = 3600;
	cfg->max_fetches = 50;
	cfg->fetch_deadline = 1800;
	cfg->max_listed = 10000;
	cfg->fetch_restart_spread = 300;
	cfg->workers = 0;
	cfg->worker_timeout = 60;
	cfg->quarantine_days = 30;
	cfg->tag_subject_prefix = xstrdup("[SPAM]");
	cfg->dns_time_limit = 5;
	cfg->fuzzy_min_count = 5;
	cfg->fuzzy_window = 86400;
	/* As filters/clamav.h's defaults: Debian's clamd, its StreamMaxLength. */
	cfg->clamd_socket = xstrdup("/var/run/clamav/clamd.ctl");
	cfg->clamd_timeout = 60;
	cfg->clamd_retry = 60;
	cfg->clamd_max_size = 26214400;
	cfg->clamd_max_connections = 10;
	cfg->blocked_extensions = xstrdup(ATTACHMENTS_BLOCKED_DEFAULT);
	cfg->trusted_relays = xstrdup("");
	cfg->smtp_port = 10025;
	cfg->smtp_submission_port = 10587;
	cfg->smtp_max_message_size = 52428800;
	cfg->smtp_max_recipients = 100;
	cfg->smtp_max_sessions = 200;
	cfg->smtp_max_sessions_per_client = 20;
	cfg->smtp_max_bad_commands = 10;
	cfg->smtp_timeout = 300;
	cfg->smtp_session_deadline = 3600;
	cfg->smtp_max_text_line = 12300;
	cfg->relay_retry_min = 300;
	cfg->relay_retry_max = 3600;
	cfg->relay_queue_lifetime = 432000;
	cfg->relay_max_connections = 20;
	cfg->relay_max_per_destination = 2;
	cfg->relay_messages_per_connection = 50;
	cfg->relay_connect_timeout = 30;
	cfg->relay_timeout = 300;
	cfg->relay_mx_port = 25;
	cfg->relay_allow_private = false;
	cfg->relay_mta_sts_port = 443;
	cfg->relay_ca_file = NULL;
	cfg->rules_file = NULL;
	cfg->web_port = 1443;
	cfg->web_base_url = xstrdup("");
	cfg->web_challenge_from = xstrdup("");
	cfg->web_max_connections = 200;
	cfg->web_max_connections_per_address = 20;
	cfg->web_timeout = 20;
	cfg->web_connection_deadline = 60;
	cfg->web_requests_per_minute = 60;
	cfg->web_max_wrong_codes = 5;
	cfg->depot_enabled = false;
	cfg->depot_retention_days = DEPOT_RETENTION_DAYS_DEFAULT;
	cfg->depot_checkpoint_interval = 3600;
	cfg->depot_batch = 256;
	cfg->depot_retry = 60;
	config_sections_defaults(config_section_types, config_section_type_count, cfg);
}

int config_load(struct popgate_config *cfg, const char *path, char *err, size_t errlen)
{
	struct config_parse p;
	int rc;
	int result = -1;

	/* A never-filled (zeroed) configuration gets its defaults first. */
	if (cfg->data_dir == NULL)
		config_defaults(cfg);
	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.path = path;
	config_sections_init(&p.sections, config_section_types, config_section_type_count, cfg);
	p.file = fopen(path, "re");
	if (p.file == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	rc = ini_parse_stream(config_read_line, &p, config_handle_key, &p);
	if (ferror(p.file)) {
		snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
		goto fail;
	}
	if (rc == -2) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	/* inih counts the same lines as config_read_line, so a line it reports
	 * before ours is a line it could not parse at all. */
	if (rc > 0 && (p.error_line == 0 || rc < p.error_line)) {
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
			 path, rc);
		goto fail;
	}
	if (p.error_line != 0) {
		snprintf(err, errlen, "%s:%d: %s", path, p.error_line, p.error);
		goto fail;
	}
	if (config_finish(&p, err, errlen) < 0)
		goto fail;
	result = 0;
fail:
	config_sections_done(&p.sections);
	free(p.line);
	fclose(p.file);
	return result;
}

void config_free(struct popgate_config *cfg)
{
	if (cfg == NULL)
		return;
	xfree(&cfg->data_dir);
	xfree(&cfg->log_file);
	xfree(&cfg->log_level);
	xfree(&cfg->run_as_user);
	xfree(&cfg->worker_user);
	xfree(&cfg->blocked_extensions);
	xfree(&cfg->hostname);
	xfree(&cfg->nameservers);
	xfree(&cfg->dns_trust_anchor);
	xfree(&cfg->listen_address);
	xfree(&cfg->tls_cert);
	xfree(&cfg->tls_key);
	xfree(&cfg->pseudo_domain);
	xfree(&cfg->relay_ca_file);
	xfree(&cfg->tag_subject_prefix);
	xfree(&cfg->rules_file);
	xfree(&cfg->dnsbl_zones);
	xfree(&cfg->uribl_zones);
	xfree(&cfg->clamd_socket);
	xfree(&cfg->trusted_relays);
	xfree(&cfg->web_base_url);
	xfree(&cfg->web_challenge_from);
	config_key_free(&config_keys[config_key_index("providers", "allow")], cfg);
	config_sections_free(config_section_types, config_section_type_count, cfg);
	memset(cfg, 0, sizeof(*cfg));
}

/*
 * The keys a running daemon cannot take over: the ports are bound, the data
 * folder is the working directory, the rights are dropped, the certificate
 * was read as root, the resolver and the workers were made at start-up.
 */
static const struct {
	const char *section;
	const char *name;
} config_restart_keys[] = {
    {"server", "data_dir"},	  {"server", "user"},	     {"server", "hostname"},
    {"server", "worker_user"},
    {"server", "nameservers"},	  {"server", "dns_trust_anchor"}, {"server", "listen_address"}, {"server", "pop3_port"},
    {"server", "pop3s_port"},	  {"server", "tls_cert"},	     {"server", "tls_key"},
    {"pipeline", "workers"},	  {"pipeline", "worker_timeout"},
    {"smtp", "port"},		  {"smtp", "submission_port"},
    {"web", "port"},
    /* The archiver thread and its settings are made at start-up. */
    {"depot", "enabled"},	  {"depot", "checkpoint_interval"}, {"depot", "batch"},
};

/* The entry of config_keys for SECTION and NAME; never NULL for a name of
 * config_restart_keys. */
static const struct config_key *config_key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	}
	return NULL;
}

size_t config_keep_restart_keys(struct popgate_config *fresh, const struct popgate_config *running,
				char *names, size_t names_len)
{
	size_t kept = 0;
	size_t used = 0;

	if (names_len > 0)
		names[0] = '\0';
	for (size_t i = 0; i < sizeof(config_restart_keys) / sizeof(config_restart_keys[0]); i++) {
		const struct config_key *key =
		    config_key_find(config_restart_keys[i].section, config_restart_keys[i].name);
		assert(key != NULL);
		char *field = (char *)fresh + key->offset;
		const char *old = (const char *)running + key->offset;

		if (key->type == CONFIG_INT) {
			if (*(int *)field == *(const int *)old)
				continue;
			*(int *)field = *(const int *)old;
		} else if (key->type == CONFIG_BOOL) {
			if (*(bool *)field == *(const bool *)old)
				continue;
			*(bool *)field = *(const bool *)old;
		} else {
			char **text = (char **)field;
			const char *old_text = *(char *const *)old;

			if (strcmp(*text != NULL ? *text : "", old_text != NULL ? old_text : "") == 0)
				continue;
			free(*text);
			*text = old_text != NULL ? xstrdup(old_text) : NULL;
		}
		if (used < names_len) {
			int n = snprintf(names + used, names_len - used, "%s[%s] %s",
					 kept > 0 ? ", " : "", key->section, key->name);
			used = n < 0 ? names_len : used + (size_t)n;
		}
		kept++;
	}
	return kept;
}
