/*
 * clamd.h — clamd's INSTREAM protocol (man clamd): the command, the chunk
 * framing, the reply, where clamd listens, and a blocking scan for
 * popgatectl filter check. The daemon's own scans are asynchronous, in its
 * event loop (pipeline/scan.c), with the same framing and reply parser.
 *
 *   client: "zINSTREAM\0", then chunks, each a 4-byte big-endian length and
 *           that many bytes, then a chunk of length 0;
 *   clamd:  one reply ended by a NUL: "stream: OK", "stream: NAME FOUND",
 *           or "... ERROR" (among them "INSTREAM size limit exceeded.
 *           ERROR" past its StreamMaxLength), then it closes.
 *
 * SECURITY: the reply comes from the network (a local socket, but another
 * process): it is read up to CLAMD_REPLY_MAX bytes, never trusted for a
 * length, and whatever of it is kept (a virus name, an error text) is
 * printable ASCII of at most CLAMD_TEXT_MAX characters.
 */
#ifndef POPGATE_FILTERS_CLAMD_H
#define POPGATE_FILTERS_CLAMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The command, with its NUL ("z": NUL-terminated, replies too). */
#define CLAMD_COMMAND "zINSTREAM"
#define CLAMD_COMMAND_LEN (sizeof(CLAMD_COMMAND))
/* The bytes of the body sent in one chunk. */
#define CLAMD_CHUNK_MAX (64 * 1024)
/* The longest reply read; a longer one is an error. */
#define CLAMD_REPLY_MAX 1024
/* The longest virus name or error text kept from a reply. */
#define CLAMD_TEXT_MAX 160

enum clamd_verdict {
	CLAMD_INCOMPLETE = 0, /* no whole reply yet: read more */
	CLAMD_CLEAN,	      /* "stream: OK" */
	CLAMD_VIRUS,	      /* "stream: NAME FOUND": the name in text */
	CLAMD_TOO_LARGE,      /* over clamd's StreamMaxLength: not scanned */
	CLAMD_ERROR,	      /* clamd could not scan it, or a garbled reply: text says */
};

struct clamd_reply {
	enum clamd_verdict verdict;
	char text[CLAMD_TEXT_MAX + 1];
};

/* Writes LEN as the 4-byte big-endian length that starts a chunk. */
void clamd_chunk_header(uint32_t len, unsigned char out[4]);

/*
 * Parses the reply bytes DATA[0..LEN) read so far into *REPLY; ENDED says
 * clamd has closed the connection after them (then what came is the whole
 * reply, NUL or not). Returns REPLY->verdict: CLAMD_INCOMPLETE when more
 * bytes are needed (never when ENDED, never past CLAMD_REPLY_MAX bytes).
 * Bytes after the NUL are ignored.
 */
enum clamd_verdict clamd_reply_parse(const char *data, size_t len, bool ended,
				     struct clamd_reply *reply);

/* Where clamd listens. */
struct clamd_address {
	struct sockaddr_storage addr;
	socklen_t len;
};

/*
 * Parses TEXT, [spam] clamd_socket: an absolute path of a unix socket, or
 * "ADDRESS:PORT" with an IPv4 address or a bracketed IPv6 one
 * ("[::1]:3310"); no host names (a lookup would block the event loop).
 * 0, or -1 with ERR set.
 */
int clamd_address_parse(const char *text, struct clamd_address *address, char *err, size_t errlen);

/*
 * Scans the bytes of BODY_FD, from its current offset to its end, through
 * clamd at ADDRESS, waiting at most TIMEOUT_SECONDS in all (blocking: for
 * popgatectl, never the daemon). 0 with *REPLY filled (its verdict may be
 * CLAMD_ERROR), or -1 with ERR set when clamd cannot be reached or the body
 * read, or the time ran out.
 */
int clamd_scan_fd(const struct clamd_address *address, int body_fd, int timeout_seconds,
		  struct clamd_reply *reply, char *err, size_t errlen);

#endif
