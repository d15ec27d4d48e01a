/*
 * control.c — the control socket (popgatectl → daemon notices) and the check
 * a notice runs: released messages back into the pipeline, popgatectl's
 * changes into the log, a retrained Bayes database to new workers.
 *
 * Owns: the listening socket DATA/control.sock, its connections, the check
 * event and the fallback timer.
 * Must never: block the loop on a client (connections are non-blocking and
 * bounded in number, line length and time), or act on anything a client
 * says but the one notice (see control.h, SECURITY).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/control.h"
#include "core/log.h"
#include "core/util.h"
#include "pipeline/archiver.h"
#include "pipeline/pipeline.h"
#include "pipeline/route.h"
#include "smtp/server.h"
#include "smtp/relay.h"
#include "store/account.h"
#include "store/audit.h"
#include "store/message.h"

/* The socket in the daemon's working directory, the data folder. */
#define CONTROL_PATH "./" CONTROL_SOCKET_NAME
/* The one notice, and the longest line read (a longer one is bad input). */
#define CONTROL_NOTICE "changed"
#define CONTROL_LINE_MAX 64
/* Connections at once; more are closed at once (popgatectl's stay
 * milliseconds). */
#define CONTROL_CONNECTIONS_MAX 16
/* A connection silent this long is closed. */
#define CONTROL_IDLE_SECONDS 5
/* Most admin changes logged per check; more get another check at once. */
#define ADMIN_CHANGES_PER_CHECK 100

struct control_connection {
	struct control *control;
	struct bufferevent *bev;
	struct control_connection *next;
};

struct control {
	struct popgate *pg;
	int listen_fd;
	struct event *accept_event;
	struct event *check_event;    /* activated by a notice; runs control_check */
	struct event *fallback_timer; /* re-armed after each check, see control.h */
	struct control_connection *connections;
	size_t connection_count;
	ino_t inode; /* of the socket file bound, so only it is removed */
};

static void control_connection_close(struct control_connection *conn)
{
	struct control *control = conn->control;

	for (struct control_connection **p = &control->connections; *p != NULL; p = &(*p)->next) {
		if (*p == conn) {
			*p = conn->next;
			break;
		}
	}
	control->connection_count--;
	bufferevent_free(conn->bev);
	free(conn);
}

/* Reads the lines a client sent; "changed" asks for a check, anything else
 * ends the connection. */
static void control_read_cb(struct bufferevent *bev, void *ctx)
{
	struct control_connection *conn = ctx;
	struct evbuffer *input = bufferevent_get_input(bev);
	char *line;
	size_t len;

	while ((line = evbuffer_readln(input, &len, EVBUFFER_EOL_LF)) != NULL) {
		bool notice =
		    len == strlen(CONTROL_NOTICE) && memcmp(line, CONTROL_NOTICE, len) == 0;

		free(line);
		if (!notice) {
			log_warn("control: an unknown notice on the control socket; connection "
				 "closed");
			control_connection_close(conn);
			return;
		}
		event_active(conn->control->check_event, 0, 0);
	}
	if (evbuffer_get_length(input) > CONTROL_LINE_MAX) {
		log_warn("control: a line longer than %d bytes on the control socket; "
			 "connection closed",
			 CONTROL_LINE_MAX);
		control_connection_close(conn);
	}
}

static void control_event_cb(struct bufferevent *bev, short what, void *ctx)
{
	(void)bev;
	/* End of input, an error or the idle timeout: done with it. A last
	 * line without its newline is not a notice. */
	if (what & BEV_EVENT_TIMEOUT)
		log_warn("control: a control connection silent for %d s; closed",
			 CONTROL_IDLE_SECONDS);
	control_connection_close(ctx);
}

static void control_accept_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct control *control = ctx;
	struct timeval idle = {.tv_sec = CONTROL_IDLE_SECONDS};
	(void)what;

	for (;;) {
		int client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct control_connection *conn;

		if (client < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("control: accept: %s", strerror(errno));
			return;
		}
		if (control->connection_count >= CONTROL_CONNECTIONS_MAX) {
			log_warn("control: %d control connections open; one more closed",
				 CONTROL_CONNECTIONS_MAX);
			close(client);
			continue;
		}
		conn = xcalloc(1, sizeof(*conn));
		conn->control = control;
		conn->bev =
		    bufferevent_socket_new(control->pg->base, client, BEV_OPT_CLOSE_ON_FREE);
		if (conn->bev == NULL) {
			close(client);
			free(conn);
			continue;
		}
		conn->next = control->connections;
		control->connections = conn;
		control->connection_count++;
		/* Read no more than a line's worth past the limit at a time. */
		bufferevent_setwatermark(conn->bev, EV_READ, 0, CONTROL_LINE_MAX * 2);
		bufferevent_setcb(conn->bev, control_read_cb, NULL, control_event_cb, conn);
		bufferevent_set_timeouts(conn->bev, &idle, NULL);
		bufferevent_enable(conn->bev, EV_READ);
	}
}

static void admin_change_log(int64_t at, const char *message_id, const char *text, void *ctx)
{
	time_t when = (time_t)at;
	struct tm tm;
	char stamp[32] = "?";

	(void)ctx;
	if (gmtime_r(&when, &tm) != NULL)
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_event(LOG_INFO, "admin_change", NULL, message_id, "%s (made at %s)", text, stamp);
}

static void control_fallback_arm(struct control *control)
{
	struct timeval every = {.tv_sec = control->pg->cfg->release_check_seconds};

	/* Read at each arming, so a SIGHUP's new value holds from the next one. */
	event_add(control->fallback_timer, &every);
}

static void control_check_cb(evutil_socket_t fd, short what, void *ctx)
{
	(void)fd;
	(void)what;
	control_check(ctx);
}

static void control_fallback_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct control *control = ctx;
	(void)fd;
	(void)what;

	control_check(control);
	control_fallback_arm(control);
}

/* Removes a socket file a stopped daemon left at CONTROL_PATH; anything else
 * there is not ours to remove. 0 or -1 (ERR set). */
static int control_remove_stale(char *err, size_t errlen)
{
	struct stat st;

	if (lstat(CONTROL_PATH, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen,
			 "%s in the data folder is not a socket; remove it and start again",
			 CONTROL_SOCKET_NAME);
		return -1;
	}
	if (unlink(CONTROL_PATH) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove the stale %s: %s", CONTROL_SOCKET_NAME,
			 strerror(errno));
		return -1;
	}
	return 0;
}

struct control *control_new(struct popgate *pg, char *err, size_t errlen)
{
	struct control *control = xcalloc(1, sizeof(*control));
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old_umask;
	int rc;

	control->pg = pg;
	control->listen_fd = -1;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", CONTROL_PATH);
	if (control_remove_stale(err, errlen) < 0)
		goto fail;
	control->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (control->listen_fd < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		goto fail;
	}
	/* bind creates the file with the umask's mode: 0600 from the start, so
	 * no other user can connect in between. No thread runs yet. */
	old_umask = umask(0177);
	rc = bind(control->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old_umask);
	if (rc < 0 || listen(control->listen_fd, 64) < 0 || lstat(CONTROL_PATH, &st) < 0) {
		snprintf(err, errlen, "control socket %s: %s", CONTROL_SOCKET_NAME,
			 strerror(errno));
		goto fail;
	}
	control->inode = st.st_ino;
	control->accept_event = event_new(pg->base, control->listen_fd, EV_READ | EV_PERSIST,
					  control_accept_cb, control);
	control->check_event = event_new(pg->base, -1, 0, control_check_cb, control);
	control->fallback_timer = event_new(pg->base, -1, 0, control_fallback_cb, control);
	if (control->accept_event == NULL || control->check_event == NULL ||
	    control->fallback_timer == NULL || event_add(control->accept_event, NULL) < 0) {
		snprintf(err, errlen, "control socket: cannot watch it");
		goto fail;
	}
	control_fallback_arm(control);
	return control;
fail:
	control_free(&control);
	return NULL;
}

void control_free(struct control **control_p)
{
	struct control *control = *control_p;
	struct stat st;

	if (control == NULL)
		return;
	while (control->connections != NULL)
		control_connection_close(control->connections);
	if (control->accept_event != NULL)
		event_free(control->accept_event);
	if (control->check_event != NULL)
		event_free(control->check_event);
	if (control->fallback_timer != NULL)
		event_free(control->fallback_timer);
	if (control->listen_fd >= 0) {
		close(control->listen_fd);
		/* A daemon started since on this folder may have replaced it. */
		if (control->inode != 0 && lstat(CONTROL_PATH, &st) == 0 &&
		    st.st_ino == control->inode)
			unlink(CONTROL_PATH);
	}
	free(control);
	*control_p = NULL;
}

ssize_t control_resume_processing(struct popgate *pg)
{
	struct store_message *messages = NULL;
	size_t count = 0;

	if (store_message_list_all(pg->store, MESSAGE_PROCESSING, &messages, &count) < 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		struct store_account account = {0};
		struct pipeline_job job;
		char *recipient[1];
		struct filter_profile profile;

		/* Judged already, its archive pending or held for a retry
		 * (pipeline/archiver.h): it goes on from there. */
		if (archiver_pending(pg->archiver, messages[i].id))
			continue;
		store_account_get_by_id(pg->store, messages[i].account_id, &account);
		route_job_fill(pg, &messages[i], &account, &job, recipient, &profile);
		pipeline_submit(pg->pipeline, &job);
		store_account_clear(&account);
	}
	store_message_list_free(&messages, count);
	return (ssize_t)count;
}

void control_check(struct control *control)
{
	struct popgate *pg = control->pg;

	control_resume_processing(pg);
	/* popgatectl network add|del: the next SMTP sessions are judged by
	 * the Local Networks as they are now (S2). */
	smtp_server_reload_networks(pg->smtp);
	/* popgatectl's queue retry|bounce|flush and transport changes. */
	relay_kick(pg->relay);
	/* popgatectl bayes train: workers with the old database are replaced. */
	pipeline_bayes_check(pg->pipeline);
	/* Logs the popgatectl changes that are not in the log yet
	 * (store/audit.h): with log_file = - only this process can. */
	if (store_admin_change_take(pg->store, ADMIN_CHANGES_PER_CHECK, admin_change_log, pg) ==
	    ADMIN_CHANGES_PER_CHECK)
		event_active(control->check_event, 0, 0);
}

int control_notify(const char *data_dir)
{
	static const char notice[] = CONTROL_NOTICE "\n";
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int dir_fd = -1, fd = -1, result = -1;
	int n;

	n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", data_dir, CONTROL_SOCKET_NAME);
	if (n < 0 || (size_t)n >= sizeof(addr.sun_path)) {
		/* Too long for a socket address: reach it through the folder's
		 * descriptor, whose /proc path is short. */
		dir_fd = open(data_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dir_fd < 0)
			goto done;
		snprintf(addr.sun_path, sizeof(addr.sun_path), "/proc/self/fd/%d/%s", dir_fd,
			 CONTROL_SOCKET_NAME);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto done;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		/* No socket, or one no process listens on: no daemon runs. */
		if (errno == ENOENT || errno == ECONNREFUSED)
			result = 0;
		goto done;
	}
	/* The notice fits any socket buffer; MSG_NOSIGNAL: a daemon that just
	 * went away is no reason to die of SIGPIPE. */
	if (send(fd, notice, sizeof(notice) - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof(notice) - 1))
		result = 1;
done:
	if (fd >= 0)
		close(fd);
	if (dir_fd >= 0) {
		int saved = errno;

		close(dir_fd);
		errno = saved;
	}
	return result;
}
