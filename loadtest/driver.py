"""End-to-end load driver: `arrecon run` as a child process, fed signed HTTP deliveries.

Why a separate process and real HTTP: the figures must be those of the engine a
provider talks to (receiver, durable log, Bytewax flow, ClickHouse rows), not
of a function call. The driver starts `python -m arrecon run` (embedded journal,
or `--kafka` with a broker it starts itself), generates the stream before the
clock starts, then sends it as Stripe/Shopify webhooks and bearer-authenticated
feed uploads with an asyncio httpx client at a target rate (or flat out).

What it measures, and where it comes from:

- request latency and status counts: the driver's own clock around each POST;
- end-to-end latency (receiver 2xx to outcome row queryable): the engine's
  exact per-event list at `/debug/latency` (chDB admits one process per folder,
  so the driver cannot query the rows itself);
- throughput: accepted deliveries / time from the first send until the
  engine's `arrecon_events_in_total` reaches the accepted count;
- engine RSS: `VmRSS` of the engine's pid every 0.5 s;
- Kafka lag: Bytewax's `bytewax_kafka_consumer_lag` gauge (librdkafka stats,
  1 s), and from the broker: high watermarks minus envelopes written.

The rate is open-loop (send i is due at i / rate) but bounded by the
concurrency limit: when the engine is slower than the offered rate the sends
fall behind schedule, and `behind_schedule_ms_max` says by how much.

    python -m arrecon.loadtest.driver --events 20000 --rate 1000
    python -m arrecon.loadtest.driver --kafka --rates 1000,5000,0 --repeat 3 --events 20000
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from arrecon import state
from arrecon.flows.demo import Delivery, DemoState, as_delivery, deliveries
from arrecon.flows.services import KafkaService, free_port
from arrecon.loadtest.children import dying_with_parent
from arrecon.loadtest.rawhttp import RawHttpPool

__all__ = [
    "DriverConfig",
    "Engine",
    "RunResult",
    "load_deliveries",
    "metric_sum",
    "percentile",
    "run_load",
    "summarise",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ENGINE_START_TIMEOUT_S = 120.0
SAMPLE_EVERY_S = 0.5
DRAIN_POLL_S = 0.05
STRIPE_PATH = "/webhooks/stripe"
E2E_TARGET_P50_MS = 50.0
E2E_TARGET_P99_MS = 1000.0


class DriverError(RuntimeError):
    """The engine could not be started or reached."""


# --- pure helpers ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of `values` (q in 0..100); None when empty.

    Nearest rank returns an observed value, so p99 of a small run is a real
    request, never an interpolation between two.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return float(ordered[min(int(rank), len(ordered)) - 1])


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50/p90/p99 and max in ms, rounded for reading."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "count": len(values_ms),
        "p50": rounded(percentile(values_ms, 50)),
        "p90": rounded(percentile(values_ms, 90)),
        "p99": rounded(percentile(values_ms, 99)),
        "max": rounded(max(values_ms) if values_ms else None),
    }


def metric_sum(text: str, name: str) -> float | None:
    """Sum of all samples called `name` (any labels) in a Prometheus text page."""
    total: float | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                total = (total or 0.0) + sample.value
    return total


def metric_by_label(text: str, name: str, label: str) -> dict[str, float]:
    """Samples called `name` summed per value of `label`."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                key = sample.labels.get(label, "")
                found[key] = found.get(key, 0.0) + sample.value
    return found


def rss_kib(status_text: str) -> int | None:
    """`VmRSS` in KiB from a /proc/<pid>/status text; None when absent (process gone)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def cpu_seconds(stat_text: str) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds."""
    fields = stat_text.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def histogram_mean_ms(text: str, name: str) -> float | None:
    """Mean of a Prometheus histogram (sum / count) in ms; None when unobserved."""
    count = metric_sum(text, f"{name}_count")
    total = metric_sum(text, f"{name}_sum")
    if not count or total is None:
        return None
    return round(total / count * 1000, 3)


def engine_diagnostics(text: str) -> dict[str, float | None]:
    """Where the engine's time went: fsync batches, ClickHouse inserts."""
    batches = metric_sum(text, "arrecon_journal_batch_records_count")
    records = metric_sum(text, "arrecon_journal_batch_records_sum")
    inserts = metric_sum(text, "arrecon_sink_write_seconds_count")
    return {
        "journal_fsync_ms_mean": histogram_mean_ms(text, "arrecon_journal_sync_seconds"),
        "journal_records_per_fsync": round(records / batches, 2) if batches and records else None,
        "clickhouse_insert_ms_mean": histogram_mean_ms(text, "arrecon_sink_write_seconds"),
        "clickhouse_inserts": inserts,
    }


def median_of(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return float(statistics.median(present)) if present else None


# --- configuration and results --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriverConfig:
    """One run: how many deliveries, how fast, with which log."""

    events: int = 20_000
    rate_eps: float = 1000.0  # 0 = flat out
    concurrency: int = 64
    max_send_s: float = 600.0
    drain_timeout_s: float = 300.0
    seed: int = 7
    kafka: bool = False
    partitions: int = 4
    wall_clock_timers: bool = False
    keep_data: bool = False


@dataclass(slots=True)
class SendStats:
    """What the sender saw: statuses, request latencies, schedule slip."""

    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    by_path_ms: dict[str, list[float]] = field(default_factory=dict)
    first_send_s: float = 0.0
    last_answer_s: float = 0.0
    behind_schedule_ms_max: float = 0.0
    retries: int = 0

    @property
    def accepted(self) -> int:
        return sum(count for status, count in self.statuses.items() if status.startswith("2"))


@dataclass(slots=True)
class RunResult:
    """Everything one run measured; `as_record` is the JSON written to results/."""

    config: DriverConfig
    started_at: str
    loadavg_start: tuple[float, float, float]
    loadavg_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    send: SendStats = field(default_factory=SendStats)
    events_in: int = 0
    drained_s: float | None = None
    e2e_latencies_ms: list[float] = field(default_factory=list)
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    kafka_lag_samples: list[tuple[float, float]] = field(default_factory=list)
    backlog_samples: list[tuple[float, int]] = field(default_factory=list)
    outcomes: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, float | None] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return summarise(self)


def summarise(result: RunResult) -> dict[str, Any]:
    """The JSON record of one run (figures, not raw lists, except RSS/lag series)."""
    send = result.send
    send_s = max(send.last_answer_s - send.first_send_s, 1e-9)
    throughput = result.events_in / result.drained_s if result.drained_s else None
    e2e = latency_summary(result.e2e_latencies_ms)
    rss_mib = [kib / 1024 for _t, kib in result.rss_samples]
    return {
        "mode": "kafka" if result.config.kafka else "journal",
        "config": {name: getattr(result.config, name) for name in DriverConfig.__slots__},
        "started_at": result.started_at,
        "machine": machine(),
        "loadavg_start": result.loadavg_start,
        "loadavg_end": result.loadavg_end,
        "send": {
            "accepted": send.accepted,
            "statuses": dict(sorted(send.statuses.items())),
            "retries": send.retries,
            "duration_s": round(send_s, 3),
            "achieved_rate_eps": round(send.accepted / send_s, 1),
            "behind_schedule_ms_max": round(send.behind_schedule_ms_max, 1),
            "request_latency_ms": latency_summary(send.latencies_ms),
            "request_latency_ms_by_path": {
                path: latency_summary(values) for path, values in sorted(send.by_path_ms.items())
            },
        },
        "engine": {
            "events_in": result.events_in,
            "all_events_in": result.events_in >= send.accepted,
            "first_send_to_all_in_s": None
            if result.drained_s is None
            else round(result.drained_s, 3),
            "throughput_eps": None if throughput is None else round(throughput, 1),
            "e2e_latency_ms": e2e,
            "e2e_targets_met": _targets_met(e2e),
            "rss_mib": {
                "start": round(rss_mib[0], 1) if rss_mib else None,
                "max": round(max(rss_mib), 1) if rss_mib else None,
                "end": round(rss_mib[-1], 1) if rss_mib else None,
                "samples": [[round(t, 2), round(kib / 1024, 1)] for t, kib in result.rss_samples],
            },
            "kafka": _kafka_record(result) if result.config.kafka else None,
            "outcomes": dict(sorted(result.outcomes.items())),
            "diagnostics": result.diagnostics,
        },
    }


def _targets_met(e2e: dict[str, float | int | None]) -> bool | None:
    p50, p99 = e2e["p50"], e2e["p99"]
    if p50 is None or p99 is None:
        return None
    return p50 <= E2E_TARGET_P50_MS and p99 <= E2E_TARGET_P99_MS


def _kafka_record(result: RunResult) -> dict[str, Any]:
    lags = [lag for _t, lag in result.kafka_lag_samples]
    backlog = [count for _t, count in result.backlog_samples]
    return {
        "bytewax_consumer_lag_max": max(lags) if lags else None,
        "bytewax_consumer_lag_final": lags[-1] if lags else None,
        "broker_backlog_max": max(backlog) if backlog else None,
        "broker_backlog_final": backlog[-1] if backlog else None,
        "lag_samples": [[round(t, 2), lag] for t, lag in result.kafka_lag_samples],
    }


def machine() -> dict[str, Any]:
    """The box the figures came from (they mean little without it)."""
    mem_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "mem_total_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "core": "compiled (mypyc)" if state.NATIVE else "interpreted",  # the engine inherits it
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return (round(one, 2), round(five, 2), round(fifteen, 2))


# --- the stream ------------------------------------------------------------------------------


def new_state(seed: int, now: datetime) -> DemoState:
    """Fresh secrets and a stream that starts 45 days back, as the demo does."""
    start = (now - timedelta(days=45)).replace(hour=0, minute=0, second=0, microsecond=0)
    return DemoState(
        seed=seed,
        start=start.isoformat(),
        sent=0,
        stripe_secret="whsec_" + uuid.uuid4().hex,
        shopify_secret=uuid.uuid4().hex,
        token=uuid.uuid4().hex,
    )


def load_deliveries(state: DemoState, events: int) -> list[Delivery]:
    """Exactly `events` HTTP requests, built before the clock starts."""
    now = int(time.time())
    records = itertools.islice(deliveries(state, events), events)
    return [as_delivery(record, state, now) for record in records]


def resigned(delivery: Delivery, state: DemoState) -> Delivery:
    """Stripe signatures carry a timestamp (300 s tolerance): sign at send time."""
    if delivery.path != STRIPE_PATH:
        return delivery
    fresh = stripe_signature(state.stripe_secret, delivery.body, int(time.time()))
    return Delivery(delivery.path, {**delivery.headers, "stripe-signature": fresh}, delivery.body)


def stripe_signature(secret: str, body: bytes, now: int) -> str:
    """Stripe's `t=...,v1=...` header: HMAC-SHA256 of `t.body`."""
    digest = hmac.new(secret.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={now},v1={digest}"


# --- the engine ------------------------------------------------------------------------------


class Engine:
    """`python -m arrecon run` as a child process in its own session."""

    def __init__(self, data_dir: Path, state: DemoState, kafka: str | None, topic: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "engine.log"
        self.env = _engine_env(state, kafka, topic)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wall_clock_timers: bool) -> Engine:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "ARRECON_WALL_CLOCK_TIMERS": "1" if wall_clock_timers else "0"}
        command = [sys.executable, "-m", "arrecon", "run", "--data-dir", str(self.data_dir)]
        command += ["--port", str(self.port)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                # Only a C call between fork and exec (libc resolved in the parent).
                preexec_fn=dying_with_parent(signal.SIGTERM),  # noqa: PLW1509
            )
        self._wait_ready()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise DriverError(f"arrecon run exited early:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/metrics", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise DriverError(f"arrecon run not ready after {ENGINE_START_TIMEOUT_S}s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGINT (the journal flow drains and snapshots), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=10)


def _engine_env(state: DemoState, kafka: str | None, topic: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "ARRECON_STRIPE_WEBHOOK_SECRETS": state.stripe_secret,
        "ARRECON_SHOPIFY_WEBHOOK_SECRETS": state.shopify_secret,
        "ARRECON_FEED_TOKENS": state.token,
        "ARRECON_RAW_TOPIC": topic,
    }
    env.pop("ARRECON_KAFKA", None)
    if kafka:
        env["ARRECON_KAFKA"] = kafka
    return env


# --- observing the engine --------------------------------------------------------------------


class Observer:
    """Samples RSS, progress and Kafka lag while the sender runs."""

    def __init__(self, engine: Engine, result: RunResult, kafka: KafkaService | None, topic: str):
        self.engine = engine
        self.result = result
        self.kafka = kafka
        self.topic = topic
        self.t0 = time.monotonic()
        self.cpu_start_s = sum(os.times()[:2])
        self.client = httpx.AsyncClient(base_url=engine.base_url, timeout=10)
        self._watermarks: Any = None

    async def scrape(self) -> str | None:
        try:
            answer = await self.client.get("/metrics")
        except httpx.HTTPError:
            return None
        return answer.text if answer.status_code == 200 else None

    async def events_in(self) -> int:
        text = await self.scrape()
        return int(metric_sum(text, "arrecon_events_in_total") or 0) if text else -1

    def sample_rss(self) -> None:
        try:
            status = Path(f"/proc/{self.engine.pid}/status").read_text()
        except OSError:
            return
        kib = rss_kib(status)
        if kib is not None:
            self.result.rss_samples.append((time.monotonic() - self.t0, kib))

    async def sample(self) -> None:
        self.sample_rss()
        if not self.result.config.kafka:
            return
        text = await self.scrape()
        at = time.monotonic() - self.t0
        if text is not None:
            lag = metric_sum(text, "bytewax_kafka_consumer_lag")
            if lag is not None:
                self.result.kafka_lag_samples.append((at, lag))
            written = metric_sum(text, "arrecon_events_in_total") or 0.0
            high = await asyncio.to_thread(self.high_watermark)
            if high is not None:
                self.result.backlog_samples.append((at, high - int(written)))

    def high_watermark(self) -> int | None:
        """Sum of the topic's high watermarks (the topic is fresh: offsets start at 0)."""
        if self.kafka is None:
            return None
        from confluent_kafka import Consumer, TopicPartition

        if self._watermarks is None:
            config = {"bootstrap.servers": self.kafka.bootstrap, "group.id": "arrecon-driver"}
            self._watermarks = Consumer(config)
        total = 0
        for part in range(self.result.config.partitions):
            try:
                _low, high = self._watermarks.get_watermark_offsets(
                    TopicPartition(self.topic, part), timeout=2
                )
            except Exception:  # KafkaException: the broker did not answer in time
                return None
            total += high
        return total

    async def run_until(self, done: asyncio.Event) -> None:
        while not done.is_set():
            await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), SAMPLE_EVERY_S)

    async def wait_drained(self, target: int, timeout_s: float, first_send_s: float) -> None:
        """Poll events_in until it reaches `target`; record when it did."""
        deadline = time.monotonic() + timeout_s
        next_sample = 0.0
        while time.monotonic() < deadline and self.engine.alive():
            seen = await self.events_in()
            now = time.monotonic()
            self.result.events_in = max(self.result.events_in, seen)
            if seen >= target:
                self.result.drained_s = now - first_send_s
                return
            if now >= next_sample:
                await self.sample()
                next_sample = now + SAMPLE_EVERY_S
            await asyncio.sleep(DRAIN_POLL_S)

    async def collect_final(self) -> None:
        text = await self.scrape()
        if text is not None:
            self.result.outcomes = metric_by_label(text, "arrecon_outcomes_total", "type")
            self.result.diagnostics.update(engine_diagnostics(text))
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{self.engine.pid}/stat").read_text()
            self.result.diagnostics["engine_cpu_s"] = round(cpu_seconds(stat), 2)
        driver_cpu_s = sum(os.times()[:2]) - self.cpu_start_s
        self.result.diagnostics["driver_cpu_s"] = round(driver_cpu_s, 2)
        try:
            answer = await self.client.get("/debug/latency", timeout=60)
        except httpx.HTTPError:
            return  # the engine died: the record shows no end-to-end latencies
        self.result.e2e_latencies_ms = [float(value) for value in orjson.loads(answer.content)]

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._watermarks is not None:
            self._watermarks.close()


# --- the sender ------------------------------------------------------------------------------


async def send_all(
    client: RawHttpPool,
    requests: Sequence[Delivery],
    state: DemoState,
    config: DriverConfig,
    stats: SendStats,
) -> None:
    """Open-loop sends at `config.rate_eps`, at most `config.concurrency` in flight."""
    slots = asyncio.Semaphore(config.concurrency)
    pending: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    stats.first_send_s = start
    deadline = start + config.max_send_s
    interval_s = 1.0 / config.rate_eps if config.rate_eps > 0 else 0.0
    for number, delivery in enumerate(requests):
        due = start + number * interval_s
        slip = time.monotonic() - due
        if slip < -0.001:
            await asyncio.sleep(-slip)
        await slots.acquire()
        now = time.monotonic()
        if now > deadline:
            slots.release()
            break
        stats.behind_schedule_ms_max = max(stats.behind_schedule_ms_max, (now - due) * 1000)
        task = asyncio.create_task(_send_one(client, resigned(delivery, state), stats, slots))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)


async def _send_one(
    client: RawHttpPool, delivery: Delivery, stats: SendStats, slots: asyncio.Semaphore
) -> None:
    began = time.monotonic()
    try:
        status = await _post(client, delivery, stats)
    finally:
        slots.release()
    ended = time.monotonic()
    stats.statuses[status] += 1
    stats.latencies_ms.append((ended - began) * 1000)
    stats.by_path_ms.setdefault(delivery.path.split("?", 1)[0], []).append((ended - began) * 1000)
    stats.last_answer_s = max(stats.last_answer_s, ended)


async def _post(client: RawHttpPool, delivery: Delivery, stats: SendStats) -> str:
    """POST once; resend once when the connection broke (as a provider retries).

    A kept-alive connection the server closed just as the request went out
    fails with a transport error; the resend is counted in `retries`.
    """
    for attempt in range(2):
        try:
            status = await client.post(delivery.path, delivery.headers, delivery.body)
        except OSError as error:
            if attempt == 0:
                stats.retries += 1
                continue
            return f"error:{type(error).__name__}"
        return str(status)
    raise AssertionError("unreachable")


# --- one run ---------------------------------------------------------------------------------


async def _drive(
    engine: Engine,
    requests: Sequence[Delivery],
    state: DemoState,
    result: RunResult,
    *,
    kafka: KafkaService | None,
    topic: str,
) -> None:
    config = result.config
    observer = Observer(engine, result, kafka, topic)
    done = asyncio.Event()
    try:
        client = await RawHttpPool("127.0.0.1", engine.port, config.concurrency).open()
        try:
            monitor = asyncio.create_task(observer.run_until(done))
            await send_all(client, requests, state, config, result.send)
            done.set()
            await monitor
        finally:
            await client.aclose()
        target = result.send.accepted
        await observer.wait_drained(target, config.drain_timeout_s, result.send.first_send_s)
        await observer.collect_final()
    finally:
        await observer.aclose()


def run_load(
    config: DriverConfig,
    requests: Sequence[Delivery] | None = None,
    state: DemoState | None = None,
    kafka: KafkaService | None = None,
) -> RunResult:
    """One run against a fresh engine (and, in Kafka mode, a fresh topic)."""
    state = state or new_state(config.seed, datetime.now(UTC))
    requests = requests if requests is not None else load_deliveries(state, config.events)
    topic = f"arrecon.raw.{uuid.uuid4().hex[:8]}"
    if config.kafka:
        if kafka is None:
            raise DriverError("Kafka mode needs a running KafkaService")
        kafka.create_topic(topic, partitions=config.partitions)
    data_dir = Path(tempfile.mkdtemp(prefix="arrecon-load-"))
    engine = Engine(data_dir, state, kafka.bootstrap if kafka else None, topic)
    result = RunResult(config, datetime.now(UTC).isoformat(timespec="seconds"), loadavg())
    try:
        engine.start(config.wall_clock_timers)
        asyncio.run(_drive(engine, requests, state, result, kafka=kafka, topic=topic))
    finally:
        result.loadavg_end = loadavg()
        engine.stop()
        if not config.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    return result


# --- several runs, output --------------------------------------------------------------------


def matrix(
    base: DriverConfig, rates: Sequence[float], repeat: int, echo: Any = print
) -> list[dict[str, Any]]:
    """Every rate `repeat` times (one broker for all Kafka runs); the records in order."""
    state = new_state(base.seed, datetime.now(UTC))
    requests = load_deliveries(state, base.events)
    records: list[dict[str, Any]] = []
    with _maybe_kafka(base.kafka) as kafka:
        for rate, attempt in itertools.product(rates, range(repeat)):
            config = _with_rate(base, rate)
            echo(f"run: {_mode(config)} rate={_rate_label(rate)} attempt {attempt + 1}/{repeat}")
            record = run_load(config, requests, state, kafka).as_record()
            records.append(record)
            echo(render_table([record]))
    return records


def _with_rate(base: DriverConfig, rate: float) -> DriverConfig:
    from dataclasses import replace

    return replace(base, rate_eps=rate)


@contextlib.contextmanager
def _maybe_kafka(enabled: bool) -> Iterator[KafkaService | None]:
    if not enabled:
        yield None
        return
    service = KafkaService().start()
    try:
        yield service
    finally:
        service.stop()


def _mode(config: DriverConfig) -> str:
    return "kafka" if config.kafka else "journal"


def _rate_label(rate: float) -> str:
    return "max" if rate <= 0 else f"{rate:g}/s"


def medians(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (mode, offered rate): the median of each headline figure over repeats."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["mode"], record["config"]["rate_eps"]), []).append(record)
    rows = []
    for (mode, rate), runs in groups.items():
        rows.append(
            {
                "mode": mode,
                "offered_rate_eps": rate,
                "runs": len(runs),
                **{name: median_of(getter(run) for run in runs) for name, getter in _HEADLINE},
            }
        )
    return rows


_HEADLINE: tuple[tuple[str, Any], ...] = (
    ("achieved_send_rate_eps", lambda r: r["send"]["achieved_rate_eps"]),
    ("throughput_eps", lambda r: r["engine"]["throughput_eps"]),
    ("request_p50_ms", lambda r: r["send"]["request_latency_ms"]["p50"]),
    ("request_p99_ms", lambda r: r["send"]["request_latency_ms"]["p99"]),
    ("e2e_p50_ms", lambda r: r["engine"]["e2e_latency_ms"]["p50"]),
    ("e2e_p90_ms", lambda r: r["engine"]["e2e_latency_ms"]["p90"]),
    ("e2e_p99_ms", lambda r: r["engine"]["e2e_latency_ms"]["p99"]),
    ("rss_max_mib", lambda r: r["engine"]["rss_mib"]["max"]),
    ("loadavg_1m_start", lambda r: r["loadavg_start"][0]),
    ("loadavg_1m_end", lambda r: r["loadavg_end"][0]),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def render_table(records: Sequence[dict[str, Any]]) -> str:
    """A readable table of runs: one line each."""
    head = (
        "mode      offered   accepted  non2xx  send/s   thru/s   req p50/p99 ms     "
        "e2e p50/p90/p99 ms          rss max MiB  load1"
    )
    lines = [head]
    for record in records:
        send, engine = record["send"], record["engine"]
        request, e2e = send["request_latency_ms"], engine["e2e_latency_ms"]
        non2xx = sum(n for status, n in send["statuses"].items() if not status.startswith("2"))
        lines.append(
            f"{record['mode']:<9} {_rate_label(record['config']['rate_eps']):>8} "
            f"{send['accepted']:>9} {non2xx:>7} {_cell(send['achieved_rate_eps']):>7} "
            f"{_cell(engine['throughput_eps']):>8}  "
            f"{_cell(request['p50']):>7}/{_cell(request['p99']):<9}  "
            f"{_cell(e2e['p50']):>7}/{_cell(e2e['p90']):>7}/{_cell(e2e['p99']):<9} "
            f"{_cell(engine['rss_mib']['max']):>11}  {record['loadavg_start'][0]:.2f}"
        )
    return "\n".join(lines)


def render_medians(rows: Sequence[dict[str, Any]]) -> str:
    names = ["mode", "offered_rate_eps", "runs", *(name for name, _g in _HEADLINE)]
    lines = ["  ".join(names)]
    for row in rows:
        lines.append("  ".join(_cell(row[name]) for name in names))
    return "\n".join(lines)


def write_results(records: list[dict[str, Any]], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {"runs": records, "medians": medians(records)}
    out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return out


def _parse_rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--events", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--rate", type=float, default=1000.0, show_default=True, help="0 = flat out.")
@click.option("--rates", default=None, help="Comma-separated rates (overrides --rate).")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--concurrency", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--max-send-s", type=float, default=600.0, show_default=True)
@click.option("--drain-timeout-s", type=float, default=300.0, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--kafka", is_flag=True, help="Start a local broker; the engine runs with --kafka.")
@click.option("--partitions", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--wall-clock-timers", is_flag=True, help="Live dunning timers (default: event time)."
)
@click.option("--keep-data", is_flag=True, help="Keep the engine's data folders.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(
    *,
    events: int,
    rate: float,
    rates: str | None,
    repeat: int,
    concurrency: int,
    max_send_s: float,
    drain_timeout_s: float,
    seed: int,
    kafka: bool,
    partitions: int,
    wall_clock_timers: bool,
    keep_data: bool,
    out: Path | None,
) -> None:
    """Drive `arrecon run` over HTTP and report throughput, latency and memory."""
    base = DriverConfig(
        events, rate, concurrency, max_send_s, drain_timeout_s, seed, kafka, partitions,
        wall_clock_timers, keep_data,
    )  # fmt: skip
    records = matrix(base, _parse_rates(rates) if rates else [rate], repeat, click.echo)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = write_results(records, out or RESULTS_DIR / f"{_mode(base)}-{events}-{stamp}.json")
    click.echo(render_table(records))
    click.echo("medians:")
    click.echo(render_medians(medians(records)))
    click.echo(f"results: {path}")


if __name__ == "__main__":
    main()
