"""ERP decoder: events, per-item rejections, and agreement with erp.schema.json."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrecon.connectors.envelope import Decoded, RawEnvelope
from arrecon.connectors.erp import decode
from arrecon.state.events import AdjustmentKind, CustomerUpserted, InvoiceAdjusted, InvoiceIssued
from arrecon.state.money import CURRENCY_EXPONENTS, Money

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "connectors" / "schema" / "erp.schema.json"
RECEIVED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

CUSTOMER = {
    "customer_id": "C-1001", "name": "Acme Wholesale GmbH",
    "aliases": ["ACME WHOLESALE", "Acme GmbH"],
    "external_ids": ["cus_6lsBvm5rJ0zyHc"], "bank_accounts": ["DE89370400440532013000"],
    "credit_limit": "50000.00", "currency": "USD", "terms_days": 30, "segment": "enterprise",
    "deduction_allowance_bps": 200, "updated_at": "2026-03-01T00:00:00Z",
}  # fmt: skip
INVOICE = {
    "invoice_number": "INV-2026-0042", "customer_id": "C-1001", "po_number": "PO-7781",
    "currency": "USD", "amount": "1234.56", "issued_at": "2026-03-01T09:00:00+01:00",
    "due_at": "2026-03-31T00:00:00Z", "channel": "direct", "external_ids": ["SO-5531"],
}  # fmt: skip
MEMO = {
    "memo_number": "CM-17", "invoice_number": "INV-2026-0042", "customer_id": "C-1001",
    "currency": "USD", "amount": "12.00", "kind": "return", "reason": "damaged",
    "issued_at": "2026-03-05T00:00:00Z",
}  # fmt: skip


def run(kind: str, body: Any) -> Decoded:
    return decode(RawEnvelope("erp", kind, RECEIVED, body))


def test_customer() -> None:
    (customer,) = run("customer", CUSTOMER).events
    assert isinstance(customer, CustomerUpserted)
    assert customer.customer_id == "C-1001"
    assert customer.credit_limit == Money(5_000_000, "USD")
    assert customer.aliases == ("ACME WHOLESALE", "Acme GmbH")
    assert (customer.terms_days, customer.segment, customer.allowance_bps) == (
        30,
        "enterprise",
        200,
    )
    assert customer.occurred_at == datetime(2026, 3, 1, tzinfo=UTC)


def test_invoice() -> None:
    (invoice,) = run("invoice", INVOICE).events
    assert isinstance(invoice, InvoiceIssued)
    assert invoice.amount == Money(123456, "USD")
    assert invoice.issued_at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert invoice.hints.customer_id == "C-1001"
    assert (invoice.po_number, invoice.external_ids) == ("PO-7781", ("SO-5531",))


@pytest.mark.parametrize("kind", ["void", "write_off"])
def test_whole_amount_memos(kind: str) -> None:
    memo = {k: v for k, v in MEMO.items() if k != "amount"} | {"kind": kind}
    (adjusted,) = run("credit_memo", memo).events
    assert isinstance(adjusted, InvoiceAdjusted)
    assert (adjusted.kind, adjusted.amount) == (AdjustmentKind(kind), None)


def test_list_body_rejects_items_one_by_one() -> None:
    bad = INVOICE | {"invoice_number": "INV-BAD", "currency": "JPY", "amount": "12.5"}
    decoded = run("invoice", [INVOICE, bad, INVOICE | {"invoice_number": "INV-2"}])
    assert [e.invoice_number for e in decoded.events] == ["INV-2026-0042", "INV-2"]
    (rejection,) = decoded.rejections
    assert rejection.reason == "erp.too_many_decimals:[1].amount"
    assert rejection.ref == "[1]INV-BAD"


@pytest.mark.parametrize(
    ("kind", "body", "reason"),
    [
        ("invoice", INVOICE | {"amount": "-5.00"}, "negative_amount"),
        ("invoice", INVOICE | {"amount": "1,50"}, "erp.bad_amount:amount"),
        ("invoice", INVOICE | {"amount": 12.345}, "erp.too_many_decimals:amount"),
        ("invoice", INVOICE | {"currency": "usd"}, "unknown_currency:usd"),
        ("invoice", INVOICE | {"due_at": "2026-03-31"}, "erp.bad_timestamp:due_at"),
        ("invoice", INVOICE | {"invoice_number": " "}, "erp.invalid_value:invoice_number"),
        (
            "invoice",
            {k: v for k, v in INVOICE.items() if k != "customer_id"},
            "erp.missing_field:customer_id",
        ),
        ("customer", CUSTOMER | {"terms_days": 4000}, "erp.invalid_value:terms_days"),
        ("customer", CUSTOMER | {"aliases": ["ok", 5]}, "erp.wrong_type:aliases[1]"),
        ("credit_memo", MEMO | {"kind": "void"}, "erp.invalid_value:amount"),
        ("credit_memo", MEMO | {"kind": "gift"}, "erp.invalid_value:kind"),
        ("invoice", [], "erp.empty_body"),
        ("invoice", b"[{", "malformed_json"),
        ("payment", INVOICE, "unknown_kind"),
    ],
)
def test_rejections(kind: str, body: Any, reason: str) -> None:
    decoded = run(kind, body)
    assert decoded.events == ()
    assert [r.reason for r in decoded.rejections] == [reason]


def test_integral_numbers_are_accepted() -> None:
    (invoice,) = run("invoice", INVOICE | {"amount": 1234.5}).events
    assert invoice.amount == Money(123450, "USD")
    (yen,) = run("invoice", INVOICE | {"amount": 1500, "currency": "JPY"}).events
    assert yen.amount == Money(1500, "JPY")


# --- schema agreement ---------------------------------------------------------------


def schema_for(kind: str) -> dict[str, Any]:
    schema = json.loads(SCHEMA_PATH.read_text())
    return {**schema, "$ref": f"#/$defs/{kind}_body"}


def test_schema_is_valid_and_lists_exactly_the_known_currencies() -> None:
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["$defs"]["currency"]["enum"]) == set(CURRENCY_EXPONENTS)
    assert set(schema["$defs"]["credit_memo"]["properties"]["kind"]["enum"]) == {
        kind.value for kind in AdjustmentKind
    }


def variants() -> list[tuple[str, Any]]:
    """Sample payloads, valid and broken in the ways the schema can express."""
    out: list[tuple[str, Any]] = []
    for kind, base in (("customer", CUSTOMER), ("invoice", INVOICE), ("credit_memo", MEMO)):
        out.append((kind, base))
        out.append((kind, [base, base]))
        out.append((kind, []))
        for key in base:
            out.append((kind, {k: v for k, v in base.items() if k != key}))
            for value in (None, 7, "", " ", [], {}, True, "-1", "1e3", "2026-13-99", "USD", 1.5):
                out.append((kind, base | {key: value}))
    for kind in ("void", "write_off"):
        out.append(
            ("credit_memo", {k: v for k, v in MEMO.items() if k != "amount"} | {"kind": kind})
        )
    return out


@pytest.mark.parametrize(("kind", "body"), variants())
def test_schema_and_hand_checks_agree(kind: str, body: Any) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema_for(kind))
    schema_ok = validator.is_valid(body)
    decoded = run(kind, copy.deepcopy(body))
    assert (decoded.rejections == ()) == schema_ok, (decoded.rejections, schema_ok)


@settings(max_examples=300, deadline=None)
@given(
    amount=st.decimals(
        min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False
    )
)
def test_amount_text_round_trips(amount: Any) -> None:
    (invoice,) = run("invoice", INVOICE | {"amount": f"{amount:.2f}"}).events
    assert invoice.amount.amount_minor == int(amount * 100)
