"""Scaling check of the real-network configurations (issue "fast on every
configuration") across thread counts, numba_pool and PyTorch each in its own
process; prints a Markdown table.  Used on the lent 16-core machine:

    python bench/scaling.py "1 4 16" > bench/device/scaling-16core.md
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_ms  # noqa: E402

CONFIGS = [
    ("ResNet stem NCHW 32x64x112x112 k3 s2 p1", (32, 64, 112, 112), 3, 2, 1, "NCHW"),
    ("ResNet stem NHWC 32x112x112x64 k3 s2 p1", (32, 112, 112, 64), 3, 2, 1, "NHWC"),
    ("YOLO SPPF NCHW 16x512x20x20 k5 s1 p2", (16, 512, 20, 20), 5, 1, 2, "NCHW"),
    ("YOLO SPPF NHWC 16x20x20x512 k5 s1 p2", (16, 20, 20, 512), 5, 1, 2, "NHWC"),
    ("seed NHWC 128x28x28x3 k2 s2", (128, 28, 28, 3), 2, 2, 0, "NHWC"),
    ("VGG NCHW 32x64x56x56 k2 s2", (32, 64, 56, 56), 2, 2, 0, "NCHW"),
]


def worker(lib: str, threads: int) -> dict:
    out = {}
    if lib == "numba_pool":
        import numba

        import numba_pool as npool

        numba.set_num_threads(threads)
    else:
        import torch

        torch.set_num_threads(threads)
    for name, shape, k, s, p, fmt in CONFIGS:
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        if lib == "numba_pool":
            y, am = npool.max_pool2d(x, k, s, p, data_format=fmt)
            dy = np.ones_like(y)
            fwd = lambda: npool.max_pool2d(x, k, s, p, data_format=fmt)  # noqa: E731
            bwd = lambda: npool.max_pool2d_backward(dy, am)  # noqa: E731
        else:
            from impls import pytorch_callables

            fwd, bwd = pytorch_callables(x, fmt, k, s, p)
        out[name] = (median_ms(fwd, 15), median_ms(bwd, 15))
    return out


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        print(json.dumps(worker(sys.argv[2], int(sys.argv[3]))))
        return
    threads = [int(t) for t in (sys.argv[1] if len(sys.argv) > 1 else "1 2").split()]
    data = {}
    for t in threads:
        for lib in ("numba_pool", "pytorch"):
            env = dict(os.environ, NUMBA_NUM_THREADS=str(max(threads)), OMP_NUM_THREADS=str(t))
            res = subprocess.run([sys.executable, os.path.abspath(__file__), "worker", lib, str(t)],
                                 env=env, check=True, capture_output=True, text=True)
            data[(lib, t)] = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"{os.cpu_count()} CPUs; median ms of 15 calls; numba_pool / PyTorch (ratio)\n")
    print("| configuration | threads | forward | backward |")
    print("|---|---|---|---|")
    for name, *_ in CONFIGS:
        for t in threads:
            (of, ob), (tf, tb) = data[("numba_pool", t)][name], data[("pytorch", t)][name]
            print(f"| {name} | {t} | {of:.3f} / {tf:.3f} ({of / tf:.2f}×) | "
                  f"{ob:.3f} / {tb:.3f} ({ob / tb:.2f}×) |")


if __name__ == "__main__":
    main()
