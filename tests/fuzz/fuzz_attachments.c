/*
 * fuzz_attachments.c — libFuzzer target for the attachments filter's entry
 * point (filters/attachments.c): GMime's parts, then libarchive's zip, 7z
 * and RAR readers over hostile archives, in the worker.
 *
 * Owns: nothing. Must never: accept a result outside the filter's promises.
 * Beyond the sanitizers it aborts on a score that is not one of the fixed
 * points (0, 6, 10), or a reason that is missing, longer than a frame's 200
 * characters or not printable ASCII. The first input byte chooses how the
 * rest is read: odd, as a whole message; even, as the body of an attachment
 * (base64 in a message made here), so that the archive readers get the
 * fuzzer's bytes directly; and with its bit 1 set, a [spam]
 * blocked_extensions setting replaces the default list.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "filters/attachments.h"
#include "filters/filter.h"
#include "filters/mime.h"
#include "pipeline/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_judge(const char *message, size_t len)
{
	struct pipeline_result result = {.status = PIPELINE_RESULT_OK};

	attachments_judge(message, len, filter_setting("blocked_extensions"), &result);
	if (result.reason == NULL || strlen(result.reason) > 200)
		abort();
	for (const char *c = result.reason; *c != '\0'; c++) {
		if (*c < 0x20 || *c >= 0x7f)
			abort();
	}
	if (result.score != 0.0 && result.score != ATTACHMENTS_POINTS_ENCRYPTED &&
	    result.score != ATTACHMENTS_POINTS_NAME &&
	    result.score != ATTACHMENTS_POINTS_EXECUTABLE)
		abort();
	free(result.reason);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gchar *encoded;
	char *message;

	if (size == 0)
		return 0;
	filter_settings_set((data[0] & 2) != 0 ? "blocked_extensions pdf,.TXT  exe ,, .\n" : NULL);
	if (data[0] & 1) {
		/* Copied, so that ASan sees a read past the input. */
		message = malloc(size - 1 > 0 ? size - 1 : 1);
		if (message == NULL)
			abort();
		memcpy(message, data + 1, size - 1);
		fuzz_judge(message, size - 1);
		free(message);
		return 0;
	}
	encoded = g_base64_encode(data + 1, size - 1);
	if (asprintf(&message,
		     "Subject: fuzz\r\n"
		     "MIME-Version: 1.0\r\n"
		     "Content-Type: application/octet-stream; name=\"fuzz.zip\"\r\n"
		     "Content-Transfer-Encoding: base64\r\n"
		     "\r\n"
		     "%s\r\n",
		     encoded) < 0)
		abort();
	g_free(encoded);
	fuzz_judge(message, strlen(message));
	free(message);
	return 0;
}
