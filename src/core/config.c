/*
 * config.c — reads popgate.conf (INI, parsed by inih) over the built-in
 * defaults, checks every value, and answers provider-policy questions.
 *
 * Owns: every string and list hung on struct popgate_config (config_free
 * releases them). Relative paths are made absolute against the folder of the
 * configuration file, so the daemon does not depend on its working folder.
 * Must never: accept a key, section or value it does not understand — a typo
 * in a security setting must stop the start, naming the file and line — or
 * print anything secret in the summary.
 * SECURITY: the file is trusted (it is the administrator's); the provider host
 * names that config_pattern_match and friends compare come from users.
 */
#include <arpa/inet.h>
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

#include <event2/util.h>
#include <ini.h>

#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "pop3/policy.h"

/* The longest line config_load reads: inih's line buffer less the line end
 * and its NUL. */
#define CONFIG_LINE_MAX (INI_MAX_LINE - 2)

enum config_type {
	CONFIG_TEXT,	 /* any non-empty text */
	CONFIG_PATH,	 /* a non-empty path, made absolute after loading */
	CONFIG_OPT_PATH, /* a path or empty (then derived from data_dir) */
	CONFIG_LOG_FILE, /* a path, or "-" for stderr */
	CONFIG_HOST,	 /* a host name */
	CONFIG_ADDRESS,	 /* a numeric IPv4 or IPv6 address */
	CONFIG_LEVEL,	 /* a log level name */
	CONFIG_INT,
	CONFIG_LLONG,
	CONFIG_BOOL,
	CONFIG_ALLOW,	    /* the provider allow-list */
	CONFIG_NAMESERVERS, /* numeric addresses with optional ports, or empty */
};

/* One key of a plain section: where its value lives and what it may be. */
struct config_key {
	const char *section;
	const char *name;
	enum config_type type;
	size_t offset;
	long long min;
	long long max;
};

#define CONFIG_FIELD(field) offsetof(struct popgate_config, field)

/* Grouped by section, in the order config_write_summary prints them. */
static const struct config_key config_keys[] = {
	{"server", "data_dir", CONFIG_PATH, CONFIG_FIELD(data_dir), 0, 0},
	{"server", "log_file", CONFIG_LOG_FILE, CONFIG_FIELD(log_file), 0, 0},
	{"server", "log_level", CONFIG_LEVEL, CONFIG_FIELD(log_level), 0, 0},
	{"server", "user", CONFIG_TEXT, CONFIG_FIELD(run_as_user), 0, 0},
	{"server", "hostname", CONFIG_HOST, CONFIG_FIELD(hostname), 0, 0},
	{"server", "nameservers", CONFIG_NAMESERVERS, CONFIG_FIELD(nameservers), 0, 0},
	{"server", "listen_address", CONFIG_ADDRESS, CONFIG_FIELD(listen_address), 0, 0},
	{"server", "pop3_port", CONFIG_INT, CONFIG_FIELD(pop3_port), 1, 65535},
	{"server", "pop3s_port", CONFIG_INT, CONFIG_FIELD(pop3s_port), 1, 65535},
	{"server", "tls_cert", CONFIG_OPT_PATH, CONFIG_FIELD(tls_cert), 0, 0},
	{"server", "tls_key", CONFIG_OPT_PATH, CONFIG_FIELD(tls_key), 0, 0},
	{"server", "allow_plaintext_auth", CONFIG_BOOL, CONFIG_FIELD(allow_plaintext_auth), 0, 0},
	{"server", "max_sessions", CONFIG_INT, CONFIG_FIELD(max_sessions), 1, 1000000},
	{"server", "max_sessions_per_ip", CONFIG_INT, CONFIG_FIELD(max_sessions_per_ip), 1,
	 1000000},
	{"server", "login_timeout", CONFIG_INT, CONFIG_FIELD(login_timeout), 1, 86400},
	{"server", "login_deadline", CONFIG_INT, CONFIG_FIELD(login_deadline), 1, 86400},
	{"server", "max_login_checks", CONFIG_INT, CONFIG_FIELD(max_login_checks), 1, 100000},
	{"server", "max_login_checks_per_ip", CONFIG_INT, CONFIG_FIELD(max_login_checks_per_ip), 1,
	 100000},
	{"server", "login_check_timeout", CONFIG_INT, CONFIG_FIELD(login_check_timeout), 1, 3600},
	{"server", "idle_timeout", CONFIG_INT, CONFIG_FIELD(idle_timeout), 1, 86400},
	{"server", "command_timeout", CONFIG_INT, CONFIG_FIELD(command_timeout), 1, 86400},
	/* RFC 2449 lets a client send 255 octets; less would break honest clients. */
	{"server", "max_line", CONFIG_INT, CONFIG_FIELD(max_line), 255, 65536},
	{"server", "max_bad_commands", CONFIG_INT, CONFIG_FIELD(max_bad_commands), 1, 10000},
	{"server", "login_fail_limit", CONFIG_INT, CONFIG_FIELD(login_fail_limit), 1, 1000000},
	{"server", "login_fail_window", CONFIG_INT, CONFIG_FIELD(login_fail_window), 1, 604800},
	{"server", "login_fail_delay_ms", CONFIG_INT, CONFIG_FIELD(login_fail_delay_ms), 0, 60000},
	{"users", "pseudo_domain", CONFIG_HOST, CONFIG_FIELD(pseudo_domain), 0, 0},
	{"queue", "delivered_keep_days", CONFIG_INT, CONFIG_FIELD(delivered_keep_days), 0, 3650},
	{"queue", "release_check_seconds", CONFIG_INT, CONFIG_FIELD(release_check_seconds), 1, 3600},
	{"queue", "max_message_size", CONFIG_LLONG, CONFIG_FIELD(max_message_size), 1024,
	 4294967296LL},
	{"fetch", "timeout", CONFIG_INT, CONFIG_FIELD(fetch_timeout), 1, 3600},
	{"fetch", "retry_min", CONFIG_INT, CONFIG_FIELD(fetch_retry_min), 1, 86400},
	{"fetch", "retry_max", CONFIG_INT, CONFIG_FIELD(fetch_retry_max), 1, 604800},
	{"fetch", "max_fetches", CONFIG_INT, CONFIG_FIELD(max_fetches), 1, 100000},
	{"fetch", "deadline", CONFIG_INT, CONFIG_FIELD(fetch_deadline), 1, 86400},
	{"fetch", "max_listed", CONFIG_INT, CONFIG_FIELD(max_listed), 1, 1000000},
	{"fetch", "restart_spread", CONFIG_INT, CONFIG_FIELD(fetch_restart_spread), 0, 86400},
	{"pipeline", "workers", CONFIG_INT, CONFIG_FIELD(workers), 0, 256},
	{"pipeline", "worker_timeout", CONFIG_INT, CONFIG_FIELD(worker_timeout), 1, 3600},
	{"providers", "allow", CONFIG_ALLOW, 0, 0, 0},
};

#define CONFIG_KEY_COUNT (sizeof(config_keys) / sizeof(config_keys[0]))

/* The keys of a [provider] section, as bits and as indexes of their lines. */
enum provider_key { PROVIDER_PORT, PROVIDER_TLS, PROVIDER_CA_FILE, PROVIDER_VERIFY,
		    PROVIDER_ALLOW_PRIVATE, PROVIDER_KEY_COUNT };

static const char *const provider_key_names[] = {
	[PROVIDER_PORT] = "port",
	[PROVIDER_TLS] = "tls",
	[PROVIDER_CA_FILE] = "ca_file",
	[PROVIDER_VERIFY] = "verify",
	[PROVIDER_ALLOW_PRIVATE] = "allow_private",
};
_Static_assert(sizeof(provider_key_names) / sizeof(provider_key_names[0]) == PROVIDER_KEY_COUNT,
	       "every provider key has a name");

static const char *const provider_tls_names[] = {
	[PROVIDER_TLS_IMPLICIT] = "implicit",
	[PROVIDER_TLS_STARTTLS] = "starttls",
	[PROVIDER_TLS_NONE] = "none",
};
_Static_assert(sizeof(provider_tls_names) / sizeof(provider_tls_names[0]) == PROVIDER_TLS_NONE + 1,
	       "every TLS mode has a name");

/* What one [provider] section set, and where: unset keys are inherited from
 * [provider *] once the whole file is read, so section order does not matter. */
struct config_provider {
	struct provider_policy *policy;
	int section_line;
	int key_line[PROVIDER_KEY_COUNT];
};

/* The state of one config_load. */
struct config_parse {
	struct popgate_config *cfg;
	const char *path;
	FILE *file;
	char *line;
	size_t line_cap;
	int lineno;
	const char *section;	 /* a plain section (points into config_keys), or NULL */
	struct config_provider *providers;
	size_t provider_count;
	ssize_t provider;	 /* index of the current [provider] section, or -1 */
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

/* A printable, bounded copy of text from the file for an error message. */
static const char *config_quote(char out[64], const char *s)
{
	util_sanitize(out, 64, s, strlen(s));
	return out;
}

static bool config_valid_hostname(const char *s)
{
	size_t len = strlen(s);
	size_t label = 0;

	if (len == 0 || len > 253)
		return false;
	for (const char *c = s; *c != '\0'; c++) {
		if (*c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

static bool config_valid_pattern(const char *s)
{
	if (strcmp(s, "*") == 0)
		return true;
	if (s[0] == '*' && s[1] == '.')
		return config_valid_hostname(s + 2);
	return config_valid_hostname(s);
}

/* Parses a whole decimal number in [MIN, MAX]. 0 or -1. */
static int config_parse_number(const char *value, long long min, long long max, long long *out)
{
	char *end;
	long long n;

	if (*value == '\0')
		return -1;
	errno = 0;
	n = strtoll(value, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

/* 1 or 0 for the usual spellings of a yes/no value, -1 for anything else. */
static int config_parse_bool(const char *value)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (util_strcaseeq(value, yes[i]))
			return 1;
		if (util_strcaseeq(value, no[i]))
			return 0;
	}
	return -1;
}

static void config_set_string(char **field, const char *value)
{
	free(*field);
	*field = xstrdup(value);
}

static void config_free_allow(struct popgate_config *cfg)
{
	for (size_t i = 0; i < cfg->provider_allow_count; i++)
		free(cfg->provider_allow[i]);
	xfree(&cfg->provider_allow);
	cfg->provider_allow_count = 0;
}

/* Splits the allow-list at blanks and commas and checks every pattern. */
static int config_set_allow(struct config_parse *p, const char *value)
{
	static const char separators[] = " \t,";
	struct popgate_config *cfg = p->cfg;
	char *copy = xstrdup(value);
	char *save = NULL;
	char quoted[64];

	config_free_allow(cfg);
	for (char *tok = strtok_r(copy, separators, &save); tok != NULL;
	     tok = strtok_r(NULL, separators, &save)) {
		if (!config_valid_pattern(tok)) {
			config_fail(p, "invalid host pattern '%s' in allow",
				    config_quote(quoted, tok));
			free(copy);
			return -1;
		}
		cfg->provider_allow = xrealloc(cfg->provider_allow,
					       (cfg->provider_allow_count + 1) * sizeof(char *));
		cfg->provider_allow[cfg->provider_allow_count++] = xstrdup(tok);
	}
	free(copy);
	return 0;
}

/* True if LIST is empty or holds only numeric addresses with optional ports,
 * separated by spaces or commas (the forwarders core/resolver.c hands libunbound). */
static bool config_nameservers_valid(const char *list)
{
	char *copy = xstrdup(list), *save = NULL;
	bool valid = true;

	for (char *item = strtok_r(copy, " ,", &save); item != NULL && valid;
	     item = strtok_r(NULL, " ,", &save)) {
		struct sockaddr_storage addr;
		int len = (int)sizeof(addr);

		valid = evutil_parse_sockaddr_port(item, (struct sockaddr *)&addr, &len) == 0;
	}
	free(copy);
	return valid;
}

/* Checks VALUE for KEY and stores it in the configuration. 0 or -1. */
static int config_set_value(struct config_parse *p, const struct config_key *key,
			    const char *value)
{
	void *field = (char *)p->cfg + key->offset;
	char quoted[64];
	long long number;
	int flag;

	switch (key->type) {
	case CONFIG_TEXT:
	case CONFIG_PATH:
	case CONFIG_LOG_FILE:
		if (*value == '\0')
			goto empty;
		config_set_string(field, value);
		return 0;
	case CONFIG_OPT_PATH:
		config_set_string(field, value);
		return 0;
	case CONFIG_NAMESERVERS:
		if (!config_nameservers_valid(value)) {
			config_fail(
			    p,
			    "%s: '%s' is not a list of numeric addresses, each with an "
			    "optional port (192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53)",
			    key->name, config_quote(quoted, value));
			return -1;
		}
		config_set_string(field, value);
		return 0;
	case CONFIG_HOST:
		if (!config_valid_hostname(value)) {
			config_fail(p, "%s: '%s' is not a valid host name", key->name,
				    config_quote(quoted, value));
			return -1;
		}
		config_set_string(field, value);
		return 0;
	case CONFIG_ADDRESS: {
		unsigned char addr[sizeof(struct in6_addr)];

		if (inet_pton(AF_INET, value, addr) != 1 && inet_pton(AF_INET6, value, addr) != 1) {
			config_fail(p, "%s: '%s' is not a numeric IPv4 or IPv6 address",
				    key->name, config_quote(quoted, value));
			return -1;
		}
		config_set_string(field, value);
		return 0;
	}
	case CONFIG_LEVEL: {
		enum log_level level;

		if (log_level_parse(value, &level) < 0) {
			config_fail(p, "%s: '%s' is not one of debug, info, warn, error",
				    key->name, config_quote(quoted, value));
			return -1;
		}
		config_set_string(field, value);
		return 0;
	}
	case CONFIG_INT:
	case CONFIG_LLONG:
		if (config_parse_number(value, key->min, key->max, &number) < 0) {
			config_fail(p, "%s: '%s' is not a whole number from %lld to %lld",
				    key->name, config_quote(quoted, value), key->min, key->max);
			return -1;
		}
		if (key->type == CONFIG_INT)
			*(int *)field = (int)number;
		else
			*(long long *)field = number;
		return 0;
	case CONFIG_BOOL:
		flag = config_parse_bool(value);
		if (flag < 0)
			goto bad_bool;
		*(bool *)field = flag;
		return 0;
	case CONFIG_ALLOW:
		return config_set_allow(p, value);
	}
	abort(); /* every type is handled above */
empty:
	config_fail(p, "%s: empty value", key->name);
	return -1;
bad_bool:
	config_fail(p, "%s: '%s' is not yes or no", key->name, config_quote(quoted, value));
	return -1;
}

static int config_set_provider_key(struct config_parse *p, const char *name, const char *value)
{
	struct config_provider *meta = &p->providers[p->provider];
	struct provider_policy *policy = meta->policy;
	char quoted[64];
	long long number;
	int key;
	int flag;

	for (key = 0; key < PROVIDER_KEY_COUNT; key++) {
		if (util_strcaseeq(name, provider_key_names[key]))
			break;
	}
	if (key == PROVIDER_KEY_COUNT) {
		config_fail(p, "unknown key '%s' in [provider %s]", config_quote(quoted, name),
			    policy->pattern);
		return -1;
	}
	if (meta->key_line[key] != 0) {
		config_fail(p, "duplicate key '%s' in [provider %s] (first set at line %d)",
			    provider_key_names[key], policy->pattern, meta->key_line[key]);
		return -1;
	}
	switch ((enum provider_key)key) {
	case PROVIDER_PORT:
		if (config_parse_number(value, 1, 65535, &number) < 0) {
			config_fail(p, "port: '%s' is not a whole number from 1 to 65535",
				    config_quote(quoted, value));
			return -1;
		}
		policy->port = (int)number;
		break;
	case PROVIDER_TLS:
		for (flag = 0; flag <= PROVIDER_TLS_NONE; flag++) {
			if (util_strcaseeq(value, provider_tls_names[flag]))
				break;
		}
		if (flag > PROVIDER_TLS_NONE) {
			config_fail(p, "tls: '%s' is not one of implicit, starttls, none",
				    config_quote(quoted, value));
			return -1;
		}
		policy->tls = (enum provider_tls)flag;
		break;
	case PROVIDER_CA_FILE:
		xfree(&policy->ca_file);
		if (*value != '\0')
			policy->ca_file = xstrdup(value);
		break;
	case PROVIDER_VERIFY:
	case PROVIDER_ALLOW_PRIVATE:
		flag = config_parse_bool(value);
		if (flag < 0) {
			config_fail(p, "%s: '%s' is not yes or no", provider_key_names[key],
				    config_quote(quoted, value));
			return -1;
		}
		if (key == PROVIDER_VERIFY)
			policy->verify = flag;
		else
			policy->allow_private = flag;
		break;
	case PROVIDER_KEY_COUNT:
		abort(); /* excluded by the lookup above */
	}
	meta->key_line[key] = p->lineno;
	return 0;
}

/* The inih handler: one "key = value" of the current section. */
static int config_handle_key(void *user, const char *section, const char *name, const char *value)
{
	struct config_parse *p = user;
	char quoted[64];

	/* The section was already looked up, by config_read_line, when its
	 * header went past; inih's copy of the name is not needed. */
	(void)section;
	if (p->error_line != 0)
		return 0;
	if (p->provider >= 0)
		return config_set_provider_key(p, name, value) == 0;
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
		return config_set_value(p, key, value) == 0;
	}
	config_fail(p, "unknown key '%s' in [%s]", config_quote(quoted, name), p->section);
	return 0;
}

static void config_policy_init(struct provider_policy *policy, const char *pattern)
{
	memset(policy, 0, sizeof(*policy));
	policy->pattern = xstrdup(pattern);
	policy->port = 995;
	policy->tls = PROVIDER_TLS_IMPLICIT;
	policy->verify = true;
}

/* Starts "[provider PATTERN]": a new policy, or the default one for "*". */
static void config_begin_provider(struct config_parse *p, const char *pattern)
{
	struct popgate_config *cfg = p->cfg;
	struct config_provider *meta;
	struct provider_policy *policy;
	char quoted[64];

	if (*pattern == '\0') {
		config_fail(p, "section [provider] needs a host name or pattern");
		return;
	}
	if (!config_valid_pattern(pattern)) {
		config_fail(p, "invalid host pattern '%s' in [provider]",
			    config_quote(quoted, pattern));
		return;
	}
	for (size_t i = 0; i < p->provider_count; i++) {
		if (util_strcaseeq(p->providers[i].policy->pattern, pattern)) {
			config_fail(p, "duplicate section [provider %s] (first at line %d)",
				    pattern, p->providers[i].section_line);
			return;
		}
	}
	if (strcmp(pattern, "*") == 0) {
		policy = &cfg->default_policy;
	} else {
		struct provider_policy **tail = &cfg->policies;

		policy = xmalloc(sizeof(*policy));
		config_policy_init(policy, pattern);
		while (*tail != NULL)
			tail = &(*tail)->next;
		*tail = policy;
	}
	p->providers = xrealloc(p->providers, (p->provider_count + 1) * sizeof(*p->providers));
	meta = &p->providers[p->provider_count];
	memset(meta, 0, sizeof(*meta));
	meta->policy = policy;
	meta->section_line = p->lineno;
	p->provider = (ssize_t)p->provider_count++;
}

static void config_begin_section(struct config_parse *p, char *name)
{
	char quoted[64];
	char *end = name + strlen(name);

	while (isspace((unsigned char)*name))
		name++;
	while (end > name && isspace((unsigned char)end[-1]))
		*--end = '\0';
	p->section = NULL;
	p->provider = -1;
	if (strncasecmp(name, "provider", 8) == 0 &&
	    (name[8] == '\0' || isspace((unsigned char)name[8]))) {
		name += 8;
		while (isspace((unsigned char)*name))
			name++;
		config_begin_provider(p, name);
		return;
	}
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

/* Makes *FIELD absolute against BASE; NULL, empty and "-" stay as they are. */
static void config_absolute(char **field, const char *base)
{
	char *abs;

	if (*field == NULL || **field == '\0' || **field == '/' || strcmp(*field, "-") == 0)
		return;
	abs = xasprintf("%s/%s", base, *field);
	free(*field);
	*field = abs;
}

/* Keys a [provider HOST] section did not set come from [provider *]; a
 * section that chose its TLS mode but no port gets that mode's port. */
static void config_finish_providers(struct config_parse *p)
{
	const struct provider_policy *def = &p->cfg->default_policy;
	const struct config_provider *def_meta = NULL;

	for (size_t i = 0; i < p->provider_count; i++) {
		if (p->providers[i].policy == def)
			def_meta = &p->providers[i];
	}
	if (def_meta != NULL && def_meta->key_line[PROVIDER_TLS] != 0 &&
	    def_meta->key_line[PROVIDER_PORT] == 0)
		p->cfg->default_policy.port = def->tls == PROVIDER_TLS_IMPLICIT ? 995 : 110;
	for (size_t i = 0; i < p->provider_count; i++) {
		const struct config_provider *meta = &p->providers[i];
		struct provider_policy *policy = meta->policy;

		if (policy == def)
			continue;
		if (meta->key_line[PROVIDER_TLS] == 0)
			policy->tls = def->tls;
		if (meta->key_line[PROVIDER_PORT] == 0) {
			if (meta->key_line[PROVIDER_TLS] != 0)
				policy->port = policy->tls == PROVIDER_TLS_IMPLICIT ? 995 : 110;
			else
				policy->port = def->port;
		}
		if (meta->key_line[PROVIDER_CA_FILE] == 0 && def->ca_file != NULL)
			policy->ca_file = xstrdup(def->ca_file);
		if (meta->key_line[PROVIDER_VERIFY] == 0)
			policy->verify = def->verify;
		if (meta->key_line[PROVIDER_ALLOW_PRIVATE] == 0)
			policy->allow_private = def->allow_private;
	}
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
	static const char *const server_paths[] = {"data_dir", "log_file", "tls_cert", "tls_key"};
	const char *const values[] = {cfg->data_dir, cfg->log_file, cfg->tls_cert, cfg->tls_key};

	for (size_t i = 0; i < sizeof(server_paths) / sizeof(server_paths[0]); i++) {
		int line = p->key_line[config_key_index("server", server_paths[i])];
		/* A default made absolute comes from the file's own folder: line 1. */
		if (line == 0)
			line = data_line != 0 ? data_line : 1;
		if (config_check_path_length(p, server_paths[i], values[i], line, err, errlen) < 0)
			return -1;
	}
	for (size_t i = 0; i < p->provider_count; i++) {
		const struct config_provider *meta = &p->providers[i];
		int line = meta->key_line[PROVIDER_CA_FILE];
		if (config_check_path_length(p, "ca_file", meta->policy->ca_file,
					     line != 0 ? line : meta->section_line, err,
					     errlen) < 0)
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
	config_finish_providers(p);
	config_absolute(&cfg->data_dir, base);
	config_absolute(&cfg->log_file, base);
	config_absolute(&cfg->tls_cert, base);
	config_absolute(&cfg->tls_key, base);
	config_absolute(&cfg->default_policy.ca_file, base);
	for (struct provider_policy *policy = cfg->policies; policy != NULL; policy = policy->next)
		config_absolute(&policy->ca_file, base);
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

/* Prints KEY's value with a blank before it, or nothing when it is empty,
 * so that no line of the summary ends in a blank. */
static void config_write_value(const struct popgate_config *cfg, const struct config_key *key,
			       FILE *out)
{
	const void *field = (const char *)cfg + key->offset;

	switch (key->type) {
	case CONFIG_TEXT:
	case CONFIG_PATH:
	case CONFIG_OPT_PATH:
	case CONFIG_LOG_FILE:
	case CONFIG_HOST:
	case CONFIG_ADDRESS:
	case CONFIG_LEVEL:
	case CONFIG_NAMESERVERS: {
		const char *s = *(char *const *)field;

		if (s != NULL && *s != '\0')
			fprintf(out, " %s", s);
		break;
	}
	case CONFIG_INT:
		fprintf(out, " %d", *(const int *)field);
		break;
	case CONFIG_LLONG:
		fprintf(out, " %lld", *(const long long *)field);
		break;
	case CONFIG_BOOL:
		fputs(*(const bool *)field ? " yes" : " no", out);
		break;
	case CONFIG_ALLOW:
		for (size_t i = 0; i < cfg->provider_allow_count; i++)
			fprintf(out, " %s", cfg->provider_allow[i]);
		break;
	}
}

static void config_write_policy(const struct provider_policy *policy, FILE *out)
{
	fprintf(out, "\n[provider %s]\nport = %d\ntls = %s\nca_file =%s%s\nverify = %s\n"
		     "allow_private = %s\n",
		policy->pattern, policy->port, provider_tls_names[policy->tls],
		policy->ca_file != NULL ? " " : "", policy->ca_file != NULL ? policy->ca_file : "",
		policy->verify ? "yes" : "no", policy->allow_private ? "yes" : "no");
}

static void config_free_policy(struct provider_policy *policy)
{
	xfree(&policy->pattern);
	xfree(&policy->ca_file);
}

void config_defaults(struct popgate_config *cfg)
{
	char host[256];

	memset(cfg, 0, sizeof(*cfg));
	cfg->data_dir = xstrdup("data");
	cfg->log_file = xstrdup("-");
	cfg->log_level = xstrdup("info");
	cfg->run_as_user = xstrdup("popgate");
	/* gethostname may cut a long name without a NUL; the last byte guards it. */
	host[sizeof(host) - 1] = '\0';
	if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	cfg->hostname = xstrdup(host);
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
	config_policy_init(&cfg->default_policy, "*");
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
	p.provider = -1;
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
	free(p.providers);
	free(p.line);
	fclose(p.file);
	return result;
}

void config_free(struct popgate_config *cfg)
{
	struct provider_policy *policy;

	if (cfg == NULL)
		return;
	xfree(&cfg->data_dir);
	xfree(&cfg->log_file);
	xfree(&cfg->log_level);
	xfree(&cfg->run_as_user);
	xfree(&cfg->hostname);
	xfree(&cfg->nameservers);
	xfree(&cfg->listen_address);
	xfree(&cfg->tls_cert);
	xfree(&cfg->tls_key);
	xfree(&cfg->pseudo_domain);
	config_free_allow(cfg);
	while ((policy = cfg->policies) != NULL) {
		cfg->policies = policy->next;
		config_free_policy(policy);
		free(policy);
	}
	config_free_policy(&cfg->default_policy);
	memset(cfg, 0, sizeof(*cfg));
}

int config_write_summary(const struct popgate_config *cfg, FILE *out)
{
	const char *section = NULL;

	/* The configuration holds no secret (credentials live in the store,
	 * sealed), so every key can be shown as it is in effect. */
	for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
		const struct config_key *key = &config_keys[i];

		if (section == NULL || strcmp(section, key->section) != 0) {
			fprintf(out, "%s[%s]\n", section != NULL ? "\n" : "", key->section);
			section = key->section;
		}
		fprintf(out, "%s =", key->name);
		config_write_value(cfg, key, out);
		fputc('\n', out);
	}
	config_write_policy(&cfg->default_policy, out);
	for (const struct provider_policy *policy = cfg->policies; policy != NULL;
	     policy = policy->next)
		config_write_policy(policy, out);
	return ferror(out) ? -1 : 0;
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
    {"server", "nameservers"},	  {"server", "listen_address"}, {"server", "pop3_port"},
    {"server", "pop3s_port"},	  {"server", "tls_cert"},	     {"server", "tls_key"},
    {"pipeline", "workers"},	  {"pipeline", "worker_timeout"},
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

const struct provider_policy *config_policy_for_host(const struct popgate_config *cfg,
						     const char *host)
{
	for (const struct provider_policy *policy = cfg->policies; policy != NULL;
	     policy = policy->next) {
		if (host != NULL && config_pattern_match(policy->pattern, host))
			return policy;
	}
	return &cfg->default_policy;
}

bool config_host_allowed(const struct popgate_config *cfg, const char *host)
{
	const char *refusal = policy_host_refusal(host);

	/* Checked here so that every caller (login and fetch) refuses an
	 * ambiguous IPv4 literal, whatever the allow-list says. */
	if (refusal != NULL) {
		log_event(LOG_WARN, "host_refused", NULL, NULL, "provider host refused: %s",
			  refusal);
		return false;
	}
	if (cfg->provider_allow_count == 0)
		return true;
	for (size_t i = 0; i < cfg->provider_allow_count; i++) {
		if (config_pattern_match(cfg->provider_allow[i], host))
			return true;
	}
	return false;
}

bool config_pattern_match(const char *pattern, const char *host)
{
	if (strcmp(pattern, "*") == 0)
		return true;
	if (pattern[0] == '*' && pattern[1] == '.') {
		/* SUFFIX keeps its dot, so "*.web.de" matches "pop.web.de" but
		 * neither "web.de" nor "evilweb.de". */
		const char *suffix = pattern + 1;
		size_t suffix_len = strlen(suffix);
		size_t host_len = strlen(host);

		if (host_len <= suffix_len)
			return false;
		return util_strcaseeq(host + host_len - suffix_len, suffix);
	}
	return util_strcaseeq(pattern, host);
}
