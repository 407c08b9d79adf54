"""The scorer on small hand-made truth and outcome files with known answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from arrecon.loadtest.score import Report, Thresholds, score, score_records
from arrecon.loadtest.truth import (
    Allocation,
    ChargebackTruth,
    DuplicateTruth,
    FeeAnomalyTruth,
    InvoiceTruth,
    PaymentTruth,
    ShortPayTruth,
)


def payment(pid: str, category: str, *allocs: tuple[str, int], **extra: Any) -> dict[str, Any]:
    amount = sum(a for _, a in allocs) + extra.get("overpaid_minor", 0)
    amount += extra.get("unapplied_minor", 0)
    return PaymentTruth(
        payment_id=pid,
        source="bank",
        format="camt053",
        customer_id="CUST-1",
        currency="EUR",
        amount_minor=amount,
        category=category,
        placeable=extra.pop("placeable", True),
        received_at="2026-03-02T10:00:00Z",
        allocations=tuple(Allocation(n, a) for n, a in allocs),
        **extra,
    ).to_record()


def invoice(
    number: str, amount: int, open_minor: int, *categories: str, **extra: Any
) -> dict[str, Any]:
    return InvoiceTruth(
        number, "CUST-1", "EUR", amount, open_minor, "direct", categories, **extra
    ).to_record()


TRUTH = [
    payment("P1", "clean_ref", ("INV-1", 1000)),
    payment("P2", "multi_invoice", ("INV-2", 500), ("INV-3", 700)),
    payment("P3", "typo", ("INV-4", 900)),
    payment(
        "P4",
        "remittance_deduction",
        ("INV-5", 950),
        short_pays=(ShortPayTruth("INV-5", 50, "deduction:DMG"),),
    ),
    payment("P5", "unknown_payer", placeable=False, unapplied_minor=300),
    payment("ch_6", "chargeback_lost", ("INV-6", 400), aliases=("pi_6",)),
    payment("ch_7", "duplicate_delivery", ("INV-7", 100)),
    ChargebackTruth("ch_6", "dp_6", "INV-6", 400, "EUR", "lost").to_record(),
    DuplicateTruth("ch_7", "evt_7").to_record(),
    FeeAnomalyTruth(
        "stripe", "2026-03-16T00:00:00Z", "2026-03-23T00:00:00Z", 290, 330, ("po_1", "po_2")
    ).to_record(),
    invoice("INV-1", 1000, 0, "clean_ref"),
    invoice("INV-2", 500, 0, "multi_invoice"),
    invoice("INV-3", 700, 0, "multi_invoice"),
    invoice("INV-4", 900, 0, "typo"),
    invoice("INV-5", 1000, 0, "remittance_deduction"),
    invoice("INV-6", 400, 400, "chargeback_lost", aliases=("#1006",)),
    invoice("INV-7", 100, 0, "duplicate_delivery"),
]


def applied(pid: str, number: str, amount: int) -> dict[str, Any]:
    return {"type": "applied", "payment_id": pid, "invoice_number": number, "amount_minor": amount}


def status(number: str, open_minor: int) -> dict[str, Any]:
    return {"type": "invoice_status", "invoice_number": number, "open_minor": open_minor}


OUTCOMES = [
    applied("P1", "INV-1", 1000),  # right
    applied("P2", "INV-2", 500),  # only half of a batch: not auto-applied, not wrong
    applied("P3", "INV-8", 900),  # wrong invoice
    applied("P4", "INV-5", 950),
    {
        "type": "short_paid",
        "payment_id": "P4",
        "invoice_number": "INV-5",
        "reason_code": "unexplained",
    },
    {
        "type": "short_paid",
        "payment_id": "P1",
        "invoice_number": "INV-1",
        "reason_code": "processor_fee",
    },
    {"type": "unapplied", "payment_id": "P5", "amount_minor": 300},
    applied("pi_6", "#1006", 400),  # both ids via aliases
    {"type": "chargeback", "payment_id": "ch_6", "invoice_number": "INV-6", "status": "opened"},
    {"type": "reversed", "payment_id": "ch_6", "invoice_number": "INV-6", "amount_minor": 400},
    {"type": "chargeback", "payment_id": "ch_6", "invoice_number": "INV-6", "status": "won"},
    applied("ch_7", "INV-7", 100),
    {"type": "duplicate", "payment_id": "ch_7"},
    {"type": "duplicate", "payment_id": "P1"},  # a false alarm
    {"type": "fee_anomaly", "processor": "stripe", "scope": "po_2", "at": "2026-03-20T06:00:00Z"},
    {
        "type": "fee_anomaly",
        "processor": "stripe",
        "scope": "2026-W20",
        "at": "2026-05-20T06:00:00Z",
    },
    status("INV-1", 500),
    status("INV-1", 0),  # last line wins
    status("INV-2", 0),
    status("INV-3", 700),
    status("INV-4", 900),
    status("INV-5", 0),
    status("#1006", 400),
]


@pytest.fixture
def report() -> Report:
    return score_records(TRUTH, OUTCOMES)


def test_auto_apply_and_misapplication(report: Report) -> None:
    # Placeable: P1 P2 P3 P4 ch_6 ch_7 = 6; right: P1, P4, ch_6 (peak), ch_7.
    assert (report.auto_apply.hits, report.auto_apply.total) == (4, 6)
    # Wrong invoice: P3 only, out of 7 payments.
    assert (report.misapplication.hits, report.misapplication.total) == (1, 7)


def test_flags(report: Report) -> None:
    assert (report.short_pay.true_positive, report.short_pay.predicted) == (1, 1)
    assert report.short_pay.recall.value == 1.0
    assert (report.short_pay_reason.hits, report.short_pay_reason.total) == (0, 1)
    assert report.chargeback.recall.value == 1.0
    assert (report.chargeback_outcome.hits, report.chargeback_outcome.total) == (0, 1)
    assert report.duplicate.recall.value == 1.0
    assert report.duplicate.precision.value == 0.5
    assert report.fee_anomaly.recall.value == 1.0
    assert report.fee_anomaly.precision.value == 0.5


def test_open_amounts(report: Report) -> None:
    # Wrong: INV-3 (700, truth 0), INV-4 (900, truth 0); INV-7 has no status.
    assert (report.open_amount.hits, report.open_amount.total) == (4, 7)
    assert report.open_missing == 1


def test_breakdown_by_category(report: Report) -> None:
    by_name = {item.category: item for item in report.by_category}
    assert by_name["typo"].misapplied == 1
    assert by_name["typo"].auto_applied == 0
    assert by_name["multi_invoice"].placeable == 1
    assert by_name["multi_invoice"].auto_applied == 0
    assert (by_name["multi_invoice"].invoices, by_name["multi_invoice"].open_correct) == (2, 1)
    assert by_name["unknown_payer"].placeable == 0
    assert by_name["unknown_payer"].misapplied == 0
    text = report.render()
    assert "typo" in text
    assert "auto-apply rate" in text


def test_applying_an_unknown_payer_is_a_misapplication() -> None:
    report = score_records(TRUTH, [applied("P5", "INV-1", 300)])
    assert report.misapplication.hits == 1


@pytest.mark.parametrize(
    ("thresholds", "failed"),
    [
        (Thresholds(), 0),
        (Thresholds(min_auto_apply=0.6), 0),
        (Thresholds(min_auto_apply=0.7), 1),
        (Thresholds(max_misapplication=0.2), 0),
        (Thresholds(max_misapplication=0.1), 1),
        (Thresholds(min_duplicate_recall=1.0, min_open_accuracy=0.9), 1),
        (Thresholds(min_short_pay_recall=1.0, min_chargeback_recall=1.0), 0),
    ],
)
def test_thresholds(report: Report, thresholds: Thresholds, failed: int) -> None:
    assert len(report.failures(thresholds)) == failed


def test_score_reads_files(tmp_path: Path) -> None:
    truth_path, outcomes_path = tmp_path / "truth.jsonl", tmp_path / "outcomes.jsonl"
    truth_path.write_bytes(b"\n".join(orjson.dumps(r) for r in TRUTH) + b"\n")
    outcomes_path.write_bytes(b"\n".join(orjson.dumps(r) for r in OUTCOMES) + b"\n\n")
    assert score(outcomes_path, truth_path) == score_records(TRUTH, OUTCOMES)
