"""The scaling and restart benchmarks run end to end at a tiny size and write their JSON.

They start real Kafka, Redis and `arrecon run` processes, so they are integration
tests; the sizes keep both under a minute. Figures are not judged here, only that
every record was processed and the record says what the report needs.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from arrecon.loadtest import bench_restart
from arrecon.loadtest.bench_scaling import ScalingConfig, differences, run_scaling

pytestmark = pytest.mark.integration


def test_differences_counts_missing_extra_and_changed() -> None:
    found = differences({"a": 1, "b": 2, "x": 0}, {"a": 1, "b": 3, "c": 4})
    assert (found["equal"], found["missing"], found["extra"], found["changed"]) == (
        False,
        1,
        1,
        1,
    )
    assert differences({"a": 1}, {"a": 1})["equal"]


def test_scaling_runs_one_and_two_processes_over_every_record(tmp_path: Path) -> None:
    config = ScalingConfig(events=200, repeat=1, snapshot_interval_s=1.0, settle_s=0.5)
    record = run_scaling(config, tmp_path)

    assert record["produced_records"] >= 200
    assert [run["processes"] for run in record["runs"]] == [1, 2]
    for run in record["runs"]:
        assert run["all_events_written"], run
        assert run["events_per_s"] > 0
        assert len(run["peak_rss_mib_per_process"]) == run["processes"]
        assert all(rss > 0 for rss in run["peak_rss_mib_per_process"])
    assert record["invoices_checked"] > 20
    assert record["summary"]["ratio_2_to_1"] > 0
    first = record["checks"][0]
    assert first["open_same_as_first_run"]["equal"]
    assert set(first) >= {"open_same_as_replay", "applications_same_as_first_run"}


def test_restart_after_sigkill_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    args = ["--invoices", "2000", "--customers", "30", "--batch", "250"]
    args += ["--tail-events", "200", "--snapshot-interval", "1", "--results-dir", str(tmp_path)]
    result = CliRunner().invoke(bench_restart.main, args)

    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("restart-2000-*.json")
    record = orjson.loads(path.read_bytes())
    assert record["correct"] is True
    assert record["comparison"]["book_invoices_in_clickhouse"] == 2000
    assert record["comparison"]["book_invoices_open"] == 2000
    assert record["build_then_kill"]["recovery_mib_at_kill"] > 0
    restart = record["restart"]
    assert 0 < restart["to_serving_s"] <= restart["to_caught_up_s"]
    assert restart["peak_rss_mib"] > 0
    assert restart["exit_code"] == 0
