"""``medseg finetune``: fine-tune a model on a workspace's corrected cases, with before/after Dice."""

from __future__ import annotations

import argparse
import shlex

from medseg_napari._cli._common import check_output_path

__all__ = ["register"]


def _cmd_finetune(args: argparse.Namespace) -> int:
    from medseg_napari._cli.model import _ThrottledPrinter
    from medseg_napari.core.model.finetune import finetune

    out = check_output_path(args.output)
    parts = ["--model", args.model, "--data", args.data, "-o", args.output]
    for flag, value in (("--iterations", args.iterations), ("--minutes", args.minutes), ("--val", args.val),
                        ("--device", args.device), ("--seed", args.seed), ("--lr", args.lr)):  # fmt: skip
        if value is not None:
            parts += [flag, str(value)]
    result = finetune(
        args.model,
        args.data,
        output=out,
        iterations=args.iterations,
        minutes=args.minutes,
        validation=args.val,
        val_fraction=args.val_fraction,
        val_every=args.val_every,
        learning_rate=args.lr,
        device=args.device,
        seed=args.seed,
        overwrite=args.force,
        command="medseg finetune " + " ".join(shlex.quote(p) for p in parts),
        progress=None if args.quiet else _ThrottledPrinter(2.0),
    )
    print(
        f"{result.path}: fine-tuned from '{result.parent}' on {len(result.train_cases)} case(s), "
        f"{result.iterations} iterations (best at {result.best_iteration}), {result.seconds:.0f} s on {result.device}"
    )
    if result.val_cases:
        print(f"validation Dice on {len(result.val_cases)} held-back case(s) ({', '.join(result.val_cases)}):")
        print(result.format_table())
    for note in result.notes:
        print(f"note: {note}")
    print(f"card: {result.card}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``medseg finetune`` to ``subparsers``."""
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a model on a workspace's corrected cases (before/after Dice)",
        description="Start from MODEL's weights and settings, train on the corrected and reviewed cases of the "
        "workspace DIR (held-back cases, or --val, score the starting and the new model), and write NEW.pt "
        "with a card NEW.md naming its parent. The starting model's file is never changed.",
    )
    p.add_argument("--model", required=True, metavar="NAME|PATH", help="a shipped model (see 'medseg models') or a .pt file")
    p.add_argument("--data", required=True, metavar="DIR", help="a workspace (or Decathlon folder) of corrected cases")
    p.add_argument("-o", "--output", required=True, metavar="NEW.pt", help="the new model file (not the parent)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--iterations", type=int, default=None, help="iterations (default 200)")
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock training budget")
    p.add_argument("--val", metavar="DIR", default=None, help="score on this folder's cases instead of held-back ones")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of the cases held back (default 0.2)")
    p.add_argument("--val-every", type=int, default=None, metavar="N", help="validate every N iterations")
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (default 3e-3)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: the GPU when there is one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite an existing NEW.pt (never the parent)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_finetune)
