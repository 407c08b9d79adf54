"""ERP feed (customers, invoices, credit memos) -> canonical events.

The payload contract is `connectors/schema/erp.schema.json` (JSON Schema 2020-12).
It is checked here by hand, field by field, mirroring the schema: a validator
library on the hot path would cost more than the decode and would report
errors we could not turn into stable reason codes. A test keeps the two in
agreement. Beyond the schema, amounts must fit the currency's decimals and
dates must exist on the calendar.

A body is one object or a non-empty list; each item is decoded on its own, so
one bad invoice in a batch of a thousand is one rejection (with `ref` naming
the item) and 999 events.

Reason codes: `erp.missing_field:<path>`, `erp.wrong_type:<path>`,
`erp.invalid_value:<path>` (blank text, value outside an enum or range),
`erp.bad_amount:<path>`, `erp.too_many_decimals:<path>`,
`erp.bad_timestamp:<path>`, `erp.empty_body`, plus the shared money codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from arrecon.connectors._util import Fields, reject_on_error
from arrecon.connectors.envelope import Decoded, DecodeError, RawEnvelope, Rejection, json_body
from arrecon.state.events import (
    AdjustmentKind,
    CustomerHints,
    CustomerUpserted,
    Event,
    InvoiceAdjusted,
    InvoiceIssued,
)
from arrecon.state.money import CURRENCY_EXPONENTS, Money

__all__ = ["KINDS", "decode"]

F = Fields("erp")
_AMOUNT_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_MAX_AMOUNT_CHARS = 40
_MAX_TERMS_DAYS = 3650
_MAX_BPS = 10_000
_WHOLE_AMOUNT_KINDS = frozenset({AdjustmentKind.VOID, AdjustmentKind.WRITE_OFF})


# --- field checks mirroring the schema's $defs ----------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _text(obj: dict[str, Any], key: str, path: str) -> str:
    """$defs/text: a string with a non-blank character."""
    value = obj.get(key)
    if value is None:
        raise F.error("missing_field", _join(path, key))
    if not isinstance(value, str):
        raise F.error("wrong_type", _join(path, key), "expected string")
    if not value.strip():
        raise F.error("invalid_value", _join(path, key), "blank")
    return value.strip()


def _opt_text(obj: dict[str, Any], key: str, path: str) -> str | None:
    return None if obj.get(key) is None else _text(obj, key, path)


def _strings(obj: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    """An optional array of $defs/text."""
    value = obj.get(key)
    if value is None:
        return ()
    full = _join(path, key)
    if not isinstance(value, list):
        raise F.error("wrong_type", full, "expected array")
    out: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise F.error("wrong_type", f"{full}[{index}]", "expected string")
        if not item.strip():
            raise F.error("invalid_value", f"{full}[{index}]", "blank")
        out.append(item.strip())
    return tuple(out)


def _int_in(obj: dict[str, Any], key: str, path: str, low: int, high: int) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)  # JSON Schema calls 30.0 an integer too
    if type(value) is not int:
        raise F.error("wrong_type", _join(path, key), "expected integer")
    if not low <= value <= high:
        raise F.error("invalid_value", _join(path, key), f"outside {low}..{high}")
    return value


def _currency(obj: dict[str, Any], key: str, path: str) -> str:
    """$defs/currency: an upper-case code from the enum (no case folding here)."""
    value = obj.get(key)
    if value is None:
        raise F.error("missing_field", _join(path, key))
    if not isinstance(value, str):
        raise F.error("wrong_type", _join(path, key), "expected string")
    if value not in CURRENCY_EXPONENTS:
        raise DecodeError(f"unknown_currency:{value[:8]}", f"at {_join(path, key)}")
    return value


def _amount(obj: dict[str, Any], key: str, currency: str, path: str) -> Money:
    """$defs/amount: a non-negative decimal string or JSON number, exact in minor units."""
    full = _join(path, key)
    value = obj.get(key)
    if value is None:
        raise F.error("missing_field", full)
    if isinstance(value, str):
        if len(value) > _MAX_AMOUNT_CHARS or not _AMOUNT_TEXT.fullmatch(value):
            if value.strip().startswith("-"):
                raise DecodeError("negative_amount", f"at {full}")
            raise F.error("bad_amount", full, "expected digits with an optional decimal point")
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise F.error("wrong_type", full, "expected decimal string or number")
    return Money(F.major_value(value, currency, full), currency)


def _timestamp(obj: dict[str, Any], key: str, path: str) -> datetime:
    """$defs/timestamp: RFC 3339 with a zone."""
    full = _join(path, key)
    value = obj.get(key)
    if value is None:
        raise F.error("missing_field", full)
    if not isinstance(value, str):
        raise F.error("wrong_type", full, "expected string")
    if not _TIMESTAMP.fullmatch(value):
        raise F.error("bad_timestamp", full, "expected RFC 3339 with a zone")
    return F.parse_iso(value, full)


def _opt_timestamp(obj: dict[str, Any], key: str, path: str) -> datetime | None:
    return None if obj.get(key) is None else _timestamp(obj, key, path)


# --- items --------------------------------------------------------------------------


def _customer(item: dict[str, Any], path: str, received_at: datetime) -> Event:
    customer_id = _text(item, "customer_id", path)
    limit = item.get("credit_limit")
    currency = _currency(item, "currency", path) if item.get("currency") is not None else None
    if "credit_limit" in item and currency is None:
        raise F.error("missing_field", _join(path, "currency"), "credit_limit needs a currency")
    updated_at = _opt_timestamp(item, "updated_at", path)
    terms = _int_in(item, "terms_days", path, 0, _MAX_TERMS_DAYS)
    bps = _int_in(item, "deduction_allowance_bps", path, 0, _MAX_BPS)
    stamp = (updated_at or received_at).isoformat()
    return CustomerUpserted(
        event_id=f"erp:customer:{customer_id}:{stamp}",
        occurred_at=updated_at or received_at,
        customer_id=customer_id,
        name=_text(item, "name", path),
        aliases=_strings(item, "aliases", path),
        external_ids=_strings(item, "external_ids", path),
        bank_accounts=_strings(item, "bank_accounts", path),
        credit_limit=(
            _amount(item, "credit_limit", currency, path)
            if limit is not None and currency
            else None
        ),
        terms_days=30 if terms is None else terms,
        segment=_opt_text(item, "segment", path) or "standard",
        allowance_bps=bps or 0,
        source="erp",
    )


def _invoice(item: dict[str, Any], path: str, received_at: datetime) -> Event:
    number = _text(item, "invoice_number", path)
    currency = _currency(item, "currency", path)
    amount = _amount(item, "amount", currency, path)
    issued_at = _timestamp(item, "issued_at", path)
    return InvoiceIssued(
        event_id=f"erp:invoice:{number}:{amount.amount_minor}",
        occurred_at=issued_at,
        invoice_number=number,
        amount=amount,
        issued_at=issued_at,
        due_at=_timestamp(item, "due_at", path),
        hints=CustomerHints(customer_id=_text(item, "customer_id", path)),
        po_number=_opt_text(item, "po_number", path),
        channel=_opt_text(item, "channel", path) or "direct",
        external_ids=_strings(item, "external_ids", path),
        source="erp",
    )


def _memo_kind(item: dict[str, Any], path: str) -> AdjustmentKind:
    value = _text(item, "kind", path)
    try:
        return AdjustmentKind(value)
    except ValueError:
        raise F.error("invalid_value", _join(path, "kind"), value[:20]) from None


def _credit_memo(item: dict[str, Any], path: str, received_at: datetime) -> Event:
    memo_number = _text(item, "memo_number", path)
    currency = _currency(item, "currency", path)
    kind = _memo_kind(item, path)
    if kind in _WHOLE_AMOUNT_KINDS:
        if item.get("amount") is not None:
            raise F.error("invalid_value", _join(path, "amount"), f"{kind} takes no amount")
        amount = None
    else:
        amount = _amount(item, "amount", currency, path)
    reason = item.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise F.error("wrong_type", _join(path, "reason"), "expected string")
    issued_at = _timestamp(item, "issued_at", path)
    return InvoiceAdjusted(
        event_id=f"erp:credit_memo:{memo_number}",
        occurred_at=issued_at,
        invoice_number=_text(item, "invoice_number", path),
        kind=kind,
        amount=amount,
        hints=CustomerHints(customer_id=_text(item, "customer_id", path)),
        memo_number=memo_number,
        reason=reason or "",
        source="erp",
    )


ItemDecoder = Callable[[dict[str, Any], str, datetime], Event]
_KINDS: dict[str, tuple[ItemDecoder, str]] = {
    "customer": (_customer, "customer_id"),
    "invoice": (_invoice, "invoice_number"),
    "credit_memo": (_credit_memo, "memo_number"),
}
KINDS = frozenset(_KINDS)


def _item_ref(item: object, key: str, index: int | None) -> str:
    name = item.get(key) if isinstance(item, dict) else None
    where = "" if index is None else f"[{index}]"
    return f"{where}{name}"[:120] if isinstance(name, str) else where


@reject_on_error
def decode(envelope: RawEnvelope) -> Decoded:
    """Decode one ERP delivery (kind customer, invoice or credit_memo); never raises."""
    entry = _KINDS.get(envelope.kind)
    if entry is None:
        raise DecodeError("unknown_kind", f"erp kind {str(envelope.kind)[:40]!r}")
    item_decoder, id_key = entry
    body = json_body(envelope)
    if isinstance(body, list):
        if not body:
            raise DecodeError("erp.empty_body", "an empty list")
        items: list[tuple[int | None, object]] = list(enumerate(body))
    else:
        items = [(None, body)]
    events: list[Event] = []
    rejections: list[Rejection] = []
    for index, item in items:
        path = "" if index is None else f"[{index}]"
        try:
            events.append(item_decoder(F.mapping(item, path), path, envelope.received_at))
        except DecodeError as error:
            rejections.append(Rejection(error.reason, error.detail, _item_ref(item, id_key, index)))
    return Decoded(events=tuple(events), rejections=tuple(rejections))
