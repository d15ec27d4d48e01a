#!/bin/sh
# Runs each libFuzzer target for SECONDS under ASan/UBSan, from its seed corpus
# in tests/fuzz/corpus/NAME (copied, so the tree is not changed), as many at
# once as there are cores (or $JOBS), then prints each target's result in order and one
# closing count line.
seconds=$1; shift
jobs=${JOBS:-$(nproc 2>/dev/null || echo 1)}

# Runs target $1 and leaves "ok" or "FAILED" in build/fuzz/NAME.status.
fuzz_one() {
	name=$(basename "$1")
	work=$(mktemp -d)
	[ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
	if "$1" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="build/fuzz/$name-" "$work" > "build/fuzz/$name.log" 2>&1; then
		echo ok > "build/fuzz/$name.status"
	else
		echo FAILED > "build/fuzz/$name.status"
	fi
	rm -rf "$work"
}

running=0
for t in "$@"; do
	fuzz_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait
		running=0
	fi
done
wait

passed=0 failed=0
for t in "$@"; do
	name=$(basename "$t")
	if [ "$(cat "build/fuzz/$name.status" 2>/dev/null)" = ok ]; then
		passed=$((passed + 1))
		echo "fuzz $name: ok ($(grep -o 'Done [0-9]* runs' "build/fuzz/$name.log" | tail -n 1))"
	else
		failed=$((failed + 1))
		echo "fuzz $name: FAILED"; tail -n 40 "build/fuzz/$name.log"
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
