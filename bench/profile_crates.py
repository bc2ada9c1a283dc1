"""Sums `perf report --sort symbol` self time by crate (stdin → stdout), for bench/profile.

A symbol's crate is its leading path segment; `<T as trait>::f` counts for the trait's crate,
`drop_in_place<X>` and `Map<Fut, F>`-style wrappers for what they wrap when it is a named type;
mimalloc's `mi_*` and libc's string functions are grouped under their library."""
import re
import sys
from collections import Counter

IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def crate_of(sym: str) -> str:
    if sym.startswith(("mi_", "_mi_")):
        return "[mimalloc]"
    if sym.startswith("__") or sym.startswith("0x"):
        return "[libc/other]"
    m = re.match(r"core::ptr::drop_in_place<(.*)>$", sym)
    if m:
        return crate_of(m.group(1).lstrip("<&"))
    m = re.match(r"<([A-Z]\w*|&\w+) as ([\w:]+)", sym)  # <T as tower::...>
    if m:
        return crate_of(m.group(2))
    sym = sym.lstrip("<&")
    head = re.split(r"::|<| ", sym, maxsplit=1)[0]
    return head if IDENT.match(head) else "[libc/other]"


by_crate: Counter[str] = Counter()
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    share, space, sym = float(m.group(1)), m.group(2), m.group(3).strip()
    by_crate["[kernel]" if space == "k" else crate_of(sym)] += share
for crate, share in by_crate.most_common(25):
    print(f"{share:6.2f}%  {crate}")
