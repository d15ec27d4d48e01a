/*
 * ctl_depot.c — popgatectl's MailDepot commands for its integrity and size:
 * depot verify (the chain, index, blobs, checkpoints and audit log; exit 1
 * and the first broken entry when anything was changed), depot checkpoint
 * (sign the chain's head, optionally export every checkpoint to keep
 * elsewhere) and depot stats, on the depot in <data_dir>/depot.
 *
 * Must never: create a depot (only archiving does), or print a message's
 * bytes or text.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sqlite3.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/util.h"
#include "depot/depot.h"

/* The depot's folder, <data_dir>/depot (free()). */
static char *ctl_depot_dir(const struct ctl *ctl)
{
	return xasprintf("%s/depot", ctl->cfg.data_dir);
}

/* Opens the existing depot into *DEPOT_R: CTL_OK, or CTL_REFUSED with the
 * reason printed (these commands never create one). */
static int ctl_depot_open_existing(const struct ctl *ctl, struct depot **depot_r)
{
	char *path = ctl_depot_dir(ctl);
	char err[512];

	*depot_r = depot_open(path, false, err, sizeof(err));
	free(path);
	if (*depot_r == NULL)
		return ctl_refuse("%s", err);
	return CTL_OK;
}

int ctl_depot_verify(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *checkpoints = NULL;
	struct depot_verify_report report;
	struct depot *depot;
	char buf[256], err[512];
	int rc, found;

	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *value;

		if ((value = ctl_option("--checkpoints", argc, argv, &i, &missing)) != NULL)
			checkpoints = value;
		else if (missing)
			return ctl_usage_error(cmd, "%s needs a value", argv[i]);
		else
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
	}
	if ((rc = ctl_depot_open_existing(ctl, &depot)) != CTL_OK)
		return rc;
	found = depot_verify(depot, checkpoints, &report, err, sizeof(err));
	depot_close(&depot);
	if (found < 0)
		return ctl_refuse("verify: %s", err);
	if (ctl->json) {
		json_t *json =
		    json_pack("{s:b, s:I, s:I, s:I, s:I}", "intact", found == 0, "entries",
			      (json_int_t)report.entries, "blobs", (json_int_t)report.blobs,
			      "audit_entries", (json_int_t)report.audit_entries, "checkpoints",
			      (json_int_t)report.checkpoints);

		json_object_set_new(json, "broken_seq",
				    found ? json_integer(report.broken_seq) : json_null());
		json_object_set_new(json, "problem",
				    found ? cli_json_string(report.problem) : json_null());
		rc = ctl_printed(cli_json_print(json, stdout));
	} else if (found == 0) {
		rc = ctl_printed(printf("depot intact: %" PRId64 " entries, %" PRId64
					" blobs, %" PRId64 " audit entries, %" PRId64
					" checkpoints verified\n",
					report.entries, report.blobs, report.audit_entries,
					report.checkpoints) < 0
				     ? -1
				     : 0);
	} else {
		util_sanitize(buf, sizeof(buf), report.problem, strlen(report.problem));
		/* The problem names the entry (or audit entry) it is about. */
		rc = ctl_printed(printf("depot BROKEN: %s\n", buf) < 0 ? -1 : 0);
	}
	return rc != CTL_OK ? rc : found ? CTL_REFUSED : CTL_OK;
}

int ctl_depot_checkpoint(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *export = NULL;
	struct depot *depot;
	char buf[256], err[512];
	int64_t seq = 0;
	int rc;

	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *value;

		if ((value = ctl_option("--export", argc, argv, &i, &missing)) != NULL)
			export = value;
		else if (missing)
			return ctl_usage_error(cmd, "%s needs a value", argv[i]);
		else
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
	}
	if (export != NULL && strcmp(export, "-") == 0 && ctl->json)
		return ctl_usage_error(cmd, "--export - and --json both want standard output");
	if ((rc = ctl_depot_open_existing(ctl, &depot)) != CTL_OK)
		return rc;
	if (depot_checkpoint(depot, &seq, err, sizeof(err)) < 0 ||
	    (export != NULL && depot_checkpoint_export(depot, export, err, sizeof(err)) < 0)) {
		depot_close(&depot);
		return ctl_refuse("checkpoint: %s", err);
	}
	depot_close(&depot);
	if (ctl->json)
		return ctl_printed(cli_json_print(json_pack("{s:I, s:o}", "seq", (json_int_t)seq,
							    "exported", cli_json_string(export)),
						  stdout));
	if (export != NULL && strcmp(export, "-") == 0)
		return CTL_OK;
	if (export != NULL)
		return ctl_printed(printf("checkpoint at entry %" PRId64 "; all checkpoints written"
					  " to %s\n",
					  seq, ctl_clean(export, buf, sizeof(buf))) < 0
				       ? -1
				       : 0);
	return ctl_printed(printf("checkpoint at entry %" PRId64 "\n", seq) < 0 ? -1 : 0);
}

/* One integer from SQL (0 for NULL); -1 on error. */
static int64_t ctl_depot_int(struct depot *depot, const char *sql)
{
	sqlite3_stmt *stmt;
	int64_t value = -1;

	if (sqlite3_prepare_v2(depot_db(depot), sql, -1, &stmt, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		value = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return value;
}

/* The pack files' count and bytes; 0 or -1. */
static int ctl_depot_packs(const struct ctl *ctl, int64_t *count, int64_t *bytes)
{
	char *path = ctl_depot_dir(ctl), *packs = xasprintf("%s/packs", path);
	DIR *dir = opendir(packs);
	struct dirent *ent;

	*count = *bytes = 0;
	if (dir == NULL) {
		free(path);
		free(packs);
		return -1;
	}
	while ((ent = readdir(dir)) != NULL) {
		size_t len = strlen(ent->d_name);
		struct stat st;
		char *file;

		if (len < 6 || strcmp(ent->d_name + len - 5, ".pack") != 0)
			continue;
		file = xasprintf("%s/%s", packs, ent->d_name);
		if (stat(file, &st) == 0) {
			(*count)++;
			*bytes += st.st_size;
		}
		free(file);
	}
	closedir(dir);
	free(path);
	free(packs);
	return 0;
}

int ctl_depot_stats(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	/* The figures, in the order they print. */
	static const char *const labels[] = {
	    "messages",	     "expired",	     "entries",		"blobs",      "bytes_raw",
	    "bytes_unique",  "bytes_stored", "packs",		"pack_bytes", "dictionary",
	    "audit_entries", "checkpoints",  "last_checkpoint",
	};
	static const char *const queries[] = {
	    "SELECT count(*) FROM message WHERE expired IS NULL",
	    "SELECT count(*) FROM message WHERE expired IS NOT NULL",
	    "SELECT count(*) FROM entry",
	    "SELECT count(*) FROM blob WHERE removed IS NULL",
	    "SELECT coalesce(sum(size), 0) FROM message WHERE expired IS NULL",
	    "SELECT coalesce(sum(raw), 0) FROM blob WHERE removed IS NULL",
	    /* a record's bytes: its 56-byte header and the zstd frame */
	    "SELECT coalesce(sum(stored + 56), 0) FROM blob WHERE removed IS NULL",
	    NULL,
	    NULL,
	    "SELECT coalesce(max(dict), 0) FROM blob",
	    "SELECT count(*) FROM audit",
	    "SELECT count(*) FROM checkpoint",
	    "SELECT coalesce(max(seq), 0) FROM checkpoint",
	};
	enum { MESSAGES, EXPIRED, ENTRIES, BLOBS, RAW, UNIQUE, STORED, PACKS, PACK_BYTES, DICT };
	int64_t values[sizeof(labels) / sizeof(labels[0])];
	double dedup, compression;
	struct depot *depot;
	int rc;

	char buf[256];

	if (argc > 0)
		return ctl_usage_error(cmd, "unexpected argument '%s'",
				       ctl_clean(argv[0], buf, sizeof(buf)));
	if ((rc = ctl_depot_open_existing(ctl, &depot)) != CTL_OK)
		return rc;
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
		if (queries[i] != NULL && (values[i] = ctl_depot_int(depot, queries[i])) < 0) {
			depot_close(&depot);
			return ctl_refuse("cannot read the depot's index");
		}
	}
	depot_close(&depot);
	if (ctl_depot_packs(ctl, &values[PACKS], &values[PACK_BYTES]) < 0)
		return ctl_refuse("cannot read the depot's packs");
	/* Mail as received over the distinct messages; those over what they take. */
	dedup = values[UNIQUE] > 0 ? (double)values[RAW] / (double)values[UNIQUE] : 1.0;
	compression = values[STORED] > 0 ? (double)values[UNIQUE] / (double)values[STORED] : 1.0;
	if (ctl->json) {
		json_t *json = json_object();

		for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
			json_object_set_new(json, labels[i],
					    i == DICT && values[i] == 0 ? json_null()
									: json_integer(values[i]));
		json_object_set_new(json, "dedup_ratio", json_real(dedup));
		json_object_set_new(json, "compression_ratio", json_real(compression));
		return ctl_printed(cli_json_print(json, stdout));
	} else {
		struct cli_table *table = cli_table_new(2, NULL);
		char text[64];

		for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
			if (i == DICT && values[i] == 0)
				snprintf(text, sizeof(text), "none");
			else
				snprintf(text, sizeof(text), "%" PRId64, values[i]);
			cli_table_add(table, (const char *const[]){labels[i], text});
		}
		snprintf(text, sizeof(text), "%.2f", dedup);
		cli_table_add(table, (const char *const[]){"dedup_ratio", text});
		snprintf(text, sizeof(text), "%.2f", compression);
		cli_table_add(table, (const char *const[]){"compression_ratio", text});
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
		return rc;
	}
}
