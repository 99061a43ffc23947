"""``medseg info``, ``medseg convert`` and ``medseg view``."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

__all__ = ["describe", "register"]


def describe(path: str, *, series_uid: str | None = None) -> dict[str, Any]:
    """Size, spacing, origin and direction (ITK x-y-z order), dtype, range and DICOM series."""
    from medseg_napari.core.io import read_volume

    volume = read_volume(path, series_uid=series_uid)
    g = volume.geometry
    info: dict[str, Any] = {
        "path": str(path),
        "size": list(volume.shape[::-1]),
        "spacing": list(g.itk_spacing),
        "origin": list(g.itk_origin),
        "direction": list(g.itk_direction),
        "dtype": str(volume.array.dtype),
        "min": float(np.min(volume.array)),
        "max": float(np.max(volume.array)),
    }
    if "dicom_series" in volume.metadata:
        info["series_uid"] = volume.metadata["series_uid"]
        info["series"] = volume.metadata["dicom_series"]
    return info


def _info(args: argparse.Namespace) -> int:
    info = describe(args.path, series_uid=args.series)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    fmt = lambda values: " ".join(f"{v:.6g}" for v in values)  # noqa: E731
    print(f"{info['path']}")
    print(f"  size       {' x '.join(str(s) for s in info['size'])}  (x, y, z)")
    print(f"  spacing    {fmt(info['spacing'])} mm")
    print(f"  origin     {fmt(info['origin'])} mm")
    print(f"  direction  {fmt(info['direction'])}")
    print(f"  dtype      {info['dtype']}  (min {info['min']:.6g}, max {info['max']:.6g})")
    for s in info.get("series", []):
        mark = "*" if s["uid"] == info["series_uid"] else " "
        print(f"  {mark} series {s['uid'] or '(no UID)'}  {s['n_slices']} slices  {s['modality']} {s['description']}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from medseg_napari.core.io import read_volume, write_volume

    volume = read_volume(args.input, series_uid=args.series)
    write_volume(volume, args.output)
    print(f"wrote {args.output}  ({' x '.join(str(s) for s in volume.shape[::-1])}, {volume.array.dtype})")
    return 0


def _view(args: argparse.Namespace) -> int:
    from medseg_napari.core.io import read_volume

    for path in args.paths:  # fail fast with a one-line message before Qt starts
        read_volume(path)
    import napari

    from medseg_napari._napari.app import open_viewer

    open_viewer(args.paths)
    napari.run()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``info``, ``convert`` and ``view``."""
    p = subparsers.add_parser("info", help="print a volume's size, spacing, origin, direction and range")
    p.add_argument("path", help="a volume file or a DICOM folder")
    p.add_argument("--series", help="DICOM series UID (default: the largest series)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_info)

    p = subparsers.add_parser("convert", help="convert a volume (or DICOM folder) to another format")
    p.add_argument("input", help="a volume file or a DICOM folder")
    p.add_argument("output", help="output file: .nii.gz, .nii, .nrrd or .mha")
    p.add_argument("--series", help="DICOM series UID (default: the largest series)")
    p.set_defaults(func=_convert)

    p = subparsers.add_parser("view", help="open napari with the volumes (or the phantom) and the plugin docked")
    p.add_argument("paths", nargs="*", help="volume files or DICOM folders (default: the sample phantom)")
    p.set_defaults(func=_view)



