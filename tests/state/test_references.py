"""Reference normalisation and extraction: one table per rule, plus totality."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrecon.state.references import (
    RefKind,
    extract_references,
    is_valid_rf,
    normalize_reference,
    tail_key,
)

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("INV-2026-004711", "INV20264711"),
        ("inv2026 4711", "INV20264711"),
        ("INV 2026/4711", "INV20264711"),
        ("#1001", "1001"),
        ("PO-0088123", "PO88123"),
        ("in_1AbC", "IN1ABC"),
        ("000", "0"),
        ("", ""),
        ("  --  ", ""),
    ],
)
def test_normalisation(text: str, key: str) -> None:
    assert normalize_reference(text) == key


@pytest.mark.parametrize(
    ("text", "tail"),
    [("INV-2026-004711", "4711"), ("4711", "4711"), ("in_ABC", ""), ("INV-0000", "0")],
)
def test_tail(text: str, tail: str) -> None:
    assert tail_key(text) == tail


def _found(text: str) -> list[tuple[str, str, bool]]:
    return [(token.key, token.kind.value, token.labelled) for token in extract_references(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INV-2026-004711", [("INV20264711", "invoice", True)]),
        ("paid inv2026 4711 today", [("INV20264711", "invoice", True)]),
        ("INV 2026/4711", [("INV20264711", "invoice", True)]),
        (
            "INV-2026-004711/004712",
            [("INV20264711", "invoice", True), ("INV20264712", "invoice", True)],
        ),
        ("Rechnung 4711/12", [("4711", "invoice", True), ("4712", "invoice", True)]),
        ("inv 4711, 4712", [("INV4711", "invoice", True), ("4712", "invoice", True)]),
        ("Invoices 4711 & 4712", [("4711", "invoice", True), ("4712", "invoice", True)]),
        ("Invoices 123 and 321", [("123", "invoice", True), ("321", "invoice", True)]),
        ("PO 88123", [("PO88123", "po", True)]),
        ("P.O. 88123", [("88123", "po", True)]),
        ("Purchase order 88123", [("88123", "po", True)]),
        ("Payment for order #1001", [("1001", "order", True)]),
        ("#1001", [("1001", "order", True)]),
        ("Invoice #4711", [("4711", "invoice", True)]),
        ("RF18 5390 0754 7034 thanks", [("RF18539007547034", "rf", True)]),
        ("Invoice 7FE1103-155", [("7FE1103155", "invoice", True)]),
        ("thanks for your business", []),
    ],
)
def test_extraction(text: str, expected: list[tuple[str, str, bool]]) -> None:
    assert _found(text) == expected


@pytest.mark.parametrize(
    ("text", "expected_keys"),
    [
        # MT940 :86: with ?2x continuation lines and other sub-fields
        (
            "166?00SEPA?20EREF+INV-2026-00?214711?22SVWZ+Rechnung 4712?30BIC",
            ["INV20264711", "4712"],
        ),
        ("EREF+NOTPROVIDED SVWZ+INV-2026-004711", ["INV20264711"]),
        # mandate and creditor ids are not invoice references
        ("MREF+M-998877 CRED+DE98ZZZ09999999999 SVWZ+PO 88123", ["PO88123"]),
    ],
)
def test_sepa_fields(text: str, expected_keys: list[str]) -> None:
    labelled = [token.key for token in extract_references(text) if token.labelled]
    assert labelled == expected_keys


@pytest.mark.parametrize(
    ("reference", "valid"),
    [
        ("RF18 5390 0754 7034", True),
        ("RF18539007547034", True),
        ("RF18539007547035", False),  # one digit off
        ("RF712348231", True),
        ("RF00", False),
        ("XX18539007547034", False),
        ("RF1853900754703412345678901", False),  # longer than 25
    ],
)
def test_rf_checksum(reference: str, valid: bool) -> None:
    assert is_valid_rf(reference) is valid


def test_invalid_rf_is_not_an_rf_token() -> None:
    kinds = {token.kind for token in extract_references("RF18 5390 0754 7035")}
    assert RefKind.RF not in kinds


def test_sample_rf_references_are_checked() -> None:
    """RF references in the Finnish camt samples: every extracted RF validates."""
    path = SAMPLES / "camt052" / "moov-io-iso20022" / "FI_camt_052_sample.xml.xml"
    text = path.read_text(encoding="utf-8")
    refs = re.findall(r"<Ref>([^<]*)</Ref>", text)
    rf_tokens = [
        token for ref in refs for token in extract_references(ref) if token.kind is RefKind.RF
    ]
    assert all(is_valid_rf(token.text) for token in rf_tokens)
    rf_like = [ref for ref in refs if ref.upper().startswith("RF")]
    assert len(rf_tokens) == sum(is_valid_rf(ref) for ref in rf_like)


@given(st.text(max_size=300))
def test_extraction_is_total(text: str) -> None:
    tokens = extract_references(text)
    for token in tokens:
        assert token.key == normalize_reference(token.text)
        assert isinstance(token.kind, RefKind)


@given(st.text(alphabet="INVPOREF#/-&, .0123456789+?2", max_size=120))
def test_extraction_is_total_on_reference_alphabet(text: str) -> None:
    assert extract_references(text) == extract_references(text)


@given(
    st.tuples(
        st.sampled_from(["INV", "RE", "RG", "FA", "SO", "CN", "AR"]),
        st.integers(2000, 2099),
        st.from_regex(r"0{0,3}[1-9][0-9]{2,5}", fullmatch=True),
    ).map(lambda parts: f"{parts[0]}-{parts[1]}-{parts[2]}")
)
def test_separator_variants_meet_on_one_key(number: str) -> None:
    prefix, year, serial = number.split("-")
    variants = [
        number,
        f"{prefix.lower()}{year} {serial.lstrip('0')}",
        f"{prefix} {year}/{serial}",
    ]
    assert {normalize_reference(variant) for variant in variants} == {normalize_reference(number)}
    assert [token.key for token in extract_references(variants[2])] == [normalize_reference(number)]
