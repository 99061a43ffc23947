"""A workspace: a folder of cases in the Medical Segmentation Decathlon layout, with a status per case.

Layout (as MSD Task04, the same file name in both folders)::

    WORKSPACE/
      dataset.json
      imagesTr/<case>.nii.gz
      labelsTr/<case>.nii.gz
      labelsTr/.backup/<case>.nii.gz     the previous labels of a case (kept by save_labels)

``dataset.json`` holds ``name``, ``labels`` (``{"0": "background", "1": ...}``),
``channel_names`` (``{"0": "T1"}``), ``numTraining`` and ``training``, a list of
``{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz", "status": ...}``
where the status is ``"predicted"`` (labels from a model, not checked),
``"corrected"`` (edited by hand) or ``"reviewed"`` (checked and accepted).
Other keys of an existing ``dataset.json`` (``description``, ``modality``, ...)
are kept.

A plain Decathlon folder (no statuses) opens too: cases with labels are
``"reviewed"``, cases without labels have no status. Every file is written
atomically and ``dataset.json`` is rewritten (atomically) after every change,
so a failure (unwritable folder, full disk) raises a one-line
:class:`~medseg_napari.core.errors.MedsegError` and leaves the previous files
as they were.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from medseg_napari.core.atomic import atomic_output
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.geometry import Geometry, check_same_grid
from medseg_napari.core.io import write_volume
from medseg_napari.core.volume import Volume

__all__ = ["STATUSES", "Case", "Workspace", "case_name", "volume_files"]

#: Case statuses, from least to most trusted.
STATUSES = ("predicted", "corrected", "reviewed")
#: File name endings of label maps and images this module recognises.
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
SUFFIX = ".nii.gz"
BACKUP_DIR = ".backup"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def case_name(path: str | os.PathLike) -> str:
    """A case's name: the file name without its volume extension.

    Examples
    --------
    >>> case_name("labelsTr/hippocampus_001.nii.gz")
    'hippocampus_001'
    """
    name = Path(path).name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def volume_files(folder: str | os.PathLike) -> dict[str, Path]:
    """``{file name: path}`` of the volume files in ``folder`` (hidden and temporary files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {
        p.name: p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(VOLUME_SUFFIXES)
    }


@dataclass(frozen=True)
class Case:
    """One case of a workspace: its name, image and labels files and status.

    ``label_path`` is ``None`` for a case without labels (then ``status`` is ``None`` too).
    """

    name: str
    image_path: Path | None
    label_path: Path | None
    status: str | None


def _check_status(status: str) -> str:
    if status not in STATUSES:
        raise MedsegError(f"unknown case status '{status}' (use one of {', '.join(STATUSES)})")
    return status


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__


def _relative(root: Path, path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return "./" + path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _file_geometry(path: Path) -> tuple[tuple[int, int, int], Geometry]:
    """Shape (z, y, x) and geometry from a file's header only (no voxels read)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise MedsegError(f"{path}: cannot read the header ({_one_line(error)})") from None
    size = reader.GetSize()
    if len(size) != 3:
        raise MedsegError(f"{path}: has {len(size)} dimensions; a 3D volume is needed")
    geometry = Geometry.from_itk(reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
    return (int(size[2]), int(size[1]), int(size[0])), geometry


class Workspace:
    """A Decathlon-layout folder of cases with a status per case.

    Make one with :meth:`create` or open one (or a plain Decathlon folder) with
    :meth:`open`; never call the constructor directly.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from medseg_napari.core.phantom import make_phantom
    >>> ph = make_phantom(shape=(8, 16, 16))
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "ws"
    >>> ws = Workspace.create(root, label_names=ph.label_names, channel_names=("T1",))
    >>> ws.add_case("case1", ph.image, ph.labels).status
    'corrected'
    >>> [(c.name, c.status) for c in Workspace.open(root).ready_cases()]
    [('case1', 'corrected')]
    """

    def __init__(self, root: Path, data: dict[str, Any]) -> None:
        self.root = Path(root)
        self._data = data

    # --- making and opening ----------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        label_names: Mapping[int, str],
        channel_names: Sequence[str] = ("image",),
        name: str | None = None,
    ) -> Workspace:
        """Make an empty workspace in ``path`` (a new or empty folder).

        Parameters
        ----------
        path : path
            Folder to create (its parent must exist).
        label_names : mapping
            ``{label: name}`` of the positive labels (0 is "background").
        channel_names : sequence of str
            Names of the image channels (``("T1",)``).
        name : str, optional
            Data set name (default: the folder name).

        Raises
        ------
        MedsegError
            If the folder holds files already, or cannot be written.
        """
        root = Path(path)
        if (root / "dataset.json").exists():
            raise MedsegError(f"{root}: is a workspace already; open it instead")
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise MedsegError(f"{root}: exists and is not an empty folder; choose a new folder")
        if not root.parent.is_dir():
            raise MedsegError(f"{root}: the folder {root.parent} does not exist")
        labels = {"0": "background"}
        labels.update({str(int(k)): str(v) for k, v in sorted(label_names.items()) if int(k) != 0})
        data = {
            "name": name or root.name,
            "description": "medseg-napari workspace",
            "tensorImageSize": "3D",
            "labels": labels,
            "channel_names": {str(i): str(c) for i, c in enumerate(channel_names)},
            "file_ending": SUFFIX,
            "numTraining": 0,
            "training": [],
        }
        created = not root.exists()
        try:
            for sub in ("imagesTr", "labelsTr"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            workspace = cls(root, data)
            workspace._write_json(data)
        except (OSError, MedsegError) as error:
            if created:
                shutil.rmtree(root, ignore_errors=True)
            raise MedsegError(f"{root}: cannot create the workspace: {_one_line(error)}") from None
        return workspace

    @classmethod
    def open(cls, path: str | os.PathLike) -> Workspace:
        """Open a workspace, or a Decathlon folder without statuses.

        Cases come from ``dataset.json``'s ``training`` list, plus image files in
        ``imagesTr`` that it does not list. A case with labels and no status is
        ``"reviewed"``. ``labels`` in the nnU-Net v2 form (``{"background": 0}``)
        and ``modality`` instead of ``channel_names`` are understood.

        Raises
        ------
        MedsegError
            If the folder has neither ``dataset.json`` nor ``imagesTr``, or the JSON is unreadable.
        """
        root = Path(path)
        json_path = root / "dataset.json"
        if not root.is_dir():
            raise MedsegError(f"{root}: no such folder")
        if json_path.exists():
            try:
                data = json.loads(json_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise MedsegError(f"{json_path}: cannot read: {_one_line(error)}") from None
            if not isinstance(data, dict):
                raise MedsegError(f"{json_path}: is not a JSON object")
        elif (root / "imagesTr").is_dir():
            data = {"name": root.name, "labels": {"0": "background"}, "training": []}
        else:
            raise MedsegError(f"{root}: not a workspace (no dataset.json and no imagesTr folder)")
        data = dict(data)
        data["labels"] = cls._normalise_labels(data.get("labels") or {"0": "background"})
        if "channel_names" not in data:
            data["channel_names"] = dict(data.get("modality") or {"0": "image"})
        data["training"] = cls._normalise_training(root, list(data.get("training") or []))
        data["numTraining"] = len(data["training"])
        return cls(root, data)

    @staticmethod
    def _normalise_labels(labels: Mapping[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in labels.items():
            if isinstance(value, (int, float)) and not str(key).lstrip("-").isdigit():
                out[str(int(value))] = str(key)  # nnU-Net v2: {"name": value}
            else:
                out[str(int(key))] = str(value)
        out.setdefault("0", "background")
        return dict(sorted(out.items(), key=lambda kv: int(kv[0])))

    @staticmethod
    def _normalise_training(root: Path, training: list[Any]) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        seen: set[str] = set()
        for item in training:
            if not isinstance(item, dict) or "image" not in item:
                continue
            entry = dict(item)
            label = entry.get("label")
            if label and (root / label).exists():
                if entry.get("status") not in STATUSES:
                    entry["status"] = "reviewed"
            else:
                entry.pop("status", None)
            seen.add(case_name(entry["image"]))
            entries.append(entry)
        # Image files the list does not name (copied in by hand): cases too.
        labels = volume_files(root / "labelsTr")
        for file_name, path in volume_files(root / "imagesTr").items():
            name = case_name(path)
            stem = name[:-5] if re.search(r"_\d{4}$", name) else name  # nnU-Net v2 channel suffix
            if name in seen or stem in seen:
                continue
            entry = {"image": _relative(root, path)}
            label = labels.get(file_name) or labels.get(stem + SUFFIX)
            if label is not None:
                entry["label"] = _relative(root, label)
                entry["status"] = "reviewed"
            seen.add(stem)
            entries.append(entry)
        return entries

    # --- reading ---------------------------------------------------------------
    @property
    def name(self) -> str:
        """The data set's name."""
        return str(self._data.get("name", self.root.name))

    @property
    def label_names(self) -> dict[int, str]:
        """``{label: name}`` of the positive labels."""
        return {int(k): v for k, v in self._data["labels"].items() if int(k) != 0}

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the image channels, in order."""
        names = self._data["channel_names"]
        return tuple(str(names[k]) for k in sorted(names, key=int))

    @property
    def cases(self) -> list[Case]:
        """Every case, in the order of ``dataset.json``."""
        return [self._case(entry) for entry in self._data["training"]]

    def _case(self, entry: Mapping[str, Any]) -> Case:
        image = self.root / entry["image"]
        label = entry.get("label")
        label_path = self.root / label if label else None
        if label_path is not None and not label_path.exists():
            label_path = None
        stem = case_name(image)
        if label_path is not None and case_name(label_path) != stem:
            stem = case_name(label_path)
        return Case(
            name=stem,
            image_path=image if image.exists() else None,
            label_path=label_path,
            status=entry.get("status") if label_path is not None else None,
        )

    def case(self, name: str) -> Case:
        """The case called ``name`` (a one-line error if there is none)."""
        return self.cases[self._index(name)]

    def _index(self, name: str) -> int:
        for i, entry in enumerate(self._data["training"]):
            if self._case(entry).name == name:
                return i
        raise MedsegError(f"no case '{name}' in the workspace {self.root}")

    def ready_cases(self, statuses: Sequence[str] = ("corrected", "reviewed")) -> list[Case]:
        """Cases with labels whose status is one of ``statuses`` (the training set)."""
        wanted = set(statuses)
        return [c for c in self.cases if c.label_path is not None and c.status in wanted]

    def backup_path(self, name: str) -> Path:
        """Where :meth:`save_labels` keeps the previous labels of case ``name``."""
        return self.root / "labelsTr" / BACKUP_DIR / f"{name}{SUFFIX}"

    # --- writing ---------------------------------------------------------------
    def _write_json(self, data: dict[str, Any]) -> None:
        data = {**data, "numTraining": len(data["training"])}
        text = json.dumps(data, indent=2) + "\n"
        target = self.root / "dataset.json"
        try:
            with atomic_output(target) as tmp:
                tmp.write_text(text, encoding="utf-8")
        except OSError as error:
            raise MedsegError(f"{target}: cannot write: {_one_line(error)}") from None

    def _commit(self, data: dict[str, Any]) -> None:
        """Write ``data`` as dataset.json, then adopt it (memory unchanged on failure)."""
        self._write_json(data)
        self._data = {**data, "numTraining": len(data["training"])}

    def _check_labels(self, labels: Volume) -> None:
        if not self.label_names:
            return  # a Decathlon folder that names no labels: nothing to check against
        known = set(self.label_names) | {0}
        array = np.asarray(labels.array)
        if array.dtype == bool:
            return
        if not np.issubdtype(array.dtype, np.integer):
            raise MedsegError(f"the labels are {array.dtype}; a label map of integers is needed")
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 65535:
            unknown = sorted({v for v in (low, high) if v not in known})
        else:
            # bincount: one linear pass (np.unique sorts the whole volume)
            present = np.flatnonzero(np.bincount(array.ravel().astype(np.intp, copy=False)))
            unknown = sorted(int(v) for v in present if int(v) not in known)
        if unknown:
            raise MedsegError(
                f"the labels contain values {unknown} that the workspace does not name "
                f"(known: {sorted(known)})"
            )

    def add_case(
        self,
        name: str,
        image: Volume,
        labels: Volume,
        *,
        status: str = "corrected",
        overwrite: bool = False,
    ) -> Case:
        """Write an image and its labels as a new case (geometry kept).

        Parameters
        ----------
        name : str
            Case name (letters, digits, ``.``, ``_``, ``-``); the files are ``<name>.nii.gz``.
        image, labels : Volume
            The image and a label map on exactly its grid.
        status : {"predicted", "corrected", "reviewed"}
        overwrite : bool
            Replace an existing case of that name (otherwise refused).

        Raises
        ------
        MedsegError
            For a bad name or status, an existing case (without ``overwrite``),
            labels off the image grid or with unknown values, or a failed write
            (then nothing changed on disk).
        """
        _check_status(status)
        if not _NAME_RE.match(name) or name.lower().endswith(VOLUME_SUFFIXES):
            raise MedsegError(
                f"'{name}' is not a valid case name (letters, digits, '.', '_', '-'; no extension)"
            )
        labels.check_same_grid(image, what=f"the labels of '{name}'", other_name="its image")
        self._check_labels(labels)
        existing = None
        with contextlib.suppress(MedsegError):
            existing = self._index(name)
        if existing is not None and not overwrite:
            raise MedsegError(
                f"case '{name}' exists already in {self.root}; pass overwrite=True to replace it"
            )
        image_path = self.root / "imagesTr" / f"{name}{SUFFIX}"
        label_path = self.root / "labelsTr" / f"{name}{SUFFIX}"
        new_files = [p for p in (image_path, label_path) if not p.exists()]
        try:
            # Both files go to temporary names first; they replace the targets only once both are written.
            with atomic_output(image_path) as tmp_image, atomic_output(label_path) as tmp_label:
                write_volume(image, tmp_image)
                write_volume(labels, tmp_label)
        except (OSError, MedsegError) as error:
            raise MedsegError(f"{self.root}: cannot add case '{name}': {_one_line(error)}") from None
        entry = {
            "image": _relative(self.root, image_path),
            "label": _relative(self.root, label_path),
            "status": status,
        }
        training = list(self._data["training"])
        if existing is not None:
            training[existing] = entry
        else:
            training.append(entry)
        try:
            self._commit({**self._data, "training": training})
        except MedsegError:
            for path in new_files:  # a new case that could not be recorded leaves no files behind
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        return self.case(name)

    def save_labels(
        self, name: str, labels: Volume, *, status: str = "corrected", backup: bool = True
    ) -> Case:
        """Replace a case's labels (atomically), keeping the previous file as a backup.

        Parameters
        ----------
        name : str
            An existing case.
        labels : Volume
            The new label map, on the case's image grid.
        status : {"predicted", "corrected", "reviewed"}
            The case's new status (default ``"corrected"``).
        backup : bool
            Copy the previous labels to :meth:`backup_path` first.

        Raises
        ------
        MedsegError
            For an unknown case, labels off the image grid, or a failed write
            (then the previous labels file is intact).
        """
        _check_status(status)
        index = self._index(name)
        case = self.cases[index]
        if case.image_path is not None:
            shape, geometry = _file_geometry(case.image_path)
            check_same_grid(
                labels.shape,
                labels.geometry,
                shape,
                geometry,
                what=f"the labels of '{name}'",
                other="its image",
            )
        self._check_labels(labels)
        label_path = case.label_path or self.root / "labelsTr" / f"{name}{SUFFIX}"
        try:
            if backup and label_path.exists():
                target = self.backup_path(name)
                target.parent.mkdir(exist_ok=True)
                with atomic_output(target) as tmp:
                    shutil.copyfile(label_path, tmp)
            write_volume(labels, label_path)
        except (OSError, MedsegError) as error:
            raise MedsegError(
                f"{label_path}: cannot save the labels of '{name}': {_one_line(error)}"
            ) from None
        training = list(self._data["training"])
        training[index] = {**training[index], "label": _relative(self.root, label_path), "status": status}
        self._commit({**self._data, "training": training})
        return self.case(name)

    def set_status(self, name: str, status: str) -> Case:
        """Set a case's status (the case must have labels)."""
        _check_status(status)
        index = self._index(name)
        if self.cases[index].label_path is None:
            raise MedsegError(f"case '{name}' has no labels; a status needs labels")
        training = list(self._data["training"])
        training[index] = {**training[index], "status": status}
        self._commit({**self._data, "training": training})
        return self.case(name)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, {len(self._data['training'])} cases)"
