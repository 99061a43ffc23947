"""The model file: one ``.pt`` checkpoint that ``torch.load(weights_only=True)`` can read.

A model file is a dict of plain Python types and tensors (no pickled classes),
so loading one never runs code:

``format`` / ``version``
    :data:`FORMAT_NAME` and an integer :data:`FORMAT_VERSION`; a newer version
    than this package knows is refused with a clear message.
``network``
    ``{"class": "monai.networks.nets.UNet", "kwargs": {...}}``: the MONAI class
    (only ``monai.networks.nets`` classes are built) and its arguments.
``state_dict``
    The weights (``float32``, or ``float16`` when stored with ``half=True``).
``labels``
    ``{value: name}`` of the output labels (0, the background, is implicit);
    network output channel ``i`` (``i >= 1``) is the ``i``-th smallest value.
``channels``
    Names of the input channels in order, e.g. ``["T1"]`` or ``["T1", "T2", "FLAIR"]``.
``preprocessing``
    ``{"spacing": [z, y, x] mm, "orientation": "RAS" | "LPS" | ... (a DICOM
    orientation code, see ``SimpleITK.DICOMOrient``), "normalization":
    {"method": "zscore"} | {"method": "ct_window", "window": [lo, hi]}}``.
``patch_size``
    z-y-x size of the sliding window.
``training``
    ``{"data": str, "cases": int, "iterations": int, "val_dice": {value: dice},
    "parent": str | None, "seconds": float, "device": str, "command": str, ...}``.
``versions``
    ``{"medseg_napari": ..., "torch": ..., "monai": ...}`` at save time.
"""

from __future__ import annotations

import copy
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medseg_napari.core.atomic import atomic_output
from medseg_napari.core.errors import MedsegError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ModelFormatError",
    "SegmentationModel",
    "load_model",
    "save_model",
]

FORMAT_NAME = "medseg-napari-model"
FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "format",
    "version",
    "network",
    "state_dict",
    "labels",
    "channels",
    "preprocessing",
    "patch_size",
    "training",
    "versions",
)
NORMALIZATIONS = ("zscore", "ct_window")


class ModelFormatError(MedsegError):
    """A model file is missing, corrupt, incomplete or from a newer version."""


def _versions() -> dict[str, str]:
    import monai

    from medseg_napari import __version__

    # str(): torch's version is a TorchVersion object, which weights_only loading refuses.
    return {"medseg_napari": str(__version__), "torch": str(torch.__version__), "monai": str(monai.__version__)}


@dataclass
class SegmentationModel:
    """Everything needed to run (and retrain) a segmentation network.

    Attributes
    ----------
    network_class : str
        Dotted name of a class in ``monai.networks.nets``.
    network_kwargs : dict
        Arguments of that class (plain types).
    state_dict : dict of str to Tensor
        The weights.
    labels : dict of int to str
        Output label values and names (background 0 excluded).
    channels : list of str
        Input channel names, in order.
    spacing : 3 floats
        Target spacing (z, y, x, mm) the network works at.
    orientation : str
        DICOM orientation code of the working grid (``"RAS"``, ``"LPS"``...).
    normalization : dict
        ``{"method": "zscore"}`` (mean/std over the foreground) or
        ``{"method": "ct_window", "window": [lo, hi]}`` (HU).
    patch_size : 3 ints
        Sliding-window size (z, y, x).
    training : dict
        Training record (data, iterations, val Dice per label, parent, ...).
    versions : dict
        Package versions at save time.
    name : str
        Display name (the file stem when loaded from disk).

    Examples
    --------
    >>> m = SegmentationModel("monai.networks.nets.UNet", {}, {}, {1: "a"}, ["T1"], (1, 1, 1))
    >>> m.label_values, m.n_classes
    ([1], 2)
    """

    network_class: str
    network_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    labels: dict[int, str]
    channels: list[str]
    spacing: tuple[float, float, float]
    orientation: str = "RAS"
    normalization: dict[str, Any] = field(default_factory=lambda: {"method": "zscore"})
    patch_size: tuple[int, int, int] = (32, 64, 64)
    training: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    name: str = "model"

    @property
    def label_values(self) -> list[int]:
        """Label values in output-channel order (channel ``i + 1`` is ``label_values[i]``)."""
        return sorted(int(v) for v in self.labels)

    @property
    def n_classes(self) -> int:
        """Number of network outputs (background included)."""
        return len(self.labels) + 1

    @property
    def n_channels(self) -> int:
        """Number of input channels."""
        return len(self.channels)

    def to_dict(self, *, half: bool = False) -> dict[str, Any]:
        """The checkpoint dict (plain types and tensors); ``half`` stores float weights as float16."""
        state = {
            k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu().clone())
            for k, v in self.state_dict.items()
        }
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "name": self.name,
            "network": {"class": self.network_class, "kwargs": copy.deepcopy(self.network_kwargs)},
            "state_dict": state,
            "labels": {int(k): str(v) for k, v in self.labels.items()},
            "channels": [str(c) for c in self.channels],
            "preprocessing": {
                "spacing": [float(s) for s in self.spacing],
                "orientation": str(self.orientation),
                "normalization": copy.deepcopy(self.normalization),
            },
            "patch_size": [int(p) for p in self.patch_size],
            "training": copy.deepcopy(self.training),
            "versions": {str(k): str(v) for k, v in (self.versions or _versions()).items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "the model") -> SegmentationModel:
        """Validate a checkpoint dict and build the model (see the module docstring)."""
        if not isinstance(data, Mapping):
            raise ModelFormatError(f"{source}: is not a medseg-napari model file (not a dict)")
        if data.get("format") != FORMAT_NAME:
            raise ModelFormatError(
                f"{source}: is not a medseg-napari model file (format {data.get('format')!r}, "
                f"expected {FORMAT_NAME!r})"
            )
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ModelFormatError(f"{source}: the model file lacks {', '.join(repr(k) for k in missing)}")
        version = data["version"]
        if not isinstance(version, int) or version < 1:
            raise ModelFormatError(f"{source}: invalid format version {version!r}")
        if version > FORMAT_VERSION:
            raise ModelFormatError(
                f"{source}: was written by a newer medseg-napari (model format {version}; this version "
                f"reads up to {FORMAT_VERSION}); upgrade medseg-napari"
            )
        try:
            network = data["network"]
            prep = data["preprocessing"]
            for key in ("spacing", "orientation", "normalization"):
                if key not in prep:
                    raise ModelFormatError(f"{source}: the model file lacks 'preprocessing.{key}'")
            norm = dict(prep["normalization"])
            if norm.get("method") not in NORMALIZATIONS:
                raise ModelFormatError(
                    f"{source}: unknown intensity normalisation {norm.get('method')!r} "
                    f"(known: {', '.join(NORMALIZATIONS)})"
                )
            state = {k: (v.float() if v.is_floating_point() else v) for k, v in data["state_dict"].items()}
            model = cls(
                network_class=str(network["class"]),
                network_kwargs=dict(network["kwargs"]),
                state_dict=state,
                labels={int(k): str(v) for k, v in dict(data["labels"]).items()},
                channels=[str(c) for c in data["channels"]],
                spacing=tuple(float(s) for s in prep["spacing"]),  # type: ignore[arg-type]
                orientation=str(prep["orientation"]),
                normalization=norm,
                patch_size=tuple(int(p) for p in data["patch_size"]),  # type: ignore[arg-type]
                training=dict(data["training"]),
                versions=dict(data["versions"]),
                name=str(data.get("name", "model")),
            )
        except ModelFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ModelFormatError(f"{source}: malformed model file ({type(error).__name__}: {error})") from None
        if len(model.spacing) != 3 or len(model.patch_size) != 3:
            raise ModelFormatError(f"{source}: spacing and patch_size must have 3 values (z, y, x)")
        if not model.channels:
            raise ModelFormatError(f"{source}: the model file names no input channel")
        if not model.labels:
            raise ModelFormatError(f"{source}: the model file names no label")
        return model


def save_model(model: SegmentationModel, path: str | os.PathLike, *, half: bool = False) -> Path:
    """Write ``model`` to ``path`` atomically (temporary file, then rename).

    Parameters
    ----------
    model : SegmentationModel
    path : str or Path
        Target ``.pt`` file.
    half : bool
        Store floating-point weights as float16 (half the size; they are
        converted back to float32 on load).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    if not path.parent.exists():
        raise ModelFormatError(f"{path}: the folder {path.parent} does not exist")
    data = model.to_dict(half=half)
    try:
        with atomic_output(path) as tmp:
            torch.save(data, tmp)
    except OSError as error:
        raise ModelFormatError(f"{path}: cannot write the model ({error.strerror or error})") from None
    return path


def load_model(path: str | os.PathLike) -> SegmentationModel:
    """Read and validate a model file (``torch.load(weights_only=True)``, on the CPU).

    Raises
    ------
    ModelFormatError
        For a missing, empty, corrupt or truncated file, a file that is not a
        medseg-napari model, a missing key, or a newer format version.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> m = SegmentationModel("monai.networks.nets.UNet", {}, {}, {1: "a"}, ["T1"], (1, 1, 1))
    >>> p = save_model(m, pathlib.Path(tempfile.mkdtemp()) / "m.pt")
    >>> load_model(p).labels
    {1: 'a'}
    """
    path = Path(path)
    if not path.exists():
        raise ModelFormatError(f"{path}: no such model file")
    if path.is_dir():
        raise ModelFormatError(f"{path}: is a folder, not a model file")
    if path.stat().st_size == 0:
        raise ModelFormatError(f"{path}: the model file is empty")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as error:
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        detail = [line for line in lines if line.startswith("WeightsUnpickler error")]
        first = (detail or lines or [type(error).__name__])[0]
        raise ModelFormatError(
            f"{path}: cannot read the model file, it is corrupt, truncated or not a model ({first[:160]})"
        ) from None
    model = SegmentationModel.from_dict(data, source=str(path))
    stem = path.name[: -len(".pt")] if path.name.endswith(".pt") else path.stem
    model.name = stem
    return model


def describe_labels(labels: Mapping[int, str]) -> str:
    """``"1 ellipsoid, 2 sphere"``: labels as one short string."""
    return ", ".join(f"{int(k)} {v}" for k, v in sorted(labels.items()))


def as_int_keys(mapping: Mapping[Any, Any]) -> dict[int, Any]:
    """A copy of ``mapping`` with integer keys (JSON turns them into strings)."""
    return {int(k): v for k, v in mapping.items()}

