"""Benchmark helpers: result files name no machine paths; scratch folders go away."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from arrecon.loadtest.bench_scaling import command_line, work_folder


def test_command_line_makes_paths_under_the_working_folder_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["bench", "--events", "20", "--results-dir", str(tmp_path / "loadtest" / "results")]
    monkeypatch.setattr(sys, "argv", [*argv, "--other", "/elsewhere/out"])
    assert command_line("arrecon.loadtest.bench_scaling") == (
        "python -m arrecon.loadtest.bench_scaling --events 20 "
        "--results-dir loadtest/results --other /elsewhere/out"
    )


@pytest.mark.parametrize("keep", [False, True])
def test_work_folder_is_removed_unless_kept(keep: bool) -> None:
    with work_folder("arrecon-test-", keep) as folder:
        (folder / "data").write_text("x")
    assert folder.exists() == keep
    if keep:
        (folder / "data").unlink()
        folder.rmdir()
