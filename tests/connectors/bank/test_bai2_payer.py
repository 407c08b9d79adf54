"""BAI2 payer names: split out of a detail's text where its shape allows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrecon.connectors.bank import bai2
from arrecon.connectors.envelope import RawEnvelope
from arrecon.state.events import PaymentReceived

AT = datetime(2026, 3, 2, tzinfo=UTC)
SAMPLES = Path(__file__).resolve().parents[3] / ".." / "shared" / "samples" / "bai2"


def bai2_file(*details: str) -> str:
    """One USD account whose balances add up over credit details `16,142,<amount>,...`."""
    total = sum(int(detail.split(",")[2]) for detail in details if detail.startswith("16,"))
    lines = [
        "01,BANKUS33,ARRECON,260302,1800,1,,,2/",
        "02,ARRECON,BANKUS33,1,260302,1800,USD,2/",
        f"03,362930956,USD,010,100000,,,015,{100000 + total},,/",
        *details,
        f"49,{200000 + 2 * total},{len(details) + 2}/",
        f"98,{200000 + 2 * total},1,{len(details) + 4}/",
        f"99,{200000 + 2 * total},1,{len(details) + 6}/",
    ]
    return "\n".join(lines) + "\n"


def decode_payments(*details: str) -> list[PaymentReceived]:
    decoded = bai2.decode(RawEnvelope("bank", "bai2", AT, bai2_file(*details)))
    assert decoded.rejections == ()
    payments = [event for event in decoded.events if isinstance(event, PaymentReceived)]
    assert len(payments) == len(decoded.events)
    return payments


NAMES = [
    # (text of the 16 record, payer name)
    ("COBALT INDUSTRIES SAS INV-10017", "COBALT INDUSTRIES SAS"),
    ("Northwind Foods RE 100036", "Northwind Foods"),
    ("REDWOOD OUTFITTERS SAS Invoice INV-100068", "REDWOOD OUTFITTERS SAS"),
    ("Kestrel Systems inv-100117", "Kestrel Systems"),
    ("KESTREL FOODS INC P.O. 4510000101", "KESTREL FOODS INC"),
    ("Redwood Retail SAS INV100207", "Redwood Retail SAS"),
    ("Cobalt Trading INVOICE NO. INV-100203", "Cobalt Trading"),
    ("Globex Retail SAS Rechnung INV-100264", "Globex Retail SAS"),
    ("Kestrel Systems Inc INV-100190 + INVOICE NO. INV-100094 + RE 100054", "Kestrel Systems Inc"),
    ("O'Brien & Sons #1001", "O'Brien & Sons"),
    # mistyped references still end the name (O for 0, I for 1)
    ("Redwood Outfitters INV10O617", "Redwood Outfitters"),
    ("HOOLI SYSTEMS LTD INV-1O1644", "HOOLI SYSTEMS LTD"),
    ("Harbor Textiles SAS INV-I01652", "Harbor Textiles SAS"),
    ("Smith-Jones Co. INV 1001", "Smith-Jones Co"),
    ("Müller GmbH Rechnung 4711", "Müller GmbH"),
    ("RTP Incoming,From: SAMPLE INC, Remittance Info: RTR6", "SAMPLE INC"),
    # no reference after the words: nothing says where a name would end
    ("PROCEEDS OF LETTER OF CREDIT FROM THE ARAMCO OIL CO", None),
    ("TRANSFER   PAYPAL             PPD", None),
    # bank phrases, numbers first, tagged narratives, too short
    ("TFR 1020 0345678", None),
    ("LOCK BOX NO.68751", None),
    ("Wire Transfer Credit VISA INTERNATIONAL 900 METRO CENTER BLVD", None),
    ("1111111111 CHIME HUBBLE PPD", None),
    ("Visa Billing FTSRE Sept 22", None),
    ("ACH Credit Payment,Entry Description: EXP; -, SEC: CCD", None),
    ("ACH Credit Receipt Return,Return To: Test, Remittance Info", None),
    ("INV-100036", None),
    ("AB INV-100036", None),
    ("X2 Corp INV-1001", None),  # a word with digits that is no reference
]


@pytest.mark.parametrize(("text", "name"), NAMES)
def test_payer_name_from_the_detail_text(text: str, name: str | None) -> None:
    (pay,) = decode_payments(f"16,142,1000,Z,000010000091,E2E00000092Y6GB,{text}")
    assert pay.hints.payer_name == name
    assert pay.references == (text,)  # the full text stays for the matcher


def test_an_88_tag_names_the_payer_before_the_text() -> None:
    (pay,) = decode_payments(
        "16,142,1000,Z,BR1,CR1,COBALT INDUSTRIES SAS INV-10017", "88,OB:COBALT IND HOLDING"
    )
    assert pay.hints.payer_name == "COBALT IND HOLDING"
    assert pay.references == ("COBALT INDUSTRIES SAS INV-10017", "OB:COBALT IND HOLDING")


def test_generated_statement_lines_carry_names_and_references() -> None:
    payments = decode_payments(
        "16,142,444835,Z,000010000091,E2E00000092Y6GB,COBALT INDUSTRIES SAS INV-10017",
        "16,142,81809,Z,000010000092,E2E000000933DV2,REDWOOD OUTFITTERS SAS INV 100093",
    )
    got = [(p.payment_id, p.amount.amount_minor, p.hints.payer_name) for p in payments]
    assert got == [
        ("000010000091", 444835, "COBALT INDUSTRIES SAS"),
        ("000010000092", 81809, "REDWOOD OUTFITTERS SAS"),
    ]


@pytest.mark.parametrize(
    ("sample", "names"),
    [
        # library samples: bank phrases and numbers, never a payer by accident
        ("moov-io-bai2/sample1.txt", [None] * 5),
        ("moov-io-bai2/sample3.txt", [None] * 13),
        ("ministryofjustice-bai2/svb_us_example.bai2", [None, None]),
    ],
)
def test_samples_yield_no_false_payer(sample: str, names: list[str | None]) -> None:
    body = (SAMPLES / sample).read_text(errors="replace")
    decoded = bai2.decode(RawEnvelope("bank", "bai2", AT, body))
    got = [event.hints.payer_name for event in decoded.events if isinstance(event, PaymentReceived)]
    assert got == names


# Words that are neither a reference label nor a bank phrase.
WORDS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=10).filter(
    lambda word: word not in bai2._REF_LABELS and word not in bai2._BANK_PHRASES
)


@given(st.lists(WORDS, min_size=1, max_size=4), st.integers(100_000, 999_999))
def test_words_before_an_invoice_number_are_the_payer(words: list[str], number: int) -> None:
    name = " ".join(words)
    (pay,) = decode_payments(f"16,142,1000,Z,BR1,CR1,{name} INV-{number}")
    assert pay.hints.payer_name == name
    assert pay.references == (f"{name} INV-{number}",)
