"""Thresholds select exactly the voxels in range; Otsu agrees with scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.filters import threshold_multiotsu, threshold_otsu

from medseg_napari.core.classical.threshold import (
    check_range,
    multi_otsu_labels,
    multi_otsu_thresholds,
    otsu_mask,
    otsu_threshold,
    range_mask,
)
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.phantom import make_phantom


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, np.float64])
def test_range_mask_is_exactly_the_voxels_in_range(dtype):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, (12, 20, 20)).astype(dtype)
    for low, high in [(10, 50), (10.5, 49.5), (0, 0), (-5, 300), (60, 60), (199, 250)]:
        mask = range_mask(image, low=low, high=high)
        values = image.ravel().astype(float)
        expected = np.array([low <= v <= high for v in values]).reshape(image.shape)
        assert mask.dtype == bool
        np.testing.assert_array_equal(mask, expected)


def test_range_mask_integer_bounds_outside_the_dtype():
    image = np.array([0, 100, 255], np.uint8).reshape(1, 1, 3)
    assert not range_mask(image, low=300, high=400).any()
    assert range_mask(image, low=-10, high=1000).all()
    assert not range_mask(image, low=100.2, high=100.8).any()  # no integer in the range


def test_range_on_the_phantom_selects_the_dark_sphere():
    ph = make_phantom(shape=(20, 48, 48), noise=0.0, bias=0.0, oblique=False)
    image, labels = ph.image.array, ph.labels.array
    mask = range_mask(image, low=140, high=160)
    # Without noise or bias every sphere voxel fully inside is exactly 150.
    assert np.all(np.isclose(image[mask], 150, atol=10))
    assert mask.sum() > 0.7 * (labels == 2).sum()


def test_bad_range_is_a_clear_error():
    with pytest.raises(MedsegError, match="low 5 > high 1"):
        range_mask(np.zeros((2, 2, 2)), low=5, high=1)
    with pytest.raises(MedsegError, match="NaN"):
        check_range(float("nan"), 1)
    with pytest.raises(MedsegError, match="numbers"):
        check_range("a", 1)


def test_otsu_matches_scikit_image_on_a_bimodal_image():
    rng = np.random.default_rng(1)
    image = np.concatenate([rng.normal(100, 10, 5000), rng.normal(300, 20, 3000)]).reshape(10, 20, 40)
    t = otsu_threshold(image)
    assert t == pytest.approx(threshold_otsu(image))
    assert 120 < t < 250
    np.testing.assert_array_equal(otsu_mask(image), image > t)
    assert otsu_mask(image).sum() == pytest.approx(3000, abs=5)


def test_otsu_on_a_constant_image_is_an_error():
    with pytest.raises(MedsegError, match="constant"):
        otsu_threshold(np.ones((3, 3, 3)))


def test_multi_otsu_classes():
    rng = np.random.default_rng(2)
    means = np.array([0.0, 100.0, 250.0])
    truth = rng.integers(0, 3, (8, 30, 30))
    image = means[truth] + rng.normal(0, 3, truth.shape)
    thresholds = multi_otsu_thresholds(image, classes=3)
    np.testing.assert_allclose(thresholds, threshold_multiotsu(image, classes=3))
    classes = multi_otsu_labels(image, classes=3)
    assert classes.dtype == np.uint8
    expected = (image > thresholds[0]).astype(np.uint8) + (image > thresholds[1])
    np.testing.assert_array_equal(classes, expected)  # exactly the voxels between the thresholds
    assert np.mean(classes == truth) > 0.999  # and the classes are the true ones
    with pytest.raises(MedsegError, match="2 to 6 classes"):
        multi_otsu_thresholds(image, classes=1)
