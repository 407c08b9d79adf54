"""Every bank sample in ../shared/samples (beside the repository) through its decoder.

Each row: file, envelope kind, events, sum of credited minor units
(PaymentReceived + PayoutCredited), reversals, rejection reasons. Totals were
taken from reading the files: statement credits whose opening + credits -
debits equals the closing balance; files whose balances do not add up (many
library-test stubs) are expected to be rejected with `<fmt>.balance_mismatch`.
camt.052 intraday reports are rejected by design
(`camt.unsupported_message:camt.052`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from arrecon.connectors.bank import bai2, camt, mt940
from arrecon.connectors.envelope import Decoded, RawEnvelope
from arrecon.state.events import PaymentReceived, PaymentReversed, PayoutCredited

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"
DECODERS = {
    "bai2": bai2.decode,
    "camt053": camt.decode,
    "camt054": camt.decode,
    "mt940": mt940.decode,
}
BANK_FOLDERS = ("bai2", "camt052", "camt053", "camt054", "mt940")

TABLE: list[tuple[str, str, int, int, int, tuple[str, ...]]] = [
    ("bai2/ministryofjustice-bai2/account_trailer_amount_blank_example.bai2", "bai2", 0, 0, 0, ()),
    ("bai2/ministryofjustice-bai2/citi_example.bai2", "bai2", 0, 0, 0, ("bai2.balance_mismatch",)),
    ("bai2/ministryofjustice-bai2/nwb_example.bai2", "bai2", 1, 89, 0, ()),
    ("bai2/ministryofjustice-bai2/svb_us_example.bai2", "bai2", 2, 1395996, 0, ()),
    ("bai2/moov-io-bai2/errors/sample-parseError.txt", "bai2", 0, 0, 0, ("bai2.bad_record",)),
    ("bai2/moov-io-bai2/sample1.txt", "bai2", 5, 320000, 0, ()),
    ("bai2/moov-io-bai2/sample2.txt", "bai2", 4, 30950000, 0, ()),
    ("bai2/moov-io-bai2/sample3.txt", "bai2", 13, 39713, 0, ()),
    (
        "bai2/moov-io-bai2/sample4-continuations-newline-delimited.txt",
        "bai2",
        0,
        0,
        0,
        ("bai2.balance_mismatch",),
    ),
    ("bai2/moov-io-bai2/sample5-issue113.txt", "bai2", 0, 0, 0, ("bai2.balance_mismatch",)),
    (
        "camt052/Subite-eu-camt-to-coda/LT809872649478701594/CAMT_052/2024-08-13.xml",
        "camt053",
        0,
        0,
        0,
        ("camt.unsupported_message:camt.052",),
    ),
    (
        "camt052/genkgo-camt/camt052.v1.xml",
        "camt053",
        0,
        0,
        0,
        ("camt.unsupported_message:camt.052",),
    ),
    (
        "camt052/genkgo-camt/camt052.v2.other-account.xml",
        "camt053",
        0,
        0,
        0,
        ("camt.unsupported_message:camt.052",),
    ),
    (
        "camt052/genkgo-camt/camt052.v2.with-account-name.xml",
        "camt053",
        0,
        0,
        0,
        ("camt.unsupported_message:camt.052",),
    ),
    (
        "camt052/genkgo-camt/camt052.v2.xml",
        "camt053",
        0,
        0,
        0,
        ("camt.unsupported_message:camt.052",),
    ),
    (
        "camt052/genkgo-camt/camt052.v4.xml",
        "camt053",
        0,
        0,
        0,
        ("camt.unsupported_message:camt.052",),
    ),
    (
        "camt052/genkgo-camt/camt052.v6.Amt-zero.xml",
        "camt053",
        0,
        0,
        0,
        ("camt.unsupported_message:camt.052",),
    ),
    (
        "camt052/genkgo-camt/camt052.v6.xml",
        "camt053",
        0,
        0,
        0,
        ("camt.unsupported_message:camt.052",),
    ),
    (
        "camt052/genkgo-camt/camt052.v8.xml",
        "camt053",
        0,
        0,
        0,
        ("camt.unsupported_message:camt.052",),
    ),
    (
        "camt052/moov-io-iso20022/200519_camt.052_P_CH2909000000250094239_1110092686_0_2019042416072347.xml",
        "camt053",
        0,
        0,
        0,
        ("camt.unsupported_message:camt.052",),
    ),
    (
        "camt052/moov-io-iso20022/FI_camt_052_sample.xml.xml",
        "camt053",
        0,
        0,
        0,
        ("camt.unsupported_message:camt.052",),
    ),
    (
        "camt053/Subite-eu-camt-to-coda/LT625883379695428516/CAMT_053/2024-03-07.xml",
        "camt053",
        1,
        82853198,
        0,
        (),
    ),
    (
        "camt053/Subite-eu-camt-to-coda/Other/BE68793230773034-202411.xml",
        "camt053",
        4,
        18000000,
        0,
        (),
    ),
    (
        "camt053/genkgo-camt/camt053.v2.all-balance-types.xml",
        "camt053",
        0,
        0,
        0,
        ("camt053.balance_mismatch",),
    ),
    (
        "camt053/genkgo-camt/camt053.v2.five.decimals.xml",
        "camt053",
        0,
        0,
        0,
        ("camt053.balance_mismatch",),
    ),
    (
        "camt053/genkgo-camt/camt053.v2.minimal.ultimate.xml",
        "camt053",
        0,
        0,
        0,
        ("camt053.balance_mismatch",),
    ),
    (
        "camt053/genkgo-camt/camt053.v2.minimal.xml",
        "camt053",
        0,
        0,
        0,
        ("camt053.balance_mismatch",),
    ),
    ("camt053/genkgo-camt/camt053.v2.multi.statement.xml", "camt053", 1, 885, 0, ()),
    ("camt053/genkgo-camt/camt053.v2.with-account-name.xml", "camt053", 1, 885, 0, ()),
    (
        "camt053/genkgo-camt/camt053.v2.with-party-ids.xml",
        "camt053",
        0,
        0,
        0,
        ("camt053.balance_mismatch",),
    ),
    ("camt053/genkgo-camt/camt053.v2.wrong.xml", "camt053", 0, 0, 0, ("camt053.no_statements",)),
    ("camt053/genkgo-camt/camt053.v3.xml", "camt053", 0, 0, 0, ("camt053.balance_mismatch",)),
    ("camt053/genkgo-camt/camt053.v4.xml", "camt053", 0, 0, 0, ("camt053.balance_mismatch",)),
    ("camt053/genkgo-camt/camt053.v8.xml", "camt053", 0, 0, 0, ("camt053.balance_mismatch",)),
    ("camt053/genkgo-camt/camt53.only-Dt-with-DtTm.xml", "camt053", 0, 0, 0, ()),
    ("camt053/moov-io-iso20022/FI_camt_053_sample.xml.xml", "camt053", 6, 2307500, 0, ()),
    (
        "camt053/moov-io-iso20022/camt.053_P_CH2909000000250094239_1110092698_0_2020112503071366.xml",
        "camt053",
        4,
        473372,
        0,
        (),
    ),
    ("camt053/moov-io-iso20022/statement_1.xml", "camt053", 0, 0, 0, ()),
    (
        "camt054/Subite-eu-camt-to-coda/LT809872649478701594/CAMT_054/2024-03-18.xml",
        "camt054",
        32,
        792351,
        0,
        (),
    ),
    (
        "camt054/Subite-eu-camt-to-coda/LT809872649478701594/CAMT_054/2024-11-12.xml",
        "camt054",
        213,
        38734211,
        0,
        (),
    ),
    ("camt054/genkgo-camt/camt054.v2.with-account-name.xml", "camt054", 0, 0, 0, ()),
    ("camt054/genkgo-camt/camt054.v2.xml", "camt054", 0, 0, 0, ()),
    ("camt054/genkgo-camt/camt054.v4.xml", "camt054", 3, 950, 0, ()),
    ("camt054/genkgo-camt/camt054.v8-with-UETR.xml", "camt054", 0, 0, 0, ()),
    ("camt054/genkgo-camt/camt054.v8-with-financial-institution.xml", "camt054", 0, 0, 0, ()),
    ("camt054/genkgo-camt/camt054.v8.xml", "camt054", 3, 950, 0, ()),
    (
        "camt054/moov-io-iso20022/200519_camt.054-Credit_P_CH2909000000250094239_1110092691_0_2019042421291293.xml",
        "camt054",
        1,
        150000,
        0,
        (),
    ),
    (
        "camt054/moov-io-iso20022/200519_camt.054-Debit_P_CH2909000000250094239_1110092692_0_2019042401501580.xml",
        "camt054",
        0,
        0,
        0,
        (),
    ),
    (
        "camt054/moov-io-iso20022/200519_camt.054_P_CH2909000000250094239_1111091335_0_2020061900081727.xml",
        "camt054",
        2,
        169222,
        0,
        (),
    ),
    (
        "camt054/moov-io-iso20022/200519_camt054-ESR-ASR_P_CH2909000000250094239_1110092704_0_2019042500372179.xml",
        "camt054",
        5,
        153700,
        0,
        (),
    ),
    (
        "camt054/moov-io-iso20022/200519_camt054-chdd_p_ch2909000000250094239_1110097484_0_20190520700381159.xml",
        "camt054",
        2,
        450,
        0,
        (),
    ),
    (
        "camt054/moov-io-iso20022/200519_camt054-epo_p_ch5109000000250092291_1110097605_0_2019052003522556.xml",
        "camt054",
        0,
        0,
        0,
        (),
    ),
    (
        "camt054/moov-io-iso20022/200519_camt054-epo_p_ch5109000000250092291_1110097605_0_2019052103322231.xml",
        "camt054",
        0,
        0,
        0,
        (),
    ),
    (
        "camt054/moov-io-iso20022/200519_camt054-returns_p_ch2909000000250094239_1109800798_0_2019052023472022.xml",
        "camt054",
        1,
        40000,
        0,
        (),
    ),
    (
        "camt054/moov-io-iso20022/200924_camt.054_P_CH2909000000250094239_1110092703_0_2019042423412214.xml",
        "camt054",
        6,
        150000,
        0,
        (),
    ),
    ("camt054/moov-io-iso20022/FI_camt_054_sample.xml.xml", "camt054", 6, 550000, 0, ()),
    (
        "camt054/moov-io-iso20022/camt054-returns_p_ch5109000000250092291_1110097606_0_2020112500512470.xml",
        "camt054",
        0,
        0,
        0,
        (),
    ),
    ("mt940/sandermarechal-jejik-mt940/K4262927_20200905-080000-952.txt", "mt940", 1, 23000, 0, ()),
    ("mt940/sandermarechal-jejik-mt940/abnamro.txt", "mt940", 0, 0, 0, ("mt940.balance_mismatch",)),
    (
        "mt940/sandermarechal-jejik-mt940/bug-core-5401.txt",
        "mt940",
        0,
        0,
        0,
        ("mt940.balance_mismatch",),
    ),
    (
        "mt940/sandermarechal-jejik-mt940/commerzbank.txt",
        "mt940",
        0,
        0,
        0,
        ("mt940.balance_mismatch",),
    ),
    (
        "mt940/sandermarechal-jejik-mt940/deutschebank.txt",
        "mt940",
        0,
        0,
        0,
        ("mt940.balance_mismatch",),
    ),
    ("mt940/sandermarechal-jejik-mt940/generic.txt", "mt940", 0, 0, 0, ()),
    ("mt940/sandermarechal-jejik-mt940/ing-dos.txt", "mt940", 0, 0, 0, ("mt940.balance_mismatch",)),
    (
        "mt940/sandermarechal-jejik-mt940/knab.txt",
        "mt940",
        1,
        50000,
        0,
        ("mt940.balance_mismatch",),
    ),
    ("mt940/sandermarechal-jejik-mt940/lbbw.txt", "mt940", 1, 1, 0, ()),
    (
        "mt940/sandermarechal-jejik-mt940/oldenburgischelandesbank.txt",
        "mt940",
        0,
        0,
        0,
        ("mt940.balance_mismatch",),
    ),
    (
        "mt940/sandermarechal-jejik-mt940/postfinance.txt",
        "mt940",
        2,
        22920,
        0,
        ("mt940.balance_mismatch",),
    ),
    ("mt940/sandermarechal-jejik-mt940/rabobank-iban.txt", "mt940", 0, 0, 0, ()),
    (
        "mt940/sandermarechal-jejik-mt940/rabobank.txt",
        "mt940",
        0,
        0,
        0,
        ("mt940.balance_mismatch",),
    ),
    ("mt940/sandermarechal-jejik-mt940/sns.txt", "mt940", 0, 0, 0, ()),
    ("mt940/sandermarechal-jejik-mt940/sparkasse.txt", "mt940", 0, 0, 0, ()),
    ("mt940/sandermarechal-jejik-mt940/sparkasse_interim_balance.txt", "mt940", 0, 0, 0, ()),
    ("mt940/sandermarechal-jejik-mt940/triodos.txt", "mt940", 0, 0, 0, ("mt940.balance_mismatch",)),
    ("mt940/sandermarechal-jejik-mt940/volksbankenraiffeisenbanken.txt", "mt940", 12, 74500, 0, ()),
    ("mt940/wolph-mt940/ASNB/mt940.txt", "mt940", 3, 282890, 0, ()),
    (
        "mt940/wolph-mt940/betterplace/amount_formats.sta",
        "mt940",
        0,
        0,
        0,
        ("mt940.no_statements",),
    ),
    (
        "mt940/wolph-mt940/betterplace/currency_in_25.sta",
        "mt940",
        0,
        0,
        0,
        ("mt940.no_statements",),
    ),
    (
        "mt940/wolph-mt940/betterplace/empty_entry_date.sta",
        "mt940",
        0,
        0,
        0,
        ("mt940.no_statements",),
    ),
    (
        "mt940/wolph-mt940/betterplace/missing_crlf_at_end.sta",
        "mt940",
        0,
        0,
        0,
        ("mt940.no_statements",),
    ),
    ("mt940/wolph-mt940/betterplace/sepa_mt9401.sta", "mt940", 26, 203868020, 2, ()),
    (
        "mt940/wolph-mt940/betterplace/sepa_snippet.sta",
        "mt940",
        3,
        36009391,
        0,
        ("mt940.balance_mismatch",),
    ),
    (
        "mt940/wolph-mt940/betterplace/sepa_snippet_broken.sta",
        "mt940",
        0,
        0,
        0,
        ("mt940.balance_mismatch",),
    ),
    ("mt940/wolph-mt940/betterplace/with_binary_character.sta", "mt940", 3, 1421530, 0, ()),
    ("mt940/wolph-mt940/citi/mt940.txt", "mt940", 0, 0, 0, ()),
    ("mt940/wolph-mt940/cmxl/mt940.sta", "mt940", 3, 2304000, 0, ("mt940.unknown_currency",)),
    ("mt940/wolph-mt940/cmxl/statement_details.sta", "mt940", 0, 0, 0, ("mt940.no_statements",)),
    ("mt940/wolph-mt940/mBank/mt940.sta", "mt940", 3, 3, 0, ()),
    ("mt940/wolph-mt940/mBank/mt942.sta", "mt940", 3, 3, 0, ()),
    (
        "mt940/wolph-mt940/mBank/with_newline_in_tnr.sta",
        "mt940",
        0,
        0,
        0,
        ("mt940.balance_mismatch",),
    ),
    ("mt940/wolph-mt940/sberbank/171011_01234945.sta", "mt940", 0, 0, 0, ()),
    (
        "mt940/wolph-mt940/self-provided/details_60-63.sta",
        "mt940",
        0,
        0,
        0,
        ("mt940.balance_mismatch",),
    ),
    (
        "mt940/wolph-mt940/self-provided/empty_non_swift.sta",
        "mt940",
        0,
        0,
        0,
        ("mt940.no_statements",),
    ),
    ("mt940/wolph-mt940/self-provided/february_30.sta", "mt940", 0, 0, 0, ()),
    ("mt940/wolph-mt940/self-provided/gv_codes.sta", "mt940", 0, 0, 0, ()),
    (
        "mt940/wolph-mt940/self-provided/invalid_statement.sta",
        "mt940",
        0,
        0,
        0,
        ("mt940.no_statements",),
    ),
    ("mt940/wolph-mt940/self-provided/long_statement_number.sta", "mt940", 0, 0, 0, ()),
    (
        "mt940/wolph-mt940/self-provided/malformed_details.sta",
        "mt940",
        0,
        0,
        0,
        ("mt940.balance_mismatch",),
    ),
    ("mt940/wolph-mt940/self-provided/mt942.sta", "mt940", 0, 0, 0, ()),
    ("mt940/wolph-mt940/self-provided/multiline.sta", "mt940", 0, 0, 0, ()),
    (
        "mt940/wolph-mt940/self-provided/raiffeisen-cmi.sta",
        "mt940",
        0,
        0,
        0,
        ("mt940.balance_mismatch",),
    ),
    ("mt940/wolph-mt940/self-provided/raphaelm.sta", "mt940", 0, 0, 0, ("mt940.unknown_currency",)),
    ("mt940/wolph-mt940/self-provided/transaction_details_wrapped.sta", "mt940", 0, 0, 0, ()),
    (
        "mt940/wolph-mt940/self-provided/whitespace.sta",
        "mt940",
        0,
        0,
        0,
        ("mt940.balance_mismatch",),
    ),
    ("mt940/wolph-mt940/self-provided/wrapped_timestamp.sta", "mt940", 0, 0, 0, ()),
]


def _decode(path: str, kind: str) -> Decoded:
    body = (SAMPLES / path).read_bytes()
    envelope = RawEnvelope("bank", kind, datetime(2026, 1, 1, tzinfo=UTC), body)
    return DECODERS[kind](envelope)


Row = tuple[str, str, int, int, int, tuple[str, ...]]


@pytest.mark.parametrize("row", TABLE, ids=[row[0] for row in TABLE])
def test_sample(row: Row) -> None:
    path, kind, events, credits, reversals, reasons = row
    decoded = _decode(path, kind)
    cash_in = [e for e in decoded.events if isinstance(e, (PaymentReceived, PayoutCredited))]
    assert len(decoded.events) == events
    assert sum(e.amount.amount_minor for e in cash_in) == credits
    assert sum(isinstance(e, PaymentReversed) for e in decoded.events) == reversals
    assert tuple(sorted({r.reason for r in decoded.rejections})) == reasons
    ids = [e.event_id for e in decoded.events]
    assert len(ids) == len(set(ids))
    assert _decode(path, kind) == decoded


def test_table_covers_every_bank_sample() -> None:
    on_disk = {
        str(p.relative_to(SAMPLES))
        for folder in BANK_FOLDERS
        for p in (SAMPLES / folder).rglob("*")
        if p.is_file() and "LICENSE" not in p.name and "." in p.name
    }
    assert on_disk == {row[0] for row in TABLE}
