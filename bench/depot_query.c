/*
 * depot_query.c — bench/depot.py's in-process probe of MailDepot's search:
 * opens a depot as the daemon or popgatectl does and times depot_search
 * (depot/search.h) for one query after another, without a process start in
 * the figure.
 *
 *     depot_query DEPOT_DIR
 *
 * Reads one JSON object a line on stdin and answers each with one JSON line
 * on stdout:
 *   {"op": "open"}   closes the depot and opens it anew (a cold query's
 *                    set-up, not timed) -> {"ok": true}
 *   {"op": "search", "sender": S, "recipient": R, "subject": W, "text": W,
 *    "since": T, "until": T, "attachment": A, "owner": U,
 *    "addresses": [A, …] (a user's search: restricted to these), "limit": N,
 *    "timeout": seconds (0: none)}
 *                    -> {"seconds": wall time of depot_search, "count": hits}
 *                    or, interrupted at its timeout (sqlite3_progress_handler
 *                    on the depot's connection), {"seconds": …, "timed_out": true}
 *   anything it cannot run -> {"error": "…"}
 * It ends at the end of its input.
 *
 * Owns: its depot handle. Must never: print a message's fields (counts and
 * times only), or write to the depot other than through depot_search's
 * audit entry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "core/util.h"
#include "depot/depot.h"
#include "depot/search.h"

/* Longest request line: a query of a few criteria and a user's addresses. */
#define DEPOT_QUERY_LINE_MAX (64 * 1024)
/* Most addresses of one user's search. */
#define DEPOT_QUERY_ADDRESSES_MAX 256

static double depot_query_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Asks SQLite to give up a statement once the monotonic clock passes the
 * deadline ARG points to: a query the bench bounds. */
static int depot_query_past_deadline(void *arg)
{
	return depot_query_now() > *(const double *)arg;
}

static void depot_query_answer(json_t *answer)
{
	char *text = json_dumps(answer, JSON_COMPACT);

	if (text == NULL)
		abort();
	printf("%s\n", text);
	fflush(stdout);
	free(text);
	json_decref(answer);
}

static const char *depot_query_string(json_t *request, const char *key)
{
	return json_string_value(json_object_get(request, key));
}

/* Runs the search REQUEST asks for on DEPOT; its answer. */
static json_t *depot_query_search(struct depot *depot, json_t *request)
{
	const char *addresses[DEPOT_QUERY_ADDRESSES_MAX];
	struct depot_query query = {.direction = -1};
	json_t *list = json_object_get(request, "addresses");
	struct depot_hit *hits = NULL;
	size_t count = 0;
	char err[256];
	double start, timeout, deadline;
	int rc;

	query.sender = depot_query_string(request, "sender");
	query.recipient = depot_query_string(request, "recipient");
	query.subject = depot_query_string(request, "subject");
	query.text = depot_query_string(request, "text");
	query.attachment = depot_query_string(request, "attachment");
	query.owner = depot_query_string(request, "owner");
	query.since = json_integer_value(json_object_get(request, "since"));
	query.until = json_integer_value(json_object_get(request, "until"));
	query.limit = (int)json_integer_value(json_object_get(request, "limit"));
	if (json_is_array(list)) {
		if (json_array_size(list) > DEPOT_QUERY_ADDRESSES_MAX)
			return json_pack("{s:s}", "error", "too many addresses");
		for (size_t i = 0; i < json_array_size(list); i++) {
			addresses[i] = json_string_value(json_array_get(list, i));
			if (addresses[i] == NULL)
				return json_pack("{s:s}", "error", "an address is not a string");
		}
		query.restricted = true;
		query.addresses = addresses;
		query.address_count = json_array_size(list);
	}
	timeout = json_number_value(json_object_get(request, "timeout"));
	start = depot_query_now();
	deadline = start + timeout;
	if (timeout > 0)
		sqlite3_progress_handler(depot_db(depot), 1000, depot_query_past_deadline,
					 &deadline);
	rc = depot_search(depot, &query, "admin", &hits, &count, err, sizeof(err));
	sqlite3_progress_handler(depot_db(depot), 0, NULL, NULL);
	depot_hits_free(&hits, count);
	if (rc < 0 && timeout > 0 && depot_query_now() > deadline)
		return json_pack("{s:f, s:b}", "seconds", depot_query_now() - start, "timed_out",
				 1);
	if (rc < 0)
		return json_pack("{s:s}", "error", err);
	return json_pack("{s:f, s:I}", "seconds", depot_query_now() - start, "count",
			 (json_int_t)count);
}

int main(int argc, char **argv)
{
	struct depot *depot;
	char err[256];
	char *line;

	if (argc != 2) {
		fprintf(stderr, "usage: depot_query DEPOT_DIR < requests\n");
		return 2;
	}
	depot = depot_open(argv[1], false, err, sizeof(err));
	if (depot == NULL) {
		fprintf(stderr, "depot_query: %s\n", err);
		return 1;
	}
	line = xmalloc(DEPOT_QUERY_LINE_MAX);
	while (fgets(line, DEPOT_QUERY_LINE_MAX, stdin) != NULL) {
		json_error_t jerr;
		json_t *request = json_loads(line, 0, &jerr);
		const char *op = depot_query_string(request, "op");

		if (op != NULL && strcmp(op, "open") == 0) {
			depot_close(&depot);
			depot = depot_open(argv[1], false, err, sizeof(err));
			depot_query_answer(depot != NULL ? json_pack("{s:b}", "ok", 1)
							 : json_pack("{s:s}", "error", err));
		} else if (op != NULL && strcmp(op, "search") == 0 && depot != NULL) {
			depot_query_answer(depot_query_search(depot, request));
		} else {
			depot_query_answer(
			    json_pack("{s:s}", "error",
				      request == NULL ? jerr.text : "no such op, or no depot"));
		}
		json_decref(request);
	}
	depot_close(&depot);
	free(line);
	return 0;
}
