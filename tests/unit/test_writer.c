/*
 * test_writer.c — the writer thread (store/writer.c) on real SQLite files in
 * a temp folder: many queued jobs commit in fewer transactions, each body is
 * in place and each row committed before its DONE runs, DONE runs in the
 * loop's thread, a failing job reports its own error while the others of its
 * group commit, a bad body fails only its job, the queue is bounded,
 * freeing the writer commits what is queued, a lock another connection
 * holds is waited for in the writer's thread while the loop runs on, and
 * bodies in the spool pool's anonymous files commit like named ones.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <sqlite3.h>

#include "core/util.h"
#include "store/db.h"
#include "store/message.h"
#include "store/spool.h"
#include "store/writer.h"

#include "test_support.h"

#define JOBS 200
#define ACCOUNT_ID 10

struct fixture {
	char dir[TEST_DIR_SIZE];
	struct store *store; /* the "loop's" connection */
	struct event_base *base;
	struct writer *writer;
	pthread_t loop_thread;
	int done_count;
	int expected;
	atomic_bool hold;	/* a job's WORK waits while this is true */
	atomic_bool holding;	/* … and says it does */
};

struct job {
	struct fixture *f;
	char id[SPOOL_ID_LEN + 1];
	bool blocks;   /* waits in WORK while f->hold */
	bool fails;    /* writes its row, then fails */
	int result;
	char error[200];
	bool done;
	bool done_on_loop;
	bool row_visible_at_done; /* the loop's connection sees the row in DONE */
	bool body_in_place_at_done;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char err[256] = "";

	assert_int_equal(test_dir_make(f->dir, sizeof(f->dir), "writer"), 0);
	assert_int_equal(spool_init(f->dir), 0);
	f->store = test_store_open(f->dir);
	test_exec_sql(f->store, "INSERT INTO user (id, name, origin, created_at)"
				" VALUES (1, 'u', 'provider', 1);"
				"INSERT INTO account (id, name, login, host, user_id, password_hash,"
				" password_secret, created_at) VALUES"
				" (10, 'a@h', 'a', 'h', 1, 'x', x'00', 1)");
	f->base = event_base_new();
	assert_non_null(f->base);
	f->writer = writer_new(f->base, f->dir, err, sizeof(err));
	if (f->writer == NULL)
		fail_msg("writer_new: %s", err);
	f->loop_thread = pthread_self();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	writer_free(&f->writer);
	event_base_free(f->base);
	store_close(&f->store);
	test_dir_remove(f->dir);
	free(f);
	return 0;
}

static bool row_exists(struct store *store, const char *id)
{
	return store_message_exists(store, id) == 1;
}

static bool body_exists(const char *dir, const char *id)
{
	char *path = spool_path(dir, id);
	bool exists = test_path_exists(path);

	free(path);
	return exists;
}

/* In the writer thread. */
static int job_work(struct store *store, void *arg)
{
	struct job *job = arg;
	struct fixture *f = job->f;

	if (job->blocks) {
		atomic_store(&f->holding, true);
		/* Bounded: the test lets go long before. */
		for (int i = 0; i < 10000 && atomic_load(&f->hold); i++)
			usleep(1000);
	}
	if (store_message_insert(store, job->id, ACCOUNT_ID, NULL, 5, NULL) < 0)
		return -1;
	if (job->fails) {
		/* What the store does on a failure of its own: logs it, then -1. */
		sqlite3_exec(store->db, "SELECT no_such_column FROM message", NULL, NULL, NULL);
		return -1;
	}
	return 7;
}

/* In the loop. */
static void job_done(int result, const char *error, void *arg)
{
	struct job *job = arg;
	struct fixture *f = job->f;

	job->result = result;
	snprintf(job->error, sizeof(job->error), "%s", error != NULL ? error : "");
	job->done = true;
	job->done_on_loop = pthread_equal(pthread_self(), f->loop_thread);
	job->row_visible_at_done = row_exists(f->store, job->id);
	job->body_in_place_at_done = body_exists(f->dir, job->id);
	if (++f->done_count == f->expected)
		event_base_loopbreak(f->base);
}

/* A body with some bytes, not yet committed, for JOB. */
static struct spool_writer *job_body(struct fixture *f, struct job *job)
{
	struct spool_writer *body = spool_writer_new(f->dir);

	assert_non_null(body);
	spool_writer_write(body, "hello", 5);
	memcpy(job->id, body->id, sizeof(job->id));
	return body;
}

/* Runs the loop until EXPECTED completions (bounded). */
static void run_loop(struct fixture *f, int expected)
{
	struct timeval limit = {20, 0};

	f->expected = expected;
	if (f->done_count >= expected)
		return;
	event_base_loopexit(f->base, &limit);
	event_base_dispatch(f->base);
	assert_int_equal(f->done_count, expected);
}

/* Waits (bounded) until the blocking job is inside its WORK. */
static void wait_holding(struct fixture *f)
{
	for (int i = 0; i < 10000 && !atomic_load(&f->holding); i++)
		usleep(1000);
	assert_true(atomic_load(&f->holding));
}

static void test_many_jobs_fewer_transactions(void **state)
{
	struct fixture *f = *state;
	static struct job jobs[JOBS];
	char tmp[TEST_DIR_SIZE + 16];

	/* The first job holds the thread, so the others queue up behind it
	 * and go as one group. */
	atomic_store(&f->hold, true);
	for (int i = 0; i < JOBS; i++) {
		jobs[i] = (struct job){.f = f, .blocks = i == 0};
		assert_int_equal(writer_submit(f->writer, job_body(f, &jobs[i]), job_work, job_done,
					       &jobs[i]),
				 0);
		if (i == 0)
			wait_holding(f);
	}
	atomic_store(&f->hold, false);
	run_loop(f, JOBS);
	for (int i = 0; i < JOBS; i++) {
		assert_true(jobs[i].done);
		assert_int_equal(jobs[i].result, 7);
		assert_string_equal(jobs[i].error, "");
		assert_true(jobs[i].done_on_loop);
		assert_true(jobs[i].row_visible_at_done);
		assert_true(jobs[i].body_in_place_at_done);
	}
	assert_int_equal(writer_transactions(f->writer), 2);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"), JOBS);
	snprintf(tmp, sizeof(tmp), "%s/spool/tmp", f->dir);
	assert_int_equal(test_count_entries(tmp), 0);
}

static void test_failing_job_alone_fails(void **state)
{
	struct fixture *f = *state;
	static struct job jobs[5];

	atomic_store(&f->hold, true);
	for (int i = 0; i < 5; i++) {
		jobs[i] = (struct job){.f = f, .blocks = i == 0, .fails = i == 2};
		assert_int_equal(writer_submit(f->writer, job_body(f, &jobs[i]), job_work, job_done,
					       &jobs[i]),
				 0);
		if (i == 0)
			wait_holding(f);
	}
	atomic_store(&f->hold, false);
	run_loop(f, 5);
	for (int i = 0; i < 5; i++) {
		if (i == 2) {
			assert_int_equal(jobs[i].result, -1);
			assert_non_null(strstr(jobs[i].error, "no_such_column"));
			/* Its row was undone and its body removed. */
			assert_false(jobs[i].row_visible_at_done);
			assert_false(jobs[i].body_in_place_at_done);
			continue;
		}
		assert_int_equal(jobs[i].result, 7);
		assert_true(jobs[i].row_visible_at_done);
		assert_true(jobs[i].body_in_place_at_done);
	}
	/* Jobs 1..4 were one group: the failure did not cost the others. */
	assert_int_equal(writer_transactions(f->writer), 2);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"), 4);
}

static void test_bad_body_fails_its_job_only(void **state)
{
	struct fixture *f = *state;
	static struct job jobs[3];

	for (int i = 0; i < 3; i++) {
		jobs[i] = (struct job){.f = f};
		struct spool_writer *body = job_body(f, &jobs[i]);
		if (i == 1)
			body->failed = true; /* a write error remembered: EIO at commit */
		assert_int_equal(writer_submit(f->writer, body, job_work, job_done, &jobs[i]), 0);
	}
	run_loop(f, 3);
	assert_int_equal(jobs[1].result, -1);
	assert_non_null(strstr(jobs[1].error, "cannot store the body"));
	assert_false(jobs[1].row_visible_at_done);
	assert_false(jobs[1].body_in_place_at_done);
	assert_int_equal(jobs[0].result, 7);
	assert_int_equal(jobs[2].result, 7);
	assert_true(jobs[2].row_visible_at_done && jobs[2].body_in_place_at_done);
}

static void test_done_never_inside_submit_and_free_drains(void **state)
{
	struct fixture *f = *state;
	static struct job jobs[50];

	for (int i = 0; i < 50; i++) {
		jobs[i] = (struct job){.f = f};
		assert_int_equal(writer_submit(f->writer, job_body(f, &jobs[i]), job_work, job_done,
					       &jobs[i]),
				 0);
	}
	assert_int_equal(f->done_count, 0); /* DONE waits for the loop */
	/* Stopping commits every queued job and calls its DONE here. */
	writer_free(&f->writer);
	assert_null(f->writer);
	assert_int_equal(f->done_count, 50);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(jobs[i].result, 7);
		assert_true(jobs[i].row_visible_at_done);
	}
	writer_free(&f->writer); /* NULL is fine */
}

static void test_queue_is_bounded(void **state)
{
	struct fixture *f = *state;
	struct job *jobs = xcalloc(WRITER_QUEUE_MAX + 2, sizeof(*jobs));
	struct job *extra = &jobs[WRITER_QUEUE_MAX + 1];
	char tmp[TEST_DIR_SIZE + 16];

	atomic_store(&f->hold, true);
	for (int i = 0; i <= WRITER_QUEUE_MAX; i++) {
		jobs[i] = (struct job){.f = f, .blocks = i == 0};
		spool_new_id(jobs[i].id);
		assert_int_equal(writer_submit(f->writer, NULL, job_work, job_done, &jobs[i]), 0);
		if (i == 0)
			wait_holding(f);
	}
	/* Full: refused at once, its body removed, its DONE never called. */
	*extra = (struct job){.f = f};
	assert_int_equal(writer_submit(f->writer, job_body(f, extra), job_work, job_done, extra),
			 -1);
	snprintf(tmp, sizeof(tmp), "%s/spool/tmp", f->dir);
	assert_int_equal(test_count_entries(tmp), 0);
	atomic_store(&f->hold, false);
	run_loop(f, WRITER_QUEUE_MAX + 1);
	assert_false(extra->done);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"),
			 WRITER_QUEUE_MAX + 1);
	free(jobs);
}

static void test_waits_for_a_lock_in_its_thread(void **state)
{
	struct fixture *f = *state;
	static struct job jobs[3];
	sqlite3 *other = NULL;

	/* Another process's connection holds the write lock. */
	assert_int_equal(sqlite3_open_v2(sqlite3_db_filename(f->store->db, "main"), &other,
					 SQLITE_OPEN_READWRITE, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < 3; i++) {
		jobs[i] = (struct job){.f = f};
		assert_int_equal(writer_submit(f->writer, job_body(f, &jobs[i]), job_work, job_done,
					       &jobs[i]),
				 0);
	}
	/* The loop goes on meanwhile: nothing is done while the lock is held. */
	struct timeval a_while = {0, 200 * 1000};
	event_base_loopexit(f->base, &a_while);
	event_base_dispatch(f->base);
	assert_int_equal(f->done_count, 0);
	assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	run_loop(f, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(jobs[i].result, 7);
		assert_true(jobs[i].row_visible_at_done);
	}
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"), 3);
}

static void test_pooled_bodies_commit_in_a_group(void **state)
{
	struct fixture *f = *state;
	static struct job jobs[8];
	struct spool_writer *bodies[8];
	char tmp[TEST_DIR_SIZE + 16];

	assert_int_equal(spool_pool_start(f->dir, 8), 0);
	for (int i = 0; i < 10000 && spool_pool_ready() < 8; i++)
		usleep(1000);
	assert_int_equal(spool_pool_ready(), 8);
	for (int i = 0; i < 8; i++) {
		jobs[i] = (struct job){.f = f, .blocks = i == 0, .fails = i == 5};
		bodies[i] = job_body(f, &jobs[i]);
		/* Taken from the pool: no name until the writer links it. */
		assert_true(bodies[i]->anonymous);
	}
	atomic_store(&f->hold, true);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(writer_submit(f->writer, bodies[i], job_work, job_done, &jobs[i]),
				 0);
		if (i == 0)
			wait_holding(f);
	}
	atomic_store(&f->hold, false);
	run_loop(f, 8);
	for (int i = 0; i < 8; i++) {
		char *path = spool_path(f->dir, jobs[i].id);
		char *data = NULL;
		size_t len = 0;

		assert_true(jobs[i].done);
		if (i == 5) {
			/* Its row failed: its body was linked, then removed. */
			assert_int_equal(jobs[i].result, -1);
			assert_false(jobs[i].row_visible_at_done);
			assert_false(test_path_exists(path));
		} else {
			assert_int_equal(jobs[i].result, 7);
			assert_true(jobs[i].row_visible_at_done);
			assert_true(jobs[i].body_in_place_at_done);
			assert_int_equal(util_read_file(path, &data, &len), 0);
			assert_int_equal(len, 5);
			assert_memory_equal(data, "hello", 5);
		}
		free(data);
		free(path);
	}
	/* The first job alone, then the other seven together. */
	assert_int_equal(writer_transactions(f->writer), 2);
	spool_pool_stop();
	snprintf(tmp, sizeof(tmp), "%s/spool/tmp", f->dir);
	assert_int_equal(test_count_entries(tmp), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_many_jobs_fewer_transactions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failing_job_alone_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_body_fails_its_job_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_done_never_inside_submit_and_free_drains, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_queue_is_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_waits_for_a_lock_in_its_thread, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pooled_bodies_commit_in_a_group, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
