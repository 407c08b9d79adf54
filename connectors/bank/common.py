"""Shared shapes and rules for every bank-statement format.

Why one intermediate (`BankTxn`): camt, MT940, BAI2 and CSV disagree on syntax
but not on meaning. Each parser only turns its syntax into `BankTxn` values and
statement balances; the rules that matter for reconciliation (which id is the
payment id, what is a reversal, what is a processor payout, the balance check,
deterministic event ids) live here once.

Errors: parsers raise `DecodeError` for bad input; `guarded` turns any escape
into a rejection so `decode` never raises.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

from arrecon.connectors.envelope import Decoded, DecodeError, RawEnvelope, Rejection
from arrecon.state.events import (
    CustomerHints,
    Event,
    PaymentReceived,
    PaymentReversed,
    PayoutCredited,
    Rail,
    RemittanceLine,
    ReversalKind,
)
from arrecon.state.money import CURRENCY_EXPONENTS, Money, MoneyError, parse_major

__all__ = [
    "BankTxn",
    "Statement",
    "assemble",
    "classify_payout",
    "day_start",
    "entry_id",
    "guarded",
    "lenient_date",
    "money",
]

SOURCE = "bank"
# Placeholders banks put where an id is mandatory but unknown.
_NO_ID = frozenset({"", "NOTPROVIDED", "NONREF", "NOREF", "NONE", "N/A", "UNKNOWN"})


@dataclass(frozen=True, slots=True)
class BankTxn:
    """One booked movement, direction-free amount plus flags.

    `entry_id` is already the stable payment id; `reversal` marks an entry
    that undoes an earlier one; `return_code` (R01..., AC01...) makes it an
    ACH-style return rather than a plain bank reversal.
    """

    entry_id: str
    booked_at: datetime
    amount: Money
    credit: bool
    reversal: bool = False
    rail: Rail = Rail.OTHER
    payer_name: str | None = None
    payer_account: str | None = None
    references: tuple[str, ...] = ()
    remittance: tuple[RemittanceLine, ...] = ()
    fee_minor: int = 0
    return_code: str | None = None
    ach_return: bool = False
    label: str = ""


@dataclass(frozen=True, slots=True)
class Statement:
    """Entries of one statement and, when the format gives them, its balances.

    `net_minor` is the signed sum of booked entries (credits minus debits) at
    entry level, which the balance check compares with closing - opening;
    it is tracked apart from `txns` because batch entries may be split.
    """

    statement_id: str
    txns: tuple[BankTxn, ...] = ()
    opening: Money | None = None
    closing: Money | None = None
    net_minor: int = 0
    currency: str | None = None
    # Net of entries value-dated up to the closing date: some banks (Swiss
    # PostFinance) exclude forward-value entries from the closing balance.
    value_dated_net_minor: int | None = None
    ignored: tuple[str, ...] = ()
    rejections: tuple[Rejection, ...] = field(default_factory=tuple)


def money(text: str, currency: str, fmt: str) -> Money:
    """Exact amount from a decimal string; `DecodeError` instead of MoneyError."""
    if currency not in CURRENCY_EXPONENTS:
        raise DecodeError(f"{fmt}.unknown_currency", repr(currency[:8]))
    try:
        return parse_major(text, currency)
    except MoneyError as error:
        raise DecodeError(f"{fmt}.bad_amount", str(error)) from None


def day_start(day: date) -> datetime:
    """Midnight UTC of a booking date: bank dates carry no time of day."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def lenient_date(year: int, month: int, day: int, fmt: str) -> date:
    """A calendar date, clamping day 30/31 overflow (banks book on "Feb 30")."""
    if not 1 <= month <= 12 or not 1 <= day <= 31 or not 1 <= year <= 9999:
        raise DecodeError(f"{fmt}.bad_date", f"{year:04d}-{month:02d}-{day:02d}")
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day, last))


def entry_id(
    end_to_end: str | None, servicer_ref: str | None, statement_id: str, index: int
) -> str:
    """Payment id: end-to-end id, else servicer reference, else statement:index."""
    for candidate in (end_to_end, servicer_ref):
        if candidate is not None and candidate.strip().upper() not in _NO_ID:
            return candidate.strip()
    return f"{statement_id}:{index}"


_PO_REF = re.compile(r"\bpo_[A-Za-z0-9]{6,}\b")
_PROCESSORS = (
    ("stripe", re.compile(r"\bSTRIPE\b", re.IGNORECASE)),
    ("shopify", re.compile(r"\bSHOPIFY\b", re.IGNORECASE)),
    ("amazon", re.compile(r"\bAMAZON\b|\bAMZN\b", re.IGNORECASE)),
)
# On lower-cased ASCII text this matches wherever a pattern above could, so
# one cheap search rules most credits out (IGNORECASE search is slow).
_MAYBE_PAYOUT = re.compile(r"po_|stripe|shopify|amazon|amzn")


def classify_payout(payer_name: str | None, texts: Sequence[str]) -> tuple[str, str] | None:
    """(processor, payout reference) when a credit is a processor payout.

    Why here: a payout is not a customer's payment; it closes "in transit"
    cash. Stripe names itself or quotes its `po_...` id; Shopify and Amazon
    name themselves. The reference is the `po_` id, else the first text.
    """
    haystack = [payer_name or "", *texts]
    joined = "\n".join(haystack)
    # Non-ASCII text takes the full path: IGNORECASE also folds letters such
    # as U+017F (long s) that lower() leaves alone.
    if joined.isascii() and _MAYBE_PAYOUT.search(joined.lower()) is None:
        return None
    po_match = next((m for t in haystack if (m := _PO_REF.search(t))), None)
    if po_match is not None:
        return "stripe", po_match.group(0)
    for processor, pattern in _PROCESSORS:
        if any(pattern.search(text) for text in haystack):
            return processor, next((t.strip() for t in texts if t.strip()), "")
    return None


def _event_for(fmt: str, txn: BankTxn) -> Event | str:
    """The event a booked movement becomes, or a label to count it as ignored."""
    if txn.amount.amount_minor == 0:
        return f"zero_amount:{txn.entry_id}"
    if txn.credit and txn.reversal:
        return f"reversal_of_debit:{txn.entry_id}"
    if txn.credit:
        return _credit_event(fmt, txn)
    if txn.reversal or txn.return_code:
        return _reversal_event(fmt, txn)
    return f"debit:{txn.entry_id}"


def _credit_event(fmt: str, txn: BankTxn) -> Event:
    hints = CustomerHints(payer_name=txn.payer_name, payer_account=txn.payer_account)
    payout = classify_payout(txn.payer_name, txn.references)
    if payout is not None:
        processor, payout_ref = payout
        return PayoutCredited(
            event_id=f"bank:{fmt}:payout:{txn.entry_id}",
            occurred_at=txn.booked_at,
            processor=processor,
            payout_ref=payout_ref or txn.entry_id,
            amount=txn.amount,
            bank_entry_id=txn.entry_id,
        )
    return PaymentReceived(
        event_id=f"bank:{fmt}:{txn.entry_id}",
        occurred_at=txn.booked_at,
        payment_id=txn.entry_id,
        amount=txn.amount,
        source=SOURCE,
        rail=txn.rail,
        hints=hints,
        fee_minor=txn.fee_minor,
        references=txn.references,
        remittance=txn.remittance,
    )


def _reversal_event(fmt: str, txn: BankTxn) -> Event:
    ach = txn.ach_return or (txn.return_code or "").upper().startswith("R")
    kind = ReversalKind.ACH_RETURN if ach else ReversalKind.BANK_REVERSAL
    return PaymentReversed(
        event_id=f"bank:{fmt}:reversal:{txn.entry_id}",
        occurred_at=txn.booked_at,
        payment_id=txn.entry_id,
        reversal_id=f"{txn.entry_id}:reversal",
        kind=kind,
        amount=txn.amount,
        reason=txn.return_code or "",
        hints=CustomerHints(payer_name=txn.payer_name, payer_account=txn.payer_account),
        source=SOURCE,
    )


def check_balance(fmt: str, statement: Statement) -> Rejection | None:
    """Opening + credits - debits must equal closing, when both balances exist.

    Why reject the whole statement: a statement that does not add up is
    truncated or corrupt, and half of it would post wrong cash silently.
    """
    opening, closing = statement.opening, statement.closing
    if opening is None or closing is None:
        return None
    if opening.currency != closing.currency or (
        statement.currency is not None and statement.currency != opening.currency
    ):
        detail = f"currencies {opening.currency}/{closing.currency}/{statement.currency}"
        return Rejection(f"{fmt}.balance_mismatch", detail, statement.statement_id)
    nets = {statement.net_minor, statement.value_dated_net_minor}
    if closing.amount_minor - opening.amount_minor not in nets:
        detail = f"opening {opening} + net {statement.net_minor} != closing {closing}"
        return Rejection(f"{fmt}.balance_mismatch", detail, statement.statement_id)
    return None


def assemble(fmt: str, statements: Iterable[Statement]) -> Decoded:
    """Balance-check each statement and turn its entries into events.

    Payment ids repeated inside one delivery (one reference quoted by two
    entries) are made unique with the entry position so that the ledger's
    duplicate detection does not swallow a real second payment.
    """
    events: list[Event] = []
    rejections: list[Rejection] = []
    ignored: list[str] = []
    seen: set[str] = set()
    for statement in statements:
        rejections.extend(statement.rejections)
        ignored.extend(statement.ignored)
        mismatch = check_balance(fmt, statement)
        if mismatch is not None:
            rejections.append(mismatch)
            continue
        for index, txn in enumerate(statement.txns):
            unique = _unique(txn, seen, statement.statement_id, index)
            outcome = _event_for(fmt, unique)
            if isinstance(outcome, str):
                ignored.append(outcome)
            else:
                events.append(outcome)
    return Decoded(tuple(events), tuple(rejections), tuple(ignored))


def _unique(txn: BankTxn, seen: set[str], statement_id: str, index: int) -> BankTxn:
    # A credit and its later reversal share the payment id on purpose.
    side = "C" if txn.credit else "D"
    entry = txn.entry_id
    base, extra = entry, 0
    while f"{side}{entry}" in seen:
        extra += 1
        entry = f"{base}#{statement_id}:{index}" + (f"#{extra}" if extra > 1 else "")
    seen.add(f"{side}{entry}")
    if entry == txn.entry_id:
        return txn
    return replace(txn, entry_id=entry)


def guarded(fmt: str, parse: Callable[[RawEnvelope], Decoded], envelope: RawEnvelope) -> Decoded:
    """Run a parser so that nothing escapes: errors become rejections.

    `DecodeError` carries its own reason; anything else is a parser gap on
    hostile input and is reported as `<fmt>.malformed` rather than crashing
    the flow.
    """
    try:
        return parse(envelope)
    except DecodeError as error:
        return Decoded.rejected(error.reason, error.detail)
    except (
        ValueError,
        TypeError,
        LookupError,
        AttributeError,
        ArithmeticError,
        RecursionError,
    ) as error:
        return Decoded.rejected(f"{fmt}.malformed", f"{type(error).__name__}: {error}")
