"""JIT cost a user feels: cold (empty cache) and warm first calls, and compile
time per kernel family; written to bench/jit.md by ``make bench``.

Every measurement runs in a fresh process with its own NUMBA_CACHE_DIR:
"cold" = empty cache (what a fresh install pays), "warm" = the cache the
cold run filled (every later process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

FIRST_CALL = """
import sys, time
t0 = time.perf_counter()
import numpy as np, numba_pool as npool
t1 = time.perf_counter()
op, shape, k, s, p, fmt = {config}
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
rank = len(shape) - 2
if op == "max":
    y, am = getattr(npool, f"max_pool{{rank}}d")(x, k, s, p, data_format=fmt)
    t2 = time.perf_counter()
    getattr(npool, f"max_pool{{rank}}d_backward")(np.ones_like(y), am)
else:
    y = getattr(npool, f"avg_pool{{rank}}d")(x, k, s, p, data_format=fmt)
    t2 = time.perf_counter()
    getattr(npool, f"avg_pool{{rank}}d_backward")(np.ones_like(y), x.shape, k, s, p,
                                                  data_format=fmt)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""

CONFIGS = {
    "max 2-D NHWC 8x32x32x16 k3 s2 p1": ("max", (8, 32, 32, 16), 3, 2, 1, "NHWC"),
    "max 2-D NCHW 8x16x32x32 k2 s2": ("max", (8, 16, 32, 32), 2, 2, 0, "NCHW"),
    "max 2-D NCHW 4x64x20x20 k5 s1 p2": ("max", (4, 64, 20, 20), 5, 1, 2, "NCHW"),
    "max 2-D NHWC 128x28x28x3 k2 s2 (seed)": ("max", (128, 28, 28, 3), 2, 2, 0, "NHWC"),
    "max 1-D NCW 8x64x400 k3 s2 p1": ("max", (8, 64, 400), 3, 2, 1, "NCW"),
    "max 3-D NDHWC 2x8x16x16x16 k3 s2 p1": ("max", (2, 8, 16, 16, 16), 3, 2, 1, "NDHWC"),
    "avg 2-D NCHW 8x16x32x32 k3 s1 p1": ("avg", (8, 16, 32, 32), 3, 1, 1, "NCHW"),
}

# A configuration of the same op with other window constants, run first into the
# cache of the "after another configuration" measurement: what a model's second
# pooling layer pays (the parallel driver, shared by every kernel, is cached
# then; the new configuration's kernels are not).
PRIMERS = {"max": ("max", (8, 32, 32, 16), 2, 2, 0, "NHWC"),
           "avg": ("avg", (8, 32, 32, 16), 2, 2, 0, "NHWC")}

FAMILY = """
from numba_pool import warmup
print(warmup._compile_family("float32", {family!r}))
"""


# Where one kernel's compile time goes: the forward kernel of the first
# configuration above, and the parallel driver that runs it on threads (compiled
# once per Numba cache, shared by every kernel), each
# in a fresh process with an empty cache, split by Numba's compiler passes.
BREAKDOWN = """
import time
import numpy as np, numba_pool as npool
from numba_pool import _driver, _plan
seen = []
_plan._run = lambda kernel, arrays, consts, work: seen.append((kernel, arrays, consts))
npool.max_pool2d(np.zeros((8, 32, 32, 16), np.float32), 3, 2, 1)
kernel, arrays, consts = seen[0]
if {build!r} == "kernel":
    compiled = kernel
    t0 = time.perf_counter()
    kernel(*arrays, *consts, 0, consts[-1])
else:  # the kernel and its trampoline first (not timed), then the driver
    entry, block = _driver.prepare(kernel, arrays, consts)
    compiled = _driver.drive
    t0 = time.perf_counter()
    _driver.drive(entry, block, consts[-1], 2)
total = time.perf_counter() - t0
passes = compiled.get_metadata(compiled.signatures[0])["pipeline_times"]["nopython"]
groups = dict(typing=0.0, inlining=0.0, llvm=0.0, parfor=0.0)
for name, t in passes.items():
    dt = t.init + t.run + t.finalize
    if "type_inference" in name:
        groups["typing"] += dt
    elif "inline" in name:
        groups["inlining"] += dt
    elif "parfor" in name:
        groups["parfor"] += dt
    elif "lowering" in name:
        groups["llvm"] += dt
print(total, *groups.values())
"""


def _run(code: str, cache: str) -> list[float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONUNBUFFERED="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True).stdout.split()
    return [float(v) for v in out]


def measure() -> tuple[dict, dict, dict]:
    first_calls = {}
    for name, config in CONFIGS.items():
        with tempfile.TemporaryDirectory() as cache:
            cold = _run(FIRST_CALL.format(config=config), cache)
            warm = min((_run(FIRST_CALL.format(config=config), cache) for _ in range(3)),
                       key=sum)
        with tempfile.TemporaryDirectory() as cache:
            _run(FIRST_CALL.format(config=PRIMERS[config[0]]), cache)
            second = _run(FIRST_CALL.format(config=config), cache)
        first_calls[name] = {"cold": cold, "warm": warm, "second": second}
    breakdown = {}
    for build in ("kernel", "parallel driver"):
        with tempfile.TemporaryDirectory() as cache:
            breakdown[build] = _run(BREAKDOWN.format(build=build), cache)
    from numba_pool.warmup import FAMILIES

    families = {}
    for family in FAMILIES:
        with tempfile.TemporaryDirectory() as cache:
            families[family] = _run(FAMILY.format(family=family), cache)[0]
    return first_calls, breakdown, families


def report(first_calls: dict, breakdown: dict, families: dict, machine: str) -> str:
    lines = [f"# JIT cost ({machine}, float32)", "",
             "First calls in a fresh process: import, first forward, first backward "
             "(seconds). Cold: empty Numba cache; warm: the cache the cold run filled "
             "(best of 3); after another configuration: a cache holding one other configuration "
             f"of the same op ({PRIMERS['max'][1]} k2 s2 NHWC), as a model's second pooling "
             "layer finds it (forward + backward). Targets: cold forward + backward ≤ 3 s, "
             "warm total ≤ 0.5 s.", "",
             "| configuration | cold import | cold fwd | cold bwd | cold fwd+bwd | "
             "after another configuration | warm total |",
             "|---|---|---|---|---|---|---|"]
    for name, r in first_calls.items():
        c, w, a = r["cold"], r["warm"], r["second"]
        lines.append(f"| {name} | {c[0]:.2f} | {c[1]:.2f} | {c[2]:.2f} | {c[1] + c[2]:.2f} | "
                     f"{a[1] + a[2]:.2f} | {sum(w):.2f} |")
    lines += ["", "Where the compile time goes: the forward kernel of the first configuration "
              "(the one build both the serial and the parallel path run), and the parallel "
              "driver (compiled once per Numba cache and shared by every kernel; timed after "
              "its kernel), each in a fresh process with an empty "
              "cache (seconds; typing includes compiling the functions it calls; parfor = "
              "building and compiling the parallel loop body):", "",
              "| build | first call | typing | Numba inlining | lowering + LLVM | parfor |",
              "|---|---|---|---|---|---|"]
    for build, (total, typing, inlining, llvm, parfor) in breakdown.items():
        lines.append(f"| {build} | {total:.2f} | {typing:.2f} | {inlining:.2f} | {llvm:.2f} | "
                     f"{parfor:.2f} |")
    lines += ["", "Compile time per kernel family (`python -m numba_pool warmup` compiles all of "
              "them and the parallel driver, in parallel processes), one fresh process and "
              "empty cache each:", "", "| family | seconds |", "|---|---|"]
    lines += [f"| {f} | {s:.1f} |" for f, s in families.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    from report import cpu_model

    first_calls, breakdown, families = measure()
    text = report(first_calls, breakdown, families, f"{cpu_model()}, {os.cpu_count()} cores")
    (HERE / "jit.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
