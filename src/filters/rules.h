/*
 * rules.h — content rules: PCRE2 patterns over a message's headers, decoded
 * text, raw source and links, and weighted word lists over its subject and
 * text; the "rules" filter of the filter table.
 *
 * A rule set is the default set compiled into popgate (rules_default.c)
 * with an administrator's rules file ([spam] rules_file) over it. The file
 * format, one item per line ('#' starts a comment line; blank lines are
 * skipped; fields are separated by blanks):
 *
 *   rule  NAME SCORE TARGET PATTERN DESCRIPTION...
 *   words NAME CAP DESCRIPTION...
 *   word  LIST WEIGHT PHRASE...
 *
 * NAME: 1 to RULES_NAME_MAX of [A-Za-z0-9_]; rules and lists share names.
 * SCORE, CAP, WEIGHT: a number, -100 to 100 (CAP 0 to 100).
 * TARGET: "header NAME" (the decoded values of the top-level fields NAME,
 * one a line; a field that is absent is empty text), "headers" (every
 * top-level field as "Name: value", one a line), "body" (the text of the
 * text parts, transfer encodings undone, charsets made UTF-8, HTML made
 * text), "raw" (the message as received, undecoded) or "uri" (the link
 * URLs of the text and HTML, one a line).
 * PATTERN: /REGEX/FLAGS, PCRE2 syntax, a '/' inside written "\/"; FLAGS of
 * i (no case), m (^ and $ at lines), s (. matches a newline), x (blanks
 * ignored). A '!' before it makes the rule hit when the pattern does NOT
 * match.
 * PHRASE: one or more words, matched without case, on word boundaries,
 * any blanks between the words; WEIGHT counts once per message.
 *
 * A rule or list whose name is already defined (by the default set, or
 * earlier in the file) replaces it; "words" with a known name empties the
 * list; "word" adds to a list defined before (in the file or the default
 * set). A rule of SCORE 0 and a list of CAP 0 are off. A list scores the
 * sum of the weights of its phrases found, clamped to -CAP..CAP.
 *
 * The filter's score is the sum of the scores of the rules and lists that
 * hit; its reason names them (within PROTO_REASON_MAX); it adds no header.
 *
 * SECURITY: the message is hostile and the patterns run over it: every
 * match runs under a match limit and a depth limit (a pattern that
 * backtracks without end stops there and counts as not hitting, named in
 * the reason), over bounded texts (RULES_TEXT_MAX per target). Patterns
 * are compiled (and JIT-compiled, when the system allows) before the worker
 * is confined; matching then allocates only memory.
 */
#ifndef POPGATE_FILTERS_RULES_H
#define POPGATE_FILTERS_RULES_H

#include <stdbool.h>
#include <stddef.h>

/* The longest rules file (and the default set). */
#define RULES_FILE_MAX (256UL * 1024)
/* Rules and lists in a set, and phrases in all its lists. */
#define RULES_MAX 1024
#define RULES_WORDS_MAX 4096
#define RULES_NAME_MAX 40
#define RULES_DESCRIPTION_MAX 160
#define RULES_PHRASE_MAX 80
#define RULES_SCORE_MAX 100.0
/* Bytes of one target a pattern looks at (body, raw, headers...). */
#define RULES_TEXT_MAX (256UL * 1024)
/* PCRE2's match limit (backtracking steps) and depth limit per match. */
#define RULES_MATCH_LIMIT 200000
#define RULES_DEPTH_LIMIT 2000

struct rules_set;

enum rules_kind {
	RULES_KIND_RULE,
	RULES_KIND_WORDS,
};

/* One rule or list, as listed (popgatectl filter rules). */
struct rules_info {
	enum rules_kind kind;
	const char *name;
	double score;	     /* a rule's score; a list's cap */
	const char *target;  /* "header Subject", "body"...; "subject+body" for a list */
	const char *pattern; /* as written, "!/.../i"; NULL for a list */
	size_t words;	     /* a list's phrases */
	const char *description;
	const char *origin; /* "default" or the file's name */
};

/*
 * A set of the default rules, with TEXT (LEN bytes: a rules file, NAME its
 * name for messages; NULL: none) over them. 0 with *SET_R for
 * rules_set_free; or -1 with ERR naming NAME, the line and what is wrong
 * (the first error refuses the whole text) and *SET_R NULL.
 */
int rules_set_load(const char *text, size_t len, const char *name, struct rules_set **set_r,
		   char *err, size_t errlen);

void rules_set_free(struct rules_set *set);

/* How many rules and lists SET has (those off too), and the INDEXth. */
size_t rules_set_count(const struct rules_set *set);
void rules_set_info(const struct rules_set *set, size_t index, struct rules_info *info);

/* What a set says about one message. */
struct rules_verdict {
	double score;
	size_t hits;
	/* Rules stopped by the match limit (counted as not hitting). */
	size_t limited;
	/* One line: "rules: NAME, NAME, ..." (cut to fit). */
	char reason[201];
	/* For the hit counts of popgatectl filter rules: whether the INDEXth
	 * rule or list hit; NULL if not wanted, else rules_set_count long. */
	bool *hit;
};

struct mime_message;

/* Judges the message DATA (LEN bytes, as received; PARSED its MIME, or NULL
 * to parse it here) by SET. */
void rules_judge(const struct rules_set *set, const char *data, size_t len,
		 const struct mime_message *parsed, struct rules_verdict *verdict);

/*
 * Reads the rules file PATH (at most RULES_FILE_MAX bytes) into *TEXT_R (for
 * free, NUL-terminated) and *LEN_R, and checks it (rules_set_load). 0, or
 * -1 with ERR saying why (unreadable, too long, or the line that is wrong).
 */
int rules_file_read(const char *path, char **text_r, size_t *len_r, char *err, size_t errlen);

/*
 * The worker's side of the hand-over: FD (ours now) holds the rules file's
 * text the main process checked (pipeline/proto.h, RULES); the filter's
 * init reads it. Without a call, the default set alone is used.
 */
void rules_filter_use_fd(int fd);

/*
 * The main process's side: a sealed, read-only-by-seal memory file holding
 * TEXT (LEN bytes), to hand to workers; -1 (errno set) if none can be made.
 */
int rules_text_fd(const char *text, size_t len);

/* The default set's text (rules_default.c). */
extern const char rules_default_text[];

#endif
