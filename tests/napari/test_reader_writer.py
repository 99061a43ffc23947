"""napari reader and writer: layers in physical space, labels saved with the image geometry."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from medseg_napari._napari.reader import get_reader, looks_like_labels
from medseg_napari._napari.writer import write_labels
from medseg_napari.core.errors import GeometryMismatchError
from medseg_napari.core.io import read_volume, write_volume
from medseg_napari.core.phantom import make_phantom

FORMATS = [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"]


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(shape=(9, 22, 26), spacing=(3.3, 0.9, 0.7), seed=7)


def _check_world_coordinates(layer, image: sitk.Image):
    rng = np.random.default_rng(0)
    size = image.GetSize()
    indices = [(0, 0, 0), (size[2] - 1, size[1] - 1, size[0] - 1)]
    indices += [tuple(int(rng.integers(0, n)) for n in size[::-1]) for _ in range(20)]
    for k, j, i in indices:
        expected = np.array(image.TransformIndexToPhysicalPoint((i, j, k)))[::-1]
        np.testing.assert_allclose(layer.data_to_world((k, j, i)), expected, atol=1e-4)


@pytest.mark.parametrize("ext", FORMATS)
def test_world_coordinate_of_voxel_equals_simpleitk(make_napari_viewer, tmp_path, phantom, ext):
    path = tmp_path / f"oblique{ext}"
    sitk.WriteImage(phantom.image.to_sitk(), str(path))
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="medseg-napari")
    assert layer.data.shape == phantom.image.shape
    _check_world_coordinates(layer, sitk.ReadImage(str(path)))


def test_brain_dicom_world_coordinates(data_dir, make_napari_viewer):  # data_dir first: skip before a viewer exists
    folder = data_dir / "brain_mri_dicom" / "12-T1post-05670"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(folder), plugin="medseg-napari")
    assert layer.metadata["series_description"] == "T1post"
    _check_world_coordinates(layer, image)


def test_labels_written_through_writer_round_trip(make_napari_viewer, tmp_path, phantom):
    viewer = make_napari_viewer()
    src = tmp_path / "image.nii.gz"
    write_volume(phantom.image, src)
    (image_layer,) = viewer.open(str(src), plugin="medseg-napari")
    from medseg_napari._napari.layers import new_labels_for

    labels = new_labels_for(viewer, image_layer)
    labels.data[:] = phantom.labels.array  # as if painted
    out = tmp_path / "painted.nrrd"
    saved = labels.save(str(out), plugin="medseg-napari")
    assert saved == [str(out)]
    back = read_volume(out)
    np.testing.assert_array_equal(back.array, phantom.labels.array)
    assert back.geometry.is_close(phantom.image.geometry, atol=1e-6)


def test_labels_from_a_plain_layer_use_its_transform(tmp_path):
    """A labels layer made elsewhere (scale/translate, no metadata) keeps its placement."""
    data = np.zeros((3, 4, 5), np.uint8)
    data[1, 2, 3] = 2
    meta = {"scale": [4.0, 1.5, 0.5], "translate": [10.0, -2.0, 3.0], "metadata": {}}
    path = tmp_path / "plain.nii.gz"
    write_labels(str(path), data, meta)
    back = read_volume(path)
    np.testing.assert_array_equal(back.array, data)
    assert back.geometry.spacing == pytest.approx((4.0, 1.5, 0.5))
    assert back.geometry.origin == pytest.approx((10.0, -2.0, 3.0))


def test_writer_refuses_labels_of_another_shape(tmp_path, phantom):
    meta = {"metadata": {"geometry": phantom.image.geometry.to_dict(), "grid_shape": [9, 22, 26], "image": "ct"}}
    path = tmp_path / "bad.nii.gz"
    with pytest.raises(GeometryMismatchError, match=r"labels have shape \(9, 22, 25\) but ct has shape \(9, 22, 26\)"):
        write_labels(str(path), np.zeros((9, 22, 25), np.uint8), meta)
    assert not path.exists()


def test_reader_choice_and_bad_files(make_napari_viewer, tmp_path, phantom):
    assert get_reader(str(tmp_path / "x.png")) is None
    assert get_reader(str(tmp_path / "x.nii.gz")) is not None
    labels_path = tmp_path / "case_seg.nii.gz"
    write_volume(phantom.labels, labels_path)
    assert looks_like_labels(read_volume(labels_path), labels_path)
    assert not looks_like_labels(phantom.image, tmp_path / "t1.nii.gz")

    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(labels_path), plugin="medseg-napari")
    assert layer._type_string == "labels"

    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    from napari.utils.notifications import notification_manager

    with notification_manager:
        notification_manager.records.clear()
        layers = get_reader(str(broken))(str(broken))
    assert layers == []
    messages = [str(n.message) for n in notification_manager.records]
    assert any("broken.nii.gz" in m and "corrupt or truncated" in m for m in messages), messages


def test_sample_data_layers_share_the_grid(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("medseg-napari", "phantom")
    image, labels = layers
    np.testing.assert_allclose(image.affine.affine_matrix, labels.affine.affine_matrix)
    assert labels.metadata["label_names"] == {1: "ellipsoid", 2: "sphere", 3: "nodule"}
    assert sorted(np.unique(labels.data).tolist()) == [0, 1, 2, 3]
