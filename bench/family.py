"""The pooling family against PyTorch: cases from real networks, each library
in its own process, at 1 and 2 threads; writes bench/family.md (worst first).

    python bench/family.py            # full run
    python bench/family.py --quick    # fewer repeats
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# name, op, logical NC-first shape, layout, parameters
CASES = [
    ("audio 1-D max k3 s2 p1 (NCW)", "max1d", (32, 128, 4000), "first", dict(k=3, s=2, p=1)),
    ("audio 1-D max k3 s2 p1 (NWC)", "max1d", (32, 128, 4000), "last", dict(k=3, s=2, p=1)),
    ("video 3-D max k2 s2 (NCDHW)", "max3d", (8, 64, 16, 56, 56), "first", dict(k=2, s=2, p=0)),
    ("video 3-D max k2 s2 (NDHWC)", "max3d", (8, 64, 16, 56, 56), "last", dict(k=2, s=2, p=0)),
    ("video 3-D max k3 s2 p1 (NCDHW)", "max3d", (8, 64, 16, 56, 56), "first", dict(k=3, s=2, p=1)),
    ("video 3-D max k3 s2 p1 (NDHWC)", "max3d", (8, 64, 16, 56, 56), "last", dict(k=3, s=2, p=1)),
    ("ResNet-D avg k2 s2 ceil, no pad count (NCHW)", "avg2d", (32, 256, 56, 56), "first",
     dict(k=2, s=2, p=0, ceil=True, cip=False)),
    ("ResNet-D avg k2 s2 ceil, no pad count (NHWC)", "avg2d", (32, 256, 56, 56), "last",
     dict(k=2, s=2, p=0, ceil=True, cip=False)),
    ("Inception avg k3 s1 p1 (NCHW)", "avg2d", (32, 192, 35, 35), "first",
     dict(k=3, s=1, p=1, ceil=False, cip=True)),
    ("Inception avg k3 s1 p1 (NHWC)", "avg2d", (32, 192, 35, 35), "last",
     dict(k=3, s=1, p=1, ceil=False, cip=True)),
    ("ResNet head global avg (NCHW)", "adaptive_avg2d", (64, 2048, 7, 7), "first", dict(out=1)),
    ("ResNet head global avg (NHWC)", "adaptive_avg2d", (64, 2048, 7, 7), "last", dict(out=1)),
    ("adaptive avg 7x7 (NCHW)", "adaptive_avg2d", (32, 256, 30, 30), "first", dict(out=7)),
    ("adaptive max 7x7 (NCHW)", "adaptive_max2d", (32, 256, 30, 30), "first", dict(out=7)),
]


def _inputs(shape, layout):
    import numpy as np

    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    if layout == "last":
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    return x


def _numba_callables(op, shape, layout, p):
    import numpy as np

    import numba_pool as npool

    rank = len(shape) - 2
    fmt = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}[rank][layout == "last"]
    x = _inputs(shape, layout)
    if op.startswith("max") and not op.startswith("max_"):
        f = getattr(npool, f"max_pool{rank}d")
        y, am = f(x, p["k"], p["s"], p["p"], data_format=fmt)
        dy = np.ones_like(y)
        b = getattr(npool, f"max_pool{rank}d_backward")
        return (lambda: f(x, p["k"], p["s"], p["p"], data_format=fmt)), (lambda: b(dy, am))
    if op.startswith("avg"):
        kw = dict(ceil_mode=p["ceil"], count_include_pad=p["cip"], data_format=fmt)
        f = getattr(npool, f"avg_pool{rank}d")
        dy = np.ones_like(f(x, p["k"], p["s"], p["p"], **kw))
        b = getattr(npool, f"avg_pool{rank}d_backward")
        return (lambda: f(x, p["k"], p["s"], p["p"], **kw)), (
            lambda: b(dy, x.shape, p["k"], p["s"], p["p"], **kw))
    if op.startswith("adaptive_avg"):
        f = getattr(npool, f"adaptive_avg_pool{rank}d")
        dy = np.ones_like(f(x, p["out"], data_format=fmt))
        b = getattr(npool, f"adaptive_avg_pool{rank}d_backward")
        return (lambda: f(x, p["out"], data_format=fmt)), (
            lambda: b(dy, x.shape, data_format=fmt))
    f = getattr(npool, f"adaptive_max_pool{rank}d")
    y, am = f(x, p["out"], data_format=fmt)
    dy = np.ones_like(y)
    b = getattr(npool, f"max_pool{rank}d_backward")
    return (lambda: f(x, p["out"], data_format=fmt)), (lambda: b(dy, am))


def _torch_callables(op, shape, layout, p):
    import torch
    import torch.nn.functional as F

    rank = len(shape) - 2
    x = torch.randn(shape)
    if layout == "last" and rank >= 2:
        x = x.contiguous(memory_format=torch.channels_last if rank == 2
                         else torch.channels_last_3d)
    elif layout == "last":  # 1-D channels-last: the (N, W, C) tensor viewed as (N, C, W)
        x = x.transpose(1, 2).contiguous().transpose(1, 2)
    xg = x.clone().requires_grad_()
    if op.startswith("max") and not op.startswith("max_"):
        f = getattr(F, f"max_pool{rank}d")
        call = lambda a: f(a, p["k"], p["s"], p["p"])  # noqa: E731
    elif op.startswith("avg"):
        f = getattr(F, f"avg_pool{rank}d")
        call = lambda a: f(a, p["k"], p["s"], p["p"], ceil_mode=p["ceil"],  # noqa: E731
                           count_include_pad=p["cip"])
    elif op.startswith("adaptive_avg"):
        f = getattr(F, f"adaptive_avg_pool{rank}d")
        call = lambda a: f(a, p["out"])  # noqa: E731
    else:
        f = getattr(F, f"adaptive_max_pool{rank}d")
        call = lambda a: f(a, p["out"])  # noqa: E731
    y = call(xg)
    dy = torch.ones_like(y)

    def fwd():
        with torch.no_grad():
            call(x)

    def bwd():
        torch.autograd.grad(y, xg, dy, retain_graph=True)

    return fwd, bwd


BANDWIDTH = "bandwidth"  # key of the numba_pool worker's bandwidth measurement


def _traffic(fwd, shape) -> tuple[int, int]:
    """(bytes in, bytes out) of a forward: x in; y and, for max pooling, the
    argmax out.  The backward reads what the forward wrote and writes dx."""
    import numpy as np

    res = fwd()
    y, argmax = res if isinstance(res, tuple) else (res, None)
    extra = argmax.offsets.nbytes if argmax is not None else 0
    return int(np.prod(shape)) * 4, y.nbytes + extra


def worker(lib: str, threads: int, repeats: int) -> None:
    """Time every case with one library in this process; print JSON.  The
    numba_pool worker also measures the bandwidth floor of each case."""
    from timing import median_ms

    out = {}
    if lib == "numba_pool":
        import numba

        import bandwidth

        numba.set_num_threads(threads)
        make = _numba_callables
        out[BANDWIDTH] = bandwidth.measure()
    else:
        import torch

        torch.set_num_threads(threads)
        make = _torch_callables
    for name, op, shape, layout, p in CASES:
        fwd, bwd = make(op, shape, layout, p)
        out[name] = [median_ms(fwd, repeats), median_ms(bwd, repeats)]
        if lib == "numba_pool":
            x_bytes, y_bytes = _traffic(fwd, shape)
            out[name] += [bandwidth.floor_ms(x_bytes, y_bytes, out[BANDWIDTH]),
                          bandwidth.floor_ms(y_bytes, x_bytes, out[BANDWIDTH])]
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], args.threads, args.repeats)
        return
    repeats = 5 if args.quick else args.repeats
    rows = []
    for threads in (1, 2):
        res = {}
        for lib in ("numba_pool", "pytorch"):
            proc = subprocess.run([sys.executable, __file__, "--worker", lib, "x", "--threads",
                                   str(threads), "--repeats", str(repeats)],
                                  capture_output=True, text=True, check=True)
            res[lib] = json.loads(proc.stdout.strip().splitlines()[-1])
        for name, *_ in CASES:
            for i, pas in enumerate(("forward", "backward")):
                ours, theirs = res["numba_pool"][name][i], res["pytorch"][name][i]
                floor = res["numba_pool"][name][2 + i]
                rows.append((ours / theirs, threads, name, pas, ours, theirs, ours / floor))
    rows.sort(reverse=True)
    from report import cpu_model

    lines = ["# The pooling family against PyTorch (worst first)", "",
             f"Machine: {cpu_model()}; float32; median ms of {repeats} runs; each library in its "
             "own process. *ours / floor*: numba_pool's time over reading the pass's inputs and "
             "writing its outputs once at the bandwidth measured in the numba_pool process at "
             "that thread count. *target*: at most 0.5× PyTorch, or within 1.3× of the floor "
             "(as in the grid).", "",
             "| ratio | threads | case | pass | numba_pool ms | PyTorch ms | ours / floor | target |",
             "|---|---|---|---|---|---|---|---|"]
    for ratio, threads, name, pas, ours, theirs, floor in rows:
        verdict = "met" if ratio <= 0.5 or floor <= 1.3 else "**missed**"
        lines.append(f"| {ratio:.2f}× | {threads} | {name} | {pas} | {ours:.3f} | {theirs:.3f} "
                     f"| {floor:.2f}× | {verdict} |")
    (HERE / "family.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
