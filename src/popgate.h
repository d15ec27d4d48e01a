/*
 * popgate.h — the daemon's context: one struct that every module of the main
 * process is handed, instead of global state.
 */
#ifndef POPGATE_POPGATE_H
#define POPGATE_POPGATE_H

#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/config.h"
#include "core/crypto.h"
#include "store/db.h"

struct pipeline;
struct pop3_server;
struct smtp_server;
struct fetcher;
struct auth;
struct offload;
struct resolver;
struct writer;
struct relay;
struct web_server;
struct archiver;

struct popgate {
	struct popgate_config *cfg;
	struct event_base *base;
	struct resolver *dns;
	/* The relay's resolver: validating with [server] dns_trust_anchor (DANE),
	 * apart from dns so that name servers which strip DNSSEC records can make
	 * only the relay's lookups fail, never a fetch's; dns itself when no
	 * anchor is set. */
	struct resolver *relay_dns;
	struct store *store;
	struct crypto_key key;
	struct crypto_key ciss_key; /* signs the links of challenges (ciss/token.h) */
	SSL_CTX *server_tls;
	struct pipeline *pipeline;
	struct pop3_server *pop3;
	struct smtp_server *smtp; /* NULL when both SMTP ports are off */
	struct fetcher *fetcher;
	struct auth *auth;
	struct offload *offload; /* threads for argon2id */
	struct writer *writer;	 /* spool fsyncs and commits off the loop (store/writer.h) */
	struct relay *relay;	 /* outbound delivery (smtp/relay.h) */
	struct web_server *web;	 /* the HTTPS sender page (web/server.h); NULL when off */
	struct archiver *archiver; /* MailDepot (pipeline/archiver.h); NULL: [depot] off */
};

#endif
