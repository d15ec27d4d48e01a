/*
 * settings.c — the filters' settings (filter_settings_set, filter_setting
 * of filter.h): the [spam] section as the worker got it in its setup frame.
 * Apart from the table in filter.c, so that a filter that reads a setting
 * can be linked without every other filter (the fuzz targets).
 *
 * Owns: the copy of the settings text. Must never: return a value that
 * runs past its line.
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "filters/filter.h"

/* The settings as set, one NUL-terminated "KEY VALUE" line after another. */
static char *filter_settings_text;
static size_t filter_settings_len;

void filter_settings_set(const char *text)
{
	free(filter_settings_text);
	filter_settings_text = NULL;
	filter_settings_len = 0;
	if (text == NULL)
		return;
	filter_settings_len = strlen(text);
	filter_settings_text = xstrdup(text);
	for (size_t i = 0; i < filter_settings_len; i++) {
		if (filter_settings_text[i] == '\n')
			filter_settings_text[i] = '\0';
	}
}

const char *filter_setting(const char *key)
{
	size_t key_len = strlen(key);

	for (size_t i = 0; i < filter_settings_len; i += strlen(filter_settings_text + i) + 1) {
		const char *line = filter_settings_text + i;

		if (strncmp(line, key, key_len) == 0 && line[key_len] == ' ')
			return line + key_len + 1;
	}
	return NULL;
}
