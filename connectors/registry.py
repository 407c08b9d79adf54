"""One entry point for every decoder: `decode_envelope(envelope) -> Decoded`.

Why a registry: the flow must not know providers. It dispatches on
(source, kind), imports bank parsers lazily (each is optional until present:
a missing module is a `decoder_unavailable` rejection, not an import crash),
and wraps every call so any unexpected exception becomes
`Rejection("internal_error", repr)`: the flow never crashes on input.

Rejection reasons added here: `unknown_source`, `unknown_kind`,
`decoder_unavailable`, `internal_error`.

`DecodeCounters` tallies events, rejections and ignored items per source, so
acknowledged-but-unused deliveries are counted rather than silently dropped;
labels are bounded (sources, event type names, reason codes; never ids).
"""

from __future__ import annotations

import importlib
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from arrecon.connectors import amazon, erp, shopify, stripe
from arrecon.connectors.envelope import Decoded, RawEnvelope

__all__ = ["BANK_KINDS", "COUNTERS", "DecodeCounters", "decode_envelope", "decoder_for"]

Decoder = Callable[[RawEnvelope], Decoded]

# Bank file kinds -> module under arrecon.connectors.bank exposing `decode`.
BANK_KINDS: dict[str, str] = {
    "camt052": "camt",
    "camt053": "camt",
    "camt054": "camt",
    "mt940": "mt940",
    "mt942": "mt940",
    "bai2": "bai2",
    "csv": "csv",
}
_BANK_PACKAGE = "arrecon.connectors.bank"
_MAX_LABEL_CHARS = 80
_MAX_LABELS = 1000
_SOURCES = frozenset({"stripe", "shopify", "erp", "amazon", "bank", "settlement"})


@dataclass(slots=True)
class DecodeCounters:
    """Running totals of what decoding produced; thread-safe, cheap to snapshot."""

    events: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, source: str, decoded: Decoded) -> None:
        with self._lock:
            for event in decoded.events:
                _bump(self.events, f"{source}:{type(event).__name__}")
            for rejection in decoded.rejections:
                _bump(self.rejections, f"{source}:{_label(rejection.reason)}")
            for item in decoded.ignored:
                _bump(self.ignored, _label(item))

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                "events": dict(self.events),
                "rejections": dict(self.rejections),
                "ignored": dict(self.ignored),
            }


COUNTERS = DecodeCounters()


def _bump(counter: Counter[str], label: str) -> None:
    """Count under `label`, or under "other" once a counter holds too many labels."""
    if label not in counter and len(counter) >= _MAX_LABELS:
        label = "other"
    counter[label] += 1


def _label(text: str) -> str:
    """Keep a counter label bounded: reason codes lose their path suffix."""
    head = text.split(":", 2)
    bounded = ":".join(head[:2]) if text.startswith(("stripe:", "shopify:", "amazon:")) else head[0]
    return bounded[:_MAX_LABEL_CHARS]


def _stripe_accepts(kind: str) -> bool:
    return kind in stripe.EVENT_KINDS or kind == stripe.BALANCE_TRANSACTIONS_KIND or "." in kind


_bank_cache: dict[str, Decoder | None] = {}
_bank_lock = threading.Lock()


def _bank_decoder(module_name: str) -> Decoder | None:
    """`arrecon.connectors.bank.<module>.decode`, imported once; None while absent."""
    with _bank_lock:
        if module_name in _bank_cache:
            return _bank_cache[module_name]
        try:
            module = importlib.import_module(f"{_BANK_PACKAGE}.{module_name}")
        except ModuleNotFoundError as error:
            if error.name != f"{_BANK_PACKAGE}.{module_name}":
                raise  # the module exists but one of its imports is broken: a real bug
            decoder = None
        else:
            found = getattr(module, "decode", None)
            decoder = found if callable(found) else None
        _bank_cache[module_name] = decoder
        return decoder


def decoder_for(source: str, kind: str) -> Decoder | Decoded:
    """The decoder for (source, kind), or the rejection explaining why there is none."""
    if source == "stripe":
        return stripe.decode if _stripe_accepts(kind) else _unknown_kind(source, kind)
    if source == "shopify":
        return shopify.decode if kind in shopify.KINDS else _unknown_kind(source, kind)
    if source == "erp":
        return erp.decode if kind in erp.KINDS else _unknown_kind(source, kind)
    if source == "amazon":
        return amazon.decode if kind == amazon.KIND else _unknown_kind(source, kind)
    if source == "settlement":
        return _settlement_decoder(kind)
    if source == "bank":
        module_name = BANK_KINDS.get(kind)
        if module_name is None:
            return _unknown_kind(source, kind)
        decoder = _bank_decoder(module_name)
        if decoder is None:
            return Decoded.rejected("decoder_unavailable", f"{_BANK_PACKAGE}.{module_name}")
        return decoder
    return Decoded.rejected("unknown_source", repr(str(source)[:_MAX_LABEL_CHARS]))


def _settlement_decoder(kind: str) -> Decoder | Decoded:
    """The receiver's /feeds/settlement: Amazon reports and recorded Stripe list answers."""
    if kind == amazon.KIND:
        return amazon.decode
    if kind == "balance_transactions":
        return stripe.decode
    return _unknown_kind("settlement", kind)


def _unknown_kind(source: str, kind: str) -> Decoded:
    return Decoded.rejected("unknown_kind", f"{source} kind {str(kind)[:_MAX_LABEL_CHARS]!r}")


def decode_envelope(envelope: RawEnvelope, counters: DecodeCounters | None = COUNTERS) -> Decoded:
    """Decode any delivery; never raises. Pass `counters=None` to skip counting."""
    try:
        found = decoder_for(envelope.source, envelope.kind or "")
        decoded = found if isinstance(found, Decoded) else found(envelope)
        if not isinstance(decoded, Decoded):
            decoded = Decoded.rejected("internal_error", f"decoder returned {type(decoded)!r}")
    except Exception as error:  # the flow must never crash on input
        decoded = Decoded.rejected("internal_error", repr(error)[:300])
    if counters is not None:
        source = envelope.source if envelope.source in _SOURCES else "other"
        counters.record(source, decoded)
    return decoded
