/*
 * mta_sts.c — RFC 8461's texts read strictly: the _mta-sts TXT record
 * (3.1), the policy body (3.2), and the MX pattern match (4.1).
 *
 * Owns: nothing beyond the policies it parses.
 * Must never: read past the length given, or take a text with a NUL, a
 * control byte or a field it cannot read as a policy.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "smtp/mta_sts.h"

/* The longest host name (RFC 1035) a pattern or an MX may be. */
#define MTA_STS_NAME_MAX 253

const char *mta_sts_mode_name(enum mta_sts_mode mode)
{
	switch (mode) {
	case MTA_STS_ENFORCE:
		return "enforce";
	case MTA_STS_TESTING:
		return "testing";
	case MTA_STS_NONE:
		break;
	}
	return "none";
}

static bool mta_sts_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* An extension's name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."). */
static bool mta_sts_ext_name(const char *s, size_t len)
{
	if (len == 0 || len > 32 || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

int mta_sts_record_parse(const char *text, size_t len, char *id)
{
	static const char version[] = "v=STSv1";
	const size_t vlen = sizeof(version) - 1;
	size_t pos = vlen;
	bool have_id = false;

	if (len < vlen || memcmp(text, version, vlen) != 0)
		return 0;
	/* "v=STSv1x" is some other record. */
	if (len > vlen && text[vlen] != ';' && !mta_sts_wsp(text[vlen]))
		return 0;
	for (;;) {
		size_t start, eq, end;

		while (pos < len && mta_sts_wsp(text[pos]))
			pos++;
		if (pos == len)
			break;
		if (text[pos] != ';')
			return -1;
		pos++;
		while (pos < len && mta_sts_wsp(text[pos]))
			pos++;
		if (pos == len)
			break; /* the trailing ";" the grammar allows */
		start = pos;
		while (pos < len && text[pos] != '=' && text[pos] != ';' && !mta_sts_wsp(text[pos]))
			pos++;
		if (pos == len || text[pos] != '=')
			return -1;
		eq = pos++;
		while (pos < len && text[pos] >= 0x21 && text[pos] <= 0x7e && text[pos] != ';' &&
		       text[pos] != '=')
			pos++;
		end = pos;
		if (end == eq + 1)
			return -1;
		if (eq - start == 2 && memcmp(text + start, "id", 2) == 0) {
			if (have_id || end - eq - 1 > MTA_STS_ID_MAX)
				return -1;
			for (size_t i = eq + 1; i < end; i++)
				if (!isalnum((unsigned char)text[i]))
					return -1;
			memcpy(id, text + eq + 1, end - eq - 1);
			id[end - eq - 1] = '\0';
			have_id = true;
		} else if (!mta_sts_ext_name(text + start, eq - start)) {
			return -1;
		}
	}
	return have_id ? 1 : -1;
}

/* Whether S[0..LEN) is a host name: letters, digits and '-' labels (not
 * at a label's ends), at least two, within the limits. */
static bool mta_sts_domain_valid(const char *s, size_t len)
{
	size_t label = 0, labels = 1;

	if (len == 0 || len > MTA_STS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			labels++;
			continue;
		}
		if (!isalnum((unsigned char)s[i]) && !(s[i] == '-' && label > 0))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[len - 1] != '-' && labels >= 2;
}

static int mta_sts_fail(char *err, size_t errlen, size_t line, const char *why)
{
	snprintf(err, errlen, "policy line %zu: %s", line, why);
	return -1;
}

/* One "key: value" line of LEN bytes (no line end), number LINE. */
static int mta_sts_policy_field(const char *s, size_t len, size_t line,
				struct mta_sts_policy *policy, unsigned *seen, char *err,
				size_t errlen)
{
	const char *colon = memchr(s, ':', len);
	size_t name_len, value_len;
	const char *value;

	if (colon == NULL)
		return mta_sts_fail(err, errlen, line, "no \"key: value\"");
	name_len = (size_t)(colon - s);
	value = colon + 1;
	value_len = len - name_len - 1;
	while (value_len > 0 && mta_sts_wsp(value[0])) {
		value++;
		value_len--;
	}
	while (value_len > 0 && mta_sts_wsp(value[value_len - 1]))
		value_len--;
	if (!mta_sts_ext_name(s, name_len))
		return mta_sts_fail(err, errlen, line, "a malformed key");
	for (size_t i = 0; i < value_len; i++)
		if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e)
			return mta_sts_fail(err, errlen, line, "a control or non-ASCII byte");
#define MTA_STS_IS(key) (name_len == sizeof(key) - 1 && memcmp(s, key, name_len) == 0)
	if (MTA_STS_IS("version")) {
		if (*seen & 1)
			return mta_sts_fail(err, errlen, line, "version given twice");
		*seen |= 1;
		if (value_len != 5 || memcmp(value, "STSv1", 5) != 0)
			return mta_sts_fail(err, errlen, line, "version is not STSv1");
	} else if (MTA_STS_IS("mode")) {
		if (*seen & 2)
			return mta_sts_fail(err, errlen, line, "mode given twice");
		*seen |= 2;
		if (value_len == 7 && memcmp(value, "enforce", 7) == 0)
			policy->mode = MTA_STS_ENFORCE;
		else if (value_len == 7 && memcmp(value, "testing", 7) == 0)
			policy->mode = MTA_STS_TESTING;
		else if (value_len == 4 && memcmp(value, "none", 4) == 0)
			policy->mode = MTA_STS_NONE;
		else
			return mta_sts_fail(err, errlen, line,
					    "mode is not enforce, testing or none");
	} else if (MTA_STS_IS("max_age")) {
		int64_t age = 0;

		if (*seen & 4)
			return mta_sts_fail(err, errlen, line, "max_age given twice");
		*seen |= 4;
		if (value_len == 0 || value_len > 10)
			return mta_sts_fail(err, errlen, line, "max_age is not 1 to 10 digits");
		for (size_t i = 0; i < value_len; i++) {
			if (!isdigit((unsigned char)value[i]))
				return mta_sts_fail(err, errlen, line, "max_age is not a number");
			age = age * 10 + (value[i] - '0');
		}
		if (age > MTA_STS_MAX_AGE_MAX)
			return mta_sts_fail(err, errlen, line, "max_age is over 31557600");
		policy->max_age = age;
	} else if (MTA_STS_IS("mx")) {
		const char *name = value;
		size_t name_len2 = value_len;
		char *pattern;

		if (name_len2 >= 2 && name[0] == '*' && name[1] == '.') {
			name += 2;
			name_len2 -= 2;
		}
		if (name_len2 > 0 && name[name_len2 - 1] == '.')
			name_len2--;
		if (!mta_sts_domain_valid(name, name_len2))
			return mta_sts_fail(err, errlen, line,
					    "mx is not a host name or \"*.\" one");
		if (policy->mx_count == MTA_STS_MX_MAX)
			return mta_sts_fail(err, errlen, line, "too many mx lines");
		pattern = xmalloc((size_t)(name - value) + name_len2 + 1);
		memcpy(pattern, value, (size_t)(name - value) + name_len2);
		pattern[(size_t)(name - value) + name_len2] = '\0';
		for (char *c = pattern; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		policy->mx = xrealloc(policy->mx, (policy->mx_count + 1) * sizeof(*policy->mx));
		policy->mx[policy->mx_count++] = pattern;
	}
#undef MTA_STS_IS
	/* Another key is an extension (3.2): ignored. */
	return 0;
}

int mta_sts_policy_parse(const char *text, size_t len, struct mta_sts_policy *policy, char *err,
			 size_t errlen)
{
	unsigned seen = 0;
	size_t pos = 0, line = 0;

	memset(policy, 0, sizeof(*policy));
	if (len > MTA_STS_POLICY_MAX) {
		snprintf(err, errlen, "the policy is over %d bytes", MTA_STS_POLICY_MAX);
		return -1;
	}
	while (pos < len) {
		const char *start = text + pos;
		const char *lf = memchr(start, '\n', len - pos);
		size_t line_len = lf != NULL ? (size_t)(lf - start) : len - pos;

		pos += line_len + (lf != NULL);
		line++;
		if (line_len > 0 && start[line_len - 1] == '\r')
			line_len--;
		if (memchr(start, '\r', line_len) != NULL) {
			mta_sts_fail(err, errlen, line, "a bare CR");
			goto fail;
		}
		/* Blank lines carry nothing (a trailing one is common). */
		if (line_len == 0)
			continue;
		if (mta_sts_policy_field(start, line_len, line, policy, &seen, err, errlen) < 0)
			goto fail;
	}
	if ((seen & 7) != 7) {
		snprintf(err, errlen, "the policy lacks %s",
			 !(seen & 1)   ? "version"
			 : !(seen & 2) ? "mode"
				       : "max_age");
		goto fail;
	}
	if (policy->mode != MTA_STS_NONE && policy->mx_count == 0) {
		snprintf(err, errlen, "a policy in mode %s names no mx",
			 mta_sts_mode_name(policy->mode));
		goto fail;
	}
	return 0;
fail:
	mta_sts_policy_clear(policy);
	return -1;
}

void mta_sts_policy_clear(struct mta_sts_policy *policy)
{
	if (policy == NULL)
		return;
	for (size_t i = 0; i < policy->mx_count; i++)
		free(policy->mx[i]);
	free(policy->mx);
	memset(policy, 0, sizeof(*policy));
}

bool mta_sts_mx_match(const char *pattern, const char *host)
{
	size_t plen = strlen(pattern), hlen = strlen(host);

	if (plen > 0 && pattern[plen - 1] == '.')
		plen--;
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	if (plen == 0 || hlen == 0)
		return false;
	if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		/* "*.example.com": one label, then ".example.com". */
		const char *dot = memchr(host, '.', hlen);
		size_t rest;

		if (dot == NULL || dot == host)
			return false;
		rest = hlen - (size_t)(dot - host);
		return rest == plen - 1 && strncasecmp(dot, pattern + 1, rest) == 0;
	}
	return plen == hlen && strncasecmp(pattern, host, hlen) == 0;
}

bool mta_sts_policy_allows(const struct mta_sts_policy *policy, const char *host)
{
	for (size_t i = 0; i < policy->mx_count; i++)
		if (mta_sts_mx_match(policy->mx[i], host))
			return true;
	return false;
}

/* Whether header line S (LEN bytes) is NAME (without case) with a colon. */
static const char *mta_sts_header_value(const char *s, size_t len, const char *name,
					size_t *value_len)
{
	size_t nlen = strlen(name);

	if (len <= nlen || s[nlen] != ':' || strncasecmp(s, name, nlen) != 0)
		return NULL;
	s += nlen + 1;
	len -= nlen + 1;
	while (len > 0 && mta_sts_wsp(*s)) {
		s++;
		len--;
	}
	while (len > 0 && mta_sts_wsp(s[len - 1]))
		len--;
	*value_len = len;
	return s;
}

int mta_sts_http_response(const char *buf, size_t len, bool closed, size_t *body_offset,
			  size_t *body_length, char *err, size_t errlen)
{
	const char *end = NULL;
	size_t head_len, pos, content_length = 0;
	bool have_length = false, have_type = false;
	int status;

	for (size_t i = 0; i + 3 < len && i < MTA_STS_HEADER_MAX; i++) {
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
			end = buf + i;
			break;
		}
	}
	if (end == NULL) {
		if (len >= MTA_STS_HEADER_MAX) {
			snprintf(err, errlen, "the response's headers are over %d bytes",
				 MTA_STS_HEADER_MAX);
			return -1;
		}
		if (closed) {
			snprintf(err, errlen, "the response ended within its headers");
			return -1;
		}
		return 0;
	}
	head_len = (size_t)(end - buf) + 2; /* the lines, each with its CRLF */
	/* "HTTP/1.x NNN reason" */
	if (head_len < 14 || memcmp(buf, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)buf[7]) ||
	    buf[8] != ' ' || !isdigit((unsigned char)buf[9]) || !isdigit((unsigned char)buf[10]) ||
	    !isdigit((unsigned char)buf[11]) || (buf[12] != ' ' && buf[12] != '\r')) {
		snprintf(err, errlen, "a malformed HTTP status line");
		return -1;
	}
	status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	if (status >= 300 && status < 400) {
		snprintf(err, errlen, "HTTP status %d: a redirect, not followed (RFC 8461 3.3)",
			 status);
		return -1;
	}
	if (status != 200) {
		snprintf(err, errlen, "HTTP status %d", status);
		return -1;
	}
	pos = (size_t)((const char *)memchr(buf, '\n', head_len) - buf) + 1;
	if (buf[pos - 2] != '\r') {
		snprintf(err, errlen, "a malformed HTTP status line");
		return -1;
	}
	while (pos < head_len) {
		const char *line = buf + pos;
		const char *lf = memchr(line, '\n', head_len - pos);
		size_t line_len = (size_t)(lf - line), vlen;
		const char *value;

		pos += line_len + 1;
		if (line_len == 0 || line[line_len - 1] != '\r') {
			snprintf(err, errlen, "a header line without CRLF");
			return -1;
		}
		line_len--;
		for (size_t i = 0; i < line_len; i++) {
			if ((unsigned char)line[i] < 0x20 && line[i] != '\t') {
				snprintf(err, errlen, "a control byte in a header");
				return -1;
			}
		}
		if ((value = mta_sts_header_value(line, line_len, "Content-Type", &vlen)) != NULL) {
			const char *semicolon = memchr(value, ';', vlen);
			size_t type_len = semicolon != NULL ? (size_t)(semicolon - value) : vlen;

			while (type_len > 0 && mta_sts_wsp(value[type_len - 1]))
				type_len--;
			if (have_type || type_len != 10 ||
			    strncasecmp(value, "text/plain", 10) != 0) {
				snprintf(err, errlen, "the policy is not served as text/plain");
				return -1;
			}
			have_type = true;
		} else if ((value = mta_sts_header_value(line, line_len, "Content-Length",
							 &vlen)) != NULL) {
			size_t n = 0;

			if (vlen == 0 || vlen > 9) {
				snprintf(err, errlen, "a malformed Content-Length");
				return -1;
			}
			for (size_t i = 0; i < vlen; i++) {
				if (!isdigit((unsigned char)value[i])) {
					snprintf(err, errlen, "a malformed Content-Length");
					return -1;
				}
				n = n * 10 + (size_t)(value[i] - '0');
			}
			if (have_length && n != content_length) {
				snprintf(err, errlen, "two Content-Length headers");
				return -1;
			}
			have_length = true;
			content_length = n;
		} else if (mta_sts_header_value(line, line_len, "Transfer-Encoding", &vlen) !=
			   NULL) {
			snprintf(err, errlen, "a Transfer-Encoding in answer to HTTP/1.0");
			return -1;
		}
	}
	if (!have_type) {
		snprintf(err, errlen, "the policy is not served as text/plain");
		return -1;
	}
	*body_offset = head_len + 2;
	if ((have_length && content_length > MTA_STS_POLICY_MAX) ||
	    len - *body_offset > MTA_STS_POLICY_MAX) {
		snprintf(err, errlen, "the policy is over %d bytes", MTA_STS_POLICY_MAX);
		return -1;
	}
	if (have_length) {
		if (len - *body_offset >= content_length) {
			*body_length = content_length;
			return 1;
		}
		if (closed) {
			snprintf(err, errlen, "the response ended before its Content-Length");
			return -1;
		}
		return 0;
	}
	if (!closed)
		return 0;
	*body_length = len - *body_offset;
	return 1;
}
