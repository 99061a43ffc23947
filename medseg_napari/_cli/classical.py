"""``medseg threshold`` and ``medseg grow``: classical label maps from an image.

::

    medseg threshold IMAGE -o OUT (--range LOW HIGH | --otsu | --multi-otsu K) [--labels IN] [--label V]
    medseg grow IMAGE -o OUT --seed Z,Y,X [--seed ...] [--tolerance T] [--range LOW HIGH] [--labels IN]

The output is a label map on the image's grid (same spacing, origin and
direction). With ``--labels IN`` the result is written into a copy of an
existing label map on the same grid, as label ``V``, leaving its other labels
untouched. Any bad input (seed outside the image, no seed, ``LOW > HIGH``, a
label map on another grid) is one line on stderr, exit code 2 and no file.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from medseg_napari._cli._common import check_output_path, parse_zyx, print_progress
from medseg_napari.core.errors import MedsegError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``threshold`` and ``grow`` to ``subparsers``."""
    threshold = subparsers.add_parser(
        "threshold",
        help="label the voxels in an intensity range, or by Otsu / multi-Otsu",
        description=(
            "Threshold an image into a label map on its grid. --range keeps LOW <= value <= HIGH; --otsu "
            "keeps the voxels above Otsu's threshold; --multi-otsu K writes classes 0 (darkest) to K-1."
        ),
    )
    threshold.add_argument("image", help="image file or DICOM folder")
    threshold.add_argument("-o", "--output", required=True, help="label map to write (.nii.gz, .nrrd, .mha)")
    method = threshold.add_mutually_exclusive_group(required=True)
    method.add_argument("--range", nargs=2, type=float, metavar=("LOW", "HIGH"), help="inclusive intensity range")
    method.add_argument("--otsu", action="store_true", help="Otsu's threshold: keep the brighter class")
    method.add_argument("--multi-otsu", type=int, metavar="K", help="K classes by multi-Otsu (labels 0..K-1)")
    _add_label_options(threshold)
    threshold.set_defaults(func=run_threshold)

    grow = subparsers.add_parser(
        "grow",
        help="seeded region growing from one or more points",
        description=(
            "Grow a region from seed voxels (z, y, x indices, or world mm with --world) through the "
            "neighbours whose intensity lies in a range: --range LOW HIGH, or the seeds' neighbourhood "
            "mean +/- T standard deviations (--tolerance T)."
        ),
    )
    grow.add_argument("image", help="image file or DICOM folder")
    grow.add_argument("-o", "--output", required=True, help="label map to write (.nii.gz, .nrrd, .mha)")
    grow.add_argument(
        "--seed",
        action="append",
        default=[],
        metavar="Z,Y,X",
        help="a seed voxel (repeat for more seeds; write --seed=-80,12,40 when it starts with a minus)",
    )
    grow.add_argument("--world", action="store_true", help="seeds are world coordinates in mm (z, y, x), not voxels")
    grow.add_argument(
        "--tolerance", type=float, default=2.5, metavar="T", help="standard deviations either side (default 2.5)"
    )
    grow.add_argument("--range", nargs=2, type=float, metavar=("LOW", "HIGH"), help="explicit intensity range")
    grow.add_argument(
        "--radius", type=float, default=2.0, metavar="MM", help="neighbourhood half-size for the statistics (mm)"
    )
    grow.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=6, help="neighbours (default 6)")
    grow.add_argument("--iterations", type=int, default=0, help="confidence-connected iterations (default 0)")
    _add_label_options(grow)
    grow.set_defaults(func=run_grow)


def _add_label_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", metavar="IN", help="existing label map (same grid) to write into")
    parser.add_argument("--label", type=int, default=1, metavar="V", help="label value written (default 1)")
    parser.add_argument(
        "--overwrite", action="store_true", help="with --labels: let the result take voxels of other labels"
    )


def _prepare(args: argparse.Namespace) -> tuple[Any, np.ndarray]:
    """Read the image and the label map to write into (checked before any work)."""
    from medseg_napari.core.io import read_volume

    check_output_path(args.output)
    image = read_volume(args.image)
    if args.labels:
        labels = read_volume(args.labels)
        image.check_same_grid(labels, what=f"the labels in {args.labels}", other_name=f"the image {args.image}")
        if not np.issubdtype(labels.array.dtype, np.integer):
            raise MedsegError(f"{args.labels}: a label map holds integers; got {labels.array.dtype}")
        array = np.array(labels.array)
    else:
        array = np.zeros(image.shape, dtype=np.uint8 if args.label < 256 else np.uint16)
    return image, array


def _write(args: argparse.Namespace, image: Any, labels: np.ndarray, mask: np.ndarray, what: str) -> int:
    from medseg_napari.core.classical.editing import write_mask
    from medseg_napari.core.io import write_volume

    edit = write_mask(labels, mask, label=args.label, overwrite=bool(args.overwrite))
    write_volume(image.with_array(labels), args.output)
    n = int(np.count_nonzero(labels == args.label))
    print(
        f"{what}: label {args.label} has {n} voxels ({n * image.voxel_volume_mm3 / 1000:.2f} mL); "
        f"{edit.n_changed} changed -> {args.output}"
    )
    return 0


def run_threshold(args: argparse.Namespace) -> int:
    """``medseg threshold``."""
    from medseg_napari.core.classical import threshold as th
    from medseg_napari.core.io import write_volume

    if args.range is not None:
        th.check_range(*args.range)
    if args.multi_otsu is not None and args.labels:
        raise MedsegError("--multi-otsu writes a class map; it cannot be combined with --labels")
    image, labels = _prepare(args)
    if args.multi_otsu is not None:
        thresholds = th.multi_otsu_thresholds(image.array, classes=args.multi_otsu)
        classes = th.multi_otsu_labels(image.array, classes=args.multi_otsu)
        write_volume(image.with_array(classes), args.output)
        counts = np.bincount(classes.ravel(), minlength=args.multi_otsu)
        print(
            f"multi-Otsu thresholds {', '.join(f'{t:.6g}' for t in thresholds)}; "
            f"voxels per class {counts.tolist()} -> {args.output}"
        )
        return 0
    if args.otsu:
        value = th.otsu_threshold(image.array)
        return _write(args, image, labels, image.array > value, f"Otsu threshold {value:.6g}")
    low, high = args.range
    return _write(args, image, labels, th.range_mask(image.array, low=low, high=high), f"range [{low:g}, {high:g}]")


def run_grow(args: argparse.Namespace) -> int:
    """``medseg grow``."""
    from medseg_napari.core.classical.region_growing import check_seeds, seeded_region
    from medseg_napari.core.classical.threshold import check_range

    if not args.seed:
        raise MedsegError("no seed: give at least one --seed Z,Y,X")
    points = np.array([parse_zyx(text, what="seed") for text in args.seed], dtype=float)
    low = high = None
    if args.range is not None:
        low, high = check_range(*args.range)
    image, labels = _prepare(args)
    if args.world:
        points = np.array([image.geometry.world_to_index(p) for p in points])
    check_seeds(points, image.shape)
    region = seeded_region(
        image.array,
        points,
        spacing=image.spacing,
        low=low,
        high=high,
        tolerance=args.tolerance,
        radius_mm=args.radius,
        connectivity=args.connectivity,
        iterations=args.iterations,
        progress=print_progress if args.iterations else None,
    )
    print(f"range [{region.low:.6g}, {region.high:.6g}]", file=sys.stderr)
    return _write(args, image, labels, region.full(), f"grown from {len(points)} seed(s)")
