/*
 * fuzz_config.c — libFuzzer target for the configuration parser
 * (config_load over inih, src/core/config.c).
 *
 * config_load reads a path, so each input is written to a file in a folder
 * of this process's own (made once, removed at exit). Properties checked
 * with abort(), beyond memory safety and leaks:
 *   - a file that loads gives a configuration that passes its own checks:
 *     ports from 1 to 65535 for the server and for every provider policy, a
 *     known TLS mode and a pattern for each policy, absolute paths, retry_min
 *     not above retry_max, the limits' lower bounds;
 *   - config_write_summary's output of it loads again, and the summary of
 *     that second load is byte for byte the first one;
 *   - a file that does not load gets an error that starts with the file's
 *     path and a line number ("PATH:LINE: ...").
 *
 * Must never: write outside its own temporary folder.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs longer than this say nothing a shorter one would not. */
#define FUZZ_CONFIG_MAX_INPUT 65536

/*
 * The longest line config_load reads (inih's line buffer of 200 bytes less
 * the line end and its NUL). Relative paths grow when made absolute; config_load
 * refuses one that would no longer fit, so every summary line must.
 */
#define FUZZ_CONFIG_MAX_LINE 198

static char fuzz_dir[] = "/tmp/fuzz_config.XXXXXX";
static char input_path[sizeof(fuzz_dir) + 32];
static char summary_path[sizeof(fuzz_dir) + 32];

static void check(bool condition)
{
	if (!condition)
		abort();
}

static void fuzz_cleanup(void)
{
	unlink(input_path);
	unlink(summary_path);
	rmdir(fuzz_dir);
}

static void fuzz_setup(void)
{
	if (input_path[0] != '\0')
		return;
	check(mkdtemp(fuzz_dir) != NULL);
	snprintf(input_path, sizeof(input_path), "%s/popgate.conf", fuzz_dir);
	snprintf(summary_path, sizeof(summary_path), "%s/summary.conf", fuzz_dir);
	atexit(fuzz_cleanup);
}

static void write_file(const char *path, const void *data, size_t size)
{
	FILE *f = fopen(path, "w");

	check(f != NULL);
	check(size == 0 || fwrite(data, 1, size, f) == size);
	check(fclose(f) == 0);
}

/* The summary of CFG, as a NUL-terminated string the caller frees. */
static char *summary_of(const struct popgate_config *cfg, size_t *len)
{
	char *text = NULL;
	FILE *out = open_memstream(&text, len);

	check(out != NULL);
	check(config_write_summary(cfg, out) == 0);
	check(fclose(out) == 0);
	return text;
}

/* The length of TEXT's longest line, line end excluded. */
static size_t longest_line(const char *text, size_t len)
{
	size_t longest = 0;
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i == len || text[i] == '\n') {
			if (i - start > longest)
				longest = i - start;
			start = i + 1;
		}
	}
	return longest;
}

static bool absolute(const char *path)
{
	return path != NULL && path[0] == '/';
}

static void check_policy(const struct provider_policy *policy)
{
	check(policy->pattern != NULL && policy->pattern[0] != '\0');
	check(policy->port >= 1 && policy->port <= 65535);
	check(policy->tls == PROVIDER_TLS_IMPLICIT || policy->tls == PROVIDER_TLS_STARTTLS ||
	      policy->tls == PROVIDER_TLS_NONE);
	check(policy->ca_file == NULL || absolute(policy->ca_file));
}

/* What config_load promises of a configuration it accepted. */
static void check_loaded(const struct popgate_config *cfg)
{
	check(cfg->pop3_port >= 1 && cfg->pop3_port <= 65535);
	check(cfg->pop3s_port >= 1 && cfg->pop3s_port <= 65535);
	check(absolute(cfg->data_dir) && absolute(cfg->tls_cert) && absolute(cfg->tls_key));
	check(cfg->log_file != NULL && (strcmp(cfg->log_file, "-") == 0 || absolute(cfg->log_file)));
	check(cfg->log_level != NULL && cfg->hostname != NULL && cfg->pseudo_domain != NULL);
	check(cfg->listen_address != NULL && cfg->run_as_user != NULL);
	check(cfg->fetch_retry_min >= 1 && cfg->fetch_retry_min <= cfg->fetch_retry_max);
	check(cfg->max_line >= 255 && cfg->max_sessions >= 1 && cfg->worker_timeout >= 1);
	check(cfg->max_message_size >= 1024 && cfg->workers >= 0);
	check(strcmp(cfg->default_policy.pattern, "*") == 0);
	check_policy(&cfg->default_policy);
	for (const struct provider_policy *policy = cfg->policies; policy != NULL;
	     policy = policy->next)
		check_policy(policy);
	check((cfg->provider_allow_count == 0) || cfg->provider_allow != NULL);
	for (size_t i = 0; i < cfg->provider_allow_count; i++)
		check(cfg->provider_allow[i] != NULL && cfg->provider_allow[i][0] != '\0');
	check(config_policy_for_host(cfg, "pop.example.net") != NULL);
}

/* ERR must read "PATH:LINE: ..." with LINE a positive number. */
static void check_error(const char *err, const char *path)
{
	size_t path_len = strlen(path);
	const char *at = err + path_len;
	long line = 0;

	if (strncmp(err, path, path_len) == 0 && *at == ':') {
		at++;
		while (isdigit((unsigned char)*at) && line < 100000000)
			line = line * 10 + (*at++ - '0');
		if (line > 0 && *at == ':')
			return;
	}
	fprintf(stderr, "the error names no file and line: %s\n", err);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct popgate_config cfg = {0};
	struct popgate_config again = {0};
	char err[1024];
	char *first = NULL;
	char *second = NULL;
	size_t first_len = 0;
	size_t second_len = 0;

	if (size > FUZZ_CONFIG_MAX_INPUT)
		return 0;
	fuzz_setup();
	write_file(input_path, data, size);
	err[0] = '\0';
	if (config_load(&cfg, input_path, err, sizeof(err)) < 0) {
		check_error(err, input_path);
		config_free(&cfg);
		return 0;
	}
	check_loaded(&cfg);

	/* The summary reads back to the same configuration. */
	first = summary_of(&cfg, &first_len);
	check(longest_line(first, first_len) <= FUZZ_CONFIG_MAX_LINE);
	write_file(summary_path, first, first_len);
	err[0] = '\0';
	if (config_load(&again, summary_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "the summary does not load: %s\n", err);
		abort();
	}
	check_loaded(&again);
	second = summary_of(&again, &second_len);
	if (first_len != second_len || memcmp(first, second, first_len) != 0) {
		fprintf(stderr, "the summary changed on reload:\n%s\n--- became ---\n%s\n", first,
			second);
		abort();
	}
	free(first);
	free(second);
	config_free(&cfg);
	config_free(&again);
	return 0;
}
