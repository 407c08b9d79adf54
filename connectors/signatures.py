"""Request authentication: Stripe and Shopify webhook signatures, bearer tokens.

Why several secrets: a secret is rotated by adding the new one while the old one
is still in use, so every check accepts any configured secret. Time comes from
the caller (`now`), so the 300 s Stripe tolerance is testable and replays can
verify recorded deliveries "as of" their arrival.

Exception tree:
    SignatureError (ValueError)     `reason` is a short, stable metrics label
        BadSignatureError           missing/malformed header, no secret matches
        StaleTimestampError         signed, but outside the tolerance window
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from stripe import SignatureVerificationError, WebhookSignature

__all__ = [
    "STRIPE_TOLERANCE_S",
    "BadSignatureError",
    "SignatureError",
    "StaleTimestampError",
    "sign_shopify",
    "sign_stripe",
    "verify_bearer",
    "verify_shopify",
    "verify_stripe",
]

STRIPE_TOLERANCE_S = 300


class SignatureError(ValueError):
    """The request is not authentic or not fresh."""

    reason = "bad_signature"


class BadSignatureError(SignatureError):
    """No configured secret produced the presented signature."""

    def __init__(self, reason: str = "bad_signature") -> None:
        super().__init__(reason)
        self.reason = reason


class StaleTimestampError(SignatureError):
    """A valid signature over a timestamp too far from now (replay protection)."""

    reason = "stale_timestamp"

    def __init__(self, timestamp: int, now_s: float) -> None:
        super().__init__(f"timestamp {timestamp} is {now_s - timestamp:.0f} s from now")
        self.timestamp = timestamp


def _stripe_timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            return int(value)
    raise BadSignatureError("malformed_signature_header")


def verify_stripe(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    now: datetime,
    tolerance_s: int = STRIPE_TOLERANCE_S,
) -> int:
    """Check a `Stripe-Signature` header with the Stripe SDK; returns its timestamp.

    The SDK checks the HMAC; its own tolerance check reads the wall clock, so
    freshness is checked here against the injected `now` instead (both ways: a
    timestamp far in the future is as suspicious as an old one).
    """
    if not header:
        raise BadSignatureError("missing_signature")
    for secret in secrets:
        try:
            WebhookSignature.verify_header(payload, header, secret, tolerance=None)
        except SignatureVerificationError:
            continue
        except UnicodeDecodeError:
            raise BadSignatureError() from None
        break
    else:
        raise BadSignatureError()
    timestamp = _stripe_timestamp(header)
    now_s = now.timestamp()
    if abs(now_s - timestamp) > tolerance_s:
        raise StaleTimestampError(timestamp, now_s)
    return timestamp


def sign_stripe(payload: bytes | str, secret: str, timestamp: int) -> str:
    """A `Stripe-Signature` header value, as Stripe computes it (tests, load driver)."""
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    header: str = WebhookSignature.generate_signature_header(text, secret, timestamp)
    return header


def _shopify_digest(payload: bytes, secret: str) -> bytes:
    return base64.b64encode(hmac.new(secret.encode(), payload, hashlib.sha256).digest())


def verify_shopify(payload: bytes, header: str | None, secrets: Sequence[str]) -> None:
    """Check `X-Shopify-Hmac-Sha256`: base64 HMAC-SHA256 of the raw body."""
    if not header:
        raise BadSignatureError("missing_signature")
    presented = header.strip().encode("ascii", "replace")
    matches = [hmac.compare_digest(_shopify_digest(payload, s), presented) for s in secrets]
    if not any(matches):
        raise BadSignatureError()


def sign_shopify(payload: bytes, secret: str) -> str:
    """An `X-Shopify-Hmac-Sha256` header value (tests, load driver)."""
    return _shopify_digest(payload, secret).decode("ascii")


def verify_bearer(header: str | None, tokens: Sequence[str]) -> None:
    """Check `Authorization: Bearer <token>` against any configured token."""
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise BadSignatureError("missing_token")
    candidate = presented.strip().encode()
    matches = [hmac.compare_digest(candidate, token.encode()) for token in tokens]
    if not any(matches):
        raise BadSignatureError("bad_token")
