/*
 * popload.c — the POP3 load generator of popgate's benchmarks.
 *
 * Pickup mode: C concurrent sessions over a list of accounts; each session
 * connects, logs in with USER/PASS, asks STAT, retrieves messages 1..M
 * (reading every multi-line reply to its terminator and counting its bytes)
 * and then either sends QUIT or just closes, so that the messages stay for the
 * next round (RFC 1939: a session without QUIT changes nothing). It runs for R
 * rounds over the account list or for T seconds and prints one JSON line:
 * sessions/s, messages/s, MB/s, p50/p99 session latency (connect to end).
 * With --session-log each session's start and end (CLOCK_MONOTONIC, the
 * clock of Python's time.monotonic) go to a file, so the caller can tell the
 * sessions that ran during some event of its own from the others; in seconds
 * mode a line or end of input on stdin (a pipe) ends the run sooner.
 *
 * Idle mode: opens N sessions, logs each in, prints a READY line and holds
 * them idle until a line or end-of-file on stdin or a timeout, so the caller
 * can measure the server's memory per idle session; then prints a JSON line.
 *
 * One process, one libevent loop, no threads; nothing blocks. Never two
 * sessions of one account at once (servers refuse a second with [IN-USE]), so
 * the account list must be at least as long as the concurrency.
 *
 * It must never connect anywhere but 127.0.0.1, and never wait without a
 * bound: every step has a timeout, and the whole run a deadline.
 *
 * SECURITY: the server's replies are untrusted input: lines are read into a
 * fixed buffer with a length limit, message bodies are scanned, never kept,
 * and any reply text printed is sanitised. Passwords come from a file given
 * by the caller and are sent only to the server under test.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/util.h"

/* Longest status line accepted from the server (RFC 2449 allows 512). */
#define POPLOAD_MAX_LINE 4096
/* More accounts than any benchmark needs: a bound on the input file. */
#define POPLOAD_MAX_ACCOUNTS 100000
#define POPLOAD_MAX_SESSIONS 20000
/* Extents looked at per evbuffer_peek while scanning a message body. */
#define POPLOAD_PEEK_EXTENTS 16

enum session_state {
	SESSION_CONNECTING,
	SESSION_GREETING,
	SESSION_USER,
	SESSION_PASS,
	SESSION_STAT,
	SESSION_RETR_STATUS,
	SESSION_RETR_BODY,
	SESSION_QUIT,
	SESSION_IDLE,
};

static const char *const session_state_names[] = {
	[SESSION_CONNECTING] = "connect", [SESSION_GREETING] = "greeting",
	[SESSION_USER] = "USER",	  [SESSION_PASS] = "PASS",
	[SESSION_STAT] = "STAT",	  [SESSION_RETR_STATUS] = "RETR",
	[SESSION_RETR_BODY] = "RETR body", [SESSION_QUIT] = "QUIT",
	[SESSION_IDLE] = "idle",
};
_Static_assert(sizeof(session_state_names) / sizeof(session_state_names[0]) ==
		       SESSION_IDLE + 1,
	       "a name for every session state");

/* Where the body scanner stands: the terminator is "." alone on a line. */
enum body_state {
	BODY_LINE_START,
	BODY_IN_LINE,
	BODY_DOT,    /* a '.' at the start of a line */
	BODY_DOT_CR, /* ".\r" at the start of a line */
};

struct account {
	char *user;
	char *password;
	bool busy; /* a session of this account is open */
};

struct load;

struct session {
	struct load *load;
	struct bufferevent *bev;
	struct account *account;
	enum session_state state;
	enum body_state body_state;
	double started;	     /* monotonic seconds at connect */
	long retr_next;	     /* next message number to RETR */
	long retr_last;	     /* last message number to RETR */
	uint64_t messages;   /* messages retrieved completely */
	uint64_t bytes;	     /* bytes of RETR replies */
	TAILQ_ENTRY(session) entry; /* in load->sessions */
};

struct options {
	int port;
	const char *accounts_path;
	int concurrency;
	long retr_limit; /* -1: every message STAT reports */
	bool quit;
	long rounds;
	double seconds;
	double timeout;
	int idle_count; /* > 0: idle mode */
	int ramp;
	double hold;
	const char *label;
	const char *session_log_path;
	double rate; /* > 0: sessions started per second at most, evenly spaced */
};

struct load {
	struct options opt;
	struct event_base *base;
	struct sockaddr_in address;
	struct account *accounts;
	size_t account_count;

	/* Which account the next session takes: sequence number modulo the list. */
	uint64_t next_sequence;
	uint64_t sequence_limit; /* rounds mode: rounds × accounts */
	double started;
	double deadline; /* seconds mode: no session starts after this */
	double finished;
	int active;

	uint64_t sessions_ok;
	uint64_t sessions_failed;
	uint64_t messages;
	uint64_t bytes;
	double *latencies; /* seconds, one per successful session */
	size_t latency_count;
	size_t latency_capacity;
	char first_error[200];

	/* Every open session, so that any way out of the loop can free them. */
	TAILQ_HEAD(, session) sessions;

	/* Idle mode. */
	int idle_launched;
	int idle_ready;
	int idle_dropped;
	bool idle_reported;
	double ready_at;
	struct event *stdin_event;
	struct event *hold_timer;
	struct event *deadline_timer;
	bool timed_out;
	FILE *session_log; /* --session-log: "start end ok" per session */
	struct event *rate_timer; /* --rate: pending until the next start is due */
	double next_start;
};

static double popload_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval popload_timeval(double seconds)
{
	struct timeval tv;

	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	return tv;
}

static void load_note_error(struct load *load, const char *what, const char *detail, size_t len)
{
	char clean[120];

	if (load->first_error[0] != '\0')
		return;
	util_sanitize(clean, sizeof(clean), detail, len);
	/* The text goes into a JSON string: quotes and backslashes must not. */
	for (char *c = clean; *c != '\0'; c++)
		if (*c == '"' || *c == '\\')
			*c = '\'';
	snprintf(load->first_error, sizeof(load->first_error), "%s: %s", what, clean);
}

static void load_record_latency(struct load *load, double seconds)
{
	if (load->latency_count == load->latency_capacity) {
		load->latency_capacity = load->latency_capacity ? load->latency_capacity * 2 : 1024;
		load->latencies =
			xrealloc(load->latencies, load->latency_capacity * sizeof(*load->latencies));
	}
	load->latencies[load->latency_count++] = seconds;
}

/* Picks the account for a new session, or NULL when no session should start. */
static struct account *load_next_account(struct load *load)
{
	if (load->opt.idle_count > 0) {
		if (load->idle_launched >= load->opt.idle_count)
			return NULL;
		return &load->accounts[load->idle_launched];
	}
	if (load->opt.seconds > 0 ? popload_now() >= load->deadline
				  : load->next_sequence >= load->sequence_limit)
		return NULL;
	/* An account whose previous session still runs is skipped; with at
	 * least as many accounts as sessions a free one is always found. */
	for (size_t tries = 0; tries < load->account_count; tries++) {
		struct account *account =
			&load->accounts[load->next_sequence++ % load->account_count];

		if (!account->busy)
			return account;
		if (load->opt.seconds <= 0 && load->next_sequence >= load->sequence_limit)
			return NULL;
	}
	return NULL;
}

static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_event_cb(struct bufferevent *bev, short events, void *arg);
static void load_launch(struct load *load);
static void load_idle_check_ready(struct load *load);

/* Pickup mode: ends the loop once no session runs and none is due. */
static void load_check_done(struct load *load)
{
	if (load->opt.idle_count > 0 || load->active > 0 ||
	    (load->rate_timer != NULL && evtimer_pending(load->rate_timer, NULL)))
		return;
	load->finished = popload_now();
	event_base_loopexit(load->base, NULL);
}

static void session_free(struct session **session)
{
	struct session *s = *session;

	if (s == NULL)
		return;
	if (s->bev != NULL)
		bufferevent_free(s->bev); /* closes the socket: no QUIT, nothing changes */
	if (s->account != NULL)
		s->account->busy = false;
	TAILQ_REMOVE(&s->load->sessions, s, entry);
	free(s);
	*session = NULL;
}

/* Closes every open session (without QUIT) at the end of a run. */
static void load_free_sessions(struct load *load)
{
	while (!TAILQ_EMPTY(&load->sessions)) {
		struct session *s = TAILQ_FIRST(&load->sessions);

		session_free(&s);
		load->active--;
	}
}

/* Ends SESSION: counts it as a success (OK) or a failure, frees it, and keeps
 * the load going. Always returns false ("the session is gone"), so callers can
 * end with `return session_end(...)`. */
static bool session_end(struct session *s, bool ok)
{
	struct load *load = s->load;

	if (load->opt.idle_count > 0) {
		if (s->state == SESSION_IDLE) {
			load->idle_ready--;
			load->idle_dropped++;
		} else {
			load->sessions_failed++;
		}
	} else if (ok) {
		if (load->session_log != NULL)
			fprintf(load->session_log, "%.6f %.6f 1\n", s->started, popload_now());
		load->sessions_ok++;
		load->messages += s->messages;
		load->bytes += s->bytes;
		load_record_latency(load, popload_now() - s->started);
	} else {
		if (load->session_log != NULL)
			fprintf(load->session_log, "%.6f %.6f 0\n", s->started, popload_now());
		load->sessions_failed++;
	}
	load->active--;
	session_free(&s);
	if (load->opt.idle_count > 0)
		load_idle_check_ready(load);
	load_launch(load);
	load_check_done(load);
	return false;
}

static bool session_fail(struct session *s, const char *detail, size_t len)
{
	load_note_error(s->load, session_state_names[s->state], detail, len);
	return session_end(s, false);
}

static void session_send(struct session *s, const char *command)
{
	evbuffer_add(bufferevent_get_output(s->bev), command, strlen(command));
}

/* The session has done its work: QUIT, close, or (idle mode) wait. Returns
 * false when the session has ended (and is freed). */
static bool session_finish_work(struct session *s)
{
	struct load *load = s->load;

	if (load->opt.idle_count > 0) {
		s->state = SESSION_IDLE;
		/* Idle sessions wait without a timeout of ours; a server that
		 * drops one is counted. */
		bufferevent_set_timeouts(s->bev, NULL, NULL);
		load->idle_ready++;
		load_idle_check_ready(load);
		load_launch(load);
		return true;
	}
	if (load->opt.quit) {
		s->state = SESSION_QUIT;
		session_send(s, "QUIT\r\n");
		return true;
	}
	return session_end(s, true);
}

/* Asks for the next message, or finishes. False when the session has ended. */
static bool session_next_retr(struct session *s)
{
	if (s->retr_next > s->retr_last)
		return session_finish_work(s);
	s->state = SESSION_RETR_STATUS;
	evbuffer_add_printf(bufferevent_get_output(s->bev), "RETR %ld\r\n", s->retr_next);
	return true;
}

/*
 * Scans the body of a RETR reply in the input, counting and draining what it
 * passes. Returns true once the terminating "." line is consumed. Lines end in
 * CRLF on the wire; a bare LF is accepted as well.
 */
static bool session_scan_body(struct session *s, struct evbuffer *in)
{
	struct evbuffer_iovec vec[POPLOAD_PEEK_EXTENTS];

	/* Each pass drains what it scanned, so the loop ends with the buffer. */
	while (evbuffer_get_length(in) > 0) {
		int extents = evbuffer_peek(in, -1, NULL, vec, POPLOAD_PEEK_EXTENTS);
		size_t consumed = 0;

		if (extents > POPLOAD_PEEK_EXTENTS)
			extents = POPLOAD_PEEK_EXTENTS;
		for (int i = 0; i < extents; i++) {
			const unsigned char *base = vec[i].iov_base;
			const unsigned char *p = base;
			const unsigned char *end = base + vec[i].iov_len;

			while (p < end) {
				const unsigned char *nl;
				bool done = false;

				switch (s->body_state) {
				case BODY_IN_LINE:
					nl = memchr(p, '\n', (size_t)(end - p));
					if (nl == NULL) {
						p = end;
						break;
					}
					p = nl + 1;
					s->body_state = BODY_LINE_START;
					break;
				case BODY_LINE_START:
					if (*p == '.')
						s->body_state = BODY_DOT;
					else if (*p != '\n')
						s->body_state = BODY_IN_LINE;
					p++;
					break;
				case BODY_DOT:
					if (*p == '\r') {
						s->body_state = BODY_DOT_CR;
						p++;
					} else if (*p == '\n') {
						p++;
						done = true;
					} else {
						/* A dot-stuffed line: look at this byte again. */
						s->body_state = BODY_IN_LINE;
					}
					break;
				case BODY_DOT_CR:
					if (*p == '\n') {
						p++;
						done = true;
					} else {
						s->body_state = BODY_IN_LINE;
					}
					break;
				}
				if (done) {
					consumed += (size_t)(p - base);
					s->bytes += consumed;
					evbuffer_drain(in, consumed);
					return true;
				}
			}
			consumed += vec[i].iov_len;
		}
		s->bytes += consumed;
		evbuffer_drain(in, consumed);
	}
	return false;
}

/* Handles one status line LINE (LEN bytes, no CRLF) in the session's state.
 * False when the session has ended (and is freed). */
static bool session_handle_line(struct session *s, const char *line, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	long count = -1;

	if (s->state == SESSION_IDLE)
		return true; /* unasked: a notice before the server closes */
	if (len < 3 || memcmp(line, "+OK", 3) != 0)
		return session_fail(s, line, len);
	switch (s->state) {
	case SESSION_GREETING:
		s->state = SESSION_USER;
		evbuffer_add_printf(out, "USER %s\r\n", s->account->user);
		return true;
	case SESSION_USER:
		s->state = SESSION_PASS;
		evbuffer_add_printf(out, "PASS %s\r\n", s->account->password);
		return true;
	case SESSION_PASS:
		s->state = SESSION_STAT;
		session_send(s, "STAT\r\n");
		return true;
	case SESSION_STAT:
		if (sscanf(line, "+OK %ld", &count) != 1 || count < 0)
			return session_fail(s, line, len);
		s->retr_next = 1;
		s->retr_last = s->load->opt.retr_limit < 0 || s->load->opt.retr_limit > count
				       ? count
				       : s->load->opt.retr_limit;
		if (s->load->opt.idle_count > 0)
			s->retr_last = 0;
		return session_next_retr(s);
	case SESSION_RETR_STATUS:
		s->state = SESSION_RETR_BODY;
		s->body_state = BODY_LINE_START;
		return true;
	case SESSION_QUIT:
		return session_end(s, true);
	case SESSION_CONNECTING:
	case SESSION_RETR_BODY:
	case SESSION_IDLE:
		break;
	}
	return session_fail(s, "unexpected line", strlen("unexpected line"));
}

static void session_read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	bool alive = true;

	/* Each pass consumes a status line or a whole body; the loop ends with
	 * the input or with the session. */
	while (alive) {
		char line[POPLOAD_MAX_LINE + 1];
		struct evbuffer_ptr eol;
		size_t eol_len = 0;
		size_t len;

		if (s->state == SESSION_RETR_BODY) {
			if (!session_scan_body(s, in))
				return;
			s->messages++;
			s->retr_next++;
			alive = session_next_retr(s);
			continue;
		}
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(in) > POPLOAD_MAX_LINE)
				session_fail(s, "reply line too long", 19);
			return;
		}
		len = (size_t)eol.pos;
		if (len > POPLOAD_MAX_LINE) {
			session_fail(s, "reply line too long", 19);
			return;
		}
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, eol_len);
		line[len] = '\0';
		if (s->state == SESSION_RETR_STATUS)
			s->bytes += len + eol_len;
		alive = session_handle_line(s, line, len);
	}
}

static void session_event_cb(struct bufferevent *bev, short events, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (events & BEV_EVENT_CONNECTED) {
		s->state = SESSION_GREETING;
		return;
	}
	if (events & BEV_EVENT_TIMEOUT) {
		session_fail(s, "timeout", 7);
		return;
	}
	if (events & BEV_EVENT_EOF) {
		session_fail(s, "connection closed by the server", 31);
		return;
	}
	if (events & BEV_EVENT_ERROR) {
		const char *why = strerror(EVUTIL_SOCKET_ERROR());

		session_fail(s, why, strlen(why));
	}
}

/* A session that could not even start (no socket: EMFILE, ENOBUFS) is
 * counted and freed here, without session_end: that would start the next one
 * from inside this call and, with every start failing, recurse without end. */
static bool load_start_failed(struct load *load, struct session *s, const char *why)
{
	load_note_error(load, "connect", why, strlen(why));
	load->sessions_failed++;
	load->active--;
	session_free(&s);
	if (load->active == 0)
		event_base_loopexit(load->base, NULL);
	return false;
}

/* Starts one session; false when none was started (no account left, or the
 * start failed: the next session to end starts another). */
static bool load_start_session(struct load *load)
{
	struct account *account = load_next_account(load);
	struct sockaddr *address = (struct sockaddr *)&load->address;
	struct session *s;
	struct timeval timeout;

	if (account == NULL)
		return false;
	s = xcalloc(1, sizeof(*s));
	s->load = load;
	s->account = account;
	s->state = SESSION_CONNECTING;
	s->started = popload_now();
	account->busy = true;
	load->active++;
	TAILQ_INSERT_TAIL(&load->sessions, s, entry);
	if (load->opt.idle_count > 0)
		load->idle_launched++;
	s->bev = bufferevent_socket_new(load->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		return load_start_failed(load, s, "bufferevent_socket_new failed");
	bufferevent_setcb(s->bev, session_read_cb, NULL, session_event_cb, s);
	timeout = popload_timeval(load->opt.timeout);
	bufferevent_set_timeouts(s->bev, &timeout, &timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	/* A refused connection is reported later through session_event_cb;
	 * only a failure to make the socket comes back here. */
	if (bufferevent_socket_connect(s->bev, address, sizeof(load->address)) < 0)
		return load_start_failed(load, s, strerror(errno));
	return true;
}

/* Starts sessions until the concurrency (or in idle mode the ramp) is reached. */
static void load_launch(struct load *load)
{
	int limit;

	if (load->opt.idle_count > 0) {
		/* In flight: sessions started and not yet logged in. */
		for (;;) {
			int in_flight = load->active - load->idle_ready;

			if (in_flight >= load->opt.ramp || !load_start_session(load))
				return;
		}
	}
	limit = load->opt.concurrency;
	while (load->active < limit) {
		if (load->opt.rate > 0) {
			double now = popload_now();

			if (load->opt.seconds > 0 ? now >= load->deadline
						  : load->next_sequence >= load->sequence_limit)
				return;
			if (now < load->next_start) {
				struct timeval wait = popload_timeval(load->next_start - now);

				evtimer_add(load->rate_timer, &wait);
				return;
			}
			/* Evenly spaced; after a slow stretch (every slot busy)
			 * it goes on at the rate, without a burst to catch up. */
			load->next_start = fmax(load->next_start, now - 0.5 / load->opt.rate) +
					   1.0 / load->opt.rate;
		}
		if (!load_start_session(load))
			return;
	}
}

static void load_rate_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	struct load *load = arg;

	(void)fd;
	(void)events;
	load_launch(load);
	load_check_done(load);
}

/* Closes every idle session, prints the idle report and ends the loop. */
static void load_idle_release(struct load *load)
{
	if (load->idle_reported)
		return;
	load->idle_reported = true;
	load_free_sessions(load);
	printf("{\"mode\":\"idle\",\"label\":\"%s\",\"port\":%d,\"sessions\":%d,"
	       "\"ready\":%d,\"failed\":%llu,\"dropped\":%d,\"login_seconds\":%.3f,"
	       "\"first_error\":\"%s\"}\n",
	       load->opt.label, load->opt.port, load->opt.idle_count, load->idle_ready,
	       (unsigned long long)load->sessions_failed, load->idle_dropped,
	       load->ready_at - load->started, load->first_error);
	fflush(stdout);
	event_base_loopexit(load->base, NULL);
}

static void load_stdin_cb(evutil_socket_t fd, short events, void *arg)
{
	char buf[256];

	(void)events;
	/* Any line, or end of input, ends the hold. */
	if (read(fd, buf, sizeof(buf)) < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	load_idle_release(arg);
}

/* Seconds mode: a line or end of input on stdin starts no more sessions;
 * the open ones finish, then the report follows as at the deadline. */
static void load_stdin_stop_cb(evutil_socket_t fd, short events, void *arg)
{
	struct load *load = arg;
	char buf[256];

	(void)events;
	if (read(fd, buf, sizeof(buf)) < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	event_del(load->stdin_event);
	load->deadline = popload_now();
	if (load->rate_timer != NULL)
		evtimer_del(load->rate_timer);
	load_check_done(load);
}

/* True if stdin can be watched by the loop: a pipe, a socket or a terminal
 * (a file or /dev/null is always readable). */
static bool popload_stdin_watchable(void)
{
	struct stat st;

	return fstat(STDIN_FILENO, &st) == 0 &&
	       (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(STDIN_FILENO));
}

static void load_hold_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	load_idle_release(arg);
}

/* Once every idle session is logged in or has failed: READY, then hold. */
static void load_idle_check_ready(struct load *load)
{
	struct timeval hold;

	if (load->ready_at > 0 || load->idle_launched < load->opt.idle_count ||
	    load->active != load->idle_ready)
		return;
	load->ready_at = popload_now();
	printf("READY {\"sessions\":%d,\"ready\":%d,\"failed\":%llu,\"login_seconds\":%.3f}\n",
	       load->opt.idle_count, load->idle_ready, (unsigned long long)load->sessions_failed,
	       load->ready_at - load->started);
	fflush(stdout);
	if (load->idle_ready == 0) {
		/* Nothing to hold: every login failed. */
		load_idle_release(load);
		return;
	}
	/* Only a pipe, a socket or a terminal can be watched; with any other
	 * stdin (a file, /dev/null) the hold timer alone ends the wait. */
	if (popload_stdin_watchable()) {
		load->stdin_event = event_new(load->base, STDIN_FILENO, EV_READ | EV_PERSIST,
					      load_stdin_cb, load);
		if (load->stdin_event != NULL && event_add(load->stdin_event, NULL) < 0) {
			event_free(load->stdin_event);
			load->stdin_event = NULL;
		}
	}
	load->hold_timer = evtimer_new(load->base, load_hold_timer_cb, load);
	hold = popload_timeval(load->opt.hold);
	evtimer_add(load->hold_timer, &hold);
}

static void load_deadline_cb(evutil_socket_t fd, short events, void *arg)
{
	struct load *load = arg;

	(void)fd;
	(void)events;
	load->timed_out = true;
	load->finished = popload_now();
	event_base_loopbreak(load->base);
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank percentile P (0..1) of the sorted VALUES, in ms. */
static double percentile_ms(const double *values, size_t count, double p)
{
	size_t rank;

	if (count == 0)
		return 0;
	rank = (size_t)ceil(p * (double)count);
	if (rank < 1)
		rank = 1;
	return values[rank - 1] * 1000.0;
}

static void load_report(struct load *load)
{
	double seconds = load->finished - load->started;
	double rate_base = seconds > 0 ? seconds : 1e-9;

	if (load->latency_count > 0)
		qsort(load->latencies, load->latency_count, sizeof(*load->latencies),
		      compare_double);
	printf("{\"mode\":\"pickup\",\"label\":\"%s\",\"port\":%d,\"concurrency\":%d,"
	       "\"accounts\":%zu,\"retr\":%ld,\"quit\":%s,\"sessions\":%llu,\"failed\":%llu,"
	       "\"messages\":%llu,\"bytes\":%llu,\"seconds\":%.3f,\"sessions_per_s\":%.1f,"
	       "\"messages_per_s\":%.1f,\"mb_per_s\":%.2f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
	       "\"max_ms\":%.2f,\"timed_out\":%s,\"first_error\":\"%s\"}\n",
	       load->opt.label, load->opt.port, load->opt.concurrency, load->account_count,
	       load->opt.retr_limit, load->opt.quit ? "true" : "false",
	       (unsigned long long)load->sessions_ok, (unsigned long long)load->sessions_failed,
	       (unsigned long long)load->messages, (unsigned long long)load->bytes, seconds,
	       (double)load->sessions_ok / rate_base, (double)load->messages / rate_base,
	       (double)load->bytes / 1e6 / rate_base,
	       percentile_ms(load->latencies, load->latency_count, 0.50),
	       percentile_ms(load->latencies, load->latency_count, 0.99),
	       percentile_ms(load->latencies, load->latency_count, 1.0),
	       load->timed_out ? "true" : "false", load->first_error);
	fflush(stdout);
}

/* Reads "user password" lines ('#' starts a comment) into LOAD. 0 or -1. */
static int load_read_accounts(struct load *load, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	size_t capacity = 0;
	int rc = -1;

	if (f == NULL) {
		fprintf(stderr, "popload: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) >= 0) {
		char *save = NULL;
		char *user = strtok_r(line, " \t\r\n", &save);
		char *password = user ? strtok_r(NULL, " \t\r\n", &save) : NULL;

		if (user == NULL || user[0] == '#')
			continue;
		if (password == NULL) {
			fprintf(stderr, "popload: %s: a line without a password\n", path);
			goto fail;
		}
		if (load->account_count == POPLOAD_MAX_ACCOUNTS) {
			fprintf(stderr, "popload: %s: more than %d accounts\n", path,
				POPLOAD_MAX_ACCOUNTS);
			goto fail;
		}
		if (load->account_count == capacity) {
			capacity = capacity ? capacity * 2 : 256;
			load->accounts = xrealloc(load->accounts, capacity * sizeof(*load->accounts));
		}
		load->accounts[load->account_count].user = xstrdup(user);
		load->accounts[load->account_count].password = xstrdup(password);
		load->accounts[load->account_count].busy = false;
		load->account_count++;
	}
	if (load->account_count == 0) {
		fprintf(stderr, "popload: %s: no accounts\n", path);
		goto fail;
	}
	rc = 0;
fail:
	free(line);
	fclose(f);
	return rc;
}

/* Lets this process hold as many sockets as the hard limit allows. */
static void popload_raise_fd_limit(void)
{
	struct rlimit limit;

	if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
		limit.rlim_cur = limit.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
			fprintf(stderr, "popload: setrlimit: %s\n", strerror(errno));
	}
}

static void popload_usage(FILE *out)
{
	fprintf(out,
		"usage: popload --port P --accounts FILE [options]\n"
		"  -p, --port P          POP3 port on 127.0.0.1\n"
		"  -a, --accounts FILE   lines \"user password\"\n"
		"  -c, --concurrency C   sessions at once (default 1; at most the accounts)\n"
		"  -m, --retr M          RETR messages 1..M (default: all STAT reports)\n"
		"  -q, --quit            end each session with QUIT (default: just close)\n"
		"  -r, --rounds R        sessions per account (default 1)\n"
		"  -t, --seconds T       start sessions for T seconds instead of rounds;\n"
		"                        a line or end of input on stdin (a pipe) ends it sooner\n"
		"  -w, --timeout S       seconds any step may take (default 30)\n"
		"  -i, --idle N          idle mode: log N sessions in, print READY, hold them\n"
		"  -R, --ramp K          idle mode: logins in flight at once (default 50)\n"
		"  -H, --hold S          idle mode: hold at most S seconds (default 600);\n"
		"                        a line or end of input on stdin ends it sooner\n"
		"  -l, --label TEXT      copied into the JSON line\n"
		"  -L, --session-log F   write \"start end ok\" per session to F (monotonic s)\n"
		"  -s, --rate R          start at most R sessions per second, evenly spaced\n");
}

static bool parse_number(const char *text, double low, double high, double *value)
{
	char *end = NULL;
	double v;

	errno = 0;
	v = strtod(text, &end);
	if (errno != 0 || end == text || *end != '\0' || v < low || v > high)
		return false;
	*value = v;
	return true;
}

static int popload_parse_options(struct options *opt, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"port", required_argument, NULL, 'p'},
		{"accounts", required_argument, NULL, 'a'},
		{"concurrency", required_argument, NULL, 'c'},
		{"retr", required_argument, NULL, 'm'},
		{"quit", no_argument, NULL, 'q'},
		{"rounds", required_argument, NULL, 'r'},
		{"seconds", required_argument, NULL, 't'},
		{"timeout", required_argument, NULL, 'w'},
		{"idle", required_argument, NULL, 'i'},
		{"ramp", required_argument, NULL, 'R'},
		{"hold", required_argument, NULL, 'H'},
		{"label", required_argument, NULL, 'l'},
		{"session-log", required_argument, NULL, 'L'},
		{"rate", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	double v;

	*opt = (struct options){.concurrency = 1, .retr_limit = -1, .rounds = 1, .timeout = 30,
				.ramp = 50, .hold = 600, .label = ""};
	while ((c = getopt_long(argc, argv, "p:a:c:m:qr:t:w:i:R:H:l:L:s:h", longopts, NULL)) != -1) {
		bool good = true;

		switch (c) {
		case 'p':
			good = parse_number(optarg, 1, 65535, &v);
			opt->port = (int)v;
			break;
		case 'a':
			opt->accounts_path = optarg;
			break;
		case 'c':
			good = parse_number(optarg, 1, POPLOAD_MAX_SESSIONS, &v);
			opt->concurrency = (int)v;
			break;
		case 'm':
			good = parse_number(optarg, 0, 1e9, &v);
			opt->retr_limit = (long)v;
			break;
		case 'q':
			opt->quit = true;
			break;
		case 'r':
			good = parse_number(optarg, 1, 1e6, &v);
			opt->rounds = (long)v;
			break;
		case 't':
			good = parse_number(optarg, 0.001, 86400, &opt->seconds);
			break;
		case 'w':
			good = parse_number(optarg, 0.001, 3600, &opt->timeout);
			break;
		case 'i':
			good = parse_number(optarg, 1, POPLOAD_MAX_SESSIONS, &v);
			opt->idle_count = (int)v;
			break;
		case 'R':
			good = parse_number(optarg, 1, POPLOAD_MAX_SESSIONS, &v);
			opt->ramp = (int)v;
			break;
		case 'H':
			good = parse_number(optarg, 0.001, 86400, &opt->hold);
			break;
		case 'l':
			opt->label = optarg;
			good = strpbrk(optarg, "\"\\") == NULL;
			break;
		case 'L':
			opt->session_log_path = optarg;
			break;
		case 's':
			good = parse_number(optarg, 0.001, 1e6, &opt->rate);
			break;
		case 'h':
			popload_usage(stdout);
			exit(0);
		default:
			good = false;
			break;
		}
		if (!good) {
			if (c != '?')
				fprintf(stderr, "popload: bad value for -%c: %s\n", c,
					optarg ? optarg : "");
			popload_usage(stderr);
			return -1;
		}
	}
	if (optind != argc || opt->port == 0 || opt->accounts_path == NULL) {
		popload_usage(stderr);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct load load = {0};
	struct timeval deadline;

	TAILQ_INIT(&load.sessions);
	double budget;
	int rc = 1;

	if (popload_parse_options(&load.opt, argc, argv) < 0)
		return 2;
	if (load_read_accounts(&load, load.opt.accounts_path) < 0)
		goto fail;
	if (load.opt.idle_count > 0 && (size_t)load.opt.idle_count > load.account_count) {
		fprintf(stderr, "popload: %d idle sessions need as many accounts (have %zu)\n",
			load.opt.idle_count, load.account_count);
		goto fail;
	}
	if (load.opt.idle_count == 0 && (size_t)load.opt.concurrency > load.account_count) {
		fprintf(stderr, "popload: %d sessions at once need as many accounts (have %zu)\n",
			load.opt.concurrency, load.account_count);
		goto fail;
	}
	popload_raise_fd_limit();
	signal(SIGPIPE, SIG_IGN);
	load.base = event_base_new();
	if (load.base == NULL) {
		fprintf(stderr, "popload: event_base_new failed\n");
		goto fail;
	}
	load.address.sin_family = AF_INET;
	load.address.sin_port = htons((uint16_t)load.opt.port);
	load.address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	load.sequence_limit = (uint64_t)load.opt.rounds * load.account_count;

	/* The whole run's deadline: a server that stops answering cannot hold
	 * the benchmark longer than this. */
	if (load.opt.idle_count > 0)
		budget = load.opt.timeout * 4 + load.opt.hold + 60;
	else if (load.opt.seconds > 0)
		budget = load.opt.seconds + load.opt.timeout * 4 + 10;
	else
		budget = 24 * 3600; /* rounds: the step timeouts bound each session */
	load.deadline_timer = evtimer_new(load.base, load_deadline_cb, &load);
	deadline = popload_timeval(budget);
	evtimer_add(load.deadline_timer, &deadline);

	if (load.opt.session_log_path != NULL) {
		load.session_log = fopen(load.opt.session_log_path, "w");
		if (load.session_log == NULL) {
			fprintf(stderr, "popload: %s: %s\n", load.opt.session_log_path,
				strerror(errno));
			goto fail;
		}
	}
	if (load.opt.idle_count == 0 && load.opt.seconds > 0 && popload_stdin_watchable()) {
		load.stdin_event = event_new(load.base, STDIN_FILENO, EV_READ | EV_PERSIST,
					     load_stdin_stop_cb, &load);
		if (load.stdin_event != NULL && event_add(load.stdin_event, NULL) < 0) {
			event_free(load.stdin_event);
			load.stdin_event = NULL;
		}
	}
	if (load.opt.rate > 0 && load.opt.idle_count == 0)
		load.rate_timer = evtimer_new(load.base, load_rate_timer_cb, &load);
	load.started = popload_now();
	load.deadline = load.started + load.opt.seconds;
	load.next_start = load.started;
	load_launch(&load);
	if (load.active > 0 || (load.rate_timer != NULL && evtimer_pending(load.rate_timer, NULL)))
		event_base_dispatch(load.base);
	if (load.finished == 0)
		load.finished = popload_now();
	if (load.opt.idle_count > 0) {
		/* Reached only when the hold did not end normally (the deadline,
		 * or every session failed): report what there is. */
		if (load.ready_at == 0)
			load.ready_at = popload_now();
		load_idle_release(&load);
	} else {
		load_report(&load);
	}
	rc = load.timed_out ? 1 : 0;
fail:
	load_free_sessions(&load);
	if (load.stdin_event != NULL)
		event_free(load.stdin_event);
	if (load.hold_timer != NULL)
		event_free(load.hold_timer);
	if (load.deadline_timer != NULL)
		event_free(load.deadline_timer);
	if (load.rate_timer != NULL)
		event_free(load.rate_timer);
	if (load.session_log != NULL && fclose(load.session_log) != 0) {
		fprintf(stderr, "popload: %s: %s\n", load.opt.session_log_path, strerror(errno));
		rc = 1;
	}
	for (size_t i = 0; i < load.account_count; i++) {
		free(load.accounts[i].user);
		free(load.accounts[i].password);
	}
	free(load.accounts);
	free(load.latencies);
	if (load.base != NULL)
		event_base_free(load.base);
	return rc;
}
