"""``medseg evaluate``: compare predicted label maps with references (Dice, HD, NSD, ... in mm).

One pair::

    medseg evaluate PRED REF [--labels 1,2] [--tolerance MM] [--json]

Two folders, files matched by name::

    medseg evaluate PRED_DIR REF_DIR -o metrics.csv [--workers N | --scheduler ADDRESS]

prints each label's mean, median and worst case; files without a counterpart
are listed (they are not errors). Cases run in parallel in a process pool
(``--workers``, default: the number of CPUs) or on a running Dask distributed
cluster (``--scheduler tcp://host:8786``; needs the ``dask`` extra); the CSV is
the same whatever runs them (rows sorted by case, then label). Definitions: :mod:`medseg_napari.core.metrics.evaluate`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from medseg_napari._cli._common import check_output_path, print_progress
from medseg_napari.core.errors import MedsegError

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="compare predicted label maps with references (Dice, IoU, HD, HD95, ASSD, MASD, NSD in mm)",
        description=(
            "Compare a predicted label map with a reference, or two folders of them matched by file name. "
            "Distances are in mm using the prediction's voxel spacing; a reference on another grid is "
            "resampled onto the prediction's grid (nearest neighbour). Infinite distances (one mask empty) "
            "are null in JSON and empty cells in CSV."
        ),
    )
    parser.add_argument("prediction", help="predicted label map (file) or folder of them")
    parser.add_argument("reference", help="reference label map (file) or folder of them")
    parser.add_argument("--labels", help="comma-separated labels to evaluate (default: all present)")
    parser.add_argument(
        "--tolerance", type=float, default=1.0, metavar="MM", help="NSD tolerance in mm (default 1)"
    )
    parser.add_argument(
        "--surface",
        choices=("voxel", "area"),
        default="voxel",
        help="surface voxels (default, as MONAI) or area-weighted elements (as DeepMind's surface-distance)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("-o", "--output", help="write per-case, per-label metrics to this CSV file")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="folders: evaluate N cases at once in worker processes (default: the number of CPUs; 1: no pool)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="folders: run the cases on a running Dask distributed scheduler, e.g. tcp://host:8786 "
        "(pip install 'medseg-napari[dask]'; workers must see the same paths)",
    )
    parser.set_defaults(func=run)


def _parse_labels(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        labels = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        labels = []
    if not labels or min(labels) < 1:
        raise MedsegError(f"--labels '{text}' must be positive integers separated by commas, e.g. 1,2")
    return labels


def _case_name(path: Path) -> str:
    name = path.name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _volume_files(folder: Path) -> dict[str, Path]:
    return {
        p.name: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES)
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "null"
    if value == float("inf"):
        return "inf"
    return f"{value:.{digits}f}"


def _evaluate_pair(
    pred_path: Path, ref_path: Path, args: argparse.Namespace, labels: list[int] | None
) -> list[Any]:
    from medseg_napari.core.io import read_volume
    from medseg_napari.core.metrics import evaluate_volumes

    prediction = read_volume(pred_path)
    reference = read_volume(ref_path)
    try:
        return evaluate_volumes(
            prediction, reference, labels=labels, tolerance_mm=args.tolerance, surface=args.surface
        )
    except ValueError as error:
        raise MedsegError(f"{pred_path.name}: {error}") from error


def run(args: argparse.Namespace) -> int:
    """Run ``medseg evaluate``."""
    labels = _parse_labels(args.labels)
    if not args.tolerance >= 0 or args.tolerance == float("inf"):
        raise MedsegError(f"--tolerance must be a finite number >= 0 mm, got {args.tolerance}")
    pred, ref = Path(args.prediction), Path(args.reference)
    for path in (pred, ref):
        if not path.exists():
            raise MedsegError(f"{path}: no such file or folder")
    output = check_output_path(args.output) if args.output else None
    if args.workers is not None and args.workers < 1:
        raise MedsegError(f"--workers must be at least 1, got {args.workers}")
    if args.workers is not None and args.scheduler:
        raise MedsegError("give --workers or --scheduler, not both")
    pred_folder = pred.is_dir() and bool(_volume_files(pred))
    ref_folder = ref.is_dir() and bool(_volume_files(ref))
    if pred_folder != ref_folder:
        raise MedsegError("give two files or two folders of label maps (one of each was given)")
    if pred_folder:
        return _run_folders(pred, ref, args, labels, output)
    return _run_pair(pred, ref, args, labels, output)


def _run_pair(
    pred: Path, ref: Path, args: argparse.Namespace, labels: list[int] | None, output: Path | None
) -> int:
    from medseg_napari.core.metrics import metrics_to_json, write_metrics_csv

    records = _evaluate_pair(pred, ref, args, labels)
    if output is not None:
        write_metrics_csv(output, {_case_name(pred): records})
    if args.json:
        extra = {
            "prediction": str(pred),
            "reference": str(ref),
            "tolerance_mm": args.tolerance,
            "surface": args.surface,
        }
        print(json.dumps(metrics_to_json(records, **extra), indent=2))
        return 0
    print(
        f"prediction {pred}\nreference  {ref}\nNSD tolerance {args.tolerance:g} mm; distances in mm; volumes in mL"
    )
    header = f"{'label':>5} {'name':<14} {'dice':>6} {'iou':>6} {'hd':>8} {'hd95':>8} {'assd':>7} {'masd':>7} {'nsd':>6}"
    print(header + f" {'vol_pred':>9} {'vol_ref':>9}  empty")
    for r in records:
        print(
            f"{r.label:>5} {r.name[:14]:<14} {r.dice:6.4f} {r.iou:6.4f} {_fmt(r.hd, 2):>8} {_fmt(r.hd95, 2):>8} "
            f"{_fmt(r.assd):>7} {_fmt(r.masd):>7} {r.nsd:6.4f} {r.volume_pred_ml:9.3f} {r.volume_ref_ml:9.3f}  "
            f"{r.empty or ''}"
        )
    return 0


def _run_folders(
    pred_dir: Path, ref_dir: Path, args: argparse.Namespace, labels: list[int] | None, output: Path | None
) -> int:
    from medseg_napari.core.metrics import aggregate, write_metrics_csv
    from medseg_napari.core.metrics.batch import CasePair, evaluate_pairs

    preds, refs = _volume_files(pred_dir), _volume_files(ref_dir)
    common = sorted(set(preds) & set(refs))
    missing_ref = sorted(set(preds) - set(refs))
    missing_pred = sorted(set(refs) - set(preds))
    if not common:
        raise MedsegError(f"no file names in common between {pred_dir} and {ref_dir}")
    cases = evaluate_pairs(
        [CasePair(_case_name(preds[name]), preds[name], refs[name]) for name in common],
        labels=labels,
        tolerance_mm=args.tolerance,
        surface=args.surface,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=None if args.json else print_progress,
    )
    if output is not None:
        write_metrics_csv(output, cases)
    summaries = aggregate(cases)
    if args.json:
        print(
            json.dumps(
                {
                    "n_cases": len(cases),
                    "missing_reference": missing_ref,
                    "missing_prediction": missing_pred,
                    "labels": {str(s.label): s.to_dict() for s in summaries},
                },
                indent=2,
            )
        )
        return 0
    print(f"{len(cases)} cases; NSD tolerance {args.tolerance:g} mm; distances in mm")
    for s in summaries:
        empties = f"both empty {s.n_both_empty}, prediction empty {s.n_prediction_empty}, "
        empties += f"reference empty {s.n_reference_empty}"
        print(f"label {s.label} ({s.name}): {s.n_cases} cases ({empties})")
        print(f"  {'metric':<18} {'mean':>9} {'median':>9} {'worst':>9}  worst case")
        for metric, m in s.metrics.items():
            print(f"  {metric:<18} {_fmt(m.mean):>9} {_fmt(m.median):>9} {_fmt(m.worst):>9}  {m.worst_case}")
    for name in missing_ref:
        print(f"missing reference for {name}")
    for name in missing_pred:
        print(f"missing prediction for {name}")
    if output is not None:
        print(f"wrote {output}", file=sys.stderr)
    return 0
