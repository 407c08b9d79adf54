"""`generate` and `score` commands end to end on a small run."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from arrecon.loadtest.cli import main


def perfect_outcomes(truth_path: Path) -> list[bytes]:
    """What a flawless engine would say, derived from the truth."""
    lines = []
    for raw in truth_path.read_bytes().splitlines():
        record = orjson.loads(raw)
        if record["record"] == "payment":
            for item in record["allocations"]:
                applied = {"type": "applied", "payment_id": record["payment_id"], **item}
                lines.append(orjson.dumps(applied))
        elif record["record"] == "invoice":
            status = {"type": "invoice_status", **record}
            lines.append(orjson.dumps(status))
    return lines


def test_generate_then_score(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["generate", "--events", "300", "--seed", "4", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    replay, truth = tmp_path / "input.jsonl", tmp_path / "truth.jsonl"
    assert len(replay.read_bytes().splitlines()) >= 300
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_bytes(b"\n".join(perfect_outcomes(truth)) + b"\n")

    passed = runner.invoke(
        main,
        [
            "score",
            str(outcomes),
            str(truth),
            "--min-auto-apply",
            "1.0",
            "--max-misapplication",
            "0",
        ],
    )
    assert passed.exit_code == 0, passed.output
    assert "100.00%" in passed.output

    outcomes.write_bytes(b"")
    failed = runner.invoke(main, ["score", str(outcomes), str(truth), "--min-auto-apply", "0.5"])
    assert failed.exit_code == 1
    assert "auto-apply rate 0.0000 below 0.5000" in failed.output
