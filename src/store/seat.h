/*
 * seat.h — seats (U3): the limit (setting STORE_SETTING_SEAT_LIMIT), who
 * has one, and who waits.
 */
#ifndef POPGATE_STORE_SEAT_H
#define POPGATE_STORE_SEAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/db.h"

/* The key of the seat limit in the setting table. */
#define STORE_SETTING_SEAT_LIMIT "seat_limit"

struct store_seat_status {
	int64_t limit;	 /* 0 = unlimited */
	int64_t used;	 /* users with a seat */
	int64_t free;	 /* seats left, -1 when unlimited */
	int64_t waiting; /* users without a seat */
};

/* 0/-1. */
int store_seat_status(struct store *store, struct store_seat_status *status);

/*
 * Sets the seat limit (0 = unlimited), then gives seats to waiting users,
 * oldest first, while seats are free. Refused for a negative LIMIT and for a
 * LIMIT below the seats in use. Returns how many users got a seat, or -1.
 */
int store_seat_set_limit(struct store *store, int64_t limit, char *err, size_t errlen);

/* Gives user USER_ID a seat if it has none and one is free, else it waits
 * (for a user just created, U3). 1 has a seat, 0 waiting, -1 error (also for
 * an unknown user). */
int store_seat_assign(struct store *store, int64_t user_id);

#endif
