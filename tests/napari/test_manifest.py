"""The npe2 manifest is found from the installed package and from a built wheel."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from npe2 import PluginManager, PluginManifest

ROOT = Path(__file__).resolve().parents[2]


def test_manifest_found_through_npe2_entry_point():
    pm = PluginManager()
    pm.discover()
    manifest = pm.get_manifest("medseg-napari")
    # The file npe2 found is the package's napari.yaml (a link to the root manifest).
    contributions = manifest.contributions
    assert [r.command for r in contributions.readers] == ["medseg-napari.get_reader"]
    assert {tuple(w.layer_types) for w in contributions.writers} == {("labels",), ("image",)}
    assert {s.key for s in contributions.sample_data} == {"phantom", "phantom_axis_aligned"}
    widgets = {w.display_name for w in contributions.widgets}
    assert {"Volume", "Threshold", "Region growing", "Edit tools", "Evaluation", "Segment"} <= widgets
    # every command points at something importable
    for command in contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.python_name


def test_package_manifest_is_the_root_manifest():
    import medseg_napari

    packaged = Path(medseg_napari.__file__).parent / "napari.yaml"
    assert yaml.safe_load(packaged.read_text()) == yaml.safe_load((ROOT / "napari.yaml").read_text())
    PluginManifest.from_file(packaged)  # validates against npe2's schema


@pytest.mark.timeout(300)
def test_built_wheel_carries_manifest_and_entry_point(tmp_path):
    # Build from a copy so no build/ folder is left in (or reused from) the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "napari.yaml"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "medseg_napari", src / "medseg_napari", symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("medseg_napari-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        manifest = yaml.safe_load(zf.read("medseg_napari/napari.yaml"))
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert manifest["name"] == "medseg-napari"
    assert "medseg-napari = medseg_napari:napari.yaml" in entry_points
    assert "medseg = medseg_napari.cli:main" in entry_points
    assert not any(n.startswith("tests/") for n in names)
