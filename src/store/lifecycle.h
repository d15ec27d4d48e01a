/*
 * lifecycle.h — a message's life: the table of the moves between states that
 * are allowed, and the one function that writes a message's `state`.
 *
 *   fetched, submitted ─▶ processing ─▶ delivery ─▶ delivered
 *                             │  ▲   └─▶ suspect ─(release)─▶ processing
 *                             │  └──── quarantine, challenged ─▶ delivery
 *                             └─▶ outbound ─▶ sent | bounced
 *
 * Every other module asks for a move from the state it expects to the one it
 * wants; a move the table does not hold is refused and logged, so a bug
 * cannot put a message in a queue it may not reach (delivered straight from
 * processing, unfiltered). Each move is one log event, "state", with the
 * message id and from= and to=.
 */
#ifndef POPGATE_STORE_LIFECYCLE_H
#define POPGATE_STORE_LIFECYCLE_H

#include <stdbool.h>

#include "store/db.h"
#include "store/message.h"

/* True when the table allows a message in FROM to move to TO. */
bool store_lifecycle_allowed(enum message_state from, enum message_state to);

/* The state a new message from SOURCE starts in (processing: every message
 * is filtered first, whatever its source). */
enum message_state store_lifecycle_initial(enum message_source source);

/*
 * Moves message ID from FROM to TO, in one statement that checks FROM (atomic
 * by itself, and inside a caller's transaction undone only with it). PREPEND,
 * if not NULL, replaces the prepended header text. 1 moved (logged as event
 * "state"), 0 the message was not in FROM (nothing logged: a late or repeated
 * event), -1 an error or a move the table refuses (logged).
 */
int store_lifecycle_move(struct store *store, const char *id, enum message_state from,
			 enum message_state to, const char *prepend);

#endif
