"""Live inputs and outputs of the flow: the journal or Kafka in, ClickHouse out.

Inputs keep their read position in Bytewax recovery (journal offset, Kafka
offsets), so a restart resumes where the last snapshot was taken and replays
the rest: at-least-once. Outcome rows carry deterministic ids and land in
ReplacingMergeTree tables, so the replayed rows change nothing.

The ClickHouse sink holds one writer per worker process (chDB admits a single
engine per folder and process); with several processes ClickHouse must be a
server.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.connectors.kafka import operators as kafka_op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from arrecon.connectors.envelope import RawEnvelope
from arrecon.connectors.intake import decode_envelope
from arrecon.connectors.journal import JournalCorruptError, JournalOffset, JournalReader
from arrecon.flows.steps import InputError, Stamped, Tagged
from arrecon.sinks import metrics
from arrecon.sinks.clickhouse import BatchReport, ClickHouseWriter
from arrecon.sinks.rows import TableRow, customer_rows, fee_rows, outcome_rows, raw_event_row
from arrecon.state.events import CustomerUpserted, PayoutSettled
from arrecon.state.outcomes import Rejected

__all__ = ["ClickHouseSink", "JournalSource", "SinkItem", "kafka_input", "position_of"]

POLL_IDLE = timedelta(milliseconds=10)
READ_BATCH = 1000
# A batch also ends at this many bytes: a run of large feed deliveries (ERP
# exports of hundreds of invoices each) would otherwise hold an epoch open for
# minutes, and a crash would replay all of it.
READ_BATCH_BYTES = 1 << 20
_FLUSH_TICK_S = 0.005
_SEGMENT_SPAN = 1 << 40
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SinkItem = Tagged | Stamped | RawEnvelope
SINK_KEY = "rows"


def position_of(offset: JournalOffset) -> int:
    """A journal offset as one increasing integer (segment-major)."""
    return offset.segment * _SEGMENT_SPAN + offset.position


def _envelope(record: bytes, position: int) -> RawEnvelope | InputError:
    try:
        return decode_envelope(record, position)
    except (ValueError, KeyError, TypeError) as error:
        return InputError(position, "", f"bad_record: {error!r}", _EPOCH)


class _JournalPartition(StatefulSourcePartition[RawEnvelope | InputError, str]):
    def __init__(
        self,
        directory: Path,
        resume: str | None,
        stop: threading.Event,
        limit: Callable[[], JournalOffset] | None,
    ) -> None:
        offset = JournalOffset.parse(resume) if resume else None
        self.reader = JournalReader(directory, offset, limit=limit)
        self.idle = False
        self.stop = stop

    def next_batch(self) -> list[RawEnvelope | InputError]:
        if self.stop.is_set():
            raise StopIteration  # a graceful end: Bytewax flushes and snapshots
        try:
            records = self.reader.read(READ_BATCH, READ_BATCH_BYTES)
        except JournalCorruptError as error:
            # A damaged closed segment: report it and skip past it, never crash.
            position = position_of(error.offset)
            self.reader.offset = JournalOffset(error.offset.segment + 1, 0)
            return [InputError(position, "journal", f"journal_corrupt: {error}", _EPOCH)]
        self.idle = not records
        return [_envelope(record, position_of(offset)) for offset, record in records]

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + POLL_IDLE if self.idle else None

    def snapshot(self) -> str:
        return str(self.reader.offset)


class JournalSource(FixedPartitionedSource[RawEnvelope | InputError, str]):
    """Tails the receiver's local journal; the offset lives in Bytewax recovery.

    Setting `stop` ends the input, so the flow drains and stops cleanly.
    `limit` (the writer's `durable_end`, when it runs in this process) keeps the
    flow from reading records that are not fsync'd yet: a crash could cut them
    off, and a snapshot offset past the end would skip later appends.
    """

    def __init__(
        self,
        directory: Path,
        stop: threading.Event | None = None,
        limit: Callable[[], JournalOffset] | None = None,
    ) -> None:
        self.directory = directory
        self.stop = stop or threading.Event()
        self.limit = limit

    def list_parts(self) -> list[str]:
        return ["journal"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: str | None
    ) -> _JournalPartition:
        return _JournalPartition(self.directory, resume_state, self.stop, self.limit)


def _from_kafka(
    message: KafkaSourceMessage[bytes | None, bytes | None],
) -> RawEnvelope | InputError:
    position = message.offset or 0
    if message.value is None:
        return InputError(position, "", "empty_kafka_message", _EPOCH)
    return _envelope(message.value, position)


def _kafka_error(error: KafkaError[bytes | None, bytes | None]) -> InputError:
    offset = error.msg.offset or 0
    return InputError(offset, "kafka", f"kafka_error: {error.err}", _EPOCH)


def kafka_input(
    brokers: str, topic: str, group: str = "arrecon", tail: bool = True
) -> Callable[[Dataflow], Stream[RawEnvelope | InputError]]:
    """Kafka in: messages become envelopes, consumer errors become rejections.

    `tail=False` stops at the end of each partition (bounded runs and tests).
    """

    def build(flow: Dataflow) -> Stream[RawEnvelope | InputError]:
        out = kafka_op.input(
            "kafka_in",
            flow,
            brokers=brokers.split(","),
            topics=[topic],
            tail=tail,
            add_config={"group.id": group},
        )
        oks = op.map("kafka_envelopes", out.oks, _from_kafka)
        errs = op.map("kafka_errors", out.errs, _kafka_error)
        return op.merge("kafka_all", oks, errs)

    return build


def sink_rows(item: SinkItem) -> list[TableRow]:
    """The ClickHouse rows for one flow output."""
    if isinstance(item, Tagged):
        return outcome_rows(item.outcome, seq=max(item.seq, 0) % 1000)
    if isinstance(item, RawEnvelope):
        return [raw_event_row(item)]
    event = item.event
    if isinstance(event, CustomerUpserted):
        return customer_rows(event)
    if isinstance(event, PayoutSettled):
        return fee_rows(event)
    return []


# Exact receipt-to-row latencies of recent outcomes (ms), for the load driver;
# the Prometheus histogram only keeps buckets.
RECENT_LATENCIES_MS: deque[float] = deque(maxlen=200_000)


def _count(items: list[SinkItem]) -> None:
    """Prometheus counters for what reached the sink (bounded labels only)."""
    now = datetime.now(UTC)
    for item in items:
        if isinstance(item, RawEnvelope):
            metrics.EVENTS_IN.labels(item.source, item.kind or "-").inc()
            metrics.INPUT_POSITION.set(item.position)
        elif isinstance(item, Tagged):
            outcome = item.outcome
            metrics.OUTCOMES.labels(outcome.type, getattr(outcome, "method", "-")).inc()
            if isinstance(outcome, Rejected):
                metrics.REJECTIONS.labels(metrics.reason_code(outcome.reason)).inc()
            if item.received_at is not None and item.seq == 0:
                seconds = max((now - item.received_at).total_seconds(), 0.0)
                metrics.EVENT_TO_OUTCOME_SECONDS.observe(seconds)
                RECENT_LATENCIES_MS.append(seconds * 1000)


def _report(report: BatchReport) -> None:
    metrics.SINK_BATCH_ROWS.observe(report.rows)
    metrics.SINK_WRITE_SECONDS.observe(report.latency_ms / 1000)
    if report.ok:
        metrics.SINK_ROWS.labels(report.table).inc(report.rows)


class _ClickHousePartition(StatefulSinkPartition[SinkItem, None]):
    """Buffers rows and flushes them at most once per `flush_ms`, soon after they arrive.

    A row that arrives when the last flush is `flush_ms` old is written at the
    flusher's next tick (a few ms); under load rows gather for at most
    `flush_ms`, so inserts stay large. Rows never wait longer than `flush_ms`
    plus one tick.

    `snapshot()` flushes synchronously: Bytewax calls it at the end of every
    epoch before committing the recovery snapshot, so no input is marked done
    while its rows are still only in this buffer (at-least-once holds).

    Why a flusher thread: flushing on every Bytewax batch made the flow wait on
    several inserts per handful of events; flushing only when the next batch
    comes would leave the tail of a burst unwritten while the input is idle.
    A flush takes the buffered rows under `lock` and inserts them outside it
    (one flush at a time, under `flushing`), and chDB releases the GIL while it
    inserts, so the flow keeps deciding and buffering during the ~5 ms per
    table an insert costs. A failed write is re-raised by the next
    `write_batch`, which stops the flow (recovery then replays; row ids keep
    the rows exact). Metrics are counted once rows are written, so
    `arrecon_input_position` means "queryable".
    """

    def __init__(
        self,
        writer: ClickHouseWriter,
        on_written: Callable[[list[SinkItem]], None],
        flush_ms: int,
        max_pending: int,
        gauges: Sequence[metrics.TableGauge] = (),
    ) -> None:
        self.writer = writer
        self.on_written = on_written
        self.gauges = gauges
        self.flush_s = flush_ms / 1000
        self.tick_s = min(_FLUSH_TICK_S, self.flush_s / 2)
        self.last_flush = -math.inf
        self.max_pending = max_pending
        self.lock = threading.Lock()  # guards the buffers: writer rows, pending items
        self.flushing = threading.Lock()  # one flush at a time, in order
        self.pending: list[SinkItem] = []
        self.oldest: float | None = None
        self.error: BaseException | None = None
        self.closing = threading.Event()
        self.flusher = threading.Thread(
            target=self._flush_loop, name="clickhouse-flush", daemon=True
        )
        self.flusher.start()

    def write_batch(self, items: list[SinkItem]) -> None:
        if self.error is not None:
            raise self.error
        rows = [row for item in items for row in sink_rows(item)]
        with self.lock:
            self.writer.write(rows)
            self.pending.extend(items)
            if self.oldest is None:
                self.oldest = time.monotonic()
            full = len(self.pending) >= self.max_pending
        if full:
            self._flush()

    def snapshot(self) -> None:
        """Returns once every row buffered so far is written (a flush in flight included)."""
        if self.error is not None:
            raise self.error
        self._flush()

    def _flush_loop(self) -> None:
        while not self.closing.wait(self.tick_s):
            with self.lock:
                due = self.oldest is not None and time.monotonic() - self.last_flush >= self.flush_s
            try:
                if due:
                    self._flush()
            except Exception as error:  # handed to the flow thread, which stops
                self.error = error
                return
            for gauge in self.gauges:
                gauge.maybe_refresh()

    def _flush(self) -> None:
        with self.flushing:
            with self.lock:
                self.last_flush = time.monotonic()
                rows = self.writer.take()
                items, self.pending, self.oldest = self.pending, [], None
            self.writer.insert(rows)
            _count(items)
            if items:
                for gauge in self.gauges:
                    gauge.written()
            self.on_written(items)

    def close(self) -> None:
        self.closing.set()
        self.flusher.join(timeout=30)
        try:
            if self.error is None:
                self._flush()
        finally:
            self.writer.close()


class ClickHouseSink(FixedPartitionedSink[SinkItem, None]):
    """Outcome, customer, fee and raw-envelope rows into ClickHouse (chDB or server).

    One partition, hosted by process 0: every row goes through one writer (chDB
    admits one process per folder; with a ClickHouse server this is simply the
    documented choice). Items arrive keyed by `SINK_KEY`.

    The partition also keeps `arrecon_unapplied_cash_minor` and
    `arrecon_open_ar_minor` in step with the tables, reading them back at most
    every `gauge_refresh_s` seconds after rows were written (None: never).
    """

    def __init__(
        self,
        dsn: str,
        on_written: Callable[[list[SinkItem]], None] = lambda _items: None,
        flush_ms: int = 50,
        max_pending: int = 20_000,
        process_id: int = 0,
        *,
        gauge_refresh_s: float | None = 15.0,
        **writer_options: Any,
    ) -> None:
        self.dsn = dsn
        self.process_id = process_id
        self.gauge_refresh_s = gauge_refresh_s
        self.on_written = on_written
        self.flush_ms = flush_ms
        self.max_pending = max_pending
        self.writer_options = writer_options

    def list_parts(self) -> list[str]:
        return [SINK_KEY] if self.process_id == 0 else []

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _ClickHousePartition:
        # The partition decides when to flush (the writer never writes on its own,
        # so inserts never overlap: see `_ClickHousePartition`).
        options: dict[str, Any] = {"on_batch": _report, "batch_ms": 10**9, "batch_rows": 10**9}
        options |= self.writer_options
        writer = ClickHouseWriter(self.dsn, **options).open()
        gauges: list[metrics.TableGauge] = []
        if self.gauge_refresh_s is not None:
            gauges = [
                metrics.TableGauge(
                    lambda: writer.client, read, gauge, interval_s=self.gauge_refresh_s
                )
                for read, gauge in (
                    (metrics.unapplied_cash, metrics.UNAPPLIED_CASH),
                    (metrics.open_receivables, metrics.OPEN_AR),
                )
            ]
        return _ClickHousePartition(
            writer, self.on_written, self.flush_ms, self.max_pending, gauges
        )
