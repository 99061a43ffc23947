"""Build MONAI networks from a model file; pick the device and CPU threads."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Any

import torch

from medseg_napari.core.errors import MedsegError
from medseg_napari.core.model.format import ModelFormatError, SegmentationModel

__all__ = [
    "DEFAULT_UNET",
    "build_network",
    "default_network_kwargs",
    "describe_device",
    "physical_cores",
    "resolve_device",
    "set_cpu_threads",
]

#: Default architecture: a small residual 3D U-Net (MONAI ``UNet``).
DEFAULT_UNET: dict[str, Any] = {
    "channels": (16, 32, 64, 128),
    "strides": (2, 2, 2),
    "num_res_units": 2,
    "norm": "INSTANCE",
}
ALLOWED_MODULE = "monai.networks.nets"


def default_network_kwargs(
    in_channels: int,
    out_channels: int,
    *,
    channels: Sequence[int] = DEFAULT_UNET["channels"],
    strides: Sequence[int] | None = None,
    num_res_units: int = 2,
    norm: str = "INSTANCE",
) -> dict[str, Any]:
    """Arguments of a 3D ``monai.networks.nets.UNet`` (plain types, for the model file).

    Examples
    --------
    >>> default_network_kwargs(1, 4, channels=(8, 16, 32))["strides"]
    [2, 2]
    """
    strides = list(strides) if strides is not None else [2] * (len(channels) - 1)
    if len(strides) != len(channels) - 1:
        raise MedsegError(f"{len(channels)} channel levels need {len(channels) - 1} strides, got {len(strides)}")
    return {
        "spatial_dims": 3,
        "in_channels": int(in_channels),
        "out_channels": int(out_channels),
        "channels": [int(c) for c in channels],
        "strides": [int(s) for s in strides],
        "num_res_units": int(num_res_units),
        "norm": norm,
    }


def patch_multiple(network_kwargs: dict[str, Any]) -> int:
    """The number every patch dimension must be divisible by (product of strides)."""
    strides = network_kwargs.get("strides")
    if not strides:
        return 1
    out = 1
    for s in strides:
        out *= int(s if isinstance(s, int) else max(s))
    return out


def build_network(
    network_class: str, network_kwargs: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None
) -> torch.nn.Module:
    """Instantiate a ``monai.networks.nets`` class and load weights.

    Only classes of :data:`ALLOWED_MODULE` are built, so a model file cannot name
    arbitrary code.

    Examples
    --------
    >>> net = build_network("monai.networks.nets.UNet", default_network_kwargs(1, 2, channels=(4, 8)))
    >>> type(net).__name__
    'UNet'
    """
    module_name, _, class_name = network_class.rpartition(".")
    if module_name not in (ALLOWED_MODULE, "") or not class_name:
        raise ModelFormatError(f"network class {network_class!r} is not a {ALLOWED_MODULE} class")
    module = importlib.import_module(ALLOWED_MODULE)
    cls = getattr(module, class_name, None)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, torch.nn.Module):
        raise ModelFormatError(f"{ALLOWED_MODULE} has no network class {class_name!r}")
    try:
        net = cls(**network_kwargs)
    except (TypeError, ValueError, AssertionError) as error:
        raise ModelFormatError(f"cannot build {class_name} from the model file's arguments ({error})") from None
    if state_dict is not None:
        try:
            net.load_state_dict(state_dict)
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise ModelFormatError(f"the weights do not fit the network {class_name} ({first})") from None
    return net


def network_of(model: SegmentationModel) -> torch.nn.Module:
    """The model's network with its weights, in eval mode, on the CPU."""
    net = build_network(model.network_class, model.network_kwargs, model.state_dict)
    net.eval()
    return net


def physical_cores() -> int:
    """Number of physical CPU cores (logical count when unknown)."""
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil comes with napari
        n = None
    if not n:
        affinity = getattr(os, "sched_getaffinity", None)
        n = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    return max(1, int(n))


def set_cpu_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads (default: the physical cores); return the number set."""
    n = int(n) if n else physical_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``"cuda"`` when asked for or available (default), else ``"cpu"``; a clear error for no GPU.

    Examples
    --------
    >>> resolve_device("cpu").type
    'cpu'
    """
    if device is None or str(device) in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(str(device))
    except RuntimeError:
        raise MedsegError(f"unknown device {device!r}; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MedsegError("no CUDA GPU is available here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise MedsegError(f"unsupported device {device!r}; use cpu or cuda")
    return dev


def describe_device(device: str | torch.device | None = None) -> str:
    """The device in words: the GPU's name, or ``"CPU (N cores)"``.

    Examples
    --------
    >>> describe_device("cpu").startswith("CPU")
    True
    """
    dev = resolve_device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"GPU {torch.cuda.get_device_name(index)}"
    return f"CPU ({physical_cores()} cores)"
