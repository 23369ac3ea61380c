#!/bin/sh
# The cltrain command as a user runs it (TAP): `train --metrics --plot` writes a CSV with the
# promised columns and an SVG that is well-formed XML with two panels and their series; the
# progress line shows the running accuracy; `info` lists the words that select each device and
# reports a bad spec on stderr; `info --json` and `bench train --json` emit JSON;
# `tune` writes its cache record and `bench gemm --json` reports every seed-MLP GEMM; every
# command's --help and exit statuses, --opt=value, refused values, `train --parallel model` and
# --verify-replicas, and a man page that covers every option.
# Trains on /usr/share/datasets/fashion-mnist when it is there, else on the generated fallback,
# and once more on a small IDX set written here (--data). Skips only without an OpenCL device.
# Run from the build folder (make check does); CLTRAIN names another binary.

CLTRAIN=${CLTRAIN:-./tools/cltrain}
n=0
fails=0
ok() {   # ok COND-STATUS DESCRIPTION
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi
}
skip() {
    n=$((n + 1))
    echo "ok $n - $1 # SKIP $2"
}
# run_ok DESCRIPTION OUT COMMAND...: runs it, stdout to OUT and stderr to OUT.err; one test
# point on its exit status, with its stderr as diagnostics when it fails.
run_ok() {
    what=$1 out=$2
    shift 2
    "$@" >"$out" 2>"$out.err"
    rc=$?
    ok $rc "$what"
    if [ $rc -ne 0 ]; then sed 's/^/# /' "$out.err"; fi
}

if ! "$CLTRAIN" info >/dev/null 2>&1; then
    echo "1..0 # SKIP no OpenCL device (cltrain info failed)"
    exit 0
fi
# The devices: CLT_TEST_DEVICES (a device spec, default "all") as concrete P:D entries, as
# tests/devices.h gives them to the C tests; commands without --devices take them through
# CLT_DEVICES. spec_n N: N entries of the selection, cycling through it.
selected=$("$CLTRAIN" info --devices "${CLT_TEST_DEVICES:-all}" 2>&1 | sed -n 's/^device spec .* selects [0-9]* devices*: //p')
if [ -z "$selected" ]; then
    echo "Bail out! CLT_TEST_DEVICES='${CLT_TEST_DEVICES:-all}' selects no device"
    exit 1
fi
spec_n() {
    echo "$selected" | awk -v n="$1" '{ s = ""; for (i = 0; i < n; i++) s = s (i ? "," : "") $(i % NF + 1); print s }'
}
CLT_DEVICES=$(spec_n "$(echo "$selected" | wc -w)")
export CLT_DEVICES
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cltrain-cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
have_py=0
command -v python3 >/dev/null 2>&1 && have_py=1

HEADER="step,epoch,loss,lr,samples_per_s,train_accuracy,test_loss,test_accuracy,train_batch_accuracy"
NUM='^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$'

# check_csv FILE STEPS EPOCHS LABEL: the header, the field count and numbers of every row, the
# per-epoch accuracies in [0, 1] and a batch accuracy on every row.
check_csv() {
    f=$1 steps=$2 epochs=$3 what=$4
    [ "$(head -n 1 "$f")" = "$HEADER" ]
    ok $? "$what: CSV header names the promised columns"
    [ "$(tail -n +2 "$f" | wc -l)" -eq "$steps" ]
    ok $? "$what: one CSV row per step ($steps)"
    tail -n +2 "$f" | awk -F, -v num="$NUM" '
        NF != 9 { bad = 1 }
        { for (i = 1; i <= NF; i++) if ($i != "" && $i !~ num) bad = 1
          for (i = 1; i <= 5; i++) if ($i == "") bad = 1 }
        END { exit bad }'
    ok $? "$what: every row has 9 fields, numbers or empty, step to samples_per_s filled"
    tail -n +2 "$f" | awk -F, -v want="$epochs" '
        $6 != "" { ep++; if ($6 < 0 || $6 > 1 || $8 == "" || $8 < 0 || $8 > 1 || $7 == "") bad = 1 }
        END { exit bad || ep != want }'
    ok $? "$what: $epochs per-epoch rows carry train and test accuracy in [0, 1] and test loss"
    tail -n +2 "$f" | awk -F, '$9 == "" || $9 < 0 || $9 > 1 { bad = 1 } END { exit bad }'
    ok $? "$what: every row carries train_batch_accuracy in [0, 1]"
}

# ---- the command line: help, exit statuses, --opt=value --------------------------------------
# Every command and bench subcommand: -h and --help print its usage on stdout and exit 0; an
# unknown option exits 2 with one line naming it and where the usage is, on stderr only.
commands="info selftest train train_--model_gpt generate export tune version bench bench_dispatch bench_train bench_plan bench_gemm bench_allreduce"
bad=0
for c in "" $commands; do
    words=$(echo "$c" | tr _ ' ')
    for h in -h --help; do
        # shellcheck disable=SC2086  # words is one or two words on purpose
        "$CLTRAIN" $words $h >"$tmp/help.out" 2>"$tmp/help.err"
        rc=$?
        head -n 1 "$tmp/help.out" | grep -q "^usage: cltrain $words" && [ $rc -eq 0 ] && [ ! -s "$tmp/help.err" ] ||
            { echo "# cltrain $words $h: rc $rc, $(head -c 200 "$tmp/help.err")"; bad=1; }
    done
    [ -n "$c" ] || continue
    # shellcheck disable=SC2086
    "$CLTRAIN" $words --no-such-option >"$tmp/unk.out" 2>"$tmp/unk.err"
    rc=$?
    [ $rc -eq 2 ] && [ ! -s "$tmp/unk.out" ] && grep -q "^cltrain $words: unknown option '--no-such-option'" "$tmp/unk.err" &&
        grep -q "^try 'cltrain $words --help'" "$tmp/unk.err" ||
        { echo "# cltrain $words --no-such-option: rc $rc, $(head -c 200 "$tmp/unk.err")"; bad=1; }
done
ok $bad "every command and subcommand: -h/--help on stdout, exit 0; an unknown option on stderr, exit 2"
"$CLTRAIN" help train >"$tmp/help.out" 2>&1 && head -n 1 "$tmp/help.out" | grep -q '^usage: cltrain train ' &&
    "$CLTRAIN" help >"$tmp/help.out" 2>&1 && grep -q '^  bench ' "$tmp/help.out" &&
    "$CLTRAIN" --version | grep -Eq '^cltrain [0-9]+\.[0-9]+'
ok $? "cltrain help, cltrain help train and cltrain --version"
"$CLTRAIN" >/dev/null 2>"$tmp/none.err"
[ $? -eq 2 ] && grep -q '^usage: cltrain COMMAND' "$tmp/none.err"
ok $? "cltrain without a command: the usage on stderr, exit 2"
# refused LABEL PATTERN COMMAND...: exit 2, nothing on stdout, PATTERN on stderr.
refused() {
    what=$1 pattern=$2
    shift 2
    "$@" >"$tmp/ref.out" 2>"$tmp/ref.err"
    rc=$?
    [ $rc -eq 2 ] && [ ! -s "$tmp/ref.out" ] && grep -q -- "$pattern" "$tmp/ref.err"
    ok $? "$what (rc $rc)"
    if [ $rc -ne 2 ]; then head -n 3 "$tmp/ref.out" "$tmp/ref.err" | sed 's/^/# /'; fi
}
refused "train --lr -5 refused, naming --lr" "^cltrain train: --lr takes a number > 0" "$CLTRAIN" train --lr -5
refused "train --lr nan refused" "^cltrain train: --lr takes a number > 0 .*'nan'" "$CLTRAIN" train --lr nan
refused "train --lr=inf refused" "^cltrain train: --lr takes .*'inf'" "$CLTRAIN" train --lr=inf
refused "train --epochs=0 refused" "^cltrain train: --epochs takes an integer in 1\.\." "$CLTRAIN" train --epochs=0
refused "train --batch -1 refused" "^cltrain train: --batch takes an integer in 1\.\.65536, not '-1'" "$CLTRAIN" train --batch -1
refused "train --epochs 2x (trailing junk) refused" "^cltrain train: --epochs .*'2x'" "$CLTRAIN" train --epochs 2x
refused "train --momentum 2 refused" "^cltrain train: --momentum takes a number in 0\.\.1" "$CLTRAIN" train --momentum 2
refused "train --lr with no value: needs a value" "^cltrain train: --lr needs a value" "$CLTRAIN" train --lr
refused "train --json=1: a flag takes no value" "^cltrain train: --json takes no value" "$CLTRAIN" train --json=1
refused "train with a stray argument" "^cltrain train: unexpected argument 'extra'" "$CLTRAIN" train --epochs 1 extra
refused "train --decay nope names the choices" "^cltrain train: --decay takes all or matrices, not 'nope'" \
    "$CLTRAIN" train --decay nope
refused "train --model nope names the models" "^cltrain train: --model takes seed-mlp, deep-mlp, cnn or gpt, not 'nope'" \
    "$CLTRAIN" train --model nope
refused "train --verify-replicas on one device: nothing to compare" "^cltrain train: --verify-replicas compares" \
    "$CLTRAIN" train --verify-replicas
refused "train --placement seed without --parallel model" "^cltrain train: --placement needs --parallel" \
    "$CLTRAIN" train --placement seed
refused "train --parallel model --placement seed --model cnn" "^cltrain train: --placement seed needs --model seed-mlp" \
    "$CLTRAIN" train --parallel model --placement seed --model cnn
refused "tune --budget -1 refused" "^cltrain tune: --budget takes a number in 0\.\.86400" "$CLTRAIN" tune --budget -1
refused "selftest --devices with no value" "^cltrain selftest: --devices needs a value" "$CLTRAIN" selftest --devices
refused "bench train --micro-batches 0 refused" "^cltrain bench train: --micro-batches takes an integer in 1\.\." \
    "$CLTRAIN" bench train --micro-batches 0
refused "bench allreduce --min-bytes 3 refused" "^cltrain bench allreduce: --min-bytes takes a size >= 4 " \
    "$CLTRAIN" bench allreduce --min-bytes 3
refused "bench gemm --iters=-2 refused" "^cltrain bench gemm: --iters takes an integer" "$CLTRAIN" bench gemm --iters=-2
refused "bench with an unknown benchmark" "^cltrain bench: unknown benchmark 'nope' (known: dispatch, train, plan, gemm, allreduce)" \
    "$CLTRAIN" bench nope
# --opt=value is --opt value: the same run, to the bit (the same test loss and accuracy).
run_ok "cltrain train --epochs=1 --batch=64 --limit=512 --json exits 0" "$tmp/eq1.txt" \
    "$CLTRAIN" train --epochs=1 --batch=64 --limit=512 --lr=0.002 --json
run_ok "cltrain train --epochs 1 --batch 64 --limit 512 --json exits 0" "$tmp/eq2.txt" \
    "$CLTRAIN" train --epochs 1 --batch 64 --limit 512 --lr 0.002 --json
results() { sed -n 's/.*"test_accuracy":\([0-9.]*\),"test_loss":\([0-9.]*\).*/\1 \2/p' "$1"; }
[ -n "$(results "$tmp/eq1.txt")" ] && [ "$(results "$tmp/eq1.txt")" = "$(results "$tmp/eq2.txt")" ] &&
    grep -q 'adam lr 0.002, cosine schedule, batch 64, 1 epochs' "$tmp/eq1.txt" &&
    [ "$(grep 'parameters, adam' "$tmp/eq1.txt")" = "$(grep 'parameters, adam' "$tmp/eq2.txt")" ]
ok $? "--opt=value and --opt value give the same run ($(results "$tmp/eq1.txt"))"
run_ok "cltrain train --decay all exits 0" "$tmp/dall.txt" \
    "$CLTRAIN" train --epochs 1 --batch 64 --limit 512 --lr 0.002 --decay all --json
[ -n "$(results "$tmp/dall.txt")" ] && [ "$(results "$tmp/dall.txt")" = "$(results "$tmp/eq2.txt")" ]
ok $? "--decay all is the default run ($(results "$tmp/dall.txt"))"
run_ok "cltrain train --optim adamw --decay matrices exits 0" "$tmp/dmat.txt" \
    "$CLTRAIN" train --epochs 1 --batch 64 --limit 512 --optim adamw --weight-decay 0.5 --decay matrices --json
[ -n "$(results "$tmp/dmat.txt")" ]
ok $? "  ... and reports its test accuracy and loss ($(results "$tmp/dmat.txt"))"

# ---- model parallelism from the command line: the seed's layout, and --verify-replicas ---------
run_ok "cltrain train --parallel model --placement seed on 2 devices exits 0" "$tmp/mp.txt" \
    "$CLTRAIN" train --parallel model --placement seed --devices "$(spec_n 2)" --epochs 1 --limit 512 --batch 64 \
    --lr 0.002 --json
grep -q '^cltrain: seed-mlp, model parallel, on ' "$tmp/mp.txt" &&
    grep -q '^cltrain: a pipeline, seed placement (layers 0\.\.1 on 0, layers 2\.\.5 on 1, layer 6 on 0), 1f1b schedule, 4 micro-batches$' "$tmp/mp.txt" &&
    grep -q '"devices":2,"parallel":"model"' "$tmp/mp.txt"
ok $? "  ... it says what runs: fc1 on 0, fc2-fc3 on 1, fc4 on 0, 1f1b with 4 micro-batches"
# The same update as one device (every schedule accumulates the micro-batches' gradients), within
# atol 1e-3 on the printed test loss, and it learned: below ln(10), the loss of a guess.
awk -v a="$(results "$tmp/mp.txt")" -v b="$(results "$tmp/eq2.txt")" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    d = x[2] - y[2]; if (d < 0) d = -d
    e = x[1] - y[1]; if (e < 0) e = -e
    exit !(x[2] != "" && y[2] != "" && d <= 1e-3 && e <= 0.005 && x[2] < 2.3026) }'
ok $? "  ... and trains as one device does: test accuracy and loss $(results "$tmp/mp.txt") against $(results "$tmp/eq2.txt")"
run_ok "cltrain train --parallel model --schedule=naive --micro-batches=2 exits 0" "$tmp/mpn.txt" \
    "$CLTRAIN" train --parallel model --schedule=naive --micro-batches=2 --devices "$(spec_n 2)" --epochs 1 --limit 256 --batch 64
grep -q '^cltrain: a pipeline, auto placement (the layers partitioned by their measured times), naive schedule, 2 micro-batches$' "$tmp/mpn.txt"
ok $? "  ... the automatic placement, the naive schedule and 2 micro-batches, said"
# zero bubble moves 1f1b's weight gradients, not what they sum: the 1f1b run's results, digit for digit
run_ok "cltrain train --parallel model --schedule zb exits 0" "$tmp/mpz.txt" \
    "$CLTRAIN" train --parallel model --placement seed --schedule zb --devices "$(spec_n 2)" --epochs 1 --limit 512 \
    --batch 64 --lr 0.002 --json
grep -q ', zb schedule, 4 micro-batches$' "$tmp/mpz.txt" && [ -n "$(results "$tmp/mpz.txt")" ] &&
    [ "$(results "$tmp/mpz.txt")" = "$(results "$tmp/mp.txt")" ]
ok $? "  ... says zb, and ends where 1f1b does ($(results "$tmp/mpz.txt") and $(results "$tmp/mp.txt"))"
run_ok "cltrain train --parallel data --verify-replicas on 3 devices exits 0" "$tmp/vr.txt" \
    "$CLTRAIN" train --parallel data --verify-replicas --devices "$(spec_n 3)" --epochs 1 --limit 512 --batch 64 --json
run_ok "cltrain train --parallel model --pipelines 2 --verify-replicas on 4 devices exits 0" "$tmp/vr2.txt" \
    "$CLTRAIN" train --parallel model --placement seed --pipelines 2 --verify-replicas --devices "$(spec_n 4)" \
    --epochs 1 --limit 512 --batch 64 --json
[ -n "$(results "$tmp/vr.txt")" ] && [ "$(results "$tmp/vr.txt")" = "$(results "$tmp/vr2.txt")" ] &&
    grep -q ', 2 copies of it, the batch split between them' "$tmp/vr2.txt"
ok $? "  ... both verified replicas end where the other does ($(results "$tmp/vr.txt"), $(results "$tmp/vr2.txt"))"
# bench train --parallel data: then every device alone in the same run, and the share of their sum.
run_ok "cltrain bench train --parallel data --json exits 0" "$tmp/bd.json" \
    "$CLTRAIN" bench train --parallel data --batch 32 --steps 1 --devices "$(spec_n 2)" --json
grep -q '"bench":"train_efficiency","model":"seed-mlp","batch":32,"devices":2,"samples_per_s":[0-9.]*,"alone_samples_per_s":\[[0-9.]*,[0-9.]*\],"sum_samples_per_s":[0-9.]*,"efficiency":[0-9.]*}' "$tmp/bd.json"
ok $? "  ... then each of the 2 devices alone, and the efficiency against their sum"
# bench train: every schedule with the micro-batches asked for, the naive one included.
run_ok "cltrain bench train --parallel model --schedule naive --json exits 0" "$tmp/bn.json" \
    "$CLTRAIN" bench train --parallel model --schedule naive --batch 32 --steps 1 --devices "$(spec_n 2)" --json
grep -q '"parallel":"model","schedule":"naive","micro_batches":4,' "$tmp/bn.json"
ok $? "  ... naive runs the default 4 micro-batches, as gpipe and 1f1b do, and says so"

# --parallel auto: a line per candidate with its time or why it cannot run, one chosen, then the
# training as that mode; bench plan: every candidate run for real, the pick against the fastest.
run_ok "cltrain train --parallel auto on 3 devices exits 0" "$tmp/auto.txt" \
    "$CLTRAIN" train --parallel auto --devices "$(spec_n 3)" --epochs 1 --limit 512 --batch 64
[ "$(grep -c 'ms a step' "$tmp/auto.txt")" -eq 8 ] && [ "$(grep -c '<- chosen' "$tmp/auto.txt")" -eq 1 ] &&
    grep -q '^cltrain: seed-mlp, \(one device\|data parallel\|tensor parallel\|model parallel\)' "$tmp/auto.txt" &&
    grep -q 'test accuracy' "$tmp/auto.txt"
ok $? "  ... times 8 candidates, chooses one, and trains with it"
run_ok "cltrain bench plan --json on 2 devices exits 0" "$tmp/plan.json" \
    "$CLTRAIN" bench plan --batch 32 --steps 1 --rounds 1 --devices "$(spec_n 2)" --json
grep -q '"bench":"plan","model":"seed-mlp","batch":32,"steps":1,"rounds":1,"devices":2,"chosen":[0-9],"fastest":[0-9],"chosen_of_fastest":[0-9.]*,"candidates":\[{"what":"one device (0)","status":"CLT_OK","plan_step_ms":[0-9.]*,"samples_per_s":[0-9.]*}' "$tmp/plan.json" &&
    [ "$(grep -o '"what"' "$tmp/plan.json" | wc -l)" -eq 7 ]
ok $? "  ... lists the 7 candidates of 2 devices with the plan's time and the measured samples/s"

# ---- the man page: every option of every --help is in docs/cltrain.1 ---------------------------
man=${CLT_TEST_SRCDIR:-.}/docs/cltrain.1
bad=0
if [ -f "$man" ]; then
    for c in $commands; do
        words=$(echo "$c" | tr _ ' ')
        # shellcheck disable=SC2086
        for o in $("$CLTRAIN" $words --help | sed -n 's/^  \(--[a-z-]*\).*/\1/p'); do
            # the man page writes --opt as \-\-opt
            grep -q -- "$(echo "$o" | sed 's/-/\\\\-/g')" "$man" || { echo "# $man lacks $words $o"; bad=1; }
        done
        # an option's choices (--opt a|b|c), listed the same: .BR \-\-opt " a|b|c"
        # shellcheck disable=SC2086
        "$CLTRAIN" $words --help | sed -n 's/^  \(--[a-z-]*\) \([a-z0-9-]*|[a-z0-9|-]*\).*/\1 \2/p' >"$tmp/choices"
        while read -r o ch; do
            grep -qF -- "$(echo "$o" | sed 's/-/\\-/g') \" $ch\"" "$man" ||
                { echo "# $man does not list $words $o's choices as $ch"; bad=1; }
        done <"$tmp/choices"
        grep -q "^\.SS \"\?$words" "$man" || { echo "# $man has no section for $words"; bad=1; }
    done
else
    echo "# $man is missing"
    bad=1
fi
ok $bad "docs/cltrain.1 has a section for every command and every option their --help lists, with its choices"

# ---- bash completion: commands, benchmarks, options and choices from the --help texts ----------
if command -v bash >/dev/null 2>&1; then
    bash -c '
. "$1"
complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _cltrain; echo "${COMPREPLY[*]}"; }
[ "$(complete_words "$2" bench "")" = "dispatch train plan gemm allreduce" ] &&
[ "$(complete_words "$2" train --parallel "")" = "none data model tensor auto" ] &&
[ "$(complete_words "$2" bench train --micro)" = "--micro-batches" ] &&
[ "$(complete_words "$2" tr)" = "train" ]' sh "${CLT_TEST_SRCDIR:-.}/tools/bash-completion/cltrain" "$CLTRAIN"
    ok $? "bash completion offers the benchmarks, --parallel's choices, options and commands"
else
    skip "bash completion" "no bash"
fi

# ---- train on the default data (Fashion-MNIST or the generated fallback) ----------------------
run_ok "cltrain train --metrics --plot exits 0" "$tmp/out.txt" \
    "$CLTRAIN" train --model seed-mlp --epochs 2 --limit 600 --batch 100 \
    --metrics "$tmp/run.csv" --plot "$tmp/run.svg"
grep -Eq '^epoch 2/2 +step +6/6 +loss [0-9.]+ +accuracy [0-9.]+% ' "$tmp/out.txt"
ok $? "the progress line shows the running accuracy"
check_csv "$tmp/run.csv" 12 2 "default data"

if [ $have_py -eq 1 ]; then
    python3 - "$tmp/run.svg" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
panels = [r for r in root.iter(ns + "rect") if r.get("stroke") == "#888"]
series = list(root.iter(ns + "polyline"))
assert len(panels) == 2, "%d panels" % len(panels)
assert len(series) == 4, "%d series" % len(series)
assert all(len(p.get("points").split()) >= 2 for p in series), "a series with under 2 points"
EOF
    ok $? "the SVG is well-formed XML with two panels and four series"
else
    skip "the SVG is well-formed XML with two panels and four series" "no python3"
fi

# ---- train on a small IDX set written here (--data) -------------------------------------------
if [ $have_py -eq 1 ]; then
    mkdir "$tmp/idx" && python3 - "$tmp/idx" <<'EOF'
import gzip, os, random, struct, sys
d = sys.argv[1]
r = random.Random(9)
for prefix, n in (("train", 300), ("t10k", 100)):
    labels = [r.randrange(10) for _ in range(n)]
    px = bytes(min(255, (l * 25 + r.randrange(40)) if (i % 28) // 3 == l else r.randrange(30))
               for l in labels for i in range(28 * 28))
    with gzip.open(os.path.join(d, prefix + "-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + px)
    with open(os.path.join(d, prefix + "-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(labels))
EOF
    run_ok "cltrain train --data on generated IDX files exits 0" "$tmp/idx.txt" \
        "$CLTRAIN" train --model seed-mlp --epochs 2 --batch 50 --data "$tmp/idx" --metrics "$tmp/idx.csv"
    grep -q 'from fashion-mnist' "$tmp/idx.txt"
    ok $? "those files are read, not the fallback"
    check_csv "$tmp/idx.csv" 12 2 "IDX data"
else
    skip "cltrain train --data on generated IDX files" "no python3"
fi

# ---- info: each device's words, and spec errors on stderr ------------------------------------
run_ok "cltrain info exits 0" "$tmp/info.txt" "$CLTRAIN" info
ndev=$(grep -Ec '^  [0-9]+:[0-9]+  ' "$tmp/info.txt")
[ "$ndev" -ge 1 ] && [ "$(grep -c '^        select with: [a-z0-9]' "$tmp/info.txt")" -eq "$ndev" ]
ok $? "cltrain info prints a 'select with:' line for each of its $ndev devices"
# Each device's words, each given as --devices, select that device.
awk '/^  [0-9]+:[0-9]+  / { id = $1 } /^        select with: / { sub(/^ *select with: /, ""); n = split($0, w, ", "); for (i = 1; i <= n; i++) print id, w[i] }' \
    "$tmp/info.txt" >"$tmp/words.txt"
bad=0
while read -r id word; do
    "$CLTRAIN" info --devices "$word" 2>/dev/null | grep -Eq "^device spec '$word' \(--devices\) selects .* $id( |\$)" ||
        { echo "# --devices $word does not select $id"; bad=1; }
done <"$tmp/words.txt"
[ -s "$tmp/words.txt" ] && [ $bad -eq 0 ]
ok $? "every word 'select with:' lists selects its device ($(wc -l <"$tmp/words.txt") words)"
"$CLTRAIN" info --devices no-such-device >"$tmp/nodev.out" 2>"$tmp/nodev.err"
rc=$?
[ $rc -eq 1 ] && grep -q "^cltrain info --devices: device spec 'no-such-device' (given as an argument) has entry 'no-such-device', which selects no device; devices that exist: 0:0 '.*select with" "$tmp/nodev.err" &&
    ! grep -q 'no-such-device' "$tmp/nodev.out"
ok $? "info --devices with a name that selects nothing: exit 1, the error and the devices on stderr only (rc $rc)"
"$CLTRAIN" info --devices "" >/dev/null 2>"$tmp/empty.err"
[ $? -eq 1 ] && grep -q "device spec '' (given as an argument) is empty" "$tmp/empty.err"
ok $? "info --devices '': an empty spec is an error on stderr"
env CLT_DEVICES= "$CLTRAIN" info >/dev/null 2>"$tmp/envempty.err"
[ $? -eq 1 ] && grep -q "^cltrain info: device spec '' (from the CLT_DEVICES environment variable) is empty" "$tmp/envempty.err"
ok $? "info with CLT_DEVICES set but empty: an error naming CLT_DEVICES"
env CLT_DEVICES="gpu;cpu" "$CLTRAIN" info >/dev/null 2>"$tmp/envbad.err"
[ $? -eq 1 ] && grep -q "(from the CLT_DEVICES environment variable) does not parse" "$tmp/envbad.err"
ok $? "info with a CLT_DEVICES that does not parse: an error naming CLT_DEVICES"
"$CLTRAIN" info --json --devices no-such-device >"$tmp/nodev.json" 2>"$tmp/nodevj.err"
rc=$?
[ $rc -eq 1 ] && grep -q "selects no device" "$tmp/nodevj.err"
ok $? "info --json with a spec that selects nothing: exit 1 and the error on stderr (rc $rc)"
if [ $have_py -eq 1 ]; then
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["selected"] == [] and "selects no device" in d["error"], d
assert all(dev["words"] and dev["platform_vendor"] for dev in d["devices"]), d
' "$tmp/nodev.json"
    ok $? "  ... and its JSON still lists the devices with their words, and the error"
else
    skip "  ... and its JSON still lists the devices with their words, and the error" "no python3"
fi
"$CLTRAIN" selftest --devices no-such-device >/dev/null 2>"$tmp/selftest.err"
[ $? -ne 0 ] && grep -q "opening the devices --devices names" "$tmp/selftest.err"
ok $? "selftest --devices with a name that selects nothing names the option"

# ---- info --json and bench train --json ------------------------------------------------------
run_ok "cltrain info --json exits 0" "$tmp/info.json" "$CLTRAIN" info --json
if [ $have_py -eq 1 ]; then
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert isinstance(d, dict) and isinstance(d.get("devices"), list) and d["devices"], d
' "$tmp/info.json"
    ok $? "cltrain info --json is one JSON object with a devices array"
else
    skip "cltrain info --json is one JSON object with a devices array" "no python3"
fi
run_ok "cltrain bench train --json exits 0" "$tmp/bench.json" \
    "$CLTRAIN" bench train --model seed-mlp --batch 64 --steps 3 --json
if [ $have_py -eq 1 ]; then
    python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l]
assert lines, "no output"
for l in lines: assert isinstance(json.loads(l), dict), l
' "$tmp/bench.json"
    ok $? "cltrain bench train --json writes one JSON object per line"
else
    skip "cltrain bench train --json writes one JSON object per line" "no python3"
fi

# ---- tune and bench gemm (their own cache folder) ------------------------------------------
run_ok "cltrain tune --budget 0 --json exits 0" "$tmp/tune.json" \
    env CLT_CACHE_DIR="$tmp/cache" "$CLTRAIN" tune --devices "$(spec_n 1)" --budget 0 --batch 16 --json
run_ok "cltrain bench gemm --json exits 0" "$tmp/gemm.json" \
    env CLT_CACHE_DIR="$tmp/cache" "$CLTRAIN" bench gemm --devices "$(spec_n 1)" --batch 16 --iters 1 --json
if [ $have_py -eq 1 ]; then
    python3 -c '
import json, os, sys
t = json.loads(open(sys.argv[1]).read())
assert t["stored"] == 0 and t["candidates"] == 0 and t["default_gflops"] > 0, t
assert os.path.exists(t["cache"]) and t["cache"].startswith(sys.argv[3]), t
rows = [json.loads(l) for l in open(sys.argv[2]).read().split("\n") if l]
shapes = [r for r in rows if "layer" in r]
total = [r for r in rows if r.get("total")]
assert len(shapes) == 12 and len(total) == 1, rows
assert all(r["used_gflops"] > 0 and r["clblast_default_gflops"] > 0 for r in shapes), shapes
assert total[0]["tuned"] == 0 and (total[0]["openblas_gflops"] > 0) == total[0]["openblas"], total
' "$tmp/tune.json" "$tmp/gemm.json" "$tmp/cache"
    ok $? "tune writes its record to CLT_CACHE_DIR; bench gemm gives the 12 shapes and a total"
else
    skip "tune writes its record to CLT_CACHE_DIR; bench gemm gives the 12 shapes and a total" "no python3"
fi
# ---- bench train --rounds: every schedule timed in turns, ratios per round ---------------------
run_ok "cltrain bench train --parallel model --rounds 3 --json exits 0" "$tmp/rounds.json" \
    "$CLTRAIN" bench train --parallel model --placement seed --micro-batches 2 --model seed-mlp --batch 32 \
    --steps 1 --rounds 3 --devices "$(spec_n 2)" --json
if [ $have_py -eq 1 ]; then
    python3 -c '
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]).read().split("\n") if l]
assert [(r["parallel"], r["schedule"], r["micro_batches"]) for r in rows] == \
    [("none", "-", 1), ("model", "naive", 2), ("model", "gpipe", 2), ("model", "1f1b", 2), ("model", "zb", 2)], rows
naive = rows[1]["samples_per_s_rounds"]
for r in rows:
    sps = r["samples_per_s_rounds"]
    assert r["rounds"] == 3 and len(sps) == 3 and min(sps) > 0, r
    assert abs(r["samples_per_s"] - statistics.median(sps)) < 0.1, r
    mine = [a / b for a, b in zip(sps, rows[0]["samples_per_s_rounds"])]
    assert all(abs(x - y) < 2e-3 for x, y in zip(mine, r["vs_one_device_rounds"])), r
for r in rows[1:]:
    ratios = [a / b for a, b in zip(r["samples_per_s_rounds"], naive)]
    assert all(abs(x - y) < 2e-3 for x, y in zip(ratios, r["vs_naive_rounds"])), r
    assert abs(r["vs_naive"] - statistics.median(r["vs_naive_rounds"])) < 2e-3, r
zb = rows[4]
ratios = [a / b for a, b in zip(zb["samples_per_s_rounds"], rows[3]["samples_per_s_rounds"])]
assert all(abs(x - y) < 2e-3 for x, y in zip(ratios, zb["vs_1f1b_rounds"])), zb
assert abs(zb["vs_1f1b"] - statistics.median(zb["vs_1f1b_rounds"])) < 2e-3, zb
assert all("vs_1f1b" not in r for r in rows[:4]), rows
' "$tmp/rounds.json"
    ok $? "bench train --rounds 3: one device and the four schedules (each with the 2 micro-batches asked), each ratio taken within its round, medians; zb against 1f1b"
else
    skip "bench train --rounds reports every round and the medians" "no python3"
fi
"$CLTRAIN" bench train --parallel tensor --rounds 3 >/dev/null 2>"$tmp/rounds.err"
[ $? -eq 2 ] && grep -q "rounds compares data parallel" "$tmp/rounds.err"
ok $? "bench train --rounds with tensor parallelism is refused, saying what it compares"

# ---- tensor parallelism: bench train and train --parallel tensor -------------------------------
run_ok "cltrain bench train --parallel tensor --slices 3,1 --json exits 0" "$tmp/tensor.json" \
    "$CLTRAIN" bench train --parallel tensor --model seed-mlp --batch 32 --steps 2 --devices "$(spec_n 2)" \
    --slices 3,1 --json
if [ $have_py -eq 1 ]; then
    python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]).read().split("\n") if l]
kinds = [(r["parallel"], r["schedule"]) for r in rows]
assert kinds == [("none", "-"), ("tensor", "-"), ("model", "naive"), ("model", "1f1b")], kinds
t = rows[1]
assert t["slices"] == [384, 128] and t["tensor_group"] == 2 and t["samples_per_s"] > 0, t
assert all(r["vs_one_device"] > 0 for r in rows[1:]), rows
' "$tmp/tensor.json"
    ok $? "bench train --parallel tensor: one device, tensor (slices 384/128), model naive and 1f1b, each with its speed-up"
else
    skip "bench train --parallel tensor reports slices and speed-ups" "no python3"
fi
run_ok "cltrain bench train --parallel tensor --placement seed --tensor-group 2 --json exits 0" "$tmp/tpipe.json" \
    "$CLTRAIN" bench train --parallel tensor --placement seed --tensor-group 2 --micro-batches 2 \
    --model seed-mlp --batch 32 --steps 2 --devices "$(spec_n 4)" --json
if [ $have_py -eq 1 ]; then
    python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]).read().split("\n") if l]
kinds = [(r["parallel"], r["schedule"], r["placement"]) for r in rows]
assert kinds == [("none", "-", "-"), ("tensor", "1f1b", "seed"), ("model", "naive", "seed"), ("model", "1f1b", "seed")], kinds
t = rows[1]
assert t["micro_batches"] == 2 and t["tensor_group"] == 2 and t["slices"][:2] == [128, 128], t
assert t["samples_per_s"] > 0 and t["vs_one_device"] > 0, t
' "$tmp/tpipe.json"
    ok $? "bench train --parallel tensor --placement seed: a 1f1b pipeline of 2-way groups (fc2 split 128/128)"
else
    skip "bench train --parallel tensor --placement seed reports its pipeline" "no python3"
fi
run_ok "cltrain train --parallel tensor on 3 devices exits 0" "$tmp/tensor.out" \
    "$CLTRAIN" train --parallel tensor --devices "$(spec_n 3)" --epochs 1 --limit 512 --batch 64
grep -q "layer 0 column-parallel, output features 0..170 on 0, 171..341 on 1, 342..511 on 2" "$tmp/tensor.out"
ok $? "train --parallel tensor prints fc1's slices on the 3 devices"
run_ok "cltrain train --parallel tensor --split auto exits 0 (slices by measured speed)" "$tmp/tauto.out" \
    "$CLTRAIN" train --parallel tensor --split auto --devices "$(spec_n 2)" --epochs 1 --limit 256 --batch 64
run_ok "cltrain train --parallel data --split auto exits 0" "$tmp/dauto.out" \
    "$CLTRAIN" train --parallel data --split auto --devices "$(spec_n 2)" --epochs 1 --limit 256 --batch 64
"$CLTRAIN" train --parallel tensor --tensor-group 2 --devices "$(spec_n 3)" --epochs 1 --limit 512 \
    >"$tmp/tg.out" 2>&1
[ $? -ne 0 ] && grep -q "tensor_group 2 must divide the runtime's 3 devices" "$tmp/tg.out"
ok $? "train --tensor-group 2 on 3 devices fails and says why"

# --resume for more epochs than the checkpoint was written for: a cosine schedule is stretched to
# the new length (one line says so) and the loss keeps falling; a constant one goes on exactly
# as one uninterrupted run (the same epoch lines, digit for digit).
train_losses() { sed -n 's/^epoch [0-9]*\/[0-9]*  train loss \([0-9.]*\).*/\1/p' "$1" | tr '\n' ' '; }
run_ok "train --schedule cosine --epochs 1 --checkpoint exits 0" "$tmp/cos1.out" \
    "$CLTRAIN" train --epochs 1 --limit 512 --batch 64 --schedule cosine --checkpoint "$tmp/cos.ckpt"
run_ok "train --epochs 3 --resume from a 1-epoch cosine checkpoint exits 0" "$tmp/cos3.out" \
    "$CLTRAIN" train --epochs 3 --limit 512 --batch 64 --schedule cosine --checkpoint "$tmp/cos.ckpt" --resume
grep -q "cosine schedule ended at step 8: stretched to the 24 steps of 3 epochs" "$tmp/cos3.out"
ok $? "resume for 3 epochs says the 8-step cosine schedule is stretched to 24 steps"
losses="$(train_losses "$tmp/cos1.out")$(train_losses "$tmp/cos3.out")"
echo "$losses" | awk '{ if (NF != 3) exit 1; for (i = 2; i <= NF; i++) if ($i >= $(i - 1)) exit 1 }'
ok $? "the resumed cosine run's train loss keeps falling epoch by epoch ($losses)"
run_ok "train --schedule constant --epochs 1 --checkpoint exits 0" "$tmp/con1.out" \
    "$CLTRAIN" train --epochs 1 --limit 512 --batch 64 --schedule constant --checkpoint "$tmp/con.ckpt"
run_ok "train --schedule constant --epochs 2 --resume exits 0" "$tmp/con2.out" \
    "$CLTRAIN" train --epochs 2 --limit 512 --batch 64 --schedule constant --checkpoint "$tmp/con.ckpt" --resume
run_ok "train --schedule constant --epochs 2 exits 0" "$tmp/con2f.out" \
    "$CLTRAIN" train --epochs 2 --limit 512 --batch 64 --schedule constant
epoch2() { grep '^epoch 2/2  train loss' "$1" | sed 's/  ([0-9]* s)$//'; }
[ -n "$(epoch2 "$tmp/con2.out")" ] && [ "$(epoch2 "$tmp/con2.out")" = "$(epoch2 "$tmp/con2f.out")" ] &&
    ! grep -q stretched "$tmp/con2.out"
ok $? "a constant-schedule resume is the uninterrupted run's epoch 2, digit for digit: $(epoch2 "$tmp/con2.out")"

# ---- the GPT: train on a text, resume, generate ------------------------------------------------
# A small text of its own (the suite must not depend on the fortunes package), a tiny model.
for i in $(seq 1 60); do echo "the quick brown fox jumps over the lazy dog, line $i."; done >"$tmp/text.txt"
G="--text $tmp/text.txt --lr 0.01 --layers 1 --heads 2 --embd 16 --block 16 --batch 4 --warmup 2 --eval-every 10 --eval-batches 2"
# shellcheck disable=SC2086
run_ok "train --model gpt on a text exits 0" "$tmp/gpt.out" \
    "$CLTRAIN" train --model gpt $G --steps 20 --checkpoint "$tmp/gpt.ckpt" --metrics "$tmp/gpt.csv" \
    --plot "$tmp/gpt.svg" --sample 30 --devices "$(spec_n 1)"
grep -q "^step 20: train loss [0-9.]*, val loss [0-9.]*" "$tmp/gpt.out" && grep -q "a vocabulary of 40 characters" "$tmp/gpt.out" &&
    [ "$(wc -l <"$tmp/gpt.csv")" -eq 21 ] && grep -q "<svg" "$tmp/gpt.svg" && grep -q "^cltrain: a sample" "$tmp/gpt.out"
ok $? "  ... measures both losses at step 20, reads the text's 40 characters, writes the metrics, the curves and a sample"
first=$(sed -n 2p "$tmp/gpt.csv" | cut -d, -f2) last=$(sed -n 21p "$tmp/gpt.csv" | cut -d, -f2)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5 && a > 3.5 && a < 3.9) }'
ok $? "  ... its loss starts near ln 40 = 3.69 ($first) and falls ($last)"
# shellcheck disable=SC2086
"$CLTRAIN" generate --checkpoint "$tmp/gpt.ckpt" --prompt "the " --tokens 40 --seed 7 --devices "$(spec_n 1)" >"$tmp/gen1.out" 2>&1 &&
    "$CLTRAIN" generate --checkpoint "$tmp/gpt.ckpt" --prompt "the " --tokens 40 --seed 7 --devices "$(spec_n 1)" >"$tmp/gen2.out" 2>&1 &&
    "$CLTRAIN" generate --checkpoint "$tmp/gpt.ckpt" --prompt "the " --tokens 40 --seed 8 --devices "$(spec_n 1)" >"$tmp/gen3.out" 2>&1
ok $? "generate from the checkpoint exits 0 three times"
[ "$(head -c 4 "$tmp/gen1.out")" = "the " ] && [ "$(wc -c <"$tmp/gen1.out")" -ge 45 ] && cmp -s "$tmp/gen1.out" "$tmp/gen2.out" &&
    ! cmp -s "$tmp/gen1.out" "$tmp/gen3.out"
ok $? "  ... prints the prompt and 40 characters, the same for a seed, others for another: $(head -c 44 "$tmp/gen1.out" | tr '\n' ' ')"
"$CLTRAIN" generate --checkpoint "$tmp/gpt.ckpt" --prompt "the Z" --devices "$(spec_n 1)" >"$tmp/genz.out" 2>&1
[ $? -eq 1 ] && grep -q "'Z' (U+005A) at byte 4 is not in the vocabulary" "$tmp/genz.out"
ok $? "generate: a prompt character outside the vocabulary fails naming it"
"$CLTRAIN" generate --checkpoint "$tmp/con.ckpt" --devices "$(spec_n 1)" >"$tmp/genm.out" 2>&1
[ $? -eq 1 ] && grep -q "holds no vocabulary" "$tmp/genm.out"
ok $? "generate: a checkpoint of another model fails saying it holds no vocabulary"
refused "train --model gpt --micro-batches without --parallel model refused" "need --parallel model" \
    "$CLTRAIN" train --model gpt --micro-batches 2
# shellcheck disable=SC2086
run_ok "train --model gpt --parallel model --pipeline zb on 2 devices (the tied head on the last stage) exits 0" \
    "$tmp/gp.out" "$CLTRAIN" train --model gpt $G --steps 10 --sample 0 --parallel model --pipeline zb \
    --micro-batches 2 --devices "$(spec_n 2)"
grep -q "a pipeline" "$tmp/gp.out" && grep -q "zb schedule, 2 micro-batches" "$tmp/gp.out" && grep -q "^step 10: train loss" "$tmp/gp.out"
ok $? "  ... says it runs a pipeline with the zb schedule and 2 micro-batches, and measures the losses"
refused "generate without --checkpoint refused" "^cltrain generate: --checkpoint FILE is required" "$CLTRAIN" generate
refused "train --model gpt --embd 30 --heads 4 refused" "must be a multiple of --heads" "$CLTRAIN" train --model gpt --embd 30 --heads 4
refused "train --model gpt --warmup 100 --steps 50 refused" "--warmup must be below --steps" "$CLTRAIN" train --model gpt --steps 50
# a constant schedule resumed goes on exactly as the uninterrupted run: step 30's line, digit for digit
# shellcheck disable=SC2086
"$CLTRAIN" train --model gpt $G --schedule constant --steps 15 --checkpoint "$tmp/gc.ckpt" --sample 0 --devices "$(spec_n 1)" >/dev/null 2>&1 &&
    "$CLTRAIN" train --model gpt $G --schedule constant --steps 30 --checkpoint "$tmp/gc.ckpt" --resume --sample 0 \
        --metrics "$tmp/gr.csv" --devices "$(spec_n 1)" >"$tmp/gr.out" 2>&1 &&
    "$CLTRAIN" train --model gpt $G --schedule constant --steps 30 --sample 0 --metrics "$tmp/gf.csv" --devices "$(spec_n 1)" >/dev/null 2>&1
ok $? "train --model gpt: 15 steps, a resume to 30, and 30 steps in one go exit 0"
step30() { grep '^30,' "$1" | cut -d, -f1-3,5-; }
grep -q "resumed from .* at step 15" "$tmp/gr.out" && [ -n "$(step30 "$tmp/gr.csv")" ] && [ "$(step30 "$tmp/gr.csv")" = "$(step30 "$tmp/gf.csv")" ]
ok $? "  ... the resumed run's step 30 is the uninterrupted one's, digit for digit: $(step30 "$tmp/gr.csv")"
# The PyTorch baseline of the command (tools/gpt_torch.py): from the weights --save-init wrote,
# on the same batches, the same losses step by step (with a python3 that has torch: CLT_PYTHON,
# python3, /usr/bin/python3; CI sets CLT_TEST_REQUIRE_TORCH so that its absence fails).
py=
for c in "${CLT_PYTHON:-}" python3 /usr/bin/python3; do
    [ -n "$c" ] && "$c" -c "import torch" >/dev/null 2>&1 && { py=$c; break; }
done
# A library built with AddressSanitizer (configure --enable-sanitizers) loads into python only
# after the sanitizer's runtime: preload the one it links.
asan=$(ldd .libs/libcltrain.so 2>/dev/null | awk '/libasan/ {print $3}')
if [ -n "$py" ]; then
    # shellcheck disable=SC2086
    "$CLTRAIN" train --model gpt $G --steps 20 --sample 0 --save-init "$tmp/init.st" --metrics "$tmp/cl.csv" \
        --devices "$(spec_n 1)" >/dev/null 2>&1 &&
        OPENBLAS_NUM_THREADS=1 LD_PRELOAD="${asan:-${LD_PRELOAD:-}}" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
            "$py" "${CLT_TEST_SRCDIR:-.}/tools/gpt_torch.py" --init "$tmp/init.st" --text "$tmp/text.txt" \
            --lr 0.01 --batch 4 --warmup 2 --eval-every 10 --eval-batches 2 --steps 20 --lib .libs/libcltrain.so \
            --metrics "$tmp/pt.csv" >"$tmp/pt.out" 2>&1
    rc=$?
    ok $rc "train --model gpt --save-init, then tools/gpt_torch.py from that file, exit 0"
    [ $rc -eq 0 ] || sed 's/^/# /' "$tmp/pt.out" | tail -5
    # column 2 is each step's loss, 5 and 6 the measured train and validation losses
    paste -d, "$tmp/cl.csv" "$tmp/pt.csv" | awk -F, -v half=7 'NR > 1 {
        for (k = 2; k <= 6; k++) { if (k == 3 || k == 4) continue; a = $k; b = $(k + half)
            if ((a == "") != (b == "")) exit 1
            if (a != "" && (d = a - b) * d > 1e-8 * (1 + b * b)) { print "# step " $1 ": " a " vs " b; exit 1 } }
        n++ } END { exit n != 20 }'
    ok $? "  ... cltrain and PyTorch agree within 1e-4 at every one of the 20 steps and measurements"
elif [ -n "${CLT_TEST_REQUIRE_TORCH:-}" ]; then
    ok 1 "the GPT against tools/gpt_torch.py: no python3 with torch (CLT_TEST_REQUIRE_TORCH is set)"
else
    skip "the GPT against tools/gpt_torch.py" "no python3 with torch"
fi
# shellcheck disable=SC2086
run_ok "train --model gpt --parallel tensor on 2 devices exits 0" "$tmp/gt.out" \
    "$CLTRAIN" train --model gpt $G --steps 10 --sample 0 --parallel tensor --devices "$(spec_n 2)"
grep -q "^cltrain: layer 4 column-parallel, Q, K and V features 0..7 on 0, 8..15 on 1$" "$tmp/gt.out" &&
    grep -q "^cltrain: layer 6 row-parallel, input features 0..7 on 0, 8..15 on 1$" "$tmp/gt.out" &&
    grep -q "(tensor parallel)" "$tmp/gt.out" && grep -q "^step 10: train loss [0-9.]*, val loss [0-9.]*" "$tmp/gt.out"
ok $? "  ... splits the attention by heads (one of 8 features each) and measures the losses"
refused "train --model gpt --tensor-group 2 without --parallel tensor refused" "--tensor-group needs --parallel tensor" \
    "$CLTRAIN" train --model gpt --tensor-group 2
run_ok "bench train --model gpt --json exits 0" "$tmp/bg.json" \
    "$CLTRAIN" bench train --model gpt --batch 2 --steps 1 --devices "$(spec_n 1)" --json
grep -q '"model":"gpt".*"activation_bytes":\[[1-9][0-9]*\].*"tokens_per_s":[1-9]' "$tmp/bg.json"
ok $? "  ... reports tokens/s and the device's activation bytes"

echo "1..$n"
[ $fails -eq 0 ]
