/*
 * dsn.c — builds RFC 3464 delivery status notifications (dsn.h).
 *
 * Owns: nothing but the text it returns. Must never: copy the original's
 * body into a DSN (only its header), or let a remote server's reply break
 * out of its header field (replies are sanitised to one printable line).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "smtp/dsn.h"
#include "store/spool.h"

/* RFC 5322 date of AT, in UTC, into OUT (40 bytes). */
static void dsn_date(int64_t at, char out[40])
{
	time_t when = (time_t)at;
	struct tm tm;

	if (gmtime_r(&when, &tm) == NULL ||
	    strftime(out, 40, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		snprintf(out, 40, "Thu, 01 Jan 1970 00:00:00 +0000");
}

void dsn_status(const char *last_reply, char out[16])
{
	const char *p = last_reply;
	int class;

	/* "550 5.1.1 text" or "550-5.1.1 text": the enhanced code is the
	 * second word when it is class.subject.detail with digits only. */
	if (strlen(p) >= 4 && isdigit((unsigned char)p[0]) && (p[3] == ' ' || p[3] == '-')) {
		const char *code = p + 4;
		size_t len = strspn(code, "0123456789.");
		int dots = 0;

		for (size_t i = 0; i < len; i++)
			dots += code[i] == '.';
		if (len >= 5 && len < 16 && dots == 2 &&
		    (code[0] == '2' || code[0] == '4' || code[0] == '5') && code[1] == '.' &&
		    code[len - 1] != '.' && (code[len] == ' ' || code[len] == '\0')) {
			memcpy(out, code, len);
			out[len] = '\0';
			return;
		}
		class = p[0] - '0';
		if (class == 5) {
			snprintf(out, 16, "5.0.0");
			return;
		}
	}
	snprintf(out, 16, "4.4.7");
}

/* TEXT as one printable ASCII line (a reply or an address from outside). */
static void dsn_clean(char *out, size_t outlen, const char *text)
{
	util_sanitize(out, outlen, text, strlen(text));
}

char *dsn_build(const struct dsn_input *in, size_t *len_r)
{
	char *text = NULL, boundary[40], date[40], arrival[40], random[17];
	char *clean = xmalloc(1024);
	size_t len = 0, hlen;
	FILE *out = open_memstream(&text, &len);

	if (out == NULL)
		abort(); /* out of memory, as xmalloc would */
	util_random_hex(random, 8);
	snprintf(boundary, sizeof(boundary), "popgate-dsn-%s", random);
	dsn_date(in->now, date);
	dsn_date(in->arrival, arrival);
	dsn_clean(clean, 1024, in->sender);
	fprintf(out,
		"From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
		"To: <%s>\r\n"
		"Subject: Undelivered Mail Returned to Sender\r\n"
		"Date: %s\r\n"
		"Message-ID: <dsn-%s-%s@%s>\r\n"
		"Auto-Submitted: auto-replied\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: multipart/report; report-type=delivery-status;\r\n"
		"\tboundary=\"%s\"\r\n"
		"\r\n"
		"This is a MIME-encapsulated message.\r\n"
		"\r\n"
		"--%s\r\n"
		"Content-Type: text/plain; charset=us-ascii\r\n"
		"\r\n"
		"This is the mail system at host %s.\r\n"
		"\r\n"
		"Your message could not be delivered to one or more recipients.\r\n"
		"It was not delivered to:\r\n"
		"\r\n",
		in->reporting_mta, clean, date, in->original_id, random, in->reporting_mta,
		boundary, boundary, in->reporting_mta);
	for (size_t i = 0; i < in->count; i++) {
		char reply[512];

		dsn_clean(clean, 1024, in->recipients[i].address);
		dsn_clean(reply, sizeof(reply), in->recipients[i].last_reply);
		fprintf(out, "<%s>: %s\r\n", clean, *reply != '\0' ? reply : "no reply");
	}
	fprintf(out,
		"\r\n"
		"--%s\r\n"
		"Content-Type: message/delivery-status\r\n"
		"\r\n"
		"Reporting-MTA: dns; %s\r\n"
		"X-Popgate-Queue-ID: %s\r\n"
		"Arrival-Date: %s\r\n",
		boundary, in->reporting_mta, in->original_id, arrival);
	for (size_t i = 0; i < in->count; i++) {
		const struct dsn_recipient *r = &in->recipients[i];
		char reply[512], status[16], last[40];

		dsn_clean(clean, 1024, r->address);
		dsn_clean(reply, sizeof(reply), r->last_reply);
		dsn_status(r->last_reply, status);
		fprintf(out, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n",
			clean, status);
		/* Only a reply the remote server gave is an smtp diagnostic. */
		if (strlen(reply) >= 3 && isdigit((unsigned char)reply[0]) &&
		    isdigit((unsigned char)reply[1]) && isdigit((unsigned char)reply[2]))
			fprintf(out, "Diagnostic-Code: smtp; %s\r\n", reply);
		if (r->last_attempt_at > 0) {
			dsn_date(r->last_attempt_at, last);
			fprintf(out, "Last-Attempt-Date: %s\r\n", last);
		}
	}
	fprintf(out, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n%s", boundary,
		in->headers);
	hlen = strlen(in->headers);
	if (hlen > 0 && (hlen < 2 || strcmp(in->headers + hlen - 2, "\r\n") != 0))
		fputs("\r\n", out);
	fprintf(out, "\r\n--%s--\r\n", boundary);
	if (fclose(out) != 0)
		abort();
	free(clean);
	*len_r = len;
	return text;
}

/* Appends the header lines of FILE (CRLF) to OUT until the empty line, EOF
 * or DSN_HEADERS_MAX bytes in all. */
static void dsn_copy_headers(FILE *file, FILE *out, size_t *total)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, file)) > 0) {
		if ((n == 2 && line[0] == '\r' && line[1] == '\n') || (n == 1 && line[0] == '\n'))
			break;
		if (*total + (size_t)n > DSN_HEADERS_MAX)
			break;
		fwrite(line, 1, (size_t)n, out);
		*total += (size_t)n;
	}
	free(line);
}

int dsn_read_headers(const char *data_dir, const char *id, const char *prepend, char **headers_r)
{
	char *path, *text = NULL;
	size_t len = 0, total = 0;
	FILE *body, *out;

	*headers_r = NULL;
	if (!spool_id_valid(id))
		return -1;
	path = spool_path(data_dir, id);
	body = fopen(path, "re");
	free(path);
	if (body == NULL)
		return -1;
	out = open_memstream(&text, &len);
	if (out == NULL)
		abort();
	if (prepend != NULL && strlen(prepend) <= DSN_HEADERS_MAX) {
		fputs(prepend, out);
		total = strlen(prepend);
	}
	dsn_copy_headers(body, out, &total);
	fclose(body);
	if (fclose(out) != 0)
		abort();
	*headers_r = text;
	return 0;
}
