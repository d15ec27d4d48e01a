/*
 * output.h — popgatectl's output: aligned tables for people, JSON (jansson)
 * for scripts, and the time format both use.
 *
 * Every text that goes out passes through here, sanitised: names and errors
 * come from clients and providers, and must not move a terminal's cursor or
 * break a JSON document.
 */
#ifndef POPGATE_CLI_OUTPUT_H
#define POPGATE_CLI_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* "2026-11-28T02:14:13Z" (UTC) plus the NUL. */
#define CLI_TIME_LEN 21

/* A table: rows of COLUMNS cells, printed with the columns aligned. */
struct cli_table;

/* A table of COLUMNS columns with the header line HEADERS (COLUMNS strings),
 * or none when HEADERS is NULL (for "field  value" lists). */
struct cli_table *cli_table_new(size_t columns, const char *const *headers);

/* Appends a row of the table's number of cells, copied and sanitised; a NULL
 * cell prints as "-". */
void cli_table_add(struct cli_table *table, const char *const *cells);

/* Prints the table: cells padded to their column's width, two spaces apart,
 * the last column unpadded. 0, or -1 on a write error. */
int cli_table_print(const struct cli_table *table, FILE *out);

/* Frees *TABLE; NULL is fine; sets *TABLE to NULL. */
void cli_table_free(struct cli_table **table);

/* Writes T as CLI_TIME_LEN-sized text into OUT; 0 (never) becomes "-". */
void cli_format_time(int64_t t, char out[CLI_TIME_LEN]);

/* A JSON string of S sanitised (valid for any input), or null for NULL. */
json_t *cli_json_string(const char *s);

/* A JSON string of the time T as cli_format_time writes it, or null for 0. */
json_t *cli_json_time(int64_t t);

/* Prints VALUE indented with a final newline, and releases it (it may be
 * NULL, which is a failure). 0, or -1. */
int cli_json_print(json_t *value, FILE *out);

#endif
