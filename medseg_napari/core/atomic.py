"""Atomic file writes: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output", "full_suffix"]


def full_suffix(path: str | os.PathLike) -> str:
    """The file's extension including ``.gz`` pairs, lower case (``.nii.gz``)."""
    name = Path(path).name.lower()
    for double in (".nii.gz", ".tar.gz"):
        if name.endswith(double):
            return double
    return Path(name).suffix


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    The temporary name keeps the target's extension (writers choose the format
    from it). If the block raises, the temporary file is removed and the target
    is left exactly as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_output(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{full_suffix(target)}", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file private (0600); give it the mode a normal write would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, (target.stat().st_mode & 0o777) if target.exists() else 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
