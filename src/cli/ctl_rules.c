/*
 * ctl_rules.c — popgatectl filter rules: the content rules in force (the
 * default set with [spam] rules_file over it, filters/rules.h), and with
 * message PATHs how many of them each rule hits (how the default set's
 * figures in README were measured).
 *
 * Owns: nothing. Must never: print a message body (only counts), or say a
 * refused rules file is in force.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/util.h"
#include "filters/mime.h"
#include "filters/rules.h"

struct ctl_rules_hits {
	const struct rules_set *set;
	size_t *counts; /* per rule */
	bool *hit;
	size_t messages;
};

static void ctl_rules_count(const char *data, size_t len, void *arg)
{
	struct ctl_rules_hits *hits = arg;
	struct rules_verdict verdict = {.hit = hits->hit};

	rules_judge(hits->set, data, len, NULL, &verdict);
	for (size_t i = 0; i < rules_set_count(hits->set); i++)
		hits->counts[i] += hits->hit[i];
	hits->messages++;
}

/* Counts the hits of SET's rules over the messages of FILES into HITS. */
static int ctl_rules_measure(const struct ctl_bayes_files *files, struct ctl_rules_hits *hits)
{
	char buf[256];

	for (size_t i = 0; i < files->count; i++) {
		char *data;
		size_t len;

		if (util_read_file(files->paths[i], &data, &len) < 0)
			return ctl_refuse("%s: %s", ctl_clean(files->paths[i], buf, sizeof(buf)),
					  strerror(errno));
		ctl_bayes_messages(data, len, ctl_rules_count, hits);
		free(data);
	}
	return CTL_OK;
}

static int ctl_rules_print(const struct ctl *ctl, const struct rules_set *set,
			   const struct ctl_rules_hits *hits, bool measured)
{
	size_t count = rules_set_count(set);
	struct cli_table *table;
	json_t *array;
	int rc;

	if (ctl->json) {
		array = json_array();
		for (size_t i = 0; i < count; i++) {
			struct rules_info info;
			json_t *row;

			rules_set_info(set, i, &info);
			/* Patterns, descriptions and the file's name may hold any
			 * bytes: made valid JSON strings. */
			row = json_pack(
			    "{s:s, s:s, s:f, s:o, s:o, s:I, s:o, s:o}", "name", info.name, "kind",
			    info.kind == RULES_KIND_RULE ? "rule" : "words", "score", info.score,
			    "target", cli_json_string(info.target), "pattern",
			    cli_json_string(info.pattern), "words", (json_int_t)info.words,
			    "description", cli_json_string(info.description), "origin",
			    cli_json_string(info.origin));
			if (measured) {
				json_object_set_new(row, "hits",
						    json_integer((json_int_t)hits->counts[i]));
				json_object_set_new(row, "messages",
						    json_integer((json_int_t)hits->messages));
			}
			json_array_append_new(array, row);
		}
		return ctl_printed(cli_json_print(array, stdout));
	}
	/* The pattern last: the widest column. */
	table = measured
		    ? cli_table_new(7, (const char *const[]){"NAME", "SCORE", "HITS", "TARGET",
							     "ORIGIN", "DESCRIPTION", "PATTERN"})
		    : cli_table_new(6, (const char *const[]){"NAME", "SCORE", "TARGET", "ORIGIN",
							     "DESCRIPTION", "PATTERN"});
	for (size_t i = 0; i < count; i++) {
		struct rules_info info;
		char score[32];
		char rate[64];
		char words[32];
		const char *pattern;

		rules_set_info(set, i, &info);
		snprintf(score, sizeof(score), "%s%.1f", info.kind == RULES_KIND_WORDS ? "<=" : "",
			 info.score);
		snprintf(words, sizeof(words), "(%zu words)", info.words);
		pattern = info.pattern != NULL ? info.pattern : words;
		if (measured) {
			snprintf(rate, sizeof(rate), "%zu/%zu %.1f%%", hits->counts[i],
				 hits->messages,
				 hits->messages > 0
				     ? 100.0 * (double)hits->counts[i] / (double)hits->messages
				     : 0.0);
			cli_table_add(table, (const char *const[]){info.name, score, rate,
								   info.target, info.origin,
								   info.description, pattern});
		} else {
			cli_table_add(table, (const char *const[]){info.name, score, info.target,
								   info.origin, info.description,
								   pattern});
		}
	}
	rc = ctl_printed(cli_table_print(table, stdout));
	cli_table_free(&table);
	return rc;
}

int ctl_filter_rules(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ctl_bayes_files files = {0};
	struct ctl_rules_hits hits = {0};
	struct rules_set *set = NULL;
	char *text = NULL;
	size_t len = 0;
	bool refused = false;
	char err[512];
	int rc = CTL_OK;

	for (int i = 0; i < argc && rc == CTL_OK; i++) {
		char buf[64];

		if (argv[i][0] == '-' && argv[i][1] != '\0')
			rc = ctl_usage_error(cmd, "unknown option '%s'",
					     ctl_clean(argv[i], buf, sizeof(buf)));
		else
			rc = ctl_bayes_expand(argv[i], &files);
	}
	if (rc != CTL_OK)
		goto done;
	if (ctl->cfg.rules_file != NULL &&
	    rules_file_read(ctl->cfg.rules_file, &text, &len, err, sizeof(err)) < 0) {
		char clean[sizeof(err)];

		util_sanitize(clean, sizeof(clean), err, strlen(err));
		fprintf(stderr, "popgatectl: rules file refused: %s (the default set is listed)\n",
			clean);
		refused = true;
	}
	if (rules_set_load(text, len, ctl->cfg.rules_file, &set, err, sizeof(err)) < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	if (argc > 0) {
		hits.set = set;
		hits.counts = xcalloc(rules_set_count(set), sizeof(size_t));
		hits.hit = xcalloc(rules_set_count(set), sizeof(bool));
		mime_init();
		rc = ctl_rules_measure(&files, &hits);
		if (rc != CTL_OK)
			goto done;
	}
	rc = ctl_rules_print(ctl, set, &hits, argc > 0);
	if (rc == CTL_OK && refused)
		rc = CTL_REFUSED;
done:
	free(hits.counts);
	free(hits.hit);
	rules_set_free(set);
	free(text);
	ctl_bayes_files_free(&files);
	return rc;
}
