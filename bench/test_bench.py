"""pytest-benchmark suite: every case x op x implementation.

Run through ``make bench`` (bench/report.py), which also measures the
memory bandwidth and writes bench/results.md; or directly:
``BENCH_THREADS=2 python -m pytest bench/test_bench.py``.
"""

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
    benchmark.pedantic(fn, rounds=5 if slow else 30, iterations=1, warmup_rounds=1)
