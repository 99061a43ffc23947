"""Workspace: Decathlon layout with statuses; geometry kept; atomic writes; failures lose nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from medseg_napari.core.errors import GeometryMismatchError, MedsegError
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.io import read_volume, write_volume
from medseg_napari.core.phantom import make_phantom
from medseg_napari.core.volume import Volume
from medseg_napari.core.workspace import Workspace
from tests.conftest import DATA, requires_data

SHAPE = (10, 20, 20)


@pytest.fixture(scope="module")
def phantoms():
    return [make_phantom(shape=SHAPE, seed=s) for s in range(3)]


def files_of(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_create_add_reopen_keeps_geometry_and_statuses(tmp_path, phantoms):
    root = tmp_path / "ws"
    ws = Workspace.create(root, label_names=phantoms[0].label_names, channel_names=("T1",), name="demo")
    ws.add_case("a", phantoms[0].image, phantoms[0].labels)
    ws.add_case("b", phantoms[1].image, phantoms[1].labels, status="predicted")
    data = json.loads((root / "dataset.json").read_text())
    assert data["name"] == "demo"
    assert data["labels"] == {"0": "background", **{str(k): v for k, v in phantoms[0].label_names.items()}}
    assert data["channel_names"] == {"0": "T1"}
    assert data["numTraining"] == 2
    assert data["training"] == [
        {"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz", "status": "corrected"},
        {"image": "./imagesTr/b.nii.gz", "label": "./labelsTr/b.nii.gz", "status": "predicted"},
    ]
    again = Workspace.open(root)
    assert [(c.name, c.status) for c in again.cases] == [("a", "corrected"), ("b", "predicted")]
    assert again.label_names == phantoms[0].label_names
    assert again.channel_names == ("T1",)
    assert [c.name for c in again.ready_cases()] == ["a"]
    assert [c.name for c in again.ready_cases(statuses=("predicted",))] == ["b"]
    case = again.case("b")
    assert (
        case.image_path == root / "imagesTr" / "b.nii.gz"
        and case.label_path == root / "labelsTr" / "b.nii.gz"
    )
    image, labels = read_volume(case.image_path), read_volume(case.label_path)
    np.testing.assert_array_equal(labels.array, phantoms[1].labels.array)
    np.testing.assert_allclose(image.array, phantoms[1].image.array, rtol=1e-6)
    assert image.geometry.is_close(phantoms[1].image.geometry, atol=1e-5)  # oblique direction kept
    assert labels.geometry.is_close(phantoms[1].labels.geometry, atol=1e-5)


def test_add_case_never_overwrites_without_asking(tmp_path, phantoms):
    root = tmp_path / "ws"
    ws = Workspace.create(root, label_names=phantoms[0].label_names)
    ws.add_case("a", phantoms[0].image, phantoms[0].labels)
    before = files_of(root)
    with pytest.raises(MedsegError, match=r"exists already.*overwrite=True"):
        ws.add_case("a", phantoms[1].image, phantoms[1].labels)
    assert files_of(root) == before
    ws.add_case("a", phantoms[1].image, phantoms[1].labels, overwrite=True, status="reviewed")
    assert [(c.name, c.status) for c in Workspace.open(root).cases] == [("a", "reviewed")]
    np.testing.assert_array_equal(read_volume(root / "labelsTr" / "a.nii.gz").array, phantoms[1].labels.array)


def test_add_case_rejects_bad_input_and_writes_nothing(tmp_path, phantoms):
    root = tmp_path / "ws"
    ws = Workspace.create(root, label_names=phantoms[0].label_names)
    before = files_of(root)
    shifted = Volume(phantoms[0].labels.array, Geometry(spacing=(1, 1, 1)))
    with pytest.raises(GeometryMismatchError):
        ws.add_case("a", phantoms[0].image, shifted)
    with pytest.raises(MedsegError, match="not a valid case name"):
        ws.add_case("../evil", phantoms[0].image, phantoms[0].labels)
    with pytest.raises(MedsegError, match="unknown case status"):
        ws.add_case("a", phantoms[0].image, phantoms[0].labels, status="done")
    with pytest.raises(MedsegError, match=r"values \[7\]"):
        ws.add_case("a", phantoms[0].image, phantoms[0].labels.with_array(phantoms[0].labels.array * 0 + 7))
    assert files_of(root) == before
    assert ws.cases == []


def test_save_labels_keeps_backup_and_sets_status(tmp_path, phantoms):
    root = tmp_path / "ws"
    ws = Workspace.create(root, label_names=phantoms[0].label_names)
    ws.add_case("a", phantoms[0].image, phantoms[0].labels, status="predicted")
    original = (root / "labelsTr" / "a.nii.gz").read_bytes()
    edited = phantoms[0].labels.array.copy()
    edited[edited == 3] = 0
    case = ws.save_labels("a", phantoms[0].labels.with_array(edited))
    assert case.status == "corrected"
    assert ws.backup_path("a") == root / "labelsTr" / ".backup" / "a.nii.gz"
    assert ws.backup_path("a").read_bytes() == original
    np.testing.assert_array_equal(read_volume(root / "labelsTr" / "a.nii.gz").array, edited)
    assert Workspace.open(root).case("a").status == "corrected"
    ws.set_status("a", "reviewed")
    assert Workspace.open(root).case("a").status == "reviewed"
    # The backup folder is not a case, and labels off the image grid are refused.
    assert [c.name for c in Workspace.open(root).cases] == ["a"]
    with pytest.raises(GeometryMismatchError):
        ws.save_labels("a", Volume(edited, Geometry()))
    with pytest.raises(MedsegError, match="no case 'zz'"):
        ws.save_labels("zz", phantoms[0].labels)


def test_full_disk_loses_nothing(tmp_path, phantoms, monkeypatch):
    root = tmp_path / "ws"
    ws = Workspace.create(root, label_names=phantoms[0].label_names)
    ws.add_case("a", phantoms[0].image, phantoms[0].labels, status="predicted")
    before = files_of(root)
    real_write = sitk.WriteImage

    def full_disk(image, path, *args, **kwargs):
        real_write(image, path, *args, **kwargs)  # a partial file exists, then the disk is full
        raise RuntimeError("ITK ERROR: No space left on device")

    monkeypatch.setattr(sitk, "WriteImage", full_disk)
    with pytest.raises(MedsegError, match="No space left on device") as info:
        ws.save_labels("a", phantoms[0].labels.with_array(np.zeros(SHAPE, np.uint8)))
    assert "\n" not in str(info.value)
    with pytest.raises(MedsegError, match="cannot add case 'b'"):
        ws.add_case("b", phantoms[1].image, phantoms[1].labels)
    monkeypatch.undo()
    after = files_of(root)
    after.pop("labelsTr/.backup/a.nii.gz")  # the backup copy of the (unchanged) labels may be written
    assert after == before  # labels, dataset.json intact; no temporary files left behind
    assert [(c.name, c.status) for c in ws.cases] == [("a", "predicted")]

    # dataset.json cannot be written: the new case leaves no files, memory unchanged.
    def no_json(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pathlib.Path.write_text", no_json)
    with pytest.raises(MedsegError, match=r"dataset\.json: cannot write"):
        ws.add_case("b", phantoms[1].image, phantoms[1].labels)
    with pytest.raises(MedsegError, match=r"dataset\.json: cannot write"):
        ws.set_status("a", "reviewed")
    monkeypatch.undo()
    assert not (root / "imagesTr" / "b.nii.gz").exists() and not (root / "labelsTr" / "b.nii.gz").exists()
    assert [(c.name, c.status) for c in Workspace.open(root).cases] == [("a", "predicted")]


def test_create_refuses_bad_folders(tmp_path, phantoms):
    with pytest.raises(MedsegError, match="does not exist"):
        Workspace.create(tmp_path / "no" / "ws", label_names={1: "a"})
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(MedsegError, match="not an empty folder"):
        Workspace.create(tmp_path / "full", label_names={1: "a"})
    Workspace.create(tmp_path / "ws", label_names={1: "a"})
    with pytest.raises(MedsegError, match="workspace already"):
        Workspace.create(tmp_path / "ws", label_names={1: "a"})
    with pytest.raises(MedsegError, match="not a workspace"):
        Workspace.open(tmp_path / "full")


def test_open_plain_decathlon_folder(tmp_path, phantoms):
    """MSD style: no statuses, "modality", one case listed, one image copied in without labels."""
    root = tmp_path / "Task99"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    write_volume(phantoms[0].image, root / "imagesTr" / "c1.nii.gz")
    write_volume(phantoms[0].labels, root / "labelsTr" / "c1.nii.gz")
    write_volume(phantoms[1].image, root / "imagesTr" / "c2.nii.gz")
    msd = {
        "name": "Task99",
        "modality": {"0": "MRI"},
        "labels": {"0": "background", "1": "one", "2": "two", "3": "three"},
        "numTraining": 1,
        "training": [{"image": "./imagesTr/c1.nii.gz", "label": "./labelsTr/c1.nii.gz"}],
        "test": [],
    }
    (root / "dataset.json").write_text(json.dumps(msd))
    ws = Workspace.open(root)
    assert [(c.name, c.status, c.label_path is not None) for c in ws.cases] == [
        ("c1", "reviewed", True),
        ("c2", None, False),
    ]
    assert ws.label_names == {1: "one", 2: "two", 3: "three"} and ws.channel_names == ("MRI",)
    assert (root / "dataset.json").read_text() == json.dumps(msd)  # opening writes nothing
    ws.save_labels("c2", phantoms[1].labels)
    data = json.loads((root / "dataset.json").read_text())
    assert data["test"] == [] and data["modality"] == {"0": "MRI"}  # other keys kept
    assert [(c.name, c.status) for c in Workspace.open(root).cases] == [
        ("c1", "reviewed"),
        ("c2", "corrected"),
    ]


def test_open_nnunet_v2_labels(tmp_path, phantoms):
    root = tmp_path / "Dataset001"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    write_volume(phantoms[0].image, root / "imagesTr" / "c1_0000.nii.gz")
    write_volume(phantoms[0].labels, root / "labelsTr" / "c1.nii.gz")
    (root / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "T2"}, "labels": {"background": 0, "tumour": 1}, "numTraining": 1})
    )
    ws = Workspace.open(root)
    assert ws.label_names == {1: "tumour"} and ws.channel_names == ("T2",)
    assert [(c.name, c.status) for c in ws.cases] == [("c1", "reviewed")]


@requires_data
def test_open_real_hippocampus_decathlon(tmp_path):
    source = DATA / "hippocampus"
    ws = Workspace.open(source)
    assert len(ws.cases) == 208
    assert ws.label_names == {1: "Anterior", 2: "Posterior"}
    assert all(c.status == "reviewed" and c.label_path is not None for c in ws.cases)
    # Edit a copy (never the shared data): the change and its backup land in the copy.
    root = tmp_path / "hippo"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for case in ws.cases[:2]:
        shutil.copy(case.image_path, root / "imagesTr" / case.image_path.name)
        shutil.copy(case.label_path, root / "labelsTr" / case.label_path.name)
    copy = Workspace.open(root)
    first = copy.cases[0]
    labels = read_volume(first.label_path)
    edited = labels.with_array((labels.array > 0).astype(np.uint8))
    copy.save_labels(first.name, edited)
    assert Workspace.open(root).case(first.name).status == "corrected"
    np.testing.assert_array_equal(read_volume(copy.backup_path(first.name)).array, labels.array)
