/*
 * test_received.c — the Received chain (filters/received.c): the from
 * clause of each MTA's Received field read into HELO name, reverse name and
 * address; the hand-off of real SpamAssassin corpus messages for a given
 * provider; hand-written chains (GMX and web.de, IPv6, internal hops, a
 * forged hop below the hand-off, HELO names made to look like comments,
 * trusted_relays with and without a provider); garbage, overlong fields,
 * 100 Received fields; the trusted_relays syntax, also as the configuration
 * reads it; and the trace filter's reason naming the hand-off.
 *
 * Owns: nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/config_key.h"
#include "core/util.h"
#include "filters/filter.h"
#include "filters/received.h"
#include "pipeline/pipeline.h"
#include "test_corpus.h"

/* The hand-off of TEXT fetched from PROVIDER with RELAYS. */
static struct filter_handoff handoff_of(const char *text, const char *provider, const char *relays)
{
	struct filter_handoff handoff;

	received_handoff_find(text, strlen(text), provider, relays, &handoff);
	return handoff;
}

static void assert_handoff(const struct filter_handoff *handoff, const char *address,
			   const char *helo, const char *reverse)
{
	assert_true(handoff->found);
	assert_string_equal(handoff->address, address);
	assert_string_equal(handoff->helo, helo);
	assert_string_equal(handoff->reverse, reverse);
}

/* Parses one field VALUE and checks what it found. */
static void assert_hop(const char *value, const char *address, const char *helo,
		       const char *reverse, const char *by)
{
	struct received_hop hop;

	received_hop_parse(value, strlen(value), &hop);
	if (strcmp(hop.address, address) != 0 || strcmp(hop.helo, helo) != 0 ||
	    strcmp(hop.reverse, reverse) != 0 || strcmp(hop.by, by) != 0)
		fail_msg("%s\n  got address '%s' helo '%s' reverse '%s' by '%s'", value,
			 hop.address, hop.helo, hop.reverse, hop.by);
}

static void test_hop_shapes(void **state)
{
	(void)state;
	/* Postfix. */
	assert_hop(" from mail.sender.example (mail.sender.example [198.51.100.7])\r\n\tby "
		   "mx.provider.example (Postfix) with ESMTPS id 4Fx; Tue, 1 Dec 2026",
		   "198.51.100.7", "mail.sender.example", "mail.sender.example",
		   "mx.provider.example");
	assert_hop(" from helo.example (unknown [IPv6:2001:DB8::25]) by mx.example (Postfix)",
		   "2001:db8::25", "helo.example", "", "mx.example");
	/* Sendmail: ident user, unconfirmed reverse names. */
	assert_hop(" from lugh.tuatha.org (root@lugh.tuatha.org [194.125.145.45]) by "
		   "dogma.slashnull.org (8.11.6/8.11.6) with ESMTP id g72LqWv13294",
		   "194.125.145.45", "lugh.tuatha.org", "lugh.tuatha.org", "dogma.slashnull.org");
	assert_hop(" from helo.example (ppp-1.isp.example [198.51.100.30] (may be forged)) by "
		   "mx.example",
		   "198.51.100.30", "helo.example", "", "mx.example");
	/* Exim. */
	assert_hop(" from host.sender.example ([198.51.100.8]:41234 helo=helo.sender.example) by "
		   "mx.example with esmtps (Exim 4.96)",
		   "198.51.100.8", "helo.sender.example", "host.sender.example", "mx.example");
	assert_hop(" from [198.51.100.9] (helo=laptop) by mx.example with esmtp (Exim 4.96)",
		   "198.51.100.9", "laptop", "", "mx.example");
	assert_hop(" from host6.example ([2001:db8::1]:25 helo=host6.example) by mx.example",
		   "2001:db8::1", "host6.example", "host6.example", "mx.example");
	/* qmail. */
	assert_hop(" from unknown (HELO mailer.example) (198.51.100.20) by mx.example with SMTP",
		   "198.51.100.20", "mailer.example", "", "mx.example");
	assert_hop(" from host.example (HELO mailer) (user@198.51.100.21) by mx.example",
		   "198.51.100.21", "mailer", "host.example", "mx.example");
	/* Exchange. */
	assert_hop(" from EXCH01.corp.example (10.0.0.1) by EXCH02.corp.example (10.0.0.2) with "
		   "Microsoft SMTP Server id 15.0.1497.2",
		   "10.0.0.1", "EXCH01.corp.example", "", "EXCH02.corp.example");
	assert_hop(" from AM0PR10MB1234.EURPRD10.PROD.OUTLOOK.COM (2603:10a6:208:c0::12) by "
		   "AM0PR10MB5678.EURPRD10.PROD.OUTLOOK.COM with HTTPS",
		   "2603:10a6:208:c0::12", "AM0PR10MB1234.EURPRD10.PROD.OUTLOOK.COM", "",
		   "AM0PR10MB5678.EURPRD10.PROD.OUTLOOK.COM");
	/* GMX and web.de: the HELO is the client's own literal. */
	assert_hop(" from [192.168.1.23] ([93.184.216.34]) by mail.gmx.net (mrgmx105 "
		   "[212.227.17.190]) with ESMTPSA (Nemesis) id 1Mxyz",
		   "93.184.216.34", "[192.168.1.23]", "", "mail.gmx.net");
	assert_hop(" from mout.web.de ([212.227.15.3]) by mx-ha.gmx.net (mxgmx017 "
		   "[212.227.15.9]) with ESMTPS (Nemesis) id 1N",
		   "212.227.15.3", "mout.web.de", "", "mx-ha.gmx.net");
	/* fetchmail and webmail. */
	assert_hop(" from phobos [127.0.0.1] by localhost with IMAP (fetchmail-5.9.0)", "127.0.0.1",
		   "phobos", "", "localhost");
	assert_hop(" from 24.1.2.3 by lw11fd.law11.hotmail.msn.com with HTTP;", "24.1.2.3",
		   "24.1.2.3", "", "lw11fd.law11.hotmail.msn.com");
	/* IPv4 in IPv6 is the IPv4 address. */
	assert_hop(" from a.example (a.example [IPv6:::ffff:198.51.100.9]) by b.example",
		   "198.51.100.9", "a.example", "a.example", "b.example");
	/* No from clause. */
	assert_hop(" (qmail 5065 invoked by uid 507); 2 Jan 2002 18:55:00 -0000", "", "", "", "");
	assert_hop(" (from mail@localhost) by int-mx1.example (8.11.6/8.11.6) id g7M", "", "", "",
		   "int-mx1.example");
	assert_hop(" by mx.example with local; Tue, 1 Dec 2026", "", "", "", "mx.example");
	/* HELO names made to look like comments do not replace the address. */
	assert_hop(" from gmx.net (HELO x) (unknown [198.51.100.70]) by mx.gmx.net",
		   "198.51.100.70", "x", "", "mx.gmx.net");
	assert_hop(" from x ([10.0.0.1]) (unknown [198.51.100.71]) by mx.example", "198.51.100.71",
		   "x", "", "mx.example");
	/* Not addresses. */
	assert_hop(" from a ([999.1.1.1]) by b", "", "a", "", "b");
	assert_hop(" from a ([0.0.0.0]) by b", "", "a", "", "b");
	assert_hop(" from a ([1.2.3.4]x) by b", "", "a", "", "b");
	assert_hop(" from a<b>;c (d [1.2.3.4]) by e", "", "a?b?", "", "");
	assert_hop(" from a\"b (d\"x [1.2.3.4]) by e", "1.2.3.4", "a?b", "", "e");
}

/* Real messages of the SpamAssassin corpus, fetched from the provider that
 * received them. */
static void test_corpus_chains(void **state)
{
	char *data;
	size_t len;
	struct filter_handoff handoff;

	(void)state;
	/* Provider slashnull.org: two internal hops (the owner's own fetchmail
	 * and Postfix), then the mailing list server handed it over. */
	assert_int_equal(test_corpus_read("easy-ham-1", "00001.", &data, &len), 0);
	received_handoff_find(data, len, "dogma.slashnull.org", "", &handoff);
	assert_handoff(&handoff, "66.187.233.211", "listman.spamassassin.taint.org",
		       "listman.spamassassin.taint.org");
	/* With the list's domain trusted for this provider, the walk goes on
	 * through its internal hops to the host that gave it to the list. */
	received_handoff_find(data, len, "dogma.slashnull.org",
			      "dogma.slashnull.org:spamassassin.taint.org", &handoff);
	assert_handoff(&handoff, "202.28.97.6", "ratree.psu.ac.th", "");
	/* Not for another provider. */
	received_handoff_find(data, len, "pop.other.example",
			      "dogma.slashnull.org:spamassassin.taint.org", &handoff);
	assert_handoff(&handoff, "66.187.233.211", "listman.spamassassin.taint.org",
		       "listman.spamassassin.taint.org");
	free(data);

	/* Provider webnote.net: its host that fetchmail read recorded no reverse
	 * name; trusted by address, the hand-off is the spammer's relay, and the
	 * hop below it (written by that relay) is not read. */
	assert_int_equal(test_corpus_read("spam-1", "00001.", &data, &len), 0);
	received_handoff_find(data, len, "mail.webnote.net", "", &handoff);
	assert_handoff(&handoff, "193.120.211.219", "mail.webnote.net", "");
	received_handoff_find(data, len, "mail.webnote.net", "mail.webnote.net:193.120.211.219",
			      &handoff);
	assert_handoff(&handoff, "210.97.77.167", "dd_it7", "");
	free(data);
	assert_int_equal(test_corpus_read("spam-1", "00010.", &data, &len), 0);
	received_handoff_find(data, len, "mail.webnote.net", "193.120.211.0/24", &handoff);
	assert_handoff(&handoff, "204.216.233.160", "enjoya2.enjoya.com", "");
	free(data);

	/* Provider home.com: its front host records only the HELO of its own
	 * relay (InterMail); once that relay is trusted by address, the next
	 * hop's reverse name (mx6-w.mail.home.com) is the provider's own. */
	assert_int_equal(test_corpus_read("hard-ham-1", "00001.", &data, &len), 0);
	received_handoff_find(data, len, "mail.home.com", "", &handoff);
	assert_handoff(&handoff, "24.0.95.46", "h12.mail.home.com", "");
	received_handoff_find(data, len, "mail.home.com", "mail.home.com:24.0.95.46", &handoff);
	assert_handoff(&handoff, "64.94.26.201", "mail1.motleyfool.com", "mail1.motleyfool.com");
	/* Without a provider, home.com's names are nobody's. */
	received_handoff_find(data, len, "-", "24.0.95.46", &handoff);
	assert_handoff(&handoff, "24.0.95.71", "mx6-w.mail.home.com", "mx6-w.mail.home.com");
	free(data);

	/* Provider slashnull.org again: the list server's reverse name is
	 * trusted without a provider prefix too. */
	assert_int_equal(test_corpus_read("spam-2", "00001.", &data, &len), 0);
	received_handoff_find(data, len, "dogma.slashnull.org", "", &handoff);
	assert_handoff(&handoff, "194.125.145.45", "lugh.tuatha.org", "lugh.tuatha.org");
	received_handoff_find(data, len, "dogma.slashnull.org", "tuatha.org", &handoff);
	assert_handoff(&handoff, "64.0.57.142", "bettyjagessar.com",
		       "w142.z064000057.nyc-ny.dsl.cnc.net");
	free(data);
}

#define GMX_INTERNAL                                                                               \
	"Received: from mxgmx017.server.lan ([10.76.0.17]) by mail.gmx.net (mrgmx004)\r\n"         \
	"\twith LMTP; Tue, 1 Dec 2026 10:00:01 +0100\r\n"

static void test_provider_chains(void **state)
{
	struct filter_handoff h;

	(void)state;
	/* GMX from outside: an internal hop, then the sender at its MX. */
	h = handoff_of(GMX_INTERNAL "Received: from mail.sender.example ([198.51.100.7]) by "
				    "mx-ha.gmx.net\r\n (mxgmx017 [212.227.15.9]) with ESMTPS "
				    "(Nemesis) id 1N; Tue, 1 Dec 2026\r\n"
				    "Subject: x\r\n\r\nbody\r\n",
		       "pop.gmx.net", "");
	assert_handoff(&h, "198.51.100.7", "mail.sender.example", "");
	/* web.de's relay delivering to GMX: gmx.de or web.de are not gmx.net. */
	h = handoff_of(GMX_INTERNAL "Received: from mout.web.de ([212.227.15.3]) by mx-ha.gmx.net "
				    "(mxgmx017 [212.227.15.9]) with ESMTPS\r\n"
				    "Received: from [192.168.178.20] ([84.1.2.3]) by web.de "
				    "(mrweb105 [213.165.67.124]) with ESMTPSA (Nemesis)\r\n\r\n",
		       "pop.gmx.net", "");
	assert_handoff(&h, "212.227.15.3", "mout.web.de", "");
	/* Fetched from web.de, with its relays' network trusted: the hand-off
	 * is the client that submitted it. */
	h = handoff_of("Received: from mout.web.de ([212.227.15.3]) by mx.web.de with ESMTPS\r\n"
		       "Received: from [192.168.178.20] ([84.1.2.3]) by web.de (mrweb105 "
		       "[213.165.67.124]) with ESMTPSA (Nemesis)\r\n\r\n",
		       "pop3.web.de", "pop3.web.de:212.227.0.0/16");
	assert_handoff(&h, "84.1.2.3", "[192.168.178.20]", "");
	/* A reverse name under the provider's registrable domain is its own;
	 * one under gmx.de is not, for pop.gmx.net. */
	h = handoff_of("Received: from a (mout.gmx.net [212.227.17.20]) by b\r\n"
		       "Received: from c (mx.gmx.de [212.227.17.21]) by d\r\n",
		       "POP.GMX.NET", "");
	assert_handoff(&h, "212.227.17.21", "c", "mx.gmx.de");
	/* A HELO name is never trusted, nor a Sendmail reverse name it could
	 * not confirm. */
	h = handoff_of("Received: from mout.gmx.net ([198.51.100.80]) by mx.gmx.net\r\n"
		       "Received: from mout.gmx.net (mout.gmx.net [198.51.100.81] (may be "
		       "forged)) by mx.gmx.net\r\n",
		       "pop.gmx.net", "");
	assert_handoff(&h, "198.51.100.80", "mout.gmx.net", "");
	/* Postfix's line for a HELO made to look like qmail's: the first word
	 * is the HELO, never the reverse name. */
	h = handoff_of(
	    "Received: from gmx.net (HELO x) (unknown [198.51.100.70]) by mx.gmx.net\r\n",
	    "pop.gmx.net", "");
	assert_handoff(&h, "198.51.100.70", "x", "");
}

static void test_internal_and_forged(void **state)
{
	struct filter_handoff h;

	(void)state;
	/* Loopback, private, link-local, shared, IPv6 ULA: internal. */
	h = handoff_of(
	    "Received: from localhost (localhost [127.0.0.1]) by a\r\n"
	    "Received: from b (b [IPv6:::1]) by c\r\n"
	    "Received: from d (d [172.20.1.1]) by e\r\n"
	    "Received: from f (f [IPv6:fd12:3456::1]) by g\r\n"
	    "Received: from h (h [IPv6:fe80::1]) by i\r\n"
	    "Received: from j (j [169.254.0.9]) by k\r\n"
	    "Received: from l (l [100.64.3.3]) by m\r\n"
	    "Received: (qmail 1 invoked by uid 0); today\r\n"
	    "Received: from n (n [192.168.0.1]) by o\r\n"
	    "Received: from sender.example (sender.example [IPv6:2001:db8:1::7]) by p\r\n"
	    "Received: from q (q [10.1.1.1]) by r\r\n",
	    "-", NULL);
	assert_handoff(&h, "2001:db8:1::7", "sender.example", "sender.example");
	/* Everything below the hand-off was written by the sender: a forged
	 * hop claiming the provider's internal network changes nothing. */
	h = handoff_of(
	    "Received: from bad.example (bad.example [203.0.113.66]) by mx.provider.example\r\n"
	    "Received: from mx.provider.example (mx.provider.example [10.0.0.5]) by x\r\n"
	    "Received: from innocent.example (innocent.example [198.51.100.1]) by y\r\n",
	    "pop.provider.example", "");
	assert_handoff(&h, "203.0.113.66", "bad.example", "bad.example");
	/* Every hop internal: mail from inside the provider, no hand-off. */
	h = handoff_of(
	    "Received: from a (a [10.0.0.1]) by b\r\nReceived: from c (c [10.0.0.2]) by d\r\n", "-",
	    "");
	assert_false(h.found);
	/* A client without an address cannot be judged, nor the hops below. */
	h = handoff_of("Received: from a.example by b.example with SMTP\r\n"
		       "Received: from c (c [198.51.100.3]) by d\r\n",
		       "-", "");
	assert_false(h.found);
	/* No Received field; one only in the body. */
	h = handoff_of("Subject: hi\r\n\r\nReceived: from c (c [198.51.100.3]) by d\r\n", "-", "");
	assert_false(h.found);
	h = handoff_of("", "-", "");
	assert_false(h.found);
	/* LF line ends, folded, "Received :" (obsolete syntax), any case. */
	h = handoff_of("X-Other: 1\n\tReceived: from fake (fake [198.51.100.99])\n"
		       "RECEIVED : from z\n (z [198.51.100.4])\n by d\nSubject: x\n",
		       "-", "");
	assert_handoff(&h, "198.51.100.4", "z", "z");
}

static void test_trusted_relays(void **state)
{
	static const char chain[] =
	    "Received: from r1 (mx.example-relays.com [198.51.100.10]) by mx.example.net\r\n"
	    "Received: from r2 (r2.other.example [203.0.113.77]) by mx.example-relays.com\r\n"
	    "Received: from s (s.sender.example [192.0.2.55]) by r2.other.example\r\n";
	static const char relays[] =
	    "pop.example.net:203.0.113.0/24, pop.example.net:mx.example-relays.com";
	struct filter_handoff h;
	char err[256];

	(void)state;
	h = handoff_of(chain, "pop.example.net", relays);
	assert_handoff(&h, "192.0.2.55", "s", "s.sender.example");
	/* Case does not matter in the provider; another provider gets none. */
	h = handoff_of(chain, "POP.Example.NET", relays);
	assert_handoff(&h, "192.0.2.55", "s", "s.sender.example");
	h = handoff_of(chain, "pop.example.org", relays);
	assert_handoff(&h, "198.51.100.10", "r1", "mx.example-relays.com");
	h = handoff_of(chain, "-", relays);
	assert_handoff(&h, "198.51.100.10", "r1", "mx.example-relays.com");
	/* Without a prefix an entry holds for every provider; a domain holds
	 * for the hosts below it, not for names that merely end like it. */
	h = handoff_of(chain, "-", "example-relays.com 203.0.113.77");
	assert_handoff(&h, "192.0.2.55", "s", "s.sender.example");
	h = handoff_of(chain, "-", "ample-relays.com");
	assert_handoff(&h, "198.51.100.10", "r1", "mx.example-relays.com");
	/* An IPv6 network with and without a provider. */
	h = handoff_of("Received: from a (a [IPv6:2001:db8:5::1]) by b\r\n"
		       "Received: from c (c [IPv6:2001:db9::1]) by d\r\n",
		       "pop.example.net", "pop.example.net:2001:db8::/32");
	assert_handoff(&h, "2001:db9::1", "c", "c");
	h = handoff_of("Received: from a (a [IPv6:2001:db8:5::1]) by b\r\n", "-", "2001:db8::/32");
	assert_false(h.found);

	/* The syntax. */
	static const char *const good[] = {
	    "",
	    "203.0.113.0/24",
	    "pop.example.net:203.0.113.0/24 pop.example.net:mx.example-relays.com",
	    "2001:db8::/32,pop.example.net:2001:db8::/32",
	    "relays.example.com.",
	    "198.51.100.7",
	    "127.0.0.1:10.0.0.0/8",
	};
	static const char *const bad[] = {
	    "203.0.113.0/33", "203.0.113.5/24", ":203.0.113.0/24",	 "pop.example.net:",
	    "a:b c:",	      "x..y",		"pop.example.net:-_(",	 "1.2.3.4.5",
	    "po/p:1.2.3.4",   "a:b:c",		"p.example:10.0.0.0/8x",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (received_relays_check(good[i], err, sizeof(err)) != 0)
			fail_msg("'%s' refused: %s", good[i], err);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (received_relays_check(bad[i], err, sizeof(err)) != -1)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(err, "trusted_relays"));
	}
	/* More than 64 items. */
	char *many = xstrdup("");
	for (int i = 0; i < 65; i++) {
		char *next = xasprintf("%s 10.0.%d.0/24", many, i);

		free(many);
		many = next;
	}
	assert_int_equal(received_relays_check(many, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 64"));
	free(many);
}

/* The configuration refuses a bad trusted_relays, as it does a bad port. */
static void test_config_key(void **state)
{
	struct popgate_config cfg;
	const struct config_key *key = NULL;
	char msg[256];

	(void)state;
	config_defaults(&cfg);
	for (size_t i = 0; i < config_key_count; i++) {
		if (strcmp(config_keys[i].section, "spam") == 0 &&
		    strcmp(config_keys[i].name, "trusted_relays") == 0)
			key = &config_keys[i];
	}
	assert_non_null(key);
	assert_string_equal(cfg.trusted_relays, "");
	assert_int_equal(
	    config_key_set(key, &cfg, "pop.example.net:203.0.113.0/24", msg, sizeof(msg)), 0);
	assert_string_equal(cfg.trusted_relays, "pop.example.net:203.0.113.0/24");
	assert_int_equal(
	    config_key_set(key, &cfg, "pop.example.net:203.0.113.0/99", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "203.0.113.0/99"));
	char *text = config_section_text(&cfg, "spam");
	assert_non_null(strstr(text, "trusted_relays pop.example.net:203.0.113.0/24\n"));
	free(text);
	config_free(&cfg);
}

static void test_garbage_and_limits(void **state)
{
	static const char *const garbage[] = {
	    "Received:",
	    "Received: from",
	    "Received: from (((((((((((",
	    "Received: from a (b [1.2.3.4",
	    "Received: from [[[[]]]] ([IPv6:]) by",
	    "Received: from ;;;; by ;;;",
	    "Received:\r\n\r\n",
	    "Received: from a (b [1.2.3.4]:) by c",
	    "Received: from a (b [1.2.3.4]:99x) by c",
	    "Received: from a (@@@ [IPv6:1.2.3.4]) by c",
	};
	struct filter_handoff h;
	char *big;
	size_t used;

	(void)state;
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		h = handoff_of(garbage[i], "pop.example.net", "");
		if (h.found)
			fail_msg("%s: hand-off %s", garbage[i], h.address);
	}
	/* A quoted pair in a comment (RFC 5322 3.2.2) does not end it. */
	h = handoff_of("Received: from a (\\) [198.51.100.1]) by b", "-", "");
	assert_handoff(&h, "198.51.100.1", "a", "");
	/* NUL bytes and 8-bit bytes inside a field. */
	static const char nul[] = "Received: from a\0b (c\x80 [198.51.100.5]) by d\r\n";
	received_handoff_find(nul, sizeof(nul) - 1, "-", "", &h);
	assert_handoff(&h, "198.51.100.5", "a", "");
	/* The block is never read past LEN: the address is cut off. */
	received_handoff_find(nul, 28, "-", "", &h);
	assert_false(h.found);

	/* An overlong field: a HELO of 1000 characters is cut, and an address
	 * beyond RECEIVED_FIELD_LEN is never read. */
	big = xmalloc(200000);
	used = (size_t)sprintf(big, "Received: from ");
	memset(big + used, 'h', 1000);
	used += 1000;
	used += (size_t)sprintf(big + used, " (r.example [198.51.100.6]) by x\r\n");
	big[used] = '\0';
	h = handoff_of(big, "-", "");
	assert_true(h.found);
	assert_string_equal(h.address, "198.51.100.6");
	assert_int_equal(strlen(h.helo), sizeof(h.helo) - 1);
	used = (size_t)sprintf(big, "Received: from helo");
	for (int i = 0; i < 5000; i++)
		used += (size_t)sprintf(big + used, "\r\n (xxxxxxxxxxxxxxxxxxxxxxxxxxxxx)");
	used += (size_t)sprintf(big + used, "\r\n (r.example [198.51.100.6]) by x\r\n\r\n");
	h = handoff_of(big, "-", "");
	assert_false(h.found);

	/* 100 Received fields: the first 64 are read, no more. */
	used = 0;
	for (int i = 0; i < 63; i++)
		used += (size_t)sprintf(big + used, "Received: from i%d (i [10.0.0.%d]) by x\r\n",
					i, i + 1);
	used += (size_t)sprintf(big + used, "Received: from s (s [198.51.100.64]) by x\r\n");
	for (int i = 64; i < 100; i++)
		used +=
		    (size_t)sprintf(big + used, "Received: from f (f [198.51.100.%d]) by x\r\n", i);
	h = handoff_of(big, "-", "");
	assert_handoff(&h, "198.51.100.64", "s", "s");
	used = 0;
	for (int i = 0; i < 100; i++)
		used += (size_t)sprintf(big + used, "Received: from i (i [10.0.1.%d]) by x\r\n",
					i < 64 ? i + 1 : 200);
	used += (size_t)sprintf(big + used, "Received: from s (s [198.51.100.64]) by x\r\n");
	h = handoff_of(big, "-", "");
	assert_false(h.found);

	/* The reader stops after RECEIVED_FIELD_MAX fields. */
	struct received_reader reader;
	struct received_hop hop;
	size_t count = 0;

	received_reader_init(&reader, big, used);
	while (received_reader_next(&reader, &hop) == 1)
		count++;
	assert_int_equal(count, RECEIVED_FIELD_MAX);
	free(big);
}

/* The trace filter names the hand-off in its reason, within 200
 * characters, and says nothing when there is none. */
static void test_trace_reason(void **state)
{
	struct filter_profile profile = {0};
	struct pipeline_job job = {.profile = &profile};
	struct filter_message message = {.job = &job, .hostname = "gw.example"};
	struct pipeline_result result = {.name = "trace"};
	struct pipeline_verdict verdict = {0};

	(void)state;
	snprintf(job.account, sizeof(job.account), "alice");
	snprintf(job.provider_host, sizeof(job.provider_host), "pop.example.net");
	assert_int_equal(filter_trace.run(&message, &result, &verdict), 0);
	assert_null(result.reason);
	free(result.headers);

	memset(&result, 0, sizeof(result));
	message.handoff = handoff_of("Received: from helo.example (rdns.example [198.51.100.7]) by "
				     "mx.example.net\r\n",
				     job.provider_host, "");
	assert_int_equal(filter_trace.run(&message, &result, &verdict), 0);
	assert_string_equal(result.reason,
			    "hand-off 198.51.100.7 (helo helo.example, reverse rdns.example)");
	free(result.reason);
	free(result.headers);

	memset(&result, 0, sizeof(result));
	message.handoff = (struct filter_handoff){.found = true};
	snprintf(message.handoff.address, sizeof(message.handoff.address),
		 "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
	memset(message.handoff.helo, 'h', sizeof(message.handoff.helo) - 1);
	memset(message.handoff.reverse, 'r', sizeof(message.handoff.reverse) - 1);
	assert_int_equal(filter_trace.run(&message, &result, &verdict), 0);
	assert_true(strlen(result.reason) <= 200);
	free(result.reason);
	free(result.headers);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hop_shapes),	       cmocka_unit_test(test_corpus_chains),
	    cmocka_unit_test(test_provider_chains),    cmocka_unit_test(test_internal_and_forged),
	    cmocka_unit_test(test_trusted_relays),     cmocka_unit_test(test_config_key),
	    cmocka_unit_test(test_garbage_and_limits), cmocka_unit_test(test_trace_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
