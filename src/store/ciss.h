/*
 * ciss.h — what challenge-response (CISS, SPEC C1, C2, G4, G5) keeps in the
 * store: the Local Domains, the CISS settings, the senders each user trusts,
 * the challenges sent, and for each held (challenged) message whom it is
 * held for.
 *
 * Local Domains are the mail domains popgate serves. The configured
 * pseudo-domain ([server] pseudo_domain) is one by itself (G5): it is never
 * a row, every function here takes it as PSEUDO_DOMAIN and treats it as
 * local, built in and not deletable.
 *
 * Addresses and domains are kept in lower case, so one sender is one row
 * however it was spelt. Functions that change something for the
 * administrator follow store/user.h: a refusal writes nothing and puts a
 * sentence into ERR. The others log their database errors.
 */
#ifndef POPGATE_STORE_CISS_H
#define POPGATE_STORE_CISS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/db.h"
#include "store/spool.h"

/* ---- Local Domains ---- */

struct store_local_domain {
	char *domain;	    /* lower case */
	bool builtin;	    /* the pseudo-domain: local by itself, not deletable */
	int64_t created_at; /* 0 for the pseudo-domain */
};

/* Adds DOMAIN (a valid domain name, stored in lower case). Refused for an
 * invalid name, the pseudo-domain (local by itself) and one already there.
 * 0/-1. */
int store_local_domain_add(struct store *store, const char *pseudo_domain, const char *domain,
			   char *err, size_t errlen);

/* Deletes DOMAIN (without case). Refused for the pseudo-domain, one that is
 * not a Local Domain, and one CISS applies to (take it out of the CISS
 * domains first). 0/-1. */
int store_local_domain_del(struct store *store, const char *pseudo_domain, const char *domain,
			   char *err, size_t errlen);

/* The pseudo-domain (builtin; left out when PSEUDO_DOMAIN is NULL or "") and
 * then every Local Domain by name: *LIST_R (free with
 * store_local_domain_list_free). 0, or -1 with ERR. */
int store_local_domain_list(struct store *store, const char *pseudo_domain,
			    struct store_local_domain **list_r, size_t *count_r, char *err,
			    size_t errlen);
void store_local_domain_list_free(struct store_local_domain **list, size_t count);

/* 1 when DOMAIN (without case) is the pseudo-domain or a Local Domain, 0 if
 * not, -1 error. */
int store_local_domain_is_local(struct store *store, const char *pseudo_domain, const char *domain);

/* ---- CISS settings (in the setting table, each with a default) ---- */

enum ciss_hold_expiry {
	CISS_HOLD_EXPIRY_QUARANTINE, /* a held message's time is up: to the quarantine */
	CISS_HOLD_EXPIRY_DELETE,     /* … deleted */
};

#define CISS_DEFAULT_PERIOD_DAYS 7    /* one sender is not challenged twice within */
#define CISS_DEFAULT_CAP_HOUR 100     /* challenges per hour, all users */
#define CISS_DEFAULT_CAP_USER_HOUR 20 /* challenges per hour for one user */
#define CISS_DEFAULT_HOLD_DAYS 14     /* a held message waits this long */
#define CISS_DEFAULT_LINK_DAYS 7      /* a challenge's link is valid this long */
/* The largest number a numeric setting takes (days or challenges). */
#define CISS_SETTING_MAX 100000

struct ciss_settings {
	char **domains; /* the Local Domains CISS applies to, lower case */
	size_t domain_count;
	int period_days;
	int cap_hour;
	int cap_user_hour;
	int hold_days;
	enum ciss_hold_expiry hold_expiry;
	int link_days;
};

/* The numeric settings, as `popgatectl ciss set NAME N` names them. */
enum ciss_setting {
	CISS_SETTING_PERIOD,	    /* "period" (days) */
	CISS_SETTING_CAP_HOUR,	    /* "cap-hour" */
	CISS_SETTING_CAP_USER_HOUR, /* "cap-user-hour" */
	CISS_SETTING_HOLD_DAYS,	    /* "hold-days" */
	CISS_SETTING_LINK_DAYS,	    /* "link-days" */
	CISS_SETTING_COUNT
};

/* "period", "cap-hour", …; and back (-1 for an unknown name). */
const char *ciss_setting_name(enum ciss_setting setting);
int ciss_setting_parse(const char *name);

/* "quarantine" or "delete"; and back (-1 for anything else). */
const char *ciss_hold_expiry_name(enum ciss_hold_expiry expiry);
int ciss_hold_expiry_parse(const char *name);

/* The settings into *SETTINGS (clear with ciss_settings_clear), a default
 * for each one not set; a stored value that does not parse (written by hand)
 * is warned about and its default used. 0 or -1 (logged). */
int store_ciss_settings_get(struct store *store, struct ciss_settings *settings);
void ciss_settings_clear(struct ciss_settings *settings);

/* True if SETTINGS name DOMAIN (without case) as one CISS applies to. */
bool ciss_settings_has_domain(const struct ciss_settings *settings, const char *domain);

/* Sets SETTING to VALUE (0 to CISS_SETTING_MAX; the caps and the link's
 * days at least 1). 0, or -1 with ERR. */
int store_ciss_set_number(struct store *store, enum ciss_setting setting, long value, char *err,
			  size_t errlen);

int store_ciss_set_hold_expiry(struct store *store, enum ciss_hold_expiry expiry, char *err,
			       size_t errlen);

/* Sets the domains CISS applies to: DOMAINS, COUNT of them (0: none, CISS
 * is off), each the pseudo-domain or a Local Domain, none twice. 0, or -1
 * with ERR. */
int store_ciss_set_domains(struct store *store, const char *pseudo_domain,
			   const char *const *domains, size_t count, char *err, size_t errlen);

/* ---- Trusted senders, per user ---- */

enum ciss_trust_via {
	CISS_TRUST_ANSWER, /* the sender answered a challenge */
	CISS_TRUST_ADMIN,  /* popgatectl ciss trust */
};

/* "answer" or "admin". */
const char *ciss_trust_via_name(enum ciss_trust_via via);

struct ciss_trusted {
	int64_t user_id;
	char *user_name;
	char *address;
	enum ciss_trust_via via;
	int64_t trusted_at;
};

/* USER_ID trusts ADDRESS (a valid address) from NOW on, by VIA; trusting
 * again records the new VIA and time. 0, or -1 with ERR. */
int store_ciss_trust(struct store *store, int64_t user_id, const char *address,
		     enum ciss_trust_via via, int64_t now, char *err, size_t errlen);

/* Moves every message held for USER_ID from SENDER (challenged) to
 * delivery through store/lifecycle.h and forgets their hold, in the
 * caller's transaction or its own. How many, or -1 (logged; none moved). */
int64_t store_ciss_release_sender(struct store *store, int64_t user_id, const char *sender);

/* USER_ID no longer trusts ADDRESS. 1 done, 0 it was not trusted, -1 error. */
int store_ciss_untrust(struct store *store, int64_t user_id, const char *address);

/* 1 when USER_ID trusts ADDRESS, 0 if not, -1 error. */
int store_ciss_is_trusted(struct store *store, int64_t user_id, const char *address);

/* The senders USER_ID trusts (0: every user's), by user name and address:
 * *LIST_R (free with store_ciss_trusted_list_free). 0 or -1. */
int store_ciss_trusted_list(struct store *store, int64_t user_id, struct ciss_trusted **list_r,
			    size_t *count_r);
void store_ciss_trusted_list_free(struct ciss_trusted **list, size_t count);

/* ---- Challenges ---- */

/* A challenge's single-use code: random, 16 bytes as hex. */
#define CISS_NONCE_BYTES 16
#define CISS_NONCE_LEN (2 * CISS_NONCE_BYTES)
/* The longest subject a challenge keeps (longer ones are cut). */
#define CISS_SUBJECT_MAX 200

struct ciss_challenge {
	int64_t id;
	int64_t user_id;
	char *sender;			   /* whom the challenge goes to, lower case */
	char *recipient;		   /* the user's address the message came to */
	char *subject;			   /* the held message's subject ("" if none) */
	char message_id[SPOOL_ID_LEN + 1]; /* the held message ("" once it is gone) */
	char nonce[CISS_NONCE_LEN + 1];
	int64_t created_at;
	int64_t expires_at;  /* its link is refused from then on */
	int64_t answered_at; /* 0: not answered */
};

void ciss_challenge_clear(struct ciss_challenge *challenge);

/*
 * Records a challenge from USER_ID's RECIPIENT to SENDER about held message
 * MESSAGE_ID with SUBJECT (cut to CISS_SUBJECT_MAX bytes, controls
 * replaced), made at NOW, valid until EXPIRES_AT, with a fresh random nonce.
 * Its id into *ID_R and its nonce into NONCE. In the caller's transaction if
 * there is one. 0 or -1 (logged; also for a SENDER that is no valid address
 * or a MESSAGE_ID that is no spool id).
 */
int store_ciss_challenge_add(struct store *store, int64_t user_id, const char *sender,
			     const char *recipient, const char *subject, const char *message_id,
			     int64_t now, int64_t expires_at, int64_t *id_r,
			     char nonce[CISS_NONCE_LEN + 1]);

/* The challenge to SENDER for USER_ID still open at NOW (not answered, its
 * link valid), the latest, into *ID_R. 1 found, 0 none, -1 error. */
int store_ciss_challenge_open(struct store *store, int64_t user_id, const char *sender, int64_t now,
			      int64_t *id_r);

/* Challenge ID into *CHALLENGE (clear it after use). 1 found, 0 none, -1
 * error. */
int store_ciss_challenge_get(struct store *store, int64_t id, struct ciss_challenge *challenge);

/* How many challenges went to SENDER for USER_ID since SINCE; -1 error. */
int64_t store_ciss_challenge_count_sender(struct store *store, int64_t user_id, const char *sender,
					  int64_t since);

/* How many challenges were made since SINCE, for USER_ID (0: all users);
 * -1 error. */
int64_t store_ciss_challenge_count_since(struct store *store, int64_t user_id, int64_t since);

enum ciss_answer {
	CISS_ANSWER_DONE,     /* answered now: the sender is trusted, its mail released */
	CISS_ANSWER_UNKNOWN,  /* no such challenge, or the nonce is not its own */
	CISS_ANSWER_ANSWERED, /* answered before (single use) */
	CISS_ANSWER_EXPIRED,  /* its link's time is up */
};

/*
 * Answers challenge ID with NONCE at NOW, in one transaction (its own, or a
 * savepoint in the caller's): marks it answered, makes its sender trusted by
 * its user (via answer), and moves every message of that user held for that
 * sender from challenged to delivery (store/lifecycle.h); how many into
 * *RELEASED_R. A challenge already answered, expired or unknown changes
 * nothing. The result, or -1 on an error (nothing written; logged).
 */
int store_ciss_challenge_answer(struct store *store, int64_t id, const char *nonce, int64_t now,
				size_t *released_r);

/* ---- Held messages ---- */

/* The first address of USER_ID (its primary first) whose domain is one of
 * SETTINGS' and a Local Domain (the pseudo-domain included), into OUT
 * (ADDRESS_MAX + 1 bytes). 1 found, 0 none (CISS does not apply to the
 * user), -1 error. */
int store_ciss_user_address(struct store *store, const char *pseudo_domain,
			    const struct ciss_settings *settings, int64_t user_id, char *out,
			    size_t outlen);

struct ciss_held {
	char message_id[SPOOL_ID_LEN + 1];
	int64_t user_id;
	char *user_name;
	char *sender;
	int64_t held_at;
	int64_t challenge_id; /* the latest challenge to that sender for that user; 0: none */
};

/* The messages held (challenged) for USER_ID (0: every user), oldest
 * first: *LIST_R (free with store_ciss_held_list_free). 0 or -1. */
int store_ciss_held_list(struct store *store, int64_t user_id, struct ciss_held **list_r,
			 size_t *count_r);
void store_ciss_held_list_free(struct ciss_held **list, size_t count);

/*
 * The held messages' time is up (CISS hold-days): every message challenged
 * since before CUTOFF goes, by EXPIRY, to the quarantine (with a line in its
 * verdict's explanation saying it waited HOLD_DAYS days) or away: its row is
 * deleted and its id handed back in *IDS_R / *COUNT_R (allocated) so the
 * caller removes its body once the deletion commits. In the caller's
 * transaction (the housekeeping's). How many, or -1 (logged; nothing
 * handed back).
 */
int store_ciss_held_expire(struct store *store, int64_t cutoff, enum ciss_hold_expiry expiry,
			   int hold_days, char (**ids_r)[SPOOL_ID_LEN + 1], size_t *count_r);

/* Records that message MESSAGE_ID is held for USER_ID until SENDER answers
 * (replacing an earlier record of it), in the caller's transaction (the one
 * that moves it to challenged). 0 or -1 (logged). */
int store_ciss_hold(struct store *store, const char *message_id, int64_t user_id,
		    const char *sender, int64_t now);

#endif
