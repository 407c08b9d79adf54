"""Benchmark helpers: result files name no machine paths; scratch folders go away;
the replay floor decodes what the flow decodes; the ledger bench runs every case."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from arrecon.connectors.envelope import RawEnvelope
from arrecon.connectors.registry import decode_envelope
from arrecon.flows.replay import parse_line
from arrecon.loadtest.bench_ledger import (
    CASES,
    outcome_build_us,
    payment_latency_ns,
    prepare_memos,
)
from arrecon.loadtest.bench_replay import decode_all, floor_report
from arrecon.loadtest.bench_scaling import command_line, work_folder
from arrecon.loadtest.generator import MessConfig, write
from arrecon.state.references import normalize_reference


def test_command_line_makes_paths_under_the_working_folder_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["bench", "--events", "20", "--results-dir", str(tmp_path / "loadtest" / "results")]
    monkeypatch.setattr(sys, "argv", [*argv, "--other", "/elsewhere/out"])
    assert command_line("arrecon.loadtest.bench_scaling") == (
        "python -m arrecon.loadtest.bench_scaling --events 20 "
        "--results-dir loadtest/results --other /elsewhere/out"
    )


@pytest.mark.parametrize("keep", [False, True])
def test_work_folder_is_removed_unless_kept(keep: bool) -> None:
    with work_folder("arrecon-test-", keep) as folder:
        (folder / "data").write_text("x")
    assert folder.exists() == keep
    if keep:
        (folder / "data").unlink()
        folder.rmdir()


def test_decode_floor_decodes_every_line_the_flow_would(tmp_path: Path) -> None:
    stream = tmp_path / "input.jsonl"
    write(stream, tmp_path / "truth.jsonl", MessConfig(), 5, 300)
    lines = stream.read_bytes().splitlines()
    stream.write_bytes(b"\n".join([*lines, b"", b"{not json"]) + b"\n")
    expected = 1  # the malformed line becomes one rejection
    for number, line in enumerate(lines, start=1):
        envelope = parse_line(number, line, datetime.fromtimestamp(0, UTC))
        assert isinstance(envelope, RawEnvelope)
        decoded = decode_envelope(envelope, counters=None)
        expected += len(decoded.events) + len(decoded.rejections)
    assert expected > len(lines)  # bank files carry many entries each
    assert decode_all(stream) == expected


def test_floor_report_leaves_the_target_budget_minus_decoding() -> None:
    report = floor_report(50_000, floor_s=0.5, replay_s=10.0)
    assert report["target_budget_cpu_s"] == 2.0  # 50k events at 25k/s
    assert report["left_after_decode_cpu_s"] == 1.5
    assert report["rest_of_flow_cpu_s"] == 9.5
    assert report["share_of_replay"] == 0.05
    assert report["parse_decode_events_per_cpu_s"] == 100_000


@pytest.mark.parametrize("case", CASES)
def test_ledger_bench_times_every_payment_case(case: str) -> None:
    applied, matched = payment_latency_ns(10, 3, case=case)
    assert len(applied) == len(matched) == 3
    assert min(applied) > 0


def test_ledger_bench_cold_case_empties_the_key_memos() -> None:
    normalize_reference("INV-2026-000001")
    assert normalize_reference.cache_info().currsize > 0
    prepare_memos("explicit ref, cold", ())
    assert normalize_reference.cache_info().currsize == 0


def test_ledger_bench_times_both_outcome_builds() -> None:
    applied_us, status_us = outcome_build_us(number=10)
    assert applied_us > 0
    assert status_us > 0
