"""Make ``docs/images/app.png``: ``medseg view`` on the phantom, every widget docked.

Run from the repository root: ``xvfb-run -a .venv/bin/python docs/images/app_screenshot.py``
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from napari._qt.dialogs.qt_notification import NapariQtNotification
from qtpy.QtWidgets import QApplication

from medseg_napari._napari.app import open_viewer

OUT = "docs/images/app.png"


def main() -> None:
    warnings.filterwarnings("ignore")  # keep deprecation toasts off the picture
    viewer = open_viewer()
    viewer.window.resize(1500, 900)
    viewer.reset_view()
    image, truth = viewer.layers["phantom"], viewer.layers["phantom truth"]
    # the slice through the nodule, where all three structures show
    k = int(np.argwhere(truth.data == 3)[:, 0].mean())
    viewer.dims.set_point(0, image.data_to_world((k, 48, 48))[0])
    app = QApplication.instance()
    app.processEvents()
    viewer.reset_view()
    segment = viewer.window.dock_widgets["Segment (medseg-napari)"]
    segment.parent().raise_() if hasattr(segment, "parent") else None
    end = time.time() + 1.5
    while time.time() < end:
        app.processEvents()
        time.sleep(0.02)
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    app.processEvents()
    viewer.screenshot(path=OUT, canvas_only=False)
    print(f"wrote {OUT}")
    viewer.close()


if __name__ == "__main__":
    main()
