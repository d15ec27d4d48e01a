/*
 * reload.h — what the daemon does about its own life beyond start-up and
 * stop: SIGHUP (the log reopened, the configuration read again and put in
 * force) and, at start, the fetches of a restart spread over time instead of
 * one provider login per account at once.
 */
#ifndef POPGATE_CORE_RELOAD_H
#define POPGATE_CORE_RELOAD_H

#include "core/config.h"
#include "popgate.h"

struct reload;

/*
 * Called after a reload put FRESH in force in place of OLD (still valid
 * during the call), for what a module schedules from a value of the
 * configuration (a timer's period).
 */
typedef void reload_changed_fn(const struct popgate_config *old, const struct popgate_config *fresh,
			       void *ctx);

/*
 * Catches SIGHUP on PG's loop from now on; each one reopens the log and
 * reloads CONFIG_PATH (absolute: the daemon changes its working directory),
 * replacing pg->cfg. CHANGED (may be NULL) is told of each replacement.
 */
struct reload *reload_new(struct popgate *pg, const char *config_path, reload_changed_fn *changed,
			  void *ctx);

/*
 * Stops catching SIGHUP and frees the configurations a reload replaced:
 * call it once nothing (no fetch, no login check) can point into them, before
 * the loop is freed. pg->cfg stays the caller's. NULL is fine.
 */
void reload_free(struct reload **reload_p);

/* Frees a configuration made by config_defaults/config_load; sets *CFG_P
 * to NULL. NULL is fine. */
void reload_config_free(struct popgate_config **cfg_p);

struct restart_spread;

/*
 * The start-up fetches: accounts whose last fetch never ended are fetched
 * now, the others one every [fetch] restart_spread / count seconds.
 * *SPREAD_R gets what restart_spread_free ends, or NULL. 0 or -1 (store
 * error).
 */
int restart_fetch_start(struct popgate *pg, struct restart_spread **spread_r);

/* Ends the spread (its timer) before its time. NULL is fine. */
void restart_spread_free(struct restart_spread **spread_p);

#endif
