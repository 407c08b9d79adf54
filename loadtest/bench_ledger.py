"""Ledger micro-benchmarks: payment latency by book size, memory per open invoice.

Run: `.venv/bin/python -m arrecon.loadtest.bench_ledger [--samples N]`

Latency: a customer holds 10, 1,000 or 10,000 open invoices; each sample applies
one new payment that settles one invoice it quotes through `ledger.apply`:
matching, application, outcomes with their ids, the status row. Timed with
perf_counter_ns. Target: median <= 20 us at 1,000 invoices. Four cases, by
what the module-level memo caches (`references`, `matching`) already hold:

- explicit ref: the id as a Stripe charge or a remittance line carries it.
  Its keys are memoised, as the flow leaves them: the resolver keys a
  payment's references just before the ledger step, and the invoice's own
  keys were made when it was issued.
- narrative, mined: the id inside a bank narrative the resolver has already
  mined (the text memo holds it: one worker runs both steps).
- narrative, new text: a text no step has read, so the ledger extracts it.
- explicit ref, cold: every memo emptied before each call (an invoice issued
  long ago, once more than the memos hold were issued since).

Outcome records: timeit of building the two outcomes a payment emits (compiled
classes with hand-written constructors; see `arrecon.state`).

Memory: tracemalloc measures what stays allocated after 10,000 invoices,
decoded from ERP payloads as the flow decodes them, were issued into one
ledger (the events themselves are released first, so only what the ledger
keeps is counted: its records and the strings they hold, the matcher's book
and indexes, the timers and the idempotency memory). Target: <= 400 bytes per
open invoice. The module-level memo caches (reference normalisation, key
forms, tails) are bounded whatever the number of invoices (at most ~310k
entries in all, shared by every ledger), so they are emptied before the
reading and reported on their own line: at 10M invoices they add almost
nothing per invoice.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import pickle
import random
import statistics
import sys
import time
import timeit
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from string import ascii_uppercase
from time import perf_counter_ns

import orjson

from arrecon.connectors import erp
from arrecon.connectors.envelope import RawEnvelope
from arrecon.loadtest import formats
from arrecon.loadtest.bench_replay import core_name
from arrecon.state import matching, references
from arrecon.state.events import InvoiceIssued, PaymentReceived
from arrecon.state.ledger import Ledger, LedgerPolicy, apply
from arrecon.state.matching import OpenBook, OpenInvoice, match_payment
from arrecon.state.money import Money
from arrecon.state.outcomes import Applied, InvoiceStatus
from arrecon.state.references import extract_references

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
POLICY = LedgerPolicy()
CUSTOMER = "C-BENCH"


def invoice_events(count: int, seed: int = 7) -> list[InvoiceIssued]:
    """Realistic shapes: distinct issue times, due dates on 60 calendar days, varied
    amounts, a PO on every third. Each is decoded from its ERP payload bytes, as
    the flow does, so its strings are the decoder's own objects (a literal "USD"
    would be one shared object and hide what a decoded invoice costs)."""
    rng = random.Random(seed)
    events = []
    for n in range(count):
        issued = T0 + timedelta(minutes=n)
        body = formats.erp_invoice(
            f"INV-2026-{n:06d}",
            CUSTOMER,
            rng.randrange(50_000, 5_000_000),
            "USD",
            po_number=f"PO-{rng.randrange(10**6):06d}" if n % 3 == 0 else None,
            issued_at=issued,
            due_at=datetime(2026, 2, 1, tzinfo=UTC) + timedelta(days=n % 60),
            channel="b2b_portal",
            external_ids=(),
        )
        envelope = RawEnvelope("erp", "invoice", issued, orjson.dumps(body))
        (event,) = erp.decode(envelope).events
        assert isinstance(event, InvoiceIssued)
        events.append(event)
    return events


def build(count: int) -> Ledger:
    ledger: Ledger | None = None
    for event in invoice_events(count):
        ledger, _ = apply(ledger, CUSTOMER, event, event.occurred_at, POLICY)
    assert ledger is not None
    return ledger


CASES = ("explicit ref", "narrative, mined", "narrative, new text", "explicit ref, cold")


_TEXTS = itertools.count()


def _quote(case: str, number: str, wording: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(invoice_refs, references) of a payment quoting `number` as `case` says.

    Every narrative ends in a word of its own: the text memo outlives a case
    (numbers repeat between cases and book sizes), so a repeated text would
    be extracted once for all.
    """
    if case.startswith("narrative"):
        return (), (f"{wording} {number} thank you {_word(next(_TEXTS))}",)
    return (number,), ()


def _word(n: int) -> str:
    """`n` in letters (A, B, ..., BA, ...): a word, never a reference."""
    letters = ascii_uppercase[n % 26]
    while n >= 26:
        n //= 26
        letters = ascii_uppercase[n % 26] + letters
    return letters


def prepare_memos(case: str, references: tuple[str, ...]) -> None:
    """Leave the memo caches as `case` says, outside the timed region."""
    if case == "narrative, mined":
        for text in references:
            extract_references(text)
    elif case == "explicit ref, cold":
        clear_memos()


def payment_latency_ns(count: int, samples: int, *, case: str) -> tuple[list[int], list[int]]:
    """Per-sample ns of `apply` for a payment that settles one random invoice, and
    of `match_payment` alone on the same book (it is pure, so timed just before,
    on a payment worded differently: no timed call warms the other's memos).

    Each paid invoice is re-issued under the next number outside the timed
    region, so the book keeps `count` open invoices throughout.
    """
    ledger = build(count)
    rng = random.Random(11)
    at = T0 + timedelta(days=20)
    numbers = [f"INV-2026-{n:06d}" for n in range(count)]
    timings: list[int] = []
    matching: list[int] = []
    for n in range(samples):
        slot = rng.randrange(count)
        number = numbers[slot]
        view = ledger.invoice(number)
        assert view is not None
        amount = Money(view.open_minor, "USD")
        payments = []
        for wording in ("Remittance", "Payment"):
            refs, texts = _quote(case, number, wording)
            payments.append(
                PaymentReceived(
                    event_id=f"bank:{n}",
                    occurred_at=at,
                    payment_id=f"TX-{n}",
                    amount=amount,
                    source="bank",
                    invoice_refs=refs,
                    references=texts,
                )
            )
        prepare_memos(case, payments[0].references)
        start = perf_counter_ns()
        match_payment(ledger.book, payments[0], POLICY.match)
        matching.append(perf_counter_ns() - start)
        prepare_memos(case, payments[1].references)
        start = perf_counter_ns()
        after, _ = apply(ledger, CUSTOMER, payments[1], at, POLICY)
        timings.append(perf_counter_ns() - start)
        numbers[slot] = fresh = f"INV-2026-{count + n:06d}"  # the next number in sequence
        template = invoice_events(1, seed=n)[0]  # a fresh amount, as real invoices have
        reissue = replace(template, invoice_number=fresh, event_id=fresh)
        after, _ = apply(after, CUSTOMER, reissue, at, POLICY)
        assert after is ledger
    return timings, matching


def clear_memos() -> None:
    """Empty the bounded module-level memo caches of the matching path."""
    for module in (references, matching):
        for value in vars(module).values():
            cache_clear = getattr(value, "cache_clear", None)
            if callable(cache_clear):
                cache_clear()


def traced_bytes(make: Callable[[], object], *, memos: bool = False) -> tuple[int, object]:
    """Bytes still allocated after `make()` returns (its garbage collected first);
    with `memos=False` the bounded memo caches are emptied before the reading."""
    clear_memos()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = make()
    if not memos:
        clear_memos()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, kept


def _book_only(count: int) -> OpenBook:
    book = OpenBook()
    for event in invoice_events(count):
        amount = event.amount.amount_minor
        book.add(
            OpenInvoice(event.invoice_number, "USD", amount, amount, event.due_at, event.po_number)
        )
    return book


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5_000)
    args = parser.parse_args(argv)
    print(f"core: {core_name()}")
    print("apply(payment settling one invoice), perf_counter_ns per call, medians")
    print("  quote                  open   apply  match_payment  rest (ledger + book)   apply p99")
    for case in CASES:
        for count in (10, 1_000, 10_000):
            timings, matching = payment_latency_ns(count, args.samples, case=case)
            apply_us = statistics.median(timings) / 1000
            match_us = statistics.median(matching) / 1000
            p99_us = sorted(timings)[int(len(timings) * 0.99)] / 1000
            print(
                f"  {case:<19} {count:>6} {apply_us:6.1f} us {match_us:8.1f} us "
                f"{apply_us - match_us:12.1f} us {p99_us:18.1f} us"
            )
    count = 10_000
    total, ledger = traced_bytes(lambda: build(count))
    with_memos, _ = traced_bytes(lambda: build(count), memos=True)
    book, _ = traced_bytes(lambda: _book_only(count))
    assert isinstance(ledger, Ledger)
    print(f"memory per open invoice ({count:,} invoices, tracemalloc)")
    print(f"  whole ledger          {total / count:7.0f} bytes")
    print(f"  of which OpenBook     {book / count:7.0f} bytes (records and matcher indexes)")
    print(f"  ledger records+timers {(total - book) / count:7.0f} bytes")
    print(f"  bounded memo caches   {(with_memos - total) / count:7.0f} bytes (shared)")
    applied_us, status_us = outcome_build_us()
    print("outcome records built per payment (best of 5 timeit runs)")
    print(f"  Applied {applied_us:.2f} us, InvoiceStatus {status_us:.2f} us")
    dump_s, load_s, size = snapshot_cost(ledger)
    print("snapshot of that ledger (pickle, as Bytewax recovery does), per open invoice")
    print(f"  pickle {dump_s / count * 1e6:.2f} us, unpickle {load_s / count * 1e6:.2f} us, "
          f"{size / count:.0f} bytes")  # fmt: skip
    return 0


def outcome_build_us(number: int = 200_000) -> tuple[float, float]:
    """us to build an `Applied` and an `InvoiceStatus`, the two outcomes of a payment."""
    at = T0
    evidence = ("ref 'INV-2026-000001' -> INV-2026-000001 (number, exact_number)",)
    applied = timeit.repeat(
        lambda: Applied("0" * 16, at, "TX-1", "INV-2026-000001", CUSTOMER, 100, "USD", "m", 1.0,
                        evidence, at),
        number=number, repeat=5,
    )  # fmt: skip
    status = timeit.repeat(
        lambda: InvoiceStatus("0" * 16, at, "INV-2026-000001", CUSTOMER, "paid", 0, 100, "USD",
                              at, at, "b2b_portal", at),
        number=number, repeat=5,
    )  # fmt: skip
    return min(applied) / number * 1e6, min(status) / number * 1e6


def snapshot_cost(ledger: Ledger, repeat: int = 5) -> tuple[float, float, int]:
    """Best-of-`repeat` CPU seconds to pickle and unpickle `ledger`, and its pickle size."""
    dumps, loads = [], []
    for _ in range(repeat):
        start = time.process_time()
        blob = pickle.dumps(ledger)
        dumps.append(time.process_time() - start)
        start = time.process_time()
        pickle.loads(blob)
        loads.append(time.process_time() - start)
    return min(dumps), min(loads), len(blob)


if __name__ == "__main__":
    sys.exit(main())
