import os
import sys

from hypothesis import HealthCheck, Phase, settings

sys.path.insert(0, os.path.dirname(__file__))

# Scripts run in subprocesses by the tests; never imported by pytest (doctest collection).
collect_ignore_glob = ["workers/*"]

settings.register_profile(
    "default",
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=2000)
# For mutation runs (break the code on purpose, see which tests fail): report
# the first failing example without spending minutes shrinking it.
settings.register_profile("mutation", parent=settings.get_profile("default"),
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _reuse_every_result_buffer():
    """Every result of the suite (not only those of 4 MiB and more) comes from
    the result-buffer cache, and every reused buffer is filled with garbage
    first: an element a kernel fails to write shows up in the bitwise checks.
    tests/test_buffers.py checks the default settings."""
    from numba_pool import _buffers

    _buffers.MIN_BYTES = 1
    _buffers._cache.poison = True


_reuse_every_result_buffer()


def pytest_terminal_summary(terminalreporter):
    """An oracle that was opted out is reported loudly, never silently."""
    if os.environ.get("NUMBA_POOL_SKIP_TENSORFLOW") == "1":
        terminalreporter.write_sep("!", "TensorFlow oracle NOT run (NUMBA_POOL_SKIP_TENSORFLOW=1)",
                                   red=True)
