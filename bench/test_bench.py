"""pytest-benchmark suite: every case x op x implementation.

Run through ``make bench`` (bench/report.py), which also measures the
memory bandwidth and writes bench/results.md; or directly:
``BENCH_THREADS=2 python -m pytest bench/test_bench.py``.
"""

import os

import pytest

from cases import CASES
from impls import applies, available, prepare

IMPLS = available()
PARAMS = [
    pytest.param(case, impl, id=f"{case.name}-{impl.replace(' ', '_')}")
    for case in CASES
    for impl in IMPLS
    if applies(impl, case)
]


@pytest.mark.parametrize("op", ["fwd", "bwd"])
@pytest.mark.parametrize("case, impl", PARAMS)
def test_pool(benchmark, case, impl, op):
    fwd, bwd = prepare(impl, case, case.make_x())
    fn = fwd if op == "fwd" else bwd
    benchmark.group = f"{case.name} {op}"
    benchmark.extra_info.update(case=case.name, impl=impl, op=op)
    slow = impl in ("reference", "seed loops")
    rounds = int(os.environ.get("BENCH_ROUNDS", "30"))
    benchmark.pedantic(fn, rounds=min(rounds, 5) if slow else rounds, iterations=1,
                       warmup_rounds=1)
