/*
 * test_config.c — config.c: defaults, the shipped example, every kind of
 * error with its line number, provider policies, patterns, paths and the
 * summary's round trip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/util.h"

#include "test_support.h"

struct fixture {
	char dir[TEST_DIR_SIZE];
	char path[128];
	struct popgate_config cfg;
	char err[512];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if (test_dir_make(f->dir, sizeof(f->dir), "config") < 0)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/popgate.conf", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = test_dir_remove(f->dir);

	config_free(&f->cfg);
	free(f);
	return rc;
}

/* Writes TEXT as the fixture's config file and loads it over the defaults. */
static int load_text(struct fixture *f, const char *text)
{
	config_free(&f->cfg);
	config_defaults(&f->cfg);
	f->err[0] = '\0';
	assert_int_equal(util_write_file_atomic(f->path, text, strlen(text), 0644), 0);
	return config_load(&f->cfg, f->path, f->err, sizeof(f->err));
}

/* Loads TEXT, expects failure with "PATH:LINE: WHAT". */
static void expect_error(struct fixture *f, const char *text, int line, const char *what)
{
	char *expected;

	assert_int_equal(load_text(f, text), -1);
	expected = xasprintf("%s:%d: %s", f->path, line, what);
	if (strcmp(f->err, expected) != 0)
		fail_msg("expected \"%s\"\n     got \"%s\"", expected, f->err);
	free(expected);
}

static void test_defaults(void **state)
{
	struct fixture *f = *state;
	char host[256] = "";

	config_defaults(&f->cfg);
	assert_string_equal(f->cfg.data_dir, "data");
	assert_string_equal(f->cfg.log_file, "-");
	assert_string_equal(f->cfg.log_level, "info");
	assert_string_equal(f->cfg.run_as_user, "popgate");
	assert_string_equal(f->cfg.worker_user, "popgate-worker");
	gethostname(host, sizeof(host) - 1);
	assert_string_equal(f->cfg.hostname, host);
	assert_int_equal(f->cfg.pop3_port, 1110);
	assert_int_equal(f->cfg.pop3s_port, 1995);
	assert_false(f->cfg.allow_plaintext_auth);
	assert_int_equal(f->cfg.max_line, 512);
	assert_int_equal(f->cfg.login_fail_delay_ms, 1000);
	assert_string_equal(f->cfg.pseudo_domain, "pop3proxy.reddoxx");
	assert_true(f->cfg.max_message_size == 67108864);
	assert_int_equal(f->cfg.fetch_retry_max, 3600);
	assert_int_equal(f->cfg.fetch_restart_spread, 300);
	assert_int_equal(f->cfg.workers, 0);
	assert_string_equal(f->cfg.default_policy.pattern, "*");
	assert_int_equal(f->cfg.default_policy.port, 995);
	assert_int_equal(f->cfg.default_policy.tls, PROVIDER_TLS_IMPLICIT);
	assert_true(f->cfg.default_policy.verify);
	assert_false(f->cfg.default_policy.allow_private);
	assert_null(f->cfg.default_policy.ca_file);
	assert_null(f->cfg.policies);
	assert_int_equal(f->cfg.provider_allow_count, 0);
}

/* The example lives at the top of the repository; find it from the working
 * folder (make runs the tests there) or from this file's own path. */
static char *example_path(void)
{
	char *copy;
	char *path;

	if (access("popgate.conf.example", R_OK) == 0)
		return xstrdup("popgate.conf.example");
	copy = xstrdup(__FILE__);
	path = xasprintf("%s/../../popgate.conf.example", dirname(copy));
	free(copy);
	return path;
}

static void test_example_loads(void **state)
{
	struct fixture *f = *state;
	char *path = example_path();
	char *copy = xstrdup(path);
	char *folder = realpath(dirname(copy), NULL);
	char *data = xasprintf("%s/data", folder);
	char *cert = xasprintf("%s/data/tls/cert.pem", folder);
	char *key = xasprintf("%s/data/tls/key.pem", folder);
	char host[256] = "";

	config_defaults(&f->cfg);
	if (config_load(&f->cfg, path, f->err, sizeof(f->err)) != 0)
		fail_msg("%s", f->err);
	assert_string_equal(f->cfg.data_dir, data);
	assert_string_equal(f->cfg.log_file, "-");
	assert_string_equal(f->cfg.tls_cert, cert);
	assert_string_equal(f->cfg.tls_key, key);
	gethostname(host, sizeof(host) - 1);
	assert_string_equal(f->cfg.hostname, host);
	assert_int_equal(f->cfg.pop3_port, 1110);
	assert_int_equal(f->cfg.pop3s_port, 1995);
	assert_int_equal(f->cfg.max_sessions_per_ip, 100);
	assert_int_equal(f->cfg.fetch_timeout, 120);
	assert_int_equal(f->cfg.worker_timeout, 60);
	assert_true(f->cfg.max_message_size == 67108864);
	assert_int_equal(f->cfg.default_policy.port, 995);
	assert_true(f->cfg.default_policy.verify);
	assert_null(f->cfg.default_policy.ca_file);
	assert_null(f->cfg.policies);
	assert_int_equal(f->cfg.provider_allow_count, 0);
	free(key);
	free(cert);
	free(data);
	free(folder);
	free(copy);
	free(path);
}

static void test_zeroed_config_gets_defaults(void **state)
{
	struct fixture *f = *state;

	memset(&f->cfg, 0, sizeof(f->cfg));
	assert_int_equal(util_write_file_atomic(f->path, "[server]\npop3_port = 2110\n", 26, 0644),
			 0);
	assert_int_equal(config_load(&f->cfg, f->path, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->cfg.pop3_port, 2110);
	assert_int_equal(f->cfg.pop3s_port, 1995);
	assert_string_equal(f->cfg.log_level, "info");
}

static void test_values(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load_text(f, "\xEF\xBB\xBF"
				      "[server]\n"
				      "POP3_PORT = 2110   ; inline comment\n"
				      "allow_plaintext_auth = On\n"
				      "  max_line = 255\n"
				      "listen_address = ::1\n"
				      "log_level = debug\n"
				      "nameservers = 127.0.0.1:5353, [::1]:53 192.0.2.53\n"
				      "[Queue]\n"
				      "max_message_size = 4294967296\n"
				      "delivered_keep_days = 0\n"
				      "[fetch]\n"
				      "timeout = 1\n"
				      "retry_min = 5\n"
				      "retry_max = 5\n"),
			 0);
	assert_int_equal(f->cfg.pop3_port, 2110);
	assert_true(f->cfg.allow_plaintext_auth);
	/* An indented line is a key of its own, not a continuation of the last. */
	assert_int_equal(f->cfg.max_line, 255);
	assert_string_equal(f->cfg.listen_address, "::1");
	assert_string_equal(f->cfg.log_level, "debug");
	assert_string_equal(f->cfg.nameservers, "127.0.0.1:5353, [::1]:53 192.0.2.53");
	assert_true(f->cfg.max_message_size == 4294967296LL);
	assert_int_equal(f->cfg.delivered_keep_days, 0);
	assert_int_equal(f->cfg.fetch_timeout, 1);
	assert_int_equal(f->cfg.fetch_retry_min, 5);
}

static void test_booleans(void **state)
{
	static const char *const yes[] = {"yes", "true", "on", "1", "YES"};
	static const char *const no[] = {"no", "false", "off", "0", "Off"};
	struct fixture *f = *state;

	for (size_t i = 0; i < 5; i++) {
		char *text = xasprintf("[server]\nallow_plaintext_auth = %s\n", yes[i]);

		assert_int_equal(load_text(f, text), 0);
		assert_true(f->cfg.allow_plaintext_auth);
		free(text);
		text = xasprintf("[provider *]\nverify = %s\n", no[i]);
		assert_int_equal(load_text(f, text), 0);
		assert_false(f->cfg.default_policy.verify);
		free(text);
	}
}

static void test_errors_name_the_line(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "[server]\npop3_port = 1\n\n# comment\nfoo = 1\n", 5,
		     "unknown key 'foo' in [server]");
	expect_error(f, "[server]\n[nope]\n", 2, "unknown section [nope]");
	expect_error(f, "pop3_port = 1\n", 1, "key 'pop3_port' outside of any section");
	expect_error(f, "[server]\n\npop3_port = 70000\n", 3,
		     "pop3_port: '70000' is not a whole number from 1 to 65535");
	expect_error(f, "[server]\npop3_port = 0\n", 2,
		     "pop3_port: '0' is not a whole number from 1 to 65535");
	expect_error(f, "[server]\npop3_port = 12abc\n", 2,
		     "pop3_port: '12abc' is not a whole number from 1 to 65535");
	expect_error(f, "[server]\nlogin_timeout = 0\n", 2,
		     "login_timeout: '0' is not a whole number from 1 to 86400");
	expect_error(f, "[server]\nmax_line = 254\n", 2,
		     "max_line: '254' is not a whole number from 255 to 65536");
	expect_error(f, "[server]\nmax_sessions = 99999999999999999999\n", 2,
		     "max_sessions: '99999999999999999999' is not a whole number from 1 to "
		     "1000000");
	expect_error(f, "[server]\nallow_plaintext_auth = maybe\n", 2,
		     "allow_plaintext_auth: 'maybe' is not yes or no");
	expect_error(f, "[server]\nlog_level = loud\n", 2,
		     "log_level: 'loud' is not one of debug, info, warn, error");
	expect_error(f, "[server]\nlisten_address = localhost\n", 2,
		     "listen_address: 'localhost' is not a numeric IPv4 or IPv6 address");
	expect_error(f, "[server]\nhostname = bad..name\n", 2,
		     "hostname: 'bad..name' is not a valid host name");
	expect_error(f, "[server]\ndata_dir =\n", 2, "data_dir: empty value");
	expect_error(f, "[server]\nnameservers = 127.0.0.1 ns.example.net\n", 2,
		     "nameservers: '127.0.0.1 ns.example.net' is not a list of numeric addresses, "
		     "each with an optional port (192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53)");
	expect_error(f, "[server]\npop3_port = 1\npop3_port = 2\n", 3,
		     "duplicate key 'pop3_port' in [server] (first set at line 2)");
	expect_error(f, "[server]\npop3_port = 1\nthis is no key\n", 3,
		     "syntax error (expected [section] or key = value)");
	expect_error(f, "[server\n", 1, "syntax error (expected [section] or key = value)");
	expect_error(f, "[fetch]\nretry_min = 100\nretry_max = 50\n", 3,
		     "retry_min (100) is larger than retry_max (50)");
	expect_error(f, "[users]\npseudo_domain = a b\n", 2,
		     "pseudo_domain: 'a b' is not a valid host name");
	/* Control bytes from the file never reach the message as they are. */
	expect_error(f, "[server]\nfo\x1bo = 1\n", 2, "unknown key 'fo?o' in [server]");
}

static void test_long_line(void **state)
{
	struct fixture *f = *state;
	char text[400];

	/* inih's buffer would split this line in two and report the wrong one. */
	snprintf(text, sizeof(text), "[server]\nhostname = %0300d\n", 1);
	assert_int_equal(load_text(f, text), -1);
	assert_non_null(strstr(f->err, "popgate.conf:2: line too long"));
}

static void test_provider_errors(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "[provider pop.gmx.net]\nport = 110\n\n[provider POP.GMX.NET]\n", 4,
		     "duplicate section [provider POP.GMX.NET] (first at line 1)");
	expect_error(f, "[provider *]\n[provider *]\n", 2,
		     "duplicate section [provider *] (first at line 1)");
	expect_error(f, "[provider *.]\n", 1, "invalid host pattern '*.' in [provider]");
	expect_error(f, "[provider a.*.de]\n", 1, "invalid host pattern 'a.*.de' in [provider]");
	expect_error(f, "[provider]\n", 1, "section [provider] needs a host name or pattern");
	expect_error(f, "[provider x.de]\ntls = ssl\n", 2,
		     "tls: 'ssl' is not one of implicit, starttls, none");
	expect_error(f, "[provider x.de]\nport = 65536\n", 2,
		     "port: '65536' is not a whole number from 1 to 65535");
	expect_error(f, "[provider x.de]\nverify = perhaps\n", 2,
		     "verify: 'perhaps' is not yes or no");
	expect_error(f, "[provider x.de]\nhost = y\n", 2, "unknown key 'host' in [provider x.de]");
	expect_error(f, "[provider x.de]\nport = 1\nport = 2\n", 3,
		     "duplicate key 'port' in [provider x.de] (first set at line 2)");
	expect_error(f, "[providers]\nallow = pop.gmx.net, *.web.de bad/host\n", 2,
		     "invalid host pattern 'bad/host' in allow");
}

static void test_provider_policies(void **state)
{
	struct fixture *f = *state;
	const struct provider_policy *p;
	char *ca;

	assert_int_equal(load_text(f, "[provider pop.gmx.net]\n"
				      "tls = starttls\n"
				      "[provider *.web.de]\n"
				      "port = 1995\n"
				      "[provider pop3.web.de]\n"
				      "tls = implicit\n"
				      "[provider empty.example]\n"
				      "[provider *]\n"
				      "ca_file = ca.pem\n"
				      "verify = no\n"
				      "allow_private = yes\n"
				      "tls = none\n"
				      "[provider plain.example]\n"
				      "port = 2110\n"
				      "verify = yes\n"),
			 0);
	ca = xasprintf("%s/ca.pem", f->dir);
	/* [provider *] with tls = none and no port gets port 110. */
	assert_int_equal(f->cfg.default_policy.port, 110);
	assert_int_equal(f->cfg.default_policy.tls, PROVIDER_TLS_NONE);
	assert_string_equal(f->cfg.default_policy.ca_file, ca);

	p = config_policy_for_host(&f->cfg, "POP.gmx.net");
	assert_string_equal(p->pattern, "pop.gmx.net");
	assert_int_equal(p->tls, PROVIDER_TLS_STARTTLS);
	assert_int_equal(p->port, 110);
	/* Inherited from [provider *], though that section comes later. */
	assert_false(p->verify);
	assert_true(p->allow_private);
	assert_string_equal(p->ca_file, ca);

	/* First match in file order: the pattern before the exact host. */
	p = config_policy_for_host(&f->cfg, "pop3.web.de");
	assert_string_equal(p->pattern, "*.web.de");
	assert_int_equal(p->port, 1995);
	assert_int_equal(p->tls, PROVIDER_TLS_NONE);

	p = config_policy_for_host(&f->cfg, "empty.example");
	assert_string_equal(p->pattern, "empty.example");
	assert_int_equal(p->port, 110);

	p = config_policy_for_host(&f->cfg, "plain.example");
	assert_int_equal(p->port, 2110);
	assert_true(p->verify);

	p = config_policy_for_host(&f->cfg, "web.de");
	assert_ptr_equal(p, &f->cfg.default_policy);
	p = config_policy_for_host(&f->cfg, "other.example");
	assert_ptr_equal(p, &f->cfg.default_policy);
	free(ca);

	assert_int_equal(load_text(f, "[provider imap.example]\ntls = implicit\n"), 0);
	assert_int_equal(f->cfg.policies->port, 995);
	assert_int_equal(f->cfg.default_policy.port, 995);
}

static void test_allow_list(void **state)
{
	struct fixture *f = *state;

	assert_true(config_host_allowed(&f->cfg, "anything.example"));
	assert_int_equal(
		load_text(f, "[providers]\nallow = pop.gmx.net,*.web.de ,\t mail.Example\n"), 0);
	assert_int_equal(f->cfg.provider_allow_count, 3);
	assert_string_equal(f->cfg.provider_allow[1], "*.web.de");
	assert_true(config_host_allowed(&f->cfg, "pop.gmx.net"));
	assert_true(config_host_allowed(&f->cfg, "pop3.WEB.de"));
	assert_true(config_host_allowed(&f->cfg, "mail.example"));
	assert_false(config_host_allowed(&f->cfg, "web.de"));
	assert_false(config_host_allowed(&f->cfg, "gmx.net"));
	assert_false(config_host_allowed(&f->cfg, "10.0.0.1"));

	assert_int_equal(load_text(f, "[providers]\nallow =\n"), 0);
	assert_int_equal(f->cfg.provider_allow_count, 0);
	assert_true(config_host_allowed(&f->cfg, "10.0.0.1"));
}

/* A relative path that would not fit on a line of `config show` once made
 * absolute is refused, so the summary always reads back. */
static void test_path_too_long_once_absolute(void **state)
{
	struct fixture *f = *state;
	char name[186]; /* a line of 196 characters, within the 198 a line holds */
	char *text;

	memset(name, 'd', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	text = xasprintf("[server]\n\ndata_dir = %s\n", name);
	assert_int_equal(load_text(f, text), -1);
	assert_non_null(strstr(f->err, ":3: data_dir is "));
	assert_non_null(strstr(f->err, "once made absolute"));
	free(text);

	/* An absolute data_dir of 180 characters fits; tls_cert derived from it
	 * (13 more) does not, and the error names data_dir's line. */
	name[0] = '/';
	name[180] = '\0';
	text = xasprintf("[server]\ndata_dir = %s\n", name);
	assert_int_equal(load_text(f, text), -1);
	assert_non_null(strstr(f->err, ":2: tls_cert is 193 characters long"));
	free(text);
}

static void test_host_ipv4_literals(void **state)
{
	struct fixture *f = *state;

	/* Without an allow-list a canonical dotted quad passes (the address
	 * policy judges it later); other ways to write an IPv4 address are
	 * refused, and an allow-list entry cannot let them through. */
	assert_true(config_host_allowed(&f->cfg, "127.0.0.1"));
	assert_true(config_host_allowed(&f->cfg, "pop.example"));
	assert_false(config_host_allowed(&f->cfg, "0177.0.0.1"));
	assert_false(config_host_allowed(&f->cfg, "0x7f.1"));
	assert_false(config_host_allowed(&f->cfg, "127.1"));
	assert_false(config_host_allowed(&f->cfg, "2130706433"));
	assert_false(config_host_allowed(&f->cfg, "127.0.0.001"));
	assert_int_equal(load_text(f, "[providers]\nallow = 0177.0.0.1, 127.1, *.1\n"), 0);
	assert_false(config_host_allowed(&f->cfg, "0177.0.0.1"));
	assert_false(config_host_allowed(&f->cfg, "127.1"));
	assert_true(config_host_allowed(&f->cfg, "10.0.0.1"));
}

static void test_pattern_match(void **state)
{
	(void)state;
	assert_true(config_pattern_match("*", "anything"));
	assert_true(config_pattern_match("*", ""));
	assert_true(config_pattern_match("pop.gmx.net", "pop.gmx.net"));
	assert_true(config_pattern_match("pop.gmx.net", "POP.GMX.NET"));
	assert_false(config_pattern_match("pop.gmx.net", "pop.gmx.net.evil"));
	assert_false(config_pattern_match("pop.gmx.net", "xpop.gmx.net"));
	assert_true(config_pattern_match("*.web.de", "pop3.web.de"));
	assert_true(config_pattern_match("*.web.de", "a.b.WEB.DE"));
	assert_false(config_pattern_match("*.web.de", "web.de"));
	assert_false(config_pattern_match("*.web.de", ".web.de"));
	assert_false(config_pattern_match("*.web.de", "evilweb.de"));
	assert_false(config_pattern_match("*.web.de", "web.de.evil"));
	assert_false(config_pattern_match("*.web.de", ""));
}

static void test_paths(void **state)
{
	struct fixture *f = *state;
	char *expected;

	assert_int_equal(load_text(f, "[server]\n"
				      "data_dir = var/popgate\n"
				      "log_file = log/popgate.log\n"
				      "tls_key = /etc/popgate/key.pem\n"
				      "[provider x.example]\n"
				      "ca_file = ../ca.pem\n"),
			 0);
	expected = xasprintf("%s/var/popgate", f->dir);
	assert_string_equal(f->cfg.data_dir, expected);
	free(expected);
	expected = xasprintf("%s/log/popgate.log", f->dir);
	assert_string_equal(f->cfg.log_file, expected);
	free(expected);
	/* An empty tls_cert is derived from the data folder; a set one is kept. */
	expected = xasprintf("%s/var/popgate/tls/cert.pem", f->dir);
	assert_string_equal(f->cfg.tls_cert, expected);
	free(expected);
	assert_string_equal(f->cfg.tls_key, "/etc/popgate/key.pem");
	expected = xasprintf("%s/../ca.pem", f->dir);
	assert_string_equal(f->cfg.policies->ca_file, expected);
	free(expected);

	/* "-" is standard error for log_file only; any other path named "-"
	 * is a file of that name beside the configuration (found by fuzz_config:
	 * data_dir = - stayed relative). */
	assert_int_equal(load_text(f, "[server]\ndata_dir = -\nlog_file = -\ntls_key = -\n"), 0);
	expected = xasprintf("%s/-", f->dir);
	assert_string_equal(f->cfg.data_dir, expected);
	assert_string_equal(f->cfg.tls_key, expected);
	free(expected);
	assert_string_equal(f->cfg.log_file, "-");
}

static void test_missing_file(void **state)
{
	struct fixture *f = *state;
	char *path = xasprintf("%s/none.conf", f->dir);

	config_defaults(&f->cfg);
	assert_int_equal(config_load(&f->cfg, path, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "none.conf: No such file"));
	free(path);
}

/* Runs config_write_summary into a string. */
static char *summary(const struct popgate_config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	assert_non_null(out);
	assert_int_equal(config_write_summary(cfg, out), 0);
	fclose(out);
	return text;
}

static void test_summary_round_trip(void **state)
{
	struct fixture *f = *state;
	struct popgate_config again;
	char *first;
	char *second;
	char *path = xasprintf("%s/summary.conf", f->dir);

	assert_int_equal(load_text(f, "[server]\n"
				      "pop3_port = 2110\n"
				      "hostname = gate.example\n"
				      "[providers]\n"
				      "allow = pop.gmx.net *.web.de\n"
				      "[provider pop.gmx.net]\n"
				      "tls = starttls\n"
				      "verify = no\n"
				      "[provider *]\n"
				      "ca_file = /etc/ssl/ca.pem\n"),
			 0);
	first = summary(&f->cfg);
	assert_non_null(strstr(first, "[server]\n"));
	assert_non_null(strstr(first, "\npop3_port = 2110\n"));
	assert_non_null(strstr(first, "\nhostname = gate.example\n"));
	assert_non_null(strstr(first, "\nallow = pop.gmx.net *.web.de\n"));
	assert_non_null(strstr(first, "\n[fetch]\ntimeout = 120\n"));
	assert_non_null(strstr(first, "\n[provider pop.gmx.net]\nport = 110\ntls = starttls\n"
				      "ca_file = /etc/ssl/ca.pem\nverify = no\n"));
	assert_int_equal(util_write_file_atomic(path, first, strlen(first), 0644), 0);
	config_defaults(&again);
	if (config_load(&again, path, f->err, sizeof(f->err)) != 0)
		fail_msg("%s", f->err);
	second = summary(&again);
	assert_string_equal(first, second);
	config_free(&again);
	free(second);
	free(first);
	free(path);
}

/* SIGHUP: keys only a restart can change keep their running value, and
 * their names are given for the warning; the others are taken. */
static void test_keep_restart_keys(void **state)
{
	struct fixture *f = *state;
	struct popgate_config running = {0};
	char names[200];

	assert_int_equal(load_text(f, "[server]\npop3_port = 2110\nmax_bad_commands = 3\n"), 0);
	config_defaults(&running);
	assert_int_equal(config_load(&running, f->path, f->err, sizeof(f->err)), 0);
	assert_int_equal(load_text(f, "[server]\npop3_port = 2111\nuser = other\n"
				      "max_bad_commands = 4\n[pipeline]\nworkers = 3\n"),
			 0);
	assert_int_equal(config_keep_restart_keys(&f->cfg, &running, names, sizeof(names)), 3);
	assert_string_equal(names, "[server] user, [server] pop3_port, [pipeline] workers");
	assert_int_equal(f->cfg.pop3_port, 2110);
	assert_string_equal(f->cfg.run_as_user, "popgate");
	assert_int_equal(f->cfg.workers, 0);
	assert_int_equal(f->cfg.max_bad_commands, 4);
	/* Nothing to keep: no names. */
	assert_int_equal(config_keep_restart_keys(&f->cfg, &running, names, sizeof(names)), 0);
	assert_string_equal(names, "");
	/* A short buffer cuts the names, never the count. */
	assert_int_equal(load_text(f, "[server]\npop3_port = 2111\nuser = other\n"), 0);
	assert_int_equal(config_keep_restart_keys(&f->cfg, &running, names, 8), 2);
	assert_int_equal(strlen(names), 7);
	config_free(&running);
}

/* [depot]: the defaults, and SIGHUP keeps whether the daemon archives (its
 * thread was made at start-up) but takes a new retry wait. */
static void test_depot_section(void **state)
{
	struct fixture *f = *state;
	struct popgate_config running = {0};
	char names[200];

	config_defaults(&running);
	assert_false(running.depot_enabled);
	assert_int_equal(running.depot_retention_days, 3653);
	assert_int_equal(running.depot_checkpoint_interval, 3600);
	assert_int_equal(running.depot_batch, 256);
	assert_int_equal(running.depot_retry, 60);
	assert_int_equal(load_text(f, "[depot]\nenabled = no\n"), 0);
	assert_int_equal(config_load(&running, f->path, f->err, sizeof(f->err)), 0);
	assert_int_equal(load_text(f, "[depot]\nenabled = yes\nbatch = 0\n"), -1);
	assert_int_equal(load_text(f, "[depot]\nenabled = yes\nbatch = 64\nretry = 5\n"
				      "checkpoint_interval = 0\n"),
			 0);
	assert_true(f->cfg.depot_enabled);
	assert_int_equal(config_keep_restart_keys(&f->cfg, &running, names, sizeof(names)), 3);
	assert_string_equal(names, "[depot] enabled, [depot] checkpoint_interval, [depot] batch");
	assert_false(f->cfg.depot_enabled);
	assert_int_equal(f->cfg.depot_batch, 256);
	assert_int_equal(f->cfg.depot_checkpoint_interval, 3600);
	assert_int_equal(f->cfg.depot_retry, 5);
	config_free(&running);
}

static void test_config_free(void **state)
{
	struct fixture *f = *state;

	config_free(NULL);
	assert_int_equal(load_text(f, "[provider a.example]\n[providers]\nallow = a.example\n"), 0);
	config_free(&f->cfg);
	assert_null(f->cfg.data_dir);
	assert_null(f->cfg.policies);
	assert_null(f->cfg.provider_allow);
	/* A second free of the zeroed struct is harmless. */
	config_free(&f->cfg);
}

/* [web]: the defaults, its values, a base URL or From that could not go into
 * a mail or a page as it is refused, its port kept over a reload. */
static void test_web_section(void **state)
{
	struct fixture *f = *state;
	struct popgate_config fresh;
	char names[200];

	assert_int_equal(load_text(f, "[server]\n"), 0);
	assert_int_equal(f->cfg.web_port, 1443);
	assert_string_equal(f->cfg.web_base_url, "");
	assert_string_equal(f->cfg.web_challenge_from, "");
	assert_int_equal(f->cfg.web_max_wrong_codes, 5);
	assert_int_equal(load_text(f,
				   "[web]\nport = 0\nbase_url = https://mail.example.org/x\n"
				   "challenge_from = ciss@example.org\nrequests_per_minute = 10\n"),
			 0);
	assert_int_equal(f->cfg.web_port, 0);
	assert_string_equal(f->cfg.web_base_url, "https://mail.example.org/x");
	assert_string_equal(f->cfg.web_challenge_from, "ciss@example.org");
	assert_int_equal(f->cfg.web_requests_per_minute, 10);
	expect_error(f, "[web]\n\nbase_url = ftp://x.example\n", 3,
		     "base_url must be an http(s) URL without blanks or quotes");
	expect_error(f, "[web]\nbase_url = https://x.example/\"><script>\n", 2,
		     "base_url must be an http(s) URL without blanks or quotes");
	expect_error(f, "[web]\nchallenge_from = not an address\n", 2,
		     "challenge_from is not a mail address");
	expect_error(f, "[web]\nmax_wrong_codes = 0\n", 2,
		     "max_wrong_codes: '0' is not a whole number from 1 to 1000");

	assert_int_equal(load_text(f, "[web]\nport = 2443\n"), 0);
	config_defaults(&fresh);
	assert_int_equal(config_keep_restart_keys(&fresh, &f->cfg, names, sizeof(names)) > 0, 1);
	assert_int_equal(fresh.web_port, 2443);
	assert_non_null(strstr(names, "[web] port"));
	config_free(&fresh);
}
int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_web_section, setup, teardown),
		cmocka_unit_test_setup_teardown(test_depot_section, setup, teardown),
		cmocka_unit_test_setup_teardown(test_example_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zeroed_config_gets_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_booleans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_name_the_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provider_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provider_policies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_ipv4_literals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pattern_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_summary_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path_too_long_once_absolute, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_restart_keys, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
