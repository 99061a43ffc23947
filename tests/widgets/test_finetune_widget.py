"""Fine-tune widget: add corrected cases, fine-tune, the new model shows up in the Segment widget."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from medseg_napari._napari.layers import image_layer_data, labels_layer_data
from medseg_napari._widgets._models import clear_user_models
from medseg_napari._widgets.finetune import FineTuneWidget
from medseg_napari._widgets.segment import SegmentWidget
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.io import read_volume
from medseg_napari.core.model.format import load_model
from medseg_napari.core.model.training import state_path, train
from medseg_napari.core.phantom import PHANTOM_LABELS, make_phantom
from medseg_napari.core.workspace import Workspace

pytestmark = pytest.mark.gui
TINY = {"network_channels": (4, 8, 16), "num_res_units": 1, "patch_size": (16, 32, 32), "orientation": "LPS"}


@pytest.fixture(autouse=True)
def _forget_models():
    clear_user_models()
    yield
    clear_user_models()


@pytest.fixture
def tiny_parent(tmp_path):
    pairs = [(p.image, p.labels) for p in (make_phantom(shape=(16, 32, 32), seed=s) for s in (1, 2))]
    path = tmp_path / "parent.pt"
    train(pairs, output=path, iterations=1, val_fraction=0, device="cpu", labels=PHANTOM_LABELS, **TINY)
    state_path(path).unlink()
    return path


def _add_case(viewer, seed, name):
    ph = make_phantom(shape=(16, 32, 32), seed=seed)
    data, kwargs, _ = image_layer_data(ph.image, name=name)
    image = viewer.add_image(data, **kwargs)
    data, kwargs, _ = labels_layer_data(ph.labels, name=f"{name} labels", label_names=PHANTOM_LABELS)
    labels = viewer.add_labels(data, **kwargs)
    return ph, image, labels


def test_add_cases_finetune_and_pick_in_segment_widget(make_napari_viewer, qtbot, tmp_path, tiny_parent):
    viewer = make_napari_viewer()
    segment_widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment_widget, name="Segment")
    widget = FineTuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fine-tune")
    parent_digest = hashlib.sha256(tiny_parent.read_bytes()).hexdigest()

    widget.set_model_path(tiny_parent)
    assert widget.model_path() == tiny_parent.resolve()
    widget.create_workspace(tmp_path / "ws")
    assert widget.ready_label.text() == "0 of 0 cases ready (corrected 0, reviewed 0)"

    # Add two corrected cases from the layers (geometry kept).
    phantoms = []
    for seed, name in ((21, "case_a"), (22, "case_b")):
        ph, image, labels = _add_case(viewer, seed, name)
        phantoms.append(ph)
        widget.image_picker.set_layer(image)
        widget.labels_picker.set_layer(labels)
        widget.add_button.click()
    assert widget.ready_label.text() == "2 of 2 cases ready (corrected 2, reviewed 0)"
    ws = Workspace.open(tmp_path / "ws")  # reopened from disk
    assert [(c.name, c.status) for c in ws.cases] == [("case_a", "corrected"), ("case_b", "corrected")]
    saved = read_volume(ws.case("case_a").label_path)
    assert np.array_equal(saved.array, phantoms[0].labels.array)
    assert saved.geometry.is_close(phantoms[0].image.geometry)

    # Adding case_b again asks first; "no" keeps the case as it was.
    edited = viewer.layers["case_b labels"]
    edited.data = np.where(edited.data == 3, 0, edited.data)
    before_bytes = ws.case("case_b").label_path.read_bytes()
    questions = []
    widget.confirm = lambda q: questions.append(q) or False
    widget.add_button.click()
    assert questions == ["The workspace has a case 'case_b' already. Replace it?"]
    assert ws.case("case_b").label_path.read_bytes() == before_bytes
    widget.confirm = lambda q: True
    widget.add_button.click()
    assert not (read_volume(ws.case("case_b").label_path).array == 3).any()
    assert widget.ready_label.text().startswith("2 of 2")

    # Fine-tune for a few iterations.
    widget.iterations_spin.setValue(3)
    assert widget.output_edit.text() == str(tmp_path / "ws" / "models" / "parent-ft1.pt")
    with qtbot.waitSignal(widget.job.finished, timeout=120000):
        widget.finetune_button.click()
    result = widget.last_result
    out = tmp_path / "ws" / "models" / "parent-ft1.pt"
    assert result.path == out and out.exists()
    assert hashlib.sha256(tiny_parent.read_bytes()).hexdigest() == parent_digest
    # The plot got the parent's Dice at iteration 0, then the losses and validations.
    assert widget.plot.dice[0][0] == 0 and [it for it, _ in widget.plot.dice[1:]] == [1, 2, 3]
    assert [it for it, _ in widget.plot.loss] == [1, 2, 3]
    # The before/after table: one row per label and the mean.
    assert widget.table.rowCount() == 4
    assert widget.table.item(3, 0).text() == "mean"
    assert widget.table.item(3, 1).text() == f"{result.mean_before:.3f}"
    assert widget.table.item(3, 2).text() == f"{result.mean_after:.3f}"

    # The docked Segment widget offers the new model, and its card shows the parent.
    index = segment_widget.model_combo.findData(str(out))
    assert index >= 0 and segment_widget.model_combo.itemText(index) == "parent-ft1.pt"
    segment_widget.model_combo.setCurrentIndex(index)
    segment_widget.model_combo.activated.emit(index)  # as when the user picks it
    assert "fine-tuned from:</b> parent" in segment_widget.model_info.text()
    assert load_model(out).training["parent"]["name"] == "parent"
    assert "**Parent**: `parent`" in out.with_suffix(".md").read_text()
    # A Segment widget opened later offers it too; the next suggested name does not clash.
    assert SegmentWidget(viewer).model_combo.findData(str(out)) >= 0
    assert widget.output_edit.text().endswith("parent-ft2.pt")


def test_errors_are_one_line_and_change_nothing(make_napari_viewer, qtbot, tmp_path, tiny_parent):
    viewer = make_napari_viewer()
    widget = FineTuneWidget(viewer)
    widget.add_button.click()
    assert widget.result_label.text() == "open or create a workspace first"
    widget.set_model_path(tiny_parent)
    widget.create_workspace(tmp_path / "ws")
    with qtbot.waitSignal(widget.job.failed, timeout=30000):
        widget.finetune_button.click()
    assert "no corrected or reviewed case to train on" in widget.result_label.text()
    assert not (tmp_path / "ws" / "models" / "parent-ft1.pt").exists()
    # Labels off the image grid are refused.
    _, image, labels = _add_case(viewer, 5, "x")
    labels.affine = Geometry(spacing=(3.0, 1.0, 1.0)).affine
    labels.metadata["geometry"] = Geometry(spacing=(3.0, 1.0, 1.0)).to_dict()
    widget.image_picker.set_layer(image)
    widget.labels_picker.set_layer(labels)
    widget.add_button.click()
    assert "are not on the grid of its image" in widget.result_label.text()
    assert Workspace.open(tmp_path / "ws").cases == []
