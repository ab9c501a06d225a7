"""Numba's on-disk cache, invalidated by any change to the package's source.

Numba stamps a cached kernel with the source of the one file that defines it.
Our kernels inline helpers from other modules (``_avg_kernels`` uses
``_kernels.into_padded`` and ``tap_run``, every kernel uses ``_inlining``), so
an upgrade or a ``git pull`` into an editable install that changed only a helper
would go on loading machine code built from the old helper.  This module makes
the stamp of every kernel defined in the package a digest of all the package's
Python files: change any of them and every kernel recompiles once.

It installs itself on import (``numba_pool/__init__.py`` imports it before any
kernel module), by putting a subclass of each of Numba's source-file locators
in front of Numba's list.  The subclasses answer only for files inside this
package; everything else, and where cache files go (``NUMBA_CACHE_DIR``, the
package's ``__pycache__``, the user-wide cache), stays Numba's.
``NUMBA_CACHE_LOCATOR_CLASSES``, where set, replaces the list and with it this
stamp.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from numba.core import caching

PACKAGE_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def package_source_digest() -> str:
    """SHA-256 of the names and contents of the package's top-level ``.py`` files
    (the modules kernels are built from), read once per process."""
    paths = sorted(PACKAGE_DIR.glob("*.py"))
    if Path(__file__).resolve() not in paths:  # e.g. installed in a zip file
        raise OSError(f"numba_pool's sources are not files in {PACKAGE_DIR}")
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _in_package(py_file: str) -> bool:
    try:
        return Path(py_file).resolve().parent == PACKAGE_DIR
    except (OSError, RuntimeError):
        return False


class _PackageStamp:
    """Mixin for a Numba locator: answers for this package's files only, and
    stamps them with :func:`package_source_digest`."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if not _in_package(py_file):
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        try:
            return ("numba_pool", package_source_digest())
        except OSError:  # sources not readable as files: Numba's own stamp
            return super().get_source_stamp()


def _locator_list() -> list[type]:
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")  # Numba < 0.61
    return impl._locator_classes


def _package_locators() -> list[type]:
    mixin = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    originals = [cls for cls in _locator_list()
                 if mixin is not None and issubclass(cls, mixin)
                 and not issubclass(cls, _PackageStamp)]
    return [type(f"NumbaPool{cls.__name__.lstrip('_')}", (_PackageStamp, cls), {})
            for cls in originals]


def install() -> None:
    """Put the package-stamped locators first in Numba's list (idempotent)."""
    classes = _locator_list()
    if any(issubclass(cls, _PackageStamp) for cls in classes):
        return
    classes[:0] = _package_locators()


install()
