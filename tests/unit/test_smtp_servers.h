/*
 * test_smtp_servers.h — real and scripted SMTP servers for the unit tests of
 * SMTP clients (test_smtp_client), all on 127.0.0.1:
 *
 *   aiosmtpd (Debian's python3-aiosmtpd): one Python process serving the
 *   servers a JSON list describes (name, port, pipelining, refuse: the
 *   addresses RCPT refuses with 550 5.1.1, cert and key: STARTTLS, auth:
 *   [user, password] required and only over TLS, login_only: AUTH LOGIN
 *   alone). It saves each message as NAME.eml (its bytes as received,
 *   dot-stuffing undone) and NAME.json (envelope, MAIL parameters, whether
 *   TLS and AUTH were used), NAME from the message's X-Test-Id header.
 *
 *   Postfix's smtp-sink with the options a test gives.
 *
 *   A scripted server in the test's own event loop: a greeting, then one
 *   reply per command line, optionally a byte at a time, optionally TLS
 *   after a 220 to STARTTLS; it records the command lines it got.
 *
 * Header-only, like test_support.h: each test program is one file, and
 * every helper is static (inline).
 */
#ifndef POPGATE_TEST_SMTP_SERVERS_H
#define POPGATE_TEST_SMTP_SERVERS_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "core/tls.h"
#include "core/util.h"
#include "test_support.h"

#define TEST_SMTP_PYTHON "/usr/bin/python3"
#define TEST_SMTP_SINK "/usr/sbin/smtp-sink"
/* Bounds the wait for a server to start, in seconds. */
#define TEST_SMTP_START_SECONDS 20

/* The aiosmtpd servers: argv[1] the JSON list, argv[2] the folder for the
 * messages and the "ready" mark. */
static const char test_aiosmtpd_script[] =
    "import json, os, re, ssl, sys, threading\n"
    "from aiosmtpd.controller import Controller\n"
    "from aiosmtpd.smtp import AuthResult, LoginPassword\n"
    "config = json.load(open(sys.argv[1]))\n"
    "out_dir = sys.argv[2]\n"
    "class Sink:\n"
    "    def __init__(self, spec):\n"
    "        self.spec = spec\n"
    "        self.count = 0\n"
    "    async def handle_EHLO(self, server, session, envelope, hostname, responses):\n"
    "        session.host_name = hostname\n"
    "        if self.spec.get('pipelining'):\n"
    "            responses.insert(1, '250-PIPELINING')\n"
    "        return responses\n"
    "    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):\n"
    "        if address in self.spec.get('refuse', []):\n"
    "            return '550 5.1.1 <%s>: Recipient address rejected' % address\n"
    "        envelope.rcpt_tos.append(address)\n"
    "        return '250 2.1.5 OK'\n"
    "    async def handle_DATA(self, server, session, envelope):\n"
    "        self.count += 1\n"
    "        found = re.search(rb'X-Test-Id: (\\S+)', envelope.original_content)\n"
    "        name = found.group(1).decode() if found else '%s-%d' % (self.spec['name'], "
    "self.count)\n"
    "        meta = {'sink': self.spec['name'], 'mail_from': envelope.mail_from,\n"
    "                'rcpt_tos': envelope.rcpt_tos, 'mail_options': envelope.mail_options,\n"
    "                'tls': session.ssl is not None,\n"
    "                'login': (session.login_data or b'').decode() if session.authenticated "
    "else None}\n"
    "        base = os.path.join(out_dir, name)\n"
    "        with open(base + '.eml.tmp', 'wb') as f:\n"
    "            f.write(envelope.original_content)\n"
    "        os.rename(base + '.eml.tmp', base + '.eml')\n"
    "        with open(base + '.json.tmp', 'w') as f:\n"
    "            json.dump(meta, f)\n"
    "        os.rename(base + '.json.tmp', base + '.json')\n"
    "        return '250 2.0.0 OK queued as ' + name\n"
    "def authenticator(spec):\n"
    "    def check(server, session, envelope, mechanism, auth_data):\n"
    "        ok = (isinstance(auth_data, LoginPassword)\n"
    "              and auth_data.login.decode() == spec['auth'][0]\n"
    "              and auth_data.password.decode() == spec['auth'][1])\n"
    "        return AuthResult(success=ok, handled=False, auth_data=auth_data)\n"
    "    return check\n"
    "controllers = []\n"
    "for spec in config:\n"
    "    kwargs = {'enable_SMTPUTF8': True}\n"
    "    if spec.get('cert'):\n"
    "        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "        ctx.load_cert_chain(spec['cert'], spec['key'])\n"
    "        kwargs['tls_context'] = ctx\n"
    "    if spec.get('auth'):\n"
    "        kwargs['authenticator'] = authenticator(spec)\n"
    "        kwargs['auth_required'] = True\n"
    "        if spec.get('login_only'):\n"
    "            kwargs['auth_exclude_mechanism'] = ['PLAIN']\n"
    "    controller = Controller(Sink(spec), hostname='127.0.0.1', port=spec['port'],\n"
    "                            server_hostname='mx.test', **kwargs)\n"
    "    controller.start()\n"
    "    controllers.append(controller)\n"
    "open(os.path.join(out_dir, 'ready'), 'w').close()\n"
    "threading.Event().wait()\n";

/* A free TCP port on 127.0.0.1 (bound, read, closed); -1 on error. */
static inline int test_smtp_free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* Stops the child *PID (0 is fine) and sets it to 0. */
static inline void test_smtp_child_stop(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, NULL, 0);
		*pid = 0;
	}
}

/*
 * Starts the aiosmtpd servers CONFIG (the JSON list) describes, its files
 * in DIR (the script, the list, sink.log for its output), the messages in
 * MESSAGES (an existing folder); 0 once they listen, -1 if Python exits
 * first or the wait runs out.
 */
static inline int test_aiosmtpd_start(pid_t *pid, const char *dir, const char *config,
				      const char *messages)
{
	char config_path[256], script[256], ready[256], log_path[256];

	snprintf(config_path, sizeof(config_path), "%s/aiosmtpd.json", dir);
	/* Not aiosmtpd.py: Python would import it for "aiosmtpd". */
	snprintf(script, sizeof(script), "%s/smtp_servers.py", dir);
	snprintf(ready, sizeof(ready), "%s/ready", messages);
	snprintf(log_path, sizeof(log_path), "%s/aiosmtpd.log", dir);
	test_write_file(config_path, config);
	test_write_file(script, test_aiosmtpd_script);
	*pid = fork();
	if (*pid < 0)
		return -1;
	if (*pid == 0) {
		/* Its tracebacks for handshakes refused on purpose go here. */
		int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(log_fd, 1);
		dup2(log_fd, 2);
		execl(TEST_SMTP_PYTHON, TEST_SMTP_PYTHON, script, config_path, messages,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < TEST_SMTP_START_SECONDS * 20; i++) {
		if (test_path_exists(ready))
			return 0;
		if (waitpid(*pid, NULL, WNOHANG) == *pid) {
			*pid = 0;
			break;
		}
		usleep(50000);
	}
	/* Why, for the test's output. */
	char *log_text = NULL;
	size_t log_len = 0;
	if (util_read_file(log_path, &log_text, &log_len) == 0)
		fprintf(stderr, "aiosmtpd did not start:\n%.*s\n", (int)log_len, log_text);
	free(log_text);
	return -1;
}

/* smtp-sink on a free port with OPTIONS (one argument each, NULL-ended);
 * its port, once it accepts connections. Fails the test if it does not. */
static inline int test_smtp_sink_start(pid_t *pid, const char *const *options)
{
	int port = test_smtp_free_port();
	char address[32];
	const char *argv[16];
	size_t argc = 0;

	snprintf(address, sizeof(address), "127.0.0.1:%d", port);
	argv[argc++] = TEST_SMTP_SINK;
	/* As root smtp-sink wants a user to switch to. */
	if (getuid() == 0) {
		argv[argc++] = "-u";
		argv[argc++] = "nobody";
	}
	for (size_t i = 0; options[i] != NULL && argc < 12; i++)
		argv[argc++] = options[i];
	argv[argc++] = address;
	argv[argc++] = "16";
	argv[argc] = NULL;
	*pid = fork();
	assert_true(*pid >= 0);
	if (*pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execv(TEST_SMTP_SINK, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < TEST_SMTP_START_SECONDS * 20; i++) {
		struct sockaddr_in sin = {.sin_family = AF_INET,
					  .sin_port = htons((uint16_t)port),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		bool up = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
		close(fd);
		if (up)
			return port;
		assert_int_not_equal(waitpid(*pid, NULL, WNOHANG), *pid);
		usleep(50000);
	}
	fail_msg("smtp-sink did not start");
	return -1;
}

/* ---- a scripted server ------------------------------------------------------- */

/* The server's part: a greeting, then one reply per command line (a NULL
 * reply closes the connection); after a 354 the body's lines are taken up
 * to the final dot, and the next reply answers it. */
struct test_script {
	const char *greeting; /* NULL: say nothing */
	const char *const *replies;
	bool drip; /* send a byte at a time */
	/* After a 220 (the reply to STARTTLS, sent in plain whatever else it
	 * holds), TLS with the certificate given to test_scripted_start. */
	bool starttls;
};

/* One scripted server and its one connection. */
struct test_scripted {
	struct event_base *base;
	struct evconnlistener *listener;
	int port;
	const struct test_script *script;
	struct bufferevent *bev;
	struct evbuffer *pending; /* what is dripped out */
	struct event *drip_timer;
	SSL_CTX *tls_ctx;
	size_t next_reply;
	bool in_body;
	bool closed;
	char received[4096]; /* the command lines, each ended by '|' */
};

static inline void test_scripted_send(struct test_scripted *server, const char *text)
{
	if (server->script->drip) {
		static const struct timeval soon = {0, 1000};
		evbuffer_add(server->pending, text, strlen(text));
		evtimer_add(server->drip_timer, &soon);
	} else {
		bufferevent_write(server->bev, text, strlen(text));
	}
}

static inline void test_scripted_close(struct test_scripted *server)
{
	if (server->bev != NULL) {
		bufferevent_free(server->bev);
		server->bev = NULL;
	}
	server->closed = true;
}

static inline void test_scripted_drip_cb(evutil_socket_t fd, short what, void *ctx)
{
	static const struct timeval soon = {0, 1000};
	struct test_scripted *server = ctx;
	char byte;
	(void)fd;
	(void)what;

	if (server->bev == NULL || evbuffer_remove(server->pending, &byte, 1) != 1)
		return;
	bufferevent_write(server->bev, &byte, 1);
	if (evbuffer_get_length(server->pending) > 0)
		evtimer_add(server->drip_timer, &soon);
}

static inline void test_scripted_event_cb(struct bufferevent *bev, short events, void *ctx)
{
	(void)bev;
	if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		test_scripted_close(ctx);
}

static inline void test_scripted_read_cb(struct bufferevent *bev, void *ctx)
{
	struct test_scripted *server = ctx;
	char *line;
	size_t len;

	while (server->bev != NULL && (line = evbuffer_readln(bufferevent_get_input(bev), &len,
							      EVBUFFER_EOL_CRLF)) != NULL) {
		bool reply = true;
		if (server->in_body) {
			reply = strcmp(line, ".") == 0;
			server->in_body = !reply;
		} else {
			size_t used = strlen(server->received);
			snprintf(server->received + used, sizeof(server->received) - used, "%s|",
				 line);
		}
		free(line);
		if (!reply)
			continue;
		const char *text = server->script->replies[server->next_reply];
		if (text == NULL) {
			test_scripted_close(server);
			return;
		}
		server->next_reply++;
		server->in_body = strncmp(text, "354", 3) == 0;
		test_scripted_send(server, text);
		if (server->script->starttls && strncmp(text, "220", 3) == 0) {
			/* The reply leaves in plain; what the client sends next is
			 * its TLS hello. */
			server->bev = bufferevent_openssl_filter_new(
			    server->base, server->bev, SSL_new(server->tls_ctx),
			    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
			assert_non_null(server->bev);
			bufferevent_setcb(server->bev, test_scripted_read_cb, NULL,
					  test_scripted_event_cb, server);
			bufferevent_enable(server->bev, EV_READ | EV_WRITE);
			return;
		}
	}
}

static inline void test_scripted_accept_cb(struct evconnlistener *listener, evutil_socket_t fd,
					   struct sockaddr *addr, int addrlen, void *ctx)
{
	struct test_scripted *server = ctx;
	(void)listener;
	(void)addr;
	(void)addrlen;

	assert_null(server->bev); /* one connection per server */
	server->bev = bufferevent_socket_new(server->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(server->bev, test_scripted_read_cb, NULL, test_scripted_event_cb, server);
	bufferevent_enable(server->bev, EV_READ | EV_WRITE);
	if (server->script->greeting != NULL)
		test_scripted_send(server, server->script->greeting);
}

/* Listens on a free port of 127.0.0.1 in BASE for SCRIPT; CERT and KEY for
 * its STARTTLS (NULL if the script has none). */
static inline void test_scripted_start(struct test_scripted *server, struct event_base *base,
				       const struct test_script *script, const char *cert,
				       const char *key)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);

	memset(server, 0, sizeof(*server));
	server->base = base;
	server->script = script;
	server->pending = evbuffer_new();
	server->drip_timer = evtimer_new(base, test_scripted_drip_cb, server);
	if (script->starttls) {
		char err[256] = "";
		server->tls_ctx = tls_server_ctx_new(cert, key, err, sizeof(err));
		assert_non_null(server->tls_ctx);
	}
	server->listener = evconnlistener_new_bind(base, test_scripted_accept_cb, server,
						   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4,
						   (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(server->listener);
	assert_int_equal(
	    getsockname(evconnlistener_get_fd(server->listener), (struct sockaddr *)&sin, &len), 0);
	server->port = ntohs(sin.sin_port);
}

static inline void test_scripted_stop(struct test_scripted *server)
{
	test_scripted_close(server);
	evconnlistener_free(server->listener);
	event_free(server->drip_timer);
	evbuffer_free(server->pending);
	SSL_CTX_free(server->tls_ctx);
}

#endif
