#!/bin/sh
# Runs each cmocka test binary given, then prints one closing count line.
passed=0 failed=0
for t in "$@"; do
	out=$("$t" 2>&1); rc=$?
	printf '%s\n' "$out"
	p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	# A binary that crashed (a sanitizer report, say) counts as one failure.
	if [ $rc -ne 0 ] && [ -z "$f" ]; then failed=$((failed + 1)); echo "$t exited $rc"; fi
done
echo "unit: $passed passed, $failed failed"
[ $failed -eq 0 ]
