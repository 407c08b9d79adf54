"""The distribution maps every top-level folder under the one import root."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
NOT_PACKAGES = {"tests", "deploy", "arrecon", "build", "dist"}


def _package_dirs() -> dict[str, str]:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    return mapping


def _python_folders() -> set[str]:
    folders = set()
    for init in REPO_ROOT.glob("*/**/__init__.py"):
        relative = init.parent.relative_to(REPO_ROOT)
        top = relative.parts[0]
        if top.startswith(".") or top in NOT_PACKAGES:
            continue
        folders.add(relative.as_posix())
    return folders


def test_every_folder_is_mapped_under_arrecon() -> None:
    mapped = {folder for name, folder in _package_dirs().items() if name != "arrecon"}
    assert _python_folders() <= mapped, _python_folders() - mapped


def test_every_mapping_names_an_arrecon_subpackage_and_is_listed() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages = set(config["tool"]["setuptools"]["packages"])
    for name, folder in _package_dirs().items():
        assert name == "arrecon" or name.startswith("arrecon."), name
        assert name in packages, name
        assert (REPO_ROOT / folder / "__init__.py").is_file(), folder
        assert (REPO_ROOT / folder / "py.typed").is_file(), folder


def test_source_symlinks_match_mapping() -> None:
    for name, folder in _package_dirs().items():
        if name.count(".") != 1:
            continue
        link = REPO_ROOT / "arrecon" / name.split(".")[1]
        assert link.resolve() == (REPO_ROOT / folder).resolve(), link
