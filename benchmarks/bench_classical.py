"""Region growing from a click to the mask, against scikit-image and SimpleITK.

A 300x512x512 CT-like volume (int16 HU, 1.5 x 0.78 x 0.78 mm) is made here: a
body of fat and a muscle wall, a liver-sized target (about 1.6 L, two joined
ellipsoids, 60 HU), spleen, kidneys, aorta and spine nearby, Gaussian noise of
12 HU. One click inside the liver; each method grows the region connected to it
whose values lie in the same range [low, high] (6-connectivity):

* ours: :func:`medseg_napari.core.classical.region_growing.grow_region`, timed
  from the click (it also derives the range from the seed's neighbourhood:
  mean +/- 3 SD) to the whole-volume boolean mask;
* ``skimage.segmentation.flood`` on the thresholded volume (flood's own
  ``tolerance`` is centred on the seed's value, so the range is applied as a
  threshold first; that threshold is part of its time);
* SimpleITK ``ConnectedThreshold``, including the numpy -> SimpleITK copy and the
  mask back to numpy that a click in napari needs (the filter alone is printed too).

All three masks must be identical. Each method runs 5 times, interleaved, in one
process; the median is reported. Target: ours under 0.2 s on 2 cores and no
slower than the fastest peer.

Run: ``python benchmarks/bench_classical.py``
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import SimpleITK as sitk
from skimage.segmentation import flood

from medseg_napari.core.classical.region_growing import grow_region, seed_statistics
from medseg_napari.core.classical.threshold import range_mask

SHAPE = (300, 512, 512)
SPACING = (1.5, 0.78, 0.78)
REPEATS = 5


def _fill_ellipsoid(image: np.ndarray, centre_mm, radii_mm, value: int, *, shell_of=None) -> np.ndarray:
    """Set ``value`` inside an ellipsoid (only its bounding box is computed); return its mask in the box."""
    shape = np.asarray(image.shape)
    spacing = np.asarray(SPACING)
    centre = shape / 2 + np.asarray(centre_mm) / spacing
    half = np.asarray(radii_mm) / spacing
    lo = np.maximum(np.floor(centre - half).astype(int), 0)
    hi = np.minimum(np.ceil(centre + half).astype(int) + 1, shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    grids = np.ogrid[box]
    inside = sum(((g - c) / h) ** 2 for g, c, h in zip(grids, centre, half)) <= 1
    if shell_of is not None:
        inside &= shell_of[box]
    image[box][inside] = value
    return inside


def make_ct(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The CT-like volume (int16 HU) and the liver's true mask."""
    rng = np.random.default_rng(seed)
    image = np.full(SHAPE, -1000, np.int16)  # air
    _fill_ellipsoid(image, (0, 0, 0), (240, 150, 190), 50)  # muscle wall ...
    _fill_ellipsoid(image, (0, 0, 0), (240, 128, 168), -90)  # ... around abdominal fat
    liver = np.zeros(SHAPE, bool)
    for centre, radii in [((20, -10, -70), (62, 78, 68)), ((-30, -20, -40), (36, 50, 55))]:
        part = np.zeros(SHAPE, np.int16)
        _fill_ellipsoid(part, centre, radii, 1)
        liver |= part.astype(bool)
    image[liver] = 60
    _fill_ellipsoid(image, (30, -5, 95), (45, 30, 30), 45)  # spleen
    _fill_ellipsoid(image, (-85, 80, 75), (40, 20, 22), 30)  # kidneys
    _fill_ellipsoid(image, (-85, 80, -75), (40, 20, 22), 30)
    _fill_ellipsoid(image, (0, 70, 0), (240, 18, 18), 400)  # spine
    _fill_ellipsoid(image, (0, 45, 20), (240, 12, 12), 160)  # aorta
    for z in range(0, SHAPE[0], 30):  # noise, slab by slab to keep memory low
        slab = image[z : z + 30]
        noise = rng.standard_normal(slab.shape, dtype=np.float32) * 12
        slab += np.rint(noise).astype(np.int16)
    return image, liver


def _timed(func) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def main() -> None:
    t0 = time.perf_counter()
    image, liver = make_ct()
    seed = (163, 243, 166)  # a click inside the liver
    assert liver[seed]
    print(f"volume {SHAPE} int16, spacing {SPACING} mm, made in {time.perf_counter() - t0:.1f} s")
    print(f"liver: {liver.sum()} voxels = {liver.sum() * np.prod(SPACING) / 1e6:.2f} L; cores: {os.cpu_count()}")

    mean, std = seed_statistics(image, [seed], spacing=SPACING, radius_mm=2.0)
    low, high = mean - 3 * std, mean + 3 * std
    print(f"range from the click's neighbourhood: [{low:.1f}, {high:.1f}] HU")

    def ours():
        return grow_region(image, [seed], spacing=SPACING, tolerance=3.0, radius_mm=2.0)

    def skimage_flood():
        return flood(range_mask(image, low=low, high=high), seed, connectivity=1)

    sitk_filter_times: list[float] = []

    def simpleitk():
        itk_image = sitk.GetImageFromArray(image)
        start = time.perf_counter()
        # ITK casts the bounds to the pixel type (truncation): give it the integer range.
        out = sitk.ConnectedThreshold(
            itk_image, seedList=[seed[::-1]], lower=float(np.ceil(low)), upper=float(np.floor(high))
        )
        sitk_filter_times.append(time.perf_counter() - start)
        return sitk.GetArrayViewFromImage(out).astype(bool)

    methods = {"ours (grow_region)": ours, "skimage flood": skimage_flood, "SimpleITK ConnectedThreshold": simpleitk}
    times: dict[str, list[float]] = {name: [] for name in methods}
    masks: dict[str, np.ndarray] = {}
    for _ in range(REPEATS):
        for name, func in methods.items():
            elapsed, mask = _timed(func)
            times[name].append(elapsed)
            masks.setdefault(name, mask)  # keep the first mask of each method

    reference = masks["ours (grow_region)"]
    for name in methods:
        same = np.array_equal(masks[name], reference)
        print(f"{name:32s} identical mask: {same}")
        assert same, f"{name} disagrees"
    dice = 2 * (reference & liver).sum() / (reference.sum() + liver.sum())
    print(f"region: {reference.sum()} voxels, Dice with the true liver {dice:.4f}")

    median = {name: statistics.median(values) for name, values in times.items()}
    ours_t = median["ours (grow_region)"]
    print()
    print(f"{'method':32s} {'median s':>9s} {'min s':>7s} {'ratio peer/ours':>16s}")
    for name, t in median.items():
        print(f"{name:32s} {t:9.3f} {min(times[name]):7.3f} {t / ours_t:16.2f}")
    print(f"{'  (SimpleITK filter alone)':32s} {statistics.median(sitk_filter_times):9.3f}")
    fastest_peer = min(t for name, t in median.items() if not name.startswith("ours"))
    print()
    print(f"target < 0.2 s: {'PASS' if ours_t < 0.2 else 'FAIL'} ({ours_t:.3f} s)")
    print(
        f"no slower than the fastest peer: {'PASS' if ours_t <= fastest_peer else 'FAIL'} "
        f"({fastest_peer / ours_t:.2f}x faster)"
    )


if __name__ == "__main__":
    main()
