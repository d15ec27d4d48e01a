/*
 * config_key.h — the typed keys the configuration is made of, shared by the
 * INI core (config.c, which holds the plain sections' table), the named
 * sections (config_section.c) and `config show` (config_show.c, which prints
 * a key); a value is checked, stored and freed in config_key.c. Not for
 * other modules: they read struct popgate_config.
 *
 * A key says where its value lives (an offset into the struct of its
 * section: struct popgate_config for the plain sections, the section type's
 * own struct for a named one) and what it may be; reading and printing a
 * value is the same code for every section.
 */
#ifndef POPGATE_CONFIG_KEY_H
#define POPGATE_CONFIG_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The longest line config_load reads: inih's line buffer less the line end
 * and its NUL. */
#define CONFIG_LINE_MAX (INI_MAX_LINE - 2)

enum config_type {
	CONFIG_TEXT,	   /* any non-empty text (char *) */
	CONFIG_PATH,	   /* a non-empty path, made absolute after loading */
	CONFIG_OPT_PATH,   /* a path or empty (then derived from data_dir) */
	CONFIG_NULL_PATH,  /* a path, or empty for none (NULL); made absolute */
	CONFIG_LOG_FILE,   /* a path, or "-" for stderr */
	CONFIG_HOST,	   /* a host name */
	CONFIG_ADDRESS,	   /* a numeric IPv4 or IPv6 address */
	CONFIG_LEVEL,	   /* a log level name */
	CONFIG_INT,	   /* int in [min, max] */
	CONFIG_LLONG,	   /* long long in [min, max] */
	CONFIG_BOOL,	   /* bool: yes/no, true/false, on/off, 1/0 */
	CONFIG_CHOICE,	   /* int: the index of one of CHOICES' names */
	CONFIG_ALLOW,	   /* the provider allow-list (struct popgate_config only) */
	CONFIG_NAMESERVERS, /* numeric addresses with optional ports, or empty */
	CONFIG_HEADER_TEXT, /* printable ASCII for a header field, at most max long, or empty */
	CONFIG_HOSTS,	   /* host names separated by spaces or commas, or empty */
	CONFIG_RELAYS,	    /* [spam] trusted_relays (filters/received.h), or empty */
};

/* One key: where its value lives and what it may be. */
struct config_key {
	const char *section; /* a plain section's name; NULL in a named section's table */
	const char *name;
	enum config_type type;
	size_t offset;
	long long min;
	long long max;
	const char *const *choices; /* CONFIG_CHOICE: the names, ending with NULL */
};

/* The keys of the plain sections, grouped by section in the order `config
 * show` prints them. */
extern const struct config_key config_keys[];
extern const size_t config_key_count;

/*
 * Checks VALUE for KEY and stores it in the struct at BASE. 0, or -1 with a
 * sentence for the administrator in MSG ("port: '0' is not a whole number
 * from 1 to 65535"; the caller adds the file and line).
 */
int config_key_set(const struct config_key *key, void *base, const char *value, char *msg,
		   size_t msglen);

/* Prints KEY's value in the struct at BASE with a blank before it, or nothing
 * when it is empty, so that no line of `config show` ends in a blank. */
void config_key_write(const struct config_key *key, const void *base, FILE *out);

/* Frees the text KEY's field at BASE holds, if it is one of the text types. */
void config_key_free(const struct config_key *key, void *base);

/* True for "host.name", "*.suffix" and "*". */
bool config_valid_pattern(const char *s);

/* A printable, bounded copy of text from the file for an error message. */
const char *config_quote(char out[64], const char *s);

#endif
