"""The fixed list of benchmark cases (shared by the benchmarks and tests/test_bench_cases.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Case:
    name: str
    shape: tuple  # logical shape in data_format
    pool_size: int
    strides: int
    padding: int  # symmetric (PyTorch style)
    data_format: str = "NHWC"
    dtype: str = "float32"
    large: bool = False  # a "large case" for the targets
    small_shape: tuple = ()  # shape for the correctness test of the case

    @property
    def kwargs(self) -> dict:
        return dict(pool_size=self.pool_size, strides=self.strides, padding=self.padding,
                    data_format=self.data_format)

    def make_x(self, small: bool = False, seed: int = 0) -> np.ndarray:
        shape = self.small_shape if small else self.shape
        rng = np.random.default_rng(seed)
        return rng.standard_normal(shape).astype(self.dtype)


CASES = [
    Case("resnet-stem", (32, 112, 112, 64), 3, 2, 1, large=True, small_shape=(2, 13, 12, 64)),
    Case("vgg", (32, 56, 56, 128), 2, 2, 0, large=True, small_shape=(2, 8, 10, 128)),
    Case("big-image", (1, 2048, 2048, 8), 2, 2, 0, large=True, small_shape=(1, 33, 64, 8)),
    Case("seed", (128, 28, 28, 3), 2, 2, 0, small_shape=(4, 28, 28, 3)),
    Case("nchw", (32, 64, 56, 56), 2, 2, 0, data_format="NCHW", small_shape=(2, 3, 14, 15)),
    Case("float64", (16, 56, 56, 64), 3, 2, 1, dtype="float64", small_shape=(2, 9, 9, 64)),
    Case("latency", (1, 14, 14, 32), 2, 2, 0, small_shape=(1, 14, 14, 32)),
]

BY_NAME = {c.name: c for c in CASES}
