/*
 * received.c — the Received chain of a message's header block and the
 * hand-off in it (filters/received.h has the rules of the walk and of
 * trusted_relays).
 *
 * A Received field's from clause comes in many shapes; the ones read here:
 *   Postfix, Sendmail   from HELO (REVERSE [ADDR])  from HELO (user@REVERSE [ADDR])
 *                       from HELO (unknown [IPv6:ADDR])  ... (may be forged)
 *   Exim                from REVERSE ([ADDR]:PORT helo=HELO)  from [ADDR] (helo=HELO)
 *   qmail               from REVERSE (HELO HELO) (ADDR)  from unknown (HELO HELO) (user@ADDR)
 *   Exchange            from HELO ([ADDR])  from HELO (ADDR)
 *   GMX, web.de         from [HELO-ADDR] ([ADDR])  from HELO ([ADDR])
 *   fetchmail, webmail  from HELO [ADDR]  from ADDR
 * The address is the first one in the last comment of the from clause that
 * has one (a HELO comment never counts): the receiver writes it after the
 * HELO name, so a HELO name made to look like a comment cannot replace it.
 * Without such a comment, a literal or address among the clause's words is
 * taken.
 *
 * Owns: nothing beyond the call. Must never: read past the message or the
 * header block, trust a HELO name, or read a hop below the first one that
 * is not the provider's own.
 * SECURITY: the header block is hostile; lengths are never taken from it,
 * and names keep only the characters a host name or literal has.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libpsl.h>

#include "core/cidr.h"
#include "core/util.h"
#include "filters/received.h"

/* Comments and words of one from clause that are looked at. */
#define RECEIVED_COMMENT_MAX 8
#define RECEIVED_WORD_MAX 8
/* Items of trusted_relays. */
#define RECEIVED_RELAYS_MAX 64
/* The longest domain name (RFC 1035 2.3.4), without a trailing dot. */
#define RECEIVED_DOMAIN_MAX 253

/* A stretch of the field being parsed. */
struct received_span {
	const char *start;
	size_t len;
};

/* The top-level words and the comments of a from clause. */
struct received_clause {
	struct received_span words[RECEIVED_WORD_MAX];
	size_t word_count;
	struct received_span comments[RECEIVED_COMMENT_MAX];
	size_t comment_count;
};

/* What the walk trusts for one provider. */
struct received_trust {
	char domain[RECEIVED_DOMAIN_MAX + 1]; /* the provider's registrable domain, or "" */
	struct cidr networks[RECEIVED_RELAYS_MAX];
	size_t network_count;
	char domains[RECEIVED_RELAYS_MAX][RECEIVED_DOMAIN_MAX + 1];
	size_t domain_count;
};

static bool received_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool received_word_is(const struct received_span *word, const char *text)
{
	size_t n = strlen(text);

	return word->len == n && strncasecmp(word->start, text, n) == 0;
}

/* True if C may stand in a host name (a reverse name must be one). */
static bool received_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

/* Copies SPAN into OUT (OUTLEN bytes, cut to fit), each byte that a host
 * name or address literal does not have turned into '?'. */
static void received_copy_name(char *out, size_t outlen, struct received_span span)
{
	size_t n = span.len < outlen - 1 ? span.len : outlen - 1;

	for (size_t i = 0; i < n; i++) {
		char c = span.start[i];

		out[i] = received_name_char(c) || c == '[' || c == ']' || c == ':' ? c : '?';
	}
	out[n] = '\0';
}

/* True if SPAN is a host name: 1 to RECEIVED_DOMAIN_MAX name characters
 * (a trailing dot aside), no empty label. */
static bool received_is_name(struct received_span span)
{
	if (span.len > 0 && span.start[span.len - 1] == '.')
		span.len--;
	if (span.len == 0 || span.len > RECEIVED_DOMAIN_MAX || span.start[0] == '.')
		return false;
	for (size_t i = 0; i < span.len; i++) {
		if (!received_name_char(span.start[i]) ||
		    (span.start[i] == '.' && i + 1 < span.len && span.start[i + 1] == '.'))
			return false;
	}
	return true;
}

/*
 * Reads WORD as an address: "ADDR", "[ADDR]", "[IPv6:ADDR]", each maybe
 * after "user@" and, bracketed, before ":PORT". Writes inet_ntop's text into
 * OUT (an IPv4-mapped IPv6 address as the IPv4 address) and returns true; an
 * unspecified address (0.0.0.0, ::) is none.
 */
static bool received_parse_address(struct received_span word, char *out, size_t outlen)
{
	const char *at = memrchr(word.start, '@', word.len);
	unsigned char bytes[sizeof(struct in6_addr)];
	static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const unsigned char zero[16] = {0};
	char text[INET6_ADDRSTRLEN];
	bool v6_tag = false;

	if (at != NULL) {
		word.len -= (size_t)(at + 1 - word.start);
		word.start = at + 1;
	}
	if (word.len > 0 && word.start[0] == '[') {
		const char *close = memchr(word.start, ']', word.len);
		size_t rest;

		if (close == NULL)
			return false;
		rest = word.len - (size_t)(close + 1 - word.start);
		/* After the bracket: nothing, or ":PORT" (Exim). */
		if (rest > 0 && (close[1] != ':' || rest == 1))
			return false;
		for (size_t i = 1; i < rest; i++) {
			if (close[1 + i] < '0' || close[1 + i] > '9')
				return false;
		}
		word.len = (size_t)(close - word.start - 1);
		word.start++;
		if (word.len >= 5 && strncasecmp(word.start, "IPv6:", 5) == 0) {
			word.start += 5;
			word.len -= 5;
			v6_tag = true;
		}
	}
	if (word.len == 0 || word.len >= sizeof(text))
		return false;
	memcpy(text, word.start, word.len);
	text[word.len] = '\0';
	if (!v6_tag && inet_pton(AF_INET, text, bytes) == 1) {
		if (memcmp(bytes, zero, 4) == 0)
			return false;
		return inet_ntop(AF_INET, bytes, out, (socklen_t)outlen) != NULL;
	}
	if (inet_pton(AF_INET6, text, bytes) != 1 || memcmp(bytes, zero, 16) == 0)
		return false;
	if (memcmp(bytes, v4_mapped, sizeof(v4_mapped)) == 0)
		return inet_ntop(AF_INET, bytes + 12, out, (socklen_t)outlen) != NULL;
	return inet_ntop(AF_INET6, bytes, out, (socklen_t)outlen) != NULL;
}

/* The next word of [*P, END) into *WORD, skipping blanks and STOPS; a word
 * ends at a blank or at one of STOPS. False at the end. */
static bool received_next_word(const char **p, const char *end, const char *stops,
			       struct received_span *word)
{
	const char *s = *p;

	/* strchr finds the terminating NUL too: a NUL byte is a stop. */
	while (s < end && (received_blank(*s) || strchr(stops, *s) != NULL))
		s++;
	if (s >= end)
		return false;
	word->start = s;
	while (s < end && !received_blank(*s) && strchr(stops, *s) == NULL)
		s++;
	word->len = (size_t)(s - word->start);
	*p = s;
	return true;
}

/* Skips a comment whose '(' is at *P; nested comments and quoted pairs
 * included (RFC 5322 3.2.2). Sets *INNER to its text inside the outer
 * parentheses and *P past it (or to END when it is not closed). */
static void received_skip_comment(const char **p, const char *end, struct received_span *inner)
{
	const char *s = *p + 1;
	unsigned depth = 1;

	inner->start = s;
	while (s < end && depth > 0) {
		if (*s == '\\' && s + 1 < end)
			s++;
		else if (*s == '(')
			depth++;
		else if (*s == ')')
			depth--;
		s++;
	}
	inner->len = (size_t)(s - inner->start) - (depth == 0 ? 1 : 0);
	*p = s;
}

/* True if WORD names a clause of a Received field (RFC 5321 4.4). */
static bool received_is_clause_name(const struct received_span *word)
{
	return received_word_is(word, "from") || received_word_is(word, "by") ||
	       received_word_is(word, "with") || received_word_is(word, "id") ||
	       received_word_is(word, "for") || received_word_is(word, "via");
}

/*
 * Reads the top level of [*P, END) up to the next clause name or ';':
 * words into CLAUSE (if not NULL) and comments too. Sets *P to the clause
 * name's word (or END) and returns it in *NEXT (len 0 at the end).
 */
static void received_read_clause(const char **p, const char *end, struct received_clause *clause,
				 struct received_span *next)
{
	const char *s = *p;

	next->start = end;
	next->len = 0;
	while (s < end) {
		struct received_span word;

		if (received_blank(*s) || *s == '\0') {
			s++;
			continue;
		}
		if (*s == ';')
			break;
		if (*s == '(') {
			struct received_span inner;

			received_skip_comment(&s, end, &inner);
			if (clause != NULL && clause->comment_count < RECEIVED_COMMENT_MAX)
				clause->comments[clause->comment_count++] = inner;
			continue;
		}
		if (!received_next_word(&s, end, "(;", &word))
			break;
		if (received_is_clause_name(&word)) {
			*next = word;
			s = word.start + word.len;
			break;
		}
		if (clause != NULL && clause->word_count < RECEIVED_WORD_MAX)
			clause->words[clause->word_count++] = word;
	}
	*p = s;
}

/* Reads the comments of CLAUSE into HOP: the HELO name of qmail's "(HELO
 * x)" and Exim's "helo=x" into *HELO, the address (see the file's comment)
 * and the reverse name written before it. True if the address was the first
 * word of its comment (qmail's "(ADDR)", Exim's "([ADDR] helo=x)"): then no
 * reverse name stood before it. */
static bool received_read_comments(const struct received_clause *clause, struct received_hop *hop,
				   struct received_span *helo)
{
	bool address_first = false;

	for (size_t c = 0; c < clause->comment_count; c++) {
		const char *p = clause->comments[c].start;
		const char *end = p + clause->comments[c].len;
		struct received_span words[16];
		size_t count = 0;
		char address[sizeof(hop->address)];
		bool forged = false;

		while (count < 16 && received_next_word(&p, end, "()", &words[count]))
			count++;
		if (count >= 2 &&
		    (received_word_is(&words[0], "HELO") || received_word_is(&words[0], "EHLO"))) {
			*helo = words[1];
			continue;
		}
		for (size_t i = 0; i < count; i++) {
			if (words[i].len > 5 && strncasecmp(words[i].start, "helo=", 5) == 0) {
				helo->start = words[i].start + 5;
				helo->len = words[i].len - 5;
			}
			if (received_word_is(&words[i], "forged"))
				forged = true;
		}
		for (size_t i = 0; i < count; i++) {
			struct received_span name;
			const char *at;

			if (!received_parse_address(words[i], address, sizeof(address)))
				continue;
			/* The last comment with an address wins, with its reverse. */
			snprintf(hop->address, sizeof(hop->address), "%s", address);
			hop->reverse[0] = '\0';
			address_first = i == 0;
			if (i == 0 || forged)
				break;
			name = words[i - 1];
			at = memrchr(name.start, '@', name.len);
			if (at != NULL) {
				name.len -= (size_t)(at + 1 - name.start);
				name.start = at + 1;
			}
			if (received_is_name(name) && !received_word_is(&name, "unknown"))
				received_copy_name(hop->reverse, sizeof(hop->reverse), name);
			break;
		}
	}
	return address_first;
}

void received_hop_parse(const char *value, size_t len, struct received_hop *hop)
{
	const char *p = value;
	const char *end = value + len;
	struct received_clause lead = {0};
	struct received_clause clause = {0};
	struct received_span next, helo = {NULL, 0};
	bool address_first = false;

	memset(hop, 0, sizeof(*hop));
	/* Comments before the first clause ("(qmail 1234 invoked by uid 0)")
	 * are the receiver's notes; "(from root@localhost) by ..." has no from
	 * clause. */
	received_read_clause(&p, end, &lead, &next);
	if (lead.word_count == 0 && received_word_is(&next, "from")) {
		hop->has_from = true;
		received_read_clause(&p, end, &clause, &next);
	}
	if (hop->has_from) {
		address_first = received_read_comments(&clause, hop, &helo);
		/* Without a comment's address: the last literal among the words
		 * ("from HELO [ADDR]", Exim's "from [ADDR] (helo=x)"), else a
		 * first word that is an address (webmail's "from ADDR"). */
		for (size_t i = clause.word_count; hop->address[0] == '\0' && i > 0; i--) {
			if (clause.words[i - 1].start[0] == '[')
				received_parse_address(clause.words[i - 1], hop->address,
						       sizeof(hop->address));
		}
		if (hop->address[0] == '\0' && clause.word_count > 0)
			received_parse_address(clause.words[0], hop->address, sizeof(hop->address));
		if (helo.start != NULL) {
			/* qmail and Exim: the first word is the reverse name, when
			 * the address's comment named none (Postfix's "(unknown
			 * [ADDR])" after a HELO name made to look like qmail's
			 * comment names none, and its first word is the HELO). */
			if (address_first && clause.word_count > 0 &&
			    received_is_name(clause.words[0]) &&
			    !received_word_is(&clause.words[0], "unknown"))
				received_copy_name(hop->reverse, sizeof(hop->reverse),
						   clause.words[0]);
			received_copy_name(hop->helo, sizeof(hop->helo), helo);
		} else if (clause.word_count > 0) {
			received_copy_name(hop->helo, sizeof(hop->helo), clause.words[0]);
		}
	}
	/* The receiving host: the word after "by", wherever that clause is. */
	while (next.len > 0 && !received_word_is(&next, "by"))
		received_read_clause(&p, end, NULL, &next);
	if (next.len > 0) {
		struct received_span word;

		if (received_next_word(&p, end, "(;", &word) && !received_is_clause_name(&word))
			received_copy_name(hop->by, sizeof(hop->by), word);
	}
}

void received_reader_init(struct received_reader *reader, const char *message, size_t len)
{
	reader->next = message;
	reader->end = message + len;
	reader->count = 0;
}

/* The next line of READER into *LINE (without its CR LF or LF); false at
 * the end of the message. */
static bool received_reader_line(struct received_reader *reader, struct received_span *line)
{
	const char *nl;

	if (reader->next >= reader->end)
		return false;
	nl = memchr(reader->next, '\n', (size_t)(reader->end - reader->next));
	line->start = reader->next;
	line->len = (size_t)((nl != NULL ? nl : reader->end) - reader->next);
	reader->next = nl != NULL ? nl + 1 : reader->end;
	if (line->len > 0 && line->start[line->len - 1] == '\r')
		line->len--;
	return true;
}

/* True if LINE starts a Received field; *VALUE is then the rest of the
 * line after the colon. */
static bool received_field_start(struct received_span line, struct received_span *value)
{
	size_t i = 8;

	if (line.len < 9 || strncasecmp(line.start, "Received", 8) != 0)
		return false;
	/* RFC 5322 4.5.2 (obsolete syntax): blanks before the colon. */
	while (i < line.len && (line.start[i] == ' ' || line.start[i] == '\t'))
		i++;
	if (i >= line.len || line.start[i] != ':')
		return false;
	value->start = line.start + i + 1;
	value->len = line.len - i - 1;
	return true;
}

int received_reader_next(struct received_reader *reader, struct received_hop *hop)
{
	struct received_span line, value;
	char field[RECEIVED_FIELD_LEN];
	size_t used = 0;

	if (reader->count >= RECEIVED_FIELD_MAX)
		return 0;
	for (;;) {
		if (!received_reader_line(reader, &line) || line.len == 0) {
			/* The empty line ends the header block. */
			reader->next = reader->end;
			return 0;
		}
		if (line.start[0] != ' ' && line.start[0] != '\t' &&
		    received_field_start(line, &value))
			break;
	}
	/* Unfolded: continuation lines joined, each keeping its leading blank. */
	for (;;) {
		size_t keep = value.len < sizeof(field) - used ? value.len : sizeof(field) - used;
		const char *after = reader->next;

		memcpy(field + used, value.start, keep);
		used += keep;
		if (!received_reader_line(reader, &line))
			break;
		if (line.len == 0 || (line.start[0] != ' ' && line.start[0] != '\t')) {
			reader->next = after; /* the next field's line, or the empty one */
			break;
		}
		value = line;
	}
	received_hop_parse(field, used, hop);
	reader->count++;
	return 1;
}

/* A trusted_relays item split into its provider host (len 0: none) and its
 * entry. */
static void received_relay_split(struct received_span item, struct received_span *provider,
				 struct received_span *entry, char *text, size_t textlen)
{
	const char *colon;
	struct cidr net;
	char err[128];

	provider->start = item.start;
	provider->len = 0;
	*entry = item;
	snprintf(text, textlen, "%.*s", (int)item.len, item.start);
	if (cidr_parse(text, &net, err, sizeof(err)) == 0)
		return;
	colon = memchr(item.start, ':', item.len);
	if (colon == NULL)
		return;
	provider->len = (size_t)(colon - item.start);
	entry->start = colon + 1;
	entry->len = item.len - provider->len - 1;
}

/* True if an item with PROVIDER (len 0: none) applies to mail from
 * PROVIDER_HOST (NULL: none). */
static bool received_relay_applies(struct received_span provider, const char *provider_host)
{
	return provider.len == 0 ||
	       (provider_host != NULL && strlen(provider_host) == provider.len &&
		strncasecmp(provider_host, provider.start, provider.len) == 0);
}

/*
 * Reads the trusted_relays TEXT for PROVIDER_HOST (NULL: none) into *TRUST
 * (when not NULL). 0, or -1 with a sentence in ERR naming the first item
 * it cannot read.
 */
static int received_relays_read(const char *text, const char *provider_host,
				struct received_trust *trust, char *err, size_t errlen)
{
	const char *p = text != NULL ? text : "";
	const char *end = p + strlen(p);
	struct received_span item;
	size_t items = 0;

	while (received_next_word(&p, end, ",", &item)) {
		struct received_span provider, entry;
		char whole[RECEIVED_DOMAIN_MAX * 2 + 2];
		char entry_text[RECEIVED_DOMAIN_MAX + 1];
		char why[128];
		struct cidr net;

		if (++items > RECEIVED_RELAYS_MAX) {
			snprintf(err, errlen, "trusted_relays: more than %d items",
				 RECEIVED_RELAYS_MAX);
			return -1;
		}
		if (item.len >= sizeof(whole)) {
			snprintf(err, errlen, "trusted_relays: '%.*s...' is too long",
				 (int)(item.len < 40 ? item.len : 40), item.start);
			return -1;
		}
		received_relay_split(item, &provider, &entry, whole, sizeof(whole));
		if (provider.start != entry.start &&
		    (provider.len == 0 || !received_is_name(provider))) {
			snprintf(err, errlen,
				 "trusted_relays: '%s' has no provider host name before its ':'",
				 whole);
			return -1;
		}
		if (entry.len == 0 || entry.len >= sizeof(entry_text)) {
			snprintf(err, errlen, "trusted_relays: '%s' has no network or domain",
				 whole);
			return -1;
		}
		snprintf(entry_text, sizeof(entry_text), "%.*s", (int)entry.len, entry.start);
		if (cidr_parse(entry_text, &net, why, sizeof(why)) == 0) {
			if (trust != NULL && received_relay_applies(provider, provider_host))
				trust->networks[trust->network_count++] = net;
			continue;
		}
		/* A name must have a letter or a hyphen: "10.0.0.0/33" is a
		 * network written wrong, not a domain. */
		if (!received_is_name(entry) || strspn(entry_text, "0123456789.") == entry.len) {
			snprintf(err, errlen,
				 "trusted_relays: '%s' is neither a network (203.0.113.0/24) nor a "
				 "domain (relays.example.com)%s%s",
				 whole, strchr(entry_text, '/') != NULL ? ": " : "",
				 strchr(entry_text, '/') != NULL ? why : "");
			return -1;
		}
		if (trust != NULL && received_relay_applies(provider, provider_host)) {
			if (entry_text[entry.len - 1] == '.')
				entry_text[entry.len - 1] = '\0';
			snprintf(trust->domains[trust->domain_count++], RECEIVED_DOMAIN_MAX + 1,
				 "%s", entry_text);
		}
	}
	return 0;
}

int received_relays_check(const char *text, char *err, size_t errlen)
{
	return received_relays_read(text, NULL, NULL, err, errlen);
}

/* The registrable domain of PROVIDER_HOST (pop.gmx.net: gmx.net) into OUT,
 * or "" when it has none (an address, "localhost", a public suffix). */
static void received_provider_domain(const char *provider_host, char *out, size_t outlen)
{
	char lower[RECEIVED_DOMAIN_MAX + 1];
	unsigned char bytes[sizeof(struct in6_addr)];
	const psl_ctx_t *psl = psl_builtin();
	const char *domain;
	size_t n;

	out[0] = '\0';
	if (provider_host == NULL || psl == NULL)
		return;
	n = strlen(provider_host);
	if (n == 0 || n >= sizeof(lower) ||
	    !received_is_name((struct received_span){provider_host, n}))
		return;
	for (size_t i = 0; i <= n; i++)
		lower[i] = (char)(provider_host[i] >= 'A' && provider_host[i] <= 'Z'
				      ? provider_host[i] - 'A' + 'a'
				      : provider_host[i]);
	if (lower[n - 1] == '.')
		lower[n - 1] = '\0';
	if (inet_pton(AF_INET, lower, bytes) == 1)
		return;
	domain = psl_registrable_domain(psl, lower);
	if (domain != NULL)
		snprintf(out, outlen, "%s", domain);
}

/* True if NAME is DOMAIN or a host below it (without case). */
static bool received_name_under(const char *name, const char *domain)
{
	size_t n = strlen(name);
	size_t d = strlen(domain);

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (d == 0 || n < d || strncasecmp(name + n - d, domain, d) != 0)
		return false;
	return n == d || name[n - d - 1] == '.';
}

/* True if ADDRESS (inet_ntop's text) is internal: loopback, private
 * (RFC 1918, RFC 4193), link-local, or shared (RFC 6598). */
static bool received_internal(const char *address)
{
	static const unsigned char loopback[16] = {[15] = 1};
	unsigned char b[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, address, b) == 1)
		return b[0] == 127 || b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
		       (b[0] == 192 && b[1] == 168) || (b[0] == 169 && b[1] == 254) ||
		       (b[0] == 100 && (b[1] & 0xc0) == 64);
	if (inet_pton(AF_INET6, address, b) != 1)
		return false;
	return memcmp(b, loopback, 16) == 0 || (b[0] & 0xfe) == 0xfc ||
	       (b[0] == 0xfe && (b[1] & 0xc0) == 0x80);
}

/* True if HOP's client is one of the provider's own hosts. */
static bool received_hop_trusted(const struct received_trust *trust, const struct received_hop *hop)
{
	struct sockaddr_storage addr = {0};

	if (received_internal(hop->address))
		return true;
	if (inet_pton(AF_INET, hop->address, &((struct sockaddr_in *)&addr)->sin_addr) == 1)
		addr.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, hop->address, &((struct sockaddr_in6 *)&addr)->sin6_addr) == 1)
		addr.ss_family = AF_INET6;
	for (size_t i = 0; i < trust->network_count; i++) {
		if (cidr_contains(&trust->networks[i], (const struct sockaddr *)&addr))
			return true;
	}
	if (hop->reverse[0] == '\0')
		return false;
	if (received_name_under(hop->reverse, trust->domain))
		return true;
	for (size_t i = 0; i < trust->domain_count; i++) {
		if (received_name_under(hop->reverse, trust->domains[i]))
			return true;
	}
	return false;
}

void received_handoff_find(const char *message, size_t len, const char *provider_host,
			   const char *trusted_relays, struct filter_handoff *handoff)
{
	struct received_trust *trust = xcalloc(1, sizeof(*trust));
	struct received_reader reader;
	struct received_hop hop;
	char err[256];

	memset(handoff, 0, sizeof(*handoff));
	if (provider_host != NULL && strcmp(provider_host, "-") == 0)
		provider_host = NULL;
	received_provider_domain(provider_host, trust->domain, sizeof(trust->domain));
	/* Checked when the configuration was read; a bad item (only a test can
	 * bring one) leaves the items before it. */
	(void)received_relays_read(trusted_relays, provider_host, trust, err, sizeof(err));
	received_reader_init(&reader, message, len);
	while (received_reader_next(&reader, &hop) == 1) {
		if (!hop.has_from)
			continue; /* a local pickup: "(from root@localhost) by ..." */
		if (hop.address[0] == '\0')
			break; /* a client without an address cannot be judged */
		if (received_hop_trusted(trust, &hop))
			continue;
		handoff->found = true;
		snprintf(handoff->address, sizeof(handoff->address), "%s", hop.address);
		snprintf(handoff->helo, sizeof(handoff->helo), "%s", hop.helo);
		snprintf(handoff->reverse, sizeof(handoff->reverse), "%s", hop.reverse);
		break;
	}
	free(trust);
}
