"""Amazon settlement report V2 (tab-separated flat file) -> canonical events.

The file's first data row carries the settlement totals (start, end, deposit
date, total-amount, currency); every other row is one amount of one
transaction: `transaction-type` (Order, Refund, other-transaction, ...),
`amount-type` (ItemPrice, ItemFees, Promotion, ItemWithheldTax, ...),
`amount-description` (Principal, Commission, ...) and a signed `amount`.

Out of one file come:

* per order id with transaction-type Order: one PaymentReceived, payment id
  `amazon:<settlement-id>:<order-id>`, gross = ItemPrice + Promotion (what the
  buyer paid), fee_minor = everything Amazon kept (ItemFees, withheld
  marketplace-facilitator tax, ...), so gross - fee is the order's share of the
  deposit. invoice_refs = (order-id, merchant-order-id), rail marketplace.
* per order id with a refund-like type: one PaymentReversed(REFUND) for the
  buyer-facing amount. Its payment id uses this settlement's id; a refund of
  an order paid in an earlier settlement must be matched by the order id in
  `hints.external_ids`.
* one PayoutSettled for the settlement: lines per order, refund and other row,
  net = total-amount. The lines must add up to total-amount, else the whole
  file is refused with `amazon.total_mismatch`: a settlement that does not
  balance must not half-apply.

Amounts may use a decimal comma (European marketplaces). Dates come as ISO
8601, "YYYY-MM-DD HH:MM:SS UTC" or "DD.MM.YYYY HH:MM:SS UTC".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from arrecon.connectors._util import Fields, dedupe, reject_on_error
from arrecon.connectors.envelope import Decoded, DecodeError, RawEnvelope, text_body
from arrecon.state.events import (
    CustomerHints,
    Event,
    PaymentReceived,
    PaymentReversed,
    PayoutLine,
    PayoutSettled,
    Rail,
    ReversalKind,
)
from arrecon.state.money import Money

__all__ = ["COLUMNS", "KIND", "decode"]

F = Fields("amazon")
KIND = "settlement_v2"
COLUMNS = (
    "settlement-id",
    "settlement-start-date",
    "settlement-end-date",
    "deposit-date",
    "total-amount",
    "currency",
    "transaction-type",
    "order-id",
    "merchant-order-id",
    "adjustment-id",
    "shipment-id",
    "marketplace-name",
    "amount-type",
    "amount-description",
    "amount",
    "fulfillment-id",
    "posted-date",
    "posted-date-time",
    "order-item-code",
    "merchant-order-item-id",
    "merchant-adjustment-item-id",
    "sku",
    "quantity-purchased",
    "promotion-id",
)
_REQUIRED = ("settlement-id", "total-amount", "currency", "transaction-type", "amount")
_GROSS_TYPES = frozenset({"ItemPrice", "Promotion"})
_ORDER_TYPES = frozenset({"Order"})
_REFUND_TYPES = {
    "Refund": "refund",
    "Chargeback Refund": "chargeback",
    "A-to-z Guarantee Refund": "a_to_z_claim",
    "GuaranteeClaim Refund": "a_to_z_claim",
}
_RESERVE_WORDS = ("reserve",)
_MAX_ROWS = 1_000_000
_DAY_FIRST = re.compile(r"(\d{2})\.(\d{2})\.(\d{4})(?:[ T](\d{2}):(\d{2}):(\d{2}))?")


# --- parsing ------------------------------------------------------------------------


def _rows(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Header-keyed rows; the first one holds the settlement totals."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DecodeError("amazon.empty_file")
    header = [name.strip().lower() for name in lines[0].lstrip("\ufeff").split("\t")]
    for name in _REQUIRED:
        if name not in header:
            raise DecodeError(f"amazon.missing_column:{name}")
    if len(lines) < 2:
        raise DecodeError("amazon.no_rows")
    if len(lines) > _MAX_ROWS:
        raise DecodeError("amazon.too_many_rows", str(len(lines)))
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) > len(header):
            raise DecodeError("amazon.too_many_cells", f"line {number}")
        row = dict(zip(header, (cell.strip() for cell in cells), strict=False))
        row["#"] = str(number)
        rows.append(row)
    return rows[0], rows


def _amount(text: str, currency: str, column: str, row: dict[str, str]) -> int:
    """Signed decimal text, "1234.56" or "1234,56" (also "1.234,56"), to minor units."""
    raw = text.replace(" ", "")
    if "," in raw:
        if "." in raw and raw.rfind(",") > raw.rfind("."):
            raw = raw.replace(".", "").replace(",", ".")
        elif "." in raw:
            raw = raw.replace(",", "")
        else:
            raw = raw.replace(",", ".")
    return F.major_value(raw, currency, f"line{row['#']}.{column}", allow_negative=True)


def _time(text: str, column: str, row: dict[str, str]) -> datetime | None:
    value = text.strip()
    if not value:
        return None
    path = f"line{row['#']}.{column}"
    match = _DAY_FIRST.fullmatch(value.removesuffix(" UTC").removesuffix(" GMT"))
    if match:
        day, month, year, hour, minute, second = match.groups()
        try:
            return datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                int(second or 0), tzinfo=UTC,
            )  # fmt: skip
        except ValueError:
            raise F.error("bad_timestamp", path, value[:40]) from None
    if value.endswith((" UTC", " GMT")):
        value = value[:-4].replace(" ", "T") + "+00:00"
    return F.parse_iso(value, path)


# --- aggregation ----------------------------------------------------------------------


@dataclass(slots=True)
class _Order:
    """Amounts of one (transaction-type, order-id) inside the settlement."""

    order_id: str
    merchant_order_id: str
    kind: str
    gross_minor: int = 0
    kept_minor: int = 0
    fee_types: dict[str, None] = field(default_factory=dict)
    adjustment_ids: dict[str, None] = field(default_factory=dict)
    posted_at: datetime | None = None

    def add(self, row: dict[str, str], amount_minor: int, posted: datetime | None) -> None:
        if row.get("amount-type", "") in _GROSS_TYPES:
            self.gross_minor += amount_minor
        else:
            self.kept_minor -= amount_minor
            label = row.get("amount-description") or row.get("amount-type") or "other"
            self.fee_types.setdefault(label[:60], None)
        if row.get("adjustment-id"):
            self.adjustment_ids.setdefault(row["adjustment-id"], None)
        if posted and (self.posted_at is None or posted < self.posted_at):
            self.posted_at = posted


@dataclass(slots=True)
class _Settlement:
    settlement_id: str
    currency: str
    total_minor: int
    deposit_at: datetime | None
    end_at: datetime | None
    orders: dict[tuple[str, str], _Order] = field(default_factory=dict)
    others: list[PayoutLine] = field(default_factory=list)


def _settlement(first: dict[str, str]) -> _Settlement:
    settlement_id = first.get("settlement-id", "")
    if not settlement_id:
        raise F.error("missing_field", "line2.settlement-id")
    currency = F.currency(first, "currency", "line2")
    total = first.get("total-amount", "")
    if not total:
        raise F.error("missing_field", "line2.total-amount")
    return _Settlement(
        settlement_id=settlement_id,
        currency=currency,
        total_minor=_amount(total, currency, "total-amount", first),
        deposit_at=_time(first.get("deposit-date", ""), "deposit-date", first),
        end_at=_time(first.get("settlement-end-date", ""), "settlement-end-date", first),
    )


def _add_row(acc: _Settlement, row: dict[str, str]) -> None:
    if row.get("settlement-id", acc.settlement_id) not in ("", acc.settlement_id):
        raise DecodeError("amazon.mixed_settlements", f"line {row['#']}")
    currency = row.get("currency") or acc.currency
    if currency.upper() != acc.currency:
        raise DecodeError("amazon.mixed_currency", f"line {row['#']}")
    if not row.get("amount"):
        return  # a totals-only row carries no transaction amount
    amount_minor = _amount(row["amount"], acc.currency, "amount", row)
    txn_type = row.get("transaction-type", "")
    order_id = row.get("order-id", "")
    posted = _time(row.get("posted-date-time") or row.get("posted-date", ""), "posted-date", row)
    if order_id and (txn_type in _ORDER_TYPES or txn_type in _REFUND_TYPES):
        kind = "charge" if txn_type in _ORDER_TYPES else "refund"
        order = acc.orders.get((txn_type, order_id))
        if order is None:
            order = _Order(order_id, row.get("merchant-order-id", ""), kind)
            acc.orders[(txn_type, order_id)] = order
        order.add(row, amount_minor, posted)
        return
    acc.others.append(_other_line(row, txn_type, amount_minor))


def _other_line(row: dict[str, str], txn_type: str, amount_minor: int) -> PayoutLine:
    """A row outside any order: storage fees, subscriptions, reserves, adjustments."""
    label = row.get("amount-description") or txn_type or "other"
    lowered = f"{txn_type} {label}".lower()
    if any(word in lowered for word in _RESERVE_WORDS):
        kind = "reserve"
    elif amount_minor < 0 and "fee" in lowered:
        kind = "fee"
    else:
        kind = "adjustment"
    return PayoutLine(
        kind=kind,
        source_id=row.get("order-id") or row.get("adjustment-id") or f"line{row['#']}",
        gross_minor=amount_minor,
        fee_types=(label[:60],) if kind == "fee" else (),
    )


# --- events ---------------------------------------------------------------------------


def _order_line(order: _Order) -> PayoutLine:
    return PayoutLine(
        kind=order.kind,
        source_id=order.order_id,
        gross_minor=order.gross_minor,
        fee_minor=order.kept_minor,
        fee_types=tuple(order.fee_types),
        payment_method="marketplace",
    )


def _order_event(acc: _Settlement, txn_type: str, order: _Order, at: datetime) -> Event | None:
    payment_id = f"amazon:{acc.settlement_id}:{order.order_id}"
    refs = dedupe([order.order_id, order.merchant_order_id])
    if order.kind == "charge":
        if order.gross_minor <= 0:
            return None
        return PaymentReceived(
            event_id=f"{payment_id}:payment",
            occurred_at=order.posted_at or at,
            payment_id=payment_id,
            amount=Money(order.gross_minor, acc.currency),
            source="amazon",
            rail=Rail.MARKETPLACE,
            fee_minor=order.kept_minor,
            invoice_refs=refs,
            processor="amazon",
        )
    if order.gross_minor >= 0:
        return None
    reversal_id = f"{payment_id}:{_REFUND_TYPES[txn_type]}:" + (
        ",".join(order.adjustment_ids) or "-"
    )
    return PaymentReversed(
        event_id=reversal_id,
        occurred_at=order.posted_at or at,
        payment_id=payment_id,
        reversal_id=reversal_id,
        kind=ReversalKind.REFUND,
        amount=Money(-order.gross_minor, acc.currency),
        reason=_REFUND_TYPES[txn_type],
        hints=CustomerHints(external_ids=refs),
        source="amazon",
    )


def _events(acc: _Settlement, received_at: datetime) -> Decoded:
    at = acc.deposit_at or acc.end_at or received_at
    lines = [_order_line(order) for order in acc.orders.values()] + acc.others
    lines_net_minor = sum(line.gross_minor - line.fee_minor for line in lines)
    if lines_net_minor != acc.total_minor:
        raise DecodeError(
            "amazon.total_mismatch", f"lines {lines_net_minor} != total-amount {acc.total_minor}"
        )
    events: list[Event] = []
    ignored: list[str] = []
    for (txn_type, _), order in acc.orders.items():
        event = _order_event(acc, txn_type, order, at)
        if event is None:
            ignored.append(f"amazon:{order.kind}.no_buyer_amount")
        else:
            events.append(event)
    events.append(
        PayoutSettled(
            event_id=f"amazon:{acc.settlement_id}:settlement",
            occurred_at=at,
            processor="amazon",
            payout_id=acc.settlement_id,
            currency=acc.currency,
            net_minor=acc.total_minor,
            lines=tuple(lines),
            arrival_at=acc.deposit_at,
        )
    )
    return Decoded(events=tuple(events), ignored=tuple(ignored))


@reject_on_error
def decode(envelope: RawEnvelope) -> Decoded:
    """Decode one settlement V2 file; never raises (see module docstring)."""
    if envelope.kind != KIND:
        raise DecodeError("unknown_kind", f"amazon kind {str(envelope.kind)[:40]!r}")
    first, rows = _rows(text_body(envelope))
    acc = _settlement(first)
    for row in rows:
        _add_row(acc, row)
    return _events(acc, envelope.received_at)
