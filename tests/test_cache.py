"""Numba's on-disk cache: shared by concurrent compilers, and usable from a read-only install."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numba_pool

WORKER = Path(__file__).parent / "workers" / "cache_user.py"


def env_without_numba_cache(**extra):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(extra)
    return env


def parse(stdout):
    last = stdout.strip().splitlines()[-2]
    assert last.startswith("OK "), stdout
    return {k: int(v) for k, v in (kv.split("=") for kv in last.split()[1:])}


def test_concurrent_compilation_into_one_cache_dir(tmp_path):
    env = env_without_numba_cache(NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, str(WORKER)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"rc={p.returncode}\n{out}\n{err}"
        parse(out)
    assert any((tmp_path / "cache").rglob("*.nbi"))
    # Later runs load what the racing writers left, correctly and without compiling.
    for _ in range(2):
        p = subprocess.run([sys.executable, str(WORKER)], env=env, capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr
        stats = parse(p.stdout)
        assert stats["hits"] >= 4 and stats["misses"] == 0, stats


def test_cache_works_when_the_package_directory_is_read_only(tmp_path):
    site = tmp_path / "site"
    pkg = site / "numba_pool"
    shutil.copytree(Path(numba_pool.__file__).parent, pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    # Make the in-tree cache location unusable even for root: __pycache__ is a file.
    (pkg / "__pycache__").write_text("not a directory")
    for path in [pkg, *pkg.iterdir()]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    user_cache = tmp_path / "user-cache"
    env = env_without_numba_cache(PYTHONPATH=str(site), XDG_CACHE_HOME=str(user_cache),
                                  PYTHONDONTWRITEBYTECODE="1")
    try:
        runs = []
        for _ in range(2):
            p = subprocess.run([sys.executable, str(WORKER)], env=env, capture_output=True,
                               text=True, timeout=300, cwd=tmp_path)
            assert p.returncode == 0, p.stderr
            assert p.stdout.strip().endswith(str(pkg / "__init__.py"))  # the read-only copy
            runs.append(parse(p.stdout))
        assert runs[0]["misses"] >= 4  # compiled in the first process ...
        assert runs[1]["hits"] >= 4 and runs[1]["misses"] == 0  # ... loaded in the second
        assert any(user_cache.rglob("*.nbi"))  # from the user-wide cache directory
    finally:
        for path in [pkg, *pkg.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_change_to_any_module_of_the_package_recompiles_every_kernel(tmp_path):
    """Numba stamps a cached kernel with the file that defines it; ours inline helpers
    from other modules, so the stamp is the whole package's source (numba_pool._cache).
    Without it, a changed helper module would go on loading the old machine code."""
    site = tmp_path / "site"
    pkg = site / "numba_pool"
    shutil.copytree(Path(numba_pool.__file__).parent, pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = env_without_numba_cache(PYTHONPATH=str(site), NUMBA_CACHE_DIR=str(tmp_path / "cache"),
                                  PYTHONDONTWRITEBYTECODE="1")

    def run():
        p = subprocess.run([sys.executable, str(WORKER)], env=env, capture_output=True,
                           text=True, timeout=300, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip().endswith(str(pkg / "__init__.py"))  # the copy
        return parse(p.stdout)

    assert run()["misses"] >= 4
    assert run() == {"hits": run()["hits"], "misses": 0}
    # _inlining.py defines no kernel; the worker's kernels live in _kernels.py and _driver.py.
    with open(pkg / "_inlining.py", "a") as f:
        f.write("\n# an edit to a helper module\n")
    changed = run()
    assert changed["hits"] == 0 and changed["misses"] >= 4, changed
    assert run()["misses"] == 0  # ... once
