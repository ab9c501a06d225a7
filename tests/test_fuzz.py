"""Hostile input never crashes the process: the fuzz worker runs in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).parent / "workers" / "fuzz.py"
EXAMPLES = int(os.environ.get("NUMBA_POOL_FUZZ_EXAMPLES", "1500"))


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzz_in_subprocess(seed):
    proc = subprocess.run([sys.executable, str(WORKER), str(EXAMPLES), str(seed)],
                          capture_output=True, text=True, timeout=600)
    # A negative return code is a signal: segfault (-11), abort (-6), ...
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert proc.stdout.strip().endswith(f"OK {EXAMPLES}")
