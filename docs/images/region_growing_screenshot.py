"""Make ``docs/images/region_growing.png``: the region-growing widget in use on the phantom.

Run from the repository root: ``xvfb-run -a .venv/bin/python docs/images/region_growing_screenshot.py``
"""

from __future__ import annotations

import time
import warnings

import napari
import numpy as np
from napari._qt.dialogs.qt_notification import NapariQtNotification
from qtpy.QtWidgets import QApplication

from medseg_napari._napari.layers import image_layer_data
from medseg_napari._widgets.region_growing import RegionGrowingWidget
from medseg_napari.core.phantom import make_phantom

OUT = "docs/images/region_growing.png"


def settle(app: QApplication, seconds: float = 1.0) -> None:
    """Let Qt and the canvas catch up."""
    end = time.time() + seconds
    while time.time() < end:
        app.processEvents()
        time.sleep(0.02)


def main() -> None:
    warnings.filterwarnings("ignore")  # keep deprecation toasts off the picture
    ph = make_phantom(oblique=False)
    geometry = ph.image.geometry
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 850)
    data, kwargs, _ = image_layer_data(ph.image, name="phantom")
    image = viewer.add_image(data, **kwargs)
    image.contrast_limits = (0, 1000)
    widget = RegionGrowingWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Region growing", area="right")

    seeds = widget.new_seeds_layer()
    centres = {v: np.argwhere(ph.labels.array == v).mean(axis=0).round() for v in (1, 2)}
    for value in (1, 2):  # one click in the ellipsoid, one in the dark sphere
        seeds.add(geometry.index_to_world(centres[value]))
    widget.tolerance.setValue(3.0)
    widget.start(write=True)
    app = QApplication.instance()
    deadline = time.time() + 30
    while widget.jobs.running and time.time() < deadline:
        settle(app, 0.05)

    viewer.dims.set_point(0, geometry.index_to_world(centres[1])[0])  # the slice of the first seed
    viewer.reset_view()
    widget.target.layers.layer().opacity = 0.55
    seeds.mode = "add"
    viewer.layers.move(viewer.layers.index(seeds), len(viewer.layers))
    viewer.layers.selection.active = seeds
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    settle(app)
    print(widget.status.text())
    viewer.screenshot(path=OUT, canvas_only=False)
    viewer.close()


if __name__ == "__main__":
    main()
