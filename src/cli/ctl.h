/*
 * ctl.h — popgatectl's commands and what they share.
 *
 * Each command is a `run` function of the command table in popgatectl.c. It
 * checks its arguments first (a usage error is one even without a store),
 * then opens the store and does its work. Exit status: CTL_OK, CTL_REFUSED
 * (with "popgatectl: MESSAGE" on stderr) or CTL_USAGE.
 *
 * Must never: load the credential key (except the dkim commands, which seal
 * and open DKIM keys with it: ctl_dkim.c), or print a password, a password
 * hash, a sealed secret or a message body.
 */
#ifndef POPGATE_CLI_CTL_H
#define POPGATE_CLI_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "core/config.h"

enum ctl_status { CTL_OK = 0, CTL_REFUSED = 1, CTL_USAGE = 2 };

struct ctl {
	const struct ctl_command *cmd; /* the command running */
	bool json;
	struct popgate_config cfg;
	struct store *store; /* NULL for commands that do not need it */
};

struct ctl_command {
	const char *group; /* "account" */
	const char *name;  /* "list" */
	const char *args;  /* "[--state S] [--user U]" */
	const char *summary;
	const char *details; /* options and output, for COMMAND --help; may be NULL */
	/* ARGV holds the arguments after the command's name, --json taken out. */
	int (*run)(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
};

/* Prints CMD's usage line on OUT, with its summary and details if DETAILS. */
void ctl_command_usage(const struct ctl_command *cmd, FILE *out, bool details);

/* Prints "popgatectl: MESSAGE" and CMD's usage (NULL: a hint) on stderr;
 * returns CTL_USAGE. */
int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "popgatectl: MESSAGE" on stderr; returns CTL_REFUSED. */
int ctl_refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* S made safe for a message on stderr (it came from the command line), in BUF. */
const char *ctl_clean(const char *s, char *buf, size_t len);

/* CTL_OK for RC 0, or CTL_REFUSED when printing failed (a closed pipe, a full
 * disk). */
int ctl_printed(int rc);

/*
 * Ends a command that changed something: records the line FMT as an
 * "admin_change" event (with MESSAGE_ID, or NULL) in popgate's log, then
 * prints JSON (released here) with --json, else that line. Returns
 * ctl_printed's status.
 */
int ctl_changed(const struct ctl *ctl, const char *message_id, json_t *json, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Opens the store in the configured data folder, which must hold one: the
 * CLI never creates a database (that is the daemon's first start). */
int ctl_open_store(struct ctl *ctl);

/*
 * Reads one line from standard input as a password (its line end removed)
 * into *PASSWORD_R, for ctl_password_free. CTL_OK, or CTL_REFUSED for no
 * line or an empty one.
 */
int ctl_read_password(char **password_r);

/* Wipes and frees *PASSWORD; NULL is fine. */
void ctl_password_free(char **password);

/* CTL_OK when the command got exactly one operand, else a usage error naming
 * WHAT it takes. */
int ctl_one_arg(const struct ctl_command *cmd, int argc, char **argv, const char *what);

/*
 * The value of option NAME at ARGV[*I] ("--name V" or "--name=V"), moving *I
 * past it; NULL if ARGV[*I] is not that option. *MISSING_R is set when the
 * option is there but its value is not.
 */
const char *ctl_option(const char *name, int argc, char **argv, int *i, bool *missing_r);

/* The commands (ctl_account.c, ctl_queue.c, ctl_user.c, ctl_auth.c, ctl_transport.c). */
#define CTL_RUN(fn) int fn(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
CTL_RUN(ctl_account_list);
CTL_RUN(ctl_account_show);
CTL_RUN(ctl_account_del);
CTL_RUN(ctl_config_show);
CTL_RUN(ctl_queue_list);
CTL_RUN(ctl_queue_show);
CTL_RUN(ctl_queue_release);
CTL_RUN(ctl_queue_delete);
CTL_RUN(ctl_queue_outbound);
CTL_RUN(ctl_queue_retry);
CTL_RUN(ctl_queue_bounce);
CTL_RUN(ctl_queue_flush);
CTL_RUN(ctl_transport_add);
CTL_RUN(ctl_transport_del);
CTL_RUN(ctl_transport_list);
CTL_RUN(ctl_user_list);
CTL_RUN(ctl_user_show);
CTL_RUN(ctl_user_add);
CTL_RUN(ctl_user_del);
CTL_RUN(ctl_user_passwd);
CTL_RUN(ctl_seat_status);
CTL_RUN(ctl_seat_set);
CTL_RUN(ctl_address_list);
CTL_RUN(ctl_address_add);
CTL_RUN(ctl_address_del);
CTL_RUN(ctl_auth_check);
CTL_RUN(ctl_admin_check);
CTL_RUN(ctl_admin_passwd);
/* ctl_ciss.c */
CTL_RUN(ctl_domain_list);
CTL_RUN(ctl_domain_add);
CTL_RUN(ctl_domain_del);
CTL_RUN(ctl_ciss_show);
CTL_RUN(ctl_ciss_set);
CTL_RUN(ctl_ciss_trust);
CTL_RUN(ctl_ciss_untrust);
CTL_RUN(ctl_ciss_list);
CTL_RUN(ctl_ciss_pending);
/* ctl_network.c */
CTL_RUN(ctl_network_list);
CTL_RUN(ctl_network_add);
CTL_RUN(ctl_network_del);
/* ctl_dkim.c */
CTL_RUN(ctl_dkim_keygen);
CTL_RUN(ctl_dkim_list);
CTL_RUN(ctl_dkim_show);
CTL_RUN(ctl_dkim_del);
CTL_RUN(ctl_dkim_sign);
/* ctl_mta_sts.c */
CTL_RUN(ctl_mta_sts_list);
/* ctl_profile.c */
CTL_RUN(ctl_profile_list);
CTL_RUN(ctl_profile_show);
CTL_RUN(ctl_profile_add);
CTL_RUN(ctl_profile_set);
CTL_RUN(ctl_profile_del);
CTL_RUN(ctl_user_set);
CTL_RUN(ctl_sender_add);
CTL_RUN(ctl_sender_del);
CTL_RUN(ctl_sender_list);
/* ctl_filter.c, ctl_queue.c */
CTL_RUN(ctl_filter_check);
CTL_RUN(ctl_report);
/* ctl_bayes.c */
CTL_RUN(ctl_bayes_train);
CTL_RUN(ctl_bayes_score);
CTL_RUN(ctl_bayes_learn);
/* ctl_filter.c */
CTL_RUN(ctl_filter_list);
CTL_RUN(ctl_filter_bench);

/* ctl_depot_search.c */
CTL_RUN(ctl_depot_search);
CTL_RUN(ctl_depot_show);
CTL_RUN(ctl_depot_export);
CTL_RUN(ctl_depot_restore);

/* Message files named on a command line (ctl_bayes.c; filter rules uses
 * them too). */
struct ctl_bayes_files {
	char **paths;
	bool *in_maildir; /* PATHS[i] is a file of a maildir's cur/ or new/ */
	size_t count;
	size_t capacity;
};

/* Expands PATH (file, maildir or folder) into FILES. CTL_OK or CTL_REFUSED. */
int ctl_bayes_expand(const char *path, struct ctl_bayes_files *files);
void ctl_bayes_files_free(struct ctl_bayes_files *files);

/*
 * Calls FN for each message of the file DATA (LEN bytes), at most
 * FILTER_BODY_MAX bytes of it: the whole file, or each message of an mbox
 * (core/mbox.h; the From_ line included, the body as it is in the file).
 */
void ctl_bayes_messages(const char *data, size_t len,
			void (*fn)(const char *message, size_t len, void *arg), void *arg);

/* ctl_rules.c */
CTL_RUN(ctl_filter_rules);
/* ctl_depot_import.c */
CTL_RUN(ctl_depot_import);
CTL_RUN(ctl_depot_retention);
CTL_RUN(ctl_depot_hold);
CTL_RUN(ctl_depot_expire);
/* ctl_depot.c */
CTL_RUN(ctl_depot_verify);
CTL_RUN(ctl_depot_checkpoint);
CTL_RUN(ctl_depot_stats);
#undef CTL_RUN

/* ---- ctl_learn.c ---- */

/*
 * Takes the lock of the Bayes database at DATABASE (the file DATABASE.lock),
 * waiting for another writer (a training, a learning) to finish. The
 * descriptor, whose close releases it, or -1 with ERR.
 */
int ctl_bayes_lock(const char *database, char *err, size_t errlen);

/* What ctl_learn_reports did with the reports it found. */
struct ctl_learnt {
	size_t learnt;	    /* counted now (reversed ones included) */
	size_t reversed;    /* of those, an earlier report of the other class forgotten */
	size_t already;	    /* the message is counted as that class already */
	size_t unlearnable; /* the body is gone: marked as not learnable */
};

/*
 * Learns every spam report not learnt yet (store/spam_report.h) into
 * <data_dir>/bayes.db under its lock, and marks each with what came of it;
 * the store must be open. The caller tells the daemon (ctl_changed). 0, or
 * -1 with ERR: then the reports not saved stay unlearnt for the next run.
 */
int ctl_learn_reports(struct ctl *ctl, struct ctl_learnt *learnt, char *err, size_t errlen);

struct cli_table;
/* A recorded verdict's explanation (pipeline/verdict.h) as a JSON array, and
 * as rows of TABLE (two columns, the first LABEL): ctl_filter.c. */
json_t *ctl_explanation_json(const char *explanation);
void ctl_explanation_rows(struct cli_table *table, const char *label, const char *explanation);

#endif
