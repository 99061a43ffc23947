"""Read a training set in the Medical Segmentation Decathlon layout.

A dataset folder holds ``imagesTr/`` and ``labelsTr/`` (and optionally
``dataset.json``). Each case is ``imagesTr/<case>.nii.gz`` (one channel) or
``imagesTr/<case>_0000.nii.gz``, ``<case>_0001.nii.gz``... (nnU-Net style, one file
per channel), with ``labelsTr/<case>.nii.gz``. ``dataset.json`` may give
``"labels"`` (``{"0": "background", "1": "..."}`` or the reverse), the channel
names (``"modality"`` or ``"channel_names"``) and a ``"training"`` list of
``{"image": ..., "label": ...}``. Hidden files (``._x.nii.gz`` from macOS,
``.DS_Store``) are ignored.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medseg_napari.core.atomic import full_suffix
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.io import read_volume
from medseg_napari.core.volume import Volume

__all__ = ["Case", "Dataset", "read_dataset", "write_case"]

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass
class Case:
    """One training case: image file(s), one per channel, and its label file."""

    name: str
    images: list[Path]
    label: Path

    def load(self) -> tuple[list[Volume], Volume]:
        """Read the channels and the label map (checked to lie on the same grid)."""
        images = [read_volume(p) for p in self.images]
        label = read_volume(self.label)
        for i, image in enumerate(images):
            label.check_same_grid(image, what=f"the labels of case {self.name}", other_name=f"its image {i + 1}")
        return images, label


@dataclass
class Dataset:
    """A dataset folder's cases, label names and channel names."""

    root: Path
    cases: list[Case]
    labels: dict[int, str] = field(default_factory=dict)
    channels: list[str] = field(default_factory=list)
    name: str = ""


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.is_file()


def _stem(path: Path) -> str:
    return path.name[: -len(full_suffix(path))]


def _parse_labels(raw: object) -> dict[int, str]:
    if not isinstance(raw, dict):
        return {}
    out: dict[int, str] = {}
    for key, value in raw.items():
        # MSD: {"0": "background", "1": "Anterior"}; nnU-Net v2: {"background": 0, "Anterior": 1}.
        try:
            out[int(key)] = str(value)
        except (TypeError, ValueError):
            try:
                out[int(value)] = str(key)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
    out.pop(0, None)
    return out


def _parse_channels(meta: dict) -> list[str]:
    raw = meta.get("channel_names") or meta.get("modality") or {}
    if isinstance(raw, dict):
        return [str(raw[k]) for k in sorted(raw, key=lambda k: int(k))]
    if isinstance(raw, (list, tuple)):
        return [str(v) for v in raw]
    return []


def read_dataset(root: str | os.PathLike) -> Dataset:
    """List the training cases of a Decathlon-layout folder.

    Parameters
    ----------
    root : str or Path
        Folder with ``imagesTr/`` and ``labelsTr/`` (``dataset.json`` optional).

    Returns
    -------
    Dataset
        Cases sorted by name, label and channel names (from ``dataset.json`` when present).

    Raises
    ------
    MedsegError
        No such folder, no ``imagesTr``/``labelsTr``, no cases, or an image
        without its label.
    """
    root = Path(root)
    if not root.is_dir():
        raise MedsegError(f"{root}: no such dataset folder")
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise MedsegError(f"{root}: a dataset folder needs imagesTr/ and labelsTr/ (Medical Segmentation Decathlon layout)")
    meta: dict = {}
    meta_path = root / "dataset.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise MedsegError(f"{meta_path}: not valid JSON ({error})") from None
    labels = {_stem(p): p for p in sorted(labels_dir.iterdir()) if _visible(p) and full_suffix(p) in IMAGE_SUFFIXES}
    grouped: dict[str, dict[int, Path]] = {}
    for path in sorted(images_dir.iterdir()):
        if not _visible(path) or full_suffix(path) not in IMAGE_SUFFIXES:
            continue
        stem = _stem(path)
        match = _CHANNEL.match(stem)
        if match and stem not in labels and match["case"] in labels:
            grouped.setdefault(match["case"], {})[int(match["channel"])] = path
        else:
            grouped.setdefault(stem, {})[0] = path
    if not grouped:
        raise MedsegError(f"{images_dir}: no images (.nii.gz, .nii, .nrrd, .mha)")
    cases = []
    n_channels = None
    for name, channels in sorted(grouped.items()):
        if name not in labels:
            raise MedsegError(f"{images_dir}: case {name} has no label file in {labels_dir}")
        ordered = [channels[k] for k in sorted(channels)]
        if n_channels is None:
            n_channels = len(ordered)
        elif len(ordered) != n_channels:
            raise MedsegError(f"{root}: case {name} has {len(ordered)} channels, others have {n_channels}")
        cases.append(Case(name, ordered, labels[name]))
    channels = _parse_channels(meta)
    if len(channels) != n_channels:
        channels = ["image"] if n_channels == 1 else [f"channel {i}" for i in range(n_channels or 1)]
    return Dataset(root, cases, _parse_labels(meta.get("labels")), channels, str(meta.get("name", root.name)))


def write_case(
    root: str | os.PathLike, name: str, images: Sequence[Volume], label: Volume
) -> tuple[list[Path], Path]:
    """Write one case into a Decathlon-layout folder (``_0000`` suffixes for several channels)."""
    from medseg_napari.core.io import write_volume

    root = Path(root)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        suffix = f"_{i:04d}" if len(images) > 1 else ""
        path = root / "imagesTr" / f"{name}{suffix}.nii.gz"
        write_volume(image, path)
        paths.append(path)
    label_path = root / "labelsTr" / f"{name}.nii.gz"
    write_volume(label, label_path)
    return paths, label_path
