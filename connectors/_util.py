"""Parsing helpers shared by the provider decoders.

Why here: every decoder needs the same few checks (a field is present and of the
right type, an amount is exact in minor units, a timestamp is UTC) and every
failure must name *where* it happened, so a dead letter reads
`stripe.missing_field:data.object.amount` instead of `KeyError('amount')`.

All helpers raise `DecodeError`; `reject_on_error` turns any exception into a
`Rejection` so a decoder's public `decode` never raises.

Reason codes (stable, searchable; ids never appear in a reason, only in detail):
    <provider>.missing_field:<path>    required field absent or null
    <provider>.wrong_type:<path>       present with the wrong JSON type
    <provider>.bad_timestamp:<path>    not a parseable, zone-aware time
    <provider>.bad_amount:<path>       not a decimal amount
    <provider>.too_many_decimals:<path> more decimals than the currency has
    unknown_currency:<CODE>            not an ISO-4217 code we know
    negative_amount                    a sign that the provider never sends
    amount_out_of_range                beyond any real payment
    internal_error                     a bug: an unexpected exception
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from arrecon.connectors.envelope import Decoded, DecodeError, RawEnvelope
from arrecon.state.money import CURRENCY_EXPONENTS, MAX_ABS_MINOR, MoneyError, parse_major

__all__ = [
    "Fields",
    "add_days",
    "check_minor",
    "currency_code",
    "dedupe",
    "reject_on_error",
    "unix_time",
]

Decoder = Callable[[RawEnvelope], Decoded]

# Longest amount text we try to parse; longer is hostile or garbage.
_MAX_AMOUNT_CHARS = 40
# Largest float that still holds every integer exactly (2**53).
_MAX_SAFE_FLOAT = 2.0**53
# Unix seconds accepted as timestamps: 1970 .. 9999.
_MAX_UNIX_S = 253_402_300_799
# Known codes in either case -> upper case; a dict look-up on the hot path.
_KNOWN_CURRENCIES = {
    **{code: code for code in CURRENCY_EXPONENTS},
    **{code.lower(): code for code in CURRENCY_EXPONENTS},
}


def reject_on_error(decoder: Decoder) -> Decoder:
    """Wrap a decoder so that it returns rejections instead of raising.

    DecodeError keeps its reason; anything else is a bug in the decoder and
    becomes `internal_error` with the repr, so the flow never crashes on input.
    """

    @functools.wraps(decoder)
    def safe(envelope: RawEnvelope) -> Decoded:
        try:
            return decoder(envelope)
        except DecodeError as error:
            return Decoded.rejected(error.reason, error.detail)
        except Exception as error:  # the contract is "never raises"
            return Decoded.rejected("internal_error", _short_repr(error))

    return safe


def _short_repr(error: BaseException) -> str:
    text = repr(error)
    return text if len(text) <= 300 else text[:297] + "..."


def currency_code(value: object, path: str, provider: str, *, lower_ok: bool = True) -> str:
    """An ISO-4217 code we know, upper-cased; `unknown_currency:<CODE>` otherwise."""
    if not isinstance(value, str):
        if value is None:
            raise DecodeError(f"{provider}.missing_field:{path}")
        raise DecodeError(f"{provider}.wrong_type:{path}", f"expected string, got {_kind(value)}")
    code = value.upper() if lower_ok else value
    if code not in CURRENCY_EXPONENTS:
        raise DecodeError(f"unknown_currency:{_printable(code[:8])}", f"at {path}")
    return code


def check_minor(amount_minor: int, path: str, *, allow_negative: bool = False) -> int:
    """Bound an integer minor-unit amount; refuse signs the provider never sends."""
    if not -MAX_ABS_MINOR <= amount_minor <= MAX_ABS_MINOR:
        raise DecodeError("amount_out_of_range", f"at {path}")
    if amount_minor < 0 and not allow_negative:
        raise DecodeError("negative_amount", f"{amount_minor} at {path}")
    return amount_minor


def unix_time(value: int, path: str, provider: str) -> datetime:
    """Unix seconds (as Stripe sends them) to an aware UTC datetime."""
    if not 0 <= value <= _MAX_UNIX_S:
        raise DecodeError(f"{provider}.bad_timestamp:{path}", f"{value} out of range")
    return datetime.fromtimestamp(value, UTC)


def dedupe(values: tuple[str | None, ...] | list[str | None]) -> tuple[str, ...]:
    """Non-empty strings in first-seen order, without repeats."""
    seen: dict[str, None] = {}
    for value in values:
        if value:
            text = value.strip()
            if text:
                seen.setdefault(text, None)
    return tuple(seen)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _printable(text: str) -> str:
    return "".join(ch if ch.isascii() and ch.isprintable() else "?" for ch in text)


class Fields:
    """Typed field access that fails with the provider's prefix and the field's path.

    `path` arguments name the *container* ("data.object"); the key is appended,
    so errors read `stripe.missing_field:data.object.amount`. Required getters
    raise on absence and null; optional getters return None on absence, null or
    (for free text) a wrong type, because a hint is never worth a rejection.
    """

    __slots__ = ("provider",)

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def error(self, what: str, path: str, detail: str = "") -> DecodeError:
        return DecodeError(f"{self.provider}.{what}:{path}", detail)

    def _join(self, path: str, key: str) -> str:
        return f"{path}.{key}" if path else key

    def _wrong(self, path: str, expected: str, value: object) -> DecodeError:
        return self.error("wrong_type", path, f"expected {expected}, got {_kind(value)}")

    def mapping(self, value: object, path: str) -> dict[str, Any]:
        """`value` itself must be a JSON object."""
        if isinstance(value, dict):
            return value
        if value is None:
            raise self.error("missing_field", path or "body")
        raise self._wrong(path or "body", "object", value)

    def obj(self, parent: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
        value = parent.get(key)
        if type(value) is dict:
            return value
        return self.mapping(value, self._join(path, key))

    def opt_obj(self, parent: Mapping[str, Any], key: str) -> dict[str, Any] | None:
        value = parent.get(key)
        return value if isinstance(value, dict) else None

    def array(self, parent: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = parent.get(key)
        if isinstance(value, list):
            return value
        if value is None:
            raise self.error("missing_field", self._join(path, key))
        raise self._wrong(self._join(path, key), "array", value)

    def opt_array(self, parent: Mapping[str, Any], key: str) -> list[Any]:
        value = parent.get(key)
        return value if isinstance(value, list) else []

    def text(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        """A required, non-blank string (ids, numbers, codes)."""
        value = parent.get(key)
        if isinstance(value, str):
            if value.strip():
                return value
            raise self.error("missing_field", self._join(path, key), "blank")
        if value is None:
            raise self.error("missing_field", self._join(path, key))
        raise self._wrong(self._join(path, key), "string", value)

    def opt_text(self, parent: Mapping[str, Any], key: str) -> str | None:
        value = parent.get(key)
        if type(value) is str and value and not value.isspace():
            return value
        return None

    def ident(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        """An id the provider may send as a string or an integer (Shopify)."""
        value = parent.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return self.text(parent, key, path)

    def opt_ident(self, parent: Mapping[str, Any], key: str) -> str | None:
        value = parent.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return self.opt_text(parent, key)

    def integer(self, parent: Mapping[str, Any], key: str, path: str) -> int:
        value = parent.get(key)
        if type(value) is int:
            return value
        if value is None:
            raise self.error("missing_field", self._join(path, key))
        raise self._wrong(self._join(path, key), "integer", value)

    def opt_integer(self, parent: Mapping[str, Any], key: str, path: str) -> int | None:
        """Absent/null is None; present with another type is still an error."""
        if parent.get(key) is None:
            return None
        return self.integer(parent, key, path)

    def minor(
        self, parent: Mapping[str, Any], key: str, path: str, *, allow_negative: bool = False
    ) -> int:
        """An integer minor-unit amount (Stripe), bounded and sign-checked."""
        value = parent.get(key)
        if type(value) is int and 0 <= value <= MAX_ABS_MINOR:
            return value  # the common case, without building an error path
        value = self.integer(parent, key, path)
        return check_minor(value, self._join(path, key), allow_negative=allow_negative)

    def currency(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        value = parent.get(key)
        if type(value) is str:
            code = _KNOWN_CURRENCIES.get(value)
            if code is not None:
                return code
        return currency_code(value, self._join(path, key), self.provider)

    def unix(self, parent: Mapping[str, Any], key: str, path: str) -> datetime:
        value = parent.get(key)
        if type(value) is int and 0 <= value <= _MAX_UNIX_S:
            return datetime.fromtimestamp(value, UTC)
        value = self.integer(parent, key, path)
        return unix_time(value, self._join(path, key), self.provider)

    def opt_unix(self, parent: Mapping[str, Any], key: str, path: str) -> datetime | None:
        if parent.get(key) is None:
            return None
        return self.unix(parent, key, path)

    def major(
        self,
        parent: Mapping[str, Any],
        key: str,
        currency: str,
        path: str,
        *,
        allow_negative: bool = False,
    ) -> int:
        """A major-unit decimal amount ("12.34", or an exact JSON number) in minor units."""
        full = self._join(path, key)
        value = parent.get(key)
        if value is None:
            raise self.error("missing_field", full)
        return self.major_value(value, currency, full, allow_negative=allow_negative)

    def major_value(
        self, value: object, currency: str, path: str, *, allow_negative: bool = False
    ) -> int:
        amount = _to_decimal(value, path, self)
        if amount.is_finite():
            if amount.is_zero():
                amount = Decimal(0)
            elif amount.adjusted() > 18:
                raise DecodeError("amount_out_of_range", f"at {path}")
            elif amount.adjusted() < -20:
                raise self.error("too_many_decimals", path, "far below the minor unit")
        try:
            minor = parse_major(amount, currency).amount_minor
        except MoneyError as error:
            raise _money_error(error, path, self) from None
        return check_minor(minor, path, allow_negative=allow_negative)

    def iso_time(self, parent: Mapping[str, Any], key: str, path: str) -> datetime:
        full = self._join(path, key)
        value = parent.get(key)
        if value is None:
            raise self.error("missing_field", full)
        if not isinstance(value, str):
            raise self._wrong(full, "string", value)
        return self.parse_iso(value, full)

    def opt_iso_time(self, parent: Mapping[str, Any], key: str, path: str) -> datetime | None:
        if parent.get(key) is None:
            return None
        return self.iso_time(parent, key, path)

    def parse_iso(self, text: str, path: str) -> datetime:
        """RFC 3339 / ISO 8601 with a zone, or a bare date (taken as 00:00 UTC)."""
        stripped = text.strip()
        try:
            if len(stripped) == 10:
                day = date.fromisoformat(stripped)
                return datetime(day.year, day.month, day.day, tzinfo=UTC)
            moment = datetime.fromisoformat(stripped)
        except ValueError:
            raise self.error("bad_timestamp", path, _printable(stripped[:40])) from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise self.error("bad_timestamp", path, "no time zone")
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise self.error("bad_timestamp", path, "out of range") from None


def _to_decimal(value: object, path: str, fields: Fields) -> Decimal:
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > _MAX_AMOUNT_CHARS:
            raise fields.error("bad_amount", path, "empty or too long")
        try:
            return Decimal(text)
        except InvalidOperation:
            raise fields.error("bad_amount", path, _printable(text)) from None
    if isinstance(value, bool):
        raise fields.error("wrong_type", path, "expected decimal string, got boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if math.isnan(value) or abs(value) > _MAX_SAFE_FLOAT:
            raise DecodeError("amount_out_of_range", f"float {value!r} at {path}")
        # repr is the shortest text that round-trips, so 12.5 stays "12.5".
        return Decimal(repr(value))
    raise fields.error("wrong_type", path, f"expected decimal string, got {_kind(value)}")


def _money_error(error: MoneyError, path: str, fields: Fields) -> DecodeError:
    message = str(error)
    if "out of range" in message:
        return DecodeError("amount_out_of_range", f"at {path}")
    if "decimals" in message:
        return fields.error("too_many_decimals", path, message)
    return fields.error("bad_amount", path, message)


def add_days(moment: datetime, days: int) -> datetime:
    """`moment` plus whole days; refuses overflow rather than crashing."""
    try:
        return moment + timedelta(days=days)
    except OverflowError:
        raise DecodeError("bad_timestamp", f"{moment.isoformat()} + {days} days") from None
