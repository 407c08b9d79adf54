"""Mutated real samples: every decoder returns (events or rejections), never raises."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrecon.connectors.bank import bai2, camt, csv, mt940
from arrecon.connectors.envelope import Decoded, RawEnvelope
from arrecon.state.events import PaymentReceived

SAMPLES = Path(__file__).resolve().parents[3] / ".." / "shared" / "samples"
SEEDS = {
    "camt053": [
        "camt053/genkgo-camt/camt053.v2.with-account-name.xml",
        "camt054/genkgo-camt/camt054.v4.xml",
        "camt053/moov-io-iso20022/camt.053_P_CH2909000000250094239_1110092698_0_2020112503071366.xml",
    ],
    "mt940": [
        "mt940/sandermarechal-jejik-mt940/postfinance.txt",
        "mt940/wolph-mt940/betterplace/with_binary_character.sta",
        "mt940/wolph-mt940/self-provided/february_30.sta",
    ],
    "bai2": [
        "bai2/ministryofjustice-bai2/svb_us_example.bai2",
        "bai2/moov-io-bai2/sample1.txt",
        "bai2/moov-io-bai2/sample2.txt",
    ],
}
CSV_SEED = (
    "date,amount,currency,id,payer,payer_account,reference\n"
    "2026-03-01,120.50,EUR,TX1,ACME,DE89370400440532013000,INV-1\n"
    "2026-03-02,-3.00,EUR,TX2,Bank,,fee\n"
)
DECODERS: dict[str, Callable[[RawEnvelope], Decoded]] = {
    "camt053": camt.decode,
    "mt940": mt940.decode,
    "bai2": bai2.decode,
    "csv": csv.decode,
}


def _texts(kind: str) -> list[str]:
    if kind == "csv":
        return [CSV_SEED]
    return [(SAMPLES / p).read_bytes().decode("utf-8", "replace") for p in SEEDS[kind]]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[str]) -> str:
    """A seed with truncations, flipped characters and deleted lines."""
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "delete_line", "duplicate_line"]))
        if not text:
            break
        at = draw(st.integers(0, len(text) - 1))
        if op == "truncate":
            text = text[:at]
        elif op == "flip":
            char = draw(st.sampled_from("0123456789,./:<>?-+CDRx\n\x01 é"))
            text = text[:at] + char + text[at + 1 :]
        else:
            lines = text.split("\n")
            k = at % len(lines)
            lines[k : k + 1] = [] if op == "delete_line" else [lines[k], lines[k]]
            text = "\n".join(lines)
    return text


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_mutations_never_raise(kind: str) -> None:
    decode = DECODERS[kind]

    @settings(
        max_examples=10_000,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutated(_texts(kind)))
    def check(text: str) -> None:
        decoded = decode(RawEnvelope("bank", kind, datetime(2026, 1, 1, tzinfo=UTC), text))
        assert isinstance(decoded, Decoded)
        for event in decoded.events:
            if isinstance(event, PaymentReceived):
                assert event.amount.amount_minor > 0
                assert event.occurred_at.tzinfo is not None

    check()
