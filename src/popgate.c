/*
 * popgate.c — the daemon: command line, start-up, recovery, the event loop.
 *
 * Start-up order matters:
 *   1. config, log, data folder, TLS certificate (made on first start);
 *   2. bind the listening ports (as root, if started so), then drop to the
 *      configured user;
 *   3. start the workers (fork + exec: they never see what comes next);
 *   4. load the credential key, open the store, recover: remove orphan spool
 *      files, resume messages left in processing, fetch at once the accounts
 *      whose last fetch never ended, and the others spread over [fetch]
 *      restart_spread seconds;
 *   5. serve. SIGHUP reopens the log and reloads the configuration.
 *
 * SECURITY: after step 2 the process has no root rights. The credential key
 * lives only in this process.
 *
 * Paths after step 2: the service user may be unable to reach the data
 * folder or the program by their paths (a checkout under /root, mode 0700).
 * So the data folder becomes the working directory in step 1 and every
 * store, spool and key path after that is relative to it (DATA_HERE; the
 * workers never open a path: they are handed each body's descriptor), and the program is opened in main() as root and
 * reached through /proc/self/fd/N, which resolves to the open file without
 * searching its folders. Nothing ever changes the working directory again.
 * The certificate and key are read before the drop, by their paths.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "core/config.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/offload.h"
#include "core/resolver.h"
#include "core/tls.h"
#include "core/util.h"
#include "pipeline/pipeline.h"
#include "pop3/auth.h"
#include "pop3/fetch.h"
#include "pop3/server.h"
#include "popgate.h"
#include "store/account.h"
#include "store/audit.h"
#include "store/db.h"
#include "store/login.h"
#include "store/message.h"
#include "store/spool.h"
#include "store/user.h"
#include "store/writer.h"

#define POPGATE_VERSION "0.1.0"
/* How often delivered messages past their keep time are removed. */
#define HOUSEKEEPING_SECONDS 60
/* The data folder once it is the working directory (see above). */
#define DATA_HERE "."

static void usage(FILE *out)
{
	fprintf(out, "usage: popgate --config FILE        run the daemon\n"
		     "       popgate --check-config FILE  check a configuration file\n"
		     "       popgate --version\n");
}

/* A listening TCP socket on ADDRESS:PORT, or -1 with a message in ERR. */
static int listen_on(const char *address, int port, char *err, size_t errlen)
{
	struct evutil_addrinfo hints = {0}, *res = NULL;
	char service[16];
	int fd = -1, one = 1;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICHOST;
	snprintf(service, sizeof(service), "%d", port);
	if (evutil_getaddrinfo(address, service, &hints, &res) != 0 || res == NULL) {
		snprintf(err, errlen, "bad listen address %s", address);
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		snprintf(err, errlen, "cannot listen on %s port %d: %s", address, port,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	evutil_freeaddrinfo(res);
	return fd;
}

/* Deepest folder level handed over (the spool is DATA/spool/xx/). */
#define CHOWN_DEPTH_MAX 8

/*
 * Hands the folder open as DIR_FD and everything below it to UID:GID.
 *
 * SECURITY: this runs as root over a tree the service user can write to, so
 * no path is ever resolved through a name it could have swapped for a
 * symlink: each folder is opened relative to its parent's descriptor with
 * O_NOFOLLOW, files are changed with fchownat(AT_SYMLINK_NOFOLLOW) (a symlink
 * itself is changed, never its target), and a folder swapped for a symlink
 * between readdir and openat fails to open and is skipped. Takes DIR_FD.
 */
static void chown_tree(int dir_fd, uid_t uid, gid_t gid, int depth)
{
	DIR *dir;
	struct dirent *entry;

	if (fchown(dir_fd, uid, gid) < 0)
		log_warn("cannot hand a data folder to the service user: %s", strerror(errno));
	dir = fdopendir(dir_fd);
	if (dir == NULL) {
		close(dir_fd);
		return;
	}
	while ((entry = readdir(dir)) != NULL) {
		const char *name = entry->d_name;
		struct stat st;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth < CHOWN_DEPTH_MAX) {
			int child = openat(dirfd(dir), name,
					   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (child >= 0)
				chown_tree(child, uid, gid, depth + 1);
			continue;
		}
		if (fchownat(dirfd(dir), name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			log_warn("cannot hand %s in the data folder to the service user: %s", name,
				 strerror(errno));
	}
	closedir(dir);
}

/*
 * Started as root: hand the data folder to the configured user and become
 * that user. "root" as the user keeps root (and says so in the log).
 */
static int drop_privileges(const struct popgate_config *cfg, char *err, size_t errlen)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;
	if (strcmp(cfg->run_as_user, "root") == 0) {
		log_warn("running as root, as [server] user = root says");
		return 0;
	}
	pw = getpwnam(cfg->run_as_user);
	if (pw == NULL) {
		snprintf(err, errlen,
			 "user '%s' does not exist; create it or set [server] user in the config",
			 cfg->run_as_user);
		return -1;
	}
	/* The data folder itself is the administrator's path (it may be a
	 * symlink they made); everything below it is walked without following. */
	int data_fd = open(cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (data_fd < 0) {
		snprintf(err, errlen, "cannot open the data folder %s: %s", cfg->data_dir,
			 strerror(errno));
		return -1;
	}
	chown_tree(data_fd, pw->pw_uid, pw->pw_gid, 0);
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		snprintf(err, errlen, "cannot become user '%s': %s", cfg->run_as_user,
			 strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		snprintf(err, errlen, "dropping root rights did not hold");
		return -1;
	}
	if (access(DATA_HERE, R_OK | W_OK | X_OK) < 0) {
		snprintf(err, errlen,
			 "user '%s' cannot reach the data folder %s (%s); is a parent folder "
			 "closed to it? Move the folder or set [server] user",
			 cfg->run_as_user, cfg->data_dir, strerror(errno));
		return -1;
	}
	log_info("running as user %s", cfg->run_as_user);
	return 0;
}

/* ---- the pipeline's verdicts ------------------------------------------- */

/* U3: mail of a user without a seat is delivered, but unfiltered and
 * unarchived, and says so. */
#define UNFILTERED_HEADER                                                                          \
	"X-Popgate-Unfiltered: no licence seat is free for this user; delivered without "          \
	"filtering or archiving\r\n"

/* True unless the account's user is known to be waiting for a seat. */
static bool user_has_seat(struct popgate *pg, const struct store_account *account)
{
	struct store_user user = {0};
	bool has_seat = true;

	if (account->user_name != NULL && store_user_get(pg->store, account->user_name, &user) == 1)
		has_seat = user.has_seat;
	store_user_clear(&user);
	return has_seat;
}

/*
 * U4, U5: records whose message VERDICT is — the owner of its sender address
 * and the owners of its recipient addresses — before it is delivered. The
 * addresses come from a worker and are only looked up, never trusted. A
 * failure is logged and the mail is delivered anyway: losing a message to a
 * bookkeeping error would be worse than an unattributed one.
 */
static void attribute_message(struct store *store, const struct pipeline_verdict *verdict,
			      const char *account_name)
{
	int64_t *user_ids = xcalloc(verdict->recipient_count + 1, sizeof(*user_ids));
	char **addresses = xcalloc(verdict->recipient_count + 1, sizeof(*addresses));
	int64_t owner = 0;
	size_t n = 0;

	if (verdict->sender != NULL && store_address_owner(store, verdict->sender, &owner) < 0)
		goto fail;
	for (size_t i = 0; i < verdict->recipient_count; i++) {
		int found = store_address_owner(store, verdict->recipients[i], &user_ids[n]);

		if (found < 0)
			goto fail;
		if (found == 1)
			addresses[n++] = verdict->recipients[i];
	}
	if (store_message_attribute(store, verdict->id, owner, user_ids, addresses, n) < 0)
		goto fail;
	log_event(LOG_DEBUG, "attributed", account_name, verdict->id,
		  "owner=%lld recipient_users=%zu", (long long)owner, n);
	free(addresses);
	free(user_ids);
	return;
fail:
	log_event(LOG_ERROR, "error", account_name, verdict->id,
		  "cannot attribute the message to its users: %s", store_errmsg(store));
	free(addresses);
	free(user_ids);
}

/* A verdict's writes, made by the writer thread (store/writer.h): a copy of
 * the verdict (it lives only during on_verdict) and the job to submit again. */
struct verdict_write {
	struct popgate *pg;
	struct pipeline_verdict verdict;
	struct pipeline_job job; /* its account, host and time, for the log and a retry */
};

static void verdict_write_free(struct verdict_write *record)
{
	free(record->verdict.prepend);
	free(record->verdict.reason);
	free(record->verdict.sender);
	for (size_t i = 0; i < record->verdict.recipient_count; i++)
		free(record->verdict.recipients[i]);
	free(record->verdict.recipients);
	free(record);
}

/* In the writer thread. Delivered: attributed (a failure is logged and the
 * mail delivered anyway) and moved, the result is 1 if moved, 0 if it was
 * not in processing. Failed: the attempt counted (the result), and a second
 * one holds it as suspect. */
static int verdict_write_work(struct store *store, void *arg)
{
	struct verdict_write *record = arg;
	const char *id = record->verdict.id;

	if (record->verdict.outcome == PIPELINE_DELIVER) {
		attribute_message(store, &record->verdict, record->job.account);
		return store_message_move(store, id, MESSAGE_PROCESSING, MESSAGE_DELIVERY,
					  record->verdict.prepend);
	}
	int attempts = store_message_add_attempt(store, id);
	if (attempts >= 2 &&
	    store_message_move(store, id, MESSAGE_PROCESSING, MESSAGE_SUSPECT, NULL) < 0)
		return -1;
	return attempts;
}

/* In the loop, after the commit: the log, and a failed message's retry. */
static void verdict_write_done(int result, const char *error, void *arg)
{
	struct verdict_write *record = arg;
	const char *account_name = record->job.account;
	const char *id = record->verdict.id;

	if (record->verdict.outcome == PIPELINE_DELIVER) {
		if (result == 1)
			log_event(LOG_INFO, "processed", account_name, id, "to the delivery queue");
		else if (result < 0)
			log_event(
			    LOG_ERROR, "error", account_name, id,
			    "cannot move to the delivery queue: %s; it is filtered again shortly",
			    error);
		verdict_write_free(record);
		return;
	}
	log_event(LOG_WARN, "error", account_name, id, "processing failed: %s",
		  record->verdict.reason != NULL ? record->verdict.reason : "worker failed");
	if (result >= 2)
		log_event(LOG_ERROR, "suspect", account_name, id,
			  "held as suspect after %d failed attempts", result);
	else if (result == 1)
		pipeline_submit(record->pg->pipeline, &record->job);
	verdict_write_free(record);
}

static void on_verdict(const struct pipeline_verdict *verdict, void *ctx)
{
	struct popgate *pg = ctx;
	struct store_message message = {0};

	if (store_message_get(pg->store, verdict->id, &message) != 1) {
		log_event(LOG_ERROR, "error", NULL, verdict->id, "verdict for an unknown message");
		store_message_clear(&message);
		return;
	}
	struct store_account account = {0};
	store_account_get_by_id(pg->store, message.account_id, &account);
	const char *account_name = account.name != NULL ? account.name : "-";

	/* The writes go to the writer thread: the loop never waits on a commit. */
	struct verdict_write *record = xcalloc(1, sizeof(*record));
	record->pg = pg;
	record->verdict.outcome = verdict->outcome;
	memcpy(record->verdict.id, verdict->id, sizeof(record->verdict.id));
	record->verdict.reason = verdict->reason != NULL ? xstrdup(verdict->reason) : NULL;
	record->verdict.sender = verdict->sender != NULL ? xstrdup(verdict->sender) : NULL;
	record->verdict.recipients =
	    xcalloc(verdict->recipient_count + 1, sizeof(*record->verdict.recipients));
	for (size_t i = 0; i < verdict->recipient_count; i++)
		record->verdict.recipients[i] = xstrdup(verdict->recipients[i]);
	record->verdict.recipient_count = verdict->recipient_count;
	if (verdict->outcome == PIPELINE_DELIVER)
		record->verdict.prepend =
		    xasprintf("%s%s", verdict->prepend != NULL ? verdict->prepend : "",
			      user_has_seat(pg, &account) ? "" : UNFILTERED_HEADER);
	record->job.received_at = message.received_at;
	memcpy(record->job.id, verdict->id, sizeof(record->job.id));
	snprintf(record->job.account, sizeof(record->job.account), "%s", account_name);
	snprintf(record->job.provider_host, sizeof(record->job.provider_host), "%s",
		 account.host != NULL ? account.host : "-");
	if (writer_submit(pg->writer, NULL, verdict_write_work, verdict_write_done, record) < 0) {
		log_event(LOG_ERROR, "error", account_name, verdict->id,
			  "cannot record the verdict: the store is overloaded; the message is "
			  "filtered again at the next start");
		verdict_write_free(record);
	}
	store_account_clear(&account);
	store_message_clear(&message);
}

/* ---- recovery and housekeeping ------------------------------------------ */

static bool spool_id_known(const char *id, void *ctx)
{
	/* On a store error keep the file: a body is never removed on a guess. */
	return store_message_exists(ctx, id) != 0;
}

/*
 * Submits every message in processing to the pipeline, which ignores those it
 * has already: at start-up the ones a stop interrupted, later the ones an
 * administrator released (popgatectl queue release). The number submitted,
 * or -1.
 */
static ssize_t resume_processing(struct popgate *pg)
{
	struct store_message *messages = NULL;
	size_t count = 0;

	if (store_message_list_all(pg->store, MESSAGE_PROCESSING, &messages, &count) < 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		struct store_account account = {0};
		struct pipeline_job job = {.received_at = messages[i].received_at};
		store_account_get_by_id(pg->store, messages[i].account_id, &account);
		memcpy(job.id, messages[i].id, sizeof(job.id));
		snprintf(job.account, sizeof(job.account), "%s", account.name ? account.name : "-");
		snprintf(job.provider_host, sizeof(job.provider_host), "%s",
			 account.host ? account.host : "-");
		pipeline_submit(pg->pipeline, &job);
		store_account_clear(&account);
	}
	store_message_list_free(&messages, count);
	return (ssize_t)count;
}

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
	int64_t started_at;	/* a fetch since then (a pickup's) makes one here moot */
	struct event *timer;
};

static void restart_spread_free(struct restart_spread **spread_p)
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
 * Resumes work a stop or crash interrupted. Accounts whose fetch never ended
 * (fetch_unfinished: a crash, a stop, a failed fetch) may have stored
 * messages still at the provider: they are fetched now, as far as their
 * back-off allows, which deletes those there (their UIDLs are recorded). The
 * others are spread (restart_spread above); *SPREAD_R gets that, or NULL.
 */
static int recover(struct popgate *pg, struct restart_spread **spread_r)
{
	int64_t *account_ids = NULL;
	size_t account_count = 0;
	ssize_t resumed;

	*spread_r = NULL;
	int removed = spool_remove_orphans(pg->store->data_dir, spool_id_known, pg->store);
	if (removed < 0)
		return -1;
	if (removed > 0)
		log_info("recovery: removed %d spool file(s) without a row", removed);

	resumed = resume_processing(pg);
	if (resumed < 0)
		return -1;
	if (resumed > 0)
		log_info("recovery: %zd message(s) resumed in processing", resumed);

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

/* Most admin changes logged per poll; more wait for the next one. */
#define ADMIN_CHANGES_PER_POLL 100

static void admin_change_log(int64_t at, const char *message_id, const char *text, void *ctx)
{
	time_t when = (time_t)at;
	struct tm tm;
	char stamp[32] = "?";

	(void)ctx;
	if (gmtime_r(&when, &tm) != NULL)
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_event(LOG_INFO, "admin_change", NULL, message_id, "%s (made at %s)", text, stamp);
}

/* Logs the popgatectl changes that are not in the log yet (store/audit.h):
 * with log_file = - only this process can write them there. */
static void log_admin_changes(struct popgate *pg)
{
	store_admin_change_take(pg->store, ADMIN_CHANGES_PER_POLL, admin_change_log, pg);
}

/* Picks up messages popgatectl released (moved back to processing) and logs
 * its changes. */
static void release_check_cb(evutil_socket_t fd, short what, void *ctx)
{
	(void)fd;
	(void)what;
	resume_processing(ctx);
	log_admin_changes(ctx);
}

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
	char *config_path;	/* absolute: the working directory changes at start */
	struct event *release_check;
	struct retired_config *retired;
};

struct retired_config {
	struct popgate_config *cfg;
	struct retired_config *next;
};

static void config_destroy(struct popgate_config **cfg_p)
{
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
		config_destroy(&old->cfg);
		free(old);
	}
}

static void release_check_schedule(struct reload *reload)
{
	struct timeval every = {.tv_sec = reload->pg->cfg->release_check_seconds};

	if (reload->release_check != NULL)
		event_add(reload->release_check, &every);
}

/*
 * Reopens the log at PATH (a rotated file is left to logrotate; the new one
 * is created, O_NOFOLLOW as at start). The old file stays in use if the new
 * one cannot be opened. 0 or -1 (logged).
 */
static int reload_log(const char *path, const char *level_name)
{
	enum log_level level = LOG_INFO;

	log_level_parse(level_name, &level); /* config_load checked the name */
	if (log_open(path, level) < 0) {
		log_error("SIGHUP: cannot open the log %s: %s; logging goes on to the old file",
			  path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Reads the configuration file again and puts it in force, keeping what only
 * a restart can change; a file with an error changes nothing. */
static void reload_config(struct reload *reload)
{
	struct popgate *pg = reload->pg;
	struct popgate_config *fresh = xcalloc(1, sizeof(*fresh));
	char err[512], kept_names[400];

	config_defaults(fresh);
	if (config_load(fresh, reload->config_path, err, sizeof(err)) < 0) {
		log_error("SIGHUP: configuration refused, the running one stays in force: %s",
			  err);
		config_destroy(&fresh);
		return;
	}
	if (config_keep_restart_keys(fresh, pg->cfg, kept_names, sizeof(kept_names)) > 0)
		log_warn("SIGHUP: changed keys that need a restart keep their running value "
			 "until then: %s",
			 kept_names);
	if ((strcmp(fresh->log_file, pg->cfg->log_file) != 0 ||
	     strcmp(fresh->log_level, pg->cfg->log_level) != 0) &&
	    reload_log(fresh->log_file, fresh->log_level) < 0) {
		log_error("SIGHUP: configuration refused, the running one stays in force");
		config_destroy(&fresh);
		return;
	}
	struct retired_config *old = xcalloc(1, sizeof(*old));
	old->cfg = pg->cfg;
	old->next = reload->retired;
	reload->retired = old;
	bool release_changed = fresh->release_check_seconds != pg->cfg->release_check_seconds;
	pg->cfg = fresh;
	if (release_changed)
		release_check_schedule(reload);
	log_info("SIGHUP: configuration reloaded from %s", reload->config_path);
	reload_sweep(reload, false);
}

static void signal_reload_cb(evutil_socket_t sig, short what, void *ctx)
{
	struct reload *reload = ctx;
	(void)sig;
	(void)what;

	/* The log first: after logrotate renamed it, the lines about the
	 * reload belong in the new file. */
	if (reload_log(reload->pg->cfg->log_file, reload->pg->cfg->log_level) == 0)
		log_info("SIGHUP: log reopened");
	reload_config(reload);
}

static void housekeeping_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct reload *reload = ctx;
	struct popgate *pg = reload->pg;
	(void)fd;
	(void)what;

	reload_sweep(reload, false);

	int64_t cutoff = util_now() - (int64_t)pg->cfg->delivered_keep_days * 86400;
	int expired = store_message_expire_delivered(pg->store, cutoff);
	if (expired > 0)
		log_info("removed %d delivered message(s) older than %d days", expired,
			 pg->cfg->delivered_keep_days);
	auth_expire(pg->auth);
	store_login_failures_expire(pg->store, pg->cfg->login_fail_window, util_now());
}

static void signal_stop_cb(evutil_socket_t sig, short what, void *ctx)
{
	struct popgate *pg = ctx;
	(void)what;
	log_info("signal %d: stopping", (int)sig);
	event_base_loopexit(pg->base, NULL);
}

/* ---- main ------------------------------------------------------------------ */

/* Runs the daemon with CFG (taken: freed here, or the configuration a
 * reload put in its place); CONFIG_PATH is absolute, for SIGHUP. */
static int run_daemon(struct popgate_config *cfg, const char *config_path, const char *self_exe)
{
	struct popgate pg = {.cfg = cfg};
	struct reload reload = {.pg = &pg, .config_path = xstrdup(config_path)};
	struct restart_spread *spread = NULL;
	char err[512];
	int plain_fd = -1, tls_fd = -1, status = 1;
	struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL, *housekeeping = NULL,
		     *release_check = NULL;

	enum log_level level = LOG_INFO;
	log_level_parse(cfg->log_level, &level); /* config_load checked the name */
	if (log_open(cfg->log_file, level) < 0) {
		fprintf(stderr, "popgate: cannot open log %s: %s\n", cfg->log_file,
			strerror(errno));
		goto cleanup_config;
	}
	log_set_role("main");
	signal(SIGPIPE, SIG_IGN);
	if (crypto_init() < 0 || util_mkdir_p(cfg->data_dir, 0750) < 0 ||
	    chdir(cfg->data_dir) < 0 || spool_init(DATA_HERE) < 0) {
		log_error("cannot prepare the data folder %s: %s", cfg->data_dir, strerror(errno));
		goto cleanup_log;
	}
	if (tls_ensure_self_signed(cfg->tls_cert, cfg->tls_key, cfg->hostname, err, sizeof(err)) <
	    0) {
		log_error("TLS certificate: %s", err);
		goto cleanup_log;
	}
	pg.server_tls = tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, err, sizeof(err));
	if (pg.server_tls == NULL) {
		log_error("TLS: %s", err);
		goto cleanup_log;
	}
	if (cfg->pop3_port > 0 &&
	    (plain_fd = listen_on(cfg->listen_address, cfg->pop3_port, err, sizeof(err))) < 0)
		goto fail_log;
	if (cfg->pop3s_port > 0 &&
	    (tls_fd = listen_on(cfg->listen_address, cfg->pop3s_port, err, sizeof(err))) < 0)
		goto fail_log;
	if (drop_privileges(cfg, err, sizeof(err)) < 0)
		goto fail_log;

	pg.base = event_base_new();
	if (pg.base == NULL) {
		snprintf(err, sizeof(err), "cannot start the event loop");
		goto fail_log;
	}
	pg.dns = resolver_new(pg.base, cfg->nameservers, err, sizeof(err));
	if (pg.dns == NULL)
		goto fail_log;
	/* From here a SIGTERM during start-up is a clean stop once the loop runs. */
	sigterm = evsignal_new(pg.base, SIGTERM, signal_stop_cb, &pg);
	sigint = evsignal_new(pg.base, SIGINT, signal_stop_cb, &pg);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	/* Caught from here (its default would end the daemon); handled once the
	 * loop runs, when start-up no longer reads the configuration. */
	sighup = evsignal_new(pg.base, SIGHUP, signal_reload_cb, &reload);
	evsignal_add(sighup, NULL);
	/* Workers first: they are exec'd before the key is in this process.
	 * They run as this (already unprivileged) user, confined by seccomp and
	 * rlimits; pipeline.c says why not as a user of their own. */
	pg.pipeline = pipeline_new(pg.base, self_exe, DATA_HERE, cfg->hostname, cfg->workers,
				   cfg->worker_timeout, on_verdict, &pg, err, sizeof(err));
	if (pg.pipeline == NULL)
		goto fail_log;

	char key_path[PATH_MAX];
	snprintf(key_path, sizeof(key_path), "%s/secret.key", DATA_HERE);
	if (crypto_key_load_or_create(&pg.key, key_path, err, sizeof(err)) < 0)
		goto fail_log;
	pg.store = store_open(DATA_HERE, err, sizeof(err));
	if (pg.store == NULL)
		goto fail_log;
	/* Threads only now: the workers were forked and exec'd before. */
	pg.offload = offload_new(pg.base, 0, err, sizeof(err));
	if (pg.offload == NULL)
		goto fail_log;
	pg.writer = writer_new(pg.base, DATA_HERE, err, sizeof(err));
	if (pg.writer == NULL)
		goto fail_log;
	pg.fetcher = fetcher_new(&pg);
	pg.auth = auth_new(&pg);
	if (recover(&pg, &spread) < 0) {
		snprintf(err, sizeof(err), "recovery failed: %s", store_errmsg(pg.store));
		goto fail_log;
	}
	pg.pop3 = pop3_server_new(&pg, plain_fd, tls_fd, err, sizeof(err));
	if (pg.pop3 == NULL)
		goto fail_log;
	plain_fd = tls_fd = -1; /* the listeners own them now */

	housekeeping = event_new(pg.base, -1, EV_PERSIST, housekeeping_cb, &reload);
	struct timeval every = {.tv_sec = HOUSEKEEPING_SECONDS};
	event_add(housekeeping, &every);
	housekeeping_cb(-1, 0, &reload);
	log_admin_changes(&pg); /* those made while popgate was stopped */
	release_check = event_new(pg.base, -1, EV_PERSIST, release_check_cb, &pg);
	reload.release_check = release_check;
	release_check_schedule(&reload);

	log_info("popgate %s ready: POP3 on %s:%d (STLS), POP3S on %s:%d, data in %s",
		 POPGATE_VERSION, cfg->listen_address, cfg->pop3_port, cfg->listen_address,
		 cfg->pop3s_port, cfg->data_dir);
	event_base_dispatch(pg.base);
	status = 0;
	goto cleanup;

fail_log:
	log_error("%s", err);
cleanup:
	if (sigterm != NULL)
		event_free(sigterm);
	if (sigint != NULL)
		event_free(sigint);
	if (sighup != NULL)
		event_free(sighup);
	restart_spread_free(&spread);
	if (housekeeping != NULL)
		event_free(housekeeping);
	if (release_check != NULL)
		event_free(release_check);
	pop3_server_free(&pg.pop3);
	offload_free(&pg.offload); /* before auth: its jobs point at login requests */
	auth_free(&pg.auth);
	fetcher_free(&pg.fetcher);
	/* After the sessions and fetches (its completions find them gone) and
	 * before the pipeline (they may queue a message): commits what is queued. */
	writer_free(&pg.writer);
	pipeline_free(&pg.pipeline);
	store_close(&pg.store);
	crypto_key_wipe(&pg.key);
	resolver_free(&pg.dns);
	if (pg.base != NULL)
		event_base_free(pg.base);
	if (pg.server_tls != NULL)
		SSL_CTX_free(pg.server_tls);
	if (plain_fd >= 0)
		close(plain_fd);
	if (tls_fd >= 0)
		close(tls_fd);
	log_info("stopped");
cleanup_log:
	log_close();
cleanup_config:
	reload_sweep(&reload, true);
	free(reload.config_path);
	config_destroy(&pg.cfg);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", required_argument, NULL, 'k'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config_path = NULL;
	bool check_only = false;
	struct popgate_config *cfg = NULL;
	char err[512];
	int opt;

	/* "popgate --worker FD HOSTNAME": a pipeline worker (pipeline.c). */
	if (argc == 4 && strcmp(argv[1], "--worker") == 0)
		return pipeline_worker_main(atoi(argv[2]), argv[3]);

	while ((opt = getopt_long(argc, argv, "c:k:Vh", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'k':
			config_path = optarg;
			check_only = true;
			break;
		case 'V':
			printf("popgate %s\n", POPGATE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (config_path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	cfg = xcalloc(1, sizeof(*cfg));
	config_defaults(cfg);
	if (config_load(cfg, config_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		config_destroy(&cfg);
		return 1;
	}
	if (check_only) {
		printf("%s: ok\n", config_path);
		config_destroy(&cfg);
		return 0;
	}
	/* SIGHUP reads the file again after the daemon made the data folder its
	 * working directory: a relative path must be resolved now. */
	char *config_real = realpath(config_path, NULL);
	if (config_real == NULL) {
		fprintf(stderr, "popgate: %s: %s\n", config_path, strerror(errno));
		config_destroy(&cfg);
		return 1;
	}
	/* Opened while still root (see the top of this file); the pipeline
	 * opens its own descriptor through this path and execs workers by it. */
	int exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
	if (exe_fd < 0) {
		fprintf(stderr, "popgate: cannot find its own executable: %s\n", strerror(errno));
		free(config_real);
		config_destroy(&cfg);
		return 1;
	}
	char self_exe[64];
	snprintf(self_exe, sizeof(self_exe), "/proc/self/fd/%d", exe_fd);
	int status = run_daemon(cfg, config_real, self_exe);
	close(exe_fd);
	free(config_real);
	return status;
}
