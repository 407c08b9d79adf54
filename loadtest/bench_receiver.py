"""Receiver benchmark: signed Stripe webhooks into a real uvicorn server over loopback.

Why a hand-rolled driver: a general HTTP client costs more CPU per request than
the receiver itself, and on a small machine the driver shares the cores with the
server. The driver here pre-builds every signed request and speaks minimal
HTTP/1.1 keep-alive on raw asyncio streams, in its own process.

The server is one uvicorn worker with the embedded journal (group-committed
fsync), or with `--kafka` the Kafka sink (acks=all) against a real local KRaft
broker started for the run and stopped at the end. After the run the server is
stopped with SIGTERM (graceful drain) and the log is read back (the journal from
disk, the topic by consuming it): every acknowledged request must be in it.
The server's CPU seconds per thread are printed, so a slow mode shows where its
time went (the event loop, the Kafka poll thread, librdkafka's own threads).

    python -m arrecon.loadtest.bench_receiver --requests 20000 --connections 32 [--http h11]
    python -m arrecon.loadtest.bench_receiver --kafka
    ARRECON_BENCH_PROFILE=/tmp/server.prof python -m ...   (cProfile of the server's loop)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from arrecon.flows.services import KafkaService

__all__ = ["BenchResult", "main", "run_benchmark"]

SECRET = "whsec_bench"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(
    port: int, data_dir: str, http: str = "auto", kafka: str | None = None, topic: str = ""
) -> None:
    """Server process: one uvicorn worker, journal (or Kafka) sink, no access log.

    `http="auto"` picks httptools (and uvloop) when installed, else h11/asyncio.
    """
    import uvicorn

    from arrecon.connectors.intake import DurableSink, JournalSink, KafkaSink
    from arrecon.connectors.journal import Journal
    from arrecon.connectors.webhook import ReceiverSettings, create_app

    sink: DurableSink = (
        KafkaSink(kafka, topic=topic) if kafka else JournalSink(Journal(Path(data_dir) / "raw"))
    )
    app = create_app(ReceiverSettings(stripe_secrets=(SECRET,)), sink)
    profile = os.environ.get("ARRECON_BENCH_PROFILE")  # cProfile of the event-loop thread
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        # uvicorn re-raises SIGTERM after its graceful shutdown; exit normally
        # instead so that the profile below gets written.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        profiler.enable()
    try:
        uvicorn.run(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http=http
        )
    finally:
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)


def _requests(count: int, port: int) -> list[bytes]:
    """`count` distinct, signed Stripe events (about 700 bytes each)."""
    from arrecon.connectors.signatures import sign_stripe

    timestamp = int(time.time())
    out = []
    for i in range(count):
        charge = {
            "id": f"ch_bench{i:08d}",
            "object": "charge",
            "amount": 1000 + i % 5000,
            "currency": "usd",
            "customer": f"cus_{i % 997:04d}",
            "description": f"Invoice INV-{i:08d}",
            "metadata": {"invoice_number": f"INV-{i:08d}", "po_number": f"PO-{i % 3331}"},
            "balance_transaction": f"txn_bench{i:08d}",
            "status": "succeeded",
        }
        event = {
            "id": f"evt_bench{i:08d}",
            "object": "event",
            "type": "charge.succeeded",
            "created": timestamp,
            "livemode": False,
            "data": {"object": charge},
        }
        body = orjson.dumps(event)
        head = (
            f"POST /webhooks/stripe HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
            f"content-type: application/json; charset=utf-8\r\n"
            f"stripe-signature: {sign_stripe(body, SECRET, timestamp)}\r\n"
            f"user-agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


@dataclass(frozen=True, slots=True)
class BenchResult:
    ok: int
    failed: int
    elapsed_s: float
    latencies_ms: list[float]
    # Stripe event ids answered 200: each must be found in the log afterwards.
    acknowledged: list[str] = field(default_factory=list)

    @property
    def requests_per_s(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


@dataclass(slots=True)
class _Tally:
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)


def _event_id(request: bytes) -> str:
    body = request.partition(b"\r\n\r\n")[2]
    event_id: str = orjson.loads(body)["id"]
    return event_id


async def _connection(port: int, queue: list[bytes], deadline: float, tally: _Tally) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue and time.perf_counter() < deadline:
            request = queue.pop()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            tally.latencies_ms.append((time.perf_counter() - started) * 1000.0)
            if head.startswith(b"HTTP/1.1 200"):
                tally.acknowledged.append(_event_id(request))
            else:
                tally.failures.append(int(head[9:12]))
    finally:
        writer.close()


async def _drive(port: int, requests: list[bytes], connections: int, max_s: float) -> BenchResult:
    queue = list(reversed(requests))
    tally = _Tally()
    started = time.perf_counter()
    deadline = started + max_s
    await asyncio.gather(*(_connection(port, queue, deadline, tally) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    ok = len(tally.latencies_ms) - len(tally.failures)
    return BenchResult(ok, len(tally.failures), elapsed, tally.latencies_ms, tally.acknowledged)


def _wait_ready(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("receiver did not become ready")


def _journal_records(data_dir: Path) -> Iterable[bytes]:
    from arrecon.connectors.journal import JournalReader

    return (record for _offset, record in JournalReader(data_dir / "raw"))


def _topic_records(bootstrap: str, topic: str) -> list[bytes]:
    """Every record of `topic`, consumed from the start up to the high watermarks."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-check-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[bytes] = []
        remaining = {p for p, end in ends.items() if end > 0}
        deadline = time.monotonic() + 120.0
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=1.0):
                if message.error() is not None:
                    raise RuntimeError(f"consuming {topic}: {message.error()}")
                value, offset = message.value(), message.offset()
                if value is not None:
                    records.append(value)
                if offset is not None and offset + 1 >= ends[message.partition()]:
                    remaining.discard(message.partition())
        return records
    finally:
        consumer.close()


def _missing(acknowledged: list[str], records: Iterable[bytes]) -> tuple[int, int]:
    """(records in the log, acknowledged event ids not found among them)."""
    from arrecon.connectors.intake import decode_envelope

    stored = Counter(orjson.loads(decode_envelope(r).body)["id"] for r in records)
    return stored.total(), sum(1 for event_id in acknowledged if event_id not in stored)


def _thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of a live process (Linux /proc; {} elsewhere).

    Keys are "name/tid", the main thread (the event loop) is "main"; Python's
    own threads all carry the interpreter's name, librdkafka names its threads.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    by_thread: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        label = "main" if task.name == str(pid) else f"{name}/{task.name}"
        by_thread[label] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return by_thread


def _implementations(http: str) -> str:
    """Which HTTP parser and event loop `auto` resolves to (they change the figures)."""
    import importlib.util

    def has(name: str) -> bool:
        return importlib.util.find_spec(name) is not None

    parser = http if http != "auto" else ("httptools" if has("httptools") else "h11")
    loop = "uvloop" if has("uvloop") else "asyncio"
    return f"http={parser} loop={loop}"


def _run_driver(port: int, requests: list[bytes], connections: int, max_s: float) -> BenchResult:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_drive(port, requests, connections, max_s))
    return uvloop.run(_drive(port, requests, connections, max_s))


@dataclass(frozen=True, slots=True)
class Durability:
    """What the log held after the run."""

    records: int
    missing: int
    server_cpu_s: dict[str, float]
    # The broker shares the cores with the server and the driver.
    broker_cpu_s: float = 0.0


def run_benchmark(
    requests: int,
    connections: int,
    max_s: float,
    http: str = "auto",
    *,
    warmup: int = 500,
    kafka: KafkaService | None = None,
) -> tuple[BenchResult, Durability]:
    """Start the server, warm it up, drive the load, stop it, read the log back.

    With `kafka` (a running broker) the server produces to a fresh topic of
    four partitions there instead of appending to a journal.
    """
    port = _free_port()
    topic = f"arrecon.raw.bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="arrecon-bench-") as tmp:
        data_dir = Path(tmp)
        command = [sys.executable, "-m", "arrecon.loadtest.bench_receiver"]
        command += ["--serve", str(port), tmp, "--http", http]
        if kafka is not None:
            kafka.create_topic(topic, partitions=4)
            command += ["--bootstrap", kafka.bootstrap, "--topic", topic]
        server = subprocess.Popen(command, start_new_session=True)
        try:
            _wait_ready(port)
            built = _requests(requests + warmup, port)
            _run_driver(port, built[:warmup], min(connections, 16), max_s)
            broker_pid = kafka.process.pid if kafka is not None and kafka.process else None
            broker_before = _broker_cpu_s(broker_pid)
            before = _thread_cpu_s(server.pid)
            result = _run_driver(port, built[warmup:], connections, max_s)
            after = _thread_cpu_s(server.pid)
            broker_s = _broker_cpu_s(broker_pid) - broker_before
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        cpu_s = {name: after[name] - before.get(name, 0.0) for name in after}
        records = _topic_records(kafka.bootstrap, topic) if kafka else _journal_records(data_dir)
        count, missing = _missing(result.acknowledged, records)
        return result, Durability(count - warmup, missing, cpu_s, broker_s)


def _broker_cpu_s(pid: int | None) -> float:
    return sum(_thread_cpu_s(pid).values()) if pid is not None else 0.0


def _start_broker(attempts: int = 3) -> KafkaService:
    """A fresh local broker; a failed start is retried.

    Why retry: the storage format step can fail on a random cluster id that
    starts with "-" (read as an option), about one start in thirty.
    """
    from arrecon.flows.services import KafkaService, ServiceError

    for attempt in range(1, attempts + 1):
        service = KafkaService()
        try:
            return service.start()
        except ServiceError:
            service.stop()
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--http", choices=("auto", "h11", "httptools"), default="auto")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument(
        "--warmup",
        type=int,
        default=500,
        help="requests sent before timing (a fresh broker's JVM needs thousands)",
    )
    parser.add_argument(
        "--kafka", action="store_true", help="start a local broker; the server produces to it"
    )
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.http, args.bootstrap, args.topic)
        return 0
    broker = _start_broker() if args.kafka else None
    try:
        load_before = os.getloadavg()[0]  # other work on the machine skews every figure
        result, durable = run_benchmark(
            args.requests,
            args.connections,
            args.max_seconds,
            args.http,
            warmup=args.warmup,
            kafka=broker,
        )
        load_after = os.getloadavg()[0]
    finally:
        if broker is not None:
            broker.stop()
    _report(args, result, durable, load_before, load_after)
    return 0 if durable.missing == 0 and result.failed == 0 else 1


def _report(
    args: argparse.Namespace,
    result: BenchResult,
    durable: Durability,
    load_before: float,
    load_after: float,
) -> None:
    log = "kafka topic (acks=all)" if args.kafka else "journal"
    print(
        f"when: {datetime.now(UTC).isoformat(timespec='seconds')}  cpus: {os.cpu_count()}"
        f"  load before/after: {load_before:.1f}/{load_after:.1f}"
        f"  {_implementations(args.http)}  log: {log}"
    )
    print(f"requests: {result.ok} ok, {result.failed} failed, in {result.elapsed_s:.2f} s")
    print(f"throughput: {result.requests_per_s:,.0f} req/s over {args.connections} connections")
    print(
        f"latency ms: p50 {result.percentile_ms(0.50):.2f}  p99 {result.percentile_ms(0.99):.2f}"
        f"  max {max(result.latencies_ms, default=0.0):.2f}"
        f"  mean {statistics.fmean(result.latencies_ms or [0.0]):.2f}"
    )
    print(
        f"durable: {durable.records} records in the {log} for {result.ok} acknowledged"
        f" requests; acknowledged but missing: {durable.missing}"
    )
    busy = sorted(durable.server_cpu_s.items(), key=lambda item: -item[1])
    shown = "  ".join(f"{name} {cpu_s:.2f}" for name, cpu_s in busy if cpu_s >= 0.01)
    print(f"server cpu s by thread: {shown}")
    if args.kafka:
        print(f"broker cpu s: {durable.broker_cpu_s:.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
