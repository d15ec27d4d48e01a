/*
 * test_dnsmasq.h — a real name server for the unit tests that resolve
 * (test_resolver, test_connector): dnsmasq on a free loopback port, serving
 * the records a test gives it and nothing else (no upstream), run as the
 * user that runs the tests, in the foreground, stopped at the end.
 *
 * Header-only, like test_support.h: each test program is one file.
 */
#ifndef POPGATE_TEST_DNSMASQ_H
#define POPGATE_TEST_DNSMASQ_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_DNSMASQ "/usr/sbin/dnsmasq"
/* Bounds the wait for dnsmasq to answer, in seconds. */
#define TEST_DNSMASQ_START_SECONDS 20

struct test_dnsmasq {
	pid_t pid;
	int port;
	char address[32]; /* "127.0.0.1:PORT", for resolver_new */
};

/* A free port of TYPE on 127.0.0.1 (bound, read, closed); -1 on error. */
static inline int test_dnsmasq_free_port(int type)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, type, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* Whether TCP PORT on 127.0.0.1 can be bound (CONNECT false) or accepts a
 * connection (CONNECT true: dnsmasq is up). */
static inline bool test_dnsmasq_tcp(int port, bool connect_to)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	bool ok;

	if (fd < 0)
		return false;
	if (connect_to) {
		ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	}
	close(fd);
	return ok;
}

/* Starts dnsmasq on PORT with DIR/dnsmasq.conf holding RECORDS; 0 once it
 * answers, -1 if it cannot start or exits (the port was taken meanwhile). */
static inline int test_dnsmasq_start_on(struct test_dnsmasq *dns, const char *dir, int port,
					const char *const *records, size_t record_count)
{
	char conf[4096], arg[4200];
	struct passwd *me = getpwuid(getuid());
	FILE *f;

	if (me == NULL)
		return -1;
	dns->port = port;
	snprintf(dns->address, sizeof(dns->address), "127.0.0.1:%d", port);
	snprintf(conf, sizeof(conf), "%s/dnsmasq.conf", dir);
	f = fopen(conf, "w");
	if (f == NULL)
		return -1;
	/* Stay the user that runs the tests: dnsmasq would switch to nobody. */
	fprintf(f,
		"no-resolv\nno-hosts\nbind-interfaces\nlisten-address=127.0.0.1\nport=%d\n"
		"user=%s\n",
		port, me->pw_name);
	for (size_t i = 0; i < record_count; i++)
		fprintf(f, "%s\n", records[i]);
	fclose(f);
	snprintf(arg, sizeof(arg), "--conf-file=%s", conf);
	dns->pid = fork();
	if (dns->pid < 0)
		return -1;
	if (dns->pid == 0) {
		execl(TEST_DNSMASQ, TEST_DNSMASQ, "--keep-in-foreground", "--pid-file=", arg,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < TEST_DNSMASQ_START_SECONDS * 20; i++) {
		if (test_dnsmasq_tcp(port, true))
			return 0;
		if (waitpid(dns->pid, NULL, WNOHANG) == dns->pid) {
			dns->pid = 0;
			return -1;
		}
		usleep(50000);
	}
	return -1;
}

/*
 * Starts dnsmasq serving RECORDS (its configuration file in DIR) on a free
 * port. dnsmasq takes the TCP port of the same number too, so the port is
 * one where both are free; another program's tests may take it meanwhile,
 * and then the next is tried. 0 or -1 (with a line on stderr).
 */
static inline int test_dnsmasq_start(struct test_dnsmasq *dns, const char *dir,
				     const char *const *records, size_t record_count)
{
	if (access(TEST_DNSMASQ, X_OK) != 0) {
		fprintf(stderr, "%s is missing (dnsmasq-base)\n", TEST_DNSMASQ);
		return -1;
	}
	for (int attempt = 0; attempt < 10; attempt++) {
		int port = -1;

		for (int i = 0; i < 50 && port < 0; i++) {
			port = test_dnsmasq_free_port(SOCK_DGRAM);
			if (port > 0 && !test_dnsmasq_tcp(port, false))
				port = -1;
		}
		if (port > 0 && test_dnsmasq_start_on(dns, dir, port, records, record_count) == 0)
			return 0;
	}
	fprintf(stderr, "cannot start %s\n", TEST_DNSMASQ);
	return -1;
}

static inline void test_dnsmasq_stop(struct test_dnsmasq *dns)
{
	if (dns->pid > 0) {
		kill(dns->pid, SIGTERM);
		waitpid(dns->pid, NULL, 0);
		dns->pid = 0;
	}
}

#endif
