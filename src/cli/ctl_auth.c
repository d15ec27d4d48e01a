/*
 * ctl_auth.c — popgatectl's login commands: 'auth check' tries a user's
 * console login (U6) and 'admin check' the administrator's, each with the
 * password on standard input, through the one login state machine
 * (pop3/auth.c) in a loop of their own (so they are throttled and checked
 * live exactly as the console would);
 * 'admin passwd' sets the administrator's password.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/crypto.h"
#include "core/offload.h"
#include "core/resolver.h"
#include "core/util.h"
#include "pop3/auth.h"
#include "pop3/fetch.h"
#include "popgate.h"
#include "store/setting.h"
#include "store/writer.h"

/* What a login's callback hands back to the command. */
struct ctl_login_outcome {
	struct event_base *base;
	bool done;
	enum auth_result result;
	enum auth_role role;
	char *user_name;
	char *message;
};

static void ctl_login_done(enum auth_result result, enum auth_role role, const char *user_name,
			   const char *message, void *ctx)
{
	struct ctl_login_outcome *outcome = ctx;

	outcome->done = true;
	outcome->result = result;
	outcome->role = role;
	outcome->user_name = user_name != NULL ? xstrdup(user_name) : NULL;
	outcome->message = xstrdup(message);
	event_base_loopbreak(outcome->base);
}

static const char *ctl_login_result_name(enum auth_result result)
{
	switch (result) {
	case AUTH_OK:
		return "ok";
	case AUTH_REJECTED:
	case AUTH_BAD_NAME:
	case AUTH_REFUSED:
		return "rejected";
	case AUTH_THROTTLED:
		return "throttled";
	case AUTH_UNAVAILABLE:
		return "unavailable";
	}
	return "unknown";
}

static const char *ctl_login_role_name(enum auth_role role)
{
	return role == AUTH_ROLE_ADMIN ? "administrator" : "user";
}

/*
 * Runs a console login of NAME (NULL: the administrator) with the password
 * on standard input, in a loop with the parts it needs (a resolver and a
 * fetcher for the live check, a thread for argon2id), and prints its outcome.
 */
static int ctl_login_check(struct ctl *ctl, const char *name)
{
	struct ctl_login_outcome outcome = {0};
	struct popgate pg = {0};
	struct auth *auth = NULL;
	struct auth_request *login;
	char *password = NULL;
	char err[256];
	int rc;

	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if ((rc = ctl_read_password(&password)) != CTL_OK)
		return rc;
	rc = CTL_REFUSED;
	pg.cfg = &ctl->cfg;
	pg.store = ctl->store;
	if (crypto_init() < 0 || (pg.base = event_base_new()) == NULL) {
		ctl_refuse("cannot set up the login check");
		goto done;
	}
	pg.dns = resolver_new(pg.base, ctl->cfg.nameservers, err, sizeof(err));
	if (pg.dns != NULL)
		pg.offload = offload_new(pg.base, 1, err, sizeof(err));
	/* The login throttle's counts are written by a writer thread, as in
	 * the daemon (pop3/throttle.h). */
	if (pg.offload != NULL)
		pg.writer = writer_new(pg.base, ctl->cfg.data_dir, err, sizeof(err));
	if (pg.dns == NULL || pg.offload == NULL || pg.writer == NULL) {
		ctl_refuse("cannot set up the login check: %s", err);
		goto done;
	}
	pg.fetcher = fetcher_new(&pg);
	auth = auth_new(&pg);
	outcome.base = pg.base;
	login = name != NULL ? auth_console_login(auth, name, password, NULL, ctl_login_done,
						  &outcome)
			     : auth_admin_login(auth, password, NULL, ctl_login_done, &outcome);
	ctl_password_free(&password);
	event_base_dispatch(pg.base);
	if (!outcome.done) {
		auth_cancel(&login);
		ctl_refuse("the login check ended without an answer");
		goto done;
	}
	if (ctl->json) {
		rc = ctl_printed(cli_json_print(
		    json_pack("{s:o, s:o, s:b, s:s, s:o}", "user", cli_json_string(outcome.user_name),
			      "role",
			      outcome.result == AUTH_OK
				  ? json_string(ctl_login_role_name(outcome.role))
				  : json_null(),
			      "ok", outcome.result == AUTH_OK, "result",
			      ctl_login_result_name(outcome.result), "message",
			      cli_json_string(outcome.message)),
		    stdout));
		if (rc == CTL_OK && outcome.result != AUTH_OK)
			rc = CTL_REFUSED;
	} else if (outcome.result == AUTH_OK) {
		/* The administrator has no user name: the line names the role. */
		rc = ctl_printed(printf("%s: %s\n",
					outcome.role == AUTH_ROLE_ADMIN ? "admin" : outcome.user_name,
					outcome.message) < 0 ||
					 fflush(stdout) != 0
				     ? -1
				     : 0);
	} else {
		rc = ctl_refuse("%s: %s", ctl_login_result_name(outcome.result), outcome.message);
	}
done:
	ctl_password_free(&password);
	auth_free(&auth);
	fetcher_free(&pg.fetcher);
	writer_free(&pg.writer); /* after auth: its completions find the logins gone */
	offload_free(&pg.offload);
	resolver_free(&pg.dns);
	if (pg.base != NULL)
		event_base_free(pg.base);
	free(outcome.user_name);
	free(outcome.message);
	return rc;
}

int ctl_auth_check(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one user name")) != CTL_OK)
		return rc;
	return ctl_login_check(ctl, argv[0]);
}

int ctl_admin_check(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	(void)argv;
	if (argc > 0)
		return ctl_usage_error(cmd, "'admin check' takes no arguments");
	return ctl_login_check(ctl, NULL);
}

int ctl_admin_passwd(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char hash[CRYPTO_HASH_MAX];
	char *password = NULL;
	int rc;

	(void)argv;
	if (argc > 0)
		return ctl_usage_error(cmd, "'admin passwd' takes no arguments");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if ((rc = ctl_read_password(&password)) != CTL_OK)
		return rc;
	if (crypto_init() < 0 || crypto_password_hash(hash, password) < 0)
		rc = ctl_refuse("cannot hash the password");
	else if (store_setting_set(ctl->store, STORE_SETTING_ADMIN_HASH, hash) < 0)
		rc = ctl_refuse("cannot store the password");
	else
		rc = ctl_changed(ctl, NULL, json_pack("{s:b}", "password_set", 1),
				 "administrator password set");
	ctl_password_free(&password);
	explicit_bzero(hash, sizeof(hash));
	return rc;
}
