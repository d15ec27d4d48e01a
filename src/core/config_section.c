/*
 * config_section.c — named sections ("[provider pop.gmx.net]"): the
 * mechanism that reads, checks, completes and prints them, and the table of
 * popgate's section types, of which [provider PATTERN] is the first (with
 * the provider-policy questions: config_policy_for_host, config_host_allowed).
 *
 * Owns: nothing after a load but what the types hang on the configuration
 * (the type's release frees it). Must never: accept a key, a name or a value
 * the type does not know, or let two sections of a type share a name.
 * SECURITY: the file is trusted (the administrator's); the names it holds are
 * quoted in errors as text from a file.
 */
#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/config_section.h"
#include "core/log.h"
#include "core/policy.h"
#include "core/util.h"

void config_sections_init(struct config_sections *sections,
			  const struct config_section_type *const *types, size_t type_count,
			  void *target)
{
	memset(sections, 0, sizeof(*sections));
	sections->types = types;
	sections->type_count = type_count;
	sections->target = target;
	sections->current = -1;
}

/* The type whose name is HEADER's first word, and where the name after it
 * starts; NULL when there is none. */
static const struct config_section_type *config_section_type_of(
    const struct config_sections *sections, const char *header, const char **name)
{
	for (size_t i = 0; i < sections->type_count; i++) {
		const struct config_section_type *type = sections->types[i];
		size_t len = strlen(type->name);

		if (strncasecmp(header, type->name, len) == 0 &&
		    (header[len] == '\0' || isspace((unsigned char)header[len]))) {
			*name = header + len;
			while (isspace((unsigned char)**name))
				(*name)++;
			return type;
		}
	}
	return NULL;
}

/* The name a section read earlier was given: the type's name_of of it. */
static const char *config_section_name(const struct config_section *section)
{
	return section->type->name_of(section->object);
}

int config_sections_begin(struct config_sections *sections, const char *header, int line,
			  char *msg, size_t msglen)
{
	const struct config_section_type *type;
	struct config_section *section;
	const char *name = NULL;
	void *object;

	sections->current = -1;
	type = config_section_type_of(sections, header, &name);
	if (type == NULL)
		return 0;
	assert(type->key_count <= CONFIG_SECTION_KEYS_MAX);
	if (*name == '\0') {
		snprintf(msg, msglen, "section [%s] needs %s", type->name, type->name_hint);
		return -1;
	}
	for (size_t i = 0; i < sections->count; i++) {
		if (sections->list[i].type == type &&
		    util_strcaseeq(config_section_name(&sections->list[i]), name)) {
			char quoted[64];

			snprintf(msg, msglen, "duplicate section [%s %s] (first at line %d)",
				 type->name, config_quote(quoted, name), sections->list[i].line);
			return -1;
		}
	}
	object = type->open(sections->target, name, msg, msglen);
	if (object == NULL)
		return -1;
	sections->list = xrealloc(sections->list, (sections->count + 1) * sizeof(*sections->list));
	section = &sections->list[sections->count];
	memset(section, 0, sizeof(*section));
	section->type = type;
	section->object = object;
	section->line = line;
	sections->current = (ssize_t)sections->count++;
	return 1;
}

bool config_sections_active(const struct config_sections *sections)
{
	return sections->current >= 0;
}

int config_sections_key(struct config_sections *sections, const char *key, const char *value,
			int line, char *msg, size_t msglen)
{
	struct config_section *section = &sections->list[sections->current];
	const struct config_section_type *type = section->type;
	char quoted[64];

	for (size_t i = 0; i < type->key_count; i++) {
		if (!util_strcaseeq(type->keys[i].name, key))
			continue;
		if (section->key_line[i] != 0) {
			snprintf(msg, msglen, "duplicate key '%s' in [%s %s] (first set at line %d)",
				 type->keys[i].name, type->name, config_section_name(section),
				 section->key_line[i]);
			return -1;
		}
		if (config_key_set(&type->keys[i], section->object, value, msg, msglen) < 0)
			return -1;
		section->key_line[i] = line;
		return 0;
	}
	snprintf(msg, msglen, "unknown key '%s' in [%s %s]", config_quote(quoted, key), type->name,
		 config_section_name(section));
	return -1;
}

static bool config_key_is_path(const struct config_key *key)
{
	return key->type == CONFIG_PATH || key->type == CONFIG_NULL_PATH;
}

void config_sections_finish(struct config_sections *sections, const char *base)
{
	struct config_section *of_type = xcalloc(sections->count + 1, sizeof(*of_type));

	for (size_t t = 0; t < sections->type_count; t++) {
		const struct config_section_type *type = sections->types[t];
		size_t count = 0;

		for (size_t i = 0; i < sections->count; i++) {
			if (sections->list[i].type == type)
				of_type[count++] = sections->list[i];
		}
		if (type->finish != NULL)
			type->finish(sections->target, of_type, count);
	}
	free(of_type);
	for (size_t i = 0; i < sections->count; i++) {
		const struct config_section *section = &sections->list[i];

		for (size_t k = 0; k < section->type->key_count; k++) {
			const struct config_key *key = &section->type->keys[k];
			char **field = (char **)((char *)section->object + key->offset);

			if (!config_key_is_path(key) || *field == NULL || **field == '\0' ||
			    **field == '/')
				continue;
			char *absolute = xasprintf("%s/%s", base, *field);
			free(*field);
			*field = absolute;
		}
	}
}

int config_sections_check_paths(const struct config_sections *sections, int line_max, int *line,
				char *msg, size_t msglen)
{
	for (size_t i = 0; i < sections->count; i++) {
		const struct config_section *section = &sections->list[i];

		for (size_t k = 0; k < section->type->key_count; k++) {
			const struct config_key *key = &section->type->keys[k];
			const char *value;

			if (!config_key_is_path(key))
				continue;
			value = *(char *const *)((const char *)section->object + key->offset);
			if (value == NULL || strlen(key->name) + 3 + strlen(value) <= (size_t)line_max)
				continue;
			*line = section->key_line[k] != 0 ? section->key_line[k] : section->line;
			snprintf(msg, msglen,
				 "%s is %zu characters long once made absolute; a line holds at "
				 "most %d (give a shorter absolute path)",
				 key->name, strlen(value), line_max);
			return -1;
		}
	}
	return 0;
}

void config_sections_done(struct config_sections *sections)
{
	free(sections->list);
	sections->list = NULL;
	sections->count = 0;
	sections->current = -1;
}

void config_sections_defaults(const struct config_section_type *const *types, size_t type_count,
			      void *target)
{
	for (size_t t = 0; t < type_count; t++)
		types[t]->init(target);
}

void config_sections_free(const struct config_section_type *const *types, size_t type_count,
			  void *target)
{
	for (size_t t = 0; t < type_count; t++) {
		const struct config_section_type *type = types[t];

		for (const void *object = type->first(target); object != NULL;
		     object = type->next(target, object)) {
			for (size_t k = 0; k < type->key_count; k++)
				config_key_free(&type->keys[k], (void *)object);
		}
		type->release(target);
	}
}

void config_sections_write(const struct config_section_type *const *types, size_t type_count,
			   const void *target, FILE *out)
{
	for (size_t t = 0; t < type_count; t++) {
		const struct config_section_type *type = types[t];

		for (const void *object = type->first(target); object != NULL;
		     object = type->next(target, object)) {
			fprintf(out, "\n[%s %s]\n", type->name, type->name_of(object));
			for (size_t k = 0; k < type->key_count; k++) {
				fprintf(out, "%s =", type->keys[k].name);
				config_key_write(&type->keys[k], object, out);
				fputc('\n', out);
			}
		}
	}
}

/* ---- [provider PATTERN]: how to reach a provider host ---------------------- */

/* The keys of a [provider] section, in the order of provider_keys. */
enum provider_key { PROVIDER_PORT, PROVIDER_TLS, PROVIDER_CA_FILE, PROVIDER_VERIFY,
		    PROVIDER_ALLOW_PRIVATE, PROVIDER_KEY_COUNT };

static const char *const provider_tls_names[] = {
	[PROVIDER_TLS_IMPLICIT] = "implicit",
	[PROVIDER_TLS_STARTTLS] = "starttls",
	[PROVIDER_TLS_NONE] = "none",
	NULL,
};
_Static_assert(sizeof(enum provider_tls) == sizeof(int), "a CONFIG_CHOICE field is an int");

#define PROVIDER_FIELD(field) offsetof(struct provider_policy, field)

static const struct config_key provider_keys[] = {
	[PROVIDER_PORT] = {NULL, "port", CONFIG_INT, PROVIDER_FIELD(port), 1, 65535, NULL},
	[PROVIDER_TLS] = {NULL, "tls", CONFIG_CHOICE, PROVIDER_FIELD(tls), 0, 0,
			  provider_tls_names},
	[PROVIDER_CA_FILE] = {NULL, "ca_file", CONFIG_NULL_PATH, PROVIDER_FIELD(ca_file), 0, 0,
			      NULL},
	[PROVIDER_VERIFY] = {NULL, "verify", CONFIG_BOOL, PROVIDER_FIELD(verify), 0, 0, NULL},
	[PROVIDER_ALLOW_PRIVATE] = {NULL, "allow_private", CONFIG_BOOL,
				    PROVIDER_FIELD(allow_private), 0, 0, NULL},
};
_Static_assert(sizeof(provider_keys) / sizeof(provider_keys[0]) == PROVIDER_KEY_COUNT,
	       "every provider key is in the table");

static void provider_policy_init(struct provider_policy *policy, const char *pattern)
{
	memset(policy, 0, sizeof(*policy));
	policy->pattern = xstrdup(pattern);
	policy->port = 995;
	policy->tls = PROVIDER_TLS_IMPLICIT;
	policy->verify = true;
}

static void provider_init(void *target)
{
	struct popgate_config *cfg = target;

	cfg->policies = NULL;
	provider_policy_init(&cfg->default_policy, "*");
}

/* "[provider *]" is the default policy; any other pattern a new one, kept in
 * file order. */
static void *provider_open(void *target, const char *pattern, char *msg, size_t msglen)
{
	struct popgate_config *cfg = target;
	struct provider_policy **tail = &cfg->policies;
	struct provider_policy *policy;
	char quoted[64];

	if (!config_valid_pattern(pattern)) {
		snprintf(msg, msglen, "invalid host pattern '%s' in [provider]",
			 config_quote(quoted, pattern));
		return NULL;
	}
	if (strcmp(pattern, "*") == 0)
		return &cfg->default_policy;
	policy = xmalloc(sizeof(*policy));
	provider_policy_init(policy, pattern);
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = policy;
	return policy;
}

/* Keys a [provider HOST] section did not set come from [provider *], so
 * section order does not matter; a section that chose its TLS mode but no
 * port gets that mode's port. */
static void provider_finish(void *target, const struct config_section *sections, size_t count)
{
	struct popgate_config *cfg = target;
	const struct provider_policy *def = &cfg->default_policy;

	for (size_t i = 0; i < count; i++) {
		if (sections[i].object == def && sections[i].key_line[PROVIDER_TLS] != 0 &&
		    sections[i].key_line[PROVIDER_PORT] == 0)
			cfg->default_policy.port = def->tls == PROVIDER_TLS_IMPLICIT ? 995 : 110;
	}
	for (size_t i = 0; i < count; i++) {
		const int *key_line = sections[i].key_line;
		struct provider_policy *policy = sections[i].object;

		if (policy == def)
			continue;
		if (key_line[PROVIDER_TLS] == 0)
			policy->tls = def->tls;
		if (key_line[PROVIDER_PORT] == 0) {
			if (key_line[PROVIDER_TLS] != 0)
				policy->port = policy->tls == PROVIDER_TLS_IMPLICIT ? 995 : 110;
			else
				policy->port = def->port;
		}
		if (key_line[PROVIDER_CA_FILE] == 0 && def->ca_file != NULL)
			policy->ca_file = xstrdup(def->ca_file);
		if (key_line[PROVIDER_VERIFY] == 0)
			policy->verify = def->verify;
		if (key_line[PROVIDER_ALLOW_PRIVATE] == 0)
			policy->allow_private = def->allow_private;
	}
}

static const void *provider_first(const void *target)
{
	return &((const struct popgate_config *)target)->default_policy;
}

static const void *provider_next(const void *target, const void *object)
{
	const struct popgate_config *cfg = target;
	const struct provider_policy *policy = object;

	return policy == &cfg->default_policy ? cfg->policies : policy->next;
}

static const char *provider_name_of(const void *object)
{
	return ((const struct provider_policy *)object)->pattern;
}

static void provider_release(void *target)
{
	struct popgate_config *cfg = target;
	struct provider_policy *policy;

	while ((policy = cfg->policies) != NULL) {
		cfg->policies = policy->next;
		free(policy->pattern);
		free(policy);
	}
	xfree(&cfg->default_policy.pattern);
}

static const struct config_section_type config_provider_type = {
	.name = "provider",
	.name_hint = "a host name or pattern",
	.keys = provider_keys,
	.key_count = PROVIDER_KEY_COUNT,
	.init = provider_init,
	.open = provider_open,
	.finish = provider_finish,
	.first = provider_first,
	.next = provider_next,
	.name_of = provider_name_of,
	.release = provider_release,
};

/* The policy questions the login and the fetch ask of the sections read. */

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

const struct config_section_type *const config_section_types[] = {
	&config_provider_type,
};
const size_t config_section_type_count =
    sizeof(config_section_types) / sizeof(config_section_types[0]);
