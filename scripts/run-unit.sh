#!/bin/sh
# Runs each cmocka test binary given, JOBS at a time, then prints each one's
# output whole, in the order given, and one closing count line.
#   scripts/run-unit.sh JOBS BINARY...
jobs=$1; shift
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
i=0
for t in "$@"; do
	i=$((i + 1))
	printf '%s %s\n' "$i" "$t"
done | xargs -P "$jobs" -L 1 sh -c '"$2" > "$0/$1.out" 2>&1; echo $? > "$0/$1.rc"' "$dir"

passed=0 failed=0 i=0
for t in "$@"; do
	i=$((i + 1))
	out=$(cat "$dir/$i.out")
	rc=$(cat "$dir/$i.rc" 2>/dev/null || echo 127)
	printf '%s\n' "$out"
	p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	# A binary that crashed (a sanitizer report, say) counts as one failure.
	if [ "$rc" -ne 0 ] && [ -z "$f" ]; then failed=$((failed + 1)); echo "$t exited $rc"; fi
done
echo "unit: $passed passed, $failed failed"
[ $failed -eq 0 ]
