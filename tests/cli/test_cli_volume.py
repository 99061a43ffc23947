"""``medseg info`` and ``medseg convert``: values as SimpleITK gives them, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from medseg_napari.cli import main
from medseg_napari.core.io import read_volume, write_volume
from medseg_napari.core.phantom import make_phantom


def _info(capsys, *args) -> dict:
    assert main(["info", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _matches_sitk(info: dict, image: sitk.Image):
    assert info["size"] == list(image.GetSize())
    assert info["spacing"] == pytest.approx(image.GetSpacing(), abs=1e-6)
    assert info["origin"] == pytest.approx(image.GetOrigin(), abs=1e-6)
    assert info["direction"] == pytest.approx(image.GetDirection(), abs=1e-6)
    array = sitk.GetArrayViewFromImage(image)
    assert info["min"] == pytest.approx(float(array.min()))
    assert info["max"] == pytest.approx(float(array.max()))
    assert info["dtype"] == str(array.dtype)


def test_info_on_an_oblique_phantom(tmp_path, capsys):
    path = tmp_path / "p.nrrd"
    write_volume(make_phantom(shape=(6, 10, 12), seed=1).image, path)
    _matches_sitk(_info(capsys, path), sitk.ReadImage(str(path)))
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "size       12 x 10 x 6" in text and "spacing" in text


def test_info_on_every_shared_volume(data_dir, capsys):
    files = [data_dir / "ct" / "ct_abdomen_3mm.nii.gz", *sorted((data_dir / "hippocampus" / "imagesTr").glob("hippocampus_00*.nii.gz"))[:3]]
    for path in files:
        _matches_sitk(_info(capsys, path), sitk.ReadImage(str(path)))
    reader = sitk.ImageSeriesReader()
    for folder in [data_dir / "ct" / "ct_dicom_series", *sorted(p for p in (data_dir / "brain_mri_dicom").iterdir() if p.is_dir())]:
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        info = _info(capsys, folder)
        _matches_sitk(info, reader.Execute())
        assert len(info["series"]) == 1 and info["series"][0]["n_slices"] == info["size"][2]
    study = _info(capsys, data_dir / "brain_mri_dicom")
    assert len(study["series"]) == 5
    assert {s["description"] for s in study["series"]} >= {"T1post", "FLAIR_reg", "T2_reg"}


def test_convert_dicom_to_nifti_keeps_geometry(data_dir, tmp_path, capsys):
    out = tmp_path / "t2.nii.gz"
    assert main(["convert", str(data_dir / "brain_mri_dicom" / "37916-T2reg-88910"), str(out)]) == 0
    original = read_volume(data_dir / "brain_mri_dicom" / "37916-T2reg-88910")
    back = read_volume(out)
    np.testing.assert_array_equal(back.array, original.array)
    assert back.geometry.is_close(original.geometry, atol=1e-5)


def test_convert_between_formats(tmp_path):
    src = tmp_path / "a.mha"
    write_volume(make_phantom(shape=(5, 8, 9), seed=2).labels, src)
    assert main(["convert", str(src), str(tmp_path / "b.nrrd")]) == 0
    a, b = read_volume(src), read_volume(tmp_path / "b.nrrd")
    np.testing.assert_array_equal(a.array, b.array)
    assert a.geometry.is_close(b.geometry, atol=1e-9)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.nii.gz", "no such file or folder"),
        (lambda d: (d / "x.txt").write_text("x") and d / "x.txt", "unknown file type"),
        (lambda d: (d / "e").mkdir() or d / "e", "no DICOM series found"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys, make, message):
    path = make(tmp_path)
    assert main(["info", str(path)]) == 2
    assert main(["convert", str(path), str(tmp_path / "out.nii.gz")]) == 2
    assert main(["view", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(message in line and str(path) in line for line in err)
    assert "Traceback" not in "".join(err)
    assert not (tmp_path / "out.nii.gz").exists()


def test_convert_to_unwritable_format(tmp_path, capsys):
    src = tmp_path / "a.nii.gz"
    write_volume(make_phantom(shape=(5, 8, 9), seed=2).labels, src)
    assert main(["convert", str(src), str(tmp_path / "a.png")]) == 2
    assert "cannot write '.png'" in capsys.readouterr().err
