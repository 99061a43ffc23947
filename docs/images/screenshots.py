"""Make the README screenshots: ``app.png`` and ``hippocampus.png``.

Run from the repository root: ``xvfb-run -a .venv/bin/python docs/images/screenshots.py [app|hippocampus]``
(``hippocampus`` needs ``../shared/data/hippocampus``; ``region_growing_screenshot.py`` makes its own).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
from napari._qt.dialogs.qt_notification import NapariQtNotification
from qtpy.QtWidgets import QApplication

from medseg_napari._napari.app import open_viewer

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "shared" / "data"


def settle(seconds: float = 1.0) -> None:
    """Let Qt and the canvas catch up, then close notification toasts."""
    app = QApplication.instance()
    end = time.time() + seconds
    while time.time() < end:
        app.processEvents()
        time.sleep(0.02)
    for toast in app.activeWindow().findChildren(NapariQtNotification) if app.activeWindow() else []:
        toast.close()
    app.processEvents()


def _show_tab(viewer, name: str):
    widget = viewer.window.dock_widgets[f"{name} (medseg-napari)"]
    widget.parent().raise_()
    return widget


def app_screenshot() -> None:
    """``medseg view`` on the phantom: every widget docked, the slice through the nodule."""
    viewer = open_viewer()
    viewer.window.resize(1500, 900)
    truth = viewer.layers["phantom truth"]
    k = int(np.argwhere(truth.data == 3)[:, 0].mean())
    viewer.dims.set_point(0, truth.data_to_world((k, 48, 48))[0])
    _show_tab(viewer, "Segment")
    settle(0.5)
    viewer.reset_view()
    settle(1.0)
    viewer.screenshot(path=str(HERE / "app.png"), canvas_only=False)
    viewer.close()


def hippocampus_screenshot(case: str = "hippocampus_014") -> None:
    """A validation case (never trained on) segmented with the shipped model; expert labels hidden below."""
    image = DATA / "hippocampus" / "imagesTr" / f"{case}.nii.gz"
    labels = DATA / "hippocampus" / "labelsTr" / f"{case}.nii.gz"
    viewer = open_viewer([image, labels])
    viewer.window.resize(1400, 850)
    viewer.layers[-1].name = f"{case} expert"
    viewer.layers[-1].visible = False
    segment = _show_tab(viewer, "Segment")
    segment.select_model("hippocampus-mri")
    segment._pickers[0].set_layer(viewer.layers[case])
    segment.run()
    deadline = time.time() + 60
    while segment.job.running and time.time() < deadline:
        settle(0.05)
    result = viewer.layers[-1]
    k = int(np.argwhere(result.data > 0)[:, 0].mean())
    viewer.dims.set_point(0, result.data_to_world((k, 0, 0))[0])
    viewer.reset_view()
    viewer.camera.zoom *= 0.9
    settle(1.0)
    viewer.screenshot(path=str(HERE / "hippocampus.png"), canvas_only=False)
    viewer.close()


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    which = sys.argv[1:] or ["app", "hippocampus"]
    if "app" in which:
        app_screenshot()
    if "hippocampus" in which and DATA.exists():
        hippocampus_screenshot()
