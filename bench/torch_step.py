"""A PyTorch training step with PyTorch's pooling and after
``numba_pool.torch.convert``: writes bench/torch_step.md.

The model is built here from ``torch.nn`` layers: a ResNet-like stem (7x7/2
convolution, batch norm, ReLU, 3x3/2 max pooling), three 3x3 convolution
blocks (one with a 3x3/1 average pooling), global average pooling and a
linear head; batch 32 of 3x112x112 images, float32, SGD.  Each (layout,
threads, pooling) cell runs in its own process: warm-up steps (JIT, caches),
then the median of timed steps, then one profiled step whose pooling
operators (PyTorch's ``*pool*`` ops or ``numba_pool::*``) are summed.

    python bench/torch_step.py            # full run
    python bench/torch_step.py --quick    # fewer steps (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_ms  # noqa: E402

HERE = Path(__file__).resolve().parent
BATCH, SIDE = 32, 112


def build_model():
    import torch
    from torch import nn

    def block(c, pool=None):
        layers = [nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
        return nn.Sequential(*(layers + ([pool] if pool else [])))

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
        block(32), block(32, nn.AvgPool2d(3, 1, 1)), block(32),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def is_pooling(name: str) -> bool:
    return name.startswith("numba_pool::") or (
        name.startswith("aten::") and "pool" in name and "adaptive_avg" not in name)


def worker(layout: str, threads: int, pooling: str, steps: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    model = build_model()
    if pooling == "numba_pool":
        import numba_pool.torch as nt

        nt.convert(model)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 3, SIDE, SIDE, generator=gen).contiguous(memory_format=fmt)
    target = torch.randint(0, 10, (BATCH,), generator=gen)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()

    for _ in range(2):  # three warm-up steps with median_ms's own
        step()
    step_ms = median_ms(step, steps)
    from torch.profiler import ProfilerActivity, profile

    pool_ms = []
    for _ in range(3):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        # top-level pooling events only (an op's children are inside its time)
        events = [e for e in prof.events() if is_pooling(e.name)]
        ids = {id(e) for e in events}
        top = [e for e in events if e.cpu_parent is None or id(e.cpu_parent) not in ids]
        pool_ms.append(sum(e.cpu_time_total for e in top) / 1000)
    return {"step_ms": step_ms, "pool_ms": statistics.median(pool_ms)}


def run_cell(layout, threads, pooling, steps) -> dict:
    cmd = [sys.executable, __file__, "--worker", layout, str(threads), pooling, str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1200,
                         env={**os.environ, "OMP_NUM_THREADS": str(threads),
                              "NUMBA_NUM_THREADS": str(threads)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", nargs=4)
    ap.add_argument("--out", default=str(HERE / "torch_step.md"))
    args = ap.parse_args()
    if args.worker:
        layout, threads, pooling, steps = args.worker
        print(json.dumps(worker(layout, int(threads), pooling, int(steps))))
        return
    steps = 3 if args.quick else 15
    rounds = 1 if args.quick else 5
    rows = []
    for layout in ("contiguous", "channels_last"):
        for threads in (1, 2):
            # alternate the two processes, `rounds` times: this shared machine's
            # speed drifts by 20 % between runs
            cells = {"pytorch": [], "numba_pool": []}
            for _ in range(rounds):
                for pooling in cells:
                    cells[pooling].append(run_cell(layout, threads, pooling, steps))
            theirs, ours = ({k: statistics.median(c[k] for c in cells[p]) for k in cells[p][0]}
                            for p in ("pytorch", "numba_pool"))
            rows.append((layout, threads, theirs, ours))
            print(layout, threads, theirs, ours, flush=True)
    import torch

    lines = [
        "# Training step: PyTorch's pooling vs `numba_pool.torch.convert(model)`",
        "",
        f"Generated by `python bench/torch_step.py`{' --quick' if args.quick else ''} on "
        f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores), "
        f"PyTorch {torch.__version__}.",
        f"Model: ResNet-like stem (7x7/2 conv, BN, ReLU, 3x3/2 max pooling), three 3x3 conv "
        f"blocks (one with 3x3/1 average pooling), global average pooling, linear head; batch "
        f"{BATCH} at {SIDE}x{SIDE}, float32, SGD. Median of {steps} steps after 3 warm-up steps, "
        f"each cell in its own process, median of {rounds} alternating processes. "
        "*Pooling* = CPU time of the max and average pooling "
        "operators (forward and backward) in a profiled step (median of 3); global average "
        "pooling is PyTorch's in both columns and not counted.",
        "",
        "| layout | threads | step, PyTorch (ms) | step, numba_pool (ms) | step speed-up | "
        "pooling, PyTorch (ms) | pooling, numba_pool (ms) | pooling ratio | pooling share "
        "of PyTorch's step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layout, threads, t, o in rows:
        lines.append(
            f"| {layout} | {threads} | {t['step_ms']:.0f} | {o['step_ms']:.0f} | "
            f"{t['step_ms'] / o['step_ms']:.2f}x | {t['pool_ms']:.1f} | {o['pool_ms']:.1f} | "
            f"{o['pool_ms'] / t['pool_ms']:.2f}x | {100 * t['pool_ms'] / t['step_ms']:.0f} % |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
