"""Evaluation widget: table follows painting; errors layer is exactly pred != ref split into FP / FN."""

from __future__ import annotations

import numpy as np
import pytest

from medseg_napari._napari.layers import labels_layer_data
from medseg_napari._widgets.evaluation import EvaluationWidget
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.metrics import evaluate_labels
from medseg_napari.core.volume import Volume

SPACING = (2.0, 1.0, 1.0)
NAMES = {1: "box", 2: "small"}


def add(viewer, array, name):
    data, kwargs, _ = labels_layer_data(
        Volume(array, Geometry(spacing=SPACING, origin=(5.0, -3.0, 2.0))), name=name, label_names=NAMES
    )
    return viewer.add_labels(data, **kwargs)


@pytest.fixture
def setup(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    ref = np.zeros((10, 24, 24), np.uint8)
    ref[2:8, 4:16, 4:16] = 1
    ref[3:5, 18:21, 18:21] = 2
    pred = np.roll(ref, 1, axis=2)
    ref_layer = add(viewer, ref, "reference")
    pred_layer = add(viewer, pred, "prediction")
    widget = EvaluationWidget(viewer)
    qtbot.addWidget(widget)
    widget.prediction_picker.set_layer(pred_layer)
    widget.reference_picker.set_layer(ref_layer)
    return viewer, widget, pred_layer, ref_layer


def wait_for_result(qtbot, widget):
    with qtbot.waitSignal(widget.jobs.finished, timeout=20000):
        widget.evaluate()
    widget.jobs.wait()


def test_table_matches_core_and_names(setup, qtbot):
    _, widget, pred_layer, ref_layer = setup
    wait_for_result(qtbot, widget)
    expected = {m.label: m for m in evaluate_labels(pred_layer.data, ref_layer.data, spacing=SPACING)}
    table = widget.table_values()
    assert set(table) == {1, 2}
    assert table[1]["Name"] == "box" and table[2]["Name"] == "small"
    assert float(table[1]["Dice"]) == pytest.approx(expected[1].dice, abs=1e-4)
    assert float(table[1]["HD mm"]) == pytest.approx(expected[1].hd, abs=1e-2)


def test_painting_prediction_updates_table(setup, qtbot):
    _, widget, pred_layer, ref_layer = setup
    wait_for_result(qtbot, widget)
    before = widget.table_values()[2]["Dice"]
    # Paint the small structure away in the prediction (a paint event, as a brush stroke emits).
    indices = np.nonzero(pred_layer.data == 2)
    with qtbot.waitSignal(widget.jobs.finished, timeout=20000):
        pred_layer.data_setitem(indices, 0)
    widget.jobs.wait()
    after = widget.table_values()[2]
    assert before != after["Dice"]
    assert float(after["Dice"]) == 0.0 and after["HD mm"] == "inf" and after["Empty"] == "prediction"
    expected = evaluate_labels(pred_layer.data, ref_layer.data, spacing=SPACING)[0]
    assert float(widget.table_values()[1]["Dice"]) == pytest.approx(expected.dice, abs=1e-4)


def test_show_errors_layer_is_fp_and_fn(setup, qtbot, tmp_path):
    viewer, widget, pred_layer, ref_layer = setup
    wait_for_result(qtbot, widget)
    layer = widget.show_errors()
    assert layer is not None and layer in viewer.layers
    pred, ref = pred_layer.data, ref_layer.data
    np.testing.assert_array_equal(layer.data > 0, pred != ref)
    np.testing.assert_array_equal(layer.data == 1, (pred != ref) & (pred != 0))
    np.testing.assert_array_equal(layer.data == 2, (pred != ref) & (pred == 0))
    np.testing.assert_allclose(layer.affine.affine_matrix, pred_layer.affine.affine_matrix)
    # Jump to the slice with the most errors, in world coordinates through the affine.
    counts = np.count_nonzero(pred != ref, axis=(1, 2))
    z = widget.go_to_most_errors()
    assert z == int(np.argmax(counts))
    assert viewer.dims.point[0] == pytest.approx(pred_layer.data_to_world([z, 0, 0])[0])
    # Export
    path = tmp_path / "metrics.csv"
    widget.export_csv(path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("case,label,name,dice") and len(lines) == 3
