"""Threshold, region-growing and edit-tools widgets on a real viewer (make_napari_viewer + qtbot).

Seeds are clicked as world points; Grow writes the label; undo (napari's history,
as Ctrl+Z) restores the exact previous voxels; other labels are never touched;
errors give a message and change nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from medseg_napari._napari.layers import image_layer_data, labels_layer_data
from medseg_napari._widgets.editing import EditToolsWidget
from medseg_napari._widgets.region_growing import RegionGrowingWidget
from medseg_napari._widgets.threshold import ThresholdWidget
from medseg_napari.core.classical.editing import morphology
from medseg_napari.core.classical.threshold import range_mask
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.metrics.overlap import dice_scores
from medseg_napari.core.phantom import make_phantom
from medseg_napari.core.volume import Volume

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(shape=(24, 64, 64), seed=3)  # oblique, anisotropic (2.5, 1, 1)


def add_image(viewer, volume, name="image"):
    data, kwargs, _ = image_layer_data(volume, name=name)
    return viewer.add_image(data, **kwargs)


def add_labels(viewer, volume, name="labels"):
    data, kwargs, _ = labels_layer_data(volume, name=name)
    return viewer.add_labels(data, **kwargs)


@pytest.fixture
def grow_setup(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    image = add_image(viewer, phantom.image)
    existing = np.zeros(phantom.labels.shape, np.uint8)
    existing[phantom.labels.array == 1] = 3  # another structure already labelled 3
    labels = add_labels(viewer, phantom.labels.with_array(existing))
    widget = RegionGrowingWidget(viewer)
    qtbot.addWidget(widget)
    widget.image.set_layer(image)
    widget.target.layers.set_layer(labels)
    widget.target.value.setValue(1)
    return viewer, widget, image, labels


def centre_world(phantom, value):
    index = np.argwhere(phantom.labels.array == value).mean(axis=0).round()
    return phantom.image.geometry.index_to_world(index)


def grow(qtbot, widget):
    with qtbot.waitSignal(widget.jobs.finished, timeout=20000):
        qtbot.mouseClick(widget.grow_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=20000)


def test_click_seeds_grow_writes_the_label_and_undo_restores(grow_setup, qtbot, phantom):
    _viewer, widget, _image, labels = grow_setup
    seeds = widget.new_seeds_layer()
    assert seeds.mode == "add"
    seeds.add(centre_world(phantom, 2))  # a click at the sphere's centre, in world mm
    before = np.array(labels.data)
    grow(qtbot, widget)
    after = np.array(labels.data)
    sphere = phantom.labels.array == 2
    assert dice_scores((after == 1).astype(np.uint8), sphere.astype(np.uint8))[1] > 0.9
    np.testing.assert_array_equal(after == 3, before == 3)  # the other label is untouched
    assert "voxels added" in widget.status.text()

    # A second click in the nodule and Grow again: the label grows, nothing else changes.
    seeds.add(centre_world(phantom, 3))
    grow(qtbot, widget)
    second = np.array(labels.data)
    assert ((second == 1) >= (after == 1)).all()
    assert (second == 1)[phantom.labels.array == 3].mean() > 0.5
    np.testing.assert_array_equal(second == 3, before == 3)

    labels.undo()  # what Ctrl+Z does on the layer
    np.testing.assert_array_equal(labels.data, after)
    widget.undo.undo_button.click()
    np.testing.assert_array_equal(labels.data, before)
    widget.undo.redo_button.click()
    np.testing.assert_array_equal(labels.data, after)


def test_grow_makes_a_labels_layer_on_the_image_grid_when_none(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    image = add_image(viewer, phantom.image)
    widget = RegionGrowingWidget(viewer)
    qtbot.addWidget(widget)
    seeds = widget.new_seeds_layer()
    seeds.add(centre_world(phantom, 2))
    grow(qtbot, widget)
    made = widget.target.layers.layer()
    assert made is not None and made.data.shape == image.data.shape
    np.testing.assert_allclose(made.affine.affine_matrix, image.affine.affine_matrix)
    sphere = (phantom.labels.array == 2).astype(np.uint8)
    assert dice_scores((np.asarray(made.data) == 1).astype(np.uint8), sphere)[1] > 0.9


def test_preview_shows_the_region_without_writing(grow_setup, qtbot, phantom):
    _viewer, widget, _image, labels = grow_setup
    widget.new_seeds_layer().add(centre_world(phantom, 2))
    before = np.array(labels.data)
    with qtbot.waitSignal(widget.jobs.finished, timeout=20000):
        widget.preview_button.click()
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=20000)
    np.testing.assert_array_equal(labels.data, before)
    assert widget.preview is not None and widget.preview.data.sum() == widget.last.n_voxels > 200


@pytest.mark.parametrize("case", ["no seeds layer", "empty seeds", "outside", "grid"])
def test_grow_errors_give_a_message_and_change_nothing(grow_setup, make_napari_viewer, qtbot, phantom, case):
    viewer, widget, _image, labels = grow_setup
    before = np.array(labels.data)
    if case == "empty seeds":
        widget.new_seeds_layer()
    elif case == "outside":
        widget.new_seeds_layer().add(phantom.image.geometry.index_to_world((12, 32, 500)))
    elif case == "grid":
        widget.new_seeds_layer().add(centre_world(phantom, 2))
        other = add_labels(viewer, Volume(np.zeros((24, 64, 64), np.uint8), Geometry(spacing=(2.5, 1, 1))), "other")
        widget.target.layers.set_layer(other)
    n_layers = len(viewer.layers)
    assert widget.start(write=True) is None  # refused before any work
    message = widget.status.text()
    expected = {
        "no seeds layer": "no seeds",
        "empty seeds": "no seed points",
        "outside": "lies outside the image",
        "grid": "not on the grid",
    }[case]
    assert expected in message and "\n" not in message
    np.testing.assert_array_equal(labels.data, before)
    assert len(viewer.layers) == n_layers


# ----------------------------------------------------------------- threshold
@pytest.fixture
def threshold_setup(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    image = add_image(viewer, phantom.image)
    labels = add_labels(viewer, phantom.labels)  # labels 1, 2, 3 already there
    widget = ThresholdWidget(viewer)
    qtbot.addWidget(widget)
    widget.image.set_layer(image)
    widget.target.layers.set_layer(labels)
    return viewer, widget, image, labels


def test_threshold_live_preview_follows_the_slider(threshold_setup, qtbot):
    _viewer, widget, image, _labels = threshold_setup
    widget.slider.setValue((600.0, 800.0))
    expected = range_mask(np.asarray(image.data), low=widget.range()[0], high=widget.range()[1])
    qtbot.waitUntil(
        lambda: widget.preview is not None and np.array_equal(widget.preview.data.astype(bool), expected),
        timeout=5000,
    )
    assert expected.sum() > 0
    widget.slider.setValue((900.0, 1200.0))
    expected = range_mask(np.asarray(image.data), low=widget.range()[0], high=widget.range()[1])
    qtbot.waitUntil(lambda: np.array_equal(widget.preview.data.astype(bool), expected), timeout=5000)
    np.testing.assert_allclose(widget.preview.affine.affine_matrix, image.affine.affine_matrix)


def test_threshold_apply_writes_only_background_and_undo_restores(threshold_setup, qtbot):
    _viewer, widget, image, labels = threshold_setup
    widget.target.value.setValue(4)
    widget.slider.setValue((300.0, 500.0))  # the tissue around the structures
    before = np.array(labels.data)
    low, high = widget.range()  # the slider's own values (it may round to its step)
    assert low == pytest.approx(300, abs=0.5) and high == pytest.approx(500, abs=0.5)
    changed = widget.apply()
    after = np.array(labels.data)
    in_range = range_mask(np.asarray(image.data), low=low, high=high)
    np.testing.assert_array_equal(after == 4, in_range & (before == 0))
    assert changed == int((in_range & (before == 0)).sum()) > 0
    np.testing.assert_array_equal(after[before > 0], before[before > 0])  # labels 1-3 untouched
    widget.undo.undo_button.click()
    np.testing.assert_array_equal(labels.data, before)


def test_threshold_otsu_and_multi_otsu_set_the_range(threshold_setup):
    from skimage.filters import threshold_multiotsu, threshold_otsu

    _viewer, widget, image, _labels = threshold_setup
    data = np.asarray(image.data)
    widget.otsu_button.click()
    low, high = widget.slider.value()
    assert low == pytest.approx(threshold_otsu(data), abs=0.1) and high == pytest.approx(data.max(), abs=0.1)
    widget.classes.setValue(3)
    widget.which.setValue(2)
    widget.multi_button.click()
    t = threshold_multiotsu(data, classes=3)
    assert widget.slider.value() == pytest.approx(tuple(t), abs=0.1)


def test_threshold_on_a_mismatched_grid_changes_nothing(threshold_setup):
    viewer, widget, _image, _labels = threshold_setup
    other = add_labels(viewer, Volume(np.zeros((24, 64, 32), np.uint8), Geometry()), "other")
    widget.target.layers.set_layer(other)
    assert widget.apply() == 0
    assert "has shape" in widget.status.text()
    assert not np.asarray(other.data).any()


# ----------------------------------------------------------------- edit tools
@pytest.fixture
def edit_setup(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    array = np.zeros((9, 30, 30), np.uint8)
    array[4, 10:14, 10:14] = 1
    array[4, 10:14, 15:18] = 2  # a neighbour one voxel away
    labels = add_labels(viewer, Volume(array, Geometry(spacing=(4.0, 1.0, 1.0))), "edit")
    widget = EditToolsWidget(viewer)
    qtbot.addWidget(widget)
    widget.labels.set_layer(labels)
    widget.label.setValue(1)
    return viewer, widget, labels


def run_tool(qtbot, widget):
    with qtbot.waitSignal(widget.jobs.finished, timeout=20000):
        widget.apply_button.click()
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=20000)


def test_dilate_2mm_on_4mm_slices_spares_the_neighbour_and_undoes(edit_setup, qtbot):
    _viewer, widget, labels = edit_setup
    widget.set_tool("dilate")
    widget.param_widgets["radius_mm"].setValue(2.0)
    before = np.array(labels.data)
    run_tool(qtbot, widget)
    after = np.array(labels.data)
    expected = morphology(before == 1, operation="dilate", radius_mm=2.0, spacing=(4, 1, 1)) & (before != 2)
    np.testing.assert_array_equal(after == 1, expected)
    assert set(np.nonzero(after == 1)[0].tolist()) == {4}  # 0 slices across, 2 voxels in-plane
    np.testing.assert_array_equal(after == 2, before == 2)
    widget.undo.undo_button.click()
    np.testing.assert_array_equal(labels.data, before)


def test_twenty_one_edits_undo_step_by_step_to_the_exact_start(edit_setup, qtbot):
    _viewer, widget, labels = edit_setup
    states = [np.array(labels.data)]
    tools = ["dilate", "erode"] * 10 + ["dilate"]
    for name in tools:
        widget.set_tool(name)
        widget.param_widgets["radius_mm"].setValue(1.0)
        run_tool(qtbot, widget)
        states.append(np.array(labels.data))
    assert not np.array_equal(states[-1], states[0])
    for state in reversed(states[:-1]):
        labels.undo()
        np.testing.assert_array_equal(labels.data, state)


def test_union_with_a_label_of_another_layer(edit_setup, qtbot):
    viewer, widget, labels = edit_setup
    other_array = np.zeros((9, 30, 30), np.uint8)
    other_array[5, 0:3, 0:3] = 7
    other = add_labels(viewer, Volume(other_array, Geometry(spacing=(4.0, 1.0, 1.0))), "other")
    widget.labels.set_layer(labels)
    widget.label.setValue(1)
    widget.set_tool("union")
    assert widget.other_box.isVisibleTo(widget)
    widget.other_layer.set_layer(other)
    widget.other_label.setValue(7)
    run_tool(qtbot, widget)
    assert (np.asarray(labels.data)[5, 0:3, 0:3] == 1).all()
    assert (np.asarray(labels.data) == 1).sum() == 16 + 9


def test_edit_errors_give_a_message_and_change_nothing(edit_setup, qtbot):
    viewer, widget, labels = edit_setup
    before = np.array(labels.data)
    widget.label.setValue(9)  # an empty label
    widget.set_tool("erode")
    with qtbot.waitSignal(widget.jobs.failed, timeout=20000):
        widget.apply_button.click()
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=20000)
    assert "label 9 is empty" in widget.status.text()
    np.testing.assert_array_equal(labels.data, before)
    # Logical operation with a layer on another grid: refused before any work.
    bad = add_labels(viewer, Volume(np.zeros((9, 30, 30), np.uint8), Geometry(spacing=(1, 1, 1))), "bad")
    widget.labels.set_layer(labels)
    widget.label.setValue(1)
    widget.set_tool("subtract")
    widget.other_layer.set_layer(bad)
    assert widget.start() is None
    assert "not on the grid" in widget.status.text()
    np.testing.assert_array_equal(labels.data, before)
