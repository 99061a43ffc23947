"""The core and the CLI start without Qt, napari or magicgui."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import medseg_napari.core

GUI = ("napari", "magicgui", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "superqt", "vispy")


def test_core_imports_no_gui():
    modules = [m.name for m in pkgutil.walk_packages(medseg_napari.core.__path__, "medseg_napari.core.")]
    assert "medseg_napari.core.geometry" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "import medseg_napari.cli; medseg_napari.cli.build_parser()\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {GUI!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"GUI modules imported by the core or CLI: {result.stdout}"


def test_import_linter_contract():
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "KEPT" in result.stdout
