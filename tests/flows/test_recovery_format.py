"""A recovery folder is stamped with its state format; another format is refused with what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arrecon.flows.recovery import (
    FORMAT_FILE,
    STATE_FORMAT,
    IncompatibleRecoveryError,
    check_recovery,
    open_recovery,
)
from arrecon.flows.services import free_port


def test_a_new_folder_is_created_whole_and_stamped(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "recovery"
    open_recovery(directory, partitions=2)
    assert (directory / FORMAT_FILE).read_text() == f"{STATE_FORMAT}\n"
    assert sorted(p.name for p in directory.glob("part-*.sqlite3")) == [
        "part-0.sqlite3",
        "part-1.sqlite3",
    ]
    assert [p.name for p in directory.parent.iterdir()] == ["recovery"]  # no leftovers
    open_recovery(directory, partitions=2)  # the same release resumes from it
    check_recovery(directory)


def test_a_missing_folder_is_not_an_error(tmp_path: Path) -> None:
    check_recovery(tmp_path / "recovery")


@pytest.mark.parametrize(
    ("stamp", "says"),
    [
        (None, "written before state formats were recorded"),
        ("1\n", "written format 1;"),
        (f"{STATE_FORMAT + 1}\n", f"written format {STATE_FORMAT + 1};"),
        ("soon", "should hold a state format number"),
    ],
)
def test_snapshots_of_another_format_are_refused(
    tmp_path: Path, stamp: str | None, says: str
) -> None:
    directory = tmp_path / "recovery"
    directory.mkdir()
    if stamp is not None:
        (directory / FORMAT_FILE).write_text(stamp)
    with pytest.raises(IncompatibleRecoveryError, match=says) as refused:
        open_recovery(directory, partitions=1)
    if stamp != "soon":
        assert f"move {directory} aside" in str(refused.value)
    assert sorted(p.name for p in directory.iterdir()) == ([FORMAT_FILE] if stamp else [])


def test_run_refuses_old_snapshots_before_starting_anything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "recovery").mkdir(parents=True)  # as a release before the stamp left it
    port = free_port()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from arrecon.flows.cli import main; main()",
            "run",
            "--data-dir",
            str(data),
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "reads state format" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (data / "journal").exists()  # refused before the intake was opened
