/*
 * auth_store.c — what a provider confirmed, on its way to the store: the
 * argon2id hash and sealed copy of the password (offload threads), then a
 * new account and user, or an account's new credentials, committed by the
 * writer thread (store/writer.h); the login goes on in the completion.
 *
 * SECURITY: the job holds the hash and the sealed password until it is
 * freed (wiped then); the plain password stays in the request.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/crypto.h"

#include "core/config.h"
#include "core/log.h"
#include "core/offload.h"
#include "core/util.h"
#include "pop3/auth_internal.h"
#include "popgate.h"
#include "store/account.h"
#include "store/login.h"
#include "store/writer.h"

/* What the provider confirmed, on its way to the store: a new account and
 * user, or an account's new credentials. */
struct auth_store_job {
	struct auth_request *request; /* NULL once the request is gone */
	bool create;
	int64_t account_id; /* to update; or the account created or found */
	char *name;
	char *login;
	char *host;
	char *pseudo_domain;
	char *hash;
	unsigned char *secret;
	size_t secret_len;
	char *user_name; /* of the user created */
	char *address;
};

void auth_store_job_detach(struct auth_store_job *job)
{
	job->request = NULL;
}

static void auth_store_job_free(struct auth_store_job *job)
{
	free(job->name);
	free(job->login);
	free(job->host);
	free(job->pseudo_domain);
	auth_wipe(&job->hash);
	if (job->secret != NULL)
		sodium_memzero(job->secret, job->secret_len);
	free(job->secret);
	free(job->user_name);
	free(job->address);
	free(job);
}

/* In the writer thread: the user and account created (1), or, when another
 * session created the account a moment ago, its credentials updated (2);
 * or the credentials of an account known updated (0). */
static int auth_store_work(struct store *store, void *arg)
{
	struct auth_store_job *job = arg;
	struct store_account account = {0};
	struct store_account existing = {0};

	if (!job->create)
		return store_account_update_credentials(store, job->account_id, job->hash,
							job->secret, job->secret_len) < 0
			   ? -1
			   : 0;
	/* The name is chosen in the transaction that takes it. */
	job->user_name = store_login_user_name_new(store, job->login, job->host);
	if (job->user_name == NULL)
		return -1;
	job->address = xasprintf("%s@%s", job->user_name, job->pseudo_domain);
	account.name = job->name;
	account.login = job->login;
	account.host = job->host;
	account.password_hash = job->hash;
	account.secret = job->secret;
	account.secret_len = job->secret_len;
	if (store_account_create(store, &account, job->user_name, job->address) == 0) {
		job->account_id = account.id;
		free(account.user_name); /* filled in by store_account_create */
		return 1;
	}
	free(account.user_name);
	/* Another session may have created it a moment ago. */
	if (store_account_get(store, job->name, &existing) != 1) {
		store_account_clear(&existing);
		return -1;
	}
	job->account_id = existing.id;
	store_account_clear(&existing);
	store_account_update_credentials(store, job->account_id, job->hash, job->secret,
					 job->secret_len);
	return 2;
}

/* In the loop, once committed: the login succeeds (or fails internally). */
static void auth_store_done(int result, const char *error, void *arg)
{
	struct auth_store_job *job = arg;
	struct auth_request *request = job->request;

	if (result < 0)
		log_event(LOG_ERROR, "error", job->name, NULL, "cannot %s: %s",
			  job->create ? "create the account" : "store the new password", error);
	else if (result == 1)
		log_event(LOG_INFO, "user_created", job->name, NULL, "user %s, address %s",
			  job->user_name, job->address);
	else if (result == 0)
		log_event(LOG_INFO, "credentials_updated", job->name, NULL,
			  "the provider accepted a new password");
	if (request != NULL) {
		request->store_job = NULL;
		request->job_running = false;
		if (request->cancelled)
			auth_request_free(request);
		else if (result < 0)
			auth_fail_internal(request);
		else {
			request->account_id = job->account_id;
			auth_succeed(request, true);
		}
	}
	auth_store_job_free(job);
}

/*
 * The provider confirmed the login: a first one creates the account and its
 * user (CREATE), else the account's credentials are updated. The writer
 * thread commits it; the login succeeds in its completion.
 */
static void auth_store_credentials(struct auth_request *request, bool create)
{
	struct popgate *pg = request->auth->pg;
	struct auth_store_job *job = xcalloc(1, sizeof(*job));

	job->request = request;
	job->create = create;
	job->account_id = request->account_id;
	job->name = xstrdup(request->name);
	job->login = xstrdup(request->login);
	job->host = xstrdup(request->host);
	job->pseudo_domain = xstrdup(pg->cfg->pseudo_domain);
	job->hash = xstrdup(request->new_hash);
	job->secret = xmalloc(request->new_secret_len);
	memcpy(job->secret, request->new_secret, request->new_secret_len);
	job->secret_len = request->new_secret_len;
	if (writer_submit(pg->writer, NULL, auth_store_work, auth_store_done, job) < 0) {
		job->request = NULL;
		auth_store_done(-1, "the store is overloaded", job);
		auth_fail_internal(request);
		return;
	}
	request->store_job = job;
	request->job_running = true; /* a cancel only marks it */
}

/* In an offload thread: the argon2id hash and the sealed copy of the password. */
static void auth_credentials_work(void *arg)
{
	struct auth_request *request = arg;

	request->hash_status = crypto_password_hash(request->new_hash, request->password) == 0 &&
					       crypto_secret_seal(&request->auth->pg->key,
								  request->password,
								  &request->new_secret,
								  &request->new_secret_len) == 0
				       ? 0
				       : -1;
}

/* In the loop: store what the provider confirmed. */
static void auth_credentials_done(void *arg)
{
	struct auth_request *request = arg;

	request->job_running = false;
	if (request->cancelled) {
		auth_request_free(request);
		return;
	}
	if (request->hash_status < 0) {
		auth_fail_internal(request);
		return;
	}
	auth_store_credentials(request, !request->exists);
}

/* auth_internal.h */
void auth_store_confirmed(struct auth_request *request)
{
	request->job_running = true; /* a cancel only marks it */
	offload_run(request->auth->pg->offload, auth_credentials_work, auth_credentials_done,
		    request);
}
