"""Seeded region growing against exact answers and independent implementations."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from skimage.segmentation import flood

from medseg_napari.core.classical import region_growing as rg
from medseg_napari.core.classical.region_growing import grow_region, seed_statistics, seeded_region
from medseg_napari.core.classical.threshold import range_mask
from medseg_napari.core.errors import Cancelled, MedsegError
from medseg_napari.core.metrics.overlap import dice_scores
from medseg_napari.core.phantom import make_phantom
from medseg_napari.core.progress import CancelToken


def noisy_sphere(shape=(40, 72, 72), spacing=(2.0, 1.0, 1.0), radius_mm=22.0, seed=0):
    """A bright sphere (100) in a dark background (20) with Gaussian noise (sigma 8)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)], indexing="ij")
    truth = sum(g**2 for g in grids) <= radius_mm**2
    image = np.where(truth, 100.0, 20.0) + rng.normal(0, 8, shape)
    return image.astype(np.float32), truth


def test_noisy_sphere_is_recovered_from_its_centre():
    image, truth = noisy_sphere()
    centre = [(n - 1) // 2 for n in image.shape]
    mask = grow_region(image, [centre], spacing=(2.0, 1.0, 1.0), tolerance=3.0)
    dice = dice_scores(mask.astype(np.uint8), truth.astype(np.uint8))[1]
    assert dice > 0.98
    assert not (mask & ~truth).any()  # never leaks into the background (8 sigma away)


def test_confidence_iterations_re_estimate_the_range():
    image, truth = noisy_sphere(seed=1)
    centre = [(n - 1) // 2 for n in image.shape]
    region = seeded_region(image, [centre], spacing=(2.0, 1.0, 1.0), tolerance=2.5, iterations=2)
    inside = image[region.full()]
    # The last range is mean +/- 2.5 std of the region grown before it (about 100 +/- 20).
    assert region.low == pytest.approx(100 - 2.5 * 8, abs=3)
    assert region.high == pytest.approx(100 + 2.5 * 8, abs=3)
    assert inside.min() >= region.low - 1e-6 or inside.size == 0
    assert dice_scores(region.full().astype(np.uint8), truth.astype(np.uint8))[1] > 0.97


def test_phantom_sphere_with_partial_volume_and_bias():
    ph = make_phantom(shape=(40, 96, 96), seed=0)
    truth = ph.labels.array == 2
    centre = np.round(np.argwhere(truth).mean(axis=0)).astype(int)
    mask = grow_region(ph.image.array, [centre], spacing=ph.image.spacing, tolerance=3.0)
    # A small sphere (1.4k voxels) whose partial-volume rim is a large share of it.
    assert dice_scores(mask.astype(np.uint8), truth.astype(np.uint8))[1] > 0.95


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("coarse", [False, True])
def test_same_answer_as_a_whole_image_flood(monkeypatch, connectivity, coarse):
    """Random blobs that wind far beyond the first box: equal to skimage.flood of the whole image."""
    if coarse:  # exercise the coarse first guess of the box on a small image
        monkeypatch.setattr(rg, "_COARSE_FROM", 0)
    rng = np.random.default_rng(connectivity)
    image = rng.normal(0, 1, (60, 90, 100)).astype(np.float32)
    from scipy import ndimage as ndi

    image = ndi.gaussian_filter(image, 1.5)
    low, high = -0.02, 1.0
    inside = range_mask(image, low=low, high=high)
    seeds = np.argwhere(inside)[[0, len(inside.nonzero()[0]) // 2]]
    ours = grow_region(image, seeds, spacing=(1, 1, 1), low=low, high=high, connectivity=connectivity)
    conn = {6: 1, 18: 2, 26: 3}[connectivity]
    expected = flood(inside, tuple(seeds[0]), connectivity=conn) | flood(inside, tuple(seeds[1]), connectivity=conn)
    np.testing.assert_array_equal(ours, expected)
    assert expected.sum() > 20000  # the region spans far more than the first 65-voxel box


def test_same_answer_as_simpleitk_connected_threshold():
    rng = np.random.default_rng(5)
    image = (rng.normal(0, 30, (30, 50, 60)) + 50).astype(np.int16)
    seed = (15, 25, 30)
    image[seed] = 50
    ours = grow_region(image, [seed], spacing=(3, 1, 1), low=20, high=90)
    itk = sitk.ConnectedThreshold(sitk.GetImageFromArray(image), seedList=[seed[::-1]], lower=20, upper=90)
    np.testing.assert_array_equal(ours, sitk.GetArrayFromImage(itk).astype(bool))


def test_seeds_in_two_structures_grow_both():
    image = np.zeros((10, 30, 30), np.float32)
    image[2:5, 2:10, 2:10] = 10
    image[6:9, 15:25, 15:25] = 10
    mask = grow_region(image, [(3, 5, 5), (7, 20, 20)], spacing=(1, 1, 1), low=5, high=15)
    np.testing.assert_array_equal(mask, image == 10)
    one = grow_region(image, [(3, 5, 5)], spacing=(1, 1, 1), low=5, high=15)
    assert one.sum() == 3 * 8 * 8


def test_roi_confines_the_growth():
    image = np.full((8, 20, 20), 10.0)
    roi = np.zeros(image.shape, bool)
    roi[:, :, :10] = True
    mask = grow_region(image, [(4, 10, 5)], spacing=(1, 1, 1), low=5, high=15, roi=roi)
    np.testing.assert_array_equal(mask, roi)
    with pytest.raises(MedsegError, match="ROI has shape"):
        grow_region(image, [(4, 10, 5)], spacing=(1, 1, 1), low=5, high=15, roi=roi[:4])


def test_a_seed_always_belongs_to_its_region():
    image = np.zeros((5, 5, 5))
    image[2, 2, 2] = 1000  # an outlier under the seed
    mask = grow_region(image, [(2, 2, 2)], spacing=(1, 1, 1), low=-1, high=1)
    assert mask.all()


def test_derived_range_uses_the_seed_neighbourhood_in_mm():
    image = np.zeros((9, 9, 9))
    image[4, 4, 4] = 27.0
    # 2 mm on 4 mm slices: one slice either side at least; 2 voxels in-plane -> 3 x 5 x 5 box.
    mean, std = seed_statistics(image, [(4, 4, 4)], spacing=(4, 1, 1), radius_mm=2.0)
    assert mean == pytest.approx(27.0 / 75)
    assert std == pytest.approx(np.std(np.r_[27.0, np.zeros(74)]))


@pytest.mark.parametrize(
    ("seeds", "kwargs", "message"),
    [
        ([], {}, "no seed points"),
        ([(5, 5, 50)], {}, "seed 1 .* lies outside the image"),
        ([(2, 2, 2), (-1, 0, 0)], {}, "seed 2 .* lies outside"),
        ([(2, 2, 2)], {"low": 5, "high": 1}, "low 5 > high 1"),
        ([(2, 2, 2)], {"low": 5}, "both low and high"),
        ([(2, 2, 2)], {"connectivity": 8}, "6, 18 or 26"),
        ([(2, 2)], {}, r"\(z, y, x\) points"),
    ],
)
def test_bad_inputs_are_clear_errors(seeds, kwargs, message):
    image = np.zeros((10, 10, 10))
    with pytest.raises(MedsegError, match=message):
        grow_region(image, seeds, spacing=(1, 1, 1), **kwargs)


def test_cancel_stops_the_growth():
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        grow_region(np.zeros((5, 5, 5)), [(2, 2, 2)], spacing=(1, 1, 1), low=0, high=1, cancel=token)


def test_grown_region_box_and_full_mask_agree():
    image, _ = noisy_sphere(shape=(20, 40, 40), radius_mm=10)
    region = seeded_region(image, [(10, 20, 20)], spacing=(2, 1, 1), low=60, high=200)
    full = region.full()
    assert full.shape == image.shape and region.n_voxels == int(full.sum())
    outside = full.copy()
    outside[region.slices] = False
    assert not outside.any()


def test_seeds_in_structures_of_different_brightness_each_grow_their_own():
    rng = np.random.default_rng(7)
    image = rng.normal(0, 3, (16, 40, 40)).astype(np.float32)
    image[1:9, 3:17, 3:17] += 100
    image[9:15, 20:36, 20:36] += 500
    expected = np.zeros(image.shape, bool)
    expected[1:9, 3:17, 3:17] = expected[9:15, 20:36, 20:36] = True
    seeds = [(5, 10, 10), (12, 28, 28)]
    mask = grow_region(image, seeds, spacing=(1, 1, 1), tolerance=4.0)
    np.testing.assert_array_equal(mask, expected)  # pooled statistics would have taken the background too
    region = seeded_region(image, [*seeds, (12, 30, 30)], spacing=(1, 1, 1), tolerance=4.0)
    assert region.low < 100 < 500 < region.high
    np.testing.assert_array_equal(region.full(), expected)
