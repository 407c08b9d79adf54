"""Replay raises the collector's thresholds only while it runs."""

from __future__ import annotations

import gc
from pathlib import Path

import orjson

from arrecon.flows import replay as replay_module
from arrecon.flows.replay import GC_THRESHOLDS, replay


def test_collector_thresholds_are_raised_during_the_run_and_restored_after(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"not json\n")
    seen: list[tuple[int, int, int]] = []
    real_run_main = replay_module.run_main

    def spying_run_main(flow: object) -> None:
        seen.append(gc.get_threshold())
        real_run_main(flow)

    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        replay_module.run_main = spying_run_main
        replay(source, tmp_path / "out", progress=False)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        replay_module.run_main = real_run_main
        gc.set_threshold(*saved)
    assert seen == [GC_THRESHOLDS]
    outcome = orjson.loads((tmp_path / "out" / "outcomes.jsonl").read_bytes())
    assert outcome["type"] == "rejected"
