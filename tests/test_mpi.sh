#!/bin/sh
# The MPI tests (TAP): each MPI test program under mpirun with 2 and 3 processes and a few
# PoCL devices each, the collectives both through shared memory and through MPI's messages (the machine may have 2 cores: --oversubscribe), its test points renumbered
# into one plan and prefixed with the configuration. A program that dies, or prints fewer test
# points than its plan, fails. Run from the build folder (make check does); MPIRUN names mpirun.
MPIRUN=${MPIRUN:-mpirun}
n=0
fails=0
lines=""

# run LABEL NP DEVICES PROGRAM [ARGS...]
run() {
    label=$1 np=$2 devices=$3
    shift 3
    out=$(POCL_DEVICES="$devices" timeout 600 "$MPIRUN" $root --oversubscribe -np "$np" "$@" 2>"$tmp/err")
    rc=$?
    plan=$(printf '%s\n' "$out" | sed -n 's/^1\.\.\([0-9]*\).*/\1/p' | head -n1)
    if printf '%s\n' "$out" | grep -q '^1\.\.0 # SKIP'; then
        n=$((n + 1)); lines="$lines
ok $n - $label # SKIP $(printf '%s\n' "$out" | sed -n 's/^1\.\.0 # SKIP //p')"
        return
    fi
    got=0
    while IFS= read -r line; do
        case "$line" in
            "ok "*|"not ok "*)
                got=$((got + 1)); n=$((n + 1))
                verdict=${line%% [0-9]*}
                desc=$(printf '%s\n' "$line" | sed 's/^\(not \)\{0,1\}ok [0-9]* - //')
                [ "$verdict" = "not ok" ] && fails=$((fails + 1))
                lines="$lines
$verdict $n - $label: $desc" ;;
            "#"*) lines="$lines
$line" ;;
        esac
    done <<EOT
$out
EOT
    n=$((n + 1))
    if [ "$rc" -eq 0 ] && [ -n "$plan" ] && [ "$got" -eq "$plan" ]; then
        lines="$lines
ok $n - $label: exits 0 with all $plan planned test points"
    else
        fails=$((fails + 1))
        lines="$lines
not ok $n - $label: exit status $rc, $got of ${plan:-?} planned test points
$(sed 's/^/# /' "$tmp/err" | head -n 30)"
    fi
}

if ! command -v "$MPIRUN" >/dev/null 2>&1; then
    echo "1..0 # SKIP no mpirun"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cltrain-mpi.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
root=
[ "$(id -u)" -eq 0 ] && root=--allow-run-as-root
# Containers often forbid the cross-process reads (ptrace scope) that Open MPI's shared-memory
# transport tries first; plain copies work everywhere.
OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism-none}
export OMPI_MCA_btl_vader_single_copy_mechanism

run "mpi_collective np 2 x 2 devices" 2 "basic basic" tests/mpi_collective
run "mpi_collective np 3 x 1 device" 3 "basic" tests/mpi_collective
run "mpi_collective thread level, np 2" 2 "basic" tests/mpi_collective --thread-level
# the cross-process step by MPI's messages rather than the shared window (one node here)
export CLT_MPI_SHM=0
run "mpi_collective np 3 x 1 device, CLT_MPI_SHM=0" 3 "basic" tests/mpi_collective
unset CLT_MPI_SHM
run "mpi_data_parallel np 2 x 1 device" 2 "basic" tests/mpi_data_parallel
run "mpi_data_parallel np 3 x 1 device" 3 "basic" tests/mpi_data_parallel
run "mpi_data_parallel np 2 x 2 devices" 2 "basic basic" tests/mpi_data_parallel

echo "1..$n"
printf '%s\n' "$lines" | sed '/^$/d'
exit 0
