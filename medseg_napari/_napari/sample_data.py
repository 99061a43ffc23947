"""napari sample data: seeded phantoms with exact labels (no files, no network)."""

from __future__ import annotations

from typing import Any

from medseg_napari._napari.layers import image_layer_data, labels_layer_data
from medseg_napari.core.phantom import make_phantom

__all__ = ["phantom", "phantom_axis_aligned"]


def _layers(oblique: bool) -> list[tuple[Any, dict[str, Any], str]]:
    ph = make_phantom(oblique=oblique, seed=0)
    image = image_layer_data(ph.image, name="phantom")
    labels = labels_layer_data(ph.labels, name="phantom truth", label_names=ph.label_names)
    labels[1]["metadata"]["image"] = "phantom"
    labels[1]["opacity"] = 0.5
    return [image, labels]


def phantom() -> list[tuple[Any, dict[str, Any], str]]:
    """The MRI-like phantom (oblique, anisotropic) and its exact labels."""
    return _layers(oblique=True)


def phantom_axis_aligned() -> list[tuple[Any, dict[str, Any], str]]:
    """The same phantom on an axis-aligned grid."""
    return _layers(oblique=False)
