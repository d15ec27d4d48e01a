/*
 * config_key.c — the typed keys (config_key.h): checking a value from the
 * file against its key's type and limits and storing it, and freeing what a
 * key holds. The same code serves the plain sections (config.c) and the
 * named ones (config_section.c); the host names, host patterns, numeric
 * addresses, nameserver lists, numbers, yes/no values, choices and the
 * provider allow-list are parsed here and nowhere else.
 *
 * Owns: nothing of its own; the text a key's field holds belongs to the
 * struct it was stored in, released by config_key_free. Must never: store a
 * value it did not fully check, or echo one into an error unquoted.
 * SECURITY: the file is trusted (it is the administrator's); its text is
 * still quoted (config_quote) before it goes into an error message.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/util.h>

#include "core/config.h"
#include "core/config_key.h"
#include "core/log.h"
#include "core/util.h"
#include "filters/received.h"

const char *config_quote(char out[64], const char *s)
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

bool config_valid_pattern(const char *s)
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
static int config_set_allow(struct popgate_config *cfg, const char *value, char *msg,
			    size_t msglen)
{
	static const char separators[] = " \t,";
	char *copy = xstrdup(value);
	char *save = NULL;
	char quoted[64];

	config_free_allow(cfg);
	for (char *tok = strtok_r(copy, separators, &save); tok != NULL;
	     tok = strtok_r(NULL, separators, &save)) {
		if (!config_valid_pattern(tok)) {
			snprintf(msg, msglen, "invalid host pattern '%s' in allow",
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

/* True if LIST is empty or holds only host names separated by spaces or
 * commas (DNS zones, such as a blocklist's). */
static bool config_hosts_valid(const char *list)
{
	char *copy = xstrdup(list), *save = NULL;
	bool valid = true;

	for (char *item = strtok_r(copy, " ,", &save); item != NULL && valid;
	     item = strtok_r(NULL, " ,", &save))
		valid = config_valid_hostname(item);
	free(copy);
	return valid;
}

/* "'VALUE' is not one of A, B, C" for a CONFIG_CHOICE key. */
static void config_bad_choice(const struct config_key *key, const char *value, char *msg,
			      size_t msglen)
{
	char quoted[64];
	size_t used;

	used = (size_t)snprintf(msg, msglen, "%s: '%s' is not one of", key->name,
				config_quote(quoted, value));
	for (size_t i = 0; key->choices[i] != NULL && used < msglen; i++)
		used += (size_t)snprintf(msg + used, msglen - used, "%s %s", i > 0 ? "," : "",
					 key->choices[i]);
}

/* Checks VALUE for KEY and stores it in the struct at BASE. */
int config_key_set(const struct config_key *key, void *base, const char *value, char *msg,
		   size_t msglen)
{
	void *field = (char *)base + key->offset;
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
	case CONFIG_NULL_PATH:
		xfree((char **)field);
		if (*value != '\0')
			*(char **)field = xstrdup(value);
		return 0;
	case CONFIG_HEADER_TEXT:
		/* It goes into a header field as it is: no line break, no byte an
		 * unencoded field may not hold. */
		for (const char *c = value; *c != '\0'; c++) {
			if (*c < 0x20 || *c > 0x7e) {
				snprintf(msg, msglen,
					 "%s: '%s' holds a byte that is not printable ASCII",
					 key->name, config_quote(quoted, value));
				return -1;
			}
		}
		if ((long long)strlen(value) > key->max) {
			snprintf(msg, msglen, "%s: '%s' is longer than %lld characters", key->name,
				 config_quote(quoted, value), key->max);
			return -1;
		}
		config_set_string(field, value);
		return 0;
	case CONFIG_NAMESERVERS:
		if (!config_nameservers_valid(value)) {
			snprintf(msg, msglen,
				 "%s: '%s' is not a list of numeric addresses, each with an "
				 "optional port (192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53)",
				 key->name, config_quote(quoted, value));
			return -1;
		}
		config_set_string(field, value);
		return 0;
	case CONFIG_HOSTS:
		if (!config_hosts_valid(value)) {
			snprintf(msg, msglen,
				 "%s: '%s' is not a list of host names separated by spaces or "
				 "commas",
				 key->name, config_quote(quoted, value));
			return -1;
		}
		config_set_string(field, value);
		return 0;
	case CONFIG_RELAYS:
		if (received_relays_check(value, msg, msglen) < 0)
			return -1;
		config_set_string(field, value);
		return 0;
	case CONFIG_HOST:
		if (!config_valid_hostname(value)) {
			snprintf(msg, msglen, "%s: '%s' is not a valid host name", key->name,
				 config_quote(quoted, value));
			return -1;
		}
		config_set_string(field, value);
		return 0;
	case CONFIG_ADDRESS: {
		unsigned char addr[sizeof(struct in6_addr)];

		if (inet_pton(AF_INET, value, addr) != 1 && inet_pton(AF_INET6, value, addr) != 1) {
			snprintf(msg, msglen, "%s: '%s' is not a numeric IPv4 or IPv6 address",
				 key->name, config_quote(quoted, value));
			return -1;
		}
		config_set_string(field, value);
		return 0;
	}
	case CONFIG_LEVEL: {
		enum log_level level;

		if (log_level_parse(value, &level) < 0) {
			snprintf(msg, msglen, "%s: '%s' is not one of debug, info, warn, error",
				 key->name, config_quote(quoted, value));
			return -1;
		}
		config_set_string(field, value);
		return 0;
	}
	case CONFIG_INT:
	case CONFIG_LLONG:
		if (config_parse_number(value, key->min, key->max, &number) < 0) {
			snprintf(msg, msglen, "%s: '%s' is not a whole number from %lld to %lld",
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
	case CONFIG_CHOICE:
		for (flag = 0; key->choices[flag] != NULL; flag++) {
			if (util_strcaseeq(value, key->choices[flag])) {
				*(int *)field = flag;
				return 0;
			}
		}
		config_bad_choice(key, value, msg, msglen);
		return -1;
	case CONFIG_ALLOW:
		return config_set_allow(base, value, msg, msglen);
	}
	abort(); /* every type is handled above */
empty:
	snprintf(msg, msglen, "%s: empty value", key->name);
	return -1;
bad_bool:
	snprintf(msg, msglen, "%s: '%s' is not yes or no", key->name, config_quote(quoted, value));
	return -1;
}

void config_key_free(const struct config_key *key, void *base)
{
	switch (key->type) {
	case CONFIG_TEXT:
	case CONFIG_PATH:
	case CONFIG_OPT_PATH:
	case CONFIG_NULL_PATH:
	case CONFIG_LOG_FILE:
	case CONFIG_HOST:
	case CONFIG_ADDRESS:
	case CONFIG_LEVEL:
	case CONFIG_NAMESERVERS:
	case CONFIG_HEADER_TEXT:
	case CONFIG_HOSTS:
	case CONFIG_RELAYS:
		xfree((char **)((char *)base + key->offset));
		break;
	case CONFIG_INT:
	case CONFIG_LLONG:
	case CONFIG_BOOL:
	case CONFIG_CHOICE:
		break;
	case CONFIG_ALLOW:
		config_free_allow(base);
		break;
	}
}
