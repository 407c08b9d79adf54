"""Invoice, order and PO references: normalisation and extraction from free text.

Why: payers quote the same invoice as "INV-2026-004711", "inv2026 4711" or
"INV 2026/4711"; the matcher needs one key for all of them, and it needs the
references hidden in bank narratives ("Invoices 4711 & 4712", SEPA "SVWZ+...",
RF creditor references) as typed tokens.

Key forms (all upper case, alphanumerics only):
    key      alpha and numeric runs, leading zeros of numeric runs dropped
             ("INV-2026-004711" -> "INV20264711")
    compact  alphanumerics as written ("INV-2026-004711" -> "INV2026004711")
    core     `key` without its leading letters ("INV20264711" -> "20264711")
    tail     the last numeric run as written ("INV-2026-004711" -> "4711")

Everything here is total: any `str` gives a (possibly empty) result, never an
exception. Regexes are compiled once at import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from string import ascii_uppercase
from typing import Final

__all__ = [
    "MAX_TEXT_CHARS",
    "RefKind",
    "RefToken",
    "compact_key",
    "core_key",
    "extract_references",
    "is_valid_rf",
    "normalize_reference",
    "tail_key",
]

# Longer texts are cut: bounds the work per payment; real narratives are < 1 KiB.
MAX_TEXT_CHARS = 4096
# Tokens per text: a bound for the matcher's per-token work.
MAX_TOKENS = 32
# Memo sizes: the same invoice numbers and narratives are normalised and mined
# again on every retry of waiting cash and every re-resolve of a parked payment.
_KEY_CACHE_SIZE = 1 << 17
_TEXT_CACHE_SIZE = 1 << 15


class RefKind(StrEnum):
    INVOICE = "invoice"
    PO = "po"
    RF = "rf"
    ORDER = "order"


@dataclass(init=False, slots=True)
class RefToken:
    """A reference found in text; read-only (compiled `__init__`: see `arrecon.state`).

    `labelled` is True when the text said what it is (a keyword such as
    "Invoice", "PO", "#", a letter prefix, a SEPA EREF, a valid RF checksum);
    bare numbers in a narrative are unlabelled and only trusted on exact hits.
    """

    text: Final[str]
    key: Final[str]
    kind: Final[RefKind]
    labelled: Final[bool]

    def __init__(
        self, text: str, key: str, kind: RefKind = RefKind.INVOICE, labelled: bool = False
    ) -> None:
        self.text = text
        self.key = key
        self.kind = kind
        self.labelled = labelled

    @property
    def compact(self) -> str:
        return compact_key(self.text)

    @property
    def core(self) -> str:
        return core_key(self.key)

    @property
    def tail(self) -> str:
        return tail_key(self.text)


_NON_ALNUM = re.compile(r"[^0-9A-Z]+")
_RUNS = re.compile(r"[A-Z]+|[0-9]+")
_TRAILING_DIGITS = re.compile(r"[0-9]+$")


@lru_cache(maxsize=_KEY_CACHE_SIZE)
def compact_key(text: str) -> str:
    """Upper-case alphanumerics as written (leading zeros kept); memoised like
    `normalize_reference` (a payment's references are keyed several times)."""
    return _NON_ALNUM.sub("", text.upper())


@lru_cache(maxsize=_KEY_CACHE_SIZE)
def normalize_reference(text: str) -> str:
    """The matching key: case, separators, spaces and `#` removed, numeric runs
    without leading zeros, so "INV-2026-004711", "inv2026 4711" and
    "INV 2026/4711" all give "INV20264711"."""
    runs = _RUNS.findall(text.upper())
    return "".join(run.lstrip("0") or "0" if run[0].isdigit() else run for run in runs)


def core_key(key: str) -> str:
    """`key` without leading letters: "PO88123" and "88123" meet on "88123"."""
    return key.lstrip(ascii_uppercase)


@lru_cache(maxsize=_KEY_CACHE_SIZE)
def tail_key(text: str) -> str:
    """Last numeric run as written, without leading zeros ("" when the text does
    not end in digits): "INV-2026-004711" -> "4711"."""
    found = _TRAILING_DIGITS.search(compact_key(text) if text else "")
    if found is None:
        return ""
    runs = _RUNS.findall(text.upper())
    return (runs[-1].lstrip("0") or "0") if runs and runs[-1].isdigit() else ""


def is_valid_rf(reference: str) -> bool:
    """ISO 11649 creditor reference: "RF", 2 check digits, 1-21 alphanumerics,
    and the ISO 7064 mod-97 check (moved to the end, letters as 10..35) is 1."""
    value = compact_key(reference)
    if not 5 <= len(value) <= 25 or not value.startswith("RF") or not value[2:4].isdigit():
        return False
    rearranged = value[4:] + value[:4]
    digits = "".join(str(int(char, 36)) for char in rearranged)
    return int(digits) % 97 == 1


# --- extraction -------------------------------------------------------------

# MT940 :86: sub-fields: ?20..?29 continue the purpose text (join them), others
# (?30 BIC, ?31 IBAN, ?32 name, ...) start unrelated fields (break them).
_SUBFIELD_CONT = re.compile(r"\?2\d")
_SUBFIELD_OTHER = re.compile(r"\?\d\d")
_SEPA_SPLIT = re.compile(
    r"(?<![A-Z])(EREF|KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|IBAN|BIC|COAM|OAMT|SQTP|PURP|RREF|BREF)\+"
)
_SEPA_REF_FIELDS = frozenset({"EREF", "KREF"})
_SEPA_TEXT_FIELDS = frozenset({"SVWZ"})

_STOPWORDS = r"(?:AND|UND|ET|NO|NR|NUM|NBR|OF|FOR|TO|THE|PAY|DATE|DUE|REF|PER|VIA|FROM|ON|AT)"
_PO_WORDS = r"(?:P\.\s?O\.?|PO|PURCHASE\s+ORDER|BESTELLNR|BESTELLUNG)"
_INV_WORDS = r"(?:INVOICES?|INVS?|RECHNUNGEN|RECHNUNGSNR|RECHNUNG|FACTURES?|FACT|FAKTURA|BILLS?)"
_ORDER_WORDS = r"(?:ORDERS?|AUFTRAG)"
_WB = r"(?![A-Z0-9])"

_TOKENS = re.compile(
    rf"""
    (?<![A-Z0-9])(?:
        (?P<rf>RF\d\d(?:\ ?[A-Z0-9]{{1,4}}){{1,6}})
      | (?P<ref>
            (?:[A-Z]{{1,10}}+[-_./#]?|(?!{_STOPWORDS}\s)[A-Z]{{1,5}}+\s)?
            \d[A-Z0-9]*
            (?:(?:[-_.]|/(?=\d)|\s(?=\d))[A-Z0-9]+)*
        )
      | (?P<po>{_PO_WORDS}){_WB}
      | (?P<inv>{_INV_WORDS}){_WB}
      | (?P<order>{_ORDER_WORDS}){_WB}
      | (?P<filler>(?:NO|NR|NUMBER|NUM|NBR|ID)\.?){_WB}
      | (?P<conn>AND|UND|ET){_WB}
      | (?P<word>[A-Z]+)
    )
    | (?P<hash>\#)
    | (?P<sep>[,&+;/])
    """,
    re.VERBOSE,
)
_PREFIX_KINDS = (
    (re.compile(rf"^{_PO_WORDS}[\s\-_./#]?$"), RefKind.PO),
    (re.compile(rf"^{_INV_WORDS}[\s\-_./#]?$"), RefKind.INVOICE),
    (re.compile(rf"^{_ORDER_WORDS}[\s\-_./#]?$"), RefKind.ORDER),
)
_KEYWORD_KINDS = {"po": RefKind.PO, "inv": RefKind.INVOICE, "order": RefKind.ORDER}
_REF_PARTS = re.compile(r"[A-Z0-9]+|[-_./]|\s+")
_PREFIX_SPLIT = re.compile(r"^([A-Z]+(?:[-_./#]|\s)?)?(\d.*)$", re.DOTALL)
_YEAR = re.compile(r"^(?:19|20)\d\d$")


def _rf_tokens(candidate: str) -> RefToken | None:
    """A valid RF reference in `candidate`, dropping trailing groups that the
    greedy pattern may have taken from the following words."""
    groups = candidate.split(" ")
    while groups:
        text = " ".join(groups)
        if is_valid_rf(text):
            return RefToken(text=text, key=compact_key(text), kind=RefKind.RF, labelled=True)
        groups.pop()
    return None


def _split_ref(raw: str) -> list[str]:
    """Split a greedy reference match into the references it names.

    "-", "_", "." always join; "/" and a space join only right after a leading
    year-like run ("INV 2026/4711"); otherwise they list another reference,
    and after "/" the new one inherits the shared prefix
    ("INV-2026-004711/004712" -> "...004712", "4711/12" -> "4712").
    """
    match = _PREFIX_SPLIT.match(raw)
    if match is None:
        return [raw]
    refs: list[str] = []
    current = match.group(1) or ""
    last_part = ""
    runs = 0
    overlay: str | None = None
    for part in _REF_PARTS.findall(match.group(2)):
        if part[0].isalnum():
            run = part if overlay is None else _overlay(overlay, part)
            current, last_part, runs, overlay = current + run, run, runs + 1, None
            continue
        separator = " " if part.isspace() else part
        if separator not in "/ " or (runs == 1 and _YEAR.match(last_part)):
            current += separator
            continue
        refs.append(current)
        if separator == "/":
            current, runs, overlay = current[: len(current) - len(last_part)], runs - 1, last_part
        else:
            current, runs = "", 0
    refs.append(current)
    return [ref for ref in refs if ref]


def _overlay(previous: str, run: str) -> str:
    """A shorter run replaces the tail of the previous one ("4711/12" -> "4712")."""
    return previous[: len(previous) - len(run)] + run if len(run) < len(previous) else run


def _ref_kind(ref: str, label: RefKind | None, hashed: bool) -> tuple[RefKind, bool, bool]:
    """(kind, labelled, prefix_is_keyword) for one reference."""
    prefix = _prefix_of(ref)
    if prefix:
        for pattern, kind in _PREFIX_KINDS:
            if pattern.match(prefix):
                return kind, True, True
    if label is not None:
        return label, True, False
    if hashed:
        return RefKind.ORDER, True, False
    return RefKind.INVOICE, bool(prefix), False


def _scan(text: str, out: dict[tuple[RefKind, str], RefToken]) -> None:
    """Walk the token stream; a keyword labels the references that follow it
    until an unrelated word ends the list."""
    label: RefKind | None = None
    hashed = False
    for match in _TOKENS.finditer(text):
        group = match.lastgroup
        value = match.group(0)
        if group == "rf":
            token = _rf_tokens(value)
            if token is not None:
                out.setdefault((token.kind, token.key), token)
                label, hashed = None, False
                continue
            group = "ref"
        if group == "ref":
            for ref in _split_ref(value.strip()):
                kind, labelled, keyword = _ref_kind(ref, label, hashed)
                key = normalize_reference(ref)
                if len(key) >= 3 or labelled:
                    out.setdefault((kind, key), RefToken(ref, key, kind, labelled))
                if keyword:
                    label = kind
            hashed = False
        elif group in _KEYWORD_KINDS:
            label, hashed = _KEYWORD_KINDS[group], False
        elif group == "hash":
            hashed = True
        elif group == "word":
            label, hashed = None, False
        if len(out) >= MAX_TOKENS:
            return


def _prefix_of(ref: str) -> str:
    match = _PREFIX_SPLIT.match(ref)
    return (match.group(1) or "") if match else ""


def _sepa_fields(text: str) -> tuple[list[str], list[str]]:
    """Split SEPA-structured text into (texts to scan, end-to-end references)."""
    if "+" not in text:  # every SEPA field is "NAME+": skip the split
        return [text], []
    pieces = _SEPA_SPLIT.split(text)
    scan = [pieces[0]]
    refs: list[str] = []
    for index in range(1, len(pieces) - 1, 2):
        field_name, value = pieces[index], pieces[index + 1].strip()
        if field_name in _SEPA_REF_FIELDS:
            if value and value != "NOTPROVIDED" and any(c.isdigit() for c in value):
                refs.append(value)
            scan.append(value)
        elif field_name in _SEPA_TEXT_FIELDS:
            scan.append(value)
    return scan, refs


def extract_references(text: str) -> tuple[RefToken, ...]:
    """Candidate references in `text`, in order of appearance, deduplicated.

    Handles lists ("inv 4711, 4712", "Invoices 4711 & 4712"), shared prefixes
    ("INV-2026-004711/004712"), PO numbers ("PO 88123"), order names ("#1001"),
    RF creditor references (checksum verified) and SEPA/MT940 "EREF+"/"SVWZ+"
    fields. Never raises for a `str`.
    """
    if not isinstance(text, str) or not text:
        return ()
    return _extract(text)


@lru_cache(maxsize=_TEXT_CACHE_SIZE)
def _extract(text: str) -> tuple[RefToken, ...]:
    """`extract_references` for a non-empty `str`; memoised (tokens are immutable)."""
    upper = text[:MAX_TEXT_CHARS].upper()
    if "?" in upper:  # MT940 sub-fields
        upper = _SUBFIELD_OTHER.sub(" ; ", _SUBFIELD_CONT.sub("", upper))
    out: dict[tuple[RefKind, str], RefToken] = {}
    scan, sepa_refs = _sepa_fields(upper)
    for ref in sepa_refs:
        key = normalize_reference(ref)
        out.setdefault((RefKind.INVOICE, key), RefToken(ref, key, RefKind.INVOICE, True))
    for piece in scan:
        if len(out) >= MAX_TOKENS:
            break
        _scan(piece, out)
    return tuple(out.values())[:MAX_TOKENS]
