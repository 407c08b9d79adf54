"""Seeded load generator: a dirty, realistic delivery stream with ground truth.

Why a simulation rather than templates: reconciliation is hard because of how
payments relate to invoices over time (partial, batched, early, disputed,
refunded). The generator keeps a small book of open invoices per customer,
decides each payment's intent first (which invoices, how much, what mess), then
writes the providers' payloads that express it, and records the intent as
ground truth (`arrecon.loadtest.truth`).

Streaming: lines are yielded in arrival order from a heap of pending
deliveries; state is bounded by time (a rolling window of invoices, one day of
bank entries, one payout period, one settlement period), not by stream length.
Deterministic: one `random.Random(seed)`, no clock reads, no set iteration.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from arrecon.loadtest import formats as fmt
from arrecon.loadtest.truth import (
    Allocation,
    ChargebackTruth,
    DuplicateTruth,
    FeeAnomalyTruth,
    InvoiceTruth,
    PaymentTruth,
    PayoutTruth,
    RefundTruth,
    ShortPayTruth,
    TruthRecord,
)
from arrecon.state.money import exponent

__all__ = ["BANK_CATEGORIES", "CARD_CATEGORIES", "MessConfig", "generate", "write"]

DAY_S = 86400.0

BANK_CATEGORIES = (
    "clean_ref",
    "ref_format",
    "typo",
    "po_only",
    "multi_invoice",
    "no_reference",
    "subset_no_ref",
    "remittance_deduction",
    "short_pay_uncoded",
    "partial",
    "overpayment",
    "cash_before_invoice",
    "lookalike_payer",
    "unknown_payer",
)
CARD_CATEGORIES = (
    "clean_card",
    "duplicate_delivery",
    "chargeback_won",
    "chargeback_lost",
    "refund",
)


@dataclass(frozen=True, slots=True)
class MessConfig:
    """Every dial of the mess; defaults give a realistic dirty stream.

    Weights need not sum to one. Rates are per payment unless said otherwise.
    """

    start: datetime = datetime(2026, 3, 2, tzinfo=UTC)
    customers: int = 240
    events_per_day: int = 600
    # Small runs are stretched over at least this many days so that payouts,
    # disputes and the fee-creep week all happen even in a 200-event demo.
    min_span_days: int = 35
    window_days: int = 75
    max_open_per_customer: int = 12
    channel_weights: tuple[tuple[str, float], ...] = (
        ("bank", 0.55),
        ("stripe", 0.22),
        ("shopify", 0.18),
        ("amazon", 0.05),
    )
    currency_weights: tuple[tuple[str, float], ...] = (
        ("USD", 0.5),
        ("EUR", 0.25),
        ("GBP", 0.15),
        ("JPY", 0.1),
    )
    multi_currency_share: float = 0.12
    bank_mess: tuple[tuple[str, float], ...] = (
        ("clean_ref", 0.20),
        ("ref_format", 0.12),
        ("typo", 0.06),
        ("po_only", 0.08),
        ("multi_invoice", 0.08),
        ("no_reference", 0.07),
        ("subset_no_ref", 0.04),
        ("remittance_deduction", 0.07),
        ("short_pay_uncoded", 0.04),
        ("partial", 0.05),
        ("overpayment", 0.03),
        ("cash_before_invoice", 0.04),
        ("lookalike_payer", 0.05),
        ("unknown_payer", 0.03),
    )
    duplicate_rate: float = 0.05
    chargeback_rate: float = 0.04
    chargeback_win_share: float = 0.5
    refund_rate: float = 0.05
    refund_credit_memo_share: float = 0.5
    credit_memo_rate: float = 0.04
    customer_update_rate: float = 0.01
    stripe_fee_bps: int = 290
    fee_creep_bps: int = 40
    fee_creep_start_day: int = 14
    fee_creep_days: int = 7
    payout_every_days: int = 2
    settlement_every_days: int = 14


# --- names, ids, references -----------------------------------------------------------

_PREFIXES = [
    "Northwind",
    "Acme",
    "Contoso",
    "Globex",
    "Initech",
    "Vandelay",
    "Hooli",
    "Soylent",
    "Tyrell",
    "Wonka",
    "Oceanic",
    "Monarch",
    "Kestrel",
    "Bluebird",
    "Granite",
    "Harbor",
    "Meridian",
    "Summit",
    "Cobalt",
    "Lumen",
    "Juniper",
    "Redwood",
    "Falcon",
    "Orchid",
]
_MIDDLES = [
    "Trading",
    "Industries",
    "Supply",
    "Logistics",
    "Foods",
    "Retail",
    "Hardware",
    "Systems",
    "Outfitters",
    "Textiles",
    "Components",
    "Distribution",
]
_SUFFIXES = ("Inc", "LLC", "GmbH", "Ltd", "Corp", "BV", "SAS", "KK", "Co")
_REGIONS = ("North", "West", "Pacific", "Central", "Atlantic", "Alpine", "Coastal", "Midland")
_ABBREVIATIONS = {
    "Trading": "Trdg",
    "Industries": "Inds",
    "Supply": "Suppl",
    "Logistics": "Log",
    "Distribution": "Distr",
    "Components": "Comp",
    "Systems": "Sys",
}
_UNKNOWN_PAYERS = (
    "J. Smith Consulting",
    "Elbe Freight Partners",
    "Kowalski & Sons",
    "Plaza Hotel Group",
    "M. Dubois",
    "Tanaka Shoji",
    "Quinn Architects",
    "Riverside Dental",
)
_DEDUCTION_CODES = ("DMG", "SHRT", "PRC", "ADV", "LATE", "RTV")
# Card categories whose invoice is reopened later (refund, dispute).
_CARD_FOLLOW_UPS = frozenset({"refund", "chargeback_won", "chargeback_lost"})
_MEMO_KINDS = (("credit_memo", 0.4), ("return", 0.25), ("promotion", 0.15), ("write_off", 0.2))
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _token(rng: random.Random, length: int) -> str:
    """Stripe-like base62 id body."""
    value = rng.getrandbits(6 * length)
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 62)
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def _iban(rng: random.Random, country: str) -> str:
    """A syntactically valid IBAN (mod-97 check digits) with random BBAN."""
    if country == "GB":
        bank = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
        bban = bank + f"{rng.randrange(10**14):014d}"
    else:
        bban = f"{rng.randrange(10**18):018d}"
    digits = "".join(str(int(char, 36)) for char in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def _weighted(rng: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    names = [name for name, _ in pairs]
    return rng.choices(names, weights=[weight for _, weight in pairs])[0]


def _ref_variant(rng: random.Random, number: str) -> str:
    """The invoice number as payers actually write it."""
    digits = number.split("-", 1)[1]
    forms = (
        f"INV{digits}",
        f"inv {digits}",
        f"Invoice #{digits}",
        f"INV/{digits}",
        digits,
        f"INVOICE NO. {number}",
        f"Rechnung {number}",
        f"RE {digits}",
        number.lower(),
    )
    return rng.choice(forms)


_LOOKALIKE_CHARS = {"0": "O", "1": "I", "5": "S", "8": "B"}


def _typo(rng: random.Random, number: str) -> str:
    """One keying error that cannot produce another real invoice number."""
    digits = number.split("-", 1)[1]
    position = rng.randrange(1, len(digits))
    choice = rng.randrange(3)
    if choice == 0 and any(char in _LOOKALIKE_CHARS for char in digits):
        candidates = [i for i, char in enumerate(digits) if char in _LOOKALIKE_CHARS]
        index = rng.choice(candidates)
        digits = digits[:index] + _LOOKALIKE_CHARS[digits[index]] + digits[index + 1 :]
    elif choice == 1:
        digits = digits[:position] + digits[position + 1 :]
    else:
        digits = digits[:position] + digits[position] + digits[position:]
    return f"INV-{digits}" if rng.random() < 0.6 else f"INV{digits}"


def _round_half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


# --- simulation state ---------------------------------------------------------------------


@dataclass(slots=True)
class _Customer:
    index: int
    customer_id: str
    name: str
    channel: str
    currencies: tuple[str, ...]
    ibans: tuple[str, ...]
    aliases: tuple[str, ...]
    hidden_variant: str
    stripe_id: str
    shopify_id: int
    email: str
    allowance_bps: int
    segment: str
    terms_days: int
    uses_po: bool
    open: list[_Invoice] = field(default_factory=list)


@dataclass(slots=True)
class _Invoice:
    number: str
    customer: _Customer
    currency: str
    amount_minor: int
    open_minor: int
    issued_ts: float
    channel: str
    po_number: str | None
    aliases: list[str]
    shopify_order_id: int = 0
    categories: list[str] = field(default_factory=list)
    pending: int = 0
    expired: bool = False
    done: bool = False


@dataclass(slots=True)
class _Delivery:
    """One line waiting for its arrival time; effects run when it is emitted."""

    source: str
    kind: str | None
    body: Any
    headers: dict[str, str] | None = None
    truth: list[TruthRecord] = field(default_factory=list)
    releases: list[_Invoice] = field(default_factory=list)
    payout_txn: tuple[str, dict[str, Any]] | None = None


@dataclass(slots=True)
class _PendingEntry:
    entry: fmt.BankEntry
    truth: PaymentTruth | None


@dataclass(slots=True)
class _Account:
    key: str
    format: str
    currency: str
    number: str
    balance_minor: int
    sequence: int = 0
    entries: list[_PendingEntry] = field(default_factory=list)


@dataclass(slots=True)
class _PayoutBuffer:
    txns: list[dict[str, Any]] = field(default_factory=list)
    creep: bool = False


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(round(ts), tz=UTC)


class _Simulation:
    """Holds the bounded state; `run` yields (line, truth records) in arrival order."""

    def __init__(self, config: MessConfig, seed: int, n_events: int) -> None:
        self.cfg = config
        self.rng = random.Random(seed)
        self.n_events = n_events
        per_day = min(float(config.events_per_day), max(1.0, n_events / config.min_span_days))
        self.mean_gap_s = DAY_S / per_day
        self.start_ts = _ts(config.start)
        self.clock = self.start_ts
        self.heap: list[tuple[float, int, _Delivery]] = []
        self.seq = 0
        self.emitted = 0
        self.loose_truth: list[TruthRecord] = []
        self.issued: deque[_Invoice] = deque()
        self.counters: dict[str, int] = {}
        self.accounts: dict[str, _Account] = {}
        self.payouts: dict[str, _PayoutBuffer] = {}
        self.amazon_buffer: list[_Invoice] = []
        self.creep_payouts: list[str] = []
        self.draining = False
        self.creep_start_ts = self.start_ts + config.fee_creep_start_day * DAY_S
        self.creep_end_ts = self.creep_start_ts + config.fee_creep_days * DAY_S
        day0 = math.floor(self.start_ts / DAY_S) * DAY_S
        self.next_bank_ts = day0 + 18 * 3600
        self.next_payout_ts = day0 + DAY_S + 6 * 3600
        self.next_settlement_ts = day0 + config.settlement_every_days * DAY_S + 4 * 3600
        self.settlement_start_ts = self.start_ts
        self.customers = [self._make_customer(index) for index in range(config.customers)]
        self.payers = [c for c in self.customers if c.channel != "amazon"]

    # -- ids ---------------------------------------------------------------------------

    def _next(self, name: str, start: int = 1) -> int:
        value = self.counters.get(name, start)
        self.counters[name] = value + 1
        return value

    def _e2e(self) -> str:
        return f"E2E{self._next('e2e', 1):08d}{_token(self.rng, 4).upper()}"

    def _servicer_ref(self) -> str:
        return f"{self._next('bankref', 10_000_000):012d}"

    # -- customers ---------------------------------------------------------------------

    def _customer_name(self, index: int) -> str:
        prefix = _PREFIXES[index % len(_PREFIXES)]
        middle = _MIDDLES[(index // len(_PREFIXES)) % len(_MIDDLES)]
        suffix = _SUFFIXES[index % len(_SUFFIXES)]
        tier = index // (len(_PREFIXES) * len(_MIDDLES))
        region = f" {_REGIONS[(tier - 1) % len(_REGIONS)]}" if tier else ""
        if tier > len(_REGIONS):
            region += f" {tier}"
        return f"{prefix} {middle}{region} {suffix}"

    def _make_customer(self, index: int) -> _Customer:
        rng = self.rng
        name = self._customer_name(index)
        channel = "amazon" if index == 0 else _weighted(rng, self.cfg.channel_weights)
        if channel == "amazon" and index:
            channel = "bank"
        primary = "USD" if channel == "amazon" else _weighted(rng, self.cfg.currency_weights)
        currencies: tuple[str, ...] = (primary,)
        if channel != "amazon" and rng.random() < self.cfg.multi_currency_share:
            other = [c for c, _ in self.cfg.currency_weights if c != primary]
            currencies = (primary, rng.choice(other))
        country = "GB" if primary == "GBP" else rng.choice(("DE", "FR", "NL"))
        words = name.split()
        short = " ".join(words[:-1])
        hidden = " ".join(_ABBREVIATIONS.get(word, word) for word in words[:-1]).upper()
        if hidden == short.upper():
            hidden = f"{short.upper()} {words[-1].upper()}."
        if channel == "amazon":
            name = "Amazon.com Services LLC (Marketplace)"
        segment = rng.choice(("enterprise", "retail", "smb"))
        return _Customer(
            index=index,
            customer_id=f"CUST-{index + 1:05d}",
            name=name,
            channel=channel,
            currencies=currencies,
            ibans=(_iban(rng, country), _iban(rng, country)),
            aliases=(name.upper(), short),
            hidden_variant=hidden,
            stripe_id=f"cus_{_token(rng, 14)}",
            shopify_id=6_000_000_000 + index * 7919 + rng.randrange(7919),
            email=f"ap@{words[0].lower()}-{index + 1}.example",
            allowance_bps=rng.choice((0, 100, 200, 300)) if segment != "smb" else 0,
            segment=segment,
            terms_days=rng.choice((15, 30, 30, 45, 60)),
            uses_po=rng.random() < 0.7,
        )

    def _customer_body(self, customer: _Customer, at: datetime) -> dict[str, Any]:
        external = [customer.stripe_id] if customer.channel == "stripe" else []
        if customer.channel == "shopify":
            external.append(str(customer.shopify_id))
        currency = customer.currencies[0]
        return fmt.erp_customer(
            customer.customer_id,
            customer.name,
            aliases=customer.aliases,
            external_ids=external,
            bank_accounts=customer.ibans,
            credit_limit_minor=50_000 * 10 ** exponent(currency) * (3 if currency == "JPY" else 1),
            currency=currency,
            terms_days=customer.terms_days,
            segment=customer.segment,
            deduction_allowance_bps=customer.allowance_bps,
            updated_at=at,
        )

    # -- delivery plumbing ---------------------------------------------------------------

    def _schedule(self, due_ts: float, delivery: _Delivery) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (due_ts, self.seq, delivery))

    def _pop_due(self, until_ts: float) -> Iterator[tuple[str, list[TruthRecord]]]:
        while self.heap and self.heap[0][0] <= until_ts:
            due_ts, _, delivery = heapq.heappop(self.heap)
            yield self._emit(due_ts, delivery)

    def _emit(self, due_ts: float, delivery: _Delivery) -> tuple[str, list[TruthRecord]]:
        if delivery.payout_txn is not None:
            currency, txn = delivery.payout_txn
            self.payouts.setdefault(currency, _PayoutBuffer()).txns.append(txn)
        truth = delivery.truth
        for invoice in delivery.releases:
            invoice.pending -= 1
            self._maybe_finalize(invoice)
        if self.loose_truth:
            truth = [*truth, *self.loose_truth]
            self.loose_truth = []
        line = fmt.envelope_line(
            delivery.source, delivery.kind, _dt(due_ts), delivery.body, delivery.headers
        )
        self.emitted += 1
        return line, truth

    # -- invoice book ----------------------------------------------------------------------

    def _maybe_finalize(self, invoice: _Invoice) -> None:
        if invoice.done or invoice.pending > 0:
            return
        if invoice.open_minor > 0 and not invoice.expired:
            return
        invoice.done = True
        self.loose_truth.append(
            InvoiceTruth(
                invoice_number=invoice.number,
                customer_id=invoice.customer.customer_id,
                currency=invoice.currency,
                amount_minor=invoice.amount_minor,
                open_minor=invoice.open_minor,
                channel=invoice.channel,
                categories=tuple(dict.fromkeys(invoice.categories)),
                aliases=tuple(invoice.aliases),
            )
        )

    def _settle(self, invoice: _Invoice, paid_minor: int, category: str) -> None:
        """Reduce the open amount; drop the invoice from the book when closed."""
        invoice.open_minor -= paid_minor
        invoice.categories.append(category)
        if invoice.open_minor <= 0 and invoice in invoice.customer.open:
            invoice.customer.open.remove(invoice)
        self._maybe_finalize(invoice)

    def _expire(self, now_ts: float) -> None:
        horizon = now_ts - self.cfg.window_days * DAY_S
        while self.issued and self.issued[0].issued_ts < horizon:
            invoice = self.issued.popleft()
            invoice.expired = True
            if invoice in invoice.customer.open:
                invoice.customer.open.remove(invoice)
            self._maybe_finalize(invoice)

    def _amount(self, currency: str, low: float, high: float) -> int:
        major = math.exp(self.rng.uniform(math.log(low), math.log(high)))
        if currency == "JPY":
            return max(1, round(major * 150))
        return max(100, round(major * 100))

    def _new_invoice(self, customer: _Customer, currency: str) -> _Invoice:
        number = f"INV-{self._next('invoice', 100_001):06d}"
        if customer.channel == "amazon":
            amount = self._amount(currency, 15, 400)
        else:
            amount = self._amount(currency, 80, 40_000)
        po = None
        if customer.uses_po:
            po = f"PO-{self._next('po', 20_001)}" if customer.index % 2 else None
            po = po or f"45{self._next('sap_po', 10_000_001):08d}"
        invoice = _Invoice(
            number=number,
            customer=customer,
            currency=currency,
            amount_minor=amount,
            open_minor=amount,
            issued_ts=self.clock,
            channel=customer.channel,
            po_number=po,
            aliases=[],
        )
        if customer.channel == "stripe":
            invoice.aliases.append(f"in_{_token(self.rng, 24)}")
        elif customer.channel == "amazon":
            order = f"11{self.rng.randrange(1, 10)}-{self.rng.randrange(10**7):07d}"
            invoice.aliases.append(f"{order}-{self.rng.randrange(10**7):07d}")
        self.issued.append(invoice)
        return invoice

    def _invoice_delivery(self, invoice: _Invoice) -> _Delivery:
        customer = invoice.customer
        issued = _dt(invoice.issued_ts)
        if invoice.channel == "shopify":
            return self._shopify_order(invoice, issued)
        body = fmt.erp_invoice(
            invoice.number,
            customer.customer_id,
            invoice.amount_minor,
            invoice.currency,
            po_number=invoice.po_number,
            issued_at=issued,
            due_at=issued + timedelta(days=customer.terms_days),
            channel=invoice.channel,
            external_ids=invoice.aliases,
        )
        return _Delivery("erp", "invoice", body)

    def _shopify_order(self, invoice: _Invoice, issued: datetime) -> _Delivery:
        customer = invoice.customer
        order_number = self._next("shopify_order", 1001)
        order_id = 5_100_000_000 + order_number * 37
        canonical = invoice.number
        invoice.number = f"#{order_number}"
        invoice.aliases += [str(order_id), canonical]
        invoice.shopify_order_id = order_id
        body = fmt.shopify_order(
            order_id,
            order_number,
            invoice.amount_minor,
            invoice.currency,
            issued,
            customer_id=customer.shopify_id,
            email=customer.email,
            company=customer.name,
            po_number=invoice.po_number,
        )
        return _Delivery("shopify", "orders/create", body, self._shopify_headers("orders/create"))

    def _shopify_headers(self, topic: str) -> dict[str, str]:
        webhook = f"{_token(self.rng, 8)}-{self._next('shopify_webhook'):08d}"
        return {
            "X-Shopify-Topic": topic,
            "X-Shopify-Webhook-Id": webhook,
            "X-Shopify-Shop-Domain": "arrecon-demo.myshopify.com",
        }

    # -- steps -------------------------------------------------------------------------------

    def step(self) -> None:
        roll = self.rng.random()
        cfg = self.cfg
        if roll < cfg.customer_update_rate:
            self._customer_update()
        elif roll < cfg.customer_update_rate + cfg.credit_memo_rate:
            self._credit_memo()
        elif roll < 0.52:
            self._issue()
        else:
            self._payment()

    def _customer_update(self) -> None:
        customer = self.rng.choice(self.payers)
        body = self._customer_body(customer, _dt(self.clock))
        self._schedule(self.clock, _Delivery("erp", "customer", body))

    def _issue(self) -> None:
        customer = self.rng.choice(self.customers)
        if len(customer.open) >= self.cfg.max_open_per_customer and customer.channel != "amazon":
            self._pay(customer)
            return
        invoice = self._new_invoice(customer, self.rng.choice(customer.currencies))
        if customer.channel == "amazon":
            invoice.pending += 1
            self.amazon_buffer.append(invoice)
        else:
            customer.open.append(invoice)
        self._schedule(self.clock, self._invoice_delivery(invoice))

    def _payment(self) -> None:
        if self.rng.random() < self._bank_weight("unknown_payer"):
            self._unknown_payer()
            return
        for _ in range(8):
            customer = self.rng.choice(self.payers)
            if customer.open:
                self._pay(customer)
                return
        self._issue()

    def _bank_weight(self, category: str) -> float:
        total = sum(weight for _, weight in self.cfg.bank_mess)
        share = dict(self.cfg.bank_mess).get(category, 0.0) / total if total else 0.0
        bank_share = dict(self.cfg.channel_weights).get("bank", 0.0)
        return share * bank_share

    def _pay(self, customer: _Customer) -> None:
        if customer.channel == "stripe":
            self._stripe_payment(customer)
        elif customer.channel == "shopify":
            self._shopify_payment(customer)
        else:
            self._bank_payment(customer)

    def _credit_memo(self) -> None:
        customer = self.rng.choice(self.payers)
        if customer.channel != "bank" or not customer.open:
            return
        invoice = self.rng.choice(customer.open)
        kind = _weighted(self.rng, _MEMO_KINDS)
        if kind == "write_off":
            amount = invoice.open_minor
        else:
            amount = max(1, invoice.open_minor * self.rng.randrange(5, 26) // 100)
        memo = fmt.erp_credit_memo(
            f"CM-{self._next('memo', 5001):06d}",
            invoice.number,
            customer.customer_id,
            None if kind == "write_off" else amount,
            invoice.currency,
            kind=kind,
            reason={"return": "goods returned", "promotion": "volume rebate"}.get(kind, kind),
            issued_at=_dt(self.clock),
        )
        self._settle(invoice, amount, f"memo_{kind}")
        self._schedule(self.clock, _Delivery("erp", "credit_memo", memo))

    # -- card channels ------------------------------------------------------------------------

    def _card_category(self) -> str:
        cfg = self.cfg
        roll = self.rng.random()
        if roll < cfg.chargeback_rate:
            return (
                "chargeback_won"
                if self.rng.random() < cfg.chargeback_win_share
                else "chargeback_lost"
            )
        if roll < cfg.chargeback_rate + cfg.refund_rate:
            return "refund"
        if roll < cfg.chargeback_rate + cfg.refund_rate + cfg.duplicate_rate:
            return "duplicate_delivery"
        return "clean_card"

    def _stripe_fee(self, amount_minor: int, currency: str, at_ts: float) -> tuple[int, bool]:
        creep = self.creep_start_ts <= at_ts < self.creep_end_ts
        bps = self.cfg.stripe_fee_bps + (self.cfg.fee_creep_bps if creep else 0)
        fixed = 0 if exponent(currency) == 0 else 30
        return _round_half_up(amount_minor * bps, 10_000) + fixed, creep

    def _stripe_payment(self, customer: _Customer) -> None:
        invoice = customer.open[0]
        category = self._card_category()
        amount = invoice.open_minor
        currency = invoice.currency
        charge_id = f"ch_{_token(self.rng, 24)}"
        intent = f"pi_{_token(self.rng, 24)}"
        txn_id = f"txn_{_token(self.rng, 24)}"
        now = _dt(self.clock)
        charge = fmt.stripe_charge(
            charge_id,
            amount,
            currency,
            now,
            customer=customer.stripe_id,
            payment_intent=intent,
            balance_transaction=txn_id,
            invoice=invoice.aliases[0],
            invoice_number=invoice.number,
            description=f"Payment for invoice {invoice.number}",
        )
        event_id = f"evt_{_token(self.rng, 24)}"
        body = fmt.stripe_event(event_id, "charge.succeeded", now, charge)
        fee, creep = self._stripe_fee(amount, currency, self.clock)
        buffer = self.payouts.setdefault(currency, _PayoutBuffer())
        buffer.txns.append(
            fmt.stripe_balance_txn(
                txn_id,
                "charge",
                amount,
                fee_minor=fee,
                currency=currency,
                created=now,
                source=charge_id,
                description=f"Invoice {invoice.number}",
            )
        )
        buffer.creep = buffer.creep or creep
        truth = self._card_truth(invoice, charge_id, "stripe", category, [intent])
        self._settle_card(invoice, amount, category)
        self._schedule(self.clock, _Delivery("stripe", None, body, truth=[truth]))
        if category == "duplicate_delivery":
            self._duplicate(_Delivery("stripe", None, body), charge_id, event_id)
        elif category == "refund":
            self._stripe_refund(invoice, charge, amount)
        elif category.startswith("chargeback"):
            self._stripe_dispute(invoice, charge, category == "chargeback_won")
        self._release_card(invoice, category)

    def _settle_card(self, invoice: _Invoice, amount: int, category: str) -> None:
        """Settle a card payment; an invoice that a refund or dispute will reopen is
        held so its final truth waits for them (not written as paid right now)."""
        if category in _CARD_FOLLOW_UPS:
            invoice.pending += 1
        self._settle(invoice, amount, category)

    def _release_card(self, invoice: _Invoice, category: str) -> None:
        """Drop the hold of `_settle_card` once the follow-ups hold the invoice."""
        if category in _CARD_FOLLOW_UPS:
            invoice.pending -= 1
            self._maybe_finalize(invoice)

    def _card_truth(
        self, invoice: _Invoice, payment_id: str, source: str, category: str, aliases: list[str]
    ) -> PaymentTruth:
        return PaymentTruth(
            payment_id=payment_id,
            source=source,
            format=source,
            customer_id=invoice.customer.customer_id,
            currency=invoice.currency,
            amount_minor=invoice.open_minor,
            category=category,
            placeable=True,
            received_at=fmt.iso_z(_dt(self.clock)),
            allocations=(Allocation(invoice.number, invoice.open_minor),),
            aliases=tuple(aliases),
        )

    def _duplicate(self, delivery: _Delivery, payment_id: str, event_id: str) -> None:
        delay = self.rng.uniform(30, 6 * 3600)
        delivery.truth.append(DuplicateTruth(payment_id=payment_id, event_id=event_id))
        self._schedule(self.clock + delay, delivery)

    def _stripe_refund(self, invoice: _Invoice, charge: dict[str, Any], amount: int) -> None:
        at_ts = self.clock + self.rng.uniform(2, 20) * DAY_S
        refund_minor = (
            amount
            if self.rng.random() < 0.5
            else max(1, amount * self.rng.randrange(20, 90) // 100)
        )
        refund_id = f"re_{_token(self.rng, 24)}"
        at = _dt(at_ts)
        refund = fmt.stripe_refund(refund_id, charge["id"], refund_minor, invoice.currency, at)
        refunded = {**charge, "amount_refunded": refund_minor, "refunded": refund_minor >= amount}
        refunded["refunds"] = {**charge["refunds"], "data": [refund]}
        body = fmt.stripe_event(f"evt_{_token(self.rng, 24)}", "charge.refunded", at, refunded)
        txn = fmt.stripe_balance_txn(
            f"txn_{_token(self.rng, 24)}",
            "refund",
            -refund_minor,
            fee_minor=0,
            currency=invoice.currency,
            created=at,
            source=refund_id,
        )
        truth = RefundTruth(charge["id"], refund_id, invoice.number, refund_minor, invoice.currency)
        delivery = _Delivery(
            "stripe", None, body, truth=[truth], payout_txn=(invoice.currency, txn)
        )
        self._reopen_with_memo(invoice, refund_minor, at_ts, delivery)

    def _reopen_with_memo(
        self, invoice: _Invoice, refund_minor: int, at_ts: float, delivery: _Delivery
    ) -> None:
        """A refund reopens the invoice; often the ERP books a return memo next day."""
        invoice.open_minor += refund_minor
        invoice.pending += 1
        delivery.releases.append(invoice)
        self._schedule(at_ts, delivery)
        if self.rng.random() >= self.cfg.refund_credit_memo_share:
            return
        memo_ts = at_ts + DAY_S
        memo = fmt.erp_credit_memo(
            f"CM-{self._next('memo', 5001):06d}",
            invoice.number,
            invoice.customer.customer_id,
            refund_minor,
            invoice.currency,
            kind="return",
            reason="refund issued",
            issued_at=_dt(memo_ts),
        )
        invoice.open_minor -= refund_minor
        invoice.pending += 1
        self._schedule(memo_ts, _Delivery("erp", "credit_memo", memo, releases=[invoice]))

    def _stripe_dispute(self, invoice: _Invoice, charge: dict[str, Any], won: bool) -> None:
        opened_ts = self.clock + self.rng.uniform(5, 30) * DAY_S
        closed_ts = opened_ts + self.rng.uniform(15, 40) * DAY_S
        dispute_id = f"dp_{_token(self.rng, 24)}"
        currency = invoice.currency
        amount = charge["amount"]
        reason = self.rng.choice(("fraudulent", "product_not_received", "unrecognized"))

        def dispute(status: str, at_ts: float) -> dict[str, Any]:
            return fmt.stripe_dispute(
                dispute_id,
                charge["id"],
                amount,
                currency,
                _dt(at_ts),
                status=status,
                reason=reason,
                payment_intent=charge["payment_intent"],
            )

        withdrawn = dispute("needs_response", opened_ts)
        fee = 0 if exponent(currency) == 0 else 1500
        txn = fmt.stripe_balance_txn(
            f"txn_{_token(self.rng, 24)}",
            "adjustment",
            -amount,
            fee_minor=fee,
            currency=currency,
            created=_dt(opened_ts),
            source=dispute_id,
            description=f"Chargeback withdrawal for {charge['id']}",
        )
        withdrawn["balance_transactions"] = [txn]
        steps: list[tuple[float, str, dict[str, Any], tuple[str, dict[str, Any]] | None]] = [
            (opened_ts, "charge.dispute.created", dispute("needs_response", opened_ts), None),
            (opened_ts + 60, "charge.dispute.funds_withdrawn", withdrawn, (currency, txn)),
        ]
        if won:
            back = fmt.stripe_balance_txn(
                f"txn_{_token(self.rng, 24)}",
                "adjustment",
                amount,
                fee_minor=0,
                currency=currency,
                created=_dt(closed_ts - 60),
                source=dispute_id,
                description=f"Chargeback reversal for {charge['id']}",
            )
            reinstated = dispute("won", closed_ts - 60)
            reinstated["balance_transactions"] = [txn, back]
            steps.append(
                (closed_ts - 60, "charge.dispute.funds_reinstated", reinstated, (currency, back))
            )
        steps.append(
            (closed_ts, "charge.dispute.closed", dispute("won" if won else "lost", closed_ts), None)
        )
        for at_ts, event_type, obj, payout_txn in steps:
            body = fmt.stripe_event(f"evt_{_token(self.rng, 24)}", event_type, _dt(at_ts), obj)
            invoice.pending += 1
            self._schedule(
                at_ts, _Delivery("stripe", None, body, releases=[invoice], payout_txn=payout_txn)
            )
        self._close_dispute_truth(invoice, charge["id"], dispute_id, amount, won)

    def _close_dispute_truth(
        self, invoice: _Invoice, payment_id: str, dispute_id: str, amount: int, won: bool
    ) -> None:
        if not won:
            invoice.open_minor += amount
        self.loose_truth.append(
            ChargebackTruth(
                payment_id,
                dispute_id,
                invoice.number,
                amount,
                invoice.currency,
                "won" if won else "lost",
            )
        )

    def _shopify_payment(self, customer: _Customer) -> None:
        invoice = customer.open[0]
        category = self._card_category()
        amount = invoice.open_minor
        txn_id = 7_200_000_000 + self._next("shopify_txn") * 13
        body = fmt.shopify_transaction(
            txn_id,
            invoice.shopify_order_id,
            "sale",
            amount_minor=amount,
            currency=invoice.currency,
            created=_dt(self.clock),
        )
        headers = self._shopify_headers("order_transactions/create")
        order_ref = f"shopify_order:{invoice.shopify_order_id}"
        truth = self._card_truth(invoice, str(txn_id), "shopify", category, [order_ref])
        self._settle_card(invoice, amount, category)
        self._schedule(
            self.clock, _Delivery("shopify", "order_transactions/create", body, headers, [truth])
        )
        if category == "duplicate_delivery":
            duplicate = _Delivery("shopify", "order_transactions/create", body, headers)
            self._duplicate(duplicate, str(txn_id), headers["X-Shopify-Webhook-Id"])
        elif category == "refund":
            self._shopify_refund(invoice, txn_id, amount)
        elif category.startswith("chargeback"):
            self._shopify_dispute(invoice, txn_id, amount, category == "chargeback_won")
        self._release_card(invoice, category)

    def _shopify_refund(self, invoice: _Invoice, sale_id: int, amount: int) -> None:
        at_ts = self.clock + self.rng.uniform(2, 20) * DAY_S
        refund_minor = (
            amount
            if self.rng.random() < 0.5
            else max(1, amount * self.rng.randrange(20, 90) // 100)
        )
        refund_txn_id = 7_200_000_000 + self._next("shopify_txn") * 13
        txn = fmt.shopify_transaction(
            refund_txn_id,
            invoice.shopify_order_id,
            "refund",
            amount_minor=refund_minor,
            currency=invoice.currency,
            created=_dt(at_ts),
            parent_id=sale_id,
        )
        refund_id = 8_800_000_000 + self._next("shopify_refund")
        body = fmt.shopify_refund(
            refund_id, invoice.shopify_order_id, txn, _dt(at_ts), "returned goods"
        )
        truth = RefundTruth(
            str(sale_id), str(refund_id), invoice.number, refund_minor, invoice.currency
        )
        delivery = _Delivery(
            "shopify", "refunds/create", body, self._shopify_headers("refunds/create"), [truth]
        )
        self._reopen_with_memo(invoice, refund_minor, at_ts, delivery)

    def _shopify_dispute(self, invoice: _Invoice, sale_id: int, amount: int, won: bool) -> None:
        opened_ts = self.clock + self.rng.uniform(5, 30) * DAY_S
        closed_ts = opened_ts + self.rng.uniform(15, 40) * DAY_S
        dispute_id = 9_900_000_000 + self._next("shopify_dispute")
        reason = self.rng.choice(("fraudulent", "product_not_received"))
        steps = (
            (opened_ts, "disputes/create", "needs_response", None),
            (closed_ts, "disputes/update", "won" if won else "lost", _dt(closed_ts)),
        )
        for at_ts, topic, status, finalized in steps:
            body = fmt.shopify_dispute(
                dispute_id,
                invoice.shopify_order_id,
                amount,
                invoice.currency,
                _dt(opened_ts),
                status=status,
                reason=reason,
                finalized=finalized,
            )
            invoice.pending += 1
            self._schedule(
                at_ts,
                _Delivery("shopify", topic, body, self._shopify_headers(topic), releases=[invoice]),
            )
        self._close_dispute_truth(invoice, str(sale_id), str(dispute_id), amount, won)

    # -- bank transfers -------------------------------------------------------------------------

    def _account(self, currency: str, file_format: str) -> _Account:
        key = f"{file_format}:{currency}"
        account = self.accounts.get(key)
        if account is None:
            country = "GB" if currency == "GBP" else "DE"
            number = (
                f"{self.rng.randrange(10**9):09d}"
                if file_format == "bai2"
                else _iban(self.rng, country)
            )
            account = _Account(key, file_format, currency, number, 10**6 * 10 ** exponent(currency))
            self.accounts[key] = account
        return account

    def _format_for(self, customer: _Customer, currency: str) -> str:
        if currency == "GBP":
            return "mt940" if customer.index % 10 < 7 else "camt053"
        if currency == "USD":
            return "bai2" if customer.index % 3 == 0 else "camt053"
        return "camt053"

    def _bank_category(self, customer: _Customer, file_format: str) -> str:
        excluded = {"unknown_payer"}
        if file_format != "camt053" or not customer.allowance_bps:
            excluded.add("remittance_deduction")
        if file_format == "bai2":
            excluded |= {"no_reference", "subset_no_ref", "lookalike_payer"}
        pairs = tuple(pair for pair in self.cfg.bank_mess if pair[0] not in excluded)
        return _weighted(self.rng, pairs) if pairs else "clean_ref"

    def _bank_payment(self, customer: _Customer) -> None:
        currency = self.rng.choice(customer.open).currency
        file_format = self._format_for(customer, currency)
        category = self._bank_category(customer, file_format)
        pool = [invoice for invoice in customer.open if invoice.currency == currency]
        intent = self._intent(category, customer, pool, currency)
        if intent is None:
            category = "clean_ref"
            intent = self._intent(category, customer, pool, currency)
        assert intent is not None
        self._book_transfer(customer, category, currency, file_format, intent)

    def _intent(
        self, category: str, customer: _Customer, pool: list[_Invoice], currency: str
    ) -> _Intent | None:
        rng = self.rng
        invoice = rng.choice(pool)
        full = [(invoice, invoice.open_minor, invoice.open_minor)]
        if category == "clean_ref":
            return _Intent(full, rng.choice((invoice.number, f"Invoice {invoice.number}")))
        if category in ("ref_format", "lookalike_payer"):
            return _Intent(full, _ref_variant(rng, invoice.number))
        if category == "typo":
            return _Intent(full, _typo(rng, invoice.number))
        if category == "po_only":
            with_po = [item for item in pool if item.po_number]
            if not with_po:
                return None
            invoice = rng.choice(with_po)
            text = rng.choice(("PO {}", "PO#{}", "{}", "P.O. {}")).format(invoice.po_number)
            return _Intent([(invoice, invoice.open_minor, invoice.open_minor)], text)
        if category in ("multi_invoice", "subset_no_ref"):
            return self._batch_intent(category, pool)
        if category == "no_reference":
            amounts = [item.open_minor for item in pool]
            unique = [item for item in pool if amounts.count(item.open_minor) == 1]
            if not unique:
                return None
            invoice = rng.choice(unique)
            return _Intent(
                [(invoice, invoice.open_minor, invoice.open_minor)], self._generic_text()
            )
        if category == "remittance_deduction":
            return self._remittance_intent(customer, pool)
        return self._amount_intent(category, customer, invoice, currency)

    def _generic_text(self) -> str:
        return self.rng.choice(("", "PAYMENT", "SUPPLIER PAYMENT", "TRANSFER", "AP RUN 0412"))

    def _batch_intent(self, category: str, pool: list[_Invoice]) -> _Intent | None:
        if len(pool) < 2:
            return None
        chosen = self.rng.sample(
            pool, self.rng.randint(2, min(4 if category == "multi_invoice" else 3, len(pool)))
        )
        items = [(item, item.open_minor, item.open_minor) for item in chosen]
        if category == "multi_invoice":
            separator = self.rng.choice((", ", " / ", " + ", " "))
            refs = [chosen[0].number] + [_ref_variant(self.rng, item.number) for item in chosen[1:]]
            return _Intent(items, separator.join(refs))
        total = sum(item.open_minor for item in chosen)
        if not _unique_subset(pool, total, len(chosen)):
            return None
        return _Intent(items, self._generic_text())

    def _remittance_intent(self, customer: _Customer, pool: list[_Invoice]) -> _Intent:
        chosen = self.rng.sample(pool, self.rng.randint(1, min(3, len(pool))))
        items: list[tuple[_Invoice, int, int]] = []
        docs: list[fmt.RemittanceDoc] = []
        short: list[ShortPayTruth] = []
        for position, invoice in enumerate(chosen):
            cap = invoice.open_minor * customer.allowance_bps // 10_000
            deduct = position == 0 or self.rng.random() < 0.5
            deduction = self.rng.randint(1, cap) if deduct and cap >= 1 else 0
            code = self.rng.choice(_DEDUCTION_CODES) if deduction else None
            paid = invoice.open_minor - deduction
            items.append((invoice, paid, invoice.open_minor))
            docs.append(
                fmt.RemittanceDoc(invoice.number, invoice.open_minor, paid, deduction, code)
            )
            if deduction:
                short.append(ShortPayTruth(invoice.number, deduction, f"deduction:{code}"))
        return _Intent(items, "", tuple(docs), short)

    def _amount_intent(
        self, category: str, customer: _Customer, invoice: _Invoice, currency: str
    ) -> _Intent | None:
        rng = self.rng
        open_minor = invoice.open_minor
        unit = 10 ** exponent(currency)
        if category == "short_pay_uncoded":
            shortfall = max(1, open_minor * rng.randrange(5, 40) // 1000)
            paid = open_minor - shortfall
            short = [ShortPayTruth(invoice.number, shortfall, "unexplained")]
            return _Intent(
                [(invoice, paid, paid)], _ref_variant(rng, invoice.number), short_pays=short
            )
        if category == "partial":
            paid = open_minor * rng.randrange(25, 61) // 100 // unit * unit
            if paid <= 0:
                return None
            text = (
                f"{invoice.number} {rng.choice(('PARTIAL PAYMENT', 'INSTALLMENT 1', 'ON ACCOUNT'))}"
            )
            return _Intent([(invoice, paid, paid)], text)
        if category == "overpayment":
            excess = max(unit, open_minor * rng.randrange(1, 9) // 100)
            return _Intent(
                [(invoice, open_minor, open_minor)], invoice.number, overpaid_minor=excess
            )
        if category == "cash_before_invoice":
            early = self._new_invoice(customer, currency)
            memo_ts = math.floor(self.clock / DAY_S + 1) * DAY_S + self.rng.uniform(9, 15) * 3600
            self._schedule(memo_ts, self._invoice_delivery(early))
            return _Intent([(early, early.open_minor, early.open_minor)], early.number)
        return None

    def _book_transfer(
        self, customer: _Customer, category: str, currency: str, file_format: str, intent: _Intent
    ) -> None:
        account = self._account(currency, file_format)
        amount = sum(paid for _, paid, _ in intent.items) + intent.overpaid_minor
        if category == "lookalike_payer":
            payer, iban = customer.hidden_variant, _iban(self.rng, "DE")
        else:
            payer = self.rng.choice((*customer.aliases, customer.name))
            iban = (
                customer.ibans[0]
                if category in ("no_reference", "subset_no_ref")
                else self.rng.choice(customer.ibans)
            )
        entry = fmt.BankEntry(
            end_to_end_id=self._e2e(),
            servicer_ref=self._servicer_ref(),
            amount_minor=amount,
            currency=currency,
            booked_at=_dt(self.clock),
            payer_name=payer,
            payer_iban=iban,
            unstructured=intent.text,
            structured=intent.structured,
            rail=_rail(currency, file_format),
        )
        truth = PaymentTruth(
            payment_id=_bank_payment_id(entry, file_format),
            source="bank",
            format=file_format,
            customer_id=customer.customer_id,
            currency=currency,
            amount_minor=amount,
            category=category,
            placeable=True,
            received_at=fmt.iso_z(_dt(self.clock)),
            allocations=tuple(
                Allocation(invoice.number, paid) for invoice, paid, _ in intent.items
            ),
            short_pays=tuple(intent.short_pays),
            overpaid_minor=intent.overpaid_minor,
            aliases=(entry.servicer_ref, entry.end_to_end_id),
        )
        for invoice, _, settled in intent.items:
            self._settle(invoice, settled, category)
        account.entries.append(_PendingEntry(entry, truth))

    def _unknown_payer(self) -> None:
        currency = _weighted(self.rng, self.cfg.currency_weights)
        file_format = "camt053" if currency != "GBP" else "mt940"
        account = self._account(currency, file_format)
        amount = self._amount(currency, 20, 5000)
        entry = fmt.BankEntry(
            end_to_end_id=self._e2e(),
            servicer_ref=self._servicer_ref(),
            amount_minor=amount,
            currency=currency,
            booked_at=_dt(self.clock),
            payer_name=self.rng.choice(_UNKNOWN_PAYERS),
            payer_iban=_iban(self.rng, "GB" if currency == "GBP" else "FR"),
            unstructured=self.rng.choice(("CONSULTING FEE Q1", "REF 88231", "DEPOSIT", "")),
            rail=_rail(currency, file_format),
        )
        truth = PaymentTruth(
            payment_id=entry.end_to_end_id,
            source="bank",
            format=file_format,
            customer_id=None,
            currency=currency,
            amount_minor=amount,
            category="unknown_payer",
            placeable=False,
            received_at=fmt.iso_z(_dt(self.clock)),
            unapplied_minor=amount,
            aliases=(entry.servicer_ref,),
        )
        account.entries.append(_PendingEntry(entry, truth))

    # -- periodic files ------------------------------------------------------------------------

    def _periodic(self, until_ts: float) -> None:
        while True:
            due = min(self.next_bank_ts, self.next_payout_ts, self.next_settlement_ts)
            if due > until_ts:
                return
            if due == self.next_payout_ts:
                self._flush_payouts(due)
                self.next_payout_ts += self.cfg.payout_every_days * DAY_S
            elif due == self.next_settlement_ts:
                self._flush_settlement(due)
                self.next_settlement_ts += self.cfg.settlement_every_days * DAY_S
            else:
                self._flush_bank(due)
                self.next_bank_ts += DAY_S

    def _flush_bank(self, at_ts: float) -> None:
        at = _dt(at_ts)
        for key in sorted(self.accounts):
            account = self.accounts[key]
            if not account.entries:
                continue
            entries = [pending.entry for pending in account.entries]
            truth: list[TruthRecord] = [p.truth for p in account.entries if p.truth is not None]
            account.sequence += 1
            body = self._statement_text(account, at, entries)
            account.balance_minor += sum(entry.amount_minor for entry in entries)
            account.entries = []
            self._schedule(at_ts, _Delivery("bank", account.format, body, truth=truth))

    def _statement_text(self, account: _Account, at: datetime, entries: list[fmt.BankEntry]) -> str:
        statement_id = f"STMT{at:%Y%m%d}{account.currency}{account.sequence:05d}"
        if account.format == "mt940":
            return fmt.mt940_statement(
                statement_id,
                account.number,
                account.currency,
                created=at,
                opening_minor=account.balance_minor,
                entries=entries,
                sequence=account.sequence,
            )
        if account.format == "bai2":
            return fmt.bai2_file(
                f"{account.sequence}",
                account.number,
                account.currency,
                created=at,
                opening_minor=account.balance_minor,
                entries=entries,
            )
        return fmt.camt053_statement(
            statement_id,
            account.number,
            account.currency,
            created=at,
            opening_minor=account.balance_minor,
            entries=entries,
        )

    def _flush_payouts(self, at_ts: float) -> None:
        at = _dt(at_ts)
        for currency in sorted(self.payouts):
            buffer = self.payouts[currency]
            net = sum(txn["net"] for txn in buffer.txns)
            if not buffer.txns or (net <= 0 and not self.draining):
                continue
            payout_id = f"po_{_token(self.rng, 24)}"
            gross = sum(txn["amount"] for txn in buffer.txns)
            fees = sum(txn["fee"] for txn in buffer.txns)
            payout_txn = fmt.stripe_balance_txn(
                f"txn_{_token(self.rng, 24)}",
                "payout",
                -net,
                fee_minor=0,
                currency=currency,
                created=at,
                source=payout_id,
                description="STRIPE PAYOUT",
            )
            body = fmt.stripe_balance_list(payout_id, [*buffer.txns, payout_txn])
            if buffer.creep:
                self.creep_payouts.append(payout_id)
            self.payouts[currency] = _PayoutBuffer()
            bank_id = self._payout_credit(
                currency, net, at_ts, "STRIPE PAYMENTS", f"STRIPE PAYOUT {payout_id}"
            )
            truth = PayoutTruth("stripe", payout_id, currency, gross, fees, net, bank_id)
            self._schedule(at_ts, _Delivery("stripe", "balance_transactions", body, truth=[truth]))

    def _payout_credit(self, currency: str, net: int, at_ts: float, payer: str, text: str) -> str:
        if net <= 0:
            return ""
        account = self._account(currency, "mt940" if currency == "GBP" else "camt053")
        entry = fmt.BankEntry(
            end_to_end_id=self._e2e(),
            servicer_ref=self._servicer_ref(),
            amount_minor=net,
            currency=currency,
            booked_at=_dt(at_ts),
            payer_name=payer,
            payer_iban=None,
            unstructured=text,
            rail="wire",
        )
        account.entries.append(_PendingEntry(entry, None))
        return entry.end_to_end_id

    def _flush_settlement(self, at_ts: float) -> None:
        """One Amazon settlement for every marketplace order since the last one."""
        invoices, self.amazon_buffer = self.amazon_buffer, []
        start_ts, self.settlement_start_ts = self.settlement_start_ts, at_ts
        if not invoices:
            return
        settlement_id = f"{11_000_000_000 + self._next('settlement')}"
        rows: list[fmt.AmazonRow] = []
        truth: list[TruthRecord] = []
        for invoice in invoices:
            order_rows = self._amazon_rows(invoice)
            rows += order_rows
            fee = -sum(row.amount_minor for row in order_rows[1:])
            truth.append(
                PaymentTruth(
                    payment_id=f"amazon:{settlement_id}:{invoice.aliases[0]}",
                    source="amazon",
                    format="settlement_v2",
                    customer_id=invoice.customer.customer_id,
                    currency=invoice.currency,
                    amount_minor=invoice.amount_minor - fee,
                    category="marketplace_settlement",
                    placeable=True,
                    received_at=fmt.iso_z(_dt(at_ts)),
                    allocations=(Allocation(invoice.number, invoice.amount_minor),),
                    fee_minor=fee,
                )
            )
            invoice.pending -= 1
            self._settle(invoice, invoice.amount_minor, "marketplace_settlement")
        total = sum(row.amount_minor for row in rows)
        body = fmt.amazon_settlement(settlement_id, _dt(start_ts), _dt(at_ts), "USD", rows)
        bank_id = self._payout_credit(
            "USD", total, at_ts + DAY_S / 4, "AMAZON PAYMENTS INC", f"SETTLEMENT {settlement_id}"
        )
        gross = sum(invoice.amount_minor for invoice in invoices)
        truth.append(
            PayoutTruth("amazon", settlement_id, "USD", gross, gross - total, total, bank_id)
        )
        self._schedule(at_ts, _Delivery("amazon", "settlement_v2", body, truth=truth))

    def _amazon_rows(self, invoice: _Invoice) -> list[fmt.AmazonRow]:
        """Principal, then what Amazon keeps: commission and fulfilment fee."""
        posted = _dt(invoice.issued_ts + 3600)
        commission = invoice.amount_minor * 15 // 100
        fba = self.rng.randrange(300, 800)
        return [
            fmt.AmazonRow(
                invoice.aliases[0],
                invoice.number,
                amount_type,
                description,
                amount,
                posted,
                "SKU-1",
            )
            for amount_type, description, amount in (
                ("ItemPrice", "Principal", invoice.amount_minor),
                ("ItemFees", "Commission", -commission),
                ("ItemFees", "FBAPerUnitFulfillmentFee", -fba),
            )
        ]

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> Iterator[tuple[str, list[TruthRecord]]]:
        for offset, customer in enumerate(self.customers):
            at_ts = self.start_ts - DAY_S + offset
            self._schedule(
                at_ts, _Delivery("erp", "customer", self._customer_body(customer, _dt(at_ts)))
            )
        yield from self._pop_due(self.start_ts)
        while self.emitted + len(self.heap) < self.n_events:
            self.clock += self.rng.expovariate(1.0 / self.mean_gap_s)
            self._periodic(self.clock)
            self._expire(self.clock)
            self.step()
            yield from self._pop_due(self.clock)
        self.draining = True
        yield from self._drain()

    def _drain(self) -> Iterator[tuple[str, list[TruthRecord]]]:
        while True:
            candidates = [self.heap[0][0]] if self.heap else []
            if any(account.entries for account in self.accounts.values()):
                candidates.append(self.next_bank_ts)
            if any(buffer.txns for buffer in self.payouts.values()):
                candidates.append(self.next_payout_ts)
            if self.amazon_buffer:
                candidates.append(self.next_settlement_ts)
            if not candidates:
                return
            due = min(candidates)
            self.clock = max(self.clock, due)
            self._periodic(due)
            yield from self._pop_due(due)

    def final_truth(self) -> list[TruthRecord]:
        """Everything still undecided once the stream is over."""
        while self.issued:
            invoice = self.issued.popleft()
            invoice.expired = True
            self._maybe_finalize(invoice)
        if self.creep_payouts:
            self.loose_truth.append(
                FeeAnomalyTruth(
                    processor="stripe",
                    start=fmt.iso_z(_dt(self.creep_start_ts)),
                    end=fmt.iso_z(_dt(self.creep_end_ts)),
                    expected_bps=self.cfg.stripe_fee_bps,
                    observed_bps=self.cfg.stripe_fee_bps + self.cfg.fee_creep_bps,
                    payout_ids=tuple(self.creep_payouts),
                )
            )
        truth, self.loose_truth = self.loose_truth, []
        return truth


@dataclass(slots=True)
class _Intent:
    """What a transfer means: (invoice, applied, settled) items and the text sent."""

    items: list[tuple[_Invoice, int, int]]
    text: str
    structured: tuple[fmt.RemittanceDoc, ...] = ()
    short_pays: list[ShortPayTruth] = field(default_factory=list)
    overpaid_minor: int = 0


def _bank_payment_id(entry: fmt.BankEntry, file_format: str) -> str:
    """BAI2 has no end-to-end field: its payment id is the bank reference."""
    return entry.servicer_ref if file_format == "bai2" else entry.end_to_end_id


def _rail(currency: str, file_format: str) -> str:
    if file_format == "bai2":
        return "ach"
    return "sepa" if currency == "EUR" else "wire"


def _unique_subset(pool: list[_Invoice], total: int, size: int) -> bool:
    """True when exactly one subset of at most `size` invoices sums to `total`."""
    amounts = sorted(invoice.open_minor for invoice in pool)
    if total in amounts:
        return False
    count = 0
    for k in range(2, size + 1):
        count += _count_sums(amounts, total, k)
        if count > 1:
            return False
    return count == 1


def _count_sums(amounts: list[int], total: int, k: int, start: int = 0) -> int:
    if k == 0:
        return 1 if total == 0 else 0
    found = 0
    for index in range(start, len(amounts)):
        if amounts[index] > total:
            break
        found += _count_sums(amounts, total - amounts[index], k - 1, index + 1)
    return found


# --- public API ---------------------------------------------------------------------------------


def generate(
    config: MessConfig, seed: int, n_events: int
) -> Iterator[tuple[str, list[TruthRecord]]]:
    """Yield (replay line, truth records) in arrival order; at least `n_events` lines.

    Truth records ride with the line that makes them knowable; the records that
    only the end of the stream settles (final open amounts, the fee-creep
    period) ride with the last line.
    """
    customers = min(config.customers, max(8, n_events // 10))
    sim = _Simulation(_with_customers(config, customers), seed, n_events)
    held: tuple[str, list[TruthRecord]] | None = None
    for line, truth in sim.run():
        if held is not None:
            yield held
        held = (line, list(truth))
    if held is not None:
        held[1].extend(sim.final_truth())
        yield held


def _with_customers(config: MessConfig, customers: int) -> MessConfig:
    from dataclasses import replace

    return replace(config, customers=customers)


def write(
    path_in: Path,
    path_truth: Path,
    config: MessConfig | None = None,
    seed: int = 0,
    n_events: int = 200,
) -> tuple[int, int]:
    """Write the replay input and its ground truth; returns (lines, truth records)."""
    lines = records = 0
    with path_in.open("w", encoding="utf-8") as replay, path_truth.open("wb") as truth_file:
        for line, truth in generate(config or MessConfig(), seed, n_events):
            replay.write(line)
            replay.write("\n")
            lines += 1
            for record in truth:
                truth_file.write(orjson.dumps(record.to_record()))
                truth_file.write(b"\n")
                records += 1
    return lines, records
