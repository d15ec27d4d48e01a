/*
 * ctl.c — what every popgatectl command shares: its error and usage
 * messages, opening the store, reading its options, and printing a
 * confirmation as a line for people or as JSON for scripts.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/control.h"
#include "core/log.h"
#include "core/util.h"
#include "store/audit.h"
#include "store/db.h"

void ctl_command_usage(const struct ctl_command *c, FILE *out, bool details)
{
	fprintf(out, "usage: popgatectl --config FILE [--json] %s %s%s%s\n", c->group, c->name,
		*c->args ? " " : "", c->args);
	if (details)
		fprintf(out, "%s.\n%s", c->summary, c->details != NULL ? c->details : "");
}

/* Prints "popgatectl: MESSAGE" on stderr. */
static void ctl_say(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void ctl_say(const char *fmt, va_list ap)
{
	fputs("popgatectl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_say(fmt, ap);
	va_end(ap);
	if (cmd != NULL)
		ctl_command_usage(cmd, stderr, false);
	else
		fputs("try 'popgatectl --help'\n", stderr);
	return CTL_USAGE;
}

int ctl_refuse(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_say(fmt, ap);
	va_end(ap);
	return CTL_REFUSED;
}

/* S for a message on stderr (it came from the command line), in BUF. */
const char *ctl_clean(const char *s, char *buf, size_t len)
{
	util_sanitize(buf, len, s, strlen(s));
	return buf;
}

/* CTL_OK, or CTL_REFUSED when printing failed (a closed pipe, a full disk). */
int ctl_printed(int rc)
{
	if (rc < 0)
		return ctl_refuse("cannot write the output: %s", strerror(errno));
	return CTL_OK;
}

/* Opens the store in the configured data folder, which must hold one: the
 * CLI never creates a database (that is the daemon's first start). Commands
 * call it after checking their arguments, so a usage error is one even
 * without a store. */
int ctl_open_store(struct ctl *ctl)
{
	char *path = xasprintf("%s/popgate.db", ctl->cfg.data_dir);
	char err[512];
	int rc = CTL_OK;

	if (access(path, F_OK) < 0) {
		rc = ctl_refuse("no store at %s (has popgate been started with this "
				"configuration?)",
				path);
	} else {
		ctl->store = store_open(ctl->cfg.data_dir, err, sizeof(err));
		if (ctl->store == NULL)
			rc = ctl_refuse("cannot open the store: %s", err);
	}
	free(path);
	return rc;
}

/* A command's single operand, or a usage error (the caller returns it). */
int ctl_one_arg(const struct ctl_command *cmd, int argc, char **argv, const char *what)
{
	(void)argv;
	if (argc != 1)
		return ctl_usage_error(cmd, "'%s %s' takes %s", cmd->group, cmd->name, what);
	return CTL_OK;
}

/*
 * The value of option NAME at ARGV[*I] ("--name V" or "--name=V"), moving *I
 * past it; NULL if ARGV[*I] is not that option. *MISSING_R is set when the
 * option is there but its value is not.
 */
const char *ctl_option(const char *name, int argc, char **argv, int *i, bool *missing_r)
{
	size_t len = strlen(name);

	if (strncmp(argv[*i], name, len) != 0)
		return NULL;
	if (argv[*i][len] == '=')
		return argv[*i] + len + 1;
	if (argv[*i][len] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing_r = true;
		return NULL;
	}
	(*i)++;
	return argv[*i];
}

int ctl_changed(const struct ctl *ctl, const char *message_id, json_t *json, const char *fmt, ...)
{
	char text[512], clean[512], detail[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* The text holds names from the command line: one line, no escapes. */
	util_sanitize(clean, sizeof(clean), text, strlen(text));
	snprintf(detail, sizeof(detail), "popgatectl %s %s: %s", ctl->cmd->group, ctl->cmd->name,
		 clean);
	/* Written to popgate's log file here when it can be (the copy); the
	 * row in the store says whether, and the daemon logs the rows that are
	 * not, so a change is recorded whatever the log's destination. */
	bool logged = log_copy_active(LOG_INFO);
	log_event(LOG_INFO, "admin_change", NULL, message_id, "%s", detail);
	if (ctl->store != NULL)
		store_admin_change_add(ctl->store, util_now(), message_id, detail, logged);
	/* The change is committed: the running daemon acts on it now (a
	 * released message, a line to log). No daemon, or a socket that
	 * refuses: it sees the change at its start or its fallback look. */
	if (control_notify(ctl->cfg.data_dir) < 0)
		fprintf(stderr,
			"popgatectl: note: the running popgate could not be told (%s); it "
			"sees the change within release_check_seconds\n",
			strerror(errno));
	if (ctl->json)
		return ctl_printed(cli_json_print(json, stdout));
	json_decref(json);
	return ctl_printed(printf("%s\n", text) < 0 || fflush(stdout) != 0 ? -1 : 0);
}

int ctl_read_password(char **password_r)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len = getline(&line, &cap, stdin);

	*password_r = NULL;
	if (len < 0) {
		free(line);
		return ctl_refuse("no password on standard input");
	}
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (len == 0) {
		free(line);
		return ctl_refuse("the password is empty");
	}
	/* A copy of exactly its length, so the wipe later covers all of it. */
	*password_r = xstrdup(line);
	explicit_bzero(line, cap);
	free(line);
	return CTL_OK;
}

void ctl_password_free(char **password)
{
	if (*password == NULL)
		return;
	explicit_bzero(*password, strlen(*password));
	xfree(password);
}
