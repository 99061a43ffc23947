"""Evaluate many (prediction, reference) file pairs: in this process, a process pool or a Dask cluster.

Each case is read and evaluated by :func:`~medseg_napari.core.metrics.evaluate.evaluate_volumes`
(the same function as one pair), so the results do not depend on where a case
ran; they are returned sorted by case name, so a CSV written from them is the
same byte for byte whatever the number of workers.

Worker processes are forked when that is safe (only the main thread runs and
no Qt is loaded: the CLI), else started with ``forkserver`` (``spawn`` where
that is not available): forking a process that runs Qt or other threads
(napari) can deadlock. Inside a GUI, ``processes=False`` runs the cases in a
thread pool instead: a started process imports the ``__main__`` script again,
and a napari script without an ``if __name__ == "__main__"`` guard would open
a second viewer.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg_napari.core.errors import MedsegError
from medseg_napari.core.metrics.evaluate import LabelMetrics, evaluate_volumes
from medseg_napari.core.metrics.surface import SurfaceMode
from medseg_napari.core.progress import CancelToken, ProgressCallback, ProgressTimer

__all__ = ["CasePair", "default_workers", "evaluate_case", "evaluate_pairs"]


@dataclass(frozen=True)
class CasePair:
    """One case to evaluate: its name and the prediction and reference files."""

    name: str
    prediction: Path
    reference: Path


def default_workers() -> int:
    """The number of CPUs this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def evaluate_case(
    prediction: str | os.PathLike,
    reference: str | os.PathLike,
    *,
    labels: Sequence[int] | None = None,
    tolerance_mm: float = 1.0,
    surface: SurfaceMode = "voxel",
    label_names: Mapping[int, str] | None = None,
) -> list[LabelMetrics]:
    """Read two label-map files and evaluate them (a one-line error names the file).

    A top-level function so that worker processes can run it.
    """
    from medseg_napari.core.io import read_volume

    pred, ref = Path(prediction), Path(reference)
    try:
        return evaluate_volumes(
            read_volume(pred),
            read_volume(ref),
            labels=labels,
            tolerance_mm=tolerance_mm,
            surface=surface,
            label_names=label_names,
        )
    except MedsegError as error:
        text = str(error)
        raise MedsegError(text if pred.name in text else f"{pred.name}: {text}") from None
    except ValueError as error:
        raise MedsegError(f"{pred.name}: {error}") from None


def _pool_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    qt_loaded = any(name in sys.modules for name in ("PyQt5", "PyQt6", "PySide2", "PySide6"))
    if (
        "fork" in methods
        and not qt_loaded
        and threading.current_thread() is threading.main_thread()
        and threading.active_count() == 1
    ):
        return multiprocessing.get_context("fork")  # fast, and safe with a single thread
    # No forkserver preload: with one, the server imports the __main__ script again (an
    # unguarded napari script would open a second viewer); workers import what they need.
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def evaluate_pairs(
    pairs: Iterable[CasePair | tuple[str, str | os.PathLike, str | os.PathLike]],
    *,
    labels: Sequence[int] | None = None,
    tolerance_mm: float = 1.0,
    surface: SurfaceMode = "voxel",
    label_names: Mapping[int, str] | None = None,
    workers: int | None = None,
    processes: bool = True,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, list[LabelMetrics]]:
    """Evaluate many cases in parallel; ``{case: [LabelMetrics, ...]}`` sorted by case name.

    Parameters
    ----------
    pairs : iterable of CasePair or (name, prediction path, reference path)
        The cases (names must be unique).
    labels, tolerance_mm, surface, label_names
        As :func:`~medseg_napari.core.metrics.evaluate.evaluate_volumes`.
    workers : int, optional
        Worker processes (default: the number of CPUs; 1 runs in this process).
        Never more than the number of cases.
    processes : bool
        Worker processes (default) or threads (``False``: for a GUI, see the module docstring).
    scheduler : str, optional
        Address of a running Dask distributed scheduler (``tcp://host:8786``):
        the cases run there instead (needs ``dask[distributed]``, the
        ``dask`` extra; the workers must see the same file paths).
    progress, cancel
        One report per finished case; cancel stops between cases.

    Returns
    -------
    dict
        ``{case name: records}`` in sorted case-name order.

    Raises
    ------
    MedsegError
        For a case that cannot be read or evaluated (the message names the file),
        duplicate case names, or a missing ``dask.distributed``.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from medseg_napari.core.io import write_volume
    >>> from medseg_napari.core.geometry import Geometry
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> ref = np.zeros((6, 6, 6), np.uint8); ref[1:5, 1:5, 1:5] = 1
    >>> write_volume(ref, folder / "r.nii.gz", geometry=Geometry())
    >>> write_volume(ref, folder / "p.nii.gz", geometry=Geometry())
    >>> out = evaluate_pairs([("a", folder / "p.nii.gz", folder / "r.nii.gz")], workers=1)
    >>> out["a"][0].dice
    1.0
    """
    if workers is not None and workers < 1:
        raise MedsegError(f"workers must be at least 1, got {workers}")
    items = [p if isinstance(p, CasePair) else CasePair(str(p[0]), Path(p[1]), Path(p[2])) for p in pairs]
    names = [p.name for p in items]
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise MedsegError(f"case names must be unique; repeated: {', '.join(duplicated[:5])}")
    items.sort(key=lambda p: p.name)
    options: dict[str, Any] = {
        "labels": list(labels) if labels is not None else None,
        "tolerance_mm": float(tolerance_mm),
        "surface": surface,
        "label_names": dict(label_names) if label_names else None,
    }
    timer = ProgressTimer(len(items), progress)
    if scheduler is not None:
        results = _run_dask(items, options, scheduler, timer, cancel)
    else:
        n_workers = min(workers or default_workers(), len(items))
        if n_workers <= 1:
            results = {}
            for done, pair in enumerate(items, 1):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                results[pair.name] = evaluate_case(pair.prediction, pair.reference, **options)
                timer.report(done, pair.name)
        else:
            if processes:
                executor: Executor = ProcessPoolExecutor(max_workers=n_workers, mp_context=_pool_context())
            else:
                executor = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="medseg-eval")
            results = _run_pool(items, options, executor, timer, cancel)
    return {name: results[name] for name in sorted(results)}


def _run_pool(
    items: list[CasePair],
    options: dict[str, Any],
    executor: Executor,
    timer: ProgressTimer,
    cancel: CancelToken | None,
) -> dict[str, list[LabelMetrics]]:
    results: dict[str, list[LabelMetrics]] = {}
    try:
        pending: dict[Future, str] = {
            executor.submit(evaluate_case, p.prediction, p.reference, **options): p.name for p in items
        }
        while pending:
            # A short timeout so that a cancel is noticed while long cases run.
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            if cancel is not None:
                cancel.raise_if_cancelled()
            for future in done:
                name = pending.pop(future)
                results[name] = future.result()
                timer.report(len(results), name)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return results


def _run_dask(
    items: list[CasePair],
    options: dict[str, Any],
    scheduler: str,
    timer: ProgressTimer,
    cancel: CancelToken | None,
) -> dict[str, list[LabelMetrics]]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise MedsegError(
            "--scheduler needs Dask distributed, which is not installed: pip install 'medseg-napari[dask]'"
        ) from None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as error:
        raise MedsegError(f"cannot connect to the Dask scheduler at {scheduler}: {error}") from None
    results: dict[str, list[LabelMetrics]] = {}
    try:
        futures = {
            client.submit(evaluate_case, str(p.prediction), str(p.reference), pure=False, **options): p.name
            for p in items
        }
        for future in as_completed(futures):
            if cancel is not None and cancel.cancelled:
                client.cancel(list(futures))
                cancel.raise_if_cancelled()
            name = futures[future]
            results[name] = future.result()
            timer.report(len(results), name)
    finally:
        client.close()
    return results
