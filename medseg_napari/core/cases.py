"""The cases of a data set folder, their per-case metrics and their error clusters (no Qt).

A data set is one of:

- a **workspace** or a **Decathlon folder** (``imagesTr/``, ``labelsTr/``,
  ``dataset.json``; see :mod:`medseg_napari.core.workspace`): the labels are
  the references; predictions may sit in a ``predictionsTr/`` (or
  ``predictions/``) subfolder or in a folder given separately;
- **three folders**: images, predictions and references, matched by case name
  (the file name without its extension; an nnU-Net ``_0000`` channel suffix on
  an image is ignored). One folder holding ``images/``, ``predictions/`` and
  ``references/`` subfolders opens the same way.

A case may lack any of the three files: that is listed (:attr:`DatasetCase.missing`),
not an error. Edited labels are saved as the case's reference (atomic write,
previous file kept under ``.backup/``), and the case's status becomes
``"corrected"``: in ``dataset.json`` for a workspace, in
``<references>/.medseg_status.json`` for three folders.

Metrics always come from :mod:`medseg_napari.core.metrics` (a metrics CSV of
``medseg evaluate`` reads back into the same records).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.measure import regionprops

from medseg_napari.core.atomic import atomic_output
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.io import write_volume
from medseg_napari.core.metrics.batch import CasePair
from medseg_napari.core.metrics.evaluate import DISTANCE_METRICS, LabelMetrics
from medseg_napari.core.metrics.report import CSV_COLUMNS
from medseg_napari.core.volume import Volume
from medseg_napari.core.workspace import STATUSES, SUFFIX, Workspace, case_name, volume_files

__all__ = [
    "CaseDataset",
    "DatasetCase",
    "ErrorCluster",
    "case_table",
    "error_clusters",
    "open_dataset",
    "read_metrics_csv",
]

IMAGES_NAMES = ("images", "imagesTr", "image")
PREDICTIONS_NAMES = ("predictions", "predictionsTr", "preds", "prediction")
REFERENCES_NAMES = ("references", "reference", "refs", "labels", "ground_truth", "gt")
STATUS_FILE = ".medseg_status.json"
BACKUP_DIR = ".backup"


@dataclass(frozen=True)
class DatasetCase:
    """One case: its name, the image, prediction and reference files (``None`` when absent), status."""

    name: str
    image: Path | None
    prediction: Path | None
    reference: Path | None
    status: str | None = None

    @property
    def missing(self) -> list[str]:
        """Which of ``"image"``, ``"prediction"``, ``"reference"`` this case lacks."""
        return [k for k in ("image", "prediction", "reference") if getattr(self, k) is None]

    @property
    def evaluable(self) -> bool:
        """Whether the case has both a prediction and a reference."""
        return self.prediction is not None and self.reference is not None


def _stem(path: Path) -> str:
    """Case name of an image file: without extension and without an nnU-Net ``_0000`` suffix."""
    name = case_name(path)
    if len(name) > 5 and name[-5] == "_" and name[-4:].isdigit():
        return name[:-5]
    return name


def _by_case(folder: Path | None, *, image: bool = False) -> dict[str, Path]:
    if folder is None:
        return {}
    out: dict[str, Path] = {}
    for path in volume_files(folder).values():
        out.setdefault(case_name(path), path)
        if image:
            out.setdefault(_stem(path), path)
    return out


def _subfolder(root: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[-1] if lines else type(error).__name__


@dataclass
class CaseDataset:
    """The cases of a data set folder (see the module docstring); make one with :func:`open_dataset`.

    Attributes
    ----------
    kind : {"workspace", "folders"}
    cases : list of DatasetCase
        Sorted by name.
    label_names : dict
        ``{label: name}`` when the data set names its labels (workspace), else empty.
    workspace : Workspace or None
    images, predictions, references : Path or None
        The folders (for a workspace, ``references`` is ``labelsTr``).
    """

    kind: str
    cases: list[DatasetCase]
    label_names: dict[int, str] = field(default_factory=dict)
    workspace: Workspace | None = None
    images: Path | None = None
    predictions: Path | None = None
    references: Path | None = None

    @property
    def root(self) -> Path | None:
        """The workspace folder, or the references (else predictions, images) folder."""
        if self.workspace is not None:
            return self.workspace.root
        return self.references or self.predictions or self.images

    def names(self) -> list[str]:
        """Case names, in order."""
        return [c.name for c in self.cases]

    def case(self, name: str) -> DatasetCase:
        """The case called ``name``."""
        for case in self.cases:
            if case.name == name:
                return case
        raise MedsegError(f"no case '{name}' in this data set")

    def pairs(self) -> list[CasePair]:
        """Cases with a prediction and a reference, for :func:`~medseg_napari.core.metrics.batch.evaluate_pairs`."""
        return [CasePair(c.name, c.prediction, c.reference) for c in self.cases if c.evaluable]  # type: ignore[arg-type]

    def missing(self) -> dict[str, list[str]]:
        """``{case: ["prediction", ...]}`` for the cases that lack a file."""
        return {c.name: c.missing for c in self.cases if c.missing}

    def reload(self) -> CaseDataset:
        """The same data set read again from disk."""
        if self.workspace is not None:
            return _from_workspace(Workspace.open(self.workspace.root), self.predictions)
        return _from_folders(self.images, self.predictions, self.references)

    # --- saving ---------------------------------------------------------------
    def save_labels(self, name: str, labels: Volume, *, status: str = "corrected") -> DatasetCase:
        """Save a case's edited labels as its reference (atomic; the previous file kept as a backup).

        The case's status becomes ``status``. Returns the updated case (also
        replaced in :attr:`cases`).

        Raises
        ------
        MedsegError
            If the write fails; the previous reference file is then intact.
        """
        if status not in STATUSES:
            raise MedsegError(f"unknown case status '{status}' (use one of {', '.join(STATUSES)})")
        case = self.case(name)
        if self.workspace is not None:
            saved = self.workspace.save_labels(name, labels, status=status, backup=True)
            reference = saved.label_path
        else:
            reference = self._save_in_folder(case, labels, status)
        updated = DatasetCase(case.name, case.image, case.prediction, reference, status)
        self.cases = [updated if c.name == name else c for c in self.cases]
        return updated

    def _save_in_folder(self, case: DatasetCase, labels: Volume, status: str) -> Path:
        if self.references is None:
            raise MedsegError("no references folder: open the data set with one to save edited labels")
        source = case.reference or case.prediction
        target = case.reference or self.references / (
            source.name if source is not None else f"{case.name}{SUFFIX}"
        )
        backup = self.references / BACKUP_DIR / target.name
        try:
            if target.exists():
                backup.parent.mkdir(exist_ok=True)
                with atomic_output(backup) as tmp:
                    shutil.copyfile(target, tmp)
            write_volume(labels, target)
        except (OSError, MedsegError) as error:
            raise MedsegError(
                f"{target}: cannot save the labels of '{case.name}': {_one_line(error)}"
            ) from None
        statuses = _read_statuses(self.references)
        statuses[case.name] = status
        status_path = self.references / STATUS_FILE
        try:
            with atomic_output(status_path) as tmp:
                tmp.write_text(json.dumps(dict(sorted(statuses.items())), indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            raise MedsegError(f"{status_path}: cannot write: {_one_line(error)}") from None
        return target


def _read_statuses(folder: Path | None) -> dict[str, str]:
    if folder is None or not (folder / STATUS_FILE).exists():
        return {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((folder / STATUS_FILE).read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items() if v in STATUSES}
    return {}


def _from_workspace(workspace: Workspace, predictions: Path | None) -> CaseDataset:
    if predictions is None:
        predictions = _subfolder(workspace.root, ("predictionsTr", "predictions"))
    preds = _by_case(predictions)
    cases = []
    for c in workspace.cases:
        cases.append(DatasetCase(c.name, c.image_path, preds.get(c.name), c.label_path, c.status))
    known = {c.name for c in cases}
    for name in sorted(set(preds) - known):  # predictions of cases the workspace does not have
        cases.append(DatasetCase(name, None, preds[name], None, None))
    cases.sort(key=lambda c: c.name)
    return CaseDataset(
        kind="workspace",
        cases=cases,
        label_names=workspace.label_names,
        workspace=workspace,
        images=workspace.root / "imagesTr",
        predictions=predictions,
        references=workspace.root / "labelsTr",
    )


def _from_folders(images: Path | None, predictions: Path | None, references: Path | None) -> CaseDataset:
    imgs = _by_case(images, image=True)
    preds = _by_case(predictions)
    refs = _by_case(references)
    statuses = _read_statuses(references)
    image_names = {_stem(p) for p in volume_files(images).values()} if images is not None else set()
    names = sorted(set(preds) | set(refs) | image_names)
    cases = []
    for name in names:
        ref = refs.get(name)
        pred = preds.get(name)
        status = statuses.get(name) or (
            "reviewed" if ref is not None else "predicted" if pred is not None else None
        )
        cases.append(DatasetCase(name, imgs.get(name), pred, ref, status))
    return CaseDataset(
        kind="folders", cases=cases, images=images, predictions=predictions, references=references
    )


def open_dataset(
    folder: str | os.PathLike | None = None,
    *,
    images: str | os.PathLike | None = None,
    predictions: str | os.PathLike | None = None,
    references: str | os.PathLike | None = None,
) -> CaseDataset:
    """Find the cases of a data set folder, or of separate images / predictions / references folders.

    Parameters
    ----------
    folder : path, optional
        A workspace or Decathlon folder, or a folder with ``images/``,
        ``predictions/`` and ``references/`` subfolders (any may be absent).
    images, predictions, references : path, optional
        Separate folders (``predictions`` also adds predictions to a workspace).

    Returns
    -------
    CaseDataset

    Raises
    ------
    MedsegError
        If a folder does not exist or no case is found.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from medseg_napari.core.phantom import make_phantom
    >>> from medseg_napari.core.io import write_volume
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("predictions", "references"): (root / sub).mkdir()
    >>> ph = make_phantom(shape=(8, 16, 16))
    >>> write_volume(ph.labels, root / "predictions" / "a.nii.gz")
    >>> write_volume(ph.labels, root / "predictions" / "b.nii.gz")
    >>> write_volume(ph.labels, root / "references" / "a.nii.gz")
    >>> ds = open_dataset(root)
    >>> [(c.name, c.missing) for c in ds.cases]
    [('a', ['image']), ('b', ['image', 'reference'])]
    """
    given = {
        k: Path(v)
        for k, v in (("images", images), ("predictions", predictions), ("references", references))
        if v
    }
    for what, path in ([("folder", Path(folder))] if folder else []) + list(given.items()):
        if not path.is_dir():
            raise MedsegError(f"{path}: no such folder ({what})")
    if folder is not None:
        root = Path(folder)
        if (root / "dataset.json").exists() or (root / "imagesTr").is_dir():
            dataset = _from_workspace(Workspace.open(root), given.get("predictions"))
        else:
            dataset = _from_folders(
                given.get("images") or _subfolder(root, IMAGES_NAMES),
                given.get("predictions") or _subfolder(root, PREDICTIONS_NAMES),
                given.get("references") or _subfolder(root, REFERENCES_NAMES),
            )
            if not dataset.cases and volume_files(root):
                raise MedsegError(
                    f"{root}: holds volumes but no images/, predictions/ or references/ folders; "
                    "open the folders separately"
                )
    else:
        if not given:
            raise MedsegError("give a data set folder, or images, predictions and references folders")
        dataset = _from_folders(given.get("images"), given.get("predictions"), given.get("references"))
    if not dataset.cases:
        where = folder or ", ".join(str(p) for p in given.values())
        raise MedsegError(f"{where}: no cases found (no .nii.gz, .nii, .nrrd, .mha or .mhd files)")
    return dataset


# --- metrics -------------------------------------------------------------------


def read_metrics_csv(path: str | os.PathLike) -> dict[str, list[LabelMetrics]]:
    """Read a metrics CSV of ``medseg evaluate`` back into ``{case: [LabelMetrics, ...]}``.

    Empty distance cells (one mask empty) become ``inf``, as they were.

    Raises
    ------
    MedsegError
        If the file is missing or lacks the columns of
        :data:`~medseg_napari.core.metrics.report.CSV_COLUMNS`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from medseg_napari.core.metrics import evaluate_labels, write_metrics_csv
    >>> ref = np.zeros((4, 4, 4), np.uint8); ref[1:3, 1:3, 1:3] = 1
    >>> records = evaluate_labels(np.zeros_like(ref), ref, spacing=(1, 1, 1))
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
    >>> write_metrics_csv(target, {"c": records})
    >>> read_metrics_csv(target) == {"c": records}
    True
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise MedsegError(f"{path}: not a metrics CSV of medseg evaluate (no column {missing[0]})")
            rows = list(reader)
    except OSError as error:
        raise MedsegError(f"{path}: cannot read: {_one_line(error)}") from None
    ints = {"label", "tp", "fp", "fn"}
    strings = {"name", "surface"}
    out: dict[str, list[LabelMetrics]] = {}
    for line, row in enumerate(rows, 2):
        values: dict[str, Any] = {}
        try:
            for key in LabelMetrics.field_names():
                text = row[key]
                if key in ints:
                    values[key] = int(text)
                elif key in strings:
                    values[key] = text
                elif key == "empty":
                    values[key] = text or None
                elif text == "":
                    values[key] = math.inf if key in DISTANCE_METRICS else math.nan
                else:
                    values[key] = float(text)
        except (TypeError, ValueError) as error:
            raise MedsegError(f"{path}: line {line}: {_one_line(error)}") from None
        out.setdefault(row["case"], []).append(LabelMetrics(**values))
    return out


def case_table(
    metrics: Mapping[str, Sequence[LabelMetrics]], *, metrics_names: Sequence[str] = ("dice", "hd95")
) -> dict[str, dict[str, float]]:
    """Per case, the chosen metrics of every label as ``{"dice_1": .., "hd95_1": .., "mean_dice": ..}``.

    ``mean_<metric>`` is the mean over the case's labels (``inf`` when a distance is infinite).

    Examples
    --------
    >>> from medseg_napari.core.metrics import evaluate_labels
    >>> ref = np.zeros((6, 6, 6), np.uint8); ref[1:4, 1:4, 1:4] = 1; ref[4:6, 4:6, 4:6] = 2
    >>> pred = ref.copy(); pred[pred == 2] = 0
    >>> row = case_table({"a": evaluate_labels(pred, ref, spacing=(1, 1, 1))})["a"]
    >>> row["dice_1"], row["dice_2"], row["mean_dice"], row["hd95_2"]
    (1.0, 0.0, 0.5, inf)
    """
    table: dict[str, dict[str, float]] = {}
    for case, records in metrics.items():
        row: dict[str, float] = {}
        for metric in metrics_names:
            values = [float(getattr(r, metric)) for r in records]
            for r, v in zip(records, values):
                row[f"{metric}_{r.label}"] = v
            row[f"mean_{metric}"] = float(np.mean(values)) if values else math.nan
        table[case] = row
    return table


# --- error clusters ----------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCluster:
    """One connected component of errors (voxels where prediction != reference).

    Attributes
    ----------
    size : int
        Voxels in the cluster.
    false_positives, false_negatives : int
        Its voxels of each kind (values 1 and 2 of the error map).
    centroid : tuple of 3 float
        Mean voxel index (z, y, x); may fall outside a curved cluster.
    focus : tuple of 3 int
        The cluster's voxel nearest the centroid: where to centre the view.
    bbox : tuple of 6 int
        ``(z0, y0, x0, z1, y1, x1)``, stops excluded.
    """

    size: int
    false_positives: int
    false_negatives: int
    centroid: tuple[float, float, float]
    focus: tuple[int, int, int]
    bbox: tuple[int, int, int, int, int, int]


def error_clusters(errors: np.ndarray, *, connectivity: int = 3) -> list[ErrorCluster]:
    """Connected components of an error map, largest first.

    Parameters
    ----------
    errors : ndarray, 3D
        An error map (:func:`~medseg_napari.core.metrics.evaluate.error_map`:
        1 false positive, 2 false negative, 0 correct), or any mask.
    connectivity : {1, 2, 3}
        Neighbourhood: 1 faces (6-connected), 2 edges (18), 3 corners (26, default).

    Returns
    -------
    list of ErrorCluster
        Sorted by size (largest first), then by position.

    Examples
    --------
    >>> e = np.zeros((4, 8, 8), np.uint8); e[1, 1:3, 1:3] = 1; e[2:4, 5:8, 5:8] = 2
    >>> [(c.size, c.false_negatives, c.focus) for c in error_clusters(e)]
    [(18, 18, (2, 6, 6)), (4, 0, (1, 1, 1))]
    """
    errors = np.asarray(errors)
    structure = ndimage.generate_binary_structure(errors.ndim, connectivity)
    labelled, n = ndimage.label(errors > 0, structure=structure)
    if n == 0:
        return []
    fp = np.bincount(labelled[errors == 1], minlength=n + 1)
    fn = np.bincount(labelled[errors == 2], minlength=n + 1)
    clusters = []
    for prop in regionprops(labelled):
        coords = prop.coords
        centroid = np.asarray(prop.centroid, dtype=float)
        nearest = coords[int(np.argmin(((coords - centroid) ** 2).sum(axis=1)))]
        clusters.append(
            ErrorCluster(
                size=int(coords.shape[0]),
                false_positives=int(fp[prop.label]),
                false_negatives=int(fn[prop.label]),
                centroid=tuple(float(v) for v in centroid),  # type: ignore[arg-type]
                focus=tuple(int(v) for v in nearest),  # type: ignore[arg-type]
                bbox=tuple(int(v) for v in prop.bbox),  # type: ignore[arg-type]
            )
        )
    clusters.sort(key=lambda c: (-c.size, c.focus))
    return clusters
