/*
 * config_section.h — named sections: "[TYPE NAME]" headers, of which a file
 * may hold any number per type, each filling one struct of the type's own
 * ("[provider pop.gmx.net]" fills a struct provider_policy).
 *
 * The mechanism reads the header, refuses a name the type does not accept, a
 * name given twice (case aside), an unknown or repeated key, checks and
 * stores each value through the type's key table (core/config_key.h), makes
 * path values absolute, and prints the sections for `config show`. A new
 * kind of section ([relay NAME], [filter-profile NAME]) is a struct, a key
 * table and an entry in config_section_types — no parsing code.
 */
#ifndef POPGATE_CONFIG_SECTION_H
#define POPGATE_CONFIG_SECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "core/config_key.h"

/* The most keys one section type may have. */
#define CONFIG_SECTION_KEYS_MAX 16

struct config_section;

/* One kind of named section. TARGET is the whole configuration the sections
 * hang on (struct popgate_config for popgate's own table). */
struct config_section_type {
	const char *name;      /* "provider": headers read "[provider NAME]" */
	const char *name_hint; /* what NAME must be, for "section [provider] needs …" */
	const struct config_key *keys; /* offsets into the type's struct */
	size_t key_count;
	/* Sets TARGET's sections of this type to the defaults (none, or a
	 * built-in one). */
	void (*init)(void *target);
	/* The struct for section NAME, made and hung on TARGET (or a built-in
	 * one, such as [provider *]); NULL with a sentence in MSG when NAME is
	 * not acceptable. */
	void *(*open)(void *target, const char *name, char *msg, size_t msglen);
	/* With every section of this type read (in file order): derives what the
	 * file left out. May be NULL. */
	void (*finish)(void *target, const struct config_section *sections, size_t count);
	/* The structs of this type on TARGET in `config show` order. */
	const void *(*first)(const void *target);
	const void *(*next)(const void *target, const void *object);
	const char *(*name_of)(const void *object);
	/* Frees every struct of this type on TARGET (the keys' text is freed
	 * by the mechanism first). */
	void (*release)(void *target);
};

/* One section as read: which keys it set, and where. */
struct config_section {
	const struct config_section_type *type;
	void *object;
	int line;
	int key_line[CONFIG_SECTION_KEYS_MAX]; /* 0 for a key the section left out */
};

/* The named sections one file holds, while it is read. */
struct config_sections {
	const struct config_section_type *const *types;
	size_t type_count;
	void *target;
	struct config_section *list;
	size_t count;
	ssize_t current; /* index of the section keys go to, or -1 */
};

/* popgate's section types, and how many. */
extern const struct config_section_type *const config_section_types[];
extern const size_t config_section_type_count;

/* Starts reading into TARGET with the TYPES given. */
void config_sections_init(struct config_sections *sections,
			  const struct config_section_type *const *types, size_t type_count,
			  void *target);

/*
 * HEADER is a section header's text without brackets, trimmed. 1 when it
 * begins a named section (keys go there until the next header), 0 when its
 * first word is no type's (a plain section: keys no longer go to a named
 * one), -1 with a sentence in MSG when it is refused.
 */
int config_sections_begin(struct config_sections *sections, const char *header, int line,
			  char *msg, size_t msglen);

/* True while keys go to a named section. */
bool config_sections_active(const struct config_sections *sections);

/* KEY = VALUE at LINE for the current named section. 0, or -1 with MSG. */
int config_sections_key(struct config_sections *sections, const char *key, const char *value,
			int line, char *msg, size_t msglen);

/* With the whole file read: each type's finish, then every path value made
 * absolute against BASE. */
void config_sections_finish(struct config_sections *sections, const char *base);

/* Every path value must fit on a line of `config show` (at most LINE_MAX
 * characters). 0, or -1 with the line to blame in *LINE and MSG. */
int config_sections_check_paths(const struct config_sections *sections, int line_max, int *line,
				char *msg, size_t msglen);

/* Frees what reading needed (not the structs: they are TARGET's). */
void config_sections_done(struct config_sections *sections);

/* Sets TARGET's sections of every type to their defaults. */
void config_sections_defaults(const struct config_section_type *const *types, size_t type_count,
			      void *target);

/* Frees TARGET's sections of every type. */
void config_sections_free(const struct config_section_type *const *types, size_t type_count,
			  void *target);

/* Prints TARGET's sections of every type as INI, each after a blank line. */
void config_sections_write(const struct config_section_type *const *types, size_t type_count,
			   const void *target, FILE *out);

#endif
