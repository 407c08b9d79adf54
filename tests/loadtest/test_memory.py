"""The generator streams: memory stays flat however long the stream runs."""

from __future__ import annotations

import tracemalloc

from arrecon.loadtest.generator import MessConfig, generate


def test_memory_is_flat_over_200k_events() -> None:
    checkpoints = {50_000: 0, 200_000: 0}
    tracemalloc.start()
    try:
        for count, _ in enumerate(generate(MessConfig(), 1, 200_000), start=1):
            if count in checkpoints:
                checkpoints[count] = tracemalloc.get_traced_memory()[0]
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count >= 200_000
    # The book saturates after the rolling window (75 simulated days, ~45k
    # lines): from then on, four times the stream must not grow memory much.
    assert checkpoints[200_000] < checkpoints[50_000] * 1.35 + 2_000_000
    assert peak_bytes < 64 * 1024 * 1024
