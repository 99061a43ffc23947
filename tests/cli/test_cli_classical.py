"""``medseg threshold`` and ``medseg grow``: label maps on the image grid; bad input -> exit 2, no file."""

from __future__ import annotations

import numpy as np
import pytest

from medseg_napari.cli import main
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.io import read_volume, write_volume
from medseg_napari.core.metrics.overlap import dice_scores
from medseg_napari.core.phantom import make_phantom
from medseg_napari.core.volume import Volume


@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory):
    ph = make_phantom(shape=(24, 64, 64), seed=3)
    folder = tmp_path_factory.mktemp("cli")
    write_volume(ph.image, folder / "image.nii.gz")
    write_volume(ph.labels, folder / "labels.nii.gz")
    return ph, folder / "image.nii.gz", folder / "labels.nii.gz"


def test_threshold_range_writes_the_voxels_in_range_on_the_image_grid(phantom_file, tmp_path, capsys):
    ph, image, _ = phantom_file
    out = tmp_path / "t.nii.gz"
    assert main(["threshold", str(image), "-o", str(out), "--range", "600", "800"]) == 0
    result = read_volume(out)
    stored = read_volume(image).array  # the image as stored (float32 round trip)
    np.testing.assert_array_equal(result.array == 1, (stored >= 600) & (stored <= 800))
    assert result.geometry.is_close(ph.image.geometry)
    assert "label 1 has" in capsys.readouterr().out


def test_threshold_otsu_and_multi_otsu(phantom_file, tmp_path):
    _, image, _ = phantom_file
    from skimage.filters import threshold_multiotsu, threshold_otsu

    data = read_volume(image).array
    assert main(["threshold", str(image), "-o", str(tmp_path / "o.nrrd"), "--otsu", "--label", "4"]) == 0
    np.testing.assert_array_equal(read_volume(tmp_path / "o.nrrd").array, np.where(data > threshold_otsu(data), 4, 0))
    assert main(["threshold", str(image), "-o", str(tmp_path / "m.mha"), "--multi-otsu", "3"]) == 0
    t = threshold_multiotsu(data, classes=3)
    np.testing.assert_array_equal(read_volume(tmp_path / "m.mha").array, (data > t[0]).astype(int) + (data > t[1]))


def test_threshold_into_an_existing_label_map_keeps_the_other_labels(phantom_file, tmp_path):
    ph, image, labels = phantom_file
    out = tmp_path / "into.nii.gz"
    assert main(["threshold", str(image), "-o", str(out), "--range", "900", "2000", "--labels", str(labels), "--label", "5"]) == 0
    result = read_volume(out).array
    before = ph.labels.array
    data = read_volume(image).array
    np.testing.assert_array_equal(result[before > 0], before[before > 0])  # never overwritten
    np.testing.assert_array_equal(result == 5, (data >= 900) & (before == 0))


def test_grow_recovers_the_sphere(phantom_file, tmp_path, capsys):
    ph, image, _ = phantom_file
    truth = ph.labels.array == 2
    centre = np.round(np.argwhere(truth).mean(axis=0)).astype(int)
    out = tmp_path / "g.nii.gz"
    seed = ",".join(str(v) for v in centre)
    assert main(["grow", str(image), "-o", str(out), "--seed", seed, "--tolerance", "3"]) == 0
    result = read_volume(out)
    assert result.geometry.is_close(ph.image.geometry)
    assert dice_scores(result.array, truth.astype(np.uint8))[1] > 0.9
    assert "grown from 1 seed" in capsys.readouterr().out
    # The same seed given in world millimetres.
    world = ph.image.geometry.index_to_world(centre)
    out2 = tmp_path / "g2.nii.gz"
    assert main(["grow", str(image), "-o", str(out2), "--world", "--seed=" + ",".join(f"{v:.4f}" for v in world), "--tolerance", "3"]) == 0
    np.testing.assert_array_equal(read_volume(out2).array, result.array)


def test_grow_with_an_explicit_range_and_two_seeds(tmp_path):
    image = np.zeros((6, 20, 20), np.int16)
    image[1:3, 2:8, 2:8] = 100
    image[3:5, 12:18, 12:18] = 100
    path = tmp_path / "img.nrrd"
    write_volume(Volume(image, Geometry(spacing=(3, 1, 1))), path)
    out = tmp_path / "g.nrrd"
    assert main(["grow", str(path), "-o", str(out), "--seed", "1,3,3", "--seed", "4,15,15", "--range", "50", "150"]) == 0
    np.testing.assert_array_equal(read_volume(out).array == 1, image == 100)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["grow", "{image}", "-o", "{out}"], "no seed"),
        (["grow", "{image}", "-o", "{out}", "--seed", "5,5,500"], "lies outside the image"),
        (["grow", "{image}", "-o", "{out}", "--seed", "5,5"], "three numbers"),
        (["grow", "{image}", "-o", "{out}", "--seed", "5,5,5", "--range", "9", "1"], "low 9 > high 1"),
        (["threshold", "{image}", "-o", "{out}", "--range", "9", "1"], "low 9 > high 1"),
        (["threshold", "{image}", "-o", "{out}", "--range", "0", "1", "--labels", "{other}"], "has shape (24, 64, 64)"),
        (["grow", "{image}", "-o", "{out}", "--seed", "5,5,5", "--labels", "{other}"], "has shape"),
        (["grow", "{image}", "-o", "{out}", "--seed", "5,5,5", "--labels", "{shifted}"], "not on the grid"),
        (["threshold", "{image}", "-o", "{out}", "--multi-otsu", "9"], "2 to 6 classes"),
        (["threshold", "{image}", "-o", "{tmp}/missing/x.nii.gz", "--otsu"], "does not exist"),
        (["threshold", "{tmp}/none.nii.gz", "-o", "{out}", "--otsu"], "no such file"),
    ],
)
def test_bad_input_exit_code_2_and_no_file(phantom_file, tmp_path, capsys, args, message):
    _, image, _ = phantom_file
    other = tmp_path / "other.nii.gz"
    write_volume(Volume(np.zeros((24, 64, 32), np.uint8), Geometry()), other)
    shifted = tmp_path / "shifted.nii.gz"  # right shape, wrong place
    write_volume(Volume(np.zeros((24, 64, 64), np.uint8), Geometry(spacing=(2.5, 1, 1))), shifted)
    out = tmp_path / "out.nii.gz"
    argv = [a.format(image=image, out=out, other=other, shifted=shifted, tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
