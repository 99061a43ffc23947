"""``medseg`` subcommands for the 3D U-Net engine: segment, models, train, make-phantom-dataset."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path

from medseg_napari._cli._common import check_output_path, print_progress
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.progress import Progress

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


class _ThrottledPrinter:
    """Print progress lines at most every ``interval`` seconds, and every validation."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self.last = 0.0

    def __call__(self, report: Progress) -> None:
        now = time.perf_counter()
        important = "val_dice" in report.values or not report.total or report.done >= report.total
        if important or now - self.last >= self.interval:
            self.last = now
            print_progress(report)


def _volume_files(folder: Path) -> list[Path]:
    from medseg_napari.core.atomic import full_suffix

    return [
        p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".") and full_suffix(p) in VOLUME_SUFFIXES
    ]


def _stem(path: Path) -> str:
    from medseg_napari.core.atomic import full_suffix

    return path.name[: -len(full_suffix(path))]


# --- segment --------------------------------------------------------------------
def _segment_one(images: list[Path], out: Path, model, device: str | None, quiet: bool) -> None:
    from medseg_napari.core.io import read_volume, write_volume
    from medseg_napari.core.model.inference import segment

    volumes = [read_volume(p) for p in images]
    result = segment(volumes, model, device=device, progress=None if quiet else _ThrottledPrinter(1.0))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    write_volume(result.labels, out)
    counts = {name: int((result.labels.array == value).sum()) for value, name in result.label_names.items()}
    summary = ", ".join(f"{n} {c} voxels" for n, c in counts.items())
    print(f"{out}: {summary} ({result.seconds:.1f} s on {result.device})")


def _cmd_segment(args: argparse.Namespace) -> int:
    from medseg_napari.core.model.format import load_model
    from medseg_napari.core.model.registry import resolve_model

    model = load_model(resolve_model(args.model))
    inputs = [Path(p) for p in args.images]
    out = Path(args.output)
    batch = len(inputs) == 1 and inputs[0].is_dir() and _volume_files(inputs[0])
    if not batch:
        for path in inputs:
            if not path.exists():
                raise MedsegError(f"{path}: no such file or folder")
        check_output_path(out)
        _segment_one(inputs, out, model, args.device, args.quiet)
        return 0
    # Batch: every volume file of the folder (cases with _0000, _0001... files are channels).
    if out.exists() and not out.is_dir():
        raise MedsegError(f"{out}: a folder of images needs -o to be a folder")
    if not out.parent.exists():
        raise MedsegError(f"{out}: the folder {out.parent} does not exist")
    files = _volume_files(inputs[0])
    cases: dict[str, list[Path]] = {}
    for path in files:
        match = _CHANNEL.match(_stem(path))
        key = match["case"] if match and model.n_channels > 1 else _stem(path)
        cases.setdefault(key, []).append(path)
    out.mkdir(exist_ok=True)
    failures = 0
    for name, images in cases.items():
        target = out / f"{name}.nii.gz" if len(images) > 1 or _stem(images[0]) != name else out / images[0].name
        try:
            _segment_one(images, target, model, args.device, True)
        except MedsegError as error:
            failures += 1
            print(f"{name}: error: {error}", file=sys.stderr)
    print(f"{len(cases) - failures} of {len(cases)} cases segmented into {out}")
    return 2 if failures else 0


# --- models -----------------------------------------------------------------------
def _cmd_models(args: argparse.Namespace) -> int:
    from medseg_napari.core.model.format import describe_labels, load_model
    from medseg_napari.core.model.registry import list_models

    models = list_models()
    if args.json:
        out = []
        for info in models:
            model = load_model(info.path)
            out.append({
                "name": info.name, "path": str(info.path), "size_bytes": info.size_bytes, "summary": info.summary,
                "labels": model.labels, "channels": model.channels, "spacing": list(model.spacing),
                "val_dice": model.training.get("val_dice", {}),
            })  # fmt: skip
        print(json.dumps(out, indent=2))
        return 0
    if not models:
        print("no shipped models")
        return 0
    for info in models:
        model = load_model(info.path)
        dice = model.training.get("val_dice") or {}
        dice_text = ", ".join(f"{model.labels.get(int(k), k)} {v:.3f}" for k, v in dice.items()) or "n/a"
        print(f"{info.name}  ({info.size_bytes / 1e6:.2f} MB)")
        print(f"  labels: {describe_labels(model.labels)}")
        print(f"  channels: {', '.join(model.channels)}; spacing {tuple(model.spacing)} mm; {model.orientation}")
        print(f"  validation Dice: {dice_text}; {model.training.get('iterations', '?')} iterations")
        if info.summary:
            print(f"  {info.summary}")
    return 0


# --- train ------------------------------------------------------------------------
def _cmd_train(args: argparse.Namespace) -> int:
    from medseg_napari.core.model.training import train

    out = check_output_path(args.output)
    if out.exists() and not args.resume and not args.force:
        raise MedsegError(f"{out}: exists; use --resume to continue it or --force to overwrite")
    command = "medseg train " + " ".join(shlex.quote(a) for a in args.argv_)
    result = train(
        args.dataset,
        output=out,
        iterations=args.iterations,
        minutes=args.minutes,
        val_fraction=args.val_fraction,
        val_every=args.val_every,
        patch_size=args.patch_size,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        network_channels=args.channels,
        num_res_units=args.res_units,
        spacing=args.spacing,
        orientation=args.orientation,
        normalization=args.normalization,
        device=args.device,
        seed=args.seed,
        resume=args.resume,
        initial=args.init,
        threads=args.threads,
        command=command,
        progress=_ThrottledPrinter(2.0),
    )
    dice = ", ".join(f"{result.model.labels.get(k, k)} {v:.3f}" for k, v in result.val_dice.items()) or "n/a"
    print(
        f"{out}: best at iteration {result.best_iteration} of {result.iterations}; "
        f"validation Dice {dice}; {result.seconds:.0f} s on {result.device}"
    )
    return 0


# --- phantom dataset -------------------------------------------------------------
def _cmd_make_phantom_dataset(args: argparse.Namespace) -> int:
    from medseg_napari.core.model.dataset import write_case
    from medseg_napari.core.phantom import PHANTOM_LABELS, make_phantom

    root = Path(args.folder)
    if not root.parent.exists():
        raise MedsegError(f"{root}: the folder {root.parent} does not exist")
    if args.cases < 1:
        raise MedsegError("--cases must be at least 1")
    root.mkdir(exist_ok=True)
    training = []
    for i in range(args.cases):
        shape = tuple(args.shape) if args.shape else (40, 96, 96)
        ph = make_phantom(shape=shape, seed=args.seed + i, oblique=bool(i % 2) if args.mixed else True)
        name = f"phantom_{i:03d}"
        write_case(root, name, [ph.image], ph.labels)
        training.append({"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"})
    meta = {
        "name": "phantom",
        "description": f"medseg-napari MRI-like phantoms, seeds {args.seed}..{args.seed + args.cases - 1}",
        "licence": "CC0 (synthetic)",
        "modality": {"0": "MR"},
        "labels": {"0": "background", **{str(k): v for k, v in PHANTOM_LABELS.items()}},
        "numTraining": args.cases,
        "training": training,
    }
    from medseg_napari.core.atomic import atomic_output

    with atomic_output(root / "dataset.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    print(f"{root}: {args.cases} phantom cases (imagesTr/, labelsTr/, dataset.json)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to ``subparsers``."""
    p = subparsers.add_parser(
        "segment",
        help="segment volumes with a 3D U-Net model",
        description="Segment IMAGE with a model; several IMAGEs are the model's input channels, in order. "
        "A folder of images with -o a folder segments every image (batch).",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="volume file(s) or DICOM folder, or a folder of volumes")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="label map to write (or a folder, for a batch)")
    p.add_argument("--model", required=True, metavar="NAME|PATH", help="a shipped model (see 'medseg models') or a .pt file")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: the GPU when there is one")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_segment)

    p = subparsers.add_parser("models", help="list the shipped models and their cards' summary")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_models)

    p = subparsers.add_parser(
        "train",
        help="train a 3D U-Net on a Decathlon-layout folder",
        description="Train a segmentation model on DATASET (imagesTr/, labelsTr/, optional dataset.json) and "
        "write the best checkpoint (by validation Dice) to MODEL.pt.",
    )
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.pt")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--iterations", type=int, default=None, help="total iterations (default 1000)")
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock budget of this run")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of cases held out (default 0.2)")
    p.add_argument("--val-every", type=int, default=None, metavar="N", help="validate every N iterations")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None)
    p.add_argument("--resume", action="store_true", help="continue the run saved in MODEL.pt / MODEL.state.pt")
    p.add_argument("--force", action="store_true", help="overwrite an existing MODEL.pt")
    p.add_argument("--init", metavar="NAME|PATH", default=None, help="start from this model's weights (fine-tune)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patch-size", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (default 3e-3)")
    p.add_argument("--channels", type=int, nargs="+", default=None, metavar="C",
                   help="U-Net features per level (default 16 32 64 128)")  # fmt: skip
    p.add_argument("--res-units", type=int, default=2, help="residual units per U-Net block")
    p.add_argument("--spacing", type=float, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="working spacing in mm (default: the median of the cases)")  # fmt: skip
    p.add_argument("--orientation", default="RAS", help="working orientation code (default RAS)")
    p.add_argument("--normalization", choices=("zscore", "ct"), default="zscore")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    p.set_defaults(func=_cmd_train_entry)

    p = subparsers.add_parser(
        "make-phantom-dataset", help="write N seeded phantom cases in the Decathlon layout (for training demos)"
    )
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--cases", type=int, default=8)
    p.add_argument("--seed", type=int, default=100, help="seed of the first case (others follow)")
    p.add_argument("--mixed", action="store_true", help="alternate oblique and axis-aligned cases")
    p.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None, help="default 40 96 96")
    p.set_defaults(func=_cmd_make_phantom_dataset)


def _cmd_train_entry(args: argparse.Namespace) -> int:
    # The command as given (rebuilt from the parsed options), for the model card's training record.
    parts = [args.dataset, "-o", args.output]
    for flag, value in (
        ("--iterations", args.iterations), ("--minutes", args.minutes), ("--val-fraction", args.val_fraction),
        ("--val-every", args.val_every), ("--device", args.device), ("--init", args.init), ("--seed", args.seed),
        ("--patch-size", args.patch_size), ("--batch-size", args.batch_size), ("--lr", args.lr),
        ("--channels", args.channels), ("--res-units", args.res_units), ("--spacing", args.spacing),
        ("--orientation", args.orientation), ("--normalization", args.normalization),
    ):  # fmt: skip
        if value is not None:
            parts += [flag, *(str(v) for v in value)] if isinstance(value, list) else [flag, str(value)]
    if args.resume:
        parts.append("--resume")
    args.argv_ = parts
    return _cmd_train(args)
