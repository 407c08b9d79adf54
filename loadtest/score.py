"""Score an engine's `outcomes.jsonl` against the generator's `truth.jsonl`.

Why these measures: a reconciliation engine is useful when it applies most
cash on its own (auto-apply rate) and almost never to the wrong invoice
(misapplication rate, the costly error); when it flags what needs a human
(short-pays, chargebacks, duplicates, fee drift) with good recall and
precision; and when the aging it reports is right (final open amount per
invoice). Every figure is also broken down by mess category.

Conventions:
- An engine allocation per (payment, invoice) is the peak of applied minus
  reversed amounts over the stream, so a chargeback that reverses and a won
  dispute that re-applies still count as the original application.
- Ids are compared after mapping the truth's aliases (pi_ ids, order ids,
  servicer references) to canonical ids.
- `short_paid` outcomes coded as processor or marketplace fees are expected
  gaps, not short-pays, and are left out of short-pay precision.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from arrecon.loadtest.truth import (
    ChargebackTruth,
    DuplicateTruth,
    FeeAnomalyTruth,
    InvoiceTruth,
    PaymentTruth,
    parse_truth,
)

__all__ = ["CategoryScore", "Detection", "Rate", "Report", "Thresholds", "score", "score_records"]

FEE_REASON_CODES = frozenset({"processor_fee", "marketplace_fee"})
# A fee anomaly raised this long after the creep period still counts: the
# monitor needs the period's payouts before it can see the drift.
FEE_ANOMALY_SLACK = timedelta(days=10)


@dataclass(frozen=True, slots=True)
class Rate:
    hits: int
    total: int

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None

    def text(self) -> str:
        value = self.value
        shown = "   n/a" if value is None else f"{value * 100:6.2f}%"
        return f"{shown} ({self.hits}/{self.total})"


@dataclass(frozen=True, slots=True)
class Detection:
    """Precision and recall of one kind of flag."""

    true_positive: int
    predicted: int
    expected: int
    # When several flags may confirm one expected item (fee anomalies per
    # payout vs. one creep period), the count of flags that matched something.
    predicted_correct: int | None = None

    @property
    def precision(self) -> Rate:
        hits = self.true_positive if self.predicted_correct is None else self.predicted_correct
        return Rate(hits, self.predicted)

    @property
    def recall(self) -> Rate:
        return Rate(self.true_positive, self.expected)


@dataclass(frozen=True, slots=True)
class CategoryScore:
    category: str
    payments: int
    placeable: int
    auto_applied: int
    misapplied: int
    invoices: int = 0
    open_correct: int = 0


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Minimums (maximum for misapplication); None means not checked."""

    min_auto_apply: float | None = None
    max_misapplication: float | None = None
    min_open_accuracy: float | None = None
    min_short_pay_recall: float | None = None
    min_short_pay_precision: float | None = None
    min_chargeback_recall: float | None = None
    min_duplicate_recall: float | None = None
    min_fee_anomaly_recall: float | None = None


@dataclass(frozen=True, slots=True)
class Report:
    payments: int
    auto_apply: Rate
    misapplication: Rate
    short_pay: Detection
    short_pay_reason: Rate
    chargeback: Detection
    chargeback_outcome: Rate
    duplicate: Detection
    fee_anomaly: Detection
    open_amount: Rate
    open_missing: int
    by_category: tuple[CategoryScore, ...] = ()

    def failures(self, thresholds: Thresholds) -> list[str]:
        """Human-readable reasons this report misses `thresholds` (empty: pass)."""
        checks: list[tuple[str, Rate, float | None, bool]] = [
            ("auto-apply rate", self.auto_apply, thresholds.min_auto_apply, True),
            ("misapplication rate", self.misapplication, thresholds.max_misapplication, False),
            ("open-amount accuracy", self.open_amount, thresholds.min_open_accuracy, True),
            ("short-pay recall", self.short_pay.recall, thresholds.min_short_pay_recall, True),
            (
                "short-pay precision",
                self.short_pay.precision,
                thresholds.min_short_pay_precision,
                True,
            ),
            ("chargeback recall", self.chargeback.recall, thresholds.min_chargeback_recall, True),
            ("duplicate recall", self.duplicate.recall, thresholds.min_duplicate_recall, True),
            (
                "fee-anomaly recall",
                self.fee_anomaly.recall,
                thresholds.min_fee_anomaly_recall,
                True,
            ),
        ]
        failed = []
        for name, rate, limit, at_least in checks:
            value = rate.value
            if limit is None or value is None:
                continue
            if (at_least and value < limit) or (not at_least and value > limit):
                relation = "below" if at_least else "above"
                failed.append(f"{name} {value:.4f} {relation} {limit:.4f}")
        return failed

    def render(self) -> str:
        """A plain-text table for terminals and CI logs."""
        rows = [
            ("payments scored", str(self.payments)),
            ("auto-apply rate", self.auto_apply.text()),
            ("misapplication rate", self.misapplication.text()),
            ("open-amount accuracy", f"{self.open_amount.text()} missing {self.open_missing}"),
        ]
        for name, detection in (
            ("short-pay", self.short_pay),
            ("chargeback", self.chargeback),
            ("duplicate", self.duplicate),
            ("fee anomaly", self.fee_anomaly),
        ):
            rows.append((f"{name} recall", detection.recall.text()))
            rows.append((f"{name} precision", detection.precision.text()))
        rows.append(("short-pay reason agreement", self.short_pay_reason.text()))
        rows.append(("chargeback outcome agreement", self.chargeback_outcome.text()))
        lines = [f"{name:<30} {value}" for name, value in rows]
        lines.append("")
        header = f"{'category':<24}{'payments':>9}{'auto-applied':>22}{'misapplied':>20}"
        lines.append(header + f"{'open correct':>22}")
        for item in self.by_category:
            applied = Rate(item.auto_applied, item.placeable).text()
            misapplied = Rate(item.misapplied, item.payments).text()
            opened = Rate(item.open_correct, item.invoices).text()
            lines.append(
                f"{item.category:<24}{item.payments:>9}{applied:>22}{misapplied:>20}{opened:>22}"
            )
        return "\n".join(lines)


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                value = orjson.loads(raw)
                if isinstance(value, dict):
                    yield value


@dataclass(slots=True)
class _Truth:
    payments: list[PaymentTruth] = field(default_factory=list)
    invoices: list[InvoiceTruth] = field(default_factory=list)
    chargebacks: dict[str, str] = field(default_factory=dict)
    duplicates: set[str] = field(default_factory=set)
    fee_anomalies: list[FeeAnomalyTruth] = field(default_factory=list)
    payment_alias: dict[str, str] = field(default_factory=dict)
    invoice_alias: dict[str, str] = field(default_factory=dict)

    def add(self, raw: dict[str, Any]) -> None:
        record = parse_truth(raw)
        if isinstance(record, PaymentTruth):
            self.payments.append(record)
            for alias in record.aliases:
                self.payment_alias[alias] = record.payment_id
        elif isinstance(record, InvoiceTruth):
            self.invoices.append(record)
            for alias in record.aliases:
                self.invoice_alias[alias] = record.invoice_number
        elif isinstance(record, ChargebackTruth):
            self.chargebacks[record.payment_id] = record.outcome
        elif isinstance(record, DuplicateTruth):
            self.duplicates.add(record.payment_id)
        elif isinstance(record, FeeAnomalyTruth):
            self.fee_anomalies.append(record)


@dataclass(slots=True)
class _Engine:
    """What the engine said, folded per payment and invoice."""

    truth: _Truth
    net: dict[tuple[str, str], int] = field(default_factory=dict)
    peak: dict[tuple[str, str], int] = field(default_factory=dict)
    short_paid: dict[tuple[str, str], str] = field(default_factory=dict)
    duplicates: set[str] = field(default_factory=set)
    chargebacks: dict[str, str] = field(default_factory=dict)
    fee_anomalies: list[dict[str, Any]] = field(default_factory=list)
    open_by_invoice: dict[str, int] = field(default_factory=dict)

    def _payment(self, raw: dict[str, Any]) -> str:
        value = str(raw.get("payment_id", ""))
        return self.truth.payment_alias.get(value, value)

    def _invoice(self, raw: dict[str, Any]) -> str:
        value = str(raw.get("invoice_number", ""))
        return self.truth.invoice_alias.get(value, value)

    def add(self, raw: dict[str, Any]) -> None:
        kind = raw.get("type")
        if kind in ("applied", "reversed"):
            key = (self._payment(raw), self._invoice(raw))
            sign = 1 if kind == "applied" else -1
            self.net[key] = self.net.get(key, 0) + sign * int(raw.get("amount_minor", 0))
            self.peak[key] = max(self.peak.get(key, 0), self.net[key])
        elif kind == "short_paid" and raw.get("reason_code") not in FEE_REASON_CODES:
            self.short_paid[(self._payment(raw), self._invoice(raw))] = str(raw.get("reason_code"))
        elif kind == "duplicate":
            self.duplicates.add(self._payment(raw))
        elif kind == "chargeback":
            status = str(raw.get("status", ""))
            payment = self._payment(raw)
            if status != "opened" or payment not in self.chargebacks:
                self.chargebacks[payment] = status
        elif kind == "fee_anomaly":
            self.fee_anomalies.append(raw)
        elif kind == "invoice_status":
            self.open_by_invoice[self._invoice(raw)] = int(raw.get("open_minor", 0))

    def allocations(self) -> dict[str, dict[str, int]]:
        by_payment: dict[str, dict[str, int]] = {}
        for (payment, invoice), amount in self.peak.items():
            if amount > 0:
                by_payment.setdefault(payment, {})[invoice] = amount
        return by_payment


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _fee_match(outcome: dict[str, Any], truth: FeeAnomalyTruth) -> bool:
    if outcome.get("processor") != truth.processor:
        return False
    scope = str(outcome.get("scope", ""))
    if scope in truth.payout_ids:
        return True
    at = _parse_time(outcome.get("at"))
    start, end = _parse_time(truth.start), _parse_time(truth.end)
    if at is None or start is None or end is None:
        return False
    return start <= at <= end + FEE_ANOMALY_SLACK


def _detection(expected: Iterable[Any], predicted: Iterable[Any]) -> Detection:
    expected_set, predicted_set = set(expected), set(predicted)
    return Detection(len(expected_set & predicted_set), len(predicted_set), len(expected_set))


@dataclass(slots=True)
class _Tally:
    payments: int = 0
    placeable: int = 0
    auto_applied: int = 0
    misapplied: int = 0
    invoices: int = 0
    open_correct: int = 0


def _score_payments(truth: _Truth, engine: _Engine, tallies: dict[str, _Tally]) -> None:
    applied = engine.allocations()
    for payment in truth.payments:
        tally = tallies.setdefault(payment.category, _Tally())
        got = applied.get(payment.payment_id, {})
        wanted = {item.invoice_number: item.amount_minor for item in payment.allocations}
        tally.payments += 1
        if payment.placeable and wanted:
            tally.placeable += 1
            tally.auto_applied += got == wanted
        tally.misapplied += any(invoice not in wanted for invoice in got)


def _score_invoices(truth: _Truth, engine: _Engine, tallies: dict[str, _Tally]) -> Rate:
    correct = 0
    for invoice in truth.invoices:
        right = engine.open_by_invoice.get(invoice.invoice_number) == invoice.open_minor
        correct += right
        for category in invoice.categories:
            tally = tallies.setdefault(category, _Tally())
            tally.invoices += 1
            tally.open_correct += right
    return Rate(correct, len(truth.invoices))


def score_records(
    truth_records: Iterable[dict[str, Any]], outcomes: Iterable[dict[str, Any]]
) -> Report:
    """Score already-parsed records (truth first: it defines the id aliases)."""
    truth = _Truth()
    for raw in truth_records:
        truth.add(raw)
    engine = _Engine(truth)
    for raw in outcomes:
        engine.add(raw)
    tallies: dict[str, _Tally] = {}
    _score_payments(truth, engine, tallies)
    open_amount = _score_invoices(truth, engine, tallies)
    expected_short = {
        (payment.payment_id, item.invoice_number): item.reason_code
        for payment in truth.payments
        for item in payment.short_pays
    }
    short_hits = expected_short.keys() & engine.short_paid.keys()
    chargeback_hits = truth.chargebacks.keys() & engine.chargebacks.keys()
    fee_hits = sum(any(_fee_match(o, t) for o in engine.fee_anomalies) for t in truth.fee_anomalies)
    fee_right = sum(
        any(_fee_match(o, t) for t in truth.fee_anomalies) for o in engine.fee_anomalies
    )
    return Report(
        payments=len(truth.payments),
        auto_apply=Rate(
            sum(t.auto_applied for t in tallies.values()),
            sum(t.placeable for t in tallies.values()),
        ),
        misapplication=Rate(sum(t.misapplied for t in tallies.values()), len(truth.payments)),
        short_pay=_detection(expected_short, engine.short_paid),
        short_pay_reason=Rate(
            sum(expected_short[key] == engine.short_paid[key] for key in short_hits),
            len(short_hits),
        ),
        chargeback=_detection(truth.chargebacks, engine.chargebacks),
        chargeback_outcome=Rate(
            sum(truth.chargebacks[key] == engine.chargebacks[key] for key in chargeback_hits),
            len(chargeback_hits),
        ),
        duplicate=_detection(truth.duplicates, engine.duplicates),
        fee_anomaly=Detection(
            fee_hits, len(engine.fee_anomalies), len(truth.fee_anomalies), fee_right
        ),
        open_amount=open_amount,
        open_missing=sum(i.invoice_number not in engine.open_by_invoice for i in truth.invoices),
        by_category=tuple(
            CategoryScore(
                name,
                t.payments,
                t.placeable,
                t.auto_applied,
                t.misapplied,
                t.invoices,
                t.open_correct,
            )
            for name, t in sorted(tallies.items())
        ),
    )


def score(outcomes_path: Path, truth_path: Path) -> Report:
    """Score `outcomes.jsonl` (engine) against `truth.jsonl` (generator)."""
    return score_records(_read_jsonl(truth_path), _read_jsonl(outcomes_path))
