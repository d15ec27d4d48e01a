#!/bin/sh
# Runs each libFuzzer target for SECONDS under ASan/UBSan, from its seed corpus
# in tests/fuzz/corpus/NAME (copied, so the tree is not changed), then prints
# one closing count line.
seconds=$1; shift
passed=0 failed=0
for t in "$@"; do
	name=$(basename "$t")
	work=$(mktemp -d)
	[ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
	if "$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="build/fuzz/$name-" "$work" > "build/fuzz/$name.log" 2>&1; then
		passed=$((passed + 1))
		echo "fuzz $name: ok ($(grep -o 'Done [0-9]* runs' "build/fuzz/$name.log" | tail -n 1))"
	else
		failed=$((failed + 1))
		echo "fuzz $name: FAILED"; tail -n 40 "build/fuzz/$name.log"
	fi
	rm -rf "$work"
done
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
