/*
 * test_config_key.c — config_key.c: every key type checked and stored
 * directly through config_key_set on a struct of the test's own (as a new
 * section's struct would be), the sentence a refusal gives, a refused value
 * leaving the field as it was, config_key_free, host patterns and quoting.
 * test_config.c covers the same checks through config_load and a file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/config_key.h"
#include "core/util.h"

struct sample {
	char *text;
	char *opt_path;
	char *null_path;
	char *host;
	char *address;
	char *level;
	char *nameservers;
	char *hosts;
	int number;
	long long big;
	bool flag;
	int choice;
};

static const char *const sample_choices[] = {"first", "second", NULL};

#define SAMPLE_KEY(name, type, field, min, max)                                                    \
	{NULL, name, type, offsetof(struct sample, field), min, max, NULL}

static const struct config_key sample_keys[] = {
	SAMPLE_KEY("text", CONFIG_TEXT, text, 0, 0),
	SAMPLE_KEY("opt_path", CONFIG_OPT_PATH, opt_path, 0, 0),
	SAMPLE_KEY("null_path", CONFIG_NULL_PATH, null_path, 0, 0),
	SAMPLE_KEY("host", CONFIG_HOST, host, 0, 0),
	SAMPLE_KEY("address", CONFIG_ADDRESS, address, 0, 0),
	SAMPLE_KEY("level", CONFIG_LEVEL, level, 0, 0),
	SAMPLE_KEY("nameservers", CONFIG_NAMESERVERS, nameservers, 0, 0),
	SAMPLE_KEY("hosts", CONFIG_HOSTS, hosts, 0, 0),
	SAMPLE_KEY("number", CONFIG_INT, number, 1, 65535),
	SAMPLE_KEY("big", CONFIG_LLONG, big, 1024, 4294967296LL),
	SAMPLE_KEY("flag", CONFIG_BOOL, flag, 0, 0),
	{NULL, "choice", CONFIG_CHOICE, offsetof(struct sample, choice), 0, 0, sample_choices},
};

#define SAMPLE_KEY_COUNT (sizeof(sample_keys) / sizeof(sample_keys[0]))

static const struct config_key *sample_key(const char *name)
{
	for (size_t i = 0; i < SAMPLE_KEY_COUNT; i++) {
		if (strcmp(sample_keys[i].name, name) == 0)
			return &sample_keys[i];
	}
	fail_msg("no sample key %s", name);
	return NULL;
}

/* 0 or -1 from config_key_set; MSG holds the refusal. */
static int sample_set(struct sample *sample, const char *name, const char *value, char *msg,
		      size_t msglen)
{
	msg[0] = '\0';
	return config_key_set(sample_key(name), sample, value, msg, msglen);
}

static void sample_free(struct sample *sample)
{
	for (size_t i = 0; i < SAMPLE_KEY_COUNT; i++)
		config_key_free(&sample_keys[i], sample);
}

static void test_accepted_values_are_stored(void **state)
{
	struct sample sample = {0};
	char msg[256];
	(void)state;

	assert_int_equal(sample_set(&sample, "text", "popgate", msg, sizeof(msg)), 0);
	assert_string_equal(sample.text, "popgate");
	assert_int_equal(sample_set(&sample, "opt_path", "", msg, sizeof(msg)), 0);
	assert_string_equal(sample.opt_path, "");
	assert_int_equal(sample_set(&sample, "null_path", "ca.pem", msg, sizeof(msg)), 0);
	assert_string_equal(sample.null_path, "ca.pem");
	assert_int_equal(sample_set(&sample, "null_path", "", msg, sizeof(msg)), 0);
	assert_null(sample.null_path);
	assert_int_equal(sample_set(&sample, "host", "pop.example.net", msg, sizeof(msg)), 0);
	assert_string_equal(sample.host, "pop.example.net");
	assert_int_equal(sample_set(&sample, "address", "::1", msg, sizeof(msg)), 0);
	assert_string_equal(sample.address, "::1");
	assert_int_equal(sample_set(&sample, "level", "debug", msg, sizeof(msg)), 0);
	assert_string_equal(sample.level, "debug");
	assert_int_equal(sample_set(&sample, "nameservers", "127.0.0.1:5353, [::1]:53", msg,
				    sizeof(msg)),
			 0);
	assert_string_equal(sample.nameservers, "127.0.0.1:5353, [::1]:53");
	assert_int_equal(sample_set(&sample, "nameservers", "", msg, sizeof(msg)), 0);
	assert_int_equal(
	    sample_set(&sample, "hosts", "zen.example, bl.example  x", msg, sizeof(msg)), 0);
	assert_string_equal(sample.hosts, "zen.example, bl.example  x");
	assert_int_equal(sample_set(&sample, "hosts", "", msg, sizeof(msg)), 0);
	assert_string_equal(sample.hosts, "");
	assert_int_equal(sample_set(&sample, "number", "65535", msg, sizeof(msg)), 0);
	assert_int_equal(sample.number, 65535);
	assert_int_equal(sample_set(&sample, "big", "4294967296", msg, sizeof(msg)), 0);
	assert_true(sample.big == 4294967296LL);
	assert_int_equal(sample_set(&sample, "flag", "On", msg, sizeof(msg)), 0);
	assert_true(sample.flag);
	assert_int_equal(sample_set(&sample, "flag", "0", msg, sizeof(msg)), 0);
	assert_false(sample.flag);
	assert_int_equal(sample_set(&sample, "choice", "SECOND", msg, sizeof(msg)), 0);
	assert_int_equal(sample.choice, 1);
	sample_free(&sample);
	assert_null(sample.text);
	assert_null(sample.host);
	assert_null(sample.nameservers);
}

static void test_refusals_say_why_and_keep_the_value(void **state)
{
	static const struct {
		const char *key;
		const char *value;
		const char *msg;
	} refused[] = {
	    {"text", "", "text: empty value"},
	    {"host", "a..b", "host: 'a..b' is not a valid host name"},
	    {"address", "localhost", "address: 'localhost' is not a numeric IPv4 or IPv6 address"},
	    {"level", "loud", "level: 'loud' is not one of debug, info, warn, error"},
	    {"nameservers", "dns.example",
	     "nameservers: 'dns.example' is not a list of numeric addresses, each with an "
	     "optional port (192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53)"},
	    {"hosts", "zen.example bad..zone",
	     "hosts: 'zen.example bad..zone' is not a list of host names separated by spaces or "
	     "commas"},
	    {"number", "0", "number: '0' is not a whole number from 1 to 65535"},
	    {"number", "12x", "number: '12x' is not a whole number from 1 to 65535"},
	    {"big", "", "big: '' is not a whole number from 1024 to 4294967296"},
	    {"flag", "maybe", "flag: 'maybe' is not yes or no"},
	    {"choice", "third", "choice: 'third' is not one of first, second"},
	};
	struct sample sample = {0};
	char msg[256];
	(void)state;

	assert_int_equal(sample_set(&sample, "text", "kept", msg, sizeof(msg)), 0);
	assert_int_equal(sample_set(&sample, "host", "kept.example", msg, sizeof(msg)), 0);
	assert_int_equal(sample_set(&sample, "number", "7", msg, sizeof(msg)), 0);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_int_equal(sample_set(&sample, refused[i].key, refused[i].value, msg,
					    sizeof(msg)),
				 -1);
		assert_string_equal(msg, refused[i].msg);
	}
	assert_string_equal(sample.text, "kept");
	assert_string_equal(sample.host, "kept.example");
	assert_int_equal(sample.number, 7);
	sample_free(&sample);
}

/* Text from the file goes into an error bounded and printable. */
static void test_refusal_quotes_the_value(void **state)
{
	struct sample sample = {0};
	char msg[256];
	char *value = xmalloc(201);
	(void)state;

	memset(value, 'x', 200);
	value[0] = '\n';
	value[200] = '\0';
	assert_int_equal(sample_set(&sample, "host", value, msg, sizeof(msg)), -1);
	assert_null(strchr(msg, '\n'));
	assert_true(strlen(msg) < 64 + strlen("host: '' is not a valid host name"));
	free(value);
}

static void test_allow_list(void **state)
{
	const struct config_key *allow = NULL;
	struct popgate_config cfg;
	char msg[256];
	(void)state;

	for (size_t i = 0; i < config_key_count; i++) {
		if (config_keys[i].type == CONFIG_ALLOW)
			allow = &config_keys[i];
	}
	assert_non_null(allow);
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(config_key_set(allow, &cfg, "pop.gmx.net, *.web.de\t*", msg, sizeof(msg)),
			 0);
	assert_int_equal(cfg.provider_allow_count, 3);
	assert_string_equal(cfg.provider_allow[0], "pop.gmx.net");
	assert_string_equal(cfg.provider_allow[1], "*.web.de");
	assert_string_equal(cfg.provider_allow[2], "*");
	assert_int_equal(config_key_set(allow, &cfg, "good.example *bad", msg, sizeof(msg)), -1);
	assert_string_equal(msg, "invalid host pattern '*bad' in allow");
	config_key_free(allow, &cfg);
	assert_null(cfg.provider_allow);
	assert_int_equal(cfg.provider_allow_count, 0);
}

static void test_patterns(void **state)
{
	static const char *const valid[] = {"*", "*.example.net", "pop.example.net", "a-b_c.d"};
	static const char *const invalid[] = {"", "*.", "**", "*example.net", "a..b", ".a",
					      "a.", "a b", "*.*.net"};
	(void)state;

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		assert_true(config_valid_pattern(valid[i]));
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		assert_false(config_valid_pattern(invalid[i]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted_values_are_stored),
		cmocka_unit_test(test_refusals_say_why_and_keep_the_value),
		cmocka_unit_test(test_refusal_quotes_the_value),
		cmocka_unit_test(test_allow_list),
		cmocka_unit_test(test_patterns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
