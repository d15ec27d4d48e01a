/*
 * test_resolver.c — the resolver (core/resolver.c) against a real name
 * server: dnsmasq on a free loopback port, started for the group with the
 * records below (as tests/it/dnsserver.py does for the integration tests).
 *
 * Addresses (A and AAAA, IPv4 first) are what a fetch asks today. MX and TXT
 * have no caller yet: MX is for the SMTP relay's delivery (lowest preference
 * first), TXT for the Spamfinder filters (SPF, DKIM and DMARC read a
 * record's strings joined), PTR for the name of an SMTP client's address.
 * A UDP socket that never answers stands for a dead name server: timeouts,
 * cancelling and freeing with lookups in flight (LeakSanitizer checks that
 * nothing is left when this program ends).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "core/resolver.h"
#include "test_dnsmasq.h"
#include "test_support.h"

/* Bounds every wait of these tests. */
#define TEST_DEADLINE_SECONDS 20

/* The records dnsmasq serves; "local=/test/" makes it answer NXDOMAIN for
 * names under test. it does not know, and names elsewhere it refuses (it has
 * no upstream). */
static const char *const test_records[] = {
    /* A host-record holds one address of each family. */
    "host-record=multi.test,127.0.0.2",
    "host-record=multi.test,127.0.0.1",
    "host-record=both.test,192.0.2.10,2001:db8::10",
    "mx-host=mail.test,mx2.mail.test,20",
    "mx-host=mail.test,mx1.mail.test,10",
    "mx-host=mail.test,mx3.mail.test,30",
    "mx-host=nullmx.test,.,0",
    "txt-record=spf.test,\"v=spf1 ip4:192.0.2.0/24 \",\"include:_spf.example.test -all\"",
    "txt-record=two.test,\"first\"",
    "txt-record=two.test,\"second\"",
    "ptr-record=7.114.0.203.in-addr.arpa,client.mail.test",
    /* TLSA 3 1 1 and a 32-byte digest 00 01 .. 1f; and one too short to be
     * a TLSA record (its RDATA is three bytes). */
    "dns-rr=_25._tcp.mx1.mail.test,52,030101000102030405060708090a0b0c0d0e0f101112131415161718"
    "191a1b1c1d1e1f",
    "dns-rr=_25._tcp.mx2.mail.test,52,030101",
    "local=/test/",
    /* A TTL, as real zones have (dnsmasq's own default is 0, never
     * cached): answers are then also read from libunbound's cache, and MX
     * records come in dnsmasq's order, which is not by preference. */
    "local-ttl=60",
};

struct dns_server {
	char dir[TEST_DIR_SIZE];
	struct test_dnsmasq dns;
};

static struct dns_server server;

static int dns_server_start(void **state)
{
	(void)state;
	if (test_dir_make(server.dir, sizeof(server.dir), "resolver") < 0)
		return -1;
	return test_dnsmasq_start(&server.dns, server.dir, test_records,
				  sizeof(test_records) / sizeof(test_records[0]));
}

static int dns_server_stop(void **state)
{
	(void)state;
	test_dnsmasq_stop(&server.dns);
	test_dir_remove(server.dir);
	return 0;
}

/* ---- a loop and what the callbacks saw ---------------------------------- */

struct seen {
	struct event_base *base;
	int expected; /* callbacks to wait for */
	int calls;
	enum resolver_status status;
	char addresses[8][INET6_ADDRSTRLEN + 8]; /* "IP port" */
	size_t address_count;
	enum resolver_type type;
	char names[8][64];
	uint16_t preferences[8];
	char texts[8][128];
	size_t string_counts[8];
	char first_strings[8][64];
	struct resolver_tlsa tlsa; /* the first TLSA record, its data not kept */
	uint8_t tlsa_data[64];
	bool bogus;
	size_t count;
};

static void seen_done(struct seen *seen)
{
	if (++seen->calls >= seen->expected)
		event_base_loopbreak(seen->base);
}

static void addresses_cb(enum resolver_status status, const struct resolver_address *addresses,
			 size_t count, void *ctx)
{
	struct seen *seen = ctx;

	seen->status = status;
	seen->address_count = count;
	for (size_t i = 0; i < count && i < 8; i++) {
		const struct sockaddr *addr = (const struct sockaddr *)&addresses[i].addr;
		char ip[INET6_ADDRSTRLEN] = "?";
		int port = 0;

		if (addr->sa_family == AF_INET) {
			inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, ip,
				  sizeof(ip));
			port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
			assert_int_equal(addresses[i].len, sizeof(struct sockaddr_in));
		} else {
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, ip,
				  sizeof(ip));
			port = ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
			assert_int_equal(addresses[i].len, sizeof(struct sockaddr_in6));
		}
		snprintf(seen->addresses[i], sizeof(seen->addresses[i]), "%s %d", ip, port);
	}
	seen_done(seen);
}

static void answer_cb(const struct resolver_answer *answer, void *ctx)
{
	struct seen *seen = ctx;

	seen->status = answer->status;
	seen->type = answer->type;
	seen->count = answer->count;
	assert_false(answer->secure); /* no trust anchor: nothing is validated */
	seen->bogus = answer->bogus;
	if (answer->type == RESOLVER_TLSA && answer->count > 0) {
		const struct resolver_tlsa *tlsa = answer->records[0].tlsa;

		assert_non_null(tlsa);
		seen->tlsa = *tlsa;
		seen->tlsa.data = NULL;
		assert_true(tlsa->length <= sizeof(seen->tlsa_data));
		memcpy(seen->tlsa_data, tlsa->data, tlsa->length);
	}
	for (size_t i = 0; i < answer->count && i < 8; i++) {
		const struct resolver_record *record = &answer->records[i];

		seen->preferences[i] = record->preference;
		if (record->name != NULL)
			snprintf(seen->names[i], sizeof(seen->names[i]), "%s", record->name);
		if (record->text != NULL) {
			assert_int_equal(strlen(record->text), record->text_length);
			snprintf(seen->texts[i], sizeof(seen->texts[i]), "%s", record->text);
			seen->string_counts[i] = record->string_count;
			snprintf(seen->first_strings[i], sizeof(seen->first_strings[i]), "%s",
				 record->strings[0].data);
		}
	}
	seen_done(seen);
}

/* Runs BASE until SEEN has its callbacks, or the deadline. */
static void seen_wait(struct seen *seen)
{
	struct timeval deadline = {TEST_DEADLINE_SECONDS, 0};

	event_base_loopexit(seen->base, &deadline);
	event_base_dispatch(seen->base);
}

static struct resolver *resolver_for(struct event_base *base, const char *nameservers)
{
	char err[256] = "";
	struct resolver *resolver = resolver_new(base, nameservers, err, sizeof(err));

	if (resolver == NULL)
		fail_msg("resolver_new: %s", err);
	return resolver;
}

/* A UDP socket on loopback that never answers; its address in ADDRESS. */
static int silent_server(char *address, size_t size)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(address, size, "127.0.0.1:%d", ntohs(sin.sin_port));
	return fd;
}

/* Whether a query has reached FD, waiting up to the deadline. */
static bool silent_server_asked(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	return poll(&pfd, 1, TEST_DEADLINE_SECONDS * 1000) == 1;
}

/* ---- addresses ---------------------------------------------------------- */

static void test_addresses_of_a_host(void **state)
{
	(void)state;
	struct seen seen = {.base = event_base_new(), .expected = 1};
	struct resolver *resolver = resolver_for(seen.base, server.dns.address);

	/* The port asked for comes with every address; IPv4 first. */
	assert_non_null(resolver_lookup_addresses(resolver, "both.test", 995, addresses_cb, &seen));
	assert_int_equal(seen.calls, 0); /* never inside the call */
	seen_wait(&seen);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.status, RESOLVER_OK);
	assert_int_equal(seen.address_count, 2);
	assert_string_equal(seen.addresses[0], "192.0.2.10 995");
	assert_string_equal(seen.addresses[1], "2001:db8::10 995");

	/* Several addresses of one family all come back. */
	seen.calls = 0;
	resolver_lookup_addresses(resolver, "multi.test", 110, addresses_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_OK);
	assert_int_equal(seen.address_count, 2);
	resolver_free(&resolver);
	assert_null(resolver);
	event_base_free(seen.base);
}

static void test_names_that_do_not_resolve(void **state)
{
	(void)state;
	struct seen seen = {.base = event_base_new(), .expected = 1};
	struct resolver *resolver = resolver_for(seen.base, server.dns.address);

	resolver_lookup_addresses(resolver, "unknown.test", 110, addresses_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_NOT_FOUND);
	assert_int_equal(seen.address_count, 0);

	/* A name with records, but no address: answered, with none. */
	seen.calls = 0;
	resolver_lookup_addresses(resolver, "mail.test", 110, addresses_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_OK);
	assert_int_equal(seen.address_count, 0);

	/* dnsmasq refuses names it has no upstream for. */
	seen.calls = 0;
	resolver_lookup_addresses(resolver, "elsewhere.example", 110, addresses_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_FAILED);
	resolver_free(&resolver);
	event_base_free(seen.base);
}

static void test_numeric_hosts_and_hosts_file_ask_no_one(void **state)
{
	(void)state;
	struct seen seen = {.base = event_base_new(), .expected = 1};
	char address[32];
	int fd = silent_server(address, sizeof(address));
	struct resolver *resolver = resolver_for(seen.base, address);

	/* A silent name server: any question would time out instead. */
	resolver_set_timeout(resolver, 5000);
	resolver_lookup_addresses(resolver, "192.0.2.1", 995, addresses_cb, &seen);
	assert_int_equal(seen.calls, 0);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_OK);
	assert_int_equal(seen.address_count, 1);
	assert_string_equal(seen.addresses[0], "192.0.2.1 995");

	seen.calls = 0;
	resolver_lookup_addresses(resolver, "2001:db8::1", 110, addresses_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.address_count, 1);
	assert_string_equal(seen.addresses[0], "2001:db8::1 110");

	/* localhost comes from the hosts file (and libunbound's own zone). */
	seen.calls = 0;
	resolver_lookup_addresses(resolver, "localhost", 110, addresses_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_OK);
	assert_true(seen.address_count >= 1);
	assert_string_equal(seen.addresses[0], "127.0.0.1 110");
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 0), 0); /* nothing was asked */
	resolver_free(&resolver);
	event_base_free(seen.base);
	close(fd);
}

/* ---- MX, TXT, PTR --------------------------------------------------------- */

static void test_mx_in_preference_order(void **state)
{
	(void)state;
	struct seen seen = {.base = event_base_new(), .expected = 1};
	struct resolver *resolver = resolver_for(seen.base, server.dns.address);

	/* The second answer comes from the cache. */
	for (int round = 0; round < 2; round++) {
		seen.calls = 0;
		memset(seen.names, 0, sizeof(seen.names));
		resolver_lookup(resolver, "mail.test", RESOLVER_MX, answer_cb, &seen);
		seen_wait(&seen);
		assert_int_equal(seen.status, RESOLVER_OK);
		assert_int_equal(seen.type, RESOLVER_MX);
		assert_int_equal(seen.count, 3);
		assert_int_equal(seen.preferences[0], 10);
		assert_string_equal(seen.names[0], "mx1.mail.test");
		assert_int_equal(seen.preferences[1], 20);
		assert_string_equal(seen.names[1], "mx2.mail.test");
		assert_int_equal(seen.preferences[2], 30);
		assert_string_equal(seen.names[2], "mx3.mail.test");
	}

	/* The null MX (RFC 7505): the domain takes no mail. */
	seen.calls = 0;
	resolver_lookup(resolver, "nullmx.test", RESOLVER_MX, answer_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_OK);
	assert_int_equal(seen.count, 1);
	assert_int_equal(seen.preferences[0], 0);
	assert_string_equal(seen.names[0], ".");

	seen.calls = 0;
	resolver_lookup(resolver, "nomail.test", RESOLVER_MX, answer_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_NOT_FOUND);
	assert_int_equal(seen.count, 0);
	resolver_free(&resolver);
	event_base_free(seen.base);
}

static void test_tlsa_records(void **state)
{
	(void)state;
	struct seen seen = {.base = event_base_new(), .expected = 1};
	struct resolver *resolver = resolver_for(seen.base, server.dns.address);

	resolver_lookup(resolver, "_25._tcp.mx1.mail.test", RESOLVER_TLSA, answer_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_OK);
	assert_int_equal(seen.type, RESOLVER_TLSA);
	assert_int_equal(seen.count, 1);
	assert_int_equal(seen.tlsa.usage, 3);
	assert_int_equal(seen.tlsa.selector, 1);
	assert_int_equal(seen.tlsa.matching, 1);
	assert_int_equal(seen.tlsa.length, 32);
	for (size_t i = 0; i < 32; i++)
		assert_int_equal(seen.tlsa_data[i], i);
	assert_false(seen.bogus);

	/* A malformed record is no answer one can use. */
	seen.calls = 0;
	resolver_lookup(resolver, "_25._tcp.mx2.mail.test", RESOLVER_TLSA, answer_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_FAILED);
	assert_int_equal(seen.count, 0);

	/* No record: answered, none. */
	seen.calls = 0;
	resolver_lookup(resolver, "_25._tcp.mx3.mail.test", RESOLVER_TLSA, answer_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.count, 0);
	assert_true(seen.status == RESOLVER_OK || seen.status == RESOLVER_NOT_FOUND);
	resolver_free(&resolver);
	event_base_free(seen.base);
}

static void test_trust_anchor_file(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	char err[256] = "";
	struct resolver *resolver = resolver_new(base, "127.0.0.1:53", err, sizeof(err));

	assert_non_null(resolver);
	/* A file that is not there stops the start with its name. */
	assert_int_equal(
	    resolver_set_trust_anchor(resolver, "/nonexistent/root.key", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/root.key"));
	resolver_free(&resolver);
	event_base_free(base);
}

static void test_txt_strings_and_records(void **state)
{
	(void)state;
	struct seen seen = {.base = event_base_new(), .expected = 1};
	struct resolver *resolver = resolver_for(seen.base, server.dns.address);

	/* One record of two strings: SPF reads them joined. */
	resolver_lookup(resolver, "spf.test", RESOLVER_TXT, answer_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_OK);
	assert_int_equal(seen.count, 1);
	assert_int_equal(seen.string_counts[0], 2);
	assert_string_equal(seen.first_strings[0], "v=spf1 ip4:192.0.2.0/24 ");
	assert_string_equal(seen.texts[0],
			    "v=spf1 ip4:192.0.2.0/24 include:_spf.example.test -all");

	/* Two records of one string each. */
	seen.calls = 0;
	memset(seen.texts, 0, sizeof(seen.texts));
	resolver_lookup(resolver, "two.test", RESOLVER_TXT, answer_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_OK);
	assert_int_equal(seen.count, 2);
	assert_int_equal(seen.string_counts[0], 1);
	assert_int_equal(seen.string_counts[1], 1);
	/* Records of a set come in no set order. */
	assert_true((strcmp(seen.texts[0], "first") == 0 && strcmp(seen.texts[1], "second") == 0) ||
		    (strcmp(seen.texts[0], "second") == 0 && strcmp(seen.texts[1], "first") == 0));
	resolver_free(&resolver);
	event_base_free(seen.base);
}

static void test_ptr_of_an_address(void **state)
{
	(void)state;
	struct seen seen = {.base = event_base_new(), .expected = 1};
	struct resolver *resolver = resolver_for(seen.base, server.dns.address);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	char name[80];

	inet_pton(AF_INET, "203.0.114.7", &sin.sin_addr);
	assert_int_equal(resolver_reverse_name((struct sockaddr *)&sin, name, sizeof(name)), 0);
	assert_string_equal(name, "7.114.0.203.in-addr.arpa");
	resolver_lookup(resolver, name, RESOLVER_PTR, answer_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.status, RESOLVER_OK);
	assert_int_equal(seen.count, 1);
	assert_string_equal(seen.names[0], "client.mail.test");
	resolver_free(&resolver);
	event_base_free(seen.base);
}

static void test_reverse_names(void **state)
{
	(void)state;
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr other = {.sa_family = AF_UNIX};
	char name[80];

	inet_pton(AF_INET6, "2001:db8::567:89ab", &sin6.sin6_addr);
	assert_int_equal(resolver_reverse_name((struct sockaddr *)&sin6, name, sizeof(name)), 0);
	assert_string_equal(name, "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2."
				  "ip6.arpa");
	assert_int_equal(resolver_reverse_name((struct sockaddr *)&sin6, name, 72), -1);
	assert_int_equal(resolver_reverse_name((struct sockaddr *)&sin6, name, 73), 0);
	inet_pton(AF_INET, "255.255.255.255", &sin.sin_addr);
	assert_int_equal(resolver_reverse_name((struct sockaddr *)&sin, name, 30), 0);
	assert_string_equal(name, "255.255.255.255.in-addr.arpa");
	assert_int_equal(resolver_reverse_name((struct sockaddr *)&sin, name, 28), -1);
	assert_int_equal(resolver_reverse_name(&other, name, sizeof(name)), -1);
}

/* A restart checks many providers at once: every lookup is answered, none
 * lost in libunbound's queue, however many wait there. */
#define MANY_LOOKUPS 300

struct many {
	struct event_base *base;
	int answered;
	int found;
};

static void many_cb(enum resolver_status status, const struct resolver_address *addresses,
		    size_t count, void *ctx)
{
	struct many *many = ctx;
	(void)addresses;

	if (status == RESOLVER_OK && count == 2)
		many->found++;
	else
		assert_int_equal(status, RESOLVER_NOT_FOUND);
	if (++many->answered == MANY_LOOKUPS)
		event_base_loopbreak(many->base);
}

static void test_many_lookups_at_once(void **state)
{
	(void)state;
	struct many many = {.base = event_base_new()};
	struct resolver *resolver = resolver_for(many.base, server.dns.address);
	struct timeval deadline = {TEST_DEADLINE_SECONDS, 0};
	char name[32];

	for (int i = 0; i < MANY_LOOKUPS; i++) {
		/* Every tenth a known host, the rest names of their own. */
		snprintf(name, sizeof(name), "host%d.test", i);
		resolver_lookup_addresses(resolver, i % 10 == 0 ? "both.test" : name, 110, many_cb,
					  &many);
	}
	event_base_loopexit(many.base, &deadline);
	event_base_dispatch(many.base);
	assert_int_equal(many.answered, MANY_LOOKUPS);
	assert_int_equal(many.found, MANY_LOOKUPS / 10);
	resolver_free(&resolver);
	event_base_free(many.base);
}

/* ---- timeouts, cancelling, freeing ---------------------------------------- */

static void never_cb(enum resolver_status status, const struct resolver_address *addresses,
		     size_t count, void *ctx)
{
	(void)status;
	(void)addresses;
	(void)count;
	(void)ctx;
	fail_msg("the callback of a cancelled lookup ran");
}

static void never_answer_cb(const struct resolver_answer *answer, void *ctx)
{
	(void)answer;
	(void)ctx;
	fail_msg("the callback of a dropped lookup ran");
}

static void test_silent_name_server_times_out(void **state)
{
	(void)state;
	struct seen seen = {.base = event_base_new(), .expected = 2};
	char address[32];
	int fd = silent_server(address, sizeof(address));
	struct resolver *resolver = resolver_for(seen.base, address);

	resolver_set_timeout(resolver, 300);
	resolver_lookup_addresses(resolver, "mail.silent.test", 110, addresses_cb, &seen);
	resolver_lookup(resolver, "silent.test", RESOLVER_TXT, answer_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.calls, 2);
	assert_int_equal(seen.status, RESOLVER_TIMEOUT);
	assert_string_equal(resolver_status_text(RESOLVER_TIMEOUT), "no answer in time");
	assert_true(silent_server_asked(fd));
	resolver_free(&resolver);
	event_base_free(seen.base);
	close(fd);
}

static void test_cancelled_lookup_never_calls_back(void **state)
{
	(void)state;
	struct seen seen = {.base = event_base_new(), .expected = 1};
	struct resolver *resolver = resolver_for(seen.base, server.dns.address);
	struct resolver_lookup *lookup;

	/* Cancelled before its answer came: dnsmasq answers at once, so the
	 * answer is processed (and dropped) while the second lookup runs. */
	lookup = resolver_lookup_addresses(resolver, "multi.test", 110, never_cb, NULL);
	resolver_cancel(&lookup);
	assert_null(lookup);
	resolver_cancel(&lookup); /* NULL is fine */
	resolver_lookup_addresses(resolver, "both.test", 110, addresses_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.status, RESOLVER_OK);

	/* Cancelled while the "at once" of a numeric host is due. */
	lookup = resolver_lookup_addresses(resolver, "192.0.2.1", 110, never_cb, NULL);
	resolver_cancel(&lookup);
	seen.calls = 0;
	resolver_lookup(resolver, "mail.test", RESOLVER_MX, answer_cb, &seen);
	seen_wait(&seen);
	assert_int_equal(seen.calls, 1);
	resolver_free(&resolver);
	event_base_free(seen.base);
}

static void test_free_with_lookups_in_flight(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	char address[32];
	int fd = silent_server(address, sizeof(address));
	struct resolver *resolver = resolver_for(base, address);

	/* As at a SIGTERM while a provider's host is resolving: the lookups
	 * are pending at a server that will never answer. */
	resolver_lookup_addresses(resolver, "mail.silent.test", 110, never_cb, NULL);
	resolver_lookup(resolver, "silent.test", RESOLVER_MX, never_answer_cb, NULL);
	assert_true(silent_server_asked(fd));
	event_base_loop(base, EVLOOP_NONBLOCK);
	/* And one whose "at once" is due but has not run. */
	resolver_lookup_addresses(resolver, "192.0.2.1", 110, never_cb, NULL);
	resolver_free(&resolver);
	resolver_free(&resolver); /* NULL is fine */
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
	close(fd);
}

static void test_name_server_lists(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct resolver *resolver;
	char err[256] = "";

	/* Spaces or commas between items, IPv6 with a port in brackets. */
	resolver = resolver_new(base, "127.0.0.1:53, [::1]:5353 192.0.2.53,2001:db8::53", err,
				sizeof(err));
	assert_non_null(resolver);
	resolver_free(&resolver);
	/* Empty: /etc/resolv.conf's. */
	resolver = resolver_new(base, "", err, sizeof(err));
	assert_non_null(resolver);
	resolver_free(&resolver);
	assert_null(resolver_new(base, "127.0.0.1:53 not-an-address", err, sizeof(err)));
	assert_non_null(strstr(err, "not-an-address"));
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addresses_of_a_host),
	    cmocka_unit_test(test_names_that_do_not_resolve),
	    cmocka_unit_test(test_numeric_hosts_and_hosts_file_ask_no_one),
	    cmocka_unit_test(test_mx_in_preference_order),
	    cmocka_unit_test(test_txt_strings_and_records),
	    cmocka_unit_test(test_tlsa_records),
	    cmocka_unit_test(test_trust_anchor_file),
	    cmocka_unit_test(test_ptr_of_an_address),
	    cmocka_unit_test(test_reverse_names),
	    cmocka_unit_test(test_many_lookups_at_once),
	    cmocka_unit_test(test_silent_name_server_times_out),
	    cmocka_unit_test(test_cancelled_lookup_never_calls_back),
	    cmocka_unit_test(test_free_with_lookups_in_flight),
	    cmocka_unit_test(test_name_server_lists),
	};

	return cmocka_run_group_tests(tests, dns_server_start, dns_server_stop);
}
