"""Fine-tune a model on a workspace's corrected cases and score it before and after.

The loop that makes a model better the more it is used: segment, correct by
hand, add the case to a :class:`~medseg_napari.core.workspace.Workspace`, then
:func:`finetune`. It starts from the chosen model's weights and settings
(architecture, spacing, orientation, normalisation, patch size, channels,
labels), trains with :func:`~medseg_napari.core.model.training.train` (the same
crops, augmentations and loss as ``medseg train``) on the workspace's
``corrected`` and ``reviewed`` cases, and scores the *starting* model and the
fine-tuned one on held-back cases with
:func:`~medseg_napari.core.metrics.dice_scores` (each case segmented on its own
grid with :func:`~medseg_napari.core.model.inference.segment`).

The new model file records its parent (name, path, SHA-256), data and
before/after scores in ``training["parent"]`` and ``training["finetune"]``; a
markdown card is written beside it (``new.pt`` -> ``new.md``). The parent file
is only ever read: an output path equal to it is refused, and every check
(labels, channels, output folder writable, free space) runs before training.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from medseg_napari.core.atomic import atomic_output
from medseg_napari.core.errors import Cancelled, MedsegError
from medseg_napari.core.metrics import dice_scores
from medseg_napari.core.model.format import SegmentationModel, describe_labels, load_model, save_model
from medseg_napari.core.progress import CancelToken, Progress, ProgressCallback
from medseg_napari.core.volume import Volume
from medseg_napari.core.workspace import Case, Workspace

__all__ = ["DEFAULT_ITERATIONS", "FineTuneResult", "card_path", "finetune", "ready_summary", "write_card"]

DEFAULT_ITERATIONS = 200
_ITERATION = re.compile(r"^iteration (\d+)")
_CHANNEL_SUFFIX = re.compile(r"_0000$")

Pair = tuple[list[Volume], Volume]


@dataclass
class FineTuneResult:
    """What :func:`finetune` returns.

    Attributes
    ----------
    model : SegmentationModel
        The fine-tuned model (the best checkpoint by validation Dice).
    path : Path
        The new model file.
    card : Path
        Its markdown card.
    parent : str
        The starting model's name.
    parent_path : Path or None
        The starting model's file (``None`` for an in-memory model).
    labels : dict of int to str
    train_cases, val_cases : list of str
        Case names used for training and held back for scoring.
    before, after : dict of int to float
        Mean Dice per label on the held-back cases of the starting and the
        fine-tuned model (empty without held-back cases).
    iterations, best_iteration : int
    seconds : float
        Wall-clock time of the whole job (scoring included).
    device : str
    history : list of dict
        Training's validation history (``iteration``, ``loss``, ``val_dice``...).
    notes : list of str
        Things the user should know (no held-back case, worse than the parent...).
    """

    model: SegmentationModel
    path: Path
    card: Path
    parent: str
    parent_path: Path | None
    labels: dict[int, str]
    train_cases: list[str]
    val_cases: list[str]
    before: dict[int, float]
    after: dict[int, float]
    iterations: int
    best_iteration: int
    seconds: float
    device: str
    history: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def mean_before(self) -> float | None:
        """Mean held-back Dice of the starting model over labels (``None`` without scores)."""
        return float(np.mean(list(self.before.values()))) if self.before else None

    @property
    def mean_after(self) -> float | None:
        """Mean held-back Dice of the fine-tuned model over labels (``None`` without scores)."""
        return float(np.mean(list(self.after.values()))) if self.after else None

    def table(self) -> list[tuple[str, float | None, float | None]]:
        """Rows ``(label, before, after)``, one per label then ``"mean"``."""
        rows: list[tuple[str, float | None, float | None]] = [
            (f"{v} {self.labels[v]}", self.before.get(v), self.after.get(v)) for v in sorted(self.labels)
        ]
        rows.append(("mean", self.mean_before, self.mean_after))
        return rows

    def format_table(self) -> str:
        """The before/after table as aligned text (for the terminal)."""
        rows = self.table()
        width = max(len("label"), *(len(r[0]) for r in rows))

        def fmt(x: float | None) -> str:
            return "   n/a" if x is None else f"{x:6.3f}"

        def change(b: float | None, a: float | None) -> str:
            return "" if b is None or a is None else f"{a - b:+7.3f}"

        lines = [f"{'label':<{width}}  before   after   change"]
        lines += [f"{name:<{width}}  {fmt(b)}  {fmt(a)}  {change(b, a)}" for name, b, a in rows]
        return "\n".join(lines)


def card_path(model_path: str | os.PathLike) -> Path:
    """The markdown card beside a model file (``new.pt`` -> ``new.md``), as the registry reads it.

    Examples
    --------
    >>> card_path("models/phantom-ft.pt").name
    'phantom-ft.md'
    """
    return Path(model_path).with_suffix(".md")


# --- checks ------------------------------------------------------------------------
def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        with contextlib.suppress(OSError):
            return os.path.samefile(a, b)
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_output(output: Path, parent_path: Path | None, need_bytes: int, overwrite: bool) -> None:
    """Refuse an output that would touch the parent, exists, or cannot be written (before any training)."""
    from medseg_napari.core.model.training import state_path

    if output.suffix != ".pt":
        raise MedsegError(f"{output}: give the new model a .pt file name")
    if parent_path is not None:
        for mine in (output, card_path(output), state_path(output)):
            for theirs in (parent_path, card_path(parent_path)):
                if _same_file(mine, theirs):
                    raise MedsegError(
                        f"{output}: would overwrite the starting model {parent_path.name} (or its card); "
                        "choose another file name"
                    )
    folder = output.parent
    if not folder.is_dir():
        raise MedsegError(f"{output}: the folder {folder} does not exist")
    if output.is_dir():
        raise MedsegError(f"{output}: is a folder; give a file name")
    if output.exists() and not overwrite:
        raise MedsegError(f"{output}: exists already; choose another name (or overwrite it)")
    # A real write, not os.access: permissions, read-only mounts and quotas all show up here.
    try:
        fd, probe = tempfile.mkstemp(prefix=".medseg-write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise MedsegError(f"{folder}: cannot write the new model there ({error.strerror or error})") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise MedsegError(
            f"{folder}: not enough free disk space for the new model ({free / 1e6:.1f} MB free, "
            f"about {need_bytes / 1e6:.1f} MB needed)"
        )


def _case_images(case: Case, n_channels: int) -> list[Path]:
    """The image file(s) of a workspace case, one per model channel (``_0000``, ``_0001``... for several)."""
    if case.image_path is None:
        raise MedsegError(f"case '{case.name}': its image file is missing")
    if n_channels == 1:
        return [case.image_path]
    name = case.image_path.name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem
    suffix = name[len(stem) :]
    if not _CHANNEL_SUFFIX.search(stem):
        raise MedsegError(
            f"case '{case.name}': the model needs {n_channels} channels, but the case has one image "
            "(name channel files <case>_0000, <case>_0001, ...)"
        )
    paths = [case.image_path.with_name(f"{stem[:-4]}{k:04d}{suffix}") for k in range(n_channels)]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise MedsegError(f"case '{case.name}': missing channel file(s) {', '.join(missing)}")
    return paths


def _load_cases(cases: Sequence[Case], model: SegmentationModel, cancel: CancelToken | None) -> list[tuple[str, Pair]]:
    from medseg_napari.core.io import read_volume

    known = {0, *model.label_values}
    loaded = []
    for case in cases:
        if cancel is not None:
            cancel.raise_if_cancelled()
        images = [read_volume(p) for p in _case_images(case, model.n_channels)]
        assert case.label_path is not None
        label = read_volume(case.label_path)
        for image in images:
            label.check_same_grid(image, what=f"the labels of case '{case.name}'", other_name="its image")
        _check_values(case.name, label, known, model)
        loaded.append((case.name, (images, label)))
    return loaded


def _check_values(name: str, label: Volume, known: set[int], model: SegmentationModel) -> None:
    array = np.asarray(label.array)
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        raise MedsegError(f"case '{name}': the label map holds fractional values; a map of integers is needed")
    values = {int(v) for v in np.unique(array)}
    unknown = sorted(values - known)
    if unknown:
        raise MedsegError(
            f"case '{name}': label values {unknown} are not among the model '{model.name}' labels "
            f"({describe_labels(model.labels)}); fine-tune a model with the same label set"
        )


def _as_validation(
    validation: str | os.PathLike | Workspace | Sequence[Any], model: SegmentationModel, cancel: CancelToken | None
) -> list[tuple[str, Pair]]:
    if isinstance(validation, (str, os.PathLike, Workspace)):
        workspace = validation if isinstance(validation, Workspace) else Workspace.open(validation)
        cases = workspace.ready_cases()
        if not cases:
            raise MedsegError(f"{workspace.root}: the validation folder has no case with labels")
        return _load_cases(cases, model, cancel)
    out = []
    known = {0, *model.label_values}
    for i, item in enumerate(validation):
        try:
            images, label = item
        except (TypeError, ValueError):
            raise MedsegError(f"validation case {i}: expected an (image, label) pair") from None
        images = [images] if isinstance(images, Volume) else list(images)
        name = str(images[0].metadata.get("source", f"validation {i}"))
        for image in images:
            label.check_same_grid(image, what=f"the labels of {name}", other_name="its image")
        _check_values(name, label, known, model)
        out.append((name, (images, label)))
    if not out:
        raise MedsegError("the validation set is empty")
    return out


# --- scoring -----------------------------------------------------------------------
def _score(
    model: SegmentationModel,
    cases: Sequence[tuple[str, Pair]],
    *,
    device: str | None,
    cancel: CancelToken | None,
) -> dict[int, float]:
    """Mean Dice per label over ``cases``, each segmented on its own grid."""
    from medseg_napari.core.model.inference import segment

    if not cases:
        return {}
    per_label: dict[int, list[float]] = {v: [] for v in model.label_values}
    for _, (images, label) in cases:
        predicted = segment(images, model, device=device, cancel=cancel).labels
        scores = dice_scores(predicted.array, label.array, labels=model.label_values)
        for value, dice in scores.items():
            per_label[value].append(dice)
    return {v: float(np.mean(s)) for v, s in per_label.items()}


# --- the card ----------------------------------------------------------------------
def write_card(result: FineTuneResult, *, cancelled: bool = False) -> Path:
    """Write the markdown card of a fine-tuned model beside it (atomically); return its path.

    Parameters
    ----------
    result : FineTuneResult
        The finished (or cancelled) fine-tuning.
    cancelled : bool
        Say that the run was cancelled and the file is its best checkpoint so far.
    """
    model = result.model
    record = model.training
    before, after = result.mean_before, result.mean_after
    if before is not None and after is not None:
        scores = f"mean held-back Dice {before:.3f} before, {after:.3f} after"
    else:
        scores = "no held-back case, so no before/after score"
    parent_file = f" (`{result.parent_path}`)" if result.parent_path is not None else ""
    lines = [
        f"# {result.path.name[: -len('.pt')]}",
        "",
        f"Fine-tuned from `{result.parent}` on {len(result.train_cases)} corrected/reviewed case(s) of "
        f"`{record.get('finetune', {}).get('data', '?')}`; {scores}."
        + (" Cancelled: this is the best checkpoint reached before the cancel." if cancelled else ""),
        "",
        f"- **Parent**: `{result.parent}`{parent_file}"
        + (f", SHA-256 `{record['parent'].get('sha256', '')[:16]}...`" if record.get("parent", {}).get("sha256") else ""),
        f"- **Data**: `{record.get('finetune', {}).get('data', '?')}`; training cases: "
        + (", ".join(result.train_cases) or "none"),
        f"- **Held-back cases**: {', '.join(result.val_cases) or 'none'}",
        f"- **Labels**: {describe_labels(model.labels)} (0 background)",
        f"- **Iterations**: {result.iterations} (best checkpoint at iteration {result.best_iteration})",
        f"- **Time**: {result.seconds:.0f} s",
        f"- **Device**: {result.device}",
        f"- **Date**: {record.get('finetune', {}).get('date', '')}",
        "",
        "## Validation Dice on the held-back cases",
        "",
        "| label | before (parent) | after (fine-tuned) | change |",
        "|---|---|---|---|",
    ]
    for name, b, a in result.table():
        cells = ["n/a" if x is None else f"{x:.3f}" for x in (b, a)]
        delta = "" if b is None or a is None else f"{a - b:+.3f}"
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {delta} |")
    if result.notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in result.notes)]
    lines += [
        "",
        "Everything else (network, spacing, orientation, normalisation, patch size, channels) is the parent's.",
        "",
    ]
    target = result.card
    with atomic_output(target) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return target


# --- the job -------------------------------------------------------------------------
def finetune(
    model: SegmentationModel | str | os.PathLike,
    data: Workspace | str | os.PathLike,
    *,
    output: str | os.PathLike,
    iterations: int | None = None,
    minutes: float | None = None,
    validation: str | os.PathLike | Workspace | Sequence[Any] | None = None,
    val_fraction: float = 0.2,
    val_every: int | None = None,
    statuses: Sequence[str] = ("corrected", "reviewed"),
    learning_rate: float = 3e-3,
    batch_size: int = 2,
    device: str | None = None,
    seed: int = 0,
    threads: int | None = None,
    overwrite: bool = False,
    command: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> FineTuneResult:
    """Fine-tune ``model`` on a workspace's corrected cases; score it before and after.

    Parameters
    ----------
    model : SegmentationModel, shipped model name or path
        The starting model (the parent). Its file is only read.
    data : Workspace or folder
        A workspace (or a Decathlon folder, whose labelled cases count as
        ``reviewed``); the cases whose status is in ``statuses`` are used.
    output : path
        The new ``.pt`` file (its card goes beside it, see :func:`card_path`).
        Must differ from the parent's file.
    iterations, minutes : optional
        Budget (default :data:`DEFAULT_ITERATIONS` iterations).
    validation : folder, Workspace or (image, label) pairs, optional
        Cases to score on. Default: ``val_fraction`` of the ready cases (at
        least one, fixed ``seed``) are held back from training.
    val_fraction : float
        Fraction held back when ``validation`` is not given.
    val_every : int, optional
        Validate (and keep the best checkpoint) every this many iterations.
    statuses : sequence of str
        Case statuses to train on.
    learning_rate, batch_size, device, seed, threads
        As :func:`~medseg_napari.core.model.training.train`.
    overwrite : bool
        Replace an existing ``output`` (never the parent).
    command : str, optional
        The command line, for the training record.
    progress, cancel : optional
        Progress reports carry ``values["iteration"]``, ``loss`` and, at each
        validation, ``val_dice`` (the first one, at iteration 0, is the
        starting model's). On cancel the best checkpoint so far stays in
        ``output`` with its card, the parent is untouched, and
        :class:`~medseg_napari.core.errors.Cancelled` is raised.

    Returns
    -------
    FineTuneResult

    Raises
    ------
    MedsegError
        No corrected/reviewed case, label values outside the model's label set,
        wrong channels, an output equal to the parent, an existing output, an
        unwritable output folder or too little free space: all checked before
        any training, and nothing is written.
    """
    from medseg_napari.core.model.registry import resolve_model
    from medseg_napari.core.model.training import state_path, train

    start = time.perf_counter()
    if iterations is None and minutes is None:
        iterations = DEFAULT_ITERATIONS
    if iterations is not None and iterations < 1:
        raise MedsegError("iterations must be at least 1")
    if minutes is not None and minutes <= 0:
        raise MedsegError("minutes must be positive")
    if not 0 < val_fraction < 1:
        raise MedsegError(f"val_fraction must be in (0, 1), got {val_fraction}")

    # --- the parent (read only) ---
    parent_path: Path | None = None
    if isinstance(model, SegmentationModel):
        parent = model
    else:
        parent_path = resolve_model(model).resolve()
        parent = load_model(parent_path)
    output = Path(output).expanduser()
    parent_bytes = parent_path.stat().st_size if parent_path is not None else sum(
        v.numel() * v.element_size() for v in parent.state_dict.values()
    )
    # The model, the resumable state (weights + 2 optimiser moments) and one temporary copy while renaming.
    _check_output(output, parent_path, 6 * parent_bytes + (1 << 20), overwrite)

    # --- the cases ---
    workspace = data if isinstance(data, Workspace) else Workspace.open(data)
    ready = workspace.ready_cases(statuses)
    if not ready:
        counts = ", ".join(f"{s} {sum(c.status == s for c in workspace.cases)}" for s in ("predicted", *statuses))
        raise MedsegError(
            f"{workspace.root}: no {' or '.join(statuses)} case to train on ({len(workspace.cases)} cases: {counts}); "
            "correct some cases and add them to the training set first"
        )
    notes: list[str] = []
    extra = {int(k): v for k, v in workspace.label_names.items() if int(k) not in parent.labels}
    if extra:
        raise MedsegError(
            f"{workspace.root}: the workspace labels {describe_labels(extra)} are not among the model "
            f"'{parent.name}' labels ({describe_labels(parent.labels)}); fine-tune a model with the same label set"
        )
    renamed = {k: v for k, v in workspace.label_names.items() if parent.labels.get(int(k), v) != v}
    if renamed:
        notes.append(
            "the workspace names some labels differently from the model ("
            + ", ".join(f"{k} '{v}' vs '{parent.labels[int(k)]}'" for k, v in sorted(renamed.items()))
            + "); the model's names are kept"
        )
    if progress is not None:
        progress(Progress(0, 0, f"reading {len(ready)} case(s) from {workspace.root.name}"))
    cases = _load_cases(ready, parent, cancel)

    # --- split ---
    if validation is not None:
        train_cases, val_cases = cases, _as_validation(validation, parent, cancel)
    elif len(cases) >= 2:
        order = np.random.default_rng(seed).permutation(len(cases))
        n_val = min(len(cases) - 1, max(1, round(val_fraction * len(cases))))
        val_cases = [cases[i] for i in sorted(order[:n_val])]
        train_cases = [cases[i] for i in sorted(order[n_val:])]
    else:
        train_cases, val_cases = cases, []
        notes.append("only one ready case: trained on it, none held back, so no before/after score")

    # --- before ---
    if val_cases and progress is not None:
        progress(Progress(0, 0, f"scoring '{parent.name}' on {len(val_cases)} held-back case(s)"))
    before = _score(parent, val_cases, device=device, cancel=cancel)
    if before and progress is not None:
        progress(Progress(0, 0, "starting model scored", values={"iteration": 0, "val_dice": float(np.mean(list(before.values())))}))

    def relay(report: Progress) -> None:
        match = _ITERATION.match(report.message)
        if match:
            report = Progress(report.done, report.total, report.message, report.eta_s,
                              {**report.values, "iteration": int(match.group(1))})  # fmt: skip
        progress(report)  # type: ignore[misc]

    data_desc = str(workspace.root)
    parent_record_extra: dict[str, Any] = {"name": parent.name}
    if parent_path is not None:
        parent_record_extra.update({"path": str(parent_path), "sha256": _sha256(parent_path)})

    def result_of(trained: SegmentationModel, iterations_done: int, best_it: int, history: list, after: dict,
                  device_words: str) -> FineTuneResult:  # fmt: skip
        record = trained.training
        record["parent"] = {**(record.get("parent") or {}), **parent_record_extra}
        record["data"] = data_desc
        record["finetune"] = {
            "data": data_desc,
            "train_cases": [n for n, _ in train_cases],
            "val_cases": [n for n, _ in val_cases],
            "before": {int(k): float(v) for k, v in before.items()},
            "after": {int(k): float(v) for k, v in after.items()},
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if after:
            # The card and the Segment widget show these: the scores on the user's held-back cases.
            record["val_dice"] = {int(k): float(v) for k, v in after.items()}
            record["val_dice_mean"] = float(np.mean(list(after.values())))
        return FineTuneResult(
            model=trained, path=output, card=card_path(output), parent=parent.name, parent_path=parent_path,
            labels=dict(parent.labels), train_cases=[n for n, _ in train_cases], val_cases=[n for n, _ in val_cases],
            before=dict(before), after=dict(after), iterations=iterations_done, best_iteration=best_it,
            seconds=time.perf_counter() - start, device=device_words, history=history, notes=notes,
        )  # fmt: skip

    try:
        trained = train(
            [pair for _, pair in train_cases],
            output=output,
            initial=parent,
            iterations=iterations,
            minutes=minutes,
            val_fraction=0.0,
            validation=[pair for _, pair in val_cases] or None,
            val_every=val_every,
            batch_size=batch_size,
            learning_rate=learning_rate,
            device=device,
            seed=seed,
            threads=threads,
            name=output.name[: -len(".pt")],
            command=command,
            progress=relay if progress is not None else None,
            cancel=cancel,
        )
        if val_cases and progress is not None:
            progress(Progress(0, 0, f"scoring the fine-tuned model on {len(val_cases)} held-back case(s)"))
        after = _score(trained.model, val_cases, device=device, cancel=cancel)
    except Cancelled:
        if output.exists():
            # The best checkpoint so far: give it its record and card; it stays usable.
            partial = load_model(output)
            done = int(partial.training.get("iterations", 0))
            val = {int(k): float(v) for k, v in (partial.training.get("val_dice") or {}).items()}
            res = result_of(partial, done, done, [], val, str(partial.training.get("device", "")))
            res.notes.append("cancelled: the best checkpoint reached before the cancel")
            save_model(res.model, output)
            write_card(res, cancelled=True)
            raise Cancelled(f"fine-tuning cancelled; the best checkpoint so far is in {output} (the parent is untouched)") from None
        raise Cancelled("fine-tuning cancelled before any checkpoint; the parent is untouched") from None

    result = result_of(trained.model, trained.iterations, trained.best_iteration, trained.history, after, trained.device)
    if after and before and result.mean_after is not None and result.mean_before is not None:
        if result.mean_after < result.mean_before:
            notes.append("the fine-tuned model scores lower than its parent on the held-back cases; keep using the parent")
    save_model(result.model, output)
    write_card(result)
    with contextlib.suppress(OSError):
        state_path(output).unlink()  # the resumable state is not needed once the run is complete
    return result


def ready_summary(workspace: Workspace, statuses: Sequence[str] = ("corrected", "reviewed")) -> str:
    """``"3 of 5 cases ready (corrected 2, reviewed 1)"``: a workspace's training set in words."""
    cases = workspace.cases
    counts: Mapping[str, int] = {s: sum(c.status == s for c in cases) for s in statuses}
    ready = sum(counts.values())
    detail = ", ".join(f"{s} {n}" for s, n in counts.items())
    return f"{ready} of {len(cases)} case{'s' if len(cases) != 1 else ''} ready ({detail})"
