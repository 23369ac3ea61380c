#!/usr/bin/env bash
# Installing after an in-tree build (TAP), as a user does after ./quickstart: in a copy of this
# checkout, ./configure in the tree with this build's options and make (what quickstart does),
# then ./configure --prefix=P with the same options, make, make install; then, with no
# LD_LIBRARY_PATH, the installed P/bin/cltrain info, and tests/test_no_mpi.c built with
# `pkg-config cltrain` against P (it must not load libmpi). With MPI also: opts.mpi loads P's
# libcltrain-mpi, a program built with `pkg-config cltrain-mpi` runs, and with libcltrain-mpi
# taken away opts.mpi is refused naming it. This tree is left as it is.
#   tests/install.sh      (from a configured build folder: its config.status gives the options)
# About a minute on 2 cores (two configures and one build).
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$PWD
jobs=${JOBS:-2}
n=0
failed=0

say() {   # say ok|not-ok DESCRIPTION
    n=$((n + 1))
    if [ "$1" = ok ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
finish() {
    echo "# install.sh: $((n - failed)) of $n passed"
    echo "1..$n"
    [ "$failed" -eq 0 ]
    exit $?
}
show() { sed 's/^/# /' "$1" | tail -n "${2:-20}"; }

if [ ! -x "$build/config.status" ]; then
    echo "Bail out! run from a configured build folder (no config.status in $build)"
    exit 1
fi
if ! git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "1..0 # SKIP not a git checkout: the sources to copy are git's"
    exit 0
fi
# This build's configure options without the install folders, and --enable-werror as quickstart.
eval "set -- $("$build/config.status" --config)"
opts=(--enable-werror)
for o in "$@"; do
    case "$o" in
        --prefix=*|--exec-prefix=*|--*dir=*|--enable-werror) ;;
        *) opts+=("$o") ;;
    esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cltrain-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
P=$tmp/prefix
mkdir "$tmp/src" "$tmp/cache"
git -C "$src" ls-files -z --cached --others --exclude-standard |
    (cd "$src" && xargs -0 cp --parents -t "$tmp/src" 2>/dev/null)
cd "$tmp/src" || exit 1

# 1. The in-tree build ./quickstart makes (default prefix).
if (autoreconf -fi && ./configure "${opts[@]}" && make -j"$jobs") > "$tmp/build.log" 2>&1; then
    say ok "in-tree build as ./quickstart makes it (configure ${opts[*]}; make)"
else
    say not-ok "in-tree build as ./quickstart makes it (configure ${opts[*]}; make)"
    show "$tmp/build.log"
    finish
fi

# 2. Then to a prefix of its own.
if (./configure --prefix="$P" "${opts[@]}" && make -j"$jobs" && make install) > "$tmp/install.log" 2>&1; then
    say ok "then configure --prefix=P, make, make install"
else
    say not-ok "then configure --prefix=P, make, make install"
    show "$tmp/install.log"
    finish
fi
mpi=0
grep -q '^#define CLT_HAVE_MPI 1' config.h && mpi=1
libs=libcltrain
[ "$mpi" -eq 1 ] && libs="libcltrain libcltrain-mpi"

# The sonames as libtool made them (the .la's dlname), so a -version-info bump needs no edit here.
dlname() { sed -n "s/^dlname='\(.*\)'\$/\1/p" "$1.la"; }
so=$(dlname libcltrain)
so_mpi=$(dlname libcltrain-mpi 2>/dev/null)
[ -n "$so" ] || say not-ok "libcltrain.la names its shared library (dlname)"
missing=
for f in bin/cltrain include/cltrain.h lib/pkgconfig/cltrain.pc "lib/$so"; do
    [ -e "$P/$f" ] || missing="$missing $f"
done
if [ "$mpi" -eq 1 ]; then
    [ -n "$so_mpi" ] || say not-ok "libcltrain-mpi.la names its shared library (dlname)"
    for f in include/cltrain_mpi.h lib/pkgconfig/cltrain-mpi.pc "lib/$so_mpi"; do
        [ -e "$P/$f" ] || missing="$missing $f"
    done
fi
[ -z "$missing" ] && say ok "installed: the command, the headers, $libs and their .pc files" ||
    say not-ok "installed: missing$missing"

wrong=
for l in $libs; do
    got=$(sed -n "s/^libdir='\(.*\)'$/\1/p" "$P/lib/$l.la")
    [ "$got" = "$P/lib" ] || wrong="$wrong $l.la names '$got'"
done
[ -z "$wrong" ] && say ok "the installed .la files name P/lib as their libdir" ||
    say not-ok "the installed .la files name P/lib as their libdir:$wrong"

# 3. What a user runs, with nothing pointing the loader at P.
run() { env -u LD_LIBRARY_PATH POCL_DEVICES="basic basic" CLT_TEST_DEVICES=all \
            CLT_CACHE_DIR="$tmp/cache" "$@"; }
if run "$P/bin/cltrain" info > "$tmp/info.out" 2>&1 && grep -q '^platform 0:' "$tmp/info.out"; then
    say ok "P/bin/cltrain info runs and lists the devices"
else
    say not-ok "P/bin/cltrain info runs and lists the devices"
    show "$tmp/info.out"
fi

pc() { PKG_CONFIG_PATH="$P/lib/pkgconfig" pkg-config "$@"; }
cc=${CC:-cc}
# The rpath is how this program finds P/lib (docs/INSTALL.md): pkg-config gives none.
if $cc -I"$src/tests" "$src/tests/test_no_mpi.c" -o "$tmp/no_mpi" $(pc --cflags --libs cltrain) \
        -Wl,-rpath,"$P/lib" > "$tmp/cc.log" 2>&1; then
    say ok "tests/test_no_mpi.c builds with \$(pkg-config --cflags --libs cltrain)"
else
    say not-ok "tests/test_no_mpi.c builds with \$(pkg-config --cflags --libs cltrain)"
    show "$tmp/cc.log"
fi
# runs PROGRAM [ARGS]: it exits 0 and every TAP point it prints passes (rc, good, bad: what it did)
runs() {
    run "$@" > "$tmp/prog.out" 2>&1
    rc=$?
    good=$(grep -c '^ok ' "$tmp/prog.out")
    bad=$(grep -c '^not ok ' "$tmp/prog.out")
    if [ "$rc" -eq 0 ] && [ "$bad" -eq 0 ] && [ "$good" -gt 0 ]; then return 0; fi
    show "$tmp/prog.out" 30
    return 1
}
if runs "$tmp/no_mpi"; then
    say ok "it runs against P: no libmpi loaded$([ "$mpi" -eq 1 ] && echo "; opts.mpi loads P's libcltrain-mpi") ($good points)"
else
    say not-ok "it runs against P ($good ok, $bad not ok, exit status $rc)"
fi

if [ "$mpi" -eq 1 ]; then
    cat > "$tmp/mpi_prog.c" <<'EOF'
/* A program of the MPI layer's own: its communicator, its MPI_Init_thread. */
#include <cltrain_mpi.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    clt_runtime_options o = clt_runtime_options_default();
    o.devices = "all";
    clt_runtime *rt;
    clt_status st = clt_runtime_create_mpi(&rt, &o, MPI_COMM_WORLD);
    int good = st == CLT_OK && clt_runtime_process_count(rt) == 1 && clt_runtime_device_count(rt) == 2;
    printf("%s 1 - clt_runtime_create_mpi: %s, %d process(es), %d device(s)\n", good ? "ok" : "not ok",
           clt_status_name(st), st == CLT_OK ? clt_runtime_process_count(rt) : 0,
           st == CLT_OK ? clt_runtime_device_count(rt) : 0);
    if (st != CLT_OK) printf("# %s\n", clt_last_error());
    clt_runtime_destroy(rt);
    MPI_Finalize();
    return !good;
}
EOF
    if $cc "$tmp/mpi_prog.c" -o "$tmp/mpi_prog" $(pc --cflags --libs cltrain-mpi) -Wl,-rpath,"$P/lib" \
            > "$tmp/cc.log" 2>&1; then
        say ok "a program of cltrain_mpi.h builds with \$(pkg-config --cflags --libs cltrain-mpi)"
    else
        say not-ok "a program of cltrain_mpi.h builds with \$(pkg-config --cflags --libs cltrain-mpi)"
        show "$tmp/cc.log"
    fi
    if runs "$tmp/mpi_prog"; then
        say ok "it runs against P (an MPI job of one process)"
    else
        say not-ok "it runs against P (an MPI job of one process)"
    fi
    # As where only libcltrain was installed: opts.mpi must say what is missing.
    mkdir "$tmp/away"
    mv "$P"/lib/libcltrain-mpi.so* "$tmp/away/"
    if runs "$tmp/no_mpi" --without-layer; then
        say ok "without P's libcltrain-mpi, opts.mpi is refused naming it"
    else
        say not-ok "without P's libcltrain-mpi, opts.mpi is refused naming it"
    fi
    mv "$tmp"/away/* "$P/lib/"
fi
finish
