/*
 * rules.c — content rules and weighted word lists (see rules.h), and the
 * "rules" filter of the filter table.
 *
 * Owns: the worker's rule set (compiled once, by the filter's init, before
 * confinement; from the default set and the file text the main process
 * handed over) and the descriptor of that text until the init reads it.
 * Must never: run a pattern without the match context's limits, over more
 * than RULES_TEXT_MAX bytes, or compile a pattern after confinement (the
 * JIT needs executable memory, which the worker's seccomp filter refuses
 * then; a pattern the JIT cannot take runs in the interpreter).
 *
 * SECURITY: the message is hostile (see rules.h); the rules file is the
 * administrator's, refused whole at its first bad line.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pcre2.h>

#include "core/log.h"
#include "core/util.h"
#include "filters/filter.h"
#include "filters/message.h"
#include "filters/mime.h"
#include "filters/rules.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"

/* The longest line of a rules text. */
#define RULES_LINE_MAX 4096
_Static_assert(sizeof(((struct rules_verdict *)0)->reason) == PROTO_REASON_MAX + 1,
	       "a rules reason fits a result's");
/* The heap PCRE2's interpreter may use for one match, in KiB. */
#define RULES_HEAP_LIMIT_KIB 16384

enum rules_target {
	RULES_TARGET_HEADER,
	RULES_TARGET_HEADERS,
	RULES_TARGET_BODY,
	RULES_TARGET_RAW,
	RULES_TARGET_URI,
	RULES_TARGET_WORDS, /* a list's: the subject and the body */
	RULES_TARGET_COUNT,
};

struct rules_word {
	char *phrase;
	double weight;
};

struct rules_item {
	enum rules_kind kind;
	char name[RULES_NAME_MAX + 1];
	double score; /* a rule's score; a list's cap */
	enum rules_target target;
	char *header;	   /* RULES_TARGET_HEADER's field name */
	char *target_text; /* as listed */
	char *pattern;	   /* as written (a rule's) */
	bool negate;
	pcre2_code *code; /* a list's is compiled by rules_set_finish */
	struct rules_word *words;
	size_t word_count;
	char *description;
	const char *origin; /* "default" or the set's file_name */
};

struct rules_set {
	struct rules_item *items;
	size_t count;
	size_t word_total;
	char *file_name;
	pcre2_match_context *match_context;
	uint32_t groups_max; /* capture groups of the largest pattern */
};

/* ---- parsing ------------------------------------------------------------- */

static void rules_item_clear(struct rules_item *item)
{
	free(item->header);
	free(item->target_text);
	free(item->pattern);
	pcre2_code_free(item->code);
	for (size_t i = 0; i < item->word_count; i++)
		free(item->words[i].phrase);
	free(item->words);
	free(item->description);
	memset(item, 0, sizeof(*item));
}

void rules_set_free(struct rules_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->count; i++)
		rules_item_clear(&set->items[i]);
	free(set->items);
	free(set->file_name);
	pcre2_match_context_free(set->match_context);
	free(set);
}

static struct rules_item *rules_find(struct rules_set *set, const char *name)
{
	for (size_t i = 0; i < set->count; i++) {
		if (strcmp(set->items[i].name, name) == 0)
			return &set->items[i];
	}
	return NULL;
}

/* The next blank-separated field of *LINE (advanced past it), or NULL. */
static char *rules_field(char **line)
{
	char *start = *line;
	char *end;

	while (*start == ' ' || *start == '\t')
		start++;
	if (*start == '\0')
		return NULL;
	end = start;
	while (*end != '\0' && *end != ' ' && *end != '\t')
		end++;
	if (*end != '\0')
		*end++ = '\0';
	*line = end;
	return start;
}

/* The rest of *LINE, without leading and trailing blanks ("" if none). */
static char *rules_rest(char **line)
{
	char *start = *line;
	char *end;

	while (*start == ' ' || *start == '\t')
		start++;
	end = start + strlen(start);
	while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	*line = end;
	return start;
}

static bool rules_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > RULES_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isalnum((unsigned char)name[i]) && name[i] != '_')
			return false;
	}
	return true;
}

/* A header field's name as rules may write it: 1 to 76 of A-Z a-z 0-9 - _. */
static bool rules_header_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 76)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_')
			return false;
	}
	return true;
}

/* A number in [MIN, MAX] into *VALUE; false if S is not one. */
static bool rules_number(const char *s, double min, double max, double *value)
{
	char *end;

	if (s == NULL)
		return false;
	errno = 0;
	*value = strtod(s, &end);
	return errno == 0 && end != s && *end == '\0' && *value >= min && *value <= max;
}

/* Printable ASCII, or bytes of UTF-8 text (checked by PCRE2 where it matters). */
static bool rules_text_valid(const char *s, size_t max)
{
	size_t len = strlen(s);

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static pcre2_code *rules_compile(const char *regex, size_t len, uint32_t options, char *err,
				 size_t errlen)
{
	int code;
	PCRE2_SIZE offset;
	pcre2_code *compiled =
	    pcre2_compile((PCRE2_SPTR)regex, len,
			  options | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C,
			  &code, &offset, NULL);

	if (compiled == NULL) {
		PCRE2_UCHAR message[160];

		pcre2_get_error_message(code, message, sizeof(message));
		snprintf(err, errlen, "bad pattern at offset %zu: %s", (size_t)offset, message);
		return NULL;
	}
	/* Where the JIT cannot work, the interpreter does, under the same limits. */
	(void)pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);
	return compiled;
}

/* Parses the TARGET fields of a rule from *LINE into ITEM. */
static int rules_parse_target(char **line, struct rules_item *item, char *err, size_t errlen)
{
	static const char *const names[] = {"header", "headers", "body", "raw", "uri"};
	char *word = rules_field(line);

	for (size_t t = 0; word != NULL && t < sizeof(names) / sizeof(names[0]); t++) {
		if (strcmp(word, names[t]) != 0)
			continue;
		item->target = (enum rules_target)t;
		if (item->target != RULES_TARGET_HEADER) {
			item->target_text = xstrdup(word);
			return 0;
		}
		char *field = rules_field(line);

		if (field == NULL || !rules_header_name_valid(field)) {
			snprintf(err, errlen, "header needs a field name (header Subject)");
			return -1;
		}
		item->header = xstrdup(field);
		item->target_text = xasprintf("header %s", field);
		return 0;
	}
	snprintf(err, errlen, "unknown target (header NAME, headers, body, raw or uri)");
	return -1;
}

/* Parses the PATTERN field (from *LINE, which may hold blanks) into ITEM. */
static int rules_parse_pattern(char **line, struct rules_item *item, char *err, size_t errlen)
{
	char *start = *line;
	char *p;
	uint32_t options = 0;
	char message[200];

	while (*start == ' ' || *start == '\t')
		start++;
	p = start;
	if (*p == '!') {
		item->negate = true;
		p++;
	}
	if (*p != '/') {
		snprintf(err, errlen, "the pattern must be written /REGEX/FLAGS");
		return -1;
	}
	char *regex = ++p;

	while (*p != '\0' && *p != '/') {
		if (*p == '\\' && p[1] != '\0')
			p++;
		p++;
	}
	if (*p != '/') {
		snprintf(err, errlen, "the pattern has no closing /");
		return -1;
	}
	size_t regex_len = (size_t)(p - regex);

	for (p++; *p != '\0' && *p != ' ' && *p != '\t'; p++) {
		if (*p == 'i')
			options |= PCRE2_CASELESS;
		else if (*p == 'm')
			options |= PCRE2_MULTILINE;
		else if (*p == 's')
			options |= PCRE2_DOTALL;
		else if (*p == 'x')
			options |= PCRE2_EXTENDED;
		else {
			snprintf(err, errlen, "unknown pattern flag '%c' (i, m, s or x)",
				 isprint((unsigned char)*p) ? *p : '?');
			return -1;
		}
	}
	if (regex_len == 0) {
		snprintf(err, errlen, "the pattern is empty");
		return -1;
	}
	item->code = rules_compile(regex, regex_len, options, message, sizeof(message));
	if (item->code == NULL) {
		snprintf(err, errlen, "%s", message);
		return -1;
	}
	item->pattern = xstrndup(start, (size_t)(p - start));
	*line = p;
	return 0;
}

/* Puts ITEM (parsed) into SET, over a rule or list of its name. */
static void rules_put(struct rules_set *set, struct rules_item *item)
{
	struct rules_item *old = rules_find(set, item->name);

	if (old != NULL) {
		set->word_total -= old->word_count;
		rules_item_clear(old);
		*old = *item;
		return;
	}
	set->items = xrealloc(set->items, (set->count + 1) * sizeof(*set->items));
	set->items[set->count++] = *item;
}

static int rules_parse_rule(struct rules_set *set, char *line, const char *origin, char *err,
			    size_t errlen)
{
	struct rules_item item = {.kind = RULES_KIND_RULE, .origin = origin};
	char *name = rules_field(&line);
	char *description;

	if (name == NULL || !rules_name_valid(name)) {
		snprintf(err, errlen, "bad rule name (1 to %d of A-Z a-z 0-9 _)", RULES_NAME_MAX);
		return -1;
	}
	snprintf(item.name, sizeof(item.name), "%s", name);
	if (!rules_number(rules_field(&line), -RULES_SCORE_MAX, RULES_SCORE_MAX, &item.score)) {
		snprintf(err, errlen, "bad score (a number, -100 to 100)");
		return -1;
	}
	if (rules_parse_target(&line, &item, err, errlen) < 0 ||
	    rules_parse_pattern(&line, &item, err, errlen) < 0)
		goto fail;
	description = rules_rest(&line);
	if (!rules_text_valid(description, RULES_DESCRIPTION_MAX)) {
		snprintf(err, errlen, "a rule needs a description (one line, at most %d bytes)",
			 RULES_DESCRIPTION_MAX);
		goto fail;
	}
	item.description = xstrdup(description);
	if (rules_find(set, item.name) == NULL && set->count >= RULES_MAX) {
		snprintf(err, errlen, "more than %d rules and lists", RULES_MAX);
		goto fail;
	}
	rules_put(set, &item);
	return 0;
fail:
	rules_item_clear(&item);
	return -1;
}

static int rules_parse_words(struct rules_set *set, char *line, const char *origin, char *err,
			     size_t errlen)
{
	struct rules_item item = {.kind = RULES_KIND_WORDS, .origin = origin};
	char *name = rules_field(&line);
	char *description;

	if (name == NULL || !rules_name_valid(name)) {
		snprintf(err, errlen, "bad list name (1 to %d of A-Z a-z 0-9 _)", RULES_NAME_MAX);
		return -1;
	}
	snprintf(item.name, sizeof(item.name), "%s", name);
	if (!rules_number(rules_field(&line), 0, RULES_SCORE_MAX, &item.score)) {
		snprintf(err, errlen, "bad cap (a number, 0 to 100)");
		return -1;
	}
	description = rules_rest(&line);
	if (!rules_text_valid(description, RULES_DESCRIPTION_MAX)) {
		snprintf(err, errlen, "a list needs a description (one line, at most %d bytes)",
			 RULES_DESCRIPTION_MAX);
		return -1;
	}
	if (rules_find(set, item.name) == NULL && set->count >= RULES_MAX) {
		snprintf(err, errlen, "more than %d rules and lists", RULES_MAX);
		return -1;
	}
	item.target = RULES_TARGET_WORDS;
	item.target_text = xstrdup("subject+body");
	item.description = xstrdup(description);
	rules_put(set, &item);
	return 0;
}

/* Appends PHRASE to the regex being built in OUT: each word quoted, any
 * blanks between words. */
static void rules_phrase_regex(FILE *out, const char *phrase)
{
	bool blank = false;

	for (const char *p = phrase; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == ' ' || c == '\t') {
			blank = true;
			continue;
		}
		if (blank)
			fputs("\\s+", out);
		blank = false;
		if (c < 0x80 && !isalnum(c))
			fputc('\\', out);
		fputc(c, out);
	}
}

static int rules_parse_word(struct rules_set *set, char *line, char *err, size_t errlen)
{
	char *name = rules_field(&line);
	struct rules_item *list = name != NULL ? rules_find(set, name) : NULL;
	char *phrase;
	double weight;

	if (list == NULL || list->kind != RULES_KIND_WORDS) {
		snprintf(err, errlen, "word needs a list defined before it (words NAME CAP ...)");
		return -1;
	}
	if (!rules_number(rules_field(&line), -RULES_SCORE_MAX, RULES_SCORE_MAX, &weight)) {
		snprintf(err, errlen, "bad weight (a number, -100 to 100)");
		return -1;
	}
	phrase = rules_rest(&line);
	if (!rules_text_valid(phrase, RULES_PHRASE_MAX)) {
		snprintf(err, errlen, "a word needs a phrase (at most %d bytes)", RULES_PHRASE_MAX);
		return -1;
	}
	/* A phrase that is not text PCRE2 takes is refused here, on its line. */
	char *regex = NULL;
	size_t regex_len = 0;
	FILE *out = open_memstream(&regex, &regex_len);
	pcre2_code *check;

	if (out == NULL)
		abort();
	rules_phrase_regex(out, phrase);
	fclose(out);
	check = pcre2_compile((PCRE2_SPTR)regex, regex_len, PCRE2_UTF, (int[]){0},
			      (PCRE2_SIZE[]){0}, NULL);
	free(regex);
	if (check == NULL) {
		snprintf(err, errlen, "the phrase is not UTF-8 text");
		return -1;
	}
	pcre2_code_free(check);
	for (size_t i = 0; i < list->word_count; i++) {
		if (strcasecmp(list->words[i].phrase, phrase) == 0) {
			list->words[i].weight = weight;
			return 0;
		}
	}
	if (set->word_total >= RULES_WORDS_MAX) {
		snprintf(err, errlen, "more than %d words in all lists", RULES_WORDS_MAX);
		return -1;
	}
	list->words = xrealloc(list->words, (list->word_count + 1) * sizeof(*list->words));
	list->words[list->word_count].phrase = xstrdup(phrase);
	list->words[list->word_count].weight = weight;
	list->word_count++;
	set->word_total++;
	return 0;
}

/* Adds TEXT (LEN bytes, ORIGIN its name) to SET. 0, or -1 with ERR. */
static int rules_parse(struct rules_set *set, const char *text, size_t len, const char *origin,
		       char *err, size_t errlen)
{
	size_t line_no = 0;
	char line_err[256];

	if (len > RULES_FILE_MAX) {
		snprintf(err, errlen, "%s: longer than %lu bytes", origin, RULES_FILE_MAX);
		return -1;
	}
	if (memchr(text, '\0', len) != NULL) {
		snprintf(err, errlen, "%s: holds a NUL byte", origin);
		return -1;
	}
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t line_len = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
		char *line;
		char *rest;
		char *keyword;
		int rc = 0;

		line_no++;
		if (line_len > RULES_LINE_MAX) {
			snprintf(err, errlen, "%s line %zu: longer than %d bytes", origin, line_no,
				 RULES_LINE_MAX);
			return -1;
		}
		line = xstrndup(text + pos, line_len);
		pos += line_len + (nl != NULL);
		if (line_len > 0 && line[line_len - 1] == '\r')
			line[line_len - 1] = '\0';
		rest = line;
		keyword = rules_field(&rest);
		line_err[0] = '\0';
		if (keyword == NULL || keyword[0] == '#')
			rc = 0;
		else if (strcmp(keyword, "rule") == 0)
			rc = rules_parse_rule(set, rest, origin, line_err, sizeof(line_err));
		else if (strcmp(keyword, "words") == 0)
			rc = rules_parse_words(set, rest, origin, line_err, sizeof(line_err));
		else if (strcmp(keyword, "word") == 0)
			rc = rules_parse_word(set, rest, line_err, sizeof(line_err));
		else {
			snprintf(line_err, sizeof(line_err),
				 "unknown line (rule, words, word or a # comment)");
			rc = -1;
		}
		free(line);
		if (rc < 0) {
			snprintf(err, errlen, "%s line %zu: %s", origin, line_no, line_err);
			return -1;
		}
	}
	return 0;
}

/* Compiles each list's phrases into one pattern, and sets the limits. */
static int rules_set_finish(struct rules_set *set, char *err, size_t errlen)
{
	for (size_t i = 0; i < set->count; i++) {
		struct rules_item *item = &set->items[i];
		char *regex = NULL;
		size_t regex_len = 0;
		FILE *out;
		char message[200];
		uint32_t groups = 0;

		if (item->kind == RULES_KIND_RULE) {
			pcre2_pattern_info(item->code, PCRE2_INFO_CAPTURECOUNT, &groups);
			if (groups > set->groups_max)
				set->groups_max = groups;
			continue;
		}
		pcre2_code_free(item->code);
		item->code = NULL;
		if (item->word_count == 0)
			continue;
		/* Group N+1 is phrase N: the match says which one it found. */
		out = open_memstream(&regex, &regex_len);
		if (out == NULL)
			abort();
		fputs("(?<!\\w)(?:", out);
		for (size_t w = 0; w < item->word_count; w++) {
			fputs(w > 0 ? "|(" : "(", out);
			rules_phrase_regex(out, item->words[w].phrase);
			fputc(')', out);
		}
		fputs(")(?!\\w)", out);
		fclose(out);
		item->code =
		    rules_compile(regex, regex_len, PCRE2_CASELESS, message, sizeof(message));
		free(regex);
		if (item->code == NULL) {
			snprintf(err, errlen, "list %s: %s", item->name, message);
			return -1;
		}
		if (item->word_count > set->groups_max)
			set->groups_max = (uint32_t)item->word_count;
	}
	set->match_context = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(set->match_context, RULES_MATCH_LIMIT);
	pcre2_set_depth_limit(set->match_context, RULES_DEPTH_LIMIT);
	pcre2_set_heap_limit(set->match_context, RULES_HEAP_LIMIT_KIB);
	return 0;
}

int rules_set_load(const char *text, size_t len, const char *name, struct rules_set **set_r,
		   char *err, size_t errlen)
{
	struct rules_set *set = xcalloc(1, sizeof(*set));

	*set_r = NULL;
	set->file_name = xstrdup(name != NULL ? name : "rules file");
	if (rules_parse(set, rules_default_text, strlen(rules_default_text), "default", err,
			errlen) < 0 ||
	    (text != NULL && rules_parse(set, text, len, set->file_name, err, errlen) < 0) ||
	    rules_set_finish(set, err, errlen) < 0) {
		rules_set_free(set);
		return -1;
	}
	*set_r = set;
	return 0;
}

size_t rules_set_count(const struct rules_set *set)
{
	return set->count;
}

void rules_set_info(const struct rules_set *set, size_t index, struct rules_info *info)
{
	const struct rules_item *item = &set->items[index];

	info->kind = item->kind;
	info->name = item->name;
	info->score = item->score;
	info->target = item->target_text;
	info->pattern = item->pattern;
	info->words = item->word_count;
	info->description = item->description;
	info->origin = item->origin;
}

/* ---- judging ------------------------------------------------------------- */

/* The texts of one message the patterns look at, made when first asked. */
struct rules_texts {
	const char *data;
	size_t len;
	const struct mime_message *mime;
	struct mime_message own_mime; /* when the caller gave no parse */
	char *text[RULES_TARGET_COUNT];
	size_t text_len[RULES_TARGET_COUNT];
	bool made[RULES_TARGET_COUNT];
};

/* Appends S (LEN bytes) and, if NEWLINE, a newline to OUT within the cap. */
static void rules_put_text(FILE *out, size_t *used, const char *s, size_t len, bool newline)
{
	size_t room = RULES_TEXT_MAX - *used;

	if (len > room)
		len = room;
	fwrite(s, 1, len, out);
	*used += len;
	if (newline && *used < RULES_TEXT_MAX) {
		fputc('\n', out);
		(*used)++;
	}
}

/* The text of TARGET (a header's for HEADER: not cached). */
static const char *rules_text(struct rules_texts *texts, enum rules_target target,
			      const char *header, size_t *len_r, char **owned_r)
{
	const struct mime_message *mime = texts->mime;
	char *text = NULL;
	size_t text_len = 0;
	size_t used = 0;
	FILE *out;

	*owned_r = NULL;
	if (target == RULES_TARGET_RAW) {
		*len_r = texts->len < RULES_TEXT_MAX ? texts->len : RULES_TEXT_MAX;
		return texts->data;
	}
	if (target == RULES_TARGET_BODY) {
		*len_r = mime->text_len < RULES_TEXT_MAX ? mime->text_len : RULES_TEXT_MAX;
		return mime->text;
	}
	if (target != RULES_TARGET_HEADER && texts->made[target]) {
		*len_r = texts->text_len[target];
		return texts->text[target];
	}
	out = open_memstream(&text, &text_len);
	if (out == NULL)
		abort();
	switch (target) {
	case RULES_TARGET_HEADER: {
		bool first = true;

		for (size_t i = 0; i < mime->header_count; i++) {
			if (strcasecmp(mime->headers[i].name, header) != 0)
				continue;
			if (!first)
				rules_put_text(out, &used, "\n", 1, false);
			first = false;
			rules_put_text(out, &used, mime->headers[i].value,
				       strlen(mime->headers[i].value), false);
		}
		break;
	}
	case RULES_TARGET_HEADERS:
		for (size_t i = 0; i < mime->header_count; i++) {
			rules_put_text(out, &used, mime->headers[i].name,
				       strlen(mime->headers[i].name), false);
			rules_put_text(out, &used, ": ", 2, false);
			rules_put_text(out, &used, mime->headers[i].value,
				       strlen(mime->headers[i].value), true);
		}
		break;
	case RULES_TARGET_URI:
		for (size_t i = 0; i < mime->urls.count; i++)
			rules_put_text(out, &used, mime->urls.items[i], strlen(mime->urls.items[i]),
				       true);
		break;
	case RULES_TARGET_WORDS: {
		const char *subject = mime_header_find(mime, "Subject");

		if (subject != NULL)
			rules_put_text(out, &used, subject, strlen(subject), true);
		rules_put_text(out, &used, mime->text, mime->text_len, false);
		break;
	}
	default:
		break;
	}
	fclose(out);
	*len_r = text_len;
	if (target == RULES_TARGET_HEADER) {
		*owned_r = text;
		return text;
	}
	texts->text[target] = text;
	texts->text_len[target] = text_len;
	texts->made[target] = true;
	return text;
}

/* Whether PCRE2's RC says a limit stopped the match (or it failed). */
static bool rules_stopped(int rc)
{
	return rc < 0 && rc != PCRE2_ERROR_NOMATCH;
}

/* The points of list ITEM over TEXT; *LIMITED_R if a limit stopped it. */
static double rules_words_score(const struct rules_set *set, const struct rules_item *item,
				const char *text, size_t len, pcre2_match_data *data,
				bool *limited_r)
{
	bool *seen = xcalloc(item->word_count, sizeof(bool));
	double sum = 0;

	for (size_t offset = 0; offset <= len;) {
		int rc = pcre2_match(item->code, (PCRE2_SPTR)text, len, offset, 0, data,
				     set->match_context);
		PCRE2_SIZE *ovector;

		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rules_stopped(rc)) {
			*limited_r = true;
			break;
		}
		/* Exactly one phrase group is set: the highest one, rc - 1. */
		if (rc >= 2 && (size_t)rc - 2 < item->word_count && !seen[rc - 2]) {
			seen[rc - 2] = true;
			sum += item->words[rc - 2].weight;
		}
		ovector = pcre2_get_ovector_pointer(data);
		offset = ovector[1] > ovector[0] ? ovector[1] : ovector[0] + 1;
	}
	free(seen);
	if (sum > item->score)
		sum = item->score;
	if (sum < -item->score)
		sum = -item->score;
	return sum;
}

/* Adds NAME to the reason being built (*POS bytes of it used), or marks it
 * cut when it does not fit whole with room for the cut mark. */
static void rules_reason_add(char *reason, size_t size, size_t *pos, bool *cut, const char *text)
{
	static const char cut_mark[] = ", ...";
	size_t len = strlen(text);
	bool first = reason[*pos - 1] == ':';
	size_t need = (first ? 1 : 2) + len;

	if (*cut)
		return;
	if (*pos + need + sizeof(cut_mark) > size) {
		*cut = true;
		memcpy(reason + *pos, cut_mark, sizeof(cut_mark));
		*pos += sizeof(cut_mark) - 1;
		return;
	}
	*pos += (size_t)snprintf(reason + *pos, size - *pos, "%s%s", first ? " " : ", ", text);
}

void rules_judge(const struct rules_set *set, const char *data, size_t len,
		 const struct mime_message *parsed, struct rules_verdict *verdict)
{
	struct rules_texts texts = {.data = data, .len = len};
	pcre2_match_data *match = pcre2_match_data_create(set->groups_max + 1, NULL);
	char limited_names[201] = "";
	size_t pos;
	bool cut = false;

	verdict->score = 0;
	verdict->hits = 0;
	verdict->limited = 0;
	if (parsed == NULL) {
		mime_parse(data, len, &texts.own_mime);
		parsed = &texts.own_mime;
	}
	texts.mime = parsed;
	snprintf(verdict->reason, sizeof(verdict->reason), "rules:");
	pos = strlen(verdict->reason);
	for (size_t i = 0; i < set->count; i++) {
		const struct rules_item *item = &set->items[i];
		const char *text;
		char *owned;
		size_t text_len;
		bool hit = false;
		bool limited = false;
		double points = item->score;

		if (verdict->hit != NULL)
			verdict->hit[i] = false;
		if (item->score == 0 || item->code == NULL)
			continue;
		text = rules_text(&texts, item->target, item->header, &text_len, &owned);
		if (item->kind == RULES_KIND_RULE) {
			int rc = pcre2_match(item->code, (PCRE2_SPTR)text, text_len, 0, 0, match,
					     set->match_context);

			limited = rules_stopped(rc);
			hit = !limited && (rc >= 0) != item->negate;
		} else {
			points = rules_words_score(set, item, text, text_len, match, &limited);
			hit = points != 0;
		}
		free(owned);
		if (limited) {
			size_t used = strlen(limited_names);

			verdict->limited++;
			if (used + strlen(item->name) + 3 < sizeof(limited_names))
				snprintf(limited_names + used, sizeof(limited_names) - used, "%s%s",
					 used > 0 ? ", " : "", item->name);
		}
		if (!hit)
			continue;
		verdict->hits++;
		verdict->score += points;
		if (verdict->hit != NULL)
			verdict->hit[i] = true;
		if (item->kind == RULES_KIND_WORDS) {
			char label[RULES_NAME_MAX + 16];

			snprintf(label, sizeof(label), "%s(%.1f)", item->name, points);
			rules_reason_add(verdict->reason, sizeof(verdict->reason), &pos, &cut,
					 label);
		} else {
			rules_reason_add(verdict->reason, sizeof(verdict->reason), &pos, &cut,
					 item->name);
		}
	}
	if (verdict->hits == 0)
		rules_reason_add(verdict->reason, sizeof(verdict->reason), &pos, &cut, "none");
	if (verdict->limited > 0 && !cut) {
		char note[240];

		snprintf(note, sizeof(note), "; match limit: %s", limited_names);
		if (pos + strlen(note) < sizeof(verdict->reason))
			memcpy(verdict->reason + pos, note, strlen(note) + 1);
	}
	for (size_t t = 0; t < RULES_TARGET_COUNT; t++)
		free(texts.text[t]);
	if (parsed == &texts.own_mime)
		mime_message_free(&texts.own_mime);
	pcre2_match_data_free(match);
}

/* ---- the file and its hand-over ------------------------------------------ */

int rules_file_read(const char *path, char **text_r, size_t *len_r, char *err, size_t errlen)
{
	struct rules_set *set;
	struct stat st;
	char *text;
	size_t len;
	int fd;

	*text_r = NULL;
	*len_r = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > RULES_FILE_MAX) {
		snprintf(err, errlen, "%s: not a file of at most %lu bytes", path, RULES_FILE_MAX);
		close(fd);
		return -1;
	}
	close(fd);
	if (util_read_file(path, &text, &len) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (rules_set_load(text, len, path, &set, err, errlen) < 0) {
		free(text);
		return -1;
	}
	rules_set_free(set);
	*text_r = text;
	*len_r = len;
	return 0;
}

int rules_text_fd(const char *text, size_t len)
{
	int fd = memfd_create("popgate-rules", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, text + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	/* A worker (another user, hostile content) must not change what the
	 * next one reads: no write, no resize, no unsealing. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- the filter ---------------------------------------------------------- */

static struct rules_set *rules_worker_set;
/* The descriptor of the file text, until the set is loaded; -1: none. */
static int rules_worker_fd = -1;

void rules_filter_use_fd(int fd)
{
	if (rules_worker_fd >= 0)
		close(rules_worker_fd);
	rules_worker_fd = fd;
	rules_set_free(rules_worker_set);
	rules_worker_set = NULL;
}

/* Reads the text of FD (at most RULES_FILE_MAX bytes, from its start). */
static char *rules_fd_text(int fd, size_t *len_r, char *err, size_t errlen)
{
	struct stat st;
	char *text;
	size_t size;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > RULES_FILE_MAX) {
		snprintf(err, errlen,
			 "the rules text handed over is not a file of at most %lu bytes",
			 RULES_FILE_MAX);
		return NULL;
	}
	size = (size_t)st.st_size;
	text = xmalloc(size + 1);
	for (size_t done = 0; done < size;) {
		ssize_t n = pread(fd, text + done, size - done, (off_t)done);

		if (n <= 0) {
			snprintf(err, errlen, "reading the rules text: %s",
				 n < 0 ? strerror(errno) : "short");
			free(text);
			return NULL;
		}
		done += (size_t)n;
	}
	text[size] = '\0';
	*len_r = size;
	return text;
}

/* Loads the worker's set: the default rules and the text handed over. The
 * main process checked that text, so a failure here falls back to the
 * default set (logged) rather than leaving mail unjudged. */
static int rules_filter_load(char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	char load_err[512];

	mime_init();
	if (rules_worker_fd >= 0) {
		text = rules_fd_text(rules_worker_fd, &len, load_err, sizeof(load_err));
		if (text == NULL)
			log_error("rules: %s; the default set is used", load_err);
		close(rules_worker_fd);
		rules_worker_fd = -1;
	}
	if (text != NULL && rules_set_load(text, len, "rules file", &rules_worker_set, load_err,
					   sizeof(load_err)) < 0)
		log_error("rules: %s; the default set is used", load_err);
	free(text);
	if (rules_worker_set == NULL &&
	    rules_set_load(NULL, 0, NULL, &rules_worker_set, err, errlen) < 0)
		return -1;
	return 0;
}

static int rules_filter_init(char *err, size_t errlen)
{
	rules_set_free(rules_worker_set);
	rules_worker_set = NULL;
	return rules_filter_load(err, errlen);
}

static int rules_filter_run(const struct filter_message *message, struct pipeline_result *result,
			    struct pipeline_verdict *verdict)
{
	struct rules_verdict judged = {0};
	char err[256];

	(void)verdict;
	/* popgatectl filter check runs no inits: it loads here, unconfined. */
	if (rules_worker_set == NULL && rules_filter_load(err, sizeof(err)) < 0) {
		result->reason = xasprintf("rules: %s", err);
		return -1;
	}
	rules_judge(rules_worker_set, message->body, message->body_len, filter_message_mime(message),
		    &judged);
	result->score = judged.score;
	result->reason = xstrdup(judged.reason);
	return 0;
}

const struct filter filter_rules = {
    .name = "rules",
    .init = rules_filter_init,
    .run = rules_filter_run,
};
