#!/usr/bin/env bash
# test.sh - set up, build and run the whole IPC-Direct test suite.
#
#   1. release build (-Werror): every test (unit, stress, fault, integration, and
#      rdma: two QEMU guests with Soft-RoCE, tests/rdma/, run alone, a few minutes)
#   2. ASan+UBSan build: unit, fault and preload tests (ipcd-run preloads the ASan runtime)
#   3. TSan build: unit tests (thread variants of the stress engine included)
#   4. fuzz: scripts/fuzz.sh, clang/libFuzzer build in build/fuzz: every target of
#      tests/fuzz replays its corpus, then fuzzes for IPCD_FUZZ_SECONDS (default 30;
#      about 5 minutes for the stage); a crash, leak or timeout fails the suite
#   5. the benchmarks in --quick mode, as smoke tests (never gate on speed), and the
#      one-minute soak (bench/soak: fails on data errors, hangs or growth)
#
# Environment: IPCD_TEST_FLAVOURS="release asan tsan fuzz" to choose stages.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/setup.sh" build test rdma fuzz

flavours=${IPCD_TEST_FLAVOURS:-release asan tsan fuzz}
jobs=$(nproc)
status=0

run_ctest() {	# dir, ctest args...
	local dir=$1; shift
	ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$jobs" "$@" || status=1
}

for f in $flavours; do
	if [[ $f == fuzz ]]; then
		continue	# after the sanitizer builds, below
	fi
	echo "=== build: $f"
	"$top/scripts/build.sh" "$f"
	echo "=== tests: $f"
	case $f in
	release) run_ctest build/release ;;
	asan)    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		 run_ctest build/asan -L 'unit|fault|preload' ;;
	# TSan's shadow layout needs a fixed address space on recent kernels.
	tsan)    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		 setarch "$(uname -m)" -R ctest --test-dir build/tsan --output-on-failure \
		 --no-tests=error -j "$jobs" -L unit || status=1 ;;
	esac
done

if [[ " $flavours " == *" fuzz "* ]]; then
	echo "=== fuzz (tests/fuzz, scripts/fuzz.sh)"
	"$top/scripts/fuzz.sh" || status=1
fi

if [[ " $flavours " == *" release "* ]]; then
	echo "=== benchmark smoke (numbers are not checked)"
	./build/release/bench/ipcd-bench-queues --quick --json build/release/bench-queues-quick.json \
		|| status=1
	./build/release/bench/ipcd-bench-modes --quick --no-plot \
		--json build/release/bench-modes-quick.json || status=1
	# Fails (exit 1) if a transport fails or ipcd connections were not accelerated.
	./build/release/bench/ipcd-bench-sock --quick \
		--json build/release/bench-sock-quick.json || status=1
	# The soak's one-minute form (docs/reliability.md): data errors, hangs, or
	# memory, fds or monitor objects that grow or do not go back to idle fail it.
	./build/release/bench/ipcd-soak --quick --json build/release/soak-quick.json || status=1
fi
exit $status
