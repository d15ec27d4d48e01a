/*
 * server.h — popgate's HTTPS listener in the daemon's event loop (libevent's
 * evhttp over bufferevent_openssl, with the certificate of the POP3S port),
 * serving the CISS sender page:
 *
 *   GET  /c/TOKEN  the page: who the held message is for, its subject, and a
 *                  short code to type (a GET never answers: link scanners in
 *                  mail systems fetch links on their own)
 *   POST /c/TOKEN  the typed code (a urlencoded form): right → the store's
 *                  ANSWER (the sender trusted, the held mail released) and a
 *                  thank-you page; wrong → the form again with an error
 *
 * A malformed or forged link is 404, an expired or used one 410; more than
 * [web] max_wrong_codes wrong codes lock the challenge's page (429). Every
 * response carries the security headers (CSP without scripts, no framing, no
 * sniffing, no referrer, no caching).
 *
 * Limits (G6): [web] max_connections at once (then accept pauses, the kernel's
 * backlog waits), max_connections_per_address (IPv6: per /64; more are cut at
 * once), timeout (silence), connection_deadline (a connection's whole life, so
 * a client sending a byte now and then cannot hold one), requests_per_minute
 * per address, request headers up to WEB_HEADERS_MAX bytes and
 * WEB_HEADER_COUNT_MAX lines, bodies up to WEB_FORM_BODY_MAX; a client more
 * than WEB_INPUT_MAX bytes of pipelined requests ahead is cut.
 *
 * SECURITY: everything a request carries is hostile: the token is checked
 * (ciss/token.h) before the store is asked, the form parsed strictly
 * (web/request.h), every shown text escaped (web/page.h). The log names the
 * challenge id and the client address, never a token or a code.
 *
 * Owns: the evhttp, its connections and their deadline timers, the rate
 * tables, answers in flight. Must never: write to the store on the loop (the
 * ANSWER goes through the writer thread), block, or log a token or a code.
 */
#ifndef POPGATE_WEB_SERVER_H
#define POPGATE_WEB_SERVER_H

#include <stddef.h>

struct popgate;
struct web_server;

#define WEB_HEADERS_MAX 8192
#define WEB_HEADER_COUNT_MAX 64
#define WEB_INPUT_MAX 262144

/*
 * Serves the bound, listening socket FD (taken in every case) with PG's
 * server TLS context, store, writer and CISS key; PG->cfg's [web] limits are
 * read at each use (a reload's hold from then on). NULL with a message in
 * ERR.
 */
struct web_server *web_server_new(struct popgate *pg, int fd, char *err, size_t errlen);

/*
 * Closes the listener and every connection; NULL is fine; sets *SERVER to
 * NULL. Call it after writer_free: an answer in flight replies from the
 * writer's completion.
 */
void web_server_free(struct web_server **server);

#endif
