"""napari writers: labels saved with the geometry of the image they belong to."""

from __future__ import annotations

from typing import Any

import numpy as np

from medseg_napari._napari.layers import geometry_from_attributes
from medseg_napari.core.errors import GeometryMismatchError
from medseg_napari.core.io import write_volume

__all__ = ["write_image", "write_labels"]


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer with the geometry of the image it belongs to.

    The geometry comes from ``metadata["geometry"]`` (set by this plugin on every
    layer it makes), else from the layer's transform. A labels layer whose shape
    differs from the image grid it records (``metadata["grid_shape"]``) is
    refused with a message; nothing is written.
    """
    array = np.asarray(data)
    metadata = meta.get("metadata") or {}
    grid_shape = metadata.get("grid_shape")
    if array.ndim != 3:
        raise GeometryMismatchError(f"{path}: the labels layer is {array.ndim}D; only 3D label maps are saved")
    if grid_shape is not None and tuple(grid_shape) != array.shape:
        image = metadata.get("image", "its image")
        raise GeometryMismatchError(
            f"{path}: the labels have shape {array.shape} but {image} has shape {tuple(grid_shape)}; "
            "nothing was saved"
        )
    if not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.int32)
    if array.size and array.min() >= 0 and array.max() < 256:
        array = array.astype(np.uint8)
    write_volume(array, path, geometry=geometry_from_attributes(meta))
    return [path]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an Image layer with its geometry."""
    array = np.asarray(data)
    if array.ndim != 3:
        raise GeometryMismatchError(f"{path}: the image layer is {array.ndim}D; only 3D volumes are saved")
    write_volume(array, path, geometry=geometry_from_attributes(meta))
    return [path]
