#!/usr/bin/env bash
# ThreadSanitizer run of the threaded tests: collectives, trainer, data parallelism, faults.
# Builds a clone of this checkout with ./configure --enable-tsan (an out-of-tree build needs an
# unconfigured source folder) and runs each test with tests/tsan.supp, which silences PoCL,
# LLVM, CLBlast and the OpenCL loader only. Any report from our code fails the run.
#   tests/tsan.sh [TEST...]     (default: test_collective test_trainer test_data_parallel test_faults)
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(test_collective test_trainer test_data_parallel test_faults)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$src" ls-files -z --cached --others --exclude-standard | (cd "$src" && xargs -0 cp --parents -t "$work" 2>/dev/null)
cd "$work" || exit 1
if ! (autoreconf -fi >/dev/null 2>&1 && ./configure -q --enable-tsan --enable-werror >/dev/null &&
      make -j"$(nproc)" >/dev/null 2>&1 &&
      make -j"$(nproc)" $(printf 'tests/%s ' "${tests[@]}") >/dev/null 2>&1); then
    echo "tsan: the ThreadSanitizer build failed"
    exit 1
fi
export POCL_DEVICES="${POCL_DEVICES:-basic basic basic}"
export TSAN_OPTIONS="suppressions=$src/tests/tsan.supp halt_on_error=0 report_signal_unsafe=0 ${TSAN_OPTIONS:-}"
export CLT_TEST_SRCDIR="$src"
# GCC 12's ThreadSanitizer miscomputes the bounds of a dynamic TLS block that clang, loaded by
# PoCL, asks for from a worker thread (__tls_get_addr), then fails to map shadow for it
# ("ThreadSanitizer failed to allocate 0x1ec01d1b98000 bytes at address 100000049000", exit 66,
# in the middle of test_data_parallel). intercept_tls_get_addr=0 leaves dynamic TLS alone: only
# libraries loaded with dlopen have any (the OpenCL implementations, suppressed above anyway);
# cltrain's own TLS is static. Address-space randomisation goes off where setarch can turn it
# off, so that a run's mappings, and a failure like that one, are the same every time.
export TSAN_OPTIONS="intercept_tls_get_addr=0 $TSAN_OPTIONS"
norandom=()
setarch "$(uname -m)" -R true 2>/dev/null && norandom=(setarch "$(uname -m)" -R)
failed=0
for t in "${tests[@]}"; do
    start=$(date +%s)
    "${norandom[@]}" "tests/$t" > "$t.out" 2> "$t.err"
    rc=$?
    reports=$(grep -c '^WARNING: ThreadSanitizer' "$t.err")
    points=$(grep -c '^ok ' "$t.out")
    bad=$(grep -c '^not ok ' "$t.out")
    echo "tsan: $t: exit $rc, $points ok, $bad not ok, $reports ThreadSanitizer report(s), $(( $(date +%s) - start )) s"
    if [ "$reports" -gt 0 ] || [ "$rc" -ne 0 ]; then
        failed=1
        grep "^SUMMARY: ThreadSanitizer" "$t.err" | sort | uniq -c | sort -rn | head -20
        grep -A24 "^WARNING: ThreadSanitizer" "$t.err" | head -60
        [ "$rc" -ne 0 ] && [ "$reports" -eq 0 ] && tail -n 15 "$t.err"
    fi
done
[ "$failed" -eq 0 ] && echo "tsan: clean"
exit "$failed"
