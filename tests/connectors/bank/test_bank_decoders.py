"""Hand-written bank files: the domain rules each decoder must apply."""

from __future__ import annotations

import gc
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrecon.connectors.bank import bai2, camt, csv, mt940
from arrecon.connectors.bank.common import classify_payout, entry_id
from arrecon.connectors.envelope import RawEnvelope
from arrecon.state.events import (
    PaymentReceived,
    PaymentReversed,
    PayoutCredited,
    Rail,
    RemittanceLine,
    ReversalKind,
)

AT = datetime(2026, 3, 2, tzinfo=UTC)


def env(kind: str, body: str | bytes, headers: dict[str, str] | None = None) -> RawEnvelope:
    return RawEnvelope("bank", kind, AT, body, headers or {})


def camt053(entries: str, opening: str = "100.00", closing: str = "100.00") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>M1</MsgId></GrpHdr><Stmt><Id>STMT-1</Id>
<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{opening}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-03-01</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{closing}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-03-01</Dt></Dt></Bal>
{entries}</Stmt></BkToCstmrStmt></Document>"""


def ntry(amount: str, direction: str, details: str = "", extra: str = "") -> str:
    return f"""<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>{direction}</CdtDbtInd>{extra}
<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-03-01</Dt></BookgDt><AcctSvcrRef>SVC-{amount}</AcctSvcrRef>
<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
<NtryDtls>{details}</NtryDtls></Ntry>"""


def tx(e2e: str, amount: str = "", name: str = "ACME GmbH", rmt: str = "") -> str:
    amt = f'<Amt Ccy="EUR">{amount}</Amt>' if amount else ""
    return f"""<TxDtls><Refs><EndToEndId>{e2e}</EndToEndId></Refs>{amt}
<RltdPties><Dbtr><Pty><Nm>{name}</Nm></Pty></Dbtr>
<DbtrAcct><Id><IBAN>FR7630006000011234567890189</IBAN></Id></DbtrAcct></RltdPties>
<RmtInf>{rmt}</RmtInf></TxDtls>"""


def test_camt_single_credit_with_hints_and_remittance() -> None:
    rmt = (
        "<Ustrd>Payment INV-1001</Ustrd><Strd><RfrdDocInf><Nb>INV-1001</Nb></RfrdDocInf>"
        '<RfrdDocAmt><RmtdAmt Ccy="EUR">25.50</RmtdAmt></RfrdDocAmt>'
        "<CdtrRefInf><Ref>RF18 5390 0754 7034</Ref></CdtrRefInf></Strd>"
    )
    body = camt053(ntry("25.50", "CRDT", tx("E2E-1", rmt=rmt)), closing="125.50")
    decoded = camt.decode(env("camt053", body))
    assert decoded.rejections == ()
    (event,) = decoded.events
    assert isinstance(event, PaymentReceived)
    assert event.payment_id == "E2E-1"
    assert event.amount.amount_minor == 2550
    assert event.rail is Rail.SEPA
    assert event.hints.payer_name == "ACME GmbH"
    assert event.hints.payer_account == "FR7630006000011234567890189"
    assert event.references == ("Payment INV-1001", "RF18539007547034", "INV-1001")
    assert event.remittance == (RemittanceLine("INV-1001", 2550),)
    assert event.occurred_at == datetime(2026, 3, 1, tzinfo=UTC)


def test_camt_batch_splits_per_transaction_and_ids_fall_back() -> None:
    details = tx("NOTPROVIDED", "10.00") + tx("E2E-B", "15.00", name="Other SA")
    decoded = camt.decode(env("camt053", camt053(ntry("25.00", "CRDT", details), closing="125.00")))
    ids = [e.payment_id for e in decoded.events if isinstance(e, PaymentReceived)]
    amounts = [e.amount.amount_minor for e in decoded.events if isinstance(e, PaymentReceived)]
    assert ids == ["SVC-25.00:0", "E2E-B"]
    assert amounts == [1000, 1500]


def test_camt_reversal_payout_and_debit() -> None:
    entries = (
        ntry(
            "40.00",
            "CRDT",
            tx("E2E-P", name="STRIPE PAYMENTS UK", rmt="<Ustrd>po_1Nabcdef</Ustrd>"),
        )
        + ntry("5.00", "DBIT", tx("E2E-R"), extra="<RvslInd>true</RvslInd>")
        + ntry("7.00", "DBIT", tx("RENT"))
    )
    decoded = camt.decode(env("camt053", camt053(entries, closing="128.00")))
    payout, reversal = decoded.events
    assert isinstance(payout, PayoutCredited)
    assert (payout.processor, payout.payout_ref, payout.bank_entry_id) == (
        "stripe",
        "po_1Nabcdef",
        "E2E-P",
    )
    assert isinstance(reversal, PaymentReversed)
    assert reversal.kind is ReversalKind.BANK_REVERSAL
    assert reversal.payment_id == "E2E-R"
    assert decoded.ignored == ("debit:RENT",)


def test_camt_balance_mismatch_rejects_statement() -> None:
    decoded = camt.decode(env("camt053", camt053(ntry("25.50", "CRDT", tx("E")), closing="999.00")))
    assert decoded.events == ()
    assert [r.reason for r in decoded.rejections] == ["camt053.balance_mismatch"]
    assert decoded.rejections[0].ref == "STMT-1"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("<not xml", "camt053.malformed_xml"),
        ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><Document/>', "camt053.malformed_xml"),
        ("<Other/>", "camt053.not_camt"),
        ("<Document><BkToCstmrAcctRpt/></Document>", "camt.unsupported_message:camt.052"),
        ("<Document><BkToCstmrStmt/></Document>", "camt053.no_statements"),
    ],
)
def test_camt_rejections(body: str, reason: str) -> None:
    assert [r.reason for r in camt.decode(env("camt053", body)).rejections] == [reason]


_ENTITY_DOC = (
    '<?xml version="1.0" encoding="UTF-16"?>'
    '<!DOCTYPE d [<!ENTITY a "expanded">]>'
    "<Document><BkToCstmrStmt><Stmt><Id>&a;</Id></Stmt></BkToCstmrStmt></Document>"
)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_camt_refuses_a_dtd_hidden_by_utf16(encoding: str) -> None:
    decoded = camt.decode(env("camt053", _ENTITY_DOC.encode(encoding)))
    assert decoded.events == ()
    assert [r.reason for r in decoded.rejections] == ["camt053.malformed_xml"]
    assert "DTDForbidden" in decoded.rejections[0].detail


def test_camt_utf16_statement_decodes_like_utf8() -> None:
    body = camt053(ntry("25.50", "CRDT", tx("E2E-16")), closing="125.50")
    utf8 = camt.decode(env("camt053", body.encode()))
    utf16 = camt.decode(env("camt053", body.replace("UTF-8", "UTF-16").encode("utf-16")))
    assert utf8.rejections == ()
    assert [e.event_id for e in utf8.events] == ["bank:camt053:E2E-16"]
    assert utf16 == utf8


MT940 = """{1:F01BANKDEFFXXXX0000000000}{2:O940BANKDEFFXXXXN}{4:
:20:STARTUMS
:25:10020030/1234567
:28C:5/1
:60F:C260301EUR1000,
:61:2603010301CR1,50NTRFNONREF//BANKREF12345
:86:166?00GUTSCHRIFT?20EREF+E2E-77?21SVWZ+INV-2001 thanks?32ACME?33 GMBH?31DE8937040044
:61:2603010301RC0,5NTRFNONREF
:86:/EREF/E2E-55/REMI/USTD//INV-9/NAME/Payer BV/
:61:260301D,25NTRFNONREF
:62F:C260301EUR1000,75
-}"""


def test_mt940_envelope_decimal_commas_and_subfields() -> None:
    decoded = mt940.decode(env("mt940", "\x01" + MT940.replace("\n", "\r\n") + "\x03"))
    assert decoded.rejections == ()
    credit, reversal = decoded.events
    assert isinstance(credit, PaymentReceived)
    assert (credit.payment_id, credit.amount.amount_minor) == ("E2E-77", 150)
    assert credit.references == ("INV-2001 thanks", "E2E-77")
    assert credit.hints.payer_name == "ACME GMBH"
    assert credit.rail is Rail.SEPA
    assert isinstance(reversal, PaymentReversed)
    assert (reversal.payment_id, reversal.amount.amount_minor) == ("E2E-55", 50)
    assert len(decoded.ignored) == 1


def test_mt940_balance_mismatch_and_garbage() -> None:
    broken = MT940.replace(":62F:C260301EUR1000,75", ":62F:C260301EUR1000,76")
    assert [r.reason for r in mt940.decode(env("mt940", broken)).rejections] == [
        "mt940.balance_mismatch"
    ]
    assert [r.reason for r in mt940.decode(env("mt940", "hello")).rejections] == [
        "mt940.no_statements"
    ]


@given(st.integers(min_value=0, max_value=10**12))
def test_mt940_amounts_are_exact(minor: int) -> None:
    text = f"{minor // 100},{minor % 100:02d}"
    body = (
        f":20:X\n:25:A\n:28C:1\n:60F:C260301EUR0,\n:61:260301C{text}NTRFNONREF\n"
        f":62F:C260301EUR{text}\n-"
    )
    decoded = mt940.decode(env("mt940", body))
    if minor == 0:
        assert decoded.events == ()
    else:
        (event,) = decoded.events
        assert event.amount.amount_minor == minor  # type: ignore[union-attr]


BAI2 = """01,BANK,CUST,260301,0800,1,,,2/
02,CUST,BANK,1,260301,2400,USD,2/
03,123456,USD,010,100000,,,015,107500,,/
16,142,10000,Z,BR1,CR1,ACH CREDIT ACME/ 16,557,2500,Z,BR2,,ACH Return/
88,Reason: "R01" insufficient funds
49,220000,4/
98,220000,1,6/
99,220000,1,8/"""


def test_bai2_records_per_line_continuations_and_ach_return() -> None:
    decoded = bai2.decode(env("bai2", BAI2))
    assert decoded.rejections == ()
    credit, ret = decoded.events
    assert isinstance(credit, PaymentReceived)
    assert (credit.payment_id, credit.amount.amount_minor, credit.rail) == ("BR1", 10000, Rail.ACH)
    assert credit.references == ("ACH CREDIT ACME",)
    assert isinstance(ret, PaymentReversed)
    assert (ret.kind, ret.reason, ret.amount.amount_minor) == (ReversalKind.ACH_RETURN, "R01", 2500)


def test_bai2_balance_mismatch() -> None:
    decoded = bai2.decode(env("bai2", BAI2.replace("015,107500", "015,107501")))
    assert [r.reason for r in decoded.rejections] == ["bai2.balance_mismatch"]


def test_csv_profiles() -> None:
    body = (
        "Buchungstag;Betrag;Waehrung;Kundenreferenz;Beguenstigter/Zahlungspflichtiger;"
        "IBAN;Verwendungszweck\n"
        "02.03.2026;1.234,56;EUR;K-1;ACME;DE89370400440532013000;RE 4711\n"
        "02.03.2026;-10,00;EUR;K-2;Bank;;Fee\n"
        "xx;1,00;EUR;K-3;A;;B\n"
    )
    decoded = csv.decode(env("csv", body, {"X-Arrecon-Csv-Profile": "de_semicolon"}))
    (event,) = decoded.events
    assert isinstance(event, PaymentReceived)
    assert (event.payment_id, event.amount.amount_minor, event.references) == (
        "K-1",
        123456,
        ("RE 4711",),
    )
    assert decoded.ignored == ("debit:K-2",)
    assert [(r.reason, r.ref) for r in decoded.rejections] == [("csv.bad_row", "row 4")]
    unknown = csv.decode(env("csv", body, {"x-arrecon-csv-profile": "nope"}))
    assert [r.reason for r in unknown.rejections] == ["csv.unknown_profile"]


def test_csv_default_profile_ids_stable_per_file() -> None:
    body = "date,amount,currency,id,payer,payer_account,reference\n2026-03-01,5.00,USD,,P,,R\n"
    first = csv.decode(env("csv", body)).events
    assert first == csv.decode(env("csv", body)).events
    other = csv.decode(env("csv", body + "2026-03-01,6.00,USD,,P,,R\n")).events
    assert first[0].event_id != other[0].event_id


@pytest.mark.parametrize(
    ("payer", "texts", "expected"),
    [
        ("STRIPE", ("STRIPE PAYOUT",), ("stripe", "STRIPE PAYOUT")),
        ("Acme", ("transfer po_1AbCdEfGh",), ("stripe", "po_1AbCdEfGh")),
        ("SHOPIFY INC", ("P123",), ("shopify", "P123")),
        ("AMAZON PAYMENTS EUROPE", (), ("amazon", "")),
        ("Stripes Ltd", ("invoice 5",), None),
        ("ACME", ("INV-1",), None),
        ("ACME", ("ref PO_1AbCdEfGh",), None),
        ("Acme", ("paid via Amzn Payments",), ("amazon", "paid via Amzn Payments")),
        # Unicode case folding: the long s (U+017F) matches S under IGNORECASE.
        ("\u017ftripe Payments", ("P9",), ("stripe", "P9")),
        ("Acme", ("r\u00e9f STRIPE",), ("stripe", "r\u00e9f STRIPE")),
        ("Acme", ("AMAZON\u00e9",), None),
    ],
)
def test_classify_payout(
    payer: str, texts: tuple[str, ...], expected: tuple[str, str] | None
) -> None:
    assert classify_payout(payer, texts) == expected


_PO_REF = re.compile(r"\bpo_[A-Za-z0-9]{6,}\b")
_PROCESSOR_PATTERNS = (
    ("stripe", re.compile(r"\bSTRIPE\b", re.IGNORECASE)),
    ("shopify", re.compile(r"\bSHOPIFY\b", re.IGNORECASE)),
    ("amazon", re.compile(r"\bAMAZON\b|\bAMZN\b", re.IGNORECASE)),
)


def _classify_every_pattern(payer: str | None, texts: list[str]) -> tuple[str, str] | None:
    """The rule written out without any pre-filter, to compare against."""
    haystack = [payer or "", *texts]
    po_match = next((m for t in haystack if (m := _PO_REF.search(t))), None)
    if po_match is not None:
        return "stripe", po_match.group(0)
    for processor, pattern in _PROCESSOR_PATTERNS:
        if any(pattern.search(text) for text in haystack):
            return processor, next((t.strip() for t in texts if t.strip()), "")
    return None


_WORDS = st.sampled_from(
    [
        "stripe",
        "STRIPE",
        "sTrIpE",
        "\u017ftripe",
        "shopify",
        "Shopify",
        "amazon",
        "AMZN",
        "amzn",
        "po_1AbCdEf",
        "PO_1AbCdEf",
        "po_12",
        "Stripes",
        "ACME",
        "INV-7",
        "_",
        "\u00e9",
        "K",
    ]
)
_TEXTS = st.lists(st.one_of(_WORDS, st.text(max_size=6)), max_size=4).map(" ".join)


@given(st.one_of(st.none(), _TEXTS), st.lists(_TEXTS, max_size=3))
def test_classify_payout_matches_the_unfiltered_rule(payer: str | None, texts: list[str]) -> None:
    assert classify_payout(payer, texts) == _classify_every_pattern(payer, texts)


@pytest.mark.parametrize(
    ("e2e", "svc", "expected"),
    [("E1", "S1", "E1"), ("NOTPROVIDED", "S1", "S1"), (None, " ", "ST:3"), ("", None, "ST:3")],
)
def test_entry_id(e2e: str | None, svc: str | None, expected: str) -> None:
    assert entry_id(e2e, svc, "ST", 3) == expected


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("body", [camt053(""), "<Document><oops>", b"\xff\xfe"])
def test_camt_decode_leaves_the_garbage_collector_as_it_found_it(
    enabled: bool, body: str | bytes
) -> None:
    was_enabled = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        camt.decode(env("camt053", body))
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was_enabled else gc.disable)()
