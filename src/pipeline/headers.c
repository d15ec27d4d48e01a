/*
 * headers.c — reads the header block of a message and extracts its sender
 * and recipient addresses (the rules are in headers.h).
 *
 * Owns: nothing; everything lives in the caller's struct headers_parser.
 * Must never: allocate, read past what it was given, or return an address
 * it has not checked to look like local@domain (a cut or mangled address
 * could attribute mail to someone else).
 *
 * SECURITY: the input is a hostile message; every byte is untrusted and
 * every buffer write is bounded.
 */
#include <string.h>
#include <strings.h>

#include "core/address.h"
#include "pipeline/headers.h"

/* What the sender is written to instead of a recipient list. */
#define HEADERS_SENDER HEADERS_CLASS_COUNT

/* One mailbox being read: the text outside angle brackets (an addr-spec
 * written bare) and the text inside them (the address of a name-addr). */
struct headers_mailbox {
	char bare[HEADERS_ADDRESS_MAX + 1];
	size_t bare_len;
	char angle[HEADERS_ADDRESS_MAX + 1];
	size_t angle_len;
	bool have_angle;
	bool in_angle;
	bool broken; /* too long or malformed: dropped */
};

static const struct {
	const char *name;
	int class;
} headers_fields[] = {
    {"from", HEADERS_SENDER},
    {"delivered-to", HEADERS_DELIVERED_TO},
    {"x-original-to", HEADERS_X_ORIGINAL_TO},
    {"envelope-to", HEADERS_ENVELOPE_TO},
    {"to", HEADERS_TO_CC},
    {"cc", HEADERS_TO_CC},
};

static bool headers_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static char headers_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* atext of RFC 5322 3.2.3. */
/* The one address check popgate has (core/address.c): the shape the store
 * accepts for a user's address is the shape a header's address must have. */
bool headers_address_valid(const char *address)
{
	return address_valid(address);
}

/* Appends C to the buffer the mailbox is reading into. */
static void headers_mailbox_put(struct headers_mailbox *m, char c)
{
	char *buf = m->in_angle ? m->angle : m->bare;
	size_t *len = m->in_angle ? &m->angle_len : &m->bare_len;

	if (*len >= HEADERS_ADDRESS_MAX) {
		m->broken = true;
		return;
	}
	buf[(*len)++] = c;
}

/* Records a checked ADDRESS (lowercased in place) for CLASS. */
static void headers_record(struct headers_parser *parser, int class, char *address)
{
	struct headers_list *list;

	for (char *p = address; *p != '\0'; p++)
		*p = headers_lower(*p);
	if (!headers_address_valid(address))
		return;
	if (class == HEADERS_SENDER) {
		/* The first mailbox of the first From is the author. */
		if (!parser->have_from) {
			memcpy(parser->sender, address, strlen(address) + 1);
			parser->have_from = true;
		}
		return;
	}
	list = &parser->lists[class];
	if (list->count == HEADERS_RECIPIENTS_MAX)
		return;
	for (size_t i = 0; i < list->count; i++) {
		if (strcmp(list->address[i], address) == 0)
			return;
	}
	memcpy(list->address[list->count++], address, strlen(address) + 1);
}

/* Ends the mailbox in M: records its address and starts afresh. */
static void headers_mailbox_end(struct headers_parser *parser, int class, struct headers_mailbox *m)
{
	if (!m->broken && (m->have_angle || m->bare_len > 0)) {
		char *address = m->have_angle ? m->angle : m->bare;

		address[m->have_angle ? m->angle_len : m->bare_len] = '\0';
		headers_record(parser, class, address);
	}
	memset(m, 0, sizeof(*m));
}

/* Returns the index of the ')' that closes the comment opened at S[I], or N. */
static size_t headers_skip_comment(const char *s, size_t n, size_t i)
{
	unsigned depth = 0;

	for (; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && --depth == 0)
			return i;
	}
	return n;
}

/* Reads the address list S (N bytes, unfolded) for CLASS (RFC 5322 3.4:
 * mailboxes and groups, with comments, quoted strings and obsolete source
 * routes; display names are dropped). */
static void headers_list_parse(struct headers_parser *parser, int class, const char *s, size_t n)
{
	struct headers_mailbox m;

	memset(&m, 0, sizeof(m));
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '(') {
			i = headers_skip_comment(s, n, i);
			continue;
		}
		if (c == '"') {
			/* Kept whole, so a comma or bracket inside stays text;
			 * a quoted local part then fails the address check. */
			headers_mailbox_put(&m, c);
			for (i++; i < n && s[i] != '"'; i++) {
				if (s[i] == '\\' && i + 1 < n)
					headers_mailbox_put(&m, s[i++]);
				headers_mailbox_put(&m, s[i]);
			}
			headers_mailbox_put(&m, '"');
			continue;
		}
		if (m.in_angle) {
			if (c == '>')
				m.in_angle = false;
			else if (c == ':')
				m.angle_len = 0; /* the end of a source route "@a,@b:" */
			else if (c == '<')
				m.broken = true;
			else if (!headers_is_wsp(c))
				headers_mailbox_put(&m, c);
			continue;
		}
		switch (c) {
		case '<':
			if (m.have_angle)
				m.broken = true;
			m.have_angle = true;
			m.in_angle = true;
			m.angle_len = 0;
			break;
		case ',':
		case ';':
			headers_mailbox_end(parser, class, &m);
			break;
		case ':':
			/* A group's name: its mailboxes follow. */
			m.bare_len = 0;
			break;
		case ' ':
		case '\t':
			break;
		default:
			headers_mailbox_put(&m, c);
		}
	}
	headers_mailbox_end(parser, class, &m);
}

/* Ends the field being collected: parses it if it is one we read. */
static void headers_field_end(struct headers_parser *parser)
{
	const char *colon = memchr(parser->field, ':', parser->field_len);

	if (colon != NULL && !parser->field_overflow) {
		size_t name_len = (size_t)(colon - parser->field);

		/* Obsolete syntax allows blanks before the colon. */
		while (name_len > 0 && headers_is_wsp(parser->field[name_len - 1]))
			name_len--;
		for (size_t i = 0; i < sizeof(headers_fields) / sizeof(headers_fields[0]); i++) {
			const char *name = headers_fields[i].name;

			if (strlen(name) == name_len &&
			    strncasecmp(parser->field, name, name_len) == 0) {
				size_t start = (size_t)(colon - parser->field) + 1;

				headers_list_parse(parser, headers_fields[i].class,
						   parser->field + start,
						   parser->field_len - start);
				break;
			}
		}
	}
	parser->field_len = 0;
	parser->field_overflow = false;
}

void headers_init(struct headers_parser *parser)
{
	parser->seen = 0;
	parser->done = false;
	parser->at_line_start = true;
	parser->field_overflow = false;
	parser->have_from = false;
	parser->field_len = 0;
	parser->sender[0] = '\0';
	for (size_t i = 0; i < HEADERS_CLASS_COUNT; i++)
		parser->lists[i].count = 0;
	parser->recipient_count = 0;
}

bool headers_feed(struct headers_parser *parser, const char *data, size_t len)
{
	for (size_t i = 0; i < len && !parser->done; i++) {
		char c = data[i];

		if (parser->seen == HEADERS_MAX_BYTES) {
			/* A field cut by the limit is dropped, not guessed at. */
			parser->field_len = 0;
			parser->done = true;
			break;
		}
		parser->seen++;
		/* CR belongs to line ends; unfolding removes them, and a bare
		 * one inside a line is not text anyone meant. */
		if (c == '\r')
			continue;
		if (parser->at_line_start) {
			if (c == '\n') {
				headers_field_end(parser);
				parser->done = true;
				break;
			}
			if (!headers_is_wsp(c))
				headers_field_end(parser);
			parser->at_line_start = false;
		}
		if (c == '\n') {
			parser->at_line_start = true;
			continue;
		}
		if (parser->field_len == sizeof(parser->field))
			parser->field_overflow = true;
		else
			parser->field[parser->field_len++] = c;
	}
	return parser->done;
}

size_t headers_finish(struct headers_parser *parser, const char **sender_r,
		      const char *const **recipients_r)
{
	if (!parser->done) {
		headers_field_end(parser);
		parser->done = true;
	}
	parser->recipient_count = 0;
	for (size_t class = 0; class < HEADERS_CLASS_COUNT; class ++) {
		const struct headers_list *list = &parser->lists[class];

		for (size_t i = 0; i < list->count; i++) {
			bool seen = false;

			if (parser->recipient_count == HEADERS_RECIPIENTS_MAX)
				break;
			for (size_t j = 0; j < parser->recipient_count && !seen; j++)
				seen = strcmp(parser->recipients[j], list->address[i]) == 0;
			if (!seen)
				parser->recipients[parser->recipient_count++] = list->address[i];
		}
	}
	*sender_r = parser->have_from ? parser->sender : NULL;
	*recipients_r = parser->recipients;
	return parser->recipient_count;
}
