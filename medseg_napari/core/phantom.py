"""Seeded synthetic MRI-like volumes with an exact label map.

The phantom stands in for real data wherever a test or a demo needs an exact
answer: a head-like ellipsoid holding three structures of different sizes and
contrasts, with partial-volume edges, a smooth multiplicative bias field,
Gaussian noise, anisotropic spacing and (optionally) an oblique direction.
Shapes are defined in the grid's own millimetre frame, so the label of every
voxel is known exactly: a voxel belongs to a structure when more than half of it
(8x supersampled) lies inside. No network, no files: the same seed always gives
the same volume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medseg_napari.core.geometry import Geometry
from medseg_napari.core.volume import Volume

__all__ = ["PHANTOM_LABELS", "Phantom", "make_phantom", "oblique_direction"]

#: Label values and names of the phantom's structures.
PHANTOM_LABELS: dict[int, str] = {1: "ellipsoid", 2: "sphere", 3: "nodule"}

#: T1-like mean intensity of the head tissue and of each structure.
DEFAULT_INTENSITIES: dict[str, float] = {"tissue": 400.0, "ellipsoid": 700.0, "sphere": 150.0, "nodule": 950.0}


@dataclass(frozen=True)
class Phantom:
    """A phantom image and its exact label map on the same grid."""

    image: Volume
    labels: Volume
    label_names: dict[int, str]


def oblique_direction(angle_deg: float = 12.0, axis: Sequence[float] = (1.0, 0.3, 0.2)) -> np.ndarray:
    """A rotation matrix (z-y-x) of ``angle_deg`` about ``axis``: an oblique acquisition."""
    axis = np.asarray(axis, dtype=float)
    axis = axis / np.linalg.norm(axis)
    angle = np.deg2rad(angle_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _ellipsoid_fraction(coords: np.ndarray, centre: np.ndarray, radii: np.ndarray, sub: int) -> np.ndarray:
    """Fraction of each voxel inside an axis-aligned ellipsoid, by sub^3 supersampling."""
    shape = np.broadcast_shapes(coords[0].shape, coords[1].shape, coords[2].shape)
    inside = np.zeros(shape, dtype=np.float32)
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    for dz in offsets:
        for dy in offsets:
            for dx in offsets:
                r2 = (
                    ((coords[0] + dz * coords[3] - centre[0]) / radii[0]) ** 2
                    + ((coords[1] + dy * coords[4] - centre[1]) / radii[1]) ** 2
                    + ((coords[2] + dx * coords[5] - centre[2]) / radii[2]) ** 2
                )
                inside += r2 <= 1.0
    return inside / sub**3


def make_phantom(
    *,
    shape: Sequence[int] = (40, 96, 96),
    spacing: Sequence[float] = (2.5, 1.0, 1.0),
    oblique: bool = True,
    seed: int = 0,
    intensities: Mapping[str, float] | None = None,
    noise: float = 0.04,
    bias: float = 0.25,
    origin: Sequence[float] | None = None,
) -> Phantom:
    """Make a seeded MRI-like phantom with its exact label map.

    Parameters
    ----------
    shape : 3 ints
        z-y-x size of the grid.
    spacing : 3 floats
        Voxel size in mm (z, y, x); anisotropic by default, like a thick-slice MRI.
    oblique : bool
        Give the grid a tilted direction (about 12 degrees) instead of the identity.
    seed : int
        Random seed: structure sizes and positions, bias field and noise.
    intensities : mapping, optional
        Mean intensity of ``"tissue"``, ``"ellipsoid"``, ``"sphere"`` and
        ``"nodule"``; change them to make a phantom with another contrast.
    noise : float
        Standard deviation of the Gaussian noise, as a fraction of the brightest mean.
    bias : float
        Peak-to-peak amplitude of the smooth multiplicative bias field (0 for none).
    origin : 3 floats, optional
        World position of voxel (0, 0, 0); a seeded offset by default.

    Returns
    -------
    Phantom
        ``image`` (float32, intensities around the means above), ``labels``
        (uint8; 0 background, values of :data:`PHANTOM_LABELS`) on the same grid,
        and ``label_names``.

    Examples
    --------
    >>> ph = make_phantom(shape=(16, 32, 32), seed=1)
    >>> ph.image.shape == ph.labels.shape == (16, 32, 32)
    True
    >>> sorted(set(ph.labels.array.ravel().tolist()))
    [0, 1, 2, 3]
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    spacing_arr = np.asarray(spacing, dtype=float)
    means = {**DEFAULT_INTENSITIES, **(intensities or {})}
    extent = np.asarray(shape) * spacing_arr  # mm
    centre = extent / 2 - spacing_arr / 2

    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing_arr)], indexing="ij", sparse=True)
    coords = [*grids, *spacing_arr]

    head_radii = extent / 2 * np.array([0.85, 0.8, 0.75])
    # Structures sit inside the head; sizes in mm scale with the head.
    size = head_radii.min()
    ell_radii = size * rng.uniform([0.38, 0.45, 0.55], [0.48, 0.6, 0.7])
    ell_centre = centre + rng.uniform(-0.12, 0.12, 3) * head_radii
    sph_r = size * rng.uniform(0.22, 0.3)
    nod_r = size * rng.uniform(0.1, 0.14)

    def place(radius: float) -> np.ndarray:
        # Keep the sphere inside the head and clear of the ellipsoid's core.
        for _ in range(200):
            c = centre + rng.uniform(-0.55, 0.55, 3) * head_radii
            if np.sum(((c - centre) / (head_radii - radius)) ** 2) > 0.8:
                continue
            if np.sum(((c - ell_centre) / (ell_radii + radius)) ** 2) > 1.0:
                return c
        return centre + np.array([0, 0.6, 0]) * head_radii

    sph_centre = place(sph_r)
    nod_centre = place(nod_r)
    while np.linalg.norm(nod_centre - sph_centre) < sph_r + nod_r + 2:
        nod_centre = place(nod_r)

    sub = 2
    head = _ellipsoid_fraction(coords, centre, head_radii, sub)
    structures = [
        (1, "ellipsoid", _ellipsoid_fraction(coords, ell_centre, ell_radii, sub)),
        (2, "sphere", _ellipsoid_fraction(coords, sph_centre, np.full(3, sph_r), sub)),
        (3, "nodule", _ellipsoid_fraction(coords, nod_centre, np.full(3, nod_r), sub)),
    ]

    image = head * means["tissue"]
    labels = np.zeros(shape, dtype=np.uint8)
    for value, name, frac in structures:  # later structures lie on top of earlier ones
        frac = np.minimum(frac, head)
        image = image * (1 - frac) + frac * means[name]
        labels[frac > 0.5] = value

    if bias:
        # A smooth low-order field, as an MRI receive coil gives.
        zz, yy, xx = [(g - c) / e for g, c, e in zip(grids, centre, extent)]
        coeffs = rng.uniform(-1, 1, 6)
        field = coeffs[0] * zz + coeffs[1] * yy + coeffs[2] * xx + coeffs[3] * yy * xx + coeffs[4] * zz * yy + coeffs[5] * xx**2
        field = field / max(np.abs(field).max(), 1e-6)
        image = image * (1 + bias / 2 * field)
    brightest = max(means.values())
    image = image + rng.normal(0.0, noise * brightest, shape)
    image = np.clip(image, 0, None).astype(np.float32)

    direction = oblique_direction() if oblique else np.eye(3)
    if origin is None:
        origin = rng.uniform(-120, -60, 3)
    geometry = Geometry(spacing=tuple(spacing_arr), origin=tuple(origin), direction=direction)
    meta = {"source": f"phantom(seed={seed})", "modality": "MR", "label_names": dict(PHANTOM_LABELS)}
    return Phantom(
        image=Volume(image, geometry, dict(meta)),
        labels=Volume(labels, geometry, dict(meta)),
        label_names=dict(PHANTOM_LABELS),
    )
