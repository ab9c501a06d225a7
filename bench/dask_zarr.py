"""numba_pool.dask against dask.array.coarsen on arrays larger than memory:
writes bench/dask_zarr.md.

Per case (2-D image and 3-D volume, float32, max and mean, k = s = 2):

* **Zarr end to end**: read a Zarr array of ``--size-gb`` GB (default 8) and
  write the pooled result to a Zarr array, with Dask's threaded scheduler (one
  worker per core, a progress bar on stderr); throughput in GB/s of input and
  the process's peak resident memory.  "read" is the same read of the input
  alone (decompression included), so its share of the run is the I/O part.
* **Compute only**: the same pooling of an in-memory Dask array (``--mem-gb``,
  default 2 GB, same chunks), nothing written.

Every run is a fresh process (peak memory is that process's), medians of
``--repeats`` runs; the Zarr inputs are written once under ``--workdir`` and
deleted at the end.

    python bench/dask_zarr.py              # 8 GB on disk per case
    python bench/dask_zarr.py --quick      # 0.25 GB, one repeat: a smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# chunks of 64 MB of float32, the usual Zarr/OME-Zarr size class
CASES = {
    "2-D image (N, H, W, C)": dict(chunk=(1, 4096, 4096, 1), axes=(1, 2)),
    "3-D volume (N, D, H, W, C)": dict(chunk=(1, 64, 512, 512, 1), axes=(1, 2, 3)),
}


def shape_for(case: str, gb: float) -> tuple:
    """A shape of about ``gb`` GB made of whole chunks."""
    chunk = CASES[case]["chunk"]
    chunk_bytes = 4 * int(math.prod(chunk))
    n_chunks = max(1, round(gb * 2**30 / chunk_bytes))
    axes = CASES[case]["axes"]
    grid = [1] * len(axes)
    i = 0
    while math.prod(grid) < n_chunks:
        grid[i % len(axes)] *= 2
        i += 1
    shape = list(chunk)
    for a, g in zip(axes, grid):
        shape[a] *= g
    return tuple(shape)


def make_input(path: str, case: str, gb: float) -> None:
    import dask.array as da

    shape = shape_for(case, gb)
    chunk = CASES[case]["chunk"]
    x = da.random.default_rng(0).standard_normal(shape, chunks=chunk, dtype="float32")
    x.to_zarr(path, overwrite=True)


def pool(x, case: str, op: str, lib: str):
    import dask.array as da
    import numpy as np

    axes = CASES[case]["axes"]
    if lib == "coarsen":
        return da.coarsen(np.max if op == "max" else np.mean, x, {a: 2 for a in axes},
                          trim_excess=True)
    import numba_pool.dask as nd

    rank = len(axes)
    f = getattr(nd, f"{'max' if op == 'max' else 'avg'}_pool{rank}d")
    return f(x, 2)


def worker(job: dict) -> dict:
    import dask
    import dask.array as da
    import numpy as np
    from dask.diagnostics import ProgressBar

    dask.config.set(scheduler="threads", num_workers=os.cpu_count())
    case, op, lib, mode = job["case"], job["op"], job["lib"], job["mode"]
    if mode == "baseline":  # imports and kernels compiled on a tiny array: the floor
        x = da.ones((1,) + tuple(4 for _ in CASES[case]["axes"]) + (1,), dtype="float32",
                    chunks=2)
        import zarr  # noqa: F401

        pool(x, case, op, "numba_pool").compute()
        pool(x, case, op, "coarsen").compute()
        seconds, nbytes = 1.0, 0
    elif mode == "memory":
        shape = shape_for(case, job["gb"])
        data = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        x = da.from_array(data, chunks=CASES[case]["chunk"])
        pool(x[tuple(slice(0, 2 * c) for c in CASES[case]["chunk"])], case, op, lib).compute()
        t = time.perf_counter()
        y = pool(x, case, op, lib)
        dask.compute(y.sum())  # reduce the result: nothing large kept
        seconds = time.perf_counter() - t
        nbytes = data.nbytes
    else:
        from dask.callbacks import Callback

        x = da.from_zarr(job["src"])
        marks = {}
        # the compute's own start and end (the progress bar's thread adds up
        # to its refresh interval when it stops)
        clock = Callback(start=lambda dsk: marks.setdefault("start", time.perf_counter()),
                         finish=lambda dsk, state, errored: marks.update(end=time.perf_counter()))
        t = time.perf_counter()
        with ProgressBar(out=sys.stderr, dt=1.0), clock:
            if lib == "read":
                x.map_blocks(lambda b: np.zeros((1,) * b.ndim, b.dtype),
                             chunks=(1,) * x.ndim).sum().compute()
            else:
                pool(x, case, op, lib).to_zarr(job["dst"], overwrite=True)
        seconds = marks["end"] - t  # graph building included, the bar's stop excluded
        nbytes = x.nbytes
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": seconds, "gbps": nbytes / seconds / 1e9, "peak_mb": peak / 2**20}


def run(job: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)],
                         stdout=subprocess.PIPE, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size-gb", type=float, default=8.0)
    ap.add_argument("--mem-gb", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--worker")
    ap.add_argument("--out", default=str(HERE / "dask_zarr.md"))
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.quick:
        args.size_gb, args.mem_gb, args.repeats = 0.25, 0.25, 1
    work = Path(args.workdir or tempfile.mkdtemp(prefix="numba_pool_dask_"))
    rows = []
    try:
        for case in CASES:
            src = str(work / "input.zarr")
            t = time.perf_counter()
            make_input(src, case, args.size_gb)
            print(f"{case}: wrote {args.size_gb} GB input in {time.perf_counter() - t:.0f} s",
                  flush=True)
            read = [run(dict(case=case, op="", lib="read", mode="zarr", src=src, dst=""))
                    for _ in range(args.repeats)]
            read_s = statistics.median(r["seconds"] for r in read)
            base_mb = max(run(dict(case=case, op=op, lib="", mode="baseline"))["peak_mb"]
                          for op in ("max", "mean"))
            for op in ("max", "mean"):
                cells = {}
                for lib in ("numba_pool", "coarsen"):
                    zarr_runs = [run(dict(case=case, op=op, lib=lib, mode="zarr", src=src,
                                          dst=str(work / "out.zarr")))
                                 for _ in range(args.repeats)]
                    mem_runs = [run(dict(case=case, op=op, lib=lib, mode="memory",
                                         gb=args.mem_gb)) for _ in range(args.repeats)]
                    cells[lib] = {
                        "zarr_gbps": statistics.median(r["gbps"] for r in zarr_runs),
                        "zarr_s": statistics.median(r["seconds"] for r in zarr_runs),
                        "peak_mb": max(r["peak_mb"] for r in zarr_runs),
                        "mem_gbps": statistics.median(r["gbps"] for r in mem_runs),
                    }
                    print(case, op, lib, cells[lib], flush=True)
                rows.append((case, op, cells, read_s, base_mb))
            shutil.rmtree(src, ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    chunk_mb = 64
    lines = [
        "# numba_pool.dask vs dask.array.coarsen (k = s = 2, float32)",
        "",
        f"Generated by `python bench/dask_zarr.py`{' --quick' if args.quick else ''} on "
        f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores): Zarr input "
        f"of {args.size_gb:g} GB per case (chunks of {chunk_mb} MB), Dask's threaded scheduler "
        f"with {os.cpu_count()} workers, numba_pool at 1 thread per task; medians of "
        f"{args.repeats} fresh processes. *Zarr*: read the input, pool, write a Zarr output; "
        "*read share*: time to read and decompress the input alone / the numba_pool run. "
        f"*Compute only*: an in-memory Dask array of {args.mem_gb:g} GB, same chunks. "
        "Peak memory: the process's maximum resident set (Python, NumPy, Numba, Dask and "
        "Zarr included); in brackets, what it adds to the same process pooling a tiny array "
        f"(imports and compiled kernels), in chunks of {chunk_mb} MB.",
        "",
        "| case | op | Zarr GB/s numba_pool | Zarr GB/s coarsen | ratio | read share | "
        "compute-only GB/s numba_pool | compute-only GB/s coarsen | ratio | peak MB numba_pool "
        "| peak MB coarsen |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, op, cells, read_s, base_mb in rows:
        o, c = cells["numba_pool"], cells["coarsen"]
        lines.append(
            f"| {case} | {op} | {o['zarr_gbps']:.2f} | {c['zarr_gbps']:.2f} | "
            f"{o['zarr_gbps'] / c['zarr_gbps']:.2f}x | {100 * read_s / o['zarr_s']:.0f} % | "
            f"{o['mem_gbps']:.2f} | {c['mem_gbps']:.2f} | {o['mem_gbps'] / c['mem_gbps']:.1f}x | "
            f"{o['peak_mb']:.0f} ({(o['peak_mb'] - base_mb) / chunk_mb:.1f}) | "
            f"{c['peak_mb']:.0f} ({(c['peak_mb'] - base_mb) / chunk_mb:.1f}) |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
