/*
 * popgate.c — the daemon: command line, start-up, recovery, the event loop.
 *
 * Start-up order matters:
 *   1. config, log, data folder, TLS certificate (made on first start);
 *   2. bind the listening ports (as root, if started so); fork the worker
 *      spawner (pipeline/spawner.h), which becomes [server] worker_user and
 *      execs popgate afresh; then drop to the configured user;
 *   3. start the workers through the spawner (they never see what comes
 *      next);
 *   4. load the credential key, open the store, recover: remove orphan spool
 *      files, resume messages left in processing, fetch at once the accounts
 *      whose last fetch never ended, and the others spread over [fetch]
 *      restart_spread seconds;
 *   5. serve. SIGHUP reopens the log and reloads the configuration (both
 *      it and the restart spread live in core/reload.c); popgatectl's
 *      changes arrive on the control socket (core/control.h).
 *
 * SECURITY: after step 2 no process of popgate has root rights (unless
 * [server] user = root keeps the daemon root): the daemon runs as [server]
 * user, the spawner and the workers as [server] worker_user, so a
 * compromised worker cannot signal, trace or read the daemon. The
 * credential key lives only in the daemon. Started without root there is no
 * uid to change, and everything runs as the one user. Should the spawner
 * end, the daemon stops with an error status (it could not start another as
 * the worker user) for the service manager to restart it.
 *
 * Paths after step 2: the service user may be unable to reach the data
 * folder or the program by their paths (a checkout under /root, mode 0700).
 * So the data folder becomes the working directory in step 1 and every
 * store, spool and key path after that is relative to it (DATA_HERE; the
 * workers never open a path: they are handed each body's descriptor), and
 * the program is opened in main() as root and handed to the spawner as a
 * descriptor, which it execs the workers by, never searching the program's
 * folders. Nothing ever changes the working directory again. The
 * certificate and key are read before the drop, by their paths.
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

#include "ciss/token.h"
#include "core/config.h"
#include "core/control.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/offload.h"
#include "core/reload.h"
#include "core/resolver.h"
#include "core/tls.h"
#include "core/util.h"
#include "filters/rules.h"
#include "pipeline/archiver.h"
#include "pipeline/pipeline.h"
#include "pipeline/route.h"
#include "pipeline/spawner.h"
#include "pop3/auth.h"
#include "pop3/fetch.h"
#include "pop3/server.h"
#include "smtp/server.h"
#include "popgate.h"
#include "store/account.h"
#include "store/ciss.h"
#include "store/db.h"
#include "store/fingerprint.h"
#include "store/login.h"
#include "store/message.h"
#include "store/spool.h"
#include "store/user.h"
#include "store/writer.h"
#include "smtp/relay.h"
#include "smtp/sign.h"
#include "store/transport.h"
#include "web/server.h"

#define POPGATE_VERSION "0.1.0"
/* How often delivered messages past their keep time are removed. */
#define HOUSEKEEPING_SECONDS 60
/* Temp files the spool's pool keeps ready (store/spool.h): more than the
 * bodies begun while its thread makes one, so the loop seldom makes its own. */
#define SPOOL_POOL_FILES 64
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

/* ---- recovery and housekeeping ------------------------------------------ */

static bool spool_id_known(const char *id, void *ctx)
{
	/* On a store error keep the file: a body is never removed on a guess. */
	return store_message_exists(ctx, id) != 0;
}

/*
 * Resumes work a stop or crash interrupted: spool files without a row go,
 * messages left in processing are submitted again, and the start-up fetches
 * begin (core/reload.h); *SPREAD_R gets their spread, or NULL.
 */
static int recover(struct popgate *pg, struct restart_spread **spread_r)
{
	ssize_t resumed;

	*spread_r = NULL;
	int removed = spool_remove_orphans(pg->store->data_dir, spool_id_known, pg->store);
	if (removed < 0)
		return -1;
	if (removed > 0)
		log_info("recovery: removed %d spool file(s) without a row", removed);

	resumed = control_resume_processing(pg);
	if (resumed < 0)
		return -1;
	if (resumed > 0)
		log_info("recovery: %zd message(s) resumed in processing", resumed);
	return restart_fetch_start(pg, spread_r);
}

/* The housekeeping's writes, on their way to the writer thread. */
struct housekeeping_job {
	int64_t cutoff;	       /* delivered messages older than this go */
	int64_t window;	       /* [server] login_fail_window */
	int64_t now;
	int keep_days;	       /* for the log */
	int64_t quarantine_cutoff; /* quarantined messages older than this go */
	int quarantine_days;   /* for the log */
	int64_t fuzzy_cutoff;  /* fuzzy fingerprints not seen since go */
	int fuzzy_expired;
	/* CISS: messages held for an answer since before this go (hold-days). */
	int64_t held_cutoff;
	enum ciss_hold_expiry hold_expiry;
	int hold_days;
	int held_expired;
	char (*ids)[SPOOL_ID_LEN + 1]; /* the bodies of the rows deleted */
	size_t count;
	int quarantine_expired;
	struct writer *writer; /* which removes the bodies too */
};

/* In the writer thread: the expired rows and login failures go together. */
static int housekeeping_work(struct store *store, void *arg)
{
	struct housekeeping_job *job = arg;

	char(*quarantined)[SPOOL_ID_LEN + 1] = NULL;
	size_t quarantined_count = 0;
	int expired = store_message_expire_rows(store, job->cutoff, &job->ids, &job->count);
	if (expired < 0)
		return -1;
	job->quarantine_expired = store_message_expire_quarantine_rows(
	    store, job->quarantine_cutoff, &quarantined, &quarantined_count);
	if (job->quarantine_expired < 0) {
		free(job->ids);
		job->ids = NULL;
		job->count = 0;
		return -1;
	}
	/* One list of bodies to remove once the deletions commit. */
	if (quarantined_count > 0) {
		job->ids = xrealloc(job->ids, (job->count + quarantined_count) * sizeof(*job->ids));
		memcpy(job->ids + job->count, quarantined, quarantined_count * sizeof(*job->ids));
		job->count += quarantined_count;
	}
	free(quarantined);
	job->held_expired =
	    store_ciss_held_expire(store, job->held_cutoff, job->hold_expiry, job->hold_days,
				   &quarantined, &quarantined_count);
	if (job->held_expired < 0) {
		free(job->ids);
		job->ids = NULL;
		job->count = 0;
		return -1;
	}
	if (quarantined_count > 0) {
		job->ids = xrealloc(job->ids, (job->count + quarantined_count) * sizeof(*job->ids));
		memcpy(job->ids + job->count, quarantined, quarantined_count * sizeof(*job->ids));
		job->count += quarantined_count;
	}
	free(quarantined);
	job->fuzzy_expired = store_fingerprint_expire(store, job->fuzzy_cutoff);
	if (job->fuzzy_expired < 0 ||
	    store_login_failures_expire(store, job->window, job->now) < 0) {
		free(job->ids);
		job->ids = NULL;
		job->count = 0;
		return -1;
	}
	return expired;
}

/* In the writer thread, once the rows' deletion committed: their bodies. A
 * body left by a failure or a stop has no row, so the start-up sweep
 * (spool_remove_orphans) removes it. */
static int housekeeping_bodies_work(struct store *store, void *arg)
{
	struct housekeeping_job *job = arg;

	store_message_remove_bodies(store->data_dir, (const char(*)[SPOOL_ID_LEN + 1])job->ids,
				    job->count);
	return 0;
}

static void housekeeping_free(struct housekeeping_job *job)
{
	free(job->ids);
	free(job);
}

static void housekeeping_bodies_done(int result, const char *error, void *arg)
{
	(void)result;
	(void)error;
	housekeeping_free(arg);
}

/* In the loop, once committed: the log line, and the bodies removed by the
 * writer thread too (unlinks are disk work the loop must not wait for). */
static void housekeeping_done(int result, const char *error, void *arg)
{
	struct housekeeping_job *job = arg;

	if (result < 0) {
		log_warn("housekeeping: %s", error);
		housekeeping_free(job);
		return;
	}
	if (result > 0)
		log_info("removed %d delivered message(s) older than %d days", result,
			 job->keep_days);
	if (job->quarantine_expired > 0)
		log_info("removed %d quarantined message(s) older than %d days",
			 job->quarantine_expired, job->quarantine_days);
	if (job->held_expired > 0)
		log_info("%s %d message(s) held for a challenge's answer for %d days",
			 job->hold_expiry == CISS_HOLD_EXPIRY_DELETE ? "removed" : "quarantined",
			 job->held_expired, job->hold_days);
	if (job->fuzzy_expired > 0)
		log_info("removed %d fuzzy fingerprint(s) not seen for %lld seconds",
			 job->fuzzy_expired, (long long)(job->now - job->fuzzy_cutoff));
	if (job->count == 0 ||
	    writer_submit(job->writer, NULL, housekeeping_bodies_work, housekeeping_bodies_done,
			  job) < 0)
		housekeeping_free(job);
}

static void housekeeping_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct popgate *pg = ctx;
	(void)fd;
	(void)what;

	struct housekeeping_job *job = xcalloc(1, sizeof(*job));
	job->cutoff = util_now() - (int64_t)pg->cfg->delivered_keep_days * 86400;
	job->window = pg->cfg->login_fail_window;
	job->now = util_now();
	job->keep_days = pg->cfg->delivered_keep_days;
	job->quarantine_cutoff = util_now() - (int64_t)pg->cfg->quarantine_days * 86400;
	job->quarantine_days = pg->cfg->quarantine_days;
	job->fuzzy_cutoff = job->now - pg->cfg->fuzzy_window;
	/* Read at each run, so popgatectl's changes count without a restart.
	 * Unreadable: nothing held expires this time. */
	struct ciss_settings ciss;
	if (store_ciss_settings_get(pg->store, &ciss) == 0) {
		job->hold_days = ciss.hold_days;
		job->hold_expiry = ciss.hold_expiry;
		job->held_cutoff = job->now - (int64_t)ciss.hold_days * 86400;
		ciss_settings_clear(&ciss);
	}
	job->writer = pg->writer;
	if (writer_submit(pg->writer, NULL, housekeeping_work, housekeeping_done, job) < 0)
		housekeeping_free(job);
	auth_expire(pg->auth);
}

static void signal_stop_cb(evutil_socket_t sig, short what, void *ctx)
{
	struct popgate *pg = ctx;
	(void)what;
	log_info("signal %d: stopping", (int)sig);
	event_base_loopexit(pg->base, NULL);
}

/* A DSN the relay queued: into the pipeline like every submitted message. */
static void relay_dsn_queued(const char *id, void *ctx)
{
	(void)id;
	control_resume_processing(ctx);
}

/* ---- main ------------------------------------------------------------------ */

/* Runs the daemon with CFG (taken: freed here, or the configuration a
 * reload put in its place); CONFIG_PATH is absolute, for SIGHUP. */
static int run_daemon(struct popgate_config *cfg, const char *config_path, int exe_fd)
{
	struct spawner_identity worker_identity;
	struct spawner_process spawner = {.fd = -1, .pid = -1};
	struct popgate pg = {.cfg = cfg};
	struct reload *reload = NULL;
	struct restart_spread *spread = NULL;
	char err[512];
	int plain_fd = -1, tls_fd = -1, status = 1;
	int smtp_fd = -1, submission_fd = -1, web_fd = -1;
	struct event *sigterm = NULL, *sigint = NULL, *housekeeping = NULL;
	struct control *control = NULL;

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
	if (cfg->smtp_port > 0 &&
	    (smtp_fd = listen_on(cfg->listen_address, cfg->smtp_port, err, sizeof(err))) < 0)
		goto fail_log;
	if (cfg->smtp_submission_port > 0 &&
	    (submission_fd = listen_on(cfg->listen_address, cfg->smtp_submission_port, err,
				       sizeof(err))) < 0)
		goto fail_log;
	if (cfg->web_port > 0 &&
	    (web_fd = listen_on(cfg->listen_address, cfg->web_port, err, sizeof(err))) < 0)
		goto fail_log;
	/* While root (to give it the workers' user) and before the key, the
	 * store and any thread. */
	if (spawner_identity_resolve(cfg->worker_user, &worker_identity, err, sizeof(err)) < 0 ||
	    spawner_start(exe_fd, &worker_identity, cfg->hostname, &spawner, err, sizeof(err)) < 0)
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
	pg.relay_dns = pg.dns;
	if (cfg->dns_trust_anchor != NULL && *cfg->dns_trust_anchor != '\0') {
		pg.relay_dns = resolver_new(pg.base, cfg->nameservers, err, sizeof(err));
		if (pg.relay_dns == NULL ||
		    resolver_set_trust_anchor(pg.relay_dns, cfg->dns_trust_anchor, err,
					      sizeof(err)) < 0)
			goto fail_log;
	}
	/* From here a SIGTERM during start-up is a clean stop once the loop runs. */
	sigterm = evsignal_new(pg.base, SIGTERM, signal_stop_cb, &pg);
	sigint = evsignal_new(pg.base, SIGINT, signal_stop_cb, &pg);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	/* SIGHUP is caught from here (its default would end the daemon);
	 * handled once the loop runs, when start-up no longer reads the
	 * configuration. */
	reload = reload_new(&pg, config_path, NULL, NULL);
	/* Workers first: the spawner that starts them was exec'd before the key
	 * is in this process. They run as [server] worker_user, confined by
	 * seccomp and rlimits. */
	pg.pipeline = pipeline_new(pg.base, &spawner, DATA_HERE, cfg->workers, cfg->worker_timeout,
				   route_on_verdict, &pg, err, sizeof(err));
	if (pg.pipeline == NULL)
		goto fail_log;
	char *filter_settings = config_section_text(cfg, "spam");
	pipeline_set_filter_settings(pg.pipeline, filter_settings);
	free(filter_settings);
	/* A rules file with a bad line stops the start: the line is named. */
	char *rules_text = NULL;
	size_t rules_len = 0;
	char rules_err[400];

	if (cfg->rules_file != NULL && rules_file_read(cfg->rules_file, &rules_text, &rules_len,
						       rules_err, sizeof(rules_err)) < 0) {
		snprintf(err, sizeof(err), "rules file refused: %s", rules_err);
		goto fail_log;
	}
	int rules_rc = pipeline_set_rules(pg.pipeline, rules_text, err, sizeof(err));

	free(rules_text);
	if (rules_rc < 0)
		goto fail_log;
	/* The filters' DNS questions: the daemon's resolver, not the relay's
	 * validating one (a blocklist zone is rarely signed). */
	pipeline_set_resolver(pg.pipeline, pg.dns);

	char key_path[PATH_MAX];
	snprintf(key_path, sizeof(key_path), "%s/secret.key", DATA_HERE);
	if (crypto_key_load_or_create(&pg.key, key_path, err, sizeof(err)) < 0)
		goto fail_log;
	if (ciss_token_key_load(&pg.ciss_key, DATA_HERE, err, sizeof(err)) < 0)
		goto fail_log;
	pg.store = store_open(DATA_HERE, err, sizeof(err));
	if (pg.store == NULL)
		goto fail_log;
	/* Before the threads: the socket's mode is set through the umask. */
	control = control_new(&pg, err, sizeof(err));
	if (control == NULL)
		goto fail_log;
	/* Threads only now: the spawner was forked and exec'd before. */
	pg.offload = offload_new(pg.base, 0, err, sizeof(err));
	if (pg.offload == NULL)
		goto fail_log;
	pg.writer = writer_new(pg.base, DATA_HERE, err, sizeof(err));
	if (pg.writer == NULL)
		goto fail_log;
	if (cfg->depot_enabled) {
		pg.archiver =
		    archiver_new(pg.base, DATA_HERE, cfg->depot_batch,
				 cfg->depot_checkpoint_interval, &pg.cfg, err, sizeof(err));
		if (pg.archiver == NULL)
			goto fail_log;
	}
	pg.fetcher = fetcher_new(&pg);
	pg.auth = auth_new(&pg);
	/* popgatectl seals transport rules' AUTH passwords to this key. */
	if (store_transport_publish_key(pg.store, &pg.key) < 0) {
		snprintf(err, sizeof(err), "cannot publish the transport key: %s",
			 store_errmsg(pg.store));
		goto fail_log;
	}
	pg.relay = relay_new(pg.base, pg.store, pg.writer, pg.relay_dns, pg.offload, &pg.key, &pg.cfg,
			     relay_dsn_queued, &pg);
	if (pg.relay == NULL) {
		snprintf(err, sizeof(err), "cannot start the relay");
		goto fail_log;
	}
	if (recover(&pg, &spread) < 0) {
		snprintf(err, sizeof(err), "recovery failed: %s", store_errmsg(pg.store));
		goto fail_log;
	}
	/* After the recovery's sweep of spool/tmp, which would take its files. */
	if (spool_pool_start(DATA_HERE, SPOOL_POOL_FILES) < 0) {
		snprintf(err, sizeof(err), "cannot start the spool's file pool: %s",
			 strerror(errno));
		goto fail_log;
	}
	pg.pop3 = pop3_server_new(&pg, plain_fd, tls_fd, err, sizeof(err));
	if (pg.pop3 == NULL)
		goto fail_log;
	plain_fd = tls_fd = -1; /* the listeners own them now */
	if (smtp_fd >= 0 || submission_fd >= 0) {
		pg.smtp = smtp_server_new(&pg, smtp_fd, submission_fd, err, sizeof(err));
		smtp_fd = submission_fd = -1; /* taken, also on failure */
		if (pg.smtp == NULL)
			goto fail_log;
	}
	if (web_fd >= 0) {
		pg.web = web_server_new(&pg, web_fd, err, sizeof(err));
		web_fd = -1; /* taken, also on failure */
		if (pg.web == NULL)
			goto fail_log;
	}

	housekeeping = event_new(pg.base, -1, EV_PERSIST, housekeeping_cb, &pg);
	struct timeval every = {.tv_sec = HOUSEKEEPING_SECONDS};
	event_add(housekeeping, &every);
	housekeeping_cb(-1, 0, &pg);
	control_check(control); /* the changes made while popgate was stopped */

	log_info("popgate %s ready: POP3 on %s:%d (STLS), POP3S on %s:%d, data in %s",
		 POPGATE_VERSION, cfg->listen_address, cfg->pop3_port, cfg->listen_address,
		 cfg->pop3s_port, cfg->data_dir);
	if (pg.smtp != NULL)
		log_info("SMTP on %s port %d, submission on port %d (0: off)", cfg->listen_address,
			 cfg->smtp_port, cfg->smtp_submission_port);
	if (pg.web != NULL)
		log_info("HTTPS (the CISS sender page) on %s port %d", cfg->listen_address,
			 cfg->web_port);
	event_base_dispatch(pg.base);
	/* The loop also ends when the workers' spawner is gone: an error, so
	 * that the service manager starts popgate again. */
	status = pipeline_spawner_lost(pg.pipeline) ? 1 : 0;
	goto cleanup;

fail_log:
	log_error("%s", err);
cleanup:
	if (sigterm != NULL)
		event_free(sigterm);
	if (sigint != NULL)
		event_free(sigint);
	restart_spread_free(&spread);
	if (housekeeping != NULL)
		event_free(housekeeping);
	control_free(&control);
	pop3_server_free(&pg.pop3);
	smtp_server_free(&pg.smtp);
	/* Before the offload threads and the writer its completions go on to:
	 * what it has not finished stays in processing for the next start. */
	archiver_free(&pg.archiver);
	relay_stop(pg.relay); /* its clients read bodies through the offload threads */
	offload_free(&pg.offload); /* before auth: its jobs point at login requests */
	sign_outbound_drop_pending(); /* the DKIM jobs offload_free dropped */
	auth_free(&pg.auth);
	fetcher_free(&pg.fetcher);
	reload_free(&reload); /* after the fetcher: nothing points into old configurations */
	/* After the sessions and fetches (its completions find them gone) and
	 * before the pipeline (they may queue a message): commits what is queued. */
	writer_free(&pg.writer);
	/* No thread makes bodies any more: the files not handed out go. */
	spool_pool_stop();
	relay_free(&pg.relay); /* after the writer: its last completions reach the relay */
	web_server_free(&pg.web); /* after the writer: an answer's completion replies */
	pipeline_free(&pg.pipeline);
	spawner_stop(&spawner); /* if the pipeline never took it */
	store_close(&pg.store);
	crypto_key_wipe(&pg.key);
	crypto_key_wipe(&pg.ciss_key);
	if (pg.relay_dns != pg.dns)
		resolver_free(&pg.relay_dns);
	resolver_free(&pg.dns);
	if (pg.base != NULL)
		event_base_free(pg.base);
	if (pg.server_tls != NULL)
		SSL_CTX_free(pg.server_tls);
	if (plain_fd >= 0)
		close(plain_fd);
	if (tls_fd >= 0)
		close(tls_fd);
	if (smtp_fd >= 0)
		close(smtp_fd);
	if (submission_fd >= 0)
		close(submission_fd);
	if (web_fd >= 0)
		close(web_fd);
	log_info("stopped");
cleanup_log:
	log_close();
cleanup_config:
	reload_config_free(&pg.cfg);
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
	/* "popgate --spawner CONTROL_FD EXE_FD HOSTNAME": the workers' spawner. */
	if (argc == 5 && strcmp(argv[1], "--spawner") == 0)
		return spawner_main(atoi(argv[2]), atoi(argv[3]), argv[4]);

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
		reload_config_free(&cfg);
		return 1;
	}
	if (check_only) {
		printf("%s: ok\n", config_path);
		reload_config_free(&cfg);
		return 0;
	}
	/* SIGHUP reads the file again after the daemon made the data folder its
	 * working directory: a relative path must be resolved now. */
	char *config_real = realpath(config_path, NULL);
	if (config_real == NULL) {
		fprintf(stderr, "popgate: %s: %s\n", config_path, strerror(errno));
		reload_config_free(&cfg);
		return 1;
	}
	/* Opened while still root (see the top of this file); the spawner
	 * gets it and execs the workers by it. */
	int exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
	if (exe_fd < 0) {
		fprintf(stderr, "popgate: cannot find its own executable: %s\n", strerror(errno));
		free(config_real);
		reload_config_free(&cfg);
		return 1;
	}
	int status = run_daemon(cfg, config_real, exe_fd);
	close(exe_fd);
	free(config_real);
	return status;
}
