/*
 * server.c — the HTTPS listener and the sender page's routes (web/server.h).
 *
 * Connections: evhttp accepts; our bevcb wraps each in a server-side
 * bufferevent_openssl and a struct web_connection kept as the SSL's ex_data,
 * whose free callback (when evhttp frees the connection, whenever that is)
 * gives the connection's place back. So the count of connections is exact
 * without a hook libevent 2.1 does not have. A connection is cut by
 * shutdown(2) of its socket: evhttp then reads the end and frees it the
 * usual way, so nothing here frees what evhttp owns.
 *
 * Owns: the evhttp and its bound socket, struct web_connection (freed by the
 * ex_data callback), the rate tables, struct web_answer until its reply.
 * Must never: block, write to the store on the loop, log a token or a code.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "ciss/token.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/util.h"
#include "popgate.h"
#include "store/ciss.h"
#include "store/writer.h"
#include "web/limit.h"
#include "web/page.h"
#include "web/request.h"
#include "web/server.h"

/* Slots of the rate tables: well above the clients and challenges at once. */
#define WEB_LIMIT_SLOTS 8192

struct web_connection {
	struct web_server *server; /* NULL once the server is gone */
	struct bufferevent *bev;
	struct event *timer; /* at once: the peer check; then the deadline */
	struct listener_peer peer;
	bool described;
	bool checked;		/* the per-address limit was applied */
	bool cut;		/* shut down, evhttp is to notice */
	struct evbuffer *input; /* the bufferevent's, watched for its size */
	struct evbuffer_cb_entry *input_watch;
	TAILQ_ENTRY(web_connection) entry;
};

TAILQ_HEAD(web_connection_list, web_connection);

struct web_server {
	struct popgate *pg;
	struct evhttp *http;
	struct evconnlistener *listener; /* evhttp's, paused at max_connections */
	struct web_connection_list connections;
	unsigned connection_count;
	bool paused;
	struct web_limit *per_address;
	struct web_limit *wrong_codes; /* per challenge id */
};

/* An ANSWER on its way through the writer thread. */
struct web_answer {
	struct evhttp_request *req;
	struct ciss_token token;
	int64_t now;
	size_t released; /* held messages the answer moved to delivery */
	char address[LISTENER_ADDRESS_LEN];
};

static int web_connection_index = -1;

/* ---- responses -------------------------------------------------------------- */

/* Sends BODY (may be NULL) with CODE and the headers every response has. */
static void web_reply(struct evhttp_request *req, int code, const char *reason,
		      struct evbuffer *body)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);

	evhttp_add_header(headers, "Content-Type", "text/html; charset=utf-8");
	evhttp_add_header(headers, "Content-Security-Policy", web_page_csp());
	evhttp_add_header(headers, "X-Frame-Options", "DENY");
	evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(headers, "Referrer-Policy", "no-referrer");
	evhttp_add_header(headers, "Cache-Control", "no-store");
	evhttp_add_header(headers, "Cross-Origin-Opener-Policy", "same-origin");
	evhttp_add_header(headers, "Cross-Origin-Resource-Policy", "same-origin");
	evhttp_send_reply(req, code, reason, body);
}

static void web_reply_message(struct evhttp_request *req, int code, const char *reason,
			      const char *title, const char *text)
{
	struct evbuffer *body = evbuffer_new();

	web_page_message(body, title, text);
	web_reply(req, code, reason, body);
	evbuffer_free(body);
}

static void web_reply_not_found(struct evhttp_request *req)
{
	web_reply_message(req, 404, "Not Found", "Link not valid",
			  "This link is not valid. Please use the link in the mail you received, "
			  "complete and unchanged.");
}

static void web_reply_gone(struct evhttp_request *req, const char *text)
{
	web_reply_message(req, 410, "Gone", "Link no longer valid", text);
}

static const char web_text_expired[] =
    "This link has expired: the message it was about is no longer held.";
static const char web_text_used[] =
    "This link was already used: the message was released. Nothing more to do.";

/* ---- connections ------------------------------------------------------------ */

/* Cuts CONN: evhttp reads the end of the socket and frees the connection. */
static void web_connection_cut(struct web_connection *conn)
{
	evutil_socket_t fd = bufferevent_getfd(conn->bev);

	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

static void web_server_resume_accepting(struct web_server *server)
{
	if (server->paused &&
	    server->connection_count < (unsigned)server->pg->cfg->web_max_connections) {
		evconnlistener_enable(server->listener);
		server->paused = false;
	}
}

/* OpenSSL's ex_data free callback: the SSL of a connection is being freed,
 * so is the connection. */
static void web_connection_gone(void *parent, void *ptr, CRYPTO_EX_DATA *data, int index, long argl,
				void *argp)
{
	struct web_connection *conn = ptr;
	(void)parent;
	(void)data;
	(void)index;
	(void)argl;
	(void)argp;

	if (conn == NULL)
		return;
	/* The bufferevent frees its SSL before its buffers. */
	evbuffer_remove_cb_entry(conn->input, conn->input_watch);
	if (conn->server != NULL) {
		struct web_server *server = conn->server;

		TAILQ_REMOVE(&server->connections, conn, entry);
		server->connection_count--;
		event_free(conn->timer);
		web_server_resume_accepting(server);
	}
	free(conn);
}

/* The input buffer changed: more unread than WEB_INPUT_MAX (pipelined
 * requests read while a reply is written) cuts the connection. */
static void web_connection_input(struct evbuffer *input, const struct evbuffer_cb_info *info,
				 void *arg)
{
	struct web_connection *conn = arg;
	(void)info;

	if (evbuffer_get_length(input) > WEB_INPUT_MAX && !conn->cut) {
		conn->cut = true;
		log_warn("web: %s sent more than %d bytes ahead; cut",
			 conn->described ? conn->peer.address : "a client", WEB_INPUT_MAX);
		web_connection_cut(conn);
	}
}

/* Learns CONN's peer once; false if it cannot (the socket is gone). */
static bool web_connection_describe(struct web_connection *conn)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	evutil_socket_t fd = bufferevent_getfd(conn->bev);

	if (conn->described)
		return true;
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&addr, &len) < 0 ||
	    listener_peer_describe(&conn->peer, (struct sockaddr *)&addr) < 0)
		return false;
	conn->described = true;
	return true;
}

/* First at once (the socket is set by then): the per-address limit; then at
 * the deadline: the end of the connection. */
static void web_connection_timer(evutil_socket_t fd, short what, void *arg)
{
	struct web_connection *conn = arg;
	struct web_server *server = conn->server;
	(void)fd;
	(void)what;

	if (conn->checked) {
		log_debug("web: a connection from %s reached its deadline", conn->peer.address);
		web_connection_cut(conn);
		return;
	}
	if (!web_connection_describe(conn)) {
		web_connection_cut(conn);
		return;
	}
	unsigned same = 0;
	struct web_connection *other;
	TAILQ_FOREACH(other, &server->connections, entry)
	{
		if (other->described && listener_peer_same_address(&other->peer, &conn->peer))
			same++;
	}
	unsigned max_per_address = (unsigned)server->pg->cfg->web_max_connections_per_address;
	if (same > max_per_address) {
		log_warn("web: %s is over %u connections at once; cut", conn->peer.address,
			 max_per_address);
		web_connection_cut(conn);
		return;
	}
	conn->checked = true;
	struct timeval deadline = {.tv_sec = server->pg->cfg->web_connection_deadline};
	evtimer_add(conn->timer, &deadline);
}

/* evhttp's bevcb: each accepted connection's TLS bufferevent. */
static struct bufferevent *web_connection_new(struct event_base *base, void *arg)
{
	struct web_server *server = arg;
	struct web_connection *conn = xcalloc(1, sizeof(*conn));
	SSL *ssl = SSL_new(server->pg->server_tls);

	/* Only memory can be short here: as everywhere, that is fatal. */
	if (ssl == NULL || SSL_set_ex_data(ssl, web_connection_index, conn) != 1)
		abort();
	conn->server = server;
	conn->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
						   BEV_OPT_CLOSE_ON_FREE);
	if (conn->bev == NULL)
		abort();
	/* No read watermark: a bufferevent_openssl on a socket that reached one
	 * does not look at the plaintext OpenSSL still holds when it reads
	 * again, and the last pipelined requests would wait for the timeout.
	 * Unread input is bounded by a cut instead. */
	conn->input = bufferevent_get_input(conn->bev);
	conn->input_watch = evbuffer_add_cb(conn->input, web_connection_input, conn);
	conn->timer = evtimer_new(base, web_connection_timer, conn);
	if (conn->timer == NULL)
		abort();
	event_active(conn->timer, EV_TIMEOUT, 1);
	TAILQ_INSERT_TAIL(&server->connections, conn, entry);
	/* The silence allowed, as the configuration says now (a reload may
	 * have changed it): evhttp gives it to the connection it makes next. */
	evhttp_set_timeout(server->http, server->pg->cfg->web_timeout);
	if (++server->connection_count >= (unsigned)server->pg->cfg->web_max_connections &&
	    !server->paused) {
		evconnlistener_disable(server->listener);
		server->paused = true;
	}
	return conn->bev;
}

/* The connection of REQ, or NULL (it is gone). */
static struct web_connection *web_request_connection(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;

	return ssl != NULL ? SSL_get_ex_data(ssl, web_connection_index) : NULL;
}

/* ---- the sender page ---------------------------------------------------------- */

static unsigned web_header_count(struct evhttp_request *req)
{
	struct evkeyvalq *headers = evhttp_request_get_input_headers(req);
	struct evkeyval *header;
	unsigned count = 0;

	TAILQ_FOREACH(header, headers, next)
	count++;
	return count;
}

/*
 * The challenge TOKEN names, for the page: 1 with *CHALLENGE filled (free
 * with store_ciss_challenge_clear), or 0 after replying (404, 410, 503).
 */
static int web_challenge_read(struct web_server *server, struct evhttp_request *req,
			      const struct ciss_token *token, struct ciss_challenge *challenge)
{
	char nonce[CISS_NONCE_LEN + 1];
	int found = store_ciss_challenge_get(server->pg->store, token->challenge_id, challenge);

	sodium_bin2hex(nonce, sizeof(nonce), token->nonce, sizeof(token->nonce));

	if (found < 0) {
		web_reply_message(
		    req, 503, "Service Unavailable", "Please try again",
		    "This page cannot be shown just now. Please try again in a minute.");
		return 0;
	}
	if (found == 0 || strlen(challenge->nonce) != CISS_NONCE_LEN ||
	    sodium_memcmp(challenge->nonce, nonce, CISS_NONCE_LEN) != 0) {
		if (found == 1)
			ciss_challenge_clear(challenge);
		web_reply_not_found(req);
		return 0;
	}
	if (challenge->answered_at != 0) {
		ciss_challenge_clear(challenge);
		web_reply_gone(req, web_text_used);
		return 0;
	}
	if (challenge->expires_at <= util_now()) {
		ciss_challenge_clear(challenge);
		web_reply_gone(req, web_text_expired);
		return 0;
	}
	return 1;
}

static void web_show_form(struct web_server *server, struct evhttp_request *req, int code,
			  const char *reason, const struct ciss_token *token,
			  const struct ciss_challenge *challenge, const char *error)
{
	char shown_code[CISS_TOKEN_CODE_LEN + 1];
	struct evbuffer *body = evbuffer_new();

	ciss_token_code(&server->pg->ciss_key, token, shown_code);
	web_page_form(body, challenge->recipient, challenge->subject, shown_code, error);
	web_reply(req, code, reason, body);
	evbuffer_free(body);
}

/* In the writer thread. */
static int web_answer_work(struct store *store, void *arg)
{
	struct web_answer *answer = arg;
	char nonce[CISS_NONCE_LEN + 1];

	sodium_bin2hex(nonce, sizeof(nonce), answer->token.nonce, sizeof(answer->token.nonce));
	return store_ciss_challenge_answer(store, answer->token.challenge_id, nonce, answer->now,
					   &answer->released);
}

/* In the loop, after the commit. */
static void web_answer_done(int result, const char *error, void *arg)
{
	struct web_answer *answer = arg;
	struct evhttp_request *req = answer->req;

	switch (result) {
	case CISS_ANSWER_DONE:
		log_info("web: challenge %lld answered from %s; the sender is trusted, %zu "
			 "message(s) released",
			 (long long)answer->token.challenge_id, answer->address, answer->released);
		web_reply_message(req, 200, "OK", "Thank you",
				  "Your message is released and will be delivered. Mail you send "
				  "to this recipient from now on arrives without this step.");
		break;
	case CISS_ANSWER_ANSWERED:
		web_reply_gone(req, web_text_used);
		break;
	case CISS_ANSWER_EXPIRED:
		web_reply_gone(req, web_text_expired);
		break;
	case CISS_ANSWER_UNKNOWN:
		web_reply_not_found(req);
		break;
	default:
		log_error("web: answering challenge %lld failed: %s",
			  (long long)answer->token.challenge_id, error != NULL ? error : "error");
		web_reply_message(req, 503, "Service Unavailable", "Please try again",
				  "Your answer could not be saved just now. Please try again in a "
				  "minute.");
		break;
	}
	free(answer);
}

static void web_post(struct web_server *server, struct evhttp_request *req,
		     struct web_connection *conn, const struct ciss_token *token)
{
	struct ciss_challenge challenge;
	struct evbuffer *input = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(input);
	char typed[WEB_FORM_VALUE_MAX + 1];
	char body[WEB_FORM_BODY_MAX];
	int64_t id = token->challenge_id;

	if (!web_request_form_type(
		evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type"))) {
		web_reply_message(req, 415, "Unsupported Media Type", "Form not understood",
				  "Please send the form from the page.");
		return;
	}
	if (len > sizeof(body) || evbuffer_copyout(input, body, len) != (ev_ssize_t)len ||
	    web_form_field(body, len, "code", typed) != 1) {
		web_reply_message(req, 400, "Bad Request", "Form not understood",
				  "Please send the form from the page.");
		return;
	}
	if (web_limit_count(server->wrong_codes, &id, sizeof(id)) >=
	    (unsigned)server->pg->cfg->web_max_wrong_codes) {
		web_reply_message(
		    req, 429, "Too Many Requests", "Locked",
		    "Too many wrong codes were typed for this message. It stays held; "
		    "please contact the recipient another way.");
		return;
	}
	if (web_challenge_read(server, req, token, &challenge) == 0)
		return;
	if (!ciss_token_code_matches(&server->pg->ciss_key, token, typed, strlen(typed))) {
		unsigned wrong =
		    web_limit_count_add(server->wrong_codes, &id, sizeof(id), util_monotonic_ms());

		log_warn("web: a wrong code for challenge %lld from %s (%u of %u)", (long long)id,
			 conn->peer.address, wrong, server->pg->cfg->web_max_wrong_codes);
		web_show_form(server, req, 400, "Bad Request", token, &challenge,
			      "That was not the code shown. Please type it again.");
		ciss_challenge_clear(&challenge);
		return;
	}
	ciss_challenge_clear(&challenge);
	sodium_memzero(typed, sizeof(typed));

	struct web_answer *answer = xcalloc(1, sizeof(*answer));
	answer->req = req;
	answer->token = *token;
	answer->now = util_now();
	snprintf(answer->address, sizeof(answer->address), "%s", conn->peer.address);
	if (writer_submit(server->pg->writer, NULL, web_answer_work, web_answer_done, answer) < 0) {
		free(answer);
		web_reply_message(req, 503, "Service Unavailable", "Please try again",
				  "Your answer could not be saved just now. Please try again in a "
				  "minute.");
	}
}

/* evhttp's general callback: every request that parsed. */
static void web_handle(struct evhttp_request *req, void *arg)
{
	struct web_server *server = arg;
	struct web_connection *conn = web_request_connection(req);
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const char *target = evhttp_request_get_uri(req);
	const char *token_text = NULL;
	size_t token_len = 0;
	struct ciss_token token;

	if (conn == NULL || !web_connection_describe(conn)) {
		web_reply_not_found(req);
		return;
	}
	if (!web_limit_take(server->per_address, conn->peer.key, sizeof(conn->peer.key),
			    util_monotonic_ms(),
			    (unsigned)server->pg->cfg->web_requests_per_minute)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "60");
		web_reply_message(req, 429, "Too Many Requests", "Please slow down",
				  "Too many requests from your address. Please wait a minute.");
		return;
	}
	if (web_header_count(req) > WEB_HEADER_COUNT_MAX) {
		web_reply_message(req, 431, "Request Header Fields Too Large", "Request refused",
				  "The request has too many header lines.");
		return;
	}
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD && method != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
				  "GET, HEAD, POST");
		web_reply_message(req, 405, "Method Not Allowed", "Request refused",
				  "This page takes GET and POST only.");
		return;
	}
	if (target == NULL || web_request_token_path(target, strlen(target), CISS_TOKEN_TEXT_LEN,
						     &token_text, &token_len) != 1) {
		web_reply_not_found(req);
		return;
	}
	enum ciss_token_check check =
	    ciss_token_decode(&server->pg->ciss_key, token_text, token_len, util_now(), &token);
	if (check != CISS_TOKEN_VALID) {
		log_info("web: a %s link from %s", ciss_token_check_name(check),
			 conn->peer.address);
		if (check == CISS_TOKEN_EXPIRED)
			web_reply_gone(req, web_text_expired);
		else
			web_reply_not_found(req);
		return;
	}
	if (method == EVHTTP_REQ_POST) {
		web_post(server, req, conn, &token);
		return;
	}
	struct ciss_challenge challenge;
	if (web_challenge_read(server, req, &token, &challenge) == 0)
		return;
	int64_t id = token.challenge_id;
	if (web_limit_count(server->wrong_codes, &id, sizeof(id)) >=
	    (unsigned)server->pg->cfg->web_max_wrong_codes)
		web_reply_message(
		    req, 429, "Too Many Requests", "Locked",
		    "Too many wrong codes were typed for this message. It stays held; "
		    "please contact the recipient another way.");
	else
		web_show_form(server, req, 200, "OK", &token, &challenge, NULL);
	ciss_challenge_clear(&challenge);
}

/* ---- the server --------------------------------------------------------------- */

struct web_server *web_server_new(struct popgate *pg, int fd, char *err, size_t errlen)
{
	struct web_server *server = xcalloc(1, sizeof(*server));
	struct evhttp_bound_socket *bound;

	if (web_connection_index < 0)
		web_connection_index =
		    SSL_get_ex_new_index(0, NULL, NULL, NULL, web_connection_gone);
	server->pg = pg;
	TAILQ_INIT(&server->connections);
	server->per_address = web_limit_new(WEB_LIMIT_SLOTS);
	server->wrong_codes = web_limit_new(WEB_LIMIT_SLOTS);
	server->http = evhttp_new(pg->base);
	if (web_connection_index < 0 || server->http == NULL) {
		snprintf(err, errlen, "cannot start the web server");
		close(fd);
		goto fail;
	}
	/* Every method reaches web_handle, which answers 405 with the headers. */
	evhttp_set_allowed_methods(server->http,
				   EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				       EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				       EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_max_headers_size(server->http, WEB_HEADERS_MAX);
	evhttp_set_max_body_size(server->http, WEB_FORM_BODY_MAX);
	evhttp_set_bevcb(server->http, web_connection_new, server);
	evhttp_set_gencb(server->http, web_handle, server);
	bound = evhttp_accept_socket_with_handle(server->http, fd);
	if (bound == NULL) {
		snprintf(err, errlen, "cannot serve the web port: %s", strerror(errno));
		close(fd);
		goto fail;
	}
	server->listener = evhttp_bound_socket_get_listener(bound);
	return server;
fail:
	web_server_free(&server);
	return NULL;
}

void web_server_free(struct web_server **server_p)
{
	struct web_server *server = *server_p;
	struct web_connection *conn;

	if (server == NULL)
		return;
	/* evhttp_free frees the connections, but a bufferevent's SSL may be
	 * freed later, in the loop's finalizers: the connections forget the
	 * server first. */
	while ((conn = TAILQ_FIRST(&server->connections)) != NULL) {
		TAILQ_REMOVE(&server->connections, conn, entry);
		event_free(conn->timer);
		conn->server = NULL;
	}
	if (server->http != NULL)
		evhttp_free(server->http);
	web_limit_free(&server->per_address);
	web_limit_free(&server->wrong_codes);
	free(server);
	*server_p = NULL;
}
