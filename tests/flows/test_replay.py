"""`arrecon replay`: the real flow over recorded deliveries, end to end."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from arrecon.flows.replay import RenderSink, ordered_records, replay
from arrecon.flows.steps import Tagged
from arrecon.state.outcomes import Duplicate

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "flows" / "schema" / "outcome.schema.json").read_text()
)


def _line(source: str, kind: str, at: str, body: Any) -> str:
    return orjson.dumps({"source": source, "kind": kind, "received_at": at, "body": body}).decode()


def customer(cid: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"customer_id": cid, "name": name, "currency": "USD", "terms_days": 30, **extra}


def invoice(number: str, cid: str, amount: str, **extra: Any) -> dict[str, Any]:
    return {
        "invoice_number": number,
        "customer_id": cid,
        "currency": "USD",
        "amount": amount,
        "issued_at": "2026-03-01T00:00:00Z",
        "due_at": "2026-03-31T00:00:00Z",
        **extra,
    }


def charge(evt: str, charge_id: str, amount: int, customer_ref: str, text: str) -> dict[str, Any]:
    return {
        "id": evt,
        "object": "event",
        "type": "charge.succeeded",
        "created": 1772445600,
        "data": {
            "object": {
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "currency": "usd",
                "customer": customer_ref,
                "description": text,
                "status": "succeeded",
                "paid": True,
                "created": 1772445600,
                "payment_method_details": {"type": "card"},
            }
        },
    }


def run(tmp_path: Path, lines: list[str], name: str = "out") -> list[dict[str, Any]]:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = replay(path, tmp_path / name, progress=False)
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    for record in records:
        jsonschema.validate(record, SCHEMA)
    return records


def final_status(records: list[dict[str, Any]]) -> dict[str, tuple[str, int]]:
    last = {}
    for record in records:
        if record["type"] == "invoice_status":
            last[record["invoice_number"]] = (record["status"], record["open_minor"])
    return last


STREAM = [
    _line(
        "erp",
        "customer",
        "2026-03-01T09:00:00Z",
        customer("C-1", "Acme Corporation", external_ids=["cus_ACME"]),
    ),
    _line("erp", "invoice", "2026-03-01T10:00:00Z", invoice("INV-2026-004711", "C-1", "1000.00")),
    _line("erp", "invoice", "2026-03-01T10:00:01Z", invoice("INV-2026-004712", "C-1", "250.00")),
    "this is not json",
    _line(
        "stripe",
        "",
        "2026-03-02T10:00:00Z",
        charge("evt_1", "ch_1", 100000, "cus_ACME", "Payment INV-2026-004711"),
    ),
    _line(
        "stripe",
        "",
        "2026-03-02T10:00:05Z",
        charge("evt_1", "ch_1", 100000, "cus_ACME", "Payment INV-2026-004711"),
    ),
    _line("stripe", "", "2026-03-02T11:00:00Z", {"id": "evt_2", "type": "charge.succeeded"}),
]


def test_replay_applies_rejects_and_flags_duplicates(tmp_path: Path) -> None:
    records = run(tmp_path, STREAM)
    applied = [r for r in records if r["type"] == "applied"]
    assert [(r["payment_id"], r["invoice_number"], r["amount_minor"]) for r in applied] == [
        ("ch_1", "INV-2026-004711", 100000)
    ]
    assert [r["payment_id"] for r in records if r["type"] == "duplicate"] == ["ch_1"]
    rejected = {r["line"]: r["reason"] for r in records if r["type"] == "rejected"}
    assert set(rejected) == {4, 7}
    assert rejected[4].startswith("malformed_json")
    assert final_status(records) == {
        "INV-2026-004711": ("paid", 0),
        "INV-2026-004712": ("open", 25000),
    }


def test_replay_output_is_byte_identical(tmp_path: Path) -> None:
    run(tmp_path, STREAM, "first")
    run(tmp_path, STREAM, "second")
    first = (tmp_path / "first" / "outcomes.jsonl").read_bytes()
    assert first == (tmp_path / "second" / "outcomes.jsonl").read_bytes()
    assert first.count(b"\n") >= 7


def test_cash_from_unknown_payer_is_parked_then_applied_when_its_invoice_arrives(
    tmp_path: Path,
) -> None:
    cash_first = [
        _line(
            "stripe",
            "",
            "2026-03-02T10:00:00Z",
            charge("evt_9", "ch_9", 25000, "cus_NEW", "INV-2026-009001"),
        ),
        _line("erp", "customer", "2026-03-03T09:00:00Z", customer("C-9", "Initech LLC")),
        _line(
            "erp", "invoice", "2026-03-03T10:00:00Z", invoice("INV-2026-009001", "C-9", "250.00")
        ),
    ]
    records = run(tmp_path, cash_first, "cash_first")
    kinds = [(r["type"], r.get("payment_id")) for r in records if r.get("payment_id")]
    assert kinds == [("unapplied", "ch_9"), ("applied", "ch_9")]
    assert records[0]["reason"] == "customer_unresolved"
    invoice_first = [cash_first[1], cash_first[2], cash_first[0]]
    assert final_status(records) == final_status(run(tmp_path, invoice_first, "invoice_first"))
    assert final_status(records) == {"INV-2026-009001": ("paid", 0)}


def test_cli_fails_clearly_on_an_unreadable_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "arrecon",
            "replay",
            str(tmp_path / "missing.jsonl"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "cannot read" in result.stderr


@pytest.mark.parametrize(
    "line",
    [
        "[]",
        '{"received_at":"2026-03-01T00:00:00Z","body":{}}',
        '{"source":"erp","received_at":"yesterday","body":{}}',
    ],
)
def test_lines_that_are_not_envelopes_become_rejections(tmp_path: Path, line: str) -> None:
    records = run(tmp_path, [line])
    assert [r["type"] for r in records] == ["rejected"]
    assert records[0]["line"] == 1


def test_output_does_not_depend_on_batch_boundaries(tmp_path: Path) -> None:
    from arrecon.loadtest.generator import MessConfig, write

    stream = tmp_path / "input.jsonl"
    write(stream, tmp_path / "truth.jsonl", MessConfig(), seed=4, n_events=3000)
    outputs = {
        lines: replay(
            stream, tmp_path / f"b{lines}", progress=False, batch_lines=lines
        ).read_bytes()
        for lines in (7, 500, 5000)
    }
    assert outputs[7] == outputs[500] == outputs[5000]
    assert outputs[500].count(b'"applied"') > 100


def test_render_sink_writes_the_lines_ordered_records_gives() -> None:
    """Rendered as they arrive, outcomes still come out in input order, ties by arrival."""
    at = datetime(2026, 3, 2, tzinfo=UTC)
    rng = random.Random(5)
    items = [
        Tagged(rng.randint(-1, 4), rng.randint(0, 2), rng.randint(-1, 1), outcome, at)
        for outcome in (Duplicate(f"id{n}", at, f"p{n}", f"e{n}") for n in range(200))
    ]
    sink = RenderSink()
    for start in range(0, len(items), 37):
        sink.build("sink", 0, 1).write_batch(items[start : start + 37])
    rendered = list(sink.lines())
    assert rendered == [line + b"\n" for line in ordered_records(items)]
    assert len({(t.position, t.sub, t.seq) for t in items}) < len(items)  # ties were exercised
    assert sink.rows == []
