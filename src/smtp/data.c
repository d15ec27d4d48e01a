/*
 * data.c — DATA's body into a spool file (see data.h).
 *
 * SECURITY: the lines are a client's; they are copied, never interpreted,
 * except for the leading dot. A body over the limit is not stored past it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "smtp/data.h"
#include "store/spool.h"

int smtp_data_begin(struct smtp_data *data, const char *data_dir, uint64_t limit)
{
	memset(data, 0, sizeof(*data));
	data->body = spool_writer_new(data_dir);
	if (data->body == NULL)
		return -1;
	data->limit = limit;
	return 0;
}

/* Appends LEN bytes at S and a CR LF, within the limit. A CR inside the
 * line (not before its end) is made a line end as POP3-fetched bodies are
 * (spool.h): stored bodies have only CR LF line ends. */
static void data_store_line(struct smtp_data *data, const char *s, size_t len)
{
	struct spool_crlf crlf = {0};
	size_t out;

	if (data->too_big || data->line_too_long)
		return;
	if (data->buffer_size < 2 * len + 3) {
		data->buffer_size = 2 * len + 3;
		data->buffer = xrealloc(data->buffer, data->buffer_size);
	}
	out = spool_crlf_normalise(&crlf, s, len, data->buffer);
	out += spool_crlf_finish(&crlf, data->buffer + out);
	data->buffer[out++] = '\r';
	data->buffer[out++] = '\n';
	if (data->size + out > data->limit) {
		/* The rest is read and dropped; the file is removed at the end. */
		data->too_big = true;
		return;
	}
	spool_writer_write(data->body, data->buffer, out);
	data->size += out;
}

bool smtp_data_line(struct smtp_data *data, const char *line, size_t len)
{
	if (len == 1 && line[0] == '.')
		return true;
	/* RFC 5321 4.5.2: a line that starts with a dot had one added. */
	if (len > 0 && line[0] == '.') {
		line++;
		len--;
	}
	if (!data->past_header) {
		if (len == 0)
			data->past_header = true;
		else if (len >= 9 && strncasecmp(line, "Received:", 9) == 0)
			data->received_count++;
	}
	data_store_line(data, line, len);
	return false;
}

void smtp_data_line_too_long(struct smtp_data *data)
{
	data->line_too_long = true;
}

enum smtp_data_outcome smtp_data_outcome(const struct smtp_data *data)
{
	if (data->line_too_long)
		return SMTP_DATA_LINE_TOO_LONG;
	if (data->too_big)
		return SMTP_DATA_TOO_BIG;
	if (data->received_count >= SMTP_DATA_MAX_RECEIVED)
		return SMTP_DATA_LOOP;
	if (data->body == NULL || data->body->failed)
		return SMTP_DATA_WRITE_FAILED;
	return SMTP_DATA_OK;
}

struct spool_writer *smtp_data_take_body(struct smtp_data *data)
{
	struct spool_writer *body = data->body;

	data->body = NULL;
	return body;
}

void smtp_data_clear(struct smtp_data *data)
{
	spool_writer_free(&data->body);
	free(data->buffer);
	memset(data, 0, sizeof(*data));
}
