"""A missing oracle fails the run; the documented opt-out is reported loudly."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def run_tensorflow_tests(tmp_path, **env):
    """Run tests/test_tensorflow.py where `import tensorflow` fails."""
    fake = tmp_path / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no TensorFlow on this platform')\n")
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_POOL_SKIP_TENSORFLOW"}
    environ.update(env, PYTHONPATH=os.pathsep.join([str(fake.parent), str(TESTS)]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(TESTS / "test_tensorflow.py")], capture_output=True, text=True,
                          env=environ, cwd=TESTS.parent, timeout=300)


def test_missing_tensorflow_fails_the_suite(tmp_path):
    proc = run_tensorflow_tests(tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "TensorFlow is a required test oracle" in proc.stdout + proc.stderr


def test_tensorflow_opt_out_is_reported(tmp_path):
    proc = run_tensorflow_tests(tmp_path, NUMBA_POOL_SKIP_TENSORFLOW="1")
    assert proc.returncode in (0, 5), proc.stdout + proc.stderr  # 5: this file alone ran no test
    assert "TensorFlow oracle NOT run (NUMBA_POOL_SKIP_TENSORFLOW=1)" in proc.stdout
