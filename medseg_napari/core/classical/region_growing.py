"""Seeded region growing: the voxels connected to the seeds whose values lie in a range.

The range is either given (``low``, ``high``) or derived from the seeds'
neighbourhood (mean +/- ``tolerance`` standard deviations); optional
confidence-connected iterations re-estimate it from the grown region, as ITK's
``ConfidenceConnected`` does. Growing can be confined to a region of interest.

Speed: a click must give a mask at once, even on a 300x512x512 CT. The region is
grown inside a box around the seeds; when it reaches a face of the box that is
not the image border, the box is enlarged on that face and the fill repeated,
so the work is proportional to the region's bounding box rather than to the
volume. The fill inside the box is :func:`skimage.segmentation.flood` on the
thresholded box (measured faster than ``scipy.ndimage.label`` and SimpleITK's
``ConnectedThreshold`` on the same box; see ``benchmarks/bench_classical.py``).
The answer is exactly the connected component a whole-volume fill gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from skimage.segmentation import flood

from medseg_napari.core.classical.threshold import check_range, range_mask
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.progress import CancelToken, ProgressCallback, ProgressTimer

__all__ = ["GrownRegion", "check_seeds", "grow_region", "seed_statistics", "seeded_region"]

#: skimage ``connectivity`` (1, 2, 3) for a neighbourhood of 6, 18 or 26 voxels.
_CONNECTIVITY = {6: 1, 18: 2, 26: 3}

Slices = tuple[slice, slice, slice]

#: Images of at least this many voxels get a coarse first guess of the region's box.
_COARSE_FROM = 1 << 23
#: Spacing (mm) of the coarse grid of that first guess.
_COARSE_MM = 3.0


@dataclass(frozen=True)
class GrownRegion:
    """A grown region stored as its bounding box: cheap to write into a label map.

    Attributes
    ----------
    slices : tuple of 3 slices
        The box (z, y, x) the region was grown in; the region lies inside it.
    crop : ndarray of bool
        The region inside ``slices``.
    shape : tuple of 3 ints
        Shape of the whole image.
    low, high : float
        The intensity range used (after the last iteration); with several
        seeds, each with its own derived range, the lowest and highest bounds.
    """

    slices: Slices
    crop: np.ndarray
    shape: tuple[int, int, int]
    low: float
    high: float

    @property
    def n_voxels(self) -> int:
        """Number of voxels in the region."""
        return int(np.count_nonzero(self.crop))

    def full(self) -> np.ndarray:
        """The region as a boolean mask of the whole image."""
        mask = np.zeros(self.shape, dtype=bool)
        mask[self.slices] = self.crop
        return mask


def check_seeds(seeds: Sequence[Sequence[float]] | np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Round seed points (z, y, x voxel indices) to integers and check they lie in the image.

    Parameters
    ----------
    seeds : (N, 3) array-like
        Seed positions in voxel index coordinates (z, y, x); fractions are rounded.
    shape : 3 ints
        The image shape.

    Returns
    -------
    ndarray of int, shape (N, 3)

    Raises
    ------
    MedsegError
        No seed, a seed that is not three numbers, or a seed outside the image.

    Examples
    --------
    >>> check_seeds([(1.2, 2.0, 2.6)], (4, 4, 4)).tolist()
    [[1, 2, 3]]
    """
    array = np.asarray(seeds, dtype=float)
    if array.size == 0:
        raise MedsegError("no seed points: click at least one seed inside the structure")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != 3 or not np.all(np.isfinite(array)):
        raise MedsegError(f"seeds must be (z, y, x) points; got an array of shape {np.shape(seeds)}")
    index = np.rint(array).astype(np.int64)
    upper = np.asarray(shape)[None, :]
    outside = np.any((index < 0) | (index >= upper), axis=1)
    if outside.any():
        k = int(np.argmax(outside))
        z, y, x = (round(float(v), 1) for v in array[k])
        raise MedsegError(
            f"seed {k + 1} at (z, y, x) = ({z}, {y}, {x}) lies outside the image of shape {tuple(shape)}"
        )
    return index


def _neighbourhood_radius(spacing: Sequence[float], radius_mm: float) -> np.ndarray:
    """Half-size in voxels of a box of ``radius_mm`` (at least one voxel per axis)."""
    return np.maximum(1, np.rint(radius_mm / np.asarray(spacing, dtype=float))).astype(int)


def seed_statistics(
    image: np.ndarray,
    seeds: Sequence[Sequence[float]] | np.ndarray,
    *,
    spacing: Sequence[float],
    radius_mm: float = 2.0,
) -> tuple[float, float]:
    """Mean and standard deviation of the image in boxes around the seeds.

    Parameters
    ----------
    image : ndarray
        z-y-x intensities.
    seeds : (N, 3) array-like
        Seed voxel indices (z, y, x).
    spacing : 3 floats
        Voxel size (z, y, x) in mm.
    radius_mm : float
        Half-size of each box in mm (at least one voxel along each axis).

    Returns
    -------
    mean, std : float
        Over the union of the boxes (a voxel shared by two boxes counts once).

    Examples
    --------
    >>> img = np.zeros((5, 5, 5)); img[2, 2, 2] = 27.0
    >>> seed_statistics(img, [(2, 2, 2)], spacing=(1, 1, 1), radius_mm=1.0)[0]
    1.0
    """
    index = check_seeds(seeds, image.shape)
    radius = _neighbourhood_radius(spacing, radius_mm)
    lo = np.maximum(index.min(axis=0) - radius, 0)
    hi = np.minimum(index.max(axis=0) + radius + 1, image.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    window = np.zeros(tuple(hi - lo), dtype=bool)
    for point in index - lo:
        window[tuple(slice(max(0, int(p - r)), int(p + r + 1)) for p, r in zip(point, radius))] = True
    values = np.asarray(image[box], dtype=np.float64)[window]
    return float(values.mean()), float(values.std())


def _flood_from(inside: np.ndarray, seeds: np.ndarray, connectivity: int) -> np.ndarray:
    """The components of ``inside`` holding the seeds (each seed is in ``inside``)."""
    region = flood(inside, tuple(seeds[0]), connectivity=connectivity)
    for point in map(tuple, seeds[1:]):
        if not region[point]:
            region |= flood(inside, point, connectivity=connectivity)
    return region


def _initial_box(
    image: np.ndarray,
    seeds: np.ndarray,
    low: float,
    high: float,
    spacing: Sequence[float],
    roi: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """A first guess of the region's bounding box (start, stop).

    Small images: 32 voxels around the seeds. Large ones: the region grown on a
    grid subsampled to about 3 mm (a 16-32x smaller grid, one strided pass),
    padded by one coarse step. Only a guess: the caller enlarges the box until
    the exact region no longer touches it.
    """
    shape = np.asarray(image.shape)
    seeds_lo, seeds_hi = seeds.min(axis=0), seeds.max(axis=0)
    if image.size < _COARSE_FROM:
        return np.maximum(seeds_lo - 32, 0), np.minimum(seeds_hi + 33, shape)
    stride = np.maximum(1, np.rint(_COARSE_MM / np.asarray(spacing, dtype=float))).astype(int)
    view = tuple(slice(None, None, int(s)) for s in stride)
    inside = range_mask(image[view], low=low, high=high)
    if roi is not None:
        inside &= roi[view]
    local = np.minimum(np.rint(seeds / stride).astype(int), np.asarray(inside.shape) - 1)
    inside[tuple(local.T)] = True
    region = _flood_from(inside, local, 3)
    lo = np.array([np.flatnonzero(region.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3)])
    hi = np.array([np.flatnonzero(region.any(axis=tuple(a for a in range(3) if a != ax)))[-1] for ax in range(3)])
    start = np.minimum(np.maximum((lo - 1) * stride, 0), seeds_lo)
    stop = np.maximum(np.minimum((hi + 2) * stride, shape), seeds_hi + 1)
    return start, stop


def _grow_in_box(
    image: np.ndarray,
    seeds: np.ndarray,
    low: float,
    high: float,
    spacing: Sequence[float],
    connectivity: int,
    roi: np.ndarray | None,
    cancel: CancelToken | None,
) -> tuple[Slices, np.ndarray]:
    """Flood from the seeds inside a box that grows until the region no longer touches it."""
    shape = np.asarray(image.shape)
    start, stop = _initial_box(image, seeds, low, high, spacing, roi)
    while True:
        if cancel is not None:
            cancel.raise_if_cancelled()
        box = tuple(slice(int(a), int(b)) for a, b in zip(start, stop))
        inside = range_mask(image[box], low=low, high=high)
        if roi is not None:
            inside &= roi[box]
        local = seeds - start
        inside[tuple(local.T)] = True  # a seed always belongs to its region
        region = _flood_from(inside, local, connectivity)
        grow_start, grow_stop = start.copy(), stop.copy()
        extent = stop - start
        for axis in range(3):
            step = max(16, int(extent[axis]) // 2)
            if start[axis] > 0 and np.take(region, 0, axis=axis).any():
                grow_start[axis] = max(0, start[axis] - step)
            if stop[axis] < shape[axis] and np.take(region, -1, axis=axis).any():
                grow_stop[axis] = min(shape[axis], stop[axis] + step)
        if np.array_equal(grow_start, start) and np.array_equal(grow_stop, stop):
            return box, region  # type: ignore[return-value]
        start, stop = grow_start, grow_stop


def seeded_region(
    image: np.ndarray,
    seeds: Sequence[Sequence[float]] | np.ndarray,
    *,
    spacing: Sequence[float],
    low: float | None = None,
    high: float | None = None,
    tolerance: float = 2.5,
    radius_mm: float = 2.0,
    connectivity: int = 6,
    iterations: int = 0,
    roi: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> GrownRegion:
    """Grow a region from seeds; return it as a box and a cropped mask.

    Same parameters as :func:`grow_region`, which returns the whole-image mask.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise MedsegError(f"region growing needs a 3D image; got shape {image.shape}")
    if connectivity not in _CONNECTIVITY:
        raise MedsegError(f"connectivity must be 6, 18 or 26; got {connectivity}")
    if iterations < 0:
        raise MedsegError(f"iterations must be >= 0; got {iterations}")
    if roi is not None:
        roi = np.asarray(roi, dtype=bool)
        if roi.shape != image.shape:
            raise MedsegError(f"the ROI has shape {roi.shape}; the image has shape {image.shape}")
    index = check_seeds(seeds, image.shape)
    if (low is None) != (high is None):
        raise MedsegError("give both low and high, or neither (to derive the range from the seeds)")
    conn = _CONNECTIVITY[connectivity]
    if low is not None and high is not None:
        # One given range: every seed floods in it at once.
        low, high = check_range(low, high)
        timer = ProgressTimer(1, progress)
        box, region = _grow_in_box(image, index, low, high, spacing, conn, roi, cancel)
        timer.report(1, "grown", voxels=int(np.count_nonzero(region)))
        return GrownRegion(box, region, _shape(image), low, high)
    if tolerance < 0:
        raise MedsegError(f"tolerance must be >= 0 standard deviations; got {tolerance}")
    # A derived range per seed: seeds clicked in two structures of different
    # brightness each grow their own structure (pooled statistics would span both).
    timer = ProgressTimer(len(index) * (iterations + 1), progress)
    parts: list[tuple[Slices, np.ndarray]] = []
    lows, highs = [], []
    for k, seed in enumerate(index):
        if any(_covers(box, region, seed) for box, region in parts):
            continue  # already inside what an earlier seed grew
        mean, std = seed_statistics(image, seed[None], spacing=spacing, radius_mm=radius_mm)
        lo, hi = mean - tolerance * std, mean + tolerance * std
        box, region = _grow_in_box(image, seed[None], lo, hi, spacing, conn, roi, cancel)
        for step in range(iterations):
            # Confidence connected: re-estimate the range from the region and grow again.
            values = np.asarray(image[box], dtype=np.float64)[region]
            mean, std = float(values.mean()), float(values.std())
            lo, hi = mean - tolerance * std, mean + tolerance * std
            box, region = _grow_in_box(image, seed[None], lo, hi, spacing, conn, roi, cancel)
            timer.report(k * (iterations + 1) + step + 2, f"seed {k + 1}: iteration {step + 1}")
        timer.report((k + 1) * (iterations + 1), f"seed {k + 1} grown", voxels=int(np.count_nonzero(region)))
        parts.append((box, region))
        lows.append(lo)
        highs.append(hi)
    box, region = _union(parts)
    return GrownRegion(box, region, _shape(image), float(min(lows)), float(max(highs)))


def _shape(image: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(s) for s in image.shape)  # type: ignore[return-value]


def _covers(box: Slices, region: np.ndarray, point: np.ndarray) -> bool:
    local = [int(p) - s.start for p, s in zip(point, box)]
    return all(0 <= v < n for v, n in zip(local, region.shape)) and bool(region[tuple(local)])


def _union(parts: list[tuple[Slices, np.ndarray]]) -> tuple[Slices, np.ndarray]:
    """One box and mask holding every (box, mask) part."""
    if len(parts) == 1:
        return parts[0]
    start = np.min([[s.start for s in box] for box, _ in parts], axis=0)
    stop = np.max([[s.stop for s in box] for box, _ in parts], axis=0)
    region = np.zeros(tuple(stop - start), dtype=bool)
    for box, part in parts:
        region[tuple(slice(s.start - a, s.stop - a) for s, a in zip(box, start))] |= part
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop)), region  # type: ignore[return-value]


def grow_region(
    image: np.ndarray,
    seeds: Sequence[Sequence[float]] | np.ndarray,
    *,
    spacing: Sequence[float],
    low: float | None = None,
    high: float | None = None,
    tolerance: float = 2.5,
    radius_mm: float = 2.0,
    connectivity: int = 6,
    iterations: int = 0,
    roi: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """The voxels connected to the seeds whose intensity lies in a range.

    Parameters
    ----------
    image : ndarray
        z-y-x intensities.
    seeds : (N, 3) array-like
        Seed voxel indices (z, y, x); fractions are rounded. A seed always
        belongs to the region, even when its own value is a noise outlier.
    spacing : 3 floats
        Voxel size (z, y, x) in mm (sets the seed neighbourhood in voxels).
    low, high : float, optional
        Inclusive intensity range shared by all seeds. When omitted, each seed
        gets its own range, ``mean +/- tolerance * std`` of the image in a box
        of ``radius_mm`` around it, and grows its own region (seeds in two
        structures of different brightness grow both, not everything between);
        a seed inside the region of an earlier seed adds nothing.
    tolerance : float
        Number of standard deviations either side of the mean (derived range).
    radius_mm : float
        Half-size in mm of the box around each seed for the statistics.
    connectivity : {6, 18, 26}
        Neighbours a region grows through: faces, faces+edges, or all.
    iterations : int
        Confidence-connected iterations (derived ranges only): re-estimate the
        range as ``mean +/- tolerance * std`` of the region and grow again.
    roi : ndarray of bool, optional
        Grow only inside this mask (same shape as ``image``).
    progress, cancel
        Progress reports and a cancel flag (see :mod:`medseg_napari.core.progress`).

    Returns
    -------
    ndarray of bool
        The grown region.

    Raises
    ------
    MedsegError
        No seeds, a seed outside the image, ``low > high``, a mismatched ROI.

    Examples
    --------
    >>> img = np.zeros((5, 5, 5)); img[1:4, 1:4, 1:4] = 10; img[0, 0, 0] = 10
    >>> int(grow_region(img, [(2, 2, 2)], spacing=(1, 1, 1), low=5, high=15).sum())
    27
    """
    return seeded_region(
        image,
        seeds,
        spacing=spacing,
        low=low,
        high=high,
        tolerance=tolerance,
        radius_mm=radius_mm,
        connectivity=connectivity,
        iterations=iterations,
        roi=roi,
        progress=progress,
        cancel=cancel,
    ).full()
