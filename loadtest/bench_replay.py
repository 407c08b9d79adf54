"""Replay throughput: input lines per second of `arrecon replay`, one worker.

Why: replay runs the real flow (decode, resolve, ledgers, fees, rendering), so
its rate is the engine's rate on one core (target: >= 25k events/s
over a 200k-event generated stream). Each run is a fresh process, so no memo
or cache carries over from one run to the next; its CPU time (user + system,
all threads, from `wait4`) is reported next to wall time because a shared,
loaded machine stretches wall time but not CPU time. Every run's output is
hashed: runs that disagree are reported as an error, not averaged.

    python -m arrecon.loadtest.bench_replay --events 200000 --seed 1 --runs 3 \
        --dir /tmp/g200

The stream is generated into `--dir` (input.jsonl, truth.jsonl), or reused
when `--dir` already holds one made with the same events and seed.

`--floor` also times, in a fresh process, only the flow's first two steps
(each line parsed and decoded into canonical events, by the same functions the
flow calls) and reports what that leaves of the target's CPU budget for
everything after them (resolve, ledgers, fee monitor, output, Bytewax).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from arrecon import state
from arrecon.connectors.envelope import RawEnvelope
from arrecon.flows.replay import parse_line, rare_collections
from arrecon.flows.steps import decode_stamped
from arrecon.loadtest.generator import MessConfig, write

__all__ = [
    "Run",
    "core_name",
    "decode_all",
    "floor_cpu_s",
    "machine_info",
    "main",
    "prepare_stream",
    "run_once",
]

INPUT_NAME = "input.jsonl"
TRUTH_NAME = "truth.jsonl"
META_NAME = "bench_meta.json"

# The child runs the same code path as `arrecon replay --quiet`.
_CHILD = (
    "import sys; from pathlib import Path; "
    "from arrecon.flows.replay import replay; "
    "replay(Path(sys.argv[1]), Path(sys.argv[2]), progress=False)"
)
# The floor child runs only the flow's parse and decode steps over every line.
_FLOOR_CHILD = (
    "import sys; from pathlib import Path; "
    "from arrecon.loadtest.bench_replay import decode_all; "
    "decode_all(Path(sys.argv[1]))"
)
TARGET_EVENTS_PER_S = 25_000


@dataclass(frozen=True, slots=True)
class Run:
    """One replay: wall and CPU seconds, peak memory and the output's digest."""

    wall_s: float
    cpu_s: float
    max_rss_kib: int
    output_sha256: str
    outcomes: int


def prepare_stream(directory: Path, events: int, seed: int) -> tuple[Path, bool]:
    """The input file, generated unless `directory` already holds the same one."""
    directory.mkdir(parents=True, exist_ok=True)
    stream, meta_path = directory / INPUT_NAME, directory / META_NAME
    wanted = {"events": events, "seed": seed}
    if stream.exists() and meta_path.exists() and orjson.loads(meta_path.read_bytes()) == wanted:
        return stream, True
    write(stream, directory / TRUTH_NAME, MessConfig(), seed, events)
    meta_path.write_bytes(orjson.dumps(wanted))
    return stream, False


def count_lines(stream: Path) -> int:
    """Input records as replay counts them (blank lines skipped)."""
    with stream.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def run_once(stream: Path, out_dir: Path) -> Run:
    """Replay `stream` in a child process; measure it from outside."""
    wall_s, usage = _child(_CHILD, str(stream), str(out_dir))
    output = (out_dir / "outcomes.jsonl").read_bytes()
    return Run(
        wall_s=wall_s,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_kib=usage.ru_maxrss,
        output_sha256=hashlib.sha256(output).hexdigest(),
        outcomes=output.count(b"\n"),
    )


def floor_cpu_s(stream: Path) -> float:
    """CPU seconds of parsing and decoding `stream` alone, in a fresh process."""
    _, usage = _child(_FLOOR_CHILD, str(stream))
    return float(usage.ru_utime + usage.ru_stime)


def _child(code: str, *args: str) -> tuple[float, resource.struct_rusage]:
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code, *args])
    _, status, usage = os.wait4(child.pid, 0)
    wall_s = time.perf_counter() - start
    exit_code = os.waitstatus_to_exitcode(status)
    if exit_code != 0:
        raise RuntimeError(f"benchmark child exited with {exit_code}")
    return wall_s, usage


def decode_all(stream: Path) -> int:
    """Parse and decode every line as the flow's first two steps do; the items made.

    The collector runs with replay's thresholds, and the decoded items are
    dropped batch by batch, as the flow drops them once they move on.
    """
    items = 0
    last_seen = datetime.fromtimestamp(0, UTC)
    with rare_collections(), stream.open("rb") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            envelope = parse_line(number, text, last_seen)
            if isinstance(envelope, RawEnvelope):
                last_seen = envelope.received_at
            items += len(decode_stamped(envelope))
    return items


def machine_info() -> dict[str, object]:
    """What the figures were measured on (the machine may be shared)."""
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "core": core_name(),
    }


def core_name() -> str:
    """Which reconciliation core runs here (children inherit the same choice)."""
    return "compiled (mypyc)" if state.NATIVE else "interpreted"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def summarise(events: int, runs: list[Run]) -> dict[str, object]:
    """Median rates over the runs; throughput counts input lines (deliveries)."""
    wall_s = statistics.median(run.wall_s for run in runs)
    cpu_s = statistics.median(run.cpu_s for run in runs)
    return {
        "events": events,
        "runs": len(runs),
        "events_per_cpu_s_median": round(events / cpu_s),
        "events_per_wall_s_median": round(events / wall_s),
        "cpu_s_median": round(cpu_s, 2),
        "wall_s_median": round(wall_s, 2),
        "cpu_s_each": [round(run.cpu_s, 2) for run in runs],
        "wall_s_each": [round(run.wall_s, 2) for run in runs],
        "max_rss_mib": round(max(run.max_rss_kib for run in runs) / 1024),
        "outcomes": runs[0].outcomes,
        "output_sha256": runs[0].output_sha256,
        "identical_outputs": len({run.output_sha256 for run in runs}) == 1,
    }


def floor_report(events: int, floor_s: float, replay_s: object) -> dict[str, object]:
    """Parse + decode alone against the whole replay and the target's budget."""
    assert isinstance(replay_s, float)
    budget_s = events / TARGET_EVENTS_PER_S
    return {
        "parse_decode_cpu_s": round(floor_s, 2),
        "parse_decode_events_per_cpu_s": round(events / floor_s),
        "share_of_replay": round(floor_s / replay_s, 3),
        "target_budget_cpu_s": round(budget_s, 2),
        "left_after_decode_cpu_s": round(budget_s - floor_s, 2),
        "rest_of_flow_cpu_s": round(replay_s - floor_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to generate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="replays to time (K)")
    parser.add_argument("--dir", type=Path, default=None, help="stream folder (reused)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    parser.add_argument("--floor", action="store_true", help="also time parse + decode alone")
    args = parser.parse_args(argv)
    directory = args.dir or Path(tempfile.gettempdir()) / f"arrecon-bench-{args.events}-{args.seed}"
    stream, reused = prepare_stream(directory, args.events, args.seed)
    events = count_lines(stream)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="arrecon-bench-out-") as out:
        for _ in range(args.runs):
            runs.append(run_once(stream, Path(out)))
    summary = summarise(events, runs)
    if args.floor:
        summary["floor"] = floor_report(events, floor_cpu_s(stream), summary["cpu_s_median"])
    report = {"stream": str(stream), "reused": reused, **summary, "machine": machine_info()}
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        _print_text(report)
    return 0 if summary["identical_outputs"] else 1


def _print_text(report: dict[str, object]) -> None:
    machine = report["machine"]
    assert isinstance(machine, dict)
    print(f"stream     {report['stream']} ({report['events']} input lines, "
          f"{'reused' if report['reused'] else 'generated'})")  # fmt: skip
    print(f"runs       {report['runs']} fresh processes, one Bytewax worker each")
    print(f"throughput {report['events_per_cpu_s_median']:>9,} events per CPU second (median)")
    print(f"           {report['events_per_wall_s_median']:>9,} events per wall second (median)")
    print(f"cpu s      {report['cpu_s_each']}  wall s {report['wall_s_each']}")
    print(f"memory     peak RSS {report['max_rss_mib']} MiB")
    print(f"output     {report['outcomes']} outcomes, sha256 {report['output_sha256']}, "
          f"identical across runs: {report['identical_outputs']}")  # fmt: skip
    print(f"machine    {machine['cpus']} cpus ({machine['cpus_usable']} usable), "
          f"{machine['memory_gib']} GiB, {machine['cpu_model']}, "
          f"load {machine['load_average']}, python {machine['python']}, "
          f"core {machine['core']}")  # fmt: skip
    floor = report.get("floor")
    if isinstance(floor, dict):
        print(f"floor      parse + decode alone {floor['parse_decode_cpu_s']} CPU s "
              f"({floor['parse_decode_events_per_cpu_s']:,} events per CPU second), "
              f"{floor['share_of_replay']:.0%} of the replay; the rest of the flow "
              f"{floor['rest_of_flow_cpu_s']} CPU s")  # fmt: skip
        print(f"           at {TARGET_EVENTS_PER_S:,} events/s the stream may take "
              f"{floor['target_budget_cpu_s']} CPU s: {floor['left_after_decode_cpu_s']} s "
              f"left after decoding for everything else")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
