"""Median table and a latency-against-offered-load plot from load driver results.

Why a separate step: benchmark runs are slow and noisy on a shared box, so
they are run once into `loadtest/results/*.json`; this reads any number of
those files, takes the median over repeats per (mode, offered rate), prints a
Markdown table and, when matplotlib is installed, draws the end-to-end
percentiles against offered load into a PNG.

    python -m arrecon.loadtest.report loadtest/results/journal-5000.json \
        loadtest/results/kafka-5000.json --png loadtest/results/latency.png
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import orjson

from arrecon.loadtest.driver import medians

__all__ = ["load_runs", "markdown_table", "plot", "plot_rss"]

COLUMNS = (
    ("mode", "mode"),
    ("offered", "offered_rate_eps"),
    ("runs", "runs"),
    ("sent/s", "achieved_send_rate_eps"),
    ("throughput/s", "throughput_eps"),
    ("req p50 ms", "request_p50_ms"),
    ("req p99 ms", "request_p99_ms"),
    ("e2e p50 ms", "e2e_p50_ms"),
    ("e2e p90 ms", "e2e_p90_ms"),
    ("e2e p99 ms", "e2e_p99_ms"),
    ("RSS max MiB", "rss_max_mib"),
    ("load1 start", "loadavg_1m_start"),
)


def load_runs(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every run record in the given result files, in file order."""
    runs: list[dict[str, Any]] = []
    for path in paths:
        runs.extend(orjson.loads(path.read_bytes())["runs"])
    return runs


def _offered(rate: float) -> str:
    return "max" if rate <= 0 else f"{rate:g}/s"


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name == "offered_rate_eps":
        return _offered(float(value))
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Medians as a Markdown table (one row per mode and offered rate)."""
    lines = [
        "| " + " | ".join(title for title, _key in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(key, row[key]) for _t, key in COLUMNS) + " |")
    return "\n".join(lines)


def _order(rate: float) -> float:
    return float("inf") if rate <= 0 else rate


def plot(rows: Sequence[dict[str, Any]], png: Path) -> Path:
    """End-to-end p50/p90/p99 (log ms) against offered load, one line per mode."""
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    pyplot: Any = importlib.import_module("matplotlib.pyplot")
    rates = sorted({float(row["offered_rate_eps"]) for row in rows}, key=_order)
    figure, axes = pyplot.subplots(figsize=(8, 5))
    styles = {"e2e_p50_ms": "-", "e2e_p90_ms": "--", "e2e_p99_ms": ":"}
    for number, mode in enumerate(sorted({row["mode"] for row in rows})):
        color = f"C{number}"
        by_rate = {float(row["offered_rate_eps"]): row for row in rows if row["mode"] == mode}
        for key, style in styles.items():
            xs = [index for index, rate in enumerate(rates) if rate in by_rate]
            ys = [by_rate[rates[index]][key] for index in xs]
            label = f"{mode} {key.split('_')[1]}"
            axes.plot(xs, ys, style, color=color, marker="o", label=label)
    axes.axhline(50, color="grey", linewidth=0.8)
    axes.axhline(1000, color="grey", linewidth=0.8)
    axes.set_xticks(range(len(rates)), [_offered(rate) for rate in rates])
    axes.set_yscale("log")
    axes.set_xlabel("offered load (deliveries/s)")
    axes.set_ylabel("receipt to row latency (ms, median of runs)")
    axes.set_title("arrecon run: end-to-end latency against offered load")
    axes.legend(fontsize="small")
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=110)
    pyplot.close(figure)
    return png


def plot_rss(runs: Sequence[dict[str, Any]], png: Path) -> Path:
    """Engine RSS (MiB) over the run's time, one line per run."""
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    pyplot: Any = importlib.import_module("matplotlib.pyplot")
    figure, axes = pyplot.subplots(figsize=(8, 4))
    for run in runs:
        samples = run["engine"]["rss_mib"]["samples"]
        offered = _offered(run["config"]["rate_eps"])
        label = f"{run['mode']} {offered}, {run['send']['accepted']} sent"
        axes.plot([t for t, _m in samples], [mib for _t, mib in samples], label=label)
    axes.set_xlabel("seconds since engine start")
    axes.set_ylabel("engine RSS (MiB)")
    axes.set_title("arrecon run: resident memory over a run")
    axes.legend(fontsize="small")
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=110)
    pyplot.close(figure)
    return png


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--rss-png", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(results: tuple[Path, ...], png: Path | None, rss_png: Path | None) -> None:
    """Print the median table of RESULTS; --png: latency plot; --rss-png: memory plot."""
    runs = load_runs(results)
    rows = medians(runs)
    rows.sort(key=lambda row: (row["mode"], _order(float(row["offered_rate_eps"]))))
    click.echo(markdown_table(rows))
    if png is not None:
        click.echo(f"plot: {plot(rows, png)}")
    if rss_png is not None:
        click.echo(f"plot: {plot_rss(runs, rss_png)}")


if __name__ == "__main__":
    main()
