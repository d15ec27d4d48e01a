/*
 * link.c — the host of a link URL (link.h).
 *
 * Owns: nothing. Must never: read past the URL's NUL or write past SIZE.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "filters/link.h"

int link_host(const char *url, char *host, size_t size)
{
	const char *start = url;
	const char *end;
	const char *at;
	size_t len;

	if (strncasecmp(url, "http://", 7) == 0)
		start = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		start = url + 8;
	else if (strncasecmp(url, "ftp://", 6) == 0)
		start = url + 6;
	else if (strncasecmp(url, "www.", 4) != 0)
		return -1;
	end = start + strcspn(start, "/?#\\");
	/* user:password@host */
	for (at = end; at > start && at[-1] != '@'; at--)
		continue;
	if (at > start)
		start = at;
	if (*start == '[') {
		const char *close = memchr(start, ']', (size_t)(end - start));

		if (close == NULL)
			return -1;
		start++;
		end = close;
	} else {
		const char *colon = memchr(start, ':', (size_t)(end - start));

		if (colon != NULL)
			end = colon;
	}
	len = (size_t)(end - start);
	if (len > 0 && start[len - 1] == '.')
		len--;
	if (len == 0 || len >= size)
		return -1;
	for (size_t i = 0; i < len; i++)
		host[i] = (char)tolower((unsigned char)start[i]);
	host[len] = '\0';
	return 0;
}
