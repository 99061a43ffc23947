"""Voxel-grid geometry: the only place that converts between ITK and napari.

Array order is z-y-x everywhere in this project. ITK describes the same grid in
x-y-z order (``GetSpacing``, ``GetOrigin``, ``GetDirection``); this module is the
one place where the two orders meet, and the one place that turns a grid into a
napari layer ``affine``.

A :class:`Geometry` stores, in z-y-x order, the voxel ``spacing`` (mm), the
world position of voxel ``(0, 0, 0)`` (``origin``, mm, in the ITK/LPS frame with
its axes reversed) and the ``direction`` cosines (3x3; column ``a`` is the world
direction of array axis ``a``). The world coordinate of voxel index ``(k, j, i)``
is::

    world_zyx = origin + direction @ (spacing * (k, j, i))

which is SimpleITK's ``TransformIndexToPhysicalPoint((i, j, k))`` reversed, and
the point napari draws the voxel at when the layer's ``affine`` is
:meth:`Geometry.affine`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import SimpleITK as sitk

from medseg_napari.core.errors import GeometryMismatchError

__all__ = [
    "Geometry",
    "array_to_sitk",
    "check_same_grid",
    "grids_overlap",
    "resample",
    "same_grid",
    "sitk_to_array",
]

Vector3 = tuple[float, float, float]
Matrix3 = tuple[Vector3, Vector3, Vector3]


def _vec3(values: Sequence[float], name: str) -> Vector3:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be 3 finite numbers, got {values!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class Geometry:
    """Placement of a z-y-x voxel grid in physical space (mm).

    Parameters
    ----------
    spacing : 3 floats
        Voxel size along z, y, x in mm (all positive).
    origin : 3 floats
        World coordinate (z, y, x order; LPS axes reversed) of voxel (0, 0, 0).
    direction : 3x3
        Direction cosines in z-y-x order: column ``a`` is the unit world
        direction of array axis ``a``. Orthonormal.

    Examples
    --------
    >>> g = Geometry(spacing=(4.0, 1.0, 1.0))
    >>> g.index_to_world((1, 2, 3)).tolist()
    [4.0, 2.0, 3.0]
    >>> g.itk_spacing
    (1.0, 1.0, 4.0)
    """

    spacing: Vector3 = (1.0, 1.0, 1.0)
    origin: Vector3 = (0.0, 0.0, 0.0)
    direction: Matrix3 = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    def __post_init__(self) -> None:
        spacing = _vec3(self.spacing, "spacing")
        if min(spacing) <= 0:
            raise ValueError(f"spacing must be positive, got {spacing}")
        direction = np.asarray(self.direction, dtype=float)
        if direction.shape != (3, 3) or not np.all(np.isfinite(direction)):
            raise ValueError(f"direction must be a finite 3x3 matrix, got {self.direction!r}")
        if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
            raise ValueError("direction must be orthonormal (a rotation or reflection)")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", _vec3(self.origin, "origin"))
        object.__setattr__(self, "direction", tuple(tuple(float(v) for v in row) for row in direction))

    # --- ITK (x-y-z) side -------------------------------------------------
    @classmethod
    def from_itk(
        cls, spacing: Sequence[float], origin: Sequence[float], direction: Sequence[float]
    ) -> Geometry:
        """Build from ITK-order values (x-y-z; ``direction`` as 9 numbers row-major)."""
        d_xyz = np.asarray(direction, dtype=float).reshape(3, 3)
        return cls(
            spacing=tuple(spacing)[::-1],
            origin=tuple(origin)[::-1],
            direction=d_xyz[::-1, ::-1],
        )

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> Geometry:
        """Geometry of a 3D SimpleITK image."""
        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
        return cls.from_itk(image.GetSpacing(), image.GetOrigin(), image.GetDirection())

    @property
    def itk_spacing(self) -> Vector3:
        """Spacing in ITK order (x, y, z)."""
        return self.spacing[::-1]

    @property
    def itk_origin(self) -> Vector3:
        """Origin in ITK order (x, y, z)."""
        return self.origin[::-1]

    @property
    def itk_direction(self) -> tuple[float, ...]:
        """Direction in ITK order, 9 numbers row-major."""
        return tuple(float(v) for v in self.direction_matrix[::-1, ::-1].reshape(-1))

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Set this geometry on a 3D SimpleITK image (in place) and return it."""
        image.SetSpacing(self.itk_spacing)
        image.SetOrigin(self.itk_origin)
        image.SetDirection(self.itk_direction)
        return image

    # --- napari side ------------------------------------------------------
    @property
    def direction_matrix(self) -> np.ndarray:
        """Direction cosines as a 3x3 float array (z-y-x)."""
        return np.array(self.direction, dtype=float)

    @property
    def affine(self) -> np.ndarray:
        """4x4 homogeneous matrix from z-y-x index to z-y-x world (napari ``affine``)."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        affine[:3, 3] = self.origin
        return affine

    @classmethod
    def from_affine(cls, affine: np.ndarray) -> Geometry:
        """Inverse of :attr:`affine` (the matrix must have no shear)."""
        affine = np.asarray(affine, dtype=float)
        if affine.shape != (4, 4):
            raise ValueError(f"expected a 4x4 affine, got shape {affine.shape}")
        linear = affine[:3, :3]
        spacing = np.linalg.norm(linear, axis=0)
        return cls(spacing=spacing, origin=affine[:3, 3], direction=linear / spacing[None, :])

    def layer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that place a napari layer on this grid."""
        return {"affine": self.affine}

    # --- coordinates ------------------------------------------------------
    def index_to_world(self, index: Sequence[float] | np.ndarray) -> np.ndarray:
        """World coordinates (z-y-x, mm) of index points, shape ``(3,)`` or ``(n, 3)``."""
        idx = np.asarray(index, dtype=float)
        return idx * np.asarray(self.spacing) @ self.direction_matrix.T + np.asarray(self.origin)

    def world_to_index(self, world: Sequence[float] | np.ndarray) -> np.ndarray:
        """Continuous z-y-x indices of world points, shape ``(3,)`` or ``(n, 3)``."""
        pts = np.asarray(world, dtype=float) - np.asarray(self.origin)
        return pts @ self.direction_matrix / np.asarray(self.spacing)

    def corners(self, shape: Sequence[int]) -> np.ndarray:
        """World coordinates of the 8 outer corners of a grid (voxel edges, not centres)."""
        lo = [-0.5, -0.5, -0.5]
        hi = [s - 0.5 for s in shape]
        return self.index_to_world(np.array(list(itertools.product(*zip(lo, hi)))))

    # --- comparison and serialisation --------------------------------------
    def is_close(self, other: Geometry, *, atol: float = 1e-4) -> bool:
        """Whether spacing, origin (mm) and direction agree within ``atol``."""
        return bool(
            np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    def to_dict(self) -> dict[str, list]:
        """Plain lists (z-y-x), for JSON and napari ``layer.metadata``."""
        return {
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": [list(row) for row in self.direction],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Geometry:
        """Inverse of :meth:`to_dict`."""
        return cls(spacing=data["spacing"], origin=data["origin"], direction=data["direction"])

    def describe(self) -> str:
        """One line for messages: spacing and origin in z-y-x order."""
        sp = ", ".join(f"{v:.4g}" for v in self.spacing)
        org = ", ".join(f"{v:.4g}" for v in self.origin)
        return f"spacing ({sp}) mm, origin ({org}) mm"


# --- arrays and SimpleITK images -----------------------------------------------
def array_to_sitk(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    """A 3D z-y-x array as a SimpleITK image with ``geometry``."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"expected a 3D array, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    return geometry.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(array)))


def sitk_to_array(image: sitk.Image) -> tuple[np.ndarray, Geometry]:
    """The z-y-x array and geometry of a 3D SimpleITK image."""
    return sitk.GetArrayFromImage(image), Geometry.from_sitk(image)


# --- grids --------------------------------------------------------------------
def same_grid(
    shape_a: Sequence[int],
    geometry_a: Geometry,
    shape_b: Sequence[int],
    geometry_b: Geometry,
    *,
    atol: float = 1e-4,
) -> bool:
    """Whether two grids have the same shape and geometry (within ``atol`` mm)."""
    return tuple(shape_a) == tuple(shape_b) and geometry_a.is_close(geometry_b, atol=atol)


def grids_overlap(
    shape_a: Sequence[int], geometry_a: Geometry, shape_b: Sequence[int], geometry_b: Geometry
) -> bool:
    """Whether the physical boxes of two grids intersect.

    Uses the separating-axis test on the two oriented boxes, so it is exact for
    oblique grids (an axis-aligned bounding box would over-report overlap).
    """
    corners_a = geometry_a.corners(shape_a)
    corners_b = geometry_b.corners(shape_b)
    axes_a = geometry_a.direction_matrix.T
    axes_b = geometry_b.direction_matrix.T
    candidates = [*axes_a, *axes_b]
    for u in axes_a:
        for v in axes_b:
            cross = np.cross(u, v)
            if np.linalg.norm(cross) > 1e-9:
                candidates.append(cross / np.linalg.norm(cross))
    eps = 1e-6
    for axis in candidates:
        pa, pb = corners_a @ axis, corners_b @ axis
        if pa.max() < pb.min() + eps or pb.max() < pa.min() + eps:
            return False
    return True


def check_same_grid(
    shape_a: Sequence[int],
    geometry_a: Geometry,
    shape_b: Sequence[int],
    geometry_b: Geometry,
    *,
    what: str = "the labels",
    other: str = "the image",
    atol: float = 1e-4,
) -> None:
    """Raise :class:`GeometryMismatchError` naming the difference unless the grids match."""
    if tuple(shape_a) != tuple(shape_b):
        raise GeometryMismatchError(
            f"{what} have shape {tuple(shape_a)} but {other} has shape {tuple(shape_b)} (z, y, x)"
        )
    if not geometry_a.is_close(geometry_b, atol=atol):
        raise GeometryMismatchError(
            f"{what} ({geometry_a.describe()}) are not on the grid of {other} "
            f"({geometry_b.describe()})"
        )


def resample(
    array: np.ndarray,
    geometry: Geometry,
    *,
    shape: Sequence[int],
    target: Geometry,
    interpolation: Literal["nearest", "linear", "bspline"] = "nearest",
    default: float = 0,
) -> np.ndarray:
    """Resample ``array`` onto another grid by physical coordinates.

    Each target voxel takes the value at its world position in the source grid
    (``nearest`` for label maps, ``linear`` or ``bspline`` for intensities);
    positions outside the source get ``default``.

    Parameters
    ----------
    array : ndarray
        Source z-y-x array.
    geometry : Geometry
        Source geometry.
    shape : 3 ints
        Target z-y-x shape.
    target : Geometry
        Target geometry.
    interpolation : {"nearest", "linear", "bspline"}
        Interpolator.
    default : float
        Value outside the source grid.

    Returns
    -------
    ndarray
        Array of ``shape``, same dtype as ``array`` for ``nearest``, float32 otherwise.

    Raises
    ------
    GeometryMismatchError
        When the two grids do not overlap in physical space.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((2, 2, 3), np.uint8); lab[:, :, 0] = 1
    >>> src = Geometry(origin=(0, 0, 2), direction=((1, 0, 0), (0, 1, 0), (0, 0, -1)))
    >>> resample(lab[:, :, ::-1], src, shape=(2, 2, 3), target=Geometry())[0, 0].tolist()
    [1, 0, 0]
    """
    shape = tuple(int(s) for s in shape)
    if same_grid(array.shape, geometry, shape, target, atol=1e-6):
        return np.array(array, copy=True)
    if not grids_overlap(array.shape, geometry, shape, target):
        raise GeometryMismatchError(
            f"the grids do not overlap: source {array.shape} with {geometry.describe()}, "
            f"target {shape} with {target.describe()}"
        )
    interpolators = {
        "nearest": sitk.sitkNearestNeighbor,
        "linear": sitk.sitkLinear,
        "bspline": sitk.sitkBSpline,
    }
    source = array
    if interpolation != "nearest":
        source = np.asarray(array, dtype=np.float32)
    elif array.dtype == bool:
        source = array.astype(np.uint8)
    reference = target.apply_to(sitk.Image([int(s) for s in shape[::-1]], sitk.sitkUInt8))
    out = sitk.Resample(
        array_to_sitk(source, geometry),
        reference,
        sitk.Transform(),
        interpolators[interpolation],
        float(default),
    )
    result = sitk.GetArrayFromImage(out)
    return result.astype(bool) if array.dtype == bool else result
