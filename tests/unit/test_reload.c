/*
 * test_reload.c — reload.c's SIGHUP: a changed file is put in force and
 * the callback told (old and new), a file with an error changes nothing.
 * A real signal on a real event loop; no fetcher, so a replaced
 * configuration is freed at once (ASan sees a use after it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/config.h"
#include "core/log.h"
#include "core/reload.h"
#include "core/util.h"
#include "popgate.h"

#include "test_support.h"

struct fixture {
	char dir[TEST_DIR_SIZE];
	char path[128];
	struct popgate pg;
	struct reload *reload;
	int changes;
	int old_release, new_release;
};

static void write_config(struct fixture *f, const char *text)
{
	assert_int_equal(util_write_file_atomic(f->path, text, strlen(text), 0644), 0);
}

static void on_change(const struct popgate_config *old, const struct popgate_config *fresh,
		      void *ctx)
{
	struct fixture *f = ctx;

	f->changes++;
	f->old_release = old->release_check_seconds;
	f->new_release = fresh->release_check_seconds;
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char err[512];

	if (test_dir_make(f->dir, sizeof(f->dir), "reload") < 0)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/popgate.conf", f->dir);
	write_config(f, "[server]\nlog_file = -\nmax_bad_commands = 7\n");
	f->pg.cfg = xcalloc(1, sizeof(*f->pg.cfg));
	config_defaults(f->pg.cfg);
	if (config_load(f->pg.cfg, f->path, err, sizeof(err)) < 0)
		return -1;
	f->pg.base = event_base_new();
	if (f->pg.base == NULL)
		return -1;
	f->reload = reload_new(&f->pg, f->path, on_change, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = test_dir_remove(f->dir);

	reload_free(&f->reload);
	reload_config_free(&f->pg.cfg);
	event_base_free(f->pg.base);
	free(f);
	return rc;
}

/* Sends SIGHUP to this process and runs the loop until it is handled. */
static void hangup(struct fixture *f)
{
	assert_int_equal(raise(SIGHUP), 0);
	assert_int_equal(event_base_loop(f->pg.base, EVLOOP_ONCE), 0);
}

static void test_reload_puts_changed_file_in_force(void **state)
{
	struct fixture *f = *state;

	write_config(f, "[server]\nlog_file = -\nmax_bad_commands = 9\n"
			"[queue]\nrelease_check_seconds = 11\n");
	hangup(f);
	assert_int_equal(f->pg.cfg->max_bad_commands, 9);
	assert_int_equal(f->changes, 1);
	assert_int_equal(f->old_release, 60); /* the default */
	assert_int_equal(f->new_release, 11);
}

static void test_reload_refuses_file_with_error(void **state)
{
	struct fixture *f = *state;
	const struct popgate_config *running = f->pg.cfg;

	write_config(f, "[server]\nlog_file = -\nmax_bad_commands = many\n");
	hangup(f);
	assert_ptr_equal(f->pg.cfg, running);
	assert_int_equal(f->pg.cfg->max_bad_commands, 7);
	assert_int_equal(f->changes, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_reload_puts_changed_file_in_force, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_reload_refuses_file_with_error, setup, teardown),
	};

	log_open("-", LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
