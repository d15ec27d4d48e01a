/*
 * test_offload.c — the thread pool behind argon2id (core/offload.c): work
 * runs off the loop's thread, DONE runs on it, in order of completion, and
 * freeing the pool waits for running jobs and drops the rest.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "core/offload.h"

#define JOBS 64

struct job {
	pthread_t loop_thread;
	pthread_t work_thread;
	bool worked;
	bool done_on_loop;
	int *done_count;
	struct event_base *base;
	int total;
};

static void job_work(void *arg)
{
	struct job *job = arg;

	job->work_thread = pthread_self();
	usleep(1000); /* long enough that jobs overlap on the pool's threads */
	job->worked = true;
}

static void job_done(void *arg)
{
	struct job *job = arg;

	job->done_on_loop = pthread_equal(pthread_self(), job->loop_thread);
	if (++*job->done_count == job->total)
		event_base_loopbreak(job->base);
}

static void test_work_off_the_loop_done_on_it(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	char err[128] = "";
	struct offload *offload = offload_new(base, 2, err, sizeof(err));
	static struct job jobs[JOBS];
	int done_count = 0;
	struct timeval limit = {10, 0};

	assert_non_null(offload);
	for (int i = 0; i < JOBS; i++) {
		jobs[i] = (struct job){.loop_thread = pthread_self(),
				       .done_count = &done_count,
				       .base = base,
				       .total = JOBS};
		offload_run(offload, job_work, job_done, &jobs[i]);
	}
	event_base_loopexit(base, &limit); /* bounded, whatever happens */
	event_base_dispatch(base);
	assert_int_equal(done_count, JOBS);
	for (int i = 0; i < JOBS; i++) {
		assert_true(jobs[i].worked);
		assert_true(jobs[i].done_on_loop);
		assert_false(pthread_equal(jobs[i].work_thread, pthread_self()));
	}
	offload_free(&offload);
	assert_null(offload);
	offload_free(&offload); /* NULL is fine */
	event_base_free(base);
}

static void test_free_drops_what_is_not_done(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	char err[128] = "";
	struct offload *offload = offload_new(base, 1, err, sizeof(err));
	static struct job jobs[JOBS];
	int done_count = 0;

	assert_non_null(offload);
	for (int i = 0; i < JOBS; i++) {
		jobs[i] = (struct job){.loop_thread = pthread_self(),
				       .done_count = &done_count,
				       .base = base,
				       .total = JOBS};
		offload_run(offload, job_work, job_done, &jobs[i]);
	}
	/* No loop ran: no DONE may be called, and freeing must not wait for all. */
	offload_free(&offload);
	assert_int_equal(done_count, 0);
	int worked = 0;
	for (int i = 0; i < JOBS; i++)
		worked += jobs[i].worked;
	assert_true(worked < JOBS);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_work_off_the_loop_done_on_it),
		cmocka_unit_test(test_free_drops_what_is_not_done),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
