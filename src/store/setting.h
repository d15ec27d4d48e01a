/*
 * setting.h — named values the store keeps for popgate itself.
 */
#ifndef POPGATE_STORE_SETTING_H
#define POPGATE_STORE_SETTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/db.h"

/* The setting that holds the administrator's argon2id hash. */
#define STORE_SETTING_ADMIN_HASH "admin_password_hash"

/* The value of setting KEY into *VALUE_R (allocated). 1 found, 0 absent (then
 * *VALUE_R is NULL), -1 error. */
int store_setting_get(struct store *store, const char *key, char **value_r);

/* Sets KEY to VALUE (replacing it). 0/-1. */
int store_setting_set(struct store *store, const char *key, const char *value);

#endif
