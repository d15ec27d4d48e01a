/*
 * ctl_filter.c — popgatectl filter check: the filter chain run on one
 * message offline, in this process, with the worker's own code
 * (pipeline_judge) and the main process's (route_results_complete,
 * verdict_combine; clamav through clamd, blocking), and its verdict
 * explained as `spamassassin -t` does, with the hand-off the filters judged
 * (as if fetched from --provider); and the explanation of a recorded
 * verdict, which queue show prints too; filter list (the filters there are)
 * and filter bench (the chain's speed over many messages, as a worker and
 * the daemon run it: bench/filter.py).
 *
 * Must never: print the message's body (only the filters' words about it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ciss/policy.h"
#include "cli/ctl.h"
#include "cli/output.h"
#include "core/config.h"
#include "core/util.h"
#include "filters/bayes.h"
#include "filters/clamav.h"
#include "filters/clamd.h"
#include "filters/bayes.h"
#include "filters/filter.h"
#include "filters/rules.h"
#include "pipeline/lookup.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"
#include "pipeline/route.h"
#include "pipeline/verdict.h"
#include "store/profile.h"
#include "store/user.h"

/* The job id of a message checked offline: a valid id no spool file has
 * (nothing here opens one). */
#define CTL_FILTER_CHECK_ID "000000000000000000000000"

json_t *ctl_explanation_json(const char *explanation)
{
	struct verdict_line *lines = NULL;
	size_t count = 0;
	json_t *array = json_array();

	verdict_explanation_parse(explanation, &lines, &count);
	for (size_t i = 0; i < count; i++)
		json_array_append_new(
		    array, json_pack("{s:s, s:s, s:o, s:f, s:o, s:o}", "name", lines[i].name,
				     "status", lines[i].failed ? "failed" : "ok", "score",
				     lines[i].failed ? json_null() : json_real(lines[i].score),
				     "weight", lines[i].weight, "points",
				     lines[i].failed ? json_real(0)
						     : json_real(lines[i].score * lines[i].weight),
				     "reason", cli_json_string(lines[i].reason)));
	verdict_lines_free(&lines, count);
	return array;
}

void ctl_explanation_rows(struct cli_table *table, const char *label, const char *explanation)
{
	struct verdict_line *lines = NULL;
	size_t count = 0;

	verdict_explanation_parse(explanation, &lines, &count);
	if (count == 0)
		cli_table_add(table, (const char *const[]){label, NULL});
	for (size_t i = 0; i < count; i++) {
		char *text;

		if (lines[i].failed)
			text = xasprintf("%s failed%s%s", lines[i].name,
					 *lines[i].reason != '\0' ? ": " : "", lines[i].reason);
		else
			text = xasprintf("%s %.3f x%.3f = %.3f%s%s", lines[i].name, lines[i].score,
					 lines[i].weight, lines[i].score * lines[i].weight,
					 *lines[i].reason != '\0' ? ": " : "", lines[i].reason);
		cli_table_add(table, (const char *const[]){i == 0 ? label : "", text});
		free(text);
	}
	verdict_lines_free(&lines, count);
}

/*
 * clamav's result for the message on *FD, as the daemon would find it
 * (filters/clamav.h), into RESULT: scanned by clamd now, blocking. A
 * message on a pipe is copied into memory first, so the filters can read it
 * after clamd; *FD is then that copy (the caller closes it). When clamd
 * cannot scan it the filter fails here, where the daemon would hold the
 * message and scan it again later.
 */
static void ctl_filter_scan(int *fd, struct pipeline_result *result)
{
	struct clamav_settings settings;
	struct clamd_address address;
	struct clamd_reply reply;
	char err[256];
	struct stat st;
	off_t start = lseek(*fd, 0, SEEK_CUR);

	memset(result, 0, sizeof(*result));
	snprintf(result->name, sizeof(result->name), "%s", CLAMAV_FILTER_NAME);
	clamav_settings_load(&settings);
	if (start < 0) {
		int copy = memfd_create("popgatectl-message", MFD_CLOEXEC);
		char buf[65536];
		ssize_t n;

		while (copy >= 0 && (n = read(*fd, buf, sizeof(buf))) > 0) {
			if (write(copy, buf, (size_t)n) != n) {
				close(copy);
				copy = -1;
			}
		}
		if (copy < 0 || lseek(copy, 0, SEEK_SET) < 0) {
			result->status = PIPELINE_RESULT_FAILED;
			result->reason = xstrdup("cannot keep the message for the scan");
			return;
		}
		*fd = copy;
		start = 0;
	}
	if (fstat(*fd, &st) == 0 && (long long)(st.st_size - start) > settings.max_size) {
		clamav_result_too_large((uint64_t)(st.st_size - start), settings.max_size, result);
		return;
	}
	if (clamd_address_parse(settings.socket, &address, err, sizeof(err)) < 0 ||
	    clamd_scan_fd(&address, *fd, settings.timeout_seconds, &reply, err, sizeof(err)) < 0) {
		result->status = PIPELINE_RESULT_FAILED;
		result->reason = xasprintf("clamd (%s): %s; the daemon would hold the message "
					   "and scan it again later",
					   settings.socket, err);
	} else if (reply.verdict == CLAMD_ERROR) {
		result->status = PIPELINE_RESULT_FAILED;
		result->reason = xasprintf("clamd answered: %s; the daemon would hold the "
					   "message and scan it again later",
					   reply.text);
	} else {
		clamav_result_from_reply(&reply, result);
	}
	lseek(*fd, start, SEEK_SET);
}

/* The options and operand of 'filter check'. */
struct ctl_filter_args {
	const char *profile;
	const char *user;
	const char *provider; /* the host the message was fetched from; "-": none */
	const char *file;
};

static int ctl_filter_parse(const struct ctl_command *cmd, int argc, char **argv,
			    struct ctl_filter_args *args)
{
	char buf[256];

	memset(args, 0, sizeof(*args));
	args->provider = "-";
	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *value;

		if ((value = ctl_option("--profile", argc, argv, &i, &missing)) != NULL)
			args->profile = value;
		else if ((value = ctl_option("--user", argc, argv, &i, &missing)) != NULL)
			args->user = value;
		else if ((value = ctl_option("--provider", argc, argv, &i, &missing)) != NULL)
			args->provider = value;
		else if (missing)
			return ctl_usage_error(cmd, "%s needs a value", argv[i]);
		else if (args->file == NULL && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0))
			args->file = argv[i];
		else
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
	}
	if (args->file == NULL)
		return ctl_usage_error(cmd, "'filter check' takes a message file (or - for "
					    "standard input)");
	/* A job's provider host is at most 255 characters, of a host name's. */
	if (strcmp(args->provider, "-") != 0 &&
	    (strlen(args->provider) > 255 ||
	     strspn(args->provider, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789.-_:[]") != strlen(args->provider) ||
	     *args->provider == '\0'))
		return ctl_usage_error(cmd, "--provider: '%s' is not a host name",
				       ctl_clean(args->provider, buf, sizeof(buf)));
	return CTL_OK;
}

/* The profile and owner ARGS name into *PROFILE, *PROFILE_NAME and *USER_ID. */
static int ctl_filter_profile(struct ctl *ctl, const struct ctl_filter_args *args,
			      struct filter_profile *profile, char *profile_name, int64_t *user_id)
{
	struct store_profile *stored = xcalloc(1, sizeof(*stored));
	struct store_user user = {0};
	char buf[256];
	int found;

	*user_id = 0;
	snprintf(profile_name, STORE_PROFILE_NAME_MAX + 1, "%s", STORE_PROFILE_DEFAULT);
	if (args->user != NULL) {
		found = store_user_get(ctl->store, args->user, &user);
		*user_id = user.id;
		store_user_clear(&user);
		if (found != 1) {
			free(stored);
			return found < 0 ? ctl_refuse("cannot read the users")
					 : ctl_refuse("no user '%s'",
						      ctl_clean(args->user, buf, sizeof(buf)));
		}
		if (store_profile_of_user(ctl->store, *user_id, profile_name) < 0) {
			free(stored);
			return ctl_refuse("cannot read the user's profile");
		}
	}
	if (args->profile != NULL)
		snprintf(profile_name, STORE_PROFILE_NAME_MAX + 1, "%s", args->profile);
	found = store_profile_get(ctl->store, profile_name, stored);
	if (found != 1) {
		free(stored);
		return found < 0 ? ctl_refuse("cannot read the profile")
				 : ctl_refuse("no profile '%s'",
					      ctl_clean(profile_name, buf, sizeof(buf)));
	}
	snprintf(profile_name, STORE_PROFILE_NAME_MAX + 1, "%s", stored->name);
	store_profile_snapshot(stored, profile);
	free(stored);
	return CTL_OK;
}

/* Prints DECISION for PROFILE (named NAME), and HANDOFF. */
/*
 * Combines RESULTS into *DECISION as the daemon does, challenge-response
 * included (ciss/policy.h) as far as it is judged without the writer: a
 * sender user USER_ID does not know is challenged, or quarantined for a G4
 * rule on the message (the reason as the explanation's ciss line); whether
 * a challenge is open, the period and the caps only the daemon counts.
 */
static void ctl_filter_decide(struct ctl *ctl, const struct filter_profile *profile,
			      int64_t user_id, const struct pipeline_verdict *verdict,
			      const struct pipeline_result *results, size_t count,
			      struct verdict_decision *decision)
{
	struct ciss_plan plan;
	bool known = ciss_policy_plan(ctl->store, ctl->cfg.pseudo_domain, profile, user_id, NULL,
				      verdict, &plan) != 1;

	verdict_combine(profile, results, count, known, decision);
	if (decision->action == VERDICT_CHALLENGE) {
		char *explanation = xasprintf("%sciss\t0.000\t0.000\t%s\n", decision->explanation,
					      plan.screen_reason != NULL
						  ? plan.screen_reason
						  : "challenged (unless a challenge to the sender "
						    "is open, or the period or a "
						    "cap stops it: the daemon counts those)");

		free(decision->explanation);
		decision->explanation = explanation;
		if (plan.screen_reason != NULL)
			decision->action = VERDICT_QUARANTINE;
	}
	ciss_plan_clear(&plan);
}

static int ctl_filter_print(const struct ctl *ctl, const char *name,
			    const struct filter_profile *profile,
			    const struct verdict_decision *decision,
			    const struct filter_handoff *handoff)
{
	if (ctl->json) {
		json_t *headers = json_string(decision->spam_headers);
		json_t *found = json_null();

		if (headers == NULL)
			headers = cli_json_string(decision->spam_headers);
		if (handoff->found)
			found = json_pack("{s:o, s:o, s:o}", "address",
					  cli_json_string(handoff->address), "helo",
					  cli_json_string(handoff->helo), "reverse",
					  cli_json_string(handoff->reverse));
		return ctl_printed(cli_json_print(
		    json_pack("{s:s, s:s, s:f, s:f, s:f, s:o, s:o, s:o}", "profile", name, "action",
			      verdict_action_name(decision->action), "score", decision->score,
			      "tag_at", profile->tag_at, "quarantine_at", profile->quarantine_at,
			      "handoff", found, "filters",
			      ctl_explanation_json(decision->explanation), "headers", headers),
		    stdout));
	}
	struct cli_table *table = cli_table_new(2, NULL);
	char score[96];
	char *found;
	int rc;

	snprintf(score, sizeof(score), "%.3f (tag_at %.3f, quarantine_at %.3f)", decision->score,
		 profile->tag_at, profile->quarantine_at);
	cli_table_add(table, (const char *const[]){"profile", name});
	cli_table_add(table,
		      (const char *const[]){"action", verdict_action_name(decision->action)});
	cli_table_add(table, (const char *const[]){"score", score});
	found = handoff->found ? xasprintf("%s (helo %s, reverse %s)", handoff->address,
					   *handoff->helo != '\0' ? handoff->helo : "none",
					   *handoff->reverse != '\0' ? handoff->reverse : "none")
			       : xstrdup("none found");
	cli_table_add(table, (const char *const[]){"handoff", found});
	free(found);
	ctl_explanation_rows(table, "filters", decision->explanation);
	rc = ctl_printed(cli_table_print(table, stdout));
	cli_table_free(&table);
	return rc;
}

/*
 * Hands the rules file to the rules filter as the daemon hands it to a
 * worker; a file that is refused is said on stderr (with its line), and
 * the default rules judge alone, as a worker's would without it.
 */
static void ctl_filter_rules_file(const struct ctl *ctl)
{
	char err[512];
	char clean[sizeof(err)];
	char *text;
	size_t len;
	int fd;

	if (ctl->cfg.rules_file == NULL)
		return;
	if (rules_file_read(ctl->cfg.rules_file, &text, &len, err, sizeof(err)) < 0) {
		util_sanitize(clean, sizeof(clean), err, strlen(err));
		fprintf(stderr, "popgatectl: rules file refused: %s (the default rules are used)\n",
			clean);
		return;
	}
	fd = len > 0 ? rules_text_fd(text, len) : -1;
	if (len > 0 && fd < 0)
		fprintf(stderr, "popgatectl: rules file: %s (the default rules are used)\n",
			strerror(errno));
	if (fd >= 0)
		rules_filter_use_fd(fd);
	free(text);
}

/*
 * Readies the filters as a worker's are before its first job: the Bayes
 * database of the data folder handed over as the daemon hands it (none
 * there: the filter says it is not trained), then every filter's init.
 */
static int ctl_filter_init(const struct ctl *ctl)
{
	char *path = xasprintf("%s/%s", ctl->cfg.data_dir, BAYES_DB_NAME);
	int bayes_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	char err[512];

	free(path);
	if (bayes_fd >= 0)
		bayes_filter_use_db(bayes_fd);
	if (filter_init_all(err, sizeof(err)) < 0)
		return ctl_refuse("cannot ready the filters: %s", err);
	return CTL_OK;
}

int ctl_filter_check(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ctl_filter_args args;
	struct filter_profile profile;
	char profile_name[STORE_PROFILE_NAME_MAX + 1];
	struct pipeline_job job;
	struct pipeline_verdict verdict;
	struct pipeline_result *results = NULL;
	struct pipeline_result scan = {0};
	bool scanned = false;
	struct verdict_decision decision;
	struct filter_handoff handoff;
	size_t count;
	int64_t user_id;
	struct filter_dns *dns;
	char buf[256];
	int fd, rc;

	if ((rc = ctl_filter_parse(cmd, argc, argv, &args)) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if ((rc = ctl_filter_profile(ctl, &args, &profile, profile_name, &user_id)) != CTL_OK)
		return rc;
	fd = strcmp(args.file, "-") == 0 ? STDIN_FILENO
					 : open(args.file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return ctl_refuse("cannot open %s: %s", ctl_clean(args.file, buf, sizeof(buf)),
				  strerror(errno));
	memset(&job, 0, sizeof(job));
	memcpy(job.id, CTL_FILTER_CHECK_ID, sizeof(job.id));
	snprintf(job.account, sizeof(job.account), "filter-check");
	snprintf(job.provider_host, sizeof(job.provider_host), "%s", args.provider);
	job.received_at = util_now();
	job.source = PIPELINE_SOURCE_FETCHED;
	job.owner.user_id = user_id;
	job.profile = &profile;
	/* The filters read [spam] as a worker gets it from the daemon. */
	char *settings = config_section_text(&ctl->cfg, "spam");
	filter_settings_set(settings);
	free(settings);
	ctl_filter_rules_file(ctl);
	if ((rc = ctl_filter_init(ctl)) != CTL_OK) {
		if (fd != STDIN_FILENO)
			close(fd);
		return rc;
	}
	if (clamav_profile_runs(&profile)) {
		ctl_filter_scan(&fd, &scan);
		scanned = true;
	}
	/* DNS questions are answered as the daemon's would be: through the
	 * configured name servers, within [spam] dns_time_limit. */
	dns = lookup_local_new(ctl->cfg.nameservers, buf, sizeof(buf));
	if (dns == NULL) {
		if (fd != STDIN_FILENO)
			close(fd);
		free(scan.reason);
		return ctl_refuse("cannot start a resolver: %s", buf);
	}
	rc = pipeline_judge(fd, ctl->cfg.hostname, &job, dns, &verdict, &handoff);
	lookup_local_free(&dns);
	if (fd != STDIN_FILENO)
		close(fd);
	if (rc < 0) {
		proto_verdict_clear(&verdict);
		free(scan.reason);
		return ctl_refuse("cannot read the message");
	}
	verdict.scan = scanned ? &scan : NULL;
	count = route_results_complete(ctl->store, &job, &verdict, &results);
	ctl_filter_decide(ctl, &profile, user_id, &verdict, results, count, &decision);
	rc = ctl_filter_print(ctl, profile_name, &profile, &decision, &handoff);
	verdict_decision_clear(&decision);
	route_results_free(&results, count);
	proto_verdict_clear(&verdict);
	free(scan.reason);
	return rc;
}

int ctl_filter_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	json_t *array = ctl->json ? json_array() : NULL;
	const struct filter *filter;

	(void)argv;
	if (argc > 0)
		return ctl_usage_error(cmd, "'filter list' takes no arguments");
	for (size_t i = 0; (filter = filter_at(i)) != NULL; i++) {
		/* A filter without a run function is judged by the daemon. */
		const char *where = filter->run != NULL ? "worker" : "daemon";

		if (array != NULL)
			json_array_append_new(
			    array, json_pack("{s:s, s:s}", "name", filter->name, "runs_in", where));
		else if (printf("%s %s\n", filter->name, where) < 0)
			return ctl_printed(-1);
	}
	if (array != NULL)
		return ctl_printed(cli_json_print(array, stdout));
	return ctl_printed(fflush(stdout) != 0 ? -1 : 0);
}

/* The options and operands of 'filter bench'. */
struct ctl_bench_args {
	struct ctl_filter_args filter; /* profile and user; no file */
	unsigned long repeat;
	struct ctl_bayes_files files;
};

static int ctl_bench_parse(const struct ctl_command *cmd, int argc, char **argv,
			   struct ctl_bench_args *args)
{
	char buf[256];
	int rc;

	memset(args, 0, sizeof(*args));
	args->repeat = 1;
	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *value;

		if ((value = ctl_option("--profile", argc, argv, &i, &missing)) != NULL) {
			args->filter.profile = value;
		} else if ((value = ctl_option("--user", argc, argv, &i, &missing)) != NULL) {
			args->filter.user = value;
		} else if ((value = ctl_option("--repeat", argc, argv, &i, &missing)) != NULL) {
			char *end;

			errno = 0;
			args->repeat = strtoul(value, &end, 10);
			if (errno != 0 || *end != '\0' || args->repeat < 1 || args->repeat > 1000)
				return ctl_usage_error(cmd,
						       "--repeat takes a number from 1 to 1000");
		} else if (missing) {
			return ctl_usage_error(cmd, "%s needs a value", argv[i]);
		} else if (argv[i][0] != '-') {
			if ((rc = ctl_bayes_expand(argv[i], &args->files)) != CTL_OK)
				return rc;
		} else {
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
		}
	}
	if (args->files.count == 0)
		return ctl_usage_error(cmd, "'filter bench' takes message files or folders");
	return CTL_OK;
}

/* CPU seconds this process used so far (user and system). */
static double ctl_bench_cpu(void)
{
	struct rusage usage;

	getrusage(RUSAGE_SELF, &usage);
	return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
	       (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
}

static double ctl_bench_clock(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Judges the message in PATH as a worker and the daemon would (DNS answers
 * from DNS), counting its action into ACTIONS. 0, or -1 if it cannot be
 * read. */
static int ctl_bench_one(struct ctl *ctl, const char *path, const struct pipeline_job *job,
			 struct filter_dns *dns, size_t actions[VERDICT_HOLD + 1])
{
	struct pipeline_verdict verdict;
	struct pipeline_result *results = NULL;
	struct pipeline_result scan = {0};
	struct verdict_decision decision;
	bool scanned = clamav_profile_runs(job->profile);
	size_t count;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int rc;

	if (fd < 0)
		return -1;
	/* clamd first, as the daemon scans before a worker judges. */
	if (scanned)
		ctl_filter_scan(&fd, &scan);
	rc = pipeline_judge(fd, ctl->cfg.hostname, job, dns, &verdict, NULL);
	close(fd);
	if (rc < 0) {
		proto_verdict_clear(&verdict);
		free(scan.reason);
		return -1;
	}
	verdict.scan = scanned ? &scan : NULL;
	count = route_results_complete(ctl->store, job, &verdict, &results);
	ctl_filter_decide(ctl, job->profile, job->owner.user_id, &verdict, results, count,
			  &decision);
	actions[decision.action]++;
	verdict_decision_clear(&decision);
	route_results_free(&results, count);
	proto_verdict_clear(&verdict);
	free(scan.reason);
	return 0;
}

int ctl_filter_bench(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ctl_bench_args args;
	struct filter_profile profile;
	char profile_name[STORE_PROFILE_NAME_MAX + 1];
	size_t actions[VERDICT_HOLD + 1] = {0};
	struct filter_dns *dns = NULL;
	struct pipeline_job job;
	size_t judged = 0;
	int64_t user_id;
	char buf[256];
	int rc;

	if ((rc = ctl_bench_parse(cmd, argc, argv, &args)) != CTL_OK)
		goto done;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		goto done;
	if ((rc = ctl_filter_profile(ctl, &args.filter, &profile, profile_name, &user_id)) !=
	    CTL_OK)
		goto done;
	/* As a worker starts: [spam], the rules file and the Bayes database
	 * handed over, every filter's init (as filter check does). */
	char *settings = config_section_text(&ctl->cfg, "spam");
	filter_settings_set(settings);
	free(settings);
	ctl_filter_rules_file(ctl);
	if ((rc = ctl_filter_init(ctl)) != CTL_OK)
		goto done;
	/* One resolver for the run, as the daemon has one: the configured name
	 * servers, within [spam] dns_time_limit per message. */
	dns = lookup_local_new(ctl->cfg.nameservers, buf, sizeof(buf));
	if (dns == NULL) {
		rc = ctl_refuse("cannot start a resolver: %s", buf);
		goto done;
	}
	memset(&job, 0, sizeof(job));
	memcpy(job.id, CTL_FILTER_CHECK_ID, sizeof(job.id));
	snprintf(job.account, sizeof(job.account), "filter-bench");
	snprintf(job.provider_host, sizeof(job.provider_host), "-");
	job.received_at = util_now();
	job.source = PIPELINE_SOURCE_FETCHED;
	job.owner.user_id = user_id;
	job.profile = &profile;

	double wall = ctl_bench_clock(), cpu = ctl_bench_cpu();
	for (unsigned long round = 0; round < args.repeat; round++) {
		for (size_t i = 0; i < args.files.count; i++) {
			if (ctl_bench_one(ctl, args.files.paths[i], &job, dns, actions) < 0) {
				rc = ctl_refuse("%s: cannot be read",
						ctl_clean(args.files.paths[i], buf, sizeof(buf)));
				goto done;
			}
			judged++;
		}
	}
	wall = ctl_bench_clock() - wall;
	cpu = ctl_bench_cpu() - cpu;
	double rate = wall > 0 ? (double)judged / wall : 0;
	double per_core = cpu > 0 ? (double)judged / cpu : 0;

	if (ctl->json) {
		rc = ctl_printed(cli_json_print(
		    json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:{s:I, s:I, s:I, s:I, s:I}}",
			      "profile", profile_name, "messages", (json_int_t)judged, "seconds",
			      wall, "cpu_seconds", cpu, "messages_per_second", rate,
			      "messages_per_cpu_second", per_core, "actions", "deliver",
			      (json_int_t)actions[VERDICT_DELIVER], "tag",
			      (json_int_t)actions[VERDICT_TAG], "quarantine",
			      (json_int_t)actions[VERDICT_QUARANTINE], "challenge",
			      (json_int_t)actions[VERDICT_CHALLENGE], "hold",
			      (json_int_t)actions[VERDICT_HOLD]),
		    stdout));
		goto done;
	}
	rc = ctl_printed(
	    printf("profile %s: %zu messages in %.3f s (CPU %.3f s): %.1f messages/s, %.1f "
		   "messages/s per core; deliver %zu, tag %zu, quarantine %zu, challenge %zu, "
		   "hold %zu\n",
		   profile_name, judged, wall, cpu, rate, per_core, actions[VERDICT_DELIVER],
		   actions[VERDICT_TAG], actions[VERDICT_QUARANTINE], actions[VERDICT_CHALLENGE],
		   actions[VERDICT_HOLD]) < 0 ||
		    fflush(stdout) != 0
		? -1
		: 0);
done:
	lookup_local_free(&dns);
	ctl_bayes_files_free(&args.files);
	return rc;
}
