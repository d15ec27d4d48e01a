/*
 * attachments.h — the "attachments" filter: the parts of a message (through
 * mime.h) and the entries of the archives among them, judged by name and by
 * their first bytes.
 *
 * Findings, each worth a fixed number of points; the filter's score is the
 * largest (one dangerous file is enough, and more do not add up):
 *   - a blocked extension ([spam] blocked_extensions, case-insensitive; the
 *     trailing dots and spaces Windows drops do not hide it): 10;
 *   - a double extension, a document's extension before a blocked one,
 *     whitespace between them or not ("invoice.pdf.exe", "photo.jpg   .scr"):
 *     10;
 *   - a name with a bidirectional control character (U+202E and its kin,
 *     which make "gpj.exe" read "exe.jpg"): 10;
 *   - an executable by content, whatever the name: Windows PE ("MZ" and the
 *     "PE" header it points to), ELF, Mach-O (32, 64 bit, universal): 10.
 *     Scripts starting with "#!" are not executables here: they need a
 *     user to make them so on a Unix system, and a script Windows would run
 *     is caught by its extension (.js, .vbs, .ps1, .bat...);
 *   - an encrypted archive (a zip, 7z or RAR entry with the encryption flag):
 *     6 — password-protected archives are how malware gets past scanners,
 *     but people also send them on purpose, so it tags rather than
 *     quarantines on its own at weight 1.
 * The same name and content checks apply to the entries of zip, 7z and RAR
 * attachments (found by content, not by name), and to the entries of an
 * archive inside one (one level of nesting, no more).
 *
 * Bounds per message: ATTACHMENTS_ENTRIES_MAX archive entries,
 * ATTACHMENTS_ARCHIVE_BYTES_MAX bytes decompressed from archives; of an
 * entry only its first ATTACHMENTS_HEAD_MAX bytes are read, unless it is an
 * archive to open. What lies beyond is not looked at, and is not a finding.
 */
#ifndef POPGATE_FILTERS_ATTACHMENTS_H
#define POPGATE_FILTERS_ATTACHMENTS_H

#include <stddef.h>

#define ATTACHMENTS_POINTS_NAME 10.0
#define ATTACHMENTS_POINTS_EXECUTABLE 10.0
#define ATTACHMENTS_POINTS_ENCRYPTED 6.0

#define ATTACHMENTS_ENTRIES_MAX 1000
#define ATTACHMENTS_ARCHIVE_BYTES_MAX (10UL * 1024 * 1024)
#define ATTACHMENTS_HEAD_MAX 4096
/* Archives opened inside an archive: one level. */
#define ATTACHMENTS_NESTING_MAX 1

/* The extensions blocked when [spam] blocked_extensions is not set: Windows
 * programs, scripts, installers, shortcuts, disk images and Office add-ins
 * (short enough for one line of popgate.conf, which holds 200 bytes). Not
 * .url: Internet shortcuts are sent on purpose (the corpus's ham has one). */
#define ATTACHMENTS_BLOCKED_DEFAULT                                                                \
	"ade adp app appx bat cab chm cmd com cpl dll exe hta inf ins iso img jar js jse lnk msc " \
	"msi msix msp mst pif ps1 reg scf scr sct vb vbe vbs vhd vhdx ws wsc wsf wsh xll"

struct pipeline_result;

/*
 * Judges the message BODY (LEN bytes) with the blocked extensions BLOCKED
 * (names separated by spaces or commas, with or without a leading dot;
 * NULL: ATTACHMENTS_BLOCKED_DEFAULT): sets RESULT's score and, when there
 * are findings, its reason ("attachments: blocked extension .exe:
 * invoice.exe; ..."), printable ASCII within a frame's limit.
 */
void attachments_judge(const char *body, size_t len, const char *blocked,
		       struct pipeline_result *result);

#endif
