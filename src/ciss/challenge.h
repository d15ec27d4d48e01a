/*
 * challenge.h — the challenge mail (C1): composed for a challenge row the
 * policy made, and queued for the relay as popgate's own outgoing mail is.
 *
 * The mail goes to the unknown sender with the null reverse path (MAIL
 * FROM:<>, so a bounce of it is never sent and nothing loops), From: [web]
 * challenge_from (default postmaster@ the pseudo-domain), Auto-Submitted:
 * auto-replied, X-Auto-Response-Suppress: All (no out-of-office answers) and
 * X-Popgate-Challenge: ID (so the policy knows our own challenges when they
 * come back). It names the recipient and the held message's subject and
 * carries the link [web] base_url/c/TOKEN (ciss/token.h). Plain text only.
 *
 * SECURITY: the subject comes from the unknown sender. It is cleaned before
 * it goes anywhere: control characters (CR and LF above all: no header
 * injection) become blanks, invalid UTF-8 becomes '?', it is cut to
 * CISS_CHALLENGE_SUBJECT_MAX bytes, and non-ASCII text goes into the header
 * only as RFC 2047 encoded words and into the body as quoted-printable.
 *
 * Must never: send to the null sender or to a text that is not an address,
 * log the link or its token.
 */
#ifndef POPGATE_CISS_CHALLENGE_H
#define POPGATE_CISS_CHALLENGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct popgate;

/* The most bytes of the held message's subject a challenge repeats. */
#define CISS_CHALLENGE_SUBJECT_MAX 200

/* What one challenge mail says. The strings are the caller's. */
struct ciss_challenge_mail {
	const char *from;      /* the From: address */
	const char *to;	       /* the unknown sender */
	const char *recipient; /* whom the held message is for */
	const char *subject;   /* the held message's subject, raw (cleaned here) */
	const char *link;      /* the sender page's URL */
	const char *host;      /* for the Message-ID */
	int64_t challenge_id;
	int64_t now;
	int64_t expires_at;
};

/*
 * Composes the challenge for a challenge row the policy created
 * (store/ciss.h) and queues it for the relay: the body into the spool and,
 * through the writer thread, a submitted message from <> to the sender,
 * which the pipeline moves to outbound (DKIM-signed when the From domain has
 * a key) and the relay sends. 0 when queued (the commit follows), or -1 with
 * a message in ERR (the row cannot be read, its sender is no address, the
 * writer refused).
 */
int ciss_challenge_issue(struct popgate *pg, int64_t challenge_id, char *err, size_t errlen);

/*
 * The mail for MAIL, CR LF line ends, into *LEN_R bytes (allocated, the
 * caller frees). NULL when MAIL->to or MAIL->recipient is not an address.
 */
char *ciss_challenge_compose(const struct ciss_challenge_mail *mail, size_t *len_r);

/* TEXT (LEN bytes) cleaned as SECURITY says into OUT (at least
 * CISS_CHALLENGE_SUBJECT_MAX + 1 bytes); "(no subject)" when nothing is left. */
void ciss_challenge_clean_subject(const char *text, size_t len,
				  char out[CISS_CHALLENGE_SUBJECT_MAX + 1]);

/* The sender page's URL for TOKEN under CFG's [web] base_url (default
 * https://HOSTNAME:PORT), allocated. */
char *ciss_challenge_link(const struct popgate_config *cfg, const char *token);

/* The From: address of challenges under CFG, allocated. */
char *ciss_challenge_from(const struct popgate_config *cfg);

#endif
