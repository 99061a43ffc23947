"""Small helpers shared by the CLI subcommands."""

from __future__ import annotations

import sys
from pathlib import Path

from medseg_napari.core.errors import MedsegError
from medseg_napari.core.progress import Progress

__all__ = ["check_output_path", "parse_zyx", "print_progress"]


def parse_zyx(text: str, *, what: str = "point") -> tuple[float, float, float]:
    """Parse ``"Z,Y,X"`` into three numbers (a one-line error otherwise)."""
    parts = text.replace(" ", "").split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise MedsegError(f"{what} '{text}' must be three numbers Z,Y,X")
    return values  # type: ignore[return-value]


def check_output_path(path: str | Path) -> Path:
    """Check that an output file's folder exists before any work is done."""
    path = Path(path)
    if not path.parent.exists():
        raise MedsegError(f"{path}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise MedsegError(f"{path}: is a folder; give a file name")
    return path


def print_progress(report: Progress) -> None:
    """Print a progress report as one line on stderr."""
    eta = f", ETA {report.eta_s:.0f} s" if report.eta_s is not None else ""
    values = "".join(f", {k} {v:.4g}" if isinstance(v, float) else f", {k} {v}" for k, v in report.values.items())
    total = f"/{report.total}" if report.total else ""
    print(f"[{report.done}{total}] {report.message}{values}{eta}", file=sys.stderr, flush=True)
