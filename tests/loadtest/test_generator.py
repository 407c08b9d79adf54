"""The load generator: determinism, contract shape, truth consistency, decodability."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime
from functools import cache
from typing import Any

import mt940
import orjson
import pytest
from bai2 import bai2
from defusedxml import ElementTree
from hypothesis import given, settings
from hypothesis import strategies as st

from arrecon.connectors.envelope import RawEnvelope
from arrecon.connectors.registry import decode_envelope
from arrecon.loadtest.formats import AMAZON_COLUMNS, CAMT053_NS
from arrecon.loadtest.generator import BANK_CATEGORIES, CARD_CATEGORIES, MessConfig, generate
from arrecon.loadtest.truth import (
    ChargebackTruth,
    DuplicateTruth,
    FeeAnomalyTruth,
    InvoiceTruth,
    PaymentTruth,
    RefundTruth,
    TruthRecord,
    parse_truth,
)
from arrecon.state.events import PaymentReceived

SOURCES_KINDS = {
    "stripe": {None, "balance_transactions"},
    "shopify": {"orders/create", "order_transactions/create", "refunds/create"}
    | {"disputes/create", "disputes/update"},
    "bank": {"camt053", "mt940", "bai2"},
    "erp": {"customer", "invoice", "credit_memo"},
    "amazon": {"settlement_v2"},
}


@cache
def stream(seed: int, n_events: int) -> tuple[tuple[str, tuple[TruthRecord, ...]], ...]:
    return tuple((line, tuple(truth)) for line, truth in generate(MessConfig(), seed, n_events))


def truth_of(seed: int, n_events: int) -> list[TruthRecord]:
    return [record for _, truth in stream(seed, n_events) for record in truth]


def parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_same_seed_gives_identical_bytes() -> None:
    first = list(generate(MessConfig(), 7, 400))
    second = list(generate(MessConfig(), 7, 400))
    assert [line for line, _ in first] == [line for line, _ in second]
    render = [[orjson.dumps(r.to_record()) for r in truth] for _, truth in first]
    assert render == [[orjson.dumps(r.to_record()) for r in truth] for _, truth in second]


def test_other_seed_gives_other_stream() -> None:
    assert [line for line, _ in stream(1, 300)] != [line for line, _ in stream(2, 300)]


@pytest.mark.parametrize("n_events", [1, 50, 200, 1000])
def test_at_least_the_requested_number_of_lines(n_events: int) -> None:
    lines = list(generate(MessConfig(), 3, n_events))
    assert n_events <= len(lines) <= n_events * 1.2 + 40


def check_body(source: str, kind: str | None, body: Any) -> None:
    if source == "bank":
        assert isinstance(body, str)
        if kind == "camt053":
            root = ElementTree.fromstring(body.encode())
            assert root.tag == f"{{{CAMT053_NS}}}Document"
            assert root.findall(f".//{{{CAMT053_NS}}}EndToEndId")
        elif kind == "mt940":
            transactions = mt940.parse(body)
            assert len(transactions) >= 1
            assert all(t.data["amount"].amount > 0 for t in transactions)
        else:
            parsed = bai2.parse_from_string(body, check_integrity=True)
            assert parsed.children[0].children[0].children
    elif source == "amazon":
        header = body.split("\n", 1)[0].split("\t")
        assert tuple(header) == AMAZON_COLUMNS
    elif source == "stripe" and kind is None:
        assert body["object"] == "event"
        assert body["id"].startswith("evt_")
        assert body["data"]["object"]["object"] in {"charge", "dispute"}
    elif source == "stripe":
        assert body["object"] == "list"
        assert body["data"][-1]["type"] == "payout"
    else:
        assert isinstance(body, dict)


def test_every_line_has_the_replay_contract_shape() -> None:
    previous = None
    for line, _ in stream(11, 1500):
        envelope = orjson.loads(line)
        assert set(envelope) <= {"source", "kind", "received_at", "headers", "body"}
        source, kind = envelope["source"], envelope.get("kind")
        assert kind in SOURCES_KINDS[source]
        received = parse_time(envelope["received_at"])
        assert previous is None or received >= previous, "lines must be in arrival order"
        previous = received
        check_body(source, kind, envelope["body"])


def test_money_is_conserved_and_ids_are_unique() -> None:
    truth = truth_of(11, 1500)
    payments = [r for r in truth if isinstance(r, PaymentTruth)]
    invoices = [r for r in truth if isinstance(r, InvoiceTruth)]
    assert payments
    assert invoices
    assert all(p.conserved() for p in payments)
    assert len({p.payment_id for p in payments}) == len(payments)
    assert len({i.invoice_number for i in invoices}) == len(invoices)
    for invoice in invoices:
        assert 0 <= invoice.open_minor <= invoice.amount_minor, invoice
    for payment in payments:
        assert all(item.amount_minor > 0 for item in payment.allocations)
        assert payment.placeable == (payment.category != "unknown_payer")


def test_payments_allocate_to_invoices_that_exist() -> None:
    truth = truth_of(11, 1500)
    numbers = {r.invoice_number for r in truth if isinstance(r, InvoiceTruth)}
    for payment in (r for r in truth if isinstance(r, PaymentTruth)):
        assert {item.invoice_number for item in payment.allocations} <= numbers


def test_final_open_amount_follows_from_the_truth() -> None:
    """Invoices touched only by payments: open = amount - applied - accepted deductions."""
    truth = truth_of(5, 3000)
    applied: Counter[str] = Counter()
    deducted: Counter[str] = Counter()
    special: set[str] = set()
    for record in truth:
        if isinstance(record, PaymentTruth):
            for item in record.allocations:
                applied[item.invoice_number] += item.amount_minor
            for short in record.short_pays:
                if short.reason_code.startswith("deduction:"):
                    deducted[short.invoice_number] += short.shortfall_minor
        elif isinstance(record, (ChargebackTruth, RefundTruth)):
            special.add(record.invoice_number)
    checked = 0
    for invoice in (r for r in truth if isinstance(r, InvoiceTruth)):
        if invoice.invoice_number in special or any(
            c.startswith("memo_") for c in invoice.categories
        ):
            continue
        number = invoice.invoice_number
        assert invoice.open_minor == invoice.amount_minor - applied[number] - deducted[number]
        checked += 1
    assert checked > 500


def test_card_invoices_are_final_only_after_their_refund_or_dispute() -> None:
    """A lost chargeback leaves the whole charge open; a refund leaves the refund
    open unless a return memo followed (the truth used to be written at the sale)."""
    lines = stream(5, 3000)
    invoices = {
        r.invoice_number: r for _, records in lines for r in records if isinstance(r, InvoiceTruth)
    }
    lost = [
        r
        for _, records in lines
        for r in records
        if isinstance(r, ChargebackTruth) and r.outcome == "lost"
    ]
    refunds = [r for _, records in lines for r in records if isinstance(r, RefundTruth)]
    assert lost
    assert refunds
    for chargeback in lost:
        invoice = invoices[chargeback.invoice_number]
        if invoice.categories == ("chargeback_lost",):
            assert invoice.open_minor == chargeback.amount_minor
    for refund in refunds:
        invoice = invoices[refund.invoice_number]
        if invoice.categories == ("refund",):
            assert invoice.open_minor in (0, refund.amount_minor)
    reopened = sum(invoices[r.invoice_number].open_minor > 0 for r in refunds)
    assert 0 < reopened < len(refunds)  # about half get a return memo


def test_default_mess_covers_every_category_and_flag() -> None:
    truth = truth_of(5, 3000)
    categories = Counter(r.category for r in truth if isinstance(r, PaymentTruth))
    assert set(BANK_CATEGORIES) | set(CARD_CATEGORIES) <= set(categories)
    assert "marketplace_settlement" in categories
    outcomes = Counter(r.outcome for r in truth if isinstance(r, ChargebackTruth))
    assert outcomes["won"]
    assert outcomes["lost"]
    assert any(isinstance(r, DuplicateTruth) for r in truth)
    anomalies = [r for r in truth if isinstance(r, FeeAnomalyTruth)]
    assert len(anomalies) == 1
    assert anomalies[0].observed_bps - anomalies[0].expected_bps == 40
    assert anomalies[0].payout_ids
    currencies = {r.currency for r in truth if isinstance(r, PaymentTruth)}
    assert currencies == {"USD", "EUR", "GBP", "JPY"}


def test_fee_creep_shows_in_balance_transactions_of_the_creep_payouts() -> None:
    truth = truth_of(5, 3000)
    creep = next(r for r in truth if isinstance(r, FeeAnomalyTruth))
    rates: dict[bool, list[float]] = {True: [], False: []}
    for line, _ in stream(5, 3000):
        envelope = orjson.loads(line)
        if envelope.get("kind") != "balance_transactions":
            continue
        payout_id = envelope["body"]["url"].rsplit("=", 1)[1]
        for txn in envelope["body"]["data"]:
            if txn["type"] == "charge" and txn["amount"] > 100_000 and txn["currency"] != "jpy":
                rates[payout_id in creep.payout_ids].append(txn["fee"] / txn["amount"] * 10_000)
    assert max(rates[False]) < 300 < min(rates[True]) + 30  # 290 bps (+30c) vs 330 bps


def test_truth_records_round_trip_through_json() -> None:
    for record in truth_of(11, 1500):
        assert parse_truth(orjson.loads(orjson.dumps(record.to_record()))) == record


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), n_events=st.integers(1, 300))
def test_conservation_and_determinism_for_any_seed(seed: int, n_events: int) -> None:
    first = list(itertools.islice(generate(MessConfig(), seed, n_events), 10_000))
    second = list(generate(MessConfig(), seed, n_events))
    assert [line for line, _ in first] == [line for line, _ in second]
    for _, truth in first:
        for record in truth:
            if isinstance(record, PaymentTruth):
                assert record.conserved()


def envelope_of(line: str, position: int) -> RawEnvelope:
    raw = orjson.loads(line)
    return RawEnvelope(
        source=raw["source"],
        kind=raw.get("kind") or "",
        received_at=parse_time(raw["received_at"]),
        body=raw["body"],
        headers=raw.get("headers") or {},
        position=position,
    )


def test_every_generated_line_decodes_without_rejection() -> None:
    decoded_payments: set[str] = set()
    for position, (line, _) in enumerate(stream(5, 3000), start=1):
        decoded = decode_envelope(envelope_of(line, position), counters=None)
        assert not decoded.rejections, (line[:200], decoded.rejections)
        assert decoded.events or decoded.ignored
        decoded_payments |= {e.payment_id for e in decoded.events if isinstance(e, PaymentReceived)}
    truth_payments = {r.payment_id for r in truth_of(5, 3000) if isinstance(r, PaymentTruth)}
    assert decoded_payments == truth_payments
