/*
 * clamd.c — clamd's INSTREAM protocol: chunk framing, the reply parser,
 * clamd's address, and a blocking scan for popgatectl (see clamd.h).
 *
 * Owns: nothing beyond one call. Must never: read more than CLAMD_REPLY_MAX
 * bytes of a reply, keep a byte of it that is not printable ASCII, or block
 * past its deadline.
 * SECURITY: clamd's reply is untrusted input (clamd.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/util.h>

#include "core/util.h"
#include "filters/clamd.h"

#define CLAMD_OK_REPLY "stream: OK"
#define CLAMD_STREAM_PREFIX "stream: "
#define CLAMD_FOUND_SUFFIX " FOUND"
#define CLAMD_TOO_LARGE_TEXT "size limit exceeded"

void clamd_chunk_header(uint32_t len, unsigned char out[4])
{
	out[0] = (unsigned char)(len >> 24);
	out[1] = (unsigned char)(len >> 16);
	out[2] = (unsigned char)(len >> 8);
	out[3] = (unsigned char)len;
}

/* Copies TEXT[0..LEN) into REPLY->text, cut to CLAMD_TEXT_MAX. */
static void clamd_reply_keep(struct clamd_reply *reply, const char *text, size_t len)
{
	if (len > CLAMD_TEXT_MAX)
		len = CLAMD_TEXT_MAX;
	memcpy(reply->text, text, len);
	reply->text[len] = '\0';
}

static enum clamd_verdict clamd_reply_error(struct clamd_reply *reply, const char *why)
{
	reply->verdict = CLAMD_ERROR;
	clamd_reply_keep(reply, why, strlen(why));
	return CLAMD_ERROR;
}

enum clamd_verdict clamd_reply_parse(const char *data, size_t len, bool ended,
				     struct clamd_reply *reply)
{
	size_t window = len < CLAMD_REPLY_MAX ? len : CLAMD_REPLY_MAX;
	const char *nul = window > 0 ? memchr(data, '\0', window) : NULL;
	size_t text_len;

	memset(reply, 0, sizeof(*reply));
	if (nul != NULL)
		text_len = (size_t)(nul - data);
	else if (len > CLAMD_REPLY_MAX)
		return clamd_reply_error(reply, "reply too long");
	else if (ended)
		text_len = len;
	else
		return CLAMD_INCOMPLETE;
	/* A newline-terminated reply (a clamd that ignored the "z") is the
	 * same reply. */
	while (text_len > 0 && (data[text_len - 1] == '\n' || data[text_len - 1] == '\r'))
		text_len--;
	if (text_len == 0)
		return clamd_reply_error(reply, "closed without a reply");
	for (size_t i = 0; i < text_len; i++) {
		unsigned char c = (unsigned char)data[i];

		if (c < 0x20 || c > 0x7e)
			return clamd_reply_error(reply, "garbled reply");
	}
	if (text_len == strlen(CLAMD_OK_REPLY) && memcmp(data, CLAMD_OK_REPLY, text_len) == 0) {
		reply->verdict = CLAMD_CLEAN;
		return CLAMD_CLEAN;
	}
	size_t prefix = strlen(CLAMD_STREAM_PREFIX), suffix = strlen(CLAMD_FOUND_SUFFIX);
	if (text_len > prefix + suffix && memcmp(data, CLAMD_STREAM_PREFIX, prefix) == 0 &&
	    memcmp(data + text_len - suffix, CLAMD_FOUND_SUFFIX, suffix) == 0) {
		const char *name = data + prefix;
		size_t name_len = text_len - prefix - suffix;

		/* A name is one word; "stream:  FOUND" and the like are not. */
		if (memchr(name, ' ', name_len) == NULL) {
			reply->verdict = CLAMD_VIRUS;
			clamd_reply_keep(reply, name, name_len);
			return CLAMD_VIRUS;
		}
	}
	reply->verdict =
	    memmem(data, text_len, CLAMD_TOO_LARGE_TEXT, strlen(CLAMD_TOO_LARGE_TEXT)) != NULL
		? CLAMD_TOO_LARGE
		: CLAMD_ERROR;
	clamd_reply_keep(reply, data, text_len);
	return reply->verdict;
}

int clamd_address_parse(const char *text, struct clamd_address *address, char *err, size_t errlen)
{
	memset(address, 0, sizeof(*address));
	if (text[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)&address->addr;

		if (strlen(text) >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "clamd_socket: the path is longer than %zu bytes",
				 sizeof(un->sun_path) - 1);
			return -1;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, text, strlen(text) + 1);
		address->len = sizeof(*un);
		return 0;
	}
	int len = (int)sizeof(address->addr);
	if (evutil_parse_sockaddr_port(text, (struct sockaddr *)&address->addr, &len) < 0 ||
	    (address->addr.ss_family == AF_INET &&
	     ((struct sockaddr_in *)&address->addr)->sin_port == 0) ||
	    (address->addr.ss_family == AF_INET6 &&
	     ((struct sockaddr_in6 *)&address->addr)->sin6_port == 0)) {
		snprintf(err, errlen,
			 "clamd_socket: '%s' is neither an absolute socket path nor ADDRESS:PORT",
			 text);
		return -1;
	}
	address->len = (socklen_t)len;
	return 0;
}

/* Milliseconds left until DEADLINE_MS (0 when past it). */
static int clamd_left_ms(int64_t deadline_ms)
{
	int64_t left = deadline_ms - util_monotonic_ms();

	return left > 0 ? (int)left : 0;
}

/* Waits until FD is ready for EVENTS or the deadline passes. 0 or -1 (ERR). */
static int clamd_wait(int fd, short events, int64_t deadline_ms, char *err, size_t errlen)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int n;

	do
		n = poll(&pfd, 1, clamd_left_ms(deadline_ms));
	while (n < 0 && errno == EINTR);
	if (n == 0) {
		snprintf(err, errlen, "no answer from clamd in time");
		return -1;
	}
	if (n < 0) {
		snprintf(err, errlen, "waiting for clamd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Sends DATA[0..LEN) before the deadline. 0 or -1 (ERR). */
static int clamd_send_all(int fd, const unsigned char *data, size_t len, int64_t deadline_ms,
			  char *err, size_t errlen)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			if (clamd_wait(fd, POLLOUT, deadline_ms, err, errlen) < 0)
				return -1;
			continue;
		}
		if (n < 0) {
			snprintf(err, errlen, "sending to clamd: %s", strerror(errno));
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Streams BODY_FD to clamd on FD (command, chunks, end). 0 or -1 (ERR).
 * clamd may answer and close early (over its size limit): the caller reads
 * its reply even when this fails. */
static int clamd_stream(int fd, int body_fd, int64_t deadline_ms, char *err, size_t errlen)
{
	unsigned char *chunk = xmalloc(4 + CLAMD_CHUNK_MAX);
	ssize_t n;
	int rc = -1;

	if (clamd_send_all(fd, (const unsigned char *)CLAMD_COMMAND, CLAMD_COMMAND_LEN, deadline_ms,
			   err, errlen) < 0)
		goto done;
	do {
		n = read(body_fd, chunk + 4, CLAMD_CHUNK_MAX);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "reading the message: %s", strerror(errno));
			goto done;
		}
		clamd_chunk_header((uint32_t)n, chunk);
		if (clamd_send_all(fd, chunk, 4 + (size_t)n, deadline_ms, err, errlen) < 0)
			goto done;
	} while (n != 0);
	rc = 0;
done:
	free(chunk);
	return rc;
}

/* Reads clamd's reply on FD into *REPLY. 0 or -1 (ERR). */
static int clamd_read_reply(int fd, int64_t deadline_ms, struct clamd_reply *reply, char *err,
			    size_t errlen)
{
	char buf[CLAMD_REPLY_MAX + 1];
	size_t len = 0;

	for (;;) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			if (clamd_wait(fd, POLLIN, deadline_ms, err, errlen) < 0)
				return -1;
			continue;
		}
		if (n < 0 && len == 0) {
			snprintf(err, errlen, "reading from clamd: %s", strerror(errno));
			return -1;
		}
		if (n > 0)
			len += (size_t)n;
		if (clamd_reply_parse(buf, len, n <= 0, reply) != CLAMD_INCOMPLETE)
			return 0;
	}
}

int clamd_scan_fd(const struct clamd_address *address, int body_fd, int timeout_seconds,
		  struct clamd_reply *reply, char *err, size_t errlen)
{
	int64_t deadline_ms = util_monotonic_ms() + (int64_t)timeout_seconds * 1000;
	char stream_err[256] = "";
	int fd, rc = -1;

	memset(reply, 0, sizeof(*reply));
	fd = socket(address->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "cannot make a socket for clamd: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)&address->addr, address->len) < 0) {
		int connect_error = errno;
		socklen_t optlen = sizeof(connect_error);

		if (connect_error != EINPROGRESS ||
		    clamd_wait(fd, POLLOUT, deadline_ms, err, errlen) < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &connect_error, &optlen) < 0 ||
		    connect_error != 0) {
			if (connect_error != 0 && connect_error != EINPROGRESS)
				snprintf(err, errlen, "cannot connect to clamd: %s",
					 strerror(connect_error));
			goto done;
		}
	}
	if (clamd_stream(fd, body_fd, deadline_ms, stream_err, sizeof(stream_err)) < 0) {
		/* Perhaps clamd answered (its size limit) and closed: its reply
		 * says more than our failed send. */
		if (clamd_read_reply(fd, util_monotonic_ms(), reply, err, errlen) == 0)
			rc = 0;
		else
			snprintf(err, errlen, "%s", stream_err);
		goto done;
	}
	rc = clamd_read_reply(fd, deadline_ms, reply, err, errlen);
done:
	close(fd);
	return rc;
}
