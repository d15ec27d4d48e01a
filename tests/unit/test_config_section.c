/*
 * test_config_section.c — config_section.c: the named-section mechanism,
 * driven with a section type of the test's own ("[relay NAME]", a struct and
 * a key table, as a new kind of section is added), and through config_load
 * with popgate's [provider] type: two sections of a type, a name given twice,
 * an unknown key with its line, printing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/config_section.h"
#include "core/util.h"

#include "test_support.h"

/* ---- a section type of the test's own ------------------------------------ */

struct relay {
	char *name;
	int port;
	bool tls;
	char *ca_file;
	struct relay *next;
};

struct relays {
	struct relay *list;
};

static const struct config_key relay_keys[] = {
	{NULL, "port", CONFIG_INT, offsetof(struct relay, port), 1, 65535, NULL},
	{NULL, "tls", CONFIG_BOOL, offsetof(struct relay, tls), 0, 0, NULL},
	{NULL, "ca_file", CONFIG_NULL_PATH, offsetof(struct relay, ca_file), 0, 0, NULL},
};

static void relay_init(void *target)
{
	((struct relays *)target)->list = NULL;
}

static void *relay_open(void *target, const char *name, char *msg, size_t msglen)
{
	struct relays *relays = target;
	struct relay **tail = &relays->list;
	struct relay *relay;

	if (strchr(name, '/') != NULL) {
		snprintf(msg, msglen, "a relay name has no '/'");
		return NULL;
	}
	relay = xcalloc(1, sizeof(*relay));
	relay->name = xstrdup(name);
	relay->port = 25;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = relay;
	return relay;
}

static const void *relay_first(const void *target)
{
	return ((const struct relays *)target)->list;
}

static const void *relay_next(const void *target, const void *object)
{
	(void)target;
	return ((const struct relay *)object)->next;
}

static const char *relay_name_of(const void *object)
{
	return ((const struct relay *)object)->name;
}

static void relay_release(void *target)
{
	struct relays *relays = target;
	struct relay *relay;

	while ((relay = relays->list) != NULL) {
		relays->list = relay->next;
		free(relay->name);
		free(relay);
	}
}

static const struct config_section_type relay_type = {
	.name = "relay",
	.name_hint = "a relay name",
	.keys = relay_keys,
	.key_count = sizeof(relay_keys) / sizeof(relay_keys[0]),
	.init = relay_init,
	.open = relay_open,
	.finish = NULL,
	.first = relay_first,
	.next = relay_next,
	.name_of = relay_name_of,
	.release = relay_release,
};

static const struct config_section_type *const test_types[] = {&relay_type};

struct fixture {
	struct relays relays;
	struct config_sections sections;
	char msg[256];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	config_sections_defaults(test_types, 1, &f->relays);
	config_sections_init(&f->sections, test_types, 1, &f->relays);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	config_sections_done(&f->sections);
	config_sections_free(test_types, 1, &f->relays);
	assert_null(f->relays.list);
	free(f);
	return 0;
}

/* Two sections of one type, each with its own keys, printed in order. */
static void test_two_sections(void **state)
{
	struct fixture *f = *state;
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	assert_int_equal(config_sections_begin(&f->sections, "relay out", 1, f->msg,
					       sizeof(f->msg)),
			 1);
	assert_true(config_sections_active(&f->sections));
	assert_int_equal(config_sections_key(&f->sections, "port", "587", 2, f->msg,
					     sizeof(f->msg)),
			 0);
	assert_int_equal(config_sections_key(&f->sections, "CA_FILE", "ca.pem", 3, f->msg,
					     sizeof(f->msg)),
			 0);
	assert_int_equal(config_sections_begin(&f->sections, "RELAY   backup", 4, f->msg,
					       sizeof(f->msg)),
			 1);
	assert_int_equal(config_sections_key(&f->sections, "tls", "yes", 5, f->msg,
					     sizeof(f->msg)),
			 0);
	/* Not a type's name: a plain section, which ends the named one. */
	assert_int_equal(config_sections_begin(&f->sections, "relays", 6, f->msg,
					       sizeof(f->msg)),
			 0);
	assert_false(config_sections_active(&f->sections));
	config_sections_finish(&f->sections, "/etc/popgate");

	struct relay *out_relay = f->relays.list;
	assert_non_null(out_relay);
	assert_string_equal(out_relay->name, "out");
	assert_int_equal(out_relay->port, 587);
	assert_false(out_relay->tls);
	assert_string_equal(out_relay->ca_file, "/etc/popgate/ca.pem");
	struct relay *backup = out_relay->next;
	assert_non_null(backup);
	assert_string_equal(backup->name, "backup");
	assert_int_equal(backup->port, 25);
	assert_true(backup->tls);
	assert_null(backup->ca_file);
	assert_null(backup->next);

	out = open_memstream(&text, &len);
	assert_non_null(out);
	config_sections_write(test_types, 1, &f->relays, out);
	assert_int_equal(fclose(out), 0);
	assert_string_equal(text, "\n[relay out]\nport = 587\ntls = no\nca_file = /etc/popgate/ca.pem\n"
				  "\n[relay backup]\nport = 25\ntls = yes\nca_file =\n");
	free(text);
}

/* A name given twice (case aside) is refused, naming the first section. */
static void test_duplicate_name(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(config_sections_begin(&f->sections, "relay out", 1, f->msg,
					       sizeof(f->msg)),
			 1);
	assert_int_equal(config_sections_begin(&f->sections, "relay OUT", 7, f->msg,
					       sizeof(f->msg)),
			 -1);
	assert_string_equal(f->msg, "duplicate section [relay OUT] (first at line 1)");
	assert_int_equal(config_sections_begin(&f->sections, "relay", 8, f->msg, sizeof(f->msg)),
			 -1);
	assert_string_equal(f->msg, "section [relay] needs a relay name");
	assert_int_equal(config_sections_begin(&f->sections, "relay a/b", 9, f->msg,
					       sizeof(f->msg)),
			 -1);
	assert_string_equal(f->msg, "a relay name has no '/'");
}

/* An unknown key, a key set twice and a bad value are refused. */
static void test_key_refusals(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(config_sections_begin(&f->sections, "relay out", 1, f->msg,
					       sizeof(f->msg)),
			 1);
	assert_int_equal(config_sections_key(&f->sections, "host", "x", 2, f->msg,
					     sizeof(f->msg)),
			 -1);
	assert_string_equal(f->msg, "unknown key 'host' in [relay out]");
	assert_int_equal(config_sections_key(&f->sections, "port", "26", 3, f->msg,
					     sizeof(f->msg)),
			 0);
	assert_int_equal(config_sections_key(&f->sections, "port", "27", 4, f->msg,
					     sizeof(f->msg)),
			 -1);
	assert_string_equal(f->msg, "duplicate key 'port' in [relay out] (first set at line 3)");
	assert_int_equal(config_sections_key(&f->sections, "tls", "maybe", 5, f->msg,
					     sizeof(f->msg)),
			 -1);
	assert_string_equal(f->msg, "tls: 'maybe' is not yes or no");
}

/* ---- popgate's own [provider] sections through config_load --------------- */

static void test_provider_sections_in_a_file(void **state)
{
	char dir[TEST_DIR_SIZE];
	char path[128];
	char err[512];
	char *expected;
	struct popgate_config cfg = {0};
	static const char two[] = "[provider a.example]\nport = 110\ntls = starttls\n"
				  "[provider b.example]\nverify = no\n";
	static const char twice[] = "[provider a.example]\n\n[provider A.example]\n";
	static const char unknown[] = "[server]\nmax_line = 512\n[provider a.example]\n"
				      "port = 995\nfrobnicate = yes\n";

	(void)state;
	assert_int_equal(test_dir_make(dir, sizeof(dir), "config_section"), 0);
	snprintf(path, sizeof(path), "%s/popgate.conf", dir);

	assert_int_equal(util_write_file_atomic(path, two, strlen(two), 0644), 0);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	assert_non_null(cfg.policies);
	assert_string_equal(cfg.policies->pattern, "a.example");
	assert_int_equal(cfg.policies->port, 110);
	assert_non_null(cfg.policies->next);
	assert_string_equal(cfg.policies->next->pattern, "b.example");
	assert_false(cfg.policies->next->verify);
	assert_int_equal(cfg.policies->next->port, 995);
	assert_null(cfg.policies->next->next);
	config_free(&cfg);

	assert_int_equal(util_write_file_atomic(path, twice, strlen(twice), 0644), 0);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	expected = xasprintf("%s:3: duplicate section [provider A.example] (first at line 1)", path);
	assert_string_equal(err, expected);
	free(expected);
	config_free(&cfg);

	assert_int_equal(util_write_file_atomic(path, unknown, strlen(unknown), 0644), 0);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	expected = xasprintf("%s:5: unknown key 'frobnicate' in [provider a.example]", path);
	assert_string_equal(err, expected);
	free(expected);
	config_free(&cfg);
	assert_int_equal(test_dir_remove(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_two_sections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_refusals, setup, teardown),
		cmocka_unit_test(test_provider_sections_in_a_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
