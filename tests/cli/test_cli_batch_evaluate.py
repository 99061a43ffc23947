"""``medseg evaluate PRED_DIR REF_DIR``: parallel workers (and a Dask cluster) give the same CSV as one process."""

from __future__ import annotations

import csv
import importlib.util
import sys

import numpy as np
import pytest

from medseg_napari.cli import main
from medseg_napari.core.io import read_volume, write_volume
from medseg_napari.core.metrics import evaluate_volumes
from medseg_napari.core.phantom import make_phantom

NAMES = ["case03", "case01", "case04", "case02", "case00"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Five complete cases, one prediction without reference, one reference without prediction."""
    root = tmp_path_factory.mktemp("batch")
    pred_dir, ref_dir = root / "pred", root / "ref"
    pred_dir.mkdir()
    ref_dir.mkdir()
    for i, name in enumerate([*NAMES, "only_pred", "only_ref"]):
        ph = make_phantom(shape=(12, 24, 24), seed=i)
        labels = ph.labels.array
        pred = np.roll(labels, i % 3, axis=2)
        if i == 1:
            pred[pred == 2] = 0  # a missed sphere: infinite distances, empty CSV cells
        if name != "only_ref":
            write_volume(ph.labels.with_array(pred), pred_dir / f"{name}.nii.gz")
        if name != "only_pred":
            write_volume(ph.labels, ref_dir / f"{name}.nii.gz")
    return pred_dir, ref_dir


def run_csv(folders, tmp_path, *extra):
    pred_dir, ref_dir = folders
    out = tmp_path / f"m{len(list(tmp_path.iterdir()))}.csv"
    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(out), *extra]) == 0
    return out


def test_two_workers_csv_equals_single_process(folders, tmp_path, capsys):
    one = run_csv(folders, tmp_path, "--workers", "1")
    captured = capsys.readouterr()
    two = run_csv(folders, tmp_path, "--workers", "2")
    captured_two = capsys.readouterr()
    assert one.read_bytes() == two.read_bytes()
    rows = list(csv.DictReader(one.open()))
    # Values are the metrics core's, one pair at a time; rows sorted by case, then label.
    pred_dir, ref_dir = folders
    expected_order = []
    for name in sorted(NAMES):
        expected = evaluate_volumes(
            read_volume(pred_dir / f"{name}.nii.gz"), read_volume(ref_dir / f"{name}.nii.gz")
        )
        expected_order += [(name, str(r.label)) for r in expected]
        got = [r for r in rows if r["case"] == name]
        assert len(got) == len(expected)
        for record, row in zip(expected, got):
            assert float(row["dice"]) == pytest.approx(record.dice, rel=1e-12)
            if np.isinf(record.hd95):
                assert row["hd95"] == ""
            else:
                assert float(row["hd95"]) == pytest.approx(record.hd95, rel=1e-12)
    assert [(r["case"], r["label"]) for r in rows] == expected_order
    assert [r["empty"] for r in rows if r["case"] == "case01"][:2] == ["", "prediction"]
    # A progress bar on stderr, one line per case; missing files listed, not errors.
    for out in (captured, captured_two):
        progress = [line for line in out.err.splitlines() if line.startswith("[")]
        assert len(progress) == 5 and progress[-1].startswith("[5/5]")
        assert "missing reference for only_pred.nii.gz" in out.out
        assert "missing prediction for only_ref.nii.gz" in out.out


def test_default_uses_all_cpus_and_same_csv(folders, tmp_path):
    one = run_csv(folders, tmp_path, "--workers", "1")
    default = run_csv(folders, tmp_path)
    assert one.read_bytes() == default.read_bytes()


def test_bad_worker_options(folders, tmp_path, capsys):
    pred_dir, ref_dir = folders
    assert main(["evaluate", str(pred_dir), str(ref_dir), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert main(["evaluate", str(pred_dir), str(ref_dir), "--workers", "2", "--scheduler", "tcp://x:1"]) == 2
    assert "not both" in capsys.readouterr().err


def test_scheduler_without_dask_is_a_one_line_error(folders, monkeypatch, capsys):
    pred_dir, ref_dir = folders
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails as if not installed
    assert main(["evaluate", str(pred_dir), str(ref_dir), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not installed" in err and "medseg-napari[dask]" in err


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="dask.distributed not installed")
def test_scheduler_runs_on_a_dask_cluster(folders, tmp_path):
    from dask.distributed import LocalCluster

    one = run_csv(folders, tmp_path, "--workers", "1")
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        on_dask = run_csv(folders, tmp_path, "--scheduler", cluster.scheduler_address)
    assert one.read_bytes() == on_dask.read_bytes()
