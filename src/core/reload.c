/*
 * reload.c — SIGHUP (the log reopened for logrotate, the configuration read
 * again) and the restart spread (the start-up fetches spread over time).
 * popgate.c starts both; nothing else calls in here.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "core/config.h"
#include "core/log.h"
#include "core/reload.h"
#include "core/util.h"
#include "filters/rules.h"
#include "pipeline/pipeline.h"
#include "pop3/fetch.h"
#include "popgate.h"
#include "store/account.h"

/* How often configurations a reload replaced are looked at again, while
 * there are some, to free them once nothing can point into them. */
#define RELOAD_SWEEP_SECONDS 60

/* ---- SIGHUP: the log and the configuration ------------------------------ */

/*
 * What a reload needs. Configurations replaced by a reload are kept
 * (retired) while a provider connection may still point into one (fetch.c
 * keeps the host's policy, conn->policy): they are freed once no fetch or
 * login check runs. Every other module reads pg->cfg when it needs a value,
 * so the swap itself is safe at any time in the loop.
 */
struct reload {
	struct popgate *pg;
	char *config_path; /* absolute: the working directory changes at start */
	reload_changed_fn *changed;
	void *changed_ctx;
	struct event *sighup;
	struct event *sweep; /* pending while retired configurations wait */
	struct retired_config *retired;
};

struct retired_config {
	struct popgate_config *cfg;
	struct retired_config *next;
};

void reload_config_free(struct popgate_config **cfg_p)
{
	if (*cfg_p == NULL)
		return;
	config_free(*cfg_p);
	free(*cfg_p);
	*cfg_p = NULL;
}

/* Frees the retired configurations once nothing can point into them. */
static void reload_sweep(struct reload *reload, bool force)
{
	struct retired_config *old;

	if (!force && reload->pg->fetcher != NULL &&
	    fetcher_active(reload->pg->fetcher) + fetcher_checks(reload->pg->fetcher) > 0)
		return;
	while ((old = reload->retired) != NULL) {
		reload->retired = old->next;
		reload_config_free(&old->cfg);
		free(old);
	}
	if (reload->sweep != NULL)
		event_del(reload->sweep);
}

static void reload_sweep_cb(evutil_socket_t fd, short what, void *ctx)
{
	(void)fd;
	(void)what;
	reload_sweep(ctx, false);
}

/*
 * Reopens the log at PATH (a rotated file is left to logrotate; the new one
 * is created, O_NOFOLLOW as at start). The old file stays in use if the new
 * one cannot be opened; the workers' spawner gets the new one too. 0 or -1
 * (logged).
 */
static int reload_log(struct popgate *pg, const char *path, const char *level_name)
{
	enum log_level level = LOG_INFO;

	log_level_parse(level_name, &level); /* config_load checked the name */
	if (log_open(path, level) < 0) {
		log_error("SIGHUP: cannot open the log %s: %s; logging goes on to the old file",
			  path, strerror(errno));
		return -1;
	}
	if (pg->pipeline != NULL)
		pipeline_log_reopened(pg->pipeline);
	return 0;
}

/* Reads the configuration file again and puts it in force, keeping what only
 * a restart can change; a file with an error changes nothing. */
static void reload_config(struct reload *reload)
{
	struct popgate *pg = reload->pg;
	struct popgate_config *fresh = xcalloc(1, sizeof(*fresh));
	char err[512], kept_names[400];
	char *rules_text = NULL;
	size_t rules_len = 0;

	config_defaults(fresh);
	if (config_load(fresh, reload->config_path, err, sizeof(err)) < 0) {
		log_error("SIGHUP: configuration refused, the running one stays in force: %s", err);
		reload_config_free(&fresh);
		return;
	}
	/* The rules file is read and checked again too (its text may have
	 * changed under the same name); a bad line refuses the reload. */
	if (fresh->rules_file != NULL &&
	    rules_file_read(fresh->rules_file, &rules_text, &rules_len, err, sizeof(err)) < 0) {
		log_error("SIGHUP: configuration refused, the running one stays in force: "
			  "rules file refused: %s",
			  err);
		reload_config_free(&fresh);
		return;
	}
	if (config_keep_restart_keys(fresh, pg->cfg, kept_names, sizeof(kept_names)) > 0)
		log_warn("SIGHUP: changed keys that need a restart keep their running value "
			 "until then: %s",
			 kept_names);
	if ((strcmp(fresh->log_file, pg->cfg->log_file) != 0 ||
	     strcmp(fresh->log_level, pg->cfg->log_level) != 0) &&
	    reload_log(pg, fresh->log_file, fresh->log_level) < 0) {
		log_error("SIGHUP: configuration refused, the running one stays in force");
		reload_config_free(&fresh);
		free(rules_text);
		return;
	}
	struct retired_config *old = xcalloc(1, sizeof(*old));
	old->cfg = pg->cfg;
	old->next = reload->retired;
	reload->retired = old;
	pg->cfg = fresh;
	if (pg->pipeline != NULL) {
		/* Workers with other filter settings are replaced. */
		char *settings = config_section_text(fresh, "spam");

		pipeline_set_filter_settings(pg->pipeline, settings);
		free(settings);
		if (pipeline_set_rules(pg->pipeline, rules_text, err, sizeof(err)) < 0)
			log_error("SIGHUP: %s; the rules in force stay", err);
	}
	free(rules_text);
	if (reload->changed != NULL)
		reload->changed(old->cfg, fresh, reload->changed_ctx);
	log_info("SIGHUP: configuration reloaded from %s", reload->config_path);
	struct timeval every = {.tv_sec = RELOAD_SWEEP_SECONDS};
	event_add(reload->sweep, &every);
	reload_sweep(reload, false);
}

static void signal_reload_cb(evutil_socket_t sig, short what, void *ctx)
{
	struct reload *reload = ctx;
	(void)sig;
	(void)what;

	/* The log first: after logrotate renamed it, the lines about the
	 * reload belong in the new file. */
	if (reload_log(reload->pg, reload->pg->cfg->log_file, reload->pg->cfg->log_level) == 0)
		log_info("SIGHUP: log reopened");
	reload_config(reload);
}

struct reload *reload_new(struct popgate *pg, const char *config_path, reload_changed_fn *changed,
			  void *ctx)
{
	struct reload *reload = xcalloc(1, sizeof(*reload));

	reload->pg = pg;
	reload->config_path = xstrdup(config_path);
	reload->changed = changed;
	reload->changed_ctx = ctx;
	reload->sweep = event_new(pg->base, -1, EV_PERSIST, reload_sweep_cb, reload);
	reload->sighup = evsignal_new(pg->base, SIGHUP, signal_reload_cb, reload);
	evsignal_add(reload->sighup, NULL);
	return reload;
}

void reload_free(struct reload **reload_p)
{
	struct reload *reload = *reload_p;

	if (reload == NULL)
		return;
	event_free(reload->sighup);
	event_free(reload->sweep);
	reload->sweep = NULL;
	reload_sweep(reload, true);
	free(reload->config_path);
	free(reload);
	*reload_p = NULL;
}

/* ---- the restart spread ----------------------------------------------------- */

/*
 * The start-up fetches of the accounts whose last fetch ended cleanly, one
 * every restart_spread / count seconds.
 *
 * Why fetch them at all: a fetch normally follows a pickup, so they would be
 * fetched soon anyway, but mail that reached the provider while popgate was
 * down would then wait for a second pickup; and should an account's
 * fetch_unfinished mark ever be missing (the store refused to write it), the
 * spread fetch still deletes at the provider what was stored (G3). Why not
 * at once: 10,000 accounts are 10,000 provider logins in a few seconds, which
 * providers rate-limit or block.
 */
struct restart_spread {
	struct popgate *pg;
	int64_t *account_ids;
	size_t count;
	size_t next;
	int64_t started_at; /* a fetch since then (a pickup's) makes one here moot */
	struct event *timer;
};

void restart_spread_free(struct restart_spread **spread_p)
{
	struct restart_spread *spread = *spread_p;

	if (spread == NULL)
		return;
	if (spread->timer != NULL)
		event_free(spread->timer);
	free(spread->account_ids);
	free(spread);
	*spread_p = NULL;
}

static void restart_spread_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct restart_spread *spread = ctx;
	struct store_account account = {0};
	(void)fd;
	(void)what;

	if (spread->next >= spread->count)
		return;
	int64_t account_id = spread->account_ids[spread->next++];
	/* Gone (popgatectl account del), or fetched after a pickup already (in
	 * the second of the start it cannot tell, so it fetches). */
	if (store_account_get_by_id(spread->pg->store, account_id, &account) == 1 &&
	    account.last_fetch_at <= spread->started_at)
		fetcher_request(spread->pg->fetcher, account_id, 0);
	store_account_clear(&account);
	if (spread->next >= spread->count)
		event_del(spread->timer);
}

/*
 * Starts the spread of ACCOUNT_IDS (taken) over SECONDS; 0 requests them all
 * now ([fetch] max_fetches still caps how many run at once). NULL when there
 * is nothing left to spread.
 */
static struct restart_spread *restart_spread_start(struct popgate *pg, int64_t *account_ids,
						   size_t count, int seconds)
{
	struct restart_spread *spread;

	if (count == 0 || seconds <= 0) {
		for (size_t i = 0; i < count; i++)
			fetcher_request(pg->fetcher, account_ids[i], 0);
		free(account_ids);
		return NULL;
	}
	spread = xcalloc(1, sizeof(*spread));
	spread->pg = pg;
	spread->account_ids = account_ids;
	spread->count = count;
	spread->started_at = util_now();
	/* The first comes one step after start-up, not with the recovered ones. */
	int64_t step_us = (int64_t)seconds * 1000000 / (int64_t)count;
	struct timeval step = {.tv_sec = (time_t)(step_us / 1000000),
			       .tv_usec = (suseconds_t)(step_us % 1000000)};
	if (step_us == 0)
		step.tv_usec = 1;
	spread->timer = event_new(pg->base, -1, EV_PERSIST, restart_spread_cb, spread);
	event_add(spread->timer, &step);
	log_info("recovery: %zu account(s) fetched over the next %d s, one every %lld ms", count,
		 seconds, (long long)(step_us / 1000));
	return spread;
}

/*
 * Accounts whose fetch never ended (fetch_unfinished: a crash, a stop, a
 * failed fetch) may have stored messages still at the provider: they are
 * fetched now, as far as their back-off allows, which deletes those there
 * (their UIDLs are recorded). The others are spread (restart_spread above).
 */
int restart_fetch_start(struct popgate *pg, struct restart_spread **spread_r)
{
	int64_t *account_ids = NULL;
	size_t account_count = 0;

	*spread_r = NULL;
	if (store_account_list_ids_by_fetch(pg->store, true, &account_ids, &account_count) < 0)
		return -1;
	if (account_count > 0)
		log_info("recovery: %zu account(s) with an unfinished fetch fetched now",
			 account_count);
	for (size_t i = 0; i < account_count; i++)
		fetcher_request(pg->fetcher, account_ids[i], 0);
	free(account_ids);

	if (store_account_list_ids_by_fetch(pg->store, false, &account_ids, &account_count) < 0)
		return -1;
	*spread_r =
	    restart_spread_start(pg, account_ids, account_count, pg->cfg->fetch_restart_spread);
	return 0;
}
