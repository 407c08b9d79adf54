"""Engines a benchmark starts die with it, so no run leaves an orphan behind.

Linux only (prctl PR_SET_PDEATHSIG); elsewhere the hook does nothing.
"""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Callable

__all__ = ["dying_with_parent"]

_PR_SET_PDEATHSIG = 1


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def dying_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A `preexec_fn` asking the kernel to send `sig` to the child when its parent dies."""

    def arm() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, sig)

    return arm
