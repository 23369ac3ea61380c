#!/usr/bin/env bash
# The suite across OpenCL implementations (docs/TESTING.md), after a build in this tree:
#   mixed     the multi-device tests with their devices spanning PoCL and Mesa's rusticl (its own
#             compiler, and queues that run concurrently as a GPU's do)
#   three     tests/test_vendors and the collectives on PoCL + Oclgrind + rusticl in one process
#   oclgrind  the single-device kernel tests on Oclgrind with its checks on (out-of-bounds
#             accesses, data races, API misuse): any diagnostic fails the stage
# Usage: tests/vendors.sh [mixed] [three] [oclgrind]   (no argument: all three)
# CLT_OCLGRIND_TESTS names the oclgrind stage's tests (default below).
# Each test writes tests/vendors-STAGE.log; the counts go to tests/vendors-STAGES.sum as
# "# NAME PASS: N" and "# NAME FAIL: N" lines, which .ci/run adds up. Two invocations with other
# stages may run at once. Exit status 1 when a stage fails.
set -uo pipefail
cd "$(dirname "$0")/.."
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(mixed three oclgrind)

# A private vendors folder per set of implementations (OCL_ICD_VENDORS), leaving the system's
# list alone; Debian's oclgrind ships its ICD library but no .icd entry.
vend=$(mktemp -d)
trap 'rm -rf "$vend"' EXIT
icd_pocl=/etc/OpenCL/vendors/pocl.icd
icd_rusticl=/etc/OpenCL/vendors/rusticl.icd
lib_oclgrind=$(ls /usr/lib/oclgrind/liboclgrind-rt-icd.so /usr/lib/*/oclgrind/liboclgrind-rt-icd.so 2>/dev/null | head -n1)
missing=
[ -f "$icd_pocl" ] || missing+=" pocl-opencl-icd"
[ -f "$icd_rusticl" ] || missing+=" mesa-opencl-icd"
[ -n "$lib_oclgrind" ] || missing+=" oclgrind"
if [ -n "$missing" ]; then
    echo "vendors: missing:$missing (apt-get install them; .ci/run does)" >&2
    exit 1
fi
mkdir -p "$vend/mixed" "$vend/three" "$vend/oclgrind"
cp "$icd_pocl" "$icd_rusticl" "$vend/mixed/"
cp "$icd_pocl" "$icd_rusticl" "$vend/three/"
echo "$lib_oclgrind" > "$vend/three/oclgrind.icd"
echo "$lib_oclgrind" > "$vend/oclgrind/oclgrind.icd"
export RUSTICL_ENABLE=llvmpipe CLT_TEST_SRCDIR=$PWD
export CLT_CACHE_DIR=${CLT_CACHE_DIR-$PWD/tests/cache}

# The single-device kernel tests (Oclgrind interprets every kernel: minutes, not seconds).
oclgrind_tests=${CLT_OCLGRIND_TESTS-test_layers test_blas test_model test_trainer}

summary=tests/vendors-$(IFS=-; echo "${stages[*]}").sum
: > "$summary"
failed=0

# Runs the TAP programs given, each once, under the current environment; counts its points.
run_tap() {
    local stage=$1 log=tests/vendors-$1.log
    shift
    : > "$log"
    local pass=0 fail=0 t times=
    for t in "$@"; do
        local out rc t0=$SECONDS
        out=$(timeout 2400 "tests/$t" 2>&1)
        rc=$?
        echo "== $t ($((SECONDS - t0)) s)" >> "$log"
        times+=" $t $((SECONDS - t0)) s,"
        printf '%s\n' "$out" >> "$log"
        local p f planned
        p=$(printf '%s\n' "$out" | grep -c '^ok ')
        f=$(printf '%s\n' "$out" | grep -c '^not ok ')
        planned=$(printf '%s\n' "$out" | sed -n 's/^1\.\.\([0-9]*\).*/\1/p' | tail -n1)
        if [ "$rc" -ne 0 ] || [ -z "$planned" ] || [ $((p + f)) -ne "${planned:-0}" ]; then
            [ "$f" -gt 0 ] || f=1
            echo "vendors: $stage: tests/$t exited $rc after $((p + f)) of ${planned:-?} points" >> "$log"
        fi
        pass=$((pass + p)) fail=$((fail + f))
        if [ "$f" -gt 0 ]; then
            printf '%s\n' "$out" | grep -E '^not ok' | head -n 10 | sed "s|^|vendors: $stage: $t: |"
            tail -n1 "$log" | grep '^vendors:'
        fi
    done
    echo "# $stage PASS: $pass" >> "$summary"
    echo "# $stage FAIL: $fail" >> "$summary"
    echo "vendors: $stage: $pass passed, $fail failed ($log):${times%,}"
    [ "$fail" -eq 0 ] || failed=1
    [ "$fail" -eq 0 ]
}

for stage in "${stages[@]}"; do
    start=$(date +%s)
    case "$stage" in
    mixed)
        # Two PoCL devices and rusticl's: every test's devices span both implementations. In
        # two lanes at once: test_data_parallel is half the stage's time, much of it rusticl
        # compiling the kernel variants of new split shapes on one thread, which leaves a core
        # to the other lane (and to the oclgrind stage, which .ci/run runs beside this one).
        export OCL_ICD_VENDORS=$vend/mixed POCL_DEVICES="basic basic" CLT_TEST_DEVICES=all
        run_tap mixed-dp test_data_parallel > "$vend/lane.out" 2>&1 &
        lane=$!
        run_tap mixed test_collective test_pipeline test_tensor_parallel test_tensor_pipeline \
            test_faults test_checkpoint test_trace test_runtime test_vendors test_weight_decay
        wait "$lane" || failed=1
        cat "$vend/lane.out"
        unset OCL_ICD_VENDORS POCL_DEVICES CLT_TEST_DEVICES
        ;;
    three)
        # Oclgrind allows one device per process: the specs repeat PoCL's, never Oclgrind's.
        OCL_ICD_VENDORS=$vend/three POCL_DEVICES=basic CLT_TEST_DEVICES=oclgrind,pocl,rusticl \
            run_tap three test_vendors
        ;;
    oclgrind)
        # Kernel checks: the cltrain kernel binary cache off, so a report names the source line.
        # Each process writes its own diagnostics file (Oclgrind truncates the one it opens).
        diag_dir=$(mktemp -d)
        # First the check itself: a copy of the kernels with an out-of-bounds write planted in
        # the activations' forward must be reported (CLT_KERNEL_DIR loads kernels from there).
        mkdir "$diag_dir/planted"
        cp cl/*.cl "$diag_dir/planted/"
        sed -i 's|^    y\[yo + i\] = r;|    y[yo + i] = r;\n    if (i == n - 1) y[yo + n + (1u << 20)] = r;|' \
            "$diag_dir/planted/activation.cl"
        OCL_ICD_VENDORS=$vend/oclgrind CLT_TEST_DEVICES=all CLT_KERNEL_CACHE=0 \
            CLT_KERNEL_DIR=$diag_dir/planted OCLGRIND_LOG=$diag_dir/planted.log \
            timeout 600 tests/test_layers > /dev/null 2>&1
        if grep -q "Invalid write" "$diag_dir/planted.log" 2>/dev/null; then
            echo "vendors: oclgrind: a planted out-of-bounds write is reported"
            echo "# oclgrind-planted PASS: 1" >> "$summary"
        else
            echo "vendors: oclgrind: a planted out-of-bounds write went unreported: the check is off"
            echo "# oclgrind-planted FAIL: 1" >> "$summary"
            failed=1
        fi
        for t in $oclgrind_tests; do
            OCL_ICD_VENDORS=$vend/oclgrind CLT_TEST_DEVICES=all CLT_KERNEL_CACHE=0 \
                OCLGRIND_CHECK_API=1 OCLGRIND_DATA_RACES=1 OCLGRIND_LOG=$diag_dir/$t.log \
                run_tap "oclgrind-$t" "$t"
            if [ -s "$diag_dir/$t.log" ]; then
                echo "vendors: oclgrind reported $(grep -c . "$diag_dir/$t.log") line(s) in tests/$t:"
                head -n 30 "$diag_dir/$t.log"
                cat "$diag_dir/$t.log" >> "tests/vendors-oclgrind-$t.log"
                echo "# oclgrind-diagnostics FAIL: 1" >> "$summary"
                failed=1
            fi
        done
        rm -rf "$diag_dir"
        ;;
    *)
        echo "usage: tests/vendors.sh [mixed] [three] [oclgrind]" >&2
        exit 2
        ;;
    esac
    echo "vendors: $stage took $(( $(date +%s) - start )) s"
done
exit "$failed"
