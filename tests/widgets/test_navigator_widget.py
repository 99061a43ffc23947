"""Case navigator: metrics table equals `medseg evaluate`, failure browser jumps to the errors, autosave."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from matplotlib.backend_bases import MouseEvent

from medseg_napari._widgets.navigator import CaseNavigatorWidget
from medseg_napari.cli import main
from medseg_napari.core.cases import error_clusters
from medseg_napari.core.errors import VolumeWriteError
from medseg_napari.core.io import read_volume, write_volume
from medseg_napari.core.metrics import error_map
from medseg_napari.core.phantom import make_phantom
from medseg_napari.core.workspace import Workspace

SHAPE = (24, 48, 48)
CASES = ["p0", "p1", "p2", "p3", "p4"]


def perturb(labels: np.ndarray, i: int) -> np.ndarray:
    """Case i: shifted by i % 3 voxels along x; case 3 also loses its sphere (the worst case)."""
    pred = np.roll(labels, i % 3, axis=2)
    if i == 3:
        pred[pred == 2] = 0
    return pred


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """images/, predictions/, references/ with 5 oblique phantom cases."""
    root = tmp_path_factory.mktemp("nav")
    for sub in ("images", "predictions", "references"):
        (root / sub).mkdir()
    for i, name in enumerate(CASES):
        ph = make_phantom(shape=SHAPE, seed=i)
        write_volume(ph.image, root / "images" / f"{name}.nii.gz")
        write_volume(ph.labels, root / "references" / f"{name}.nii.gz")
        write_volume(
            ph.labels.with_array(perturb(ph.labels.array, i)), root / "predictions" / f"{name}.nii.gz"
        )
    return root


@pytest.fixture
def make_widget(make_napari_viewer, qtbot):
    def make(viewer=None):
        viewer = viewer or make_napari_viewer()
        widget = CaseNavigatorWidget(viewer)
        qtbot.addWidget(widget)
        return viewer, widget

    return make


def open_and_wait(qtbot, widget, **kwargs):
    with qtbot.waitSignal(widget.jobs.finished, timeout=30000):
        assert widget.open_folder(**kwargs) if "folder" in kwargs else widget.open_folders(**kwargs)
    widget.jobs.wait()


def test_table_equals_medseg_evaluate_and_failure_browser(dataset, make_widget, qtbot, tmp_path):
    viewer, widget = make_widget()
    open_and_wait(qtbot, widget, folder=dataset)
    out = tmp_path / "metrics.csv"
    assert (
        main(
            [
                "evaluate",
                str(dataset / "predictions"),
                str(dataset / "references"),
                "-o",
                str(out),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(out.open()))
    table = widget.table_values()
    assert sorted(table) == CASES
    for row in rows:
        cells = table[row["case"]]
        assert float(cells[f"Dice {row['name']}"]) == pytest.approx(float(row["dice"]), abs=5e-5)
        hd95 = cells[f"HD95 {row['name']} mm"]
        assert (
            hd95 == "inf" if row["hd95"] == "" else float(hd95) == pytest.approx(float(row["hd95"]), abs=5e-3)
        )
        assert cells["Status"] == "reviewed" and cells["Missing"] == ""
    mean_dice = {c: np.mean([float(r["dice"]) for r in rows if r["case"] == c]) for c in CASES}
    worst = min(mean_dice, key=mean_dice.get)
    assert sorted(mean_dice.values())[0] < sorted(mean_dice.values())[1]  # one clear worst case

    # Sort by Dice ascending, select the first row: the worst case opens with its error layer.
    widget.sort_by("Mean Dice", ascending=True)
    assert widget.case_order() == sorted(CASES, key=mean_dice.get)
    widget.table.selectRow(0)
    assert widget.current == worst
    names = [layer.name for layer in viewer.layers]
    assert names == [f"{worst} image", f"{worst} prediction", f"{worst} labels", f"{worst} errors"]
    pred = read_volume(dataset / "predictions" / f"{worst}.nii.gz").array
    ref = read_volume(dataset / "references" / f"{worst}.nii.gz").array
    errors_layer = viewer.layers[f"{worst} errors"]
    np.testing.assert_array_equal(errors_layer.data, error_map(pred, ref))
    assert errors_layer.affine.affine_matrix[:3, :3] != pytest.approx(
        np.diag(np.diag(errors_layer.affine.affine_matrix[:3, :3]))
    )  # oblique
    # The viewer's current slice (world point -> the layer's voxel index) is the one with the most errors.
    most = int(np.argmax(np.count_nonzero(pred != ref, axis=(1, 2))))
    index = errors_layer.world_to_data(viewer.dims.point)
    assert round(float(index[0])) == most

    # Error clusters, largest first, each centred in turn.
    expected = error_clusters(error_map(pred, ref))
    first = widget.next_error_cluster()
    assert first == expected[0]
    assert np.allclose(errors_layer.world_to_data(viewer.dims.point), first.focus, atol=0.5)
    second = widget.next_error_cluster()
    assert second == expected[1] and second.size <= first.size
    assert np.allclose(errors_layer.world_to_data(viewer.dims.point), second.focus, atol=0.5)

    # Next / Previous follow the table's order and replace the layers.
    widget.next_case()
    order = widget.case_order()
    assert widget.current == order[1]
    assert [layer.name.split()[0] for layer in viewer.layers] == [order[1]] * 4
    widget.previous_case()
    assert widget.current == order[0] and len(viewer.layers) == 4

    # The viewer's keyboard shortcut does the same.
    from app_model.types import KeyBinding

    viewer.keymap[KeyBinding.from_str("Shift+N")](viewer)
    assert widget.current == order[1]

    # Clicking a point of the box plot opens its case.
    widget.tabs.setCurrentIndex(1)
    widget.canvas.draw()
    artist, cases = next(iter(widget._pick_cases.items()))
    x, y = artist.get_offsets()[0]
    px, py = artist.axes.transData.transform((x, y))
    MouseEvent("button_press_event", widget.canvas, px, py, button=1)._process()
    assert widget.current == cases[0]


def test_open_metrics_csv_with_its_folders(dataset, make_widget, tmp_path):
    out = tmp_path / "metrics.csv"
    assert (
        main(
            [
                "evaluate",
                str(dataset / "predictions"),
                str(dataset / "references"),
                "-o",
                str(out),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    _, widget = make_widget()
    assert widget.open_folders(
        images=dataset / "images",
        predictions=dataset / "predictions",
        references=dataset / "references",
        metrics_csv=out,
    )
    assert not widget.jobs.running  # nothing recomputed: the CSV's numbers are shown
    table = widget.table_values()
    for row in csv.DictReader(out.open()):
        assert float(table[row["case"]][f"Dice {row['name']}"]) == pytest.approx(float(row["dice"]), abs=5e-5)


def test_missing_files_are_listed(dataset, make_widget, qtbot, tmp_path):
    import shutil

    root = tmp_path / "partial"
    shutil.copytree(dataset, root)
    (root / "references" / "p1.nii.gz").unlink()
    (root / "predictions" / "p2.nii.gz").unlink()
    viewer, widget = make_widget()
    open_and_wait(qtbot, widget, folder=root)
    table = widget.table_values()
    assert table["p1"]["Missing"] == "reference" and table["p1"]["Mean Dice"] == ""
    assert table["p2"]["Missing"] == "prediction" and table["p2"]["Mean Dice"] == ""
    assert table["p0"]["Missing"] == "" and table["p0"]["Mean Dice"] != ""
    assert "2 missing a file" in widget.source.text()
    # Empty cells sort last in both orders.
    widget.sort_by("Mean Dice", ascending=True)
    assert set(widget.case_order()[-2:]) == {"p1", "p2"}
    widget.sort_by("Mean Dice", ascending=False)
    assert set(widget.case_order()[-2:]) == {"p1", "p2"}
    # A case without a reference opens with the prediction as the starting labels and no error layer.
    assert widget.open_case("p1")
    assert [layer.name for layer in viewer.layers] == ["p1 image", "p1 prediction", "p1 labels"]


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "ws"
    ws = None
    (root.parent).mkdir(exist_ok=True)
    for i in range(3):
        ph = make_phantom(shape=SHAPE, seed=10 + i)
        if ws is None:
            ws = Workspace.create(root, label_names=ph.label_names)
            (root / "predictionsTr").mkdir()
        ws.add_case(f"w{i}", ph.image, ph.labels, status="predicted")
        write_volume(
            ph.labels.with_array(perturb(ph.labels.array, i + 1)), root / "predictionsTr" / f"w{i}.nii.gz"
        )
    return root


def paint(layer, value=3):
    """A brush stroke: a block of voxels set to ``value`` (a paint event, like the brush)."""
    index = tuple(np.mgrid[5:8, 10:20, 10:20].reshape(3, -1))
    layer.data_setitem(index, value)
    expected = np.array(layer.data, copy=True)
    return expected


def test_autosave_on_leaving_and_restart(workspace, make_widget, qtbot):
    viewer, widget = make_widget()
    open_and_wait(qtbot, widget, folder=workspace)
    assert widget.table_values()["w0"]["Status"] == "predicted"
    original = (workspace / "labelsTr" / "w0.nii.gz").read_bytes()
    widget.open_case("w0")
    edited = paint(viewer.layers["w0 labels"])
    assert widget.dirty
    with qtbot.waitSignal(widget.jobs.finished, timeout=30000):  # the saved case is re-evaluated
        widget.next_case()
    widget.jobs.wait()
    assert widget.current == "w1"
    np.testing.assert_array_equal(read_volume(workspace / "labelsTr" / "w0.nii.gz").array, edited)
    assert (workspace / "labelsTr" / ".backup" / "w0.nii.gz").read_bytes() == original
    assert Workspace.open(workspace).case("w0").status == "corrected"
    assert widget.table_values()["w0"]["Status"] == "corrected"

    # Restart the widget: the edit is on disk and the status is corrected.
    widget.close()
    _, again = make_widget(viewer)
    open_and_wait(qtbot, again, folder=workspace)
    assert again.table_values()["w0"]["Status"] == "corrected"
    assert again.table_values()["w1"]["Status"] == "predicted"
    assert again.open_case("w0")
    np.testing.assert_array_equal(viewer.layers["w0 labels"].data, edited)


def test_autosave_timer(workspace, make_widget, qtbot):
    viewer, widget = make_widget()
    assert widget.open_folder(workspace, compute=False)
    widget.open_case("w2")
    widget.autosave.setValue(1)
    edited = paint(viewer.layers["w2 labels"], value=1)
    qtbot.waitUntil(lambda: not widget.dirty, timeout=5000)
    widget.jobs.wait()
    np.testing.assert_array_equal(read_volume(workspace / "labelsTr" / "w2.nii.gz").array, edited)
    assert Workspace.open(workspace).case("w2").status == "corrected"


def test_write_failure_keeps_previous_file_and_says_so(workspace, make_widget, qtbot, monkeypatch):
    viewer, widget = make_widget()
    assert widget.open_folder(workspace, compute=False)
    widget.open_case("w1")
    before = (workspace / "labelsTr" / "w1.nii.gz").read_bytes()
    json_before = (workspace / "dataset.json").read_bytes()
    messages = []
    monkeypatch.setattr(
        "medseg_napari._widgets.navigator.report_error", lambda e: messages.append(str(e)) or str(e)
    )

    def full_disk(volume, path, **kwargs):
        raise VolumeWriteError(f"{path}: cannot write: No space left on device")

    monkeypatch.setattr("medseg_napari.core.workspace.write_volume", full_disk)
    edited = paint(viewer.layers["w1 labels"])
    widget.next_case()
    assert widget.current == "w1" and widget.dirty  # the case stays open with the edit
    assert (
        messages
        and "No space left on device" in messages[-1]
        and "previous file is unchanged" in messages[-1]
    )
    assert "No space left on device" in widget.message.text()
    assert (workspace / "labelsTr" / "w1.nii.gz").read_bytes() == before
    assert (workspace / "dataset.json").read_bytes() == json_before
    np.testing.assert_array_equal(viewer.layers["w1 labels"].data, edited)
    monkeypatch.undo()
    with qtbot.waitSignal(widget.jobs.finished, timeout=30000):
        widget.next_case()
    widget.jobs.wait()
    assert widget.current == "w2" and widget.message.text() == ""
    np.testing.assert_array_equal(read_volume(workspace / "labelsTr" / "w1.nii.gz").array, edited)
