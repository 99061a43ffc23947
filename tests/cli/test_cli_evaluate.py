"""``medseg evaluate`` on files and folders (called in-process through ``main``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg_napari.cli import main
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.io import write_volume
from medseg_napari.core.metrics import evaluate_labels
from medseg_napari.core.volume import Volume

SPACING = (2.0, 1.0, 0.5)


def cube_pair():
    ref = np.zeros((12, 16, 20), np.uint8)
    ref[3:8, 4:12, 5:15] = 1
    ref[9:11, 1:3, 1:3] = 2
    pred = np.roll(ref, 2, axis=2)
    return pred, ref


def save(array, path):
    write_volume(Volume(array, Geometry(spacing=SPACING)), path)
    return str(path)


def test_pair_json_shape_and_values(tmp_path, capsys):
    pred, ref = cube_pair()
    p, r = save(pred, tmp_path / "p.nii.gz"), save(ref, tmp_path / "r.nii.gz")
    assert main(["evaluate", p, r, "--json", "--tolerance", "0.75"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = {m.label: m for m in evaluate_labels(pred, ref, spacing=SPACING, tolerance_mm=0.75)}
    assert set(out["labels"]) == {"1", "2"}
    keys = {
        "dice",
        "iou",
        "hd",
        "hd95",
        "assd",
        "masd",
        "nsd",
        "volume_pred_ml",
        "volume_ref_ml",
        "volume_similarity",
        "precision",
        "recall",
    }
    for label, values in out["labels"].items():
        assert keys <= set(values)
        for key in keys:
            assert values[key] == pytest.approx(getattr(expected[int(label)], key))
    assert out["labels"]["1"]["hd"] == pytest.approx(2 * 0.5)  # shifted 2 voxels of 0.5 mm along x


def test_pair_labels_option_and_empty_label_is_null(tmp_path, capsys):
    pred, ref = cube_pair()
    pred[pred == 2] = 0
    p, r = save(pred, tmp_path / "p.nrrd"), save(ref, tmp_path / "r.nrrd")
    assert main(["evaluate", p, r, "--labels", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["labels"]) == ["2"]
    assert out["labels"]["2"]["hd"] is None and out["labels"]["2"]["empty"] == "prediction"
    assert out["labels"]["2"]["dice"] == 0.0
    assert main(["evaluate", p, r]) == 0
    table = capsys.readouterr().out
    assert "inf" in table and "prediction" in table


def test_folders_csv_and_missing_counterparts(tmp_path, capsys):
    pred, ref = cube_pair()
    (tmp_path / "pred").mkdir()
    (tmp_path / "ref").mkdir()
    save(pred, tmp_path / "pred" / "case1.nii.gz")
    save(ref, tmp_path / "ref" / "case1.nii.gz")
    save(ref, tmp_path / "pred" / "case2.nii.gz")
    save(ref, tmp_path / "ref" / "case2.nii.gz")
    save(ref, tmp_path / "pred" / "only_pred.nii.gz")
    save(ref, tmp_path / "ref" / "only_ref.nii.gz")
    out_csv = tmp_path / "metrics.csv"
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "-o", str(out_csv)]) == 0
    text = capsys.readouterr().out
    assert "missing reference for only_pred.nii.gz" in text
    assert "missing prediction for only_ref.nii.gz" in text
    lines = out_csv.read_text().splitlines()
    assert len(lines) == 1 + 2 * 2  # two cases x two labels
    dice1 = evaluate_labels(pred, ref, spacing=SPACING)[0].dice
    # mean of label 1's Dice over the two cases (one perfect) is printed
    assert f"{(dice1 + 1) / 2:.3f}" in text
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_cases"] == 2 and out["missing_reference"] == ["only_pred.nii.gz"]
    assert out["labels"]["1"]["metrics"]["dice"]["worst_case"] == "case1"


def test_bad_input_one_line_error_and_nothing_written(tmp_path, capsys):
    pred, ref = cube_pair()
    p = save(pred, tmp_path / "p.nii.gz")
    far = tmp_path / "far.nii.gz"
    write_volume(Volume(ref, Geometry(spacing=SPACING, origin=(1000, 0, 0))), far)
    out_csv = tmp_path / "m.csv"
    assert main(["evaluate", p, str(far), "-o", str(out_csv)]) == 2
    err = capsys.readouterr().err
    assert "do not overlap" in err and len(err.strip().splitlines()) == 1
    assert not out_csv.exists()
    assert main(["evaluate", p, p, "--labels", "a,b"]) == 2
    assert main(["evaluate", p, str(tmp_path / "missing.nii.gz")]) == 2
    assert main(["evaluate", p, p, "--tolerance", "-1"]) == 2
