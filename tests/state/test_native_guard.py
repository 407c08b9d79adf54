"""The compiled core runs only when it was built from the sources beside it; its
records refuse writes."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from dataclasses import fields
from datetime import UTC, datetime
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

import pytest

from arrecon.state import NATIVE, NATIVE_MODULES, NATIVE_STAMP, native_usable, sources_digest
from arrecon.state.matching import Allocation
from arrecon.state.outcomes import Applied
from arrecon.state.references import RefToken

ROOT = Path(__file__).resolve().parents[2]


def fake_core(folder: Path, *, compiled: tuple[str, ...] = NATIVE_MODULES) -> Path:
    """Sources for every module, an (empty) extension file for `compiled` ones."""
    for name in NATIVE_MODULES:
        (folder / f"{name}.py").write_text(f"NAME = {name!r}\n")
    for name in compiled:
        (folder / f"{name}{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    return folder


def stamp(folder: Path, digest: str | None = None) -> None:
    (folder / NATIVE_STAMP).write_text((digest or sources_digest(folder)) + "\n")


def test_a_build_of_these_sources_is_used(tmp_path: Path) -> None:
    stamp(fake_core(tmp_path))
    assert native_usable(tmp_path, {})


def test_no_build_means_the_interpreted_core_silently(tmp_path: Path) -> None:
    fake_core(tmp_path, compiled=())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        assert not native_usable(tmp_path, {})


def test_arrecon_native_0_turns_a_good_build_off(tmp_path: Path) -> None:
    stamp(fake_core(tmp_path))
    assert not native_usable(tmp_path, {"ARRECON_NATIVE": "0"})


def test_a_source_edited_after_the_build_falls_back_with_a_warning(tmp_path: Path) -> None:
    stamp(fake_core(tmp_path))
    (tmp_path / "ledger.py").write_text("NAME = 'edited'\n")
    with pytest.warns(RuntimeWarning, match="make native"):
        assert not native_usable(tmp_path, {})


@pytest.mark.parametrize("case", ["no stamp", "a module not compiled"])
def test_an_incomplete_build_falls_back_with_a_warning(tmp_path: Path, case: str) -> None:
    if case == "no stamp":
        fake_core(tmp_path)
    else:
        stamp(fake_core(tmp_path, compiled=NATIVE_MODULES[1:]))
    with pytest.warns(RuntimeWarning, match="does not match its sources"):
        assert not native_usable(tmp_path, {})


def test_arrecon_native_0_imports_the_sources_even_beside_a_build() -> None:
    """In a fresh interpreter: with the switch off, every core module is a .py file."""
    probe = (
        "import importlib, arrecon.state as core; "
        "files = [importlib.import_module('arrecon.state.' + m).__file__ "
        "for m in core.NATIVE_MODULES]; "
        "assert not core.NATIVE; assert all(f.endswith('.py') for f in files), files"
    )
    env = {**os.environ, "ARRECON_NATIVE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", probe], check=False, env=env, cwd=ROOT, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()


def test_records_refuse_writes_at_run_time_exactly_on_the_compiled_core() -> None:
    """`Final` fields: mypy forbids writes everywhere; the compiled core also at run
    time (README, "The compiled core"). On the interpreted core a write goes through."""
    at = datetime(2026, 1, 5, tzinfo=UTC)
    records: list[Any] = [
        Applied("x", at, "TX-1", "INV-1", "C-1", 100, "USD", "invoice_number", 1.0),
        Allocation("INV-1", 100),
        RefToken("INV-1", "INV1"),
    ]
    for record in records:
        name = fields(record)[0].name
        if NATIVE:
            with pytest.raises(AttributeError, match="not writable"):
                setattr(record, name, "changed")
        else:
            setattr(record, name, "changed")
            assert getattr(record, name) == "changed"
