"""Bank CSV exports, read through a per-bank profile.

Why profiles: every bank's CSV differs in delimiter, decimal separator, date
format, sign convention and column names, but the meaning is the same. A
`CsvProfile` names those choices; `PROFILES` holds the registered ones and the
envelope header `x-arrecon-csv-profile` picks one by name (default profile
otherwise). CSV exports carry no balances, so there is no balance check.

Rows that cannot be read are rejected one by one (`csv.bad_row`), with the row
number as `ref`; the other rows still decode.
"""

from __future__ import annotations

import csv as csv_module
import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime

from arrecon.connectors.bank.common import BankTxn, Statement, assemble, entry_id, guarded, money
from arrecon.connectors.envelope import Decoded, DecodeError, RawEnvelope, Rejection, text_body
from arrecon.state.events import Rail

__all__ = ["DEFAULT_PROFILE", "PROFILES", "CsvProfile", "decode", "register_profile"]

FMT = "csv"
PROFILE_HEADER = "x-arrecon-csv-profile"


@dataclass(frozen=True, slots=True)
class CsvProfile:
    """How one bank writes its CSV export.

    `sign` is "signed" (negative amounts are debits), or "direction" (amounts
    are positive and `direction_column` holds a credit marker from
    `credit_markers`). `date_format` is a `strptime` format.
    """

    name: str
    date_column: str = "date"
    amount_column: str = "amount"
    currency_column: str | None = "currency"
    default_currency: str = "EUR"
    id_column: str | None = "id"
    payer_column: str | None = "payer"
    account_column: str | None = "payer_account"
    reference_columns: tuple[str, ...] = ("reference",)
    delimiter: str = ","
    decimal_separator: str = "."
    thousands_separator: str = ""
    date_format: str = "%Y-%m-%d"
    sign: str = "signed"
    direction_column: str | None = None
    credit_markers: tuple[str, ...] = ("C", "CR", "CREDIT")
    rail: Rail = Rail.OTHER


DEFAULT_PROFILE = CsvProfile(name="default")
PROFILES: dict[str, CsvProfile] = {
    "default": DEFAULT_PROFILE,
    # A typical German online-banking export: semicolons, decimal comma, dd.mm.yyyy.
    "de_semicolon": CsvProfile(
        name="de_semicolon",
        date_column="Buchungstag",
        amount_column="Betrag",
        currency_column="Waehrung",
        id_column="Kundenreferenz",
        payer_column="Beguenstigter/Zahlungspflichtiger",
        account_column="IBAN",
        reference_columns=("Verwendungszweck",),
        delimiter=";",
        decimal_separator=",",
        thousands_separator=".",
        date_format="%d.%m.%Y",
        rail=Rail.SEPA,
    ),
}


def register_profile(profile: CsvProfile) -> None:
    """Make `profile` selectable by name through the envelope header."""
    PROFILES[profile.name] = profile


def decode(envelope: RawEnvelope) -> Decoded:
    """Decode one CSV delivery with its profile; never raises."""
    return guarded(FMT, _decode, envelope)


def _decode(envelope: RawEnvelope) -> Decoded:
    name = {k.lower(): v for k, v in envelope.headers.items()}.get(PROFILE_HEADER, "default")
    profile = PROFILES.get(name.strip())
    if profile is None:
        raise DecodeError(f"{FMT}.unknown_profile", name[:60])
    text = text_body(envelope).lstrip("\ufeff")
    reader = csv_module.DictReader(io.StringIO(text, newline=""), delimiter=profile.delimiter)
    if not reader.fieldnames or profile.amount_column not in reader.fieldnames:
        raise DecodeError(f"{FMT}.missing_columns", f"no {profile.amount_column!r} column")
    # Rows without an id fall back to file digest + row number: stable when
    # the same file is delivered twice, distinct across files.
    digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    statement_id = f"csv:{profile.name}:{digest}"
    txns: list[BankTxn] = []
    rejections: list[Rejection] = []
    try:
        for number, row in enumerate(reader, start=2):
            try:
                txns.append(_row(profile, row, statement_id, number))
            except DecodeError as error:
                rejections.append(Rejection(f"{FMT}.bad_row", error.detail, f"row {number}"))
    except csv_module.Error as error:
        raise DecodeError(f"{FMT}.malformed", str(error)) from None
    if not txns and not rejections:
        raise DecodeError(f"{FMT}.empty", "no data rows")
    return assemble(FMT, [Statement(statement_id, tuple(txns), rejections=tuple(rejections))])


def _cell(row: dict[str | None, str | list[str] | None], column: str | None) -> str:
    if column is None:
        return ""
    value = row.get(column)
    return value.strip() if isinstance(value, str) else ""


def _row(
    profile: CsvProfile, row: dict[str | None, str | list[str] | None], sid: str, number: int
) -> BankTxn:
    raw_amount = _cell(row, profile.amount_column)
    if profile.thousands_separator:
        raw_amount = raw_amount.replace(profile.thousands_separator, "")
    raw_amount = raw_amount.replace(profile.decimal_separator, ".")
    currency = (_cell(row, profile.currency_column) or profile.default_currency).upper()
    signed = money(raw_amount, currency, FMT) if raw_amount else None
    if signed is None:
        raise DecodeError(f"{FMT}.bad_row", f"row {number}: empty amount")
    credit = _is_credit(profile, row, signed.amount_minor)
    references = tuple(t for t in (_cell(row, c) for c in profile.reference_columns) if t)
    return BankTxn(
        entry_id=entry_id(_cell(row, profile.id_column), None, sid, number),
        booked_at=_date(profile, _cell(row, profile.date_column), number),
        amount=signed if signed.amount_minor >= 0 else -signed,
        credit=credit,
        rail=profile.rail,
        payer_name=_cell(row, profile.payer_column) or None,
        payer_account=_cell(row, profile.account_column) or None,
        references=references,
    )


def _is_credit(
    profile: CsvProfile, row: dict[str | None, str | list[str] | None], amount_minor: int
) -> bool:
    if profile.sign == "direction":
        marker = _cell(row, profile.direction_column).upper()
        return marker in profile.credit_markers
    return amount_minor > 0


def _date(profile: CsvProfile, text: str, number: int) -> datetime:
    try:
        return datetime.strptime(text, profile.date_format).replace(tzinfo=UTC)
    except ValueError:
        raise DecodeError(f"{FMT}.bad_row", f"row {number}: bad date {text[:30]!r}") from None
