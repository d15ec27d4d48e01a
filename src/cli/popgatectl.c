/*
 * popgatectl.c — the administrator's command line: its main, the command
 * table with each command's help, and the usage texts. The commands live in
 * ctl_*.c (see cli/ctl.h).
 *
 *   popgatectl --config FILE [--json] COMMAND ...
 *
 * It opens the same store as the daemon, beside it (SQLite WAL and a busy
 * timeout make that safe). Exit status: 0 ok, 1 refused or not found (with a
 * message on stderr), 2 usage error.
 *
 * Each change is recorded as an "admin_change" event in popgate's log (and
 * console logins as theirs), beside the daemon's events.
 *
 * Must never: load the credential key (except the dkim commands: ctl_dkim.c),
 * or print a password, a password hash, a sealed secret or a message body.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ctl.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "store/db.h"

static const struct ctl_command ctl_commands[] = {
    {"user", "list", "", "list the users",
     "Shows each user's origin (provider or local), seat (yes or waiting), and\n"
     "its numbers of addresses, accounts and messages.\n",
     ctl_user_list},
    {"user", "show", "NAME", "show one user",
     "Shows the user's origin, seat or waiting time, creation time, addresses,\n"
     "provider accounts, number of messages and filter profile. Exits 1 if there\n"
     "is no such user.\n",
     ctl_user_show},
    {"user", "add", "NAME", "create a local user",
     "Creates the local user NAME with the primary address NAME@<pseudo_domain>\n"
     "and no password (see 'user passwd'); it gets a seat if one is free, else\n"
     "it waits for one.\n",
     ctl_user_add},
    {"user", "del", "NAME", "delete a user and its addresses",
     "Refused (exit 1) for an unknown user and for one that still has provider\n"
     "accounts or messages.\n",
     ctl_user_del},
    {"user", "passwd", "NAME", "set a local user's password from standard input",
     "Reads one line from standard input as the new password (echo is not\n"
     "turned off; pipe it in) and stores its argon2id hash. Refused for an\n"
     "unknown user and for a provider-created one.\n",
     ctl_user_passwd},
    {"user", "set", "NAME profile P", "give a user a filter profile",
     "The user's mail is judged by profile P from its next message on ('default':\n"
     "the default profile, which serves every user without one of its own).\n"
     "Refused (exit 1) for an unknown user or profile.\n",
     ctl_user_set},
    {"address", "list", "[--user U]", "list the assigned addresses",
     "  --user U  only user U's addresses (exits 1 if there is no user U)\n"
     "Shows each address, its user and whether it is the user's primary one.\n",
     ctl_address_list},
    {"address", "add", "ADDRESS USER", "assign ADDRESS to USER",
     "Refused (exit 1) for an invalid address, one already assigned and an\n"
     "unknown user.\n",
     ctl_address_add},
    {"address", "del", "ADDRESS", "take ADDRESS away from its user",
     "Refused (exit 1) for an unknown address and for a user's primary one.\n", ctl_address_del},
    {"seat", "status", "", "show the seat limit and the waiting users",
     "Shows the limit (0 = unlimited), the seats used and free, and the users\n"
     "waiting for a seat, oldest first.\n",
     ctl_seat_status},
    {"seat", "set", "N", "set the seat limit (0 = unlimited)",
     "Then gives seats to waiting users, oldest first, while seats are free.\n"
     "Refused (exit 1) for a limit below the seats in use.\n",
     ctl_seat_set},
    {"account", "list", "", "list the provider accounts",
     "Shows each account's user, provider host, last fetch, last error and its\n"
     "messages per queue (processing, delivery, delivered, suspect).\n",
     ctl_account_list},
    {"account", "show", "NAME", "show one account (LOGIN@HOST)",
     "Shows the account's provider host, login, user, last fetch time, last\n"
     "error, fetch failures, next retry and its messages per queue.\n"
     "Exits 1 if there is no such account.\n",
     ctl_account_show},
    {"account", "del", "NAME [--force]", "delete an account, its mail and UIDLs",
     "Deletes the account, its messages (records and bodies) and the provider\n"
     "UIDLs recorded for it; its user too, with the user's addresses, when a\n"
     "provider login made the user, it has no other account and no other mail\n"
     "names it. Mail at the provider stays there.\n"
     "  --force  also delete messages not yet picked up (processing, delivery);\n"
     "           without it such messages make the command refuse (exit 1).\n"
     "A fetch of the account running in popgate stops at its next message. A\n"
     "later login makes the account anew. Exits 1 if there is no such account.\n",
     ctl_account_del},
    {"queue", "list", "[--state S] [--user U]", "list messages, oldest first",
     "  --state S  only messages in queue S: processing, delivery, delivered, suspect,\n"
     "             quarantine, challenged, outbound, sent, bounced\n"
     "  --user U   only user U's messages (exits 1 if there is no user U): those\n"
     "             addressed to one of U's addresses, and those U's account fetched\n"
     "             that no local user's address names (U4)\n"
     "Shows each message's id, account, fetching user, state, size and received\n"
     "time (with --json also its owner, the user of its sender address).\n",
     ctl_queue_list},
    {"queue", "show", "ID", "show one message's record (not its body)",
     "Shows the message's account, user, state, size, worker attempts, times,\n"
     "provider UIDL, SHA-256, the header lines popgate prepends, its owner (the\n"
     "user of its sender address, U5), the users its recipient addresses\n"
     "belong to (U4), and its verdict: the action, the score and each filter's\n"
     "result (score x weight = points) and reason.\n"
     "Exits 1 if there is no such message.\n",
     ctl_queue_show},
    {"queue", "release", "ID [--user U]", "release a suspect, challenged or quarantined message",
     "  --user U  act as user U: only U's messages (see 'queue list --user')\n"
     "A suspect message goes back to processing; the running daemon is told\n"
     "and filters it again at once. A challenged one (held for its sender's\n"
     "answer, CISS) goes to delivery. A quarantined message goes to delivery: the\n"
     "next pickup serves it, and it is recorded as ham for the spam classifier\n"
     "to learn (as 'report ham' does), and the Bayes database learns it at\n"
     "once (see 'bayes learn'). Exits 1 if there is no such message, it\n"
     "is neither suspect nor quarantined, or it is not U's.\n",
     ctl_queue_release},
    {"queue", "delete", "ID [--user U]", "delete a message and its body",
     "  --user U  act as user U: only U's messages; a message that other users'\n"
     "            addresses also name is only taken off U's list\n"
     "Deletes the message's record and spool file. Refused (exit 1) for a\n"
     "message in processing (the daemon owns it), an unknown id, and one that\n"
     "is not U's.\n",
     ctl_queue_delete},
    {"queue", "outbound", "[ID]", "list outbound mail with each recipient's delivery",
     "Shows each message waiting for the relay (or only ID), its envelope\n"
     "sender, and per recipient its status (pending, sent, failed), attempts,\n"
     "next attempt and the remote server's last reply. 'popgatectl queue' alone\n"
     "shows the same.\n",
     ctl_queue_outbound},
    {"queue", "retry", "ID", "make an outbound message's pending recipients due now",
     "The running daemon is told and tries them at once. Exits 1 if ID is not\n"
     "in outbound.\n",
     ctl_queue_retry},
    {"queue", "bounce", "ID", "give up on an outbound message's pending recipients",
     "Its pending recipients fail (recipients already sent stay sent); the\n"
     "running daemon is told, moves the message to bounced and sends its sender\n"
     "a DSN (RFC 3464), unless the sender is <>. Exits 1 if ID is not in\n"
     "outbound.\n",
     ctl_queue_bounce},
    {"queue", "flush", "", "make every pending outbound recipient due now",
     "The running daemon is told and tries them at once.\n", ctl_queue_flush},
    {"transport", "add",
     "(--domain P | --sender P) HOST[:PORT] [--tls MODE] [--auth USER] [--position N]",
     "send matching outbound mail through relay HOST",
     "  --domain P    recipients of domain P: example.com, *.example.com (its\n"
     "                subdomains, not example.com itself) or * (everyone)\n"
     "  --sender P    envelope senders P: an address, @domain or *@*.domain\n"
     "  HOST[:PORT]   the relay host (port 25 if left out; [v6]:PORT); it may be\n"
     "                in a private range\n"
     "  --tls MODE    none, opportunistic (default), required or verified\n"
     "  --auth USER   log in as USER; the password is read from standard input\n"
     "                (echo off on a terminal) and stored encrypted\n"
     "  --position N  where the rule goes (rules from N move one down); last if\n"
     "                left out\n"
     "Rules are tried in position order; the first that matches wins. Without\n"
     "one, mail goes to the recipient domain's MX.\n",
     ctl_transport_add},
    {"transport", "del", "ID", "delete a transport rule", "Exits 1 if there is no such rule.\n",
     ctl_transport_del},
    {"transport", "list", "", "list the transport rules in the order they are tried",
     "Shows each rule's id, position, match, pattern, host, port, TLS mode and\n"
     "AUTH user (never its password).\n",
     ctl_transport_list},
    {"auth", "check", "NAME", "check a user's console login, password on standard input",
     "Logs in to the user console as NAME with the password read from standard\n"
     "input, as the web console does (U6): NAME is the user name ('+' for '@'),\n"
     "or the full POP3 account name with '@' or '+'. A local password ('user\n"
     "passwd') is checked first; a provider-created user's password against its\n"
     "stored hash, then live at the provider. Failures count towards the login\n"
     "throttle like POP3 logins. Exits 0 when accepted, 1 when not (rejected,\n"
     "throttled, or the provider could not be asked).\n",
     ctl_auth_check},
    {"admin", "passwd", "", "set the administrator's password from standard input",
     "Reads one line from standard input (pipe it in) and stores its argon2id\n"
     "hash; the web console's administrator logs in with it.\n",
     ctl_admin_passwd},
    {"admin", "check", "", "check the administrator's password on standard input",
     "Exits 0 when it is the one 'admin passwd' set, 1 when not or when none is\n"
     "set. Failures count towards the login throttle.\n",
     ctl_admin_check},
    /* network (ctl_network.c) */
    {"network", "list", "", "list the Local Networks (clients that may relay)",
     "Shows each Local Network's name, network (CIDR) and creation time. SMTP\n"
     "clients inside one may send to any recipient without authentication;\n"
     "clients outside all of them only to local addresses (SPEC S1, S2). A new\n"
     "store holds loopback (127.0.0.0/8) and loopback6 (::1/128). A row the\n"
     "daemon ignores (written by hand, not valid) is marked in NOTE (with\n"
     "--json: \"valid\": false).\n",
     ctl_network_list},
    {"network", "add", "NAME CIDR", "add a Local Network whose clients may relay",
     "NAME: 1 to 64 characters of A-Z a-z 0-9 . _ - (unique, compared without\n"
     "case). CIDR: an IPv4 or IPv6 network, 192.168.1.0/24 or 2001:db8::/48; a\n"
     "single address means that host (/32, /128). Stored and printed in\n"
     "canonical form. Refused (exit 1) for an invalid name or network (host bits\n"
     "set, prefix out of range, leading zeros, IPv4-mapped IPv6), a network wider\n"
     "than /8 (IPv4) or /7 (IPv6), whose clients would all relay, a name in use\n"
     "and a network already there. The running popgate uses it at once.\n",
     ctl_network_add},
    {"network", "del", "NAME", "delete a Local Network",
     "Its clients may no longer relay without authentication, from their next\n"
     "recipient on. Exits 1 if there is no network NAME.\n",
     ctl_network_del},
    /* domain, ciss (ctl_ciss.c) */
    {"domain", "list", "", "list the Local Domains",
     "Shows the mail domains popgate serves: first the pseudo-domain ([server]\n"
     "pseudo_domain), a Local Domain by itself (built in, not deletable), then\n"
     "those added, with the time each was added; NOTE says which ones CISS\n"
     "applies to ('ciss set domains').\n",
     ctl_domain_list},
    {"domain", "add", "DOMAIN", "add a Local Domain",
     "DOMAIN: a domain name (stored in lower case). Refused for an invalid\n"
     "name, the pseudo-domain and a domain already there.\n",
     ctl_domain_add},
    {"domain", "del", "DOMAIN", "delete a Local Domain",
     "Refused for the pseudo-domain, a domain that is not a Local Domain, and\n"
     "one CISS applies to (take it out with 'ciss set domains' first).\n",
     ctl_domain_del},
    {"ciss", "show", "", "show the challenge-response (CISS) settings", NULL, ctl_ciss_show},
    {"ciss", "set", "SETTING VALUE...", "change a challenge-response (CISS) setting",
     "  domains D...        the Local Domains CISS applies to (none: CISS is\n"
     "                      off); a user's mail is challenged only when one of\n"
     "                      its addresses is in one and its filter profile has\n"
     "                      'challenge yes'\n"
     "  period DAYS         one sender is not challenged twice within (7)\n"
     "  cap-hour N          challenges per hour, all users (100)\n"
     "  cap-user-hour N     challenges per hour for one user (20)\n"
     "  hold-days N         days a held message waits for an answer (14)\n"
     "  hold-expiry quarantine|delete  what becomes of it then (quarantine)\n"
     "  link-days N         days a challenge's link is valid (7)\n"
     "The running popgate uses a change from the next message on.\n",
     ctl_ciss_set},
    {"ciss", "trust", "USER ADDRESS", "let ADDRESS's mail reach USER unchallenged",
     "Records ADDRESS as trusted by USER (known by 'admin'), as an answered\n"
     "challenge does (known by 'answer'), and moves USER's messages held for\n"
     "ADDRESS's answer to delivery.\n",
     ctl_ciss_trust},
    {"ciss", "untrust", "USER ADDRESS", "challenge ADDRESS's mail to USER again",
     "Exits 1 if USER does not trust ADDRESS. A correspondent (learnt from mail\n"
     "USER sent) stays known.\n",
     ctl_ciss_untrust},
    {"ciss", "list", "[USER]", "list the senders each user knows",
     "The trusted senders (by an answer or the administrator) and the\n"
     "correspondents (recipients of mail the user sent through the relay) of\n"
     "USER, or of every user. Allow-listed senders: 'sender list'.\n",
     ctl_ciss_list},
    {"ciss", "pending", "[USER]", "list the messages held for a challenge's answer",
     "Each held (challenged) message with its user, its sender, when it was\n"
     "held and the latest challenge to that sender. 'queue show ID' prints\n"
     "its verdict; 'queue release ID' delivers it without an answer.\n",
     ctl_ciss_pending},
    {"config", "show", "", "print the effective configuration",
     "Prints every key as INI that popgate reads back (with --json: an object\n"
     "of sections of keys). The configuration holds no secret.\n",
     ctl_config_show},
    /* dkim (ctl_dkim.c) */
    {"dkim", "keygen", "DOMAIN [--selector S] [--algorithm A] [--replace]",
     "make a DKIM key for DOMAIN and print its DNS record",
     "Makes a key pair with OpenSSL, stores the private key sealed with the\n"
     "credential key, and prints the TXT record to publish at\n"
     "S._domainkey.DOMAIN. Outbound mail whose From: address is in DOMAIN is then\n"
     "signed with it (relaxed/relaxed).\n"
     "  --selector S   the selector (default popgateYYYYMM, the current month)\n"
     "  --algorithm A  rsa (default: RSA-2048, rsa-sha256, verified by every\n"
     "                 receiver) or ed25519 (ed25519-sha256, RFC 8463, which not\n"
     "                 every receiver verifies yet)\n"
     "  --replace      replace DOMAIN's key; without it a domain with a key is\n"
     "                 refused (exit 1). Publish the new record before mail goes out.\n",
     ctl_dkim_keygen},
    {"dkim", "list", "", "list the domains with a DKIM key",
     "Shows each domain, its selector, algorithm and creation time (never a\n"
     "private key).\n",
     ctl_dkim_list},
    {"dkim", "show", "DOMAIN", "show a domain's DKIM key and its DNS record",
     "Prints the selector, algorithm, creation time and the TXT record to\n"
     "publish. Exits 1 if DOMAIN has no key.\n",
     ctl_dkim_show},
    {"dkim", "del", "DOMAIN", "delete a domain's DKIM key",
     "Mail from DOMAIN goes out unsigned from then on. Exits 1 if DOMAIN has no\n"
     "key.\n",
     ctl_dkim_del},
    {"dkim", "sign", "FILE", "print the DKIM-Signature a message file would get",
     "Signs the message in FILE as the relay would, with the key of its From:\n"
     "domain, and prints the DKIM-Signature header field (put it in front of\n"
     "the message to check it with a verifier). Changes nothing. Exits 1 if the\n"
     "message has no From: address or its domain no key.\n",
     ctl_dkim_sign},
    {"report", "spam", "ID [--user U]", "report a message as spam",
     "  --user U  act as user U: only U's messages\n"
     "Records that the message is spam (a spam_report row) and the Bayes\n"
     "database learns it at once; a message reported as ham before is forgotten\n"
     "as ham first. It moves nothing. Exits 1 if there is no such message\n"
     "or it is not U's.\n",
     ctl_report},
    {"report", "ham", "ID [--user U]", "report a message as not spam",
     "  --user U  act as user U: only U's messages\n"
     "Records that the message is ham and the Bayes database learns it (as\n"
     "'report spam' does for spam). It\n"
     "moves nothing (release a quarantined one with 'queue release').\n",
     ctl_report},
    /* profile (ctl_profile.c) */
    {"profile", "list", "", "list the filter profiles",
     "Shows each profile's thresholds, the number of users that have it and the\n"
     "filters it runs (with their weight when it is not 1).\n",
     ctl_profile_list},
    {"profile", "show", "NAME", "show one filter profile",
     "Shows its thresholds, subject prefix, hold and challenge flags, users, and\n"
     "every filter it names, on or off, with its weight, in running order.\n",
     ctl_profile_show},
    {"profile", "add", "NAME", "create a filter profile (a copy of default)",
     "NAME: 1 to 64 of A-Z a-z 0-9 . _ - (compared without case). Refused for a\n"
     "name in use.\n",
     ctl_profile_add},
    {"profile", "set", "NAME KEY VALUE [KEY VALUE...]", "change a filter profile",
     "  tag_at N          score at which mail is tagged (-1000 to 1000)\n"
     "  quarantine_at N   score at which mail is quarantined (not below tag_at)\n"
     "  hold yes|no       hold all mail for the administrator\n"
     "  challenge yes|no  challenge senders the user does not know\n"
     "  FILTER on|off     run filter FILTER or not (trace and address stay on)\n"
     "  FILTER.weight N   its score counts N times (0 to 100)\n"
     "All pairs are checked first; one refused changes nothing. Users of the\n"
     "profile get the change from their next message on.\n",
     ctl_profile_set},
    {"profile", "del", "NAME", "delete a filter profile",
     "Refused (exit 1) for default and for a profile users still have.\n", ctl_profile_del},
    /* sender lists (ctl_profile.c) */
    {"sender", "add", "allow|block PATTERN [--user U]", "put a sender on an allow or block list",
     "  --user U  user U's own list (without it, the global one)\n"
     "PATTERN: an address (joe@example.com), a domain (example.com or\n"
     "@example.com) or a pattern with * (*.example.com, *@*.example.net,\n"
     "news-*@example.org), matched without case against the message's From\n"
     "address. The senders filter scores a blocked sender +100 and an allowed one\n"
     "-100 (times its weight). A user's own entries come before the global ones;\n"
     "then an address before a domain before a pattern; at the same rank block\n"
     "before allow.\n",
     ctl_sender_add},
    {"sender", "del", "PATTERN [--user U]", "take a sender off the lists",
     "Exits 1 if PATTERN is not on the global (or U's) lists.\n", ctl_sender_del},
    {"sender", "list", "[--user U]", "list the sender allow and block lists",
     "Shows each entry's owner ((global) or a user), list, pattern and when it was\n"
     "added; with --user only U's.\n",
     ctl_sender_list},
    /* filter (ctl_filter.c) */
    {"filter", "check", "[--profile P] [--user U] [--provider HOST] FILE|-",
     "explain the verdict on one message (fetched from HOST)",
     "Runs the filter chain on the message in FILE (- for standard input) here,\n"
     "offline, as a worker and the daemon would, and prints the action, the score\n"
     "and each filter's result and reason. Changes nothing.\n"
     "  --user U     judge it as mail of user U (U's profile and sender lists)\n"
     "  --profile P  with profile P (default: U's, or default)\n"
     "For a profile that challenges, U's unknown senders show as 'challenge', or\n"
     "as 'quarantine' with the G4 reason in the ciss line (an open challenge, the\n"
     "period and the caps only the daemon counts).\n",
     ctl_filter_check},
    {"filter", "list", "", "list the filters there are",
     "Prints each filter's name and where it runs: in a worker, or in the daemon\n"
     "(the sender lists). A profile may turn any of them on.\n",
     ctl_filter_list},
    {"filter", "bench", "[--profile P] [--user U] [--repeat N] PATH...",
     "measure the filter chain's speed",
     "Judges every message file of the PATHs (files, folders, maildirs) N times\n"
     "(default 1) in this process with the workers' own code (pipeline_judge,\n"
     "after every filter's init and the Bayes database as a worker gets them)\n"
     "and the daemon's (the sender lists, the verdict), and prints messages/s\n"
     "and messages/s per core (per CPU second), with the actions counted. As\n"
     "in 'filter check', DNS questions go to the configured name servers and a\n"
     "profile that runs clamav has each message scanned by clamd first.\n"
     "Changes nothing.\n",
     ctl_filter_bench},
    {"filter", "rules", "[PATH...]", "list the content rules in force",
     "Lists the rules and word lists of the rules filter: the default set\n"
     "compiled into popgate, with [spam] rules_file over it, each with its score\n"
     "(a list's: its cap), target, pattern, where it comes from and what it means.\n"
     "Exits 1 if the rules file is refused (the line is named; the default set\n"
     "is listed). With PATHs (message files, mboxes, maildirs or folders), also\n"
     "shows how many of those messages each rule hits.\n",
     ctl_filter_rules},
    /* mta-sts (ctl_mta_sts.c) */
    {"mta-sts", "list", "", "list the MTA-STS policies the relay has cached",
     "Shows each recipient domain's MTA-STS policy (RFC 8461) as last fetched:\n"
     "its mode, MX patterns, id, and until when it holds.\n",
     ctl_mta_sts_list},
    /* bayes (ctl_bayes.c) */
    {"bayes", "train", "--spam|--ham [--database FILE] PATH...",
     "train the Bayes filter on messages",
     "Counts the tokens of every message in the PATHs as spam (--spam) or ham\n"
     "(--ham). A PATH is a message file, an mbox, a maildir or a folder of\n"
     "message files. The database is <data_dir>/bayes.db (or --database FILE),\n"
     "rewritten whole; workers read it when they start. Shows a progress bar\n"
     "on a terminal.\n",
     ctl_bayes_train},
    {"bayes", "score", "[--database FILE] PATH...", "show the Bayes filter's view of messages",
     "Prints, for every message in the PATHs, its spam probability, the verdict\n"
     "(spam at and above the built-in cutoff), its path and the tokens that\n"
     "weighed most. Changes nothing. Exits 1 if there is no database.\n",
     ctl_bayes_score},
    {"bayes", "learn", "", "learn the spam reports not learnt yet",
     "Teaches <data_dir>/bayes.db every spam report not learnt yet: releases\n"
     "from quarantine (ham) and 'report spam|ham'. Those commands learn at once;\n"
     "this is for reports whose learning failed (the database could not be\n"
     "written). A report of the other class than an earlier one of the same\n"
     "message forgets the earlier one first; a message whose body is gone is\n"
     "marked as not learnable. The running daemon's workers take the new\n"
     "database.\n",
     ctl_bayes_learn},
    /* depot: import, retention, holds, expiry (ctl_depot_import.c) */
    {"depot", "import", "[--user USER] [--direction in|out|import] [--batch N] PATH...",
     "archive existing mail (mbox, maildir, message files)",
     "Archives every message of the PATHs: a PATH is a message file, an mbox\n"
     "(mboxo or mboxrd; its From_ lines and >From quoting are taken off), a\n"
     "maildir (cur/ and new/) or a folder of message files. A message that\n"
     "does not parse is archived all the same, with empty fields.\n"
     "  --user USER   the messages belong to USER: through USER's addresses among\n"
     "                their sender and recipients, or USER's primary address\n"
     "                (without it: every assigned address among them, any user's)\n"
     "  --direction   how the archive files them (default import)\n"
     "  --batch N     messages archived per transaction (default 1000)\n"
     "Resumable: run it again after an interruption and it goes on where it\n"
     "stopped; an input finished before is not read again, and no message is\n"
     "archived twice. Shows a progress bar on a terminal; prints 'imported N,\n"
     "already archived M, failed K' (K: inputs that could not be read; then\n"
     "it exits 1).\n",
     ctl_depot_import},
    {"depot", "retention", "set (--domain D | --user U | --default) DAYS | list",
     "set or list how long archived mail is kept",
     "  set  keep archived mail of domain D, user U or by default DAYS days\n"
     "  list show each scope (domain:D, user:U, default) and its days\n"
     "A message's retention is the longest of its owners' (an owner's: the\n"
     "longer of its user's and its address domain's, else the default, which\n"
     "is [depot] retention_days unless --default set one). Each change is\n"
     "recorded in the archive's chain.\n",
     ctl_depot_retention},
    {"depot", "hold",
     "add (--domain D | --user U | --message SEQ | --all) [--reason TEXT] | del (...) | list",
     "put archived mail under legal hold, lift a hold, list them",
     "  add   mail under hold is never expired: that of an owner address in\n"
     "        domain D, of owner user U, the archived message SEQ, or all of it\n"
     "  del   lift the hold of that scope (exits 1 if there is none)\n"
     "  list  show each hold's scope, since when and its reason\n"
     "Each change is recorded in the archive's chain.\n",
     ctl_depot_hold},
    {"depot", "expire", "[--dry-run] [--now DATE]", "remove archived mail past its retention",
     "Removes every archived message whose retention (see 'depot retention')\n"
     "has passed and no hold covers: its index rows, its full-text entry and,\n"
     "when no kept message shares it, its stored bytes. The chain records one\n"
     "'expire' entry listing the messages, the audit log a 'delete'.\n"
     "  --dry-run  only say what would be removed\n"
     "  --now DATE judge as of DATE (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, UTC)\n",
     ctl_depot_expire},
    /* depot (ctl_depot.c): MailDepot, the archive in <data_dir>/depot */
    {"depot", "verify", "[--checkpoints FILE]", "check that nothing in the archive was changed",
     "Walks the archive's hash chain from its first entry: each entry's hash,\n"
     "each archived message's index record, each message's bytes against its\n"
     "SHA-256, the signed checkpoints, and the audit log's own chain. With\n"
     "--checkpoints FILE also every checkpoint in FILE (from 'depot checkpoint\n"
     "--export'), which finds a chain rewritten since. Exits 0 when intact, 1\n"
     "with the first broken entry and what is wrong with it.\n",
     ctl_depot_verify},
    {"depot", "checkpoint", "[--export FILE]", "sign the archive's chain head",
     "Signs the hash of the chain's newest entry with the depot's Ed25519 key\n"
     "(<data_dir>/depot/signing.key, made on first use) and stores it. With\n"
     "--export FILE (- for standard output) then writes every checkpoint as\n"
     "lines 'seq hash at signature pubkey', to keep somewhere else: 'depot\n"
     "verify --checkpoints FILE' checks the archive against them.\n",
     ctl_depot_checkpoint},
    {"depot", "stats", "", "show the archive's size, dedup and compression",
     "Messages (and expired ones), chain entries, distinct blobs, bytes of the\n"
     "mail as received (bytes_raw), of the distinct messages (bytes_unique) and\n"
     "as stored (bytes_stored, with each record's header), the pack files,\n"
     "the newest zstd dictionary in use, audit entries and checkpoints.\n"
     "dedup_ratio = bytes_raw / bytes_unique; compression_ratio = bytes_unique /\n"
     "bytes_stored.\n",
     ctl_depot_stats},
    /* depot search and access (ctl_depot_search.c) */
    {"depot", "search",
     "[--sender S] [--recipient R] [--subject WORDS] [--text TERMS] [--since DATE] "
     "[--until DATE] [--owner USER] [--attachment NAME] [--direction in|out|import] "
     "[--user USER] [--limit N] [--before SEQ]",
     "search the archive, newest first",
     "Every option given must hold:\n"
     "  --sender S        the sender's address\n"
     "  --recipient R     one of the recipients' addresses (To, Cc, Bcc,\n"
     "                    Delivered-To)\n"
     "  --subject WORDS   every word occurs in the subject\n"
     "  --text TERMS      every word occurs in the subject, headers, text parts or\n"
     "                    attachment text; a word ending in * is a prefix\n"
     "                    (invoic*); other punctuation separates words\n"
     "  --since DATE      Date header on or after DATE (YYYY-MM-DD, UTC, or unix\n"
     "                    seconds)\n"
     "  --until DATE      Date header on or before DATE (that whole day)\n"
     "  --owner USER      archived as mail of USER\n"
     "  --attachment NAME an attachment's name holds NAME (without case), or\n"
     "                    matches it whole when it has * ? [ (a glob)\n"
     "  --direction D     in (fetched), out (sent through the relay), import\n"
     "  --user USER       search as USER: only the mail of the addresses\n"
     "                    assigned to USER now (audited as user:USER)\n"
     "  --limit N         at most N messages (default 50, at most 1000)\n"
     "  --before SEQ      only messages before SEQ (the next page: the last SEQ\n"
     "                    shown)\n"
     "Shows each message's SEQ, Date, direction, sender, subject and size (with\n"
     "--json also its recipients, owners, attachments, SHA-256 and source).\n"
     "Expired messages are not found. Every search is recorded in the\n"
     "archive's audit log.\n",
     ctl_depot_search},
    {"depot", "show", "SEQ [--user USER]", "show an archived message's index fields and entry",
     "Shows the message's index fields (sender, recipients, subject, Date, size,\n"
     "owners, attachments, SHA-256) and its hash chain entry; never its body.\n"
     "  --user USER  only if it is mail of USER's addresses\n"
     "Exits 1 if there is no such message (or it is not USER's).\n",
     ctl_depot_show},
    {"depot", "export", "[--user USER] (--eml DIR | --mbox FILE) (SEQ... | SEARCH OPTIONS)",
     "export archived messages as .eml files or an mbox",
     "Writes the messages SEQ..., or every message the search options of\n"
     "'depot search' find (all pages; only N with --limit N), byte for byte\n"
     "as archived (each checked against its SHA-256):\n"
     "  --eml DIR    one file DIR/SEQ.eml each (DIR is created if missing)\n"
     "  --mbox FILE  one mboxrd file (From_ lines, >From quoting)\n"
     "  --user USER  only mail of USER's addresses\n"
     "Never overwrites a file. Refused (exit 1) for a message that does not\n"
     "exist (or is not USER's) before anything is written. Recorded in the\n"
     "archive's audit log.\n",
     ctl_depot_export},
    {"depot", "restore", "SEQ --user USER", "put an archived message into USER's Delivery Queue",
     "Copies the archived message (checked against its SHA-256) into the\n"
     "Delivery Queue of USER's provider account: USER's next POP3 pickup gets\n"
     "it. Refused (exit 1) for a message that is not mail of USER's addresses\n"
     "and for a user without a provider account. Recorded in the archive's\n"
     "audit log.\n",
     ctl_depot_restore},
};

#define CTL_COMMAND_COUNT (sizeof(ctl_commands) / sizeof(ctl_commands[0]))

/* ---- usage ------------------------------------------------------------- */

static void ctl_usage(FILE *out)
{
	fprintf(out, "usage: popgatectl --config FILE [--json] COMMAND [ARGS...]\n"
		     "       popgatectl [COMMAND] --help\n\n"
		     "options:\n"
		     "  --config FILE  popgate's configuration (the store is its data_dir)\n"
		     "  --json         print JSON instead of tables\n"
		     "  --help         print this, or a command's usage\n\n"
		     "commands:\n");
	for (size_t i = 0; i < CTL_COMMAND_COUNT; i++) {
		const struct ctl_command *c = &ctl_commands[i];
		char *head =
		    xasprintf("%s %s%s%s", c->group, c->name, *c->args ? " " : "", c->args);

		fprintf(out, "  %-36s %s\n", head, c->summary);
		free(head);
	}
	fprintf(out, "\nexit status: 0 ok, 1 refused or not found, 2 usage error\n");
}

/* The usage of every command of GROUP. */
static void ctl_group_usage(const char *group, FILE *out)
{
	for (size_t i = 0; i < CTL_COMMAND_COUNT; i++)
		if (strcmp(ctl_commands[i].group, group) == 0)
			ctl_command_usage(&ctl_commands[i], out, false);
}

static bool ctl_group_known(const char *group)
{
	for (size_t i = 0; i < CTL_COMMAND_COUNT; i++)
		if (strcmp(ctl_commands[i].group, group) == 0)
			return true;
	return false;
}

static const struct ctl_command *ctl_command_find(const char *group, const char *name)
{
	for (size_t i = 0; i < CTL_COMMAND_COUNT; i++)
		if (strcmp(ctl_commands[i].group, group) == 0 &&
		    strcmp(ctl_commands[i].name, name) == 0)
			return &ctl_commands[i];
	return NULL;
}
/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl ctl = {0};
	const struct ctl_command *cmd;
	const char *config_path = NULL;
	bool help = false;
	char err[512], buf[256];
	enum log_level copy_level;
	int opt, rc, rest_argc = 0;
	char **rest = NULL;

	opterr = 0;
	/* "+": options end at the command, whose own options it parses. */
	while ((opt = getopt_long(argc, argv, "+", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'j':
			ctl.json = true;
			break;
		case 'h':
			help = true;
			break;
		default:
			return ctl_usage_error(NULL, "unknown option or missing value: '%s'",
					       ctl_clean(argv[optind - 1], buf, sizeof(buf)));
		}
	}
	if (optind >= argc) {
		if (help) {
			ctl_usage(stdout);
			return CTL_OK;
		}
		ctl_usage(stderr);
		return CTL_USAGE;
	}
	if (!ctl_group_known(argv[optind]))
		return ctl_usage_error(NULL, "unknown command '%s'",
				       ctl_clean(argv[optind], buf, sizeof(buf)));
	/* `popgatectl queue` alone: the relay's queue, as `queue outbound`. */
	if (optind + 1 >= argc && !help && strcmp(argv[optind], "queue") == 0) {
		cmd = ctl_command_find("queue", "outbound");
	} else if (optind + 1 >= argc || strcmp(argv[optind + 1], "--help") == 0) {
		if (help || optind + 1 < argc) {
			ctl_group_usage(argv[optind], stdout);
			return CTL_OK;
		}
		fprintf(stderr, "popgatectl: '%s' needs a subcommand\n", argv[optind]);
		ctl_group_usage(argv[optind], stderr);
		return CTL_USAGE;
	} else {
		cmd = ctl_command_find(argv[optind], argv[optind + 1]);
	}
	if (cmd == NULL) {
		fprintf(stderr, "popgatectl: unknown command '%s %s'\n", argv[optind],
			ctl_clean(argv[optind + 1], buf, sizeof(buf)));
		ctl_group_usage(argv[optind], stderr);
		return CTL_USAGE;
	}
	/* The command's arguments, with --json and --help (allowed anywhere)
	 * taken out. */
	rest = xcalloc((size_t)argc, sizeof(*rest));
	for (int i = optind + 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			ctl.json = true;
		else if (strcmp(argv[i], "--help") == 0)
			help = true;
		else
			rest[rest_argc++] = argv[i];
	}
	if (help) {
		ctl_command_usage(cmd, stdout, true);
		rc = CTL_OK;
		goto done;
	}
	if (config_path == NULL) {
		rc = ctl_usage_error(cmd, "--config FILE is required");
		goto done;
	}

	log_set_role("ctl");
	/* Store errors go to stderr, beside the command's own message. */
	if (log_open(NULL, LOG_WARN) < 0) {
		rc = ctl_refuse("cannot open the log: %s", strerror(errno));
		goto done;
	}
	if (config_load(&ctl.cfg, config_path, err, sizeof(err)) < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	/* Changes and console logins are also recorded in popgate's own log,
	 * when it exists and is writable for whoever runs this. */
	if (log_level_parse(ctl.cfg.log_level, &copy_level) == 0)
		log_copy_open(ctl.cfg.log_file, copy_level);
	ctl.cmd = cmd;
	rc = cmd->run(&ctl, cmd, rest_argc, rest);
done:
	store_close(&ctl.store);
	config_free(&ctl.cfg);
	free(rest);
	log_close();
	return rc;
}
