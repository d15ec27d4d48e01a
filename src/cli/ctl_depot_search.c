/*
 * ctl_depot_search.c — popgatectl's ways into the archive (MailDepot, issue
 * 11 point 4): search it, show one message's index fields and chain entry,
 * export messages as .eml files or an mboxrd file, and restore one into a
 * user's Delivery Queue.
 *
 * With --user USER a command acts for that user: it sees only the messages
 * owned through the addresses assigned to USER now (read from the store), a
 * message of anyone else is "no message N" as a missing one is, and the
 * archive's audit log names "user:USER"; without it the actor is "admin".
 *
 * Owns: the depot commands' option parsing and output, the export files.
 * Must never: print a message body (exports go to files only), overwrite a
 * file, or hand a user a message that is not theirs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/util.h"
#include "depot/depot.h"
#include "depot/search.h"
#include "store/account.h"
#include "store/message.h"
#include "store/spool.h"
#include "store/user.h"

/* Messages a query export reads per search page. */
#define CTL_DEPOT_EXPORT_PAGE 500

/* What a depot command works with. */
struct ctl_depot {
	struct depot_query query;
	const char *user;		 /* --user, or NULL */
	bool criteria;			 /* a search option was given */
	struct store_address *addresses; /* USER's, from the store */
	size_t address_count;
	const char **address_list;
	char *actor; /* "admin" or "user:USER" */
	struct depot *depot;
};

static void ctl_depot_clear(struct ctl_depot *d)
{
	depot_close(&d->depot);
	store_address_list_free(&d->addresses, d->address_count);
	free(d->address_list);
	free(d->actor);
	memset(d, 0, sizeof(*d));
}

/* ---- options ------------------------------------------------------------ */

/* A positive decimal number into *VALUE_R; false if VALUE is not one. */
static bool ctl_depot_number(const char *value, int64_t *value_r)
{
	char *end;
	long long n;

	if (*value < '0' || *value > '9')
		return false;
	errno = 0;
	n = strtoll(value, &end, 10);
	if (errno != 0 || *end != '\0' || n <= 0)
		return false;
	*value_r = n;
	return true;
}

/* DATE (YYYY-MM-DD, UTC, or unix seconds) into *T_R; END_OF_DAY takes a
 * day's last second (for --until). false if it is neither. */
static bool ctl_depot_date(const char *date, bool end_of_day, int64_t *t_r)
{
	struct tm tm = {0};
	const char *end;

	if (strchr(date, '-') == NULL)
		return ctl_depot_number(date, t_r);
	struct tm back;
	time_t t;

	end = strptime(date, "%Y-%m-%d", &tm);
	if (end == NULL || *end != '\0' || strlen(date) != 10)
		return false;
	/* strptime takes 2026-02-31; timegm would make it March 3 (in TM
	 * itself, so the day asked for is compared from a copy). */
	back = tm;
	t = timegm(&tm);
	if (tm.tm_mday != back.tm_mday || tm.tm_mon != back.tm_mon)
		return false;
	*t_r = (int64_t)t + (end_of_day ? 86399 : 0);
	return *t_r > 0;
}

/*
 * ARGV[*I] if it is a search option (moved past its value, into D->query):
 * CTL_OK with *TAKEN_R set; CTL_OK with *TAKEN_R false for another
 * argument; or a usage error.
 */
static int ctl_depot_criterion(const struct ctl_command *cmd, int argc, char **argv, int *i,
			       struct ctl_depot *d, bool *taken_r)
{
	static const char *const text_options[] = {"--sender", "--recipient", "--subject",
						   "--text",   "--owner",     "--attachment"};
	const char **text_fields[] = {&d->query.sender, &d->query.recipient, &d->query.subject,
				      &d->query.text,	&d->query.owner,     &d->query.attachment};
	bool missing = false;
	const char *value;
	char buf[256];
	int64_t n;

	*taken_r = true;
	for (size_t k = 0; k < sizeof(text_options) / sizeof(text_options[0]); k++) {
		if ((value = ctl_option(text_options[k], argc, argv, i, &missing)) != NULL) {
			if (*value == '\0')
				return ctl_usage_error(cmd, "%s needs a value", text_options[k]);
			*text_fields[k] = value;
			d->criteria = true;
			return CTL_OK;
		}
		if (missing)
			return ctl_usage_error(cmd, "%s needs a value", text_options[k]);
	}
	if ((value = ctl_option("--since", argc, argv, i, &missing)) != NULL) {
		if (!ctl_depot_date(value, false, &d->query.since))
			return ctl_usage_error(cmd, "bad date '%s' (YYYY-MM-DD or unix seconds)",
					       ctl_clean(value, buf, sizeof(buf)));
		d->criteria = true;
		return CTL_OK;
	}
	if (!missing && (value = ctl_option("--until", argc, argv, i, &missing)) != NULL) {
		if (!ctl_depot_date(value, true, &d->query.until))
			return ctl_usage_error(cmd, "bad date '%s' (YYYY-MM-DD or unix seconds)",
					       ctl_clean(value, buf, sizeof(buf)));
		d->criteria = true;
		return CTL_OK;
	}
	if (!missing && (value = ctl_option("--direction", argc, argv, i, &missing)) != NULL) {
		d->query.direction = depot_direction_parse(value);
		if (d->query.direction < 0)
			return ctl_usage_error(cmd, "unknown direction '%s' (in, out, import)",
					       ctl_clean(value, buf, sizeof(buf)));
		d->criteria = true;
		return CTL_OK;
	}
	if (!missing && (value = ctl_option("--limit", argc, argv, i, &missing)) != NULL) {
		if (!ctl_depot_number(value, &n) || n > DEPOT_SEARCH_LIMIT_MAX)
			return ctl_usage_error(cmd, "--limit takes 1 to %d",
					       DEPOT_SEARCH_LIMIT_MAX);
		d->query.limit = (int)n;
		return CTL_OK;
	}
	if (!missing && (value = ctl_option("--before", argc, argv, i, &missing)) != NULL) {
		if (!ctl_depot_number(value, &d->query.before))
			return ctl_usage_error(cmd, "--before takes a seq number");
		return CTL_OK;
	}
	if (missing)
		return ctl_usage_error(cmd, "%s needs a value", argv[*i]);
	*taken_r = false;
	return CTL_OK;
}

/* ARGV[*I] if it is --user U: CTL_OK with *TAKEN_R set, or a usage error. */
static int ctl_depot_user_option(const struct ctl_command *cmd, int argc, char **argv, int *i,
				 struct ctl_depot *d, bool *taken_r)
{
	bool missing = false;
	const char *value = ctl_option("--user", argc, argv, i, &missing);

	*taken_r = value != NULL;
	if (missing)
		return ctl_usage_error(cmd, "--user needs a value");
	if (value != NULL)
		d->user = value;
	return CTL_OK;
}

/*
 * Opens what D needs after its arguments were checked: with --user the
 * store, for the user's addresses (a user search is restricted to them);
 * the depot <data_dir>/depot, which must exist.
 */
static int ctl_depot_open(struct ctl *ctl, struct ctl_depot *d)
{
	char err[512], buf[256];
	char *path;
	int rc;

	if (d->user != NULL) {
		if ((rc = ctl_open_store(ctl)) != CTL_OK)
			return rc;
		if (store_address_list(ctl->store, d->user, &d->addresses, &d->address_count, err,
				       sizeof(err)) < 0)
			return ctl_refuse("%s", err);
		d->address_list = xcalloc(d->address_count + 1, sizeof(*d->address_list));
		for (size_t i = 0; i < d->address_count; i++)
			d->address_list[i] = d->addresses[i].address;
		d->query.restricted = true;
		d->query.addresses = d->address_list;
		d->query.address_count = d->address_count;
		d->actor = xasprintf("user:%s", ctl_clean(d->user, buf, sizeof(buf)));
	} else {
		d->actor = xstrdup("admin");
	}
	path = xasprintf("%s/depot", ctl->cfg.data_dir);
	if (access(path, F_OK) < 0) {
		rc = ctl_refuse("no archive at %s (is [depot] enabled?)", path);
		free(path);
		return rc;
	}
	d->depot = depot_open(path, false, err, sizeof(err));
	free(path);
	if (d->depot == NULL)
		return ctl_refuse("cannot open the archive: %s", err);
	return CTL_OK;
}

/* SEQ as an operand: a seq number, or a usage error. */
static int ctl_depot_seq(const struct ctl_command *cmd, const char *arg, int64_t *seq_r)
{
	char buf[256];

	if (!ctl_depot_number(arg, seq_r))
		return ctl_usage_error(cmd, "'%s' is not a message number",
				       ctl_clean(arg, buf, sizeof(buf)));
	return CTL_OK;
}

/* ---- output ------------------------------------------------------------- */

static json_t *ctl_depot_strings_json(char *const *list, size_t count)
{
	json_t *array = json_array();

	for (size_t i = 0; i < count; i++)
		json_array_append_new(array, cli_json_string(list[i]));
	return array;
}

static json_t *ctl_depot_hit_json(const struct depot_hit *hit)
{
	json_t *owners = json_array();

	for (size_t i = 0; i < hit->owner_count; i++)
		json_array_append_new(owners,
				      json_pack("{s:o, s:o}", "address",
						cli_json_string(hit->owners[i].address), "user",
						cli_json_string(hit->owners[i].user)));
	return json_pack("{s:I, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o}", "seq",
			 (json_int_t)hit->seq, "sha256", hit->sha256, "direction",
			 depot_direction_name(hit->direction), "source",
			 cli_json_string(hit->source), "sender", cli_json_string(hit->sender),
			 "recipients",
			 ctl_depot_strings_json(hit->recipients, hit->recipient_count), "subject",
			 cli_json_string(hit->subject), "date", cli_json_time(hit->date), "size",
			 (json_int_t)hit->size, "message_id", cli_json_string(hit->message_id),
			 "archived", cli_json_time(hit->archived), "owners", owners, "attachments",
			 ctl_depot_strings_json(hit->attachments, hit->attachment_count));
}

/* "a, b, c" of LIST (allocated), or NULL (printed "-") for none. */
static char *ctl_depot_join(char *const *list, size_t count)
{
	char *joined;

	if (count == 0)
		return NULL;
	joined = xstrdup("");

	for (size_t i = 0; i < count; i++) {
		char *next = xasprintf("%s%s%s", joined, i > 0 ? ", " : "", list[i]);

		free(joined);
		joined = next;
	}
	return joined;
}

/* ---- search ------------------------------------------------------------- */

int ctl_depot_search(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"SEQ",	"DATE",	   "DIRECTION",
					      "SENDER", "SUBJECT", "SIZE"};
	struct ctl_depot d = {.query.direction = -1};
	struct depot_hit *hits = NULL;
	size_t count = 0;
	char err[512], buf[256];
	int rc;

	for (int i = 0; i < argc; i++) {
		bool taken;

		if ((rc = ctl_depot_criterion(cmd, argc, argv, &i, &d, &taken)) != CTL_OK)
			return rc;
		if (taken)
			continue;
		if ((rc = ctl_depot_user_option(cmd, argc, argv, &i, &d, &taken)) != CTL_OK)
			return rc;
		if (!taken)
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
	}
	if ((rc = ctl_depot_open(ctl, &d)) != CTL_OK)
		goto done;
	if (depot_search(d.depot, &d.query, d.actor, &hits, &count, err, sizeof(err)) < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++)
			json_array_append_new(array, ctl_depot_hit_json(&hits[i]));
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(6, headers);

		for (size_t i = 0; i < count; i++) {
			char seq[24], size[24], date[CLI_TIME_LEN];

			snprintf(seq, sizeof(seq), "%lld", (long long)hits[i].seq);
			snprintf(size, sizeof(size), "%lld", (long long)hits[i].size);
			cli_format_time(hits[i].date, date);
			cli_table_add(table, (const char *const[]){
						 seq, date, depot_direction_name(hits[i].direction),
						 hits[i].sender, hits[i].subject, size});
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	depot_hits_free(&hits, count);
done:
	ctl_depot_clear(&d);
	return rc;
}

/* ---- show --------------------------------------------------------------- */

int ctl_depot_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ctl_depot d = {.query.direction = -1};
	struct depot_entry_info entry;
	struct depot_hit hit;
	const char *operand = NULL;
	char err[512], buf[256];
	int64_t seq = 0;
	int rc, found;

	for (int i = 0; i < argc; i++) {
		bool taken;

		if ((rc = ctl_depot_user_option(cmd, argc, argv, &i, &d, &taken)) != CTL_OK)
			return rc;
		if (taken)
			continue;
		if (operand != NULL || argv[i][0] == '-')
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
		operand = argv[i];
	}
	if (operand == NULL)
		return ctl_usage_error(cmd, "'depot show' takes one message number");
	if ((rc = ctl_depot_seq(cmd, operand, &seq)) != CTL_OK)
		return rc;
	if ((rc = ctl_depot_open(ctl, &d)) != CTL_OK)
		goto done;
	found = depot_search_get(d.depot, seq, &d.query, d.actor, &hit, &entry, err, sizeof(err));
	if (found < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	if (found == 0) {
		rc = ctl_refuse("no message %lld", (long long)seq);
		goto done;
	}
	if (ctl->json) {
		json_t *json = ctl_depot_hit_json(&hit);

		json_object_set_new(json, "entry",
				    json_pack("{s:s, s:o, s:s, s:s}", "kind", entry.kind, "at",
					      cli_json_time(entry.at), "hash", entry.hash, "record",
					      entry.record));
		rc = ctl_printed(cli_json_print(json, stdout));
	} else {
		struct cli_table *table = cli_table_new(2, NULL);
		char number[24], size[24], date[CLI_TIME_LEN], archived[CLI_TIME_LEN],
		    at[CLI_TIME_LEN];
		char *recipients = ctl_depot_join(hit.recipients, hit.recipient_count);
		char *attachments = ctl_depot_join(hit.attachments, hit.attachment_count);

		snprintf(number, sizeof(number), "%lld", (long long)hit.seq);
		snprintf(size, sizeof(size), "%lld", (long long)hit.size);
		cli_format_time(hit.date, date);
		cli_format_time(hit.archived, archived);
		cli_format_time(entry.at, at);
		cli_table_add(table, (const char *const[]){"seq", number});
		cli_table_add(table, (const char *const[]){"sha256", hit.sha256});
		cli_table_add(
		    table, (const char *const[]){"direction", depot_direction_name(hit.direction)});
		cli_table_add(table, (const char *const[]){"source", hit.source});
		cli_table_add(table, (const char *const[]){"sender", hit.sender});
		cli_table_add(table, (const char *const[]){"recipients", recipients});
		cli_table_add(table, (const char *const[]){"subject", hit.subject});
		cli_table_add(table, (const char *const[]){"date", date});
		cli_table_add(table, (const char *const[]){"size", size});
		cli_table_add(table, (const char *const[]){"message-id", hit.message_id});
		cli_table_add(table, (const char *const[]){"archived", archived});
		if (hit.owner_count == 0)
			cli_table_add(table, (const char *const[]){"owners", NULL});
		for (size_t i = 0; i < hit.owner_count; i++) {
			char *owner =
			    xasprintf("%s <%s>",
				      hit.owners[i].user != NULL && *hit.owners[i].user != '\0'
					  ? hit.owners[i].user
					  : "-",
				      hit.owners[i].address);

			cli_table_add(table, (const char *const[]){i == 0 ? "owners" : "", owner});
			free(owner);
		}
		cli_table_add(table, (const char *const[]){"attachments", attachments});
		cli_table_add(table, (const char *const[]){"entry", entry.kind});
		cli_table_add(table, (const char *const[]){"entry at", at});
		cli_table_add(table, (const char *const[]){"entry hash", entry.hash});
		cli_table_add(table, (const char *const[]){"record", entry.record});
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
		free(recipients);
		free(attachments);
	}
	depot_hit_clear(&hit);
done:
	ctl_depot_clear(&d);
	return rc;
}

/* ---- export ------------------------------------------------------------- */

/* Where an export writes. */
struct ctl_depot_export {
	const char *eml_dir;
	const char *mbox_path;
	int mbox_fd;
	int64_t *seqs;
	size_t seq_count;
};

static int ctl_depot_write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Appends RAW to the mboxrd file: a From_ line (the sender, or
 * MAILER-DAEMON, and the Date), each line starting with zero or more '>'
 * and "From " given one '>' more (so a reader takes one away and gets the
 * bytes back), a final newline if the message lacks one, and an empty line.
 */
static int ctl_depot_mbox_append(int fd, const struct depot_hit *hit, const char *raw, size_t len)
{
	const char *sender = hit->sender;
	char line[512], when[64];
	time_t t = (time_t)(hit->date != 0 ? hit->date : hit->archived);
	struct tm tm;
	size_t at = 0;

	if (sender == NULL || *sender == '\0' || strpbrk(sender, " \t\r\n") != NULL ||
	    strlen(sender) > 320)
		sender = "MAILER-DAEMON";
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", &tm);
	snprintf(line, sizeof(line), "From %s %s\n", sender, when);
	if (ctl_depot_write_all(fd, line, strlen(line)) < 0)
		return -1;
	while (at < len) {
		const char *nl = memchr(raw + at, '\n', len - at);
		size_t line_len = nl != NULL ? (size_t)(nl - (raw + at)) + 1 : len - at;
		size_t quotes = 0;

		while (quotes < line_len && raw[at + quotes] == '>')
			quotes++;
		if (line_len - quotes >= 5 && memcmp(raw + at + quotes, "From ", 5) == 0 &&
		    ctl_depot_write_all(fd, ">", 1) < 0)
			return -1;
		if (ctl_depot_write_all(fd, raw + at, line_len) < 0)
			return -1;
		at += line_len;
	}
	if (len > 0 && raw[len - 1] != '\n' && ctl_depot_write_all(fd, "\n", 1) < 0)
		return -1;
	return ctl_depot_write_all(fd, "\n", 1);
}

/* Writes RAW to DIR/<seq>.eml, a new file. CTL_OK or the refusal. */
static int ctl_depot_eml_write(const char *dir, int64_t seq, const char *raw, size_t len)
{
	char *path = xasprintf("%s/%lld.eml", dir, (long long)seq);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = CTL_OK;

	if (fd < 0) {
		rc = ctl_refuse("cannot create %s: %s", path, strerror(errno));
	} else if (ctl_depot_write_all(fd, raw, len) < 0 || fsync(fd) < 0) {
		rc = ctl_refuse("cannot write %s: %s", path, strerror(errno));
		unlink(path);
	}
	if (fd >= 0 && close(fd) < 0 && rc == CTL_OK) {
		rc = ctl_refuse("cannot write %s: %s", path, strerror(errno));
		unlink(path);
	}
	free(path);
	return rc;
}

/* Reads message SEQ (checked against its SHA-256 by depot_read, audited as
 * "read") and writes it where E says. */
static int ctl_depot_export_one(struct ctl_depot *d, struct ctl_depot_export *e, int64_t seq)
{
	struct depot_hit hit;
	char err[512], *raw = NULL;
	size_t len = 0;
	int found, rc = CTL_OK;

	found = depot_search_owns(d->depot, seq, &d->query, err, sizeof(err));
	if (found == 1)
		found = depot_read(d->depot, seq, d->actor, &raw, &len, err, sizeof(err));
	if (found < 0)
		return ctl_refuse("%s", err);
	if (found == 0)
		return ctl_refuse("no message %lld", (long long)seq);
	if (e->eml_dir != NULL) {
		rc = ctl_depot_eml_write(e->eml_dir, seq, raw, len);
	} else {
		/* The From_ line needs the sender and date: the index has them. */
		found = depot_search_get(d->depot, seq, NULL, NULL, &hit, NULL, err, sizeof(err));
		if (found != 1)
			rc = ctl_refuse("%s", found < 0 ? err : "the message vanished");
		else if (ctl_depot_mbox_append(e->mbox_fd, &hit, raw, len) < 0)
			rc = ctl_refuse("cannot write %s: %s", e->mbox_path, strerror(errno));
		if (found == 1)
			depot_hit_clear(&hit);
	}
	free(raw);
	if (rc == CTL_OK) {
		e->seqs = xrealloc(e->seqs, (e->seq_count + 1) * sizeof(*e->seqs));
		e->seqs[e->seq_count++] = seq;
	}
	return rc;
}

/* Exports every message D's query finds, newest first, page by page (one
 * limited page if --limit was given). */
static int ctl_depot_export_query(struct ctl_depot *d, struct ctl_depot_export *e)
{
	bool one_page = d->query.limit > 0;
	char err[512];
	int rc = CTL_OK;

	if (!one_page)
		d->query.limit = CTL_DEPOT_EXPORT_PAGE;
	for (;;) {
		struct depot_hit *hits = NULL;
		size_t count = 0;

		if (depot_search(d->depot, &d->query, d->actor, &hits, &count, err, sizeof(err)) <
		    0)
			return ctl_refuse("%s", err);
		for (size_t i = 0; i < count && rc == CTL_OK; i++)
			rc = ctl_depot_export_one(d, e, hits[i].seq);
		if (count > 0)
			d->query.before = hits[count - 1].seq;
		depot_hits_free(&hits, count);
		if (rc != CTL_OK || one_page || count < (size_t)d->query.limit)
			return rc;
	}
}

/* The audit entry of an export: where to and which messages. */
static int ctl_depot_export_audit(struct ctl_depot *d, const struct ctl_depot_export *e)
{
	json_t *detail = json_object();
	json_t *seqs = json_array();
	char err[512], *text;
	int rc;

	for (size_t i = 0; i < e->seq_count; i++)
		json_array_append_new(seqs, json_integer(e->seqs[i]));
	json_object_set_new(detail, e->eml_dir != NULL ? "eml" : "mbox",
			    cli_json_string(e->eml_dir != NULL ? e->eml_dir : e->mbox_path));
	json_object_set_new(detail, "seqs", seqs);
	text = json_dumps(detail, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(detail);
	rc = depot_audit(d->depot, d->actor, "export", text, err, sizeof(err));
	free(text);
	return rc < 0 ? ctl_refuse("%s", err) : CTL_OK;
}

int ctl_depot_export(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ctl_depot d = {.query.direction = -1};
	struct ctl_depot_export e = {.mbox_fd = -1};
	int64_t *operands = xcalloc((size_t)argc + 1, sizeof(*operands));
	size_t operand_count = 0;
	char buf[256];
	int rc;

	for (int i = 0; i < argc; i++) {
		bool taken, missing = false;
		const char *value;

		if ((rc = ctl_depot_criterion(cmd, argc, argv, &i, &d, &taken)) != CTL_OK)
			goto done;
		if (taken)
			continue;
		if ((rc = ctl_depot_user_option(cmd, argc, argv, &i, &d, &taken)) != CTL_OK)
			goto done;
		if (taken)
			continue;
		if ((value = ctl_option("--eml", argc, argv, &i, &missing)) != NULL) {
			e.eml_dir = value;
		} else if (!missing &&
			   (value = ctl_option("--mbox", argc, argv, &i, &missing)) != NULL) {
			e.mbox_path = value;
		} else if (missing) {
			rc = ctl_usage_error(cmd, "%s needs a value", argv[i]);
			goto done;
		} else if (argv[i][0] != '-') {
			if ((rc = ctl_depot_seq(cmd, argv[i], &operands[operand_count])) != CTL_OK)
				goto done;
			operand_count++;
		} else {
			rc = ctl_usage_error(cmd, "unexpected argument '%s'",
					     ctl_clean(argv[i], buf, sizeof(buf)));
			goto done;
		}
	}
	if ((e.eml_dir == NULL) == (e.mbox_path == NULL)) {
		rc = ctl_usage_error(cmd, "give one of --eml DIR and --mbox FILE");
		goto done;
	}
	if ((operand_count > 0) == (d.criteria || d.query.limit > 0 || d.query.before > 0)) {
		rc = ctl_usage_error(cmd, operand_count > 0
					      ? "give message numbers or search options, not both"
					      : "give message numbers or search options");
		goto done;
	}
	if ((rc = ctl_depot_open(ctl, &d)) != CTL_OK)
		goto done;
	/* Named messages are checked first, so a wrong number writes nothing. */
	for (size_t i = 0; i < operand_count; i++) {
		char err[512];
		int found = depot_search_owns(d.depot, operands[i], &d.query, err, sizeof(err));

		if (found < 0) {
			rc = ctl_refuse("%s", err);
			goto done;
		}
		if (found == 0) {
			rc = ctl_refuse("no message %lld", (long long)operands[i]);
			goto done;
		}
	}
	if (e.eml_dir != NULL) {
		if (util_mkdir_p(e.eml_dir, 0700) < 0) {
			rc = ctl_refuse("cannot create %s: %s", e.eml_dir, strerror(errno));
			goto done;
		}
	} else {
		e.mbox_fd = open(e.mbox_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (e.mbox_fd < 0) {
			rc = ctl_refuse("cannot create %s: %s", e.mbox_path, strerror(errno));
			goto done;
		}
	}
	if (operand_count > 0) {
		rc = CTL_OK;
		for (size_t i = 0; i < operand_count && rc == CTL_OK; i++)
			rc = ctl_depot_export_one(&d, &e, operands[i]);
	} else {
		rc = ctl_depot_export_query(&d, &e);
	}
	if (rc == CTL_OK && e.mbox_fd >= 0 && fsync(e.mbox_fd) < 0)
		rc = ctl_refuse("cannot write %s: %s", e.mbox_path, strerror(errno));
	if (e.mbox_fd >= 0 && close(e.mbox_fd) < 0 && rc == CTL_OK)
		rc = ctl_refuse("cannot write %s: %s", e.mbox_path, strerror(errno));
	e.mbox_fd = -1;
	/* What was read is audited even when the export failed half-way. */
	if (e.seq_count > 0) {
		int audited = ctl_depot_export_audit(&d, &e);

		if (rc == CTL_OK)
			rc = audited;
	}
	if (rc != CTL_OK && e.mbox_path != NULL)
		unlink(e.mbox_path);
	if (rc == CTL_OK) {
		if (ctl->json) {
			json_t *seqs = json_array();

			for (size_t i = 0; i < e.seq_count; i++)
				json_array_append_new(seqs, json_integer(e.seqs[i]));
			rc = ctl_printed(
			    cli_json_print(json_pack("{s:I, s:o}", "exported",
						     (json_int_t)e.seq_count, "seqs", seqs),
					   stdout));
		} else {
			rc = ctl_printed(printf("%zu message(s) exported to %s\n", e.seq_count,
						e.eml_dir != NULL ? e.eml_dir : e.mbox_path) < 0
					     ? -1
					     : 0);
		}
	}
done:
	if (e.mbox_fd >= 0)
		close(e.mbox_fd);
	free(e.seqs);
	free(operands);
	ctl_depot_clear(&d);
	return rc;
}

/* ---- restore ------------------------------------------------------------ */

/*
 * Gives the body of ID, and its bucket folder, to the owner of the data
 * folder: popgatectl runs as root, popgate as its service user (which owns
 * the data folder once it started), whose pickup must read the body as it
 * reads its own. Nothing to do when not root. 0, or -1 with ERR.
 */
static int ctl_depot_give_body(const char *data_dir, const char *id, char *err, size_t errlen)
{
	char *path, *slash;
	struct stat st;
	int rc = 0;

	if (geteuid() != 0)
		return 0;
	if (stat(data_dir, &st) < 0) {
		snprintf(err, errlen, "cannot read %s: %s", data_dir, strerror(errno));
		return -1;
	}
	if (st.st_uid == 0)
		return 0;
	path = spool_path(data_dir, id);
	if (lchown(path, st.st_uid, st.st_gid) < 0)
		rc = -1;
	slash = strrchr(path, '/');
	*slash = '\0';
	if (rc == 0 && lchown(path, st.st_uid, st.st_gid) < 0)
		rc = -1;
	if (rc < 0)
		snprintf(err, errlen, "cannot give %s to the data folder's owner: %s", path,
			 strerror(errno));
	free(path);
	return rc;
}

/*
 * Puts RAW into the store as a new message of ACCOUNT_ID in delivery: the
 * body (line ends made CRLF, as every spool body is) is durable before its
 * row commits, and the row is inserted and moved to delivery in one
 * transaction, so the daemon never sees it in processing (it was filtered
 * when it first arrived). Its id into ID. 0, or -1 with ERR.
 */
static int ctl_depot_deliver(struct store *store, int64_t account_id, const char *raw, size_t len,
			     char id[SPOOL_ID_LEN + 1], char *err, size_t errlen)
{
	unsigned char digest[crypto_hash_sha256_BYTES];
	char sha256_hex[2 * crypto_hash_sha256_BYTES + 1];
	crypto_hash_sha256_state sha;
	struct spool_crlf crlf = {0};
	struct spool_writer *writer = spool_writer_new(store->data_dir);
	char *chunk = xmalloc(2 * 65536 + 1);
	int64_t size = 0;
	size_t n;

	if (writer == NULL) {
		snprintf(err, errlen, "cannot create a spool file: %s", strerror(errno));
		free(chunk);
		return -1;
	}
	crypto_hash_sha256_init(&sha);
	for (size_t at = 0; at < len; at += 65536) {
		n = spool_crlf_normalise(&crlf, raw + at, len - at < 65536 ? len - at : 65536,
					 chunk);
		spool_writer_write(writer, chunk, n);
		crypto_hash_sha256_update(&sha, (const unsigned char *)chunk, n);
		size += (int64_t)n;
	}
	n = spool_crlf_finish(&crlf, chunk);
	spool_writer_write(writer, chunk, n);
	crypto_hash_sha256_update(&sha, (const unsigned char *)chunk, n);
	size += (int64_t)n;
	free(chunk);
	crypto_hash_sha256_final(&sha, digest);
	sodium_bin2hex(sha256_hex, sizeof(sha256_hex), digest, sizeof(digest));
	snprintf(id, SPOOL_ID_LEN + 1, "%s", writer->id);
	if (spool_writer_commit(writer) < 0) {
		snprintf(err, errlen, "cannot write the spool file: %s", strerror(errno));
		spool_writer_free(&writer);
		return -1;
	}
	spool_writer_free(&writer);
	if (ctl_depot_give_body(store->data_dir, id, err, errlen) < 0) {
		spool_remove(store->data_dir, id);
		return -1;
	}
	if (store_begin(store) < 0 ||
	    store_message_insert(store, id, account_id, NULL, size, sha256_hex) < 0 ||
	    store_message_move(store, id, MESSAGE_PROCESSING, MESSAGE_DELIVERY, NULL) != 1 ||
	    store_commit(store) < 0) {
		store_rollback(store);
		/* No row: the body goes (else the next start would remove it). */
		spool_remove(store->data_dir, id);
		snprintf(err, errlen, "cannot record the message in the store");
		return -1;
	}
	return 0;
}

int ctl_depot_restore(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ctl_depot d = {.query.direction = -1};
	struct store_account account;
	const char *operand = NULL;
	char *account_name = NULL, *raw = NULL, *detail;
	char err[512], buf[256], id[SPOOL_ID_LEN + 1];
	size_t len = 0;
	int64_t seq = 0;
	int rc, found;

	memset(&account, 0, sizeof(account));
	for (int i = 0; i < argc; i++) {
		bool taken;

		if ((rc = ctl_depot_user_option(cmd, argc, argv, &i, &d, &taken)) != CTL_OK)
			return rc;
		if (taken)
			continue;
		if (operand != NULL || argv[i][0] == '-')
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
		operand = argv[i];
	}
	if (operand == NULL)
		return ctl_usage_error(cmd, "'depot restore' takes one message number");
	if (d.user == NULL)
		return ctl_usage_error(cmd, "--user USER is required: whose Delivery Queue");
	if ((rc = ctl_depot_seq(cmd, operand, &seq)) != CTL_OK)
		return rc;
	if ((rc = ctl_depot_open(ctl, &d)) != CTL_OK)
		goto done;
	/* The user's POP3 pickup serves the messages of its provider account. */
	found = store_user_exists(ctl->store, d.user, &account_name);
	if (found < 0) {
		rc = ctl_refuse("cannot read the users");
		goto done;
	}
	if (account_name == NULL) {
		rc = ctl_refuse("user %s has no provider account whose pickup could get the "
				"message",
				ctl_clean(d.user, buf, sizeof(buf)));
		goto done;
	}
	found = store_account_get(ctl->store, account_name, &account);
	if (found != 1) {
		rc = ctl_refuse("cannot read account %s", account_name);
		goto done;
	}
	found = depot_search_owns(d.depot, seq, &d.query, err, sizeof(err));
	if (found == 1)
		found = depot_read(d.depot, seq, d.actor, &raw, &len, err, sizeof(err));
	if (found < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	if (found == 0) {
		rc = ctl_refuse("no message %lld", (long long)seq);
		goto done;
	}
	if (ctl_depot_deliver(ctl->store, account.id, raw, len, id, err, sizeof(err)) < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	detail =
	    xasprintf("seq %lld to account %s as message %s", (long long)seq, account.name, id);
	found = depot_audit(d.depot, d.actor, "restore", detail, err, sizeof(err));
	free(detail);
	if (found < 0)
		fprintf(stderr, "popgatectl: warning: the restore is not in the audit log: %s\n",
			err);
	rc = ctl_changed(ctl, id,
			 json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)seq, "id", id,
				   "account", account.name, "state", "delivery"),
			 "archived message %lld restored to %s's Delivery Queue (account %s, "
			 "message %s)",
			 (long long)seq, d.user, account.name, id);
done:
	free(raw);
	free(account_name);
	store_account_clear(&account);
	ctl_depot_clear(&d);
	return rc;
}
