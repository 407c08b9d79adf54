"""Command line for the load generator and the scorer.

`generate` writes `input.jsonl` (replay contract input) and `truth.jsonl`;
`score` compares an engine's `outcomes.jsonl` with the truth, prints a table
and exits 1 when a threshold flag is missed, so CI can gate on it.
"""

from __future__ import annotations

from pathlib import Path

import click

from arrecon.loadtest.generator import MessConfig, write
from arrecon.loadtest.score import Thresholds, score

__all__ = ["main"]

INPUT_NAME = "input.jsonl"
TRUTH_NAME = "truth.jsonl"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Seeded load generation with ground truth, and scoring of outcomes."""


@main.command()
@click.option("--events", "n_events", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for input.jsonl and truth.jsonl.",
)
@click.option(
    "--events-per-day", type=click.IntRange(min=1), default=None, help="Simulated arrival rate."
)
def generate(n_events: int, seed: int, out_dir: Path, events_per_day: int | None) -> None:
    """Write a dirty, deterministic delivery stream and its ground truth."""
    config = MessConfig()
    if events_per_day is not None:
        from dataclasses import replace

        config = replace(config, events_per_day=events_per_day)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines, records = write(out_dir / INPUT_NAME, out_dir / TRUTH_NAME, config, seed, n_events)
    click.echo(f"wrote {lines} lines to {out_dir / INPUT_NAME}")
    click.echo(f"wrote {records} truth records to {out_dir / TRUTH_NAME}")


@main.command(name="score")
@click.argument("outcomes", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("truth", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--min-auto-apply", type=click.FloatRange(0.0, 1.0), default=None)
@click.option("--max-misapplication", type=click.FloatRange(0.0, 1.0), default=None)
@click.option("--min-open-accuracy", type=click.FloatRange(0.0, 1.0), default=None)
@click.option("--min-short-pay-recall", type=click.FloatRange(0.0, 1.0), default=None)
@click.option("--min-short-pay-precision", type=click.FloatRange(0.0, 1.0), default=None)
@click.option("--min-chargeback-recall", type=click.FloatRange(0.0, 1.0), default=None)
@click.option("--min-duplicate-recall", type=click.FloatRange(0.0, 1.0), default=None)
@click.option("--min-fee-anomaly-recall", type=click.FloatRange(0.0, 1.0), default=None)
def score_command(outcomes: Path, truth: Path, **limits: float | None) -> None:
    """Score OUTCOMES (engine output) against TRUTH; exit 1 below thresholds."""
    report = score(outcomes, truth)
    click.echo(report.render())
    failures = report.failures(Thresholds(**limits))
    for failure in failures:
        click.echo(f"FAIL {failure}", err=True)
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
