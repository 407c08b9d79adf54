"""Durable sinks for raw envelopes: where the receiver puts a delivery before it says 2xx.

Why an abstraction: the receiver's promise ("2xx means it will be processed")
holds only if the envelope survives a crash. Embedded mode keeps that promise
with the local journal (appended and fsync'd), cluster mode with Kafka (acked by
all in-sync replicas). The receiver only awaits `store`; how durability is
reached is the sink's business.

Group commit: `JournalSink.store` queues the record and awaits a future; one
flusher task writes everything queued so far with a single write + fsync in a
worker thread and resolves all their futures. While one fsync runs, the next
batch fills, so throughput scales with concurrency instead of fsync latency.

Exception tree:
    IntakeError (RuntimeError)
        IntakeUnavailableError   sink closed, failed or broker unreachable (503)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from prometheus_client import Histogram

from arrecon.connectors.envelope import RawEnvelope
from arrecon.connectors.journal import Journal, JournalOffset

__all__ = [
    "JOURNAL_BATCH_RECORDS",
    "JOURNAL_SYNC_SECONDS",
    "RAW_TOPIC",
    "DeadLetters",
    "DurableSink",
    "IntakeError",
    "IntakeUnavailableError",
    "JournalSink",
    "KafkaSink",
    "decode_envelope",
    "encode_envelope",
    "open_embedded",
]

RAW_TOPIC = "arrecon.raw"

JOURNAL_BATCH_RECORDS = Histogram(
    "arrecon_journal_batch_records",
    "Records made durable by one group-commit fsync.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)
JOURNAL_SYNC_SECONDS = Histogram(
    "arrecon_journal_sync_seconds",
    "Time to write and fsync one group-commit batch.",
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
)


class IntakeError(RuntimeError):
    """A delivery could not be made durable."""


class IntakeUnavailableError(IntakeError):
    """The sink cannot accept deliveries right now; the provider should retry."""


def encode_envelope(envelope: RawEnvelope) -> bytes:
    """The stored record: the envelope as JSON, body kept as the received text."""
    return orjson.dumps(
        {
            "source": envelope.source,
            "kind": envelope.kind,
            "received_at": envelope.received_at,
            "headers": dict(envelope.headers),
            "body": envelope.body,
        },
        option=orjson.OPT_UTC_Z,
    )


def decode_envelope(record: bytes, position: int = 0) -> RawEnvelope:
    """The envelope back from a stored record (`position` = journal/Kafka offset)."""
    data = orjson.loads(record)
    return RawEnvelope(
        source=data["source"],
        kind=data.get("kind", ""),
        received_at=datetime.fromisoformat(data["received_at"]),
        body=data["body"],
        headers=data.get("headers") or {},
        position=position,
    )


class DurableSink(Protocol):
    """What the receiver needs from a durable log."""

    async def start(self) -> None:
        """Open files / connect; idempotent."""

    async def store(self, record: bytes, key: bytes) -> str:
        """Return only once `record` is durable; the result names its position."""

    def ready(self) -> bool:
        """True when deliveries can be accepted (readiness probe)."""

    async def aclose(self) -> None:
        """Finish every accepted `store`, then release resources."""


@dataclass(slots=True)
class _Pending:
    record: bytes
    future: asyncio.Future[JournalOffset]


@dataclass(slots=True)
class _Queue:
    items: list[_Pending] = field(default_factory=list)
    queued_bytes: int = 0


class JournalSink:
    """Embedded mode: group-committed appends to the local journal."""

    def __init__(
        self,
        journal: Journal,
        max_batch_records: int = 8192,
        max_batch_bytes: int = 64 * 1024 * 1024,
        max_queued_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.journal = journal
        self.max_batch_records = max_batch_records
        self.max_batch_bytes = max_batch_bytes
        self.max_queued_bytes = max_queued_bytes
        self.batches = 0
        self._queue = _Queue()
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._failure: BaseException | None = None

    async def start(self) -> None:
        if self._flusher is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-fsync")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.journal.open)
        self._wake = asyncio.Event()
        self._closing = False
        self._flusher = asyncio.create_task(self._flush_forever(), name="journal-flusher")

    def ready(self) -> bool:
        return (
            self._flusher is not None
            and not self._closing
            and self._failure is None
            and self.journal.is_open
        )

    async def store(self, record: bytes, key: bytes = b"") -> str:
        if not self.ready():
            raise IntakeUnavailableError("journal not accepting deliveries")
        if self._queue.queued_bytes + len(record) > self.max_queued_bytes:
            # The disk is slower than arrivals: refuse (503, the provider
            # retries) rather than hold unbounded memory.
            raise IntakeUnavailableError("journal queue full")
        assert self._wake is not None
        future: asyncio.Future[JournalOffset] = asyncio.get_running_loop().create_future()
        self._queue.items.append(_Pending(record, future))
        self._queue.queued_bytes += len(record)
        self._wake.set()
        return str(await future)

    async def _flush_forever(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue.items:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            await self._flush_once(self._take_batch())

    def _take_batch(self) -> list[_Pending]:
        items = self._queue.items
        count, size = 0, 0
        while count < len(items) and count < self.max_batch_records:
            size += len(items[count].record)
            count += 1
            if size >= self.max_batch_bytes:
                break
        batch, self._queue.items = items[:count], items[count:]
        self._queue.queued_bytes -= size
        return batch

    async def _flush_once(self, batch: list[_Pending]) -> None:
        records = [pending.record for pending in batch]
        loop = asyncio.get_running_loop()
        try:
            if self._failure is not None:
                raise IntakeUnavailableError("journal failed earlier") from self._failure
            started = time.perf_counter()
            offsets = await loop.run_in_executor(self._executor, self.journal.append_batch, records)
            JOURNAL_SYNC_SECONDS.observe(time.perf_counter() - started)
        except Exception as error:
            # After a failed write or fsync the file's state is unknown: stop
            # accepting (readiness goes red) rather than acknowledge on top of it.
            self._failure = self._failure or error
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(IntakeUnavailableError(str(error)))
            return
        self.batches += 1
        JOURNAL_BATCH_RECORDS.observe(len(batch))
        for pending, offset in zip(batch, offsets, strict=True):
            if not pending.future.done():
                pending.future.set_result(offset)

    async def aclose(self) -> None:
        """Flush everything already queued (shutdown drain), then close the journal."""
        if self._flusher is None:
            return
        self._closing = True
        assert self._wake is not None
        self._wake.set()
        await self._flusher
        self._flusher = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.journal.close)
        assert self._executor is not None
        self._executor.shutdown(wait=True)
        self._executor = None


class KafkaSink:
    """Cluster mode: produce to `arrecon.raw`, answer once all in-sync replicas acked.

    A poll thread serves delivery reports; each report resolves the waiting
    request's future on the event loop.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = RAW_TOPIC,
        config: Mapping[str, Any] | None = None,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.topic = topic
        self.config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "compression.type": "lz4",
            "message.timeout.ms": 30_000,
            **(config or {}),
        }
        self.connect_timeout_s = connect_timeout_s
        self._producer: Any = None
        self._poller: threading.Thread | None = None
        self._running = threading.Event()
        self._connected = False
        self._closing = False

    async def start(self) -> None:
        if self._producer is not None:
            return
        from confluent_kafka import Producer

        config = {**self.config, "error_cb": self._on_error}
        producer = Producer(config)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, producer.list_topics, None, self.connect_timeout_s)
        except Exception as error:
            raise IntakeUnavailableError(f"kafka unreachable: {error}") from error
        self._producer = producer
        self._connected = True
        self._closing = False
        self._running.set()
        self._poller = threading.Thread(target=self._poll_forever, name="kafka-poll", daemon=True)
        self._poller.start()

    def _poll_forever(self) -> None:
        while self._running.is_set():
            self._producer.poll(0.05)

    def _on_error(self, error: Any) -> None:
        from confluent_kafka import KafkaError

        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._connected = False

    def ready(self) -> bool:
        return self._producer is not None and self._connected and not self._closing

    async def store(self, record: bytes, key: bytes) -> str:
        if self._producer is None or self._closing:
            raise IntakeUnavailableError("kafka producer not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()

        def delivered(error: Any, message: Any) -> None:
            loop.call_soon_threadsafe(_settle, future, error, message)

        try:
            self._producer.produce(self.topic, value=record, key=key, on_delivery=delivered)
        except BufferError as error:
            raise IntakeUnavailableError("producer queue full") from error
        result = await future
        self._connected = True
        return result

    async def aclose(self) -> None:
        """Wait for every produced record's acknowledgement, then stop polling."""
        if self._producer is None:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._producer.flush, 30.0)
        self._running.clear()
        if self._poller is not None:
            await loop.run_in_executor(None, self._poller.join)
        self._producer = None
        self._poller = None


def _settle(future: asyncio.Future[str], error: Any, message: Any) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(IntakeUnavailableError(f"kafka delivery failed: {error}"))
    else:
        future.set_result(f"{message.topic()}/{message.partition()}/{message.offset()}")


class DeadLetters:
    """The dead-letter journal: input the flow could not decode, kept with its reason.

    A separate journal so rejected input never blocks or pollutes the raw log,
    and can be inspected and replayed once a decoder is fixed.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def write(self, envelope: RawEnvelope, reason: str, detail: str = "") -> JournalOffset:
        return self.write_batch([(envelope, reason, detail)])[0]

    def write_batch(self, items: list[tuple[RawEnvelope, str, str]]) -> list[JournalOffset]:
        """Append rejections with one fsync; each keeps the original envelope."""
        records = [
            orjson.dumps(
                {
                    "reason": reason,
                    "detail": detail,
                    "position": envelope.position,
                    "envelope": orjson.Fragment(encode_envelope(envelope)),
                }
            )
            for envelope, reason, detail in items
        ]
        self.journal.open()
        return self.journal.append_batch(records)

    def close(self) -> None:
        self.journal.close()


def open_embedded(
    data_dir: str | Path, segment_bytes: int = 64 * 1024 * 1024
) -> tuple[JournalSink, DeadLetters]:
    """The embedded layout: `<data_dir>/raw` and `<data_dir>/dead-letter` journals."""
    root = Path(data_dir)
    sink = JournalSink(Journal(root / "raw", segment_bytes))
    dead = DeadLetters(Journal(root / "dead-letter", segment_bytes))
    return sink, dead
