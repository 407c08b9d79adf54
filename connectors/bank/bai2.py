"""BAI2 cash-management files (US/CA/UK banks).

Why a small parser instead of the `bai2` package: against the samples it
refuses unknown type codes (190500000), several records on one physical line
and files whose record counts disagree, all of which real banks send. Here:

- Records are split at line ends and at "/" followed by the next record code,
  so several records may share a line; a line that does not start with a
  record code continues the previous record.
- 88 continues the previous record: more fields for 03 summaries, more text
  for a 16 detail (the text field runs to the end of the record and may hold
  commas and slashes).
- Amounts are implied-decimal minor units of the account currency (03, else
  group 02, else USD); blank amounts are zero.

Detail type codes 100-399 are credits, 400-699 debits; others are ignored.
Debit returns (ACH return items 557/558/468, or text naming an "Rnn" reason)
become ACH returns, other reversal codes bank reversals. An account whose
opening ledger (010) + credits - debits differs from its closing ledger (015)
is rejected with `bai2.balance_mismatch`.

Payer names: BAI2 has no payer field. An 88 tag (DBNM:, OB:, ORIG:) or a
"From: <name>" pair in the detail text names the payer outright. Otherwise,
banks that pass the originator's text through write "<payer> <references>"
("COBALT INDUSTRIES SAS INV-10017"), so the words before the first
reference-like token are taken as the payer when (1) every such word is a
plain word (letters and & . ' -), (2) a reference-like token does follow (a
label such as INV, Invoice, RE, PO, Rechnung, or a word holding 3+ digits,
typos included: "INV-1O1644"), and (3) the first word is not a
bank phrase (ACH, Wire, Transfer, TFR, Lock box...). Texts with "key: value"
tags are left alone. The full text always stays in `references`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from arrecon.connectors.bank.common import (
    BankTxn,
    Statement,
    assemble,
    day_start,
    entry_id,
    guarded,
    lenient_date,
)
from arrecon.connectors.envelope import Decoded, DecodeError, RawEnvelope, Rejection
from arrecon.state.events import Rail
from arrecon.state.money import CURRENCY_EXPONENTS, MAX_ABS_MINOR, Money

__all__ = ["decode"]

FMT = "bai2"
_CODES = ("01", "02", "03", "16", "49", "88", "98", "99")
_RECORD_START = re.compile(r"^(?:01|02|03|16|49|88|98|99),")
_SPLIT = re.compile(r"/\s+(?=(?:01|02|03|16|49|88|98|99),)")
_RETURN_REASON = re.compile(r"\bR\d{2}\b")
_EREF = re.compile(r"^EREF:\s*(\S+)")
_FROM_TAG = re.compile(r"(?:^|,)\s*From:\s*([^,]+)")
_NAME_WORD = re.compile(r"&|[^\W\d_][^\W\d]*(?:['.\-&][^\W\d]*)*\.?")
_DIGIT = re.compile(r"\d")
_REF_LABELS = frozenset(
    {
        "#",
        "FACTURA",
        "FACTURE",
        "FATTURA",
        "INV",
        "INV#",
        "INV.",
        "INVOICE",
        "INVOICE#",
        "INVOICES",
        "NO.",
        "NR.",
        "P.O.",
        "P/O",
        "PO",
        "PO#",
        "RE",
        "RE:",
        "RECHNUNG",
        "REF",
        "REF:",
        "RG",
        "RG.",
    }
)
_BANK_PHRASES = frozenset(
    {
        "ACH",
        "BOOK",
        "BOX",
        "CASH",
        "CHARGE",
        "CHECK",
        "CHEQUE",
        "CREDIT",
        "DEBIT",
        "DEPOSIT",
        "EXT",
        "FEE",
        "FEES",
        "INCOMING",
        "INTEREST",
        "LOCK",
        "LOCKBOX",
        "OUTGOING",
        "PAYMENT",
        "RETURN",
        "RTP",
        "SERVICE",
        "TFR",
        "TRANSFER",
        "TRF",
        "TRNSFR",
        "WIRE",
        "ZBA",
    }
)
_ACH_RETURNS = frozenset({"468", "557", "558", "556"})
_BANK_REVERSALS = frozenset({"552", "555", "566", "568", "694", "560", "561"})
_DEBIT_REVERSALS = frozenset({"252", "255", "257", "258", "261", "266", "268", "395", "123"})
_ACH_CREDITS = frozenset({"142", "143", "145", "165", "166", "167", "168", "169", "171"})
_WIRE_CREDITS = frozenset({"191", "195", "196", "201", "206", "208", "277"})
_CHECK_CREDITS = frozenset({"175", "176", "184", "221", "222", "301", "115", "116", "118"})


def decode(envelope: RawEnvelope) -> Decoded:
    """Decode one BAI2 delivery; never raises."""
    return guarded(FMT, _decode, envelope)


def _decode(envelope: RawEnvelope) -> Decoded:
    records = _records(_text(envelope.body))
    if not records or records[0][0] != "01":
        raise DecodeError(f"{FMT}.no_file_header", "first record is not 01")
    statements = list(_statements(records, envelope.received_at))
    return assemble(FMT, statements)


def _text(body: object) -> str:
    if isinstance(body, str):
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body).decode("utf-8", errors="replace")
    raise DecodeError(f"{FMT}.expected_text_body", type(body).__name__)


def _records(text: str) -> list[tuple[str, str]]:
    """(record code, raw record text) with 88 continuations still separate."""
    records: list[tuple[str, str]] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            continue
        if not _RECORD_START.match(line):
            if not records:
                raise DecodeError(f"{FMT}.bad_record", line[:40])
            code, body = records[-1]
            records[-1] = (code, body + line)
            continue
        for piece in _SPLIT.split(line.rstrip()):
            records.append((piece[:2], piece[3:]))
    return records


def _fields(body: str) -> list[str]:
    return body.rstrip().removesuffix("/").split(",")


@dataclass(slots=True)
class _Account:
    """One 03 account report while its records are read."""

    account: str
    currency: str
    day: str
    summary: list[str]
    details: list[tuple[str, list[str]]] = field(default_factory=list)


def _statements(records: list[tuple[str, str]], default_at: datetime) -> list[Statement]:
    file_id = "-".join(_fields(records[0][1])[:5])
    group_currency, group_day = "USD", ""
    accounts: list[_Account] = []
    for code, body in records:
        if code == "02":
            fields = _fields(body)
            group_currency = _field(fields, 5) or "USD"
            group_day = _field(fields, 3)
        elif code == "03":
            fields = _fields(body)
            currency = _field(fields, 1) or group_currency
            accounts.append(_Account(_field(fields, 0), currency, group_day, fields[2:]))
        elif code == "16" and accounts:
            accounts[-1].details.append((body, []))
        elif code == "88":
            _continue(accounts, body)
    # The account position keeps ids distinct when a file repeats an account.
    return [
        _statement_or_rejection(f"{file_id}:{n}", account, default_at)
        for n, account in enumerate(accounts)
    ]


def _continue(accounts: list[_Account], body: str) -> None:
    """88: more summary fields for an 03, more text for a 16."""
    if not accounts:
        return
    account = accounts[-1]
    if not account.details:
        account.summary.extend(_fields(body))
    else:
        account.details[-1][1].append(body.rstrip().removesuffix("/").strip())


def _field(fields: list[str], index: int) -> str:
    return fields[index].strip() if index < len(fields) else ""


def _statement_or_rejection(file_id: str, account: _Account, default_at: datetime) -> Statement:
    statement_id = f"{file_id}:{account.day}:{account.account}"
    try:
        return _statement(statement_id, account, default_at)
    except DecodeError as error:
        rejection = Rejection(error.reason, error.detail, statement_id)
        return Statement(statement_id, rejections=(rejection,))


def _statement(statement_id: str, account: _Account, default_at: datetime) -> Statement:
    currency = account.currency.upper()
    if currency not in CURRENCY_EXPONENTS:
        raise DecodeError(f"{FMT}.unknown_currency", repr(currency[:8]))
    booked_at = _day(account.day) or default_at
    opening, closing = _summary_balances(account.summary, currency)
    txns: list[BankTxn] = []
    ignored: list[str] = []
    net_minor = 0
    for index, (record, texts) in enumerate(account.details):
        txn = _detail(
            record,
            texts,
            currency=currency,
            statement_id=statement_id,
            index=index,
            booked=booked_at,
        )
        if txn is None:
            ignored.append(f"non_monetary:{statement_id}:{index}")
            continue
        net_minor += txn.amount.amount_minor if txn.credit else -txn.amount.amount_minor
        txns.append(txn)
    return Statement(
        statement_id, tuple(txns), opening, closing, net_minor, currency, ignored=tuple(ignored)
    )


def _day(text: str) -> datetime | None:
    if len(text) != 6 or not text.isdigit():
        return None
    return day_start(lenient_date(2000 + int(text[:2]), int(text[2:4]), int(text[4:]), FMT))


def _minor(text: str, currency: str) -> Money:
    text = text.strip()
    if not text:
        return Money(0, currency)
    if not re.fullmatch(r"[+-]?\d{1,20}", text):
        raise DecodeError(f"{FMT}.bad_amount", repr(text[:30]))
    value = int(text)
    if abs(value) > MAX_ABS_MINOR:
        raise DecodeError(f"{FMT}.bad_amount", "out of range")
    return Money(value, currency)


def _summary_balances(summary: list[str], currency: str) -> tuple[Money | None, Money | None]:
    """Opening (010) and closing (015) ledger from the 03 summary fields.

    Each summary is: type code, amount, item count, funds type, then the
    funds-type fields (S: 3, V: 2, D: 1 + 2 per distribution).
    """
    found: dict[str, Money] = {}
    position = 0
    while position + 1 < len(summary):
        code, amount = summary[position].strip(), summary[position + 1]
        if code in ("010", "015") and code not in found:
            found[code] = _minor(amount, currency)
        funds = _field(summary, position + 3)
        position += 4 + _funds_width(funds, summary, position + 4)
    return found.get("010"), found.get("015")


def _funds_width(funds: str, fields: list[str], start: int) -> int:
    """How many fields follow a funds-type code."""
    if funds == "S":
        return 3
    if funds == "V":
        return 2
    if funds == "D":
        count = _field(fields, start)
        return 1 + 2 * int(count) if count.isdigit() and int(count) < 100 else 1
    return 0


def _detail(
    record: str, texts: list[str], *, currency: str, statement_id: str, index: int, booked: datetime
) -> BankTxn | None:
    """A 16 record; the text field is whatever follows the reference fields."""
    fields = record.split(",")
    code = _field(fields, 0)
    if not code.isdigit() or not 100 <= int(code) <= 699:
        return None
    amount = _minor(_field(fields, 1), currency)
    if amount.amount_minor < 0:
        raise DecodeError(f"{FMT}.bad_amount", "negative detail amount")
    rest = 3 + _funds_width(_field(fields, 2), fields, 3)
    bank_ref, customer_ref = _field(fields, rest), _field(fields, rest + 1)
    text = ",".join(fields[rest + 2 :]).strip().removesuffix("/").strip()
    all_texts = [t for t in (text, *texts) if t]
    credit = int(code) < 400
    eref = next((m.group(1) for t in texts if (m := _EREF.match(t))), None)
    return_code = _return_code(code, all_texts) if not credit else None
    return BankTxn(
        entry_id=entry_id(eref, bank_ref or customer_ref, statement_id, index),
        booked_at=booked,
        amount=amount,
        credit=credit,
        reversal=code in _DEBIT_REVERSALS or code in _BANK_REVERSALS or return_code is not None,
        rail=_rail(code),
        payer_name=_payer(texts) or _leading_payer(text),
        references=tuple(all_texts),
        return_code=return_code,
        ach_return=code in _ACH_RETURNS,
        label=code,
    )


def _return_code(code: str, texts: list[str]) -> str | None:
    reason = next((m.group(0) for t in texts if (m := _RETURN_REASON.search(t))), None)
    if reason is not None:
        return reason
    if code in _ACH_RETURNS or code in _BANK_REVERSALS:
        return f"type{code}"
    return None


def _rail(code: str) -> Rail:
    if code in _ACH_CREDITS or code in _ACH_RETURNS:
        return Rail.ACH
    if code in _WIRE_CREDITS:
        return Rail.WIRE
    if code in _CHECK_CREDITS:
        return Rail.CHECK
    return Rail.OTHER


def _payer(texts: list[str]) -> str | None:
    """Originator name from common 88 tags (DBNM:, OB:, ORIG:)."""
    for text in texts:
        for tag in ("DBNM:", "OB:", "ORIG:"):
            if text.startswith(tag):
                return text[len(tag) :].strip() or None
    return None


def _leading_payer(text: str) -> str | None:
    """The payer named in a detail's own text ("From: X", or "<name> <refs>");
    None when the text does not have that shape (see the module docstring)."""
    tagged = _FROM_TAG.search(text)
    if tagged is not None:
        return _plausible(tagged.group(1).strip())
    if ":" in text:
        return None
    words: list[str] = []
    for word in text.split():
        if word.upper() in _REF_LABELS or len(_DIGIT.findall(word)) >= 3:
            return _plausible(" ".join(words)) if words else None
        if not _NAME_WORD.fullmatch(word):
            return None
        words.append(word)
    return None


def _plausible(name: str) -> str | None:
    """A name with at least three letters that does not open with a bank phrase."""
    name = name.strip(" ,.-")
    first = name.split(maxsplit=1)[0].upper() if name else ""
    if first in _BANK_PHRASES or sum(char.isalpha() for char in name) < 3:
        return None
    return name
