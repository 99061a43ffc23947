"""Reading and writing volumes: every format, exact geometry, atomic writes, clear errors."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medseg_napari.core.errors import VolumeReadError, VolumeWriteError
from medseg_napari.core.io import list_dicom_series, read_volume, write_volume
from medseg_napari.core.phantom import make_phantom
from medseg_napari.core.volume import Volume

FORMATS = [".nii.gz", ".nii", ".nrrd", ".mha"]


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(shape=(8, 20, 24), seed=5)


@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip_keeps_voxels_and_geometry(tmp_path, phantom, ext):
    for volume in (phantom.image, phantom.labels):
        path = tmp_path / f"v{ext}"
        write_volume(volume, path)
        back = read_volume(path)
        np.testing.assert_array_equal(back.array, volume.array)
        assert back.array.dtype == volume.array.dtype
        assert back.geometry.is_close(volume.geometry, atol=1e-6)
        assert back.metadata["source"] == str(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"v{ext}"]  # no temporary files left
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / f"v{ext}").stat().st_mode & 0o777 == 0o666 & ~umask  # not private like a temp file


def test_mhd_and_nhdr_are_read(tmp_path, phantom):
    for name in ("v.mhd", "v.nhdr"):
        sitk.WriteImage(phantom.image.to_sitk(), str(tmp_path / name))
        back = read_volume(tmp_path / name)
        np.testing.assert_array_equal(back.array, phantom.image.array)
        assert back.geometry.is_close(phantom.image.geometry, atol=1e-5)


def test_write_is_atomic_on_failure(tmp_path, phantom, monkeypatch):
    path = tmp_path / "labels.nii.gz"
    write_volume(phantom.labels, path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        Path(args[1]).write_bytes(b"partial")
        raise RuntimeError("No space left on device")

    monkeypatch.setattr(sitk, "WriteImage", broken)
    with pytest.raises(VolumeWriteError, match="No space left on device"):
        write_volume(phantom.labels.with_array(phantom.labels.array * 0), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.nii.gz"]


def test_write_errors(tmp_path, phantom):
    with pytest.raises(VolumeWriteError, match="does not exist"):
        write_volume(phantom.labels, tmp_path / "missing" / "a.nii.gz")
    with pytest.raises(VolumeWriteError, match=r"cannot write '\.png'"):
        write_volume(phantom.labels, tmp_path / "a.png")
    with pytest.raises(VolumeWriteError, match="needs a geometry"):
        write_volume(np.zeros((2, 2, 2)), tmp_path / "a.nii.gz")


# --- bad input: one line naming the file and the problem --------------------------
def _msg(path) -> str:
    with pytest.raises(VolumeReadError) as info:
        read_volume(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_path(tmp_path):
    assert "no such file or folder" in _msg(tmp_path / "nope.nii.gz")


def test_corrupt_and_truncated_files(tmp_path, phantom):
    good = tmp_path / "good.nii.gz"
    write_volume(phantom.image, good)
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3])
    assert "corrupt or truncated" in _msg(truncated)
    garbage = tmp_path / "garbage.nrrd"
    garbage.write_bytes(b"this is not an image at all" * 10)
    assert "corrupt or truncated" in _msg(garbage)
    empty = tmp_path / "empty.mha"
    empty.touch()
    assert "empty" in _msg(empty)


def test_2d_and_4d_are_refused(tmp_path):
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.Image([10, 12], sitk.sitkUInt8), str(flat))
    assert "2D image" in _msg(flat)
    single = tmp_path / "single.nii.gz"
    sitk.WriteImage(sitk.Image([10, 12, 1], sitk.sitkUInt8), str(single))
    assert "single slice" in _msg(single)
    four = tmp_path / "four.nii.gz"
    sitk.WriteImage(sitk.Image([4, 5, 6, 3], sitk.sitkFloat32), str(four))
    assert "4D volume" in _msg(four)
    vector = tmp_path / "vector.mha"
    sitk.WriteImage(sitk.Image([4, 5, 6], sitk.sitkVectorFloat32, 2), str(vector))
    assert "4D volume" in _msg(vector)


def test_folder_without_dicom_and_unknown_extension(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert "no DICOM series found" in _msg(tmp_path)
    assert "unknown file type '.txt'" in _msg(tmp_path / "notes.txt")


# --- DICOM ------------------------------------------------------------------------
def _write_dicom_series(folder: Path, volume: Volume, *, uid: str, description: str, slope=1.0, intercept=0.0):
    """Write a volume as a DICOM series with SimpleITK (stored values = (HU - intercept) / slope)."""
    folder.mkdir(parents=True, exist_ok=True)
    stored = np.round((volume.array - intercept) / slope).astype(np.int16)
    image = sitk.GetImageFromArray(stored)
    volume.geometry.apply_to(image)
    d = image.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        for tag, value in {
            "0008|0060": "CT",
            "0020|000e": uid,
            "0008|103e": description,
            "0020|0032": "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, k)))),
            "0020|0037": "\\".join(map(str, (d[0], d[3], d[6], d[1], d[4], d[7]))),
            "0020|0013": str(k + 1),
            "0008|0018": f"{uid}.{k + 1}",
        }.items():
            sl.SetMetaData(tag, value)
        path = folder / f"slice{k:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(sl)
        # GDCM's writer resets the rescale tags of integer images; set them as a scanner would.
        ds = pydicom.dcmread(path)
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.save_as(path)


def test_dicom_folder_with_two_series_and_rescale(tmp_path):
    ph = make_phantom(shape=(6, 16, 20), spacing=(2.0, 0.8, 0.8), seed=2)
    hu = ph.labels.with_array(ph.labels.array.astype(np.float32) * 100 - 1000)  # -1000 .. -700 HU
    _write_dicom_series(tmp_path / "a", hu, uid="1.2.3.4", description="big", intercept=-1024.0)
    small = Volume(hu.array[:3], hu.geometry)
    _write_dicom_series(tmp_path / "b", small, uid="1.2.3.5", description="small", intercept=-1024.0)

    series = list_dicom_series(tmp_path)
    assert [(s.uid, s.n_slices, s.description) for s in series] == [("1.2.3.4", 6, "big"), ("1.2.3.5", 3, "small")]

    volume = read_volume(tmp_path)
    assert volume.metadata["series_uid"] == "1.2.3.4"
    assert len(volume.metadata["dicom_series"]) == 2
    np.testing.assert_allclose(volume.array, hu.array)  # rescale intercept applied: values in HU
    assert volume.geometry.is_close(hu.geometry, atol=1e-4)

    other = read_volume(tmp_path, series_uid="1.2.3.5")
    assert other.shape == (3, 16, 20)
    with pytest.raises(VolumeReadError, match=r"no series with UID 9\.9"):
        read_volume(tmp_path, series_uid="9.9")
    # a single file of the series opens the series
    assert read_volume(tmp_path / "a" / "slice000.dcm").shape == (6, 16, 20)


# --- real data ---------------------------------------------------------------------
def _sitk_read(path: Path) -> sitk.Image:
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        uid_files = [reader.GetGDCMSeriesFileNames(str(path), u) for u in reader.GetGDCMSeriesIDs(str(path))]
        reader.SetFileNames(max(uid_files, key=len))
        return reader.Execute()
    return sitk.ReadImage(str(path))


@pytest.mark.parametrize(
    "relative",
    [
        "ct/ct_abdomen_3mm.nii.gz",
        "ct/ct_dicom_series",
        "brain_mri_dicom/12-T1post-05670",
        "brain_mri_dicom/13_HCropVolume",
        "hippocampus/imagesTr/hippocampus_001.nii.gz",
        "hippocampus/labelsTr/hippocampus_001.nii.gz",
    ],
)
def test_real_volumes_match_simpleitk(data_dir, relative):
    path = data_dir / relative
    expected = _sitk_read(path)
    volume = read_volume(path)
    np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(expected))
    g = volume.geometry
    assert g.itk_spacing == pytest.approx(expected.GetSpacing(), abs=1e-6)
    assert g.itk_origin == pytest.approx(expected.GetOrigin(), abs=1e-6)
    assert g.itk_direction == pytest.approx(expected.GetDirection(), abs=1e-6)


def test_ct_dicom_is_in_hounsfield_units(data_dir):
    volume = read_volume(data_dir / "ct" / "ct_dicom_series")
    assert volume.array.min() <= -1000  # air, after the rescale intercept
    assert volume.metadata["modality"] == "CT"


def test_brain_study_lists_all_series(data_dir):
    volume = read_volume(data_dir / "brain_mri_dicom")
    series = volume.metadata["dicom_series"]
    assert len(series) == 5
    assert volume.shape == (22, 512, 512)  # the largest series is chosen
    assert not np.allclose(volume.geometry.direction_matrix, np.eye(3), atol=1e-3)  # oblique


def test_gzip_of_garbage_is_refused(tmp_path):
    path = tmp_path / "x.nii.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(os.urandom(400))
    assert "corrupt or truncated" in _msg(path)
