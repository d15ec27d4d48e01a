/*
 * challenge.c — composing the challenge mail and queueing it for the relay
 * (ciss/challenge.h).
 *
 * Owns: the mail's text until the spool has it.
 * Must never: put a byte of the held message into a header unencoded and
 * uncleaned, send to the null sender, log the link or its token.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "ciss/challenge.h"
#include "ciss/token.h"
#include "core/address.h"
#include "core/log.h"
#include "core/util.h"
#include "popgate.h"
#include "smtp/accept.h"
#include "store/ciss.h"
#include "store/spool.h"

_Static_assert(CISS_TOKEN_NONCE_BYTES == CISS_NONCE_BYTES, "the link carries the store's nonce");

/* An encoded word is at most 75 characters long (RFC 2047 2). */
#define CHALLENGE_WORD_MAX 75
/* Quoted-printable lines are at most 76 characters (RFC 2045 6.7). */
#define CHALLENGE_QP_LINE 76

static const char challenge_subject_prefix[] = "Please confirm your message: ";

/* The length of the valid UTF-8 sequence at TEXT (LEN bytes left), or 0. */
static size_t challenge_utf8_length(const unsigned char *text, size_t len)
{
	unsigned char lead = text[0];
	size_t need;
	uint32_t code;

	if (lead < 0x80)
		return 1;
	if (lead >= 0xc2 && lead <= 0xdf) {
		need = 2;
		code = lead & 0x1f;
	} else if (lead >= 0xe0 && lead <= 0xef) {
		need = 3;
		code = lead & 0x0f;
	} else if (lead >= 0xf0 && lead <= 0xf4) {
		need = 4;
		code = lead & 0x07;
	} else {
		return 0;
	}
	if (len < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((text[i] & 0xc0) != 0x80)
			return 0;
		code = (code << 6) | (text[i] & 0x3f);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF. */
	if ((need == 3 && code < 0x800) || (need == 4 && code < 0x10000) || code > 0x10ffff ||
	    (code >= 0xd800 && code <= 0xdfff))
		return 0;
	return need;
}

void ciss_challenge_clean_subject(const char *text, size_t len,
				  char out[CISS_CHALLENGE_SUBJECT_MAX + 1])
{
	const unsigned char *in = (const unsigned char *)text;
	size_t used = 0;
	bool blank = true; /* drops leading blanks and collapses runs */

	for (size_t i = 0; i < len;) {
		size_t step = challenge_utf8_length(in + i, len - i);
		const char *piece = (const char *)in + i;
		size_t piece_len = step;

		if (step == 0) {
			piece = "?";
			piece_len = 1;
			step = 1;
		} else if (step == 1 && (in[i] < 0x20 || in[i] == 0x7f)) {
			piece = " ";
		}
		i += step;
		if (piece[0] == ' ') {
			if (blank)
				continue;
			blank = true;
		} else {
			blank = false;
		}
		if (used + piece_len > CISS_CHALLENGE_SUBJECT_MAX)
			break;
		memcpy(out + used, piece, piece_len);
		used += piece_len;
	}
	while (used > 0 && out[used - 1] == ' ')
		used--;
	if (used == 0) {
		snprintf(out, CISS_CHALLENGE_SUBJECT_MAX + 1, "(no subject)");
		return;
	}
	out[used] = '\0';
}

static bool challenge_ascii(const char *text)
{
	for (; *text != '\0'; text++) {
		if ((unsigned char)*text >= 0x80)
			return false;
	}
	return true;
}

/* True for the bytes an encoded word of the Q kind carries as they are
 * (RFC 2047 5 (1), kept narrow). */
static bool challenge_q_plain(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '!' || c == '*' || c == '+' || c == '-' || c == '/' || c == '.' || c == ',';
}

/* Appends the Subject field for the cleaned SUBJECT: plain when ASCII, else
 * the prefix and then the subject as encoded words ("Q": no base64 padding
 * that some decoders stumble on when they join words), each of whole
 * characters and at most CHALLENGE_WORD_MAX long, folded. */
static void challenge_subject_field(struct evbuffer *out, const char *subject)
{
	const unsigned char *text = (const unsigned char *)subject;
	size_t len = strlen(subject), at = 0;

	if (challenge_ascii(subject)) {
		evbuffer_add_printf(out, "Subject: %s%s\r\n", challenge_subject_prefix, subject);
		return;
	}
	evbuffer_add_printf(out, "Subject: %s", challenge_subject_prefix);
	while (at < len) {
		char word[CHALLENGE_WORD_MAX + 1];
		size_t used = snprintf(word, sizeof(word), "=?UTF-8?Q?");

		while (at < len) {
			size_t step = challenge_utf8_length(text + at, len - at);
			char piece[4 * 3 + 1];
			size_t piece_len = 0;

			if (step == 0)
				step = 1; /* cleaned text is valid; a guard only */
			for (size_t i = 0; i < step; i++) {
				unsigned char c = text[at + i];

				if (c == ' ')
					piece[piece_len++] = '_';
				else if (challenge_q_plain(c))
					piece[piece_len++] = (char)c;
				else
					piece_len +=
					    (size_t)snprintf(piece + piece_len,
							     sizeof(piece) - piece_len, "=%02X", c);
			}
			/* Room for the closing "?=". */
			if (used + piece_len + 2 > CHALLENGE_WORD_MAX)
				break;
			memcpy(word + used, piece, piece_len);
			used += piece_len;
			at += step;
		}
		memcpy(word + used, "?=", 3);
		evbuffer_add_printf(out, "%s", word);
		if (at < len)
			evbuffer_add_printf(out, "\r\n ");
	}
	evbuffer_add_printf(out, "\r\n");
}

/* Appends LINE (no line end) quoted-printable, with soft breaks, and CR LF. */
static void challenge_qp_line(struct evbuffer *out, const char *line)
{
	size_t column = 0, len = strlen(line);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		bool last = i + 1 == len;
		char piece[4];
		size_t piece_len;

		if (c >= 0x80 || c == '=' || ((c == ' ' || c == '\t') && last) ||
		    (c < 0x20 && c != '\t')) {
			snprintf(piece, sizeof(piece), "=%02X", c);
			piece_len = 3;
		} else {
			piece[0] = (char)c;
			piece_len = 1;
		}
		/* Room for the soft break's "=" within the line. */
		if (column + piece_len > CHALLENGE_QP_LINE - 1) {
			evbuffer_add(out, "=\r\n", 3);
			column = 0;
		}
		evbuffer_add(out, piece, piece_len);
		column += piece_len;
	}
	evbuffer_add(out, "\r\n", 2);
}

static void challenge_format_date(char *out, size_t len, int64_t when)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)when;
	struct tm tm;

	gmtime_r(&t, &tm);
	/* Names spelled here: the RFC 5322 date does not follow the locale. */
	snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
		 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

char *ciss_challenge_compose(const struct ciss_challenge_mail *mail, size_t *len_r)
{
	char subject[CISS_CHALLENGE_SUBJECT_MAX + 1];
	char date[64], expiry[64], random[33];
	struct evbuffer *out;
	bool ascii;
	char *text;

	*len_r = 0;
	if (!address_valid(mail->to) || !address_valid(mail->recipient) ||
	    !address_valid(mail->from))
		return NULL;
	ciss_challenge_clean_subject(mail->subject != NULL ? mail->subject : "",
				     mail->subject != NULL ? strlen(mail->subject) : 0, subject);
	ascii = challenge_ascii(subject);
	challenge_format_date(date, sizeof(date), mail->now);
	challenge_format_date(expiry, sizeof(expiry), mail->expires_at);
	util_random_hex(random, 16);

	out = evbuffer_new();
	if (out == NULL)
		abort();
	evbuffer_add_printf(out, "From: Mail gateway <%s>\r\n", mail->from);
	evbuffer_add_printf(out, "To: <%s>\r\n", mail->to);
	challenge_subject_field(out, subject);
	evbuffer_add_printf(out, "Date: %s\r\n", date);
	evbuffer_add_printf(out, "Message-ID: <challenge-%lld-%s@%s>\r\n",
			    (long long)mail->challenge_id, random, mail->host);
	evbuffer_add_printf(out, "Auto-Submitted: auto-replied\r\n");
	evbuffer_add_printf(out, "X-Auto-Response-Suppress: All\r\n");
	evbuffer_add_printf(out, "X-Popgate-Challenge: %lld\r\n", (long long)mail->challenge_id);
	evbuffer_add_printf(out, "MIME-Version: 1.0\r\n");
	evbuffer_add_printf(out, "Content-Type: text/plain; charset=%s\r\n",
			    ascii ? "us-ascii" : "utf-8");
	evbuffer_add_printf(out, "Content-Transfer-Encoding: %s\r\n\r\n",
			    ascii ? "7bit" : "quoted-printable");

	/* The body's lines; the link stays on a line of its own. */
	char *to_line = xasprintf("you sent a message to %s with the subject", mail->recipient);
	char *subject_line = xasprintf("\"%s\".", subject);
	char *expiry_line = xasprintf("The link is valid until %s.", expiry);
	const char *lines[] = {
	    "Hello,",
	    "",
	    to_line,
	    subject_line,
	    "",
	    "The recipient's mail gateway holds mail from senders it does not know yet",
	    "until a person confirms it was sent. To have your message delivered, open",
	    "this link and type the code shown on the page (one step, no account):",
	    "",
	    mail->link,
	    "",
	    expiry_line,
	    "If you did not send this message, ignore this mail: nothing is delivered.",
	    "",
	    "This message was sent automatically; replies to it are not read.",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (ascii)
			evbuffer_add_printf(out, "%s\r\n", lines[i]);
		else
			challenge_qp_line(out, lines[i]);
	}
	free(to_line);
	free(subject_line);
	free(expiry_line);

	*len_r = evbuffer_get_length(out);
	text = xmalloc(*len_r + 1);
	evbuffer_remove(out, text, *len_r);
	text[*len_r] = '\0';
	evbuffer_free(out);
	return text;
}

char *ciss_challenge_link(const struct popgate_config *cfg, const char *token)
{
	const char *base = cfg->web_base_url;
	size_t len = strlen(base);

	if (len == 0)
		return xasprintf("https://%s:%d/c/%s", cfg->hostname, cfg->web_port, token);
	/* One slash between the base and the path, however the base ends. */
	while (len > 0 && base[len - 1] == '/')
		len--;
	return xasprintf("%.*s/c/%s", (int)len, base, token);
}

char *ciss_challenge_from(const struct popgate_config *cfg)
{
	if (*cfg->web_challenge_from != '\0')
		return xstrdup(cfg->web_challenge_from);
	return xasprintf("postmaster@%s", cfg->pseudo_domain);
}

/* The accept's end: only a log line (the policy already counted the
 * challenge when it made the row). */
static void challenge_queued(int result, const char *id, const char *error, void *ctx)
{
	int64_t *challenge_id = ctx;

	if (result == 0)
		log_event(LOG_INFO, "challenge", NULL, id, "the challenge for %lld queued",
			  (long long)*challenge_id);
	else
		log_error("ciss: the challenge for %lld could not be queued: %s",
			  (long long)*challenge_id, error != NULL ? error : "error");
	free(challenge_id);
}

int ciss_challenge_issue(struct popgate *pg, int64_t challenge_id, char *err, size_t errlen)
{
	struct ciss_challenge challenge;
	struct ciss_token token = {.challenge_id = challenge_id};
	char token_text[CISS_TOKEN_TEXT_LEN + 1];
	struct spool_writer *body;
	char *link = NULL, *from = NULL, *text = NULL;
	size_t len = 0;
	int found, rc = -1;

	memset(&challenge, 0, sizeof(challenge));
	found = store_ciss_challenge_get(pg->store, challenge_id, &challenge);
	if (found <= 0) {
		snprintf(err, errlen, "challenge %lld: %s", (long long)challenge_id,
			 found < 0 ? store_errmsg(pg->store) : "no such challenge");
		return -1;
	}
	/* G4's first rule, once more where the mail is made. */
	if (challenge.sender[0] == '\0') {
		snprintf(err, errlen, "challenge %lld: no challenge to the null sender",
			 (long long)challenge_id);
		goto done;
	}
	if (sodium_hex2bin(token.nonce, sizeof(token.nonce), challenge.nonce,
			   strlen(challenge.nonce), NULL, NULL, NULL) != 0) {
		snprintf(err, errlen, "challenge %lld: its nonce is damaged",
			 (long long)challenge_id);
		goto done;
	}
	token.expires_at = challenge.expires_at;
	ciss_token_encode(&pg->ciss_key, &token, token_text);
	link = ciss_challenge_link(pg->cfg, token_text);
	sodium_memzero(token_text, sizeof(token_text));
	from = ciss_challenge_from(pg->cfg);
	text = ciss_challenge_compose(
	    &(struct ciss_challenge_mail){.from = from,
					  .to = challenge.sender,
					  .recipient = challenge.recipient,
					  .subject = challenge.subject,
					  .link = link,
					  .host = pg->cfg->hostname,
					  .challenge_id = challenge_id,
					  .now = util_now(),
					  .expires_at = challenge.expires_at},
	    &len);
	if (text == NULL) {
		snprintf(err, errlen, "challenge %lld: the sender or recipient is not an address",
			 (long long)challenge_id);
		goto done;
	}
	body = spool_writer_new(pg->store->data_dir);
	if (body == NULL) {
		snprintf(err, errlen, "challenge %lld: cannot write to the spool",
			 (long long)challenge_id);
		goto done;
	}
	spool_writer_write(body, text, len);
	const char *recipients[1] = {challenge.sender};
	int64_t *ctx = xmalloc(sizeof(*ctx));
	*ctx = challenge_id;
	/* The null reverse path: a challenge that cannot be delivered is never
	 * bounced (store_outbound_finish sends no DSN to <>). */
	if (smtp_accept_submit(
		pg, body,
		&(struct smtp_envelope){
		    .sender = "", .recipients = recipients, .recipient_count = 1, .prepend = ""},
		challenge_queued, ctx) == NULL) {
		free(ctx);
		snprintf(err, errlen, "challenge %lld: the store's writer is busy",
			 (long long)challenge_id);
		goto done;
	}
	rc = 0;
done:
	free(text);
	free(from);
	if (link != NULL)
		sodium_memzero(link, strlen(link));
	free(link);
	ciss_challenge_clear(&challenge);
	return rc;
}
