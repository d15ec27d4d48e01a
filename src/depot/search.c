/*
 * search.c — depot_search and the look-up of one archived message: builds
 * one SELECT over the index (message, its recipient, owner and attachment
 * rows, the FTS5 table message_text) from the criteria given, runs it
 * newest first with a LIMIT, then reads each hit's fields.
 *
 * Owns: these SELECTs and the FTS5 expressions made of a user's words.
 * Must never: put a user's text into SQL (every value is bound) or into an
 * FTS5 expression unquoted; read a body; find an expired message; return
 * hits without auditing the search.
 *
 * Speed at 10^6 messages: words and the key tokens of sender, recipient,
 * owner, the user's addresses and a Date range's months (depot.h: the keys
 * column) make one FTS5 expression, which hands out the messages having
 * them all newest first, so ORDER BY seq DESC LIMIT stops after a page
 * (search_plan_build); the rest is checked on each message found.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "core/util.h"
#include "depot/depot_internal.h"
#include "depot/search.h"

/* ---- text ---------------------------------------------------------------- */

/* A growing string. */
struct search_text {
	char *data;
	size_t len;
	size_t capacity;
};

static void search_text_add(struct search_text *text, const char *s, size_t len)
{
	if (text->len + len + 1 > text->capacity) {
		text->capacity = (text->len + len + 1) * 2;
		text->data = xrealloc(text->data, text->capacity);
	}
	memcpy(text->data + text->len, s, len);
	text->len += len;
	text->data[text->len] = '\0';
}

static void search_text_append(struct search_text *text, const char *s)
{
	search_text_add(text, s, strlen(s));
}

/* S with ASCII letters lowercased (addresses are indexed so); allocated. */
static char *search_lower(const char *s)
{
	char *copy = xstrdup(s);

	for (char *p = copy; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return copy;
}

/* True if WORD[0..LEN) holds a character the tokenizer keeps (unicode61:
 * letters and digits; every byte of a multibyte character counts, since
 * most of them are letters). A word of punctuation alone would become an
 * empty FTS5 phrase, which matches nothing. */
static bool search_word_has_token(const char *word, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)word[i];

		if (c >= 0x80 || isalnum(c))
			return true;
	}
	return false;
}

char *depot_search_match(const char *text, const char *column, char *err, size_t errlen)
{
	struct search_text match = {0};
	size_t words = 0;
	const char *p = text;

	if (column != NULL) {
		search_text_append(&match, "{");
		search_text_append(&match, column);
		search_text_append(&match, "} : (");
	}
	while (*p != '\0') {
		size_t len;
		bool prefix = false;

		p += strspn(p, " \t\r\n\f\v");
		len = strcspn(p, " \t\r\n\f\v");
		if (len == 0)
			break;
		/* "invoic*": a prefix query, the one piece of FTS5 syntax a user
		 * may ask for; the star is put after the quoted string. */
		if (len > 1 && p[len - 1] == '*' && search_word_has_token(p, len - 1))
			prefix = true;
		if (search_word_has_token(p, prefix ? len - 1 : len)) {
			if (++words > DEPOT_SEARCH_WORDS_MAX) {
				snprintf(err, errlen, "too many search words (at most %d)",
					 DEPOT_SEARCH_WORDS_MAX);
				free(match.data);
				return NULL;
			}
			if (words > 1)
				search_text_append(&match, " AND ");
			/* A quoted string is one phrase whatever it holds; its
			 * own quotes are doubled (the FTS5 escape). */
			search_text_append(&match, "\"");
			for (size_t i = 0; i < (prefix ? len - 1 : len); i++)
				search_text_add(&match, p[i] == '"' ? "\"\"" : &p[i],
						p[i] == '"' ? 2 : 1);
			search_text_append(&match, prefix ? "\"*" : "\"");
		}
		p += len;
	}
	if (words == 0) {
		snprintf(err, errlen, "the search %s holds no word to look for (letters or digits)",
			 column != NULL ? column : "text");
		free(match.data);
		return NULL;
	}
	if (column != NULL)
		search_text_append(&match, ")");
	return match.data;
}

/* ---- the query ----------------------------------------------------------- */

/* A Date range at most this wide (seconds), with nothing for FTS5 to look
 * up, is looked up in the Date index. */
#define SEARCH_NARROW_DATES (31 * 86400)
/* A closed Date range of at most this many months becomes an OR of their
 * month tokens in the FTS5 expression; a wider one would make FTS5 step
 * that many lists for each match, so it is only checked on each message. */
#define SEARCH_MONTHS_MAX 36

/* A value to bind, in the order of the ?s. */
struct search_bind {
	bool is_text;
	const char *text;
	int64_t number;
};

/* The SELECT and its values, built from a query. */
struct search_plan {
	struct search_text sql;
	struct search_bind binds[24 + DEPOT_SEARCH_LIMIT_MAX];
	size_t bind_count;
	char **strings; /* made here, freed with the plan */
	size_t string_count;
};

static void search_plan_text(struct search_plan *plan, const char *sql, const char *value)
{
	search_text_append(&plan->sql, sql);
	plan->binds[plan->bind_count++] = (struct search_bind){.is_text = true, .text = value};
}

static void search_plan_number(struct search_plan *plan, const char *sql, int64_t value)
{
	search_text_append(&plan->sql, sql);
	plan->binds[plan->bind_count++] = (struct search_bind){.number = value};
}

/* Keeps S (allocated) until the plan is freed; returns it. */
static const char *search_plan_keep(struct search_plan *plan, char *s)
{
	plan->strings = xrealloc(plan->strings, (plan->string_count + 1) * sizeof(*plan->strings));
	plan->strings[plan->string_count++] = s;
	return s;
}

static void search_plan_free(struct search_plan *plan)
{
	free(plan->sql.data);
	for (size_t i = 0; i < plan->string_count; i++)
		free(plan->strings[i]);
	free(plan->strings);
}

/* PLAN's statement, its values bound; NULL if SQLite refuses it. */
static sqlite3_stmt *search_plan_prepare(sqlite3 *db, const struct search_plan *plan)
{
	sqlite3_stmt *stmt;

	if (sqlite3_prepare_v2(db, plan->sql.data, -1, &stmt, NULL) != SQLITE_OK)
		return NULL;
	for (size_t i = 0; i < plan->bind_count; i++) {
		if (plan->binds[i].is_text)
			sqlite3_bind_text(stmt, (int)i + 1, plan->binds[i].text, -1, SQLITE_STATIC);
		else
			sqlite3_bind_int64(stmt, (int)i + 1, plan->binds[i].number);
	}
	return stmt;
}

static int search_failed(sqlite3 *db, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "cannot %s in the depot's index: %s", what, sqlite3_errmsg(db));
	return -1;
}

/* Appends " AND EXISTS (…)": one of the rows of TABLE for the message has
 * COLUMN equal to one of the N VALUES (lowercased if LOWER). Checked per
 * message met, on the table's (seq, position) key ("+": not on COLUMN's
 * index, which would walk every row of a frequent value). */
static void search_plan_exists(struct search_plan *plan, const char *table, const char *column,
			       const char *const *values, size_t n, bool lower)
{
	char *sql = xasprintf(" AND EXISTS (SELECT 1 FROM %s AS s WHERE s.seq = m.seq AND +s.%s",
			      table, column);

	search_text_append(&plan->sql, sql);
	free(sql);
	search_text_append(&plan->sql, n == 1 ? " = ?" : " IN (");
	for (size_t i = 0; i < n; i++) {
		if (n > 1)
			search_text_append(&plan->sql, i == 0 ? "?" : ", ?");
		plan->binds[plan->bind_count++] = (struct search_bind){
		    .is_text = true,
		    .text = lower ? search_plan_keep(plan, search_lower(values[i])) : values[i]};
	}
	search_text_append(&plan->sql, n == 1 ? ")" : "))");
}

/* Appends to MATCH (" AND " first unless empty) the FTS5 phrase of the key
 * token of VALUE in ROLE, or of the OR of the N VALUES' tokens. */
static void search_match_keys(struct search_text *match, char role, const char *const *values,
			      size_t n)
{
	char token[DEPOT_KEY_TOKEN_SIZE];

	/* No row has the token of an empty value (depot_keys_text skips it):
	 * such a criterion is left to the check on each message. */
	for (size_t i = 0; i < n; i++)
		if (values[i][0] == '\0')
			return;
	if (match->len > 0)
		search_text_append(match, " AND ");
	if (n > 1)
		search_text_append(match, "(");
	for (size_t i = 0; i < n; i++) {
		depot_key_token(role, values[i], token);
		if (i > 0)
			search_text_append(match, " OR ");
		search_text_append(match, "\"");
		search_text_append(match, token);
		search_text_append(match, "\"");
	}
	if (n > 1)
		search_text_append(match, ")");
}

/* Appends to MATCH the OR of the month tokens from SINCE to UNTIL, if they
 * are at most SEARCH_MONTHS_MAX. */
static void search_match_months(struct search_text *match, int64_t since, int64_t until)
{
	time_t first = (time_t)since, last = (time_t)until;
	struct tm from, to;
	int months, year, month;

	if (gmtime_r(&first, &from) == NULL || gmtime_r(&last, &to) == NULL)
		return;
	months = (to.tm_year - from.tm_year) * 12 + (to.tm_mon - from.tm_mon) + 1;
	if (months < 1 || months > SEARCH_MONTHS_MAX || to.tm_year + 1900 > 9999)
		return;
	search_text_append(match, match->len > 0 ? " AND (" : "(");
	year = from.tm_year + 1900;
	month = from.tm_mon + 1;
	for (int i = 0; i < months; i++) {
		/* Noon of the month's first day, whose token depot_month_token
		 * makes as the index's own (it is after 1970-01-01 00:00, as
		 * SINCE is, and before 10000, as checked above, so one is made). */
		struct tm first_day = {
		    .tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = 1, .tm_hour = 12};
		char token[DEPOT_KEY_TOKEN_SIZE];

		depot_month_token((int64_t)timegm(&first_day), token);
		search_text_append(match, i == 0 ? "\"" : " OR \"");
		search_text_append(match, token);
		search_text_append(match, "\"");
		if (++month > 12) {
			month = 1;
			year++;
		}
	}
	search_text_append(match, ")");
}

/* A criterion's length check. */
static int search_check_length(const char *value, const char *what, char *err, size_t errlen)
{
	if (value != NULL && strlen(value) > DEPOT_SEARCH_TEXT_MAX) {
		snprintf(err, errlen, "the %s is too long (at most %d bytes)", what,
			 DEPOT_SEARCH_TEXT_MAX);
		return -1;
	}
	return 0;
}

static int search_check(const struct depot_query *query, char *err, size_t errlen)
{
	if (search_check_length(query->sender, "sender", err, errlen) < 0 ||
	    search_check_length(query->recipient, "recipient", err, errlen) < 0 ||
	    search_check_length(query->subject, "subject", err, errlen) < 0 ||
	    search_check_length(query->text, "text", err, errlen) < 0 ||
	    search_check_length(query->owner, "owner", err, errlen) < 0 ||
	    search_check_length(query->attachment, "attachment name", err, errlen) < 0)
		return -1;
	if (query->direction < -1 || query->direction > DEPOT_IMPORT) {
		snprintf(err, errlen, "unknown direction");
		return -1;
	}
	if (query->limit < 0 || query->limit > DEPOT_SEARCH_LIMIT_MAX) {
		snprintf(err, errlen, "the limit must be 1 to %d", DEPOT_SEARCH_LIMIT_MAX);
		return -1;
	}
	if (query->before < 0 || query->since < 0 || query->until < 0) {
		snprintf(err, errlen, "a seq or date cannot be negative");
		return -1;
	}
	if (query->since != 0 && query->until != 0 && query->since > query->until) {
		snprintf(err, errlen, "the date range ends before it starts");
		return -1;
	}
	if (query->restricted && query->address_count > DEPOT_SEARCH_LIMIT_MAX) {
		snprintf(err, errlen, "too many addresses (at most %d)", DEPOT_SEARCH_LIMIT_MAX);
		return -1;
	}
	/* Words that make no expression are refused here, so alike for a
	 * user who owns nothing (whose search runs no query). */
	for (int column = 0; column < 2; column++) {
		const char *words = column == 0 ? query->subject : query->text;
		char *match;

		if (words == NULL)
			continue;
		match = depot_search_match(words, column == 0 ? "subject" : NULL, err, errlen);
		if (match == NULL)
			return -1;
		free(match);
	}
	return 0;
}

/*
 * The FTS5 expression of QUERY's words and keys (depot.h: the keys column):
 * subject and text words, the sender's, recipient's, owner user's and the
 * restriction addresses' key tokens, and with any of those a closed Date
 * range's months; allocated, or NULL when QUERY has none of them (ERR
 * empty) or words that make no expression (ERR says why).
 */
static char *search_match_build(const struct depot_query *query, char *err, size_t errlen)
{
	struct search_text match = {0};
	bool dates_only;

	for (int column = 0; column < 2; column++) {
		const char *words = column == 0 ? query->subject : query->text;
		char *phrase;

		if (words == NULL)
			continue;
		phrase = depot_search_match(words, column == 0 ? "subject" : NULL, err, errlen);
		if (phrase == NULL) {
			free(match.data);
			return NULL;
		}
		if (match.len > 0)
			search_text_append(&match, " AND ");
		search_text_append(&match, phrase);
		free(phrase);
	}
	if (query->sender != NULL)
		search_match_keys(&match, DEPOT_KEY_SENDER, &query->sender, 1);
	if (query->recipient != NULL)
		search_match_keys(&match, DEPOT_KEY_RECIPIENT, &query->recipient, 1);
	if (query->owner != NULL)
		search_match_keys(&match, DEPOT_KEY_USER, &query->owner, 1);
	if (query->restricted)
		search_match_keys(&match, DEPOT_KEY_OWNER, query->addresses, query->address_count);
	/* A range alone: its months lead unless it is narrow enough for the
	 * Date index. */
	dates_only = match.len == 0;
	if (query->since != 0 && query->until != 0 &&
	    (!dates_only || query->until - query->since > SEARCH_NARROW_DATES))
		search_match_months(&match, query->since, query->until);
	return match.data;
}

/*
 * Builds the SELECT of the seqs QUERY finds into PLAN. 0, or -1 with ERR.
 *
 * Whatever FTS5 can look up leads: words, and the key tokens of the
 * sender, the recipient, the owner user, the user's addresses and a closed
 * Date range's months (depot.h), ANDed in one expression. FTS5 hands out
 * the rows that have them all newest first (rowid = seq order), stepping
 * each term's list past the rowids another term lacks, so the ORDER BY seq
 * DESC LIMIT stops after the page and a frequent term costs no more than
 * the rarest one it is ANDed with. Each row found is then checked on the
 * message itself: the exact sender, recipient, owner and addresses (a key
 * token is a hash), the exact dates, direction, attachment, not expired.
 * With nothing for FTS5, the messages are walked newest first (a narrow
 * Date range through its index).
 */
static int search_plan_build(struct search_plan *plan, const struct depot_query *query, char *err,
			     size_t errlen)
{
	char *match;
	bool date_indexed = false;

	err[0] = '\0';
	match = search_match_build(query, err, errlen);

	if (match != NULL) {
		search_plan_text(plan,
				 "SELECT m.seq FROM message_text CROSS JOIN message AS m"
				 " ON m.seq = message_text.rowid WHERE message_text MATCH ?",
				 search_plan_keep(plan, match));
	} else if (err[0] != '\0') {
		return -1;
	} else {
		search_text_append(&plan->sql, "SELECT m.seq FROM message AS m WHERE 1");
		date_indexed = query->since != 0 && query->until != 0 &&
			       query->until - query->since <= SEARCH_NARROW_DATES;
	}
	search_text_append(&plan->sql, " AND (m.expired IS NULL OR m.expired = 0)");
	if (query->sender != NULL)
		search_plan_text(plan, " AND +m.sender = ?",
				 search_plan_keep(plan, search_lower(query->sender)));
	if (query->recipient != NULL)
		search_plan_exists(plan, "message_recipient", "address", &query->recipient, 1,
				   true);
	if (query->owner != NULL)
		search_plan_exists(plan, "message_owner", "user", &query->owner, 1, false);
	if (query->restricted)
		search_plan_exists(plan, "message_owner", "address", query->addresses,
				   query->address_count, true);
	if (query->direction >= 0)
		search_plan_text(plan, " AND m.direction = ?",
				 depot_direction_name((enum depot_direction)query->direction));
	/* "+" keeps SQLite off the Date index where FTS5 or the walk leads: a
	 * wide range through it would hand the ORDER BY a sort of most of the
	 * archive. */
	if (query->since != 0)
		search_plan_number(plan, date_indexed ? " AND m.date >= ?" : " AND +m.date >= ?",
				   query->since);
	if (query->until != 0)
		search_plan_number(plan, date_indexed ? " AND m.date <= ?" : " AND +m.date <= ?",
				   query->until);
	/* On the FTS5 table's rowid when it leads, so it starts its walk there
	 * instead of passing over every newer match. */
	if (query->before != 0)
		search_plan_number(plan,
				   match != NULL ? " AND message_text.rowid < ?" : " AND m.seq < ?",
				   query->before);
	if (query->attachment != NULL) {
		if (strpbrk(query->attachment, "*?[") != NULL) {
			search_plan_text(plan,
					 " AND m.seq IN (SELECT seq FROM message_attachment"
					 " WHERE name GLOB ?)",
					 query->attachment);
		} else {
			/* A substring: LIKE's own characters in it are escaped. */
			struct search_text like = {0};

			search_text_append(&like, "%");
			for (const char *c = query->attachment; *c != '\0'; c++) {
				if (*c == '%' || *c == '_' || *c == '\\')
					search_text_append(&like, "\\");
				search_text_add(&like, c, 1);
			}
			search_text_append(&like, "%");
			search_plan_text(plan,
					 " AND m.seq IN (SELECT seq FROM message_attachment"
					 " WHERE name LIKE ? ESCAPE '\\')",
					 search_plan_keep(plan, like.data));
		}
	}
	search_plan_number(plan,
			   match != NULL ? " ORDER BY message_text.rowid DESC LIMIT ?"
					 : " ORDER BY m.seq DESC LIMIT ?",
			   query->limit > 0 ? query->limit : DEPOT_SEARCH_LIMIT_DEFAULT);
	return 0;
}

/* ---- a hit's fields ------------------------------------------------------ */

static char *search_column_text(sqlite3_stmt *stmt, int col)
{
	const unsigned char *text = sqlite3_column_text(stmt, col);

	return text != NULL ? xstrdup((const char *)text) : NULL;
}

static void search_hex(const void *data, int len, char out[65])
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *bytes = data;

	out[0] = '\0';
	if (data == NULL || len != 32)
		return;
	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
	out[64] = '\0';
}

/* The text column 0 of every row of SQL (one ? = SEQ) into *LIST_R. */
static int search_read_list(sqlite3 *db, const char *sql, int64_t seq, char ***list_r,
			    size_t *count_r, char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return search_failed(db, "read a message", err, errlen);
	sqlite3_bind_int64(stmt, 1, seq);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		*list_r = xrealloc(*list_r, (*count_r + 1) * sizeof(**list_r));
		(*list_r)[(*count_r)++] = search_column_text(stmt, 0);
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : search_failed(db, "read a message", err, errlen);
}

/*
 * Reads message SEQ's fields into *HIT (zeroed first). 1, 0 no such
 * message (or expired), -1 ERR.
 */
static int search_read_hit(sqlite3 *db, int64_t seq, struct depot_hit *hit, char *err,
			   size_t errlen)
{
	static const char message_sql[] =
	    "SELECT seq, blob, direction, source, sender, subject, date, size, message_id,"
	    " archived FROM message WHERE seq = ? AND (expired IS NULL OR expired = 0)";
	static const char owner_sql[] =
	    "SELECT address, user FROM message_owner WHERE seq = ? ORDER BY position";
	sqlite3_stmt *stmt;
	int rc, direction;

	memset(hit, 0, sizeof(*hit));
	if (sqlite3_prepare_v2(db, message_sql, -1, &stmt, NULL) != SQLITE_OK)
		return search_failed(db, "read a message", err, errlen);
	sqlite3_bind_int64(stmt, 1, seq);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(stmt);
		return rc == SQLITE_DONE ? 0 : search_failed(db, "read a message", err, errlen);
	}
	hit->seq = sqlite3_column_int64(stmt, 0);
	search_hex(sqlite3_column_blob(stmt, 1), sqlite3_column_bytes(stmt, 1), hit->sha256);
	direction = depot_direction_parse((const char *)sqlite3_column_text(stmt, 2));
	hit->direction = direction >= 0 ? (enum depot_direction)direction : DEPOT_IN;
	hit->source = search_column_text(stmt, 3);
	hit->sender = search_column_text(stmt, 4);
	hit->subject = search_column_text(stmt, 5);
	hit->date = sqlite3_column_int64(stmt, 6);
	hit->size = sqlite3_column_int64(stmt, 7);
	hit->message_id = search_column_text(stmt, 8);
	hit->archived = sqlite3_column_int64(stmt, 9);
	sqlite3_finalize(stmt);

	if (search_read_list(
		db, "SELECT address FROM message_recipient WHERE seq = ? ORDER BY position", seq,
		&hit->recipients, &hit->recipient_count, err, errlen) < 0 ||
	    search_read_list(db,
			     "SELECT name FROM message_attachment WHERE seq = ? ORDER BY position",
			     seq, &hit->attachments, &hit->attachment_count, err, errlen) < 0)
		goto fail;
	if (sqlite3_prepare_v2(db, owner_sql, -1, &stmt, NULL) != SQLITE_OK) {
		search_failed(db, "read a message", err, errlen);
		goto fail;
	}
	sqlite3_bind_int64(stmt, 1, seq);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		hit->owners = xrealloc(hit->owners, (hit->owner_count + 1) * sizeof(*hit->owners));
		hit->owners[hit->owner_count].address = search_column_text(stmt, 0);
		hit->owners[hit->owner_count].user = search_column_text(stmt, 1);
		hit->owner_count++;
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE) {
		search_failed(db, "read a message", err, errlen);
		goto fail;
	}
	return 1;
fail:
	depot_hit_clear(hit);
	return -1;
}

/* ---- reading in one snapshot --------------------------------------------- */

/* A read transaction, so a search's rows and fields come from one state of
 * the index while the archiver goes on writing (WAL). */
static int search_begin(sqlite3 *db, char *err, size_t errlen)
{
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return search_failed(db, "start reading", err, errlen);
	return 0;
}

static void search_end(sqlite3 *db)
{
	/* A read transaction has nothing to keep: if even its COMMIT is
	 * interrupted, it is rolled back, never left open. */
	if (!sqlite3_get_autocommit(db) &&
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* S as a JSON string; text that is not UTF-8 (jansson refuses it) with
 * its control and non-ASCII bytes as '?', so the audit never drops it. */
static json_t *search_json_string(const char *s)
{
	json_t *string = json_string(s);
	char clean[DEPOT_SEARCH_TEXT_MAX + 1];

	if (string != NULL)
		return string;
	util_sanitize(clean, sizeof(clean), s, strlen(s));
	return json_string(clean);
}

/* The query as the audit entry's detail: JSON of the criteria given. */
static char *search_audit_detail(const struct depot_query *query, size_t hits)
{
	json_t *detail = json_object();
	char *text;

	if (query->sender != NULL)
		json_object_set_new(detail, "sender", search_json_string(query->sender));
	if (query->recipient != NULL)
		json_object_set_new(detail, "recipient", search_json_string(query->recipient));
	if (query->subject != NULL)
		json_object_set_new(detail, "subject", search_json_string(query->subject));
	if (query->text != NULL)
		json_object_set_new(detail, "text", search_json_string(query->text));
	if (query->since != 0)
		json_object_set_new(detail, "since", json_integer(query->since));
	if (query->until != 0)
		json_object_set_new(detail, "until", json_integer(query->until));
	if (query->owner != NULL)
		json_object_set_new(detail, "owner", search_json_string(query->owner));
	if (query->attachment != NULL)
		json_object_set_new(detail, "attachment", search_json_string(query->attachment));
	if (query->direction >= 0)
		json_object_set_new(
		    detail, "direction",
		    json_string(depot_direction_name((enum depot_direction)query->direction)));
	if (query->restricted) {
		json_t *addresses = json_array();

		for (size_t i = 0; i < query->address_count; i++)
			json_array_append_new(addresses, search_json_string(query->addresses[i]));
		json_object_set_new(detail, "addresses", addresses);
	}
	if (query->before != 0)
		json_object_set_new(detail, "before", json_integer(query->before));
	json_object_set_new(
	    detail, "limit",
	    json_integer(query->limit > 0 ? query->limit : DEPOT_SEARCH_LIMIT_DEFAULT));
	json_object_set_new(detail, "hits", json_integer((json_int_t)hits));
	text = json_dumps(detail, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(detail);
	return text;
}

/* ---- public -------------------------------------------------------------- */

int depot_search(struct depot *depot, const struct depot_query *query, const char *actor,
		 struct depot_hit **hits_r, size_t *count_r, char *err, size_t errlen)
{
	sqlite3 *db = depot_db(depot);
	struct search_plan *plan;
	struct depot_hit *hits = NULL;
	size_t count = 0;
	sqlite3_stmt *stmt = NULL;
	char *detail;
	int rc = -1, step;

	*hits_r = NULL;
	*count_r = 0;
	if (search_check(query, err, errlen) < 0)
		return -1;
	plan = xcalloc(1, sizeof(*plan));
	/* A user without addresses owns nothing: no query to run. */
	if (!query->restricted || query->address_count > 0) {
		if (search_begin(db, err, errlen) < 0 ||
		    search_plan_build(plan, query, err, errlen) < 0)
			goto done;
		if ((stmt = search_plan_prepare(db, plan)) == NULL) {
			search_failed(db, "search", err, errlen);
			goto done;
		}
		/* The seqs first, then each one's fields: one statement at a
		 * time keeps the plan of the search simple. */
		while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
			/* Zeroed but for its seq, so a failure anywhere from here
			 * frees every hit safely (depot_hits_free). */
			hits = xrealloc(hits, (count + 1) * sizeof(*hits));
			hits[count] = (struct depot_hit){.seq = sqlite3_column_int64(stmt, 0)};
			count++;
		}
		if (step != SQLITE_DONE) {
			search_failed(db, "search", err, errlen);
			goto done;
		}
		sqlite3_finalize(stmt);
		stmt = NULL;
		for (size_t i = 0; i < count; i++) {
			int64_t seq = hits[i].seq;
			int found = search_read_hit(db, seq, &hits[i], err, errlen);

			if (found != 1) {
				/* Cannot happen inside the read transaction. (The
				 * hit is cleared, the rest hold only their seq.) */
				if (found == 0)
					snprintf(err, errlen, "message %lld vanished while read",
						 (long long)seq);
				goto done;
			}
		}
		search_end(db);
	}
	detail = search_audit_detail(query, count);
	if (depot_audit(depot, actor, "search", detail, err, errlen) < 0) {
		free(detail);
		goto done;
	}
	free(detail);
	*hits_r = hits;
	*count_r = count;
	hits = NULL;
	count = 0;
	rc = 0;
done:
	sqlite3_finalize(stmt);
	search_end(db);
	depot_hits_free(&hits, count);
	search_plan_free(plan);
	free(plan);
	return rc;
}

int depot_search_owns(struct depot *depot, int64_t seq, const struct depot_query *query, char *err,
		      size_t errlen)
{
	sqlite3 *db = depot_db(depot);
	struct search_plan plan_storage, *plan = &plan_storage;
	sqlite3_stmt *stmt;
	int rc;

	if (query != NULL && query->restricted) {
		if (query->address_count == 0)
			return 0;
		if (query->address_count > DEPOT_SEARCH_LIMIT_MAX) {
			snprintf(err, errlen, "too many addresses (at most %d)",
				 DEPOT_SEARCH_LIMIT_MAX);
			return -1;
		}
	}
	memset(plan, 0, sizeof(*plan));
	search_plan_number(plan,
			   "SELECT 1 FROM message AS m WHERE m.seq = ?"
			   " AND (m.expired IS NULL OR m.expired = 0)",
			   seq);
	if (query != NULL && query->restricted)
		search_plan_exists(plan, "message_owner", "address", query->addresses,
				   query->address_count, true);
	if ((stmt = search_plan_prepare(db, plan)) == NULL) {
		rc = search_failed(db, "read a message", err, errlen);
	} else {
		rc = sqlite3_step(stmt);
		rc = rc == SQLITE_ROW	 ? 1
		     : rc == SQLITE_DONE ? 0
					 : search_failed(db, "read a message", err, errlen);
		sqlite3_finalize(stmt);
	}
	search_plan_free(plan);
	return rc;
}

int depot_search_get(struct depot *depot, int64_t seq, const struct depot_query *query,
		     const char *actor, struct depot_hit *hit, struct depot_entry_info *entry,
		     char *err, size_t errlen)
{
	static const char entry_sql[] = "SELECT kind, at, hash, record FROM entry WHERE seq = ?";
	sqlite3 *db = depot_db(depot);
	char detail[64];
	int found;

	memset(hit, 0, sizeof(*hit));
	if (entry != NULL)
		memset(entry, 0, sizeof(*entry));
	if (search_begin(db, err, errlen) < 0)
		return -1;
	found = depot_search_owns(depot, seq, query, err, errlen);
	if (found == 1)
		found = search_read_hit(db, seq, hit, err, errlen);
	if (found == 1 && entry != NULL) {
		sqlite3_stmt *stmt;
		int step;

		if (sqlite3_prepare_v2(db, entry_sql, -1, &stmt, NULL) != SQLITE_OK) {
			found = search_failed(db, "read the chain", err, errlen);
		} else {
			sqlite3_bind_int64(stmt, 1, seq);
			step = sqlite3_step(stmt);
			if (step == SQLITE_ROW) {
				const unsigned char *kind = sqlite3_column_text(stmt, 0);

				snprintf(entry->kind, sizeof(entry->kind), "%s",
					 kind != NULL ? (const char *)kind : "");
				entry->at = sqlite3_column_int64(stmt, 1);
				search_hex(sqlite3_column_blob(stmt, 2),
					   sqlite3_column_bytes(stmt, 2), entry->hash);
				search_hex(sqlite3_column_blob(stmt, 3),
					   sqlite3_column_bytes(stmt, 3), entry->record);
			} else {
				/* Every archived message has its entry; one without
				 * is what depot verify reports, not shown as fine. */
				found =
				    step == SQLITE_DONE
					? (snprintf(err, errlen, "message %lld has no chain entry",
						    (long long)seq),
					   -1)
					: search_failed(db, "read the chain", err, errlen);
			}
			sqlite3_finalize(stmt);
		}
	}
	search_end(db);
	if (found != 1) {
		depot_hit_clear(hit);
		return found;
	}
	snprintf(detail, sizeof(detail), "seq %lld", (long long)seq);
	if (actor != NULL && depot_audit(depot, actor, "show", detail, err, errlen) < 0) {
		depot_hit_clear(hit);
		return -1;
	}
	return 1;
}

void depot_hit_clear(struct depot_hit *hit)
{
	free(hit->source);
	free(hit->sender);
	free(hit->subject);
	free(hit->message_id);
	for (size_t i = 0; i < hit->recipient_count; i++)
		free(hit->recipients[i]);
	free(hit->recipients);
	for (size_t i = 0; i < hit->attachment_count; i++)
		free(hit->attachments[i]);
	free(hit->attachments);
	for (size_t i = 0; i < hit->owner_count; i++) {
		free(hit->owners[i].address);
		free(hit->owners[i].user);
	}
	free(hit->owners);
	memset(hit, 0, sizeof(*hit));
}

void depot_hits_free(struct depot_hit **hits, size_t count)
{
	if (*hits == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		depot_hit_clear(&(*hits)[i]);
	xfree(hits);
}
