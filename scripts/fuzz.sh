#!/usr/bin/env bash
# fuzz.sh - build the libFuzzer targets (tests/fuzz) and run each for a bounded time.
#
# Usage: scripts/fuzz.sh [--merge] [TARGET...]     (default: every fuzz_* target)
#
# For each target:
#   1. replay: every input of tests/fuzz/corpus/<target>/ once (the regression test:
#      seeds, past findings, reproducers of fixed bugs);
#   2. fuzz for IPCD_FUZZ_SECONDS (default 30) from a copy of that corpus in
#      build/fuzz/work/<target>/ (the repository's corpus is never written), with
#      -timeout=5 per input and -rss_limit_mb=2048.
# Any crash, sanitizer report, leak, timeout or out-of-memory fails the run (exit 1);
# its reproducer is kept in build/fuzz/artifacts/<target>/ and its path printed.
#
#   --merge   after fuzzing, minimise what the runs found into tests/fuzz/corpus/<target>/
#             (libFuzzer -merge=1 adds only inputs with new coverage); review and commit.
#
# Environment: IPCD_FUZZ_SECONDS per target (default 30). IPCD_FUZZ_LOG=1 when
# reproducing shows the code's own log lines (and the fixture's requests and answers).
# Build: clang with -fsanitize=fuzzer,address,undefined, in build/fuzz (-DIPCD_FUZZ=ON).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

merge=0
targets=()
for a in "$@"; do
	case $a in
	--merge) merge=1 ;;
	-h|--help) sed -n '2,22p' "$0"; exit 0 ;;
	fuzz_*) targets+=("$a") ;;
	*) echo "fuzz.sh: unknown argument '$a' (--merge, fuzz_<name>)" >&2; exit 2 ;;
	esac
done
secs=${IPCD_FUZZ_SECONDS:-30}
[[ $secs =~ ^[0-9]+$ ]] || { echo "fuzz.sh: IPCD_FUZZ_SECONDS must be a number" >&2; exit 2; }

"$top/scripts/setup.sh" build fuzz

bdir=$top/build/fuzz
echo "=== fuzz: build ($bdir)"
cmake -S "$top" -B "$bdir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DIPCD_FUZZ=ON -DIPCD_BUILD_TESTS=OFF -DIPCD_BUILD_BENCH=OFF >/dev/null
cmake --build "$bdir" --target ipcd_fuzz -j 2 >/dev/null

if [[ ${#targets[@]} -eq 0 ]]; then
	for f in "$top"/tests/fuzz/fuzz_*.c; do
		targets+=("$(basename "$f" .c)")
	done
fi

# Symbolized stacks in reports; every UBSan finding is fatal (built with -fno-sanitize-recover).
sym=/usr/lib/llvm-14/bin/llvm-symbolizer
[[ -x $sym ]] && export ASAN_SYMBOLIZER_PATH=$sym
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
flags=(-timeout=5 -rss_limit_mb=2048)

status=0
summary=()
for t in "${targets[@]}"; do
	bin=$bdir/tests/fuzz/$t
	seeds=$top/tests/fuzz/corpus/$t
	work=$bdir/work/$t
	art=$bdir/artifacts/$t
	if [[ ! -x $bin ]]; then
		echo "fuzz.sh: no target $t" >&2
		exit 2
	fi
	rm -rf "$work"
	mkdir -p "$work/corpus" "$art" "$seeds"
	cp -r "$seeds/." "$work/corpus/"

	echo "=== fuzz: $t: replay of $(find "$seeds" -type f | wc -l) corpus inputs"
	mapfile -t inputs < <(find "$seeds" -type f | sort)
	if [[ ${#inputs[@]} -gt 0 ]] &&
	   ! timeout 600 "$bin" "${flags[@]}" -artifact_prefix="$art/" "${inputs[@]}" \
		>"$work/replay.log" 2>&1; then
		echo "fuzz.sh: $t: FAILED on its own corpus (a regression):" >&2
		tail -n 40 "$work/replay.log" >&2
		status=1
		summary+=("$t: regression (log $work/replay.log)")
		continue
	fi

	echo "=== fuzz: $t: ${secs} s"
	if ! timeout $((secs + 120)) "$bin" "${flags[@]}" -max_total_time="$secs" \
		-artifact_prefix="$art/" -print_final_stats=1 "$work/corpus" >"$work/fuzz.log" 2>&1; then
		echo "fuzz.sh: $t: FAILED:" >&2
		grep -E "ERROR|SUMMARY|runtime error|invariant broken|ALARM|Test unit written" \
			"$work/fuzz.log" | head -n 20 >&2 || true
		for r in $(grep -o "Test unit written to .*" "$work/fuzz.log" | sed 's/Test unit written to //'); do
			echo "fuzz.sh: reproducer: $r" >&2
			echo "fuzz.sh:   replay: $bin $r   (IPCD_FUZZ_LOG=1 for the log)" >&2
		done
		echo "fuzz.sh: full log: $work/fuzz.log" >&2
		status=1
		summary+=("$t: FAILED (log $work/fuzz.log)")
		continue
	fi
	done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$work/fuzz.log" | tail -n 1 || true)
	echo "$t: ${done_line:-no DONE line}"
	summary+=("$t: ok: ${done_line#*DONE }")

	if [[ $merge -eq 1 ]]; then
		before=$(find "$seeds" -type f | wc -l)
		timeout $((secs + 300)) "$bin" "${flags[@]}" -merge=1 "$seeds" "$work/corpus" \
			>"$work/merge.log" 2>&1 || { echo "fuzz.sh: $t: merge failed" >&2; status=1; }
		echo "$t: merged: $before -> $(find "$seeds" -type f | wc -l) inputs in $seeds"
	fi
done

echo "=== fuzz: summary (cov: edges covered, ft: features; corpus in build/fuzz/work)"
printf '  %s\n' "${summary[@]}"
exit $status
