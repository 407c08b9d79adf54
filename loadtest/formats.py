"""Writers for the providers' own payload shapes.

Why exact shapes: the load generator feeds the real decoders, so every body must
look like what Stripe, Shopify, banks, the ERP and Amazon actually send (see the
samples in `shared/samples`). Amounts are rendered the way each provider does:
Stripe integer minor units, Shopify/ERP/camt decimal strings, MT940 decimal
comma, BAI2 implied decimals. Functions are pure: same input, same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

import orjson

from arrecon.connectors.amazon import COLUMNS as AMAZON_COLUMNS
from arrecon.state.money import exponent, format_minor

__all__ = [
    "AmazonRow",
    "BankEntry",
    "RemittanceDoc",
    "amazon_settlement",
    "bai2_file",
    "camt053_statement",
    "envelope_line",
    "erp_credit_memo",
    "erp_customer",
    "erp_invoice",
    "iso_z",
    "mt940_statement",
    "shopify_dispute",
    "shopify_order",
    "shopify_refund",
    "shopify_transaction",
    "stripe_balance_list",
    "stripe_balance_txn",
    "stripe_charge",
    "stripe_dispute",
    "stripe_event",
]

CAMT053_NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"


def iso_z(moment: datetime) -> str:
    """UTC timestamp as `2026-03-02T10:00:00Z` (seconds precision)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def envelope_line(
    source: str,
    kind: str | None,
    received_at: datetime,
    body: Any,
    headers: dict[str, str] | None = None,
) -> str:
    """One replay-contract line (DESIGN.md section 3), without the newline."""
    envelope: dict[str, Any] = {"source": source}
    if kind is not None:
        envelope["kind"] = kind
    envelope["received_at"] = iso_z(received_at)
    if headers:
        envelope["headers"] = headers
    envelope["body"] = body
    return orjson.dumps(envelope).decode()


# --- Stripe -------------------------------------------------------------------


def stripe_event(
    event_id: str, event_type: str, created: datetime, obj: dict[str, Any]
) -> dict[str, Any]:
    """A Stripe Event envelope around one API object."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": _unix(created),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def stripe_charge(
    charge_id: str,
    amount_minor: int,
    currency: str,
    created: datetime,
    *,
    customer: str,
    payment_intent: str,
    balance_transaction: str,
    invoice: str | None = None,
    invoice_number: str | None = None,
    description: str | None = None,
    refunds: Sequence[dict[str, Any]] = (),
    disputed: bool = False,
) -> dict[str, Any]:
    """A card charge object as in `charge.*` events."""
    refunded_minor = sum(int(refund["amount"]) for refund in refunds)
    metadata = {"invoice_number": invoice_number} if invoice_number else {}
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount_minor,
        "amount_captured": amount_minor,
        "amount_refunded": refunded_minor,
        "balance_transaction": balance_transaction,
        "billing_details": {"email": None, "name": None},
        "captured": True,
        "created": _unix(created),
        "currency": currency.lower(),
        "customer": customer,
        "description": description,
        "disputed": disputed,
        "invoice": invoice,
        "livemode": False,
        "metadata": metadata,
        "paid": True,
        "payment_intent": payment_intent,
        "payment_method_details": {"card": {"brand": "visa", "last4": "4242"}, "type": "card"},
        "refunded": refunded_minor >= amount_minor,
        "refunds": {
            "object": "list",
            "data": list(refunds),
            "has_more": False,
            "url": f"/v1/charges/{charge_id}/refunds",
        },
        "status": "succeeded",
    }


def stripe_refund(
    refund_id: str, charge_id: str, amount_minor: int, currency: str, created: datetime
) -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount_minor,
        "charge": charge_id,
        "created": _unix(created),
        "currency": currency.lower(),
        "reason": "requested_by_customer",
        "status": "succeeded",
    }


def stripe_dispute(
    dispute_id: str,
    charge_id: str,
    amount_minor: int,
    currency: str,
    created: datetime,
    *,
    status: str,
    reason: str,
    payment_intent: str,
) -> dict[str, Any]:
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount_minor,
        "charge": charge_id,
        "created": _unix(created),
        "currency": currency.lower(),
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": reason,
        "status": status,
    }


def stripe_balance_txn(
    txn_id: str,
    txn_type: str,
    amount_minor: int,
    *,
    fee_minor: int,
    currency: str,
    created: datetime,
    source: str,
    description: str | None = None,
) -> dict[str, Any]:
    """A balance transaction; `reporting_category` follows Stripe's mapping."""
    category = {"charge": "charge", "refund": "refund", "payout": "payout"}.get(txn_type, "dispute")
    details = (
        [
            {
                "amount": fee_minor,
                "application": None,
                "currency": currency.lower(),
                "description": "Dispute fee" if category == "dispute" else "Stripe processing fees",
                "type": "stripe_fee",
            }
        ]
        if fee_minor
        else []
    )
    return {
        "id": txn_id,
        "object": "balance_transaction",
        "amount": amount_minor,
        "available_on": _unix(created + timedelta(days=2)),
        "created": _unix(created),
        "currency": currency.lower(),
        "description": description,
        "exchange_rate": None,
        "fee": fee_minor,
        "fee_details": details,
        "net": amount_minor - fee_minor,
        "reporting_category": category,
        "source": source,
        "status": "available",
        "type": txn_type,
    }


def stripe_balance_list(payout_id: str, txns: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The answer of `GET /v1/balance_transactions?payout=po_...`."""
    return {
        "object": "list",
        "data": list(txns),
        "has_more": False,
        "url": f"/v1/balance_transactions?payout={payout_id}",
    }


# --- Shopify ------------------------------------------------------------------


def _shop_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def shopify_order(
    order_id: int,
    number: int,
    amount_minor: int,
    currency: str,
    created: datetime,
    *,
    customer_id: int,
    email: str,
    company: str,
    po_number: str | None,
) -> dict[str, Any]:
    """An `orders/create` body for a B2B order on payment terms (not yet paid)."""
    total = format_minor(amount_minor, currency)
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{number}",
        "number": number - 1000,
        "order_number": number,
        "created_at": _shop_time(created),
        "updated_at": _shop_time(created),
        "currency": currency,
        "presentment_currency": currency,
        "email": email,
        "financial_status": "pending",
        "fulfillment_status": None,
        "gateway": "manual",
        "payment_gateway_names": ["shopify_payments"],
        "po_number": po_number,
        "subtotal_price": total,
        "total_price": total,
        "total_tax": format_minor(0, currency),
        "total_discounts": format_minor(0, currency),
        "test": False,
        "customer": {
            "id": customer_id,
            "email": email,
            "first_name": None,
            "last_name": None,
            "default_address": {"company": company},
        },
        "line_items": [
            {
                "id": order_id * 10 + 1,
                "price": total,
                "quantity": 1,
                "sku": f"SKU-{order_id % 9973:04d}",
                "title": "Wholesale order",
            }
        ],
    }


def shopify_transaction(
    txn_id: int,
    order_id: int,
    kind: str,
    *,
    amount_minor: int,
    currency: str,
    created: datetime,
    parent_id: int | None = None,
) -> dict[str, Any]:
    """An `order_transactions/create` body (sale, capture or refund)."""
    return {
        "id": txn_id,
        "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{txn_id}",
        "order_id": order_id,
        "kind": kind,
        "gateway": "shopify_payments",
        "status": "success",
        "message": None,
        "created_at": _shop_time(created),
        "test": False,
        "parent_id": parent_id,
        "amount": format_minor(amount_minor, currency),
        "currency": currency,
        "source_name": "web",
    }


def shopify_refund(
    refund_id: int,
    order_id: int,
    transaction: dict[str, Any],
    created: datetime,
    note: str,
) -> dict[str, Any]:
    """A `refunds/create` body carrying its refund transaction."""
    return {
        "id": refund_id,
        "order_id": order_id,
        "created_at": _shop_time(created),
        "note": note,
        "restock": False,
        "refund_line_items": [],
        "transactions": [transaction],
        "order_adjustments": [],
    }


def shopify_dispute(
    dispute_id: int,
    order_id: int,
    amount_minor: int,
    currency: str,
    initiated: datetime,
    *,
    status: str,
    reason: str,
    finalized: datetime | None = None,
) -> dict[str, Any]:
    """A `disputes/create` or `disputes/update` body (Shopify Payments)."""
    return {
        "id": dispute_id,
        "order_id": order_id,
        "type": "chargeback",
        "amount": format_minor(amount_minor, currency),
        "currency": currency,
        "reason": reason,
        "network_reason_code": "4837" if reason == "fraudulent" else "4853",
        "status": status,
        "evidence_due_by": _shop_time(initiated + timedelta(days=14)),
        "evidence_sent_on": None,
        "finalized_on": _shop_time(finalized) if finalized else None,
        "initiated_at": _shop_time(initiated),
    }


# --- ERP ----------------------------------------------------------------------


def erp_customer(
    customer_id: str,
    name: str,
    *,
    aliases: Sequence[str],
    external_ids: Sequence[str],
    bank_accounts: Sequence[str],
    credit_limit_minor: int,
    currency: str,
    terms_days: int,
    segment: str,
    deduction_allowance_bps: int,
    updated_at: datetime,
) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "name": name,
        "aliases": list(aliases),
        "external_ids": list(external_ids),
        "bank_accounts": list(bank_accounts),
        "credit_limit": format_minor(credit_limit_minor, currency),
        "currency": currency,
        "terms_days": terms_days,
        "segment": segment,
        "deduction_allowance_bps": deduction_allowance_bps,
        "updated_at": iso_z(updated_at),
    }


def erp_invoice(
    invoice_number: str,
    customer_id: str,
    amount_minor: int,
    currency: str,
    *,
    po_number: str | None,
    issued_at: datetime,
    due_at: datetime,
    channel: str,
    external_ids: Sequence[str],
) -> dict[str, Any]:
    return {
        "invoice_number": invoice_number,
        "customer_id": customer_id,
        "po_number": po_number,
        "currency": currency,
        "amount": format_minor(amount_minor, currency),
        "issued_at": iso_z(issued_at),
        "due_at": iso_z(due_at),
        "channel": channel,
        "external_ids": list(external_ids),
    }


def erp_credit_memo(
    memo_number: str,
    invoice_number: str,
    customer_id: str,
    amount_minor: int | None,
    currency: str,
    *,
    kind: str,
    reason: str,
    issued_at: datetime,
) -> dict[str, Any]:
    """A credit memo; void and write-off carry no amount (they take what is open)."""
    return {
        "memo_number": memo_number,
        "invoice_number": invoice_number,
        "customer_id": customer_id,
        "currency": currency,
        "amount": None if amount_minor is None else format_minor(amount_minor, currency),
        "kind": kind,
        "reason": reason,
        "issued_at": iso_z(issued_at),
    }


# --- Bank files -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemittanceDoc:
    """One structured remittance block: invoice, amount due, deduction, remitted."""

    invoice_number: str
    due_minor: int
    remitted_minor: int
    deduction_minor: int = 0
    deduction_code: str | None = None


@dataclass(frozen=True, slots=True)
class BankEntry:
    """One credit on a statement, in whichever bank format carries it."""

    end_to_end_id: str
    servicer_ref: str
    amount_minor: int
    currency: str
    booked_at: datetime
    payer_name: str
    payer_iban: str | None
    unstructured: str = ""
    structured: tuple[RemittanceDoc, ...] = ()
    rail: str = "sepa"


def _camt_amount(amount_minor: int, currency: str) -> str:
    return f'<Amt Ccy="{currency}">{format_minor(abs(amount_minor), currency)}</Amt>'


def _camt_balance(code: str, amount_minor: int, currency: str, day: str) -> str:
    sign = "CRDT" if amount_minor >= 0 else "DBIT"
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
        f"{_camt_amount(amount_minor, currency)}<CdtDbtInd>{sign}</CdtDbtInd>"
        f"<Dt><Dt>{day}</Dt></Dt></Bal>"
    )


def _camt_strd(doc: RemittanceDoc, currency: str) -> str:
    adjustment = ""
    if doc.deduction_minor:
        adjustment = (
            f"<AdjstmntAmtAndRsn>{_camt_amount(doc.deduction_minor, currency)}"
            f"<CdtDbtInd>DBIT</CdtDbtInd><Rsn>{escape(doc.deduction_code or '')}</Rsn>"
            "</AdjstmntAmtAndRsn>"
        )
    due = _camt_amount(doc.due_minor, currency).replace("<Amt ", "<DuePyblAmt ")
    remitted = _camt_amount(doc.remitted_minor, currency).replace("<Amt ", "<RmtdAmt ")
    return (
        "<Strd><RfrdDocInf><Tp><CdOrPrtry><Cd>CINV</Cd></CdOrPrtry></Tp>"
        f"<Nb>{escape(doc.invoice_number)}</Nb></RfrdDocInf>"
        f"<RfrdDocAmt>{due.replace('</Amt>', '</DuePyblAmt>', 1)}{adjustment}"
        f"{remitted.replace('</Amt>', '</RmtdAmt>', 1)}</RfrdDocAmt>"
        "<CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>"
        f"<Ref>{escape(doc.invoice_number)}</Ref></CdtrRefInf></Strd>"
    )


def _camt_entry(entry: BankEntry) -> str:
    day = entry.booked_at.date().isoformat()
    remittance = ""
    if entry.unstructured:
        remittance += f"<Ustrd>{escape(entry.unstructured[:140])}</Ustrd>"
    remittance += "".join(_camt_strd(doc, entry.currency) for doc in entry.structured)
    account = (
        f"<DbtrAcct><Id><IBAN>{entry.payer_iban}</IBAN></Id></DbtrAcct>" if entry.payer_iban else ""
    )
    domain = "RCDT" if entry.rail != "sepa" else "ESCT"
    return (
        f"<Ntry><NtryRef>{entry.servicer_ref}</NtryRef>"
        f"{_camt_amount(entry.amount_minor, entry.currency)}"
        "<CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>"
        f"<BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>"
        f"<AcctSvcrRef>{entry.servicer_ref}</AcctSvcrRef>"
        f"<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>{domain}</Cd><SubFmlyCd>ESCT</SubFmlyCd>"
        "</Fmly></Domn></BkTxCd>"
        "<NtryDtls><TxDtls><Refs>"
        f"<AcctSvcrRef>{entry.servicer_ref}</AcctSvcrRef>"
        f"<EndToEndId>{escape(entry.end_to_end_id)}</EndToEndId></Refs>"
        f"<AmtDtls><TxAmt>{_camt_amount(entry.amount_minor, entry.currency)}</TxAmt></AmtDtls>"
        f"<RltdPties><Dbtr><Nm>{escape(entry.payer_name[:70])}</Nm></Dbtr>{account}</RltdPties>"
        f"<RmtInf>{remittance}</RmtInf>"
        "</TxDtls></NtryDtls></Ntry>"
    )


def camt053_statement(
    statement_id: str,
    iban: str,
    currency: str,
    *,
    created: datetime,
    opening_minor: int,
    entries: Sequence[BankEntry],
) -> str:
    """A camt.053.001.02 end-of-day statement holding `entries` (all credits)."""
    day = created.date().isoformat()
    closing_minor = opening_minor + sum(entry.amount_minor for entry in entries)
    total = sum(entry.amount_minor for entry in entries)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="{CAMT053_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<BkToCstmrStmt><GrpHdr><MsgId>{statement_id}</MsgId>"
        f"<CreDtTm>{iso_z(created)}</CreDtTm></GrpHdr>"
        f"<Stmt><Id>{statement_id}</Id><ElctrncSeqNb>1</ElctrncSeqNb>"
        f"<CreDtTm>{iso_z(created)}</CreDtTm>"
        f"<Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>{currency}</Ccy></Acct>"
        f"{_camt_balance('OPBD', opening_minor, currency, day)}"
        f"{_camt_balance('CLBD', closing_minor, currency, day)}"
        f"<TxsSummry><TtlNtries><NbOfNtries>{len(entries)}</NbOfNtries>"
        f"<Sum>{format_minor(total, currency)}</Sum></TtlNtries></TxsSummry>"
        f"{''.join(_camt_entry(entry) for entry in entries)}"
        "</Stmt></BkToCstmrStmt></Document>\n"
    )


def _mt_amount(amount_minor: int, currency: str) -> str:
    return format_minor(abs(amount_minor), currency).replace(".", ",") + (
        "," if exponent(currency) == 0 else ""
    )


def _mt_balance(tag: str, amount_minor: int, currency: str, day: datetime) -> str:
    mark = "C" if amount_minor >= 0 else "D"
    return f":{tag}:{mark}{day:%y%m%d}{currency}{_mt_amount(amount_minor, currency)}"


def _mt_details(entry: BankEntry) -> list[str]:
    """A German-style structured :86: field, wrapped at 65 characters."""
    text = entry.unstructured.replace("?", " ")
    subfields = [f"?20EREF+{entry.end_to_end_id}"]
    chunks = [text[i : i + 27] for i in range(0, min(len(text), 27 * 6), 27)] or [""]
    subfields += [f"?{21 + i}{'SVWZ+' if i == 0 else ''}{chunk}" for i, chunk in enumerate(chunks)]
    if entry.payer_iban:
        subfields.append(f"?31{entry.payer_iban}")
    name = entry.payer_name.replace("?", " ")
    subfields.append(f"?32{name[:27]}")
    if len(name) > 27:
        subfields.append(f"?33{name[27:54]}")
    lines = [":86:166?00GUTSCHRIFT"]
    for subfield in subfields:
        if len(lines[-1]) + len(subfield) > 65:
            lines.append(subfield)
        else:
            lines[-1] += subfield
    return lines


def mt940_statement(
    reference: str,
    account: str,
    currency: str,
    *,
    created: datetime,
    opening_minor: int,
    entries: Sequence[BankEntry],
    sequence: int,
) -> str:
    """An MT940 statement (CRLF lines, ':61:' customer ref = end-to-end id)."""
    lines = [
        f":20:{reference[:16]}",
        f":25:{account}",
        f":28C:{sequence:05d}/00001",
        _mt_balance("60F", opening_minor, currency, created),
    ]
    for entry in entries:
        lines.append(
            f":61:{entry.booked_at:%y%m%d%m%d}C{_mt_amount(entry.amount_minor, currency)}"
            f"NTRF{entry.end_to_end_id[:16]}//{entry.servicer_ref[:16]}"
        )
        lines += _mt_details(entry)
    closing = opening_minor + sum(entry.amount_minor for entry in entries)
    lines += [_mt_balance("62F", closing, currency, created), "-"]
    return "\r\n".join(lines) + "\r\n"


_BAI2_SAFE = str.maketrans({",": " ", "/": " "})


def bai2_file(
    file_id: str,
    account: str,
    currency: str,
    *,
    created: datetime,
    opening_minor: int,
    entries: Sequence[BankEntry],
) -> str:
    """A BAI2 file with one group and one account (ACH/wire credits)."""
    closing = opening_minor + sum(entry.amount_minor for entry in entries)
    day = f"{created:%y%m%d}"
    account_records = [f"03,{account},{currency},010,{opening_minor},,,015,{closing},,/"]
    for entry in entries:
        code = "195" if entry.rail == "wire" else "142"
        text = f"{entry.payer_name} {entry.unstructured}".translate(_BAI2_SAFE).strip()
        account_records.append(
            f"16,{code},{entry.amount_minor},Z,{entry.servicer_ref},{entry.end_to_end_id},{text}"
        )
    control = opening_minor + closing + sum(entry.amount_minor for entry in entries)
    account_records.append(f"49,{control},{len(account_records) + 1}/")
    group = [f"02,ARRECON,BANKUS33,1,{day},{created:%H%M},{currency},2/", *account_records]
    group.append(f"98,{control},1,{len(group) + 1}/")
    records = [f"01,BANKUS33,ARRECON,{day},{created:%H%M},{file_id},,,2/", *group]
    records.append(f"99,{control},1,{len(records) + 1}/")
    return "\n".join(records) + "\n"


# --- Amazon -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AmazonRow:
    """One amount line of a settlement (an order's principal, a fee, ...)."""

    order_id: str
    merchant_order_id: str
    amount_type: str
    amount_description: str
    amount_minor: int
    posted_at: datetime
    sku: str


def _amazon_time(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def amazon_settlement(
    settlement_id: str,
    start: datetime,
    end: datetime,
    currency: str,
    rows: Sequence[AmazonRow],
) -> str:
    """Settlement report flat file V2: header, totals row, then amount lines."""
    total = sum(row.amount_minor for row in rows)
    head = dict.fromkeys(AMAZON_COLUMNS, "")
    head.update(
        {
            "settlement-id": settlement_id,
            "settlement-start-date": _amazon_time(start),
            "settlement-end-date": _amazon_time(end),
            "deposit-date": _amazon_time(end + timedelta(days=1)),
            "total-amount": format_minor(total, currency),
            "currency": currency,
        }
    )
    lines = ["\t".join(AMAZON_COLUMNS), "\t".join(head.values())]
    for index, row in enumerate(rows):
        values = dict.fromkeys(AMAZON_COLUMNS, "")
        values.update(
            {
                "settlement-id": settlement_id,
                "transaction-type": "Order",
                "order-id": row.order_id,
                "merchant-order-id": row.merchant_order_id,
                "shipment-id": f"S{row.order_id[-7:]}",
                "marketplace-name": "Amazon.com",
                "amount-type": row.amount_type,
                "amount-description": row.amount_description,
                "amount": format_minor(row.amount_minor, currency),
                "fulfillment-id": "AFN",
                "posted-date": f"{row.posted_at:%Y-%m-%d}",
                "posted-date-time": _amazon_time(row.posted_at),
                "order-item-code": f"{row.order_id[-7:]}{index % 10}",
                "sku": row.sku,
                "quantity-purchased": "1" if row.amount_type == "ItemPrice" else "",
            }
        )
        lines.append("\t".join(values.values()))
    return "\n".join(lines) + "\n"
