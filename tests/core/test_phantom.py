"""The phantom: seeded, exact labels, the properties the docs promise; sample files up to date."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg_napari.core.io import read_volume
from medseg_napari.core.phantom import PHANTOM_LABELS, make_phantom

SAMPLES = Path(__file__).resolve().parents[2] / "sample_data"


def test_seeded_and_different_per_seed():
    a, b, c = make_phantom(seed=1), make_phantom(seed=1), make_phantom(seed=2)
    np.testing.assert_array_equal(a.image.array, b.image.array)
    assert not np.array_equal(a.labels.array, c.labels.array)


def test_partial_volume_only_at_structure_edges():
    """Without noise and bias, intensities between tissue (400) and the ellipsoid (700) occur only
    where the label map changes within one voxel: the partial-volume edge, and nowhere else."""
    from scipy import ndimage

    ph = make_phantom(shape=(20, 40, 40), spacing=(2.0, 1.0, 1.0), noise=0, bias=0, seed=4, oblique=False)
    labels, image = ph.labels.array, ph.image.array
    assert set(np.unique(labels)) == {0, *PHANTOM_LABELS}
    edge = ndimage.grey_dilation(labels, size=3) != ndimage.grey_erosion(labels, size=3)
    mixed = (image > 410) & (image < 690)
    assert mixed.sum() > 50
    assert np.all(edge[mixed])
    # away from edges every voxel has exactly its structure's intensity
    np.testing.assert_allclose(image[(labels == 1) & ~edge], 700.0, atol=1e-3)
    np.testing.assert_allclose(image[(labels == 2) & ~edge], 150.0, atol=1e-3)


def test_geometry_is_anisotropic_and_oblique():
    ph = make_phantom()
    g = ph.image.geometry
    assert g.spacing == (2.5, 1.0, 1.0)
    assert not np.allclose(g.direction_matrix, np.eye(3), atol=0.05)
    assert ph.labels.geometry == g


def test_sample_files_equal_the_generator():
    phantom = make_phantom(seed=0)
    image = read_volume(SAMPLES / "phantom_t1.nii.gz")
    labels = read_volume(SAMPLES / "phantom_labels.nii.gz")
    np.testing.assert_array_equal(image.array, phantom.image.array)
    np.testing.assert_array_equal(labels.array, phantom.labels.array)
    assert image.geometry.is_close(phantom.image.geometry, atol=1e-5)
    total = sum(p.stat().st_size for p in SAMPLES.glob("*.nii.gz"))
    assert total < 5_000_000
