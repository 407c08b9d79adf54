"""Restart benchmark: SIGKILL `arrecon run` holding ~N open invoices, restart, time the catch-up.

Why this shape: after a crash the engine must reload its last Bytewax snapshot
(every ledger, the resolver and, embedded, the in-memory index), replay the
journal from the snapshot's offset and rewrite those rows; how long that takes
grows with the open book, not with the traffic since the crash.

Steps (embedded mode: the receiver's journal, in-memory index, chDB):

1. build a book: ERP customer-master deliveries, then ERP invoice deliveries
   of `--batch` invoices each (an ERP export carries many invoices), spread
   over `--customers` customers with a skew (a few large accounts, many small),
   all written straight to the journal of a fresh data folder; a generated
   mixed stream (`--tail-events`: payments, disputes, more invoices) is the
   traffic that arrives while the engine is down;
2. run `arrecon run` until the book is written (`arrecon_input_position`),
   wait until Bytewax has committed a snapshot whose journal offset is at the
   end of the book (read from the recovery folder), SIGKILL it;
3. append the tail to the journal, restart, and time process start ->
   input position at the end of the journal (every row written); peak RSS
   (VmHWM), CPU seconds and the recovery folder's size are recorded;
4. unless `--no-reference`: an uninterrupted run over the same journal
   (book + tail) in another folder, and the ClickHouse tables of both
   compared (final open amount of every invoice, applications).

Results: `loadtest/results/restart-<invoices>-<stamp>.json`.

    python -m arrecon.loadtest.bench_restart --invoices 10000
    python -m arrecon.loadtest.bench_restart --invoices 1000000
"""

from __future__ import annotations

import contextlib
import pickle
import random
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import orjson

from arrecon.connectors.envelope import RawEnvelope
from arrecon.connectors.intake import encode_envelope
from arrecon.connectors.journal import Journal, JournalOffset
from arrecon.flows.live import position_of
from arrecon.loadtest import formats as fmt
from arrecon.loadtest.bench_scaling import (
    RESULTS_DIR,
    EngineProcess,
    command_line,
    differences,
    engines_stopped,
    envelope_of,
    read_tables,
    work_folder,
    write_result,
)
from arrecon.loadtest.driver import loadavg, machine, metric_sum

__all__ = ["RestartConfig", "book_payloads", "run_restart", "tail_payloads"]

BOOK_END = datetime(2026, 3, 1, tzinfo=UTC)  # the generated tail starts the next day
BOOK_SPAN = timedelta(days=60)
CUSTOMER_BATCH = 500
POLL_S = 0.1
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RestartConfig:
    invoices: int = 10_000
    customers: int | None = None  # None: one per 200 invoices, at least 20
    batch: int = 500
    tail_events: int = 2_000
    seed: int = 1
    snapshot_interval_s: float = 5.0
    reference: bool = True
    timeout_s: float = 7200.0

    @property
    def customer_count(self) -> int:
        return self.customers or max(20, self.invoices // 200)


# --- the book and the tail ---------------------------------------------------------------------


def _envelope(kind: str, at: datetime, body: list[dict[str, Any]]) -> bytes:
    return encode_envelope(RawEnvelope("erp", kind, at, body, {}))


def _customer_id(index: int) -> str:
    return f"BK-C{index:07d}"


def _customer_body(index: int, at: datetime) -> dict[str, Any]:
    return fmt.erp_customer(
        _customer_id(index),
        f"Book Customer {index} Ltd",
        aliases=[],
        external_ids=[],
        bank_accounts=[],
        credit_limit_minor=10**12,
        currency="USD",
        terms_days=30,
        segment=("enterprise", "retail", "smb")[index % 3],
        deduction_allowance_bps=0,
        updated_at=at,
    )


def _invoice_body(number: int, customer: int, rng: random.Random, at: datetime) -> dict[str, Any]:
    currency = "USD" if rng.random() < 0.8 else "EUR"
    return fmt.erp_invoice(
        f"BK-INV-{number:08d}",
        _customer_id(customer),
        rng.randrange(80_00, 40_000_00),
        currency,
        po_number=f"BK-PO-{number:08d}" if number % 2 else None,
        issued_at=at,
        due_at=at + timedelta(days=rng.choice((15, 30, 45, 60))),
        channel="bank",
        external_ids=[],
    )


def book_payloads(config: RestartConfig) -> Iterator[bytes]:
    """Customer master first, then invoice batches in issue order (journal records)."""
    customers = config.customer_count
    start = BOOK_END - BOOK_SPAN
    for first in range(0, customers, CUSTOMER_BATCH):
        indexes = range(first, min(first + CUSTOMER_BATCH, customers))
        yield _envelope("customer", start, [_customer_body(index, start) for index in indexes])
    rng = random.Random(config.seed)
    batches = -(-config.invoices // config.batch)
    for batch in range(batches):
        at = start + BOOK_SPAN * (batch + 1) / (batches + 1)
        numbers = range(batch * config.batch, min((batch + 1) * config.batch, config.invoices))
        # Skewed toward low indexes: a few large accounts, a long tail of small ones.
        body = [
            _invoice_body(number, int(customers * rng.random() ** 1.5), rng, at)
            for number in numbers
        ]
        yield _envelope("invoice", at, body)


def tail_payloads(config: RestartConfig) -> list[bytes]:
    """The generated mixed stream (its own customers and invoices), as journal records."""
    from arrecon.loadtest.generator import MessConfig, generate

    if config.tail_events <= 0:
        return []
    lines = generate(MessConfig(), config.seed, config.tail_events)
    return [encode_envelope(envelope_of(orjson.loads(line))) for line, _truth in lines]


def append(data_dir: Path, payloads: Iterator[bytes] | list[bytes], chunk: int = 200) -> int:
    """Append to the data folder's journal; the last record's input position (-1 if none)."""
    journal = Journal(data_dir / "journal" / "raw").open()
    last = -1
    try:
        pending: list[bytes] = []
        for payload in payloads:
            pending.append(payload)
            if len(pending) >= chunk:
                last = position_of(journal.append_batch(pending)[-1])
                pending = []
        if pending:
            last = position_of(journal.append_batch(pending)[-1])
    finally:
        journal.close()
    return last


# --- observing a run ---------------------------------------------------------------------------


def input_position(text: str | None) -> int:
    """`arrecon_input_position`: the highest journal position whose rows are written."""
    value = None if text is None else metric_sum(text, "arrecon_input_position")
    return -1 if value is None else int(value)


def wait_for_position(engine: EngineProcess, position: int, timeout_s: float) -> dict[str, float]:
    """Block until `position` is written; seconds from start to /metrics up and to caught up."""
    deadline = time.monotonic() + timeout_s
    serving_s: float | None = None
    while True:
        engine.check_alive()
        engine.sample()
        text = engine.metrics()
        now = time.monotonic()
        if serving_s is None and text is not None:
            serving_s = now - engine.started_s
        reached = input_position(text)
        if reached >= position:
            return {"serving_s": round(serving_s or 0.0, 3), "caught_up_s": now - engine.started_s}
        if now > deadline:
            raise RuntimeError(f"input position {reached} < {position} after {timeout_s}s")
        time.sleep(POLL_S)


INPUT_STEP = "arrecon.envelopes"  # the journal source: its state is the read offset


def _recovery_parts(recovery: Path) -> Iterator[sqlite3.Connection]:
    for part in sorted(recovery.glob("part-*.sqlite3")):
        with contextlib.closing(
            sqlite3.connect(f"file:{part}?mode=ro", uri=True, timeout=30)
        ) as db:
            yield db


def committed_epoch(recovery: Path) -> int:
    """The lowest epoch committed by every recovery partition (0 before the first)."""
    epochs: list[int] = []
    for db in _recovery_parts(recovery):
        row = db.execute("SELECT min(commit_epoch) FROM commits").fetchone()
        epochs.append(0 if row is None or row[0] is None else int(row[0]))
    return min(epochs, default=0)


def snapshot_position(recovery: Path) -> int:
    """The journal position a restart would resume from: the input's newest committed snapshot."""
    committed = committed_epoch(recovery)
    for db in _recovery_parts(recovery):
        row = db.execute(
            "SELECT ser_change FROM snaps WHERE step_id = ? AND snap_epoch <= ? "
            "ORDER BY snap_epoch DESC LIMIT 1",
            (INPUT_STEP, committed),
        ).fetchone()
        if row is not None and row[0] is not None:
            # Bytewax pickles the partition's snapshot: our offset text, "segment:position".
            return position_of(JournalOffset.parse(pickle.loads(row[0])))
    return -1


def wait_for_snapshot_at(
    engine: EngineProcess, recovery: Path, position: int, timeout_s: float
) -> tuple[int, int]:
    """Wait until a committed snapshot resumes past `position` (it was read): (epoch, resume)."""
    deadline = time.monotonic() + timeout_s
    while (resume := snapshot_position(recovery)) <= position:
        engine.check_alive()
        engine.sample()
        if time.monotonic() > deadline:
            raise RuntimeError(f"snapshot resumes at {resume} < {position} after {timeout_s}s")
        time.sleep(POLL_S)
    return committed_epoch(recovery), resume


def folder_mib(path: Path) -> float:
    total = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return round(total / MIB, 1)


# --- the benchmark -------------------------------------------------------------------------------


def _engine(data_dir: Path, config: RestartConfig) -> EngineProcess:
    args = ["--snapshot-interval", str(config.snapshot_interval_s)]
    # Timers from event time only: the wall clock would make two runs differ.
    return EngineProcess(data_dir, args, {"ARRECON_WALL_CLOCK_TIMERS": "0"})


def _figures(engine: EngineProcess, times: dict[str, float]) -> dict[str, Any]:
    return {
        "to_serving_s": times["serving_s"],
        "to_caught_up_s": round(times["caught_up_s"], 3),
        "engine_cpu_s": round(engine.cpu_s, 2),
        "peak_rss_mib": round(engine.hwm_kib / 1024, 1),
    }


def _prepare(workdir: Path, config: RestartConfig) -> dict[str, Any]:
    """Journals for the crashed and the reference folder; the positions that matter."""
    started = time.monotonic()
    crashed, reference = workdir / "crashed", workdir / "reference"
    book_end = append(crashed, book_payloads(config))
    tail = tail_payloads(config)
    if config.reference:
        shutil.copytree(crashed, reference)
        append(reference, tail)
    return {"book_end": book_end, "tail": tail, "prepare_s": time.monotonic() - started}


def _crash(crashed: Path, book_end: int, config: RestartConfig) -> dict[str, Any]:
    """Run until the book is written and snapshotted, then SIGKILL."""
    with engines_stopped([_engine(crashed, config)]) as (engine,):
        times = wait_for_position(engine, book_end, config.timeout_s)
        caught_up_at = time.monotonic()
        epoch, resume = wait_for_snapshot_at(
            engine, crashed / "recovery", book_end, config.timeout_s
        )
        snapshot_wait_s = time.monotonic() - caught_up_at
        engine.sample()
        engine.kill()
    return {
        **_figures(engine, times),
        "snapshot_wait_s": round(snapshot_wait_s, 3),
        "committed_epoch_at_kill": epoch,
        "snapshot_resume_position": resume,
        "book_end_position": book_end,
        "recovery_mib_at_kill": folder_mib(crashed / "recovery"),
    }


def _restart(crashed: Path, end: int, config: RestartConfig) -> dict[str, Any]:
    """Start again after the kill; time to the end of the journal."""
    with engines_stopped([_engine(crashed, config)]) as (engine,):
        times = wait_for_position(engine, end, config.timeout_s)
        engine.sample()
        code = engine.stop(timeout_s=config.timeout_s)
    return {**_figures(engine, times), "exit_code": code}


def _uninterrupted(reference: Path, end: int, config: RestartConfig) -> dict[str, Any]:
    with engines_stopped([_engine(reference, config)]) as (engine,):
        times = wait_for_position(engine, end, config.timeout_s)
        engine.sample()
        code = engine.stop(timeout_s=config.timeout_s)
    return {**_figures(engine, times), "exit_code": code}


def _compare(crashed: Path, reference: Path) -> dict[str, Any]:
    after = read_tables(f"chdb://{crashed / 'chdb'}")
    steady = read_tables(f"chdb://{reference / 'chdb'}")
    book = sum(1 for number in after.open_minor if number.startswith("BK-INV-"))
    open_book = sum(
        1 for number, amount in after.open_minor.items() if number.startswith("BK-") and amount
    )
    return {
        "invoices_in_clickhouse": len(after.open_minor),
        "book_invoices_in_clickhouse": book,
        "book_invoices_open": open_book,
        "open_same_as_uninterrupted": differences(after.open_minor, steady.open_minor),
        "applications_same_as_uninterrupted": differences(after.applications, steady.applications),
    }


def run_restart(config: RestartConfig, workdir: Path) -> dict[str, Any]:
    """Build, snapshot, kill, append, restart, compare; every engine stopped at the end."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load = [loadavg()]
    prepared = _prepare(workdir, config)
    crashed = workdir / "crashed"
    build = _crash(crashed, prepared["book_end"], config)
    load.append(loadavg())
    end = append(crashed, prepared["tail"]) if prepared["tail"] else prepared["book_end"]
    restart = _restart(crashed, end, config)
    load.append(loadavg())
    record: dict[str, Any] = {
        "benchmark": "restart",
        "started_at": started_at,
        "config": {name: getattr(config, name) for name in RestartConfig.__slots__},
        "customers": config.customer_count,
        "machine": machine(),
        "prepare_s": round(prepared["prepare_s"], 3),
        "journal_mib": folder_mib(crashed / "journal"),
        "build_then_kill": build,
        "restart": restart,
        "recovery_mib_after_restart": folder_mib(crashed / "recovery"),
        "chdb_mib": folder_mib(crashed / "chdb"),
    }
    if config.reference:
        record["uninterrupted"] = _uninterrupted(workdir / "reference", end, config)
        load.append(loadavg())
        record["comparison"] = _compare(crashed, workdir / "reference")
        comparison = record["comparison"]
        record["correct"] = bool(
            comparison["open_same_as_uninterrupted"]["equal"]
            and comparison["applications_same_as_uninterrupted"]["equal"]
        )
    record["loadavg"] = load
    return record


@click.command()
@click.option("--invoices", type=int, default=10_000, show_default=True, help="Open invoices.")
@click.option("--customers", type=int, default=None, help="Default: invoices / 200, at least 20.")
@click.option("--batch", type=int, default=500, show_default=True, help="Invoices per delivery.")
@click.option("--tail-events", type=int, default=2_000, show_default=True, help="After the kill.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--snapshot-interval", type=float, default=5.0, show_default=True)
@click.option("--no-reference", is_flag=True, help="Skip the uninterrupted run and comparison.")
@click.option("--timeout-s", type=float, default=7200.0, show_default=True)
@click.option(
    "--results-dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR
)
@click.option("--keep", is_flag=True, help="Keep the work folder (journals, chDB, logs).")
def main(
    *,
    invoices: int,
    customers: int | None,
    batch: int,
    tail_events: int,
    seed: int,
    snapshot_interval: float,
    no_reference: bool,
    timeout_s: float,
    results_dir: Path,
    keep: bool,
) -> None:
    """Restart-to-caught-up time after a SIGKILL with ~N open invoices."""
    config = RestartConfig(
        invoices=invoices,
        customers=customers,
        batch=batch,
        tail_events=tail_events,
        seed=seed,
        snapshot_interval_s=snapshot_interval,
        reference=not no_reference,
        timeout_s=timeout_s,
    )
    with work_folder("arrecon-bench-restart-", keep) as workdir:
        record = run_restart(config, workdir)
    record["command"] = command_line("arrecon.loadtest.bench_restart")
    path = write_result(record, results_dir, f"restart-{invoices}")
    summary = {key: record.get(key) for key in ("build_then_kill", "restart", "correct")}
    click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    click.echo(f"written to {path}", err=True)
    if record.get("correct") is False:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
