"""Segment widget: one click adds the labels layer; Cancel leaves nothing; clear errors."""

from __future__ import annotations

import time

import pytest

from medseg_napari._napari.layers import image_layer_data
from medseg_napari._widgets._models import LOAD_ITEM
from medseg_napari._widgets.segment import SegmentWidget
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.metrics import dice_scores
from medseg_napari.core.model.registry import list_models, resolve_model
from medseg_napari.core.phantom import make_phantom

pytestmark = pytest.mark.gui


def _add(viewer, volume, name):
    data, kwargs, _ = image_layer_data(volume, name=name)
    return viewer.add_image(data, **kwargs)


def test_segment_adds_labels_on_the_image_grid(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    ph = make_phantom()
    _add(viewer, ph.image, "phantom")
    widget = SegmentWidget(viewer)
    names = [widget.model_combo.itemText(i) for i in range(widget.model_combo.count())]
    assert names[-1] == LOAD_ITEM and "phantom" in names
    widget.select_model("phantom")
    assert widget.device_label.text().startswith(("CPU", "GPU"))
    assert "1 ellipsoid, 2 sphere, 3 nodule" in widget.model_info.text()
    with qtbot.waitSignal(widget.job.finished, timeout=60000):
        widget.segment_button.click()
    layer = viewer.layers["phantom phantom"]
    assert layer.data.shape == ph.image.shape
    assert Geometry.from_dict(layer.metadata["geometry"]).is_close(ph.image.geometry)
    assert layer.metadata["label_names"] == {1: "ellipsoid", 2: "sphere", 3: "nodule"}
    assert list(layer.features["name"]) == ["background", "ellipsoid", "sphere", "nodule"]
    dice = dice_scores(layer.data, ph.labels.array, labels=[1, 2])
    assert min(dice.values()) > 0.9
    text = widget.result_label.text()
    assert " s on " in text and "sphere" in text


def test_cancel_stops_fast_and_adds_no_layer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    big = make_phantom(shape=(80, 192, 192), spacing=(1.25, 0.5, 0.5), seed=3)  # resampled, many windows
    _add(viewer, big.image, "big")
    widget = SegmentWidget(viewer)
    reports = []
    widget.job.progressed.connect(reports.append)
    widget.segment_button.click()
    qtbot.waitUntil(lambda: any(r.total and r.done >= 1 for r in reports), timeout=60000)
    start = time.perf_counter()
    with qtbot.waitSignal(widget.job.cancelled, timeout=5000):
        widget.job.cancel_button.click()
    assert time.perf_counter() - start < 1.0
    qtbot.waitUntil(lambda: not widget.job.running, timeout=5000)
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert widget.result_label.text() == "cancelled; no layer added"
    assert widget.segment_button.isEnabled()


def test_model_file_errors_and_added_models(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    corrupt = tmp_path / "bad.pt"
    corrupt.write_bytes(b"garbage")
    with pytest.raises(MedsegError, match="corrupt"):
        widget.add_model_path(corrupt)
    shipped = widget.model_combo.count()  # shipped models + "Load model file..."
    assert shipped == len(list_models()) + 1

    copy = tmp_path / "mine.pt"
    copy.write_bytes(resolve_model("phantom").read_bytes())
    widget.add_model_path(copy)
    assert widget.model_combo.currentText() == "mine.pt" and widget.model().name == "mine"
    widget.refresh_models()
    assert widget.model_combo.currentText() == "mine.pt" and widget.model_combo.count() == shipped + 1


def test_no_image_gives_a_message(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    widget.segment_button.click()
    assert "choose a 3D image layer" in widget.result_label.text()
    assert not widget.job.running and len(viewer.layers) == 0
