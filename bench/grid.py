"""Benchmark grid over the max_pool2d parameter space, numba_pool against PyTorch.

Cells: layout (NCHW, NHWC) x window (2, 3, 5, 7, 3x2) x stride (1, 2, = window)
x padding (none, half the window) x channels (1, 3, 64, 512) x dtype (float32,
float64), at a realistic size (inputs of 10-50 MB) and a small size (< 1 MB).
Each library runs in its own process per thread count (their thread pools
disturb each other); every cell is timed as the median of several calls
after one warm-up call.

    python bench/grid.py                 # full grid, 1 and 2 threads -> bench/grid.md, grid.png
    python bench/grid.py --quick         # a slice, for a smoke test
    python bench/grid.py worker LIB THREADS OUT.json [--quick]   (internal)

The report lists the worst cells (highest numba_pool / PyTorch time) first.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from timing import median_ms  # noqa: E402

WINDOWS = [2, 3, 5, 7, (3, 2)]
CHANNELS = [1, 3, 64, 512]
# (N, H=W) per channel count: ~16 MB of float32 (realistic) and ~0.4 MB (small)
SIZES = {"realistic": {1: (16, 512), 3: (8, 384), 64: (8, 96), 512: (8, 32)},
         "small": {1: (4, 160), 3: (2, 128), 64: (1, 40), 512: (1, 14)}}


@dataclass(frozen=True)
class Cell:
    size: str
    layout: str
    window: object
    stride: object
    padding: object
    channels: int
    dtype: str

    @property
    def shape(self) -> tuple:
        n, hw = SIZES[self.size][self.channels]
        return (n, self.channels, hw, hw) if self.layout == "NCHW" else (n, hw, hw, self.channels)

    @property
    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def label(self) -> str:
        w = "x".join(map(str, self.window)) if isinstance(self.window, tuple) else self.window
        s = "x".join(map(str, self.stride)) if isinstance(self.stride, tuple) else self.stride
        p = "x".join(map(str, self.padding)) if isinstance(self.padding, tuple) else self.padding
        return (f"{self.layout} k{w} s{s} p{p} C{self.channels} {self.dtype} "
                f"{'x'.join(map(str, self.shape))}")


def cells(quick: bool = False) -> list[Cell]:
    out = []
    for size, layout, window, stride_kind, pad_kind, channels, dtype in itertools.product(
            ("realistic", "small"), ("NCHW", "NHWC"), WINDOWS, ("1", "2", "window"),
            ("none", "half"), CHANNELS, ("float32", "float64")):
        pair = window if isinstance(window, tuple) else (window, window)
        stride = window if stride_kind == "window" else int(stride_kind)
        if stride_kind == "2" and pair == (2, 2):
            continue  # same as stride = window
        padding = 0 if pad_kind == "none" else tuple(k // 2 for k in pair)
        out.append(Cell(size, layout, window, stride, padding, channels, dtype))
    if quick:
        out = [c for c in out if c.size == "small" and c.dtype == "float32"
               and c.channels in (3, 64) and c.window in (3, (3, 2))]
    return out


def _prepare(lib: str, cell: Cell):
    """(forward, backward, output elements or None) of one library on one cell."""
    x = np.random.default_rng(0).standard_normal(cell.shape).astype(cell.dtype)
    if lib == "numba_pool":
        import numba_pool as npool

        y, am = npool.max_pool2d(x, cell.window, cell.stride, cell.padding,
                                 data_format=cell.layout)
        dy = np.ones_like(y)
        return (lambda: npool.max_pool2d(x, cell.window, cell.stride, cell.padding,
                                         data_format=cell.layout),
                lambda: npool.max_pool2d_backward(dy, am), y.size)
    from impls import pytorch_callables

    return pytorch_callables(x, cell.layout, cell.window, cell.stride, cell.padding) + (None,)


def floor_ms(cell: Cell, op: str, out_elems: int, bw: dict) -> float:
    """The cell's bandwidth floor: forward reads x and writes y and the 1-byte
    argmax; backward reads dy and the argmax and writes dx."""
    from bandwidth import floor_ms as floor

    item = np.dtype(cell.dtype).itemsize
    x_bytes, y_bytes = int(np.prod(cell.shape)) * item, out_elems * item
    if op == "fwd":
        return floor(x_bytes, y_bytes + out_elems, bw)
    return floor(y_bytes + out_elems, x_bytes, bw)


def worker(lib: str, threads: int, out_path: str, quick: bool) -> None:
    if lib == "numba_pool":
        import numba

        numba.set_num_threads(threads)
    else:
        import torch

        torch.set_num_threads(threads)
    results = {}
    if lib == "numba_pool":  # the floor's bandwidth, at this thread count
        import bandwidth

        results[BANDWIDTH] = bandwidth.measure()
    todo = cells(quick)
    for i, cell in enumerate(todo):
        fwd, bwd, out_elems = _prepare(lib, cell)
        nbytes = np.prod(cell.shape) * np.dtype(cell.dtype).itemsize
        rounds = 5 if nbytes > 4e6 else 15
        results[cell.key] = {"fwd": median_ms(fwd, rounds), "bwd": median_ms(bwd, rounds),
                             "out": out_elems}
        del fwd, bwd
        if (i + 1) % 40 == 0:
            print(f"  {lib} {threads} thread(s): {i + 1}/{len(todo)} cells", flush=True)
    Path(out_path).write_text(json.dumps(results))


def run_all(thread_list: list[int], quick: bool, raw: Path) -> dict:
    raw.mkdir(exist_ok=True)
    data = {}
    for threads in thread_list:
        for lib in ("numba_pool", "pytorch"):
            out = raw / f"grid-{lib}-{threads}.json"
            env = dict(os.environ, NUMBA_NUM_THREADS=str(max(thread_list)),
                       OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
            cmd = [sys.executable, str(Path(__file__).resolve()), "worker", lib, str(threads),
                   str(out)] + (["--quick"] if quick else [])
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=env)
            print(f"grid: {lib} at {threads} thread(s) done in {time.perf_counter() - t0:.0f} s",
                  flush=True)
            data[(lib, threads)] = json.loads(out.read_text())
    return data


BANDWIDTH = "bandwidth"  # key of the numba_pool worker's bandwidth measurement
FLOOR_FACTOR = 1.3  # the "within 1.3x of the bandwidth floor"


def ratios(data: dict, thread_list: list[int], quick: bool) -> list[dict]:
    rows = []
    for cell in cells(quick):
        for threads in thread_list:
            run = data[("numba_pool", threads)]
            ours, theirs = run[cell.key], data[("pytorch", threads)][cell.key]
            for op in ("fwd", "bwd"):
                floor = floor_ms(cell, op, ours["out"], run[BANDWIDTH])
                rows.append(dict(cell=cell, threads=threads, op=op, ours=ours[op],
                                 torch=theirs[op], ratio=ours[op] / theirs[op],
                                 floor=ours[op] / floor))
    return rows


def misses(row: dict) -> bool:
    """Above the issue's target: realistic cells above 0.5x PyTorch and above
    1.3x the bandwidth floor (within 1.3x of the floor no library can be 2x
    faster unless it beats the floor); small cells above 1.0x PyTorch."""
    if row["cell"].size == "small":
        return row["ratio"] > 1.0
    return row["ratio"] > 0.5 and row["floor"] > FLOOR_FACTOR


def heat_map(rows: list[dict], path: Path, thread_list: list[int]) -> None:
    """One panel per (size, op): rows = layout/window/stride/padding, columns =
    channels x dtype x threads, colour = log2(numba_pool / PyTorch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def row_label(c: Cell) -> str:
        return " ".join(c.label().split()[:4])  # layout, window, stride, padding

    def col_label(c: Cell, threads: int) -> str:
        return f"C{c.channels} {c.dtype.replace('float', 'f')} {threads}t"

    panels = [(size, op) for size in ("realistic", "small") for op in ("fwd", "bwd")]
    fig, axes = plt.subplots(2, 2, figsize=(18, 22), squeeze=False)
    im = None
    for ax, (size, op) in zip(axes.flat, panels):
        sel = [r for r in rows if r["cell"].size == size and r["op"] == op]
        if not sel:
            ax.set_axis_off()
            continue
        rlabels = list(dict.fromkeys(row_label(r["cell"]) for r in sel))
        clabels = sorted({col_label(r["cell"], r["threads"]) for r in sel},
                         key=lambda s: (int(s.split()[0][1:]), s.split()[1], s.split()[2]))
        grid = np.full((len(rlabels), len(clabels)), np.nan)
        for r in sel:
            grid[rlabels.index(row_label(r["cell"])),
                 clabels.index(col_label(r["cell"], r["threads"]))] = np.log2(r["ratio"])
        im = ax.imshow(grid, aspect="auto", cmap="RdYlGn_r", vmin=-4, vmax=4,
                       interpolation="nearest")
        target = 0.5 if size == "realistic" else 1.0
        ax.set_title(f"{size} size, {op}: log2(numba_pool / PyTorch); target {target}x")
        ax.set_xticks(range(len(clabels)), clabels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(rlabels)), rlabels, fontsize=6)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.4, label="log2 ratio (green: faster)")
    fig.savefig(path, dpi=70)
    plt.close(fig)


def report(rows: list[dict], thread_list: list[int], machine: str) -> str:
    worst = sorted(rows, key=lambda r: -r["ratio"])
    lines = [f"# Benchmark grid: numba_pool / PyTorch, {machine}", "",
             f"{len(rows)} measurements ({len(rows) // 4} cells x threads {thread_list} x "
             "forward/backward); median ms of 5 calls (15 below 4 MB) after a warm-up, a new "
             "result each call (no `out=`; numba_pool's results of 4 MiB or more reuse the "
             "memory of results already dropped, its result-buffer cache); each library in its "
             "own process. Worst cells first.", "",
             "Targets: realistic cells at most 0.5× PyTorch or within "
             f"{FLOOR_FACTOR}× of the bandwidth floor (reading the inputs and writing the "
             "outputs once at the read/write bandwidth measured in the numba_pool process at "
             "the same thread count); small cells at most 1.0× PyTorch.", ""]
    for size in ("realistic", "small"):
        target = 0.5 if size == "realistic" else 1.0
        for op in ("fwd", "bwd"):
            sel = [r for r in rows if r["cell"].size == size and r["op"] == op]
            if not sel:
                continue
            ratio = np.array([r["ratio"] for r in sel])
            line = (f"- {size} {op}: median {np.median(ratio):.2f}×, worst {ratio.max():.2f}×, "
                    f"{(ratio > target).sum()} of {ratio.size} above {target}×")
            if size == "realistic":
                line += (f", {sum(misses(r) for r in sel)} of them also above {FLOOR_FACTOR}× "
                         "the floor")
            lines.append(line)
    lines.append("")
    for size in ("realistic", "small"):
        sel = [r for r in worst if r["cell"].size == size]
        if not sel:
            continue
        missed = [r for r in sel if misses(r)]
        lines += [f"## {size} size: worst 40 of {len(sel)} ({len(missed)} miss the target)",
                  "", "| cell | threads | op | numba_pool ms | PyTorch ms | ratio | ours / floor |",
                  "|---|---|---|---|---|---|---|"]
        for r in sel[:40]:
            lines.append(f"| {r['cell'].label()} | {r['threads']} | {r['op']} | {r['ours']:.3f} "
                         f"| {r['torch']:.3f} | {r['ratio']:.2f}× | {r['floor']:.2f}× |")
        ratios_ = np.array([r["ratio"] for r in sel])
        lines += ["", f"Median ratio {np.median(ratios_):.2f}×, best {ratios_.min():.2f}×, "
                  f"worst {ratios_.max():.2f}×.", ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "worker":
        p = argparse.ArgumentParser()
        p.add_argument("cmd"), p.add_argument("lib"), p.add_argument("threads", type=int)
        p.add_argument("out"), p.add_argument("--quick", action="store_true")
        a = p.parse_args(argv)
        worker(a.lib, a.threads, a.out, a.quick)
        return
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", default=os.environ.get("BENCH_THREAD_LIST", "1 2"))
    p.add_argument("--out", default=str(HERE / "grid.md"))
    p.add_argument("--from-raw", action="store_true",
                   help="rewrite the report from the last run's bench/.raw files, timing nothing")
    a = p.parse_args(argv)
    thread_list = [int(t) for t in a.threads.split()]
    if a.from_raw:
        data = {(lib, t): json.loads((HERE / ".raw" / f"grid-{lib}-{t}.json").read_text())
                for t in thread_list for lib in ("numba_pool", "pytorch")}
    else:
        data = run_all(thread_list, a.quick, HERE / ".raw")
    rows = ratios(data, thread_list, a.quick)
    from report import cpu_model

    machine = f"{cpu_model()}, {os.cpu_count()} cores"
    Path(a.out).write_text(report(rows, thread_list, machine))
    heat_map(rows, Path(a.out).with_suffix(".png"), thread_list)
    print(f"wrote {a.out} and {Path(a.out).with_suffix('.png')}")


if __name__ == "__main__":
    main()
