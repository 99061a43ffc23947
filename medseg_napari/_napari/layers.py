"""Convert between :class:`~medseg_napari.core.volume.Volume` and napari layers.

A layer made by this plugin carries its grid in ``layer.metadata``:

``"geometry"``
    the :class:`~medseg_napari.core.geometry.Geometry` as a plain dict (z-y-x);
``"grid_shape"``
    the z-y-x shape of the image the layer belongs to;
``"label_names"``
    for label maps, ``{value: name}``.

The layer's ``affine`` is :attr:`Geometry.affine`, so napari draws it in physical
space (mm). Layers from elsewhere fall back to their napari transform.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels, Layer
from napari.utils.transforms import CompositeAffine

from medseg_napari.core.errors import GeometryMismatchError
from medseg_napari.core.geometry import Geometry
from medseg_napari.core.volume import Volume

__all__ = [
    "geometry_from_attributes",
    "geometry_of_layer",
    "image_layer_data",
    "image_layers",
    "labels_layer_data",
    "labels_layers",
    "matching_image_layer",
    "new_labels_for",
    "volume_from_layer",
]

CT_WINDOW = (-160.0, 240.0)  # abdominal soft-tissue window in HU


def geometry_from_attributes(attributes: dict[str, Any], *, name: str = "layer") -> Geometry:
    """The grid geometry from napari layer attributes (``layer.as_layer_data_tuple()[1]``).

    ``metadata["geometry"]`` when the plugin set it, else napari's data-to-world
    transform: ``affine @ (translate, rotate, shear, scale)``.
    """
    meta = (attributes.get("metadata") or {}).get("geometry")
    if meta is not None:
        return meta if isinstance(meta, Geometry) else Geometry.from_dict(meta)
    ndim = 3
    composite = CompositeAffine(
        scale=attributes.get("scale", np.ones(ndim)),
        translate=attributes.get("translate", np.zeros(ndim)),
        rotate=attributes.get("rotate", np.eye(ndim)),
        shear=attributes.get("shear", np.zeros(ndim)),
        ndim=ndim,
    ).affine_matrix
    affine = attributes.get("affine", np.eye(ndim + 1))
    affine = np.asarray(getattr(affine, "affine_matrix", affine), dtype=float)
    if affine.shape != (4, 4) or np.shape(attributes.get("scale", np.ones(ndim))) != (ndim,):
        raise GeometryMismatchError(f"{name} is not 3D; a 3D layer is needed")
    return Geometry.from_affine(affine @ composite)


def geometry_of_layer(layer: Layer) -> Geometry:
    """The grid geometry of a layer: its metadata if set, else its napari transform."""
    attributes = {
        "metadata": layer.metadata,
        "scale": layer.scale,
        "translate": layer.translate,
        "rotate": layer.rotate,
        "shear": layer.shear,
        "affine": layer.affine,
    }
    return geometry_from_attributes(attributes, name=f"layer '{layer.name}'")


def volume_from_layer(layer: Layer) -> Volume:
    """The layer's data (as a numpy array, no copy where possible) with its geometry."""
    data = np.asarray(layer.data)
    if data.ndim != 3:
        raise GeometryMismatchError(f"layer '{layer.name}' has shape {data.shape}; a 3D volume is needed")
    meta = {k: v for k, v in layer.metadata.items() if k != "geometry"}
    return Volume(data, geometry_of_layer(layer), {**meta, "layer": layer.name})


def _layer_metadata(volume: Volume, extra: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in volume.metadata.items() if isinstance(v, (str, int, float, list, dict, tuple))}
    meta.update(extra)
    meta["geometry"] = volume.geometry.to_dict()
    meta["grid_shape"] = list(volume.shape)
    return meta


def _contrast_limits(volume: Volume) -> tuple[float, float]:
    data = volume.array
    if volume.metadata.get("modality") == "CT":
        return CT_WINDOW
    sample = data[:: max(1, data.shape[0] // 16)]
    lo, hi = np.percentile(sample, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(data.min()), float(data.max()) + 1e-6
    return float(lo), float(hi)


def image_layer_data(volume: Volume, *, name: str) -> tuple[np.ndarray, dict[str, Any], str]:
    """A napari layer-data tuple for an image volume."""
    kwargs = {
        "name": name,
        "metadata": _layer_metadata(volume, {}),
        "contrast_limits": _contrast_limits(volume),
        **volume.geometry.layer_kwargs(),
    }
    return volume.array, kwargs, "image"


def labels_layer_data(
    volume: Volume, *, name: str, label_names: dict[int, str] | None = None
) -> tuple[np.ndarray, dict[str, Any], str]:
    """A napari layer-data tuple for a label map (integer array)."""
    array = volume.array
    if not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.int32)
    names = label_names or volume.metadata.get("label_names") or {}
    extra = {"label_names": {int(k): str(v) for k, v in dict(names).items()}}
    kwargs = {"name": name, "metadata": _layer_metadata(volume, extra), **volume.geometry.layer_kwargs()}
    return array, kwargs, "labels"


def image_layers(viewer: Any) -> list[Image]:
    """3D image layers of a viewer, in layer order."""
    return [lay for lay in viewer.layers if isinstance(lay, Image) and lay.ndim == 3 and not lay.rgb]


def labels_layers(viewer: Any) -> list[Labels]:
    """3D labels layers of a viewer, in layer order."""
    return [lay for lay in viewer.layers if isinstance(lay, Labels) and lay.ndim == 3]


def matching_image_layer(viewer: Any, labels: Layer) -> Image | None:
    """The image layer whose grid the labels layer lies on (same shape and geometry)."""
    geometry = geometry_of_layer(labels)
    for layer in image_layers(viewer):
        if layer.data.shape == labels.data.shape and geometry_of_layer(layer).is_close(geometry):
            return layer
    return None


def new_labels_for(viewer: Any, image: Image, *, name: str | None = None, dtype: Any = np.uint8) -> Labels:
    """Add an empty labels layer on exactly ``image``'s grid (affine and metadata)."""
    volume = volume_from_layer(image)
    empty = volume.with_array(np.zeros(volume.shape, dtype=dtype))
    data, kwargs, _ = labels_layer_data(empty, name=name or f"{image.name} labels")
    kwargs["metadata"]["image"] = image.name
    return viewer.add_labels(data, **kwargs)
