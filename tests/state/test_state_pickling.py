"""Flow state survives pickling attribute for attribute, whichever core runs.

Bytewax recovery pickles every ledger. Each record class says how it pickles
(`state.pickling`); this walks a ledger holding every kind of record and its
unpickled copy side by side, so an attribute left out of a class's pickled
state fails here, in the interpreted core and in the compiled one alike.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from array import array
from collections import deque
from enum import Enum
from pathlib import Path
from typing import Any

from arrecon.state.dunning import DunningPolicy, DunningStep
from arrecon.state.events import DisputePhase
from arrecon.state.ledger import Ledger, LedgerPolicy
from arrecon.state.matching import MatchPolicy, OpenBook, OpenInvoice
from tests.state.test_ledger import customer, day, dispute, invoice, payment, run

RECORDS = {
    "Ledger",
    "_Invoice",
    "_Rare",
    "_Payment",
    "_Stuck",
    "_Dispute",
    "_DueGroup",
    "OpenBook",
    "_BucketIndex",
    "Footprint",
    "_DueScan",
    "MatchPolicy",
}


def attributes(obj: object) -> tuple[str, ...]:
    """An object's attributes: a compiled class lists them in `__mypyc_attrs__`,
    an interpreted one in its slots (and its `__dict__`, if it has one)."""
    cls = type(obj)
    native = getattr(cls, "__mypyc_attrs__", None)
    if native is not None:
        return tuple(name for name in native if name != "__dict__")
    names = [name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())]
    names += list(getattr(obj, "__dict__", {}))
    return tuple(dict.fromkeys(name for name in names if name != "__weakref__"))


def assert_same(left: Any, right: Any, seen: set[str], path: str) -> None:
    """`right` equals `left` attribute for attribute, down through the core's records."""
    assert type(left) is type(right), path
    if isinstance(left, Enum):
        assert left is right, path
    elif type(left).__module__.startswith("arrecon.state."):
        seen.add(type(left).__qualname__)
        names = attributes(left)
        assert names, path
        for name in names:
            assert_same(getattr(left, name), getattr(right, name), seen, f"{path}.{name}")
    elif isinstance(left, dict):
        assert list(left) == list(right), path
        for key in left:
            assert_same(left[key], right[key], seen, f"{path}[{key!r}]")
    elif isinstance(left, list | tuple | deque):
        assert len(left) == len(right), path
        for index, (one, other) in enumerate(zip(left, right, strict=True)):
            assert_same(one, other, seen, f"{path}[{index}]")
    else:
        assert isinstance(left, str | int | float | set | frozenset | array | type(None)) or (
            type(left).__module__ == "datetime"
        ), f"{path}: {type(left)!r} not compared"
        assert left == right, path


def rich_ledger() -> Ledger:
    """A ledger with every kind of record, each attribute off its default where
    the engine sets one: paid and disputed invoices, a payment with an order
    handle, an id bucket that is text, cash waiting for an invoice, due dates."""
    driver = run(
        customer(allowance_bps=200),
        invoice("A", 10_000),
        invoice("B", 5_000, po_number="PO-7", external_ids=("in_1abc",)),
        invoice("ORDER-12X", 7_000, due=40),  # its key's bucket is text, not a number
        payment("P", 10_000, "A", "shopify_order:5100037592"),
        payment("Q", 999, on=2),
        invoice("C", 3_000, on=3),
        dispute("D1", "P", DisputePhase.OPENED, 10_000, on=4),
    )
    driver.tick(day(31))
    assert driver.ledger is not None
    return driver.ledger


def test_a_ledger_survives_pickling_attribute_for_attribute() -> None:
    ledger = rich_ledger()
    seen: set[str] = set()
    clone = pickle.loads(pickle.dumps(ledger, protocol=pickle.HIGHEST_PROTOCOL))
    assert_same(ledger, clone, seen, "ledger")
    assert seen >= RECORDS, f"the scenario reaches no {sorted(RECORDS - seen)}"


def test_book_records_stay_shared_after_pickling() -> None:
    """The book indexes the ledger's own invoice records: one object each, also
    after a round trip (a copy would let the book and the ledger drift apart)."""
    clone = pickle.loads(pickle.dumps(rich_ledger()))
    record = clone.book.get("B")
    assert record is not None
    assert record is clone.invoices["B"]


def test_a_bare_book_pickles() -> None:
    book = OpenBook([OpenInvoice("INV-1", "USD", 500, 500, day(30), "PO-1", ("in_9",))])
    clone = pickle.loads(pickle.dumps(book))
    seen: set[str] = set()
    assert_same(book, clone, seen, "book")
    assert {"OpenBook", "OpenInvoice", "_BucketIndex"} <= seen


def test_policies_pickle_with_their_values() -> None:
    """Policies travel in the flow's state too (frozen: rebuilt by their constructors)."""
    steps = (DunningStep("soon", -2), DunningStep("late", 9))
    policy = LedgerPolicy(
        match=MatchPolicy(fuzzy_threshold=91.0, max_subset_size=4),
        settled_retention_days=90,
        seen_ids_max=1_000,
        short_pay_tolerance_minor=50,
        dunning=DunningPolicy(cadences=(("vip", steps),), default_segment="vip"),
    )
    assert pickle.loads(pickle.dumps(policy)) == policy


_DIGEST = (
    "import hashlib, pickle, arrecon.state as core; "
    "from tests.state.test_state_pickling import rich_ledger; "
    "data = pickle.dumps(rich_ledger(), protocol=pickle.HIGHEST_PROTOCOL); "
    "print(core.NATIVE, hashlib.sha256(data).hexdigest())"
)


def _pickle_digest(native: bool) -> tuple[str, str]:
    """(core in use, sha256 of the rich ledger's pickle) from a fresh interpreter.
    The hash seed is fixed: set iteration order is part of a pickle's bytes."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONHASHSEED": "0", "ARRECON_NATIVE": "1" if native else "0"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", _DIGEST],
        check=False,
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    core, digest = done.stdout.split()
    return core, digest


def test_both_cores_pickle_a_ledger_to_the_same_bytes() -> None:
    """So a recovery folder written by one core is read by the other. Where the
    compiled core is built (`make native`, as CI does), this compares the two."""
    interpreted_core, interpreted = _pickle_digest(native=False)
    default_core, default = _pickle_digest(native=True)
    assert interpreted_core == "False"
    assert default == interpreted, f"compiled core in use: {default_core}"
