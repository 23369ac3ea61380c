#!/usr/bin/env bash
# Valgrind memcheck of core tests: no leak (definitely or indirectly lost) and no memory error.
# tests/valgrind.supp suppresses no leak, only a false positive in the dynamic loader. Slow (the
# kernels run under valgrind: 1 to 2 minutes per test here, the seed-MLP tests far longer), so
# CI does not run it; run it by hand after `make check`:
#   tests/valgrind.sh [TEST...]     (default: test_runtime test_checkpoint test_faults)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(test_runtime test_checkpoint test_faults)
command -v valgrind >/dev/null || { echo "valgrind: not installed (Debian: apt-get install valgrind)"; exit 1; }
export POCL_DEVICES="${POCL_DEVICES:-basic basic basic}"
export CLT_TEST_SRCDIR="${CLT_TEST_SRCDIR:-$PWD}"
failed=0
for t in "${tests[@]}"; do
    [ -x "tests/$t" ] || { echo "valgrind: tests/$t is not built (make check first)"; failed=1; continue; }
    start=$(date +%s)
    valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
        --suppressions=tests/valgrind.supp --num-callers=40 --error-exitcode=3 \
        "tests/$t" > "tests/$t.valgrind.out" 2> "tests/$t.valgrind.log"
    rc=$?
    lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "tests/$t.valgrind.log" | tail -1)
    ind=$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' "tests/$t.valgrind.log" | tail -1)
    errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "tests/$t.valgrind.log" | tail -1)
    bad=$(grep -c '^not ok ' "tests/$t.valgrind.out")
    echo "valgrind: $t: exit $rc, definitely lost ${lost:-0} bytes, indirectly lost ${ind:-0} bytes," \
         "${errs:-?} error(s), $bad failed check(s), $(( $(date +%s) - start )) s (tests/$t.valgrind.log)"
    [ "$rc" -eq 0 ] || failed=1
done
[ "$failed" -eq 0 ] && echo "valgrind: clean"
exit "$failed"
