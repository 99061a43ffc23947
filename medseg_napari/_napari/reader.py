"""napari reader: medical volumes and DICOM folders, placed in physical space."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medseg_napari._napari.layers import image_layer_data, labels_layer_data
from medseg_napari.core.atomic import full_suffix
from medseg_napari.core.errors import MedsegError
from medseg_napari.core.io import is_readable_path, read_volume
from medseg_napari.core.volume import Volume

__all__ = ["get_reader", "looks_like_labels", "read_layers"]

_LABEL_WORDS = ("label", "seg", "mask", "annot", "gt")


def looks_like_labels(volume: Volume, path: str | Path) -> bool:
    """Whether a volume is a label map: integers, and a label-like name or few values."""
    if not np.issubdtype(volume.array.dtype, np.integer):
        return False
    p = Path(path)
    name = " ".join([p.name, p.parent.name]).lower()
    if any(word in name for word in _LABEL_WORDS):
        return True
    sample = volume.array[:: max(1, volume.shape[0] // 8)]
    values = np.unique(sample)
    return len(values) <= 16 and values.min() >= 0 and values.max() < 256


def _layer_name(path: Path, volume: Volume) -> str:
    name = path.name
    suffix = full_suffix(path)
    if suffix and name.lower().endswith(suffix):
        name = name[: -len(suffix)]
    description = volume.metadata.get("series_description")
    return f"{name} ({description})" if description else name


def read_layers(path: str | Path) -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """Read ``path`` into napari layer-data tuples (raises ``MedsegError`` on bad input)."""
    path = Path(path)
    volume = read_volume(path)
    name = _layer_name(path, volume)
    if looks_like_labels(volume, path):
        return [labels_layer_data(volume, name=name)]
    return [image_layer_data(volume, name=name)]


def _reader(paths: str | list[str]) -> list[tuple[np.ndarray, dict[str, Any], str]]:
    from napari.utils.notifications import show_error

    layers: list[tuple[np.ndarray, dict[str, Any], str]] = []
    for path in [paths] if isinstance(paths, str) else paths:
        try:
            layers.extend(read_layers(path))
        except MedsegError as error:
            # A notification, never a traceback; the other files still open.
            show_error(str(error))
    return layers


def get_reader(path: str | list[str]) -> Callable | None:
    """npe2 reader hook: a reader for medical volumes and DICOM folders, else ``None``."""
    paths = [path] if isinstance(path, str) else list(path)
    return _reader if paths and all(is_readable_path(p) for p in paths) else None
