"""How the core's records are pickled: the same bytes whichever core runs.

Bytewax pickles every changed ledger at the end of each epoch. Each class kept
in flow state says how it is rebuilt: one that needs constructor arguments
pickles as those arguments (`__reduce__`), followed, where the constructor does
not set everything, by a flat tuple of the rest (`__setstate__`); one built
without arguments pickles as a flat tuple of its attributes. Why not pickle's
default: for a slotted class that is a dict of slots, while a class compiled by
mypyc (see `arrecon.state`) has no slots, keeps a dict state of its own, and is
built by running `__init__`. Explicit, flat states are the same for both cores,
so a recovery folder survives switching between them, and a tuple is cheaper to
write and to read back than a dict.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

__all__ = ["by_constructor", "restore", "state_of"]


def by_constructor(record: Any) -> tuple[type[Any], tuple[Any, ...]]:
    """`__reduce__` of a dataclass whose fields are all constructor arguments:
    rebuilt by calling the class with its field values in order."""
    return type(record), tuple([getattr(record, field.name) for field in fields(record)])


def state_of(obj: object, names: tuple[str, ...]) -> tuple[object, ...]:
    """The values of `names` on `obj`, in order (for `__getstate__`)."""
    return tuple([getattr(obj, name) for name in names])


def restore(obj: object, names: tuple[str, ...], state: tuple[object, ...]) -> None:
    """Set `names` on `obj` from a `state_of` tuple (for `__setstate__`)."""
    for name, value in zip(names, state, strict=True):
        setattr(obj, name, value)
