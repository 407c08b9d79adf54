"""arrecon: streaming accounts-receivable reconciliation.

The sub-packages live in the repository's top-level folders (`state/`,
`connectors/`, `flows/`, `sinks/`, `loadtest/`) and are mapped under this one
import root by setuptools `package-dir`. Dependencies point one way:
flows -> connectors, sinks -> state.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("arrecon")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
