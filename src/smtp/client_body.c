/*
 * client_body.c — the SMTP client's body streaming (client.h): after DATA's
 * 354, the prepended header lines, then the spool file, dot-stuffed and
 * its line ends made CRLF (the dot encoder, RFC 5321 4.5.2), ended with
 * CRLF "." CRLF. The file is read in chunks while the output is under a
 * high-water mark, and again once it drained below the low-water mark (the
 * write callback); a chunk not in the page cache is read by an offload
 * thread (core/offload.h).
 *
 * Owns: the chunk buffer of the message being sent and the reads in
 * flight; a read whose client went away closes the descriptor itself.
 * Must never: hold the whole body in memory; read the body file in the
 * loop when the read would wait on the disk; send more or fewer than the
 * body's size in file bytes (a short file fails the connection before the
 * final dot); log body bytes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "core/offload.h"
#include "core/util.h"
#include "smtp/client.h"
#include "smtp/client_internal.h"

/* Bytes of the body read at once. */
#define CLIENT_BODY_CHUNK (64 * 1024)
/* The body is read while the output holds less than this... */
#define CLIENT_OUTPUT_HIGH_WATER (256 * 1024)
/* ...and reading resumes once the output drained below this. */
#define CLIENT_OUTPUT_LOW_WATER (64 * 1024)

/* Adds body bytes (or, with DATA NULL, the end) to the output, encoded. */
static void client_body_add(struct smtp_client *client, const char *data, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(client->bev);
	struct evbuffer_iovec vec;
	size_t room = data != NULL ? 2 * len + 1 : 5;

	if (evbuffer_reserve_space(out, (ev_ssize_t)room, &vec, 1) < 1) {
		client_fail(client, NULL, "cannot queue the body");
		return;
	}
	if (data != NULL)
		vec.iov_len = smtp_dot_encode(&client->send->encoder, data, len, vec.iov_base);
	else
		vec.iov_len = smtp_dot_encoder_finish(&client->send->encoder, vec.iov_base);
	evbuffer_commit_space(out, &vec, 1);
}

/* The body's bytes are all queued: the final dot, then its reply. */
static void client_body_end(struct smtp_client *client)
{
	client_body_add(client, NULL, 0);
	if (client_gone(client))
		return;
	bufferevent_setwatermark(client->bev, EV_WRITE, 0, 0);
	client_set_timeouts(client, true, true);
	client_enter_state(client, CLIENT_DOT);
}

/* N bytes read from the body file at the send's offset (N < 0: the read
 * failed with ERROR; 0: the file ended). */
static void client_body_data(struct smtp_client *client, const char *data, ssize_t n, int error)
{
	struct client_send *send = client->send;

	if (n < 0) {
		/* Mid-body there is no way to say so: the connection ends before
		 * the final dot, and the server drops the message. */
		client_fail(client, NULL, "cannot read the message body: %s", strerror(error));
		return;
	}
	if (n == 0) {
		client_fail(client, NULL, "the message body ends %llu bytes before its size",
			    (unsigned long long)(send->size - send->offset));
		return;
	}
	send->offset += (uint64_t)n;
	client_body_add(client, data, (size_t)n);
}

/* In an offload thread. */
static void client_read_work(void *arg)
{
	struct client_read *read_job = arg;

	do
		read_job->n =
		    pread(read_job->fd, read_job->chunk, read_job->want, (off_t)read_job->offset);
	while (read_job->n < 0 && errno == EINTR);
	read_job->error = read_job->n < 0 ? errno : 0;
}

/* In the loop: the bytes go out, and the filling goes on. */
static void client_read_done(void *arg)
{
	struct client_read *read_job = arg;
	struct smtp_client *client = read_job->client;

	if (client == NULL) {
		close(read_job->fd);
	} else {
		client->busy++;
		client->send->reading = NULL;
		client_body_data(client, read_job->chunk, read_job->n, read_job->error);
		if (!client_gone(client))
			client_body_fill(client);
		client_release(client);
	}
	free(read_job->chunk);
	free(read_job);
}

/*
 * Fills the output from the body file up to the high-water mark. A read
 * that would wait on the disk (RWF_NOWAIT says EAGAIN) goes to an offload
 * thread and the filling goes on when it is done: the loop never waits on
 * the disk, and a body in the page cache is read here without a thread's
 * round trip (as pop3/server.c serves RETR).
 */
void client_body_fill(struct smtp_client *client)
{
	while (client->state == CLIENT_BODY && !client->free_requested &&
	       client->send->reading == NULL &&
	       evbuffer_get_length(bufferevent_get_output(client->bev)) <
		   CLIENT_OUTPUT_HIGH_WATER) {
		struct client_send *send = client->send;
		if (send->offset >= send->size) {
			client_body_end(client);
			return;
		}
		uint64_t left = send->size - send->offset;
		size_t want = left < CLIENT_BODY_CHUNK ? (size_t)left : CLIENT_BODY_CHUNK;
		struct iovec vec = {.iov_base = send->chunk, .iov_len = want};
		ssize_t n = preadv2(send->fd, &vec, 1, (off_t)send->offset, RWF_NOWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
			n = pread(send->fd, send->chunk, want,
				  (off_t)send->offset); /* no RWF_NOWAIT */
		if (n < 0 && errno == EAGAIN) {
			struct client_read *read_job = xcalloc(1, sizeof(*read_job));
			read_job->client = client;
			read_job->fd = send->fd;
			read_job->offset = send->offset;
			read_job->want = want;
			read_job->chunk = xmalloc(CLIENT_BODY_CHUNK);
			send->reading = read_job;
			offload_run(client->offload, client_read_work, client_read_done, read_job);
			return;
		}
		client_body_data(client, send->chunk, n, n < 0 ? errno : 0);
	}
}

/* 354: the prepended lines, then the file. */
void client_body_start(struct smtp_client *client)
{
	struct client_send *send = client->send;

	client_enter_state(client, CLIENT_BODY);
	smtp_dot_encoder_init(&send->encoder);
	send->chunk = xmalloc(CLIENT_BODY_CHUNK);
	/* While the body is written the server says nothing: only the write
	 * side is timed. The write callback refills below the low-water mark. */
	client_set_timeouts(client, false, true);
	bufferevent_setwatermark(client->bev, EV_WRITE, CLIENT_OUTPUT_LOW_WATER, 0);
	if (send->prepend != NULL)
		client_body_add(client, send->prepend, strlen(send->prepend));
	if (!client_gone(client))
		client_body_fill(client);
}

/* ---- the body's encoding ---------------------------------------------------- */

void smtp_dot_encoder_init(struct smtp_dot_encoder *encoder)
{
	encoder->line_start = true;
	encoder->after_cr = false;
}

/* The length of the run at S that holds neither CR nor LF. */
static size_t client_plain_run(const char *s, size_t len)
{
	const char *cr = memchr(s, '\r', len);
	const char *lf = memchr(s, '\n', cr != NULL ? (size_t)(cr - s) : len);

	if (lf != NULL)
		return (size_t)(lf - s);
	return cr != NULL ? (size_t)(cr - s) : len;
}

size_t smtp_dot_encode(struct smtp_dot_encoder *encoder, const char *in, size_t len, char *out)
{
	size_t used = 0;
	size_t i = 0;

	while (i < len) {
		char c = in[i];

		/* Inside a line, up to its end, nothing is added: copied as a run
		 * (vectorised scans) rather than byte by byte. */
		if (!encoder->after_cr && !encoder->line_start && c != '\r' && c != '\n') {
			size_t run = client_plain_run(in + i, len - i);

			memcpy(out + used, in + i, run);
			used += run;
			i += run;
			continue;
		}
		i++;
		if (encoder->after_cr && c != '\n') {
			out[used++] = '\n'; /* a lone CR ends a line too */
			encoder->line_start = true;
		}
		if (c == '\n' && !encoder->after_cr)
			out[used++] = '\r'; /* a bare LF */
		if (c == '.' && encoder->line_start)
			out[used++] = '.'; /* RFC 5321 4.5.2 */
		out[used++] = c;
		encoder->after_cr = c == '\r';
		encoder->line_start = c == '\n';
	}
	return used;
}

size_t smtp_dot_encoder_finish(struct smtp_dot_encoder *encoder, char *out)
{
	size_t used = 0;

	if (encoder->after_cr) {
		out[used++] = '\n';
	} else if (!encoder->line_start) {
		out[used++] = '\r';
		out[used++] = '\n';
	}
	memcpy(out + used, ".\r\n", 3);
	encoder->after_cr = false;
	encoder->line_start = true;
	return used + 3;
}
