"""Analytic tests of the evaluation metrics (exact answers, no peer library)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from medseg_napari.core.errors import GeometryMismatchError
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.metrics import (
    aggregate,
    dice_scores,
    error_map,
    evaluate_labels,
    evaluate_volumes,
    metrics_to_json,
    most_errors_slice,
    surface_metrics,
    surface_of,
    write_metrics_csv,
)
from medseg_napari.core.metrics.surface import neighbour_code_areas
from medseg_napari.core.volume import Volume

DISTANCES = ("hd", "hd95", "assd", "masd")


def ball(shape, spacing, center_mm, radius_mm):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    d2 = sum(((g * s) - c) ** 2 for g, s, c in zip(grids, spacing, center_mm, strict=True))
    return d2 <= radius_mm**2


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.8, 0.8)])
def test_concentric_spheres_hd_is_difference_of_radii(spacing):
    shape = tuple(round(48 / s) for s in spacing)
    center = (24.0, 24.0, 24.0)
    outer = ball(shape, spacing, center, 16.0)
    inner = ball(shape, spacing, center, 10.0)
    m = surface_metrics(inner, outer, spacing=spacing)
    # Every point of one sphere is 6 mm from the other: all distances are 6 mm within one voxel.
    for key in DISTANCES:
        assert abs(m[key] - 6.0) <= max(spacing), (key, m[key])
    assert m["nsd"] == 0.0  # nothing within 1 mm


def test_cube_shifted_on_anisotropic_spacing():
    spacing = (2.5, 0.8, 0.6)
    ref = np.zeros((30, 40, 40), np.uint8)
    ref[5:15, 10:30, 10:30] = 1
    for axis, shift in [(0, 3), (1, 2), (2, 4)]:
        pred = np.roll(ref, shift, axis=axis)
        m = evaluate_labels(pred, ref, spacing=spacing)[0]
        side = (10, 20, 20)[axis]  # the cube's length along the shift
        assert m.tp == 10 * 20 * 20 // side * (side - shift)
        assert m.fp == m.fn == 10 * 20 * 20 // side * shift
        assert m.dice == pytest.approx((side - shift) / side)
        assert m.iou == pytest.approx((side - shift) / (side + shift))
        assert m.precision == pytest.approx((side - shift) / side)
        assert m.volume_similarity == 1.0
        assert m.volume_pred_ml == pytest.approx(4000 * np.prod(spacing) / 1000)
        # The farthest surface points are the faces across the shift: exactly shift * spacing.
        assert m.hd == pytest.approx(shift * spacing[axis])
        assert m.empty is None


def test_one_voxel_shift_distances_exact():
    # 1 x 1 x n rods: the surfaces are the rods themselves; shifting by k voxels along x.
    spacing = (1.0, 1.0, 0.5)
    ref = np.zeros((3, 3, 12), bool)
    ref[1, 1, 2:6] = True
    pred = np.roll(ref, 3, axis=2)  # 5:9
    m = surface_metrics(pred, ref, spacing=spacing, tolerance_mm=1.0)
    # Every voxel of a one-voxel-thick rod is a surface voxel: distances by hand along x.
    d_pr = np.array([min(abs(p - r) for r in range(2, 6)) for p in range(5, 9)]) * 0.5
    d_rp = np.array([min(abs(p - r) for p in range(5, 9)) for r in range(2, 6)]) * 0.5
    assert m["hd"] == pytest.approx(max(d_pr.max(), d_rp.max()))
    assert m["hd95"] == pytest.approx(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95)))
    assert m["assd"] == pytest.approx(np.concatenate([d_pr, d_rp]).mean())
    assert m["masd"] == pytest.approx((d_pr.mean() + d_rp.mean()) / 2)
    assert m["nsd"] == pytest.approx((np.sum(d_pr <= 1) + np.sum(d_rp <= 1)) / 8)


@pytest.mark.parametrize("surface", ["voxel", "area"])
def test_identical_masks_all_distances_zero(surface):
    ref = ball((20, 30, 30), (2.0, 1.0, 1.0), (20, 15, 15), 9.0).astype(np.uint8)
    ref[2:4, 2:4, 2:4] = 2
    for m in evaluate_labels(ref, ref.copy(), spacing=(2.0, 1.0, 1.0), surface=surface):
        assert (m.dice, m.iou, m.nsd, m.precision, m.recall, m.volume_similarity) == (1, 1, 1, 1, 1, 1)
        assert all(getattr(m, k) == 0 for k in DISTANCES)
        assert m.fp == m.fn == 0


def test_empty_masks_policy():
    ref = np.zeros((8, 8, 8), np.uint8)
    ref[2:5, 2:5, 2:5] = 1
    pred = np.zeros_like(ref)
    pred[1:3, 1:3, 1:3] = 2
    by_label = {m.label: m for m in evaluate_labels(pred, ref, spacing=(1, 1, 1), labels=[1, 2, 3])}
    # label 1: prediction empty
    m = by_label[1]
    assert m.empty == "prediction"
    assert (m.dice, m.iou, m.nsd, m.precision, m.recall, m.volume_similarity) == (0, 0, 0, 0, 0, 0)
    assert all(np.isinf(getattr(m, k)) for k in DISTANCES)
    # label 2: reference empty
    m = by_label[2]
    assert m.empty == "reference"
    assert (m.dice, m.iou, m.nsd) == (0, 0, 0) and all(np.isinf(getattr(m, k)) for k in DISTANCES)
    # label 3: both empty
    m = by_label[3]
    assert m.empty == "both"
    assert (m.dice, m.iou, m.nsd, m.precision, m.recall, m.volume_similarity) == (1, 1, 1, 1, 1, 1)
    assert all(getattr(m, k) == 0 for k in DISTANCES)
    # JSON: infinite -> null, with the empty mask named
    out = json.loads(json.dumps(metrics_to_json(list(by_label.values()))))
    assert out["labels"]["1"]["hd"] is None and out["labels"]["1"]["empty"] == "prediction"
    assert out["labels"]["2"]["hd95"] is None and out["labels"]["2"]["empty"] == "reference"
    assert out["labels"]["3"]["hd"] == 0.0 and out["labels"]["3"]["empty"] == "both"
    # Both maps entirely empty
    assert evaluate_labels(pred * 0, ref * 0, spacing=(1, 1, 1)) == []
    (m,) = evaluate_labels(pred * 0, ref * 0, spacing=(1, 1, 1), labels=[1])
    assert m.empty == "both" and m.dice == 1.0 and m.hd == 0.0


def test_aggregate_counts_empty_cases_and_never_drops_them(tmp_path):
    ref = np.zeros((8, 8, 8), np.uint8)
    ref[2:5, 2:5, 2:5] = 1
    shifted = np.roll(ref, 1, axis=2)
    cases = {
        "good": evaluate_labels(ref, ref, spacing=(1, 1, 1), labels=[1]),
        "shifted": evaluate_labels(shifted, ref, spacing=(1, 1, 1), labels=[1]),
        "missed": evaluate_labels(np.zeros_like(ref), ref, spacing=(1, 1, 1), labels=[1]),
        "nothing": evaluate_labels(np.zeros_like(ref), np.zeros_like(ref), spacing=(1, 1, 1), labels=[1]),
    }
    (s,) = aggregate(cases)
    assert s.n_cases == 4
    assert (s.n_prediction_empty, s.n_reference_empty, s.n_both_empty) == (1, 0, 1)
    dice_shift = cases["shifted"][0].dice
    assert s.metrics["dice"].mean == pytest.approx((1 + dice_shift + 0 + 1) / 4)
    assert s.metrics["dice"].worst == 0 and s.metrics["dice"].worst_case == "missed"
    assert np.isinf(s.metrics["hd"].mean) and s.metrics["hd"].worst_case == "missed"
    assert s.metrics["hd"].median == pytest.approx((0 + 1) / 2)  # sorted: 0, 0, 1, inf
    assert s.to_dict()["metrics"]["hd"]["mean"] is None
    path = tmp_path / "m.csv"
    write_metrics_csv(path, cases)
    lines = path.read_text().splitlines()
    assert len(lines) == 5
    header = lines[0].split(",")
    missed = dict(zip(header, lines[3].split(","), strict=True))
    assert missed["case"] == "missed" and missed["hd"] == "" and missed["empty"] == "prediction"


def test_surface_matches_erosion_definition_with_distant_parts():
    rng = np.random.default_rng(3)
    mask = np.zeros((120, 90, 100), bool)
    mask[10:60, 10:70, 20:80] = ndimage.binary_dilation(rng.random((50, 60, 60)) < 0.01, iterations=3)
    mask[110:113, 85:88, 1:4] = True  # a distant part: split into its own box
    mask[0, 0, 0] = True  # on the array border: counts as surface
    expected = np.argwhere(mask & ~ndimage.binary_erosion(mask, border_value=0))
    got = surface_of(mask).index
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, expected.tolist()))


def test_area_surface_elements():
    # A half-filled cube code is one flat square of the cube's cross-section.
    assert neighbour_code_areas((2.0, 3.0, 5.0))[0b00001111] == pytest.approx(3.0 * 5.0)
    # A large sphere's area is 4 pi r^2 up to the known excess of marching cubes on a
    # binary staircase (about 10 %; DeepMind's and MONAI's tables give the same).
    spacing = (1.0, 0.5, 0.5)
    sphere = ball((40, 80, 80), spacing, (20, 20, 20), 15.0)
    area = surface_of(sphere, mode="area", spacing=spacing).weights.sum()
    assert 1.0 < area / (4 * np.pi * 15.0**2) < 1.15


def test_dice_scores_agrees_with_evaluate():
    rng = np.random.default_rng(0)
    p = rng.integers(0, 3, (6, 7, 8))
    r = rng.integers(0, 3, (6, 7, 8))
    d = dice_scores(p, r)
    for m in evaluate_labels(p, r, spacing=(1, 1, 1)):
        assert m.dice == pytest.approx(d[m.label])


def test_reference_on_other_grid_is_resampled():
    # The same physical ball, on a 2 mm grid (prediction) and a 1 mm grid (reference).
    fine = Volume(
        ball((40, 40, 40), (1, 1, 1), (20, 20, 20), 10.0).astype(np.uint8), Geometry(spacing=(1, 1, 1))
    )
    coarse = Volume(fine.array[::2, ::2, ::2].copy(), Geometry(spacing=(2, 2, 2)))
    (m,) = evaluate_volumes(coarse, fine)
    assert m.dice == 1.0 and m.hd == 0.0
    far = Volume(fine.array, Geometry(spacing=(1, 1, 1), origin=(500, 0, 0)))
    with pytest.raises(GeometryMismatchError):
        evaluate_volumes(coarse, far)


def test_bad_input_is_a_clear_error():
    a = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(GeometryMismatchError, match="shape"):
        evaluate_labels(a, np.zeros((4, 4, 5), np.uint8), spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        evaluate_labels(a, a, spacing=(1, 0, 1))


def test_error_map_splits_differences_into_fp_and_fn():
    rng = np.random.default_rng(1)
    p = rng.integers(0, 3, (5, 6, 7))
    r = rng.integers(0, 3, (5, 6, 7))
    e = error_map(p, r)
    np.testing.assert_array_equal(e > 0, p != r)
    np.testing.assert_array_equal(e == 1, (p != r) & (p != 0))
    np.testing.assert_array_equal(e == 2, (p != r) & (p == 0))
    e2 = np.zeros((4, 3, 3), np.uint8)
    e2[3] = 1
    assert most_errors_slice(e2) == 3
    assert most_errors_slice(np.zeros((2, 2, 2))) is None
