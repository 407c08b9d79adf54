"""The flow's ClickHouse sink: written soon after an idle spell, gathered under load (chDB)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from arrecon.flows.live import ClickHouseSink
from arrecon.flows.steps import Tagged
from arrecon.state.outcomes import Unapplied

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 2, tzinfo=UTC)


def item(n: int) -> Tagged:
    outcome = Unapplied(f"un-{n}", AT, f"P{n}", "C1", 100 + n, "USD", "no_match")
    return Tagged(n, 0, 0, outcome)


def wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.005)
    return check()


def test_idle_sink_writes_at_its_next_tick_and_busy_sink_waits_for_the_interval(
    tmp_path: Path,
) -> None:
    written: list[int] = []
    sink = ClickHouseSink(
        f"chdb://{tmp_path / 'chdb'}",
        on_written=lambda items: written.extend(getattr(i, "position", -1) for i in items),
        flush_ms=60_000,
        gauge_refresh_s=None,
    )
    part = sink.build_part("clickhouse_out", "rows", None)
    try:
        part.write_batch([item(1)])  # nothing flushed for a minute: goes out now
        assert wait_for(lambda: written == [1])
        part.write_batch([item(2)])  # just flushed: waits for the interval
        time.sleep(0.2)
        assert written == [1]
        part.last_flush = -math.inf  # as if the interval had passed
        assert wait_for(lambda: written == [1, 2])
    finally:
        part.close()
