"""Open napari with volumes (or the phantom) and the plugin's widgets docked."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PLUGIN = "medseg-napari"


def plugin_widget_names() -> list[str]:
    """Display names of the plugin's widgets, in manifest order."""
    from npe2 import PluginManager

    manifest = PluginManager.instance().get_manifest(PLUGIN)
    return [w.display_name for w in manifest.contributions.widgets or []]


def dock_plugin_widgets(viewer: Any, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Dock the plugin's widgets as tabs on the right; return ``{name: widget}``."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QTabWidget

    # Tabs along the dock's side keep every widget's full name readable.
    viewer.window._qt_window.setTabPosition(Qt.RightDockWidgetArea, QTabWidget.East)
    docked, docks = {}, []
    for name in names or plugin_widget_names():
        dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)
        docked[name] = widget
        docks.append(dock)
    if docks:
        docks[0].raise_()  # show the first tab
    return docked


def open_viewer(paths: Sequence[str | Path] = (), *, show: bool = True) -> Any:
    """A napari viewer with ``paths`` opened (the phantom when empty) and the widgets docked."""
    import napari

    # napari warns on every slice of an oblique volume that its 2D view leaves out the
    # out-of-plane tilt; the README says so once, the terminal need not say it each time.
    warnings.filterwarnings("ignore", message="Non-orthogonal slicing")

    from medseg_napari._napari.reader import read_layers
    from medseg_napari._napari.sample_data import phantom

    viewer = napari.Viewer(title="medseg-napari", show=show)
    layers = [layer for path in paths for layer in read_layers(path)] if paths else phantom()
    for data, kwargs, layer_type in layers:
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    docked = dock_plugin_widgets(viewer)
    if not paths and "Segment" in docked:
        docked["Segment"].select_model("phantom")  # the sample works with one click
    viewer.reset_view()
    return viewer
