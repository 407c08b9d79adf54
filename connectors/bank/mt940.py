"""SWIFT MT940 statements and MT942 interim reports.

Why a small parser instead of the `mt-940` package: tried against the sample
files, the package refuses a wrapped :61: line (ASN Bank) and a malformed
:65F: balance that we do not even need, and its exceptions are not typed. The
subset needed here (:20: :25: :28C: :60x: :61: :86: :62x:, MT942 :34F:/:90x:)
is small, so a tolerant line-based reader is simpler and more robust:

- SWIFT FIN envelopes `{1:}{2:}{4:...-}` and SOH/ETX control characters are
  stripped; CRLF, CR and LF are all line ends; a missing final CRLF is fine.
- `:NS:` (non-standard) and unknown tags are skipped.
- Day overflow ("30 February") is clamped to the month's last day.
- Amounts use the decimal comma ("1,50", "380115,", ",12") and are exact.

A statement whose :60F:/:60M: + credits - debits differs from :62F:/:62M:
is rejected whole with `mt940.balance_mismatch`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import date, datetime

from arrecon.connectors.bank.common import (
    BankTxn,
    Statement,
    assemble,
    day_start,
    entry_id,
    guarded,
    lenient_date,
    money,
)
from arrecon.connectors.envelope import Decoded, DecodeError, RawEnvelope, Rejection
from arrecon.state.events import Rail
from arrecon.state.money import Money

__all__ = ["decode", "parse_details"]

FMT = "mt940"
_TAG = re.compile(r"^:(\d{2}[A-Z]?|NS):")
_BLOCK4 = re.compile(r"\{4:(.*?)(?:-\}|\Z)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BALANCE = re.compile(r"^([CD])(\d{6})([A-Z]{3})(\d*,?\d*)\s*$")
_LINE61 = re.compile(
    r"^(?P<value>\d{6})(?P<entry>\d{4}|\s{4})?(?P<mark>R?[CD])(?P<funds>[A-Z])?\s?"
    r"(?P<amount>\d[\d,]*|,\d+)(?P<type>[A-Z][A-Z0-9 ]{3})?(?P<refs>.*)$"
)
_AMOUNT = re.compile(r"^\d*,?\d*$")
_GERMAN = re.compile(r"^(\d{3})([^\w\s])")
_SEPA_KEYS = re.compile(r"(EREF|KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|COAM|OAMT|IBAN|BIC)\+")
_SLASH_FIELD = (
    r"/{code}/(.*?)(?=/(?:EREF|REMI|NAME|IBAN|BIC|ADDR|ISDT|CSID|MARF|ORDP|BENM|TRTP|"
    r"CNTP|ULTD|ULTC|ULTB|PURP|RTRN|PREF|SVCL)/|$)"
)
_CHARGES = re.compile(r"/CHGS/([A-Z]{3})(\d[\d,]*)")
_RETURN_WORDS = re.compile(r"RETOURE|RUECKUEBERWEISUNG|RÜCKÜBERWEISUNG|RUECKLASTSCHRIFT|STORNO")
# German GV codes for returned SEPA direct debits and returned transfers.
_RETURN_GV = frozenset({"108", "109", "159"})
_CHECK_TYPES = frozenset({"NCHK", "FCHK", "SCHK"})
_CHECK_GV = frozenset({"070", "071", "083"})
_WRAP = 65


def decode(envelope: RawEnvelope) -> Decoded:
    """Decode one MT940/MT942 delivery; never raises."""
    return guarded(FMT, _decode, envelope)


def _decode(envelope: RawEnvelope) -> Decoded:
    text = _text(envelope.body)
    messages = _messages(text)
    statements: list[Statement] = []
    for message in messages:
        tags = _tags(message)
        for group in _split_statements(tags):
            statements.append(_statement_or_rejection(group, envelope.received_at))
    if not statements:
        raise DecodeError(f"{FMT}.no_statements", "no :20: statement found")
    return assemble(FMT, statements)


def _text(body: object) -> str:
    """Text of the file; bytes that are not UTF-8 are read as Latin-1."""
    if isinstance(body, str):
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        raw = bytes(body)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    raise DecodeError(f"{FMT}.expected_text_body", type(body).__name__)


def _messages(text: str) -> list[str]:
    """Message texts without FIN envelopes, control characters or CRs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = _BLOCK4.findall(text) if "{4:" in text else [text]
    return [_CONTROL.sub("", block) for block in blocks]


def _tags(message: str) -> list[tuple[str, str]]:
    """(tag, value) pairs; continuation lines stay in the value after "\\n"."""
    tags: list[tuple[str, list[str]]] = []
    for line in message.split("\n"):
        match = _TAG.match(line)
        if match:
            tags.append((match.group(1), [line[match.end() :]]))
        elif line.strip() == "-":
            tags.append(("END", [""]))
        elif tags:
            tags[-1][1].append(line)
    return [(tag, "\n".join(lines).rstrip()) for tag, lines in tags]


def _split_statements(tags: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Tags grouped per :20:; anything after a "-" end line waits for a :20:."""
    groups: list[list[tuple[str, str]]] = []
    open_group = False
    for tag, value in tags:
        if tag == "20":
            groups.append([])
            open_group = True
        elif tag == "END":
            open_group = False
        if open_group and tag != "NS":
            groups[-1].append((tag, value))
    return groups


@dataclass(slots=True)
class _Draft:
    """Statement fields while reading its tags in order."""

    reference: str = ""
    account: str = ""
    number: str = ""
    currency: str = ""
    opening: Money | None = None
    closing: Money | None = None
    day: str = ""
    lines: list[tuple[str, str]] = field(default_factory=list)


def _statement_or_rejection(tags: list[tuple[str, str]], default_at: datetime) -> Statement:
    draft = _draft(tags)
    statement_id = _statement_id(draft)
    try:
        _balances_into(draft, tags)
        return _statement(draft, statement_id, default_at)
    except DecodeError as error:
        rejection = Rejection(error.reason, error.detail, statement_id)
        return Statement(statement_id, rejections=(rejection,))


def _draft(tags: list[tuple[str, str]]) -> _Draft:
    draft = _Draft()
    for tag, value in tags:
        first = value.split("\n", 1)[0].strip()
        if tag == "20":
            draft.reference = first
        elif tag == "25":
            draft.account = first
        elif tag in ("28", "28C"):
            draft.number = first
        elif tag in ("60F", "60M") and not draft.day:
            draft.day = first[1:7]
        elif tag == "34F" and not draft.currency:
            draft.currency = first[:3]
        elif tag in ("90D", "90C") and not draft.currency:
            draft.currency = re.sub(r"^\d*", "", first)[:3]
        elif tag in ("61", "86"):
            draft.lines.append((tag, value))
    return draft


def _balances_into(draft: _Draft, tags: list[tuple[str, str]]) -> None:
    """First opening (:60F:/:60M:) and last closing (:62F:/:62M:) balance."""
    for tag, value in tags:
        if tag not in ("60F", "60M", "62F", "62M"):
            continue
        text = value.split("\n", 1)[0].strip()
        match = _BALANCE.match(text)
        if match is None:
            raise DecodeError(f"{FMT}.bad_balance", f":{tag}:{text[:40]}")
        mark, _, currency, amount = match.groups()
        value_money = _amount(amount, currency)
        signed = -value_money if mark == "D" else value_money
        draft.currency = draft.currency or currency
        if tag.startswith("60"):
            draft.opening = draft.opening or signed
        else:
            draft.closing = signed


def _amount(text: str, currency: str) -> Money:
    text = text.strip()
    if not text or not _AMOUNT.match(text) or text == ",":
        raise DecodeError(f"{FMT}.bad_amount", repr(text))
    return money(text.replace(",", "."), currency, FMT)


def _statement_id(draft: _Draft) -> str:
    parts = (draft.reference, draft.account, draft.number, draft.day)
    return "/".join(re.sub(r"\s+", "", part) for part in parts)


def _statement(draft: _Draft, statement_id: str, default_at: datetime) -> Statement:
    if not draft.currency:
        raise DecodeError(f"{FMT}.no_currency", "no :60F:/:34F: currency")
    txns: list[BankTxn] = []
    net_minor = 0
    pairs = _pairs(draft.lines)
    for index, (line61, line86) in enumerate(pairs):
        txn = _txn(
            line61,
            line86,
            currency=draft.currency,
            statement_id=statement_id,
            index=index,
            default_at=default_at,
        )
        net_minor += txn.amount.amount_minor if txn.credit else -txn.amount.amount_minor
        txns.append(txn)
    return Statement(
        statement_id,
        tuple(txns),
        draft.opening,
        draft.closing,
        net_minor,
        currency=draft.currency,
    )


def _pairs(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each :61: with the :86: that follows it (empty when absent)."""
    pairs: list[tuple[str, str]] = []
    for tag, value in lines:
        if tag == "61":
            pairs.append((value, ""))
        elif tag == "86" and pairs and not pairs[-1][1]:
            pairs[-1] = (pairs[-1][0], value)
    return pairs


def _txn(
    line61: str, line86: str, *, currency: str, statement_id: str, index: int, default_at: datetime
) -> BankTxn:
    first, _, supplementary = line61.partition("\n")
    match = _LINE61.match(first.strip())
    if match is None:
        raise DecodeError(f"{FMT}.bad_transaction", first[:60])
    mark = match.group("mark")
    amount = _amount(match.group("amount"), currency)
    customer_ref, _, bank_ref = match.group("refs").partition("//")
    details = parse_details(line86)
    texts = [t for t in details.references if t]
    booked = _booked_day(match.group("value"), match.group("entry"))
    # A returned transfer credited back is a reversal of our debit, not cash in.
    reversal = mark in ("RC", "RD") or details.is_return
    servicer_ref = bank_ref.strip() if len(bank_ref.strip()) >= 6 else None
    return BankTxn(
        entry_id=entry_id(details.end_to_end, servicer_ref, statement_id, index),
        booked_at=day_start(booked) if booked else default_at,
        amount=amount,
        credit=mark in ("C", "RD"),
        reversal=reversal,
        rail=_rail(match.group("type") or "", details),
        payer_name=details.name,
        payer_account=details.account,
        references=tuple(texts),
        fee_minor=_charges(supplementary, currency),
        return_code=details.return_code,
        label=customer_ref.strip(),
    )


def _booked_day(value: str, entry: str | None) -> date | None:
    """Entry (booking) date when given, else value date; the year comes from value."""
    year = int(value[:2])
    year += 1900 if year >= 70 else 2000
    value_day = lenient_date(year, int(value[2:4]), int(value[4:6]), FMT)
    if entry is None or not entry.strip():
        return value_day
    month, day = int(entry[:2]), int(entry[2:])
    if month - value_day.month > 6:
        year -= 1
    elif value_day.month - month > 6:
        year += 1
    return lenient_date(year, month, day, FMT)


def _charges(supplementary: str, currency: str) -> int:
    match = _CHARGES.search(supplementary)
    if match is None or match.group(1) != currency:
        return 0
    return _amount(match.group(2), currency).amount_minor


def _rail(type_code: str, details: _Details) -> Rail:
    if type_code.strip() in _CHECK_TYPES or details.gv_code in _CHECK_GV:
        return Rail.CHECK
    if details.gv_code[:1] == "1" or "SEPA" in " ".join(details.references).upper():
        return Rail.SEPA
    return Rail.OTHER


@dataclass(frozen=True, slots=True)
class _Details:
    """What the :86: information field says about the counterparty."""

    references: tuple[str, ...] = ()
    end_to_end: str | None = None
    name: str | None = None
    account: str | None = None
    gv_code: str = ""
    return_code: str | None = None
    is_return: bool = False


def parse_details(text: str) -> _Details:
    """Read :86: in German ?-subfield, SWIFT /CODE/ or free-text layout."""
    if not text.strip():
        return _Details()
    german = _GERMAN.match(text)
    if german and re.search(re.escape(german.group(2)) + r"\d{2}", text):
        return _german(text.replace("\n", ""), german.group(1), german.group(2))
    joined = _join_wrapped(text)
    if re.search(r"/(EREF|REMI|NAME|CNTP|TRTP)/", joined):
        return _slash_codes(joined)
    return _Details(references=(joined.strip(),), is_return=bool(_RETURN_WORDS.search(joined)))


def _join_wrapped(text: str) -> str:
    """Join lines: a full-width line was wrapped mid-word, a short one ended."""
    lines = text.split("\n")
    out = lines[0]
    for previous, line in itertools.pairwise(lines):
        out += line if len(previous) >= _WRAP else " " + line
    return re.sub(r"\s{2,}", " ", out)


def _german(text: str, gv_code: str, separator: str) -> _Details:
    fields: dict[str, str] = {}
    for chunk in text[4:].split(separator):
        key, value = chunk[:2], chunk[2:]
        if key.isdigit():
            fields[key] = fields.get(key, "") + value
    purpose = "".join(fields.get(f"{n}", "") for n in [*range(20, 30), *range(60, 64)])
    keyed = _sepa_keywords(purpose)
    end_to_end = keyed.get("EREF", "").strip() or None
    references = [keyed[key].strip() for key in ("SVWZ", "EREF", "KREF") if keyed.get(key)]
    if not keyed and purpose.strip():
        references.append(purpose.strip())
    name = (fields.get("32", "") + fields.get("33", "")).strip() or None
    booking_text = fields.get("00", "")
    return _Details(
        references=tuple(references),
        end_to_end=end_to_end,
        name=name,
        account=fields.get("31", "").strip() or None,
        gv_code=gv_code,
        is_return=gv_code in _RETURN_GV or bool(_RETURN_WORDS.search(booking_text.upper())),
    )


def _sepa_keywords(purpose: str) -> dict[str, str]:
    parts = _SEPA_KEYS.split(purpose)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _slash_field(text: str, code: str) -> str:
    match = re.search(_SLASH_FIELD.format(code=code), text)
    return match.group(1).strip() if match else ""


def _slash_codes(text: str) -> _Details:
    remittance = _slash_field(text, "REMI")
    for prefix in ("USTD//", "USTD/", "STRD/CUR/", "STRD/"):
        remittance = remittance.removeprefix(prefix)
    end_to_end = _slash_field(text, "EREF") or None
    name = _slash_field(text, "NAME") or None
    account = _slash_field(text, "IBAN") or None
    counterparty = _slash_field(text, "CNTP").split("/")
    if len(counterparty) >= 3:
        account = account or counterparty[0] or None
        name = name or counterparty[2] or None
    references = tuple(t for t in (remittance.strip("/ "), end_to_end or "") if t)
    trtp = _slash_field(text, "TRTP").upper()
    return _Details(
        references=references,
        end_to_end=end_to_end,
        name=name,
        account=account,
        return_code=_slash_field(text, "RTRN") or None,
        is_return="RETURN" in trtp or "STORNO" in trtp,
    )
