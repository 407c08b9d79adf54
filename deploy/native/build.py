"""Compile the reconciliation core (`arrecon.state.NATIVE_MODULES`) with mypyc.

Run from the repository root: `python deploy/native/build.py` (or `make native`).
The extension modules are written beside their sources in `state/` with a
stamp (a digest of the sources): `arrecon.state` runs the compiled modules
only while that stamp matches the sources. A fresh interpreter then checks
that each module loads compiled; if one does not, the build is removed.
`--clean` removes it too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / "state"
GROUP = "arrecon.state.native"  # the shared runtime becomes arrecon.state.native__mypyc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled core")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    from arrecon.state import NATIVE_MODULES, NATIVE_STAMP, sources_digest

    clean(NATIVE_STAMP)
    if args.clean:
        return 0
    compile_core([f"arrecon/state/{name}.py" for name in NATIVE_MODULES])
    (STATE / NATIVE_STAMP).write_text(sources_digest() + "\n")
    try:
        check_imports(NATIVE_MODULES)
    except subprocess.CalledProcessError:
        clean(NATIVE_STAMP)
        raise
    print(f"native: compiled {', '.join(NATIVE_MODULES)}")
    return 0


def clean(stamp: str) -> None:
    """Remove the stamp first, then every extension module in state/."""
    (STATE / stamp).unlink(missing_ok=True)
    for path in STATE.iterdir():
        if any(path.name.endswith(suffix) for suffix in EXTENSION_SUFFIXES):
            path.unlink()


def compile_core(paths: list[str]) -> None:
    from mypyc.build import mypycify
    from setuptools import Extension, setup

    with tempfile.TemporaryDirectory(prefix="arrecon-native-") as scratch:
        built = mypycify(paths, opt_level="3", group_name=GROUP, target_dir=scratch)
        extensions = cast("list[Extension]", built)  # mypyc's own Extension type union
        setup(
            name="arrecon-native",
            ext_modules=extensions,
            script_args=["build_ext", "--inplace", "--build-temp", scratch, "--quiet"],
        )


def check_imports(modules: tuple[str, ...]) -> None:
    """Each module must load compiled in a fresh interpreter, or the build failed."""
    probe = (
        "import importlib, sys; from importlib.machinery import EXTENSION_SUFFIXES as X; "
        "import arrecon.state as s; assert s.NATIVE, 'compiled core not in use'; "
        "bad = [m for m in sys.argv[1:] "
        "if not importlib.import_module('arrecon.state.' + m).__file__.endswith(tuple(X))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", probe, *modules], check=True, cwd=ROOT)


if __name__ == "__main__":
    raise SystemExit(main())
