/*
 * attachments.c — the "attachments" filter (see attachments.h): blocked and
 * double extensions, disguised names, executables by content, and the same
 * inside zip, 7z and RAR archives, and encrypted archives.
 *
 * Owns: nothing between messages (each judgement builds and frees its own
 * state). Must never: read past a bound of attachments.h, let an archive
 * make it decompress without counting, or put a byte of a file name into
 * the reason unsanitised.
 *
 * SECURITY: the message and every archive in it are hostile. GMime does the
 * MIME work (mime.h) and libarchive the archive formats; libarchive reads
 * from memory only (archive_read_open_memory: no file, no descriptor, so
 * it works in the confined worker), with the zip, 7z and RAR readers alone
 * enabled and no compression filter (gzip, xz... around an archive are not
 * opened): the smallest surface that finds what this filter looks for.
 * Each archive is read with its format's reader alone. Skipping an entry of
 * a zip read by its central directory jumps over it, but skipping one of a
 * solid 7z or RAR archive, or of a zip read as a stream (one without a
 * central directory), decompresses it, so for those every byte passed is
 * read through this file and counted against the budget instead.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "core/util.h"
#include "filters/attachments.h"
#include "filters/filter.h"
#include "filters/mime.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"

/* Extensions a blocked list holds, and the longest one. */
#define ATTACHMENTS_BLOCKED_MAX 128
#define ATTACHMENTS_EXTENSION_MAX 15
/* Characters of a file name shown in the reason. */
#define ATTACHMENTS_SHOWN_NAME_MAX 60
/* The reason's start, and the room kept at its end for " (+N more)". */
#define ATTACHMENTS_REASON_PREFIX "attachments: "
#define ATTACHMENTS_MORE_ROOM 16
#define ATTACHMENTS_FINDINGS_MAX                                                                   \
	(PROTO_REASON_MAX - (sizeof(ATTACHMENTS_REASON_PREFIX) - 1) - ATTACHMENTS_MORE_ROOM)

/* The extensions of documents and media that a double extension puts
 * before the blocked one, to be read as the file's type. */
static const char *const attachments_decoys[] = {
    "pdf", "doc", "docx", "docm", "xls",  "xlsx", "xlsm", "ppt", "pptx", "odt", "ods",
    "odp", "rtf", "txt",  "csv",  "htm",  "html", "xml",  "jpg", "jpeg", "png", "gif",
    "bmp", "tif", "tiff", "svg",  "webp", "heic", "mp3",  "mp4", "wav",	 "avi", "mov",
    "mkv", "wmv", "zip",  "rar",  "7z",	  "eml",  "msg",  "ics", "vcf",
};

struct attachments_scan {
	char blocked[ATTACHMENTS_BLOCKED_MAX][ATTACHMENTS_EXTENSION_MAX + 1];
	size_t blocked_count;
	double score;
	char reason[PROTO_REASON_MAX + 1];
	size_t reason_len;
	size_t findings;
	size_t findings_unshown;
	size_t parts;
	size_t entries;	      /* archive entries seen */
	size_t archive_bytes; /* bytes decompressed from archives */
	bool truncated;	      /* a bound left something out */
};

/* ---- names ---------------------------------------------------------------- */

static char attachments_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Fills SCAN's blocked list from TEXT (see attachments_judge). */
static void attachments_blocked_parse(struct attachments_scan *scan, const char *text)
{
	while (*text != '\0') {
		size_t len;

		while (*text == ' ' || *text == '\t' || *text == ',' || *text == '.')
			text++;
		len = strcspn(text, " \t,");
		if (len > 0 && len <= ATTACHMENTS_EXTENSION_MAX &&
		    scan->blocked_count < ATTACHMENTS_BLOCKED_MAX) {
			char *out = scan->blocked[scan->blocked_count++];

			for (size_t i = 0; i < len; i++)
				out[i] = attachments_lower(text[i]);
			out[len] = '\0';
		}
		text += len;
	}
}

/* Whether EXT (LEN bytes, any case) is in LIST (COUNT lowercase names). */
static bool attachments_listed(const char *ext, size_t len, const char *const *list, size_t count)
{
	char lower[ATTACHMENTS_EXTENSION_MAX + 1];

	if (len == 0 || len > ATTACHMENTS_EXTENSION_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		lower[i] = attachments_lower(ext[i]);
	lower[len] = '\0';
	for (size_t i = 0; i < count; i++) {
		if (strcmp(list[i], lower) == 0)
			return true;
	}
	return false;
}

static bool attachments_blocked(const struct attachments_scan *scan, const char *ext, size_t len)
{
	const char *list[ATTACHMENTS_BLOCKED_MAX];

	for (size_t i = 0; i < scan->blocked_count; i++)
		list[i] = scan->blocked[i];
	return attachments_listed(ext, len, list, scan->blocked_count);
}

/* The length of the whitespace (ASCII, no-break and Unicode spaces, in
 * UTF-8) that ends NAME[0..LEN), if any. */
static size_t attachments_trailing_space(const char *name, size_t len)
{
	size_t end = len;

	for (;;) {
		const unsigned char *u = (const unsigned char *)name;

		if (end >= 1 && (u[end - 1] == ' ' || u[end - 1] == '\t'))
			end -= 1;
		else if (end >= 2 && u[end - 2] == 0xc2 && u[end - 1] == 0xa0)
			end -= 2; /* U+00A0 */
		else if (end >= 3 && u[end - 3] == 0xe2 && u[end - 2] == 0x80 && u[end - 1] <= 0x8b)
			end -= 3; /* U+2000..U+200B */
		else if (end >= 3 && u[end - 3] == 0xe3 && u[end - 2] == 0x80 && u[end - 1] == 0x80)
			end -= 3; /* U+3000 */
		else
			return len - end;
	}
}

/*
 * The extension of NAME[0..LEN) as Windows sees it (trailing dots and
 * spaces dropped): *EXT and *EXT_LEN, and *STEM_LEN, the bytes before its
 * dot. False when there is none.
 */
static bool attachments_extension(const char *name, size_t len, const char **ext, size_t *ext_len,
				  size_t *stem_len)
{
	const char *dot;

	for (;;) {
		size_t space = attachments_trailing_space(name, len);

		if (space > 0)
			len -= space;
		else if (len > 0 && name[len - 1] == '.')
			len--;
		else
			break;
	}
	dot = memrchr(name, '.', len);
	if (dot == NULL || dot + 1 == name + len)
		return false;
	*ext = dot + 1;
	*ext_len = (size_t)(name + len - *ext);
	*stem_len = (size_t)(dot - name);
	return true;
}

/* Whether NAME holds a bidirectional control (U+061C, U+200E, U+200F,
 * U+202A..U+202E, U+2066..U+2069), in UTF-8. */
static bool attachments_bidi(const char *name)
{
	for (const unsigned char *u = (const unsigned char *)name; *u != '\0'; u++) {
		if (u[0] == 0xd8 && u[1] == 0x9c)
			return true;
		if (u[0] == 0xe2 && u[1] == 0x80 &&
		    (u[2] == 0x8e || u[2] == 0x8f || (u[2] >= 0xaa && u[2] <= 0xae)))
			return true;
		if (u[0] == 0xe2 && u[1] == 0x81 && u[2] >= 0xa6 && u[2] <= 0xa9)
			return true;
	}
	return false;
}

/* ---- findings -------------------------------------------------------------- */

/* SHOWN, printable ASCII: NAME, its middle cut out when it is long (the end
 * has the extension). */
static void attachments_shown(char *shown, size_t shown_len, const char *name)
{
	enum { HEAD = 20, TAIL = ATTACHMENTS_SHOWN_NAME_MAX - HEAD - 3 };
	size_t len = strlen(name);
	char cut[ATTACHMENTS_SHOWN_NAME_MAX + 1];

	if (len <= ATTACHMENTS_SHOWN_NAME_MAX) {
		util_sanitize(shown, shown_len, name, len);
		return;
	}
	memcpy(cut, name, HEAD);
	memcpy(cut + HEAD, "...", 3);
	memcpy(cut + HEAD + 3, name + len - TAIL, TAIL);
	util_sanitize(shown, shown_len, cut, ATTACHMENTS_SHOWN_NAME_MAX);
}

/* Records a finding worth POINTS: WHAT (printable ASCII) about the file NAME. */
static void attachments_find(struct attachments_scan *scan, double points, const char *what,
			     const char *name)
{
	char shown[ATTACHMENTS_SHOWN_NAME_MAX + 1];
	char line[PROTO_REASON_MAX + 1];
	int len;

	scan->findings++;
	if (points > scan->score)
		scan->score = points;
	attachments_shown(shown, sizeof(shown), name);
	len = snprintf(line, sizeof(line), "%s%s: %s", scan->findings > 1 ? "; " : "", what, shown);
	if (len < 0 || scan->findings_unshown > 0 ||
	    scan->reason_len + (size_t)len > ATTACHMENTS_FINDINGS_MAX) {
		scan->findings_unshown++;
		return;
	}
	memcpy(scan->reason + scan->reason_len, line, (size_t)len + 1);
	scan->reason_len += (size_t)len;
}

/* Judges the file name NAME (UTF-8), shown as SHOWN: one finding at most. */
static void attachments_name(struct attachments_scan *scan, const char *name, const char *shown)
{
	const char *ext;
	const char *decoy;
	size_t ext_len;
	size_t stem_len;
	size_t decoy_len;
	size_t decoy_stem;
	char what[2 * ATTACHMENTS_EXTENSION_MAX + 32];

	if (attachments_bidi(name)) {
		attachments_find(scan, ATTACHMENTS_POINTS_NAME, "disguised name (bidi control)",
				 shown);
		return;
	}
	if (!attachments_extension(name, strlen(name), &ext, &ext_len, &stem_len) ||
	    !attachments_blocked(scan, ext, ext_len))
		return;
	stem_len -= attachments_trailing_space(name, stem_len);
	if (attachments_extension(name, stem_len, &decoy, &decoy_len, &decoy_stem) &&
	    attachments_listed(decoy, decoy_len, attachments_decoys,
			       sizeof(attachments_decoys) / sizeof(attachments_decoys[0]))) {
		snprintf(what, sizeof(what), "double extension .%.*s.%.*s", (int)decoy_len, decoy,
			 (int)ext_len, ext);
	} else {
		snprintf(what, sizeof(what), "blocked extension .%.*s", (int)ext_len, ext);
	}
	/* The extensions came from the name: only printable ASCII is shown. */
	for (char *c = what; *c != '\0'; c++) {
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
	}
	attachments_find(scan, ATTACHMENTS_POINTS_NAME, what, shown);
}

/* ---- content ---------------------------------------------------------------- */

static uint32_t attachments_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t attachments_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The kind of executable DATA (LEN bytes, the start of a file) is, or NULL. */
static const char *attachments_executable(const unsigned char *data, size_t len)
{
	uint32_t magic;

	if (len >= 4 && memcmp(data,
			       "\x7f"
			       "ELF",
			       4) == 0)
		return "ELF";
	if (len >= 0x40 && data[0] == 'M' && data[1] == 'Z') {
		uint32_t header = attachments_le32(data + 0x3c);

		if (header <= len - 4 && memcmp(data + header, "PE\0\0", 4) == 0)
			return "PE";
	}
	if (len < 8)
		return NULL;
	magic = attachments_be32(data);
	if (magic == 0xfeedface || magic == 0xfeedfacf || magic == 0xcefaedfe ||
	    magic == 0xcffaedfe)
		return "Mach-O";
	/* A universal binary counts its architectures where a Java class file
	 * has its version (45 and up). */
	if (magic == 0xcafebabe && attachments_be32(data + 4) >= 1 &&
	    attachments_be32(data + 4) <= 30)
		return "Mach-O";
	return NULL;
}

/* The archive format DATA (LEN bytes, the start of a file) is, or NULL. */
static const char *attachments_archive_kind(const unsigned char *data, size_t len)
{
	if (len >= 4 && (memcmp(data, "PK\3\4", 4) == 0 || memcmp(data, "PK\5\6", 4) == 0))
		return "zip";
	if (len >= 6 && memcmp(data, "7z\xbc\xaf\x27\x1c", 6) == 0)
		return "7z";
	if (len >= 6 && memcmp(data, "Rar!\x1a\x07", 6) == 0)
		return "rar";
	return NULL;
}

/* Checks the content DATA (LEN bytes, or its first LEN) of the file NAME. */
static void attachments_content(struct attachments_scan *scan, const unsigned char *data,
				size_t len, const char *name)
{
	const char *kind = attachments_executable(data, len);
	char what[32];

	if (kind != NULL) {
		snprintf(what, sizeof(what), "executable (%s)", kind);
		attachments_find(scan, ATTACHMENTS_POINTS_EXECUTABLE, what, name);
	}
}

/* ---- archives ------------------------------------------------------------------ */

/*
 * Reads up to WANT bytes of the current entry of ARCHIVE into BUF, within
 * the budget: the bytes read (0 at the end or on an error). *SHORT is set
 * when the budget ran out first.
 */
static size_t attachments_read(struct attachments_scan *scan, struct archive *archive,
			       unsigned char *buf, size_t want, bool *short_read)
{
	size_t done = 0;

	*short_read = false;
	while (done < want) {
		size_t room = ATTACHMENTS_ARCHIVE_BYTES_MAX - scan->archive_bytes;
		la_ssize_t n;

		if (room == 0) {
			*short_read = true;
			scan->truncated = true;
			break;
		}
		n = archive_read_data(archive, buf + done, want - done < room ? want - done : room);
		if (n <= 0)
			break;
		done += (size_t)n;
		scan->archive_bytes += (size_t)n;
	}
	return done;
}

static void attachments_archive(struct attachments_scan *scan, const unsigned char *data,
				size_t len, const char *kind, const char *path, int depth);

/*
 * The rest of an entry whose first HEAD_LEN bytes (in HEAD) show an archive
 * of KIND: read whole within the budget and opened as PATH. False when the
 * budget ran out first (the entry is then not opened, and not read to its
 * end).
 */
static bool attachments_nested(struct attachments_scan *scan, struct archive *archive,
			       const unsigned char *head, size_t head_len, const char *kind,
			       const char *path, int depth)
{
	size_t capacity = 64 * 1024;
	unsigned char *buf = xmalloc(capacity);
	size_t len = head_len;
	bool short_read = false;

	memcpy(buf, head, head_len);
	for (;;) {
		size_t n;

		if (len == capacity) {
			capacity *= 2;
			buf = xrealloc(buf, capacity);
		}
		n = attachments_read(scan, archive, buf + len, capacity - len, &short_read);
		len += n;
		if (short_read || n == 0)
			break;
	}
	/* Cut short, it cannot be read as an archive: not opened. */
	if (!short_read)
		attachments_archive(scan, buf, len, kind, path, depth + 1);
	free(buf);
	return !short_read;
}

/* Reads what is left of the current entry of a 7z or RAR ARCHIVE (see the
 * top of the file); false when the budget ran out. */
static bool attachments_drain(struct attachments_scan *scan, struct archive *archive)
{
	unsigned char scratch[16384];
	bool short_read = false;

	while (attachments_read(scan, archive, scratch, sizeof(scratch), &short_read) > 0)
		;
	return !short_read;
}

/* Judges one entry of ARCHIVE (at nesting DEPTH; DRAIN: an entry is read to
 * its end, see the top of the file), called PATH in the reason; false when
 * the archive is not to be read further. */
static bool attachments_entry(struct attachments_scan *scan, struct archive *archive,
			      struct archive_entry *entry, bool drain, const char *path, int depth)
{
	unsigned char head[ATTACHMENTS_HEAD_MAX];
	const char *inner_kind;
	bool short_read;
	size_t head_len;

	if (archive_entry_is_encrypted(entry))
		return true;
	head_len = attachments_read(scan, archive, head, sizeof(head), &short_read);
	attachments_content(scan, head, head_len, path);
	inner_kind = attachments_archive_kind(head, head_len);
	if (inner_kind != NULL && !short_read) {
		if (depth < ATTACHMENTS_NESTING_MAX)
			return attachments_nested(scan, archive, head, head_len, inner_kind, path,
						  depth);
		scan->truncated = true;
	}
	if (drain)
		return !short_read && attachments_drain(scan, archive);
	return !short_read;
}

/* Looks into the archive DATA (LEN bytes) of KIND, called PATH, at nesting
 * DEPTH (0: an attachment). */
/*
 * A reader of DATA (LEN bytes) as an archive of KIND, with that format's
 * reader alone; for a zip, by its central directory, or when STREAM entry
 * by entry (a zip without one: cut short, or written as a stream). NULL
 * when it cannot be opened so.
 */
static struct archive *attachments_open(const unsigned char *data, size_t len, const char *kind,
					bool stream)
{
	struct archive *archive = archive_read_new();
	int rc;

	if (archive == NULL)
		return NULL;
	if (strcmp(kind, "zip") == 0 && !stream)
		rc = archive_read_support_format_zip_seekable(archive);
	else if (strcmp(kind, "zip") == 0)
		rc = archive_read_support_format_zip_streamable(archive);
	else if (strcmp(kind, "7z") == 0)
		rc = archive_read_support_format_7zip(archive);
	else if ((rc = archive_read_support_format_rar(archive)) == ARCHIVE_OK)
		rc = archive_read_support_format_rar5(archive);
	if (rc != ARCHIVE_OK || archive_read_open_memory(archive, data, len) != ARCHIVE_OK) {
		archive_read_free(archive);
		return NULL;
	}
	return archive;
}

static void attachments_archive(struct attachments_scan *scan, const unsigned char *data,
				size_t len, const char *kind, const char *path, int depth)
{
	/* Only a zip read by its central directory jumps over an entry. */
	struct archive *archive = attachments_open(data, len, kind, false);
	bool drain = strcmp(kind, "zip") != 0;
	struct archive_entry *entry;
	bool encrypted = false;

	if (archive == NULL && strcmp(kind, "zip") == 0) {
		archive = attachments_open(data, len, kind, true);
		drain = true;
	}
	if (archive == NULL)
		return;
	for (;;) {
		const char *name;
		char *entry_path;
		bool go_on;
		int rc;

		if (scan->entries >= ATTACHMENTS_ENTRIES_MAX) {
			scan->truncated = true;
			break;
		}
		/* A warning is a name that did not convert: still an entry. */
		rc = archive_read_next_header(archive, &entry);
		if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
			break;
		scan->entries++;
		name = archive_entry_pathname_utf8(entry);
		if (name == NULL)
			name = archive_entry_pathname(entry);
		if (name == NULL)
			name = "";
		if (archive_entry_filetype(entry) != AE_IFREG)
			continue;
		if (archive_entry_is_encrypted(entry))
			encrypted = true;
		entry_path = xasprintf("%s/%s", path, name);
		attachments_name(scan, name, entry_path);
		go_on = attachments_entry(scan, archive, entry, drain, entry_path, depth);
		free(entry_path);
		if (!go_on)
			break;
	}
	/* A 7z whose headers are encrypted stops at the first header. */
	if (archive_read_has_encrypted_entries(archive) > 0)
		encrypted = true;
	if (encrypted) {
		char what[32];

		snprintf(what, sizeof(what), "encrypted %s", kind);
		attachments_find(scan, ATTACHMENTS_POINTS_ENCRYPTED, what, path);
	}
	archive_read_free(archive);
}

/* ---- the message ------------------------------------------------------------------ */

static void attachments_leaf(const struct mime_leaf *leaf, void *arg)
{
	struct attachments_scan *scan = arg;
	const char *shown = leaf->filename != NULL ? leaf->filename : leaf->type;
	const char *kind;

	scan->parts++;
	if (leaf->filename != NULL)
		attachments_name(scan, leaf->filename, leaf->filename);
	/* Text without a name is what the reader reads, not a file. */
	if (leaf->filename == NULL && strncmp(leaf->type, "text/", 5) == 0)
		return;
	attachments_content(scan, leaf->data, leaf->len, shown);
	kind = attachments_archive_kind(leaf->data, leaf->len);
	if (kind != NULL)
		attachments_archive(scan, leaf->data, leaf->len, kind, shown, 0);
}

void attachments_judge(const char *body, size_t len, const char *blocked,
		       struct pipeline_result *result)
{
	struct attachments_scan *scan = xcalloc(1, sizeof(*scan));
	const char *limits;

	attachments_blocked_parse(scan, blocked != NULL ? blocked : ATTACHMENTS_BLOCKED_DEFAULT);
	if (!mime_parse_leaves(body, len, attachments_leaf, scan))
		scan->truncated = true;
	limits = scan->truncated ? ", limits reached" : "";
	result->score = scan->score;
	if (scan->findings == 0)
		result->reason = xasprintf(ATTACHMENTS_REASON_PREFIX "nothing found (%zu parts, "
								     "%zu archive entries%s)",
					   scan->parts, scan->entries, limits);
	else if (scan->findings_unshown > 0)
		result->reason = xasprintf(ATTACHMENTS_REASON_PREFIX "%s (+%zu more)", scan->reason,
					   scan->findings_unshown);
	else
		result->reason = xasprintf(ATTACHMENTS_REASON_PREFIX "%s", scan->reason);
	free(scan);
}

static int attachments_init(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	mime_init();
	return 0;
}

static int attachments_run(const struct filter_message *message, struct pipeline_result *result,
			   struct pipeline_verdict *verdict)
{
	(void)verdict;
	attachments_judge(message->body, message->body_len, filter_setting("blocked_extensions"),
			  result);
	return 0;
}

const struct filter filter_attachments = {
    .name = "attachments",
    .init = attachments_init,
    .run = attachments_run,
};
