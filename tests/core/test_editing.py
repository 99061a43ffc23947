"""Editing tools on constructed arrays, checked against exact answers and scipy references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from medseg_napari.core.classical.editing import (
    TOOLS,
    LabelEdit,
    apply_tool,
    ball,
    combine_masks,
    fill_holes,
    interpolate_slices,
    largest_component,
    morphology,
    remove_small_islands,
    smooth_mask,
    write_mask,
)
from medseg_napari.core.errors import MedsegError


def random_mask(shape=(16, 24, 24), seed=0, level=0.6):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.normal(size=shape), 1.5) > level * 0.2


# ----------------------------------------------------------------- write_mask / LabelEdit
def test_write_mask_add_claims_background_only_and_records_a_bounded_edit():
    labels = np.zeros((10, 20, 20), np.uint8)
    labels[5, 5:8, 5:8] = 2
    mask = np.zeros(labels.shape, bool)
    mask[4:7, 4:9, 4:9] = True
    before = labels.copy()
    edit = write_mask(labels, mask, label=1)
    assert (labels == 2).sum() == 9  # the other label is untouched
    np.testing.assert_array_equal(labels == 1, mask & (before != 2))
    assert edit.n_changed == 3 * 25 - 9
    assert edit.slices == (slice(4, 7), slice(4, 9), slice(4, 9))  # only the changed box is stored
    assert edit.old.shape == (3, 5, 5) and edit.nbytes == 2 * 75
    edit.revert(labels)
    np.testing.assert_array_equal(labels, before)
    edit.apply(labels)
    assert (labels == 1).sum() == 3 * 25 - 9


def test_write_mask_overwrite_and_modes():
    labels = np.array([[[0, 1, 2, 3, 1]]], np.uint8)
    mask = np.array([[[1, 1, 1, 1, 0]]], bool)
    out = labels.copy()
    write_mask(out, mask, label=1, overwrite=[2])
    assert out.tolist() == [[[1, 1, 1, 3, 1]]]
    out = labels.copy()
    write_mask(out, mask, label=1, overwrite=True)
    assert out.tolist() == [[[1, 1, 1, 1, 1]]]
    out = labels.copy()
    write_mask(out, mask, label=1, mode="replace")
    assert out.tolist() == [[[1, 1, 2, 3, 0]]]
    out = labels.copy()
    write_mask(out, mask, label=1, mode="remove")
    assert out.tolist() == [[[0, 0, 2, 3, 1]]]
    out = labels.copy()
    edit = write_mask(out, mask, label=1, mode="replace", in_place=False)
    np.testing.assert_array_equal(out, labels)  # nothing written
    edit.apply(out)
    assert out.tolist() == [[[1, 1, 2, 3, 0]]]


def test_write_mask_errors_and_empty_edit():
    labels = np.zeros((2, 3, 4), np.uint8)
    with pytest.raises(MedsegError, match="label must be between 1 and 255"):
        write_mask(labels, labels == 0, label=300)
    with pytest.raises(MedsegError, match="shape"):
        write_mask(labels, np.ones((2, 3, 3), bool), label=1)
    with pytest.raises(MedsegError, match="mode"):
        write_mask(labels, labels == 0, label=1, mode="paint")
    edit = write_mask(labels, np.zeros(labels.shape, bool), label=1)
    assert edit.is_empty and edit.n_changed == 0
    edit.revert(labels)
    assert not labels.any()


def test_label_edit_indices_for_napari_history():
    labels = np.zeros((4, 5, 6), np.uint8)
    mask = np.zeros(labels.shape, bool)
    mask[1, 2, 3] = mask[2, 3, 4] = True
    edit = write_mask(labels, mask, label=7, in_place=False)
    index, old, new = edit.indices()
    assert [i.tolist() for i in index] == [[1, 2], [2, 3], [3, 4]]
    assert index[0].dtype == np.uint16
    assert old.tolist() == [0, 0] and new.tolist() == [7, 7]


# ----------------------------------------------------------------- components
def test_largest_component_and_connectivity():
    m = np.zeros((3, 10, 10), bool)
    m[1, 1:4, 1:4] = True  # 9 voxels
    m[1, 4, 4] = True  # touches the square only diagonally
    m[1, 6:9, 6:9] = True
    m[1, 5, 5] = True  # diagonal bridge to the other square
    six = largest_component(m, connectivity=6)
    assert six.sum() == 9 and six[1, 1, 1]  # first of the two 9-voxel squares
    all26 = largest_component(m, connectivity=26)
    assert all26.sum() == 20
    assert not largest_component(np.zeros((2, 2, 2), bool)).any()


def test_remove_small_islands_uses_mm3():
    m = np.zeros((6, 20, 20), bool)
    m[0:4, 0:10, 0:10] = True  # 400 voxels
    m[5, 15, 15:18] = True  # 3 voxels
    iso = remove_small_islands(m, min_volume_mm3=10, spacing=(1, 1, 1))
    assert iso.sum() == 400  # 3 mm^3 < 10: removed
    thick = remove_small_islands(m, min_volume_mm3=10, spacing=(4, 1, 1))
    assert thick.sum() == 403  # 12 mm^3 >= 10: kept -- spacing makes the difference


# ----------------------------------------------------------------- fill holes
def test_fill_holes_3d_and_slice_by_slice():
    tube = np.zeros((6, 11, 11), bool)
    tube[:, 2:9, 2:9] = True
    tube[:, 4:7, 4:7] = False  # a hole open at both ends along z
    np.testing.assert_array_equal(fill_holes(tube), tube)  # not a 3D hole
    filled = fill_holes(tube, axis=0)
    assert filled[:, 4:7, 4:7].all() and filled.sum() == 6 * 49
    # Along y the tube's hole is not enclosed in any y-slice.
    np.testing.assert_array_equal(fill_holes(tube, axis=1), tube)
    closed = tube.copy()
    closed[0] = closed[-1] = True
    closed[0, 0, 0] = False
    assert fill_holes(closed)[:, 4:7, 4:7].all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fill_holes_matches_scipy(seed):
    m = ~random_mask(seed=seed, level=-0.3)
    np.testing.assert_array_equal(fill_holes(m), ndi.binary_fill_holes(m))
    for axis in range(3):
        expected = np.stack([ndi.binary_fill_holes(s) for s in np.moveaxis(m, axis, 0)])
        np.testing.assert_array_equal(fill_holes(m, axis=axis), np.moveaxis(expected, 0, axis))


# ----------------------------------------------------------------- morphology
def test_dilation_of_2mm_on_4mm_slices_grows_2_in_plane_and_0_across():
    m = np.zeros((9, 21, 21), bool)
    m[4, 10, 10] = True
    d = morphology(m, operation="dilate", radius_mm=2.0, spacing=(4.0, 1.0, 1.0))
    z, y, x = np.nonzero(d)
    assert set(z.tolist()) == {4}  # 0 voxels across the 4 mm slices
    assert (y.min(), y.max(), x.min(), x.max()) == (8, 12, 8, 12)  # 2 voxels in-plane
    assert d.sum() == 13  # the disk of radius 2
    iso = morphology(m, operation="dilate", radius_mm=2.0, spacing=(1.0, 1.0, 1.0))
    assert np.ptp(np.nonzero(iso)[0]) == 4  # isotropic: 2 voxels across too
    # A 4 mm dilation reaches exactly one slice across.
    d4 = morphology(m, operation="dilate", radius_mm=4.0, spacing=(4.0, 1.0, 1.0))
    assert set(np.nonzero(d4)[0].tolist()) == {3, 4, 5}


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 0.8, 0.8), (2.5, 1.0, 1.5)])
@pytest.mark.parametrize("radius", [1.0, 2.0, 3.2])
def test_morphology_matches_binary_morphology_with_a_ball(spacing, radius):
    m = random_mask(seed=int(radius * 10))
    se = ball(radius, spacing=spacing)
    dil = ndi.binary_dilation(m, se)
    ero = ndi.binary_erosion(m, se, border_value=1)
    np.testing.assert_array_equal(morphology(m, operation="dilate", radius_mm=radius, spacing=spacing), dil)
    np.testing.assert_array_equal(morphology(m, operation="erode", radius_mm=radius, spacing=spacing), ero)
    np.testing.assert_array_equal(
        morphology(m, operation="open", radius_mm=radius, spacing=spacing), ndi.binary_dilation(ero, se)
    )
    np.testing.assert_array_equal(
        morphology(m, operation="close", radius_mm=radius, spacing=spacing),
        ndi.binary_erosion(dil, se, border_value=1),
    )


def test_morphology_errors():
    m = np.ones((2, 2, 2), bool)
    with pytest.raises(MedsegError, match="operation"):
        morphology(m, operation="grow", radius_mm=1, spacing=(1, 1, 1))
    with pytest.raises(MedsegError, match="radius"):
        morphology(m, operation="dilate", radius_mm=-1, spacing=(1, 1, 1))
    with pytest.raises(MedsegError, match="spacing"):
        morphology(m, operation="dilate", radius_mm=1, spacing=(1, 0, 1))


# ----------------------------------------------------------------- smoothing
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 1.0, 1.0)])
def test_median_smoothing_matches_scipy_median_filter(spacing):
    m = random_mask(seed=4)
    footprint = ball(2.0, spacing=spacing)
    expected = ndi.median_filter(m.astype(np.uint8), footprint=footprint, mode="reflect").astype(bool)
    np.testing.assert_array_equal(smooth_mask(m, method="median", size_mm=2.0, spacing=spacing), expected)


def test_gaussian_smoothing_removes_a_spike_and_fills_a_pit():
    m = np.zeros((11, 31, 31), bool)
    m[2:9, 5:26, 5:26] = True
    m[5, 15, 15] = False  # a pit
    m[5, 2, 15] = True  # a lone spike outside
    s = smooth_mask(m, method="gaussian", size_mm=1.0, spacing=(1, 1, 1))
    assert s[5, 15, 15] and not s[5, 2, 15]
    expected = ndi.gaussian_filter(m.astype(np.float32), 1.0, mode="nearest") >= 0.5
    np.testing.assert_array_equal(s, expected)
    with pytest.raises(MedsegError, match="method"):
        smooth_mask(m, method="mean", size_mm=1, spacing=(1, 1, 1))


# ----------------------------------------------------------------- interpolation
def test_interpolation_between_drawn_slices():
    m = np.zeros((7, 30, 30), bool)
    m[1, 10:15, 10:15] = True
    m[5, 6:19, 6:19] = True  # grows by one voxel a side per slice
    out = interpolate_slices(m, spacing=(2.0, 1.0, 1.0), axis=0)
    np.testing.assert_array_equal(out[1], m[1])
    np.testing.assert_array_equal(out[5], m[5])
    for k, (a, b) in zip(range(2, 5), [(9, 16), (8, 17), (7, 18)]):
        square = np.zeros((30, 30), bool)
        square[a:b, a:b] = True
        corners = np.zeros((30, 30), bool)
        corners[[a, a, b - 1, b - 1], [a, b - 1, a, b - 1]] = True
        # The sides move one voxel per slice; Euclidean distances may round the corners.
        assert not (out[k] & ~square).any()
        assert not (square & ~corners & ~out[k]).any()
    assert not out[0].any() and not out[6].any()  # outside the drawn range: untouched


def test_interpolation_along_x_and_of_a_moving_shape():
    m = np.zeros((20, 20, 9), bool)
    m[4:8, 4:8, 0] = True
    m[12:16, 4:8, 8] = True  # the same square, moved 8 voxels in z over 8 slices
    out = interpolate_slices(m, spacing=(1, 1, 1), axis=2)
    for k in range(9):
        zs = np.nonzero(out[:, :, k].any(axis=1))[0]
        assert out[:, :, k].sum() == 16 and zs.min() == 4 + k  # translates one voxel per slice


def test_interpolation_with_fewer_than_two_slices_changes_nothing():
    m = np.zeros((5, 6, 6), bool)
    m[2, 2:4, 2:4] = True
    np.testing.assert_array_equal(interpolate_slices(m, spacing=(1, 1, 1)), m)


# ----------------------------------------------------------------- logical
def test_combine_masks():
    a = np.zeros((1, 1, 4), bool)
    b = a.copy()
    a[..., :2] = True
    b[..., 1:3] = True
    assert combine_masks(a, b, operation="union").sum() == 3
    assert combine_masks(a, b, operation="intersect").sum() == 1
    assert combine_masks(a, b, operation="subtract").sum() == 1
    with pytest.raises(MedsegError, match="shape"):
        combine_masks(a, b[..., :2], operation="union")


# ----------------------------------------------------------------- tools on a label map
def two_label_map(seed=0):
    labels = np.zeros((20, 40, 40), np.uint16)
    labels[random_mask((20, 40, 40), seed=seed)] = 1
    labels[8:12, 5:15, 20:35] = 2
    labels[0, 0, 0] = 3
    labels[2:8, 25:35, 2:12] = 1  # a closed box with a cavity: a 3D hole
    labels[3:7, 27:33, 4:10] = 0
    labels[12:18, 25:35, 25:35] = 1  # a tube open along z: a hole in each axial slice
    labels[12:18, 28:32, 28:32] = 0
    return labels


TOOL_PARAMS = {
    "keep_largest": {},
    "remove_islands": {"min_volume_mm3": 30.0},
    "fill_holes": {},
    "fill_holes_slices": {"axis": 0},
    "dilate": {"radius_mm": 2.0},
    "erode": {"radius_mm": 2.0},
    "open": {"radius_mm": 2.0},
    "close": {"radius_mm": 3.0},
    "smooth": {"method": "median", "size_mm": 2.0},
    "interpolate": {"axis": 0},
    "union": {"other": 2},
    "intersect": {"other": "mask"},  # two labels of one map never overlap: use another layer's mask
    "subtract": {"other": "mask"},
}


def test_every_tool_is_tested():
    assert set(TOOL_PARAMS) == set(TOOLS)


@pytest.mark.parametrize("name", list(TOOL_PARAMS))
def test_tool_on_a_crop_equals_the_whole_volume_answer_and_spares_other_labels(name):
    labels = two_label_map(seed=3)
    if name == "interpolate":
        labels[labels == 1] = 0
        labels[3, 10:20, 10:20] = 1
        labels[9, 12:24, 12:26] = 1
    before = labels.copy()
    spacing = (2.0, 1.0, 0.8)
    params = dict(TOOL_PARAMS[name])
    if params.get("other") == "mask":
        params["other"] = np.zeros(labels.shape, bool)
        params["other"][4:16, 10:30, 8:30] = True
    edit = apply_tool(labels, name, label=1, spacing=spacing, **params)

    # Reference: the mask function on the whole volume, written by hand.
    spec = TOOLS[name]
    kwargs = {"spacing": np.asarray(spacing), **spec.params, **params}
    if isinstance(kwargs.get("other"), int):
        kwargs["other"] = before == kwargs["other"]
    new = spec.run(before == 1, **kwargs)
    allowed = (before == 0) | (before == 1) | ((before == 2) & (name == "union"))
    expected = before.copy()
    expected[(before == 1) & ~new] = 0
    expected[new & allowed] = 1
    np.testing.assert_array_equal(labels, expected)
    if name != "union":
        np.testing.assert_array_equal(labels == 2, before == 2)  # other labels never touched
    np.testing.assert_array_equal(labels == 3, before == 3)
    assert not np.array_equal(labels, before)  # each tool did something here
    edit.revert(labels)
    np.testing.assert_array_equal(labels, before)  # undo restores the exact voxels


def test_dilate_tool_does_not_take_other_labels_unless_asked():
    labels = np.zeros((5, 11, 11), np.uint8)
    labels[2, 5, 5] = 1
    labels[2, 5, 6] = 2
    apply_tool(labels, "dilate", label=1, spacing=(4, 1, 1), radius_mm=2.0)
    assert labels[2, 5, 6] == 2 and (labels == 1).sum() == 12
    apply_tool(labels, "dilate", label=1, spacing=(4, 1, 1), radius_mm=1.0, overwrite=True)
    assert labels[2, 5, 6] == 1


def test_union_with_a_mask_from_another_layer():
    labels = np.zeros((4, 6, 6), np.uint8)
    labels[1, 1, 1] = 1
    other = np.zeros(labels.shape, bool)
    other[2, 2:4, 2:4] = True
    edit = apply_tool(labels, "union", label=1, spacing=(1, 1, 1), other=other)
    assert (labels == 1).sum() == 5 and edit.n_changed == 4
    with pytest.raises(MedsegError, match="second mask has shape"):
        apply_tool(labels, "union", label=1, spacing=(1, 1, 1), other=other[:2])


def test_apply_tool_errors_change_nothing():
    labels = two_label_map()
    before = labels.copy()
    for kwargs, message in [
        ({"tool": "dilate", "label": 5, "radius_mm": 1.0}, "label 5 is empty"),
        ({"tool": "melt", "label": 1}, "unknown tool"),
        ({"tool": "dilate", "label": 1, "size_mm": 1.0}, "takes"),
        ({"tool": "union", "label": 1}, "needs a second label"),
        ({"tool": "union", "label": 1, "other": 1}, "other than 1"),
        ({"tool": "erode", "label": 1, "radius_mm": -2.0}, "radius"),
    ]:
        with pytest.raises(MedsegError, match=message):
            apply_tool(labels, spacing=(1, 1, 1), **kwargs)
        np.testing.assert_array_equal(labels, before)


def test_edit_memory_is_bounded_by_the_changed_region():
    labels = np.zeros((100, 200, 200), np.uint8)  # 4 MB
    labels[50, 100, 100] = 1
    edit = apply_tool(labels, "dilate", label=1, spacing=(1, 1, 1), radius_mm=3.0)
    assert isinstance(edit, LabelEdit)
    assert edit.old.shape == (7, 7, 7) and edit.nbytes == 2 * 343
