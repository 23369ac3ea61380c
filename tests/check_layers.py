#!/usr/bin/env python3
"""The layers of lib/ (tests/layers.txt) checked from the objects' symbols, as TAP.

For every object of lib/, the global symbols it defines and the ones it leaves undefined (nm);
an undefined symbol that another file of lib/ defines is a reference from the one file to the
other. Two rules: no reference runs from a layer to a higher one, and no files form a circle
(a strongly connected group of more than one file). Where the code does not keep to them yet,
tests/layers-known.txt lists each upward reference ("FILE -> FILE: SYMBOL") and each circle
("circle: FILE FILE ..."): anything new fails, and so does a listed entry that is gone (take it
off the list), so the list only shrinks as the layers come true (issue 18).
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
        if kind == "U":
            undef[name].add(sym)
        elif kind in "TDBRVW" and kind.isupper():
            defs.setdefault(sym, name)

refs = {}   # (from, to) -> symbols
for name, syms in undef.items():
    for s in syms:
        d = defs.get(s)
        if d and d != name:
            refs.setdefault((name, d), set()).add(s)

found = set()
for (a, b), syms in sorted(refs.items()):
    if layer_of[b] > layer_of[a]:
        for s in sorted(syms):
            found.add("%s.c -> %s.c: %s" % (a, b, s))

# circles: strongly connected groups of files (Tarjan)
graph = {}
for (a, b) in refs:
    graph.setdefault(a, set()).add(b)
index, low, stack, on, sccs = {}, {}, [], set(), []
def visit(v, counter=[0]):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in graph.get(v, ()):
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
            sccs.append(group)
sys.setrecursionlimit(10000)
for v in sorted(objs):
    if v not in index:
        visit(v)
for g in sccs:
    found.add("circle: " + " ".join(sorted(x + ".c" for x in g)))

known = set()
kpath = os.path.join(here, "layers-known.txt")
if os.path.exists(kpath):
    for line in open(kpath):
        line = line.split("#", 1)[0].strip()
        if line:
            known.add(line)

new = sorted(found - known)
gone = sorted(known - found)
ok(not new, "no reference from a layer to a higher one and no circle beyond tests/layers-known.txt",
   ["new: " + x for x in new])
ok(not gone, "every entry of tests/layers-known.txt still holds (fixed ones come off the list)",
   ["gone: " + x for x in gone])
print("# %d upward references and %d circles known, to be removed as issue 18 lands" %
      (sum(1 for k in known if not k.startswith("circle:")), sum(1 for k in known if k.startswith("circle:"))))
print("1..%d" % n)
sys.exit(1 if failed else 0)
