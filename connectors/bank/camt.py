"""ISO 20022 camt.053 (statement) and camt.054 (debit/credit notification).

Why namespace-agnostic: banks send .001.02 through .001.10 with the same
element names under different namespaces; tags are reduced to local names
once, then plain paths work for every version. Parsing goes through
defusedxml, so DTDs, entities and external references are refused.

camt.052 (intraday account report) is rejected with
`camt.unsupported_message:camt.052`: its entries are provisional and reappear
in the day's camt.053, so decoding both would count the same cash twice.

Batch entries with several `TxDtls` that each carry an amount become one
event per transaction; the balance check always uses entry-level amounts.
Statements whose opening + credits - debits differ from the closing balance
are rejected whole (`camt053.balance_mismatch`).
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, ParseError, XMLParser

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

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
from arrecon.state.events import Rail, RemittanceLine
from arrecon.state.money import Money

__all__ = ["decode"]

_MESSAGES = {
    "BkToCstmrStmt": ("camt053", "Stmt"),
    "BkToCstmrDbtCdtNtfctn": ("camt054", "Ntfctn"),
}
_UNSUPPORTED = {"BkToCstmrAcctRpt": "camt.052"}
# camt.054 notifies single movements with status INFO; camt.053 INFO entries
# are memos outside the balance.
_BOOKED = {"camt053": frozenset({"BOOK", ""}), "camt054": frozenset({"BOOK", "", "INFO"})}
_SEPA = frozenset({"ESCT", "ESDD", "BBDD", "SDVA", "RRTN", "ESCC", "OODD", "PRDD", "UPDD"})
_ACH = frozenset({"ACDT", "ADBT", "ARET", "AREV", "ACOR", "ASET", "APAC"})
_WIRE = frozenset({"XBCT", "FICT", "PRCT", "BOOK", "NTAV", "RPCR", "XICT"})
_CHECK_FAMILIES = frozenset({"RCHQ", "ICHQ", "CCHQ", "DRFT", "CQRV", "CCCH", "UPCQ", "XBCQ"})
_DOCTYPE = b"<!DOCTYPE"
_DEFAULT_NS = re.compile(rb"""\sxmlns\s*=\s*("[^"]*"|'[^']*')""")
_PREFIXED = re.compile(rb"</?[A-Za-z_][\w.-]*:[A-Za-z_]")
_RF_SPACES = re.compile(r"\s+")
# Version 1 messages carry the version in the element name (BkToCstmrStmtV01).
_VERSION_SUFFIX = re.compile(r"V\d\d$")
_RAIL_PATHS = ("BkTxCd/Domn/Fmly/Cd", "BkTxCd/Domn/Fmly/SubFmlyCd")
_BOOKED_AT_PATHS = ("BookgDt/Dt", "BookgDt/DtTm", "ValDt/Dt", "ValDt/DtTm", "BookgDt/Dt/DtTm")
_PAYER_NAME_PATHS = (
    "RltdPties/Dbtr/Nm",
    "RltdPties/Dbtr/Pty/Nm",
    "RltdPties/UltmtDbtr/Nm",
    "RltdPties/UltmtDbtr/Pty/Nm",
)
_PAYER_ACCOUNT_PATHS = ("RltdPties/DbtrAcct/Id/IBAN", "RltdPties/DbtrAcct/Id/Othr/Id")


def decode(envelope: RawEnvelope) -> Decoded:
    """Decode one camt.053/054 delivery; never raises."""
    with _collector_paused():
        return guarded(_fmt_of(envelope), _decode, envelope)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while one document is decoded.

    Why: a statement's element tree is tens of elements per entry, all alive
    until the end, so allocation-triggered collections kept re-scanning it
    (and the rest of the heap) and took about a third of decode time. Trees
    and events hold no reference cycles; reference counting frees them, and
    anything cyclic is collected once the collector is back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _fmt_of(envelope: RawEnvelope) -> str:
    return envelope.kind if envelope.kind in ("camt053", "camt054") else "camt"


def _decode(envelope: RawEnvelope) -> Decoded:
    root = _parse(envelope)
    message = next(iter(root), None)
    if message is None:
        raise DecodeError(f"{_fmt_of(envelope)}.no_message", "empty Document")
    name = _VERSION_SUFFIX.sub("", message.tag)
    if name in _UNSUPPORTED:
        raise DecodeError(f"camt.unsupported_message:{_UNSUPPORTED[name]}")
    if name not in _MESSAGES:
        raise DecodeError("camt.unsupported_message", message.tag)
    fmt, container = _MESSAGES[name]
    blocks = message.findall(container)
    if not blocks:
        raise DecodeError(f"{fmt}.no_statements", f"no {container} in {message.tag}")
    default_at = envelope.received_at
    statements = [_statement_or_rejection(fmt, block, default_at) for block in blocks]
    return assemble(fmt, statements)


def _parse(envelope: RawEnvelope) -> Element:
    body = envelope.body
    if not isinstance(body, (str, bytes, bytearray, memoryview)):
        raise DecodeError("camt.expected_text_body", type(body).__name__)
    data = bytes(body) if not isinstance(body, str) else body.encode("utf-8")
    # Dropping the one default namespace declaration leaves plain tag names;
    # prefixed documents are renamed element by element after parsing.
    data = _DEFAULT_NS.sub(b"", data, count=1)
    try:
        root = fromstring(data, forbid_dtd=True) if _may_declare_dtd(data) else _fast_parse(data)
    except (ParseError, DefusedXmlException, ValueError, LookupError) as error:
        raise DecodeError(f"{_fmt_of(envelope)}.malformed_xml", str(error)[:200]) from None
    if root.tag[:1] == "{" or _PREFIXED.search(data):
        for element in root.iter():
            tag = element.tag
            if isinstance(tag, str) and tag[:1] == "{":
                element.tag = tag.rpartition("}")[2]
    if root.tag != "Document":
        raise DecodeError(f"{_fmt_of(envelope)}.not_camt", f"root element {root.tag}")
    return root


def _may_declare_dtd(data: bytes) -> bool:
    """True unless the raw bytes show there is no DOCTYPE.

    UTF-16 text hides the ASCII bytes of "<!DOCTYPE" but always holds NUL
    bytes ("<" is 3C 00), which 8-bit encoded XML never does: such input is
    left to defusedxml.
    """
    return _DOCTYPE in data or b"\x00" in data


def _fast_parse(data: bytes) -> Element:
    """The C expat parser for documents without a DOCTYPE.

    Why safe: entity bombs and external entities need a DTD, and every
    document that may declare one goes through defusedxml, which refuses it.
    """
    parser = XMLParser()
    parser.feed(data)
    root: Element = parser.close()
    return root


@functools.cache
def _steps(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def _find(element: Element | None, path: str) -> Element | None:
    """Walk a plain "A/B/C" path one child at a time: the first A, its first B...

    Why: single-tag `find` runs in C, a multi-step path goes through the
    Python ElementPath engine and dominated decode time.
    """
    for step in _steps(path):
        if element is None:
            return None
        element = element.find(step)
    return element


def _text(element: Element | None, path: str) -> str:
    """Stripped text at `path` as `_find` resolves it, "" when absent.

    The walk is inlined (not a call to `_find`): about twenty of these run
    per entry, and the call overhead showed in decode time.
    """
    for step in _steps(path):
        if element is None:
            return ""
        element = element.find(step)
    if element is None or element.text is None:
        return ""
    return element.text.strip()


def _statement_or_rejection(fmt: str, block: Element, default_at: datetime) -> Statement:
    """One Stmt/Ntfctn; a bad entry rejects its statement, not the delivery."""
    statement_id = _text(block, "Id") or "unknown"
    try:
        return _statement(fmt, block, statement_id, default_at)
    except DecodeError as error:
        rejection = Rejection(error.reason, error.detail, statement_id)
        return Statement(statement_id, rejections=(rejection,))


def _statement(fmt: str, block: Element, statement_id: str, default_at: datetime) -> Statement:
    account_ccy = _text(block, "Acct/Ccy") or None
    opening, closing, closing_day = _balances(fmt, block)
    txns: list[BankTxn] = []
    ignored: list[str] = []
    net_minor = 0
    value_dated_net_minor = 0
    for index, entry in enumerate(block.findall("Ntry")):
        signed, entry_txns, skipped = _entry(fmt, entry, statement_id, index, default_at)
        net_minor += signed
        if _text(entry, "ValDt/Dt")[:10] <= closing_day:
            value_dated_net_minor += signed
        txns.extend(entry_txns)
        ignored.extend(skipped)
    currency = account_ccy if opening is not None else None
    return Statement(
        statement_id,
        tuple(txns),
        opening,
        closing,
        net_minor,
        currency=currency,
        value_dated_net_minor=value_dated_net_minor,
        ignored=tuple(ignored),
    )


def _balances(fmt: str, block: Element) -> tuple[Money | None, Money | None, str]:
    """Booked opening (OPBD, else PRCD) and closing (CLBD) balances, closing day."""
    found: dict[str, Money] = {}
    closing_day = "9999-12-31"
    for balance in block.findall("Bal"):
        code = _text(balance, "Tp/CdOrPrtry/Cd") or _text(balance, "Tp/CdOrPrtry/Prtry")
        if code in ("OPBD", "PRCD", "CLBD") and code not in found:
            found[code] = _signed_amount(fmt, balance)
            if code == "CLBD":
                closing_day = (_text(balance, "Dt/Dt") or _text(balance, "Dt/DtTm"))[:10]
    return found.get("OPBD", found.get("PRCD")), found.get("CLBD"), closing_day or "9999-12-31"


def _amount(fmt: str, element: Element | None) -> Money | None:
    if element is None or element.text is None:
        return None
    currency = element.get("Ccy", "").strip().upper()
    return money(element.text, currency, fmt)


def _signed_amount(fmt: str, node: Element) -> Money:
    amount = _amount(fmt, node.find("Amt"))
    if amount is None:
        raise DecodeError(f"{fmt}.missing_amount", "balance without Amt")
    return -amount if _text(node, "CdtDbtInd") == "DBIT" else amount


def _entry(
    fmt: str, entry: Element, statement_id: str, index: int, default_at: datetime
) -> tuple[int, list[BankTxn], list[str]]:
    """(signed booked amount, movements, ignored labels) of one Ntry."""
    amount = _amount(fmt, entry.find("Amt"))
    if amount is None:
        raise DecodeError(f"{fmt}.missing_amount", f"entry {index}")
    if amount.amount_minor < 0:
        raise DecodeError(f"{fmt}.bad_amount", f"negative entry amount {amount}")
    credit = _credit_flag(fmt, _text(entry, "CdtDbtInd"))
    status = _text(entry, "Sts/Cd") or _text(entry, "Sts")
    servicer_ref = _text(entry, "AcctSvcrRef")
    fallback = servicer_ref or f"{statement_id}:{index}"
    if status not in _BOOKED[fmt]:
        return 0, [], [f"status_{status.lower()}:{fallback}"]
    context = _EntryContext(
        fmt=fmt,
        booked_at=_booked_at(fmt, entry, default_at),
        credit=credit,
        reversal=_text(entry, "RvslInd").lower() in ("true", "1"),
        rail=_rail(entry),
        statement_id=statement_id,
        index=index,
        servicer_ref=servicer_ref,
        entry_texts=tuple(t for t in (_text(entry, "AddtlNtryInf"),) if t),
        fee_minor=_fees(fmt, entry, amount.currency),
        charges_included=_charges_included(entry),
    )
    details = [tx for group in entry.findall("NtryDtls") for tx in group.findall("TxDtls")]
    signed = amount.amount_minor if credit else -amount.amount_minor
    split = len(details) > 1 and all(_tx_amount(fmt, tx) is not None for tx in details)
    if split:
        txns = [context.txn(tx, None, k) for k, tx in enumerate(details)]
    else:
        txns = [context.txn(details[0] if details else None, amount, None, details[1:])]
    return signed, txns, []


def _credit_flag(fmt: str, indicator: str) -> bool:
    """True for CRDT, False for DBIT; anything else is refused."""
    if indicator not in ("CRDT", "DBIT"):
        raise DecodeError(f"{fmt}.bad_direction", repr(indicator))
    return indicator == "CRDT"


def _booked_at(fmt: str, node: Element, default_at: datetime) -> datetime:
    for path in _BOOKED_AT_PATHS:
        text = _text(node, path)
        if text:
            return _moment(fmt, text)
    return default_at


@functools.lru_cache(maxsize=4096)
def _moment(fmt: str, text: str) -> datetime:
    """A date or date-time as UTC; offset-less times are taken as UTC.

    Cached: a statement books most of its entries on a handful of days.
    """
    if len(text) <= 10:
        parts = text.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise DecodeError(f"{fmt}.bad_date", text)
        return day_start(lenient_date(int(parts[0]), int(parts[1]), int(parts[2]), fmt))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DecodeError(f"{fmt}.bad_date", text) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _rail(node: Element | None) -> Rail:
    family = _text(node, "BkTxCd/Domn/Fmly/Cd")
    sub_family = _text(node, "BkTxCd/Domn/Fmly/SubFmlyCd")
    if family in _CHECK_FAMILIES or sub_family in ("CCHQ", "BCHQ", "CHKD", "URCQ"):
        return Rail.CHECK
    if sub_family in _SEPA:
        return Rail.SEPA
    if sub_family in _ACH:
        return Rail.ACH
    if sub_family in _WIRE:
        return Rail.WIRE
    return Rail.OTHER


def _fees(fmt: str, node: Element, currency: str) -> int:
    """Charges of an entry or transaction in minor units (same currency only)."""
    charges = node.find("Chrgs")
    if charges is None:
        return 0
    total = _amount(fmt, charges.find("TtlChrgsAndTaxAmt"))
    if total is not None:
        return total.amount_minor if total.currency == currency else 0
    amounts = [_amount(fmt, a) for a in charges.findall("Rcrd/Amt") + charges.findall("Amt")]
    return sum(a.amount_minor for a in amounts if a is not None and a.currency == currency)


def _charges_included(node: Element) -> bool:
    # Nested single-tag findall runs in C; a multi-step path would not.
    return any(
        (flag.text or "").strip().lower() == "true"
        for charges in node.findall("Chrgs")
        for record in charges.findall("Rcrd")
        for flag in record.findall("ChrgInclInd")
    )


def _tx_amount(fmt: str, tx: Element) -> Money | None:
    for path in ("Amt", "AmtDtls/TxAmt/Amt", "AmtDtls/CntrValAmt/Amt"):
        found = _amount(fmt, tx.find(path))
        if found is not None:
            return found
    return None


@dataclass(frozen=True, slots=True)
class _EntryContext:
    """What one Ntry contributes to each of its transactions."""

    fmt: str
    booked_at: datetime
    credit: bool
    reversal: bool
    rail: Rail
    statement_id: str
    index: int
    servicer_ref: str
    entry_texts: tuple[str, ...]
    fee_minor: int
    charges_included: bool

    def txn(
        self,
        tx: Element | None,
        entry_amount: Money | None,
        part: int | None,
        extra: list[Element] | None = None,
    ) -> BankTxn:
        """A movement from one TxDtls (`part` set) or from the whole entry."""
        fmt = self.fmt
        amount = entry_amount if entry_amount is not None else _tx_amount(fmt, tx) if tx else None
        if amount is None:
            raise DecodeError(f"{fmt}.missing_amount", f"entry {self.index}")
        # A split transaction has its own direction; a single one follows the
        # entry (PostFinance marks debit entries' TxDtls CRDT).
        indicator = _text(tx, "CdtDbtInd") if part is not None else ""
        credit = _credit_flag(fmt, indicator) if indicator else self.credit
        fee = _fees(fmt, tx, amount.currency) if tx is not None and part is not None else 0
        fee = fee or (self.fee_minor if part is None else 0)
        if self.charges_included and part is None:
            amount = Money(amount.amount_minor + fee, amount.currency)
        references = [*_references(tx), *(t for e in extra or () for t in _references(e))]
        references.extend(t for t in self.entry_texts if t not in references)
        rail = _rail(tx)
        return BankTxn(
            entry_id=self._id(tx, part),
            booked_at=self.booked_at,
            amount=amount,
            credit=credit,
            reversal=self.reversal,
            rail=rail if rail is not Rail.OTHER else self.rail,
            payer_name=_payer_name(tx),
            payer_account=_payer_account(tx),
            references=tuple(references),
            remittance=_remittance(fmt, tx, amount.currency),
            fee_minor=fee,
            return_code=_text(tx, "RtrInf/Rsn/Cd") or _text(tx, "RtrInf/Rsn/Prtry") or None,
        )

    def _id(self, tx: Element | None, part: int | None) -> str:
        end_to_end = _text(tx, "Refs/EndToEndId")
        tx_ref = _text(tx, "Refs/AcctSvcrRef")
        if part is None:
            return entry_id(end_to_end, tx_ref or self.servicer_ref, self.statement_id, self.index)
        base = entry_id(None, self.servicer_ref, self.statement_id, self.index)
        return entry_id(end_to_end, tx_ref, base, part)


def _payer_name(tx: Element | None) -> str | None:
    for path in _PAYER_NAME_PATHS:
        name = _text(tx, path)
        if name:
            return name
    return None


def _payer_account(tx: Element | None) -> str | None:
    for path in _PAYER_ACCOUNT_PATHS:
        account = _text(tx, path)
        if account:
            return account
    return None


def _references(tx: Element | None) -> Iterator[str]:
    """Remittance texts: Ustrd lines, creditor references (RF...), extra info."""
    if tx is None:
        return
    for info in tx.findall("RmtInf"):
        for line in info.findall("Ustrd"):
            if line.text and line.text.strip():
                yield line.text.strip()
        for structured in info.findall("Strd"):
            ref = _RF_SPACES.sub("", _text(structured, "CdtrRefInf/Ref"))
            if ref:
                yield ref
            for doc in structured.findall("RfrdDocInf"):
                number = _text(doc, "Nb")
                if number:
                    yield number
            extra = _text(structured, "AddtlRmtInf")
            if extra:
                yield extra
    additional = _text(tx, "AddtlTxInf")
    if additional:
        yield additional


def _remittance(fmt: str, tx: Element | None, currency: str) -> tuple[RemittanceLine, ...]:
    """Per-invoice amounts from structured remittance (RfrdDocInf + RfrdDocAmt)."""
    if tx is None:
        return ()
    lines: list[RemittanceLine] = []
    structured_blocks = [s for info in tx.findall("RmtInf") for s in info.findall("Strd")]
    for structured in structured_blocks:
        number = _text(structured, "RfrdDocInf/Nb")
        amounts = structured.find("RfrdDocAmt")
        if not number or amounts is None:
            continue
        paid = _amount(fmt, amounts.find("RmtdAmt"))
        if paid is None:
            paid = _amount(fmt, amounts.find("DuePyblAmt"))
        if paid is None or paid.currency != currency:
            continue
        deduction, code = _deduction(fmt, amounts, currency)
        lines.append(RemittanceLine(number, paid.amount_minor, deduction, code))
    return tuple(lines)


def _deduction(fmt: str, amounts: Element, currency: str) -> tuple[int, str | None]:
    adjustment = _amount(fmt, _find(amounts, "AdjstmntAmtAndRsn/Amt"))
    if adjustment is not None and adjustment.currency == currency:
        return adjustment.amount_minor, _text(amounts, "AdjstmntAmtAndRsn/Rsn") or None
    discount = _amount(fmt, amounts.find("DscntApldAmt")) or _amount(
        fmt, _find(amounts, "DscntApldAmt/Amt")
    )
    if discount is not None and discount.currency == currency:
        return discount.amount_minor, "discount"
    return 0, None
