/*
 * config_show.c — `config show`: the effective configuration printed as INI
 * that config_load reads back to the same configuration (the plain sections
 * from their key table, then every named section); and one section's keys
 * as the text the filters get (config_section_text).
 *
 * Owns: nothing. Must never: print a line config_load could not read back,
 * or end a line in a blank.
 * SECURITY: the configuration holds no secret (credentials live in the
 * store, sealed), so every key is shown as it is in effect.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/config_key.h"
#include "core/config_section.h"

void config_key_write(const struct config_key *key, const void *base, FILE *out)
{
	const void *field = (const char *)base + key->offset;

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
	case CONFIG_RELAYS: {
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
	case CONFIG_CHOICE:
		fprintf(out, " %s", key->choices[*(const int *)field]);
		break;
	case CONFIG_ALLOW: {
		const struct popgate_config *cfg = base;

		for (size_t i = 0; i < cfg->provider_allow_count; i++)
			fprintf(out, " %s", cfg->provider_allow[i]);
		break;
	}
	}
}

char *config_section_text(const struct popgate_config *cfg, const char *section)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	if (out == NULL)
		abort(); /* out of memory, as the x* allocators handle it */
	for (size_t i = 0; i < config_key_count; i++) {
		const struct config_key *key = &config_keys[i];

		if (strcmp(key->section, section) != 0)
			continue;
		/* config_key_write puts a space before each value. */
		fputs(key->name, out);
		if (key->type == CONFIG_TEXT || key->type == CONFIG_PATH ||
		    key->type == CONFIG_OPT_PATH || key->type == CONFIG_NULL_PATH ||
		    key->type == CONFIG_HEADER_TEXT || key->type == CONFIG_HOSTS ||
		    key->type == CONFIG_RELAYS) {
			const char *s = *(char *const *)((const char *)cfg + key->offset);

			if (s == NULL || *s == '\0')
				fputc(' ', out);
		}
		config_key_write(key, cfg, out);
		fputc('\n', out);
	}
	if (fclose(out) != 0)
		abort();
	return text;
}

int config_write_summary(const struct popgate_config *cfg, FILE *out)
{
	const char *section = NULL;

	for (size_t i = 0; i < config_key_count; i++) {
		const struct config_key *key = &config_keys[i];

		if (section == NULL || strcmp(section, key->section) != 0) {
			fprintf(out, "%s[%s]\n", section != NULL ? "\n" : "", key->section);
			section = key->section;
		}
		fprintf(out, "%s =", key->name);
		config_key_write(key, cfg, out);
		fputc('\n', out);
	}
	config_sections_write(config_section_types, config_section_type_count, cfg, out);
	return ferror(out) ? -1 : 0;
}
