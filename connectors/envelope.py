"""Raw envelopes in, decoded events or rejections out: the connector contract.

Why a result value instead of exceptions: a bank file holds hundreds of entries
and one bad entry must not sink the others, and the flow must never crash on
input. A decoder returns `Decoded`; `DecodeError` is only raised inside a decoder
and turned into a `Rejection` by `reject_on_error` / the registry.

Exception tree:
    DecodeError (ValueError)   bad input; `reason` is a short stable code
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from arrecon.state.events import Event

__all__ = ["DecodeError", "Decoded", "RawEnvelope", "Rejection", "json_body", "text_body"]


class DecodeError(ValueError):
    """Input that cannot be decoded; `reason` is a stable, searchable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RawEnvelope:
    """One delivery exactly as received (DESIGN.md section 3).

    `body` is the provider's payload: a parsed JSON value when it came from a
    replay file, or the raw text/bytes as the receiver stored it. `position` is
    the replay line number or the journal/Kafka offset, for dead letters.
    """

    source: str
    kind: str
    received_at: datetime
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    position: int = 0


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why (part of) an envelope was refused; `ref` names the entry when known."""

    reason: str
    detail: str = ""
    ref: str = ""


@dataclass(frozen=True, slots=True)
class Decoded:
    """What a decoder made of one envelope.

    `ignored` lists things acknowledged but not turned into events (unknown
    Stripe event types, debit entries that are not reversals, ...), so they are
    counted rather than silently dropped.
    """

    events: tuple[Event, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    ignored: tuple[str, ...] = ()

    @classmethod
    def rejected(cls, reason: str, detail: str = "", ref: str = "") -> Decoded:
        return cls(rejections=(Rejection(reason, detail, ref),))


def json_body(envelope: RawEnvelope) -> Any:
    """The body as a JSON value; parses text/bytes, passes parsed values through."""
    body = envelope.body
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise DecodeError("malformed_json", str(error)) from None
    return body


def text_body(envelope: RawEnvelope) -> str:
    """The body as text (bank files, settlement reports); bytes must be UTF-8."""
    body = envelope.body
    if isinstance(body, str):
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            raise DecodeError("bad_encoding", str(error)) from None
    raise DecodeError("expected_text_body", f"got {type(body).__name__}")
