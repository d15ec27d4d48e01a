/*
 * ctl_transport.c — popgatectl's transport commands: add a rule (its AUTH
 * password read from standard input, echo off on a terminal, and sealed to
 * the daemon's key: store/transport.h), delete one, list them (never the
 * secret, only whether there is one).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/config_key.h"
#include "core/util.h"
#include "store/transport.h"

/* Parses HOST[:PORT] (PORT 25 when left out; [v6]:PORT for an IPv6
 * literal) into *HOST_R (allocated) and *PORT_R. 0 or -1. */
static int ctl_transport_target(const char *text, char **host_r, int *port_r)
{
	const char *colon = strrchr(text, ':');
	const char *host = text, *end;
	struct in6_addr v6;
	char *port_end;
	long port = 25;

	*host_r = NULL;
	if (text[0] == '[') {
		end = strchr(text, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return -1;
		host = text + 1;
		colon = end[1] == ':' ? end + 1 : NULL;
	} else {
		end = colon != NULL ? colon : text + strlen(text);
		if (colon != NULL && strchr(text, ':') != colon)
			return -1; /* an IPv6 literal needs its brackets */
	}
	if (colon != NULL) {
		errno = 0;
		port = strtol(colon + 1, &port_end, 10);
		if (errno != 0 || *port_end != '\0' || colon[1] == '\0' || port < 1 || port > 65535)
			return -1;
	}
	*host_r = xstrndup(host, (size_t)(end - host));
	if (text[0] == '[' && inet_pton(AF_INET6, *host_r, &v6) != 1) {
		xfree(host_r);
		return -1;
	}
	if (text[0] != '[' && !config_valid_pattern(*host_r)) {
		xfree(host_r);
		return -1;
	}
	if (strchr(*host_r, '*') != NULL || **host_r == '\0') {
		xfree(host_r);
		return -1;
	}
	*port_r = (int)port;
	return 0;
}

/* The AUTH password: from the terminal with echo off, else one line of
 * standard input. */
static int ctl_transport_password(char **password_r)
{
	struct termios saved, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	int rc;

	if (tty) {
		fprintf(stderr, "password for the relay host: ");
		quiet = saved;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	rc = ctl_read_password(password_r);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
		fputc('\n', stderr);
	}
	return rc;
}

int ctl_transport_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct store_transport_rule rule = {.tls = TRANSPORT_TLS_OPPORTUNISTIC};
	const char *pattern = NULL, *target = NULL, *why;
	char *host = NULL, *password = NULL, buf[256];
	int rc, match = -1;

	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *value;

		int kind = -1;

		if ((value = ctl_option("--domain", argc, argv, &i, &missing)) != NULL)
			kind = TRANSPORT_MATCH_DOMAIN;
		else if (!missing &&
			 (value = ctl_option("--sender", argc, argv, &i, &missing)) != NULL)
			kind = TRANSPORT_MATCH_SENDER;
		if (kind >= 0) {
			if (pattern != NULL)
				return ctl_usage_error(cmd, "give one of --domain and --sender");
			pattern = value;
			match = kind;
		} else if (!missing &&
			   (value = ctl_option("--tls", argc, argv, &i, &missing)) != NULL) {
			int tls = transport_tls_parse(value);

			if (tls < 0)
				return ctl_usage_error(
				    cmd,
				    "unknown TLS mode '%s' (none, opportunistic, "
				    "required, verified)",
				    ctl_clean(value, buf, sizeof(buf)));
			rule.tls = tls;
		} else if (!missing &&
			   (value = ctl_option("--auth", argc, argv, &i, &missing)) != NULL) {
			if (*value == '\0' || strlen(value) > 255)
				return ctl_usage_error(cmd, "--auth needs a user name");
			rule.auth_user = (char *)value;
		} else if (!missing &&
			   (value = ctl_option("--position", argc, argv, &i, &missing)) != NULL) {
			char *end;
			long n;

			errno = 0;
			n = strtol(value, &end, 10);
			if (errno != 0 || *end != '\0' || n < 1 || n > INT_MAX)
				return ctl_usage_error(cmd, "--position takes a number from 1");
			rule.position = n;
		} else if (missing) {
			return ctl_usage_error(cmd, "%s needs a value", argv[i]);
		} else if (target == NULL && argv[i][0] != '-') {
			target = argv[i];
		} else {
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
		}
	}
	if (pattern == NULL || target == NULL)
		return ctl_usage_error(cmd, "give --domain P or --sender P, and HOST[:PORT]");
	why = transport_pattern_refusal(match, pattern);
	if (why != NULL)
		return ctl_usage_error(cmd, "pattern '%s': %s",
				       ctl_clean(pattern, buf, sizeof(buf)), why);
	if (ctl_transport_target(target, &host, &rule.port) < 0)
		return ctl_usage_error(cmd, "'%s' is no HOST[:PORT]",
				       ctl_clean(target, buf, sizeof(buf)));
	rule.match = match;
	rule.pattern = (char *)pattern;
	rule.host = host;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		goto done;
	if (rule.auth_user != NULL) {
		if ((rc = ctl_transport_password(&password)) != CTL_OK)
			goto done;
		if (store_transport_seal(ctl->store, password, &rule.auth_secret,
					 &rule.auth_secret_len) < 0) {
			rc = ctl_refuse(
			    "cannot seal the password: start popgate of this version once "
			    "(it publishes the key to seal with)");
			goto done;
		}
	}
	if (store_transport_add(ctl->store, &rule) < 0) {
		rc = ctl_refuse("cannot add the rule");
		goto done;
	}
	rc = ctl_changed(
	    ctl, NULL,
	    json_pack("{s:I, s:I, s:s, s:s, s:s, s:i, s:s, s:o}", "id", (json_int_t)rule.id,
		      "position", (json_int_t)rule.position, "match",
		      transport_match_name(rule.match), "pattern", pattern, "host", host, "port",
		      rule.port, "tls", transport_tls_name(rule.tls), "auth",
		      cli_json_string(rule.auth_user)),
	    "transport rule %lld added at position %lld: %s %s -> %s:%d (tls %s%s%s)",
	    (long long)rule.id, (long long)rule.position, transport_match_name(rule.match), pattern,
	    host, rule.port, transport_tls_name(rule.tls), rule.auth_user != NULL ? ", auth " : "",
	    rule.auth_user != NULL ? rule.auth_user : "");
done:
	ctl_password_free(&password);
	free(rule.auth_secret);
	free(host);
	return rc;
}

int ctl_transport_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char *end, buf[256];
	long long id;
	int rc, deleted;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one rule id")) != CTL_OK)
		return rc;
	errno = 0;
	id = strtoll(argv[0], &end, 10);
	if (errno != 0 || *end != '\0' || id < 1)
		return ctl_usage_error(cmd, "'%s' is no rule id",
				       ctl_clean(argv[0], buf, sizeof(buf)));
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	deleted = store_transport_del(ctl->store, id);
	if (deleted < 0)
		return ctl_refuse("cannot delete the rule");
	if (deleted == 0)
		return ctl_refuse("no transport rule %lld", id);
	return ctl_changed(ctl, NULL, json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1),
			   "transport rule %lld deleted", id);
}

int ctl_transport_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"ID",   "POSITION", "MATCH", "PATTERN",
					      "HOST", "PORT",	  "TLS",   "AUTH"};
	struct store_transport_rule *list = NULL;
	size_t count = 0;
	int rc;

	(void)argv;
	if (argc != 0)
		return ctl_usage_error(cmd, "'transport list' takes no arguments");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_transport_list(ctl->store, &list, &count) < 0)
		return ctl_refuse("cannot read the transport rules");
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++)
			json_array_append_new(
			    array, json_pack("{s:I, s:I, s:s, s:o, s:o, s:i, s:s, s:o}", "id",
					     (json_int_t)list[i].id, "position",
					     (json_int_t)list[i].position, "match",
					     transport_match_name(list[i].match), "pattern",
					     cli_json_string(list[i].pattern), "host",
					     cli_json_string(list[i].host), "port", list[i].port,
					     "tls", transport_tls_name(list[i].tls), "auth",
					     cli_json_string(list[i].auth_user)));
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(8, headers);

		for (size_t i = 0; i < count; i++) {
			char id[24], position[24], port[8];

			snprintf(id, sizeof(id), "%lld", (long long)list[i].id);
			snprintf(position, sizeof(position), "%lld", (long long)list[i].position);
			snprintf(port, sizeof(port), "%d", list[i].port);
			cli_table_add(table,
				      (const char *const[]){
					  id, position, transport_match_name(list[i].match),
					  list[i].pattern, list[i].host, port,
					  transport_tls_name(list[i].tls),
					  list[i].auth_user != NULL ? list[i].auth_user : "-"});
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_transport_list_free(&list, count);
	return rc;
}
