"""A 3D array that knows where it is: :class:`Volume`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from medseg_napari.core.geometry import Geometry, array_to_sitk, check_same_grid, resample

__all__ = ["Volume"]


@dataclass
class Volume:
    """A z-y-x array with its :class:`Geometry` and free-form metadata.

    Attributes
    ----------
    array : ndarray
        The voxels, z-y-x.
    geometry : Geometry
        Spacing, origin and direction.
    metadata : dict
        What the reader knew (``source``, ``modality``, DICOM series ...).

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.zeros((2, 3, 4)), Geometry(spacing=(2, 1, 1)))
    >>> v.shape, v.voxel_volume_mm3
    ((2, 3, 4), 2.0)
    """

    array: np.ndarray
    geometry: Geometry = field(default_factory=Geometry)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise ValueError(f"a Volume is 3D (z, y, x); got shape {self.array.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """z-y-x shape."""
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing (z, y, x) in mm."""
        return self.geometry.spacing

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm^3."""
        return float(np.prod(self.geometry.spacing))

    @classmethod
    def from_sitk(cls, image: sitk.Image, **metadata: Any) -> Volume:
        """Wrap a 3D SimpleITK image."""
        return cls(sitk.GetArrayFromImage(image), Geometry.from_sitk(image), dict(metadata))

    def to_sitk(self) -> sitk.Image:
        """This volume as a SimpleITK image."""
        return array_to_sitk(self.array, self.geometry)

    def with_array(self, array: np.ndarray, **metadata: Any) -> Volume:
        """A new volume on the same grid holding ``array`` (same shape required)."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} does not match the grid {self.shape}")
        return Volume(array, self.geometry, {**self.metadata, **metadata})

    def same_grid_as(self, other: Volume, *, atol: float = 1e-4) -> bool:
        """Whether ``other`` lies on exactly this grid."""
        return self.shape == other.shape and self.geometry.is_close(other.geometry, atol=atol)

    def check_same_grid(self, other: Volume, *, what: str = "the labels", other_name: str = "the image") -> None:
        """Raise :class:`~medseg_napari.core.errors.GeometryMismatchError` unless on the same grid."""
        check_same_grid(other.shape, other.geometry, self.shape, self.geometry, what=what, other=other_name)

    def resampled_onto(self, reference: Volume, *, interpolation: str = "nearest") -> Volume:
        """This volume resampled onto ``reference``'s grid by physical coordinates."""
        array = resample(
            self.array,
            self.geometry,
            shape=reference.shape,
            target=reference.geometry,
            interpolation=interpolation,  # type: ignore[arg-type]
        )
        return Volume(array, reference.geometry, dict(self.metadata))
