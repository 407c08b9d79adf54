"""`arrecon replay`: the real flow over a file of recorded deliveries.

The input is JSONL, one raw delivery per line in arrival order (DESIGN.md
section 3). Lines that are not envelopes become `rejected` outcomes with their
line number; they never stop the run. Output is `DIR/outcomes.jsonl`, one
outcome per line, ordered by the input line that caused it, so the same input
gives byte-identical output.

The source is resumable (its state is the line number and byte offset), like
the Kafka and journal sources of live runs.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import IO, Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

from arrecon.connectors.envelope import RawEnvelope
from arrecon.flows.reconcile import FlowConfig, build_flow
from arrecon.flows.steps import InputError, Tagged
from arrecon.state.outcomes import Outcome

__all__ = ["CollectSink", "RenderSink", "ReplayError", "parse_line", "rare_collections", "replay"]

BATCH_LINES = 500
# Collector thresholds while the flow runs. Why: replay keeps every outcome until
# the end and the ledgers grow with the stream, so the default thresholds run
# ever longer passes over a heap that holds almost no cycles (a quarter of the
# CPU time of a 50k-event replay). Young objects are still collected, rarely.
GC_THRESHOLDS = (100_000, 50, 100)
EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)


class ReplayError(RuntimeError):
    """The input file cannot be read at all (missing, unreadable, not UTF-8)."""


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("received_at must be an ISO-8601 string")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("received_at must carry a timezone (UTC)")
    return moment.astimezone(UTC)


def parse_line(number: int, text: bytes, last_seen: datetime) -> RawEnvelope | InputError:
    """One JSONL line -> an envelope, or an InputError naming what is wrong."""
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        return InputError(number, "", f"malformed_json: {error}", last_seen)
    if not isinstance(record, dict):
        return InputError(number, "", "not_an_object", last_seen)
    source = record.get("source")
    if not isinstance(source, str) or not source:
        return InputError(number, "", "missing_field:source", last_seen)
    if "body" not in record:
        return InputError(number, source, "missing_field:body", last_seen)
    try:
        received_at = _parse_time(record.get("received_at"))
    except ValueError as error:
        return InputError(number, source, f"bad_received_at: {error}", last_seen)
    headers = record.get("headers") or {}
    if not isinstance(headers, dict):
        return InputError(number, source, "bad_headers", received_at)
    kind = record.get("kind") or ""
    return RawEnvelope(
        source=source,
        kind=str(kind),
        received_at=received_at,
        body=record["body"],
        headers={str(key): str(value) for key, value in headers.items()},
        position=number,
    )


@dataclass
class _Progress:
    total_bytes: int
    stream: IO[str] | None
    shown_percent: int = -1

    def update(self, done_bytes: int) -> None:
        if self.stream is None or self.total_bytes == 0:
            return
        percent = min(100, done_bytes * 100 // self.total_bytes)
        if percent != self.shown_percent:
            self.shown_percent = percent
            self.stream.write(f"\rreplay {percent:3d}%")
            self.stream.flush()
            if percent == 100:
                self.stream.write("\n")


class _LinePartition(StatefulSourcePartition[RawEnvelope | InputError, tuple[int, int]]):
    def __init__(
        self,
        path: Path,
        resume: tuple[int, int] | None,
        progress: _Progress,
        batch_lines: int = BATCH_LINES,
    ) -> None:
        self.batch_lines = batch_lines
        self.line_number, offset = resume or (0, 0)
        self.file = path.open("rb")
        self.file.seek(offset)
        self.progress = progress
        self.last_seen = EPOCH_START

    def next_batch(self) -> Iterable[RawEnvelope | InputError]:
        batch: list[RawEnvelope | InputError] = []
        for _ in range(self.batch_lines):
            text = self.file.readline()
            if not text:
                break
            self.line_number += 1
            if not text.strip():
                continue
            item = parse_line(self.line_number, text, self.last_seen)
            if isinstance(item, RawEnvelope):
                self.last_seen = item.received_at
            batch.append(item)
        self.progress.update(self.file.tell())
        if not batch and not text:
            raise StopIteration
        return batch

    def snapshot(self) -> tuple[int, int]:
        return (self.line_number, self.file.tell())

    def close(self) -> None:
        self.file.close()


class JsonlSource(FixedPartitionedSource[RawEnvelope | InputError, tuple[int, int]]):
    """A replay file as one resumable partition."""

    def __init__(self, path: Path, progress: _Progress, batch_lines: int = BATCH_LINES) -> None:
        self.batch_lines = batch_lines
        self.path = path
        self.progress = progress

    def list_parts(self) -> list[str]:
        return [self.path.name]

    def build_part(
        self, step_id: str, for_part: str, resume_state: tuple[int, int] | None
    ) -> _LinePartition:
        return _LinePartition(self.path, resume_state, self.progress, self.batch_lines)


class _CollectPartition(StatelessSinkPartition[Tagged]):
    def __init__(self, into: list[Tagged]) -> None:
        self.into = into

    def write_batch(self, items: list[Tagged]) -> None:
        self.into.extend(items)


class CollectSink(DynamicSink[Tagged]):
    """Keeps tagged outcomes in memory so replay can write them in input order."""

    def __init__(self) -> None:
        self.items: list[Tagged] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CollectPartition:
        return _CollectPartition(self.items)


# (position, sub, seq, arrival number, JSON line): plain tuples sort in input
# order, ties by arrival (emission) order, like `ordered_records`.
_Row = tuple[int, int, int, int, bytes]


class _RenderPartition(StatelessSinkPartition[Tagged]):
    def __init__(self, into: list[_Row]) -> None:
        self.into = into

    def write_batch(self, items: list[Tagged]) -> None:
        into = self.into
        start = len(into)
        into.extend(
            (tagged.position, tagged.sub, tagged.seq, start + number, outcome_json(tagged.outcome))
            for number, tagged in enumerate(items)
        )


class RenderSink(DynamicSink[Tagged]):
    """Renders each outcome to its JSON line as it arrives; `lines()` gives them in order.

    Why: replay holds every outcome until the end. As bytes with an int key they
    are a fraction of the objects (the collector never walks them) and need no
    rendering pass after the run.
    """

    def __init__(self) -> None:
        self.rows: list[_Row] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RenderPartition:
        return _RenderPartition(self.rows)

    def lines(self) -> Iterator[bytes]:
        """Each JSON line with its newline, in input order; the rows are let go."""
        rows, self.rows = self.rows, []
        rows.sort()
        for row in rows:
            yield row[4] + b"\n"


def _check_readable(path: Path) -> int:
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as error:
        raise ReplayError(f"cannot read {path}: {error.strerror or error}") from None
    if path.is_dir():
        raise ReplayError(f"{path} is a folder, not a JSONL file")
    return size


def outcome_json(outcome: Outcome) -> bytes:
    """`orjson.dumps(outcome.to_record())`, byte for byte, several times faster.

    orjson renders the field values itself (UTC times with "Z", tuples as
    lists), so only a dict of the raw values is built, by a C getter per class.
    Not orjson's own dataclass support: it misreads the outcome classes
    compiled by mypyc (`make native`), which keep ints and bools unboxed
    ("Integer exceeds 64-bit range" on one class, a segmentation fault on
    another, orjson 3.13).
    """
    keys, values = _record_shape(type(outcome))
    record = dict(zip(keys, (outcome.type, *values(outcome)), strict=True))
    return orjson.dumps(record, option=orjson.OPT_UTC_Z)


_RECORD_SHAPES: dict[type, tuple[tuple[str, ...], attrgetter[Any]]] = {}


def _record_shape(cls: type) -> tuple[tuple[str, ...], attrgetter[Any]]:
    """("type", field names...) and a getter of the field values, per class."""
    shape = _RECORD_SHAPES.get(cls)
    if shape is None:
        names = tuple(item.name for item in fields(cls))
        assert len(names) > 1, cls  # one name would get a value, not a tuple
        shape = _RECORD_SHAPES[cls] = (("type", *names), attrgetter(*names))
    return shape


def ordered_records(items: list[Tagged]) -> Iterator[bytes]:
    """Outcomes as JSON lines in input order (ties broken by emission order)."""
    for tagged in sorted(items, key=_sort_key):
        yield outcome_json(tagged.outcome)


def _sort_key(item: Tagged) -> tuple[int, int, int]:
    return (item.position, item.sub, item.seq)


@contextmanager
def rare_collections() -> Iterator[None]:
    """Raise the collector's thresholds for the block; restore them after."""
    saved = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def replay(
    input_path: Path,
    out_dir: Path,
    config: FlowConfig | None = None,
    progress: bool | None = None,
    batch_lines: int = BATCH_LINES,
) -> Path:
    """Run the real flow over `input_path`; write and return `out_dir/outcomes.jsonl`.

    `batch_lines` (lines per source batch) must not change the output.
    """
    size = _check_readable(input_path)
    show = sys.stderr.isatty() if progress is None else progress
    meter = _Progress(size, sys.stderr if show else None)
    sink = RenderSink()
    config = config or FlowConfig(snapshots=False)
    flow = build_flow(JsonlSource(input_path, meter, batch_lines), sink, config)
    with rare_collections():
        run_main(flow)  # type: ignore[no-untyped-call]
        out_dir.mkdir(parents=True, exist_ok=True)
        out_path = out_dir / "outcomes.jsonl"
        with out_path.open("wb") as handle:
            handle.writelines(sink.lines())
    return out_path
