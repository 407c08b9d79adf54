"""The sink benchmark runs end to end on a tiny ledger and reports every part."""

from __future__ import annotations

from pathlib import Path

import pytest

from arrecon.loadtest.bench_sinks import GENERATORS, VIEW_PARAMS, main

pytestmark = pytest.mark.integration


def test_bench_reports_writer_views_and_dashboard(tmp_path: Path) -> None:
    argv = ["--folder", str(tmp_path / "chdb"), "--rows", "200", "--batch-rows", "64"]
    report = main([*argv, "--invoices", "3000", "--applications", "9000", "--repeat", "1"])
    assert set(report["writer"]) == set(GENERATORS)
    assert all(result["rows"] == 200 for result in report["writer"].values())
    assert set(report["views"]) == {f"{v}@{m}" for v in VIEW_PARAMS for m in ("end", "past")}
    assert report["views"]["cash_kpis@end"]["rows"] == 3  # one row per currency
    calls = ("summary", "bucket_invoices")
    assert set(report["dashboard"]) == {f"{c}@{m}" for c in calls for m in ("end", "past")}
