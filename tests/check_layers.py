#!/usr/bin/env python3
"""The layers of lib/ (tests/layers.txt) checked from the objects' symbols, as TAP.

For every object of lib/, the global symbols it defines and the ones it leaves undefined (nm;
weak undefined ones too: a weak reference is still a reference); an undefined symbol that another
file of lib/ defines is a reference from the one file to the other. Two rules: no reference runs
from a layer to a higher one, and no files form a circle (a strongly connected group of more than
one file, in one layer or across several). Each failure names the files, their layers and the
symbols. There is no list of exceptions: a lower layer that needs a higher one gets a hook (a
function pointer the higher one sets), or the call moves up. Last, the check checks itself on
the same objects: a reference planted up from the lowest layer, and one planted back along a
reference inside a layer, must fail it.
Usage: check_layers.py [--nm NM] OBJECT.o...   (the library's objects, libcltrain_*la-NAME.o;
make check passes them through CLT_LAYER_OBJECTS, tests/check_layers.sh)."""
import os, re, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
nm = os.environ.get("NM", "nm")
if args[:1] == ["--nm"]:
    nm, args = args[1], args[2:]

n = 0
failed = 0
def ok(good, what, diag=()):
    global n, failed
    n += 1
    print(("ok" if good else "not ok") + " %d - %s" % (n, what))
    if not good:
        failed += 1
    for d in diag:
        print("# " + d)

layer_of, order = {}, []
for line in open(os.path.join(here, "layers.txt")):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, files = line.split(":", 1)
    order.append(name.strip())
    for f in files.split():
        layer_of[f[:-2]] = len(order) - 1

objs = {}
for path in args:
    m = re.search(r"la-(\w+)\.o$", path)
    if not m:
        continue
    if not os.path.exists(path):   # only the PIC object was built
        path = os.path.join(os.path.dirname(path), ".libs", os.path.basename(path))
    objs[m.group(1)] = path
sources = sorted(f[:-2] for f in os.listdir(os.path.join(here, "..", "lib")) if f.endswith(".c"))
optional = os.environ.get("CLT_LAYER_OPTIONAL", "").split()   # not built here (mpi without MPI)
missing = [s for s in sources if s not in objs and s not in optional]
ok(not missing, "every lib/*.c has its object among the %d given" % len(objs), ["no object for %s.c" % s for s in missing])
unlisted = [s for s in objs if s not in layer_of]
ok(not unlisted, "every file of lib/ has a layer in tests/layers.txt",
   ["%s.c has no layer" % s for s in unlisted])
if missing or unlisted:
    print("1..%d" % n)
    sys.exit(1)

defs, undef = {}, {}
for name, path in objs.items():
    out = subprocess.run([nm, "-P", path], capture_output=True, text=True, check=True).stdout
    undef[name] = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        sym, kind = parts[0], parts[1]
        if kind in ("U", "w", "v"):   # undefined, and weak undefined (no value)
            undef[name].add(sym)
        elif kind in "TDBRVW" and kind.isupper():
            defs.setdefault(sym, name)

def where(f):
    return "%s.c (%s)" % (f, order[layer_of[f]])

def check(undef):
    """The upward references and the circles (each with the references that tie it), as lines."""
    refs = {}   # (from, to) -> symbols
    for name, syms in undef.items():
        for s in syms:
            d = defs.get(s)
            if d and d != name:
                refs.setdefault((name, d), set()).add(s)
    upward = []
    for (a, b), syms in sorted(refs.items()):
        if layer_of[b] > layer_of[a]:
            for s in sorted(syms):
                upward.append("%s -> %s: %s" % (where(a), where(b), s))
    # circles: strongly connected groups of files (Tarjan)
    graph = {}
    for (a, b) in refs:
        graph.setdefault(a, set()).add(b)
    index, low, stack, on, sccs = {}, {}, [], set(), []
    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v); on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop(); on.discard(w); group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                sccs.append(sorted(group))
    for v in sorted(undef):
        if v not in index:
            visit(v)
    circles = []
    for g in sccs:
        circles.append("circle of %d files: %s" % (len(g), " ".join(where(x) for x in g)))
        for a in g:
            for b in g:
                if (a, b) in refs:
                    circles.append("  %s -> %s: %s" % (a + ".c", b + ".c", " ".join(sorted(refs[(a, b)]))))
    return upward, circles, refs

sys.setrecursionlimit(10000)
upward, circles, refs = check(undef)
ok(not upward, "no file references a symbol of a higher layer's file", upward)
ok(not circles, "no files of lib/ form a circle", circles)

# The check checks itself on these objects: a reference planted from the lowest layer's first
# file to a symbol of the highest layer's must be reported as upward, and one planted back
# along an existing reference between two files of one layer as a circle.
low_f = min(undef, key=lambda f: (layer_of[f], f))
high_syms = sorted(s for s, f in defs.items() if layer_of[f] == max(layer_of[x] for x in undef))
if high_syms:
    planted = {f: set(syms) for f, syms in undef.items()}
    planted[low_f].add(high_syms[0])
    up, _, _ = check(planted)
    want = "%s -> %s: %s" % (where(low_f), where(defs[high_syms[0]]), high_syms[0])
    ok(want in up, "a planted upward reference is reported: " + want, () if want in up else up)
same = sorted((a, b) for (a, b) in refs if layer_of[a] == layer_of[b])
if same:
    a, b = same[0]
    back = sorted(s for s, f in defs.items() if f == a)[0]
    planted = {f: set(syms) for f, syms in undef.items()}
    planted[b].add(back)
    _, circ, _ = check(planted)
    seen = any(c.startswith("circle") and where(a) in c and where(b) in c for c in circ)
    ok(seen, "a planted circle is reported: %s.c -> %s.c and back (%s)" % (a, b, back),
       () if seen else circ)
print("1..%d" % n)
sys.exit(1 if failed else 0)
