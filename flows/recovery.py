"""The recovery folder, and which releases can resume from it.

Why a format stamp: Bytewax snapshots hold the flow's state pickled (ledgers,
their open-invoice books, the in-memory index, fee monitors, parked
payments). A release that changes the shape of those classes cannot resume
from older snapshots: at best unpickling fails deep inside the flow, at worst
it yields objects missing fields. So the folder records the state format it
was written with, and `run` refuses another one before it starts anything,
saying how to rebuild.

Rebuilding works because the snapshots are derived data: with the recovery
folder moved away, the flow reads its input from the start (the embedded
journal keeps every delivery; Kafka keeps what the topic retains), derives the
same outcomes with the same ids and versions, and ClickHouse's replacing
tables keep each row once (outcomes fired by wall-clock timers excepted: they
fire again when the rebuild reaches them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bytewax.recovery import RecoveryConfig, init_db_dir

__all__ = ["STATE_FORMAT", "IncompatibleRecoveryError", "check_recovery", "open_recovery"]

# Bump when a class kept in flow state changes its fields or their meaning.
# Unstamped folders come from before formats were recorded (call them 1). 2:
# invoice records keep rarely set fields apart and the issue time as int
# microseconds; the book keeps no insertion rank. 3: invoice records pickle as
# flat tuples (`_invoice_from`), which format 2 readers do not know. 4: every
# record of the core pickles explicitly (`arrecon.state.pickling`): constructor
# arguments and flat tuples, the same for the interpreted and the compiled core.
# 5: the book's amount and due indexes are `_ByOpen` / `_ByDue` records (keys
# beside the records), pickled as their records.
STATE_FORMAT = 5
FORMAT_FILE = "state-format"


class IncompatibleRecoveryError(Exception):
    """The recovery folder was written by a release with another state format."""


def check_recovery(directory: Path) -> None:
    """Raise IncompatibleRecoveryError when `directory` holds snapshots this release
    cannot read; a missing folder is fine (the first run creates it)."""
    if not directory.exists():
        return
    found = _stamped_format(directory)
    if found == STATE_FORMAT:
        return
    written = "before state formats were recorded" if found is None else f"format {found}"
    raise IncompatibleRecoveryError(
        f"the recovery snapshots in {directory} were written {written}; this arrecon "
        f"reads state format {STATE_FORMAT}. To rebuild the state, stop arrecon, move "
        f"{directory} aside and start again: the flow reads its input from the start "
        "(the embedded journal keeps every delivery; Kafka, what the topic retains) "
        "and derives its outcomes again under the same ids (see README, Restarts)."
    )


def open_recovery(directory: Path, partitions: int) -> RecoveryConfig:
    """The recovery config for `directory`, created and stamped on first use.

    The folder appears whole or not at all (built aside, then renamed), so a
    crash during creation never leaves an unstamped folder, and processes of a
    cluster starting together agree on one.
    """
    if not directory.exists():
        _create(directory, partitions)
    check_recovery(directory)
    return RecoveryConfig(str(directory))  # type: ignore[no-untyped-call]


def _create(directory: Path, partitions: int) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    building = directory.with_name(f".{directory.name}.{os.getpid()}.new")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    init_db_dir(building, partitions)  # type: ignore[no-untyped-call]
    (building / FORMAT_FILE).write_text(f"{STATE_FORMAT}\n")
    try:
        building.rename(directory)
    except OSError:  # another process of the cluster created it first
        shutil.rmtree(building, ignore_errors=True)
        if not directory.exists():
            raise


def _stamped_format(directory: Path) -> int | None:
    """The recorded format; None for a folder from before formats were recorded."""
    try:
        text = (directory / FORMAT_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    try:
        return int(text)
    except ValueError:
        raise IncompatibleRecoveryError(
            f"{directory / FORMAT_FILE} should hold a state format number, not {text[:40]!r}"
        ) from None
