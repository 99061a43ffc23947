"""Case discovery (workspace, Decathlon, three folders), metrics rows, CSV read-back, error clusters, batch runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg_napari.core.cases import case_table, error_clusters, open_dataset, read_metrics_csv
from medseg_napari.core.errors import Cancelled, MedsegError
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.io import read_volume, write_volume
from medseg_napari.core.metrics import error_map, evaluate_volumes, write_metrics_csv
from medseg_napari.core.metrics.batch import evaluate_pairs
from medseg_napari.core.phantom import make_phantom
from medseg_napari.core.progress import CancelToken
from medseg_napari.core.volume import Volume
from medseg_napari.core.workspace import Workspace

SHAPE = (12, 24, 24)


def perturbed(labels: Volume, shift: int) -> Volume:
    return labels.with_array(np.roll(labels.array, shift, axis=2))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """images/, predictions/, references/: a, b, c complete; d without reference; e without prediction."""
    root = tmp_path_factory.mktemp("three")
    for sub in ("images", "predictions", "references"):
        (root / sub).mkdir()
    for i, name in enumerate("abcde"):
        ph = make_phantom(shape=SHAPE, seed=i)
        write_volume(ph.image, root / "images" / f"{name}_0000.nii.gz")  # nnU-Net channel suffix
        if name != "e":
            write_volume(perturbed(ph.labels, i), root / "predictions" / f"{name}.nii.gz")
        if name != "d":
            write_volume(ph.labels, root / "references" / f"{name}.nii.gz")
    return root


def test_three_folders_missing_files_are_listed(folders):
    ds = open_dataset(
        images=folders / "images", predictions=folders / "predictions", references=folders / "references"
    )
    assert ds.kind == "folders"
    assert [(c.name, c.missing, c.status) for c in ds.cases] == [
        ("a", [], "reviewed"),
        ("b", [], "reviewed"),
        ("c", [], "reviewed"),
        ("d", ["reference"], "predicted"),
        ("e", ["prediction"], "reviewed"),
    ]
    assert ds.case("a").image == folders / "images" / "a_0000.nii.gz"
    assert [p.name for p in ds.pairs()] == ["a", "b", "c"]
    assert ds.missing() == {"d": ["reference"], "e": ["prediction"]}
    # One folder holding the three subfolders opens the same way.
    assert [(c.name, c.missing) for c in open_dataset(folders).cases] == [
        (c.name, c.missing) for c in ds.cases
    ]
    # Only predictions and references (the CLI's folders): every case lacks its image.
    only = open_dataset(predictions=folders / "predictions", references=folders / "references")
    assert [(c.name, c.missing) for c in only.cases][:1] == [("a", ["image"])]


def test_open_dataset_errors(tmp_path):
    with pytest.raises(MedsegError, match="no such folder"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(MedsegError, match="no cases found"):
        open_dataset(tmp_path)
    write_volume(np.zeros((3, 3, 3), np.uint8), tmp_path / "x.nii.gz", geometry=Geometry())
    with pytest.raises(MedsegError, match="open the folders separately"):
        open_dataset(tmp_path)


def test_workspace_with_predictions_and_saving(tmp_path):
    root = tmp_path / "ws"
    phantoms = [make_phantom(shape=SHAPE, seed=s) for s in range(2)]
    ws = Workspace.create(root, label_names=phantoms[0].label_names)
    (root / "predictionsTr").mkdir()
    for i, ph in enumerate(phantoms):
        ws.add_case(f"c{i}", ph.image, ph.labels, status="predicted")
    write_volume(perturbed(phantoms[0].labels, 2), root / "predictionsTr" / "c0.nii.gz")
    ds = open_dataset(root)
    assert ds.kind == "workspace" and ds.label_names == phantoms[0].label_names
    assert [(c.name, c.missing, c.status) for c in ds.cases] == [
        ("c0", [], "predicted"),
        ("c1", ["prediction"], "predicted"),
    ]
    edited = phantoms[1].labels.array.copy()
    edited[:, :, :3] = 1
    case = ds.save_labels("c1", phantoms[1].labels.with_array(edited))
    assert case.status == "corrected" and ds.case("c1").status == "corrected"
    np.testing.assert_array_equal(read_volume(root / "labelsTr" / "c1.nii.gz").array, edited)
    np.testing.assert_array_equal(
        read_volume(root / "labelsTr" / ".backup" / "c1.nii.gz").array, phantoms[1].labels.array
    )
    assert [(c.name, c.status) for c in ds.reload().cases] == [("c0", "predicted"), ("c1", "corrected")]


def test_three_folders_saving_keeps_backup_and_status(tmp_path, folders):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(folders, root)
    ds = open_dataset(root)
    ref = read_volume(root / "references" / "a.nii.gz")
    edited = ref.with_array(np.zeros(ref.shape, np.uint8))
    ds.save_labels("a", edited)
    # A case without a reference gets one, named as its prediction.
    pred_d = read_volume(root / "predictions" / "d.nii.gz")
    ds.save_labels("d", pred_d)
    assert (root / "references" / ".backup" / "a.nii.gz").read_bytes() == (
        folders / "references" / "a.nii.gz"
    ).read_bytes()
    assert not read_volume(root / "references" / "a.nii.gz").array.any()
    assert json.loads((root / "references" / ".medseg_status.json").read_text()) == {
        "a": "corrected",
        "d": "corrected",
    }
    again = open_dataset(root)
    assert [(c.name, c.status, c.missing) for c in again.cases][::3] == [
        ("a", "corrected", []),
        ("d", "corrected", []),
    ]


def test_batch_equals_one_by_one_with_any_workers(folders):
    ds = open_dataset(folders)
    expected = {
        p.name: evaluate_volumes(read_volume(p.prediction), read_volume(p.reference)) for p in ds.pairs()
    }
    seen = []
    one = evaluate_pairs(ds.pairs()[::-1], workers=1, progress=seen.append)
    two = evaluate_pairs(ds.pairs(), workers=2)
    assert list(one) == list(two) == ["a", "b", "c"]  # sorted by case whatever the input order
    threads = evaluate_pairs(ds.pairs(), workers=2, processes=False)  # what the navigator uses
    assert one == two == threads == expected
    assert [r.done for r in seen] == [1, 2, 3] and seen[-1].total == 3
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        evaluate_pairs(ds.pairs(), workers=1, cancel=token)
    with pytest.raises(MedsegError, match="unique"):
        evaluate_pairs([("x", ds.pairs()[0].prediction, ds.pairs()[0].reference)] * 2, workers=1)


def test_batch_error_names_the_file(folders, tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a volume")
    pair = open_dataset(folders).pairs()[0]
    with pytest.raises(MedsegError, match=r"bad\.nii\.gz"):
        evaluate_pairs([("a", pair.prediction, pair.reference), ("bad", bad, pair.reference)], workers=2)


def test_metrics_csv_round_trip_and_case_table(folders, tmp_path):
    metrics = evaluate_pairs(open_dataset(folders).pairs(), workers=1)
    # An empty prediction for one label: infinite distances survive the CSV (empty cells).
    ref = np.zeros((6, 6, 6), np.uint8)
    ref[1:3, 1:3, 1:3] = 1
    ref[4:6, 4:6, 4:6] = 2
    pred = ref.copy()
    pred[pred == 2] = 0
    metrics["z"] = evaluate_volumes(Volume(pred, Geometry()), Volume(ref, Geometry()))
    path = tmp_path / "m.csv"
    write_metrics_csv(path, metrics)
    assert read_metrics_csv(path) == metrics
    table = case_table(metrics)
    assert table["z"]["dice_2"] == 0.0 and table["z"]["hd95_2"] == np.inf and table["z"]["mean_dice"] == 0.5
    for case, records in metrics.items():
        for r in records:
            assert table[case][f"dice_{r.label}"] == r.dice and table[case][f"hd95_{r.label}"] == r.hd95
        assert table[case]["mean_dice"] == pytest.approx(np.mean([r.dice for r in records]))
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(MedsegError, match="not a metrics CSV"):
        read_metrics_csv(tmp_path / "other.csv")


def test_error_clusters_exact():
    ref = np.zeros((10, 20, 20), np.uint8)
    pred = np.zeros_like(ref)
    ref[2:5, 2:6, 2:6] = 1  # a missed block: 3*4*4 = 48 false negatives
    pred[6:8, 10:13, 10:15] = 2  # a spurious block: 2*3*5 = 30 false positives
    pred[9, 0, 0] = 1  # one stray voxel
    ref[6:8, 13, 10:15] = 2  # touches the spurious block: 10 false negatives in the same cluster
    clusters = error_clusters(error_map(pred, ref))
    assert [(c.size, c.false_positives, c.false_negatives) for c in clusters] == [
        (48, 0, 48),
        (40, 30, 10),
        (1, 1, 0),
    ]
    assert clusters[0].centroid == pytest.approx((3.0, 3.5, 3.5))
    assert clusters[0].bbox == (2, 2, 2, 5, 6, 6)
    assert clusters[1].centroid == pytest.approx((6.5, (30 * 11 + 10 * 13) / 40, 12.0))
    assert clusters[2].focus == (9, 0, 0)
    for c in clusters:
        assert error_map(pred, ref)[c.focus] > 0  # the focus is an error voxel of the cluster
    # Face connectivity splits diagonal neighbours.
    diag = np.zeros((3, 3, 3), np.uint8)
    diag[0, 0, 0] = diag[1, 1, 1] = 1
    assert len(error_clusters(diag)) == 1 and len(error_clusters(diag, connectivity=1)) == 2
    assert error_clusters(np.zeros((2, 2, 2), np.uint8)) == []
