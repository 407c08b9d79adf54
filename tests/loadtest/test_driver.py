"""Load driver: pure helpers (percentiles, metric parsing, /proc parsing) and a tiny real run."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrecon.flows.demo import Delivery
from arrecon.loadtest.driver import (
    DriverConfig,
    RunResult,
    SendStats,
    cpu_seconds,
    histogram_mean_ms,
    medians,
    metric_by_label,
    metric_sum,
    new_state,
    percentile,
    render_table,
    resigned,
    rss_kib,
    run_load,
    summarise,
    write_results,
)

METRICS_PAGE = """\
# HELP arrecon_events_in_total Raw envelopes read by the flow.
# TYPE arrecon_events_in_total counter
arrecon_events_in_total{kind="invoice",source="erp"} 120.0
arrecon_events_in_total{kind="-",source="stripe"} 30.0
# HELP arrecon_outcomes_total Outcomes emitted by the engine.
# TYPE arrecon_outcomes_total counter
arrecon_outcomes_total{method="exact",type="applied"} 7.0
arrecon_outcomes_total{method="po",type="applied"} 3.0
arrecon_outcomes_total{method="-",type="unapplied"} 2.0
# HELP arrecon_journal_sync_seconds Time to write and fsync one group-commit batch.
# TYPE arrecon_journal_sync_seconds histogram
arrecon_journal_sync_seconds_bucket{le="0.001"} 3.0
arrecon_journal_sync_seconds_bucket{le="+Inf"} 4.0
arrecon_journal_sync_seconds_count 4.0
arrecon_journal_sync_seconds_sum 0.01
"""


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([4.0, 1.0, 3.0, 2.0], 100, 4.0),
        ([float(n) for n in range(1, 101)], 99, 99.0),
        ([float(n) for n in range(1, 101)], 90, 90.0),
        ([float(n) for n in range(1, 1001)], 99, 990.0),
        ([3.0, 1.0, 2.0], 0, 1.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200),
    st.floats(0, 100),
    st.floats(0, 100),
)
def test_percentile_is_an_observed_value_and_monotone(
    values: list[float], q1: float, q2: float
) -> None:
    low, high = sorted((q1, q2))
    p_low, p_high = percentile(values, low), percentile(values, high)
    assert p_low is not None
    assert p_high is not None
    assert p_low in values
    assert p_high in values
    assert min(values) <= p_low <= p_high <= max(values)


def test_metric_sum_adds_every_label_set() -> None:
    assert metric_sum(METRICS_PAGE, "arrecon_events_in_total") == 150.0
    assert metric_sum(METRICS_PAGE, "bytewax_kafka_consumer_lag") is None


def test_metric_by_label_groups_outcome_types() -> None:
    found = metric_by_label(METRICS_PAGE, "arrecon_outcomes_total", "type")
    assert found == {"applied": 10.0, "unapplied": 2.0}


def test_histogram_mean_in_ms() -> None:
    assert histogram_mean_ms(METRICS_PAGE, "arrecon_journal_sync_seconds") == 2.5
    assert histogram_mean_ms(METRICS_PAGE, "arrecon_sink_write_seconds") is None


def test_proc_parsing() -> None:
    status = "Name:\tpython\nVmPeak:\t  900 kB\nVmRSS:\t  123456 kB\nThreads:\t9\n"
    assert rss_kib(status) == 123456
    assert rss_kib("Name:\tzombie\n") is None
    # The command name may hold spaces and parentheses; fields count from the last ')'.
    stat = "42 (py (x) y) S 1 2 3 4 5 6 7 8 9 10 " + "250 150 0 0 20 0"
    assert cpu_seconds(stat) == pytest.approx(400 / os.sysconf("SC_CLK_TCK"))


def test_stripe_deliveries_are_signed_at_send_time() -> None:
    state = new_state(1, datetime(2026, 1, 1, tzinfo=UTC))
    body = b'{"id":"evt_1"}'
    stale = Delivery("/webhooks/stripe", {"stripe-signature": "t=1,v1=00"}, body)
    fresh = resigned(stale, state)
    stamp, digest = fresh.headers["stripe-signature"].split(",")
    now = stamp.removeprefix("t=")
    expected = hmac.new(state.stripe_secret.encode(), f"{now}.".encode() + body, hashlib.sha256)
    assert digest == f"v1={expected.hexdigest()}"
    assert int(now) > 1
    feed = Delivery("/feeds/erp?kind=invoice", {"authorization": "Bearer x"}, body)
    assert resigned(feed, state) is feed


def _record(mode_kafka: bool, rate: float, p50: float, accepted: int) -> dict[str, object]:
    stats = SendStats(statuses=Counter({"200": accepted, "503": 1}), latencies_ms=[p50, p50 * 2])
    stats.first_send_s, stats.last_answer_s = 10.0, 12.0
    result = RunResult(DriverConfig(rate_eps=rate, kafka=mode_kafka), "t", (1.0, 1.0, 1.0))
    result.send = stats
    result.events_in = accepted
    result.drained_s = 4.0
    result.e2e_latencies_ms = [p50, p50, p50 * 10]
    result.rss_samples = [(0.0, 1024 * 100), (0.5, 1024 * 300)]
    return summarise(result)


def test_summary_and_medians_over_repeats(tmp_path: Path) -> None:
    records = [_record(False, 1000.0, p50, 400) for p50 in (10.0, 30.0, 20.0)]
    records.append(_record(True, 1000.0, 99.0, 400))
    first = records[0]
    assert first["send"]["accepted"] == 400
    assert first["send"]["achieved_rate_eps"] == 200.0
    assert first["engine"]["throughput_eps"] == 100.0
    assert first["engine"]["rss_mib"]["max"] == 300.0
    assert first["engine"]["e2e_targets_met"] is True
    rows = {(row["mode"], row["runs"]): row for row in medians(records)}
    assert rows[("journal", 3)]["e2e_p50_ms"] == 20.0
    assert rows[("kafka", 1)]["e2e_p50_ms"] == 99.0
    assert rows[("kafka", 1)]["e2e_p99_ms"] == 990.0
    table = render_table(records)
    assert len(table.splitlines()) == 5
    assert "kafka" in table
    path = write_results(records, tmp_path / "r.json")
    assert path.read_bytes().startswith(b"{")


@pytest.mark.integration
def test_tiny_embedded_run_reports_sane_numbers() -> None:
    config = DriverConfig(events=300, rate_eps=200.0, concurrency=16, drain_timeout_s=60.0)
    record = run_load(config).as_record()
    send, engine = record["send"], record["engine"]
    assert send["statuses"] == {"200": 300}
    assert send["accepted"] == 300
    assert engine["events_in"] == 300
    assert engine["all_events_in"] is True
    assert engine["throughput_eps"] > 0
    assert engine["first_send_to_all_in_s"] > 0
    e2e = engine["e2e_latency_ms"]
    assert e2e["count"] > 0
    assert 0 < e2e["p50"] <= e2e["p90"] <= e2e["p99"] <= e2e["max"]
    request = send["request_latency_ms"]
    assert request["count"] == 300
    assert 0 < request["p50"] <= request["p99"]
    assert engine["rss_mib"]["max"] > 50
    assert engine["outcomes"].get("applied", 0) > 0


def test_report_reads_result_files_into_a_median_table(tmp_path: Path) -> None:
    from arrecon.loadtest.report import load_runs, markdown_table

    first = write_results([_record(False, 0.0, 10.0, 50)], tmp_path / "a.json")
    second = write_results([_record(False, 0.0, 30.0, 50)], tmp_path / "b.json")
    runs = load_runs([first, second])
    assert len(runs) == 2
    table = markdown_table(medians(runs)).splitlines()
    assert len(table) == 3
    cells = [cell.strip() for cell in table[2].strip("|").split("|")]
    assert cells[:3] == ["journal", "max", "2"]
    assert cells[7] == "20.0"  # e2e p50: median of 10 and 30
