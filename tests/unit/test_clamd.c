/*
 * test_clamd.c — clamd's INSTREAM protocol (filters/clamd.c) and the clamav
 * filter's rules (filters/clamav.c, the virus rule of pipeline/verdict.c):
 * chunk framing, the reply parser fed whole, byte by byte, garbled and
 * overlong, clamd's address (and the configuration that refuses a bad
 * one), the blocking scan against a fake clamd on a
 * unix socket (partial replies, garbage, silence, a refusal) and against
 * Debian's real clamd with a signature database made here (the EICAR
 * string; skipped when /usr/sbin/clamd is not installed).
 *
 * Owns: its temp folders, the fake's thread, the real clamd's process.
 * Must never: leave a process or a folder behind, or wait without bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"

#include "core/config.h"
#include "core/util.h"
#include "filters/clamav.h"
#include "filters/clamd.h"
#include "filters/filter.h"
#include "pipeline/verdict.h"

#define TEST_CLAMD "/usr/sbin/clamd"
#define TEST_EICAR "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
#define TEST_SIGNATURE "Popgate-Test-EICAR"

static void test_chunk_header(void **state)
{
	unsigned char out[4];

	(void)state;
	clamd_chunk_header(0, out);
	assert_memory_equal(out, "\0\0\0\0", 4);
	clamd_chunk_header(0x01020304, out);
	assert_memory_equal(out, "\x01\x02\x03\x04", 4);
	clamd_chunk_header(CLAMD_CHUNK_MAX, out);
	assert_memory_equal(out, "\x00\x01\x00\x00", 4);
	clamd_chunk_header(0xffffffffu, out);
	assert_memory_equal(out, "\xff\xff\xff\xff", 4);
	assert_int_equal(CLAMD_COMMAND_LEN, 10);
	assert_memory_equal(CLAMD_COMMAND, "zINSTREAM\0", 10);
}

struct reply_case {
	const char *data;
	size_t len; /* 0: strlen(data) + 1 (with its NUL) */
	bool ended;
	enum clamd_verdict verdict;
	const char *text;
};

static const struct reply_case reply_cases[] = {
    {"stream: OK", 0, false, CLAMD_CLEAN, ""},
    {"stream: OK\n", 0, false, CLAMD_CLEAN, ""},
    {"stream: Eicar-Test-Signature FOUND", 0, false, CLAMD_VIRUS, "Eicar-Test-Signature"},
    {"stream: Win.Trojan.Agent-1:2 FOUND\n", 0, true, CLAMD_VIRUS, "Win.Trojan.Agent-1:2"},
    {"INSTREAM size limit exceeded. ERROR", 0, false, CLAMD_TOO_LARGE,
     "INSTREAM size limit exceeded. ERROR"},
    {"stream: Can't allocate memory ERROR", 0, false, CLAMD_ERROR,
     "stream: Can't allocate memory ERROR"},
    {"UNKNOWN COMMAND", 0, false, CLAMD_ERROR, "UNKNOWN COMMAND"},
    {"COMMAND READ TIMED OUT", 0, false, CLAMD_ERROR, "COMMAND READ TIMED OUT"},
    /* Not a name: empty, or with a space. */
    {"stream:  FOUND", 0, false, CLAMD_ERROR, "stream:  FOUND"},
    {"stream: two words FOUND", 0, false, CLAMD_ERROR, "stream: two words FOUND"},
    {"stream: FOUND", 0, false, CLAMD_ERROR, "stream: FOUND"},
    /* Without a NUL: more to come, unless clamd closed. */
    {"stream: OK", 10, false, CLAMD_INCOMPLETE, ""},
    {"stream: OK", 10, true, CLAMD_CLEAN, ""},
    {"stream: O", 9, true, CLAMD_ERROR, "stream: O"},
    {"", 0, false, CLAMD_ERROR, "closed without a reply"},
    {"", 0, true, CLAMD_ERROR, "closed without a reply"},
    {"\n", 0, false, CLAMD_ERROR, "closed without a reply"},
    /* Control and 8-bit bytes are never kept. */
    {"stream: \x1b[31mX FOUND", 0, false, CLAMD_ERROR, "garbled reply"},
    {"stream: Caf\xc3\xa9 FOUND", 0, false, CLAMD_ERROR, "garbled reply"},
    {"stream: OK\0trailing", 19, false, CLAMD_CLEAN, ""},
};

static void test_reply_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		const struct reply_case *c = &reply_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->data) + 1;
		struct clamd_reply reply;

		if (clamd_reply_parse(c->data, len, c->ended, &reply) != c->verdict ||
		    reply.verdict != c->verdict || strcmp(reply.text, c->text) != 0)
			fail_msg("case %zu (%s): verdict %d text '%s'", i, c->data, reply.verdict,
				 reply.text);
	}
}

/* A reply arriving one byte at a time is incomplete until its NUL. */
static void test_reply_byte_by_byte(void **state)
{
	static const char data[] = "stream: Eicar-Test-Signature FOUND";
	struct clamd_reply reply;

	(void)state;
	for (size_t len = 0; len < sizeof(data) - 1; len++)
		assert_int_equal(clamd_reply_parse(data, len, false, &reply), CLAMD_INCOMPLETE);
	assert_int_equal(clamd_reply_parse(data, sizeof(data), false, &reply), CLAMD_VIRUS);
	assert_string_equal(reply.text, "Eicar-Test-Signature");
}

/* A reply is read up to CLAMD_REPLY_MAX bytes; kept text is cut. */
static void test_reply_overlong(void **state)
{
	char *data = xmalloc(CLAMD_REPLY_MAX + 64);
	struct clamd_reply reply;

	(void)state;
	memset(data, 'A', CLAMD_REPLY_MAX + 64);
	assert_int_equal(clamd_reply_parse(data, CLAMD_REPLY_MAX, false, &reply), CLAMD_INCOMPLETE);
	assert_int_equal(clamd_reply_parse(data, CLAMD_REPLY_MAX + 1, false, &reply), CLAMD_ERROR);
	assert_string_equal(reply.text, "reply too long");
	/* A NUL past the limit does not count. */
	data[CLAMD_REPLY_MAX + 10] = '\0';
	assert_int_equal(clamd_reply_parse(data, CLAMD_REPLY_MAX + 64, false, &reply), CLAMD_ERROR);
	/* A long virus name is cut to CLAMD_TEXT_MAX. */
	memcpy(data, "stream: ", 8);
	memcpy(data + 600, " FOUND", 7);
	assert_int_equal(clamd_reply_parse(data, 607, false, &reply), CLAMD_VIRUS);
	assert_int_equal(strlen(reply.text), CLAMD_TEXT_MAX);
	free(data);
}

static void test_address(void **state)
{
	struct clamd_address address;
	char err[256] = "";
	char long_path[200];

	(void)state;
	assert_int_equal(
	    clamd_address_parse("/var/run/clamav/clamd.ctl", &address, err, sizeof(err)), 0);
	assert_int_equal(address.addr.ss_family, AF_UNIX);
	assert_int_equal(clamd_address_parse("127.0.0.1:3310", &address, err, sizeof(err)), 0);
	assert_int_equal(address.addr.ss_family, AF_INET);
	assert_int_equal(clamd_address_parse("[::1]:3310", &address, err, sizeof(err)), 0);
	assert_int_equal(address.addr.ss_family, AF_INET6);
	assert_int_equal(clamd_address_parse("localhost:3310", &address, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "neither an absolute socket path nor ADDRESS:PORT"));
	assert_int_equal(clamd_address_parse("127.0.0.1", &address, err, sizeof(err)), -1);
	assert_int_equal(clamd_address_parse("clamd.ctl", &address, err, sizeof(err)), -1);
	assert_int_equal(clamd_address_parse("", &address, err, sizeof(err)), -1);
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	assert_int_equal(clamd_address_parse(long_path, &address, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than"));
}

/* A clamd_socket that is neither stops the start, naming the line. */
static void test_config_refuses_bad_socket(void **state)
{
	struct popgate_config cfg = {0};
	char dir[TEST_DIR_SIZE], path[TEST_DIR_SIZE + 16], err[512] = "";

	(void)state;
	assert_int_equal(test_dir_make(dir, sizeof(dir), "clamdconf"), 0);
	snprintf(path, sizeof(path), "%s/popgate.conf", dir);
	test_write_file(path, "[spam]\nquarantine_days = 3\nclamd_socket = clamd.example:3310\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(
	    strstr(err, "popgate.conf:3: clamd_socket: 'clamd.example:3310' is neither"));
	config_free(&cfg);
	test_write_file(path, "[spam]\nclamd_socket = [::1]:3310\nclamd_max_size = 1048576\n");
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	assert_string_equal(cfg.clamd_socket, "[::1]:3310");
	assert_int_equal(cfg.clamd_max_size, 1048576);
	assert_int_equal(cfg.clamd_timeout, CLAMAV_DEFAULT_TIMEOUT);
	assert_int_equal(cfg.clamd_retry, CLAMAV_DEFAULT_RETRY);
	assert_int_equal(cfg.clamd_max_connections, CLAMAV_DEFAULT_MAX_CONNECTIONS);
	config_free(&cfg);
	/* The defaults agree with the filter's. */
	config_defaults(&cfg);
	assert_string_equal(cfg.clamd_socket, CLAMAV_DEFAULT_SOCKET);
	assert_int_equal(cfg.clamd_max_size, CLAMAV_DEFAULT_MAX_SIZE);
	config_free(&cfg);
	test_dir_remove(dir);
}

/* ---- a fake clamd on a unix socket, in a thread ---- */

enum fake_mode {
	FAKE_SPLIT_OK, /* reads the stream to its end, answers "stream: O" + "K\0" */
	FAKE_GARBAGE,  /* answers bytes that are no reply */
	FAKE_SILENT,   /* reads everything, never answers */
	FAKE_CLOSE,    /* closes at once without a word */
};

struct fake_clamd {
	char dir[TEST_DIR_SIZE];
	char path[TEST_DIR_SIZE + 16];
	int listen_fd;
	enum fake_mode mode;
	pthread_t thread;
	/* What it received, for the test to check after the join. */
	unsigned char *received;
	size_t received_len;
};

/* True once RECEIVED holds the command, chunks and the zero chunk. */
static bool fake_stream_complete(const unsigned char *data, size_t len)
{
	size_t pos = CLAMD_COMMAND_LEN;

	while (pos + 4 <= len) {
		uint32_t chunk = (uint32_t)data[pos] << 24 | (uint32_t)data[pos + 1] << 16 |
				 (uint32_t)data[pos + 2] << 8 | data[pos + 3];

		pos += 4;
		if (chunk == 0)
			return true;
		pos += chunk;
	}
	return false;
}

static void *fake_clamd_run(void *arg)
{
	struct fake_clamd *fake = arg;
	int fd = accept(fake->listen_fd, NULL, NULL);
	unsigned char buf[65536];
	ssize_t n;

	if (fd < 0)
		return NULL;
	if (fake->mode == FAKE_CLOSE) {
		close(fd);
		return NULL;
	}
	while (!fake_stream_complete(fake->received, fake->received_len) &&
	       (n = read(fd, buf, sizeof(buf))) > 0) {
		fake->received = xrealloc(fake->received, fake->received_len + (size_t)n);
		memcpy(fake->received + fake->received_len, buf, (size_t)n);
		fake->received_len += (size_t)n;
	}
	if (fake->mode == FAKE_SPLIT_OK) {
		(void)!write(fd, "stream: O", 9);
		usleep(50 * 1000);
		(void)!write(fd, "K", 2);
	} else if (fake->mode == FAKE_GARBAGE) {
		(void)!write(fd, "\x01\x02\xff", 4);
	} else {
		/* Silent: holds the connection until the client gives up. */
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	}
	close(fd);
	return NULL;
}

static void fake_clamd_start(struct fake_clamd *fake, enum fake_mode mode)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};

	memset(fake, 0, sizeof(*fake));
	fake->mode = mode;
	assert_int_equal(test_dir_make(fake->dir, sizeof(fake->dir), "clamd"), 0);
	snprintf(fake->path, sizeof(fake->path), "%s/clamd.sock", fake->dir);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", fake->path);
	fake->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fake->listen_fd >= 0);
	assert_int_equal(bind(fake->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(fake->listen_fd, 4), 0);
	assert_int_equal(pthread_create(&fake->thread, NULL, fake_clamd_run, fake), 0);
}

static void fake_clamd_stop(struct fake_clamd *fake)
{
	pthread_join(fake->thread, NULL);
	close(fake->listen_fd);
	free(fake->received);
	test_dir_remove(fake->dir);
}

/* A temp file holding LEN bytes of a pattern; its descriptor at offset 0. */
static int test_body(const char *dir, size_t len, unsigned char **bytes_r)
{
	char path[TEST_DIR_SIZE + 16];
	unsigned char *bytes = xmalloc(len + 1);
	int fd;

	for (size_t i = 0; i < len; i++)
		bytes[i] = (unsigned char)(i * 7 + i / 251);
	snprintf(path, sizeof(path), "%s/body", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	*bytes_r = bytes;
	return fd;
}

/* The stream is the command, chunks of at most CLAMD_CHUNK_MAX bytes that
 * add up to the body, and a zero chunk; a reply in two parts is one. */
static void test_scan_stream_bytes(void **state)
{
	struct fake_clamd fake;
	struct clamd_address address;
	struct clamd_reply reply;
	size_t body_len = 2 * CLAMD_CHUNK_MAX + 5;
	unsigned char *body, *joined = xmalloc(body_len);
	size_t joined_len = 0, pos = CLAMD_COMMAND_LEN, chunks = 0;
	char err[256] = "";
	int fd;

	(void)state;
	fake_clamd_start(&fake, FAKE_SPLIT_OK);
	fd = test_body(fake.dir, body_len, &body);
	assert_int_equal(clamd_address_parse(fake.path, &address, err, sizeof(err)), 0);
	assert_int_equal(clamd_scan_fd(&address, fd, 10, &reply, err, sizeof(err)), 0);
	pthread_join(fake.thread, NULL);
	assert_memory_equal(fake.received, "zINSTREAM\0", CLAMD_COMMAND_LEN);
	for (;;) {
		uint32_t chunk;

		assert_true(pos + 4 <= fake.received_len);
		chunk = (uint32_t)fake.received[pos] << 24 |
			(uint32_t)fake.received[pos + 1] << 16 |
			(uint32_t)fake.received[pos + 2] << 8 | fake.received[pos + 3];
		pos += 4;
		if (chunk == 0)
			break;
		assert_true(chunk <= CLAMD_CHUNK_MAX);
		assert_true(joined_len + chunk <= body_len);
		memcpy(joined + joined_len, fake.received + pos, chunk);
		joined_len += chunk;
		pos += chunk;
		chunks++;
	}
	assert_int_equal(pos, fake.received_len);
	assert_int_equal(joined_len, body_len);
	assert_memory_equal(joined, body, body_len);
	assert_int_equal(chunks, 3);
	close(fake.listen_fd);
	free(fake.received);
	test_dir_remove(fake.dir);
	close(fd);
	free(body);
	free(joined);
}

static void test_scan_faults(void **state)
{
	struct fake_clamd fake;
	struct clamd_address address;
	struct clamd_reply reply;
	unsigned char *body;
	char err[256] = "";
	int64_t started;
	int fd;

	(void)state;
	/* Garbage: an error reply, not a crash. */
	fake_clamd_start(&fake, FAKE_GARBAGE);
	fd = test_body(fake.dir, 100, &body);
	assert_int_equal(clamd_address_parse(fake.path, &address, err, sizeof(err)), 0);
	assert_int_equal(clamd_scan_fd(&address, fd, 10, &reply, err, sizeof(err)), 0);
	assert_int_equal(reply.verdict, CLAMD_ERROR);
	assert_string_equal(reply.text, "garbled reply");
	close(fd);
	free(body);
	fake_clamd_stop(&fake);

	/* Closed without a word. */
	fake_clamd_start(&fake, FAKE_CLOSE);
	fd = test_body(fake.dir, 100, &body);
	assert_int_equal(clamd_address_parse(fake.path, &address, err, sizeof(err)), 0);
	if (clamd_scan_fd(&address, fd, 10, &reply, err, sizeof(err)) == 0)
		assert_int_equal(reply.verdict, CLAMD_ERROR);
	close(fd);
	free(body);
	fake_clamd_stop(&fake);

	/* Silent: the deadline, not a hang. */
	fake_clamd_start(&fake, FAKE_SILENT);
	fd = test_body(fake.dir, 100, &body);
	assert_int_equal(clamd_address_parse(fake.path, &address, err, sizeof(err)), 0);
	started = util_monotonic_ms();
	assert_int_equal(clamd_scan_fd(&address, fd, 1, &reply, err, sizeof(err)), -1);
	assert_true(util_monotonic_ms() - started < 3000);
	assert_string_equal(err, "no answer from clamd in time");
	close(fd);
	free(body);
	fake_clamd_stop(&fake);

	/* Nobody listening. */
	assert_int_equal(clamd_address_parse("/nonexistent/clamd.sock", &address, err, sizeof(err)),
			 0);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(clamd_scan_fd(&address, fd, 1, &reply, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot connect to clamd"));
	close(fd);
}

/* ---- Debian's clamd with a signature database made here ---- */

struct real_clamd {
	char dir[TEST_DIR_SIZE];
	char socket[TEST_DIR_SIZE + 16];
	pid_t pid;
};

/* Starts clamd; false (nothing started) when it is not installed. */
static bool real_clamd_start(struct real_clamd *clamd)
{
	char path[TEST_DIR_SIZE + 32], *text, *hex;
	struct stat st;
	size_t eicar_len = strlen(TEST_EICAR);

	if (access(TEST_CLAMD, X_OK) != 0)
		return false;
	assert_int_equal(test_dir_make(clamd->dir, sizeof(clamd->dir), "realclamd"), 0);
	snprintf(clamd->socket, sizeof(clamd->socket), "%s/clamd.sock", clamd->dir);
	/* A body signature (.ndb): the EICAR string anywhere in a file clamd
	 * looks at, an attachment decoded from base64 among them. */
	hex = xmalloc(eicar_len * 2 + 1);
	for (size_t i = 0; i < eicar_len; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)TEST_EICAR[i]);
	text = xasprintf(TEST_SIGNATURE ":0:*:%s\n", hex);
	snprintf(path, sizeof(path), "%s/test.ndb", clamd->dir);
	test_write_file(path, text);
	free(text);
	free(hex);
	text = xasprintf("Foreground yes\nLocalSocket %s\nLocalSocketMode 666\n"
			 "DatabaseDirectory %s\nTemporaryDirectory %s\nBytecode no\n"
			 "LogFile %s/clamd.log\n",
			 clamd->socket, clamd->dir, clamd->dir, clamd->dir);
	snprintf(path, sizeof(path), "%s/clamd.conf", clamd->dir);
	test_write_file(path, text);
	free(text);
	clamd->pid = fork();
	assert_true(clamd->pid >= 0);
	if (clamd->pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execl(TEST_CLAMD, "clamd", "-c", path, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300 && stat(clamd->socket, &st) != 0; i++)
		usleep(50 * 1000);
	assert_int_equal(stat(clamd->socket, &st), 0);
	return true;
}

static void real_clamd_stop(struct real_clamd *clamd)
{
	kill(clamd->pid, SIGTERM);
	for (int i = 0; i < 100 && waitpid(clamd->pid, NULL, WNOHANG) == 0; i++)
		usleep(50 * 1000);
	if (waitpid(clamd->pid, NULL, WNOHANG) == 0) {
		kill(clamd->pid, SIGKILL);
		waitpid(clamd->pid, NULL, 0);
	}
	test_dir_remove(clamd->dir);
}

/* Scans TEXT with the real clamd at SOCKET into *REPLY. */
static void real_scan(const char *dir, const char *socket, const char *text,
		      struct clamd_reply *reply)
{
	char path[TEST_DIR_SIZE + 16], err[256] = "";
	struct clamd_address address;
	int fd;

	snprintf(path, sizeof(path), "%s/message", dir);
	test_write_file(path, text);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(clamd_address_parse(socket, &address, err, sizeof(err)), 0);
	if (clamd_scan_fd(&address, fd, 30, reply, err, sizeof(err)) < 0)
		fail_msg("scan: %s", err);
	close(fd);
}

static void test_real_clamd(void **state)
{
	struct real_clamd clamd;
	struct clamd_reply reply;
	char *mail;

	(void)state;
	if (!real_clamd_start(&clamd))
		skip();
	/* The EICAR file as a base64 attachment of a MIME message. */
	mail = xasprintf("From: a@example.org\r\nTo: b@example.org\r\nSubject: test\r\n"
			 "MIME-Version: 1.0\r\n"
			 "Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\n"
			 "Content-Type: text/plain\r\n\r\nSee the attachment.\r\n--BB\r\n"
			 "Content-Type: application/octet-stream; name=eicar.com\r\n"
			 "Content-Transfer-Encoding: base64\r\n\r\n"
			 "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1U"
			 "\r\nRVNULUZJTEUhJEgrSCo=\r\n--BB--\r\n");
	real_scan(clamd.dir, clamd.socket, mail, &reply);
	assert_int_equal(reply.verdict, CLAMD_VIRUS);
	assert_string_equal(reply.text, TEST_SIGNATURE ".UNOFFICIAL");
	free(mail);
	real_scan(clamd.dir, clamd.socket,
		  "From: a@example.org\r\nSubject: hello\r\n\r\nNothing to see.\r\n", &reply);
	assert_int_equal(reply.verdict, CLAMD_CLEAN);
	real_clamd_stop(&clamd);
}

/* ---- the filter's rules ---- */

static void test_results_and_settings(void **state)
{
	struct pipeline_result result = {0};
	struct clamd_reply reply = {.verdict = CLAMD_VIRUS};
	struct clamav_settings settings;

	(void)state;
	snprintf(reply.text, sizeof(reply.text), "Eicar-Test-Signature");
	clamav_result_from_reply(&reply, &result);
	assert_string_equal(result.name, "clamav");
	assert_int_equal(result.status, PIPELINE_RESULT_OK);
	assert_true(result.force_quarantine && result.score == CLAMAV_VIRUS_SCORE);
	assert_string_equal(result.reason, "virus: Eicar-Test-Signature");
	reply.verdict = CLAMD_CLEAN;
	clamav_result_from_reply(&reply, &result);
	assert_true(!result.force_quarantine && result.score == 0);
	assert_string_equal(result.reason, "no virus found");
	reply.verdict = CLAMD_TOO_LARGE;
	clamav_result_from_reply(&reply, &result);
	assert_string_equal(result.reason, "not scanned: larger than clamd's StreamMaxLength");
	clamav_result_too_large(30000000, 26214400, &result);
	assert_int_equal(result.status, PIPELINE_RESULT_OK);
	assert_string_equal(result.reason,
			    "not scanned: 30000000 bytes, over clamd_max_size 26214400");
	free(result.reason);

	filter_settings_set(NULL);
	clamav_settings_load(&settings);
	assert_string_equal(settings.socket, CLAMAV_DEFAULT_SOCKET);
	assert_int_equal(settings.timeout_seconds, CLAMAV_DEFAULT_TIMEOUT);
	assert_int_equal(settings.max_size, CLAMAV_DEFAULT_MAX_SIZE);
	filter_settings_set("clamd_socket 127.0.0.1:3310\nclamd_timeout 5\nclamd_retry 2\n"
			    "clamd_max_size 1000\nclamd_max_connections lots\n");
	clamav_settings_load(&settings);
	assert_string_equal(settings.socket, "127.0.0.1:3310");
	assert_int_equal(settings.timeout_seconds, 5);
	assert_int_equal(settings.retry_seconds, 2);
	assert_int_equal(settings.max_size, 1000);
	assert_int_equal(settings.max_connections, CLAMAV_DEFAULT_MAX_CONNECTIONS);
	/* The wait doubles, up to CLAMAV_RETRY_GROWTH_MAX times the first. */
	assert_int_equal(clamav_retry_delay(&settings, 1), 2);
	assert_int_equal(clamav_retry_delay(&settings, 2), 4);
	assert_int_equal(clamav_retry_delay(&settings, 5), 32);
	assert_int_equal(clamav_retry_delay(&settings, 6), 32);
	assert_int_equal(clamav_retry_delay(&settings, 1000), 32);
	filter_settings_set(NULL);
}

/* A virus quarantines whatever the score (an allow-list entry's -100 does
 * not let it through), unless the profile gives clamav weight 0. */
static void test_virus_quarantines(void **state)
{
	struct filter_profile profile = {
	    .filters = {{.name = "clamav", .weight = 1}, {.name = "senders", .weight = 1}},
	    .filter_count = 2,
	    .tag_at = 5,
	    .quarantine_at = 10,
	};
	struct pipeline_result results[2] = {
	    {.name = "clamav",
	     .status = PIPELINE_RESULT_OK,
	     .score = CLAMAV_VIRUS_SCORE,
	     .reason = "virus: X",
	     .force_quarantine = true},
	    {.name = "senders", .status = PIPELINE_RESULT_OK, .score = -100},
	};
	struct verdict_decision decision;

	(void)state;
	assert_true(clamav_profile_runs(&profile));
	assert_false(clamav_profile_runs(NULL));
	verdict_combine(&profile, results, 2, true, &decision);
	assert_int_equal(decision.action, VERDICT_QUARANTINE);
	assert_true(decision.score == 0);
	assert_non_null(strstr(decision.explanation, "clamav\t100.000\t1.000\tvirus: X\n"));
	verdict_decision_clear(&decision);
	profile.filters[0].weight = 0;
	verdict_combine(&profile, results, 2, true, &decision);
	assert_int_equal(decision.action, VERDICT_DELIVER);
	verdict_decision_clear(&decision);
	/* A failed scan forces nothing (the daemon never gets that far). */
	profile.filters[0].weight = 1;
	results[0].status = PIPELINE_RESULT_FAILED;
	verdict_combine(&profile, results, 2, true, &decision);
	assert_int_equal(decision.action, VERDICT_DELIVER);
	verdict_decision_clear(&decision);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_chunk_header),
	    cmocka_unit_test(test_reply_table),
	    cmocka_unit_test(test_reply_byte_by_byte),
	    cmocka_unit_test(test_reply_overlong),
	    cmocka_unit_test(test_address),
	    cmocka_unit_test(test_config_refuses_bad_socket),
	    cmocka_unit_test(test_scan_stream_bytes),
	    cmocka_unit_test(test_scan_faults),
	    cmocka_unit_test(test_real_clamd),
	    cmocka_unit_test(test_results_and_settings),
	    cmocka_unit_test(test_virus_quarantines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
