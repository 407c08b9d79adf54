"""The reconciliation core: pure Python; its logic does no IO.

Nothing here imports Bytewax, Kafka, Redis or ClickHouse; time is passed in.
The one file read is at import, below: which build of this code to load.

The modules in `NATIVE_MODULES` may also be compiled with mypyc (`make native`,
see `deploy/native/build.py`): the same source, about 2.3x faster. The
compiled modules are used only when the build's stamp names these very
sources; after any edit, or with ARRECON_NATIVE=0, the sources themselves are
imported (a stale build is never run). `NATIVE` says which core is running.

Records built on every payment (`Match`, `Allocation`, `Resolved`, `RefToken`,
...) are `@dataclass(init=False)` with a hand-written `__init__` and `Final`
fields: mypyc compiles only hand-written methods (the `__init__` a dataclass
generates runs as Python, ~0.4 us for a frozen one against ~0.03 us compiled),
and `Final` keeps them read-only: mypy checks it everywhere, the compiled core
also at run time. The dataclass still writes `__eq__` and `__repr__`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections.abc import Mapping
from importlib.machinery import (
    BYTECODE_SUFFIXES,
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    FileFinder,
    SourceFileLoader,
    SourcelessFileLoader,
)
from pathlib import Path

__all__ = ["NATIVE", "NATIVE_MODULES", "NATIVE_STAMP", "native_usable", "sources_digest"]

# Compiled together; `events`, `money` and `fees` stay interpreted (frozen
# records built by the connectors; little time is spent in them).
NATIVE_MODULES = ("aging", "dunning", "index", "ledger", "matching", "outcomes", "references")
NATIVE_STAMP = "native.stamp"
_FOLDER = Path(__file__).resolve().parent


def sources_digest(folder: Path = _FOLDER) -> str:
    """sha256 over the sources of `NATIVE_MODULES` (what a build must match)."""
    digest = hashlib.sha256()
    for name in NATIVE_MODULES:
        digest.update(name.encode() + b"\0")
        digest.update((folder / f"{name}.py").read_bytes())
    return digest.hexdigest()


def _compiled(folder: Path, name: str) -> bool:
    return any((folder / f"{name}{suffix}").exists() for suffix in EXTENSION_SUFFIXES)


def native_usable(folder: Path = _FOLDER, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether `folder` holds a complete compiled core built from its current
    sources (and ARRECON_NATIVE is not "0"). A build that does not match its
    sources is reported with a warning and not used."""
    compiled = [_compiled(folder, name) for name in NATIVE_MODULES]
    if not any(compiled) or environ.get("ARRECON_NATIVE", "1") == "0":
        return False
    try:
        stamp = (folder / NATIVE_STAMP).read_text().strip()
    except OSError:
        stamp = ""
    if all(compiled) and stamp == sources_digest(folder):
        return True
    warnings.warn(
        "arrecon.state: the compiled core does not match its sources (edited since "
        "`make native`?); running the interpreted core. Rebuild with `make native`.",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


def _import_sources_only() -> None:
    """Make this package's submodules load from .py files even where compiled
    modules sit beside them (the finder for this folder knows no extensions)."""
    for entry in __path__:
        sys.path_importer_cache[entry] = FileFinder(
            entry,
            (SourceFileLoader, SOURCE_SUFFIXES),
            (SourcelessFileLoader, BYTECODE_SUFFIXES),
        )


NATIVE = native_usable()
if not NATIVE and any(_compiled(_FOLDER, name) for name in NATIVE_MODULES):
    _import_sources_only()
