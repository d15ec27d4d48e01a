/*
 * output.c — popgatectl's tables and JSON.
 *
 * Owns: the layout of what popgatectl prints.
 * Must never: print a cell unsanitised (names and errors come from clients
 * and providers), or print anything the caller did not hand it.
 */
#include <string.h>
#include <time.h>

#include "cli/output.h"
#include "core/util.h"

struct cli_table {
	size_t columns;
	char **cells; /* rows * columns, the header (if any) first */
	size_t rows;  /* including the header */
	size_t capacity;
};

/* S as printable ASCII: control and non-ASCII bytes become '?'. */
static char *cli_sanitized(const char *s)
{
	size_t len = strlen(s);
	char *out = xmalloc(len + 1);

	util_sanitize(out, len + 1, s, len);
	return out;
}

static void cli_table_append(struct cli_table *table, const char *const *cells)
{
	if (table->rows == table->capacity) {
		table->capacity = table->capacity == 0 ? 16 : table->capacity * 2;
		table->cells =
		    xrealloc(table->cells, table->capacity * table->columns * sizeof(char *));
	}
	for (size_t c = 0; c < table->columns; c++)
		table->cells[table->rows * table->columns + c] =
		    cli_sanitized(cells[c] != NULL ? cells[c] : "-");
	table->rows++;
}

struct cli_table *cli_table_new(size_t columns, const char *const *headers)
{
	struct cli_table *table = xcalloc(1, sizeof(*table));

	table->columns = columns;
	if (headers != NULL)
		cli_table_append(table, headers);
	return table;
}

void cli_table_add(struct cli_table *table, const char *const *cells)
{
	cli_table_append(table, cells);
}

int cli_table_print(const struct cli_table *table, FILE *out)
{
	size_t *width = xcalloc(table->columns, sizeof(*width));
	int rc = 0;

	for (size_t r = 0; r < table->rows; r++)
		for (size_t c = 0; c < table->columns; c++) {
			size_t len = strlen(table->cells[r * table->columns + c]);

			if (len > width[c])
				width[c] = len;
		}
	for (size_t r = 0; r < table->rows; r++) {
		for (size_t c = 0; c < table->columns; c++) {
			const char *cell = table->cells[r * table->columns + c];

			if (c + 1 < table->columns)
				fprintf(out, "%-*s  ", (int)width[c], cell);
			else
				fprintf(out, "%s\n", cell);
		}
	}
	if (fflush(out) != 0 || ferror(out))
		rc = -1;
	free(width);
	return rc;
}

void cli_table_free(struct cli_table **table)
{
	struct cli_table *t = *table;

	if (t == NULL)
		return;
	for (size_t i = 0; i < t->rows * t->columns; i++)
		free(t->cells[i]);
	free(t->cells);
	xfree(table);
}

void cli_format_time(int64_t t, char out[CLI_TIME_LEN])
{
	time_t when = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&when, &tm) == NULL ||
	    strftime(out, CLI_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, CLI_TIME_LEN, "%s", t == 0 ? "-" : "?");
}

json_t *cli_json_string(const char *s)
{
	char *clean;
	json_t *value;

	if (s == NULL)
		return json_null();
	clean = cli_sanitized(s);
	value = json_string(clean);
	free(clean);
	return value;
}

json_t *cli_json_time(int64_t t)
{
	char text[CLI_TIME_LEN];

	if (t == 0)
		return json_null();
	cli_format_time(t, text);
	return json_string(text);
}

int cli_json_print(json_t *value, FILE *out)
{
	int rc;

	if (value == NULL)
		return -1;
	rc = json_dumpf(value, out, JSON_INDENT(2) | JSON_ENCODE_ANY);
	json_decref(value);
	if (rc == 0 && (fputc('\n', out) == EOF || fflush(out) != 0))
		rc = -1;
	return rc;
}
