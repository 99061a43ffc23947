"""Geometry: ITK <-> napari conversion, resampling and grid checks against SimpleITK."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from medseg_napari.core.errors import GeometryMismatchError
from medseg_napari.core.geometry import (
    Geometry,
    array_to_sitk,
    check_same_grid,
    grids_overlap,
    resample,
    same_grid,
)
from medseg_napari.core.phantom import make_phantom, oblique_direction


def oblique_image(shape=(7, 9, 11)) -> sitk.Image:
    """An oblique, anisotropic SimpleITK image built directly with ITK calls."""
    image = sitk.Image([shape[2], shape[1], shape[0]], sitk.sitkFloat32)
    image.SetSpacing((0.7, 1.3, 4.5))
    image.SetOrigin((-12.5, 33.0, 101.25))
    image.SetDirection(tuple(oblique_direction(25.0, (0.2, 1.0, 0.4)).reshape(-1)))
    return image


def test_index_to_world_matches_simpleitk():
    image = oblique_image()
    g = Geometry.from_sitk(image)
    rng = np.random.default_rng(0)
    for _ in range(50):
        k, j, i = (int(rng.integers(0, s)) for s in (7, 9, 11))
        expected = np.array(image.TransformIndexToPhysicalPoint((i, j, k)))[::-1]
        np.testing.assert_allclose(g.index_to_world((k, j, i)), expected, atol=1e-9)
        np.testing.assert_allclose((g.affine @ [k, j, i, 1])[:3], expected, atol=1e-9)
        back = g.world_to_index(expected)
        np.testing.assert_allclose(back, (k, j, i), atol=1e-9)


def test_itk_order_round_trip():
    image = oblique_image()
    g = Geometry.from_sitk(image)
    assert g.itk_spacing == pytest.approx(image.GetSpacing())
    assert g.itk_origin == pytest.approx(image.GetOrigin())
    assert g.itk_direction == pytest.approx(image.GetDirection())
    assert g.spacing == pytest.approx((4.5, 1.3, 0.7))
    assert Geometry.from_affine(g.affine).is_close(g, atol=1e-12)
    assert Geometry.from_dict(g.to_dict()) == g
    out = g.apply_to(sitk.Image([2, 2, 2], sitk.sitkUInt8))
    assert out.GetDirection() == pytest.approx(image.GetDirection())


def test_invalid_geometry_rejected():
    with pytest.raises(ValueError, match="positive"):
        Geometry(spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="orthonormal"):
        Geometry(direction=((1, 0, 0), (0, 2, 0), (0, 0, 1)))


def test_flipped_labels_resample_to_original():
    """Labels stored flipped along y (origin and direction changed to match) resample back exactly."""
    ph = make_phantom(shape=(12, 40, 36), seed=3)
    labels, g = ph.labels.array, ph.labels.geometry
    direction = g.direction_matrix.copy()
    direction[:, 1] *= -1
    flipped_geometry = Geometry(
        spacing=g.spacing, origin=g.index_to_world((0, labels.shape[1] - 1, 0)), direction=direction
    )
    back = resample(labels[:, ::-1, :], flipped_geometry, shape=labels.shape, target=g)
    assert back.dtype == labels.dtype
    np.testing.assert_array_equal(back, labels)


def test_permuted_axes_resample_to_original():
    """The same voxels stored with z and x swapped (direction columns swapped) resample back exactly."""
    ph = make_phantom(shape=(10, 20, 30), seed=4)
    labels, g = ph.labels.array, ph.labels.geometry
    d = g.direction_matrix
    swapped = Geometry(
        spacing=g.spacing[::-1], origin=g.origin, direction=np.stack([d[:, 2], d[:, 1], d[:, 0]], axis=1)
    )
    stored = labels.transpose(2, 1, 0)
    np.testing.assert_allclose(swapped.index_to_world((3, 4, 5)), g.index_to_world((5, 4, 3)))
    back = resample(stored, swapped, shape=labels.shape, target=g)
    np.testing.assert_array_equal(back, labels)


def test_resample_outside_gets_default_and_no_overlap_raises():
    g = Geometry()
    arr = np.ones((4, 4, 4), np.uint8)
    shifted = Geometry(origin=(0, 0, 2))
    out = resample(arr, g, shape=(4, 4, 4), target=shifted)
    np.testing.assert_array_equal(out[:, :, :2], 1)
    np.testing.assert_array_equal(out[:, :, 2:], 0)
    far = Geometry(origin=(0, 0, 100))
    assert not grids_overlap((4, 4, 4), g, (4, 4, 4), far)
    with pytest.raises(GeometryMismatchError, match="do not overlap"):
        resample(arr, g, shape=(4, 4, 4), target=far)


def test_oblique_overlap_is_exact():
    """Two thin slabs whose axis-aligned boxes overlap but which do not touch."""
    rot = oblique_direction(45.0, (1.0, 0.0, 0.0))
    a = Geometry(direction=rot)
    b = Geometry(origin=a.index_to_world((0, 0, 0)) + rot[:, 1] * 8, direction=rot)
    assert not grids_overlap((1, 4, 40), a, (1, 4, 40), b)
    assert grids_overlap((1, 12, 40), a, (1, 4, 40), b)


def test_same_grid_and_check():
    g = Geometry(spacing=(2, 1, 1))
    assert same_grid((2, 3, 4), g, (2, 3, 4), Geometry(spacing=(2, 1, 1.00000001)))
    assert not same_grid((2, 3, 4), g, (2, 3, 5), g)
    with pytest.raises(GeometryMismatchError, match=r"shape \(2, 3, 5\)"):
        check_same_grid((2, 3, 5), g, (2, 3, 4), g)
    with pytest.raises(GeometryMismatchError, match="not on the grid"):
        check_same_grid((2, 3, 4), Geometry(), (2, 3, 4), g)


def test_linear_resample_of_identical_grid_is_exact_copy():
    image = np.random.default_rng(1).normal(size=(5, 6, 7)).astype(np.float32)
    g = Geometry(spacing=(3, 1, 1))
    out = resample(image, g, shape=image.shape, target=g, interpolation="linear")
    np.testing.assert_array_equal(out, image)
    assert array_to_sitk(image, g).GetSize() == (7, 6, 5)
