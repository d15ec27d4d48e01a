/*
 * fuzz_uri.c — libFuzzer target for the URI extractor and the HTML-to-text
 * step (filters/uri.c), which read hostile text and HTML in the worker, and
 * for the host the URI blocklist filter cuts out of each URL found
 * (filters/link.c).
 *
 * Owns: nothing. Must never: read past the input (it is copied into a
 * buffer of exactly its size, so ASan sees any overread), grow the text
 * beyond its bound, or keep a URL that is too long or duplicated; a host
 * must fit its buffer, be lowercase and hold no '/', '?', '#' or '@'. The first
 * input byte chooses the text bound, to reach the cut-off paths.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/link.h"
#include "filters/mime.h"
#include "filters/uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_host(const char *url)
{
	char host[64];

	if (link_host(url, host, sizeof(host)) < 0)
		return;
	if (strlen(host) == 0 || strlen(host) >= sizeof(host) || strpbrk(host, "/?#@") != NULL)
		abort();
	for (const char *c = host; *c != '\0'; c++) {
		if (*c >= 'A' && *c <= 'Z')
			abort();
	}
}

static void fuzz_check_urls(const struct mime_list *urls)
{
	if (urls->count > MIME_URLS_MAX)
		abort();
	for (size_t i = 0; i < urls->count; i++) {
		if (strlen(urls->items[i]) > URI_LENGTH_MAX)
			abort();
		fuzz_check_host(urls->items[i]);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(urls->items[i], urls->items[j]) == 0)
				abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_list urls = {0};
	size_t bound = size > 0 ? (size_t)data[0] * 8 + 1 : 1;
	char *input = malloc(size > 0 ? size : 1);
	char *text = NULL;
	size_t text_len = 0;

	if (input == NULL)
		return 0;
	if (size > 0)
		memcpy(input, data, size);
	uri_scan_text(input, size, &urls);
	fuzz_check_urls(&urls);
	mime_list_free(&urls);

	uri_scan_html(input, size, &text, &text_len, bound, &urls);
	if (text_len > bound || (text != NULL && text[text_len] != '\0'))
		abort();
	fuzz_check_urls(&urls);
	mime_list_free(&urls);
	free(text);
	free(input);
	return 0;
}
