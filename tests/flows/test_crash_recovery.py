"""Kill `arrecon run` with SIGKILL mid-stream, restart it: the same rows as an uninterrupted run.

Both runs read the same journal (the receiver's durable log). The killed run
resumes from its last Bytewax snapshot and replays the rest; deterministic row
ids make the replayed rows collapse in ClickHouse, so nothing is lost and
nothing is doubled.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from arrecon.connectors.envelope import RawEnvelope
from arrecon.connectors.intake import encode_envelope
from arrecon.connectors.journal import Journal
from arrecon.flows.live import position_of
from arrecon.flows.services import free_port
from arrecon.loadtest.generator import MessConfig, write
from arrecon.sinks.clickhouse import acquire_client, release_client

pytestmark = pytest.mark.integration

EVENTS = 3000
TIMEOUT_S = 240.0


def _fill_journal(directory: Path, tmp_path: Path) -> int:
    stream, truth = tmp_path / "input.jsonl", tmp_path / "truth.jsonl"
    write(stream, truth, MessConfig(), seed=11, n_events=EVENTS)
    payloads = []
    for line in stream.read_bytes().splitlines():
        record = orjson.loads(line)
        received_at = datetime.fromisoformat(record["received_at"].replace("Z", "+00:00"))
        envelope = RawEnvelope(
            record["source"],
            record.get("kind") or "",
            received_at,
            record["body"],
            record.get("headers") or {},
        )
        payloads.append(encode_envelope(envelope))
    journal = Journal(directory / "journal" / "raw").open()
    try:
        offsets = journal.append_batch(payloads)
    finally:
        journal.close()
    return position_of(offsets[-1])


class Engine:
    """`arrecon run` as a child process, observed through /metrics."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "arrecon",
                "run",
                "--data-dir",
                str(data_dir),
                "--port",
                str(self.port),
                "--snapshot-interval",
                "0.3",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(data_dir / f"run-{self.port}.log").open("wb"),
            # Timers from event time only: the wall clock would make two runs differ.
            env={**os.environ, "PYTHONUNBUFFERED": "1", "ARRECON_WALL_CLOCK_TIMERS": "0"},
        )

    def position(self) -> int:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/metrics", timeout=2
            ) as answer:
                text = answer.read().decode()
        except OSError:
            return -1
        found = re.search(r"^arrecon_input_position (\S+)$", text, re.MULTILINE)
        return int(float(found.group(1))) if found else -1

    def wait_for(self, position: int) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while self.position() < position:
            assert self.process.poll() is None, "arrecon run exited early"
            assert time.monotonic() < deadline, f"not at {position} after {TIMEOUT_S}s"
            time.sleep(0.1)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=60) == 0


def _tables(data_dir: Path) -> dict[str, Any]:
    dsn = f"chdb://{data_dir / 'chdb'}"
    client = acquire_client(dsn)
    try:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return sorted(client.query(sql).result_rows)

        return {
            "applications": rows(
                "SELECT application_id, payment_id, invoice_number, amount_minor, reversed "
                "FROM applications FINAL"
            ),
            "exceptions": rows("SELECT exception_id, kind, amount_minor FROM exceptions FINAL"),
            "chargebacks": rows("SELECT chargeback_id, status FROM chargebacks FINAL"),
            "open": rows("SELECT invoice_number, open_minor FROM invoices FINAL"),
            "raw": rows("SELECT count(DISTINCT raw_id) FROM raw_events"),
        }
    finally:
        release_client(dsn)


def test_sigkill_then_restart_gives_the_rows_of_an_uninterrupted_run(tmp_path: Path) -> None:
    crashed, steady = tmp_path / "crashed", tmp_path / "steady"
    last = _fill_journal(crashed, tmp_path)
    shutil.copytree(crashed, steady)

    first = Engine(crashed)
    first.wait_for(last // 3)
    first.kill()
    assert _tables(crashed)["raw"][0][0] < EVENTS, "the first run finished before the kill"
    second = Engine(crashed)
    second.wait_for(last)
    second.stop()

    reference = Engine(steady)
    reference.wait_for(last)
    reference.stop()

    after_crash, uninterrupted = _tables(crashed), _tables(steady)
    assert len(uninterrupted["applications"]) > 300
    for table in ("applications", "exceptions", "chargebacks", "open", "raw"):
        assert after_crash[table] == uninterrupted[table], table
