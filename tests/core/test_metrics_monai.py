"""Our surface metrics against MONAI's on the same input (MONAI is the test's peer only)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg_napari.core.metrics import evaluate_labels, surface_metrics
from medseg_napari.core.metrics.surface import neighbour_code_areas

torch = pytest.importorskip("torch")
monai_metrics = pytest.importorskip("monai.metrics")
from monai.metrics.utils import create_table_neighbour_code_to_surface_area  # noqa: E402

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hippocampus" / "labelsTr"
TOL_MM = 1e-3


def monai_values(pred: np.ndarray, ref: np.ndarray, spacing, tolerance: float) -> dict[str, float]:
    """HD, HD95, ASSD, MASD, NSD (voxel and area) from MONAI's functions, one binary pair."""
    p = torch.as_tensor(pred[None, None].astype(np.float32))
    r = torch.as_tensor(ref[None, None].astype(np.float32))
    kw = {"include_background": True, "spacing": tuple(spacing)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        asd_pr = monai_metrics.compute_average_surface_distance(p, r, symmetric=False, **kw).item()
        asd_rp = monai_metrics.compute_average_surface_distance(r, p, symmetric=False, **kw).item()
        return {
            "hd": monai_metrics.compute_hausdorff_distance(p, r, **kw).item(),
            "hd95": monai_metrics.compute_hausdorff_distance(p, r, percentile=95, **kw).item(),
            "assd": monai_metrics.compute_average_surface_distance(p, r, symmetric=True, **kw).item(),
            "masd": (asd_pr + asd_rp) / 2,
            "nsd": monai_metrics.compute_surface_dice(p, r, [tolerance], **kw).item(),
            "nsd_area": monai_metrics.compute_surface_dice(
                p, r, [tolerance], use_subvoxels=True, **kw
            ).item(),
        }


def assert_equal_to_monai(pred, ref, spacing, tolerance=1.5):
    ours = surface_metrics(pred, ref, spacing=spacing, tolerance_mm=tolerance)
    ours["nsd_area"] = surface_metrics(pred, ref, spacing=spacing, tolerance_mm=tolerance, surface="area")[
        "nsd"
    ]
    theirs = monai_values(pred, ref, spacing, tolerance)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(
            value, abs=TOL_MM if key in ("hd", "hd95", "assd", "masd") else 1e-5
        ), key


def random_shape(rng, shape):
    seeds = rng.random(shape) < 0.004
    return ndimage.binary_dilation(seeds, structure=ndimage.generate_binary_structure(3, 1), iterations=4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_shapes_anisotropic_equal_monai(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(24, 40, 3))
    spacing = tuple(float(v) for v in rng.uniform(0.4, 3.0, 3))
    assert_equal_to_monai(
        random_shape(rng, shape), random_shape(rng, shape), spacing, tolerance=float(rng.uniform(0.5, 3))
    )


def test_area_table_equals_monai():
    for spacing in [(1.0, 1.0, 1.0), (2.5, 0.8, 0.7)]:
        theirs = create_table_neighbour_code_to_surface_area(spacing)[0].numpy()
        np.testing.assert_allclose(neighbour_code_areas(spacing), theirs, atol=1e-5)


@pytest.mark.skipif(not DATA.exists(), reason="shared hippocampus data not available")
@pytest.mark.parametrize("case", ["hippocampus_004.nii.gz"])
def test_hippocampus_perturbed_equal_monai(case):
    from medseg_napari.core.io import read_volume

    volume = read_volume(DATA / case)
    ref = volume.array.astype(np.int32)
    spacing = (2.0, 1.0, 0.7)  # anisotropic on purpose (the files are 1 mm isotropic)
    eroded = np.zeros_like(ref)
    for label in (1, 2):
        eroded[ndimage.binary_erosion(ref == label)] = label
    shifted = np.roll(ref, (1, -2, 1), axis=(0, 1, 2))
    for pred in (eroded, shifted):
        records = {m.label: m for m in evaluate_labels(pred, ref, spacing=spacing, tolerance_mm=1.0)}
        assert set(records) == {1, 2}
        for label, m in records.items():
            theirs = monai_values(pred == label, ref == label, spacing, 1.0)
            for key in ("hd", "hd95", "assd", "masd"):
                assert getattr(m, key) == pytest.approx(theirs[key], abs=TOL_MM), (label, key)
            assert m.nsd == pytest.approx(theirs["nsd"], abs=1e-5)
