"""napari writers: labels saved with the geometry of the image they belong to."""

from __future__ import annotations

from typing import Any

import numpy as np

from medseg_napari.core.errors import GeometryMismatchError
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.io import write_volume

__all__ = ["geometry_from_layer_attributes", "write_image", "write_labels"]


def geometry_from_layer_attributes(meta: dict[str, Any]) -> Geometry:
    """The grid geometry from napari's layer attributes (``layer.as_layer_data_tuple()[1]``)."""
    metadata = meta.get("metadata") or {}
    if "geometry" in metadata:
        geometry = metadata["geometry"]
        return geometry if isinstance(geometry, Geometry) else Geometry.from_dict(geometry)
    from napari.utils.transforms import CompositeAffine

    ndim = 3
    composite = CompositeAffine(
        scale=meta.get("scale", np.ones(ndim)),
        translate=meta.get("translate", np.zeros(ndim)),
        rotate=meta.get("rotate", np.eye(ndim)),
        shear=meta.get("shear", np.zeros(ndim)),
        ndim=ndim,
    ).affine_matrix
    affine = np.asarray(meta.get("affine", np.eye(ndim + 1)), dtype=float)
    return Geometry.from_affine(affine @ composite)


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
    write_volume(array, path, geometry=geometry_from_layer_attributes(meta))
    return [path]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an Image layer with its geometry."""
    array = np.asarray(data)
    if array.ndim != 3:
        raise GeometryMismatchError(f"{path}: the image layer is {array.ndim}D; only 3D volumes are saved")
    write_volume(array, path, geometry=geometry_from_layer_attributes(meta))
    return [path]
