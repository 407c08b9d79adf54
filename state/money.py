"""Money as integer minor units plus an ISO-4217 currency.

Why: floats lose cents and currencies differ in their number of decimals (JPY 0,
KWD 3). Amounts are `int` everywhere in the core; `Decimal` appears only here, at
the parsing edge, and any text that would need rounding is refused rather than
rounded.

Errors: `MoneyError` (a ValueError) for unknown currencies, mixed currencies and
amounts that cannot be expressed exactly in minor units.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = [
    "CURRENCY_EXPONENTS",
    "Money",
    "MoneyError",
    "exponent",
    "format_minor",
    "parse_major",
]


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


# ISO 4217 minor-unit exponents for active currencies. Currencies not listed are
# refused: guessing "2" for an unknown code would silently scale amounts by 100.
_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD "
    "BTN BWP BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB "
    "EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD "
    "KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU "
    "MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR "
    "RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB "
    "TJS TMT TOP TRY TTD TWD TZS UAH USD UZS VES WST XCD YER ZAR ZMW ZWL"
)

CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_EXPONENT_0.split(), 0),
    **dict.fromkeys(_EXPONENT_2.split(), 2),
    **dict.fromkeys(_EXPONENT_3.split(), 3),
    **dict.fromkeys(_EXPONENT_4.split(), 4),
}
# One string object per code: a decoded payload's "USD" is a fresh 52-byte
# string, and long-lived state (an open invoice, waiting cash) would keep one each.
_CODES: dict[str, str] = {code: code for code in CURRENCY_EXPONENTS}


def exponent(currency: str) -> int:
    """Number of decimals of `currency`'s minor unit; MoneyError when unknown."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise MoneyError(f"unknown currency {currency!r}") from None


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An exact amount: `amount_minor` units of `currency`'s minor unit."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount_minor) is not int:
            raise MoneyError(f"amount_minor must be int, got {type(self.amount_minor).__name__}")
        code = _CODES.get(self.currency)
        if code is None:
            exponent(self.currency)  # raises the unknown-currency error
        elif code is not self.currency:
            object.__setattr__(self, "currency", code)  # the shared copy (see _CODES)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"currency mismatch: {self.currency} vs {other.currency}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def __str__(self) -> str:
        return f"{format_minor(self.amount_minor, self.currency)} {self.currency}"


# Larger than any real payment (10^15 major units); bounds hostile input early.
MAX_ABS_MINOR = 10**18


def parse_major(text: str | int | Decimal, currency: str) -> Money:
    """Parse a major-unit amount ("12.34", "-5", "1,50" is refused) exactly.

    Why Decimal: it is exact for the decimal strings providers send; a value with
    more decimals than the currency allows (unless they are zeros) is an error.
    """
    currency = currency.upper() if isinstance(currency, str) else currency
    places = exponent(currency)
    try:
        value = Decimal(text.strip()) if isinstance(text, str) else Decimal(text)
    except (InvalidOperation, ValueError):
        raise MoneyError(f"not a decimal amount: {text!r}") from None
    if not value.is_finite():
        raise MoneyError(f"not a finite amount: {text!r}")
    scaled = value.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{text!r} has more than {places} decimals for {currency}")
    minor = int(scaled)
    if abs(minor) > MAX_ABS_MINOR:
        raise MoneyError(f"amount out of range: {text!r}")
    return Money(minor, currency)


def format_minor(amount_minor: int, currency: str) -> str:
    """Render minor units as a major-unit decimal string ("-12.30")."""
    places = exponent(currency)
    if places == 0:
        return str(amount_minor)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"
