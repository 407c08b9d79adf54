"""`arrecon replay` over every shared bank sample: no crash, only the expected rejections.

The expected rejections per file come from the decoder table test (statements
whose balances do not add up, camt.052 intraday reports, deliberately broken
files); every other file must go through the flow without a `rejected` line.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from arrecon.flows.replay import replay
from tests.connectors.test_samples_table import SAMPLES, TABLE


def test_replay_of_bank_samples_rejects_only_what_the_decoders_reject(tmp_path: Path) -> None:
    lines, expected = [], {}
    for number, (relative, kind, _events, _credits, _reversals, reasons) in enumerate(TABLE, 1):
        body = (SAMPLES / relative).read_bytes().decode("utf-8", errors="replace")
        record = {"source": "bank", "kind": kind, "received_at": "2026-03-01T00:00:00Z"}
        lines.append(orjson.dumps({**record, "body": body}))
        expected[number] = reasons
    path = tmp_path / "samples.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    outcomes = [
        orjson.loads(line)
        for line in replay(path, tmp_path / "out").read_bytes().split(b"\n")
        if line
    ]
    rejected: dict[int, set[str]] = {}
    for outcome in outcomes:
        if outcome["type"] == "rejected":
            rejected.setdefault(outcome["line"], set()).add(outcome["reason"].split(":")[0])
    for number, reasons in expected.items():
        assert rejected.get(number, set()) == {reason.split(":")[0] for reason in reasons}, TABLE[
            number - 1
        ][0]
    assert sum(1 for outcome in outcomes if outcome["type"] == "unapplied") > 50
