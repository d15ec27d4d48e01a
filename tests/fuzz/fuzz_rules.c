/*
 * fuzz_rules.c — libFuzzer target for the content rules (filters/rules.c):
 * the patterns and word lists run over hostile messages in the worker, and
 * the rules file parser reads the administrator's text.
 *
 * An input whose first byte is even is a message, judged by the default set
 * with rules of every target over it; an odd one is a rules text, loaded
 * (and, if accepted, used on a fixed message). Beyond the sanitizers it
 * checks and aborts on a violation: the reason is a valid result reason
 * (printable ASCII, at most PROTO_REASON_MAX) and the score is finite.
 *
 * Owns: the set loaded for the first kind, kept for the run.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/mime.h"
#include "filters/rules.h"
#include "pipeline/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_rules_text[] =
    "rule F_HEADERS 1 headers /^X-[a-z]+:/mi any X- field\n"
    "rule F_RAW 1 raw !/\\A(?:[^\\r\\n]+\\r?\\n)*?Date:/ no date\n"
    "rule F_URI 1 uri /\\.(?:ru|cn)\\b/ far links\n"
    "rule F_SLOW 1 body /(?:\\w+\\s?)+!$/ backtracks\n"
    "words F_WORDS 2 words\n"
    "word F_WORDS 1 free money\n"
    "word F_WORDS -1 meeting\n";

static const char fuzz_message[] = "From: a@example.org\nSubject: FREE MONEY!!!\n\n"
				   "Visit http://example.ru/ for free money, meeting at 10\n";

static void fuzz_judge(const struct rules_set *set, const char *message, size_t len)
{
	struct rules_verdict verdict = {0};

	rules_judge(set, message, len, NULL, &verdict);
	if (!proto_reason_valid(verdict.reason, strlen(verdict.reason)) || !isfinite(verdict.score))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rules_set *set;
	char err[512];

	if (size == 0)
		return 0;
	if (set == NULL && rules_set_load(fuzz_rules_text, strlen(fuzz_rules_text), "fuzz", &set,
					  err, sizeof(err)) < 0)
		abort();
	if (data[0] % 2 == 0) {
		fuzz_judge(set, (const char *)data + 1, size - 1);
	} else {
		struct rules_set *loaded;

		if (rules_set_load((const char *)data + 1, size - 1, "fuzz", &loaded, err,
				   sizeof(err)) == 0) {
			fuzz_judge(loaded, fuzz_message, sizeof(fuzz_message) - 1);
			rules_set_free(loaded);
		} else if (strstr(err, "fuzz") == NULL) {
			abort();
		}
	}
	return 0;
}
