/*
 * uri.c — URLs in plain text, and HTML as text with its link URLs (see
 * uri.h).
 *
 * Owns: nothing between calls. Must never: read past LEN (the input is not
 * NUL-terminated), grow the text beyond the caller's bound, or loop more
 * than a bounded number of times per input byte. Not an HTML parser: it
 * needs the words a reader sees and the places links go, so a tag is
 * "< … >" with quoted attribute values, and malformed markup degrades to
 * text rather than an error.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "filters/uri.h"

/* Whether the URL that starts at TEXT (LEN bytes left) has a scheme or
 * prefix we keep; its length in *PREFIX_LEN. */
static bool uri_prefix(const char *text, size_t len, size_t *prefix_len)
{
	static const char *const prefixes[] = {"http://", "https://", "www."};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t n = strlen(prefixes[i]);

		if (len >= n && strncasecmp(text, prefixes[i], n) == 0) {
			*prefix_len = n;
			return true;
		}
	}
	return false;
}

/* Whether C may be part of a URL written in text. */
static bool uri_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("<>\"'`()[]{}|\\^", c) == NULL;
}

/* Adds the URL at TEXT (LEN bytes, trailing punctuation dropped, cut to
 * URI_LENGTH_MAX) to URLS if it has a host after its prefix. */
static void uri_add(const char *text, size_t len, size_t prefix_len, struct mime_list *urls)
{
	while (len > prefix_len && strchr(".,;:!?", text[len - 1]) != NULL)
		len--;
	if (len <= prefix_len)
		return;
	if (len > URI_LENGTH_MAX)
		len = URI_LENGTH_MAX;
	mime_list_add(urls, text, len, MIME_URLS_MAX);
}

void uri_scan_text(const char *text, size_t len, struct mime_list *urls)
{
	size_t i = 0;

	while (i < len) {
		size_t prefix_len;
		size_t end;

		/* A URL starts a word: "xhttp://" is not one, "(http://" is. */
		if ((i > 0 && isalnum((unsigned char)text[i - 1])) ||
		    !uri_prefix(text + i, len - i, &prefix_len)) {
			i++;
			continue;
		}
		end = i + prefix_len;
		while (end < len && uri_char((unsigned char)text[end]))
			end++;
		uri_add(text + i, end - i, prefix_len, urls);
		i = end;
	}
}

/* ---- HTML ---------------------------------------------------------------- */

struct html_output {
	char **out;
	size_t *out_len;
	size_t out_max;
	size_t capacity;
	bool cut;
};

static void html_put(struct html_output *o, const char *s, size_t n)
{
	if (*o->out_len + n > o->out_max) {
		o->cut = true;
		n = o->out_max - *o->out_len;
		if (n == 0)
			return;
	}
	if (*o->out_len + n + 1 > o->capacity) {
		size_t want = o->capacity * 2 + n + 64;

		if (want > o->out_max + 1)
			want = o->out_max + 1;
		*o->out = xrealloc(*o->out, want);
		o->capacity = want;
	}
	memcpy(*o->out + *o->out_len, s, n);
	*o->out_len += n;
	(*o->out)[*o->out_len] = '\0';
}

/* Writes code point CP as UTF-8 into BUF (4 bytes at least); its length. */
static size_t html_utf8(unsigned long cp, char *buf)
{
	if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		cp = 0xfffd;
	if (cp < 0x80) {
		buf[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		buf[0] = (char)(0xc0 | (cp >> 6));
		buf[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		buf[0] = (char)(0xe0 | (cp >> 12));
		buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		buf[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	buf[0] = (char)(0xf0 | (cp >> 18));
	buf[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	buf[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	buf[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Decodes the character reference at S ('&', LEN bytes left) into BUF (at
 * least 4 bytes): its length in *OUT_LEN, the bytes it used as the result;
 * 0 when it is not one we know (the '&' is then text).
 */
static size_t html_entity(const char *s, size_t len, char *buf, size_t *out_len)
{
	static const struct {
		const char *name;
		unsigned long cp;
	} named[] = {{"amp", '&'},     {"lt", '<'},	{"gt", '>'},	  {"quot", '"'},
		     {"apos", '\''},   {"nbsp", ' '},	{"copy", 0xa9},	  {"reg", 0xae},
		     {"euro", 0x20ac}, {"pound", 0xa3}, {"trade", 0x2122}};
	size_t end = 1;

	while (end < len && end < 12 && s[end] != ';')
		end++;
	if (end >= len || s[end] != ';' || end < 2)
		return 0;
	if (s[1] == '#') {
		unsigned long cp = 0;
		bool hex = end > 2 && (s[2] == 'x' || s[2] == 'X');
		size_t i = hex ? 3 : 2;

		if (i >= end)
			return 0;
		for (; i < end; i++) {
			int c = (unsigned char)s[i];
			int digit = isdigit(c)		 ? c - '0'
				    : hex && isxdigit(c) ? (tolower(c) - 'a' + 10)
							 : -1;

			if (digit < 0)
				return 0;
			cp = cp * (hex ? 16 : 10) + (unsigned long)digit;
			if (cp > 0x10ffff)
				cp = 0x110000;
		}
		*out_len = html_utf8(cp, buf);
		return end + 1;
	}
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		size_t n = strlen(named[i].name);

		if (n == end - 1 && strncasecmp(s + 1, named[i].name, n) == 0) {
			*out_len = html_utf8(named[i].cp, buf);
			return end + 1;
		}
	}
	return 0;
}

/* Finds NEEDLE (lowercase) in S (LEN bytes) ignoring case; its offset or LEN. */
static size_t html_find(const char *s, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; i + n <= len; i++) {
		if (strncasecmp(s + i, needle, n) == 0)
			return i;
	}
	return len;
}

/* Adds the URL in the attribute value VALUE (LEN bytes) to URLS. */
static void html_attribute_url(const char *value, size_t len, struct mime_list *urls)
{
	size_t prefix_len;

	while (len > 0 && isspace((unsigned char)*value)) {
		value++;
		len--;
	}
	if (uri_prefix(value, len, &prefix_len)) {
		size_t end = prefix_len;

		while (end < len && uri_char((unsigned char)value[end]))
			end++;
		uri_add(value, end, prefix_len, urls);
	}
}

/* Reads the attributes of the tag TAG (LEN bytes between the name and '>')
 * and adds the URLs of href, src and action to URLS. */
static void html_tag_attributes(const char *tag, size_t len, struct mime_list *urls)
{
	size_t i = 0;

	while (i < len) {
		size_t name_start;
		size_t name_len;

		while (i < len && (isspace((unsigned char)tag[i]) || tag[i] == '/'))
			i++;
		name_start = i;
		while (i < len && tag[i] != '=' && !isspace((unsigned char)tag[i]) && tag[i] != '/')
			i++;
		name_len = i - name_start;
		while (i < len && isspace((unsigned char)tag[i]))
			i++;
		if (i >= len || tag[i] != '=') {
			if (name_len == 0)
				i++;
			continue;
		}
		i++;
		while (i < len && isspace((unsigned char)tag[i]))
			i++;
		size_t value_start = i;
		size_t value_len;

		if (i < len && (tag[i] == '"' || tag[i] == '\'')) {
			char quote = tag[i];

			value_start = ++i;
			while (i < len && tag[i] != quote)
				i++;
			value_len = i - value_start;
			if (i < len)
				i++;
		} else {
			while (i < len && !isspace((unsigned char)tag[i]))
				i++;
			value_len = i - value_start;
		}
		if ((name_len == 4 && strncasecmp(tag + name_start, "href", 4) == 0) ||
		    (name_len == 3 && strncasecmp(tag + name_start, "src", 3) == 0) ||
		    (name_len == 6 && strncasecmp(tag + name_start, "action", 6) == 0))
			html_attribute_url(tag + value_start, value_len, urls);
	}
}

/* Whether the tag NAME ends a line of text for a reader. */
static bool html_tag_breaks(const char *name)
{
	static const char *const blocks[] = {
	    "br", "p",	"div", "tr",	"li",	 "td",	       "th", "h1", "h2", "h3",
	    "h4", "h5", "h6",  "table", "title", "blockquote", "hr", "ul", "ol"};

	for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++) {
		if (strcmp(name, blocks[i]) == 0)
			return true;
	}
	return false;
}

/*
 * Handles the tag at HTML + I ('<'); returns where scanning goes on. A
 * comment is skipped; script and style are skipped to their end tag; the
 * attributes give URLs; block tags put a line break into the text.
 */
static size_t html_tag(const char *html, size_t len, size_t i, struct html_output *o,
		       struct mime_list *urls)
{
	char name[16];
	size_t name_len = 0;
	size_t j = i + 1;
	size_t end;
	bool closing = false;

	if (len - i >= 4 && memcmp(html + i, "<!--", 4) == 0) {
		size_t found = html_find(html + i + 4, len - i - 4, "-->");

		return found == len - i - 4 ? len : i + 4 + found + 3;
	}
	if (j < len && html[j] == '/') {
		closing = true;
		j++;
	}
	/* Not a tag ("a < b"): the '<' is text. */
	if (j >= len || !(isalpha((unsigned char)html[j]) || html[j] == '!' || html[j] == '?')) {
		html_put(o, "<", 1);
		return i + 1;
	}
	while (j < len && (isalnum((unsigned char)html[j]) || html[j] == '!' || html[j] == '?')) {
		if (name_len < sizeof(name) - 1)
			name[name_len++] = (char)tolower((unsigned char)html[j]);
		j++;
	}
	name[name_len] = '\0';
	/* The tag ends at the first '>' outside quotes. */
	end = j;
	for (char quote = 0; end < len; end++) {
		if (quote != 0) {
			if (html[end] == quote)
				quote = 0;
		} else if (html[end] == '"' || html[end] == '\'') {
			quote = html[end];
		} else if (html[end] == '>') {
			break;
		}
	}
	if (!closing)
		html_tag_attributes(html + j, end - j, urls);
	if (end < len)
		end++;
	if (html_tag_breaks(name))
		html_put(o, "\n", 1);
	if (!closing && (strcmp(name, "script") == 0 || strcmp(name, "style") == 0)) {
		const char *close = name[1] == 'c' ? "</script" : "</style";
		size_t found = html_find(html + end, len - end, close);

		return end + found;
	}
	return end;
}

bool uri_scan_html(const char *html, size_t len, char **out, size_t *out_len, size_t out_max,
		   struct mime_list *urls)
{
	struct html_output o = {.out = out, .out_len = out_len, .out_max = out_max};
	size_t start = *out_len;
	size_t i = 0;

	o.capacity = *out != NULL ? *out_len + 1 : 0;
	while (i < len && !o.cut) {
		if (html[i] == '<') {
			i = html_tag(html, len, i, &o, urls);
		} else if (html[i] == '&') {
			char buf[4];
			size_t n = 0;
			size_t used = html_entity(html + i, len - i, buf, &n);

			if (used == 0) {
				html_put(&o, "&", 1);
				i++;
			} else {
				html_put(&o, buf, n);
				i += used;
			}
		} else {
			size_t run = i;

			while (run < len && html[run] != '<' && html[run] != '&')
				run++;
			html_put(&o, html + i, run - i);
			i = run;
		}
	}
	if (*out != NULL)
		uri_scan_text(*out + start, *out_len - start, urls);
	return !o.cut;
}
