/*
 * ctl_dkim.c — popgatectl's DKIM commands: dkim keygen (a key pair for a
 * domain, stored sealed, and the DNS record to publish), list, show (the
 * record again), del, and sign (prints the signature a message file would
 * get, for checking the setup).
 *
 * The one exception to popgatectl never loading the credential key: keygen
 * seals the new private key with it, and show and sign open it (the DNS
 * record is derived from the private key, the only half stored). The key is
 * read, never created (that is the daemon's first start), and wiped before
 * the command ends. Must never: print or log a private key.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/crypto.h"
#include "core/util.h"
#include "smtp/dkim.h"
#include "store/dkim.h"

/* Loads the daemon's credential key from the data folder into *KEY. */
static int ctl_dkim_credential(const struct ctl *ctl, struct crypto_key *key)
{
	char *path = xasprintf("%s/secret.key", ctl->cfg.data_dir);
	char err[512];
	int rc = CTL_OK;

	/* Never made here: a key made by popgatectl (perhaps as root) could
	 * differ from the daemon's or be unreadable for it. */
	if (access(path, F_OK) < 0)
		rc = ctl_refuse("no credential key at %s (has popgate been started with this "
				"configuration?)",
				path);
	else if (crypto_init() < 0 || crypto_key_load_or_create(key, path, err, sizeof(err)) < 0)
		rc = ctl_refuse("cannot load the credential key: %s", err);
	free(path);
	return rc;
}

/* ARG lowercased into *DOMAIN_R (allocated) if it is a domain popgate can
 * sign for, else a refusal. */
static int ctl_dkim_domain(const char *arg, char **domain_r)
{
	char *domain = xstrdup(arg);
	char clean[300];

	*domain_r = NULL;
	for (char *p = domain; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (!store_dkim_domain_valid(domain)) {
		free(domain);
		return ctl_refuse("'%s' is not a domain name (labels of letters, digits and '-', "
				  "at least one dot, no trailing dot)",
				  ctl_clean(arg, clean, sizeof(clean)));
	}
	*domain_r = domain;
	return CTL_OK;
}

/* The zone line and the record value of KEY (with its private key), into
 * *LINE_R and *VALUE_R (allocated). */
static int ctl_dkim_record(const struct store_dkim_key *key, char **line_r, char **value_r)
{
	char err[512];

	*line_r = NULL;
	if (dkim_record_value(key->algorithm, key->private_key, value_r, err, sizeof(err)) < 0)
		return ctl_refuse("the stored key of %s is unusable: %s", key->domain, err);
	*line_r = dkim_record_line(key->domain, key->selector, *value_r);
	return CTL_OK;
}

static json_t *ctl_dkim_json(const struct store_dkim_key *key, const char *value, const char *line)
{
	json_t *json = json_pack("{s:o, s:o, s:s, s:o}", "domain", cli_json_string(key->domain),
				 "selector", cli_json_string(key->selector), "algorithm",
				 store_dkim_algorithm_name(key->algorithm), "created",
				 cli_json_time(key->created_at));

	if (value != NULL) {
		char *name = xasprintf("%s._domainkey.%s.", key->selector, key->domain);

		json_object_set_new(json, "record",
				    json_pack("{s:o, s:s, s:o, s:o}", "name", cli_json_string(name),
					      "type", "TXT", "value", cli_json_string(value),
					      "zone_line", cli_json_string(line)));
		free(name);
	}
	return json;
}

int ctl_dkim_keygen(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct store_dkim_key key = {0};
	struct crypto_key credential;
	const char *domain_arg = NULL, *selector = NULL, *algorithm = "rsa";
	char *value = NULL, *line = NULL;
	char default_selector[32], clean[300], err[512];
	bool replace = false, have_credential = false;
	int rc, stored;

	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *v;

		if ((v = ctl_option("--selector", argc, argv, &i, &missing)) != NULL)
			selector = v;
		else if ((v = ctl_option("--algorithm", argc, argv, &i, &missing)) != NULL)
			algorithm = v;
		else if (strcmp(argv[i], "--replace") == 0)
			replace = true;
		else if (missing)
			return ctl_usage_error(cmd, "'%s' needs a value", argv[i]);
		else if (argv[i][0] == '-' || domain_arg != NULL)
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], clean, sizeof(clean)));
		else
			domain_arg = argv[i];
	}
	if (domain_arg == NULL)
		return ctl_usage_error(cmd, "'dkim keygen' takes a domain");
	if (store_dkim_algorithm_parse(algorithm, &key.algorithm) < 0)
		return ctl_usage_error(cmd, "--algorithm is rsa or ed25519, not '%s'",
				       ctl_clean(algorithm, clean, sizeof(clean)));
	if (selector == NULL) {
		dkim_default_selector(default_selector, sizeof(default_selector), util_now());
		selector = default_selector;
	}
	if (!store_dkim_selector_valid(selector))
		return ctl_usage_error(cmd,
				       "'%s' is not a selector (labels of letters, digits and '-')",
				       ctl_clean(selector, clean, sizeof(clean)));
	if ((rc = ctl_dkim_domain(domain_arg, &key.domain)) != CTL_OK)
		return rc;
	key.selector = xstrdup(selector);
	for (char *p = key.selector; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		goto done;
	if ((rc = ctl_dkim_credential(ctl, &credential)) != CTL_OK)
		goto done;
	have_credential = true;
	rc = CTL_REFUSED;
	if (dkim_key_generate(key.algorithm, &key.private_key, err, sizeof(err)) < 0) {
		ctl_refuse("%s", err);
		goto done;
	}
	/* The record first: a key whose record cannot be made is not stored. */
	if ((rc = ctl_dkim_record(&key, &line, &value)) != CTL_OK)
		goto done;
	stored = store_dkim_put(ctl->store, &credential, &key, replace);
	if (stored == -2) {
		rc = ctl_refuse("%s has a DKIM key already (see 'dkim show %s'); --replace makes a "
				"new one",
				key.domain, key.domain);
		goto done;
	}
	if (stored < 0) {
		rc = ctl_refuse("cannot store the key");
		goto done;
	}
	key.created_at = util_now();
	rc = ctl_changed(ctl, NULL, ctl_dkim_json(&key, value, line),
			 "dkim key for %s %s (%s, selector %s)", key.domain,
			 stored == 1 ? "replaced" : "made",
			 store_dkim_algorithm_name(key.algorithm), key.selector);
	if (rc == CTL_OK && !ctl->json)
		rc = ctl_printed(
		    printf("publish this DNS record:\n%s\n", line) < 0 || fflush(stdout) != 0 ? -1
											      : 0);
done:
	if (have_credential)
		crypto_key_wipe(&credential);
	free(line);
	free(value);
	store_dkim_key_clear(&key);
	return rc;
}

int ctl_dkim_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"DOMAIN", "SELECTOR", "ALGORITHM", "CREATED"};
	struct store_dkim_key *keys = NULL;
	size_t count = 0;
	int rc;

	(void)argv;
	if (argc > 0)
		return ctl_usage_error(cmd, "'dkim list' takes no arguments");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_dkim_list(ctl->store, &keys, &count) < 0)
		return ctl_refuse("cannot read the DKIM keys");
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++)
			json_array_append_new(array, ctl_dkim_json(&keys[i], NULL, NULL));
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(4, headers);

		for (size_t i = 0; i < count; i++) {
			char created[CLI_TIME_LEN];
			const char *cells[4] = {keys[i].domain, keys[i].selector,
						store_dkim_algorithm_name(keys[i].algorithm),
						created};

			cli_format_time(keys[i].created_at, created);
			cli_table_add(table, cells);
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_dkim_list_free(&keys, count);
	return rc;
}

/* Loads the key of the domain ARG with its private key into *KEY. */
static int ctl_dkim_load(struct ctl *ctl, const char *arg, struct store_dkim_key *key)
{
	struct crypto_key credential;
	char *domain = NULL;
	int rc, found;

	memset(key, 0, sizeof(*key));
	if ((rc = ctl_dkim_domain(arg, &domain)) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK ||
	    (rc = ctl_dkim_credential(ctl, &credential)) != CTL_OK) {
		free(domain);
		return rc;
	}
	found = store_dkim_get(ctl->store, &credential, domain, key);
	crypto_key_wipe(&credential);
	if (found == 0)
		rc = ctl_refuse("no DKIM key for %s", domain);
	else if (found < 0)
		rc = ctl_refuse("cannot read the DKIM key of %s (sealed with another credential "
				"key?)",
				domain);
	free(domain);
	return rc;
}

int ctl_dkim_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct store_dkim_key key;
	char *value = NULL, *line = NULL;
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one domain")) != CTL_OK)
		return rc;
	if ((rc = ctl_dkim_load(ctl, argv[0], &key)) != CTL_OK)
		return rc;
	if ((rc = ctl_dkim_record(&key, &line, &value)) != CTL_OK)
		goto done;
	if (ctl->json) {
		rc = ctl_printed(cli_json_print(ctl_dkim_json(&key, value, line), stdout));
	} else {
		struct cli_table *table = cli_table_new(2, NULL);
		char created[CLI_TIME_LEN];

		cli_format_time(key.created_at, created);
		cli_table_add(table, (const char *const[]){"domain", key.domain});
		cli_table_add(table, (const char *const[]){"selector", key.selector});
		cli_table_add(table, (const char *const[]){
					 "algorithm", store_dkim_algorithm_name(key.algorithm)});
		cli_table_add(table, (const char *const[]){"created", created});
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
		if (rc == CTL_OK)
			rc = ctl_printed(
			    printf("DNS record:\n%s\n", line) < 0 || fflush(stdout) != 0 ? -1 : 0);
	}
done:
	free(line);
	free(value);
	store_dkim_key_clear(&key);
	return rc;
}

int ctl_dkim_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char *domain = NULL;
	int rc, deleted;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one domain")) != CTL_OK)
		return rc;
	if ((rc = ctl_dkim_domain(argv[0], &domain)) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		goto done;
	deleted = store_dkim_delete(ctl->store, domain);
	if (deleted == 0)
		rc = ctl_refuse("no DKIM key for %s", domain);
	else if (deleted < 0)
		rc = ctl_refuse("cannot delete the DKIM key of %s", domain);
	else
		rc = ctl_changed(
		    ctl, NULL,
		    json_pack("{s:o, s:b}", "domain", cli_json_string(domain), "deleted", 1),
		    "dkim key for %s deleted (mail from it now goes unsigned)", domain);
done:
	free(domain);
	return rc;
}

int ctl_dkim_sign(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct dkim_keyring *ring = NULL;
	struct crypto_key credential;
	char *domain = NULL, *header = NULL;
	char err[512], clean[300];
	int fd, rc, signed_;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one message file")) != CTL_OK)
		return rc;
	fd = open(argv[0], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ctl_refuse("cannot open %s: %s", ctl_clean(argv[0], clean, sizeof(clean)),
				  strerror(errno));
	/* The domain only for the messages below: the ring finds it again. */
	rc = dkim_message_from_domain(NULL, fd, &domain, err, sizeof(err));
	if (rc <= 0) {
		rc = rc < 0 ? ctl_refuse("%s", err)
			    : ctl_refuse("the message has no From address to sign for");
		goto done;
	}
	if ((rc = ctl_open_store(ctl)) != CTL_OK ||
	    (rc = ctl_dkim_credential(ctl, &credential)) != CTL_OK)
		goto done;
	/* The relay's own path: the ring of every key, then its signing call. */
	rc = dkim_keyring_load(ctl->store, &credential, &ring);
	crypto_key_wipe(&credential);
	if (rc < 0) {
		rc = ctl_refuse("cannot read the DKIM keys");
		goto done;
	}
	signed_ = dkim_keyring_sign(ring, NULL, fd, &header, err, sizeof(err));
	if (signed_ <= 0) {
		rc = signed_ == 0
			 ? ctl_refuse("no DKIM key for %s", ctl_clean(domain, clean, sizeof(clean)))
			 : ctl_refuse("cannot sign: %s", err);
		goto done;
	}
	if (ctl->json)
		rc = ctl_printed(
		    cli_json_print(json_pack("{s:o, s:o}", "domain", cli_json_string(domain),
					     "header", json_string(header)),
				   stdout));
	else
		rc = ctl_printed(fputs(header, stdout) < 0 || fflush(stdout) != 0 ? -1 : 0);
done:
	dkim_keyring_free(&ring);
	free(header);
	free(domain);
	close(fd);
	return rc;
}
