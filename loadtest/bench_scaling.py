"""Scaling benchmark: the same Kafka topic through `arrecon run` with 1 and with 2 processes.

Why real processes and a real broker: a cluster's cost is in what a single
process never pays (the exchange between workers, one ClickHouse writer on
process 0, the shared Redis index), so only `arrecon run -i/-a` against Kafka
and Redis shows it. The benchmark starts a local Kafka broker and redis-server,
produces a generated stream once to a 4-partition topic keyed as the receiver
keys it (customer hints), then for each repeat runs the flow from the start of
the topic with 1 process and with 2, each on a fresh data folder (recovery,
chDB) and an empty Redis.

What it measures, per run:

- elapsed: from the first process's start until process 0's
  `arrecon_events_in_total` (counted once rows are written to ClickHouse) has
  reached every produced record and `arrecon_outcomes_total` has stopped
  moving for `--settle-s` (then every outcome row is written too); the time of
  the last observed progress is the end, so the settle wait is not counted;
- events/s over that elapsed time (start-up included) and in the steady part
  (first written event to the last progress);
- CPU seconds of the engine processes up to the last progress, the share of a
  core each burns while idle afterwards, and their peak RSS (all from /proc);
- correctness: the final open amount of every invoice (`invoices FINAL`) must
  be the same in the 1- and 2-process runs, and equal to `arrecon replay`.

Every server and engine it starts is stopped by pid/process group at the end,
also on errors. Results: `loadtest/results/scaling-<events>-<stamp>.json`.

    python -m arrecon.loadtest.bench_scaling --events 20000 --repeat 3
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from arrecon.connectors.envelope import RawEnvelope
from arrecon.connectors.intake import encode_envelope
from arrecon.connectors.webhook import routing_key
from arrecon.flows.services import KafkaService, RedisService, free_port
from arrecon.loadtest.children import dying_with_parent
from arrecon.loadtest.driver import cpu_seconds, loadavg, machine, metric_sum

__all__ = [
    "EngineProcess",
    "ScalingConfig",
    "envelope_of",
    "final_open_from_outcomes",
    "read_tables",
    "run_scaling",
    "write_result",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ENGINE_START_TIMEOUT_S = 120.0
POLL_S = 0.05


# --- engine processes ------------------------------------------------------------------------


def proc_status_kib(pid: int, key: str) -> int | None:
    """One `kB` field of /proc/<pid>/status (VmRSS, VmHWM); None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return None


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a live process, in seconds."""
    try:
        return cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


class EngineProcess:
    """`python -m arrecon run ...` as a child in its own session, observed through /metrics."""

    def __init__(self, data_dir: Path, args: Sequence[str], env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = data_dir / f"engine-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "arrecon", "run", "--data-dir", str(data_dir)]
        command += ["--port", str(self.port), *args]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                start_new_session=True,
                # Only a C call between fork and exec (libc resolved in the parent).
                preexec_fn=dying_with_parent(signal.SIGKILL),  # noqa: PLW1509
            )
        self.started_s = time.monotonic()
        self.cpu_s = 0.0
        self.hwm_kib = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def metrics(self) -> str | None:
        """The Prometheus page, or None while the server is not up."""
        try:
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as answer:
                text: str = answer.read().decode()
                return text
        except OSError:
            return None

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"arrecon run exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def sample(self) -> None:
        """Keep the latest CPU time and peak RSS (readable only while the process lives)."""
        cpu = proc_cpu_s(self.pid)
        hwm = proc_status_kib(self.pid, "VmHWM")
        if cpu is not None:
            self.cpu_s = cpu
        if hwm is not None:
            self.hwm_kib = max(self.hwm_kib, hwm)

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGINT (the journal flow drains and snapshots; Kafka mode exits), then SIGKILL."""
        if self.process.poll() is not None:
            return self.process.returncode
        self.sample()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode


@contextlib.contextmanager
def engines_stopped(engines: list[EngineProcess]) -> Iterator[list[EngineProcess]]:
    """Whatever happens inside, no engine in `engines` survives the block."""
    try:
        yield engines
    finally:
        for engine in engines:
            if engine.process.poll() is None:
                engine.kill()


# --- the stream --------------------------------------------------------------------------------


def envelope_of(record: dict[str, Any]) -> RawEnvelope:
    """A replay line as the envelope the receiver would have stored."""
    received_at = datetime.fromisoformat(record["received_at"].replace("Z", "+00:00"))
    return RawEnvelope(
        record["source"],
        record.get("kind") or "",
        received_at,
        record["body"],
        record.get("headers") or {},
    )


def _routing_key_of(record: dict[str, Any]) -> bytes:
    body = record["body"]
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    return routing_key(record["source"], record.get("headers") or {}, raw)


def produce_stream(bootstrap: str, topic: str, stream: Path) -> int:
    """Every replay line to `topic`, keyed like the receiver keys it; returns the count."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20})
    count = 0
    for line in stream.read_bytes().splitlines():
        record = orjson.loads(line)
        payload = encode_envelope(envelope_of(record))
        while True:
            try:
                producer.produce(topic, payload, key=_routing_key_of(record))
                break
            except BufferError:  # local queue full: let librdkafka deliver some first
                producer.poll(0.1)
        producer.poll(0)
        count += 1
    if producer.flush(60) != 0:
        raise RuntimeError("Kafka producer could not deliver every record")
    return count


# --- correctness -------------------------------------------------------------------------------


# Keyed by payment and invoice, not by row id: a row id derives from the input
# position, which differs between runs that read partitions in another order.
APPLICATIONS_SQL = (
    "SELECT payment_id, invoice_number, sum(if(reversed, 0, amount_minor)) "
    "FROM applications FINAL GROUP BY payment_id, invoice_number"
)


@dataclass(frozen=True, slots=True)
class Tables:
    """What a run left in ClickHouse that two runs must agree on."""

    open_minor: dict[str, int]
    applications: dict[str, int]  # "payment_id invoice_number" -> amount applied, not reversed


def read_tables(dsn: str) -> Tables:
    """Final open amount per invoice (`invoices FINAL`) and the applications."""
    from arrecon.sinks.clickhouse import acquire_client, release_client

    client = acquire_client(dsn)
    try:
        invoices = client.query("SELECT invoice_number, open_minor FROM invoices FINAL")
        applications = client.query(APPLICATIONS_SQL).result_rows
    finally:
        release_client(dsn)
    return Tables(
        {str(number): int(open_minor) for number, open_minor in invoices.result_rows},
        {f"{payment} {invoice}": int(amount) for payment, invoice, amount in applications},
    )


def final_open_from_outcomes(path: Path) -> dict[str, int]:
    """Last `invoice_status.open_minor` per invoice in a replay's outcomes.jsonl."""
    final: dict[str, int] = {}
    for line in path.read_bytes().splitlines():
        record = orjson.loads(line)
        if record["type"] == "invoice_status":
            final[record["invoice_number"]] = record["open_minor"]
    return final


def differences(left: dict[str, int], right: dict[str, int]) -> dict[str, Any]:
    """How two invoice -> open amount maps differ (counts and a few examples)."""
    missing = sorted(set(right) - set(left))
    extra = sorted(set(left) - set(right))
    changed = sorted(key for key in set(left) & set(right) if left[key] != right[key])
    return {
        "equal": not (missing or extra or changed),
        "missing": len(missing),
        "extra": len(extra),
        "changed": len(changed),
        "examples": [
            (key, left.get(key), right.get(key)) for key in (missing + extra + changed)[:5]
        ],
    }


# --- one run ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScalingConfig:
    events: int = 20_000
    seed: int = 1
    repeat: int = 3
    processes: tuple[int, ...] = (1, 2)
    partitions: int = 4
    snapshot_interval_s: float = 5.0
    settle_s: float = 2.0
    timeout_s: float = 1800.0
    check_replay: bool = True


@dataclass(slots=True)
class Progress:
    """Process 0's counters over time; the end is the last time either moved."""

    t0: float
    first_event_s: float | None = None
    first_events: int = 0
    last_change_s: float = 0.0
    events_in: int = 0
    outcomes: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)
    cpu_at_change_s: list[float] = field(default_factory=list)
    idle_cpu_share: list[float] = field(default_factory=list)

    def observe(self, now: float, events_in: int, outcomes: int, cpu_s: list[float]) -> None:
        if (events_in, outcomes) != (self.events_in, self.outcomes):
            self.last_change_s = now - self.t0
            self.samples.append((round(now - self.t0, 3), events_in))
            self.cpu_at_change_s = cpu_s
        if self.first_event_s is None and events_in > 0:
            self.first_event_s, self.first_events = now - self.t0, events_in
        self.events_in, self.outcomes = events_in, outcomes


def _cluster_args(processes: int, index: int, addresses: str) -> list[str]:
    return ["-i", str(index), "-a", addresses] if processes > 1 else []


def start_cluster(
    data_dir: Path, processes: int, common: list[str], env: dict[str, str]
) -> list[EngineProcess]:
    """`processes` engines sharing one data folder (recovery is shared; only 0 opens chDB)."""
    from arrecon.flows.recovery import open_recovery

    open_recovery(data_dir / "recovery", processes)  # made once, before they race to
    addresses = ",".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    return [
        EngineProcess(data_dir, [*common, *_cluster_args(processes, index, addresses)], env)
        for index in range(processes)
    ]


def wait_for_events(
    engines: list[EngineProcess], expected: int, settle_s: float, timeout_s: float
) -> Progress:
    """Poll process 0 until `expected` events are written and outcomes stop moving."""
    progress = Progress(t0=min(engine.started_s for engine in engines))
    deadline = progress.t0 + timeout_s
    while True:
        now = time.monotonic()
        for engine in engines:
            engine.check_alive()
            engine.sample()
        text = engines[0].metrics()
        if text is not None:
            events_in = int(metric_sum(text, "arrecon_events_in_total") or 0)
            outcomes = int(metric_sum(text, "arrecon_outcomes_total") or 0)
            progress.observe(now, events_in, outcomes, [engine.cpu_s for engine in engines])
        done = progress.events_in >= expected
        idle_s = now - progress.t0 - progress.last_change_s
        if done and idle_s >= settle_s:
            # CPU burnt with nothing left to do: polling, not work.
            spent = zip(engines, progress.cpu_at_change_s, strict=True)
            progress.idle_cpu_share = [
                (engine.cpu_s - at) / max(idle_s, 1e-9) for engine, at in spent
            ]
            return progress
        if now > deadline:
            raise RuntimeError(f"{progress.events_in}/{expected} events after {timeout_s}s")
        time.sleep(POLL_S)


@dataclass(frozen=True, slots=True)
class Target:
    """Where the runs read from and keep their data."""

    workdir: Path
    kafka: str
    redis_url: str
    topic: str
    records: int


def run_once(
    processes: int, target: Target, config: ScalingConfig
) -> tuple[dict[str, Any], Tables]:
    """One run from the start of the topic; its figures and what it left in ClickHouse."""
    _flush_redis(target.redis_url)
    data_dir = Path(tempfile.mkdtemp(prefix=f"scaling-{processes}p-", dir=target.workdir))
    dsn = f"chdb://{data_dir / 'chdb'}"
    common = ["--kafka", target.kafka, "--redis", target.redis_url, "--clickhouse", dsn]
    common += ["--snapshot-interval", str(config.snapshot_interval_s)]
    env = {"ARRECON_RAW_TOPIC": target.topic, "ARRECON_WALL_CLOCK_TIMERS": "0"}
    load_start = loadavg()
    with engines_stopped(start_cluster(data_dir, processes, common, env)) as engines:
        progress = wait_for_events(engines, target.records, config.settle_s, config.timeout_s)
        for engine in engines:
            engine.stop()
    figures = _run_figures(processes, progress, engines, target.records, load_start)
    return figures, read_tables(dsn)


def _run_figures(
    processes: int,
    progress: Progress,
    engines: list[EngineProcess],
    expected: int,
    load_start: tuple[float, float, float],
) -> dict[str, Any]:
    elapsed_s = progress.last_change_s
    first_s = progress.first_event_s or 0.0
    steady_s = max(elapsed_s - first_s, 1e-9)
    cpu_s = sum(progress.cpu_at_change_s)
    return {
        "processes": processes,
        "events": progress.events_in,
        "all_events_written": progress.events_in == expected,
        "elapsed_s": round(elapsed_s, 3),
        "events_per_s": round(expected / elapsed_s, 1),
        "startup_to_first_row_s": round(first_s, 3),
        # None when the first scrape already saw every event (a tiny run).
        "steady_events_per_s": round((expected - progress.first_events) / steady_s, 1)
        if progress.first_events < expected
        else None,
        "engine_cpu_s": round(cpu_s, 2),
        "events_per_cpu_s": round(expected / cpu_s, 1) if cpu_s else None,
        "cpu_s_per_process": [round(cpu, 2) for cpu in progress.cpu_at_change_s],
        "idle_cpu_share_per_process": [round(share, 3) for share in progress.idle_cpu_share],
        "peak_rss_mib_per_process": [round(engine.hwm_kib / 1024, 1) for engine in engines],
        "outcomes": progress.outcomes,
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
    }


def _flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushall()


# --- the whole benchmark -----------------------------------------------------------------------


def _generate(workdir: Path, config: ScalingConfig) -> Path:
    from arrecon.loadtest.generator import MessConfig, write

    stream = workdir / "input.jsonl"
    write(stream, workdir / "truth.jsonl", MessConfig(), seed=config.seed, n_events=config.events)
    return stream


def _replay_open(stream: Path, workdir: Path) -> dict[str, int]:
    from arrecon.flows.replay import replay

    return final_open_from_outcomes(replay(stream, workdir / "replay", progress=False))


def _median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return float(statistics.median(present)) if present else None


def _ratio(two: float | None, one: float | None) -> float | None:
    return round(two / one, 3) if two is not None and one else None


def _summary(runs: list[dict[str, Any]], processes: Sequence[int]) -> dict[str, Any]:
    """Medians per process count; the 2-to-1 ratios when both were run."""
    medians: dict[str, dict[str, float | None]] = {}
    for count in processes:
        mine = [run for run in runs if run["processes"] == count]
        medians[str(count)] = {
            name: _median(run[name] for run in mine)
            for name in ("events_per_s", "steady_events_per_s", "events_per_cpu_s")
        }
    summary: dict[str, Any] = {"median": medians}
    if "1" in medians and "2" in medians:
        one, two = medians["1"], medians["2"]
        summary["ratio_2_to_1"] = _ratio(two["events_per_s"], one["events_per_s"])
        summary["steady_ratio_2_to_1"] = _ratio(
            two["steady_events_per_s"], one["steady_events_per_s"]
        )
    return summary


def _start_services(
    stack: contextlib.ExitStack, workdir: Path, partitions: int, stream: Path
) -> Target:
    """Kafka and Redis (stopped when `stack` closes), the stream produced to a fresh topic."""
    kafka = KafkaService()
    stack.callback(kafka.stop)
    kafka.start()
    store = RedisService()
    stack.callback(store.stop)
    store.start()
    topic = f"arrecon.raw.bench-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=partitions)
    records = produce_stream(kafka.bootstrap, topic, stream)
    return Target(workdir, kafka.bootstrap, store.url, topic, records)


def run_scaling(config: ScalingConfig, workdir: Path) -> dict[str, Any]:
    """Start Kafka and Redis, produce once, run every (repeat, processes); stop everything."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    stream = _generate(workdir, config)
    expected_open = _replay_open(stream, workdir) if config.check_replay else None
    runs: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        target = _start_services(stack, workdir, config.partitions, stream)
        reference: Tables | None = None
        for repeat in range(config.repeat):
            for processes in config.processes:
                figures, tables = run_once(processes, target, config)
                reference = tables if reference is None else reference
                check = _check(repeat, processes, tables, reference, expected_open)
                runs.append({**figures, "repeat": repeat})
                checks.append(check)
                click.echo(_line(figures, check), err=True)
    return {
        "benchmark": "scaling",
        "started_at": started_at,
        "config": {name: getattr(config, name) for name in ScalingConfig.__slots__},
        "machine": machine(),
        "produced_records": target.records,
        "invoices_checked": len(reference.open_minor) if reference else 0,
        "correct": all(_check_ok(check) for check in checks),
        "summary": _summary(runs, config.processes),
        "runs": runs,
        "checks": checks,
    }


def _check(
    repeat: int,
    processes: int,
    tables: Tables,
    reference: Tables,
    expected_open: dict[str, int] | None,
) -> dict[str, Any]:
    """This run against the first run (open amounts, applications) and against replay."""
    check: dict[str, Any] = {"repeat": repeat, "processes": processes}
    check["open_same_as_first_run"] = differences(tables.open_minor, reference.open_minor)
    check["applications_same_as_first_run"] = differences(
        tables.applications, reference.applications
    )
    if expected_open is not None:
        check["open_same_as_replay"] = differences(tables.open_minor, expected_open)
    return check


def _check_ok(check: dict[str, Any]) -> bool:
    return all(value["equal"] for value in check.values() if isinstance(value, dict))


def _line(figures: dict[str, Any], check: dict[str, Any]) -> str:
    return (
        f"{figures['processes']} process(es): {figures['events_per_s']} events/s "
        f"({figures['elapsed_s']} s, steady {figures['steady_events_per_s']}/s, "
        f"cpu {figures['engine_cpu_s']} s, load {figures['loadavg_end'][0]}), "
        f"correct={_check_ok(check)}"
    )


@contextlib.contextmanager
def work_folder(prefix: str, keep: bool) -> Iterator[Path]:
    """A scratch folder for one benchmark, removed afterwards unless `keep`."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    finally:
        if keep:
            click.echo(f"work folder kept: {workdir}", err=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def command_line(module: str) -> str:
    """The command as typed, with paths under the working folder made relative.

    Why: result files are kept in the repository; they should say how to run the
    benchmark again, not where one machine keeps its checkout.
    """
    cwd = Path.cwd()

    def relative(arg: str) -> str:
        path = Path(arg)
        return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else arg

    return " ".join([f"python -m {module}", *(relative(arg) for arg in sys.argv[1:])])


def write_result(record: dict[str, Any], results_dir: Path, stem: str) -> Path:
    """`<results_dir>/<stem>-<UTC stamp>.json`, never overwriting an earlier run."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = results_dir / f"{stem}-{stamp}.json"
    path.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n")
    return path


@click.command()
@click.option("--events", type=int, default=20_000, show_default=True, help="Generated deliveries.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--repeat", type=int, default=3, show_default=True, help="Runs per process count.")
@click.option("--processes", default="1,2", show_default=True, help="Process counts to run.")
@click.option("--snapshot-interval", type=float, default=5.0, show_default=True)
@click.option("--settle-s", type=float, default=2.0, show_default=True)
@click.option("--no-replay-check", is_flag=True, help="Skip the comparison with `replay`.")
@click.option(
    "--results-dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR
)
@click.option("--keep", is_flag=True, help="Keep the work folder (data dirs, logs).")
def main(
    *,
    events: int,
    seed: int,
    repeat: int,
    processes: str,
    snapshot_interval: float,
    settle_s: float,
    no_replay_check: bool,
    results_dir: Path,
    keep: bool,
) -> None:
    """Events/s of `arrecon run` over Kafka with 1 and with 2 processes."""
    config = ScalingConfig(
        events=events,
        seed=seed,
        repeat=repeat,
        processes=tuple(int(part) for part in processes.split(",")),
        snapshot_interval_s=snapshot_interval,
        settle_s=settle_s,
        check_replay=not no_replay_check,
    )
    with work_folder("arrecon-bench-scaling-", keep) as workdir:
        record = run_scaling(config, workdir)
    record["command"] = command_line("arrecon.loadtest.bench_scaling")
    path = write_result(record, results_dir, f"scaling-{events}")
    click.echo(orjson.dumps(record["summary"], option=orjson.OPT_INDENT_2).decode())
    click.echo(f"correct: {record['correct']}; written to {path}", err=True)
    if not record["correct"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
